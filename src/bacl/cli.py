"""``python -m bacl ...``: the only place that parses arguments.

    python -m bacl train    --config C --method M --train FEATURES [--val FEATURES] --out DIR [--seed S]
    python -m bacl evaluate --config C --method M --test FEATURES... --weights W --out RESULT.json...

Everything is validated (config, method, files) before any compute; an invalid value exits with
status 2 and a message naming the key or file, and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .atomic import atomic_path

__all__ = ["main"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


# What `python -m bacl --help` shows: for users, not the module docstring (which is for developers).
DESCRIPTION = """\
Train and evaluate BACL and its baselines on cached frozen-encoder features.

The Snakemake pipeline runs these two steps for every method, benchmark and seed, on the feature
sets it writes to <results_dir>/features/<benchmark>/ (train.safetensors, train_pools.safetensors,
test.safetensors). Run them by hand to train or evaluate one method on those files.
"""

EPILOG = """\
examples (after `snakemake --cores all --configfile workflow/config/smoke.yaml`):
  python -m bacl train --config results/smoke/config.yaml --method clip_bacl \\
      --train results/smoke/features/image_text/train.safetensors \\
      --pools results/smoke/features/image_text/train_pools.safetensors --out runs/clip_bacl --seed 0
  python -m bacl evaluate --config results/smoke/config.yaml --method clip_bacl \\
      --test results/smoke/features/image_text/test.safetensors \\
      --weights runs/clip_bacl/weights.safetensors --out runs/clip_bacl/test.json

