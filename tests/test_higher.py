"""Gradient graphs and higher derivatives, against SymPy's diff and finite differences."""

import re

import numpy as np
import pytest
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import symgrad as sg

from .conftest import elementary, rel_error
from .test_property import away_from_kinks, expressions, points

NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_AT = {"w0": 2.0, "x0": -1.0, "w1": -3.0, "x1": -2.0, "w2": -3.0}


def sympy_derivative(expr: sp.Expr, names: tuple[str, ...], point: dict[str, float]) -> float:
    """SymPy's diff of ``expr`` (symgrad's functions written out) along ``names``, at ``point``."""
    d = elementary(expr)
    for n in names:
        d = sp.diff(d, sp.Symbol(n, real=True))
    subs = {sp.Symbol(n, real=True): sp.Float(v, 30) for n, v in point.items()}
    return float(d.evalf(30, subs=subs))


def value(g: sg.Graph, point: dict[str, float]) -> float:
    return float(g.backprop(**{n: point[n] for n in g.inputs}).value)


def close(a: float, b: float, rel: float = 1e-10, tiny: float = 1e-12) -> bool:
    return rel_error(a, b) < rel or abs(a - b) < tiny


def central(f, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Central differences of the array function ``f`` along each entry of ``x``: shape x + f."""
    x = np.asarray(x, dtype=float)
    cols = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = h
        cols.append((np.asarray(f(x + e.reshape(x.shape))) - np.asarray(f(x - e.reshape(x.shape)))) / (2 * h))
    return np.array(cols).reshape(x.shape + np.shape(cols[0]))


# -- the gradient as a graph ------------------------------------------------


def test_gradient_graph_shares_the_forward_nodes():
    g = sg.graph(NEURON)
    dw0 = sg.grad(g, "w0")
    assert dw0.output == "dw0" and dw0.inputs == g.inputs
    forward = [n for n in dw0.nodes if dw0.nx.nodes[n]["order"] == 0]
    backward = [n for n in dw0.nodes if dw0.nx.nodes[n]["order"] == 1]
    assert backward and set(forward) <= set(g.nodes)
    for n in forward:  # the same node: name, expression, label, edges and their derivatives
        for key in ("expr", "symbol", "label", "op", "operands"):
            assert dw0.nx.nodes[n][key] == g.nx.nodes[n][key]
        for u in g.nx.predecessors(n):
            assert dw0.nx.edges[u, n] == g.nx.edges[u, n]
    assert all(not n.startswith("q") or n not in g.nodes for n in backward)
    assert dw0.backprop(**NEURON_AT).value == pytest.approx(-0.1966, abs=1e-4)


def test_several_names_give_one_graph_each():
    g = sg.graph("(x + y) * z")
    graphs = sg.grad(g, ["x", "z"])
    # ∂f/∂x is the input z, ∂f/∂z the forward node q1 = x + y: shared, not copied
    assert isinstance(graphs, tuple) and [d.output for d in graphs] == ["z", "q1"]
    values = {"x": -2.0, "y": 5.0, "z": -4.0}
    assert [value(d, values) for d in graphs] == [-4.0, 3.0]
    assert len(sg.grad(g)) == 3


def test_gradient_graph_compiles_checks_fuses_renders_and_explains():
    g = sg.graph(NEURON)
    dw0 = sg.grad(g, "w0")
    f = dw0.compile()
    assert f(**NEURON_AT) == pytest.approx(-0.19661193324148188, rel=1e-12)
    value_, grads = f.value_and_grad(**NEURON_AT)
    for n in g.inputs:
        assert close(grads[n], sympy_derivative(g.expression(), ("w0", n), NEURON_AT))
    assert sg.check_grad(f, **NEURON_AT).ok
    fused = dw0.fuse("sigmoid")
    assert fused.gates and fused.compile()(**NEURON_AT) == pytest.approx(f(**NEURON_AT), rel=1e-12)
    svg = sg.render(dw0)
    assert svg.count('class="node backward"') == sum(
        1 for n in dw0.operations if dw0.nx.nodes[n]["order"] == 1)
    text = str(sg.explain(dw0, "x0"))
    assert "∂dw0/∂x0" in text
    assert "dq4" in str(dw0.backprop(**NEURON_AT).table())


def test_gradient_of_a_fused_graph_reads_the_gate():
    g = sg.graph(NEURON).fuse("sigmoid")
    dw0 = sg.grad(g, "w0")
    assert g.gates[0] in dw0.nodes
    assert value(dw0, NEURON_AT) == pytest.approx(-0.19661193324148188, rel=1e-12)
    assert value(sg.grad(dw0, "w0"), NEURON_AT) == pytest.approx(
        sympy_derivative(g.expression(), ("w0", "w0"), NEURON_AT), rel=1e-10)


@pytest.mark.parametrize("names", [("w0", "w0", "w0"), ("w0", "x0", "w1"), ("x1", "w2", "x1"),
                                   ("w2", "w2", "w2")])
def test_third_derivatives_of_the_sigmoid_neuron(names):
    g = sg.graph(NEURON)
    d = g
    for n in names:
        d = sg.grad(d, n)
    assert [d.nx.nodes[d.output]["order"]] == [3] or d.nx.nodes[d.output]["kind"] != "op"
    assert close(value(d, NEURON_AT), sympy_derivative(g.expression(), names, NEURON_AT))
    assert close(float(d.compile()(**NEURON_AT)), sympy_derivative(g.expression(), names, NEURON_AT))


@pytest.mark.parametrize("a", [1.0, 1.25, -3.0])
def test_derivatives_of_tanh_through_its_exact_derivative_hold_where_tanh_is_0(a):
    # tanh' is computed as sech² from e^(−2|a|); its own derivative must be −2·tanh·sech², not |a|'s
    g = sg.graph("exp(tanh(1 - a))")
    d = g
    for k in (1, 2, 3):
        d = sg.grad(d, "a")
        exact = sympy_derivative(g.expression(), ("a",) * k, {"a": a})
        assert close(value(d, {"a": a}), exact), k
        assert close(float(d.compile()(a=a)), exact), k


def test_zero_and_constant_derivatives_are_graphs_too():
    g = sg.graph("x * y")
    dxy = sg.grad(sg.grad(g, "x"), "y")
    assert value(dxy, {"x": 3.0, "y": 4.0}) == 1.0
    dxx = sg.grad(sg.grad(g, "x"), "x")
    assert value(dxx, {"x": 3.0, "y": 4.0}) == 0.0
    assert dxx.compile()(x=3.0, y=4.0) == 0.0
    w = sg.grad(sg.graph("sum(x * 3)", shapes={"x": (2,)}), "x")
    np.testing.assert_array_equal(w.compile()(x=np.ones(2)), [3.0, 3.0])
    z = sg.grad(sg.grad(sg.graph("sum(x * 3)", shapes={"x": (2,)}), "x", seed="u"), "x", seed="u2")
    np.testing.assert_array_equal(z.compile()(x=np.ones(2), u=1.0, u2=np.ones(2)), [0.0, 0.0])


@pytest.mark.parametrize("text, point, expected", [
    ("relu(x) * x", {"x": 1.5}, 2.0), ("relu(x) * x", {"x": -1.5}, 0.0),
    ("abs(x) * x", {"x": -2.0}, -2.0), ("max(x, y) * x", {"x": 2.0, "y": 1.0}, 2.0),
])
def test_steps_have_derivative_zero_away_from_kinks(text, point, expected):
    g = sg.graph(text)
    assert value(sg.grad(sg.grad(g, "x"), "x"), point) == expected
    assert value(sg.grad(sg.grad(sg.grad(g, "x"), "x"), "x"), point) == 0.0


def test_bad_requests_are_named_errors():
    with pytest.raises(sg.ShapeError, match="q1 has shape"):
        sg.grad(sg.graph("exp(x)", shapes={"x": (2,)}), "x")
    with pytest.raises(sg.SymgradError, match="'z'"):
        sg.grad(sg.graph("x * y"), "z")
    with pytest.raises(sg.InputError, match="'y'"):
        sg.hvp(sg.graph("x * y"), "x", v="y")
    with pytest.raises(sg.InputError, match="'dx'"):  # the name of x's gradient node
        sg.hvp(sg.graph("x**3 * y"), "x", v="dx")
    with pytest.raises(sg.InputError, match="'dx'"):
        sg.grad(sg.graph("exp(x)", shapes={"x": (2,)}), "x", seed="dx")
    with pytest.raises(sg.InputError, match="'t_q1'"):
        sg.jvp(sg.graph("exp(x) * y"), {"x": "t_q1"})
    with pytest.raises(sg.SymgradError, match="one each"):
        sg.hvp(sg.graph("x * y"), ["x", "y"], v="v")
    with pytest.raises(sg.SymgradError, match="Graph"):
        sg.grad("x * y", "x")  # type: ignore[arg-type]
    with pytest.raises(sg.InputError, match="'y'"):
        sg.hessian(sg.graph("x * y"), "x")(x=1.0)


# -- property tests over the expression corpus -----------------------------


def graph_at(text, point, bound):
    """The graph of ``text`` and the point restricted to its inputs; assumed away from kinks,
    with every node's value below ``bound``."""
    g = sg.graph(text)
    assume(g.inputs)
    point = {n: point[n] for n in g.inputs}
    t = g.backprop(**point)
    assume(away_from_kinks(g, t))
    assume(all(abs(v) < bound for v in t.values.values()))
    return g, point


@settings(max_examples=20, deadline=None)
@given(expressions(), points, st.data())
def test_second_and_third_derivatives_equal_sympy_diff(text, point, data):
    g, point = graph_at(text, point, bound=1e6)
    names = tuple(data.draw(st.sampled_from(g.inputs)) for _ in range(3))
    d = g
    for k, n in enumerate(names, start=1):
        d = sg.grad(d, n)
        got = value(d, point)
        exact = sympy_derivative(g.expression(), names[:k], point)
        assume(abs(exact) < 1e8)
        assert close(got, exact), (text, names[:k], got, exact)
        assert close(float(d.compile()(**point)), exact, tiny=1e-11), (text, names[:k])


@settings(max_examples=25, deadline=None)
@given(expressions(), points, st.lists(st.floats(-2, 2), min_size=3, max_size=3))
def test_hessians_are_symmetric_equal_differences_of_the_gradient_and_hvps_agree(text, point, v):
    g, point = graph_at(text, point, bound=1e4)
    h = sg.hessian(g, g.inputs)(**point)
    assert h.shape == (len(g.inputs),) * 2
    np.testing.assert_allclose(h, h.T, rtol=1e-9, atol=1e-12)
    x0 = np.array([point[n] for n in g.inputs])

    def gradient(x):
        grads = g.backprop(**dict(zip(g.inputs, x))).grads
        return np.array([grads[n] for n in g.inputs])

    numeric = central(gradient, x0)
    assume(np.all(np.isfinite(numeric)) and np.abs(numeric).max() < 1e4)
    np.testing.assert_allclose(h, numeric, rtol=1e-4, atol=1e-5)
    vs = dict(zip([f"v_{n}" for n in g.inputs], v))
    for mode in ("reverse", "forward"):
        hv = [value(d, {**point, **vs}) for d in sg.hvp(g, g.inputs, mode=mode)]
        np.testing.assert_allclose(hv, h @ np.array(v[: len(g.inputs)]), rtol=1e-9, atol=1e-11)


@settings(max_examples=20, deadline=None)
@given(expressions(), points, st.data())
def test_matrix_hessians_of_one_input_equal_sympy_diff(text, point, data):
    g, point = graph_at(text, point, bound=1e6)
    name = data.draw(st.sampled_from(g.inputs))
    try:
        h = sg.hessian(g, name, method="matrix")
    except sg.UnsupportedError:  # a gate forward mode does not pass through
        assume(False)
    exact = sympy_derivative(g.expression(), (name, name), point)
    assume(abs(exact) < 1e8)
    got = float(np.asarray(h(**point)).reshape(()))
    assert close(got, exact, tiny=1e-11), (text, name, got, exact)


# -- arrays -----------------------------------------------------------------


def logistic(N=8, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X, y, w = rng.normal(size=(N, d)), rng.choice([-1.0, 1.0], size=N), rng.normal(size=d)
    g = sg.graph("mean(logaddexp(0, -y*(X@w)))", shapes={"X": (N, d), "w": (d,), "y": (N,)})
    return g, {"X": X, "y": y, "w": w}


def test_logistic_regression_hessian_equals_differences_of_the_gradient_and_the_closed_form():
    g, at = logistic()
    h = sg.hessian(g, "w")(**at)
    f = g.compile()
    numeric = central(lambda w: f.value_and_grad(**{**at, "w": w})[1]["w"], at["w"])
    np.testing.assert_allclose(h, numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(h, h.T, rtol=1e-12)
    X, y, w = at["X"], at["y"], at["w"]
    s = 1 / (1 + np.exp(-y * (X @ w)))
    np.testing.assert_allclose(h, X.T @ np.diag(s * (1 - s)) @ X / len(y), rtol=1e-10)
    v = np.arange(4.0) - 1.5
    for mode in ("reverse", "forward"):
        hv = sg.hvp(g, "w", v="u", mode=mode)
        assert hv.inputs[-1] == "u"
        np.testing.assert_allclose(hv.compile()(**at, u=v), h @ v, rtol=1e-10)
        np.testing.assert_allclose(hv.backprop(**at, u=v).value, h @ v, rtol=1e-10)


def test_array_hessians_with_matrices_and_several_names():
    W, x = np.array([[0.1, 0.5], [-0.3, 0.8]]), np.array([0.2, 0.4])
    g = sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)})
    dW = sg.grad(g, "W")
    np.testing.assert_allclose(dW.compile()(W=W, x=x), [[0.088, 0.176], [0.104, 0.208]])
    h = sg.hessian(g, ["W", "x"])(W=W, x=x)
    assert h.shape == (6, 6)
    f = g.compile()

    def gradient(z):
        _, grads = f.value_and_grad(W=z[:4].reshape(2, 2), x=z[4:])
        return np.concatenate([grads["W"].ravel(), grads["x"]])

    np.testing.assert_allclose(h, central(gradient, np.concatenate([W.ravel(), x])), atol=1e-8)
    assert sg.hessian(g, "W")(W=W, x=x).shape == (2, 2, 2, 2)


