"""Statistics across seeds: mean and sample standard deviation of each metric.

NumPy only: the pipeline's jobs that only aggregate finished runs need not import torch for them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

__all__ = ["aggregate_seeds", "mean_std"]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) across seeds; std is 0 for a single value."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"values must be a non-empty sequence of numbers, got {values!r}")
    if any(isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) for v in values):
        raise ValueError(f"values must hold finite numbers, got {list(values)!r}")
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def aggregate_seeds(runs: Sequence[dict]) -> dict:
    """Combine one nested metric dict per seed into the same nesting of ``{"mean", "std", "n"}``.

    All runs must share the same keys at every level; leaves must be finite numbers.
    """
    if not isinstance(runs, Sequence) or len(runs) == 0:
        raise ValueError("runs must be a non-empty sequence of metric dicts")

    def combine(nodes: list, path: str):
        if all(isinstance(node, dict) for node in nodes):
            keys = list(nodes[0])
            if any(set(node) != set(keys) for node in nodes):
                raise ValueError(f"runs disagree on the keys at {path or 'the top level'}: {[sorted(map(str, node)) for node in nodes]}")
            return {key: combine([node[key] for node in nodes], f"{path}.{key}" if path else str(key)) for key in keys}
        if any(isinstance(node, dict) for node in nodes):
            raise ValueError(f"runs mix dicts and numbers at {path or 'the top level'}")
        try:
            mean, std = mean_std(nodes)
        except ValueError:
            raise ValueError(f"runs hold a value that is not a finite number at {path}: {nodes!r}") from None
        return {"mean": mean, "std": std, "n": len(nodes)}

    if not all(isinstance(run, dict) for run in runs):
        raise ValueError("runs must all be dicts")
    return combine(list(runs), "")
