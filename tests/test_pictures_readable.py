"""How readable the pictures are: crossings, overlaps, width and text size, against bounds
set after measuring them (docs/pictures.md has the numbers before and after)."""

from __future__ import annotations

import sys
from pathlib import Path

import networkx as nx
import pytest

from symgrad.errors import SymgradError
from symgrad.layout import Layout, crossings, dot_available, layout, overlaps, ranks, rect, turned
from symgrad.picture import Picture

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from pictures import traces  # noqa: E402

# graph: (crossings, overlaps) at most; every picture fits 900 px with text of 10 px or more.
BOUNDS = {"xyz": (0, 0), "neuron": (0, 0), "max": (0, 0), "thirty": (13, 10), "two_layer": (1, 1)}
TRACES = traces()


@pytest.mark.parametrize("name", list(BOUNDS))
def test_pictures_read_at_notebook_width(name):
    t = TRACES[name]
    m = Picture(t.graph, t).measure()
    print(f"{name}: {t.graph.nx.number_of_nodes()} nodes, {m}")
    most_crossings, most_overlaps = BOUNDS[name]
    assert m.crossings <= most_crossings and m.overlaps <= most_overlaps
    assert m.smallest_text >= 10.0
    assert m.width * 10.0 / 11.0 <= 900.0


@pytest.mark.parametrize("name", list(BOUNDS))
def test_graphs_without_numbers_read_at_notebook_width_too(name):
    g = TRACES[name].graph
    m = Picture(g, None).measure()
    print(f"{name} (graph): {m}")
    assert m.smallest_text >= 10.0 and m.overlaps <= 4


@pytest.mark.skipif(not dot_available(), reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("name", list(BOUNDS))
def test_compared_with_graphviz(name):
    t = TRACES[name]
    ours, dots = Picture(t.graph, t).measure(), Picture(t.graph, t).measure("dot")
    print(f"{name}: layers {ours}\n{name}: dot {dots}")
    assert ours.smallest_text >= 10.0


def test_the_thirty_node_expression_has_about_thirty_nodes():
    assert 30 <= TRACES["thirty"].graph.nx.number_of_nodes() <= 40


def test_inputs_sit_next_to_their_first_use():
    g = nx.DiGraph([("a", "q1"), ("b", "q1"), ("q1", "q2"), ("q2", "q3"), ("c", "q3")])
    r = ranks(g)
    assert r["c"] == r["q3"] - 1 and r["a"] == r["q1"] - 1 and r["q3"] == max(r.values())


def test_crossings_and_overlaps_count_what_they_say():
    at = {"a": (0.0, 0.0), "b": (0.0, 50.0), "c": (100.0, 0.0), "d": (100.0, 50.0)}
    crossed = Layout(at, {("a", "d"): [at["a"], at["d"]], ("b", "c"): [at["b"], at["c"]]}, {}, False)
    straight = Layout(at, {("a", "c"): [at["a"], at["c"]], ("b", "d"): [at["b"], at["d"]]}, {}, False)
    assert crossings(crossed) == 1 and crossings(straight) == 0
    boxes = {n: rect((x - 5, y - 5, x + 5, y + 5)) for n, (x, y) in at.items()}
    assert overlaps(straight, boxes, {}) == 0
    assert overlaps(straight, boxes, {("a", "c"): rect((40, 40, 60, 60))}) == 1  # b → d runs through it
    assert overlaps(straight, {**boxes, "e": rect((95, -5, 120, 5))}, {}) == 2  # e covers c, a → c enters e
    # A label turned along a sloping edge: its box would overlap the node, the turned label does not.
    label = (40.0, -4.0, 80.0, 4.0)
    assert overlaps(straight, {"n": rect((72, -8, 90, -1))}, {("a", "c"): rect(label)}) == 1
    assert overlaps(straight, {"n": rect((72, -8, 90, -1))},
                    {("a", "c"): turned(label, 20.0, (60.0, 0.0))}) == 0


@pytest.mark.parametrize("n", [39, 2000])
def test_a_long_chain_folds_into_rows_that_fit(n):
    g = nx.DiGraph([(f"n{i}", f"n{i + 1}") for i in range(n)])
    sizes = {n: (40.0, 36.0) for n in g}
    lay = layout(g, sizes, (60.0, 26.0), max_width=900.0)
    xs = [x for x, _ in lay.centres.values()]
    assert max(xs) - min(xs) <= 900.0
    rows: dict[float, list[int]] = {}
    for node, (_, y) in lay.centres.items():
        rows.setdefault(y, []).append(int(node[1:]))
    assert len(rows) > 1 and sum(map(len, rows.values())) == n + 1
    # Read like lines of text: each row a run of the chain, the next row going on from it.
    runs = sorted((min(r), max(r)) for r in rows.values())
    assert all(b - a + 1 == len(rows[y]) for y, (a, b) in zip(sorted(rows, key=lambda y: min(rows[y])), runs))
    assert all(prev[1] + 1 == nxt[0] for prev, nxt in zip(runs, runs[1:]))
    assert ranks(g)[f"n{n}"] == n
    assert crossings(lay) == 0
    unfolded = layout(g, sizes, (60.0, 26.0))
    assert max(x for x, _ in unfolded.centres.values()) > 900.0


def test_rankings_late_and_early():
    g = nx.DiGraph([("x", "q1"), ("q1", "q2"), ("q2", "q3"), ("y", "q4"), ("q4", "q3")])
    sizes = {n: (40.0, 36.0) for n in g}
    late, early = (layout(g, sizes, (40.0, 26.0), ranking=r) for r in ("late", "early"))
    # q4 (y's only operation) sits next to its use late, next to its input early; y before q4 in both.
    assert late.centres["q4"][0] == late.centres["q2"][0]
    assert early.centres["q4"][0] == early.centres["q1"][0]
    for lay in (late, early):
        assert lay.centres["y"][0] < lay.centres["q4"][0]
    with pytest.raises(SymgradError, match="unknown ranking 'middle'"):
        layout(g, sizes, (40.0, 26.0), ranking="middle")