@pytest.mark.parametrize("text, shapes", [
    ("W @ x", {"W": (2, 3), "x": (3,)}),
    ("tanh(W @ x)", {"W": (2, 3), "x": (3,)}),
    ("exp(x) / sum(exp(x))", {"x": (3,)}),
    ("sigmoid(x @ W + b)", {"x": (3,), "W": (3, 2), "b": (2,)}),
])
def test_jacobians_equal_finite_differences(text, shapes):
    g = sg.graph(text, shapes=shapes)
    rng = np.random.default_rng(1)
    at = {n: rng.normal(size=g.shape(n)) for n in g.inputs}
    f = g.compile()
    for n in g.inputs:
        j = sg.jacobian(g, n)(**at)
        numeric = central(lambda z, n=n: f(**{**at, n: z}), at[n])  # shape: input + output
        numeric = np.moveaxis(numeric, tuple(range(at[n].ndim)), tuple(range(-at[n].ndim, 0)))
        np.testing.assert_allclose(j, numeric, rtol=1e-6, atol=1e-9)


def test_gradient_graph_of_pick_and_labels():
    g = sg.graph("mean(softmax_cross_entropy(s, y))", shapes={"s": (3, 4), "y": (3,)},
                 dtypes={"y": int})
    rng = np.random.default_rng(2)
    at = {"s": rng.normal(size=(3, 4)), "y": np.array([0, 3, 1])}
    ds = sg.grad(g, "s")
    assert ds.labels == ("y",)
    np.testing.assert_allclose(ds.compile()(**at), g.compile().value_and_grad(**at)[1]["s"], rtol=1e-12)
    h = sg.hessian(g, "s")(**at)
    f = g.compile()
    numeric = central(lambda z: f.value_and_grad(**{**at, "s": z})[1]["s"], at["s"])
    np.testing.assert_allclose(h, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("text, shapes", [
    ("sum(tanh(W @ x))", {"W": (2, 3), "x": (3,)}),
    ("logsumexp(W @ x) + sum(x.T * x)", {"W": (2, 3), "x": (3,)}),
    ("mean(softplus(x @ W + b) * (x @ W), axis=0)", {"x": (4, 3), "W": (3, 2), "b": (2,)}),
    ("max(x, y) * exp(x)", None),
])
def test_tangents_equal_differences_along_the_direction(text, shapes):
    g = sg.graph(text, shapes=shapes)
    rng = np.random.default_rng(3)
    at = {n: rng.normal(size=g.shape(n)) for n in g.inputs}
    direction = {n: rng.normal(size=g.shape(n)) for n in g.inputs}
    t = sg.jvp(g, {n: f"u_{n}" for n in g.inputs})
    assert all(t.nx.nodes[n]["order"] == 1 for n in t.nodes if n.startswith("t_"))
    got = t.compile()(**at, **{f"u_{n}": u for n, u in direction.items()})
    f = g.compile()
    h = 1e-6
    numeric = (f(**{n: at[n] + h * direction[n] for n in at})
               - f(**{n: at[n] - h * direction[n] for n in at})) / (2 * h)
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)


