"""What users meet first: defaults, displays and error messages."""

import contextlib
import io

import numpy as np
import pytest

import symgrad as sg
from symgrad.cli import main


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


NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
POINT = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)


def test_trace_table_writes_a_gate_local_gradient_through_its_output():
    t = sg.graph(NEURON).fuse("sigmoid").backprop(**POINT)
    gate = next(line for line in t.table().splitlines() if line.startswith("q8"))
    assert " q8*(1 - q8) " in gate and "sigmoid(q4)" not in gate and "0.1966" in gate
    assert r"q_{8} \left(1 - q_{8}\right)" in t.table()._repr_latex_()
    unfused = sg.graph(NEURON).backprop(**POINT).table()
    assert "exp(q5) = q6" in unfused and "-1/q7**2 = -q8**2" in unfused


def test_explain_and_picture_use_the_gate_own_form():
    s = sg.graph(NEURON).fuse("sigmoid")
    assert "(q8*(1 - q8))·1·1·x0 = 0.1966·1·1·(-1) = -0.1966" in str(s.backprop(**POINT).explain("w0"))
    assert "q8*(1 - q8)" in sg.render(s)


def test_latex_table_of_a_tensor_trace_shows_vector_jacobian_products():
    t = sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)}).backprop(
        W=[[0.1, 0.5], [-0.3, 0.8]], x=[0.2, 0.4])
    latex = t.table()._repr_latex_()
    assert r"dq_{1} \mapsto \operatorname{outer}" in latex and "0.088" in latex
    g = sg.graph("softmax_cross_entropy(s, y)", shapes={"s": (2, 3), "y": (2,)}, dtypes={"y": int})
    assert "labels (no gradient)" in g.backprop(s=np.zeros((2, 3)), y=[0, 2]).table()._repr_latex_()


def test_displays_follow_the_operands_as_written():
    g = sg.graph("max(z, w)")
    assert "q1 = Max(z, w)" in str(g)
    table = g.backprop(z=2, w=-1, dout=2).table()
    assert "[z > w]" in table and "[w > z]" in table
    assert "q1 = y - x" in str(sg.graph("y - x")) and "q1 = z*x" in str(sg.graph("z * x"))
    assert "q1 = Min(z, a)" in str(sg.graph(lambda z, a: sg.min(z, a)))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["derive", "max(z, w)", "--at", "z=2,w=-1"]) == 0
    assert "q1 = Max(z, w) = 2" in out.getvalue() and "Max(w, z)" not in out.getvalue()


def _cli_error(args, capsys) -> str:
    assert main(args) != 0
    return capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["derive", "sum(W @ x)", "--at", "W=[[1,2],[3]],x=[1,2]"], "value of 'W' is a ragged list"),
    (["derive", "x*y", "--at", "x=1,x=2,y=2"], "'x' is given twice in --at"),
    (["derive", "x*y", "--at", "x=1", "--at", "x=2,y=2"], "'x' is given twice in --at"),
    (["derive", "sum(W @ x)", "--shape", "W=(2,"], "shape of 'W' is not like (2, 3)"),
    (["derive", "x*y", "--at", "x=1,y=2", "--digits", "-1"], "digits must be a whole number"),
])
def test_cli_names_the_bad_value(args, message, capsys):
    assert message in _cli_error(args, capsys)


def test_trace_table_refuses_bad_digits():
    with pytest.raises(sg.SymgradError, match="digits"):
        sg.graph("x*y").backprop(x=1, y=2).table(digits=-1)


def test_wrt_may_be_one_name():
    g = sg.graph("w0*x0")
    assert g.compile(wrt="w0").wrt == ("w0",)
    assert [r.name for r in sg.check_grad(g.compile(), w0=1.0, x0=2.0, wrt="w0").rows] == ["w0"]


def test_compiled_code_follows_numpy_where_the_trace_names_the_node():
    g = sg.graph("log(x)")
    with pytest.warns(RuntimeWarning):
        assert np.isnan(g.compile()(x=-1.0))
    with pytest.raises(sg.EvaluationError, match="q1 = log"):
        g.backprop(x=-1.0)
    with pytest.raises(sg.EvaluationError, match="q1 = 1/x"):
        sg.graph("1/x").compile()(x=0.0)


@pytest.mark.parametrize("text, shapes", [
    ("sum(x)", {"x": (3,)}),
    ("sum(X @ W + b)", {"X": (4, 2), "W": (2, 3), "b": (3,)}),
])
def test_compiled_gradients_are_floats_when_the_upstream_is_folded(text, shapes):
    f = sg.graph(text, shapes=shapes).compile()
    point = {n: np.ones(s, dtype=int) for n, s in shapes.items()}
    _, grads = f.value_and_grad(**point)
    assert all(g.dtype == np.float64 for g in grads.values()), {n: g.dtype for n, g in grads.items()}
    last = list(shapes)[-1]
    assert np.array_equal(grads[last], np.full(shapes[last], 4.0 if "X" in shapes else 1.0))
