"""The assignment spec: a TOML file of problems, how to sample their inputs, limits.

A spec looks like this (every key but ``id`` and ``expression`` has a default)::

    [assignment]
    title = "Backprop by hand"
    seed = 0                      # random test points are drawn from this seed
    file = "homework.py"          # where code problems look in a submission folder
    answers = "answers.toml"      # where answer problems look
    dims = { N = 4 }              # named dimensions, usable in every shape

    [limits]                      # per submission and code problem
    wall_seconds = 10
    cpu_seconds = 10
    memory_mb = 1024
    output_kb = 1024
    answer_seconds = 30           # SymPy's time for one problem's answers

    [[problem]]
    id = "circuit"
    kind = "code"                 # "code" or "answer"
    style = "grad"                # code: grad(**inputs) -> {name: gradient}, or
                                  # "layer": forward(**inputs) -> (out, cache) and
                                  #          backward(dout, cache) -> gradients
    function = "circuit_grad"     # style "grad"; "forward"/"backward" for "layer"
    expression = "(x + y) * z"    # symgrad's syntax; the reference
    points = 2
    trials = 3                    # random test points
    rtol = 1e-6
    atol = 1e-9
    wrt = ["x", "y", "z"]         # the gradients asked for (default: every sampled input)
    regularization = "..."        # a term of the expression, for the "missing term" diagnosis
    batch = "N"                   # the dimension that is the batch (sum vs mean diagnosis)
    [problem.inputs]
    x = { range = [-3, 3] }                 # uniform
    W = { shape = [2, 3] }                  # default range [-2, 2]
    X = { shape = ["N", 3] }                # named dimensions
    y = { shape = ["N"], labels = 10 }      # integer labels 0..9 (no gradient)
    lam = { value = 0.1 }                   # a fixed number (no gradient by default)

A problem's points are shared equally by its checks: each gradient asked for,
and the forward output in the layer style (each answer, for answer problems).
A run that fails as a whole (a limit, an exception, modified inputs) scores 0.
"""

from __future__ import annotations

import ast
import re
import sys
import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from ..errors import SymgradError
from ..graph import Graph, graph

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_RANGE = (-2.0, 2.0)
ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


class SpecError(SymgradError):
    """An assignment spec that cannot be used; the message names the problem and key."""


@dataclass(frozen=True)
class Limits:
    """What one student's code may use, per problem, and the time for checking answers."""

    wall_seconds: float = 10.0
    cpu_seconds: float = 10.0
    memory_mb: int = 1024
    output_kb: int = 1024
    answer_seconds: float = 30.0


@dataclass(frozen=True)
class InputSpec:
    """How one input is sampled: uniform in ``range``, integer ``labels``, or a fixed ``value``."""

    name: str
    shape: tuple[int, ...] = ()
    low: float = DEFAULT_RANGE[0]
    high: float = DEFAULT_RANGE[1]
    labels: int | None = None
    value: np.ndarray | None = None

    @property
    def differentiable(self) -> bool:
        return self.labels is None

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """One random value, as a float64 (or int64 for labels) array of ``shape``.

        >>> InputSpec("y", (3,), labels=2).sample(np.random.default_rng(0)).dtype
        dtype('int64')
        """
        if self.value is not None:
            return self.value.copy()
        if self.labels is not None:
            return rng.integers(0, self.labels, size=self.shape).astype(np.int64)
        return rng.uniform(self.low, self.high, size=self.shape)


