"""Sibling groups: a base scene and variants of it, each one boundary edit away.

A split is a sequence of groups. A group is a base scene (drawn as before) followed by up to
``siblings_per_group - 1`` variants; a variant applies one proposed boundary edit of the base's
caption (the same proposals the negatives come from) to the base's *scene* and is rendered from
it, so its caption is true of its own signal, false of the base's, and differs from the base's
caption exactly in the edited words. Variants are drawn round-robin over the configured edit kinds
in a random order per group, so a group shows as many different kinds as the scene allows; the
captions of a group are pairwise non-equivalent, so they never share a ``caption_id``.

:func:`sibling_records` then lists, for each sample, the other members of its group whose caption
is a one-edit boundary negative of it (typed by the modality's ``edit_kind``), with wrong words.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from itertools import groupby
from typing import Any, NamedTuple, TypeVar

import numpy as np

from .grammar import NegativeType
from .negatives import differing_positions

__all__ = ["Member", "choose_variants", "group_backgrounds", "sample_groups", "sibling_records"]

T = TypeVar("T")


class Member(NamedTuple):
    """One sample of a split: its group, the edit that made it from the base (None: the base), its
    caption structure and its scene (the modality's metadata, rendered later)."""

    group: int
    edit: NegativeType | None
    structure: Any
    scene: Any


def choose_variants(
    base: T,
    proposals: dict[NegativeType, Sequence[T]],
    kinds: Sequence[NegativeType],
    count: int,
    realise: Callable[[T], Any],
    canonical: Callable[[T], Hashable],
    rng: np.random.Generator,
) -> list[tuple[NegativeType, T, Any]]:
    """Up to ``count`` (kind, structure, scene) variants of ``base``, one kind after another.

    ``realise(candidate)`` returns the base scene edited so that ``candidate`` is its caption, or
    None when that scene cannot be built (objects would overlap, a held-out rule would break...).
    Kinds are visited in a random order, repeatedly, each taking its next realisable candidate;
    a kind with no candidate left drops out.
    """
    queues = {}
    for index in rng.permutation(len(kinds)):
        candidates = proposals.get(kinds[index], ())
        if candidates:
            queues[kinds[index]] = [candidates[i] for i in rng.permutation(len(candidates))]
    seen, chosen = {canonical(base)}, []
    while len(chosen) < count and queues:
        for kind in list(queues):
            queue = queues[kind]
            while queue:
                candidate = queue.pop()
                if canonical(candidate) in seen:
                    continue
                scene = realise(candidate)
                if scene is not None:
                    seen.add(canonical(candidate))
                    chosen.append((kind, candidate, scene))
                    break
            if not queue:
                del queues[kind]
            if len(chosen) == count:
                break
    return chosen


def sample_groups(
    n: int,
    config,
    sample_base: Callable[[], tuple[T, Any]],
    propose: Callable[[T, np.random.Generator], dict[NegativeType, Sequence[T]]],
    realise: Callable[[T, Any, T], Any],
    canonical: Callable[[T], Hashable],
    rng: np.random.Generator,
) -> list[Member]:
    """``n`` members, group after group (the last one cut short to fit ``n``).

    ``sample_base()`` draws a base (structure, scene); ``propose(structure, rng)`` its one-edit
    candidates by kind; ``realise(base, base_scene, candidate)`` as in :func:`choose_variants`.
    ``config.siblings_per_group`` and ``config.sibling_edits`` set the group size and the kinds.
    """
    kinds = [NegativeType(kind) for kind in config.sibling_edits]
    members: list[Member] = []
    group = 0
    while len(members) < n:
        base, scene = sample_base()
        variants = []
        if config.siblings_per_group > 1 and len(members) + 1 < n:
            count = min(config.siblings_per_group - 1, n - len(members) - 1)
            variants = choose_variants(base, propose(base, rng), kinds, count, lambda candidate: realise(base, scene, candidate),
                                       canonical, rng)
        members.append(Member(group, None, base, scene))
        members.extend(Member(group, kind, structure, variant) for kind, structure, variant in variants)
        group += 1
    return members


def sibling_records(
    members: Sequence[Member],
    words: Callable[[T], list[str]],
    edit_kind: Callable[[T, T], NegativeType | None],
    holds: Callable[[T, Any], bool] | None = None,
) -> list[list[dict]]:
    """Per member, ``{"index", "type", "wrong_words"}`` of each other member of its group whose
    caption is one edit (``edit_kind`` not None) from its own and false of its scene (``holds``;
    None where any other caption is false, as on video and audio), in index order."""
    records: list[list[dict]] = [[] for _ in members]
    start = 0
    for _, run in groupby(members, key=lambda member: member.group):
        stop = start + len(list(run))
        for i in range(start, stop):
            for j in range(start, stop):
                a, b = members[i], members[j]
                kind = edit_kind(a.structure, b.structure) if i != j else None
                if kind is not None and not (holds is not None and holds(b.structure, a.scene)):
                    records[i].append({"index": j, "type": kind.value,
                                       "wrong_words": differing_positions(words(a.structure), words(b.structure))})
        start = stop
    return records


def group_backgrounds(groups: np.ndarray, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """(N,) grey levels in 0.5 +- ``jitter``, one draw per group: siblings share their background."""
    return (0.5 + rng.uniform(-jitter, jitter, int(np.max(groups, initial=-1)) + 1))[groups]
