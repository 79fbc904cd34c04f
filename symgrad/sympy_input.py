"""SymPy expressions → graph, following SymPy's own expression tree.

Matrix expressions work too: a ``MatrixSymbol`` is an input of its shape,
``W*x`` (a ``MatMul``) becomes ``@``, ``+`` adds, ``.T`` transposes and
``HadamardProduct``/``HadamardPower`` act entry by entry.
"""

from __future__ import annotations

import sympy as sp

from .build import Builder, Operand
from .dims import read_shape, show
from .errors import ShapeError, UnsupportedError
from .ops import BY_CLASS, FUNCTIONS


def from_sympy(expr: sp.Basic, builder: Builder):
    """Build a Graph from a SymPy expression; see :func:`symgrad.graph`."""
    if not isinstance(expr, sp.Expr):
        raise UnsupportedError(f"cannot build a graph from SymPy {type(expr).__name__} {expr}")
    converter = _Converter(builder)
    output = converter.convert(expr)
    return builder.finish(output, source=_source(expr, converter.depth, converter.written))


def _source(expr: sp.Expr, depth: int, written: int) -> str:
    """``str(expr)``, or a summary for an expression too deep for SymPy's recursive printer or
    too long to write out (a sub-expression used k times is printed k times)."""
    if depth <= SHOWN_DEPTH and written <= SHOWN_SIZE:
        try:
            return str(expr)
        except RecursionError:
            pass
    if depth <= SHOWN_DEPTH:
        return f"a SymPy expression of {'over ' if written >= _MANY else ''}{written:,} terms written out"
    return f"a SymPy expression {depth} levels deep"


SHOWN_DEPTH = 60  # deeper expressions are summarized: SymPy prints recursively
SHOWN_SIZE = 10_000  # sub-expressions counted with repeats; larger ones are summarized
_MANY = 10**12  # sizes are capped here: a DAG's written size grows exponentially with its depth


