"""Python callables → graph, by calling them with values that record each operation.

Inside a traced function, use the arithmetic operators, symgrad's functions
(``sg.exp``, ``sg.sigmoid``, …) or NumPy's (``np.exp``, ``np.maximum(x, 0)``,
``np.sum(x, axis=1)``, ``x.T``, ``x @ W``): each call on a traced value adds
one node.  NumPy's functions reach the traced values through NumPy's dispatch
protocols (``__array_ufunc__``, ``__array_function__``); :data:`NUMPY_UFUNCS`
and :data:`NUMPY_FUNCTIONS` say which op each one records, and a NumPy
function symgrad has no op for is a :class:`TracingError` naming the spelling
to use instead.  symgrad's functions applied to SymPy expressions return SymPy
expressions.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import sympy as sp

from .build import Builder, Operand, Ref
from .dims import Shape
from .errors import EvaluationError, ShapeError, SymgradError, TracingError
from .ops import OPS, Op


class Traced:
    """A value inside a traced function: it records the operations applied to it.

    NumPy's functions record the same nodes as symgrad's:

    >>> import numpy as np
    >>> import symgrad as sg
    >>> print(sg.graph(lambda X, W: np.mean(np.maximum(X @ W, 0)), shapes={"X": (4, 3), "W": (3, 2)}))
    graph(X: 4×3, W: 3×2): q3
      q1 = X @ W        [@]          4×2
      q2 = Max(q1, 0)   [max(x,0)]   4×2
      q3 = mean(q2)     [mean]       scalar
      return q3
    """

    __slots__ = ("builder", "operand")

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
    def shape(self) -> Shape:
        """The shape of the value (so ``x.reshape(x.shape[0], -1)`` flattens a batch)."""
        return self.builder.shape_of(self.operand)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TracingError("len() of a scalar traced value; give the input a shape with shapes=")
        if not isinstance(self.shape[0], int):  # Python wants an int; a named size is a symbol
            raise TracingError(f"len() of a traced value whose first dimension is named "
                               f"({self.shape[0]}); use x.shape[0]")
        return self.shape[0]

    def reshape(self, *shape: Any) -> Traced:
        """``x.reshape(N, -1)`` or ``x.reshape((N, -1))``, as in NumPy."""
        return reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes: Any) -> Traced:
        """``x.transpose()`` reverses the axes; ``x.transpose(0, 2, 1)`` permutes them."""
        return transpose(self, (axes[0] if len(axes) == 1 else axes) or None)

    def swapaxes(self, axis1: int, axis2: int) -> Traced:
        return swapaxes(self, axis1, axis2)

    def sum(self, axis: Any = None, dtype: None = None, out: None = None, keepdims: bool = False) -> Traced:
        """``x.sum(axis=1)``: the ``sum`` node, as ``np.sum``."""
        return _reduce(np.sum, self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def mean(self, axis: Any = None, dtype: None = None, out: None = None, keepdims: bool = False) -> Traced:
        """``x.mean()``: the ``mean`` node, as ``np.mean``."""
        return _reduce(np.mean, self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Traced:
        return apply("amax", self, axis=axis, keepdims=keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Traced:
        return apply("amin", self, axis=axis, keepdims=keepdims)

    def flatten(self) -> Traced:
        """All entries in one axis, as ``x.flatten()`` in NumPy."""
        return reshape(self, -1)

    def dot(self, other: Any) -> Any:
        """``x.dot(W)``, as ``np.dot(x, W)``."""
        return _dot(self, other)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """NumPy's ufuncs (``np.exp(x)``, ``np.maximum(x, 0)``, ``array * x``) record their op."""
        name = f"np.{ufunc.__name__}"
        if method != "__call__":
            hint = "; use np.sum(x, axis=...)" if ufunc is np.add and method == "reduce" else ""
            raise TracingError(f"{name}.{method}() cannot be traced{hint}")
        _refuse_keywords(name, kwargs)
        if ufunc in NUMPY_UFUNCS:
            return apply(NUMPY_UFUNCS[ufunc], *inputs)
        if ufunc in NUMPY_GATES:
            return NUMPY_GATES[ufunc](*inputs)
        raise TracingError(_unsupported(name))

    def __array_function__(self, func: Callable[..., Any], types: Any, args: Any, kwargs: Any) -> Any:
        """NumPy's other functions (``np.sum``, ``np.mean``, ``np.dot``, …) record their op."""
        handler = _ARRAY_FUNCTIONS.get(func)
        if handler is None:
            module = getattr(func, "__module__", "numpy") or "numpy"
            prefix = "np.linalg." if module.endswith("linalg") else "np."
            raise TracingError(_unsupported(prefix + getattr(func, "__name__", str(func))))
        return handler(*args, **kwargs)

    def __getitem__(self, index: Any) -> Any:
        raise TracingError(
            "indexing a traced value (x[...]) cannot be traced; to take each row's entry at its "
            "label, use sg.pick(s, y); to reduce, use np.sum or np.mean"
        )

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

    def _sympy_(self) -> sp.Expr:
        # not a SymPy value: SymPy's operators then return NotImplemented, and Python asks
        # this value's own (sympy_number + traced is traced.__radd__, as for a float)
        raise sp.SympifyError(self)

    def __float__(self) -> float:
        raise TracingError(
            "a traced value has no number yet (as math.exp or float() would need); "
            "use NumPy's or symgrad's functions inside the function, np.exp(x) or sg.exp(x)"
        )

    def __repr__(self) -> str:
        return f"<traced {self.operand}>"


