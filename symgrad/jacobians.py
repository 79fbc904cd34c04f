"""Whole Jacobians in one pass: forward mode with a leading axis of directions.

:func:`symgrad.jvp` pushes one direction through a graph.  Here every node's
tangent carries all directions at once, stacked on a new leading axis of size
k: the input's tangent is the k × k identity, so the output's tangent is the
whole Jacobian.  Elementwise ops broadcast over the new axis as they are;
matmul, reductions and the backward pass's helpers take their rule on the
stacked tangents (``T @ Aᵀ`` for ``A @ b``, axes shifted by one).  Pushed
through the gradient graph of a scalar loss, this is the Hessian as a handful
of matrix products: for logistic regression, ``(q1 ∘ s(1 − s) ∘ q1 ∘ Xᵀ / N) @ X``
rather than d Hessian-vector products.

Tangents of vectors are matrices and tangents of matrices stacks of matrices,
which ``@`` takes as NumPy does (one product per direction).  An input of
three or more axes, and a stack of matrices meeting ``@`` (its tangent would
be 4-D), are refused with an UnsupportedError.

A matrix W met as ``A @ W`` (A an N × H matrix that does not depend on W)
has its tangents kept factored by rows: along the direction of entry (i, a)
of W, the tangent of ``A @ W`` is row n of A's entry i times the unit row
eₐ, so it is stored as A beside an N × C × C array M (here 1 × C × C: the
identity), and every op that keeps rows apart (elementwise ops, sums and
log-sum-exps within rows, products ``X @ B`` on the right) updates M alone.
Where the rows meet, in ``P @ X`` with P of N columns, the tangent becomes
one product of Aᵀ with M spread over P's rows: for the two-layer net's
Hessian in W2 that is the closed form (1/N) Σₙ hₙhₙᵀ ⊗ (diag(pₙ) − pₙpₙᵀ)
as a single matrix product, rather than a product per direction.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import sympy as sp

from .dims import Shape
from .errors import SymgradError, UnsupportedError
from .graph import Graph
from .higher import _Extension, _source, _tangent_prefix
from .tensors import (
    ArrayFunction,
    broadcast_to,
    expand_dims,
    eye,
    matmul,
    permute_dims,
    reduce_sum,
    reshape,
    shape_of,
    transpose,
)


def forward_jacobian(graph: Graph, wrt: str) -> Graph:
    """The graph of ∂output/∂``wrt`` by forward mode, all directions at once.

    The tangent of ``wrt`` is the k × k identity (k entries; 1 for a scalar),
    so the output has shape ``(k,) + shape(output)``: row i is the derivative
    along the i-th entry of ``wrt``.  An identity that meets ``@`` is not
    multiplied (``eye @ A`` is ``A``).

    >>> import symgrad as sg
    >>> g = sg.graph("exp(x) * sum(x)", shapes={"x": (2,)})
    >>> j = forward_jacobian(g, "x").compile()
    >>> j(x=[0.0, 1.0]).round(4)
    array([[2.    , 2.7183],
           [1.    , 5.4366]])
    """
    if wrt not in graph.inputs or wrt in graph.labels:
        raise SymgradError(f"{wrt!r} is not a float input of this graph "
                           f"(inputs: {', '.join(graph.inputs)})")
    shape = graph.shape(wrt)
    if len(shape) > 2 or not all(isinstance(n, int) for n in shape):
        raise UnsupportedError(f"{wrt} has shape {shape}: forward Jacobians take scalars, vectors "
                               "and matrices of concrete sizes")
    k = int(np.prod(shape, dtype=int))
    return _Stacked(graph, wrt, k).graph()


class _Stacked:
    """Stacked tangents, kept factored: a node's tangent is a sum of coefficient · basis,
    where each basis is a materialized stacked tangent (k, …) and each coefficient an
    array of the node's own shape.  Along a chain of elementwise ops only the
    coefficients are computed; a basis is multiplied out where an op mixes entries,
    where shapes broadcast, and at the output."""

    def __init__(self, graph: Graph, wrt: str, k: int):
        self.g, self.wrt, self.k = graph, wrt, k
        self.ext = _Extension(graph)
        self.prefix = _tangent_prefix(graph.nodes)
        self.scale = _free_prefix(graph.nodes, ("s_", "scale_", "coef_"))
        shape = graph.shape(wrt)
        self.identity = sp.Symbol(self.prefix + wrt, real=True)
        start = eye(k) if len(shape) == 1 else reshape(eye(k), sp.Tuple(k, *shape)) if shape \
            else sp.Integer(1)
        self.ext.add(start, self.identity, (k, *shape))
        self.linear: dict[str, dict[sp.Symbol, sp.Expr]] = {wrt: {self.identity: sp.S.One}}
        self.basis_shape: dict[sp.Symbol, Shape] = {self.identity: shape}
        self.rows: dict[str, _Rows] = {}
        self.row_prefix = _free_prefix(graph.nodes, ("r_", "rows_", "kron_"))

    def graph(self) -> Graph:
        g = self.g
        for n in g.operations:
            reached = [u for u in g.operands(n) if u in self.linear or u in self.rows]
            if reached and not self._by_rows(n, reached):
                for u in reached:
                    if u in self.rows:
                        self._spread(u)
                self._node(n, reached)
        if g.output in self.rows:
            self._spread(g.output)
        if g.output in self.linear:
            out = self.materialize(g.output)
        else:  # the output does not depend on wrt
            out = sp.Symbol(self.prefix + g.output, real=True)
            self.ext.add(sp.S.Zero, out, (self.k, *g.shape(g.output)))
        return self.ext.graph_of(out, f"jacobian({_source(g)}, {self.wrt})")

    def _node(self, n: str, reached: list[str]) -> None:
        g = self.g
        if not g.elementwise(n):
            ts = {u: self.materialize(u) for u in reached}
            identities = {u for u in reached if self.linear[u] == {self.identity: sp.S.One}}
            self._basis(n, _stacked_rule(g, n, ts, self.k, identities & {self.wrt}))
            return
        edges = g.nx.edges
        local = {u: edges[u, n]["numeric"] for u in reached}
        if any(self.basis_shape[b] != g.shape(n) for u in reached for b in self.linear[u]):
            self._basis(n, sp.Add(*(local[u] * _lift(self.materialize(u), g.shape(u), g.shape(n))
                                    for u in reached)))
            return
        combined: dict[sp.Symbol, sp.Expr] = {}
        for u in reached:
            for b, c in self.linear[u].items():
                combined[b] = combined.get(b, sp.S.Zero) + local[u] * c
        self.linear[n] = {}
        for i, (b, c) in enumerate(combined.items()):
            if not c.free_symbols and not isinstance(c, ArrayFunction):  # a number: no node
                self.linear[n][b] = c
                continue
            name = self.scale + n + (f"_{i + 1}" if len(combined) > 1 else "")
            symbol = sp.Symbol(name, real=True)
            self.ext.add(c, symbol, g.shape(n))
            self.linear[n][b] = self.ext.constants.get(symbol, symbol)

    def _basis(self, n: str, expr: sp.Expr) -> None:
        symbol = sp.Symbol(self.prefix + n, real=True)
        self.ext.add(expr, symbol, (self.k, *self.g.shape(n)))
        self.linear[n] = {symbol: sp.S.One}
        self.basis_shape[symbol] = self.g.shape(n)

    # -- tangents factored by rows ----------------------------------------------------

    def _by_rows(self, n: str, reached: list[str]) -> bool:
        """Give ``n`` a tangent factored by rows, if its operands allow; False if not."""
        g = self.g
        data = g.nx.nodes[n]
        if data["kind"] != "op":
            return False
        shape = g.shape(n)
        if not all(isinstance(x, int) for x in shape):
            return False
        if not any(u in self.rows for u in reached):
            return self._rows_start(n, reached)
        if any(u not in self.rows for u in reached):
            return False
        if g.elementwise(n):
            return self._rows_elementwise(n, reached)
        if len(reached) != 1:
            return False
        (u,) = reached
        rows = self.rows[u]
        expr, op = data["expr"], data["op"]
        t = rows.factor
        if op == "expand_dims":
            axes = [int(a) for a in expr.args[1]]
            if min(axes) < 1:
                return False
            return self._rows_node(n, rows, expand_dims(t, sp.Tuple(*(a + 1 for a in axes))))
        if op in ("sum", "mean", "logsumexp"):
            x, axes, keepdims = expr.args
            axes = [int(a) for a in axes]
            if not axes or min(axes) < 1:  # the rows meet: not factored
                return False
            shifted = sp.Tuple(*(a + 1 for a in axes))
            if op == "logsumexp":
                ndim = len(g.shape(u))
                t = _row_lift(sp.exp(x - expr.unreduce(data["symbol"])), ndim, ndim) * t
            if op == "mean":
                return self._rows_node(n, rows, expr.func(t, shifted, keepdims))
            return self._rows_node(n, rows, _summed(t, shifted, keepdims, rows.shape[1:]))
        if op == "matmul":
            a, b = expr.args
            symbol = g.symbol(u)
            if a == symbol and b != symbol and len(g.shape(u)) == 2 \
                    and len(shape_of(b, self.ext.conv.shapes)) <= 2:
                return self._rows_node(n, rows, matmul(t, b))  # X @ B: each row on its own
            if b == symbol and a != symbol and len(g.shape(u)) == 2:
                (p,) = [o for o in g.operands(n) if o != u]
                if len(g.shape(p)) in (1, 2):
                    self._basis(n, self._contract(a, g.shape(p), g.shape(u), rows))
                    return True
        return False

    def _rows_start(self, n: str, reached: list[str]) -> bool:
        """``A @ W`` for the identity tangent of a matrix W: A beside the C × C identity."""
        g = self.g
        data = g.nx.nodes[n]
        if data["op"] != "matmul" or reached != [self.wrt] or len(self.basis_shape[self.identity]) != 2:
            return False
        a, b = data["expr"].args
        others = [u for u in g.operands(n) if u != self.wrt]
        if b != g.symbol(self.wrt) or a == b or len(others) != 1 or len(g.shape(others[0])) != 2:
            return False
        c = self.basis_shape[self.identity][1]
        self.rows[n] = self._factor(n, _Rows(a, g.shape(others[0])[1], (1, c, c)),
                                    reshape(eye(c), sp.Tuple(1, c, c)))
        return True

    def _rows_elementwise(self, n: str, reached: list[str]) -> bool:
        g = self.g
        shape = g.shape(n)
        first = self.rows[reached[0]]
        if any(self.rows[u].left != first.left or len(g.shape(u)) != len(shape)
               or g.shape(u)[0] != shape[0] for u in reached):
            return False
        known = self.ext.conv.shapes
        edges = g.nx.edges
        terms = []
        for u in reached:
            c = edges[u, n]["numeric"]
            if c == 1:
                terms.append(self.rows[u].factor)
                continue
            try:
                ndim = len(shape_of(c, known))
            except SymgradError:
                return False
            terms.append(_row_lift(c, ndim, len(shape)) * self.rows[u].factor)
        if len(terms) == 1 and terms[0] == first.factor and first.shape[2:] == shape[1:]:
            self.rows[n] = first
            return True
        return self._rows_node(n, first, sp.Add(*terms))

    def _rows_node(self, n: str, like: _Rows, expr: sp.Expr) -> bool:
        """``n``'s factor computed by ``expr``, spread to ``n``'s shape within rows."""
        try:
            shape = shape_of(expr, self.ext.conv.shapes)
        except SymgradError:
            return False
        within = self.g.shape(n)[1:]
        if len(shape) < 2:  # a number, zero where a second derivative vanishes
            shape = (1, like.shape[1], *within)
            expr = broadcast_to(expr, sp.Tuple(*shape))
        elif shape[2:] != within:
            shape = (shape[0], shape[1], *within)
            expr = broadcast_to(expr, sp.Tuple(*shape))
        self.rows[n] = self._factor(n, _Rows(like.left, like.size, shape), expr)
        return True

    def _factor(self, n: str, rows: _Rows, expr: sp.Expr) -> _Rows:
        symbol = sp.Symbol(self.row_prefix + n, real=True)
        self.ext.add(expr, symbol, rows.shape)
        rows.factor = self.ext.constants.get(symbol, symbol)
        return rows

    def _contract(self, p: sp.Expr, p_shape: Shape, x_shape: Shape, rows: _Rows) -> sp.Expr:
        """The stacked tangent of ``P @ X`` for X factored by rows: Σₙ P[j, n] A[n, i] M[n, a, b]
        as one product of Aᵀ with M spread over P's rows (j)."""
        n, cols = x_shape
        c = rows.shape[1]
        if len(p_shape) == 1:  # a vector: Σₙ p[n] A[n, i] M[n, a, b]
            spread = rows.factor * reshape(p, sp.Tuple(n, 1, 1))
            product = matmul(transpose(rows.left), reshape(spread, sp.Tuple(n, c * cols)))
            return reshape(product, sp.Tuple(self.k, cols))
        j = p_shape[0]
        spread = expand_dims(rows.factor, sp.Tuple(3)) * reshape(transpose(p), sp.Tuple(n, 1, 1, j))
        product = matmul(transpose(rows.left), reshape(spread, sp.Tuple(n, c * cols * j)))
        stacked = permute_dims(reshape(product, sp.Tuple(rows.size, c, cols, j)), sp.Tuple(0, 1, 3, 2))
        return reshape(stacked, sp.Tuple(self.k, j, cols))

    def _spread(self, n: str) -> None:
        """The stacked tangent of a node factored by rows, multiplied out."""
        rows = self.rows.pop(n)
        shape = self.g.shape(n)
        h, rest = rows.size, shape[1:]
        left = reshape(rows.left, sp.Tuple(shape[0], h, 1, *(1,) * len(rest)))
        product = left * expand_dims(rows.factor, sp.Tuple(1))  # (N, H, C, …)
        order = sp.Tuple(1, 2, 0, *range(3, 3 + len(rest)))
        self._basis(n, reshape(permute_dims(product, order), sp.Tuple(self.k, *shape)))

    def materialize(self, n: str) -> sp.Symbol:
        """The stacked tangent of ``n`` as one node."""
        terms = self.linear[n]
        if len(terms) == 1 and next(iter(terms.values())) == 1:
            return next(iter(terms))
        self._basis(n, sp.Add(*(c * b for b, c in terms.items())))
        return next(iter(self.linear[n]))


