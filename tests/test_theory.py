"""Theory simulations: the notebooks run end to end at a tiny size, and the sims module is right.

The notebook test executes all three notebooks through theory/run.py (jupytext + papermill) and
checks verdicts.json; the rest are unit tests of theory.sims: the known optimum is optimal, the
exact risks match label-sampled ones, the arms draw what they claim, the corrected arms converge to
W* and the plain BNS arms do not, the Newton trainer reaches a stationary point, the sympy
derivations hold, and the fits recover known floors, rates and curvatures.
"""

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bacl.losses import contrastive_logits_loss
from bacl.sampler import BoundarySampler, boundary_score
from bacl.schedule import SCHEDULE_PRESETS, CurriculumSchedule
from theory import run
from theory.sims.curves import (
    bend_verdict,
    floor_fit,
    floor_verdict,
    limit_distance,
    log_quadratic_difference,
    log_quadratic_fit,
)
from theory.sims.draws import draw_negatives, gumbel_top_k, uniform_subset
from theory.sims.experiments import run_arms
from theory.sims.model import BoundaryPoolModel
from theory.sims.report import VERDICTS, validate_verdicts, verdict_entry
from theory.sims.risk import excess_log_loss, excess_pairwise_risk, log_loss_risk, pairwise_risk
from theory.sims.stats import linear_fit, loglog_slope, sign_verdict
from theory.sims.symbolic import (
    check_correction_unbiased,
    check_margin_dynamics,
    check_set_probability,
    correction_limit,
    schedule_linearity,
)
from theory.sims.training import TrainingConfig, contrastive_hessian, train_runs

MODEL = BoundaryPoolModel()
TEST = MODEL.test_pools(1500, torch.Generator().manual_seed(0))