@dataclass(frozen=True)
class Problem:
    """One problem of the assignment; ``graph`` is the reference expression's graph."""

    id: str
    kind: str
    expression: str
    graph: Graph
    inputs: dict[str, InputSpec]
    wrt: tuple[str, ...]
    title: str = ""
    points: float = 1.0
    trials: int = 3
    rtol: float = 1e-6
    atol: float = 1e-9
    style: str = "grad"
    file: str = "homework.py"
    function: str = "grad"
    forward: str = "forward"
    backward: str = "backward"
    returns: tuple[str, ...] = ()
    regularization: str | None = None
    unregularized: Graph | None = None
    batch: tuple[str, int] | None = None
    credit: str = "gradients"

    @property
    def gates(self) -> tuple[str, ...]:
        """With ``credit = "gates"``: the nodes whose gradient is checked besides the inputs'
        (every op but the output), in the order backpropagation reaches them."""
        if self.credit != "gates":
            return ()
        g = self.graph
        order = [n for n in nx.topological_sort(g.nx) if g.nx.nodes[n].get("kind") == "op" and n != g.output]
        return tuple(reversed(order))

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {n: s.shape for n, s in self.inputs.items()}

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.graph.shape(self.graph.output)

    def sample(self, seed: int) -> list[dict[str, np.ndarray]]:
        """The problem's ``trials`` random test points, the same for every submission."""
        rng = self.rng(seed)
        return [{n: s.sample(rng) for n, s in self.inputs.items()} for _ in range(self.trials)]

    def sample_douts(self, seed: int) -> list[np.ndarray]:
        """Upstream gradients for the layer style: ±[1.5, 3], so that ignoring dout shows."""
        rng = self.rng(seed + 1)
        shape = self.output_shape
        return [rng.uniform(1.5, 3.0, size=shape) * rng.choice([-1.0, 1.0], size=shape)
                for _ in range(self.trials)]

    def rng(self, seed: int) -> np.random.Generator:
        return np.random.default_rng([seed, zlib.crc32(self.id.encode())])


@dataclass(frozen=True)
class Spec:
    """A loaded assignment: its problems, limits and where submissions keep their files."""

    problems: tuple[Problem, ...]
    title: str = "Assignment"
    seed: int = 0
    limits: Limits = field(default_factory=Limits)
    answers_file: str = "answers.toml"
    path: Path | None = None

    @property
    def max_points(self) -> float:
        return sum(p.points for p in self.problems)

    def problem(self, problem_id: str) -> Problem:
        for p in self.problems:
            if p.id == problem_id:
                return p
        raise SpecError(f"no problem {problem_id!r} (problems: {', '.join(p.id for p in self.problems)})")


def load_spec(source: str | Path) -> Spec:
    """Read an assignment spec from a TOML file (a path) or TOML text.

    Parameters
    ----------
    source:
        A path to a ``.toml`` file, or the TOML text itself.

    Returns
    -------
    Spec

    >>> spec = load_spec('''
    ... [[problem]]
    ... id = "circuit"
    ... function = "circuit_grad"
    ... expression = "(x + y) * z"
    ... ''')
    >>> spec.problems[0].wrt, spec.problems[0].style
    (('x', 'y', 'z'), 'grad')
    """
    path: Path | None = None
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source
                                    and source.strip().endswith(".toml")):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise SpecError(f"cannot read spec {str(path)!r}: {e.strerror}") from None
    else:
        text = str(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"spec is not valid TOML: {e}") from None
    return _spec(data, path)


def _spec(data: dict[str, Any], path: Path | None) -> Spec:
    _keys("the spec", data, {"assignment", "limits", "problem"})
    a = _table("[assignment]", data.get("assignment", {}))
    _keys("[assignment]", a, ASSIGNMENT_KEYS)
    limits = _limits(_table("[limits]", data.get("limits", {})))
    dims = _dims("[assignment] dims", a.get("dims", {}))
    raw = data.get("problem", [])
    if not isinstance(raw, list) or not raw:
        raise SpecError("the spec has no problems: add at least one [[problem]] table")
    default_file = _str("[assignment] file", a.get("file", "homework.py"))
    problems = tuple(_problem(_table("[[problem]]", p), dims, default_file) for p in raw)
    ids = [p.id for p in problems]
    for i in ids:
        if ids.count(i) > 1:
            raise SpecError(f"problem id {i!r} is used twice")
    seed = a.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise SpecError(f"[assignment] seed must be a non-negative integer, not {seed!r}")
    return Spec(problems, title=_str("[assignment] title", a.get("title", "Assignment")), seed=seed,
                limits=limits, answers_file=_str("[assignment] answers", a.get("answers", "answers.toml")),
                path=path)


