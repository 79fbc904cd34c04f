"""The gradient is a graph too: gradient graphs, higher derivatives, Hessians, Jacobians.

:func:`grad` turns the adjoint program of a graph (:mod:`symgrad.program`)
into a :class:`~symgrad.graph.Graph` whose output is the gradient.  The
forward nodes the backward pass reads are the same nodes, with the same names
and attributes (``q3`` is ``q3`` in both graphs); the backward nodes are new,
each adjoint named as in the generated code (``dq3``), their intermediates
numbered after the forward ones.  Every node carries ``order``: 0 for the
forward pass, 1 for the first backward pass, 2 for a gradient of a gradient, …;
pictures colour the backward nodes by it.

A gradient graph is a graph like any other: it backpropagates, compiles,
fuses, renders, explains and checks, and :func:`grad` of it is the second
derivative.  :func:`hvp` is reverse-over-reverse: the graph of
``sum(grad · v)`` differentiated once more, so it needs nothing beyond the
vector-Jacobian products the op table already has (forward mode would need a
second rule per op); ``benchmarks/bench_higher.py`` times it against
Hessian-times-vector.  :func:`hessian` and :func:`jacobian` evaluate those
graphs, compiled, column by column (a Hessian-vector product per column, a
vector-Jacobian product per output entry).

The backward pass uses a few functions the forward ops do not offer (a step
function, the sign, ``sum_to``, ``broadcast_to``, …).  They are rows of the op
table too (``OPS.gradient``, see :mod:`symgrad.ops`), each with its own
vector-Jacobian product, so gradient graphs can be differentiated again.  The step and the sign have
derivative 0: the subgradient convention at a kink, extended to second order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx
import numpy as np
import sympy as sp

from . import ir
from .build import Builder, Ref, Spec, intermediate_prefix
from .dims import Shape, check_values, declared, named, show
from .errors import InputError, ShapeError, SymgradError, UnsupportedError
from .graph import Graph, add_op_node
from .ops import OPS, Op, format_constant, sgn, step
from .program import build_program
from .sympy_input import _Converter
from .tensors import broadcast_to, reduce_sum
from .values import label_classes

_GRADIENT_CLASSES: dict[type, Op] = {op.sympy: op for op in OPS.gradient.values()}  # type: ignore[misc]
_GRADIENT_TYPES = tuple(_GRADIENT_CLASSES)


def _prepare(expr: sp.Expr) -> sp.Expr:
    """An adjoint expression in gradient ops: Heaviside → step, sign → sgn, DiracDelta → 0,
    and a scalar stretched to shape () is that scalar."""
    expr = expr.replace(lambda e: isinstance(e, broadcast_to) and len(e.args[1]) == 0,
                        lambda e: e.args[0])
    return expr.replace(sp.DiracDelta, lambda *a: sp.S.Zero).replace(
        sp.Heaviside, lambda a, h=sp.S.Half: step(a, h)).replace(sp.sign, sgn)


class _Convert(_Converter):
    """SymPy → nodes, knowing the gradient ops and arrays of constants."""

    def __init__(self, builder: Builder, shapes: dict[sp.Symbol, Shape]):
        super().__init__(builder)
        self.shapes = shapes

    def convert(self, root: sp.Expr) -> Any:
        stack: list[tuple[sp.Expr, bool]] = [(root, False)]
        while stack:
            e, ready = stack.pop()
            if e in self.done:
                continue
            if not e.free_symbols and not isinstance(e, _GRADIENT_TYPES) \
                    and not _has_array(e):
                self.done[e] = self.b.constant(e)
            elif isinstance(e, sp.Symbol):
                self.done[e] = self.b.input(e.name)
            elif not ready:
                stack.append((e, True))
                stack.extend((a, False) for a in reversed(self.parts(e)) if a.free_symbols
                             or not _constant_argument(e, a))
            else:
                self.done[e] = self.apply(e)
        return self.done[root]

    def parts(self, e: sp.Expr) -> list[sp.Expr]:
        op = _GRADIENT_CLASSES.get(type(e))
        if op is not None:
            return list(e.args[: op.arity])
        return super().parts(e)

    def apply(self, e: sp.Expr) -> Any:
        op = _GRADIENT_CLASSES.get(type(e))
        if op is None:
            return super().apply(e)
        count = op.arity
        operands = tuple(self.done[a] if i < count and (a.free_symbols or _has_array(a)) else a
                         for i, a in enumerate(e.args))
        key = (op.name, operands)
        if key in self.b._shared:
            return self.b._shared[key]
        known = dict(self.shapes)
        stand_in = []
        for o in operands:
            if isinstance(o, Ref):
                s = sp.Symbol(f"_o{o.index}", real=True)
                known[s] = self.b.specs[o.index].shape
                stand_in.append(s)
            else:
                stand_in.append(o)
        shape = tuple(int(n) for n in _shape(op.sympy(*stand_in), known))
        ref = self.b._add(Spec("op", op=op.name, operands=operands, shape=shape))
        self.b._shared[key] = ref
        return ref


def _constant_argument(e: sp.Expr, a: sp.Expr) -> bool:
    op = _GRADIENT_CLASSES.get(type(e))
    return op is not None and e.args.index(a) >= op.arity


def _has_array(e: sp.Expr) -> bool:
    return any(isinstance(f, _GRADIENT_TYPES) for f in sp.preorder_traversal(e))


def _shape(e: sp.Expr, known: dict[sp.Symbol, Shape]) -> Shape:
    from .tensors import shape_of

    return shape_of(e, known)


class _Extension:
    """New nodes built on top of a graph whose nodes stay as they are."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.order = max((d["order"] for _, d in graph.nx.nodes(data=True)), default=0) + 1
        self.b = Builder(graph.granularity)
        shapes = {graph.symbol(n): graph.shape(n) for n in graph.nodes}
        self.conv = _Convert(self.b, shapes)
        self.constants: dict[sp.Symbol, sp.Expr] = {}
        self.new_inputs: set[sp.Symbol] = set()
        self.names: dict[int, str] = {}
        index = {}
        for i, n in enumerate(graph.nodes):
            data = graph.nx.nodes[n]
            kind = "input" if data["kind"] == "input" else "forward"
            ref = self.b._add(Spec(kind, name=n, shape=data["shape"], dtype=data["dtype"]))
            index[n] = ref
            self.names[i] = n
            if kind == "input":
                self.b._inputs[n] = ref
                self.b.shapes[n] = data["shape"]
            elif data["kind"] == "op":
                operands = tuple(index[o] if isinstance(o, str) else o for o in data["operands"])
                self.b._shared[(data["op"], operands)] = ref
            self.conv.done[data["symbol"]] = ref
        self.forward = len(self.b.specs)

    def input(self, name: str, shape: Shape) -> sp.Symbol:
        """A new float input called ``name``, of ``shape``."""
        symbol = sp.Symbol(name, real=True)
        if name in self.graph.nx.nodes or symbol in self.conv.done or symbol in self.constants:
            raise InputError(f"the graph already has a node called {name!r}; choose another name")
        self.new_inputs.add(symbol)
        self.b.shapes[name] = shape
        self.conv.done[symbol] = self.b.input(name)
        self.conv.shapes[symbol] = shape
        return symbol

    def add(self, expr: sp.Expr, target: sp.Symbol, shape: Shape) -> None:
        """Nodes computing ``expr``, whose value ``target`` then stands for."""
        if target in self.new_inputs:
            raise InputError(f"the new input {target.name!r} has the name of a node of the "
                             "derivative; choose another name")
        expr = _prepare(expr.xreplace(self.constants))
        if not expr.free_symbols and not _has_array(expr):
            if shape == ():
                self.constants[target] = self.b.constant(expr)
                return
            expr = broadcast_to(expr, sp.Tuple(*shape))
        out = self.conv.convert(expr)
        if isinstance(out, Ref) and out.index >= self.forward:
            self.names.setdefault(out.index, target.name)
        self.conv.done[target] = out
        self.conv.shapes[target] = shape

    def graph_of(self, target: sp.Symbol, source: str) -> Graph:
        """The graph whose output is ``target``, keeping only the nodes it needs."""
        if target in self.constants:  # a constant gradient: one node of its own
            out = self.b._add(Spec("const", value=self.constants[target]))
            self.names[out.index] = target.name
        else:
            out = self.conv.done[target]
        return self._finish(out, source)

    def _finish(self, out: Ref, source: str) -> Graph:
        g = self.graph
        live: set[int] = set()
        stack = [out.index]
        position = {n: i for i, n in enumerate(g.nodes)}
        while stack:
            i = stack.pop()
            if i in live:
                continue
            live.add(i)
            if i < self.forward:
                stack.extend(position[p] for p in g.nx.predecessors(self.names[i]))
            else:
                stack.extend(o.index for o in self.b.specs[i].operands if isinstance(o, Ref))
        names = self._name_new()
        G = nx.DiGraph()
        inputs = list(g.inputs)
        for n in g.inputs:
            G.add_node(n, **g.nx.nodes[n])
        for i in range(self.forward, len(self.b.specs)):
            s = self.b.specs[i]
            if s.kind == "input":
                G.add_node(s.name, **ir.input_node(s.name, s.shape, order=self.order))  # type: ignore[arg-type]
                inputs.append(s.name)  # type: ignore[arg-type]
        for n in g.operations:
            if position[n] in live:
                G.add_node(n, **g.nx.nodes[n])
                for p in g.nx.predecessors(n):
                    G.add_edge(p, n, **g.nx.edges[p, n])
        derived: dict[tuple, Any] = {}
        for i in range(self.forward, len(self.b.specs)):
            s = self.b.specs[i]
            if s.kind == "const" and i in live:
                G.add_node(names[i], **ir.const_node(names[i], s.value,  # type: ignore[arg-type]
                                                     format_constant(s.value), self.order))  # type: ignore[arg-type]
            if s.kind != "op" or i not in live:
                continue
            operands = tuple(names[o.index] if isinstance(o, Ref) else o for o in s.operands)
            add_op_node(G, names[i], s.op, operands, s.shape, derived, self.order)  # type: ignore[arg-type]
            if s.op in OPS.gradient and s.op != "step":  # shapes and axes are in the expression
                G.nodes[names[i]]["label"] = OPS.gradient[s.op].label
        return Graph(G, names[out.index], tuple(inputs), g.granularity, source)

    def _name_new(self) -> dict[int, str]:
        """Names of every node: the given ones, then the graph's prefix numbered on."""
        g = self.graph
        prefix = intermediate_prefix([n for n in g.inputs])
        new_inputs = {s.name for s in self.b.specs[self.forward:] if s.kind == "input" and s.name}
        taken = set(g.nodes) | set(self.names.values()) | new_inputs
        numbers = [int(m.group(1)) for n in taken if (m := re.fullmatch(rf"{prefix}(\d+)", n))]
        count = max(numbers, default=0)
        names = dict(self.names)
        for i in range(self.forward, len(self.b.specs)):
            s = self.b.specs[i]
            if s.kind == "input":
                names[i] = s.name  # type: ignore[assignment]
            elif i not in names or names[i] in new_inputs:  # an adjoint's name taken by a new input
                count += 1
                while f"{prefix}{count}" in taken:
                    count += 1
                names[i] = f"{prefix}{count}"
        return names


