"""Users' ops: :func:`define_op` adds a row to the op table, as the built-in rows are added.

An op is declared by its elementary SymPy form (``gelu`` as
``x/2·(1 + erf(x/√2))``) or by a SymPy function (``arctan`` as ``sp.atan``).
From then on it is a function in expression strings, a function for traced
callables and SymPy input (the object :func:`define_op` returns), and every
backend reads its row: derivatives come from SymPy, the NumPy spelling (and
the imports it needs) from the row.  :func:`undefine_op`, or leaving a
``with`` block, takes it out again.
"""

from __future__ import annotations

import ast
import keyword
from collections.abc import Callable, Iterable
from typing import Any

import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError

from .build import RESERVED_NAMES
from .errors import SymgradError, UnsupportedError
from .gates import BY_NAME, USER_PATTERNS, Pattern
from .ops import OPS, WILDS, Defined, Domain, Op, declare, function
from .printing import numpy_code
from .tracing import OpFunction


class DefinedOp(OpFunction):
    """A user's op, as :func:`define_op` returns it: a function, and a ``with`` block's scope.

    Call it as any of symgrad's functions (``gelu(x)`` records a node on a traced
    value, builds SymPy otherwise); :meth:`undefine` takes the op out of the
    table, as leaving ``with define_op(...) as gelu:`` does.
    """

    def __init__(self, name: str):
        super().__init__(name)
        self._row = OPS[name]

    @property
    def op(self) -> Op:
        """The op's row in the table; a SymgradError once it is undefined (or defined anew)."""
        if OPS.get(self.name) is not self._row:
            raise SymgradError(f"the op {self.name!r} is not defined (any more)")
        return self._row

    def undefine(self) -> None:
        """Take the op out of the op table; strings and callables no longer know it."""
        undefine_op(self.op.name)

    def __enter__(self) -> DefinedOp:
        return self

    def __exit__(self, *exc: object) -> None:
        if OPS.get(self.name) is self._row:  # not an op defined anew under the same name
            undefine_op(self.name)


