"""Theory simulations: the notebooks run end to end at a tiny size, and the sims module is right.

The notebook test executes all three notebooks through theory/run.py (jupytext + papermill) and
checks verdicts.json; the rest are unit tests of theory.sims: the known optimum is optimal, the
exact risks match label-sampled ones, the Newton trainer reaches a stationary point, the sympy
derivations match bacl's numerics, and the fits recover known exponents.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bacl.losses import contrastive_logits_loss  # noqa: E402
from bacl.schedule import SCHEDULE_PRESETS, CurriculumSchedule  # noqa: E402
from theory import run  # noqa: E402
from theory.sims.experiments import run_arms  # noqa: E402
from theory.sims.model import BoundaryPoolModel  # noqa: E402
from theory.sims.report import VERDICTS, validate_verdicts, verdict_entry  # noqa: E402
from theory.sims.risk import (  # noqa: E402
    excess_log_loss,
    excess_pairwise_risk,
    log_loss_risk,
    pairwise_risk,
)
from theory.sims.stats import (  # noqa: E402
    linear_fit,
    loglog_slope,
    margin_fits,
    margin_verdict,
    rate_verdict,
    removes_growth,
    sign_verdict,
)
from theory.sims.symbolic import (  # noqa: E402
    check_margin_dynamics,
    check_relaxation_gradient,
    check_schedule,
    logistic_rate_exponent,
)
from theory.sims.training import TrainingConfig, contrastive_hessian, train_runs  # noqa: E402

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
    for name in run.NOTEBOOKS:
        assert (tmp_path / "executed" / f"{name}.ipynb").is_file()
        assert (tmp_path / "figures" / f"{name}.png").is_file() and (tmp_path / "figures" / f"{name}.pdf").is_file()


def test_the_known_optimum_has_zero_excess_and_the_excess_is_a_risk_difference():
    optimum = MODEL.optimum()[None]
    assert excess_pairwise_risk(optimum, TEST).item() == 0.0
    assert excess_log_loss(optimum, TEST).abs().item() < 1e-12
    # Rescaling W* keeps the Bayes ranking (zero pairwise excess) but miscalibrates the log-loss.
    assert excess_pairwise_risk(2 * optimum, TEST).item() == 0.0
    assert excess_log_loss(2 * optimum, TEST).item() > 1e-3


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


def test_model_and_config_reject_bad_arguments():
    with pytest.raises(ValueError, match="ambiguous_negatives"):
        BoundaryPoolModel(ambiguous_negatives=16)
    with pytest.raises(ValueError, match="detail_scale"):
        BoundaryPoolModel(detail_scale=0.0)
    with pytest.raises(ValueError, match="arm"):
        TrainingConfig(arm="hard")
    with pytest.raises(ValueError, match="epochs"):
        TrainingConfig(epochs=1)
    with pytest.raises(ValueError, match="weights"):
        pairwise_risk(torch.zeros(2, 3, 3), TEST)


def test_contrastive_hessian_matches_autograd_of_the_bacl_loss():
    generator = torch.Generator().manual_seed(3)
    anchor, candidates = torch.randn(6, 3, generator=generator), torch.randn(6, 4, 3, generator=generator)
    offsets = torch.tensor([0.0, 0.0, float("-inf"), 0.5]).expand(6, 4)  # a dropped draw and a weighted one

    def loss(flat):
        logits = torch.einsum("nd,de,nme->nm", anchor, flat.reshape(3, 3), candidates) + offsets
        return contrastive_logits_loss(logits[:, :1], torch.zeros(6, dtype=torch.long), logits[:, 1:])

    weights = torch.randn(9, generator=generator)
    expected = torch.autograd.functional.hessian(loss, weights)
    logits = torch.einsum("nd,de,nme->nm", anchor, weights.reshape(3, 3), candidates) + offsets
    assert torch.allclose(contrastive_hessian(anchor, candidates, logits), expected, atol=1e-5)


def test_newton_training_reaches_a_stationary_point_of_the_full_pool_loss():
    # K = P draws the whole pool every epoch, so the objective is fixed and Newton must converge.
    pools = MODEL.training_pools(300, torch.Generator().manual_seed(4))
    config = TrainingConfig(arm="uniform", num_negatives=MODEL.pool_negatives, epochs=40)
    weights = train_runs([pools], [0], config, torch.zeros(MODEL.dim, MODEL.dim)).weights[0].float().requires_grad_(True)
    logits = torch.einsum("nd,de,npe->np", pools.anchor, weights, pools.negatives)
    positive = torch.einsum("nd,de,ne->n", pools.anchor, weights, pools.positive)[:, None]
    loss = contrastive_logits_loss(positive, torch.zeros(300, dtype=torch.long), logits)
    (gradient,) = torch.autograd.grad(loss, weights)
    assert gradient.norm() < 1e-4


def test_bacl_arm_draws_more_ambiguous_negatives_late_and_workers_do_not_change_results():
    config = TrainingConfig(epochs=8)
    single = run_arms(MODEL, [30, 60], 2, TEST, config, workers=1)
    split = run_arms(MODEL, [30, 60], 2, TEST, config, workers=2)
    for arm in single:
        for field in ("excess_pairwise", "excess_log_loss", "weights", "ambiguous_draw_share"):
            # Equal up to rounding: the risk einsums group runs differently.
            assert np.allclose(getattr(single[arm], field), getattr(split[arm], field), rtol=1e-9, atol=1e-12)
        assert np.all(np.isfinite(single[arm].excess_pairwise)) and np.all(single[arm].excess_pairwise >= 0)
    share = single["bacl"].ambiguous_draw_share
    assert share[..., -1].mean() > share[..., 1].mean()  # the curriculum turns to hard negatives


@pytest.mark.parametrize("preset", sorted(SCHEDULE_PRESETS))
def test_sympy_schedule_matches_the_library(preset):
    result = check_schedule(CurriculumSchedule.preset(preset))
    assert result["max_value_error"] < 1e-12
    assert result["max_derivative_error"] < 1e-5
    assert result["crossover_error"] < 1e-9
    assert result["midpoint_quadratic_coefficient"] == 0


def test_sympy_gradients_and_margin_dynamics_match_numerics():
    relaxation = check_relaxation_gradient(size=3, batch=2, seed=5)
    assert relaxation["jacobian_identity_holds"]
    assert relaxation["max_jacobian_error"] < 1e-5 and relaxation["max_policy_gradient_error"] < 1e-5
    assert check_margin_dynamics(1.0, 4.0) < 1e-6
    assert logistic_rate_exponent()["cubic_coefficient"] == 0


def test_fits_recover_known_exponents_and_shapes():
    rng = np.random.default_rng(0)
    n = np.array([100, 250, 630, 1600, 4000, 10000.0])
    excess = 3.0 * n ** -1.0 * np.exp(0.05 * rng.standard_normal((10, n.size)))
    fit = loglog_slope(n, excess)
    assert fit.slope_ci[0] < -1.0 < fit.slope_ci[1] and abs(np.exp(fit.intercept) - 3.0) < 0.5
    assert rate_verdict([fit.slope_ci]) == "supported"
    assert rate_verdict([(-0.6, -0.4)]) == "not supported"
    rho = np.linspace(0, 0.8, 7)
    line = linear_fit(rho, 1.0 + 2.0 * rho + 0.05 * rng.standard_normal((10, rho.size)))
    assert line.slope_ci[0] < 2.0 < line.slope_ci[1]
    assert sign_verdict(line.slope_ci, +1) == "supported" and sign_verdict((-1.0, 1.0), +1) == "inconclusive"
    assert removes_growth(line.slope_ci, (-1.0, 1.0)) == "no"
    eta = np.linspace(0, 1, 41)
    noise = np.exp(0.01 * rng.standard_normal((8, eta.size)))
    square = margin_fits(eta, np.exp(-6 * eta ** 2) * noise, (0.25, 0.75))
    straight = margin_fits(eta, np.exp(-6 * eta) * noise, (0.25, 0.75))
    assert margin_verdict(square) == "supported"
    assert straight["log_rss_ratio_ci"][0] > 0 and margin_verdict(straight) == "not supported"


def test_verdict_validation_names_the_bad_field():
    entry = verdict_entry("claim", "setting", "slope", -1.0, (-1.1, -0.9), "supported", {"x": 1.0})
    validate_verdicts({"claim": entry})
    with pytest.raises(ValueError, match="verdict"):
        verdict_entry("claim", "setting", "slope", -1.0, (-1.1, -0.9), "proven", {})
    with pytest.raises(ValueError, match=r"details\.x"):
        verdict_entry("claim", "setting", "slope", -1.0, (-1.1, -0.9), "supported", {"x": float("nan")})
    with pytest.raises(ValueError, match="confidence_interval"):
        verdict_entry("claim", "setting", "slope", -1.0, (-0.9, -1.1), "supported", {})
