"""Frozen open_clip encoders with token features.

Two scales, one code path: the paper scale loads an open_clip model such as ``ViT-B-16`` with
weights from a local file or an open_clip pretrained tag (read from the local cache only, since
``HF_HUB_OFFLINE=1`` unless the caller sets it otherwise); the CPU scale registers the JSON configs
in ``model_configs/`` with open_clip, and :mod:`bacl.pretrain` pre-trains them with the plain CLIP loss:

* ``bacl-tiny-image``: ViT on 64 px images, patch 8 (64 tokens), width 128, 4 layers, 4 heads;
  text width 128, 3 layers, context 32; embed 128. About 0.1-0.2 s per 128 images on 2 cores.
* ``bacl-tiny-audio``: the same towers on a 64 x 128 log-mel "image" (mel bins x frames) with
  8 x 16 patches, so a clip is also 64 tokens and costs what an image does.

Token features come from ``model.forward_intermediates`` with the tower's final norm applied
(open_clip's ``normalize_intermediates``): at the last block these are the tensors open_clip
returns with ``output_tokens=True`` (image tokens without the class token, not projected), but
without changing ``model.forward``, which CLIP pre-training needs to return pooled features only,
and also for built-in configs such as ``ViT-B-16`` that do not set ``output_tokens``. ``layer``
picks another block (1-based; the final norm is applied to it too, so every layer's tokens have
the scale the last block's have): in a CLIP tower only the pooled token is trained by the loss,
and the last block's patch outputs feed nothing, so an earlier block can carry more of what the
boundary negatives test (:mod:`bacl.probe` measures it). Global embeddings are L2-normalised and
do not depend on ``layer``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from safetensors import SafetensorError
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF
from tqdm.auto import tqdm

from .validation import check_finite, load_error_reason

__all__ = ["FrozenEncoder", "load_encoder", "MODEL_CONFIG_DIR", "PAPER_SCALE_MODEL"]

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
open_clip.add_model_config(MODEL_CONFIG_DIR)  # registers every JSON there under its file stem

PAPER_SCALE_MODEL = "ViT-B-16"

Features = dict[str, torch.Tensor]


def _missing_weights_message(name: str, pretrained: str) -> str:
    tags = open_clip.list_pretrained_tags_by_model(name)
    how = (
        f"on a machine with internet, download the open_clip weights for '{name}' (one file, e.g. "
        "open_clip_model.safetensors from the tag's Hugging Face repository"
    )
    example_tag = pretrained if pretrained in tags else (tags[0] if tags else None)
    hub = open_clip.get_pretrained_cfg(name, example_tag).get("hf_hub", "").rstrip("/") if example_tag else ""
    how += f", such as https://huggingface.co/{hub} for tag '{example_tag}'" if hub else ""
    return (
        f"encoder weights not found: '{pretrained}' is neither an existing file nor a cached open_clip "
        f"tag of '{name}' (known tags: {tags or 'none'}). Weights are never downloaded at run time: "
        f"{how}), copy it to this machine and pass its path in the config key `encoder.pretrained`."
    )


def _create_model(name: str, pretrained: str | None, device: str, init_seed: int) -> torch.nn.Module:
    """Build open_clip model ``name``: weights from ``pretrained`` (file or tag), else a seeded init."""
    if name not in open_clip.list_models():
        raise ValueError(
            f"name='{name}' is not a registered open_clip model config (bacl ships "
            f"{sorted(p.stem for p in MODEL_CONFIG_DIR.glob('*.json'))}; see open_clip.list_models())"
        )
    is_tag = pretrained is not None and open_clip.is_pretrained_cfg(name, pretrained)
    if pretrained is not None and not is_tag and not os.path.isfile(pretrained):
        raise FileNotFoundError(_missing_weights_message(name, pretrained))
    with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG untouched
        torch.manual_seed(init_seed)
        try:
            model = open_clip.create_model(name, pretrained=pretrained, device=device)
        except RuntimeError as error:  # a tag whose file is not in the local cache (offline)
            if is_tag:
                raise FileNotFoundError(_missing_weights_message(name, pretrained)) from error
            if pretrained is None:
                raise
            raise ValueError(f"encoder weights {pretrained} do not fit open_clip model '{name}' (weights of "
                             f"another model?): {error}") from error
        except (SafetensorError, pickle.UnpicklingError, EOFError, ValueError, KeyError) as error:
            if pretrained is None or is_tag:
                raise
            raise ValueError(f"encoder weights {pretrained} cannot be read (a corrupt file, or one holding objects "
                             f"other than tensors, which are never unpickled): {load_error_reason(error)}") from None
    if not isinstance(model.visual, VisionTransformer):
        raise ValueError(f"name='{name}' has a {type(model.visual).__name__} image tower; token features need a ViT")
    return model


class _InputSpec:
    """What the image tower expects: size (H, W), normalisation and resize interpolation."""

    def __init__(self, model: torch.nn.Module):
        cfg = open_clip.get_model_preprocess_cfg(model)
        self.size = tuple(model.visual.image_size)
        self.mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
        self.interpolation = InterpolationMode(cfg.get("interpolation", "bicubic"))

    def images(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> model input (B, 3, h, w); float (B, 3, h, w) is taken as prepared.

        Like open_clip's eval transform: resize so the image covers the model size (aspect kept,
        antialiased), centre-crop, normalise with the model's mean/std.
        """
        if batch.is_floating_point():
            return batch
        x = batch.permute(0, 3, 1, 2).float() / 255.0
        if tuple(x.shape[-2:]) != self.size:
            scale = max(t / s for t, s in zip(self.size, x.shape[-2:]))
            covering = [max(t, round(s * scale)) for t, s in zip(self.size, x.shape[-2:])]
            x = TF.center_crop(TF.resize(x, covering, self.interpolation, antialias=True), list(self.size))
        return (x - self.mean.to(x)) / self.std.to(x)

    def log_mels(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) log-mel -> (B, 3, h, w): per-clip standardised, bilinearly resized to
        the tower's size (mel bins along the height, time along the width), repeated to the 3
        channels open_clip's patch embedding takes.

        Per-clip standardisation makes the input independent of the dB reference a dataset used;
        the cost, absolute loudness, is not something the captions describe.
        """
        x = batch.float().unsqueeze(1)
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = x.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)  # a silent clip stays finite
        x = F.interpolate((x - mean) / std, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return x.expand(-1, 3, -1, -1)


def _as_tensor(name: str, value) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    return value


def _check_log_mels(name: str, log_mels) -> torch.Tensor:
    log_mels = _as_tensor(name, log_mels)
    if not log_mels.is_floating_point() or log_mels.dim() != 3 or 0 in log_mels.shape:
        shape = f"{log_mels.dtype} {tuple(log_mels.shape)}"
        raise ValueError(f"{name} must be float log-mels (N, n_mels, frames), got {shape}")
    check_finite(name, log_mels)
    return log_mels


def _check_images(name: str, images, size: tuple[int, int], extra_dims: int = 0) -> torch.Tensor:
    """uint8 (N, [T,] H, W, 3) or prepared float (N, [T,] 3, h, w) at the model size, N >= 1."""
    images = _as_tensor(name, images)
    dims = 4 + extra_dims
    uint8_ok = images.dtype == torch.uint8 and images.dim() == dims and images.shape[-1] == 3
    float_ok = images.is_floating_point() and images.dim() == dims and tuple(images.shape[-3:]) == (3, *size)
    if not (uint8_ok or float_ok) or images.shape[0] == 0 or 0 in images.shape:
        lead = "N, T, " if extra_dims else "N, "
        raise ValueError(
            f"{name} must be uint8 ({lead}H, W, 3) or a prepared float ({lead}3, {size[0]}, {size[1]}) "
            f"with N >= 1, got {images.dtype} {tuple(images.shape)}"
        )
    return images


def _tokenize(tokenizer, captions: Sequence[str], context_length: int, truncate: bool) -> torch.Tensor:
    """(N, context_length) token ids; overlong captions raise unless ``truncate``."""
    if isinstance(captions, str) or not isinstance(captions, Sequence) or len(captions) == 0:
        raise ValueError("captions must be a non-empty list of str")
    if not all(isinstance(c, str) for c in captions):
        raise ValueError("captions must contain only str")
    # One extra slot shows whether the start/end-marked caption fits: a non-pad id lands there iff not.
    overflow = (tokenizer(list(captions), context_length=context_length + 1)[:, context_length] != 0).nonzero()
    if len(overflow) and not truncate:
        index = int(overflow[0, 0])
        raise ValueError(
            f"captions[{index}] is longer than the text context_length={context_length} tokens "
            f"({len(overflow)} caption(s) too long); shorten it or pass truncate=True"
        )
    return tokenizer(list(captions), context_length=context_length)


def _batched(forward: Callable[[slice], Features], n: int, batch_size: int, progress: bool, desc: str) -> Features:
    """Run ``forward`` on consecutive slices of ``n`` items and concatenate each output along dim 0."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    parts: list[Features] = []
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, unit="batch"):
        parts.append({k: v.cpu() for k, v in forward(slice(start, start + batch_size)).items()})
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