# --------------------------------------------------------------------------
# The public functions


def _names(graph: Graph, wrt: str | Iterable[str] | None) -> tuple[tuple[str, ...], bool]:
    """(the names, whether one name was given as a string)."""
    if not isinstance(graph, Graph):
        raise SymgradError(f"expected a symgrad Graph, got {type(graph).__name__}")
    if isinstance(wrt, str):
        return (wrt,), True
    if wrt is None:
        return tuple(n for n in graph.inputs if n not in graph.labels), False
    names = tuple(wrt)
    for n in names:
        if not isinstance(n, str):
            raise SymgradError(f"wrt takes input names, not {n!r}")
    if not names:
        raise SymgradError("wrt names no input; give at least one")
    return names, False


def _source(graph: Graph) -> str:
    return graph.source or str(graph.expression())


def _gradients(graph: Graph, names: tuple[str, ...],
               seed: str | None) -> tuple[_Extension, dict[str, sp.Symbol]]:
    """The adjoint program of ``graph`` built onto it, and each name's gradient symbol."""
    for n in graph.inputs:
        dims = [str(d) for d in graph.shape(n) if named(d)]
        if dims:
            raise UnsupportedError(
                f"input {n} has the named dimension {dims[0]} (shape {show(graph.shape(n))}): "
                "gradient graphs and the derivatives built on them take concrete sizes; "
                "give the graph's shapes as numbers")
    program = build_program(graph, names)
    ext = _Extension(graph)
    shape = graph.shape(graph.output)
    if seed is not None:
        ext.conv.done[program.dout] = ext.conv.done[ext.input(seed, shape)]
        ext.conv.shapes[program.dout] = shape
    elif shape != ():
        raise ShapeError(
            f"the output {graph.output} has shape {shape}, not a scalar: give seed='name' for the "
            "graph of a vector-Jacobian product, or use sg.jacobian"
        )
    else:
        ext.constants[program.dout] = sp.Integer(1)
    for a in program.backward:
        ext.add(a.expr, a.target, a.shape)
    return ext, program.grads


