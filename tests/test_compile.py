"""Compiled NumPy code against the interpreter (Trace) and SymPy's own diff, over the whole op table."""

from __future__ import annotations

import ast
import inspect
import math
import os
import subprocess
import sys
import traceback

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.check import kink_expressions
from symgrad.cli import main
from symgrad.ops import OPS, REAL, Domain
from symgrad.tracing import apply

from .conftest import elementary

NAMES = ("x", "y", "z")
ELEMENTWISE = sorted(name for name, op in OPS.items() if op.elementwise)

# -- random expressions over the op table ----------------------------------------
#
# A tree is ("in", name) | ("const", c) | (op name, sign, operand trees...).  Each
# operand whose domain is not all reals goes through sigmoid, scaled into the domain
# (times ``sign`` for a signed domain), so every tree can be evaluated anywhere.


def _into(domain: Domain, value, sign: int):
    if domain == REAL:
        return value
    inside = domain.lo + (domain.hi - domain.lo) * sg.sigmoid(value)
    return sign * inside if domain.signed else inside


def build(tree, leaves):
    """The tree applied to ``leaves`` (traced values or SymPy symbols)."""
    kind = tree[0]
    if kind == "in":
        return leaves[tree[1]]
    if kind == "const":
        return tree[1]
    op = OPS[kind]
    args = [_into(d, build(t, leaves), tree[1]) for d, t in zip(op.domain, tree[2:])]
    return apply(kind, *args)


LEAVES = st.one_of(st.sampled_from([("in", n) for n in NAMES]),
                   st.sampled_from([("const", c) for c in (-2, -1, 0.5, 2, 3)]))


@st.composite
def trees(draw, depth: int, root: bool = True):
    """A random expression tree; the root is always an operation."""
    if depth == 0 or (not root and draw(st.booleans())):
        return draw(LEAVES)
    name = draw(st.sampled_from(ELEMENTWISE))
    sign = draw(st.sampled_from([-1, 1]))
    children = [draw(trees(depth - 1, root=False)) for _ in range(OPS[name].arity)]
    return (name, sign, *children)


def uses_input(tree) -> bool:
    return tree[0] == "in" or (tree[0] not in ("in", "const") and any(map(uses_input, tree[2:])))


def graph_of(tree) -> sg.Graph:
    def fn(x, y, z):
        return build(tree, {"x": x, "y": y, "z": z})

    return sg.graph(fn)


points = st.fixed_dictionaries({n: st.floats(-3, 3, allow_nan=False) for n in NAMES})
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def close(a, b, rtol=1e-9):
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=1e-11)


@SETTINGS
@given(trees(3), points)
def test_compiled_equals_trace_on_random_expressions(tree, point):
    assume(uses_input(tree))
    g = graph_of(tree)
    t = g.backprop(**point)
    f = g.compile()
    value, grads = f.value_and_grad(**point)
    assert close(value, t.value)
    assert set(grads) == set(NAMES)
    for n in NAMES:
        assert close(grads[n], t.grads[n]), (n, grads[n], t.grads[n], f.source)
    out, cache = f.forward(**point)
    assert close(out, t.value)
    for n, grad in f.backward(-1.5, cache).items():
        assert close(grad, -1.5 * t.grads[n])


@SETTINGS
@given(trees(3), points)
def test_compiled_equals_sympy_diff_on_random_expressions(tree, point):
    assume(uses_input(tree))
    symbols = {n: sp.Symbol(n, real=True) for n in NAMES}
    expr = elementary(sp.sympify(build(tree, symbols)))
    subs = {symbols[n]: point[n] for n in NAMES}
    g = graph_of(tree)
    values = {g.symbol(n): v for n, v in g.backprop(**point).values.items()}
    kinks = [k.xreplace(values) for n in g.operations for _, k in kink_expressions(g.expr(n))]
    kinks += [k.xreplace(subs) for _, k in kink_expressions(expr)]
    assume(all(abs(float(k)) > 1e-6 for k in kinks))  # no derivative at a kink: conventions differ
    value, grads = g.compile().value_and_grad(**point)
    assert close(value, float(expr.evalf(subs=subs)), rtol=1e-8)
    for n in NAMES:
        expected = float(sp.diff(expr, symbols[n]).evalf(subs=subs))
        assert close(grads[n], expected, rtol=1e-8), (n, grads[n], expected)


