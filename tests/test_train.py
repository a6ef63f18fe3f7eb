"""The training loop: settings, batch order, logging, resuming (in-process and after SIGKILL), and
two-process data-parallel training against one process on the same global batch."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import hypothesis
from hypothesis import given
from hypothesis import strategies as st
from fixtures import (
    latent_features,
    per_tensor_adamw,
    tiny_config,
    train_args,
    write_config,
    write_feature_file,
)
from safetensors.torch import load_file, save_file

from bacl.aligners import CLIPAligner, build_aligner
from bacl.cli import main
from bacl.config import method_settings, validate_config
from bacl.featureset import FeatureSet
from bacl.train import (
    CHECKPOINT,
    FINAL_WEIGHTS,
    METRICS_LOG,
    TrainSettings,
    batch_indices,
    step_generator,
    train,
    warmup_cosine_adamw,
)

METHODS = {
    "clip": {"aligner": "clip"},
    "blip": {"aligner": "blip"},  # similarity-drawn ITM negatives: random draws every step
    "m3jepa": {"aligner": "m3jepa", "options": {"num_experts": 4, "top_k": 2}},
    "clip_bacl": {"aligner": "clip", "bns": True, "cla": True},  # Gumbel draws every step
    "clip_bns": {"aligner": "clip", "bns": True},
}
SETTINGS = TrainSettings(steps=12, batch_size=16, lr=3e-3, checkpoint_every=5, log_every=2)


def make_aligner(method: str, dims, seed: int = 0):
    settings = method_settings(validate_config(tiny_config(METHODS)), method)
    torch.manual_seed(seed)
    return build_aligner(settings["spec"], dims, bacl=settings["bacl"], transformer=settings["transformer"])


def assert_same_run(dir_a: Path, dir_b: Path, atol: float = 0.0):
    """Bit-identical (or, with atol, close) final weights; identical metrics log when exact."""
    weights_a, weights_b = load_file(str(dir_a / FINAL_WEIGHTS)), load_file(str(dir_b / FINAL_WEIGHTS))
    assert set(weights_a) == set(weights_b)
    for name in weights_a:
        if atol == 0.0:
            assert torch.equal(weights_a[name], weights_b[name]), name
        else:
            torch.testing.assert_close(weights_a[name], weights_b[name], atol=atol, rtol=0, msg=name)
    if atol == 0.0:
        assert (dir_a / METRICS_LOG).read_text() == (dir_b / METRICS_LOG).read_text()


def test_feature_file_round_trip(tmp_path):
    features = latent_features(24, modalities=True)
    loaded = FeatureSet.load(write_feature_file(tmp_path / "split.safetensors", features))
    assert loaded.meta == features.meta and loaded.source == str(tmp_path / "split.safetensors")
    assert set(loaded.tensors) == set(features.tensors)
    for name, tensor in features.tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
    assert loaded.modality_names == ("audio", "video") and loaded.dims == features.dims
    save_file({"x": torch.zeros(2, 3), "text": torch.zeros(2, 3), "caption_id": torch.arange(2)},
              str(tmp_path / "bare.safetensors"))
    assert FeatureSet.load(tmp_path / "bare.safetensors").meta == {}
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        FeatureSet.load(tmp_path / "absent.safetensors")


def test_pools_from_a_second_file_join_the_split(tmp_path):
    features = latent_features(24)
    pools = {name: features[name] for name in ("text_neighbours", "x_neighbours")}
    FeatureSet.write(tmp_path / "split.safetensors", {k: v for k, v in features.tensors.items() if k not in pools},
                     features.meta)
    FeatureSet.write(tmp_path / "pools.safetensors", pools, {"pool": 8})
    loaded = FeatureSet.load(tmp_path / "split.safetensors", tmp_path / "pools.safetensors")
    assert torch.equal(loaded["text_neighbours"], features["text_neighbours"])
    assert loaded.meta == {**features.meta, "pool": 8}


def test_feature_set_names_bad_tensors():
    good = {"x": torch.zeros(3, 2), "text": torch.zeros(3, 2), "caption_id": torch.arange(3)}
    with pytest.raises(ValueError, match="caption_id"):
        FeatureSet({k: v for k, v in good.items() if k != "caption_id"})
    with pytest.raises(ValueError, match="text"):
        FeatureSet({**good, "text": torch.zeros(4, 2)})
    with pytest.raises(ValueError, match="x_tokens"):
        FeatureSet({**good, "x_tokens": torch.full((3, 2, 2), float("nan"))})


def test_batch_gathers_the_candidate_pools():
    features = latent_features(24)
    rows = torch.tensor([3, 0, 7])
    batch = features.batch(rows, candidates=True, pool_size=5)
    assert batch.candidate_text.shape == (3, 5) and batch.candidate_x.shape == (3, 5)
    # the pools are rows of the feature set's own tensors, not copies of them
    assert batch.candidate_text.features is features["text"] and batch.candidate_x.features is features["x"]
    assert batch.candidate_text.tokens_store is features["text_tokens"]
    embedded = batch.candidate_text.embeddings()
    assert embedded.shape == (3, 5, 16) and embedded.dtype == torch.float32
    torch.testing.assert_close(embedded[1, 2], features["text"][features["text_neighbours"][0, 2]], rtol=0, atol=0)
    torch.testing.assert_close(batch.candidate_x.embeddings()[2], features["x"][features["x_neighbours"][7, :5]])
    # candidate tokens stay in the stored dtype (fp16 in the cache): the loss casts the ones it picks
    tokens, mask, ids = batch.candidate_text.tokens(torch.tensor([0, 2]), torch.tensor([4, 1]))
    neighbours = features["text_neighbours"][[3, 7], [4, 1]]
    assert tokens.dtype == features["text_tokens"].dtype
    assert torch.equal(tokens, features["text_tokens"][neighbours])
    assert torch.equal(mask, features["text_token_mask"][neighbours])
    assert features.batch(rows, candidates=True).candidate_text.shape[1] == 8  # all stored
    bare = FeatureSet({k: v for k, v in features.tensors.items() if not k.endswith("neighbours")})
    with pytest.raises(ValueError, match="neighbours"):
        bare.batch(rows, candidates=True)


def test_a_candidate_with_the_anchors_caption_is_never_admissible():
    """Rows 2i and 2i+1 share a caption: another clip of the anchor's caption in its pool (of
    either modality) is masked, the other candidates are admissible."""
    features = latent_features(24, duplicate_pairs=True)
    tensors = dict(features.tensors)
    for name in ("x_neighbours", "text_neighbours"):
        tensors[name] = tensors[name].clone()
        tensors[name][2, 1] = 3  # row 3 has row 2's caption
    batch = FeatureSet(tensors, features.meta).batch(torch.tensor([2, 5]), candidates=True, pool_size=4)
    expected = torch.ones(2, 4, dtype=torch.bool)
    expected[0, 1] = False
    assert torch.equal(batch.candidate_x.mask, expected) and torch.equal(batch.candidate_text.mask, expected)


@hypothesis.settings(max_examples=40, deadline=None)
@given(groups=st.lists(st.integers(0, 5), min_size=24, max_size=24), rows=st.lists(st.integers(0, 23), min_size=1,
       max_size=6), duplicate_pairs=st.booleans())
def test_pools_without_the_anchors_group_mask_exactly_its_group_on_top_of_its_caption(groups, rows, duplicate_pairs):
    features = latent_features(24, duplicate_pairs=duplicate_pairs)
    group = torch.tensor(groups)
    grouped = FeatureSet({**features.tensors, "group": group}, features.meta)
    index = torch.tensor(rows)
    control = grouped.batch(index, candidates=True, pool_size=6, exclude_group=True)
    caption = features["caption_id"]
    for pool, name in ((control.candidate_text, "text_neighbours"), (control.candidate_x, "x_neighbours")):
        candidates = features[name][index][:, :6]
        expected = (caption[candidates] != caption[index][:, None]) & (group[candidates] != group[index][:, None])
        assert torch.equal(pool.mask, expected)
    with pytest.raises(ValueError, match="group"):
        features.batch(index, candidates=True, exclude_group=True)  # no sibling groups stored


def test_the_group_control_refuses_a_method_without_pools_and_a_split_without_groups(tmp_path):
    features = latent_features(24)
    control = dataclasses.replace(SETTINGS, pool_excludes_group=True)
    with pytest.raises(ValueError, match="needs a method that reads candidate pools"):
        train(make_aligner("clip", features.dims), features, control, tmp_path / "clip")
    with pytest.raises(ValueError, match=r"no sibling groups \(group\)"):
        train(make_aligner("clip_bns", features.dims), features, control, tmp_path / "bns", progress=False)
    # Groups of 3 consecutive rows, each row's siblings the other two: the logged draws never hit them
    group = torch.arange(24) // 3
    siblings = torch.stack([torch.tensor([r for r in range(3 * (i // 3), 3 * (i // 3) + 3) if r != i])
                            for i in range(24)])
    grouped = FeatureSet({**features.tensors, "group": group, "sibling_index": siblings}, features.meta)
    asked, gather = [], grouped.batch
    grouped.batch = lambda *args, **kwargs: asked.append(kwargs["exclude_group"]) or gather(*args, **kwargs)
    summary = train(make_aligner("clip_bns", features.dims), grouped, control, tmp_path / "grouped", progress=False)
    assert summary["steps"] == SETTINGS.steps and asked == [True] * SETTINGS.steps  # every step's pools
    logged = [json.loads(line) for line in (tmp_path / "grouped" / METRICS_LOG).read_text().splitlines()]
    shares = [line["drawn_same_group"] for line in logged if "drawn_same_group" in line]
    assert shares and set(shares) == {0.0}


@pytest.mark.parametrize("field, value", [("steps", 0), ("batch_size", 2.0), ("checkpoint_every", True),
                                          ("log_every", -1), ("lr", 0.0), ("lr", float("nan")),
                                          ("warmup_fraction", 1.0)])
def test_settings_name_a_bad_value(field, value):
    with pytest.raises(ValueError, match=field):
        TrainSettings(**{"steps": 10, "batch_size": 4, field: value})


def test_batch_order_is_a_seeded_permutation_per_epoch():
    n, batch = 10, 3  # 3 full batches per epoch, the last row of each epoch's order dropped
    epoch = torch.cat([batch_indices(n, batch, seed=4, step=s) for s in range(3)])
    assert len(epoch) == 9 and len(set(epoch.tolist())) == 9
    assert torch.equal(batch_indices(n, batch, 4, 5), batch_indices(n, batch, 4, 5))
    assert not torch.equal(torch.cat([batch_indices(n, batch, 4, s) for s in range(3, 6)]), epoch)
    draws = [torch.rand(3, generator=step_generator(1, step)) for step in (0, 1, 0)]
    assert torch.equal(draws[0], draws[2]) and not torch.equal(draws[0], draws[1])


def test_log_checkpoint_and_weights(tmp_path):
    features = latent_features(48)
    summary = train(make_aligner("clip_bacl", features.dims), features, SETTINGS, tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / METRICS_LOG).read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12]
    # progress is the eta the logged step used (the one its alpha and drawn scores belong to)
    assert records[-1]["progress"] == (SETTINGS.steps - 1) / SETTINGS.steps and records[-1]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert {"alpha", "drawn_bs_mean", "policy_loss", "local_loss"} <= set(records[0])
    assert records[0]["alpha"] > 0 > records[-1]["alpha"]  # the curriculum: easy first, hard last
    assert torch.load(tmp_path / CHECKPOINT, weights_only=True)["step"] == SETTINGS.steps
    assert summary["resumed_from"] == 0 and summary["world_size"] == 1
    assert set(load_file(str(tmp_path / FINAL_WEIGHTS))) == set(make_aligner("clip_bacl", features.dims).state_dict())


def test_batch_larger_than_the_split_is_named(tmp_path):
    features = latent_features(12)
    with pytest.raises(ValueError, match="batch_size=16"):
        train(make_aligner("clip", features.dims), features, SETTINGS, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_a_non_finite_loss_stops_training(tmp_path):
    class Exploding(CLIPAligner):
        def loss(self, batch, progress, generator=None):
            return {"contrastive_loss": super().loss(batch, progress, generator)["contrastive_loss"] / 0.0}

    features = latent_features(24)
    with pytest.raises(FloatingPointError, match="step 0"):
        train(Exploding(features.dims), features, SETTINGS, tmp_path, progress=False)


@pytest.mark.parametrize("method", ["blip", "m3jepa", "clip_bacl"])
def test_stopped_and_resumed_run_equals_an_uninterrupted_one(method, tmp_path):
    features = latent_features(48)
    train(make_aligner(method, features.dims), features, SETTINGS, tmp_path / "whole", progress=False)
    partial = train(make_aligner(method, features.dims), features, SETTINGS, tmp_path / "resumed", progress=False,
                    stop_after=7)
    assert partial["resumed_from"] == 0 and not (tmp_path / "resumed" / FINAL_WEIGHTS).exists()
    # Lines logged after the checkpoint (a crash between log and checkpoint) must be dropped.
    with open(tmp_path / "resumed" / METRICS_LOG, "a") as log:
        log.write(json.dumps({"step": 8, "loss": 123.0}) + "\n")
    # A different initialisation: the resumed weights must come from the checkpoint.
    resumed = train(make_aligner(method, features.dims, seed=1), features, SETTINGS, tmp_path / "resumed",
                    progress=False)
    assert resumed["resumed_from"] == 7
    assert_same_run(tmp_path / "whole", tmp_path / "resumed")


@pytest.mark.parametrize("method", ["m3jepa", "clip_bacl"])
def test_multi_tensor_adamw_trains_bit_identically_to_the_per_tensor_loop(method, tmp_path, monkeypatch):
    """The optimizer updates every tensor in one multi-tensor call (foreach, for speed); the run is
    bit for bit the one torch's per-tensor loop (its CPU default) gives."""
    features = latent_features(48)
    optimizer, _ = warmup_cosine_adamw(make_aligner(method, features.dims).parameters(), 1e-3, 0.05, 10, 0.1)
    assert all(group["foreach"] for group in optimizer.param_groups)
    train(make_aligner(method, features.dims), features, SETTINGS, tmp_path / "foreach", progress=False)
    monkeypatch.setattr("bacl.train.warmup_cosine_adamw", per_tensor_adamw)
    train(make_aligner(method, features.dims), features, SETTINGS, tmp_path / "loop", progress=False)
    assert_same_run(tmp_path / "foreach", tmp_path / "loop")


