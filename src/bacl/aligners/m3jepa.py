"""M3-JEPA: a multi-gate mixture-of-experts predictor from x's embedding into text space.

The predictor maps the x-side embedding to a prediction of the text embedding; the loss is
``alpha * L_regression + (1 - alpha) * L_contrastive`` with alpha = 0.5 (the paper's), the
regression towards a stop-gradient target (JEPA's guard against collapse) and the contrastive
term CLIP's InfoNCE between prediction and text (or BACL's, under :func:`~bacl.aligners.add_bacl`).
The gate is a softmax over the top-k experts' scores. Simplifications (paper/ASSUMPTIONS.md):
one direction (x -> text), one gate, no load-balancing term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import CLIPAligner, FeatureBatch, FeatureDims

__all__ = ["MixtureOfExperts", "M3JEPAAligner"]


class MixtureOfExperts(nn.Module):
    """Top-k gated experts (2-layer MLPs) on (..., D) inputs -> (..., D_out)."""

    def __init__(self, in_dim: int, out_dim: int, num_experts: int = 12, top_k: int = 4, hidden_ratio: float = 2.0):
        super().__init__()
        for arg, value in (("num_experts", num_experts), ("top_k", top_k)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be a positive integer, got {value!r}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must lie in [1, num_experts={num_experts}], got {top_k}")
        hidden = int(hidden_ratio * in_dim)
        self.top_k = top_k
        self.gate = nn.Linear(in_dim, num_experts)
        self.first = nn.Parameter(torch.randn(num_experts, in_dim, hidden) / in_dim**0.5)
        self.second = nn.Parameter(torch.zeros(num_experts, hidden, out_dim))  # starts at the identity map below
        self.skip = in_dim == out_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        flat = features.reshape(-1, features.shape[-1])
        top = self.gate(flat).topk(self.top_k, dim=-1)
        weights = torch.softmax(top.values, dim=-1)
        # Each expert runs only on the rows routed to it: top_k / num_experts of the dense cost
        # (BNS sends every candidate of every anchor through here, so this is the hot path).
        mixed = flat.new_zeros(flat.shape[0], self.second.shape[-1])
        for expert in range(self.first.shape[0]):
            rows, slot = (top.indices == expert).nonzero(as_tuple=True)
            if rows.numel():
                hidden = F.gelu(flat.index_select(0, rows) @ self.first[expert])
                mixed.index_add_(0, rows, weights[rows, slot, None] * (hidden @ self.second[expert]))
        out = flat + mixed if self.skip else mixed
        return out.reshape(*features.shape[:-1], -1)


class M3JEPAAligner(CLIPAligner):
    def __init__(self, dims: FeatureDims, embed_dim: int | None = None, num_experts: int = 12, top_k: int = 4,
                 alpha: float = 0.5):
        super().__init__(dims, embed_dim)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.predictor = MixtureOfExperts(self.embed_dim, self.embed_dim, num_experts=num_experts, top_k=top_k)
        self.alpha = alpha
        self.contrastive_weight = 1.0 - alpha

    def encode_x(self, x, modalities=None):
        """The prediction of the text embedding from x, normalised."""
        return F.normalize(self.predictor(self.x_head(x)), dim=-1)

    def loss(self, batch: FeatureBatch, progress: float, generator=None):
        prediction, target = self.encode_x(batch.x), self.encode_text(batch.text)
        terms = self.contrastive_terms(prediction, target, batch, progress, generator)
        terms["regression_loss"] = self.alpha * (prediction - target.detach()).pow(2).sum(-1).mean()
        return terms
