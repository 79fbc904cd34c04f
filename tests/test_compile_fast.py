"""The generated code's cheaper spellings: scalar factors first, numbers kept numbers, relu masks
as comparisons, forward arrays freed in value_and_grad, and the entry points' quick input test.

Each spelling is checked for its text and, on the same graphs, for the values and the gradients'
shapes it computes against the interpreter and the hand-written net.
"""

from __future__ import annotations

import ast

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.printing import numpy_code

from .test_tensors_nets import two_layer, two_layer_by_hand, two_layer_case

W, c, d, x, q, y = sp.symbols("W c d x q y", real=True)


def function_source(source: str, name: str) -> str:
    start = source.index(f"def {name}(")
    end = source.find("\n\n\ndef ", start)
    return source[start:] if end < 0 else source[start:end]


def lines_of(source: str, target: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if line.strip().startswith(f"{target} = ")]


def products_reading(line: str, name: str) -> int:
    """How many multiplications in the line's right-hand side have ``name`` among their operands:
    ``2*q*W`` is ``(2*q)*W``, one pass over W; ``2*W*q`` is ``(2*W)*q``, two."""
    tree = ast.parse(line.split(" = ", 1)[1], mode="eval")
    return sum(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult)
               and any(isinstance(m, ast.Name) and m.id == name for m in ast.walk(n))
               for n in ast.walk(tree))


def test_products_reading_counts_passes():
    assert products_reading("a = 2*W*q + X", "W") == 2
    assert products_reading("a = 2*q*W + X", "W") == 1


# -- the printer ------------------------------------------------------------------------------


@pytest.mark.parametrize("expr, shapes, text", [
    (2 * W * c, {W: (3, 2)}, "2*c*W"),                  # (2*c)*W: one pass over W
    (-2 * W * c, {W: (3, 2)}, "-2*c*W"),
    (W * c / d, {W: (3, 2)}, "c/d*W"),
    (sp.Rational(1, 4) * W * c, {W: (3, 2)}, "(1/4)*c*W"),
    (2 * W * c, {W: (3, 2), c: (3, 2)}, "2*W*c"),       # two arrays: SymPy's order
    (W * c, {W: (3, 2)}, "W*c"),                         # one scalar: nothing to gain
    (W / c, {W: (3, 2)}, "W/c"),
    (2 * W * c, None, "2*W*c"),                          # no shapes: SymPy's order
])
def test_a_products_scalar_factors_come_first(expr, shapes, text):
    assert numpy_code(expr, shapes) == text


def test_reordered_products_compute_the_same_numbers():
    rng = np.random.default_rng(1)
    env = {"W": rng.normal(size=(3, 2)), "c": 1.5, "d": -0.25, "x": rng.normal(size=(3, 2))}
    for expr in (2 * W * c, -3 * W * c * x / d, W * c * (x + d) / 7, -W * c * sp.exp(x)):
        code = numpy_code(expr, {W: (3, 2), x: (3, 2)})
        want = sp.lambdify([W, c, d, x], expr, "numpy")(env["W"], env["c"], env["d"], env["x"])
        np.testing.assert_allclose(eval(code, {"np": np}, dict(env)), want, rtol=1e-14)


def test_a_step_inside_a_product_is_a_comparison():
    assert numpy_code(x * sp.Heaviside(q, 0)) == "x*(q > 0)"
    assert numpy_code(-x * sp.Heaviside(q, 0)) == "-x*(q > 0)"
    assert numpy_code(x * sp.Heaviside(q, 1)) == "x*(q >= 0)"
    # alone, with numbers only, with labels, or 1/2 at zero: a float from np.heaviside
    assert numpy_code(sp.Heaviside(q, 0)) == "np.heaviside(q, 0.0)"
    assert numpy_code(2 * sp.Heaviside(q, 0)) == "2*np.heaviside(q, 0.0)"
    assert numpy_code(y * sp.Heaviside(q, 0), ints={y}) == "y*np.heaviside(q, 0.0)"
    assert numpy_code(x * sp.Heaviside(q)) == "x*np.heaviside(q, 0.5)"


