"""g.compile(backend="numba"): the same numbers, checks and errors as the NumPy backend, for every op."""

from __future__ import annotations

import builtins
import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad import numba_backend, tracing
from symgrad.ops import OPS

from .test_compile_tensors import CASES, sample
from .test_property import expressions

pytest.importorskip("numba")
pytest.importorskip("scipy")

ARRAY_OPS = sorted({name for name, _, _ in CASES})
ELEMENTWISE = [name for name, op in OPS.items() if op.elementwise and 0 < op.arity <= 2]


def close(a, b, rtol=1e-12):
    return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=rtol, atol=1e-14, equal_nan=True)


def same_as_numpy(g, point, wrt=None, entries=("value_and_grad",)):
    """The Numba backend's ``entries`` against the NumPy backend's, at ``point`` (each entry
    point is a function of its own for Numba to compile, which takes seconds)."""
    f, f0 = g.compile(wrt, backend="numba"), g.compile(wrt)
    value0, grads0 = f0.value_and_grad(**point)
    if "value_and_grad" in entries:
        value, grads = f.value_and_grad(**point)
        assert close(value, value0) and grads.keys() == grads0.keys()
        assert all(close(grads[n], grads0[n]) for n in grads0), {n: (grads[n], grads0[n]) for n in grads0}
    if "forward" in entries:
        out, cache = f.forward(**point)
        dout = np.random.default_rng(1).normal(size=np.shape(out)) if np.ndim(out) else 0.5
        back, back0 = f.backward(dout, cache), f0.backward(dout, f0.forward(**point)[1])
        assert close(out, value0) and all(close(back[n], back0[n]) for n in back0)
    if "value" in entries:
        assert close(f(**point), value0)
    return f


def combined(cases, rng, scalars=False):
    """One graph of every case (op, shapes, parameters) on inputs of its own: the sum of
    sum(sin(op(...))) over them, so a wrong value or gradient of any case shows; one compile.
    With ``scalars``, a graph of scalars with no sum, and the point a batch of the cases' shapes."""
    shapes, dtypes, point, terms = {}, {}, {}, []
    for i, (name, case_shapes, params) in enumerate(cases):
        op = OPS[name]
        names = [f"{v}{i}" for v in "ab"[:op.arity]]
        for n, shape, domain, value in zip(names, case_shapes, op.domain, sample(op, case_shapes, rng)):
            shapes[n], point[n] = shape, value
            if domain.labels:
                dtypes[n] = int
        terms.append((name, names, params))

    def body(*args):
        values = dict(zip(shapes, args))
        total = 0.0
        for name, names, params in terms:
            applied = tracing.apply(name, *map(values.get, names), **params)
            total = total + (tracing.sin(applied) if scalars else tracing.apply("sum", tracing.sin(applied)))
        return total

    params = ", ".join(shapes)
    namespace = {"body": body}
    exec(f"def combined({params}):\n    return body({params})", namespace)
    shapes = {n: () for n in shapes} if scalars else shapes
    return sg.graph(namespace["combined"], shapes=shapes, dtypes=dtypes), point


def test_every_numba_spelling_of_the_op_table_replaces_its_numpy_spelling():
    respelled = [op for op in OPS.values() if op.numba is not None]
    assert [op.name for op in respelled] == ["pick"]
    text = numba_backend.body_source("value", "s, y", [
        "q1 = np.exp(s[np.arange(y.shape[0]), y])[:, None]",  # inside other code, kept dimension
        "q2 = (s*2)[np.arange(y.shape[0]), y]",
        "q3 = s[np.arange(y.shape[0]), s]",  # not a pick: the operands differ
        "return q1"])
    assert "q1 = np.exp(_pick(s, y))[:, None]" in text and "q2 = _pick(s * 2, y)" in text
    assert "q3 = s[np.arange(y.shape[0]), s]" in text