def grad(graph: Graph, wrt: str | Iterable[str] | None = None, *,
         seed: str | None = None) -> Graph | tuple[Graph, ...]:
    """The gradient as a graph: its output is ∂output/∂``wrt``.

    Parameters
    ----------
    graph:
        A graph with a scalar output (or any output, with ``seed``).
    wrt:
        One input name: that gradient's graph.  Several names (or None, every
        float input): a tuple of graphs, one per name, in that order, all
        sharing the same forward nodes.
    seed:
        For an output that is not a scalar: the name of a new input of the
        output's shape, the upstream gradient; the graph then computes the
        vector-Jacobian product seed · ∂output/∂wrt.

    Returns
    -------
    Graph, or a tuple of Graphs

    >>> import symgrad as sg
    >>> dx = sg.grad(sg.graph("x * y + exp(x)"), "x")
    >>> print(dx)
    graph(x, y): dx = grad(x * y + exp(x), x)
      q2 = exp(x)    [exp]
      dx = q2 + y    [+]
      return dx
    >>> dx.backprop(x=0.0, y=2.0).grads
    {'x': 1.0, 'y': 1.0}
    """
    names, single = _names(graph, wrt)
    ext, grads = _gradients(graph, names, seed)
    source = _source(graph)
    graphs = tuple(ext.graph_of(grads[n], f"grad({source}, {n})") for n in names)
    return graphs[0] if single else graphs


