"""From a synthetic split and the frozen encoders to a feature set (see :mod:`bacl.featureset`).

Every encoder call goes through the feature cache (:func:`bacl.data.cache.extract_and_cache`), so
each sample passes through an encoder at most once per (encoder weights, data, split). The BNS
candidate pools come from the coarse-aligned index over the frozen training embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .cache import cache_key, extract_and_cache
from .index import make_index
from .synthetic import BENCHMARK_MODALITY, NegativeType, SyntheticDataset, log_mel_spectrogram, word_to_token_positions

__all__ = ["candidate_pools", "synthetic_feature_set", "word_encoder"]

NEGATIVE_TYPES = [member.value for member in NegativeType]


def _cached(encoder, inputs, kind: str, dataset_hash: str, split: str, role: str, cache_root: Path,
            batch_size: int, progress: bool, layer: int | None = None) -> dict[str, torch.Tensor]:
    """``layer``: the block whose tokens image / audio inputs keep (None: the last; video frames and
    texts take no layer). It is part of the cache key, so each layer has its own cache entry."""
    settings = {"kind": kind, "role": role, "batch_size": batch_size, "layer": layer}
    key = cache_key(encoder.name, encoder.weights_id, dataset_hash, split, settings)
    options = {} if layer is None else {"layer": layer}
    return extract_and_cache(encoder, inputs, kind, cache_root / key[:16], key, batch_size, progress=progress,
                             **options)


def _log_mels(dataset: SyntheticDataset) -> np.ndarray:
    return log_mel_spectrogram(dataset.audio, sample_rate=dataset.sample_rate)


def _non_text(dataset: SyntheticDataset, modality: str, encoders: dict, encode,
              layers: dict) -> dict[str, torch.Tensor]:
    """x, its tokens and, for the audio-video benchmark, the separate modalities (GRAM)."""
    if modality == "image":
        out = encode(encoders["image"], dataset.images, "image", "x", layers.get("image"))
    elif modality == "video":
        out = encode(encoders["image"], dataset.frames, "video", "x")
    elif modality == "audio":
        out = encode(encoders["audio"], _log_mels(dataset), "audio", "x", layers.get("audio"))
    else:
        video = encode(encoders["image"], dataset.frames, "video", "video")
        audio = encode(encoders["audio"], _log_mels(dataset), "audio", "audio", layers.get("audio"))
        if video["tokens"].shape[-1] != audio["tokens"].shape[-1]:
            raise ValueError(f"video tokens ({video['tokens'].shape[-1]}) and audio tokens "
                             f"({audio['tokens'].shape[-1]}) must have the same width to share a context")
        return {
            "x": torch.cat([video["global"], audio["global"]], dim=-1),
            "x_tokens": torch.cat([video["tokens"], audio["tokens"]], dim=1).half(),
            "x_token_mask": torch.cat([video["token_mask"], audio["token_mask"]], dim=1),
            "modality_video": video["global"], "modality_audio": audio["global"],
        }
    return {"x": out["global"], "x_tokens": out["tokens"].half(), "x_token_mask": out["token_mask"]}


def synthetic_feature_set(dataset: SyntheticDataset, encoders: dict, cache_root: str | Path, batch_size: int = 256,
                          progress: bool = True, layers: dict | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a feature set for one synthetic split.

    ``encoders``: ``{"image": FrozenEncoder, "audio": FrozenEncoder}`` (only those the modality
    needs). Texts use the image encoder's text tower, except on audio-only data. ``layers``: the
    1-based block whose tokens each tower gives: "image" / "audio" for the patch tokens of images /
    spectrograms, "text" for the captions and negatives (a tower not named, or None: the last
    block); video frame tokens are frame embeddings, whatever the block.
    """
    layers = dict(layers or {})
    if set(layers) - {"image", "audio", "text"}:
        raise ValueError(f"layers names unknown towers {sorted(set(layers) - {'image', 'audio', 'text'})} "
                         "(image, audio, text)")
    modality = dataset.config["modality"]
    if modality not in BENCHMARK_MODALITY.values():
        raise ValueError(f"dataset modality {modality!r} is not one of {sorted(BENCHMARK_MODALITY.values())}")
    cache_root, dataset_hash = Path(cache_root), dataset.content_hash()

    def encode(encoder, inputs, kind, role, layer=None):
        return _cached(encoder, inputs, kind, dataset_hash, dataset.split, role, cache_root, batch_size, progress, layer)

    text_encoder = encoders["audio" if modality == "audio" else "image"]
    tensors = _non_text(dataset, modality, encoders, encode, layers)
    text = encode(text_encoder, list(dataset.captions), "text", "caption", layers.get("text"))
    tensors.update(text=text["global"], text_tokens=text["tokens"].half(), text_token_mask=text["token_mask"],
                   text_token_ids=text["token_ids"].long(), caption_id=torch.as_tensor(np.asarray(dataset.caption_ids), dtype=torch.long))
    tensors.update(_negatives(dataset, text_encoder, lambda *args: encode(*args, layers.get("text"))))
    tensors.update(_siblings(dataset))
    _trim_text_padding(tensors)
    meta = {"modality": modality, "split": dataset.split, "dataset_sha256": dataset_hash,
            "negative_types": NEGATIVE_TYPES, "encoders": {k: e.weights_id for k, e in encoders.items()},
            "token_layers": {**{k: layers.get(k) or e.num_layers["image"] for k, e in encoders.items()},
                             "text": layers.get("text") or text_encoder.num_layers["text"]},
            "distinct_captions": int(dataset.num_distinct_captions),
            "siblings_per_group": int(dataset.config["siblings_per_group"]), "num_groups": dataset.num_groups}
    return tensors, meta