def hardest(name):
    """The op's case of highest rank, reducing over an axis other than the first where it takes one:
    what the Numba backend rewrites the most (Numba compiling all of the op table's cases takes
    minutes; reductions of vectors and batched products have tests of their own below)."""
    cases = [c for c in CASES if c[0] == name and (name != "matmul" or max(map(len, c[1])) <= 2)]
    rank = max(len(c[1][0]) for c in cases)  # batched matrix products: a test of their own
    cases = [c for c in cases if len(c[1][0]) == rank]
    axis = [c for c in cases if c[2].get("axis") not in (None, 0)] or cases
    return axis[len(axis) // 2]


@pytest.mark.parametrize("name", ARRAY_OPS)
def test_every_array_op_gives_the_numpy_backends_numbers(name):
    g, point = combined([hardest(name)], np.random.default_rng(len(name)))
    same_as_numpy(g, point)


VECTOR_REDUCTIONS = [c for c in CASES if c[0] in ("sum", "mean", "amax", "logsumexp") and c[1] == [(2,)]]


@pytest.mark.parametrize("name, shapes, params", VECTOR_REDUCTIONS, ids=str)
def test_reductions_of_a_vector_to_a_number_and_back(name, shapes, params):
    same_as_numpy(*combined([(name, shapes, params)], np.random.default_rng(4)))


def test_batched_matrix_products_broadcast_as_numpys():
    cases = [c for c in CASES if c[0] == "matmul" and max(map(len, c[1])) > 2]
    g, point = combined(cases[:3], np.random.default_rng(6))
    same_as_numpy(g, point)


def test_every_elementwise_op_gives_the_numpy_backends_numbers():
    rng = np.random.default_rng(3)
    cases = []
    for name in ELEMENTWISE:
        shapes = [(2, 3), (3,)][:OPS[name].arity]
        cases.append((name, shapes, {}))
    g, point = combined(cases, rng)
    same_as_numpy(g, point)


def kernel_of(f, entry="value_and_grad"):
    """The loop over a batch's points that runs ``entry`` of a graph of scalars (after a call;
    None before), or where no loop applies, the function that chooses Numba's or NumPy's lines."""
    run = f._namespace[f"_arrays_{entry}"]
    return getattr(run, "function", run)


def test_a_batch_through_every_elementwise_op_runs_in_one_loop():
    """A graph of scalars on a batch runs its lines for floats once per point, in one loop that
    Numba compiles: every elementwise op of the table, against the NumPy backend's numbers."""
    cases = [(name, [(40,)] * OPS[name].arity, {}) for name in ELEMENTWISE]
    g, point = combined(cases, np.random.default_rng(8), scalars=True)
    f = same_as_numpy(g, point, entries=("value_and_grad", "value"))
    for entry in ("value_and_grad", "value"):
        assert kernel_of(f, entry).refused == []  # the loop ran, not the array lines


@pytest.mark.parametrize("fused", [False, True])
def test_the_loop_takes_any_shapes_strides_and_sizes(fused):
    g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))")
    g = g.fuse("sigmoid") if fused else g
    rng = np.random.default_rng(9)
    ends = np.array([-800.0, -40.0, -1e-300, 0.0, 1e-300, 40.0, 800.0])
    points = [
        {"w0": 2.0, "x0": rng.normal(size=(3, 1)), "w1": rng.normal(size=(1, 4)), "x1": -2.0, "w2": -3.0},
        {"w0": rng.normal(size=(4, 3)).T, "x0": rng.normal(size=(3, 8))[:, ::2], "w1": 0.5,
         "x1": rng.normal(size=(2, 3, 4)), "w2": rng.normal(size=4)},  # transposed, strided, 3-d
        {"w0": 1.0, "x0": ends, "w1": 0.0, "x1": 1.0, "w2": 0.0},  # σ at both ends
        {"w0": np.empty(0), "x0": 1.0, "w1": 1.0, "x1": 1.0, "w2": 1.0},  # no points
        {"w0": np.array([0.5]), "x0": 1.0, "w1": 1.0, "x1": 1.0, "w2": 1.0},
    ]
    for point in points:
        f = same_as_numpy(g, point, entries=("value_and_grad", "value"))
        value, grads = f.value_and_grad(**point)
        assert value.shape == np.broadcast_shapes(*(np.shape(v) for v in point.values()))
        assert all(np.shape(grads[n]) == np.shape(point[n]) for n in point)
        assert kernel_of(f).refused == []
    value, grads = f.value_and_grad(**points[2])
    with np.errstate(over="ignore"):
        want = 1 / (1 + np.exp(-ends))  # at -800, exp overflows: 0, and σ(-800) rounds to 0 too
    assert np.allclose(value, want, rtol=1e-15, atol=0)
    assert np.all(np.isfinite(grads["x0"])) == fused  # unfused, exp(800)·σ(-800)² is inf·0, as in NumPy


