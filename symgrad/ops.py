"""The op table: every operation symgrad knows, declared once.

Each row says how the operation is built in SymPy, how many operands it
takes, how it is shown in tables and pictures, how it prints in NumPy, where
tests may sample its operands and where it has a kink.  Local derivatives are
not declared: SymPy derives them from the row's expression.  The functions
SymPy lacks (sigmoid, relu, softplus, logsigmoid, logaddexp) are SymPy
functions defined below by their elementary form; their derivatives are
stated in terms of themselves (``sigmoid' = sigmoid·(1 − sigmoid)``) and the
tests check each one against SymPy's derivative of the elementary form.
Where such a derivative loses precision as written, :data:`STABLE_DERIVATIVES`
declares the spelling the backward pass evaluates instead.

The lecture's unary gates are binary operations with one constant operand:
``·a`` is ``mul`` with a constant, ``+c`` is ``add`` with a constant, ``1/x``
is ``div`` with the constant 1 on top.  Negation is the ``·(−1)`` gate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy as sp
from mpmath.libmp import prec_to_dps
from sympy.core.logic import fuzzy_and

from .errors import ShapeError, SymgradError
from .tensors import PARAMS, Shape, logsumexp, matmul, mean, pick, reduce_sum, transpose

# --------------------------------------------------------------------------
# SymPy functions for the activations SymPy does not have


class _Unary(sp.Function):
    """A custom elementwise function of one argument, defined by its ``elementary`` form.

    It is real for real arguments and evaluates numerically through that form;
    ``sigmoid(0.5)`` becomes a Float and ``sigmoid(2)`` is ``1/(1 + exp(-2))``,
    so constant sub-expressions fold and cancel (``3*sigmoid(0) - 3/2`` is 0)
    instead of staying symbolic.
    """

    nargs = 1

    @staticmethod
    def elementary(a: sp.Expr) -> sp.Expr:
        raise NotImplementedError

    @classmethod
    def eval(cls, a: sp.Expr) -> sp.Expr | None:
        if a.is_Float:
            return cls.elementary(a).evalf(prec_to_dps(a._prec))
        if a.is_Rational:
            return cls.elementary(a)
        return None

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.elementary(self.args[0])._eval_evalf(prec)


class sigmoid(_Unary):
    """The logistic function σ(a) = 1 / (1 + e^(−a))."""

    @staticmethod
    def elementary(a: sp.Expr) -> sp.Expr:
        return 1 / (1 + sp.exp(-a))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return self * (1 - self)

    def _eval_is_positive(self) -> bool | None:
        return self.args[0].is_real

    def _eval_rewrite_as_exp(self, a: sp.Expr, **kwargs: object) -> sp.Expr:
        return self.elementary(a)

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"\sigma\left({printer._print(self.args[0])}\right)"


class relu(_Unary):
    """The rectifier relu(a) = max(0, a); its derivative at 0 is taken to be 0."""

    @staticmethod
    def elementary(a: sp.Expr) -> sp.Expr:
        return sp.Max(0, a)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Heaviside(self.args[0], 0)

    def _eval_is_nonnegative(self) -> bool | None:
        return self.args[0].is_real

    def _eval_rewrite_as_Max(self, a: sp.Expr, **kwargs: object) -> sp.Expr:
        return self.elementary(a)


class softplus(_Unary):
    """softplus(a) = log(1 + e^a), a smooth relu."""

    @staticmethod
    def elementary(a: sp.Expr) -> sp.Expr:
        return sp.log(1 + sp.exp(a))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    def _eval_is_positive(self) -> bool | None:
        return self.args[0].is_real

    def _eval_rewrite_as_exp(self, a: sp.Expr, **kwargs: object) -> sp.Expr:
        return self.elementary(a)


class logsigmoid(_Unary):
    """log σ(a) = −log(1 + e^(−a)), the log-likelihood of a logistic output."""

    @staticmethod
    def elementary(a: sp.Expr) -> sp.Expr:
        return -sp.log(1 + sp.exp(-a))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(-self.args[0])

    def _eval_is_negative(self) -> bool | None:
        return self.args[0].is_real

    def _eval_rewrite_as_exp(self, a: sp.Expr, **kwargs: object) -> sp.Expr:
        return self.elementary(a)

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        return rf"\log\sigma\left({printer._print(self.args[0])}\right)"


class logaddexp(sp.Function):
    """log(e^a + e^b + …), the scalar log-sum-exp of any number of operands.

    Nested log-sum-exps flatten (``softplus(a)`` is ``logaddexp(a, 0)``) and
    the operands are kept in SymPy's order, so equal sums compare equal;
    ∂/∂a = e^(a − logaddexp(…)), the softmax weight of ``a``.
    """

    @classmethod
    def eval(cls, *args: sp.Expr) -> sp.Expr | None:
        if len(args) == 1:
            return args[0]
        flat: list[sp.Expr] = []
        for a in args:
            flat.extend(a.args if isinstance(a, logaddexp) else
                        (a.args[0], sp.S.Zero) if isinstance(a, softplus) else (a,))
        flat.sort(key=sp.default_sort_key)
        return cls(*flat, evaluate=False) if flat != list(args) else None

    @staticmethod
    def elementary(*args: sp.Expr) -> sp.Expr:
        return sp.log(sp.Add(*(sp.exp(a) for a in args)))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.exp(self.args[argindex - 1] - self)

    def _eval_is_real(self) -> bool | None:
        return fuzzy_and(a.is_real for a in self.args)

    def _eval_rewrite_as_exp(self, *args: sp.Expr, **kwargs: object) -> sp.Expr:
        return self.elementary(*args)

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.elementary(*self.args)._eval_evalf(prec)


CUSTOM_FUNCTIONS: tuple[type[sp.Function], ...] = (
    sigmoid, relu, softplus, logsigmoid, logaddexp,
)

# Stable spellings of derivatives, one pair per gate whose derivative needs one.
# The usual spelling can lose every digit where the derivative is still
# representable: 1 − σ(a) rounds to 0 once a > 37, while σ'(a) ≈ e^(−a) is
# representable up to a ≈ 709.  The tables show the usual spelling (σ·(1 − σ));
# the backward pass evaluates the right-hand side (σ(a)·σ(−a)), which the
# NumPy templates below compute without overflow.  ``_a``, ``_b`` are Wilds.
_a, _b = sp.Wild("a"), sp.Wild("b")
STABLE_DERIVATIVES: tuple[tuple[sp.Expr, sp.Expr], ...] = (
    (1 - sigmoid(_a), sigmoid(-_a)),
    (sigmoid(_a) - 1, -sigmoid(-_a)),
    (1 - sp.tanh(_a) ** 2, 4 * sigmoid(2 * _a) * sigmoid(-2 * _a)),
    (1 - sp.exp(_a - logaddexp(_a, _b)), sp.exp(_b - logaddexp(_a, _b))),
    (1 - sp.exp(_a - logaddexp(_b, _a)), sp.exp(_b - logaddexp(_b, _a))),
)

# --------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Domain:
    """Where tests sample an operand: [lo, hi], or ±[lo, hi] when ``signed``.

    ``labels``: integer class labels instead, 0 ≤ y < C, where C is the size of
    the last axis of the op's first operand.
    """

    lo: float
    hi: float
    signed: bool = False
    labels: bool = False


REAL = Domain(-3.0, 3.0)
POSITIVE = Domain(0.25, 3.0)
NONZERO = Domain(0.25, 3.0, signed=True)
SMALL = Domain(-1.5, 1.5)
LABELS = Domain(0, 0, labels=True)


@dataclass(frozen=True)
class Op:
    """One operation.

    name:    the key, and the function name in expression strings
    arity:   number of operands
    sympy:   builds the node's SymPy expression from its operands
    label:   the name shown in tables and pictures
    infix:   the Python operator for binary operators (``+``), else None
    numpy:   NumPy spelling of the SymPy function class, ``{0}`` for the operand;
             None for operators, which SymPy's printer spells already.  ``{0:a}``
             is parenthesized unless it is a name or a call; a parameter
             ``{axis}`` prints as ``, axis=1`` (or nothing for the default).
             A callable gets the printed operands and the parameters' values.
    domain:  per operand, where tests sample it
    kink:    an expression of the operands that is zero where the op is not
             differentiable (relu, abs, max, min); None when smooth
    associative: merged into one n-ary node at granularity "nary" (``sympy``
             then takes any number of operands)
    params:  keyword parameters (``axis``, ``keepdims``), trailing SymPy arguments
    shapes:  operand shapes tests draw from, one letter per axis (``("nk", "km")``);
             empty for elementwise ops, which broadcast any shapes

    An op whose SymPy class has a ``vjp`` method (see :mod:`symgrad.tensors`)
    is not elementwise: it states its shape rule and vector-Jacobian products;
    every other op is elementwise, and SymPy's scalar derivative is its rule.
    """

    name: str
    arity: int
    sympy: Callable[..., sp.Expr]
    label: str
    infix: str | None = None
    numpy: str | Callable[..., str] | None = None
    domain: tuple[Domain, ...] = (REAL,)
    kink: Callable[..., sp.Expr] | None = None
    associative: bool = False
    params: tuple[str, ...] = ()
    shapes: tuple[tuple[str, ...], ...] = ()

    @property
    def function_class(self) -> type | None:
        """The SymPy function class a node of this op is an instance of, if any."""
        return self.sympy if isinstance(self.sympy, type) else None

    @property
    def elementwise(self) -> bool:
        """True when the op acts entry by entry (its Jacobian is diagonal)."""
        return not hasattr(self.function_class, "vjp")

    @property
    def label_operands(self) -> tuple[int, ...]:
        """Positions of the operands that take integer labels."""
        return tuple(i for i, d in enumerate(self.domain) if d.labels)

    def param_args(self, **params: Any) -> tuple[sp.Basic, ...]:
        """Keyword parameters as the trailing SymPy arguments of the op's function."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            allowed = ", ".join(self.params) or "none"
            raise SymgradError(f"{self.name}() got unknown keyword {unknown[0]!r} (keywords: {allowed})")
        return tuple(PARAMS[p][1](params.get(p, PARAMS[p][0])) for p in self.params)

    def param_values(self, args: tuple[sp.Basic, ...]) -> dict[str, Any]:
        """The keyword parameters of a node from its expression's trailing arguments."""
        return {p: PARAMS[p][2](a) for p, a in zip(self.params, args[self.arity:])}

    def result_shape(self, shapes: list[Shape], param_args: tuple[sp.Basic, ...]) -> Shape:
        """The shape of the op's value on operands of ``shapes``; a ShapeError naming both."""
        if self.elementwise:
            try:
                return tuple(int(n) for n in np.broadcast_shapes(*shapes))
            except ValueError:
                shown = " and ".join(str(s) for s in shapes)
                raise ShapeError(f"{self.name}: shapes {shown} do not broadcast") from None
        probe = self.sympy(*(sp.Dummy() for _ in shapes), *param_args)
        return tuple(probe.array_shape(*shapes))


