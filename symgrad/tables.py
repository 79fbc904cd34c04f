"""Plain-text tables of graphs and traces, for terminals and notebooks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
from sympy.logic.boolalg import BooleanAtom
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from .printing import Notation, in_notation, sigmoid_outputs
from .tensors import ArrayFunction, Reduction

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


class _Written:
    """The order of the operands of +, ·, max and min as written, for a SymPy printer.

    SymPy sorts them (``max(z, w)`` becomes ``Max(w, z)``, ``z - w`` becomes
    ``-w + z``); a node's display follows its operands as written instead.
    """

    position: dict[sp.Symbol, int]

    def _key(self, arg: sp.Expr) -> float:
        found = [self.position[s] for s in arg.free_symbols if s in self.position]
        return min(found) if found else float("inf")

    def _as_ordered_terms(self, expr: sp.Expr, order: Any = None) -> list[sp.Expr]:
        terms = super()._as_ordered_terms(expr, order)  # type: ignore[misc]
        if expr.is_Add:
            return sorted(terms, key=lambda t: (t.could_extract_minus_sign(), self._key(t)))
        return terms

    def _lattice_args(self, expr: sp.Expr) -> list[sp.Expr]:
        return sorted(expr.args, key=lambda a: (self._key(a), sp.default_sort_key(a)))


class _AsWritten(_Written, Notation, StrPrinter):
    """SymPy's text of an expression, its operands in a given order."""

    def __init__(self, order: list[sp.Symbol]):
        super().__init__()
        self.position = {s: i for i, s in enumerate(order)}

    def _print_Mul(self, expr: sp.Expr) -> str:
        if all(a.is_Symbol for a in expr.args):  # x*z as z*x when written so
            return "*".join(self._print(a) for a in sorted(expr.args, key=self._key))
        return super()._print_Mul(expr)

    def _print_LatticeOp(self, expr: sp.Expr) -> str:
        return f"{expr.func.__name__}({', '.join(self._print(a) for a in self._lattice_args(expr))})"


class _AsWrittenLatex(_Written, Notation, LatexPrinter):
    """SymPy's LaTeX of an expression, its operands in a given order."""

    latex = True

    def __init__(self, order: list[sp.Symbol]):
        super().__init__()
        self.position = {s: i for i, s in enumerate(order)}

    def _print_Mul(self, expr: sp.Expr) -> str:
        if all(a.is_Symbol for a in expr.args):
            return " ".join(self._print(a) for a in sorted(expr.args, key=self._key))
        return super()._print_Mul(expr)

    def _print_Max(self, expr: sp.Expr, exp: Any = None) -> str:
        args = ", ".join(self._print(a) for a in self._lattice_args(expr))
        tex = rf"\{expr.func.__name__.lower()}\left({args}\right)"
        return tex if exp is None else f"{tex}^{{{exp}}}"

    _print_Min = _print_Max

    # operations on whole arrays, written as their text is: W @ x, x^T, sum(x, axis=0)

    def _print_matmul(self, expr: sp.Expr) -> str:
        return r" \mathbin{@} ".join(self.parenthesize(a, PRECEDENCE["Mul"]) for a in expr.args)

    def _print_transpose(self, expr: sp.Expr) -> str:
        return f"{self.parenthesize(expr.args[0], PRECEDENCE['Func'], strict=True)}^{{T}}"

    def _print_Function(self, expr: Any, exp: Any = None) -> str:
        if not isinstance(expr, ArrayFunction):  # SymPy's printers skip classes between
            return super()._print_Function(expr, exp)
        args = [self._print(a) for a in expr.operands]
        if isinstance(expr, Reduction):
            params = [f"axis={expr._np_axis()}"] if expr.axes is not None else []
        else:
            params = [str(a) for a in expr.args[len(expr.operands):] if not isinstance(a, BooleanAtom)]
        params += ["keepdims"] if any(a is sp.true for a in expr.args[len(expr.operands):]) else []
        name = getattr(expr, "label", type(expr).__name__).replace("_", r"\_")
        shown = ", ".join(args + [rf"\text{{{p}}}" for p in params])
        return rf"\operatorname{{{name}}}\left({shown}\right)"


