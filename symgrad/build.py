"""The builder every front end drives: operations in, a Graph out.

Front ends (the string parser, the tracer, the SymPy converter) call
:meth:`Builder.input` and :meth:`Builder.apply` in the order the user wrote
the expression.  The builder folds constants into their consumers (so
``x + 1`` is one ``+1`` node, as in the lectures), shares equal
sub-expressions (one node, several consumers), merges associative chains at
granularity ``"nary"``, names the nodes and hands them to :class:`Graph`.
"""

from __future__ import annotations

import keyword
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import sympy as sp

from .dims import Shape, read_shape
from .errors import EvaluationError, InputError, ShapeError, SymgradError
from .hints import did_you_mean
from .ops import OPS, Op, format_constant
from .tensors import normalize_axes

GRANULARITIES = ("primitive", "nary")
SIZES = {"n": 2, "k": 3, "m": 4, "c": 3}  # sizes of the example shapes in messages
RESERVED_NAMES = frozenset({"np", "numpy", "dout", "cache"})


@dataclass(frozen=True)
class Ref:
    """A node under construction (its position in the builder's list)."""

    index: int


Operand: TypeAlias = "Ref | sp.Expr"


@dataclass
class Spec:
    kind: str  # "input" | "op" | "const"
    name: str | None = None
    op: str | None = None
    operands: tuple[Operand, ...] = ()
    shape: Shape = ()
    value: sp.Expr | None = None
    dtype: str = "float"  # "int" for an input of integer labels


