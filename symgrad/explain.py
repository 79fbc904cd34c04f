"""The chain rule written out: every path from the output down to a node, symbols then numbers.

For f = (x + y)·z the gradient with respect to x follows the one path
f ← q ← x and is the product of the local derivatives on its edges:
∂f/∂x = ∂f/∂q·∂q/∂x = z·1 = (−4)·1 = −4.  Where the graph branches, several
paths lead to the same node and their products add up.  The local
derivatives are the graph's edge attributes and the numbers are the Trace's;
each path's number comes from running the Program's adjoint terms along that
path alone, so tensors work as well as scalars.  When a node has more paths
than ``max_paths`` (they multiply in a deep DAG), the explanation switches to
the node-by-node sums of the backward pass, which add up the same paths
without listing them.

An :class:`Explanation` prints as Markdown for terminals and shows itself as
Markdown with LaTeX formulas (or plain LaTeX) in Jupyter.  Every factor is
written through :mod:`symgrad.tables` (:class:`~symgrad.tables.Writer`), as
the tables and pictures write it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import sympy as sp

from .dims import legend
from .errors import SymgradError
from .graph import MAX_PATHS
from .picture import check_digits
from .printing import evaluate
from .program import adjoint_prefix
from .tables import LatexWriter, Writer, latex_text, shown_derivative

if TYPE_CHECKING:
    from .graph import Graph
    from .interpret import Trace
    from .notation import MatrixNotation


@dataclass(frozen=True)
class Factor:
    """One local derivative ∂node/∂operand on a path, and its value at the trace's point."""

    node: str
    operand: str
    derivative: sp.Expr | None  # None where the node is not elementwise: see ``vjp``
    value: Any = None
    vjp: sp.Lambda | None = None  # upstream gradient ↦ what the edge sends back

    def applied(self, upstream: str) -> sp.Expr:
        """What the edge sends back when the node's gradient is called ``upstream``."""
        symbol = sp.Symbol(upstream)
        if self.vjp is not None:
            return self.vjp(symbol)
        return symbol * self.derivative


@dataclass(frozen=True)
class Path:
    """A path from the output down to the node, as the factors of its product."""

    factors: tuple[Factor, ...]
    value: Any = None  # what the path contributes to the gradient (traces)


@dataclass(frozen=True)
class NodeSum:
    """One step of the backward pass: ∂out/∂node = Σ over consumers ∂out/∂consumer·∂consumer/∂node."""

    node: str
    factors: tuple[Factor, ...]  # the edges node → consumer
    upstream: tuple[Any, ...]  # ∂out/∂consumer at the point, per factor (traces)
    value: Any = None


@dataclass(frozen=True)
class Chain:
    """How the gradient of the output with respect to ``wrt`` is put together."""

    output: str
    wrt: str
    count: int  # how many paths lead from the output to wrt
    paths: tuple[Path, ...]  # every path, or none when there are more than max_paths
    steps: tuple[NodeSum, ...]  # the backward pass instead, when there are too many paths
    value: Any = None
    dout: Any = None  # the upstream gradient of the output, when it is not 1
    prefix: str = "d"  # the gradient of node q1 is called dq1 in the backward pass
    vector: bool = False  # a path crosses a matrix or reduction node (no scalar product)


