"""Vectorized backprop: the worked ‖Wx‖² example, Jacobians, shapes, labels, front ends."""

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.printing import numpy_code
from symgrad.program import build_program
from symgrad.tensors import explicit, symbol_array

W0 = np.array([[0.1, 0.5], [-0.3, 0.8]])
X0 = np.array([0.2, 0.4])
SHAPES = {"W": (2, 2), "x": (2,)}


def norm_graphs():
    W, x = sp.symbols("W x", real=True)
    return [
        sg.graph("sum((W @ x)**2)", shapes=SHAPES),
        sg.graph(lambda W, x: sg.sum((W @ x) ** 2), shapes=SHAPES),
        sg.graph(sg.sum(sg.matmul(W, x) ** 2), shapes=SHAPES),
        sg.graph("l2(W @ x)", shapes=SHAPES),
        sg.graph("norm(W @ x)**2", shapes=SHAPES),
    ]


@pytest.mark.parametrize("g", norm_graphs(), ids=["string", "callable", "sympy", "l2", "norm"])
def test_design_norm_of_Wx(g):
    t = g.backprop(W=W0, x=X0)
    q = t.values["q1"]
    np.testing.assert_allclose(q, [0.22, 0.26], atol=1e-15)
    assert t.value == pytest.approx(0.116, abs=1e-15)
    np.testing.assert_allclose(t.node_grads["q1"], [0.44, 0.52], atol=1e-15)
    np.testing.assert_allclose(t.grads["W"], [[0.088, 0.176], [0.104, 0.208]], atol=1e-15)
    np.testing.assert_allclose(t.grads["x"], [-0.112, 0.636], atol=1e-15)
    assert t.grads["W"].shape == (2, 2) and t.grads["x"].shape == (2,)


def test_norm_gradient_both_ways():
    """∂f/∂W_ij = 2·q_i·x_j entry by entry, and ∂f/∂W = 2·q·xᵀ from the vector-Jacobian products."""
    g = sg.graph("sum((W @ x)**2)", shapes=SHAPES)
    Wa, xa = symbol_array("W", (2, 2)), symbol_array("x", (2,))
    env = {g.symbol("W"): Wa, g.symbol("x"): xa}
    q = explicit(g.expression("q1"), env)
    f = explicit(g.expression(), env)[()]
    # entry by entry: SymPy differentiates the expanded scalar function
    for i in range(2):
        for j in range(2):
            assert sp.expand(sp.diff(f, Wa[i, j]) - 2 * q[i] * xa[j]) == 0
    # matrix form: symgrad's backward program, its adjoints substituted into each other
    program = build_program(g)
    adjoint = {program.dout: sp.Integer(1)}
    for a in program.backward:
        adjoint[a.target] = a.expr.xreplace(adjoint)
    dW = adjoint[program.grads["W"]]
    assert str(dW) == "outer(2*q1*broadcast_to(1, (2,)), x)"
    dW = dW.xreplace({g.symbol("q1"): g.expression("q1")})
    expanded = explicit(dW, env)
    expected = 2 * np.multiply.outer(q, xa)  # 2·q·xᵀ
    assert all(sp.expand(a - b) == 0 for a, b in zip(expanded.flat, expected.flat))
    # and SymPy's own matrix calculus agrees: d/dW (Wx)ᵀ(Wx) = 2·W·x·xᵀ = 2·q·xᵀ
    Wm, xm = sp.MatrixSymbol("W", 2, 2), sp.MatrixSymbol("x", 2, 1)
    derived = sp.diff((Wm * xm).T * (Wm * xm), Wm)
    assert derived == 2 * Wm * xm * xm.T
    numbers = derived.subs({Wm: sp.Matrix(W0), xm: sp.Matrix(X0)}).doit()
    np.testing.assert_allclose(np.array(numbers, dtype=float), [[0.088, 0.176], [0.104, 0.208]])


