"""Gates over arrays: a network layer and a loss, each fused into one node.

Two patterns fuse operations that mix entries (matmul, logsumexp, pick):

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

A fused gate is a gate like any other (``g.expand()`` opens it, tables and
pictures show one node) whose edges carry vector-Jacobian products instead of
local derivatives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import networkx as nx
import sympy as sp

from .build import Shape
from .dims import broadcast
from .gates import canonical
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
    def walk(e: sp.Expr) -> sp.Expr:
        if e.is_Atom or isinstance(e, sp.Tuple):
            return e
        args = [walk(a) for a in e.args]
        e = e.func(*args) if args != list(e.args) else e
        done = _tidy_step(e, shapes)
        return e if done is None else walk(done)

    return sp.factor_terms(walk(expr))


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
    def walk(e: sp.Expr, depth: int) -> sp.Expr:
        if e.is_Atom or isinstance(e, sp.Tuple) or depth > 50:
            return e
        args = [walk(a, depth) for a in e.args]
        e = e.func(*args) if args != list(e.args) else e
        done = _canonical_step(e, shapes)
        return e if done is None else walk(done, depth + 1)

    return sp.expand(walk(canonical(expr), 0))


def _row_column(e: sp.Expr) -> bool:
    """A reduction over the rows' entries kept as a column: every pick from a row gives its value."""
    e = e.as_coeff_Mul()[1]
    return isinstance(e, Reduction) and e.keepdims and tuple(e.args[1]) == (sp.Integer(1),)


def _canonical_step(e: sp.Expr, shapes: Mapping[sp.Symbol, Shape]) -> sp.Expr | None:
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


def _affine_relu_arguments(expr: sp.Expr) -> tuple[sp.Expr, ...] | None:
    if not isinstance(expr, relu) or not isinstance(expr.args[0], sp.Add) or len(expr.args[0].args) != 2:
        return None
    products = [t for t in expr.args[0].args if isinstance(t, matmul)]
    if len(products) != 1:
        return None
    bias = next(t for t in expr.args[0].args if t is not products[0])
    return (*products[0].args, bias)


def _softmax_ce_arguments(expr: sp.Expr, shapes: Mapping[sp.Symbol, Shape]) -> tuple[sp.Expr, ...] | None:
    if not expr.has(pick) or not expr.has(logsumexp):
        return None
    for p in sorted(expr.atoms(pick), key=sp.default_sort_key):
        s, y = p.args[0], p.args[1]
        if len(shape_of(s, shapes)) != 2 or p.keepdims:
            continue
        if sp.expand(expr - tensor_canonical(softmax_cross_entropy_expr(s, y), shapes)) == 0:
            return s, y
    return None


def _affine_relu(x: sp.Expr, w: sp.Expr, b: sp.Expr) -> sp.Expr:
    return relu(matmul(x, w) + b)


@dataclass(frozen=True)
class LayerPattern:
    """A gate over arrays.

    name:      the gate's name: ``g.fuse(name)``, and the fused node's label
    arguments: the gate's operands read off a canonical expression, or None when it is not the gate
    gate:      the gate's expression on its operands
    candidate: a quick test of a node and the region above it, before any composing
    """

    name: str
    arguments: Callable[[sp.Expr, Mapping[sp.Symbol, Shape]], tuple[sp.Expr, ...] | None]
    gate: Callable[..., sp.Expr]
    candidate: Callable[[Graph, str, list[str]], bool]


LAYERS: dict[str, LayerPattern] = {
    p.name: p for p in (
        LayerPattern("affine_relu", lambda e, shapes: _affine_relu_arguments(e), _affine_relu,
                     lambda g, v, region: isinstance(canonical(g.expr(v)), relu)),
        LayerPattern("softmax_cross_entropy", _softmax_ce_arguments, softmax_cross_entropy_expr,
                     lambda g, v, region: g.shape(v) == () and any(
                         g.nx.nodes[n]["op"] == "pick" for n in region)),
    )
}


# -- finding and fusing ------------------------------------------------------------------


@dataclass(frozen=True)
class LayerMatch:
    """Nodes that compute one array gate."""

    pattern: LayerPattern
    members: tuple[str, ...]
    out: str
    gate: sp.Expr
    operands: tuple[str, ...]

    def apply(self, graph: Graph, name: str | None = None) -> Graph:
        return fuse_layer(graph, list(self.members), self.out, self.gate, list(self.operands),
                          self.pattern.name if name is None else name)


