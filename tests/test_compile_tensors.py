"""Compiled code for array-shaped graphs: every array op of the op table, the lectures' networks."""

from __future__ import annotations

import re

import numpy as np
import pytest

import symgrad as sg
from symgrad import tracing
from symgrad.ops import OPS

from .conftest import param_choices
from .test_dims import load

ARRAY_OPS = sorted(name for name, op in OPS.items() if not op.elementwise)
SIZES = {"n": 2, "k": 3, "m": 4, "c": 3, "b": 2, "1": 1}


def cases():
    """(op, operand shapes, parameters) for every array op, shape pattern and parameter choice."""
    for name in ARRAY_OPS:
        op = OPS[name]
        for pattern in op.shapes:
            shapes = [tuple(SIZES[ch] for ch in p) for p in pattern]
            for params in param_choices(op.params, shapes[0], negative_axis=False):
                yield name, shapes, params


def sample(op, shapes, rng):
    values = []
    for d, shape in zip(op.domain, shapes):
        if d.labels:
            values.append(rng.integers(0, shapes[0][-1], size=shape))
        else:
            v = rng.uniform(d.lo, d.hi, size=shape)
            values.append(v * rng.choice([-1.0, 1.0], size=shape) if d.signed else v)
    return values


def case_graph(name, shapes, params):
    """The op on operands a (and b), then a smooth elementwise op, so the output is not the op alone;
    and a point to evaluate it at."""
    op = OPS[name]
    names = ["a", "b"][: op.arity]
    dtypes = {n: int for n, d in zip(names, op.domain) if d.labels}

    def body(*args):
        return tracing.sin(tracing.apply(name, *args, **params))

    fn = {1: lambda a: body(a), 2: lambda a, b: body(a, b)}[op.arity]
    g = sg.graph(fn, shapes=dict(zip(names, shapes)), dtypes=dtypes)
    point = dict(zip(names, sample(op, shapes, np.random.default_rng(len(shapes) + len(params)))))
    return g, point


CASES = list(cases())


@pytest.mark.parametrize("name, shapes, params", CASES, ids=lambda c: str(c).replace(" ", ""))
def test_every_array_op_compiles_and_matches_the_trace(name, shapes, params):
    g, point = case_graph(name, shapes, params)
    t = g.backprop(**point)
    f = g.compile()
    value, grads = f.value_and_grad(**point)
    assert np.allclose(value, t.value, rtol=1e-12, atol=1e-12)
    assert set(grads) == set(t.grads)
    for n in grads:
        assert grads[n].shape == np.shape(point[n]) and np.allclose(grads[n], t.grads[n], rtol=1e-12)
    out, cache = f.forward(**point)
    dout = np.random.default_rng(0).normal(size=np.shape(out))
    expected = g.backprop(dout=dout, **point).grads
    for n, grad in f.backward(dout, cache).items():
        assert np.allclose(grad, expected[n], rtol=1e-12)
    assert sg.check_grad(f, **point).ok


@pytest.mark.parametrize("name, shapes, params", [c for c in CASES if not OPS[c[0]].label_operands],
                         ids=lambda c: str(c).replace(" ", ""))
def test_every_array_op_shows_in_tables_explanations_and_pictures(name, shapes, params):
    g, point = case_graph(name, shapes, params)
    t = g.backprop(**point)
    op_node = g.operands(g.output)[0]
    for text in (str(g), str(g.table()), str(t.table()), str(t.explain())):
        assert op_node in text
    assert f"{op_node[0]}_{{{op_node[1:]}}}" in t.explain()._repr_markdown_()  # q1 as LaTeX: q_{1}
    for picture in (sg.render(g), sg.render(t)):
        assert picture.startswith("<svg") and re.search(f">{op_node}[ <]", picture)


