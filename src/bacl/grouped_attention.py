"""Multi-head attention that returns its probabilities, with the captions of one context grouped.

The cross-modal Transformer (:mod:`bacl.attention`) needs the attention probabilities it uses
(CLA reads them), so attention is written out here rather than taken from torch. Its text tokens
attend to context tokens that the layers never update; when several captions share a context (a
match list: the positive and K negatives of one image; re-ranking: the top k captions of one
image), :class:`ContextGroups` stacks their queries so that the context's keys and values are
computed once and attended in one larger product. :class:`AttentionMaps` turns the probabilities
back into one (B, H, Lt, Lc) map per caption, only for the layers that are read.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["AttentionMaps", "ContextGroups", "MaskedAttention", "key_bias"]


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
    fewer are padding (zero queries, dropped when unstacking).

    Args:
        index: (B,) integer context of each text row, in [0, contexts).
        contexts: C, the number of contexts.
        length: Lt, the text rows' token count.
    """

    def __init__(self, index: torch.Tensor, contexts: int, length: int):
        counts = torch.bincount(index, minlength=contexts)
        order = torch.argsort(index, stable=True)
        first = (counts.cumsum(0) - counts)[index[order]]  # position of each sorted row's group start
        self.rank = torch.empty_like(index).index_copy_(0, order, torch.arange(len(index), device=index.device) - first)
        self.index, self.contexts, self.size, self.length = index, contexts, int(counts.max()), length
        self.slot = index * self.size + self.rank  # row of the (C * G) grid of caption slots

    def stack(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, Lt, W) -> (C, G * Lt, W), padding slots zero."""
        grid = rows.new_zeros((self.contexts * self.size, *rows.shape[1:])).index_copy(0, self.slot, rows)
        return grid.view(self.contexts, self.size * self.length, *rows.shape[2:])

    def unstack(self, stacked: torch.Tensor) -> torch.Tensor:
        """(C, G * Lt, ...) -> (B, Lt, ...)."""
        return stacked.reshape(self.contexts * self.size, self.length, *stacked.shape[2:]).index_select(0, self.slot)

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

    def forward(self, queries, keys, key_bias, groups: ContextGroups | None = None):
        """queries (B, Lq, W); keys (N, Lk, W), key_bias (N, 1, 1, Lk) from :func:`key_bias`; N = B, or
        with ``groups`` the C contexts the B rows are grouped by -> (B, Lq, W) and the (N, H, Lq', Lk)
        probabilities (Lq' = Lq, or G * Lq stacked). Padded queries attend like valid ones: no valid
        row reads them, and :class:`AttentionMaps` zeroes their rows in the maps it returns."""
        q = self.query(queries)
        if groups is not None:
            q = groups.stack(q)
        batch, num_queries, width = q.shape
        heads, head_dim, num_keys = self.heads, width // self.heads, keys.shape[1]
        q = q.view(batch, num_queries, heads, head_dim).transpose(1, 2).reshape(batch * heads, num_queries, head_dim)
        k, v = self.key_value(keys).view(batch, num_keys, 2, heads, head_dim).permute(2, 0, 3, 1, 4)
        # scale * q k^T + bias in one product (no separate passes over the (N, H, Lq, Lk) scores)
        bias = key_bias.expand(batch, heads, 1, num_keys).reshape(batch * heads, 1, num_keys)
        scores = torch.baddbmm(bias, q, k.reshape(batch * heads, num_keys, head_dim).transpose(1, 2),
                               alpha=head_dim**-0.5)
        probabilities = scores.softmax(-1)
        attended = (probabilities @ v.reshape(batch * heads, num_keys, head_dim)).view(batch, heads, num_queries,
                                                                                     head_dim)
        attended = attended.transpose(1, 2).reshape(batch, num_queries, width)
        if groups is not None:
            attended = groups.unstack(attended)
        return self.out(attended), probabilities.view(batch, heads, num_queries, num_keys)


class AttentionMaps(Sequence):
    """Per layer, the (B, H, Lt, Lc) cross-attention probabilities as used, padded text rows 0.

    Each layer's map is put into that shape (unstacked from its context group, padded rows zeroed)
    when it is read, and kept; :meth:`head_mean` gives a layer's (B, Lt, Lc) mean over heads
    without the per-head map (training reads only the last layer's).

    Args:
        probabilities: per layer, the (N, H, Lq', Lc) probabilities of :class:`MaskedAttention`.
        text_mask: (B, Lt) bool, the valid text tokens.
        groups: the ContextGroups the probabilities were computed in, or None.
    """

    def __init__(self, probabilities: list[torch.Tensor], text_mask: torch.Tensor, groups: ContextGroups | None):
        self._probabilities, self._text_mask, self._groups = probabilities, text_mask, groups
        self._maps: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._probabilities)

    def __getitem__(self, layer):
        if isinstance(layer, slice):
            return tuple(self[i] for i in range(len(self))[layer])
        layer = range(len(self))[layer]  # negative indices; IndexError out of range
        if layer not in self._maps:
            maps = self._probabilities[layer]
            maps = maps if self._groups is None else self._groups.unstack_heads(maps)
            self._maps[layer] = maps * self._text_mask[:, None, :, None].to(maps.dtype)
        return self._maps[layer]

    def head_mean(self, layer: int = -1) -> torch.Tensor:
        """(B, Lt, Lc) the layer's map averaged over heads (the same values as ``self[layer].mean(1)``)."""
        mean = self._probabilities[layer].mean(1)
        mean = mean if self._groups is None else self._groups.unstack(mean)
        return mean * self._text_mask[..., None].to(mean.dtype)
