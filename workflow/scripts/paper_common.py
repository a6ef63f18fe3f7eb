"""Shared pieces of the paper stage: the results summary's lookups, seed statistics of
comparisons, and one table written as Markdown, CSV, LaTeX and HTML.

The summary (``aggregate_results.py``) holds, per benchmark / split / method, the seed
statistics of every metric under a dotted path, e.g. ``retrieval.mean.R@1`` (the mean of the
two retrieval directions) or ``multiple_choice.accuracy``; values are fractions in [0, 1].
Tables show them in percent, like the paper.
"""

import csv
import html
import json
import logging
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from bacl.metrics import mean_std

# How the paper's headline columns map onto our benchmarks and metrics (our choice; the paper's
# numbers are in paper_claims.PAPER_TABLE under the same keys). "{direction}" is the retrieval
# direction the tables report (RETRIEVAL_DIRECTIONS).
MAIN_COLUMNS = (
    {"key": "image_r1", "label": "Image R@1", "benchmark": "image_text", "metric": "retrieval.{direction}.R@1"},
    {"key": "image_map", "label": "Image mAP", "benchmark": "image_text", "metric": "retrieval.{direction}.mAP"},
    {"key": "video_r1", "label": "Video R@1", "benchmark": "video_text", "metric": "retrieval.{direction}.R@1"},
    {"key": "audio_r1", "label": "Audio R@1", "benchmark": "audio_text", "metric": "retrieval.{direction}.R@1"},
    {"key": "audio_video_acc", "label": "Audio-video Acc", "benchmark": "audio_video_text",
     "metric": "multiple_choice.accuracy"},
)
# Retrieval through the match head (the combined re-ranking) beside each R@1 column, for the methods
# with a cross-modal Transformer ("–" for the others): ours only, the paper reports one R@1.
RERANKED_COLUMNS = {column["key"]: {**column, "label": f"{column['label']} re-ranked",
                                    "metric": "retrieval_reranked_combined.{direction}.R@1"}
                    for column in MAIN_COLUMNS if column["metric"] == "retrieval.{direction}.R@1"}
# What each benchmark stands in for at the CPU scale (the paper's dataset of its column).
STANDS_IN_FOR = {"image_text": "LAION-400M", "video_text": "WebVid", "audio_text": "WavText5K",
                 "audio_video_text": "VAST-27M"}
# "mean" is the per-seed average of text->x and x->text (computed by aggregate_results.py).
RETRIEVAL_DIRECTIONS = ("mean", "text_to_image", "image_to_text")
DIRECTION_WORDS = {"mean": "the mean of text-to-x and x-to-text", "text_to_image": "text-to-x",
                   "image_to_text": "x-to-text"}
MISSING = "–"  # a cell the configuration did not run, or the paper did not report


def data_words(benchmarks: list[str], real: list[str]) -> str:
    """What our benchmarks are, for a table note: synthetic stand-ins or real data (``real``: the
    benchmarks read from real datasets, REAL_BENCHMARKS of realdata.smk)."""
    synthetic = [b for b in benchmarks if b not in real]
    parts = []
    if synthetic:
        parts.append("synthetic boundary benchmarks (" + ", ".join(
            f"{b} stands in for {STANDS_IN_FOR[b]}" for b in synthetic if b in STANDS_IN_FOR) + ")")
    if [b for b in benchmarks if b in real]:
        parts.append("real data read from the config's local paths (" + ", ".join(b for b in benchmarks if b in real)
                     + "; the datasets named under data.<benchmark>)")
    return " and ".join(parts) or "no benchmark"


def choice_words(benchmark: str, real: list[str]) -> str:
    """What the multiple-choice options of ``benchmark`` are: boundary negatives (synthetic) or
    captions of other clips (real data has no boundary negatives)."""
    return "captions of other clips (real data: no boundary negatives)" if benchmark in real else \
        "its boundary negatives"


class MeanStd(NamedTuple):
    """A table cell: mean and sample std over ``n`` seeds (already in display units)."""

    mean: float
    std: float
    n: int


class Marked(NamedTuple):
    """A table cell with a mark after its value, e.g. a negative type at chance in the probe ("†")."""

    value: object
    mark: str


def metric_path(template: str, direction: str) -> str:
    """A metric's dotted path with the retrieval ``direction`` filled in."""
    if direction not in RETRIEVAL_DIRECTIONS:
        raise ValueError(f"direction={direction!r} is not one of {RETRIEVAL_DIRECTIONS}")
    return template.format(direction=direction)