def test_every_array_op_runs_in_a_standalone_module(tmp_path):
    """One module per case of the op table, imported by a Python that has NumPy and not symgrad."""
    from .test_compile import run_without_symgrad

    expected = {}
    for i, (name, shapes, params) in enumerate(CASES):
        g, point = case_graph(name, shapes, params)
        sg.codegen(g, tmp_path / f"case{i}.py")
        t = g.backprop(**point)
        np.savez(tmp_path / f"case{i}.npz", **point)
        expected[i] = (t.value, t.grads, list(point))
    out = run_without_symgrad(tmp_path, (
        "import importlib, numpy as np\n"
        f"for i in range({len(CASES)}):\n"
        "    m = importlib.import_module(f'case{i}')\n"
        "    point = dict(np.load(f'case{i}.npz'))\n"
        "    value, grads = m.value_and_grad(**point)\n"
        "    out, cache = m.forward(**point)\n"
        "    back = m.backward(np.ones(np.shape(out)), cache)\n"
        "    assert all(np.array_equal(back[n], grads[n]) for n in grads)\n"
        "    np.savez(f'out{i}.npz', value=value, **{'d_' + n: g for n, g in grads.items()})\n"
        "print('done')\n"))
    assert out.strip() == "done"
    for i, (value, grads, names) in expected.items():
        got = np.load(tmp_path / f"out{i}.npz")
        np.testing.assert_allclose(got["value"], value, rtol=1e-12, err_msg=str(CASES[i]))
        assert {n for n in names if "d_" + n in got} == set(grads)
        for n, grad in grads.items():
            np.testing.assert_allclose(got["d_" + n], grad, rtol=1e-12, atol=1e-15, err_msg=str(CASES[i]))


def test_norm_of_w_x_lecture_numbers():
    f = sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)}).compile()
    value, grads = f.value_and_grad(W=[[0.1, 0.5], [-0.3, 0.8]], x=[0.2, 0.4])
    assert value == pytest.approx(0.116)
    assert np.allclose(grads["W"], [[0.088, 0.176], [0.104, 0.208]])
    assert np.allclose(grads["x"], [-0.112, 0.636])


def test_three_layer_sigmoid_net_with_cross_entropy():
    shapes = {"x": (3,), "W1": (3, 3), "W2": (2, 3), "W3": (1, 2), "y": (1,)}
    g = sg.graph("binary_cross_entropy(sigmoid(W3 @ sigmoid(W2 @ sigmoid(W1 @ x))), y)", shapes=shapes)
    rng = np.random.default_rng(5)
    point = {n: rng.normal(size=s) for n, s in shapes.items()}
    point["y"] = np.array([1.0])
    f = g.compile()
    value, grads = f.value_and_grad(**point)
    t = g.backprop(**point)
    assert np.isclose(value, t.value)
    assert all(grads[n].shape == shapes[n] and np.allclose(grads[n], t.grads[n]) for n in grads)
    assert sg.check_grad(f, **point).ok and sg.check_grad(f, **point, method="directional").ok


def test_labels_are_checked_and_get_no_gradient():
    shapes = {"s": (4, 3), "y": (4,)}
    f = sg.graph("softmax_cross_entropy(s, y)", shapes=shapes, dtypes={"y": int}).compile()
    s = np.random.default_rng(2).normal(size=(4, 3))
    value, grads = f.value_and_grad(s=s, y=[0, 2, 1, 2])
    assert set(grads) == {"s"} and grads["s"].shape == (4, 3)
    assert sg.check_grad(f, s=s, y=np.array([0, 2, 1, 2])).ok
    with pytest.raises(sg.InputError, match="must lie in 0 … 2"):
        f.value_and_grad(s=s, y=[0, 3, 1, 2])
    with pytest.raises(sg.ShapeError, match="'s' has shape"):
        f.value_and_grad(s=s[:2], y=[0, 2, 1, 2])


def test_array_graph_module_runs_with_numpy_alone(tmp_path):
    from .test_compile import run_without_symgrad

    g = sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)})
    sg.codegen(g, tmp_path / "norm.py")
    out = run_without_symgrad(tmp_path, (
        "import numpy as np, norm\n"
        "value, g = norm.value_and_grad(np.array([[0.1, 0.5], [-0.3, 0.8]]), np.array([0.2, 0.4]))\n"
        "print(round(float(value), 6), np.round(g['x'], 6).tolist())\n"))
    assert out.strip() == "0.116 [-0.112, 0.636]"


def test_check_local_on_array_ops_and_a_wrong_elementwise_gate():
    shapes = {"W": (2, 3), "x": (3,)}
    g = sg.graph("sum(tanh(W @ x))", shapes=shapes)
    point = {"W": np.arange(6.0).reshape(2, 3) / 10, "x": np.array([0.5, -1.0, 2.0])}
    r = sg.check_local(g, **point)
    assert r.ok and any("vjp" in row.derivative for row in r.rows)
    bad = g.with_local_derivative("q2", "q1", "1 + q2**2")  # tanh' is 1 - tanh²
    assert sg.check_local(bad, **point).wrong == ("q2",)
    with pytest.raises(sg.SymgradError, match="not elementwise"):
        g.with_local_derivative("q1", "x", "W")


