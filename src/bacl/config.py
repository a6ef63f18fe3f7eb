"""The one configuration system: YAML validated against ``workflow/schemas/config.schema.yaml``.

Snakemake validates the same file with the same schema (``snakemake.utils.validate``); the CLI
uses :func:`load_config`. Defaults from the schema are filled in, and a bad value raises
``ConfigError`` naming the key path before any compute. Method rows may override the shared
``bacl``, ``transformer`` and ``train`` sections; :func:`method_settings` merges and re-validates.
"""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import yaml

__all__ = ["ConfigError", "SCHEMA_PATH", "load_config", "merge_base", "validate_config", "method_settings"]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """An invalid configuration; the message names the offending key."""


def _schema() -> dict:
    if not SCHEMA_PATH.is_file():
        raise FileNotFoundError(f"config schema {SCHEMA_PATH} is missing (it ships with the repository)")
    return yaml.safe_load(SCHEMA_PATH.read_text())


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
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
        raise ConfigError(f"{where}: invalid value at key '{key}': {error.message}")
    return instance


def validate_config(config: dict, where: str = "config") -> dict:
    """Validate ``config`` in place (defaults filled) and return it."""
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: the top level must be a mapping, got {type(config).__name__}")
    return _validate(config, _schema(), where)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def merge_base(config: dict, directory: str | Path) -> dict:
    """A config with ``base: FILE`` (relative to ``directory``) is that file's config with this
    one's values merged on top (mappings merge key by key, anything else is replaced), so a small
    variant such as the smoke config states only what differs."""
    if "base" not in config:
        return config
    base_path = Path(directory) / config["base"]
    base = merge_base(_read_yaml(base_path), base_path.parent)
    return _deep_merge(base, {k: v for k, v in config.items() if k != "base"})


def load_config(path: str | Path) -> dict:
    """Read (resolving ``base``) and validate a YAML config file."""
    path = Path(path)
    return validate_config(merge_base(_read_yaml(path), path.parent), where=str(path))


def method_settings(config: dict, method: str) -> dict:
    """The fully merged settings of one method: ``spec``, ``bacl``, ``transformer``, ``train``."""
    methods = config["methods"]
    if method not in methods:
        raise ConfigError(f"method {method!r} is not in the config's methods ({sorted(methods)})")
    spec = methods[method]
    schema = _schema()
    merged = {}
    for section in ("bacl", "transformer", "train"):
        values = {**config[section], **spec.get(section, {})}
        section_schema = {**schema["$defs"][section], "$defs": schema["$defs"]}
        merged[section] = _validate(values, section_schema, f"methods.{method}.{section}")
    return {"spec": spec, **merged}
