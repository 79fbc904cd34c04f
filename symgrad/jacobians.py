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

Tangents of vectors are matrices; tangents of matrices would be 3-D arrays,
which ``@`` does not take, so the input and every node it reaches through
matmul or transpose must be at most a vector (an UnsupportedError says so).
"""

from __future__ import annotations

import sympy as sp

from .errors import SymgradError, UnsupportedError
from .graph import Graph
from .higher import _Extension, _source, _tangent_prefix, eye
from .tensors import broadcast_to, expand_dims, matmul, reduce_sum, transpose

Shape = tuple[int, ...]


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
    if len(shape) > 1:
        raise UnsupportedError(f"{wrt} has shape {shape}: forward Jacobians take scalars and "
                               "vectors (a matrix's tangents would be 3-D)")
    k = 1 if shape == () else shape[0]
    ext = _Extension(graph)
    prefix = _tangent_prefix(graph.nodes)
    identity = sp.Symbol(prefix + wrt, real=True)
    ext.add(eye(k) if shape else sp.Integer(1), identity, (k, *shape))
    tangent = {wrt: identity}
    for n in graph.operations:
        reached = {u: tangent[u] for u in graph.operands(n) if u in tangent}
        if not reached:
            continue
        if graph.elementwise(n):
            edges = graph.nx.edges
            expr = sp.Add(*(edges[u, n].get("numeric", edges[u, n]["cached"])
                            * _lift(t, graph.shape(u), graph.shape(n)) for u, t in reached.items()))
        else:
            expr = _stacked_rule(graph, n, reached, k, {wrt} if shape else set())
        tangent[n] = sp.Symbol(prefix + n, real=True)
        ext.add(expr, tangent[n], (k, *graph.shape(n)))
    out = tangent.get(graph.output)
    if out is None:
        out = sp.Symbol(prefix + graph.output, real=True)
        ext.add(sp.S.Zero, out, (k, *graph.shape(graph.output)))
    return ext.graph_of(out, f"jacobian({_source(graph)}, {wrt})")


def _lift(t: sp.Expr, operand: Shape, node: Shape) -> sp.Expr:
    """An operand's stacked tangent with axes of size 1 after the first, so it broadcasts
    as the operand does against the node's shape."""
    missing = len(node) - len(operand)
    return expand_dims(t, sp.Tuple(*range(1, missing + 1))) if missing > 0 else t


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

    def matrices() -> UnsupportedError:
        return UnsupportedError(
            f"{node} ({what}) has a matrix operand whose tangent would be 3-D; forward "
            "Jacobians pass through @ and .T with vectors only")

    if op == "matmul":
        a, b = expr.args
        terms = []
        names = {graph.symbol(u): u for u in reached}
        if a in t:
            if len(shape[a]) != 1:
                raise matrices()
            terms.append(b if names[a] in identities else matmul(t[a], b))
        if b in t:
            if len(shape[b]) != 1:
                raise matrices()
            a_t = transpose(a) if len(shape[a]) == 2 else a
            terms.append(a_t if names[b] in identities else matmul(t[b], a_t))
        return sp.Add(*terms)
    if op == "transpose":
        (a,) = expr.args
        if len(shape[a]) > 1:
            raise matrices()
        return t[a]
    if op in ("sum", "mean", "logsumexp"):
        x, axes, keepdims = expr.args
        shifted = sp.Tuple(*(int(a) + 1 for a in axes)) if len(axes) else \
            sp.Tuple(*range(1, len(shape[x]) + 1))
        if op == "logsumexp":
            weights = sp.exp(x - expr.unreduce(data["symbol"]))
            return reduce_sum(weights * t[x], shifted, keepdims) if shifted else weights * t[x]
        if not shifted:  # a scalar reduced: itself
            return t[x]
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

