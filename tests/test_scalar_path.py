"""The compiled functions' path for floats against their NumPy path, over the op table.

When every input is a float, a compiled graph of scalars runs lines written for
floats (symgrad.scalar); the same call with 1-element arrays runs the
NumPy lines.  Both must give the same numbers (to a few units in the last place:
``math.exp`` and NumPy's ``exp`` may round differently), including where the
float lines give way to NumPy's (an overflowing ``exp``, ``log`` of a negative).
"""

import inspect
import math
import warnings

import numpy as np
import pytest

import symgrad as sg
from symgrad.ops import OPS
from symgrad.scalar import scalar_body

from .test_op_table import NAMES, sample, text_of

SCALAR_ROWS = sorted(n for n, op in OPS.items()
                     if op.elementwise and not op.params and not any(d.labels for d in op.domain))


def both_paths(f: sg.Compiled, point: dict[str, float]):
    """(value, grads) from the float path and from the NumPy path (1-element arrays)."""
    scalar = f.value_and_grad(**point)
    value, grads = f.value_and_grad(**{n: np.array([v]) for n, v in point.items()})
    return scalar, (value[0], {n: g[0] for n, g in grads.items()})


def assert_same(got, want, ulps: float = 8):
    assert got.__class__ in (float, np.float64), type(got)
    assert got == pytest.approx(want, rel=ulps * 2.2e-16, abs=1e-300), (got, want)


def test_the_op_table_has_rows_for_the_scalar_path():
    wanted = {"exp", "log", "sigmoid", "softplus", "logaddexp", "relu", "max", "tanh", "div"}
    assert wanted <= set(SCALAR_ROWS)


@pytest.mark.parametrize("name", SCALAR_ROWS)
@pytest.mark.parametrize("fused", [False, True])
def test_float_path_equals_numpy_path_for_every_row(name, fused):
    op = OPS[name]
    g = sg.graph(text_of(op))
    if fused:
        g = g.fuse_all()
    f = g.compile()
    rng = np.random.default_rng(SCALAR_ROWS.index(name))
    for _ in range(6):
        point = {n: sample(d, rng) for n, d in zip(NAMES[: op.arity], op.domain)}
        (value, grads), (array_value, array_grads) = both_paths(f, point)
        assert_same(value, array_value)
        assert grads.keys() == array_grads.keys()
        for n in grads:
            assert_same(grads[n], array_grads[n])
        assert f(**point) == pytest.approx(value, rel=1e-15)
        out, cache = f.forward(**point)
        assert out == value
        assert f.backward(1.0, cache) == pytest.approx(grads, rel=1e-15)


@pytest.mark.parametrize("text", ["sigmoid(x)", "1/(1+exp(-x))", "softplus(x)", "logsigmoid(x)",
                                  "logaddexp(x, 2*x)", "tanh(x)"])
@pytest.mark.parametrize("x", [-1000.0, -745.5, -40.0, -1e-12, 0.0, 1e-12, 40.0, 709.0, 1000.0])
def test_extreme_points_give_the_numpy_answers(text, x):
    g = sg.graph(text)
    for graph in (g, g.fuse_all()):
        f = graph.compile()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's inf and nan, as documented
            (value, grads), (array_value, array_grads) = both_paths(f, {"x": x})
        for got, want in [(value, array_value), (grads["x"], array_grads["x"])]:
            if math.isnan(want) or math.isinf(want):
                assert got == want or (math.isnan(got) and math.isnan(want)), (got, want)
            else:
                assert_same(got, want)


def test_the_stable_sigmoid_saturates_without_overflow():
    f = sg.graph("sigmoid(x)").compile()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the float path, no fallback needed
        assert f.value_and_grad(x=1000.0) == (1.0, {"x": 0.0})
        assert f.value_and_grad(x=-1000.0) == (0.0, {"x": 0.0})
        value, grads = f.value_and_grad(x=-700.0)
    assert value == pytest.approx(math.exp(-700.0), rel=1e-15)
    assert grads["x"] == pytest.approx(math.exp(-700.0), rel=1e-15)


