"""Program: the forward and adjoint assignments a Graph implies.

The forward part computes every node from its operands; the adjoint part
computes ``d<node>`` = ∂output/∂node for every node between the output and
the inputs the gradient is wanted for, as a sum over the node's consumers of
(the consumer's adjoint) × (the edge's local derivative, in its ``numeric``
form: the cached form where that keeps its precision), or, for an op that
mixes entries (matmul, sum, …), the op's vector-Jacobian product of the
consumer's adjoint.  Both sides are SymPy expressions; the interpreter
evaluates them with numbers, the code generator prints them.

Every term is checked statically to have its node's shape: broadcast
gradients are summed back (``sum_to``), a term SymPy simplified to a scalar
(the gradient of ``x - x``) is stretched (``broadcast_to``), and anything else
is a ShapeError naming the op and both shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import networkx as nx
import numpy as np
import sympy as sp

from .build import Shape
from .errors import ShapeError, SymgradError
from .graph import Graph
from .tensors import broadcast_to, shape_of


class sum_to(sp.Function):
    """``sum_to(g, (2, 1), (3, 2, 4))``: sum ``g``, of the third shape, back to the second.

    Broadcasting stretched an operand to its consumer's shape; its gradient is
    summed over the stretched axes.
    """

    nargs = 3

    def axes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(leading axes to sum away, axes to sum keeping their dimension)."""
        target, source = (tuple(int(n) for n in t) for t in self.args[1:])
        lead = len(source) - len(target)
        kept = tuple(i for i, n in enumerate(target) if n == 1 and source[lead + i] != 1)
        return tuple(range(lead)), kept

    def array_shape(self, *shapes: Shape) -> Shape:
        return tuple(int(n) for n in self.args[1])

    def explicit(self, value: np.ndarray) -> np.ndarray:
        lead, kept = self.axes()
        total = np.sum(np.asarray(value, dtype=object), axis=lead) if lead else value
        return np.sum(total, axis=kept, keepdims=True) if kept else total


@dataclass(frozen=True)
class Assign:
    """``target = expr``, computing ``node``'s value (forward)."""

    node: str
    target: sp.Symbol
    expr: sp.Expr


@dataclass(frozen=True)
class Term:
    """What the edge ``node → consumer`` adds to ``node``'s adjoint."""

    consumer: str | None  # None for the output, whose adjoint is ``dout``
    expr: sp.Expr


@dataclass(frozen=True)
class Adjoint:
    """``target = sum of terms``: the gradient of the output with respect to ``node``."""

    node: str
    target: sp.Symbol
    terms: tuple[Term, ...]
    shape: Shape

    @property
    def expr(self) -> sp.Expr:
        return sp.Add(*(t.expr for t in self.terms))


@dataclass(frozen=True)
class Program:
    graph: Graph
    forward: tuple[Assign, ...]
    backward: tuple[Adjoint, ...]
    dout: sp.Symbol
    wrt: tuple[str, ...]

    def adjoint(self, node: str) -> Adjoint:
        for a in self.backward:
            if a.node == node:
                return a
        raise SymgradError(f"node {node!r} has no adjoint in this program")

    @property
    def grads(self) -> dict[str, sp.Symbol]:
        """``{input: the symbol holding its gradient}``."""
        wrt = set(self.wrt)
        return {a.node: a.target for a in self.backward if a.node in wrt}


def adjoint_prefix(names: Iterable[str]) -> str:
    """``d`` (so the gradient of q3 is dq3) unless that clashes with a node name."""
    names = set(names)
    for prefix in ("d", "d_", "grad_", "adj_"):
        if not any(prefix + n in names for n in names) and f"{prefix}out" not in names:
            return prefix
    raise SymgradError("node names clash with every naming scheme for gradients")


