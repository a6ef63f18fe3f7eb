"""Video-caption pairs in the WebVid layout: a metadata table plus local videos.

WebVid's CSVs have the columns ``videoid, contentUrl, duration, page_dir, name`` (``name`` is
the caption); its download scripts store ``<root>/<page_dir>/<videoid>.mp4``. A video may be:

* a folder of frame images, ``<root>/<page_dir>/<videoid>/000001.jpg ...`` (frames extracted
  once, e.g. with ffmpeg; read with PIL alone), or
* a video file, ``<root>/<page_dir>/<videoid>.mp4``, decoded with PyAV (``pip install av``) when
  it is installed; without it such rows are counted under :data:`VIDEO_NEEDS_PYAV`.

A ``path`` column, when present and non-empty, overrides this and names the folder or file
relative to the root. T frames are taken at the centres of T equal segments
(:func:`uniform_frame_indices`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from .readers import (
    ReadReport,
    UnreadableSample,
    check_column_names,
    check_max_bad_fraction,
    check_media_root,
    iter_metadata_samples,
    read_metadata_rows,
)

__all__ = ["FRAME_SIZES_DIFFER", "FRAME_SUFFIXES", "FRAME_UNDECODABLE", "NO_FRAMES", "VIDEO_MISSING",
           "VIDEO_NEEDS_PYAV", "VIDEO_TRUNCATED", "VIDEO_UNDECODABLE", "iter_video_text", "read_video_file",
           "uniform_frame_indices", "video_location"]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")

# Reasons a video is skipped (besides the key and caption reasons of .readers).
VIDEO_MISSING = "video missing"
NO_FRAMES = "no frames"
FRAME_UNDECODABLE = "frame undecodable"
FRAME_SIZES_DIFFER = "frames differ in size"
VIDEO_NEEDS_PYAV = "mp4 needs PyAV: pip install av"
VIDEO_UNDECODABLE = "video undecodable"
VIDEO_TRUNCATED = "video shorter than declared"


def uniform_frame_indices(n_frames: int, num_frames: int) -> np.ndarray:
    """int64 (num_frames,) indices into ``n_frames`` frames: the centre of each of num_frames equal segments.

    Index i is ``floor((i + 0.5) * n_frames / num_frames)``, computed in integers. Indices are
    non-decreasing and span the whole clip; with fewer frames than asked, frames repeat.
    """
    for name, value in (("n_frames", n_frames), ("num_frames", num_frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    steps = np.arange(num_frames, dtype=np.int64)
    return (2 * steps + 1) * int(n_frames) // (2 * int(num_frames))


def _natural_key(name: str) -> list:
    """Sort key that orders ``frame2`` before ``frame10`` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _stack(frames: list[np.ndarray]) -> np.ndarray:
    shapes = sorted({frame.shape for frame in frames})
    if len(shapes) > 1:
        raise UnreadableSample(FRAME_SIZES_DIFFER, f"shapes {shapes}")
    return np.stack(frames)


def _read_frame_folder(folder: Path, num_frames: int) -> np.ndarray:
    names = sorted((p.name for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()),
                   key=_natural_key)
    if not names:
        raise UnreadableSample(NO_FRAMES, f"no {'/'.join(FRAME_SUFFIXES)} file in {folder}")
    indices = uniform_frame_indices(len(names), num_frames).tolist()
    decoded: dict[int, np.ndarray] = {}  # a frame picked twice (short clips) is decoded once
    for index in indices:
        if index not in decoded:
            try:
                with Image.open(folder / names[index]) as opened:
                    decoded[index] = np.asarray(opened.convert("RGB"))
            except Exception as error:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... on bad bytes
                raise UnreadableSample(FRAME_UNDECODABLE, f"{names[index]}: {type(error).__name__}: {error}")
    return _stack([decoded[index] for index in indices])


