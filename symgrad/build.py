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
from dataclasses import dataclass, field
from typing import TypeAlias

import sympy as sp

from .errors import EvaluationError, InputError, ShapeError, SymgradError
from .ops import OPS, Op

Shape = tuple[int, ...]
GRANULARITIES = ("primitive", "nary")
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


def check_name(name: str) -> None:
    """Input names become Python variables in generated code: they must be identifiers."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise InputError(f"input name {name!r} is not a valid identifier")
    if name in RESERVED_NAMES or name.startswith("_"):
        raise InputError(
            f"input name {name!r} is reserved (generated code uses it); please rename it"
        )


def broadcast(op: Op, shapes: list[Shape]) -> Shape:
    """The result shape of an elementwise op, or a ShapeError naming op and shapes."""
    try:
        return tuple(int(n) for n in _broadcast_shapes(*shapes))
    except ValueError:
        shown = " and ".join(str(s) for s in shapes)
        raise ShapeError(f"{op.name}: shapes {shown} do not broadcast") from None


def _broadcast_shapes(*shapes: Shape) -> Shape:
    import numpy as np

    return tuple(np.broadcast_shapes(*shapes))


def fold(op: Op, constants: list[sp.Expr]) -> sp.Expr:
    """Evaluate an op whose operands are all constants, refusing non-real results."""
    if op.name == "pow":
        base, exponent = (abs(complex(c)) for c in constants)
        if exponent > 1 and base not in (0, 1) and exponent * abs(math.log10(base)) > 300:
            shown = " ** ".join(str(c) for c in constants)
            raise EvaluationError(f"constant {shown} is too large")
    value = op.sympy(*constants)
    if not (value.is_real and value.is_finite):
        shown = f"{op.name}({', '.join(str(c) for c in constants)})"
        raise EvaluationError(f"constant {shown} is not a finite real number ({value})")
    return value


@dataclass
class Builder:
    """Collects nodes in the order the user wrote them."""

    granularity: str = "primitive"
    shapes: dict[str, Shape] = field(default_factory=dict)
    specs: list[Spec] = field(default_factory=list)
    _shared: dict[tuple, Ref] = field(default_factory=dict)
    _inputs: dict[str, Ref] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.granularity not in GRANULARITIES:
            raise SymgradError(
                f"unknown granularity {self.granularity!r}; choose one of {', '.join(GRANULARITIES)}"
            )

    def input(self, name: str) -> Ref:
        """The input called ``name`` (the same Ref each time it is asked for)."""
        if name in self._inputs:
            return self._inputs[name]
        check_name(name)
        ref = self._add(Spec("input", name=name, shape=self._shape_of(name)))
        self._inputs[name] = ref
        return ref

    def _shape_of(self, name: str) -> Shape:
        shape = self.shapes.get(name, ())
        try:
            shape = tuple(int(n) for n in shape)
        except (TypeError, ValueError):
            raise ShapeError(f"shape {shape!r} of input {name!r} is not a tuple of sizes") from None
        if any(n < 0 for n in shape):
            raise ShapeError(f"shape {shape} of input {name!r} has a negative size")
        return shape

    def constant(self, value: object) -> sp.Expr:
        """A numeric constant as an exact or floating SymPy number."""
        if isinstance(value, bool) or not isinstance(value, (int, float, sp.Expr)):
            raise SymgradError(f"constant {value!r} is not a real number")
        if isinstance(value, float) and not math.isfinite(value):
            raise EvaluationError(f"constant {value!r} is not finite")
        c = sp.sympify(value) if isinstance(value, sp.Expr) else (
            sp.Integer(value) if isinstance(value, int) else sp.Float(value)
        )
        if c.free_symbols or not (c.is_real and c.is_finite):
            raise SymgradError(f"constant {value!r} is not a finite real number")
        return c

    def apply(self, name: str, *operands: Operand) -> Operand:
        """The node for op ``name`` on ``operands``; a constant when all are constants."""
        op = OPS[name]
        if len(operands) != op.arity:
            raise SymgradError(f"{name} takes {op.arity} operand(s), got {len(operands)}")
        if all(not isinstance(o, Ref) for o in operands):
            return fold(op, list(operands))  # type: ignore[arg-type]
        key = (name, operands)
        if key in self._shared:
            return self._shared[key]
        shapes = [self.specs[o.index].shape if isinstance(o, Ref) else () for o in operands]
        ref = self._add(Spec("op", op=name, operands=tuple(operands), shape=broadcast(op, shapes)))
        self._shared[key] = ref
        return ref

    def _add(self, spec: Spec) -> Ref:
        self.specs.append(spec)
        return Ref(len(self.specs) - 1)

    def finish(self, output: Operand, inputs: list[str] | None = None, source: str = ""):
        """The finished Graph whose output is ``output``."""
        from .graph import Graph

        unknown = sorted(set(self.shapes) - set(self._inputs))
        if unknown:
            raise InputError(
                f"shapes given for {', '.join(map(repr, unknown))}, which the expression does not use"
            )
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
        out.append(Spec(s.kind, s.name, s.op, tuple(move(o) for o in s.operands), s.shape, s.value))
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
