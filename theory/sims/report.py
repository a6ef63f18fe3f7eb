"""Verdict records and figure files written by the notebooks, and their validation.

A verdict file is a JSON object ``{claim_key: entry}``; every entry holds the claim, the setting it
was tested in, one headline estimate with its confidence interval, a verdict, and details.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

__all__ = ["VERDICTS", "merge_verdict_files", "save_figure", "validate_verdicts", "verdict_entry", "write_verdicts"]

VERDICTS = ("supported", "not supported", "inconclusive")
_REQUIRED = ("claim", "setting", "estimate", "confidence_interval", "confidence_level", "verdict", "details")


def verdict_entry(claim: str, setting: str, estimate_name: str, estimate: float, interval, verdict: str,
                  details: dict, confidence_level: float = 0.95) -> dict:
    """One claim's record; raises ValueError on a malformed field."""
    entry = {
        "claim": claim, "setting": setting,
        "estimate": {"name": estimate_name, "value": float(estimate)},
        "confidence_interval": [float(v) for v in interval],
        "confidence_level": float(confidence_level),
        "verdict": verdict, "details": details,
    }
    validate_verdicts({"entry": entry})
    return entry


def _check_finite(value, where: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"{where} is not finite ({value})")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_finite(item, f"{where}[{i}]")
    else:
        raise ValueError(f"{where} has type {type(value).__name__}, which JSON cannot hold")


def validate_verdicts(data: dict) -> None:
    """Raise ValueError, naming the field, unless ``data`` is a well-formed verdict mapping."""
    if not isinstance(data, dict) or not data:
        raise ValueError("verdicts must be a non-empty JSON object")
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{key} must be an object")
        missing = [field for field in _REQUIRED if field not in entry]
        if missing:
            raise ValueError(f"{key} lacks {missing}")
        if entry["verdict"] not in VERDICTS:
            raise ValueError(f"{key}.verdict must be one of {VERDICTS}, got {entry['verdict']!r}")
        estimate = entry["estimate"]
        if not isinstance(estimate, dict) or set(estimate) != {"name", "value"}:
            raise ValueError(f"{key}.estimate must be {{'name', 'value'}}, got {estimate!r}")
        interval = entry["confidence_interval"]
        if not isinstance(interval, list) or len(interval) != 2 or not interval[0] <= interval[1]:
            raise ValueError(f"{key}.confidence_interval must be [low, high] with low <= high, got {interval!r}")
        if not 0 < entry["confidence_level"] < 1:
            raise ValueError(f"{key}.confidence_level must lie in (0, 1), got {entry['confidence_level']!r}")
        if not isinstance(entry["setting"], str) or not entry["setting"]:
            raise ValueError(f"{key}.setting must be a non-empty string")
        _check_finite(entry, key)


def write_verdicts(path, entries: dict) -> Path:
    """Validate and write ``entries`` as JSON to ``path`` (parents created)."""
    validate_verdicts(entries)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return path


def merge_verdict_files(paths, output) -> dict:
    """Merge per-notebook verdict files into one; a claim key may appear only once."""
    merged: dict = {}
    for path in paths:
        for key, entry in json.loads(Path(path).read_text()).items():
            if key in merged:
                raise ValueError(f"claim {key!r} appears in more than one verdict file (second: {path})")
            merged[key] = entry
    write_verdicts(output, merged)
    return merged


def save_figure(figure, directory, name: str) -> list[Path]:
    """Save ``figure`` as ``name``.png and ``name``.pdf under ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{name}.{suffix}" for suffix in ("png", "pdf")]
    for path in paths:
        # Fixed metadata keeps the PDF bytes reproducible across runs.
        figure.savefig(path, dpi=150, bbox_inches="tight", metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    return paths
