"""The graph: structure as written, granularity, names, sharing, the networkx view."""

import networkx as nx
import numpy as np
import pytest
import sympy as sp

import symgrad as sg


def ops_of(g):
    return [(n, g.nx.nodes[n]["label"], str(g.expr(n))) for n in g.operations]


def test_structure_follows_the_text_not_sympys_canonical_form():
    g = sg.graph("-(a + b)")
    assert ops_of(g) == [("q1", "+", "a + b"), ("q2", "*-1", "-q1")]
    assert str(g.expression()) == "-a - b"  # what SymPy alone would have built


def test_callable_records_the_operations_it_performs():
    def neuron(w0, x0, w1, x1, w2):
        return 1 / (1 + sg.exp(-(w0 * x0 + w1 * x1 + w2)))

    traced, parsed = sg.graph(neuron), sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))")
    assert ops_of(traced) == ops_of(parsed)
    assert traced.inputs == ("w0", "x0", "w1", "x1", "w2")
    assert str(traced).startswith("graph(w0, x0, w1, x1, w2): q8 = neuron(w0, x0, w1, x1, w2)")


def test_sympy_expression_follows_sympys_tree():
    x, y, z = sp.symbols("x y z")
    g = sg.graph((x + y) * z)
    assert ops_of(g) == [("q1", "+", "x + y"), ("q2", "*", "q1*z")]
    g = sg.graph(x - y / z)
    assert [label for _, label, _ in ops_of(g)] == ["/", "-"]
    g = sg.graph(sg.sigmoid(x) * sp.sqrt(y) + sp.Max(x, y, z))
    assert {g.nx.nodes[n]["op"] for n in g.operations} == {"sigmoid", "sqrt", "mul", "max", "add"}


def test_granularity():
    text = "a*b*c + a + b + 1"
    primitive = sg.graph(text)
    nary = sg.graph(text, granularity="nary")
    assert [label for _, label, _ in ops_of(primitive)] == ["*", "*", "+", "+", "+1"]
    assert ops_of(nary) == [("q1", "*", "a*b*c"), ("q2", "+", "a + b + q1 + 1")]
    point = dict(a=0.5, b=-2.0, c=3.0)
    assert primitive.backprop(**point).grads == nary.backprop(**point).grads


def test_nary_keeps_a_shared_node_separate():
    g = sg.graph("(a + b) * (a + b) + c", granularity="nary")
    assert ops_of(g) == [("q1", "+", "a + b"), ("q2", "*", "q1**2"), ("q3", "+", "c + q2")]


def test_names_are_stable_and_avoid_the_inputs():
    assert sg.graph("q1 * q2 + 1").operations == ["t1", "t2"]
    assert sg.graph("x * y + 1").operations == ["q1", "q2"]


def test_the_networkx_graph_and_its_attributes():
    g = sg.graph("exp(x) * y")
    assert isinstance(g.nx, nx.DiGraph)
    assert list(nx.topological_sort(g.nx)) == g.nodes == ["x", "y", "q1", "q2"]
    q1 = g.nx.nodes["q1"]
    attributes = (q1["kind"], q1["op"], q1["operands"], q1["label"], q1["shape"])
    assert attributes == ("op", "exp", ("x",), "exp", ())
    assert q1["symbol"] == sp.Symbol("q1", real=True) and q1["expr"] == sp.exp(sp.Symbol("x", real=True))
    edge = g.nx.edges["x", "q1"]
    assert edge["derivative"] == q1["expr"] and edge["cached"] == q1["symbol"]
    assert g.nx.nodes["x"]["kind"] == "input"


def test_cached_forms_reuse_the_output_where_simpler():
    cases = {"exp(a)": "q1", "1/a": "-q1**2", "sqrt(a)": "1/(2*q1)", "tanh(a)": "1 - q1**2",
             "sigmoid(a)": "q1*(1 - q1)", "log(a)": "1/a", "a**3": "3*a**2"}
    for text, cached in cases.items():
        g = sg.graph(text)
        assert str(g.local_derivatives("q1", cached=True)["a"]) == cached, text


def test_unused_input_gets_a_zero_gradient():
    g = sg.graph(lambda x, y: 2 * x)
    assert g.inputs == ("x", "y")
    assert g.backprop(x=1.0, y=5.0).grads == {"x": 2.0, "y": 0.0}


def test_constant_and_identity_graphs():
    assert sg.graph("2 * 3").backprop().value == 6
    t = sg.graph("x").backprop(x=4.0, dout=3.0)
    assert (t.value, t.grads) == (4.0, {"x": 3.0})


def test_constants_fold_into_their_consumer():
    g = sg.graph("x * exp(2) + pi")
    assert [label for _, label, _ in ops_of(g)] == ["*exp(2)", "+pi"]
    assert g.backprop(x=1.0).grads["x"] == pytest.approx(7.38905609893065)


def test_graph_text_form():
    assert str(sg.graph("1/(1+exp(-x))")) == "\n".join([
        "graph(x): q4 = 1/(1+exp(-x))",
        "  q1 = -x        [*-1]",
        "  q2 = exp(q1)   [exp]",
        "  q3 = q2 + 1    [+1]",
        "  q4 = 1/q3      [1/x]",
        "  return q4",
    ])
    assert repr(sg.graph("x*y")) == "<Graph 'x*y': 1 operations, inputs x, y>"


def test_sympy_functions_also_build_sympy():
    x = sp.Symbol("x")
    assert sg.exp(x) == sp.exp(x)
    assert sg.sigmoid(x).rewrite(sp.exp) == 1 / (1 + sp.exp(-x))


@pytest.mark.parametrize("text, point, expected", [
    ("exp(3.0/(exp(-2) + 1))*abs(y)", {"y": 0.0}, {"y": 0.0}),  # sign(0) = 0 times the constant
    ("exp(2)*sin(y)", {"y": 0.0}, {"y": float(np.exp(2))}),
    ("(exp(1) + 2)*y*x", {"x": 0.0, "y": 0.0}, {"x": 0.0, "y": 0.0}),
    ("log(3)*y**2", {"y": 0.0}, {"y": 0.0}),
    ("x**3", {"x": 0.0}, {"x": 0.0}),
])
def test_a_derivative_never_divides_by_an_operand_the_plain_form_does_not(text, point, expected):
    """∂(c·a)/∂a = c: written through the node's value it would be q/a, 0/0 where a = 0."""
    g = sg.graph(text)
    with np.errstate(all="raise"):
        value, grads = g.compile().value_and_grad(**point)
    assert grads == pytest.approx(expected, rel=1e-12, abs=0)
    assert g.backprop(**point).grads == pytest.approx(expected, rel=1e-12, abs=0)
