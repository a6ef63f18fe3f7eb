"""BLIP (ALBEF recipe): contrastive heads plus image-text matching with similarity-drawn negatives.

Simplifications (paper/ASSUMPTIONS.md): no momentum distillation, no captioning decoder; the
matching Transformer is our :class:`~bacl.attention.CrossModalTransformer` on frozen tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import CLIPAligner, FeatureBatch, FeatureDims, cross_modal_transformer

__all__ = ["BLIPAligner", "similarity_drawn_negatives"]


def similarity_drawn_negatives(logits: torch.Tensor, same: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """For each row of (B, B) logits (similarity / temperature), one column drawn with probability
    softmax(row) over the columns that are not positives (``same`` (B, B) bool, True where a column
    is a positive of the row: the diagonal and equivalent captions); ALBEF/BLIP's hard-negative
    mining. ALBEF zeroes the positives after the softmax and lets ``torch.multinomial``
    renormalise; masking them before it is the same distribution without underflow (at scale 100
    the positive's weight can leave every negative at 0 in float32). A row with no negative draws
    uniformly (it is never used as one: ``same`` covers the whole row only for a one-caption batch)."""
    masked = logits.float().masked_fill(same, float("-inf"))
    has_negative = (~same).any(1, keepdim=True)
    weights = torch.where(has_negative, torch.softmax(masked.masked_fill(~has_negative, 0.0), dim=1),
                          torch.ones_like(masked))
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)


class BLIPAligner(CLIPAligner):
    """ITC (CLIP loss) + ITM: the matching head sees the positive pair, one negative text per
    x and one negative x per text, drawn with probability softmax(similarity / tau) (tau: the ITC's
    learned temperature), and is trained with binary cross-entropy on the 3B pairs (BLIP's 2-way
    softmax on them is the same loss)."""

    def __init__(self, dims: FeatureDims, embed_dim: int | None = None, itm_weight: float = 1.0,
                 itm_anchors: int | None = None, **transformer):
        super().__init__(dims, embed_dim)
        self.matcher = cross_modal_transformer(dims, transformer)
        self.itm_weight = itm_weight  # ALBEF/BLIP weigh ITC and ITM equally
        # ITM on at most this many anchors per step (the first of the shuffled batch); None: all.
        # Negatives are still drawn from the whole batch. Bounds the Transformer's cost.
        if itm_anchors is not None and (isinstance(itm_anchors, bool) or not isinstance(itm_anchors, int) or itm_anchors < 1):
            raise ValueError(f"itm_anchors must be a positive integer or None, got {itm_anchors!r}")
        self.itm_anchors = itm_anchors

    @property
    def cross_modal(self):
        return self.matcher

    def loss(self, batch: FeatureBatch, progress: float, generator=None):
        if batch.x_tokens is None or batch.text_tokens is None:
            raise ValueError("BLIP needs x_tokens and text_tokens in the batch")
        x_embedding, text_embedding = self.encode_x(batch.x), self.encode_text(batch.text)
        terms = self.contrastive_terms(x_embedding, text_embedding, batch, progress, generator)
        with torch.no_grad():
            # softmax(sim / tau) with the ITC's own learned temperature, as ALBEF and BLIP do
            # (their `self.temp`, init 0.07, learnable): here tau = 1 / logit scale.
            similarity = self.scale() * (x_embedding @ text_embedding.T)
            # Positives: the diagonal and every duplicate of a pair's caption (identical captions
            # have identical frozen features, hence identical embeddings).
            same = (text_embedding @ text_embedding.T >= 1 - 1e-6) | torch.eye(
                len(similarity), dtype=torch.bool, device=similarity.device)
            negative_text = similarity_drawn_negatives(similarity, same, generator)[: self.itm_anchors]
            negative_x = similarity_drawn_negatives(similarity.T, same.T, generator)[: self.itm_anchors]
        # The 3A pairs (x, its text), (x, a negative text), (a negative x, the text) in one call; each
        # x row they use is projected once (the Transformer's context_index).
        anchors = torch.arange(len(negative_text), device=negative_text.device)
        x_rows, inverse = torch.cat([anchors, anchors, negative_x]).unique(return_inverse=True)
        text_rows = torch.cat([anchors, negative_text, anchors])
        x_mask, text_mask = _mask(batch.x_token_mask, batch.x_tokens), _mask(batch.text_token_mask, batch.text_tokens)
        logits = self.match_logits(batch.x_tokens[x_rows], x_mask[x_rows], batch.text_tokens[text_rows],
                                   text_mask[text_rows], context_index=inverse)
        targets = torch.zeros_like(logits)
        targets[: len(negative_text)] = 1.0
        terms["match_loss"] = self.itm_weight * F.binary_cross_entropy_with_logits(logits, targets)
        return terms


def _mask(mask, tokens):
    return torch.ones(tokens.shape[:-1], dtype=torch.bool, device=tokens.device) if mask is None else mask
