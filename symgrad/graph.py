"""Graph: the one intermediate representation every backend reads.

``g.nx`` is a ``networkx.DiGraph``.  Node attributes:

- ``kind``: ``"input"``, ``"const"`` (a constant output), ``"op"`` or ``"gate"``
  (a fused sub-graph; see :mod:`symgrad.fusion`)
- ``op``: the op's name in :data:`symgrad.ops.OPS`, or in
  ``OPS.gradient`` for the backward pass's helpers (op nodes), else None
- ``operands``: the node's operands in order: node names, or SymPy constants
- ``symbol``: the SymPy symbol standing for the node's value (named like the node)
- ``expr``: the node's SymPy expression in terms of its operands' symbols
- ``label``: the display name in tables and pictures (``+``, ``*-1``, ``1/x``, ``σ``)
- ``shape``: the value's shape; ``()`` for a scalar
- ``dtype``: ``"float"``, or ``"int"`` for inputs that are integer labels, which get no gradient
- ``order``: 0 for the forward pass; in gradient graphs (see :mod:`symgrad.higher`)
  1 for the backward pass, 2 for the backward pass of a gradient, …
- ``elementwise``: whether the node acts entry by entry (its Jacobian is diagonal)

Gate nodes also carry ``gate`` (the gate's name, also its ``label``) and
``body`` (a DiGraph of the fused nodes and their operands, with all their
attributes and edges, which :meth:`Graph.expand` puts back).  Every node has
every attribute of its kind, and every edge every edge attribute:
:mod:`symgrad.ir` makes them, one function per kind.

An edge ``u → v`` means ``u`` is an operand of ``v``.  Edge attributes:

- ``derivative``: ∂v/∂u, derived by SymPy from ``v``'s expression
- ``cached``: the same, rewritten through ``v``'s own symbol where that is
  simpler (∂exp(a)/∂a = q, ∂σ(a)/∂a = q·(1 − q)); tables show this form
- ``numeric``: the form the backward pass evaluates: ``cached``, unless that
  loses precision (1 − q rounds to 0 for a large sigmoid input), then the
  stable spelling :data:`symgrad.ops.STABLE_DERIVATIVES` declares (q·σ(−a))
- ``vjp``: for an op that is not elementwise (matmul, sum, …; see
  :mod:`symgrad.tensors`), whose Jacobian is never formed: the gradient sent
  back to ``u`` as a SymPy ``Lambda`` of the upstream gradient (None for
  labels).  ``derivative``, ``cached`` and ``numeric`` are None on such edges,
  ``vjp`` on the others.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import networkx as nx
import sympy as sp

from . import ir
from .alike import name_order, substitute
from .build import Ref, Spec, intermediate_prefix
from .dims import Shape, legend
from .dims import text as shape_text
from .errors import InputError, ShapeError, SymgradError, UnsupportedError
from .local_derivatives import edge_derivatives
from .ops import label, op_of
from .tensors import shape_of

if TYPE_CHECKING:
    from .explain import Explanation
    from .fusion import Finding
    from .interpret import Trace
    from .tables import Table

MAX_PATHS = 10  # explanations list at most this many paths to a node


class Graph:
    """A computation graph whose edges carry SymPy-derived local derivatives.

    Build one with :func:`symgrad.graph`.  Graphs are not changed after they
    are built: fusion and expansion return new graphs.
    """

    def __init__(self, g: nx.DiGraph, output: str, inputs: tuple[str, ...],
                 granularity: str = "primitive", source: str = ""):
        ir.settle(g)
        self.nx = g
        self.output = output
        self.inputs = inputs
        self.granularity = granularity
        self.source = source
        self._position = {n: i for i, n in enumerate(g.nodes)}  # topological index

    @classmethod
    def _from_specs(cls, specs: list[Spec], output: Ref, order: list[str],
                    granularity: str, source: str) -> Graph:
        input_names = [s.name for s in specs if s.kind == "input"]
        prefix = intermediate_prefix(input_names)  # type: ignore[arg-type]
        names: list[str] = []
        count = 0
        for s in specs:
            if s.kind == "input":
                names.append(s.name)  # type: ignore[arg-type]
            else:
                count += 1
                names.append(f"{prefix}{count}")
        _check_dimension_names(specs, names)
        g = nx.DiGraph()
        derived: dict[tuple, Any] = {}
        spec_of = dict(zip(names, specs))
        for name in order:
            spec = spec_of[name]
            g.add_node(name, **ir.input_node(name, spec.shape, spec.dtype))
        for name, s in zip(names, specs):
            if s.kind == "const":
                g.add_node(name, **ir.const_node(name, s.value, str(s.value)))
            elif s.kind == "op":
                operands = tuple(names[o.index] if isinstance(o, Ref) else o for o in s.operands)
                add_op_node(g, name, s.op, operands, s.shape, derived)  # type: ignore[arg-type]
        return cls(g, names[output.index], tuple(order), granularity, source)

    # -- reading the graph ---------------------------------------------------

    @property
    def nodes(self) -> list[str]:
        """All node names in topological order (inputs first)."""
        return list(self.nx.nodes)

    @property
    def operations(self) -> list[str]:
        """Operation nodes in topological order."""
        return [n for n, k in self.nx.nodes(data="kind") if k != "input"]

    def symbol(self, node: str) -> sp.Symbol:
        return self._node(node)["symbol"]

    def expr(self, node: str) -> sp.Expr:
        """The node's own expression, in terms of its operands' symbols."""
        return self._node(node)["expr"]

    def shape(self, node: str) -> Shape:
        return self._node(node)["shape"]

    def operands(self, node: str) -> list[str]:
        """The node's operand nodes, in order, without repeats or constants."""
        return list(dict.fromkeys(o for o in self._node(node)["operands"] if isinstance(o, str)))

    def consumers(self, node: str) -> list[str]:
        """The nodes that use ``node`` as an operand, in topological order."""
        self._node(node)
        return sorted(self.nx.successors(node), key=self._position.__getitem__)

    def expression(self, node: str | None = None) -> sp.Expr:
        """The value of ``node`` (default: the output) in terms of the graph's inputs."""
        node = self.output if node is None else node
        self._node(node)
        full: dict[sp.Symbol, sp.Expr] = {}
        for n in self.nodes:
            data = self.nx.nodes[n]
            if data["kind"] != "input":
                full[data["symbol"]] = data["expr"].xreplace(full)
            if n == node:
                return full.get(data["symbol"], data["symbol"])
        raise AssertionError("unreachable")

    def local_derivatives(self, node: str, cached: bool = False, *,
                          form: str | None = None) -> dict[str, sp.Expr]:
        """``{operand: ∂node/∂operand}`` as SymPy expressions.

        With ``cached=True`` (or ``form="cached"``), each derivative is given in
        the form that reuses the node's own output where that is simpler;
        ``form="numeric"`` gives the form the backward pass evaluates.
        For an op that is not elementwise there is no such expression (its
        Jacobian is never formed): see :meth:`vjps`.

        >>> import symgrad as sg
        >>> g = sg.graph("exp(x) * y")
        >>> g.local_derivatives("q1"), g.local_derivatives("q1", cached=True)
        ({'x': exp(x)}, {'x': q1})
        >>> sg.graph("sigmoid(x)").local_derivatives("q1", form="numeric")
        {'x': q1*sigmoid(-x)}
        """
        if not self.elementwise(node):
            raise SymgradError(
                f"{node} ({self._what(node)}) is not elementwise: its Jacobian is never "
                f"formed; g.vjps({node!r}) gives the gradient it sends to each operand"
            )
        key = form or ("cached" if cached else "derivative")
        if key not in ("derivative", "cached", "numeric"):
            raise SymgradError(f"unknown form {key!r}; choose derivative, cached or numeric")
        return {u: self.nx.edges[u, node][key] for u in self.operands(node)}

    def with_local_derivative(self, node: str, operand: str, derivative: sp.Expr | str) -> Graph:
        """A copy of the graph whose edge ``operand → node`` carries ``derivative`` instead.

        For a gate whose local gradient is given by hand (and checked with
        :func:`symgrad.check_local`).  ``derivative`` is a SymPy expression, or an
        expression string (parsed safely), in the node's operands and the node itself.

        >>> import symgrad as sg
        >>> g = sg.graph("exp(x) * y").with_local_derivative("q1", "x", "2*q1")
        >>> g.local_derivatives("q1")
        {'x': 2*q1}
        """
        operands = self.operands(node)
        if not self.elementwise(node):
            raise SymgradError(
                f"{node} ({self._what(node)}) is not elementwise: its gradient is a "
                "vector-Jacobian product, not a local derivative"
            )
        if operand not in operands:
            raise SymgradError(
                f"{operand!r} is not an operand of {node!r} (its operands: {', '.join(operands) or 'none'})"
            )
        if isinstance(derivative, str):
            derivative = graph(derivative).expression()
        if not isinstance(derivative, sp.Expr):
            raise SymgradError(f"the derivative must be a SymPy expression or a string, not {derivative!r}")
        allowed = {self.symbol(n).name: self.symbol(n) for n in [*operands, node]}
        unknown = sorted(s.name for s in derivative.free_symbols if s.name not in allowed)
        if unknown:
            raise SymgradError(
                f"the derivative of {node} may use {', '.join(allowed)}, not {', '.join(unknown)}"
            )
        derivative = derivative.xreplace({s: allowed[s.name] for s in derivative.free_symbols})
        g = self.nx.copy()
        edge = g.edges[operand, node]
        edge.update(ir.derivative_edge(derivative, derivative, derivative))  # no old form stays
        return Graph(g, self.output, self.inputs, self.granularity, self.source)

    def elementwise(self, node: str) -> bool:
        """True unless ``node`` is an op that mixes entries (matmul, sum, …).

        >>> import symgrad as sg
        >>> g = sg.graph("sum(exp(x))", shapes={"x": (3,)})
        >>> g.elementwise("q1"), g.elementwise("q2")
        (True, False)
        """
        return self._node(node)["elementwise"]

    def vjps(self, node: str) -> dict[str, sp.Lambda]:
        """``{operand: upstream ↦ gradient sent to the operand}`` as SymPy Lambdas.

        For elementwise ops this is the upstream gradient times the cached
        local derivative, summed over broadcast axes; for the others it is the
        op's vector-Jacobian product.  Labels get no gradient and are left out.

        >>> import symgrad as sg
        >>> g = sg.graph("W @ x", shapes={"W": (2, 3), "x": (3,)})
        >>> g.vjps("q1")
        {'W': Lambda(dq1, outer(dq1, x)), 'x': Lambda(dq1, W.T @ dq1)}
        """
        from .program import edge_flow

        upstream = sp.Symbol(f"d{node}", real=True)
        out = {}
        for u in self.operands(node):
            flow = edge_flow(self, u, node, upstream)
            if flow is not None:
                out[u] = sp.Lambda(upstream, flow)
        return out

    @functools.cached_property
    def sigmoid_outputs(self) -> dict[sp.Expr, sp.Symbol]:
        """``{sigmoid(a): q}`` for each node ``q`` computing a sigmoid (an op or a gate): how
        the displays write a sigmoid's derivative through its output, ``q*(1 - q)``.

        >>> import symgrad as sg
        >>> sg.graph("sigmoid(w*x)").sigmoid_outputs
        {sigmoid(q1): q2}
        """
        from .ops import sigmoid

        return {e: self.symbol(n) for n in self.nodes if isinstance(e := self.expr(n), sigmoid)}

    @property
    def labels(self) -> tuple[str, ...]:
        """The inputs that hold integer labels (declared with ``dtypes={name: int}``).

        >>> import symgrad as sg
        >>> sg.graph("pick(s, y)", shapes={"s": (2, 3), "y": (2,)}, dtypes={"y": int}).labels
        ('y',)
        """
        found = self.__dict__.get("_labels")
        if found is None:  # once: the graph does not change, and every node's derivatives ask
            found = self._labels = tuple(n for n in self.inputs if self.nx.nodes[n]["dtype"] == "int")
        return found

    def _what(self, node: str) -> str:
        """The node's op, or its label for a gate."""
        return self.nx.nodes[node]["op"] or self.nx.nodes[node]["label"]

    def _node(self, node: str) -> dict[str, Any]:
        try:
            return self.nx._node[node]  # type: ignore[no-any-return]  # networkx's node dict: no view made
        except KeyError:
            raise SymgradError(
                f"no node {node!r} in this graph (nodes: {', '.join(self.nodes)})"
            ) from None

    # -- numbers ---------------------------------------------------------------

    def backprop(self, dout: Any = 1.0, **values: Any) -> Trace:
        """Forward and backward pass with numbers on every node.

        >>> import symgrad as sg
        >>> t = sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4)
        >>> t.value, t.grads
        (-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})
        """
        from .collector import collector_paused
        from .interpret import backprop

        if isinstance(dout, Mapping):
            raise InputError(
                "backprop takes the input values as keywords: g.backprop(**values) for a dict, "
                "or g.backprop(x=..., y=...); its one positional argument is dout"
            )
        with collector_paused():
            return backprop(self, values, dout)

    def compile(self, wrt: Iterable[str] | None = None, *, xp: Any = None,
                batch: str | None = None, backend: str = "numpy") -> Any:
        """NumPy forward/backward code for this graph, generated and compiled.

        ``wrt`` names the inputs to differentiate with respect to (default: all).
        See :class:`symgrad.compiled.Compiled`.  ``xp`` (an array library:
        ``array_api_strict``, ``torch``, ``jax.numpy``, ...) compiles array-API code
        for it instead (:class:`symgrad.arrayapi.ArrayCompiled`); ``batch`` (a named
        dimension) gives gradients over Dask arrays chunked along it
        (:class:`symgrad.batch.BatchCompiled`).  ``backend="numba"`` (with
        ``pip install 'symgrad[numba]'``) runs the same generated lines on arrays as
        one function Numba compiles on its first call (:mod:`symgrad.numba_backend`).

        >>> import symgrad as sg
        >>> f = sg.graph("(x + y) * z").compile()
        >>> f(x=-2, y=5, z=-4)
        -12.0
        """
        if backend != "numpy" and (batch is not None or xp is not None):
            raise UnsupportedError(f"backend={backend!r} runs NumPy arrays; it does not take "
                                   f"{'batch=' if batch is not None else 'xp='} as well")
        if batch is not None:
            from .batch import BatchCompiled

            return BatchCompiled(self, batch, wrt, xp)
        if xp is not None:
            from .arrayapi import ArrayCompiled

            return ArrayCompiled(self, wrt, xp)
        from .compiled import compile_graph

        return compile_graph(self, wrt, backend)

    # -- fusion (symgrad.fusion) ---------------------------------------------------

    def fuse(self, nodes: Iterable[str] | str, name: str | None = None) -> Graph:
        """One gate in place of a connected single-output set of operation nodes,
        or every occurrence of a named pattern (``"sigmoid"``); see :func:`symgrad.fusion.fuse`.

        >>> import symgrad as sg
        >>> g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").fuse("sigmoid")
        >>> g.expr("q8"), g.local_derivatives("q8", cached=True)
        (sigmoid(q4), {'q4': q8*(1 - q8)})
        """
        from .fusion import fuse

        return fuse(self, nodes, name)

    def fuse_all(self, name: str | None = None) -> Graph:
        """The whole expression as one gate; see :func:`symgrad.fusion.fuse_all`."""
        from .fusion import fuse_all

        return fuse_all(self, name)

    def expand(self, nodes: Iterable[str] | None = None) -> Graph:
        """Gates back to the nodes they were fused from; see :func:`symgrad.fusion.expand`."""
        from .fusion import expand

        return expand(self, nodes)

    def lint(self) -> list[Finding]:
        """Numerically fragile spellings, each with its stable gate; see :func:`symgrad.fusion.lint`."""
        from .fusion import lint

        return lint(self)

    def fuse_stable(self) -> Graph:
        """Every fragile spelling replaced by its stable gate; see :func:`symgrad.fusion.fuse_stable`."""
        from .fusion import fuse_stable

        return fuse_stable(self)

    @property
    def gates(self) -> list[str]:
        """The gate (fused) nodes, in topological order."""
        return [n for n, k in self.nx.nodes(data="kind") if k == "gate"]

    # -- pictures and explanations ---------------------------------------------------

    def explain(self, wrt: str | Iterable[str] | None = None, *,
                max_paths: int = MAX_PATHS) -> Explanation:
        """The chain rule along every path from the output to ``wrt``, in symbols.

        >>> import symgrad as sg
        >>> print(sg.graph("x*x + x").explain("x"))
        **∂q2/∂x: 2 paths, added where they meet**
        <BLANKLINE>
        - q2 ← q1 ← x: ∂q2/∂q1·∂q1/∂x = 1·(2*x) = 2*x
        - q2 ← x: ∂q2/∂x = 1
        - sum: ∂q2/∂x = 2*x + 1
        """
        from .explain import explain

        return explain(self, wrt, max_paths=max_paths)

    def table(self) -> Table:
        """Every operation node's local derivatives: text, and LaTeX in Jupyter."""
        from .tables import Table, derivative_table

        named = legend({n: self.shape(n) for n in self.inputs})
        return Table(derivative_table(self) + (f"\n{named}" if named else ""),
                     lambda: derivative_table(self, latex=True))

    def _repr_svg_(self) -> str | None:
        from .picture import MAX_INLINE, render

        return render(self) if self.nx.number_of_nodes() <= MAX_INLINE else None

    # -- text --------------------------------------------------------------------

    def __str__(self) -> str:
        head = f"{self.output} = {self.source}" if self.source else self.output
        tensors = any(self.shape(n) != () for n in self.nodes)
        inputs = [self._declared(n) if tensors else n for n in self.inputs]
        lines = [f"graph({', '.join(inputs)}): {head}"]
        from .tables import expression_text

        shown = {n: f"{n} = {expression_text(self, n)}" for n in self.operations}
        width = max([len(text) for text in shown.values()] + [0])
        label_width = max([len(self.nx.nodes[n]["label"]) for n in self.operations] + [0])
        for n in self.operations:
            text = shown[n]
            line = f"  {text:<{width}}   [{self.nx.nodes[n]['label']}]"
            if tensors:
                line = f"{line:<{width + label_width + 7}}   {shape_text(self.shape(n))}"
            lines.append(line)
        lines.append(f"  return {self.output}")
        return "\n".join(lines)

    def _declared(self, name: str) -> str:
        """An input with its shape and, for labels, its dtype: ``W: 2×3``, ``y: N int``."""
        dtype = " int" if self.nx.nodes[name]["dtype"] == "int" else ""
        return f"{name}: {shape_text(self.shape(name))}{dtype}"

    def __repr__(self) -> str:
        what = self.source or str(self.expression())
        return (f"<Graph {what!r}: {len(self.operations)} operations, "
                f"inputs {', '.join(self.inputs) or 'none'}>")


