"""Tests generated from the op table: every op and derived function, on arrays.

Three oracles: SymPy's derivative of each op's entry-by-entry definition (for
the vector-Jacobian products, symbolically), SymPy's derivative of the whole
graph expanded entry by entry (numerically), and central finite differences
(over random shapes and parameters).
"""

import functools

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad import tracing
from symgrad.composed import COMPOSED
from symgrad.ops import OPS
from symgrad.printing import numpy_code
from symgrad.program import build_program
from symgrad.tensors import explicit, normalize_axes, symbol_array

from .conftest import param_choices

ARRAY_OPS = [op for op in OPS.values() if not op.elementwise]
ELEMENTWISE_OPS = [op for op in OPS.values() if op.elementwise]
SIZES = {"n": 2, "k": 3, "m": 2, "c": 3, "b": 2, "1": 1}


def concrete(pattern, sizes):
    return [tuple(sizes[ch] for ch in p) for p in pattern]


def sample(domain, shape, rng, classes=None):
    if domain.labels:
        return rng.integers(0, classes, size=shape)
    values = rng.uniform(domain.lo, domain.hi, size=shape)
    if domain.signed:
        values = values * rng.choice([-1.0, 1.0], size=shape)
    return values


def build(fn, names, shapes, domains, params):
    dtypes = {n: int for n, d in zip(names, domains) if d.labels}
    traced = {1: lambda a: fn(a, **params), 2: lambda a, b: fn(a, b, **params)}[len(names)]
    return sg.graph(traced, shapes=dict(zip(names, shapes)), dtypes=dtypes)


def function_of(name):
    return COMPOSED[name].function if name in COMPOSED else functools.partial(tracing.apply, name)


def forward(g):
    """The graph's output as a plain function of its inputs (forward assignments compiled once)."""
    program = build_program(g)
    steps = [(a.target.name, compile(numpy_code(a.expr), "<forward>", "eval")) for a in program.forward]

    def f(values):
        env = dict(values)
        for name, code in steps:
            env[name] = eval(code, {"np": np}, env)
        return np.asarray(env[g.output], dtype=float)

    return f


def finite_differences(g, values, dout, eps=1e-6):
    f = forward(g)
    grads = {}
    for name in g.inputs:
        if name in g.labels:
            continue
        x = np.asarray(values[name], dtype=float)
        grad = np.zeros(x.shape)
        for index in np.ndindex(*x.shape):
            up, down = x.copy(), x.copy()
            up[index] += eps
            down[index] -= eps
            grad[index] = np.sum(dout * (f({**values, name: up}) - f({**values, name: down}))) / (2 * eps)
        grads[name] = grad
    return grads


# -- the table is complete ----------------------------------------------------------------


def test_every_array_op_declares_shapes_and_domains():
    for op in ARRAY_OPS:
        assert op.shapes, f"{op.name} has no test shapes"
        assert len(op.domain) == op.arity, f"{op.name} needs one domain per operand"
        assert callable(op.function_class.vjp) and op.numpy is not None
        for pattern in op.shapes:
            assert len(pattern) == op.arity
    for d in COMPOSED.values():
        assert d.shapes and len(d.domain) == d.arity and all(len(p) == d.arity for p in d.shapes)
    names = {op.name for op in OPS.values()}
    assert {"matmul", "transpose", "sum", "mean", "logsumexp", "pick"} <= names
    assert {"softmax", "log_softmax", "norm", "softmax_cross_entropy", "svm_loss",
            "binary_cross_entropy", "l2"} <= set(COMPOSED)


# -- vector-Jacobian products against SymPy, symbolically ---------------------------------------


def vjp_cases():
    for op in ARRAY_OPS:
        for pattern in op.shapes:
            for params in param_choices(op.params, concrete(pattern, SIZES)[0]):
                yield pytest.param(op.name, pattern, params, id=f"{op.name}-{','.join(pattern)}-{params}")


def check_vjp(name, shapes, params, labels_seed=0):
    """Each operand's declared vjp equals Σ_k g_k ∂out_k/∂operand, SymPy differentiating entries."""
    op = OPS[name]
    symbols = [sp.Symbol(f"a{i}", real=True) for i in range(op.arity)]
    rng = np.random.default_rng(labels_seed)
    env = {
        s: sample(d, shape, rng, shapes[0][-1]) if d.labels else symbol_array(f"a{i}", shape)
        for i, (s, d, shape) in enumerate(zip(symbols, op.domain, shapes))
    }
    args = op.param_args(**params)
    if "axis" in op.params:
        i = op.params.index("axis")
        args = args[:i] + (normalize_axes(name, args[i], shapes[0]),) + args[i + 1:]
    expr = op.sympy(*symbols, *args)
    out = explicit(expr, env)
    assert out.shape == expr.array_shape(*shapes)
    g, o = sp.Symbol("g", real=True), sp.Symbol("out", real=True)
    upstream = symbol_array("g", out.shape)
    loss = sp.Add(*np.asarray(upstream * out, dtype=object).flat)
    rules = expr.vjp(g, o, tuple(shapes))
    # an op with a kink (max over an axis) is compared at a point off its kinks: distinct entries
    point = {} if op.kink is None else {
        e: sp.Float(v) for e, v in zip(
            [e for a in [*env.values(), upstream] for e in np.asarray(a, dtype=object).flat],
            rng.permutation(1000)[:10**4] / 100.0 + 0.5)}
    for s, d, rule in zip(symbols, op.domain, rules):
        if d.labels:
            assert rule is None
            continue
        declared = explicit(rule, {**env, g: upstream, o: out})
        assert declared.shape == env[s].shape, f"{name}: gradient shape {declared.shape}"
        for index in np.ndindex(*declared.shape):
            expected = sp.diff(loss, env[s][index])
            difference = sp.simplify((declared[index] - expected).xreplace(point))
            assert difference == 0, (name, index, declared[index], expected)


