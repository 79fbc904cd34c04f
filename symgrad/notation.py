"""Gradients of array graphs in the notation of a matrix-calculus course.

:func:`matrix_notation` writes the backward pass of an array graph the way
the lectures do: ``∂L/∂W = δq1 xᵀ`` with ``δq1 = 2 q1`` and ``q1 = W x``,
shapes beside each line, then the gradient written out in the inputs alone
(``2 W x xᵀ``).  The upstream gradient of a non-scalar output is ``δ``
(∂L/∂output, for a loss L further on): the affine layer ``X W + b`` gives
``∂L/∂W = Xᵀ δ``, ``∂L/∂X = δ Wᵀ`` and ``∂L/∂b = 𝟙ᵀ δ``.

Notation: juxtaposition is the matrix product, ``ᵀ`` the transpose, ``∘``
the entrywise (Hadamard) product, ``𝟙`` a vector of ones (``g 𝟙ᵀ`` repeats
the column g), functions apply entry by entry, ``[a > 0]`` is 1 where a > 0.

:meth:`MatrixNotation.verify` checks every gradient against SymPy: the loss
is expanded entry by entry (each input an array of symbols), differentiated
by each entry, and compared with the formula evaluated entry by entry at
random points.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp

from . import dims
from .dims import Shape
from .errors import SymgradError, UnsupportedError
from .graph import Graph
from .higher import _names
from .ops import format_constant, logaddexp, logsigmoid, sgn, sigmoid, softplus, step
from .program import build_program
from .tensors import (
    broadcast_to,
    expand_dims,
    explicit,
    eye,
    logsumexp,
    matmul,
    mean,
    onehot,
    outer,
    pick,
    reduce_sum,
    shape_of,
    sum_to,
    symbol_array,
    transpose,
)

MAX_CLOSED_FORM = 160  # characters: longer written-out gradients are left out of the text


@dataclass(frozen=True)
class Line:
    """``left = right`` with the value's shape."""

    left: sp.Expr
    right: sp.Expr
    shape: Shape


@dataclass(frozen=True)
class Formula:
    """The gradient with respect to one input: the steps and the written-out form."""

    name: str
    gradient: Line
    steps: tuple[Line, ...]       # the adjoints it reads, from the output down
    forward: tuple[Line, ...]     # the forward nodes the steps read
    closed: sp.Expr               # in the inputs (and δ) alone


