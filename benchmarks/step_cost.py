"""Step time and peak memory of each aligner with and without BACL, side by side in one process.

A step is the body of ``bacl.train.train``'s loop: gather the batch from the feature set (with
the BNS candidate pools when the method uses them), forward, backward, AdamW step. Variants of
one aligner (built from the default config exactly as the pipeline builds its methods):

    base   the aligner as the tables train it (BLIP: with its ITM Transformer)
    bns    + BNS only
    match  + the cross-modal Transformer trained by its match loss only (lambda_local = 0): the
           listwise loss over each of ``cla_anchors`` anchors' caption and K uniform in-batch
           negatives, "the same aligner with the same cross-modal Transformer"
    cla    + CLA (local attention and match losses)
    bacl   + BNS and CLA: the method (its lists: the caption and K BNS draws over pool and batch)

The Transformer and BACL settings are the config's (``--config``, default workflow/config/
default.yaml), recorded in the results. Two ratios per aligner and batch size: BACL / base (what
BACL costs over the plain aligner) and BACL / the same aligner with the same Transformer
(``match``; for BLIP its own ``base``), which issue #14's targets are stated for (time <= 1.15x,
goal 1.05x; memory <= 1.05x; at batch 256).

    nice -n 19 .venv/bin/python benchmarks/step_cost.py            # ~3 min of CPU
    nice -n 19 .venv/bin/python benchmarks/step_cost.py --quick    # ~15 s
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import bacl
from bacl.aligners import build_aligner
from bacl.config import load_config, method_settings
from bacl.featureset import FeatureSet
from bacl.train import batch_indices, step_generator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    DETAILS,
    RESULTS,
    ROOT,
    clock,
    environment,
    interleaved,
    positive_int,
    ratio_stats,
    step_peak_bytes,
    training_optimizer,
    write_json,
)

CONFIG = ROOT / "workflow" / "config" / "default.yaml"
VARIANTS = {
    "base": {},
    "bns": {"bns": True},
    "match": {"cla": True, "bacl": {"lambda_local": 0.0}},
    "cla": {"cla": True},
    "bacl": {"bns": True, "cla": True},
}
ALIGNERS = ("clip", "blip", "m3jepa")  # the aligners BACL plugs into
# Shapes of the CPU-scale image_text cache (results/*/features/image_text/train.safetensors).
EMBED, X_TOKENS, TEXT_TOKENS, TOKEN_DIM = 128, 64, 23, 128
GOAL_BATCH = 256  # the batch size the issue states its goal at
# BACL's parts, for the profile: label -> (part of the file path, function name) in src/bacl.
COMPONENTS = {
    "batch gathering (FeatureSet.batch)": ("featureset.py", "batch"),
    "text encoder head (anchors and candidates)": ("aligners/", "encode_text"),
    "x encoder head (anchors and candidates)": ("aligners/", "encode_x"),
    "pools scored without gradient (CandidatePool.embeddings)": ("candidates.py", "embeddings"),
    "drawn candidates re-embedded (CandidatePool.embed)": ("candidates.py", "embed"),
    "BNS draw (BoundarySampler.draw)": ("sampler.py", "draw"),
    "BNS extra negatives (incl. draw)": ("losses.py", "_extra_negatives"),
    "CLA and match terms (incl. Transformer)": ("losses.py", "_local_terms"),
    "cross-modal Transformer": ("attention.py", "forward"),
    "CLA loss": ("attention.py", "contrastive_local_attention_loss"),
    "input checks (check_finite)": ("validation.py", "check_finite"),
}


def synthetic_features(rows: int, pool: int, seed: int = 0) -> FeatureSet:
    """A feature set with the real cache's shapes and dtypes (token features float16), random values,
    caption lengths 8-23 tokens, and ``pool`` distinct neighbours per row (never the row itself)."""
    if rows <= pool:
        raise ValueError(f"rows={rows} must exceed the pool size {pool}")
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, TEXT_TOKENS + 1, (rows, 1), generator=gen)
    # Distinct offsets 1..rows-1 from a random start, spread out: pools of distinct rows, never the row itself.
    start = torch.randint(0, rows - 1, (rows, 1), generator=gen)
    offsets = 1 + (start + torch.arange(pool) * max(1, (rows - 1) // pool)) % (rows - 1)
    neighbours = (torch.arange(rows)[:, None] + offsets) % rows
    return FeatureSet({
        "x": F.normalize(torch.randn(rows, EMBED, generator=gen), dim=-1),
        "text": F.normalize(torch.randn(rows, EMBED, generator=gen), dim=-1),
        "caption_id": torch.arange(rows),
        "x_tokens": torch.randn(rows, X_TOKENS, TOKEN_DIM, generator=gen).half(),
        "x_token_mask": torch.ones(rows, X_TOKENS, dtype=torch.bool),
        "text_tokens": torch.randn(rows, TEXT_TOKENS, TOKEN_DIM, generator=gen).half(),
        "text_token_mask": torch.arange(TEXT_TOKENS)[None] < lengths,
        # a small vocabulary, so that captions share words (discriminative CLA aligns them by id)
        "text_token_ids": torch.randint(1, 50, (rows, TEXT_TOKENS), generator=gen) * (torch.arange(TEXT_TOKENS)[None] < lengths),
        "text_neighbours": neighbours,
        "x_neighbours": neighbours.roll(1, dims=0),
    }, source="<synthetic>")


def build_variant(config: dict, aligner: str, variant: str, features: FeatureSet):
    """The aligner of ``variant`` exactly as ``python -m bacl train`` builds a method, and its AdamW."""
    spec = {"aligner": aligner, **{k: v for k, v in VARIANTS[variant].items() if k != "bacl"},
            "options": config["methods"].get(aligner, {}).get("options", {})}
    if "bacl" in VARIANTS[variant]:
        spec["bacl"] = VARIANTS[variant]["bacl"]
    config["methods"][f"_{aligner}_{variant}"] = spec
    settings = method_settings(config, f"_{aligner}_{variant}")
    torch.manual_seed(0)
    model = build_aligner(settings["spec"], features.dims, bacl=settings["bacl"], transformer=settings["transformer"])
    return model, training_optimizer(model.parameters())


def make_step(model, optimizer, features: FeatureSet, batch_size: int, pool: int, device: str, phases: list):
    """One training step as bacl.train runs it; appends (batch, forward, backward, optimizer) seconds."""
    model.to(device).train()
    wants_candidates = model.contrastive.use_bns or model.contrastive.use_cla
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda"))  # as bacl.train
    counter = iter(range(10**9))

    def step() -> None:
        index = next(counter)
        marks = [clock(device)]
        rows = batch_indices(len(features), batch_size, 0, index)
        batch = features.batch(rows, candidates=wants_candidates, pool_size=pool).to(device)
        marks.append(clock(device))
        with autocast:
            terms = model(batch, 0.5, step_generator(0, index))  # progress only moves alpha: cost-neutral
        loss = sum(terms.values())
        marks.append(clock(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        marks.append(clock(device))
        optimizer.step()
        marks.append(clock(device))
        phases.append([b - a for a, b in itertools.pairwise(marks)])

    return step


def persistent_bytes(model, optimizer) -> int:
    """Bytes that live across steps: parameters and AdamW's moments (gradients are freed each step)."""
    state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *state])