def fuse_layer(graph: Graph, members: list[str], out: str, gate: sp.Expr, operands: list[str],
               name: str) -> Graph:
    """A new Graph with the gate node ``out`` (computing ``gate``) in place of ``members``."""
    from .fusion import replace

    shapes = {n: graph.shape(n) for n in operands}
    rules = gate_vjps(gate, graph.symbol(out), shapes, [n for n in operands if n in graph.labels])
    upstream = sp.Symbol(f"d{out}", real=True)
    edges = {u: {"derivative": None, "cached": None,
                 "vjp": None if rules[u] is None else sp.Lambda(upstream, rules[u])}
             for u in operands}
    return replace(graph, members, out, gate, operands, name, edges=edges)


def find_layers(graph: Graph, patterns: Iterable[LayerPattern]) -> list[LayerMatch]:
    """Node sets that compute one of ``patterns``, outermost first, each used only inside itself."""
    patterns = list(patterns)
    if all(graph.elementwise(n) for n in graph.operations):
        return []
    shapes = {graph.symbol(n): graph.shape(n) for n in graph.nodes}
    memo: dict[sp.Expr, sp.Expr] = {}
    claimed: set[str] = set()
    found = []
    for v in reversed(graph.operations):
        if v in claimed or graph.nx.nodes[v]["kind"] == "const":
            continue
        region = _region(graph, v, claimed)
        for pattern in patterns:
            m = _match(graph, v, region, pattern, shapes, memo)
            if m is not None:
                found.append(m)
                claimed.update(m.members)
                break
    return found


def _region(graph: Graph, v: str, claimed: set[str], stop: Iterable[str] = ()) -> list[str]:
    """``v`` and the unclaimed operations above it used only inside the region, short of ``stop``."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    region, stop = {v}, set(stop)
    for n in sorted(nx.ancestors(graph.nx, v), key=order.__getitem__, reverse=True):
        if n in claimed or n in stop or graph.nx.nodes[n]["kind"] not in ("op", "gate"):
            continue
        if all(c in region for c in graph.nx.successors(n)):
            region.add(n)
    return sorted(region, key=order.__getitem__)


def _match(graph: Graph, v: str, region: list[str], pattern: LayerPattern,
           shapes: Mapping[sp.Symbol, Shape], memo: dict[sp.Expr, sp.Expr]) -> LayerMatch | None:
    if not pattern.candidate(graph, v, region):
        return None
    values: dict[sp.Symbol, sp.Expr] = {}
    for n in region:
        values[graph.symbol(n)] = graph.expr(n).xreplace(values)

    def canon(e: sp.Expr) -> sp.Expr:
        if e not in memo:
            memo[e] = tensor_canonical(e, shapes)
        return memo[e]

    args = pattern.arguments(canon(values[graph.symbol(v)]), shapes)
    if args is None:
        return None
    reach = set(region).union(*(graph.operands(n) for n in region))
    candidates = [n for n in graph.nodes if n != v and n in reach]
    ends = []
    for arg in (a for a in args if not a.is_number):
        end = next((n for n in candidates
                    if canon(values.get(graph.symbol(n), graph.symbol(n))) == arg), None)
        if end is None:
            return None
        ends.append(end)
    members = [n for n in _region(graph, v, set(), ends) if n in region]
    operands = sorted({u for n in members for u in graph.operands(n) if u not in members},
                      key=[*graph.nodes].index)
    if set(operands) != set(ends):
        return None
    symbols = {e: graph.symbol(n) for e, n in zip((a for a in args if not a.is_number), ends)}
    gate = pattern.gate(*(symbols.get(a, a) for a in args))
    composed: dict[sp.Symbol, sp.Expr] = {}
    for n in members:
        composed[graph.symbol(n)] = graph.expr(n).xreplace(composed)
    if sp.expand(canon(composed[graph.symbol(v)]) - canon(gate)) != 0:
        return None
    return LayerMatch(pattern, tuple(members), v, gate, tuple(operands))


def fuse_layers(graph: Graph, names: Iterable[str], label: str | None = None) -> Graph:
    """Every occurrence of the named array gates fused (named ``label``, if given)."""
    for m in find_layers(graph, [LAYERS[n] for n in names]):
        graph = m.apply(graph, label)
    return graph
