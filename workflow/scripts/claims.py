"""Every claim of the paper against our measurements, with a mechanical verdict (claims.json/.md/.html).

Verdicts are one of ``VERDICTS``. An ordering or gain claim is a linear contrast of seed means
(``paper_common.contrast``) tested by :func:`ordering_verdict`; the rendering is in
``claims_render.py``. The paper's statements and numbers come from ``paper_claims``.
"""

import itertools
import logging
import math

from joblog import redirect_to_log
from paper_claims import (PAPER_ABLATIONS, PAPER_COST, PAPER_DATASETS, PAPER_PLUGIN_STATEMENT, PAPER_TABLE,
                          PAPER_THEORY)
from paper_common import MAIN_COLUMNS, cell, contrast, merge_terms, metric_path, read_json, write_json

REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE = "reproduced", "not reproduced", "not testable here"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE)
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
    return NOT_REPRODUCED, "inconclusive"


def _claim(claim_id: str, group: str, paper: str, measured: str, verdict: str, reason: str, **numbers) -> dict:
    if verdict not in VERDICTS:
        raise ValueError(f"verdict {verdict!r} of claim {claim_id} is not one of {VERDICTS}")
    return {"id": claim_id, "group": group, "paper": paper, "measured": measured, "verdict": verdict,
            "reason": reason, **numbers}


def contrast_claim(summary: dict, claim_id: str, group: str, paper: str, benchmark: str, split: str, metric: str,
                   terms: list[tuple[float, str]], z: float, describe: str, baseline: dict | None = None) -> dict:
    """A claim "sum_i w_i * metric(method_i) > 0" on one benchmark, in percentage points.

    ``terms``: (weight, method); ``describe`` names the contrast in the measurement text;
    ``baseline``: an optional summary cell subtracted as one more independent term (AEL's chance).
    """
    cells = [(weight, method, cell(summary, benchmark, split, method, metric))
             for weight, method in merge_terms(terms)]
    if baseline is not None:
        cells.append((-1, "chance", baseline))
    missing = sorted({method for _, method, stats in cells if stats is None})
    if missing:
        return _claim(claim_id, group, paper, "–", NOT_TESTABLE,
                      f"no {metric} for {', '.join(missing)} on {benchmark}/{split}: not run in this configuration")
    result = contrast([(100 * weight, stats) for weight, _, stats in cells])
    parts = ", ".join(f"{method} {100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}" for _, method, stats in cells)
    measured = (f"{describe} = {result['estimate']:+.1f} pp (SE {result['se']:.1f}, n = {result['n']} seeds; "
                f"{parts}) on {benchmark} {metric}")
    numbers = {"estimate": result["estimate"], "se": result["se"], "n": result["n"], "unit": "pp"}
    if result["n"] < 2:
        return _claim(claim_id, group, paper, measured, NOT_TESTABLE,
                      "one seed gives no spread to judge a difference by", **numbers)
    verdict, direction = ordering_verdict(result["estimate"], result["se"], z)
    return _claim(claim_id, group, paper, measured, verdict, f"{direction} (rule: estimate > {z:g} SE)",
                  **numbers, direction=direction)


def main_table_claims(summary: dict, rows: dict, split: str, direction: str, z: float) -> list[dict]:
    """Each ordering of two rows in a column of the paper's table, and each X+BACL > X."""
    claims = []
    plugin = [(label, f"{label}+BACL") for label in rows if f"{label}+BACL" in rows]
    for column in MAIN_COLUMNS:
        key, metric = column["key"], metric_path(column["metric"], direction)
        where = f"{PAPER_DATASETS[key]} {column['label'].split(' ', 1)[1]}"
        reported = [label for label in rows if PAPER_TABLE.get(label, {}).get(key) is not None]
        for a, b in itertools.combinations(reported, 2):
            if (a, b) in plugin or (b, a) in plugin or PAPER_TABLE[a][key] == PAPER_TABLE[b][key]:
                continue
            high, low = (a, b) if PAPER_TABLE[a][key] > PAPER_TABLE[b][key] else (b, a)
            paper = f"{high} ({PAPER_TABLE[high][key]}) > {low} ({PAPER_TABLE[low][key]}) on {where}"
            claims.append(contrast_claim(summary, f"main.{key}.{high}>{low}", "Main table", paper,
                                         column["benchmark"], split, metric, [(1, rows[high]), (-1, rows[low])],
                                         z, f"{high} − {low}"))
        for base, bacl in plugin:
            if PAPER_TABLE.get(base, {}).get(key) is not None and PAPER_TABLE.get(bacl, {}).get(key) is not None:
                gain = PAPER_TABLE[bacl][key] - PAPER_TABLE[base][key]
                paper = (f"{bacl} ({PAPER_TABLE[bacl][key]}) > {base} ({PAPER_TABLE[base][key]}) on {where}: "
                         f"{gain:+.1f} ({100 * gain / PAPER_TABLE[base][key]:+.0f}% relative)")
            else:
                paper = f"{PAPER_PLUGIN_STATEMENT} (no paper numbers for this column)"
            claims.append(contrast_claim(summary, f"main.{key}.{bacl}>{base}", "Main table: BACL as a plug-in",
                                         paper, column["benchmark"], split, metric,
                                         [(1, rows[bacl]), (-1, rows[base])], z, f"{bacl} − {base}"))
    return claims


