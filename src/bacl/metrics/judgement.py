"""Boundary accuracy, multiple choice and attention error localisation (AEL) with their chance levels."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ._checks import _bool_tensor, _float_tensor, _int_vector, _tensor


def boundary_accuracy(
    positive_scores,
    negative_scores,
    negative_types,
    negative_mask=None,  # None: every (sample, negative) slot is a real negative
    type_names: Sequence[str] | None = None,
) -> dict:
    """How often the true caption scores strictly higher than its boundary negatives.

    Args:
        positive_scores: (N,) score of each sample's true caption.
        negative_scores: (N, M) scores of its boundary negatives (padded to M).
        negative_types: the type of each negative, either a list of N lists of M strings, or an
            (N, M) integer array of codes into ``type_names``. Masked-out slots are ignored.
        negative_mask: (N, M) bool, True for real negatives; every sample needs at least one.
        type_names: names of the type codes; required with, and only with, a code array.

    Returns:
        ``{"accuracy", "n_samples", "pairwise_accuracy", "n_pairs", "per_type"}``: ``accuracy``
        is the share of samples whose positive beats all of its negatives; ``pairwise_accuracy``
        the share of (sample, negative) pairs the positive wins; ``per_type[name]`` holds the
        pairwise ``accuracy`` and ``n_pairs`` of each type present (sorted by name). Ties lose.
    """
    positive = _float_tensor("positive_scores", positive_scores, 1)
    negative = _float_tensor("negative_scores", negative_scores, 2)
    if negative.shape[0] != positive.shape[0]:
        raise ValueError(f"negative_scores has {negative.shape[0]} rows but positive_scores has {positive.shape[0]}")
    shape = tuple(negative.shape)
    mask = torch.ones(shape, dtype=torch.bool) if negative_mask is None else _bool_tensor("negative_mask", negative_mask, shape)
    mask = mask.to(negative.device)
    if not mask.any(1).all():
        raise ValueError(f"negative_mask leaves sample {int((~mask.any(1)).nonzero()[0])} without any negative")
    if isinstance(negative_types, (list, tuple)):
        if type_names is not None:
            raise ValueError("type_names is only used with an integer array of negative_types")
        if len(negative_types) != shape[0] or any(len(row) != shape[1] for row in negative_types):
            raise ValueError(f"negative_types must be N={shape[0]} lists of M={shape[1]} strings")
        type_names = sorted({name for row in negative_types for name in row})
        lookup = {name: code for code, name in enumerate(type_names)}
        codes = torch.tensor([[lookup[name] for name in row] for row in negative_types])
    else:
        if type_names is None:
            raise ValueError("type_names is required when negative_types is an array of codes")
        codes = _tensor("negative_types", negative_types).to(negative.device)
        if codes.is_floating_point() or codes.dtype == torch.bool or tuple(codes.shape) != shape:
            raise ValueError(f"negative_types must be an integer array of shape {shape}, got {codes.dtype} {tuple(codes.shape)}")
        if codes[mask].min() < 0 or codes[mask].max() >= len(type_names):
            raise ValueError(f"negative_types holds codes outside [0, {len(type_names)}) for type_names")
    codes = codes.to(negative.device)

    wins = negative < positive[:, None]
    result = {
        "accuracy": float((wins | ~mask).all(1).double().mean()),
        "n_samples": shape[0],
        "pairwise_accuracy": float(wins[mask].double().mean()),
        "n_pairs": int(mask.sum()),
        "per_type": {},
    }
    for code, name in sorted(enumerate(type_names), key=lambda pair: pair[1]):
        of_type = mask & (codes == code)
        if of_type.any():
            result["per_type"][name] = {"accuracy": float(wins[of_type].double().mean()), "n_pairs": int(of_type.sum())}
    return result


def boundary_chance(negative_mask) -> dict[str, float]:
    """Chance levels of boundary accuracy for samples with M_i boundary negatives each.

    ``pairwise``: 0.5, a coin flip per (sample, negative) pair (ties lose, so a constant scorer
    gets 0). "The positive beats all M negatives" (``boundary_accuracy``'s ``accuracy``, and the
    multiple-choice accuracy) has two reference levels, neither of which is *the* chance:
    ``accuracy`` = mean 0.5^M, if the M comparisons are independent coin flips — what a scorer
    smooth in the features does with near-copies of the positive (each negative is one edit
    away from the positive, so its score is the positive's plus an independent change; untrained
    heads land there); ``accuracy_exchangeable`` = mean 1 / (M + 1), if the M + 1 scores are
    exchangeable (a uniformly random ranking).

    Args:
        negative_mask: (N, M) bool, True for a real negative; every sample needs at least one.
    """
    mask = _bool_tensor("negative_mask", negative_mask, tuple(torch.as_tensor(negative_mask).shape))
    if mask.dim() != 2 or not mask.any(1).all():
        raise ValueError("negative_mask must be (N, M) with at least one negative per sample")
    counts = mask.sum(1).double()
    return {"pairwise": 0.5, "accuracy": float((0.5 ** counts).mean()),
            "accuracy_exchangeable": float((1 / (counts + 1)).mean())}


def multiple_choice_accuracy(scores, correct_index, threshold: float | None = None) -> dict[str, float]:
    """Accuracy / precision / recall / F1 of choosing the true caption among C candidates.

    The predicted choice is the highest-scoring one; if the correct choice ties with a wrong one,
    the wrong one is predicted (pessimistic). ``accuracy`` is the share of samples whose
    predicted choice is correct.

    Precision, recall and F1 treat each of the N*C (sample, choice) pairs as a binary decision
    "is this choice the true caption". By default (``threshold=None``) the predicted choice is
    the only positive of its sample; with a ``threshold`` every choice scoring strictly above it
    is positive (a match head's yes/no decisions). ``precision`` and ``recall`` are those of the
    positive class; ``f1`` is the macro mean of the F1 of the positive and the negative class
    (0 where a class has no predictions). With ``threshold=None``, precision = recall = accuracy
    exactly, because every sample has one true and one predicted positive.

    Args:
        scores: (N, C) scores with C >= 2.
        correct_index: (N,) index of the true caption in each row.
        threshold: None, or a finite number.
    """
    scores = _float_tensor("scores", scores, 2)
    n, n_choices = scores.shape
    if n_choices < 2:
        raise ValueError(f"scores needs at least 2 choices per sample, got C={n_choices}")
    correct = _int_vector("correct_index", correct_index, n, "scores' first dimension").to(scores.device)
    if correct.min() < 0 or correct.max() >= n_choices:
        raise ValueError(f"correct_index must lie in [0, {n_choices}), got values in [{int(correct.min())}, {int(correct.max())}]")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not math.isfinite(threshold)):
        raise ValueError(f"threshold must be None or a finite number, got {threshold!r}")

    truth = F.one_hot(correct, n_choices).bool()
    wrong_scores = scores.masked_fill(truth, float("-inf"))
    right = scores.gather(1, correct[:, None]).squeeze(1) > wrong_scores.max(1).values
    if threshold is None:
        predicted_choice = torch.where(right, correct, wrong_scores.argmax(1))
        predicted = F.one_hot(predicted_choice, n_choices).bool()
    else:
        predicted = scores > threshold

    def precision_recall_f1(pred: torch.Tensor, true: torch.Tensor) -> tuple[float, float, float]:
        hits = float((pred & true).sum())
        precision = hits / float(pred.sum()) if pred.any() else 0.0
        recall = hits / float(true.sum())
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        return precision, recall, f1

    precision, recall, f1_positive = precision_recall_f1(predicted, truth)
    f1_negative = precision_recall_f1(~predicted, ~truth)[2]
    return {
        "accuracy": float(right.double().mean()),
        "precision": precision,
        "recall": recall,
        "f1": (f1_positive + f1_negative) / 2,
        "n": n,
    }


def _position_sets(name: str, positions, n: int) -> list[set[int]]:
    if not isinstance(positions, Sequence) or len(positions) != n:
        raise ValueError(f"{name} must be a sequence of N={n} collections of token positions")
    sets = []
    for row in positions:
        values = set(row.tolist() if isinstance(row, (np.ndarray, torch.Tensor)) else row)
        if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values):
            raise ValueError(f"{name} must hold integer token positions, got {sorted(values, key=str)!r}")
        sets.append({int(v) for v in values})
    return sets


def _valid_rows(valid, n: int, wrong: list[set[int]]) -> torch.Tensor:
    valid = torch.ones(n, dtype=torch.bool) if valid is None else _bool_tensor("valid", valid, (n,)).cpu()
    if not valid.any():
        raise ValueError("valid marks no sample as valid")
    empty = [i for i in valid.nonzero().flatten().tolist() if not wrong[i]]
    if empty:
        raise ValueError(f"wrong_token_positions is empty for valid sample(s) {empty[:5]}: nothing to localise")
    return valid


def attention_error_localization(divergent_token, wrong_token_positions, valid=None) -> dict:
    """AEL: share of boundary negatives whose most divergent token is one of the truly wrong ones.

    Args:
        divergent_token: (N,) position of the token where the cross-modal attention of the
            positive and the negative differ most (computed elsewhere).
        wrong_token_positions: N collections of the positions of the negative's wrong tokens, in
            the same indexing as ``divergent_token``; non-empty for valid samples.
        valid: optional (N,) bool; False drops a sample (e.g. its wrong tokens were truncated).

    Returns:
        ``{"ael": share of valid samples localised, "n": number of valid samples}``.
    """
    divergent = _int_vector("divergent_token", divergent_token).cpu()
    wrong = _position_sets("wrong_token_positions", wrong_token_positions, divergent.numel())
    valid = _valid_rows(valid, divergent.numel(), wrong)
    rows = valid.nonzero().flatten().tolist()
    hits = sum(int(divergent[i]) in wrong[i] for i in rows)
    return {"ael": hits / len(rows), "n": len(rows)}


def ael_chance_level(wrong_token_positions, n_valid_tokens, valid=None) -> float:
    """Expected AEL of picking a uniformly random valid token: mean of |wrong| / n_valid_tokens.

    Args:
        wrong_token_positions: N collections of wrong-token positions (as for AEL).
        n_valid_tokens: (N,) number of tokens the divergent token is chosen among (e.g. the
            non-padding caption tokens); at least |wrong| for every valid sample.
        valid: optional (N,) bool, as for :func:`attention_error_localization`.
    """
    counts = _int_vector("n_valid_tokens", n_valid_tokens).cpu()
    wrong = _position_sets("wrong_token_positions", wrong_token_positions, counts.numel())
    valid = _valid_rows(valid, counts.numel(), wrong)
    rows = valid.nonzero().flatten().tolist()
    too_few = [i for i in rows if len(wrong[i]) > int(counts[i])]
    if too_few:
        raise ValueError(f"n_valid_tokens is smaller than the number of wrong tokens for sample(s) {too_few[:5]}")
    return sum(len(wrong[i]) / int(counts[i]) for i in rows) / len(rows)
