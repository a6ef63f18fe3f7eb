"""Every claim of the paper against our measurements, with a mechanical verdict (claims.json/.md/.html).

Verdicts are one of ``VERDICTS``. An ordering or gain claim is a linear contrast of seed means tested
by :func:`claims_verdict.ordering_verdict` (paired by seed where the runs share seeds); each claim
says what decides it (``decided_by``: the embedding, or the cross-modal Transformer's re-ranking or
attention). The rendering is in ``claims_render.py``; the paper's statements and numbers come from
``paper_claims``; theory and cost claims from ``claims_other``.
"""

import itertools
import logging

from claims_other import cost_claims, theory_claims
from claims_verdict import (NOT_TESTABLE, VERDICTS, contrast_claim, inconclusive_share, make_claim,
                            ordering_verdict)
from joblog import redirect_to_log
from paper_claims import PAPER_ABLATIONS, PAPER_DATASETS, PAPER_PLUGIN_STATEMENT, PAPER_TABLE
from paper_common import MAIN_COLUMNS, RERANKED_COLUMNS, cell, contrast, metric_path, read_json, write_json

__all__ = ["all_claims", "ael_claims", "component_claims", "cost_claims", "main_table_claims", "ordering_verdict",
           "schedule_claims", "theory_claims"]

EMBEDDING = "the embedding: retrieval by embedding similarity"
DELIVERED_RETRIEVAL = ("retrieval as each method delivers it: re-ranked by its cross-modal Transformer "
                       "(combined score) where it has one, by embedding similarity otherwise")
ATTENTION = "the cross-modal Transformer's attention (AEL: its most divergent token against the truly wrong ones)"


def retrieval_metric(summary: dict, benchmark: str, split: str, method: str, direction: str) -> str:
    """The R@1 a method delivers: re-ranked by its match head (combined) when it has one, else by embedding."""
    combined = metric_path("retrieval_reranked_combined.{direction}.R@1", direction)
    return combined if cell(summary, benchmark, split, method, combined) is not None else \
        metric_path("retrieval.{direction}.R@1", direction)


def embedding_aside(summary: dict, benchmark: str, split: str, terms: list[tuple[float, str]], describe: str,
                    direction: str) -> str:
    """The same contrast on the embedding's R@1 (retrieval by embedding similarity), shown beside a
    claim decided on another measurement, not judged; "" when a run lacks the embedding's R@1.

    ``terms``: (weight, method).
    """
    embedding = metric_path("retrieval.{direction}.R@1", direction)
    cells = [cell(summary, benchmark, split, method, embedding) for _, method in terms]
    if None in cells:
        return ""
    aside = contrast([(100 * weight, stats) for (weight, _), stats in zip(terms, cells)])
    return f"; on the embedding alone {describe} = {aside['estimate']:+.1f} pp (SE {aside['se']:.1f})"


