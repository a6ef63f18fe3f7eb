"""sibling_shares against a plain loop over anchors and entries, and its refusals."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bacl.metrics.siblings import sibling_shares


@st.composite
def grouped_rows(draw):
    sizes = draw(st.lists(st.integers(1, 4), min_size=1, max_size=6))
    group = torch.cat([torch.full((size,), g) for g, size in enumerate(sizes)])
    n = len(group)
    siblings = []
    for row in range(n):
        members = [i for i in range(n) if group[i] == group[row] and i != row]
        siblings.append(draw(st.lists(st.sampled_from(members), unique=True)) if members else [])
    width = max(1, max(map(len, siblings)))
    sibling_index = torch.tensor([s + [-1] * (width - len(s)) for s in siblings])
    anchors = torch.tensor(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8)))
    k = draw(st.integers(1, 5))
    rows = torch.tensor(draw(st.lists(st.lists(st.integers(0, n - 1), min_size=k, max_size=k),
                                      min_size=len(anchors), max_size=len(anchors))))
    valid = torch.tensor(draw(st.lists(st.lists(st.booleans(), min_size=k, max_size=k),
                                       min_size=len(anchors), max_size=len(anchors))))
    return rows, group, sibling_index, anchors, valid, siblings


@settings(max_examples=60, deadline=None)
@given(grouped_rows())
def test_shares_equal_a_plain_count(case):
    rows, group, sibling_index, anchors, valid, siblings = case
    shares = sibling_shares(rows, group, sibling_index, anchors, valid)
    same = one = entries = 0
    anchors_hit = 0
    for b, anchor in enumerate(anchors.tolist()):
        hit = False
        for k, row in enumerate(rows[b].tolist()):
            if not valid[b, k]:
                continue
            entries += 1
            same += int(group[row] == group[anchor])
            one += int(row in siblings[anchor])
            hit |= row in siblings[anchor]
        anchors_hit += hit
    assert shares["entries"] == entries
    assert shares["same_group"] == pytest.approx(same / max(entries, 1))
    assert shares["one_edit"] == pytest.approx(one / max(entries, 1))
    assert shares["anchors_with_one_edit"] == pytest.approx(anchors_hit / len(anchors))
    assert shares["one_edit"] <= shares["same_group"]  # a one-edit sibling is a group member


def test_refuses_rows_outside_the_split_and_mismatched_shapes():
    group, siblings = torch.tensor([0, 0, 1]), torch.tensor([[1], [0], [-1]])
    with pytest.raises(ValueError, match="rows must index"):
        sibling_shares(torch.tensor([[3], [0], [1]]), group, siblings)
    with pytest.raises(ValueError, match="anchors"):
        sibling_shares(torch.tensor([[1]]), group, siblings)
    with pytest.raises(ValueError, match="sibling_index"):
        sibling_shares(torch.tensor([[1], [0], [1]]), group, siblings[:2])
