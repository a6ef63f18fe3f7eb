"""The audio-video reader (VAST-27M layout: video files with a sound track, a caption table) on tiny
mp4s with sound written here, and the audio-video feature set it feeds: frames and sound through
their towers, multiple-choice options on evaluated splits, the evaluation of the audio-video column."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from paper_fixtures import load

from bacl.aligners import build_aligner
from bacl.config import method_settings, validate_config
from bacl.data import readers_audio_video, readers_video
from bacl.data.readers import ReadReport
from bacl.data.readers_audio_video import iter_audio_video_text, read_sound_track
from bacl.encoders import load_encoder
from bacl.evaluate import evaluate
from bacl.featureset import FeatureSet

ROOT = Path(__file__).resolve().parents[1]
RATE = 22050  # written at 22.05 kHz, read at 8 kHz: the reader resamples



rehearsal_data = load("rehearsal_data")
extract_real_features = load("extract_real_features")


def frames_at(levels, size=(24, 32)) -> list[np.ndarray]:
    return [np.full((*size, 3), level, np.uint8) for level in levels]


def stereo(frequency: float, seconds: float = 1.5) -> np.ndarray:
    t = np.arange(round(RATE * seconds)) / RATE
    wave = 0.3 * np.sin(2 * np.pi * frequency * t)
    return np.stack([wave, 0.5 * wave]).astype(np.float32)


def dominant_frequency(wave: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.argmax(spectrum) * rate / len(wave))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three clips with sound (frame levels and pitches known), one without a sound track, one
    listed but absent, one of zero bytes; a VAST-style JSON table (lists in some fields)."""
    root = tmp_path_factory.mktemp("vast")
    videos = root / "videos"
    levels = [16 * k for k in range(12)]
    pitches = {"a": 440.0, "b": 880.0, "c": 660.0}
    for key, pitch in pitches.items():
        rehearsal_data.write_mp4(videos / f"{key}.mp4", frames_at(levels), stereo(pitch))
    rehearsal_data.write_mp4(videos / "silent.mp4", frames_at(levels), None)
    (videos / "empty.mp4").write_bytes(b"")
    records = [{"clip_id": key, "vision_cap": ["frames"], "vast_cap": f"clip {key} at {pitch:g} Hz"}
               for key, pitch in pitches.items()]
    records += [{"clip_id": "silent", "vast_cap": "no sound"}, {"clip_id": "gone", "vast_cap": "not there"},
                {"clip_id": "empty", "vast_cap": "zero bytes"}]
    (root / "vast.json").write_text(json.dumps(records))
    return {"root": root, "videos": videos, "levels": levels, "pitches": pitches}


def test_frames_and_sound_of_each_clip_are_read_and_bad_clips_counted(clips):
    report = ReadReport()
    read = list(iter_audio_video_text(clips["root"] / "vast.json", clips["videos"], num_frames=4, sample_rate=8000,
                                      duration_s=1.0, max_bad_fraction=0.5, report=report))
    assert [key for key, _, _ in read] == list(clips["pitches"])
    assert report.bad_by_reason == {readers_audio_video.AUDIO_TRACK_MISSING: 1, readers_video.VIDEO_MISSING: 1,
                                    readers_audio_video.AUDIO_TRACK_UNDECODABLE: 1}
    for key, (frames, wave), caption in read:
        assert caption.startswith(f"clip {key}")
        assert frames.shape == (4, 24, 32, 3) and frames.dtype == np.uint8
        expected = [clips["levels"][i] for i in readers_video.uniform_frame_indices(12, 4)]
        np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), expected, atol=4)
        assert wave.shape == (8000,) and wave.dtype == np.float32
        assert dominant_frequency(wave, 8000) == pytest.approx(clips["pitches"][key], abs=2)
        assert 0.15 < np.abs(wave).max() < 0.3  # the mean of the two channels (0.3 and 0.15 peaks)


def test_sound_is_cut_or_padded_to_the_duration(clips):
    path = clips["videos"] / "a.mp4"
    long = read_sound_track(path, 8000, 8000 * 3)  # 1.5 s of sound in 3 s: zero-padded at the end
    assert np.abs(long[-4000:]).max() == 0 and np.abs(long[:8000]).max() > 0.1
    centre = read_sound_track(path, 8000, 4000, crop="centre")
    assert centre.shape == (4000,) and np.abs(centre).max() > 0.1


@pytest.mark.parametrize(("option", "value", "name"), [("num_frames", 0, "num_frames"),
                                                       ("sample_rate", 0, "sample_rate"),
                                                       ("duration_s", -1.0, "duration_s"),
                                                       ("crop", "end", "crop"),
                                                       ("max_bad_fraction", 2.0, "max_bad_fraction")])
