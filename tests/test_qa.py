"""What users meet first: defaults, displays and error messages, checked by hand and kept."""

import numpy as np
import pytest

import symgrad as sg


def _softmax_loss(X, W, y):
    """A hand-written softmax loss with integer labels y: (value, {X, W gradients})."""
    s = X @ W
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n = len(y)
    d = p.copy()
    d[np.arange(n), y] -= 1
    d /= n
    return -np.log(p[np.arange(n), y]).mean(), {"X": d @ W.T, "W": X.T @ d}


def test_check_grad_skips_integer_labels_of_a_plain_callable():
    rng = np.random.default_rng(0)
    point = dict(X=rng.standard_normal((4, 3)), W=rng.standard_normal((3, 5)), y=np.array([0, 2, 4, 1]))
    r = sg.check_grad(_softmax_loss, **point)
    assert r.ok and [row.name for row in r.rows] == ["X", "W"]
    r = sg.check_grad(_softmax_loss, **{**point, "y": [0, 2, 4, 1]})  # a list of ints too
    assert r.ok and "y" not in r.inputs
    # a scalar written as an int is still a point to differentiate at
    assert sg.check_grad(lambda x: (x * x, {"x": 2 * x}), x=3).inputs["x"].status == "ok"
    # asking for the labels explicitly still reports their missing gradient
    assert sg.check_grad(_softmax_loss, **point, wrt=["X", "y"]).inputs["y"].status == "FAIL"
