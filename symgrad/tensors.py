"""Operations on whole arrays: matmul, transpose, reductions, label picking.

Elementwise operations need nothing from this module.  A node ``exp(x)`` on
an array applies the scalar ``exp`` to every entry; its local derivative is
SymPy's scalar derivative, and the backward pass multiplies it entry by entry
with the upstream gradient (a Hadamard product: the diagonal Jacobian is never
formed).

The operations here mix entries, so each SymPy function class states three
things side by side:

- ``array_shape(*shapes)``: the result's shape, or a ShapeError naming the op
  and the shapes;
- ``vjp(g, out, shapes)``: the vector-Jacobian products, one SymPy expression
  per operand in the upstream gradient ``g``, the output ``out`` and the
  operands (None for an operand that gets no gradient, such as labels);
- ``explicit(*values)``: the definition entry by entry, on NumPy object arrays
  of SymPy expressions.  The tests differentiate it with SymPy at small shapes
  and check every ``vjp`` against it.

The helpers after the operations (``outer``, ``expand_dims``, ``broadcast_to``,
``onehot``) only appear inside vector-Jacobian products.  Keyword parameters
(``axis``, ``keepdims``) are trailing SymPy arguments: ``axis`` is a Tuple of
axes (empty for all axes), ``keepdims`` a SymPy boolean.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp
from sympy.logic.boolalg import BooleanAtom
from sympy.printing.precedence import PRECEDENCE

from .errors import ShapeError

Shape = tuple[int, ...]


def _shapes(shapes: tuple[Shape, ...]) -> str:
    return " and ".join(str(tuple(s)) for s in shapes)


def _obj(value: Any) -> np.ndarray:
    """A value as a NumPy object array (0-d for a scalar)."""
    return np.asarray(value, dtype=object)


# --------------------------------------------------------------------------
# Parameters


def encode_axis(axis: int | tuple[int, ...] | None) -> sp.Tuple:
    """``None`` → ``()`` (every axis), ``1`` → ``(1,)``, ``(0, 1)`` → ``(0, 1)``."""
    if axis is None:
        return sp.Tuple()
    axes = (axis,) if isinstance(axis, (int, sp.Integer)) else tuple(axis)
    if not axes:
        raise ShapeError("axis=() reduces nothing; leave axis out to reduce every axis")
    return sp.Tuple(*(sp.Integer(int(a)) for a in axes))


def decode_axis(axes: sp.Tuple) -> int | tuple[int, ...] | None:
    if len(axes) == 0:
        return None
    return int(axes[0]) if len(axes) == 1 else tuple(int(a) for a in axes)


PARAMS: dict[str, tuple[Any, Any, Any]] = {
    # name: (default, Python value → SymPy argument, SymPy argument → Python value)
    "axis": (None, encode_axis, decode_axis),
    "keepdims": (False, lambda k: sp.true if k else sp.false, lambda k: bool(k)),
}


def normalize_axes(op: str, axes: sp.Tuple, shape: Shape) -> sp.Tuple:
    """Axes made non-negative and sorted, or a ShapeError naming op, axis and shape."""
    out = []
    for a in axes:
        a = int(a)
        if not -len(shape) <= a < len(shape):
            raise ShapeError(f"{op}: axis {a} is out of range for shape {shape}")
        out.append(a % len(shape))
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {tuple(int(a) for a in axes)}")
    return sp.Tuple(*(sp.Integer(a) for a in sorted(out)))


class ArrayFunction(sp.Function):
    """A SymPy function of whole arrays (its first ``operands`` arguments)."""

    operands_count = 1

    @property
    def operands(self) -> tuple[sp.Expr, ...]:
        return self.args[: self.operands_count]

    def _eval_is_real(self) -> bool:
        return True

    def array_shape(self, *shapes: Shape) -> Shape:
        raise NotImplementedError

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Reduction(ArrayFunction):
    """``f(x, axis, keepdims)``: reduces ``x`` over ``axis`` (every axis when empty)."""

    nargs = 3
    label = "reduce"

    @property
    def axes(self) -> tuple[int, ...] | None:
        return tuple(int(a) for a in self.args[1]) or None

    @property
    def keepdims(self) -> bool:
        return bool(self.args[2])

    def reduced(self, shape: Shape) -> tuple[int, ...]:
        return self.axes if self.axes is not None else tuple(range(len(shape)))

    def count(self, shape: Shape) -> int:
        """How many entries each result entry reduces."""
        return int(np.prod([shape[a] for a in self.reduced(shape)], dtype=int))

    def array_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        axes = self.reduced(shape)
        if any(not 0 <= a < len(shape) for a in axes):
            raise ShapeError(f"{self.label}: axis {self.axes} is out of range for shape {shape}")
        if self.keepdims:
            return tuple(1 if i in axes else n for i, n in enumerate(shape))
        return tuple(n for i, n in enumerate(shape) if i not in axes)

    def unreduce(self, g: sp.Expr) -> sp.Expr:
        """``g``, of the result's shape, with the reduced axes put back as size 1."""
        if self.keepdims or self.axes is None:
            return g
        return expand_dims(g, sp.Tuple(*self.axes))

    def _np_axis(self) -> int | tuple[int, ...] | None:
        return decode_axis(self.args[1])

    def _sympystr(self, printer: Any) -> str:
        extra = f", axis={self._np_axis()}" if self.axes is not None else ""
        extra += ", keepdims=True" if self.keepdims else ""
        return f"{self.label}({printer._print(self.args[0])}{extra})"


