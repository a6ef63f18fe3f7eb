"""Training loop: one code path for CPU and GPU, single process or torchrun data parallel.

Every step is a pure function of (weights, optimiser state, step index): the batch order comes
from a generator seeded by (seed, epoch) and every random draw of a step (Gumbel noise, BLIP's
negatives) from a generator seeded by (seed, step). A checkpoint therefore only needs weights,
optimiser state and the step, and a resumed run ends with exactly the weights and metrics of an
uninterrupted one. Checkpoints and the metrics log are written atomically (temp file + rename);
the checkpoint carries the log up to its step, so a resumed run's log is exactly the uninterrupted one.

Given a validation split, a run also records its validation curve in the log (at step 0 and every
``validate_every`` steps; :mod:`bacl.convergence`), computed on a copy of the model so that the
weights are the same, bit for bit, with and without it.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .aligners import Aligner
from .atomic import atomic_path
from .convergence import VALIDATION_POINTS, validation_metrics, validation_subset
from .featureset import FeatureSet
from .metrics.siblings import sibling_shares
from .validation import load_error_reason

__all__ = ["TrainSettings", "train", "step_generator", "CHECKPOINT", "FINAL_WEIGHTS", "METRICS_LOG"]

CHECKPOINT, FINAL_WEIGHTS, METRICS_LOG = "checkpoint.pt", "weights.safetensors", "metrics.jsonl"


@dataclass(frozen=True)
class TrainSettings:
    steps: int  # optimiser steps; progress eta = step / steps drives the curriculum
    batch_size: int  # global batch (split evenly across ranks)
    lr: float = 1e-3  # heads on frozen features tolerate a larger rate than end-to-end CLIP
    weight_decay: float = 0.05  # AdamW, weight matrices only (as open_clip)
    warmup_fraction: float = 0.05  # linear warm-up share, then cosine decay to 0
    pool_size: int | None = None  # BNS candidates per anchor from the index (None: all stored)
    pool_excludes_group: bool = False  # control arm: no candidate from the anchor's own sibling group
    checkpoint_every: int = 50  # steps between checkpoints: a crash loses at most this much work
    log_every: int = 10  # steps between metric lines
    validate_every: int | None = None  # steps between validation points; None: steps / VALIDATION_POINTS, rounded up
    validate_samples: int = 128  # val samples the match head is scored on (~2 pp resolution on pairwise accuracy)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "validate_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        value = self.validate_every
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"validate_every must be a positive integer or None, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < math.inf):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must lie in [0, 1), got {self.warmup_fraction!r}")

    @property
    def validation_interval(self) -> int:
        """Steps between validation points (``validate_every``, or VALIDATION_POINTS per run)."""
        return self.validate_every or math.ceil(self.steps / VALIDATION_POINTS)


def step_generator(seed: int, step: int, device="cpu") -> torch.Generator:
    """The generator for every random draw of one step: a function of (seed, step) only."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Rows of step ``step``: epochs are seeded permutations, the last partial batch dropped."""
    per_epoch = n // batch_size
    epoch, position = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    return order[position * batch_size:(position + 1) * batch_size]


