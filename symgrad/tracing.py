"""Python callables → graph, by calling them with values that record each operation.

Inside a traced function, use the arithmetic operators and symgrad's functions
(``sg.exp``, ``sg.sigmoid``, …); each call on a traced value adds one node.
The same functions applied to SymPy expressions return SymPy expressions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import sympy as sp

from .build import Builder, Operand, Ref
from .errors import EvaluationError, SymgradError, TracingError
from .ops import OPS


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
