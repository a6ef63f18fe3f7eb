"""Summarise the training logs and the training jobs' Snakemake benchmarks into one file.

Inputs: each trained run's ``metrics.jsonl`` (lines of step, progress, loss terms, lr; for BNS
alpha, quantiles of the drawn negatives' boundary scores and their sibling shares; validation
points val_r1 / val_head_pairwise) and its ``benchmark:`` TSV (``s`` wall seconds, ``max_rss``
MB, ...). Output (``paper/data/training.json``)::

    {"curves": {benchmark: {method: {"steps": [...], "progress": [...],
                 "series": {key: {"mean": [...], "std": [...], "n": [...]}}}}},
     "cost":   {benchmark: {method: {"seconds": {mean, std, n, values},
                                     "max_rss_mb": {mean, std, n, values}}}},
     "convergence": {benchmark: {method: {"runs": [per seed: seed, steps, bacl.metrics.plateau.plateau_report,
                                                    drawn_<share>_early / _late, seconds_per_step],
                                          "meets": runs meeting the plateau criterion, "n": runs,
                                          "steps": [distinct step counts], <each numeric field>: {mean, std, n}}}},
     "plateau": {"threshold_pp", "fraction"}}

Curves are averaged over the seeds that logged a key at a step (``n`` says how many). A run's
step count is its log's last step (every run logs its last step). Early / late draw shares are
the means over the log lines of the first / last quarter of the run's steps.
"""

import csv
import json
import logging
import math
import numbers

from bacl.metrics import mean_std
from bacl.metrics.plateau import PLATEAU_FRACTION, PLATEAU_GAIN_PP, plateau_report

from joblog import redirect_to_log
from paper_common import write_json

# Columns of Snakemake's benchmark TSV that the report uses, and their names in the summary.
BENCHMARK_COLUMNS = {"s": "seconds", "max_rss": "max_rss_mb"}
NOT_SERIES = ("step", "progress")  # the x axes, not curves
# BNS draws' sibling shares, the contrastive term's and the match list's (bacl.train._draw_statistics)
DRAW_SHARES = ("drawn_one_edit", "drawn_same_group", "match_one_edit", "match_same_group")


def parse_metrics_log(text: str) -> list[dict]:
    """The records of one ``metrics.jsonl`` (one JSON object per non-empty line, sorted by step)."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"metrics log line {number} is not JSON: {error}") from None
        if not isinstance(record, dict) or "step" not in record:
            raise ValueError(f"metrics log line {number} has no 'step': {line[:80]!r}")
        records.append(record)
    return sorted(records, key=lambda record: record["step"])


def seed_curves(logs: list[list[dict]]) -> dict:
    """Mean and std over seeds of every numeric key at every logged step.

    Args:
        logs: one list of records (from :func:`parse_metrics_log`) per seed.
    """
    if not logs or not any(logs):
        raise ValueError("logs must hold at least one non-empty metrics log")
    steps = sorted({record["step"] for log in logs for record in log})
    by_step = [_merged_by_step(log) for log in logs]
    keys = sorted({key for log in logs for record in log for key, value in record.items()
                   if key not in NOT_SERIES and isinstance(value, numbers.Real) and not isinstance(value, bool)})
    progress = []
    for step in steps:
        values = [seed[step]["progress"] for seed in by_step if step in seed and "progress" in seed[step]]
        progress.append(values[0] if values else None)
    series = {}
    for key in keys:
        means, stds, counts = [], [], []
        for step in steps:
            values = [float(seed[step][key]) for seed in by_step if step in seed and key in seed[step]
                      and math.isfinite(float(seed[step][key]))]
            mean, std = mean_std(values) if values else (None, None)
            means.append(mean)
            stds.append(std)
            counts.append(len(values))
        series[key] = {"mean": means, "std": stds, "n": counts}
    return {"steps": steps, "progress": progress, "series": series}


def _merged_by_step(log: list[dict]) -> dict[int, dict]:
    """Records by step; two records of one step (e.g. a log line and a validation point) are merged."""
    merged: dict[int, dict] = {}
    for record in log:
        merged.setdefault(record["step"], {}).update(record)
    return merged


def run_convergence(records: list[dict], seed, measured: dict[str, float] | None = None) -> dict:
    """One run's plateau criterion, the early / late shares of its BNS draws (see module docstring)
    and, from its job's ``measured`` benchmark, ``seconds_per_step`` (job wall time / steps)."""
    if not records:
        raise ValueError(f"seed {seed}: the metrics log is empty")
    steps = max(record["step"] for record in records)
    out = {"seed": seed, "steps": steps, **plateau_report(records, steps),
           "seconds_per_step": (measured or {}).get("seconds", math.nan) / steps}
    for key in DRAW_SHARES:
        for part, inside in (("early", lambda s: s <= PLATEAU_FRACTION * steps),
                             ("late", lambda s: s > (1 - PLATEAU_FRACTION) * steps)):
            values = [r[key] for r in records if key in r and inside(r["step"])]
            out[f"{key}_{part}"] = sum(values) / len(values) if values else None
    return out