def test_bad_arguments_name_the_argument(clips, option, value, name):
    with pytest.raises(ValueError, match=name):
        iter_audio_video_text(clips["root"] / "vast.json", clips["videos"], **{option: value})


def test_missing_table_or_root_raises_file_not_found_naming_it(clips, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        iter_audio_video_text(tmp_path / "nowhere.json", clips["videos"])
    with pytest.raises(FileNotFoundError, match="no_videos"):
        iter_audio_video_text(clips["root"] / "vast.json", tmp_path / "no_videos")


def test_distractors_are_other_captions_drawn_reproducibly():
    n, width = 10, 4
    ids = torch.tensor([0, 0, 1, 2, 3, 4, 5, 6, 7, 8])  # rows 0 and 1 share a caption
    tensors = {"text": torch.randn(n, width), "text_tokens": torch.randn(n, 3, width).half(),
               "text_token_mask": torch.ones(n, 3, dtype=torch.bool), "text_token_ids": torch.arange(3 * n).view(n, 3),
               "caption_id": ids}
    first = extract_real_features.distractor_negatives(tensors, 4, seed=0)
    again = extract_real_features.distractor_negatives(tensors, 4, seed=0)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert first["negative_text"].shape == (n, 4, width) and first["negative_text_tokens"].shape == (n, 4, 3, width)
    assert first["negative_mask"].all() and (first["negative_type"] == 0).all()
    # each option is another row's caption text, never one equal to the row's own, and no option twice
    rows = (first["negative_text"][:, :, None] == tensors["text"][None, None]).all(-1).float().argmax(-1)
    assert (ids[rows] != ids[:, None]).all()
    assert all(len(set(r.tolist())) == 4 for r in rows)
    assert torch.equal(first["negative_text_token_ids"], tensors["text_token_ids"][rows])  # ids travel with tokens
    other = extract_real_features.distractor_negatives(tensors, 4, seed=1)
    assert not torch.equal(other["negative_text"], first["negative_text"])
    with pytest.raises(ValueError, match="multiple_choice.distractors=9"):
        extract_real_features.distractor_negatives(tensors, 9, seed=0)


@pytest.mark.slow
def test_audio_video_feature_set_feeds_the_audio_video_column(clips, tmp_path):
    """Frames through the image tower, sound through the audio tower; the test split gets
    multiple-choice options; evaluation gives the multiple-choice accuracy, without AEL."""
    data = {"source": "audio_video", "root": str(clips["videos"]), "num_frames": 4, "sample_rate": 16000,
            "duration_s": 1.0, "crop": "start", "max_bad_fraction": 0.5, "multiple_choice": {"distractors": 2, "seed": 0},
            "columns": {"key": "clip_id", "captions": ["vast_cap"], "folder": "folder", "path": "path"}}
    encoders = {family: load_encoder(f"bacl-tiny-{family}", None) for family in ("image", "audio")}
    split = {"metadata": str(clips["root"] / "vast.json"), "max_samples": None}
    tensors, meta = extract_real_features.real_feature_set("audio_video_text", "test", data, split, encoders,
                                                           tmp_path / "cache", 4, 2)
    features = FeatureSet(tensors, meta)
    assert len(features) == 3 and meta["read"]["bad"] == 3 and set(meta["encoders"]) == {"image", "audio"}
    assert features["x"].shape == (3, 256) and features.modality_names == ("audio", "video")
    assert features["x_tokens"].shape == (3, 4 + 1, 128)  # 4 frame embeddings, then the sound track's
    assert torch.allclose(features["x_tokens"][:, -1].float(), features["modality_audio"].half().float())
    assert features["negative_text"].shape == (3, 2, 128) and meta["negative_types"] == ["distractor"]
    assert "negative_wrong_tokens" not in features
    train, _ = extract_real_features.real_feature_set("audio_video_text", "train", data, split, encoders,
                                                      tmp_path / "cache", 4, 2)
    assert "negative_text" not in train

    methods = {"gram": {"aligner": "gram"}, "clip_bacl": {"aligner": "clip", "bns": True, "cla": True}}
    config = validate_config({"transformer": {"width": 16, "depth": 1, "heads": 2}, "methods": methods})
    for method in methods:
        settings = method_settings(config, method)
        aligner = build_aligner(settings["spec"], features.dims, bacl=settings["bacl"],
                                transformer=settings["transformer"])
        results = evaluate(aligner, features, rerank_k=2)
        assert results["multiple_choice"]["n"] == 3 and 0 <= results["multiple_choice"]["accuracy"] <= 1
        assert results["boundary"]["per_type"].keys() == {"distractor"}
        assert "ael" not in results
        assert ("boundary_match_head" in results) == (method == "clip_bacl")
