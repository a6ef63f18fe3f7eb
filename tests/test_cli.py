"""``python -m bacl``: train then evaluate end to end; every invalid input exits with status 2,
names the bad key or file on stderr and writes nothing. And the config system it relies on."""

import copy
import json

import pytest
from fixtures import (
    CLI_METHODS,
    evaluate_args,
    latent_features,
    tiny_config,
    train_args,
    write_config,
    write_feature_file,
)

from bacl.cli import main
from bacl.config import ConfigError, load_config, method_settings, validate_config
from bacl.train import FINAL_WEIGHTS, METRICS_LOG


@pytest.fixture(scope="module")
def feature_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    return (write_feature_file(folder / "train.safetensors", latent_features(64, seed=0)),
            write_feature_file(folder / "test.safetensors", latent_features(32, seed=1)))


def test_train_then_evaluate_end_to_end(tmp_path, feature_files):
    train_file, test_file = feature_files
    config = write_config(tmp_path / "config.yaml", tiny_config(CLI_METHODS))
    results = {}
    for method in ("clip", "clip_bacl"):
        run = tmp_path / method
        assert main(train_args(config, method, train_file, run)) == 0
        summary = json.loads((run / "summary.json").read_text())
        assert summary["method"] == method and summary["config"] == "test" and summary["steps"] == 20
        assert len((run / METRICS_LOG).read_text().splitlines()) == 10  # log_every = 2
        out = tmp_path / "results" / f"{method}.json"
        assert main(evaluate_args(config, method, test_file, out, run / FINAL_WEIGHTS)) == 0
        results[method] = json.loads(out.read_text())
    out = tmp_path / "results" / "zero_shot.json"
    assert main(evaluate_args(config, "zero_shot", test_file, out)) == 0  # nothing to load
    results["zero_shot"] = json.loads(out.read_text())

    for method, result in results.items():
        assert result["method"] == method and result["config"] == "test" and result["n"] == 32
        assert {"retrieval", "boundary", "multiple_choice"} <= set(result)
        assert 0.0 <= result["retrieval"]["image_to_text"]["R@1"] <= 1.0
    assert {"retrieval_reranked", "boundary_match_head", "ael"} <= set(results["clip_bacl"])
    assert results["clip_bacl"]["retrieval_reranked"]["k"] == 4
    # The untrained reference is the run's Transformer as its seed initialised it: its boundary
    # accuracy (the Transformer's alone) is that of a fresh build at seed 0, the seed trained with.
    from bacl.cli import _build
    from bacl.evaluate import evaluate
    from bacl.featureset import FeatureSet

    test_set = FeatureSet.load(test_file)
    fresh, _ = _build(load_config(config), "clip_bacl", test_set, seed=0)
    untrained = results["clip_bacl"]["untrained"]["boundary_match_head"]
    assert untrained == json.loads(json.dumps(evaluate(fresh, test_set, rerank_k=4)["boundary_match_head"]))
    assert untrained != results["clip_bacl"]["boundary_match_head"]
    assert "untrained" not in results["clip"]
    # 20 steps on the shared structure beat the frozen alignment on the held-out split
    zero_shot_map = results["zero_shot"]["retrieval"]["image_to_text"]["mAP"]
    for method in ("clip", "clip_bacl"):
        assert results[method]["retrieval"]["image_to_text"]["mAP"] > zero_shot_map


def test_train_with_a_validation_split_logs_its_curve(tmp_path, feature_files, capsys):
    train_file, val_file = feature_files
    config = write_config(tmp_path / "config.yaml", tiny_config(
        CLI_METHODS, train={"steps": 8, "batch_size": 16, "checkpoint_every": 4, "log_every": 2, "validate_every": 3}))
    run = tmp_path / "run"
    assert main([*train_args(config, "clip_bacl", train_file, run), "--val", str(val_file)]) == 0
    logged = [json.loads(line) for line in (run / METRICS_LOG).read_text().splitlines()]
    assert [r["step"] for r in logged if "val_r1" in r] == [0, 3, 6, 8]
    assert all("val_head_pairwise" in r for r in logged if "val_r1" in r)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["val"] == str(val_file) and summary["validation_seconds"] > 0
    narrow = write_feature_file(tmp_path / "narrow.safetensors", latent_features(32, dim=8))
    run_failing([*train_args(config, "clip", train_file, tmp_path / "bad"), "--val", str(narrow)], capsys,
                "--val", "narrow.safetensors")
    run_failing([*train_args(config, "clip", train_file, tmp_path / "bad"), "--val", str(tmp_path / "absent.safetensors")],
                capsys, "absent.safetensors")
    assert nothing_under(tmp_path / "bad")