def convergence_statistics(runs: list[dict]) -> dict:
    """Seed statistics of the runs of one method: every numeric field's {mean, std, n}, the runs
    meeting the plateau criterion (``meets``; a run too short to judge counts as missing it)."""
    out = {"runs": runs, "n": len(runs), "meets": sum(run["meets"] is True for run in runs),
           "steps": sorted({run["steps"] for run in runs})}
    fields = [key for key in runs[0] if key not in ("seed", "steps", "meets", "threshold_pp")]
    for key in fields:
        values = [run[key] for run in runs if isinstance(run.get(key), numbers.Real) and math.isfinite(run[key])]
        if values:
            mean, std = mean_std(values)
            out[key] = {"mean": mean, "std": std, "n": len(values)}
    return out


def parse_benchmark_tsv(text: str) -> dict[str, float]:
    """``seconds`` and ``max_rss_mb`` of one Snakemake benchmark TSV (mean over its repeat lines;
    a column Snakemake could not measure, written as NA or -, is left out)."""
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t"))
    if not rows:
        raise ValueError("benchmark TSV has no data line")
    out = {}
    for column, name in BENCHMARK_COLUMNS.items():
        values = []
        for row in rows:
            try:
                values.append(float(row.get(column, "")))
            except ValueError:
                continue
        values = [v for v in values if math.isfinite(v)]
        if values:
            out[name] = sum(values) / len(values)
    return out


def cost_statistics(measurements: list[dict[str, float]]) -> dict:
    """Seed statistics ``{mean, std, n, values}`` of each benchmark column over runs."""
    out = {}
    for name in BENCHMARK_COLUMNS.values():
        values = [m[name] for m in measurements if name in m]
        if values:
            mean, std = mean_std(values)
            out[name] = {"mean": mean, "std": std, "n": len(values), "values": values}
    return out


def main(snakemake) -> None:
    redirect_to_log(snakemake.log[0])
    runs, logs, tsvs = snakemake.params.runs, snakemake.input.logs, snakemake.input.benchmarks
    if not len(runs) == len(logs) == len(tsvs):
        raise ValueError(f"params.runs ({len(runs)}), input.logs ({len(logs)}) and input.benchmarks ({len(tsvs)}) "
                         "must list the same runs")
    grouped: dict[tuple[str, str], list[tuple[int, list, dict]]] = {}
    for run, log_path, tsv_path in zip(runs, logs, tsvs):
        with open(log_path) as handle:
            records = parse_metrics_log(handle.read())
        with open(tsv_path) as handle:
            measured = parse_benchmark_tsv(handle.read())
        grouped.setdefault((run["benchmark"], run["method"]), []).append((run["seed"], records, measured))
    curves, cost, convergence = {}, {}, {}
    for (benchmark, method), pairs in grouped.items():  # the config's order of benchmarks and methods
        seeded_logs = [records for _, records, _ in pairs if records]
        if seeded_logs:
            curves.setdefault(benchmark, {})[method] = seed_curves(seeded_logs)
            convergence.setdefault(benchmark, {})[method] = convergence_statistics(
                [run_convergence(records, seed, measured) for seed, records, measured in pairs if records])
        cost.setdefault(benchmark, {})[method] = cost_statistics([measured for _, _, measured in pairs])
    write_json(snakemake.output[0], {"curves": curves, "cost": cost, "convergence": convergence,
                                     "plateau": {"threshold_pp": PLATEAU_GAIN_PP, "fraction": PLATEAU_FRACTION}})
    logging.info("summarised %d training runs into %s", len(runs), snakemake.output[0])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