def _numbers(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


@pytest.mark.slow
def test_notebooks_run_at_a_tiny_size_and_write_finite_verdicts(tmp_path):
    merged = run.main(["--smoke", "--results-dir", str(tmp_path)])
    written = json.loads((tmp_path / "verdicts.json").read_text())
    assert written == merged
    assert set(written) == {"theorem_4_1_fast_rate", "theorem_4_2_uniform_floor", "proposition_4_1_margin_contraction"}
    validate_verdicts(written)
    for entry in written.values():
        assert entry["verdict"] in VERDICTS
        low, high = entry["confidence_interval"]
        assert low <= high
        assert all(math.isfinite(v) for v in _numbers(entry))
    assert set(written["theorem_4_1_fast_rate"]["details"]["arms"]) == {
        "uniform", "full", "bacl", "bacl_corrected", "curriculum", "curriculum_corrected", "curriculum_logit_units"}
    for name in run.NOTEBOOKS:
        assert (tmp_path / "executed" / f"{name}.ipynb").is_file()
        assert (tmp_path / "figures" / f"{name}.png").is_file() and (tmp_path / "figures" / f"{name}.pdf").is_file()


def test_the_known_optimum_has_zero_excess_and_ties_count_half():
    optimum = MODEL.optimum()[None]
    assert excess_pairwise_risk(optimum, TEST).item() == 0.0
    assert excess_log_loss(optimum, TEST).abs().item() < 1e-12
    # Rescaling W* keeps the Bayes ranking (zero pairwise excess) but miscalibrates the log-loss.
    assert excess_pairwise_risk(2 * optimum, TEST).item() == 0.0
    assert excess_log_loss(2 * optimum, TEST).item() > 1e-3
    # W = 0 ties every pair: a tie broken at random is wrong half the time, so its risk is 1/2.
    zero = torch.zeros(1, MODEL.dim, MODEL.dim, dtype=torch.float64)
    assert abs(pairwise_risk(zero, TEST).item() - 0.5) < 1e-12
    torch.testing.assert_close(excess_pairwise_risk(zero, TEST), pairwise_risk(zero, TEST) - pairwise_risk(optimum, TEST))


@given(st.integers(0, 10_000), st.floats(0.3, 2.0))
def test_perturbing_the_optimum_raises_both_risks(seed, size):
    direction = torch.randn(MODEL.dim, MODEL.dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    weights = torch.stack([MODEL.optimum(), MODEL.optimum() + size * direction / direction.norm()])
    pairwise, log_loss = pairwise_risk(weights, TEST), log_loss_risk(weights, TEST)
    assert pairwise[1] > pairwise[0] and log_loss[1] > log_loss[0]
    assert torch.allclose(excess_pairwise_risk(weights, TEST), pairwise - pairwise[0], atol=1e-12)
    assert torch.allclose(excess_log_loss(weights, TEST), log_loss - log_loss[0], atol=1e-10)


def test_exact_pairwise_risk_matches_sampled_labels():
    weights = (MODEL.optimum() + 0.8 * torch.eye(MODEL.dim, dtype=torch.float64).flip(0))[None]
    labels = torch.multinomial(TEST.probabilities, 200, replacement=True, generator=torch.Generator().manual_seed(1))
    scores = torch.einsum("td,de,tme->tm", TEST.anchor, weights[0], TEST.candidates)
    positive = scores.gather(1, labels)  # (T, 200)
    beaten = (scores[:, None, :] > positive[..., None]).sum(-1).double() / MODEL.pool_negatives
    # Same pools, labels drawn from p: the sampled mean estimates the exact (label-integrated) risk.
    error = beaten.mean() - pairwise_risk(weights, TEST)[0]
    assert abs(error) < 4 * beaten.mean(1).std() / math.sqrt(TEST.anchor.shape[0])


def test_training_pools_mark_exactly_the_detail_only_negatives_ambiguous():
    pools = MODEL.training_pools(400, torch.Generator().manual_seed(2))
    coarse = MODEL.coarse_dim
    same_coarse = torch.isclose(pools.negatives[..., :coarse], pools.positive[:, None, :coarse]).all(-1)
    assert torch.equal(pools.ambiguous, same_coarse)
    counts = pools.ambiguous.sum(1)
    assert set(counts.tolist()) <= {0, MODEL.ambiguous_negatives}
    assert (counts == MODEL.ambiguous_negatives).float().mean() > 0.7  # the positive is usually in the group
    assert pools.head(10).anchor.shape == (10, MODEL.dim)
    with pytest.raises(ValueError, match="count"):
        pools.head(401)


def test_model_config_and_draws_reject_bad_arguments():
    with pytest.raises(ValueError, match="ambiguous_negatives"):
        BoundaryPoolModel(ambiguous_negatives=16)
    with pytest.raises(ValueError, match="detail_scale"):
        BoundaryPoolModel(detail_scale=0.0)
    with pytest.raises(ValueError, match="arm"):
        TrainingConfig(arm="hard")
    with pytest.raises(ValueError, match="epochs"):
        TrainingConfig(epochs=1)
    with pytest.raises(ValueError, match="hold_epochs"):
        TrainingConfig(hold_epochs=-1)
    with pytest.raises(ValueError, match="weights"):
        pairwise_risk(torch.zeros(2, 3, 3), TEST)
    with pytest.raises(ValueError, match="initial_theta"):
        train_runs([MODEL.training_pools(5, torch.Generator())], [0], TrainingConfig(), torch.zeros(3))
    with pytest.raises(ValueError, match="arm"):
        draw_negatives("hard", BoundarySampler(), *(torch.zeros(1, 4),) * 2, torch.zeros(1, 5, 4),
                       (torch.zeros(1, 1), torch.zeros(1, 5)), 0.5, 2, torch.Generator())


def test_contrastive_hessian_matches_autograd_of_the_bacl_loss():
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(6, 4, 3, generator=generator)
    offsets = torch.tensor([0.0, 0.0, float("-inf"), 0.5]).expand(6, 4)  # a dropped draw and a weighted one

    def loss(theta):
        logits = features @ theta + offsets
        return contrastive_logits_loss(logits[:, :1], torch.zeros(6, dtype=torch.long), logits[:, 1:])

    theta = torch.randn(3, generator=generator)
    expected = torch.autograd.functional.hessian(loss, theta)
    assert torch.allclose(contrastive_hessian(features, features @ theta + offsets), expected, atol=1e-5)


def test_newton_training_reaches_a_stationary_point_of_the_full_pool_loss():
    # The full arm draws the whole pool every epoch, so the objective is fixed and Newton must converge.
    pools = MODEL.training_pools(300, torch.Generator().manual_seed(4))
    theta = train_runs([pools], [0], TrainingConfig(arm="full", epochs=30), torch.zeros(MODEL.dim)).theta[0]
    theta = theta.float().requires_grad_(True)
    negative = (pools.anchor[:, None, :] * pools.negatives) @ theta
    positive = ((pools.anchor * pools.positive) @ theta)[:, None]
    (gradient,) = torch.autograd.grad(contrastive_logits_loss(positive, torch.zeros(300, dtype=torch.long), negative), theta)
    assert gradient.norm() < 1e-4


def _embeddings(seed, batch=6, pool=7):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 4, generator=generator), torch.randn(batch, 4, generator=generator),
            torch.randn(batch, pool, 4, generator=generator))


