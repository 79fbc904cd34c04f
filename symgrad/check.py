"""Gradients checked against finite differences: :func:`check_grad` and :func:`check_local`.

Both compare an analytic number ``a`` with a numeric one ``b`` by the
relative error ``|a − b| / max(|a| + |b|, tiny)`` and fail above ``tol``
(default :data:`TOL` = 1e-5).  ``tiny`` = :data:`FLOOR` · max(1, |f|) keeps
gradients that are zero up to the rounding noise of the differences
(about 1e-10 · |f|) from failing.  Central differences step each element by
``h = step · max(1, |x|)`` (default ``step`` = 1e-5).

A comparison whose two evaluation points lie on different sides of a kink
(relu, abs, max, min: the op table's ``kink`` column says where) is reported
as ``kink`` rather than as a failure: the function has no derivative there.
For a plain callable given no graph, a failing comparison is a kink where
the one-sided differences disagree at every step, by a steady gap (not the
curvature's, nor rounding noise), with the analytic number between them (a
subgradient); see :func:`one_sided_kink`.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import sympy as sp

from .compiled import Compiled, load_module
from .dims import concrete
from .errors import EvaluationError, InputError
from .graph import Graph
from .ops import BY_CLASS
from .printing import evaluate, import_namespace, imports_of, numpy_code
from .program import build_program
from .tables import number, render
from .values import as_array, check_labels, coerce, sizes

TOL = 1e-5
STEP = 1e-5
FLOOR = 1e-4
COMPLEX_STEP = 1e-20
METHODS = ("central", "directional", "complex")

Index = tuple[int, ...]


@dataclass(frozen=True)
class InputCheck:
    """One input's gradient checked (or, for ``method="directional"``, one direction).

    ``index`` is the worst element (None for a direction), ``analytic`` and
    ``numeric`` its two values, ``checked`` how many elements were compared
    (``indices`` lists them) and ``kinks`` how many of those sit next to a kink.
    """

    name: str
    index: Index | None
    analytic: float
    numeric: float
    rel_error: float
    status: str  # "ok", "FAIL" or "kink"
    checked: int = 1
    kinks: int = 0
    note: str = ""
    indices: tuple[Index, ...] = ()


@dataclass(frozen=True)
class GradCheck:
    """The result of :func:`check_grad`: ``ok``, ``max_rel_error``, one row per input."""

    method: str
    tol: float
    rows: tuple[InputCheck, ...]
    note: str = ""

    @property
    def ok(self) -> bool:
        return all(r.status != "FAIL" for r in self.rows)

    @property
    def max_rel_error(self) -> float:
        """The largest relative error that is not next to a kink."""
        return max([r.rel_error for r in self.rows if r.status != "kink"] + [0.0])

    @property
    def inputs(self) -> dict[str, InputCheck]:
        return {r.name: r for r in self.rows}

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        head = (f"gradient check ({self.method}, tol {self.tol:g}): {verdict}, "
                f"max relative error {self.max_rel_error:.2g}")
        lines = [head] + ([f"  {self.note}"] if self.note else [])
        rows = [[r.name, "" if r.index is None else str(r.index), number(r.analytic, 8),
                 number(r.numeric, 8), f"{r.rel_error:.2g}", str(r.checked),
                 r.status + (f" ({r.kinks} next to a kink)" if r.kinks and r.status != "kink" else "")
                 + (f": {r.note}" if r.note else "")] for r in self.rows]
        header = ["input", "worst element", "analytic", "numeric", "rel. error", "checked", "status"]
        return "\n".join(lines + ["  " + line for line in render(header, rows).splitlines()])

    def __repr__(self) -> str:
        return f"<GradCheck {self.method}: ok={self.ok} max_rel_error={self.max_rel_error:.2g}>"


def check_grad(f: Any, inputs: Mapping[str, Any] | None = None, /, *, method: str = "central",
               tol: float = TOL, step: float = STEP, sample: int | None = None, directions: int = 3,
               seed: int = 0, wrt: str | list[str] | None = None, graph: Any = None,
               **values: Any) -> GradCheck:
    """Check ``f``'s gradients against finite differences.

    Parameters
    ----------
    f:
        A compiled function (``g.compile()``), a Graph, or any callable
        ``f(**inputs) -> (value, {input: gradient})``, hand-written or a
        student's.  A value that is an array is checked as its sum.
    inputs, **values:
        The point, by input name (use the mapping for inputs named like an option).
    method:
        ``"central"``: a central difference per element.  ``"directional"``:
        ⟨∇f, v⟩ against a central difference along ``directions`` random unit
        directions v, two evaluations each, whatever the input size.
        ``"complex"``: the complex step Im f(x + ih)/h, exact to rounding, where
        f accepts complex numbers and is analytic; central differences otherwise.
    tol:
        Largest relative error that passes.
    step:
        Relative step of the differences.
    sample:
        Check at most this many random elements of each input.
    seed:
        Seed of the random elements and directions.
    wrt:
        The inputs to check.  By default, those a compiled function
        differentiates; for another callable, every input except integer
        arrays (class labels, which have no gradient).
    graph:
        For a plain callable, the graph (or expression) it computes, to find its kinks
        from the op table.  Without it, a failing comparison is a kink where the
        one-sided differences disagree and the analytic number lies between them.

    Returns
    -------
    GradCheck

    >>> import symgrad as sg
    >>> f = sg.graph("(x + y) * z").compile()
    >>> sg.check_grad(f, x=-2, y=5, z=-4).ok
    True
    >>> wrong = lambda x, y: (x * y, {"x": y, "y": -x})
    >>> r = sg.check_grad(wrong, x=3.0, y=2.0)
    >>> r.ok, r.inputs["y"].status, r.max_rel_error
    (False, 'FAIL', 1.0)
    """
    if not isinstance(method, str) or method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    check_options(tol=tol, step=step, sample=sample, seed=seed, directions=directions)
    if wrt is not None and not isinstance(wrt, str) and not (
            isinstance(wrt, (list, tuple)) and all(isinstance(n, str) for n in wrt)):
        raise InputError(f"wrt takes an input name or a list of input names, not {wrt!r}")
    target = _Target(f, graph)
    point = _point({**(inputs or {}), **values})
    if wrt is not None:
        names = [wrt] if isinstance(wrt, str) else list(wrt)
    elif target.compiled:
        names = list(target.compiled.wrt)
    else:
        labels = set(target.graph.labels) if target.graph is not None else set()
        names = [n for n in point if n not in labels and not _labels(point[n])]
    for n in names:
        if n not in point:
            raise InputError(f"no value given for {n!r}, whose gradient is to be checked")
    value, grads = target.value_and_grad(point)
    tiny = FLOOR * max(1.0, float(np.max(np.abs(value))))
    f0 = float(np.sum(value))
    rng = np.random.default_rng(seed)
    bad = {n: _gradient_problem(n, point[n], grads) for n in names}
    rows = [InputCheck(n, None, np.nan, np.nan, np.inf, "FAIL", note=bad[n]) for n in names if bad[n]]
    names = [n for n in names if not bad[n]]
    note = ""
    if method == "directional":
        rows += [_direction(target, point, f0, grads, names, k, rng, step, tol, tiny)
                 for k in range(1, directions + 1)]
    else:
        complex_step = method == "complex"
        if complex_step:
            note = target.complex_problem(point, names, rng, step, tiny)
            complex_step = not note
            if note:
                note = f"complex step unavailable ({note}); used central differences"
        for n in names:
            rows.append(_elements(target, point, f0, n, np.asarray(grads[n], dtype=float), rng, sample,
                                  step, tol, tiny, complex_step))
    order = {n: i for i, n in enumerate(point)}
    rows.sort(key=lambda r: order.get(r.name, len(order)))
    return GradCheck(method, tol, tuple(rows), note)


def check_options(**options: Any) -> None:
    """Refuse options of :func:`check_grad` and :func:`check_local` outside their range, naming them.

    ``tol`` and ``step`` are positive finite numbers, ``sample`` (unless None)
    and ``directions`` positive whole numbers, ``seed`` a whole number ≥ 0.

    >>> check_options(tol=1e-5, sample=0)
    Traceback (most recent call last):
    ...
    symgrad.errors.InputError: sample must be a whole number ≥ 1 (or None), not 0
    """
    for name, value in options.items():
        if name in ("tol", "step"):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not 0 < float(value) < float("inf"):
                raise InputError(f"{name} must be a positive finite number, not {value!r}")
        elif value is not None or name != "sample":
            lowest = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
                allowed = " (or None)" if name == "sample" else ""
                raise InputError(f"{name} must be a whole number ≥ {lowest}{allowed}, not {value!r}")


class _Target:
    """The function under check, evaluated at points given as ``{input: value}``."""

    def __init__(self, f: Any, graph: Any):
        if isinstance(f, Graph):
            f = f.compile()
        self.compiled = f if isinstance(f, Compiled) else None
        self.vg: Callable[..., Any] = getattr(f, "value_and_grad", f)
        if not callable(self.vg):
            raise InputError(
                f"cannot check {type(f).__name__}: give a compiled function, a graph, or a "
                "callable returning (value, {input: gradient})"
            )
        if graph is not None and not isinstance(graph, Graph):
            from .frontends import graph as build_graph

            graph = build_graph(graph)
        self.graph: Graph | None = graph or (self.compiled.graph if self.compiled else None)
        self.kinks = _Kinks(self.graph) if self.graph is not None else None

    def value_and_grad(self, point: dict[str, Any]) -> tuple[Any, Mapping[str, Any]]:
        result = self.vg(**point)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], Mapping)):
            raise InputError(
                f"the function must return (value, {{input: gradient}}), not {type(result).__name__}"
            )
        return result

    def value(self, point: dict[str, Any]) -> float:
        out = self.compiled(**point) if self.compiled else self.vg(**point)[0]
        return float(np.sum(out))

    def complex_value(self, point: dict[str, Any]) -> complex:
        with np.errstate(all="ignore"):
            if self.compiled:
                out = self.compiled._unchecked_value(*(point[n] for n in self.compiled.graph.inputs))
            else:
                out = self.vg(**point)[0]
        return complex(np.sum(out))

    def complex_problem(self, point: dict[str, Any], names: list[str], rng: np.random.Generator,
                        step: float, tiny: float) -> str:
        """Why the complex step cannot be used here ('' if it can).

        The function must take complex numbers and be analytic: its complex
        step along a random direction must agree with central differences.
        """
        if self.kinks is not None and self.kinks.functions:
            return f"the graph has {self.kinks.functions[0]}, which is not analytic"
        v, h, lo, hi = _direction_points(point, names, rng, step)
        shifted = {**point, **{n: np.asarray(point[n]) + 1j * COMPLEX_STEP * v[n] for n in names}}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a silent cast to real would lose the step
                slope = self.complex_value(shifted).imag / COMPLEX_STEP
        except Exception as e:  # the function does not take complex numbers
            return f"the function raised {type(e).__name__} on complex inputs"
        central = (self.value(hi) - self.value(lo)) / (2 * h)
        if not np.isfinite(slope) or _rel_error(np.array(slope), np.array(central), tiny) > 1e-4:
            return "its complex step disagrees with central differences, so it is not analytic"
        return ""

    def near_kink(self, lo: dict[str, Any], hi: dict[str, Any]) -> bool:
        return self.kinks is not None and self.kinks.between(lo, hi)

    def kink_by_differences(self, move: Callable[[float], dict[str, Any]], h: float,
                            known: dict[float, float], analytic: float, tol: float, tiny: float) -> bool:
        """For a callable without a graph: whether its point is next to a kink along ``move``.

        ``move(t)`` is the point moved by t along the difference's direction;
        ``known`` holds the values already computed, by t.  See :func:`one_sided_kink`.
        """
        if self.graph is not None:
            return False
        values = dict(known)

        def f(t: float) -> float:
            if t not in values:
                values[t] = self.value(move(t))
            return values[t]

        return one_sided_kink(f, h, analytic, tol, tiny)


def one_sided_kink(f: Callable[[float], float], h: float, analytic: float, tol: float,
                   tiny: float) -> bool:
    """Whether one-sided differences of ``f`` at 0 show a kink, with ``analytic`` a subgradient.

    The forward and backward differences at step h disagree by more than
    ``tol``, and the gap between them, at steps h, h/4 and h/16, either holds
    steady (a jump in slope at 0; the analytic number must lie between the
    two slopes, as a subgradient does) or vanishes (a kink between two
    steps; the central difference at the step clear of it must agree with
    the analytic number).  A gap that shrinks fourfold per step is curvature
    (h·f''), one that grows is rounding noise: no kink.

    >>> relu, h = (lambda t: max(t, 0.0)), 1e-5
    >>> one_sided_kink(relu, h, 0.0, 1e-5, 1e-4), one_sided_kink(relu, h, 2.0, 1e-5, 1e-4)
    (True, False)
    >>> one_sided_kink(lambda t: max(t - 0.5 * h, 0.0), h, 0.0, 1e-5, 1e-4)  # a kink at h/2
    True
    >>> one_sided_kink(lambda t: t * t, h, 0.0, 1e-5, 1e-4)  # smooth: curvature only
    False
    """
    gaps: list[float] = []
    lo = hi = 0.0
    for step in (h, h / 4, h / 16):
        forward, backward = (f(step) - f(0.0)) / step, (f(0.0) - f(-step)) / step
        if gaps and abs(forward - backward) <= abs(gaps[-1]) / 16:  # vanished: the kink lies beyond step
            return float(_rel_error(np.array(analytic), np.array((forward + backward) / 2), tiny)) <= tol
        if _rel_error(np.array(forward), np.array(backward), tiny) <= tol:
            return False
        if not gaps:
            lo, hi = min(forward, backward), max(forward, backward)
        gaps.append(forward - backward)
    steady = all(abs(b - a) <= abs(a) / 2 for a, b in zip(gaps, gaps[1:]))
    slack = tol * max(abs(lo) + abs(hi), tiny)
    return steady and lo - slack <= analytic <= hi + slack


def kink_expressions(expr: sp.Expr) -> list[tuple[str, sp.Expr]]:
    """``(function, expression)`` pairs, zero where a function inside ``expr`` has a kink.

    >>> a, b = sp.symbols("a b", real=True)
    >>> kink_expressions(sp.Max(a, b) + sp.Abs(a))
    [('abs', a), ('max', a - b)]
    """
    classes = tuple(cls for cls, op in BY_CLASS.items() if op.kink is not None)
    found = []
    for atom in sorted(expr.atoms(*classes), key=sp.default_sort_key) if classes else []:
        op = BY_CLASS[type(atom)]
        args = atom.args
        if op.params:  # a reduction (max over an axis): operands and parameters
            found.append((op.name, op.kink(*args)))  # type: ignore[misc]
            continue
        pairs = [(p, q) for i, p in enumerate(args) for q in args[i + 1:]]
        groups = [args] if len(args) == op.arity else pairs  # SymPy's Max and Min are n-ary
        found += [(op.name, op.kink(*group)) for group in groups]  # type: ignore[misc]
    return found


class _Kinks:
    """Where a graph's functions are not differentiable: the op table's kink expressions."""

    def __init__(self, graph: Graph):
        exprs: list[sp.Expr] = []
        self.functions: list[str] = []
        for n in graph.operations:
            for name, kink in kink_expressions(graph.expr(n)):
                exprs.append(kink)
                self.functions.append(f"{name} at {n}")
        self.inputs = graph.inputs
        self.fn: Callable[..., Any] | None = None
        if exprs:
            program = build_program(graph, [])
            body = [f"    {a.target} = {numpy_code(a.expr)}" for a in program.forward]
            text = "\n".join([f"def kinks({', '.join(graph.inputs)}):", *body,
                              f"    return [{', '.join(numpy_code(e) for e in exprs)}]", ""])
            used = imports_of(*(a.expr for a in program.forward), *exprs)
            self.fn = load_module(text, "kinks", import_namespace(used)).kinks

    def signs(self, point: dict[str, Any]) -> list[np.ndarray]:
        assert self.fn is not None
        with np.errstate(all="ignore"):
            return [np.sign(k) for k in self.fn(*(point[n] for n in self.inputs))]

    def between(self, lo: dict[str, Any], hi: dict[str, Any]) -> bool:
        """Whether a kink lies between the points ``lo`` and ``hi`` (a kink expression changes sign)."""
        if self.fn is None:
            return False
        return any(np.any(a != b) for a, b in zip(self.signs(lo), self.signs(hi)))


def _point(values: dict[str, Any]) -> dict[str, Any]:
    """The inputs checked: float arrays (scalars as Python floats); integer arrays stay integers
    (labels), and are converted where their gradient is checked."""
    out: dict[str, Any] = {}
    for n, v in values.items():
        a = as_array(n, v)
        if a.ndim and np.asarray(v).dtype.kind in "iu":
            a = np.asarray(v)
        out[n] = float(a) if a.ndim == 0 else a
    return out


def _labels(x: Any) -> bool:
    """Whether ``x`` is an array of integers (class labels), which has no gradient."""
    return isinstance(x, np.ndarray) and x.ndim > 0 and x.dtype.kind in "iub"


def _gradient_problem(name: str, x: Any, grads: Mapping[str, Any]) -> str:
    if name not in grads:
        return "no gradient returned"
    try:
        g = np.asarray(grads[name], dtype=float)
    except (TypeError, ValueError):
        return f"gradient is not numeric: {type(grads[name]).__name__}"
    if g.shape != np.shape(x):
        return f"gradient has shape {g.shape}, the input {np.shape(x)}"
    return ""


def _rel_error(a: np.ndarray, b: np.ndarray, tiny: float) -> np.ndarray:
    return np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), tiny)


def _with(point: dict[str, Any], name: str, value: np.ndarray) -> dict[str, Any]:
    """``point`` with input ``name`` replaced (a 0-d array becomes a Python number)."""
    return {**point, name: value.item() if value.ndim == 0 else value}


def _selected(shape: Index, sample: int | None, rng: np.random.Generator) -> list[Index]:
    """Every element index of ``shape``, or ``sample`` of them at random (in order)."""
    indices = [tuple(int(i) for i in ix) for ix in np.ndindex(shape)]
    if sample is not None and len(indices) > sample:
        indices = [indices[i] for i in np.sort(rng.choice(len(indices), size=sample, replace=False))]
    return indices


def _stepped(x: np.ndarray, ix: Index, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Copies of ``x`` with element ``ix`` moved down and up by step · max(1, |x[ix]|)."""
    h = step * max(1.0, abs(float(x[ix])))
    lo, hi = x.copy(), x.copy()
    lo[ix] -= h
    hi[ix] += h
    return lo, hi


