"""The mechanical verdict of one claim: the verdict words, the ordering rule, and a claim that is a
linear contrast of seed means (``paper_common.contrast``: paired by seed when the runs share seeds).
Used by claims.py, which lists every claim of the paper."""

import math

from paper_common import cell, contrast, merge_terms

REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE = "reproduced", "not reproduced", "not testable here"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE)
INCONCLUSIVE = "inconclusive"  # the direction of a "not reproduced" within z standard errors of 0
# How other helpers' verdict words map onto ours (the theory notebooks write their own).
VERDICT_SYNONYMS = {"reproduced": REPRODUCED, "supported": REPRODUCED, "consistent": REPRODUCED,
                    "not reproduced": NOT_REPRODUCED, "not supported": NOT_REPRODUCED, "unsupported": NOT_REPRODUCED,
                    "inconsistent": NOT_REPRODUCED, "rejected": NOT_REPRODUCED, "inconclusive": NOT_REPRODUCED,
                    "not testable here": NOT_TESTABLE,
                    "not testable": NOT_TESTABLE, "untestable": NOT_TESTABLE}


def ordering_verdict(estimate: float, se: float, z: float) -> tuple[str, str]:
    """(verdict, direction) of a claim "contrast > 0": reproduced when estimate > z * SE and > 0.

    direction: "as claimed" (estimate > z SE), "opposite" (estimate < -z SE), else "inconclusive".
    """
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (estimate, se, z)) or se < 0 or z < 0:
        raise ValueError(f"estimate, se >= 0 and z >= 0 must be finite numbers, got {estimate!r}, {se!r}, {z!r}")
    if estimate > z * se and estimate > 0:
        return REPRODUCED, "as claimed"
    if estimate < -z * se and estimate < 0:
        return NOT_REPRODUCED, "opposite"
    return NOT_REPRODUCED, INCONCLUSIVE


def make_claim(claim_id: str, group: str, paper: str, measured: str, verdict: str, reason: str,
               decided_by: str = "", **numbers) -> dict:
    """One claim record; ``decided_by`` says which measurement decides it (e.g. embedding or head)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} of claim {claim_id} is not one of {VERDICTS}")
    return {"id": claim_id, "group": group, "paper": paper, "measured": measured, "verdict": verdict,
            "reason": reason, "decided_by": decided_by, **numbers}


def short(metric: str) -> str:
    """A metric path as the claims show it ("retrieval_reranked_combined.mean.R@1" -> "R@1 re-ranked")."""
    for prefix, name in (("untrained.", "untrained "), ("retrieval_reranked_combined.", "re-ranked "),
                         ("retrieval_reranked.", "match-only "), ("retrieval.", "")):
        if metric.startswith(prefix):
            return name + short(metric[len(prefix):])
    return metric.replace("mean.", "")


def contrast_claim(summary: dict, claim_id: str, group: str, paper: str, benchmark: str, split: str,
                   terms: list[tuple[float, str, str]], z: float, describe: str, decided_by: str = "") -> dict:
    """A claim "sum_i w_i * metric_i(method_i) > 0" on one benchmark, in percentage points.

    ``terms``: (weight, method, metric path); a (method, metric) named twice is one term.
    ``describe`` names the contrast in the measurement text.
    """
    merged = merge_terms([(weight, (method, metric)) for weight, method, metric in terms])
    cells = [(weight, method, metric, cell(summary, benchmark, split, method, metric))
             for weight, (method, metric) in merged]
    missing = sorted({f"{method} {metric}" for _, method, metric, stats in cells if stats is None})
    if missing:
        return make_claim(claim_id, group, paper, "–", NOT_TESTABLE,
                          f"no {', '.join(missing)} on {benchmark}/{split}: not run or not measured in this configuration",
                          decided_by)
    result = contrast([(100 * weight, stats) for weight, _, _, stats in cells])
    parts = ", ".join(f"{method} {short(metric)} {100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"
                      for _, method, metric, stats in cells)
    pairing = "paired by seed" if result["paired"] else "independent seeds"
    measured = (f"{describe} = {result['estimate']:+.1f} pp (SE {result['se']:.1f}, {pairing}, n = {result['n']}; "
                f"{parts}) on {benchmark}")
    numbers = {"estimate": result["estimate"], "se": result["se"], "n": result["n"], "paired": result["paired"],
               "unit": "pp"}
    if result["n"] < 2:
        return make_claim(claim_id, group, paper, measured, NOT_TESTABLE,
                          "one seed gives no spread to judge a difference by", decided_by, **numbers)
    if result["paired"] and result["estimate"] == 0 and result["se"] == 0:
        return make_claim(claim_id, group, paper, measured, NOT_TESTABLE,
                          "identical on every seed: the runs measure the same thing (e.g. BLIP's embedding is "
                          "CLIP's, its ITM training only its Transformer)", decided_by, **numbers)
    verdict, direction = ordering_verdict(result["estimate"], result["se"], z)
    return make_claim(claim_id, group, paper, measured, verdict, f"{direction} (rule: estimate > {z:g} SE)",
                      decided_by, **numbers, direction=direction)


def inconclusive_share(claims: list[dict]) -> dict:
    """How many claims are inconclusive (a "not reproduced" within z SE of 0, or a theory verdict
    "inconclusive") out of all claims and out of the testable ones (issue #11's goal: at most a third)."""
    count = sum(c.get("direction") == INCONCLUSIVE for c in claims)
    testable = sum(c["verdict"] != NOT_TESTABLE for c in claims)
    return {"inconclusive": count, "claims": len(claims), "testable": testable,
            "share_of_claims": count / len(claims) if claims else 0.0,
            "share_of_testable": count / testable if testable else 0.0}