def test_forward_mode_refuses_array_gates_and_bad_modes():
    g = sg.graph("mean(softmax_cross_entropy(s, y))", shapes={"s": (3, 4), "y": (3,)},
                 dtypes={"y": int})
    with pytest.raises(sg.SymgradError, match="mode"):
        sg.hvp(g, "s", mode="sideways")
    with pytest.raises(sg.SymgradError, match="'y'"):
        sg.jvp(g, {"y": "u"})


# -- whole Hessians as matrix products -----------------------------------------


@pytest.mark.parametrize("text, shapes, wrt", [
    ("mean(logaddexp(0, -y*(X@w)))", {"X": (8, 3), "y": (8,), "w": (3,)}, "w"),
    ("mean((tanh(X @ W1) @ w2 - y)**2)", {"X": (5, 3), "W1": (3, 4), "w2": (4,), "y": (5,)}, "w2"),
    ("mean((tanh(X @ W1) @ w2 - y)**2)", {"X": (5, 3), "W1": (3, 4), "w2": (4,), "y": (5,)}, "y"),
    ("logsumexp(W @ x) + sum(sigmoid(x) * x) / 2", {"W": (3, 2), "x": (2,)}, "x"),
    ("sum(exp(w) * w) + w @ w * sum(w)", {"w": (3,)}, "w"),
    ("mean(softplus(X @ w + b))", {"X": (6, 3), "w": (3,), "b": ()}, "b"),
    ("x * exp(x * y) + relu(x) * x", None, "x"),
])
def test_matrix_hessians_equal_hvp_columns_and_differences_of_the_gradient(text, shapes, wrt):
    g = sg.graph(text, shapes=shapes)
    rng = np.random.default_rng(4)
    at = {n: rng.normal(size=g.shape(n)) for n in g.inputs}
    h = sg.hessian(g, wrt)
    assert h.method == "matrix" and "@" in h.source or g.shape(wrt) == () or "W" not in text
    got = h(**at)
    assert got.shape == g.shape(wrt) * 2
    np.testing.assert_allclose(got, sg.hessian(g, wrt, method="columns")(**at), rtol=1e-10, atol=1e-12)
    f = g.compile()
    numeric = central(lambda z: f.value_and_grad(**{**at, wrt: z})[1][wrt], at[wrt])
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)


