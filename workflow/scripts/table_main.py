"""The headline table in the paper's shape (rows: methods; columns: image R@1 / mAP, video R@1,
audio R@1, audio-video Acc), ours as mean ± std over seeds in percent, optionally with the
paper's numbers beside each column. The same script makes the held-out-split table."""

from joblog import redirect_to_log
from paper_claims import PAPER_DATASETS, PAPER_SOURCE, PAPER_TABLE
from paper_common import DIRECTION_WORDS, MAIN_COLUMNS, Table, cell, metric_path, percent, read_json


def main_table(summary: dict, rows: dict, split: str, direction: str, with_paper: bool, title: str) -> Table:
    """The table of ``rows`` (label -> method) on ``split``.

    Args:
        summary: the results summary (aggregate_results.py).
        rows: ordered row label -> method; labels that are keys of PAPER_TABLE get its numbers.
        with_paper: add a column with the paper's number beside each of ours.
    """
    if not rows:
        raise ValueError("rows is empty: the config's tables.main names no method")
    columns = ["Method"]
    for column in MAIN_COLUMNS:
        columns.append(f"{column['label']} (ours, {column['benchmark']})")
        if with_paper:
            columns.append(f"{column['label']} (paper, {PAPER_DATASETS[column['key']]})")
    body, seeds = [], set()
    for label, method in rows.items():
        row = [label]
        for column in MAIN_COLUMNS:
            stats = cell(summary, column["benchmark"], split, method, metric_path(column["metric"], direction))
            seeds |= {stats["n"]} if stats else set()
            row.append(percent(stats))
            if with_paper:
                row.append(PAPER_TABLE.get(label, {}).get(column["key"]))
        body.append(row)
    notes = [
        f"Ours: synthetic benchmarks (image_text stands in for LAION-400M, video_text for WebVid, audio_text for "
        f"WavText5K, audio_video_text for VAST-27M), split {split}, mean ± std over {_seed_words(seeds)}, in percent.",
        f"Retrieval by embedding similarity (re-ranking by a match head: see reranked.md); R@1 and mAP are "
        f"{DIRECTION_WORDS[direction]}. Audio-video Acc: multiple-choice accuracy of the true caption against "
        "its boundary negatives.",
        "– : not run in this configuration (ours) or not reported (paper).",
    ]
    if with_paper:
        notes.append(f"Paper columns: {PAPER_SOURCE}. They are not comparable with ours in magnitude.")
    return Table(title, columns, body, notes)


def _seed_words(counts: set[int]) -> str:
    if not counts:
        return "seeds (no results)"
    low, high = min(counts), max(counts)
    return f"{low} seed{'s' if low > 1 else ''}" if low == high else f"{low}–{high} seeds"


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    rows = {**params.floor, **params.rows}
    table = main_table(read_json(snakemake.input[0]), rows, params.split, params.direction, params.with_paper,
                       params.title)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