def explain(source: Graph | Trace, wrt: str | Iterable[str] | None = None, *,
            digits: int = 4, max_paths: int = MAX_PATHS) -> Explanation:
    """The chain rule along every path from the output to each node in ``wrt``.

    Parameters
    ----------
    source:
        a :class:`~symgrad.Trace` (symbols, then numbers) or a
        :class:`~symgrad.Graph` (symbols only).
    wrt:
        a node name or several; default: every input but labels.
    digits:
        significant digits of the numbers shown.
    max_paths:
        above this many paths to one node, show the backward pass's
        node-by-node sums instead of every path.

    Returns
    -------
    Explanation
        prints as Markdown; shows as Markdown with LaTeX in Jupyter.

    >>> import symgrad as sg
    >>> t = sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4)
    >>> print(explain(t, "x"))
    **∂q2/∂x: one path, q2 ← q1 ← x**
    <BLANKLINE>
        ∂q2/∂x = ∂q2/∂q1·∂q1/∂x = z·1 = (-4)·1 = -4
    """
    from .graph import Graph
    from .interpret import Trace

    if isinstance(source, Trace):
        graph, trace = source.graph, source
    elif isinstance(source, Graph):
        graph, trace = source, None
    else:
        raise SymgradError(f"cannot explain a {type(source).__name__}; give a Graph or a Trace")
    labels = set(graph.labels)
    names = ([n for n in graph.inputs if n not in labels] if wrt is None
             else [wrt] if isinstance(wrt, str) else list(wrt))
    for n in names:
        if not isinstance(n, str) or n not in graph.nx:
            raise SymgradError(
                f"cannot explain the gradient with respect to {n!r}: no such node "
                f"(inputs: {', '.join(graph.inputs) or 'none'}; nodes: {', '.join(graph.nodes)})"
            )
        if n in labels:
            raise SymgradError(f"cannot explain the gradient with respect to {n!r}: it holds integer "
                               "labels, which have no gradient")
    check_digits(digits)
    if isinstance(max_paths, bool) or not isinstance(max_paths, int) or max_paths < 1:
        raise SymgradError(f"max_paths must be a positive whole number, not {max_paths!r}")
    return Explanation(tuple(_chain(graph, trace, n, max_paths) for n in names), digits, graph)


def _chain(graph: Graph, trace: Trace | None, wrt: str, max_paths: int) -> Chain:
    g, out = graph.nx, graph.output
    between = (nx.descendants(g, wrt) | {wrt}) & (nx.ancestors(g, out) | {out})
    order = [n for n in reversed(graph.nodes) if n in between]
    count = {out: 1} if out in between else {}
    for n in order[1:]:
        count[n] = sum(count[v] for v in graph.consumers(n) if v in between)
    total = count.get(wrt, 0)
    dout = None
    if trace is not None and not np.all(np.asarray(trace.dout) == 1):
        dout = trace.dout
    value = trace.node_grads.get(wrt) if trace is not None else None
    prefix = adjoint_prefix(graph.nodes)

    def factor(v: str, u: str) -> Factor:
        local = trace.local.get((v, u)) if trace is not None else None
        edge = g.edges[u, v]
        shown = shown_derivative(graph, v, u) if graph.elementwise(v) else None
        return Factor(v, u, shown, local, edge["vjp"])

    vector = any(g.edges[e]["derivative"] is None for e in g.subgraph(between).edges)
    if total <= max_paths and not vector:
        paths = []
        for nodes in nx.all_simple_paths(g, wrt, out) if wrt != out else [[out]]:
            down = nodes[::-1]
            factors = tuple(factor(v, u) for v, u in zip(down, down[1:]))
            paths.append(Path(factors, _path_value(trace, down) if trace is not None else None))
        return Chain(out, wrt, total, tuple(paths), (), value, dout, prefix)
    steps = []
    for n in order[1:]:
        consumers = [v for v in graph.consumers(n) if v in between]
        upstream = tuple(trace.node_grads.get(v) for v in consumers) if trace is not None else ()
        steps.append(NodeSum(n, tuple(factor(v, n) for v in consumers), upstream,
                             trace.node_grads.get(n) if trace is not None else None))
    return Chain(out, wrt, total, (), tuple(steps), value, dout, prefix, vector)


def _path_value(trace: Trace, down: Sequence[str]) -> Any:
    """What one path contributes: the Program's adjoint terms run along that path alone."""
    program = trace.program
    env: dict[str, Any] = dict(trace.values)
    flow: Any = trace.dout
    for v, u in zip(down, down[1:]):
        env[program.adjoint(v).target.name] = flow
        term = next(t for t in program.adjoint(u).terms if t.consumer == v)
        with np.errstate(all="ignore"):
            flow = evaluate(term.expr, env)
    return float(flow) if np.ndim(flow) == 0 else flow


# -- writing it out ------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of equations: ``sides[0] = sides[1] = …``, under an optional label."""

    label: str
    sides: tuple[str, ...]


