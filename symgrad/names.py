"""The names generated code reads: each one must be defined or imported by the module.

A SymPy expression whose NumPy spelling is a bare ``nan``, ``inf``, ``zoo``
or ``math.erf`` compiles to code that fails only when it runs, with a
``NameError``.  :func:`check_names` finds such a name in the text of a
module before it is run or written, and refuses it with an
:class:`~symgrad.errors.UnsupportedError` naming the name and the line.
"""

from __future__ import annotations

import ast
import builtins
import importlib
from types import ModuleType

from .errors import UnsupportedError

BUILTINS = frozenset(dir(builtins))


def check_names(source: str) -> None:
    """Refuse ``source`` if a function in it reads a name that nothing defines or imports.

    Names are defined by the module (functions, assignments, imports), by a
    function's parameters and assignments, or are Python's builtins.  An
    attribute of an imported NumPy (``np.exp``) must exist in NumPy.

    >>> check_names("import numpy as np\\ndef f(x):\\n    y = np.exp(x)\\n    return y")
    >>> check_names("import numpy as np\\ndef f(x):\\n    return x*nan")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    symgrad.errors.UnsupportedError: the generated code reads nan, which it neither defines nor ...
    """
    tree = ast.parse(source)
    defined = set(BUILTINS)
    modules: dict[str, ModuleType] = {}
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                defined.add(alias.asname or alias.name.split(".")[0])
                if isinstance(node, ast.Import) and alias.name == "numpy":
                    modules[alias.asname or "numpy"] = importlib.import_module("numpy")
        else:
            defined.update(_stored(node))
    lines = source.splitlines()
    for function in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
        local = defined | {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
        local |= _stored(function)
        for read in ast.walk(function):
            name = _unknown(read, local, modules)
            if name is not None:
                number = getattr(read, "lineno", 0)
                line = lines[number - 1].strip() if 0 < number <= len(lines) else ""
                raise UnsupportedError(
                    f"the generated code reads {name}, which it neither defines nor imports: {line}"
                )


def _stored(node: ast.AST) -> set[str]:
    """The names ``node`` binds: assignment targets, loop variables, nested definitions."""
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            names.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            names.add(n.name)
    return names


def _unknown(node: ast.AST, defined: set[str], modules: dict[str, ModuleType]) -> str | None:
    """The name ``node`` reads that is not defined (``nan``, ``np.erf``), else None."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in defined:
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
        path: list[str] = []
        base: ast.AST = node
        while isinstance(base, ast.Attribute):
            path.insert(0, base.attr)
            base = base.value
        if isinstance(base, ast.Name) and base.id in modules:
            value: object = modules[base.id]
            for i, attr in enumerate(path):
                if not hasattr(value, attr):
                    return ".".join([base.id, *path[: i + 1]])
                value = getattr(value, attr)
    return None
