"""The shared input checks: check_finite's one-reduction fast path refuses exactly what isfinite refuses."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bacl.validation import check_finite, checked_token_mask

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
