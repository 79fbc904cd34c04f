"""The names a printed spelling reads: each one must be something the generated code has.

A spelling that reads ``math.tanh`` (a ``define_op`` spelling), ``np.erf`` or
``scipy.special.erf`` unimported would compile to code that fails only when
it runs, with a ``NameError`` or ``AttributeError``.  The printers
(:mod:`symgrad.printing`) hand every text they print to
:func:`check_spelling`, once per class of alike expressions, and refuse such
a text with an :class:`~symgrad.errors.UnsupportedError` naming the name.
The rest of a generated module is written by symgrad's own code, so no
module is parsed again to find its names: compiling a graph of 10⁵ nodes
reads none of its text twice.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Set

import numpy as np

from .errors import UnsupportedError

BUILTINS = frozenset(dir(builtins))


def check_spelling(text: str, symbols: Set[str], module: str = "np", imported: Set[str] = frozenset()) -> str:
    """``text``, the printed expression, if each name it reads is one of ``symbols`` (the names of
    the expression's symbols), the array ``module`` (``np.exp`` must be in NumPy; ``xp``'s
    functions are checked against the library when it is known), a name ``imported`` (by the
    ops' declared imports) or one of Python's builtins; else an UnsupportedError naming the
    first other name.

    >>> check_spelling("np.exp(x) + y", {"x", "y"})
    'np.exp(x) + y'
    >>> check_spelling("math.tanh(x)", {"x"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symgrad.errors.UnsupportedError: the spelling math.tanh(x) reads math, which ...
    """
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise UnsupportedError(f"the spelling {text} is not a Python expression") from None
    nodes = list(ast.walk(tree))
    bound = {n.id for n in nodes if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)}
    bound |= {a.arg for n in nodes if isinstance(n, ast.arguments) for a in ast.walk(n)
              if isinstance(a, ast.arg)}  # a lambda's parameters
    known = symbols | bound | imported | BUILTINS | {module}
    for n in nodes:
        name = _unknown(n, known, module)
        if name is not None:
            raise UnsupportedError(f"the spelling {text} reads {name}, which the generated code "
                                   "neither defines nor imports")
    return text


def _unknown(node: ast.AST, known: Set[str], module: str) -> str | None:
    """The name ``node`` reads that is not ``known`` (``nan``), or the NumPy attribute that does
    not exist (``np.erf``); else None."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in known:
        return node.id
    if module == "np" and isinstance(node, ast.Attribute):
        path: list[str] = []
        base: ast.AST = node
        while isinstance(base, ast.Attribute):
            path.insert(0, base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id == "np":
            value: object = np
            for i, attr in enumerate(path):
                if not hasattr(value, attr):
                    return ".".join(["np", *path[: i + 1]])
                value = getattr(value, attr)
    return None
