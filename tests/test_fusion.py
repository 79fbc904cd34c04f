"""Fusion: node sets and patterns into gates, expansion, and the sets that are refused."""

import importlib

import networkx as nx
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.ops import logaddexp, logsigmoid, relu, sigmoid, softplus
from symgrad.program import build_program
from symgrad.tables import derivative_table

from .conftest import elementary

derive = importlib.import_module("symgrad.local_derivatives")

NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
POINT = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
LECTURE_GRADS = dict(w0=-0.1966, x0=0.3932, w1=-0.3932, x1=-0.5898, w2=0.1966)
S = {n: sp.Symbol(n, real=True) for n in ("x", "y", "z", "q4", "q8", *POINT)}
AFFINE = S["w0"] * S["x0"] + S["w1"] * S["x1"] + S["w2"]


def op_rows(g):
    return [(n, g.nx.nodes[n]["label"], g.expr(n)) for n in g.operations]


def same_node(a: dict, b: dict) -> bool:
    """Equal node attributes; a gate's body compared by the nodes it fused."""
    if a.keys() != b.keys() or any(a[k] != b[k] for k in a if k != "body"):
        return False
    if "body" not in a:
        return True
    x, y = a["body"], b["body"]
    fused = x.graph["fused"]
    return x.graph == y.graph and all(same_node(x.nodes[m], y.nodes[m]) for m in fused) and \
        set(x.edges) == set(y.edges) and all(x.edges[e] == y.edges[e] for e in x.edges)


def same_structure(a: sg.Graph, b: sg.Graph) -> None:
    """The same nodes with the same attributes, the same edges with the same derivatives."""
    assert set(a.nodes) == set(b.nodes)
    for n in a.nodes:
        assert same_node(a.nx.nodes[n], b.nx.nodes[n]), n
    assert set(a.nx.edges) == set(b.nx.edges)
    for e in a.nx.edges:
        assert a.nx.edges[e] == b.nx.edges[e], e
    order = {n: i for i, n in enumerate(b.nodes)}
    assert all(order[u] < order[v] for u, v in b.nx.edges), "nodes are not in topological order"


# -- the lecture's sigmoid gate -----------------------------------------------------


@pytest.mark.parametrize("how", ["set", "pattern", "named set"])
def test_sigmoid_neuron_fused_has_the_lectures_gradients(how):
    g = sg.graph(NEURON)
    s = {"set": lambda: g.fuse({"q5", "q6", "q7", "q8"}),
         "pattern": lambda: g.fuse("sigmoid"),
         "named set": lambda: g.fuse(["q8", "q6", "q7", "q5"], name="sigmoid")}[how]()
    assert [(n, label) for n, label, _ in op_rows(s)] == [
        ("q1", "*"), ("q2", "*"), ("q3", "+"), ("q4", "+"), ("q8", "sigmoid")]
    assert s.expr("q8") == sigmoid(S["q4"])
    fused, plain = s.backprop(**POINT), g.backprop(**POINT)
    assert fused.value == pytest.approx(0.7311, abs=1e-4)
    assert {k: round(v, 4) for k, v in fused.grads.items()} == LECTURE_GRADS
    assert fused.grads == pytest.approx(plain.grads, rel=1e-12)
    assert fused.node_grads["q4"] == pytest.approx(plain.node_grads["q4"], rel=1e-12)


def test_the_sigmoid_gates_local_gradient_is_sigma_times_one_minus_sigma():
    s = sg.graph(NEURON).fuse("sigmoid")
    q4, q8 = S["q4"], S["q8"]
    assert s.local_derivatives("q8") == {"q4": sigmoid(q4) * (1 - sigmoid(q4))}
    assert s.local_derivatives("q8", cached=True) == {"q4": q8 * (1 - q8)}
    assert str(s.local_derivatives("q8", cached=True)["q4"]) == "q8*(1 - q8)"
    assert sp.latex(s.local_derivatives("q8")["q4"]) == \
        r"\left(1 - \sigma\left(q_{4}\right)\right) \sigma\left(q_{4}\right)"
    t = s.backprop(**POINT)
    assert round(t.local[("q8", "q4")], 4) == 0.1966
    assert t.local[("q8", "q4")] == pytest.approx(t.value * (1 - t.value), rel=1e-12)


