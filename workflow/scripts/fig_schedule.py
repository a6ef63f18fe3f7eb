"""alpha(eta) of the curriculum presets (bacl.schedule), with the alpha the BNS runs logged."""

import logging

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from joblog import redirect_to_log  # noqa: E402
from paper_common import read_json, save_figure  # noqa: E402


def preset_curves(presets: dict, points: int = 201) -> dict[str, dict]:
    """``{name: {"eta", "alpha", "crossover"}}`` of each preset (alpha_early, alpha_late, steepness).

    ``points``: grid size over eta in [0, 1]; 201 resolves the steepest preset's step smoothly.
    """
    from bacl.schedule import CurriculumSchedule

    if not presets:
        raise ValueError("presets is empty")
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        raise ValueError(f"points must be an integer >= 2, got {points!r}")
    eta = np.linspace(0.0, 1.0, points)
    curves = {}
    for name, values in presets.items():
        schedule = CurriculumSchedule(*values)
        curves[name] = {"eta": eta.tolist(), "alpha": schedule(eta).tolist(), "crossover": schedule.crossover}
    return curves


def logged_alpha(training: dict, benchmark: str, methods: dict) -> dict[str, dict]:
    """``{label: {"progress", "alpha"}}``: the seed-mean alpha each BNS run logged (labels without
    a logged alpha are left out)."""
    out = {}
    for label, method in methods.items():
        curve = training.get("curves", {}).get(benchmark, {}).get(method)
        if curve and "alpha" in curve["series"]:
            pairs = [(p, a) for p, a in zip(curve["progress"], curve["series"]["alpha"]["mean"])
                     if p is not None and a is not None]
            if pairs:
                out[label] = {"progress": [p for p, _ in pairs], "alpha": [a for _, a in pairs]}
    return out


def plot(curves: dict, logged: dict, png: str, pdf: str) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    colours = {}
    for name, curve in curves.items():
        (line,) = ax.plot(curve["eta"], curve["alpha"], label=f"{name} preset")
        colours[name.lower()] = line.get_color()
        ax.axvline(curve["crossover"], color=line.get_color(), linestyle=":", linewidth=0.8)
    for label, points in logged.items():
        ax.plot(points["progress"], points["alpha"], "o", markersize=3.5, color=colours.get(label.lower(), "k"),
                label=f"logged by the {label} runs")
    ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_xlabel("training progress η")
    ax.set_ylabel("α(η)   (> 0: hard negatives suppressed)")
    ax.set_title("BNS curriculum schedules (dotted: α = 0)")
    ax.legend(fontsize=7)
    save_figure(fig, png, pdf)


def main(snakemake) -> None:
    from bacl.schedule import SCHEDULE_PRESETS

    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    curves = preset_curves({name.capitalize(): values for name, values in SCHEDULE_PRESETS.items()})
    logged = logged_alpha(read_json(snakemake.input[0]), params.benchmark, dict(params.methods))
    plot(curves, logged, snakemake.output.png, snakemake.output.pdf)
    logging.info("plotted %d presets and %d logged schedules", len(curves), len(logged))


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
