"""CLA: the cross-modal Transformer and the contrastive local attention loss.

The Transformer lets text tokens attend to another modality's tokens (image patches, video frame
tokens, audio patches) and returns its cross-attention probabilities. The literal CLA compares the
map of a positive pair with that of each negative of its match list (same context, the negative
caption),

    dA = |A+ - A-|,   A_b = A- * (1 + beta * dA),   L_local = mean_{(i, j) in Omega} -log A_b(i, j),

where Omega holds the ``omega_size`` most divergent (text token i, context token j) pairs of each
sample. ``most_divergent_token`` is the text token with the largest total divergence (for AEL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from .grouped_attention import AttentionMaps, ContextGroups, MaskedAttention, key_bias
from .validation import check_finite, check_positive_number

__all__ = [
    "CrossModalOutput",
    "CrossModalTransformer",
    "attention_divergence",
    "check_attention_maps",
    "contrastive_local_attention_loss",
    "most_divergent_token",
]

# Attention is a probability; values outside [0, 1] by more than a few half-precision ulps are a bug
# upstream, not rounding.
_PROBABILITY_TOLERANCE = 1e-3


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_mask(name: str, mask: torch.Tensor | None, shape: tuple, device: torch.device) -> torch.Tensor:
    """``mask`` (or all-True when None) after checking it is a bool tensor of ``shape`` on ``device``."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != tuple(shape):
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a bool tensor of shape {tuple(shape)}, got {got}")
    if mask.device != device:
        raise ValueError(f"{name} is on {mask.device}, the tokens are on {device}")
    return mask


def _check_every_sample_has_one(name: str, mask: torch.Tensor) -> None:
    if not mask.flatten(1).any(1).all():
        raise ValueError(f"{name} leaves a sample with no valid entry")


class CrossModalOutput(NamedTuple):
    """What :class:`CrossModalTransformer` returns for B pairs with Lt text and Lc context tokens.

    match_logit: (B,) matching score (logit of "this text describes this context").
    attention: (B, Lt, Lc) last layer's cross-attention probabilities averaged over heads; rows of
        valid text tokens sum to 1 over valid context tokens, padded rows and masked keys are 0.
    layer_attentions: per layer, the (B, H, Lt, Lc) cross-attention probabilities as used, padded
        rows 0 (a sequence that shapes each layer's map when it is read: :class:`AttentionMaps`).
    text_states: (B, Lt, width) final text states (pre-norm residual stream); padded rows are 0.
    """

    match_logit: torch.Tensor
    attention: torch.Tensor
    layer_attentions: Sequence[torch.Tensor]
    text_states: torch.Tensor