def _rows(chain: Chain, w: Writer) -> tuple[str, list[Row]]:
    """The heading and the equation lines that explain ``chain``."""
    out, wrt = chain.output, chain.wrt
    lhs = w.partial(out, wrt)
    numeric = chain.value is not None
    upstream: list[str] = []
    if chain.dout is not None:
        lhs = w.product(["dout", lhs])
        upstream = ["dout"]

    title = w.math(w.partial(out, wrt))
    if wrt == out:
        return f"{title}: the output itself", [Row("", (lhs, w.number(chain.value, True)
                                                        if numeric else "1"))]
    if chain.count == 0:
        return (f"{title}: no path from {w.math(w.name(out))} to {w.math(w.name(wrt))}",
                [Row("", (lhs, "0"))])

    if chain.paths:
        rows = []
        for path in chain.paths:
            sides = [w.product(upstream + [w.partial(f.node, f.operand) for f in path.factors]),
                     w.product(upstream + [w.expr(f.derivative, nodes=(f.node,)) for f in path.factors])]
            if numeric:
                if all(np.ndim(f.value) == 0 for f in path.factors) and np.ndim(chain.dout) == 0:
                    dout = [] if chain.dout is None else [w.number(chain.dout)]
                    sides.append(w.product(dout + [w.number(f.value) for f in path.factors]))
                sides.append(w.number(path.value, True))
            else:
                product = w.expr(sp.Mul(*(f.derivative for f in path.factors)), True,
                                 [f.node for f in path.factors])
                sides.append(product)
            label = w.arrow.join(w.name(n) for n in [out] + [f.operand for f in path.factors])
            rows.append(Row(label, tuple(_dedupe(sides))))
        if len(rows) == 1:
            head = f"{title}: one path, {w.math(rows[0].label)}"
            return head, [Row("", tuple(_dedupe([lhs, *rows[0].sides])))]
        if numeric:
            total = " + ".join(w.number(p.value, i == 0) for i, p in enumerate(chain.paths))
            summed = [lhs, total, w.number(chain.value, True)]
        else:
            expr = sp.Add(*(sp.Mul(*(f.derivative for f in p.factors)) for p in chain.paths))
            summed = [lhs, w.expr(expr, True, [f.node for p in chain.paths for f in p.factors])]
        rows.append(Row(w.text("sum"), tuple(_dedupe(summed))))
        head = f"{title}: {len(rows) - 1} paths, added where they meet"
        return head, rows

    rows = []
    for step in chain.steps:
        ups = [w.name(chain.prefix + f.node) for f in step.factors]
        sides = [w.name(chain.prefix + step.node),
                 " + ".join(w.product([u, w.partial(f.node, f.operand)]) for u, f in zip(ups, step.factors)
                            if f.vjp is None),
                 " + ".join(w.product([u, w.expr(f.derivative, nodes=(f.node,))]) if f.vjp is None
                            else w.expr(f.applied(chain.prefix + f.node), True, (f.node,))
                            for u, f in zip(ups, step.factors))]
        if not sides[1]:
            del sides[1]
        if numeric and all(f.vjp is None and np.ndim(f.value) == 0 for f in step.factors):
            sides.append(" + ".join(w.product([w.number(u), w.number(f.value)])
                                    for u, f in zip(step.upstream, step.factors)))
        if numeric:
            sides.append(w.number(step.value, True))
        rows.append(Row("", tuple(_dedupe(sides))))
    adjoint = w.math(f"{w.name(chain.prefix + 'node')} = {w.partial(out, 'node')}")
    if chain.vector:
        head = (f"{title}: the backward pass node by node, {adjoint}; matrix and reduction "
                "nodes send their gradient back by a vector-Jacobian product")
    else:
        head = (f"{title}: {chain.count} paths, too many to list; the backward pass adds them up "
                f"node by node, {adjoint}")
    if chain.dout is not None:
        head += " times dout"
    return head, rows


def _dedupe(sides: list[str]) -> list[str]:
    """Drop a side equal to the one before it (``1 = 1``)."""
    return [s for i, s in enumerate(sides) if i == 0 or s != sides[i - 1]]