def _default_vectors(names: tuple[str, ...], single: bool, v: str | Sequence[str] | None) -> tuple[str, ...]:
    if v is None:
        return ("v",) if single else tuple(f"v_{n}" for n in names)
    vs = (v,) if isinstance(v, str) else tuple(v)
    if len(vs) != len(names):
        raise SymgradError(f"v names {len(vs)} input(s) for {len(names)} wrt name(s); give one each")
    return vs


def hvp(graph: Graph, wrt: str | Iterable[str] | None = None,
        v: str | Sequence[str] | None = None, *, mode: str = "reverse") -> Graph | tuple[Graph, ...]:
    """The Hessian-vector product H·v as a graph.

    The graph gets new inputs, the vector ``v`` (named ``v``, or ``v_<name>``
    for each of several names; or as given), of the shapes of the ``wrt``
    inputs.  Its output is H·v restricted to ``wrt``: one graph, or a tuple of
    graphs for several names, as :func:`grad`.

    ``mode="reverse"`` (the default) differentiates ∇f · v once more
    (reverse over reverse); ``mode="forward"`` pushes the tangent ``v``
    forward through the gradient graph (forward over reverse).  Both give the
    same numbers; ``benchmarks/bench_higher.py`` compares their cost.

    >>> import symgrad as sg
    >>> hv = sg.hvp(sg.graph("x**3 * y"), "x")
    >>> hv.inputs
    ('x', 'y', 'v')
    >>> hv.compile()(x=2.0, y=1.0, v=1.0)   # 6 x y v
    12.0
    """
    names, single = _names(graph, wrt)
    vs = _default_vectors(names, single, v)
    if mode == "forward":
        ext, grads = _gradients(graph, names, None)
        source = _source(graph)
        result = tuple(jvp(ext.graph_of(grads[n], f"grad({source}, {n})"), dict(zip(names, vs)))
                       for n in names)
        return result[0] if single else result
    if mode != "reverse":
        raise SymgradError(f"unknown mode {mode!r}; choose reverse or forward")
    ext, grads = _gradients(graph, names, None)
    total = sp.S.Zero
    for n, vn in zip(names, vs):
        shape = graph.shape(n)
        product = grads[n] * ext.input(vn, shape)
        total += reduce_sum(product, sp.Tuple(), sp.false) if shape != () else product
    dot = sp.Symbol("gv", real=True)
    ext.add(total, dot, ())
    inner = ext.graph_of(dot, f"grad({_source(graph)}) · {', '.join(vs)}")
    second = grad(inner, names)
    return second[0] if single else second  # type: ignore[index]


