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
``onehot``, ``equal``) only appear inside vector-Jacobian products.  Keyword
parameters (``axis``, ``keepdims``, ``shape``, ``axes``) are trailing SymPy
arguments: ``axis`` is a Tuple of axes (empty for all axes), ``keepdims`` a
SymPy boolean, ``shape`` (of ``reshape``) a Tuple of sizes as the user wrote
them (one may be -1), ``axes`` (of ``permute_dims``) a Tuple permutation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp
from sympy.logic.boolalg import BooleanAtom
from sympy.printing.precedence import PRECEDENCE

from .dims import Shape, broadcast, named, show, size
from .errors import ShapeError


def _shapes(shapes: tuple[Shape, ...]) -> str:
    return " and ".join(show(s) for s in shapes)


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


def encode_shape(shape: Any, names: bool = True) -> sp.Tuple:
    """A new shape or an axis permutation: ``(N, -1)`` → ``Tuple(N, -1)``, ``6`` → ``Tuple(6)``.

    With ``names``, a size may be a named dimension (``X.shape[0]`` of an input
    of shape ``("N", 3)``); axes (``names=False``) are integers only.
    """
    if shape is None:
        raise ShapeError("a shape is required, like (2, -1)")
    sizes = (shape,) if isinstance(shape, (int, sp.Integer, sp.Symbol)) else tuple(shape)
    if not all((isinstance(n, (int, sp.Integer, np.integer)) and not isinstance(n, bool))
               or (names and named(n)) for n in sizes):
        kind = "integers or named dimensions" if names else "integers"
        shown = show(tuple(shape)) if isinstance(shape, (tuple, list)) else repr(shape)
        raise ShapeError(f"shape {shown} is not a tuple of {kind}")
    return sp.Tuple(*(n if named(n) else sp.Integer(int(n)) for n in sizes))


def decode_shape(sizes: sp.Tuple) -> tuple[Any, ...]:
    """The sizes of an encoded shape: ints, and named dimensions as they are."""
    return tuple(n if named(n) else int(n) for n in sizes)