def test_relu_gradients_through_comparisons_are_floats_equal_to_the_interpreter():
    g = sg.graph("relu(x) * z + relu(-x)")
    f = g.compile()
    assert "(x > 0)" in f.source
    for point in (dict(x=1.5, z=2.0), dict(x=-1.5, z=2.0), dict(x=0.0, z=2.0)):
        value, grads = f.value_and_grad(**point)
        trace = g.backprop(**point)
        assert all(isinstance(v, float) for v in grads.values())
        assert grads == pytest.approx(trace.grads)
    batch = np.linspace(-1, 1, 7)
    _, grads = f.value_and_grad(x=batch, z=2.0)
    assert grads["x"].dtype == np.float64
    np.testing.assert_allclose(grads["x"], np.where(batch > 0, 2.0, np.where(batch < 0, -1.0, 0.0)))


# -- the generated functions --------------------------------------------------------------------


@pytest.fixture(scope="module")
def nets():
    shapes, values = two_layer_case(N=6, D=5, H=4, C=3)
    g = sg.graph(two_layer, shapes=shapes, dtypes={"y": int})
    wrt = ["W1", "b1", "W2", "b2"]
    return values, {"fused": g.fuse("affine_relu").fuse("softmax_cross_entropy").compile(wrt=wrt),
                    "unfused": g.compile(wrt=wrt)}


@pytest.mark.parametrize("name", ["fused", "unfused"])
def test_the_regularizer_gradient_passes_over_each_weight_once(nets, name):
    values, compiled = nets
    f = compiled[name]
    together = function_source(f.source, "value_and_grad")
    backward = function_source(f.source, "backward")
    for w in ("W1", "W2"):
        for text in (together, backward):
            (line,) = lines_of(text, f"d{w}")
            assert "broadcast_to" not in line and products_reading(line, w) == 1, line
    # the number the sum sent back is not stretched to the weights' shapes anywhere
    assert "(5, 4))" not in f.source and "(4, 3))" not in f.source