@SETTINGS
@given(trees(3), points, st.sampled_from(NAMES))
def test_a_batch_in_one_input_sums_the_other_gradients_over_the_points(tree, point, batched):
    assume(uses_input(tree))
    graph = graph_of(tree)
    f = graph.compile()
    xs = point[batched] + np.array([0.0, 0.25, -0.5, 1.0])
    each = [f.value_and_grad(**{**point, batched: float(x)}) for x in xs]
    for path in (f, graph.compile(xp=np)):  # the NumPy code and the array-API code
        value, grads = path.value_and_grad(**{**point, batched: xs})
        assert close(value, [v for v, _ in each]) and np.shape(value) == (4,)  # also where x - x, or x unused
        for n in NAMES:
            per_point = np.array([float(g[n]) for _, g in each])
            want = np.sum(per_point) if n != batched else per_point
            assert close(grads[n], want) and np.shape(grads[n]) == np.shape(want), (n, f.source)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_every_elementwise_op_compiles_and_matches_trace_and_sympy(name):
    op = OPS[name]
    assert len(op.domain) == op.arity, f"{name} needs one test domain per operand"
    rng = np.random.default_rng(ELEMENTWISE.index(name))
    point = {}
    for n, d in zip("ab", op.domain):
        v = rng.uniform(d.lo, d.hi)
        point[n] = -v if d.signed and rng.random() < 0.5 else v
    g = sg.graph(lambda a, b: apply(name, a, b)) if op.arity == 2 else sg.graph(lambda a: apply(name, a))
    f = g.compile()
    value, grads = f.value_and_grad(**point)
    t = g.backprop(**point)
    symbols = {n: sp.Symbol(n, real=True) for n in point}
    expr = elementary(op.sympy(*symbols.values()))
    subs = {symbols[n]: v for n, v in point.items()}
    assert close(value, t.value) and close(value, float(expr.evalf(subs=subs)))
    for n in point:
        assert close(grads[n], t.grads[n])
        assert close(grads[n], float(sp.diff(expr, symbols[n]).evalf(subs=subs)), rtol=1e-8)
    assert sg.check_grad(f, **point).ok


# -- the lectures' numbers -------------------------------------------------------------