def _elements(target: _Target, point: dict[str, Any], f0: float, name: str, grad: np.ndarray,
              rng: np.random.Generator, sample: int | None, step: float, tol: float, tiny: float,
              complex_step: bool) -> InputCheck:
    """Each selected element of one input, by central differences or the complex step."""
    x = np.asarray(point[name], dtype=float)
    indices = _selected(x.shape, sample, rng)
    numeric = np.empty(len(indices))
    kink = np.zeros(len(indices), dtype=bool)
    known: list[dict[float, float]] = []  # f at the point and at ±h, by step, per element
    for k, ix in enumerate(indices):
        lo, hi = _stepped(x, ix, step)
        h = step * max(1.0, abs(float(x[ix])))  # as _stepped steps
        p_lo, p_hi = _with(point, name, lo), _with(point, name, hi)
        kink[k] = target.near_kink(p_lo, p_hi)
        if complex_step:
            z = x.astype(complex)
            z[ix] += 1j * COMPLEX_STEP
            numeric[k] = target.complex_value(_with(point, name, z)).imag / COMPLEX_STEP
            known.append({0.0: f0})
        else:
            f_lo, f_hi = target.value(p_lo), target.value(p_hi)
            numeric[k] = (f_hi - f_lo) / (hi[ix] - lo[ix])
            known.append({0.0: f0, -h: f_lo, h: f_hi})
    analytic = np.array([grad[ix] for ix in indices])
    errors = _rel_error(analytic, numeric, tiny)
    failing = np.flatnonzero(~kink & (errors > tol))
    for k in failing[np.argsort(-errors[failing], kind="stable")]:  # worst first, to the first failure
        ix = indices[k]
        h = step * max(1.0, abs(float(x[ix])))
        kink[k] = target.kink_by_differences(partial(_moved, point, name, x, ix), h, known[k],
                                             float(analytic[k]), tol, tiny)
        if not kink[k]:
            break
    return _summary(name, indices, analytic, numeric, errors, kink, tol, True)