def test_matmul_rule_agrees_with_sympy_matrix_calculus():
    """The matmul rule dA = G·Bᵀ, dB = Aᵀ·G is what SymPy derives for d/dA tr(Gᵀ·A·B)."""
    A, B, G = sp.MatrixSymbol("A", 2, 4), sp.MatrixSymbol("B", 4, 3), sp.MatrixSymbol("G", 2, 3)
    assert sp.diff(sp.trace(G.T * A * B), A) == G * B.T
    assert sp.diff(sp.trace(G.T * A * B), B) == A.T * G
    g = sg.graph("A @ B", shapes={"A": (2, 4), "B": (4, 3)})
    vjps = g.vjps("q1")
    assert str(vjps["A"].expr) == "dq1 @ B.T"
    assert str(vjps["B"].expr) == "A.T @ dq1"


def test_generated_code_uses_transposes_not_jacobians():
    g = sg.graph("sum((W @ x)**2)", shapes=SHAPES)
    program = build_program(g)
    code = {a.target.name: numpy_code(a.expr) for a in program.backward}
    assert code["dW"] == "np.outer(dq1, x)"
    assert code["dx"] == "W.T @ dq1"
    assert code["dq1"] == "2*dq2*q1"  # the diagonal Jacobian of **2 as a Hadamard product


def test_two_by_two_jacobian_and_diagonal_elementwise_jacobian():
    g = sg.graph("sum(sigmoid(W @ x))", shapes=SHAPES)
    t = g.backprop(W=W0, x=X0)
    np.testing.assert_allclose(t.jacobian("q1", "x"), W0)  # ∂(Wx)/∂x = W
    jw = t.jacobian("q1", "W")
    assert jw.shape == (2, 2, 2)
    np.testing.assert_allclose(jw[0], [[0.2, 0.4], [0, 0]])  # ∂q_0/∂W = row 0 holds x
    s = 1 / (1 + np.exp(-W0 @ X0))
    j = t.jacobian("q2", "q1")
    np.testing.assert_allclose(j, np.diag(s * (1 - s)))
    assert np.count_nonzero(j - np.diag(np.diag(j))) == 0
    # the chain: ∂q2/∂x = diag(σ')·W, and its column sums are the gradient
    np.testing.assert_allclose(t.jacobian("q2", "x"), np.diag(s * (1 - s)) @ W0)
    np.testing.assert_allclose(t.jacobian("q3", "x"), t.grads["x"])
    assert t.jacobian("q1", "q2").shape == (2, 2) and not t.jacobian("q1", "q2").any()


def test_jacobian_refuses_large_shapes():
    g = sg.graph("sum(exp(x))", shapes={"x": (200,)})
    t = g.backprop(x=np.zeros(200))
    with pytest.raises(sg.ShapeError, match=r"\(200, 200\).*never forms"):
        t.jacobian("q1", "x")


def test_elementwise_jacobians_are_never_formed():
    # a Jacobian of these nodes would hold 10^10 entries; the pass takes milliseconds
    n = 100_000
    g = sg.graph("sum(tanh(x) * exp(y) + relu(x))", shapes={"x": (n,), "y": (n,)})
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=n), rng.normal(size=n)
    t = g.backprop(x=x, y=y)
    np.testing.assert_allclose(t.grads["x"], (1 - np.tanh(x) ** 2) * np.exp(y) + (x > 0))
    np.testing.assert_allclose(t.grads["y"], np.tanh(x) * np.exp(y))


def test_broadcast_bias_gradient_is_summed_over_the_batch():
    g = sg.graph("sum((X @ W + b)**2)", shapes={"X": (4, 3), "W": (3, 2), "b": (2,)})
    rng = np.random.default_rng(1)
    X, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    t = g.backprop(X=X, W=W, b=b)
    dz = 2 * (X @ W + b)
    np.testing.assert_allclose(t.grads["b"], dz.sum(axis=0))
    np.testing.assert_allclose(t.grads["W"], X.T @ dz)
    np.testing.assert_allclose(t.grads["X"], dz @ W.T)
    assert "np.sum(" in numpy_code(build_program(g).adjoint("b").expr)