def test_curriculum_arm_draws_like_boundary_sampler_without_its_policy():
    class NoPolicy(BoundarySampler):
        def priorities(self, features):
            return torch.zeros(features.shape[:-1])

    anchor, positive, candidates = _embeddings(5, batch=50)
    sampler = NoPolicy(num_negatives=3)
    expected = sampler(anchor, positive, candidates, 0.8, generator=torch.Generator().manual_seed(7)).index
    logits = -sampler.schedule(0.8) * boundary_score(anchor, positive, candidates) / sampler.boundary_temperature
    assert torch.equal(gumbel_top_k(logits, 3, torch.Generator().manual_seed(7)), expected)
    scores = (torch.zeros(50, 1), torch.randn(50, 7, generator=torch.Generator().manual_seed(8)))
    for arm in ("curriculum", "curriculum_corrected", "curriculum_logit_units"):
        draw = draw_negatives(arm, sampler, anchor, positive, candidates, scores, 0.8, 3, torch.Generator().manual_seed(7))
        assert draw.index.shape == (50, 3) and draw.policy_loss is None
        assert (draw.offset != 0).any() == (arm == "curriculum_corrected")


def test_uniform_subset_draws_every_ordered_subset_equally_often():
    rows = 60_000
    index = uniform_subset(rows, 5, 2, torch.Generator().manual_seed(9))
    assert (index[:, 0] != index[:, 1]).all() and index.min() == 0 and index.max() == 4
    counts = torch.zeros(5, 5).index_put_((index[:, 0], index[:, 1]), torch.ones(rows), accumulate=True)
    expected = rows / 20
    assert (counts.diagonal() == 0).all()
    off_diagonal = counts[~torch.eye(5, dtype=torch.bool)]
    assert ((off_diagonal - expected).abs() < 5 * math.sqrt(expected)).all()


def test_corrected_arms_converge_to_the_optimum_and_plain_bns_does_not():
    pools = [MODEL.training_pools(3000, torch.Generator().manual_seed(s)) for s in range(2)]
    optimum = MODEL.optimum().diagonal()
    limits = {arm: train_runs(pools, [0, 1], TrainingConfig(arm=arm, epochs=20), torch.zeros(MODEL.dim)).theta.mean(0)
              for arm in ("uniform", "curriculum", "curriculum_corrected")}
    assert (limits["uniform"] - optimum).abs().max() < 0.3
    assert (limits["curriculum_corrected"] - optimum).abs().max() < 0.3
    assert (limits["curriculum"][:MODEL.coarse_dim] < 3.4).all()  # BNS without offsets shrinks the coarse weights


def test_bacl_arm_draws_more_ambiguous_negatives_late_and_workers_do_not_change_results():
    config = TrainingConfig(epochs=8)
    arms = {"bacl": [30, 60], "uniform": [30, 60, 90]}
    single = run_arms(MODEL, arms, 2, TEST, config, workers=1)
    split = run_arms(MODEL, arms, 2, TEST, config, workers=2)
    for arm in single:
        for field in ("excess_pairwise", "excess_log_loss", "theta", "ambiguous_draw_share"):
            # Equal up to rounding: the risk einsums group runs differently.
            assert np.allclose(getattr(single[arm], field), getattr(split[arm], field), rtol=1e-9, atol=1e-12)
        assert np.all(np.isfinite(single[arm].excess_pairwise)) and np.all(single[arm].excess_pairwise >= 0)
    assert single["uniform"].theta.shape == (2, 3, MODEL.dim)
    share = single["bacl"].ambiguous_draw_share
    assert share[..., -1].mean() > share[..., 1].mean()  # the curriculum turns to hard negatives


def test_hold_epochs_extend_the_run_at_the_end_of_the_curriculum():
    pools = MODEL.training_pools(50, torch.Generator().manual_seed(6))
    result = train_runs([pools], [0], TrainingConfig(arm="uniform", epochs=5, hold_epochs=3, optimizer="gd"),
                        torch.zeros(MODEL.dim), on_epoch=lambda weights: weights[:, 0, 0], record_every=1)
    assert result.records.shape == (9, 1) and result.ambiguous_draw_share.shape == (1, 8)
    torch.testing.assert_close(result.recorded_progress, torch.arange(9, dtype=torch.float64) / 5)
    assert result.curvature.shape == (1, 8, MODEL.dim, MODEL.dim)


def test_sympy_derives_the_set_probability_the_correction_and_its_unbiasedness():
    assert all(check_set_probability(sizes=(1, 2))["integral_equals_plackett_luce"].values())
    assert correction_limit()["limit_is_logq"]
    small = check_correction_unbiased(candidates=3, k=1, points=2)
    assert small["bayes_identity_holds"] and small["draw_probabilities_sum_to_one"]
    assert small["corrected_gradient_exactly_zero_at_random_rational_points"]
    assert small["plain_gradient_max_abs_at_random_points"] > 1e-3


