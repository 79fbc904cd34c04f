"""Plain-text tables of graphs and traces, for terminals and notebooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

if TYPE_CHECKING:
    from .graph import Graph
    from .interpret import Trace


def number(v: Any, digits: int = 4) -> str:
    """A value as the lectures write it: -0.1966, 6, array [0.22 0.26]."""
    if v is None:
        return ""
    if np.ndim(v) == 0:
        x = float(v)
        return "0" if x == 0 else f"{x:.{digits}g}"
    a = np.asarray(v) + 0  # no "-0."
    if a.size <= 9:
        return np.array2string(a, precision=digits, separator=", ", suppress_small=True).replace("\n", "")
    return f"array{a.shape} in [{a.min():.{digits}g}, {a.max():.{digits}g}]"


class _AsWritten(StrPrinter):
    """SymPy's text of an expression, with the operands of +, ·, max and min in a given order.

    SymPy sorts them (``max(z, w)`` becomes ``Max(w, z)``); a node's display
    follows its operands as written instead.
    """

    def __init__(self, order: list[sp.Symbol]):
        super().__init__()
        self.position = {s: i for i, s in enumerate(order)}

    def _key(self, arg: sp.Expr) -> float:
        found = [self.position[s] for s in arg.free_symbols if s in self.position]
        return min(found) if found else float("inf")

    def _as_ordered_terms(self, expr: sp.Expr, order: Any = None) -> list[sp.Expr]:
        if expr.is_Add:
            terms = super()._as_ordered_terms(expr, order)
            return sorted(terms, key=lambda t: (t.could_extract_minus_sign(), self._key(t)))
        return super()._as_ordered_terms(expr, order)

    def _print_Mul(self, expr: sp.Expr) -> str:
        if all(a.is_Symbol for a in expr.args):  # x*z as z*x when written so
            return "*".join(self._print(a) for a in sorted(expr.args, key=self._key))
        return super()._print_Mul(expr)

    def _print_LatticeOp(self, expr: sp.Expr) -> str:
        args = sorted(expr.args, key=lambda a: (self._key(a), sp.default_sort_key(a)))
        return f"{expr.func.__name__}({', '.join(self._print(a) for a in args)})"


def expression_text(graph: Graph, node: str, expr: sp.Expr | None = None) -> str:
    """Node ``node``'s expression (or ``expr``, one of its derivatives) as text, its operands
    in the order written.

    >>> import symgrad as sg
    >>> g = sg.graph("max(z, w) + (y - x)")
    >>> [expression_text(g, n) for n in g.operations]
    ['Max(z, w)', 'y - x', 'q1 + q2']
    """
    order = [graph.symbol(u) for u in graph.operands(node)] + [graph.symbol(node)]
    return _AsWritten(order).doprint(graph.expr(node) if expr is None else expr)


def written(order: list[sp.Symbol], expr: sp.Expr) -> str:
    """``expr`` as text, the operands of +, ·, max and min following ``order``."""
    return _AsWritten(order).doprint(expr)


def vjp_text(rule: Any) -> str:
    """A vector-Jacobian product ``Lambda(g, expr)`` as ``g ↦ expr``; labels get none."""
    return "labels (no gradient)" if rule is None else f"{rule.variables[0]} ↦ {rule.expr}"


def local_text(graph: Graph, node: str, operand: str, show: Any = str) -> str:
    """∂node/∂operand as tables write it: SymPy's derivative, then ``= `` its form through the
    node's output where that differs (``exp(q5) = q6``, a sigmoid gate's ``... = q8*(1 - q8)``).

    ``show`` turns an expression into text (``str``, or ``sympy.latex``).
    """
    if show is str:
        show = lambda e: expression_text(graph, node, e)  # noqa: E731
    plain = graph.local_derivatives(node)[operand]
    cached = graph.local_derivatives(node, cached=True)[operand]
    return show(plain) if cached == plain else f"{show(plain)} = {show(cached)}"


def render(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def derivative_table(graph: Graph) -> str:
    """Each operation node, its expression and its local derivatives (plain and cached)."""
    rows = []
    for n in graph.operations:
        node = graph.nx.nodes[n]
        vjps = None
        if graph.elementwise(n):
            plain = graph.local_derivatives(n)
            cached = graph.local_derivatives(n, cached=True)
        else:
            vjps = graph.vjps(n)
            plain = cached = {u: vjp_text(vjps.get(u)) for u in graph.operands(n)}  # type: ignore[misc]
        first = True
        for u in plain or [None]:
            rows.append([
                n if first else "", node["label"] if first else "",
                expression_text(graph, n) if first else "",
                "" if u is None else f"∂{n}/∂{u}",
                "" if u is None else str(plain[u]) if vjps else expression_text(graph, n, plain[u]),
                "" if u is None or cached[u] == plain[u] else expression_text(graph, n, cached[u]),
            ])
            first = False
    return render(["node", "op", "expression", "local", "derivative", "cached form"], rows)


def trace_table(t: Trace, digits: int = 4) -> str:
    """One row per node (value and gradient), one sub-row per operand edge."""
    g = t.graph
    out = g.output
    rows = []
    for n in g.nodes:
        data = g.nx.nodes[n]
        op = "input" if data["kind"] == "input" else data["label"]
        grad = number(t.node_grads.get(n), digits)
        operands = g.operands(n)
        head = [n, op, number(t.values[n], digits), grad]
        if not operands:
            rows.append(head + ["", "", "", ""])
        vjps = None if g.elementwise(n) else g.vjps(n)
        for i, u in enumerate(operands):
            d = local_text(g, n, u) if vjps is None else vjp_text(vjps.get(u))
            rows.append((head if i == 0 else ["", "", "", ""]) + [
                u, d, number(t.local.get((n, u)), digits), number(t.sent.get((n, u)), digits),
            ])
    header = ["node", "op", "value", f"∂{out}/∂node", "operand", "local ∂node/∂operand",
              "= at point", "sent back (local × upstream)"]
    return render(header, rows)
