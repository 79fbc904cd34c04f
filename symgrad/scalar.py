"""Scalar code for a compiled graph of scalars: the same lines, spelled for Python floats.

When every input of a compiled function is a Python or NumPy float, NumPy's
per-call overhead (a ufunc dispatch costs about as much as a whole scalar
expression in Python) dominates.  :func:`scalar_body` rewrites the generated
NumPy lines of a function body (their syntax tree, not their text) into lines
for floats:

- ``np.exp``, ``np.log``, ``np.sin``, ... become the :mod:`math` module's
  functions, ``np.abs``/``np.maximum``/``np.minimum`` Python's ``abs``/``max``/``min``;
- the stable sigmoid ``np.exp(np.minimum(a, 0.0))/(1 + np.exp(-np.abs(a)))`` becomes a test of the sign
  of ``a`` and one ``exp`` of a number that is not positive (inline for a name,
  else ``_sigmoid(a)``); σ(a) and σ(−a) of one name ``a`` share that ``exp``,
  ``_e_a = exp(-|a|)``, computed once before the first line that needs it, each σ
  one division of its numerator (1 or ``_e_a``) by ``1 + _e_a``;
- integer constants in arithmetic become floats (float-with-float operations are
  the interpreter's fast ones), ``a**2`` of a name ``a*a``;
  ``np.logaddexp(0, a)`` becomes ``_softplus(a)``, ``np.logaddexp(a, b)`` ``_logaddexp(a, b)``;
- the tests for a batch of points (``q.__class__ is np.ndarray``) and what they guard go,
  and so do the ``del`` lines that free arrays early.

Anything else keeps its NumPy spelling, which is right for floats too, only
slower.  Where :mod:`math` refuses a value NumPy would turn into ``nan`` or
``inf`` (``log`` of a negative, an overflowing ``exp``) or Python's division
fails, the scalar lines raise one of :data:`FALLBACK` and the compiled entry
point runs the NumPy lines instead, so both give the same answer then too.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from functools import lru_cache
from typing import Any, NamedTuple

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


def _sigmoid_of(a: ast.expr, shared: list[str] | None = None) -> ast.expr:
    """σ(a): inline by the sign of a name (or its negation), else a call of ``_sigmoid``.

    With ``shared``, σ(n) and σ(−n) of a name ``n`` read ``_e_n = exp(−|n|)``, whose
    name is appended to ``shared`` for the caller to define before the line.
    """
    negated = isinstance(a, ast.UnaryOp) and isinstance(a.op, ast.USub) and isinstance(a.operand, ast.Name)
    if not (isinstance(a, ast.Name) or negated):
        return _call("_sigmoid", a)
    if shared is not None:
        name = a.operand.id if negated else a.id  # type: ignore[attr-defined]
        e = f"_e_{name}"
        shared.append(name)
        # σ(n) is 1/(1 + e) for n ≥ 0 and e/(1 + e) below: one division, of a chosen numerator
        first, second = (e, "1.0") if negated else ("1.0", e)
        inline = f"(({first} if {name} >= 0.0 else {second}) / (1.0 + {e}))"
        return ast.parse(inline, mode="eval").body
    text = ast.unparse(a)
    minus = ast.unparse(_negated(a))
    inline = f"(1.0 / (1.0 + _exp({minus})) if {text} >= 0.0 else (_sig_e := _exp({text})) / (1.0 + _sig_e))"
    return ast.parse(inline, mode="eval").body


def _shared_line(name: str) -> str:
    """``_e_n = exp(−|n|)``, which σ(n) and σ(−n) of a name ``n`` read."""
    return f"_e_{name} = _exp(-{name} if {name} >= 0.0 else {name})"


def _sigmoid_argument(node: ast.AST) -> ast.expr | None:
    """``a`` if ``node`` is the sigmoid's NumPy spelling, ``np.exp(np.minimum(a, 0.0))/(1 +
    np.exp(-np.abs(a)))``."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)):
        return None
    top, sum_ = node.left, node.right
    if not (_np_call(top, "exp") and len(top.args) == 1):  # type: ignore[attr-defined]
        return None
    least = top.args[0]  # type: ignore[attr-defined]
    if not (_np_call(least, "minimum") and len(least.args) == 2 and _zero(least.args[1])):
        return None
    a = least.args[0]
    if not (isinstance(sum_, ast.BinOp) and isinstance(sum_.op, ast.Add) and _one(sum_.left)):
        return None
    b = _negated_abs_exp(sum_.right)
    return a if b is not None and ast.dump(a) == ast.dump(b) else None  # type: ignore[no-any-return]


