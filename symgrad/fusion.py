"""Fusion: any connected single-output sub-graph ⇄ one gate node.

A gate node stands for a set of operation nodes.  SymPy composes the set into
one expression of the set's operands, rewrites the gate spellings it finds
(:mod:`symgrad.gates`: ``1/(1 + exp(-a))`` becomes ``sigmoid(a)``), derives
each local derivative, simplifies it and rewrites it through the gate's own
output (σ·(1 − σ)).  The gate keeps the name of the set's output node, so
every other node keeps its name; its ``body`` attribute holds the fused nodes
for :func:`expand`.  Every function here returns a new Graph.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx
import sympy as sp

from . import ir
from .errors import FusionError
from .gates import Pattern, canonical, patterns
from .graph import Graph
from .hints import did_you_mean
from .layers import LAYERS, gate_edges, tensor_canonical
from .local_derivatives import edge_derivatives

DEFAULT_NAME = "gate"


@dataclass(frozen=True)
class Finding:
    """A numerically fragile spelling found by :func:`lint`.

    node:        the node computing the fragile value
    nodes:       the nodes that spell it (``node`` last)
    gate:        the name of the stable gate that replaces them
    spelling:    what the nodes compute, as written
    replacement: the gate's expression
    reason:      what goes wrong when the spelling is evaluated as written
    """

    node: str
    nodes: tuple[str, ...]
    gate: str
    spelling: sp.Expr
    replacement: sp.Expr
    reason: str

    def __str__(self) -> str:
        return (f"{self.node} = {self.spelling} (nodes {', '.join(self.nodes)}): {self.reason}; "
                f"use the {self.gate} gate, {self.replacement}")


# -- fusing a given set -----------------------------------------------------------


def fuse(graph: Graph, nodes: Iterable[str] | str, name: str | None = None) -> Graph:
    """One gate in place of ``nodes``, or every occurrence of a named pattern.

    Parameters
    ----------
    graph:
        The graph; it is not changed.
    nodes:
        A connected set of operation nodes whose only value used outside the
        set is one output, or the name of a pattern in :data:`symgrad.gates.PATTERNS`
        (``"sigmoid"``, ``"softplus"``, ``"logsigmoid"``, ``"tanh"``, ``"relu"``,
        ``"logsumexp"``, ``"softmax"``, ``"affine"``), or of a gate over arrays in
        :data:`symgrad.layers.LAYERS` (``"affine_relu"``, ``"softmax_cross_entropy"``),
        fused wherever it occurs.
    name:
        The gate's name and label; by default the pattern's name (for a set:
        the pattern the set computes, else "gate").

    Returns
    -------
    Graph

    >>> import symgrad as sg
    >>> g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))")
    >>> s = g.fuse({"q5", "q6", "q7", "q8"})
    >>> print(s)
    graph(w0, x0, w1, x1, w2): q8 = 1/(1+exp(-(w0*x0+w1*x1+w2)))
      q1 = w0*x0         [*]
      q2 = w1*x1         [*]
      q3 = q1 + q2       [+]
      q4 = q3 + w2       [+]
      q8 = sigmoid(q4)   [sigmoid]
      return q8
    >>> s.local_derivatives("q8", cached=True)
    {'q4': q8*(1 - q8)}
    """
    try:
        if isinstance(nodes, str):
            return fuse_patterns(graph, [nodes], name)
        members, out = check_fusable(graph, nodes)
        expr, operands = compose(graph, members, out)
        gate = canonical(expr)
        return replace(graph, members, out, gate, operands, default_name(gate) if name is None else name)
    except RecursionError:  # SymPy recurses into the gate's expression
        raise FusionError("the gate's expression is nested too deeply for SymPy; fuse fewer nodes") from None


def check_fusable(graph: Graph, nodes: Iterable[str]) -> tuple[list[str], str]:
    """``nodes`` in topological order and their output, or a FusionError saying why not."""
    if isinstance(nodes, str) or not isinstance(nodes, Iterable):
        raise FusionError(f"give the nodes to fuse as a set of names, not {nodes!r}")
    wanted = set(nodes)
    for n in sorted(wanted, key=str):
        if not isinstance(n, str) or n not in graph.nx:
            raise FusionError(f"no node {n!r} in this graph (nodes: {', '.join(graph.nodes)})")
        kind = graph.nx.nodes[n]["kind"]
        if kind == "input":
            raise FusionError(f"{n} is an input, not an operation; a gate fuses operation nodes only")
        if kind == "const":
            raise FusionError(f"{n} is a constant, not an operation; there is nothing to fuse")
        if not graph.elementwise(n):
            raise FusionError(f"{n} ({graph.nx.nodes[n]['op']}) mixes entries; a gate fuses elementwise "
                              "operations only (its operands may be anything)")
    if not wanted:
        raise FusionError("nothing to fuse: the set of nodes is empty")
    members = [n for n in graph.nodes if n in wanted]
    parts = sorted(nx.weakly_connected_components(graph.nx.subgraph(members)),
                   key=lambda p: members.index(next(n for n in members if n in p)))
    if len(parts) > 1:
        shown = " and ".join("{" + ", ".join(n for n in members if n in p) + "}" for p in parts[:2])
        raise FusionError(f"the set is not connected: {shown} share no edge")
    outputs = [n for n in members
               if n == graph.output or any(c not in wanted for c in graph.consumers(n))]
    sinks = [n for n in members if not any(c in wanted for c in graph.consumers(n))]
    if len(sinks) > 1:
        raise FusionError(f"the set has {len(sinks)} outputs ({', '.join(sinks)}); a gate has one output")
    out = sinks[0]
    for n in outputs:
        if n != out:
            users = [c for c in graph.consumers(n) if c not in wanted]
            where = f"used by {', '.join(users)}" if users else "the graph's output"
            raise FusionError(f"{n} is also {where}, outside the set; only {out} may leave a gate")
    return members, out


def compose(graph: Graph, members: list[str], out: str) -> tuple[sp.Expr, list[str]]:
    """``out``'s value in terms of the set's operands, and those operands in graph order."""
    inside = set(members)
    operands = {u for n in members for u in graph.operands(n) if u not in inside}
    return composed(graph, members)[graph.symbol(out)], [n for n in graph.nodes if n in operands]


def composed(graph: Graph, nodes: list[str]) -> dict[sp.Symbol, sp.Expr]:
    """Each of ``nodes`` (in graph order) as an expression of what the others read; a
    FusionError where SymPy will not form one (the max of a log it proves is not real)."""
    values: dict[sp.Symbol, sp.Expr] = {}
    for n in nodes:
        try:
            values[graph.symbol(n)] = graph.expr(n).xreplace(values)
        except (ValueError, TypeError) as e:
            raise FusionError(f"SymPy will not write {n} as one expression of the gate's operands: "
                              f"{e}") from None
    return values


def default_name(gate: sp.Expr) -> str:
    """The first pattern whose gate ``gate`` is, with plain operands; else ``"gate"``."""
    return next((p.name for p in patterns() if p.plain_arguments(gate) is not None), DEFAULT_NAME)


def replace(graph: Graph, members: list[str], out: str, gate: sp.Expr,
            operands: list[str], name: str, edges: dict[str, dict] | None = None) -> Graph:
    """A new Graph with the gate node ``out`` (computing ``gate``) in place of ``members``.

    A member that is also used outside the set (only pattern matches have
    such members) stays for its other users; the gate recomputes it.
    Operations left without users are dropped.  ``edges`` gives the
    attributes of each operand's edge (vector-Jacobian products, for a gate
    that mixes entries: see :mod:`symgrad.layers`); by default SymPy derives
    local derivatives.
    """
    if not isinstance(name, str) or not name.strip() or "\n" in name:
        raise FusionError(f"a gate's name must be a one-line, non-empty string, not {name!r}")
    g, gone = graph.nx, removable(graph, members, out)
    body = nx.DiGraph(output=out, fused=tuple(members))
    for n in operands + members:
        body.add_node(n, **g.nodes[n])
    body.add_edges_from((u, v, d) for u, v, d in g.in_edges(members, data=True))
    new = nx.DiGraph()
    for n in graph.nodes:
        if n == out:
            order = max(d["order"] for _, d in body.nodes(data=True))
            new.add_node(out, **ir.gate_node(out, name, tuple(operands), gate, g.nodes[out]["shape"], body,
                                             elementwise=edges is None, order=order))
        elif n not in gone:
            new.add_node(n, **g.nodes[n])
    new.add_edges_from((u, v, d) for u, v, d in g.edges(data=True) if u in new and v in new and v != out)
    symbol = g.nodes[out]["symbol"]
    for u in operands:
        new.add_edge(u, out, **(edges[u] if edges is not None else
                                edge_derivatives(gate, g.nodes[u]["symbol"], symbol, simplify=True)))
    while unused := [n for n in new.nodes if n != graph.output and new.nodes[n]["kind"] != "input"
                     and new.out_degree(n) == 0]:
        new.remove_nodes_from(unused)
    return Graph(new, graph.output, graph.inputs, graph.granularity, graph.source)


def removable(graph: Graph, members: list[str], out: str) -> set[str]:
    """The members whose every use is inside the set (so the gate replaces them), and ``out``."""
    gone = {out}
    for n in reversed(members):
        if n != out and all(c in gone for c in graph.nx.successors(n)):
            gone.add(n)
    return gone


def fuse_all(graph: Graph, name: str | None = None) -> Graph:
    """The whole expression as one gate: its local derivatives are the full gradients.

    >>> import symgrad as sg
    >>> s = sg.graph("(x + y) * z").fuse_all()
    >>> print(s)
    graph(x, y, z): q2 = (x + y) * z
      q2 = z*(x + y)   [gate]
      return q2
    >>> s.local_derivatives("q2")
    {'x': z, 'y': z, 'z': x + y}
    """
    members = [n for n in graph.operations if graph.nx.nodes[n]["kind"] != "const"]
    mixing = [n for n in members if not graph.elementwise(n)]
    if mixing:
        raise FusionError(f"cannot fuse everything: {mixing[0]} ({graph.nx.nodes[mixing[0]]['op']}) mixes "
                          "entries; a gate fuses elementwise operations only")
    if not members:
        raise FusionError(f"nothing to fuse: the output {graph.output} is not an operation")
    return fuse(graph, members, name)


def expand(graph: Graph, nodes: Iterable[str] | None = None) -> Graph:
    """Gates back to the nodes they were fused from (all of them, by default, through nesting).

    ``nodes`` names the gates to open, one level each.

    >>> import symgrad as sg
    >>> g = sg.graph("log(1 + exp(x))")
    >>> [n for n in g.fuse("softplus").expand().nodes] == g.nodes
    True
    """
    if nodes is not None:
        chosen = set(nodes)
        for n in chosen:
            if n not in graph.nx or graph.nx.nodes[n]["kind"] != "gate":
                shown = ", ".join(graph.gates) or "none"
                raise FusionError(f"{n!r} is not a gate of this graph (gates: {shown})")
        return _open(graph, chosen)
    while graph.gates:
        graph = _open(graph, set(graph.gates))
    return graph


def _open(graph: Graph, chosen: set[str]) -> Graph:
    g = graph.nx
    new = nx.DiGraph()
    for n in graph.nodes:
        if n in chosen:
            body = g.nodes[n]["body"]
            for m in body.graph["fused"]:
                if m not in new:  # a member kept for other users is there already
                    new.add_node(m, **body.nodes[m])
        else:
            new.add_node(n, **g.nodes[n])
    for n in chosen:
        new.add_edges_from(g.nodes[n]["body"].edges(data=True))
    new.add_edges_from((u, v, d) for u, v, d in g.edges(data=True) if v not in chosen)
    return Graph(new, graph.output, graph.inputs, graph.granularity, graph.source)


# -- fusing patterns ------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """Nodes that compute one pattern's gate."""

    pattern: Pattern
    members: tuple[str, ...]
    out: str
    spelling: sp.Expr
    gate: sp.Expr
    operands: tuple[str, ...]

    def apply(self, graph: Graph, name: str | None = None) -> Graph:
        edges = None if self.pattern.build is None else gate_edges(graph, self.out, self.gate, self.operands)
        return replace(graph, list(self.members), self.out, self.gate, list(self.operands),
                       self.pattern.name if name is None else name, edges)


