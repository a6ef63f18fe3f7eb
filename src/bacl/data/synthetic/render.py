"""Rasterising coloured shapes on a noisy grey canvas (numpy only).

Each (shape, radius) is drawn once into a boolean stencil of side ``2 * radius + 1`` centred on
its middle pixel; painting an object copies its colour through the stencil into the canvas.
Every shape contains its centre pixel, so the pixel at an object's recorded centre shows its
colour (plus noise). Objects are placed by the callers so that their boxes never overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

import numpy as np

from .grammar import SHAPES
from .sampling import keyed_noise

__all__ = ["Sprite", "render_canvases", "shape_stencil"]

_CHUNK = 256  # canvases rendered at once: bounds the float32 working memory (about 12 MB at 64 px)


class Sprite(NamedTuple):
    """One object to paint: centre (x, y) in pixels, radius in pixels, colour as uint8 RGB."""

    shape: str
    x: int
    y: int
    radius: int
    rgb: tuple[int, int, int]


def _polygon(points: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of pixel offsets (dx, dy) against vertices ``points`` (V, 2)."""
    inside = np.zeros(dx.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(points, np.roll(points, -1, axis=0)):
        crosses = (y1 > dy) != (y2 > dy)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (dy - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (dx < x_at)
    return inside


def _regular(n: int, radius: float, start_degrees: float = -90.0) -> np.ndarray:
    """Vertices of a regular n-gon (image coordinates, y down); -90 degrees points up."""
    angles = np.deg2rad(start_degrees + 360.0 * np.arange(n) / n)
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


@cache
def shape_stencil(shape: str, radius: int) -> np.ndarray:
    """Boolean (2r+1, 2r+1) mask of ``shape`` with half-width ``radius`` px, centred."""
    if shape not in SHAPES:
        raise ValueError(f"shape={shape!r} is not one of {SHAPES}")
    if not isinstance(radius, int) or radius < 2:
        raise ValueError(f"radius={radius!r} must be an int >= 2 pixels")
    # Sample at pixel centres, half a pixel inside the box so edges are not ragged.
    grid = np.arange(-radius, radius + 1, dtype=np.float64)
    dy, dx = np.meshgrid(grid, grid, indexing="ij")
    r = radius + 0.5
    if shape == "circle":
        mask = dx**2 + dy**2 <= r**2
    elif shape == "square":
        mask = np.maximum(np.abs(dx), np.abs(dy)) <= 0.8 * r  # same area as the circle would be too big
    elif shape == "diamond":
        mask = np.abs(dx) + np.abs(dy) <= r
    elif shape == "cross":
        arm = max(r / 3.0, 1.0)
        mask = ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    elif shape == "triangle":
        mask = _polygon(_regular(3, r * 1.15) + [0.0, r * 0.15], dx, dy)  # centroid lowered: base fills the box
    else:  # star: five points, inner radius 0.45 of the outer
        outer, inner = _regular(5, r), _regular(5, 0.45 * r, start_degrees=-54.0)
        mask = _polygon(np.stack([outer, inner], axis=1).reshape(-1, 2), dx, dy)
    mask[radius, radius] = True  # the centre pixel always carries the colour (tests rely on it)
    return mask


def render_canvases(
    sprites: Sequence[Sequence[Sprite]],
    backgrounds: np.ndarray,
    size: int,
    noise_level: float,
    rng: np.random.Generator,
    noise_keys: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 (N, size, size, 3) canvases: grey ``backgrounds`` (N,) in [0, 1], sprites, Gaussian noise.

    ``noise_level`` is the per-pixel noise std as a fraction of 255. Canvases with equal
    ``noise_keys`` (N,) get the same noise (None: every canvas its own); the noise seed is one draw
    from ``rng``, so the output depends only on the inputs and the stream.
    """
    if len(backgrounds) != len(sprites):
        raise ValueError(f"backgrounds has {len(backgrounds)} entries, sprites {len(sprites)}")
    noise_keys = np.arange(len(sprites)) if noise_keys is None else np.asarray(noise_keys)
    if noise_keys.shape != (len(sprites),):
        raise ValueError(f"noise_keys must have shape ({len(sprites)},), got {noise_keys.shape}")
    noise_seed = int(rng.integers(2**63))
    out = np.empty((len(sprites), size, size, 3), dtype=np.uint8)
    for start in range(0, len(sprites), _CHUNK):
        stop = min(start + _CHUNK, len(sprites))
        canvas = np.empty((stop - start, size, size, 3), dtype=np.float32)
        canvas[:] = (255.0 * backgrounds[start:stop]).astype(np.float32)[:, None, None, None]
        for k, canvas_sprites in enumerate(sprites[start:stop]):
            for sprite in canvas_sprites:
                r = sprite.radius
                if not (r <= sprite.x < size - r and r <= sprite.y < size - r):
                    raise ValueError(f"sprite {sprite} does not fit a {size}-px canvas")
                region = canvas[k, sprite.y - r : sprite.y + r + 1, sprite.x - r : sprite.x + r + 1]
                region[shape_stencil(sprite.shape, r)] = sprite.rgb
        if noise_level > 0:
            canvas += keyed_noise(noise_seed, noise_keys[start:stop], (size, size, 3)) * np.float32(255.0 * noise_level)
        np.clip(np.rint(canvas, out=canvas), 0, 255, out=canvas)
        out[start:stop] = canvas.astype(np.uint8)
    return out