def define_op(name: str, sympy_form: Callable[..., sp.Expr], *, numpy: str | None = None,
              imports: Iterable[str] = (), derivative: Callable[..., Any] | None = None,
              stable: Iterable[Callable[..., tuple[sp.Expr, sp.Expr]]] = (),
              kink: Callable[..., sp.Expr] | None = None,
              domain: Iterable[Domain | Iterable[float]] | None = None,
              label: str | None = None, latex: str | None = None, xp: str | None = None,
              numba: str | None = None, spellings: Iterable[Callable[..., sp.Expr]] = (),
              fragile: str | None = None) -> DefinedOp:
    """Add an op to the op table, the way the built-in ops are declared.

    Parameters
    ----------
    name:
        The function's name in expression strings and the node label (a Python identifier).
    sympy_form:
        The op's elementary form, a function of SymPy operands (``lambda x: x/2*(1 +
        sp.erf(x/sp.sqrt(2)))``): a new SymPy function ``name`` is defined by it.  Or a
        SymPy function class (``sp.atan``), used as it is.
    numpy:
        Its NumPy spelling, ``{0}``, ``{1}`` for the printed operands (``"np.arctan({0})"``;
        see :class:`symgrad.ops.Op`).  Needed for a SymPy class; an elementary form without
        one is printed as that form.
    imports:
        The import statements that spelling needs beyond ``np``
        (``"from scipy.special import erf"``); generated code imports exactly these.
    derivative:
        ``derivative(*operands, out)``: the derivative (one per operand for several), where
        ``out`` is the op's own value (``out*(1 - out)`` for a sigmoid).  Default: SymPy's
        derivative of the elementary form.
    stable:
        Stable spellings of derivatives, each ``rule(f, a, ...)`` returning ``(spelling,
        replacement)`` in the Wilds ``a, ...`` for the op's SymPy function ``f``.
    kink:
        An expression of the operands that is zero where the op is not differentiable.
    domain:
        Per operand, where tests sample it: :class:`symgrad.ops.Domain` or ``(lo, hi)``.
    label, latex:
        The label in tables and pictures (default ``name``); the LaTeX name.
    xp:
        Its spelling in the Python array API standard (``"xp.atan({0})"``), where the
        NumPy one, read with ``xp.`` for ``np.``, is not in it; for ``compile(xp=...)``.
    numba:
        Its spelling for ``compile(backend="numba")``, where Numba refuses the NumPy one
        (``"erf_nb({0})"``, a ``numba.vectorize`` function ``imports=`` names too); the
        backend rewrites the NumPy spelling into this one.  Needs ``numpy=``.
    spellings:
        Expressions that compute the op, each a function of SymPy operands: the op is
        then a gate, and ``g.fuse(name)`` fuses the nodes that spell it into one node,
        as ``g.fuse("sigmoid")`` does for ``1/(1 + exp(-x))`` (see :class:`symgrad.Pattern`).
    fragile:
        Why the spellings lose precision or overflow when evaluated as written:
        ``g.lint()`` then reports them and ``g.fuse_stable()`` replaces them by the op,
        printed as ``numpy=`` (or the form) spells it, so that spelling should be stable.

    Returns
    -------
    DefinedOp
        The op as a function; ``with define_op(...) as f:`` undefines it on leaving.

    >>> import sympy as sp, symgrad as sg
    >>> with sg.define_op("swish", lambda x: x * sg.sigmoid(x)) as swish:
    ...     print(sg.graph("swish(x) + 1").local_derivatives("q1"))
    ...     print(sg.graph(lambda x: swish(2 * x)).compile()(x=0.5))
    {'x': x*(1 - sigmoid(x))*sigmoid(x) + sigmoid(x)}
    0.7310585786300049
    >>> sg.graph("swish(x)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symgrad.errors.ParseError: unknown function 'swish' ...
    """
    _check_name(name)
    imports = tuple(imports)
    domains = None if domain is None else tuple(_domain(name, d) for d in domain)
    if isinstance(sympy_form, type) and issubclass(sympy_form, sp.Function):
        if derivative is not None or latex is not None:
            raise SymgradError(f"{name}: SymPy's {sympy_form.__name__} has its own derivative and LaTeX")
        if numpy is None:
            raise SymgradError(f"{name}: give the NumPy spelling of SymPy's {sympy_form.__name__}, "
                               "such as numpy=\"np.arctan({0})\"")
        cls: Any = sympy_form
    elif callable(sympy_form):
        try:
            cls = function(name, sympy_form, derivative=derivative, latex=latex)
        except SymgradError:
            raise
        except Exception as e:
            raise SymgradError(f"{name}: its form cannot be built from SymPy symbols: {e}") from None
    else:
        raise SymgradError(f"{name}: the form must be a function of SymPy operands or a SymPy function class")
    op = declare(name, cls, label=label, numpy=numpy, imports=imports, domain=domains, kink=kink,
                 stable=tuple(stable), xp=xp, numba=numba)
    try:
        _check_printable(op)
        _check_numba(op)
        gate = _gate(op, tuple(spellings), fragile)
    except BaseException:
        OPS.remove(name)
        raise
    if gate is not None:
        USER_PATTERNS[name] = gate
    return DefinedOp(name)


def _check_numba(op: Op) -> None:
    """``numba=`` respells ``numpy=``: both given, and it fills in as one Python expression."""
    if op.numba is None:
        return
    if op.numpy is None:
        raise SymgradError(f"{op.name}: numba= respells the NumPy spelling; give numpy= too")
    operands = [f"_{i}" for i in range(op.arity)]
    try:
        ast.parse(str(op.numba).format(*operands), mode="eval")
    except (KeyError, IndexError, ValueError, SyntaxError) as e:
        shown = ", ".join(f"{{{i}}}" for i in range(op.arity))
        raise SymgradError(f"{op.name}: its Numba spelling {op.numba!r} is not one expression "
                           f"of {shown}: {e}") from None


def undefine_op(name: str) -> None:
    """Take the op ``name``, added by :func:`define_op`, out of the op table (and its gate)."""
    OPS.remove(name)
    USER_PATTERNS.pop(name, None)


