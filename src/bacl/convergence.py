"""Is a run trained to its plateau? The validation points a run records during training.

During training (``bacl.train``, every ``validate_every`` steps and at step 0) a run records, on
the ``val`` split:

* ``val_r1``: embedding retrieval R@1, the mean of x-to-text and text-to-x, with caption
  equivalence as ground truth (the metric of the main table, on the whole val split);
* ``val_head_pairwise``: for aligners with a match head, its pairwise boundary accuracy (the true
  caption's match logit above a boundary negative's) on a fixed subset of val samples, by
  :func:`bacl.evaluate.evaluate` itself. At step 0 it is the untrained Transformer's reference.

The plateau criterion read off these points is :func:`bacl.metrics.plateau.plateau_report`.
"""

from __future__ import annotations

import copy

import torch

from .aligners import Aligner
from .evaluate import embed, evaluate
from .featureset import FeatureSet
from .metrics import bidirectional_retrieval

__all__ = ["VALIDATION_POINTS", "validation_subset", "validation_metrics"]

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