def test_lecture_numbers():
    f = sg.graph("(x + y) * z").compile()
    value, grads = f.value_and_grad(x=-2, y=5, z=-4)
    assert value == -12 and grads == {"x": -4, "y": -4, "z": 3}
    f = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").compile()
    value, grads = f.value_and_grad(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    assert round(value, 4) == 0.7311
    assert {k: round(float(v), 4) for k, v in grads.items()} == {
        "w0": -0.1966, "x0": 0.3932, "w1": -0.3932, "x1": -0.5898, "w2": 0.1966}
    f = sg.graph("max(z, w)").compile()
    out, cache = f.forward(z=2, w=-1)
    assert out == 2 and f.backward(2.0, cache) == {"z": 2, "w": 0}


# -- batches ------------------------------------------------------------------------------

BATCH = "sigmoid(x*y) + log(1 + z**2) * max(x, y) - relu(z - x) / (2 + cos(y))"


def test_a_batch_of_10000_points_equals_pointwise_evaluation():
    f = sg.graph(BATCH).compile()
    rng = np.random.default_rng(0)
    xs, ys, zs = (rng.uniform(-3, 3, 10_000) for _ in range(3))
    value, grads = f.value_and_grad(x=xs, y=ys, z=zs)
    assert value.shape == (10_000,) and all(grads[n].shape == (10_000,) for n in "xyz")
    for i in range(10_000):
        v, g = f.value_and_grad(x=float(xs[i]), y=float(ys[i]), z=float(zs[i]))
        assert close(value[i], v, rtol=1e-12)
        assert all(close(grads[n][i], g[n], rtol=1e-12) for n in "xyz")


def test_broadcast_batches_sum_each_gradient_to_its_input_shape():
    f = sg.graph(BATCH).compile()
    rng = np.random.default_rng(1)
    x, y, z = rng.uniform(-3, 3, (4, 1)), rng.uniform(-3, 3, (1, 5)), 0.7
    value, grads = f.value_and_grad(x=x, y=y, z=z)
    full = {n: np.broadcast_to(v, (4, 5)).copy() for n, v in {"x": x, "y": y, "z": z}.items()}
    each_value, each = f.value_and_grad(**full)
    assert close(value, each_value)
    assert grads["x"].shape == (4, 1) and close(grads["x"], each["x"].sum(axis=1, keepdims=True))
    assert grads["y"].shape == (1, 5) and close(grads["y"], each["y"].sum(axis=0, keepdims=True))
    assert np.shape(grads["z"]) == () and close(grads["z"], each["z"].sum())
    out, cache = f.forward(x=x, y=y, z=z)
    back = f.backward(np.full((4, 5), 2.0), cache)
    assert all(close(back[n], 2 * grads[n]) for n in "xyz")


@pytest.mark.parametrize("path", ["compiled", "module", "xp", "numba"])
@pytest.mark.parametrize("text, point, value, grads", [
    ("x + 0*y", {"x": 2.0, "y": np.ones(5)}, np.full(5, 2.0), {"x": 5.0, "y": np.zeros(5)}),
    ("(c - c) - 2", {"c": np.ones(5)}, np.full(5, -2.0), {"c": np.zeros(5)}),
    ("x*y + 0*z", {"x": 2.0, "y": np.ones(3), "z": np.ones((2, 1))}, np.full((2, 3), 2.0),
     {"x": 6.0, "y": np.full(3, 4.0), "z": np.zeros((2, 1))}),
    ("exp(x) - exp(x) + y", {"x": np.zeros(4), "y": 1.5}, np.full(4, 1.5), {"x": np.zeros(4), "y": 4.0}),
])
def test_a_batch_the_output_does_not_read_has_one_output_for_each_point(text, point, value, grads, path):
    """The output of x + 0*y at a batch of y is x at each point, so the gradient of the sum of
    the outputs in x is the number of points: SymPy's simplification does not change the batch."""
    if path == "numba":
        pytest.importorskip("numba")
    g = sg.graph(text)
    f = g.compile(xp=np) if path == "xp" else g.compile(backend="numba") if path == "numba" else g.compile()
    calls, args, kwargs = (f.module, point.values(), {}) if path == "module" else (f, (), point)
    got, got_grads = calls.value_and_grad(*args, **kwargs)
    out, cache = calls.forward(*args, **kwargs)
    back = calls.backward(np.ones(np.shape(value)), cache)
    for v in (got, out) if path == "module" else (got, out, f(**point)):
        assert np.shape(v) == np.shape(value) and close(v, value)
    for each in (got_grads, back):
        assert all(np.shape(each[n]) == np.shape(want) and close(each[n], want) for n, want in grads.items())


def test_batch_gradients_of_inputs_whose_paths_miss_the_batch():
    f = sg.graph("x * y + exp(z) + w").compile()
    xs = np.linspace(-1, 1, 5)
    value, grads = f.value_and_grad(x=xs, y=2.0, z=0.5, w=1.0)
    assert close(grads["z"], 5 * np.exp(0.5)) and close(grads["w"], 5.0) and close(grads["y"], xs.sum())
    out, cache = f.forward(x=xs, y=2.0, z=0.5, w=1.0)
    back = f.backward(3.0, cache)  # a scalar dout counts once for each point
    assert close(back["z"], 15 * np.exp(0.5)) and close(back["w"], 15.0) and back["x"].shape == (5,)
    back["x"][0] = 0.0  # gradients are the caller's arrays


@pytest.mark.parametrize("text, shapes", [
    ("x * y", {"x": (6,), "y": (6,)}),  # each gradient is the other input
    ("exp(x) + y", {"x": (6,), "y": (6,)}),  # the gradient of x is the value's own term, y's a 1
    ("x + y", {"x": (4, 1), "y": (1, 5)}),  # constant gradients stretched by the other input
    ("x * x + y * 2", {"x": (6,), "y": ()}),
    ("exp(x)", {"x": (6,)}),  # the gradient is the value itself
    ("1/(1+exp(-(w*x+b)))", {"w": (6,), "x": (6,), "b": (6,)}),
])
@pytest.mark.parametrize("fused", [False, True])
def test_batch_gradients_are_new_arrays_equal_to_backward_with_a_dout_of_ones(text, shapes, fused):
    g = sg.graph(text)
    f = (g.fuse_stable() if fused else g).compile()
    rng = np.random.default_rng(2)
    point = {n: rng.uniform(-2, 2, shapes[n]) if shapes[n] else 0.3 for n in g.inputs}
    kept = {n: np.copy(v) for n, v in point.items()}
    value, grads = f.value_and_grad(**point)
    out, cache = f.forward(**point)
    back = f.backward(np.ones(np.shape(out)), cache)
    assert close(value, out)
    for n in g.inputs:
        assert np.shape(grads[n]) == np.shape(point[n]) and close(grads[n], back[n], rtol=1e-13)
    arrays = [value, *point.values(), *(grads[n] for n in g.inputs)]
    for n in g.inputs:
        if np.ndim(grads[n]):
            assert grads[n].flags.writeable and grads[n].dtype == np.float64
            assert not any(np.shares_memory(grads[n], a) for a in arrays if a is not grads[n])
            grads[n][...] = 7.0  # the caller's own arrays: nothing else changes
    assert all(np.array_equal(point[n], kept[n]) for n in point) and close(value, out)
    assert sg.check_grad(f.value_and_grad, point).ok  # against central differences


@pytest.mark.parametrize("fn", [lambda x, y: x * 3, lambda x, y: x * 3 + (y - y)])
def test_batch_of_an_input_the_output_does_not_show(fn):
    """Four points (x, y_i): four outputs 3x, and x's gradient of their sum is 4·3."""
    f = sg.graph(fn).compile()
    value, grads = f.value_and_grad(x=2.0, y=np.ones(4))
    assert np.array_equal(value, np.full(4, 6.0)) and grads["x"] == 12
    assert np.array_equal(grads["y"], np.zeros(4))


def test_array_shaped_graph_takes_declared_shapes_and_sums_broadcast_gradients():
    g = sg.graph("x * y + sin(x)", shapes={"x": (3,)})
    f = g.compile()
    value, grads = f.value_and_grad(x=[1.0, 2.0, 3.0], y=2)
    t = g.backprop(x=[1.0, 2.0, 3.0], y=2)
    assert close(value, t.value) and close(grads["x"], t.grads["x"]) and close(grads["y"], t.grads["y"])
    assert np.shape(grads["y"]) == () and grads["x"].shape == (3,)
    with pytest.raises(sg.ShapeError, match="'x' has shape"):
        f.value_and_grad(x=[1.0, 2.0], y=2)


# -- the generated text -----------------------------------------------------------------


def assigned_and_read(fn: ast.FunctionDef) -> tuple[list[str], set[str]]:
    stores = [t.id for node in ast.walk(fn) if isinstance(node, ast.Assign)
              for t in ast.walk(node.targets[0]) if isinstance(t, ast.Name)]
    loads = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return stores, loads


@pytest.mark.parametrize("text, wrt", [
    ("1/(1+exp(-(w0*x0+w1*x1+w2)))", None),
    ("x*y + exp(z) * log(w)", ["x"]),
    ("x*y*z*w + exp(x*y*z)", None),
])
def test_generated_code_has_node_names_no_dead_code_and_only_wrt_gradients(text, wrt):
    g = sg.graph(text, granularity="nary")
    f = g.compile(wrt=wrt)
    tree = ast.parse(f.source)
    assert [type(s).__name__ for s in tree.body[:2]] == ["Expr", "Import"]  # header, then numpy
    assert ast.unparse(tree.body[1]) == "import numpy as np"
    functions = {s.name: s for s in tree.body if isinstance(s, ast.FunctionDef)}
    assert {"forward", "backward", "value_and_grad"} <= set(functions)
    for name in ("forward", "backward", "value_and_grad"):
        stores, loads = assigned_and_read(functions[name])
        returned = {n.id for r in ast.walk(functions[name]) if isinstance(r, ast.Return)
                    for n in ast.walk(r) if isinstance(n, ast.Name)}
        assert len(stores) == len(set(stores)), "single assignment"
        dead = [s for s in stores if s not in loads | returned]
        assert not dead, f"{name} assigns {dead} and never reads them"
    stores, _ = assigned_and_read(functions["forward"])
    assert stores == g.operations  # one line per node, named after it
    backward = functions["backward"]
    adjoints = [s.targets[0].id for s in backward.body
                if isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name)]
    assert set(adjoints) == {a.target.name for a in f.program.backward} | {
        s for s in adjoints if s.startswith("_c")}
    wanted = set(wrt or g.inputs)
    assert set(f.value_and_grad(**{n: 0.5 for n in g.inputs})[1]) == wanted
    for n in set(g.inputs) - wanted:
        assert f"d{n}" not in adjoints