class _Rows:
    """A tangent factored by rows: along entry (i, a) of the input, row n of the tangent is
    ``left[n, i] * factor[n, a, …]``; ``size`` is i's range, ``shape`` the factor's."""

    def __init__(self, left: sp.Expr, size: int, shape: Shape):
        self.left, self.size, self.shape = left, size, shape
        self.factor: sp.Expr = sp.S.Zero


def _row_lift(c: sp.Expr, ndim: int, node_ndim: int) -> sp.Expr:
    """A coefficient of the node's shape, with an axis of size 1 for the direction after the rows."""
    return expand_dims(c, sp.Tuple(1)) if ndim == node_ndim and ndim else c


def _free_prefix(names: Iterable[str], candidates: tuple[str, ...]) -> str:
    names = set(names)
    for prefix in candidates:
        if not any(prefix + n in names for n in names):
            return prefix
    raise SymgradError("node names clash with every naming scheme for tangents")


def _lift(t: sp.Expr, operand: Shape, node: Shape) -> sp.Expr:
    """An operand's stacked tangent with axes of size 1 after the first, so it broadcasts
    as the operand does against the node's shape."""
    missing = len(node) - len(operand)
    return expand_dims(t, sp.Tuple(*range(1, missing + 1))) if missing > 0 else t