class _CrossModalLayer(nn.Module):
    """Pre-norm text self-attention, text->context cross-attention and MLP, each a residual branch."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, dropout: float):
        super().__init__()
        self.self_norm, self.self_attention = nn.LayerNorm(width), MaskedAttention(width, heads)
        self.cross_norm, self.cross_attention = nn.LayerNorm(width), MaskedAttention(width, heads)
        hidden = max(1, round(width * mlp_ratio))
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        # Dropout acts on the residual branches, never on the attention probabilities, so the maps
        # CLA reads are exactly the ones that weighted the values.
        self.dropout = nn.Dropout(dropout)

    def forward(self, text, context, text_bias, context_bias, groups=None):
        normed = self.self_norm(text)
        text = text + self.dropout(self.self_attention(normed, normed, text_bias)[0])
        attended, probabilities = self.cross_attention(self.cross_norm(text), context, context_bias, groups)
        text = text + self.dropout(attended)
        text = text + self.dropout(self.mlp(self.mlp_norm(text)))
        return text, probabilities


class CrossModalTransformer(nn.Module):
    """Text tokens attending to context tokens, with a match head; returns its attention maps.

    Text tokens get no positional embedding (the text tower's outputs carry position). Context
    tokens get a learned one per slot when ``context_positions`` > 0: image patches carry their
    position from the ViT, but video frame tokens carry no time, so without it the Transformer
    reads a clip as a set of frames and cannot tell a clip from its time-reversed sibling. The
    context is projected and LayerNorm'd once and is not updated by the layers (it only supplies
    keys/values).

    Args:
        text_dim: feature size of the text tokens.
        context_dim: feature size of the context (image / video / audio) tokens.
        width: model width; 256 fits the paper's "lightweight" 4-layer head on frozen features.
        depth: number of layers; 4 as in the paper.
        heads: attention heads; 4 keeps 64 dimensions per head at width 256.
        mlp_ratio: MLP hidden size over width; 4 as in ViT/BERT.
        dropout: on the residual branches; 0 because the frozen encoders' features are the input
            and the head is small.
        context_positions: learned context position embeddings (the most context tokens a sample
            may have); 0, none.
    """

    def __init__(self, text_dim: int, context_dim: int, width: int = 256, depth: int = 4, heads: int = 4,
                 mlp_ratio: float = 4.0, dropout: float = 0.0, context_positions: int = 0):
        super().__init__()
        for name, value in (("text_dim", text_dim), ("context_dim", context_dim), ("width", width),
                            ("depth", depth), ("heads", heads)):
            _check_positive_int(name, value)
        if width % heads:
            raise ValueError(f"width={width} is not divisible by heads={heads}")
        check_positive_number("mlp_ratio", mlp_ratio)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        self.text_dim, self.context_dim = text_dim, context_dim
        self.text_projection = nn.Sequential(nn.Linear(text_dim, width), nn.LayerNorm(width))
        self.context_projection = nn.Sequential(nn.Linear(context_dim, width), nn.LayerNorm(width))
        if isinstance(context_positions, bool) or not isinstance(context_positions, int) or context_positions < 0:
            raise ValueError(f"context_positions must be a non-negative integer, got {context_positions!r}")
        # Small initial values (as ViT's 0.02): the frozen tokens' own content dominates at the start.
        self.context_position = (nn.Parameter(0.02 * torch.randn(context_positions, width))
                                 if context_positions else None)
        self.layers = nn.ModuleList(_CrossModalLayer(width, heads, mlp_ratio, dropout) for _ in range(depth))
        self.match_head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 1))

    def _check_tokens(self, name: str, tokens, feature_dim: int, dim_name: str) -> None:
        check_finite(name, tokens)
        if tokens.dim() != 3 or 0 in tokens.shape[:2]:
            raise ValueError(f"{name} must have shape (B, L, D) with B, L >= 1, got {tuple(tokens.shape)}")
        if tokens.shape[-1] != feature_dim:
            raise ValueError(f"{name} has feature size {tokens.shape[-1]}, expected {dim_name}={feature_dim}")
        weight = self.text_projection[0].weight
        if tokens.dtype != weight.dtype and not torch.is_autocast_enabled(tokens.device.type):
            raise ValueError(f"{name} is {tokens.dtype} but the model is {weight.dtype} (and autocast is off)")

    def forward(self, text_tokens: torch.Tensor, context_tokens: torch.Tensor,
                text_mask: torch.Tensor | None = None, context_mask: torch.Tensor | None = None,
                context_index: torch.Tensor | None = None) -> CrossModalOutput:
        """Score B (text, context) pairs.

        Args:
            text_tokens: (B, Lt, text_dim) text token features.
            context_tokens: (B, Lc, context_dim) context token features, the context of each text
                row; with ``context_index`` (C, Lc, context_dim), C distinct contexts.
            text_mask: optional (B, Lt) bool, True for a valid text token.
            context_mask: optional (B, Lc) bool (with ``context_index`` (C, Lc)), True for a valid
                context token.
            context_index: optional (B,) integer row of ``context_tokens`` paired with each text
                row. The outputs are those of pairing ``context_tokens[context_index]``, but each
                context is projected, and its keys and values computed, once, and the captions of
                one context attend to it in one stacked attention (match lists, re-ranking).
        """
        self._check_tokens("text_tokens", text_tokens, self.text_dim, "text_dim")
        self._check_tokens("context_tokens", context_tokens, self.context_dim, "context_dim")
        if context_tokens.device != text_tokens.device:
            raise ValueError(f"context_tokens is on {context_tokens.device}, text_tokens is on {text_tokens.device}")
        if context_index is None and context_tokens.shape[0] != text_tokens.shape[0]:
            raise ValueError(f"context_tokens has batch size {context_tokens.shape[0]}, "
                             f"text_tokens has {text_tokens.shape[0]} (and no context_index maps them)")
        if context_index is not None:
            _check_context_index(context_index, text_tokens.shape[0], context_tokens.shape[0], text_tokens.device)
        text_mask = _check_mask("text_mask", text_mask, text_tokens.shape[:2], text_tokens.device)
        context_mask = _check_mask("context_mask", context_mask, context_tokens.shape[:2], text_tokens.device)
        _check_every_sample_has_one("text_mask", text_mask)
        _check_every_sample_has_one("context_mask", context_mask)

        text = self.text_projection(text_tokens)
        context = self.context_projection(context_tokens)
        if self.context_position is not None:
            if context.shape[1] > self.context_position.shape[0]:
                raise ValueError(f"context_tokens has {context.shape[1]} tokens, more than the "
                                 f"context_positions={self.context_position.shape[0]} the model was built for")
            context = context + self.context_position[: context.shape[1]]
        groups = None if context_index is None else ContextGroups(context_index, context.shape[0], text.shape[1])
        text_bias, context_bias = key_bias(text_mask, text.dtype), key_bias(context_mask, context.dtype)
        probabilities = []
        for layer in self.layers:
            text, layer_probabilities = layer(text, context, text_bias, context_bias, groups)
            probabilities.append(layer_probabilities)
        # Padded text rows never reach a valid one (they are masked keys in self-attention), so only
        # the outputs zero them: the states here, the maps in AttentionMaps.
        text = text.masked_fill(~text_mask[..., None], 0.0)
        pooled = text.sum(1) / text_mask.sum(1, keepdim=True).to(text.dtype)
        maps = AttentionMaps(probabilities, text_mask, groups)
        return CrossModalOutput(
            match_logit=self.match_head(pooled).squeeze(-1),
            attention=maps.head_mean(),
            layer_attentions=maps,
            text_states=text,
        )


def _check_context_index(index, texts: int, contexts: int, device: torch.device) -> None:
    if (not isinstance(index, torch.Tensor) or index.is_floating_point() or index.is_complex()
            or index.dtype == torch.bool or tuple(index.shape) != (texts,)):
        got = f"{index.dtype} {tuple(index.shape)}" if isinstance(index, torch.Tensor) else type(index).__name__
        raise ValueError(f"context_index must be an integer tensor of shape ({texts},), got {got}")
    if index.device != device:
        raise ValueError(f"context_index is on {index.device}, the tokens are on {device}")
    if index.min() < 0 or index.max() >= contexts:
        raise ValueError(f"context_index must index the {contexts} rows of context_tokens, got values in "
                         f"[{index.min().item()}, {index.max().item()}]")


def check_attention_maps(attn_pos, attn_neg, same_shape: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate two (B, L, Lc) attention maps (finite probabilities, same device; the same shape,
    or with ``same_shape=False`` the same B and Lc); return them in at least float32, because
    half-precision maps (from autocast) would otherwise be ranked and logged with 2-3 digits."""
    for name, attention in (("attn_pos", attn_pos), ("attn_neg", attn_neg)):
        check_finite(name, attention)
        if attention.dim() != 3 or 0 in attention.shape:
            raise ValueError(f"{name} must have shape (B, Lt, Lc) with all sizes >= 1, got {tuple(attention.shape)}")
        low, high = attention.min().item(), attention.max().item()
        if low < -_PROBABILITY_TOLERANCE or high > 1 + _PROBABILITY_TOLERANCE:
            raise ValueError(f"{name} must hold probabilities in [0, 1], got values in [{low:.4g}, {high:.4g}]")
    compared = (0, 1, 2) if same_shape else (0, 2)
    if any(attn_neg.shape[d] != attn_pos.shape[d] for d in compared):
        raise ValueError(f"attn_neg has shape {tuple(attn_neg.shape)}, attn_pos has {tuple(attn_pos.shape)}")
    if attn_neg.device != attn_pos.device:
        raise ValueError(f"attn_neg is on {attn_neg.device}, attn_pos is on {attn_pos.device}")
    working = torch.promote_types(torch.promote_types(attn_pos.dtype, attn_neg.dtype), torch.float32)
    return attn_pos.to(working), attn_neg.to(working)


