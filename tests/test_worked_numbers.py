"""DESIGN.md's worked numbers, reproduced from the lectures."""

import pytest

import symgrad as sg

NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_POINT = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)


def test_add_then_multiply():
    g = sg.graph("(x + y) * z")
    t = g.backprop(x=-2, y=5, z=-4)
    assert t.values["q1"] == 3
    assert t.value == -12
    assert t.grads == {"x": -4, "y": -4, "z": 3}
    # the mul gate swaps its inputs, the add gate distributes the upstream gradient
    assert t.local[("q2", "q1")] == -4 and t.local[("q2", "z")] == 3
    assert t.sent[("q1", "x")] == t.sent[("q1", "y")] == t.node_grads["q1"] == -4


def test_sigmoid_neuron_has_the_lectures_eight_nodes():
    g = sg.graph(NEURON)
    labels = [g.nx.nodes[n]["label"] for n in g.operations]
    assert labels == ["*", "*", "+", "+", "*-1", "exp", "+1", "1/x"]
    assert g.operations == [f"q{i}" for i in range(1, 9)]


def test_sigmoid_neuron_forward_and_backward_values():
    t = sg.graph(NEURON).backprop(**NEURON_POINT)
    forward = [t.values[f"q{i}"] for i in range(1, 9)]
    assert forward == pytest.approx([-2, 6, 4, 1, -1, 0.36788, 1.36788, 0.73106], abs=1e-5)
    backward = [t.node_grads[f"q{i}"] for i in range(8, 0, -1)]
    assert [round(v, 2) for v in backward] == [1.0, -0.53, -0.53, -0.2, 0.2, 0.2, 0.2, 0.2]
    assert t.grads == pytest.approx(
        dict(w0=-0.19661, x0=0.39322, w1=-0.39322, x1=-0.58983, w2=0.19661), abs=1e-5
    )


def test_sigmoid_neuron_local_derivatives_are_the_lectures():
    g = sg.graph(NEURON)
    q5, q6, q7 = (g.symbol(f"q{i}") for i in (5, 6, 7))
    assert g.local_derivatives("q6") == {"q5": sg.exp(q5)}
    assert g.local_derivatives("q6", cached=True) == {"q5": q6}
    assert g.local_derivatives("q8") == {"q7": -1 / q7**2}
    assert g.local_derivatives("q5") == {"q4": -1}
    assert g.local_derivatives("q7") == {"q6": 1}


def test_max_gate_routes_the_gradient():
    t = sg.graph("max(z, w)").backprop(z=2, w=-1, dout=2)
    assert t.value == 2
    assert t.grads == {"z": 2, "w": 0}


def test_gradients_add_at_branches():
    g = sg.graph("x*x + x")
    t = g.backprop(x=3)
    assert t.value == 12
    assert t.grads == {"x": 7}  # 2x from the square, 1 from the other branch
    assert g.consumers("x") == ["q1", "q2"]
    assert t.sent[("q1", "x")] == 6 and t.sent[("q2", "x")] == 1


def test_shared_subexpression_is_one_node():
    g = sg.graph("exp(a) * exp(a) + exp(a)")
    exps = [n for n in g.operations if g.nx.nodes[n]["op"] == "exp"]
    assert len(exps) == 1
    t = g.backprop(a=0.5)
    assert t.grads["a"] == pytest.approx(2 * 2.718281828459045 ** 1.0 + 1.6487212707001282, rel=1e-12)
