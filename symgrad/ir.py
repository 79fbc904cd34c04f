"""The graph's attributes, set in one place.

A :class:`symgrad.graph.Graph` is a ``networkx.DiGraph`` whose every node
carries the same attributes (:data:`NODE_ATTRIBUTES`; a gate also ``gate`` and
``body``, :data:`GATE_ATTRIBUTES`) and every edge the same attributes
(:data:`EDGE_ATTRIBUTES`), whatever built it: a front end, the
gradient graphs of :mod:`symgrad.higher`, fusion.  One function per kind of
node or edge makes them; readers index them without fallbacks.  Their
meaning is documented in :mod:`symgrad.graph`.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from .dims import Shape
from .errors import SymgradError

NODE_ATTRIBUTES = frozenset({"kind", "op", "operands", "symbol", "expr", "label", "shape", "dtype",
                             "order", "elementwise"})
GATE_ATTRIBUTES = NODE_ATTRIBUTES | {"gate", "body"}
EDGE_ATTRIBUTES = frozenset({"derivative", "cached", "numeric", "vjp"})


def symbol(name: str) -> sp.Symbol:
    """The SymPy symbol standing for node ``name``'s value."""
    return sp.Symbol(name, real=True)


def input_node(name: str, shape: Shape, dtype: str = "float", order: int = 0) -> dict[str, Any]:
    """An input: ``dtype`` is ``"float"``, or ``"int"`` for integer labels."""
    s = symbol(name)
    return _node("input", None, (), s, s, name, shape, dtype, order, True)


def const_node(name: str, value: sp.Expr, label: str, order: int = 0) -> dict[str, Any]:
    """A constant output (a graph whose value does not depend on its inputs)."""
    return _node("const", None, (), symbol(name), value, label, (), "float", order, True)


def op_node(name: str, op: str, operands: tuple, expr: sp.Expr, label: str, shape: Shape,
            elementwise: bool, order: int = 0, sym: sp.Symbol | None = None) -> dict[str, Any]:
    """An operation of the op table applied to ``operands`` (node names or SymPy constants);
    ``sym`` is its symbol, if already made."""
    return _node("op", op, operands, symbol(name) if sym is None else sym, expr, label, shape, "float",
                 order, elementwise)


def gate_node(name: str, gate: str, operands: tuple, expr: sp.Expr, shape: Shape, body: Any,
              elementwise: bool, order: int = 0) -> dict[str, Any]:
    """A fused gate: ``body`` is the DiGraph of the nodes it replaced."""
    return {**_node("gate", None, operands, symbol(name), expr, gate, shape, "float", order, elementwise),
            "gate": gate, "body": body}


def _node(kind: str, op: str | None, operands: tuple, sym: sp.Symbol, expr: sp.Expr, label: str,
          shape: Shape, dtype: str, order: int, elementwise: bool) -> dict[str, Any]:
    return {"kind": kind, "op": op, "operands": operands, "symbol": sym, "expr": expr, "label": label,
            "shape": tuple(shape), "dtype": dtype, "order": order, "elementwise": elementwise}


def derivative_edge(derivative: sp.Expr, cached: sp.Expr, numeric: sp.Expr) -> dict[str, Any]:
    """An edge into an elementwise node: its local derivative in three forms."""
    return {"derivative": derivative, "cached": cached, "numeric": numeric, "vjp": None}


def vjp_edge(vjp: sp.Lambda | None) -> dict[str, Any]:
    """An edge into a node that mixes entries: its vector-Jacobian product (None for labels)."""
    return {"derivative": None, "cached": None, "numeric": None, "vjp": vjp}


def settle(g: Any) -> None:
    """Check that every node and edge of ``g`` carries the full attribute set.

    Nothing is filled in: a node or edge missing an attribute is a
    SymgradError naming it (every builder, fusion included, goes through the
    functions above).
    """
    for n, data in g.nodes(data=True):
        missing = (GATE_ATTRIBUTES if data.get("kind") == "gate" else NODE_ATTRIBUTES) - data.keys()
        if missing:
            raise SymgradError(f"node {n!r} lacks the attributes {', '.join(sorted(missing))}")
    for u, v, data in g.edges(data=True):
        missing = EDGE_ATTRIBUTES - data.keys()
        if missing:
            raise SymgradError(f"edge {u!r} → {v!r} lacks the attributes {', '.join(sorted(missing))}")
