"""Evaluation metrics: retrieval, re-ranking, boundary accuracy and its chance levels, multiple choice,
AEL, attention diagnostics, seed statistics, the plateau criterion of a training curve.

Pure functions on tensors (vectorised) or on logged numbers; no file I/O, no models. All rates are fractions in [0, 1].

Retrieval ground truth is *caption equivalence*: every item carries an integer id (identical
captions share an id), and a query's relevant gallery items are all gallery items with its id.

Ties are resolved pessimistically everywhere: a relevant item (or the true caption) that ties
with irrelevant ones is ranked after them, and a tie never counts as a win. Otherwise a constant
scorer, which knows nothing, would score perfectly.

The names below are imported from their modules on first use (PEP 562): the seed statistics need
only NumPy and the plateau criterion plain Python, so a job that only aggregates finished runs
does not import torch for them.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(__name__, submod_attrs={
    "attention_maps": ["attention_diagnostics"],
    "judgement": ["ael_chance_level", "attention_error_localization", "boundary_accuracy", "boundary_chance",
                  "multiple_choice_accuracy"],
    "plateau": ["last_quarter_change", "plateau_report"],
    "retrieval": ["bidirectional_retrieval", "rerank_topk", "retrieval_metrics"],
    "seeds": ["aggregate_seeds", "mean_std"],
})
