"""SymPy expressions → NumPy source text, spelled as the op table says.

Every backend that turns SymPy into numbers goes through :func:`numpy_code`:
the interpreter (numbers on every node) and the code generator.
"""

from __future__ import annotations

import ast
import keyword
import re
from collections.abc import Mapping, Set
from functools import lru_cache
from types import CodeType
from typing import Any

import numpy as np
import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.numpy import NumPyPrinter as _SymPyNumPyPrinter
from sympy.printing.precedence import PRECEDENCE, precedence

from .alike import placeholder, printed, template
from .dims import Shape, show
from .errors import EvaluationError, SymgradError, UnsupportedError
from .names import check_spelling
from .ops import BY_CLASS, OPS, Op, printed_as_form
from .tensors import shape_of


def _spelled(expr: Any) -> Op | None:
    """The row of ``expr``'s function if the op table spells it (``numpy``), else None."""
    op = BY_CLASS.get(type(expr))
    return op if op is not None and op.numpy is not None else None


class _Arg:
    """A printed operand for a template: ``{0}`` is bare, ``{0:p}`` parenthesized inside a
    product, ``{0:a}`` parenthesized unless it is a name, a number or a call (``{0:a}.T``),
    ``{0:n}`` its negation (``y`` for the operand ``-y``)."""

    def __init__(self, bare: str, wrapped: str, atom: str | None = None, negated: str = ""):
        self.bare, self.wrapped, self.atom, self.negated = bare, wrapped, atom or wrapped, negated

    def __format__(self, spec: str) -> str:
        return {"p": self.wrapped, "a": self.atom, "n": self.negated}.get(spec, self.bare)


def _keyword(name: str, value: Any) -> str:
    """A keyword argument as NumPy code: ``, axis=1``; nothing for a default (None, False)."""
    return "" if value is None or value is False else f", {name}={value!r}"


