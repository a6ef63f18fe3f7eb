"""NegativePool: where one direction's BACL negatives come from — the retrieved pool, the batch, or both.

BNS draws each anchor's K negatives from its pool; the drawn ones join the contrastive
denominator (their embeddings with gradient) and, for image anchors, the cross-modal
Transformer's match list (their token features and token ids). A pool is the concatenation, along
the candidate axis, of up to two parts, each a :class:`~bacl.candidates.ScoredPool`:

* the **retrieved** part: the anchor's nearest neighbours under the frozen encoder (a
  CandidatePool; rows of the training split);
* the **batch** part: the (gathered) batch, minus the anchor's own positive.

BNS's contrastive draws come from the retrieved part (the batch when there is none). The match
list of the cross-modal Transformer draws, with the same sampler and curriculum, from both
(``match_pool: retrieved_and_batch``), so the curriculum chooses easy in-batch negatives early and
retrieved boundary negatives late (paper/ASSUMPTIONS.md, BACL loss). Token
features exist for the retrieved part (when its store has them) and for this rank's rows of the
batch; other positions are never put in a match list.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .candidates import CandidatePool, ScoredPool
from .sampler import PoolSimilarities

__all__ = ["NegativePool"]


class NegativePool:
    """B anchors' negative candidates: a retrieved part (P) and/or a batch part (N), in that order.

    Args:
        anchor, positive: (B, D) embeddings of the anchors and of their positives.
        all_positive: (N, D) the gathered batch of positives (the batch part's embeddings).
        retrieved: the retrieved CandidatePool, or None (then the batch is the pool).
        labels: (B,) column of each anchor's own positive in ``all_positive``.
        local: (start, stop) of this rank's rows in ``all_positive`` (their tokens are at hand).
        tokens, token_mask, token_ids: this rank's (B, L, Dt), (B, L), (B, L) of the positives,
            for the batch part's match lists (the retrieved candidates' come from their store).
    """

    def __init__(self, anchor, positive, all_positive, retrieved: CandidatePool | None, labels,
                 local: tuple[int, int], tokens=None, token_mask=None, token_ids=None):
        self.retrieved = None if retrieved is None else ScoredPool.of(anchor, positive, all_positive, retrieved, labels)
        self.batch = None
        self._labels = labels
        self.positive, self.all_positive, self.local = positive, all_positive, local
        self.tokens, self.token_mask, self.token_ids = tokens, token_mask, token_ids
        if retrieved is None:
            self.batch = ScoredPool.of(anchor, positive, all_positive, None, labels)
        self._concatenate()

    def _concatenate(self) -> None:
        parts = [part for part in (self.retrieved, self.batch) if part is not None]
        self.offset = 0 if self.retrieved is None else self.retrieved.similarities.anchor_candidate.shape[1]
        self.similarities = PoolSimilarities(
            torch.cat([p.similarities.anchor_candidate for p in parts], 1),
            torch.cat([p.similarities.positive_candidate for p in parts], 1), parts[0].similarities.anchor_positive)
        masks = [p.mask if p.mask is not None else torch.ones_like(p.similarities.anchor_candidate, dtype=torch.bool)
                 for p in parts]
        self.mask = torch.cat(masks, 1)

    def with_batch(self, anchor) -> "NegativePool":
        """The same pool with the batch part added (the retrieved part's scores are reused); itself
        when the batch is already in it."""
        if self.batch is not None:
            return self
        pool = copy.copy(self)
        pool.batch = ScoredPool.of(anchor, self.positive, self.all_positive, None, self._labels)
        pool._concatenate()
        return pool

    @property
    def size(self) -> int:
        """P + N, the candidates per anchor."""
        return self.mask.shape[1]

    def is_retrieved(self, index: torch.Tensor) -> torch.Tensor:
        return index < self.offset

    def store_rows(self, index: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows of the retrieved candidates' store (B, K) at positions ``index`` (B, K), and which
        of them are valid retrieved draws (``valid`` and not from the batch); for diagnostics."""
        retrieved = self.is_retrieved(index) & valid
        if self.retrieved is None:
            return torch.zeros_like(index), retrieved
        rows = self.retrieved.candidates.rows
        return rows.gather(1, index.clamp(max=self.offset - 1).to(rows.device)), retrieved

    def embed(self, index: torch.Tensor) -> torch.Tensor:
        """(B, K, D) embeddings, with gradient, of the candidates at positions ``index`` (B, K)."""
        parts = []
        if self.retrieved is not None:
            parts.append(self.retrieved.candidates.embed(index.clamp(max=self.offset - 1)))
        if self.batch is not None:
            parts.append(self.all_positive[(index - self.offset).clamp_min(0)])
        if len(parts) == 1:
            return parts[0]
        return torch.where(self.is_retrieved(index)[..., None], parts[0], parts[1])

    def has_tokens(self, index: torch.Tensor) -> torch.Tensor:
        """(B, K) bool: the candidate's token features are at hand (for the match list)."""
        retrieved = self.is_retrieved(index)
        in_batch = index - self.offset
        local = (in_batch >= self.local[0]) & (in_batch < self.local[1]) & (self.tokens is not None)
        has_store = self.retrieved is not None and self.retrieved.candidates.tokens_store is not None
        return torch.where(retrieved, torch.full_like(retrieved, has_store), ~retrieved & local)

    def read_tokens(self, anchors: torch.Tensor, index: torch.Tensor, need_ids: bool):
        """Tokens (n, L, Dt), mask (n, L) and ids (n, L) or None of the candidates at ``index`` (n,)
        of ``anchors`` (n,); every one must have tokens (:meth:`has_tokens`). Parts of different
        token lengths are padded to the longer."""
        retrieved = self.is_retrieved(index)
        pieces = []
        if retrieved.any():
            rows = retrieved.nonzero().squeeze(1)
            tokens, mask, ids = self.retrieved.candidates.tokens(anchors[rows], index[rows])
            mask = torch.ones(tokens.shape[:-1], dtype=torch.bool, device=tokens.device) if mask is None else mask
            if need_ids and ids is None:
                raise ValueError("candidate_text_token_ids are required for cla_form='discriminative' "
                                 "with retrieved candidates")
            pieces.append((rows, tokens, mask, ids))
        if (~retrieved).any():
            rows = (~retrieved).nonzero().squeeze(1)
            local = index[rows] - self.offset - self.local[0]
            ids = None
            if need_ids:
                if self.token_ids is None:
                    raise ValueError("text_token_ids are required for cla_form='discriminative'")
                ids = self.token_ids[local]
            tokens = self.tokens[local]
            mask = torch.ones(tokens.shape[:-1], dtype=torch.bool, device=tokens.device) if self.token_mask is None \
                else self.token_mask[local]
            pieces.append((rows, tokens, mask, ids))
        length = max(piece[1].shape[1] for piece in pieces)
        count, width = index.shape[0], pieces[0][1].shape[-1]
        tokens = pieces[0][1].new_zeros(count, length, width)
        mask = torch.zeros(count, length, dtype=torch.bool, device=tokens.device)
        ids = torch.zeros(count, length, dtype=torch.long, device=tokens.device) if need_ids else None
        for rows, piece_tokens, piece_mask, piece_ids in pieces:
            tokens[rows, :piece_tokens.shape[1]] = piece_tokens.to(tokens.dtype)
            mask[rows, :piece_mask.shape[1]] = piece_mask
            if need_ids:
                ids[rows, :piece_ids.shape[1]] = piece_ids.long()
        return tokens, mask, ids

    def positive_copies(self, tolerance: float = 1e-6) -> torch.Tensor:
        """(B, P + N) bool: the candidate is a copy of the anchor's positive (cos within ``tolerance``
        of the positive's own), e.g. a duplicate caption: never a negative."""
        own = (F.normalize(self.positive, dim=-1) ** 2).sum(-1, keepdim=True)
        return self.similarities.positive_candidate - own >= -tolerance

    def match_negatives(self, draw, objective: str, count: int, generator,
                        rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, K) pool positions of each anchor's negatives for its match list, and (B, K) which are valid.

        Admissible: in the pool's mask, not a copy of the positive, with token features at hand.
        ``listwise``: the K draws of ``draw`` (BNS), or without one ``count`` uniform draws without
        replacement from the batch part (from the retrieved pool if it is the whole pool).
        ``hardest_bce`` (the first reading): the one admissible candidate of largest
        boundary score, among the draws when there are draws. ``rows``: optional (R,) anchors
        (``draw`` is then theirs): the rows ``rows`` of the result for all anchors.
        """
        pick = (lambda t: t) if rows is None else (lambda t: t[rows])  # noqa: E731
        with torch.no_grad():
            every = torch.arange(self.size, device=self.mask.device).expand_as(self.mask)
            admissible = pick(self.mask & ~self.positive_copies() & self.has_tokens(every))
            every = pick(every)
            if objective == "hardest_bce":
                if draw is not None:
                    admissible &= torch.zeros_like(admissible).scatter(1, draw.index, draw.valid)
                score = pick(self.similarities.boundary_score).masked_fill(~admissible, float("-inf"))
                hardest = score.argmax(1, keepdim=True)
                return hardest, admissible.gather(1, hardest)
            if draw is not None:
                return draw.index, draw.valid & admissible.gather(1, draw.index)
            if self.batch is not None:  # without BNS: uniform in-batch negatives (CLIP+matching, CLA only)
                admissible &= ~self.is_retrieved(every)
            noise = pick(torch.rand(self.mask.shape, generator=generator, device=admissible.device))
            index = noise.masked_fill(~admissible, -1.0).topk(min(count, self.size), dim=1).indices
            return index, admissible.gather(1, index)