@pytest.mark.parametrize("name, pattern, params", list(vjp_cases()))
def test_vjp_matches_sympy_at_small_shapes(name, pattern, params):
    check_vjp(name, concrete(pattern, SIZES), params)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_vjp_matches_sympy_at_random_shapes(data):
    op = data.draw(st.sampled_from(ARRAY_OPS), label="op")
    pattern = data.draw(st.sampled_from(op.shapes), label="pattern")
    sizes = {ch: data.draw(st.integers(1, 3), label=ch) for ch in "nkmcb"} | {"1": 1}
    params = data.draw(st.sampled_from(param_choices(op.params, concrete(pattern, sizes)[0])), label="params")
    check_vjp(op.name, concrete(pattern, sizes), params, labels_seed=data.draw(st.integers(0, 99)))


# -- whole graphs against SymPy's derivative of their entry-by-entry expansion -------------------


def oracle_cases():
    for name in [op.name for op in ARRAY_OPS] + list(COMPOSED):
        declared = OPS[name] if name in OPS else COMPOSED[name]
        for pattern in declared.shapes:
            params = param_choices(declared.params, concrete(pattern, SIZES)[0])
            yield pytest.param(name, pattern, params[-1], id=f"{name}-{','.join(pattern)}")
    for op in ELEMENTWISE_OPS:
        yield pytest.param(op.name, ("nm", "m")[: op.arity], {}, id=f"{op.name}-broadcast")


@pytest.mark.parametrize("name, pattern, params", list(oracle_cases()))
def test_graph_matches_sympy_expansion(name, pattern, params):
    declared = OPS[name] if name in OPS else COMPOSED[name]
    shapes = concrete(pattern, SIZES)
    names = ["a", "b"][: len(shapes)]
    g = build(function_of(name), names, shapes, declared.domain, params)
    rng = np.random.default_rng(3)
    values = {n: sample(d, s, rng, shapes[0][-1]) for n, d, s in zip(names, declared.domain, shapes)}
    dout = rng.normal(size=g.shape(g.output))
    t = g.backprop(dout=dout, **values)

    env = {g.symbol(n): values[n] if n in g.labels else symbol_array(n, np.shape(values[n])) for n in names}
    numbers = {env[g.symbol(n)][i]: sp.Float(values[n][i]) for n in names if n not in g.labels
               for i in np.ndindex(*np.shape(values[n]))}
    expanded = explicit(g.expression(), env)
    value = np.vectorize(lambda e: float(sp.sympify(e).xreplace(numbers).evalf()))(expanded)
    np.testing.assert_allclose(t.value, value, rtol=1e-10, atol=1e-12)
    loss = sp.Add(*np.asarray(expanded * dout, dtype=object).flat)
    for n in names:
        if n in g.labels:
            continue
        grad = np.vectorize(lambda e: float(sp.diff(loss, e).xreplace(numbers).evalf()))(env[g.symbol(n)])
        np.testing.assert_allclose(t.grads[n], grad, rtol=1e-9, atol=1e-12)


# -- finite differences over random shapes --------------------------------------------------------


@st.composite
def broadcast_shapes(draw, arity):
    base = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=3)))
    shapes = []
    for _ in range(arity):
        drop = draw(st.integers(0, len(base)))
        shapes.append(tuple(1 if draw(st.booleans()) else n for n in base[drop:]))
    return shapes


@st.composite
def cases(draw):
    name = draw(st.sampled_from([op.name for op in OPS.values()] + list(COMPOSED)), label="op")
    declared = OPS[name] if name in OPS else COMPOSED[name]
    if name in OPS and OPS[name].elementwise:
        shapes = draw(broadcast_shapes(declared.arity), label="shapes")
        params = {}
    else:
        pattern = draw(st.sampled_from(declared.shapes))
        sizes = {ch: draw(st.integers(1, 4)) for ch in "nkmcb"} | {"1": 1}
        shapes = concrete(pattern, sizes)
        params = draw(st.sampled_from(param_choices(declared.params, shapes[0])), label="params")
    return name, declared, shapes, params, draw(st.integers(0, 2**32 - 1), label="seed")


@settings(max_examples=120, deadline=None)
@given(case=cases())
def test_gradients_match_finite_differences(case):
    name, declared, shapes, params, seed = case
    names = ["a", "b"][: len(shapes)]
    g = build(function_of(name), names, shapes, declared.domain, params)
    rng = np.random.default_rng(seed)
    classes = shapes[0][-1] if shapes[0] else None
    values = {n: sample(d, s, rng, classes) for n, d, s in zip(names, declared.domain, shapes)}
    dout = rng.normal(size=g.shape(g.output))
    t = g.backprop(dout=dout, **values)
    numeric = finite_differences(g, values, dout)
    assert set(t.grads) == set(numeric)
    for n, grad in numeric.items():
        assert np.shape(t.grads[n]) == tuple(g.shape(n))
        np.testing.assert_allclose(t.grads[n], grad, rtol=1e-5, atol=1e-6, err_msg=f"{name} ∂/∂{n}")