# --------------------------------------------------------------------------
# Operations (rows of the op table)


class matmul(ArrayFunction):
    """``a @ b`` for vectors and matrices, as NumPy defines it."""

    nargs = 2
    operands_count = 2
    precedence = PRECEDENCE["Mul"] - 1  # printed ``a @ b`` needs parentheses inside a product

    def array_shape(self, *shapes: Shape) -> Shape:
        sa, sb = shapes
        if not (1 <= len(sa) <= 2 and 1 <= len(sb) <= 2):
            raise ShapeError(f"matmul: shapes {_shapes(shapes)}: @ takes vectors and matrices")
        if sa[-1] != sb[0]:
            raise ShapeError(
                f"matmul: shapes {_shapes(shapes)} do not align ({sa[-1]} ≠ {sb[0]})"
            )
        return sa[:-1] + sb[1:]

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        a, b = self.args
        ma, mb = (len(s) == 2 for s in shapes)
        if ma and mb:  # (n,k) @ (k,m)
            return matmul(g, transpose(b)), matmul(transpose(a), g)
        if ma:  # (n,k) @ (k,): g has shape (n,)
            return outer(g, b), matmul(transpose(a), g)
        if mb:  # (k,) @ (k,m): g has shape (m,)
            return matmul(b, g), outer(a, g)
        return g * b, g * a  # (k,) @ (k,): g is a scalar

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return _obj(np.matmul(*values))

    def _sympystr(self, printer: Any) -> str:
        return " @ ".join(printer.parenthesize(a, PRECEDENCE["Mul"]) for a in self.args)


class transpose(ArrayFunction):
    """``a.T``: the axes reversed (a vector stays as it is)."""

    nargs = 1

    def array_shape(self, *shapes: Shape) -> Shape:
        return tuple(reversed(shapes[0]))

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        return (transpose(g),)

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return _obj(values[0]).T

    def _sympystr(self, printer: Any) -> str:
        return f"{printer.parenthesize(self.args[0], PRECEDENCE['Func'], strict=True)}.T"

    @classmethod
    def eval(cls, a: sp.Expr) -> sp.Expr | None:
        if isinstance(a, transpose):
            return a.args[0]
        return a if a.is_number else None


class reduce_sum(Reduction):
    """``sum(x, axis)``: the sum of the entries, over ``axis`` or all of them."""

    label = "sum"

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        return (broadcast_to(self.unreduce(g), sp.Tuple(*shapes[0])),)

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return _obj(np.sum(values[0], axis=self._np_axis(), keepdims=self.keepdims))

    @classmethod
    def eval(cls, x: sp.Expr, axes: sp.Tuple, keepdims: BooleanAtom) -> sp.Expr | None:
        return x if x.is_number and len(axes) == 0 else None


