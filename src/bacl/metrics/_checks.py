"""Argument checks shared by the metrics: each raises ValueError naming the argument."""

from __future__ import annotations

import numbers

import torch

from ..validation import check_finite


def _tensor(name: str, value) -> torch.Tensor:
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} cannot be converted to a tensor: {err}") from None


def _int_vector(name: str, value, length: int | None = None, length_name: str = "") -> torch.Tensor:
    """``value`` as a 1-D int64 tensor, optionally of a given length."""
    tensor = _tensor(name, value)
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise ValueError(f"{name} must hold integers, got {tensor.dtype}")
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise ValueError(f"{name} must have shape (N,) with N >= 1, got {tuple(tensor.shape)}")
    if length is not None and tensor.numel() != length:
        raise ValueError(f"{name} has {tensor.numel()} entries but {length_name} has {length}")
    return tensor.long()


def _bool_tensor(name: str, value, shape: tuple[int, ...]) -> torch.Tensor:
    tensor = _tensor(name, value)
    if tensor.dtype != torch.bool or tuple(tensor.shape) != shape:
        raise ValueError(f"{name} must be a bool tensor of shape {shape}, got {tensor.dtype} {tuple(tensor.shape)}")
    return tensor


def _float_tensor(name: str, value, dim: int) -> torch.Tensor:
    tensor = _tensor(name, value)
    check_finite(name, tensor)
    if tensor.dim() != dim or tensor.numel() == 0:
        raise ValueError(f"{name} must be a non-empty {dim}-D tensor, got shape {tuple(tensor.shape)}")
    return tensor


def _check_similarity_shape(similarity) -> None:
    """Shape and dtype of a (Q, G) similarity matrix. Finiteness is checked by the callers, on each
    chunk of rows as they read it (``check_finite``)."""
    if not isinstance(similarity, torch.Tensor) or not similarity.is_floating_point():
        raise ValueError(f"similarity must be a floating-point torch.Tensor, got {getattr(similarity, 'dtype', type(similarity).__name__)}")
    if similarity.dim() != 2 or similarity.shape[0] == 0 or similarity.shape[1] == 0:
        raise ValueError(f"similarity must have shape (Q, G) with Q, G >= 1, got {tuple(similarity.shape)}")


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