Every config key is described in workflow/schemas/config.schema.yaml. An invalid config value,
method or file stops with exit status 2 and a message naming it, before any compute and without
writing anything. `python -m bacl COMMAND --help` lists a command's options.
"""


def _parser() -> argparse.ArgumentParser:
    from .train import CHECKPOINT, FINAL_WEIGHTS, METRICS_LOG

    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m bacl", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=formatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train", help="train one method on one cached training split", formatter_class=formatter,
        description=f"Train one method (a key of the config's `methods`) on one training split.\n\n"
                    f"Writes into --out: {FINAL_WEIGHTS} (the trained heads), {METRICS_LOG} (the losses\n"
                    f"every `train.log_every` steps and, with --val, the validation curve every\n"
                    f"`train.validate_every` steps), summary.json, and {CHECKPOINT} while it runs: an\n"
                    "interrupted run started again with the same arguments resumes from it.")
    evaluate = commands.add_parser(
        "evaluate", help="evaluate one method's trained weights on cached test splits", formatter_class=formatter,
        description="Evaluate one method on one or more test splits, writing one JSON per split.\n\n"
                    "Metrics: retrieval both ways (R@1/5/10, mAP, MRR, nDCG), re-ranked by the match head for\n"
                    "methods that have one; where the split has boundary negatives (or multiple-choice options),\n"
                    "boundary accuracy per negative type, multiple-choice accuracy and, with known wrong words, AEL.")
    for sub in (train, evaluate):
        sub.add_argument("--config", required=True, type=Path, metavar="YAML",
                         help="config file, e.g. workflow/config/default.yaml or the pipeline's "
                              "<results_dir>/config.yaml (validated before anything runs)")
        sub.add_argument("--method", required=True, help="a key of the config's methods, e.g. clip or clip_bacl")
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
        sub.add_argument("--threads", type=_positive_int, help="torch threads (default: the config's threads)")
    train.add_argument("--train", required=True, type=Path, metavar="FEATURES",
                       help="feature set of the training split (.safetensors)")
    train.add_argument("--pools", type=Path, metavar="POOLS",
                       help="BNS candidate pools of that split (.safetensors); needed by methods with bns")
    train.add_argument("--val", type=Path, metavar="FEATURES",
                       help="feature set of the validation split (.safetensors): val R@1 (and a match head's "
                            "boundary accuracy) in the metrics log while training; the weights do not depend on it")
    train.add_argument("--out", required=True, type=Path, metavar="DIR", help="run folder (created)")
    train.add_argument("--seed", type=int, default=0, help="training seed: batch order, draws, init (default: 0)")
    train.add_argument("--benchmark", help="the benchmark the features come from: its steps_by_benchmark entry in "
                                           "the config, if any, sets the steps (default: train.steps)")
    # Several splits in one call share the process start and the weights load (a few seconds each).
    evaluate.add_argument("--test", required=True, type=Path, nargs="+", metavar="FEATURES",
                          help="feature sets of the test splits (.safetensors)")
    evaluate.add_argument("--weights", type=Path, metavar="WEIGHTS",
                          help=f"the run's {FINAL_WEIGHTS}; omit for zero_shot (nothing trained)")
    evaluate.add_argument("--out", required=True, type=Path, nargs="+", metavar="JSON",
                          help="result files, one per --test, in the same order")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="the run's training seed: its untrained cross-modal Transformer is the reference "
                               "the head metrics of the first --test split are reported against (default: 0)")
    return parser


def _atomic_json(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _build(config: dict, method: str, features, seed: int, benchmark: str | None = None):
    import torch

    from .aligners import build_aligner
    from .config import method_settings

    settings = method_settings(config, method, benchmark)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = {}
    if world_size > 1:
        distributed = {"local_loss": True, "gather_with_grad": True, "world_size": world_size,
                       "rank": int(os.environ.get("RANK", "0"))}
    torch.manual_seed(seed)  # head initialisation
    aligner = build_aligner(settings["spec"], features.dims, bacl=settings["bacl"],
                            transformer=settings["transformer"], distributed=distributed)
    return aligner, settings


def _train(args, config) -> dict:
    from .featureset import FeatureSet
    from .train import TrainSettings, train

    features = FeatureSet.load(args.train, *([args.pools] if args.pools else []))
    val_set = FeatureSet.load(args.val) if args.val else None
    if val_set is not None and val_set.dims != features.dims:
        raise ValueError(f"--val {args.val} has feature widths {val_set.dims}, --train {args.train} has {features.dims}")
    if args.benchmark is not None and args.benchmark not in config["benchmarks"]:
        raise ValueError(f"--benchmark {args.benchmark!r} is not one of the config's benchmarks {config['benchmarks']}")
    aligner, settings = _build(config, args.method, features, args.seed, args.benchmark)
    if settings["spec"]["aligner"] == "zero_shot":
        raise ValueError(f"method {args.method!r} is zero_shot: it has nothing to train")
    train_settings = TrainSettings(**settings["train"], seed=args.seed, device=config["device"],
                                   pool_size=config["index"]["pool_size"])
    summary = train(aligner, features, train_settings, args.out, progress=not args.quiet,
                    identity={"method": args.method, **settings}, val_set=val_set)
    summary.update(method=args.method, config=config["name"], features=str(args.train),
                   val=None if args.val is None else str(args.val))
    if summary.get("world_size", 1) == 1 or int(os.environ.get("RANK", "0")) == 0:
        _atomic_json(args.out / "summary.json", summary)
    return summary


def _evaluate(args, config) -> None:
    import copy

    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .evaluate import evaluate
    from .featureset import FeatureSet

    if len(args.out) != len(args.test):
        raise ValueError(f"--out names {len(args.out)} files for {len(args.test)} --test feature sets")
    splits = [FeatureSet.load(path) for path in args.test]  # all read and checked before any compute
    for path, features in zip(args.test[1:], splits[1:]):
        if features.dims != splits[0].dims:
            raise ValueError(f"--test {path} has feature widths {features.dims}, {args.test[0]} has {splits[0].dims}")
    aligner, settings = _build(config, args.method, splits[0], seed=args.seed)
    # The run's Transformer as training initialised it (same seed), before the weights load.
    untrained = copy.deepcopy(aligner.cross_modal) if aligner.has_match_head else None
    if settings["spec"]["aligner"] != "zero_shot":
        if args.weights is None or not args.weights.is_file():
            raise FileNotFoundError(f"--weights {args.weights} does not exist (train the method first)")
        try:
            weights = load_file(str(args.weights))
        except (SafetensorError, OSError) as error:  # a truncated or foreign file
            raise ValueError(f"--weights {args.weights} is not a readable safetensors file: {error}") from error
        try:
            aligner.load_state_dict(weights)
        except RuntimeError as error:  # weights of another method or another feature width
            raise ValueError(f"--weights {args.weights} do not fit method {args.method!r}: {error}") from error
    for index, (path, features, out) in enumerate(zip(args.test, splits, args.out)):
        # The untrained reference on the first (headline) split only: it costs as much as the trained head.
        results = evaluate(aligner, features, rerank_k=config["evaluate"]["rerank_k"],
                           batch_size=config["evaluate"]["batch_size"],
                           untrained_cross_modal=untrained if index == 0 else None)
        results.update(method=args.method, config=config["name"], features=str(path),
                       weights=None if args.weights is None else str(args.weights))
        _atomic_json(out, results)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .config import ConfigError, load_config, method_settings

    try:
        config = load_config(args.config)
        method_settings(config, args.method)  # validates the method and its overrides up front
        import torch

        if config["device"] == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"{args.config}: invalid value at key 'device': 'cuda', but no CUDA device is available")
        torch.set_num_threads(args.threads or config["threads"])
        (_train if args.command == "train" else _evaluate)(args, config)
    except (ConfigError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
