"""The cost figure, benchmarks/results/cost.png and .pdf, from the benchmarks' JSON results.

Panels (each drawn only when its benchmark has been run): BACL's step-time ratio and its peak
memory ratio against batch size (solid: over the same aligner with the same cross-modal
Transformer, the issue's goal line at 1.05; dashed: over the plain aligner); the candidate
search's time per query batch against bank size; epoch time from the feature cache vs with
encoder forward passes.

    .venv/bin/python benchmarks/plot.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DETAILS, RESULTS  # noqa: E402

GOAL = 1.05  # the goal for both ratios at batch 256
COLOURS = {"clip": "tab:blue", "blip": "tab:green", "m3jepa": "tab:red",
           "exact": "tab:blue", "faiss-flat": "tab:orange", "faiss-ivf": "tab:green", "faiss-hnsw": "tab:purple"}


def load(results: Path, name: str) -> dict | None:
    path = results / DETAILS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _ratios(ax, step: dict, key: str, label: str) -> None:
    for aligner in dict.fromkeys(r["aligner"] for r in step["ratios"]):
        rows = sorted((r for r in step["ratios"] if r["aligner"] == aligner), key=lambda r: r["batch_size"])
        sizes = [r["batch_size"] for r in rows]

        def value(r, which):
            v = r[f"{key}_{which}"]
            return v["ratio"] if isinstance(v, dict) else v

        colour = COLOURS.get(aligner)
        ax.plot(sizes, [value(r, "vs_same_transformer") for r in rows], "o-", color=colour,
                label=f"{aligner}+BACL / {aligner} with the same Transformer")
        ax.plot(sizes, [value(r, "vs_plain") for r in rows], "s--", color=colour, alpha=0.6,
                label=f"{aligner}+BACL / plain {aligner}")
    ax.axhline(GOAL, color="black", linewidth=0.8, linestyle=":", label=f"goal {GOAL}x")
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel=f"{label} ratio")
    ax.set_xticks(sorted({r["batch_size"] for r in step["ratios"]}))
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _bank(ax, bank: dict) -> None:
    data = "clustered" if any(r["data"] == "clustered" for r in bank["measurements"]) else \
        bank["measurements"][0]["data"]
    for kind in dict.fromkeys(r["kind"] for r in bank["measurements"]):
        rows = sorted((r for r in bank["measurements"] if r["kind"] == kind and r["data"] == data),
                      key=lambda r: r["bank_size"])
        ax.plot([r["bank_size"] for r in rows], [1e3 * r["query_batch_seconds"] for r in rows], "o-",
                color=COLOURS.get(kind), label=kind)
    ax.set(xscale="log", yscale="log", xlabel="bank size N",
           ylabel=f"ms per query batch ({bank['queries']} anchors, k={bank['k']})",
           title=f"BNS candidate search ({data} bank)")
    ax.legend(fontsize=7)


def _cache(ax, cache: dict) -> None:
    epoch = cache["epoch_seconds"]
    bars = [("CLIP\ncache", epoch["clip_from_cache"], False), ("CLIP\nencoder", epoch["clip_with_encoder"], False),
            ("CLIP+BACL\ncache", epoch["clip_bacl_from_cache"], False),
            ("CLIP+BACL\nencoder (est.)", cache["clip_bacl_with_encoder_estimate_seconds"], True)]
    for i, (label, seconds, estimate) in enumerate(bars):
        ax.bar(i, seconds, color="tab:gray" if estimate else "tab:blue", hatch="//" if estimate else None)
        ax.text(i, seconds, f"{seconds:.3g} s", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7)
    ax.set(yscale="log", ylabel=f"seconds per epoch ({cache['samples']} samples, batch {cache['batch_size']})",
           title="feature cache vs encoder forward passes")


def main(argv=None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the benchmarks wrote (default "
                        "benchmarks/results); the figure goes there too")
    args = parser.parse_args(argv)
    step, bank, cache = (load(args.results, n) for n in ("step_cost", "bank_scaling", "cache_effect"))
    panels = [p for p in (("time", step), ("memory", step), ("bank", bank), ("cache", cache)) if p[1] is not None]
    if not panels:
        raise ValueError(f"no benchmark results under {args.results / DETAILS}: run the benchmarks first")
    columns = min(2, len(panels))  # a 2 x 2 grid at most: readable at page width
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.5 * columns, 4.2 * rows), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (kind, data) in zip(axes.flat, panels):
        if kind in ("time", "memory"):
            _ratios(ax, data, kind, "step time" if kind == "time" else "peak memory")
            ax.set_title(f"BACL step {'time' if kind == 'time' else 'peak memory'} ({data['environment']['device']})")
            if kind == "time":
                ax.legend(fontsize=6)
        elif kind == "bank":
            _bank(ax, data)
        else:
            _cache(ax, data)
    fig.tight_layout()
    written = []
    for suffix in ("png", "pdf"):
        path = args.results / f"cost.{suffix}"
        fig.savefig(path, dpi=150, metadata={"CreationDate": None} if suffix == "pdf" else None)
        written.append(path)
    plt.close(fig)
    return written


if __name__ == "__main__":
    main()