class Explanation:
    """The chain rule for one or more gradients; ``str()`` is Markdown.

    ``chains`` holds the structured form: per node, its paths and their factors.
    """

    def __init__(self, chains: tuple[Chain, ...], digits: int = 4, graph: Graph | None = None):
        self.chains = chains
        self.digits = digits
        self.graph = graph  # writes the derivatives as the tables and pictures do

    def __str__(self) -> str:
        w = Writer(self.digits, self.graph)
        blocks = []
        for chain in self.chains:
            head, rows = _rows(chain, w)
            if len(rows) == 1 and not rows[0].label:
                body = "    " + " = ".join(rows[0].sides)
            else:
                body = "\n".join(f"- {r.label + ': ' if r.label else ''}{' = '.join(r.sides)}" for r in rows)
            blocks.append(f"**{head}**\n\n{body}")
        matrix = self.matrix_notation
        if matrix is not None:
            lines = "\n".join("    " + line if line else "" for line in matrix.text().splitlines())
            blocks.append(f"**{self._matrix_head()}**\n\n{lines}")
        return "\n\n".join(blocks + self._legend())

    @functools.cached_property
    def matrix_notation(self) -> MatrixNotation | None:
        """The same gradients in matrix notation (:func:`symgrad.matrix_notation`), for a graph
        with array inputs whose output is a scalar or an array; None for scalar graphs, for
        nodes that are not inputs, and for graphs the notation does not cover."""
        from .notation import matrix_notation

        g = self.graph
        if g is None or all(g.shape(n) == () for n in g.inputs):
            return None
        names = [c.wrt for c in self.chains if c.wrt in g.inputs and c.wrt not in g.labels]
        if not names or len(names) != len(self.chains):
            return None
        try:
            return matrix_notation(g, names)
        except SymgradError:
            return None

    def _matrix_head(self) -> str:
        out = self.graph.output if self.graph is not None else "the output"
        what = (f"L = {out}" if self.matrix_notation is not None and self.matrix_notation.upstream is None
                else f"δ = ∂L/∂{out} for a loss L further on")
        return f"In matrix notation ({what}; juxtaposition is the matrix product, ∘ entrywise)"

    def __repr__(self) -> str:
        return f"<Explanation of {', '.join(c.wrt for c in self.chains)}>"

    def _repr_markdown_(self) -> str:
        w = LatexWriter(self.digits, self.graph)
        blocks = []
        for chain in self.chains:
            head, rows = _rows(chain, w)
            blocks.append(f"**{head}**\n\n$$\n{_aligned(rows)}\n$$")
        if self.matrix_notation is not None:
            blocks.append(f"**{self._matrix_head()}**\n\n{self.matrix_notation.latex()}")
        return "\n\n".join(blocks + self._legend())

    def _legend(self) -> list[str]:
        """The named dimensions and the inputs' shapes that use them, as the tables list them."""
        g = self.graph
        named = legend({n: g.shape(n) for n in g.inputs}) if g is not None else ""
        return [named] if named else []

    def _repr_latex_(self) -> str:
        w = LatexWriter(self.digits, self.graph)
        lines = []
        for chain in self.chains:
            head, rows = _rows(chain, w)
            lines.append(rf"&\textbf{{{latex_text(_plain_head(chain, self.graph))}}} \\")
            lines.append(_aligned(rows, wrapped=False))
        if self.matrix_notation is not None:
            lines.append(rf"&\textbf{{{latex_text(self._matrix_head())}}} \\")
            lines.append(self.matrix_notation.latex_rows())
        return "$$\n\\begin{aligned}\n" + "\n".join(lines) + "\n\\end{aligned}\n$$"


def _aligned(rows: list[Row], wrapped: bool = True) -> str:
    lines = []
    for r in rows:
        first, *rest = r.sides
        label = rf"{r.label}:\quad " if r.label else ""
        lines.append(f"{label}{first} &= " + " = ".join(rest) + r" \\")
    body = "\n".join(lines)
    return "\\begin{aligned}\n" + body + "\n\\end{aligned}" if wrapped else body


def _plain_head(chain: Chain, graph: Graph | None = None) -> str:
    return _rows(chain, Writer(4, graph))[0]
