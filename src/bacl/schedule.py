"""The easy-to-hard curriculum of BNS: a logistic schedule alpha(eta) over training progress.

BNS shifts each candidate negative's sampling logit by ``-alpha(eta) * BS`` (see
:mod:`bacl.sampler`). With ``alpha > 0`` high-boundary-score ("hard", near-boundary) candidates
are suppressed; with ``alpha < 0`` they are favoured. The schedule moves from ``alpha_early > 0``
at the start of training (eta = 0) to ``alpha_late < 0`` at the end (eta = 1).

The paper's summary names the default schedule ``(0.3, -0.5, 1.5)`` without saying what the third
number is. We read it as the steepness ``kappa`` of the logistic in units of training progress:

    s(eta)     = sigmoid(kappa * (eta - midpoint))
    alpha(eta) = alpha_early + (alpha_late - alpha_early) * (s(eta) - s(0)) / (s(1) - s(0))

The min-max rescaling makes the schedule hit both endpoints exactly for any steepness, so the
named endpoints keep their meaning. The choice is recorded in ``paper/ASSUMPTIONS.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CurriculumSchedule", "SCHEDULE_PRESETS"]

# Presets. "default" is the paper's (alpha_early, alpha_late, steepness). The summary only says
# Default > Aggressive > Shallow; the other two are our reading of those names:
#   aggressive: almost no easy phase, twice as deep into hard negatives, and an abrupt switch;
#   shallow:    the same easy phase, but it barely reaches the hard-negative regime.
SCHEDULE_PRESETS: dict[str, tuple[float, float, float]] = {
    "default": (0.3, -0.5, 1.5),
    "aggressive": (0.1, -1.0, 10.0),
    "shallow": (0.3, -0.1, 1.5),
}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class CurriculumSchedule:
    """Logistic easy-to-hard schedule ``alpha(eta)`` for ``eta`` in ``[0, 1]``.

    Args:
        alpha_early: value at ``eta = 0``; must be > 0 (hard negatives suppressed).
        alpha_late: value at ``eta = 1``; must be < 0 (hard negatives favoured).
        steepness: logistic slope ``kappa`` per unit of progress; > 0. Small values give an almost
            linear ramp, large values a step at ``midpoint``.
        midpoint: progress at which the logistic is centred; in (0, 1). 0.5 by default because
            nothing in the paper's summary suggests an asymmetric curriculum.
    """

    alpha_early: float
    alpha_late: float
    steepness: float
    midpoint: float = 0.5

    def __post_init__(self):
        for name in ("alpha_early", "alpha_late", "steepness", "midpoint"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.alpha_early <= 0:
            raise ValueError(f"alpha_early must be > 0 (hard negatives suppressed early), got {self.alpha_early}")
        if self.alpha_late >= 0:
            raise ValueError(f"alpha_late must be < 0 (hard negatives favoured late), got {self.alpha_late}")
        if self.steepness <= 0:
            raise ValueError(f"steepness must be > 0, got {self.steepness}")
        if not 0.0 < self.midpoint < 1.0:
            raise ValueError(f"midpoint must lie in (0, 1), got {self.midpoint}")

    @classmethod
    def preset(cls, name: str) -> "CurriculumSchedule":
        """One of ``SCHEDULE_PRESETS``: ``"default"``, ``"aggressive"`` or ``"shallow"``."""
        if name not in SCHEDULE_PRESETS:
            raise ValueError(f"schedule preset {name!r} is unknown; choose one of {sorted(SCHEDULE_PRESETS)}")
        return cls(*SCHEDULE_PRESETS[name])

    def _logistic_ends(self) -> tuple[float, float]:
        """The un-rescaled logistic at eta = 0 and eta = 1."""
        return _sigmoid(-self.steepness * self.midpoint), _sigmoid(self.steepness * (1.0 - self.midpoint))

    def __call__(self, eta):
        """``alpha(eta)``: a float for a scalar ``eta``, an array for an array of them."""
        eta_array = np.asarray(eta, dtype=np.float64)
        if not np.all(np.isfinite(eta_array)) or np.any(eta_array < 0.0) or np.any(eta_array > 1.0):
            raise ValueError(f"eta (training progress) must lie in [0, 1], got {eta!r}")
        start, end = self._logistic_ends()
        ramp = (_sigmoid(self.steepness * (eta_array - self.midpoint)) - start) / (end - start)
        alpha = self.alpha_early + (self.alpha_late - self.alpha_early) * ramp
        return float(alpha) if alpha.ndim == 0 else alpha

    @property
    def crossover(self) -> float:
        """Progress at which ``alpha`` changes sign: the switch from easy to hard negatives."""
        start, end = self._logistic_ends()
        fraction = self.alpha_early / (self.alpha_early - self.alpha_late)
        target = start + fraction * (end - start)
        return float(self.midpoint + math.log(target / (1.0 - target)) / self.steepness)
