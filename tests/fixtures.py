"""Tiny cached feature sets with known structure, shared by the aligner, training, evaluation and CLI tests.

Every row comes from a latent vector z (N, E). The non-text side sees ``x = z + noise`` and the
text side ``text = z M + noise`` with M a fixed mix of the identity and a random rotation, so the
frozen features are only coarsely aligned (zero-shot retrieval is above chance, not perfect) and
a trained head can learn the rest. Token features, separate modalities and boundary negatives are
further noisy linear images of z (a negative: z with a few coordinates redrawn), so every method
has something learnable. The maps depend on ``structure_seed`` only: train and test splits drawn
with different ``seed`` share them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import save_file

from bacl.featureset import FeatureSet
from bacl.train import warmup_cosine_adamw

__all__ = ["CLI_METHODS", "NEGATIVE_TYPES", "PicklePayload", "evaluate_args", "file_tree", "held_out_contrastive_loss", "latent_features",
           "per_tensor_adamw", "tiny_config", "train_args", "write_config", "write_feature_file", "write_tensors"]

NEGATIVE_TYPES = ["attribute", "binding"]  # names of the negative_type codes 0 and 1

# The methods the CLI tests run: the zero-shot floor, a plain and a BACL aligner, and an MoE one.
CLI_METHODS = {
    "zero_shot": {"aligner": "zero_shot"},
    "clip": {"aligner": "clip"},
    "clip_bacl": {"aligner": "clip", "bns": True, "cla": True},
    "m3jepa": {"aligner": "m3jepa", "options": {"num_experts": 4, "top_k": 2}},
}


def per_tensor_adamw(*args, **kwargs):
    """bacl.train.warmup_cosine_adamw with torch's per-tensor loop (its CPU default) instead of the
    multi-tensor update: the reference the optimizer's bit-identity tests compare against (they
    monkeypatch it in place of the original, which this module bound at import)."""
    optimizer, scheduler = warmup_cosine_adamw(*args, **kwargs)
    for group in optimizer.param_groups:
        group["foreach"] = False
    return optimizer, scheduler


def _maps(structure_seed: int, dim: int, x_tokens: int, text_tokens: int, token_dim: int) -> dict[str, torch.Tensor]:
    """The fixed linear maps of the generative model (shared by every split of one structure)."""
    gen = torch.Generator().manual_seed(structure_seed)

    def coarse() -> torch.Tensor:
        # 0.6 I + 0.8 R (R a random rotation): frozen cosines of true pairs near 0.6, so the
        # zero-shot alignment is coarse, not perfect, and a head can learn the rest
        return 0.6 * torch.eye(dim) + 0.8 * torch.linalg.qr(torch.randn(dim, dim, generator=gen))[0]

    return {
        "text": coarse(),
        "video": coarse(),
        "audio": coarse(),
        "x_tokens": torch.randn(x_tokens, dim, token_dim, generator=gen) / dim**0.5,
        "text_tokens": torch.randn(text_tokens, dim, token_dim, generator=gen) / dim**0.5,
    }


def _nearest(anchors: torch.Tensor, bank: torch.Tensor, caption_id: torch.Tensor, pool: int) -> torch.Tensor:
    """(N, pool) rows of ``bank`` nearest to each anchor by cosine, never one of its own caption."""
    scores = F.normalize(anchors, dim=-1) @ F.normalize(bank, dim=-1).T
    scores = scores.masked_fill(caption_id[:, None] == caption_id[None, :], float("-inf"))
    return scores.topk(pool, dim=1).indices


def latent_features(
    n: int,
    *,
    seed: int = 0,
    structure_seed: int = 0,  # the maps; keep it fixed across the splits of one experiment
    dim: int = 16,  # E: tiny, so that a few optimiser steps move the heads noticeably
    x_tokens: int = 6,  # Lx
    text_tokens: int = 5,  # Lt
    token_dim: int = 12,  # Dx = Dt; differs from E so that no code path can confuse the two
    negatives: int = 3,  # M boundary negatives per row
    pool: int = 8,  # P neighbours per anchor (the BNS pool)
    noise: float = 0.3,  # per-feature noise: true pairs stay distinguishable, not identical
    modalities: bool = False,  # add modality_video / modality_audio and make x their concatenation
    duplicate_pairs: bool = False,  # rows 2i and 2i+1 share one caption (same text, same caption_id)
    padded_negatives: bool = False,  # every 4th row has one negative slot fewer (negative_mask False)
) -> FeatureSet:
    """A FeatureSet of ``n`` rows with every tensor FeatureSet documents (see module docstring)."""
    if n < pool + 2:
        raise ValueError(f"n={n} is too small for a pool of P={pool} neighbours")
    maps = _maps(structure_seed, dim, x_tokens, text_tokens, token_dim)
    gen = torch.Generator().manual_seed(1000 + seed)

    def noisy(t: torch.Tensor) -> torch.Tensor:
        return t + noise * torch.randn(t.shape, generator=gen)

    z = torch.randn(n, dim, generator=gen)
    caption_id = torch.arange(n) // 2 if duplicate_pairs else torch.arange(n)
    if duplicate_pairs:  # two scenes with the same content (latent), seen with different noise
        z = z[caption_id * 2]
    text = noisy(z @ maps["text"])
    text_token_features = noisy(torch.einsum("nd,ldk->nlk", z, maps["text_tokens"]))
    if duplicate_pairs:  # identical captions have identical frozen features
        text, text_token_features = text[caption_id * 2], text_token_features[caption_id * 2]
    tensors = {
        "x": noisy(z),
        "text": text,
        "caption_id": caption_id,
        "x_tokens": noisy(torch.einsum("nd,ldk->nlk", z, maps["x_tokens"])).half(),
        "x_token_mask": torch.ones(n, x_tokens, dtype=torch.bool),
        "text_tokens": text_token_features.half(),
        "text_token_mask": torch.ones(n, text_tokens, dtype=torch.bool),
    }
    tensors["text_token_mask"][caption_id % 3 == 0, -1] = False  # some padded captions exercise the masks
    # Token ids: 5 words per slot, word (caption_id * (slot + 1)) mod 5, so captions share some
    # words and differ in others (discriminative CLA aligns captions by their ids); 0 pads.
    slots = torch.arange(text_tokens)
    ids = 5 * slots + (caption_id[:, None] * (slots + 1)) % 5 + 1
    tensors["text_token_ids"] = ids.masked_fill(~tensors["text_token_mask"], 0)
    if modalities:
        tensors["modality_video"] = noisy(z @ maps["video"])
        tensors["modality_audio"] = noisy(z @ maps["audio"])
        tensors["x"] = torch.cat([tensors["modality_video"], tensors["modality_audio"]], dim=1)

    # Boundary negatives: the caption of z with 2 coordinates redrawn; their tokens differ from
    # the true caption's only at one "wrong" position.
    changed = z[:, None, :].repeat(1, negatives, 1)
    coordinates = torch.rand(n, negatives, dim, generator=gen).argsort(-1)[..., :2]
    changed.scatter_(-1, coordinates, torch.randn(n, negatives, 2, generator=gen))
    negative_tokens = tensors["text_tokens"][:, None].repeat(1, negatives, 1, 1)
    wrong_position = torch.randint(0, text_tokens - 1, (n, negatives), generator=gen)  # never the padded last
    replaced = torch.einsum("nmd,nmdk->nmk", changed, maps["text_tokens"][wrong_position])
    negative_tokens[torch.arange(n)[:, None], torch.arange(negatives)[None], wrong_position] = noisy(replaced).half()
    negative_ids = tensors["text_token_ids"][:, None].repeat(1, negatives, 1)
    negative_ids.scatter_add_(-1, wrong_position[..., None], torch.full((n, negatives, 1), 5 * text_tokens))  # a new word
    tensors.update(
        negative_text=noisy(changed @ maps["text"]),
        negative_text_tokens=negative_tokens,
        negative_text_token_mask=tensors["text_token_mask"][:, None].repeat(1, negatives, 1),
        negative_text_token_ids=negative_ids,
        negative_mask=torch.ones(n, negatives, dtype=torch.bool),
        negative_type=torch.randint(0, len(NEGATIVE_TYPES), (n, negatives), generator=gen),
        negative_wrong_tokens=F.one_hot(wrong_position, text_tokens).bool(),
        # the frozen index searches within a modality: captions near the caption, samples near the sample
        text_neighbours=_nearest(tensors["text"], tensors["text"], caption_id, pool),
        x_neighbours=_nearest(tensors["x"], tensors["x"], caption_id, pool),
    )
    if padded_negatives:
        tensors["negative_mask"][::4, -1] = False
    return FeatureSet(tensors, {"negative_types": list(NEGATIVE_TYPES), "seed": seed})


def write_feature_file(path: str | Path, features: FeatureSet) -> Path:
    """Write ``features`` as FeatureSet.load reads it: safetensors with JSON metadata under "meta"."""
    path = Path(path)
    save_file({name: t.contiguous() for name, t in features.tensors.items()}, str(path),
              metadata={"meta": json.dumps(features.meta)})
    return path


def tiny_config(methods: dict | None = None, **sections) -> dict:
    """A config dict at test scale: a 2-layer width-16 Transformer, 20 steps of batch 16.

    ``methods`` replaces the methods table (default: clip only); ``sections`` replace whole
    top-level sections (e.g. ``train={...}``).
    """
    config = {
        "name": "test",
        "threads": 1,  # the tests share two cores
        "index": {"pool_size": 8},  # = the fixture's P
        "train": {"steps": 20, "batch_size": 16, "lr": 0.01, "checkpoint_every": 10, "log_every": 2},
        "transformer": {"width": 16, "depth": 2, "heads": 2},
        "evaluate": {"rerank_k": 4, "batch_size": 64},
        "methods": methods or {"clip": {"aligner": "clip"}},
    }
    config.update(sections)
    return config


def write_config(path: str | Path, config: dict) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(config))
    return path


def train_args(config: Path, method: str, features: Path, out: Path) -> list[str]:
    """Arguments of ``python -m bacl train`` (without a progress bar)."""
    return ["train", "--config", str(config), "--method", method, "--train", str(features), "--out", str(out),
            "--quiet"]


def evaluate_args(config: Path, method: str, features: Path, out: Path, weights: Path | None = None) -> list[str]:
    """Arguments of ``python -m bacl evaluate``; ``weights`` None leaves ``--weights`` out."""
    args = ["evaluate", "--config", str(config), "--method", method, "--test", str(features), "--out", str(out),
            "--quiet"]
    return args + (["--weights", str(weights)] if weights is not None else [])


@torch.no_grad()
def held_out_contrastive_loss(aligner, features: FeatureSet, scale: float = 1 / 0.07) -> float:
    """Symmetric InfoNCE of the aligner's own similarity (cosine, or GRAM's -volume) over a whole
    split; ``scale`` is fixed (CLIP's initial 1/0.07) so that a learnt temperature cannot fake progress."""
    aligner.eval()
    batch = features.batch(torch.arange(len(features)))
    logits = scale * aligner.similarity(aligner.encode_x(batch.x, batch.modalities), aligner.encode_text(batch.text))
    labels = torch.arange(len(logits))
    return float((F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2)


def write_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict | str | None = None) -> Path:
    """Write raw tensors as a feature file WITHOUT FeatureSet's checks (to make invalid files);
    ``meta`` a dict is stored as JSON, a str as it is (e.g. text that is not JSON)."""
    path = Path(path)
    meta = meta if meta is None or isinstance(meta, str) else json.dumps(meta)
    save_file({name: t.contiguous() for name, t in tensors.items()}, str(path),
              metadata=None if meta is None else {"meta": meta})
    return path


def file_tree(*roots: str | Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``roots``: path -> (size, mtime_ns); equal before and after a call
    means the call wrote, changed and deleted nothing there."""
    tree = {}
    for root in map(Path, roots):
        for path in [root, *root.rglob("*")] if root.exists() else []:
            stat = path.stat()
            tree[str(path)] = (stat.st_size if path.is_file() else -1, stat.st_mtime_ns)
    return tree


class PicklePayload:
    """Unpickling this creates the folder ``marker`` (via os.mkdir): proof that a loader ran
    pickled code. ``torch.load(..., weights_only=False)`` would; a safe loader must refuse it."""

    def __init__(self, marker: str | Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def context_copies(transformer):
    """The Transformer called with a copy of the context per caption instead of ``context_index``."""
    forward = transformer.forward

    def copied(text_tokens, context_tokens, text_mask=None, context_mask=None, context_index=None):
        if context_index is not None:
            context_tokens = context_tokens[context_index]
            context_mask = None if context_mask is None else context_mask[context_index]
        return forward(text_tokens, context_tokens, text_mask, context_mask)

    transformer.forward = copied
