"""The diagnoses, on plain NumPy arrays: each mistake gets its own hint line."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from symgrad.homework import diagnose

rng = np.random.default_rng(0)
W = rng.uniform(0.5, 2.0, size=(2, 3)) * rng.choice([-1, 1], size=(2, 3))
POINTS = [rng.normal(size=(2, 3)) + 3 for _ in range(3)]  # three test points, no zeros

finite = st.floats(-10, 10, allow_nan=False).filter(lambda v: abs(v) > 0.1)
shapes = st.sampled_from([(), (3,), (2, 3), (4, 2)])


@settings(max_examples=40, deadline=None)
@given(shapes.flatmap(lambda s: arrays(np.float64, s, elements=finite)))
def test_right_values_get_no_hint(a):
    assert diagnose("x", [a], [a.copy()]) is None
    assert diagnose("x", [a * (1 + 1e-9)], [a]) is None


@settings(max_examples=40, deadline=None)
@given(shapes.flatmap(lambda s: arrays(np.float64, s, elements=finite)))
def test_sign_flipped(a):
    assert diagnose("x", [-a], [a]) == "sign flipped"


@settings(max_examples=40, deadline=None)
@given(shapes.flatmap(lambda s: arrays(np.float64, s, elements=finite)),
       st.sampled_from([2.0, 0.5, 3.0, -2.0, 0.1]))
def test_constant_factor(a, c):
    want = [a, a**2 + 11]  # two points where the reference differs
    hint = diagnose("x", [c * w for w in want], want)
    expected = {2.0: "twice the right value", 0.5: "half the right value"}.get(c, f"{c:.4g} times")
    assert expected in hint


def test_an_odd_ratio_at_one_number_is_no_factor():
    assert "factor" not in diagnose("x", [np.float64(1.272)], [np.float64(1.0)])
    assert diagnose("x", [np.float64(2.0)], [np.float64(1.0)]).startswith("twice")


def test_sum_versus_mean_names_the_batch_size():
    want = [p[0] for p in POINTS]
    assert diagnose("b", [4 * w for w in want], want, batch=("N", 4)) == \
        "4 times the right value (N = 4, the batch size): a sum where the mean is taken?"
    assert diagnose("b", [w / 4 for w in want], want, batch=("N", 4)) == \
        "1/4 of the right value (N = 4, the batch size): a mean where the sum is taken?"
    # a factor of 2 stays a factor of 2 when the batch has another size
    assert "twice" in diagnose("b", [2 * w for w in want], want, batch=("N", 4))


def test_a_factor_must_hold_at_every_test_point():
    want = [p[0] for p in POINTS]
    got = [2 * want[0], 3 * want[1], 2 * want[2]]
    assert "factor" not in diagnose("b", got, want) and "twice" not in diagnose("b", got, want)


def test_wrong_shape_that_is_a_transpose():
    assert diagnose("W", [W.T], [W]) == "shape (3, 2) where W is (2, 3): a missing transpose?"
    assert diagnose("W", [W.T + 1], [W]) == \
        "shape (3, 2) where W is (2, 3): transposed, and the values differ too"


def test_transposed_square_matrix():
    A = np.arange(9.0).reshape(3, 3) + 1
    assert diagnose("A", [A.T], [A]) == "transposed: the transpose of this is ∂A"


def test_other_wrong_shapes():
    b = np.array([1.0, 2.0, 3.0])
    per_example = np.tile(b / 4, (4, 1))  # sums to b over the batch axis
    assert diagnose("b", [per_example], [b], batch=("N", 4)) == \
        "shape (4, 3) where b is (3,): a missing sum over the batch axis (N = 4)?"
    assert diagnose("b", [per_example + 1], [b]) == \
        "shape (4, 3) where b is (3,): one row per example; sum over axis 0?"
    assert diagnose("b", [np.ones(2)], [b]) == "shape (2,) where b is (3,)"
    assert diagnose("x", [np.ones(1)], [np.float64(1.0)]) == "shape (1,) where x is a single number"
    assert diagnose("b", [np.float64(1.0)], [b]) == "a single number where b has shape (3,)"


def test_nan_and_inf_say_where():
    got = W.copy()
    got[1, 2] = np.nan
    assert diagnose("W", [got], [W]) == "NaN at 1 of 6 elements ([1, 2]): a 0/0 or a placeholder left in?"
    got = W.copy()
    got[0, 0] = np.inf
    assert diagnose("W", [got], [W]).startswith("inf at 1 of 6 elements ([0, 0])")
    scalars = [np.float64(1.0), np.float64(np.nan), np.float64(2.0)]
    assert diagnose("x", scalars, [np.float64(1.0)] * 3, where=["x=1", "x=2", "x=3"]) == \
        "NaN at 1 of 3 test points (x=2): a 0/0 or a placeholder left in?"
    hint = diagnose("x", [np.float64(np.nan)] * 2, [np.float64(1.0)] * 2)
    assert hint.startswith("NaN at every test point")


def test_gradient_of_another_variable():
    wx = [np.float64(2.0), np.float64(-1.0)]
    ww = [np.float64(0.5), np.float64(3.0)]
    assert diagnose("w", wx, ww, others={"x": wx}) == "this is ∂x: the gradient of another variable?"
    Wt = [W.T.copy()]
    assert diagnose("W", [W.T], [W], others={"X": Wt}) == \
        "shape (3, 2) where W is (2, 3): a missing transpose?"
    X = rng.normal(size=(3, 2))
    assert diagnose("W", [X.T], [W], others={"X": [X]}) == \
        "this is ∂X transposed: the gradient of another variable?"


def test_known_alternatives_come_with_their_hint():
    want = [np.float64(1.5), np.float64(-0.5)]
    without = [np.float64(1.0), np.float64(-1.0)]
    hint = "missing the gradient of the regularization term lam*w**2/2"
    assert diagnose("w", without, want, alternatives=[(hint, without)]) == hint
    # an alternative equal to the right answer never explains a wrong one
    assert diagnose("w", [np.float64(9.0)] * 2, want, alternatives=[("never", want)]) != "never"


def test_right_at_some_elements_says_which():
    got = W.copy()
    got[1] = 0
    assert diagnose("W", [got], [W]) == "right at 3 of 6 elements; wrong at [1, 0], [1, 1], [1, 2]"
    many = np.zeros((4, 4)) + 1
    wrong = many.copy()
    wrong[:, 1:] = 5
    assert diagnose("A", [wrong], [many]) == \
        "wrong at 12 of 16 elements; right only at [0, 0], [1, 0], [2, 0], [3, 0]"
    wrong[:, 1:3] = 1
    assert diagnose("A", [wrong], [many]) == \
        "right at 12 of 16 elements; wrong at [0, 3], [1, 3], [2, 3], [3, 3]"
    wrong[:, :] = 1
    wrong[0, :] = 5
    wrong[1, 1] = 5
    assert diagnose("A", [wrong], [many]) == \
        "right at 11 of 16 elements; wrong at [0, 0], [0, 1], [0, 2], [0, 3] and 1 more"


def test_right_at_some_test_points():
    want = [np.float64(v) for v in (1.0, -2.0, 3.0)]
    got = [np.float64(v) for v in (1.0, 2.0, 3.0)]
    assert diagnose("x", got, want, where=["x=1", "x=-2", "x=3"]) == \
        "right at 2 of 3 test points; wrong at x=-2"


def test_all_zeros_and_plain_wrong():
    assert diagnose("W", [np.zeros_like(W)], [W]) == "all zeros: not computed yet?"
    assert diagnose("x", [np.float64(0.25)], [np.float64(0.1966)], where=["w0=2"]) == \
        "expected 0.1966, got 0.25 at w0=2"
    got = W + np.arange(1, 7).reshape(2, 3)
    assert diagnose("W", [got], [W]).startswith("wrong: largest difference at [1, 2]: expected")
    got[0, 0] = W[0, 0]
    assert diagnose("W", [got], [W]) == "wrong at 5 of 6 elements; right only at [0, 0]"


@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e6])
def test_tolerances_are_relative(scale):
    a = W * scale
    assert diagnose("W", [a * (1 + 1e-8)], [a]) is None
    assert diagnose("W", [-a], [a]) == "sign flipped"
