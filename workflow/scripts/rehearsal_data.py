"""Tiny data in the paper-scale formats, for the rehearsal of the gpu DAG (workflow/config/rehearsal.yaml).

Not a Snakemake script: run it once by hand (it takes seconds), then the rehearsal::

    python workflow/scripts/rehearsal_data.py                # writes results/rehearsal/input/
    snakemake --cores all --configfile workflow/config/rehearsal.yaml

It writes, under OUT, what gpu.yaml reads from /data/bacl/, in the same layouts:

* ``weights/tower.safetensors``: a seeded random initialisation of ``bacl-rehearsal-vit``, a small
  open_clip tower standing in for ViT-B-16 (its widths relate as ViT-B-16's do: 96-wide patch
  tokens, 64-wide embeddings and caption tokens, a 77-token context);
* ``laion/{train,test}/NNNNN.tar``: img2dataset-style webdataset shards (``jpg``, ``txt``, ``json``);
* ``webvid/``: WebVid's CSV columns and ``videos/<page_dir>/<videoid>.mp4`` clips (no sound);
* ``wavtext5k/``: WavText5K's CSV columns and ``audio/<fname>`` WAVs (22.05 kHz, resampled by the reader);
* ``vast27m/``: VAST-27M-style JSON annotations (``clip_id``, ``vision_cap``, ``audio_cap``,
  ``vast_cap``) and ``videos/<clip_id>.mp4`` clips with an AAC stereo sound track.

Each sample's picture and sound follow its caption (a colour, a direction, a pitch), so the heads
have something to learn, but nothing here is a benchmark: the rehearsal checks that every stage
runs on real formats, not what the numbers are. :func:`data_section` is the config's ``data``
section for a given OUT (rehearsal.yaml holds it for the default OUT; a test keeps them equal).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_OUT = "results/rehearsal/input"
TOWER = "bacl-rehearsal-vit"
SIZES = {"train": 16, "test": 8}  # clips per split (image pairs: twice as many); a batch of 8 fits
COLOURS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 200), "yellow": (220, 200, 40),
           "purple": (140, 50, 160), "white": (235, 235, 235)}
PITCHES = {"low": 220.0, "middle": 440.0, "high": 880.0}
DIRECTIONS = ("left", "right")
THINGS = ("square", "field")
FRAME_SIZE = (48, 64)  # (height, width): not square, so the reader's resize and crop both act
FPS, CLIP_SECONDS, AUDIO_RATE = 8, 2.0, 22050


def weights_path(out: str | Path) -> Path:
    return Path(out) / "weights" / "tower.safetensors"


def data_section(out: str | Path) -> dict:
    """The ``data`` section of a config reading the files this script writes under ``out``."""
    out = Path(out)
    return {
        "image_text": {"source": "webdataset", "splits": {
            "train": {"shards": str(out / "laion/train/{00000..00001}.tar")},
            "test": {"shards": str(out / "laion/test/{00000..00000}.tar")}}},
        "video_text": {"source": "video", "root": str(out / "webvid/videos"), "splits": {
            "train": {"metadata": str(out / "webvid/results_train.csv")},
            "test": {"metadata": str(out / "webvid/results_val.csv")}}},
        "audio_text": {"source": "audio", "root": str(out / "wavtext5k/audio"), "splits": {
            "train": {"metadata": str(out / "wavtext5k/train.csv")},
            "test": {"metadata": str(out / "wavtext5k/test.csv")}}},
        "audio_video_text": {"source": "audio_video", "root": str(out / "vast27m/videos"), "splits": {
            "train": {"metadata": str(out / "vast27m/train.json")},
            "test": {"metadata": str(out / "vast27m/test.json")}}},
    }


def _pixels(rng: np.random.Generator, colour: str, shape: tuple[int, int]) -> np.ndarray:
    base = np.array(COLOURS[colour], dtype=np.float32)
    return np.clip(base + rng.normal(0, 12, (*shape, 3)), 0, 255).astype(np.uint8)


def _moving_frames(rng, colour: str, direction: str, n: int) -> list[np.ndarray]:
    """A coloured block crossing a grey canvas in ``direction``."""
    height, width = FRAME_SIZE
    frames = []
    for index in range(n):
        frame = np.clip(128 + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)
        left = round((index / max(1, n - 1)) * (width - 16))
        left = left if direction == "right" else width - 16 - left
        frame[16:32, left:left + 16] = COLOURS[colour]
        frames.append(frame)
    return frames


def _tone(pitch: str, rate: int, seconds: float, channels: int) -> np.ndarray:
    """float32 (channels, samples): a sine at ``pitch`` with a little level difference per channel."""
    t = np.arange(round(rate * seconds)) / rate
    wave = 0.3 * np.sin(2 * np.pi * PITCHES[pitch] * t)
    return np.stack([wave * (1.0 - 0.2 * c) for c in range(channels)]).astype(np.float32)


def write_mp4(path: Path, frames: list[np.ndarray], sound: np.ndarray | None) -> None:
    """An mp4 with an MPEG-4 video stream and, with ``sound`` (channels, samples), an AAC track."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=FPS)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        audio = None
        if sound is not None:
            audio = container.add_stream("aac", rate=AUDIO_RATE)
            audio.layout = "stereo" if len(sound) == 2 else "mono"
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        if audio is not None:
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound), format="fltp", layout=audio.layout.name)
            chunk.sample_rate = AUDIO_RATE
            container.mux(audio.encode(chunk))
            container.mux(audio.encode())


