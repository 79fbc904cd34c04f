"""Gates over arrays: a network layer and a loss, each fused into one node.

Two patterns (:class:`symgrad.gates.Pattern` s that ``build`` their gate,
found and fused by :mod:`symgrad.fusion` as the scalar ones are) fuse
operations that mix entries (matmul, logsumexp, pick):

- ``affine_relu``: relu(X @ W + b), one layer; also W @ x + b with a column
  bias, and relu spelled max(0, ·).
- ``softmax_cross_entropy``: the mean cross-entropy of softmax(S) against
  integer labels y, in any spelling the identities of :func:`tensor_canonical`
  turn into mean(logsumexp(S) − pick(S, y)): the op itself,
  −mean(pick(log_softmax(S), y)), −mean(log(pick(softmax(S), y))),
  −mean(log(pick(exp(S)/sum(exp(S)), y))), sums divided by N, …

A gate's gradient is never typed by hand.  Its expression (the pattern's
canonical spelling) is built into a small graph of primitive operations,
whose adjoints chain the members' vector-Jacobian products; each operand's
adjoint is read off, written through the gate's own output where it can be
(the relu mask [Z > 0] is [out > 0]) and tidied (broadcasts that change
nothing dropped, common factors pulled out).  The softmax cross-entropy
comes out as dout·(exp(S − logsumexp(S)) − onehot(y))/N, that is
(p − onehot(y))/N, computed without overflow.

The identities of array expressions (:func:`tensor_canonical`) and the
tidying of gradients (:func:`tidy`) are rules of :func:`symgrad.gates.rewrite`.
A fused gate is a gate like any other (``g.expand()`` opens it, tables and
pictures show one node) whose edges carry vector-Jacobian products instead of
local derivatives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial

import sympy as sp

from . import ir
from .build import Shape
from .dims import broadcast
from .gates import Pattern, canonical, rewrite
from .graph import Graph
from .ops import relu
from .tensors import (
    Reduction,
    broadcast_to,
    expand_dims,
    logsumexp,
    matmul,
    mean,
    pick,
    reduce_sum,
    shape_of,
)

# -- gradients composed from the members' rules --------------------------------------


def gate_vjps(expr: sp.Expr, out: sp.Symbol, shapes: Mapping[str, Shape],
              labels: Iterable[str] = ()) -> dict[str, sp.Expr | None]:
    """``{operand: gradient sent to it}`` for a gate computing ``expr``, as SymPy in ``d<out>``.

    ``shapes`` gives the shape of each operand (by name; the operands are the
    free symbols of ``expr``); ``labels`` names the operands holding integer
    labels, which get None.  The gradients chain the vector-Jacobian products
    of ``expr``'s primitive operations.

    >>> X, W, b, q = (sp.Symbol(n, real=True) for n in ("X", "W", "b", "q"))
    >>> rules = gate_vjps(relu(matmul(X, W) + b), q, {"X": (4, 3), "W": (3, 2), "b": (2,)})
    >>> rules["W"], rules["b"]
    (X.T @ (dq*Heaviside(q, 0)), sum_to(dq*Heaviside(q, 0), (2,), (4, 2)))
    """
    from .graph import graph
    from .program import build_program

    labels = set(labels)
    mini = graph(expr, shapes=dict(shapes), dtypes={n: int for n in labels})
    upstream = sp.Symbol(f"d{out.name}", real=True)
    program = build_program(mini, [n for n in mini.inputs if n not in labels])
    # every intermediate written in the operands, the output as the gate's own symbol
    masks: dict[sp.Expr, sp.Expr] = {}
    values: dict[sp.Symbol, sp.Expr] = {program.dout: upstream, mini.symbol(mini.output): out}
    for n in mini.operations:
        if n == mini.output:
            continue
        values[mini.symbol(n)] = mini.expr(n).xreplace(values)
    for n in mini.operations:  # relu' = [a > 0] = [relu(a) > 0]: the mask read off the output
        e = mini.expr(n)
        if isinstance(e, relu):
            masks[sp.Heaviside(e.args[0], 0)] = sp.Heaviside(mini.symbol(n), 0).xreplace(values)
    known = {sp.Symbol(n, real=True): tuple(s) for n, s in shapes.items()}
    known[out] = known[upstream] = mini.shape(mini.output)
    adjoints: dict[sp.Symbol, sp.Expr] = {}
    for a in program.backward:  # each adjoint in the upstream gradient alone
        adjoints[a.target] = a.expr.xreplace(adjoints)
    rules: dict[str, sp.Expr | None] = {n: None for n in mini.inputs}
    for name in program.wrt:
        rule = adjoints[program.adjoint(name).target].xreplace(masks).xreplace(values)
        rules[name] = tidy(rule, known)
    return rules


def tidy(expr: sp.Expr, shapes: Mapping[sp.Symbol, Shape]) -> sp.Expr:
    """``expr`` with broadcasts that change nothing dropped and common factors pulled out.

    - ``expand_dims(c·x)`` is ``c·expand_dims(x)`` for a number ``c``;
      ``expand_dims(broadcast_to(a, s))`` of a scalar ``a`` is a broadcast to
      ``s`` with the new axes; ``expand_dims(r(x, axis), axis)`` of a reduction
      is ``r(x, axis, keepdims=True)``;
    - ``broadcast_to(a, s)`` is ``a`` where ``a`` has shape ``s``, or where
      the sum or product it is part of has the same shape without it.

    >>> S, g = sp.Symbol("S", real=True), sp.Symbol("g", real=True)
    >>> tidy(expand_dims(broadcast_to(g / 4, sp.Tuple(4)), sp.Tuple(1)) * S, {S: (4, 3)})
    S*g/4
    """
    return sp.factor_terms(rewrite(expr, partial(_tidy_step, shapes=shapes)))


def _tidy_step(e: sp.Expr, shapes: Mapping[sp.Symbol, Shape]) -> sp.Expr | None:
    if isinstance(e, expand_dims):
        x, axes = e.args
        coeff, rest = x.as_coeff_Mul()
        if coeff != 1:
            return coeff * expand_dims(rest, axes)
        if isinstance(x, broadcast_to) and shape_of(x.args[0], shapes) == ():
            return broadcast_to(x.args[0], sp.Tuple(*e.array_shape(x.array_shape())))
        if isinstance(x, Reduction) and not x.keepdims and tuple(x.args[1]) == tuple(axes):
            return type(x)(x.args[0], x.args[1], sp.true)
        return None
    if isinstance(e, broadcast_to):
        return e.args[0] if shape_of(e.args[0], shapes) == shape_of(e, shapes) else None
    if isinstance(e, (sp.Add, sp.Mul)):
        whole = shape_of(e, shapes)
        for i, a in enumerate(e.args):
            if isinstance(a, broadcast_to):
                others = [shape_of(b, shapes) for j, b in enumerate(e.args) if j != i]
                if _broadcast([shape_of(a.args[0], shapes), *others]) == whole:
                    return e.func(a.args[0], *(b for j, b in enumerate(e.args) if j != i))
    return None


def _broadcast(shapes: list[Shape]) -> Shape | None:
    try:
        return broadcast(*shapes)
    except ValueError:
        return None


# -- spellings of array expressions --------------------------------------------------


def tensor_canonical(expr: sp.Expr, shapes: Mapping[sp.Symbol, Shape]) -> sp.Expr:
    """``expr`` rewritten by identities of array expressions, so equal spellings compare equal.

    Means become sums over their count; sums and picks are linear (over
    terms of the whole shape: a broadcast term is left alone); a function
    of picked entries is the picked entries of the function; a picked column
    of a reduction is the reduction; log Σ exp is logsumexp and exp(a)/Σ exp(a)
    is exp(a − logsumexp(a)).  Then the result is expanded.

    >>> S, y = sp.Symbol("S", real=True), sp.Symbol("y", real=True)
    >>> lse = logsumexp(S, sp.Tuple(1), sp.true)
    >>> tensor_canonical(-mean(sp.log(pick(sp.exp(S - lse), y, sp.false)), sp.Tuple(), sp.false),
    ...                  {S: (2, 3), y: (2,)})
    sum(logsumexp(S, axis=1))/2 - sum(pick(S, y))/2
    """
    return sp.expand(rewrite(canonical(expr), partial(_identity, shapes=shapes)))


def _row_column(e: sp.Expr) -> bool:
    """A reduction over the rows' entries kept as a column: every pick from a row gives its value."""
    e = e.as_coeff_Mul()[1]
    return isinstance(e, Reduction) and e.keepdims and tuple(e.args[1]) == (sp.Integer(1),)


