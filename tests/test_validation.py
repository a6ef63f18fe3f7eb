"""The shared input checks: all_finite's one reduction (and so check_finite) refuses exactly what isfinite refuses."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bacl.validation import all_finite, check_finite, checked_token_mask

SPECIAL = st.sampled_from([0.0, 1.0, -2.5, 3e38, -3e38, 6e4, float("nan"), float("inf"), float("-inf")])


@given(values=st.lists(st.one_of(SPECIAL, st.floats(allow_nan=False, allow_infinity=False, width=32)),
                       min_size=1, max_size=40),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.float64]))
def test_check_finite_refuses_exactly_the_non_finite(values, dtype):
    tensor = torch.tensor(values, dtype=torch.float64).to(dtype)  # 3e38 becomes inf in float16
    if torch.isfinite(tensor).all():
        check_finite("x", tensor)  # also when the sum of finite values overflows (e.g. 3e38 + 3e38)
    else:
        with pytest.raises(ValueError, match="x contains NaN or inf"):
            check_finite("x", tensor)


@given(size=st.sampled_from([1, 7, 8, 33, 4096, 100_003]), shape_rows=st.sampled_from([1, 3]),
       bad=st.sampled_from([None, float("nan"), float("inf"), float("-inf")]), where=st.floats(0, 1),
       dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]),
       threads=st.sampled_from([1, 2]))
def test_all_finite_is_isfinite_all_at_every_position_size_and_thread_count(size, shape_rows, bad, where, dtype,
                                                                              threads):
    """Large sizes take aminmax's vectorised and multi-threaded paths; the bad value goes anywhere,
    the vector tails included."""
    tensor = torch.randn(shape_rows, size, generator=torch.Generator().manual_seed(size)).to(dtype)
    if bad is not None:
        tensor.view(-1)[min(int(where * tensor.numel()), tensor.numel() - 1)] = bad
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert all_finite(tensor) == bool(torch.isfinite(tensor).all())
        assert all_finite(tensor[:, ::2]) == bool(torch.isfinite(tensor[:, ::2]).all())  # a strided view
    finally:
        torch.set_num_threads(previous)
    assert all_finite(tensor[:0])


@pytest.mark.parametrize("values, dtype", [([3e38, 3e38], torch.float32), ([6e4, 6e4, -1.0], torch.float16),
                                           ([-3e38] * 5, torch.float32)])
def test_check_finite_accepts_finite_values_whose_sum_overflows(values, dtype):
    tensor = torch.tensor(values, dtype=dtype)
    assert not torch.isfinite(tensor.sum())
    check_finite("x", tensor)


def test_check_finite_names_a_wrong_type():
    with pytest.raises(ValueError, match="floating-point"):
        check_finite("x", torch.arange(3))
    with pytest.raises(ValueError, match="torch.Tensor"):
        check_finite("x", [1.0])


def test_checked_token_mask_defaults_to_all_tokens_and_names_a_bad_mask():
    tokens = torch.zeros(2, 3, 4)
    assert checked_token_mask(None, tokens, "m").all() and checked_token_mask(None, tokens, "m").shape == (2, 3)
    with pytest.raises(ValueError, match="m must be a bool tensor of shape"):
        checked_token_mask(torch.ones(2, 4, dtype=torch.bool), tokens, "m")
