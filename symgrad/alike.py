"""Alike expressions: the same but for the names of their symbols, which sort the same way.

A graph of many alike nodes (a chain of ``σ(w·h + b)``) has many alike
expressions and derivatives: the same op on other operands.  SymPy's
evaluation and printing see symbols of the same assumptions only through
comparisons of their names (they must not depend on the symbols' hashes,
which vary from run to run), so two alike expressions whose names sort the
same way have the same structure, and print the same but for the names.
:func:`substitute` puts the names of one into the other without SymPy
evaluating it again; :func:`printed` prints an expression once per such
class and fills in the names.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Set
from functools import lru_cache
from typing import Any

import sympy as sp
from sympy.core.function import Application


class NotAlike(Exception):
    """An expression the classes of alike expressions do not cover."""


def name_order(symbols: tuple[sp.Symbol, ...]) -> tuple[int, ...]:
    """The positions of ``symbols`` in the order SymPy sorts them (by name).

    >>> x, q10, q9 = sp.symbols("x q10 q9", real=True)
    >>> name_order((x, q10, q9))
    (1, 2, 0)
    """
    return tuple(sorted(range(len(symbols)), key=lambda i: symbols[i].name))


def substitute(e: sp.Expr, swap: dict[str, sp.Symbol], memo: dict[int, sp.Expr],
               strict: bool = False) -> sp.Expr:
    """``e`` with its symbols renamed by ``swap`` (old name: new symbol), rebuilt without
    evaluating again.  Only plain Symbols are renamed.

    ``e`` is in canonical form, and new names that sort as the old ones keep it so:
    sums, products, powers and functions are rebuilt as they are; anything else is
    evaluated as ``xreplace`` would.  The new symbols have the old ones'
    assumptions.  ``memo`` (by ``id``) rebuilds a sub-expression that ``e`` shares
    once; give the same ``memo`` only for one renaming.  With ``strict``, any other
    kind of symbol (a bound Dummy, which sorts among the renamed ones) is a
    :class:`NotAlike`.

    >>> a, b, c, d = sp.symbols("a b c d", real=True)
    >>> substitute(sp.sin(a - b) * a, {"a": c, "b": d}, {})
    c*sin(c - d)
    """
    if e.is_Symbol:  # a Dummy or Wild of the same name is another symbol: it stays
        if type(e) is sp.Symbol:
            return swap.get(e.name, e)  # type: ignore[attr-defined]
        if strict:
            raise NotAlike(f"{e!r} is not a plain Symbol")
        return e
    if not e.args:
        return e
    found = memo.get(id(e))
    if found is not None:
        return found
    args = tuple([substitute(a, swap, memo, strict) for a in e.args])
    new: sp.Expr
    if e.is_Add or e.is_Mul:
        new = type(e)._from_args(args, e.is_commutative)  # type: ignore[attr-defined]
    elif e.is_Pow:
        new = sp.Pow(*args, evaluate=False)
    elif isinstance(e, Application) and getattr(e, "__dict__", {}).keys() == {"nargs"}:
        new = sp.Basic.__new__(type(e), *args)  # type: ignore[assignment]
        new.nargs = e.nargs  # type: ignore[attr-defined]  # as Application.__new__ sets it
    else:
        new = e.func(*args)
    memo[id(e)] = new
    return new


def evaluated(build: Callable[..., sp.Expr], *exprs: sp.Expr) -> sp.Expr:
    """``build(*exprs)``, evaluated by SymPy once per class of alike arguments.

    ``build`` (a module-level function: it is part of the key) gets the
    arguments with placeholders for their symbols; its result gets the names
    back.  Arguments whose symbols are not all real Symbols of distinct names
    are built directly.

    >>> import operator
    >>> a, b = sp.symbols("a b", real=True)
    >>> evaluated(operator.mul, b, sp.sin(a) * (1 - sp.sin(a)))
    b*(1 - sin(a))*sin(a)
    """
    symbols = set().union(*(e.free_symbols for e in exprs))
    ordered = sorted(symbols, key=lambda s: s.name)  # type: ignore[attr-defined]
    names = [s.name for s in ordered]  # type: ignore[attr-defined]
    if not _plain(ordered, names, frozenset()):
        return build(*exprs)
    marks = _placeholders(len(ordered))
    memo: dict[int, sp.Expr] = {}
    try:
        canonical = tuple(substitute(e, dict(zip(names, marks)), memo, strict=True) for e in exprs)
    except NotAlike:
        return build(*exprs)
    result = _built(build, canonical)
    return substitute(result, {m.name: s for m, s in zip(marks, ordered)}, {})


@lru_cache(maxsize=4096)
def _built(build: Callable[..., sp.Expr], canonical: tuple[sp.Expr, ...]) -> sp.Expr:
    return build(*canonical)


def _plain(ordered: list[Any], names: list[str], reserved: Set[str]) -> bool:
    """The symbols are real Symbols of distinct names that no printer spells otherwise."""
    return (bool(ordered) and len(ordered) <= 9999 and len(set(names)) == len(names)
            and all(type(s) is sp.Symbol and s._assumptions_orig == _REAL
                    and s.name not in reserved and s.name not in _RESERVED for s in ordered))


# -- printing once per class of alike expressions ------------------------------------------------

_REAL = {"real": True}
_PLACEHOLDER = re.compile(r"\b_s(\d{4})\b")
_PLACEHOLDERS: list[sp.Symbol] = []
_GROWING = threading.Lock()
_RESERVED = frozenset({"np", "xp"})


def _placeholders(count: int) -> list[sp.Symbol]:
    """The first ``count`` placeholders: the i-th is named ``placeholder(i)``."""
    if len(_PLACEHOLDERS) < count:
        with _GROWING:  # threads may print at once: each index gets its own name once
            while len(_PLACEHOLDERS) < count:
                _PLACEHOLDERS.append(sp.Symbol(placeholder(len(_PLACEHOLDERS)), real=True))
    return _PLACEHOLDERS[:count]


def printed(print_: Callable[[sp.Expr, Mapping[sp.Symbol, Any] | None, Set[sp.Symbol]], str],
            expr: sp.Expr, shapes: Mapping[sp.Symbol, Any] | None, ints: Set[sp.Symbol],
            generation: int, reserved: Set[str] = frozenset()) -> str:
    """``print_(expr, shapes, ints)``, printed once for alike expressions.

    ``expr``'s symbols are replaced, in name order, by placeholders ``_s0000``,
    ``_s0001``, … of the same sort order; the text printed for that expression
    (remembered per printer, ``generation`` of the op table, placeholder
    expression and the symbols' shapes and ``ints`` membership) gets the names
    back.  An expression whose symbols are not all real Symbols of distinct
    names, or whose names a printer spells differently (``reserved``), is
    printed directly.
    """
    found = template(print_, expr, shapes, ints, generation, reserved)
    if found is None:
        return print_(expr, shapes, ints)
    text, names = found
    return _PLACEHOLDER.sub(lambda m: names[int(m.group(1))], text)


def template(print_: Callable[[sp.Expr, Mapping[sp.Symbol, Any] | None, Set[sp.Symbol]], str],
             expr: sp.Expr, shapes: Mapping[sp.Symbol, Any] | None, ints: Set[sp.Symbol],
             generation: int, reserved: Set[str] = frozenset()) -> tuple[str, list[str]] | None:
    """The text :func:`printed` fills in and the names of its placeholders ``_s0000``, … in
    order; None where ``expr`` is printed directly."""
    symbols = expr.free_symbols if isinstance(expr, sp.Basic) else set()
    ordered = sorted(symbols, key=lambda s: s.name)  # type: ignore[attr-defined]
    names = [s.name for s in ordered]  # type: ignore[attr-defined]
    if not _plain(ordered, names, reserved):
        return None
    marks = _placeholders(len(ordered))
    try:
        canonical = substitute(expr, dict(zip(names, marks)), {}, strict=True)
    except NotAlike:
        return None
    shown = None if shapes is None else tuple(shapes.get(s, _MISSING) for s in ordered)  # type: ignore[call-overload]
    labels = tuple(i for i, s in enumerate(ordered) if s in ints)
    try:
        return _template(print_, canonical, shown, labels, generation), names
    except Exception:  # its error names the placeholders: print it directly, for the real one
        return None


def placeholder(i: int) -> str:
    """The name of the ``i``-th placeholder of :func:`template`."""
    return f"_s{i:04d}"


_MISSING = object()


@lru_cache(maxsize=4096)
def _template(print_: Callable[..., str], canonical: sp.Expr, shown: tuple | None, labels: tuple[int, ...],
              generation: int) -> str:
    marks = _placeholders(max(labels, default=-1) + 1 if shown is None else len(shown))
    shapes = None if shown is None else {m: s for m, s in zip(marks, shown) if s is not _MISSING}
    return print_(canonical, shapes, frozenset(marks[i] for i in labels))
