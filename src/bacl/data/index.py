"""The BNS candidate pool: nearest neighbours of frozen embeddings (the "coarse-aligned index").

BNS draws its negatives from the neighbours of each anchor under the frozen, coarsely aligned
encoder, not only from the batch. A :class:`CandidateIndex` holds a bank of N embeddings and
answers cosine top-k queries, excluding given ids (the anchor's own positive, its duplicates).

* :class:`ExactIndex`: chunked matmul + top-k in torch; memory is bounded by
  ``query_chunk x bank_chunk`` scores whatever N and Q are. Exact; the CPU-scale default.
* :class:`FaissIndex`: faiss-cpu inner product on the normalised bank, ``flat`` (exact) or, for
  banks too big to scan, ``ivf`` or ``hnsw`` (approximate).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import faiss
import numpy as np
import torch
import torch.nn.functional as F

from ..validation import check_matrix

__all__ = ["CandidateIndex", "ExactIndex", "FaissIndex", "make_index", "INDEX_KINDS"]


def _positive_int(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return value


class CandidateIndex(ABC):
    """Cosine nearest-neighbour search over a bank of embeddings.

    ``build(bank)`` with bank (N, E) float; ``search(queries (Q, E), k, exclude)`` returns scores
    (Q, k) float32 cosine similarities in descending order and ids (Q, k) int64 row ids of the bank.
    """

    def __init__(self) -> None:
        self.size = 0  # N of the built bank; 0 until build
        self.dim = 0

    def build(self, bank: torch.Tensor) -> CandidateIndex:
        """Index ``bank`` (N, E), L2-normalised here so scores are cosines. Returns self."""
        check_matrix("bank", bank)
        bank = F.normalize(bank.detach().float(), dim=-1)
        self.size, self.dim = bank.shape
        self._build(bank)
        return self

    def search(
        self, queries: torch.Tensor, k: int, exclude: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` bank rows by cosine similarity for each of the (Q, E) ``queries``.

        exclude: LongTensor (Q,) or (Q, m) of bank ids that must not be returned for that query
        (e.g. the query's own positive); -1 entries exclude nothing (padding for ragged lists).
        Requires k <= N - m, so k answers exist however the exclusions fall.
        """
        if self.size == 0:
            raise ValueError("the index is empty: call build(bank) first")
        check_matrix("queries", queries)
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have E={queries.shape[1]}, the bank has E={self.dim}")
        exclude = self._check_exclude(exclude, len(queries))
        _positive_int("k", k)
        if k > self.size - exclude.shape[1]:
            raise ValueError(
                f"k={k} is larger than the bank (N={self.size}) minus the m={exclude.shape[1]} excluded ids per query"
            )
        scores, ids = self._search(F.normalize(queries.detach().float(), dim=-1), k, exclude)
        return scores, ids

    @staticmethod
    def _check_exclude(exclude: torch.Tensor | None, num_queries: int) -> torch.Tensor:
        if exclude is None:
            return torch.empty(num_queries, 0, dtype=torch.long)
        if not isinstance(exclude, torch.Tensor) or exclude.dtype not in (torch.int32, torch.int64):
            raise ValueError("exclude must be an integer torch.Tensor of shape (Q,) or (Q, m)")
        exclude = exclude.long().unsqueeze(1) if exclude.dim() == 1 else exclude.long()
        if exclude.dim() != 2 or exclude.shape[0] != num_queries:
            raise ValueError(f"exclude must have shape (Q,) or (Q, m) with Q={num_queries}, got {tuple(exclude.shape)}")
        return exclude

    @abstractmethod
    def _build(self, bank: torch.Tensor) -> None:
        """Store the normalised (N, E) bank."""

    @abstractmethod
    def _search(self, queries: torch.Tensor, k: int, exclude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k of normalised (Q, E) queries with (Q, m) exclusions (-1 = none); k is valid."""


class ExactIndex(CandidateIndex):
    """Exact search by chunked matmul: at most ``query_chunk x bank_chunk`` scores in memory."""

    def __init__(
        self,
        query_chunk: int = 1024,  # with bank_chunk: a 1024 x 16384 float32 block = 64 MiB at most
        bank_chunk: int = 16384,
    ):
        super().__init__()
        self.query_chunk = _positive_int("query_chunk", query_chunk)
        self.bank_chunk = _positive_int("bank_chunk", bank_chunk)

    def _build(self, bank: torch.Tensor) -> None:
        self._bank = bank

    def _search(self, queries: torch.Tensor, k: int, exclude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        all_scores, all_ids = [], []
        for q0 in range(0, len(queries), self.query_chunk):
            q = queries[q0:q0 + self.query_chunk]
            excl = exclude[q0:q0 + self.query_chunk]
            rows = torch.arange(len(q)).unsqueeze(1).expand_as(excl)
            best_scores = torch.full((len(q), 0), float("-inf"))
            best_ids = torch.empty(len(q), 0, dtype=torch.long)
            for b0 in range(0, self.size, self.bank_chunk):
                block = q @ self._bank[b0:b0 + self.bank_chunk].T  # (q, b)
                local = excl - b0
                hit = (local >= 0) & (local < block.shape[1]) & (excl >= 0)
                block[rows[hit], local[hit]] = float("-inf")
                top_scores, top_local = block.topk(min(k, block.shape[1]), dim=1)
                # Merge the running best with this chunk's best; their union holds the top-k so far.
                merged_scores = torch.cat([best_scores, top_scores], dim=1)
                merged_ids = torch.cat([best_ids, top_local + b0], dim=1)
                best_scores, order = merged_scores.topk(min(k, merged_scores.shape[1]), dim=1)
                best_ids = merged_ids.gather(1, order)
            all_scores.append(best_scores)
            all_ids.append(best_ids)
        return torch.cat(all_scores), torch.cat(all_ids)


INDEX_KINDS = ("exact", "faiss-flat", "faiss-ivf", "faiss-hnsw")


class FaissIndex(CandidateIndex):
    """faiss-cpu inner-product index on the normalised bank (so scores are cosines).

    method "flat" is exact; "ivf" (inverted lists, ``nlist`` cells, ``nprobe`` searched) and
    "hnsw" (graph with ``hnsw_m`` links, ``ef_search`` breadth) are approximate and may return
    fewer than k valid answers, which raises RuntimeError naming the knob to raise.
    """

    def __init__(
        self,
        method: str = "flat",
        nlist: int = 1024,  # ~sqrt(N) for N around a million, faiss's rule of thumb
        nprobe: int = 32,  # 3 % of the default cells searched; raise it for recall, lower it for speed
        hnsw_m: int = 32,  # faiss's usual graph degree; memory grows with it
        ef_search: int = 128,  # search breadth, well above typical k + m; raise it for recall
    ):
        super().__init__()
        if method not in ("flat", "ivf", "hnsw"):
            raise ValueError(f"method must be 'flat', 'ivf' or 'hnsw', got {method!r}")
        self.method = method
        self.nlist = _positive_int("nlist", nlist)
        self.nprobe = _positive_int("nprobe", nprobe)
        self.hnsw_m = _positive_int("hnsw_m", hnsw_m)
        self.ef_search = _positive_int("ef_search", ef_search)

    def _build(self, bank: torch.Tensor) -> None:
        vectors = np.ascontiguousarray(bank.numpy(), dtype=np.float32)
        dim = vectors.shape[1]
        if self.method == "flat":
            self._index = faiss.IndexFlatIP(dim)
        elif self.method == "ivf":
            if self.nlist > len(vectors):
                raise ValueError(
                    f"nlist={self.nlist} is larger than the bank (N={len(vectors)}); IVF needs N >= nlist to train"
                )
            self._quantizer = faiss.IndexFlatIP(dim)  # kept referenced: the IVF index does not own it
            self._index = faiss.IndexIVFFlat(self._quantizer, dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            self._index.train(vectors)
            self._index.nprobe = self.nprobe
        else:
            self._index = faiss.IndexHNSWFlat(dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efSearch = self.ef_search
        self._index.add(vectors)

    def _search(self, queries: torch.Tensor, k: int, exclude: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        width = k + exclude.shape[1]  # enough that k survive whichever m are excluded
        scores, ids = self._index.search(np.ascontiguousarray(queries.numpy(), dtype=np.float32), width)
        scores, ids = torch.from_numpy(scores), torch.from_numpy(ids).long()
        invalid = (ids < 0) | (ids.unsqueeze(2) == exclude.unsqueeze(1)).any(dim=2)
        order = invalid.int().argsort(dim=1, stable=True)[:, :k]  # valid answers first, rank kept
        if invalid.gather(1, order).any():
            knob = {"ivf": "nprobe", "hnsw": "ef_search"}.get(self.method, "k")
            raise RuntimeError(f"the {self.method} index found fewer than k={k} answers for some query; raise {knob}")
        return scores.gather(1, order), ids.gather(1, order)


def make_index(kind: str = "exact", **options) -> CandidateIndex:
    """An empty index of ``kind`` in :data:`INDEX_KINDS` ("exact", "faiss-flat", "faiss-ivf",
    "faiss-hnsw"); ``options`` go to its constructor (chunk sizes, nlist, nprobe, ...)."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"kind must be one of {INDEX_KINDS}, got {kind!r}")
    if kind == "exact":
        return ExactIndex(**options)
    return FaissIndex(method=kind.removeprefix("faiss-"), **options)