class NumPyPrinter(_SymPyNumPyPrinter):
    """SymPy's NumPy printer with ``np.`` names and symgrad's op spellings.

    Given the shapes of the symbols (``shapes``; others are scalars), a product
    computes its scalar factors first, so an array is passed over once
    (``2*c*W``: Python evaluates ``(2*c)*W``).  Inside a product with a value
    that is a float (not a number, not one of ``ints``), a step function is a
    comparison (``dq*(q > 0)``), cheaper than ``np.heaviside``.
    """

    def __init__(self, settings: dict[str, Any] | None = None,
                 shapes: Mapping[sp.Symbol, Shape] | None = None,
                 ints: Set[sp.Symbol] = frozenset()):
        super().__init__(settings)
        self._shapes, self._ints = shapes, ints

    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("numpy."):
            return "np." + fqn[len("numpy."):]
        if fqn.startswith("math."):  # Python's scalar math (erf): not for arrays, and not imported
            raise PrintMethodNotImplementedError(f"no NumPy spelling for {fqn}")
        return super()._module_format(fqn, register)

    def _print(self, expr: Any, **kwargs: Any) -> str:
        op = _spelled(expr)
        if op is None:
            if printed_as_form(expr):  # no spelling: its printed form
                return self._print(expr.printed(*expr.args), **kwargs)
            return super()._print(expr, **kwargs)
        template = self._template(op)
        assert template is not None
        args = expr.args
        if len(args) > op.arity and op.arity == 2 and op.elementwise and not op.params:
            # binary functions SymPy lets take more operands (Max, Min, logaddexp): nested
            return self._print(type(expr)(type(expr)(*args[:-1]), args[-1], evaluate=False))
        params = op.param_values(args)
        printed = [
            _Arg(self._print(a), self.parenthesize(a, PRECEDENCE["Mul"]),
                 self.parenthesize(a, PRECEDENCE["Func"], strict=True),
                 self._print(-a) if "{0:n}" in str(template) else "")
            for a in (args[: op.arity] if op.params else args)
        ]
        if callable(template):
            return template(*printed, **params)
        return template.format(*printed, **{k: _keyword(k, v) for k, v in params.items()})

    def _template(self, op: Op) -> str | Any:
        """The op's spelling for this printer: its NumPy one."""
        return op.numpy

    def parenthesize(self, item: Any, level: int, strict: bool = False) -> str:
        """SymPy's rule, and parentheses around a template that prints as a sum (logsumexp)
        wherever an operand binds tighter than + (``q5 - (np.log(…) + np.max(…))``)."""
        text = super().parenthesize(item, level, strict)
        if _spelled(item) is not None and level > PRECEDENCE["Add"] and _top_level_sum(text):
            return f"({text})"
        return text

    def _print_Float(self, expr: sp.Float) -> str:
        return float_literal(expr)

    def _not_a_number(self, expr: sp.Expr) -> str:
        """nan, ±inf, zoo and I have no spelling: a value that is not a finite real number."""
        return float_literal(expr)

    _print_NaN = _print_Infinity = _print_NegativeInfinity = _not_a_number
    _print_ComplexInfinity = _print_ImaginaryUnit = _not_a_number

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        base, exponent = expr.base, expr.exp
        if exponent == -1:
            return f"1/{self._operand(base)}"
        if exponent == sp.S.Half:
            return f"np.sqrt({self._print(base)})"
        if exponent == -sp.S.Half:
            return f"1/np.sqrt({self._print(base)})"
        if not exponent.is_Integer:  # Python's float ** would turn (-8.0)**(1/3) complex
            return f"np.power({self._print(base)}, {self._print(exponent)})"
        if exponent in (3, 4) and base.is_Symbol:  # NumPy's power is some 30 products' time
            # in parentheses: a Mul prints x**3 as a Pow after its "/" (y/x**3 is y/(x*x*x))
            return "(" + "*".join([self._print(base)] * int(exponent)) + ")"
        return f"{self._operand(base)}**{self._operand(exponent)}"

    def _operand(self, e: sp.Expr) -> str:
        """An operand of ** or 1/…, in parentheses unless it is a name, a call or a plain number."""
        text = self._print(e)
        simple = (
            e.is_Symbol
            or (isinstance(e, sp.Pow) and e.exp in (3, 4) and e.base.is_Symbol)  # (x*x*x)
            or (isinstance(e, sp.Function) and precedence(e) >= PRECEDENCE["Func"])
            or (isinstance(e, (sp.Integer, sp.Float)) and e >= 0)
        )
        return text if simple and not _top_level_sum(text) else f"({text})"

    def _as_ordered_terms(self, expr: sp.Expr, order: Any = None) -> list[sp.Expr]:
        """SymPy's order, with a term that is not negated first where there is one
        (``q7 - q6*s``, not ``-q6*s + q7``: no negated copy of an array)."""
        terms = list(super()._as_ordered_terms(expr, order=order))
        if expr.is_Add and terms[0].could_extract_minus_sign():
            first = next((t for t in terms if not t.could_extract_minus_sign()), None)
            if first is not None:
                terms.remove(first)
                terms.insert(0, first)
        return terms

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        value_at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        return f"np.heaviside({self._print(expr.args[0])}, {self._print(sp.Float(value_at_zero))})"

    def _print_Mul(self, expr: sp.Mul) -> str:
        factors = list(expr.as_ordered_factors())
        masks = [f for f in factors if _step(f) and any(
            not g.is_Number and not _step(g) and g not in self._ints for g in factors)]
        scalar = [f for f in factors if f not in masks and self._scalar(f)]
        arrays = [f for f in factors if f not in masks and f not in scalar]
        ordered = scalar + arrays if len(scalar) > 1 else [f for f in factors if f not in masks]
        sizes = {f: self._size(f) for f in arrays} if len(arrays) > 2 else {}
        if len([f for f in arrays if sizes[f] < max(sizes.values())]) > 1 if sizes else False:
            # the smaller arrays first, multiplied together before the largest one is passed over
            ordered = scalar + sorted(arrays, key=sizes.__getitem__)
        divided = arrays and any(f.is_Pow and f.exp.is_negative for f in scalar)  # √2/√π first
        if not masks and ordered == factors and not divided:
            return super()._print_Mul(expr)
        coeff, _ = expr.as_coeff_Mul()
        if coeff < 0:
            return "-" + self._print(-expr)
        text = ""
        for f in ordered:
            if f.is_Pow and f.exp.is_Rational and f.exp.is_negative:
                text = (text or "1") + "/" + self.parenthesize(1 / f, PRECEDENCE["Mul"], strict=True)
            else:
                fraction = isinstance(f, sp.Rational) and not f.is_Integer
                printed = f"({self._print(f)})" if fraction else self.parenthesize(f, PRECEDENCE["Mul"])
                text += ("*" if text else "") + printed
        for f in masks:
            test = ">" if f.args[1] == 0 else ">="
            text += ("*" if text else "") + f"({self._print(f.args[0])} {test} 0)"
        return text

    def _size(self, e: sp.Expr) -> float:
        """How many entries ``e`` holds (a named dimension counts as many); inf where unknown."""
        try:
            shape = shape_of(e, self._shapes) if self._shapes is not None else ()
        except SymgradError:
            return float("inf")
        return float(np.prod([n if isinstance(n, int) else 10**6 for n in shape]))

    def _scalar(self, e: sp.Expr) -> bool:
        """``e`` holds one number (symbols of unknown shape are scalars)."""
        if self._shapes is None:
            return True
        try:
            return shape_of(e, self._shapes) == ()
        except SymgradError:
            return False

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

    # helpers of vector-Jacobian products (symgrad.tensors)

    def _print_outer(self, expr: sp.Function) -> str:
        return f"np.outer({self._print(expr.args[0])}, {self._print(expr.args[1])})"

    def _print_expand_dims(self, expr: sp.Function) -> str:
        """One new axis of an array by indexing (``g[:, None]``), else ``np.expand_dims``."""
        axes = tuple(int(a) for a in expr.args[1])
        try:
            ndim = len(shape_of(expr.args[0], self._shapes)) if self._shapes is not None else 0
        except SymgradError:
            ndim = 0
        if len(axes) == 1 and ndim and -ndim - 1 <= axes[0] <= ndim:
            k = axes[0] % (ndim + 1)
            operand = self.parenthesize(expr.args[0], PRECEDENCE["Func"], strict=True)
            return f"{operand}[{':, ' * k}None]"
        return f"np.expand_dims({self._print(expr.args[0])}, {axes[0] if len(axes) == 1 else axes})"

    def _print_broadcast_to(self, expr: sp.Function) -> str:
        a = expr.args[0]
        value = float_literal(a) if a.is_Number else self._print(a)  # 1.0, not 1: gradients are floats
        return f"np.broadcast_to({value}, {self.shape(expr.args[1])})"

    def shape(self, shape: Any) -> str:
        """A shape as a tuple: ``(3, 2)``, ``(N,)``, sizes and named dimensions as they are."""
        return show(tuple(shape))

    def _print_onehot(self, expr: sp.Function) -> str:
        return f"np.eye({self._print(expr.args[1])})[{self._print(expr.args[0])}]"


