"""NumPy spelled naturally inside ``sg.graph(callable)``, tested over the op table.

For every op with a NumPy spelling, tracing the NumPy spelling records the
same graph as symgrad's function, and its gradients equal finite differences
of the very same callable run by NumPy on arrays (the oracle).
"""

import math

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.ops import OPS
from symgrad.tracing import NOT_IN_NUMPY, NUMPY_FUNCTIONS, NUMPY_GATES, NUMPY_UFUNCS, apply

from .conftest import central_differences as finite_differences
from .conftest import param_choices
from .test_op_table import sample

SPELLINGS: dict[str, list] = {}
for fn, name in [*NUMPY_UFUNCS.items(), *NUMPY_FUNCTIONS.items()]:
    SPELLINGS.setdefault(name, []).append(fn)
SPELLINGS["permute_dims"] = [np.transpose]  # np.transpose(x, axes)
METHODS = {  # spellings as methods and operators of an array
    "sum": [lambda a, **k: a.sum(**k)], "mean": [lambda a, **k: a.mean(**k)],
    "transpose": [lambda a: a.T, lambda a: a.transpose()],
    "matmul": [lambda a, b: a @ b, lambda a, b: a.dot(b)],
}
SIZES = {"n": 2, "k": 3, "m": 4, "c": 3, "b": 2, "1": 1}
ELEMENTWISE_SHAPES = {1: [((),), ((3,),), ((2, 3),)],
                      2: [((), ()), ((3,), (3,)), ((2, 3), (3,)), ((), (3,))]}


def _shape_cases(op):
    if op.elementwise:
        return [(shapes, {}) for shapes in ELEMENTWISE_SHAPES[op.arity]]
    cases = []
    for letters in op.shapes:
        shapes = tuple(tuple(SIZES[c] for c in word) for word in letters)
        if "shape" in op.params or "axes" in op.params:
            cases.append((shapes, param_choices(op.params, shapes[0])[0]))
            continue
        if "axis" not in op.params:
            cases.append((shapes, {}))
            continue
        ndim = len(shapes[0])
        for axis in [None, 0, -1, (0, 1)][: 4 if ndim >= 2 else 3]:
            for keepdims in (False, True):
                cases.append((shapes, {"axis": axis, "keepdims": keepdims} if keepdims else {"axis": axis}))
    return cases


def _name(fn) -> str:
    return getattr(fn, "__name__", None) or "method"


CASES = [
    pytest.param(name, fn, shapes, params,
                 id=f"{name}-{_name(fn) if fn in SPELLINGS.get(name, []) else 'method' + str(i)}-"
                    f"{'x'.join(map(str, shapes))}-{params}")
    for name in sorted(SPELLINGS)
    for i, fn in enumerate(SPELLINGS[name] + METHODS.get(name, []))
    for shapes, params in _shape_cases(OPS[name])
    if not (fn in (np.dot, METHODS["matmul"][1]) and max(map(len, shapes)) > 2)  # np.dot is not matmul there
]


def _point(op, shapes, rng):
    """A point inside the op's domain, away from any kink (random entries of a reduction do not tie)."""
    names = "abcd"[: op.arity]
    for _ in range(100):
        point = {n: np.vectorize(lambda _, d=d: sample(d, rng))(np.zeros(s)) for n, d, s in
                 zip(names, op.domain, shapes)}
        if op.kink is None or op.params or \
                np.min(np.abs(op.kink(*np.broadcast_arrays(*point.values())))) > 1e-2:
            return point
    raise AssertionError("no point away from the kink")


def _callables(arity, fn, params):
    if arity == 1:
        return lambda a: fn(a, **params)
    return lambda a, b: fn(a, b, **params)