class MatrixNotation:
    """The gradients of a graph in matrix notation; prints as text, shows as LaTeX in Jupyter."""

    def __init__(self, graph: Graph, formulas: tuple[Formula, ...], shapes: dict[sp.Symbol, Any],
                 adjoints: dict[sp.Symbol, str], upstream: sp.Symbol | None):
        self.graph, self.formulas, self.upstream = graph, formulas, upstream
        self._shapes, self._adjoints = shapes, adjoints

    def text(self, name: str | None = None) -> str:
        return "\n\n".join(self._block(f) for f in self._chosen(name))

    def latex(self, name: str | None = None) -> str:
        return "\n".join(r"$$\begin{aligned}" + self._latex_rows(f) + r"\end{aligned}$$"
                         for f in self._chosen(name))

    def latex_rows(self, name: str | None = None) -> str:
        """The rows of :meth:`latex` without the surrounding environment, to sit inside
        another ``aligned`` block (as explanations use them)."""
        return " \\\\ ".join(self._latex_rows(f) for f in self._chosen(name))

    def __str__(self) -> str:
        return self.text()

    def _repr_latex_(self) -> str:
        return self.latex()

    def _chosen(self, name: str | None) -> tuple[Formula, ...]:
        if name is None:
            return self.formulas
        chosen = tuple(f for f in self.formulas if f.name == name)
        if not chosen:
            raise SymgradError(f"no gradient for {name!r} here (names: "
                               f"{', '.join(f.name for f in self.formulas)})")
        return chosen

    def _lines(self, f: Formula, latex: bool) -> tuple[str, list[tuple[str, str, tuple[int, ...]]], str]:
        r = _Renderer(self._shapes, self._adjoints, latex)
        left = r.gradient_name(f.name)
        lines = [(left, r(f.gradient.right), f.gradient.shape)]
        lines += [(r(s.left), r(s.right), s.shape) for s in f.steps]
        lines += [(r(s.left), r(s.right), s.shape) for s in f.forward]
        return left, lines, r(f.closed)

    def _latex_rows(self, f: Formula) -> str:
        left, lines, closed = self._lines(f, latex=True)
        rows = [rf"{a} &= {b} & {_latex_shape(s)}" for a, b, s in lines]
        if len(closed) <= 2 * MAX_CLOSED_FORM and f.closed != f.gradient.right:
            rows.append(rf"{left} &= {closed} &")
        return r" \\ ".join(rows)

    def _block(self, f: Formula) -> str:
        left, lines, closed = self._lines(f, latex=False)
        width = max(len(a) + len(b) + 3 for a, b, _ in lines)
        text = [f"{f'{a} = {b}':<{width}}   {s}" for a, b, s in lines]
        if len(closed) <= MAX_CLOSED_FORM and f.closed != f.gradient.right:
            text.append(f"{left} = {closed}")
        return "\n".join(text)

    def verify(self, points: int = 2, seed: int = 0) -> bool:
        """Every gradient equals SymPy's derivative of the loss expanded entry by entry.

        Raises SymgradError naming the input and entry that differ.
        """
        g = self.graph
        rng = np.random.default_rng(seed)
        env: dict[sp.Symbol, Any] = {}
        for n in g.inputs:
            if n in g.labels:
                env[g.symbol(n)] = rng.integers(0, _classes(g, n), size=g.shape(n))
            else:
                env[g.symbol(n)] = symbol_array(n, g.shape(n))
        out_shape = g.shape(g.output)
        value = explicit(g.expression(), env)
        if self.upstream is not None:
            env[self.upstream] = symbol_array("delta", out_shape)
            loss = sp.Add(*(np.asarray(env[self.upstream]) * value).ravel())
        else:
            loss = value.item()
        entries = {f.name: np.asarray(env[g.symbol(f.name)]) for f in self.formulas}
        exact = {f.name: [sp.diff(loss, entries[f.name][i]) for i in np.ndindex(*g.shape(f.name))]
                 for f in self.formulas}
        mine = {f.name: np.broadcast_to(explicit(f.closed, env), g.shape(f.name)) for f in self.formulas}
        variables = [v for n in g.inputs if n not in g.labels for v in np.asarray(env[g.symbol(n)]).ravel()]
        if self.upstream is not None:
            variables += list(np.asarray(env[self.upstream]).ravel())
        for _ in range(points):
            at = {v: sp.Rational(int(rng.integers(-9, 10)), 7) for v in variables}
            for f in self.formulas:
                for k, index in enumerate(np.ndindex(*g.shape(f.name))):
                    a = complex(exact[f.name][k].xreplace(at).evalf(30))
                    b = complex(sp.sympify(mine[f.name][index]).xreplace(at).evalf(30))
                    if abs(a - b) > 1e-12 * max(1.0, abs(a)):
                        raise SymgradError(f"∂/∂{f.name}{list(index)}: the formula gives {b.real}, "
                                           f"SymPy's derivative of the expanded loss {a.real}")
        return True


def _classes(g: Graph, labels: str) -> int:
    from .values import label_classes

    found = label_classes(g).get(labels, 1)
    if isinstance(found, str):
        raise UnsupportedError(f"matrix notation needs concrete shapes; {labels!r} picks from {found} "
                               "classes")
    return found


def _latex_shape(shape: Shape) -> str:
    return r"\quad " + (dims.text(shape, r" \times ") if shape else r"\text{scalar}")


