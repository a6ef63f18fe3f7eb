"""Boundary and diagnostic metrics: boundary accuracy and its chance levels, multiple choice, AEL and
its chance level, attention diagnostics, aggregation over seeds; hand cases, properties, bad input."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bacl.metrics import (
    aggregate_seeds,
    ael_chance_level,
    attention_diagnostics,
    attention_error_localization,
    boundary_accuracy,
    boundary_chance,
    mean_std,
    multiple_choice_accuracy,
)


# ---------------------------------------------------------------- boundary accuracy


def test_boundary_accuracy_per_type_counts():
    positive = torch.tensor([1.0, 0.5, 0.2])
    negative = torch.tensor([[0.2, 1.5, 0.0], [0.1, 0.5, 0.4], [0.1, 0.0, 9.0]])
    types = [["colour", "relation", "shape"], ["colour", "colour", "binding"], ["shape", "binding", "pad"]]
    mask = torch.tensor([[True, True, False], [True, True, True], [True, True, False]])
    result = boundary_accuracy(positive, negative, types, mask)
    # sample 0 loses to its relation negative, sample 1 ties its second colour negative (a loss)
    assert result["accuracy"] == pytest.approx(1 / 3) and result["n_samples"] == 3
    assert result["n_pairs"] == 7 and result["pairwise_accuracy"] == pytest.approx(5 / 7)
    assert result["per_type"] == {
        "binding": {"accuracy": 1.0, "n_pairs": 2},
        "colour": {"accuracy": pytest.approx(2 / 3), "n_pairs": 3},
        "relation": {"accuracy": 0.0, "n_pairs": 1},
        "shape": {"accuracy": 1.0, "n_pairs": 1},
    }
    codes = np.array([[1, 2, -1], [1, 1, 0], [3, 0, -1]])
    by_code = boundary_accuracy(positive, negative, codes, mask, type_names=["binding", "colour", "relation", "shape", "unused"])
    assert by_code == result  # an unused type is left out


def test_boundary_accuracy_rejects_bad_input():
    positive, negative = torch.zeros(2), torch.ones(2, 3)
    with pytest.raises(ValueError, match="negative_mask"):
        boundary_accuracy(positive, negative, [["a"] * 3] * 2, torch.tensor([[True] * 3, [False] * 3]))
    with pytest.raises(ValueError, match="negative_types"):
        boundary_accuracy(positive, negative, [["a"] * 2] * 2)
    with pytest.raises(ValueError, match="type_names"):
        boundary_accuracy(positive, negative, np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match="negative_types"):
        boundary_accuracy(positive, negative, np.full((2, 3), 4), type_names=["a"])
    with pytest.raises(ValueError, match="positive_scores"):
        boundary_accuracy(torch.zeros(3), negative, [["a"] * 3] * 2)


def test_boundary_chance_levels():
    """0.5 per pair; beating all M negatives: mean 0.5^M (independent comparisons) and mean
    1/(M+1) (exchangeable scores); and the shuffled scorer of random scores lands at the latter."""
    mask = torch.tensor([[True, True, True], [True, False, False]])
    assert boundary_chance(mask) == {"pairwise": 0.5, "accuracy": pytest.approx((0.125 + 0.5) / 2),
                                     "accuracy_exchangeable": pytest.approx((1 / 4 + 1 / 2) / 2)}
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(20_000, 4, generator=gen)  # exchangeable: true caption and 3 negatives alike
    measured = boundary_accuracy(scores[:, 0], scores[:, 1:], torch.zeros(20_000, 3, dtype=torch.long),
                                 type_names=["any"])["accuracy"]
    assert measured == pytest.approx(boundary_chance(torch.ones(20_000, 3, dtype=torch.bool))["accuracy_exchangeable"],
                                     abs=0.01)
    with pytest.raises(ValueError, match="negative_mask"):
        boundary_chance(torch.tensor([[True, False], [False, False]]))


# ---------------------------------------------------------------- multiple choice


def test_multiple_choice_argmax_decisions():
    result = multiple_choice_accuracy(torch.tensor([[3.0, 1.0, 2.0], [1.0, 2.0, 0.0]]), [0, 0])
    # positives predicted (0,0), (1,1); true (0,0), (1,0): TP 1 of 2; negative class 3 of 4
    assert result == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": pytest.approx((0.5 + 0.75) / 2), "n": 2}


def test_multiple_choice_tie_is_wrong():
    assert multiple_choice_accuracy(torch.tensor([[1.0, 1.0, 0.0]]), [0])["accuracy"] == 0.0


def test_multiple_choice_threshold_decisions():
    result = multiple_choice_accuracy(torch.tensor([[0.9, 0.7, 0.1], [0.2, 0.6, 0.4]]), [0, 0], threshold=0.5)
    assert result["accuracy"] == 0.5
    assert result["precision"] == pytest.approx(1 / 3) and result["recall"] == 0.5
    assert result["f1"] == pytest.approx((0.4 + 4 / 7) / 2)


@given(st.integers(0, 2**31 - 1), st.integers(1, 6), st.integers(2, 5))
def test_multiple_choice_argmax_identities(seed, n, n_choices):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, 3, (n, n_choices), generator=gen).float()
    correct = torch.randint(0, n_choices, (n,), generator=gen)
    result = multiple_choice_accuracy(scores, correct)
    accuracy = result["accuracy"]
    assert result["precision"] == pytest.approx(accuracy) and result["recall"] == pytest.approx(accuracy)
    negative_f1 = (n * (n_choices - 2) + accuracy * n) / (n * (n_choices - 1))
    assert result["f1"] == pytest.approx((accuracy + negative_f1) / 2)


def test_multiple_choice_rejects_bad_input():
    with pytest.raises(ValueError, match="scores"):
        multiple_choice_accuracy(torch.zeros(2, 1), [0, 0])
    with pytest.raises(ValueError, match="correct_index"):
        multiple_choice_accuracy(torch.zeros(2, 3), [0, 3])
    with pytest.raises(ValueError, match="threshold"):
        multiple_choice_accuracy(torch.zeros(2, 3), [0, 1], threshold=float("inf"))


# ---------------------------------------------------------------- AEL


def test_attention_error_localization_hand_case():
    divergent = torch.tensor([3, 1, 4, 0])
    wrong = [{3, 5}, [2], {4}, []]
    valid = torch.tensor([True, True, True, False])
    assert attention_error_localization(divergent, wrong, valid) == {"ael": pytest.approx(2 / 3), "n": 3}
    with pytest.raises(ValueError, match="wrong_token_positions"):
        attention_error_localization(divergent, wrong)  # sample 3 is valid and has nothing to find
    with pytest.raises(ValueError, match="valid"):
        attention_error_localization(divergent, wrong, torch.zeros(4, dtype=torch.bool))


def test_ael_chance_level():
    wrong = [{3, 5}, [2, 2], {4}]
    assert ael_chance_level(wrong, torch.tensor([8, 4, 10])) == pytest.approx((2 / 8 + 1 / 4 + 1 / 10) / 3)
    assert ael_chance_level(wrong, [8, 4, 10], torch.tensor([True, False, True])) == pytest.approx((2 / 8 + 1 / 10) / 2)
    with pytest.raises(ValueError, match="n_valid_tokens"):
        ael_chance_level(wrong, [1, 4, 10])


def test_attention_diagnostics_separate_localised_change_from_sharpening():
    """A negative whose attention changes only at its wrong token has all its divergence there;
    sharper maps have lower entropy."""
    uniform = torch.full((2, 3, 4), 0.25)
    negative = uniform.clone()
    negative[:, 1] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    wrong = torch.tensor([[False, True, False]] * 2)
    eligible = torch.ones(2, 3, dtype=torch.bool)
    context = torch.ones(2, 4, dtype=torch.bool)
    out = attention_diagnostics(uniform, negative, wrong, eligible, context)
    assert out == {"entropy": pytest.approx(math.log(4)), "max_entropy": pytest.approx(math.log(4)),
                   "divergence_wrong": pytest.approx(1.5), "divergence_other": 0.0}
    sharp = attention_diagnostics(negative, negative, wrong, eligible, context)
    assert sharp["entropy"] < out["entropy"] and sharp["divergence_wrong"] == 0.0
    with pytest.raises(ValueError, match="wrong"):
        attention_diagnostics(uniform, negative, wrong[:, :2], eligible, context)


# ---------------------------------------------------------------- seeds


def test_mean_std():
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([1.0, 2.0, 3.0])
    assert mean == 2.0 and std == pytest.approx(1.0)
    for bad in ([], [float("nan")], "12"):
        with pytest.raises(ValueError, match="values"):
            mean_std(bad)


def test_aggregate_seeds_nested():
    runs = [
        {"text_to_image": {"R@1": 0.2}, "boundary": {"per_type": {"colour": {"n_pairs": 4}}}},
        {"text_to_image": {"R@1": 0.4}, "boundary": {"per_type": {"colour": {"n_pairs": 4}}}},
    ]
    result = aggregate_seeds(runs)
    assert result["text_to_image"]["R@1"] == {"mean": pytest.approx(0.3), "std": pytest.approx(math.sqrt(0.02)), "n": 2}
    assert result["boundary"]["per_type"]["colour"]["n_pairs"] == {"mean": 4.0, "std": 0.0, "n": 2}
    with pytest.raises(ValueError, match="text_to_image"):
        aggregate_seeds([{"text_to_image": {"R@1": 0.2}}, {"text_to_image": {"R@5": 0.2}}])
    with pytest.raises(ValueError, match="a.b"):
        aggregate_seeds([{"a": {"b": 0.1}}, {"a": {"b": float("nan")}}])
    with pytest.raises(ValueError, match="runs"):
        aggregate_seeds([])
