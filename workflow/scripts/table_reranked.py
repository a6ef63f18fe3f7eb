"""Retrieval that uses the match head, beside retrieval by embedding similarity, for the methods that
have a cross-modal Transformer: each query's top k by embedding similarity re-scored by the
combined score log σ(match logit) + logit scale · cosine (the product of the two trained models'
probabilities: what the main table's re-ranked column shows) and by the match score alone (the ALBEF
protocol), each beside the same aligner with its Transformer untrained."""

from joblog import redirect_to_log
from paper_common import DIRECTION_WORDS, MeanStd, Table, cell, contrast, metric_path, percent, read_json
from table_heads import head_methods

# (column label, metric path); "{direction}" is filled in.
RERANK_METRICS = (
    ("R@1 embedding", "retrieval.{direction}.R@1"),
    ("R@1 re-ranked, combined (head)", "retrieval_reranked_combined.{direction}.R@1"),
    ("R@1 re-ranked, combined (untrained)", "untrained.retrieval_reranked_combined.{direction}.R@1"),
    ("R@1 re-ranked, match only (head)", "retrieval_reranked.{direction}.R@1"),
    ("R@1 re-ranked, match only (untrained)", "untrained.retrieval_reranked.{direction}.R@1"),
)


def reranked_table(summary: dict, methods: dict, split: str, direction: str, title: str) -> Table:
    """One row per (benchmark, entry of ``methods`` (label -> method) with a match head there).

    Raises ValueError when no method of ``methods`` has a match head (nothing to show).
    """
    paths = [(label, metric_path(path, direction)) for label, path in RERANK_METRICS]
    embedding, combined = paths[0][1], paths[1][1]
    columns = ["Benchmark", "Method"] + [label for label, _ in paths] + ["Δ combined − embedding"]
    rows, ks = [], set()
    for benchmark in summary["results"]:
        for label, method in head_methods(summary, methods, split, benchmark).items():
            cells = [cell(summary, benchmark, split, method, path) for _, path in paths]
            gain = None
            if cells[0] is not None and cells[1] is not None:
                result = contrast([(100, cells[1]), (-100, cells[0])])
                gain = MeanStd(result["estimate"], result["se"], result["n"])
            rows.append([benchmark, label] + [percent(c) for c in cells] + [gain])
            k = cell(summary, benchmark, split, method, "retrieval_reranked.k")
            ks |= {k["mean"]} if k else set()
    if not rows:
        raise ValueError(f"none of {sorted(set(methods.values()))} has a match head (retrieval_reranked) on {split}")
    notes = [f"Split {split}; mean ± std over seeds in percent; R@1 is {DIRECTION_WORDS[direction]}.",
             f"Re-ranked: each query's top {', '.join(f'{v:g}' for v in sorted(ks))} by embedding similarity re-scored "
             "by the method's cross-modal Transformer: combined = log σ(match logit) + logit scale · cosine (the "
             "head's and the embedding's log-probabilities added, no weight chosen); match only = the match logit "
             "alone. Untrained: the same aligner (trained embedding) with its Transformer at its seeded "
             "initialisation. Δ: mean ± standard error of the per-seed differences (the same run, paired).",
             "– : not measured (e.g. no untrained reference in the evaluation)."]
    return Table(title, columns, rows, notes)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    table = reranked_table(read_json(snakemake.input[0]), dict(params.methods), params.split, params.direction,
                           params.title)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
