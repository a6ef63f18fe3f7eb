"""Retrieval re-ranked by a match head (the ALBEF protocol) beside retrieval by embedding similarity,
for the methods that have a match head, and boundary accuracy by either score."""

from joblog import redirect_to_log
from paper_common import DIRECTION_WORDS, Table, cell, metric_path, percent, read_json

# (column label, metric path) per benchmark; "{direction}" is filled in.
RERANK_METRICS = (
    ("R@1 embedding", "retrieval.{direction}.R@1"),
    ("R@1 re-ranked", "retrieval_reranked.{direction}.R@1"),
    ("boundary acc embedding", "boundary.accuracy"),
    ("boundary acc match head", "boundary_match_head.accuracy"),
)


def reranked_table(summary: dict, methods: dict, split: str, direction: str, title: str) -> Table:
    """Rows: the entries of ``methods`` (label -> method) with a re-ranked result on any benchmark.

    Raises ValueError when no method of ``methods`` has a match head (nothing to show).
    """
    rows_with_head = {label: method for label, method in methods.items()
                      if any(method in splits.get(split, {}) and
                             cell(summary, b, split, method, metric_path(RERANK_METRICS[1][1], direction)) is not None
                             for b, splits in summary["results"].items())}
    if not rows_with_head:
        raise ValueError(f"none of {sorted(set(methods.values()))} has a match head (retrieval_reranked) on {split}")
    benchmarks = [b for b in summary["results"]
                  if any(cell(summary, b, split, m, metric_path(RERANK_METRICS[1][1], direction)) is not None
                         for m in rows_with_head.values())]
    columns = ["Method"] + [f"{b} {label}" for b in benchmarks for label, _ in RERANK_METRICS]
    rows = [[label] + [percent(cell(summary, b, split, method, metric_path(path, direction)))
                       for b in benchmarks for _, path in RERANK_METRICS]
            for label, method in rows_with_head.items()]
    k = {cell(summary, b, split, m, "retrieval_reranked.k")["mean"] for b in benchmarks for m in rows_with_head.values()
         if cell(summary, b, split, m, "retrieval_reranked.k") is not None}
    notes = [f"Split {split}; mean ± std over seeds in percent; R@1 is {DIRECTION_WORDS[direction]}.",
             f"Re-ranked: each query's top {', '.join(f'{v:g}' for v in sorted(k))} by embedding similarity re-scored "
             "by the method's match head (cross-modal Transformer). Boundary acc: the true caption scores above "
             "all of its boundary negatives."]
    return Table(title, columns, rows, notes)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    table = reranked_table(read_json(snakemake.input[0]), dict(params.methods), params.split, params.direction,
                           params.title)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
