"""Convergence and cost of every trained method: was each run trained to its plateau, at what
price per step, and how often BNS drew one-edit siblings early and late in training.

One row per benchmark x method, from the training summary (``aggregate_training.py``): the steps,
val R@1 at step 0 (the untrained heads) and at the end, its gain over the last quarter (the
plateau criterion of bacl.metrics.plateau, mean ± std over seeds) and how many runs meet it, the
training loss's relative change over the same quarter (secondary), the match head's pairwise
boundary accuracy untrained and at the end, milliseconds per step and peak memory (the Snakemake
benchmark of each training job), and the share of BNS draws that are one-edit siblings in the first
and the last quarter, beside (in the notes) the share of one-edit siblings among the BNS candidate
pools they are drawn from (the pools' metadata, candidate_index.py). Runs that miss the criterion
are named in the notes.
"""

import json

from safetensors import safe_open

from joblog import redirect_to_log
from paper_common import MeanStd, Table, read_json

COLUMNS = ["Benchmark", "Method", "Steps", "Val R@1 step 0 (%)", "Val R@1 final (%)", "R@1 gain, last quarter (pp)",
           "Plateau met", "Loss change, last quarter (%)", "Head acc untrained (%)", "Head acc final (%)",
           "ms / step", "Peak RSS (MB)", "One-edit draws, first quarter (%)", "One-edit draws, last quarter (%)",
           "One-edit match negatives, first quarter (%)", "One-edit match negatives, last quarter (%)"]
# (column, field of the convergence summary, factor to the column's unit)
SEED_FIELDS = (("Val R@1 step 0 (%)", "initial_val_r1", 1.0), ("Val R@1 final (%)", "final_val_r1", 1.0),
               ("R@1 gain, last quarter (pp)", "val_r1_gain_pp", 1.0),
               ("Loss change, last quarter (%)", "loss_relative_change", 100.0),
               ("Head acc untrained (%)", "initial_val_head_pairwise", 1.0),
               ("Head acc final (%)", "final_val_head_pairwise", 1.0),
               ("ms / step", "seconds_per_step", 1000.0),
               ("One-edit draws, first quarter (%)", "drawn_one_edit_early", 100.0),
               ("One-edit draws, last quarter (%)", "drawn_one_edit_late", 100.0),
               ("One-edit match negatives, first quarter (%)", "match_one_edit_early", 100.0),
               ("One-edit match negatives, last quarter (%)", "match_one_edit_late", 100.0))


def _cell(stats: dict | None, factor: float = 1.0) -> MeanStd | None:
    return None if stats is None else MeanStd(factor * stats["mean"], factor * stats["std"], stats["n"])


def _misses(benchmark: str, label: str, runs: list[dict]) -> list[str]:
    """The runs of one method that miss the criterion, named; a method none of whose runs validated once."""
    if all(run["final_val_r1"] is None for run in runs):
        return [f"{benchmark} / {label} (not validated: no val split)"]
    out = []
    for run in runs:
        if run["meets"] is None:
            out.append(f"{benchmark} / {label} seed {run['seed']} (too few validation points to judge)")
        elif not run["meets"]:
            out.append(f"{benchmark} / {label} seed {run['seed']} (+{run['val_r1_gain_pp']:.2f} pp)")
    return out


def pool_shares(pools: dict[str, str]) -> dict[str, float]:
    """{benchmark: share of one-edit siblings among the text candidates of its BNS pools} from the
    pools files' metadata ({benchmark: path}; benchmarks without sibling groups are left out)."""
    out = {}
    for benchmark, path in pools.items():
        with safe_open(str(path), framework="pt") as handle:  # the metadata only, not the pools
            shares = json.loads((handle.metadata() or {}).get("meta", "{}")).get("sibling_shares")
        if shares:
            out[benchmark] = shares["text_neighbours"]["one_edit"]
    return out


def convergence_table(training: dict, methods: dict[str, str], title: str, pools: dict[str, float] | None = None) -> Table:
    """Rows for every (benchmark, method) of ``training["convergence"]`` whose method is one of
    ``methods`` (row label -> method), in the methods' order; ``pools`` from :func:`pool_shares`.

    Raises ValueError when none of ``methods`` has a convergence summary.
    """
    rows, misses, unequal = [], [], []
    for benchmark, summaries in training.get("convergence", {}).items():
        steps_seen = set()
        for label, method in methods.items():
            summary = summaries.get(method)
            if summary is None:
                continue
            steps_seen.update(summary["steps"])
            fields = {column: _cell(summary.get(field), factor) for column, field, factor in SEED_FIELDS}
            cost = training.get("cost", {}).get(benchmark, {}).get(method, {})
            met = f"{summary['meets']}/{summary['n']}" + ("" if summary["meets"] == summary["n"] else " ✗")
            rows.append([benchmark, label, "/".join(map(str, summary["steps"])), fields["Val R@1 step 0 (%)"],
                         fields["Val R@1 final (%)"], fields["R@1 gain, last quarter (pp)"], met,
                         fields["Loss change, last quarter (%)"], fields["Head acc untrained (%)"],
                         fields["Head acc final (%)"], fields["ms / step"],
                         _cell(cost.get("max_rss_mb")), *(fields[column] for column in COLUMNS[-4:])])
            misses += _misses(benchmark, label, summary["runs"])
        if len(steps_seen) > 1:
            unequal.append(f"{benchmark} ({sorted(steps_seen)})")
    if not rows:
        raise ValueError(f"none of the methods {sorted(methods.values())} has a convergence summary")
    plateau = training.get("plateau", {})
    notes = [f"Plateau criterion (paper/ASSUMPTIONS.md): a run has converged when its val R@1 (mean of both retrieval "
             f"directions) gains less than {plateau.get('threshold_pp', '?')} pp over the last quarter of its steps, "
             "read off the least-squares line through that quarter's validation points; 'Plateau met' counts the "
             "runs (seeds) that meet it, ✗ marks a method with a run that does not. The loss change is the same fit "
             "of the training loss, relative to its mean over the quarter (secondary).",
             "Head acc: the match head's pairwise boundary accuracy (chance 50 %) on a fixed subset of val samples; "
             "'untrained' is the step-0 point, before any update. ms / step: each training job's wall time "
             "(Snakemake benchmark, so with start-up, feature loading and validation) over its steps; peak RSS "
             "of the job. One-edit draws: share of BNS's drawn text negatives that are one-edit siblings of the "
             "anchor's caption (log lines of the first / last quarter of the steps); one-edit match negatives: the "
             "same share among the retrieved negatives of the cross-modal Transformer's match lists. – : not measured."]
    if pools:
        notes.append("One-edit siblings among the BNS pools' text candidates (what the draws pick from; a method "
                     "with train.pool_excludes_group never draws from the anchor's sibling group): "
                     + ", ".join(f"{b} {100 * share:.1f} %" for b, share in pools.items()) + ".")
    if unequal:
        notes.append("Methods trained for different numbers of steps: " + "; ".join(unequal) + ".")
    notes.append("Runs missing the criterion: " + ("; ".join(misses) if misses else "none") + ".")
    return Table(title, COLUMNS, rows, notes)


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    params = snakemake.params
    pools = pool_shares(dict(zip(params.benchmarks, snakemake.input.pools)))
    table = convergence_table(read_json(snakemake.input.training), dict(params.methods), params.title, pools)
    table.write_outputs(snakemake.output)


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