def jvp(graph: Graph, tangents: dict[str, str]) -> Graph:
    """The directional derivative of the output along ``tangents`` as a graph (forward mode).

    ``tangents`` maps inputs to the names of new inputs, of the same shapes,
    holding the direction.  Every node the direction reaches gets a tangent
    node (``t_q3`` for ``q3``): the sum over its operands of the local
    derivative times the operand's tangent, or, for an op that mixes entries,
    the op applied to the tangents (they are linear or bilinear; logsumexp
    weighs the tangent by the softmax).

    >>> import symgrad as sg
    >>> t = sg.jvp(sg.graph("sum(x * x)", shapes={"x": (2,)}), {"x": "u"})
    >>> float(t.compile()(x=[1.0, 2.0], u=[1.0, 0.0]))
    2.0
    """
    if not isinstance(graph, Graph):
        raise SymgradError(f"expected a symgrad Graph, got {type(graph).__name__}")
    ext = _Extension(graph)
    prefix = _tangent_prefix(graph.nodes)
    tangent: dict[str, sp.Symbol] = {}
    for name, t in tangents.items():
        if name not in graph.inputs or name in graph.labels:
            raise SymgradError(f"{name!r} is not a float input of this graph (inputs: "
                               f"{', '.join(graph.inputs)})")
        tangent[name] = ext.input(t, graph.shape(name))
    for n in graph.operations:
        reached = {u: tangent[u] for u in graph.operands(n) if u in tangent}
        if not reached:
            continue
        if graph.elementwise(n):
            edges = graph.nx.edges
            expr = sp.Add(*(edges[u, n]["numeric"] * t
                            for u, t in reached.items()))
        else:
            expr = _tangent_rule(graph, n, reached)
        tangent[n] = sp.Symbol(prefix + n, real=True)
        ext.add(expr, tangent[n], graph.shape(n))
    out = tangent.get(graph.output)
    if out is None:  # the direction does not reach the output
        out = sp.Symbol(prefix + graph.output, real=True)
        ext.add(sp.S.Zero, out, graph.shape(graph.output))
    return ext.graph_of(out, f"jvp({_source(graph)}, {', '.join(tangents.values())})")