def _moved(point: dict[str, Any], name: str, x: np.ndarray, ix: Index, t: float) -> dict[str, Any]:
    """``point`` with element ``ix`` of input ``name`` (whose value is ``x``) moved by ``t``."""
    y = x.copy()
    y[ix] += t
    return _with(point, name, y)


def _summary(name: str, indices: list[Index], analytic: np.ndarray, numeric: np.ndarray,
             errors: np.ndarray, kink: np.ndarray, tol: float, show_index: bool) -> InputCheck:
    smooth = ~kink
    if smooth.any():
        k = int(np.argmax(np.where(smooth, errors, -1.0)))
        status = "ok" if errors[k] <= tol else "FAIL"
    else:
        k = int(np.argmax(errors))
        status = "kink"
    return InputCheck(name, indices[k] if show_index else None, float(analytic[k]), float(numeric[k]),
                      float(errors[k]), status, len(indices), int(kink.sum()),
                      indices=tuple(indices) if show_index else ())


def _direction_points(point: dict[str, Any], names: list[str], rng: np.random.Generator,
                      step: float) -> tuple[dict[str, Any], float, dict[str, Any], dict[str, Any]]:
    """A random unit direction v over ``names``, the step h, and the points x − hv, x + hv."""
    v = {n: rng.standard_normal(np.shape(point[n])) for n in names}
    norm = np.sqrt(sum(float(np.sum(d * d)) for d in v.values())) or 1.0
    v = {n: d / norm for n, d in v.items()}
    h = step * max([1.0] + [float(np.max(np.abs(point[n]))) for n in names])
    lo = {**point, **{n: point[n] - h * v[n] for n in names}}
    hi = {**point, **{n: point[n] + h * v[n] for n in names}}
    return v, h, lo, hi


