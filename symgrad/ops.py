"""The op table: every operation symgrad knows, declared once.

Each row (:func:`declare`) says how the operation is built in SymPy, how
many operands it takes, how it is shown in tables and pictures, how it
prints in NumPy (and what that spelling imports), where tests may sample its
operands and where it has a kink.  Local derivatives are not declared: SymPy
derives them from the row's expression.  The functions SymPy lacks (sigmoid,
relu, softplus, logsigmoid) are SymPy functions defined by their elementary
form (:func:`function`); their derivatives are stated in terms of themselves
(``sigmoid' = sigmoid·(1 − sigmoid)``) and the tests check each one against
SymPy's derivative of the elementary form.  Where such a derivative loses
precision as written, the row declares the spelling the backward pass
evaluates instead (``stable``): tanh's is sech², a function of its own whose
printed form takes one exp.  :func:`symgrad.define_op` adds a user's
op through the same :func:`function` and :func:`declare`.

The lecture's unary gates are binary operations with one constant operand:
``·a`` is ``mul`` with a constant, ``+c`` is ``add`` with a constant, ``1/x``
is ``div`` with the constant 1 on top.  Negation is the ``·(−1)`` gate.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import sympy as sp
from mpmath.libmp import prec_to_dps
from sympy.core.logic import fuzzy_and

from .dims import broadcast
from .errors import ShapeError, SymgradError
from .tensors import (
    PARAMS,
    Shape,
    amax,
    amin,
    broadcast_to,
    expand_dims,
    eye,
    logsumexp,
    matmul,
    mean,
    onehot,
    outer,
    permute_dims,
    pick,
    reduce_sum,
    reshape,
    sum_to,
    transpose,
)

# --------------------------------------------------------------------------
# SymPy functions defined by their elementary form


class Defined(sp.Function):
    """A SymPy function defined by its elementary form; :func:`function` makes one.

    It is real, positive, … where its elementary form is, and evaluates
    numerically through that form; ``sigmoid(0.5)`` becomes a Float and
    ``sigmoid(2)`` is ``1/(1 + exp(-2))``, so constant sub-expressions fold and
    cancel (``3*sigmoid(0) - 3/2`` is 0) instead of staying symbolic.  Its
    derivative is the declared one, else SymPy's derivative of the form.
    """

    @staticmethod
    def form(*args: sp.Expr) -> sp.Expr:
        raise NotImplementedError

    derivative: Callable[..., Any] | None = None
    latex_name: str | None = None
    printed_form: Callable[..., sp.Expr] | None = None

    @classmethod
    def elementary(cls, *args: sp.Expr) -> sp.Expr:
        """The function's value at ``args`` in elementary functions."""
        return cls.form(*args)

    @classmethod
    def printed(cls, *args: sp.Expr) -> sp.Expr:
        """What the printers write for it where its row has no spelling: its own printed form,
        else its elementary one."""
        return (cls.printed_form or cls.form)(*args)

    @classmethod
    def eval(cls, *args: sp.Expr) -> sp.Expr | None:
        if all(a.is_Rational for a in args):
            return cls.form(*args)
        if all(a.is_Rational or a.is_Float for a in args):
            return cls.form(*args).evalf(prec_to_dps(min(a._prec for a in args if a.is_Float)))
        floats = [f for a in args if a.is_number for f in a.atoms(sp.Float)]
        if floats and all(a.is_number for a in args):  # inexact already: its value, not its form
            # (SymPy may never decide that a form like relu(0.5/(-2.75/(1 + e) - 0.25)) is 0)
            dps = prec_to_dps(min(f._prec for f in floats))
            return cls.eval(*(a.evalf(dps) for a in args))
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        rule = type(self).derivative
        if rule is not None:
            found = rule(*self.args, self)
            return found[argindex - 1] if isinstance(found, (tuple, list)) else found
        dummies = [sp.Dummy(real=True) for _ in self.args]
        plain = sp.diff(self.form(*dummies), dummies[argindex - 1])
        return plain.xreplace(dict(zip(dummies, self.args)))

    def _eval_is_real(self) -> bool | None:
        return self.form(*self.args).is_real

    def _eval_is_positive(self) -> bool | None:
        return self.form(*self.args).is_positive

    def _eval_is_negative(self) -> bool | None:
        return self.form(*self.args).is_negative

    def _eval_is_nonnegative(self) -> bool | None:
        return self.form(*self.args).is_nonnegative

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.form(*self.args)._eval_evalf(prec)

    def _eval_rewrite_as_elementary(self, *args: sp.Expr, **kwargs: object) -> sp.Expr:
        return self.form(*args)

    def _latex(self, printer: sp.printing.latex.LatexPrinter) -> str:
        if self.latex_name is None:
            return printer._print_Function(self)
        return rf"{self.latex_name}\left({', '.join(printer._print(a) for a in self.args)}\right)"