# The float type of the arrays that array-API code makes from numbers (xp.full, xp.zeros, ...):
# the inputs' or dout's, which each generated function reads first, not the library's default
# (float32 in PyTorch, whose float32 arrays would round float64 inputs' gradients).
XP_FLOAT = "_float"


class ArrayAPIPrinter(NumPyPrinter):
    """Code for any array library of the Python array API standard, called ``xp``.

    An op prints as its row declares for the standard (``xp``), else as its
    NumPy spelling read with ``xp.`` for ``np.``; the printer's own spellings
    (steps, helpers of vector-Jacobian products) use the standard's functions
    (``xp.take``, ``xp.permute_dims``, ``xp.astype``).  A mask is a float
    array (``xp.astype(q > 0, q.dtype)``): the standard does not multiply by booleans.
    Functions that print themselves in NumPy (``_numpycode``) get their spelling here.
    """

    def __init__(self, settings: dict[str, Any] | None = None,
                 shapes: Mapping[sp.Symbol, Shape] | None = None,
                 ints: Set[sp.Symbol] = frozenset()):
        super().__init__(settings, shapes, ints)
        self.printmethod = "_arrayapicode"

    def _print(self, expr: Any, **kwargs: Any) -> str:
        if _computed_number(expr):  # xp.sqrt(2) would take a Python number: most libraries refuse
            return float_literal(expr.evalf(17))
        return super()._print(expr, **kwargs)

    def _template(self, op: Op) -> str | Any:
        if op.xp is not None:
            return op.xp
        template = op.numpy
        if isinstance(template, str):
            return _NP.sub("xp.", template)
        assert template is not None
        return lambda *args, **params: _NP.sub("xp.", template(*args, **params))

    def _module_format(self, fqn: str, register: bool = True) -> str:
        if fqn.startswith("numpy."):
            return "xp." + fqn[len("numpy."):]
        return super()._module_format(fqn, register)

    def _print_Pow(self, expr: sp.Pow, rational: bool = False) -> str:
        if expr.exp.is_Integer or expr.exp in (-1, sp.S.Half, -sp.S.Half):
            return _NP.sub("xp.", super()._print_Pow(expr, rational))
        return f"{self._operand(expr.base)}**{self._operand(expr.exp)}"

    def _mask(self, a: sp.Expr, test: str) -> str:
        text = self._print(a)
        operand = text if text.isidentifier() else f"({text})"
        return f"xp.astype({text} {test} 0, {operand}.dtype)"

    def _print_Heaviside(self, expr: sp.Heaviside) -> str:
        h = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        a = expr.args[0]
        if h in (0, 1):
            return self._mask(a, ">" if h == 0 else ">=")
        return f"({self._mask(a, '>')} + {float_literal(h)}*{self._mask(a, '==')})"

    def _print_Mul(self, expr: sp.Mul) -> str:
        text = super()._print_Mul(expr)
        for f in (f for f in expr.as_ordered_factors() if _step(f)):  # masks: (q > 0) → a float array
            a = self._print(f.args[0])
            test = ">" if f.args[1] == 0 else ">="
            text = text.replace(f"({a} {test} 0)", self._mask(f.args[0], test))
        return text

    def _print_sum_to(self, expr: sp.Function) -> str:
        return _NP.sub("xp.", super()._print_sum_to(expr))

    def _print_sign(self, expr: sp.sign) -> str:
        return f"xp.sign({self._print(expr.args[0])})"

    def _print_outer(self, expr: sp.Function) -> str:
        a, b = (self.parenthesize(x, PRECEDENCE["Func"], strict=True) for x in expr.args)
        return f"xp.reshape({a}, (-1, 1))*xp.reshape({b}, (1, -1))"

    def _print_expand_dims(self, expr: sp.Function) -> str:
        if expr.args[0].is_number:  # the number itself, which broadcasts as its new axes would:
            return float_literal(expr.args[0])  # xp.expand_dims takes arrays, not Python numbers
        text = self._print(expr.args[0])
        for axis in sorted(int(a) for a in expr.args[1]):
            text = f"xp.expand_dims({text}, axis={axis})"
        return text

    def _print_broadcast_to(self, expr: sp.Function) -> str:
        a = expr.args[0]
        value = float_literal(a) if a.is_Number else self._print(a)  # a number, 1/N, or an array
        return f"xp.broadcast_to(xp.asarray({value}, dtype={XP_FLOAT}), {self.shape(expr.args[1])})"

    def _print_onehot(self, expr: sp.Function) -> str:
        eye = f"xp.eye({self._print(expr.args[1])}, dtype={XP_FLOAT})"
        return f"xp.take({eye}, {self._print(expr.args[0])}, axis=0)"

    def _print_equal(self, expr: sp.Function) -> str:
        a, b = (self._print(x) for x in expr.args)
        operand = a if a.isidentifier() else f"({a})"
        return f"xp.astype({a} == {b}, {operand}.dtype)"

    def _print_step(self, expr: sp.Function) -> str:
        return self._print_Heaviside(sp.Heaviside(*expr.args, evaluate=False))

    def _print_sgn(self, expr: sp.Function) -> str:
        return f"xp.sign({self._print(expr.args[0])})"

    def _print_eye(self, expr: sp.Function) -> str:
        return f"xp.eye({int(expr.args[0])}, dtype={XP_FLOAT})"