def _table(path: Path, header: list[str], rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])


def write_image_text(out: Path, rng) -> None:
    import webdataset as wds
    from PIL import Image

    for split, n in SIZES.items():
        folder = out / "laion" / split
        folder.mkdir(parents=True, exist_ok=True)
        with wds.ShardWriter(str(folder / "%05d.tar"), maxcount=SIZES["train"], mtime=0, verbose=0) as writer:
            for i in range(2 * n):  # 12 colour-thing pairs repeat: identical captions share a caption_id
                colour, thing = list(COLOURS)[i % len(COLOURS)], THINGS[(i // len(COLOURS)) % len(THINGS)]
                buffer = io.BytesIO()
                Image.fromarray(_pixels(rng, colour, (40 + 4 * (i % 5), 56))).save(buffer, format="JPEG", quality=90)
                writer.write({"__key__": f"{split}{i:06d}", "jpg": buffer.getvalue(),
                              "txt": f"a photo of a {colour} {thing}", "json": json.dumps({"key": f"{i:09d}"})})


def write_video_text(out: Path, rng) -> None:
    for split, n in SIZES.items():
        rows = []
        for i in range(n):
            colour, direction = list(COLOURS)[i % len(COLOURS)], DIRECTIONS[(i // len(COLOURS)) % 2]
            videoid = f"{split}{i:04d}"
            write_mp4(out / "webvid/videos/page0" / f"{videoid}.mp4", _moving_frames(rng, colour, direction, 16), None)
            rows.append((videoid, f"https://example.invalid/{videoid}.mp4", "PT00H00M02S", "page0",
                         f"a {colour} block moving {direction}"))
        name = "results_train.csv" if split == "train" else "results_val.csv"
        _table(out / "webvid" / name, ["videoid", "contentUrl", "duration", "page_dir", "name"], rows)


def write_audio_text(out: Path) -> None:
    import soundfile as sf

    (out / "wavtext5k/audio").mkdir(parents=True, exist_ok=True)
    for split, n in SIZES.items():
        rows = []
        for i in range(n):
            pitch = list(PITCHES)[i % len(PITCHES)]
            fname = f"{split}{i:04d}.wav"
            sf.write(out / "wavtext5k/audio" / fname, _tone(pitch, AUDIO_RATE, 3.0, 1)[0], AUDIO_RATE)
            # WavText5K leaves many descriptions blank: then the title is the caption.
            description = "" if i % 4 == 3 else f"a {pitch} tone ringing, take {i // len(PITCHES)}"
            rows.append((f"https://example.invalid/{fname}", "", f"{pitch} tone", description, fname, "tone"))
        _table(out / "wavtext5k" / f"{split}.csv",
               ["view_link", "download_link", "title", "description", "fname", "tags"], rows)


def write_audio_video_text(out: Path, rng) -> None:
    for split, n in SIZES.items():
        records = []
        for i in range(n):
            colour, pitch = list(COLOURS)[i % len(COLOURS)], list(PITCHES)[(i // 2) % len(PITCHES)]
            direction = DIRECTIONS[i % 2]
            clip_id = f"{split}-{i:04d}"
            write_mp4(out / "vast27m/videos" / f"{clip_id}.mp4", _moving_frames(rng, colour, direction, 16),
                      _tone(pitch, AUDIO_RATE, CLIP_SECONDS, 2))
            records.append({"clip_id": clip_id, "vision_cap": [f"a {colour} block moving {direction}"],
                            "audio_cap": [f"a {pitch} tone"], "subtitle": "",
                            "vast_cap": f"a {colour} block moves {direction} while a {pitch} tone plays"})
        (out / "vast27m").mkdir(parents=True, exist_ok=True)
        (out / "vast27m" / f"{split}.json").write_text(json.dumps(records, indent=1))


def write_weights(out: Path) -> None:
    from safetensors.torch import save_file

    from bacl.encoders import load_encoder

    path = weights_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = load_encoder(TOWER, None, init_seed=0).model.state_dict()
    save_file({name: tensor.contiguous() for name, tensor in state.items()}, str(path))


def write_all(out: str | Path, seed: int = 0) -> Path:
    """Every file of the rehearsal under ``out`` (see the module docstring); returns ``out``."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    write_weights(out)
    write_image_text(out, rng)
    write_video_text(out, rng)
    write_audio_text(out)
    write_audio_video_text(out, rng)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python workflow/scripts/rehearsal_data.py",
        description="Write tiny data in the paper-scale formats (and random stand-in weights) for "
                    "workflow/config/rehearsal.yaml, which reads them from the default OUT.")
    parser.add_argument("out", nargs="?", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    print(f"wrote {write_all(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