def test_common_subexpressions_are_shared():
    f = sg.graph("x*y*z*w + exp(x*y*z)", granularity="nary").compile()
    assert "_c1 = " in f.source
    t = f.graph.backprop(x=1.5, y=-2.0, z=0.5, w=3.0)
    grads = f.value_and_grad(x=1.5, y=-2.0, z=0.5, w=3.0)[1]
    assert all(close(grads[n], t.grads[n]) for n in "xyzw")


def test_backward_reads_the_cache_and_does_not_recompute_the_forward_pass():
    f = sg.graph("exp(x) * sigmoid(y)").compile()
    forward = ast.parse(inspect.getsource(f.module.forward)).body[0]
    computed = {ast.unparse(a.value) for a in ast.walk(forward) if isinstance(a, ast.Assign)}
    backward = ast.parse(inspect.getsource(f.module.backward)).body[0]
    calls = {ast.unparse(c) for c in ast.walk(backward) if isinstance(c, ast.Call)}
    assert "np.exp(x)" in computed and not computed & calls  # exp' = exp is read from the cache
    # the sigmoid's derivative σ(y)·σ(−y) keeps its precision where σ(y) rounds to 1
    assert "np.exp(-np.abs(-y))" in calls
    out, cache = f.forward(x=0.3, y=-0.2)
    assert any(np.isclose(np.exp(0.3), v) for v in cache)