@pytest.mark.parametrize("name", ["fused", "unfused"])
def test_every_entry_point_gives_the_hand_written_gradients(nets, name):
    values, compiled = nets
    f = compiled[name]
    loss, want = two_layer_by_hand(**values)
    want = {k: want[k] for k in f.wrt}
    args = list(values.values())
    out, cache = f.module.forward(*args)
    for value, grads in (f.value_and_grad(**values), f.module.value_and_grad(*args),
                         (out, f.module.backward(1.0, cache)), (out, f.backward(1.0, cache))):
        assert value == pytest.approx(loss, rel=1e-12)
        assert set(grads) == set(want)
        for k in want:
            assert np.shape(grads[k]) == np.shape(values[k]), k
            np.testing.assert_allclose(grads[k], want[k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_value_and_grad_frees_the_forward_arrays_the_gradients_do_not_read(nets):
    values, compiled = nets
    f = compiled["unfused"]
    tree = ast.parse(f.source)
    (fn,) = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "value_and_grad"]
    deleted, *freed = [s for s in fn.body if isinstance(s, ast.Delete)]
    first_adjoint = next(i for i, s in enumerate(fn.body) if isinstance(s, ast.Assign)
                         and s.targets[0].id.startswith("d"))
    early = {t.id for s in fn.body[:first_adjoint] if isinstance(s, ast.Delete) for t in s.targets}
    assert {"q1", "q11", "q13"} <= early  # X @ W1, W1**2, W2**2: freed before the gradients
    names = {t.id for s in fn.body if isinstance(s, ast.Delete) for t in s.targets}
    scalars = {n for n in f.graph.nodes if f.graph.shape(n) == ()}
    assert not names & scalars  # numbers are not worth a line
    assert freed  # and each adjoint (or forward value) after the line that reads it last
    for d in [deleted, *freed]:
        before = fn.body[fn.body.index(d) - 1]
        read = {n.id for n in ast.walk(before) if isinstance(n, ast.Name)}
        assert {t.id for t in d.targets} <= read  # right after its last reader
        after = fn.body[fn.body.index(d) + 1:]
        read = {n.id for s in after for n in ast.walk(s) if isinstance(n, ast.Name)}
        assert not {t.id for t in d.targets} & read
    forward = function_source(f.source, "forward")
    assert "del " not in forward and "del " not in function_source(f.source, "backward")


def test_a_stretched_number_stays_stretched_where_a_use_needs_its_shape():
    # the gradient of x itself, and of an operand whose copy is read: arrays of their shapes
    for text in ("sum(x)", "sum(x + 1)", "sum(exp(x) + x)", "mean(x**2)", "sum(W @ x)"):
        g = sg.graph(text, shapes={"x": (3,), "W": (2, 3)} if "W" in text else {"x": (3,)})
        f = g.compile()
        point = {"x": np.array([0.5, -1.0, 2.0]), "W": np.arange(6.0).reshape(2, 3)}
        point = {k: v for k, v in point.items() if k in g.inputs}
        value, grads = f.value_and_grad(**point)
        out, cache = f.forward(**point)
        trace = g.backprop(**point)
        for got in (grads, f.backward(1.0, cache)):
            for k, v in trace.grads.items():
                assert np.shape(got[k]) == np.shape(point[k]), (text, k)
                np.testing.assert_allclose(got[k], v, rtol=1e-12, err_msg=text)


# -- the entry points' input checks -------------------------------------------------------------


def test_inputs_that_need_converting_or_refusing_still_are(nets):
    values, compiled = nets
    f = compiled["fused"]
    want = f.value_and_grad(**values)[0]
    assert f.value_and_grad(**{**values, "X": values["X"].astype(np.float32)})[0] == \
        pytest.approx(want, rel=1e-6)
    assert f.value_and_grad(**{**values, "y": values["y"].astype(np.int32)})[0] == want
    assert f.value_and_grad(**{**values, "reg": np.float64(0.1)})[0] == want
    with pytest.raises(sg.SymgradError, match="'W1' is not finite"):
        f.value_and_grad(**{**values, "W1": np.where(values["W1"] > 0, np.inf, values["W1"])})
    big = np.full_like(values["X"], 1e308)  # finite entries whose sum overflows
    with np.errstate(over="ignore"):
        assert np.isfinite(f.value_and_grad(**{**values, "X": big, "W1": 0 * values["W1"]})[0])
    with pytest.raises(sg.SymgradError, match="labels 'y'"):
        f.value_and_grad(**{**values, "y": np.full_like(values["y"], 3)})
    with pytest.raises(sg.SymgradError, match="labels 'y'"):
        f.value_and_grad(**{**values, "y": np.full_like(values["y"], -1)})
    with pytest.raises(sg.SymgradError, match="'b1' has shape"):
        f.value_and_grad(**{**values, "b1": values["b1"][:-1]})
    with pytest.raises(sg.SymgradError, match="not finite"):
        f.value_and_grad(**{**values, "reg": float("nan")})


def test_a_batch_of_points_reads_its_entries_only_when_the_output_is_not_finite():
    f = sg.graph("sigmoid(w) * x * y").compile()
    w, x, y = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, -0.5]), 3.0
    s = 1 / (1 + np.exp(-w))
    for entry in (f, f.forward, f.value_and_grad):
        for bad in (np.inf, np.nan):
            hit = x.copy()
            hit[1] = bad
            with pytest.raises(sg.InputError, match="'x' is not finite"), np.errstate(invalid="ignore"):
                entry(w=w, x=hit, y=y)
        with pytest.raises(sg.InputError, match="'y' is not finite"):
            entry(w=w, x=x, y=float("nan"))
        with pytest.raises(sg.ShapeError, match="do not broadcast"):
            entry(w=w, x=x[:2], y=y)
    value, grads = f.value_and_grad(w=w, x=x, y=y)
    np.testing.assert_allclose(value, 3 * s * x, rtol=1e-15)
    np.testing.assert_allclose(grads["w"], 3 * s * (1 - s) * x, rtol=1e-14)
    assert grads["y"] == pytest.approx((s * x).sum(), rel=1e-15)
    for other in (x.astype(np.float32), [1.0, 2.0, -0.5], np.array([1, 2, 0])):  # converted first
        got = f.value_and_grad(w=w, x=other, y=y)[1]["w"]
        np.testing.assert_allclose(got, 3 * s * (1 - s) * np.asarray(other, float), rtol=1e-14)
    with pytest.raises(sg.InputError, match="'x' is not finite"):
        f.value_and_grad(w=w, x=[1.0, np.inf, 0.0], y=y)
    zero_d = f.value_and_grad(w=np.array(0.5), x=np.array(2.0), y=3.0)  # 0-d arrays: floats, as before
    assert zero_d == f.value_and_grad(w=0.5, x=2.0, y=3.0) and zero_d[0].__class__ is float
    hidden = sg.graph("sigmoid(w) * y").compile()  # σ(−∞) = 0: the output shows nothing, NumPy's answer
    assert hidden(w=np.array([-np.inf, 0.0]), y=1.5).tolist() == [0.0, 0.75]


