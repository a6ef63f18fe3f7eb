"""Training curves: a logged loss term against the step, mean ± std over seeds, one panel per
benchmark, one line per method of the main table."""

import logging

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from joblog import redirect_to_log  # noqa: E402
from paper_common import read_json, save_figure  # noqa: E402


def loss_curves(training: dict, methods: dict, key: str) -> dict[str, dict[str, dict]]:
    """``{benchmark: {label: {"steps", "mean", "std"}}}`` of series ``key`` for each method that
    logged it (steps without a value are dropped)."""
    out: dict[str, dict[str, dict]] = {}
    for benchmark, runs in training.get("curves", {}).items():
        for label, method in methods.items():
            curve = runs.get(method)
            if not curve or key not in curve["series"]:
                continue
            series = curve["series"][key]
            rows = [i for i, m in enumerate(series["mean"]) if m is not None]
            out.setdefault(benchmark, {})[label] = {"steps": [curve["steps"][i] for i in rows],
                                                    "mean": [series["mean"][i] for i in rows],
                                                    "std": [series["std"][i] for i in rows]}
    if not out:
        raise ValueError(f"no method of {sorted(methods.values())} logged {key!r}")
    return out


def plot(curves: dict, key: str, png: str, pdf: str) -> None:
    fig, axes = plt.subplots(1, len(curves), figsize=(4.0 * len(curves), 3.3), squeeze=False)
    for ax, (benchmark, lines) in zip(axes[0], curves.items()):
        for label, line in lines.items():
            low = [m - s for m, s in zip(line["mean"], line["std"])]
            high = [m + s for m, s in zip(line["mean"], line["std"])]
            (drawn,) = ax.plot(line["steps"], line["mean"], label=label, linewidth=1.0)
            ax.fill_between(line["steps"], low, high, alpha=0.2, color=drawn.get_color())
        ax.set_title(benchmark)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel(f"{key} (mean ± std over seeds)")
    axes[0][-1].legend(fontsize=7)
    save_figure(fig, png, pdf)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    curves = loss_curves(read_json(snakemake.input[0]), dict(params.methods), params.key)
    plot(curves, params.key, snakemake.output.png, snakemake.output.pdf)
    logging.info("plotted %s on %s", params.key, sorted(curves))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
