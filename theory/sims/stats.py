"""Linear fits with seed-bootstrap confidence intervals, and the sign rule of the verdicts.

Seeds are the independent units (within a seed, runs share data and noise: common random numbers),
so every confidence interval resamples whole seeds with replacement and refits. All inputs are
arrays with one row per seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Fit", "bootstrap_fit", "interval", "linear_fit", "loglog_slope", "sign_verdict", "slope_difference"]

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


def interval(samples: np.ndarray) -> tuple[float, float]:
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
    return Fit(float(slope), float(intercept), interval(boot[:, 0]), interval(boot[:, 1]),
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
    return Fit(float(slope), float(intercept), interval(boot[:, 0]), interval(boot[:, 1]),
               log_mean - (intercept + slope * np.log(n_values)), np.log(n_values), log_mean)


def sign_verdict(ci: tuple[float, float], expected_sign: int) -> str:
    """"supported" when the CI excludes 0 on the expected side, "not supported" when it excludes 0
    on the other side or sits at 0 exactly, "inconclusive" when it straddles 0."""
    if expected_sign not in (-1, 1):
        raise ValueError(f"expected_sign must be -1 or 1, got {expected_sign!r}")
    low, high = sorted(expected_sign * np.asarray(ci, dtype=float))
    if low > 0:
        return "supported"
    if high <= 0:
        return "not supported"
    return "inconclusive"


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
    return float(difference(both)), interval(bootstrap_fit(difference, both, seed)[:, 0])