def _gate(op: Op, spelled: tuple[Callable[..., sp.Expr], ...], fragile: str | None) -> Pattern | None:
    """The op's gate: each spelling, in Wilds, rewritten to the op; each checked to equal it."""
    if not spelled:
        if fragile is not None:
            raise SymgradError(f"{op.name}: fragile= says why spellings are fragile; give spellings= too")
        return None
    from .layers import LAYERS

    if op.name in BY_NAME or op.name in LAYERS:
        raise SymgradError(f"{op.name!r} is the name of a built-in gate; choose another name for the op")
    symbols = [sp.Symbol(f"a{i}", real=True) for i in range(op.arity)]
    value = op.sympy(*symbols)
    value = value.elementary(*value.args) if isinstance(value, Defined) else value
    rewrites = []
    for spelling in spelled:
        try:
            e, pattern = spelling(*symbols), spelling(*WILDS[: op.arity])
        except Exception as err:
            raise SymgradError(f"{op.name}: a spelling cannot be built from SymPy symbols: {err}") from None
        if not isinstance(e, sp.Expr) or not e.atoms(sp.Function, sp.Max, sp.Min):
            raise SymgradError(f"{op.name}: the spelling {e} has no function (exp, log, …) to be found by")
        for k in range(3):
            point = {x: sp.Float((0.37 + 0.61 * (i + k)) % 2.2 - 1.1) for i, x in enumerate(symbols)}
            gap = complex((e - value).evalf(subs=point))
            if not abs(gap) <= 1e-9 * max(1.0, abs(complex(value.evalf(subs=point)))):
                shown = ", ".join(f"{x} = {v}" for x, v in point.items())
                raise SymgradError(f"{op.name}: the spelling {e} is not {op.name}: they differ at {shown}")
        rewrites.append((pattern, op.sympy(*WILDS[: op.arity])))
    return Pattern(op.name, type(op.sympy(*symbols)), tuple(rewrites), fragile)


def _domain(name: str, d: Any) -> Domain:
    """An operand's domain: a Domain, or ``(lo, hi)`` with lo < hi."""
    if isinstance(d, Domain):
        return d
    try:
        lo, hi = (float(v) for v in d)
    except (TypeError, ValueError):
        raise SymgradError(f"{name}: domain= takes (lo, hi) or a Domain per operand, not {d!r}") from None
    if not lo < hi:
        raise SymgradError(f"{name}: the domain ({lo}, {hi}) is empty")
    return Domain(lo, hi)


def _check_name(name: str) -> None:
    from .composed import COMPOSED
    from .parse import NAMED_CONSTANTS

    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SymgradError(f"an op's name must be a Python identifier, not {name!r}")
    if name in OPS or name in COMPOSED or name in NAMED_CONSTANTS or name in RESERVED_NAMES:
        raise SymgradError(f"{name!r} is taken; choose another name for the op")


def _check_printable(op: Any) -> None:
    """The op's value and derivatives print as NumPy; a SymgradError naming what does not."""
    symbols = [sp.Symbol(f"a{i}", real=True) for i in range(op.arity)]
    expr = op.sympy(*symbols)
    parts = [("value", expr)] + [(f"derivative in {s}", sp.diff(expr, s)) for s in symbols]
    for what, e in parts:
        try:
            numpy_code(e)
        except PrintMethodNotImplementedError:
            written = e.replace(lambda f: isinstance(f, Defined), lambda f: f.elementary(*f.args))
            missing = sorted({type(f).__name__ for f in written.atoms(sp.Function)} - {
                c.__name__ for c in OPS.by_class})
            raise SymgradError(
                f"{op.name}: its {what} ({e}) uses {', '.join(missing) or 'a function'}, which has no "
                "NumPy spelling; declare it with define_op first, or give numpy=") from None
        except (KeyError, IndexError, ValueError, TypeError) as e:
            raise SymgradError(
                f"{op.name}: its NumPy spelling {op.numpy!r} cannot be filled in: {e}") from None
        except UnsupportedError as e:  # a name the generated code would not have
            raise UnsupportedError(f"{op.name}: {e}") from None
