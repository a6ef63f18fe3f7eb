"""Synthetic benchmarks: pixels, frames and sound agree with the scene metadata; log-mel spectrograms."""

from itertools import pairwise

import numpy as np
import pytest

from bacl.data.synthetic import generate_split, log_mel_spectrogram
from bacl.data.synthetic.audio import ToneSpec, synthesize_clips
from bacl.data.synthetic.grammar import COLOUR_RGB, PITCH_HZ, PITCHES
from bacl.data.synthetic.render import shape_stencil

CLEAN = {"noise_level": 0.0, "colour_jitter": 0.0, "background_jitter": 0.0}
SIZES = {"n_pretrain": 0, "n_train": 40, "n_val": 0, "n_test": 0, "n_test_heldout": 0}
PALETTE = np.array(list(COLOUR_RGB.values()), dtype=np.float64)


def nearest_colour(rgb) -> str:
    return list(COLOUR_RGB)[int(np.argmin(((PALETTE - np.asarray(rgb, dtype=np.float64)) ** 2).sum(axis=1)))]


def test_centre_pixels_show_the_object_colour():
    clean = generate_split("image", {"seed": 4, **SIZES, **CLEAN}, "train")
    noisy = generate_split("image", {"seed": 4, **SIZES}, "train")
    centres = lambda dataset: [[(o["x"], o["y"]) for o in s["objects"]] for s in dataset.scenes]
    assert centres(clean) == centres(noisy)  # noise and colour jitter leave the geometry alone
    for image, noisy_image, scene in zip(clean.images, noisy.images, clean.scenes):
        assert 2 <= len(scene["objects"]) <= 4
        for o in scene["objects"]:
            assert tuple(image[o["y"], o["x"]]) == COLOUR_RGB[o["colour"]]
            patch = noisy_image[o["y"] - 1 : o["y"] + 2, o["x"] - 1 : o["x"] + 2].reshape(-1, 3).mean(axis=0)
            assert nearest_colour(patch) == o["colour"]
        painted = (image != image[0, 0]).any(axis=-1).sum()  # objects never overlap: areas add up
        assert painted == sum(shape_stencil(o["shape"], o["radius"]).sum() for o in scene["objects"])


def test_described_relations_hold_in_the_picture():
    dataset = generate_split("image", {"seed": 5, **SIZES, "min_objects": 2}, "train")
    for scene, caption in zip(dataset.scenes, dataset.captions):
        objects = scene["objects"]
        for p, relation in enumerate(scene["relations"]):
            a, b = objects[2 * p], objects[2 * p + 1]
            dx, dy = b["x"] - a["x"], b["y"] - a["y"]
            along = {"left": dx, "right": -dx, "above": dy, "below": -dy}[relation]
            assert along >= 1.5 * min(abs(dx), abs(dy)) and along > 0
            assert f"{a['shape']} {relation}" in caption


@pytest.mark.parametrize("modality", ["video", "audio_video"])
def test_frames_follow_the_events(modality):
    dataset = generate_split(modality, {"seed": 6, **SIZES, **CLEAN}, "train")
    n_frames = dataset.frames.shape[1]
    for clip, scene in zip(dataset.frames, dataset.scenes):
        for event in scene["events"]:
            f0, f1 = event["frames"]
            (x0, y0), (x1, y1) = event["start"], event["end"]
            step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
            if event["kind"] == "moves":
                dx, dy = step[event["value"]]
                assert np.sign(x1 - x0) == dx and np.sign(y1 - y0) == dy and max(abs(x1 - x0), abs(y1 - y0)) > 0
            else:
                assert (x0, y0) == (x1, y1)
            for f in range(n_frames):
                # A move goes from start (window's first frame) to end (its last) in even steps; a change
                # shows from the window's middle on.
                progress = min(max((f - f0) / (f1 - f0 - 1), 0), 1) if f1 - f0 > 1 else float(f >= f0)
                x, y = round(x0 + progress * (x1 - x0)), round(y0 + progress * (y1 - y0))
                colour = event["rgb"] if f < f0 + (f1 - f0) / 2 else event["end_rgb"]
                assert tuple(clip[f, y, x]) == tuple(colour), (f, event)
            expected_end = COLOUR_RGB[event["value"]] if event["kind"] == "turns" else COLOUR_RGB[event["colour"]]
            assert tuple(event["end_rgb"]) == expected_end


