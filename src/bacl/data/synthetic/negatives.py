"""Boundary negatives: proposing edits of a caption's structure and keeping the half-true ones.

A modality proposes, per :class:`NegativeType`, candidate structures that differ from the true
one by a single edit (helpers below). :func:`select_negatives` keeps, per type, up to
``per_type`` random candidates that the modality accepts (a well-formed caption that is false for
the scene and uses no held-out combination where the split forbids them) and that are not
equivalent to the true caption or to a negative kept before. Each kept negative records the word
positions (indices into ``caption.split()``) where it differs from the true caption: every edit
here keeps the number of words, so those positions are exactly the wrong words.
:func:`item_difference` inverts the helpers: it names the single edit that turns one structure
into another (the modalities map it to a :class:`NegativeType` to type sibling captions).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np

from .grammar import NegativeType

__all__ = [
    "Difference", "differing_positions", "item_difference", "order_swaps", "select_negatives", "sequence_edit",
    "value_changes", "value_exchanges", "with_item",
]

T = TypeVar("T")


def with_item(items: Sequence[T], index: int, item: T) -> tuple[T, ...]:
    """``items`` as a tuple with position ``index`` replaced by ``item``."""
    return (*items[:index], item, *items[index + 1 :])


def value_changes(items: Sequence[NamedTuple], field: str, values: Sequence[Any]) -> list[tuple[NamedTuple, ...]]:
    """Every copy of ``items`` in which one item's ``field`` takes another value from ``values``."""
    return [
        with_item(items, i, item._replace(**{field: value}))
        for i, item in enumerate(items)
        for value in values
        if value != getattr(item, field)
    ]


def value_exchanges(items: Sequence[NamedTuple], field: str) -> list[tuple[NamedTuple, ...]]:
    """Every copy of ``items`` in which two items with different ``field`` values exchange them."""
    out = []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            a, b = getattr(items[i], field), getattr(items[j], field)
            if a != b:
                swapped = with_item(items, i, items[i]._replace(**{field: b}))
                out.append(with_item(swapped, j, items[j]._replace(**{field: a})))
    return out


def order_swaps(items: Sequence[T]) -> list[tuple[T, ...]]:
    """Every copy of ``items`` with two different items in exchanged positions."""
    out = []
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if items[i] != items[j]:
                out.append(with_item(with_item(items, i, items[j]), j, items[i]))
    return out


class Difference(NamedTuple):
    """One edit between two item sequences: ``kind`` "change" (one item, ``fields`` = the fields that
    differ), "order" (two items in exchanged places, ``fields`` = those in which they differ) or
    "exchange" (one field's values exchanged between two items that also differ in another field)."""

    kind: str
    positions: tuple[int, ...]
    fields: tuple[str, ...]


def item_difference(a: Sequence[NamedTuple], b: Sequence[NamedTuple]) -> Difference | None:
    """The edit of :func:`value_changes`, :func:`order_swaps` or :func:`value_exchanges` that turns
    ``a`` into ``b``; None when they are equal or differ by anything else."""
    if len(a) != len(b):
        return None
    changed = [k for k, (x, y) in enumerate(zip(a, b)) if x != y]
    if len(changed) == 1:
        k = changed[0]
        return Difference("change", (k,), tuple(f for f in a[k]._fields if getattr(a[k], f) != getattr(b[k], f)))
    if len(changed) != 2:
        return None
    i, j = changed
    fields = tuple(f for f in a[i]._fields if getattr(a[i], f) != getattr(a[j], f))
    if (b[i], b[j]) == (a[j], a[i]):
        return Difference("order", (i, j), fields)
    for f in fields:
        if (b[i], b[j]) == (a[i]._replace(**{f: getattr(a[j], f)}), a[j]._replace(**{f: getattr(a[i], f)})):
            return Difference("exchange", (i, j), (f,))
    return None


def sequence_edit(a: Sequence[NamedTuple], b: Sequence[NamedTuple],
                  changed: Callable[[Any, Any, tuple[str, ...]], NegativeType | None]) -> NegativeType | None:
    """The edit between two sequences told in order (events, tones): two items in exchanged places
    are an order swap, one changed item is typed by ``changed(old, new, fields)``; else None."""
    difference = item_difference(a, b)
    if difference is None or difference.kind == "exchange":
        return None
    if difference.kind == "order":
        return NegativeType.ORDER_SWAP
    k = difference.positions[0]
    return changed(a[k], b[k], difference.fields)


def differing_positions(true_words: Sequence[str], other_words: Sequence[str]) -> list[int]:
    """Indices where two equally long word lists differ."""
    if len(true_words) != len(other_words):
        raise ValueError(f"other_words has {len(other_words)} words, true_words {len(true_words)}: edits keep the length")
    return [i for i, (a, b) in enumerate(zip(true_words, other_words)) if a != b]


def select_negatives(
    truth: T,
    proposals: dict[NegativeType, Sequence[T]],
    words: Callable[[T], list[str]],
    canonical: Callable[[T], Hashable],
    acceptable: Callable[[T], bool],
    rng: np.random.Generator,
    per_type: int,
) -> list[dict]:
    """Up to ``per_type`` negatives of each type, drawn in random order from ``proposals``.

    Returns records ``{"caption": str, "type": str, "wrong_words": list[int]}`` in the order of
    ``proposals``' types. A type with no acceptable proposal contributes nothing.
    """
    if per_type < 1:
        raise ValueError(f"per_type must be >= 1, got {per_type}")
    true_words = words(truth)
    seen = {canonical(truth)}
    records = []
    for negative_type, candidates in proposals.items():
        kept = 0
        for index in rng.permutation(len(candidates)) if candidates else ():
            candidate = candidates[index]
            key = canonical(candidate)
            if key in seen or not acceptable(candidate):
                continue
            seen.add(key)
            candidate_words = words(candidate)
            wrong = differing_positions(true_words, candidate_words)
            records.append({"caption": " ".join(candidate_words), "type": negative_type.value, "wrong_words": wrong})
            kept += 1
            if kept == per_type:
                break
    return records
