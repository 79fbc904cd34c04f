"""The reference: what a correct submission returns at one test point, and its witness.

Every reference number the grader compares against comes from
:func:`reference_gradients`, which runs the graph's compiled NumPy code
(``value_and_grad``, or ``forward`` and ``backward`` with an upstream
gradient), so the way references are computed is decided in one place.
:func:`witness` confirms a reference with :func:`symgrad.check_grad`: when
finite differences disagree, or the point sits next to a kink, the spec is
at fault, not the student.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..check import check_grad, kink_expressions
from ..compiled import Compiled
from ..errors import SymgradError
from ..graph import Graph
from .spec import Problem, SpecError

CENTRAL_MAX = 64  # at most this many differentiable elements: central differences; more: directional
DIRECTIONS = 2
WITNESS_TOL = 1e-3  # references that are wrong are wrong by far more; rounding stays far below

Codes = MutableMapping[Graph, Compiled]  # compiled code by graph, kept by one grading run's plan


@dataclass(frozen=True)
class Reference:
    """The expression's value and its gradient for every differentiable input at one point."""

    value: np.ndarray
    grads: dict[str, np.ndarray]


def compiled(problem: Problem, graph: Graph | None = None, codes: Codes | None = None) -> Compiled:
    """The compiled code of ``problem``'s graph (or of ``graph``), built once per graph in ``codes``."""
    g = problem.graph if graph is None else graph
    f = None if codes is None else codes.get(g)
    if f is None:
        f = g.compile([n for n in g.inputs if problem.inputs[n].differentiable])
        if codes is not None:
            codes[g] = f
    return f


def reference_gradients(problem: Problem, inputs: Mapping[str, Any], dout: Any = None,
                        graph: Graph | None = None, codes: Codes | None = None) -> Reference:
    """The value and gradients of ``problem``'s expression at ``inputs``, from its compiled code.

    Parameters
    ----------
    problem:
        The problem whose reference expression is used.
    inputs:
        ``{input: value}`` for every input of the problem.
    dout:
        The upstream gradient (a scalar, or an array of the output's shape) for
        ``forward`` and ``backward``; None for ``value_and_grad`` (the gradient
        of the output's sum).
    graph:
        Another graph over the same inputs (the expression without its
        regularization term, for the diagnoses); default ``problem.graph``.
    codes:
        Compiled code by graph, shared by the calls of one grading run (its
        plan); None compiles the graph anew.

    Returns
    -------
    Reference
        Gradients of inputs the graph does not use are zeros.

    Raises
    ------
    SpecError
        When the reference cannot be evaluated at ``inputs`` or is not finite there.

    >>> from symgrad.homework.spec import load_spec
    >>> p = load_spec('[[problem]]\\nid = "c"\\nexpression = "(x + y) * z"').problems[0]
    >>> r = reference_gradients(p, {"x": -2.0, "y": 5.0, "z": -4.0})
    >>> float(r.value), {n: float(v) for n, v in r.grads.items()}
    (-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})
    """
    g = problem.graph if graph is None else graph
    f = compiled(problem, g, codes)
    values = {n: inputs[n] for n in g.inputs}
    try:
        with np.errstate(all="ignore"):
            if dout is None:
                value, found = f.value_and_grad(**values)
            else:
                value, cache = f.forward(**values)
                found = f.backward(dout, cache)
    except SymgradError as e:
        raise SpecError(f"problem {problem.id!r}: the reference cannot be evaluated at "
                        f"{point_text(inputs)}: {e}") from None
    grads = {}
    for name, spec in problem.inputs.items():
        if spec.differentiable:
            grad = found.get(name) if name in g.inputs else None
            grads[name] = np.zeros(spec.shape) if grad is None else np.asarray(grad, dtype=float)
    ref = Reference(np.asarray(value, dtype=float), grads)
    if not all(np.isfinite(a).all() for a in (ref.value, *ref.grads.values())):
        raise SpecError(f"problem {problem.id!r}: the reference is not finite at {point_text(inputs)}"
                        f"{_why_not_finite(g, values)}")
    return ref