def fuse_patterns(graph: Graph, names: Iterable[str], label: str | None = None) -> Graph:
    """Every occurrence of the named patterns fused into its gate (named ``label``, if given)."""
    known = {**{p.name: p for p in patterns()}, **LAYERS}
    chosen = []
    for name in names:
        if name not in known:
            hint = f"; to fuse nodes, pass a set: g.fuse({{{name!r}}})" if name in graph.nx else ""
            raise FusionError(f"unknown pattern {name!r}{did_you_mean(name, list(known))} "
                              f"(patterns: {', '.join(known)}){hint}")
        chosen.append(known[name])
    for m in find(graph, chosen):
        graph = m.apply(graph, label)
    return graph


class Canonical:
    """Expressions of one graph's nodes in canonical form: gate spellings rewritten
    (:func:`symgrad.gates.canonical`), and for gates over arrays also the identities
    of :func:`symgrad.layers.tensor_canonical`; memoized."""

    def __init__(self, graph: Graph):
        self.shapes = {graph.symbol(n): graph.shape(n) for n in graph.nodes}
        self.memo: dict[sp.Expr, sp.Expr] = {}
        self.arrays: dict[sp.Expr, sp.Expr] = {}

    def __call__(self, e: sp.Expr, arrays: bool) -> sp.Expr:
        if not arrays:
            return canonical(e, self.memo)
        if e not in self.arrays:
            self.arrays[e] = tensor_canonical(e, self.shapes)
        return self.arrays[e]


