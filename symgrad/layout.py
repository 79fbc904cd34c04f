"""Where the nodes of a picture go: layers from left to right, edges routed between them.

Two engines give the same :class:`Layout`:

- ``"layers"`` (always available): each node's layer is its longest path to
  the output counted from the right, so an input sits just before its first
  use; an edge that skips layers passes through placeholder points in the
  layers between, so it never runs through a node; barycenter sweeps and then
  swaps of neighbours order each layer to keep crossings down; each gap is as
  wide as the labels crossing it.  Given a ``max_width``, a wider graph folds
  into rows, read like lines of text.
- ``"dot"``: Graphviz's ``dot`` program, when it is installed, places the
  nodes and routes the edges as splines.

Both read only the node sizes given to them; drawing is :mod:`symgrad.picture`'s job.
:func:`crossings` and :func:`overlaps` measure how readable a layout is.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from bisect import bisect_left, bisect_right, insort
from collections.abc import Hashable, Mapping, Sequence
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
           engine: str = "layers", *, label_widths: Mapping[Edge, float] | None = None,
           max_width: float | None = None, ranking: str = "late") -> Layout:
    """Place the nodes of the DAG ``g``, each of ``sizes[node] = (width, height)`` pixels.

    ``label_size`` is the size of the largest edge label, which the gap between
    layers must hold; ``label_widths`` (``{edge: width}``), if given, lets each gap
    hold only the labels of the edges that end past it.  With ``max_width``, the
    ``"layers"`` engine folds a graph wider than that into rows, read like lines of
    text: an edge from one row to the next leaves its row on the right, runs
    back beneath it and enters the next row from the left.  ``ranking`` is
    ``"late"`` (each operation as far right as it can go, see :func:`ranks`) or
    ``"early"`` (as far left; see :func:`early_ranks`).

    >>> g = nx.DiGraph([("x", "q1"), ("y", "q1"), ("q1", "q2"), ("z", "q2")])
    >>> sizes = {n: (40.0, 30.0) for n in g}
    >>> lay = layout(g, sizes, (50.0, 30.0))
    >>> sorted({x for x, _ in lay.centres.values()})  # x, y, then q1; z next to q2, its first use
    [0.0, 114.0, 228.0]
    >>> lay.centres["z"][0], len(lay.routes["z", "q2"])
    (114.0, 2)
    """
    if engine not in LAYOUTS:
        raise SymgradError(f"unknown layout {engine!r}; choose one of {', '.join(LAYOUTS)}")
    if engine == "dot":
        return _dot(g, sizes, label_size)
    if ranking not in ("late", "early"):
        raise SymgradError(f"unknown ranking {ranking!r}; choose 'late' or 'early'")
    layer = ranks(g) if ranking == "late" else early_ranks(g)
    return _layers(g, layer, sizes, label_size, label_widths or {}, max_width)


# -- layers ------------------------------------------------------------------------


def ranks(g: nx.DiGraph) -> dict[Hashable, int]:
    """Each node's layer: as far right as it can go, so that a node sits just before its first use.

    The layer is the longest path to the output counted from the right, so the
    output is rightmost and an input is placed next to the operation that reads it first.

    >>> sorted(ranks(nx.DiGraph([("x", "q1"), ("y", "q1"), ("q1", "q2"), ("z", "q2")])).items())
    [('q1', 1), ('q2', 2), ('x', 0), ('y', 0), ('z', 1)]
    """
    depth: dict[Hashable, int] = {}
    for n in reversed(list(nx.topological_sort(g))):
        depth[n] = max((depth[s] + 1 for s in g.successors(n)), default=0)
    deepest = max(depth.values(), default=0)
    return {n: deepest - d for n, d in depth.items()}


def early_ranks(g: nx.DiGraph) -> dict[Hashable, int]:
    """Each operation as far left as it can go, each input just before its first use.

    >>> sorted(early_ranks(nx.DiGraph([("x", "q1"), ("q1", "q2"), ("q2", "q3"), ("y", "q4"),
    ...                                 ("q4", "q3")])).items())
    [('q1', 1), ('q2', 2), ('q3', 3), ('q4', 1), ('x', 0), ('y', 0)]
    """
    layer: dict[Hashable, int] = {}
    for n in nx.topological_sort(g):
        operands = [layer[p] + 1 for p in g.predecessors(n) if g.in_degree(p) > 0]
        layer[n] = max(operands, default=1 if g.in_degree(n) else 0)
    for n in g:
        if g.in_degree(n) == 0 and g.out_degree(n):
            layer[n] = min(layer[s] for s in g.successors(n)) - 1
    low = min(layer.values(), default=0)
    return {n: i - low for n, i in layer.items()}


def _layers(g: nx.DiGraph, ranked: Mapping[Hashable, int], sizes: Mapping[str, Point], label_size: Point,
            label_widths: Mapping[Edge, float], max_width: float | None) -> Layout:
    layer = dict(ranked)
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
    for n in sorted(h, key=_first_use(g)):  # inputs by their first use, operations as written
        layers[layer[n]].append(n)
    layers = _order(h, layers)

    height = max((hh for _, hh in sizes.values()), default=0.0)
    dy = max(height, 2 * label_size[1]) + 32
    # Each gap holds the widest nodes on its two sides and the labels of the edges ending past it.
    half = [max((sizes[str(n)][0] / 2 for n in nodes if n in sizes), default=0.0) for nodes in layers]
    label = [0.0] * len(layers)
    for (_, v), w in label_widths.items():
        label[layer[v]] = max(label[layer[v]], w)
    gap = [half[i - 1] + half[i] + (label[i] if label_widths else label_size[0]) + 24
           if i else 0.0 for i in range(len(layers))]
    grid = nx.multipartite_layout(h, subset_key=dict(enumerate(layers)))
    tallest = max(len(nodes) for nodes in layers)
    ys = np.array([p[1] for p in grid.values()])
    scale = (tallest - 1) * dy / np.ptp(ys) if tallest > 1 else 0.0
    y = {n: float(p[1] - ys.mean()) * scale for n, p in grid.items()}
    _straighten(h, layers, y, dy)

    # Right of a row ending at layer i: room for the labels of the edges leaving it, one lane each.
    leaving, lanes = [0.0] * len(layers), [0] * len(layers)
    for e in chains:
        for i in range(layer[e[0]], layer[e[1]]):
            leaving[i] = max(leaving[i], label_widths.get(e, label_size[0]) + 30 + 5 * lanes[i])
            lanes[i] += 1
    leaving[-1] = 0.0
    rows = _rows(gap, half, max_width, leaving)
    if len(rows) > 1:  # each row straightened on its own, so that it is no taller than it needs
        for first, last in rows:
            part = {n: y[n] for i in range(first, last + 1) for n in layers[i]}
            _straighten(h, layers[first:last + 1], part, dy)
            y.update(part)
    column = [0.0] * len(layers)
    row_of = [0] * len(layers)
    top = 0.0
    shift: list[float] = []
    for r, (first, last) in enumerate(rows):
        x = gap[first] if r else 0.0  # a later row opens with room for the labels coming in
        for i in range(first, last + 1):
            x += gap[i] if i > first else 0.0
            column[i] = x
            row_of[i] = r
        in_row = [y[n] for i in range(first, last + 1) for n in layers[i]]
        shift.append(top - min(in_row))
        top += max(in_row) - min(in_row) + dy + (len(rows) > 1) * (dy / 2 + 6 * lanes[last])
    at = {n: (round(column[layer[n]], 2), round(y[n] + shift[row_of[layer[n]]], 2)) for n in h}

    nodes_at = []  # each layer's nodes by height: (heights, how near a line may pass, the nearest)
    for nodes in layers:
        placed = sorted((at[n][1], sizes[str(n)][1] / 2 + 30) for n in nodes if n in sizes)
        near = [r for _, r in placed]
        nodes_at.append(([y for y, _ in placed], near, max(near, default=0.0)))
    routes = {}
    for e, chain in chains.items():
        points = [at[p] for p in chain]
        if len(points) > 2 and row_of[layer[e[0]]] == row_of[layer[e[1]]] and \
                _clear(points[0], points[-1], chain[1:-1], layer, at, nodes_at):
            points = [points[0], points[-1]]
        routes[e] = points
    wraps = _wrap(routes, chains, layer, row_of, column, half, gap, at, rows, dy, leaving)
    room = {(u, v): (sizes[u][0] / 2, sizes[v][0] / 2) for u, v in chains}
    labels = _label_places({e: r for e, r in routes.items() if e not in wraps}, room, label_size,
                           label_widths)
    for e, (a, b) in wraps.items():  # a label sits on the straight stretch leaving the row
        labels[e] = ((a[0] + b[0]) / 2 + (room[e][0] if a == at[e[0]] else 0) / 2, a[1])
    return Layout({n: at[n] for n in g}, routes, labels, curved=False)


def _first_use(g: nx.DiGraph) -> Any:
    order = {n: i for i, n in enumerate(g)}

    def key(n: Hashable) -> float:
        if n not in order:
            return float("inf")
        users = [order[s] for s in g.successors(n)]
        return min(users) - 0.5 if users and g.in_degree(n) == 0 else order[n]
    return key


def _rows(gap: list[float], half: list[float], max_width: float | None,
          leaving: list[float]) -> list[tuple[int, int]]:
    """Consecutive layers grouped into rows no wider than ``max_width``, each with room on its
    right for ``leaving[i]``, the labels of the edges that leave a row ending at layer ``i``."""
    if max_width is None or sum(gap) + half[0] + half[-1] <= max_width:
        return [(0, len(gap) - 1)]
    rows: list[tuple[int, int]] = []
    first = 0
    while first < len(gap):
        width, last = (gap[first] if rows else 0.0) + half[first], first
        for i in range(first, len(gap)):
            width += gap[i] if i > first else 0.0
            if i > first and width > max_width:  # the width only grows: no later layer fits
                break
            if i > first and width + half[i] + leaving[i] > max_width:
                continue
            if width + half[i] + leaving[i] <= max_width:
                last = i
        rows.append((first, last))
        first = last + 1
    return rows


def _wrap(routes: dict[Edge, list[Point]], chains: dict[Edge, list[Hashable]], layer: dict[Hashable, int],
          row_of: list[int], column: list[float], half: list[float], gap: list[float],
          at: dict[Hashable, Point], rows: list[tuple[int, int]], dy: float,
          leaving: list[float]) -> dict[Edge, tuple[Point, Point]]:
    """Route the edges that pass from one row to the next: out to the right, back beneath,
    in from the left; returns the stretch of each where its label goes (leaving its first row)."""
    wrapped: dict[Edge, tuple[Point, Point]] = {}
    # Lanes nest like brackets: the edge leaving a row highest runs outermost on the right,
    # lowest in the gap beneath and innermost on the left, so that lanes do not cross.
    out = sorted(((row_of[layer[a]], -at[a][1], e, a) for e, chain in chains.items()
                      for a, b in zip(chain, chain[1:]) if row_of[layer[a]] != row_of[layer[b]]),
                     key=lambda item: (item[0], item[1]))
    lanes: dict[tuple[Edge, Hashable], int] = {}
    lanes_in: dict[int, int] = {}
    for r, _, e, a in out:  # sorted by row: each row's lanes counted 1, 2, …
        lanes[e, a] = lanes_in[r] = lanes_in.get(r, 0) + 1
    lowest: dict[int, float] = {}  # the lowest node of each row
    for n, (_, y) in at.items():
        r = row_of[layer[n]]
        lowest[r] = max(lowest.get(r, y), y)
    entering: dict[Hashable, int] = {}
    for e, chain in chains.items():
        if row_of[layer[e[0]]] == row_of[layer[e[1]]]:
            continue
        points = [at[chain[0]]]
        for a, b in zip(chain, chain[1:]):
            ra, rb = row_of[layer[a]], row_of[layer[b]]
            if ra != rb:
                lane = lanes[e, a]
                last = rows[ra][1]
                out_x = column[last] + half[last] + leaving[last] - 5 * (lanes_in[ra] - lane) - 20
                in_x = column[layer[b]] - gap[layer[b]] + half[layer[b]] + 5 * lane
                lane_y = lowest[ra] + dy / 2 + 6 * lane
                k = entering[b] = entering.get(b, -1) + 1
                enter_y = at[b][1] + (8 * k if b == e[1] else 0)
                if e not in wrapped:
                    wrapped[e] = (at[a], (out_x, at[a][1]))
                points += [(out_x, at[a][1]), (out_x, lane_y), (in_x, lane_y), (in_x, enter_y)]
                if b == e[1] and k:
                    points.append((in_x + 12, enter_y))
            points.append(at[b])
        routes[e] = points
    return wrapped


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
                near = [m for m in near if m in y]
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


def _clear(a: Point, b: Point, placeholders: list[Hashable], layer: dict[Hashable, int],
           at: dict[Hashable, Point], nodes_at: list[tuple[list[float], list[float], float]]) -> bool:
    """Whether the straight line from ``a`` to ``b`` passes every node between them with room to spare.

    ``nodes_at[i]`` holds the heights of the nodes of layer ``i`` in order, how near each
    lets a line pass (half its height and 30 px), and the largest of those.
    """
    for p in placeholders:
        x = at[p][0]
        y = a[1] + (b[1] - a[1]) * (x - a[0]) / (b[0] - a[0])
        heights, room, most = nodes_at[layer[p]]
        for k in range(bisect_right(heights, y - most), bisect_left(heights, y + most)):
            if abs(heights[k] - y) < room[k]:
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
    return _transpose(h, best)


def _transpose(h: nx.DiGraph, layers: list[list[Hashable]], rounds: int = 4) -> list[list[Hashable]]:
    """Swap neighbours in a layer wherever that leaves fewer crossings (Gansner et al.'s transpose)."""
    layers = [list(nodes) for nodes in layers]
    if sum(map(len, layers)) > 300:
        return layers
    for _ in range(rounds):
        better = False
        for i, nodes in enumerate(layers):
            near = layers[max(i - 1, 0):i + 2]
            here = i - max(i - 1, 0)
            for k in range(len(nodes) - 1):
                before = _crossings(h, near)
                nodes[k], nodes[k + 1] = nodes[k + 1], nodes[k]
                near[here] = nodes
                if _crossings(h, near) < before:
                    better = True
                else:
                    nodes[k], nodes[k + 1] = nodes[k + 1], nodes[k]
        if not better:
            break
    return layers


def _crossings(h: nx.DiGraph, layers: list[list[Hashable]]) -> int:
    """How many pairs of edges cross between neighbouring layers."""
    total = 0
    for left, right in zip(layers, layers[1:]):
        rank = {n: r for r, n in enumerate(right)}
        ends = sorted((r, rank[v]) for r, u in enumerate(left) for v in h.successors(u) if v in rank)
        seen: list[int] = []  # sorted
        for _, b in ends:  # count earlier edges ending below this one
            total += len(seen) - bisect_right(seen, b)
            insort(seen, b)
    return total


def _label_places(routes: dict[Edge, list[Point]], ends: dict[Edge, tuple[float, float]],
                  label_size: Point, widths: Mapping[Edge, float] | None = None) -> dict[Edge, Point]:
    """Where each edge's labels go: on its last segment, away from the segments near it.

    The middle is first choice; a label moves along the segment, as far as the
    nodes at its ends leave room, when another segment between the same layers
    crosses it or comes near there, or a label placed before it is there.  A bent
    route keeps its label on the straight second half of its last segment.
    """
    widths = widths or {}
    gaps: dict[float, list[tuple[Point, Point]]] = {}
    for r in routes.values():
        for a, b in zip(r, r[1:]):
            gaps.setdefault(a[0], []).append((a, b))
    places: dict[Edge, Point] = {}
    for e, r in routes.items():
        (ax, ay), (bx, by) = a, b = r[-2], r[-1]
        others = [(p, q) for p, q in gaps[ax] if (p, q) != (a, b)] if len(gaps[ax]) < 200 else []
        w = widths.get(e, label_size[0])
        left = (ends[e][0] if len(r) == 2 else (bx - ax) / 2) + w / 2 + 4
        right = ends[e][1] + w / 2 + 4
        placed = [(places[f], widths.get(f, label_size[0])) for f in places] if len(places) < 200 else []
        best, widest = 0.5, -1.0
        for s in (0.5, 0.6, 0.4, 0.7, 0.3):
            x, y = ax + (bx - ax) * s, ay + (by - ay) * s
            if not (ax + left <= x <= bx - right) and s != 0.5:
                continue
            gap = min((abs(p[1] + (q[1] - p[1]) * s - y) for p, q in others), default=np.inf)
            gap = min([gap] + [abs(y - py) for (px, py), pw in placed if abs(x - px) < (w + pw) / 2])
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


def dot_available() -> bool:
    """Whether Graphviz's ``dot`` program is on the PATH (``layout="dot"`` needs it)."""
    return shutil.which("dot") is not None


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


# -- measures ------------------------------------------------------------------------

Box2 = tuple[float, float, float, float]  # x0, y0, x1, y1


def polyline(route: list[Point], curved: bool) -> list[Point]:
    """The route as straight segments (a curved route sampled along its Bézier pieces)."""
    if not curved or len(route) < 4:
        return list(route)
    t = np.linspace(0, 1, 9)[:, None]
    out: list[Point] = [route[0]]
    for i in range(0, len(route) - 3, 3):
        p0, p1, p2, p3 = (np.array(q) for q in route[i:i + 4])
        piece = (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3
        out += [(float(x), float(y)) for x, y in piece[1:]]
    return out


def _cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether the segments a-b and c-d cross at a point inside both."""
    def side(p: Point, q: Point, r: Point) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
    d1, d2, d3, d4 = side(c, d, a), side(c, d, b), side(a, b, c), side(a, b, d)
    return d1 * d2 < 0 and d3 * d4 < 0


def crossings(lay: Layout) -> int:
    """How many pairs of edges cross, counting each pair once; edges sharing a node never do.

    >>> at = {"a": (0, 0), "b": (0, 50), "c": (100, 0), "d": (100, 50)}
    >>> routes = {(u, v): [at[u], at[v]] for u, v in [("a", "d"), ("b", "c")]}
    >>> crossings(Layout(at, routes, {}, False))
    1
    """
    lines = {e: polyline(r, lay.curved) for e, r in lay.routes.items()}
    edges = list(lines)
    reach = {e: _span(line) for e, line in lines.items()}
    total = 0
    for i, e in enumerate(edges):
        for f in edges[i + 1:]:
            if set(e) & set(f) or not _meet(reach[e], reach[f]):
                continue
            if any(_cross(a, b, c, d) for a, b in zip(lines[e], lines[e][1:])
                   for c, d in zip(lines[f], lines[f][1:])):
                total += 1
    return total


def _span(line: list[Point]) -> Box2:
    xs, ys = [p[0] for p in line], [p[1] for p in line]
    return (min(xs) - 1, min(ys) - 1, max(xs) + 1, max(ys) + 1)


def _meet(p: Box2, q: Box2) -> bool:
    return p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3]


Polygon = Sequence[Point]  # a convex polygon: a box, or a label turned along its edge


def rect(box: Box2) -> list[Point]:
    """The corners of ``(x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def turned(box: Box2, degrees: float, centre: Point) -> list[Point]:
    """The corners of ``box`` turned by ``degrees`` about ``centre``, as SVG's rotate() turns them."""
    c, s = float(np.cos(np.radians(degrees))), float(np.sin(np.radians(degrees)))
    return [(centre[0] + (x - centre[0]) * c - (y - centre[1]) * s,
             centre[1] + (x - centre[0]) * s + (y - centre[1]) * c) for x, y in rect(box)]


def _normals(shape: Polygon) -> list[tuple[Point, Point]]:
    """Each side's first corner and its normal pointing inwards."""
    area = sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(shape, [*shape[1:], shape[0]]))
    sign = 1.0 if area > 0 else -1.0
    return [(p, (-(q[1] - p[1]) * sign, (q[0] - p[0]) * sign)) for p, q in zip(shape, [*shape[1:], shape[0]])]


def _through(a: Point, b: Point, shape: Polygon) -> bool:
    """Whether the segment a-b passes through the inside of the convex ``shape`` (Cyrus–Beck)."""
    low, high = 0.0, 1.0
    d = (b[0] - a[0], b[1] - a[1])
    for p, n in _normals(shape):
        inside = n[0] * (a[0] - p[0]) + n[1] * (a[1] - p[1])  # > 0 inside, along t: inside + t·rate
        rate = n[0] * d[0] + n[1] * d[1]
        if rate == 0:
            if inside <= 0:
                return False
            continue
        t = -inside / rate
        if rate > 0:
            low = max(low, t)
        else:
            high = min(high, t)
        if low >= high:
            return False
    return True


def _overlap(p: Polygon, q: Polygon) -> bool:
    """Whether two convex shapes share inside points (no side of either separates them)."""
    for corner, n in _normals(p) + _normals(q):
        along_p = [n[0] * (x - corner[0]) + n[1] * (y - corner[1]) for x, y in p]
        along_q = [n[0] * (x - corner[0]) + n[1] * (y - corner[1]) for x, y in q]
        if max(along_p) <= min(along_q) or max(along_q) <= min(along_p):
            return False
    return True


def overlaps(lay: Layout, nodes: Mapping[str, Polygon], labels: Mapping[Edge, Polygon]) -> int:
    """How many things drawn over each other: pairs of overlapping shapes (nodes with the
    text beneath them, edge labels), and edges running through a label or node not their own.

    ``nodes`` and ``labels`` are the convex shapes the picture drew, as lists of corners
    (:func:`rect` of a box, :func:`turned` for a label along a sloping edge).

    >>> lay = Layout({"a": (0, 0), "b": (100, 0)}, {("a", "b"): [(0, 0), (100, 0)]}, {}, False)
    >>> overlaps(lay, {"a": rect((-10, -10, 10, 10)), "b": rect((90, -10, 110, 10))},
    ...          {("a", "b"): rect((40, -20, 60, -2))})
    0
    >>> overlaps(lay, {"a": rect((-10, -10, 10, 10)), "b": rect((5, -10, 110, 10))}, {})
    1
    """
    drawn: list[tuple[Any, Polygon]] = [*nodes.items(), *labels.items()]
    shapes = [(k, v, _span(list(v))) for k, v in drawn]
    total = 0
    for i, (_, p, bp) in enumerate(shapes):
        for _, q, bq in shapes[i + 1:]:
            total += _meet(bp, bq) and _overlap(p, q)
    for e, r in lay.routes.items():
        line = polyline(r, lay.curved)
        reach = _span(line)
        for key, shape, box in shapes:
            if key == e or key in e or not _meet(reach, box):
                continue
            total += any(_through(a, b, shape) for a, b in zip(line, line[1:]))
    return int(total)
