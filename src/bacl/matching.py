"""The cross-modal Transformer's terms in BACL: a match list per anchor, and CLA on it.

Each of A anchors (x side) has a list of captions, its positive and up to K negatives (invalid
slots are skipped). One Transformer call scores every (x, caption) pair of every list:

* ``L_match``, listwise (default): cross-entropy of the list's match logits with the positive
  as the target, InfoNCE on the Transformer ("L_contrast on the Transformer"); chance
  ``log(1 + number of valid negatives)``. The first reading, ``hardest_bce``, is binary
  cross-entropy of the positive against one negative (the list has K = 1).
* ``L_local`` compares the positive's attention with each negative's: the discriminative reading
  (:func:`~bacl.discriminative_cla.discriminative_local_attention_loss`, needs token ids) or the
  literal formula (:func:`~bacl.attention.contrastive_local_attention_loss`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from .attention import CrossModalTransformer, contrastive_local_attention_loss
from .discriminative_cla import discriminative_local_attention_loss
from .token_alignment import align_tokens

__all__ = ["MATCH_OBJECTIVES", "CLA_FORMS", "MatchList", "score_match_list", "match_loss", "local_loss"]

MATCH_OBJECTIVES = ("listwise", "hardest_bce")
CLA_FORMS = ("discriminative", "literal")


class MatchList(NamedTuple):
    """A anchors' scored lists; n = number of valid negatives, in ``valid.nonzero()`` order.

    logits: (A, 1 + K) match logits, the positive first; -inf at invalid negatives.
    valid: (A, K) bool.
    positive_attention: (A, L, Lc) last-layer cross-attention of each positive caption (L: the
        longer of the positives' and the negatives' token lengths; padded rows are 0).
    negative_attention: (n, L, Lc) the same for each valid negative.
    positive_mask, negative_mask: (A, L), (n, L) bool, the real tokens.
    pair_anchor: (n,) the anchor (row of the list) of each valid negative.
    """

    logits: torch.Tensor
    valid: torch.Tensor
    positive_attention: torch.Tensor
    negative_attention: torch.Tensor
    positive_mask: torch.Tensor
    negative_mask: torch.Tensor
    pair_anchor: torch.Tensor


def score_match_list(cross_modal: CrossModalTransformer, context, context_mask, positive, positive_mask,
                     negatives, negatives_mask, valid: torch.Tensor) -> MatchList:
    """Score A lists in one Transformer call.

    Args:
        context, context_mask: (A, Lc, Dc), (A, Lc) the anchors' x tokens.
        positive, positive_mask: (A, Lt, Dt), (A, Lt) the positive captions' tokens.
        negatives, negatives_mask: (n, Ln, Dt), (n, Ln) the valid negatives' tokens, in
            ``valid.nonzero()`` order.
        valid: (A, K) bool, which list slots hold a negative.
    """
    pair_anchor = valid.nonzero()[:, 0]
    length = max(positive.shape[1], negatives.shape[1])
    pad = lambda t, m: (F.pad(t, (0, 0, 0, length - t.shape[1])), F.pad(m, (0, length - m.shape[1])))  # noqa: E731
    (positive, positive_mask), (negatives, negatives_mask) = pad(positive, positive_mask), pad(negatives, negatives_mask)
    # Every caption of a list reads its anchor's context: each context is projected once (context_index).
    context_index = torch.cat([torch.arange(positive.shape[0], device=pair_anchor.device), pair_anchor])
    out = cross_modal(torch.cat([positive, negatives]), context, torch.cat([positive_mask, negatives_mask]),
                      context_mask, context_index=context_index)
    count = positive.shape[0]
    logits = out.match_logit.new_full((count, 1 + valid.shape[1]), float("-inf"))
    logits[:, 0] = out.match_logit[:count]
    logits[:, 1:][valid] = out.match_logit[count:]
    return MatchList(logits, valid, out.attention[:count], out.attention[count:], positive_mask, negatives_mask,
                     pair_anchor)


def match_loss(match_list: MatchList, objective: str) -> torch.Tensor:
    """Listwise cross-entropy (target: the positive), or BCE of the positive vs its one negative."""
    if objective == "listwise":
        targets = torch.zeros(match_list.logits.shape[0], dtype=torch.long, device=match_list.logits.device)
        return F.cross_entropy(match_list.logits, targets)
    logits = torch.cat([match_list.logits[:, 0], match_list.logits[:, 1:][match_list.valid]])
    targets = torch.zeros_like(logits)
    targets[: match_list.logits.shape[0]] = 1.0
    return F.binary_cross_entropy_with_logits(logits, targets)


def local_loss(match_list: MatchList, form: str, context_mask, *, beta: float, omega_size: int, temperature: float,
               positive_ids=None, negative_ids=None) -> torch.Tensor:
    """CLA over every (positive, valid negative) pair of the lists, averaged.

    ``discriminative`` needs the token ids (A, Lt) of the positives and (n, Ln) of the negatives
    (Lt, Ln <= the list's L); ``literal`` compares slot i of both captions over their common
    valid slots. ``context_mask`` (A, Lc) marks the anchors' real x tokens.
    """
    anchor = match_list.pair_anchor
    positive_attention = match_list.positive_attention[anchor]
    negative_attention = match_list.negative_attention
    positive_mask, negative_mask = match_list.positive_mask[anchor], match_list.negative_mask
    if form == "discriminative":
        if positive_ids is None or negative_ids is None:
            raise ValueError("text_token_ids are required for cla_form='discriminative' (token alignment)")
        length = positive_mask.shape[1]
        pad = lambda ids: F.pad(ids.long(), (0, length - ids.shape[1]))  # noqa: E731
        alignment = align_tokens(pad(positive_ids)[anchor], positive_mask, pad(negative_ids), negative_mask)
        return discriminative_local_attention_loss(positive_attention, negative_attention, alignment, temperature)
    pair_mask = (positive_mask & negative_mask)[:, :, None] & context_mask[anchor][:, None, :]
    keep = pair_mask.flatten(1).any(1)
    if not keep.any():
        return positive_attention.sum() * 0.0
    return contrastive_local_attention_loss(positive_attention[keep], negative_attention[keep], beta=beta,
                                            omega_size=omega_size, mask=pair_mask[keep])