_symbol = ir.symbol


def _check_dimension_names(specs: list[Spec], names: list[str]) -> None:
    """A named dimension is a variable of the generated code: no node or gradient may share its name."""
    taken = set(names) | {f"{p}{n}" for n in names for p in ("d", "d_", "grad_", "adj_")}
    for s in specs:
        for n in s.shape if s.kind == "input" else ():
            if str(n) in taken and not isinstance(n, int):
                raise ShapeError(f"dimension {str(n)!r} of input {s.name!r} has the name of a node "
                                 "or gradient in the graph; please rename it")


def add_op_node(g: nx.DiGraph, name: str, op_name: str, operands: tuple, shape: Shape,
                derived: dict[tuple, Any] | None = None, order: int = 0) -> None:
    """Add an operation node and its edges, deriving each edge's local derivative.

    ``derived`` remembers the derivatives of each op and constant pattern, in
    placeholder symbols, so a graph of many alike nodes asks SymPy once per pattern.
    It also remembers, per pattern and order of the node's symbol names, the
    first such node's expression and derivatives: a later node whose names sort
    the same way gets them with its own symbols put in (:func:`symgrad.alike.substitute`),
    without SymPy evaluating them again.
    """
    op = op_of(op_name)
    out = _symbol(name)
    constants = tuple(None if isinstance(o, str) else o for o in operands)
    node_label = label(op, constants)
    if not op.elementwise:
        expr = op.sympy(*(g.nodes[o]["symbol"] if isinstance(o, str) else o for o in operands))
        g.add_node(name, **ir.op_node(name, op_name, operands, expr, node_label, shape, False, order))
        _add_vjp_edges(g, name, op_name, expr, operands)
        return
    nodes = list(dict.fromkeys(o for o in operands if isinstance(o, str)))
    symbols = [g.nodes[o]["symbol"] for o in nodes]
    key = (op_name, tuple(("node", nodes.index(o)) if isinstance(o, str) else (type(o), o) for o in operands))
    targets = (*symbols, out)
    alike = (key, name_order(targets))
    first = None if derived is None else derived.get(alike)
    if first is not None:
        seen, expr, edges = first
        swap = {s.name: t for s, t in zip(seen, targets)}
        memo: dict[int, sp.Expr] = {}
        expr = substitute(expr, swap, memo)
        edges = [tuple(substitute(e, swap, memo) for e in edge) for edge in edges]
    else:
        args = {o: s for o, s in zip(nodes, symbols)}
        expr = op.sympy(*(args[o] if isinstance(o, str) else o for o in operands))
        edges = _derive(op, operands, nodes, key, targets, derived)
        if derived is not None:
            derived[alike] = (targets, expr, edges)
    g.add_node(name, **ir.op_node(name, op_name, operands, expr, node_label, shape, True, order, out))
    for o, edge in zip(nodes, edges):
        g.add_edge(o, name, **ir.derivative_edge(*edge))