def where_time_goes(step, steps: int = 5, rows: int = 12) -> dict:
    """Top torch ops by self time (forward and backward), and the cumulative time of BACL's parts
    in the forward pass and the batch gathering (cProfile; autograd's backward is not attributed)."""
    from torch.profiler import ProfilerActivity, profile

    # torch's profiler times ops on the wall clock: a step preempted by other work would inflate
    # whichever op was running. One profile per step and the median over steps drop such outliers.
    per_step: list[dict[str, tuple[float, int]]] = []
    for _ in range(steps):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        per_step.append({e.key: (e.self_cpu_time_total / 1e3, e.count) for e in prof.key_averages()})
    median_ms = {op: statistics.median(s.get(op, (0.0, 0))[0] for s in per_step) for op in per_step[0]}
    top = sorted(median_ms, key=median_ms.get, reverse=True)[:rows]
    profiler = cProfile.Profile(time.process_time)  # CPU time: other load on the machine does not count
    profiler.runcall(lambda: [step() for _ in range(steps)])
    stats = pstats.Stats(profiler).stats
    library = str(Path(bacl.__file__).parent)  # not torch's own sampler.py or attention modules
    parts = {}
    for label, (suffix, function) in COMPONENTS.items():
        # Several functions may match (three forwards in attention.py): the outermost has the most time.
        times = [value[3] for key, value in stats.items()
                 if key[0].startswith(library) and suffix in key[0] and key[2] == function]
        parts[label] = 1e3 * max(times, default=0.0) / steps
    return {
        "torch_ops": [{"op": op, "self_ms": median_ms[op], "calls": per_step[0][op][1]} for op in top],
        "parts_ms": parts,
    }


