"""check_grad and check_local: right gradients pass, wrong ones are caught, kinks are kinks."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symgrad as sg

NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
POINT = dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)


def hand_written(w0, x0, w1, x1, w2):
    """The lecture's sigmoid neuron, value and gradients, as a student would write it."""
    dot = w0 * x0 + w1 * x1 + w2
    f = 1.0 / (1.0 + math.exp(-dot))
    ddot = (1 - f) * f
    return f, {"w0": x0 * ddot, "x0": w0 * ddot, "w1": x1 * ddot, "x1": w1 * ddot, "w2": ddot}


def altered(fn, change):
    def wrong(**inputs):
        value, grads = fn(**inputs)
        return value, change(dict(grads))
    return wrong


@pytest.mark.parametrize("method", ["central", "directional", "complex"])
def test_correct_gradients_pass(method):
    compiled = sg.graph(NEURON).compile()
    for f in (compiled, hand_written, sg.graph(NEURON)):
        r = sg.check_grad(f, **POINT, method=method)
        assert r.ok and r.max_rel_error < 1e-8, str(r)
    assert "ok" in str(sg.check_grad(compiled, **POINT))


def test_complex_step_is_exact_to_rounding_where_the_function_is_analytic():
    r = sg.check_grad(sg.graph("exp(x) * sin(y) / (1 + x**2)").compile(), x=0.3, y=-1.2, method="complex")
    assert r.ok and r.max_rel_error < 1e-14 and not r.note
    r = sg.check_grad(sg.graph("sigmoid(x) * y").compile(), x=0.3, y=2.0, method="complex")
    assert r.ok and "complex step unavailable" in r.note  # |x| in its spelling is not analytic
    r = sg.check_grad(sg.graph("softplus(x) * y").compile(), x=0.3, y=2.0, method="complex")
    assert r.ok and "complex step unavailable" in r.note  # np.logaddexp takes no complex numbers
    r = sg.check_grad(sg.graph("abs(x) * y").compile(), x=0.3, y=2.0, method="complex")
    assert r.ok and "abs" in r.note  # |x| is not analytic: its complex step would be wrong

    def student(x, y):  # right gradients, but np.abs drops the imaginary part
        return np.abs(x) * y, {"x": np.sign(x) * y, "y": np.abs(x)}

    r = sg.check_grad(student, x=0.3, y=2.0, method="complex")
    assert r.ok and "not analytic" in r.note


@pytest.mark.parametrize("name, change, worst", [
    ("sign flipped", lambda g: {k: -v for k, v in g.items()}, 1.0),
    ("off by 2", lambda g: {**g, "x1": 2 * g["x1"]}, 1 / 3),
])
def test_wrong_gradients_are_caught(name, change, worst):
    r = sg.check_grad(altered(hand_written, change), **POINT)
    assert not r.ok and r.max_rel_error == pytest.approx(worst, rel=1e-6)
    assert "FAIL" in str(r)
    failing = {row.name for row in r.rows if row.status == "FAIL"}
    assert failing == ({"x1"} if name == "off by 2" else set(POINT))
    row = r.inputs["x1"]
    assert row.analytic == pytest.approx((2 if name == "off by 2" else -1) * row.numeric, rel=1e-6)
    assert row.numeric == pytest.approx(-0.5898358, rel=1e-6)


def test_missing_and_misshapen_gradients_fail_with_a_note():
    r = sg.check_grad(altered(hand_written, lambda g: {k: v for k, v in g.items() if k != "w2"}), **POINT)
    assert not r.ok and r.inputs["w2"].note == "no gradient returned"
    r = sg.check_grad(altered(hand_written, lambda g: {**g, "w2": [1.0, 2.0]}), **POINT)
    assert not r.ok and "shape (2,)" in r.inputs["w2"].note


def large(n=50):
    rng = np.random.default_rng(3)
    return rng.uniform(-2, 2, (n, n))


