"""The report's cost section, benchmarks/results/cost.md, from the benchmarks' JSON results.

Every number in it is read from benchmarks/results/details/*.json (written by the benchmark
scripts); sections whose benchmark has not been run are left out.

    .venv/bin/python benchmarks/cost_report.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DETAILS, RESULTS  # noqa: E402
from plot import GOAL, load  # noqa: E402

GOAL_BATCH = 256
BASELINE = "step_cost_baseline"  # details/step_cost_baseline.json: the step costs before issue #14's work
# Issue #14's targets at batch 256: (aligner, numerator, denominator, time or memory) -> the most allowed.
TARGETS = {("clip", "bns", "base", "time"): 2.0, ("clip", "bacl", "match", "time"): 1.15,
           ("m3jepa", "bacl", "match", "time"): 1.3, ("clip", "bacl", "match", "memory"): 1.05,
           ("blip", "bacl", "base", "memory"): 1.05, ("m3jepa", "bacl", "match", "memory"): 1.05,
           ("blip", "bacl", "base", "time"): None}


def _machine(env: dict) -> str:
    """The CPUs of a run's provenance: their count, model and vector extension (recorded since
    2026-12; either may be missing) and the device."""
    details = "; ".join(str(v) for v in (env.get("cpu_model"), env.get("cpu_capability"), env["device"]) if v)
    return f"{env['cpu_count']} CPUs ({details})"


def _environment(env: dict) -> str:
    niced = f"niced ({env['niceness']}) beside other work" if env["niced"] else "not niced"
    commit = (env.get("git_commit") or "unknown")[:10] + (" + uncommitted changes in src/" if env.get("git_dirty") else "")
    return (f"torch {env['torch']}, {env['threads']} thread(s) on {_machine(env)}, "
            f"{niced}, 1-min load {env['load_average_1min']:.1f} at start, {env['date']}, commit {commit}")


def end_to_end(step: dict, cache: dict | None) -> list[str]:
    """What the time ratio would be if the frozen encoder ran in every step, as in the paper's setting."""
    if cache is None:
        return []
    by = {(m["aligner"], m["batch_size"], m["variant"]): m["seconds_median"] for m in step["measurements"]}
    encode = cache["encode_seconds_per_sample"] * GOAL_BATCH  # one image and one caption per anchor
    if ("clip", GOAL_BATCH, "bacl") not in by:
        return []
    bacl, match, base = (by[("clip", GOAL_BATCH, v)] for v in ("bacl", "match", "base"))
    return ["", (f"For scale, if the frozen {cache['encoder']} encoder ran on each batch instead of the cache "
                 f"({1e3 * encode:.0f} ms for {GOAL_BATCH} images and captions, from the cache benchmark) and the "
                 f"candidates' features still came from a cache, CLIP+BACL's step would take "
                 f"{(bacl + encode) / (match + encode):.2f}x that of CLIP with the same Transformer and "
                 f"{(bacl + encode) / (base + encode):.2f}x that of plain CLIP (an estimate from two benchmarks, "
                 "not a measurement).")]


