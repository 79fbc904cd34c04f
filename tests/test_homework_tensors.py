"""Tensor problems: a matrix product and a loss with integer labels, graded end to end."""

from __future__ import annotations

import textwrap

import numpy as np

import symgrad as sg
from symgrad.homework import Limits, load_spec, prepare

SPEC = """
[[problem]]
id = "affine"
style = "layer"
forward = "affine_forward"
backward = "affine_backward"
expression = "X @ W + b"
batch = "N"
dims = { N = 4, D = 3, M = 2 }
[problem.inputs]
X = { shape = ["N", "D"] }
W = { shape = ["D", "M"] }
b = { shape = ["M"] }

[[problem]]
id = "softmax_loss"
function = "softmax_loss_grad"
expression = "softmax_cross_entropy(S, y)"
batch = "N"
dims = { N = 5, C = 3 }
[problem.inputs]
S = { shape = ["N", "C"] }
y = { shape = ["N"], labels = 3 }
"""
RIGHT = """
import numpy as np

def affine_forward(X, W, b):
    return X @ W + b, (X, W)

def affine_backward(dout, cache):
    X, W = cache
    return dout @ W.T, X.T @ dout, dout.sum(axis=0)

def softmax_loss_grad(S, y):
    P = np.exp(S - S.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(len(y)), y] -= 1
    return {"S": P / len(y)}
"""


def test_labels_reach_the_reference_as_integers():
    prep = prepare(load_spec(SPEC).problem("softmax_loss"), seed=0)
    for point, ref in zip(prep.points, prep.refs):
        S, y = point["S"], point["y"]
        assert y.dtype == np.int64 and set(ref.grads) == {"S"}
        P = np.exp(S) / np.exp(S).sum(axis=1, keepdims=True)
        P[np.arange(5), y] -= 1
        np.testing.assert_allclose(ref.grads["S"], P / 5)


def test_affine_and_softmax_submissions(tmp_path):
    right, wrong = tmp_path / "right.py", tmp_path / "wrong.py"
    right.write_text(textwrap.dedent(RIGHT))
    wrong.write_text(textwrap.dedent(RIGHT).replace("X.T @ dout", "dout.T @ X")
                     .replace('{"S": P / len(y)}', '{"S": P}'))
    report = sg.homework.grade(SPEC, [right, wrong], limits=Limits(wall_seconds=5, cpu_seconds=2))
    assert report.submission("right").passed
    bad = report.submission("wrong")
    [affine] = bad.problem("affine").hints()
    assert affine.startswith("∂W: transposed matmul adjoint at q1 (matmul)")
    assert affine.endswith("counterexample at test point 1: expected shape (3, 2), received shape (2, 3)")
    [softmax] = bad.problem("softmax_loss").hints()
    assert softmax.startswith("∂S: missing 1/5 at q4 (mean): the mean's gradient taken as a sum's — "
                              "counterexample at test point ")


def test_the_regularized_loss_has_its_mistakes_as_alternatives():
    """Without the L2 term, and with the data term summed or averaged once too often."""
    prep = prepare(load_spec("examples/homework/assignment.toml").problem("softmax_loss"), seed=4)
    hints = [h for h, _ in prep.alternatives]
    assert hints[0] == "missing the gradient of the regularization term reg * sum(W * W)"
    assert hints[1].startswith("the data term is 5 times") and hints[2].startswith("the data term is 1/5 of")
    for i, point in enumerate(prep.points):
        X, W, y, reg = point["X"], point["W"], point["y"], float(point["reg"])
        P = np.exp(X @ W) / np.exp(X @ W).sum(axis=1, keepdims=True)
        P[np.arange(5), y] -= 1
        data = X.T @ P / 5
        np.testing.assert_allclose(prep.refs[i].grads["W"], data + 2 * reg * W)
        for (_, refs), expected in zip(prep.alternatives, [data, 5 * data + 2 * reg * W,
                                                           data / 5 + 2 * reg * W]):
            np.testing.assert_allclose(refs[i].grads["W"], expected)
