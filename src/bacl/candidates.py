"""CandidatePool: the retrieved BNS candidates of a batch, embedded only as far as BACL needs them.

Each of B anchors has P candidates, rows of a store of frozen features (the training split's
cached features; the pool is the anchor's nearest neighbours under the frozen encoder). BACL
needs three things of them, each at its own cost:

* every candidate's embedding under the current head, **without gradient**: the sampler's boundary
  scores and the policy's features, and CLA's choice of the hardest negative, are computed under
  ``no_grad`` anyway (:meth:`CandidatePool.embeddings`; each distinct store row is embedded once);
* the embeddings of the K drawn candidates **with gradient**: their logits join the InfoNCE
  denominators (:meth:`CandidatePool.embed` re-embeds only those);
* the token features (and token ids) of the negatives the cross-modal Transformer reads
  (:meth:`CandidatePool.tokens`, indexed from the store, never a (B, P, L, D) copy).

The gradient is that of embedding the whole pool with gradient and gathering the drawn (the
other candidates never reach a loss term with gradient), without the B x P backward pass.
The store stays on the device it lives on; only what is used is moved to ``device``.

:class:`ScoredPool` is one direction's pool as BACLLoss uses it (similarities computed once for
BNS and CLA); :func:`candidate_pool` turns BACLLoss's pool arguments of either form into a pool.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .sampler import PoolSimilarities, check_candidate_mask, check_candidates, pool_similarities
from .validation import checked_token_mask

__all__ = ["CandidatePool", "ScoredPool", "candidate_pool"]


class CandidatePool:
    """B anchors' candidates as (B, P) rows of a store.

    Args:
        rows: (B, P) integer rows of ``features`` (and of ``tokens``), P >= 1.
        features: (N, E) frozen features of the store; not copied.
        encode: the head mapping (n, E) features to (n, D) embeddings with its current weights;
            None when ``features`` already are the embeddings.
        mask: optional (B, P) bool, True where a candidate is admissible.
        tokens: optional (N, L, Dt) token features of the store, any float dtype (cast by the
            user after selection); token_mask: optional (N, L) bool, True for a real token;
            token_ids: optional (N, L) integer ids of those tokens (discriminative CLA aligns them).
        device: where the embeddings and tokens are returned (default: the store's device).
        dtype: the selected features are cast to it before ``encode`` (None: kept as stored).
    """

    def __init__(self, rows: torch.Tensor, features: torch.Tensor, *, encode: Callable | None = None,
                 mask: torch.Tensor | None = None, tokens: torch.Tensor | None = None,
                 token_mask: torch.Tensor | None = None, token_ids: torch.Tensor | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        if not isinstance(rows, torch.Tensor) or rows.dim() != 2 or rows.is_floating_point() or rows.dtype == torch.bool:
            raise ValueError(f"rows must be a (B, P) integer tensor, got {_describe(rows)}")
        if not isinstance(features, torch.Tensor) or features.dim() != 2:
            raise ValueError(f"features must be an (N, E) tensor, got {_describe(features)}")
        if rows.numel() and (rows.min() < 0 or rows.max() >= features.shape[0]):
            raise ValueError(f"rows must index the store's {features.shape[0]} rows, got values in "
                             f"[{rows.min().item()}, {rows.max().item()}]")
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool
                                 or mask.shape != rows.shape):
            raise ValueError(f"mask must be a bool tensor of shape {tuple(rows.shape)}, got {_describe(mask)}")
        if tokens is not None and (not isinstance(tokens, torch.Tensor) or tokens.dim() != 3
                                   or tokens.shape[0] != features.shape[0]):
            raise ValueError(f"tokens must be an (N, L, Dt) tensor with N={features.shape[0]}, got {_describe(tokens)}")
        if token_mask is not None and (tokens is None or not isinstance(token_mask, torch.Tensor)
                                       or token_mask.dtype != torch.bool or token_mask.shape != tokens.shape[:-1]):
            expected = "tokens to go with it" if tokens is None else f"a bool tensor of shape {tuple(tokens.shape[:-1])}"
            raise ValueError(f"token_mask needs {expected}, got {_describe(token_mask)}")
        if token_ids is not None and (tokens is None or not isinstance(token_ids, torch.Tensor)
                                      or token_ids.is_floating_point() or token_ids.shape != tokens.shape[:-1]):
            expected = "tokens to go with them" if tokens is None else f"an integer tensor of shape {tuple(tokens.shape[:-1])}"
            raise ValueError(f"token_ids need {expected}, got {_describe(token_ids)}")
        self.rows, self.features, self.encode = rows, features, encode
        self.tokens_store, self.token_mask_store, self.token_ids_store = tokens, token_mask, token_ids
        self.device = torch.device(device) if device is not None else features.device
        self.mask = None if mask is None else mask.to(self.device)
        self.dtype = dtype

    @classmethod
    def from_tensors(cls, embeddings: torch.Tensor, batch: int, mask: torch.Tensor | None = None,
                     tokens: torch.Tensor | None = None, token_mask: torch.Tensor | None = None,
                     token_ids: torch.Tensor | None = None) -> "CandidatePool":
        """A pool of ``batch`` anchors from tensors: per-anchor embeddings (B, P, D) or a shared pool
        (P, D); gradient flows to the drawn ones. Tokens (B, P, L, Dt) or (P, L, Dt), token_mask and
        token_ids (B, P, L) or (P, L), mask (B, P); BACLLoss checks their shapes and values."""
        if embeddings.dim() == 2:  # a shared pool: every anchor's rows are the same P
            rows = torch.arange(embeddings.shape[0], device=embeddings.device).expand(batch, -1)
            return cls._unchecked(rows, embeddings, mask=mask, tokens=tokens, token_mask=token_mask, token_ids=token_ids)
        pool = embeddings.shape[1]
        flat = lambda t: None if t is None else t.reshape(-1, *t.shape[2:])  # noqa: E731
        rows = torch.arange(embeddings.shape[0] * pool, device=embeddings.device).view(-1, pool)
        return cls._unchecked(rows, flat(embeddings), mask=mask, tokens=flat(tokens), token_mask=flat(token_mask),
                              token_ids=flat(token_ids))

    @classmethod
    def _unchecked(cls, rows, features, **fields) -> "CandidatePool":
        pool = cls.__new__(cls)
        pool.rows, pool.features, pool.encode = rows, features, fields.get("encode")
        pool.tokens_store, pool.token_mask_store = fields.get("tokens"), fields.get("token_mask")
        pool.token_ids_store = fields.get("token_ids")
        pool.device, pool.mask, pool.dtype = features.device, fields.get("mask"), None
        return pool

    def _replace(self, **changes) -> "CandidatePool":
        pool = copy.copy(self)
        pool.__dict__.update(changes)
        return pool

    def encoded_by(self, encode: Callable) -> "CandidatePool":
        """The same candidates embedded by ``encode`` (a head with its current weights)."""
        return self._replace(encode=encode)

    def to(self, device) -> "CandidatePool":
        """The same pool returning its results on ``device`` (the store does not move)."""
        device = torch.device(device)
        return self._replace(device=device, mask=None if self.mask is None else self.mask.to(device))

    @property
    def shape(self) -> tuple[int, int]:
        """(B, P)."""
        return tuple(self.rows.shape)

    def _embed_rows(self, rows: torch.Tensor) -> torch.Tensor:
        features = self.features[rows.to(self.features.device)].to(self.device, self.dtype)
        return features if self.encode is None else self.encode(features)

    def embeddings(self) -> torch.Tensor:
        """(B, P, D) every candidate's embedding, without gradient; each distinct row embedded once."""
        with torch.no_grad():
            if self.encode is None:
                return self._embed_rows(self.rows)
            distinct, inverse = torch.unique(self.rows, return_inverse=True)
            return self._embed_rows(distinct)[inverse.to(self.device)]

    def embed(self, index: torch.Tensor) -> torch.Tensor:
        """(B, K, D) embeddings, with gradient, of the candidates at pool positions ``index`` (B, K)."""
        return self._embed_rows(self.rows.gather(1, index.to(self.rows.device)))

    def tokens(self, anchors: torch.Tensor, index: torch.Tensor):
        """Tokens (n, L, Dt) in the store's dtype, token mask (n, L) and token ids (n, L) (each None
        without one in the store) of the candidates at pool positions ``index`` (n,) of ``anchors`` (n,)."""
        if self.tokens_store is None:
            raise ValueError("the candidate pool has no tokens")
        rows = self.rows[anchors.to(self.rows.device), index.to(self.rows.device)].to(self.tokens_store.device)
        read = lambda store: None if store is None else store[rows].to(self.device)  # noqa: E731
        return read(self.tokens_store), read(self.token_mask_store), read(self.token_ids_store)


class ScoredPool(NamedTuple):
    """One direction's candidate pool as the loss uses it.

    candidates: the CandidatePool, or None for the in-batch pool.
    embeddings: the shared (N, D) batch of the in-batch pool, with gradient; None for a
        CandidatePool, whose (B, P, D) embeddings are dropped once the similarities are computed.
    mask: (B, P) or (B, N) bool, True where admissible; or None.
    similarities: the sampler's PoolSimilarities, computed once for BNS and CLA.
    """

    candidates: CandidatePool | None
    embeddings: torch.Tensor | None
    mask: torch.Tensor | None
    similarities: PoolSimilarities

    @classmethod
    def of(cls, anchor, positive, all_positive, candidates: CandidatePool | None, labels) -> "ScoredPool":
        """The pool of ``anchor`` (B, D): ``candidates``, or the gathered batch but each anchor's own positive."""
        if candidates is None:
            embeddings, mask = all_positive, ~F.one_hot(labels, all_positive.shape[0]).bool()
        else:
            embeddings, mask = candidates.embeddings(), candidates.mask
        check_candidates(anchor, embeddings)
        if mask is not None:
            check_candidate_mask(mask, anchor.shape[0], embeddings.shape[-2])
        similarities = pool_similarities(anchor, positive, embeddings)
        return cls(candidates, embeddings if candidates is None else None, mask, similarities)


def candidate_pool(name: str, pool, anchor, features=None, mask=None, tokens=None, token_mask=None, token_ids=None):
    """One direction's CandidatePool from either form of BACLLoss's arguments (see its forward)."""
    if pool is not None:
        if not isinstance(pool, CandidatePool):
            raise ValueError(f"{name} must be a CandidatePool, got {type(pool).__name__}")
        given = [f"{name}_{arg}" for arg, value in (("features", features), ("mask", mask), ("tokens", tokens),
                                                    ("token_mask", token_mask), ("token_ids", token_ids))
                 if value is not None]
        if given:
            raise ValueError(f"{name} is a CandidatePool, which holds its own features, mask and tokens: "
                             f"{', '.join(given)} must be None")
        return pool
    if features is None:
        return None
    if not isinstance(features, torch.Tensor) or features.dim() not in (2, 3):
        check_candidates(anchor, features)  # raises, naming what is wrong
    if tokens is not None:
        expected = tuple(features.shape[:-1])
        if not isinstance(tokens, torch.Tensor) or tuple(tokens.shape[:-2]) != expected or tokens.dim() != len(expected) + 2:
            got = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"{name}_tokens must have shape {(*expected, 'Lt', 'Dt')}, got {got}")
        if token_mask is not None:
            checked_token_mask(token_mask, tokens, f"{name}_token_mask")
        if token_ids is not None and (not isinstance(token_ids, torch.Tensor) or token_ids.is_floating_point()
                                      or token_ids.shape != tokens.shape[:-1]):
            raise ValueError(f"{name}_token_ids must be an integer tensor of shape {tuple(tokens.shape[:-1])}, "
                             f"got {_describe(token_ids)}")
    return CandidatePool.from_tensors(features, anchor.shape[0], mask=mask, tokens=tokens,
                                      token_mask=None if tokens is None else token_mask,
                                      token_ids=None if tokens is None else token_ids)


def _describe(value) -> str:
    return f"{value.dtype} {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
