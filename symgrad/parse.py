"""Expression strings → graph, through Python's syntax tree and a whitelist.

Nothing in the text is ever evaluated: the string is parsed by :func:`ast.parse`
and only numbers, names, the arithmetic operators (with ``@``), unary minus,
parentheses, the transposes ``.T`` and ``.mT``, and calls to functions in the
op table, in :mod:`symgrad.composed` and in :data:`SPELLINGS` (NumPy's names:
``reshape``, ``swapaxes``, …, also as methods, ``x.reshape(64, -1)``) are
accepted.  Keywords (``axis=0``, ``keepdims=True``) and the arguments that are
not arrays (``reshape(x, (64, -1))``) are literals: integers, True/False and
tuples of integers; a new shape may also name a declared dimension
(``reshape(X, (N, -1))``), looked up among the names in ``shapes=``.  Every
other construct is refused with a :class:`ParseError` that points at its column.
"""

from __future__ import annotations

import ast
import inspect
import sys
import warnings
from collections.abc import Callable
from typing import Any

import sympy as sp

from . import tracing
from .build import Builder, Operand
from .composed import COMPOSED
from .dims import dim
from .errors import ParseError, ShapeError, SymgradError
from .hints import did_you_mean
from .ops import FUNCTIONS, INFIX, OPS
from .tracing import Traced

MAX_LENGTH = 100_000

BINARY: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@",
}
# keyword arguments of ops accepted in strings: what literal each takes
KEYWORDS: dict[str, tuple[str, str]] = {
    "axis": ("an integer or a tuple of integers", "axis=0"),
    "keepdims": ("True or False", "keepdims=True"),
}
# NumPy's names for ops of the table, accepted in strings as well
ALIASES = {"absolute": "abs", "maximum": "max", "minimum": "min", "matmul": "matmul",
           "reduce_sum": "sum"}
# NumPy spellings that are functions of one array and literals: name → function
SPELLINGS: dict[str, Callable[..., Any]] = {
    "reshape": tracing.reshape, "transpose": tracing.transpose, "permute_dims": tracing.transpose,
    "swapaxes": tracing.swapaxes, "matrix_transpose": tracing.matrix_transpose,
}
# methods of arrays accepted in strings (``x.reshape(64, -1)``), and attributes
METHODS: dict[str, Callable[..., Any]] = {
    "reshape": Traced.reshape, "transpose": Traced.transpose, "swapaxes": Traced.swapaxes,
    "sum": Traced.sum, "mean": Traced.mean, "max": Traced.max, "min": Traced.min,
    "flatten": Traced.flatten,
}
ATTRIBUTES = {"T": "transpose", "mT": "matrix_transpose"}
# of one operand, max and min reduce it (as np.max); of two, they compare entries (as np.maximum)
REDUCING = {"max": "amax", "min": "amin"}
SHOWN: dict[type, str] = {
    ast.FloorDiv: "//", ast.Mod: "%", ast.LShift: "<<", ast.RShift: ">>",
    ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.Not: "not", ast.Invert: "~",
}
NAMED_CONSTANTS = {"pi": sp.pi}
CONSTRUCTS: dict[type, str] = {
    ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions", ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions",
    ast.Compare: "comparisons", ast.BoolOp: "boolean operators", ast.IfExp: "conditionals",
    ast.List: "lists", ast.Tuple: "tuples", ast.Dict: "dicts", ast.Set: "sets",
    ast.JoinedStr: "f-strings", ast.NamedExpr: "assignment expressions",
    ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield", ast.Starred: "starred arguments",
    ast.Slice: "slices",
}


