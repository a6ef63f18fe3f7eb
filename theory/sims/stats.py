"""Fits with seed-bootstrap confidence intervals, and the verdict rules the notebooks apply.

Seeds are the independent units (within a seed, runs share data and noise: common random numbers),
so every confidence interval resamples whole seeds with replacement and refits. All inputs are
arrays with one row per seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Fit", "bootstrap_fit", "linear_fit", "loglog_slope", "margin_fits", "margin_verdict", "rate_verdict",
    "removes_growth", "sign_verdict", "slope_difference",
]

# 2000 resamples put the Monte Carlo error of a 95 % percentile bound well below its sampling error.
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass
class Fit:
    """A least-squares line ``y = intercept + slope * x`` fitted to seed means, with bootstrap CIs."""

    slope: float
    intercept: float
    slope_ci: tuple[float, float]
    intercept_ci: tuple[float, float]
    residuals: np.ndarray  # y_mean - fitted, one per x
    x: np.ndarray
    y_mean: np.ndarray

    def as_dict(self) -> dict:
        return {
            "slope": self.slope, "slope_ci": list(self.slope_ci),
            "intercept": self.intercept, "intercept_ci": list(self.intercept_ci),
            "residuals": self.residuals.tolist(), "max_abs_residual": float(np.abs(self.residuals).max()),
        }


def _check(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"x must be 1-D with at least 2 points, got shape {x.shape}")
    if y.ndim != 2 or y.shape[1] != x.size or y.shape[0] < 2:
        raise ValueError(f"y must have shape (seeds >= 2, {x.size}), got {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    return x, y


def bootstrap_fit(statistic, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """``statistic(y_resampled) -> 1-D array`` over seed resamples of ``y`` (seeds, ...): (B, k)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, y.shape[0], size=(BOOTSTRAP_RESAMPLES, y.shape[0]))
    return np.stack([np.atleast_1d(statistic(y[p])) for p in picks])