def test_the_float_lines_use_the_math_module_and_the_sign_test():
    lines = scalar_body(["q2 = np.exp(np.minimum(q1, 0.0))/(1 + np.exp(-np.abs(q1)))",
                         "dq1 = q2*(np.exp(np.minimum(-q1, 0.0))/(1 + np.exp(-np.abs(-q1))))",
                         "q3 = np.maximum(q1, 0)", "q4 = np.logaddexp(0, q1) + np.log(q2)",
                         "if q2.__class__ is np.ndarray:", "    return q2, _backward(dq1)", "return q2"])
    text = "\n".join(lines)
    assert "np." not in text and "_backward" not in text
    assert text.count("_exp(") == 1 and "_e_q1 = _exp(-q1 if q1 >= 0.0 else q1)" in text  # σ(±q1): one exp
    assert "q2 = (1.0 if q1 >= 0.0 else _e_q1) / (1.0 + _e_q1)" in text
    assert "max(q1, 0.0)" in text and "_softplus(q1)" in text and "_log(q2)" in text


def test_python_and_numpy_scalars_and_ints_take_the_float_path_and_arrays_do_not():
    f = sg.graph("(x + y) * z").compile()
    lecture = (-12.0, {"x": -4.0, "y": -4.0, "z": 3.0})
    assert f.value_and_grad(x=-2.0, y=5.0, z=-4.0) == lecture
    assert f.value_and_grad(x=np.float64(-2.0), y=5.0, z=-4.0) == lecture
    assert f.value_and_grad(x=-2, y=5, z=-4) == lecture
    value, grads = f.value_and_grad(x=np.array([-2.0, 1.0]), y=5.0, z=-4.0)
    assert value.tolist() == [-12.0, -24.0] and grads["z"] == 9.0 and grads["x"].shape == (2,)
    with pytest.raises(sg.InputError, match="'x' is not finite"):
        f.value_and_grad(x=float("nan"), y=5.0, z=-4.0)
    with pytest.raises(sg.EvaluationError, match="1/x"):
        sg.graph("1/x + y").compile().value_and_grad(x=0.0, y=1.0)


def test_many_inputs_take_the_float_path_too():
    names = [f"x{i}" for i in range(40)]
    f = sg.graph(" + ".join(f"sigmoid({n})" for n in names)).compile()
    point = {n: float(i) - 20.0 for i, n in enumerate(names)}
    value, grads = f.value_and_grad(**point)
    array_value, array_grads = f.value_and_grad(**{n: np.array([v]) for n, v in point.items()})
    assert value == pytest.approx(array_value[0], rel=1e-14)
    assert all(grads[n] == pytest.approx(array_grads[n][0], rel=1e-14) for n in names)


def test_sigmoids_of_one_name_share_one_exp_until_the_name_changes():
    lines = scalar_body(["q2 = np.exp(np.minimum(q1, 0.0))/(1 + np.exp(-np.abs(q1)))", "q1 = q2 + 1",
                         "q3 = np.exp(np.minimum(-q1, 0.0))/(1 + np.exp(-np.abs(-q1)))", "if q3 > 0:",
                         "    q4 = np.exp(np.minimum(q3, 0.0))/(1 + np.exp(-np.abs(q3)))",
                         "return q3**2 + q4**3 + (q3 + 1)**2"])
    assert lines[:4] == ["_e_q1 = _exp(-q1 if q1 >= 0.0 else q1)",
                         "q2 = (1.0 if q1 >= 0.0 else _e_q1) / (1.0 + _e_q1)",
                         "q1 = q2 + 1.0", "_e_q1 = _exp(-q1 if q1 >= 0.0 else q1)"]  # q1 changed: again
    assert "_e_q3" not in "\n".join(lines)  # inside an if: inline, as before
    assert lines[-1] == "return q3 * q3 + q4 ** 3 + (q3 + 1.0) ** 2"


@pytest.mark.parametrize("x", [-800.0, -30.0, -1.5, 0.0, 1e-300, 2.5, 30.0, 800.0])
def test_the_fused_sigmoid_on_floats_gives_the_numpy_lines_answer(x):
    f = sg.graph("1/(1+exp(-(w*x + b)))").fuse("sigmoid").compile()
    point = {"w": 1.0, "x": x, "b": 0.0}
    (value, grads), (array_value, array_grads) = both_paths(f, point)
    assert_same(value, array_value)
    for n in point:
        assert_same(grads[n], array_grads[n])
    want = 1.0 / (1.0 + math.exp(-x)) if x > -700 else math.exp(x)
    assert value == pytest.approx(want, rel=1e-15)
    assert grads["b"] == pytest.approx(want * (1.0 - want) if x < 30 else math.exp(-x), rel=1e-12)