def test_audio_video_tones_play_inside_their_events():
    dataset = generate_split("audio_video", {"seed": 7, **SIZES}, "train")
    samples = dataset.audio.shape[1]
    for wave, scene in zip(dataset.audio, dataset.scenes):
        for event, tone in zip(scene["events"], scene["tones"]):
            start, stop = (round(f / dataset.frames.shape[1] * samples) for f in event["frames"])
            assert start <= tone["onset"] and tone["onset"] + tone["length"] <= stop
            inside = wave[tone["onset"] : tone["onset"] + tone["length"]]
            assert np.sqrt(np.mean(inside**2)) > 0.3  # a tone has unit RMS times a gain >= 0.5; noise is 0.02


def test_spectrogram_shape_and_pitch_levels_land_in_rising_mel_bins():
    rng = np.random.default_rng(0)
    clips = [[ToneSpec(2000, 12000, PITCH_HZ[p], timbre, 0.8, 0.0)] for p in PITCHES for timbre in ("pure", "bright")]
    waves = synthesize_clips(clips, 16000, 16000, 0.02, rng)
    mels = log_mel_spectrogram(waves, 16000)
    assert mels.shape == (len(clips), 64, 1 + 16000 // 125) and mels.dtype == np.float32
    assert np.array_equal(log_mel_spectrogram(waves[3], 16000), mels[3])  # batched = one at a time
    peaks = mels[:, :, 40:90].mean(axis=2).argmax(axis=1).reshape(len(PITCHES), 2)
    assert (np.diff(peaks[:, 0]) > 0).all() and (np.diff(peaks[:, 1]) > 0).all()
    assert (peaks[:, 0] == peaks[:, 1]).all()  # the fundamental dominates in every timbre
    above = np.array([m[peak + 3 :, 40:90].mean(axis=1).max() for m, peak in zip(mels, peaks.reshape(-1))])
    above = above.reshape(len(PITCHES), 2)
    assert (above[:, 1] > above[:, 0] + 20).all()  # bright has harmonics above the fundamental, pure has noise


def test_generated_audio_has_its_tones_pitch():
    dataset = generate_split("audio", {"seed": 8, **SIZES, "min_tones": 1, "max_tones": 1}, "train")
    mels = log_mel_spectrogram(dataset.audio, dataset.sample_rate)
    peak_of = {}
    for mel, scene in zip(mels, dataset.scenes):
        (tone,) = scene["tones"]
        frames = slice(tone["onset"] // 125 + 3, (tone["onset"] + tone["length"]) // 125 - 3)
        peak_of.setdefault(tone["pitch"], set()).add(int(mel[:, frames].mean(axis=1).argmax()))
    ordered = [peak_of[p] for p in PITCHES if p in peak_of]
    assert len(ordered) >= 4 and all(max(lo) < min(hi) for lo, hi in pairwise(ordered))


def test_spectrogram_rejects_bad_input():
    with pytest.raises(ValueError, match="wave must be a float array"):
        log_mel_spectrogram(np.zeros((2, 3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="wave contains NaN"):
        log_mel_spectrogram(np.full(1000, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="hop_length"):
        log_mel_spectrogram(np.zeros(1000, dtype=np.float32), hop_length=0)
    with pytest.raises(ValueError, match="fmax"):
        log_mel_spectrogram(np.zeros(1000, dtype=np.float32), 16000, fmax=9000.0)
