"""Training curves: a logged loss term and, where the runs validated, the validation curves (val
R@1 and the match head's pairwise boundary accuracy) against the step, mean ± std over seeds; one
column per benchmark, one row per series, one line per method of the main table."""

import logging

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from joblog import redirect_to_log  # noqa: E402
from paper_common import read_json, save_figure  # noqa: E402

# Validation series (fractions in the log) and their axis labels (shown in percent).
VALIDATION_SERIES = {"val_r1": "val R@1 (%)", "val_head_pairwise": "val match head,\npairwise boundary acc (%)"}


def loss_curves(training: dict, methods: dict, key: str, scale: float = 1.0) -> dict[str, dict[str, dict]]:
    """``{benchmark: {label: {"steps", "mean", "std"}}}`` of series ``key`` (times ``scale``) for
    each method that logged it (steps without a value are dropped)."""
    out: dict[str, dict[str, dict]] = {}
    for benchmark, runs in training.get("curves", {}).items():
        for label, method in methods.items():
            curve = runs.get(method)
            if not curve or key not in curve["series"]:
                continue
            series = curve["series"][key]
            rows = [i for i, m in enumerate(series["mean"]) if m is not None]
            out.setdefault(benchmark, {})[label] = {"steps": [curve["steps"][i] for i in rows],
                                                    "mean": [scale * series["mean"][i] for i in rows],
                                                    "std": [scale * series["std"][i] for i in rows]}
    if not out:
        raise ValueError(f"no method of {sorted(methods.values())} logged {key!r}")
    return out


def figure_rows(training: dict, methods: dict, key: str) -> dict[str, dict]:
    """{row label: curves}: ``key`` first, then each validation series some method logged."""
    rows = {f"{key} (mean ± std over seeds)": loss_curves(training, methods, key)}
    for name, label in VALIDATION_SERIES.items():
        try:
            rows[label] = loss_curves(training, methods, name, scale=100.0)
        except ValueError:  # no run validated (no val split): the loss row only
            continue
    return rows


def plot(rows: dict[str, dict], png: str, pdf: str) -> None:
    benchmarks = list(dict.fromkeys(b for curves in rows.values() for b in curves))
    labels = list(dict.fromkeys(label for curves in rows.values() for lines in curves.values() for label in lines))
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}  # one colour per method in every panel
    fig, axes = plt.subplots(len(rows), len(benchmarks), figsize=(4.0 * len(benchmarks), 3.0 * len(rows)),
                             squeeze=False)
    for row, (ylabel, curves) in zip(axes, rows.items()):
        for ax, benchmark in zip(row, benchmarks):
            if benchmark not in curves:  # e.g. no run of this benchmark validated (no val split)
                ax.text(0.5, 0.5, f"{benchmark}: not logged", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            for label, line in curves[benchmark].items():
                low = [m - s for m, s in zip(line["mean"], line["std"])]
                high = [m + s for m, s in zip(line["mean"], line["std"])]
                ax.plot(line["steps"], line["mean"], label=label, linewidth=1.0, color=colours[label])
                ax.fill_between(line["steps"], low, high, alpha=0.2, color=colours[label])
            ax.set_title(benchmark, fontsize=9)
            ax.set_xlabel("step")
        row[0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=7)
    save_figure(fig, png, pdf)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    rows = figure_rows(read_json(snakemake.input[0]), dict(params.methods), params.key)
    plot(rows, snakemake.output.png, snakemake.output.pdf)
    logging.info("plotted %s", {label: sorted(curves) for label, curves in rows.items()})


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
