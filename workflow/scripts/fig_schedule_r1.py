"""R@1 per curriculum schedule: bars of the seed mean ± std, with each seed's value as a dot,
one panel per benchmark the schedules ran on."""

import logging

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from joblog import redirect_to_log  # noqa: E402
from paper_common import cell, metric_path, read_json, save_figure  # noqa: E402


def schedule_bars(summary: dict, group: dict, split: str, metric: str) -> dict[str, list[dict]]:
    """``{benchmark: [{"label", "mean", "std", "values"} in percent]}`` for every benchmark where
    each schedule of ``group`` (label -> method) has ``metric`` on ``split``."""
    out = {}
    for benchmark in summary["results"]:
        cells = [(label, cell(summary, benchmark, split, method, metric)) for label, method in group.items()]
        if all(stats is not None for _, stats in cells):
            out[benchmark] = [{"label": label, "mean": 100 * stats["mean"], "std": 100 * stats["std"],
                               "values": [100 * v for v in stats["values"]]} for label, stats in cells]
    if not out:
        raise ValueError(f"no benchmark has {metric} on {split} for every schedule of {sorted(group)}")
    return out


def plot(bars: dict, ylabel: str, png: str, pdf: str) -> None:
    fig, axes = plt.subplots(1, len(bars), figsize=(3.6 * len(bars), 3.3), squeeze=False)
    for ax, (benchmark, entries) in zip(axes[0], bars.items()):
        positions = range(len(entries))
        ax.bar(positions, [e["mean"] for e in entries], yerr=[e["std"] for e in entries], capsize=4, alpha=0.7)
        for position, entry in zip(positions, entries):
            ax.plot([position] * len(entry["values"]), entry["values"], "k.", markersize=4)
        ax.set_xticks(list(positions), [e["label"] for e in entries])
        ax.set_title(benchmark)
    axes[0][0].set_ylabel(ylabel)
    save_figure(fig, png, pdf)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    metric = metric_path("retrieval.{direction}.R@1", params.direction)
    bars = schedule_bars(read_json(snakemake.input[0]), dict(params.group), params.split, metric)
    plot(bars, f"R@1 (%), split {params.split}", snakemake.output.png, snakemake.output.pdf)
    logging.info("plotted R@1 per schedule on %s", sorted(bars))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