def _negated_abs_exp(node: ast.AST) -> ast.expr | None:
    """``a`` if ``node`` is ``np.exp(-np.abs(a))``: the exponential a sigmoid shares."""
    if not (_np_call(node, "exp") and len(node.args) == 1):  # type: ignore[attr-defined]
        return None
    minus = node.args[0]  # type: ignore[attr-defined]
    if not (isinstance(minus, ast.UnaryOp) and isinstance(minus.op, ast.USub)
            and _np_call(minus.operand, "abs") and len(minus.operand.args) == 1):  # type: ignore[attr-defined]
        return None
    return minus.operand.args[0]  # type: ignore[attr-defined,no-any-return]


def _one(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value == 1 and not isinstance(node.value, bool)


def _int(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is int


class _Scalar(ast.NodeTransformer):
    def __init__(self, shared: list[str] | None = None):
        self.shared = shared  # names whose exp(-|name|) the lines read, when shared

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        a = _sigmoid_argument(node)
        if a is not None:  # exp(min(a, 0))/(1 + exp(-|a|)) = sigmoid(a)
            return _sigmoid_of(self.visit(a), self.shared)
        self.generic_visit(node)
        if isinstance(node.op, ast.Pow):
            square = _int(node.right) and node.right.value == 2  # type: ignore[attr-defined]
            if square and isinstance(node.left, ast.Name):
                again = ast.Name(id=node.left.id, ctx=ast.Load())
                return ast.BinOp(left=node.left, op=ast.Mult(), right=again)
        elif _int(node.left):
            node.left = ast.Constant(float(node.left.value))  # type: ignore[attr-defined]
        if not isinstance(node.op, ast.Pow) and _int(node.right):
            node.right = ast.Constant(float(node.right.value))  # type: ignore[attr-defined]
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        node.left = ast.Constant(float(node.left.value)) if _int(node.left) else node.left  # type: ignore[attr-defined]
        node.comparators = [ast.Constant(float(c.value)) if _int(c) else c  # type: ignore[attr-defined]
                            for c in node.comparators]
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
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

    >>> scalar_body(["q1 = np.exp(np.minimum(x + y, 0.0))/(1 + np.exp(-np.abs(x + y)))",
    ...              "q2 = np.log(q1)*np.exp(y)"])
    ['q1 = _sigmoid(x + y)', 'q2 = _log(q1) * _exp(y)']
    >>> pair = ["q2 = np.exp(np.minimum(q1, 0.0))/(1 + np.exp(-np.abs(q1)))",
    ...         "dq1 = q2*(np.exp(np.minimum(-q1, 0.0))/(1 + np.exp(-np.abs(-q1))))"]  # σ(±q1)
    >>> for line in scalar_body(pair):
    ...     print(line)
    _e_q1 = _exp(-q1 if q1 >= 0.0 else q1)
    q2 = (1.0 if q1 >= 0.0 else _e_q1) / (1.0 + _e_q1)
    dq1 = q2 * ((_e_q1 if q1 >= 0.0 else 1.0) / (1.0 + _e_q1))
    """
    out: list[str] = []
    defined: set[str] = set()  # names n whose _e_n holds exp(-|n|)
    pieces = _pieces(lines)
    if pieces is None:  # lines the templates do not split into statements: all of them at once
        pieces = [(ast.parse("\n".join(lines)).body, lines)]
    for piece in pieces:
        if isinstance(piece, _Rewrite):
            for name in piece.shared:
                if name not in defined:
                    out.append(_shared_line(name))
                    defined.add(name)
            out += piece.lines
            defined -= piece.targets
        else:
            statements, text = piece
            for statement in statements:
                try:
                    out += _statement(statement, defined)
                except RecursionError:  # a product too deep to walk: its NumPy spelling works for floats too
                    out += text[statement.lineno - 1:statement.end_lineno]
    return out


# -- one rewrite per class of assignments alike but for their names ---------------------------------

_ASSIGNMENT = re.compile(r"[A-Za-z_]\w* = ")
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_]\w*")  # a name; not an attribute, not a number's exponent
_IDENTIFIER_SPLIT = re.compile(f"({_IDENTIFIER.pattern})")
_KEPT = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | {"np"}  # what the rewrite reads
_UNTEMPLATED = re.compile(r"['\"#\\;:]| \.|\. ")  # quotes, comments, backslashes, spaces around dots
_HOLE = re.compile("\u03be(\\d+)\u03be")  # ξ0ξ, ξ1ξ, ...: the names of a template, in order
_ARRAY_TEST = r"[A-Za-z_]\w*\.__class__ is np\.ndarray"
_BATCH_TEST = re.compile(f"if {_ARRAY_TEST}(?: or {_ARRAY_TEST})*:(  # .*)?")  # the test for a batch
_PLAIN_RETURN = re.compile(r'return [A-Za-z_]\w*, \{(?:"[A-Za-z_]\w*": [A-Za-z_]\w*(?:, (?="))?)*\}')
DELETE = re.compile(r"del ([A-Za-z_]\w*(?:, [A-Za-z_]\w*)*)(  # .*)?")  # a del of names, and its comment


class _Rewrite(NamedTuple):
    """A simple assignment rewritten: the names whose ``_e_`` line it needs first, its lines
    and the names it assigns."""

    shared: tuple[str, ...]
    lines: tuple[str, ...]
    targets: frozenset[str]


def _pieces(lines: list[str]) -> list[tuple[list[ast.stmt], list[str]] | _Rewrite] | None:
    """The body as parsed statements (with their lines) and rewritten simple assignments, in order.

    A one-line assignment (``q3 = np.exp(-np.logaddexp(0, -q2))``) is rewritten once per class
    of lines alike but for their names (:func:`line_template`); the lines between them are parsed
    as before.  A block that runs only for a batch (``if q.__class__ is np.ndarray:`` with no
    ``else``) and a ``del`` of names are dropped, and a ``return`` of a name and a dictionary of
    names is kept as written, none of them parsed.  None if a run of those lines does not parse
    by itself (a statement that spans the lines of a template): then the caller parses the
    whole body.
    """
    pieces: list[tuple[list[ast.stmt], list[str]] | _Rewrite] = []
    run: list[str] = []

    def flush() -> bool:
        if run:
            try:
                pieces.append((ast.parse("\n".join(run)).body, list(run)))
            except SyntaxError:
                return False
            run.clear()
        return True

    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if _BATCH_TEST.fullmatch(line):  # its block runs only for arrays: nothing for floats
            end = i
            while end < len(lines) and lines[end].startswith(" "):
                end += 1
            if end == len(lines) or not lines[end].startswith(("else", "elif")):
                if not flush():
                    return None
                i = end
                continue
        if DELETE.fullmatch(line):  # frees arrays' memory early; nothing to free for floats
            if not flush():
                return None
            continue
        if _PLAIN_RETURN.fullmatch(line):  # a return of names: the same for floats
            if not flush():
                return None
            pieces.append(_Rewrite((), (line,), frozenset()))
            continue
        found = line_template(line)
        done = None if found is None else _rewritten(found[0])
        if done is None:
            run.append(line)
            continue
        if not flush():
            return None
        names = found[1]  # type: ignore[index]
        shared, rewritten, targets = done
        pieces.append(_Rewrite(tuple(names[i] for i in shared), tuple(_filled(t, names) for t in rewritten),
                               frozenset(names[i] for i in targets)))
    return pieces if flush() else None


def _filled(template: str, names: list[str]) -> str:
    """``template`` with its holes ``ξiξ`` replaced by ``names[i]``."""
    return _format(template).format(*names)


@lru_cache(maxsize=4096)
def _format(template: str) -> str:
    """``template`` as a format string: ``ξiξ`` becomes ``{i}``, a brace doubled."""
    return _HOLE.sub(r"{\1}", template.replace("{", "{{").replace("}", "}}"))


def line_template(line: str) -> tuple[str, list[str]] | None:
    """``line`` with its names replaced by ``ξ0ξ``, ``ξ1ξ``, ... in order of appearance, and the
    names; None for a line that is not a plain one-line assignment of names, numbers and
    NumPy calls (quotes, comments, backslashes, spaces around dots, other characters)."""
    if not line.isascii() or not _ASSIGNMENT.match(line) or _UNTEMPLATED.search(line):
        return None
    names: dict[str, str] = {}
    parts = _IDENTIFIER_SPLIT.split(line)  # text, a name, text, a name, ..., text
    for i in range(1, len(parts), 2):
        word = parts[i]
        if word not in _KEPT:
            found = names.get(word)
            if found is None:
                found = names[word] = f"\u03be{len(names)}\u03be"
            parts[i] = found
    return "".join(parts), list(names)


def one_assignment(text: str) -> ast.Assign | None:
    """The syntax tree of ``text`` if it is one assignment (a fresh one: the caller may change it)."""
    try:
        statements = ast.parse(text).body
    except SyntaxError:
        return None
    return statements[0] if len(statements) == 1 and isinstance(statements[0], ast.Assign) else None


@lru_cache(maxsize=4096)
def _rewritten(template: str) -> tuple[tuple[int, ...], tuple[str, ...], tuple[int, ...]] | None:
    """The rewrite of a template (:func:`line_template`): the holes whose ``_e_`` line it needs first,
    its lines, and the holes it assigns; None where the template is not one simple assignment."""
    statement = one_assignment(template)
    if statement is None:
        return None
    shared: list[str] = []
    try:
        rewritten = _Scalar(shared).visit(statement)
        lines = tuple(_unparse(rewritten).splitlines())
    except RecursionError:  # a product too deep to walk: its NumPy spelling works for floats too
        return (), (template,), ()
    targets = {n.id for t in statement.targets for n in ast.walk(t) if isinstance(n, ast.Name)}

    def hole(name: str) -> int:
        match = _HOLE.fullmatch(name)
        if match is None:  # a kept word cannot be assigned to or shared
            raise ValueError(name)
        return int(match.group(1))

    try:
        return tuple(hole(n) for n in dict.fromkeys(shared)), lines, tuple(hole(n) for n in targets)
    except ValueError:
        return None


def _unparse(statement: ast.stmt) -> str:
    """The statement's text.  Only a statement made anew (no line number) needs its locations
    filled in (which walks all of it): the text does not depend on them."""
    try:
        return ast.unparse(statement)
    except AttributeError:
        return ast.unparse(ast.fix_missing_locations(statement))


def _statement(statement: ast.stmt, defined: set[str]) -> list[str]:
    """One top-level statement's lines for floats, after the ``_e_n`` lines it needs first."""
    if isinstance(statement, ast.If) and _batch_test(statement.test):  # its else runs for floats
        return [line for s in statement.orelse for line in _statement(s, defined)]
    if isinstance(statement, ast.Delete):  # frees arrays' memory early; nothing to free for floats
        return []
    simple = isinstance(statement, (ast.Assign, ast.AugAssign, ast.Return, ast.Expr))
    shared: list[str] = []
    rewritten = _Scalar(shared if simple else None).visit(statement)
    out = []
    for name in dict.fromkeys(shared):
        if name not in defined:
            out.append(_shared_line(name))
            defined.add(name)
    for s in rewritten if isinstance(rewritten, list) else [rewritten]:
        out += _unparse(s).splitlines()
    # a simple statement holds no other statement: an assignment is itself or nothing
    assigns = [statement] if isinstance(statement, (ast.Assign, ast.AugAssign)) else [] if simple else \
        [node for node in ast.walk(statement) if isinstance(node, (ast.Assign, ast.AugAssign))]
    targets = [t for node in assigns
               for t in (node.targets if isinstance(node, ast.Assign) else [node.target])]
    defined -= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}  # a new value
    return out
