"""The one configuration system: YAML validated against ``workflow/schemas/config.schema.yaml``.

Snakemake validates the same file with the same schema (``snakemake.utils.validate``) and then
runs :func:`check_config`; the CLI uses :func:`load_config`, which does both. Defaults from the
schema are filled in, and a bad value raises ``ConfigError`` naming the key path before any
compute. :func:`check_config` adds the rules a schema cannot state: those that join keys of a
synthetic benchmark's generator settings (its dataclass checks them), a method row's overrides of
the shared ``bacl``, ``transformer`` and ``train`` sections (:func:`method_settings` merges and
re-validates them) and table rows naming configured methods.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import yaml

__all__ = ["ConfigError", "SCHEMA_PATH", "check_config", "load_config", "merge_base", "validate_config",
           "method_settings"]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """An invalid configuration; the message names the offending key."""


# libyaml's parser where PyYAML has it: the same objects as yaml.safe_load at ~1/8 of the time,
# which every pipeline job and every snakemake call pays for the config and the schema.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _safe_load(text: str):
    return yaml.load(text, Loader=_YAML_LOADER)


@functools.cache  # parsed once per process: method_settings re-validates every method against it
def _schema() -> dict:
    if not SCHEMA_PATH.is_file():
        raise FileNotFoundError(f"config schema {SCHEMA_PATH} is missing (it ships with the repository)")
    return _safe_load(SCHEMA_PATH.read_text())


@functools.cache  # one class per process: building it costs more than a method's validation
def _with_defaults(validator_class):
    """A validator that fills in each property's default before validating it (as Snakemake does)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _validate(instance: dict, schema: dict, where: str) -> dict:
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    # A bad key inside an allOf part also makes its siblings "unevaluated": report the key itself.
    errors = sorted(validator.iter_errors(instance),
                    key=lambda e: (e.validator == "unevaluatedProperties", [str(p) for p in e.absolute_path]))
    if errors:
        error = errors[0]
        key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
        raise ConfigError(f"{where}: invalid value at key '{key}': {error.message}")
    return instance


def validate_config(config: dict, where: str = "config") -> dict:
    """Validate ``config`` in place (defaults filled) against the schema and :func:`check_config`; return it."""
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: the top level must be a mapping, got {type(config).__name__}")
    check_config(_validate(config, _schema(), where), where)
    return config


def check_config(config: dict, where: str = "config") -> None:
    """The rules of a schema-valid ``config`` that the schema cannot state; ConfigError naming the key.

    * each synthetic ``data.<benchmark>`` section (no ``source``) is a valid generator config, the
      rules that join keys included (e.g. ``min_objects <= max_objects``);
    * each ``steps_by_benchmark`` key is a configured benchmark;
    * each method's overrides of ``bacl`` / ``transformer`` / ``train`` are valid once merged;
    * each table row names a configured method.
    """
    from .data.synthetic import BENCHMARK_MODALITY
    from .data.synthetic.config import config_from_mapping

    for benchmark, section in config.get("data", {}).items():
        if "source" not in section:
            try:
                config_from_mapping(BENCHMARK_MODALITY[benchmark], section)
            except ValueError as error:
                raise ConfigError(f"{where}: invalid value at key 'data.{benchmark}': {error}") from None
    for benchmark in config.get("steps_by_benchmark", {}):
        if benchmark not in config["benchmarks"]:
            raise ConfigError(f"{where}: invalid value at key 'steps_by_benchmark.{benchmark}': {benchmark!r} is not "
                              f"one of the configured benchmarks {config['benchmarks']}")
    for method in config["methods"]:
        try:
            method_settings(config, method)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    for table, rows in config["tables"].items():
        for label, method in rows.items():
            if method not in config["methods"]:
                raise ConfigError(f"{where}: invalid value at key 'tables.{table}.{label}': {method!r} is not "
                                  f"one of the configured methods {sorted(config['methods'])}")


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        return _safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error


# Top-level mappings a variant replaces whole instead of merging: steps measured for the base's
# own towers and train.steps must not leak into a variant that sets its own (gpu.yaml, smoke.yaml).
REPLACED_WHOLE = frozenset({"steps_by_benchmark"})


def _deep_merge(base: dict, override: dict, replaced_whole: frozenset = frozenset()) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merges = isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in replaced_whole
        merged[key] = _deep_merge(merged[key], value) if merges else value
    return merged


def merge_base(config: dict, directory: str | Path) -> dict:
    """A config with ``base: FILE`` (relative to ``directory``) is that file's config with this
    one's values merged on top (mappings merge key by key, anything else is replaced; the
    top-level mappings in ``REPLACED_WHOLE`` are replaced whole), so a small variant such as the
    smoke config states only what differs."""
    if not isinstance(config, dict) or "base" not in config:
        return config
    if not isinstance(config["base"], str) or not config["base"]:
        raise ConfigError(f"invalid value at key 'base': {config['base']!r} is not a file name (a string)")
    base_path = Path(directory) / config["base"]
    base = merge_base(_read_yaml(base_path), base_path.parent)
    if not isinstance(base, dict):
        raise ConfigError(f"{base_path} (the value of key 'base'): the top level must be a mapping, "
                          f"got {type(base).__name__}")
    return _deep_merge(base, {k: v for k, v in config.items() if k != "base"}, REPLACED_WHOLE)


def load_config(path: str | Path) -> dict:
    """Read (resolving ``base``) and validate a YAML config file."""
    path = Path(path)
    return validate_config(merge_base(_read_yaml(path), path.parent), where=str(path))


def method_settings(config: dict, method: str, benchmark: str | None = None) -> dict:
    """The fully merged settings of one method: ``spec``, ``bacl``, ``transformer``, ``train``.

    Precedence, lowest first: the shared section, the benchmark's ``steps_by_benchmark`` entry
    (``train.steps`` only, when ``benchmark`` is given and the entry is not null), the method's own
    overrides.
    """
    methods = config["methods"]
    if method not in methods:
        raise ConfigError(f"method {method!r} is not in the config's methods ({sorted(methods)})")
    spec = methods[method]
    schema = _schema()
    shared = {section: config[section] for section in ("bacl", "transformer", "train")}
    benchmark_steps = config.get("steps_by_benchmark", {}).get(benchmark)
    if benchmark_steps is not None:
        shared["train"] = {**shared["train"], "steps": benchmark_steps}
    merged = {}
    for section, values in shared.items():
        values = {**values, **spec.get(section, {})}
        section_schema = {**schema["$defs"][section], "$defs": schema["$defs"]}
        merged[section] = _validate(values, section_schema, f"methods.{method}.{section}")
    return {"spec": spec, **merged}