def test_tracebacks_and_inspect_show_the_generated_lines():
    f = sg.graph("(x + y) * z").compile()
    assert "q1 = x + y" in inspect.getsource(f.module.forward)
    try:
        f.module.forward(np.ones(2), np.ones(3), 1.0)
    except ValueError:
        text = traceback.format_exc()
    assert "_points((x, y, z), ('x', 'y', 'z'))" in text and f.module.__file__ in text


def test_float_arithmetic_errors_name_the_generated_line():
    f = sg.graph("1/x + y").compile()
    with pytest.raises(sg.EvaluationError, match="q1 = 1/x"):
        f.value_and_grad(x=0.0, y=1.0)
    with np.errstate(divide="ignore"):
        assert f(x=np.zeros(2), y=1.0)[0] == np.inf  # arrays follow NumPy's rules


def test_negative_base_with_fractional_power_is_not_complex():
    f = sg.graph("x ** y").compile()
    with np.errstate(invalid="ignore"):
        value = f(x=-8.0, y=1 / 3)
    assert np.isnan(value) and not isinstance(value, complex)


@pytest.mark.parametrize("call, error, message", [
    (lambda f: f(x=1.0), sg.InputError, "missing value for input 'y'"),
    (lambda f: f(x=1.0, y=2.0, w=3.0), sg.InputError, "unknown input 'w'"),
    (lambda f: f.value_and_grad(x="1", y=2.0), sg.InputError, "'x' must be a number"),
    (lambda f: f.forward(x=float("nan"), y=2.0), sg.InputError, "'x' is not finite"),
    (lambda f: f.value_and_grad(x=[1, 2], y=[1, 2, 3]), sg.ShapeError, r"x \(2,\), y \(3,\)"),
    (lambda f: f.value_and_grad(x=True, y=1.0), sg.InputError, "'x' must be a number"),
])
def test_bad_inputs_get_symgrad_errors(call, error, message):
    f = sg.graph("x * y").compile()
    with pytest.raises(error, match=message):
        call(f)


def test_wrt_must_name_inputs():
    with pytest.raises(sg.SymgradError, match="'q': the inputs are x, y"):
        sg.graph("x * y").compile(wrt=["q"])


def test_nodes_alike_up_to_a_constant_get_their_own_derivatives():
    g = sg.graph("(x + 1) * (x + y) + 0.5 * x + x / 2")  # x + 1 and x + y; 0.5 and 1/2
    assert set(g.local_derivatives("q2")) == {"x", "y"}
    t = g.backprop(x=0.3, y=-1.2)
    assert t.grads == pytest.approx({"x": 2 * 0.3 + 1 - 1.2 + 1.0, "y": 1.3})
    value, grads = g.compile().value_and_grad(x=0.3, y=-1.2)
    assert close(grads["x"], t.grads["x"]) and close(grads["y"], t.grads["y"])


