"""The theory notebooks' verdicts (theory/results/verdicts.json) as a table: per claim its headline
estimate with its CI and verdict, and the controls that decide how to read it (issue #13): for
Theorem 4.1 BACL's floor, rate and plain slope beside the other arms' verdicts under the same rule;
for Theorem 4.2 the uniform, BACL and corrected-BACL penalty slopes; for Proposition 4.1 BACL's
sign change beside corrected BACL's curvature, its difference from uniform's and the closed form.

Every quantity is read by a dotted path into an entry; a path the notebooks no longer write shows
as "–" rather than failing (the notebooks own their keys).
"""

from joblog import redirect_to_log
from paper_common import Table, read_json

# Per claim (the verdict key's prefix, as PAPER_THEORY keys it): (quantity, value path, CI path,
# verdict path), paths into the verdict entry. The first row is the headline.
ARMS_41 = ("uniform", "full", "bacl_corrected", "curriculum", "curriculum_corrected", "curriculum_logit_units")
ROWS = {
    "theorem_4_1": [
        ("headline: floor b of BACL's excess pairwise risk (fit b + C n^-a)", "estimate.value", "confidence_interval",
         "verdict"),
        ("BACL: rate a of the floor fit", "details.bacl_rate", "details.arms.bacl.excess_pairwise.floor_fit.rate_ci",
         None),
        ("BACL: plain log-log slope of the excess in n", "details.bacl_power_law_slope",
         "details.arms.bacl.excess_pairwise.power_law.slope_ci", None),
        ("BACL: log-log slope of ‖θ_n − θ_∞‖² (the rate to its own limit)", "details.bacl_rate_to_own_limit",
         "details.arms.bacl.own_limit.slope_ci", None),
        ("BACL: share of its excess that BNS's curriculum alone gives", "details.curriculum_share_of_bacl_excess",
         "details.curriculum_share_of_bacl_excess_ci", None),
        *((f"{arm}: floor b (same rule)", f"details.{arm}_floor",
           f"details.arms.{arm}.excess_pairwise.floor_fit.floor_ci", f"details.{arm}_verdict_same_rule")
          for arm in ARMS_41),
    ],
    "theorem_4_2": [
        ("headline: slope in ρ of the uniform-sampling penalty n·(excess_uniform − excess_full)", "estimate.value",
         "confidence_interval", "verdict"),
        ("BACL: slope in ρ of its penalty over the full pool", "details.bacl_penalty_slope",
         "details.penalty_fits.bacl.slope_ci", "details.bacl_penalty_verdict_same_rule"),
        ("BACL corrected: slope in ρ of its penalty", "details.bacl_corrected_penalty_slope",
         "details.penalty_fits.bacl_corrected.slope_ci", "details.bacl_corrected_penalty_verdict_same_rule"),
        ("BACL − uniform: difference of the penalty slopes", "details.bacl_minus_uniform_penalty_slope",
         "details.bacl_minus_uniform_penalty_slope_ci", None),
        ("full pool: slope in ρ of its own n·excess (grows without any sampling)", "details.full_own_slope",
         "details.own_n_excess_fits.full.slope_ci", None),
    ],
    "proposition_4_1": [
        ("headline: curvature c of BACL's log|margin gap| in η (fitted up to any sign change)", "estimate.value",
         "confidence_interval", "verdict"),
        ("BACL: the gap changes sign inside the window", "details.bacl_sign_change_in_window", None, None),
        ("BACL: closed-form c (from the measured contraction rate)", "details.bacl_closed_form_curvature", None, None),
        ("BACL corrected: curvature c", "details.bacl_corrected_curvature",
         "details.fits.bacl_corrected_gap.curvature_ci", "details.bacl_corrected_verdict_same_rule"),
        ("BACL corrected: c − c_uniform", "details.bacl_corrected_minus_uniform_curvature",
         "details.controls.bacl_corrected.difference_ci", None),
        ("BACL corrected: closed-form c", "details.bacl_corrected_closed_form_curvature", None, None),
        ("uniform (control): curvature c", "details.uniform_curvature", "details.fits.uniform_gap.curvature_ci",
         "details.uniform_verdict_same_rule"),
        ("uniform: closed-form c", "details.uniform_closed_form_curvature", None, None),
    ],
}
NAMES = {"theorem_4_1": "Theorem 4.1 (fast rate)", "theorem_4_2": "Theorem 4.2 (uniform penalty)",
         "proposition_4_1": "Proposition 4.1 (margin contraction)"}
