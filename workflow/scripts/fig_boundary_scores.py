"""Boundary scores of the negatives BNS drew, over training: the 10th-90th percentile band, the
median and the mean, one panel per schedule, with alpha(eta) on a second axis (easy -> hard)."""

import logging

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from joblog import redirect_to_log  # noqa: E402
from paper_common import read_json, save_figure  # noqa: E402

QUANTILE_KEYS = ("drawn_bs_q10", "drawn_bs_q50", "drawn_bs_q90", "drawn_bs_mean")


def drawn_score_curves(training: dict, benchmark: str, methods: dict) -> dict[str, dict]:
    """``{label: {"progress", key: [...] for QUANTILE_KEYS, "alpha"}}`` of the methods that logged
    drawn boundary scores (seed means; steps where any key is missing are dropped)."""
    out = {}
    for label, method in methods.items():
        curve = training.get("curves", {}).get(benchmark, {}).get(method)
        if not curve or not all(key in curve["series"] for key in QUANTILE_KEYS):
            continue
        keys = QUANTILE_KEYS + (("alpha",) if "alpha" in curve["series"] else ())
        rows = [i for i, p in enumerate(curve["progress"])
                if p is not None and all(curve["series"][k]["mean"][i] is not None for k in keys)]
        if rows:
            out[label] = {"progress": [curve["progress"][i] for i in rows],
                          **{k: [curve["series"][k]["mean"][i] for i in rows] for k in keys}}
    if not out:
        raise ValueError(f"no method of {sorted(methods.values())} logged drawn boundary scores on {benchmark}")
    return out


def plot(curves: dict, benchmark: str, png: str, pdf: str) -> None:
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), sharey=True, squeeze=False)
    for ax, (label, curve) in zip(axes[0], curves.items()):
        ax.fill_between(curve["progress"], curve["drawn_bs_q10"], curve["drawn_bs_q90"], alpha=0.3,
                        label="10th–90th percentile")
        ax.plot(curve["progress"], curve["drawn_bs_q50"], label="median")
        ax.plot(curve["progress"], curve["drawn_bs_mean"], linestyle="--", label="mean")
        ax.axhline(0.0, color="grey", linewidth=0.6)
        ax.set_title(label)
        ax.set_xlabel("training progress η")
        if "alpha" in curve:
            twin = ax.twinx()
            twin.plot(curve["progress"], curve["alpha"], color="grey", linewidth=0.9, label="α(η)")
            twin.set_ylabel("α(η)", color="grey")
    axes[0][0].set_ylabel("boundary score of drawn negatives")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Negatives drawn by BNS on {benchmark} (seed means; higher = harder)", fontsize=10)
    save_figure(fig, png, pdf)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    curves = drawn_score_curves(read_json(snakemake.input[0]), params.benchmark, dict(params.methods))
    plot(curves, params.benchmark, snakemake.output.png, snakemake.output.pdf)
    logging.info("plotted drawn boundary scores of %s", sorted(curves))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