@pytest.mark.parametrize("count", [3, 40, 1500])
def test_many_inputs(count):
    names = [f"x{i}" for i in range(count)]
    g = sg.graph(" + ".join(f"{n}*{n}" for n in names) if count < 100 else
                 sp.Add(*(sp.Symbol(n, real=True) ** 2 for n in names)))
    f = g.compile()
    point = {n: float(i) for i, n in enumerate(names)}
    value, grads = f.value_and_grad(**point)
    assert value == sum(i * i for i in range(count)) and grads["x2"] == 4.0
    with pytest.raises(sg.InputError, match="'x1' is not finite"):
        f.value_and_grad(**{**point, "x1": float("inf")})
    with pytest.raises(sg.InputError, match="missing value for input 'x0'"):
        f(**{n: v for n, v in point.items() if n != "x0"})


def test_graphs_without_operations_or_inputs():
    f = sg.graph("x").compile()
    assert f.value_and_grad(x=2.0) == (2.0, {"x": 1.0})
    f = sg.graph(lambda x: 3).compile()
    assert f.value_and_grad(x=2.0)[1] == {"x": 0.0}


@pytest.mark.parametrize("text, want", [("1", 1.0), ("2", 2.0), ("x - x + 1", 1.0)])
def test_a_constant_output_is_a_float(text, want):
    g = sg.graph(text)
    f = g.compile()
    point = {n: 3.0 for n in g.inputs}
    for value in (f(**point), f.forward(**point)[0], f.value_and_grad(**point)[0],
                  f.module.value_and_grad(*point.values())[0]):
        assert value.__class__ is float and value == want
    xp = g.compile(xp=np)  # the array-API code: a number, as its other outputs at floats are
    for value in (xp(**point), xp.value_and_grad(**point)[0]):
        assert isinstance(value, (float, np.floating)) and value == want


# -- standalone modules and the command line --------------------------------------------------


def run_without_symgrad(tmp_path, code: str) -> str:
    """Run ``code`` in a fresh Python that can import NumPy but not symgrad."""
    numpy_home = os.path.dirname(os.path.dirname(np.__file__))
    env = {"PYTHONPATH": numpy_home, "PATH": os.environ.get("PATH", "")}
    prelude = ("import importlib.util, sys\n"
               "assert importlib.util.find_spec('symgrad') is None, 'symgrad is importable'\n")
    done = subprocess.run([sys.executable, "-S", "-c", prelude + code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_forward_backward_and_the_module_text_are_written_when_first_asked_for():
    g = sg.graph("sigmoid(w*x + b) * x", shapes={"x": ("N",)})
    point = {"w": 0.5, "x": np.array([1.0, -2.0, 3.0]), "b": 0.25}
    f = g.compile()
    value, grads = f.value_and_grad(**point)
    assert not {"_split", "source", "_cached_dims"} & set(vars(f))  # value_and_grad needs none of them
    out, cache = f.forward(**point)
    assert "_split" in vars(f) and "source" not in vars(f)
    assert out == pytest.approx(value)
    for n, grad in f.backward(np.ones(3), cache).items():
        assert grad == pytest.approx(grads[n])
    assert f.source == sg.codegen(g) and f.__doc__.endswith(f.source)
    assert sg.Compiled.__doc__.startswith("A graph's generated NumPy code")  # the class keeps its own


def test_codegen_module_runs_with_numpy_alone(tmp_path):
    g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))")
    text = sg.codegen(g, tmp_path / "grads.py")
    assert (tmp_path / "grads.py").read_text() == text == g.compile().source
    assert "1/(1+exp(-(w0*x0+w1*x1+w2)))" in text.splitlines()[0]
    assert "Inputs:    w0, x0, w1, x1, w2" in text
    imports = [n for n in ast.walk(ast.parse(text)) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(n) for n in imports] == ["import numpy as np"]
    out = run_without_symgrad(tmp_path, (
        "import numpy as np, grads\n"
        "value, g = grads.value_and_grad(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)\n"
        "out, cache = grads.forward(2.0, -1.0, -3.0, -2.0, -3.0)\n"
        "back = grads.backward(1.0, cache)\n"
        "batch, bg = grads.value_and_grad(np.full(5, 2.0), -1.0, -3.0, -2.0, -3.0)\n"
        "print(round(value, 4), round(out, 4), back == g, batch.shape, bg['w0'].shape,\n"
        "      float(np.round(bg['x0'], 4)), {k: round(float(v), 4) for k, v in g.items()})\n"))
    assert out.split(" ", 5)[:5] == ["0.7311", "0.7311", "True", "(5,)", "(5,)"]
    assert "1.9661" in out and "'x1': -0.5898" in out and "'w2': 0.1966" in out


