"""The plateau criterion of a run, from the validation curve and the loss in its metrics log.

A run has reached its plateau when its val R@1 gained less than :data:`PLATEAU_GAIN_PP` percentage
points over the last quarter of its steps, the gain read off the least-squares line through the
validation points of that quarter (several points, so one noisy point does not decide); the
training loss's change over the same quarter (the same fit), relative to its mean there, is
reported beside it (paper/ASSUMPTIONS.md, "Converged training"). :mod:`bacl.convergence` records
the validation points during training.

Plain Python on logged numbers: the pipeline job that aggregates finished runs needs no torch.
"""

from __future__ import annotations

import math

__all__ = ["PLATEAU_GAIN_PP", "PLATEAU_FRACTION", "last_quarter_change", "plateau_report"]

# A run is at its plateau when its val R@1 gains less than this over its last quarter: well below
# the smallest method differences the tables test (BNS +1.2 pp at 1000 steps in the first run) and
# about the seed spread of pooled metrics (0.1-0.6 pp), so an unfinished run cannot decide a verdict.
PLATEAU_GAIN_PP = 0.5
PLATEAU_FRACTION = 0.25  # "the last quarter of training"


def last_quarter_change(steps, values, total_steps: int, fraction: float = PLATEAU_FRACTION) -> float | None:
    """Change of a curve over the last ``fraction`` of ``total_steps``: the slope of the least-squares
    line through its points with step >= (1 - fraction) * total_steps, times that span.

    Args:
        steps: (n,) steps of the points; values: (n,) the curve there (None or NaN points are skipped).
    Returns:
        The fitted change (in the values' units), or None with fewer than two distinct steps in the quarter.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    if len(steps) != len(values):
        raise ValueError(f"steps ({len(steps)}) and values ({len(values)}) must have the same length")
    start = (1 - fraction) * total_steps
    points = [(float(s), float(v)) for s, v in zip(steps, values)
              if s >= start and v is not None and math.isfinite(float(v))]
    if len({s for s, _ in points}) < 2:
        return None
    mean_s = sum(s for s, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    slope = (sum((s - mean_s) * (v - mean_v) for s, v in points)
             / sum((s - mean_s) ** 2 for s, _ in points))
    return slope * fraction * total_steps


def plateau_report(records: list[dict], total_steps: int, threshold_pp: float = PLATEAU_GAIN_PP) -> dict:
    """The plateau criterion of one run from its metrics log records (dicts with ``step``).

    Returns, R@1 and head accuracy in percent: ``initial_val_r1`` and ``final_val_r1`` (first and
    last validation points; the first is the untrained heads' at step 0), ``val_r1_gain_pp`` (over
    the last quarter), ``meets`` (None where the run logged too few validation points to judge:
    the tables count it as missing the criterion), the same ``initial_`` / ``final_`` / ``_gain_pp``
    of ``val_head_pairwise``, the training loss's ``loss_relative_change`` and ``threshold_pp``.
    """
    out = {"threshold_pp": threshold_pp}
    for key, name in (("val_r1", "val_r1"), ("val_head_pairwise", "val_head")):
        points = sorted((r["step"], r[key]) for r in records if key in r)
        change = last_quarter_change([s for s, _ in points], [v for _, v in points], total_steps)
        out[f"initial_{key}"] = 100 * points[0][1] if points else None
        out[f"final_{key}"] = 100 * points[-1][1] if points else None
        out[f"{name}_gain_pp"] = None if change is None else 100 * change
    gain = out["val_r1_gain_pp"]
    out["meets"] = None if gain is None else gain < threshold_pp
    losses = sorted((r["step"], r["loss"]) for r in records if "loss" in r)
    change = last_quarter_change([s for s, _ in losses], [v for _, v in losses], total_steps)
    quarter = [v for s, v in losses if s >= (1 - PLATEAU_FRACTION) * total_steps]
    out["loss_relative_change"] = None if change is None else change / abs(sum(quarter) / len(quarter))
    return out
