# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Theorem 4.1: does BACL's excess risk fall at the fast rate Õ(1/n)?
#
# **Setting** (defined in `theory/sims/model.py`; the paper's own definitions are not available).
# Anchors `x ~ N(0, I_4)`; each anchor comes with a pool of P + 1 = 16 captions: a *boundary group*
# of A + 1 captions that share the anchor's coarse content (3 dimensions) and differ only in one
# small detail coordinate, and P − A unrelated *easy* captions. The positive is drawn from the pool
# by the conditional-logit rule `softmax(x^T W* c)`, `W* = diag(4, 4, 4, 4)`. Negatives that differ
# from the positive only in detail are *ambiguous*; ρ = A / P is their share (0.4 here).
#
# * **n** = number of training anchors (one pool and one positive each).
# * **Learner**: a bilinear scorer `x^T W c` (16 parameters, a linear projection head), trained by
#   full-batch Newton steps on bacl's contrastive loss (`bacl.losses.contrastive_logits_loss`) of the
#   positive against K = 4 negatives drawn each epoch from its pool — by `bacl.sampler.BoundarySampler`
#   with the paper's default curriculum (0.3, −0.5, 1.5) in the **BACL** arm, uniformly in the
#   **uniform** arm (same K, same everything else).
# * **Risk** (primary): the probability that a negative drawn uniformly from the pool outscores the
#   positive — the pairwise ranking error that boundary accuracy and recall measure. Ordering by
#   `x^T W* c` is the Bayes ranking, so the optimum is known; the excess is computed exactly on
#   20 000 test pools with the positive integrated out. (Secondary: the excess contrastive
#   log-loss, `KL(p* || p_W)`, also minimised by W*.)
#
# **Why this setting.** It is the smallest model in which "ambiguous negatives" have a precise
# meaning (same coarse content, one detail differs), both risks have a known optimum (the model
# is well specified for a bilinear scorer), and sampling matters: the detail weight is learnt
# mostly from ambiguous negatives, which uniform sampling draws at rate ρ and BNS draws
# preferentially late in the curriculum.
#
# **Test.** Fit `log E[excess] = log C + slope · log n` over n spanning two decades (10 seeds each,
# seed bootstrap for the 95 % CI); the fast rate predicts slope −1, the slow rate −1/2. The
# verdict is *supported* when the CI of the slope over all n **and** the CI of the slope over the
# upper half of n lie below −3/4 (halfway between −1 and −1/2), *not supported* when either lies
# above, *inconclusive* otherwise. The upper-half slope is there to catch a plateau, which a single
# global slope would average away.

# %% tags=["parameters"]
n_values = [100, 250, 630, 1600, 4000, 10000]  # 6 log-spaced sizes over two decades
seeds = 10  # independent training sets per n: the bootstrap unit
ambiguous_negatives = 6  # A of the P 15 negatives, rho 0.4: more ambiguous negatives than K (4)
test_pools = 20000  # exact-risk test pools; Monte Carlo error ~1 % of the smallest excess
epochs = 120  # Newton epochs; 240 moved uniform's excess by under 5 %, BACL's plateau up about 25 %, no verdict
workers = 2  # processes over seeds: the notebooks' budget is 2 minutes on 2 cores
base_seed = 0  # offsets every random stream
results_dir = "theory/results"  # figures/ and verdicts/ go below it
repo_root = "."  # papermill runs the notebook with the repository root as working directory

# %%
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(repo_root).resolve()))

import matplotlib.pyplot as plt
import numpy as np
import torch

from theory.sims.experiments import run_arms
from theory.sims.model import BoundaryPoolModel
from theory.sims.report import save_figure, verdict_entry, write_verdicts
from theory.sims.stats import loglog_slope, rate_verdict
from theory.sims.symbolic import check_relaxation_gradient
from theory.sims.training import TrainingConfig