OPS: dict[str, Op] = {
    op.name: op
    for op in (
        Op("add", 2, lambda *xs: sp.Add(*xs), "+", infix="+", domain=(REAL, REAL), associative=True),
        Op("sub", 2, lambda a, b: a - b, "-", infix="-", domain=(REAL, REAL)),
        Op("mul", 2, lambda *xs: sp.Mul(*xs), "*", infix="*", domain=(REAL, REAL), associative=True),
        Op("div", 2, lambda a, b: a / b, "/", infix="/", domain=(REAL, NONZERO)),
        Op("pow", 2, lambda a, b: a**b, "**", infix="**", domain=(POSITIVE, SMALL)),
        Op("exp", 1, sp.exp, "exp", numpy="np.exp({0})", domain=(SMALL,)),
        Op("log", 1, sp.log, "log", numpy="np.log({0})", domain=(POSITIVE,)),
        Op("sqrt", 1, sp.sqrt, "sqrt", domain=(POSITIVE,)),
        Op("sin", 1, sp.sin, "sin", numpy="np.sin({0})"),
        Op("cos", 1, sp.cos, "cos", numpy="np.cos({0})"),
        Op("tanh", 1, sp.tanh, "tanh", numpy="np.tanh({0})"),
        Op("sigmoid", 1, sigmoid, "σ", numpy="np.exp(-np.logaddexp(0, {0:n}))"),
        Op("relu", 1, relu, "relu", numpy="np.maximum({0}, 0)", kink=lambda a: a),
        Op("softplus", 1, softplus, "softplus", numpy="np.logaddexp(0, {0})"),
        Op("logsigmoid", 1, logsigmoid, "logσ", numpy="(-np.logaddexp(0, {0:n}))"),
        Op("logaddexp", 2, logaddexp, "logaddexp", numpy="np.logaddexp({0}, {1})",
           domain=(REAL, REAL)),
        Op("abs", 1, sp.Abs, "abs", numpy="np.abs({0})", kink=lambda a: a),
        Op("max", 2, sp.Max, "max", numpy="np.maximum({0}, {1})", domain=(REAL, REAL),
           kink=lambda a, b: a - b),
        Op("min", 2, sp.Min, "min", numpy="np.minimum({0}, {1})", domain=(REAL, REAL),
           kink=lambda a, b: a - b),
        # operations on whole arrays: shape rules and vector-Jacobian products in tensors.py
        Op("matmul", 2, matmul, "@", infix="@", numpy="{0:a} @ {1:a}", domain=(REAL, REAL),
           shapes=(("nk", "km"), ("nk", "k"), ("k", "km"), ("k", "k"))),
        Op("transpose", 1, transpose, ".T", numpy="{0:a}.T", shapes=(("nm",), ("n",))),
        Op("sum", 1, reduce_sum, "sum", numpy="np.sum({0}{axis}{keepdims})",
           params=("axis", "keepdims"), shapes=(("n",), ("nm",), ("nmk",))),
        Op("mean", 1, mean, "mean", numpy="np.mean({0}{axis}{keepdims})",
           params=("axis", "keepdims"), shapes=(("n",), ("nm",), ("nmk",))),
        Op("logsumexp", 1, logsumexp, "logsumexp", params=("axis", "keepdims"),
           numpy="np.log(np.sum(np.exp({0:p} - np.max({0}{axis}, keepdims=True)){axis}{keepdims}))"
                 " + np.max({0}{axis}{keepdims})",
           shapes=(("n",), ("nm",), ("nmk",))),
        Op("pick", 2, pick, "pick", params=("keepdims",), domain=(REAL, LABELS),
           numpy=lambda s, y, keepdims: f"{s:a}[np.arange({y:a}.shape[0]), {y}]"
                                        + ("[:, None]" if keepdims else ""),
           shapes=(("nc", "n"),)),
    )
}



