"""A split of cached features, as training and evaluation read it.

One safetensors file per (benchmark, split), written by the pipeline from the feature cache,
holds every frozen-encoder output the methods need (tensor names below). Token features are
stored in float16 (half the disk and memory; the heads compute in float32).

    x (N, Ex), x_tokens (N, Lx, Dx), x_token_mask (N, Lx)       non-text side
    modality_<name> (N, E_name)                                   separate modalities (GRAM)
    text (N, Et), text_tokens (N, Lt, Dt), text_token_mask (N, Lt), text_token_ids (N, Lt)
    caption_id (N,)                                               caption equivalence class
    group (N,), sibling_index (N, S), sibling_type (N, S)        sibling groups (synthetic data): the rows
                                                                  whose caption is a one-edit boundary
                                                                  negative of this row's, -1 padded
    text_neighbours (N, P), x_neighbours (N, P)                   BNS pools (training split)
    negative_text (N, M, Et), negative_text_tokens (N, M, Lt, Dt),
    negative_text_token_mask (N, M, Lt), negative_text_token_ids (N, M, Lt), negative_mask (N, M),
    negative_type (N, M), negative_wrong_tokens (N, M, Lt)        boundary negatives (evaluation)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .aligners.base import FeatureBatch, FeatureDims
from .atomic import atomic_path
from .candidates import CandidatePool
from .validation import all_finite

__all__ = ["FeatureSet", "REQUIRED_TENSORS"]

REQUIRED_TENSORS = ("x", "text", "caption_id")


class FeatureSet:
    """Tensors of one split, with the metadata the pipeline stored beside them."""

    def __init__(self, tensors: dict[str, torch.Tensor], meta: dict | None = None, source: str = "<memory>"):
        missing = [name for name in REQUIRED_TENSORS if name not in tensors]
        if missing:
            raise ValueError(f"feature set {source} lacks tensors {missing}")
        n = len(tensors["x"])
        if n == 0:
            raise ValueError(f"feature set {source} is empty (0 rows)")
        wrong = {name: tuple(t.shape) for name, t in tensors.items() if t.dim() == 0 or len(t) != n}
        if wrong:
            raise ValueError(f"feature set {source}: tensors {wrong} do not have N={n} rows like x")
        for name in ("text_neighbours", "x_neighbours"):  # row indices into this split
            pool = tensors.get(name)
            if pool is not None and (pool.dim() != 2 or pool.is_floating_point() or pool.dtype == torch.bool
                                     or pool.numel() == 0 or pool.min() < 0 or pool.max() >= n):
                raise ValueError(f"feature set {source}: {name} must be (N, P) integer row indices in [0, {n}), "
                                 f"got {pool.dtype} {tuple(pool.shape)} (pools of another split?)")
        siblings = tensors.get("sibling_index")
        if siblings is not None and (siblings.dim() != 2 or siblings.is_floating_point() or siblings.dtype == torch.bool
                                     or siblings.min() < -1 or siblings.max() >= n):
            raise ValueError(f"feature set {source}: sibling_index must be (N, S) integer row indices in [-1, {n}), "
                             f"got {siblings.dtype} {tuple(siblings.shape)}")
        bad = [name for name, t in tensors.items() if t.is_floating_point() and not all_finite(t)]
        if bad:
            raise ValueError(f"feature set {source}: tensors {bad} contain NaN or inf")
        self.tensors, self.meta, self.source = tensors, meta or {}, source

    @classmethod
    def load(cls, path: str | Path, *extra: str | Path) -> "FeatureSet":
        """Read a feature set; ``extra`` files (e.g. the BNS pools) add tensors to it."""
        tensors, meta = {}, {}
        for part in (path, *extra):
            part = Path(part)
            if not part.is_file():
                raise FileNotFoundError(f"feature file {part} does not exist (the pipeline's feature steps write it)")
            try:
                with safe_open(str(part), framework="pt") as handle:
                    stored = json.loads((handle.metadata() or {}).get("meta", "{}"))
                if not isinstance(stored, dict):
                    raise ValueError(f"its metadata 'meta' is a JSON {type(stored).__name__}, not an object")
                meta = {**stored, **meta}
                tensors.update(load_file(str(part)))
            except (SafetensorError, ValueError) as error:  # json.JSONDecodeError is a ValueError
                raise ValueError(f"feature file {part} is not a readable feature set: {error}") from error
        return cls(tensors, meta, source=str(path))

    @staticmethod
    def write(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Write tensors with JSON ``meta`` atomically (temp file, then rename)."""
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata={"meta": json.dumps(meta)})

    def __len__(self) -> int:
        return len(self.tensors["x"])

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(sorted(name.removeprefix("modality_") for name in self.tensors if name.startswith("modality_")))

    @property
    def dims(self) -> FeatureDims:
        t = self.tensors
        return FeatureDims(
            x=t["x"].shape[-1], text=t["text"].shape[-1],
            x_token=t["x_tokens"].shape[-1] if "x_tokens" in t else 0,
            text_token=t["text_tokens"].shape[-1] if "text_tokens" in t else 0,
            modalities=tuple((name, t[f"modality_{name}"].shape[-1]) for name in self.modality_names),
            x_token_count=t["x_tokens"].shape[1] if "x_tokens" in t else 0,
        )

    def _float(self, name: str, index) -> torch.Tensor | None:
        return self.tensors[name][index].float() if name in self.tensors else None

    def _get(self, name: str, index) -> torch.Tensor | None:
        return self.tensors[name][index] if name in self.tensors else None

    def batch(self, index: torch.Tensor, candidates: bool = False, pool_size: int | None = None,
              exclude_group: bool = False) -> FeatureBatch:
        """A FeatureBatch of rows ``index`` (B,); with ``candidates`` the BNS pools of each row
        (its first ``pool_size`` retrieved neighbours, all when None) as CandidatePools on this set.
        ``exclude_group`` also masks the candidates of the row's own sibling group (``group``): the
        control arm whose pools hold no boundary variant of the anchor's scene."""
        # Token features stay in their stored dtype (fp16 in the cache): only the rows the
        # cross-modal Transformer sees are cast, by the loss (32 of 256 anchors at the default).
        batch = FeatureBatch(
            x=self._float("x", index), text=self._float("text", index),
            x_tokens=self._get("x_tokens", index), x_token_mask=self._get("x_token_mask", index),
            text_tokens=self._get("text_tokens", index), text_token_mask=self._get("text_token_mask", index),
            text_token_ids=self._get("text_token_ids", index),
            modalities={name: self._float(f"modality_{name}", index) for name in self.modality_names},
        )
        if candidates:
            for name in ("text_neighbours", "x_neighbours"):
                if name not in self.tensors:
                    raise ValueError(f"feature set {self.source} has no {name}: BNS pools need the candidate index")
            # Rows of the store, not copies: the loss embeds and reads only what it uses (CandidatePool).
            pool = slice(None, pool_size)
            text_rows, x_rows = self.tensors["text_neighbours"][index][:, pool], self.tensors["x_neighbours"][index][:, pool]
            # A candidate with the anchor's caption is a positive, never a negative: another clip of
            # the same caption is not caught by the sampler's identical-feature guard (evaluation
            # counts it as a hit), and on audio_text a third of the clip pools are such clips.
            caption = self.tensors["caption_id"]
            text_mask, x_mask = (caption[rows] != caption[index][:, None] for rows in (text_rows, x_rows))
            if exclude_group:
                if "group" not in self.tensors:
                    raise ValueError(f"feature set {self.source} has no sibling groups (group): exclude_group "
                                     "needs the synthetic benchmarks' groups")
                group = self.tensors["group"]
                text_mask &= group[text_rows] != group[index][:, None]
                x_mask &= group[x_rows] != group[index][:, None]
            batch.candidate_text = CandidatePool(
                text_rows, self.tensors["text"], dtype=torch.float32, mask=text_mask,
                tokens=self.tensors.get("text_tokens"), token_mask=self.tensors.get("text_token_mask"),
                token_ids=self.tensors.get("text_token_ids"))
            batch.candidate_x = CandidatePool(x_rows, self.tensors["x"], dtype=torch.float32, mask=x_mask)
        return batch