@pytest.mark.parametrize("text, expected", [
    ("sum(x, axis=0)", [3.0, 5.0, 7.0]),
    ("sum(x, axis=-1)", [3.0, 12.0]),
    ("mean(x, axis=1)", [1.0, 4.0]),
    ("sum(x.T, axis=0)", [3.0, 12.0]),
    ("x.T @ x @ ones", [36.0, 51.0, 66.0]),
])
def test_axis_keyword_and_transpose_in_strings(text, expected):
    shapes = {"x": (2, 3), "ones": (3,)} if "ones" in text else {"x": (2, 3)}
    values = {"x": np.arange(6.0).reshape(2, 3)}
    if "ones" in text:
        values["ones"] = np.ones(3)
    g = sg.graph(text, shapes=shapes)
    np.testing.assert_allclose(g.backprop(**values).value, expected)


def test_keyword_axis_reaches_the_graph_from_every_front_end():
    a = sp.Symbol("a", real=True)
    graphs = [
        sg.graph("softmax(a, axis=0)", shapes={"a": (3, 2)}),
        sg.graph(lambda a: sg.softmax(a, axis=0), shapes={"a": (3, 2)}),
        sg.graph(sg.softmax(a, axis=0), shapes={"a": (3, 2)}),
    ]
    values = np.array([[1.0, 2.0], [0.0, 0.0], [-1.0, 3.0]])
    expected = np.exp(values) / np.exp(values).sum(axis=0)
    for g in graphs:
        assert "logsumexp(a, axis=0, keepdims=True)" in str(g)
        np.testing.assert_allclose(g.backprop(a=values).value, expected)


@pytest.mark.parametrize("text, message", [
    ("x.shape", "attribute access (.shape) is not allowed; only .T and .mT, the transposes"),
    ("sum(x, axis=y)", "axis= takes an integer"),
    ("sum(x, axis=1.5)", "axis= takes an integer"),
    ("sum(x, keepdims=1)", "keepdims= takes True or False"),
    ("pick(x, y, axis=0)", "pick() takes only keepdims=, got axis="),
    ("exp(x, axis=0)", "exp() takes no keyword arguments"),
    ("sum(x, 0)", "sum() takes 1 argument, got 2 (give the axis as axis=k)"),
    ("sum(x, axis=5)", "sum: axis 5 is out of range for shape (2, 3)"),
    ("x @ x", "matmul: shapes (2, 3) and (2, 3) do not align (3 ≠ 2)"),
    ("x + y", "add: shapes (2, 3) and (2,) do not broadcast"),
    ("x @ 2", "matmul: shapes (2, 3) and (): @ takes vectors and matrices"),
    ("pick(x, y)", "pick: operand 2 takes integer labels, but got input 'y'"),
    ("x @ y", "matmul: shapes (2, 3) and (2,) do not align (3 ≠ 2) "
              "(operands: input 'x' of shape (2, 3), input 'y' of shape (2,))"),
    ("reshape(x, (4, -1))", "reshape: cannot reshape an array of shape (2, 3) (6 entries) into "
                            "shape (4, -1) (operand: input 'x' of shape (2, 3))"),
    ("x.reshape(-1, -1)", "reshape: new shape (-1, -1): sizes are positive, with at most one -1"),
    ("reshape(x, (10**30, -1))", "reshape() takes integers, True/False or tuples of integers"),
    ("reshape(x, (1000000000000000000000, -1))", "into shape (1000000000000000000000, -1)"),
    ("reshape(x, y)", "reshape() takes integers, True/False or tuples of integers"),
    ("reshape(x, True)", "shape True is not a tuple of integers"),
    ("reshape()", "reshape() takes an array, then literals"),
    ("swapaxes(x, 0)", "swapaxes(): missing a required argument"),
    ("swapaxes(x, 0, 2)", "swapaxes: axes (0, 2) are out of range (operand: input 'x' of shape (2, 3))"),
    ("transpose(x, (0, 0))", "transpose: axes (0, 0) are not a permutation of the 2 axes"),
    ("transpose(x, 1)", "transpose(): axes 1 are not a tuple of integers"),
    ("y.mT", "matrix_transpose (.mT) needs two axes or more (operand: input 'y' of shape (2,))"),
    ("x.sum(keepdims=2)", "keepdims= takes True or False"),
    ("x.sum(axis=y)", "axis= takes an integer or a tuple of integers, like axis=0"),
    ("max(x, y, axis=0)", "max() takes no keyword arguments, got axis="),
    ("max(x, axis=2)", "max: axis 2 is out of range for shape (2, 3)"),
    ("x.shape[0]", "subscripts are not allowed"),
])
def test_bad_tensor_expressions_name_op_and_shapes(text, message):
    with pytest.raises(sg.SymgradError) as e:
        sg.graph(text, shapes={"x": (2, 3), "y": (2,)})
    assert message in str(e.value)


