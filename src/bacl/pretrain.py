"""CLIP pre-training of the small CPU towers, after which they are frozen.

The paper's encoders are pre-trained on other data, and the paper scale loads such weights
(:func:`bacl.encoders.load_encoder`). The CPU scale's towers, the JSON configs in ``model_configs/``
(``bacl-tiny-image``, ``bacl-tiny-audio``; see :mod:`bacl.encoders`), have none: :func:`pretrain_clip`
pre-trains them from their seeded init with the plain CLIP loss (``open_clip.loss.ClipLoss``, in-batch
negatives) and saves the state dict as safetensors, loadable by :func:`bacl.encoders.load_encoder`;
they are frozen from then on. The pipeline's rule ``pretrain_encoder`` runs it on a benchmark's
pre-training split, and is skipped when the config names pretrained weights, as at paper scale.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import open_clip
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from .atomic import atomic_path
from .encoders import _check_images, _check_log_mels, _create_model, _InputSpec, _tokenize
from .train import warmup_cosine_adamw

__all__ = ["pretrain_clip"]


def _save_state_dict_atomically(model: torch.nn.Module, out_path: Path, metadata: dict[str, str]) -> None:
    with atomic_path(out_path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp, metadata=metadata)


def pretrain_clip(
    model_name: str,
    images_or_inputs,
    captions: Sequence[str],
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    out_path: str | os.PathLike,
    progress: bool = True,
    modality: str = "image",
    weight_decay: float = 0.1,  # AdamW decay on weight matrices only (open_clip's training script uses 0.2)
    warmup_fraction: float = 0.1,  # share of steps with linear warm-up, then cosine decay to 0 (CLIP's recipe)
) -> dict:
    """Pre-train open_clip ``model_name`` from its seeded init (``seed``) with the plain CLIP loss
    (``open_clip.loss.ClipLoss``, in-batch negatives) and save its state dict as safetensors at
    ``out_path`` (written to a temp file, then ``os.replace``), loadable by :func:`bacl.encoders.load_encoder`.

    images_or_inputs: for ``modality="image"`` uint8 (N, H, W, 3) or prepared float (N, 3, h, w);
    for ``"audio"`` float log-mels (N, n_mels, frames). captions: N strings (must fit the context).
    Batches are drawn from seeded per-epoch permutations (last partial batch dropped), so a run is
    a function of its arguments. Returns loss_initial, loss_final (mean of the last tenth of
    steps), losses (per step), seconds, steps_per_second.
    """
    out_path = Path(out_path)
    if out_path.suffix != ".safetensors":
        raise ValueError(f"out_path must end in .safetensors (open_clip picks its loader by suffix), got {out_path}")
    if modality not in ("image", "audio"):
        raise ValueError(f"modality must be 'image' or 'audio', got {modality!r}")
    for arg, value in (("steps", steps), ("batch_size", batch_size), ("seed", seed)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if arg == "seed" else 1):
            raise ValueError(f"{arg} must be an int >= {0 if arg == 'seed' else 1}, got {value!r}")
    if not (isinstance(lr, (int, float)) and 0 < lr < math.inf):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction!r}")

    model = _create_model(model_name, None, "cpu", seed).train()
    spec = _InputSpec(model)
    if modality == "image":
        inputs, prepare = _check_images("images_or_inputs", images_or_inputs, spec.size), spec.images
    else:
        inputs, prepare = _check_log_mels("images_or_inputs", images_or_inputs), spec.log_mels
    ids = _tokenize(open_clip.get_tokenizer(model_name), captions, int(model.context_length), truncate=False)
    if len(ids) != len(inputs):
        raise ValueError(f"captions has {len(ids)} entries, images_or_inputs has {len(inputs)}")
    if not 2 <= batch_size <= len(ids):
        raise ValueError(f"batch_size={batch_size} must be in [2, N={len(ids)}] (a batch needs a negative)")

    optimizer, schedule = warmup_cosine_adamw(model.parameters(), lr, weight_decay, steps, warmup_fraction)
    loss_fn = open_clip.loss.ClipLoss()
    generator = torch.Generator().manual_seed(seed)
    per_epoch = len(ids) // batch_size
    losses, started = [], time.perf_counter()
    bar = tqdm(range(steps), desc=f"pretrain {model_name}", disable=not progress, unit="step")
    for step in bar:
        if step % per_epoch == 0:
            order = torch.randperm(len(ids), generator=generator)
        batch = order[(step % per_epoch) * batch_size:(step % per_epoch + 1) * batch_size]
        image_features, text_features, logit_scale = model(prepare(inputs[batch]), ids[batch])
        loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))  # CLIP's temperature cap
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    seconds = time.perf_counter() - started
    _save_state_dict_atomically(model, out_path, {"model_name": model_name, "seed": str(seed), "steps": str(steps)})
    return {
        "loss_initial": losses[0],
        "loss_final": float(np.mean(losses[-max(1, steps // 10):])),
        "losses": losses,
        "seconds": seconds,
        "steps_per_second": steps / seconds,
    }
