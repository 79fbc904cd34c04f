"""Symbolic answers: a student's ∂f/∂x as an expression string, read and compared.

Answer text goes through symgrad's own safe parser (never ``sympify``), is
evaluated at the test points with symgrad's NumPy printer, and its difference
from SymPy's derivative of the reference is simplified.  An answer is right
only when both checks say so (:func:`agreed`); for problems over arrays, which
SymPy does not differentiate, the numbers decide.  Both are done in a
worker process (``python -m symgrad.homework.answers``) that the grader can
stop: SymPy's simplification of a hostile answer may take forever.

The worker reads one request a line (JSON) and answers with lines::

    {"var": "x", "values": [{"shape": [], "data": [0.19]}, ...]}   or  {"var": "x", "error": "..."}
    {"var": "x", "symbolic": "zero" | "nonzero" | "error" | "arrays"}
    {"done": true}

(and ``{"ready": true}`` once, when it has started).
"""

from __future__ import annotations

import json
import os
import queue
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from ..errors import SymgradError
from ..graph import Graph
from ..ops import CUSTOM_FUNCTIONS
from ..printing import evaluate
from .report import Check
from .spec import graph_of

MAX_ANSWER_LENGTH = 10_000
STARTUP_SECONDS = 120.0


def parse_answer(text: str, shapes: Mapping[str, tuple[int, ...]], labels: Sequence[str] = ()) -> Graph:
    """The graph of an answer; a SymgradError for bad text or an input the problem lacks.

    >>> parse_answer("sigmoid(x)*(1 - sigmoid(x))", {"x": ()}).inputs
    ('x',)
    """
    if not isinstance(text, str):
        raise SymgradError(f"an answer must be a string, not {type(text).__name__}")
    if len(text) > MAX_ANSWER_LENGTH:
        raise SymgradError(f"the answer is too long ({len(text)} characters; at most {MAX_ANSWER_LENGTH})")
    g = graph_of(text, shapes, labels)
    unknown = [n for n in g.inputs if n not in shapes]
    if unknown:
        raise SymgradError(f"uses {unknown[0]!r}, which is not an input of this problem "
                           f"(inputs: {', '.join(shapes)})")
    return g


def answer_values(g: Graph, points: Sequence[Mapping[str, Any]], shape: tuple[int, ...]) -> list[np.ndarray]:
    """The answer's value at every point, broadcast to ``shape``; NaN and inf are kept."""
    expr = g.expression()
    values = []
    with np.errstate(all="ignore"):
        for point in points:
            env = {n: np.asarray(point[n], dtype=float) for n in g.inputs}
            try:
                value = evaluate(expr, env)
            except (ZeroDivisionError, OverflowError, ValueError):
                value = np.asarray(np.nan)
            try:
                value = np.broadcast_to(value, shape).copy()
            except ValueError:
                pass  # the wrong shape is for the diagnosis to name
            values.append(value)
    return values


def same_symbolically(answer: Graph, reference: Graph, var: str) -> bool:
    """Whether SymPy simplifies (answer − ∂reference/∂var) to 0, away from the kinks.

    Both sides are first written in elementary functions, every operand of a
    custom function kept (``logaddexp(x, y)`` is log(eˣ + eʸ), not x), and the
    step functions of kinks through ``abs``: Heaviside(u) as (1 + |u|/u)/2,
    max(a, b) as (a + b + |a − b|)/2, so ``relu(x)/x`` is relu's derivative
    wherever x ≠ 0.

    >>> from symgrad import graph
    >>> same_symbolically(graph("exp(-x)/(1 + exp(-x))**2"), graph("sigmoid(x)"), "x")
    True
    >>> same_symbolically(graph("1"), graph("logaddexp(x, y)"), "x")
    False
    """
    want = sp.diff(reference.expression(), sp.Symbol(var, real=True))
    return sp.simplify(elementary(answer.expression()) - elementary(want)) == 0


