"""Multi-head attention that returns its probabilities, with the captions of one context grouped.

The cross-modal Transformer (:mod:`bacl.attention`) needs the attention probabilities it uses
(CLA reads them), so attention is written out here rather than taken from torch. Its text tokens
attend to context tokens that the layers never update; when several captions share a context (a
match list: the positive and K negatives of one image; re-ranking: the top k captions of one
image), :class:`ContextGroups` stacks their queries so that the context's keys and values are
computed once and attended in one larger product.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ContextGroups", "MaskedAttention", "key_bias"]


def key_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(N, 1, 1, L) additive attention bias of an (N, L) key mask: 0 for a valid key, -inf for a
    masked one (masked keys get exactly zero weight; every sample has a valid key, so no row is
    all -inf). Added to the scores, it needs no backward pass of its own (a masked_fill does)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))[:, None, None]


class ContextGroups:
    """B text rows grouped by their context: row b is caption slot ``rank[b]`` of context ``index[b]``.

    The cross-attention of the G captions of one context is one attention of their queries,
    stacked along the query axis, (G * Lt) queries against the context's Lc keys: every attention
    row is computed independently of the others, so stacking is exact, and the keys and values are
    computed once per context. G is the most captions a context has; the slots of contexts with
    fewer are padding (masked queries, zero attention rows, dropped when unstacking).

    Args:
        index: (B,) integer context of each text row, in [0, contexts).
        contexts: C, the number of contexts.
        text_mask: (B, Lt) bool, the text rows' valid tokens.
    """

    def __init__(self, index: torch.Tensor, contexts: int, text_mask: torch.Tensor):
        counts = torch.bincount(index, minlength=contexts)
        order = torch.argsort(index, stable=True)
        first = (counts.cumsum(0) - counts)[index[order]]  # position of each sorted row's group start
        self.rank = torch.empty_like(index).index_copy_(0, order, torch.arange(len(index), device=index.device) - first)
        self.index, self.contexts, self.size, self.length = index, contexts, int(counts.max()), text_mask.shape[1]
        self.slot = index * self.size + self.rank  # row of the (C * G) grid of caption slots
        self.query_mask = self.stack(text_mask)

    def stack(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, Lt, ...) -> (C, G * Lt, ...), padding slots zero (False)."""
        grid = rows.new_zeros((self.contexts * self.size, *rows.shape[1:])).index_copy(0, self.slot, rows)
        return grid.view(self.contexts, self.size * self.length, *rows.shape[2:])

    def unstack(self, stacked: torch.Tensor) -> torch.Tensor:
        """(C, G * Lt, W) -> (B, Lt, W)."""
        return stacked.reshape(self.contexts * self.size, self.length, -1).index_select(0, self.slot)

    def unstack_heads(self, probabilities: torch.Tensor) -> torch.Tensor:
        """(C, H, G * Lt, Lc) -> (B, H, Lt, Lc)."""
        contexts, heads, _, keys = probabilities.shape
        return probabilities.view(contexts, heads, self.size, self.length, keys)[self.index, :, self.rank]


class MaskedAttention(nn.Module):
    """Multi-head attention written out, so that it can return the probabilities it uses."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, queries, keys, query_mask, key_bias, groups: ContextGroups | None = None):
        """queries (B, Lq, W), query_mask (B, Lq) bool; keys (N, Lk, W), key_bias (N, 1, 1, Lk) from
        :func:`key_bias`; N = B, or with ``groups`` the C contexts the B rows are grouped by
        -> (B, Lq, W), (B, H, Lq, Lk)."""
        q = self.query(queries)
        if groups is not None:
            q, query_mask = groups.stack(q), groups.query_mask
        batch, num_queries, width = q.shape
        head_dim = width // self.heads
        q = q.view(batch, num_queries, self.heads, head_dim).transpose(1, 2)
        k, v = self.key_value(keys).view(batch, keys.shape[1], 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        probabilities = ((q @ k.transpose(-2, -1)) * head_dim**-0.5 + key_bias).softmax(-1)
        # Padded queries get all-zero rows: nothing they compute can be mistaken for an attention map.
        probabilities = probabilities * query_mask[:, None, :, None].to(probabilities.dtype)
        attended = (probabilities @ v).transpose(1, 2).reshape(batch, num_queries, width)
        if groups is not None:
            attended, probabilities = groups.unstack(attended), groups.unstack_heads(probabilities)
        return self.out(attended), probabilities
