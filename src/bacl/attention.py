"""CLA: the cross-modal Transformer and the contrastive local attention loss.

Text tokens attend to the other modality's tokens (image patches, video frames, audio patches)
through ``depth`` pre-norm layers of text self-attention, text-to-context cross-attention and an
MLP. The cross-attention probabilities are computed explicitly, so the maps that CLA contrasts
are exactly the ones the model used. CLA compares the maps of the positive pair, A+, and of the
hardest BNS negative, A-: ``dA = |A+ - A-|``, ``A_b = A- * (1 + beta * dA)`` and
``L_local = mean over Omega of -log A_b`` on the ``omega_size`` most divergent pairs Omega.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .validation import check_finite

__all__ = [
    "CrossModalOutput", "CrossModalTransformer", "attention_divergence",
    "contrastive_local_attention_loss", "most_divergent_token",
]


class CrossModalOutput(NamedTuple):
    match_logit: torch.Tensor  # (B,)
    attention: torch.Tensor  # (B, Lt, Lc) last layer's cross-attention, mean over heads
    layer_attentions: tuple[torch.Tensor, ...]  # per layer (B, H, Lt, Lc)
    text_states: torch.Tensor  # (B, Lt, width)


def _attend(query, key, value, heads: int, key_mask: torch.Tensor):
    """Multi-head attention with explicit probabilities; key_mask (B, Lk) True = attend."""
    b, lq, width = query.shape
    split = lambda x: x.view(b, x.shape[1], heads, width // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(query), split(key), split(value)
    scores = q @ k.transpose(-1, -2) / math.sqrt(width // heads)
    scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    probabilities = torch.softmax(scores, dim=-1)
    out = (probabilities @ v).transpose(1, 2).reshape(b, lq, width)
    return out, probabilities


class _Layer(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.heads = heads
        self.self_norm, self.cross_norm, self.context_norm, self.mlp_norm = (nn.LayerNorm(width) for _ in range(4))
        self.self_qkv = nn.Linear(width, 3 * width)
        self.self_out = nn.Linear(width, width)
        self.cross_q = nn.Linear(width, width)
        self.cross_kv = nn.Linear(width, 2 * width)
        self.cross_out = nn.Linear(width, width)
        hidden = int(mlp_ratio * width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))
        self.dropout = nn.Dropout(dropout)

    def forward(self, text, context, text_mask, context_mask):
        q, k, v = self.self_qkv(self.self_norm(text)).chunk(3, dim=-1)
        attended, _ = _attend(q, k, v, self.heads, text_mask)
        text = text + self.dropout(self.self_out(attended))
        k, v = self.cross_kv(self.context_norm(context)).chunk(2, dim=-1)
        attended, probabilities = _attend(self.cross_q(self.cross_norm(text)), k, v, self.heads, context_mask)
        text = text + self.dropout(self.cross_out(attended))
        text = text + self.dropout(self.mlp(self.mlp_norm(text)))
        return text, probabilities


class CrossModalTransformer(nn.Module):
    """Text tokens attending to another modality's tokens; a match head on the pooled text.

    Args:
        text_dim, context_dim: widths of the incoming (frozen) token features.
        width: the Transformer's width; 256 keeps it the only sizeable trainable part at CPU scale.
        depth: layers; 4 as in the paper.
        heads: attention heads; width must be divisible by it.
        mlp_ratio: MLP hidden width / width; 4 as in ViT/BERT.
        dropout: 0 by default: the heads train on a fixed, cached feature set for few steps.
    """

    def __init__(self, text_dim: int, context_dim: int, width: int = 256, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        for name, value in (("text_dim", text_dim), ("context_dim", context_dim), ("width", width),
                            ("depth", depth), ("heads", heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if width % heads:
            raise ValueError(f"width={width} must be divisible by heads={heads}")
        self.text_dim, self.context_dim = text_dim, context_dim
        self.text_in = nn.Sequential(nn.Linear(text_dim, width), nn.LayerNorm(width))
        self.context_in = nn.Sequential(nn.Linear(context_dim, width), nn.LayerNorm(width))
        self.layers = nn.ModuleList(_Layer(width, heads, mlp_ratio, dropout) for _ in range(depth))
        self.match_head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 1))

    def forward(self, text_tokens: torch.Tensor, context_tokens: torch.Tensor,
                text_mask: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> CrossModalOutput:
        """text_tokens (B, Lt, text_dim), context_tokens (B, Lc, context_dim); masks (B, Lt),
        (B, Lc) bool with True for a real token. Padded text rows of ``attention`` are zero."""
        text_mask = self._check("text_tokens", text_tokens, self.text_dim, "text_mask", text_mask)
        context_mask = self._check("context_tokens", context_tokens, self.context_dim, "context_mask", context_mask)
        if context_tokens.shape[0] != text_tokens.shape[0]:
            raise ValueError(f"context_tokens has batch size {context_tokens.shape[0]}, text_tokens {text_tokens.shape[0]}")
        text, context = self.text_in(text_tokens), self.context_in(context_tokens)
        per_layer = []
        for layer in self.layers:
            text, probabilities = layer(text, context, text_mask, context_mask)
            per_layer.append(probabilities * text_mask[:, None, :, None])
        weights = text_mask[..., None].to(text.dtype)
        pooled = (text * weights).sum(1) / weights.sum(1)
        return CrossModalOutput(self.match_head(pooled).squeeze(-1), per_layer[-1].mean(1), tuple(per_layer), text)

    @staticmethod
    def _check(name, tokens, dim, mask_name, mask):
        check_finite(name, tokens)
        if tokens.dim() != 3 or tokens.shape[-1] != dim or tokens.shape[1] == 0:
            raise ValueError(f"{name} must have shape (B, L, {dim}) with L >= 1, got {tuple(tokens.shape)}")
        if mask is None:
            return torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        if mask.dtype != torch.bool or mask.shape != tokens.shape[:2]:
            raise ValueError(f"{mask_name} must be a bool tensor of shape {tuple(tokens.shape[:2])}, "
                             f"got {mask.dtype} {tuple(mask.shape)}")
        if not mask.any(1).all():
            raise ValueError(f"{mask_name} leaves a sample with no valid token")
        return mask


def _check_attention_pair(attn_pos, attn_neg, mask):
    for name, value in (("attn_pos", attn_pos), ("attn_neg", attn_neg)):
        check_finite(name, value)
        if value.dim() != 3:
            raise ValueError(f"{name} must have shape (B, Lt, Lc), got {tuple(value.shape)}")
        if (value < -1e-6).any() or (value > 1 + 1e-6).any():
            raise ValueError(f"{name} must hold attention probabilities in [0, 1]")
    if attn_neg.shape != attn_pos.shape:
        raise ValueError(f"attn_neg has shape {tuple(attn_neg.shape)}, attn_pos {tuple(attn_pos.shape)}")
    if mask is not None and (mask.dtype != torch.bool or mask.shape != attn_pos.shape):
        raise ValueError(f"mask must be a bool tensor of shape {tuple(attn_pos.shape)}, got {mask.dtype} {tuple(mask.shape)}")


def attention_divergence(attn_pos: torch.Tensor, attn_neg: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """dA = |A+ - A-| (B, Lt, Lc), zero where ``mask`` is False."""
    _check_attention_pair(attn_pos, attn_neg, mask)
    divergence = (attn_pos - attn_neg).abs()
    return divergence if mask is None else divergence * mask


def contrastive_local_attention_loss(attn_pos: torch.Tensor, attn_neg: torch.Tensor, beta: float = 1.0,
                                     omega_size: int = 8, mask: torch.Tensor | None = None, eps: float = 1e-6,
                                     output_dict: bool = False):
    """CLA's L_local on attention maps (B, Lt, Lc) of the positive pair and the hardest negative.

    ``A_b = A- * (1 + beta * |A+ - A-|)``; Omega = the ``omega_size`` most divergent valid pairs of
    each sample (all of them when fewer); the loss is the batch mean of the mean over Omega of
    ``-log max(A_b, eps)``. The mean over Omega (the paper writes a sum) keeps lambda_local's
    meaning independent of |Omega|. Omega is a discrete choice; gradients flow through A+ and A-.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < math.inf:
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    if isinstance(omega_size, bool) or not isinstance(omega_size, int) or omega_size < 1:
        raise ValueError(f"omega_size must be a positive integer, got {omega_size!r}")
    divergence = attention_divergence(attn_pos, attn_neg, mask)
    batch = attn_pos.shape[0]
    valid = torch.ones_like(attn_pos, dtype=torch.bool) if mask is None else mask
    k = min(omega_size, valid[0].numel())
    # Masked pairs rank below every valid one; a sample with fewer valid pairs than k uses all it has.
    ranking = divergence.detach().masked_fill(~valid, -1.0).reshape(batch, -1)
    omega = ranking.topk(k, dim=1).indices
    chosen_valid = valid.reshape(batch, -1).gather(1, omega)
    amplified = attn_neg.reshape(batch, -1).gather(1, omega) * (1 + beta * divergence.reshape(batch, -1).gather(1, omega))
    nll = -torch.log(amplified.clamp_min(eps)) * chosen_valid
    per_sample = nll.sum(1) / chosen_valid.sum(1).clamp_min(1)
    loss = per_sample.mean()
    if output_dict:
        return {"local_loss": loss, "omega_index": omega, "divergence": divergence}
    return loss


def most_divergent_token(attn_pos: torch.Tensor, attn_neg: torch.Tensor, text_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) index of the text token i with the largest sum_j |A+(i, j) - A-(i, j)| (for AEL)."""
    _check_attention_pair(attn_pos, attn_neg, None)
    per_token = (attn_pos - attn_neg).abs().sum(-1)
    if text_mask is not None:
        if text_mask.dtype != torch.bool or text_mask.shape != per_token.shape:
            raise ValueError(f"text_mask must be a bool tensor of shape {tuple(per_token.shape)}")
        per_token = per_token.masked_fill(~text_mask, float("-inf"))
    return per_token.argmax(-1)