@pytest.mark.parametrize("text", ["(1 + tanh(x))*y", "0.5*x*(1 + tanh(0.79788456*(x + 0.044715*x*x*x)))*y",
                                  "max(x, y)*relu(x - y)", "softplus(x) - logsigmoid(y) + logaddexp(x, y)",
                                  "sigmoid(x*y)*sigmoid(-x*y) + abs(x)**3 / (1 + y*y)"])
def test_what_the_compiler_rewrites_runs_in_the_loop_too(text):
    """1 + tanh(u) as 2σ(2u) (a maximum of a number and a comparison), shared sigmoids, the
    float lines' own functions: each in the loop, with the NumPy backend's numbers."""
    rng = np.random.default_rng(10)
    point = {"x": rng.normal(size=50) * 10, "y": rng.normal(size=(2, 1))}
    f = same_as_numpy(sg.graph(text), point, entries=("value_and_grad", "value"))
    assert kernel_of(f).refused == [] and kernel_of(f, "value").refused == []


@pytest.mark.parametrize("text, shapes", [
    ("sum(0.5*x*(1 + tanh(0.79788456*(x + 0.044715*x*x*x)))*w)", {"x": (3, 4), "w": (4,)}),
    ("sum(sigmoid(x*w) - log(1 + x*x), axis=(0, 1))", {"x": (3, 4), "w": (3, 1)}),
    ("sum(relu(x) * c)", {"x": ("N", 4), "c": ()}),
    ("mean((w*x + b - y)**2)", {"x": ("N",), "y": ("N",), "w": (), "b": ()}),
    ("mean(softplus(x*w))", {"x": (3, 4), "w": (4,)}),
])
def test_the_sum_of_an_elementwise_graph_of_arrays_runs_in_the_loop(text, shapes):
    """sum(f(x, w)) or mean(f(x, w)) over every axis: the loop over the points of f, a graph of
    scalars, and NumPy's sum or mean of its values; the gradients those of f at each point,
    summed to each input's shape (over the number of points for a mean)."""
    g = sg.graph(text, shapes=shapes)
    rng = np.random.default_rng(11)
    point = {n: rng.normal(size=tuple(5 if d == "N" else d for d in s)) * 3 if s else 0.7
             for n, s in shapes.items()}
    f = same_as_numpy(g, point, entries=("value_and_grad", "value"))
    for entry in ("value_and_grad", "value"):
        assert kernel_of(f, entry).__qualname__.startswith("Compiled._summed.")
    value, grads = f.value_and_grad(**point)
    assert isinstance(value, np.float64) and all(np.shape(grads[n]) == np.shape(point[n]) for n in point)
    assert close(value, g.compile().value_and_grad(**point)[0], rtol=1e-15)  # NumPy's (pairwise) sum or mean


@pytest.mark.parametrize("text", ["sum(exp(x), axis=0)", "sum(exp(x), keepdims=True)", "mean(exp(x), axis=1)",
                                  "sum(exp(x) * sum(x))"])
