"""Fused gates in pictures: one node with a double outline, or opened inside a dashed frame."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

import symgrad as sg

SVG = "{http://www.w3.org/2000/svg}"
NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_AT = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)


def groups(svg: str, cls: str) -> list[ET.Element]:
    return [g for g in ET.fromstring(svg).iter(f"{SVG}g") if cls in (g.get("class") or "").split()]


def edge_numbers(svg: str) -> dict[str, tuple[float, float]]:
    """``{"u→v": (value above, gradient below)}`` of every edge with numbers."""
    found = {}
    for g in groups(svg, "edge"):
        shown = {t.get("class"): float(t.text) for t in g.iter(f"{SVG}text")}
        found[g.get("data-edge")] = (shown["value"], shown["grad"])
    return found


def centre(node: ET.Element) -> tuple[float, float]:
    ellipse = node.find(f"{SVG}ellipse")
    return float(ellipse.get("cx")), float(ellipse.get("cy"))


def test_a_fused_gate_is_one_node_with_a_double_outline_naming_what_it_fused():
    fused = sg.graph(NEURON).fuse("sigmoid")
    svg = sg.render(fused.backprop(**NEURON_AT))
    (gate,) = groups(svg, "gate")
    assert gate.get("data-node") == "q8" and gate.get("data-fused") == "q5 q6 q7 q8"
    assert len(gate.findall(f"{SVG}ellipse")) == 2
    assert "fused gate of q5, q6, q7, q8" in gate.find(f"{SVG}title").text
    assert len(groups(svg, "node")) == fused.nx.number_of_nodes() == 10
    assert not groups(svg, "gate-frame")
    unfused = sg.render(sg.graph(NEURON))
    assert all(len(n.findall(f"{SVG}ellipse")) <= 1 for n in groups(unfused, "node"))
    assert not groups(unfused, "gate")


def test_expanded_the_gate_is_its_nodes_in_a_frame_with_the_unfused_numbers():
    plain = sg.graph(NEURON).backprop(**NEURON_AT)  # the oracle: the graph never fused
    fused = sg.graph(NEURON).fuse("sigmoid").backprop(**NEURON_AT)
    svg = sg.render(fused, expand=True)
    (frame,) = groups(svg, "gate-frame")
    assert frame.get("data-gate") == "q8" and frame.get("data-fused") == "q5 q6 q7 q8"
    assert frame.find(f"{SVG}text").text == "sigmoid (q8)"
    rect = frame.find(f"{SVG}rect")
    x0, y0 = float(rect.get("x")), float(rect.get("y"))
    x1, y1 = x0 + float(rect.get("width")), y0 + float(rect.get("height"))
    nodes = {n.get("data-node"): n for n in groups(svg, "node")}
    assert sorted(nodes) == sorted(plain.graph.nodes)
    for name in plain.graph.operations:
        x, y = centre(nodes[name])
        inside = x0 < x < x1 and y0 < y < y1
        assert inside == (name in ("q5", "q6", "q7", "q8")), name
    shown = edge_numbers(svg)
    assert shown.pop("q8→") == (pytest.approx(plain.value, rel=1e-3), 1.0)
    assert sorted(shown) == sorted(f"{u}→{v}" for u, v in plain.graph.nx.edges)
    for u, v in plain.graph.nx.edges:
        value, grad = shown[f"{u}→{v}"]
        assert value == pytest.approx(plain.values[u], rel=1e-3, abs=1e-4)
        assert grad == pytest.approx(plain.sent[v, u], rel=1e-3, abs=1e-4)


def test_expand_names_gates_and_opens_nested_gates_one_level_or_all():
    g = sg.graph(NEURON).fuse("sigmoid").fuse_all(name="neuron")
    whole = sg.render(g)
    (gate,) = groups(whole, "gate")
    assert gate.get("data-fused") == "q1 q2 q3 q4 q8"
    one = sg.render(g, expand="q8")  # one level: the sigmoid stays a gate inside the frame
    (frame,) = groups(one, "gate-frame")
    assert frame.get("data-fused") == "q1 q2 q3 q4 q8" and len(groups(one, "gate")) == 1
    both = sg.render(g, expand=True)
    frames = {f.find(f"{SVG}text").text: f.get("data-fused") for f in groups(both, "gate-frame")}
    assert frames == {"neuron (q8)": "q1 q2 q3 q4 q5 q6 q7 q8", "sigmoid (q8)": "q5 q6 q7 q8"}
    assert not groups(both, "gate")
    assert sg.render(g, expand=["q8"]) == one and sg.render(g, expand=False) == whole


def test_expanding_an_array_layer_keeps_the_numbers():
    shapes = {"X": (4, 3), "W": (3, 2), "b": (2,)}
    g = sg.graph("sum(relu(X @ W + b))", shapes=shapes)
    fused = g.fuse("affine_relu")
    assert fused.gates
    rng = np.random.default_rng(1)
    at = {n: rng.standard_normal(s) for n, s in shapes.items()}
    svg = sg.render(fused.backprop(**at), expand=True)
    (frame,) = groups(svg, "gate-frame")
    assert set(frame.get("data-fused").split()) == set(g.operations) - {g.output}
    assert {n.get("data-node") for n in groups(svg, "node")} == set(g.nodes)


@pytest.mark.parametrize("expand, words", [("q1", "cannot expand 'q1': not a fused gate (gates: q8)"),
                                           (["nope"], "cannot expand 'nope'"),
                                           (3, "expand= takes True, False")])
def test_expand_errors_name_the_gate(expand, words):
    s = sg.graph(NEURON).fuse("sigmoid")
    with pytest.raises(sg.SymgradError) as e:
        sg.render(s, expand=expand)
    assert words in str(e.value).replace(" of this graph", "")


def test_cli_render_fuses_and_expands(tmp_path, capsys):
    from symgrad.cli import main

    at = ["--at", "w0=2,x0=-1,w1=-3,x1=-2,w2=-3"]
    gate, opened = tmp_path / "gate.svg", tmp_path / "opened.svg"
    assert main(["render", NEURON, "--fuse", "sigmoid", *at, "-o", str(gate)]) == 0
    assert "  10 nodes, " in capsys.readouterr().out
    assert main(["render", NEURON, "--fuse", "sigmoid", "--expand", *at, "-o", str(opened)]) == 0
    assert "  10 nodes (13 with its gates opened), " in capsys.readouterr().out
    closed_svg, opened_svg = gate.read_text(encoding="utf-8"), opened.read_text(encoding="utf-8")
    assert len(groups(closed_svg, "gate")) == 1 and not groups(closed_svg, "gate-frame")
    (frame,) = groups(opened_svg, "gate-frame")
    assert frame.get("data-fused") == "q5 q6 q7 q8"
    assert opened_svg == sg.render(sg.graph(NEURON).fuse("sigmoid").backprop(**NEURON_AT), expand=True)
    assert main(["render", NEURON, "--fuse", "sigmod"]) == 2
    assert "did you mean 'sigmoid'?" in capsys.readouterr().err
