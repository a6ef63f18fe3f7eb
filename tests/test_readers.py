"""Real-data readers on tiny data written here: round trips, every skip reason counted, the quality gate."""

import io
import json
import logging
import math
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import webdataset as wds
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from bacl.data import readers_audio, readers_video, readers_webdataset
from bacl.data.readers import (
    CAPTION_EMPTY,
    CAPTION_MISSING,
    CAPTION_NOT_UTF8,
    KEY_MISSING,
    DataQualityError,
    ReadReport,
    read_metadata_rows,
)
from bacl.data.readers_audio import fix_length, iter_audio_text, resample
from bacl.data.readers_video import iter_video_text, uniform_frame_indices
from bacl.data.readers_webdataset import iter_image_text_shards

RNG = np.random.default_rng(0)


def encode(pixels: np.ndarray, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def smooth_image(height=24, width=32) -> np.ndarray:
    """A gradient: JPEG keeps it to within a few levels, unlike noise."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1).astype(np.uint8)


def write_shards(directory, samples, maxcount=100):
    """Write samples (dicts of raw bytes / str) as tar shards, mtime 0 so the bytes are reproducible."""
    with wds.ShardWriter(str(directory / "shard-%06d.tar"), maxcount=maxcount, mtime=0, verbose=0) as writer:
        for sample in samples:
            writer.write(sample)
    return sorted(str(p) for p in directory.glob("shard-*.tar"))


def test_image_text_round_trip_png_webp_exact_jpg_close(tmp_path):
    noise = [RNG.integers(0, 256, (7 + i, 9, 3), dtype=np.uint8) for i in range(4)]
    samples = [{"__key__": f"png{i}", "png": encode(a, "PNG"), "txt": f"  caption {i}\n"} for i, a in enumerate(noise)]
    samples.append({"__key__": "webp", "webp": encode(noise[0], "WEBP", lossless=True), "txt": "lossless"})
    samples.append({"__key__": "jpg", "jpg": encode(smooth_image(), "JPEG", quality=95), "txt": "a jpeg",
                    "json": json.dumps({"similarity": 0.3})})
    gray = RNG.integers(0, 256, (5, 6), dtype=np.uint8)
    samples.append({"__key__": "gray", "png": encode(gray, "PNG"), "txt": "grey"})
    shards = write_shards(tmp_path, samples, maxcount=3)
    assert len(shards) == 3
    report = ReadReport()
    read = list(iter_image_text_shards(str(tmp_path / "shard-{000000..000002}.tar"), report=report))
    assert [key for key, _, _ in read] == [s["__key__"] for s in samples]
    assert [caption for _, _, caption in read] == ["caption 0", "caption 1", "caption 2", "caption 3", "lossless",
                                                     "a jpeg", "grey"]
    images = {key: np.asarray(image) for key, image, _ in read}
    assert all(image.mode == "RGB" for _, image, _ in read)
    for i, pixels in enumerate(noise):
        np.testing.assert_array_equal(images[f"png{i}"], pixels)
    np.testing.assert_array_equal(images["webp"], noise[0])
    assert np.abs(images["jpg"].astype(int) - smooth_image()).mean() < 3
    np.testing.assert_array_equal(images["gray"], np.repeat(gray[..., None], 3, -1))
    assert (report.n_good, report.n_bad, report.sources, report.source_errors) == (7, 0, shards, {})


def corrupt_shard_samples():
    """Two good samples and one bad sample per reason, with the reason each must be counted under."""
    good = encode(smooth_image(), "PNG")
    jpeg = encode(smooth_image(), "JPEG")
    return [
        ({"__key__": "good0", "png": good, "txt": "fine"}, None),
        ({"__key__": "garbage", "jpg": b"not an image at all", "txt": "x"}, readers_webdataset.IMAGE_UNDECODABLE),
        ({"__key__": "truncated", "jpg": jpeg[: len(jpeg) // 2], "txt": "x"}, readers_webdataset.IMAGE_UNDECODABLE),
        ({"__key__": "nocaption", "png": good}, CAPTION_MISSING),
        ({"__key__": "blank", "png": good, "txt": " \n\t"}, CAPTION_EMPTY),
        ({"__key__": "latin1", "png": good, "txt": "caf\xe9".encode("latin-1")}, CAPTION_NOT_UTF8),
        ({"__key__": "jsononly", "json": b"{}", "txt": "x"}, readers_webdataset.NO_IMAGE),
        ({"__key__": "good1", "png": good, "txt": "also fine"}, None),
    ]


def test_corrupt_samples_are_skipped_counted_by_reason_and_logged(tmp_path, caplog):
    cases = corrupt_shard_samples()
    (shard,) = write_shards(tmp_path, [sample for sample, _ in cases])
    with tarfile.open(shard, "a") as tar:  # a member whose name has no extension: not a sample
        tar.addfile(tarfile.TarInfo("README"), io.BytesIO(b""))
    report = ReadReport(description="tiny shards")
    with caplog.at_level(logging.WARNING, logger="bacl.data.readers"):
        read = list(iter_image_text_shards([shard], max_bad_fraction=0.9, report=report))
    assert [key for key, _, _ in read] == ["good0", "good1"]
    expected = Counter(reason for _, reason in cases if reason) + Counter({readers_webdataset.NAMELESS_MEMBER: 1})
    assert report.bad_by_reason == expected
    assert report.bad_by_source == {shard: 7} and report.total_by_source == {shard: 9}
    assert report.examples[CAPTION_NOT_UTF8] == [f"latin1 @ {shard}"]
    assert any(e.startswith(f"garbage @ {shard}: ") for e in report.examples[readers_webdataset.IMAGE_UNDECODABLE])
    assert "tiny shards: 2 good, 7 bad of 9 samples" in caplog.text and CAPTION_NOT_UTF8 in caplog.text


def test_bad_share_over_threshold_raises_naming_the_shard_after_all_good_samples(tmp_path):
    good = encode(smooth_image(), "PNG")
    samples = [{"__key__": f"k{i}", "png": good, "txt": "" if i == 5 else "ok"} for i in range(8)]
    first, second = write_shards(tmp_path, samples, maxcount=4)
    read = []
    with pytest.raises(DataQualityError) as raised:
        read.extend(key for key, _, _ in iter_image_text_shards([first, second], max_bad_fraction=0.1))
    assert isinstance(raised.value, ValueError)
    assert read == ["k0", "k1", "k2", "k3", "k4", "k6", "k7"]  # the gate closes after the last sample
    message = str(raised.value)
    assert f"{second}: 1 of 4 bad" in message and f"{first}:" not in message
    assert "bad sample share 12.50% > max_bad_fraction 10.00%" in message
    assert raised.value.report.bad_by_reason == {CAPTION_EMPTY: 1}
    assert len(list(iter_image_text_shards([first, second], max_bad_fraction=0.125))) == 7  # equal is allowed


def test_missing_shard_raises_file_not_found_before_reading(tmp_path):
    write_shards(tmp_path, [{"__key__": "a", "png": encode(smooth_image(), "PNG"), "txt": "t"}])
    with pytest.raises(FileNotFoundError, match="shard-000001.tar"):
        iter_image_text_shards(str(tmp_path / "shard-{000000..000001}.tar"))  # raises at the call, not the loop


def test_truncated_shard_is_a_broken_source(tmp_path):
    samples = [{"__key__": f"k{i}", "png": encode(smooth_image(), "PNG"), "txt": "ok"} for i in range(6)]
    (shard,) = write_shards(tmp_path, samples)
    data = Path(shard).read_bytes()
    boundary = data.index(b"k3.png")  # the header of the 4th sample: a cut here raises nothing in tarfile
    Path(shard).write_bytes(data[:boundary])
    report = ReadReport()
    with pytest.raises(DataQualityError, match="broken source share 100.00%") as raised:
        list(iter_image_text_shards(shard, report=report))
    assert report.n_good == 3 and "truncated" in report.source_errors[shard]
    assert f"broken source {shard}" in str(raised.value)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.1", True])
def test_bad_arguments_name_the_argument(tmp_path, bad):
    with pytest.raises(ValueError, match="max_bad_fraction"):
        iter_image_text_shards(str(tmp_path / "x.tar"), max_bad_fraction=bad)
    with pytest.raises(ValueError, match="urls"):
        iter_image_text_shards([])


def test_uniform_frame_indices_examples():
    assert uniform_frame_indices(8, 8).tolist() == list(range(8))
    assert uniform_frame_indices(16, 4).tolist() == [2, 6, 10, 14]
    assert uniform_frame_indices(3, 8).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert uniform_frame_indices(10, 1).tolist() == [5]
    with pytest.raises(ValueError, match="num_frames"):
        uniform_frame_indices(5, 0)


@given(st.integers(1, 500), st.integers(1, 64))
def test_uniform_frame_indices_fall_in_their_segment(n_frames, num_frames):
    indices = uniform_frame_indices(n_frames, num_frames)
    segment = np.arange(num_frames)
    assert indices.shape == (num_frames,) and indices.dtype == np.int64
    # Frame j covers [j, j + 1); segment i covers [i, i + 1) * n_frames / num_frames. Scaled by 2 * num_frames:
    centre = (2 * segment + 1) * n_frames  # the i-th segment's centre
    assert np.all((2 * indices * num_frames <= centre) & (centre < 2 * (indices + 1) * num_frames))
    if n_frames >= num_frames:  # enough frames: distinct, each overlapping its own segment
        assert np.all(np.diff(indices) > 0)
        start, end = segment * n_frames, (segment + 1) * n_frames  # scaled by num_frames
        assert np.all((start < (indices + 1) * num_frames) & (indices * num_frames < end))
    assert np.all((indices + indices[::-1] >= n_frames - 1) & (indices + indices[::-1] <= n_frames))  # symmetric


def write_frames(folder, values, size=(6, 5)):
    folder.mkdir(parents=True)
    for number, value in enumerate(values, start=1):  # unpadded names: 10.png must sort after 9.png
        Image.fromarray(np.full((*size, 3), value, np.uint8)).save(folder / f"{number}.png")


def write_csv(path, header, rows):
    """A CSV from str or raw-bytes fields (raw bytes let a test write a field that is not UTF-8)."""
    lines = [",".join(header).encode()]
    lines += [b",".join(v if isinstance(v, bytes) else v.encode() for v in row) for row in rows]
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_video_frame_folders_are_sampled_uniformly_and_bad_rows_counted(tmp_path, monkeypatch):
    root = tmp_path / "videos"
    write_frames(root / "p1" / "v1", [10 * k for k in range(12)])
    write_frames(root / "p1" / "v2", [7, 8, 9])
    write_frames(root / "elsewhere" / "clip", [1, 2, 3, 4])
    (root / "p1" / "empty").mkdir()
    write_frames(root / "p1" / "broken", [1, 2])
    (root / "p1" / "broken" / "2.png").write_bytes(b"not a png")
    write_frames(root / "p1" / "sizes", [1])
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(root / "p1" / "sizes" / "2.png")
    (root / "p1" / "film.mp4").write_bytes(b"\x00")
    rows = [("v1", "a cat", "p1", ""), ("v2", "short clip", "p1", ""), ("v3", "nowhere", "p1", ""),
            ("x", "by path", "", "elsewhere/clip"), ("empty", "c", "p1", ""), ("broken", "c", "p1", ""),
            ("sizes", "c", "p1", ""), ("film", "c", "p1", ""), ("v1", " ", "p1", ""),
            ("v1", b"\xff\xfe", "p1", ""), ("", "no id", "p1", "")]
    write_csv(tmp_path / "webvid.csv", ["videoid", "name", "page_dir", "path"], rows)
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    report = ReadReport()
    read = list(iter_video_text(tmp_path / "webvid.csv", root, num_frames=4, max_bad_fraction=1.0, report=report))
    assert [(key, caption) for key, _, caption in read] == [("v1", "a cat"), ("v2", "short clip"), ("x", "by path")]
    frames = {key: f for key, f, _ in read}
    assert frames["v1"].shape == (4, 6, 5, 3) and frames["v1"].dtype == np.uint8
    assert frames["v1"][:, 0, 0, 0].tolist() == [10 * i for i in uniform_frame_indices(12, 4)] == [10, 40, 70, 100]
    assert frames["v2"][:, 0, 0, 0].tolist() == [7, 8, 8, 9]
    assert frames["x"][:, 0, 0, 0].tolist() == [1, 2, 3, 4]
    assert report.bad_by_reason == {readers_video.VIDEO_MISSING: 1, readers_video.NO_FRAMES: 1,
                                    readers_video.FRAME_UNDECODABLE: 1, readers_video.FRAME_SIZES_DIFFER: 1,
                                    readers_video.VIDEO_NEEDS_PYAV: 1, CAPTION_EMPTY: 1, CAPTION_NOT_UTF8: 1,
                                    KEY_MISSING: 1}
    assert report.examples[KEY_MISSING] == [f"record 11 @ {tmp_path / 'webvid.csv'}"]
    assert report.examples["mp4 needs PyAV: pip install av"][0].startswith("film @")


def test_video_file_decoded_with_pyav(tmp_path):
    import av  # a pinned dependency: the mp4 path is always tested
    root = tmp_path / "videos"
    (root / "p").mkdir(parents=True)
    levels = [20 * k for k in range(12)]
    for name, fmt in (("clip.mp4", "mp4"), ("clip.mkv", "matroska")):  # mkv stores no frame count
        with av.open(str(root / "p" / name), "w", format=fmt) as container:
            stream = container.add_stream("mpeg4", rate=12)
            stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
            for level in levels:
                frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), level, np.uint8), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
    (root / "p" / "bad.mp4").write_bytes(bytes(100))
    write_csv(tmp_path / "meta.csv", ["videoid", "name", "page_dir", "path"],
              [("clip", "mp4 clip", "p", ""), ("mkv", "mkv clip", "", "p/clip.mkv"), ("bad", "zeros", "p", "")])
    report = ReadReport()
    read = list(iter_video_text(tmp_path / "meta.csv", root, num_frames=4, max_bad_fraction=0.5, report=report))
    assert [key for key, _, _ in read] == ["clip", "mkv"]
    assert report.bad_by_reason == {readers_video.VIDEO_UNDECODABLE: 1}
    for _, frames, _ in read:
        assert frames.shape == (4, 32, 32, 3)
        np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), [levels[i] for i in (1, 4, 7, 10)], atol=4)


def test_missing_metadata_or_root_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        iter_video_text(tmp_path / "nowhere.csv", tmp_path)
    with pytest.raises(FileNotFoundError, match="no_root"):
        iter_audio_text(tmp_path / "meta.csv", tmp_path / "no_root")
    write_csv(tmp_path / "meta.csv", ["videoid", "caption"], [("a", "b")])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['name'\]"):
        iter_video_text(tmp_path / "meta.csv", tmp_path)


def sine(rate, seconds, frequency=440.0):
    return np.sin(2 * np.pi * frequency * np.arange(round(rate * seconds)) / rate).astype(np.float32)


@pytest.mark.parametrize("metadata_format", ["csv", "json"])
def test_audio_resampled_to_fixed_length_and_bad_rows_counted(tmp_path, metadata_format):
    root = tmp_path / "audios"
    root.mkdir()
    stereo = np.stack([sine(44100, 0.5), 0.5 * sine(44100, 0.5)], axis=1)  # mono average: 0.75 * sine
    sf.write(root / "short.wav", stereo, 44100)
    sf.write(root / "long.wav", sine(22050, 3.0, 300.0), 22050)
    (root / "garbage.wav").write_bytes(b"RIFF nonsense")
    sf.write(root / "empty.wav", np.zeros((0, 1), np.float32), 16000)
    sf.write(root / "nan.wav", np.array([0.0, np.nan, 0.1], np.float32), 16000, subtype="FLOAT")
    rows = [{"fname": "short.wav", "title": "T", "description": "a tone"},
            {"fname": "long.wav", "title": "title only", "description": ""},
            {"fname": "gone.wav", "title": "t", "description": "d"},
            {"fname": "garbage.wav", "title": "t", "description": "d"},
            {"fname": "empty.wav", "title": "t", "description": "d"},
            {"fname": "nan.wav", "title": "t", "description": "d"},
            {"fname": "short.wav", "title": " ", "description": ""}]
    metadata = tmp_path / f"wavtext5k.{metadata_format}"
    if metadata_format == "json":
        metadata.write_text(json.dumps(rows))
    else:
        write_csv(metadata, ["fname", "title", "description"], [tuple(r.values()) for r in rows])
    report = ReadReport()
    read = list(iter_audio_text(metadata, root, sample_rate=16000, duration_s=1.0, max_bad_fraction=1.0,
                                report=report))
    assert [(key, caption) for key, _, caption in read] == [("short.wav", "a tone"), ("long.wav", "title only")]
    short, long = (wave for _, wave, _ in read)
    assert short.shape == long.shape == (16000,) and short.dtype == np.float32
    assert np.all(short[8000:] == 0) and np.abs(short[7000:7990]).max() > 0.5  # 0.5 s of sound, then padding
    spectrum = np.abs(np.fft.rfft(short[:8000]))
    assert np.argmax(spectrum) * 16000 / 8000 == pytest.approx(440, abs=2)
    assert np.abs(short[1000:7000]).max() == pytest.approx(0.75, abs=0.02)
    expected_long = resample(sine(22050, 3.0, 300.0), 22050, 16000)[:16000]
    np.testing.assert_allclose(long, expected_long, atol=1e-4)  # the wav holds 16-bit PCM: 3e-5 steps
    assert report.bad_by_reason == {readers_audio.AUDIO_MISSING: 1, readers_audio.AUDIO_UNREADABLE: 1,
                                    readers_audio.AUDIO_EMPTY: 1, readers_audio.AUDIO_NOT_FINITE: 1, CAPTION_EMPTY: 1}


@given(st.sampled_from([8000, 16000, 22050, 32000, 44100, 48000]), st.sampled_from([16000, 22050, 48000]),
       st.integers(1, 3000))
def test_resample_length(orig_rate, target_rate, n_samples):
    wave = resample(np.ones(n_samples, np.float32), orig_rate, target_rate)
    assert wave.dtype == np.float32 and len(wave) == math.ceil(n_samples * target_rate / orig_rate)


@given(st.integers(1, 200), st.integers(1, 200), st.sampled_from(readers_audio.CROP_MODES))
def test_fix_length_crops_or_pads(length, n_samples, crop):
    wave = np.arange(1, length + 1, dtype=np.float32)
    fixed = fix_length(wave, n_samples, crop)
    assert fixed.shape == (n_samples,)
    if length >= n_samples:
        start = 0 if crop == "start" else (length - n_samples) // 2
        np.testing.assert_array_equal(fixed, wave[start:start + n_samples])
    else:
        np.testing.assert_array_equal(fixed, np.concatenate([wave, np.zeros(n_samples - length)]))


def test_nothing_readable_raises_even_when_every_sample_may_be_bad(tmp_path):
    write_csv(tmp_path / "meta.csv", ["fname", "description", "title"], [("a.wav", "", "")])
    with pytest.raises(DataQualityError, match="no readable sample"):
        list(iter_audio_text(tmp_path / "meta.csv", tmp_path, max_bad_fraction=1.0))


def test_metadata_rows_and_argument_checks(tmp_path):
    (tmp_path / "m.jsonl").write_text('{"fname": "a", "n": 3}\n\n{"fname": "b"}\n')
    assert read_metadata_rows(tmp_path / "m.jsonl", ("fname",)) == [{"fname": "a", "n": "3"},
                                                                     {"fname": "b", "n": None}]
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ValueError, match="suffix '.txt'"):
        read_metadata_rows(tmp_path / "m.txt", ())
    (tmp_path / "bad.json").write_bytes(b'[{"a": "\xff"}]')
    with pytest.raises(ValueError, match="bad.json is not valid UTF-8 JSON"):
        read_metadata_rows(tmp_path / "bad.json", ())
    with pytest.raises(ValueError, match="caption_columns"):
        iter_audio_text(tmp_path / "m.jsonl", tmp_path, caption_columns="description")
    with pytest.raises(ValueError, match="crop"):
        iter_audio_text(tmp_path / "m.jsonl", tmp_path, crop="random")
    with pytest.raises(ValueError, match="duration_s"):
        iter_audio_text(tmp_path / "m.jsonl", tmp_path, duration_s=0)


def test_report_examples_are_bounded_and_printable():
    report = ReadReport(max_examples=2)
    for key in ("a", "b\udcff", "c"):  # "\udcff": a byte that was not UTF-8, kept as a surrogate escape
        report.add_bad("meta.csv", key, CAPTION_EMPTY)
    report.add_good("meta.csv")
    assert report.examples[CAPTION_EMPTY] == ["a @ meta.csv", "b\\udcff @ meta.csv"]
    report.summary().encode("utf-8")  # loggable: no lone surrogate left
    assert (report.n_bad, report.n_total, report.bad_fraction) == (3, 4, 0.75)