def read_video_file(path: Path, num_frames: int) -> np.ndarray:
    """uint8 (num_frames, H, W, 3) RGB: the picked frames of a video file, decoded with PyAV in one
    pass that stops after the last one needed; raises :class:`~.readers.UnreadableSample`."""
    try:
        import av
    except ImportError:
        raise UnreadableSample(VIDEO_NEEDS_PYAV) from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UnreadableSample(VIDEO_UNDECODABLE, "no video stream")
            stream = container.streams.video[0]
            declared = stream.frames  # from the container's index; 0 where the format does not store it
            if not declared:
                declared = sum(1 for packet in container.demux(stream) if packet.size)
                container.seek(0)
            if not declared:
                raise UnreadableSample(NO_FRAMES, "the video stream has no frames")
            wanted = uniform_frame_indices(declared, num_frames).tolist()
            wanted_set, picked = set(wanted), {}
            decoded = 0
            for decoded, frame in enumerate(container.decode(stream), start=1):
                if decoded - 1 in wanted_set:
                    picked[decoded - 1] = frame.to_ndarray(format="rgb24")
                if decoded > wanted[-1]:
                    break
    except UnreadableSample:
        raise
    except Exception as error:  # noqa: BLE001 - PyAV's FFmpegError family, OSError, ValueError...
        raise UnreadableSample(VIDEO_UNDECODABLE, f"{type(error).__name__}: {error}") from None
    if len(picked) < len(wanted_set):
        raise UnreadableSample(VIDEO_TRUNCATED, f"decoded {decoded} of {declared} declared frames")
    return _stack([picked[index] for index in wanted])


def video_location(root: Path, key: str, row: dict[str, str | None], folder_column: str,
                    path_column: str) -> Path:
    """The frame folder or video file of a row (see the module docstring); raises
    :class:`~.readers.UnreadableSample` if there is none."""
    relative = (row.get(path_column) or "").strip()
    if relative:
        candidates = [root / relative]
    else:
        folder = root / (row.get(folder_column) or "").strip()
        candidates = [folder / key, folder / f"{key}.mp4"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise UnreadableSample(VIDEO_MISSING, " or ".join(str(c) for c in candidates))


def iter_video_text(
    metadata: str | Path,
    video_root: str | Path,
    num_frames: int = 8,  # the synthetic video benchmark's clip length, so both scales feed one encoder shape
    max_bad_fraction: float = 0.01,  # WebVid copies lose some clips to dead links; more means a bad copy
    *,
    report: ReadReport | None = None,
    key_column: str = "videoid",  # WebVid's column names
    caption_columns: tuple[str, ...] = ("name",),
    folder_column: str = "page_dir",
    path_column: str = "path",  # not in WebVid; lets a prepared table name each video directly
) -> Iterator[tuple[str, np.ndarray, str]]:
    """Yield ``(videoid, frames, caption)`` per readable row: frames uint8 (num_frames, H, W, 3) RGB.

    metadata: ``.csv`` / ``.tsv`` / ``.json`` / ``.jsonl`` table (see :func:`~.readers.read_metadata_rows`).
    video_root: folder the videos are relative to. A missing metadata file or root raises
    FileNotFoundError naming it before anything is read; a missing video is a skipped sample.
    caption_columns: the first non-blank of these is the caption.
    Skipped rows are counted by reason in ``report`` (logged at the end); if their share exceeds
    ``max_bad_fraction``, :class:`~.readers.DataQualityError` is raised after the last row.
    """
    max_bad_fraction = check_max_bad_fraction(max_bad_fraction)
    caption_columns = check_column_names(key_column, caption_columns)
    uniform_frame_indices(1, num_frames)  # validates num_frames now, not at the first row
    root = check_media_root("video_root", video_root)
    rows = read_metadata_rows(metadata, (key_column, *caption_columns))
    if report is None:
        report = ReadReport(description="video-text set")

    def load_frames(key: str, row: dict[str, str | None]) -> np.ndarray:
        location = video_location(root, key, row, folder_column, path_column)
        if location.is_dir():
            return _read_frame_folder(location, num_frames)
        return read_video_file(location, num_frames)

    return iter_metadata_samples(rows, str(metadata), key_column, caption_columns, load_frames, report,
                                 max_bad_fraction)