def main_table_claims(summary: dict, rows: dict, split: str, direction: str, z: float) -> list[dict]:
    """Each ordering of two rows in a column of the paper's table, and each X+BACL > X as a gain.

    We read the paper's table as each method's delivered retrieval (BLIP's with its ITM re-ranking,
    as BLIP evaluates; CLA reaches retrieval only by re-ranking), so in the R@1 columns a claim is
    decided by :func:`retrieval_metric`, with the same contrast on the embedding shown beside it;
    mAP and the audio-video Acc (multiple choice by cosine) are the embedding's.
    """
    claims = []
    plugin = [(label, f"{label}+BACL") for label in rows if f"{label}+BACL" in rows]
    for column in MAIN_COLUMNS:
        key, metric, benchmark = column["key"], metric_path(column["metric"], direction), column["benchmark"]
        where = f"{PAPER_DATASETS[key]} {column['label'].split(' ', 1)[1]}"
        reranked_column = key in RERANKED_COLUMNS
        decided = DELIVERED_RETRIEVAL if reranked_column else (
            EMBEDDING if column["metric"].startswith("retrieval.") else "the embedding: multiple choice by cosine")
        tests = []  # (claim id, group, the paper's words, higher row, lower row)
        reported = [label for label in rows if PAPER_TABLE.get(label, {}).get(key) is not None]
        for a, b in itertools.combinations(reported, 2):
            if (a, b) in plugin or (b, a) in plugin or PAPER_TABLE[a][key] == PAPER_TABLE[b][key]:
                continue
            high, low = (a, b) if PAPER_TABLE[a][key] > PAPER_TABLE[b][key] else (b, a)
            tests.append((f"main.{key}.{high}>{low}", "Main table",
                          f"{high} ({PAPER_TABLE[high][key]}) > {low} ({PAPER_TABLE[low][key]}) on {where}", high, low))
        for base, bacl in plugin:  # tested once, as a gain, whatever the paper's numbers
            if PAPER_TABLE.get(base, {}).get(key) is not None and PAPER_TABLE.get(bacl, {}).get(key) is not None:
                gain = PAPER_TABLE[bacl][key] - PAPER_TABLE[base][key]
                paper = (f"{bacl} ({PAPER_TABLE[bacl][key]}) > {base} ({PAPER_TABLE[base][key]}) on {where}: "
                         f"{gain:+.1f} ({100 * gain / PAPER_TABLE[base][key]:+.0f}% relative)")
            else:
                paper = f"{PAPER_PLUGIN_STATEMENT} (no paper numbers for this column)"
            tests.append((f"main.{key}.{bacl}>{base}", "Main table: BACL as a plug-in", paper, bacl, base))
        for claim_id, group, paper, high, low in tests:
            terms = [(weight, rows[label], retrieval_metric(summary, benchmark, split, rows[label], direction)
                      if reranked_column else metric) for weight, label in ((1, high), (-1, low))]
            claim = contrast_claim(summary, claim_id, group, paper, benchmark, split, terms, z, f"{high} − {low}",
                                   decided)
            if "estimate" in claim and any(m != metric for _, _, m in terms):  # someone re-ranks
                claim["measured"] += embedding_aside(summary, benchmark, split, [(1, rows[high]), (-1, rows[low])],
                                                     f"{high} − {low}", direction)
            claims.append(claim)
    return claims


def component_claims(summary: dict, roles: dict, split: str, direction: str, z: float) -> list[dict]:
    """BNS alone and CLA alone improve R@1 over the base; together more than the sum of the parts.

    BNS is judged on the embedding (it changes the embedding's contrastive loss); CLA and the sum of
    the parts on the retrieval each method delivers (CLA trains only the cross-modal Transformer,
    which reaches retrieval by re-ranking), with CLA's embedding difference shown beside it.
    """
    embedding, group = metric_path("retrieval.{direction}.R@1", direction), "Ablation: BNS / CLA"
    missing = sorted({"base", "bns", "cla", "full"} - set(roles))
    claims = []
    for benchmark in PAPER_ABLATIONS["bns_gain"]:
        def delivered(role):
            return retrieval_metric(summary, benchmark, split, roles[role], direction)

        tests = [
            ("bns", f"BNS alone: R@1 {PAPER_ABLATIONS['bns_gain'][benchmark]:+.1f} on {benchmark}'s paper dataset",
             [(1, "bns", embedding), (-1, "base", embedding)], "BNS alone − base", EMBEDDING),
            ("cla", f"CLA alone: R@1 {PAPER_ABLATIONS['cla_gain'][benchmark]:+.1f} on {benchmark}'s paper dataset",
             [(1, "cla", None), (-1, "base", None)], "CLA alone − base", DELIVERED_RETRIEVAL),
            ("super_additive", PAPER_ABLATIONS["super_additive"],
             [(1, "full", None), (-1, "bns", None), (-1, "cla", None), (1, "base", None)],
             "(full − base) − (BNS − base) − (CLA − base)", DELIVERED_RETRIEVAL),
        ]
        for part, paper, terms, describe, decided in tests:
            claim_id = f"ablation.{part}.{benchmark}"
            if missing:
                claims.append(make_claim(claim_id, group, paper, "–", NOT_TESTABLE, f"tables.components lacks {missing}",
                                         decided))
                continue
            claim = contrast_claim(summary, claim_id, group, paper, benchmark, split,
                                   [(w, roles[role], metric or delivered(role)) for w, role, metric in terms], z,
                                   describe, decided)
            if part == "cla" and "estimate" in claim:
                claim["measured"] += embedding_aside(summary, benchmark, split, [(1, roles["cla"]), (-1, roles["base"])],
                                                     "CLA only − base", direction)
            claims.append(claim)
    return claims


