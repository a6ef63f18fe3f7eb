"""Summarise the training logs and the training jobs' Snakemake benchmarks into one file.

Inputs: each trained run's ``metrics.jsonl`` (lines of step, progress, loss terms, lr and, for
BNS, alpha and quantiles of the drawn negatives' boundary scores) and its ``benchmark:`` TSV
(``s`` wall seconds, ``max_rss`` MB, ...). Output (``paper/data/training.json``)::

    {"curves": {benchmark: {method: {"steps": [...], "progress": [...],
                 "series": {key: {"mean": [...], "std": [...], "n": [...]}}}}},
     "cost":   {benchmark: {method: {"seconds": {mean, std, n, values},
                                     "max_rss_mb": {mean, std, n, values}}}}}

Curves are averaged over the seeds that logged a key at a step (``n`` says how many).
"""

import csv
import json
import logging
import math
import numbers

from bacl.metrics import mean_std

from joblog import redirect_to_log
from paper_common import write_json

# Columns of Snakemake's benchmark TSV that the report uses, and their names in the summary.
BENCHMARK_COLUMNS = {"s": "seconds", "max_rss": "max_rss_mb"}
NOT_SERIES = ("step", "progress")  # the x axes, not curves


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
    by_step = [{record["step"]: record for record in log} for log in logs]
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
    grouped: dict[tuple[str, str], list[tuple[list, dict]]] = {}
    for run, log_path, tsv_path in zip(runs, logs, tsvs):
        with open(log_path) as handle:
            records = parse_metrics_log(handle.read())
        with open(tsv_path) as handle:
            measured = parse_benchmark_tsv(handle.read())
        grouped.setdefault((run["benchmark"], run["method"]), []).append((records, measured))
    curves, cost = {}, {}
    for (benchmark, method), pairs in sorted(grouped.items()):
        seeded_logs = [records for records, _ in pairs if records]
        if seeded_logs:
            curves.setdefault(benchmark, {})[method] = seed_curves(seeded_logs)
        cost.setdefault(benchmark, {})[method] = cost_statistics([measured for _, measured in pairs])
    write_json(snakemake.output[0], {"curves": curves, "cost": cost})
    logging.info("summarised %d training runs into %s", len(runs), snakemake.output[0])


if "snakemake" in globals():
    main(snakemake)  # noqa: F821 (injected by Snakemake's script directive)
