"""Numbers on every node: the forward and backward pass of a Program, step by step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy as sp

from .errors import EvaluationError
from .graph import Graph
from .printing import evaluate
from .program import Program, build_program
from .values import as_array, coerce


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
    """

    def __init__(self, program: Program, values: dict[str, np.ndarray],
                 local: dict[tuple[str, str], np.ndarray],
                 node_grads: dict[str, np.ndarray], sent: dict[tuple[str, str], np.ndarray],
                 dout: np.ndarray):
        self.program = program
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

    def table(self, digits: int = 4) -> str:
        """Every node's op, value and gradient, and every edge's local derivative.

        The rows go in topological order.  For each operand of a node, the row
        shows the local derivative ∂node/∂operand (symbolic and its value) and
        the gradient sent back to the operand: local × the node's gradient.
        """
        from .tables import trace_table

        return trace_table(self, digits)

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
    env = coerce(graph.inputs, {n: graph.shape(n) for n in graph.inputs}, values)
    program = build_program(graph)
    out_shape = graph.shape(graph.output)
    upstream = np.broadcast_to(as_array("dout", dout), out_shape).copy() \
        if np.ndim(dout) == 0 else as_array("dout", dout)
    if upstream.shape != out_shape:
        from .errors import ShapeError

        raise ShapeError(f"dout has shape {upstream.shape}, but the output has shape {out_shape}")
    with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
        for step in program.forward:
            env[step.target.name] = _run(step.expr, env, graph, f"{step.node} = {step.expr}",
                                         operands=graph.operands(step.node))
        local = {}
        for v in graph.operations:
            for u, d in graph.local_derivatives(v, form="numeric").items():
                local[(v, u)] = _run(d, env, graph, f"∂{v}/∂{u} = {d}", operands=[u, v])
        env[program.dout.name] = upstream
        node_grads, sent = {}, {}
        for adj in program.backward:
            total = np.zeros(adj.shape)
            for term in adj.terms:
                flow = _run(term.expr, env, graph, f"the gradient of {adj.node}",
                            operands=[adj.node])
                total = total + flow
                if term.consumer is not None:
                    sent[(term.consumer, adj.node)] = flow
            env[adj.target.name] = node_grads[adj.node] = total
    for n in graph.nodes:
        node_grads.setdefault(n, np.zeros(graph.shape(n)))
    values_by_node = {n: env[n] for n in graph.nodes}
    return Trace(program, values_by_node, local, node_grads, sent, upstream)


def _run(expr: sp.Expr, env: dict[str, np.ndarray], graph: Graph, what: str,
         operands: list[str]) -> np.ndarray:
    """Evaluate ``expr``, turning NumPy's complaints into an error that names the node."""
    try:
        return evaluate(expr, env)
    except (FloatingPointError, ZeroDivisionError, OverflowError) as e:
        at = ", ".join(f"{n} = {_show(env[n])}" for n in operands if n in env)
        reason = str(e).replace("encountered in", "in")
        raise EvaluationError(f"cannot evaluate {what} at {at}: {reason}") from None


def _show(v: np.ndarray) -> str:
    return f"{float(v):.6g}" if np.ndim(v) == 0 else np.array2string(v, precision=4)
