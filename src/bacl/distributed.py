"""Gathering embeddings across data-parallel ranks, kept apart from the loss maths.

The scheme is open_clip's: with ``gather_with_grad`` the all-gather is differentiable, so every
rank's loss sends gradients back to every other rank's embeddings; without it the gathered copies
are constants and, unless each rank computes only its own rows (``local_loss``), the rank's own
slice is put back so its gradient is kept.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn

__all__ = ["gather_features", "gather_tensor"]


def gather_tensor(tensor: torch.Tensor, *, gather_with_grad: bool, keep_local_grad: bool, rank: int, world_size: int) -> torch.Tensor:
    """Concatenate ``tensor`` (B, ...) from all ranks along dim 0 -> (world_size * B, ...)."""
    if gather_with_grad:
        return torch.cat(dist_fn.all_gather(tensor), dim=0)
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor.detach().contiguous())
    if keep_local_grad:
        parts[rank] = tensor
    return torch.cat(parts, dim=0)


def gather_features(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    *,
    local_loss: bool = False,
    gather_with_grad: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All-gather (B, D) image and text features into (world_size * B, D) each, rank order."""
    if world_size == 1:
        return image_features, text_features
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(f"world_size={world_size} but torch.distributed is not initialised")
    options = dict(gather_with_grad=gather_with_grad, keep_local_grad=not local_loss, rank=rank, world_size=world_size)
    return gather_tensor(image_features, **options), gather_tensor(text_features, **options)
