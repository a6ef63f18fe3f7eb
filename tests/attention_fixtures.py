"""Shared helpers of the attention tests (the cross-modal Transformer's and the CLA loss's): random
masks, a NaN planted in a tensor, and the hypothesis sizes of a batch of attention maps."""

import torch
from hypothesis import strategies as st

__all__ = ["nan_at_first", "random_mask", "sizes"]


def random_mask(gen, batch, length):
    """(B, L) bool with at least one True per row."""
    mask = torch.rand(batch, length, generator=gen) < 0.6
    mask[torch.arange(batch), torch.randint(length, (batch,), generator=gen)] = True
    return mask


sizes = dict(seed=st.integers(0, 10_000), batch=st.integers(1, 4), text_length=st.integers(1, 5),
             context_length=st.integers(1, 6))


def nan_at_first(tensor):
    tensor = tensor.clone()
    tensor.view(-1)[0] = float("nan")
    return tensor
