"""CLA, discriminative reading: attention that differs exactly where the captions differ.

For a positive caption and a negative one on the same context, align their tokens
(:func:`~bacl.token_alignment.align_tokens`): D holds the negative's slots aligned to a
*different* positive token, S the slots aligned to the *same* token. With
``TV_i = 1/2 * sum_j |A+(p(i), j) - A-(i, j)|`` the total-variation distance (in [0, 1]) of the
negative's attention row i from its aligned positive row p(i),

    L_local = -log( sum_{i in D} exp(TV_i / tau) / sum_{i in D u S} exp(TV_i / tau) ),

averaged over the pairs that have both a differing and an equal aligned slot: an InfoNCE over
token slots whose positives are the differing words. Its minimum, ``log(1 + |S|/|D| exp(-1/tau))``,
is reached exactly when every differing word attends where its aligned word does not (TV = 1 on
D) and every equal word attends as in the positive (TV = 0 on S). Both are conditions on the
supports of the rows, met by rows of any entropy, so the minimum does not ask for sharper
attention; the slots are chosen by the token ids (no gradient), so the loss cannot pick its own
targets; and the softmax saturates once the differing slots dominate, so nothing pushes further.
(The literal formula, :func:`~bacl.attention.contrastive_local_attention_loss`, is minimised by
one-hot negative rows wherever the maps already differ; paper/ASSUMPTIONS.md, CLA.)
"""

from __future__ import annotations

import torch

from .attention import check_attention_maps
from .token_alignment import TokenAlignment
from .validation import check_positive_number

__all__ = ["aligned_row_divergence", "discriminative_local_attention_loss"]


def aligned_row_divergence(attn_pos: torch.Tensor, attn_neg: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    """(B, Lo) total-variation distance of each negative row from its aligned positive row.

    Args:
        attn_pos: (B, Lr, Lc) attention of the positive caption's tokens over the context.
        attn_neg: (B, Lo, Lc) attention of the negative caption's tokens over the same context.
        partner: (B, Lo) aligned positive slot of each negative slot (-1: none; its value is 0).
    """
    index = partner.clamp_min(0)[..., None].expand(-1, -1, attn_pos.shape[-1])
    divergence = 0.5 * (attn_pos.gather(1, index) - attn_neg).abs().sum(-1)
    return divergence.masked_fill(partner < 0, 0.0)


def discriminative_local_attention_loss(attn_pos: torch.Tensor, attn_neg: torch.Tensor, alignment: TokenAlignment,
                                        temperature: float = 0.1, output_dict: bool = False):
    """The discriminative CLA loss of B (positive, negative) pairs on the same contexts.

    Args:
        attn_pos: (B, Lr, Lc) the positive's cross-attention (rows of valid tokens sum to 1).
        attn_neg: (B, Lo, Lc) the negative's cross-attention.
        alignment: the negative's tokens aligned with the positive's (``partner`` (B, Lo) into Lr).
        temperature: tau; 0.1 gives TV in [0, 1] a 10-nat range, so the loss's floor
            ``|S|/|D| e^{-10}`` is negligible for captions of up to hundreds of tokens.
        output_dict: return ``{"local_loss", "divergence", "counted"}`` instead: divergence
            (B, Lo) the TV of each slot (0 where unaligned), counted (B,) bool, the pairs averaged.

    A pair without a differing or without an equal aligned slot adds nothing; with no such pair
    in the batch the loss is 0 (with a gradient path, so callers can always add it).
    """
    attn_pos, attn_neg = check_attention_maps(attn_pos, attn_neg, same_shape=False)
    if not isinstance(alignment, TokenAlignment) or alignment.partner.shape != attn_neg.shape[:2]:
        raise ValueError(f"alignment must be a TokenAlignment with partner of shape {tuple(attn_neg.shape[:2])}")
    if alignment.partner.numel() and alignment.partner.max() >= attn_pos.shape[1]:
        raise ValueError(f"alignment.partner points past the positive's {attn_pos.shape[1]} token slots")
    temperature = check_positive_number("temperature", temperature)
    divergence = aligned_row_divergence(attn_pos, attn_neg, alignment.partner)
    differs, same = alignment.differs, alignment.same
    counted = differs.any(1) & same.any(1)
    # Rows that are not counted keep every logit, so no -inf - (-inf) reaches the gradient.
    uncounted = ~counted[:, None]
    logits = divergence / temperature
    all_slots = torch.logsumexp(logits.masked_fill(~(differs | same | uncounted), float("-inf")), dim=1)
    differing = torch.logsumexp(logits.masked_fill(~(differs | uncounted), float("-inf")), dim=1)
    per_pair = (all_slots - differing) * counted
    local_loss = per_pair.sum() / counted.sum().clamp_min(1)
    if output_dict:
        return {"local_loss": local_loss, "divergence": divergence, "counted": counted}
    return local_loss
