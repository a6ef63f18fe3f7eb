"""Token alignment: slot by slot at equal lengths, a minimum-edit alignment otherwise."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bacl.token_alignment import align_tokens

captions = st.lists(st.integers(1, 5), min_size=1, max_size=9)  # a small vocabulary: many shared words


def padded(rows: list[list[int]], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, :len(row)] = torch.tensor(row)
    return ids, ids != 0


def edit_distance(a: list[int], b: list[int]) -> int:
    """Plain Levenshtein distance with unit costs (the reference)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


@given(pairs=st.lists(st.tuples(captions, captions), min_size=1, max_size=6), extra=st.integers(0, 3))
def test_alignment_is_a_minimum_edit_alignment(pairs, extra):
    """Batched over rows of different lengths (padding after each): partners increase, ``same`` and
    ``differs`` agree with the ids, padding is never aligned; equal lengths align slot by slot,
    and otherwise the alignment's cost (substitutions + unaligned tokens of either caption) is the
    edit distance."""
    length = max(len(t) for pair in pairs for t in pair) + extra
    reference, reference_mask = padded([a for a, _ in pairs], length)
    other, other_mask = padded([b for _, b in pairs], length)
    alignment = align_tokens(reference, reference_mask, other, other_mask)
    for row, (a, b) in enumerate(pairs):
        partner = alignment.partner[row].tolist()
        aligned = [p for p in partner[:len(b)] if p >= 0]
        assert aligned == sorted(set(aligned)) and all(p < len(a) for p in aligned)
        assert all(p == -1 for p in partner[len(b):])
        for slot, p in enumerate(partner[:len(b)]):
            assert bool(alignment.same[row, slot]) == (p >= 0 and a[p] == b[slot])
            assert bool(alignment.differs[row, slot]) == (p >= 0 and a[p] != b[slot])
        if len(a) == len(b):
            assert partner[:len(b)] == list(range(len(b)))
            continue
        substitutions = int(alignment.differs[row].sum())
        cost = substitutions + (len(a) - len(aligned)) + (len(b) - len(aligned))
        assert cost == edit_distance(a, b)


@given(caption=st.lists(st.integers(1, 20), min_size=1, max_size=12), data=st.data())
def test_same_length_edits_differ_exactly_where_edited(caption, data):
    """Omega's slots for a boundary negative (a same-length edit): exactly the edited positions,
    even in a caption that repeats its words (vocabulary of 3)."""
    caption = [word % 3 + 1 for word in caption]
    edited = data.draw(st.sets(st.integers(0, len(caption) - 1), max_size=len(caption)))
    negative = [word % 3 + 1 if i in edited else word for i, word in enumerate(caption)]  # another id
    reference, mask = padded([caption], len(caption) + 2)
    other, other_mask = padded([negative], len(caption) + 2)
    alignment = align_tokens(reference, mask, other, other_mask)
    assert alignment.partner[0, :len(caption)].tolist() == list(range(len(caption)))
    assert set(alignment.differs[0].nonzero().flatten().tolist()) == edited
    assert set(alignment.same[0].nonzero().flatten().tolist()) == set(range(len(caption))) - edited


def test_known_alignments():
    cases = [  # reference, other, partner of each other slot, differing other slots
        ([1, 2, 3, 4, 5], [1, 2, 9, 4, 5], [0, 1, 2, 3, 4], [2]),  # attribute swap
        ([1, 2, 3, 4, 5], [1, 4, 3, 2, 5], [0, 1, 2, 3, 4], [1, 3]),  # binding swap: two substitutions
        ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, -1, -1], []),  # a longer neighbour
        ([1, 2, 3, 4, 5, 6, 7], [1, 2, 6, 7], [0, 1, 5, 6], []),  # a shorter one
    ]
    for reference, other, partner, differs in cases:
        ids, mask = padded([reference], 7)
        other_ids, other_mask = padded([other], 7)
        alignment = align_tokens(ids, mask, other_ids, other_mask)
        assert alignment.partner[0, :len(other)].tolist() == partner
        assert alignment.differs[0].nonzero().flatten().tolist() == differs


@pytest.mark.parametrize("kwargs, name", [
    (dict(reference_ids=torch.ones(2, 3)), "reference_ids"),
    (dict(reference_mask=torch.ones(2, 3)), "reference_mask"),
    (dict(other_mask=torch.tensor([[True, False, True]] * 2)), "other_mask must mark a prefix"),
    (dict(other_ids=torch.ones(3, 3, dtype=torch.long), other_mask=torch.ones(3, 3, dtype=torch.bool)), "rows"),
])
def test_bad_input_names_the_argument(kwargs, name):
    arguments = dict(reference_ids=torch.ones(2, 3, dtype=torch.long), reference_mask=torch.ones(2, 3, dtype=torch.bool),
                     other_ids=torch.ones(2, 3, dtype=torch.long), other_mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=name):
        align_tokens(**{**arguments, **kwargs})
