"""Bad input at the library boundaries that have no CLI (issue #7): the real-data readers, the
feature cache and the encoder loader raise their documented exception, naming the bad sample, file
or key, and write nothing. The CLI's table, and what "writes nothing" means: test_robustness.py.
"""

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import webdataset as wds
from fixtures import PicklePayload, file_tree
from PIL import Image

TINY = "bacl-tiny-image"


@pytest.fixture(scope="module")
def encoder():
    from bacl.encoders import load_encoder

    return load_encoder(TINY, None)


def garbage(d: Path, name: str) -> Path:
    (d / name).write_bytes(b"\x00garbage, not what the name says\xff" * 8)
    return d / name


def png(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def shard_reader(d, encoder, corrupt_member: bool):
    from bacl.data.readers_webdataset import iter_image_text_shards

    samples = [{"__key__": f"k{i}", "png": png(i), "txt": f"caption {i}"} for i in range(4)]
    if corrupt_member:
        samples[2]["png"] = samples[2]["png"][:40]  # a cut-off image
    with wds.ShardWriter(str(d / "shard-%06d.tar"), maxcount=100, mtime=0, verbose=0) as writer:
        for sample in samples:
            writer.write(sample)
    path = d / "shard-000000.tar"
    if not corrupt_member:  # cut the tar itself inside the third sample
        data = path.read_bytes()
        path.write_bytes(data[:data.index(b"k2.png") + 700])
    return lambda: list(iter_image_text_shards(str(path), max_bad_fraction=0.0))


def audio_reader(d, encoder):
    from bacl.data.readers_audio import iter_audio_text

    (d / "clips").mkdir()
    sf.write(d / "clips" / "tone.wav", np.sin(np.arange(1600) / 5).astype(np.float32), 16000)
    (d / "clips" / "broken.wav").write_bytes(b"RIFF\x00\x00 not audio")
    (d / "meta.csv").write_text("fname,title,description\ntone.wav,,a tone\nbroken.wav,,a broken tone\n")
    return lambda: list(iter_audio_text(d / "meta.csv", d / "clips", duration_s=0.1, max_bad_fraction=0.0))


def cache_call(d, encoder, inputs, kind, key="k" * 64):
    from bacl.data.cache import extract_and_cache

    return lambda: extract_and_cache(encoder, inputs, kind, d / "cache", key, batch_size=4, progress=False)


def cache_of_another_encoder(d, encoder):
    """A cache folder holding the audio encoder's captions, asked for the image encoder's."""
    from bacl.data.cache import cache_key, write_features

    settings = {"kind": "text", "role": "caption", "batch_size": 4}
    theirs = cache_key("bacl-tiny-audio", "f" * 64, "d" * 64, "test", settings)
    write_features(d / "cache", {"global": torch.zeros(2, 4)}, {"encoder": "bacl-tiny-audio"}, theirs)
    mine = cache_key(encoder.name, encoder.weights_id, "d" * 64, "test", settings)
    return cache_call(d, encoder, ["a red square", "a blue circle"], "text", key=mine)


def encoder_weights(d, encoder, kind: str):
    from safetensors.torch import save_file

    from bacl.encoders import load_encoder

    path = d / {"missing": "absent.safetensors", "corrupt": "tiny.safetensors", "other_model": "audio.safetensors",
                "pickled": "tiny.pt"}[kind]
    if kind == "corrupt":
        garbage(d, path.name)
    elif kind == "other_model":
        state = load_encoder("bacl-tiny-audio", None).model.state_dict()
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif kind == "pickled":
        torch.save({"state_dict": PicklePayload(d / "ran")}, path)
    return lambda: load_encoder(TINY, str(path))


# Each case: (prepare: (case folder, encoder) -> the one public call, as a function of no
# arguments; the exception it must raise; the names its message must contain, given the folder).
LIBRARY_CASES = {
    "shard_image_corrupt": (lambda d, e: shard_reader(d, e, corrupt_member=True), "DataQualityError",
                            lambda d: ["k2", "shard-000000.tar", "image undecodable"]),
    "shard_truncated": (lambda d, e: shard_reader(d, e, corrupt_member=False), "DataQualityError",
                        lambda d: ["shard-000000.tar", "truncated"]),  # also test_readers
    "audio_clip_corrupt": (audio_reader, "DataQualityError", lambda d: ["broken.wav", "meta.csv"]),
    "caption_over_context": (lambda d, e: cache_call(d, e, ["a red square", "a red square " * 20], "text"),
                             "ValueError", lambda d: ["captions[1]", "context_length=32"]),
    "log_mels_nan": (lambda d, e: cache_call(d, e, np.full((2, 64, 128), np.nan, np.float32), "audio"),
                     "ValueError", lambda d: ["log_mels", "NaN"]),
    "cache_of_another_encoder": (cache_of_another_encoder, "ValueError", lambda d: ["stale", str(d / "cache")]),
    "encoder_weights_missing": (lambda d, e: encoder_weights(d, e, "missing"), "FileNotFoundError",
                                lambda d: [str(d / "absent.safetensors"), "encoder.pretrained"]),
    "encoder_weights_corrupt": (lambda d, e: encoder_weights(d, e, "corrupt"), "ValueError",
                                lambda d: [str(d / "tiny.safetensors")]),
    "encoder_weights_of_another_model": (lambda d, e: encoder_weights(d, e, "other_model"), "ValueError",
                                         lambda d: [str(d / "audio.safetensors"), "bacl-tiny-image"]),
    "encoder_weights_pickled_object": (lambda d, e: encoder_weights(d, e, "pickled"), "ValueError",
                                       lambda d: [str(d / "tiny.pt"), "never unpickled"]),
}


@pytest.mark.parametrize("case", sorted(LIBRARY_CASES))
def test_bad_library_input_raises_naming_it_and_writes_nothing(case, encoder, tmp_path):
    prepare, error_type, names = LIBRARY_CASES[case]
    call = prepare(tmp_path, encoder)
    before = file_tree(tmp_path)
    with pytest.raises(Exception) as raised:
        call()
    assert type(raised.value).__name__ == error_type, repr(raised.value)
    for name in names(tmp_path):
        assert name in str(raised.value), f"{name!r} not in {raised.value}"
    assert file_tree(tmp_path) == before, "the refused call wrote, changed or deleted files"
    assert not (tmp_path / "ran").exists(), "a pickled payload was executed"
