"""Bad config values stop at parse time, naming the key (issue #15): every leaf of smoke.yaml given
the wrong type or an out-of-range value is refused by what the Snakefile runs before any job
(Snakemake's ``validate`` with the schema, then ``bacl.config.check_config``) and by the CLI's
``load_config``; a few are also given to a real ``snakemake -n``. The schema's synthetic-data
keys are those of the generator's dataclasses, with their types."""

import copy
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from bacl.config import (SCHEMA_PATH, ConfigError, check_config, load_config, merge_base, method_settings,
                         validate_config)
from bacl.data.synthetic.config import CONFIG_CLASSES

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "workflow" / "config"
SMOKE = yaml.safe_load((CONFIG_DIR / "smoke.yaml").read_text())


def leaves(node, path=()):
    """(path, value) of every scalar of a YAML tree; list items are addressed by index."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, (*path, index))
    else:
        yield path, node


def with_leaf(tree, path, value):
    tree = copy.deepcopy(tree)
    node = tree
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return tree


def wrong_types(value) -> list:
    """Values of other types than ``value`` that a config could plausibly hold by mistake."""
    if isinstance(value, bool):
        return ["yes", 1]
    if isinstance(value, (int, float)):
        return ["forty", [1, 2]]
    if isinstance(value, str):
        return [7, ["a", "b"]]
    return [[1, 2], {"seven": 7}]  # null: a nullable count or name holds neither a list nor a mapping


def snakefile_parse(raw: dict) -> None:
    """What the Snakefile does with a config before any job: merge the base, validate, check."""
    config = merge_base(copy.deepcopy(raw), CONFIG_DIR)
    validate(config, str(SCHEMA_PATH))
    check_config(config)


def refusal(parse, raw) -> str:
    """The message of ``parse(raw)``'s refusal; fails the test if it accepts the config."""
    try:
        parse(raw)
    except Exception as error:  # noqa: BLE001 - Snakemake's WorkflowError, jsonschema's, ConfigError
        return str(error) + " " + " ".join(str(arg) for arg in getattr(error, "args", ()))
    pytest.fail("the config was accepted")


def names_key(message: str, path: tuple) -> bool:
    """Whether ``message`` names the key at ``path`` (dotted, or jsonschema's ['a']['b'] form)."""
    dotted = ".".join(str(step) for step in path)
    subscripted = "".join(f"[{step!r}]" for step in path)
    return dotted in message or subscripted in message


SMOKE_LEAVES = list(leaves(SMOKE))
NUMERIC_LEAVES = [(p, v) for p, v in SMOKE_LEAVES if isinstance(v, (int, float)) and not isinstance(v, bool)]


def test_smoke_yaml_is_accepted_by_both_parsers():
    snakefile_parse(SMOKE)
    validate_config(merge_base(copy.deepcopy(SMOKE), CONFIG_DIR))
    assert len(SMOKE_LEAVES) > 40 and any(p[0] == "data" for p, _ in SMOKE_LEAVES)


def test_configs_and_schema_read_as_yaml_safe_load_reads_them(tmp_path):
    """The config reader's libyaml loader gives the objects of PyYAML's own safe loader."""
    from bacl.config import _read_yaml

    for path in [SCHEMA_PATH, *sorted(CONFIG_DIR.glob("*.yaml"))]:
        assert _read_yaml(path) == yaml.safe_load(path.read_text()), path
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {steps: [1, 2}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        _read_yaml(bad)


@pytest.mark.parametrize("path", [p for p, _ in SMOKE_LEAVES], ids=lambda p: ".".join(map(str, p)))
def test_every_smoke_leaf_of_the_wrong_type_is_refused_naming_the_key(path):
    value = dict(SMOKE_LEAVES)[path]
    for wrong in wrong_types(value):
        raw = with_leaf(SMOKE, path, wrong)
        for parse in (snakefile_parse, lambda r: validate_config(merge_base(copy.deepcopy(r), CONFIG_DIR))):
            message = refusal(parse, raw)
            # a list element's refusal names its list (seeds), any other the key itself
            assert names_key(message, path if isinstance(path[-1], str) else path[:-1]), (wrong, message)


@pytest.mark.parametrize("path", [p for p, _ in NUMERIC_LEAVES], ids=lambda p: ".".join(map(str, p)))
def test_every_numeric_smoke_leaf_out_of_range_is_refused_naming_the_key(path):
    raw = with_leaf(SMOKE, path, -1)
    message = refusal(snakefile_parse, raw)
    assert names_key(message, path if isinstance(path[-1], str) else path[:-1]), message


@pytest.mark.parametrize(("change", "key"), [
    ({"data": {"image_text": {"min_objects": 4, "max_objects": 2}}}, "data.image_text"),  # keys that join
    ({"data": {"audio_text": {"n_test": 40.0}}}, "data.audio_text"),  # a float where the generator wants an int
    ({"data": {"image_text": {"n_colors": 5}}}, "n_colors"),  # a misspelt key
    ({"data": {"webvid": {}}}, "webvid"),  # not a benchmark
    ({"methods": {"clip": {"bacl": {"beta": "big"}}}}, "methods.clip.bacl"),  # a method's override
    ({"methods": {"m3jepa": {"options": {"num_experts": "many"}}}}, "num_experts"),  # an aligner's option
    ({"tables": {"main": {"CLIP": "clip_typo"}}}, "tables.main.CLIP"),  # a row naming no method
])
def test_rules_across_keys_are_checked_at_parse_time(change, key):
    raw = {**copy.deepcopy(SMOKE), **{k: {**SMOKE.get(k, {}), **v} if isinstance(v, dict) else v
                                     for k, v in change.items()}}
    assert key in refusal(snakefile_parse, raw)
    assert key in refusal(lambda r: validate_config(merge_base(copy.deepcopy(r), CONFIG_DIR)), raw)


def test_base_of_the_wrong_type_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="'base'"):
        merge_base({"base": 7}, CONFIG_DIR)