def step_section(step: dict) -> list[str]:
    lines = ["### Step time and peak memory", "",
             ("Ratios of a training step (batch gathering, forward, backward, AdamW) of the aligner + BACL over the "
              "same aligner with the same cross-modal Transformer trained by its match loss only (issue #14's ratio: "
              f"target <= 1.15x time, goal {GOAL}x; <= {GOAL}x memory; at batch {GOAL_BATCH}) and over the plain "
              "aligner. Time: ratio of "
              "medians, [min, max] of the per-round paired ratios. " + _environment(step["environment"]) + "."), "",
             ("| aligner | batch | time / same Transformer | time / plain | memory / same Transformer | "
              "memory / plain | BACL step ms | BACL peak MiB |"), "|---|---|---|---|---|---|---|---|"]
    by = {(m["aligner"], m["batch_size"], m["variant"]): m for m in step["measurements"]}
    for r in step["ratios"]:
        t, p = r["time_vs_same_transformer"], r["time_vs_plain"]
        bacl = by[(r["aligner"], r["batch_size"], "bacl")]
        lines.append(f"| {r['aligner']} | {r['batch_size']} | {t['ratio']:.2f}x [{t['paired_min']:.2f}, "
                     f"{t['paired_max']:.2f}] | {p['ratio']:.1f}x | {r['memory_vs_same_transformer']:.3f}x | "
                     f"{r['memory_vs_plain']:.1f}x | {1e3 * bacl['seconds_median']:.0f} | "
                     f"{bacl['peak_bytes'] / 2**20:.0f} |")
    goal = [r for r in step["ratios"] if r["batch_size"] == GOAL_BATCH]
    for label, key in (("time", "time_vs_same_transformer"), ("memory", "memory_vs_same_transformer")):
        value = {r["aligner"]: r[key]["ratio"] if isinstance(r[key], dict) else r[key] for r in goal}
        met = [name for name, v in value.items() if v <= GOAL]
        missed = [name for name in value if name not in met]
        if value:
            lines += ["", (f"Goal for {label} (<= {GOAL}x at batch {GOAL_BATCH}): met by "
                           f"{', '.join(met) or 'no aligner'}; missed by {', '.join(missed) or 'none'}.")]
    lines += ["", "Where a step's time goes (median ms per phase):", "",
              "| aligner | batch | variant | batch gathering | forward | backward | optimizer | total |",
              "|---|---|---|---|---|---|---|---|"]
    for m in step["measurements"]:
        if m["batch_size"] == GOAL_BATCH:
            phases = m["phases_median"]
            lines.append(f"| {m['aligner']} | {m['batch_size']} | {m['variant']} | " + " | ".join(
                f"{1e3 * phases[k]:.1f}" for k in ("batch", "forward", "backward", "optimizer"))
                + f" | {1e3 * m['seconds_median']:.1f} |")
    for r in step["ratios"]:
        if "profile_bacl" in r:
            profile = r["profile_bacl"]
            lines += ["", f"Profile of {r['aligner']}+BACL at batch {r['batch_size']} (per step): top torch ops "
                      "by self time: " + ", ".join(f"`{o['op']}` {o['self_ms']:.1f} ms" for o in profile["torch_ops"][:6])
                      + "; forward-pass parts by cumulative time: " + ", ".join(
                          f"{name} {ms:.1f} ms" for name, ms in profile["parts_ms"].items()) + "."]
    return lines


def _ratio(step: dict, aligner: str, numerator: str, denominator: str, kind: str) -> dict | None:
    """Time (ratio of medians, range of the paired per-round ratios) or peak-memory ratio of two
    variants at the goal batch, from the measurements themselves (so that old files serve too)."""
    by = {(m["aligner"], m["batch_size"], m["variant"]): m for m in step["measurements"]}
    top, bottom = by.get((aligner, GOAL_BATCH, numerator)), by.get((aligner, GOAL_BATCH, denominator))
    if top is None or bottom is None:
        return None
    if kind == "memory":
        return {"ratio": top["peak_bytes"] / bottom["peak_bytes"]}
    paired = [a / b for a, b in zip(top["seconds"], bottom["seconds"])]
    return {"ratio": top["seconds_median"] / bottom["seconds_median"], "min": min(paired), "max": max(paired)}


def _label(run: dict) -> str:
    """A run's column heading: its commit (and CPU capability, where recorded) and the Transformer /
    CLA settings it measured."""
    env = run["environment"]
    commit = (env.get("git_commit") or "unknown")[:10] + (f" ({env['cpu_capability']})" if env.get("cpu_capability") else "")
    transformer, bacl = run.get("transformer"), run.get("bacl")
    if not transformer or not bacl:
        return commit
    return f"{commit}, width {transformer['width']}, {bacl['cla_anchors']} anchors"