def _masked_divergence(attn_pos, attn_neg, mask):
    return (attn_pos - attn_neg).abs().masked_fill(~mask, 0.0)


def attention_divergence(attn_pos: torch.Tensor, attn_neg: torch.Tensor,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    """``dA = |A+ - A-|`` elementwise, 0 where ``mask`` is False.

    Args:
        attn_pos, attn_neg: (B, Lt, Lc) cross-attention of the positive and the negative pair.
        mask: optional (B, Lt, Lc) bool, True for a valid (text token, context token) pair.
    """
    attn_pos, attn_neg = check_attention_maps(attn_pos, attn_neg)
    mask = _check_mask("mask", mask, attn_pos.shape, attn_pos.device)
    return _masked_divergence(attn_pos, attn_neg, mask)


def contrastive_local_attention_loss(attn_pos: torch.Tensor, attn_neg: torch.Tensor, beta: float = 1.0,
                                     omega_size: int = 8, mask: torch.Tensor | None = None, eps: float = 1e-6,
                                     output_dict: bool = False):
    """CLA: ``mean over Omega of -log(max(A- * (1 + beta * dA), eps))``, averaged over the batch.

    Omega holds each sample's ``omega_size`` valid pairs of largest ``dA`` (all of its valid pairs
    if it has fewer); ties go to the lower flat index, so Omega is the same on every device. The
    choice of Omega is discrete and carries no gradient; the loss's gradient reaches A- and, via
    dA, A+. The mean (not the paper's sum) over Omega keeps ``lambda_local`` independent of
    ``omega_size``. A_b can exceed 1 (it is at most 1 + beta), so the loss can be negative.

    Args:
        attn_pos, attn_neg: (B, Lt, Lc) cross-attention of the positive and the negative pair.
        beta: amplification of divergent negative attention, >= 0; 1 by default (the paper's
            value is not given; 1 lets A_b at most double).
        omega_size: |Omega| per sample; 8 by default (the paper's value is not given): a handful of
            pairs, on the order of a swapped word's tokens times the patches it refers to.
        mask: optional (B, Lt, Lc) bool, True for a valid pair (valid text token and context token
            of both the positive and the negative); masked pairs are never in Omega.
        eps: floor of A_b inside the log, so attention of exactly 0 gives a finite loss.
        output_dict: return ``{"local_loss", "omega_index", "divergence"}`` instead of the loss:
            omega_index (B, omega_size) flat indices into Lt * Lc (-1 in unused slots),
            divergence (B, Lt, Lc) the masked dA.
    """
    attn_pos, attn_neg = check_attention_maps(attn_pos, attn_neg)
    beta = check_positive_number("beta", beta, allow_zero=True)
    omega_size = _check_positive_int("omega_size", omega_size)
    eps = check_positive_number("eps", eps)
    if eps >= 1:
        raise ValueError(f"eps must be below 1, got {eps!r}")
    mask = _check_mask("mask", mask, attn_pos.shape, attn_pos.device)
    _check_every_sample_has_one("mask", mask)

    divergence = _masked_divergence(attn_pos, attn_neg, mask)
    amplified = attn_neg * (1.0 + beta * divergence)
    batch = attn_pos.shape[0]
    flat_mask = mask.reshape(batch, -1)
    ranking = divergence.detach().reshape(batch, -1).masked_fill(~flat_mask, float("-inf"))
    order = torch.sort(ranking, dim=1, descending=True, stable=True).indices[:, :omega_size]
    selected = flat_mask.gather(1, order)
    negative_log = -amplified.reshape(batch, -1).gather(1, order).clamp_min(eps).log()
    per_sample = (negative_log * selected).sum(1) / selected.sum(1)
    local_loss = per_sample.mean()
    if not output_dict:
        return local_loss
    omega_index = torch.full((batch, omega_size), -1, dtype=torch.long, device=order.device)
    omega_index[:, :order.shape[1]] = order.masked_fill(~selected, -1)
    return {"local_loss": local_loss, "omega_index": omega_index, "divergence": divergence}


def most_divergent_token(attn_pos: torch.Tensor, attn_neg: torch.Tensor,
                         text_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) index of the valid text token i with the largest ``sum_j dA(i, j)`` (first one on ties).

    Args:
        attn_pos, attn_neg: (B, Lt, Lc) cross-attention of the positive and the negative pair.
        text_mask: optional (B, Lt) bool, True for a text token valid in both captions.
    """
    attn_pos, attn_neg = check_attention_maps(attn_pos, attn_neg)
    text_mask = _check_mask("text_mask", text_mask, attn_pos.shape[:2], attn_pos.device)
    _check_every_sample_has_one("text_mask", text_mask)
    per_token = (attn_pos - attn_neg).abs().sum(-1)
    return per_token.masked_fill(~text_mask, float("-inf")).argmax(1)