def child_environment() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")  # bacl: the venv's editable install


@pytest.mark.slow
def test_run_killed_by_sigkill_resumes_to_the_same_weights(tmp_path):
    # Enough steps after the first checkpoint (225 of about 10 ms: 2 s, a thousand times the 5 ms
    # polling interval) that the run is still going when the kill comes.
    config = write_config(tmp_path / "config.yaml", tiny_config(
        METHODS, train={"steps": 250, "batch_size": 16, "lr": 3e-3, "checkpoint_every": 25, "log_every": 25}))
    features = write_feature_file(tmp_path / "train.safetensors", latent_features(64))
    killed, child_log = tmp_path / "killed", tmp_path / "child.log"
    with open(child_log, "w") as stderr:  # a file, not a pipe: a full pipe would stall the child
        child = subprocess.Popen([sys.executable, "-m", "bacl", *train_args(config, "clip_bns", features, killed)],
                                 env=child_environment(), stderr=stderr)
        try:
            deadline = time.monotonic() + 120
            while not (killed / CHECKPOINT).exists() and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
        finally:
            child.send_signal(signal.SIGKILL)  # does nothing if the child has already exited
            child.wait()
    assert child.returncode == -signal.SIGKILL, child_log.read_text()
    interrupted_at = torch.load(killed / CHECKPOINT, weights_only=True)["step"]
    assert interrupted_at < 250 and not (killed / FINAL_WEIGHTS).exists()
    assert main(train_args(config, "clip_bns", features, killed)) == 0
    assert json.loads((killed / "summary.json").read_text())["resumed_from"] == interrupted_at
    assert main(train_args(config, "clip_bns", features, tmp_path / "whole")) == 0
    assert_same_run(tmp_path / "whole", killed)