_FORMS = ("derivative", "cached", "numeric")


def _derive(op: Any, operands: tuple, nodes: list[str], key: tuple, targets: tuple,
            derived: dict[tuple, Any] | None) -> list[tuple[sp.Expr, ...]]:
    """The derivative, cached and numeric forms of each edge into the node, in ``targets``
    (the operand nodes' symbols, then the node's own)."""
    forms = None if derived is None else derived.get(key)
    if forms is None:
        slots = _slots(len(nodes))
        pattern = op.sympy(*(slots[nodes.index(o)] if isinstance(o, str) else o for o in operands))
        forms = [edge_derivatives(pattern, slot, _OUT) for slot in slots]
        if derived is not None:
            derived[key] = forms
    rename = dict(zip((*_slots(len(nodes)), _OUT), targets))
    return [tuple(edge[k].xreplace(rename) for k in _FORMS) for edge in forms]


def _slots(count: int) -> list[sp.Symbol]:
    """The placeholder symbols of a pattern's operands."""
    if len(_SLOTS) < count:
        with _GROWING:  # graphs may be built in several threads at once
            while len(_SLOTS) < count:
                _SLOTS.append(_symbol(f"_operand{len(_SLOTS)}"))
    return _SLOTS[:count]


_SLOTS: list[sp.Symbol] = []
_GROWING = threading.Lock()
_OUT = sp.Symbol("_out", real=True)