def measure(config: dict, features: FeatureSet, aligner: str, batch_size: int, args) -> tuple[list, dict]:
    """Rows (one per variant) and ratios for one aligner at one batch size."""
    variants = [v for v in VARIANTS if not (aligner == "blip" and v == "match")]  # BLIP's base has the Transformer
    steps, phases, states = {}, {}, {}
    for variant in variants:
        model, optimizer = build_variant(config, aligner, variant, features)
        phases[variant] = []
        steps[variant] = make_step(model, optimizer, features, batch_size, args.pool, args.device, phases[variant])
        states[variant] = (model, optimizer)
    samples = interleaved(steps, args.repeats, warmup=2, device=args.device)
    rows = []
    for variant in variants:
        timed = phases[variant][2:]  # the 2 warm-up steps excluded
        peak = step_peak_bytes(steps[variant], args.device)
        persistent = persistent_bytes(*states[variant])
        rows.append({
            "aligner": aligner, "batch_size": batch_size, "variant": variant,
            "seconds_median": statistics.median(samples[variant]), "seconds": samples[variant],
            "phases_median": dict(zip(("batch", "forward", "backward", "optimizer"),
                                      (statistics.median(p[i] for p in timed) for i in range(4)))),
            "step_peak_bytes": peak, "persistent_bytes": persistent, "peak_bytes": peak + persistent,
        })
    by = {row["variant"]: row for row in rows}
    reference = "base" if aligner == "blip" else "match"

    def memory(a: str, b: str) -> float:
        return by[a]["peak_bytes"] / by[b]["peak_bytes"]

    ratios = {"aligner": aligner, "batch_size": batch_size, "transformer_reference": reference,
              "time_vs_plain": ratio_stats(samples["bacl"], samples["base"]),
              "time_vs_same_transformer": ratio_stats(samples["bacl"], samples[reference]),
              "time_bns_vs_plain": ratio_stats(samples["bns"], samples["base"]),
              "memory_vs_plain": memory("bacl", "base"), "memory_vs_same_transformer": memory("bacl", reference),
              "memory_extra_bytes_vs_same_transformer": by["bacl"]["peak_bytes"] - by[reference]["peak_bytes"]}
    if batch_size == args.profile_batch and aligner in args.profile_aligners and not args.device.startswith("cuda"):
        ratios["profile_bacl"] = where_time_goes(steps["bacl"], args.profile_steps)
    return rows, ratios