def _operand(builder: Builder, value: Any) -> Operand:
    if isinstance(value, Traced):
        if value.builder is not builder:
            raise TracingError("a traced value from another trace was used")
        return value.operand
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        value = value.item()  # a NumPy scalar is a number
    elif isinstance(value, np.ndarray):
        raise TracingError(
            f"a NumPy array of shape {value.shape} cannot be a constant of the graph; "
            "make it an input (a parameter of the function) and give its shape with shapes="
        )
    try:
        return builder.constant(value)
    except EvaluationError:  # a number, but not one a float can hold: the reason says which
        raise
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
# --------------------------------------------------------------------------
# NumPy's spellings of the ops


NUMPY_UFUNCS: dict[np.ufunc, str] = {
    # NumPy ufunc: the op it records (np.abs is np.absolute, np.true_divide is np.divide)
    np.add: "add", np.subtract: "sub", np.multiply: "mul", np.divide: "div",
    np.power: "pow", np.float_power: "pow", np.matmul: "matmul",
    np.exp: "exp", np.log: "log", np.sqrt: "sqrt", np.sin: "sin", np.cos: "cos",
    np.tanh: "tanh", np.logaddexp: "logaddexp", np.absolute: "abs",
    np.maximum: "max", np.minimum: "min",
}

NUMPY_GATES: dict[np.ufunc, Callable[..., Any]] = {
    # ufuncs that are the lecture's gates with one constant operand
    np.negative: lambda x: apply("mul", -1, x),
    np.positive: lambda x: x,
    np.square: lambda x: apply("pow", x, 2),
    np.reciprocal: lambda x: apply("div", 1, x),
}


def _refuse_keywords(name: str, kwargs: dict[str, Any], allowed: tuple[str, ...] = ()) -> None:
    extra = sorted(k for k, v in kwargs.items() if k not in allowed and v is not None)
    if extra:
        takes = f"only {', '.join(k + '=' for k in allowed)}" if allowed else "no keywords"
        raise TracingError(f"{name}(..., {extra[0]}=...) cannot be traced; {name} takes {takes} here")


def _reduce(func: Callable[..., Any], a: Any, axis: Any = None, dtype: None = None, out: None = None,
            keepdims: Any = False, **rest: Any) -> Any:
    """``np.sum`` / ``np.mean`` (and the methods): the op's node with its axis and keepdims."""
    name = f"np.{func.__name__}"
    _refuse_keywords(name, {"dtype": dtype, "out": out, **rest}, ("axis", "keepdims"))
    params: dict[str, Any] = {}
    if axis is not None:
        params["axis"] = tuple(map(operator.index, axis)) if isinstance(axis, tuple) else operator.index(axis)
    if keepdims:
        params["keepdims"] = True
    return apply(NUMPY_FUNCTIONS[func], a, **params)


def _transpose(a: Any, axes: Any = None) -> Any:
    return transpose(a, axes)


def _reshape(a: Any, shape: Any = None, order: Any = "C", **rest: Any) -> Any:
    _refuse_keywords("np.reshape", {"order": None if order == "C" else order, **rest})
    return reshape(a, shape)


def _dot(a: Any, b: Any, out: None = None) -> Any:
    """``np.dot``: ``@`` on vectors and matrices, ``*`` when an operand is a scalar."""
    _refuse_keywords("np.dot", {"out": out})
    if any((v.ndim if isinstance(v, Traced) else np.ndim(v)) > 2 for v in (a, b)):
        raise TracingError("np.dot of stacks of matrices is not a matrix product of each; write a @ b "
                           "(np.matmul), which symgrad traces")
    if any(np.ndim(v) == 0 if not isinstance(v, Traced) else v.ndim == 0 for v in (a, b)):
        return apply("mul", a, b)
    return apply("matmul", a, b)