def elementary(expr: sp.Expr) -> sp.Expr:
    """``expr`` without custom functions, and with Heaviside, sign, max and min through ``abs``.

    The step functions are rewritten by identities that hold wherever their
    argument is not zero, which is where a derivative exists.

    >>> x, y = sp.symbols("x y", real=True)
    >>> from symgrad.ops import logaddexp, relu
    >>> elementary(logaddexp(x, y)), elementary(sp.diff(relu(x), x))
    (log(exp(x) + exp(y)), 1/2 + Abs(x)/(2*x))
    """
    expr = expr.replace(lambda e: isinstance(e, CUSTOM_FUNCTIONS),
                        lambda e: type(e).elementary(*e.args))
    expr = expr.replace(lambda e: isinstance(e, (sp.Max, sp.Min)), _through_abs)
    expr = expr.replace(lambda e: isinstance(e, sp.Heaviside), lambda e: (1 + sp.sign(e.args[0])) / 2)
    return expr.replace(lambda e: isinstance(e, sp.sign), lambda e: sp.Abs(e.args[0]) / e.args[0])


def _through_abs(e: sp.Expr) -> sp.Expr:
    """max(a, b, …) as (a + b + |a − b|)/2, min with − |a − b|, two operands at a time."""
    sign = 1 if isinstance(e, sp.Max) else -1
    first, *rest = e.args
    for b in rest:
        first = (first + b + sign * sp.Abs(first - b)) / 2
    return first


def agreed(numeric: Check, symbolic: str | None) -> Check:
    """An answer's mark: right only when the numbers and SymPy both say so.

    ``symbolic`` is SymPy's verdict on (answer − derivative): "zero",
    "nonzero", "error", None when it did not come in time, or "arrays" for a
    problem over arrays, which SymPy does not differentiate (the numbers decide).

    >>> agreed(Check("∂x", True), "zero"), agreed(Check("∂x", True), "arrays")
    (Check(name='∂x', ok=True, hint=None), Check(name='∂x', ok=True, hint=None))
    >>> print(agreed(Check("∂x", False, "expected 0.5, got 1 at x=0.3"), "zero").hint)  # doctest: +ELLIPSIS
    the checks disagree: SymPy simplifies the answer to the derivative, but the numbers differ: ...
    """
    if symbolic in ("zero", "arrays"):
        if numeric.ok:
            return numeric
        return Check(numeric.name, False, f"the checks disagree: SymPy simplifies the answer to the "
                                          f"derivative, but the numbers differ: {numeric.hint}",
                     numeric.counterexample)
    if not numeric.ok:
        return numeric
    why = {"nonzero": "the checks disagree: the answer matches the derivative at the test points, "
                      "but SymPy does not simplify their difference to 0",
           "error": "the answer matches the derivative at the test points, but SymPy could not "
                    "compare it with the derivative, and a mark needs both checks"}
    return Check(numeric.name, False, why.get(symbolic or "", "the answer matches the derivative at the "
                 "test points, but the symbolic check took too long, and a mark needs both checks"))