_NP = re.compile(r"\bnp\.")


def array_api_code(expr: sp.Expr, shapes: Mapping[sp.Symbol, Shape] | None = None,
                   ints: Set[sp.Symbol] = frozenset()) -> str:
    """Array-API source text for ``expr``, the array library named ``xp``; see :func:`numpy_code`.

    >>> import sympy as sp
    >>> from symgrad.ops import relu
    >>> a = sp.Symbol("a")
    >>> array_api_code(relu(a)), array_api_code(sp.Symbol("d") * sp.Heaviside(a, 0))
    ('xp.maximum(a, 0.0)', 'd*xp.astype(a > 0, a.dtype)')
    """
    return printed(_array_api_code, expr, shapes, ints, OPS.generation, _PYTHON_KEYWORDS)


def _array_api_code(expr: sp.Expr, shapes: Mapping[sp.Symbol, Shape] | None, ints: Set[sp.Symbol]) -> str:
    return _checked(ArrayAPIPrinter({"fully_qualified_modules": True}, shapes, ints), expr, "xp")


def _computed_number(expr: Any) -> bool:
    """A real number that takes a function or a root to compute (``sqrt(2)``, ``log(1 + e)``),
    not a literal or a named constant such as π."""
    if not isinstance(expr, sp.Expr) or not expr.is_number or expr.is_Atom:
        return False
    computed = expr.atoms(sp.Function) or any(isinstance(p, sp.Pow) and not p.exp.is_Integer
                                             for p in sp.preorder_traversal(expr))
    return bool(computed) and expr.is_extended_real is True and expr.is_finite is True