def _problem(p: dict[str, Any], dims: dict[str, int], default_file: str) -> Problem:
    pid = p.get("id")
    if not isinstance(pid, str) or not ID.match(pid):
        raise SpecError(f"every problem needs an id made of letters, digits, _ and -; got {pid!r}")
    where = f"problem {pid!r}"
    _keys(where, p, PROBLEM_KEYS)
    kind = _choice(where, "kind", p.get("kind", "code"), ("code", "answer"))
    style = _choice(where, "style", p.get("style", "grad"), ("grad", "layer"))
    dims = {**dims, **_dims(f"{where}: dims", p.get("dims", {}))}
    expression = p.get("expression")
    if not isinstance(expression, str):
        raise SpecError(f"{where}: expression must be a string in symgrad's syntax, like \"(x + y) * z\"")
    raw_inputs = _table(f"{where}: inputs", p.get("inputs", {}))
    for n, v in raw_inputs.items():
        if n in PROBLEM_KEYS and not isinstance(v, dict):
            raise SpecError(f"{where}: {n} = {_short(v)} is under [problem.inputs], so TOML reads it as an "
                            f"input; {n} is a key of the [[problem]] table: move it above [problem.inputs] "
                            f"(a key belongs to the last [table] header above it)")
    inputs = {n: _input(f"{where}: input {n!r}", n, _table(f"{where}: input {n!r}", v), dims)
              for n, v in raw_inputs.items()}
    g = _graph(f"{where}: expression", expression, inputs)
    for n in g.inputs:
        inputs.setdefault(n, InputSpec(n))
    unused = [n for n in inputs if n not in g.inputs]
    if unused:
        raise SpecError(f"{where}: input {unused[0]!r} does not occur in the expression {expression!r}")
    inputs = {n: inputs[n] for n in g.inputs}
    default_wrt = [n for n, s in inputs.items() if s.differentiable and s.value is None]
    wrt = tuple(_names(f"{where}: wrt", p.get("wrt", default_wrt)))
    for n in wrt:
        if n not in inputs:
            raise SpecError(f"{where}: wrt names {n!r}, which is not an input ({', '.join(inputs)})")
        if not inputs[n].differentiable:
            raise SpecError(f"{where}: wrt names {n!r}, but integer labels have no gradient")
    if not wrt:
        raise SpecError(f"{where}: no gradient is asked for; list the inputs in wrt")
    returns = tuple(_names(f"{where}: returns", p.get("returns", list(wrt))))
    if sorted(returns) != sorted(wrt):
        raise SpecError(f"{where}: returns must list the names in wrt ({', '.join(wrt)}) in some order")
    if kind == "code" and style == "grad" and g.shape(g.output) != ():
        raise SpecError(f"{where}: style \"grad\" needs a scalar expression, but this one has shape "
                        f"{g.shape(g.output)}; use style = \"layer\" (forward/backward with dout)")
    regularization = p.get("regularization")
    unregularized = None
    if regularization is not None:
        regularization = _str(f"{where}: regularization", regularization)
        extra = [n for n in _graph(f"{where}: regularization", regularization, inputs).inputs
                 if n not in inputs]
        if extra:
            raise SpecError(f"{where}: regularization uses {extra[0]!r}, which the expression does not")
        unregularized = _graph(f"{where}: regularization", f"({expression}) - ({regularization})", inputs)
    batch = None
    if "batch" in p:
        name = _str(f"{where}: batch", p["batch"])
        if name not in dims:
            raise SpecError(f"{where}: batch names {name!r}, which is not a dimension in dims")
        batch = (name, dims[name])
    credit = _choice(where, "credit", p.get("credit", "gradients"), ("gradients", "gates"))
    if credit == "gates" and kind != "code":
        raise SpecError(f"{where}: credit = \"gates\" needs a code problem: answers hold no gates' gradients")
    trials = p.get("trials", 5 if kind == "answer" else 3)
    if not isinstance(trials, int) or isinstance(trials, bool) or not 1 <= trials <= 100:
        raise SpecError(f"{where}: trials must be an integer from 1 to 100, not {trials!r}")
    return Problem(
        id=pid, kind=kind, expression=expression, graph=g, inputs=inputs, wrt=wrt,
        title=_str(f"{where}: title", p.get("title", "")),
        points=_number(f"{where}: points", p.get("points", 1.0), low=0.0),
        trials=trials,
        rtol=_number(f"{where}: rtol", p.get("rtol", 1e-6), low=0.0),
        atol=_number(f"{where}: atol", p.get("atol", 1e-9), low=0.0),
        style=style, file=_str(f"{where}: file", p.get("file", default_file)),
        function=_identifier(where, "function", p.get("function", "grad")),
        forward=_identifier(where, "forward", p.get("forward", "forward")),
        backward=_identifier(where, "backward", p.get("backward", "backward")),
        returns=returns, regularization=regularization, unregularized=unregularized, batch=batch,
        credit=credit,
    )