def component_claims(summary: dict, roles: dict, split: str, direction: str, z: float) -> list[dict]:
    """BNS alone and CLA alone improve R@1 over the base; together more than the sum of the parts."""
    metric, group = metric_path("retrieval.{direction}.R@1", direction), "Ablation: BNS / CLA"
    missing = sorted({"base", "bns", "cla", "full"} - set(roles))
    claims = []
    for benchmark in PAPER_ABLATIONS["bns_gain"]:
        tests = [
            ("bns", f"BNS alone: R@1 {PAPER_ABLATIONS['bns_gain'][benchmark]:+.1f} on {benchmark}'s paper dataset",
             [(1, "bns"), (-1, "base")], "BNS alone − base"),
            ("cla", f"CLA alone: R@1 {PAPER_ABLATIONS['cla_gain'][benchmark]:+.1f} on {benchmark}'s paper dataset",
             [(1, "cla"), (-1, "base")], "CLA alone − base"),
            ("super_additive", PAPER_ABLATIONS["super_additive"], [(1, "full"), (-1, "bns"), (-1, "cla"), (1, "base")],
             "(full − base) − (BNS − base) − (CLA − base)"),
        ]
        for part, paper, terms, describe in tests:
            claim_id = f"ablation.{part}.{benchmark}"
            if missing:
                claims.append(_claim(claim_id, group, paper, "–", NOT_TESTABLE, f"tables.components lacks {missing}"))
            else:
                claims.append(contrast_claim(summary, claim_id, group, paper, benchmark, split, metric,
                                             [(weight, roles[role]) for weight, role in terms], z, describe))
    return claims


def schedule_claims(summary: dict, schedules: dict, split: str, direction: str, z: float) -> list[dict]:
    """Every pair of the paper's ranking Default > Aggressive > Shallow, on R@1."""
    metric, group, order = metric_path("retrieval.{direction}.R@1", direction), "Ablation: schedules", \
        PAPER_ABLATIONS["schedule_order"]
    claims = []
    for benchmark in PAPER_ABLATIONS["bns_gain"]:
        for high, low in itertools.combinations(order, 2):
            claim_id = f"schedule.{high}>{low}.{benchmark}"
            if high not in schedules or low not in schedules:
                claims.append(_claim(claim_id, group, PAPER_ABLATIONS["schedule_statement"], "–", NOT_TESTABLE,
                                     f"tables.schedules has no {high!r} or {low!r} entry"))
                continue
            claims.append(contrast_claim(summary, claim_id, group, PAPER_ABLATIONS["schedule_statement"], benchmark,
                                         split, metric, [(1, schedules[high]), (-1, schedules[low])], z,
                                         f"{high} − {low}"))
    return claims


