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
from .errors import SymgradError, TracingError
from .ops import OPS


class Traced:
    """A value inside a traced function: it records the operations applied to it.

    NumPy's functions record the same nodes as symgrad's:

    >>> import numpy as np
    >>> import symgrad as sg
    >>> print(sg.graph(lambda X, W: np.mean(np.maximum(X @ W, 0)), shapes={"X": (4, 3), "W": (3, 2)}))
    graph(X (4, 3), W (3, 2)): q3
      q1 = X @ W        [@]          (4, 2)
      q2 = Max(q1, 0)   [max(x,0)]   (4, 2)
      q3 = mean(q2)     [mean]       ()
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
    def shape(self) -> tuple[int, ...]:
        """The shape of the value, as NumPy's ``x.shape``: ``()`` for a scalar."""
        return self.builder.specs[self.operand.index].shape if isinstance(self.operand, Ref) else ()

    @property
    def ndim(self) -> int:
        """The number of axes, as NumPy's ``x.ndim``."""
        return len(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TracingError("len() of a scalar traced value; give the input a shape with shapes=")
        return self.shape[0]

    def sum(self, axis: Any = None, dtype: None = None, out: None = None, keepdims: bool = False) -> Traced:
        """``x.sum(axis=1)``: the ``sum`` node, as ``np.sum``."""
        return _reduce(np.sum, self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def mean(self, axis: Any = None, dtype: None = None, out: None = None, keepdims: bool = False) -> Traced:
        """``x.mean()``: the ``mean`` node, as ``np.mean``."""
        return _reduce(np.mean, self, axis=axis, dtype=dtype, out=out, keepdims=keepdims)

    def transpose(self) -> Traced:
        """``x.transpose()``, the same as ``x.T``."""
        return apply("transpose", self)

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
        b = traced.builder
        return Traced(b, b.apply(name, *[_operand(b, a) for a in args], **params))
    if all(isinstance(a, (int, float, sp.Expr)) and not isinstance(a, bool) for a in args):
        op = OPS[name]
        return op.sympy(*[sp.sympify(a) for a in args], *op.param_args(**params))
    shown = ", ".join(type(a).__name__ for a in args)
    raise SymgradError(f"{name}() expects traced values, numbers or SymPy expressions, got {shown}")


def _function(name: str) -> Callable[..., Any]:
    op = OPS[name]

    def f(*args: Any, **params: Any) -> Any:
        if len(args) != op.arity:
            raise SymgradError(f"{name}() takes {op.arity} argument(s), got {len(args)}")
        return apply(name, *args, **params)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"symgrad's {name}: records a '{op.label}' node on traced values, builds SymPy otherwise."
    if op.params:
        f.__doc__ += f" Keywords: {', '.join(op.params)}."
    return f


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
matmul = _function("matmul")
transpose = _function("transpose")
reduce_sum = _function("sum")
mean = _function("mean")
logsumexp = _function("logsumexp")
pick = _function("pick")


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
    if axes is not None:
        raise TracingError("np.transpose(x, axes=...) cannot be traced; use x.T, which reverses the axes")
    return apply("transpose", a)


def _dot(a: Any, b: Any, out: None = None) -> Any:
    """``np.dot``: ``@`` on vectors and matrices, ``*`` when an operand is a scalar."""
    _refuse_keywords("np.dot", {"out": out})
    if any(np.ndim(v) == 0 if not isinstance(v, Traced) else v.ndim == 0 for v in (a, b)):
        return apply("mul", a, b)
    return apply("matmul", a, b)


def _norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
    if ord is not None or axis is not None or keepdims:
        raise TracingError(
            "np.linalg.norm(x, ord=, axis=, keepdims=) cannot be traced; np.linalg.norm(x) (sg.norm, "
            "the Euclidean norm of every entry) can, and np.sqrt(np.sum(x**2, axis=k)) gives one per axis"
        )
    from .derived import norm

    return norm(x)


NUMPY_FUNCTIONS: dict[Callable[..., Any], str] = {
    # NumPy function (through __array_function__): the op it records
    np.sum: "sum", np.mean: "mean", np.transpose: "transpose", np.dot: "matmul",
}

_ARRAY_FUNCTIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    np.sum: lambda *a, **k: _reduce(np.sum, *a, **k),
    np.mean: lambda *a, **k: _reduce(np.mean, *a, **k),
    np.transpose: _transpose,
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
    "np.max": "np.maximum(a, b) for two operands, or sg.logsumexp(x, axis=k) for a smooth maximum",
    "np.min": "np.minimum(a, b) for two operands",
    "np.amax": "np.maximum(a, b) for two operands", "np.amin": "np.minimum(a, b) for two operands",
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

    >>> numpy_spellings()[:4], numpy_spellings()[-2:]
    (['np.abs', 'np.absolute', 'np.add', 'np.cos'], ['x.dot', 'x @ W'])
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
