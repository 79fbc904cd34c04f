"""The generated code of a user's own layers (GELU, attention scores, layer norm), and each
rewrite that makes it as lean as hand-written NumPy: the adjoints read the forward values
they would compute again, a softmax shares its log-sum-exp's exponentials, numbers leave
sums, small arrays multiply first, ``x**3`` is ``x*x*x``, tanh's derivative is exact from
one exp, a stretched column stays a column and a scaled adjoint joins its reader.

Every case is checked against NumPy written by hand and against finite differences, over
several shapes and in float64 and float32.
"""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.printing import numpy_code

from .conftest import central_differences
from .test_compile_fast import function_source

GELU = "sum(x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715*x**3))) * w)"
C = math.sqrt(2 / math.pi)


def gelu_by_hand(x, w):
    t = np.tanh(C * (x + 0.044715 * x**3))
    dt = 1 - t * t
    dx = w * (0.5 * (1 + t) + x / 2 * dt * C * (1 + 3 * 0.044715 * x**2))
    return np.sum(x / 2 * (1 + t) * w), {"x": dx}


def attention_by_hand(Q, K, W):
    s = Q @ K.T / math.sqrt(Q.shape[1])
    e = np.exp(s - s.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    ds = p * (W - np.sum(p * W, axis=1, keepdims=True)) / math.sqrt(Q.shape[1])
    return np.sum(p * W), {"Q": ds @ K, "K": ds.T @ Q}


def layer_norm(x, gamma, beta, w):
    xc = x - sg.mean(x, axis=-1, keepdims=True)
    return sg.sum((xc / sg.sqrt(sg.mean(xc * xc, axis=-1, keepdims=True) + 1e-5) * gamma + beta) * w)


def layer_norm_by_hand(x, gamma, beta, w):
    xc = x - x.mean(axis=1, keepdims=True)
    inv = 1 / np.sqrt((xc * xc).mean(axis=1, keepdims=True) + 1e-5)
    xhat = xc * inv
    g = w * gamma
    dx = inv * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    return np.sum((xhat * gamma + beta) * w), {"x": dx, "gamma": np.sum(w * xhat, axis=0),
                                               "beta": np.sum(w, axis=0)}


def agrees(f, hand, point, dtype, wrt):
    """value_and_grad, and forward then backward, of ``f`` equal ``hand`` (in float64) and
    central differences; in float32 to float32's precision."""
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    typed = {k: v.astype(dtype) for k, v in point.items()}
    want, want_grads = hand(**point)
    value, grads = f.value_and_grad(**typed)
    assert f(**typed) == pytest.approx(want, rel=rtol, abs=rtol)  # the value alone
    out, cache = f.forward(**typed)
    for got_value, got in ((value, grads), (out, f.backward(1.0, cache))):
        assert got_value == pytest.approx(want, rel=rtol, abs=rtol)
        for n in wrt:
            assert np.asarray(got[n]).shape == point[n].shape, n
            np.testing.assert_allclose(got[n], want_grads[n], rtol=rtol, atol=rtol, err_msg=n)
    if dtype == np.float64:
        numeric = central_differences(lambda **p: f.value_and_grad(**p)[0], point, wrt)
        for n in wrt:
            np.testing.assert_allclose(grads[n], numeric[n], rtol=1e-6, atol=1e-8, err_msg=n)


DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2)])
def test_gelu_equals_numpy_by_hand(shape, dtype):
    rng = np.random.default_rng(len(shape))
    point = {"x": rng.normal(scale=2.0, size=shape), "w": rng.normal(size=shape)}
    f = sg.graph(GELU, shapes={"x": shape, "w": shape}).compile(wrt=["x"])
    agrees(f, gelu_by_hand, point, dtype, ["x"])
    text = function_source(f.source, "value_and_grad")
    assert "x*x*x" in text and "**3" not in text
    assert "np.tanh(" not in text and text.count("np.exp(") == 1  # 1 + tanh(u) = 2σ(2u): one exp for both
    assert "np.tanh(" not in function_source(f.source, "forward")  # forward caches that exp for backward
    assert "np.exp(" not in function_source(f.source, "backward")
    assert "np.sqrt(2)/np.sqrt(np.pi)*" in text  # the constant first: one pass over the array
    assert "dq2 = " not in text  # 0.044715*dq4, read once, joined its reader


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T, d", [(4, 3), (6, 5), (1, 2)])
def test_attention_scores_equal_numpy_by_hand(T, d, dtype):
    rng = np.random.default_rng(T)
    shapes = {"Q": (T, d), "K": (T, d), "W": (T, T)}
    point = {n: rng.normal(size=s) for n, s in shapes.items()}
    f = sg.graph(f"sum(softmax(Q @ K.T / sqrt({d}), axis=-1) * W)", shapes=shapes).compile(wrt=["Q", "K"])
    agrees(f, attention_by_hand, point, dtype, ["Q", "K"])
    for name in ("value_and_grad", "forward"):
        text = function_source(f.source, name)
        assert text.count("np.exp(") == 1 and text.count("np.max(") == 1, name  # one softmax, one exp
        assert "np.log(" not in text, name  # the softmax alone needs no log
    assert "np.exp(" not in function_source(f.source, "backward")  # it reads the softmax


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5), (1, 4), (6, 2)])
def test_layer_norm_equals_numpy_by_hand(shape, dtype):
    rng = np.random.default_rng(shape[0])
    shapes = {"x": shape, "gamma": shape[1:], "beta": shape[1:], "w": shape}
    point = {n: rng.normal(size=s) for n, s in shapes.items()}
    f = sg.graph(layer_norm, shapes=shapes).compile(wrt=["x", "gamma", "beta"])
    agrees(f, layer_norm_by_hand, point, dtype, ["x", "gamma", "beta"])
    text = function_source(f.source, "value_and_grad")
    assert "np.sum(-" not in text  # -np.sum(dq2, ...): no negated copy
    assert text.count("np.broadcast_to(") <= 1  # the mean's column is not stretched where it is read