def before_after_section(after: dict, earlier: list[dict]) -> list[str]:
    """Issue #14's table: each targeted ratio at batch 256 in earlier runs (the first is "before")
    and after, with the commit and settings of each."""
    if not earlier:
        return []
    runs = [*earlier, after]
    labels = [_label(run) for run in runs]
    lines = ["### Before and after issue #14 (batch 256)", "",
             ("Each ratio from one run of `step_cost.py` (variants side by side in one process), in date order: "
              + "; ".join(f"{label} ({run['environment']['date'][:10]})" for label, run in zip(labels, runs))
              + f". The first is the state before the issue's work (details/{BASELINE}.json), the last the "
              "current one (details/step_cost.json); the others are kept as details/step_cost_<commit>.json. "
              "A run measures the Transformer and CLA settings of its config (width, anchors per step): the "
              "default config of its time, or the current code at an earlier run's settings, for a like-for-like "
              "comparison. Time: ratio of medians [min, max of the per-round paired ratios]; memory: ratio of peak "
              "bytes (runs before the branch `speed` read the profiler's drifting allocation counter, which pulls "
              "their memory ratios towards 1: benchmarks/README.md)."), "",
             "| aligner | ratio | " + " | ".join(labels) + " | target |", "|---|---|" + "---|" * len(runs) + "---|"]
    names = {"base": "plain", "bns": "+BNS", "match": "same Transformer", "bacl": "+BACL"}
    for (aligner, numerator, denominator, kind), target in TARGETS.items():
        cells = []
        for run in runs:
            r = _ratio(run, aligner, numerator, denominator, kind)
            cells.append("–" if r is None else f"{r['ratio']:.2f}x" + (
                f" [{r['min']:.2f}, {r['max']:.2f}]" if "min" in r else ""))
        # BLIP's own base already trains the Transformer CLA shapes: it is BLIP's "same Transformer".
        reference = "same Transformer (BLIP's own)" if (aligner, denominator) == ("blip", "base") else names[denominator]
        lines.append(f"| {aligner} | {kind}: {names[numerator]} / {reference} | " + " | ".join(cells) + " | "
                     f"{'–' if target is None else f'<= {target}x'} |")
    lines += ["", ("Step time and peak memory of each variant (median ms, MiB; the runs were on different days "
                   "beside different load, so compare the times less strictly than the ratios, which are measured "
                   "within one run):"), "",
              "| aligner | variant | " + " | ".join(f"{label} ms" for label in labels) + " | "
              + " | ".join(f"{label} MiB" for label in labels) + " |", "|---|---|" + "---|" * (2 * len(runs))]
    by_run = [{(m["aligner"], m["variant"]): m for m in run["measurements"] if m["batch_size"] == GOAL_BATCH}
              for run in runs]
    for key in by_run[-1]:
        found = [run.get(key) for run in by_run]
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(
            "–" if m is None else f"{1e3 * m['seconds_median']:.1f}" for m in found) + " | " + " | ".join(
            "–" if m is None else f"{m['peak_bytes'] / 2**20:.0f}" for m in found) + " |")
    return lines


def earlier_runs(results: Path) -> list[dict]:
    """The baseline (details/step_cost_baseline.json) and the other kept runs (details/step_cost_<commit>.json),
    in date order; [] without a baseline."""
    baseline = load(results, BASELINE)
    if baseline is None:
        return []
    kept = [json.loads(path.read_text()) for path in (results / DETAILS).glob("step_cost_*.json")
            if path.stem != BASELINE]
    return [baseline, *sorted(kept, key=lambda run: run["environment"]["date"])]


def bank_section(bank: dict) -> list[str]:
    k = bank["k"]
    lines = ["### BNS candidate search", "",
             f"Time per query batch ({bank['queries']} anchors, top-{k}, own row excluded) and recall@{k} against "
             f"exact search; embeddings of width {bank['dim']}. " + _environment(bank["environment"]) + ".", "",
             f"| bank | N | index | build s | query batch ms | recall@{k} |", "|---|---|---|---|---|---|"]
    for r in bank["measurements"]:
        recall = r.get(f"recall_at_{k}")
        lines.append(f"| {r['data']} | {r['bank_size']:,} | {r['kind']} | {r['build_seconds']:.2f} | "
                     f"{1e3 * r['query_batch_seconds']:.1f} | {'–' if recall is None else f'{recall:.3f}'} |")
    return lines


def cache_section(cache: dict) -> list[str]:
    epoch = cache["epoch_seconds"]
    return ["### Feature cache", "",
            f"An epoch of {cache['samples']} synthetic image-text samples (batch {cache['batch_size']}, "
            f"{cache['encoder']}): CLIP {epoch['clip_from_cache']:.2f} s from the cache vs "
            f"{epoch['clip_with_encoder']:.2f} s with encoder forward passes ({cache['speedup_clip']:.0f}x); "
            f"CLIP+BACL {epoch['clip_bacl_from_cache']:.2f} s from the cache vs about "
            f"{cache['clip_bacl_with_encoder_estimate_seconds']:.0f} s estimated with the encoder, which would also "
            f"encode the {cache['pool']} candidates of every anchor ({cache['speedup_clip_bacl_estimate']:.0f}x). "
            f"The one-off extraction of the split took {cache['extraction_seconds']:.1f} s and reading it back "
            f"{cache['cache_read_seconds']:.2f} s. " + _environment(cache["environment"]) + "."]