def op_of(name: str) -> Op:
    """The row of op ``name``: in :data:`OPS`, or one only gradient graphs use
    (:data:`symgrad.higher.GRADIENT_OPS`)."""
    if name in OPS:
        return OPS[name]
    from .higher import GRADIENT_OPS

    return GRADIENT_OPS[name]


INFIX: dict[str, Op] = {op.infix: op for op in OPS.values() if op.infix}
FUNCTIONS: dict[str, Op] = {name: op for name, op in OPS.items() if op.infix is None}
BY_CLASS: dict[type, Op] = {
    cls: op for op in OPS.values() if (cls := op.function_class) is not None
}


def format_constant(c: sp.Expr) -> str:
    """A constant as people write it: 0.1, not 0.100000000000000."""
    if isinstance(c, sp.Float):
        return repr(float(c))
    return str(c)


def label(op: Op, constants: tuple[sp.Expr | None, ...]) -> str:
    """The display label of a node: its op, with any constant operand filled in.

    ``constants`` has one entry per operand: the constant, or None where the
    operand is a node.  The lecture's gates come out as ``+1``, ``*-1``,
    ``1/x``, ``**2``.

    >>> label(OPS["mul"], (sp.Integer(-1), None))
    '*-1'
    >>> label(OPS["div"], (sp.Integer(1), None))
    '1/x'
    """
    if op.params:
        values = op.param_values(tuple(constants))
        shown = [f"{k}={v}" if v is not True else k for k, v in values.items() if v not in (None, False)]
        return f"{op.label}({', '.join(shown)})" if shown else op.label
    if all(c is None for c in constants):
        return op.label
    shown = [("x" if c is None else format_constant(c)) for c in constants]
    if op.infix is not None and len(constants) == 2:
        left, right = constants
        if right is not None:
            return f"{op.infix}{shown[1]}"
        if op.associative:
            return f"{op.infix}{shown[0]}"
        return f"{shown[0]}{op.infix}x"
    if op.infix is not None:
        return op.label
    return f"{op.label}({','.join(shown)})"