def float_literal(number: sp.Expr) -> str:
    """A SymPy number as a Python float literal (``0.5``, ``2.0``), or an EvaluationError when
    it is not one: ``nan``, ``inf`` or ``1j`` would be names the generated code does not define.

    >>> float_literal(sp.Rational(1, 2)), float_literal(sp.Integer(2))
    ('0.5', '2.0')
    >>> float_literal(sp.zoo)
    Traceback (most recent call last):
    ...
    symgrad.errors.EvaluationError: the value is infinite (a division by zero): zoo
    """
    if number.has(sp.nan):
        raise EvaluationError(f"the value is undefined: {number}")
    if number.has(sp.zoo):
        raise EvaluationError(f"the value is infinite (a division by zero): {number}")
    if number.has(sp.I) or number.is_extended_real is False:
        raise EvaluationError(f"the value is complex, not real: {number}")
    value = float(number)
    if not np.isfinite(value):
        shown = "infinite" if number.is_infinite else "too large for a 64-bit float"
        raise EvaluationError(f"the value is {shown}: {sp.sstr(number)}")
    return repr(value)


def _step(e: sp.Expr) -> bool:
    """A step function that is 0 or 1 at zero: ``Heaviside(a, 0)`` is ``a > 0``."""
    return isinstance(e, sp.Heaviside) and len(e.args) == 2 and e.args[1] in (0, 1)


