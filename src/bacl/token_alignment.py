"""Explicit token alignment of a caption with another one (a positive with its negative).

CLA's discriminative reading compares the cross-modal attention of a negative caption's tokens
with that of the positive's tokens *at aligned slots*, and needs to know which aligned slots hold
different words. Token features cannot tell: a causal text tower (CLIP's) changes every token
feature after the first edit, so the alignment is computed on token ids.

Two captions of the same length are compared slot by slot: boundary edits (an attribute, a
relation, two bound words swapped) keep the length, and the benchmarks define a negative's wrong
words slot by slot; a minimum-edit alignment could shift a caption that repeats words against
itself at the same cost. Captions of different lengths (retrieved neighbours) get a minimum-edit
(Levenshtein) alignment with unit costs (substitution, insertion, deletion 1 each), aligned
around the inserted and deleted tokens; among alignments of equal cost the backtrack from the end
prefers the diagonal move, then a deleted reference token, then an inserted one, so the result is
deterministic. Batched in torch: the table is filled row by row (each row is a cumulative
minimum), the backtrack runs for all pairs at once.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["TokenAlignment", "align_tokens"]


class TokenAlignment(NamedTuple):
    """How each slot of ``other`` (B, Lo) aligns with ``reference`` (B, Lr).

    partner: (B, Lo) long, the reference slot aligned with each slot of ``other``; -1 for an
        inserted token and for padding. Partners increase strictly along a row.
    differs: (B, Lo) bool, aligned to a reference slot that holds a different token id.
    same: (B, Lo) bool, aligned to a reference slot that holds the same token id.
    """

    partner: torch.Tensor
    differs: torch.Tensor
    same: torch.Tensor


def _check_ids(name: str, ids, mask_name: str, mask) -> int:
    """Validate (B, L) integer ids and their bool mask (True on a prefix of each row); return L."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.is_floating_point() or ids.dtype == torch.bool:
        got = f"{ids.dtype} {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"{name} must be a (B, L) integer tensor, got {got}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != ids.shape:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{mask_name} must be a bool tensor of shape {tuple(ids.shape)}, got {got}")
    if mask.shape[1] > 1 and (mask[:, 1:] & ~mask[:, :-1]).any():
        raise ValueError(f"{mask_name} must mark a prefix of each row (real tokens first, then padding)")
    return ids.shape[1]


def _edit_table(reference: torch.Tensor, other: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, Lr+1, Lo+1) edit distances of all prefix pairs and the (B, Lr, Lo) substitution costs.

    Row i: ``D[j] = min(C[i-1, j] + 1, C[i-1, j-1] + cost[i-1, j-1])`` (a deletion or a diagonal
    move), then insertions: ``C[i, j] = min_{j' <= j} D[j'] + (j - j')``, a cumulative minimum.
    """
    batch, ref_length = reference.shape
    columns = torch.arange(other.shape[1] + 1, device=reference.device)
    cost = (reference[:, :, None] != other[:, None, :]).long()
    table = torch.empty(batch, ref_length + 1, other.shape[1] + 1, dtype=torch.long, device=reference.device)
    table[:, 0] = columns
    for i in range(1, ref_length + 1):
        previous = table[:, i - 1]
        moves = torch.empty_like(previous)
        moves[:, 0] = i
        moves[:, 1:] = torch.minimum(previous[:, 1:] + 1, previous[:, :-1] + cost[:, i - 1])
        table[:, i] = torch.cummin(moves - columns, dim=1).values + columns
    return table, cost


def align_tokens(reference_ids: torch.Tensor, reference_mask: torch.Tensor, other_ids: torch.Tensor,
                 other_mask: torch.Tensor) -> TokenAlignment:
    """Align each row of ``other`` with the same row of ``reference`` (slot by slot at equal
    lengths, minimum edits otherwise).

    Args:
        reference_ids: (B, Lr) token ids of the reference captions (e.g. the positives).
        reference_mask: (B, Lr) bool, True for a real token (a prefix of the row).
        other_ids: (B, Lo) token ids of the other captions (e.g. the negatives).
        other_mask: (B, Lo) bool, the same for them.
    """
    _check_ids("reference_ids", reference_ids, "reference_mask", reference_mask)
    other_length = _check_ids("other_ids", other_ids, "other_mask", other_mask)
    if other_ids.shape[0] != reference_ids.shape[0] or other_ids.device != reference_ids.device:
        raise ValueError(f"other_ids has {other_ids.shape[0]} rows on {other_ids.device}, reference_ids "
                         f"{reference_ids.shape[0]} on {reference_ids.device}")
    table, cost = _edit_table(reference_ids, other_ids)
    rows = torch.arange(reference_ids.shape[0], device=reference_ids.device)
    i, j = reference_mask.sum(1), other_mask.sum(1)
    partner = torch.full_like(other_ids, -1, dtype=torch.long)
    for _ in range(reference_ids.shape[1] + other_length):  # each step moves i or j (or both) down by one
        live = (i > 0) | (j > 0)
        if not live.any():
            break
        previous_i, previous_j = (i - 1).clamp_min(0), (j - 1).clamp_min(0)
        here = table[rows, i, j]
        diagonal = live & (i > 0) & (j > 0) & (here == table[rows, previous_i, previous_j]
                                               + cost[rows, previous_i, previous_j])
        deletion = live & ~diagonal & (i > 0) & (here == table[rows, previous_i, j] + 1)
        insertion = live & ~diagonal & ~deletion
        partner[rows[diagonal], previous_j[diagonal]] = previous_i[diagonal]
        i = i - (diagonal | deletion).long()
        j = j - (diagonal | insertion).long()
    # Same length: slot by slot.
    same_length = (reference_mask.sum(1) == other_mask.sum(1))[:, None]
    slots = torch.arange(other_length, device=other_ids.device).expand_as(partner)
    partner = torch.where(same_length, torch.where(other_mask, slots, -1), partner)
    aligned = partner >= 0
    equal = reference_ids.gather(1, partner.clamp_min(0)) == other_ids
    return TokenAlignment(partner, aligned & ~equal, aligned & equal)