def _direction(target: _Target, point: dict[str, Any], f0: float, grads: Mapping[str, Any],
               names: list[str], k: int, rng: np.random.Generator, step: float, tol: float,
               tiny: float) -> InputCheck:
    """⟨∇f, v⟩ against a central difference along one random unit direction v."""
    v, h, lo, hi = _direction_points(point, names, rng, step)
    analytic = sum(float(np.sum(np.asarray(grads[n], dtype=float) * v[n])) for n in names)
    f_lo, f_hi = target.value(lo), target.value(hi)
    numeric = (f_hi - f_lo) / (2 * h)
    error = _rel_error(np.array([analytic]), np.array([numeric]), tiny)
    kink = np.array([target.near_kink(lo, hi)])
    if not kink[0] and error[0] > tol:
        kink[0] = target.kink_by_differences(
            lambda t: {**point, **{n: point[n] + t * v[n] for n in names}}, h,
            {0.0: f0, -h: f_lo, h: f_hi}, analytic, tol, tiny)
    return _summary(f"direction {k}", [()], np.array([analytic]), np.array([numeric]), error, kink,
                    tol, False)


# -- one node at a time ------------------------------------------------------------


@dataclass(frozen=True)
class EdgeCheck:
    """One local derivative ∂node/∂operand against a finite difference of the node alone.

    ``index`` is the worst element of the operand; ``checked`` elements were compared,
    ``kinks`` of them next to a kink.
    """

    node: str
    label: str
    operand: str
    derivative: str
    index: Index
    analytic: float
    numeric: float
    rel_error: float
    status: str  # "ok", "WRONG" or "kink"
    checked: int = 1
    kinks: int = 0


