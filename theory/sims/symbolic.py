"""sympy derivations checked against bacl's numerics.

* The curriculum schedule: closed form of ``alpha(eta)`` and its derivative, checked against
  ``bacl.schedule.CurriculumSchedule``; its crossover solved symbolically; its Taylor expansion at
  the midpoint, whose quadratic term vanishes (the logistic's inflection point).
* The Gumbel-Softmax relaxation: Jacobian ``d r / d logits = (diag r - r r^T) / tau`` and the
  gradient of the policy objective, checked against autograd through ``BoundarySampler``.
* The margin dynamics of the simplified model ``g' = -k(eta) g``: with ``k = k0 + k1 eta`` the gap is
  ``g0 exp(-k0 eta - k1 eta^2 / 2)`` (super-exponential for k1 > 0); with a rate affine in the
  logistic ``alpha(eta)`` the exponent is a softplus, quadratic only near the midpoint.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
import torch
from scipy.integrate import solve_ivp
from torch import nn

from bacl.sampler import BoundarySampler, boundary_score
from bacl.schedule import CurriculumSchedule

__all__ = [
    "check_margin_dynamics", "check_relaxation_gradient", "check_schedule", "logistic_rate_exponent",
    "margin_dynamics_solution", "schedule_expression",
]

ETA, ALPHA_EARLY, ALPHA_LATE, STEEPNESS, MIDPOINT = sp.symbols("eta alpha_early alpha_late kappa m", real=True)
RATE_AT_ZERO, RATE_SLOPE, INITIAL_GAP = sp.symbols("k0 k1 g0", real=True)


def schedule_expression() -> sp.Expr:
    """alpha(eta) = a0 + (a1 - a0) (s(eta) - s(0)) / (s(1) - s(0)), s = sigmoid(kappa (eta - m))."""
    def s(t):
        return 1 / (1 + sp.exp(-STEEPNESS * (t - MIDPOINT)))
    return ALPHA_EARLY + (ALPHA_LATE - ALPHA_EARLY) * (s(ETA) - s(0)) / (s(1) - s(0))


def _substitute(expr: sp.Expr, schedule: CurriculumSchedule) -> sp.Expr:
    return expr.subs({ALPHA_EARLY: sp.nsimplify(schedule.alpha_early), ALPHA_LATE: sp.nsimplify(schedule.alpha_late),
                      STEEPNESS: sp.nsimplify(schedule.steepness), MIDPOINT: sp.nsimplify(schedule.midpoint)})


def check_schedule(schedule: CurriculumSchedule, points: int = 101) -> dict:
    """Max errors of the closed form, its derivative and its crossover against the library."""
    if not isinstance(schedule, CurriculumSchedule):
        raise ValueError(f"schedule must be a CurriculumSchedule, got {schedule!r}")
    alpha = schedule_expression()
    derivative = sp.diff(alpha, ETA)
    value = sp.lambdify(ETA, _substitute(alpha, schedule), "numpy")
    slope = sp.lambdify(ETA, _substitute(derivative, schedule), "numpy")
    eta = np.linspace(0.0, 1.0, points)
    step = 1e-6
    inner = eta[1:-1]
    finite_difference = (schedule(inner + step) - schedule(inner - step)) / (2 * step)
    crossover = sp.nsolve(_substitute(alpha, schedule), ETA, schedule.midpoint)
    h = sp.Symbol("h", real=True)
    expansion = sp.series(alpha.subs(ETA, MIDPOINT + h), h, 0, 3).removeO()
    return {
        "max_value_error": float(np.max(np.abs(value(eta) - schedule(eta)))),
        "max_derivative_error": float(np.max(np.abs(slope(inner) - finite_difference))),
        "crossover_error": abs(float(crossover) - schedule.crossover),
        "midpoint_quadratic_coefficient": sp.simplify(expansion.coeff(h, 2)),
        "midpoint_slope": sp.simplify(expansion.coeff(h, 1)),
        "derivative": sp.simplify(derivative),
    }


class _GivenPriority(BoundarySampler):
    """A BoundarySampler whose policy priorities are a free (B, P) parameter, to differentiate by."""

    def __init__(self, priority: torch.Tensor, **kwargs):
        super().__init__(**kwargs)
        self.given = nn.Parameter(priority)

    def priorities(self, features):
        return self.given


def _policy_objective(size: int):
    """Symbols and the sampler's per-row policy objective with its straight-through gradient path."""
    logits = sp.symbols(f"l0:{size}", real=True)
    noise = sp.symbols(f"g0:{size}", real=True)
    reward = sp.symbols(f"b0:{size}", real=True)
    tau, temperature, weight = sp.symbols("tau T w", positive=True)
    relaxed = [sp.exp((li + gi) / tau) for li, gi in zip(logits, noise)]
    relaxed = [r / sum(relaxed) for r in relaxed]
    probability = [sp.exp(li) for li in logits]
    probability = [p / sum(probability) for p in probability]
    entropy = -sum(p * sp.log(p) for p in probability)
    objective = sum(r * b for r, b in zip(relaxed, reward)) / temperature + weight * entropy
    return logits, noise, reward, (tau, temperature, weight), relaxed, objective


