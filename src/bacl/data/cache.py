"""Feature cache: frozen-encoder features, extracted once per (encoder, weights, dataset, split, settings).

Layout: ``<root>/<key>/features.safetensors``. The key (:func:`cache_key`) is a sha256 over
everything the features depend on; it is also stored in the file's safetensors metadata, with
a format version and the caller's provenance ``meta`` (JSON), so a directory that was renamed,
copied or written by older code is refused rather than read (:func:`read_features`).
Writes go to a temporary sibling directory that is renamed into place only when complete, so an
interrupted extraction leaves nothing that looks like a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

__all__ = [
    "CACHE_FORMAT",
    "FEATURES_FILE",
    "cache_key",
    "content_sha256",
    "extract_and_cache",
    "read_features",
    "read_meta",
    "write_features",
]

# Part of every key and every file: bump it when the stored layout or the meaning of a feature
# changes, and every older cache stops matching instead of being read as if it were current.
CACHE_FORMAT = "1"
FEATURES_FILE = "features.safetensors"
_ENCODE_METHOD = {"image": "encode_images", "text": "encode_texts", "video": "encode_video", "audio": "encode_audio"}


def _update(digest, value) -> None:
    """Feed ``value`` into ``digest`` with a type tag and length, so no two values share a stream."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().contiguous()
        digest.update(f"tensor|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray):
        value = np.ascontiguousarray(value)
        digest.update(f"ndarray|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    elif isinstance(value, (str, bytes)):
        data = value.encode() if isinstance(value, str) else value
        digest.update(f"{type(value).__name__}|{len(data)}|".encode() + data)
    elif isinstance(value, Path):  # a file: its content, not its name
        if not value.is_file():
            raise ValueError(f"value {value} is not an existing file")
        digest.update(f"file|{value.stat().st_size}|".encode())
        with value.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    elif isinstance(value, (list, tuple)):
        digest.update(f"seq|{len(value)}|".encode())
        for item in value:
            _update(digest, item)
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("value: dict keys must be str")
        digest.update(f"map|{len(value)}|".encode())
        for k in sorted(value):
            _update(digest, k)
            _update(digest, value[k])
    elif value is None or isinstance(value, (bool, int, float)):
        digest.update(f"scalar|{value!r}|".encode())
    else:
        raise ValueError(
            f"value of type {type(value).__name__} cannot be hashed "
            "(tensor, array, str, bytes, Path, list, tuple, dict, scalar)"
        )


def content_sha256(value) -> str:
    """sha256 of a dataset's content: tensors/arrays (dtype, shape, bytes), str, bytes, Path (file
    content), scalars, and lists/tuples/dicts of these. Equal content gives equal hashes."""
    digest = hashlib.sha256()
    _update(digest, value)
    return digest.hexdigest()


def cache_key(encoder_name: str, weights_id: str, dataset_sha256: str, split: str, settings: dict) -> str:
    """The cache key: sha256 over the encoder name, its weights' identity (``FrozenEncoder.weights_id``
    or a weights-file hash), the dataset content hash, the split and the extraction settings (a
    JSON-serialisable dict: everything else that changes the features, e.g. kind, the token block, truncate,
    batch_size when bitwise identity matters) and :data:`CACHE_FORMAT`."""
    fields = {"encoder_name": encoder_name, "weights_id": weights_id, "dataset_sha256": dataset_sha256, "split": split}
    for name, value in fields.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    if not isinstance(settings, dict):
        raise ValueError(f"settings must be a dict, got {type(settings).__name__}")
    try:
        settings_json = json.dumps(settings, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"settings must be JSON-serialisable: {error}") from error
    payload = json.dumps({**fields, "format": CACHE_FORMAT, "settings": settings_json}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def write_features(out_dir: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict, key: str) -> Path:
    """Atomically write ``tensors`` (name -> tensor) with ``key`` and provenance ``meta`` (JSON) to
    ``out_dir``, replacing an existing cache there. On any error, or an interrupt, ``out_dir`` is
    left as it was and the temporary directory is removed. Returns ``out_dir`` as a Path."""
    if not isinstance(tensors, dict) or not tensors:
        raise ValueError("tensors must be a non-empty dict of str -> torch.Tensor")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
        raise ValueError("tensors must be a non-empty dict of str -> torch.Tensor")
    if not isinstance(key, str) or not key:
        raise ValueError(f"key must be a non-empty str, got {key!r}")
    try:
        meta_json = json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"meta must be JSON-serialisable: {error}") from error
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # A sibling, so on the same filesystem, where a rename is atomic.
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
            tmp / FEATURES_FILE,
            metadata={"key": key, "format": CACHE_FORMAT, "meta": meta_json},
        )
        if out_dir.exists():  # move the old cache aside first: rename cannot replace a non-empty directory
            old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex}")
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _metadata(out_dir: Path) -> dict[str, str]:
    path = out_dir / FEATURES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no feature cache at {out_dir} ({FEATURES_FILE} missing)")
    with safe_open(path, framework="pt") as handle:
        return handle.metadata() or {}


def read_meta(out_dir: str | os.PathLike) -> dict:
    """The provenance ``meta`` stored with a cache, plus its ``key`` and ``format``."""
    stored = _metadata(Path(out_dir))
    return {**json.loads(stored.get("meta", "{}")), "key": stored.get("key"), "format": stored.get("format")}


def read_features(out_dir: str | os.PathLike, expected_key: str) -> dict[str, torch.Tensor]:
    """The tensors cached in ``out_dir``; raises ValueError naming both keys if the stored key (or
    format) differs from ``expected_key`` (a stale cache is never read)."""
    out_dir = Path(out_dir)
    stored = _metadata(out_dir)
    if stored.get("key") != expected_key or stored.get("format") != CACHE_FORMAT:
        raise ValueError(
            f"stale feature cache at {out_dir}: stored key {stored.get('key')} (format {stored.get('format')}) "
            f"!= expected key {expected_key} (format {CACHE_FORMAT}); delete the directory to re-extract"
        )
    with safe_open(out_dir / FEATURES_FILE, framework="pt") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


def extract_and_cache(
    encoder,
    inputs,
    kind: str,
    out_dir: str | os.PathLike,
    key: str,
    batch_size: int,
    progress: bool = True,
    **encode_options,
) -> dict[str, torch.Tensor]:
    """Features of ``inputs`` under the frozen ``encoder`` (a :class:`bacl.encoders.FrozenEncoder`),
    from the cache in ``out_dir`` when it holds ``key`` (a stale one raises), else extracted in
    batches of ``batch_size`` with a progress bar and written atomically.

    kind: "image" (uint8 (N, H, W, 3)), "text" (N captions), "video" (uint8 (N, T, H, W, 3)) or
    "audio" (log-mels (N, n_mels, frames)); ``encode_options`` go to the encoder (e.g. truncate).
    """
    if kind not in _ENCODE_METHOD:
        raise ValueError(f"kind must be one of {sorted(_ENCODE_METHOD)}, got {kind!r}")
    out_dir = Path(out_dir)
    if (out_dir / FEATURES_FILE).exists():
        return read_features(out_dir, key)
    encode = getattr(encoder, _ENCODE_METHOD[kind])
    features = encode(inputs, batch_size=batch_size, progress=progress, **encode_options)
    meta = {
        "encoder": encoder.name,
        "weights_source": encoder.weights_source,
        "weights_id": encoder.weights_id,
        "kind": kind,
        "count": len(features["global"]),
        "batch_size": batch_size,
        "encode_options": encode_options,
    }
    write_features(out_dir, features, meta, key)
    return features