def test_more_inputs_than_parameters_are_bound_by_name_all_the_same():
    from symgrad.compiled import KEYWORD_PARAMS

    names = [f"x{i}" for i in range(KEYWORD_PARAMS + 3)]
    f = sg.graph(" + ".join(f"{n}*x0" for n in names[1:])).compile()
    point = {n: 0.5 + i for i, n in enumerate(names)}
    value, grads = f.value_and_grad(**point)
    assert value == pytest.approx(sum(point[n] * point["x0"] for n in names[1:]), rel=1e-14)
    assert grads["x0"] == pytest.approx(sum(point[n] for n in names[1:]), rel=1e-14)
    assert all(grads[n] == point["x0"] for n in names[1:])
    assert f(**point) == value and f.forward(**point)[0] == value
    array_value, array_grads = f.value_and_grad(**{n: np.array([v, v]) for n, v in point.items()})
    assert array_value.tolist() == pytest.approx([value, value], rel=1e-14)
    assert array_grads["x5"].tolist() == [point["x0"]] * 2
    assert point == {n: 0.5 + i for i, n in enumerate(names)}  # the caller's dict is left alone
    with pytest.raises(sg.InputError, match="unknown input 'y'"):
        f.value_and_grad(**point, y=1.0)
    with pytest.raises(sg.InputError, match="missing value for input 'x7'"):
        f.value_and_grad(**{n: v for n, v in point.items() if n != "x7"})
    with pytest.raises(sg.InputError, match="'x9' is not finite"):
        f.value_and_grad(**{**point, "x9": float("inf")})


def test_batch_gradients_are_new_arrays_never_a_callers_or_the_caches():
    f = sg.graph("x + y*z").compile()
    x, y, dout = np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([0.5, 2.0])
    value, grads = f.value_and_grad(x=x, y=y, z=2.0)
    assert value.tolist() == [7.0, 10.0]
    assert grads["x"].tolist() == [1.0, 1.0] and grads["y"].tolist() == [2.0, 2.0] and grads["z"] == 7.0
    out, cache = f.forward(x=x, y=y, z=2.0)
    back = f.backward(dout, cache)
    assert back["x"].tolist() == [0.5, 2.0] and back["y"].tolist() == [1.0, 4.0] and back["z"] == 9.5
    held = [x, y, dout, out, *(v for v in cache if isinstance(v, np.ndarray))]
    for gradient in [*grads.values(), *back.values()]:
        assert not any(np.shares_memory(gradient, a) for a in held)
    back["x"] += 100.0  # a caller's change to a gradient changes nothing else
    grads["x"] += 100.0
    assert f.backward(dout, cache)["x"].tolist() == [0.5, 2.0] and dout.tolist() == [0.5, 2.0]
    assert f.value_and_grad(x=x, y=y, z=2.0)[1]["x"].tolist() == [1.0, 1.0]
    assert f.backward(2.0, cache)["x"].tolist() == [2.0, 2.0]


def test_value_and_grad_for_floats_shares_the_sigmoids_exp_its_own_way():
    f = sg.graph("sigmoid(w*sigmoid(x) + b)").compile()
    numpy_lines = f.source.split("def value_and_grad")[1]
    assert "_exp_q" in numpy_lines  # arrays: e^(-|a|) held as an array
    entry = inspect.getsource(f.value_and_grad)
    floats = entry.split("except _FALLBACK")[0]
    assert "_exp_" not in floats and "np." not in floats  # floats: the sign test, no arrays
    assert floats.count("_e_q") >= 4  # each sigmoid's exp computed once, read by σ(a) and σ(-a)
    for x in (-800.0, -3.0, 0.0, 2.0, 800.0):
        point = {"w": 1.5, "x": x, "b": -0.5}
        (value, grads), (array_value, array_grads) = both_paths(f, point)
        assert_same(value, array_value)
        for n in point:
            assert_same(grads[n], array_grads[n])
