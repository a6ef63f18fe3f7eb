"""One ablation table (BNS / CLA components, schedules, match objective, CLA form, lambda_local or
beta sweeps, AEL): rows are the config group's entries, columns the chosen metrics on every benchmark
the group ran on, then the references a head metric needs (issue #12): the untrained Transformer,
the no-Transformer reference and chance, each in the column of the metric it is the reference for.

With ``reference`` set, each metric also gets a "Δ vs <reference>" column (paired by seed when the
rows share seeds); with ``sum_of_parts`` (the components group: roles base / bns / cla / full) two
more rows compare the full method's gain with the sum of the single components' gains.
"""

from joblog import redirect_to_log
from paper_common import (DIRECTION_WORDS, MeanStd, Table, cell, contrast, merge_terms, metric_path, percent,
                          read_json)
from type_flags import flag_note, read_flags

# Display names of the components group's roles (the config keys say what each method is).
COMPONENT_NAMES = {"base": "Base aligner (no BACL)", "bns": "BNS only", "cla": "CLA only",
                   "full": "Full BACL (BNS + CLA)"}
# Reference rows: (key of a metric spec naming the reference's path, row label). Each cell comes
# from the first group entry (in table order) whose evaluation has that path on the benchmark.
REFERENCE_ROWS = (
    ("untrained", "Untrained Transformer (the run's Transformer at its seeded init)"),
    ("no_transformer", "No Transformer: the token whose frozen feature differs most"),
    ("chance", "Chance (uniform: token / attention / 50 % per pair)"),
)


def group_benchmarks(summary: dict, split: str, methods: list[str]) -> list[str]:
    """Benchmarks on which every one of ``methods`` has results on ``split``, in summary order
    (an ablation compares its rows with each other, so a benchmark needs all of them)."""
    found = [b for b, splits in summary["results"].items() if all(m in splits.get(split, {}) for m in methods)]
    if not found:
        raise ValueError(f"no benchmark has results on {split} for all of {sorted(set(methods))}")
    return found


def _shown(stats: dict | None, scale: float, plain: bool = False) -> MeanStd | float | None:
    """A cell in display units; ``plain``: the mean alone (a chance level, the same for every seed)."""
    if stats is None:
        return None
    return scale * stats["mean"] if plain else MeanStd(scale * stats["mean"], scale * stats["std"], stats["n"])


def _difference(summary, benchmark, split, metric, scale, plus: list[str], minus: list[str]) -> MeanStd | None:
    terms = merge_terms([(1, m) for m in plus] + [(-1, m) for m in minus])
    cells = [(weight, cell(summary, benchmark, split, m, metric)) for weight, m in terms]
    if any(stats is None for _, stats in cells):
        return None
    result = contrast([(scale * weight, stats) for weight, stats in cells])
    return MeanStd(result["estimate"], result["se"], result["n"])


def _first_found(summary, benchmark, split, methods, path):
    return next((found for m in methods if (found := cell(summary, benchmark, split, m, path)) is not None), None)