def test_logistic_regression_hessian_compiles_to_matrix_products():
    g, at = logistic(N=30, d=5)
    h = sg.hessian(g, "w", method="matrix")
    body = h.source.split("def forward")[1].split("return")[0]
    assert body.count("@") == 2  # X @ w, and the Hessian's one product; the identity is never multiplied
    assert "np.eye" not in body
    X, y, w = at["X"], at["y"], at["w"]
    s = 1 / (1 + np.exp(-y * (X @ w)))
    np.testing.assert_allclose(h(**at), X.T @ np.diag(s * (1 - s)) @ X / 30, rtol=1e-10)


def test_forward_jacobians_equal_reverse_jacobians():
    from symgrad.jacobians import forward_jacobian

    g = sg.graph("sigmoid(W @ x + b) * sum(x)", shapes={"W": (3, 2), "x": (2,), "b": (3,)})
    rng = np.random.default_rng(5)
    at = {n: rng.normal(size=g.shape(n)) for n in g.inputs}
    for n in ("x", "b"):
        forward = forward_jacobian(g, n).compile()(**at)  # rows: input entries
        np.testing.assert_allclose(forward.T, sg.jacobian(g, n)(**at), rtol=1e-12)
    dW = sg.grad(sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)}), "W")  # outer(dq1, x)
    at = {"W": rng.normal(size=(2, 2)), "x": rng.normal(size=2)}
    forward = forward_jacobian(dW, "x").compile()(**at)
    np.testing.assert_allclose(np.moveaxis(forward, 0, -1), sg.jacobian(dW, "x")(**at), rtol=1e-12)


