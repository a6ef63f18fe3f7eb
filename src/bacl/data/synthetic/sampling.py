"""Random streams, keyed noise and held-out attribute pairs, all fixed by the config's seed.

Each (modality, split) gets three independent streams derived from the seed with
``numpy.random.SeedSequence``: scenes (base scenes and the choice of their sibling variants),
rendering noise and negatives. Resizing one split, or asking for more negatives, therefore leaves
every other array unchanged. Pixel and audio noise is keyed (:func:`keyed_noise`): the members of a
sibling group share one key, so their signals differ only where their scenes do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .config import SPLITS

__all__ = ["Pools", "Streams", "choose_heldout_pairs", "draw_items", "keyed_noise", "split_pool", "split_streams"]

_MODALITY_CODES = {"image": 0, "video": 1, "audio": 2, "audio_video": 3}
# Held-out pairs depend on the attribute domain, not the modality: image, video and audio-video
# hold out the same colour-shape pairs, so a frozen image tower pre-trained on the image benchmark
# has not seen the video or audio-video held-out pairs either.
_DOMAIN_CODES = {"colour_shape": 100, "pitch_timbre": 101}


class Streams(NamedTuple):
    scenes: np.random.Generator
    render: np.random.Generator
    negatives: np.random.Generator


def split_streams(seed: int, modality: str, split: str) -> Streams:
    """The three random streams of one split."""
    if modality not in _MODALITY_CODES:
        raise ValueError(f"modality={modality!r} is not one of {tuple(_MODALITY_CODES)}")
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {SPLITS}")
    root = np.random.SeedSequence(seed, spawn_key=(_MODALITY_CODES[modality], SPLITS.index(split)))
    return Streams(*(np.random.default_rng(child) for child in root.spawn(3)))


def keyed_noise(seed: int, keys: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """float32 (len(keys), *shape) standard normal noise, the same for equal keys.

    Each key's draw comes from its own generator seeded by ``(seed, key)``, so a row depends only on
    ``seed`` and its key, not on which other keys are asked for or in which order (callers draw in chunks).
    """
    keys = np.asarray(keys, dtype=np.int64)
    if keys.ndim != 1 or (keys < 0).any():
        raise ValueError(f"keys must be a 1-d array of non-negative ints, got shape {keys.shape}")
    out = np.empty((len(keys), *shape), dtype=np.float32)
    unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    rows = np.split(np.argsort(inverse, kind="stable"), np.cumsum(counts)[:-1])
    for key, where in zip(unique.tolist(), rows):
        out[where] = np.random.default_rng((seed, key)).standard_normal(shape, dtype=np.float32)
    return out


def choose_heldout_pairs(
    seed: int, domain: str, first: Sequence[str], second: Sequence[str], count: int
) -> frozenset[tuple[str, str]]:
    """``count`` pairs (a, b) from ``first`` x ``second`` with pairwise different a's and b's.

    Distinct values keep every single value in the training splits (only the pairing is new at test).
    """
    if domain not in _DOMAIN_CODES:
        raise ValueError(f"domain={domain!r} is not one of {tuple(_DOMAIN_CODES)}")
    if not 0 <= count <= min(len(first), len(second)):
        raise ValueError(f"count={count} must be in [0, min(len(first), len(second)) = {min(len(first), len(second))}]")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_DOMAIN_CODES[domain],)))
    a = rng.choice(len(first), size=count, replace=False)
    b = rng.choice(len(second), size=count, replace=False)
    return frozenset((first[i], second[j]) for i, j in zip(a, b))


class Pools(NamedTuple):
    """Candidates for a scene's items: all of them, those a training split may use, the held-out ones."""

    every: tuple
    allowed: tuple
    heldout: tuple


def split_pool(items: Sequence, is_heldout) -> Pools:
    """Partition ``items`` by the predicate ``is_heldout``."""
    items = tuple(items)
    return Pools(items, tuple(x for x in items if not is_heldout(x)), tuple(x for x in items if is_heldout(x)))


def draw_items(rng: np.random.Generator, pools: Pools, count: int, heldout_split: bool, distinct: bool) -> list:
    """``count`` items in random order: in the held-out split one from ``pools.heldout`` at a random
    position and the others from every item (so at least one is held out), elsewhere all from
    ``pools.allowed``; pairwise different if ``distinct``."""
    if not heldout_split:
        return [pools.allowed[i] for i in rng.choice(len(pools.allowed), size=count, replace=not distinct)]
    if not pools.heldout:
        raise ValueError("the held-out split needs at least one held-out pair (heldout_pairs >= 1)")
    first = pools.heldout[rng.integers(len(pools.heldout))]
    rest = [x for x in pools.every if x != first] if distinct else pools.every
    items = [rest[i] for i in rng.choice(len(rest), size=count - 1, replace=not distinct)]
    items.insert(int(rng.integers(count)), first)
    return items
