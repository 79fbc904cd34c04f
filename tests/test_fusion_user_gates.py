"""Users' ops as gates: ``define_op(..., spellings=...)`` declares the spellings fusion finds.

Each op is defined inside a ``with`` block, so its gate leaves with it.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.gates import USER_PATTERNS, canonical

from .conftest import central_differences


def swish_over_exp(x):
    return x / (1 + sp.exp(-x))


def swish(x):
    return x * sg.sigmoid(x)


def test_a_users_spelling_fuses_into_the_users_gate_and_its_gradient_is_right():
    with sg.define_op("swish", swish, spellings=[swish_over_exp]):
        g = sg.graph("x/(1 + exp(-x)) * y")
        f = g.fuse("swish")
        [gate] = f.gates
        assert f.nx.nodes[gate]["label"] == "swish" and str(f.expr(gate)) == "swish(x)"
        assert f.expand().nodes == g.nodes
        point = {"x": 0.7, "y": -1.3}
        value, grads = f.compile().value_and_grad(**point)
        assert value == pytest.approx(0.7 / (1 + np.exp(-0.7)) * -1.3)
        expected = central_differences(lambda **v: 1 / (1 + np.exp(-v["x"])) * v["x"] * v["y"], point)
        for name in point:
            assert grads[name] == pytest.approx(expected[name], rel=1e-7)
        assert sg.check_grad(f.compile(), **point).ok
        # a set of nodes spelling it is named after the gate too
        assert f.nx.nodes[gate]["label"] == g.fuse(set(g.operations) - {g.output}).nx.nodes[gate]["label"]
    assert "swish" not in USER_PATTERNS
    with pytest.raises(sg.FusionError, match="unknown pattern 'swish'"):
        sg.graph("x/(1 + exp(-x))").fuse("swish")


def test_a_fragile_users_spelling_is_linted_and_replaced_by_the_stable_gate():
    with sg.define_op("swish", swish, spellings=[swish_over_exp], fragile="exp(-x) overflows once x < -709"):
        g = sg.graph("x/(1 + exp(-x))")
        [finding] = [f for f in g.lint() if f.gate == "swish"]
        assert finding.reason == "exp(-x) overflows once x < -709" and str(finding.replacement) == "swish(x)"
        with pytest.raises(sg.SymgradError):
            g.backprop(x=-1000.0)
        t = g.fuse_stable().backprop(x=-1000.0)
        assert t.value == pytest.approx(0.0, abs=1e-300) and np.isfinite(t.grads["x"])


def test_canonical_knows_a_users_gate_only_while_it_is_defined():
    x = sp.Symbol("x", real=True)
    with sg.define_op("swish", swish, spellings=[swish_over_exp]) as op:
        assert canonical(2 * swish_over_exp(x) + 1) == 2 * op(x) + 1
    assert canonical(swish_over_exp(x)) == x * sg.sigmoid(x)  # the built-in gates only


@pytest.mark.parametrize("spelling, message", [
    (lambda x: x / (1 + sp.exp(x)), "is not swish: they differ"),
    (lambda x: x**2, "has no function"),
    (lambda x: "x", "has no function"),
    (lambda x, y: x, "cannot be built"),
])
def test_a_wrong_spelling_is_refused_and_nothing_is_left_defined(spelling, message):
    with pytest.raises(sg.SymgradError, match=message):
        sg.define_op("swish", swish, spellings=[spelling])
    assert "swish" not in sg.OPS and "swish" not in USER_PATTERNS


@pytest.mark.parametrize("name", ["affine", "affine_relu"])
def test_a_gate_cannot_take_a_built_in_gates_name(name):
    with pytest.raises(sg.SymgradError, match="name of a built-in gate"):
        sg.define_op(name, swish, spellings=[swish_over_exp])
    assert name not in sg.OPS and name not in USER_PATTERNS


def test_fragile_needs_spellings():
    with pytest.raises(sg.SymgradError, match="give spellings="):
        sg.define_op("swish", swish, fragile="overflows")
    assert "swish" not in sg.OPS


def gelu_tanh(x):
    return x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Float("0.044715") * x**3)))


def test_gelu_spelled_out_over_an_array_fuses_into_one_gelu_node():
    with sg.define_op("gelu", gelu_tanh, spellings=[gelu_tanh]):
        g = sg.graph("sum(x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715*x**3))) * w)",
                     shapes={"x": (3,), "w": (3,)})
        f = g.fuse("gelu")
        assert [f.nx.nodes[n]["label"] for n in f.gates] == ["gelu"]
        assert len(f.operations) == 3  # gelu, *, sum
        point = {"x": np.array([0.1, -0.5, 2.0]), "w": np.array([1.5, -2.0, 0.25])}
        value, grads = f.compile().value_and_grad(**point)
        spelled, expected = g.compile().value_and_grad(**point)
        assert value == pytest.approx(spelled)
        for name in point:
            assert grads[name] == pytest.approx(expected[name], rel=1e-12)
        assert sg.check_grad(f.compile(), **point).ok