def _norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    if ord is not None or axis is not None or keepdims:
        raise TracingError(
            "np.linalg.norm(x, ord=, axis=, keepdims=) cannot be traced; np.linalg.norm(x) (sg.norm, "
            "the Euclidean norm of every entry) can, and np.sqrt(np.sum(x**2, axis=k)) gives one per axis"
        )
    from .composed import norm

    return norm(x)


NUMPY_FUNCTIONS: dict[Callable[..., Any], str] = {
    # NumPy function (through __array_function__): the op it records
    np.sum: "sum", np.mean: "mean", np.transpose: "transpose", np.dot: "matmul",
    np.max: "amax", np.amax: "amax", np.min: "amin", np.amin: "amin",
    np.reshape: "reshape",
}

_ARRAY_FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    np.sum: lambda *a, **k: _reduce(np.sum, *a, **k),
    np.mean: lambda *a, **k: _reduce(np.mean, *a, **k),
    np.max: lambda *a, **k: _reduce(np.max, *a, **k),
    np.amax: lambda *a, **k: _reduce(np.amax, *a, **k),
    np.min: lambda *a, **k: _reduce(np.min, *a, **k),
    np.amin: lambda *a, **k: _reduce(np.amin, *a, **k),
    np.transpose: _transpose,
    np.reshape: _reshape,
    np.swapaxes: lambda a, axis1, axis2: swapaxes(a, axis1, axis2),
    np.dot: _dot,
    np.linalg.norm: _norm,
    np.shape: lambda a: a.shape,
    np.ndim: lambda a: a.ndim,
}

# The ops NumPy has no function for: the symgrad spelling to use
NOT_IN_NUMPY: dict[str, str] = {
    "sigmoid": "sg.sigmoid(x)", "relu": "sg.relu(x)", "softplus": "sg.softplus(x)",
    "logsigmoid": "sg.logsigmoid(x)", "logsumexp": "sg.logsumexp(x, axis=k)", "pick": "sg.pick(s, y)",
}

# NumPy functions without an op, and how to write them
NUMPY_HINTS: dict[str, str] = {
    "np.log1p": "np.log(1 + x)", "np.expm1": "np.exp(x) - 1", "np.exp2": "2**x",
    "np.log2": "np.log(x) / np.log(2)", "np.log10": "np.log(x) / np.log(10)",
    "np.tan": "np.sin(x) / np.cos(x)", "np.sinh": "(np.exp(x) - np.exp(-x)) / 2",
    "np.cosh": "(np.exp(x) + np.exp(-x)) / 2", "np.cbrt": "x ** (1/3), for x > 0",
    "np.clip": "np.minimum(np.maximum(x, lo), hi)",
    "np.where": "np.maximum, np.minimum, np.abs or sg.relu (branching on values cannot be traced)",
    "np.heaviside": "sg.relu, whose derivative is the step",
    "np.sign": "np.abs, whose derivative is the sign",
    "np.outer": "a @ b, with a of shape (n, 1) and b of shape (1, m)",
    "np.einsum": "@ (np.matmul), .T and np.sum(..., axis=k)",
    "np.tensordot": "@ (np.matmul), .T and np.sum(..., axis=k)",
    "np.average": "np.mean(x, axis=k)",
    "np.prod": "the product written out, a * b * c",
    **{f"np.{c}": "np.maximum, np.minimum, np.abs or sg.relu (comparisons cannot be traced)"
       for c in ("greater", "greater_equal", "less", "less_equal", "equal", "not_equal")},
}


def numpy_spellings() -> list[str]:
    """The NumPy functions and methods a traced value understands, by name.

    >>> numpy_spellings()[:3], numpy_spellings()[-2:]
    (['np.abs', 'np.absolute', 'np.add'], ['x.dot', 'x @ W'])
    """
    functions: list[Any] = [*NUMPY_UFUNCS, *NUMPY_GATES, *NUMPY_FUNCTIONS]
    names = {f"np.{f.__name__}" for f in functions}
    names |= {"np.abs", "np.linalg.norm", "np.shape", "np.ndim"}
    return sorted(names) + ["x.T", "x.sum", "x.mean", "x.dot", "x @ W"]


def _unsupported(name: str) -> str:
    """The message for a NumPy function symgrad has no op for, naming what to write instead."""
    if name in NUMPY_HINTS:
        return f"{name} has no symgrad operation; write {NUMPY_HINTS[name]}"
    return (f"{name} has no symgrad operation; traced values take {', '.join(numpy_spellings())}, "
            f"and symgrad's own {', '.join(NOT_IN_NUMPY.values())}")


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