def pipeline_section(results: Path) -> list[str]:
    lines = []
    for path in sorted((results / DETAILS).glob("pipeline_stages_*.json")):
        run = json.loads(path.read_text())
        total = run["total_job_seconds"]
        where = f" Summarised on {_machine(run['summarised_on'])}." if run.get("summarised_on") else ""
        lines += [f"### Pipeline stages ({run['run']})", "",
                  ("Summed job time per stage from Snakemake's benchmark files (jobs run in parallel, so this "
                   "is compute, not elapsed time). Each job's time includes its process start-up (importing "
                   "torch, reading its features): in a tiny run such as smoke's, most of it." + where), "",
                  "| stage | jobs | job-seconds | share | longest job s | max RSS MB |", "|---|---|---|---|---|---|"]
        for name, s in sorted(run["stages"].items(), key=lambda item: -item[1]["seconds"]):
            lines.append(f"| {name} | {s['jobs']} | {s['seconds']:.0f} | {100 * s['seconds'] / total:.0f} % | "
                         f"{s['longest_job_seconds']:.0f} | {s['max_rss_mb']:.0f} |")
        lines += [""] + method_lines(run.get("methods"), total)
        lines += floor_lines(run.get("headline_floor"), run.get("summarised_on"))
    return lines


def floor_lines(floor: dict | None, machine: dict | None) -> list[str]:
    """What the headline table needs at least, in CPU time and in elapsed time on the summarising
    machine's cores; [] for a summary without it (older, or a run without its config copy)."""
    if not floor or not machine:
        return []
    cores, hours = machine["cpu_count"], floor["cpu_seconds"] / 3600
    missing = f" (no job of {', '.join(floor['missing'])} in this run)" if floor["missing"] else ""
    rows, upstream = floor["rows_cpu_seconds"] / 3600, floor["upstream_cpu_seconds"] / 3600
    return [(f"The headline table alone (methods {', '.join(floor['methods'])}{missing}), trained and evaluated "
             f"at this run's steps and seeds, took {rows:.2f} h of CPU time, and the stages upstream of every run "
             f"({', '.join(floor['upstream_stages'])}) {upstream:.2f} h: {hours:.2f} h in all (Snakemake's cpu_time), so "
             f"no schedule on {cores} CPUs like these makes that table in less than {60 * hours / cores:.0f} minutes."),
            ""]


def method_lines(methods: dict | None, total: float) -> list[str]:
    """The train and evaluate job time of each method (what each table row costs), largest first;
    [] for a run summarised before pipeline_stages.py recorded it."""
    if not methods:
        return []
    lines = ["Training and evaluation job time per method (all its benchmarks and seeds):", "",
             "| method | benchmarks | train jobs | train job-s | evaluate jobs | evaluate job-s | share |",
             "|---|---|---|---|---|---|---|"]
    cost = {name: m["train"]["seconds"] + m["evaluate"]["seconds"] for name, m in methods.items()}
    for name in sorted(methods, key=lambda name: -cost[name]):
        m = methods[name]
        lines.append(f"| {name} | {len(m['benchmarks'])} | {m['train']['jobs']} | {m['train']['seconds']:.0f} | "
                     f"{m['evaluate']['jobs']} | {m['evaluate']['seconds']:.0f} | {100 * cost[name] / total:.0f} % |")
    return lines + [""]


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the benchmarks wrote (default "
                        "benchmarks/results); cost.md goes there too")
    args = parser.parse_args(argv)
    lines = ["## Cost (benchmarks/)", "",
             ("Generated by `benchmarks/cost_report.py` from `benchmarks/results/details/*.json`; figure "
              "`benchmarks/results/cost.png`. The paper reports about +8 % training time and +1.7 GB memory for "
              "BACL on A100s with ViT-B/16 encoders run every step; here the encoders' features are cached, so "
              "the trainable heads are the whole step and the ratios below are of heads only."), ""]
    sections = [(load(args.results, "step_cost"), step_section), (load(args.results, "bank_scaling"), bank_section),
                (load(args.results, "cache_effect"), cache_section)]
    for data, section in sections:
        if data is not None:
            lines += section(data) + [""]
        if data is not None and section is step_section:
            lines[-1:] = end_to_end(data, sections[2][0]) + [""]
            comparison = before_after_section(data, earlier_runs(args.results))
            lines += comparison + [""] if comparison else []
    lines += pipeline_section(args.results)
    if len(lines) == 5:
        raise ValueError(f"no benchmark results under {args.results / DETAILS}: run the benchmarks first")
    path = args.results / "cost.md"
    path.write_text("\n".join(lines).rstrip() + "\n")
    return path


if __name__ == "__main__":
    main()