@dataclass(frozen=True)
class LocalCheck:
    """The result of :func:`check_local`: one row per edge; ``wrong`` names the failing nodes."""

    tol: float
    rows: tuple[EdgeCheck, ...]
    wrong: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.wrong

    def __str__(self) -> str:
        if self.ok:
            head = f"all {len(self.rows)} local derivatives agree with finite differences (tol {self.tol:g})"
        else:
            bad = [r for r in self.rows if r.status == "WRONG"]
            head = "wrong local derivative" + ("s" if len(bad) > 1 else "") + ": " + "; ".join(
                f"{r.node} ({r.label}): ∂{r.node}/∂{r.operand} = {r.derivative} gives "
                f"{number(r.analytic, 6)}, finite differences {number(r.numeric, 6)}" for r in bad)
        rows = [[r.node, r.label, f"∂{r.node}/∂{r.operand}", r.derivative, str(r.index),
                 number(r.analytic, 6), number(r.numeric, 6), f"{r.rel_error:.2g}",
                 r.status + (f" ({r.kinks} next to a kink)" if r.kinks and r.status != "kink" else "")]
                for r in self.rows]
        header = ["node", "op", "local", "derivative", "element", "analytic", "numeric", "rel. error",
                  "status"]
        return "\n".join([head] + ["  " + line for line in render(header, rows).splitlines()])

    def __repr__(self) -> str:
        return f"<LocalCheck ok={self.ok} wrong={list(self.wrong)}>"