def sin_sum(wrong_at=None):
    def f(x):
        grad = np.cos(x)
        if wrong_at is not None:
            grad = grad.copy()
            grad[wrong_at] *= 1.01
        return float(np.sum(np.sin(x))), {"x": grad}
    return f


def test_one_wrong_element_in_a_large_tensor_is_caught_when_sampled():
    x, wrong_at = large(), (37, 42)
    assert sg.check_grad(sin_sum(), x=x, sample=250).ok
    caught = 0
    for seed in range(30):
        r = sg.check_grad(sin_sum(wrong_at), x=x, sample=250, seed=seed)
        row = r.inputs["x"]
        assert row.checked == 250 and len(set(row.indices)) == 250
        sampled = wrong_at in row.indices
        assert r.ok == (not sampled)
        if sampled:
            caught += 1
            assert row.index == wrong_at and row.rel_error == pytest.approx(0.01 / 2.01, rel=1e-4)
    assert caught >= 1


def test_directional_mode_catches_one_wrong_element_in_a_handful_of_evaluations():
    x, calls = large(), []

    def counted(f):
        def g(**inputs):
            calls.append(1)
            return f(**inputs)
        return g

    r = sg.check_grad(counted(sin_sum((37, 42))), x=x, method="directional", directions=3)
    assert not r.ok and len(r.rows) == 3 and len(calls) == 1 + 2 * 3
    calls.clear()
    assert sg.check_grad(counted(sin_sum()), x=x, method="directional").ok and len(calls) == 7


def test_kink_at_relu_zero_is_reported_as_kink_not_failure():
    f = sg.graph("relu(x) * y").compile()
    r = sg.check_grad(f, x=0.0, y=2.0)
    assert r.ok and r.inputs["x"].status == "kink" and r.inputs["y"].status == "ok"
    assert "kink" in str(r)
    # the same wrong-looking number away from the kink is a failure
    r = sg.check_grad(altered(f.value_and_grad, lambda g: {**g, "x": g["x"] + 1.0}), x=0.5, y=2.0,
                      graph="relu(x) * y")
    assert not r.ok and r.inputs["x"].status == "FAIL"


@pytest.mark.parametrize("text, point", [
    ("max(z, w)", dict(z=1.0, w=1.0)),
    ("abs(x - y) + x", dict(x=2.0, y=2.0)),
    ("min(x, 2) * y", dict(x=2.0, y=3.0)),
])
def test_kinks_of_max_abs_min(text, point):
    r = sg.check_grad(sg.graph(text).compile(), **point)
    assert r.ok and any(row.status == "kink" or row.kinks for row in r.rows)


def test_kinks_are_found_for_a_plain_callable_given_its_graph():
    def student(x, y):
        return max(x, 0.0) * y, {"x": (1.0 if x > 0 else 0.0) * y, "y": max(x, 0.0)}
    assert sg.check_grad(student, x=0.0, y=2.0, graph="relu(x) * y").inputs["x"].status == "kink"


def test_sampled_large_tensor_with_a_compiled_array_graph():
    g = sg.graph("x * y + sin(x)", shapes={"x": (40, 30)})
    r = sg.check_grad(g.compile(), x=large()[:40, :30], y=0.5, sample=50)
    assert r.ok and r.inputs["x"].checked == 50 and r.inputs["y"].checked == 1


def test_batches_are_checked_as_the_sum_of_the_value():
    f = sg.graph("sigmoid(x * y)").compile()
    assert sg.check_grad(f, x=np.linspace(-2, 2, 7), y=0.5).ok


def test_check_grad_options_and_errors():
    f = sg.graph("x * y").compile(wrt=["x"])
    assert [row.name for row in sg.check_grad(f, x=1.0, y=2.0).rows] == ["x"]
    assert sg.check_grad(lambda method: (method ** 2, {"method": 2 * method}), {"method": 3.0}).ok
    with pytest.raises(sg.InputError, match="unknown method"):
        sg.check_grad(f, x=1.0, y=2.0, method="forward")
    with pytest.raises(sg.InputError, match=r"must return \(value"):
        sg.check_grad(lambda x: x, x=1.0)
    with pytest.raises(sg.InputError, match="cannot check"):
        sg.check_grad(3, x=1.0)