def _identity(e: sp.Expr, shapes: Mapping[sp.Symbol, Shape]) -> sp.Expr | None:
    if isinstance(e, mean):
        x = e.args[0]
        return reduce_sum(*e.args) / e.count(shape_of(x, shapes))
    if isinstance(e, (reduce_sum, pick)):
        x, rest = e.args[0], e.args[1:]
        if isinstance(x, sp.Add):
            if all(shape_of(t, shapes) == shape_of(x, shapes) for t in x.args):
                return sp.Add(*(e.func(t, *rest) for t in x.args))
            columns = [t for t in x.args if _row_column(t)] if isinstance(e, pick) else []
            if columns and len(columns) < len(x.args):  # pick(a + column) = pick(a) + pick(column)
                others = sp.Add(*(t for t in x.args if t not in columns))
                return sp.Add(e.func(others, *rest), *(e.func(t, *rest) for t in columns))
        coeff, body = x.as_coeff_Mul()
        if coeff != 1:
            return coeff * e.func(body, *rest)
        if isinstance(e, pick) and not e.keepdims and _row_column(x):
            return type(x)(x.args[0], x.args[1], sp.false)
        return None
    if isinstance(e, sp.log):
        x = e.args[0]
        if isinstance(x, pick):
            return pick(sp.log(x.args[0]), *x.args[1:])
        if isinstance(x, reduce_sum) and isinstance(x.args[0], sp.exp):
            return logsumexp(x.args[0].args[0], *x.args[1:])
        return None
    if isinstance(e, sp.Mul):
        for f in e.args:
            base = f.base if isinstance(f, sp.Pow) and f.exp == -1 else None
            if isinstance(base, reduce_sum) and base.keepdims and isinstance(base.args[0], sp.exp) \
                    and base.args[0] in e.args:
                a = base.args[0].args[0]
                softmax = sp.exp(a - logsumexp(a, *base.args[1:]))
                return sp.Mul(softmax, *(g for g in e.args if g not in (f, base.args[0])))
    return None


