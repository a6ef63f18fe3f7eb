"""How good the frozen encoders are on each benchmark before any head is trained: the zero-shot
floor's retrieval and its boundary accuracy, overall and per kind of boundary negative. A useful
testbed needs encoders that are clearly above chance and clearly below perfect on boundary
negatives (coarsely aligned, like CLIP). Types the probe found at chance at every block are flagged."""

from joblog import redirect_to_log
from paper_common import DIRECTION_WORDS, Marked, Table, cell, chance_text, percent, read_json
from type_flags import FLAG, flag_note, flagged, pairwise_without, read_flags

# (column label, metric path); "{direction}" is filled in. Boundary "all" = the true caption beats
# every one of its negatives; the per-kind and "pairs" columns are pairwise (true vs one negative,
# chance 50 %).
QUALITY_METRICS = (
    ("R@1", "retrieval.{direction}.R@1"),
    ("R@10", "retrieval.{direction}.R@10"),
    ("boundary acc (all negatives)", "boundary.accuracy"),
    ("boundary acc (pairs)", "boundary.pairwise_accuracy"),
)
PER_TYPE = "boundary.per_type.{}.accuracy"


def negative_types(summary: dict, method: str, split: str) -> list[str]:
    """Every kind of boundary negative the method was scored on, in first-seen order."""
    kinds = []
    for splits in summary["results"].values():
        metrics = splits.get(split, {}).get(method, {}).get("metrics", {})
        for name in metrics:
            parts = name.split(".")
            if name.startswith("boundary.per_type.") and parts[-1] == "accuracy" and parts[2] not in kinds:
                kinds.append(parts[2])
    return kinds


def encoder_quality_table(summary: dict, method: str, split: str, direction: str, title: str,
                          flags: dict[str, list[str]] | None = None) -> Table:
    """One row per benchmark on which ``method`` (the zero-shot floor) was evaluated.

    ``flags``: benchmark -> negative types at chance at every block of the probe (type_flags.py):
    their cells are marked, and "(pairs, no †)" pools the other types.
    Raises ValueError when ``method`` has no result on ``split`` (nothing to show).
    """
    flags = flags or {}
    benchmarks = [b for b, splits in summary["results"].items() if method in splits.get(split, {})]
    if not benchmarks:
        raise ValueError(f"method {method!r} has no result on split {split!r}")
    kinds = negative_types(summary, method, split)
    any_flag = any(flags.get(b) for b in benchmarks)
    columns = (["Benchmark"] + [label for label, _ in QUALITY_METRICS[:3]] + ["chance (all negatives)"]
               + [label for label, _ in QUALITY_METRICS[3:]] + (["boundary acc (pairs, no †)"] if any_flag else [])
               + [f"{kind} (pairs)" for kind in kinds])
    rows = []
    for benchmark in benchmarks:
        values = [percent(cell(summary, benchmark, split, method, path.format(direction=direction)))
                  for _, path in QUALITY_METRICS]
        values.insert(3, chance_text(summary, benchmark, split, method, "boundary"))  # beside "all negatives"
        if any_flag:
            values.append(percent(pairwise_without(summary, benchmark, split, method, "boundary",
                                                   flags.get(benchmark, []))))
        for kind in kinds:
            value = percent(cell(summary, benchmark, split, method, PER_TYPE.format(kind)))
            values.append(Marked(value, FLAG) if value is not None and flagged(flags, benchmark, kind) else value)
        rows.append([benchmark] + values)
    notes = [f"The frozen encoders with no head ({method}), split {split}, in percent; R@k is "
             f"{DIRECTION_WORDS[direction]}. Chance pairwise boundary accuracy is 50 %; chance for 'all negatives' "
             "is E[0.5^M] / E[1/(M+1)] over samples with M negatives (independent comparisons / exchangeable scores). "
             "– : no negative of that kind in the benchmark, or no chance level in the evaluation."]
    if flags:
        notes.append(flag_note(flags, benchmarks, "'boundary acc (all negatives)' and '(pairs)'", without_columns=True))
    return Table(title, columns, rows, notes)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    flags = read_flags(params.probe_benchmarks, snakemake.input.probes)
    table = encoder_quality_table(read_json(snakemake.input.results), params.method, params.split, params.direction,
                                  params.title, flags)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
