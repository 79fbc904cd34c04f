"""SymPy expressions → NumPy source text, spelled as the op table says.

Every backend that turns SymPy into numbers goes through :func:`numpy_code`:
the interpreter (numbers on every node) and the code generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.numpy import NumPyPrinter as _SymPyNumPyPrinter
from sympy.printing.precedence import PRECEDENCE

from .ops import OPS

TEMPLATES: dict[type, str] = {
    cls: op.numpy for op in OPS.values()
    if (cls := op.function_class) is not None and op.numpy is not None
}
# Binary functions SymPy lets take more operands (Max, Min, logaddexp): printed nested.
NARY: frozenset[type] = frozenset(
    cls for cls, op in ((op.function_class, op) for op in OPS.values()) if cls and op.arity == 2
)


class _Arg:
    """A printed operand for a template: ``{0}`` is bare, ``{0:p}`` parenthesized if needed."""

    def __init__(self, bare: str, wrapped: str):
        self.bare, self.wrapped = bare, wrapped

    def __format__(self, spec: str) -> str:
        return self.wrapped if spec == "p" else self.bare


class NumPyPrinter(_SymPyNumPyPrinter):
    """SymPy's NumPy printer with ``np.`` names and symgrad's op spellings."""

    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("numpy."):
            return "np." + fqn[len("numpy."):]
        return super()._module_format(fqn, register)

    def _print(self, expr: Any, **kwargs: Any) -> str:
        template = TEMPLATES.get(type(expr))
        if template is None:
            return super()._print(expr, **kwargs)
        args = expr.args
        if len(args) > 2 and type(expr) in NARY:  # n-ary: nest
            return self._print(type(expr)(type(expr)(*args[:-1]), args[-1], evaluate=False))
        printed = [_Arg(self._print(a), self.parenthesize(a, PRECEDENCE["Mul"])) for a in args]
        return template.format(*printed)

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exponent = expr.base, expr.exp
        if exponent == -1:
            return f"1/{self._operand(base)}"
        if exponent == sp.S.Half:
            return f"np.sqrt({self._print(base)})"
        if exponent == -sp.S.Half:
            return f"1/np.sqrt({self._print(base)})"
        return f"{self._operand(base)}**{self._operand(exponent)}"

    def _operand(self, e: sp.Expr) -> str:
        """An operand of ** or 1/…, in parentheses unless it is a name, a call or a plain number."""
        text = self._print(e)
        simple = (
            e.is_Symbol
            or isinstance(e, sp.Function)
            or (isinstance(e, (sp.Integer, sp.Float)) and e >= 0)
        )
        return text if simple else f"({text})"

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        value_at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"np.heaviside({self._print(expr.args[0])}, {self._print(sp.Float(value_at_zero))})"

    def _print_sum_to(self, expr: sp.Function) -> str:
        lead, kept = expr.axes()  # type: ignore[attr-defined]
        text = self._print(expr.args[0])
        if lead:
            text = f"np.sum({text}, axis={lead[0] if len(lead) == 1 else lead})"
        if kept:
            text = f"np.sum({text}, axis={kept}, keepdims=True)"
        return text

    def _print_sign(self, expr: sp.sign) -> str:
        return f"np.sign({self._print(expr.args[0])})"


def numpy_code(expr: sp.Expr) -> str:
    """NumPy source text for ``expr``.

    >>> import sympy as sp
    >>> from symgrad.ops import sigmoid
    >>> a = sp.Symbol("a")
    >>> numpy_code(sigmoid(a) * (1 - sigmoid(a)))
    '(1 - np.exp(-np.logaddexp(0, -a)))*np.exp(-np.logaddexp(0, -a))'
    """
    return NumPyPrinter({"fully_qualified_modules": True}).doprint(expr)


def evaluate(expr: sp.Expr, env: Mapping[str, Any]) -> np.ndarray:
    """The value of ``expr`` with NumPy, symbols taken from ``env`` by name."""
    code = compile(numpy_code(expr), "<symgrad>", "eval")
    return np.asarray(eval(code, {"np": np, "__builtins__": {}}, dict(env)), dtype=float)
