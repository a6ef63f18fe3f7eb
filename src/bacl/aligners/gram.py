"""GRAM: Gramian-volume alignment of text with one or more other modalities.

The score of a text t against a sample with non-text embeddings (m_1, ..., m_M) is minus the
volume of the parallelotope they span, ``sqrt(det G)`` with G the Gram matrix of the
L2-normalised vectors: 0 when all agree, larger as they spread. The loss is cross-entropy on
``-volume / tau`` in both directions (text -> samples, sample -> texts) with a learnable tau
(init 0.07). Simplification (paper/ASSUMPTIONS.md): no data-text matching head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import Aligner, FeatureBatch, FeatureDims, ProjectionHead

__all__ = ["GRAMAligner", "gram_volume", "paired_gram_volume"]


def _volume(text_sq: torch.Tensor, cross: torch.Tensor, within: torch.Tensor, eps: float) -> torch.Tensor:
    """sqrt(det G) from G's blocks: |t|^2 (...), <t, m_k> (..., K), <m_j, m_k> (..., K, K)."""
    k = cross.shape[-1]
    gram = cross.new_empty(*cross.shape[:-1], k + 1, k + 1)
    gram[..., 0, 0] = text_sq
    gram[..., 0, 1:] = cross
    gram[..., 1:, 0] = cross
    gram[..., 1:, 1:] = within
    # det >= 0 in exact arithmetic; clamp rounding, and eps keeps the sqrt's gradient finite
    return torch.linalg.det(gram).clamp_min(0.0).add(eps).sqrt()


def gram_volume(text: torch.Tensor, others: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Volumes of every (sample, text) pair: text (Nt, D), others (Nx, K, D) -> (Nx, Nt).

    The volume spanned by t and the sample's K L2-normalised non-text embeddings m_1..m_K is
    ``sqrt(det G)``, G their (K+1)x(K+1) Gram matrix; built from inner products so that the
    (Nx, Nt, K+1, D) stack of vectors is never materialised.
    """
    cross = torch.einsum("xkd,td->xtk", others, text)
    within = torch.einsum("xkd,xjd->xkj", others, others)[:, None]
    return _volume((text * text).sum(-1)[None, :], cross, within, eps)


def paired_gram_volume(text: torch.Tensor, others: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Volumes of each sample with its own M texts: text (N, M, D), others (N, K, D) -> (N, M)."""
    cross = torch.einsum("nkd,nmd->nmk", others, text)
    within = torch.einsum("nkd,njd->nkj", others, others)[:, None]
    return _volume((text * text).sum(-1), cross, within, eps)


class GRAMAligner(Aligner):
    def __init__(self, dims: FeatureDims, embed_dim: int | None = None):
        super().__init__()
        embed_dim = embed_dim or dims.text
        # Without separate modalities (a two-modality benchmark) the single non-text side is x.
        self.modality_names = tuple(name for name, _ in dims.modalities) or ("x",)
        widths = dict(dims.modalities) or {"x": dims.x}
        self.heads = nn.ModuleDict({name: ProjectionHead(widths[name], embed_dim) for name in self.modality_names})
        self.text_head = ProjectionHead(dims.text, embed_dim)
        self.log_inverse_temperature = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # GRAM's init tau = 0.07

    def encode_x(self, x, modalities=None):
        """(N, M, D): one embedding per non-text modality."""
        sources = {"x": x} if self.modality_names == ("x",) else (modalities or {})
        missing = [name for name in self.modality_names if name not in sources]
        if missing:
            raise ValueError(f"modalities is missing {missing} (GRAM was built for {list(self.modality_names)})")
        return torch.stack([self.heads[name](sources[name]) for name in self.modality_names], dim=-2)

    def encode_text(self, text):
        return self.text_head(text)

    def similarity(self, x_embedding, text_embedding):
        return -gram_volume(text_embedding, x_embedding)

    def pair_scores(self, x_embedding, text_embedding):
        return -paired_gram_volume(text_embedding, x_embedding)

    def loss(self, batch: FeatureBatch, progress: float, generator=None):
        scores = self.similarity(self.encode_x(batch.x, batch.modalities), self.encode_text(batch.text))
        logits = self.log_inverse_temperature.clamp(0, math.log(100)).exp() * scores
        labels = torch.arange(len(logits), device=logits.device)
        return {"contrastive_loss": (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2}
