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
# # Proposition 4.1: does the alignment margin contract like exp(−Θ(η²))?
#
# **Setting**: the pool model of `01_rate` (`theory/sims/model.py`, ρ = 6/15), n = 2000 training
# anchors, the reduced learner `x^T diag(θ) c` and bacl's loss with K = 4. Training is **plain
# full-batch gradient descent** at a constant step (a discretised gradient flow, whose contraction
# rates are the loss's curvatures), from a **coarse-aligned start**: W* with its detail weight set to
# 0, a scorer that knows what a caption is about but not the detail that tells boundary negatives
# apart (a frozen, coarsely aligned model). Progress η = epoch / (epochs − 1) drives the curriculum
# (paper default (0.3, −0.5, 1.5)); after it, the run holds η = 1 for as many epochs again, so that
# the dynamics settle at their **fixed point**.
#
# * **Margin** `m(θ)`: the expected logit margin `x^T W c_J − x^T W c_k` between the positive and an
#   ambiguous negative, given that the positive is in the boundary group; exact on test pools. In the
#   reduced model it is proportional to the detail weight.
# * **Gap** `g(η) = m(θ_fix) − m(θ_η)`, θ_fix the run's fixed point (mean of the second half of the
#   hold). For a sampler whose draws are corrected (uniform, or BNS with McFadden's offsets) the fixed
#   point is W* up to the statistical error O(n^−1/2); for BACL's uncorrected draws it is BACL's own
#   biased limit, and its target moves with η. The gap to W*'s margin is reported beside it.
# * **Step**: the time scale of the run is set so that the uniform control's linearised contraction of
#   the detail weight over the curriculum is e^−3 (step = 3 / (epochs · H_dd), H_dd the detail curvature
#   of the uniform-draw loss at W*): enough to measure, far from the rounding floor.
#
# **Mechanism.** If `g' = −k(η) g` and the rate grows linearly, `k = k0 + k1 η`, then
# `g = g0 exp(−k0 η − k1 η²/2)` (sympy below): the log-gap's curvature is `−k1/2`. Under BACL the rate
# should grow as the curriculum turns to hard negatives. The rate is measured independently: the
# detail curvature of the arm's loss *at its fixed point* with the draws of each curriculum position
# (the dynamics linearised there), and the sympy closed form turns its growth into a predicted
# curvature, compared with the fitted one.
#
# **Test, fixed before the numbers.** On the seed-mean gap, fit `log|g| = a + b(η − m) + c(η − m)²` in
# the window η ∈ [0.1, 0.9] (fitted up to the gap's first sign change there, if any); 95 %
# seed-bootstrap CIs. **Verdict** for BACL (the `bacl` arm, the paper's sampler): *not supported* when
# the gap changes sign inside the window (a gap that closes and reopens does not contract), or when
# c's CI or the CI of c minus the uniform control's c (same seeds: paired) lies above 0; *supported*
# when both CIs lie below 0; *inconclusive* otherwise. The same rule is applied to the corrected
# sampler and (without a control) to the uniform arm.

# %% tags=["parameters"]
n = 2000  # training anchors
seeds = 12  # independent training sets: the bootstrap unit
ambiguous_negatives = 6  # A of the P 15 negatives, rho 0.4, as in 01_rate
test_pools = 5000  # margin test pools (the margin is a mean, so fewer pools suffice than for a risk)
epochs = 100  # gradient-descent epochs over the curriculum (its positions)
hold_epochs = 100  # further epochs at the end of the curriculum, which bring the run to its fixed point
contraction = 3.0  # the uniform control's linearised log-contraction of the detail weight over the curriculum
window = (0.1, 0.9)  # fit window in eta (cut before a sign change)
workers = 2  # processes over seeds: the notebook's budget is 3 minutes on 2 cores
base_seed = 0  # offsets every random stream
results_dir = "theory/results"  # figures/ and verdicts/ go below it
repo_root = "."  # papermill runs the notebook with the repository root as working directory

# %%
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(repo_root).resolve()))

import matplotlib.pyplot as plt
import numpy as np
import torch

from theory.sims.curves import bend_verdict, log_quadratic_difference, log_quadratic_fit
from theory.sims.experiments import margin_trajectories, training_seed
from theory.sims.model import BoundaryPoolModel
from theory.sims.report import save_figure, verdict_entry, write_verdicts
from theory.sims.risk import alignment_margin
from theory.sims.symbolic import check_margin_dynamics, margin_dynamics_solution, schedule_linearity
from theory.sims.training import TrainingConfig, curvature_along_curriculum