def test_layer_norm_with_a_named_batch():
    shapes = {"x": ("N", 4), "gamma": (4,), "beta": (4,), "w": ("N", 4)}
    f = sg.graph(layer_norm, shapes=shapes).compile(wrt=["x", "gamma", "beta"])
    rng = np.random.default_rng(7)
    for n in (1, 3, 5):
        point = {"x": rng.normal(size=(n, 4)), "gamma": rng.normal(size=4), "beta": rng.normal(size=4),
                 "w": rng.normal(size=(n, 4))}
        agrees(f, layer_norm_by_hand, point, np.float64, ["x", "gamma", "beta"])


@pytest.mark.parametrize("text, shapes", [
    ("sum(log_softmax(x, axis=-1) * w) + sum(softmax(x, axis=-1) * v)",
     {"x": (3, 4), "w": (3, 4), "v": (3, 4)}),
    ("sum(softmax(x, axis=0) * w)", {"x": (3, 4), "w": (3, 4)}),
    ("sum(softmax(x) * w)", {"x": (5,), "w": (5,)}),
    ("sum(softmax(Q @ K.mT / 2, axis=-1) @ V)", {"Q": (2, 3, 4), "K": (2, 3, 4), "V": (2, 3, 2)}),
    ("mean(softmax_cross_entropy(s, y)) + sum(softmax(s, axis=1) * s)", {"s": (4, 3), "y": (4,)}),
    ("logsumexp(x, axis=1) @ v + sum(exp(x - logsumexp(x, axis=1, keepdims=True)))",
     {"x": (3, 4), "v": (3,)}),
])
def test_softmaxes_sharing_their_exponentials_keep_every_gradient(text, shapes):
    rng = np.random.default_rng(1)
    dtypes = {"y": int} if "y" in shapes else None
    g = sg.graph(text, shapes=shapes, dtypes=dtypes)
    point = {n: rng.normal(size=s) for n, s in shapes.items() if n != "y"}
    if "y" in shapes:
        point["y"] = np.array([0, 2, 1, 2])
    f = g.compile()
    reals = [n for n in point if n != "y"]
    value, grads = f.value_and_grad(**point)
    assert value == pytest.approx(f(**point), rel=1e-12)
    out, cache = f.forward(**point)
    again = f.backward(np.ones_like(out), cache)
    numeric = central_differences(lambda **p: float(np.sum(f(**p))), point, reals)
    for n in reals:
        np.testing.assert_allclose(grads[n], numeric[n], rtol=1e-6, atol=1e-8, err_msg=n)
        np.testing.assert_allclose(again[n], grads[n], rtol=1e-12, atol=1e-14, err_msg=n)


def test_the_adjoints_read_the_forward_values_instead_of_computing_them_again():
    f = sg.graph("sum(exp(x) * w + exp(x))", shapes={"x": (3,), "w": (3,)}).compile()
    assert function_source(f.source, "value_and_grad").count("np.exp(") == 1
    assert "np.exp(" not in function_source(f.source, "backward")
    point = {"x": np.array([0.5, -1.0, 2.0]), "w": np.array([1.5, -2.0, 0.25])}
    _, grads = f.value_and_grad(**point)
    np.testing.assert_allclose(grads["x"], np.exp(point["x"]) * (point["w"] + 1), rtol=1e-15)
    np.testing.assert_allclose(grads["w"], np.exp(point["x"]), rtol=1e-15)