def matrix_notation(graph: Graph, wrt: str | Iterable[str] | None = None) -> MatrixNotation:
    """The gradients of ``graph`` with respect to ``wrt`` in matrix notation.

    Each gradient comes as the adjoint steps it reads (``δq1 = …``), the
    forward nodes they read (``q1 = W x``), shapes, and the gradient written
    out in the inputs.  ``str()`` is text, ``.latex()`` LaTeX (Jupyter shows
    it), ``.verify()`` checks every formula against SymPy's entry-by-entry
    expansion.

    >>> import symgrad as sg
    >>> g = sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)})
    >>> m = sg.matrix_notation(g, "W")
    >>> print(m)
    ∂L/∂W = δq1 xᵀ   (2, 2)
    δq1 = 2 q1       (2,)
    q1 = W x         (2,)
    ∂L/∂W = 2 W x xᵀ
    >>> m.verify()
    True
    """
    names, _ = _names(graph, wrt)
    program = build_program(graph, names)
    shapes: dict[sp.Symbol, Any] = {graph.symbol(n): graph.shape(n) for n in graph.nodes}
    for a in program.backward:
        shapes[a.target] = a.shape
    out_shape = graph.shape(graph.output)
    upstream = None
    known: dict[sp.Symbol, sp.Expr] = {}
    if out_shape == ():
        known[program.dout] = sp.S.One
    else:
        upstream = program.dout
        shapes[upstream] = out_shape
    adjoint = {a.target: a for a in program.backward}
    # adjoints that are constants or another adjoint are put in place, not shown
    for a in program.backward:
        expr = _tidy(a.expr.xreplace(known), shapes)
        if not expr.free_symbols or expr.is_Symbol or _stretched(expr):
            known[a.target] = expr
    forward = {graph.symbol(n): graph.expr(n) for n in graph.operations}
    formulas = []
    for n in names:
        target = program.grads[n]
        right = _tidy(adjoint[target].expr.xreplace(known), shapes)
        steps = []
        seen: set[sp.Symbol] = set()
        pending = [right]
        while pending:
            e = pending.pop()
            for s in sorted(e.free_symbols, key=str):
                if s in adjoint and s not in known and s not in seen and s != target:
                    seen.add(s)
                    pending.append(adjoint[s].expr.xreplace(known))
        for a in program.backward:
            if a.target in seen:
                steps.append(Line(a.target, _tidy(a.expr.xreplace(known), shapes), a.shape))
        used = set().union(right.free_symbols, *(s.right.free_symbols for s in steps))
        reading = [s for s in used if s in forward]
        while reading:  # the forward nodes those read, down to the inputs: every name defined
            for s in forward[reading.pop()].free_symbols:
                if s in forward and s not in used:
                    used.add(s)
                    reading.append(s)
        fwd = [Line(graph.symbol(m), graph.expr(m), graph.shape(m)) for m in graph.operations
               if graph.symbol(m) in used]
        closed = _inline(right, {**{a.target: a.expr for a in program.backward}, **known}, forward, shapes)
        formulas.append(Formula(n, Line(target, right, graph.shape(n)), tuple(steps), tuple(fwd), closed))
    adjoints = {a.target: a.node for a in program.backward}
    adjoints[program.dout] = ""
    return MatrixNotation(graph, tuple(formulas), shapes, adjoints, upstream)


class HessianNotation:
    """The Hessian of a graph written out in matrix notation (from its compiled matrix graph)."""

    def __init__(self, graph: Graph, wrt: str, closed: sp.Expr, shapes: dict[sp.Symbol, Any]):
        self.graph, self.wrt, self.closed, self._shapes = graph, wrt, closed, shapes

    def text(self) -> str:
        return f"∂²L/∂{self.wrt}² = {_Renderer(self._shapes, {}, False)(self.closed)}"

    def latex(self) -> str:
        name = sp.latex(sp.Symbol(self.wrt))
        body = _Renderer(self._shapes, {}, True)(self.closed)
        return rf"$$\frac{{\partial^2 L}}{{\partial {name}^2}} = {body}$$"

    def __str__(self) -> str:
        return self.text()

    def _repr_latex_(self) -> str:
        return self.latex()

    def verify(self, points: int = 2, seed: int = 0) -> bool:
        """The formula equals SymPy's second derivatives of the loss expanded entry by entry."""
        g, rng = self.graph, np.random.default_rng(seed)
        env = {g.symbol(n): symbol_array(n, g.shape(n)) for n in g.inputs}
        loss = explicit(g.expression(), env).item()
        entries = list(np.asarray(env[g.symbol(self.wrt)]).ravel())
        mine = np.asarray(explicit(self.closed, env)).reshape(len(entries), len(entries))
        variables = [v for n in g.inputs for v in np.asarray(env[g.symbol(n)]).ravel()]
        for _ in range(points):
            at = {v: sp.Rational(int(rng.integers(-9, 10)), 7) for v in variables}
            for i, a in enumerate(entries):
                for j, b in enumerate(entries):
                    exact = complex(sp.diff(loss, a, b).xreplace(at).evalf(30))
                    got = complex(sp.sympify(mine[i, j]).xreplace(at).evalf(30))
                    if abs(exact - got) > 1e-12 * max(1.0, abs(exact)):
                        raise SymgradError(f"∂²/∂{self.wrt}[{i}]∂{self.wrt}[{j}]: the formula gives "
                                           f"{got.real}, SymPy's derivative {exact.real}")
        return True


