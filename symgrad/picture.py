"""Pictures of graphs and traces, drawn as the lectures draw them, as SVG.

Nodes are labelled by their op (``+``, ``*-1``, ``1/x``, ``exp``, ``σ``, a
fused gate's name) with the node's name beneath; inputs are their names.  On
a Trace, each edge ``u → v`` carries ``u``'s value in green above it and the
gradient it sends back to ``u`` in red below it; the output's value and the
upstream gradient sit on a short edge leaving the output.  Where a node feeds
several others, the red numbers on its edges add up to its gradient, written
under the node (``Σ = …``).  On a Graph, each edge carries its local
derivative in grey.

Shapes read ``64×3072`` and an array of more than four numbers shows its
range; a picture wider than a notebook (:data:`PAGE`) folds into rows so that
its smallest text stays :data:`MIN_TEXT` pixels or more once shrunk to the page.
:meth:`Picture.measure` tells how readable a picture is.  Of a graph larger
than :data:`MAX_DRAWN` nodes, the part nearest the output is drawn (:func:`part`),
with a note beneath saying how many nodes were left out and how to draw another part.

The SVG is built with :mod:`xml.etree.ElementTree`, so every text is escaped.
Node placement is :mod:`symgrad.layout`'s; no Graphviz program is needed.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from .dims import Shape
from .dims import text as dims_text
from .errors import SymgradError
from .layout import (
    Box2,
    Edge,
    Layout,
    Point,
    Polygon,
    crossings,
    layout,
    midpoint,
    overlaps,
    ranks,
    rect,
    turned,
)
from .tables import expression_text, number, shown_derivative, vjp_text, written

if TYPE_CHECKING:
    from .graph import Graph
    from .interpret import Trace

GREEN, RED, GREY, INK, FILL = "#1a7f37", "#cf222e", "#6e7781", "#24292f", "#f6f8fa"
# fills of backward nodes in gradient graphs (symgrad.higher), by derivative order 1, 2, 3, …
BACKWARD_FILLS = ("#ffe8d6", "#e8dcff", "#d6f0ff")
FONT, SMALL = 13.0, 11.0
FONT_FAMILY = "Helvetica, Arial, sans-serif"
MAX_TEXT = 32  # characters of an expression shown on an edge before "…"
MAX_INLINE = 400  # nodes; larger graphs do not draw themselves in Jupyter (sg.render still does)
MAX_DRAWN = 2000  # nodes; sg.render draws the part of a larger graph nearest its output, and says so
MAX_PLACED = 12000  # nodes and the bends of edges that skip layers; a part costing more is drawn smaller
PAGE = 900.0  # pixels: a notebook's width; a wider picture folds into rows to keep its text readable
MIN_TEXT = 10.0  # pixels: the smallest text once a picture is shrunk to the page
MAX_SHOWN = 4  # elements of an array written out on an edge; larger arrays show their range
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class SVG(str):
    """SVG text that Jupyter shows as a picture: ``sg.render(t)`` as a cell's last line.

    It is a ``str`` (write it, search it, parse it, ``print`` it); its ``repr``
    is one line naming its size, so a terminal does not fill with markup.

    >>> import symgrad as sg
    >>> svg = sg.render(sg.graph("x * y"))
    >>> isinstance(svg, str), svg._repr_svg_() == svg, repr(svg).startswith("<SVG picture")
    (True, True, True)
    """

    def _repr_svg_(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        size = re.search(r'width="([\d.]+)" height="([\d.]+)"', self[:1000])
        shown = f"{float(size[1]):.0f}×{float(size[2]):.0f} px, " if size else ""
        return f"<SVG picture, {shown}{len(self)} characters; print() it for the text>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def render(obj: Graph | Trace, path: str | os.PathLike[str] | None = None, *,
           layout: str = "layers", digits: int = 4, expand: bool | str | Iterable[str] = False,
           end: str | None = None, max_nodes: int | None = MAX_DRAWN) -> SVG:
    """An SVG picture of a graph, or of a trace with its numbers; written to ``path`` if given.

    Parameters
    ----------
    obj:
        a :class:`~symgrad.Graph` (ops and local derivatives) or a
        :class:`~symgrad.Trace` (values in green, gradients in red).
    path:
        a file name ending in ``.svg``; None returns the text only.
    layout:
        ``"layers"`` (networkx; always available) or ``"dot"`` (Graphviz's
        program, if installed).
    digits:
        significant digits of the numbers shown.
    expand:
        a fused gate is drawn as one node (a double outline); ``True`` draws
        every gate as the nodes it was fused from, inside a dashed frame named
        for the gate, and a gate's name (or a list of them) opens just those.
        A trace is computed again on the opened graph, at the same inputs.
    end:
        a node's name: draw the part of the graph that computes it (default: the output).
    max_nodes:
        draw at most this many nodes (default :data:`MAX_DRAWN`): of a larger graph, the
        nodes nearest ``end``, fewer where many edges skip many layers (a layout costing
        more than :data:`MAX_PLACED` places).  A line beneath the picture says how many
        nodes were left out and how to draw another part; ``None`` draws every node.

    Returns
    -------
    SVG
        the SVG text, a ``str`` that Jupyter draws as a picture.

    >>> import symgrad as sg
    >>> t = sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4)
    >>> svg = sg.render(t)
    >>> svg.startswith("<svg"), "-12" in svg, "-4" in svg
    (True, True, True)
    """
    from .graph import Graph
    from .interpret import Trace

    check_digits(digits)
    if isinstance(obj, Trace):
        graph, frames = opened(obj.graph, expand)
        trace = obj if graph is obj.graph else graph.backprop(
            dout=obj.dout, **{n: obj.values[n] for n in graph.inputs})
        text = Picture(graph, trace, digits, frames, part(graph, end, max_nodes)).svg(layout)
    elif isinstance(obj, Graph):
        graph, frames = opened(obj, expand)
        text = Picture(graph, None, digits, frames, part(graph, end, max_nodes)).svg(layout)
    else:
        raise SymgradError(f"cannot draw a {type(obj).__name__}; give a Graph or a Trace")
    if path is not None:
        if not os.fspath(path).lower().endswith(".svg"):
            raise SymgradError(f"cannot write a picture to {os.fspath(path)!r}: the name must end in .svg")
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise SymgradError(f"cannot write {os.fspath(path)!r}: {e.strerror}") from None
    return SVG(text)


Frames = list[tuple[str, str, list[str]]]  # (gate, its name, the nodes drawn for it)


def part(graph: Graph, end: str | None = None, most: int | None = MAX_DRAWN) -> list[str] | None:
    """The nodes to draw of ``graph``: those computing ``end`` (default: the output) nearest it,
    at most ``most`` of them, and fewer if their layout would place more than :data:`MAX_PLACED`
    nodes and bends; None for the whole graph.

    Nodes are taken breadth first from ``end`` through the operands, so each one drawn
    has a path to ``end`` among those drawn.

    >>> import symgrad as sg
    >>> g = sg.graph("sin(cos(exp(x)))")
    >>> part(g) is None, part(g, most=2), part(g, "q2")
    (True, ['q3', 'q2'], ['q2', 'q1', 'x'])
    """
    end = graph.output if end is None else end
    if not isinstance(end, str) or end not in graph.nx:
        raise SymgradError(f"cannot end a picture at {end!r}: not a node of this graph "
                           f"(its output is {graph.output})")
    if most is not None and (isinstance(most, bool) or not isinstance(most, int) or most < 1):
        raise SymgradError(f"max_nodes must be a whole number of 1 or more, or None, not {most!r}")
    if end == graph.output and (most is None or graph.nx.number_of_nodes() <= most) and (
            most is None or _placed(graph.nx) <= MAX_PLACED):
        return None
    chosen, seen = [end], {end}
    for n in chosen:  # breadth first, through the operands
        if most is not None and len(chosen) >= most:
            break
        for m in graph.nx.predecessors(n):
            if m not in seen:
                seen.add(m)
                chosen.append(m)
    chosen = chosen[:most]
    while most is not None and len(chosen) > 2 and _placed(_induced(graph, chosen)) > MAX_PLACED:
        chosen = chosen[:len(chosen) // 2]  # still each with a path to end
    return chosen


def _induced(graph: Graph, nodes: list[str]) -> nx.DiGraph:
    """The graph's ``nodes`` and the edges between them, in the graph's order."""
    keep = set(nodes)
    sub = nx.DiGraph()
    ordered = [n for n in graph.nx if n in keep]
    sub.add_nodes_from(ordered)
    sub.add_edges_from((u, v) for u in ordered for v in graph.nx.successors(u) if v in keep)
    return sub


def _placed(g: nx.DiGraph) -> int:
    """How many places the layers layout makes: a node each, a bend for each layer an edge skips."""
    layer = ranks(g)
    return g.number_of_nodes() + sum(layer[v] - layer[u] - 1 for u, v in g.edges)


def opened(graph: Graph, expand: bool | str | Iterable[str]) -> tuple[Graph, Frames]:
    """``graph`` with the gates ``expand`` names opened (all, through nesting, for True), and their frames.

    >>> import symgrad as sg
    >>> s = sg.graph("1/(1+exp(-(w*x+b)))").fuse("sigmoid")
    >>> g, frames = opened(s, True)
    >>> frames
    [('q6', 'sigmoid', ['q3', 'q4', 'q5', 'q6'])]
    """
    if expand is False or expand is None:
        return graph, []
    if expand is True:
        chosen = list(graph.gates)
    elif isinstance(expand, str):
        chosen = [expand]
    elif isinstance(expand, Iterable):
        chosen = list(expand)
    else:
        raise SymgradError(f"expand= takes True, False, a gate's name or a list of them, not {expand!r}")
    rounds: list[dict[str, tuple[str, list[str]]]] = []
    while chosen:
        for n in chosen:
            if not isinstance(n, str) or n not in graph.nx or graph.nx.nodes[n]["kind"] != "gate":
                shown = ", ".join(graph.gates) or "none"
                raise SymgradError(f"cannot expand {n!r}: not a fused gate of this graph (gates: {shown})")
        rounds.append({n: (str(graph.nx.nodes[n].get("label", n)),
                           list(graph.nx.nodes[n]["body"].graph["fused"])) for n in chosen})
        graph = graph.expand(chosen)
        chosen = [m for n, (_, members) in rounds[-1].items() for m in members
                  if graph.nx.nodes[m]["kind"] == "gate"] if expand is True else []

    def drawn(m: str, after: int) -> list[str]:
        for later in rounds[after:]:
            if m in later:
                return [x for inner in later[m][1] for x in drawn(inner, rounds.index(later) + 1)]
        return [m]

    frames = [(n, name, [x for m in members for x in drawn(m, r + 1)])
              for r, found in enumerate(rounds) for n, (name, members) in found.items()]
    return graph, frames


def check_digits(digits: object) -> None:
    """Refuse a number of significant digits that is not a whole number from 1 to 17."""
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
        raise SymgradError(f"digits must be a whole number from 1 to 17, not {digits!r}")


def text_width(text: str, size: float = FONT) -> float:
    """A generous estimate of the width of ``text`` in pixels."""
    return 0.62 * size * len(text)


def shape_text(shape: Shape) -> str:
    """``2×3``, ``N×3`` and ``2`` (a vector), as :func:`symgrad.dims.text`; scalars → ``""``."""
    return dims_text(shape) if shape else ""


def short_number(v: Any, digits: int = 4) -> str:
    """A value as a picture writes it: numbers and small arrays in full, larger arrays as their range.

    >>> short_number(-0.19661193), short_number(np.array([0.22, 0.26]))
    ('-0.1966', '[0.22, 0.26]')
    >>> short_number(np.linspace(-1, 2, 300).reshape(3, 100))
    '-1 … 2'
    """
    if np.ndim(v) == 0 or np.size(v) <= MAX_SHOWN:
        return number(v, digits)
    a = np.asarray(v, dtype=float)
    low, high = number(a.min(), min(digits, 3)), number(a.max(), min(digits, 3))
    return f"all {low}" if low == high else f"{low} … {high}"


@dataclass
class Box:
    """What is drawn for one node: its label, the small lines beneath it, its size."""

    label: str
    round: bool  # an ellipse (operations) or bare text (inputs, constants)
    below: list[tuple[str, str, str]] = field(default_factory=list)  # (text, colour, class)
    title: str = ""

    @property
    def size(self) -> Point:
        if self.round:
            return (max(40.0, text_width(self.label) + 22), 36.0)
        return (text_width(self.label, FONT + 1) + 6, 22.0)

    @property
    def footprint(self) -> Point:
        """The room the node takes with the lines beneath it, as wide and about as tall."""
        w, h = self.size
        widest = max((text_width(text, SMALL) for text, _, _ in self.below), default=0.0)
        return (max(w, widest), h + len(self.below) * (SMALL + 2))


@dataclass
class EdgeText:
    above: str = ""  # the value, green (traces)
    below: str = ""  # the gradient sent back, red (traces); the local derivative, grey (graphs)
    below_colour: str = RED


class Picture:
    """The boxes and edge texts of one graph or trace, and the SVG drawn from them."""

    def __init__(self, graph: Graph, trace: Trace | None, digits: int = 4, frames: Frames | None = None,
                 nodes: list[str] | None = None):
        """``nodes`` (see :func:`part`), if given, are the only ones drawn, the first of them
        in the output's place."""
        self.graph, self.trace, self.digits = graph, trace, digits
        self.frames = list(frames or [])
        self.nx = graph.nx if nodes is None else _induced(graph, nodes)
        self.end = graph.output if nodes is None else nodes[0]
        self.boxes = {n: self._box(n) for n in self.nx}
        self.edges = {(u, v): self._edge(u, v) for u, v in self.nx.edges}
        self.stub = self._edge(self.end, None)
        # Drawn nodes some of whose operands are not: how many each.
        self.cut = {n: k for n in self.nx if (k := graph.nx.in_degree(n) - self.nx.in_degree(n))}
        for n, k in self.cut.items():
            self.boxes[n].below.append((f"+ {k} operand{'s' * (k > 1)} not drawn", GREY, "cut"))

    def _num(self, v: Any) -> str:
        return _clean(short_number(v, self.digits))

    def _box(self, n: str) -> Box:
        g, t = self.graph, self.trace
        data = g.nx.nodes[n]
        kind, shape = data["kind"], data["shape"]
        box = Box(_clean(str(data["label"])), round=kind not in ("input", "const"))
        if box.round:
            box.below.append((f"{n} · {shape_text(shape)}" if shape else n, GREY, "name"))
            if "(" in box.label and text_width(box.label) > 120:  # sum(axis=1, keepdims): two lines
                box.label, rest = box.label.split("(", 1)
                box.below.insert(0, ("(" + rest, INK, "op-args"))
        elif shape:
            box.below.append((shape_text(shape), GREY, "shape"))
        lines = [f"{n}: input" if kind == "input" else f"{n} = {expression_text(self.graph, n)}"]
        if kind == "gate":
            fused = ", ".join(data["body"].graph["fused"])
            lines.append(f"a fused gate of {fused}; render(..., expand=True) draws them")
        if t is not None:
            grad = t.node_grads.get(n)
            if len(g.consumers(n)) > 1 and grad is not None:
                box.below.append((f"Σ = {self._num(grad)}", RED, "grad total"))
            lines.append(f"value {_clean(number(t.values[n], self.digits))}")
            if grad is not None:
                lines.append(f"∂{g.output}/∂{n} = {_clean(number(grad, self.digits))}")
        box.title = _clean("\n".join(lines))
        return box

    def _edge(self, u: str, v: str | None) -> EdgeText:
        t = self.trace
        if t is None:
            if v is None:
                return EdgeText()
            edge = self.graph.nx.edges[u, v]
            vjp = edge["vjp"]
            if self.graph.elementwise(v):
                text = written(self.graph, shown_derivative(self.graph, v, u), [v])
            else:  # labels (no gradient) where there is no vector-Jacobian product
                text = vjp_text(vjp, self.graph, v)
            return EdgeText(below=_short(text), below_colour=GREY)
        if v is None:
            sent = t.dout if u == self.graph.output else t.node_grads.get(u)
        else:
            sent = t.sent.get((v, u))
        return EdgeText(self._num(t.values[u]), "" if sent is None else self._num(sent))

    # -- drawing ---------------------------------------------------------------------

    def svg(self, engine: str = "layers") -> str:
        """The picture as SVG text, placed by the layout ``engine``."""
        return self.drawing(engine).finish()

    def drawing(self, engine: str = "layers") -> Drawing:
        """The nodes placed by the layout ``engine``, ready to draw."""
        texts = [*self.edges.values(), self.stub]
        widest = max([text_width(s) for e in texts for s in (e.above, e.below)] + [24.0])
        sizes = {n: b.footprint for n, b in self.boxes.items()}
        widths = {e: max(text_width(t.above), text_width(t.below), 24.0) for e, t in self.edges.items()}
        stub = max(text_width(self.stub.above), text_width(self.stub.below), 24.0) + 24
        # Operations as far right as they go and, for graphs of a size to try it, as far left:
        # the one that crosses and overlaps least, then the shorter.
        # (Measuring a trial costs pairs of bends: not for graphs with many edges skipping many layers.)
        tries = ("late", "early") if engine == "layers" and len(sizes) <= 150 and _placed(self.nx) <= 1500 \
            else ("late",)
        scored: list[tuple[int, float, int, Layout]] = []
        for ranking in tries:
            lay = layout(self.nx, sizes, (widest, 2 * FONT), engine, label_widths=widths,
                         max_width=PAGE * SMALL / MIN_TEXT - stub - 30, ranking=ranking)
            if len(tries) == 1:
                return Drawing(self, lay, stub)
            trial = Drawing(self, lay, stub)
            height = float(ET.fromstring(trial.finish()).get("height", "0"))
            scored.append((crossings(lay) + overlaps(lay, trial.node_boxes, trial.label_boxes), height,
                           len(scored), lay))
        lay = min(scored, key=lambda s: s[:3])[3]
        return Drawing(self, lay, stub)

    def measure(self, engine: str = "layers", page: float = 900.0) -> Measures:
        """How readable the picture is: crossings, overlaps, its size, its smallest text on ``page`` px."""
        d = self.drawing(engine)
        root = ET.fromstring(d.finish())
        width, height = float(root.get("width", "0")), float(root.get("height", "0"))
        scale = min(1.0, page / width) if width else 1.0
        sizes = [float(el.get("font-size") or root.get("font-size") or FONT)
                 for el in root.iter("{http://www.w3.org/2000/svg}text")]
        return Measures(crossings(d.lay), overlaps(d.lay, d.node_boxes, d.label_boxes),
                        width, height, round(min(sizes) * scale, 2))