def test_array_entries_are_read_only_when_the_output_is_not_finite():
    g = sg.graph("sum(relu(W @ x))", shapes={"W": (2, 3), "x": (3,)})
    f = g.compile()
    W = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0]])
    x = np.array([0.5, -1.0, 2.0])
    want = f.value_and_grad(W=W, x=x)
    with np.errstate(invalid="ignore", over="ignore"):
        for bad in (np.inf, np.nan):
            hit = W.copy()
            hit[0, 0] = bad
            for call in (f, f.forward, f.value_and_grad):
                with pytest.raises(sg.InputError, match="'W' is not finite"):
                    call(W=hit, x=x)
        hidden = W.copy()
        hidden[1, 0] = -np.inf  # relu turns the row's -inf into 0: the output shows nothing
        value, grads = f.value_and_grad(W=hidden, x=x)
    assert want[0] == 7.5 and value == 4.5  # the hidden row adds nothing
    big = sg.graph("sum(exp(x))", shapes={"x": (2,)}).compile()
    with np.errstate(over="ignore"):
        assert big(x=np.array([1000.0, 0.0])) == np.inf  # finite inputs: NumPy's answer


@pytest.mark.parametrize("axis, index", [(0, "[None]"), (1, "[:, None]"), (2, "[:, :, None]"),
                                         (-1, "[:, :, None]"), (-3, "[None]")])
def test_a_new_axis_is_an_index_computing_what_expand_dims_does(axis, index):
    from symgrad.tensors import expand_dims

    text = numpy_code(expand_dims(W * c, sp.Tuple(axis)), {W: (3, 2), c: (3, 2)})
    assert text == f"(W*c){index}"
    w, k = np.arange(6.0).reshape(3, 2), np.full((3, 2), 2.0)
    got = eval(text, {"np": np, "W": w, "c": k})  # the generated text, not user input
    assert got.shape == np.expand_dims(w * k, axis).shape and np.array_equal(got, np.expand_dims(w * k, axis))
    assert "np.expand_dims" in numpy_code(expand_dims(c, sp.Tuple(0)), {})  # shape unknown: the function