def test_one_evaluate_call_over_several_splits_equals_one_call_per_split(tmp_path, feature_files):
    train_file, test_file = feature_files
    config = write_config(tmp_path / "config.yaml", tiny_config(CLI_METHODS))
    run = tmp_path / "run"
    assert main(train_args(config, "clip_bacl", train_file, run)) == 0
    weights = run / FINAL_WEIGHTS
    separate = [tmp_path / "test.json", tmp_path / "train.json"]
    for split, out in zip((test_file, train_file), separate):
        assert main(evaluate_args(config, "clip_bacl", split, out, weights)) == 0
    together = [tmp_path / "together" / "test.json", tmp_path / "together" / "train.json"]
    args = evaluate_args(config, "clip_bacl", test_file, together[0], weights)
    args[args.index("--test") + 1:args.index("--test") + 2] = [str(test_file), str(train_file)]
    args[args.index("--out") + 1:args.index("--out") + 2] = [str(path) for path in together]
    assert main(args) == 0
    # The same results, but that the untrained reference comes with the first split only.
    alone = [json.loads(path.read_text()) for path in separate]
    joint = [json.loads(path.read_text()) for path in together]
    assert joint[0] == alone[0] and "untrained" in joint[0] and "untrained" not in joint[1]
    assert joint[1] == {key: value for key, value in alone[1].items() if key != "untrained"}


def test_evaluate_refuses_unpaired_outputs_before_writing(tmp_path, capsys, feature_files):
    train_file, test_file = feature_files
    config = write_config(tmp_path / "config.yaml", tiny_config(CLI_METHODS))
    args = evaluate_args(config, "zero_shot", test_file, tmp_path / "out" / "a.json")
    args[args.index("--test") + 1:args.index("--test") + 2] = [str(test_file), str(train_file)]
    run_failing(args, capsys, "--out names 1 files for 2 --test")
    assert not (tmp_path / "out").exists()


def run_failing(args, capsys, *names):
    """Run the CLI; it must exit 2 and name every one of ``names`` on stderr."""
    assert main(args) == 2
    error = capsys.readouterr().err
    for name in names:
        assert name in error, f"{name!r} not in {error!r}"


def nothing_under(path) -> bool:
    return not path.exists() or not any(path.rglob("*"))


def with_change(change: dict) -> dict:
    """tiny_config(CLI_METHODS) with the nested ``change`` merged in."""
    config = tiny_config(copy.deepcopy(CLI_METHODS))

    def merge(into, values):
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(config, change)
    return config