torch.set_num_threads(1)  # intra-op threads do not pay on these small tensors; see workers
started = time.perf_counter()
model = BoundaryPoolModel(ambiguous_negatives=ambiguous_negatives)
test = model.test_pools(test_pools, torch.Generator().manual_seed(base_seed))
positive_in_group = float((test.probabilities * test.in_group).sum(-1).mean())
print(f"rho = {model.ambiguous_share:.3f}; the positive is in the boundary group in {positive_in_group:.1%} of pools")

# %% [markdown]
# ## The gradient path BNS trains its policy through (sympy against autograd)
# The sampler's straight-through Gumbel-Softmax has Jacobian `(diag r − r rᵀ)/τ`; the policy
# objective's gradient follows. Both are derived symbolically and compared with autograd through
# `BoundarySampler` (priorities made a free parameter).

# %%
relaxation = check_relaxation_gradient()
print(relaxation)
assert relaxation["jacobian_identity_holds"]
assert relaxation["max_jacobian_error"] < 1e-5 and relaxation["max_policy_gradient_error"] < 1e-5

# %% [markdown]
# ## Train both arms on every (seed, n)

# %%
results = run_arms(model, n_values, seeds, test, TrainingConfig(epochs=epochs), base_seed=base_seed,
                    workers=workers)
n = np.asarray(n_values, dtype=float)
for arm, result in results.items():
    late_share = result.ambiguous_draw_share[..., -10:].mean()
    print(f"{arm:8s} mean excess pairwise risk {np.array2string(result.excess_pairwise.mean(0), precision=6)}")
    print(f"{'':8s} mean excess log-loss     {np.array2string(result.excess_log_loss.mean(0), precision=5)}")
    print(f"{'':8s} ambiguous share of draws at the end: {late_share:.2f}")
print(f"training and scoring took {time.perf_counter() - started:.0f} s")

# %% [markdown]
# ## Fits: exponent, constant, residuals