def hessian_notation(graph: Graph, wrt: str) -> HessianNotation:
    """The Hessian with respect to the vector ``wrt``, written out in matrix notation.

    It is read off the graph ``sg.hessian(graph, wrt, method="matrix")`` compiles,
    so it is the matrix products that code computes.

    >>> import symgrad as sg
    >>> loss = sg.graph("mean(logaddexp(0, -y*(X@w)))", shapes={"X": (4, 2), "y": (4,), "w": (2,)})
    >>> h = sg.hessian_notation(loss, "w")
    >>> print(h)
    ∂²L/∂w² = Xᵀ diag((y^2 ∘ σ(y ∘ X w) ∘ σ(-y ∘ X w))/4) X
    >>> h.verify()
    True
    """
    from .higher import hessian

    matrix = hessian(graph, wrt, method="matrix").graphs[0]
    shapes = {matrix.symbol(n): matrix.shape(n) for n in matrix.nodes}
    return HessianNotation(graph, wrt, _tidy(matrix.expression(), shapes), shapes)


def _shape_or_none(e: sp.Expr, shapes: dict[sp.Symbol, Any]) -> Shape | None:
    try:
        return shape_of(e, shapes)
    except SymgradError:
        return None


def _complements(e: sp.Expr) -> sp.Expr:
    """``σ(a) - 1`` as ``-σ(-a)``."""

    def complement(x: sp.Expr) -> sp.Expr:
        terms = sp.Add.make_args(x)
        if len(terms) == 2 and -1 in terms:
            (other,) = [t for t in terms if t != -1]
            if isinstance(other, sigmoid):
                return -sigmoid(-other.args[0])
        return x

    return e.replace(lambda x: isinstance(x, sp.Add), complement)


def _stretched(e: sp.Expr) -> bool:
    """``broadcast_to(c, S)`` of a constant: put in place (``𝟙/N``)."""
    return isinstance(e, broadcast_to) and not e.args[0].free_symbols


def _inline(e: sp.Expr, adjoints: dict[sp.Symbol, sp.Expr], forward: dict[sp.Symbol, sp.Expr],
            shapes: dict[sp.Symbol, Any]) -> sp.Expr:
    for _ in range(1000):
        hit = {s: adjoints.get(s, forward.get(s)) for s in e.free_symbols
               if s in adjoints or s in forward}
        if not hit:
            return _tidy(e, shapes)
        e = e.xreplace(hit)  # type: ignore[arg-type]
    raise SymgradError("the gradient does not resolve to the inputs")