def function(name: str, form: Callable[..., sp.Expr], *, derivative: Callable[..., Any] | None = None,
             latex: str | None = None, doc: str | None = None,
             printed: Callable[..., sp.Expr] | None = None) -> type[Defined]:
    """A new SymPy function ``name`` whose value is ``form(*operands)``.

    ``derivative(*operands, out)`` gives its derivative (one expression, or
    one per operand), where ``out`` stands for the function's own value
    (``out*(1 - out)`` for the sigmoid); without it SymPy differentiates
    ``form``.  ``expr.rewrite(head)`` gives the form back, for each function
    ``head`` the form uses (``rewrite(sp.exp)``), and ``rewrite("elementary")``.
    ``latex`` is its LaTeX name (``\\sigma``); ``printed``, the form printers write where it
    differs from ``form`` (cheaper, or safe from overflow).

    >>> a = sp.Symbol("a", real=True)
    >>> swish = function("swish", lambda a: a / (1 + sp.exp(-a)))
    >>> swish(a).diff(a).rewrite(sp.exp) == (a / (1 + sp.exp(-a))).diff(a)
    True
    >>> swish(a).is_real, swish(2).rewrite(sp.exp)
    (True, 2/(exp(-2) + 1))
    """
    arity = len(inspect.signature(form).parameters)
    probe = form(*(sp.Dummy(real=True) for _ in range(arity)))
    if not isinstance(probe, sp.Expr):
        raise SymgradError(f"the form of {name} must give a SymPy expression, not {type(probe).__name__}")
    body: dict[str, Any] = {
        "nargs": arity, "form": staticmethod(form), "latex_name": latex,
        "derivative": None if derivative is None else staticmethod(derivative),
        "printed_form": None if printed is None else staticmethod(printed),
        "__module__": __name__, "__doc__": doc or f"{name}: a function defined by its elementary form.",
    }
    for head in probe.atoms(sp.Function, sp.Max, sp.Min):  # rewrite(sp.exp), rewrite(sp.Max), …
        body[f"_eval_rewrite_as_{type(head).__name__}"] = Defined._eval_rewrite_as_elementary
    return type(name, (Defined,), body)


sigmoid = function(
    "sigmoid", lambda a: 1 / (1 + sp.exp(-a)), derivative=lambda a, out: out * (1 - out), latex=r"\sigma",
    doc="The logistic function σ(a) = 1 / (1 + e^(−a)).")
relu = function(
    "relu", lambda a: sp.Max(0, a), derivative=lambda a, out: sp.Heaviside(a, 0),
    doc="The rectifier relu(a) = max(0, a); its derivative at 0 is taken to be 0.")
softplus = function(
    "softplus", lambda a: sp.log(1 + sp.exp(a)), derivative=lambda a, out: sigmoid(a),
    doc="softplus(a) = log(1 + e^a), a smooth relu.")