def test_matrix_hessians_refuse_stacks_and_fall_back():
    g = sg.graph("mean((tanh(X @ W1) @ w2 - y)**2)",
                 shapes={"X": (5, 3), "W1": (3, 4), "w2": (4,), "y": (5,)})
    cube = sg.graph("sum(tanh(T @ v))", shapes={"T": (2, 3, 4), "v": (4,)})
    with pytest.raises(sg.UnsupportedError, match="a scalar, a vector or a matrix"):
        sg.hessian(cube, "T", method="matrix")
    with pytest.raises(sg.UnsupportedError, match="4-D"):
        sg.hessian(cube, "v", method="matrix")
    assert sg.hessian(cube, "v").method == "columns"
    with pytest.raises(sg.UnsupportedError, match="scalar, a vector or a matrix"):
        sg.hessian(g, ["W1", "w2"], method="matrix")
    with pytest.raises(sg.SymgradError, match="method"):
        sg.hessian(g, "w2", method="fast")


@pytest.mark.parametrize("text, shapes, wrt", [
    ("mean((tanh(X @ W1) @ w2 - y)**2)", {"X": (5, 3), "W1": (3, 4), "w2": (4,), "y": (5,)}, "W1"),
    ("sum((x * A) @ x)", {"x": (2,), "A": (2, 2)}, "x"),
    ("sum(sigmoid(W.T @ x) * z) + sum(tanh(W @ z) * x)", {"W": (3, 2), "x": (3,), "z": (2,)}, "W"),
])
def test_matrix_hessians_of_matrices_equal_hvp_columns_and_differences(text, shapes, wrt):
    g = sg.graph(text, shapes=shapes)
    rng = np.random.default_rng(7)
    at = {n: rng.normal(size=g.shape(n)) for n in g.inputs}
    h = sg.hessian(g, wrt)
    assert h.method == "matrix"
    got = h(**at)
    np.testing.assert_allclose(got, sg.hessian(g, wrt, method="columns")(**at), rtol=1e-10, atol=1e-12)
    f = g.compile()
    numeric = central(lambda z: f.value_and_grad(**{**at, wrt: z})[1][wrt], at[wrt])
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)


