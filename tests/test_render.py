"""Pictures: SVG of graphs and traces, read back with an XML parser."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.cli import main
from symgrad.layout import layout
from symgrad.picture import GREEN, RED, Picture

SVG = "{http://www.w3.org/2000/svg}"
NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_AT = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
# The lecture's numbers on every node of the sigmoid neuron: (value, gradient).
NEURON_NUMBERS = {
    "w0": (2, -0.1966), "x0": (-1, 0.3932), "w1": (-3, -0.3932), "x1": (-2, -0.5898), "w2": (-3, 0.1966),
    "q1": (-2, 0.1966), "q2": (6, 0.1966), "q3": (4, 0.1966), "q4": (1, 0.1966), "q5": (-1, -0.1966),
    "q6": (0.3679, -0.5344), "q7": (1.3679, -0.5344), "q8": (0.7311, 1.0),
}


def texts(svg: str, cls: str) -> dict[str, list[ET.Element]]:
    """``{node: [text elements of this class]}`` from the SVG text."""
    root = ET.fromstring(svg)
    found: dict[str, list[ET.Element]] = {}
    for el in root.iter(f"{SVG}text"):
        if cls in el.get("class", "").split():
            found.setdefault(el.get("data-node", ""), []).append(el)
    return found


def numbers(elements: list[ET.Element]) -> list[float]:
    out = []
    for el in elements:
        text = el.text or ""
        out.append(float(text.removeprefix("Σ = ")))
    return out


@pytest.fixture
def no_graphviz(monkeypatch):
    """No ``dot`` on the PATH, and no program may be started."""
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)

    def refuse(*args, **kwargs):
        raise AssertionError(f"a program was started: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_sigmoid_neuron_shows_every_value_and_gradient(no_graphviz):
    t = sg.graph(NEURON).backprop(**NEURON_AT)
    svg = sg.render(t)
    values, grads = texts(svg, "value"), texts(svg, "grad")
    for node, (value, grad) in NEURON_NUMBERS.items():
        assert any(abs(v - value) < 1e-3 for v in numbers(values[node])), node
        assert any(abs(g - grad) < 1e-3 for g in numbers(grads[node])), node
    for el in sum(values.values(), []):
        assert el.get("fill") == GREEN
    for el in sum(grads.values(), []):
        assert el.get("fill") == RED
    # Values sit above their edge, gradients below: same anchor, larger y for the gradient.
    root = ET.fromstring(svg)
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "edge":
            value, grad = (el for el in group.iter(f"{SVG}text"))
            assert float(grad.get("y")) > float(value.get("y"))


def test_every_node_is_labelled_by_its_op_and_every_edge_is_drawn():
    g = sg.graph(NEURON)
    root = ET.fromstring(sg.render(g.backprop(**NEURON_AT)))
    ops = {el.get("data-node"): el.text for el in root.iter(f"{SVG}text") if el.get("class") == "op"}
    assert ops == {n: g.nx.nodes[n]["label"] for n in g.operations}
    assert set(ops.values()) == {"*", "+", "*-1", "exp", "+1", "1/x"}
    edges = {el.get("data-edge") for el in root.iter(f"{SVG}g") if el.get("class") == "edge"}
    assert edges == {f"{u}→{v}" for u, v in g.nx.edges} | {"q8→"}
    inputs = {el.text for el in root.iter(f"{SVG}text") if el.get("class") == "input"}
    assert inputs == set(g.inputs)


def test_branches_show_each_edge_and_the_sum(no_graphviz):
    t = sg.graph("x*x + x").backprop(x=3)
    svg = sg.render(t)
    grads = texts(svg, "grad")
    x_edges = [el for el in grads["x"] if "total" not in el.get("class", "")]
    totals = [el for el in grads["x"] if "total" in el.get("class", "")]
    assert sorted(numbers(x_edges)) == [1.0, 6.0]
    assert numbers(totals) == [7.0] == [t.grads["x"]]


def test_a_graph_shows_its_local_derivatives():
    g = sg.graph("(x + y) * z")
    svg = sg.render(g)
    assert texts(svg, "value") == {} and texts(svg, "grad") == {}
    local = {n: [el.text for el in els] for n, els in texts(svg, "local").items()}
    assert sorted(local["q1"]) == ["z"] and sorted(local["z"]) == ["q1"]
    assert local["x"] == ["1"] and local["y"] == ["1"]


def test_texts_are_escaped_and_the_svg_stays_valid_xml():
    g = sg.graph("(x + y) * z")
    g.nx.nodes["q2"]["label"] = 'gate<&>"\x01'
    root = ET.fromstring(sg.render(g))
    ops = [el.text for el in root.iter(f"{SVG}text") if el.get("class") == "op"]
    assert 'gate<&>"' in ops


def test_tensor_values_are_shown_with_their_shape():
    t = sg.graph("exp(x*y) + y", shapes={"x": (2,)}).backprop(x=[1, 2], y=0.5)
    svg = sg.render(t)
    names = {n: el[0].text for n, el in texts(svg, "name").items()}
    assert names["q1"] == "q1: 2"
    shown = [el.text for el in texts(svg, "value")["q2"]]
    assert shown == [sg.tables.number(t.values["q2"])] and "1.6487" in shown[0] and "2.7183" in shown[0]


def test_render_writes_a_file_and_refuses_bad_arguments(tmp_path):
    g = sg.graph("x * y")
    path = tmp_path / "g.svg"
    assert sg.render(g, path) == path.read_text(encoding="utf-8")
    ET.parse(path)
    with pytest.raises(sg.SymgradError, match="g.png"):
        sg.render(g, tmp_path / "g.png")
    with pytest.raises(sg.SymgradError, match="cannot draw a str"):
        sg.render("x * y")  # type: ignore[arg-type]
    with pytest.raises(sg.SymgradError, match="unknown layout 'circle'"):
        sg.render(g, layout="circle")
    with pytest.raises(sg.SymgradError, match="digits must be"):
        sg.render(g, digits=0)
    with pytest.raises(sg.SymgradError, match="cannot write"):
        sg.render(g, tmp_path / "missing" / "g.svg")


def test_dot_layout_without_graphviz_is_a_clear_error(no_graphviz):
    with pytest.raises(sg.SymgradError, match="Graphviz"):
        sg.render(sg.graph("x * y"), layout="dot")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_dot_layout_draws_the_same_numbers():
    t = sg.graph(NEURON).backprop(**NEURON_AT)
    a, b = sg.render(t), sg.render(t, layout="dot")
    for cls in ("value", "grad", "op"):
        assert {n: sorted(e.text for e in els) for n, els in texts(a, cls).items()} == \
            {n: sorted(e.text for e in els) for n, els in texts(b, cls).items()}


def test_jupyter_sees_a_picture(monkeypatch):
    g = sg.graph("(x + y) * z")
    t = g.backprop(x=-2, y=5, z=-4)
    for obj in (g, t):
        ET.fromstring(obj._repr_svg_())
    monkeypatch.setattr("symgrad.picture.MAX_INLINE", 3)
    assert g._repr_svg_() is None and t._repr_svg_() is None


# -- layout --------------------------------------------------------------------------

EXPRESSIONS = [
    NEURON, "x*x + x", "(x + y) * z", "exp(a*b)*sin(a+b) + log(a*a+1)/(b*b+2) + a",
    "a*b + (a+b)*(a*b) + a", "sigmoid(w*x + b) * relu(x - b) + tanh(w)",
]


def _boxes_hit(a, b, centre, size) -> bool:
    """Whether the segment a-b passes through the box of ``size`` around ``centre``."""
    (x0, y0), (x1, y1) = a, b
    for s in np.linspace(0, 1, 60):
        x, y = x0 + (x1 - x0) * s, y0 + (y1 - y0) * s
        if abs(x - centre[0]) < size[0] / 2 and abs(y - centre[1]) < size[1] / 2:
            return True
    return False


@pytest.mark.parametrize("source", EXPRESSIONS)
def test_layout_goes_left_to_right_without_overlaps(source):
    g = sg.graph(source)
    sizes = {n: b.size for n, b in Picture(g, None).boxes.items()}
    lay = layout(g.nx, sizes, (50.0, 26.0))
    # Every edge goes to the right, and the output is rightmost.
    for (u, v), route in lay.routes.items():
        xs = [p[0] for p in route]
        assert xs == sorted(xs) and xs[0] < xs[-1], (u, v)
    assert max(x for x, _ in lay.centres.values()) == lay.centres[g.output][0]
    # No two nodes overlap.
    nodes = list(lay.centres)
    for i, m in enumerate(nodes):
        for n in nodes[i + 1:]:
            (xm, ym), (xn, yn) = lay.centres[m], lay.centres[n]
            assert abs(xm - xn) >= (sizes[m][0] + sizes[n][0]) / 2 or \
                abs(ym - yn) >= (sizes[m][1] + sizes[n][1]) / 2, (m, n)
    # No edge runs through a node other than its own two ends.
    for (u, v), route in lay.routes.items():
        for n in nodes:
            if n not in (u, v):
                hits = [_boxes_hit(a, b, lay.centres[n], sizes[n]) for a, b in zip(route, route[1:])]
                assert not any(hits), (u, v, n)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), min_size=1, max_size=40))
def test_layout_of_any_dag(pairs):
    import networkx as nx

    g = nx.DiGraph((f"n{min(a, b)}", f"n{max(a, b)}") for a, b in pairs if a != b)
    g.add_node("n0")
    sizes = {n: (40.0, 36.0) for n in g}
    lay = layout(g, sizes, (40.0, 26.0))
    assert set(lay.centres) == set(g) and set(lay.routes) == set(g.edges) == set(lay.labels)
    for (u, v), route in lay.routes.items():
        assert route[0] == lay.centres[u] and route[-1] == lay.centres[v]
        assert all(a[0] < b[0] for a, b in zip(route, route[1:]))
    by_column: dict[float, list[float]] = {}
    for x, y in lay.centres.values():
        by_column.setdefault(x, []).append(y)
    for ys in by_column.values():
        ys.sort()
        assert all(b - a >= 36.0 for a, b in zip(ys, ys[1:]))


# -- command line ------------------------------------------------------------------------


def test_cli_render_writes_a_valid_svg(tmp_path, capsys, no_graphviz):
    out = tmp_path / "neuron.svg"
    code = main(["render", NEURON, "--at", "w0=2,x0=-1,w1=-3,x1=-2,w2=-3", "-o", str(out)])
    assert code == 0 and capsys.readouterr().out.startswith(f"wrote {out}: the graph of {NEURON}")
    svg = out.read_text(encoding="utf-8")
    ET.fromstring(svg)
    assert any(abs(v - 0.7311) < 1e-4 for v in numbers(texts(svg, "value")["q8"]))


def test_cli_render_prints_the_graph_without_values(capsys):
    assert main(["render", "(x + y) * z"]) == 0
    svg = capsys.readouterr().out
    ET.fromstring(svg)
    assert texts(svg, "local") and not texts(svg, "value")


@pytest.mark.parametrize("argv, words", [
    (["render", "x + y", "--at", "x=1"], "missing value for input 'y'"),
    (["render", "x + y", "-o", "picture.png"], "must end in .svg"),
    (["render", "foo(x)"], "unknown function 'foo'"),
    (["render", "x", "--at", "x=[1,"], "not a number"),
    (["render", "x", "--digits", "-1"], "digits must be"),
])
def test_cli_render_errors(capsys, argv, words):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("symgrad: error:") and words in err


def test_a_gate_is_drawn_as_one_node():
    t = sg.graph("sigmoid(w0*x0 + w1*x1 + w2)").backprop(**NEURON_AT)
    svg = sg.render(t)
    ops = [el.text for els in texts(svg, "op").values() for el in els]
    assert sorted(ops) == ["*", "*", "+", "+", "σ"]
    assert numbers(texts(svg, "value")["q5"]) == [pytest.approx(0.7311, abs=1e-4)]
    assert numbers(texts(svg, "grad")["q4"]) == [pytest.approx(0.1966, abs=1e-4)]


def test_matrix_edges_show_their_vector_jacobian_product():
    g = sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)})
    texts = [t.text for t in ET.fromstring(sg.render(g)).iter(f"{SVG}text")]
    assert "dq1 ↦ outer(dq1, x)" in texts and "dq1 ↦ W.T @ dq1" in texts
    assert "None" not in texts