@dataclass(frozen=True)
class Measures:
    """How readable a picture is (see :meth:`Picture.measure`)."""

    crossings: int  # pairs of edges that cross
    overlaps: int  # boxes drawn over each other, and edges through labels or nodes
    width: float  # pixels
    height: float
    smallest_text: float  # pixels, once the picture is shrunk to fit the page


class Drawing:
    """An SVG document under construction, tracking the extent of what is drawn."""

    def __init__(self, picture: Picture, lay: Layout, stub: float):
        self.p, self.lay = picture, lay
        self.root = ET.Element("svg", {
            "xmlns": "http://www.w3.org/2000/svg", "role": "img",
            "font-family": FONT_FAMILY, "font-size": f"{FONT:g}",
        })
        g = picture.graph
        title = f"{g.output} = {g.source or g.expression()}"
        ET.SubElement(self.root, "title").text = _clean(title)
        defs = ET.SubElement(self.root, "defs")
        marker = ET.SubElement(defs, "marker", {
            "id": "symgrad-arrow", "viewBox": "0 0 10 10", "refX": "10", "refY": "5",
            "markerWidth": "7", "markerHeight": "7", "orient": "auto-start-reverse",
        })
        ET.SubElement(marker, "path", {"d": "M0,0 L10,5 L0,10 z", "fill": INK})
        self.background = ET.SubElement(self.root, "rect", {"fill": "white"})
        self.extent = [np.inf, np.inf, -np.inf, -np.inf]
        self.edge_layer = ET.SubElement(self.root, "g", {"class": "edges"})
        self.node_layer = ET.SubElement(self.root, "g", {"class": "nodes"})
        self.stub = stub
        self.node_boxes: dict[str, Polygon] = {}
        self.label_boxes: dict[Edge, Polygon] = {}

    def finish(self) -> str:
        p, lay = self.p, self.lay
        for (u, v), route in lay.routes.items():
            points = route if lay.curved else self._clip(u, v, route)
            self._edge(u, v, points, lay.labels[u, v], p.edges[u, v], lay.curved)
        out = p.end
        x, y = lay.centres[out]
        start = x + p.boxes[out].size[0] / 2
        length = self.stub
        self._edge(out, None, [(start, y), (start + length, y)], (start + length / 2, y), p.stub, False)
        for n, (x, y) in lay.centres.items():
            self._node(n, x, y)
        for gate, name, members in p.frames:
            self._frame(gate, name, [m for m in members if m in self.node_boxes])
        x0, y0, x1, y1 = self.extent
        legend = (f"green: values (forward) · red: gradients ∂{p.graph.output}/∂… (backward)" if p.trace
                  else "grey: the local derivative ∂v/∂u of each edge u → v")
        if any(d["order"] for _, d in p.graph.nx.nodes(data=True)):
            legend += " · filled: nodes of the backward pass (a gradient graph)"
        self._text(self.root, legend, x0, y1 + SMALL + 12, GREY, "legend", size=SMALL, anchor="start")
        total, drawn = p.graph.nx.number_of_nodes(), p.nx.number_of_nodes()
        if drawn < total:
            self.root.set("data-nodes", str(total))
            self.root.set("data-drawn", str(drawn))
            note = ET.SubElement(self.root, "g", {"class": "summary"})
            _, _, _, y1 = self.extent
            for line in (f"Drawn: the {drawn:,} nodes nearest {out} of the graph's {total:,}; "
                         f"{total - drawn:,} are left out.",
                         f"The part ending at {_next(p)}: sg.render(..., end=\"{_next(p)}\"); "
                         f"every node: sg.render(..., max_nodes=None)."):
                self._text(note, line, x0, y1 + SMALL + 6, GREY, "summary", size=SMALL, anchor="start")
                _, _, _, y1 = self.extent
        x0, y0, x1, y1 = self.extent
        m = 8.0
        width, height = x1 - x0 + 2 * m, y1 - y0 + 2 * m
        for key, at in (("x", x0 - m), ("y", y0 - m), ("width", width), ("height", height)):
            self.background.set(key, _f(at))
        self.root.set("viewBox", f"{_f(x0 - m)} {_f(y0 - m)} {_f(width)} {_f(height)}")
        self.root.set("width", _f(width))
        self.root.set("height", _f(height))
        return ET.tostring(self.root, encoding="unicode")

    def _frame(self, gate: str, name: str, members: list[str]) -> None:
        """A dashed frame around the nodes an opened gate was fused from, named for the gate."""
        if not members:
            return
        corners = [c for m in members for c in self.node_boxes[m]]
        pad = 6.0
        x0, y0 = min(c[0] for c in corners) - pad, min(c[1] for c in corners) - pad - SMALL - 2
        x1, y1 = max(c[0] for c in corners) + pad, max(c[1] for c in corners) + pad
        group = ET.Element("g", {"class": "gate-frame", "data-gate": gate, "data-fused": " ".join(members)})
        self.root.insert(list(self.root).index(self.edge_layer), group)
        ET.SubElement(group, "rect", {
            "x": _f(x0), "y": _f(y0), "width": _f(x1 - x0), "height": _f(y1 - y0), "rx": "8",
            "fill": "none", "stroke": GREY, "stroke-width": "1", "stroke-dasharray": "5,3",
        })
        self._text(group, f"{name} ({gate})", x0 + 6, y0 + SMALL + 1, GREY, "gate-name", size=SMALL,
                   anchor="start")
        self._grow(x0, y0, x1, y1)

    def _grow(self, x0: float, y0: float, x1: float, y1: float) -> None:
        e = self.extent
        self.extent = [min(e[0], x0), min(e[1], y0), max(e[2], x1), max(e[3], y1)]

    def _text(self, parent: ET.Element, text: str, x: float, y: float, colour: str, cls: str,
              size: float = FONT, anchor: str = "middle", attrs: dict[str, str] | None = None) -> Box2:
        if not text:
            return (x, y, x, y)
        el = ET.SubElement(parent, "text", {
            "x": _f(x), "y": _f(y), "fill": colour, "class": cls, "text-anchor": anchor, **(attrs or {}),
        })
        if size != FONT:
            el.set("font-size", f"{size:g}")
        el.text = text
        w = text_width(text, size)
        left = x - w / 2 if anchor == "middle" else x - w if anchor == "end" else x
        self._grow(left, y - size, left + w, y + size * 0.3)
        return (left, y - size * 0.8, left + w, y + size * 0.25)

    def _node(self, n: str, x: float, y: float) -> None:
        box = self.p.boxes[n]
        w, h = box.size
        data = self.p.graph.nx.nodes[n]
        order = data["order"]
        gate = data["kind"] == "gate"
        group = ET.SubElement(self.node_layer, "g", {
            "class": "node backward" if order else "node gate" if gate else "node", "data-node": n})
        if gate:
            group.set("data-fused", " ".join(data["body"].graph["fused"]))
        ET.SubElement(group, "title").text = box.title
        if box.round:
            fill = BACKWARD_FILLS[(order - 1) % len(BACKWARD_FILLS)] if order else FILL
            ET.SubElement(group, "ellipse", {
                "cx": _f(x), "cy": _f(y), "rx": _f(w / 2), "ry": _f(h / 2),
                "fill": fill, "stroke": INK, "stroke-width": "1.3",
            })
            if gate:  # a double outline: one node standing for several
                ET.SubElement(group, "ellipse", {
                    "cx": _f(x), "cy": _f(y), "rx": _f(w / 2 - 3), "ry": _f(h / 2 - 3),
                    "fill": "none", "stroke": INK, "stroke-width": "0.8",
                })
            self._text(group, box.label, x, y + FONT * 0.35, INK, "op", attrs={"data-node": n})
        else:
            self._text(group, box.label, x, y + FONT * 0.35, INK, "input", size=FONT + 1,
                       attrs={"font-weight": "bold", "data-node": n})
        self._grow(x - w / 2, y - h / 2, x + w / 2, y + h / 2)
        found = [(x - w / 2, y - h / 2, x + w / 2, y + h / 2)]
        below = y + h / 2 + SMALL + 1
        for text, colour, cls in box.below:
            found.append(self._text(group, text, x, below, colour, cls, size=SMALL, attrs={"data-node": n}))
            below += SMALL + 2
        self.node_boxes[n] = rect(_union(found))

    def _edge(self, u: str, v: str | None, points: list[Point], at: Point, label: EdgeText,
              curved: bool) -> None:
        name = f"{u}→{v}" if v is not None else f"{u}→"
        group = ET.SubElement(self.edge_layer, "g", {"class": "edge", "data-edge": name})
        if curved:
            d = f"M{_p(points[0])} C" + " ".join(_p(q) for q in points[1:])
        else:  # straight, with bends rounded off near the corners
            d = f"M{_p(points[0])}"
            for i in range(1, len(points) - 1):
                d += f" L{_p(_toward(points[i], points[i - 1]))} Q{_p(points[i])}"
                d += f" {_p(_toward(points[i], points[i + 1]))}"
            d += f" L{_p(points[-1])}"
        ET.SubElement(group, "path", {
            "d": d, "fill": "none", "stroke": INK, "stroke-width": "1.2",
            "marker-end": "url(#symgrad-arrow)",
        })
        for q in points:
            self._grow(q[0], q[1], q[0], q[1])
        # The texts run along the line, the value above it and the gradient below it.
        if curved:  # from the spline's point nearest the place the layout chose
            (x, y), (ax, ay), (bx, by) = _nearest_on_curve(points, at)
        else:  # along the segment the label sits on (the last, or the one leaving a row)
            (ax, ay), (bx, by) = min(zip(points, points[1:]), key=lambda s: _distance(at, *s))
            x, y = at
        angle = 0.0 if bx <= ax else float(np.degrees(np.arctan2(by - ay, bx - ax)))
        attrs = {"data-node": u}
        if abs(angle) > 0.5:
            attrs["transform"] = f"rotate({_f(angle)} {_f(x)} {_f(y)})"
        found = [self._text(group, label.above, x, y - 4, GREEN, "value", attrs=attrs)]
        cls = "grad" if label.below_colour == RED else "local"
        found.append(self._text(group, label.below, x, y + 4 + FONT * 0.75, label.below_colour, cls,
                                attrs=attrs))
        if v is not None and (label.above or label.below):
            self.label_boxes[u, v] = turned(_union([b for b in found if b[0] < b[2]]),
                                            angle if abs(angle) > 0.5 else 0.0, (x, y))

    def _clip(self, u: str, v: str, route: list[Point]) -> list[Point]:
        """The route with its ends moved from the node centres to their outlines."""
        pts = list(route)
        pts[0] = self._boundary(u, pts[0], pts[1])
        pts[-1] = self._boundary(v, pts[-1], pts[-2])
        return pts

    def _boundary(self, n: str, centre: Point, toward: Point) -> Point:
        box = self.p.boxes[n]
        w, h = box.size
        dx, dy = toward[0] - centre[0], toward[1] - centre[1]
        if dx == 0 and dy == 0:
            return centre
        if box.round:
            s = 1 / np.hypot(dx / (w / 2), dy / (h / 2))
        else:
            s = min(w / 2 / abs(dx) if dx else np.inf, h / 2 / abs(dy) if dy else np.inf)
        return (centre[0] + s * dx, centre[1] + s * dy)