def find(graph: Graph, patterns: Iterable[Pattern]) -> list[Match]:
    """Node sets that compute one of ``patterns``, outermost first, replacing disjoint nodes.

    For each node, from the output down, the nodes it can fuse with (those
    used only by it, directly or through each other) are composed and
    rewritten; when that is not a pattern, the composition of an elementwise
    gate also goes through nodes used elsewhere too, which the gate then
    recomputes (so ``log(σ(z))`` is found even when ``σ(z)`` also feeds
    ``1 − σ(z)``).  A found set shrinks to the nodes between the gate's
    operands and the node, so the operands stay outside (``sigmoid(q4)``,
    not ``sigmoid(w0*x0 + w1*x1 + w2)``).  Gates over arrays are looked for
    first.
    """
    groups = [(arrays, [p for p in patterns if (p.build is not None) == arrays]) for arrays in (True, False)]
    canon = Canonical(graph)
    claimed: set[str] = set()
    found = []
    for v in reversed(graph.operations):
        if v in claimed or graph.nx.nodes[v]["kind"] == "const":
            continue
        m = None
        for arrays, group in groups:
            if m is not None or not group or not (arrays or graph.elementwise(v)):
                continue
            exclusive = _region(graph, v, claimed, shared=False, mixing=arrays)
            m = _match(graph, v, exclusive, group, canon, arrays)
            if m is None and not arrays:
                everything = _region(graph, v, claimed, shared=True)
                if len(everything) > len(exclusive):
                    m = _match(graph, v, everything, group, canon, arrays)
        if m is not None:
            found.append(m)
            claimed.update(removable(graph, list(m.members), v))
    return found