def check_local(g: Graph, inputs: Mapping[str, Any] | None = None, /, *, tol: float = TOL,
                step: float = STEP, sample: int | None = None, seed: int = 0,
                **values: Any) -> LocalCheck:
    """Check every node's local derivatives against finite differences of that node alone.

    Where :func:`check_grad` says the whole gradient is off, this names the
    gate that is wrong.  For a node ``v`` with operand ``u``, the gradient the
    backward pass sends along ``u → v`` for an upstream ``r`` (1 for a scalar
    node, random otherwise) is compared with the central difference of
    ``sum(r · v)`` in each element of ``u``, all other values held fixed.

    Parameters
    ----------
    g:
        The graph; :meth:`Graph.with_local_derivative` gives a gate a hand-written derivative.
    inputs, **values:
        The point, by input name.
    tol, step, sample, seed:
        As for :func:`check_grad`.

    Returns
    -------
    LocalCheck

    >>> import symgrad as sg
    >>> g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))")
    >>> point = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    >>> sg.check_local(g, **point).ok
    True
    >>> bad = g.with_local_derivative("q6", "q5", "-q6")
    >>> sg.check_local(bad, **point).wrong
    ('q6',)
    """
    if not isinstance(g, Graph):
        raise InputError(f"check_local needs a Graph, not {type(g).__name__}")
    check_options(tol=tol, step=step, sample=sample, seed=seed)
    dtypes = {n: g.nx.nodes[n]["dtype"] for n in g.inputs}
    declared = {n: g.shape(n) for n in g.inputs}
    env: dict[str, Any] = coerce(g.inputs, declared, {**(inputs or {}), **values}, dtypes)
    check_labels(g, env)
    known = sizes(declared, env)
    env.update(known)  # expressions read a named dimension by its name
    program = build_program(g)
    for a in program.forward:
        env[a.node] = _evaluate(a.expr, env, f"{a.node} = {a.expr}")
    rng = np.random.default_rng(seed)
    adjoints = {a.node: a for a in program.backward}
    rows: list[EdgeCheck] = []
    for v in g.operations:
        if g.nx.nodes[v]["kind"] not in ("op", "gate"):
            continue
        expr = g.expr(v)
        upstream = 1.0 if g.shape(v) == () else rng.standard_normal(concrete(g.shape(v), known))
        kinks = [k for _, k in kink_expressions(expr)]
        tiny = FLOOR * max(1.0, float(np.max(np.abs(env[v]))))
        for u in g.operands(v):
            if u not in adjoints:  # labels get no gradient
                continue
            term = next(t for t in adjoints[u].terms if t.consumer == v)
            dv = adjoints[v].target
            analytic = np.broadcast_to(
                _evaluate(term.expr, {**env, dv.name: upstream}, f"∂{v}/∂{u}"), concrete(g.shape(u), known))
            rows.append(_edge(g, v, u, expr, kinks, env, upstream, analytic, rng, sample, step, tol, tiny))
    wrong = tuple(dict.fromkeys(r.node for r in rows if r.status == "WRONG"))
    return LocalCheck(tol, tuple(rows), wrong)