def _top_level_sum(text: str) -> bool:
    """``text`` has a + or - outside parentheses and brackets (``np.log(a) + np.max(a)``)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and ch in "+-" and i > 0 and text[i - 1] == " ":
            return True
    return False


def numpy_code(expr: sp.Expr, shapes: Mapping[sp.Symbol, Shape] | None = None,
               ints: Set[sp.Symbol] = frozenset()) -> str:
    """NumPy source text for ``expr``.

    ``shapes`` (the shapes of array symbols) puts a product's scalar factors
    first; ``ints`` names the symbols holding integers (labels).

    >>> import sympy as sp
    >>> from symgrad.ops import sigmoid
    >>> a = sp.Symbol("a")
    >>> numpy_code(2*sigmoid(a))
    '2*(np.exp(np.minimum(a, 0.0))/(1 + np.exp(-np.abs(a))))'
    """
    return printed(_numpy_code, expr, shapes, ints, OPS.generation, _PYTHON_KEYWORDS)


def _numpy_code(expr: sp.Expr, shapes: Mapping[sp.Symbol, Shape] | None, ints: Set[sp.Symbol]) -> str:
    printer = NumPyPrinter({"fully_qualified_modules": True}, shapes, ints)
    return _checked(printer, expr, "np")


def _checked(printer: NumPyPrinter, expr: sp.Expr, module: str) -> str:
    """``expr`` printed, if it reads only names the generated code has (:func:`check_spelling`):
    its symbols, ``module``, the names the imports of its ops bind, builtins."""
    text = printer.doprint(expr)
    symbols = {printer._print(s) for s in expr.free_symbols} if isinstance(expr, sp.Basic) else set()
    imported = _bound(imports_of(expr)) if OPS.imports() else frozenset()
    if module == "xp":
        imported = frozenset({*imported, XP_FLOAT})
    return check_spelling(text, symbols, module, imported)


@lru_cache(maxsize=256)
def _bound(imports: tuple[str, ...]) -> frozenset[str]:
    """The names the import statements bind."""
    return frozenset(alias.asname or alias.name.split(".")[0] for line in imports
                     for alias in ast.parse(line).body[0].names)  # type: ignore[attr-defined]


_PYTHON_KEYWORDS = frozenset(keyword.kwlist)  # the printers' reserved words: printed with a suffix


def imports_of(*exprs: sp.Expr) -> tuple[str, ...]:
    """The import statements the NumPy text of ``exprs`` needs beyond ``np``, as the op table
    declares them (sorted).

    >>> imports_of(sp.exp(sp.Symbol("x")))
    ()
    """
    if not OPS.imports():
        return ()
    found: set[str] = set()
    todo = list(exprs)
    while todo:
        for f in todo.pop().atoms(sp.Function):
            op = BY_CLASS.get(type(f))
            if op is not None:
                found.update(op.imports)
            if printed_as_form(f):
                todo.append(f.printed(*f.args))
    return tuple(sorted(found))


def import_namespace(imports: tuple[str, ...]) -> dict[str, Any]:
    """``np`` and the names ``imports`` bind; an UnsupportedError naming the op whose import fails."""
    namespace: dict[str, Any] = {"np": np}
    for line in imports:
        try:
            exec(compile(line, "<symgrad imports>", "exec"), namespace)  # an import: checked by ops.declare
        except ImportError as e:
            ops = ", ".join(op.name for op in OPS.values() if line in op.imports)
            extra = " (pip install 'symgrad[scipy]')" if "scipy" in line else ""
            raise UnsupportedError(f"{ops} needs {line!r}, which fails: {e}{extra}") from None
    namespace.pop("__builtins__", None)
    return namespace


@lru_cache(maxsize=1024)
def _compiled(text: str) -> CodeType:
    return compile(text, "<symgrad>", "eval")


def evaluate(expr: sp.Expr, env: Mapping[str, Any]) -> np.ndarray:
    """The value of ``expr`` with NumPy, symbols taken from ``env`` by name."""
    if expr.is_Number and expr.is_finite:  # a local derivative of 1, 2, ...: nothing to print
        return np.asarray(float(expr))
    if type(expr) is sp.Symbol and expr.name in env:  # type: ignore[attr-defined]  # a copy of a value
        return np.asarray(env[expr.name], dtype=float)  # type: ignore[attr-defined]
    namespace: dict[str, Any] = import_namespace(imports_of(expr)) if OPS.imports() else {"np": np}
    namespace["__builtins__"] = {}
    found = template(_numpy_code, expr, None, frozenset(), OPS.generation, _PYTHON_KEYWORDS)
    if found is not None and all(n in env for n in found[1]):  # compiled once for alike expressions
        local = {placeholder(i): env[n] for i, n in enumerate(found[1])}
        try:
            return np.asarray(eval(_compiled(found[0]), namespace, local), dtype=float)
        except NameError:  # a name besides its symbols: the text itself says which
            pass
    try:
        return np.asarray(eval(_compiled(numpy_code(expr)), namespace, env), dtype=float)  # env: not copied
    except NameError as e:  # a spelling that uses a name nothing defines
        raise UnsupportedError(f"no NumPy spelling for {expr}: {e}") from None


# -- one notation for the displays: tables, explanations, pictures, program text -------------------


def in_notation(expr: sp.Expr, outputs: Mapping[sp.Expr, sp.Symbol]) -> sp.Expr:
    """``expr`` as the displays write it: a sigmoid's derivative through its node's output.

    ``outputs`` maps ``sigmoid(a)`` to the node ``q`` computing it (see
    :attr:`symgrad.Graph.sigmoid_outputs`); then ``sigmoid(a)*(1 - sigmoid(a))`` and the
    stable ``q*sigmoid(-a)`` both read ``q*(1 - q)``.  Only the text changes:
    generated code keeps the stable form.

    >>> from symgrad.ops import sigmoid
    >>> a, q, d = sp.symbols("a q d")
    >>> in_notation((1 - sigmoid(a)) * sigmoid(a), {sigmoid(a): q})
    q*(1 - q)
    >>> in_notation(d * q * sigmoid(-a), {sigmoid(a): q})
    d*q*(1 - q)
    """
    if not outputs or not isinstance(expr, sp.Basic):
        return expr
    from .ops import sigmoid

    found = expr.atoms(sigmoid)
    if not found:
        return expr
    flipped = {}
    for value in found:
        q = None if value in outputs else outputs.get(sigmoid(-value.args[0]))
        if q is not None:
            flipped[value] = 1 - q
    expr = expr.xreplace(flipped) if flipped else expr
    if not any(value in outputs for value in found):
        return expr

    def paired(e: sp.Expr) -> bool:
        return e.is_Mul and any(f in outputs and 1 - f in e.args for f in e.args)

    def through_output(e: sp.Expr) -> sp.Expr:
        swap = {}
        for f in e.args:
            if f in outputs and 1 - f in e.args:
                swap[f], swap[1 - f] = outputs[f], 1 - outputs[f]
        return sp.Mul(*(swap.get(f, f) for f in e.args))

    return expr.replace(paired, through_output)


class Notation:
    """Printing methods shared by the display printers (text and LaTeX; ``latex`` says which).

    A step function is an indicator: ``Heaviside(z - w)`` reads ``[z > w]``
    (LaTeX ``\\mathbb{1}[z > w]``), ``Heaviside(a, 1)`` reads ``[a ≥ 0]``;
    at a tie of max and min, where SymPy's ``Heaviside`` is ½, so is the
    bracket (see docs/stability.md).  ``broadcast_to(g, (3, 4))`` reads
    ``broadcast_{3×4}(g)`` in LaTeX.
    """

    latex = False

    def _print_Heaviside(self, expr: sp.Heaviside, exp: Any = None) -> str:
        a = expr.args[0]
        at_zero = expr.args[1] if len(expr.args) > 1 else sp.S.Half
        relation = "≥" if at_zero == 1 else ">"
        positive = [t for t in sp.Add.make_args(a) if not t.could_extract_minus_sign()]
        negative = [-t for t in sp.Add.make_args(a) if t.could_extract_minus_sign()]
        if a.is_Add and positive and negative:
            left, right = sp.Add(*positive), sp.Add(*negative)
        elif a.could_extract_minus_sign():
            left, right, relation = -a, sp.S.Zero, "≤" if at_zero == 1 else "<"
        else:
            left, right = a, sp.S.Zero
        p = self._print  # type: ignore[attr-defined]
        if self.latex:
            tex = {">": ">", "≥": r"\geq", "<": "<", "≤": r"\leq"}[relation]
            text = rf"\mathbb{{1}}\left[{p(left)} {tex} {p(right)}\right]"
            return text if exp is None else f"{text}^{{{exp}}}"
        return f"[{p(left)} {relation} {p(right)}]"

    def _print_broadcast_to(self, expr: sp.Expr, exp: Any = None) -> str:
        p = self._print  # type: ignore[attr-defined]
        if not self.latex:
            return super()._print_Function(expr)  # type: ignore[misc]
        size = r" \times ".join(p(n) for n in expr.args[1]) or "1"
        text = rf"\operatorname{{broadcast}}_{{{size}}}\left({p(expr.args[0])}\right)"
        return text if exp is None else f"{text}^{{{exp}}}"