def ael_claims(summary: dict, ael: dict, split: str, z: float) -> list[dict]:
    """AEL with CLA (the group's first entry) beats without (its second), and beats chance."""
    group = "AEL"
    if len(ael) != 2:
        return [_claim("ael", group, PAPER_ABLATIONS["ael_statement"], "–", NOT_TESTABLE,
                       f"tables.ael must name two methods (with CLA, then without), got {len(ael)}")]
    (with_label, with_cla), (without_label, without_cla) = ael.items()
    benchmarks = sorted(b for b in summary["results"] if cell(summary, b, split, with_cla, "ael.ael") is not None)
    if not benchmarks:
        return [_claim("ael", group, PAPER_ABLATIONS["ael_statement"], "–", NOT_TESTABLE,
                       f"no AEL measured for {with_cla} on split {split}")]
    claims = []
    for benchmark in benchmarks:
        claims.append(contrast_claim(summary, f"ael.gain.{benchmark}", group,
                                     f"{PAPER_ABLATIONS['ael_statement']} (+{PAPER_ABLATIONS['ael_gain_pp']:g} pp)",
                                     benchmark, split, "ael.ael", [(1, with_cla), (-1, without_cla)], z,
                                     f"AEL {with_label} − {without_label}"))
        chance = cell(summary, benchmark, split, with_cla, "ael.chance")
        chance, statement = cell(summary, benchmark, split, with_cla, "ael.chance"), \
            "CLA localises the mismatched tokens (AEL above a random token's)"
        if chance is None:
            claims.append(_claim(f"ael.above_chance.{benchmark}", group, statement, "–", NOT_TESTABLE,
                                 f"no AEL chance level for {with_cla} on {benchmark}"))
        else:
            claims.append(contrast_claim(summary, f"ael.above_chance.{benchmark}", group, statement, benchmark,
                                         split, "ael.ael", [(1, with_cla)], z, f"AEL of {with_label} − chance",
                                         baseline=chance))
    return claims


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
                claims.append(_claim(f"cost.{key}.{path}", group, paper, "–", NOT_TESTABLE, f"{path} has no {key}"))
            elif key == "memory_overhead_gb" and report.get("scale") != "paper":
                claims.append(_claim(f"cost.{key}.{path}", group, paper, f"{report[key]:+.2f} GB ({path})",
                                     NOT_TESTABLE, "memory in GB depends on model and batch size; this benchmark "
                                     f"ran at scale {report.get('scale', 'unstated')!r}, not the paper's"))
            else:
                value = float(report[key])
                verdict = REPRODUCED if value <= tolerance * paper_value else NOT_REPRODUCED
                claims.append(_claim(f"cost.{key}.{path}", group, paper, f"{value:+.3g} {unit} ({path}: "
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
    return [_claim("cost.time_overhead", group, paper_time, measured, NOT_TESTABLE, reason),
            _claim("cost.memory_overhead_gb", group, paper_memory, "–", NOT_TESTABLE, reason)]


def _scalar_text(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def paper_theory_key(key: str) -> str | None:
    """The PAPER_THEORY key a verdict key names: equal, or it plus a "_" suffix
    ("theorem_4_1_fast_rate" -> "theorem_4_1"); None for a claim the paper summary lacks."""
    return next((p for p in PAPER_THEORY if key == p or key.startswith(f"{p}_")), None)


def theory_claims(verdicts: dict) -> list[dict]:
    """The theory notebooks' verdicts, one claim per entry, plus each paper claim they miss.

    An entry (theory/sims/report.py) holds ``claim``, ``setting``, ``estimate`` (``{"name",
    "value"}`` or a number), ``confidence_interval``, ``confidence_level``, ``verdict`` and
    ``details``; the measurement shows all of them but nested details. The notebooks' verdict
    words map onto ours by ``VERDICT_SYNONYMS`` ("inconclusive" is not reproduced).
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
        estimate, interval = entry.get("estimate"), entry.get("confidence_interval", entry.get("ci"))
        parts = [str(entry["setting"])] if "setting" in entry else []
        if isinstance(estimate, dict):
            parts.append(f"{estimate.get('name', 'estimate')} = {_scalar_text(estimate.get('value'))}")
        elif estimate is not None:
            parts.append(f"estimate {_scalar_text(estimate)}")
        if interval is not None:
            level = entry.get("confidence_level")
            parts.append(f"{f'{100 * level:g}% ' if isinstance(level, (int, float)) else ''}CI "
                         f"[{', '.join(_scalar_text(float(v)) for v in interval)}]")
        extras = {**{k: v for k, v in entry.items() if k not in {"setting", "estimate", "confidence_interval", "ci",
                     "confidence_level", "verdict", "reason", "claim", "statement", "details"}},
                  **(entry.get("details") if isinstance(entry.get("details"), dict) else {})}
        parts += [f"{k} = {_scalar_text(v)}" for k, v in extras.items() if isinstance(v, (str, int, float))]
        paper_key = paper_theory_key(key)
        covered.add(paper_key)
        paper = PAPER_THEORY[paper_key] if paper_key else str(entry.get("claim", entry.get("statement", key)))
        reason = str(entry.get("reason", f"the theory notebooks' verdict: {entry['verdict']}"))
        claims.append(_claim(f"theory.{key}", "Theory", paper, "; ".join(parts) or "–", VERDICT_SYNONYMS[word],
                             reason, estimate=estimate.get("value") if isinstance(estimate, dict) else estimate,
                             confidence_interval=interval))
    for key, statement in PAPER_THEORY.items():
        if key not in covered:
            claims.append(_claim(f"theory.{key}", "Theory", statement, "–", NOT_TESTABLE,
                                 "the theory notebooks report no verdict for it"))
    return claims


def all_claims(summary: dict, training: dict, verdicts: dict, cost_reports: list, tables: dict, split: str,
               direction: str, z: float, cost_tolerance: float) -> list[dict]:
    """Every claim, in the order of the report."""
    return (main_table_claims(summary, tables.get("main", {}), split, direction, z)
            + component_claims(summary, tables.get("components", {}), split, direction, z)
            + schedule_claims(summary, tables.get("schedules", {}), split, direction, z)
            + ael_claims(summary, tables.get("ael", {}), split, z)
            + cost_claims(training, cost_reports, tables.get("components", {}), cost_tolerance)
            + theory_claims(verdicts))


def main(snakemake) -> None:
    from claims_render import claims_html, claims_markdown

    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    cost_reports = [(path, read_json(path)) for path in snakemake.input.cost]
    claims = all_claims(read_json(snakemake.input.results), read_json(snakemake.input.training),
                        read_json(snakemake.input.theory), cost_reports, params.tables, params.split,
                        params.direction, params.z, params.cost_tolerance)
    rules = {"z": params.z, "split": params.split, "direction": params.direction,
             "cost_tolerance": params.cost_tolerance}
    counts = {verdict: sum(c["verdict"] == verdict for c in claims) for verdict in VERDICTS}
    write_json(snakemake.output.json, {"rules": rules, "counts": counts, "claims": claims})
    with open(snakemake.output.md, "w") as handle:
        handle.write(claims_markdown(claims, rules))
    with open(snakemake.output.html, "w") as handle:
        handle.write(claims_html(claims, rules))
    logging.info("%d claims: %s", len(claims), counts)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