def build_program(graph: Graph, wrt: Iterable[str] | None = None) -> Program:
    """The forward and adjoint assignments of ``graph``, with gradients for ``wrt``.

    ``wrt`` defaults to every input.  Only nodes on a path from a ``wrt``
    input to the output get an adjoint.
    """
    labels = graph.labels
    if isinstance(wrt, str):  # one name, not its letters
        wrt = (wrt,)
    if wrt is not None and (not isinstance(wrt, Iterable) or isinstance(wrt, Mapping)):
        raise SymgradError(f"wrt takes an input name or a list of input names, not {wrt!r}")
    wrt = tuple(tuple(n for n in graph.inputs if n not in labels) if wrt is None else wrt)
    for name in wrt:
        if not isinstance(name, str) or name not in graph.inputs:
            raise SymgradError(
                f"cannot differentiate with respect to {name!r}: the inputs are "
                f"{', '.join(graph.inputs) or 'none'}"
            )
        if name in labels:
            raise SymgradError(f"{name!r} holds integer labels; labels have no gradient")
    wrt = tuple(dict.fromkeys(wrt))  # each input once
    g = graph.nx
    forward = tuple(
        Assign(n, graph.symbol(n), _forward(graph, n)) for n in graph.operations
    )
    prefix = adjoint_prefix(graph.nodes)
    dout = sp.Symbol(f"{prefix}out", real=True)
    upstream = nx.ancestors(g, graph.output) | {graph.output}
    downstream = set(wrt)
    for n in graph.nodes:  # topological order: one pass finds every descendant of wrt
        if any(u in downstream for u in g.predecessors(n)):
            downstream.add(n)
    needed = upstream & downstream
    symbols = {n: sp.Symbol(prefix + n, real=True) for n in needed | set(wrt)}

    backward: list[Adjoint] = []
    for n in reversed(graph.nodes):
        if n not in symbols:
            continue
        if n == graph.output:
            terms: tuple[Term, ...] = (Term(None, dout),)
        else:
            terms = tuple(
                Term(v, _flow(graph, n, v, symbols[v]))
                for v in graph.consumers(n) if v in needed
            )
        backward.append(Adjoint(n, symbols[n], terms, graph.shape(n)))
    return Program(graph, forward, tuple(backward), dout, wrt)


def _forward(graph: Graph, node: str) -> sp.Expr:
    """The node's expression, stretched to its shape if SymPy made it a scalar (``x - x``)."""
    expr = graph.expr(node)
    shapes = {graph.symbol(o): graph.shape(o) for o in graph.operands(node)}
    if graph.shape(node) != () and shape_of(expr, shapes) != graph.shape(node):
        return broadcast_to(expr, sp.Tuple(*graph.shape(node)))
    return expr


def _flow(graph: Graph, node: str, consumer: str, upstream: sp.Symbol) -> sp.Expr:
    """The gradient sent back along ``node → consumer``."""
    flow = edge_flow(graph, node, consumer, upstream)
    if flow is None:
        raise SymgradError(f"{node!r} gets no gradient from {consumer!r}")
    return flow


def edge_flow(graph: Graph, node: str, consumer: str, upstream: sp.Symbol) -> sp.Expr | None:
    """The gradient ``node → consumer`` sends back, given the consumer's adjoint ``upstream``.

    Elementwise ops: upstream × the edge's local derivative (its ``numeric``
    form), entry by entry.  Other ops: their vector-Jacobian product.  None
    for labels.

    >>> import symgrad as sg
    >>> g = sg.graph("x * y", shapes={"x": (3,), "y": (2, 3)})
    >>> edge_flow(g, "x", "q1", sp.Symbol("dq1"))
    sum_to(dq1*y, (3,), (2, 3))
    """
    edge = graph.nx.edges[node, consumer]
    rule = edge.get("vjp")
    if rule is None and edge["cached"] is None:
        return None
    term = rule(upstream) if rule is not None else upstream * edge.get("numeric", edge["cached"])
    shapes = {graph.symbol(o): graph.shape(o) for o in graph.operands(consumer)}
    shapes[graph.symbol(consumer)] = shapes[upstream] = graph.shape(consumer)
    have, want = shape_of(term, shapes), graph.shape(node)
    if have == want:
        return term
    if rule is None and tuple(np.broadcast_shapes(have, want)) == have:
        return sum_to(term, sp.Tuple(*want), sp.Tuple(*have))
    if rule is None and tuple(np.broadcast_shapes(have, want)) == want:
        return broadcast_to(term, sp.Tuple(*want))
    op = graph.nx.nodes[consumer]["op"]
    raise ShapeError(
        f"{op}: the gradient for {node} has shape {have}, but {node} has shape {want}"
    )
