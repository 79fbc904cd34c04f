"""Where the nodes of a picture go: layers from left to right, edges routed between them.

Two engines give the same :class:`Layout`:

- ``"layers"`` (always available): networkx's topological generations give
  each node its layer (inputs on the left, the output on the right); an edge
  that skips layers passes through placeholder points in the layers between,
  so it never runs through a node; a few barycenter sweeps order each layer to
  keep crossings down; :func:`networkx.multipartite_layout` spaces the layers
  and the nodes in them.
- ``"dot"``: Graphviz's ``dot`` program, when it is installed, places the
  nodes and routes the edges as splines.

Both read only the node sizes given to them; drawing is :mod:`symgrad.picture`'s job.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np

from .errors import SymgradError

Point = tuple[float, float]
Edge = tuple[str, str]
LAYOUTS = ("layers", "dot")


@dataclass(frozen=True)
class Layout:
    """Node centres and edge routes, in pixels (y grows downwards).

    centres:  ``{node: (x, y)}``
    routes:   ``{(u, v): points}`` from ``u``'s centre (or boundary) to ``v``'s:
              a polyline, or cubic Bézier control points when ``curved``
    labels:   ``{(u, v): (x, y)}`` where the edge's labels are centred
    """

    centres: dict[str, Point]
    routes: dict[Edge, list[Point]]
    labels: dict[Edge, Point]
    curved: bool


def layout(g: nx.DiGraph, sizes: Mapping[str, Point], label_size: Point,
           engine: str = "layers") -> Layout:
    """Place the nodes of the DAG ``g``, each of ``sizes[node] = (width, height)`` pixels.

    ``label_size`` is the size of the largest edge label, which the gap between
    layers must hold.

    >>> g = nx.DiGraph([("x", "q1"), ("y", "q1"), ("q1", "q2"), ("z", "q2")])
    >>> sizes = {n: (40.0, 30.0) for n in g}
    >>> lay = layout(g, sizes, (50.0, 30.0))
    >>> sorted({x for x, _ in lay.centres.values()})  # inputs, then q1, then q2
    [0.0, 114.0, 228.0]
    >>> len(lay.routes["z", "q2"]), lay.curved  # z → q2 passes q1 with room: a straight line
    (2, False)
    """
    if engine not in LAYOUTS:
        raise SymgradError(f"unknown layout {engine!r}; choose one of {', '.join(LAYOUTS)}")
    if engine == "dot":
        return _dot(g, sizes, label_size)
    return _layers(g, sizes, label_size)


# -- layers ------------------------------------------------------------------------


def _layers(g: nx.DiGraph, sizes: Mapping[str, Point], label_size: Point) -> Layout:
    layer = {n: i for i, generation in enumerate(nx.topological_generations(g)) for n in generation}
    # Long edges pass through one placeholder per layer they skip.
    h = nx.DiGraph()
    h.add_nodes_from(g)
    chains: dict[Edge, list[Hashable]] = {}
    for u, v in g.edges:
        chain: list[Hashable] = [u, *((u, v, i) for i in range(layer[u] + 1, layer[v])), v]
        nx.add_path(h, chain)
        chains[u, v] = chain
        for i, p in enumerate(chain[1:-1], start=layer[u] + 1):
            layer[p] = i
    layers: list[list[Hashable]] = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for n in h:  # graph order first: inputs as given, operations as written
        layers[layer[n]].append(n)
    layers = _order(h, layers)

    width = max((w for w, _ in sizes.values()), default=0.0)
    height = max((hh for _, hh in sizes.values()), default=0.0)
    dx = width + label_size[0] + 24
    dy = max(height, 2 * label_size[1]) + 32
    grid = nx.multipartite_layout(h, subset_key=dict(enumerate(layers)))
    tallest = max(len(nodes) for nodes in layers)
    xs, ys = (np.array([p[k] for p in grid.values()]) for k in (0, 1))
    scale = (tallest - 1) * dy / np.ptp(ys) if tallest > 1 else 0.0
    y = {n: float(p[1] - ys.mean()) * scale for n, p in grid.items()}
    _straighten(h, layers, y, dy)
    at = {n: (round(layer[n] * dx, 2), round(float(y[n]), 2)) for n in h}

    routes = {}
    for e, chain in chains.items():
        points = [at[p] for p in chain]
        if len(points) > 2 and _clear(points[0], points[-1], chain[1:-1], layers, layer, at, sizes):
            points = [points[0], points[-1]]
        routes[e] = points
    room = {(u, v): (sizes[u][0] / 2, sizes[v][0] / 2) for u, v in chains}
    labels = _label_places(routes, room, label_size)
    return Layout({n: at[n] for n in g}, routes, labels, curved=False)


def _straighten(h: nx.DiGraph, layers: list[list[Hashable]], y: dict[Hashable, float], gap: float,
                sweeps: int = 4) -> None:
    """Move each node towards the mean height of its neighbours, keeping the order and the gap."""
    for sweep in range(2 * sweeps + 1):
        both, down = sweep == 2 * sweeps, sweep % 2 == 0
        for i in range(len(layers)) if down else reversed(range(len(layers))):
            wanted = []
            for n in layers[i]:
                near = list(h.predecessors(n)) if down or both else []
                near += list(h.successors(n)) if not down or both else []
                wanted.append(sum(y[m] for m in near) / len(near) if near else y[n])
            for n, placed in zip(layers[i], _spread(wanted, gap)):
                y[n] = placed


def _spread(wanted: list[float], gap: float) -> list[float]:
    """The heights closest to ``wanted`` (least squares) that keep their order, ``gap`` apart.

    Subtracting ``i * gap`` turns this into isotonic regression, solved by pooling
    adjacent violators.

    >>> _spread([0.0, 0.0, 10.0], 4.0)
    [-2.0, 2.0, 10.0]
    """
    blocks: list[list[float]] = []  # [mean, count]
    for i, w in enumerate(wanted):
        blocks.append([w - i * gap, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, c1), (m2, c2) = blocks.pop(), blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    flat = [m for m, c in blocks for _ in range(int(c))]
    return [z + i * gap for i, z in enumerate(flat)]


def _clear(a: Point, b: Point, placeholders: list[Hashable], layers: list[list[Hashable]],
           layer: dict[Hashable, int], at: dict[Hashable, Point], sizes: Mapping[Any, Point]) -> bool:
    """Whether the straight line from ``a`` to ``b`` passes every node between them with room to spare."""
    for p in placeholders:
        x = at[p][0]
        y = a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0])
        for n in layers[layer[p]]:
            if n in sizes and abs(at[n][1] - y) < sizes[n][1] / 2 + 30:
                return False
    return True


def _order(h: nx.DiGraph, layers: list[list[Hashable]], sweeps: int = 4) -> list[list[Hashable]]:
    """Reorder each layer by the mean rank of its neighbours, keeping the fewest crossings."""
    best, fewest = [list(nodes) for nodes in layers], _crossings(h, layers)
    for _ in range(sweeps):
        for down in (True, False):
            indices = range(1, len(layers)) if down else range(len(layers) - 2, -1, -1)
            for i in indices:
                near = layers[i - 1] if down else layers[i + 1]
                rank = {n: r for r, n in enumerate(near)}

                here = {n: r for r, n in enumerate(layers[i])}

                def key(n: Hashable, near_rank: dict = rank, here: dict = here, down: bool = down) -> float:
                    others = h.predecessors(n) if down else h.successors(n)
                    ranks = [near_rank[m] for m in others if m in near_rank]
                    return sum(ranks) / len(ranks) if ranks else here[n]

                layers[i] = sorted(layers[i], key=key)
            crossings = _crossings(h, layers)
            if crossings < fewest:
                best, fewest = [list(nodes) for nodes in layers], crossings
    return best


def _crossings(h: nx.DiGraph, layers: list[list[Hashable]]) -> int:
    """How many pairs of edges cross between neighbouring layers."""
    total = 0
    for left, right in zip(layers, layers[1:]):
        rank = {n: r for r, n in enumerate(right)}
        ends = sorted((r, rank[v]) for r, u in enumerate(left) for v in h.successors(u) if v in rank)
        seen: list[int] = []
        for _, b in ends:  # count earlier edges ending below this one
            total += sum(1 for s in seen if s > b)
            seen.append(b)
    return total


def _label_places(routes: dict[Edge, list[Point]], ends: dict[Edge, tuple[float, float]],
                  label_size: Point) -> dict[Edge, Point]:
    """Where each edge's labels go: on its last segment, away from the segments near it.

    The middle is first choice; a label moves along the segment, as far as the
    nodes at its ends leave room, when another segment between the same layers
    crosses it or comes near there.  A bent route keeps its label on the
    straight second half of its last segment.
    """
    gaps: dict[float, list[tuple[Point, Point]]] = {}
    for r in routes.values():
        for a, b in zip(r, r[1:]):
            gaps.setdefault(a[0], []).append((a, b))
    places = {}
    for e, r in routes.items():
        (ax, ay), (bx, by) = a, b = r[-2], r[-1]
        others = [(p, q) for p, q in gaps[ax] if (p, q) != (a, b)] if len(gaps[ax]) < 200 else []
        left = (ends[e][0] if len(r) == 2 else (bx - ax) / 2) + label_size[0] / 2 + 4
        right = ends[e][1] + label_size[0] / 2 + 4
        best, widest = 0.5, -1.0
        for s in (0.5, 0.6, 0.4, 0.7, 0.3):
            x, y = ax + (bx - ax) * s, ay + (by - ay) * s
            if not (ax + left <= x <= bx - right) and s != 0.5:
                continue
            gap = min((abs(p[1] + (q[1] - p[1]) * s - y) for p, q in others), default=np.inf)
            if gap > widest:
                best, widest = s, gap
            if gap >= 2 * label_size[1]:
                break
        places[e] = (ax + (bx - ax) * best, ay + (by - ay) * best)
    return places


def midpoint(a: Point, b: Point) -> Point:
    """The point halfway between ``a`` and ``b``."""
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)


# -- dot -----------------------------------------------------------------------------


def _dot(g: nx.DiGraph, sizes: Mapping[str, Point], label_size: Point) -> Layout:
    program = shutil.which("dot")
    if program is None:
        raise SymgradError("layout 'dot' needs Graphviz's dot program, which is not installed; "
                           "the 'layers' layout needs nothing more")
    ids = {n: f"n{i}" for i, n in enumerate(g)}
    inch = 72.0
    # A label of about the size of ours, with a line to spare so that the edge keeps clear of it.
    label = "\\n".join(["0" * max(1, round(label_size[0] / 7))] * (round(label_size[1] / 14) + 1))
    lines = ["digraph {", "rankdir=LR; nodesep=0.35; ranksep=0.3;",
             'node [shape=box, fixedsize=true, label=""]; edge [arrowhead=none, fontsize=12];']
    for n, i in ids.items():
        w, h = sizes[n]
        lines.append(f"{i} [width={w / inch:.3f}, height={h / inch:.3f}];")
    for u, v in g.edges:
        lines.append(f'{ids[u]} -> {ids[v]} [label="{label}"];')
    lines.append("}")
    try:
        done = subprocess.run([program, "-Tplain"], input="\n".join(lines), capture_output=True,
                              text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as e:
        raise SymgradError(f"Graphviz's dot failed: {e}") from None
    names = {i: n for n, i in ids.items()}
    top = 0.0
    centres: dict[str, Point] = {}
    routes: dict[Edge, list[Point]] = {}
    labels: dict[Edge, Point] = {}
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        if words[:1] == ["graph"]:
            top = float(words[3])
        elif words[:1] == ["node"]:
            centres[names[words[1]]] = (float(words[2]) * inch, (top - float(words[3])) * inch)
        elif words[:1] == ["edge"]:
            u, v, k = names[words[1]], names[words[2]], int(words[3])
            xy = [float(w) for w in words[4:4 + 2 * k]]
            routes[u, v] = [(x * inch, (top - y) * inch) for x, y in zip(xy[::2], xy[1::2])]
            rest = words[4 + 2 * k:]
            labels[u, v] = ((float(rest[1]) * inch, (top - float(rest[2])) * inch) if len(rest) >= 5
                            else midpoint(routes[u, v][0], routes[u, v][-1]))
    return Layout(centres, routes, labels, curved=True)