# -- the patterns -------------------------------------------------------------------------


def softmax_cross_entropy_expr(s: sp.Expr, y: sp.Expr) -> sp.Expr:
    """mean(logsumexp(s, axis=1) − pick(s, y)): the gate's expression, stable as printed."""
    return mean(logsumexp(s, sp.Tuple(1), sp.false) - pick(s, y, sp.false), sp.Tuple(), sp.false)


class AffineRelu(Pattern):
    """relu(X @ W + b), one layer: a product and one other term under a relu."""

    def arguments(self, expr: sp.Expr, shapes: Mapping[sp.Symbol, Shape] | None = None
                  ) -> tuple[sp.Expr, ...] | None:
        if not isinstance(expr, relu) or not isinstance(expr.args[0], sp.Add) or len(expr.args[0].args) != 2:
            return None
        products = [t for t in expr.args[0].args if isinstance(t, matmul)]
        if len(products) != 1:
            return None
        bias = next(t for t in expr.args[0].args if t is not products[0])
        return (*products[0].args, bias)

    def candidate(self, graph: Graph, node: str, region: list[str]) -> bool:
        return isinstance(canonical(graph.expr(node)), relu)


class SoftmaxCrossEntropy(Pattern):
    """mean(logsumexp(S) − pick(S, y)) in any spelling :func:`tensor_canonical` equates."""

    def arguments(self, expr: sp.Expr, shapes: Mapping[sp.Symbol, Shape] | None = None
                  ) -> tuple[sp.Expr, ...] | None:
        if not expr.has(pick) or not expr.has(logsumexp):
            return None
        shapes = shapes or {}
        for p in sorted(expr.atoms(pick), key=sp.default_sort_key):
            s, y = p.args[0], p.args[1]
            if len(shape_of(s, shapes)) != 2 or p.keepdims:
                continue
            if sp.expand(expr - tensor_canonical(softmax_cross_entropy_expr(s, y), shapes)) == 0:
                return s, y
        return None

    def candidate(self, graph: Graph, node: str, region: list[str]) -> bool:
        return graph.shape(node) == () and any(graph.nx.nodes[n]["op"] == "pick" for n in region)


LAYERS: dict[str, Pattern] = {p.name: p for p in (
    AffineRelu("affine_relu", relu, build=lambda x, w, b: relu(matmul(x, w) + b)),
    SoftmaxCrossEntropy("softmax_cross_entropy", sp.Add, build=softmax_cross_entropy_expr),
)}


def gate_edges(graph: Graph, out: str, gate: sp.Expr, operands: Iterable[str]) -> dict[str, dict]:
    """The edge attributes of a gate that mixes entries: each operand's vector-Jacobian product."""
    shapes = {n: graph.shape(n) for n in operands}
    rules = gate_vjps(gate, graph.symbol(out), shapes, [n for n in operands if n in graph.labels])
    upstream = sp.Symbol(f"d{out}", real=True)
    return {u: ir.vjp_edge(None if rules[u] is None else sp.Lambda(upstream, rules[u])) for u in operands}
