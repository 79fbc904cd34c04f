"""Numbers on every node: the forward and backward pass of a Program, step by step."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import sympy as sp

from .dims import concrete, legend
from .errors import EvaluationError, ShapeError, SymgradError, UnsupportedError
from .graph import MAX_PATHS, Graph
from .printing import evaluate
from .program import Program, build_program
from .values import as_array, check_labels, coerce, sizes

if TYPE_CHECKING:
    from .explain import Explanation
    from .player import Player
    from .tables import Table


class Trace:
    """The numbers of one forward and backward pass.

    Attributes
    ----------
    value:      the output's value
    grads:      ``{input: ∂output/∂input}``
    values:     ``{node: value}`` for every node
    local:      ``{(node, operand): ∂node/∂operand}`` at this point
    node_grads: ``{node: ∂output/∂node}``, the upstream gradient of the node's edges
    sent:       ``{(node, operand): local × node_grads[node]}``, what each edge carries back
    sizes:      ``{dimension name: size}`` of the named dimensions, as the inputs gave them
    """

    def __init__(self, program: Program, values: dict[str, np.ndarray],
                 local: dict[tuple[str, str], np.ndarray],
                 node_grads: dict[str, np.ndarray], sent: dict[tuple[str, str], np.ndarray],
                 dout: np.ndarray, sizes: dict[str, int] | None = None):
        self.program = program
        self.sizes = dict(sizes or {})
        self.graph: Graph = program.graph
        self.values = {k: _plain(v) for k, v in values.items()}
        self.local = {k: _plain(v) for k, v in local.items()}
        self.node_grads = {k: _plain(v) for k, v in node_grads.items()}
        self.sent = {k: _plain(v) for k, v in sent.items()}
        self.dout = _plain(dout)

    @property
    def value(self) -> Any:
        return self.values[self.graph.output]

    @property
    def grads(self) -> dict[str, Any]:
        return {n: self.node_grads[n] for n in self.program.wrt}

    def table(self, digits: int = 4) -> Table:
        """Every node's op, value and gradient, and every edge's local derivative.

        The rows go in topological order.  For each operand of a node, the row
        shows the local derivative ∂node/∂operand (symbolic and its value) and
        the gradient sent back to the operand: local × the node's gradient.
        Named dimensions are listed beneath, with the sizes the inputs gave them.
        """
        from .picture import check_digits
        from .tables import Table, trace_table

        check_digits(digits)

        text = trace_table(self, digits)
        if self.sizes:
            graph = self.graph
            text += "\n" + legend({n: graph.shape(n) for n in graph.inputs}, self.sizes)
        return Table(text, lambda: trace_table(self, digits, latex=True))

    def explain(self, wrt: str | Iterable[str] | None = None, *, digits: int = 4,
                max_paths: int = MAX_PATHS) -> Explanation:
        """The chain rule along every path from the output to ``wrt`` (default: every input).

        >>> import symgrad as sg
        >>> print(sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4).explain("z"))
        **∂q2/∂z: one path, q2 ← z**
        <BLANKLINE>
            ∂q2/∂z = q1 = 3
        """
        from .explain import explain

        return explain(self, wrt, digits=digits, max_paths=max_paths)

    def player(self, digits: int = 4) -> Player:
        """A step-through player of this trace (:func:`symgrad.player`): in Jupyter, a slider.

        >>> import symgrad as sg
        >>> p = sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4).player()
        >>> p.steps()[-1]
        'backward: q1 → y: upstream ∂q2/∂q1 = -4 × local ∂q1/∂y = 1 = downstream -4'
        """
        from .player import Player

        return Player(self, digits)

    def _repr_svg_(self) -> str | None:
        from .picture import MAX_INLINE, render

        return render(self) if self.graph.nx.number_of_nodes() <= MAX_INLINE else None

    def jacobian(self, node: str, wrt: str) -> np.ndarray:
        """The Jacobian ∂node/∂wrt at this point, shape ``node.shape + wrt.shape``.

        Backprop never forms it; this builds it from one backward pass per
        entry of ``node``, to look at for small shapes.  An elementwise node's
        Jacobian is diagonal:

        >>> import symgrad as sg
        >>> t = sg.graph("sum(exp(x))", shapes={"x": (2,)}).backprop(x=[0.0, 1.0])
        >>> t.jacobian("q1", "x")
        array([[1.        , 0.        ],
               [0.        , 2.71828183]])
        """
        return jacobian(self, node, wrt)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<Trace value={_short(self.value)} grads={ {k: _short(v) for k, v in self.grads.items()} }>"


def _plain(v: np.ndarray) -> Any:
    """Scalars as Python floats; arrays stay arrays."""
    return float(v) if np.ndim(v) == 0 else v


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else f"array{np.shape(v)}"


def backprop(graph: Graph, values: Mapping[str, Any], dout: Any = 1.0) -> Trace:
    """Forward and backward pass of ``graph`` at ``values``; see :meth:`Graph.backprop`."""
    dtypes = {n: graph.nx.nodes[n]["dtype"] for n in graph.inputs}
    declared = {n: graph.shape(n) for n in graph.inputs}
    env = coerce(graph.inputs, declared, values, dtypes)
    check_labels(graph, env)
    known = sizes(declared, env)
    program = build_program(graph)
    out_shape = concrete(graph.shape(graph.output), known)
    upstream = np.broadcast_to(as_array("dout", dout), out_shape).copy() \
        if np.ndim(dout) == 0 else as_array("dout", dout)
    if upstream.shape != out_shape:
        raise ShapeError(f"dout has shape {upstream.shape}, but the output has shape {out_shape}")
    env.update(known)  # type: ignore[arg-type]  # expressions read a named dimension by its name
    with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
        for step in program.forward:
            env[step.target.name] = _run(step.expr, env, graph, _shown(step.node, " = ", step.expr),
                                         operands=graph.operands(step.node))
        local = {}
        for v in graph.operations:
            if not graph.elementwise(v):
                continue  # no local Jacobian is formed; the edge's vjp goes straight to `sent`
            for u, d in graph.local_derivatives(v, form="numeric").items():
                local[(v, u)] = _run(d, env, graph, _shown("∂", v, "/∂", u, " = ", d),
                                     operands=[u, v])
        node_grads, sent = _backward(program, env, upstream, known)
    for n in graph.nodes:
        if n not in graph.labels:
            node_grads.setdefault(n, np.zeros(concrete(graph.shape(n), known)))
    values_by_node = {n: env[n] for n in graph.nodes}
    return Trace(program, values_by_node, local, node_grads, sent, upstream, known)


def _backward(program: Program, env: dict[str, np.ndarray], upstream: np.ndarray,
              known: dict[str, int]) -> tuple[dict[str, np.ndarray], dict[tuple[str, str], np.ndarray]]:
    """The adjoint assignments of ``program`` evaluated at ``env`` (forward values and the
    sizes ``known`` of named dimensions filled in)."""
    graph = program.graph
    env[program.dout.name] = upstream
    node_grads, sent = {}, {}
    for adj in program.backward:
        shape = concrete(adj.shape, known)
        total = np.zeros(shape)
        for term in adj.terms:
            flow = _run(term.expr, env, graph, f"the gradient of {adj.node}", operands=[adj.node])
            if flow.shape != shape:
                op = graph.nx.nodes[term.consumer]["op"] if term.consumer else "dout"
                raise ShapeError(f"{op}: the gradient sent to {adj.node} has shape {flow.shape}, "
                                 f"but {adj.node} has shape {adj.shape}")
            try:
                total = total + flow
            except FloatingPointError as e:  # the sum of the gradients it receives overflows
                raise EvaluationError(f"cannot add up the gradient of {adj.node}: "
                                      f"{str(e).replace('encountered in', 'in')}") from None
            if term.consumer is not None:
                sent[(term.consumer, adj.node)] = flow
        env[adj.target.name] = node_grads[adj.node] = total
    return node_grads, sent


def jacobian(trace: Trace, node: str, wrt: str, limit: int = 10_000) -> np.ndarray:
    """∂node/∂wrt at the trace's point, of shape ``node.shape + wrt.shape``.

    Row by row: one backward pass per entry of ``node``, with a unit upstream
    gradient.  This is exactly the matrix backprop never forms, so it is for
    small shapes only (at most ``limit`` entries).
    """
    graph = trace.graph
    shape, wrt_shape = concrete(graph.shape(node), trace.sizes), concrete(graph.shape(wrt), trace.sizes)
    if wrt in graph.labels:
        raise SymgradError(f"{wrt!r} holds integer labels; labels have no gradient")
    size = int(np.prod(shape, dtype=int)) * int(np.prod(wrt_shape, dtype=int))
    if size > limit:
        raise ShapeError(
            f"the Jacobian ∂{node}/∂{wrt} would have shape {shape + wrt_shape} ({size} entries, "
            f"more than {limit}); backprop never forms it"
        )
    jac = np.zeros(shape + wrt_shape)
    sub = _cut(graph, node, wrt)
    if sub is None:
        return jac
    program = build_program(sub, [wrt])
    env = {n: np.asarray(v) for n, v in trace.values.items()}
    env.update(trace.sizes)  # type: ignore[arg-type]
    with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
        for index in np.ndindex(*shape):
            unit = np.zeros(shape)
            unit[index] = 1.0
            jac[index] = _backward(program, dict(env), unit, trace.sizes)[0][wrt]
    return jac


def _cut(graph: Graph, node: str, wrt: str) -> Graph | None:
    """The part of ``graph`` between ``wrt`` (as its only input) and ``node`` (as its output)."""
    keep = nx.ancestors(graph.nx, node) | {node}
    if wrt not in keep:
        return None
    g = nx.DiGraph()  # in the graph's (topological) order, which a subgraph view does not keep
    g.add_nodes_from((n, graph.nx.nodes[n]) for n in graph.nodes if n in keep)
    g.add_edges_from((u, v, d) for u, v, d in graph.nx.edges(data=True)
                     if u in keep and v in keep and v != wrt)
    return Graph(g, node, (wrt,), graph.granularity)


def _shown(*parts: Any) -> Callable[[], str]:
    """The text of ``parts``, written out when asked for (an expression prints slowly)."""
    return lambda: "".join(str(p) for p in parts)


def _run(expr: sp.Expr, env: dict[str, np.ndarray], graph: Graph, what: str | Callable[[], str],
         operands: list[str]) -> np.ndarray:
    """Evaluate ``expr``, turning NumPy's complaints into an error that names the node (``what``,
    or what it returns: written out only for an error)."""
    try:
        return evaluate(expr, env)
    except (FloatingPointError, ZeroDivisionError, OverflowError) as e:
        what = what() if callable(what) else what
        at = ", ".join(f"{n} = {_show(env[n])}" for n in operands if n in env)
        reason = str(e).replace("encountered in", "in")
        raise EvaluationError(f"cannot evaluate {what} at {at}: {reason}") from None
    except (EvaluationError, UnsupportedError) as e:  # no NumPy spelling: nan, inf, an unknown name
        raise type(e)(f"cannot evaluate {what() if callable(what) else what}: {e}") from None


def _show(v: np.ndarray) -> str:
    return f"{float(v):.6g}" if np.ndim(v) == 0 else np.array2string(v, precision=4)