def _siblings(dataset: SyntheticDataset) -> dict[str, torch.Tensor]:
    """Each sample's sibling ``group`` (N,) and the rows (N, S) of the group members whose caption is
    a one-edit boundary negative of its own, with their negative type (index into NEGATIVE_TYPES),
    padded with -1: what the pipeline needs to measure how often pools and BNS draws hold one."""
    n, width = len(dataset), max((len(sample) for sample in dataset.siblings), default=0)
    index = torch.full((n, max(width, 1)), -1, dtype=torch.long)
    kind = torch.full((n, max(width, 1)), -1, dtype=torch.long)
    for row, sample in enumerate(dataset.siblings):
        for slot, record in enumerate(sample):
            index[row, slot] = record["index"]
            kind[row, slot] = NEGATIVE_TYPES.index(record["type"])
    return {"group": torch.as_tensor(np.asarray(dataset.groups), dtype=torch.long), "sibling_index": index,
            "sibling_type": kind}


def _negatives(dataset: SyntheticDataset, text_encoder, encode) -> dict[str, torch.Tensor]:
    """Boundary negatives padded to the largest count per sample, with their wrong-token masks."""
    per_sample = [len(negatives) for negatives in dataset.negatives]
    n, m = len(per_sample), max(per_sample, default=0)
    if m == 0:
        return {}
    captions = [negative["caption"] for negatives in dataset.negatives for negative in negatives]
    encoded = encode(text_encoder, captions, "text", "negatives")
    length = encoded["tokens"].shape[1]
    rows = torch.repeat_interleave(torch.arange(n), torch.as_tensor(per_sample))
    slots = torch.cat([torch.arange(k) for k in per_sample])
    out = {
        "negative_text": torch.zeros(n, m, encoded["global"].shape[-1]),
        "negative_text_tokens": torch.zeros(n, m, length, encoded["tokens"].shape[-1], dtype=torch.half),
        "negative_text_token_mask": torch.zeros(n, m, length, dtype=torch.bool),
        "negative_mask": torch.zeros(n, m, dtype=torch.bool),
        "negative_type": torch.zeros(n, m, dtype=torch.long),
        "negative_wrong_tokens": torch.zeros(n, m, length, dtype=torch.bool),
        "negative_text_token_ids": torch.zeros(n, m, length, dtype=torch.long),
    }
    out["negative_text"][rows, slots] = encoded["global"]
    out["negative_text_tokens"][rows, slots] = encoded["tokens"].half()
    out["negative_text_token_mask"][rows, slots] = encoded["token_mask"]
    out["negative_text_token_ids"][rows, slots] = encoded["token_ids"].long()
    out["negative_mask"][rows, slots] = True
    encode_word = word_encoder(text_encoder)
    flat = [negative for negatives in dataset.negatives for negative in negatives]
    out["negative_type"][rows, slots] = torch.as_tensor([NEGATIVE_TYPES.index(neg["type"]) for neg in flat])
    for index, negative in enumerate(flat):
        positions = word_to_token_positions(negative["caption"], negative["wrong_words"], encode_word,
                                            context_length=length)
        out["negative_wrong_tokens"][rows[index], slots[index], positions] = True
    return out


def word_encoder(text_encoder):
    """The text encoder's word -> token ids function (open_clip's ``SimpleTokenizer.encode``)."""
    tokenizer = text_encoder.tokenizer
    return tokenizer.tokenizer.encode if hasattr(tokenizer, "tokenizer") else tokenizer.encode


def _trim_text_padding(tensors: dict[str, torch.Tensor]) -> None:
    """Drop token positions that are padding in every caption and negative (lossless; the text
    tower's context is longer than any synthetic caption, and CLA's cost grows with it)."""
    used = tensors["text_token_mask"].any(0)
    if "negative_text_token_mask" in tensors:
        used |= tensors["negative_text_token_mask"].flatten(0, 1).any(0)
    length = int(used.nonzero().max()) + 1
    for name in ("text_tokens", "text_token_mask", "text_token_ids"):
        if name in tensors:
            tensors[name] = tensors[name][:, :length]
    for name in ("negative_text_tokens", "negative_text_token_mask", "negative_wrong_tokens", "negative_text_token_ids"):
        if name in tensors:
            tensors[name] = tensors[name][:, :, :length]


def candidate_pools(tensors: dict[str, torch.Tensor], pool_size: int, index_kind: str = "exact") -> dict[str, torch.Tensor]:
    """BNS pools from the coarse-aligned index over the frozen training embeddings.

    ``text_neighbours`` (N, P): for each x anchor, the P texts nearest under the frozen encoder
    (its own row excluded); ``x_neighbours`` (N, P): the same for each text anchor.
    """
    x, text = F.normalize(tensors["x"].float(), dim=-1), F.normalize(tensors["text"].float(), dim=-1)
    if x.shape[-1] != text.shape[-1]:
        # Concatenated audio+video: compare texts with the video part (same tower as the texts).
        x = F.normalize(tensors["modality_video"].float(), dim=-1)
    own = torch.arange(len(x))
    _, text_neighbours = make_index(index_kind).build(text).search(x, pool_size, exclude=own)
    _, x_neighbours = make_index(index_kind).build(x).search(text, pool_size, exclude=own)
    return {"text_neighbours": text_neighbours, "x_neighbours": x_neighbours}
