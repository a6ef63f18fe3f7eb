"""claims.md and claims.html: the verdict rules, a count per verdict, then every claim by group."""

import html

from paper_common import DIRECTION_WORDS

VERDICT_ORDER = ("reproduced", "not reproduced", "not testable here")


def rules_text(rules: dict) -> list[str]:
    """The verdict rules, stated once, as Markdown paragraphs (the same rules apply to every claim)."""
    for key in ("z", "split", "direction", "cost_tolerance"):
        if key not in rules:
            raise ValueError(f"rules lacks {key!r}")
    return [
        f"**Orderings and gains.** A claim \"A > B\" (or \"A improves on B\") is tested on our split "
        f"`{rules['split']}` as the difference of seed means d = mean_A − mean_B in percentage points, with "
        f"standard error SE = sqrt(std_A²/n_A + std_B²/n_B) (sample std over seeds; runs are independent). "
        f"**Reproduced** when d > 0 and d > {rules['z']:g} SE; otherwise **not reproduced**, marked *opposite* "
        f"when d < −{rules['z']:g} SE and *inconclusive* in between. With a single seed there is no spread to "
        "judge a difference by: **not testable here**. \"Together more than the sum of the parts\" is the "
        "contrast (full − base) − (BNS − base) − (CLA − base) > 0 under the same rule (SE over the four methods).",
        "**Magnitudes.** The paper's numbers come from real data at a far larger scale; our benchmarks are "
        "synthetic stand-ins. A gain claim is therefore tested on its direction, and the paper's magnitude is "
        "shown beside ours, not compared with it.",
        f"**Retrieval** is by embedding similarity, R@1 = {DIRECTION_WORDS[rules['direction']]}; audio-video "
        "Acc is multiple-choice accuracy (the true caption against its boundary negatives).",
        f"**Cost** is testable only with a cost benchmark (`benchmarks/results/*.json` with `time_overhead`, "
        f"`memory_overhead_gb`): reproduced when our overhead is at most {rules['cost_tolerance']:g} × the "
        "paper's (the claim is that the overhead is small); memory in GB only at the paper's scale.",
        "**Theory** verdicts are those of the theory notebooks (theory/results/verdicts.json), shown with "
        "their setting, estimate and confidence interval: supported is reproduced; not supported and "
        "inconclusive are not reproduced.",
        "**Not testable here** says why: a method not run in this configuration, or a setting we do not have.",
    ]


def counts(claims: list[dict]) -> dict[str, int]:
    return {verdict: sum(claim["verdict"] == verdict for claim in claims) for verdict in VERDICT_ORDER}


def _groups(claims: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for claim in claims:
        grouped.setdefault(claim["group"], []).append(claim)
    return grouped


def claims_markdown(claims: list[dict], rules: dict) -> str:
    """The whole claims.md."""
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["# Claims of the paper against this reproduction", "",
             "The paper's statements and numbers are the paper's own (real data, arXiv 2511.08399); every "
             "measurement is ours, from this pipeline's runs.", "", "## Verdict rules", ""]
    for paragraph in rules_text(rules):
        lines += [paragraph, ""]
    lines += ["## Summary", "", "| Verdict | Claims |", "|---|---|"]
    lines += [f"| {verdict} | {n} |" for verdict, n in counts(claims).items()]
    for group, members in _groups(claims).items():
        lines += ["", f"## {group}", "", "| Claim | Paper (their data) | We measured | Verdict | Why |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{cell(c['id'])}` | {cell(c['paper'])} | {cell(c['measured'])} | **{c['verdict']}** | "
                  f"{cell(c['reason'])} |" for c in members]
    return "\n".join(lines) + "\n"


def claims_html(claims: list[dict], rules: dict) -> str:
    """claims.md's content as a standalone HTML page (Snakemake's report shows HTML inline)."""
    colours = {"reproduced": "#d8f0d8", "not reproduced": "#f6d6d6", "not testable here": "#eeeeee"}
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>Claims</title><style>"
             "body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #bbb;"
             "padding:3px 6px;vertical-align:top}</style></head><body>",
             "<h2>Claims of the paper against this reproduction</h2><h3>Verdict rules</h3>"]
    parts += [f"<p>{html.escape(p).replace('**', '')}</p>" for p in rules_text(rules)]
    parts.append("<p>" + ", ".join(f"{html.escape(v)}: {n}" for v, n in counts(claims).items()) + "</p>")
    for group, members in _groups(claims).items():
        parts.append(f"<h3>{html.escape(group)}</h3><table><tr><th>Claim</th><th>Paper (their data)</th>"
                     "<th>We measured</th><th>Verdict</th><th>Why</th></tr>")
        for c in members:
            parts.append(f"<tr style='background:{colours[c['verdict']]}'>" + "".join(
                f"<td>{html.escape(str(c[key]))}</td>" for key in ("id", "paper", "measured", "verdict", "reason"))
                + "</tr>")
        parts.append("</table>")
    return "".join(parts) + "</body></html>\n"