def test_fusing_returns_a_new_graph_and_leaves_the_original_alone():
    g = sg.graph(NEURON)
    before = [(n, dict(g.nx.nodes[n])) for n in g.nodes]
    s = g.fuse("sigmoid")
    assert s is not g and s.nx is not g.nx
    assert [(n, dict(g.nx.nodes[n])) for n in g.nodes] == before
    assert s.inputs == g.inputs and s.output == g.output and s.source == g.source


def test_a_gate_flows_through_the_program_and_the_interpreter_unchanged():
    s = sg.graph(NEURON).fuse("sigmoid")
    program = build_program(s)
    assert [(a.node, a.expr) for a in program.forward][-1] == ("q8", sigmoid(S["q4"]))
    dq4 = program.adjoint("q4")
    assert [term.consumer for term in dq4.terms] == ["q8"]
    assert dq4.expr == program.adjoint("q8").target * s.nx.edges["q4", "q8"]["numeric"]
    assert s.nx.edges["q4", "q8"]["numeric"] == S["q8"] * sigmoid(-S["q4"])


def test_tables_show_the_gate_as_one_node_with_its_local_gradient():
    s = sg.graph(NEURON).fuse("sigmoid")
    table = s.backprop(**POINT).table()
    nodes = [line.split()[0] for line in table.splitlines()[2:] if not line.startswith(" ")]
    assert nodes == ["w0", "x0", "w1", "x1", "w2", "q1", "q2", "q3", "q4", "q8"]
    gate_row = next(line for line in table.splitlines() if line.startswith("q8"))
    assert "sigmoid" in gate_row and "q8*(1 - q8)" in gate_row and "0.1966" in gate_row
    derivatives = derivative_table(s)
    assert "q8*(1 - q8)" in derivatives and "sigmoid(q4)" in derivatives  # the node's expression


def test_fuse_all_makes_the_local_gradients_the_full_gradients():
    g = sg.graph(NEURON)
    f = g.fuse_all()
    assert f.operations == ["q8"] and f.operands("q8") == list(g.inputs)
    assert f.expr("q8") == sigmoid(AFFINE)
    t = f.backprop(**POINT)
    assert t.grads == pytest.approx(g.backprop(**POINT).grads, rel=1e-12)
    assert {u: t.local[("q8", u)] for u in g.inputs} == pytest.approx(t.grads, rel=1e-12)
    full = elementary(g.expression())
    for u, d in f.local_derivatives("q8").items():
        assert sp.simplify(elementary(d) - sp.diff(full, sp.Symbol(u, real=True))) == 0
    cached = f.local_derivatives("q8", cached=True)
    assert cached["w2"] == S["q8"] * (1 - S["q8"])
    assert cached["w0"] == S["x0"] * S["q8"] * (1 - S["q8"])


def test_fuse_all_of_an_unrecognized_expression_keeps_its_name():
    g = sg.graph("x*y + sin(x)")
    f = g.fuse_all(name="f")
    assert op_rows(f) == [("q3", "f", S["x"] * S["y"] + sp.sin(S["x"]))]
    assert f.nx.nodes["q3"]["gate"] == "f" and f.nx.nodes["q3"]["kind"] == "gate"
    assert f.local_derivatives("q3") == {"x": S["y"] + sp.cos(S["x"]), "y": S["x"]}
    assert f.gates == ["q3"] and g.gates == []


def test_the_gate_derivative_is_simplified_and_rewritten_through_the_output():
    g = sg.graph("x / (x + y)")
    f = g.fuse_all()
    assert f.local_derivatives("q2")["x"] == S["y"] / (S["x"] + S["y"]) ** 2
    tanh = sg.graph("(exp(x)-exp(-x))/(exp(x)+exp(-x))").fuse_all()
    out = sp.Symbol(tanh.output, real=True)
    assert tanh.expr(tanh.output) == sp.tanh(S["x"])
    assert tanh.local_derivatives(tanh.output, cached=True) == {"x": 1 - out**2}
    exp = sg.graph("exp(x) * 1").fuse_all()
    assert exp.local_derivatives(exp.output, cached=True) == {"x": sp.Symbol(exp.output, real=True)}