BAD_CONFIGS = {  # id -> (change to the config, method trained, names the message must contain)
    "steps_zero": ({"train": {"steps": 0}}, "clip", ["train.steps"]),
    "validate_every_zero": ({"train": {"validate_every": 0}}, "clip", ["train.validate_every"]),
    "threads_type": ({"threads": "two"}, "clip", ["threads"]),
    "schedule_name": ({"bacl": {"schedule": "steep"}}, "clip_bacl", ["bacl.schedule"]),
    "unknown_key": ({"learning_rate": 0.1}, "clip", ["learning_rate"]),
    "unknown_aligner": ({"methods": {"clip": {"aligner": "siglip"}}}, "clip", ["methods.clip.aligner"]),
    "override_value": ({"methods": {"clip": {"train": {"lr": -1}}}}, "clip", ["methods.clip.train", "lr"]),
    "override_key": ({"methods": {"clip": {"bacl": {"lambda": 1}}}}, "clip", ["methods.clip.bacl", "lambda"]),
    "heads_divide_width": ({"transformer": {"heads": 3}}, "clip_bacl", ["heads=3"]),
    "negatives_over_pool": ({"bacl": {"num_negatives": 9}}, "clip_bacl", ["num_negatives", "P=8"]),
    "pool_over_stored": ({"index": {"pool_size": 12}}, "clip_bacl", ["pool_size"]),
    "option_type": ({"methods": {"m3jepa": {"options": {"num_experts": "four"}}}}, "m3jepa", ["num_experts"]),
    "option_unknown": ({"methods": {"m3jepa": {"options": {"experts": 4}}}}, "m3jepa", ["experts"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_invalid_config_exits_2_naming_the_key_and_writes_nothing(case, tmp_path, capsys, feature_files):
    change, method, names = BAD_CONFIGS[case]
    config = write_config(tmp_path / "config.yaml", with_change(change))
    run_failing(train_args(config, method, feature_files[0], tmp_path / "run"), capsys, *names)
    assert nothing_under(tmp_path / "run")


def test_unknown_method_and_missing_files_exit_2(tmp_path, capsys, feature_files):
    train_file, test_file = feature_files
    config = write_config(tmp_path / "config.yaml", tiny_config(CLI_METHODS))
    out = tmp_path / "out"
    run_failing(train_args(config, "siglip", train_file, out), capsys, "siglip")
    run_failing(train_args(tmp_path / "absent.yaml", "clip", train_file, out), capsys, "absent.yaml")
    run_failing(train_args(config, "clip", tmp_path / "absent.safetensors", out), capsys, "absent.safetensors")
    run_failing(train_args(config, "zero_shot", train_file, out), capsys, "zero_shot")
    assert nothing_under(out)
    result = out / "result.json"
    run_failing(evaluate_args(config, "clip", tmp_path / "absent.safetensors", result, train_file), capsys,
                "absent.safetensors")
    run_failing(evaluate_args(config, "clip", test_file, result, tmp_path / "absent_weights.safetensors"), capsys,
                "absent_weights.safetensors")
    run_failing(evaluate_args(config, "clip", test_file, result), capsys, "--weights")
    assert nothing_under(out)


def test_invalid_yaml_is_named(tmp_path, capsys, feature_files):
    config = tmp_path / "config.yaml"
    config.write_text("train: [unclosed\n")
    run_failing(train_args(config, "clip", feature_files[0], tmp_path / "run"), capsys, str(config))


def test_load_config_fills_defaults(tmp_path):
    config = load_config(write_config(tmp_path / "config.yaml", {"train": {"steps": 7}}))
    assert config["train"]["steps"] == 7 and config["train"]["batch_size"] == 128
    assert config["bacl"]["lambda_local"] == 0.3 and config["bacl"]["schedule"] == "default"
    assert config["index"] == {"kind": "exact", "pool_size": 32}
    assert config["encoders"]["audio"]["model"] == "bacl-tiny-audio"
    assert config["encoders"]["image"]["pretrain"]["steps"] == 600  # defaults inside defaults
    assert set(config["methods"]) == {"zero_shot", "clip", "clip_bacl"}
    assert config["methods"]["clip"] == {"aligner": "clip", "bns": False, "cla": False, "options": {}, "bacl": {},
                                         "transformer": {}, "train": {}}


def test_a_config_states_only_what_differs_from_its_base(tmp_path):
    write_config(tmp_path / "base.yaml", tiny_config(CLI_METHODS))
    variant = write_config(tmp_path / "variant.yaml", {"base": "base.yaml", "train": {"steps": 3}})
    config = load_config(variant)
    assert config["train"]["steps"] == 3 and config["train"]["batch_size"] == 16  # merged key by key
    assert set(config["methods"]) == set(CLI_METHODS)


def test_method_settings_merge_overrides_without_touching_the_shared_sections():
    config = validate_config(tiny_config({"clip": {"aligner": "clip", "train": {"steps": 5},
                                                   "bacl": {"beta": 2.0}, "transformer": {"depth": 1}}}))
    shared = copy.deepcopy(config)
    settings = method_settings(config, "clip")
    assert settings["train"]["steps"] == 5 and settings["train"]["batch_size"] == 16  # the rest from train
    assert settings["bacl"]["beta"] == 2.0 and settings["bacl"]["lambda_local"] == 0.3
    assert settings["transformer"] == {"width": 16, "depth": 1, "heads": 2, "context_positions": True}
    assert settings["spec"]["aligner"] == "clip"
    assert config == shared


def test_steps_by_benchmark_sets_the_steps_of_every_method_on_that_benchmark_only(tmp_path, feature_files):
    config = validate_config(tiny_config({"clip": {"aligner": "clip"},
                                          "clip_own": {"aligner": "clip", "train": {"steps": 5}}})
                             | {"steps_by_benchmark": {"video_text": 7}})
    assert method_settings(config, "clip", "video_text")["train"]["steps"] == 7
    assert method_settings(config, "clip", "image_text")["train"]["steps"] == 20  # not listed: train.steps
    assert method_settings(config, "clip")["train"]["steps"] == 20
    assert method_settings(config, "clip_own", "video_text")["train"]["steps"] == 5  # the method's own wins
    dropped = validate_config(tiny_config() | {"steps_by_benchmark": {"video_text": None}})
    assert method_settings(dropped, "clip", "video_text")["train"]["steps"] == 20  # null: train.steps
    path = write_config(tmp_path / "config.yaml", tiny_config(CLI_METHODS) | {"steps_by_benchmark": {"video_text": 3}})
    assert main(train_args(path, "clip", feature_files[0], tmp_path / "run") + ["--benchmark", "video_text"]) == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 3
    assert main(train_args(path, "clip", feature_files[0], tmp_path / "bad") + ["--benchmark", "nope"]) != 0


def test_steps_by_benchmark_refuses_a_benchmark_the_config_does_not_run():
    with pytest.raises(ConfigError, match=r"steps_by_benchmark\.audio_text"):
        validate_config(tiny_config() | {"benchmarks": ["image_text"], "steps_by_benchmark": {"audio_text": 9}})
    with pytest.raises(ConfigError, match="steps_by_benchmark"):
        validate_config(tiny_config() | {"steps_by_benchmark": {"image_text": 0}})


@pytest.mark.parametrize("override, path", [({"train": {"steps": "many"}}, "methods.clip.train"),
                                            ({"transformer": {"width": 0}}, "methods.clip.transformer"),
                                            ({"bacl": {"schedule": {"alpha_early": 0.3}}}, "methods.clip.bacl")])
def test_bad_override_is_named_by_its_key_path(override, path):
    """Refused when the config is loaded (before any method is built), naming the override."""
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")) as error:
        validate_config(tiny_config({"clip": {"aligner": "clip", **override}}))
    [(_, values)] = override.items()
    assert next(iter(values)) in str(error.value)


def test_validate_config_rejects_a_non_mapping():
    with pytest.raises(ConfigError, match="mapping"):
        validate_config(["not", "a", "mapping"])
    with pytest.raises(ConfigError, match="nope"):
        method_settings(validate_config(tiny_config()), "nope")


@pytest.mark.parametrize(("argv", "expected"), [
    (["--help"], ["Train and evaluate BACL", "train", "evaluate", "examples", "python -m bacl train --config",
                  "python -m bacl evaluate --config", "exit status 2", "config.schema.yaml"]),
    (["train", "--help"], ["--out DIR", "weights.safetensors", "metrics.jsonl", "checkpoint.pt", "resumes",
                           "--pools", "--val FEATURES", "validate_every"]),
    (["evaluate", "--help"], ["one JSON per split", "R@1/5/10", "multiple-choice", "zero_shot"]),
])
def test_help_is_written_for_users(argv, expected, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "the only place that parses arguments" not in text  # the module docstring is for developers
    for words in expected:
        assert words in text, words
