"""The match heads (cross-modal Transformers) of the methods that have one, against their references:
the same aligner with its Transformer at initialisation (``untrained.*`` in the evaluation) and the
chance level of each metric (issue #12). Two views of one results summary:

* ``summary``: per benchmark and method, the head's pairwise boundary accuracy, "beats all its
  negatives" and retrieval re-ranked by the match score alone, each beside the untrained value and
  chance, and the head's gain over its untrained copy (paired by seed: the same run);
* ``by_type``: per benchmark and kind of boundary negative, each method's head and untrained
  pairwise accuracy beside the frozen embedding's, with the probe's flag on kinds at chance.
"""

from joblog import redirect_to_log
from paper_common import (DIRECTION_WORDS, MeanStd, Table, cell, chance_text, contrast, level, metric_path,
                          percent, read_json)
from type_flags import flag_note, pairwise_without, read_flags, type_label

HEAD = "boundary_match_head"
UNTRAINED = f"untrained.{HEAD}"


def head_methods(summary: dict, methods: dict, split: str, benchmark: str) -> dict:
    """The entries of ``methods`` (label -> method) with a match head evaluated on ``benchmark``."""
    return {label: m for label, m in methods.items()
            if cell(summary, benchmark, split, m, "retrieval_reranked.k") is not None
            or cell(summary, benchmark, split, m, f"{HEAD}.pairwise_accuracy") is not None}


def _gain(summary, benchmark, split, method, metric, reference) -> MeanStd | None:
    trained, untrained = cell(summary, benchmark, split, method, metric), cell(summary, benchmark, split, method,
                                                                              reference)
    if trained is None or untrained is None:
        return None
    result = contrast([(100, trained), (-100, untrained)])
    return MeanStd(result["estimate"], result["se"], result["n"])


def heads_table(summary: dict, methods: dict, split: str, direction: str, title: str,
                flags: dict[str, list[str]] | None = None) -> Table:
    """One row per (benchmark, method with a match head). Raises ValueError when there is none."""
    flags = flags or {}
    r1 = metric_path("retrieval_reranked.{direction}.R@1", direction)
    columns = ["Benchmark", "Method", "pairwise acc (head)", "pairwise acc (untrained)", "Δ head − untrained",
               "pairwise acc (head, no †)", "pairwise acc (untrained, no †)", "pairwise chance",
               "beats all (head)", "beats all (untrained)", "beats all chance (indep. / exch.)",
               "R@1 re-ranked by match only (head)", "R@1 re-ranked by match only (untrained)", "R@1 embedding"]
    rows = []
    for benchmark in summary["results"]:
        exclude = flags.get(benchmark, [])
        for label, method in head_methods(summary, methods, split, benchmark).items():
            def get(path):
                return percent(cell(summary, benchmark, split, method, path))

            rows.append([benchmark, label, get(f"{HEAD}.pairwise_accuracy"), get(f"{UNTRAINED}.pairwise_accuracy"),
                         _gain(summary, benchmark, split, method, f"{HEAD}.pairwise_accuracy",
                               f"{UNTRAINED}.pairwise_accuracy"),
                         percent(pairwise_without(summary, benchmark, split, method, HEAD, exclude)),
                         percent(pairwise_without(summary, benchmark, split, method, UNTRAINED, exclude)),
                         level(cell(summary, benchmark, split, method, f"{HEAD}.chance.pairwise")),
                         get(f"{HEAD}.accuracy"), get(f"{UNTRAINED}.accuracy"),
                         chance_text(summary, benchmark, split, method, HEAD), get(r1), get(f"untrained.{r1}"),
                         get(metric_path("retrieval.{direction}.R@1", direction))])
    if not rows:
        raise ValueError(f"none of {sorted(set(methods.values()))} has a match head on split {split}")
    notes = [
        f"Split {split}; mean ± std over seeds in percent. Head: the method's cross-modal Transformer scoring (x, "
        "caption) pairs; untrained: the same aligner with its Transformer at its seeded initialisation (the reference "
        "a trained head must beat). Δ head − untrained: mean ± standard error of the per-seed differences (the same "
        "run, paired).",
        "Pairwise acc: the true caption scores above one of its negatives (boundary negatives on synthetic data, "
        "other clips' captions on real data), over all (sample, negative) pairs; "
        "chance 50 %. Beats all: above every one of its M negatives; chance E[0.5^M] when the comparisons are "
        "independent (what an untrained head scores) / E[1/(M+1)] when the M + 1 scores are exchangeable.",
        f"R@1 re-ranked by match only: each query's top k by embedding similarity re-ordered by the match score alone "
        f"(the ALBEF protocol: where the head decides alone); R@1 is {DIRECTION_WORDS[direction]}; R@1 embedding is "
        "the ranking it starts from.",
        "– : not measured (no boundary negatives, or no untrained reference in the evaluation).",
    ]
    if flags:
        notes.append(flag_note(flags, averaged="'pairwise acc' and 'beats all'", without_columns=True))
    return Table(title, columns, rows, notes)


