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

import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import networkx as nx
import sympy as sp

from .alike import evaluated
from .dims import Shape, broadcast
from .errors import ShapeError, SymgradError
from .graph import Graph
from .tensors import broadcast_to, shape_of, sum_to


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

    @cached_property
    def expr(self) -> sp.Expr:
        """The sum of the terms, built once (code generation reads it several times)."""
        return sp.Add(*(t.expr for t in self.terms))


@dataclass(frozen=True)
class Program:
    """The forward and adjoint assignments of a graph (see :func:`build_program`).

    ``str(program)`` is its text: the forward assignments, then the adjoint
    ones, with the graph's node names (the names the tables, pictures and
    generated code use), operands in the order written and, for a graph with
    arrays, each value's shape.

    >>> import symgrad as sg
    >>> print(build_program(sg.graph("max(z, w) * x")))
    forward(z, w, x):
      q1 = Max(z, w)
      q2 = q1*x
      return q2
    backward(dout):
      dq2 = dout
      dq1 = dq2*x
      dx = dq2*q1
      dw = dq1*[w > z]
      dz = dq1*[z > w]
      return {z: dz, w: dw, x: dx}
    """

    graph: Graph
    forward: tuple[Assign, ...]
    backward: tuple[Adjoint, ...]
    dout: sp.Symbol
    wrt: tuple[str, ...]

    def adjoint(self, node: str) -> Adjoint:
        found = self._adjoints.get(node)
        if found is None:
            raise SymgradError(f"node {node!r} has no adjoint in this program")
        return found

    @property
    def _adjoints(self) -> dict[str, Adjoint]:
        """``{node: its adjoint}``, made once: a program does not change."""
        found = self.__dict__.get("_by_node")
        if found is None:
            found = {a.node: a for a in self.backward}
            object.__setattr__(self, "_by_node", found)
        return found

    @property
    def grads(self) -> dict[str, sp.Symbol]:
        """``{input: the symbol holding its gradient}``."""
        wrt = set(self.wrt)
        return {a.node: a.target for a in self.backward if a.node in wrt}

    def adjoint_text(self, adjoint: Adjoint) -> str:
        """``dq1 = dq2*x``: an adjoint assignment as text, upstream adjoints first in products."""
        from .tables import in_order

        order = [self.dout, *(a.target for a in self.backward), *map(self.graph.symbol, self.graph.nodes)]
        return f"{adjoint.target} = {in_order(order, adjoint.expr, self.graph)}"

    def __str__(self) -> str:
        from .tables import expression_text

        g = self.graph
        tensors = any(g.shape(n) != () for n in g.nodes)
        inputs = ", ".join(g._declared(n) if tensors else n for n in g.inputs)
        forward = [(f"{a.target} = {expression_text(g, a.node, a.expr)}", g.shape(a.node))
                   for a in self.forward]
        backward = [(self.adjoint_text(a), a.shape) for a in self.backward]
        width = max([len(text) for text, _ in forward + backward] + [0])

        def line(text: str, shape: Shape) -> str:
            return f"  {text:<{width}}   {shape}" if tensors else f"  {text}"

        grads = ", ".join(f"{n}: {self.adjoint(n).target}" for n in self.wrt)
        return "\n".join([
            f"forward({inputs}):", *(line(t, s) for t, s in forward), f"  return {g.output}",
            f"backward({self.dout}):", *(line(t, s) for t, s in backward), f"  return {{{grads}}}",
        ])


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
    inputs = set(graph.inputs)
    for name in wrt:
        if not isinstance(name, str) or name not in inputs:
            raise SymgradError(
                f"cannot differentiate with respect to {name!r}: the inputs are "
                f"{', '.join(graph.inputs) or 'none'}"
            )
        if name in labels:
            raise SymgradError(f"{name!r} holds integer labels; labels have no gradient")
    wrt = tuple(dict.fromkeys(wrt))  # each input once
    built: dict[tuple[str, ...], Program] = vars(graph).setdefault("_programs", {})  # a graph does not change
    if wrt not in built:
        built[wrt] = _program(graph, wrt)
    return built[wrt]


def _program(graph: Graph, wrt: tuple[str, ...]) -> Program:
    """:func:`build_program` for a checked ``wrt``."""
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
    rule = edge["vjp"]
    if rule is None and edge["cached"] is None:
        return None
    numeric = edge["numeric"]
    term = rule(upstream) if rule is not None else upstream if numeric is sp.S.One else \
        evaluated(operator.mul, upstream, numeric)
    shapes = {graph.symbol(o): graph.shape(o) for o in graph.operands(consumer)}
    shapes[graph.symbol(consumer)] = shapes[upstream] = graph.shape(consumer)
    have, want = shape_of(term, shapes), graph.shape(node)
    if have == want:
        return term
    both = _broadcast(have, want)
    if rule is None and both == have:
        return sum_to(term, sp.Tuple(*want), sp.Tuple(*have))
    if rule is None and both == want:
        return broadcast_to(term, sp.Tuple(*want))
    op = graph.nx.nodes[consumer]["op"]
    raise ShapeError(
        f"{op}: the gradient for {node} has shape {have}, but {node} has shape {want}"
    )


def _broadcast(a: Shape, b: Shape) -> Shape | None:
    try:
        return broadcast(a, b)
    except ValueError:
        return None
