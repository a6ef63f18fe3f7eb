"""Containers of the synthetic benchmarks and their files.

A dataset is one split of one modality: the signal arrays, one caption per sample, its
``caption_id`` (samples with equivalent captions share an id: retrieval ground truth is caption
equivalence, since a small grammar repeats captions), the boundary negatives of each sample, its
structured scene description, its sibling ``group`` (a base scene and its one-edit variants share
an id) and its ``siblings``: the other members of its group whose caption is a one-edit boundary
negative of it.

On disk (``save`` / ``load``): ``<name>.npy`` per array and ``dataset.json`` with everything else,
including ``content_hash``, a sha256 over the generating config, the captions, ids, negatives,
scenes, groups, siblings and the arrays' dtypes, shapes and bytes. Later cache keys can depend on it
(:func:`read_content_hash` reads it without loading the arrays); ``load`` recomputes it and refuses
a directory whose content no longer matches. The sidecar is written last, through a temporary file
renamed into place, so an interrupted save never leaves a loadable directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

__all__ = [
    "AudioTextDataset", "AudioVideoTextDataset", "ImageTextDataset", "SyntheticDataset", "VideoTextDataset",
    "assign_caption_ids", "load_dataset", "multiple_choice", "read_content_hash",
]

FORMAT_VERSION = "2"  # part of every hash: bump when the layout or the meaning of a field changes (2: groups, siblings)
SIDECAR = "dataset.json"
_NEGATIVE_KEYS = {"caption", "type", "wrong_words"}
_SIBLING_KEYS = {"index", "type", "wrong_words"}
_FIELDS = ("split", "config", "captions", "caption_ids", "negatives", "scenes", "groups", "siblings")


def _json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


@dataclass(eq=False)
class SyntheticDataset:
    """One split; ``negatives[i]`` is a list of ``{"caption", "type", "wrong_words"}`` records,
    ``siblings[i]`` one of ``{"index", "type", "wrong_words"}`` (``index``: a sample of the same group)."""

    MODALITY: ClassVar[str] = ""
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {}  # array field -> (dtype, ndim)

    split: str
    config: dict  # the generating config (SyntheticConfig.to_dict())
    captions: list[str]
    caption_ids: np.ndarray  # (N,) int64, numbered by first appearance within the split
    negatives: list[list[dict]]
    scenes: list[dict]
    groups: np.ndarray  # (N,) int64: contiguous runs, numbered 0, 1, ... in sample order
    siblings: list[list[dict]]

    def __post_init__(self) -> None:
        n = len(self.captions)
        if not all(isinstance(c, str) for c in self.captions):
            raise ValueError("captions must be a list of str")
        for name in ("caption_ids", "groups"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64))
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {getattr(self, name).shape}")
        if n and (self.groups[0] != 0 or not np.isin(np.diff(self.groups), (0, 1)).all()):
            raise ValueError("groups must be contiguous runs numbered 0, 1, ... in sample order")
        for name in ("negatives", "scenes", "siblings"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, captions {n}")
        if any(set(record) != _NEGATIVE_KEYS for sample in self.negatives for record in sample):
            raise ValueError(f"every negative must be a dict with keys {sorted(_NEGATIVE_KEYS)}")
        for i, sample in enumerate(self.siblings):
            if any(set(r) != _SIBLING_KEYS or not 0 <= r["index"] < n or r["index"] == i
                   or self.groups[r["index"]] != self.groups[i] for r in sample):
                raise ValueError(f"siblings[{i}] must hold dicts with keys {sorted(_SIBLING_KEYS)} whose index is "
                                 "another sample of the same group")
        for name, (dtype, ndim) in self.ARRAYS.items():
            array = getattr(self, name)
            if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != ndim or len(array) != n:
                got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
                raise ValueError(f"{name} must be a {dtype} array with {ndim} dims and {n} rows, got {got}")

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def num_distinct_captions(self) -> int:
        return len(np.unique(self.caption_ids))

    @property
    def num_groups(self) -> int:
        return int(self.groups[-1]) + 1 if len(self.groups) else 0

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.ARRAYS}

    def _metadata(self) -> dict:
        return {
            "modality": self.MODALITY, "split": self.split, "config": self.config, "captions": self.captions,
            "caption_ids": self.caption_ids.tolist(), "negatives": self.negatives, "scenes": self.scenes,
            "groups": self.groups.tolist(), "siblings": self.siblings,
        }

    def content_hash(self) -> str:
        """sha256 (hex) over the format version, the metadata and every array's dtype, shape and bytes."""
        digest = hashlib.sha256(f"bacl-synthetic|{FORMAT_VERSION}|".encode())
        metadata = _json(self._metadata()).encode()
        digest.update(f"{len(metadata)}|".encode() + metadata)
        for name, array in self.arrays().items():
            array = np.ascontiguousarray(array)
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.reshape(-1).view(np.uint8))  # zero-copy for contiguous arrays
        return digest.hexdigest()

    def save(self, path_dir: str | os.PathLike) -> str:
        """Write the arrays and the sidecar into ``path_dir`` (created if needed); returns the hash."""
        path = Path(path_dir)
        path.mkdir(parents=True, exist_ok=True)
        (path / SIDECAR).unlink(missing_ok=True)  # the directory is not a dataset until the end
        for name, array in self.arrays().items():
            np.save(path / f"{name}.npy", array, allow_pickle=False)
        content_hash = self.content_hash()
        sidecar = {**self._metadata(), "format": FORMAT_VERSION, "content_hash": content_hash,
                   "num_distinct_captions": self.num_distinct_captions, "num_groups": self.num_groups}
        temporary = path / f".{SIDECAR}.{os.getpid()}.tmp"
        temporary.write_text(_json(sidecar))
        os.replace(temporary, path / SIDECAR)
        return content_hash

    @classmethod
    def load(cls, path_dir: str | os.PathLike, verify: bool = True) -> SyntheticDataset:
        """Read a saved dataset (of this class's modality, or any when called on the base class).

        ``verify`` recomputes the content hash and raises ``ValueError`` if it differs from the stored one.
        """
        sidecar = _read_sidecar(path_dir)
        target = _DATASET_CLASSES.get(sidecar["modality"])
        if target is None or (cls is not SyntheticDataset and target is not cls):
            raise ValueError(f"{path_dir} holds a {sidecar['modality']!r} dataset, not {cls.MODALITY or 'a known one'!r}")
        path = Path(path_dir)
        missing = [name for name in target.ARRAYS if not (path / f"{name}.npy").is_file()]
        if missing:
            raise ValueError(f"{path_dir} lacks the array file(s) {[f'{m}.npy' for m in missing]}")
        arrays = {name: np.load(path / f"{name}.npy", allow_pickle=False) for name in target.ARRAYS}
        fields = {key: sidecar[key] for key in _FIELDS}
        dataset = target(**fields, **arrays)
        if verify and dataset.content_hash() != sidecar["content_hash"]:
            raise ValueError(f"{path_dir}: content does not match its stored content_hash (changed or corrupted)")
        return dataset


