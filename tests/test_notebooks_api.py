"""API behaviour the notebooks rely on, beyond what the other test files cover."""

from __future__ import annotations

import numpy as np

import symgrad as sg


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