torch.set_num_threads(1)  # intra-op threads do not pay on these small tensors; see workers
started = time.perf_counter()
ARMS_HERE = ("bacl", "bacl_corrected", "uniform")

# %% [markdown]
# ## sympy: the closed form, and how straight the curriculum is

# %%
solution = margin_dynamics_solution()
dynamics_check = check_margin_dynamics(k0=2.0, k1=5.0)
print("g(eta) =", solution, "| log-gap curvature for k1 = 5:", dynamics_check["log_gap_curvature"],
      f"| max relative error against solve_ivp {dynamics_check['max_relative_error']:.1e}")
assert dynamics_check["max_relative_error"] < 1e-6 and abs(dynamics_check["log_gap_curvature"] + 2.5) < 1e-12
schedule = TrainingConfig().schedule
linearity = schedule_linearity(schedule)
print(f"alpha(eta) lies within {linearity['max_distance_from_chord']:.4f} of its chord over [0, 1] "
      f"(range {linearity['range']:.2f}): a rate affine in alpha is affine in eta over the whole run")
assert linearity["max_error_against_library"] < 1e-12

# %% [markdown]
# ## Train every arm by gradient descent from the coarse-aligned start, recording the margin

# %%
model = BoundaryPoolModel(ambiguous_negatives=ambiguous_negatives)
test = model.test_pools(test_pools, torch.Generator().manual_seed(base_seed))
optimum = model.optimum().diagonal().float()
optimum_margin = float(alignment_margin(model.optimum()[None], test)[0])
start = optimum.clone()
start[model.coarse_dim:] = 0.0  # coarse-aligned: knows the coarse content, blind to the detail
first = model.training_pools(n, torch.Generator().manual_seed(training_seed(base_seed, 0)))
uniform_draws = TrainingConfig(arm="uniform")
detail_curvature = float(curvature_along_curriculum(first, optimum, uniform_draws, [0.0], base_seed)[0, -1, -1])
smoothness = float(torch.linalg.eigvalsh(curvature_along_curriculum(first, start, uniform_draws, [0.0], base_seed)[0].double()).max())
config = TrainingConfig(optimizer="gd", epochs=epochs, hold_epochs=hold_epochs,
                        learning_rate=contraction / (epochs * detail_curvature))
print(f"m(W*) = {optimum_margin:.4f}; step {config.learning_rate:.3f} (step x L at the start = "
      f"{config.learning_rate * smoothness:.2f} < 2: stable)")
trajectories = margin_trajectories(model, n, seeds, test, config, 1, start, ARMS_HERE, base_seed=base_seed,
                                   workers=workers)
for arm, t in trajectories.items():
    run = t["eta"] <= 1.0
    fixed = t["margin"][:, t["eta"] >= 1.0 + hold_epochs / (2 * epochs)].mean(1, keepdims=True)
    t["gap"] = fixed - t["margin"][:, run]
    t["gap_to_optimum"] = optimum_margin - t["margin"][:, run]
    t["eta_run"] = t["eta"][run]
    t["fixed_point_offset"] = (fixed[:, 0] - optimum_margin)  # m(theta_fix) - m(W*), per seed
    print(f"{arm:15s} m(theta_fix) - m(W*) = {t['fixed_point_offset'].mean():+.4f} (seed SD "
          f"{t['fixed_point_offset'].std(ddof=1):.4f}); ambiguous share of the draws: start "
          f"{t['share'][:, :5].mean():.2f}, end {t['share'][:, epochs - 5:epochs].mean():.2f}")
print(f"training took {time.perf_counter() - started:.0f} s")

# %% [markdown]
# ## Fits, the control, and the closed-form prediction from the measured rate