BEYOND_PAPER = ("The 'corrected' arms add McFadden's sampling correction to BNS (bacl.sampling_correction, config "
                "sampling_correction): beyond the paper, which has no such term; they test whether BACL's floor and "
                "sign change come from the draw's dependence on the positive.")


def lookup(entry: dict, path: str | None):
    """The value at a dotted ``path`` of ``entry``, or None where any step is missing."""
    if path is None:
        return None
    node = entry
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def number(value) -> str | None:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.3g}"
    return None if value is None else str(value)


def interval(value) -> str | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"[{value[0]:.3g}, {value[1]:.3g}]"
    return None


def decided_by(claim: str, entry: dict) -> str:
    """Which clause of the claim's rule decided a "not supported", read from the numbers, where the
    headline alone would mislead: Proposition 4.1's sign change, Theorem 4.1's rate or plain slope."""
    if entry.get("verdict") != "not supported":
        return "by its rule"
    if claim == "proposition_4_1" and lookup(entry, "details.bacl_sign_change_in_window") is True:
        return ("decided by the sign-change clause: BACL's gap to its fixed point changes sign inside the window, "
                "so the headline c (fitted only up to the crossing) does not decide it")
    if claim == "theorem_4_1":
        fit = lookup(entry, "details.arms.bacl.excess_pairwise") or {}
        floor_ci, largest = lookup(fit, "floor_fit.floor_ci"), lookup(fit, "floor_fit.mean_excess_at_largest_n")
        rate_ci, slope_ci = lookup(fit, "floor_fit.rate_ci"), lookup(fit, "power_law.slope_ci")
        held = [text for text, holds in (
            ("the floor b's CI lies above 0.1 % of the excess at the largest n",
             floor_ci and largest and floor_ci[0] > 1e-3 * largest),
            ("the rate a's CI lies below 0.75", rate_ci and rate_ci[1] < 0.75),
            ("the plain log-log slope's CI lies above -0.75", slope_ci and slope_ci[0] > -0.75)) if holds]
        if held:
            return "decided by: " + "; ".join(held) + " (read from the numbers above)"
    return "by its rule"


def claim_of(key: str) -> str | None:
    return next((claim for claim in ROWS if key == claim or key.startswith(f"{claim}_")), None)


def _ordered(verdicts: dict) -> list[tuple[str, dict]]:
    """The entries in the paper's order (ROWS), then any other."""
    rank = {claim: i for i, claim in enumerate(ROWS)}
    return sorted(verdicts.items(), key=lambda item: (rank.get(claim_of(item[0]), len(rank)), item[0]))


def theory_rows(verdicts: dict) -> list[list]:
    """[claim, quantity, value, 95% CI, verdict] per quantity of every claim in ``verdicts``."""
    rows = []
    for key, entry in _ordered(verdicts):
        claim = claim_of(key)
        for quantity, value, ci, verdict in ROWS.get(claim, [("headline", "estimate.value", "confidence_interval",
                                                              "verdict")]):
            rows.append([NAMES.get(claim, key), quantity, number(lookup(entry, value)), interval(lookup(entry, ci)),
                         number(lookup(entry, verdict))])
    return rows


def theory_table(verdicts: dict, title: str) -> Table:
    if not isinstance(verdicts, dict) or not verdicts:
        raise ValueError("verdicts must be a non-empty JSON object (claim -> entry)")
    notes = [f"{NAMES.get(claim_of(key), key)}: {lookup(entry, 'verdict')}, {decided_by(claim_of(key), entry)}. "
             f"Rule: {lookup(entry, 'details.rule') or '–'}" for key, entry in _ordered(verdicts)]
    notes += ["Values as the notebooks report them (3 significant digits); CI: 95 % seed bootstrap; verdict: the "
              "claim's own, or the other arm's under the same rule. – : not reported.", BEYOND_PAPER]
    return Table(title, ["Claim", "Quantity", "Value", "95% CI", "Verdict"], theory_rows(verdicts), notes)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    theory_table(read_json(snakemake.input[0]), snakemake.params.title).write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
