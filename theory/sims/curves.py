"""Curve fits of the rate and margin notebooks, with seed-bootstrap CIs, and the verdict rules on them.

* :func:`floor_fit`: mean excess ``= b + C n^-a``: a floor ``b`` (the excess of the estimator's own
  limit) and a rate ``a`` at which the excess approaches it. A pure power law is the special case b = 0.
* :func:`limit_distance`: ``E |theta_n - theta_inf|^2``, the squared distance of the weights to the
  arm's own limit, and its log-log slope: the rate at which an arm converges, to whatever it converges.
* :func:`log_quadratic_fit`: ``log|gap| = a + b (eta - m) + c (eta - m)^2`` over a window: ``c < 0`` is
  a contraction that speeds up (``exp(-Theta(eta^2))``), ``c = 0`` a plain exponential, ``c > 0`` one
  that slows down.

Seeds are the bootstrap unit, as in ``stats.py``.
"""

from __future__ import annotations

import numpy as np

from .stats import bootstrap_fit, interval

__all__ = [
    "ZERO_FLOOR", "bend_verdict", "floor_fit", "floor_verdict", "limit_distance", "log_quadratic_difference",
    "log_quadratic_fit",
]

# Exponents the floor fit tries: the step 0.005 is far below any exponent's CI width here.
EXPONENTS = np.arange(0.05, 3.0 + 1e-9, 0.005)
# A floor whose CI reaches below this share of the mean excess at the largest n is indistinguishable
# from 0 (the bounded fit returns b = 0 up to rounding when no floor is present).
ZERO_FLOOR = 1e-3
# The exponent halfway between the fast rate (1) and the slow one (1/2).
RATE_BOUNDARY = 0.75
_CHUNK = 200  # bootstrap resamples per vectorised block of the floor fit (bounds its memory to ~100 MB)