def _edge(g: Graph, v: str, u: str, expr: sp.Expr, kinks: list[sp.Expr], env: dict[str, Any],
          upstream: Any, analytic: np.ndarray, rng: np.random.Generator, sample: int | None,
          step: float, tol: float, tiny: float) -> EdgeCheck:
    x = np.asarray(env[u], dtype=float)
    indices = _selected(x.shape, sample, rng)
    numeric, kink = np.empty(len(indices)), np.zeros(len(indices), dtype=bool)
    for k, ix in enumerate(indices):
        lo, hi = _stepped(x, ix, step)
        at_lo, at_hi = {**env, u: lo}, {**env, u: hi}
        f_lo = float(np.sum(upstream * _evaluate(expr, at_lo, f"{v} = {expr}")))
        f_hi = float(np.sum(upstream * _evaluate(expr, at_hi, f"{v} = {expr}")))
        numeric[k] = (f_hi - f_lo) / (hi[ix] - lo[ix])
        kink[k] = any(np.any(np.sign(evaluate(c, at_lo)) != np.sign(evaluate(c, at_hi))) for c in kinks)
    values = np.array([analytic[ix] for ix in indices])
    errors = _rel_error(values, numeric, tiny)
    row = _summary(u, indices, values, numeric, errors, kink, tol, True)
    status = "WRONG" if row.status == "FAIL" else row.status
    shown = str(g.local_derivatives(v, cached=True)[u]) if g.elementwise(v) else f"vjp {g.vjps(v)[u]}"
    return EdgeCheck(v, g.nx.nodes[v]["label"], u, shown,
                     row.index or (), row.analytic, row.numeric, row.rel_error, status, row.checked,
                     row.kinks)


def _evaluate(expr: sp.Expr, env: dict[str, Any], what: str) -> np.ndarray:
    try:
        with np.errstate(divide="raise", over="raise", invalid="raise", under="ignore"):
            return evaluate(expr, env)
    except (FloatingPointError, ZeroDivisionError, OverflowError) as e:
        raise EvaluationError(f"cannot evaluate {what}: {e}") from None