def test_other_sums_keep_the_array_lines(text):
    g = sg.graph(text, shapes={"x": (3, 4)})
    f = same_as_numpy(g, {"x": np.random.default_rng(12).normal(size=(3, 4))})
    assert not getattr(kernel_of(f), "__qualname__", "").startswith("Compiled._summed.")  # the array lines


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(expressions(depth=3), st.integers(0, 10**6), st.sampled_from(["{}", "sum({})", "mean({})"]))
def test_random_graphs_in_the_loop_give_the_numpy_backends_numbers(text, seed, reduction):
    """Random expressions over the elementwise ops, on a batch of points of mixed shapes, and
    summed or averaged over arrays: every one the loop runs agrees with the NumPy backend."""
    rng = np.random.default_rng(seed)
    names = sg.graph(text).inputs
    if not names:
        return
    if reduction == "{}":
        shapes = {n: [(), (5,), (2, 5), (2, 1)][rng.integers(4)] for n in names}
        shapes[names[0]] = (5,)
        g = sg.graph(text)
    else:
        shapes = {n: [(3, 4), (4,), (3, 1), ()][rng.integers(4)] for n in names}
        g = sg.graph(reduction.format(text), shapes=shapes)
    point = {n: rng.normal(size=s) * 3 if s else float(rng.normal()) for n, s in shapes.items()}
    try:
        g.compile().value_and_grad(**point)
    except sg.SymgradError:  # a point outside a domain: the NumPy backend refuses it too
        return
    f = same_as_numpy(g, point, entries=("value_and_grad", "value"))
    run = kernel_of(f)  # None where every input is a float: the float lines ran
    looped = getattr(run, "refused", None) == [] or \
        getattr(run, "__qualname__", "").startswith("Compiled._summed.")
    assert looped or run is None or any(not g.elementwise(n) for n in g.nodes if n != g.output)


def test_what_the_loop_returns_is_no_array_the_caller_holds_or_another_result():
    f = sg.graph("x*y + x").compile(backend="numba")
    x, y = np.linspace(-1, 1, 5), np.linspace(0, 2, 5)
    value, grads = f.value_and_grad(x=x, y=y)
    arrays = [x, y, value, grads["x"], grads["y"]]
    assert len({id(a) for a in arrays}) == 5 and not any(np.shares_memory(a, b) for i, a in enumerate(arrays)
                                                          for b in arrays[i + 1:])
    assert np.allclose(grads["x"], y + 1) and np.allclose(grads["y"], x) and np.allclose(value, x * y + x)


def test_a_sum_in_a_graph_of_scalars_takes_floats_only():
    """The sum of a scalar is the scalar: the graph takes no batch, whose sum it would take."""
    g = sg.graph("sum(sin(a)) * b")
    f = same_as_numpy(g, {"a": 0.5, "b": 2.0})
    with pytest.raises(sg.ShapeError, match="'a'"):
        f.value_and_grad(a=np.linspace(0, 1, 4), b=2.0)


def test_floats_the_float_lines_refuse_take_the_array_lines():
    """log of a negative float: math refuses, the array lines give NumPy's nan, as the NumPy backend does."""
    g = sg.graph("log(x) * y")
    same_as_numpy(g, {"x": -1.0, "y": 2.0}, entries=("value_and_grad", "value"))
    same_as_numpy(g, {"x": np.array([-1.0, 0.0, 2.0]), "y": 2.0}, entries=("value_and_grad", "value"))


def two_layer(X, W1, b1, W2, b2, y, reg):
    h = sg.relu(X @ W1 + b1)
    return sg.softmax_cross_entropy(h @ W2 + b2, y) + 0.5 * reg * (sg.l2(W1) + sg.l2(W2))


def net_point(N, D=4, H=10, C=3, seed=0):
    rng = np.random.default_rng(seed)
    point = {"X": rng.normal(size=(N, D)), "W1": rng.normal(size=(D, H)), "b1": rng.normal(size=H),
             "W2": rng.normal(size=(H, C)), "b2": rng.normal(size=C), "y": rng.integers(0, C, size=N),
             "reg": 0.1}
    return point


@pytest.mark.parametrize("fused", [False, True])
def test_two_layer_net_at_any_batch_size(fused):
    shapes = {"X": ("N", 4), "W1": (4, 10), "b1": (10,), "W2": (10, 3), "b2": (3,), "y": ("N",), "reg": ()}
    g = sg.graph(two_layer, shapes=shapes, dtypes={"y": int})
    if fused:
        g = g.fuse("affine_relu").fuse("softmax_cross_entropy")
    for N in (5, 1, 17):  # compiled once, for the first size
        f = same_as_numpy(g, net_point(N, seed=N), wrt=["W1", "b1", "W2", "b2"],
                          entries=("value_and_grad", "forward", "value") if fused else ("value_and_grad",))
    assert sg.check_grad(f, **net_point(3)).ok


