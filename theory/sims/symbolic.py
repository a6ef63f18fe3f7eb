"""sympy derivations that decide something in the notebooks.

* The sampling correction (``bacl.sampling_correction``): the probability that Gumbel-top-k draws a
  set, derived from the exponential-race integral and shown equal to the Plackett-Luce sum over
  orders; the correction of each drawn negative and its large-pool limit (the "logQ" term of sampled
  softmax); and the unbiasedness itself: for a pool of 4 candidates, K = 2 and a sampler whose
  weights depend on which candidate is the positive (12 free weights), the expected gradient of the
  corrected loss at the label-generating scores is exactly 0 (the two identities it reduces to hold
  symbolically; the full expression vanishes in exact rational arithmetic), while the plain loss's is not.
* The margin dynamics ``g' = -k(eta) g``: with ``k = k0 + k1 eta`` the gap is
  ``g0 exp(-k0 eta - k1 eta^2 / 2)``, so a contraction rate growing linearly in eta is exactly an
  ``exp(-Theta(eta^2))`` contraction with log-gap curvature ``-k1 / 2``: 03_margin compares that
  prediction (k measured from the loss curvature) with the curvature fitted to the simulated gap.
* The schedule: how far the logistic ``alpha(eta)`` is from a straight line on [0, 1]. For the default
  steepness 1.5 it is within 0.007 of its chord, so a rate affine in alpha is affine in eta over the
  whole run, not only near the midpoint.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp
from scipy.integrate import solve_ivp

from bacl.schedule import CurriculumSchedule

__all__ = [
    "check_correction_unbiased", "check_margin_dynamics", "check_set_probability", "correction_limit",
    "margin_dynamics_solution", "schedule_expression", "schedule_linearity",
]

ETA, ALPHA_EARLY, ALPHA_LATE, STEEPNESS, MIDPOINT = sp.symbols("eta alpha_early alpha_late kappa m", real=True)
RATE_AT_ZERO, RATE_SLOPE, INITIAL_GAP = sp.symbols("k0 k1 g0", real=True)


def plackett_luce(weights: dict, members, rest) -> sp.Expr:
    """P(Gumbel-top-k draws exactly ``members`` before the rest): the sum over their orders of the
    successive-sampling probabilities; ``weights[m]`` the members' weights, ``rest`` the rest's total."""
    total = 0
    for order in itertools.permutations(members):
        remaining, probability = sum(weights[m] for m in members) + rest, 1
        for m in order:
            probability *= weights[m] / remaining
            remaining -= weights[m]
        total += probability
    return total


def check_set_probability(sizes=(1, 2, 3)) -> dict:
    """The exponential race: item i arrives at Exp(w_i), the draw is the first K arrivals, so
    ``P(S) = int_0^inf R e^{-R t} prod_{s in S} (1 - e^{-w_s t}) dt`` (R the rest's total weight).
    Integrated symbolically for each K in ``sizes`` and compared with the Plackett-Luce sum."""
    t = sp.Symbol("t", positive=True)
    rest = sp.Symbol("R", positive=True)
    equal = {}
    for size in sizes:
        weights = dict(enumerate(sp.symbols(f"w0:{size}", positive=True)))
        integrand = rest * sp.exp(-rest * t) * sp.Mul(*[1 - sp.exp(-w * t) for w in weights.values()])
        race = sp.integrate(sp.expand(integrand), (t, 0, sp.oo))
        equal[size] = sp.simplify(race - plackett_luce(weights, list(weights), rest)) == 0
    return {"integral_equals_plackett_luce": equal}


def correction_limit() -> dict:
    """K = 2, weights not depending on the positive: the correction of drawn negative k1 relative to
    the positive j, ``o_k1 - o_j = log pi(T - k1) - log pi(T - j)``, and its limit as the rest of the
    pool grows (R -> oo): ``log w_j - log w_k1``, sampled softmax's logQ correction."""
    rest = sp.Symbol("R", positive=True)
    weights = dict(zip(("j", "k1", "k2"), sp.symbols("w_j w_k1 w_k2", positive=True)))
    ratio = plackett_luce(weights, ["j", "k2"], rest) / plackett_luce(weights, ["k1", "k2"], rest)
    limit = sp.limit(ratio, rest, sp.oo)
    return {"correction": sp.log(sp.simplify(ratio)), "large_pool_limit": sp.log(limit),
            "limit_is_logq": sp.simplify(limit - weights["j"] / weights["k1"]) == 0}


def _draws(candidates: int, k: int):
    """Symbols, label probabilities, and every (positive, drawn set, members, draw probability, offsets)
    of a pool of ``candidates`` whose sampler weights ``w_jm`` depend on the positive j."""
    scores = sp.symbols(f"e0:{candidates}", positive=True)  # e_i = exp(s_i)
    sampler = {(j, m): sp.Symbol(f"w_{j}{m}", positive=True)
               for j in range(candidates) for m in range(candidates) if m != j}
    labels = [e / sum(scores) for e in scores]

    def draw(positive, drawn, members):
        pool = {m: sampler[positive, m] for m in range(candidates) if m != positive}
        return plackett_luce(pool, list(drawn), sum(w for m, w in pool.items() if m not in members))

    cases = []
    for positive in range(candidates):
        for drawn in itertools.combinations([m for m in range(candidates) if m != positive], k):
            members = [positive, *drawn]
            # exp(s_m + o_m) = e_m * pi_m(T - m): McFadden's offsets, written without logs.
            offsets = {m: draw(m, [x for x in members if x != m], members) for m in members}
            cases.append((positive, members, draw(positive, drawn, members), offsets))
    return scores, sampler, labels, cases


def _expected_gradient(scores, labels, cases, corrected: bool) -> list:
    """E over the positive and the draw of d loss / d s_i, for every candidate i."""
    gradient = [0] * len(scores)
    for positive, members, probability, offsets in cases:
        terms = {m: scores[m] * (offsets[m] if corrected else 1) for m in members}
        total = sum(terms.values())
        for m in members:
            gradient[m] += labels[positive] * probability * (terms[m] / total - (1 if m == positive else 0))
    return gradient


def check_correction_unbiased(candidates: int = 4, k: int = 2, seed: int = 0, points: int = 3) -> dict:
    """The corrected loss's expected gradient at the label-generating scores, for every score and every
    positive-dependent sampler weight (12 free weights for 4 candidates), decided two ways:

    * symbolically, by the two identities it reduces to: for every drawn set T and member i,
      ``P(T) softmax_T(s + o)_i = p_i pi_i(T - i)`` (Bayes' rule), and ``sum_S pi_i(S) = 1``;
    * in exact rational arithmetic at ``points`` random rational points (a nonzero rational function
      vanishes at a random point with probability 0).

    The plain loss's expected gradient at random values is reported too (nonzero: its bias).
    """
    if not (isinstance(candidates, int) and isinstance(k, int) and 1 <= k < candidates <= 5):
        raise ValueError(f"need integers 1 <= k < candidates <= 5, got candidates={candidates!r}, k={k!r}")
    scores, sampler, labels, cases = _draws(candidates, k)
    bayes = True
    for members in {tuple(sorted(m)) for _, m, _, _ in cases}:
        joint = {c[0]: labels[c[0]] * c[2] for c in cases if tuple(sorted(c[1])) == members}
        offsets = next(c[3] for c in cases if tuple(sorted(c[1])) == members)
        total = sum(scores[m] * offsets[m] for m in members)
        bayes &= all(sp.cancel(sum(joint.values()) * scores[i] * offsets[i] / total - joint[i]) == 0 for i in members)
    normalised = all(sp.simplify(sum(c[2] for c in cases if c[0] == i) - 1) == 0 for i in range(candidates))
    corrected = _expected_gradient(scores, labels, cases, corrected=True)
    plain = _expected_gradient(scores, labels, cases, corrected=False)
    rng = np.random.default_rng(seed)
    symbols = [*scores, *sampler.values()]
    exact_zero, plain_max = True, 0.0
    for _ in range(points):
        values = {x: sp.Rational(int(rng.integers(1, 50)), int(rng.integers(1, 50))) for x in symbols}
        exact_zero &= all(g.subs(values) == 0 for g in corrected)
        plain_max = max(plain_max, max(abs(float(g.subs(values))) for g in plain))
    return {"bayes_identity_holds": bool(bayes), "draw_probabilities_sum_to_one": bool(normalised),
            "corrected_gradient_exactly_zero_at_random_rational_points": bool(exact_zero),
            "free_sampler_weights": len(sampler), "plain_gradient_max_abs_at_random_points": plain_max}


def margin_dynamics_solution() -> sp.Expr:
    """Solution g(eta) of g' = -(k0 + k1 eta) g, g(0) = g0."""
    g = sp.Function("g")
    rate = RATE_AT_ZERO + RATE_SLOPE * ETA
    solution = sp.dsolve(sp.Eq(g(ETA).diff(ETA), -rate * g(ETA)), g(ETA), ics={g(0): INITIAL_GAP})
    return sp.simplify(solution.rhs)


def check_margin_dynamics(k0: float, k1: float, g0: float = 1.0) -> dict:
    """The log-gap curvature of the closed form (``-k1 / 2``, read off the solution) and the closed
    form's max relative error against a numerical ODE solution on [0, 1]."""
    solution = margin_dynamics_solution()
    curvature = sp.diff(sp.log(solution), ETA, 2).subs({RATE_SLOPE: k1}) / 2
    closed = sp.lambdify(ETA, solution.subs({RATE_AT_ZERO: k0, RATE_SLOPE: k1, INITIAL_GAP: g0}), "numpy")
    eta = np.linspace(0.0, 1.0, 51)
    numeric = solve_ivp(lambda t, g: -(k0 + k1 * t) * g, (0.0, 1.0), [g0], t_eval=eta, rtol=1e-10, atol=1e-12)
    return {"log_gap_curvature": float(curvature),
            "max_relative_error": float(np.max(np.abs(numeric.y[0] - closed(eta)) / np.abs(closed(eta))))}


def schedule_expression() -> sp.Expr:
    """alpha(eta) = a0 + (a1 - a0) (s(eta) - s(0)) / (s(1) - s(0)), s = sigmoid(kappa (eta - m))."""
    def s(t):
        return 1 / (1 + sp.exp(-STEEPNESS * (t - MIDPOINT)))
    return ALPHA_EARLY + (ALPHA_LATE - ALPHA_EARLY) * (s(ETA) - s(0)) / (s(1) - s(0))


def schedule_linearity(schedule: CurriculumSchedule, points: int = 1001) -> dict:
    """Max distance of alpha(eta) from its chord on [0, 1] (how far from linear the curriculum is),
    and the closed form's max error against the library's schedule."""
    if not isinstance(schedule, CurriculumSchedule):
        raise ValueError(f"schedule must be a CurriculumSchedule, got {schedule!r}")
    values = {ALPHA_EARLY: sp.nsimplify(schedule.alpha_early), ALPHA_LATE: sp.nsimplify(schedule.alpha_late),
              STEEPNESS: sp.nsimplify(schedule.steepness), MIDPOINT: sp.nsimplify(schedule.midpoint)}
    alpha = sp.lambdify(ETA, schedule_expression().subs(values), "numpy")
    eta = np.linspace(0.0, 1.0, points)
    chord = schedule.alpha_early + (schedule.alpha_late - schedule.alpha_early) * eta
    return {"max_distance_from_chord": float(np.max(np.abs(alpha(eta) - chord))),
            "range": abs(schedule.alpha_late - schedule.alpha_early),
            "max_error_against_library": float(np.max(np.abs(alpha(eta) - schedule(eta))))}
