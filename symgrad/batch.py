"""Data-parallel gradients: a loss summed or averaged over a named batch dimension, on Dask.

``g.compile(batch="N")`` returns a :class:`BatchCompiled`.  Called with Dask
arrays chunked along N (the other inputs NumPy arrays or numbers), it runs the
generated NumPy ``value_and_grad`` on each chunk as one task, weighs each
chunk's value and gradients (1 for a sum over N; the chunk's share n/N for a
mean, so the mean's 1/N is the whole batch's), and adds the partial results
up pairwise in a tree of tasks.  The tasks run on the ``dask.distributed``
cluster of the active client, else on threads.  Gradients of inputs that
have the batch dimension come back whole, their chunks in order; leave them
out with ``wrt=`` when only the parameters' are wanted.

Which losses split this way is read from the graph: every node between the
batched inputs and the reductions keeps N (nothing mixes examples), the
reductions over N are all ``sum`` or all ``mean``, and what the loss does with
them is linear (adds, subtracts, multiplies or divides by values that do not
depend on the batch); a mean may be added to such values (a regularizer),
a sum may not (each chunk would add it once).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import numpy as np

from .compiled import compile_graph, load_module
from .dims import named
from .errors import InputError, ShapeError, UnsupportedError
from .graph import Graph
from .values import check_inputs

LINEAR = frozenset({"add", "sub", "mul", "div"})


def loss_kind(g: Graph, batch: str) -> str:
    """``"sum"`` or ``"mean"``: how the graph's output reduces over dimension ``batch``;
    an UnsupportedError naming the node where it does not split into chunks."""
    batched = [n for n in g.inputs if any(named(d) and str(d) == batch for d in g.shape(n))]
    if not batched:
        raise UnsupportedError(f"batch={batch!r}: no input has the dimension {batch} "
                               f"(inputs: {', '.join(f'{n} {g.shape(n)}' for n in g.inputs)})")
    depends = set(batched)
    kinds = set()
    for n in g.operations:
        inside = [p for p in g.nx.predecessors(n) if p in depends]
        if not inside:
            continue
        depends.add(n)
        count = sum(1 for d in g.shape(n) if named(d) and str(d) == batch)
        op = g.nx.nodes[n]["op"]
        rows = all(any(named(d) and str(d) == batch for d in g.shape(p)) for p in inside)
        if count == 1 and rows:
            continue
        if count == 1:
            raise UnsupportedError(f"batch={batch!r}: node {n} ({op}) spreads a value reduced over {batch} "
                                   "back over the batch: it mixes the examples of the batch")
        if count > 1:
            raise UnsupportedError(f"batch={batch!r}: node {n} has the dimension {batch} twice, "
                                   f"{g.shape(n)}: it mixes the examples of the batch")
        if rows:  # a reduction over the batch
            if op not in ("sum", "mean"):
                raise UnsupportedError(f"batch={batch!r}: node {n} ({op}) reduces over {batch}; "
                                       "only a sum or a mean splits into chunks")
            kinds.add(op)
        elif op not in LINEAR or (op in ("mul", "div") and len(inside) > 1) or \
                (op == "div" and next(iter(g.nx.predecessors(n))) not in depends):
            raise UnsupportedError(f"batch={batch!r}: node {n} ({op}) is not linear in the sum or mean "
                                   f"over {batch}, so the loss does not split into chunks")
    if len(kinds) != 1:
        raise UnsupportedError(f"batch={batch!r}: the loss mixes sums and means over {batch}")
    kind = kinds.pop()
    if g.output not in depends:
        raise UnsupportedError(f"batch={batch!r}: the output {g.output} does not depend on the batch")
    if kind == "sum":
        for n in g.operations:
            outside = [p for p in g.nx.predecessors(n) if p not in depends]
            if n in depends and g.nx.nodes[n]["op"] in ("add", "sub") and (
                    outside or g.expr(n).as_coeff_Add()[0] != 0):
                raise UnsupportedError(f"batch={batch!r}: node {n} adds a value that does not depend on "
                                       f"the batch to a sum over {batch}; each chunk would add it once")
    return kind


@functools.lru_cache(maxsize=16)
def _module(source: str) -> Any:
    """The generated module of ``source``, loaded once per process (a worker's too)."""
    return load_module(source, "chunk", {})


def _chunk(source: str, inputs: tuple[str, ...], weight: float, index: int,
           batched: dict[str, np.ndarray], params: dict[str, Any]) -> tuple[Any, dict[str, Any], dict]:
    """One chunk's weighted value and gradients: (value, {parameter: gradient}, {batched: [(i, g)]})."""
    values = {**params, **batched}
    value, grads = _module(source).value_and_grad(*(values[n] for n in inputs))
    summed = {n: weight * g for n, g in grads.items() if n not in batched}
    pieces = {n: [(index, weight * g)] for n, g in grads.items() if n in batched}
    return weight * value, summed, pieces


def _combine(a: tuple[Any, dict[str, Any], dict], b: tuple[Any, dict[str, Any], dict]) -> tuple:
    """Two partial results added up (batched gradients' chunks listed)."""
    return a[0] + b[0], {n: a[1][n] + b[1][n] for n in a[1]}, {n: a[2][n] + b[2][n] for n in a[2]}


class BatchCompiled:
    """``value_and_grad`` over Dask arrays chunked along a batch dimension; see :mod:`symgrad.batch`.

    >>> import symgrad as sg, numpy as np
    >>> g = sg.graph("mean(X @ w)", shapes={"X": ("N", 2), "w": (2,)})
    >>> f = g.compile(batch="N")
    >>> f.kind
    'mean'
    >>> value, grads = f.value_and_grad(X=np.ones((4, 2)), w=np.array([1.0, 2.0]))  # NumPy: no Dask
    >>> float(value), grads["w"].tolist()
    (3.0, [1.0, 1.0])
    """

    def __init__(self, graph: Graph, batch: str, wrt: Iterable[str] | None = None, xp: Any = None):
        if xp is not None:
            raise UnsupportedError("batch= runs the NumPy code on each chunk; it takes no xp=")
        self.graph, self.batch = graph, batch
        self.kind = loss_kind(graph, batch)
        self.compiled = compile_graph(graph, wrt)
        self.wrt = self.compiled.wrt
        self.source = self.compiled.source
        self.axes = {n: [str(d) if named(d) else d for d in graph.shape(n)].index(batch)
                     for n in graph.inputs if any(named(d) and str(d) == batch for d in graph.shape(n))}

    def __call__(self, **inputs: Any) -> Any:
        """The loss (from :meth:`value_and_grad`)."""
        return self.value_and_grad(**inputs)[0]

    def value_and_grad(self, **inputs: Any) -> tuple[Any, dict[str, Any]]:
        """``(loss, {input: gradient})``, chunk by chunk where the batched inputs are Dask arrays."""
        g = self.graph
        check_inputs(g.inputs, inputs)
        lazy = {n: v for n, v in inputs.items() if _is_dask(v)}
        for n, v in inputs.items():
            if n not in lazy and not isinstance(v, (np.ndarray, np.generic, int, float, list, tuple)):
                raise InputError(f"value of {n!r} is a {type(v).__module__}.{type(v).__name__}: "
                                 "batch= takes Dask arrays, NumPy arrays and numbers, one library per call")
        first = next((n for n in self.axes if n in lazy), None)
        if first is None:
            return self.compiled.value_and_grad(**{n: np.asarray(v) if n in lazy else v
                                                   for n, v in inputs.items()})
        import dask
        import dask.array as da

        chunks = lazy[first].chunks[self.axes[first]]
        batched = {}
        for n, axis in self.axes.items():
            v = lazy[n] if n in lazy else da.from_array(np.asarray(inputs[n]),
                                                         chunks=_along(np.ndim(inputs[n]), axis, chunks))
            if v.ndim != len(g.shape(n)):
                raise ShapeError(f"value of {n!r} has shape {v.shape}, but the graph declares {g.shape(n)}")
            for k, c in enumerate(v.chunks):
                if k != axis and len(c) > 1:
                    raise ShapeError(f"value of {n!r} is chunked along axis {k} ({' + '.join(map(str, c))}), "
                                     f"which is not the batch dimension {self.batch}: chunk it along axis "
                                     f"{axis} only")
            if v.chunks[axis] != chunks:
                raise ShapeError(f"value of {n!r} has chunks {v.chunks[axis]} along {self.batch}, but "
                                 f"{first!r} has {chunks}: give the batched inputs the same chunks")
            batched[n] = v.to_delayed().reshape(-1)
        params = {n: (np.asarray(v.compute()) if n in lazy else v)
                  for n, v in inputs.items() if n not in self.axes}
        shared = dask.delayed(params, pure=True)
        total = sum(chunks)
        level = [dask.delayed(_chunk, pure=True)(
            self.source, g.inputs, (c / total) if self.kind == "mean" else 1.0, i,
            {n: blocks[i] for n, blocks in batched.items()}, shared) for i, c in enumerate(chunks)]
        while len(level) > 1:  # a tree: pairs of partial results added up, level by level
            level = [dask.delayed(_combine, pure=True)(*level[i:i + 2]) if i + 1 < len(level) else level[i]
                     for i in range(0, len(level), 2)]
        try:
            value, summed, pieces = _compute(level[0])
        except ValueError as e:  # the generated module's input checks, on a chunk
            raise InputError(f"a chunk of the batch: {e}") from None
        grads = dict(summed)
        for n, parts in pieces.items():
            grads[n] = np.concatenate([p for _, p in sorted(parts, key=lambda ip: ip[0])], axis=self.axes[n])
        return value, {n: grads[n] for n in self.wrt}

    def __repr__(self) -> str:
        return f"<BatchCompiled {self.graph.source or self.graph.output!r}: a {self.kind} over {self.batch}>"


def _along(ndim: int, axis: int, chunks: tuple[int, ...]) -> tuple[Any, ...]:
    return tuple(chunks if k == axis else -1 for k in range(ndim))


def _is_dask(v: Any) -> bool:
    return type(v).__module__.startswith("dask.") and hasattr(v, "to_delayed")


def _compute(task: Any) -> Any:
    """The task's result, on the active dask.distributed client's cluster, else on threads."""
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        client = None
    if client is not None:
        return client.compute(task).result()
    import dask

    return dask.compute(task, scheduler="threads")[0]



