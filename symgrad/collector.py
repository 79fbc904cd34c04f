"""Python's cyclic garbage collector, paused while symgrad builds large structures.

Building a graph, backpropagating through it and generating its code make
millions of objects that live until the step ends (nodes, SymPy expressions,
lines, syntax trees).  Each collection of the oldest generation walks all of
them: about a third of tracing a callable into 40,000 nodes, a fifth of
compiling a graph of 10^5 nodes.  Cycles made meanwhile are collected once
the collector resumes.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The collector paused, then resumed if it ran before (so pauses nest)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
