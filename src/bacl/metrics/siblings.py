"""How often a set of chosen rows (BNS candidate pools, BNS draws) holds an anchor's sibling.

On the synthetic benchmarks every sample belongs to a sibling group (a base scene and one-edit
variants of it) and knows which group members' captions are one-edit boundary negatives of its own
(``sibling_index``, -1 padded). These shares say whether the negatives a method trains on are the
boundary negatives the paper is about: the first default run's pools held almost none.
"""

from __future__ import annotations

import torch

__all__ = ["sibling_shares"]


def sibling_shares(rows: torch.Tensor, group: torch.Tensor, sibling_index: torch.Tensor,
                   anchors: torch.Tensor | None = None, valid: torch.Tensor | None = None) -> dict[str, float]:
    """Shares of chosen rows that are the anchor's group members and one-edit siblings.

    Args:
        rows: (B, K) chosen rows (pool entries or drawn negatives) of B anchors, indices into the split.
        group: (N,) sibling group of every row of the split.
        sibling_index: (N, S) rows whose caption is a one-edit boundary negative of each row's, -1 padded.
        anchors: (B,) the anchors' rows; all N rows in order when None (then B = N).
        valid: optional (B, K) bool, False for entries to ignore (e.g. invalid draws).

    Returns:
        ``same_group``: share of valid chosen rows in the anchor's group; ``one_edit``: share that are one-edit siblings;
        ``anchors_with_one_edit``: share of anchors with at least one one-edit sibling among their
        valid chosen rows; ``entries``: number of valid entries.
    """
    if rows.dim() != 2 or rows.is_floating_point():
        raise ValueError(f"rows must be a (B, K) integer tensor, got {rows.dtype} {tuple(rows.shape)}")
    n = group.shape[0]
    if sibling_index.dim() != 2 or sibling_index.shape[0] != n:
        raise ValueError(f"sibling_index must be (N, S) with N={n} like group, got {tuple(sibling_index.shape)}")
    anchors = torch.arange(n) if anchors is None else anchors
    if anchors.shape != (rows.shape[0],):
        raise ValueError(f"anchors must have shape ({rows.shape[0]},) like rows' first dimension, got {tuple(anchors.shape)}")
    valid = torch.ones_like(rows, dtype=torch.bool) if valid is None else valid
    if valid.shape != rows.shape or valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool tensor of shape {tuple(rows.shape)}, got {valid.dtype} {tuple(valid.shape)}")
    if rows[valid].numel() and (rows[valid].min() < 0 or rows[valid].max() >= n):
        raise ValueError(f"rows must index the split's {n} rows")
    safe = rows.clamp(0, n - 1)
    same_group = (group[safe] == group[anchors][:, None]) & valid
    siblings = sibling_index[anchors]  # (B, S)
    one_edit = ((safe[..., None] == siblings[:, None, :]) & (siblings[:, None, :] >= 0)).any(-1) & valid
    entries = int(valid.sum())
    return {
        "same_group": float(same_group.sum()) / max(entries, 1),
        "one_edit": float(one_edit.sum()) / max(entries, 1),
        "anchors_with_one_edit": float(one_edit.any(1).float().mean()) if rows.shape[0] else 0.0,
        "entries": entries,
    }