logsigmoid = function(
    "logsigmoid", lambda a: -sp.log(1 + sp.exp(-a)), derivative=lambda a, out: sigmoid(-a),
    latex=r"\log\sigma", doc="log σ(a) = −log(1 + e^(−a)), the log-likelihood of a logistic output.")
sech2 = function(  # printed through e = e^(−2|a|): one exp, exact, no overflow
    "sech2", lambda a: 1 / sp.cosh(a) ** 2, derivative=lambda a, out: -2 * sp.tanh(a) * out,
    printed=lambda a: 4 * sp.exp(-2 * sp.Abs(a)) / (1 + sp.exp(-2 * sp.Abs(a))) ** 2,
    latex=r"\operatorname{sech}^2", doc="sech²(a) = 1 − tanh²(a), the derivative of tanh; printed as "
    "4e/(1 + e)² with e = e^(−2|a|).")


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


class step(sp.Function):
    """``step(a, h)``: 1 where a > 0, 0 where a < 0, ``h`` at 0; its derivative is taken as 0."""

    nargs = 2

    @classmethod
    def eval(cls, a: sp.Expr, h: sp.Expr) -> sp.Expr | None:
        return sp.Heaviside(a, h) if a.is_number else None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.Zero

    def _eval_is_real(self) -> bool:
        return True

    def _numpycode(self, printer: Any) -> str:
        return f"np.heaviside({printer._print(self.args[0])}, {float(self.args[1])!r})"


class sgn(sp.Function):
    """The sign of ``a`` (0 at 0); its derivative is taken as 0."""

    nargs = 1

    @classmethod
    def eval(cls, a: sp.Expr) -> sp.Expr | None:
        return sp.sign(a) if a.is_number else None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.S.Zero

    def _eval_is_real(self) -> bool:
        return True

    def _numpycode(self, printer: Any) -> str:
        return f"np.sign({printer._print(self.args[0])})"


