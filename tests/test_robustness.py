"""Bad input at the public boundary (issue #7): each kind stops with a clear error that names the bad
key, file or sample, and writes nothing.

Here the ``python -m bacl train|evaluate`` CLI: exit status 2, the message on stderr, no
traceback. test_robustness_library.py: the library functions the pipeline calls where no CLI
exists (real-data readers, feature cache, encoder loader). "Writes nothing" is checked on every
file and folder the case can see (sizes and mtimes unchanged, nothing new). Cases marked "also test_cli" repeat a refusal tests/test_cli.py checks in process,
here with the no-writes and no-traceback checks of this table. Killing runs and resuming is in
test_robustness_resume.py; determinism, no network and safe loading in test_robustness_runtime.py.
The Snakemake side of an interrupted run is tests/test_workflow.py's killed smoke pipeline.
"""

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures import (
    CLI_METHODS,
    PicklePayload,
    evaluate_args,
    file_tree,
    latent_features,
    tiny_config,
    train_args,
    write_config,
    write_feature_file,
    write_tensors,
)

from bacl.cli import main
from bacl.train import CHECKPOINT, FINAL_WEIGHTS


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Shared valid inputs: config, a training and a test split, weights of a trained clip run."""
    root = tmp_path_factory.mktemp("world")
    world = {"root": root, "config": write_config(root / "config.yaml", tiny_config(copy.deepcopy(CLI_METHODS))),
             "train": write_feature_file(root / "train.safetensors", latent_features(64, seed=0)),
             "test": write_feature_file(root / "test.safetensors", latent_features(32, seed=1))}
    assert main(train_args(world["config"], "clip", world["train"], root / "run")) == 0
    world["weights"] = root / "run" / FINAL_WEIGHTS
    return world


# --- the CLI ------------------------------------------------------------------------------------
# Each case: (world, case folder) -> (argv, names the message must contain). Output goes to
# <case folder>/out (a run folder, or out/result.json for evaluate), which must not appear.

def config_with(w, d, change: dict) -> Path:
    config = tiny_config(copy.deepcopy(CLI_METHODS))

    def merge(into, values):
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(config, change)
    return write_config(d / "config.yaml", config)


def train(w, d, method="clip", features=None, config=None, extra=()):
    return train_args(config or w["config"], method, features or w["train"], d / "out") + list(extra)


def evaluate(w, d, method="clip", features=None, weights="trained"):
    weights = w["weights"] if weights == "trained" else weights
    return evaluate_args(w["config"], method, features or w["test"], d / "out" / "result.json", weights)


def evaluate_two(w, d, second: Path):
    """One evaluate call over the test split and ``second``, one result each."""
    args = evaluate(w, d)
    args[args.index("--test") + 1:args.index("--test") + 2] = [w["test"], second]
    args[args.index("--out") + 1:args.index("--out") + 2] = [d / "out" / "a.json", d / "out" / "b.json"]
    return args


def tensors(rows: int = 64, **changes) -> dict:
    """The first ``rows`` rows of a valid 64-row split, with ``changes`` (name -> tensor, None drops it)."""
    features = {name: t[:rows] for name, t in latent_features(64, seed=0).tensors.items()}
    features = {**features, **changes}
    return {name: t for name, t in features.items() if t is not None}


META = {"negative_types": ["attribute", "binding"]}


def bad_features(d, name="bad.safetensors", meta=META, **changes) -> Path:
    return write_tensors(d / name, tensors(**changes), meta)


def with_nan(name: str, value=float("nan")):
    tensor = tensors()[name].clone()
    tensor.view(-1)[5] = value
    return tensor


def yaml_file(d, text: str) -> Path:
    (d / "config.yaml").write_text(text)
    return d / "config.yaml"


def truncated(d, w) -> Path:
    data = w["train"].read_bytes()
    (d / "half.safetensors").write_bytes(data[:len(data) // 2])
    return d / "half.safetensors"


def garbage(d, name: str) -> Path:
    (d / name).write_bytes(b"\x00garbage, not what the name says\xff" * 8)
    return d / name


def checkpoint_in_out(d, obj=None, data: bytes | None = None) -> Path:
    (d / "out").mkdir()
    if data is not None:
        (d / "out" / CHECKPOINT).write_bytes(data)
    else:
        torch.save(obj, d / "out" / CHECKPOINT)
    return d / "out" / CHECKPOINT


CLI_CASES = {
    # config: values, types, structure, files
    "config_value": lambda w, d: (train(w, d, config=config_with(w, d, {"train": {"steps": 0}})),
                                  ["train.steps"]),  # also test_cli
    "config_type": lambda w, d: (train(w, d, config=config_with(w, d, {"threads": "two"})), ["threads"]),  # also test_cli
    "config_unknown_key": lambda w, d: (train(w, d, config=config_with(w, d, {"learning_rate": 0.1})),
                                        ["learning_rate"]),  # also test_cli
    "config_not_a_mapping": lambda w, d: (train(w, d, config=yaml_file(d, "- a\n- b\n")), ["config.yaml", "mapping"]),
    "config_invalid_yaml": lambda w, d: (train(w, d, config=yaml_file(d, "train: [unclosed\n")),
                                         ["config.yaml"]),  # also test_cli
    "config_missing": lambda w, d: (train(w, d, config=d / "absent.yaml"), ["absent.yaml"]),  # also test_cli
    "config_base_missing": lambda w, d: (train(w, d, config=yaml_file(d, "base: nowhere.yaml\n")), ["nowhere.yaml"]),
    "device_unavailable": lambda w, d: (train(w, d, config=config_with(w, d, {"device": "cuda"})), ["device"]),
    "threads_flag": lambda w, d: (train(w, d, extra=["--threads", "0"]), ["--threads"]),
    # method, preset, K and the pool
    "unknown_method": lambda w, d: (train(w, d, method="siglip"), ["siglip"]),  # also test_cli
    "unknown_preset": lambda w, d: (train(w, d, "clip_bacl", config=config_with(w, d, {"bacl": {"schedule": "steep"}})),
                                    ["bacl.schedule"]),  # also test_cli
    "unknown_aligner": lambda w, d: (train(w, d, config=config_with(w, d, {"methods": {"clip": {"aligner": "siglip"}}})),
                                     ["methods.clip.aligner"]),  # also test_cli
    "k_over_pool": lambda w, d: (train(w, d, "clip_bacl", config=config_with(w, d, {"bacl": {"num_negatives": 9}})),
                                 ["num_negatives", "P=8"]),  # also test_cli
    "pool_over_stored": lambda w, d: (train(w, d, "clip_bacl", config=config_with(w, d, {"index": {"pool_size": 12}})),
                                      ["index.pool_size"]),  # also test_cli
    "zero_shot_trained": lambda w, d: (train(w, d, method="zero_shot"), ["zero_shot"]),  # also test_cli
    # feature files: missing, corrupt, empty, non-finite, mismatched
    "features_missing": lambda w, d: (train(w, d, features=d / "absent.safetensors"),
                                      ["absent.safetensors"]),  # also test_cli
    "pools_file_missing": lambda w, d: (train(w, d, "clip_bacl", extra=["--pools", str(d / "no_pools.safetensors")]),
                                        ["no_pools.safetensors"]),
    "features_corrupt": lambda w, d: (train(w, d, features=garbage(d, "corrupt.safetensors")), ["corrupt.safetensors"]),
    "features_truncated": lambda w, d: (train(w, d, features=truncated(d, w)), ["half.safetensors"]),
    "features_meta_not_json": lambda w, d: (train(w, d, features=bad_features(d, "meta.safetensors", meta="{not")),
                                            ["meta.safetensors"]),
    "features_meta_not_an_object": lambda w, d: (train(w, d, features=bad_features(d, "meta.safetensors", meta="[1]")),
                                                 ["meta.safetensors"]),
    "train_split_empty": lambda w, d: (train(w, d, features=write_tensors(d / "empty.safetensors", tensors(0), META)),
                                       ["empty.safetensors", "empty"]),
    "test_split_empty": lambda w, d: (evaluate(w, d, "zero_shot", write_tensors(d / "empty.safetensors", tensors(0), META),
                                               weights=None), ["empty.safetensors", "empty"]),
    "train_split_under_a_batch": lambda w, d: (train(w, d, features=write_feature_file(d / "small.safetensors",
                                                                                        latent_features(12))),
                                               ["batch_size=16", "12 rows"]),
    "features_nan": lambda w, d: (train(w, d, features=bad_features(d, x=with_nan("x"))), ["bad.safetensors", "'x'", "NaN"]),
    "token_features_inf": lambda w, d: (evaluate(w, d, features=bad_features(d, x_tokens=with_nan("x_tokens", float("inf")))),
                                        ["bad.safetensors", "x_tokens", "inf"]),
    "features_rows_mismatch": lambda w, d: (train(w, d, features=bad_features(d, text=tensors()["text"][:60])),
                                            ["bad.safetensors", "'text'", "N=64"]),
    "features_lack_caption_id": lambda w, d: (train(w, d, features=bad_features(d, caption_id=None)),
                                              ["bad.safetensors", "caption_id"]),
    "pool_indices_out_of_range": lambda w, d: (train(w, d, "clip_bacl", features=bad_features(
        d, text_neighbours=tensors()["text_neighbours"] + 64)), ["bad.safetensors", "text_neighbours"]),
    "bacl_without_pools": lambda w, d: (train(w, d, "clip_bacl", features=bad_features(d, text_neighbours=None,
                                                                                         x_neighbours=None)),
                                        ["bad.safetensors", "text_neighbours"]),
    "test_lacks_negative_types": lambda w, d: (evaluate(w, d, features=bad_features(d, meta={})),
                                               ["bad.safetensors", "negative_types"]),
    # weights at evaluation
    "weights_missing": lambda w, d: (evaluate(w, d, weights=d / "absent_weights.safetensors"),
                                     ["absent_weights.safetensors"]),  # also test_cli
    "weights_corrupt": lambda w, d: (evaluate(w, d, weights=garbage(d, "weights.safetensors")),
                                     [str(d / "weights.safetensors")]),
    "weights_of_another_method": lambda w, d: (evaluate(w, d, "m3jepa"), [str(w["weights"]), "m3jepa"]),
    "weights_of_another_width": lambda w, d: (evaluate(w, d, features=write_feature_file(
        d / "narrow.safetensors", latent_features(32, dim=8))), [str(w["weights"]), "size mismatch"]),
    "test_splits_of_different_widths": lambda w, d: (evaluate_two(w, d, write_feature_file(
        d / "narrow.safetensors", latent_features(32, dim=8))), ["narrow.safetensors", "widths"]),
    # the run folder's checkpoint
    "checkpoint_corrupt": lambda w, d: (train(w, d), [str(checkpoint_in_out(d, data=b"PK\x03\x04 cut short"))]),
    "checkpoint_pickled_object": lambda w, d: (train(w, d), [str(checkpoint_in_out(
        d, {"step": 1, "aligner": PicklePayload(d / "ran")})), "never unpickled"]),
}


def run_cli(argv) -> int:
    try:
        return main([str(a) for a in argv])
    except SystemExit as stop:  # argparse's own refusals
        return stop.code


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_bad_cli_input_exits_2_names_it_and_writes_nothing(case, world, tmp_path, capsys, monkeypatch):
    if case == "device_unavailable":  # the same refusal on a machine that has a GPU
        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv, names = CLI_CASES[case](world, tmp_path)
    capsys.readouterr()
    before = file_tree(tmp_path, world["root"])
    status = run_cli(argv)
    error = capsys.readouterr().err
    assert status == 2, error
    assert "Traceback" not in error and error.strip(), error
    for name in names:
        assert name in error, f"{name!r} not in {error!r}"
    assert file_tree(tmp_path, world["root"]) == before, "the refused run wrote, changed or deleted files"
    assert not (tmp_path / "ran").exists(), "a pickled payload was executed"


@pytest.mark.parametrize("case", ["weights_corrupt", "checkpoint_pickled_object"])
def test_refusals_are_the_same_from_a_fresh_process(case, world, tmp_path):
    """``python -m bacl`` itself: exit status 2 and a one-line message, no traceback."""
    argv, names = CLI_CASES[case](world, tmp_path)
    before = file_tree(tmp_path, world["root"])
    done = subprocess.run([sys.executable, "-m", "bacl", *map(str, argv)], capture_output=True, text=True,
                          timeout=600, check=False, env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert all(name in done.stderr for name in names), done.stderr
    assert file_tree(tmp_path, world["root"]) == before and not (tmp_path / "ran").exists()