def save_figure(fig, png, pdf) -> None:
    """Write ``fig`` as PNG and PDF (the PDF without a timestamp: same inputs, same bytes), then close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(png, dpi=150)
    fig.savefig(pdf, metadata={"CreationDate": None})
    plt.close(fig)


def read_json(path) -> dict:
    with open(path) as handle:
        return json.load(handle)


def write_json(path, payload) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Key order is kept: the results summary lists benchmarks and methods in the config's order.
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")


def cell(summary: dict, benchmark: str, split: str, method: str, metric: str) -> dict | None:
    """``{"mean", "std", "n", "values", "seeds"}`` of one metric (``values`` in the order of the
    method's ``seeds``), or None where it was not measured."""
    try:
        entry = summary["results"][benchmark][split][method]
        return {**entry["metrics"][metric], "seeds": entry["seeds"]}
    except KeyError:
        return None


def percent(stats: dict | None) -> MeanStd | None:
    """A summary cell (fractions) as a MeanStd in percent."""
    return None if stats is None else MeanStd(100 * stats["mean"], 100 * stats["std"], stats["n"])


def level(stats: dict | None) -> float | None:
    """A level that does not vary with the seed (a chance level of the split), in percent."""
    return None if stats is None else 100 * stats["mean"]


def chance_text(summary: dict, benchmark: str, split: str, method: str, section: str) -> str | None:
    """"a / b": the chance levels of "the positive beats all M negatives" in ``section`` (e.g.
    ``boundary_match_head``), in percent: E[0.5^M] (independent comparisons) / E[1/(M+1)]
    (exchangeable scores); None where the evaluation gives none."""
    independent = cell(summary, benchmark, split, method, f"{section}.chance.accuracy")
    exchangeable = cell(summary, benchmark, split, method, f"{section}.chance.accuracy_exchangeable")
    if independent is None or exchangeable is None:
        return None
    return f"{100 * independent['mean']:.1f} / {100 * exchangeable['mean']:.1f}"


def contrast(terms: list[tuple[float, dict]]) -> dict:
    """A linear combination sum_i w_i * mean_i of seed means, with its standard error.

    ``terms``: (weight w_i, cell with mean, std, n; optionally ``values`` and ``seeds``). When the
    cells share two or more seeds (the seed fixes the data order, so runs with one seed are paired),
    the contrast is taken on those common seeds: estimate mean(d) and SE std(d) / sqrt(n) of the
    per-seed contrasts d_s = sum_i w_i x_is ("paired"; a method with 5 seeds against one with 3 is
    compared on the 3). Otherwise the seed means are treated as independent: estimate sum_i w_i
    mean_i, SE = sqrt(sum_i w_i^2 std_i^2 / n_i). Returns ``{"estimate", "se", "n", "paired"}``.
    """
    if not terms:
        raise ValueError("terms must hold at least one (weight, cell) pair")
    for weight, stats in terms:
        if not isinstance(stats, dict) or not {"mean", "std", "n"} <= set(stats) or stats["n"] < 1:
            raise ValueError(f"each term needs a cell with mean, std and n >= 1, got {stats!r} (weight {weight})")
    by_seed = [dict(zip(stats.get("seeds") or (), stats.get("values") or ())) for _, stats in terms]
    common = sorted(set.intersection(*(set(values) for values in by_seed)))
    if len(common) >= 2:
        per_seed = [sum(weight * values[seed] for (weight, _), values in zip(terms, by_seed)) for seed in common]
        mean, spread = mean_std(per_seed)
        return {"estimate": mean, "se": spread / math.sqrt(len(per_seed)), "n": len(per_seed), "paired": True}
    estimate = sum(weight * stats["mean"] for weight, stats in terms)
    se = math.sqrt(sum(weight ** 2 * stats["std"] ** 2 / stats["n"] for weight, stats in terms))
    return {"estimate": estimate, "se": se, "n": min(stats["n"] for _, stats in terms), "paired": False}


def merge_terms(terms: list[tuple]) -> list[tuple]:
    """(weight, key) pairs with each key once (weights summed, zeros dropped), first-seen order.

    A key (a method, or a (method, metric) pair) that appears twice in a contrast is one random
    mean, not two independent ones; its weights must be added before the standard error is computed.
    """
    merged: dict = {}
    for weight, key in terms:
        merged[key] = merged.get(key, 0.0) + weight
    return [(weight, key) for key, weight in merged.items() if weight != 0]


def git_commit(cwd=".") -> str:
    """The repository's HEAD commit, or "unknown" outside a git checkout."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


@dataclass
class Table:
    """A table: ``rows`` of values that are None (missing), str, float or MeanStd."""

    title: str
    columns: list[str]
    rows: list[list]
    notes: list[str] = field(default_factory=list)
    digits: int = 1  # one decimal, like the paper's table

    def __post_init__(self):
        bad = [i for i, row in enumerate(self.rows) if len(row) != len(self.columns)]
        if bad:
            raise ValueError(f"rows {bad} do not have {len(self.columns)} values like columns {self.columns}")

    def text(self, value) -> str:
        if isinstance(value, Marked):
            return self.text(value.value) + value.mark
        if value is None:
            return MISSING
        if isinstance(value, MeanStd):
            return f"{value.mean:.{self.digits}f} ± {value.std:.{self.digits}f}"
        if isinstance(value, float):
            return f"{value:.{self.digits}f}"
        return str(value)

    def markdown(self) -> str:
        def escape(text: str) -> str:  # a "|" inside a cell would end it
            return text.replace("|", "\\|")

        lines = [f"### {self.title}", "", "| " + " | ".join(map(escape, self.columns)) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(escape(self.text(v)) for v in row) + " |" for row in self.rows]
        return "\n".join(lines + [""] + [f"{note}  " for note in self.notes]) + "\n"

    def csv_rows(self) -> list[list]:
        """Header and rows; a column holding MeanStd cells becomes "<name> mean", "<name> std", and
        one holding Marked cells gets a "<name> mark" column after it."""
        plain = [[v.value if isinstance(v, Marked) else v for v in row] for row in self.rows]
        split = [any(isinstance(row[i], MeanStd) for row in plain) for i in range(len(self.columns))]
        marked = [any(isinstance(row[i], Marked) for row in self.rows) for i in range(len(self.columns))]
        header = []
        for name, is_split, has_mark in zip(self.columns, split, marked):
            header += [f"{name} mean", f"{name} std"] if is_split else [name]
            header += [f"{name} mark"] if has_mark else []
        body = []
        for row, values in zip(self.rows, plain):
            out = []
            for value, original, is_split, has_mark in zip(values, row, split, marked):
                if is_split:
                    out += [value.mean, value.std] if isinstance(value, MeanStd) else ["" if value is None else value, ""]
                else:
                    out.append("" if value is None else value)
                if has_mark:
                    out.append(original.mark.strip() if isinstance(original, Marked) else "")
            body.append(out)
        return [header, *body]

    def latex(self) -> str:
        def escape(text: str) -> str:
            for old, new in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                             ("±", r"$\pm$"), ("–", "--"), ("→", r"$\to$"), ("λ", r"$\lambda$"), ("β", r"$\beta$"),
                             ("Δ", r"$\Delta$"), ("†", r"\textdagger{}"), ("η", r"$\eta$"), ("ρ", r"$\rho$"),
                             ("≥", r"$\geq$"), ("≤", r"$\leq$"), ("∪", r"$\cup$"), ("−", "-")):
                text = text.replace(old, new)
            return text

        lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{escape(self.title)}}}",
                 r"\begin{tabular}{l" + "r" * (len(self.columns) - 1) + "}", r"\toprule",
                 " & ".join(escape(c) for c in self.columns) + r" \\", r"\midrule"]
        lines += [" & ".join(escape(self.text(v)) for v in row) + r" \\" for row in self.rows]
        lines += [r"\bottomrule", r"\end{tabular}"]
        lines += [r"\par\footnotesize " + escape(note) for note in self.notes]
        return "\n".join(lines + [r"\end{table}"]) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(self.text(v))}</td>" for v in row) + "</tr>"
                       for row in self.rows)
        notes = "".join(f"<p>{html.escape(note)}</p>" for note in self.notes)
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
                "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
                f"</style></head><body><h3>{html.escape(self.title)}</h3><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table>{notes}</body></html>\n")

    def write(self, markdown_path, csv_path, latex_path, html_path) -> None:
        """All four renderings (the paths of one table's outputs)."""
        for path in (markdown_path, csv_path, latex_path, html_path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown_path).write_text(self.markdown())
        with open(csv_path, "w", newline="") as handle:
            csv.writer(handle).writerows(self.csv_rows())
        Path(latex_path).write_text(self.latex())
        Path(html_path).write_text(self.html())

    def write_outputs(self, outputs) -> None:
        """All four renderings to a table rule's outputs (named md, csv, tex, html, as the rules'
        ``table_outputs`` declares them), logged."""
        self.write(outputs.md, outputs.csv, outputs.tex, outputs.html)
        logging.info("wrote %s (%d rows)", outputs.md, len(self.rows))