def written(graph: Graph, expr: sp.Expr, nodes: Iterable[str], latex: bool = False) -> str:
    """``expr`` as every display writes it (tables, explanations, pictures): text, or LaTeX,
    with the operands of ``nodes`` in the order written.

    >>> import symgrad as sg
    >>> g = sg.graph("max(z, w)")
    >>> d = g.local_derivatives("q1")["z"]
    >>> str(d), written(g, d, ["q1"]), written(g, d, ["q1"], latex=True)
    ('Heaviside(-w + z)', '[z > w]', '\\\\mathbb{1}\\\\left[z > w\\\\right]')
    """
    order = [graph.symbol(u) for n in nodes for u in [*graph.operands(n), n]]
    printer = _AsWrittenLatex(order) if latex else _AsWritten(order)
    if all(expr != graph.expr(n) for n in nodes):  # a derivative: the sigmoid's as q*(1 - q)
        expr = in_notation(expr, sigmoid_outputs(graph))
    return printer.doprint(expr)


def expression_text(graph: Graph, node: str, expr: sp.Expr | None = None, latex: bool = False) -> str:
    """Node ``node``'s expression (or ``expr``, one of its derivatives) as text, its operands
    in the order written (LaTeX with ``latex``).

    >>> import symgrad as sg
    >>> g = sg.graph("max(z, w) + (y - x)")
    >>> [expression_text(g, n) for n in g.operations]
    ['Max(z, w)', 'y - x', 'q1 + q2']
    """
    return written(graph, graph.expr(node) if expr is None else expr, [node], latex)


def in_order(order: list[sp.Symbol], expr: sp.Expr, graph: Graph | None = None) -> str:
    """``expr`` as text, the operands of +, ·, max and min following ``order`` (and, given the
    ``graph``, a sigmoid's derivative through its node's output)."""
    return _AsWritten(order).doprint(expr if graph is None else in_notation(expr, sigmoid_outputs(graph)))


def vjp_text(rule: Any, graph: Graph | None = None, node: str | None = None, latex: bool = False) -> str:
    """A vector-Jacobian product ``Lambda(g, expr)`` as ``g ↦ expr``; labels get none."""
    if rule is None:
        return r"\text{labels (no gradient)}" if latex else "labels (no gradient)"
    (upstream,), expr = rule.args
    if graph is None or node is None:
        return f"{upstream} ↦ {expr}"
    arrow = r" \mapsto " if latex else " ↦ "
    return written(graph, upstream, [node], latex) + arrow + written(graph, expr, [node], latex)


def local_text(graph: Graph, node: str, operand: str, latex: bool = False) -> str:
    """∂node/∂operand as tables write it: SymPy's derivative, then ``= `` its form through the
    node's output where that differs (``exp(q5) = q6``, a sigmoid gate's ``... = q8*(1 - q8)``).
    """
    plain = graph.local_derivatives(node)[operand]
    cached = graph.local_derivatives(node, cached=True)[operand]
    shown = [expression_text(graph, node, e, latex) for e in (plain, cached)]
    return shown[0] if shown[1] == shown[0] else f"{shown[0]} = {shown[1]}"


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
            plain = cached = {u: vjp_text(vjps.get(u), graph, n) for u in graph.operands(n)}  # type: ignore[misc]
        first = True
        for u in plain or [None]:
            rows.append([
                n if first else "", node["label"] if first else "",
                expression_text(graph, n) if first else "",
                "" if u is None else f"∂{n}/∂{u}",
                "" if u is None else str(plain[u]) if vjps else expression_text(graph, n, plain[u]),
                "" if u is None or cached[u] == plain[u] or vjps
                else _differs(expression_text(graph, n, cached[u]), expression_text(graph, n, plain[u])),
            ])
            first = False
    return render(["node", "op", "expression", "local", "derivative", "cached form"], rows)


def _differs(cached: str, plain: str) -> str:
    """The cached form's text where it reads differently from the derivative's."""
    return "" if cached == plain else cached


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
            d = local_text(g, n, u) if vjps is None else vjp_text(vjps.get(u), g, n)
            rows.append((head if i == 0 else ["", "", "", ""]) + [
                u, d, number(t.local.get((n, u)), digits), number(t.sent.get((n, u)), digits),
            ])
    header = ["node", "op", "value", f"∂{out}/∂node", "operand", "local ∂node/∂operand",
              "= at point", "sent back (local × upstream)"]
    return render(header, rows)
