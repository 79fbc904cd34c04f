"""The names generated code reads: each one must be defined or imported by the module.

A SymPy expression whose NumPy spelling is a bare ``nan``, ``inf``, ``zoo``
or ``math.erf`` compiles to code that fails only when it runs, with a
``NameError``.  :func:`check_names` finds such a name in the text of a
module before it is run or written, and refuses it with an
:class:`~symgrad.errors.UnsupportedError` naming the name and the line.
"""

from __future__ import annotations

import ast
import bisect
import builtins
import importlib
import re
from collections import deque
from collections.abc import Callable, Iterator
from functools import lru_cache
from types import ModuleType
from typing import Any

from .errors import UnsupportedError
from .scalar import DELETE, line_template, one_assignment

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
    if not _all_known(source):  # a name to refuse, or text the quick check does not cover
        _check_parsed(source)


def _check_parsed(source: str) -> None:
    """:func:`check_names` from the syntax tree of the whole text: the error names the first
    unknown name a function reads, and its line."""
    defined = set(BUILTINS)
    modules, reads = _module_reads(ast.parse(source), defined)
    lines = source.splitlines()
    for function, read, _ in reads:
        local = defined | {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
        for n in read:
            name = _unknown(n, local, modules)
            if name is not None:
                number = getattr(n, "lineno", 0)
                line = lines[number - 1].strip() if 0 < number <= len(lines) else ""
                raise UnsupportedError(
                    f"the generated code reads {name}, which it neither defines nor imports: {line}"
                )


Read = tuple[ast.FunctionDef, list[ast.AST], list[Any]]  # a function, its reads, what visit found


def _module_reads(tree: ast.Module, defined: set[str],
                  visit: Callable[[ast.AST], Any] | None = None) -> tuple[dict[str, ModuleType], list[Read]]:
    """One walk of a module: the names it defines (added to ``defined``), the modules it imports
    by name, and each function's reads in :func:`_walk` order, with what ``visit`` (if given)
    makes of the function's other nodes (None: nothing); ``visit`` sees the other statements'
    nodes too."""
    modules: dict[str, ModuleType] = {}
    reads: list[Read] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                defined.add(alias.asname or alias.name.split(".")[0])
                if isinstance(node, ast.Import) and alias.name == "numpy":
                    modules[alias.asname or "numpy"] = importlib.import_module("numpy")
        elif isinstance(node, ast.FunctionDef):  # one walk: the names it binds and those it reads
            read: list[ast.AST] = []
            found: list[Any] = []
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
                elif visit is not None and (what := visit(n)) is not None:
                    found.append(what)
            reads.append((node, read, found))
        else:
            defined.update(_stored(node))
            if visit is not None:
                for n in ast.walk(node):
                    visit(n)
    return modules, reads


def _walk(root: ast.AST) -> Iterator[ast.AST]:
    """Every node under ``root`` but the expression contexts (``Load``, ``Store``, ``Del``), in
    :func:`ast.walk`'s order, with less overhead per node."""
    todo = deque([root])
    while todo:
        node = todo.popleft()
        yield node
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, ast.AST):
                if not isinstance(value, ast.expr_context):  # Load, Store, Del: nothing under them
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


# -- the quick check: one-line assignments read once per class of lines alike but for their names --

Token = int | str  # a hole of a line's template (the i-th name), or a word the template keeps
Chains = tuple[tuple[Token, tuple[str, ...]], ...]  # attribute chains read: (base, attributes)
Names = tuple[tuple[Token, ...], tuple[Token, ...], Chains]


