"""Wall time and memory of the pipeline's stages, from the files Snakemake's ``benchmark:`` writes.

Each rule with a ``benchmark:`` directive leaves one TSV per job (columns ``s``, ``max_rss`` in
MB, ``cpu_time``, ...; one row per repeat) under ``<run>/benchmarks/<stage>/...``; the theory
notebooks under ``<theory results>/benchmarks/``. The stage is the folder right under
``benchmarks/`` (data, encoders, features, train, ...), or the folder that holds ``benchmarks/``
when the TSV sits directly in it (theory); every TSV under an ``--extra STAGE=FOLDER`` counts as
STAGE (by default the run's theory results folder, when it lies outside the run). Per stage: jobs, summed job seconds, the longest job,
summed CPU seconds and the largest max_rss. Jobs of a stage run in parallel under
``--cores``, so summed seconds are the stage's compute, not its elapsed time. Per method, the
jobs and job seconds of its training and evaluation (whose TSVs sit at
``benchmarks/<stage>/<benchmark>/<method>/seed<k>.tsv``): what each row of a table costs, the
arithmetic behind any trade of runs against the budget. And the headline table's floor: the CPU
seconds of its rows' training and evaluation (the run config's ``tables.main`` and ``tables.floor``)
plus those of the stages upstream of every run; divided by the cores, a lower bound on the elapsed
time of any run on such cores that makes that table at the run's steps and seeds.

    .venv/bin/python benchmarks/pipeline_stages.py results/cpu-default
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import yaml

from bacl.config import ConfigError, validate_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DETAILS, RESULTS, ROOT, environment, write_json  # noqa: E402

__all__ = ["stage_of", "read_tsv", "stage_table", "method_table", "headline_floor", "PER_METHOD_STAGES",
           "UPSTREAM_STAGES"]

# Stages with one job per (benchmark, method, seed), laid out as benchmarks/<stage>/<benchmark>/<method>/seed<k>.tsv.
PER_METHOD_STAGES = ("train", "evaluate")
# Stages every training run depends on (the probe chooses the token layer the features store).
UPSTREAM_STAGES = ("data", "encoders", "features", "probe")


def stage_of(path: Path) -> str:
    """The stage a benchmark TSV belongs to (see module docstring)."""
    parts = path.parts
    if "benchmarks" not in parts:
        raise ValueError(f"{path} is not under a benchmarks/ folder")
    at = len(parts) - 1 - parts[::-1].index("benchmarks")
    below = parts[at + 1:-1]
    if below:
        return below[0]
    if at == 0:
        raise ValueError(f"{path}: a TSV directly in a top-level benchmarks/ folder has no stage")
    return parts[at - 1]


def read_tsv(path: Path) -> list[dict[str, float]]:
    """The rows of one Snakemake benchmark TSV, numeric columns as floats ('NA' and h:m:s dropped)."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise ValueError(f"{path} is not a Snakemake benchmark file (no 's' column or no rows)")
    out = []
    for row in rows:
        values = {}
        for key, value in row.items():
            try:
                values[key] = float(value)
            except (TypeError, ValueError):  # "NA", "0:00:26"
                continue
        out.append(values)
    return out


def _run_config(run: Path) -> dict | None:
    """The run's config copy, validated (which fills the schema's defaults); None without one or
    for a config of an older schema."""
    config_path = run / "config.yaml"
    if not config_path.is_file():
        return None
    try:
        return validate_config(yaml.safe_load(config_path.read_text()) or {})
    except ConfigError:
        return None


def _theory_dir(run: Path, config: dict) -> Path | None:
    """The theory notebooks' results folder named in the run's ``config``, when outside the run.

    Paths in a config are relative to the checkout Snakemake ran in: the folder that holds the run
    as its ``results_dir`` (so a run of another checkout is read with that checkout's theory results).
    """
    run = run.resolve()
    results_dir = Path(config["results_dir"])
    depth = len(results_dir.parts)
    # An absolute results_dir names no checkout: a relative theory folder is then read from this one.
    inside = not results_dir.is_absolute() and run.parts[-depth:] == results_dir.parts
    checkout = run.parents[depth - 1] if inside else ROOT
    path = checkout / config["theory"]["results_dir"]
    return None if path.resolve().is_relative_to(run) else path


def stage_table(run: Path, extra: dict[str, Path] | None = None) -> dict[str, dict]:
    """Per-stage totals over every benchmark TSV under ``run``, plus those under each ``extra``
    folder, which all count towards the stage it is keyed by (e.g. {"theory": theory/results})."""
    files = [(path, stage_of(path)) for path in sorted(run.rglob("benchmarks/**/*.tsv"))]
    for stage, folder in (extra or {}).items():
        files += [(path, stage) for path in sorted(folder.rglob("benchmarks/**/*.tsv"))]
    stages: dict[str, dict] = {}
    for path, stage in dict(files).items():  # a folder given twice counts once
        rows = read_tsv(path)
        seconds = _job_seconds(rows)
        entry = stages.setdefault(stage, {"jobs": 0, "seconds": 0.0, "longest_job_seconds": 0.0,
                                          "longest_job": "", "cpu_seconds": 0.0, "max_rss_mb": 0.0})
        entry["jobs"] += 1
        entry["seconds"] += seconds
        entry["cpu_seconds"] += _cpu_seconds(rows)
        entry["max_rss_mb"] = max(entry["max_rss_mb"], *(r.get("max_rss", 0.0) for r in rows))
        if seconds > entry["longest_job_seconds"]:
            entry["longest_job_seconds"], entry["longest_job"] = seconds, _shown(path)
    return stages