def _tidy(e: sp.Expr, shapes: dict[sp.Symbol, Any]) -> sp.Expr:
    """A stretched constant multiplying an array of its shape is that constant
    (``2·broadcast_to(1, (2,))·q1`` is ``2·q1``); a sum of one entry is that entry."""

    def ones_away(m: sp.Expr) -> sp.Expr:
        if not isinstance(m, sp.Mul):
            return m
        factors = list(m.args)
        for i, f in enumerate(factors):
            if _stretched(f):
                target = tuple(int(n) for n in f.args[1])
                rest = [x for j, x in enumerate(factors) if j != i]
                try:
                    have = shape_of(sp.Mul(*rest), shapes) if rest else None
                    if have is not None and tuple(np.broadcast_shapes(target, have)) == have:
                        return sp.Mul(f.args[0], *rest)
                except (SymgradError, ValueError):
                    pass
        return m

    def restretch(x: sp.Expr) -> sp.Expr:
        """A constant stretched, given axes and stretched again: that constant stretched."""
        inner = x.args[0]
        if isinstance(x, expand_dims) and _stretched(inner):
            return broadcast_to(inner.args[0], sp.Tuple(*x.array_shape(tuple(inner.args[1]))))
        if isinstance(x, broadcast_to) and _stretched(inner):
            return broadcast_to(inner.args[0], x.args[1])
        return x

    def numbers_out(x: sp.Expr) -> sp.Expr:
        """``A (2 B)`` as ``2 A B``."""
        coeffs, args = [], []
        for a in x.args:
            c, rest = a.as_coeff_Mul() if isinstance(a, sp.Mul) else (sp.S.One, a)
            coeffs.append(c)
            args.append(rest)
        return sp.Mul(*coeffs) * x.func(*args) if any(c != 1 for c in coeffs) else x

    def fold(m: sp.Expr) -> sp.Expr:
        """``c · broadcast_to(k, S)`` of numbers: ``broadcast_to(c·k, S)``."""
        stretched = [f for f in m.args if _stretched(f)]
        if len(stretched) == 1 and all(f.is_Number for f in m.args if f is not stretched[0]):
            c = sp.Mul(*(f for f in m.args if f is not stretched[0]))
            return broadcast_to(c * stretched[0].args[0], stretched[0].args[1])
        return m

    def logistic(x: sp.Expr) -> sp.Expr:
        """``exp(a - logaddexp(0, a))`` is σ(a)."""
        inner = x.args[0]
        for term in sp.Add.make_args(inner):
            if isinstance(term, sp.Mul) and term.args[0] == -1 and isinstance(term.args[1], logaddexp) \
                    and len(term.args) == 2 and 0 in term.args[1].args and len(term.args[1].args) == 2:
                a = [t for t in term.args[1].args if t != 0][0]
                if sp.expand(inner - (a - term.args[1])) == 0:
                    return sigmoid(a)
        return x

    e = _complements(e.replace(lambda x: isinstance(x, sp.exp), logistic))
    e = e.replace(lambda x: isinstance(x, sp.Mul), fold)
    def scaled_columns(m: sp.Expr) -> sp.Expr:
        """A matrix times vectors: the vectors' product factored (``M diag(c)``)."""
        matrices = [f for f in m.args if _shape_or_none(f, shapes) is not None
                    and len(_shape_or_none(f, shapes)) == 2]  # type: ignore[arg-type]
        if len(matrices) != 1:
            return m
        rest = sp.Mul(*(f for f in m.args if f is not matrices[0]))
        return matrices[0] * _complements(sp.factor(rest))

    e = e.replace(lambda x: isinstance(x, (expand_dims, broadcast_to)), restretch)
    e = e.replace(lambda x: isinstance(x, sp.Mul), scaled_columns)
    e = e.replace(lambda x: isinstance(x, (matmul, outer)), numbers_out)
    return e.replace(lambda x: isinstance(x, sp.Mul), ones_away)


# --------------------------------------------------------------------------
# Printing