# %%
fits, predictions = {}, {}
epoch_eta = np.arange(epochs) / (epochs - 1)
rate_eta = np.linspace(*window, 17)  # curriculum positions at which the linearised rate is measured
for arm, t in trajectories.items():
    for name in ("gap", "gap_to_optimum"):
        try:
            fits[arm, name] = log_quadratic_fit(t["eta_run"], t[name], window, seed=base_seed)
        except ValueError as error:  # too few records before a sign change: no window to fit
            fits[arm, name] = {"error": str(error)}
    # The rate per unit of eta of the dynamics linearised at the fixed point: k = epochs * step * H_dd(theta_fix, eta).
    fixed_theta = torch.tensor(t["theta"].mean(0))
    rate = epochs * config.learning_rate * curvature_along_curriculum(
        first, fixed_theta, replace(config, arm=arm), rate_eta, base_seed)[:, -1, -1].double().numpy()
    k1, k0 = np.polyfit(rate_eta, rate, 1)
    predictions[arm] = {"rate_at_zero_k0": float(k0), "rate_slope_k1": float(k1), "rate": rate.tolist(),
                        "closed_form_curvature": check_margin_dynamics(k0=k0, k1=k1)["log_gap_curvature"]}
    predicted = predictions[arm]["closed_form_curvature"]
    f = fits[arm, "gap"]
    if "error" in f:
        print(f"{arm:15s} no fit: {f['error']}")
    else:
        print(f"{arm:15s} window {f['window']} ({f['records']} records): curvature c {f['curvature']:+.2f} CI "
              f"[{f['curvature_ci'][0]:+.2f}, {f['curvature_ci'][1]:+.2f}]; slope {f['slope']:+.2f}; sign change in "
              f"the window: {f['sign_change_in_window']}; closed form from the linearised rate: c = -k1/2 = {predicted:+.2f}")
controls = {}
for arm in ("bacl", "bacl_corrected"):
    try:
        controls[arm] = log_quadratic_difference(trajectories[arm]["eta_run"], trajectories[arm]["gap"],
                                                 trajectories["uniform"]["gap"], window, seed=base_seed)
        print(f"{arm:15s} c - c_uniform = {controls[arm]['difference']:+.2f} CI "
              f"[{controls[arm]['difference_ci'][0]:+.2f}, {controls[arm]['difference_ci'][1]:+.2f}]")
    except ValueError as error:
        controls[arm] = {"error": str(error)}


def same_rule(arm):
    f, control = fits[arm, "gap"], controls.get(arm)
    if "error" in f or (control is not None and "error" in control):
        return "inconclusive"
    return bend_verdict(f, control["difference_ci"] if control else None)

# %%
figure, axes = plt.subplots(1, 3, figsize=(16, 4.4))
colours = {"bacl": "C3", "bacl_corrected": "C2", "uniform": "C0"}
for arm, t in trajectories.items():
    eta, log_gap = t["eta_run"], np.log(np.abs(t["gap"].mean(0)))
    axes[0].plot(eta, log_gap, color=colours[arm], label=arm)
    f = fits[arm, "gap"]
    if "error" not in f:
        x = np.linspace(*f["window"], 50)
        middle = 0.5 * sum(f["window"])
        axes[0].plot(x, f["level"] + f["slope"] * (x - middle) + f["curvature"] * (x - middle) ** 2, "--",
                     color=colours[arm], lw=1, label=f"{arm} fit: c = {f['curvature']:+.2f}")
    axes[1].plot(eta, t["gap_to_optimum"].mean(0), color=colours[arm], label=arm)
    axes[2].plot(rate_eta, predictions[arm]["rate"], "o-", color=colours[arm], ms=3,
                 label=f"{arm}: k1 = {predictions[arm]['rate_slope_k1']:+.2f}")
axes[0].axvspan(*window, color="grey", alpha=0.12)
axes[0].set(xlabel="progress eta", ylabel="log |m(theta_fix) - m(theta_eta)|", title="gap to the fixed point")
axes[1].axhline(0, color="k", lw=0.8)
axes[1].set(xlabel="progress eta", ylabel="m(W*) - m(theta_eta)", title="gap to the optimum's margin")
axes[2].set(xlabel="progress eta", ylabel="k(eta) = epochs x step x H_dd(theta_fix)", title="linearised contraction rate")
for ax in axes:
    ax.legend(fontsize=7)
figure_paths = save_figure(figure, Path(results_dir) / "figures", "03_margin")

# %% [markdown]
# ## Verdict