def test_shape_errors_are_shape_errors():
    with pytest.raises(sg.ShapeError, match=r"(?s)matmul: .* do not align.*\n  W @ x\n  \^"):
        sg.graph("W @ x", shapes={"W": (2, 3), "x": (2,)})
    with pytest.raises(sg.ShapeError, match=r"matmul: shapes \(2, 3\) and \(2,\) do not align"):
        sg.graph(lambda W, x: W @ x, shapes={"W": (2, 3), "x": (2,)})
    with pytest.raises(sg.ShapeError, match=r"the batch axes \(2,\) and \(3,\) do not broadcast"):
        sg.graph("A @ B", shapes={"A": (2, 2, 2), "B": (3, 2, 2)})
    with pytest.raises(sg.ShapeError, match="dout has shape"):
        sg.graph("W @ x", shapes=SHAPES).backprop(dout=np.ones(3), W=W0, x=X0)
    with pytest.raises(sg.ShapeError, match=r"value of 'x' has shape \(3,\)"):
        sg.graph("W @ x", shapes=SHAPES).backprop(W=W0, x=np.ones(3))


def test_integer_labels_get_no_gradient():
    g = sg.graph("softmax_cross_entropy(s, y)", shapes={"s": (3, 4), "y": (3,)}, dtypes={"y": int})
    assert g.labels == ("y",)
    assert "y: 3 int" in str(g)
    s = np.arange(12.0).reshape(3, 4) / 5
    t = g.backprop(s=s, y=[3, 0, 1])
    assert set(t.grads) == {"s"}
    assert "y" not in t.node_grads
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(t.grads["s"], (p - np.eye(4)[[3, 0, 1]]) / 3)
    assert t.value == pytest.approx(-np.mean(np.log(p[[0, 1, 2], [3, 0, 1]])))
    assert "labels (no gradient)" in t.table()
    with pytest.raises(sg.SymgradError, match="'y' holds integer labels; labels have no gradient"):
        build_program(g, ["y"])


@pytest.mark.parametrize("labels, message", [
    ([3, 0, 4], r"labels 'y' must lie in 0 … 3 \(4 classes\), got 4"),
    ([3, -1, 1], "got -1"),
    ([0.5, 0, 1], "must be integer labels"),
])
def test_bad_label_values(labels, message):
    g = sg.graph("softmax_cross_entropy(s, y)", shapes={"s": (3, 4), "y": (3,)}, dtypes={"y": int})
    with pytest.raises(sg.InputError, match=message):
        g.backprop(s=np.zeros((3, 4)), y=labels)


