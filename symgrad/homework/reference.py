"""The reference: what a correct submission returns at one test point.

Every reference number the grader compares against comes from
:func:`reference_gradients`, so the way references are computed is decided
in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SymgradError
from ..graph import Graph
from .spec import Problem, SpecError


@dataclass(frozen=True)
class Reference:
    """The expression's value and its gradient for every differentiable input at one point."""

    value: np.ndarray
    grads: dict[str, np.ndarray]


def reference_gradients(problem: Problem, inputs: Mapping[str, Any], dout: Any = 1.0,
                        graph: Graph | None = None) -> Reference:
    """The value and gradients of ``problem``'s expression at ``inputs``, derived by symgrad.

    Parameters
    ----------
    problem:
        The problem whose reference expression is used.
    inputs:
        ``{input: value}`` for every input of the problem.
    dout:
        The upstream gradient (a scalar, or an array of the output's shape).
    graph:
        Another graph over the same inputs (the expression without its
        regularization term, for the diagnoses); default ``problem.graph``.

    Returns
    -------
    Reference
        Gradients of inputs the graph does not use are zeros.

    >>> from symgrad.homework.spec import load_spec
    >>> p = load_spec('[[problem]]\\nid = "c"\\nexpression = "(x + y) * z"').problems[0]
    >>> r = reference_gradients(p, {"x": -2.0, "y": 5.0, "z": -4.0})
    >>> float(r.value), {n: float(v) for n, v in r.grads.items()}
    (-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})
    """
    g = problem.graph if graph is None else graph
    values = {n: inputs[n] for n in g.inputs}
    try:
        trace = g.backprop(dout=dout, **values)
    except SymgradError as e:
        raise SpecError(f"problem {problem.id!r}: the reference cannot be evaluated at "
                        f"{_point(inputs)}: {e}") from None
    grads = {}
    for name, spec in problem.inputs.items():
        if spec.differentiable:
            grad = trace.grads.get(name) if name in g.inputs else None
            grads[name] = np.zeros(spec.shape) if grad is None else np.asarray(grad, dtype=float)
    return Reference(np.asarray(trace.value, dtype=float), grads)


def _point(inputs: Mapping[str, Any]) -> str:
    return ", ".join(f"{n}={np.array2string(np.asarray(v), precision=4)}" for n, v in inputs.items())