@pytest.mark.parametrize("text", ["sum(x)", "mean(x) * y", "sum(x * y) + sum(x)"])
def test_gradients_are_fresh_writable_arrays(text):
    f = sg.graph(text, shapes={"x": (2, 3)}).compile(wrt=["x"])
    point = {"x": np.arange(6.0).reshape(2, 3), "y": 1.5}
    point = {n: point[n] for n in f.graph.inputs}
    _, grads = f.value_and_grad(**point)
    out, cache = f.forward(**point)
    for dx in (grads["x"], f.backward(2.0, cache)["x"]):
        assert dx.shape == (2, 3) and dx.dtype == np.float64 and dx.flags.writeable
        dx += 1.0  # a user accumulating gradients in place


@pytest.mark.parametrize("text", [
    "sum(sigmoid(a) - sigmoid(a)) + sum(b)", "sum(b) + 0*sum(a)", "mean(a - a) + sum(b)",
    "mean(a - (a + 1.5)) + sum(b)", "mean(0*a) + sum(b)"])
def test_a_gradient_that_is_a_number_has_its_inputs_shape_on_every_path(text):
    """Where the output cancels an array input, its gradient is an array of zeros of its shape
    (a named dimension too), on value_and_grad, forward/backward, the module and array-API code."""
    g = sg.graph(text, shapes={"a": ("N", 4), "b": (2,)})
    point = {"a": np.ones((3, 4)), "b": np.ones(2)}
    f = g.compile()
    found = [f.value_and_grad(**point)[1], f.backward(1.0, f.forward(**point)[1]),
             f.module.value_and_grad(*(point[n] for n in g.inputs))[1],
             g.compile(xp=np).value_and_grad(**point)[1]]
    for grads in found:
        assert np.shape(grads["a"]) == (3, 4) and not np.any(grads["a"])
        assert np.array_equal(grads["b"], [1, 1])
        assert isinstance(grads["a"], np.ndarray) and grads["a"].flags.writeable


def test_a_gradient_that_is_a_forward_value_is_kept_until_returned():
    g = sg.graph("sum(a.T * b)", shapes={"a": (2, 3), "b": (3, 2)})
    point = {"a": np.arange(6.0).reshape(2, 3), "b": np.linspace(-1, 1, 6).reshape(3, 2)}
    value, grads = g.compile().value_and_grad(**point)
    assert np.array_equal(grads["b"], point["a"].T) and np.array_equal(grads["a"], point["b"].T)
    assert sg.check_grad(g, **point).ok


@pytest.mark.parametrize("text", ["sum(sin(a)) * b", "mean(sin(a)) * b", "amax(sin(a)) * b",
                                  "amin(a*b) + b", "logsumexp(sin(a)) * b", "exp(sum(a + b))"])
def test_a_reduction_in_a_graph_of_scalars_takes_no_batch(text, tmp_path):
    """A sum, mean, maximum or log-sum-exp of a scalar is the scalar itself: at a point, the
    interpreter's numbers; given a batch, which it would reduce over, a ShapeError naming it,
    from the compiled function, the array-API code and the written module alike."""
    g = sg.graph(text)
    f = g.compile()
    point = {"a": 0.7, "b": -1.3}
    value, grads = f.value_and_grad(**point)
    trace = g.backprop(**point)
    assert np.isclose(value, trace.value) and all(np.isclose(grads[n], trace.grads[n]) for n in g.inputs)
    batch = {**point, "a": np.linspace(-1, 1, 4)}
    for call in (f, f.value_and_grad, f.forward, g.compile(xp=np).value_and_grad):
        with pytest.raises(sg.ShapeError, match="'a'"):
            call(**batch)
    module = load(sg.codegen(g), tmp_path, "reduced")
    assert np.isclose(module.value_and_grad(**point)[0], trace.value)
    with pytest.raises(ValueError, match="'a'"):
        module.value_and_grad(**batch)


