"""Long bodies: an entry point whose body is longer than APART_LINES calls functions of its own for
floats and for arrays, each compiled the first time it is called.  Every path must answer as the
inline entry points do."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import symgrad as sg
import symgrad.compiled as compiled_module

CASES = [
    ("sigmoid(w*sigmoid(x*y) + b) + log(1 + x*x)", {"w": 0.5, "x": 1.5, "y": -2.0, "b": 0.1}),
    ("tanh(x)*exp(-y) + relu(x - y)*max(x, y)", {"x": 0.3, "y": -0.7}),
    (" + ".join(f"sigmoid(x{i})*x0" for i in range(140)), {f"x{i}": 0.01 * i - 0.5 for i in range(140)}),
]


def both(text: str, monkeypatch) -> tuple[sg.Compiled, sg.Compiled]:
    inline = sg.graph(text).compile()
    monkeypatch.setattr(compiled_module, "APART_LINES", 0)
    apart = sg.graph(text).compile()
    monkeypatch.undo()
    return inline, apart


@pytest.mark.parametrize("text, point", CASES)
def test_long_bodies_answer_as_inline_ones_for_floats_and_arrays(text, point, monkeypatch):
    inline, apart = both(text, monkeypatch)
    assert "_floats_value_and_grad" in apart._namespace and "_floats_value_and_grad" not in inline._namespace
    for values in (point, {n: np.array([v, v / 2]) for n, v in point.items()}):
        value, grads = apart.value_and_grad(**values)
        want, want_grads = inline.value_and_grad(**values)
        assert np.array_equal(value, want) and grads.keys() == want_grads.keys()
        assert all(np.array_equal(grads[n], want_grads[n]) for n in grads)
        out, cache = apart.forward(**values)
        assert np.array_equal(out, want) and np.array_equal(apart(**values), want)
        back = apart.backward(1.0, cache)
        assert all(np.allclose(back[n], want_grads[n], rtol=1e-14, atol=0) for n in back)
    assert type(apart.value_and_grad(**point)[0]) is float  # floats took the float lines


def test_a_value_math_refuses_falls_back_to_numpy_in_a_long_body_too(monkeypatch):
    inline, apart = both("log(x)*y + sqrt(y)", monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got, want = apart.value_and_grad(x=-1.0, y=2.0), inline.value_and_grad(x=-1.0, y=2.0)
    assert np.isnan(got[0]) and np.isnan(want[0])  # NumPy's answer: log(-1) is nan
    assert all(np.array_equal(got[1][n], want[1][n], equal_nan=True) for n in ("x", "y"))


def test_an_evaluation_error_in_a_long_body_names_its_generated_line(monkeypatch):
    _, apart = both("x/(y - 1)", monkeypatch)
    with pytest.raises(sg.EvaluationError, match=r"cannot evaluate q2 = x/q1: float division by zero"):
        apart.value_and_grad(x=1.0, y=1.0)
