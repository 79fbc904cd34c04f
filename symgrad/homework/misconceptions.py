"""The misconception catalogue: the wrong gradients students write, derived from the graph.

:func:`catalogue` takes a problem's graph and its test points and builds,
from the adjoint program (:func:`symgrad.program.build_program`), every
wrong gradient a known mistake gives, each evaluated at the test points by
running the program with one edit:

- ``sign``: the gradient one edge sends back negated;
- ``value``: a local derivative written as the gate's own value (σ′ as σ);
- ``dropped``: one edge's local derivative taken as 1;
- ``fan-out``: a node used by several nodes keeps one consumer's gradient;
- ``transpose``: a matmul's adjoint transposed, or a transpose in it missing;
- ``mean`` / ``sum``: a mean's 1/N missing, or a sum's gradient divided by N;
- ``axis``: a broadcast operand's gradient not summed back, or summed over the wrong axis;
- ``regularization``: the regularization term's gradient missing or doubled;
- ``dout``: the layer's ``dout`` ignored;
- ``upstream``: one edge's upstream gradient ignored (taken as ones);
- ``operand``: a local derivative taken with respect to the other operand;
- ``wrt``: the gradient of another input.

A student's gradient that matches one of them at every test point (and is
not right) is named with :func:`explain`: the mistake, its node, and a
counterexample (where it differs most from the right gradient).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import sympy as sp

from ..errors import SymgradError
from ..graph import Graph
from ..interpret import backprop
from ..printing import numpy_code
from ..program import Program, Term, build_program, edge_flow, sum_to
from ..tensors import transpose
from .spec import Problem, graph_of

MAX_CANDIDATES = 2000  # more edits than this on a large graph: the first ones, in order of preference
KINDS = ("sign", "value", "dropped", "regularization", "fan-out", "transpose", "mean", "sum", "axis",
         "dout", "upstream", "wrt", "operand")  # the order of preference
Env = dict[str, Any]
Edit = Callable[[Term, Env], "np.ndarray | None"]


@dataclass(frozen=True)
class Misconception:
    """One wrong gradient: what the mistake is, where, and what it gives at each test point.

    ``values`` maps each input to its wrong gradient at every test point
    (only the inputs the mistake changes).
    """

    kind: str
    node: str
    text: str
    values: dict[str, list[np.ndarray]] = field(compare=False, repr=False)


def catalogue(graph: Graph, points: Sequence[Mapping[str, Any]], *,
              douts: Sequence[Any] | None = None, wrt: Sequence[str] | None = None,
              regularization: str | None = None) -> list[Misconception]:
    """Every known mistake on ``graph``'s gradients, evaluated at ``points``.

    Parameters
    ----------
    graph:
        The problem's graph.
    points:
        The test points, ``{input: value}`` each.
    douts:
        The upstream gradient at each point (a layer's ``dout``); None for 1.
    wrt:
        The inputs whose gradients are computed (default: every input that is not a label).
    regularization:
        The regularization term (an expression string over the graph's inputs), to name its
        gradient when missing or doubled.

    Returns
    -------
    list of Misconception
        In order of preference; only those that change some gradient at some point.

    >>> import symgrad as sg
    >>> found = catalogue(sg.graph("sigmoid(x)"), [{"x": 0.5}])
    >>> [m.text for m in found if m.kind == "value"]
    ['σ′ written as σ at q1 (sigmoid): ∂q1/∂x = q1*(1 - q1) taken as q1']
    """
    program = build_program(graph, wrt)
    upstream = list(douts) if douts is not None else [1.0] * len(points)
    runs = [_Run(program, p, d) for p, d in zip(points, upstream)]
    if any(r.right is None for r in runs):
        return []
    right = [r.grads({}) for r in runs]
    found: list[Misconception] = []
    for kind, node, text, edits, ignore_dout in _candidates(graph, program, regularization, runs):
        values: dict[str, list[np.ndarray]] = {}
        results = [r.grads(edits, ignore_dout) for r in runs]
        if any(g is None for g in results):
            continue
        for name in program.wrt:
            got = [g[name] for g in results if g is not None]
            if not all(_same(a, b) for a, b in zip(got, (g[name] for g in right if g is not None))):
                values[name] = got
        if values:
            found.append(Misconception(kind, node, text, values))
    for name in program.wrt:
        for other in program.wrt:
            if other != name and not all(_same(g[other], g[name]) for g in right if g is not None):
                found.append(Misconception("wrt", other, f"this is ∂{other}: the gradient with respect "
                                           f"to the wrong input ({other}, not {name})",
                                           {name: [g[other] for g in right if g is not None]}))
    return sorted(found, key=lambda m: KINDS.index(m.kind))


def for_problem(problem: Problem, points: Sequence[Mapping[str, Any]],
                douts: Sequence[Any] | None = None) -> list[Misconception]:
    """The catalogue of a homework problem at its test points (empty when it cannot be built).

    A catalogue that cannot be built costs a diagnosis, never a grade.
    """
    try:
        wrt = [n for n in problem.graph.inputs if problem.inputs[n].differentiable]
        return catalogue(problem.graph, points, douts=douts, wrt=wrt, regularization=problem.regularization)
    except Exception:  # noqa: BLE001 - a diagnosis the less
        return []


def explain(name: str, got: Sequence[np.ndarray], want: Sequence[np.ndarray],
            found: Sequence[Misconception], where: Sequence[str] | None = None,
            rtol: float = 1e-6, atol: float = 1e-9, shown: int = 3) -> str | None:
    """The hint for a wrong ``∂name`` that matches misconceptions at every test point, or None.

    The first match is named in full; other nodes where the same kind of
    mistake gives the same numbers are listed, and up to ``shown`` other kinds
    by their first clause.  The counterexample is the test point and element
    where the student's gradient differs most from the right one.

    >>> import symgrad as sg
    >>> found = catalogue(sg.graph("(x + y) * z"), [{"x": 1.0, "y": 2.0, "z": 3.0}])
    >>> print(explain("x", [np.asarray(-3.0)], [np.asarray(3.0)], found, ["x=1, y=2, z=3"]))
    sign flipped on the path through q2 (mul): the gradient it sends to q1 negated (the same numbers at q1) \
— counterexample at x=1, y=2, z=3: expected 3, received -3
    """
    def same(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
        return len(a) == len(b) and all(_same(x, y, rtol, atol) for x, y in zip(a, b))

    if same(got, want):
        return None
    hits = [m for m in found if name in m.values and same(got, m.values[name])]
    if not hits:
        return None
    first, rest = hits[0], hits[1:]
    nodes = [m.node for m in rest if m.kind == first.kind != "wrt" and m.node != first.node]
    others = [m.text.split(":")[0] for m in rest if m.kind != first.kind or first.kind == "wrt"]
    notes = [f"the same numbers at {', '.join(dict.fromkeys(nodes))}"] if nodes else []
    if others:
        notes.append("or equally: " + "; ".join(list(dict.fromkeys(others))[:shown]))
    head = first.text + (f" ({'; '.join(notes)})" if notes else "")
    return f"{head} — {counterexample(got, want, where)}"


def counterexample(got: Sequence[np.ndarray], want: Sequence[np.ndarray],
                   where: Sequence[str] | None = None) -> str:
    """Where ``got`` differs most from ``want``: the test point, the element, expected vs received.

    >>> counterexample([np.array([1.0, 5.0])], [np.array([1.0, 2.0])], ["x=1"])
    'counterexample at x=1, element [1]: expected 2, received 5'
    """
    return f"counterexample {worst_text(worst(got, want, where))}"


def worst(got: Sequence[Any], want: Sequence[Any], where: Sequence[str] | None = None) -> dict[str, Any]:
    """The test point (and, for arrays, the element) where ``got`` differs most from ``want``.

    Returns a JSON-ready record: ``point`` (1-based), ``at`` (the point's
    description), then either ``expected``/``received`` (numbers; NaN and inf
    as the strings ``"nan"``, ``"inf"``, ``"-inf"``) with ``index`` (the
    element, for arrays) and ``shape``, or, when the shapes differ,
    ``expected_shape``/``received_shape``.

    >>> worst([np.array([1.0, 5.0])], [np.array([1.0, 2.0])], ["x=1"])
    {'point': 1, 'at': 'x=1', 'shape': [2], 'index': [1], 'expected': 2.0, 'received': 5.0}
    """
    errors = []
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g, dtype=float), np.asarray(w, dtype=float)
        at = where[i] if where else f"test point {i + 1}"
        if g.shape != w.shape:
            return {"point": i + 1, "at": at, "expected_shape": list(w.shape),
                    "received_shape": list(g.shape)}
        err = np.abs(g - w)
        err = np.where(np.isnan(err), np.inf, err)
        errors.append((float(err.max()) if err.size else 0.0, i))
    _, i = max(errors)
    g, w = np.asarray(got[i], dtype=float), np.asarray(want[i], dtype=float)
    record: dict[str, Any] = {"point": i + 1, "at": where[i] if where else f"test point {i + 1}"}
    if w.ndim == 0:
        return {**record, "expected": _plain(w), "received": _plain(g)}
    err = np.abs(g - w)
    cell = np.unravel_index(int(np.argmax(np.where(np.isnan(err), np.inf, err))), w.shape)
    return {**record, "shape": list(w.shape), "index": [int(k) for k in cell],
            "expected": _plain(w[cell]), "received": _plain(g[cell])}


def worst_text(record: dict[str, Any]) -> str:
    """A :func:`worst` record in words: ``at x=1, element [1]: expected 2, received 5``."""
    if "expected_shape" in record:
        return (f"at {record['at']}: expected shape {tuple(record['expected_shape'])}, "
                f"received shape {tuple(record['received_shape'])}")
    element = f", element {record['index']}" if "index" in record else ""
    return (f"at {record['at']}{element}: expected {_num(record['expected'])}, "
            f"received {_num(record['received'])}")


def _plain(v: Any) -> float | str:
    x = float(v)
    return x if np.isfinite(x) else "nan" if np.isnan(x) else "inf" if x > 0 else "-inf"


# -- running the adjoint program with an edit ---------------------------------------


class _Run:
    """The forward values and right adjoints at one test point, and the adjoint program run
    again with edits: only the adjoints an edit changes are computed again."""

    def __init__(self, program: Program, point: Mapping[str, Any], dout: Any):
        self.program = program
        graph = program.graph
        with np.errstate(all="ignore"):
            trace = backprop(graph, {n: point[n] for n in graph.inputs}, dout)
        self.env: Env = {n: np.asarray(v, dtype=int if n in graph.labels else float)
                         for n, v in trace.values.items()}
        self.env.update(trace.sizes)
        self.dout = np.asarray(trace.dout, dtype=float)
        self.env[program.dout.name] = self.dout
        self.right = self._adjoints(self.env, {}, set(), everything=True)
        if self.right is not None:
            self.env = self.right

    def grads(self, edits: Mapping[tuple[str, str | None], Edit],
              ignore_dout: bool = False) -> dict[str, np.ndarray] | None:
        """``{input: gradient}`` with ``edits[(node, consumer)]`` computing those terms; None
        when the program cannot run (a shape that does not fit)."""
        env = dict(self.env)
        changed: set[str | None] = set()
        if ignore_dout:
            env[self.program.dout.name] = np.ones_like(self.dout)
            changed.add(None)
        done = self._adjoints(env, edits, changed)
        if done is None:
            return None
        grads = self.program.grads
        return {n: np.asarray(done[grads[n].name], dtype=float) for n in self.program.wrt}

    def _adjoints(self, env: Env, edits: Mapping[tuple[str, str | None], Edit], changed: set[str | None],
                  everything: bool = False) -> Env | None:
        """``env`` with the adjoints that an edit or a changed consumer touches computed again."""
        try:
            with np.errstate(all="ignore"):
                for adj in self.program.backward:
                    if not everything and not any(
                            t.consumer in changed or (adj.node, t.consumer) in edits for t in adj.terms):
                        continue
                    total = None
                    for term in adj.terms:
                        edit = edits.get((adj.node, term.consumer))
                        flow = edit(term, env) if edit is not None else _evaluate(term.expr, env)
                        if flow is not None:
                            total = flow if total is None else total + flow
                    env[adj.target.name] = np.zeros(np.shape(env[adj.node])) if total is None else total
                    changed.add(adj.node)
        except (ValueError, TypeError, IndexError, SymgradError):
            return None
        return env


@lru_cache(maxsize=4096)
def _code(expr: sp.Expr) -> Any:
    return compile(numpy_code(expr), "<symgrad>", "eval")


def _evaluate(expr: sp.Expr, env: Env) -> np.ndarray:
    return np.asarray(eval(_code(expr), {"np": np, "__builtins__": {}}, env), dtype=float)


def _same(a: np.ndarray, b: np.ndarray, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.all(np.isclose(a, b, rtol, atol)))


def _num(v: Any) -> str:
    x = float(v)
    return "0" if x == 0 else f"{x:.4g}"


# -- the candidates ---------------------------------------------------------------------

Candidate = tuple[str, str, str, dict[tuple[str, str | None], Edit], bool]


def _candidates(graph: Graph, program: Program, regularization: str | None,
                runs: list[_Run]) -> list[Candidate]:
    """(kind, node, text, edits, dout ignored) for every mistake, in order of preference."""
    out: dict[str, list[Candidate]] = {k: [] for k in KINDS}
    regularized = _regularization_nodes(graph, regularization, runs)
    for adj in program.backward:
        u = adj.node
        consumers = [t.consumer for t in adj.terms if t.consumer is not None]
        for term in adj.terms:
            v = term.consumer
            if v is None:
                continue
            key = (u, v)
            op = graph.nx.nodes[v].get("op") or "gate"
            at = f"{v} ({op})"
            out["sign"].append(("sign", v, f"sign flipped on the path through {at}: the gradient it "
                                f"sends to {u} negated", {key: _scaled(-1.0)}, False))
            up = sp.Symbol(f"{program.dout.name[:-3]}{v}", real=True)
            out["upstream"].append(("upstream", v, f"the upstream gradient d{v} ignored at {at}: "
                                    f"{u} got only the local derivative", {key: _ones(up)}, False))
            if graph.elementwise(v):
                _local_edits(graph, u, v, at, up, key, out)
            elif op == "matmul":
                out["transpose"].append(("transpose", v, f"transposed matmul adjoint at {at}: the "
                                         f"gradient sent to {u} is the transpose of {term.expr}",
                                         {key: _transposed}, False))
                plain = term.expr.replace(lambda e: isinstance(e, transpose), lambda e: e.args[0])
                if plain != term.expr:
                    out["transpose"].append(("transpose", v, f"a transpose missing in the matmul adjoint at "
                                             f"{at}: the gradient sent to {u} computed as {plain}, not "
                                             f"{term.expr}", {key: _expression(plain)}, False))
            elif op == "mean":
                n = _ratio(runs[0], u, v)
                out["mean"].append(("mean", v, f"missing 1/{n} at {at}: the mean's gradient taken as "
                                    "a sum's", {key: _scaled(float(n))}, False))
            elif op == "sum":
                n = _ratio(runs[0], u, v)
                out["sum"].append(("sum", v, f"an extra 1/{n} at {at}: the sum's gradient taken as a "
                                   "mean's", {key: _scaled(1.0 / n)}, False))
            if isinstance(term.expr, sum_to):
                _axis_edits(term.expr, u, at, key, out)
            if key in regularized:
                what = f"the regularization term {regularized[key]} (node {u})"
                out["regularization"].append(("regularization", u, f"missing the gradient of {what}",
                                              {key: lambda t, e: None}, False))
                out["regularization"].append(("regularization", u, f"twice the gradient of {what}",
                                              {key: _scaled(2.0)}, False))
        if len(consumers) > 1:
            for keep in consumers:
                edits: dict[tuple[str, str | None], Edit] = {
                    (u, c): (lambda t, e: None) for c in consumers if c != keep}
                out["fan-out"].append(("fan-out", u, f"{u} feeds {', '.join(consumers)}, but only the "
                                       f"gradient from {keep} was kept: a fan-out's gradients are summed",
                                       edits, False))
    out["dout"].append(("dout", graph.output, f"ignores dout at the output {graph.output}: the upstream "
                        "gradient taken as 1 (multiply by dout)", {}, True))
    return [c for kind in out.values() for c in kind][:MAX_CANDIDATES]


def _local_edits(graph: Graph, u: str, v: str, at: str, up: sp.Symbol,
                 key: tuple[str, str], out: dict[str, list[Candidate]]) -> None:
    """Edits of one elementwise edge's local derivative."""
    local = graph.local_derivatives(v, cached=True)
    d = local[u]
    mine = graph.symbol(v)
    changes = []
    if d not in (sp.Integer(1), sp.Integer(-1)):
        changes.append(("dropped", f"a local derivative dropped at {at}: ∂{v}/∂{u} = {d} taken as 1",
                        sp.Integer(1)))
    if len(graph.operands(v)) == 1 and d != mine and not d.is_number:
        like = "σ′ written as σ" if graph.nx.nodes[v].get("op") == "sigmoid" else \
            "a local derivative written as the gate's own value"
        changes.append(("value", f"{like} at {at}: ∂{v}/∂{u} = {d} taken as {v}", mine))
    for other, d2 in local.items():
        if other != u and d2 != d:
            changes.append(("operand", f"the local derivative at {at} taken with respect to the wrong "
                            f"operand: ∂{v}/∂{u} = {d} written as ∂{v}/∂{other} = {d2}", d2))
    for kind, text, new in changes:
        try:
            flow = edge_flow(graph.with_local_derivative(v, u, new), u, v, up)
        except SymgradError:
            continue
        if flow is not None:
            out[kind].append((kind, v, text, {key: _expression(flow)}, False))


def _axis_edits(flow: sum_to, u: str, at: str, key: tuple[str, str],
                out: dict[str, list[Candidate]]) -> None:
    """A broadcast operand's gradient not summed back, or summed over the wrong axes."""
    inner = flow.args[0]
    lead, kept = flow.axes()
    summed = (*lead, *(len(lead) + k for k in kept))
    ndim = len(flow.args[2])
    others = tuple(i for i in range(ndim) if i not in summed)
    out["axis"].append(("axis", key[1], f"the gradient of {u}, broadcast at {at}, not summed back over "
                        f"axis {_axes(summed)}", {key: _expression(inner)}, False))
    out["axis"].append(("axis", key[1], f"the gradient of {u}, broadcast at {at}, averaged over axis "
                        f"{_axes(summed)} instead of summed", {key: _averaged(inner, summed)}, False))
    if others:
        out["axis"].append(("axis", key[1], f"the gradient of {u}, broadcast at {at}, summed over axis "
                            f"{_axes(others)} instead of axis {_axes(summed)}",
                            {key: _summed(inner, others)}, False))


def _axes(axes: tuple[int, ...]) -> str:
    return str(axes[0]) if len(axes) == 1 else str(axes)


def _regularization_nodes(graph: Graph, regularization: str | None,
                          runs: list[_Run]) -> dict[tuple[str, str], str]:
    """``{(node, sum): term}``: the first node that is a constant multiple of the regularization
    term (SymPy says so) and is added to the rest (ridge's ``lam*w**2`` in ``(… + lam*w**2)/2``)."""
    if regularization is None:
        return {}
    try:
        shapes = {n: graph.shape(n) for n in graph.inputs}
        term = graph_of(regularization, shapes, graph.labels).expression()  # type: ignore[arg-type]
        for n in graph.operations:
            sums = [c for c in graph.consumers(n) if graph.nx.nodes[c].get("op") in ("add", "sub")]
            if sums and graph.shape(n) == ():
                ratio = sp.simplify(graph.expression(n) / term)
                if ratio.is_number and ratio != 0:
                    return {(n, sums[0]): regularization}
    except (SymgradError, ValueError, TypeError):
        pass
    return {}


def _ratio(run: _Run, u: str, v: str) -> int:
    """How many entries of ``u`` make one entry of ``v`` (the N of a mean), at a test point."""
    return max(1, int(np.size(run.env[u])) // max(1, int(np.size(run.env[v]))))


def _scaled(c: float) -> Edit:
    return lambda term, env: c * _evaluate(term.expr, env)


def _ones(up: sp.Symbol) -> Edit:
    return lambda term, env: _evaluate(term.expr, {**env, up.name: np.ones_like(env[up.name])})


def _transposed(term: Term, env: Env) -> np.ndarray:
    return _evaluate(term.expr, env).T


def _expression(expr: sp.Expr) -> Edit:
    return lambda term, env: _evaluate(expr, env)


def _averaged(expr: sp.Expr, axes: tuple[int, ...]) -> Edit:
    return lambda term, env: np.mean(_evaluate(expr, env), axis=axes).reshape(
        np.shape(_evaluate(term.expr, env)))


def _summed(expr: sp.Expr, axes: tuple[int, ...]) -> Edit:
    return lambda term, env: np.sum(_evaluate(expr, env), axis=axes)