# %%
upper = slice(len(n_values) // 2, None)
fits = {}
for arm, result in results.items():
    for risk in ("excess_pairwise", "excess_log_loss"):
        values = getattr(result, risk)
        fits[arm, risk] = {"all": loglog_slope(n, values, seed=base_seed),
                           "upper": loglog_slope(n[upper], values[:, upper], seed=base_seed)}
        f = fits[arm, risk]
        print(f"{arm:8s} {risk:16s} slope {f['all'].slope:+.3f} CI [{f['all'].slope_ci[0]:+.3f}, {f['all'].slope_ci[1]:+.3f}]"
              f"  upper-half slope {f['upper'].slope:+.3f} CI [{f['upper'].slope_ci[0]:+.3f}, {f['upper'].slope_ci[1]:+.3f}]"
              f"  C = {np.exp(f['all'].intercept):.3g}  max |residual| {np.abs(f['all'].residuals).max():.3f}")

# %%
figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
colours = {"bacl": "C3", "uniform": "C0"}
for ax, risk, label in ((axes[0], "excess_pairwise", "excess pairwise risk"), (axes[1], "excess_log_loss", "excess log-loss")):
    for arm, result in results.items():
        values = getattr(result, risk)
        fit = fits[arm, risk]["all"]
        ax.loglog(n, values.T, color=colours[arm], alpha=0.15, lw=0.8)
        ax.loglog(n, values.mean(0), "o-", color=colours[arm], label=f"{arm}: slope {fit.slope:+.2f}")
        ax.loglog(n, np.exp(fit.intercept) * n ** fit.slope, "--", color=colours[arm], lw=1)
    reference = getattr(results["uniform"], risk).mean(0)[0]
    ax.loglog(n, reference * (n / n[0]) ** -1.0, ":", color="k", lw=1, label="slope −1")
    ax.loglog(n, reference * (n / n[0]) ** -0.5, "-.", color="grey", lw=1, label="slope −1/2")
    ax.set(xlabel="n (training anchors)", ylabel=label, title=f"{label}, rho = {model.ambiguous_share:.2f}")
    ax.legend(fontsize=8)
for arm in results:
    axes[2].plot(n, fits[arm, "excess_pairwise"]["all"].residuals, "o-", color=colours[arm], label=arm)
axes[2].axhline(0, color="k", lw=0.8)
axes[2].set(xscale="log", xlabel="n", ylabel="log residual of the power-law fit", title="residuals (pairwise risk)")
axes[2].legend(fontsize=8)
figure_paths = save_figure(figure, Path(results_dir) / "figures", "01_rate")

# %% [markdown]
# ## Verdict

# %%
primary = fits["bacl", "excess_pairwise"]
verdict = rate_verdict([primary["all"].slope_ci, primary["upper"].slope_ci])
setting = (
    f"Pool model (theory/sims/model.py): d = 3 coarse + 1 detail, pools of P + 1 = 16 with rho = A/P = "
    f"{model.ambiguous_share:.3f} ambiguous negatives, positives drawn by softmax(x^T W* c). Bilinear scorer trained "
    f"with bacl's contrastive loss on K = 4 negatives drawn by BoundarySampler (default curriculum), {epochs} "
    f"Newton epochs. Risk: excess pairwise ranking risk against the Bayes ranking, exact on {test_pools} test "
    f"pools. n in {n_values}, {seeds} seeds each; slope CI: seed bootstrap."
)


def summary(arm, risk):
    f = fits[arm, risk]
    return {"slope": f["all"].as_dict(), "upper_half_slope": f["upper"].as_dict(),
            "constant_C": float(np.exp(f["all"].intercept)),
            "mean_excess": getattr(results[arm], risk).mean(0).tolist(),
            "n_times_excess_at_largest_n": float(n[-1] * getattr(results[arm], risk).mean(0)[-1])}


entry = verdict_entry(
    claim="Theorem 4.1: BACL's excess risk falls at the fast rate O~(1/n)",
    setting=setting,
    estimate_name="log-log slope of BACL's excess pairwise risk in n",
    estimate=primary["all"].slope,
    interval=primary["all"].slope_ci,
    verdict=verdict,
    details={
        "rule": "supported if the slope CIs over all n and over the upper half of n both lie below -0.75; "
                "not supported if either lies above",
        "n_values": list(n_values), "seeds": seeds, "rho": model.ambiguous_share,
        "positive_in_group_rate": positive_in_group,
        "bacl_pairwise": summary("bacl", "excess_pairwise"), "bacl_log_loss": summary("bacl", "excess_log_loss"),
        "uniform_pairwise": summary("uniform", "excess_pairwise"), "uniform_log_loss": summary("uniform", "excess_log_loss"),
        "uniform_rate_verdict": rate_verdict([fits["uniform", "excess_pairwise"]["all"].slope_ci,
                                              fits["uniform", "excess_pairwise"]["upper"].slope_ci]),
        "relaxation_gradient_check": relaxation,
        "runtime_seconds": time.perf_counter() - started,
    },
)
write_verdicts(Path(results_dir) / "verdicts" / "01_rate.json", {"theorem_4_1_fast_rate": entry})
print(f"Theorem 4.1: {verdict} (slope {primary['all'].slope:+.3f}, CI {primary['all'].slope_ci}; "
      f"upper half {primary['upper'].slope:+.3f}, CI {primary['upper'].slope_ci})")

# %% [markdown]
# ## Reading the result
#
# Uniform sampling of K of the P negatives has McFadden's (1978) *uniform conditioning* property:
# the probability of drawing a given candidate set is the same whichever of its members is the
# positive, so the conditional logit on the drawn set is a consistent estimator of W* and its
# excess risk falls like 1/n (the uniform arm is the check that the setting, the optimiser and the
# risk estimate can show a fast rate). BoundarySampler's draw depends on which candidate is the
# positive (the boundary score is measured from it, and the curriculum tilts the draw by it), and
# the loss has no correcting offset (`log(weight)` is 0 for every valid draw), so BACL's
# population objective is minimised by a scorer other than W*. Its excess risk then has a floor:
# the curve follows the estimation error while that is larger than the bias, and flattens once it
# is not. Where the floor sits depends on the curriculum and on how long the policy trains (240
# instead of 120 epochs raised it by about a quarter); the upper-half slope tells whether it is
# reached inside the n range. The log-loss panel separates ranking from calibration: a scorer can
# order candidates well and still be miscalibrated.