# -- check_local ---------------------------------------------------------------------------


def test_check_local_passes_every_gate_of_a_correct_graph():
    r = sg.check_local(sg.graph(NEURON), **POINT)
    assert r.ok and len(r.rows) == 12 and "all 12 local derivatives agree" in str(r)


def test_check_local_names_the_one_wrong_gate():
    g = sg.graph(NEURON)
    bad = g.with_local_derivative("q6", "q5", "-q6")  # exp' = -exp: a wrong gate
    assert not sg.check_grad(bad.compile(), **POINT).ok  # the whole gradient is off ...
    r = sg.check_local(bad, **POINT)  # ... and this says where
    assert r.wrong == ("q6",)
    assert [row.status for row in r.rows if row.node != "q6"] == ["ok"] * 11
    assert "q6 (exp): ∂q6/∂q5 = -q6" in str(r)
    assert g.local_derivatives("q6", cached=True) == {"q5": g.symbol("q6")}  # the original is unchanged


def test_a_hand_written_gate_derivative_that_is_right_passes():
    g = sg.graph("sigmoid(x) * y").with_local_derivative("q1", "x", "q1*(1 - q1)")
    assert sg.check_local(g, x=0.4, y=-1.0).ok
    assert sg.check_grad(g.compile(), x=0.4, y=-1.0).ok


def test_check_local_on_arrays_and_kinks():
    g = sg.graph("relu(x) * y", shapes={"x": (3,)})
    r = sg.check_local(g, x=[-1.0, 0.0, 2.0], y=3.0)
    assert r.ok and [row.kinks for row in r.rows if row.node == "q1"] == [1]
    bad = g.with_local_derivative("q2", "y", "2*q1")
    assert sg.check_local(bad, x=[-1.0, 0.5, 2.0], y=3.0).wrong == ("q2",)


def test_with_local_derivative_refuses_unknown_names():
    g = sg.graph("exp(x) * y")
    with pytest.raises(sg.SymgradError, match="not an operand"):
        g.with_local_derivative("q1", "y", "1")
    with pytest.raises(sg.SymgradError, match="may use x, q1, not z"):
        g.with_local_derivative("q1", "x", "z*q1")
    with pytest.raises(sg.ParseError):
        g.with_local_derivative("q1", "x", "__import__('os')")


# -- fused gates -------------------------------------------------------------------


def test_check_local_checks_fused_gates_and_names_a_wrong_one():
    g = sg.graph("x * sigmoid(x)").fuse_all("swish")
    gate = g.gates[0]
    right = sg.check_local(g, x=0.7)
    assert right.ok and [r.node for r in right.rows] == [gate]
    bad = g.with_local_derivative(gate, "x", "sigmoid(x)")  # forgets the x·σ'(x) term
    r = sg.check_local(bad, x=0.7)
    assert r.wrong == (gate,)
    s = 1 / (1 + np.exp(-0.7))
    assert np.isclose(r.rows[0].analytic, s) and np.isclose(r.rows[0].numeric, s + 0.7 * s * (1 - s))


def test_check_local_checks_the_sigmoid_gate_of_the_neuron():
    g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").fuse("sigmoid")
    point = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    rows = {r.node: r for r in sg.check_local(g, **point).rows}
    assert abs(rows[g.gates[0]].analytic - 0.1966) < 5e-5
    bad = g.with_local_derivative(g.gates[0], "q4", "q8")  # σ instead of σ(1 − σ)
    assert sg.check_local(bad, **point).wrong == (g.gates[0],)