PARAMS: dict[str, tuple[Any, Any, Any]] = {
    # name: (default, Python value → SymPy argument, SymPy argument → Python value)
    "axis": (None, encode_axis, decode_axis),
    "keepdims": (False, lambda k: sp.true if k else sp.false, lambda k: bool(k)),
    "shape": (None, encode_shape, decode_shape),
    "axes": (None, lambda axes: encode_shape(axes, names=False), decode_shape),
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

    def count(self, shape: Shape) -> Any:
        """How many entries each result entry reduces: a number, or a product of named dimensions."""
        return size(tuple(shape[a] for a in self.reduced(shape)))

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
    """``a @ b`` as NumPy defines it: vectors, matrices and stacks of matrices.

    Leading (batch) axes broadcast; a vector operand is a row (left) or a
    column (right) whose axis the result drops.  The gradient of an operand
    broadcast over batch axes is summed over them.
    """

    nargs = 2
    operands_count = 2
    precedence = PRECEDENCE["Mul"] - 1  # printed ``a @ b`` needs parentheses inside a product

    def array_shape(self, *shapes: Shape) -> Shape:
        sa, sb = (tuple(s) for s in shapes)
        if not sa or not sb:
            raise ShapeError(f"matmul: shapes {_shapes(shapes)}: @ takes vectors and matrices, "
                             "not scalars")
        k = sb[-2] if len(sb) > 1 else sb[0]
        if sa[-1] != k:
            raise ShapeError(f"matmul: shapes {_shapes(shapes)} do not align ({sa[-1]} ≠ {k})")
        try:
            batch = tuple(np.broadcast_shapes(sa[:-2], sb[:-2]))
        except ValueError:
            raise ShapeError(f"matmul: shapes {_shapes(shapes)}: the batch axes {sa[:-2]} and "
                             f"{sb[:-2]} do not broadcast") from None
        return batch + sa[-2:-1] + sb[-1:] if len(sb) > 1 else batch + sa[-2:-1]

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        a, b = self.args
        sa, sb = (tuple(s) for s in shapes)
        if len(sa) > 2 or len(sb) > 2:
            return _batched_matmul_vjp(a, b, g, sa, sb)
        ma, mb = len(sa) == 2, len(sb) == 2
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


def _batched_matmul_vjp(a: sp.Expr, b: sp.Expr, g: sp.Expr, sa: Shape, sb: Shape
                        ) -> tuple[sp.Expr, sp.Expr]:
    """``a @ b`` with a stack of matrices on either side: dA = G·Bᵀ, dB = Aᵀ·G per matrix,
    a vector's dropped axis put back as size 1, summed over the axes ``a`` or ``b`` was
    broadcast along."""
    if len(sa) == 1:  # (k,) @ (..., k, m): g is (..., m)
        row = expand_dims(g, sp.Tuple(len(sb) - 2))  # (..., 1, m)
        da = matmul(row, matrix_transpose(b, len(sb)))  # (..., 1, k)
        db = expand_dims(a, sp.Tuple(1)) * row  # (k, 1) * (..., 1, m)
        have_a, have_b = sb[:-2] + (1, sa[0]), sb
    elif len(sb) == 1:  # (..., n, k) @ (k,): g is (..., n)
        da = expand_dims(g, sp.Tuple(len(sa) - 1)) * b  # (..., n, 1) * (k,)
        db = matmul(expand_dims(g, sp.Tuple(len(sa) - 2)), a)  # (..., 1, n) @ (..., n, k)
        have_a, have_b = sa, sa[:-2] + (1, sb[0])
    else:
        da = matmul(g, matrix_transpose(b, len(sb)))
        db = matmul(matrix_transpose(a, len(sa)), g)
        batch = tuple(np.broadcast_shapes(sa[:-2], sb[:-2]))
        have_a, have_b = batch + sa[-2:], batch + sb[-2:]
    return sum_back(da, have_a, sa), sum_back(db, have_b, sb)


def matrix_transpose(a: sp.Expr, ndim: int) -> sp.Expr:
    """``a`` with its last two axes swapped (NumPy's ``a.mT``), ``a`` of ``ndim`` axes."""
    if ndim <= 2:
        return transpose(a)
    axes = list(range(ndim))
    axes[-2:] = axes[-1], axes[-2]
    return permute_dims(a, sp.Tuple(*axes))


def sum_back(g: sp.Expr, have: Shape, want: Shape) -> sp.Expr:
    """``g``, of shape ``have``, summed to ``want`` over the axes broadcasting added or stretched."""
    lead = len(have) - len(want)
    stretched = tuple(i for i, n in enumerate(want) if n == 1 and have[lead + i] != 1)
    if lead:
        g = reduce_sum(g, sp.Tuple(*range(lead)), sp.false)
    if stretched:
        g = reduce_sum(g, sp.Tuple(*stretched), sp.true)
    return g


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


class permute_dims(ArrayFunction):
    """``permute_dims(a, axes)``: axis i of the result is axis ``axes[i]`` of ``a``
    (NumPy's ``np.transpose(a, axes)``; ``swapaxes`` and ``a.mT`` are permutations too)."""

    nargs = 2

    def array_shape(self, *shapes: Shape) -> Shape:
        (shape,) = shapes
        axes = tuple(int(a) for a in self.args[1])
        if sorted(axes) != list(range(len(shape))):
            raise ShapeError(f"transpose: axes {axes} are not a permutation of the "
                             f"{len(shape)} axes of shape {tuple(shape)}")
        return tuple(shape[a] for a in axes)

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        axes = [int(a) for a in self.args[1]]
        return (permute_dims(g, sp.Tuple(*(axes.index(i) for i in range(len(axes))))),)

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return _obj(np.transpose(values[0], tuple(int(a) for a in self.args[1])))

    def _sympystr(self, printer: Any) -> str:
        return f"transpose({printer._print(self.args[0])}, {decode_shape(self.args[1])})"

    def _latex(self, printer: Any) -> str:
        operand = printer._print(self.args[0])
        return rf"\operatorname{{transpose}}\left({operand}, {decode_shape(self.args[1])}\right)"


def reshaped(op: str, shape: Shape, target: Shape) -> Shape:
    """``target`` with its one ``-1`` worked out from ``shape``'s size, or a ShapeError.

    Sizes may be named dimensions: ``(N, 3, 4)`` into ``(N, -1)`` is ``(N, 12)``;
    what is left for ``-1`` must be a size or one named dimension.
    """
    total = size(shape)
    unknown = [i for i, n in enumerate(target) if n == -1]
    if len(unknown) > 1 or any(not named(n) and n < -1 for n in target):
        raise ShapeError(f"{op}: new shape {tuple(target)}: sizes are positive, with at most one -1")
    known = size(tuple(n for n in target if n != -1))
    left = sp.cancel(sp.sympify(total) / known) if unknown and known != 0 else None
    if left is not None and ((left.is_Integer and left >= 0) or named(left)):
        return tuple((left if named(left) else int(left)) if n == -1 else n for n in target)
    if not unknown and sp.expand(sp.sympify(known) - total) == 0:
        return tuple(target)
    why = "" if left is None or not left.free_symbols else \
        f": -1 would stand for {left}, and a size must be a number or one named dimension"
    raise ShapeError(f"{op}: cannot reshape an array of shape {tuple(shape)} ({total} entries) "
                     f"into shape {tuple(target)}{why}")


class reshape(ArrayFunction):
    """``reshape(a, shape)``: the entries of ``a`` in row-major order, in ``shape``
    (one size may be -1: whatever is left, as in ``reshape(X, (N, -1))``)."""

    nargs = 2

    def array_shape(self, *shapes: Shape) -> Shape:
        return reshaped("reshape", shapes[0], decode_shape(self.args[1]))

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        return (reshape(g, sp.Tuple(*shapes[0])),)

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return _obj(np.reshape(values[0], decode_shape(self.args[1])))

    def _sympystr(self, printer: Any) -> str:
        return f"reshape({printer._print(self.args[0])}, {decode_shape(self.args[1])})"

    def _latex(self, printer: Any) -> str:
        operand = printer._print(self.args[0])
        return rf"\operatorname{{reshape}}\left({operand}, {decode_shape(self.args[1])}\right)"


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


class amax(Reduction):
    """``max(x, axis)``: the largest entry, over ``axis`` or all of them (NumPy's ``np.max``).

    Where several entries tie for the largest, the gradient is shared equally among them
    (as the elementwise max shares it at a tie).
    """

    label = "max"
    extreme = sp.Max

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        mask = equal(self.args[0], self.unreduce(out))
        return (self.unreduce(g) * mask / reduce_sum(mask, self.args[1], sp.true),)

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        x = _obj(values[0])
        axes = self.reduced(x.shape)
        kept = tuple(n for i, n in enumerate(x.shape) if i not in axes)
        rows = np.moveaxis(x, axes, tuple(range(-len(axes), 0))).reshape(kept + (-1,))
        out = np.empty(kept, dtype=object)
        for index in np.ndindex(*kept):
            out[index] = self.extreme(*rows[index])
        return np.expand_dims(out, axes) if self.keepdims else out

    @classmethod
    def eval(cls, x: sp.Expr, axes: sp.Tuple, keepdims: BooleanAtom) -> sp.Expr | None:
        return x if x.is_number and len(axes) == 0 else None

    @staticmethod
    def kink(x: sp.Expr, axes: sp.Tuple, keepdims: BooleanAtom) -> sp.Expr:
        """Each entry's gap to the largest: its signs change where the largest entry changes."""
        return x - amax(x, axes, sp.true)


class amin(amax):
    """``min(x, axis)``: the smallest entry, over ``axis`` or all of them (NumPy's ``np.min``)."""

    label = "min"
    extreme = sp.Min

    @staticmethod
    def kink(x: sp.Expr, axes: sp.Tuple, keepdims: BooleanAtom) -> sp.Expr:
        return x - amin(x, axes, sp.true)


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
        return tuple(n if named(n) else int(n) for n in self.args[1])

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


class sum_to(sp.Function):
    """``sum_to(g, (2, 1), (3, 2, 4))``: sum ``g``, of the third shape, back to the second.

    Broadcasting stretched an operand to its consumer's shape; its gradient is
    summed over the stretched axes.
    """

    nargs = 3

    def axes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(leading axes to sum away, axes to sum keeping their dimension)."""
        target, source = (tuple(self.args[1]), tuple(self.args[2]))
        lead = len(source) - len(target)
        kept = tuple(i for i, n in enumerate(target) if n == 1 and source[lead + i] != 1)
        return tuple(range(lead)), kept

    def array_shape(self, *shapes: Shape) -> Shape:
        return tuple(n if named(n) else int(n) for n in self.args[1])

    @property
    def operands(self) -> tuple[sp.Expr, ...]:
        return self.args[:1]

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        return (broadcast_to(g, self.args[2]),)

    def explicit(self, value: np.ndarray) -> np.ndarray:
        lead, kept = self.axes()
        total = np.sum(np.asarray(value, dtype=object), axis=lead) if lead else value
        return np.sum(total, axis=kept, keepdims=True) if kept else total


class onehot(ArrayFunction):
    """``onehot(y, C)``: row i is the unit vector e_{y[i]} of length C."""

    nargs = 2

    def array_shape(self, *shapes: Shape) -> Shape:
        classes = self.args[1]
        return tuple(shapes[0]) + (classes if named(classes) else int(classes),)

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return np.eye(int(self.args[1]), dtype=int).astype(object)[np.asarray(values[0], dtype=int)]

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr | None, ...]:
        return (None,)  # labels get no gradient


class eye(ArrayFunction):
    """``eye(k)``: the k × k identity, the directions of a whole Jacobian (:mod:`symgrad.jacobians`)."""

    nargs = 1
    operands_count = 0

    def array_shape(self, *shapes: Shape) -> Shape:
        return (int(self.args[0]), int(self.args[0]))

    def vjp(self, g: sp.Expr, out: sp.Expr, shapes: tuple[Shape, ...]) -> tuple[sp.Expr, ...]:
        return ()

    def explicit(self, *values: np.ndarray) -> np.ndarray:
        return np.eye(int(self.args[0]), dtype=int).astype(object)

    def _numpycode(self, printer: Any) -> str:
        return f"np.eye({int(self.args[0])})"


class equal(sp.Function):
    """``equal(a, b)``: 1 where ``a == b`` entry by entry, else 0 (the ties of a max)."""

    nargs = 2

    @classmethod
    def eval(cls, a: sp.Expr, b: sp.Expr) -> sp.Expr | None:
        if a.is_number and b.is_number:
            return sp.S.One if (a - b).is_zero else sp.S.Zero
        return None

    def _eval_is_real(self) -> bool:
        return True

    def _numpycode(self, printer: Any) -> str:  # numbers, not booleans: -mask*x must negate
        return f"np.where({printer._print(self.args[0])} == {printer._print(self.args[1])}, 1.0, 0.0)"

    def _latex(self, printer: Any) -> str:
        return rf"\left[{printer._print(self.args[0])} = {printer._print(self.args[1])}\right]"


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
        return broadcast(*parts)
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