def ablation_table(summary: dict, group: dict, split: str, metrics: list[dict], direction: str, title: str,
                   reference: str | None = None, sum_of_parts: bool = False, row_format: str = "{}",
                   flags: dict[str, list[str]] | None = None) -> Table:
    """The table of one ablation ``group`` (label -> method).

    Args:
        metrics: per metric ``{"label", "metric"}`` ("{direction}" in a path is filled in), and
            optionally ``"delta": False`` (no Δ column, e.g. a chance level), ``"percent": False``
            (shown as measured, e.g. entropy in nats), ``"types": True`` (an average over negative
            types: the note names the types the probe flags) and the paths of its references
            ``"untrained"``, ``"no_transformer"``, ``"chance"`` (REFERENCE_ROWS).
        reference: a label of ``group``; adds Δ columns (mean difference ± its SE).
        sum_of_parts: add the rows "sum of the parts" and "full − sum"; needs roles base/bns/cla/full.
        row_format: how a group label is shown, e.g. "λ_local = {}" for a sweep's values.
        flags: benchmark -> negative types at chance in the probe (type_flags.py).
    """
    if not group:
        raise ValueError("group is empty: the config's tables section names no method for it")
    if reference is not None and reference not in group:
        raise ValueError(f"reference={reference!r} is not one of the group's labels {list(group)}")
    if sum_of_parts and not {"base", "bns", "cla", "full"} <= set(group):
        raise ValueError(f"sum_of_parts needs the roles base, bns, cla, full; the group has {list(group)}")
    if sum_of_parts and reference != "base":
        raise ValueError("sum_of_parts compares gains over the base: set reference='base'")
    specs = [{**m, "metric": metric_path(m["metric"], direction),
              **{key: metric_path(m[key], direction) for key, _ in REFERENCE_ROWS if key in m}} for m in metrics]
    benchmarks = group_benchmarks(summary, split, list(group.values()))
    columns, layout = ["Method"], []
    for benchmark in benchmarks:
        for spec in specs:
            scale = 100 if spec.get("percent", True) else 1
            columns.append(f"{benchmark} {spec['label']}")
            layout.append((benchmark, spec, scale, False))
            if reference is not None and spec.get("delta", True):
                columns.append(f"{benchmark} Δ {spec['label']} vs {COMPONENT_NAMES.get(reference, reference)}")
                layout.append((benchmark, spec, scale, True))
    rows = []
    for label, method in group.items():
        row = [COMPONENT_NAMES.get(label, label) if sum_of_parts else row_format.format(label)]
        for benchmark, spec, scale, is_delta in layout:
            if not is_delta:
                row.append(_shown(cell(summary, benchmark, split, method, spec["metric"]), scale))
            else:
                row.append("(reference)" if label == reference else
                           _difference(summary, benchmark, split, spec["metric"], scale, [method], [group[reference]]))
        rows.append(row)
    if sum_of_parts:
        for name, plus, minus in (
                ("Sum of the parts: Δ BNS + Δ CLA", ["bns", "cla"], ["base", "base"]),
                ("Full − sum of the parts (> 0: more than the sum)", ["full", "base"], ["bns", "cla"])):
            rows.append([name] + [_difference(summary, b, split, spec["metric"], scale, [group[r] for r in plus],
                                              [group[r] for r in minus]) if is_delta else None
                                  for b, spec, scale, is_delta in layout])
    for key, name in REFERENCE_ROWS:
        if any(key in spec for spec in specs):
            row = [name] + [None if is_delta or key not in spec else
                            _shown(_first_found(summary, b, split, list(group.values()), spec[key]), scale,
                                   plain=key == "chance") for b, spec, scale, is_delta in layout]
            if any(value is not None for value in row[1:]):
                rows.append(row)
    notes = [f"Split {split}; mean ± std over seeds, in percent unless a column says otherwise; R@1 is "
             f"{DIRECTION_WORDS[direction]}; R@1 by embedding similarity unless 're-ranked' (by the cross-modal "
             "Transformer, reranked.md). – : not run or not measured in this configuration."]
    if reference is not None:
        notes.append("Δ columns: difference of seed means ± its standard error: of the per-seed differences when both "
                     "rows ran the same seeds (the seed fixes the data order: paired), else sqrt(Σ std²/n).")
    if len(rows) > len(group) + (2 if sum_of_parts else 0):
        notes.append("Reference rows: each cell is the reference of its column's metric, from the first row above "
                     "that measured it (the untrained Transformer is that row's run with its Transformer at its "
                     "seeded initialisation; chance and the no-Transformer reference depend on the split only).")
    averaged = [spec["label"] for spec in specs if spec.get("types")]
    if flags and averaged:
        notes.append(flag_note(flags, benchmarks, ", ".join(f"'{label}'" for label in averaged)))
    # Two decimals when a column is not in percent (entropy in nats, divergences in [0, 2]).
    return Table(title, columns, rows, notes, digits=2 if any(not spec.get("percent", True) for spec in specs) else 1)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    flags = read_flags(params.probe_benchmarks, snakemake.input.probes)
    table = ablation_table(read_json(snakemake.input.results), dict(params.group), params.split, list(params.metrics),
                           params.direction, params.title, params.reference, params.sum_of_parts,
                           params.row_format, flags)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