def _floor_coefficients(n: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(B, 3) [b, C, a] minimising sum_n ((b + C n^-a) / mean_n - 1)^2 with b, C >= 0, for means (B, N)."""
    x1 = 1.0 / means  # (B, N)
    x2 = n[None, None, :] ** -EXPONENTS[:, None, None] / means[None]  # (A, B, N)
    s11, s1 = (x1 ** 2).sum(-1)[None], x1.sum(-1)[None]
    s12, s22, s2 = (x1[None] * x2).sum(-1), (x2 ** 2).sum(-1), x2.sum(-1)
    det = s11 * s22 - s12 ** 2
    b = np.where(det > 0, (s22 * s1 - s12 * s2) / np.where(det > 0, det, 1), 0.0)
    c = np.where(det > 0, (s11 * s2 - s12 * s1) / np.where(det > 0, det, 1), 0.0)
    # The bounds b >= 0 and C >= 0: refit with the offending coefficient at 0.
    b, c = np.where(b < 0, 0.0, b), np.where(b < 0, s2 / s22, c)
    b, c = np.where(c < 0, s1 / s11, b), np.where(c < 0, 0.0, c)
    sse = ((b[..., None] * x1[None] + c[..., None] * x2 - 1.0) ** 2).sum(-1)  # (A, B)
    best = sse.argmin(0)
    rows = np.arange(means.shape[0])
    return np.stack([b[best, rows], c[best, rows], EXPONENTS[best]], axis=1)


def floor_fit(n_values, excess, seed: int = 0) -> dict:
    """Fit the seed-mean excess to ``b + C n^-a`` by relative least squares (each n weighs by its own
    scale, as a log-space fit does) with ``b, C >= 0`` and ``a`` on a grid of [0.05, 3].

    Args:
        n_values: (N,) sample sizes, N >= 4; excess: (seeds, N) > 0.
    Returns:
        floor b, rate a, constant C with 95 % bootstrap CIs, the log residuals, their max, and the
        floor's share of the mean excess at the largest n.
    """
    n = np.asarray(n_values, dtype=float)
    excess = np.asarray(excess, dtype=float)
    if n.ndim != 1 or n.size < 4 or excess.shape != (excess.shape[0], n.size) or excess.shape[0] < 2:
        raise ValueError(f"need n_values (N >= 4,) and excess (seeds >= 2, N), got {n.shape} and {excess.shape}")
    if np.any(n <= 0) or np.any(excess <= 0) or not np.all(np.isfinite(excess)):
        raise ValueError("n_values and excess must be positive and finite")
    mean = excess.mean(0)
    point = _floor_coefficients(n, mean[None])[0]
    means = bootstrap_fit(lambda sample: sample.mean(0), excess, seed)
    boot = np.concatenate([_floor_coefficients(n, means[i:i + _CHUNK]) for i in range(0, len(means), _CHUNK)])
    residuals = np.log(point[0] + point[1] * n ** -point[2]) - np.log(mean)
    return {
        "floor": float(point[0]), "floor_ci": list(interval(boot[:, 0])),
        "rate": float(point[2]), "rate_ci": list(interval(boot[:, 2])),
        "constant": float(point[1]), "constant_ci": list(interval(boot[:, 1])),
        "log_residuals": residuals.tolist(), "max_abs_log_residual": float(np.abs(residuals).max()),
        "floor_share_at_largest_n": float(point[0] / mean[-1]), "mean_excess_at_largest_n": float(mean[-1]),
    }


def floor_verdict(fit: dict, power_law_slope_ci) -> str:
    """Fast rate O~(1/n) to the optimum, from :func:`floor_fit` and the CI of the plain log-log slope
    (the fit with b = 0): "not supported" when a floor is present (its CI lies above ``ZERO_FLOOR``
    times the excess at the largest n), or the floor fit's rate CI lies below 0.75, or the plain slope's
    CI lies above -0.75 (no fit without a floor falls fast enough: a floor or a slow rate, which the
    floor fit alone cannot always tell apart when the excess is flat); "supported" when the floor's CI
    reaches 0 and the rate's CI lies above 0.75; "inconclusive" otherwise."""
    zero = ZERO_FLOOR * fit["mean_excess_at_largest_n"]
    if fit["floor_ci"][0] > zero or fit["rate_ci"][1] < RATE_BOUNDARY or power_law_slope_ci[0] > -RATE_BOUNDARY:
        return "not supported"
    if fit["rate_ci"][0] > RATE_BOUNDARY:
        return "supported"
    return "inconclusive"


def limit_distance(n_values, theta, limit=None, seed: int = 0) -> dict:
    """Mean squared distance of the weights to the arm's limit, and its log-log slope in n.

    Args:
        n_values: (N,), N >= 4; theta: (seeds, N, d) final weights.
        limit: (d,) the limit if known; None extrapolates it: the intercept of a line in 1/n through
            the seed-mean weights over the upper half of the n values (an M-estimator's mean is
            ``theta_inf + O(1/n)``), re-estimated in every bootstrap resample.
    Returns:
        slope and intercept of ``log E|theta_n - theta_inf|^2`` in ``log n`` with CIs, the limit with
        per-coordinate CIs, the mean squared distances and the fit's max abs log residual.
    """
    n = np.asarray(n_values, dtype=float)
    theta = np.asarray(theta, dtype=float)
    if n.ndim != 1 or n.size < 4 or theta.ndim != 3 or theta.shape[1] != n.size or theta.shape[0] < 2:
        raise ValueError(f"need n_values (N >= 4,) and theta (seeds >= 2, N, d), got {n.shape} and {theta.shape}")
    upper = n >= np.median(n)
    dim = theta.shape[2]

    def statistic(sample):
        mean = sample.mean(0)
        target = np.asarray(limit, dtype=float) if limit is not None else np.polyfit(1.0 / n[upper], mean[upper], 1)[1]
        distance = ((sample - target) ** 2).sum(-1).mean(0)
        slope, intercept = np.polyfit(np.log(n), np.log(distance), 1)
        return np.concatenate([[slope, intercept], target, distance])

    point = statistic(theta)
    boot = bootstrap_fit(statistic, theta, seed)
    distance = point[2 + dim:]
    residuals = np.log(distance) - (point[1] + point[0] * np.log(n))
    return {
        "slope": float(point[0]), "slope_ci": list(interval(boot[:, 0])),
        "intercept": float(point[1]), "intercept_ci": list(interval(boot[:, 1])),
        "limit": point[2:2 + dim].tolist(), "limit_ci": [list(interval(boot[:, 2 + i])) for i in range(dim)],
        "limit_extrapolated": limit is None,
        "mean_squared_distance": distance.tolist(), "max_abs_log_residual": float(np.abs(residuals).max()),
    }


def _window(eta: np.ndarray, mean_gap: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Records inside ``window`` and before the seed-mean gap's first sign change inside it."""
    inside = (eta >= window[0]) & (eta <= window[1])
    if not inside.any():
        return inside
    signs = np.sign(mean_gap) * inside
    first = np.argmax(inside)
    changed = inside & (signs != signs[first])
    if changed.any():
        inside &= np.arange(eta.size) < np.argmax(changed)
    return inside


def _quadratic(x: np.ndarray, log_gap: np.ndarray) -> np.ndarray:
    curvature, slope, level = np.polyfit(x, log_gap, 2)
    line = np.polyfit(x, log_gap, 1)
    rss_quadratic = np.sum((log_gap - np.polyval([curvature, slope, level], x)) ** 2)
    rss_line = np.sum((log_gap - np.polyval(line, x)) ** 2)
    return np.array([curvature, slope, level, rss_quadratic, rss_line])


def log_quadratic_fit(eta, gap, window: tuple[float, float], seed: int = 0, min_records: int = 8) -> dict:
    """``log|mean gap| = level + slope (eta - m) + curvature (eta - m)^2`` over the records in ``window``
    that precede the seed-mean gap's first sign change there (m: the middle of those records).

    Args:
        eta: (M,) progress of each record; gap: (seeds, M) signed gap to the fixed point.
    Returns:
        the coefficients with CIs, the window actually fitted, the number of records, and the residual
        sums of squares of the quadratic and of a line (their log ratio < 0 favours the bend).
    """
    eta = np.asarray(eta, dtype=float)
    gap = np.asarray(gap, dtype=float)
    if eta.ndim != 1 or gap.ndim != 2 or gap.shape[1] != eta.size or gap.shape[0] < 2:
        raise ValueError(f"need eta (M,) and gap (seeds >= 2, M), got {eta.shape} and {gap.shape}")
    inside = _window(eta, gap.mean(0), window)
    if inside.sum() < min_records:
        raise ValueError(f"window {window} holds {int(inside.sum())} records before the gap changes sign; "
                         f"at least {min_records} are needed")
    x = eta[inside] - 0.5 * (eta[inside].min() + eta[inside].max())
    point = _quadratic(x, np.log(np.abs(gap[:, inside].mean(0))))
    boot = bootstrap_fit(lambda sample: _quadratic(x, np.log(np.abs(sample[:, inside].mean(0)))), gap, seed)
    return {
        "window": [float(eta[inside].min()), float(eta[inside].max())], "records": int(inside.sum()),
        "curvature": float(point[0]), "curvature_ci": list(interval(boot[:, 0])),
        "slope": float(point[1]), "slope_ci": list(interval(boot[:, 1])), "level": float(point[2]),
        "log_rss_ratio": float(np.log(point[3] / point[4])),
        "sign_changes": int(np.sum(np.diff(np.sign(gap.mean(0))) != 0)),
        "sign_change_in_window": bool(inside.sum() < ((eta >= window[0]) & (eta <= window[1])).sum()),
    }


def log_quadratic_difference(eta, gap_first, gap_second, window: tuple[float, float], seed: int = 0) -> dict:
    """Curvature of ``gap_first``'s log minus ``gap_second``'s over the same records (each arm's window
    intersected), with a paired bootstrap CI: the same seeds share training data in both arms."""
    eta = np.asarray(eta, dtype=float)
    gap_first, gap_second = np.asarray(gap_first, dtype=float), np.asarray(gap_second, dtype=float)
    if gap_first.shape != gap_second.shape:
        raise ValueError(f"gap_first {gap_first.shape} and gap_second {gap_second.shape} must have the same shape")
    inside = _window(eta, gap_first.mean(0), window) & _window(eta, gap_second.mean(0), window)
    if inside.sum() < 4:
        raise ValueError(f"the two arms' windows share {int(inside.sum())} records; at least 4 are needed")
    x = eta[inside] - 0.5 * (eta[inside].min() + eta[inside].max())
    width = gap_first.shape[1]

    def difference(sample):
        first = np.log(np.abs(sample[:, :width][:, inside].mean(0)))
        second = np.log(np.abs(sample[:, width:][:, inside].mean(0)))
        return np.polyfit(x, first, 2)[0] - np.polyfit(x, second, 2)[0]

    both = np.concatenate([gap_first, gap_second], axis=1)
    return {"difference": float(difference(both)), "difference_ci": list(interval(bootstrap_fit(difference, both, seed)[:, 0])),
            "window": [float(eta[inside].min()), float(eta[inside].max())], "records": int(inside.sum())}


def bend_verdict(fit: dict, difference_ci=None) -> str:
    """exp(-Theta(eta^2)) contraction, from :func:`log_quadratic_fit` and the CI of the curvature's
    difference from the uniform control's: "not supported" when the gap changes sign inside the window
    (a gap that closes and reopens does not contract) or either CI lies above 0; "supported" when both
    lie below 0 (the log-gap bends down, more than under uniform sampling); "inconclusive" otherwise.
    Without a control (the control itself) only the curvature's CI counts."""
    intervals = [fit["curvature_ci"]] + ([difference_ci] if difference_ci is not None else [])
    if fit["sign_change_in_window"] or any(low > 0 for low, _ in intervals):
        return "not supported"
    if all(high < 0 for _, high in intervals):
        return "supported"
    return "inconclusive"
