"""Pictures of graphs too large to read: the part nearest the output, and a note saying so;
the layout's counting done in near-linear time gives the counts it gave before."""

from __future__ import annotations

import itertools
import random
import re
import xml.etree.ElementTree as ET

import networkx as nx
import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import SymgradError
from symgrad.layout import _crossings
from symgrad.picture import MAX_DRAWN, MAX_PLACED, _induced, _placed, part, short_number

SVG_NS = "{http://www.w3.org/2000/svg}"


def drawn_nodes(svg: str) -> list[str]:
    root = ET.fromstring(svg)  # well-formed XML
    return [g.get("data-node") for g in root.iter(f"{SVG_NS}g") if g.get("class", "").split()[0] == "node"]


def summary(svg: str) -> str:
    return " ".join(re.findall(r'class="summary"[^>]*>([^<]+)<', svg))


def sigmoid_chain(levels: int) -> sg.Graph:
    h = "x"
    for i in range(1, levels + 1):
        h = f"1/(1+exp(-(w{i}*{h}+b{i})))"
    return sg.graph(h)


def test_a_large_graph_draws_the_part_nearest_its_output_and_says_so():
    g = sigmoid_chain(260)  # 2,081 nodes
    total = g.nx.number_of_nodes()
    assert total > MAX_DRAWN
    svg = sg.render(g)
    drawn = drawn_nodes(svg)
    root = ET.fromstring(svg)
    assert len(drawn) == len(set(drawn)) == int(root.get("data-drawn")) <= MAX_DRAWN
    assert int(root.get("data-nodes")) == total
    assert g.output in drawn
    # Nearest: no node left out is closer to the output (in edges) than a node drawn.
    distance = nx.single_source_shortest_path_length(g.nx.reverse(copy=False), g.output)
    left_out = set(g.nx) - set(drawn)
    assert max(distance[n] for n in drawn) <= min(distance[n] for n in left_out)
    note = summary(svg)
    assert f"Drawn: the {len(drawn):,} nodes nearest {g.output} of the graph's {total:,}" in note
    assert f"{total - len(drawn):,} are left out" in note and "max_nodes=None" in note
    # The part it names next is a node left out that a drawn node reads.
    after = re.search(r'end="(\w+)"', note)[1]
    assert after in left_out and any(s in drawn for s in g.nx.successors(after))
    # Drawn nodes whose operands are not all drawn say how many are missing.
    cut = {el.get("data-node"): el.text for el in root.iter(f"{SVG_NS}text") if el.get("class") == "cut"}
    missing = {n: k for n in drawn if (k := sum(m in left_out for m in g.nx.predecessors(n)))}
    assert missing and cut == {n: f"+ {k} operand{'s' * (k > 1)} not drawn" for n, k in missing.items()}


def test_the_part_ending_at_a_node_is_what_computes_it():
    g = sg.graph("sin(cos(exp(x*y))) + x")  # q1 = x*y, q2 = exp, q3 = cos, q4 = sin, q5 = +
    t = g.backprop(x=0.3, y=2.0)
    svg = sg.render(t, end="q3")
    assert sorted(drawn_nodes(svg)) == sorted(nx.ancestors(g.nx, "q3") | {"q3"})
    assert summary(svg).startswith("Drawn: the 5 nodes nearest q3 of the graph's 7; 2 are left out")
    # The edge leaving q3 carries its value and the gradient of the output reaching it.
    stub = ET.fromstring(svg).find(f".//{SVG_NS}g[@data-edge='q3→']")
    texts = {el.get("class"): el.text for el in stub.iter(f"{SVG_NS}text")}
    q3 = np.cos(np.exp(0.6))
    assert texts == {"value": short_number(q3), "grad": short_number(np.cos(q3))}
    graph_svg = sg.render(g, end="q2", max_nodes=2)
    assert drawn_nodes(graph_svg) == ["q1", "q2"]
    assert 'end="x"' in summary(graph_svg) or 'end="y"' in summary(graph_svg)


def test_small_pictures_are_drawn_whole_and_as_before():
    g = sg.graph("(x + y) * z")
    t = g.backprop(x=-2, y=5, z=-4)
    assert part(g) is None
    for obj in (g, t):
        svg = sg.render(obj)
        assert svg == sg.render(obj, max_nodes=None) and "data-drawn" not in svg and not summary(svg)
        assert sorted(drawn_nodes(svg)) == sorted(g.nx)


def test_long_edges_past_many_layers_shrink_the_part():
    # x read by every product of a chain: each edge from x skips up to 170 layers.
    g = sg.graph("x*(" * 170 + "x" + ")" * 170)
    assert g.nx.number_of_nodes() < MAX_DRAWN and _placed(g.nx) > MAX_PLACED
    chosen = part(g)
    assert chosen is not None and _placed(_induced(g, chosen)) <= MAX_PLACED
    assert chosen == part(g, most=len(chosen))  # the nearest, as many as it can
    svg = sg.render(g)
    assert sorted(drawn_nodes(svg)) == sorted(chosen) and "left out" in summary(svg)


@pytest.mark.parametrize("bad", ["nope", 3])
def test_end_must_be_a_node(bad):
    with pytest.raises(SymgradError, match=re.escape(repr(bad))):
        sg.render(sg.graph("x * y"), end=bad)


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "10"])
def test_max_nodes_must_be_a_positive_whole_number(bad):
    with pytest.raises(SymgradError, match="max_nodes"):
        sg.render(sg.graph("x * y"), max_nodes=bad)


def brute_crossings(h: nx.DiGraph, layers: list[list[str]]) -> int:
    total = 0
    for left, right in zip(layers, layers[1:]):
        at_left, at_right = {n: i for i, n in enumerate(left)}, {n: i for i, n in enumerate(right)}
        edges = [(at_left[u], at_right[v]) for u in left for v in h.successors(u) if v in at_right]
        total += sum((a - c) * (b - d) < 0 for (a, b), (c, d) in itertools.combinations(edges, 2))
    return total


@pytest.mark.parametrize("seed", range(20))
def test_crossings_between_layers_counted_as_every_pair(seed):
    rng = random.Random(seed)
    layers = [[f"n{i}_{k}" for k in range(rng.randint(1, 9))] for i in range(5)]
    h = nx.DiGraph()
    h.add_nodes_from(n for nodes in layers for n in nodes)
    for left, right in zip(layers, layers[1:]):
        h.add_edges_from((u, v) for u in left for v in right if rng.random() < 0.4)
    assert _crossings(h, layers) == brute_crossings(h, layers)