def schedule_claims(summary: dict, schedules: dict, split: str, direction: str, z: float) -> list[dict]:
    """Every pair of the paper's ranking Default > Aggressive > Shallow, on the embedding's R@1
    (the schedule sets BNS's curriculum)."""
    metric, group, order = metric_path("retrieval.{direction}.R@1", direction), "Ablation: schedules", \
        PAPER_ABLATIONS["schedule_order"]
    claims = []
    for benchmark in PAPER_ABLATIONS["bns_gain"]:
        for high, low in itertools.combinations(order, 2):
            claim_id = f"schedule.{high}>{low}.{benchmark}"
            if high not in schedules or low not in schedules:
                claims.append(make_claim(claim_id, group, PAPER_ABLATIONS["schedule_statement"], "–", NOT_TESTABLE,
                                         f"tables.schedules has no {high!r} or {low!r} entry", EMBEDDING))
                continue
            claims.append(contrast_claim(summary, claim_id, group, PAPER_ABLATIONS["schedule_statement"], benchmark,
                                         split, [(1, schedules[high], metric), (-1, schedules[low], metric)], z,
                                         f"{high} − {low}", EMBEDDING))
    return claims


def ael_claims(summary: dict, ael: dict, split: str, z: float) -> list[dict]:
    """AEL with CLA beats AEL without it (the group's last entry: the same method with lambda_local = 0),
    for every CLA form in the group; and the first entry (the default form) localises beyond its own
    untrained Transformer, beyond the no-Transformer reference and beyond chance."""
    group, statement = "AEL", PAPER_ABLATIONS["ael_statement"]
    if len(ael) < 2:
        return [make_claim("ael", group, statement, "–", NOT_TESTABLE,
                           f"tables.ael must name a method with CLA first and one without it last, got {len(ael)}",
                           ATTENTION)]
    (first_label, first), (without_label, without) = next(iter(ael.items())), list(ael.items())[-1]
    # The benchmarks the AEL group ran on as a whole (an ablation compares its rows with each other).
    benchmarks = [b for b in summary["results"] if all(cell(summary, b, split, m, "ael.ael") is not None
                                                       for m in ael.values())]
    if not benchmarks:
        return [make_claim("ael", group, statement, "–", NOT_TESTABLE,
                           f"no benchmark with AEL measured for all of {sorted(set(ael.values()))} on split {split}",
                           ATTENTION)]
    claims = []
    for benchmark in benchmarks:
        for label, method in list(ael.items())[:-1]:
            claims.append(contrast_claim(
                summary, f"ael.gain.{method}.{benchmark}", group,
                f"{statement} (+{PAPER_ABLATIONS['ael_gain_pp']:g} pp)", benchmark, split,
                [(1, method, "ael.ael"), (-1, without, "ael.ael")], z, f"AEL {label} − {without_label}", ATTENTION))
        for name, reference, words in (
                ("above_untrained", "untrained.ael.ael", "the same Transformer untrained (its seeded init)"),
                ("above_no_transformer", "ael.frozen_reference",
                 "the no-Transformer reference (the token whose frozen feature differs most)"),
                ("above_chance", "ael.chance", "a uniformly chosen eligible token (chance)")):
            claims.append(contrast_claim(
                summary, f"ael.{name}.{first}.{benchmark}", group, f"CLA learns to localise the mismatched tokens: "
                f"AEL above {words}", benchmark, split, [(1, first, "ael.ael"), (-1, first, reference)], z,
                f"AEL of {first_label} − {words.split(' (')[0]}", ATTENTION))
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
             "cost_tolerance": params.cost_tolerance, "benchmarks": list(params.benchmarks),
             "real_benchmarks": list(params.real_benchmarks)}
    counts = {verdict: sum(c["verdict"] == verdict for c in claims) for verdict in VERDICTS}
    share = inconclusive_share(claims)
    write_json(snakemake.output.json, {"rules": rules, "counts": counts, "inconclusive": share, "claims": claims})
    with open(snakemake.output.md, "w") as handle:
        handle.write(claims_markdown(claims, rules))
    with open(snakemake.output.html, "w") as handle:
        handle.write(claims_html(claims, rules))
    logging.info("%d claims: %s; inconclusive %s", len(claims), counts, share)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