def graph_of(text: str, shapes: Mapping[str, tuple[int, ...]], labels: Collection[str] = ()) -> Graph:
    """The graph of ``text``, given the shapes of the names it uses among ``shapes``.

    ``labels`` names the inputs that hold integer labels.

    >>> graph_of("2*x", {"x": (3,), "y": ()}).inputs
    ('x',)
    """
    try:
        names = {n.id for n in ast.walk(ast.parse(text.strip(), mode="eval")) if isinstance(n, ast.Name)}
    except (SyntaxError, ValueError, RecursionError, MemoryError, AttributeError):
        names = set()  # the parser gives the error
    return graph(text, shapes={n: s for n, s in shapes.items() if n in names},
                 dtypes={n: int for n in labels if n in names})


def _graph(where: str, text: str, inputs: Mapping[str, InputSpec]) -> Graph:
    try:
        return graph_of(text, {n: s.shape for n, s in inputs.items()},
                        [n for n, s in inputs.items() if s.labels is not None])
    except SymgradError as e:
        raise SpecError(f"{where}: {e}") from None


def _input(where: str, name: str, v: dict[str, Any], dims: dict[str, int]) -> InputSpec:
    _keys(where, v, {"shape", "range", "labels", "value"})
    if sum(k in v for k in ("range", "labels", "value")) > 1:
        raise SpecError(f"{where}: give one of range, labels and value")
    shape = _shape(where, v.get("shape", []), dims)
    if "labels" in v:
        k = v["labels"]
        if not isinstance(k, int) or isinstance(k, bool) or k < 2:
            raise SpecError(f"{where}: labels is the number of classes, an integer >= 2, not {k!r}")
        return InputSpec(name, shape, labels=k)
    if "value" in v:
        try:
            value = np.asarray(v["value"], dtype=float)
        except (TypeError, ValueError):
            raise SpecError(f"{where}: value must be a number or nested lists of numbers") from None
        if "shape" in v and value.shape != shape:
            raise SpecError(f"{where}: value has shape {value.shape}, but shape says {shape}")
        return InputSpec(name, value.shape, value=value)
    low, high = v.get("range", DEFAULT_RANGE)
    low, high = _number(f"{where}: range", low), _number(f"{where}: range", high)
    if not low < high:
        raise SpecError(f"{where}: range must be [low, high] with low < high, not [{low}, {high}]")
    return InputSpec(name, shape, low=low, high=high)


