"""Frozen open_clip encoders: loading, token features, input handling, CLIP pre-training."""

import os
import subprocess
import sys

import open_clip
import pytest
import torch
import torch.nn.functional as F
from fixtures import per_tensor_adamw
from safetensors.torch import load_file

from bacl.encoders import PAPER_SCALE_MODEL, load_encoder
from bacl.pretrain import pretrain_clip

TINY = "bacl-tiny-image"
COLOURS = {
    "red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30),
    "purple": (140, 40, 170), "orange": (250, 140, 20), "white": (245, 245, 245), "black": (10, 10, 10),
}


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(TINY, None)


def random_images(n, size=64, seed=0):
    return torch.randint(0, 256, (n, size, size, 3), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def coloured_squares(n, seed=0):
    """Grey 64 px images with one square of a colour; caption 'a <colour> square'."""
    g = torch.Generator().manual_seed(seed)
    images = torch.full((n, 64, 64, 3), 128, dtype=torch.uint8)
    names = list(COLOURS)
    for i in range(n):
        y, x = torch.randint(0, 40, (2,), generator=g).tolist()
        side = int(torch.randint(12, 24, (1,), generator=g))
        images[i, y:y + side, x:x + side] = torch.tensor(COLOURS[names[i % len(names)]], dtype=torch.uint8)
    return images, [f"a {names[i % len(names)]} square" for i in range(n)]


def test_shipped_configs_are_registered():
    assert {"bacl-tiny-image", "bacl-tiny-audio"} <= set(open_clip.list_models())


def test_missing_paper_scale_weights_name_the_file_and_the_config_key(tmp_path):
    missing = tmp_path / "ViT-B-16-laion2b.safetensors"
    with pytest.raises(FileNotFoundError) as error:
        load_encoder(PAPER_SCALE_MODEL, str(missing))
    assert str(missing) in str(error.value) and "encoder.pretrained" in str(error.value)


def test_torch_checkpoint_with_state_dict_loads(encoder, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": encoder.model.state_dict(), "epoch": 3}, path)
    assert load_encoder(TINY, str(path)).weights_id == encoder.weights_id  # the seeded init, round-tripped


def test_unknown_model_name_is_a_value_error():
    with pytest.raises(ValueError, match="not a registered open_clip model"):
        load_encoder("no-such-model", None)


def test_encoder_is_frozen(encoder):
    assert not encoder.model.training
    assert not any(p.requires_grad for p in encoder.model.parameters())


def test_image_features_are_open_clips_own(encoder):
    images = random_images(6)
    features = encoder.encode_images(images, batch_size=6)
    x = encoder.input_spec.images(images)
    assert features["global"].shape == (6, 128) and features["tokens"].shape == (6, 64, 128)
    assert features["token_mask"].dtype == torch.bool and features["token_mask"].all()
    assert torch.equal(features["global"], encoder.model.encode_image(x, normalize=True))
    encoder.model.visual.output_tokens = True  # open_clip's own token output, for comparison only
    try:
        _, tokens = encoder.model.visual(x)
    finally:
        encoder.model.visual.output_tokens = False
    assert torch.equal(features["tokens"], tokens)


def test_image_features_deterministic_and_batch_invariant(encoder):
    images = random_images(7, seed=1)
    a = encoder.encode_images(images, batch_size=7)
    assert torch.equal(a["global"], encoder.encode_images(images, batch_size=7)["global"])
    b = encoder.encode_images(images, batch_size=3)
    assert torch.allclose(a["tokens"], b["tokens"], atol=1e-5)


def test_prepared_float_input_and_resizing(encoder):
    images = random_images(3, size=64, seed=2)
    prepared = encoder.input_spec.images(images)
    assert torch.equal(encoder.encode_images(prepared)["global"], encoder.encode_images(images)["global"])
    large = random_images(2, size=96, seed=3)
    assert encoder.encode_images(large)["tokens"].shape == (2, 64, 128)
    with pytest.raises(ValueError, match="images must be uint8"):
        encoder.encode_images(torch.rand(2, 3, 32, 32))


def test_token_layer_picks_a_block_with_the_final_norm(encoder):
    images = random_images(3, seed=6)
    every = encoder.encode_all_layers(images, "image", batch_size=2)
    assert encoder.num_layers == {"image": 4, "text": 3} and every["tokens"].shape == (3, 4, 64, 128)
    assert torch.equal(every["global"], encoder.encode_images(images)["global"])
    x = encoder.input_spec.images(images)
    block2 = encoder.model.visual.forward_intermediates(x, indices=[1], output_fmt="NLC")["image_intermediates"][0]
    tokens = encoder.encode_images(images, layer=2)["tokens"]
    assert torch.allclose(tokens, encoder.model.visual.ln_post(block2), atol=1e-6)
    assert torch.equal(tokens.half(), every["tokens"][:, 1])
    assert torch.equal(encoder.encode_images(images, layer=4)["tokens"], encoder.encode_images(images)["tokens"])
    captions = ["a red square", "a small blue circle left of a green triangle"]
    text = encoder.encode_all_layers(captions, "text")
    assert torch.equal(encoder.encode_texts(captions, layer=1)["tokens"].half(), text["tokens"][:, 0])
    assert torch.equal(text["token_ids"], encoder.encode_texts(captions)["token_ids"])
    for bad in (0, 5, 2.0):
        with pytest.raises(ValueError, match="layer must be an int in"):
            encoder.encode_images(images, layer=bad)
    with pytest.raises(ValueError, match="layer must be an int in"):
        encoder.encode_texts(captions, layer=4)  # the text tower has 3 blocks
    with pytest.raises(ValueError, match="kind"):
        encoder.encode_all_layers(images, "video")


def test_text_features_mask_and_ids(encoder):
    captions = ["a red square", "a small blue circle left of a green triangle"]
    features = encoder.encode_texts(captions, batch_size=2)
    ids = open_clip.get_tokenizer(TINY)(captions)
    assert torch.equal(features["token_ids"], ids)
    assert torch.equal(features["token_mask"], ids != 0)
    assert features["tokens"].shape == (2, 32, 128)
    assert torch.equal(features["global"], encoder.model.encode_text(ids, normalize=True))


def test_overlong_caption_names_its_index_unless_truncated(encoder):
    captions = ["a red square", "a red square " * 20]
    with pytest.raises(ValueError, match=r"captions\[1\]"):
        encoder.encode_texts(captions)
    ids = encoder.encode_texts(captions, truncate=True)["token_ids"]
    assert ids[1, -1] == encoder.tokenizer.eot_token_id
    with pytest.raises(ValueError, match="captions"):
        encoder.encode_texts("a red square")


def test_video_global_is_the_normalised_mean_of_frame_embeddings(encoder):
    clips = random_images(6, seed=4).view(2, 3, 64, 64, 3)
    video = encoder.encode_video(clips, batch_size=2)
    frames = encoder.encode_images(clips.flatten(0, 1), batch_size=6)["global"].view(2, 3, -1)
    assert video["tokens"].shape == (2, 3, 128) and video["token_mask"].all()
    assert torch.allclose(video["tokens"], frames, atol=1e-6)
    assert torch.allclose(video["global"], F.normalize(frames.mean(1), dim=-1), atol=1e-6)


def test_audio_features_ignore_the_db_reference():
    audio = load_encoder("bacl-tiny-audio", None)
    log_mels = torch.randn(3, 40, 90, generator=torch.Generator().manual_seed(5))
    features = audio.encode_audio(log_mels, batch_size=3)
    assert features["global"].shape == (3, 128) and features["tokens"].shape == (3, 64, 128)
    shifted = audio.encode_audio(log_mels * 2 - 40, batch_size=3)  # another dB reference and scale
    assert torch.allclose(features["global"], shifted["global"], atol=1e-4)
    with pytest.raises(ValueError, match="log_mels"):
        audio.encode_audio(torch.randn(2, 40))


def test_pretrain_clip_aligns_colours_and_saves_a_loadable_checkpoint(tmp_path):
    images, captions = coloured_squares(64)
    out = tmp_path / "tiny.safetensors"
    metrics = pretrain_clip(
        TINY, images, captions, steps=40, batch_size=16, lr=1e-3, seed=0, out_path=out, progress=False
    )
    assert metrics["loss_final"] < 0.6 * metrics["loss_initial"]
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.safetensors"]  # no temp file left

    loaded = load_encoder(TINY, str(out))
    stored = load_file(out)
    assert all(torch.equal(stored[k], v) for k, v in loaded.model.state_dict().items())
    again = load_encoder(TINY, str(out))
    assert torch.equal(loaded.encode_images(images)["global"], again.encode_images(images)["global"])
    assert loaded.weights_id == again.weights_id != load_encoder(TINY, None).weights_id

    colour_text = loaded.encode_texts([f"a {c} square" for c in COLOURS])["global"]
    predicted = (loaded.encode_images(images)["global"] @ colour_text.T).argmax(1)
    assert (predicted == torch.arange(64) % len(COLOURS)).float().mean() >= 0.75


def test_pretrain_clip_is_a_function_of_its_seed(tmp_path):
    images, captions = coloured_squares(16)
    run = lambda seed, name: pretrain_clip(  # noqa: E731
        TINY, images, captions, steps=3, batch_size=8, lr=1e-3, seed=seed, out_path=tmp_path / name, progress=False
    )
    assert run(1, "a.safetensors")["losses"] == run(1, "b.safetensors")["losses"]
    a, b = load_file(tmp_path / "a.safetensors"), load_file(tmp_path / "b.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    run(2, "c.safetensors")
    assert not torch.equal(a["visual.proj"], load_file(tmp_path / "c.safetensors")["visual.proj"])


def test_pretrain_clip_with_the_multi_tensor_adamw_equals_the_per_tensor_loop(tmp_path, monkeypatch):
    images, captions = coloured_squares(16)
    run = lambda name: pretrain_clip(  # noqa: E731
        TINY, images, captions, steps=3, batch_size=8, lr=1e-3, seed=1, out_path=tmp_path / name, progress=False
    )
    foreach = run("foreach.safetensors")
    monkeypatch.setattr("bacl.pretrain.warmup_cosine_adamw", per_tensor_adamw)
    assert run("loop.safetensors")["losses"] == foreach["losses"]
    a, b = load_file(tmp_path / "foreach.safetensors"), load_file(tmp_path / "loop.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"out_path": "model.pt"}, "out_path"),
        ({"batch_size": 17}, "batch_size"),
        ({"captions": ["a red square"] * 3}, "captions has 3"),
        ({"steps": 0}, "steps"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_pretrain_clip_rejects_bad_arguments(tmp_path, change, message):
    images, captions = coloured_squares(16)
    args = dict(
        images_or_inputs=images, captions=captions, steps=1, batch_size=8, lr=1e-3, seed=0, out_path="m.safetensors"
    )
    args.update(change)
    args["out_path"] = tmp_path / args["out_path"]
    with pytest.raises(ValueError, match=message):
        pretrain_clip(TINY, progress=False, **args)


def test_pretrain_clip_on_log_mels_gives_an_audio_encoder(tmp_path):
    log_mels = torch.randn(8, 64, 100, generator=torch.Generator().manual_seed(6))
    captions = [f"a {'low' if i % 2 else 'high'} tone" for i in range(8)]
    out = tmp_path / "audio.safetensors"
    pretrain_clip("bacl-tiny-audio", log_mels, captions, 2, 4, 1e-3, 0, out, progress=False, modality="audio")
    features = load_encoder("bacl-tiny-audio", str(out)).encode_audio(log_mels)
    assert features["global"].shape == (8, 128) and torch.isfinite(features["tokens"]).all()
    with pytest.raises(ValueError, match="log-mels"):
        pretrain_clip("bacl-tiny-audio", log_mels[0], captions, 2, 4, 1e-3, 0, out, progress=False, modality="audio")


def test_importing_bacl_keeps_the_hub_offline_and_a_callers_value_wins():
    """huggingface_hub reads HF_HUB_OFFLINE once, when imported: importing the package sets it, so
    any of its modules (bacl.encoders, bacl.pretrain) has it set before it imports open_clip."""
    probe = "import bacl, huggingface_hub.constants as c; print(c.HF_HUB_OFFLINE)"
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}  # conftest's
    unset = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    chosen = subprocess.run([sys.executable, "-c", probe], env={**env, "HF_HUB_OFFLINE": "0"},
                            capture_output=True, text=True, check=True)
    assert (unset.stdout.strip(), chosen.stdout.strip()) == ("True", "False")