@pytest.mark.parametrize("text", ["cos(amax(a) + 0)", "-amax(a)*b", "exp(-amin(a))*b", "sum(-a*amax(a))"])
def test_the_ties_of_a_max_are_numbers_that_a_minus_sign_can_negate(text):
    f = sg.graph(text, shapes={"a": (4,)}).compile()
    a, b = np.array([1.0, 3.0, 3.0, -2.0]), 0.7
    point = {"a": a, "b": b} if "b" in f.graph.inputs else {"a": a}
    value, grads = f.value_and_grad(**point)
    trace = f.graph.backprop(**point)
    assert np.allclose(value, trace.value) and np.allclose(grads["a"], trace.grads["a"])
    for i in (0, 3):  # finite differences away from the tie
        h = np.zeros(4)
        h[i] = 1e-6
        slope = (f(**{**point, "a": a + h}) - f(**{**point, "a": a - h})) / 2e-6
        assert grads["a"][i] == pytest.approx(slope, abs=1e-6)
    assert grads["a"][1] == pytest.approx(grads["a"][2])  # a tie: shared equally


@pytest.mark.parametrize("text", ["sum(x*y)", "sum(x + y)", "x + y", "x*y", "sum(exp(x)) + sum(y*exp(x))",
                                  "sum(x*x.T)", "x", "x*1", "sum(x) + sum(y)"])
@pytest.mark.parametrize("path", ["compiled", "module", "xp"])
def test_no_gradient_or_value_is_an_array_the_caller_holds_or_another_gradient(text, path):
    g = sg.graph(text, shapes={"x": (3, 3), "y": (3, 3)} if "y" in text else {"x": (3, 3)})
    f = g.compile(xp=np) if path == "xp" else g.compile()
    point = {n: np.arange(9.0).reshape(3, 3) + i for i, n in enumerate(g.inputs)}
    calls = f.module if path == "module" else f
    args = point.values() if path == "module" else ()
    kwargs = {} if path == "module" else point
    value, grads = calls.value_and_grad(*args, **kwargs)
    out, cache = calls.forward(*args, **kwargs)
    dout = np.ones_like(out) if np.ndim(out) else 1.0
    back = calls.backward(dout, cache)
    values = [value, out] if path == "module" else [value, out, calls(**kwargs)]  # the module has no value()
    assert not any(np.shares_memory(v, a) for v in values for a in point.values())
    held = [*point.values(), dout, *(c for c in cache if isinstance(c, np.ndarray))]
    kept = [np.copy(a) for a in held]
    for gradients in (grads, back):
        for n, gradient in gradients.items():
            others = [gradients[m] for m in gradients if m != n]
            assert not any(np.shares_memory(gradient, a) for a in held + others), (n, gradients)
            gradient += 100.0  # a caller's change to a gradient changes nothing else
    assert all(np.array_equal(a, b) for a, b in zip(held, kept))
    assert all(np.allclose(back[n], grads[n]) for n in grads)


@pytest.mark.parametrize("text, want", [("x", lambda x: x), ("x*1", lambda x: x), ("y + 0*x", lambda x, y: y),
                                        ("x + y", lambda x, y: x + y)])
@pytest.mark.parametrize("path", ["compiled", "module", "numba"])
def test_a_graph_of_scalars_returns_no_array_the_caller_holds(text, want, path):
    """A batch of points through a graph of scalars whose output is an input (x, x*1, and y + 0*x,
    which SymPy makes y) or not (x + y): the value is never an array the caller holds."""
    if path == "numba":
        pytest.importorskip("numba")
    g = sg.graph(text)
    f = g.compile(backend="numba") if path == "numba" else g.compile()
    point = {n: np.arange(4.0) + i for i, n in enumerate(g.inputs)}
    kept = {n: np.copy(a) for n, a in point.items()}
    calls = f.module if path == "module" else f
    args, kwargs = (point.values(), {}) if path == "module" else ((), point)
    value, grads = calls.value_and_grad(*args, **kwargs)
    out, cache = calls.forward(*args, **kwargs)
    values = [value, out] if path == "module" else [value, out, calls(**kwargs)]
    assert not any(np.shares_memory(v, a) for v in values for a in point.values())
    for v in values:
        np.testing.assert_array_equal(v, want(**kept))
        v += 100.0  # a caller's change to the value changes no input
    assert all(np.array_equal(point[n], kept[n]) for n in point)
    assert f.value_and_grad(**{n: float(a[1]) for n, a in kept.items()})[0].__class__ is float