@pytest.mark.parametrize("entry", ["value_and_grad", "forward", "value"])
def test_arrays_past_numba_most_entries_run_the_numpy_lines(entry):
    """Up to NUMBA_MOST entries in each array input, Numba's array lines run; past it, the
    NumPy lines; both give the NumPy backend's numbers, and Numba compiles only when used."""
    from symgrad.compiled import NUMBA_MOST

    g = sg.graph("sum(softmax(x, axis=-1) * w)", shapes={"x": ("n", 64), "w": ("n", 64)})
    f, f0 = g.compile(backend="numba"), g.compile()
    call, call0 = (f, f0) if entry == "value" else (getattr(f, entry), getattr(f0, entry))
    rng = np.random.default_rng(10)
    numba_ran = []
    for n in (NUMBA_MOST // 64 + 1, 3, NUMBA_MOST // 64):
        point = {k: rng.normal(size=(n, 64)) for k in ("x", "w")}
        got, want = call(**point), call0(**point)
        if entry == "value":
            got, want = (got, {}), (want, {})
        assert close(got[0], want[0])
        if entry == "value_and_grad":
            assert got[1].keys() == want[1].keys() and all(close(got[1][k], want[1][k]) for k in want[1])
        numba_ran.append(any("numba" in name for name in f._files))
    assert numba_ran == [False, True, True]
    api = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    assert f"more than {NUMBA_MOST:,} entries, the NumPy\nlines run" in api  # as the docs say


def test_bad_inputs_get_the_numpy_backends_errors():
    g = sg.graph(two_layer, shapes={"X": ("N", 4), "W1": (4, 10), "b1": (10,), "W2": (10, 3), "b2": (3,),
                                    "y": ("N",), "reg": ()}, dtypes={"y": int})
    f = g.compile(backend="numba")
    point = net_point(5)
    f.value_and_grad(**point)
    bad = [({"y": np.array([0, 1, 3, 0, 1])}, sg.InputError, "labels 'y'"),
           ({"y": np.array([0, 1, -1, 0, 1])}, sg.InputError, "labels 'y'"),
           ({"y": np.zeros(4, dtype=int)}, sg.ShapeError, "N"),
           ({"W1": np.ones((4, 9))}, sg.ShapeError, "W1"),
           ({"X": np.full((5, 4), np.nan)}, sg.InputError, "X"),
           ({"reg": float("inf")}, sg.InputError, "reg"),
           ({"Z": 1.0}, sg.InputError, "Z")]
    for change, error, named in bad:
        for entry in (f.value_and_grad, f.forward, f):
            with pytest.raises(error, match=named):
                entry(**{**point, **change})
    with pytest.raises(sg.InputError, match="b2"):
        f.value_and_grad(**{k: v for k, v in point.items() if k != "b2"})


def test_inputs_that_need_converting_give_the_same_numbers():
    g = sg.graph("sum(tanh(W @ x) * v)", shapes={"W": (3, 4), "x": (4,), "v": (3,)})
    f, f0 = g.compile(backend="numba"), g.compile()
    rng = np.random.default_rng(5)
    W, x, v = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=3)
    want = f0.value_and_grad(W=W, x=x, v=v)
    readonly = np.copy(W)
    readonly.flags.writeable = False
    for held in (np.asfortranarray(W), np.ascontiguousarray(W.T).T, W.astype(np.float32),
                 np.arange(12).reshape(3, 4), W.tolist(), readonly, np.concatenate([W, W], axis=1)[:, ::2]):
        value, grads = f.value_and_grad(W=held, x=x, v=v)
        expected = f0.value_and_grad(W=held, x=x, v=v)
        assert close(value, expected[0]) and all(close(grads[n], expected[1][n]) for n in grads)
    assert close(f.value_and_grad(W=W, x=x, v=v)[0], want[0])


@pytest.mark.parametrize("text", ["sum(x*y)", "sum(x + y)", "x + y", "sum(x) + sum(y)", "x"])
def test_no_gradient_is_an_array_the_caller_holds_or_another_gradient(text):
    g = sg.graph(text, shapes={"x": (3, 3), "y": (3, 3)} if "y" in text else {"x": (3, 3)})
    point = {n: np.arange(9.0).reshape(3, 3) + i for i, n in enumerate(g.inputs)}
    kept = {n: np.copy(v) for n, v in point.items()}
    value, grads = g.compile(backend="numba").value_and_grad(**point)
    assert not any(np.shares_memory(value, a) for a in point.values())
    for n, gradient in grads.items():
        others = [*point.values(), *(grads[m] for m in grads if m != n)]
        assert not any(np.shares_memory(gradient, a) for a in others)
        gradient += 100.0
    assert all(np.array_equal(point[n], kept[n]) for n in point)