def _all_known(source: str) -> bool:
    """True if every name a function of ``source`` reads is defined or imported, as
    :func:`_check_parsed` decides, found without parsing most lines.

    Each one-line assignment (:func:`symgrad.scalar.line_template`) or ``del`` becomes
    ``pass`` in a skeleton of the text, which is parsed, and each ``"key": value,`` line of a
    dictionary written a line an entry becomes a blank line; the names such a line stores and
    reads come from its template, read once per class of lines alike but for their names.
    False where a name is unknown (the full check then names it and its line), where the
    skeleton does not hold each ``pass`` as a statement of its own, or where a blank line is
    not inside a dictionary of a function.
    """
    skeleton: list[str] = []
    runs: dict[int, list[tuple[Names, list[str]]]] = {}  # a pass's line number: the lines it stands for
    entries: dict[int, tuple[Names, list[str]]] = {}  # a blank line's number: the entry it stands for
    alike: dict[str, tuple[bool, Names, list[str]] | None] = {}  # a line's text: its names, once per text
    run: list[tuple[Names, list[str]]] | None = None
    indent = ""
    for line in source.splitlines():
        body = line.lstrip(" ")
        line_of = alike[body] if body in alike else alike.setdefault(body, _line_names(body))
        if line_of is None:
            skeleton.append(line)
            run = None
        elif line_of[0]:  # a dictionary's entry
            skeleton.append("")
            entries[len(skeleton)] = line_of[1:]
            run = None
        elif run is not None and line[:len(line) - len(body)] == indent:
            run.append(line_of[1:])  # one pass for a run of them at one indentation: less to parse
        else:
            indent = line[:len(line) - len(body)]
            skeleton.append(indent + "pass")
            run = runs[len(skeleton)] = [line_of[1:]]
    if not runs and not entries:
        return False
    try:
        tree = ast.parse("\n".join(skeleton))
    except SyntaxError:
        return False
    seen: set[int] = set()
    entry_lines = sorted(entries)

    def filled(token: Token, names: list[str]) -> str:
        return names[token] if isinstance(token, int) else token

    def line_names(node: ast.AST) -> list[tuple[Names, list[str]]] | None:
        """The names of the lines ``node`` stands for, and their words: the one-line statements
        of a pass (after storing their targets), or the entries on the blank lines of a
        dictionary."""
        if isinstance(node, ast.Dict) and node.end_lineno is not None:
            inside = entry_lines[bisect.bisect_right(entry_lines, node.lineno):
                                 bisect.bisect_left(entry_lines, node.end_lineno)]
            new = [n for n in inside if n not in seen]
            seen.update(new)
            return [entries[n] for n in new]
        if not isinstance(node, ast.Pass) or node.lineno not in runs:
            return None
        seen.add(node.lineno)
        for kinds, words in runs[node.lineno]:
            defined.update(filled(t, words) for t in kinds[0])
        return runs[node.lineno]

    defined = set(BUILTINS)
    modules, reads = _module_reads(tree, defined, line_names)
    if seen != runs.keys() | entries.keys():  # a line inside another statement, or a string
        return False
    chains: dict[tuple[str, tuple[str, ...]], bool] = {}
    for function, read, templated in reads:
        params = {a.arg for a in ast.walk(function.args) if isinstance(a, ast.arg)}
        needed: set[str] = set()  # the names the function's templated lines read
        for group in templated:
            for names, words in group:
                holes, kept, attributes = _reads_of(names)
                needed.update(kept)
                needed.update(map(words.__getitem__, holes))
                for base, path in attributes:
                    real = filled(base, words)
                    if real in modules:
                        known = chains.get((real, path))
                        if known is None:
                            known = chains[real, path] = _has_path(modules[real], path)
                        if not known:
                            return False
        needed.update(n.id for n in read if n.__class__ is ast.Name)
        if not needed.difference(defined).issubset(params):
            return False
        if any(_unknown(n, defined, modules) is not None for n in read if n.__class__ is not ast.Name):
            return False
    return True


@lru_cache(maxsize=4096)
def _reads_of(names: Names) -> tuple[tuple[int, ...], tuple[str, ...], Chains]:
    """A template's reads (:func:`_names_in`) as the holes it reads, the words it keeps and
    reads, and its attribute chains."""
    loads = names[1]
    return (tuple(t for t in loads if isinstance(t, int)), tuple(t for t in loads if isinstance(t, str)),
            names[2])


def _has_path(value: object, path: tuple[str, ...]) -> bool:
    """``value.a.b...`` exists for the attributes of ``path``."""
    for attr in path:
        if not hasattr(value, attr):
            return False
        value = getattr(value, attr)
    return True


_ENTRY = re.compile(r"""(['"])[A-Za-z_]\w*\1: (.+),""")  # "key": value, in a dictionary a line an entry


def _line_names(line: str) -> tuple[bool, Names, list[str]] | None:
    """Whether a line (without its indentation) is a dictionary's entry, the names it stores,
    reads and reads attributes of (:func:`_names_in`) and the words that fill them; None for
    a line that is not a one-line assignment, a ``del`` of names or an entry."""
    deletion = DELETE.fullmatch(line)
    if deletion:
        deleted = deletion[1].split(", ")
        return False, (tuple(range(len(deleted))), (), ()), deleted
    entry = _ENTRY.fullmatch(line)
    found = line_template(line if entry is None else f"_ = {entry[2]}")
    names = None if found is None else _names_in(found[0])
    if names is None or found is None:
        return None
    return (True, ((), *names[1:]), found[1]) if entry else (False, names, found[1])


@lru_cache(maxsize=4096)
def _names_in(template: str) -> Names | None:
    """The names a template's one assignment stores, the names it reads, and the attribute
    chains it reads (base, attributes), as holes or kept words; None for anything else."""
    statement = one_assignment(template)
    if statement is None:
        return None
    stores: list[Token] = []
    loads: list[Token] = []
    attributes: list[tuple[Token, tuple[str, ...]]] = []
    for n in _walk(statement):
        if isinstance(n, ast.Name):
            (loads if isinstance(n.ctx, ast.Load) else stores).append(_token(n.id))
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load):
            path: list[str] = []
            base: ast.AST = n
            while isinstance(base, ast.Attribute):
                path.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name):
                attributes.append((_token(base.id), tuple(path)))
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda)):
            return None  # not in a one-line assignment; left to the full check
    return tuple(stores), tuple(loads), tuple(attributes)


def _token(name: str) -> Token:
    """A template's name as a token: the number of its hole ``ξiξ``, or the kept word."""
    return int(name[1:-1]) if name.startswith("\u03be") else name