def torchrun_train(config: Path, method: str, features: Path, out: Path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               "-m", "bacl", *train_args(config, method, features, out)]
    done = subprocess.run(command, env=child_environment(), capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2


def ddp_setup(tmp_path: Path, method: str):
    config = write_config(tmp_path / "config.yaml", tiny_config(
        {method: METHODS[method]},
        train={"steps": 10, "batch_size": 16, "lr": 3e-3, "checkpoint_every": 10, "log_every": 5}))
    features = write_feature_file(tmp_path / "train.safetensors", latent_features(64))
    torchrun_train(config, method, features, tmp_path / "two")
    assert main(train_args(config, method, features, tmp_path / "one")) == 0


@pytest.mark.slow
@pytest.mark.parametrize("method", ["clip", "clip_bns"])
def test_two_processes_train_like_one_process_on_the_same_global_batch(method, tmp_path):
    """Under DDP each rank computes its rows' loss against the gathered batch and DDP averages the
    gradients: the same update as one process. For BNS that needs the same draws too (K = 4 of
    P = 8 candidates here): each rank's Gumbel noise for its rows must be the noise one process
    draws for those rows from step_generator(seed, step)."""
    ddp_setup(tmp_path, method)
    assert_same_run(tmp_path / "one", tmp_path / "two", atol=1e-5)


def test_a_finished_run_rerun_rewrites_its_log_and_weights(tmp_path):
    features = latent_features(48)
    train(make_aligner("clip", features.dims), features, SETTINGS, tmp_path, progress=False)
    log, weights = (tmp_path / METRICS_LOG).read_text(), load_file(str(tmp_path / FINAL_WEIGHTS))
    (tmp_path / METRICS_LOG).unlink()  # what Snakemake does to the outputs of a job it reruns
    (tmp_path / FINAL_WEIGHTS).unlink()
    summary = train(make_aligner("clip", features.dims), features, SETTINGS, tmp_path, progress=False)
    assert summary["resumed_from"] == SETTINGS.steps
    assert (tmp_path / METRICS_LOG).read_text() == log
    assert all(torch.equal(v, load_file(str(tmp_path / FINAL_WEIGHTS))[k]) for k, v in weights.items())


def test_a_checkpoint_of_another_run_is_not_resumed(tmp_path):
    features = latent_features(48)
    train(make_aligner("clip", features.dims), features, SETTINGS, tmp_path / "old", progress=False,
          stop_after=5, identity={"lr_of_another_config": 1})
    fresh = train(make_aligner("clip", features.dims), features, SETTINGS, tmp_path / "fresh", progress=False)
    with pytest.warns(UserWarning, match="different run"):
        changed = train(make_aligner("clip", features.dims), features, SETTINGS, tmp_path / "old", progress=False)
    assert changed["resumed_from"] == 0 and fresh["resumed_from"] == 0
    assert (tmp_path / "old" / METRICS_LOG).read_text() == (tmp_path / "fresh" / METRICS_LOG).read_text()
