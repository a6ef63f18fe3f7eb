"""Audio-caption pairs in the WavText5K layout: a metadata table plus local audio files.

WavText5K's ``WavText5K.csv`` has the columns ``view_link, download_link, title, description,
fname, tags``; its ``process.py`` stores each clip as ``<root>/<fname>`` (e.g. ``0100.wav``).
Many of its descriptions are blank, so the caption is the description, else the title.
Each clip is read with soundfile, averaged to mono, resampled to ``sample_rate`` with a
polyphase filter (:func:`resample`) and cut or zero-padded to ``duration_s`` (:func:`fix_length`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from .readers import (
    ReadReport,
    UnreadableSample,
    check_column_names,
    check_max_bad_fraction,
    check_media_root,
    iter_metadata_samples,
    read_metadata_rows,
)

__all__ = ["AUDIO_EMPTY", "AUDIO_MISSING", "AUDIO_NOT_FINITE", "AUDIO_UNREADABLE", "CROP_MODES", "clip_samples",
           "fix_length", "iter_audio_text", "resample"]

# Where a clip longer than the target is cut: its first duration_s, or the middle.
CROP_MODES = ("start", "centre")

# Reasons a clip is skipped (besides the key and caption reasons of .readers).
AUDIO_MISSING = "audio missing"
AUDIO_UNREADABLE = "audio unreadable"
AUDIO_EMPTY = "audio empty"
AUDIO_NOT_FINITE = "audio not finite"


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """float32 (ceil(S * target_rate / orig_rate),) from a (S,) wave, by scipy's polyphase filter.

    The ratio is reduced by its gcd, so common pairs (44100 -> 16000 is 160/441) stay cheap;
    the filter is scipy's default Kaiser-windowed FIR, which suppresses aliasing above the new Nyquist.
    """
    orig_rate, target_rate = _positive_int("orig_rate", orig_rate), _positive_int("target_rate", target_rate)
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"wave must be 1-D (S,), got shape {wave.shape}")
    if orig_rate == target_rate:
        return wave
    divisor = math.gcd(orig_rate, target_rate)
    return resample_poly(wave, target_rate // divisor, orig_rate // divisor).astype(np.float32)


def fix_length(wave: np.ndarray, n_samples: int, crop: str = "start") -> np.ndarray:
    """float32 (n_samples,): ``wave`` (S,) cut to n_samples (at its start or centre) or zero-padded at the end.

    crop: "start" keeps the first n_samples (deterministic, and where the described event
    usually begins in sound-library clips); "centre" keeps the middle ones.
    """
    n_samples = _positive_int("n_samples", n_samples)
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"wave must be 1-D (S,), got shape {wave.shape}")
    if len(wave) >= n_samples:
        start = 0 if crop == "start" else (len(wave) - n_samples) // 2
        return wave[start:start + n_samples].copy()
    return np.pad(wave, (0, n_samples - len(wave)))


def clip_samples(sample_rate: int, duration_s: float, crop: str) -> int:
    """Samples per clip, ``round(duration_s * sample_rate)``, after checking the three settings
    of the audio front end (ValueError naming a bad one)."""
    sample_rate = _positive_int("sample_rate", sample_rate)
    if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) or not duration_s > 0:
        raise ValueError(f"duration_s must be a number > 0, got {duration_s!r}")
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}, got {crop!r}")
    return _positive_int("round(duration_s * sample_rate)", round(duration_s * sample_rate))


def _read_clip(path: Path, sample_rate: int, n_samples: int, crop: str) -> np.ndarray:
    if not path.is_file():
        raise UnreadableSample(AUDIO_MISSING, str(path))
    try:
        wave, rate = sf.read(path, dtype="float32", always_2d=True)  # (S, channels)
    except (RuntimeError, OSError, ValueError) as error:  # soundfile.LibsndfileError is a RuntimeError
        raise UnreadableSample(AUDIO_UNREADABLE, f"{type(error).__name__}: {error}") from None
    if wave.shape[0] == 0:
        raise UnreadableSample(AUDIO_EMPTY, str(path))
    if not np.isfinite(wave).all():  # float WAVs can hold NaN/inf, which would poison every feature
        raise UnreadableSample(AUDIO_NOT_FINITE, str(path))
    return fix_length(resample(wave.mean(axis=1), rate, sample_rate), n_samples, crop)


def iter_audio_text(
    metadata: str | Path,
    audio_root: str | Path,
    sample_rate: int = 16000,  # the synthetic audio benchmark's rate, so both scales share one log-mel front end
    duration_s: float = 5.0,  # the 5 s input of Microsoft's CLAP (the WavText5K authors' model)
    crop: str = "start",  # deterministic, so cached features do not depend on a random draw
    max_bad_fraction: float = 0.01,  # some WavText5K links are dead; more than 1 % means a bad copy
    *,
    report: ReadReport | None = None,
    key_column: str = "fname",  # WavText5K's column names
    caption_columns: tuple[str, ...] = ("description", "title"),
) -> Iterator[tuple[str, np.ndarray, str]]:
    """Yield ``(fname, wave, caption)`` per readable row: wave float32 (round(duration_s * sample_rate),) mono.

    metadata: ``.csv`` / ``.tsv`` / ``.json`` / ``.jsonl`` table (see :func:`~.readers.read_metadata_rows`).
    audio_root: folder the ``fname`` paths are relative to. A missing metadata file or root raises
    FileNotFoundError naming it before anything is read; a missing clip is a skipped sample.
    caption_columns: the first non-blank of these is the caption.
    Skipped rows are counted by reason in ``report`` (logged at the end); if their share exceeds
    ``max_bad_fraction``, :class:`~.readers.DataQualityError` is raised after the last row.
    """
    max_bad_fraction = check_max_bad_fraction(max_bad_fraction)
    caption_columns = check_column_names(key_column, caption_columns)
    n_samples = clip_samples(sample_rate, duration_s, crop)
    root = check_media_root("audio_root", audio_root)
    rows = read_metadata_rows(metadata, (key_column, *caption_columns))
    if report is None:
        report = ReadReport(description="audio-text set")

    def load_clip(key: str, row: dict[str, str | None]) -> np.ndarray:
        return _read_clip(root / key, sample_rate, n_samples, crop)

    return iter_metadata_samples(rows, str(metadata), key_column, caption_columns, load_clip, report,
                                 max_bad_fraction)