def test_label_declarations_are_checked():
    with pytest.raises(sg.ParseError, match="mul: input 'y' holds integer labels"):
        sg.graph("sum(y * s)", shapes={"s": (3,), "y": (3,)}, dtypes={"y": int})
    with pytest.raises(sg.InputError, match="mul: input 'y' holds integer labels"):
        sg.graph(lambda s, y: s * y, shapes={"s": (3,), "y": (3,)}, dtypes={"y": int})
    with pytest.raises(sg.InputError, match="dtype 'complex' of input 'y' is not supported"):
        sg.graph("pick(s, y)", shapes={"s": (3, 2), "y": (3,)}, dtypes={"y": "complex"})
    with pytest.raises(sg.InputError, match="dtypes given for 'z'"):
        sg.graph("pick(s, y)", shapes={"s": (3, 2), "y": (3,)}, dtypes={"y": int, "z": int})
    with pytest.raises(sg.ShapeError, match=r"pick: scores of shape \(3, 2\) and labels of shape \(2,\)"):
        sg.graph("pick(s, y)", shapes={"s": (3, 2), "y": (2,)}, dtypes={"y": int})


def test_collapsed_expressions_keep_their_shape():
    # SymPy simplifies x - x to the scalar 0; the node and its gradient keep x's shape
    g = sg.graph("sum(x - x + x*y)", shapes={"x": (3,), "y": (3,)})
    t = g.backprop(x=[1.0, 2.0, 3.0], y=[4.0, 5.0, 6.0])
    assert t.values["q1"].shape == (3,)
    np.testing.assert_allclose(t.grads["x"], [4.0, 5.0, 6.0])
    assert t.grads["y"].shape == (3,)


def test_parenthesized_matmul_in_generated_code():
    g = sg.graph("sum(2 * (A @ B) * (A @ B).T + (A @ B)**2)", shapes={"A": (2, 2), "B": (2, 2)})
    codes = [numpy_code(a.expr) for a in build_program(g).forward]
    assert "(A @ B)" not in codes[0] and codes[0] == "A @ B"
    assert "q1.T" in codes
    A, B = np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([[0.5, 1.0], [2.0, 1.0]])
    P = A @ B
    assert g.backprop(A=A, B=B).value == pytest.approx(np.sum(2 * P * P.T + P**2))


def test_vjps_and_local_derivatives():
    g = sg.graph("sum(exp(W @ x))", shapes=SHAPES)
    assert {u: str(r.expr) for u, r in g.vjps("q2").items()} == {"q1": "dq2*q2"}
    assert str(g.vjps("q3")["q2"].expr) == "broadcast_to(dq3, (2,))"
    assert g.local_derivatives("q2", cached=True) == {"q1": g.symbol("q2")}
    with pytest.raises(sg.SymgradError, match=r"q1 \(matmul\) is not elementwise.*g.vjps\('q1'\)"):
        g.local_derivatives("q1")


def test_trace_table_shows_arrays_and_rules():
    t = sg.graph("sum((W @ x)**2)", shapes=SHAPES).backprop(W=W0, x=X0)
    table = t.table()
    assert "[0.22, 0.26]" in table and "[0.44, 0.52]" in table
    assert "dq1 ↦ outer(dq1, x)" in table and "dq1 ↦ W.T @ dq1" in table
    assert "[[0.088, 0.176], [0.104, 0.208]]" in table
    big = sg.graph("sum(x)", shapes={"x": (10, 10)}).backprop(x=np.arange(100.0).reshape(10, 10))
    assert "array(10, 10) in [0, 99]" in big.table()
    assert "sum" in repr(big.graph) and "array(10, 10)" in repr(big)


def test_graph_text_lists_shapes():
    text = str(sg.graph("sum((W @ x)**2)", shapes=SHAPES))
    assert text.splitlines()[0] == "graph(W: 2×2, x: 2): q3 = sum((W @ x)**2)"
    assert text.splitlines()[1].split() == ["q1", "=", "W", "@", "x", "[@]", "2"]
    assert text.splitlines()[3].split()[-1] == "scalar"
    assert str(sg.graph("(x + y) * z")).splitlines()[0] == "graph(x, y, z): q2 = (x + y) * z"