def test_check_local_names_a_wrong_fused_gate():
    g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").fuse("sigmoid")
    point = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    assert sg.check_local(g, **point).ok
    assert any(r.node == "q8" for r in sg.check_local(g, **point).rows)
    bad = g.with_local_derivative("q8", "q4", "q8*(1 + q8)")
    assert sg.check_local(bad, **point).wrong == ("q8",)
    assert not sg.check_grad(bad.compile(), **point).ok


def relu_sum(slope_at_zero: float = 0.0, bias: float = 0.0):
    """A hand-written sum(relu(x)) for scalars or arrays, with ``slope_at_zero`` at 0."""
    def f(x):
        a = np.asarray(x, dtype=float)
        g = np.where(a > 0, 1.0, np.where(a == 0, slope_at_zero, 0.0)) + bias
        return float(np.sum(np.maximum(a, 0.0))), {"x": g if a.ndim else float(g)}
    return f


@pytest.mark.parametrize("slope", [0.0, 0.25, 1.0])  # (0.5 is the central difference: ok)
def test_a_plain_callable_has_kinks_where_one_sided_differences_disagree(slope):
    r = sg.check_grad(relu_sum(slope), x=0.0)
    assert r.ok and r.inputs["x"].status == "kink"
    assert sg.check_grad(lambda x: (max(0, x), {"x": float(x > 0)}), x=0).inputs["x"].status == "kink"
    x = np.array([1.5, 0.0, -2.0, 0.3])
    row = sg.check_grad(relu_sum(slope), x=x).inputs["x"]
    assert row.status == "ok" and row.kinks == 1
    assert sg.check_grad(relu_sum(slope), x=x, method="directional").ok

    def tie(x, y):
        return max(x, y), {"x": float(x >= y), "y": float(y > x)}
    r = sg.check_grad(tie, x=1.0, y=1.0)
    assert r.ok and [row.status for row in r.rows] == ["kink", "kink"]
    assert sg.check_grad(tie, x=1.0, y=-1.0).ok  # no tie: plain rows
    assert [row.status for row in sg.check_grad(tie, x=1.0, y=-1.0).rows] == ["ok", "ok"]


def test_a_wrong_gradient_of_a_plain_callable_still_fails_at_and_beside_a_kink():
    assert sg.check_grad(relu_sum(2.0), x=0.0).inputs["x"].status == "FAIL"  # no subgradient
    assert sg.check_grad(relu_sum(-0.5), x=0.0).inputs["x"].status == "FAIL"
    x = np.array([1.5, 0.0, -2.0, 0.3])
    r = sg.check_grad(relu_sum(0.0, bias=0.25), x=x)
    assert not r.ok and r.inputs["x"].status == "FAIL" and r.inputs["x"].index != (1,)
    assert not sg.check_grad(relu_sum(0.0, bias=0.25), x=x, method="directional").ok
    near = np.array([-5e-6, 1.0, 2e-6, -3e-7])  # kinks within one step h = 1e-5 of the point
    row = sg.check_grad(relu_sum(), x=near).inputs["x"]
    assert row.status == "ok" and row.kinks == 3
    assert sg.check_grad(relu_sum(bias=1e-3), x=near).inputs["x"].status == "FAIL"
    x32 = np.random.default_rng(0).uniform(-2, 2, size=50)  # rounding noise is no kink

    def noisy(x):
        return float(np.sum(np.sin(x.astype(np.float32)))), {"x": np.cos(x) * 1.001}
    assert sg.check_grad(noisy, x=x32).inputs["x"].kinks == 0
    smooth = lambda x: (float(np.sum(x**2)), {"x": 2 * x + 1e-3})  # noqa: E731
    assert not sg.check_grad(smooth, x=np.array([0.0, 1.0])).ok  # curvature is no kink
    assert not sg.check_grad(lambda x: (np.sin(x), {"x": np.cos(x) + 1e-3}), x=0.2).ok

    def both(x, y):  # each partial is a one-sided slope, but (1, 1) is no subgradient of max
        return max(x, y), {"x": 1.0, "y": 1.0}
    assert not sg.check_grad(both, x=1.0, y=1.0, method="directional").ok
