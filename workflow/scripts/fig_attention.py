"""CLA's attention on boundary negatives (from attention_maps.py): per example the image, A+ over the
true caption's tokens, A- over the negative's (one colour scale), |A+ - A-| on its own scale, and
the per-token divergence sum_j |A+ - A-|. Truly wrong tokens are red; the most divergent token
(CLA's pick, which AEL scores) is starred."""

import logging

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from joblog import redirect_to_log  # noqa: E402
from paper_common import read_json, save_figure  # noqa: E402

WRONG_COLOUR = "tab:red"


def example_panels(example: dict) -> dict:
    """The arrays and labels one row of the figure shows, checked for consistent shapes.

    Returns ``{"positive", "negative"}`` (Lt, Lx) arrays, ``"divergence"`` (Lt,), ``"labels"``
    (the negative's Lt token strings), ``"positive_labels"``, ``"wrong"`` (rows < Lt),
    ``"pick"`` and ``"image"`` (array or None).
    """
    positive, negative = np.asarray(example["attention_positive"]), np.asarray(example["attention_negative"])
    divergence = np.asarray(example["token_divergence"])
    if positive.ndim != 2 or positive.shape != negative.shape:
        raise ValueError(f"attention maps must be two matrices of one shape, got {positive.shape} and {negative.shape}")
    rows = positive.shape[0]
    if divergence.shape != (rows,):
        raise ValueError(f"token_divergence has shape {divergence.shape}, the maps have {rows} token rows")
    if len(example["negative_tokens"]) < rows or len(example["positive_tokens"]) < rows:
        raise ValueError(f"the token lists are shorter than the {rows} rows of the attention maps")
    if not 0 <= example["most_divergent_token"] < rows:
        raise ValueError(f"most_divergent_token={example['most_divergent_token']} is not one of the {rows} rows")
    image = None if example.get("image") is None else np.asarray(example["image"], dtype=np.uint8)
    return {"positive": positive, "negative": negative, "divergence": divergence,
            "labels": example["negative_tokens"][:rows], "positive_labels": example["positive_tokens"][:rows],
            "wrong": [i for i in example["wrong_tokens"] if i < rows], "pick": example["most_divergent_token"],
            "image": image}


def _token_axis(ax, labels: list[str], wrong: list[int]) -> None:
    ax.set_yticks(range(len(labels)), labels, fontsize=6)
    for index, tick in enumerate(ax.get_yticklabels()):
        if index in wrong:
            tick.set_color(WRONG_COLOUR)
            tick.set_fontweight("bold")


def plot(maps: dict, png: str, pdf: str) -> None:
    examples = maps["examples"]
    if not examples:
        raise ValueError("attention maps hold no example")
    fig, axes = plt.subplots(len(examples), 5, figsize=(17, 2.9 * len(examples)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 2, 2, 2, 1.2]})
    for row, example in zip(axes, examples):
        panels = example_panels(example)
        if panels["image"] is not None:
            row[0].imshow(panels["image"])
        row[0].set_axis_off()
        row[0].set_title(f"{example['type']} (sample {example['sample']})", fontsize=8)
        vmax = max(panels["positive"].max(), panels["negative"].max())
        for ax, key, labels, title in ((row[1], "positive", panels["positive_labels"], "A+ : true caption"),
                                       (row[2], "negative", panels["labels"], "A− : boundary negative")):
            ax.imshow(panels[key], aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax)
            _token_axis(ax, labels, panels["wrong"] if key == "negative" else [])
            ax.set_title(title, fontsize=8)
        row[3].imshow(np.abs(panels["positive"] - panels["negative"]), aspect="auto", cmap="magma")
        _token_axis(row[3], panels["labels"], panels["wrong"])
        row[3].set_title("|A+ − A−| (own scale)", fontsize=8)
        for ax in row[1:4]:
            ax.set_xlabel("x token (image patch)", fontsize=7)
        colours = [WRONG_COLOUR if i in panels["wrong"] else "tab:blue" for i in range(len(panels["labels"]))]
        row[4].barh(range(len(panels["labels"])), panels["divergence"], color=colours)
        row[4].plot(panels["divergence"][panels["pick"]], panels["pick"], "k*", markersize=9)
        row[4].invert_yaxis()
        _token_axis(row[4], panels["labels"], panels["wrong"])
        row[4].set_title("Σ_j |A+ − A−| (★ CLA's pick: " + ("hit" if example["hit"] else "miss") + ")", fontsize=8)
    fig.suptitle(f"CLA attention of {maps['method']} (seed {maps['seed']}) on {maps['benchmark']} test negatives; "
                 "red: truly wrong tokens", fontsize=10)
    save_figure(fig, png, pdf)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    maps = read_json(snakemake.input[0])
    plot(maps, snakemake.output.png, snakemake.output.pdf)
    logging.info("plotted %d examples", len(maps["examples"]))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
