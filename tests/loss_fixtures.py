"""Shared inputs of the BACLLoss tests: normalised embedding pairs, token features, caption token ids,
and a seeded small cross-modal Transformer."""

import torch
import torch.nn.functional as F

from bacl.attention import CrossModalTransformer

__all__ = ["features", "small_transformer", "token_ids", "tokens"]


def features(seed, batch, dim=8):
    gen = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(batch, dim, generator=gen), dim=-1)
    text = F.normalize(image + torch.randn(batch, dim, generator=gen), dim=-1)
    return image, text


def tokens(seed, batch, length=5, dim=6):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, dim, generator=gen)


def token_ids(seed, batch, length=5, vocabulary=6):
    """Random caption token ids in [1, vocabulary] (a small vocabulary: captions share words)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocabulary + 1, (batch, length), generator=gen)


def small_transformer():
    torch.manual_seed(0)
    return CrossModalTransformer(text_dim=6, context_dim=6, width=16, depth=2, heads=2)