def warmup_cosine_adamw(parameters, lr: float, weight_decay: float, steps: int, warmup_fraction: float):
    """AdamW over the trainable ``parameters`` with ``weight_decay`` on weight matrices only (gains,
    biases and scales get none, as in open_clip), and its LambdaLR: a linear warm-up over
    ``warmup_fraction`` of ``steps``, then cosine decay to 0. -> (optimizer, scheduler)."""
    parameters = [p for p in parameters if p.requires_grad]
    matrices = [p for p in parameters if p.ndim >= 2]
    others = [p for p in parameters if p.ndim < 2]
    # foreach: one multi-tensor update instead of a Python loop over ~100 small tensors (torch's
    # default on CUDA, not on CPU): the same parameters bit for bit (tests/test_train.py), 3-6 ms
    # less per step with the Transformer (benchmarks/README.md). fused=True rounds differently.
    optimizer = torch.optim.AdamW([{"params": matrices, "weight_decay": weight_decay},
                                   {"params": others, "weight_decay": 0.0}], lr=lr, foreach=True)
    warmup = max(1, round(warmup_fraction * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _optimizer(aligner: Aligner, settings: TrainSettings):
    return warmup_cosine_adamw(aligner.parameters(), settings.lr, settings.weight_decay, settings.steps,
                               settings.warmup_fraction)


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _distributed() -> tuple[int, int]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if world_size > 1 else 0), world_size


def train(aligner: Aligner, train_set: FeatureSet, settings: TrainSettings, out_dir: str | Path,
          progress: bool = True, stop_after: int | None = None, identity: dict | None = None,
          val_set: FeatureSet | None = None) -> dict:
    """Train ``aligner`` on ``train_set``; write checkpoints, the metrics log and final weights
    to ``out_dir``; resume from ``out_dir``'s checkpoint when it belongs to this run.

    A checkpoint records the run's identity (the settings, the feature set and the caller's
    ``identity``, e.g. the method's full config); one left by a different run is not resumed
    from but discarded with a warning, so a changed config never continues an old run.

    ``stop_after`` ends the run after that many steps without the final weights (used to test
    resuming). With ``val_set`` the log also holds the validation curve (``val_r1``, and
    ``val_head_pairwise`` for a match head) at step 0, every ``settings.validation_interval``
    steps and at the last; the summary says how long validation took (``validation_seconds``). Under torchrun each rank takes its slice of the global batch; the aligner must
    have been built with the matching ``distributed`` settings. Returns a summary dict.
    """
    out_dir = Path(out_dir)
    rank, world_size = _distributed()
    if settings.batch_size % world_size:
        raise ValueError(f"batch_size={settings.batch_size} is not divisible by the world size {world_size}")
    if len(train_set) < settings.batch_size:
        raise ValueError(f"batch_size={settings.batch_size} exceeds the training split ({len(train_set)} rows)")
    wants_candidates = getattr(getattr(aligner, "contrastive", None), "use_bns", False) or getattr(
        getattr(aligner, "contrastive", None), "use_cla", False)
    if wants_candidates:
        _check_pools(aligner, train_set, settings)
    elif settings.pool_excludes_group:
        raise ValueError("pool_excludes_group=True needs a method that reads candidate pools (BNS or CLA)")
    device = torch.device(settings.device)
    aligner.to(device).train()
    optimizer, schedule = _optimizer(aligner, settings)
    start = 0
    checkpoint_path, log_path = out_dir / CHECKPOINT, out_dir / METRICS_LOG
    run_identity = json.dumps({"settings": asdict(settings), "features": train_set.source, "rows": len(train_set),
                               "meta": train_set.meta, "identity": identity or {},
                               "validation": None if val_set is None else [val_set.source, len(val_set)]},
                              sort_keys=True, default=str)
    log_lines: list[str] = []  # the metrics log lives in the checkpoint too: Snakemake deletes outputs it reruns
    if rank == 0 and out_dir.is_dir():
        _remove_temporaries(out_dir)
    if checkpoint_path.exists():
        state = _load_checkpoint(checkpoint_path, device)
        if state.get("identity") == run_identity:
            aligner.load_state_dict(state["aligner"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            start = state["step"]
            log_lines = state["log"]
        else:
            warnings.warn(f"{checkpoint_path} belongs to a different run (settings, data or config changed); "
                          "starting from scratch", stacklevel=2)
    model = DistributedDataParallel(aligner, find_unused_parameters=True) if world_size > 1 else aligner
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    local = settings.batch_size // world_size
    end = settings.steps if stop_after is None else min(settings.steps, stop_after)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    validation = _Validation(val_set, settings) if val_set is not None and rank == 0 else None
    if validation is not None and start == 0:  # the untrained heads: the curve's start
        log_lines.append(json.dumps({"step": 0, "progress": 0.0, **validation(aligner)}, sort_keys=True))
    bar = tqdm(range(start, end), initial=start, total=settings.steps, desc=f"train {out_dir.name}",
               disable=not progress or rank != 0, unit="step")
    for step in bar:
        rows = batch_indices(len(train_set), settings.batch_size, settings.seed, step)[rank * local:(rank + 1) * local]
        batch = train_set.batch(rows, candidates=wants_candidates, pool_size=settings.pool_size,
                                exclude_group=settings.pool_excludes_group).to(device)
        with autocast:
            terms = model(batch, step / settings.steps, step_generator(settings.seed, step))
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}: {({k: v.item() for k, v in terms.items()})}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        done = step + 1
        # progress is the eta this step used, the one its alpha and drawn boundary scores belong to
        record = {}
        if rank == 0 and (done % settings.log_every == 0 or done == settings.steps):
            record.update({"step": done, "progress": step / settings.steps, "loss": loss.item(),
                           **{k: v.item() for k, v in terms.items()}, "lr": schedule.get_last_lr()[0]})
            record.update(_draw_statistics(aligner, train_set, rows))
            bar.set_postfix(loss=f"{record['loss']:.3f}")
        if validation is not None and (done % settings.validation_interval == 0 or done == settings.steps):
            record.update({"step": done, "progress": step / settings.steps, **validation(aligner)})
        if record:
            log_lines.append(json.dumps(record, sort_keys=True))
        if rank == 0 and (done % settings.checkpoint_every == 0 or done == end):
            _atomic_write_text(log_path, "\n".join(log_lines) + "\n" if log_lines else "")
            _atomic_torch_save({"aligner": aligner.state_dict(), "optimizer": optimizer.state_dict(),
                                "schedule": schedule.state_dict(), "step": done, "identity": run_identity,
                                "log": log_lines},
                               checkpoint_path)
    summary = {"steps": settings.steps, "resumed_from": start, "seconds": time.perf_counter() - started,
               "settings": asdict(settings), "world_size": world_size,
               "validation_seconds": None if validation is None else validation.seconds}
    if rank == 0 and end == settings.steps:
        # Also when resuming from a final checkpoint (no step ran): the log is always complete.
        _atomic_write_text(log_path, "\n".join(log_lines) + "\n" if log_lines else "")
        with atomic_path(out_dir / FINAL_WEIGHTS) as tmp:  # a killed run never leaves half-written weights
            save_file({k: v.detach().cpu().contiguous() for k, v in aligner.state_dict().items()}, str(tmp))
    return summary


def _remove_temporaries(out_dir: Path) -> None:
    """Delete the temporary files of atomic writes a killed run left in ``out_dir`` (never read:
    only a completed write is renamed into place)."""
    for name in (CHECKPOINT, FINAL_WEIGHTS, METRICS_LOG, "summary.json"):
        for leftover in out_dir.glob(f".{name}.tmp-*"):
            leftover.unlink(missing_ok=True)


def _load_checkpoint(path: Path, device) -> dict:
    """A checkpoint this code wrote; anything else (a corrupt file, pickled objects that are not
    tensors and plain containers) is refused with an error naming the file, never unpickled."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise ValueError(f"checkpoint {path} is not a checkpoint of bacl.train (corrupt, or holding objects other "
                         f"than tensors and plain containers, which are never unpickled): "
                         f"{load_error_reason(error)}; delete it to start afresh") from None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a bacl.train checkpoint; "
                         "delete it to start afresh")
    return state


def _check_pools(aligner: Aligner, train_set: FeatureSet, settings: TrainSettings) -> None:
    """The BNS pools must exist, hold at least pool_size candidates, and at least K of them."""
    if "text_neighbours" not in train_set:
        raise ValueError(f"feature set {train_set.source} has no candidate pools (text_neighbours): BACL needs them")
    stored = train_set["text_neighbours"].shape[1]
    pool = stored if settings.pool_size is None else settings.pool_size
    if pool > stored:
        raise ValueError(f"index.pool_size={pool} exceeds the {stored} neighbours stored in {train_set.source}")
    sampler = getattr(aligner.contrastive, "sampler", None)
    if sampler is not None and sampler.num_negatives > pool:
        raise ValueError(f"bacl.num_negatives={sampler.num_negatives} is larger than the candidate pool "
                         f"(P={pool}, set by index.pool_size)")


class _Validation:
    """The validation points of one run: the val split, its fixed match-head subset, and the time spent."""

    def __init__(self, val_set: FeatureSet, settings: TrainSettings):
        self.val_set, self.subset = val_set, validation_subset(val_set, settings.validate_samples)
        self.seconds = 0.0

    def __call__(self, aligner: Aligner) -> dict[str, float]:
        started = time.perf_counter()
        metrics = validation_metrics(aligner, self.val_set, self.subset)
        self.seconds += time.perf_counter() - started
        return metrics


def _draw_statistics(aligner: Aligner, train_set: FeatureSet, rows: torch.Tensor) -> dict:
    """Curriculum diagnostics of the latest BNS draw (the batch of training rows ``rows`` (B,)):
    alpha, quantiles of the drawn BS and, where the draw names its rows and the split its sibling
    groups, the shares of drawn texts in the anchor's group and one edit from its caption."""
    draw = getattr(getattr(aligner, "contrastive", None), "last_draw", None)
    if not draw:
        return {}
    scores = draw["image_to_text_boundary_score"].float()
    out = {"alpha": draw["alpha"]}
    if scores.numel():
        quantiles = torch.quantile(scores, torch.tensor([0.1, 0.5, 0.9], device=scores.device)).tolist()
        out.update({"drawn_bs_mean": scores.mean().item(), "drawn_bs_q10": quantiles[0],
                    "drawn_bs_q50": quantiles[1], "drawn_bs_q90": quantiles[2]})
    # The contrastive term's draws ("drawn_*") and the match list's draws ("match_*", with CLA).
    for key, name in (("image_to_text", "drawn"), ("match", "match")):
        if f"{key}_rows" in draw and "sibling_index" in train_set:
            shares = sibling_shares(draw[f"{key}_rows"].cpu(), train_set["group"], train_set["sibling_index"],
                                    anchors=rows, valid=draw[f"{key}_valid"].cpu())
            if shares["entries"]:
                out.update({f"{name}_same_group": shares["same_group"], f"{name}_one_edit": shares["one_edit"]})
    return out