@pytest.mark.parametrize("preset", sorted(SCHEDULE_PRESETS))
def test_sympy_schedule_matches_the_library_and_the_margin_ode_its_closed_form(preset):
    linearity = schedule_linearity(CurriculumSchedule.preset(preset))
    assert linearity["max_error_against_library"] < 1e-12
    assert 0 <= linearity["max_distance_from_chord"] < linearity["range"]
    dynamics = check_margin_dynamics(1.0, 4.0)
    assert dynamics["max_relative_error"] < 1e-6 and abs(dynamics["log_gap_curvature"] + 2.0) < 1e-12


def test_default_schedule_is_nearly_straight_over_the_whole_run():
    assert schedule_linearity(CurriculumSchedule.preset("default"))["max_distance_from_chord"] < 0.01


def test_fits_recover_known_floors_rates_and_curvatures():
    rng = np.random.default_rng(0)
    n = np.array([100, 300, 1000, 3000, 1e4, 3e4, 1e5])
    noise = np.exp(0.1 * rng.standard_normal((10, n.size)))
    fast = (-1.1, -0.9)  # a plain log-log slope CI around -1
    unbiased, biased = floor_fit(n, 0.7 / n * noise), floor_fit(n, (6e-4 + 0.7 / n) * noise)
    assert unbiased["floor_ci"][0] < 1e-3 * unbiased["mean_excess_at_largest_n"]
    assert floor_verdict(unbiased, fast) == "supported"
    assert biased["floor_ci"][0] < 6e-4 < biased["floor_ci"][1] and floor_verdict(biased, fast) == "not supported"
    assert biased["rate_ci"][0] < 1.0 < biased["rate_ci"][1]
    slow = floor_fit(n, 0.7 / np.sqrt(n) * noise)
    assert slow["rate_ci"][1] < 0.75 and floor_verdict(slow, fast) == "not supported"
    # Flat excess: floor and slow rate fit alike; the plain slope's CI above -0.75 rules out the fast rate.
    assert floor_verdict(unbiased, (-0.3, -0.1)) == "not supported"
    theta = 3.0 + rng.standard_normal((10, n.size, 4)) / np.sqrt(n)[None, :, None]
    own = limit_distance(n, theta)
    assert own["slope_ci"][0] < -1.0 < own["slope_ci"][1] and np.allclose(own["limit"], 3.0, atol=0.02)
    assert limit_distance(n, theta, limit=np.zeros(4))["slope_ci"][1] > -0.1  # far from the wrong limit, no rate
    eta = np.linspace(0, 1, 41)
    wiggle = np.exp(0.01 * rng.standard_normal((8, eta.size)))
    bend, straight = np.exp(-6 * eta ** 2) * wiggle, np.exp(-3 * eta) * wiggle
    fit = log_quadratic_fit(eta, bend, (0.1, 0.9))
    assert abs(fit["curvature"] + 6) < 0.1 and fit["curvature_ci"][1] < 0
    control = log_quadratic_difference(eta, bend, straight, (0.1, 0.9))
    assert control["difference_ci"][1] < 0 and bend_verdict(fit, control["difference_ci"]) == "supported"
    assert not fit["sign_change_in_window"]
    assert bend_verdict(log_quadratic_fit(eta, straight, (0.1, 0.9)), (0.1, 0.2)) == "not supported"
    crossing = (0.5 - eta)[None] * wiggle  # changes sign at 0.5: the window stops before it, and it is no contraction
    crossed = log_quadratic_fit(eta, crossing, (0.1, 0.9))
    assert crossed["window"][1] < 0.5 and crossed["sign_change_in_window"] and bend_verdict(crossed) == "not supported"
    with pytest.raises(ValueError, match="records"):
        log_quadratic_fit(eta, crossing, (0.45, 0.9))
    line = linear_fit(eta, 1.0 + 2.0 * eta + 0.05 * rng.standard_normal((10, eta.size)))
    assert line.slope_ci[0] < 2.0 < line.slope_ci[1] and sign_verdict(line.slope_ci, +1) == "supported"
    assert sign_verdict((-1.0, 1.0), +1) == "inconclusive"
    assert loglog_slope(n, 3.0 / n * noise).slope_ci[0] < -1.0 < loglog_slope(n, 3.0 / n * noise).slope_ci[1]


def test_verdict_validation_names_the_bad_field():
    entry = verdict_entry("claim", "setting", "slope", -1.0, (-1.1, -0.9), "supported", {"x": 1.0})
    validate_verdicts({"claim": entry})
    with pytest.raises(ValueError, match="verdict"):
        verdict_entry("claim", "setting", "slope", -1.0, (-1.1, -0.9), "proven", {})
    with pytest.raises(ValueError, match=r"details\.x"):
        verdict_entry("claim", "setting", "slope", -1.0, (-1.1, -0.9), "supported", {"x": float("nan")})
    with pytest.raises(ValueError, match="confidence_interval"):
        verdict_entry("claim", "setting", "slope", -1.0, (-0.9, -1.1), "supported", {})
