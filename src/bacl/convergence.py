"""Is a run trained to its plateau? Validation points during training and the plateau criterion.

During training (``bacl.train``, every ``validate_every`` steps and at step 0) a run records, on
the ``val`` split:

* ``val_r1``: embedding retrieval R@1, the mean of x-to-text and text-to-x, with caption
  equivalence as ground truth (the metric of the main table, on the whole val split);
* ``val_head_pairwise``: for aligners with a match head, its pairwise boundary accuracy (the true
  caption's match logit above a boundary negative's) on a fixed subset of val samples, by
  :func:`bacl.evaluate.evaluate` itself. At step 0 it is the untrained Transformer's reference.

The plateau criterion (paper/ASSUMPTIONS.md, "Converged training"): a run has reached its plateau
when its val R@1 gained less than :data:`PLATEAU_GAIN_PP` percentage points over the last quarter
of its steps, the gain read off the least-squares line through the validation points of that
quarter (several points, so one noisy point does not decide). The training loss's change over the
same quarter (the same fit), relative to its mean there, is reported beside it as a secondary line.
"""

from __future__ import annotations

import copy
import math

import torch

from .aligners import Aligner
from .evaluate import embed, evaluate
from .featureset import FeatureSet
from .metrics import bidirectional_retrieval

__all__ = ["PLATEAU_GAIN_PP", "PLATEAU_FRACTION", "VALIDATION_POINTS", "validation_subset", "validation_metrics",
           "last_quarter_change", "plateau_report"]

# A run is at its plateau when its val R@1 gains less than this over its last quarter: well below
# the smallest method differences the tables test (BNS +1.2 pp at 1000 steps in the first run) and
# about the seed spread of pooled metrics (0.1-0.6 pp), so an unfinished run cannot decide a verdict.
PLATEAU_GAIN_PP = 0.5
PLATEAU_FRACTION = 0.25  # "the last quarter of training"
# Validation points per run when validate_every is not given: 4 inside the last quarter (5 with its
# first point), enough for the least-squares gain; a handful of evaluations, a few % of a run's time.
VALIDATION_POINTS = 16
# Row-index tensors of a split: they point at rows of the whole split and do not survive taking a subset.
_ROW_INDEX_TENSORS = ("text_neighbours", "x_neighbours", "sibling_index", "sibling_type")


def validation_subset(val_set: FeatureSet, samples: int, seed: int = 0) -> FeatureSet | None:
    """A fixed subset of ``samples`` val rows (a seeded permutation's first, in row order) for the
    match-head metric, without the row-index tensors; None when the split has no boundary negatives."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if "negative_text_tokens" not in val_set or "x_tokens" not in val_set:
        return None
    rows = torch.randperm(len(val_set), generator=torch.Generator().manual_seed(seed))[:samples].sort().values
    tensors = {name: tensor[rows] for name, tensor in val_set.tensors.items() if name not in _ROW_INDEX_TENSORS}
    return FeatureSet(tensors, val_set.meta, source=f"{val_set.source} ({len(rows)} validation rows)")


@torch.no_grad()
def validation_metrics(aligner: Aligner, val_set: FeatureSet, subset: FeatureSet | None = None) -> dict[str, float]:
    """``val_r1`` on all of ``val_set`` and, with a match head and a ``subset``, ``val_head_pairwise``.

    The aligner is evaluated as a CPU copy, so its training state (mode, device, caches) is never
    touched: a run trains to the same weights, bit for bit, with or without validation.
    """
    model = copy.deepcopy(aligner).cpu().eval()
    x_embedding, text_embedding = embed(model, val_set)
    ids = val_set["caption_id"]
    retrieval = bidirectional_retrieval(None, None, ids, ids, ks=(1,),
                                        similarity=model.similarity(x_embedding, text_embedding))
    out = {"val_r1": (retrieval["image_to_text"]["R@1"] + retrieval["text_to_image"]["R@1"]) / 2}
    if subset is not None and model.has_match_head:
        # rerank_k=1: the re-ranked retrieval evaluate also computes is not used here; k=1 keeps it cheapest
        out["val_head_pairwise"] = evaluate(model, subset, rerank_k=1)["boundary_match_head"]["pairwise_accuracy"]
    return out


def last_quarter_change(steps, values, total_steps: int, fraction: float = PLATEAU_FRACTION) -> float | None:
    """Change of a curve over the last ``fraction`` of ``total_steps``: the slope of the least-squares
    line through its points with step >= (1 - fraction) * total_steps, times that span.

    Args:
        steps: (n,) steps of the points; values: (n,) the curve there (None or NaN points are skipped).
    Returns:
        The fitted change (in the values' units), or None with fewer than two distinct steps in the quarter.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    if len(steps) != len(values):
        raise ValueError(f"steps ({len(steps)}) and values ({len(values)}) must have the same length")
    start = (1 - fraction) * total_steps
    points = [(float(s), float(v)) for s, v in zip(steps, values)
              if s >= start and v is not None and math.isfinite(float(v))]
    if len({s for s, _ in points}) < 2:
        return None
    mean_s = sum(s for s, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    slope = (sum((s - mean_s) * (v - mean_v) for s, v in points)
             / sum((s - mean_s) ** 2 for s, _ in points))
    return slope * fraction * total_steps


def plateau_report(records: list[dict], total_steps: int, threshold_pp: float = PLATEAU_GAIN_PP) -> dict:
    """The plateau criterion of one run from its metrics log records (dicts with ``step``).

    Returns, R@1 and head accuracy in percent: ``initial_val_r1`` and ``final_val_r1`` (first and
    last validation points; the first is the untrained heads' at step 0), ``val_r1_gain_pp`` (over
    the last quarter), ``meets`` (None where the run logged too few validation points to judge:
    the tables count it as missing the criterion), the same ``initial_`` / ``final_`` / ``_gain_pp``
    of ``val_head_pairwise``, the training loss's ``loss_relative_change`` and ``threshold_pp``.
    """
    out = {"threshold_pp": threshold_pp}
    for key, name in (("val_r1", "val_r1"), ("val_head_pairwise", "val_head")):
        points = sorted((r["step"], r[key]) for r in records if key in r)
        change = last_quarter_change([s for s, _ in points], [v for _, v in points], total_steps)
        out[f"initial_{key}"] = 100 * points[0][1] if points else None
        out[f"final_{key}"] = 100 * points[-1][1] if points else None
        out[f"{name}_gain_pp"] = None if change is None else 100 * change
    gain = out["val_r1_gain_pp"]
    out["meets"] = None if gain is None else gain < threshold_pp
    losses = sorted((r["step"], r["loss"]) for r in records if "loss" in r)
    change = last_quarter_change([s for s, _ in losses], [v for _, v in losses], total_steps)
    quarter = [v for s, v in losses if s >= (1 - PLATEAU_FRACTION) * total_steps]
    out["loss_relative_change"] = None if change is None else change / abs(sum(quarter) / len(quarter))
    return out