def _next(p: Picture) -> str:
    """The latest node left out that a drawn node reads: where the next part could end."""
    position = {n: i for i, n in enumerate(p.graph.nx)}
    left_out = [m for n in p.cut for m in p.graph.nx.predecessors(n) if m not in p.boxes]
    return max(left_out, key=position.__getitem__, default=p.graph.output)


def _nearest_on_curve(points: list[Point], target: Point) -> tuple[Point, Point, Point]:
    """The point of a chain of cubic Bézier pieces nearest ``target``, and a chord around it."""
    t = np.linspace(0, 1, 21)[:, None]
    samples = []
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = (np.array(q) for q in points[i:i + 4])
        samples.append((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3)
    curve = np.concatenate(samples) if samples else np.array(points, dtype=float)
    k = int(np.argmin(np.hypot(*(curve - np.array(target)).T)))
    a, b = curve[max(k - 1, 0)], curve[min(k + 1, len(curve) - 1)]
    return (float(curve[k][0]), float(curve[k][1])), (float(a[0]), float(a[1])), (float(b[0]), float(b[1]))


def _distance(p: Point, a: Point, b: Point) -> float:
    """How far ``p`` is from the segment a-b."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    along = ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy) if dx or dy else 0.0
    t = max(0.0, min(1.0, along))
    return float(np.hypot(p[0] - a[0] - t * dx, p[1] - a[1] - t * dy))


def _toward(corner: Point, other: Point, radius: float = 14.0) -> Point:
    """The point ``radius`` from ``corner`` towards ``other`` (at most halfway)."""
    length = float(np.hypot(other[0] - corner[0], other[1] - corner[1]))
    if length <= 2 * radius:
        return midpoint(corner, other)
    s = radius / length
    return (corner[0] + (other[0] - corner[0]) * s, corner[1] + (other[1] - corner[1]) * s)


def _union(boxes: list[Box2]) -> Box2:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes))


def _f(x: float) -> str:
    """A coordinate as short text: 12.5, not 12.500000001; 3, not 3.0."""
    text = f"{float(x):.1f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _p(q: Point) -> str:
    return f"{_f(q[0])},{_f(q[1])}"


def _short(text: str) -> str:
    return _clean(text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…")


def _clean(text: str) -> str:
    """Drop the characters XML cannot hold."""
    return _NOT_XML.sub("", text)