@pytest.mark.parametrize("name, fn, shapes, params", CASES)
def test_numpy_spelling_records_the_op_and_its_gradient_matches_finite_differences(name, fn, shapes, params):
    op = OPS[name]
    names = "abcd"[: op.arity]
    declared = dict(zip(names, shapes))
    traced = sg.graph(_callables(op.arity, fn, params), shapes=declared)
    reference = sg.graph(_callables(op.arity, lambda *a, **k: apply(name, *a, **k), params), shapes=declared)
    assert str(traced) == str(reference)
    assert traced.expression() == reference.expression()

    rng = np.random.default_rng(sorted(OPS).index(name))
    point = _point(op, shapes, rng)
    numpy_value = np.asarray(fn(*point.values(), **params))  # the callable, run by NumPy
    dout = rng.uniform(0.5, 1.5, numpy_value.shape)
    t = traced.backprop(dout=dout, **point)
    np.testing.assert_allclose(t.value, numpy_value, rtol=1e-12)
    assert t.grads.keys() == reference.backprop(dout=dout, **point).grads.keys()
    numeric = finite_differences(lambda **p: float(np.sum(fn(*p.values(), **params) * dout)), point)
    for n in names:
        assert np.shape(t.grads[n]) == shapes[names.index(n)]
        np.testing.assert_allclose(t.grads[n], numeric[n], rtol=1e-5, atol=1e-7, err_msg=f"{name}: {n}")


def test_every_op_has_a_numpy_spelling_or_names_the_symgrad_one():
    for name in OPS:
        assert (name in SPELLINGS) != (name in NOT_IN_NUMPY), name
        if name in NOT_IN_NUMPY:
            assert NOT_IN_NUMPY[name].startswith(f"sg.{name}("), name
            assert callable(getattr(sg, name))


@pytest.mark.parametrize("ufunc, written", [
    (np.negative, lambda a: -a), (np.positive, lambda a: a),
    (np.square, lambda a: a**2), (np.reciprocal, lambda a: 1 / a),
], ids=lambda v: getattr(v, "__name__", ""))
@pytest.mark.parametrize("shape", [(), (3,)])
def test_numpy_gates_are_the_lecture_gates(ufunc, written, shape):
    assert ufunc in NUMPY_GATES
    g = sg.graph(lambda a: ufunc(a), shapes={"a": shape})
    assert str(g) == str(sg.graph(written, shapes={"a": shape}))
    point = {"a": np.full(shape, 1.7)}
    t = g.backprop(**point)
    numeric = finite_differences(lambda a: float(np.sum(ufunc(a))), point)
    np.testing.assert_allclose(t.grads["a"], numeric["a"], rtol=1e-6)


def test_a_two_layer_net_in_numpy_matches_finite_differences_of_itself():
    def loss(X, W1, b1, W2):
        h = np.maximum(X @ W1 + b1, 0)
        return np.mean(np.logaddexp(0, -np.tanh(h @ W2)).sum(axis=1)) + 0.1 * np.sum(np.square(W1))

    shapes = {"X": (4, 3), "W1": (3, 5), "b1": (5,), "W2": (5, 2)}
    rng = np.random.default_rng(1)
    point = {n: rng.standard_normal(s) for n, s in shapes.items()}
    t = sg.graph(loss, shapes=shapes).backprop(**point)
    assert t.value == pytest.approx(loss(**point), rel=1e-12)
    numeric = finite_differences(loss, point)
    for n in shapes:
        np.testing.assert_allclose(t.grads[n], numeric[n], rtol=1e-5, atol=1e-8)


def test_numpy_scalars_and_dot_with_a_scalar():
    g = sg.graph(lambda x: np.float64(2.0) * x + x * np.int64(3) + np.dot(2, x) + np.exp(np.float64(0.0)))
    assert str(g) == str(sg.graph(lambda x: 2.0 * x + x * 3 + 2 * x + 1.0))
    assert g.backprop(x=1.5).grads["x"] == pytest.approx(7.0)
    g = sg.graph(lambda x: x.shape[0] * np.mean(x) + x.ndim, shapes={"x": (4,)})
    assert g.backprop(x=np.arange(4.0)).value == pytest.approx(7.0)
    g = sg.graph(lambda x: np.sum(x) / len(x) + np.shape(x)[1] * np.ndim(x), shapes={"x": (2, 3)})
    assert g.backprop(x=np.ones((2, 3))).value == pytest.approx(9.0)
    with pytest.raises(sg.TracingError, match="len"):
        sg.graph(lambda x: len(x))