def _read_sidecar(path_dir: str | os.PathLike) -> dict:
    file = Path(path_dir) / SIDECAR
    if not file.is_file():
        raise ValueError(f"{path_dir} is not a saved synthetic dataset (no {SIDECAR}); generate and save it first")
    sidecar = json.loads(file.read_text())
    if sidecar.get("format") != FORMAT_VERSION:
        raise ValueError(f"{file} has format {sidecar.get('format')!r}, this code reads {FORMAT_VERSION!r}; regenerate it")
    return sidecar


def read_content_hash(path_dir: str | os.PathLike) -> str:
    """The content hash stored with a saved dataset (the arrays are not read)."""
    return _read_sidecar(path_dir)["content_hash"]


def load_dataset(path_dir: str | os.PathLike, verify: bool = True) -> SyntheticDataset:
    """Read a saved dataset of any modality (see :meth:`SyntheticDataset.load`)."""
    return SyntheticDataset.load(path_dir, verify=verify)


@dataclass(eq=False)
class ImageTextDataset(SyntheticDataset):
    MODALITY: ClassVar[str] = "image"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {"images": ("uint8", 4)}
    images: np.ndarray  # (N, H, W, 3) uint8


@dataclass(eq=False)
class VideoTextDataset(SyntheticDataset):
    MODALITY: ClassVar[str] = "video"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {"frames": ("uint8", 5)}
    frames: np.ndarray  # (N, T, H, W, 3) uint8


@dataclass(eq=False)
class AudioTextDataset(SyntheticDataset):
    MODALITY: ClassVar[str] = "audio"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {"audio": ("float32", 2)}
    audio: np.ndarray  # (N, S) float32 waveforms at config["sample_rate"]

    @property
    def sample_rate(self) -> int:
        return int(self.config["sample_rate"])


@dataclass(eq=False)
class AudioVideoTextDataset(SyntheticDataset):
    MODALITY: ClassVar[str] = "audio_video"
    ARRAYS: ClassVar[dict[str, tuple[str, int]]] = {"frames": ("uint8", 5), "audio": ("float32", 2)}
    frames: np.ndarray  # (N, T, H, W, 3) uint8
    audio: np.ndarray  # (N, S) float32, the same clip's sound

    @property
    def sample_rate(self) -> int:
        return int(self.config["sample_rate"])


_DATASET_CLASSES = {cls.MODALITY: cls for cls in (ImageTextDataset, VideoTextDataset, AudioTextDataset, AudioVideoTextDataset)}


def assign_caption_ids(canonical_captions: Sequence[str]) -> np.ndarray:
    """(N,) int64 ids: equal canonical captions share an id; ids count up in order of first appearance."""
    ids: dict[str, int] = {}
    return np.array([ids.setdefault(c, len(ids)) for c in canonical_captions], dtype=np.int64)


def multiple_choice(dataset: SyntheticDataset, seed: int = 0) -> tuple[list[list[str]], np.ndarray]:
    """Choice lists (true caption among its negatives) and the (N,) index of the true one.

    The true caption's position is drawn from ``seed``: with a fixed position, a scorer that ties
    (e.g. a constant model under argmax) would look accurate.
    """
    if not isinstance(dataset, SyntheticDataset):
        raise ValueError(f"dataset must be a SyntheticDataset, got {type(dataset).__name__}")
    if any(not sample for sample in dataset.negatives):
        raise ValueError("every sample needs at least one negative to form a multiple choice")
    rng = np.random.default_rng(seed)
    choices, answers = [], np.empty(len(dataset), dtype=np.int64)
    for i, (caption, negatives) in enumerate(zip(dataset.captions, dataset.negatives)):
        options = [record["caption"] for record in negatives]
        answers[i] = rng.integers(len(options) + 1)
        options.insert(int(answers[i]), caption)
        choices.append(options)
    return choices, answers