class _Converter:
    """Post-order walks without recursion, each sub-expression visited once (equal ones are one
    node with several consumers), so a deep or wide expression costs time linear in its size."""

    def __init__(self, builder: Builder):
        self.b = builder
        self.done: dict[sp.Expr, Operand] = {}
        self.variable: dict[sp.Basic, bool] = {}  # has a free symbol: free_symbols, without recursion
        self.levels: dict[sp.Basic, int] = {}
        self.sizes: dict[sp.Basic, int] = {}  # sub-expressions counted with repeats, as printed
        self.depth = 0
        self.written = 0

    def scan(self, root: sp.Basic) -> None:
        """Fill :attr:`variable` and :attr:`depth` for every sub-expression of ``root``."""
        levels, sizes = self.levels, self.sizes
        stack: list[tuple[sp.Basic, bool]] = [(root, False)]
        while stack:
            e, ready = stack.pop()
            if e in self.variable:
                continue
            if isinstance(e, (sp.Symbol, sp.MatrixSymbol)) or not e.args:
                self.variable[e] = isinstance(e, (sp.Symbol, sp.MatrixSymbol))
                levels[e] = sizes[e] = 1
            elif not ready:
                stack.append((e, True))
                stack.extend((a, False) for a in e.args if a not in self.variable)
            else:
                self.variable[e] = any(self.variable[a] for a in e.args)
                levels[e] = 1 + max(levels[a] for a in e.args)
                sizes[e] = min(1 + sum(sizes[a] for a in e.args), _MANY)
        self.depth = max(self.depth, levels[root])
        self.written = max(self.written, sizes[root])

    def convert(self, root: sp.Expr) -> Operand:
        # post-order without recursion, sharing equal sub-expressions
        self.scan(root)
        stack: list[tuple[sp.Expr, bool]] = [(root, False)]
        while stack:
            e, ready = stack.pop()
            if e in self.done:
                continue
            if not self.has_symbols(e):
                self.done[e] = self.b.constant(e)
            elif isinstance(e, sp.Symbol):
                self.done[e] = self.b.input(e.name)
            elif isinstance(e, sp.MatrixSymbol):
                self.done[e] = self.matrix_input(e)
            elif not ready:
                stack.append((e, True))
                stack.extend((a, False) for a in reversed(self.parts(e)))
            else:
                self.done[e] = self.apply(e)
        return self.done[root]

    def has_symbols(self, e: sp.Basic) -> bool:
        known = self.variable.get(e)
        if known is None:  # made here (a negated term's positive part): scan it too
            self.scan(e)
            known = self.variable[e]
        return known

    def negated(self, term: sp.Expr) -> sp.Expr | None:
        """t for a term SymPy stores as −t (so ``x − y`` becomes a subtraction again), else None."""
        if isinstance(term, sp.Mul) and term.args[0] == -1 and self.has_symbols(term):
            rest = term.args[1:]
            return rest[0] if len(rest) == 1 else sp.Mul._from_args(rest)  # −t without evaluating
        return None

    def reciprocal(self, factor: sp.Expr) -> sp.Expr | None:
        """t for a factor SymPy stores as t**−1 (so ``x / y`` becomes a division again), else None."""
        if isinstance(factor, sp.Pow) and factor.exp == -1 and self.has_symbols(factor):
            return factor.base
        return None

    def matrix_input(self, e: sp.MatrixSymbol) -> Operand:
        sizes = (e.rows, e.cols)
        if not all(n.is_Integer or n.is_Symbol for n in sizes):
            raise ShapeError(f"matrix {e.name} has sizes {sizes}: give whole numbers or names")
        shape = read_shape(e.name, tuple(str(n) if n.is_Symbol else int(n) for n in sizes))
        given = read_shape(e.name, self.b.shapes.setdefault(e.name, shape))
        if given != shape:
            raise ShapeError(f"matrix {e.name} is {show(shape)}, but shapes gives {show(given)}")
        return self.b.input(e.name)

    def parts(self, e: sp.Expr) -> list[sp.Expr]:
        if isinstance(e, (sp.MatMul, sp.MatAdd, sp.HadamardProduct)):
            return list(e.args)
        if isinstance(e, sp.Transpose):
            return [e.arg]
        if isinstance(e, sp.HadamardPower):
            return [e.base, e.exp]
        if isinstance(e, sp.Add):
            return [self.negated(t) or t for t in e.args]
        if isinstance(e, sp.Mul):
            return [self.reciprocal(f) or f for f in e.args]
        if isinstance(e, sp.Pow):
            if e.exp == -1:
                return [e.base]
            if e.exp == sp.S.Half:
                return [e.base]
            return [e.base, e.exp]
        if type(e) in BY_CLASS:
            op = BY_CLASS[type(e)]
            return list(e.args[: op.arity] if op.params else e.args)
        if isinstance(e, (sp.Function, sp.Expr)):
            name = type(e).__name__
            known = ", ".join(sorted(FUNCTIONS))
            raise UnsupportedError(
                f"SymPy {name} in {e} has no symgrad operation (supported functions: {known})"
            )
        raise UnsupportedError(f"cannot convert {e!r}")

    def apply(self, e: sp.Expr) -> Operand:
        b, done = self.b, self.done
        if isinstance(e, sp.MatMul):  # scalars multiply, matrices multiply as matrices
            acc, matrix = done[e.args[0]], e.args[0].is_Matrix
            for a in e.args[1:]:
                acc = b.apply("matmul" if matrix and a.is_Matrix else "mul", acc, done[a])
                matrix = matrix or a.is_Matrix
            return acc
        if isinstance(e, (sp.MatAdd, sp.HadamardProduct)):
            acc = done[e.args[0]]
            for a in e.args[1:]:
                acc = b.apply("add" if isinstance(e, sp.MatAdd) else "mul", acc, done[a])
            return acc
        if isinstance(e, sp.Transpose):
            return b.apply("transpose", done[e.arg])
        if isinstance(e, sp.HadamardPower):
            return b.apply("pow", done[e.base], done[e.exp])
        if isinstance(e, sp.Add):
            acc = None
            for t in e.args:
                positive = self.negated(t)
                operand = done[t if positive is None else positive]
                if acc is None:
                    acc = operand if positive is None else b.apply("mul", sp.Integer(-1), operand)
                else:
                    acc = b.apply("add" if positive is None else "sub", acc, operand)
            return acc  # type: ignore[return-value]
        if isinstance(e, sp.Mul):
            acc = None
            for f in e.args:
                base = self.reciprocal(f)
                operand = done[f if base is None else base]
                if acc is None:
                    acc = operand if base is None else b.apply("div", sp.Integer(1), operand)
                else:
                    acc = b.apply("mul" if base is None else "div", acc, operand)
            return acc  # type: ignore[return-value]
        if isinstance(e, sp.Pow):
            if e.exp == -1:
                return b.apply("div", sp.Integer(1), done[e.base])
            if e.exp == sp.S.Half:
                return b.apply("sqrt", done[e.base])
            return b.apply("pow", done[e.base], done[e.exp])
        op = BY_CLASS[type(e)]
        if op.params:  # keyword parameters (axis, keepdims) are trailing arguments
            return b.apply(op.name, *(done[a] for a in e.args[: op.arity]), **op.param_values(e.args))
        args = [done[a] for a in e.args]
        if len(args) > op.arity:  # SymPy's Max and Min are n-ary
            acc = args[0]
            for a in args[1:]:
                acc = b.apply(op.name, acc, a)
            return acc
        return b.apply(op.name, *args)