def test_np_dot_of_stacks_is_refused_for_matmul():
    with pytest.raises(sg.TracingError, match="a @ b"):
        sg.graph(lambda a, b: np.dot(a, b), shapes={"a": (2, 2, 3), "b": (2, 3, 4)})


def test_np_linalg_norm_is_the_norm():
    g = sg.graph(lambda x: np.linalg.norm(x), shapes={"x": (2,)})
    assert g.expression() == sg.graph("norm(x)", shapes={"x": (2,)}).expression()
    t = g.backprop(x=[3.0, 4.0])
    assert t.value == pytest.approx(5.0)
    np.testing.assert_allclose(t.grads["x"], [0.6, 0.8])


@pytest.mark.parametrize("f, words", [
    (lambda x: np.arctan(x), ["np.arctan has no symgrad operation", "np.exp", "np.maximum", "sg.sigmoid(x)"]),
    (lambda x: np.log1p(x), ["np.log1p", "np.log(1 + x)"]),
    (lambda x: np.max(x, initial=0), ["np.max(..., initial=...)"]),
    (lambda x: np.where(x, x, 0), ["np.where", "np.maximum"]),
    (lambda x: np.greater(x, 0), ["np.greater", "np.maximum", "comparisons cannot be traced"]),
    (lambda x: np.clip(x, 0, 1), ["np.minimum(np.maximum(x, lo), hi)"]),
    (lambda x: x[0], ["indexing", "sg.pick(s, y)"]),
    (lambda x: np.exp(x, out=np.empty(3)), ["np.exp(..., out=...)"]),
    (lambda x: np.sum(x, dtype=np.float32), ["np.sum(..., dtype=...)", "axis=, keepdims="]),
    (lambda x: x.mean(out=np.empty(())), ["np.mean(..., out=...)"]),
    (lambda x: np.reshape(x, (3,), order="F"), ["np.reshape(..., order=...)"]),
    (lambda x: np.add.reduce(x), ["np.add.reduce", "np.sum(x, axis=...)"]),
    (lambda x: np.linalg.norm(x, axis=0), ["np.linalg.norm(x)", "np.sqrt(np.sum(x**2, axis=k))"]),
    (lambda x: np.ones(3) * x, ["NumPy array of shape (3,)", "make it an input"]),
    (lambda x: math.exp(x), ["np.exp(x) or sg.exp(x)"]),
])
def test_what_numpy_spelling_cannot_be_traced_names_the_one_to_use(f, words):
    with pytest.raises(sg.TracingError) as e:
        sg.graph(f, shapes={"x": (3,)})
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_sympy_numbers_on_the_left_of_a_traced_value_are_constants_as_on_the_right():
    x_, y_ = sp.symbols("x y", real=True)
    want = 2 + x_ * (sp.Rational(1, 2) - y_) + sp.E ** x_ + sp.Float(0.5) / y_
    g = sg.graph(lambda x, y: sp.Integer(2) + x * (sp.Rational(1, 2) - y) + sp.E ** x + sp.Float(0.5) / y)
    point = {"x": 0.3, "y": 2.0}
    t = g.backprop(**point)
    at = {x_: 0.3, y_: 2.0}
    assert t.value == pytest.approx(float(want.subs(at)), rel=1e-14)
    for n, s in (("x", x_), ("y", y_)):
        assert t.grads[n] == pytest.approx(float(sp.diff(want, s).subs(at)), rel=1e-14)
    with pytest.raises(sg.TracingError, match="no number yet"):
        sg.graph(lambda x: float(x))  # a number of a traced value is still refused by name