def test_a_graph_of_scalars_takes_floats_and_batches():
    neuron = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
    lecture = {"w0": 2.0, "x0": -1.0, "w1": -3.0, "x1": -2.0, "w2": -3.0}
    rng = np.random.default_rng(7)
    batch = {**lecture, "x0": rng.normal(size=50), "x1": rng.normal(size=(3, 50))}
    for g in (sg.graph(neuron), sg.graph(neuron).fuse("sigmoid")):
        value, grads = g.compile(backend="numba").value_and_grad(**lecture)
        assert round(value, 2) == 0.73 and round(grads["w0"], 3) == -0.197 and round(grads["x0"], 3) == 0.393
        same_as_numpy(g, batch, entries=("value_and_grad", "forward", "value"))
        same_as_numpy(g, {**batch, "w2": np.array([0.5, -800.0, 800.0])[:, None]})  # σ at both ends
        same_as_numpy(g, {**lecture, "x0": np.array([-1.0, 1.0])})


@pytest.mark.parametrize("text", ["(c - c) - 2", "0*c + 3", "x + 0*y", "y*0 + x*x"])
def test_a_batch_through_a_graph_of_scalars_that_ignores_an_input(text):
    """Each gradient has its input's shape, also where the output does not read that input."""
    g = sg.graph(text)
    rng = np.random.default_rng(5)
    for shapes in ({n: (4,) for n in g.inputs}, {n: (4,) if i else () for i, n in enumerate(g.inputs)},
                   {n: () if i else (2, 1) for i, n in enumerate(g.inputs)}):
        point = {n: rng.normal(size=s) if s else 0.5 for n, s in shapes.items()}
        same_as_numpy(g, point)
        grads = g.compile(backend="numba").value_and_grad(**point)[1]
        assert all(np.shape(grads[n]) == shapes[n] for n in g.inputs)


def test_what_numba_cannot_compile_is_a_named_error():
    pytest.importorskip("scipy.special")
    with sg.define_op("erf", sp.erf, numpy="erf({0})", imports=["from scipy.special import erf"]):
        g = sg.graph("sum(erf(x))", shapes={"x": (3,)})
        f = g.compile(backend="numba")
        refused = r"compile value_and_grad, at .*erf.*backend='numpy'"
        for _ in range(2):  # the second time without compiling again
            with pytest.raises(sg.UnsupportedError, match=refused):
                f.value_and_grad(x=np.ones(3))
        assert close(g.compile().value_and_grad(x=np.ones(3))[0], 3 * 0.8427007929497149)


ERF_NUMBA = """import math

import numba


@numba.vectorize(["float64(float64)"])
def erf(x):
    return math.erf(x)
"""


def test_an_op_of_define_op_can_give_numba_its_own_spelling(tmp_path, monkeypatch):
    """numba= respells the op's NumPy spelling (SciPy's erf, which Numba refuses) for Numba alone."""
    pytest.importorskip("scipy.special")
    (tmp_path / "erf_numba.py").write_text(ERF_NUMBA)
    monkeypatch.syspath_prepend(str(tmp_path))
    imports = ["from scipy.special import erf", "from erf_numba import erf as erf_nb"]
    with sg.define_op("erf", sp.erf, numpy="erf({0})", imports=imports, numba="erf_nb({0})"):
        g = sg.graph("sum(erf(x) * y) + sum(erf(2*y))", shapes={"x": (3, 4), "y": (4,)})
        rng = np.random.default_rng(3)
        same_as_numpy(g, {"x": rng.normal(size=(3, 4)), "y": rng.normal(size=4)})
        assert "erf(" in g.compile().source and "erf_nb" not in g.compile().source.split("def forward")[1]
        scalars = sg.graph("erf(x) * y + erf(2*y)")  # a batch of points: one loop, with erf_nb too
        f = same_as_numpy(scalars, {"x": rng.normal(size=(3, 4)), "y": rng.normal(size=4)})
        assert kernel_of(f).refused == []
    assert "erf" not in OPS


