"""Negative types the probe found at chance at every block: flagged (†) in every table that reports
them, and left out of the one pooled accuracy that says so.

The probe (``probe_layers.py``, one JSON per synthetic benchmark) lists under ``at_chance_types`` the
kinds of boundary negative whose information no block of the frozen towers' tokens carries: no method
can be judged on them with these tokens (issue #11.2). A table that reports a type marks it; a table
that averages over types names the flagged ones beside the average.
"""

from bacl.metrics import mean_std

from paper_common import read_json

FLAG = " †"  # appended to a negative type at chance at every block


def read_flags(benchmarks: list[str], paths: list[str]) -> dict[str, list[str]]:
    """benchmark -> its types at chance at every block, from the probe records at ``paths``."""
    if len(benchmarks) != len(paths):
        raise ValueError(f"benchmarks ({len(benchmarks)}) and paths ({len(paths)}) must pair up")
    flags = {}
    for benchmark, path in zip(benchmarks, paths):
        record = read_json(path)
        if not isinstance(record.get("at_chance_types"), list):
            raise ValueError(f"probe record {path} has no list 'at_chance_types'")
        flags[benchmark] = list(record["at_chance_types"])
    return flags


def flagged(flags: dict[str, list[str]], benchmark: str, kind: str) -> bool:
    return kind in flags.get(benchmark, ())


def type_label(flags: dict[str, list[str]], benchmark: str, kind: str) -> str:
    """``kind`` with the flag when the probe found it at chance at every block on ``benchmark``."""
    return kind + (FLAG if flagged(flags, benchmark, kind) else "")


def flag_note(flags: dict[str, list[str]], benchmarks: list[str] | None = None, averaged: str | None = None,
              without_columns: bool = False) -> str:
    """The note under a table: which types are flagged on ``benchmarks`` (all when None), and, when
    the table has averages over types (``averaged`` names them), that those include the flagged
    types (and, with ``without_columns``, that its "(no †)" columns leave them out)."""
    shown = [b for b in flags if benchmarks is None or b in benchmarks]
    listed = "; ".join(f"{b}: {', '.join(flags[b])}" for b in shown if flags[b])
    note = (f"{FLAG.strip()} negative type at chance at every block of the frozen towers' tokens in the linear probe "
            f"(probe table): no head can be judged on it with these tokens. Flagged: {listed or 'none'}.")
    if averaged and listed:
        note += f" Averaged over every type, the flagged ones included: {averaged}"
        note += "; the '(no †)' columns leave them out." if without_columns else "."
    return note


def pairwise_without(summary: dict, benchmark: str, split: str, method: str, section: str,
                     exclude: list[str]) -> dict | None:
    """Seed statistics of the pairwise accuracy of ``section`` (e.g. ``boundary_match_head``) over the
    negative types not in ``exclude``: per seed, sum_t accuracy_t n_t / sum_t n_t over those types.

    None when the run has no per-type results there, or every type is excluded.
    """
    try:
        entry = summary["results"][benchmark][split][method]
    except KeyError:
        return None
    metrics, prefix = entry["metrics"], f"{section}.per_type."
    kinds = sorted({name[len(prefix):].rsplit(".", 1)[0] for name in metrics if name.startswith(prefix)})
    kept = [k for k in kinds if k not in exclude and f"{prefix}{k}.n_pairs" in metrics
            and f"{prefix}{k}.accuracy" in metrics]
    if not kept:
        return None
    per_seed = []
    for s in range(len(entry["seeds"])):
        pairs = sum(metrics[f"{prefix}{k}.n_pairs"]["values"][s] for k in kept)
        wins = sum(metrics[f"{prefix}{k}.accuracy"]["values"][s] * metrics[f"{prefix}{k}.n_pairs"]["values"][s]
                   for k in kept)
        per_seed.append(wins / pairs if pairs else 0.0)
    mean, std = mean_std(per_seed)
    return {"mean": mean, "std": std, "n": len(per_seed), "values": per_seed, "seeds": entry["seeds"]}