def test_cli_codegen_writes_and_prints(tmp_path, capsys):
    path = tmp_path / "grads.py"
    assert main(["codegen", "(x + y) * z", "-o", str(path), "--wrt", "x,z"]) == 0
    assert "wrote" in capsys.readouterr().out
    out = run_without_symgrad(tmp_path, "import grads\nprint(grads.value_and_grad(-2.0, 5.0, -4.0))\n")
    assert out.strip() == "(-12.0, {'x': -4.0, 'z': 3.0})"
    assert main(["codegen", "x * y"]) == 0
    assert "def value_and_grad(x, y):" in capsys.readouterr().out
    assert main(["codegen", "x * y", "--wrt", "q"]) == 2
    assert "'q'" in capsys.readouterr().err


def test_each_generated_function_is_compiled_the_first_time_it_is_used():
    f = sg.graph("sigmoid(x*y) + log(1 + y*y)").compile()
    lazy = ("module", "value_and_grad", "forward", "_value", "_unchecked_value")
    assert not any(name in vars(f) for name in lazy)  # compile wrote the text; nothing ran yet
    value, grads = f.value_and_grad(x=0.5, y=-2.0)
    assert [name for name in lazy if name in vars(f)] == ["value_and_grad"]
    assert f.value_and_grad is f.value_and_grad  # compiled once
    s = 1 / (1 + math.exp(1.0))
    assert value == pytest.approx(s + math.log(5.0), rel=1e-14)
    assert grads["x"] == pytest.approx(s * (1 - s) * -2.0, rel=1e-14)
    assert grads["y"] == pytest.approx(s * (1 - s) * 0.5 - 4.0 / 5.0, rel=1e-14)
    out, cache = f.forward(x=0.5, y=-2.0)
    assert out == value and f(x=0.5, y=-2.0) == value
    assert f.backward(1.0, cache) == pytest.approx(grads, rel=1e-15)
    positional = f.module.value_and_grad(0.5, -2.0)  # the module, compiled by backward's use
    assert positional == (pytest.approx(value, rel=1e-15), pytest.approx(grads, rel=1e-15))


def test_an_op_of_inexact_constants_is_its_value_so_a_hidden_zero_is_zero():
    # relu of a negative constant written with e: the exponent below is exactly 0, a form
    # SymPy's evaluation never settled (building the graph's derivatives hung)
    c = -1.5 + 3 * sg.sigmoid(sg.relu(0.5 / (-(0.25 + 2.75 * sg.sigmoid(-1)))))
    assert c == 0
    assert sg.relu(0.5 / (1 + sp.E)) == pytest.approx(0.5 / (1 + math.e), rel=1e-15)
    assert sg.sigmoid(-1) == 1 / (1 + sp.E)  # exact constants keep their form
    g = sg.graph(lambda x: (0.25 + 2.75 * sg.sigmoid(x)) ** (x + c))
    value, grads = g.compile().value_and_grad(x=0.3)
    s = 1 / (1 + math.exp(-0.3))
    base = 0.25 + 2.75 * s
    assert value == pytest.approx(base ** 0.3, rel=1e-12)
    slope = base ** 0.3 * (math.log(base) + 0.3 * 2.75 * s * (1 - s) / base)
    assert grads["x"] == pytest.approx(slope, rel=1e-12)


@pytest.mark.parametrize("text", ["x**(-2)", "x**(-3)*y", "y/x**4", "0.5/(y + x**2)**2", "x**3/y"])
def test_negative_and_small_integer_powers_against_sympy(text):
    """x**(-2) differentiates to -2/x**3, whose x**3 is printed as a product: (x*x*x)."""
    g = sg.graph(text)
    point = {n: {"x": 1.7, "y": -0.6}[n] for n in g.inputs}
    expr = g.expression()
    subs = {s: point[s.name] for s in expr.free_symbols}
    want = {n: float(sp.diff(expr, sp.Symbol(n, real=True)).evalf(subs=subs)) for n in g.inputs}
    f = g.compile()
    paths = [g.backprop(**{n: point[n] for n in g.inputs}).grads, f.value_and_grad(**point)[1],
             f.module.value_and_grad(*(point[n] for n in g.inputs))[1],
             g.compile(xp=np).value_and_grad(**point)[1]]
    for grads in paths:
        assert all(close(float(grads[n]), want[n], rtol=1e-12) for n in g.inputs), (grads, want)
