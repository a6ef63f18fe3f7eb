"""Do the boundary negatives reach training? Per synthetic benchmark: the share of BNS candidate-pool
entries that are the anchor's sibling-group members and one-edit siblings (per direction, from the
pools' metadata written by candidate_index.py), the share of the negatives BNS actually drew early
and late in training (from the training logs, when they record it), and the zero-shot floor's R@1
with the headroom it leaves (issue #11.1)."""

import json

from joblog import redirect_to_log
from paper_common import DIRECTION_WORDS, Table, cell, metric_path, percent, read_json

SHARES = ("same_group", "one_edit", "anchors_with_one_edit")  # bacl.metrics.siblings.sibling_shares
POOL_SIDES = {"text_neighbours": "pool: text neighbours (negative captions)",
              "x_neighbours": "pool: x neighbours (negative images / clips)"}
DRAWN = "drawn_{}"  # the training logs' key of a share of the drawn negatives
PHASE = 0.25  # early / late: the first / last quarter of the logged steps


def pool_shares(path: str) -> dict | None:
    """The ``sibling_shares`` of a pools file's metadata (None when the data have no sibling groups)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("meta", "{}"))
    return meta.get("sibling_shares")


def drawn_shares(training: dict, benchmark: str, method: str) -> dict[str, dict] | None:
    """``{"early"|"late": {"progress": (first, last), share: mean}}`` of the drawn negatives' sibling
    shares over the first / last quarter of the logged steps (at least one step each); None when
    the run's log records none."""
    curves = training.get("curves", {}).get(benchmark, {}).get(method)
    if not curves:
        return None
    series = {key: curves["series"][DRAWN.format(key)]["mean"] for key in SHARES
              if DRAWN.format(key) in curves["series"]}
    if not series:
        return None
    logged = [i for i in range(len(curves["steps"])) if any(values[i] is not None for values in series.values())]
    if not logged:
        return None
    width = max(1, round(PHASE * len(logged)))
    out = {}
    for phase, chosen in (("early", logged[:width]), ("late", logged[-width:])):
        progress = [curves["progress"][i] for i in chosen if curves["progress"][i] is not None]
        out[phase] = {"progress": (min(progress), max(progress)) if progress else None}
        for key, values in series.items():
            found = [values[i] for i in chosen if values[i] is not None]
            out[phase][key] = sum(found) / len(found) if found else None
    return out


def siblings_table(pools: dict[str, dict | None], summary: dict, training: dict, floor: str, bns: dict, split: str,
                   direction: str, title: str) -> Table:
    """Rows per benchmark: each pool direction, then each BNS method's early and late draws.

    Args:
        pools: benchmark -> its pools' sibling_shares (None: no sibling groups, no rows).
        floor: the zero-shot method; bns: label -> method of the BNS runs whose draws are shown.
    """
    r1 = metric_path("retrieval.{direction}.R@1", direction)
    columns = ["Benchmark", "Negatives", "same group", "one-edit sibling", "anchors with a one-edit sibling",
               "entries", "floor R@1", "headroom (100 − floor)"]
    rows = []
    for benchmark, shares in pools.items():
        if not shares:
            continue
        stats = percent(cell(summary, benchmark, split, floor, r1))
        headroom = None if stats is None else 100 - stats.mean
        for side, name in POOL_SIDES.items():
            if side in shares:
                rows.append([benchmark, name] + [100 * shares[side][key] for key in SHARES]
                            + [shares[side]["entries"], stats, headroom])
        for label, method in bns.items():
            drawn = drawn_shares(training, benchmark, method)
            for phase, values in (drawn or {}).items():
                span = values["progress"]
                when = f" (η {span[0]:.2f}–{span[1]:.2f})" if span else ""
                rows.append([benchmark, f"{label}: BNS draws, {phase}{when}"]
                            + [None if values.get(key) is None else 100 * values[key] for key in SHARES]
                            + [None, stats, headroom])
    if not rows:
        raise ValueError("no pools file records sibling shares: the benchmarks have no sibling groups")
    notes = [
        "Shares in percent. Pool: the BNS candidates of every training anchor (its nearest neighbours under the "
        "frozen encoder), per direction; same group: the anchor's own sibling group (its scene / clip and that "
        "scene's edited variants); one-edit sibling: a variant whose caption is one boundary edit away from the "
        "anchor's (the half-true negatives the paper is about); anchors with a one-edit sibling: share of anchors "
        "with at least one in their pool; entries: pool entries counted.",
        "BNS draws: the same shares among the negatives BNS drew, averaged over seeds and over the first / last "
        f"{int(100 * PHASE)} % of the logged steps (η: training progress); absent when the training logs do not "
        "record them.",
        f"Floor R@1: the frozen encoder with no head (split {split}, {DIRECTION_WORDS[direction]}); headroom: what "
        "a head can still gain in R@1.",
    ]
    return Table(title, columns, rows, notes)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    pools = {b: pool_shares(path) for b, path in zip(params.benchmarks, snakemake.input.pools)}
    table = siblings_table(pools, read_json(snakemake.input.results), read_json(snakemake.input.training),
                           params.floor, dict(params.bns), params.split, params.direction, params.title)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