@pytest.mark.parametrize("scale", [1.0, 1e3])  # logits of thousands: no exp may overflow
def test_the_fused_softmax_cross_entropy_backward_takes_one_exp_and_no_log(scale):
    from .test_tensors_nets import two_layer, two_layer_by_hand, two_layer_case

    shapes, values = two_layer_case()
    values = {**values, "W2": values["W2"] * scale}
    wrt = ["W1", "b1", "W2", "b2"]
    g = sg.graph(two_layer, shapes=shapes, dtypes={"y": int}).fuse("softmax_cross_entropy")
    f = g.compile(wrt=wrt)
    backward = function_source(f.source, "backward")
    assert backward.count("np.exp(") == 1 and "np.log(" not in backward  # softmax as e/Σe
    assert function_source(f.source, "value_and_grad").count("np.exp(") == 1  # one exp for both passes
    with np.errstate(divide="ignore"):  # by hand, log(softmax) is -inf where the softmax rounds to 0
        want_value, want = two_layer_by_hand(**values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value, grads = f.value_and_grad(**values)
        out, cache = f.forward(**values)
        stepped = f.backward(1.0, cache)
    assert out == value and math.isfinite(value)
    assert value == pytest.approx(want_value, rel=1e-12) or scale > 1
    for n in wrt:
        np.testing.assert_allclose(grads[n], want[n], rtol=1e-10, atol=1e-12 * scale)
        np.testing.assert_allclose(stepped[n], want[n], rtol=1e-10, atol=1e-12 * scale)


def test_a_temporary_moves_into_the_forward_pass_only_as_a_whole_call():
    from symgrad.codegen import _hoisted

    forward = ["q9 = c**a*np.exp(b)", "q8 = xnp.exp(b) + q9"]
    adjoints = ["_c1 = np.exp(b)", "dq = _c1*2", "_c2 = a*np.exp(b)", "_c3 = np.exp(b)*q8"]
    assert _hoisted(forward, adjoints) == [
        "_c1 = np.exp(b)", "q9 = c**a*_c1", "q8 = xnp.exp(b) + q9",  # xnp.exp is another name
        "dq = _c1*2", "_c2 = a*np.exp(b)", "_c3 = np.exp(b)*q8"]  # a product is not one call


@pytest.mark.parametrize("a", [0.0, 1e-9, -0.3, 2.5, -10.0, 19.0, 25.0, -100.0, 354.0, -400.0, 800.0])
def test_the_derivative_of_tanh_is_exact_where_one_minus_tanh_squared_rounds_to_zero(a):
    f = sg.graph("tanh(x)").compile()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way
        got = f.value_and_grad(x=np.array([a]))[1]["x"][0]
        scalar = f.value_and_grad(x=a)[1]["x"]
        interpreted = sg.graph("tanh(x)").backprop(x=a).grads["x"]
    want = float(mpmath.sech(mpmath.mpf(a)) ** 2)
    for value in (got, scalar, interpreted):
        assert value == pytest.approx(want, rel=1e-13, abs=0.0)  # 0.0 where it underflows


def test_products_print_scalars_then_small_arrays_first():
    q, a, b, c = (sp.Symbol(n, real=True) for n in ("q", "a", "b", "c"))
    shapes = {q: (3,), a: (3, 1), b: (3, 4), c: (3, 1)}
    assert numpy_code(sp.sqrt(2) * q / sp.sqrt(sp.pi), shapes) == "np.sqrt(2)/np.sqrt(np.pi)*q"
    assert numpy_code(a * b * c, shapes) == "a*c*b"  # two columns, then one pass over b
    assert numpy_code(q**3, shapes) == "(q*q*q)" and numpy_code(q**4, shapes) == "(q*q*q*q)"
    assert numpy_code(a / q**3, shapes) == "a/(q*q*q)"  # after a "/", a product needs its parentheses
    assert numpy_code((q + 1) ** 3, shapes) == "(q + 1)**3" and numpy_code(q**5, shapes) == "q**5"
    assert numpy_code(b - a, shapes) == "b - a"
    rng = np.random.default_rng(0)
    env = {"np": np, **{str(s): rng.normal(size=shape) for s, shape in shapes.items()}}
    for expr in (sp.sqrt(2) * q / sp.sqrt(sp.pi), a * b * c / 3, q**3, -(q**4), b - a * c, -a * b + 2 * c,
                 -2 * a / q**3, c / q**4, q**-3, 2 ** (q**3), a / (q**3 + 1)):
        want = sp.lambdify([q, a, b, c], expr, "numpy")(env["q"], env["a"], env["b"], env["c"])
        np.testing.assert_allclose(eval(numpy_code(expr, shapes), env), want, rtol=1e-14)


def test_numbers_leave_sums():
    f = sg.graph("sum(exp(x - y))", shapes={"x": (3, 4), "y": (3, 1)}).compile()
    assert "np.sum(-" not in f.source
    rng = np.random.default_rng(3)
    point = {"x": rng.normal(size=(3, 4)), "y": rng.normal(size=(3, 1))}
    _, grads = f.value_and_grad(**point)
    e = np.exp(point["x"] - point["y"])
    np.testing.assert_allclose(grads["x"], e, rtol=1e-14)
    np.testing.assert_allclose(grads["y"], -e.sum(axis=1, keepdims=True), rtol=1e-14)