def _shape(where: str, raw: Any, dims: dict[str, int]) -> tuple[int, ...]:
    if not isinstance(raw, list):
        raise SpecError(f"{where}: shape must be a list like [2, 3] or [\"N\", 3], not {raw!r}")
    shape = []
    for d in raw:
        if isinstance(d, str):
            if d not in dims:
                raise SpecError(f"{where}: shape uses dimension {d!r}, which dims does not define")
            d = dims[d]
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise SpecError(f"{where}: shape entries must be positive integers, not {d!r}")
        shape.append(d)
    return tuple(shape)


def _dims(where: str, raw: Any) -> dict[str, int]:
    table = _table(where, raw)
    for k, d in table.items():
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            raise SpecError(f"{where}: dimension {k!r} must be a positive integer, not {d!r}")
    return dict(table)


def _limits(t: dict[str, Any]) -> Limits:
    _keys("[limits]", t, LIMITS_KEYS)
    d = Limits()
    return Limits(
        wall_seconds=_number("[limits] wall_seconds", t.get("wall_seconds", d.wall_seconds), low=0.1),
        cpu_seconds=_number("[limits] cpu_seconds", t.get("cpu_seconds", d.cpu_seconds), low=0.1),
        memory_mb=int(_number("[limits] memory_mb", t.get("memory_mb", d.memory_mb), low=64)),
        output_kb=int(_number("[limits] output_kb", t.get("output_kb", d.output_kb), low=1)),
        answer_seconds=_number("[limits] answer_seconds", t.get("answer_seconds", d.answer_seconds), low=0.1),
    )


def _table(where: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise SpecError(f"{where} must be a table, not {type(v).__name__}")
    return v


ASSIGNMENT_KEYS = frozenset({"title", "seed", "file", "answers", "dims"})
LIMITS_KEYS = frozenset({"wall_seconds", "cpu_seconds", "memory_mb", "output_kb", "answer_seconds"})
PROBLEM_KEYS = frozenset({"id", "title", "kind", "expression", "points", "trials", "rtol", "atol", "wrt",
                          "style", "file", "function", "forward", "backward", "returns", "regularization",
                          "batch", "dims", "inputs", "credit"})
INPUT_KEYS = frozenset({"shape", "range", "labels", "value"})
TABLES = (("[assignment]", ASSIGNMENT_KEYS), ("[limits]", LIMITS_KEYS), ("[[problem]]", PROBLEM_KEYS))


def _keys(where: str, t: Mapping[str, Any], allowed: Collection[str]) -> None:
    unknown = sorted(set(t) - set(allowed))
    if not unknown:
        return
    key = unknown[0]
    home = next((table for table, keys in TABLES if key in keys), None)
    if home is not None:
        raise SpecError(f"{where}: {key} is a key of the {home} table, not of this one: move it under "
                        f"{home} (a key belongs to the last [table] header above it)")
    value = t[key]
    if where.startswith("problem ") and isinstance(value, dict) and value and set(value) <= INPUT_KEYS:
        raise SpecError(f"{where}: unknown key {key!r}; an input's sampling? put it under [problem.inputs]")
    raise SpecError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(allowed))})")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _str(where: str, v: Any) -> str:
    if not isinstance(v, str):
        raise SpecError(f"{where} must be a string, not {v!r}")
    return v


def _identifier(where: str, key: str, v: Any) -> str:
    if not isinstance(v, str) or not v.isidentifier():
        raise SpecError(f"{where}: {key} must be a Python function name, not {v!r}")
    return v


def _names(where: str, v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(n, str) for n in v):
        raise SpecError(f"{where} must be a list of input names")
    return list(v)


def _number(where: str, v: Any, low: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise SpecError(f"{where} must be a number, not {v!r}")
    if low is not None and v < low:
        raise SpecError(f"{where} must be at least {low}, not {v!r}")
    return float(v)


def _choice(where: str, key: str, v: Any, choices: tuple[str, ...]) -> str:
    if v not in choices:
        raise SpecError(f"{where}: {key} must be one of {', '.join(map(repr, choices))}, not {v!r}")
    return str(v)