class mean(Reduction):
    """``mean(x, axis)``: the average of the entries, over ``axis`` or all of them."""

    label = "mean"

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        n = self.count(shapes[0])
        return (broadcast_to(self.unreduce(g) / n, sp.Tuple(*shapes[0])),)

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        x = _obj(values[0])
        return _obj(np.sum(x, axis=self._np_axis(), keepdims=self.keepdims)) / self.count(x.shape)

    @classmethod
    def eval(cls, x: sp.Expr, axes: sp.Tuple, keepdims: BooleanAtom) -> sp.Expr | None:
        return x if x.is_number and len(axes) == 0 else None


class logsumexp(Reduction):
    """``logsumexp(x, axis)`` = log Σ exp(x), computed without overflow."""

    label = "logsumexp"

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        x = self.args[0]
        return (self.unreduce(g) * sp.exp(x - self.unreduce(out)),)  # g · softmax(x)

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        total = np.sum(np.frompyfunc(sp.exp, 1, 1)(_obj(values[0])), axis=self._np_axis(),
                       keepdims=self.keepdims)
        return _obj(np.frompyfunc(sp.log, 1, 1)(_obj(total)))

    @classmethod
    def eval(cls, x: sp.Expr, axes: sp.Tuple, keepdims: BooleanAtom) -> sp.Expr | None:
        return x if x.is_number and len(axes) == 0 else None


class pick(ArrayFunction):
    """``pick(s, y)``: row i's entry in column y[i], ``s[arange(N), y]`` (y: integer labels)."""

    nargs = 3
    operands_count = 2

    @property
    def keepdims(self) -> bool:
        return bool(self.args[2])

    def array_shape(self, *shapes: Shape) -> Shape:
        ss, sy = shapes
        if len(ss) != 2 or sy != ss[:1]:
            raise ShapeError(
                f"pick: scores of shape {ss} and labels of shape {sy} do not fit; "
                "pick takes scores (N, C) and labels (N,)"
            )
        return (ss[0], 1) if self.keepdims else (ss[0],)

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr | None, ...]:
        y = self.args[1]
        column = g if self.keepdims else expand_dims(g, sp.Tuple(1))
        return onehot(y, shapes[0][1]) * column, None

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        s, y = _obj(values[0]), np.asarray(values[1], dtype=int)
        picked = s[np.arange(len(y)), y]
        return picked[:, None] if self.keepdims else picked

    def _sympystr(self, printer: Any) -> str:
        extra = ", keepdims=True" if self.keepdims else ""
        return f"pick({printer._print(self.args[0])}, {printer._print(self.args[1])}{extra})"


# --------------------------------------------------------------------------
# Helpers that appear in vector-Jacobian products


class outer(ArrayFunction):
    """``outer(a, b)[i, j] = a[i]·b[j]`` for vectors."""

    nargs = 2
    operands_count = 2

    def array_shape(self, *shapes: Shape) -> Shape:
        return tuple(shapes[0]) + tuple(shapes[1])

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return _obj(np.multiply.outer(*values))

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        return matmul(g, self.args[1]), matmul(self.args[0], g)


class expand_dims(ArrayFunction):
    """``expand_dims(a, axes)``: ``a`` with new axes of size 1 at ``axes``."""

    nargs = 2

    def array_shape(self, *shapes: Shape) -> Shape:
        shape = list(shapes[0])
        for a in sorted(int(a) for a in self.args[1]):
            shape.insert(a, 1)
        return tuple(shape)

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return _obj(np.expand_dims(values[0], tuple(int(a) for a in self.args[1])))

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        return (reduce_sum(g, self.args[1], sp.false),)

    def _sympystr(self, printer: Any) -> str:
        return f"expand_dims({printer._print(self.args[0])}, {decode_axis(self.args[1])})"


