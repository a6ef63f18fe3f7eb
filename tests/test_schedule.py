"""The curriculum schedule alpha(eta)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bacl.schedule import SCHEDULE_PRESETS, CurriculumSchedule

schedules = st.builds(
    CurriculumSchedule,
    alpha_early=st.floats(0.01, 5.0),
    alpha_late=st.floats(-5.0, -0.01),
    steepness=st.floats(0.05, 50.0),
    midpoint=st.floats(0.05, 0.95),
)


@given(schedules)
def test_hits_endpoints(schedule):
    assert schedule(0.0) == pytest.approx(schedule.alpha_early, abs=1e-9)
    assert schedule(1.0) == pytest.approx(schedule.alpha_late, abs=1e-9)


@given(schedules)
def test_decreases_monotonically_from_easy_to_hard(schedule):
    values = schedule(np.linspace(0.0, 1.0, 201))
    # strictly decreasing in exact arithmetic; in floating point a steep logistic saturates
    assert np.all(np.diff(values) <= 1e-12)
    assert values[0] > 0 > values[-1]


@given(schedules)
def test_crossover_is_where_alpha_changes_sign(schedule):
    assert 0.0 < schedule.crossover < 1.0
    assert schedule(schedule.crossover) == pytest.approx(0.0, abs=1e-7)


def test_presets():
    default = CurriculumSchedule.preset("default")
    assert (default.alpha_early, default.alpha_late, default.steepness) == (0.3, -0.5, 1.5)
    assert set(SCHEDULE_PRESETS) == {"default", "aggressive", "shallow"}
    # a scalar in gives a plain float out
    assert isinstance(default(0.25), float)


def test_large_steepness_approaches_a_step():
    step = CurriculumSchedule(0.3, -0.5, 200.0)
    assert step(0.45) == pytest.approx(0.3, abs=1e-3)
    assert step(0.55) == pytest.approx(-0.5, abs=1e-3)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(alpha_early=-0.1, alpha_late=-0.5, steepness=1.5), "alpha_early"),
        (dict(alpha_early=0.3, alpha_late=0.2, steepness=1.5), "alpha_late"),
        (dict(alpha_early=0.3, alpha_late=-0.5, steepness=0.0), "steepness"),
        (dict(alpha_early=0.3, alpha_late=-0.5, steepness=1.5, midpoint=1.0), "midpoint"),
        (dict(alpha_early=math.nan, alpha_late=-0.5, steepness=1.5), "alpha_early"),
        (dict(alpha_early=0.3, alpha_late=-0.5, steepness="fast"), "steepness"),
    ],
)
def test_invalid_values_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CurriculumSchedule(**kwargs)


@pytest.mark.parametrize("eta", [-0.01, 1.01, math.nan])
def test_progress_outside_unit_interval(eta):
    with pytest.raises(ValueError, match="eta"):
        CurriculumSchedule.preset("default")(eta)


def test_unknown_preset():
    with pytest.raises(ValueError, match="'steep'"):
        CurriculumSchedule.preset("steep")