def check(request: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The worker's reply to one request: values first, then the slower symbolic verdicts."""
    shapes = {n: tuple(s) for n, s in request["shapes"].items()}
    labels = request.get("labels", [])
    reference = graph_of(request["expression"], shapes, labels)
    points = [{n: np.asarray(v["data"], dtype=float).reshape(v["shape"]) for n, v in p.items()}
              for p in request["points"]]
    parsed: dict[str, Graph] = {}
    for var, text in request["answers"].items():
        try:
            g = parse_answer(text, shapes, labels)
            values = answer_values(g, points, shapes[var])
        except (SymgradError, RecursionError, MemoryError) as e:
            yield {"var": var, "error": str(e).splitlines()[0] if str(e) else type(e).__name__}
            continue
        parsed[var] = g
        yield {"var": var, "values": [{"shape": list(v.shape), "data": v.ravel().tolist()} for v in values]}
    arrays = any(reference.shape(n) != () for n in reference.nodes)
    for var, g in parsed.items():
        if arrays:  # SymPy differentiates no array expression: the numbers alone decide
            verdict = "arrays"
        else:
            try:
                verdict = "zero" if same_symbolically(g, reference, var) else "nonzero"
            except Exception:  # SymPy may fail on odd input
                verdict = "error"
        yield {"var": var, "symbolic": verdict}
    yield {"done": True}


def main() -> None:
    """The worker: one JSON request a line on stdin, reply lines on stdout."""
    if len(sys.argv) > 1:
        import resource

        memory = int(sys.argv[1]) << 20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            for reply in check(json.loads(line)):
                print(json.dumps(reply), flush=True)
        except Exception as e:
            print(json.dumps({"failed": f"{type(e).__name__}: {e}"[:300]}), flush=True)
            print(json.dumps({"done": True}), flush=True)


def _stop(worker: subprocess.Popen) -> None:
    """Kill a worker (if it still runs), reap it and close its pipes."""
    if worker.poll() is None:
        worker.kill()
    worker.wait()
    for stream in (worker.stdin, worker.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass


class AnswerPool:
    """At most ``workers`` worker processes, shared by the grading threads (a thread waits for
    a free one); a worker that overruns or fails is killed, and the next request gets a new one.
    ``cancel`` set: every request ends at once, "cancelled"."""

    def __init__(self, memory_mb: int, workers: int = 1, cancel: threading.Event | None = None):
        self.memory_mb = max(memory_mb, 768)
        self.cancel = cancel
        self._slots = threading.BoundedSemaphore(max(1, workers))
        self._idle: queue.SimpleQueue[subprocess.Popen] = queue.SimpleQueue()
        self._all: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    def ask(self, request: Mapping[str, Any], timeout: float) -> tuple[list[dict[str, Any]], str]:
        """The reply lines to ``request``, and how it ended: "done", "timeout", "failed" or
        "cancelled"; the timeout starts when a worker has the request."""
        while not self._slots.acquire(timeout=0.1):
            if self.cancel is not None and self.cancel.is_set():
                return [], "cancelled"
        try:
            return self._ask(request, timeout)
        finally:
            self._slots.release()

    def _ask(self, request: Mapping[str, Any], timeout: float) -> tuple[list[dict[str, Any]], str]:
        try:
            worker: subprocess.Popen | None = self._idle.get_nowait()
        except queue.Empty:
            worker = self._start()
        if worker is None:
            return [], "failed"
        assert worker.stdin is not None and worker.stdout is not None
        try:
            worker.stdin.write((json.dumps(request) + "\n").encode())
            worker.stdin.flush()
        except OSError:
            status = "failed"
        else:
            replies, status = _read_replies(worker.stdout.fileno(), time.monotonic() + timeout, self.cancel)
        if status == "done":
            self._idle.put(worker)
            return replies, status
        self._retire(worker)
        return ([] if status == "failed" else replies), status

    def _retire(self, worker: subprocess.Popen) -> None:
        _stop(worker)
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)

    def _start(self) -> subprocess.Popen | None:
        """A new worker, once it has imported SymPy (which is not charged to any student)."""
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        worker = subprocess.Popen([sys.executable, "-m", "symgrad.homework.answers", str(self.memory_mb)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, env=env)
        with self._lock:
            self._all.append(worker)
        assert worker.stdout is not None
        _, status = _read_replies(worker.stdout.fileno(), time.monotonic() + STARTUP_SECONDS, self.cancel)
        if status != "done":
            self._retire(worker)
            return None
        return worker

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for worker in workers:
            _stop(worker)

    def __enter__(self) -> AnswerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_replies(fd: int, deadline: float,
                  cancel: threading.Event | None = None) -> tuple[list[dict[str, Any]], str]:
    replies: list[dict[str, Any]] = []
    buffer = b""
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if cancel is not None and cancel.is_set():
                return replies, "cancelled"
            if not sel.select(timeout=min(left, 0.1)):
                continue
            data = os.read(fd, 1 << 16)
            if not data:
                return replies, "failed"
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    reply = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(reply, dict):
                    continue
                if reply.get("done") or reply.get("ready"):
                    return replies, "done"
                replies.append(reply)
    return replies, "timeout"


if __name__ == "__main__":
    main()
