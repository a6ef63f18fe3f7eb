"""claims.md and claims.html: the verdict rules, a count per verdict and the share of inconclusive
claims, then every claim by group with what decides it."""

import html

from claims_verdict import inconclusive_share
from paper_common import DIRECTION_WORDS, choice_words

VERDICT_ORDER = ("reproduced", "not reproduced", "not testable here")
COLUMNS = (("id", "Claim"), ("paper", "Paper (their data)"), ("measured", "We measured"),
           ("decided_by", "Decided by"), ("verdict", "Verdict"), ("reason", "Why"))


def rules_text(rules: dict) -> list[str]:
    """The verdict rules, stated once, as Markdown paragraphs (the same rules apply to every claim)."""
    for key in ("z", "split", "direction", "cost_tolerance"):
        if key not in rules:
            raise ValueError(f"rules lacks {key!r}")
    real = rules.get("real_benchmarks", [])
    synthetic = [b for b in rules.get("benchmarks", []) if b not in real] or not real
    return [
        f"**Orderings and gains.** A claim \"A > B\" (or \"A improves on B\") is tested on our split "
        f"`{rules['split']}` as the difference of seed means d = mean_A − mean_B in percentage points. The seed fixes "
        "a run's data order and initialisation, so two methods run on the same seeds are paired: SE is the standard "
        "error of the per-seed differences, SE = std(d_s)/sqrt(n) (sample std over the n shared seeds); runs without "
        "common seeds fall back to SE = sqrt(std_A²/n_A + std_B²/n_B). Each claim says which it used. "
        f"**Reproduced** when d > 0 and d > {rules['z']:g} SE; otherwise **not reproduced**, marked *opposite* "
        f"when d < −{rules['z']:g} SE and *inconclusive* in between. With a single seed there is no spread to "
        "judge a difference by: **not testable here**. \"Together more than the sum of the parts\" is the "
        "contrast (full − base) − (BNS − base) − (CLA − base) > 0 under the same rule (paired over the four methods).",
        "**What decides a claim.** Each claim names its measurement (column *Decided by*). BNS and the curriculum "
        "schedules act on the embedding's contrastive loss: decided by retrieval by embedding similarity. CLA trains "
        "the cross-modal Transformer only, which reaches retrieval by re-ranking each query's top k (combined score "
        "log σ(match logit) + logit scale · cosine) and localises errors through its attention: CLA-alone and the "
        "sum of the parts are decided by the retrieval each method delivers (re-ranked where it has a Transformer, "
        "by embedding otherwise), AEL by the attention. The main table's R@1 claims (orderings and plug-in gains "
        "X+BACL > X) are decided by the same delivered retrieval, our reading of a table of each method's own "
        "numbers (BLIP's re-ranked, as BLIP evaluates), with the contrast on the embedding shown beside; its mAP "
        "and Acc columns by the embedding, where BLIP's row is CLIP's embedding (its ITM trains only its "
        "Transformer). Runs identical on every seed measure the same thing: **not testable here**.",
        "**Magnitudes.** The paper's numbers come from real data at a far larger scale; "
        + " and ".join(part for part, shown in (("our synthetic benchmarks stand in for its datasets", synthetic),
                                                ("our real-data runs are far smaller", real)) if shown)
        + ". A gain claim is therefore tested on its direction, and the paper's magnitude is shown beside ours, not "
        "compared with it.",
        f"**Retrieval** R@1 = {DIRECTION_WORDS[rules['direction']]}; audio-video Acc is multiple-choice accuracy "
        f"(the true caption against {choice_words('audio_video_text', real)}).",
        f"**Cost** is testable only with a cost benchmark (`benchmarks/results/*.json` with `time_overhead`, "
        f"`memory_overhead_gb`): reproduced when our overhead is at most {rules['cost_tolerance']:g} × the "
        "paper's (the claim is that the overhead is small); memory in GB only at the paper's scale.",
        "**Theory** verdicts are those of the theory notebooks (theory/results/verdicts.json) by the rule each "
        "states, shown with their setting, headline estimate, confidence interval and controls: supported is "
        "reproduced; not supported and inconclusive are not reproduced (inconclusive counts as inconclusive below).",
        "**Not testable here** says why: a method not run in this configuration, or a setting we do not have.",
    ]


def counts(claims: list[dict]) -> dict[str, int]:
    return {verdict: sum(claim["verdict"] == verdict for claim in claims) for verdict in VERDICT_ORDER}


def share_text(claims: list[dict]) -> str:
    """The inconclusive share, stated as measured (issue #11's goal is at most a third; never tuned for)."""
    share = inconclusive_share(claims)
    return (f"Inconclusive (neither reproduced nor opposite within the rule's standard errors): "
            f"{share['inconclusive']} of {share['claims']} claims ({100 * share['share_of_claims']:.0f} %), "
            f"{share['inconclusive']} of the {share['testable']} testable ones "
            f"({100 * share['share_of_testable']:.0f} %).")


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
    lines += ["", share_text(claims)]
    for group, members in _groups(claims).items():
        lines += ["", f"## {group}", "", "| " + " | ".join(name for _, name in COLUMNS) + " |",
                  "|" + "---|" * len(COLUMNS)]
        lines += [f"| `{cell(c['id'])}` | {cell(c['paper'])} | {cell(c['measured'])} | {cell(c.get('decided_by', ''))} "
                  f"| **{c['verdict']}** | {cell(c['reason'])} |" for c in members]
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
    parts.append(f"<p>{html.escape(share_text(claims))}</p>")
    for group, members in _groups(claims).items():
        parts.append(f"<h3>{html.escape(group)}</h3><table><tr>"
                     + "".join(f"<th>{html.escape(name)}</th>" for _, name in COLUMNS) + "</tr>")
        for c in members:
            parts.append(f"<tr style='background:{colours[c['verdict']]}'>" + "".join(
                f"<td>{html.escape(str(c.get(key, '')))}</td>" for key, _ in COLUMNS) + "</tr>")
        parts.append("</table>")
    return "".join(parts) + "</body></html>\n"
