"""What the feature cache saves: a training epoch read from cached features vs one that runs the
frozen encoder on the raw samples of every batch.

The data are a synthetic image-text training split; the encoder is the CPU scale's
``bacl-tiny-image`` (its seeded initialisation: the forward pass costs what the pre-trained one
does); the trained method is CLIP with the default config's settings. Measured side by side
(epochs alternate): the one-off extraction of the split into a feature set (images, captions and
boundary negatives, as the pipeline's feature step), reading that file back, an epoch from the
cache and an epoch with encoder forward passes. For CLIP+BACL the epoch from the cache is
measured too; without a cache it would also need every batch's B x P candidates encoded, which is
estimated from the measured per-sample encoder time instead of run (it would take minutes).

    nice -n 19 .venv/bin/python benchmarks/cache_effect.py            # ~45 s of CPU
    nice -n 19 .venv/bin/python benchmarks/cache_effect.py --quick    # ~12 s
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from bacl.aligners import FeatureBatch, build_aligner
from bacl.config import load_config, method_settings
from bacl.data.features import candidate_pools, synthetic_feature_set
from bacl.data.synthetic import generate_split
from bacl.encoders import load_encoder
from bacl.featureset import FeatureSet
from bacl.train import batch_indices, step_generator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    DETAILS, RESULTS, ROOT, clock, environment, interleaved, positive_int, training_optimizer, write_json,
)

ENCODER = "bacl-tiny-image"


def trainer(config: dict, method: str, dims):
    """(aligner, AdamW) of ``method`` as ``python -m bacl train`` builds them (seed 0)."""
    settings = method_settings(config, method)
    torch.manual_seed(0)
    aligner = build_aligner(settings["spec"], dims, bacl=settings["bacl"], transformer=settings["transformer"]).train()
    return aligner, training_optimizer(aligner.parameters())


def train_step(aligner, optimizer, batch: FeatureBatch, step: int) -> None:
    loss = sum(aligner(batch, 0.5, step_generator(0, step)).values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="512 samples, 2 repeats")
    parser.add_argument("--samples", type=positive_int, default=2048, help="training-split size (default 2048)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="default: the config's train batch")
    parser.add_argument("--repeats", type=positive_int, default=3, help="interleaved epochs per path (default 3)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1, as the pipeline)")
    parser.add_argument("--config", type=Path, default=ROOT / "workflow" / "config" / "default.yaml")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.repeats = min(args.samples, 512), 2
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    batch_size = args.batch_size or config["train"]["batch_size"]
    pool = config["index"]["pool_size"]
    if args.samples < max(batch_size, pool + 1):
        raise ValueError(f"--samples={args.samples} must be at least the batch size {batch_size} and exceed "
                         f"the pool size {pool}")
    empty = {"n_pretrain": 0, "n_val": 0, "n_test": 0, "n_test_heldout": 0}
    dataset = generate_split("image", {"n_train": args.samples, **empty}, "train")
    encoder = load_encoder(ENCODER, None)
    with tempfile.TemporaryDirectory() as tmp:
        start = clock()
        tensors, meta = synthetic_feature_set(dataset, {"image": encoder}, Path(tmp) / "cache", progress=False)
        extraction = clock() - start
        FeatureSet.write(Path(tmp) / "train.safetensors", {**tensors, **candidate_pools(tensors, pool)}, meta)
        start = clock()
        features = FeatureSet.load(Path(tmp) / "train.safetensors")
        reading = clock() - start
    steps = len(features) // batch_size
    text_length = features["text_tokens"].shape[1]
    clip_cached, clip_live = trainer(config, "clip", features.dims), trainer(config, "clip", features.dims)
    bacl_cached = trainer(config, "clip_bacl", features.dims)
    encode_seconds: list[float] = []

    def epoch_from_cache(model, candidates: bool) -> None:
        for step in range(steps):
            rows = batch_indices(len(features), batch_size, 0, step)
            train_step(*model, features.batch(rows, candidates=candidates, pool_size=pool), step)

    def epoch_with_encoder() -> None:
        for step in range(steps):
            rows = batch_indices(len(features), batch_size, 0, step)
            start = clock()
            image = encoder.encode_images(dataset.images[rows.numpy()], batch_size=batch_size)
            text = encoder.encode_texts([dataset.captions[i] for i in rows.tolist()], batch_size=batch_size)
            encode_seconds.append(clock() - start)
            batch = FeatureBatch(x=image["global"], text=text["global"], x_tokens=image["tokens"],
                                 x_token_mask=image["token_mask"], text_tokens=text["tokens"][:, :text_length],
                                 text_token_mask=text["token_mask"][:, :text_length],
                                 text_token_ids=text["token_ids"][:, :text_length].long())
            train_step(*clip_live, batch, step)

    samples = interleaved({"clip_from_cache": lambda: epoch_from_cache(clip_cached, False),
                           "clip_with_encoder": epoch_with_encoder,
                           "clip_bacl_from_cache": lambda: epoch_from_cache(bacl_cached, True)},
                          args.repeats, warmup=1, min_seconds=0.0)
    epoch = {name: statistics.median(values) for name, values in samples.items()}
    per_sample_encode = statistics.median(encode_seconds) / batch_size  # one image and one caption
    # Without a cache BACL also encodes each anchor's P candidate captions and P candidate images.
    bacl_live_estimate = epoch["clip_bacl_from_cache"] + steps * batch_size * (1 + pool) * per_sample_encode
    result = {
        "benchmark": "cache_effect", "quick": args.quick, "environment": environment("cpu"), "encoder": ENCODER,
        "samples": len(features), "batch_size": batch_size, "steps_per_epoch": steps, "pool": pool,
        "extraction_seconds": extraction, "cache_read_seconds": reading, "epoch_seconds": epoch,
        "epoch_seconds_samples": samples, "encode_seconds_per_sample": per_sample_encode,
        "speedup_clip": epoch["clip_with_encoder"] / epoch["clip_from_cache"],
        "clip_bacl_with_encoder_estimate_seconds": bacl_live_estimate,
        "speedup_clip_bacl_estimate": bacl_live_estimate / epoch["clip_bacl_from_cache"],
    }
    print(f"epoch of {len(features)} samples, batch {batch_size}: CLIP {epoch['clip_from_cache']:.2f} s from cache, "
          f"{epoch['clip_with_encoder']:.2f} s with encoder ({result['speedup_clip']:.1f}x); one-off extraction "
          f"{extraction:.1f} s, read {reading:.2f} s; CLIP+BACL {epoch['clip_bacl_from_cache']:.2f} s from cache, "
          f"~{bacl_live_estimate:.0f} s with encoder (estimate)", flush=True)
    write_json(args.out / DETAILS / "cache_effect.json", result)
    return result


if __name__ == "__main__":
    main()
