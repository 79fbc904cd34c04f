"""Python callables → graph, by calling them with values that record each operation.

Inside a traced function, use the arithmetic operators and symgrad's functions
(``sg.exp``, ``sg.sigmoid``, …); each call on a traced value adds one node.
The same functions applied to SymPy expressions return SymPy expressions.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

import sympy as sp

from .build import Builder, Operand, Ref
from .errors import ShapeError, SymgradError, TracingError
from .ops import OPS, Op


class Traced:
    """A value inside a traced function: it records the operations applied to it."""

    __slots__ = ("builder", "operand")
    __array_ufunc__ = None  # make NumPy hand ``array * traced`` back to Traced

    def __init__(self, builder: Builder, operand: Operand):
        self.builder = builder
        self.operand = operand

    def _apply(self, name: str, *others: Any, reverse: bool = False) -> Traced:
        args = (self, *others)
        return apply(name, *(reversed(args) if reverse else args))

    def __add__(self, other: Any) -> Traced: return self._apply("add", other)
    def __radd__(self, other: Any) -> Traced: return self._apply("add", other, reverse=True)
    def __sub__(self, other: Any) -> Traced: return self._apply("sub", other)
    def __rsub__(self, other: Any) -> Traced: return self._apply("sub", other, reverse=True)
    def __mul__(self, other: Any) -> Traced: return self._apply("mul", other)
    def __rmul__(self, other: Any) -> Traced: return self._apply("mul", other, reverse=True)
    def __truediv__(self, other: Any) -> Traced: return self._apply("div", other)
    def __rtruediv__(self, other: Any) -> Traced: return self._apply("div", other, reverse=True)
    def __pow__(self, other: Any) -> Traced: return self._apply("pow", other)
    def __rpow__(self, other: Any) -> Traced: return self._apply("pow", other, reverse=True)
    def __matmul__(self, other: Any) -> Traced: return self._apply("matmul", other)
    def __rmatmul__(self, other: Any) -> Traced: return self._apply("matmul", other, reverse=True)
    def __neg__(self) -> Traced: return apply("mul", -1, self)
    def __pos__(self) -> Traced: return self
    def __abs__(self) -> Traced: return self._apply("abs")

    @property
    def T(self) -> Traced:
        """The transpose, as ``x.T`` in NumPy."""
        return apply("transpose", self)

    @property
    def mT(self) -> Traced:
        """The last two axes swapped, as ``x.mT`` in NumPy (a stack of matrices, each transposed)."""
        return matrix_transpose(self)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the value (so ``x.reshape(x.shape[0], -1)`` flattens a batch)."""
        return self.builder.shape_of(self.operand)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def reshape(self, *shape: Any) -> Traced:
        """``x.reshape(N, -1)`` or ``x.reshape((N, -1))``, as in NumPy."""
        return reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes: Any) -> Traced:
        """``x.transpose()`` reverses the axes; ``x.transpose(0, 2, 1)`` permutes them."""
        return transpose(self, (axes[0] if len(axes) == 1 else axes) or None)

    def swapaxes(self, axis1: int, axis2: int) -> Traced:
        return swapaxes(self, axis1, axis2)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Traced:
        return apply("sum", self, axis=axis, keepdims=keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Traced:
        return apply("mean", self, axis=axis, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Traced:
        return apply("amax", self, axis=axis, keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Traced:
        return apply("amin", self, axis=axis, keepdims=keepdims)

    def flatten(self) -> Traced:
        """All entries in one axis, as ``x.flatten()`` in NumPy."""
        return reshape(self, -1)

    def __bool__(self) -> bool:
        raise TracingError(
            "a traced value was used as a truth value (in an if, while, and/or, or a comparison); "
            "branching on values cannot be traced; use sg.max, sg.min, sg.relu or sg.abs instead"
        )

    def _compare(self, other: Any) -> bool:
        raise TracingError(
            "traced values cannot be compared; use sg.max, sg.min, sg.relu or sg.abs instead"
        )

    __lt__ = __le__ = __gt__ = __ge__ = _compare

    def __float__(self) -> float:
        raise TracingError("a traced value has no number yet; keep it symbolic inside the function")

    def __repr__(self) -> str:
        return f"<traced {self.operand}>"


def _operand(builder: Builder, value: Any) -> Operand:
    if isinstance(value, Traced):
        if value.builder is not builder:
            raise TracingError("a traced value from another trace was used")
        return value.operand
    try:
        return builder.constant(value)
    except SymgradError:
        raise TracingError(
            f"cannot combine a traced value with {type(value).__name__} {value!r}; "
            "use numbers, traced values and symgrad functions"
        ) from None


def apply(name: str, *args: Any, **params: Any) -> Any:
    """Apply op ``name``: records a node on traced values, builds SymPy otherwise.

    ``params`` are the op's keyword parameters, such as ``axis=0``.
    """
    traced = next((a for a in args if isinstance(a, Traced)), None)
    if traced is not None:
        _op(name)
        b = traced.builder
        return Traced(b, b.apply(name, *[_operand(b, a) for a in args], **params))
    if all(isinstance(a, (int, float, sp.Expr)) and not isinstance(a, bool) for a in args):
        op = _op(name)
        return op.sympy(*[sp.sympify(a) for a in args], *op.param_args(**params))
    shown = ", ".join(type(a).__name__ for a in args)
    raise SymgradError(f"{name}() expects traced values, numbers or SymPy expressions, got {shown}")


def _op(name: str) -> Op:
    if name not in OPS:
        raise SymgradError(f"the op {name!r} is not defined (any more)")
    return OPS[name]


class OpFunction:
    """An op of the table as a function: it records a node on traced values, builds SymPy otherwise.

    ``sg.exp``, ``sg.sigmoid``, … are these, and so is what :func:`symgrad.define_op` returns.
    """

    def __init__(self, name: str):
        op = _op(name)
        self.name = self.__name__ = self.__qualname__ = name
        self.__doc__ = (f"symgrad's {name}: records a '{op.label}' node on traced values, "
                        "builds SymPy otherwise.")
        if op.params:
            self.__doc__ += f" Keywords: {', '.join(op.params)}."

    @property
    def op(self) -> Op:
        """The op's row in the table."""
        return _op(self.name)

    def __call__(self, *args: Any, **params: Any) -> Any:
        arity = self.op.arity
        if len(args) != arity:
            raise SymgradError(f"{self.name}() takes {arity} argument(s), got {len(args)}")
        return apply(self.name, *args, **params)

    def __repr__(self) -> str:
        return f"<symgrad op {self.name}>"


_function = OpFunction


exp = _function("exp")
log = _function("log")
sqrt = _function("sqrt")
sin = _function("sin")
cos = _function("cos")
tanh = _function("tanh")
sigmoid = _function("sigmoid")
relu = _function("relu")
softplus = _function("softplus")
logsigmoid = _function("logsigmoid")
logaddexp = _function("logaddexp")
absolute = _function("abs")
maximum = _function("max")
minimum = _function("min")
amax = _function("amax")
amin = _function("amin")


def _max_or_min(name: str, elementwise: Callable[..., Any], reduction: Callable[..., Any]
                ) -> Callable[..., Any]:
    def f(a: Any, *others: Any, axis: Any = None, keepdims: bool = False) -> Any:
        if not others:
            return reduction(a, axis=axis, keepdims=keepdims)
        if axis is not None or keepdims:
            raise SymgradError(f"{name}(a, b) is elementwise; {name}(a, axis=k, keepdims=True) "
                               "reduces one operand")
        return elementwise(a, *others)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"symgrad's {name}: of two operands entry by entry (as np.{name}imum), or of "
                 f"one operand's entries over ``axis`` (as np.{name}).")
    return f


max_ = _max_or_min("max", maximum, amax)
min_ = _max_or_min("min", minimum, amin)
matmul = _function("matmul")
reduce_sum = _function("sum")
mean = _function("mean")
logsumexp = _function("logsumexp")
pick = _function("pick")


def _ndim(x: Any, name: str) -> int:
    if isinstance(x, Traced):
        return x.ndim
    raise SymgradError(f"{name}() needs the shape of its operand: use it inside a traced "
                       "function or a string, or give transpose(x, axes) with every axis")


def _permutation(x: Any, axes: Any, name: str) -> tuple[int, ...]:
    """``axes`` as non-negative ints (negative axes count from the end, as in NumPy)."""
    try:
        axes = tuple(operator.index(a) for a in axes)
    except TypeError:
        raise SymgradError(f"{name}(): axes {axes!r} are not a tuple of integers") from None
    if all(a >= 0 for a in axes):
        return axes
    ndim = _ndim(x, name)
    return tuple(a % ndim if -ndim <= a < 0 else a for a in axes)


def transpose(x: Any, axes: Any = None) -> Any:
    """``transpose(x)`` (``x.T``) reverses the axes; ``transpose(x, axes)`` permutes them,
    as ``np.transpose``: axis i of the result is axis ``axes[i]`` of ``x``."""
    if axes is None:
        return apply("transpose", x)
    return apply("permute_dims", x, axes=_permutation(x, axes, "transpose"))


def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    """``x`` with two axes exchanged, as ``np.swapaxes`` (``swapaxes(K, -1, -2)`` = ``K.mT``)."""
    ndim = _ndim(x, "swapaxes")
    i, j = _permutation(x, (axis1, axis2), "swapaxes")
    if not (0 <= i < ndim and 0 <= j < ndim):
        raise ShapeError(f"swapaxes: axes ({axis1}, {axis2}) are out of range "
                         f"({x.builder.describe((x.operand,))})")
    axes = list(range(ndim))
    axes[i], axes[j] = axes[j], axes[i]
    return apply("permute_dims", x, axes=tuple(axes))


def matrix_transpose(x: Any) -> Any:
    """The last two axes swapped (``x.mT``): every matrix of a stack transposed."""
    if _ndim(x, "matrix_transpose") < 2:
        raise ShapeError(f"matrix_transpose (.mT) needs two axes or more "
                         f"({x.builder.describe((x.operand,))})")
    return swapaxes(x, -1, -2)


def reshape(x: Any, shape: Any) -> Any:
    """``x``'s entries in a new ``shape`` (row-major, as ``np.reshape``); one size may be -1:
    ``reshape(X, (N, -1))`` flattens each of N images."""
    return apply("reshape", x, shape=shape)


def trace(fn: Callable[..., Any], builder: Builder):
    """Build a Graph by calling ``fn`` with one traced value per parameter."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        raise TracingError(f"cannot read the parameters of {fn!r}") from None
    names = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TracingError(f"parameter *{p.name} cannot be traced; name every input")
        names.append(p.name)
    if not names:
        raise TracingError(f"{_name(fn)} takes no parameters; inputs are its parameters")
    args = [Traced(builder, builder.input(n)) for n in names]
    try:
        result = fn(*args)
    except SymgradError:
        raise
    except Exception as e:
        raise TracingError(f"{_name(fn)} raised {type(e).__name__} while being traced: {e}") from e
    if isinstance(result, Traced):
        output: Operand = result.operand
    else:
        try:
            output = builder.constant(result)
        except SymgradError:
            raise TracingError(
                f"{_name(fn)} returned {type(result).__name__}; it must return one traced value"
            ) from None
    assert isinstance(output, (Ref, sp.Expr))
    source = "" if _name(fn) == "<lambda>" else f"{_name(fn)}({', '.join(names)})"
    return builder.finish(output, names, source=source)


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__name__", type(fn).__name__)