def _summed(t: sp.Expr, axes: sp.Tuple, keepdims: sp.Expr, shape: Shape) -> sp.Expr:
    """A stacked tangent summed over ``axes``; over its last axis alone, as a product with
    ones (``t @ 𝟙``), which NumPy computes many times faster than a sum over a short axis."""
    if tuple(int(a) for a in axes) == (len(shape),) and keepdims == sp.false:
        return matmul(t, broadcast_to(sp.Integer(1), sp.Tuple(shape[-1])))
    return reduce_sum(t, axes, keepdims)


def _stacked_rule(graph: Graph, node: str, reached: dict[str, sp.Symbol], k: int,
                  identities: set[str]) -> sp.Expr:
    """The stacked tangent of an op that mixes entries; ``identities``: operands whose
    tangent is the identity."""
    data = graph.nx.nodes[node]
    what = data["op"] or data["label"]
    if data["kind"] != "op":
        raise UnsupportedError(f"forward mode cannot pass through the gate {node} ({what})")
    expr, op = data["expr"], data["op"]
    t = {graph.symbol(u): s for u, s in reached.items()}
    shape = {graph.symbol(u): graph.shape(u) for u in graph.operands(node)}

    def stacks() -> UnsupportedError:
        return UnsupportedError(
            f"{node} ({what}) has an operand of more than two axes whose tangent would be 4-D; "
            "forward Jacobians pass through @ and .T with vectors and matrices only")

    if op == "matmul":
        a, b = expr.args
        terms = []
        names = {graph.symbol(u): u for u in reached}
        if any(len(shape[x]) > 2 for x in (a, b)):
            raise stacks()
        if a in t:  # (k, …, m) @ b: one product per direction
            vector = len(shape[a]) == 1
            terms.append(b if vector and names[a] in identities else matmul(t[a], b))
        if b in t:
            if len(shape[b]) == 2:  # a @ (k, m, p), the identity's too: one product per direction
                # beats spreading a's columns over a 4-D array (NumPy multiplies those slowly)
                terms.append(matmul(a, t[b]))
            else:  # the rows of (k, m) times aᵀ
                a_t = transpose(a) if len(shape[a]) == 2 else a
                terms.append(a_t if names[b] in identities else matmul(t[b], a_t))
        return sp.Add(*terms)
    if op == "transpose":
        (a,) = expr.args
        if len(shape[a]) > 2:
            raise stacks()
        return permute_dims(t[a], sp.Tuple(0, 2, 1)) if len(shape[a]) == 2 else t[a]
    if op in ("sum", "mean", "logsumexp"):
        x, axes, keepdims = expr.args
        shifted = sp.Tuple(*(int(a) + 1 for a in axes)) if len(axes) else \
            sp.Tuple(*range(1, len(shape[x]) + 1))
        if op == "logsumexp":
            weights = sp.exp(x - expr.unreduce(data["symbol"]))
            return _summed(weights * t[x], shifted, keepdims, shape[x]) if shifted else weights * t[x]
        if not shifted:  # a scalar reduced: itself
            return t[x]
        if op == "sum":
            return _summed(t[x], shifted, keepdims, shape[x])
        return expr.func(t[x], shifted, keepdims)
    if op == "broadcast_to":
        a, target = expr.args
        lifted = _lift(t[a], shape[a], tuple(int(n) for n in target))
        return broadcast_to(lifted, sp.Tuple(k, *target))
    if op == "sum_to":
        a, target, source = expr.args
        lead = len(source) - len(target)
        total = reduce_sum(t[a], sp.Tuple(*range(1, lead + 1)), sp.false) if lead else t[a]
        kept = tuple(i + 1 for i, n in enumerate(target) if n == 1 and source[lead + i] != 1)
        return reduce_sum(total, sp.Tuple(*kept), sp.true) if kept else total
    if op == "outer":  # vectors: the stacked tangent of a bᵀ is 3-D
        a, b = expr.args
        terms = []
        if a in t:
            terms.append(expand_dims(t[a], sp.Tuple(2)) * b)
        if b in t:
            terms.append(expand_dims(a, sp.Tuple(1)) * expand_dims(t[b], sp.Tuple(1)))
        return sp.Add(*terms)
    if op == "expand_dims":
        a, axes = expr.args
        return expand_dims(t[a], sp.Tuple(*(int(x) + 1 for x in axes)))
    raise UnsupportedError(f"forward Jacobians do not pass through {node} ({what})")

