"""Tone synthesis (wavetables with a harmonic profile per timbre) and log-mel spectrograms.

A tone is one period of its timbre's waveform (unit RMS, band-limited below 0.45 x the sample
rate), read at the tone's frequency, shaped by 10 ms linear fades and scaled by a gain. Timbres:
``pure`` = sine, ``hollow`` = odd harmonics with 1/k amplitudes (square-ish), ``bright`` = all
harmonics with 1/k amplitudes (saw-ish). Equal RMS means loudness says nothing about timbre.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache
from typing import NamedTuple

import numpy as np

from .grammar import TIMBRES
from .sampling import keyed_noise

__all__ = ["ToneSpec", "log_mel_spectrogram", "synthesize_clips"]

_TABLE = 4096  # samples per wavetable period: phase error far below the noise floor
_FADE_SECONDS = 0.01  # linear fade in / out, so tone edges do not click (broadband energy)
_MAX_HARMONICS = 16  # enough to tell a hollow from a bright tone at every pitch level
_NYQUIST_SHARE = 0.45  # harmonics stay below 0.45 x sample rate: no aliasing
_CHUNK = 64  # clips per STFT batch: bounds the spectrogram's working memory (~20 MB)


class ToneSpec(NamedTuple):
    """One tone in a clip: start and length in samples, frequency in Hz, timbre name, gain, start phase in [0, 1)."""

    onset: int
    length: int
    frequency: float
    timbre: str
    gain: float
    phase: float


@cache
def _wavetable(timbre: str, n_harmonics: int) -> np.ndarray:
    """One period (``_TABLE`` samples, float32) of ``timbre`` with up to ``n_harmonics`` harmonics, unit RMS."""
    k = np.arange(1, (1 if timbre == "pure" else n_harmonics) + 1)
    amplitudes = np.where((k % 2 == 1) | (timbre == "bright"), 1.0 / k, 0.0)
    phase = np.arange(_TABLE) / _TABLE
    table = amplitudes @ np.sin(2 * np.pi * np.outer(k, phase))
    return (table / np.sqrt(np.mean(table**2))).astype(np.float32)


def synthesize_clips(tones: Sequence[Sequence[ToneSpec]], n_samples: int, sample_rate: int, noise_level: float,
                     rng: np.random.Generator, noise_keys: np.ndarray | None = None) -> np.ndarray:
    """float32 (N, n_samples): white noise of std ``noise_level`` plus each clip's tones.

    Clips with equal ``noise_keys`` (N,) get the same noise (None: every clip its own); the noise
    seed is one draw from ``rng``.
    """
    noise_keys = np.arange(len(tones)) if noise_keys is None else np.asarray(noise_keys)
    if noise_keys.shape != (len(tones),):
        raise ValueError(f"noise_keys must have shape ({len(tones)},), got {noise_keys.shape}")
    noise_seed = int(rng.integers(2**63))
    if noise_level > 0:
        out = keyed_noise(noise_seed, noise_keys, (n_samples,))
        out *= np.float32(noise_level)
    else:
        out = np.zeros((len(tones), n_samples), dtype=np.float32)
    fade = max(1, round(_FADE_SECONDS * sample_rate))
    for clip, clip_tones in zip(out, tones):
        for tone in clip_tones:
            if tone.timbre not in TIMBRES or not 0 <= tone.onset < tone.onset + tone.length <= n_samples:
                raise ValueError(f"tone {tone} is not a known timbre inside a clip of {n_samples} samples")
            n_harmonics = int(min(_MAX_HARMONICS, max(1, _NYQUIST_SHARE * sample_rate // tone.frequency)))
            cycles = tone.phase + tone.frequency / sample_rate * np.arange(tone.length)
            wave = _wavetable(tone.timbre, n_harmonics)[((cycles % 1.0) * _TABLE).astype(np.int64)]
            ramp = np.minimum(1.0, np.minimum(np.arange(1, tone.length + 1), np.arange(tone.length, 0, -1)) / fade)
            clip[tone.onset : tone.onset + tone.length] += (tone.gain * ramp * wave).astype(np.float32)
    return out


@lru_cache(maxsize=8)
def _mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    # librosa pulls in numba on import (seconds); only spectrograms need it, so import it here.
    from librosa.filters import mel

    return mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax).astype(np.float32)


def log_mel_spectrogram(wave: np.ndarray, sample_rate: int = 16000, n_mels: int = 64, n_fft: int = 512,
                        hop_length: int = 125, fmin: float = 0.0, fmax: float | None = None,
                        top_db: float | None = 80.0) -> np.ndarray:
    """Log-mel power spectrogram in dB, float32 (n_mels, frames) for a (S,) wave, (N, n_mels, frames) for (N, S).

    STFT with a periodic Hann window of ``n_fft`` samples (512 = 32 ms at 16 kHz: 31 Hz bins
    resolve the lowest pitch level), hop ``hop_length`` (125 = 8 ms: 128 frames per second, the
    width of the CPU audio tower's input), the signal zero-padded by ``n_fft // 2`` on both sides
    so frames = 1 + S // hop_length. Power goes through librosa's (Slaney) mel filterbank; dB are
    absolute (reference 1.0), floored at 1e-10 and at ``top_db`` below each clip's maximum.
    """
    wave = np.asarray(wave)
    if not np.issubdtype(wave.dtype, np.floating) or wave.ndim not in (1, 2) or wave.shape[-1] == 0:
        raise ValueError(f"wave must be a float array (S,) or (N, S) with S >= 1, got {wave.dtype} {wave.shape}")
    if not np.isfinite(wave).all():
        raise ValueError("wave contains NaN or inf")
    for name, value in (("sample_rate", sample_rate), ("n_mels", n_mels), ("n_fft", n_fft), ("hop_length", hop_length)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} must be an int >= 1")
    if fmax is not None and not fmin < fmax <= sample_rate / 2:
        raise ValueError(f"fmax={fmax!r} must be in (fmin={fmin}, sample_rate / 2 = {sample_rate / 2}]")
    if top_db is not None and top_db <= 0:
        raise ValueError(f"top_db={top_db!r} must be > 0 or None")
    batch = wave.reshape(-1, wave.shape[-1]).astype(np.float32)
    filterbank = _mel_filterbank(int(sample_rate), int(n_fft), int(n_mels), float(fmin), fmax)
    # Imported here, not at the top: scipy.signal takes ~0.5 s to import, and every pipeline job
    # imports this module (through bacl.config) without computing a spectrogram.
    from scipy.signal import get_window

    window = get_window("hann", n_fft).astype(np.float32)
    out = np.empty((len(batch), n_mels, 1 + batch.shape[1] // hop_length), dtype=np.float32)
    for start in range(0, len(batch), _CHUNK):
        padded = np.pad(batch[start : start + _CHUNK], ((0, 0), (n_fft // 2, n_fft // 2)))
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[:, ::hop_length]
        power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # (c, frames, n_fft // 2 + 1)
        decibels = 10.0 * np.log10(np.maximum(power @ filterbank.T, 1e-10))  # (c, frames, n_mels)
        if top_db is not None:
            decibels = np.maximum(decibels, decibels.max(axis=(1, 2), keepdims=True) - top_db)
        out[start : start + _CHUNK] = decibels.transpose(0, 2, 1)
    return out.reshape(*wave.shape[:-1], n_mels, out.shape[-1])