def check_relaxation_gradient(size: int = 4, batch: int = 3, seed: int = 0) -> dict:
    """Symbolic Jacobian and policy gradient against autograd through ``BoundarySampler``.

    Returns the max abs errors, and whether sympy simplifies the Jacobian to (diag r - r r^T)/tau.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}")
    logits, noise, reward, (tau, temperature, weight), relaxed, objective = _policy_objective(size)
    jacobian = sp.Matrix(relaxed).jacobian(logits)
    closed_form = (sp.diag(*relaxed) - sp.Matrix(relaxed) * sp.Matrix(relaxed).T) / tau
    identity_holds = sp.simplify(jacobian - closed_form) == sp.zeros(size, size)
    gradient = [sp.diff(objective, li) for li in logits]
    gradient_fn = sp.lambdify([logits, noise, reward, tau, temperature, weight], gradient, "numpy")
    jacobian_fn = sp.lambdify([logits, noise, tau], jacobian, "numpy")

    generator = torch.Generator().manual_seed(seed)
    anchor, positive = torch.randn(batch, 5, generator=generator), torch.randn(batch, 5, generator=generator)
    candidates = torch.randn(batch, size, 5, generator=generator)
    sampler = _GivenPriority(torch.randn(batch, size, generator=generator), num_negatives=1)
    draw = sampler(anchor, positive, candidates, 0.7, generator=generator)
    rewards = boundary_score(anchor, positive, candidates)
    autograd_policy = torch.autograd.grad(draw.policy_loss, sampler.given, retain_graph=True)[0]

    jacobian_error = gradient_error = 0.0
    tau_value, temperature_value = sampler.gumbel_temperature, sampler.boundary_temperature
    for row in range(batch):
        # Recover the logits and the Gumbel noise from the draw: softmax is shift-invariant.
        row_logits = torch.log(draw.probabilities[row]).detach().double().numpy()
        row_noise = tau_value * torch.log(draw.relaxed[row]).detach().double().numpy() - row_logits
        autograd_jacobian = torch.stack([
            torch.autograd.grad(draw.relaxed[row, i], sampler.given, retain_graph=True)[0][row] for i in range(size)])
        symbolic_jacobian = np.array(jacobian_fn(row_logits, row_noise, tau_value), dtype=float)
        jacobian_error = max(jacobian_error, float(np.abs(symbolic_jacobian - autograd_jacobian.numpy()).max()))
        # policy_loss = -mean over rows of the objective.
        symbolic_gradient = -np.array(gradient_fn(row_logits, row_noise, rewards[row].double().numpy(), tau_value,
                                                  temperature_value, sampler.entropy_weight)) / batch
        gradient_error = max(gradient_error, float(np.abs(symbolic_gradient - autograd_policy[row].numpy()).max()))
    return {"jacobian_identity_holds": bool(identity_holds), "max_jacobian_error": jacobian_error,
            "max_policy_gradient_error": gradient_error}


def margin_dynamics_solution() -> sp.Expr:
    """Solution g(eta) of g' = -(k0 + k1 eta) g, g(0) = g0."""
    g = sp.Function("g")
    rate = RATE_AT_ZERO + RATE_SLOPE * ETA
    solution = sp.dsolve(sp.Eq(g(ETA).diff(ETA), -rate * g(ETA)), g(ETA), ics={g(0): INITIAL_GAP})
    return sp.simplify(solution.rhs)


def check_margin_dynamics(k0: float, k1: float, g0: float = 1.0) -> float:
    """Max relative error of the closed form against a numerical ODE solution on [0, 1]."""
    closed = sp.lambdify(ETA, margin_dynamics_solution().subs({RATE_AT_ZERO: k0, RATE_SLOPE: k1, INITIAL_GAP: g0}), "numpy")
    eta = np.linspace(0.0, 1.0, 51)
    numeric = solve_ivp(lambda t, g: -(k0 + k1 * t) * g, (0.0, 1.0), [g0], t_eval=eta, rtol=1e-10, atol=1e-12)
    return float(np.max(np.abs(numeric.y[0] - closed(eta)) / np.abs(closed(eta))))


def logistic_rate_exponent() -> dict:
    """For a rate ``k(eta) = c0 - c1 alpha(eta)`` (it grows as alpha turns negative), the exponent
    ``-int_0^eta k`` in closed form, and its expansion around the midpoint: quadratic in (eta - m)
    with a vanishing cubic term, so exp(-Theta(eta^2)) is the local shape there and nowhere else."""
    c0, c1 = sp.symbols("c0 c1", real=True)
    t = sp.Symbol("t", real=True)
    exponent = -sp.integrate((c0 - c1 * schedule_expression()).subs(ETA, t), (t, 0, ETA))
    h = sp.Symbol("h", real=True)
    expansion = sp.series(exponent.subs(ETA, MIDPOINT + h), h, 0, 4).removeO()
    return {"exponent": exponent,
            "quadratic_coefficient": sp.simplify(expansion.coeff(h, 2)),
            "cubic_coefficient": sp.simplify(expansion.coeff(h, 3))}