@pytest.mark.parametrize("expr, cached", [
    ("1/(1 + exp(-a))", "q*(1 - q)"),
    ("exp(a)/(exp(a) + exp(b))", "q*(1 - q)"),
    ("(exp(a) - exp(-a))/(exp(a) + exp(-a))", "1 - q**2"),
    ("exp(a)", "q"),
    ("exp(a) + 1", "exp(a)"),  # q - 1 is no simpler: kept as derived
])
def test_the_cached_form_solves_for_an_exponential_through_the_output(expr, cached):
    a, b, q = sp.symbols("a b q", real=True)
    e = sp.sympify(expr, locals={"a": a, "b": b})
    plain, got = derive.local_derivative(e, a, q)
    assert str(got) == cached
    for va, vb in [(0.3, -1.2), (-2.0, 0.7), (1.5, 1.5)]:
        at = {a: va, b: vb}
        assert float(got.subs(q, e.subs(at)).subs(at)) == pytest.approx(float(plain.subs(at)), rel=1e-12)


# -- patterns ---------------------------------------------------------------------

X, Y, Z = S["x"], S["y"], S["z"]


@pytest.mark.parametrize("granularity", ["primitive", "nary"])
@pytest.mark.parametrize("pattern, text, gate", [
    ("sigmoid", "1/(1+exp(-x))", sigmoid(X)),
    ("sigmoid", "exp(x)/(1+exp(x))", sigmoid(X)),
    ("sigmoid", "1 - 1/(1+exp(x))", sigmoid(X)),
    ("sigmoid", "1/(exp(-x)+1)", sigmoid(X)),
    ("tanh", "(exp(x)-exp(-x))/(exp(x)+exp(-x))", sp.tanh(X)),
    ("tanh", "(exp(2*x)-1)/(exp(2*x)+1)", sp.tanh(X)),
    ("tanh", "(1-exp(-2*x))/(1+exp(-2*x))", sp.tanh(X)),
    ("tanh", "2*sigmoid(2*x) - 1", sp.tanh(X)),
    ("softplus", "log(1+exp(x))", softplus(X)),
    ("relu", "max(0, x)", relu(X)),
    ("relu", "max(x, 0)", relu(X)),
    ("logsigmoid", "log(1/(1+exp(-x)))", logsigmoid(X)),
    ("logsigmoid", "-log(1+exp(-x))", logsigmoid(X)),
    ("logsigmoid", "log(sigmoid(x))", logsigmoid(X)),
    ("logsumexp", "log(exp(x) + exp(y))", logaddexp(X, Y)),
    ("logsumexp", "log(exp(x) + exp(y) + exp(z))", logaddexp(X, Y, Z)),
    ("logsumexp", "log(exp(x) + exp(y) + 1)", logaddexp(0, X, Y)),
    ("softmax", "exp(x)/(exp(x) + exp(y) + exp(z))", sp.exp(X - logaddexp(X, Y, Z))),
    ("affine", "x*y + z", X * Y + Z),
])
def test_each_pattern_is_found_in_each_spelling(pattern, text, gate, granularity):
    g = sg.graph(text, granularity=granularity)
    f = g.fuse(pattern)
    assert op_rows(f) == [(g.output, pattern, gate)]
    point = {n: v for n, v in zip(g.inputs, [0.3, -0.7, 1.1])}
    a, b = g.backprop(**point), f.backprop(**point)
    assert b.value == pytest.approx(a.value, rel=1e-12)
    assert b.grads == pytest.approx(a.grads, rel=1e-10)
    same_structure(f.expand(), g)


def test_a_pattern_is_found_wherever_it_occurs_and_only_there():
    g = sg.graph("1/(1+exp(-x)) + 1/(1+exp(-(y*z))) + 1/(2+exp(-x)) + log(2 + x)")
    f = g.fuse("sigmoid")
    assert f.gates == ["q4", "q9"] and g.expr("q5") == Y * Z
    assert [f.expr(n) for n in f.gates] == [sigmoid(X), sigmoid(sp.Symbol("q5", real=True))]
    assert all(f.nx.nodes[n]["label"] == "sigmoid" for n in f.gates)
    # exp(-x) also feeds 1/(2 + exp(-x)): it stays for that use, and the gate recomputes it
    assert f.expr("q11") == sp.Symbol("q2", real=True) + 2 and "q11" in f.operands("q12")
    assert g.fuse("softplus").gates == [] and g.fuse("logsumexp").gates == []
    assert sg.graph("exp(x)/(1+exp(y))").fuse("sigmoid").gates == []