def _tangent_rule(graph: Graph, node: str, reached: dict[str, sp.Symbol]) -> sp.Expr:
    """The tangent of an op that mixes entries: linear in each operand, but logsumexp."""
    data = graph.nx.nodes[node]
    if data["kind"] != "op":
        raise UnsupportedError(
            f"forward mode cannot pass through the gate {node} ({data['label']}); expand it first"
        )
    expr = data["expr"]
    symbols = {graph.symbol(u): t for u, t in reached.items()}
    if data["op"] == "logsumexp":
        (x,) = expr.args[:1]
        weights = sp.exp(x - expr.unreduce(data["symbol"]))
        return reduce_sum(weights * symbols[x], *expr.args[1:])
    terms = []
    for i, a in enumerate(expr.args):
        if a in symbols:  # product rule: one operand at a time
            terms.append(expr.func(*expr.args[:i], symbols[a], *expr.args[i + 1:]))
    return sp.Add(*terms)


def _tangent_prefix(names: Iterable[str]) -> str:
    names = set(names)
    for prefix in ("t_", "tan_", "dot_"):
        if not any(prefix + n in names for n in names):
            return prefix
    raise SymgradError("node names clash with every naming scheme for tangents")


class Derivative:
    """A Jacobian or Hessian, evaluated from compiled graphs.

    ``d(**inputs)`` gives the matrix as a NumPy array; ``d.graphs`` are the
    graphs it evaluates: vector-Jacobian or Hessian-vector products, one
    evaluation per row, or (``method="matrix"``) one graph whose output is the
    whole matrix.
    """

    def __init__(self, kind: str, graphs: tuple[Graph, ...], names: tuple[str, ...],
                 vectors: tuple[str, ...], row_shape: Shape, single: bool,
                 method: str = "columns", of: Graph | None = None):
        self.kind, self.graphs, self.names, self.vectors = kind, graphs, names, vectors
        self.method = method
        self._row_shape, self._single = row_shape, single
        self._compiled = [g.compile(wrt=[]) for g in graphs]
        # the labels of the graph it differentiates, with the classes they pick from there: a
        # derivative that no longer reads them (a Hessian in the weights) still refuses bad ones
        self._labels: tuple[tuple[str, tuple[Any, ...], Any], ...] = ()
        if of is not None:
            classes = label_classes(of)
            self._labels = tuple((n, declared(of.shape(n)), classes.get(n, 0)) for n in of.labels)

    @property
    def source(self) -> str:
        """The generated NumPy code of the (first) graph it evaluates."""
        return self._compiled[0].source

    def __call__(self, **inputs: Any) -> np.ndarray:
        first = self.graphs[0]
        missing = [n for n in first.inputs if n not in inputs and n not in self.vectors]
        if missing:
            raise InputError(f"no value given for {', '.join(map(repr, missing))}")
        if self._labels:
            check_values([np.asarray(inputs[n]) for n, _, _ in self._labels], self._labels)
        if self.method == "matrix":
            matrix = np.asarray(self._compiled[0](**inputs), dtype=float)
            return matrix.reshape(self._row_shape + first.shape(self.names[0]))
        shapes = [first.shape(v) for v in self.vectors]
        sizes = [int(np.prod(s, dtype=int)) for s in shapes]
        rows = []
        for k in range(sum(sizes)):
            values = dict(inputs)
            offset = 0
            for v, s, size in zip(self.vectors, shapes, sizes):
                unit = np.zeros(size)
                if offset <= k < offset + size:
                    unit[k - offset] = 1.0
                values[v] = unit.reshape(s) if s else float(unit[0])
                offset += size
            rows.append(np.concatenate([np.ravel(f(**values)) for f in self._compiled]))
        matrix = np.array(rows)
        if self.kind == "hessian":
            matrix = matrix.T  # column k is H e_k; H is symmetric where it is smooth
        if self._single:
            out = self.graphs[0].shape(self.names[0])
            return matrix.reshape(self._row_shape + out)
        return matrix

    def __repr__(self) -> str:
        return f"<{self.kind} with respect to {', '.join(self.names)}: {len(self.graphs)} graph(s)>"