class broadcast_to(ArrayFunction):
    """``broadcast_to(a, shape)``: ``a`` stretched to ``shape`` by broadcasting."""

    nargs = 2

    def array_shape(self, *shapes: Shape) -> Shape:
        return tuple(int(n) for n in self.args[1])

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return _obj(np.broadcast_to(_obj(values[0]), self.array_shape()))

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        """Summed back over the stretched axes (new leading ones, and those of size 1)."""
        source, target = tuple(shapes[0]), self.array_shape()
        lead = len(target) - len(source)
        if lead:
            g = reduce_sum(g, sp.Tuple(*range(lead)), sp.false)
        kept = tuple(i for i, n in enumerate(source) if n == 1 and target[lead + i] != 1)
        return (reduce_sum(g, sp.Tuple(*kept), sp.true) if kept else g,)


class onehot(ArrayFunction):
    """``onehot(y, C)``: row i is the unit vector e_{y[i]} of length C."""

    nargs = 2

    def array_shape(self, *shapes: Shape) -> Shape:
        return tuple(shapes[0]) + (int(self.args[1]),)

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return np.eye(int(self.args[1]), dtype=int).astype(object)[np.asarray(values[0], dtype=int)]

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr | None, ...]:
        return (None,)  # labels get no gradient


# --------------------------------------------------------------------------
# Reading expressions of arrays


def _array_function(expr: sp.Basic) -> bool:
    return callable(getattr(type(expr), "array_shape", None))


def shape_of(expr: sp.Expr, shapes: Mapping[sp.Symbol, Shape]) -> Shape:
    """The shape of ``expr``'s value, given the shapes of its symbols (others are scalars).

    Elementwise parts broadcast; array functions apply their own rule.

    >>> W, x = sp.symbols("W x")
    >>> shape_of(matmul(W, x) * 2, {W: (3, 2), x: (2,)})
    (3,)
    """
    if isinstance(expr, sp.Symbol):
        return tuple(shapes.get(expr, ()))
    if _array_function(expr):
        operands = expr.args[: getattr(expr, "operands_count", 1)]
        return tuple(expr.array_shape(*(shape_of(a, shapes) for a in operands)))
    if not expr.args:
        return ()
    parts = [shape_of(a, shapes) for a in expr.args if isinstance(a, sp.Expr)]
    try:
        return tuple(int(n) for n in np.broadcast_shapes(*parts))
    except ValueError:
        raise ShapeError(f"{type(expr).__name__}: shapes {_shapes(tuple(parts))} do not broadcast") \
            from None


def explicit(expr: sp.Expr, env: Mapping[sp.Symbol, Any]) -> np.ndarray:
    """``expr`` evaluated entry by entry: a NumPy object array of SymPy expressions.

    ``env`` maps symbols to arrays (of SymPy entries or numbers); symbols not
    in ``env`` stay as they are.  Elementwise parts broadcast as in NumPy.

    >>> W = symbol_array("W", (2, 2)); x = symbol_array("x", (2,))
    >>> a, b = sp.symbols("a b")
    >>> explicit(matmul(a, b), {a: W, b: x})
    array([W[0, 0]*x[0] + W[0, 1]*x[1], W[1, 0]*x[0] + W[1, 1]*x[1]], dtype=object)
    """
    if isinstance(expr, sp.Symbol):
        return _obj(env.get(expr, expr))
    if _array_function(expr):
        operands = expr.args[: getattr(expr, "operands_count", 1)]
        return _obj(expr.explicit(*(explicit(a, env) for a in operands)))
    if not expr.args:
        return _obj(expr)
    args = [explicit(a, env) for a in expr.args]
    if isinstance(expr, sp.Add):
        return _obj(np.sum(np.broadcast_arrays(*args), axis=0))
    if isinstance(expr, sp.Mul):
        return _obj(np.prod(np.broadcast_arrays(*args), axis=0))
    return _obj(np.frompyfunc(lambda *a: expr.func(*a), len(args), 1)(*args))


def symbol_array(name: str, shape: Shape) -> np.ndarray:
    """An object array of real SymPy entries ``name[i, j]``, one per position.

    >>> symbol_array("x", (2,))
    array([x[0], x[1]], dtype=object)
    """
    base = sp.IndexedBase(name, real=True)
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        out[index] = base[index] if index else sp.Symbol(name, real=True)
    return out