REACH = 24  # a pattern is looked for among the operations at most this many edges above a node


def _region(graph: Graph, v: str, claimed: set[str], shared: bool, stop: frozenset[str] = frozenset(),
            mixing: bool = False) -> list[str]:
    """``v`` and the unclaimed operations above it (at most :data:`REACH` edges), reached
    without passing ``stop``.  The bound keeps each composed expression, and the work per
    node, the same size however deep the graph is (a chain of 100 sigmoids).

    Without ``shared``, only operations all of whose users are in the region; without
    ``mixing``, only elementwise operations.
    """
    order = {n: i for i, n in enumerate(graph.nodes)}
    region = {v}
    near = nx.single_source_shortest_path_length(graph.nx.reverse(copy=False), v, cutoff=REACH)
    for n in sorted(set(near) - {v}, key=order.__getitem__, reverse=True):
        if n in claimed or n in stop or graph.nx.nodes[n]["kind"] not in ("op", "gate") \
                or not (mixing or graph.elementwise(n)):
            continue
        users = list(graph.nx.successors(n))
        if any(c in region for c in users) and (shared or all(c in region for c in users)):
            region.add(n)
    return sorted(region, key=order.__getitem__)


def _match(graph: Graph, v: str, region: list[str], patterns: list[Pattern], canon: Canonical,
           arrays: bool) -> Match | None:
    """The first of ``patterns`` that ``v`` computes from nodes of ``region``.

    The canonical value of ``v`` gives the gate's arguments; the nodes that
    compute them (elementwise gates: up to a constant factor) bound the gate's
    members, whose composition, rewritten, must be the gate on plain operands.
    """
    try:
        values = composed(graph, region)
    except FusionError:
        return None
    top = canon(values[graph.symbol(v)], arrays).as_coeff_Mul()[1]  # 2·σ(a) is a sigmoid gate too
    inside = set(region)
    reach = inside.union(*(graph.operands(n) for n in region))
    candidates = [n for n in graph.nodes if n != v and n in reach]
    same = operator.eq if arrays else _multiple
    for pattern in patterns:
        args = pattern.arguments(top, canon.shapes) if pattern.candidate(graph, v, region) else None
        if args is None:
            continue
        ends: list[str] = []
        for arg in (a for a in args if not a.is_number):
            end = next((n for n in candidates if same(
                canon(values.get(graph.symbol(n), graph.symbol(n)), arrays), arg)), None)
            if end is None:
                break
            ends.append(end)
        else:
            members = [n for n in _region(graph, v, set(), True, frozenset(ends), arrays) if n in inside]
            try:
                spelling, operands = compose(graph, members, v)
            except FusionError:
                continue
            gate = canon(spelling, arrays)
            found = pattern.plain_arguments(gate, canon.shapes)
            if found is None:
                continue
            if pattern.build is not None:
                built = pattern.build(*found)
                if set(operands) != set(ends) or sp.expand(gate - canon(built, True)) != 0:
                    continue
                gate = built
            if members == [v] and gate == graph.expr(v):
                return None  # already this gate
            return Match(pattern, tuple(members), v, spelling, gate, tuple(operands))
    return None