def parse(text: str, builder: Builder):
    """Parse ``text`` into a Graph using ``builder``; see :func:`symgrad.graph`."""
    if not isinstance(text, str):
        raise ParseError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"expression is too long ({len(text)} characters; at most {MAX_LENGTH})")
    if not text.strip():
        raise ParseError("empty expression")
    limit = sys.getrecursionlimit()
    try:
        # Python builds the syntax tree of a long sum recursively; let it, within bounds
        sys.setrecursionlimit(max(limit, 30_000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # "\\d" in a string literal
            warnings.simplefilter("ignore", DeprecationWarning)  # the same, before Python 3.12
            tree = _parse_nested(text.strip())
    except SyntaxError as e:
        raise ParseError(f"syntax error: {e.msg}", _syntax_column(e, text.strip()),
                         text.strip()) from None
    except (ValueError, RecursionError, MemoryError) as e:
        reason = "nested too deeply" if not isinstance(e, ValueError) else str(e)
        raise ParseError(f"cannot parse expression: {reason}") from None
    finally:
        sys.setrecursionlimit(limit)
    source = text.strip()
    output = _Walker(builder, source).walk(tree.body)
    return builder.finish(output, source=source)


NESTING = 100  # brackets Python's parser is given nested at once (it refuses 200)


def _parse_nested(text: str) -> ast.Expression:
    """``ast.parse(text, mode="eval")``, for brackets nested deeper than Python's parser takes.

    Past every :data:`NESTING` levels, the operands of a call or group (the text between its
    parenthesis and commas) are parsed on their own, each in place of a name as long as it
    is (so every column stays where it was), and the trees are joined: loops, no recursion.
    """
    depth = top = 0
    for ch in text:
        depth += (ch in "([{") - (ch in ")]}")
        top = max(top, depth)
    if top < 2 * NESTING or any(q in text for q in "'\"#"):
        return ast.parse(text, mode="eval")
    # each parenthesis's operands: (start, end) of the text between it, its commas and its close
    operands: dict[int, list[tuple[int, int]]] = {}
    stack: list[int] = []
    for i, ch in enumerate(text):
        if ch in "([{":
            stack.append(i)
            operands[i] = [(i + 1, -1)]
        elif ch in ",)]}" and stack:
            a = operands[stack[-1]][-1][0]
            operands[stack[-1]][-1] = (a, i)
            if ch == ",":
                operands[stack[-1]].append((i + 1, -1))
            else:
                stack.pop()
        elif ch in "=:" and stack:
            operands[stack[-1]][-1] = (len(text), -1)  # a keyword or a slice: not an operand
    # cut the operands (holding brackets) of a parenthesis NESTING levels past the last cut
    cuts: dict[int, int] = {}  # start → end of each cut operand, its blanks trimmed
    level: list[int] = []  # levels since the last cut, of the open brackets (-1: a cut begins)
    ends: list[int] = []
    for i, ch in enumerate(text):
        if i in cuts:
            level.append(-1)
            ends.append(cuts[i])
        if ch in "([{":
            here = level[-1] + 1 if level else 0
            if here >= NESTING and ch == "(":
                for a, b in operands[i]:
                    operand = text[a:b] if b > a else ""
                    if "(" in operand and operand.strip():
                        a += len(operand) - len(operand.lstrip())
                        cuts[a] = b - (len(operand) - len(operand.rstrip()))
                here = 0 if any(a in cuts for a, _ in operands[i]) else here
            level.append(here)
        elif ch in ")]}" and level:
            level.pop()
        while ends and ends[-1] == i + 1:
            ends.pop()
            level.pop()
    if not cuts:
        return ast.parse(text, mode="eval")
    order = sorted(cuts)
    names = {a: f"_sg{k}_".ljust(len(text[a:cuts[a]].encode()), "_") for k, a in enumerate(order)}
    found: dict[str, ast.expr] = {}
    root: ast.expr | None = None
    for a, b in [(0, len(text)), *((a, cuts[a]) for a in order)]:  # each piece, its cuts as names
        parts, at = [], a
        for c in order:  # the cuts directly inside: those nested deeper are inside one of them
            if a < c < b and c >= at:
                parts += [text[at:c], names[c]]
                at = cuts[c]
        piece = "".join(parts) + text[at:b]
        try:
            body = ast.parse(piece, mode="eval").body
        except SyntaxError as e:
            if e.offset is not None and (e.lineno or 1) == 1:
                e.offset += a
            raise
        shift = len(text[:a].encode())
        for node in ast.walk(body):
            if isinstance(node, (ast.expr, ast.keyword)):
                if node.lineno == 1:
                    node.col_offset += shift
                if node.end_lineno == 1 and node.end_col_offset is not None:
                    node.end_col_offset += shift
        if root is None:
            root = body
        else:
            found[names[a]] = body

    def resolved(node: Any) -> Any:
        while isinstance(node, ast.Name) and node.id in found:  # a piece that is all parentheses
            node = found[node.id]
        return node

    root = resolved(root)
    todo: list[ast.AST] = [root]
    while todo:  # put each piece where its name stands
        node = todo.pop()
        for field, value in ast.iter_fields(node):
            if isinstance(value, list):
                value[:] = [resolved(v) for v in value]
                todo.extend(v for v in value if isinstance(v, ast.AST))
            elif isinstance(value, ast.AST):
                setattr(node, field, resolved(value))
                todo.append(getattr(node, field))
    return ast.Expression(body=root)


def _syntax_column(e: SyntaxError, text: str) -> int | None:
    if e.offset is None or (e.lineno or 1) != 1:
        return None
    return max(1, min(e.offset, len(text) + 1))


class _Walker:
    """Post-order walk of the syntax tree, without recursion (long sums are fine)."""

    def __init__(self, builder: Builder, text: str):
        self.builder = builder
        self.text = text
        self.keywords: dict[int, dict[str, Any]] = {}
        self.literals: dict[int, tuple[list[Any], dict[str, Any]]] = {}
        self.reducing: set[int] = set()  # max(x, axis=...) calls: reductions
        # the named dimensions of shapes=, which a new shape may use (reshape(X, (N, -1)))
        self.dims = {n for s in builder.shapes.values() if isinstance(s, (tuple, list))
                     for n in s if isinstance(n, str)}

    def walk(self, root: ast.expr) -> Operand:
        done: dict[int, Operand] = {}
        stack: list[tuple[ast.expr, bool]] = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if not ready:
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(self.children(node)))
            else:
                args = [done[id(c)] for c in self.children(node)]
                try:
                    done[id(node)] = self.apply(node, args)
                except ParseError:
                    raise
                except ShapeError as e:  # keep the kind, point at the op
                    raise type(e)(str(ParseError(str(e), self.column(node), self.text))) from None
                except SymgradError as e:
                    raise ParseError(str(e), self.column(node), self.text) from None
        return done[id(root)]

    def column(self, node: ast.AST) -> int | None:
        if getattr(node, "lineno", 1) != 1:
            return None
        offset = getattr(node, "col_offset", None)
        if offset is None:
            return None
        return len(self.text.encode()[:offset].decode(errors="ignore")) + 1

    def fail(self, message: str, node: ast.AST) -> ParseError:
        return ParseError(message, self.column(node), self.text)

    def children(self, node: ast.expr) -> list[ast.expr]:
        """The operands of an accepted node; a ParseError for anything else."""
        if isinstance(node, ast.BinOp):
            if type(node.op) not in BINARY:
                shown = SHOWN.get(type(node.op), type(node.op).__name__)
                raise self.fail(f"operator {shown} is not supported", node)
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, (ast.USub, ast.UAdd)):
                shown = SHOWN.get(type(node.op), type(node.op).__name__)
                raise self.fail(f"operator {shown} is not supported", node)
            return [node.operand]
        if isinstance(node, ast.Call):
            return self.call_arguments(node)
        if isinstance(node, (ast.Constant, ast.Name)):
            return []
        if isinstance(node, ast.Attribute):
            if node.attr not in ATTRIBUTES:
                raise self.fail(f"attribute access (.{node.attr}) is not allowed; only .T and .mT, "
                                "the transposes", node)
            return [node.value]
        what = CONSTRUCTS.get(type(node), type(node).__name__)
        raise self.fail(f"{what} are not allowed in expressions", node)

    def call_arguments(self, node: ast.Call) -> list[ast.expr]:
        """The array operands of a call; its literal arguments are read into ``self.literals``."""
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.fail("starred arguments are not allowed", arg)
        if isinstance(node.func, ast.Attribute) and node.func.attr in METHODS:
            self.read_literals(node, f".{node.func.attr}", node.args, METHODS[node.func.attr], 1)
            return [node.func.value]
        if not isinstance(node.func, ast.Name):
            raise self.fail("only calls of named functions are allowed (like exp(x))", node)
        name = node.func.id
        if name in SPELLINGS:
            if not node.args:
                raise self.fail(f"{name}() takes an array, then literals", node)
            self.read_literals(node, name, node.args[1:], SPELLINGS[name], 1)
            return node.args[:1]
        if name in REDUCING and len(node.args) == 1:
            self.reducing.add(id(node))
            name = REDUCING[name]
        if name in FUNCTIONS or name in ALIASES:
            op = OPS[ALIASES.get(name, name)]
            arity, params = op.arity, op.params
        elif name in COMPOSED:
            arity, params = COMPOSED[name].arity, COMPOSED[name].params
        else:
            known = sorted({*FUNCTIONS, *COMPOSED, *ALIASES, *SPELLINGS})
            raise self.fail(f"unknown function {name!r}{did_you_mean(name, known)} "
                            f"(known functions: {', '.join(known)})", node)
        allowed = [k for k in KEYWORDS if k in params]
        self.keywords[id(node)] = {k.arg: self.keyword(name, k, allowed) for k in node.keywords}  # type: ignore[misc]
        if len(node.args) != arity:
            plural = "s" if arity != 1 else ""
            hint = " (give the axis as axis=k)" if allowed and len(node.args) == arity + 1 else ""
            raise self.fail(f"{name}() takes {arity} argument{plural}, got {len(node.args)}{hint}", node)
        return list(node.args)

    def read_literals(self, node: ast.Call, name: str, args: list[ast.expr],
                      function: Callable[..., Any], operands: int) -> None:
        """The literal arguments of a NumPy spelling, checked against ``function``'s signature."""
        sizes = function in (tracing.reshape, Traced.reshape)  # a new shape may name dimensions
        values = [self.literal(a, f"{name}()", sizes) for a in args]
        keywords = {}
        for k in node.keywords:
            if k.arg is None:
                raise self.fail(f"{name}() takes no ** arguments", k)
            if k.arg in KEYWORDS:
                keywords[k.arg] = self.keyword(name, k, list(KEYWORDS))
            else:
                keywords[k.arg] = self.literal(k.value, f"{k.arg}=")
        try:
            inspect.signature(function).bind(*range(operands), *values, **keywords)
        except TypeError as e:
            raise self.fail(f"{name}(): {e}", node) from None
        self.literals[id(node)] = (values, keywords)

    def literal(self, v: ast.expr, what: str, sizes: bool = False) -> Any:
        """An integer, True/False or a tuple of integers, written as a literal; with ``sizes``,
        the name of a declared dimension stands for its size."""
        if isinstance(v, ast.Tuple):
            return tuple(self.literal_int(e, what, sizes) for e in v.elts)
        if isinstance(v, ast.Constant) and type(v.value) is bool:
            return v.value
        return self.literal_int(v, what, sizes)

    def literal_int(self, v: ast.expr, what: str, sizes: bool = False) -> Any:
        if sizes and self.dims and isinstance(v, ast.Name):
            if v.id in self.dims:
                return dim(v.id)
            raise self.fail(f"{what} takes integers or the named dimensions "
                            f"{', '.join(sorted(self.dims))}, not {v.id!r}", v)
        sign = 1
        if isinstance(v, ast.UnaryOp) and isinstance(v.op, ast.USub):
            sign, v = -1, v.operand
        if not (isinstance(v, ast.Constant) and type(v.value) is int):
            raise self.fail(f"{what} takes integers, True/False or tuples of integers", v)
        return sign * v.value

    def keyword(self, name: str, k: ast.keyword, allowed: list[str]) -> Any:
        """The value of ``axis=k`` or ``keepdims=True``: a literal of the keyword's kind."""
        if k.arg not in allowed:
            shown = "**" if k.arg is None else f"{k.arg}="
            takes = f"only {', '.join(a + '=' for a in allowed)}" if allowed else "no keyword arguments"
            raise self.fail(f"{name}() takes {takes}, got {shown}", k)
        try:
            value = self.literal(k.value, f"{k.arg}=")
        except ParseError:
            value = None
        return self.checked(k, value)

    def checked(self, k: ast.keyword, value: Any) -> Any:
        """``value`` if it is of the kind keyword ``k`` (``axis``, ``keepdims``) takes."""
        if k.arg not in KEYWORDS:
            return value
        kind, example = KEYWORDS[k.arg]
        fits = isinstance(value, bool) if k.arg == "keepdims" else \
            isinstance(value, tuple) or (isinstance(value, int) and not isinstance(value, bool))
        if not fits:
            raise self.fail(f"{k.arg}= takes {kind}, like {example}", k.value)
        return value

    def apply(self, node: ast.expr, args: list[Operand]) -> Operand:
        b = self.builder
        if isinstance(node, ast.BinOp):
            return b.apply(INFIX[BINARY[type(node.op)]].name, *args)
        if isinstance(node, ast.UnaryOp):
            return b.apply("mul", sp.Integer(-1), args[0]) if isinstance(node.op, ast.USub) else args[0]
        if isinstance(node, ast.Attribute):
            return getattr(Traced(b, args[0]), node.attr).operand
        if isinstance(node, ast.Call) and id(node) in self.literals:
            values, literal_keywords = self.literals[id(node)]
            if isinstance(node.func, ast.Attribute):
                function = METHODS[node.func.attr]
            else:
                function = SPELLINGS[node.func.id]  # type: ignore[attr-defined]
            return function(Traced(b, args[0]), *values, **literal_keywords).operand
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            name = ALIASES.get(node.func.id, node.func.id)
            name = REDUCING[name] if id(node) in self.reducing else name
            keywords = self.keywords[id(node)]
            if name in COMPOSED:
                result = COMPOSED[name].function(*(Traced(b, a) for a in args), **keywords)
                return result.operand if isinstance(result, Traced) else result
            return b.apply(name, *args, **keywords)
        if isinstance(node, ast.Name):
            if node.id in NAMED_CONSTANTS:
                return NAMED_CONSTANTS[node.id]
            return b.input(node.id)
        assert isinstance(node, ast.Constant)
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(f"{value!r} is not a number", node)
        return b.constant(value)