def hessian(graph: Graph, wrt: str | Iterable[str] | None = None, *,
            method: str = "auto") -> Derivative:
    """The Hessian of a scalar graph.

    ``h(**inputs)`` has shape ``s + s`` for one input of shape ``s``, or
    ``(N, N)`` for several names (their entries flattened, in order).

    ``method="matrix"`` compiles one graph whose output is the whole Hessian:
    every direction pushed at once through the gradient graph (see
    :mod:`symgrad.jacobians`), so the Hessian of logistic regression is a few
    matrix products, and that of the two-layer net in W2 one product of the
    hidden layer with the tangents factored by rows.  It takes one input, a scalar, a vector
    or a matrix, and graphs whose stacks of matrices (three or more axes) it
    does not reach.  ``method="columns"``
    evaluates one :func:`hvp` per column; it takes anything.  ``"auto"``
    (the default) tries ``"matrix"`` for one input and falls back to ``"columns"``.

    >>> import symgrad as sg
    >>> h = sg.hessian(sg.graph("x**2 * y"), ["x", "y"])
    >>> h(x=1.0, y=3.0)
    array([[6., 2.],
           [2., 0.]])
    >>> sg.hessian(sg.graph("sum(exp(w) * w)", shapes={"w": (2,)}), "w").method
    'matrix'
    """
    names, single = _names(graph, wrt)
    if method not in ("auto", "matrix", "columns"):
        raise SymgradError(f"unknown method {method!r}; choose auto, matrix or columns")
    if method != "columns" and single and len(graph.shape(names[0])) <= 2:
        from .jacobians import forward_jacobian

        try:
            dg = grad(graph, names[0])
            h = forward_jacobian(dg, names[0])  # type: ignore[arg-type]
        except UnsupportedError:
            if method == "matrix":
                raise
        else:
            shape = graph.shape(names[0])
            return Derivative("hessian", (h,), names, (), shape, True, method="matrix", of=graph)
    elif method == "matrix":
        raise UnsupportedError("method='matrix' takes one input, a scalar, a vector or a matrix")
    vs = _free_names(graph, names, single, "v")
    graphs = hvp(graph, names, vs)
    shape = graph.shape(names[0]) if single else ()
    return Derivative("hessian", graphs, names, vs, shape, single, of=graph)  # type: ignore[arg-type]


def jacobian(graph: Graph, wrt: str | Iterable[str] | None = None) -> Derivative:
    """The Jacobian of the output with respect to ``wrt``, one vector-Jacobian product per output entry.

    ``j(**inputs)`` has shape ``out + s`` for one input of shape ``s``, or
    ``(M, N)`` for several names (output and input entries flattened).

    >>> import symgrad as sg
    >>> j = sg.jacobian(sg.graph("exp(x)", shapes={"x": (2,)}), "x")
    >>> j(x=[0.0, 1.0]).round(4)
    array([[1.    , 0.    ],
           [0.    , 2.7183]])
    """
    names, single = _names(graph, wrt)
    (seed,) = _free_names(graph, ("out",), True, "u")
    graphs = grad(graph, names, seed=seed)
    shape = graph.shape(graph.output) if single else ()
    return Derivative("jacobian", graphs, names, (seed,), shape, single,  # type: ignore[arg-type]
                      of=graph)


def _free_names(graph: Graph, names: tuple[str, ...], single: bool, stem: str) -> tuple[str, ...]:
    """Names for new inputs that no node of ``graph`` has."""
    taken = set(graph.nodes)
    out = []
    for n in names:
        base = stem if single else f"{stem}_{n}"
        name, k = base, 1
        while name in taken:
            k += 1
            name = f"{base}{k}"
        taken.add(name)
        out.append(name)
    return tuple(out)