def _why_not_finite(g: Graph, values: Mapping[str, Any]) -> str:
    """The interpreter's account of the first node that fails, when it names one."""
    try:
        g.backprop(**values)
    except SymgradError as e:
        return f": {e}"
    return ""


def witness(problem: Problem, inputs: Mapping[str, Any], ref: Reference, dout: Any = None,
            codes: Codes | None = None) -> str | None:
    """Why finite differences do not confirm ``ref`` at ``inputs``, or None when they do.

    The function checked is ``sum(dout · f)`` (``sum(f)`` without ``dout``), its
    claimed gradient the reference's, for the inputs the problem grades (``wrt``).
    Central differences check every element of inputs up to :data:`CENTRAL_MAX`
    elements in all, and a point next to a kink is refused (there the gradient is
    not defined, and a right submission may differ).  Larger inputs are checked
    along :data:`DIRECTIONS` random directions, where a kink matters only when the
    difference shows it.

    >>> from symgrad.homework.spec import load_spec
    >>> p = load_spec('[[problem]]\\nid = "c"\\nexpression = "(x + y) * z"').problems[0]
    >>> point = {"x": -2.0, "y": 5.0, "z": -4.0}
    >>> witness(p, point, reference_gradients(p, point)) is None
    True
    >>> wrong = Reference(np.asarray(-12.0), {"x": np.asarray(4.0), "y": np.asarray(-4.0),
    ...                                       "z": np.asarray(3.0)})
    >>> print(witness(p, point, wrong))
    finite differences disagree with the reference's ∂x: 4 from the graph, -4 by differences
    """
    f = compiled(problem, codes=codes)
    names = [n for n in problem.wrt if n in problem.graph.inputs]  # the gradients graded
    if not names:
        return None
    upstream = 1.0 if dout is None else np.asarray(dout, dtype=float)

    def value_and_grad(**point: Any) -> tuple[float, dict[str, np.ndarray]]:
        with np.errstate(all="ignore"):
            return float(np.sum(upstream * f(**point))), ref.grads

    size = sum(int(np.prod(problem.inputs[n].shape)) for n in names)
    central = size <= CENTRAL_MAX
    point = {n: inputs[n] for n in problem.graph.inputs}
    try:
        result = check_grad(value_and_grad, point, method="central" if central else "directional",
                            tol=WITNESS_TOL, wrt=names, graph=problem.graph if central else None,
                            directions=DIRECTIONS)
    except SymgradError as e:
        return f"finite differences cannot be taken there: {e}"
    kinks = _kinks(problem.graph)
    for row in result.rows:
        if row.status == "kink" or row.kinks:
            return (f"the point is next to a kink ({kinks}), where ∂{row.name} is not defined: "
                    "sample the inputs away from it")
        if row.status == "FAIL":
            if central:
                at = f" at {list(row.index)}" if row.index else ""
                head = f"finite differences disagree with the reference's ∂{row.name}{at}"
            else:
                head = "finite differences along a random direction disagree with the reference's gradient"
            near = f" (or the point is next to a kink: {kinks})" if kinks and not central else ""
            return f"{head}{near}: {row.analytic:.6g} from the graph, {row.numeric:.6g} by differences"
    return None


def _kinks(g: Graph) -> str:
    """The functions of ``g`` that have kinks, like ``"relu, abs"`` ('' for none)."""
    return ", ".join(sorted({name for n in g.operations for name, _ in kink_expressions(g.expr(n))}))


def point_text(inputs: Mapping[str, Any]) -> str:
    """A test point in a line: numbers and small arrays shown, larger arrays by their shape.

    >>> point_text({"x": 1.5, "W": np.zeros((20, 3)), "b": np.array([0.5, -1.0])})
    'x=1.5, W=(an array of shape (20, 3)), b=[ 0.5 -1. ]'
    """
    def show(v: Any) -> str:
        a = np.asarray(v)
        if a.ndim == 0:
            return f"{a.item():.4g}"
        if a.size > 12:
            return f"(an array of shape {a.shape})"
        return np.array2string(a, precision=4, separator=" ").replace("\n", "")

    return ", ".join(f"{n}={show(v)}" for n, v in inputs.items())