def test_the_gate_keeps_its_operands_outside():
    g = sg.graph(NEURON)
    assert g.fuse("sigmoid").operands("q8") == ["q4"]  # not the whole affine part
    both = g.fuse("affine").fuse("sigmoid")
    assert op_rows(both) == [
        ("q4", "affine", AFFINE),
        ("q8", "sigmoid", sigmoid(S["q4"]))]
    assert both.backprop(**POINT).grads == pytest.approx(g.backprop(**POINT).grads, rel=1e-12)


def test_a_pattern_gate_can_have_another_name():
    g = sg.graph(NEURON).fuse("sigmoid", name="σ")
    assert g.nx.nodes["q8"]["label"] == g.nx.nodes["q8"]["gate"] == "σ" and g.expr("q8") == sigmoid(S["q4"])


def test_a_primitive_gate_is_already_fused():
    g = sg.graph("sigmoid(x) + softplus(y)")
    assert g.fuse("sigmoid").gates == [] and g.fuse("softplus").gates == []
    assert g.fuse("sigmoid").nodes == g.nodes


def test_patterns_work_on_traced_and_sympy_graphs():
    def neuron(w, x, b):
        return 1 / (1 + sg.exp(-(w * x + b)))

    w, x, b = sp.symbols("w x b", real=True)
    for g in (sg.graph(neuron), sg.graph(1 / (1 + sp.exp(-(w * x + b))))):
        f = g.fuse("sigmoid")
        assert [f.nx.nodes[n]["label"] for n in f.gates] == ["sigmoid"]
        assert f.backprop(w=0.5, x=2.0, b=-0.3).grads == pytest.approx(
            g.backprop(w=0.5, x=2.0, b=-0.3).grads, rel=1e-12)


# -- expansion ------------------------------------------------------------------


def test_expand_undoes_nested_fusion_one_level_or_all_the_way():
    g = sg.graph(NEURON)
    s = g.fuse("affine").fuse("sigmoid")
    outer = s.fuse({"q4", "q8"}, name="neuron")
    assert outer.operations == ["q8"] and outer.nx.nodes["q8"]["label"] == "neuron"
    one = outer.expand(["q8"])
    same_structure(one, s)
    same_structure(outer.expand(), g)
    same_structure(s.expand(["q4"]), g.fuse("sigmoid"))
    assert nx.is_directed_acyclic_graph(outer.expand().nx)


def test_fuse_all_then_expand_is_the_original():
    for text in [NEURON, "(x + y) * z", "x*exp(x) + log(y)"]:
        g = sg.graph(text)
        same_structure(g.fuse_all().expand(), g)


# -- refused sets -----------------------------------------------------------------


@pytest.mark.parametrize("text, nodes, message", [
    (NEURON, {"q1", "q6"}, "the set is not connected: {q1} and {q6} share no edge"),
    (NEURON, {"q1", "q2"}, "the set is not connected: {q1} and {q2} share no edge"),
    ("(x+y)*z + (x+y)*w", {"q1", "q2", "q3"}, "the set has 2 outputs (q2, q3); a gate has one output"),
    ("(x + y) * z + (x + y)", {"q1", "q2"}, "q1 is also used by q3, outside the set"),
    (NEURON, {"w0", "q1"}, "w0 is an input, not an operation"),
    (NEURON, {"q1", "q99"}, "no node 'q99' in this graph"),
    (NEURON, set(), "nothing to fuse: the set of nodes is empty"),
    (NEURON, "sigmoids", "unknown pattern 'sigmoids'; did you mean 'sigmoid'? (patterns: sigmoid, softplus"),
    (NEURON, "q3", "to fuse nodes, pass a set: g.fuse({'q3'})"),
    (NEURON, 3, "give the nodes to fuse as a set of names, not 3"),
])
def test_invalid_sets_are_refused_with_the_reason(text, nodes, message):
    with pytest.raises(sg.FusionError) as e:
        sg.graph(text).fuse(nodes)
    assert message in str(e.value)
    assert isinstance(e.value, sg.SymgradError)


