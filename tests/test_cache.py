"""Feature cache: keys, stale-cache refusal, extraction equal to a direct forward, atomic writes."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import bacl.data.cache as cache
from bacl.data.cache import cache_key, content_sha256, extract_and_cache, read_features, read_meta, write_features
from bacl.encoders import load_encoder

BASE = dict(
    encoder_name="bacl-tiny-image",
    weights_id="w" * 64,
    dataset_sha256="d" * 64,
    split="train",
    settings={"kind": "image", "truncate": False},
)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder("bacl-tiny-image", None)


def sample_tensors():
    return {
        "global": torch.randn(4, 8),
        "token_mask": torch.tensor([[True, False]] * 4),
        "token_ids": torch.arange(8).view(4, 2),
    }


@pytest.mark.parametrize(
    "field, other",
    [
        ("encoder_name", "ViT-B-16"),
        ("weights_id", "x" * 64),
        ("dataset_sha256", "e" * 64),
        ("split", "test"),
        ("settings", {"kind": "image", "truncate": True}),
        ("settings", {"kind": "image", "truncate": False, "batch_size": 64}),
    ],
)
def test_key_changes_when_any_input_changes(field, other):
    assert cache_key(**BASE) != cache_key(**{**BASE, field: other})


def test_key_is_stable_and_ignores_settings_order():
    reordered = {**BASE, "settings": {"truncate": False, "kind": "image"}}
    assert cache_key(**BASE) == cache_key(**reordered)
    with pytest.raises(ValueError, match="settings must be JSON"):
        cache_key(**{**BASE, "settings": {"x": object()}})
    with pytest.raises(ValueError, match="split"):
        cache_key(**{**BASE, "split": ""})


@given(st.lists(st.text(max_size=5), max_size=4), st.lists(st.text(max_size=5), max_size=4))
def test_content_hash_equal_iff_content_equal(a, b):
    assert (content_sha256(a) == content_sha256(b)) == (a == b)


def test_content_hash_sees_dtype_shape_and_file_content(tmp_path):
    x = torch.zeros(2, 3)
    assert content_sha256(x) != content_sha256(x.view(3, 2))
    assert content_sha256(x) != content_sha256(x.double())
    assert content_sha256(x) == content_sha256(x.clone())
    assert content_sha256(np.zeros((2, 3), np.float32)) != content_sha256(x)  # typed: array vs tensor
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"abc")
    second.write_bytes(b"abc")
    assert content_sha256(first) == content_sha256(second)
    second.write_bytes(b"abd")
    assert content_sha256(first) != content_sha256(second)


def test_write_read_roundtrip(tmp_path):
    tensors = sample_tensors()
    out = write_features(tmp_path / "k1", tensors, {"encoder": "tiny", "count": 4}, key="k1")
    back = read_features(out, "k1")
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors)
    assert read_meta(out) == {"encoder": "tiny", "count": 4, "key": "k1", "format": cache.CACHE_FORMAT}


def test_stale_cache_is_refused_naming_both_keys(tmp_path):
    write_features(tmp_path / "c", sample_tensors(), {}, key="old-key")
    with pytest.raises(ValueError, match="old-key.*new-key"):
        read_features(tmp_path / "c", "new-key")
    with pytest.raises(FileNotFoundError):
        read_features(tmp_path / "absent", "new-key")


def test_interrupted_write_leaves_no_partial_directory(tmp_path, monkeypatch):
    def save_then_fail(tensors, path, metadata):
        path.write_bytes(b"partial")
        raise KeyboardInterrupt  # an interrupt, not only an Exception, must clean up

    monkeypatch.setattr(cache, "save_file", save_then_fail)
    with pytest.raises(KeyboardInterrupt):
        write_features(tmp_path / "new", sample_tensors(), {}, key="k")
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_the_old_cache(tmp_path, monkeypatch):
    tensors = sample_tensors()
    write_features(tmp_path / "c", tensors, {}, key="k")
    monkeypatch.setattr(cache, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_features(tmp_path / "c", {"global": torch.ones(1)}, {}, key="k2")
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    assert torch.equal(read_features(tmp_path / "c", "k")["global"], tensors["global"])


def test_rewrite_replaces_the_cache(tmp_path):
    write_features(tmp_path / "c", sample_tensors(), {}, key="k")
    write_features(tmp_path / "c", {"global": torch.ones(2)}, {}, key="k2")
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    assert torch.equal(read_features(tmp_path / "c", "k2")["global"], torch.ones(2))


def test_bad_tensors_and_meta_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="tensors"):
        write_features(tmp_path / "c", {}, {}, key="k")
    with pytest.raises(ValueError, match="meta"):
        write_features(tmp_path / "c", sample_tensors(), {"x": object()}, key="k")


def test_extracted_images_equal_a_direct_forward_and_are_read_back(encoder, tmp_path, monkeypatch):
    images = torch.randint(0, 256, (5, 64, 64, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    key = cache_key("bacl-tiny-image", encoder.weights_id, content_sha256(images), "train", {"kind": "image"})
    features = extract_and_cache(encoder, images, "image", tmp_path / key, key, batch_size=5, progress=False)
    direct = encoder.model.encode_image(encoder.input_spec.images(images), normalize=True)
    assert torch.equal(features["global"], direct)
    assert read_meta(tmp_path / key)["weights_id"] == encoder.weights_id

    monkeypatch.setattr(encoder, "encode_images", lambda *a, **k: pytest.fail("cache was not used"))
    again = extract_and_cache(encoder, images, "image", tmp_path / key, key, batch_size=5, progress=False)
    assert all(torch.equal(again[k], features[k]) for k in features)
    with pytest.raises(ValueError, match="stale"):
        extract_and_cache(encoder, images, "image", tmp_path / key, "another-key", batch_size=5, progress=False)


def test_extracted_texts_equal_a_direct_forward(encoder, tmp_path):
    captions = ["a red square", "two blue circles"]
    features = extract_and_cache(
        encoder, captions, "text", tmp_path / "t", "t", batch_size=2, progress=False, truncate=True
    )
    cached = read_features(tmp_path / "t", "t")
    ids = encoder.tokenizer(captions)
    assert torch.equal(cached["global"], encoder.model.encode_text(ids, normalize=True))
    assert torch.equal(cached["token_ids"], ids) and torch.equal(cached["token_mask"], features["token_mask"])
    with pytest.raises(ValueError, match="kind"):
        extract_and_cache(encoder, captions, "smell", tmp_path / "s", "s", batch_size=2)


def test_feature_sets_keep_the_configured_block_in_its_own_cache_entry(encoder, tmp_path):
    from bacl.data.features import synthetic_feature_set
    from bacl.data.synthetic import generate_split

    dataset = generate_split("image", {"n_train": 3}, "train")
    last, meta = synthetic_feature_set(dataset, {"image": encoder}, tmp_path, batch_size=4, progress=False)
    second, meta2 = synthetic_feature_set(dataset, {"image": encoder}, tmp_path, batch_size=4, progress=False,
                                          layers={"image": 2})
    assert meta["token_layers"] == {"image": 4, "text": 3} and meta2["token_layers"] == {"image": 2, "text": 3}
    assert torch.equal(second["x_tokens"], encoder.encode_images(dataset.images, layer=2)["tokens"].half())
    assert not torch.equal(second["x_tokens"], last["x_tokens"]) and torch.equal(second["x"], last["x"])
    assert torch.equal(second["text_tokens"], last["text_tokens"])  # texts keep the last block
    first_text, _ = synthetic_feature_set(dataset, {"image": encoder}, tmp_path, batch_size=4, progress=False,
                                          layers={"text": 1})
    length = first_text["text_tokens"].shape[1]
    expected = encoder.encode_texts(list(dataset.captions), layer=1)["tokens"][:, :length].half()
    assert torch.equal(first_text["text_tokens"], expected) and torch.equal(first_text["x_tokens"], last["x_tokens"])
    assert not torch.equal(first_text["negative_text_tokens"], last["negative_text_tokens"])
    with pytest.raises(ValueError, match="towers"):
        synthetic_feature_set(dataset, {"image": encoder}, tmp_path, layers={"video": 2})


def test_feature_sets_carry_the_sibling_groups(encoder, tmp_path):
    from bacl.data.features import NEGATIVE_TYPES, synthetic_feature_set
    from bacl.data.synthetic import generate_split
    from bacl.featureset import FeatureSet

    dataset = generate_split("image", {"n_train": 8}, "train")
    tensors, meta = synthetic_feature_set(dataset, {"image": encoder}, tmp_path, batch_size=8, progress=False)
    assert tensors["group"].tolist() == list(dataset.groups) and meta["num_groups"] == dataset.num_groups == 2
    for row, sample in enumerate(dataset.siblings):
        stored = [(i, NEGATIVE_TYPES[t]) for i, t in zip(tensors["sibling_index"][row].tolist(),
                                                        tensors["sibling_type"][row].tolist()) if i >= 0]
        assert stored == [(record["index"], record["type"]) for record in sample]
        assert all(tensors["group"][i] == tensors["group"][row] for i, _ in stored)
    FeatureSet(tensors, meta)  # valid as written
    # token ids beside the token features, trimmed alike: what CLA's token alignment reads
    length = tensors["text_tokens"].shape[1]
    assert torch.equal(tensors["text_token_ids"], encoder.tokenizer(list(dataset.captions))[:, :length])
    assert torch.equal(tensors["text_token_ids"] != 0, tensors["text_token_mask"])
    first = dataset.negatives[0][0]["caption"]
    assert torch.equal(tensors["negative_text_token_ids"][0, 0], encoder.tokenizer([first])[0, :length])
    broken = {**tensors, "sibling_index": tensors["sibling_index"].clone().fill_(8)}
    with pytest.raises(ValueError, match="sibling_index"):
        FeatureSet(broken, meta)
