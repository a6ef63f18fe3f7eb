"""Diagnostics of cross-attention maps: how sharp they are and where positive and negative differ.

CLA shapes attention; these numbers say how. ``entropy`` is the mean entropy (nats) of the
positive captions' attention rows (``max_entropy``, log of the number of context tokens, is a
uniform row's); ``divergence_wrong`` and ``divergence_other`` are the mean total attention change
``sum_j |A+(i, j) - A-(i, j)|`` (in [0, 2]) at a negative's truly wrong tokens and at its other
eligible tokens: a loss that localises errors raises the first and not the second, one that only
sharpens raises both.
"""

from __future__ import annotations

import math

from ._checks import _bool_tensor, _float_tensor

__all__ = ["attention_diagnostics"]


def attention_diagnostics(attn_pos, attn_neg, wrong, eligible, context_mask) -> dict[str, float]:
    """Entropy and divergence at wrong vs other tokens of R (positive, negative) pairs.

    Args:
        attn_pos, attn_neg: (R, Lt, Lc) attention of the positive and of the negative caption
            (same slots: the boundary negatives are same-length edits).
        wrong: (R, Lt) bool, the negative's truly wrong tokens.
        eligible: (R, Lt) bool, the tokens that can differ at all (``wrong`` should be within).
        context_mask: (R, Lc) bool, the real context tokens (for ``max_entropy``).
    """
    attn_pos = _float_tensor("attn_pos", attn_pos, 3)
    attn_neg = _float_tensor("attn_neg", attn_neg, 3)
    if attn_neg.shape != attn_pos.shape:
        raise ValueError(f"attn_neg has shape {tuple(attn_neg.shape)}, attn_pos {tuple(attn_pos.shape)}")
    rows, length, context = attn_pos.shape
    wrong = _bool_tensor("wrong", wrong, (rows, length))
    eligible = _bool_tensor("eligible", eligible, (rows, length))
    context_mask = _bool_tensor("context_mask", context_mask, (rows, context))
    change = (attn_pos.double() - attn_neg.double()).abs().sum(-1)
    other = eligible & ~wrong
    # Rows of real tokens sum to 1; padded rows are all 0 and are left out.
    real = attn_pos.sum(-1) > 0.5
    entropy = -(attn_pos.double() * attn_pos.double().clamp_min(1e-12).log()).sum(-1)
    mean = lambda values, where: float(values[where].mean()) if where.any() else math.nan  # noqa: E731
    return {
        "entropy": mean(entropy, real),
        "max_entropy": float(context_mask.sum(1).double().log().mean()),
        "divergence_wrong": mean(change, wrong),
        "divergence_other": mean(change, other),
    }
