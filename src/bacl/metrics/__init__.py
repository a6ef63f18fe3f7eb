"""Evaluation metrics: retrieval, re-ranking, boundary accuracy and its chance levels, multiple choice,
AEL, attention diagnostics, seed statistics.

Pure, vectorised functions on tensors; no file I/O, no models. All rates are fractions in [0, 1].

Retrieval ground truth is *caption equivalence*: every item carries an integer id (identical
captions share an id), and a query's relevant gallery items are all gallery items with its id.

Ties are resolved pessimistically everywhere: a relevant item (or the true caption) that ties
with irrelevant ones is ranked after them, and a tie never counts as a win. Otherwise a constant
scorer, which knows nothing, would score perfectly.
"""

from .attention_maps import attention_diagnostics
from .judgement import (
    aggregate_seeds,
    ael_chance_level,
    attention_error_localization,
    boundary_accuracy,
    boundary_chance,
    mean_std,
    multiple_choice_accuracy,
)
from .retrieval import bidirectional_retrieval, rerank_topk, retrieval_metrics

__all__ = [
    "retrieval_metrics",
    "bidirectional_retrieval",
    "rerank_topk",
    "boundary_accuracy",
    "boundary_chance",
    "attention_diagnostics",
    "multiple_choice_accuracy",
    "attention_error_localization",
    "ael_chance_level",
    "mean_std",
    "aggregate_seeds",
]
