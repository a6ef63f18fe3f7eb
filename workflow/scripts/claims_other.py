"""The claims that are not contrasts of our runs: training cost (from the cost benchmarks in
benchmarks/results/*.json, e.g. overhead_summary.json) and theory (the notebooks' verdicts in
theory/results/verdicts.json, shown with the quantities table_theory.py lists for each claim)."""

from claims_verdict import INCONCLUSIVE, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED, VERDICT_SYNONYMS, make_claim
from paper_claims import PAPER_COST, PAPER_THEORY
from table_theory import claim_of, decided_by, lookup, theory_rows


def cost_claims(training: dict, cost_reports: list[tuple[str, dict]], roles: dict, tolerance: float) -> list[dict]:
    """Time and memory overhead: from a cost benchmark when there is one, else not testable here."""
    group, claims = "Cost", []
    paper_time = f"{PAPER_COST['statement']} (time +{100 * PAPER_COST['time_overhead']:.0f}%)"
    paper_memory = f"{PAPER_COST['statement']} (memory +{PAPER_COST['memory_overhead_gb']} GB)"
    for path, report in cost_reports:
        for key, paper_value, paper, unit in (("time_overhead", PAPER_COST["time_overhead"], paper_time, "ratio"),
                                             ("memory_overhead_gb", PAPER_COST["memory_overhead_gb"], paper_memory,
                                              "GB")):
            if key not in report:
                claims.append(make_claim(f"cost.{key}.{path}", group, paper, "–", NOT_TESTABLE,
                                         f"{path} has no {key}"))
            elif key == "memory_overhead_gb" and report.get("scale") != "paper":
                claims.append(make_claim(f"cost.{key}.{path}", group, paper, f"{report[key]:+.2f} GB ({path})",
                                         NOT_TESTABLE, "memory in GB depends on model and batch size; this "
                                         f"benchmark ran at scale {report.get('scale', 'unstated')!r}, not the paper's"))
            else:
                value = float(report[key])
                verdict = REPRODUCED if value <= tolerance * paper_value else NOT_REPRODUCED
                claims.append(make_claim(f"cost.{key}.{path}", group, paper, f"{value:+.3g} {unit} ({path}: "
                                         f"{report.get('setting', 'setting unstated')})", verdict,
                                         f"rule: overhead <= {tolerance:g} x the paper's", estimate=value, unit=unit))
    if cost_reports:
        return claims
    ratios = []
    for benchmark, methods in sorted(training.get("cost", {}).items()):
        base, full = methods.get(roles.get("base")), methods.get(roles.get("full"))
        if base and full and "seconds" in base and "seconds" in full:
            ratios.append(f"{benchmark} {full['seconds']['mean'] / base['seconds']['mean'] - 1:+.0%}")
    measured = ("CPU-scale training jobs, wall time of " f"{roles.get('full')} over {roles.get('base')}: "
                + ", ".join(ratios)) if ratios else "–"
    reason = ("no cost benchmark (benchmarks/results/*.json): the CPU-scale training jobs read cached encoder "
              "features and share two cores with other jobs, so their time and memory are not the paper's "
              "end-to-end A100 overhead")
    return [make_claim("cost.time_overhead", group, paper_time, measured, NOT_TESTABLE, reason),
            make_claim("cost.memory_overhead_gb", group, paper_memory, "–", NOT_TESTABLE, reason)]


def theory_claims(verdicts: dict) -> list[dict]:
    """The theory notebooks' verdicts, one claim per entry, plus each paper claim they miss.

    An entry (theory/sims/report.py) holds ``claim``, ``setting``, ``estimate`` (``{"name",
    "value"}`` or a number), ``confidence_interval``, ``verdict`` and ``details``; the measurement
    shows the setting and the quantities of table_theory.py's rows for the claim (headline with its
    CI, then the controls, each with the verdict of its arm under the same rule). The notebooks'
    verdict words map onto ours by ``VERDICT_SYNONYMS`` ("inconclusive" is not reproduced).
    """
    if not isinstance(verdicts, dict):
        raise ValueError(f"theory verdicts must be a JSON object (claim -> entry), got {type(verdicts).__name__}")
    claims, covered = [], set()
    for key, entry in sorted(verdicts.items()):
        if not isinstance(entry, dict) or "verdict" not in entry:
            raise ValueError(f"theory verdict {key!r} must be an object with a 'verdict', got {entry!r}")
        word = str(entry["verdict"]).strip().lower()
        if word not in VERDICT_SYNONYMS:
            raise ValueError(f"theory verdict {key!r} is {entry['verdict']!r}, not one of {sorted(VERDICT_SYNONYMS)}")
        estimate = entry.get("estimate")
        quantities = []
        for _, quantity, value, ci, verdict in theory_rows({key: entry}):
            text = f"{quantity} = {value if value is not None else '–'}" + (f", 95% CI {ci}" if ci else "")
            quantities.append(text + (f" ({verdict})" if verdict and not quantity.startswith("headline") else ""))
        if isinstance(estimate, dict) and not any(q.startswith("headline") for q in quantities):
            quantities.insert(0, f"{estimate.get('name', 'estimate')} = {estimate.get('value')}")
        paper_key = claim_of(key) if claim_of(key) in PAPER_THEORY else None
        covered.add(paper_key)
        paper = PAPER_THEORY[paper_key] if paper_key else str(entry.get("claim", entry.get("statement", key)))
        rule = lookup(entry, "details.rule")
        reason = f"the notebook's verdict: {entry['verdict']}, {decided_by(paper_key, entry)}" + (
            f" (rule: {rule})" if rule else "")
        numbers = {"estimate": estimate.get("value") if isinstance(estimate, dict) else estimate,
                   "confidence_interval": entry.get("confidence_interval", entry.get("ci"))}
        if word == "inconclusive":
            numbers["direction"] = INCONCLUSIVE
        measured = "; ".join(part for part in [str(entry.get("setting", "")).strip(), *quantities] if part) or "–"
        claims.append(make_claim(f"theory.{key}", "Theory", paper, measured, VERDICT_SYNONYMS[word], reason,
                                 "the theory notebooks' simulation", **numbers))
    for key, statement in PAPER_THEORY.items():
        if key not in covered:
            claims.append(make_claim(f"theory.{key}", "Theory", statement, "–", NOT_TESTABLE,
                                     "the theory notebooks report no verdict for it"))
    return claims
