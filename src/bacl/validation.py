"""Input checks shared by the public functions: each raises ValueError naming the bad argument."""

from __future__ import annotations

import torch

__all__ = ["all_finite", "check_finite", "check_floating", "check_matrix", "check_positive_number", "load_error_reason", "checked_token_mask"]


def check_floating(name: str, tensor: torch.Tensor) -> None:
    """Raise if ``tensor`` is not a floating-point torch.Tensor (no pass over its values)."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {tensor.dtype}")


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether the floating ``tensor`` holds no NaN and no inf, in one reduction without a copy:
    aminmax propagates NaN to both results, and an inf is the maximum or the minimum (unlike a
    sum, finite values cannot overflow it). ~20x cheaper than ``isfinite(tensor).all()``, which
    writes a bool copy (float16 token stores: 0.02 s instead of 0.46 s for 12M values)."""
    if tensor.numel() == 0:
        return True
    low, high = torch.aminmax(tensor)
    return bool(torch.isfinite(low) & torch.isfinite(high))


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Raise if ``tensor`` is not a floating tensor or holds NaN or inf."""
    check_floating(name, tensor)
    if not all_finite(tensor):
        raise ValueError(f"{name} contains NaN or inf")


def check_matrix(name: str, tensor: torch.Tensor) -> None:
    """Raise unless ``tensor`` is a finite (N, D) floating tensor with N, D >= 1."""
    check_finite(name, tensor)
    if tensor.dim() != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N, D >= 1, got {tuple(tensor.shape)}")


def checked_token_mask(mask: torch.Tensor | None, tokens: torch.Tensor, name: str) -> torch.Tensor:
    """``mask`` after checking it is a bool tensor of ``tokens``' shape but the last, (..., L); all True when None."""
    if mask is None:
        return torch.ones(tokens.shape[:-1], dtype=torch.bool, device=tokens.device)
    if not isinstance(mask, torch.Tensor) or mask.shape != tokens.shape[:-1] or mask.dtype != torch.bool:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"{name} must be a bool tensor of shape {tuple(tokens.shape[:-1])}, got {got}")
    return mask


def check_positive_number(name: str, value, allow_zero: bool = False) -> float:
    """Return ``value`` as float if it is a finite number > 0 (>= 0 with ``allow_zero``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value < float("inf")
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def load_error_reason(error: BaseException) -> str:
    """The informative line of a failed ``torch.load(..., weights_only=True)`` (or any load error),
    without torch's boilerplate, whose advice (retry with weights_only=False) must not be followed
    for a file of unknown origin."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith(boilerplate)]
    return f"{type(error).__name__}: {lines[-1].rstrip('.')}" if lines else type(error).__name__