def test_a_variants_steps_by_benchmark_replaces_the_bases_mapping_whole(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({
        "train": {"steps": 500, "lr": 0.001}, "steps_by_benchmark": {"image_text": 750, "video_text": 1000}}))
    merged = merge_base({"base": "base.yaml", "train": {"steps": 6}, "steps_by_benchmark": {"video_text": 9}}, tmp_path)
    assert merged == {"train": {"steps": 6, "lr": 0.001}, "steps_by_benchmark": {"video_text": 9}}


@pytest.mark.parametrize(("name", "expected"), [
    ("default", {"image_text": 750, "video_text": 1000, "audio_video_text": 1000}),
    ("smoke", {"audio_video_text": 8}),
    ("gpu", {}),
    ("rehearsal", {}),  # built on gpu.yaml
])
def test_each_shipped_config_trains_its_own_steps_on_every_benchmark(name, expected):
    config = load_config(CONFIG_DIR / f"{name}.yaml")
    for benchmark in config["benchmarks"]:
        for method, spec in config["methods"].items():
            own = spec.get("train", {}).get("steps")
            wanted = own if own is not None else expected.get(benchmark, config["train"]["steps"])
            assert method_settings(config, method, benchmark)["train"]["steps"] == wanted, (method, benchmark)


def test_synthetic_schema_keys_and_types_are_the_generators():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    defs = schema["$defs"]

    def properties(definition) -> dict:
        found = dict(definition.get("properties", {}))
        for part in definition.get("allOf", []):
            found.update(properties(defs[part["$ref"].split("/")[-1]]))
        return found

    benchmarks = {"image": "image_text", "video": "video_text", "audio": "audio_text",
                  "audio_video": "audio_video_text"}
    for modality, cls in CONFIG_CLASSES.items():
        keys = properties(defs[f"synthetic_{benchmarks[modality]}"])
        fields = {field.name: field for field in dataclasses.fields(cls)}
        assert set(keys) == set(fields), modality
        for name, field in fields.items():
            expected = {"int": "integer", "float": "number", "tuple[str, ...]": "array"}[field.type]
            assert keys[name]["type"] == expected, (modality, name)
            if expected == "array":  # the edit kinds: checked against the modality by the generator
                with pytest.raises(ValueError, match=name):
                    cls(**{name: ("no-such-edit",)})
                continue
            default = field.default
            low, high = keys[name].get("minimum"), keys[name].get("maximum")
            assert (low is None or low <= default) and (high is None or default <= high), (modality, name)
            # just outside the schema's bound, the generator refuses too: the schema is not stricter
            for outside in ([low - 1] if low is not None else []) + ([high + 1] if high is not None else []):
                with pytest.raises(ValueError):
                    cls(**{name: type(default)(outside)})


@pytest.mark.slow
@pytest.mark.parametrize(("path", "value"), [(("data", "audio_text", "n_test"), "forty"),
                                             (("data", "video_text", "n_pretrain"), [1, 2])])
def test_snakemake_dry_run_refuses_the_issues_examples_naming_the_key(tmp_path, path, value):
    raw = with_leaf(SMOKE, path, value)
    raw["base"] = str(CONFIG_DIR / "default.yaml")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile",
                           str(tmp_path / "bad.yaml")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode != 0
    assert names_key(done.stdout + done.stderr, path), done.stdout[-2000:] + done.stderr[-2000:]