def _add_vjp_edges(g: nx.DiGraph, name: str, op_name: str, expr: sp.Expr, operands: tuple) -> None:
    """Edges into a node that mixes entries: each carries the op's vector-Jacobian product."""
    upstream, out = sp.Symbol(f"d{name}", real=True), g.nodes[name]["symbol"]
    shapes = tuple(g.nodes[o]["shape"] if isinstance(o, str) else () for o in operands)
    known = {g.nodes[o]["symbol"]: g.nodes[o]["shape"] for o in operands if isinstance(o, str)}
    known[upstream] = known[out] = g.nodes[name]["shape"]
    rules = expr.vjp(upstream, out, shapes[: len(expr.operands)])
    flows: dict[str, Any] = {}
    for o, rule in zip(operands, rules):
        if not isinstance(o, str):
            continue
        if rule is not None and shape_of(rule, known) != g.nodes[o]["shape"]:
            raise ShapeError(f"{op_name}: the gradient for {o} has shape {shape_of(rule, known)}, "
                             f"but {o} has shape {g.nodes[o]['shape']}")
        flows[o] = rule if o not in flows or rule is None else flows[o] + rule
    for o, rule in flows.items():
        vjp = None if rule is None else sp.Lambda(upstream, rule)
        g.add_edge(o, name, **ir.vjp_edge(vjp))


# sg.graph() lives with the front ends; it is importable from here too
from .frontends import graph  # noqa: E402