def summary(ratios: list[dict], env: dict, quick: bool) -> dict | None:
    """The cost claim's input: CLIP+BACL over CLIP with the same Transformer at the goal batch size."""
    found = [r for r in ratios if r["aligner"] == "clip" and r["batch_size"] == GOAL_BATCH]
    if not found:
        return None
    r = found[0]
    return {
        "time_overhead": r["time_vs_same_transformer"]["ratio"] - 1,
        "memory_overhead_gb": r["memory_extra_bytes_vs_same_transformer"] / 1e9,
        "memory_overhead_ratio": r["memory_vs_same_transformer"] - 1,
        "time_overhead_vs_plain_clip": r["time_vs_plain"]["ratio"] - 1,
        "scale": "gpu" if env["device"].startswith("cuda") else "cpu",
        "setting": (f"training step of CLIP+BACL over CLIP with the same cross-modal Transformer trained by its match "
                    f"loss, batch {GOAL_BATCH}, cached CPU-scale features, {env['device']}, {env['threads']} thread(s)"
                    f"{', niced' if env['niced'] else ''}{', quick run' if quick else ''}; "
                    "details in benchmarks/results/details/step_cost.json"),
        "goal": {"time_ratio_max": 1.05, "memory_ratio_max": 1.05},
        "environment": env,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="clip only, batches 64 and 256, 3 repeats (~15 s)")
    parser.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--aligners", nargs="+", choices=ALIGNERS, default=list(ALIGNERS))
    parser.add_argument("--repeats", type=positive_int, default=5, help="interleaved rounds per variant (default 5)")
    parser.add_argument("--rows", type=positive_int, default=5000, help="feature-set rows (default 5000, the "
                        "image_text training split)")
    parser.add_argument("--pool", type=positive_int, default=None, help="BNS pool size (default: the config's)")
    parser.add_argument("--features", type=Path, help="a real feature file instead of synthetic features")
    parser.add_argument("--pools", type=Path, help="its candidate-pool file (with --features)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (bf16 autocast, as bacl.train)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1, as the "
                        "pipeline's jobs)")
    parser.add_argument("--profile-batch", type=int, default=GOAL_BATCH, help="profile BACL's step at this batch")
    parser.add_argument("--profile-aligners", nargs="*", default=["clip", "m3jepa"])
    parser.add_argument("--profile-steps", type=positive_int, default=5, help="steps profiled (default 5: the "
                        "median over them drops a preempted step)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the config whose BACL/Transformer settings count")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.aligners, args.repeats, args.rows = [64, 256], ["clip"], 3, min(args.rows, 1024)
    if (args.pools is None) != (args.features is None):
        parser.error("--features and --pools go together")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    args.pool = args.pool or config["index"]["pool_size"]
    features = FeatureSet.load(args.features, args.pools) if args.features else synthetic_features(args.rows, args.pool)
    too_big = [b for b in args.batch_sizes if b > len(features)]
    if too_big:
        raise ValueError(f"batch sizes {too_big} exceed the feature set's {len(features)} rows (--rows)")
    env = environment(args.device)
    rows, ratios = [], []
    for batch_size in args.batch_sizes:
        for aligner in args.aligners:
            new_rows, new_ratios = measure(config, features, aligner, batch_size, args)
            rows += new_rows
            ratios.append(new_ratios)
            print(f"{aligner:7s} B={batch_size:5d}  BACL/plain {new_ratios['time_vs_plain']['ratio']:6.2f}x  "
                  f"BACL/same Transformer {new_ratios['time_vs_same_transformer']['ratio']:5.2f}x time, "
                  f"{new_ratios['memory_vs_same_transformer']:5.2f}x memory", flush=True)
    result = {"benchmark": "step_cost", "quick": args.quick, "environment": env, "config": str(args.config),
              "features": str(args.features or "synthetic"), "rows": len(features), "pool": args.pool,
              "transformer": config["transformer"], "bacl": config["bacl"], "variants": VARIANTS,
              "measurements": rows, "ratios": ratios}
    write_json(args.out / DETAILS / "step_cost.json", result)
    overhead = summary(ratios, env, args.quick)
    if overhead is not None:
        write_json(args.out / "overhead_summary.json", overhead)
    return result


if __name__ == "__main__":
    main()