def _interval(samples: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def linear_fit(x, y, seed: int = 0) -> Fit:
    """Line through the seed means of ``y`` (seeds, len(x)) against ``x``."""
    x, y = _check(x, y)

    def coefficients(sample):
        slope, intercept = np.polyfit(x, sample.mean(0), 1)
        return np.array([slope, intercept])

    slope, intercept = coefficients(y)
    boot = bootstrap_fit(coefficients, y, seed)
    y_mean = y.mean(0)
    return Fit(float(slope), float(intercept), _interval(boot[:, 0]), _interval(boot[:, 1]),
               y_mean - (intercept + slope * x), x, y_mean)


def loglog_slope(n_values, excess, seed: int = 0) -> Fit:
    """Fit ``log(mean excess) = intercept + slope * log n``; excess (seeds, len(n_values)) > 0.

    The mean over seeds is taken before the log (the risk is an expectation over training sets);
    ``exp(intercept)`` is the constant C of ``excess ~ C n^slope``.
    """
    n_values, excess = _check(n_values, excess)
    if np.any(n_values <= 0) or np.any(excess <= 0):
        raise ValueError("n_values and excess must be positive for a log-log fit")

    def coefficients(sample):
        slope, intercept = np.polyfit(np.log(n_values), np.log(sample.mean(0)), 1)
        return np.array([slope, intercept])

    slope, intercept = coefficients(excess)
    boot = bootstrap_fit(coefficients, excess, seed)
    log_mean = np.log(excess.mean(0))
    return Fit(float(slope), float(intercept), _interval(boot[:, 0]), _interval(boot[:, 1]),
               log_mean - (intercept + slope * np.log(n_values)), np.log(n_values), log_mean)


def rate_verdict(slope_intervals: list[tuple[float, float]], boundary: float = -0.75) -> str:
    """Fast rate (exponent -1) versus slow (-1/2) or worse, from one or more slope CIs.

    "supported" when every interval lies below ``boundary`` (the exponent halfway between -1 and
    -1/2), "not supported" when any lies entirely above it, "inconclusive" otherwise.
    """
    if any(low > boundary for low, _ in slope_intervals):
        return "not supported"
    if all(high < boundary for _, high in slope_intervals):
        return "supported"
    return "inconclusive"


def sign_verdict(interval: tuple[float, float], expected_sign: int) -> str:
    """"supported" when the CI excludes 0 on the expected side, "not supported" when it excludes 0
    on the other side or sits at 0 exactly, "inconclusive" when it straddles 0."""
    if expected_sign not in (-1, 1):
        raise ValueError(f"expected_sign must be -1 or 1, got {expected_sign!r}")
    low, high = sorted(expected_sign * np.asarray(interval, dtype=float))
    if low > 0:
        return "supported"
    if high <= 0:
        return "not supported"
    return "inconclusive"


def margin_fits(eta, gap, window: tuple[float, float], seed: int = 0) -> dict:
    """Compare ``log|gap| = a + b eta`` with ``log|gap| = a + c eta^2`` inside ``window``.

    Args:
        eta: (M,) training progress of each record.
        gap: (seeds, M) signed margin gap (optimum minus current margin).
        window: (low, high) progress interval to fit.
    Returns:
        a dict with both fits' coefficients and residual sums of squares on the seed-mean curve,
        ``log_rss_ratio = log(RSS_eta2 / RSS_eta)`` (< 0 favours eta^2) and bootstrap CIs.
    """
    eta, gap = _check(eta, gap)
    low, high = window
    inside = (eta >= low) & (eta <= high)
    if inside.sum() < 4:
        raise ValueError(f"window {window} holds {int(inside.sum())} records; at least 4 are needed")
    x = eta[inside]

    def statistic(sample):
        log_gap = np.log(np.abs(sample[:, inside].mean(0)))
        linear = np.polyfit(x, log_gap, 1)
        square = np.polyfit(x ** 2, log_gap, 1)
        linear_rss = np.sum((log_gap - np.polyval(linear, x)) ** 2)
        square_rss = np.sum((log_gap - np.polyval(square, x ** 2)) ** 2)
        return np.array([np.log(square_rss / linear_rss), linear[0], square[0], linear_rss, square_rss, linear[1], square[1]])

    point = statistic(gap)
    boot = bootstrap_fit(statistic, gap, seed)
    return {
        "window": [float(low), float(high)],
        "records_in_window": int(inside.sum()),
        "log_rss_ratio": float(point[0]), "log_rss_ratio_ci": list(_interval(boot[:, 0])),
        "eta_slope": float(point[1]), "eta_slope_ci": list(_interval(boot[:, 1])),
        "eta2_slope": float(point[2]), "eta2_slope_ci": list(_interval(boot[:, 2])),
        "rss_eta": float(point[3]), "rss_eta2": float(point[4]),
        "eta_intercept": float(point[5]), "eta2_intercept": float(point[6]),
    }


def slope_difference(x, y_first, y_second, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """Slope of ``y_first`` minus slope of ``y_second`` against ``x`` (seed means), with a paired
    bootstrap CI: the same seeds are resampled for both, as they share training data."""
    x, y_first = _check(x, y_first)
    _, y_second = _check(x, y_second)
    if y_first.shape != y_second.shape:
        raise ValueError(f"y_first {y_first.shape} and y_second {y_second.shape} must have the same shape")
    width = x.size

    def difference(sample):
        return np.polyfit(x, sample[:, :width].mean(0), 1)[0] - np.polyfit(x, sample[:, width:].mean(0), 1)[0]

    both = np.concatenate([y_first, y_second], axis=1)
    return float(difference(both)), _interval(bootstrap_fit(difference, both, seed)[:, 0])


def margin_verdict(fits: dict) -> str:
    """From ``margin_fits``: "supported" when eta^2 fits better (log RSS ratio CI below 0) and the gap
    contracts (eta^2 coefficient CI below 0); "not supported" when eta fits better (ratio CI above 0)
    or the gap grows (coefficient CI above 0); "inconclusive" otherwise."""
    ratio_low, ratio_high = fits["log_rss_ratio_ci"]
    slope_low, slope_high = fits["eta2_slope_ci"]
    if ratio_low > 0 or slope_low > 0:
        return "not supported"
    if ratio_high < 0 and slope_high < 0:
        return "supported"
    return "inconclusive"


def removes_growth(bacl_slope_ci: tuple[float, float], difference_ci: tuple[float, float]) -> str:
    """Does BACL remove the growth of n*excess in rho? "no" when BACL's own slope CI lies above 0;
    "yes" when it does not and the uniform-minus-BACL slope difference CI lies above 0;
    "inconclusive" otherwise."""
    if sign_verdict(bacl_slope_ci, +1) == "supported":
        return "no"
    return "yes" if sign_verdict(difference_ci, +1) == "supported" else "inconclusive"