def _job_seconds(rows: list[dict[str, float]]) -> float:
    """A job's seconds: the mean over Snakemake's repeats (the rows of its TSV)."""
    return sum(r["s"] for r in rows) / len(rows)


def _cpu_seconds(rows: list[dict[str, float]]) -> float:
    """A job's CPU seconds (Snakemake's cpu_time: user + system of the job's processes), mean over
    repeats; unlike its seconds, not stretched by other work sharing the cores."""
    return sum(r.get("cpu_time", 0.0) for r in rows) / len(rows)


def method_table(run: Path) -> dict[str, dict]:
    """Per method: for each of PER_METHOD_STAGES its jobs, summed job seconds and CPU seconds, and
    the benchmarks it ran on, from ``run``'s benchmarks/<stage>/<benchmark>/<method>/seed<k>.tsv files."""
    methods: dict[str, dict] = {}
    for stage in PER_METHOD_STAGES:
        for path in sorted((run / "benchmarks" / stage).glob("*/*/seed*.tsv")):
            benchmark, method = path.parent.parent.name, path.parent.name
            entry = methods.setdefault(method, {"benchmarks": [], **{s: {"jobs": 0, "seconds": 0.0, "cpu_seconds": 0.0}
                                                                    for s in PER_METHOD_STAGES}})
            rows = read_tsv(path)
            entry[stage]["jobs"] += 1
            entry[stage]["seconds"] += _job_seconds(rows)
            entry[stage]["cpu_seconds"] += _cpu_seconds(rows)
            if benchmark not in entry["benchmarks"]:
                entry["benchmarks"].append(benchmark)
    for entry in methods.values():
        entry["benchmarks"].sort()
    return methods


def headline_floor(stages: dict[str, dict], methods: dict[str, dict], config: dict) -> dict:
    """The CPU seconds the headline table needs: its methods' (``config``'s ``tables.main`` and
    ``tables.floor``) training and evaluation, and the UPSTREAM_STAGES, from ``stage_table`` and
    ``method_table`` results. A method of the table that the run has no job of is listed as missing."""
    tables = config.get("tables", {})
    names = sorted({*tables.get("main", {}).values(), *tables.get("floor", {}).values()})
    rows = sum(methods[name][stage]["cpu_seconds"] for name in names if name in methods for stage in PER_METHOD_STAGES)
    upstream = sum(stages[stage]["cpu_seconds"] for stage in UPSTREAM_STAGES if stage in stages)
    return {"methods": names, "missing": [name for name in names if name not in methods],
            "upstream_stages": list(UPSTREAM_STAGES), "rows_cpu_seconds": rows, "upstream_cpu_seconds": upstream,
            "cpu_seconds": rows + upstream}


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it: results stay comparable across checkouts."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def _extra(text: str) -> tuple[str, Path]:
    """argparse type for STAGE=FOLDER."""
    stage, sep, folder = text.partition("=")
    if not sep or not stage or not folder:
        raise ValueError(f"expected STAGE=FOLDER, got {text!r}")
    return stage, Path(folder)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a pipeline run's results folder, e.g. results/cpu-default")
    parser.add_argument("--extra", type=_extra, nargs="*", default=None, metavar="STAGE=FOLDER",
                        help="more folders with benchmarks/ inside, counted as STAGE (default: "
                             "theory=<the run config's theory.results_dir> when that lies outside the run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not args.run.is_dir():
        raise ValueError(f"run folder {args.run} does not exist")
    config = _run_config(args.run)
    if args.extra is not None:
        extra = dict(args.extra)
    else:
        theory = _theory_dir(args.run, config) if config else None
        extra = {"theory": theory} if theory and theory.is_dir() else {}
    stages = stage_table(args.run, extra)
    if not stages:
        raise ValueError(f"no Snakemake benchmark files (benchmarks/**/*.tsv) under {args.run} or {extra}")
    total = sum(s["seconds"] for s in stages.values())
    for name, s in sorted(stages.items(), key=lambda item: -item[1]["seconds"]):
        print(f"{name:10s} {s['jobs']:4d} jobs {s['seconds']:9.1f} job-s ({100 * s['seconds'] / total:4.1f} %)  "
              f"longest {s['longest_job_seconds']:8.1f} s  max_rss {s['max_rss_mb']:7.0f} MB")
    methods = method_table(args.run)
    result = {"benchmark": "pipeline_stages", "run": _shown(args.run), "extra": {k: _shown(v) for k, v in extra.items()},
              "stages": stages, "methods": methods, "total_job_seconds": total,
              "headline_floor": headline_floor(stages, methods, config) if config else None,
              # the machine this summary ran on: normally the run's own, right after it
              "summarised_on": environment()}
    write_json(args.out / DETAILS / f"pipeline_stages_{args.run.name}.json", result)
    return result


if __name__ == "__main__":
    main()
