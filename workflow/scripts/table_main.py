"""The headline table in the paper's shape (rows: methods; columns: image R@1 / mAP, video R@1,
audio R@1, audio-video Acc), ours as mean ± std over seeds in percent, optionally with the
paper's numbers beside each column, and beside each R@1 ours re-ranked by the match head for the
methods with a cross-modal Transformer. The same script makes the held-out-split table."""

from joblog import redirect_to_log
from paper_claims import PAPER_DATASETS, PAPER_SOURCE, PAPER_TABLE
from paper_common import (DIRECTION_WORDS, MAIN_COLUMNS, RERANKED_COLUMNS, Marked, Table, cell, choice_words,
                          data_words, metric_path, percent, read_json)
from type_flags import flag_note, read_flags

BEYOND = " ‡"  # marks a row that is not the paper's method (e.g. BNS with the sampling correction)


def main_table(summary: dict, rows: dict, split: str, direction: str, with_paper: bool, title: str,
               real: list[str] = (), beyond_paper: list[str] = (), flags: dict[str, list[str]] | None = None) -> Table:
    """The table of ``rows`` (label -> method) on ``split``.

    Args:
        summary: the results summary (aggregate_results.py).
        rows: ordered row label -> method; labels that are keys of PAPER_TABLE get its numbers.
        with_paper: add a column with the paper's number beside each of ours.
        real: benchmarks read from real data (the notes say what each column measures there).
        beyond_paper: row labels that go beyond the paper (marked ‡, with a note).
        flags: benchmark -> negative types the probe found at chance (type_flags.py): the note
            says which of them the multiple-choice accuracy averages over.
    """
    if not rows:
        raise ValueError("rows is empty: the config's tables.main names no method")
    columns = ["Method"]
    for column in MAIN_COLUMNS:
        columns.append(f"{column['label']} (ours, {column['benchmark']})")
        if column["key"] in RERANKED_COLUMNS:
            columns.append(f"{RERANKED_COLUMNS[column['key']]['label']} (ours, {column['benchmark']})")
        if with_paper:
            columns.append(f"{column['label']} (paper, {PAPER_DATASETS[column['key']]})")
    body, seeds = [], set()
    for label, method in rows.items():
        row = [Marked(label, BEYOND) if label in beyond_paper else label]
        for column in MAIN_COLUMNS:
            stats = cell(summary, column["benchmark"], split, method, metric_path(column["metric"], direction))
            seeds |= {stats["n"]} if stats else set()
            row.append(percent(stats))
            if column["key"] in RERANKED_COLUMNS:
                row.append(percent(cell(summary, column["benchmark"], split, method,
                                        metric_path(RERANKED_COLUMNS[column["key"]]["metric"], direction))))
            if with_paper:
                row.append(PAPER_TABLE.get(label, {}).get(column["key"]))
        body.append(row)
    benchmarks = [column["benchmark"] for column in MAIN_COLUMNS if column["benchmark"] in summary["results"]]
    notes = [
        f"Ours: {data_words(list(dict.fromkeys(benchmarks)), list(real))}, split {split}, mean ± std over "
        f"{_seed_words(seeds)}, in percent.",
        f"R@1 and mAP: retrieval by embedding similarity, {DIRECTION_WORDS[direction]}. R@1 re-ranked: each query's "
        "top k re-scored by the method's cross-modal Transformer combined with the embedding (log σ(match logit) + "
        "logit scale · cosine; reranked.md), only for methods with one. Audio-video Acc: multiple-choice accuracy of "
        f"the true caption against {choice_words('audio_video_text', list(real))}.",
        "– : not run in this configuration, no cross-modal Transformer (re-ranked), or not reported (paper).",
    ]
    choice = [column["benchmark"] for column in MAIN_COLUMNS if column["metric"].startswith("multiple_choice")]
    if flags and any(flags.get(b) for b in choice):
        notes.append(flag_note(flags, choice, "Audio-video Acc"))
    if with_paper:
        notes.append(f"Paper columns: {PAPER_SOURCE}. They are not comparable with ours in magnitude.")
    if any(label in beyond_paper for label in rows):
        notes.append(f"{BEYOND.strip()} beyond the paper: BNS with a sampling correction (the drawn negatives in "
                     "their own softmax, each logit offset by McFadden's log-probability correction of the "
                     "Gumbel-top-k draw: exact for the curriculum term, an approximation with the policy; config "
                     "sampling_correction: true), which the theory simulations motivate; not the paper's method.")
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
    table = main_table(read_json(snakemake.input.results), rows, params.split, params.direction, params.with_paper,
                       params.title, list(params.real_benchmarks), list(params.beyond_paper),
                       read_flags(params.probe_benchmarks, snakemake.input.probes))
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
