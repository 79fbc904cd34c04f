"""How every display writes the graph: expressions as written, derivatives, numbers, tables.

Tables, explanations and pictures all print through this module: one printer
for an expression as written (:func:`written`, text or LaTeX), one rule for
which derivative form is shown (:func:`shown_derivative`), one text of a
vector-Jacobian product (:func:`vjp_text`), and one builder per table
(:func:`derivative_table`, :func:`trace_table`) that writes text or a LaTeX
array through a :class:`Writer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy as sp
from sympy.logic.boolalg import BooleanAtom
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from .printing import Notation, in_notation
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
        expr = in_notation(expr, graph.sigmoid_outputs)
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
    return _AsWritten(order).doprint(expr if graph is None else in_notation(expr, graph.sigmoid_outputs))


def vjp_text(rule: Any, graph: Graph | None = None, node: str | None = None, latex: bool = False) -> str:
    """A vector-Jacobian product ``Lambda(g, expr)`` as ``g ↦ expr``; labels get none."""
    if rule is None:
        return r"\text{labels (no gradient)}" if latex else "labels (no gradient)"
    (upstream,), expr = rule.args
    if graph is None or node is None:
        return f"{upstream} ↦ {expr}"
    arrow = r" \mapsto " if latex else " ↦ "
    return written(graph, upstream, [node], latex) + arrow + written(graph, expr, [node], latex)


def shown_derivative(graph: Graph, node: str, operand: str) -> sp.Expr:
    """∂node/∂operand in the form every display shows (explanations, pictures, tables): SymPy's
    derivative of an op, a gate's own simplified form through its output (σ·(1 − σ)).

    Tables show both forms, SymPy's derivative and, where it differs, the form through
    the node's output (:func:`local_text`), so the shown one is always among them.

    >>> import symgrad as sg
    >>> g = sg.graph("1/(1+exp(-x))")
    >>> shown_derivative(g, "q2", "q1"), shown_derivative(g.fuse("sigmoid"), "q4", "x")
    (exp(q1), q4*(1 - q4))
    """
    edge = graph.nx.edges[operand, node]
    return edge["cached"] if graph.nx.nodes[node]["kind"] == "gate" else edge["derivative"]


def local_text(graph: Graph, node: str, operand: str, latex: bool = False) -> str:
    """∂node/∂operand as tables write it: SymPy's derivative, then ``= `` its form through the
    node's output where that differs (``exp(q5) = q6``, a sigmoid gate's ``… = q8*(1 - q8)``);
    a vector-Jacobian product as ``g ↦ …`` (:func:`vjp_text`).
    """
    edge = graph.nx.edges[operand, node]
    if not graph.elementwise(node):
        return vjp_text(edge["vjp"], graph, node, latex)
    plain, cached = (expression_text(graph, node, edge[k], latex) for k in ("derivative", "cached"))
    return plain if cached == plain else f"{plain} = {cached}"


# -- how the pieces are written: text or LaTeX ------------------------------------------


class Writer:
    """How the pieces are written: Unicode text for terminals."""

    times = "·"
    arrow = " ← "
    latex = False

    def __init__(self, digits: int, graph: Graph | None = None):
        self.digits = digits
        self.graph = graph

    def name(self, node: str) -> str:
        return node

    def partial(self, top: str, bottom: str) -> str:
        return f"∂{self.name(top)}/∂{self.name(bottom)}"

    def expr(self, e: sp.Expr, alone: bool = False, nodes: Sequence[str] = ()) -> str:
        """``e``, a derivative at ``nodes``, as the tables and pictures write it."""
        text = self.written(e, nodes)
        return text if alone or _atomic(e) else f"({text})"

    def written(self, e: sp.Expr, nodes: Sequence[str]) -> str:
        if self.graph is None:
            return sp.latex(e) if self.latex else str(e)
        return written(self.graph, e, nodes, self.latex)

    def number(self, v: Any, alone: bool = False) -> str:
        text = number(v, self.digits)
        return text if alone or not text.startswith("-") else f"({text})"

    def text(self, s: str) -> str:
        return s

    def math(self, s: str) -> str:
        """A formula inside running text."""
        return s

    def product(self, parts: Sequence[str]) -> str:
        return self.times.join(parts) if parts else "1"


class LatexWriter(Writer):
    """How the pieces are written in LaTeX."""

    times = r" \cdot "
    arrow = r" \leftarrow "
    latex = True

    def name(self, node: str) -> str:
        return sp.latex(sp.Symbol(node))

    def partial(self, top: str, bottom: str) -> str:
        return rf"\frac{{\partial {self.name(top)}}}{{\partial {self.name(bottom)}}}"

    def expr(self, e: sp.Expr, alone: bool = False, nodes: Sequence[str] = ()) -> str:
        text = self.written(e, nodes)
        return text if alone or _atomic(e) else rf"\left({text}\right)"

    def number(self, v: Any, alone: bool = False) -> str:
        text = number(v, self.digits)
        if np.ndim(v) != 0:
            return rf"\text{{{latex_text(text)}}}"
        return text if alone or not text.startswith("-") else f"({text})"

    def text(self, s: str) -> str:
        return rf"\text{{{latex_text(s)}}}"

    def math(self, s: str) -> str:
        return f"${s}$"


def _atomic(e: sp.Expr) -> bool:
    return bool(e.is_Atom or isinstance(e, sp.Function)) and not (e.is_Number and e < 0)



def latex_text(s: str) -> str:
    """``s`` safe inside ``\\text{…}``.

    >>> latex_text("a_b & {c}")
    'a\\\\_b \\\\& \\\\{c\\\\}'
    """
    special = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
               "%": r"\%", "_": r"\_", "^": r"\^{}", "~": r"\~{}"}
    return "".join(special.get(c, c) for c in s)


# -- tables: one builder each, written as text or as a LaTeX array ---------------------------


class Table(str):
    """A text table (it is the string) that shows itself as a LaTeX array in Jupyter."""

    _latex: Callable[[], str]

    def __new__(cls, text: str, latex: Callable[[], str]) -> Table:
        table = super().__new__(cls, text)
        table._latex = latex
        return table

    def _repr_latex_(self) -> str:
        return self._latex()


def render(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _array(header: list[str], rows: list[list[str]]) -> str:
    """A LaTeX array; header cells are LaTeX already."""
    head = " & ".join(header)
    body = " \\\\\n".join(" & ".join(r) for r in rows)
    return ("$$\n\\begin{array}{" + "l" * len(header) + "}\n" + head + " \\\\\n\\hline\n"
            + body + "\n\\end{array}\n$$")


def _finish(w: Writer, header: list[str], rows: list[list[str]]) -> str:
    return _array(header, rows) if w.latex else render(header, rows)


def derivative_table(graph: Graph, latex: bool = False) -> str:
    """Each operation node, its expression and its local derivatives: SymPy's and, where it
    differs, the cached form; nodes that are not elementwise (matmul, sum, …) show each
    operand's vector-Jacobian product.
    """
    w: Writer = LatexWriter(4, graph) if latex else Writer(4, graph)
    rows = []
    for n in graph.operations:
        head = [w.name(n), w.text(str(graph.nx.nodes[n]["label"])), expression_text(graph, n, latex=latex)]
        shown: dict[str, list[str]] = {}
        for u in graph.operands(n):
            if not graph.elementwise(n):
                shown[u] = [vjp_text(graph.nx.edges[u, n]["vjp"], graph, n, latex), ""]
            else:
                edge = graph.nx.edges[u, n]
                d, c = (expression_text(graph, n, edge[k], latex) for k in ("derivative", "cached"))
                shown[u] = [d, "" if c == d else c]  # the same text once
        if not shown:
            rows.append(head + ["", "", ""])
        for i, u in enumerate(shown):
            rows.append((head if i == 0 else ["", "", ""]) + [w.partial(n, u), *shown[u]])
    header = ["node", "op", "expression", "local", "derivative", "cached form"]
    return _finish(w, [w.text(h) for h in header], rows)


def trace_table(t: Trace, digits: int = 4, latex: bool = False) -> str:
    """One row per node (value and gradient), one sub-row per operand edge: its local derivative
    (:func:`local_text`), the number at the point and the gradient sent back along it."""
    g = t.graph
    w: Writer = LatexWriter(digits, g) if latex else Writer(digits, g)
    rows = []
    for n in g.nodes:
        data = g.nx.nodes[n]
        op = "input" if data["kind"] == "input" else str(data["label"])
        head = [w.name(n), w.text(op), w.number(t.values[n], True), w.number(t.node_grads.get(n), True)]
        operands = g.operands(n)
        if not operands:
            rows.append(head + ["", "", "", ""])
        for i, u in enumerate(operands):
            rows.append((head if i == 0 else ["", "", "", ""]) + [
                w.name(u), local_text(g, n, u, latex), w.number(t.local.get((n, u)), True),
                w.number(t.sent.get((n, u)), True),
            ])
    header = [w.text("node"), w.text("op"), w.text("value"), w.partial(g.output, "node"), w.text("operand"),
              w.partial("node", "operand"), w.text("= at point"), w.text("sent back (local × upstream)")]
    return _finish(w, header, rows)