def test_inputs_as_the_checks_make_them_pass_one_inline_test_and_all_others_are_checked():
    shapes = {"X": ("N", 3), "W": (3, "C"), "y": ("N",)}
    g = sg.graph("softmax_cross_entropy(X @ W, y) + l2(W)", shapes=shapes, dtypes={"y": int})
    f = g.compile()
    checked, calls = f._namespace["_arguments"], []
    f._namespace["_arguments"] = lambda *a: calls.append(a) or checked(*a)  # before the entry is made
    rng = np.random.default_rng(0)
    for n, c in ((4, 5), (1, 2), (7, 3)):  # any sizes of the named dimensions
        X, W, y = rng.normal(size=(n, 3)), rng.normal(size=(3, c)), rng.integers(0, c, size=n)
        value, grads = f.value_and_grad(X=X, W=W, y=y)
        t = g.backprop(X=X, W=W, y=y)
        assert value == pytest.approx(t.value, rel=1e-12)
        np.testing.assert_allclose(grads["W"], t.grads["W"], rtol=1e-10, atol=1e-14)
        assert calls == []
        for other in ({"X": X.astype(np.float32)}, {"X": X.astype(">f8")}, {"y": y.astype(np.int32)},
                      {"y": y.tolist()}, {"W": W.tolist()}):  # converted, then the same numbers
            got = f.value_and_grad(**{"X": X, "W": W, "y": y, **other})
            assert got[0] == pytest.approx(value, rel=1e-6) and len(calls) == 1
            calls.clear()
    X, W, y = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), np.array([0, 4, 2, 1])
    refused = [({"y": np.array([0, 5, 2, 1])}, sg.InputError, "labels 'y' must lie in 0 … 4"),
               ({"y": np.array([0, -1, 2, 1])}, sg.InputError, "labels 'y'"),
               ({"y": np.array([0, 4, 2])}, sg.ShapeError, r"dimension 0 \(N\) is 3, but N is 4"),
               ({"X": X[:, :2]}, sg.ShapeError, "dimension 1 is 2, not 3"),
               ({"W": W[None]}, sg.ShapeError, "3-dimensional, not 2-dimensional"),
               ({"y": y.astype(float)}, sg.InputError, "integer labels"),
               ({"X": np.where(X > 0, np.nan, X)}, sg.InputError, "'X' is not finite"),
               ({"Z": X}, sg.SymgradError, "'Z'")]
    for change, error, message in refused:
        with pytest.raises(error, match=message), np.errstate(invalid="ignore"):
            f.value_and_grad(**{"X": X, "W": W, "y": y, **change})
    with pytest.raises(sg.SymgradError, match="'y'"):
        f.value_and_grad(X=X, W=W)


@pytest.mark.parametrize("text, shapes", [
    ("sum(logsumexp(x, axis=1) * w)", {"x": (4, 3), "w": (4,)}),
    ("sum(logsumexp(x, axis=0) * w)", {"x": (3, 4), "w": (4,)}),
    ("logsumexp(x) * w", {"x": (2, 3, 2), "w": ()}),
    ("sum(logsumexp(x, axis=-1, keepdims=True) * x)", {"x": ("N", 3)}),
    ("sum(logsumexp(x, axis=1) * w)", {"x": (2, 3, 2), "w": (2, 2)}),
])
def test_a_log_sum_exp_takes_its_maximum_once(text, shapes):
    g = sg.graph(text, shapes=shapes)
    f = g.compile()
    forward = function_source(f.source, "forward")
    assert forward.count("np.max(") == 1, forward
    rng = np.random.default_rng(1)
    point = {n: rng.normal(size=tuple(5 if isinstance(d, str) else d for d in s)) * 30 if s else 0.7
             for n, s in shapes.items()}
    t = g.backprop(**point)
    value, grads = f.value_and_grad(**point)
    np.testing.assert_allclose(value, t.value, rtol=1e-13)
    out, cache = f.forward(**point)
    np.testing.assert_allclose(out, t.value, rtol=1e-13)
    for n in g.inputs:
        np.testing.assert_allclose(grads[n], t.grads[n], rtol=1e-11, atol=1e-13)