def _types(summary: dict, benchmark: str, split: str, methods: list[str]) -> list[str]:
    kinds = []
    for method in methods:
        metrics = summary["results"][benchmark].get(split, {}).get(method, {}).get("metrics", {})
        for name in metrics:
            parts = name.split(".")
            if parts[0] in ("boundary", HEAD) and parts[1] == "per_type" and parts[-1] == "accuracy" \
                    and parts[2] not in kinds:
                kinds.append(parts[2])
    return kinds


def heads_by_type_table(summary: dict, methods: dict, floor: dict, split: str, title: str,
                        flags: dict[str, list[str]] | None = None) -> Table:
    """One row per (benchmark, negative type): chance, the frozen embedding (``floor``: label ->
    method, its first entry) and each head method's trained and untrained pairwise accuracy."""
    flags = flags or {}
    floor_label, floor_method = next(iter(floor.items())) if floor else (None, None)
    labels = [label for label, m in methods.items()
              if any(head_methods(summary, {label: m}, split, b) for b in summary["results"])]
    if not labels:
        raise ValueError(f"none of {sorted(set(methods.values()))} has a match head on split {split}")
    columns = (["Benchmark", "Negative type", "chance"] + ([f"{floor_label} (embedding)"] if floor_label else [])
               + [f"{label} {kind}" for label in labels for kind in ("head", "untrained")])
    rows = []
    for benchmark in summary["results"]:
        involved = [methods[label] for label in labels] + ([floor_method] if floor_method else [])
        for kind in _types(summary, benchmark, split, involved):
            # A pair's chance: the heads' stored pairwise chance level (the same for every type).
            chance = level(cell(summary, benchmark, split, methods[labels[0]], f"{HEAD}.chance.pairwise"))
            row = [benchmark, type_label(flags, benchmark, kind), chance]
            if floor_label:
                row.append(percent(cell(summary, benchmark, split, floor_method, f"boundary.per_type.{kind}.accuracy")))
            for label in labels:
                row += [percent(cell(summary, benchmark, split, methods[label], f"{prefix}.per_type.{kind}.accuracy"))
                        for prefix in (HEAD, UNTRAINED)]
            rows.append(row)
    notes = [f"Split {split}; pairwise boundary accuracy per kind of negative, mean ± std over seeds in percent; "
             "chance 50 %. Embedding: the frozen encoder's cosine with no head; head / untrained: the method's "
             "cross-modal Transformer trained / at its seeded initialisation."]
    if flags:
        notes.append(flag_note(flags))
    return Table(title, columns, rows, notes)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    summary, flags = read_json(snakemake.input.results), read_flags(params.probe_benchmarks, snakemake.input.probes)
    if params.view == "summary":
        table = heads_table(summary, dict(params.methods), params.split, params.direction, params.title, flags)
    else:
        table = heads_by_type_table(summary, dict(params.methods), dict(params.floor), params.split, params.title,
                                    flags)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
