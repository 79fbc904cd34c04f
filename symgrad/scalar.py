"""Scalar code for a compiled graph of scalars: the same lines, spelled for Python floats.

When every input of a compiled function is a Python or NumPy float, NumPy's
per-call overhead (a ufunc dispatch costs about as much as a whole scalar
expression in Python) dominates.  :func:`scalar_body` rewrites the generated
NumPy lines of a function body (their syntax tree, not their text) into lines
for floats:

- ``np.exp``, ``np.log``, ``np.sin``, ... become the :mod:`math` module's
  functions, ``np.abs``/``np.maximum``/``np.minimum`` Python's ``abs``/``max``/``min``;
- the stable sigmoid ``np.exp(-np.logaddexp(0, -a))`` becomes a test of the sign
  of ``a`` and one ``exp`` of a number that is not positive (inline for a name,
  else ``_sigmoid(a)``);
  ``np.logaddexp(0, a)`` becomes ``_softplus(a)``, ``np.logaddexp(a, b)`` ``_logaddexp(a, b)``;
- the tests for a batch of points (``q.__class__ is np.ndarray``) and what they guard go.

Anything else keeps its NumPy spelling, which is right for floats too, only
slower.  Where :mod:`math` refuses a value NumPy would turn into ``nan`` or
``inf`` (``log`` of a negative, an overflowing ``exp``) or Python's division
fails, the scalar lines raise one of :data:`FALLBACK` and the compiled entry
point runs the NumPy lines instead, so both give the same answer then too.
"""

from __future__ import annotations

import ast
import math
from typing import Any

FALLBACK = (ValueError, OverflowError, ZeroDivisionError)

RENAMED = {  # NumPy function -> the scalar function the namespace binds
    "exp": "_exp", "log": "_log", "sin": "_sin", "cos": "_cos", "tan": "_tan", "tanh": "_tanh",
    "sqrt": "_sqrt", "log1p": "_log1p", "expm1": "_expm1", "arctan": "_atan", "arcsin": "_asin",
    "arccos": "_acos", "sinh": "_sinh", "cosh": "_cosh", "abs": "abs", "maximum": "max", "minimum": "min",
}


def _sigmoid(a: float) -> float:
    """σ(a) for a float, by the sign of a: the exp never overflows."""
    if a >= 0.0:
        return 1.0 / (1.0 + math.exp(-a))
    e = math.exp(a)
    return e / (1.0 + e)


def _softplus(a: float) -> float:
    """log(1 + exp(a)) for a float, without overflow."""
    return (a if a > 0.0 else 0.0) + math.log1p(math.exp(-abs(a)))


def _logaddexp(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) for floats, without overflow."""
    top = a if a > b else b
    return top + math.log1p(math.exp(-abs(a - b)))


NAMESPACE: dict[str, Any] = {
    "_exp": math.exp, "_log": math.log, "_sin": math.sin, "_cos": math.cos, "_tan": math.tan,
    "_tanh": math.tanh, "_sqrt": math.sqrt, "_log1p": math.log1p, "_expm1": math.expm1,
    "_atan": math.atan, "_asin": math.asin, "_acos": math.acos, "_sinh": math.sinh, "_cosh": math.cosh,
    "_sigmoid": _sigmoid, "_softplus": _softplus, "_logaddexp": _logaddexp,
}


def _np_call(node: ast.AST, name: str | None = None) -> bool:
    """``node`` calls ``np.<name>`` (any NumPy function when ``name`` is None) positionally."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "np"
            and (name is None or node.func.attr == name) and not node.keywords)


def _zero(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == 0 and not isinstance(node.value, bool)


def _negated(node: ast.expr) -> ast.expr:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return node.operand
    return ast.UnaryOp(op=ast.USub(), operand=node)


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=list(args), keywords=[])


def _sigmoid_of(a: ast.expr) -> ast.expr:
    """σ(a): inline by the sign of a name (or its negation), else a call of ``_sigmoid``."""
    simple = isinstance(a, ast.Name) or (isinstance(a, ast.UnaryOp) and isinstance(a.operand, ast.Name))
    if not simple:
        return _call("_sigmoid", a)
    text = ast.unparse(a)
    minus = ast.unparse(_negated(a))
    inline = f"(1.0 / (1.0 + _exp({minus})) if {text} >= 0.0 else (_sig_e := _exp({text})) / (1.0 + _sig_e))"
    return ast.parse(inline, mode="eval").body


class _Scalar(ast.NodeTransformer):
    def visit_Call(self, node: ast.Call) -> ast.AST:
        if _np_call(node, "exp") and len(node.args) == 1:
            inner = node.args[0]
            negated = isinstance(inner, ast.UnaryOp) and isinstance(inner.op, ast.USub)
            call = inner.operand if negated else None  # type: ignore[attr-defined]
            if isinstance(call, ast.Call) and _np_call(call, "logaddexp") and len(call.args) == 2 \
                    and _zero(call.args[0]):  # exp(-logaddexp(0, -a)) = sigmoid(a)
                return _sigmoid_of(_negated(self.visit(call.args[1])))
        if _np_call(node, "logaddexp") and len(node.args) == 2:
            a, b = (self.visit(x) for x in node.args)
            return _call("_softplus", b) if _zero(a) else _call("_logaddexp", a, b)
        self.generic_visit(node)
        if _np_call(node) and node.func.attr in RENAMED:  # type: ignore[attr-defined]
            args = [ast.Constant(float(a.value)) if isinstance(a, ast.Constant) and type(a.value) is int
                    else a for a in node.args]  # max(q, 0.0): a float, as np.maximum gives
            return _call(RENAMED[node.func.attr], *args)  # type: ignore[attr-defined]
        return node

    def visit_If(self, node: ast.If) -> Any:
        if _batch_test(node.test):  # a batch of points: not on this path
            return [self.visit(s) for s in node.orelse]
        return self.generic_visit(node)


def _batch_test(test: ast.expr) -> bool:
    """``q.__class__ is np.ndarray`` (or several, joined by ``or``)."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        return all(_batch_test(v) for v in test.values)
    return (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Is)
            and isinstance(test.left, ast.Attribute) and test.left.attr == "__class__"
            and ast.unparse(test.comparators[0]) == "np.ndarray")


def scalar_body(lines: list[str]) -> list[str]:
    """The lines of a generated function body (not indented), rewritten for Python floats.

    >>> scalar_body(["q1 = np.exp(-np.logaddexp(0, -(x + y)))", "q2 = np.log(q1)*np.exp(y)"])
    ['q1 = _sigmoid(x + y)', 'q2 = _log(q1) * _exp(y)']
    """
    out: list[str] = []
    for statement in ast.parse("\n".join(lines)).body:
        try:
            rewritten = _Scalar().visit(statement)
            for s in rewritten if isinstance(rewritten, list) else [rewritten]:
                out += ast.unparse(ast.fix_missing_locations(s)).splitlines()
        except RecursionError:  # a product too deep to walk: its NumPy spelling works for floats too
            out += lines[statement.lineno - 1:statement.end_lineno]
    return out