def check_name(name: str) -> None:
    """Input names become Python variables in generated code: they must be identifiers."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise InputError(f"input name {name!r} is not a valid identifier")
    if name in RESERVED_NAMES or name.startswith("_"):
        raise InputError(
            f"input name {name!r} is reserved (generated code uses it); please rename it"
        )
    if OPS.imports() and name in (imported := OPS.imported_names()):
        raise InputError(f"input name {name!r} is the name {imported[name]!r} binds in generated code; "
                         "please rename it")


DTYPES = {int: "int", "int": "int", float: "float", "float": "float"}


def check_dtype(name: str, dtype: object) -> str:
    """``int`` or ``"int"`` (integer labels, no gradient), ``float`` or ``"float"`` (the default)."""
    try:
        return DTYPES[dtype]  # type: ignore[index]
    except (KeyError, TypeError):
        raise InputError(
            f"dtype {dtype!r} of input {name!r} is not supported; use float, or int for labels"
        ) from None


def fold(op: Op, constants: list[sp.Expr]) -> sp.Expr:
    """Evaluate an op whose operands are all constants, refusing non-real results."""
    if op.name == "pow":
        base, exponent = (abs(complex(c)) for c in constants)
        if exponent > 1 and base not in (0, 1) and exponent * abs(math.log10(base)) > 300:
            shown = " ** ".join(str(c) for c in constants)
            raise EvaluationError(f"constant {shown} is too large")
    shown = f"{op.name}({', '.join(format_constant(c) for c in constants)})"
    try:
        value = op.sympy(*constants)
        real = value.is_real and value.is_finite
    except (ArithmeticError, ValueError) as e:  # 0.5/0.0; exp(1e300) overflows SymPy's floats too
        reason = "division by zero" if isinstance(e, ZeroDivisionError) else "too large"
        raise EvaluationError(f"constant {shown} is not a finite real number ({reason})") from None
    if not real:
        raise EvaluationError(f"constant {shown} is not a finite real number ({value})")
    return representable(value, f"constant {shown}")


def representable(value: sp.Expr, what: str) -> sp.Expr:
    """``value``, a finite real constant, if float64 can hold it (a Float rounded to one);
    an EvaluationError naming ``what`` if it is too large."""
    try:
        number = float(value)
    except (ArithmeticError, ValueError, TypeError):
        number = math.inf
    if not math.isfinite(number):
        raise EvaluationError(f"{what} is too large for a 64-bit float (at most {sys.float_info.max:.4g})")
    return sp.Float(number) if isinstance(value, sp.Float) else value


def _finite_node(op: Op, operands: tuple[Operand, ...], extra: tuple[sp.Basic, ...]) -> None:
    """Refuse a node that is not finite for any value of its inputs: ``x/0``, ``x/1e-320``."""
    probe = op.sympy(*(sp.Dummy("x", real=True) if isinstance(o, Ref) else o for o in operands), *extra)
    too_large = [f for f in probe.atoms(sp.Float) if not math.isfinite(float(f))]
    if probe.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or too_large:
        shown = ", ".join("x" if isinstance(o, Ref) else format_constant(o) for o in operands)
        why = "division by zero" if probe.has(sp.zoo) else "its constant is too large for a 64-bit float"
        raise EvaluationError(f"{op.name}({shown}) is not a finite number ({why})")


@dataclass
class Builder:
    """Collects nodes in the order the user wrote them."""

    granularity: str = "primitive"
    shapes: dict[str, Shape] = field(default_factory=dict)
    dtypes: dict[str, object] = field(default_factory=dict)
    specs: list[Spec] = field(default_factory=list)
    _shared: dict[tuple, Ref] = field(default_factory=dict)
    _inputs: dict[str, Ref] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise SymgradError(
                f"unknown granularity {self.granularity!r}; choose one of {', '.join(GRANULARITIES)}"
            )
        for name, dtype in self.dtypes.items():
            check_dtype(name, dtype)

    def input(self, name: str) -> Ref:
        """The input called ``name`` (the same Ref each time it is asked for)."""
        if name in self._inputs:
            return self._inputs[name]
        check_name(name)
        dtype = check_dtype(name, self.dtypes.get(name, "float"))
        ref = self._add(Spec("input", name=name, shape=self._shape_of(name), dtype=dtype))
        self._inputs[name] = ref
        return ref

    def _shape_of(self, name: str) -> Shape:
        return read_shape(name, self.shapes.get(name, ()))

    def constant(self, value: object) -> sp.Expr:
        """A numeric constant as an exact or floating SymPy number."""
        if isinstance(value, bool) or not isinstance(value, (int, float, sp.Expr)):
            raise SymgradError(f"constant {value!r} is not a real number")
        if isinstance(value, float) and not math.isfinite(value):
            raise EvaluationError(f"constant {value!r} is not finite")
        if isinstance(value, int) and value.bit_length() > 1024:  # not a float64; too long to print
            raise EvaluationError(f"constant of {value.bit_length()} bits is too large for a 64-bit float")
        c = sp.sympify(value) if isinstance(value, sp.Expr) else (
            sp.Integer(value) if isinstance(value, int) else sp.Float(value)
        )
        if c.free_symbols or not (c.is_real and c.is_finite):
            raise SymgradError(f"constant {value!r} is not a finite real number")
        return representable(c, f"constant {sp.sstr(c, full_prec=False)}")

    def apply(self, name: str, *operands: Operand, **params: object) -> Operand:
        """The node for op ``name`` on ``operands``; a constant when all are constants.

        ``params`` are the op's keyword parameters (``axis=1``); they become
        trailing SymPy arguments of the node's expression.
        """
        op = OPS[name]
        if len(operands) != op.arity:
            raise SymgradError(f"{name} takes {op.arity} operand(s), got {len(operands)}")
        self._check_labels(op, operands)
        shapes = [self.specs[o.index].shape if isinstance(o, Ref) else () for o in operands]
        if name == "transpose" and shapes[0] == ():  # a number is its own transpose; a float has no .T
            return operands[0]
        extra = op.param_args(**params)
        try:
            if "axis" in op.params:
                i = op.params.index("axis")
                extra = extra[:i] + (normalize_axes(name, extra[i], shapes[0]),) + extra[i + 1:]  # type: ignore[arg-type]
            shape = op.result_shape(shapes, extra)
        except ShapeError as e:
            axis: Any = params.get("axis")
            axes = () if axis is None else axis if isinstance(axis, tuple) else (axis,)
            rank = max((int(a) + 1 if int(a) >= 0 else -int(a) for a in axes), default=0)
            hint = self._shape_hint(op, operands, rank)
            raise ShapeError(f"{e} ({self.describe(operands)}){hint}") from None
        if all(not isinstance(o, Ref) for o in operands):
            return fold(op, [*operands, *extra])  # type: ignore[list-item]
        if not all(isinstance(o, Ref) for o in operands):
            _finite_node(op, operands, extra)
        operands = (*operands, *extra)
        key = (name, operands)
        if key in self._shared:
            return self._shared[key]
        ref = self._add(Spec("op", op=name, operands=tuple(operands), shape=shape))
        self._shared[key] = ref
        return ref

    def describe(self, operands: tuple[Operand, ...]) -> str:
        """``input 'W' of shape (2, 3), a computed value of shape (2,)``: the operands, for errors."""
        shown = []
        for o in operands:
            spec = self.specs[o.index] if isinstance(o, Ref) else None
            what = "the constant " + str(o) if spec is None else \
                f"input {spec.name!r}" if spec.kind == "input" else "a computed value"
            shown.append(f"{what} of shape {self.shape_of(o)}")
        return ("operands: " if len(shown) > 1 else "operand: ") + ", ".join(shown)

    def _shape_hint(self, op: Op, operands: tuple[Operand, ...], rank: int) -> str:
        """Where an array op meets inputs of no declared shape: how to declare theirs.

        The example shapes fit the op (a pattern of its ``shapes`` with the
        sizes of the operands that have shapes, and at least ``rank`` axes).
        """
        specs = [self.specs[o.index] if isinstance(o, Ref) else None for o in operands]
        scalars = [i for i, s in enumerate(specs) if s and s.kind == "input" and s.name not in self.shapes]
        if op.elementwise or not scalars:
            return ""
        for words in op.shapes:
            fits = [i in scalars or len(w) == len(s.shape if s else ())
                    for i, (w, s) in enumerate(zip(words, specs))]
            if all(fits) and all(len(w) >= rank for w in words):
                break
        else:
            return ""
        sizes = dict(SIZES)
        for i, (w, s) in enumerate(zip(words, specs)):
            if i not in scalars and s is not None:
                sizes.update(zip(w, s.shape))
        shown = {str(specs[i].name): tuple(sizes[c] for c in words[i]) for i in scalars}  # type: ignore[union-attr]
        example = ", ".join(f"{n!r}: {shape}" for n, shape in shown.items())
        flag = ",".join(f"{n}={shape}".replace(" ", "") for n, shape in shown.items())
        unused = [n for n in self.shapes if n not in self._inputs]
        typo = "".join(did_you_mean(n, unused, f" (a shape was given for {{!r}}, not {n!r})") for n in shown)
        return (f"; inputs without a shape are scalars: declare {', '.join(map(repr, shown))} with "
                f"shapes={{{example}}} (on the command line: --shape \"{flag}\"){typo}")

    def _check_labels(self, op: Op, operands: tuple[Operand, ...]) -> None:
        """Integer-label inputs go where an op takes labels, and nowhere else."""
        for i, o in enumerate(operands):
            spec = self.specs[o.index] if isinstance(o, Ref) else None
            if spec is not None and spec.dtype == "int":
                if i not in op.label_operands:
                    raise InputError(
                        f"{op.name}: input {spec.name!r} holds integer labels (dtype int); labels can "
                        "only select entries, as in pick(s, y) or softmax_cross_entropy(s, y)"
                    )
            elif i in op.label_operands:
                if spec is None:
                    what = f"the constant {o}"
                elif spec.kind == "input":
                    what = (f"input {spec.name!r}; declare it with dtypes={{{spec.name!r}: int}} "
                            f"(on the command line: --labels {spec.name})")
                else:
                    what = "a computed value"
                raise InputError(f"{op.name}: operand {i + 1} takes integer labels, but got {what}")

    def shape_of(self, operand: Operand) -> Shape:
        """The shape of a node under construction (a constant's is ())."""
        return self.specs[operand.index].shape if isinstance(operand, Ref) else ()

    def _add(self, spec: Spec) -> Ref:
        self.specs.append(spec)
        return Ref(len(self.specs) - 1)

    def finish(self, output: Operand, inputs: list[str] | None = None, source: str = ""):
        """The finished Graph whose output is ``output``."""
        from .graph import Graph

        for what, given in (("shapes", self.shapes), ("dtypes", self.dtypes)):
            unknown = sorted(set(given) - set(self._inputs))
            if unknown:
                hint = did_you_mean(unknown[0], self._inputs, " (did you mean {!r}?)")
                raise InputError(f"{what} given for {', '.join(map(repr, unknown))}, "
                                 f"which the expression does not use{hint if len(unknown) == 1 else ''}")
        if not isinstance(output, Ref):
            output = self._add(Spec("const", value=output))
        specs, output = _live(self.specs, output)
        if self.granularity == "nary":
            specs, output = _merge_chains(specs, output)
        order = inputs if inputs is not None else [s.name for s in specs if s.kind == "input"]
        return Graph._from_specs(specs, output, order, self.granularity, source)  # type: ignore[arg-type]


def _renumber(specs: list[Spec], keep: list[int], output: Ref) -> tuple[list[Spec], Ref]:
    new = {old: i for i, old in enumerate(keep)}

    def move(o: Operand) -> Operand:
        return Ref(new[o.index]) if isinstance(o, Ref) else o

    out = []
    for old in keep:
        s = specs[old]
        out.append(Spec(s.kind, s.name, s.op, tuple(move(o) for o in s.operands), s.shape, s.value,
                        s.dtype))
    return out, Ref(new[output.index])


def _live(specs: list[Spec], output: Ref) -> tuple[list[Spec], Ref]:
    """Drop operation nodes the output does not depend on (inputs always stay)."""
    live = {output.index}
    for i in range(output.index, -1, -1):
        if i in live:
            live.update(o.index for o in specs[i].operands if isinstance(o, Ref))
    keep = [i for i, s in enumerate(specs) if i in live or s.kind == "input"]
    return _renumber(specs, keep, output)


def _merge_chains(specs: list[Spec], output: Ref) -> tuple[list[Spec], Ref]:
    """Granularity "nary": inline an associative node into its only consumer of the same op."""
    uses = [0] * len(specs)
    for s in specs:
        for o in s.operands:
            if isinstance(o, Ref):
                uses[o.index] += 1
    merged: set[int] = set()
    for s in specs:
        if s.kind != "op" or not OPS[s.op].associative:  # type: ignore[index]
            continue
        flat: list[Operand] = []
        for o in s.operands:
            inner = specs[o.index] if isinstance(o, Ref) else None
            if inner is not None and inner.op == s.op and uses[o.index] == 1 and o != output:  # type: ignore[union-attr]
                flat.extend(inner.operands)
                merged.add(o.index)  # type: ignore[union-attr]
            else:
                flat.append(o)
        s.operands = tuple(flat)
    keep = [i for i in range(len(specs)) if i not in merged]
    return _renumber(specs, keep, output)


def intermediate_prefix(input_names: list[str]) -> str:
    """``q`` for q1, q2, …, or another letter when an input already looks like that."""
    for prefix in ("q", "t", "u", "v", "node"):
        if not any(re.fullmatch(rf"{prefix}\d+", n) for n in input_names):
            return prefix
    raise InputError("input names clash with every naming scheme for intermediates")