# %%
primary = fits["bacl", "gap"]
verdict = same_rule("bacl")
setting = (
    f"Pool model (theory/sims/model.py), rho = {model.ambiguous_share:.3f}, n = {n}, {seeds} seeds. Reduced learner "
    f"x^T diag(theta) c trained from a coarse-aligned start (W* with detail weight 0) by full-batch gradient descent "
    f"(step {config.learning_rate:.3f}, {epochs} epochs of curriculum then {hold_epochs} at eta = 1) on bacl's "
    f"contrastive loss with K = 4 negatives from BoundarySampler (default curriculum), with and without McFadden's "
    f"correction, and uniform draws (control). Margin: expected logit margin between the positive and an ambiguous "
    f"negative, exact on {test_pools} test pools; gap to the margin of the run's fixed point. Fit log|gap| = a + "
    f"b(eta - m) + c(eta - m)^2 in eta in {list(window)} before any sign change."
)
details = {
    "rule": "not supported if the gap to the fixed point changes sign inside the window, or if the CI of c (curvature "
            "of log|gap| in eta) or of c - c_uniform lies above 0; supported if both CIs lie below 0; inconclusive "
            "otherwise",
    "optimum_margin": optimum_margin, "learning_rate": config.learning_rate, "window": list(window),
    "bacl_curvature": primary.get("curvature", float("nan")) if "error" not in primary else "no window",
    "bacl_sign_change_in_window": primary.get("sign_change_in_window", True),
    "bacl_closed_form_curvature": predictions["bacl"]["closed_form_curvature"],
    "bacl_corrected_curvature": fits["bacl_corrected", "gap"].get("curvature", "no window"),
    "bacl_corrected_minus_uniform_curvature": controls["bacl_corrected"].get("difference", "no window"),
    "bacl_corrected_closed_form_curvature": predictions["bacl_corrected"]["closed_form_curvature"],
    "uniform_curvature": fits["uniform", "gap"].get("curvature", "no window"),
    "uniform_closed_form_curvature": predictions["uniform"]["closed_form_curvature"],
    "bacl_gap_to_optimum_at_end": float(trajectories["bacl"]["gap_to_optimum"][:, -1].mean()),
    "bacl_corrected_verdict_same_rule": same_rule("bacl_corrected"),
    "uniform_verdict_same_rule": same_rule("uniform"),
    "fits": {f"{arm}_{name}": fit for (arm, name), fit in fits.items()},
    "controls": controls, "closed_form": predictions,
    "fixed_point_offset_mean": {arm: float(t["fixed_point_offset"].mean()) for arm, t in trajectories.items()},
    "fixed_point_offset_sd": {arm: float(t["fixed_point_offset"].std(ddof=1)) for arm, t in trajectories.items()},
    "ambiguous_share_start_end": {arm: [float(t["share"][:, :5].mean()), float(t["share"][:, epochs - 5:epochs].mean())]
                                  for arm, t in trajectories.items()},
    "sympy": {"margin_ode_solution": str(solution), "margin_ode_max_relative_error": dynamics_check["max_relative_error"],
              "schedule_max_distance_from_chord": linearity["max_distance_from_chord"]},
    "runtime_seconds": time.perf_counter() - started,
}
entry = verdict_entry(
    claim="Proposition 4.1: the alignment margin contracts at a super-exponential rate O(exp(-Theta(eta^2)))",
    setting=setting,
    estimate_name="curvature c of log|margin gap| in eta, BACL (gap to its fixed point, fitted up to any sign change)",
    estimate=primary.get("curvature", 0.0) if "error" not in primary else 0.0,
    interval=primary.get("curvature_ci", [0.0, 0.0]) if "error" not in primary else [0.0, 0.0],
    verdict=verdict,
    details=details,
)
write_verdicts(Path(results_dir) / "verdicts" / "03_margin.json", {"proposition_4_1_margin_contraction": entry})
print(f"Proposition 4.1: {verdict}; corrected sampler: {details['bacl_corrected_verdict_same_rule']}; "
      f"uniform: {details['uniform_verdict_same_rule']}")

# %% [markdown]
# ## Reading the result
#
# Under uniform draws the rate is set by a fixed objective: from the coarse-aligned start the loss is
# flattest far from the optimum, so the log-gap is straight or bends up (c ≥ 0), which is why it is
# the control. Under BNS the curriculum first suppresses the ambiguous negatives that carry the
# detail's curvature and then favours them: the measured rate k(η) grows, and the closed form turns
# its slope into the predicted curvature −k1/2. With McFadden's offsets the target stays W* while the
# rate grows, which is the mechanism Proposition 4.1 describes. Without them the target itself moves
# with η, and it ends at BACL's biased limit (the gap to W*'s margin does not close: panel 2): the
# margin runs past the end point's and comes back, so the gap to it changes sign, and its steep fall
# just before the crossing is the target's motion, not a contraction. The curriculum is within a few
# thousandths of a straight line in η over the whole run (sympy), so no window around the midpoint is
# privileged.