TWO_LAYER = "softmax_cross_entropy(relu(X @ W1 + b1) @ W2 + b2, y) + 0.5*reg*(l2(W1) + l2(W2))"


def test_two_layer_net_hessian_in_w2_compiles_to_matrix_products():
    N, D, H, C = 7, 3, 4, 3
    shapes = {"X": (N, D), "W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,), "y": (N,), "reg": ()}
    net = sg.graph(TWO_LAYER, shapes=shapes, dtypes={"y": int})
    rng = np.random.default_rng(8)
    at = {n: rng.normal(size=s) for n, s in shapes.items() if n != "y"}
    at["y"], at["reg"] = rng.integers(0, C, N), 0.1
    h = sg.hessian(net, "W2")
    assert h.method == "matrix" and len(h.graphs) == 1  # one graph, not H·C Hessian-vector products
    body = h.source.split("def forward")[1].split("return")[0]
    # X @ W1, q3 @ W2, the softmax's sums along the classes (a product with ones), and one
    # product q3ᵀ @ (the rows' factors spread over q3's rows) for every direction at once:
    # the tangents are never stacked by direction before it
    assert body.count("@") == 4
    assert "q3 @ t_W2" not in body and "r_q4" in body and "q28 @ " in body
    got = h(**at)
    assert got.shape == (H, C, H, C)
    flat = got.reshape(H * C, H * C)
    np.testing.assert_allclose(flat, flat.T, rtol=1e-12, atol=1e-14)
    f = net.compile()
    numeric = central(lambda z: f.value_and_grad(**{**at, "W2": z})[1]["W2"], at["W2"])
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)
    # the closed form: (1/N) Σ_n h_n h_nᵀ ⊗ (diag(p_n) − p_n p_nᵀ), plus reg on the diagonal
    hidden = np.maximum(at["X"] @ at["W1"] + at["b1"], 0)
    scores = hidden @ at["W2"] + at["b2"]
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    blocks = np.einsum("na,nb,nij->aibj", hidden, hidden,
                       np.einsum("ni,ij->nij", p, np.eye(C)) - np.einsum("ni,nj->nij", p, p)) / N
    np.testing.assert_allclose(got, blocks + 0.1 * np.eye(H * C).reshape(H, C, H, C), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("text, shapes", [
    ("sum(tanh(X @ W))", {"X": (5, 3), "W": (3, 2)}),  # the rows meet in a sum over everything
    ("sum(exp(X @ W) @ B)", {"X": (4, 3), "W": (3, 2), "B": (2, 3)}),  # (· @ B) within rows
    ("sum(sin(tanh(X @ W) @ v))", {"X": (4, 3), "W": (3, 2), "v": (2,)}),  # (· @ v): a row each
    ("sum(mean(tanh(X @ W), axis=1) ** 2)", {"X": (5, 3), "W": (3, 4)}),  # a mean within rows
    ("mean(logsumexp(X @ W, axis=1))", {"X": (6, 3), "W": (3, 4)}),
    ("sum((a @ tanh(X @ W))**2)", {"a": (5,), "X": (5, 3), "W": (3, 2)}),  # a vector meets the rows
    ("sum(tanh(X @ W) * (X @ W)) + sum(W * W)", {"X": (4, 3), "W": (3, 2)}),  # W met twice, one A
    ("sum(tanh(X @ W) * (Z @ W))", {"X": (4, 3), "Z": (4, 3), "W": (3, 2)}),  # two A: multiplied out
    ("sum(softmax(X @ W) * C) + sum(log(sum(exp(X @ W), axis=1)))", {"X": (4, 3), "W": (3, 2), "C": (4, 2)}),
    ("sum(softplus(relu(X @ W + b) @ V) ** 2)", {"X": (6, 3), "W": (3, 4), "b": (4,), "V": (4, 2)}),
    # a factor that broadcasts within rows (N × 1 against N × 3), then met by Yᵀ @ and by @ B
    ("sum((Y.T @ (sum(X @ W, axis=1, keepdims=True) + Y))**2)", {"X": (4, 3), "W": (3, 2), "Y": (4, 3)}),
    ("sum(tanh(sum(X @ W, axis=1, keepdims=True) * Y) @ B)",
     {"X": (4, 3), "W": (3, 2), "Y": (4, 3), "B": (3, 2)}),
])
def test_hessians_factored_by_rows_equal_hvp_columns_and_differences(text, shapes):
    """A @ W keeps W's tangents as A beside a factor per row; every rule against two oracles."""
    g = sg.graph(text, shapes=shapes)
    rng = np.random.default_rng(9)
    at = {n: rng.normal(size=g.shape(n)) for n in g.inputs}
    h = sg.hessian(g, "W")
    assert h.method == "matrix"
    got = h(**at)
    np.testing.assert_allclose(got, sg.hessian(g, "W", method="columns")(**at), rtol=1e-10, atol=1e-12)
    f = g.compile()
    numeric = central(lambda z: f.value_and_grad(**{**at, "W": z})[1]["W"], at["W"])
    np.testing.assert_allclose(got, numeric, rtol=1e-6, atol=1e-8)


def test_two_layer_net_hessian_in_w2_at_batch_sizes_other_than_its_graphs():
    """Sizes fixed when the graph was made are refused at call time, never used silently."""
    shapes = {"X": (6, 3), "W1": (3, 4), "b1": (4,), "W2": (4, 3), "b2": (3,), "y": (6,), "reg": ()}
    net = sg.graph(TWO_LAYER, shapes=shapes, dtypes={"y": int})
    h = sg.hessian(net, "W2")
    rng = np.random.default_rng(10)
    at = {n: rng.normal(size=s) for n, s in shapes.items() if n != "y"}
    at["y"], at["reg"] = rng.integers(0, 3, 6), 0.0
    at["X"] = rng.normal(size=(7, 3))
    with pytest.raises(sg.ShapeError, match="'X' has shape \\(7, 3\\)"):
        h(**at)


def test_gradient_graphs_of_a_net_fused_into_layer_gates():
    shapes = {"X": (4, 3), "W1": (3, 5), "b1": (5,), "W2": (5, 2), "b2": (2,), "y": (4,)}
    net = sg.graph("mean(softmax_cross_entropy(relu(X @ W1 + b1) @ W2 + b2, y))", shapes=shapes,
                   dtypes={"y": int})
    fused = net.fuse("affine_relu").fuse("softmax_cross_entropy")
    rng = np.random.default_rng(6)
    at = {n: rng.normal(size=shapes[n]) for n in net.inputs if n != "y"}
    at["y"] = np.array([0, 1, 1, 0])
    grads = net.compile().value_and_grad(**at)[1]
    for name in ("W2", "W1", "b1"):
        d = sg.grad(fused, name)
        assert fused.gates[0] in d.nodes
        np.testing.assert_allclose(d.compile()(**at), grads[name], rtol=1e-12, atol=1e-15)
    h = sg.hessian(fused, "b2")
    assert h.method == "matrix"
    np.testing.assert_allclose(h(**at), sg.hessian(net, "b2", method="columns")(**at), rtol=1e-10)
    f = net.compile()
    numeric = central(lambda z: f.value_and_grad(**{**at, "b2": z})[1]["b2"], at["b2"])
    np.testing.assert_allclose(h(**at), numeric, rtol=1e-6, atol=1e-9)


def test_derivative_graphs_of_named_dimensions_are_refused_by_name():
    """A named batch size would enter the gradient as a value; refused, never a bare TypeError."""
    g = sg.graph("mean(tanh(X @ w))", shapes={"X": ("N", 3), "w": (3,)})
    for make in (lambda: sg.grad(g, "w"), lambda: sg.hessian(g, "w"), lambda: sg.hvp(g, "w"),
                 lambda: sg.jacobian(sg.graph("tanh(X @ w)", shapes={"X": ("N", 3), "w": (3,)}), "w")):
        with pytest.raises(sg.UnsupportedError, match="named dimension N"):
            make()


def test_derivatives_that_no_longer_read_the_labels_still_refuse_bad_ones():
    """The Hessian of softmax cross-entropy in W does not depend on y, but y = 5 of 2 classes
    is no input of the loss: refused as the loss's own compiled code refuses it."""
    g = sg.graph("softmax_cross_entropy(X @ W, y)", shapes={"X": (4, 3), "W": (3, 2), "y": (4,)},
                 dtypes={"y": int})
    rng = np.random.default_rng(11)
    at = {"X": rng.normal(size=(4, 3)), "W": rng.normal(size=(3, 2))}
    good = np.array([0, 1, 1, 0])
    for method in ("matrix", "columns"):
        h = sg.hessian(g, "W", method=method)
        np.testing.assert_allclose(h(**at, y=good), sg.hessian(g, "W", method="columns")(**at, y=good),
                                   rtol=1e-10, atol=1e-14)
        for bad in (np.array([0, 1, 5, 0]), np.array([0, -1, 1, 0])):
            with pytest.raises(sg.InputError, match="labels 'y' must lie in 0 … 1"):
                h(**at, y=bad)
    with pytest.raises(sg.InputError, match="labels 'y'"):
        sg.jacobian(sg.graph("pick(softmax(X @ W), y)", shapes={"X": (4, 3), "W": (3, 2), "y": (4,)},
                             dtypes={"y": int}), "W")(**at, y=np.array([0, 1, 2, 0]))


ROW_OPS = ["tanh({})", "sin({})", "sigmoid({})", "softplus({})", "({})**2", "exp(-({})**2)",
           "relu({}) * ({})", "({}) * Y", "Y - ({})", "logsumexp({}, axis=1, keepdims=True) - ({})"]
ROW_ENDS = ["sum({})", "sum(sum({}, axis=1)**2)", "sum(logsumexp({}, axis=1))", "sum(({}) @ B)",
            "sum(Y.T @ ({}))", "sum((Y.T @ ({}))**2)", "mean(({}) @ v)"]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(ROW_OPS), min_size=1, max_size=3), st.sampled_from(ROW_ENDS),
       st.integers(0, 2**16))
def test_hessians_factored_by_rows_on_generated_chains(chain, end, seed):
    """Chains of row-wise ops on A @ W, then the rows meeting in each way: the matrix Hessian
    (factored by rows) equals the Hessian-vector products, column by column."""
    text = "X @ W"
    for op in chain:
        text = op.format(text, text) if op.count("{}") == 2 else op.format(text)
    text = end.format(text)
    shapes = {"X": (4, 3), "W": (3, 2), "Y": (4, 2), "B": (2, 3), "v": (2,)}
    g = sg.graph(text, shapes={n: s for n, s in shapes.items() if re.search(rf"\b{n}\b", text)})
    rng = np.random.default_rng(seed)
    at = {n: rng.normal(size=g.shape(n)) for n in g.inputs}
    h = sg.hessian(g, "W")
    assert h.method == "matrix"
    np.testing.assert_allclose(h(**at), sg.hessian(g, "W", method="columns")(**at), rtol=1e-9, atol=1e-11)