class _Renderer:
    """Matrix notation as text or LaTeX."""

    ADD, HADAMARD, MUL, ATOM = 1, 2, 3, 4  # juxtaposition (MUL) binds tighter than ∘

    def __init__(self, shapes: dict[sp.Symbol, Any], adjoints: dict[sp.Symbol, str], latex: bool):
        self.shapes, self.adjoints, self.latex = shapes, adjoints, latex

    def __call__(self, e: sp.Expr) -> str:
        return self.render(e)[0]

    def gradient_name(self, name: str) -> str:
        if self.latex:
            return rf"\frac{{\partial L}}{{\partial {sp.latex(sp.Symbol(name))}}}"
        return f"∂L/∂{name}"

    def shape(self, e: sp.Expr) -> Shape:
        try:
            return shape_of(e, self.shapes)
        except SymgradError:
            return ()

    def wrap(self, e: sp.Expr, level: int) -> str:
        text, own = self.render(e)
        if own < level:
            return rf"\left({text}\right)" if self.latex else f"({text})"
        return text

    def name(self, s: sp.Symbol) -> str:
        node = self.adjoints.get(s)
        if node == "":
            return r"\delta" if self.latex else "δ"
        if node is not None:
            return rf"\delta_{{{sp.latex(sp.Symbol(node))}}}" if self.latex else f"δ{node}"
        return sp.latex(s) if self.latex else s.name

    def fn(self, name: str, *args: str) -> str:
        if self.latex:
            return rf"\operatorname{{{name}}}\left({', '.join(args)}\right)"
        return f"{name}({', '.join(args)})"

    def t(self, text: str) -> str:
        return rf"{text}^{{\top}}" if self.latex else f"{text}ᵀ"

    def render(self, e: sp.Expr) -> tuple[str, int]:  # noqa: C901 - one case per function
        one = r"\mathbf{1}" if self.latex else "𝟙"
        if isinstance(e, sp.Symbol):
            return self.name(e), self.ATOM
        if e.is_Number:
            shown = format_constant(e) if isinstance(e, sp.Float) else sp.latex(e) if self.latex else str(e)
            return shown, self.ATOM if e >= 0 and e.is_Integer else self.MUL
        if isinstance(e, matmul):
            return " ".join(self.wrap(a, self.MUL) for a in e.args), self.MUL
        if isinstance(e, transpose):
            return self.t(self.wrap(e.args[0], self.ATOM)), self.ATOM
        if isinstance(e, outer):
            return f"{self.wrap(e.args[0], self.MUL)} {self.t(self.wrap(e.args[1], self.ATOM))}", self.MUL
        if isinstance(e, broadcast_to):
            a, target = e.args
            if isinstance(a, expand_dims) and len(target) == 2:
                return self.render(a)
            if not a.free_symbols:
                return (one if a == 1 else f"{self.wrap(a, self.MUL)} {one}"), self.MUL
            return self.render(a)  # entries repeated to the shape around it
        if isinstance(e, expand_dims):
            a, axes = e.args
            inner = self.wrap(a, self.MUL + 1)
            if tuple(axes) == (1,):
                return f"{inner} {self.t(one)}", self.MUL
            return f"{one} {self.t(inner)}", self.MUL
        if isinstance(e, (sum_to, reduce_sum, mean)):
            return self.reduction(e, one)
        if isinstance(e, onehot):
            return self.fn("onehot", self(e.args[0])), self.ATOM
        if isinstance(e, pick):
            return f"{self.wrap(e.args[0], self.ATOM)}[{self(e.args[1])}]", self.ATOM
        if isinstance(e, logsumexp):
            return self.fn("logsumexp", self(e.args[0]), *self.axis(e)), self.ATOM
        if isinstance(e, (step, sp.Heaviside)):
            inner = f"{self(e.args[0])} > 0"
            return (rf"\left[{inner}\right]" if self.latex else f"[{inner}]"), self.ATOM
        if isinstance(e, sigmoid):
            return (rf"\sigma\left({self(e.args[0])}\right)" if self.latex
                    else f"σ({self(e.args[0])})"), self.ATOM
        if isinstance(e, sgn):
            return self.fn("sign", self(e.args[0])), self.ATOM
        if isinstance(e, eye):
            return ("I" if not self.latex else "I"), self.ATOM
        if isinstance(e, sp.Add):
            return self.add(e), self.ADD
        if isinstance(e, sp.Mul):
            return self.mul(e)
        if isinstance(e, sp.Pow):
            base = self.wrap(e.base, self.ATOM)
            if e.exp == -1:
                return (rf"\frac{{1}}{{{self(e.base)}}}" if self.latex else f"1/{base}"), self.MUL
            power = self(e.exp)
            return (f"{base}^{{{power}}}" if self.latex else f"{base}^{power}"), self.ATOM
        if isinstance(e, (softplus, logsigmoid)) or isinstance(e, sp.Function):
            name = type(e).__name__
            if self.latex and name in ("exp", "log", "tanh", "sin", "cos"):
                return rf"\{name}\left({', '.join(self(a) for a in e.args)}\right)", self.ATOM
            return self.fn(name, *(self(a) for a in e.args)), self.ATOM
        return (sp.latex(e) if self.latex else str(e)), self.ATOM

    def axis(self, e: sp.Expr) -> list[str]:
        axes = tuple(int(a) for a in e.args[1])
        return [f"axis={axes[0] if len(axes) == 1 else axes}"] if axes else []

    def reduction(self, e: sp.Expr, one: str) -> tuple[str, int]:
        x = e.args[0]
        shape = self.shape(x)
        if isinstance(e, sum_to):
            target = tuple(int(n) for n in e.args[1])
            if len(shape) == 2 and target == shape[1:]:
                return f"{self.t(one)} {self.wrap(x, self.MUL + 1)}", self.MUL
            return self.fn("sum_to", self(x), str(target)), self.ATOM
        axes = tuple(int(a) for a in e.args[1]) or tuple(range(len(shape)))
        keep = bool(e.args[2])
        inner = self.wrap(x, self.MUL + 1)
        if len(shape) == 1 or (len(shape) == 2 and axes == (0,) and not keep):
            text, level = f"{self.t(one)} {inner}", self.MUL
        elif len(shape) == 2 and axes == (1,):
            text, level = f"{inner} {one}", self.MUL
        else:
            summed = rf"\sum {inner}" if self.latex else f"Σ {inner}"
            return (summed if isinstance(e, reduce_sum) else self.fn("mean", self(x), *self.axis(e))), \
                self.MUL if isinstance(e, reduce_sum) else self.ATOM
        if isinstance(e, mean):
            count = int(np.prod([shape[a] for a in axes]))
            return (rf"\frac{{1}}{{{count}}} {text}" if self.latex else f"{text}/{count}"), self.MUL
        return text, level

    def add(self, e: sp.Add) -> str:
        parts: list[str] = []
        for term in sorted(e.args, key=lambda t: (t.could_extract_minus_sign(), sp.default_sort_key(t))):
            negative = term.could_extract_minus_sign()
            text = self.wrap(-term if negative else term, self.ADD + 1)
            if not parts:
                parts.append(f"-{text}" if negative else text)
            else:
                parts.append(f"- {text}" if negative else f"+ {text}")
        return " ".join(parts)

    def mul(self, e: sp.Mul) -> tuple[str, int]:
        scaled = self.diagonal(e)
        if scaled is not None:
            return scaled, self.MUL
        coeff, rest = e.as_coeff_Mul()
        factors = list(sp.Mul.make_args(rest))
        numerators = [f for f in factors if not (isinstance(f, sp.Pow) and f.exp == -1)]
        denominators = [f.base for f in factors if isinstance(f, sp.Pow) and f.exp == -1]
        arrays = [f for f in numerators if self.shape(f) != ()]
        scalars = [f for f in numerators if self.shape(f) == ()]
        hadamard = r" \odot " if self.latex else " ∘ "
        pieces = [self.wrap(f, self.MUL + 1) for f in scalars]
        single = len(numerators) == 1 and self.render(numerators[0])[1] == self.ATOM
        level = self.HADAMARD if len(arrays) > 1 else self.MUL
        if arrays:
            pieces.append(hadamard.join(self.wrap(f, self.MUL if len(arrays) > 1 else self.MUL)
                                        for f in arrays))
        text = " ".join(pieces)
        sign = ""
        if coeff < 0:
            sign, coeff = "-", -coeff
        if coeff != 1:
            if isinstance(coeff, sp.Rational) and coeff.q != 1:
                denominators.append(sp.Integer(coeff.q))
                coeff = sp.Integer(coeff.p)
            if coeff != 1:
                text = f"{self(coeff)} {text}" if text else self(coeff)
        text = text or "1"
        if denominators:
            below = " ".join(self.wrap(d, self.MUL + 1) for d in denominators)
            if self.latex:
                text = rf"\frac{{{text}}}{{{below}}}"
            else:
                text, level = f"{text if single else self.wrap_text(text)}/{below}", self.HADAMARD
        return sign + text, level

    def diagonal(self, e: sp.Mul) -> str | None:
        """A matrix times vectors along its last axis: ``M diag(c)``."""
        factors = sp.Mul.make_args(e)
        matrices = [f for f in factors if len(self.shape(f)) == 2]
        if len(matrices) != 1:
            return None
        (m,) = matrices
        columns = self.shape(m)[1]
        rest = [f for f in factors if f is not m]
        if not rest or any(self.shape(f) not in ((), (columns,)) for f in rest) \
                or all(self.shape(f) == () for f in rest):
            return None
        c = self(_complements(sp.factor(sp.Mul(*rest))))
        diag = rf"\operatorname{{diag}}\left({c}\right)" if self.latex else f"diag({c})"
        return f"{self.wrap(m, self.MUL)} {diag}"

    def wrap_text(self, text: str) -> str:
        return f"({text})" if " " in text else text