class FrozenEncoder:
    """A frozen open_clip model (eval mode, no gradients) that returns global and token features.

    Deliberately not an ``nn.Module``: it cannot end up among a trainer's parameters or be
    switched back to train mode by a parent's ``.train()``.
    """

    def __init__(self, name: str, model: torch.nn.Module, weights_source: str | None, device: str):
        self.name = name
        self.model = model.eval().requires_grad_(False)
        self.weights_source = weights_source
        self.device = torch.device(device)
        self.tokenizer = open_clip.get_tokenizer(name)
        self.context_length = int(model.context_length)
        self.input_spec = _InputSpec(model)

    @cached_property
    def weights_id(self) -> str:
        """sha256 of the loaded state dict (names, dtypes, shapes, bytes): identifies the weights
        whatever their source (file, tag or seeded init), for feature-cache keys."""
        digest = hashlib.sha256()
        for key, tensor in sorted(self.model.state_dict().items()):
            digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    @cached_property
    def num_layers(self) -> dict[str, int]:
        """Transformer blocks per tower: ``{"image": ..., "text": ...}`` (audio uses the image tower)."""
        text = getattr(self.model, "text", self.model).transformer  # CustomTextCLIP keeps it in .text
        return {"image": len(self.model.visual.transformer.resblocks), "text": len(text.resblocks)}

    def _block_indices(self, tower: str, layers: Sequence[int] | None) -> list[int]:
        """0-based block indices of 1-based ``layers`` (None: the last block)."""
        count = self.num_layers[tower]
        if layers is None:
            return [count - 1]
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= count:
                raise ValueError(f"layer must be an int in [1, {count}] (the {tower} tower's blocks) or None, "
                                 f"got {layer!r}")
        return [layer - 1 for layer in layers]

    def _image_forward(self, x: torch.Tensor, layers: Sequence[int] | None = None) -> Features:
        """global (B, E) and tokens (B, Li, Dv) of block ``layers[0]``, or, for several layers,
        tokens (B, len(layers), Li, Dv)."""
        with torch.inference_mode():
            out = self.model.forward_intermediates(
                image=x.to(self.device), image_indices=self._block_indices("image", layers),
                normalize_intermediates=True, image_output_fmt="NLC",
            )
        stacked = out["image_intermediates"]
        tokens = stacked[0] if len(stacked) == 1 else torch.stack(stacked, dim=1)
        mask = torch.ones((tokens.shape[0], tokens.shape[-2]), dtype=torch.bool, device=tokens.device)
        return {"global": out["image_features"], "tokens": tokens, "token_mask": mask}

    def _text_forward(self, ids: torch.Tensor, layers: Sequence[int] | None = None) -> Features:
        with torch.inference_mode():
            out = self.model.forward_intermediates(
                text=ids.to(self.device), text_indices=self._block_indices("text", layers), normalize_intermediates=True
            )
        stacked = out["text_intermediates"]
        return {"global": out["text_features"], "tokens": stacked[0] if len(stacked) == 1 else torch.stack(stacked, 1)}

    def _check_layer(self, tower: str, layer: int | None) -> list[int] | None:
        if layer is not None:
            self._block_indices(tower, [layer])  # raises on a bad layer
        return None if layer is None else [layer]

    def encode_images(self, images, batch_size: int = 256, progress: bool = False, layer: int | None = None) -> Features:
        """images: uint8 (N, H, W, 3) or float (N, 3, h, w) already prepared for the model (e.g.
        by open_clip's preprocess transform). Returns global (N, E), tokens (N, Li, Dv) (patch
        tokens of block ``layer``, 1-based, default the last; no class token), token_mask (N, Li)
        all True."""
        images = _check_images("images", images, self.input_spec.size)
        layers, prepare = self._check_layer("image", layer), self.input_spec.images
        return _batched(lambda s: self._image_forward(prepare(images[s]), layers), len(images), batch_size,
                        progress, "images")

    def encode_texts(
        self, captions: Sequence[str], batch_size: int = 256, progress: bool = False, truncate: bool = False,
        layer: int | None = None,
    ) -> Features:
        """captions: N strings. Returns global (N, E), tokens (N, Lt, Dt) (every position of block
        ``layer``, default the last, final norm applied), token_mask (N, Lt) = token_ids != 0
        (padding off), token_ids (N, Lt)."""
        ids = _tokenize(self.tokenizer, captions, self.context_length, truncate)
        layers = self._check_layer("text", layer)
        features = _batched(lambda s: self._text_forward(ids[s], layers), len(ids), batch_size, progress, "captions")
        return {**features, "token_mask": ids != 0, "token_ids": ids}

    def encode_video(self, frames, batch_size: int = 32, progress: bool = False) -> Features:
        """frames: uint8 (N, T, H, W, 3) or prepared float (N, T, 3, h, w); batch_size counts clips.

        Returns global (N, E) = normalised mean of the T frame embeddings, tokens (N, T, E) = the
        normalised frame embeddings, token_mask (N, T) all True. Frame embeddings rather than patch
        tokens: T tokens per clip instead of T * Li keep the cache and the cross-attention small.
        A frame embedding does not know its frame's index: the tokens carry what each frame shows,
        not when (:mod:`bacl.probe` measures what that leaves of direction and order).
        """
        frames = _check_images("frames", frames, self.input_spec.size, extra_dims=1)
        n, t = frames.shape[:2]

        def forward(s: slice) -> Features:
            clips = frames[s]
            per_frame = self._image_forward(self.input_spec.images(clips.flatten(0, 1)))["global"]
            per_frame = per_frame.view(len(clips), t, -1)
            return {"global": F.normalize(per_frame.mean(dim=1), dim=-1), "tokens": per_frame}

        features = _batched(forward, n, batch_size, progress, "clips")
        return {**features, "token_mask": torch.ones(n, t, dtype=torch.bool)}

    def encode_audio(self, log_mels, batch_size: int = 256, progress: bool = False, layer: int | None = None) -> Features:
        """log_mels: float (N, n_mels, frames). Returns global (N, E), tokens (N, Li, Dv) (patches
        of the spectrogram image at block ``layer``, default the last), token_mask (N, Li) all True."""
        log_mels = _check_log_mels("log_mels", log_mels)
        layers, prepare = self._check_layer("image", layer), self.input_spec.log_mels
        return _batched(lambda s: self._image_forward(prepare(log_mels[s]), layers), len(log_mels), batch_size,
                        progress, "clips")

    def encode_all_layers(self, inputs, kind: str, batch_size: int = 256) -> Features:
        """Tokens of every block at once, for probing which block to read (:mod:`bacl.probe`).

        kind: "image" (as :meth:`encode_images`), "audio" (as :meth:`encode_audio`) or "text"
        (captions, as :meth:`encode_texts`, which also gives token_ids). Returns global (N, E) and
        tokens (N, L, Ltok, D) in float16 (the precision feature sets store tokens in), where
        ``tokens[:, l - 1]`` equals the tokens of ``layer=l``.
        """
        tower = "text" if kind == "text" else "image"
        every = list(range(1, self.num_layers[tower] + 1))
        if kind == "text":
            ids = _tokenize(self.tokenizer, inputs, self.context_length, truncate=False)
            forward, n = (lambda s: self._text_forward(ids[s], every)), len(ids)
        elif kind in ("image", "audio"):
            inputs = (_check_images("inputs", inputs, self.input_spec.size) if kind == "image"
                      else _check_log_mels("inputs", inputs))
            prepare = self.input_spec.images if kind == "image" else self.input_spec.log_mels
            forward, n = (lambda s: self._image_forward(prepare(inputs[s]), every)), len(inputs)
        else:
            raise ValueError(f"kind must be 'image', 'audio' or 'text', got {kind!r}")

        def kept(s: slice) -> Features:
            out = forward(s)
            tokens = out["tokens"] if len(every) > 1 else out["tokens"].unsqueeze(1)
            return {"global": out["global"], "tokens": tokens.half()}  # halved per batch: a quarter of the memory

        features = _batched(kept, n, batch_size, False, kind)
        return {**features, "token_ids": ids} if kind == "text" else features


def load_encoder(name: str, pretrained: str | None, device: str = "cpu", init_seed: int = 0) -> FrozenEncoder:
    """Frozen open_clip model ``name`` with weights from ``pretrained``: a local file (safetensors,
    or a torch checkpoint, optionally ``{'state_dict': ...}``) or an open_clip tag already in the
    local cache. ``None`` gives the seeded random init (``init_seed``; 0 = the same init
    :func:`bacl.pretrain.pretrain_clip` starts from with seed 0), the "untrained encoder" control.

    Raises FileNotFoundError, saying how to obtain the weights, when they are not on this machine,
    and ValueError naming the file when it is corrupt, holds another model's weights, or holds
    pickled objects other than tensors (torch files are read with ``weights_only=True``).
    """
    if pretrained is not None and (not isinstance(pretrained, str) or not pretrained):
        raise ValueError(f"pretrained must be a file path, an open_clip tag or None, got {pretrained!r}")
    return FrozenEncoder(name, _create_model(name, pretrained, device, init_seed), pretrained, device)
