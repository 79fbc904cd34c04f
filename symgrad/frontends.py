"""The front ends: :func:`graph` builds a Graph from a string, a SymPy expression or a callable.

Each front end drives the same :class:`~symgrad.build.Builder`: strings go
through :mod:`symgrad.parse` (Python's syntax tree and a whitelist, never
evaluated), SymPy expressions through :mod:`symgrad.sympy_input`, callables
through :mod:`symgrad.tracing` (recording values).  The Builder hands its
nodes to :class:`~symgrad.graph.Graph`, whose attributes :mod:`symgrad.ir` sets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import sympy as sp

from .build import Builder
from .collector import collector_paused
from .dims import Shape
from .errors import InputError, SymgradError

if TYPE_CHECKING:  # graph.py re-exports graph(): importing it here would make a cycle
    from .graph import Graph


def graph(source: str | sp.Expr | Callable[..., Any], *,
          shapes: Mapping[str, Shape] | None = None,
          granularity: str = "primitive",
          dtypes: Mapping[str, type | str] | None = None) -> Graph:
    """Build a computation graph from a string, a SymPy expression or a Python callable.

    Parameters
    ----------
    source:
        ``"(x + y) * z"`` (parsed safely, never evaluated), a SymPy expression
        built from supported functions, or a callable whose parameters are the
        inputs (traced operation by operation).
    shapes:
        ``{input name: shape}``; inputs not named are scalars.  Shaped inputs
        follow NumPy: ``@`` multiplies matrices, ``*`` and the functions act
        entry by entry and broadcast, ``.T`` transposes, ``sum``/``mean``
        reduce (over ``axis=k`` if given).  A size may be a name, a dimension
        whose size the inputs give when the code runs: ``{"X": ("N", 3),
        "y": ("N",)}`` (equal names, equal sizes).
    granularity:
        ``"primitive"`` (binary ``+`` and ``*``, the lecture's level) or
        ``"nary"`` (chains of ``+`` or ``*`` merged into one node).
    dtypes:
        ``{input name: int}`` declares integer class labels (as taken by
        ``pick`` and ``softmax_cross_entropy``); they get no gradient.  Other
        inputs are float.

    Returns
    -------
    Graph

    >>> import symgrad as sg
    >>> print(sg.graph("(x + y) * z"))
    graph(x, y, z): q2 = (x + y) * z
      q1 = x + y   [+]
      q2 = q1*z    [*]
      return q2
    """
    for what, given, like in (("shapes", shapes, "{'W': (2, 3)}"), ("dtypes", dtypes, "{'y': int}")):
        if given is not None and not isinstance(given, Mapping):
            raise InputError(f"{what} takes a mapping from input names, like {what}={like}, not {given!r}")
    builder = Builder(granularity, dict(shapes or {}), dict(dtypes or {}))
    with collector_paused():
        return _built(source, builder)


def _built(source: str | sp.Expr | Callable[..., Any], builder: Builder) -> Graph:
    """The graph of ``source``, read by the front end for its kind."""
    if isinstance(source, str):
        from .parse import parse

        return parse(source, builder)
    if isinstance(source, sp.Basic):
        from .sympy_input import from_sympy

        return from_sympy(source, builder)
    from .graph import Graph

    if isinstance(source, Graph):
        return source
    if callable(source):
        from .tracing import trace

        return trace(source, builder)
    raise SymgradError(
        f"cannot build a graph from {type(source).__name__}; "
        "give a string, a SymPy expression or a callable"
    )
