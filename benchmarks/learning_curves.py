"""Learning curves for choosing ``train.steps``: validation R@1 against the step, per method.

Every run goes through the pipeline's own path (``python -m bacl train`` in this process, with a
config that is the given one plus the step count and validation interval), on given feature sets:

* ``--steps S`` (curve mode): one run of S steps per method, validated every ``--validate-every``
  steps; prints val R@1 at ``--report-steps`` and writes the whole curves. Under the cosine
  learning-rate decay the value at an intermediate step s of this run is not what a run *configured*
  for s steps ends at (that run would have annealed by then), so the curve shows the shape, not the
  end point of shorter budgets.
* ``--budgets S1 S2 ...`` (budget mode): one run per method and budget, each with its own schedule;
  prints each run's final val R@1 and its plateau criterion (bacl.metrics.plateau): the smallest budget
  at which the criterion holds for every method, and how much a larger budget still adds, are read
  off this table.

Cost per step: the process CPU time of the run (one torch thread by default, as the pipeline's
jobs), less the validation's share of the run's wall time, over its steps; the validation share is
reported too. CPU time is what a step needs on a free core; it is not a paired, interleaved
measurement like step_cost.py's (use that for ratios between methods).

    nice -n 19 .venv/bin/python benchmarks/learning_curves.py --config workflow/config/default.yaml \\
        --train F/train.safetensors --pools F/train_pools.safetensors --val F/val.safetensors \\
        --methods clip clip_bacl --steps 2000 --validate-every 100
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bacl.cli import main as bacl_main
from bacl.metrics.plateau import plateau_report
from bacl.train import METRICS_LOG

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DETAILS, RESULTS, environment, positive_int, write_json  # noqa: E402

REPORT_STEPS = (100, 200, 400, 800, 1200, 1600, 2000)  # the points the issue asks for


def run(config: Path, method: str, steps: int, validate_every: int, files: dict, seed: int, threads: int,
        folder: Path) -> dict:
    """One training run through the CLI; its validation curve, plateau report and cost."""
    run_config = folder / f"{method}-{steps}.yaml"
    run_config.write_text(yaml.safe_dump({"base": str(config.resolve()),
                                          "train": {"steps": steps, "validate_every": validate_every}}))
    out = folder / f"{method}-{steps}"
    args = ["train", "--config", str(run_config), "--method", method, "--train", str(files["train"]),
            "--val", str(files["val"]), "--out", str(out), "--seed", str(seed), "--threads", str(threads), "--quiet"]
    if files.get("pools"):
        args += ["--pools", str(files["pools"])]
    cpu = time.process_time()
    if bacl_main(args) != 0:
        raise RuntimeError(f"training {method} for {steps} steps failed (its error is above)")
    cpu = time.process_time() - cpu
    summary = json.loads((out / "summary.json").read_text())
    records = [json.loads(line) for line in (out / METRICS_LOG).read_text().splitlines()]
    validation_share = summary["validation_seconds"] / summary["seconds"]
    points = [(r["step"], r["val_r1"]) for r in records if "val_r1" in r]
    heads = [(r["step"], r["val_head_pairwise"]) for r in records if "val_head_pairwise" in r]
    return {"method": method, "steps": steps, "seed": seed, "curve": {"steps": [s for s, _ in points],
                                                                       "val_r1": [v for _, v in points]},
            "head_curve": {"steps": [s for s, _ in heads], "val_head_pairwise": [v for _, v in heads]},
            "loss": [(r["step"], r["loss"]) for r in records if "loss" in r],
            "plateau": plateau_report(records, steps), "wall_seconds": summary["seconds"],
            "validation_seconds": summary["validation_seconds"], "validation_share": validation_share,
            "cpu_seconds": cpu, "cpu_seconds_per_step": cpu * (1 - validation_share) / steps}


def value_at(curve: dict, step: int) -> float | None:
    """val R@1 at ``step`` (None where the curve has no point there)."""
    return dict(zip(curve["steps"], curve["val_r1"])).get(step)


def report(runs: list[dict], report_steps: tuple[int, ...]) -> str:
    """A plain-text table: curve mode rows per method, budget mode rows per (method, budget)."""
    lines = []
    header = (["method", "steps", "s_cpu/step", "val share"] + [f"R@1@{s}" for s in report_steps]
              + ["final", "gain_lq(pp)", "meets", "head0", "head_final"])
    lines.append("\t".join(header))
    for item in runs:
        plateau = item["plateau"]
        cells = [item["method"], str(item["steps"]), f"{item['cpu_seconds_per_step']:.4f}",
                 f"{100 * item['validation_share']:.1f}%"]
        cells += ["" if value_at(item["curve"], s) is None else f"{100 * value_at(item['curve'], s):.2f}"
                  for s in report_steps]
        cells += [f"{plateau['final_val_r1']:.2f}", "" if plateau["val_r1_gain_pp"] is None
                  else f"{plateau['val_r1_gain_pp']:+.2f}", str(plateau["meets"]),
                  "" if plateau["initial_val_head_pairwise"] is None else f"{plateau['initial_val_head_pairwise']:.1f}",
                  "" if plateau["final_val_head_pairwise"] is None else f"{plateau['final_val_head_pairwise']:.1f}"]
        lines.append("\t".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("workflow/config/default.yaml"))
    parser.add_argument("--train", type=Path, required=True, help="training feature set")
    parser.add_argument("--pools", type=Path, help="its BNS pools (methods with bns or cla need them)")
    parser.add_argument("--val", type=Path, required=True, help="validation feature set (a stand-in: say which)")
    parser.add_argument("--methods", nargs="+", default=["clip", "clip_bacl"])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--steps", type=positive_int, help="curve mode: one run of this many steps per method")
    mode.add_argument("--budgets", type=positive_int, nargs="+", help="budget mode: one run per budget and method")
    parser.add_argument("--validate-every", type=positive_int, default=100)
    parser.add_argument("--report-steps", type=positive_int, nargs="+", default=list(REPORT_STEPS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive_int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / DETAILS / "learning_curves.json")
    args = parser.parse_args(argv)
    files = {"train": args.train, "pools": args.pools, "val": args.val}
    budgets = [args.steps] if args.steps else args.budgets
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for steps in budgets:
            for method in args.methods:
                runs.append(run(args.config, method, steps, args.validate_every, files, args.seed, args.threads,
                                Path(tmp)))
                print(report(runs[-1:], tuple(args.report_steps)).splitlines()[-1], flush=True)
    payload = {"environment": environment(), "mode": "curve" if args.steps else "budgets",
               "files": {k: None if v is None else str(v) for k, v in files.items()}, "config": str(args.config),
               "runs": runs}
    write_json(args.out, payload)
    print(report(runs, tuple(args.report_steps)))
    return payload


if __name__ == "__main__":
    main()
