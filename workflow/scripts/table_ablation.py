"""One ablation table (BNS / CLA components, schedules, lambda_local or beta sweeps, AEL): rows are
the config group's entries, columns the chosen metrics on every benchmark the group ran on.

With ``reference`` set, each metric also gets a "Δ vs <reference>" column; with
``sum_of_parts`` (the components group: roles base / bns / cla / full) two more rows compare the
full method's gain with the sum of the single components' gains.
"""

from joblog import redirect_to_log
from paper_common import (DIRECTION_WORDS, MeanStd, Table, cell, contrast, merge_terms, metric_path, percent,
                          read_json)

# Display names of the components group's roles (the config keys say what each method is).
COMPONENT_NAMES = {"base": "Base aligner (no BACL)", "bns": "BNS only", "cla": "CLA only",
                   "full": "Full BACL (BNS + CLA)"}


def group_benchmarks(summary: dict, split: str, methods: list[str]) -> list[str]:
    """Benchmarks on which every one of ``methods`` has results on ``split``, in summary order
    (an ablation compares its rows with each other, so a benchmark needs all of them)."""
    found = [b for b, splits in summary["results"].items() if all(m in splits.get(split, {}) for m in methods)]
    if not found:
        raise ValueError(f"no benchmark has results on {split} for all of {sorted(set(methods))}")
    return found


def _difference(summary, benchmark, split, metric, plus: list[str], minus: list[str]) -> MeanStd | None:
    terms = merge_terms([(1, m) for m in plus] + [(-1, m) for m in minus])
    cells = [(weight, cell(summary, benchmark, split, m, metric)) for weight, m in terms]
    if any(stats is None for _, stats in cells):
        return None
    result = contrast([(100 * weight, stats) for weight, stats in cells])
    return MeanStd(result["estimate"], result["se"], result["n"])


def ablation_table(summary: dict, group: dict, split: str, metrics: list[dict], direction: str, title: str,
                   reference: str | None = None, sum_of_parts: bool = False, row_format: str = "{}") -> Table:
    """The table of one ablation ``group`` (label -> method).

    Args:
        metrics: ``{"label", "metric"}`` per metric ("{direction}" in a path is filled in), and
            optionally ``"delta": False`` for one that gets no Δ column (e.g. a chance level).
        reference: a label of ``group``; adds Δ columns (mean difference ± its SE).
        sum_of_parts: add the rows "sum of the parts" and "full − sum"; needs roles base/bns/cla/full.
        row_format: how a group label is shown, e.g. "λ_local = {}" for a sweep's values.
    """
    if not group:
        raise ValueError("group is empty: the config's tables section names no method for it")
    if reference is not None and reference not in group:
        raise ValueError(f"reference={reference!r} is not one of the group's labels {list(group)}")
    if sum_of_parts and not {"base", "bns", "cla", "full"} <= set(group):
        raise ValueError(f"sum_of_parts needs the roles base, bns, cla, full; the group has {list(group)}")
    if sum_of_parts and reference != "base":
        raise ValueError("sum_of_parts compares gains over the base: set reference='base'")
    paths = [(m["label"], metric_path(m["metric"], direction), m.get("delta", True)) for m in metrics]
    benchmarks = group_benchmarks(summary, split, list(group.values()))
    columns, spec = ["Method"], []
    for benchmark in benchmarks:
        for label, path, has_delta in paths:
            columns.append(f"{benchmark} {label}")
            spec.append((benchmark, path, False))
            if reference is not None and has_delta:
                columns.append(f"{benchmark} Δ {label} vs {COMPONENT_NAMES.get(reference, reference)}")
                spec.append((benchmark, path, True))
    rows = []
    for label, method in group.items():
        row = [COMPONENT_NAMES.get(label, label) if sum_of_parts else row_format.format(label)]
        for benchmark, path, is_delta in spec:
            if not is_delta:
                row.append(percent(cell(summary, benchmark, split, method, path)))
            else:
                row.append("(reference)" if label == reference else
                           _difference(summary, benchmark, split, path, [method], [group[reference]]))
        rows.append(row)
    if sum_of_parts:
        for name, plus, minus in (
                ("Sum of the parts: Δ BNS + Δ CLA", ["bns", "cla"], ["base", "base"]),
                ("Full − sum of the parts (> 0: more than the sum)", ["full", "base"], ["bns", "cla"])):
            row = [name]
            for benchmark, path, is_delta in spec:
                row.append(_difference(summary, benchmark, split, path, [group[r] for r in plus],
                                       [group[r] for r in minus]) if is_delta else None)
            rows.append(row)
    notes = [f"Split {split}; mean ± std over seeds in percent; R@1 is {DIRECTION_WORDS[direction]}, by "
             "embedding similarity. – : not run in this configuration."]
    if reference is not None:
        notes.append("Δ columns: difference of seed means ± its standard error sqrt(Σ std²/n) in percentage points.")
    return Table(title, columns, rows, notes)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    table = ablation_table(read_json(snakemake.input[0]), dict(params.group), params.split, list(params.metrics),
                           params.direction, params.title, params.reference, params.sum_of_parts,
                           params.row_format)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