def _multiple(e: sp.Expr, arg: sp.Expr) -> bool:
    """``e`` is ``arg`` times a nonzero constant."""
    if e == arg or e == -arg:
        return True
    if e.free_symbols != arg.free_symbols:
        return False
    ratio = e / arg
    return bool(ratio.is_number) and ratio != 0


# -- stability ----------------------------------------------------------------------


def lint(graph: Graph) -> list[Finding]:
    """Numerically fragile spellings in ``graph``, each with the stable gate that replaces it.

    >>> import symgrad as sg
    >>> for finding in sg.graph("log(1 + exp(x)) * y").lint():
    ...     print(finding)
    q3 = log(exp(x) + 1) (nodes q1, q2, q3): exp(a) overflows once a > 709, and 1 + exp(a) rounds to 1 \
once a < -37; use the softplus gate, softplus(x)
    """
    fragile = [p for p in patterns() if p.fragile]
    order = {n: i for i, n in enumerate(graph.nodes)}
    return [Finding(m.out, m.members, m.pattern.name, m.spelling, m.gate, m.pattern.fragile or "")
            for m in sorted(find(graph, fragile), key=lambda m: order[m.out])]


def fuse_stable(graph: Graph) -> Graph:
    """Every fragile spelling :func:`lint` finds, replaced by its stable gate.

    >>> import symgrad as sg
    >>> g = sg.graph("log(1 + exp(x))")
    >>> g.backprop(x=1000.0)
    Traceback (most recent call last):
    ...
    symgrad.errors.EvaluationError: cannot evaluate q1 = exp(x) at x = 1000: overflow in exp
    >>> g.fuse_stable().backprop(x=1000.0).grads
    {'x': 1.0}
    """
    for m in find(graph, [p for p in patterns() if p.fragile]):
        graph = m.apply(graph)
    return graph
