"""The fenced IR: every node and edge of every graph carries the full attribute set."""

import pytest
import sympy as sp

import symgrad as sg
from symgrad.ir import EDGE_ATTRIBUTES, GATE_ATTRIBUTES, NODE_ATTRIBUTES

x, y = sp.symbols("x y", real=True)

GRAPHS = {
    "string": lambda: sg.graph("(x + y) * exp(-x) + 2"),
    "string, nary": lambda: sg.graph("x*y + x*z + y*z", granularity="nary"),
    "string, tensors": lambda: sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)}),
    "string, named dimensions": lambda: sg.graph("mean(relu(X @ W))", shapes={"X": ("N", 3), "W": (3, "H")}),
    "string, labels": lambda: sg.graph("softmax_cross_entropy(s, y)", shapes={"s": (2, 3), "y": (2,)},
                                       dtypes={"y": int}),
    "string, constant": lambda: sg.graph("3 + 4"),
    "SymPy": lambda: sg.graph(sp.sin(x) * y + sp.exp(x)),
    "callable": lambda: sg.graph(lambda x, y: sg.sigmoid(x * y) + x),
    "callable, tensors": lambda: sg.graph(lambda W, x: sg.sum(sg.tanh(W @ x)),
                                          shapes={"W": (2, 3), "x": (3,)}),
    "gradient graph": lambda: sg.grad(sg.graph("sin(x) * y"), wrt="x"),
    "gradient graph, tensors": lambda: sg.grad(sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)}),
                                               wrt="W"),
    "fused": lambda: sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").fuse("sigmoid"),
    "fused, array gate": lambda: sg.graph("softmax_cross_entropy(s, y)", shapes={"s": (2, 3), "y": (2,)},
                                          dtypes={"y": int}).fuse("softmax_cross_entropy"),
    "fused, expanded": lambda: sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").fuse("sigmoid").expand(),
    "own derivative": lambda: sg.graph("x * y").with_local_derivative("q1", "x", "y"),
}


@pytest.mark.parametrize("build", GRAPHS.values(), ids=GRAPHS.keys())
def test_every_node_and_edge_carries_every_attribute(build):
    g = build()
    for n, data in g.nx.nodes(data=True):
        assert set(data) == (GATE_ATTRIBUTES if data["kind"] == "gate" else NODE_ATTRIBUTES), n
        assert data["symbol"] == sp.Symbol(n, real=True)
        assert isinstance(data["order"], int) and data["dtype"] in ("float", "int")
    for u, v, data in g.nx.edges(data=True):
        assert set(data) == EDGE_ATTRIBUTES, (u, v)
        assert (data["vjp"] is None) or (data["derivative"] is None and data["numeric"] is None)


def test_gradient_graphs_number_their_passes():
    dg = sg.grad(sg.graph("sin(x) * y"), wrt="x")
    orders = {n: d["order"] for n, d in dg.nx.nodes(data=True)}
    assert orders["x"] == 0 and max(orders.values()) == 1
    ddg = sg.grad(dg, wrt="x")
    assert max(d["order"] for _, d in ddg.nx.nodes(data=True)) == 2


def test_a_graph_missing_an_attribute_is_refused():
    import networkx as nx

    g = nx.DiGraph()
    g.add_node("x", kind="input")
    with pytest.raises(sg.SymgradError, match="node 'x' lacks the attributes"):
        sg.Graph(g, "x", ("x",))


FILLED_BY_THEIR_BUILDERS = ["fused", "fused, array gate", "fused, expanded"]


@pytest.mark.parametrize("name", FILLED_BY_THEIR_BUILDERS)
def test_gates_arrive_complete_and_nothing_is_filled_in(name, monkeypatch):
    """Fusion and expansion build gates through the IR's functions: the check finds nothing to add."""
    from symgrad import ir

    settled, original = [], ir.settle

    def check_only(g):
        before = ({n: dict(d) for n, d in g.nodes(data=True)},
                  {(u, v): dict(d) for u, v, d in g.edges(data=True)})
        original(g)
        after = ({n: dict(d) for n, d in g.nodes(data=True)},
                 {(u, v): dict(d) for u, v, d in g.edges(data=True)})
        assert after == before
        for n, d in g.nodes(data=True):
            assert set(d) == (GATE_ATTRIBUTES if d["kind"] == "gate" else NODE_ATTRIBUTES), n
        for u, v, d in g.edges(data=True):
            assert set(d) == EDGE_ATTRIBUTES, (u, v)
        settled.append(any(d["kind"] == "gate" for _, d in g.nodes(data=True)))

    monkeypatch.setattr(ir, "settle", check_only)
    GRAPHS[name]()
    assert any(settled) or name.endswith("expanded")
    assert len(settled) >= 2


def test_a_gate_missing_an_attribute_is_refused_not_completed():
    g = sg.graph("1/(1+exp(-x))").fuse("sigmoid")
    h = g.nx.copy()
    del h.nodes[g.output]["order"]
    with pytest.raises(sg.SymgradError, match=f"node '{g.output}' lacks the attributes order"):
        sg.Graph(h, g.output, g.inputs)
    h = g.nx.copy()
    del h.edges["x", g.output]["numeric"]
    with pytest.raises(sg.SymgradError, match=f"edge 'x' → '{g.output}' lacks the attributes numeric"):
        sg.Graph(h, g.output, g.inputs)