def test_unknown_backends_and_combinations_are_named_errors():
    g = sg.graph("sum(x)", shapes={"x": (2,)})
    f = g.compile(backend="numba")
    assert f.backend == "numba" and "backend numba" in repr(f) and g.compile().backend == "numpy"
    with pytest.raises(sg.UnsupportedError, match="'jax'.*'numpy', 'numba'"):
        g.compile(backend="jax")
    with pytest.raises(sg.UnsupportedError, match="xp="):
        g.compile(xp=np, backend="numba")


def test_without_numba_the_error_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_numba(name, *args, **kwargs):
        if name == "numba":
            raise ImportError("No module named 'numba'")
        return real_import(name, *args, **kwargs)

    numba_backend.numba.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_numba)
    monkeypatch.delitem(sys.modules, "numba")
    try:
        with pytest.raises(sg.UnsupportedError, match=r"symgrad\[numba\]"):
            sg.graph("sum(x)", shapes={"x": (2,)}).compile(backend="numba")
    finally:
        numba_backend.numba.cache_clear()


@pytest.mark.parametrize("kind", ["sum", "mean", "max", "min"])
def test_reductions_keep_nan_take_integers_and_refuse_an_empty_maximum(kind):
    """What Numba's NumPy (symgrad.numba_backend) reduces, against NumPy: over any axes, kept or
    not, of floats with a NaN, of integers and of arrays that are not C-contiguous."""
    nb = numba_backend.numba()
    rng = np.random.default_rng(8)
    floats = rng.normal(size=(3, 4, 5))
    floats[1, 2, 3] = np.nan
    arrays = [np.asfortranarray(floats), rng.integers(-5, 5, size=(3, 4, 5))]
    for axis, keepdims in [((0, 2), True), (-1, False)]:
        namespace = {"np": numba_backend._numpy()}
        exec(f"def f(x):\n    return np.{kind}(x, axis={axis!r}, keepdims={keepdims})", namespace)
        f = nb.njit(namespace["f"])
        for a in arrays:
            assert close(f(a), getattr(np, kind)(a, axis=axis, keepdims=keepdims)), (axis, a.dtype)
    if kind in ("max", "min"):
        exec(f"def g(x):\n    return np.{kind}(x, axis=1)", namespace)
        with pytest.raises(ValueError, match="zero-size"):
            nb.njit(namespace["g"])(np.ones((2, 0)))


@pytest.mark.parametrize("kind", ["sum", "mean"])
def test_sums_of_floats_are_numpys_to_the_last_bit(kind):
    """Sums and means of floats add in NumPy's pairwise order: over any axes, kept or not, of a
    C-contiguous array, they are NumPy's bit for bit (runs shorter than 8, up to 128 and
    longer); of other layouts, within the rounding of a sum."""
    nb = numba_backend.numba()
    rng = np.random.default_rng(9)
    for shape in [(3, 7), (2, 5, 300), (1, 1100), (4, 0, 3)]:
        a = rng.normal(size=shape) * 10.0 ** rng.integers(-4, 4, size=shape)
        for k in range(1, a.ndim + 1):
            for axis in itertools.combinations(range(a.ndim), k):
                for keepdims in (False, True):
                    namespace = {"np": numba_backend._numpy()}
                    exec(f"def f(x):\n    return np.{kind}(x, axis={axis!r}, keepdims={keepdims})", namespace)
                    f = nb.njit(namespace["f"])
                    with np.errstate(invalid="ignore", divide="ignore"):
                        want = getattr(np, kind)(a, axis=axis, keepdims=keepdims)
                        assert np.array_equal(f(a), want, equal_nan=True), (shape, axis, keepdims)
                        other, bound = f(np.asfortranarray(a)), getattr(np, kind)(abs(a), axis=axis,
                                                                                   keepdims=keepdims)
                    assert np.shape(other) == np.shape(want)
                    assert np.all((abs(other - want) <= 1e-14 * bound) | np.isnan(want)), (shape, axis)
