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
from collections import deque
from collections.abc import Iterator
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
    reads: list[tuple[ast.FunctionDef, list[ast.AST]]] = []  # each function's reads, in ast.walk order
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                defined.add(alias.asname or alias.name.split(".")[0])
                if isinstance(node, ast.Import) and alias.name == "numpy":
                    modules[alias.asname or "numpy"] = importlib.import_module("numpy")
        elif isinstance(node, ast.FunctionDef):  # one walk: the names it binds and those it reads
            read: list[ast.AST] = []
            for n in _walk(node):
                if isinstance(n, ast.Name):
                    if isinstance(n.ctx, ast.Load):
                        read.append(n)
                    else:
                        defined.add(n.id)
                elif isinstance(n, ast.Attribute):
                    if isinstance(n.ctx, ast.Load):
                        read.append(n)
                elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
                    defined.add(n.name)
            reads.append((node, read))
        else:
            defined.update(_stored(node))
    lines = source.splitlines()
    for function, read in reads:
        local = defined | {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
        for n in read:
            name = _unknown(n, local, modules)
            if name is not None:
                number = getattr(n, "lineno", 0)
                line = lines[number - 1].strip() if 0 < number <= len(lines) else ""
                raise UnsupportedError(
                    f"the generated code reads {name}, which it neither defines nor imports: {line}"
                )


def _walk(root: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``root``, in :func:`ast.walk`'s order, with less overhead per node."""
    todo = deque([root])
    while todo:
        node = todo.popleft()
        yield node
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, ast.AST):
                todo.append(value)
            elif value.__class__ is list:
                todo.extend([v for v in value if isinstance(v, ast.AST)])


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