def test_other_refusals():
    g = sg.graph(NEURON)
    with pytest.raises(sg.FusionError, match="one-line, non-empty string"):
        g.fuse({"q7", "q8"}, name="")
    with pytest.raises(sg.FusionError, match="'q3' is not a gate of this graph"):
        g.expand(["q3"])
    with pytest.raises(sg.FusionError, match="nothing to fuse: the output x is not an operation"):
        sg.graph("x").fuse_all()
    assert sg.graph("exp(x)").fuse({"q1"}).operations == ["q1"]  # one node is a set too


def test_an_expression_sympy_will_not_form_is_no_gate_and_a_named_error():
    """max(0, log(min(0, a))): SymPy proves the log is not real and refuses the max of it."""
    g = sg.graph("max(0, log(min(0, a)))")
    for pattern in ("sigmoid", "softplus", "logsigmoid"):
        assert g.fuse(pattern).nodes == g.nodes
    assert g.lint() == [] and g.fuse_stable().nodes == g.nodes
    with pytest.raises(sg.FusionError, match="SymPy will not write q3 as one expression.*not comparable"):
        g.fuse_all()


def test_a_leaking_set_names_the_user_outside():
    g = sg.graph("exp(x) * y + exp(x)")
    with pytest.raises(sg.FusionError) as e:
        g.fuse({"q1", "q2"})
    assert str(e.value) == "q1 is also used by q3, outside the set; only q2 may leave a gate"
    assert np.isfinite(g.fuse({"q1", "q2", "q3"}).backprop(x=0.5, y=2.0).value)


# -- the command line -----------------------------------------------------------


def test_derive_fuses_and_lints(capsys):
    from symgrad.cli import main

    assert main(["derive", NEURON, "--fuse", "sigmoid", "--at", "w0=2,x0=-1,w1=-3,x1=-2,w2=-3"]) == 0
    out = capsys.readouterr().out
    assert "q8 = sigmoid(q4)   [sigmoid]" in out and "q8*(1 - q8)" in out and "q5" not in out
    assert "∂q8/∂x1 = -0.5898" in out
    assert main(["derive", "log(1 + exp(x)) * y", "--lint"]) == 0
    out = capsys.readouterr().out
    assert "Numerical stability" in out and "use the softplus gate, softplus(x)" in out
    assert main(["derive", NEURON, "--fuse", "all", "--fuse", "stable"]) == 0
    assert "q8 = sigmoid(w0*x0 + w1*x1 + w2)" in capsys.readouterr().out
    assert main(["derive", "x*y", "--fuse", "bogus"]) == 2
    assert "unknown pattern 'bogus'" in capsys.readouterr().err


# -- tensors ------------------------------------------------------------------------


def test_a_gate_over_vectors_takes_a_matmul_as_operand_but_never_fuses_one():
    shapes = {"W": (2, 3), "x": (3,), "b": (2,)}
    g = sg.graph("sum(1/(1+exp(-(W @ x + b))))", shapes=shapes)
    f = g.fuse("sigmoid")
    assert [(n, f.nx.nodes[n]["label"], f.shape(n)) for n in f.gates] == [("q6", "sigmoid", (2,))]
    assert f.operands("q6") == ["q2"] and g.nx.nodes["q1"]["op"] == "matmul"
    rng = np.random.default_rng(1)
    values = {n: rng.normal(size=s) for n, s in shapes.items()}
    a, b = g.backprop(**values), f.backprop(**values)
    assert b.value == pytest.approx(a.value, rel=1e-12)
    for n in shapes:
        np.testing.assert_allclose(b.grads[n], a.grads[n], rtol=1e-12, atol=1e-15)
    with pytest.raises(sg.FusionError, match=r"q1 \(matmul\) mixes entries"):
        g.fuse({"q1", "q2"})
    with pytest.raises(sg.FusionError, match=r"cannot fuse everything: q1 \(matmul\) mixes entries"):
        g.fuse_all()
    same_structure(f.expand(), g)