def test_traced_transpose_and_reflected_matmul():
    g = sg.graph(lambda A, v: sg.sum(v @ A.T), shapes={"A": (2, 3), "v": (3,)})
    A, v = np.arange(6.0).reshape(2, 3), np.array([1.0, -1.0, 2.0])
    t = g.backprop(A=A, v=v)
    np.testing.assert_allclose(t.grads["v"], A.sum(axis=0))
    np.testing.assert_allclose(t.grads["A"], np.outer(np.ones(2), v))
    with pytest.raises(sg.TracingError, match=r"NumPy array of shape \(3,\) cannot be a constant"):
        sg.graph(lambda v: v @ np.ones(3), shapes={"v": (3,)})


def test_sympy_matrix_expressions():
    W, x = sp.MatrixSymbol("W", 2, 2), sp.MatrixSymbol("x", 2, 1)
    g = sg.graph((W * x).T * (W * x))  # SymPy's own matrix algebra: MatMul, Transpose
    assert g.shape("W") == (2, 2) and g.shape("x") == (2, 1) and g.shape(g.output) == (1, 1)
    t = g.backprop(W=W0, x=X0[:, None])
    assert float(t.value[0, 0]) == pytest.approx(0.116, abs=1e-15)
    np.testing.assert_allclose(t.grads["W"], [[0.088, 0.176], [0.104, 0.208]], atol=1e-15)
    np.testing.assert_allclose(t.grads["x"], [[-0.112], [0.636]], atol=1e-15)
    b = sp.MatrixSymbol("b", 2, 1)
    g = sg.graph(sg.sum(sp.HadamardProduct(3 * W * x - b, W * x)))
    t = g.backprop(W=W0, x=X0[:, None], b=np.ones((2, 1)))
    q = W0 @ X0[:, None]
    np.testing.assert_allclose(t.grads["b"], -q)
    np.testing.assert_allclose(t.grads["W"], (6 * q - 1) @ X0[None, :])
    with pytest.raises(sg.ShapeError, match=r"matrix W is \(2, 2\), but shapes gives \(3, 3\)"):
        sg.graph(W * x, shapes={"W": (3, 3)})


def test_a_rule_giving_the_wrong_shape_is_caught(monkeypatch):
    from symgrad import tensors

    monkeypatch.setattr(tensors.transpose, "vjp", lambda self, g, out, shapes: (g,))  # forgot .T
    with pytest.raises(sg.ShapeError, match=r"transpose: the gradient for x has shape \(3, 2\), "
                                            r"but x has shape \(2, 3\)"):
        sg.graph("sum(x.T)", shapes={"x": (2, 3)})


@pytest.mark.parametrize("text, x, expected", [
    ("max(x)", [1.0, 2.0, 2.0], [0.0, 0.5, 0.5]),
    ("min(x)", [1.0, 1.0, 2.0], [0.5, 0.5, 0.0]),
    ("sum(max(x, axis=0))", [[1.0, 3.0, 3.0], [1.0, 0.0, 4.0]], [[0.5, 1.0, 0.0], [0.5, 0.0, 1.0]]),
    ("sum(min(x, axis=1, keepdims=True))", [[1.0, 1.0, 3.0], [2.0, 0.0, 4.0]],
     [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]),
])
def test_max_over_an_axis_shares_the_gradient_among_ties(text, x, expected):
    g = sg.graph(text, shapes={"x": np.shape(x)})
    np.testing.assert_allclose(g.backprop(x=x).grads["x"], expected)
    np.testing.assert_allclose(g.compile().value_and_grad(x=x)[1]["x"], expected)
    assert sg.check_grad(g, x=np.array(x)).ok  # ties are kinks, not failures


def test_labels_show_every_parameter_that_is_not_a_default():
    g = sg.graph("sum(max(x, axis=0, keepdims=True)) + sum(sum(x, axis=0))", shapes={"x": (2, 3)})
    labels = [g.nx.nodes[n]["label"] for n in g.operations]
    assert "max(axis=0, keepdims)" in labels and "sum(axis=0)" in labels and "sum" in labels