CUSTOM_FUNCTIONS: tuple[type[sp.Function], ...] = (
    sigmoid, relu, softplus, logsigmoid, logaddexp, sech2,
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
    kink:    an expression of the operands (then the parameters, if any) whose sign
             changes where the op is not differentiable (relu, abs, max, min); None when smooth
    associative: merged into one n-ary node at granularity "nary" (``sympy``
             then takes any number of operands)
    params:  keyword parameters (``axis``, ``keepdims``), trailing SymPy arguments
    shapes:  operand shapes tests draw from, one letter per axis (``("nk", "km")``;
             equal letters are equal sizes, ``1`` is an axis of size 1, as in
             ``("1nk", "bkm")``); empty for elementwise ops, which broadcast any shapes
    imports: the import statements its NumPy spelling needs beyond ``np``
             (``"from scipy.special import erf"``); generated code imports them
    stable:  stable spellings of derivatives, each ``rule(f, a, …)`` giving a
             (spelling, replacement) pair in the Wilds ``a, …`` for the op's
             function ``f`` (see :meth:`stable_derivatives`)
    xp:      the spelling in the Python array API standard (``xp.`` for the array
             library), where the NumPy one is not in it; None: the NumPy spelling
             with ``xp.`` for ``np.`` (:class:`symgrad.printing.ArrayAPIPrinter`)
    numba:   the spelling Numba compiles, where it refuses the NumPy one (its
             parameters at their defaults); None: the NumPy spelling
             (:mod:`symgrad.numba_backend` rewrites one into the other)

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
    imports: tuple[str, ...] = ()
    stable: tuple[Callable[..., tuple[sp.Expr, sp.Expr]], ...] = ()
    xp: str | Callable[..., str] | None = None
    numba: str | Callable[..., str] | None = None

    @cached_property
    def stable_derivatives(self) -> tuple[tuple[sp.Expr, sp.Expr], ...]:
        """The (spelling, replacement) pairs of :attr:`stable`, in the Wilds ``a``, ``b``, …

        The usual spelling of a derivative can lose every digit where the
        derivative is still representable: 1 − σ(a) rounds to 0 once a > 37,
        while σ'(a) ≈ e^(−a) is representable up to a ≈ 709.  The tables show
        the usual spelling (σ·(1 − σ)); the backward pass evaluates the
        replacement (σ(a)·σ(−a)), which the NumPy spellings compute without
        overflow.
        """
        return tuple(rule(self.sympy, *WILDS[: self.arity]) for rule in self.stable)

    @cached_property
    def stable_heads(self) -> frozenset[type]:
        """The SymPy functions in the spellings of :attr:`stable_derivatives`."""
        return frozenset(type(f) for s, _ in self.stable_derivatives for f in s.atoms(sp.Function))

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
                return broadcast(*shapes)
            except ValueError:
                shown = " and ".join(str(s) for s in shapes)
                raise ShapeError(f"{self.name}: shapes {shown} do not broadcast") from None
        probe = self.sympy(*(sp.Dummy() for _ in shapes), *param_args)
        return tuple(probe.array_shape(*shapes))


class OpTable(Mapping[str, Op]):
    """The op table: ``{name: Op}``, with the indexes the front ends and printers read.

    :data:`OPS` is the one table.  ``functions`` (ops called by name),
    ``infix`` (operators) and ``by_class`` (ops by SymPy function class) are
    dicts kept up to date as ops are declared (:func:`declare`) or removed.
    """

    def __init__(self) -> None:
        self._ops: dict[str, Op] = {}
        self.functions: dict[str, Op] = {}
        self.infix: dict[str, Op] = {}
        self.by_class: dict[type, Op] = {}
        self.builtin: frozenset[str] = frozenset()
        self.gradient: dict[str, Op] = {}
        self.generation = 0  # counts the changes: what is remembered per table state says which
        self._imports = (-1, False)

    def __getitem__(self, name: str) -> Op:
        return self._ops[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    def __repr__(self) -> str:
        return f"<OpTable: {', '.join(self._ops)}>"

    def add(self, op: Op, gradient: bool = False) -> Op:
        """Declare ``op``; a SymgradError if its name or SymPy function is taken.

        ``gradient``: an op only gradient graphs use (:mod:`symgrad.higher`), kept
        in :attr:`gradient`, out of the names strings and callables may use.
        """
        if op.name in self._ops or op.name in self.gradient:
            raise SymgradError(f"an op named {op.name!r} is already declared")
        self.generation += 1
        if gradient:
            self.gradient[op.name] = op
            return op
        cls = op.function_class
        if cls is not None and cls in self.by_class:
            taken = self.by_class[cls].name
            raise SymgradError(f"{op.name}: SymPy's {cls.__name__} is already the op {taken!r}")
        self._ops[op.name] = op
        if op.infix:
            self.infix[op.infix] = op
        else:
            self.functions[op.name] = op
        if cls is not None:
            self.by_class[cls] = op
        return op

    def remove(self, name: str) -> None:
        """Take op ``name`` out of the table (not a built-in one)."""
        if name in self.builtin:
            raise SymgradError(f"{name!r} is a built-in op; only ops defined with define_op can be removed")
        op = self._ops.pop(name, None)
        if op is None:
            raise SymgradError(f"no op named {name!r} is defined")
        self.generation += 1
        self.functions.pop(name, None)
        if op.infix:
            self.infix.pop(op.infix, None)
        if op.function_class is not None:
            self.by_class.pop(op.function_class, None)

    def stable_derivatives(self) -> tuple[tuple[sp.Expr, sp.Expr], ...]:
        """Every op's stable derivative spellings, in table order."""
        return tuple(pair for op in self._ops.values() for pair in op.stable_derivatives)

    def stable_heads(self) -> frozenset[type]:
        """The SymPy functions in any op's stable derivative spellings."""
        return frozenset().union(*(op.stable_heads for op in self._ops.values()))

    def imports(self) -> bool:
        """Whether any op declares imports."""
        if self._imports[0] != self.generation:  # once per state of the table
            self._imports = (self.generation, any(op.imports for op in self._ops.values()))
        return self._imports[1]

    def imported_names(self) -> dict[str, str]:
        """``{name: import statement}`` for the names the ops' imports bind (``erf``)."""
        found: dict[str, str] = {}
        for line in (line for op in self._ops.values() for line in op.imports):
            statement = ast.parse(line).body[0]
            assert isinstance(statement, (ast.Import, ast.ImportFrom))
            for alias in statement.names:
                found[alias.asname or alias.name.split(".")[0]] = line
        return found


OPS = OpTable()
INFIX: dict[str, Op] = OPS.infix
FUNCTIONS: dict[str, Op] = OPS.functions
BY_CLASS: dict[type, Op] = OPS.by_class
WILDS = tuple(sp.Wild(n) for n in "abcd")


def declare(name: str, sympy: Callable[..., sp.Expr], *, arity: int | None = None, label: str | None = None,
            infix: str | None = None, numpy: str | Callable[..., str] | None = None,
            imports: tuple[str, ...] = (), domain: tuple[Domain, ...] | None = None,
            kink: Callable[..., sp.Expr] | None = None, associative: bool = False,
            params: tuple[str, ...] = (), shapes: tuple[tuple[str, ...], ...] = (),
            stable: tuple[Callable[..., tuple[sp.Expr, sp.Expr]], ...] = (),
            xp: str | Callable[..., str] | None = None, numba: str | Callable[..., str] | None = None,
            gradient: bool = False) -> Op:
    """Add a row to :data:`OPS`; the built-in rows and :func:`symgrad.define_op` both come here.

    The fields are :class:`Op`'s; ``arity`` defaults to the SymPy function's
    number of arguments, ``label`` to ``name``, ``domain`` to REAL for each
    operand.  Import statements are checked to be imports (nothing else runs).
    ``gradient``: a helper only the backward pass uses (``OPS.gradient``).
    """
    if arity is None:
        nargs = getattr(sympy, "nargs", None)
        arity = min(nargs) if isinstance(nargs, sp.FiniteSet) else len(inspect.signature(sympy).parameters)
    if domain is not None and len(domain) != arity:
        raise SymgradError(f"{name}: give one domain per operand ({arity}), not {len(domain)}")
    for line in imports:
        if not _is_import(line):
            raise SymgradError(f"{name}: {line!r} is not an import statement")
    op = Op(name, arity, sympy, name if label is None else label, infix=infix, numpy=numpy,
            domain=(REAL,) * arity if domain is None else tuple(domain), kink=kink,
            associative=associative, params=params, shapes=shapes, imports=tuple(imports),
            stable=tuple(stable), xp=xp, numba=numba)
    return OPS.add(op, gradient=gradient)


def _is_import(line: str) -> bool:
    try:
        body = ast.parse(line).body
    except SyntaxError:
        return False
    return len(body) == 1 and isinstance(body[0], (ast.Import, ast.ImportFrom))


declare("add", lambda *xs: sp.Add(*xs), arity=2, label="+", infix="+", associative=True)
declare("sub", lambda a, b: a - b, label="-", infix="-")
declare("mul", lambda *xs: sp.Mul(*xs), arity=2, label="*", infix="*", associative=True)
declare("div", lambda a, b: a / b, label="/", infix="/", domain=(REAL, NONZERO))
declare("pow", lambda a, b: a**b, label="**", infix="**", domain=(POSITIVE, SMALL))
declare("exp", sp.exp, numpy="np.exp({0})", domain=(SMALL,))
declare("log", sp.log, arity=1, numpy="np.log({0})", domain=(POSITIVE,))
declare("sqrt", sp.sqrt, arity=1, domain=(POSITIVE,))
declare("sin", sp.sin, numpy="np.sin({0})")
declare("cos", sp.cos, numpy="np.cos({0})")
# tanh' = 1 − tanh² rounds to 0 once |a| > 19; sech²(a) is exact wherever it is representable
declare("tanh", sp.tanh, numpy="np.tanh({0})", stable=(lambda f, a: (1 - f(a) ** 2, sech2(a)),))
# σ(a) = e^min(a, 0) / (1 + e^(−|a|)): no exp overflows, and within a rounding of σ(a) everywhere,
# the subnormal values below a ≈ −708 included; value_and_grad computes e^(−|a|) once and shares it
declare("sigmoid", sigmoid, label="σ", numpy="(np.exp(np.minimum({0}, 0.0))/(1 + np.exp(-np.abs({0}))))",
        stable=(lambda f, a: (1 - f(a), f(-a)), lambda f, a: (f(a) - 1, -f(-a))))
declare("relu", relu, numpy="np.maximum({0}, 0)", xp="xp.maximum({0}, 0.0)", kink=lambda a: a)
declare("softplus", softplus, numpy="np.logaddexp(0, {0})")
declare("logsigmoid", logsigmoid, label="logσ", numpy="(-np.logaddexp(0, {0:n}))")
declare("logaddexp", logaddexp, arity=2, numpy="np.logaddexp({0}, {1})",
        stable=(lambda f, a, b: (1 - sp.exp(a - f(a, b)), sp.exp(b - f(a, b))),
                lambda f, a, b: (1 - sp.exp(a - f(b, a)), sp.exp(b - f(b, a)))))
declare("abs", sp.Abs, numpy="np.abs({0})", kink=lambda a: a)
declare("max", sp.Max, arity=2, numpy="np.maximum({0}, {1})", kink=lambda a, b: a - b)
declare("min", sp.Min, arity=2, numpy="np.minimum({0}, {1})", kink=lambda a, b: a - b)
# operations on whole arrays: shape rules and vector-Jacobian products in tensors.py
declare("matmul", matmul, arity=2, label="@", infix="@", numpy="{0:a} @ {1:a}",
        shapes=(("nk", "km"), ("nk", "k"), ("k", "km"), ("k", "k"),
                ("bnk", "bkm"), ("bnk", "km"), ("nk", "bkm"), ("cbnk", "bkm"), ("1nk", "bkm"),
                ("bnk", "k"), ("k", "bkm")))
declare("transpose", transpose, arity=1, label=".T", numpy="{0:a}.T", shapes=(("nm",), ("n",), ("bnm",)),
        xp="xp.permute_dims({0}, tuple(range({0:a}.ndim - 1, -1, -1)))")


def _print_permutation(a: Any, axes: tuple[int, ...]) -> str:
    """``np.swapaxes(a, 1, 2)`` for a swap of two axes, ``np.transpose(a, axes)`` otherwise."""
    moved = [i for i, j in enumerate(axes) if i != j]
    if len(moved) == 2:
        return f"np.swapaxes({a}, {moved[0]}, {moved[1]})"
    return f"np.transpose({a}, {axes})"


declare("permute_dims", permute_dims, arity=1, label="transpose", params=("axes",),
        numpy=_print_permutation, shapes=(("bnm",), ("nm",), ("cbnm",)),
        xp=lambda a, axes: f"xp.permute_dims({a}, {axes})")
declare("reshape", reshape, arity=1, params=("shape",),
        numpy=lambda a, shape: f"np.reshape({a}, {shape})", xp=lambda a, shape: f"xp.reshape({a}, {shape})",
        shapes=(("bnm",), ("nm",), ("n",), ("cbnm",)))
declare("sum", reduce_sum, arity=1, numpy="np.sum({0}{axis}{keepdims})",
        params=("axis", "keepdims"), shapes=(("n",), ("nm",), ("nmk",)))
declare("mean", mean, arity=1, numpy="np.mean({0}{axis}{keepdims})",
        params=("axis", "keepdims"), shapes=(("n",), ("nm",), ("nmk",)))
declare("logsumexp", logsumexp, arity=1, params=("axis", "keepdims"),
        numpy="np.log(np.sum(np.exp({0:p} - np.max({0}{axis}, keepdims=True)){axis}{keepdims}))"
              " + np.max({0}{axis}{keepdims})",
        shapes=(("n",), ("nm",), ("nmk",)))
declare("amax", amax, arity=1, label="max", params=("axis", "keepdims"), kink=amax.kink,
        numpy="np.max({0}{axis}{keepdims})", shapes=(("n",), ("nm",), ("nmk",)))
declare("amin", amin, arity=1, label="min", params=("axis", "keepdims"), kink=amin.kink,
        numpy="np.min({0}{axis}{keepdims})", shapes=(("n",), ("nm",), ("nmk",)))
declare("pick", pick, arity=2, params=("keepdims",), domain=(REAL, LABELS),
        numpy=lambda s, y, keepdims: f"{s:a}[np.arange({y:a}.shape[0]), {y}]"
                                     + ("[:, None]" if keepdims else ""),
        xp=lambda s, y, keepdims: f"xp.take(xp.reshape({s}, (-1,)), "
                                  f"xp.arange({y:a}.shape[0])*{s:a}.shape[1] + {y})"
                                  + ("[:, None]" if keepdims else ""),
        numba="_pick({0}, {1})",  # Numba takes one advanced index, not two
        shapes=(("nc", "n"),))
# helpers only the backward pass uses (gradient graphs, symgrad.higher); ``arity`` counts the
# leading arguments that are values, and their nodes keep the trailing constant arguments
# (axes, shapes, the step's value at 0) as constant operands
declare("step", step, arity=1, numpy="np.heaviside({0}, {1})", gradient=True)
declare("sgn", sgn, label="sign", numpy="np.sign({0})", gradient=True)
declare("sech2", sech2, label="sech²", gradient=True)  # printed as its form: one exp
declare("outer", outer, arity=2, numpy="np.outer({0}, {1})", gradient=True)
declare("expand_dims", expand_dims, arity=1, numpy="np.expand_dims({0})", gradient=True)
declare("broadcast_to", broadcast_to, arity=1, numpy="np.broadcast_to({0})", gradient=True)
declare("sum_to", sum_to, arity=1, numpy="np.sum({0})", gradient=True)
declare("onehot", onehot, arity=1, numpy="np.eye()[{0}]", domain=(LABELS,), gradient=True)
declare("eye", eye, arity=0, numpy="np.eye({0})", gradient=True)
OPS.builtin = frozenset(OPS)

# The built-in stable spellings of derivatives (see Op.stable_derivatives); ``_a``, ``_b`` are Wilds.
STABLE_DERIVATIVES: tuple[tuple[sp.Expr, sp.Expr], ...] = OPS.stable_derivatives()


def op_of(name: str) -> Op:
    """The row of op ``name``: in :data:`OPS`, or one only gradient graphs use (``OPS.gradient``)."""
    return OPS[name] if name in OPS else OPS.gradient[name]


def printed_as_form(expr: sp.Basic) -> bool:
    """Whether ``expr`` is a defined function the printers write as a form
    (:meth:`Defined.printed`): its row (or the backward pass's helper, ``sech2``) has no NumPy
    spelling."""
    if not isinstance(expr, Defined):
        return False
    op = BY_CLASS.get(type(expr)) or next((o for o in OPS.gradient.values() if o.sympy is type(expr)), None)
    return op is not None and op.numpy is None


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
        shown = [f"{k}={v}" if v is not True else k for k, v in values.items()
                 if v is not None and v is not False]
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
