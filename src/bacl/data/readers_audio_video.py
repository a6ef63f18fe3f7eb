"""Audio-video-caption triples in the VAST-27M layout: a caption table plus local video files with sound.

VAST-27M's annotations name each clip by ``clip_id`` and give, besides vision, audio and
subtitle captions, an omni-modal caption ``vast_cap`` describing what is seen and heard; the
clips are video files whose sound track is part of the sample. A row's file is
``<root>/<folder>/<key>.mp4`` (or ``<root>/<folder>/<key>`` when that exists), or the row's
``path`` column relative to the root when present and non-empty, as for
:mod:`.readers_video`. Both streams come out of the one file, decoded with PyAV:

* frames: T at the centres of T equal segments, as :func:`.readers_video.uniform_frame_indices`;
* sound: the first audio stream, averaged to mono, resampled with :func:`.readers_audio.resample`
  and cut or zero-padded with :func:`.readers_audio.fix_length`, the audio-text reader's front end.

A clip without a sound track is skipped and counted (:data:`AUDIO_TRACK_MISSING`): the benchmark
pairs what is seen with what is heard.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .readers import (
    ReadReport,
    UnreadableSample,
    check_column_names,
    check_max_bad_fraction,
    check_media_root,
    iter_metadata_samples,
    read_metadata_rows,
)
from .readers_audio import AUDIO_EMPTY, AUDIO_NOT_FINITE, clip_samples, fix_length, resample
from .readers_video import VIDEO_NEEDS_PYAV, VIDEO_UNDECODABLE, read_video_file, uniform_frame_indices, video_location

__all__ = ["AUDIO_TRACK_MISSING", "AUDIO_TRACK_UNDECODABLE", "iter_audio_video_text", "read_sound_track"]

# Reasons a clip is skipped (besides those of .readers, .readers_video and .readers_audio).
AUDIO_TRACK_MISSING = "no audio track"
AUDIO_TRACK_UNDECODABLE = "audio track undecodable"


def read_sound_track(path: str | Path, sample_rate: int, n_samples: int, crop: str = "start") -> np.ndarray:
    """float32 (n_samples,) mono sound of a video file's first audio stream (see the module docstring).

    Raises :class:`~.readers.UnreadableSample` for a file without sound, an undecodable or empty
    track, or non-finite samples.
    """
    try:
        import av
    except ImportError:
        raise UnreadableSample(VIDEO_NEEDS_PYAV) from None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UnreadableSample(AUDIO_TRACK_MISSING, str(path))
            stream = container.streams.audio[0]
            # Planar float at the stream's own rate and channels: one (channels, samples) array per frame.
            to_float = av.AudioResampler(format="fltp")
            chunks, rate = [], stream.rate
            for frame in container.decode(stream):
                for converted in to_float.resample(frame):
                    chunks.append(converted.to_ndarray())
                    rate = converted.sample_rate
            chunks += [converted.to_ndarray() for converted in to_float.resample(None)]  # flush
    except UnreadableSample:
        raise
    except Exception as error:  # noqa: BLE001 - PyAV's FFmpegError family, OSError, ValueError...
        raise UnreadableSample(AUDIO_TRACK_UNDECODABLE, f"{type(error).__name__}: {error}") from None
    if not chunks or sum(chunk.shape[1] for chunk in chunks) == 0 or not rate:
        raise UnreadableSample(AUDIO_EMPTY, str(path))
    wave = np.concatenate(chunks, axis=1).mean(axis=0)
    if not np.isfinite(wave).all():
        raise UnreadableSample(AUDIO_NOT_FINITE, str(path))
    return fix_length(resample(wave, rate, sample_rate), n_samples, crop)


def iter_audio_video_text(
    metadata: str | Path,
    video_root: str | Path,
    num_frames: int = 8,  # the synthetic clips' length, as the video-text reader
    sample_rate: int = 16000,  # the synthetic audio's rate: one log-mel front end for every scale
    duration_s: float = 5.0,  # the audio-text reader's length (CLAP's input)
    crop: str = "start",  # deterministic, so cached features do not depend on a random draw
    max_bad_fraction: float = 0.01,  # crawled clips lose a few to dead links; more means a bad copy
    *,
    report: ReadReport | None = None,
    key_column: str = "clip_id",  # VAST-27M's annotation keys
    caption_columns: tuple[str, ...] = ("vast_cap",),
    folder_column: str = "folder",  # not in VAST-27M; lets a table spread clips over sub-folders
    path_column: str = "path",  # not in VAST-27M; lets a prepared table name each file directly
) -> Iterator[tuple[str, tuple[np.ndarray, np.ndarray], str]]:
    """Yield ``(clip_id, (frames, wave), caption)`` per readable row.

    frames: uint8 (num_frames, H, W, 3) RGB; wave: float32 (round(duration_s * sample_rate),) mono.
    metadata: ``.csv`` / ``.tsv`` / ``.json`` / ``.jsonl`` table (see :func:`~.readers.read_metadata_rows`).
    video_root: folder the files are relative to. A missing metadata file or root raises
    FileNotFoundError naming it before anything is read; a missing or soundless clip is a
    skipped sample, counted by reason in ``report`` (logged at the end); if their share exceeds
    ``max_bad_fraction``, :class:`~.readers.DataQualityError` is raised after the last row.
    """
    max_bad_fraction = check_max_bad_fraction(max_bad_fraction)
    caption_columns = check_column_names(key_column, caption_columns)
    uniform_frame_indices(1, num_frames)  # validates num_frames now, not at the first row
    n_samples = clip_samples(sample_rate, duration_s, crop)
    root = check_media_root("video_root", video_root)
    rows = read_metadata_rows(metadata, (key_column, *caption_columns))
    if report is None:
        report = ReadReport(description="audio-video-text set")

    def load_clip(key: str, row: dict[str, str | None]) -> tuple[np.ndarray, np.ndarray]:
        location = video_location(root, key, row, folder_column, path_column)
        if location.is_dir():
            raise UnreadableSample(VIDEO_UNDECODABLE, f"{location} is a folder: sound needs a video file")
        wave = read_sound_track(location, sample_rate, n_samples, crop)  # first: a soundless clip is not decoded
        return read_video_file(location, num_frames), wave

    return iter_metadata_samples(rows, str(metadata), key_column, caption_columns, load_clip, report,
                                 max_bad_fraction)
