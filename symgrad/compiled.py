"""Generated code, compiled: :class:`Compiled`, the keyword-only entry points in front of it.

:mod:`symgrad.codegen` writes the module text; this module runs it.  It
registers the text in :mod:`linecache` (:func:`load_module`), so tracebacks
and :func:`inspect.getsource` show the generated lines, and puts keyword-only
entry points with input checks in front of the generated functions: a graph of
scalars takes Python and NumPy floats straight to a body written for floats
(:func:`symgrad.scalar.scalar_body`) and arrays to the NumPy body, each
temporary read once written into the line that reads it (:mod:`symgrad.temporaries`).
"""

from __future__ import annotations

import functools
import hashlib
import linecache
import math
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from . import numba_backend
from .codegen import (
    SUM_EACH,
    SUM_TO,
    _batchable,
    _Function,
    _functions,
    _indent,
    _module_text,
    batch_blind,
    graph_dims,
    program_imports,
)
from .collector import collector_paused
from .dims import check_values, concrete, declared
from .errors import EvaluationError, InputError, ShapeError, UnsupportedError
from .graph import Graph
from .printing import import_namespace
from .program import build_program
from .scalar import FALLBACK, scalar_body
from .scalar import NAMESPACE as SCALAR_NAMESPACE
from .temporaries import inline_temporaries
from .values import as_array, check_inputs, check_labels, coerce, label_classes


class _Missing:
    def __repr__(self) -> str:
        return "<required>"


_MISSING = _Missing()
_NUMERIC_ERRORS = (ZeroDivisionError, OverflowError)

INLINE_CHECKS = 32  # inputs checked inline by the entry points; more go through _floats
NUMBA_MOST = 2**15  # entries of an array input up to which backend="numba" runs Numba's array lines
APART_LINES = 5000  # a longer body: functions of its own for floats and arrays, compiled when first called
BACKENDS = ("numpy", "numba")  # what runs the generated lines on arrays; see Graph.compile
KEYWORD_PARAMS = 128  # inputs the entry points take as parameters; more are read from **_unknown


def _floats(values: tuple[Any, ...]) -> bool:
    """All Python or NumPy floats, adding up to a finite number."""
    return all(v.__class__ is float or v.__class__ is np.float64 for v in values) and \
        math.isfinite(math.fsum(values))


ENTRY_DOCS = {
    "value": "The output at the given inputs.",
    "forward": "(output, cache): the output and the forward values backward reads.",
    "value_and_grad": "(output, {input: gradient}) at the given inputs.",
}


Table = tuple[tuple[str, tuple[Any, ...], Any], ...]  # (name, shape, classes) per input: dims.check_values


def _as_checked_test(table: Table) -> str | None:
    """A test that holds only where every input is already as ``_arguments`` makes it and passes
    its checks (:meth:`Compiled._as_checked`): each array of its declared shape (named dimensions
    the same size wherever they appear), float64 or int64 labels within their classes, each
    number a finite float.  None where an input is a label number (those are converted first)
    or labels pick from a dimension no earlier input has.

    ``table``: (name, shape, classes) per input, as :func:`symgrad.dims.check_values` reads it.
    """
    each: list[str] = []
    first: dict[str, str] = {}  # each named dimension: where it is first seen
    for name, shape, classes in table:
        if shape == ():
            if classes is not None:
                return None
            each.append(f"{name}.__class__ is _float and {name} - {name} == 0.0")  # false for inf, nan
            continue
        tests = [f"{name}.__class__ is _ndarray", f"{name}.dtype is {'_f8' if classes is None else '_i8'}"]
        if all(isinstance(n, int) for n in shape):
            tests.append(f"{name}.shape == {shape!r}")
        else:
            tests.append(f"len({name}.shape) == {len(shape)}")
            for axis, n in enumerate(shape):
                size = f"{name}.shape[{axis}]"
                want = first.setdefault(n, size) if isinstance(n, str) else str(n)
                if want != size:
                    tests.append(f"{size} == {want}")
        if classes is not None:
            count = first.get(classes) if isinstance(classes, str) else classes
            if count is None:
                return None
            within = f"{name}.min() >= 0" + (f" and {name}.max() < {count}" if count != 0 else "")
            empty = not all(isinstance(n, int) for n in shape) or math.prod(shape) == 0
            tests.append(f"({name}.size == 0 or {within})" if empty else within)
        each.append(" and ".join(tests))
    return "\n            and ".join(each)


def _entry_source(functions: dict[str, _Function], inputs: tuple[str, ...], fast: bool,
                  names: Iterable[str] = ("unchecked_value", *ENTRY_DOCS), table: Table | None = None,
                  beside: bool = True) -> str:
    """Keyword-only versions of value, forward and value_and_grad that check their inputs first
    (those of ``names``), and ``unchecked_value``, the output with no checks.

    The bodies are the generated ones; for arrays, each temporary one later line reads is
    written into that line (:func:`symgrad.temporaries.inline_temporaries`), so NumPy can
    reuse its buffer.  With ``fast`` (a graph of scalars),
    Python and NumPy floats that add up to a finite number go straight
    through, to the body rewritten for floats (:func:`symgrad.scalar.scalar_body`),
    as do inputs that ``_arguments`` (which checks and converts anything else)
    turns into floats; arrays take the NumPy body, as does a point where the
    float body raises one of :data:`symgrad.scalar.FALLBACK`.  A body of more
    than :data:`APART_LINES` lines is called instead, as ``_floats_value_and_grad``
    and ``_arrays_value_and_grad`` (:func:`_body_source`); so is the NumPy body of a
    graph of scalars, and with ``table`` (a graph of arrays: its inputs as
    :func:`symgrad.dims.check_values` reads them) that of a graph of arrays, whose
    entries are read only where the output is not finite (``_finite_shown``,
    :meth:`Compiled._finite_shown`).  With ``table``, inputs already as the checks
    make them pass one inline test (:func:`_as_checked_test`), not ``_arguments``.  Without
    ``beside``, the array bodies are left to the namespace (another backend's).
    """
    args = ", ".join(inputs)
    signature = ", ".join(["*", *(f"{n}=_MISSING" for n in inputs), "**_unknown"][not inputs:])
    binding: list[str] = []
    if len(inputs) > KEYWORD_PARAMS:  # Python binds keywords to parameters in quadratic time
        signature = "**_unknown"
        binding = ["    _pop = _unknown.pop", *(f"    {n} = _pop({n!r}, _MISSING)" for n in inputs)]
    targets = (f"{args}{',' if len(inputs) == 1 else ''} = " if inputs else "")
    check = f"{targets}_arguments(_unknown{', ' if inputs else ''}{args})"
    if fast and 0 < len(inputs) <= INLINE_CHECKS:
        floats = [f"({n}.__class__ is _float or {n}.__class__ is _float64)" for n in inputs]
        floats.append(f"0.0 * ({' + '.join(inputs)}) == 0.0")  # false for inf and nan
        test = "".join(f"\n            and {c}" if i else c for i, c in enumerate(floats))
        head = [f"    _scalar = not _unknown and ({test})"]
    elif fast and inputs:  # too many for one expression: Python's compiler recurses into long sums
        head = [f"    _scalar = not _unknown and _floats(({args},))"]
    else:
        inline = _as_checked_test(table) if table is not None and len(inputs) <= INLINE_CHECKS else None
        head = [f"    if _unknown or not ({inline}):", f"        {check}"] if inline else [f"    {check}"]
    if fast and inputs:
        every = " and ".join(f"{n}.__class__ is _float" for n in inputs) if len(inputs) <= INLINE_CHECKS \
            else f"_all_floats(({args},))"
        head += ["    if not _scalar:", f"        {check}", f"        _scalar = {every}"]
    text = [f"def unchecked_value({args}):",
            '    """The output, with no check of the inputs (complex steps pass)."""',
            *_indent(functions["value"].body), "", ""] if "unchecked_value" in names else []
    bodies: list[str] = []
    for name, doc in ENTRY_DOCS.items():
        if name not in names:
            continue
        apart = len(functions[name].body) > APART_LINES
        scalar: list[str] = []
        if fast and inputs:
            floats = [f"return _floats_{name}({args})"] if apart else \
                scalar_body(functions[name].floats or functions[name].body)
            scalar = ["    if _scalar:  # every input a float: the lines for floats", "        try:",
                      *_indent(_indent(_indent(floats))),
                      "        except _FALLBACK:  # a value math refuses: NumPy's answer, as for arrays",
                      "            pass"]
        if (fast or table is not None) and inputs:
            arrays = [f"return _finite_shown(_arrays_{name}({args}), ({args},), {name != 'value'})"]
            if table is not None and not apart and beside:  # beside its entry, compiled with it
                bodies.append(_body_source(functions, inputs, name, False))
        elif apart:
            arrays = [f"return _arrays_{name}({args})"]
        else:  # the generated lines, with temporaries read once written into their readers
            arrays = inline_temporaries(functions[name].body)
        text += [f"def {name}({signature}):", f'    """{doc}"""', *binding, *head, *scalar, "    try:",
                 *_indent(_indent(arrays)),
                 "    except _NUMERIC_ERRORS as e:", "        raise _evaluation_error(e) from None", "", ""]
    return "\n".join(text + bodies)


def _body_source(functions: dict[str, _Function], inputs: tuple[str, ...], name: str, floats: bool) -> str:
    """``_floats_<name>`` or ``_arrays_<name>``: the body of a long entry point, for floats
    (:func:`symgrad.scalar.scalar_body`) or for arrays (:func:`symgrad.temporaries.inline_temporaries`),
    in a function of its own."""
    function = functions[name]
    body = scalar_body(function.floats or function.body) if floats else inline_temporaries(function.body)
    return "\n".join([f"def _{'floats' if floats else 'arrays'}_{name}({', '.join(inputs)}):",
                      *_indent(body), ""])


def _summand_of_points(graph: Graph) -> Graph | None:
    """For a graph of arrays whose output is the sum or the mean over every axis of a node
    that elementwise ops compute from float inputs: that node as the output of a graph of
    scalars, whose batch of points the arrays are.  None for any other graph."""
    out = graph.nx.nodes[graph.output]
    if out["op"] not in ("sum", "mean"):
        return None
    operand, axes, keepdims = out["operands"]
    ndim = len(graph.shape(operand))
    if keepdims or {a % ndim for a in axes} not in (set(), set(range(ndim))):
        return None
    nodes = [n for n in graph.nodes if n != graph.output]
    if not all(graph.elementwise(n) for n in nodes) or any(
            graph.nx.nodes[n]["dtype"] != "float" or (graph.nx.nodes[n]["kind"] == "const" and graph.shape(n))
            for n in nodes):
        return None
    g = graph.nx.copy()
    g.remove_node(graph.output)
    for n in nodes:
        g.nodes[n]["shape"] = ()
    return Graph(g, operand, graph.inputs, graph.granularity, graph.source)


class _OnFirstCall:
    """A function made (compiled) the first time it is called."""

    def __init__(self, make: Callable[[], Callable[..., Any]]):
        self.make = make
        self.function: Callable[..., Any] | None = None

    def __call__(self, *args: Any) -> Any:
        if self.function is None:  # threads calling at once may each make it: the same function
            self.function = self.make()
        return self.function(*args)


def _all_floats(values: tuple[Any, ...]) -> bool:
    """All Python floats (what ``_arguments`` makes of scalars)."""
    return all(v.__class__ is float for v in values)


def load_module(source: str, kind: str, namespace: dict[str, Any]) -> types.ModuleType:
    """Run ``source`` as a module whose lines tracebacks and ``inspect`` can show."""
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<symgrad-{kind}-{digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(f"symgrad_{kind}_{digest}")
    module.__file__ = filename
    module.__dict__.update(namespace)
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


# what a batch value_and_grad calls to sum its gradients, the generated module's own helper
_SUM_EACH = load_module(f"import numpy as np\n\n\n{SUM_TO}\n\n{SUM_EACH}", "helpers", {})._sum_each


class Compiled:
    """A graph's generated NumPy code, compiled: value, gradients, forward and backward.

    Calling conventions (inputs by name, as in :meth:`symgrad.Graph.backprop`):

    - ``f(**inputs)``: the output's value
    - ``f.value_and_grad(**inputs)``: ``(value, {input: gradient})``, the
      gradient of the value's sum (``dout = 1``)
    - ``f.forward(**inputs)``: ``(value, cache)``; ``f.backward(dout, cache)``:
      ``{input: gradient}`` of ``sum(dout * value)``, reading the cached
      forward values instead of recomputing them
    - ``f.source``: the generated module text (what :func:`codegen` writes);
      ``f.module``: that module, whose functions take positional arguments
      and skip the input checks
    - ``f.backend``: what runs the array lines, ``"numpy"`` or ``"numba"``
      (:mod:`symgrad.numba_backend`)

    >>> import symgrad as sg
    >>> f = sg.graph("(x + y) * z").compile()
    >>> f(x=-2, y=5, z=-4)
    -12.0
    >>> value, grads = f.value_and_grad(x=-2.0, y=5.0, z=-4.0)
    >>> float(value), {k: float(v) for k, v in grads.items()}
    (-12.0, {'x': -4.0, 'y': -4.0, 'z': 3.0})
    >>> out, cache = f.forward(x=-2, y=5, z=-4)
    >>> {k: float(v) for k, v in f.backward(2.0, cache).items()}
    {'x': -8.0, 'y': -8.0, 'z': 6.0}
    """

    def __init__(self, graph: Graph, wrt: Iterable[str] | None = None, backend: str = "numpy"):
        if backend not in BACKENDS:
            raise UnsupportedError(f"backend={backend!r} is not one symgrad has: "
                                   f"{', '.join(map(repr, BACKENDS))}")
        if backend == "numba":
            numba_backend.numba()  # an UnsupportedError naming the extra if Numba is missing
        self.backend = backend
        with collector_paused():
            self._build(graph, wrt)

    def _build(self, graph: Graph, wrt: Iterable[str] | None) -> None:
        self.graph = graph
        self.program = build_program(graph, wrt)
        self.wrt: tuple[str, ...] = self.program.wrt
        self.batchable = _batchable(graph)
        # a batch the output does not read (x + 0*y) runs the NumPy lines, which spread the output
        # over it, with either backend
        self._numba = self.backend == "numba" and not (self.batchable and batch_blind(self.program))
        self._scalar_out = self.batchable or graph.shape(graph.output) == ()
        classes = label_classes(graph)
        labels = set(graph.labels)
        self._declared = tuple((graph.shape(n), classes.get(n, 0) if n in labels else None)
                               for n in graph.inputs)
        self._table: Table = tuple((n, declared(shape), c)
                                   for n, (shape, c) in zip(graph.inputs, self._declared))
        self._functions = _functions(self.program, split=False)  # each compiled on first use
        namespace = import_namespace(program_imports(self.program))  # a named error if one fails
        self._namespace = {
            **namespace, "_sum_each": _SUM_EACH, "_MISSING": _MISSING,
            "_float": float, "_float64": np.float64, "_ndarray": np.ndarray,
            "_f8": np.dtype(np.float64), "_i8": np.dtype(np.int64),
            "_floats": _floats, "_NUMERIC_ERRORS": _NUMERIC_ERRORS,
            "_evaluation_error": self._evaluation_error, "_arguments": self._arguments,
            "_all_floats": _all_floats, "_FALLBACK": FALLBACK, **SCALAR_NAMESPACE,
        }
        self._files: set[str] = set()  # the generated files loaded so far, for _evaluation_error
        self._namespace["_finite_shown"] = self._finite_shown
        for name in self._functions:
            self._bodies_apart(name)

    # Each generated function is compiled the first time it is used, and forward, backward and
    # the module's text are written then too: a program of 10^5 nodes spends seconds on each,
    # and most uses call one or two of them.

    @functools.cached_property
    def _split(self) -> dict[str, _Function]:
        """The generated forward and backward, written on first use."""
        with collector_paused():
            functions = _functions(self.program, together=False)
        self._bodies_apart("forward", functions)
        return functions

    @functools.cached_property
    def source(self) -> str:
        """The generated module's text (what :func:`symgrad.codegen` writes), written on first use."""
        with collector_paused():
            return _module_text(self.program, {**self._split, **self._functions})

    @functools.cached_property
    def _cached_dims(self) -> dict[str, int]:
        """The position in forward's cache of each named dimension backward reads."""
        cache = self._split["forward"].cache
        return {d: cache.index(d) for d in graph_dims(self.graph) if d in cache}

    def _bodies_apart(self, name: str, functions: dict[str, _Function] | None = None) -> None:
        """For a long body or a batch: ``_floats_<name>`` and ``_arrays_<name>``, functions of
        their own that entry points call, each made on its first call."""
        functions = self._functions if functions is None else functions
        apart = len(functions[name].body) > APART_LINES
        for floats in (True, False) if apart else (False,) if self.batchable and self.graph.inputs else ():
            self._namespace[f"_{'floats' if floats else 'arrays'}_{name}"] = \
                _OnFirstCall(functools.partial(self._body, name, floats))
        if self._numba and self.graph.inputs:
            jitted = self._sized(name, _OnFirstCall(functools.partial(self._jitted, name)))
            # a graph of scalars has elementwise ops only (symgrad.codegen._batchable)
            loop = None if name == "forward" else self._elementwise if self.batchable else self._summed
            self._namespace[f"_arrays_{name}"] = jitted if loop is None else \
                _OnFirstCall(functools.partial(loop, name, jitted))

    @functools.cached_property
    def module(self) -> types.ModuleType:
        """The generated module (:attr:`source`), compiled on first use."""
        with collector_paused():
            module = load_module(self.source, "code", {})
        self._files.add(module.__file__)  # type: ignore[arg-type]
        return module

    def _entry(self, name: str) -> Callable[..., Any]:
        """The entry point ``name`` compiled (see :func:`_entry_source`)."""
        functions = self._split if name == "forward" else self._functions
        table = self._table if not self.batchable else None
        with collector_paused():  # writing and compiling 10^5 lines makes objects, but no cycles
            text = _entry_source(functions, self.graph.inputs, self.batchable, (name,), table,
                                 beside=not self._numba)
            entries = load_module(text, "entry", self._namespace)
        self._files.add(entries.__file__)  # type: ignore[arg-type]
        return getattr(entries, name)  # type: ignore[no-any-return]

    def _body(self, name: str, floats: bool) -> Callable[..., Any]:
        """The body of the long entry point ``name``, for floats or arrays, compiled."""
        functions = self._split if name == "forward" else self._functions
        with collector_paused():
            text = _body_source(functions, self.graph.inputs, name, floats)
            module = load_module(text, "body", self._namespace)
        self._files.add(module.__file__)  # type: ignore[arg-type]
        return getattr(module, f"_{'floats' if floats else 'arrays'}_{name}")  # type: ignore[no-any-return]

    def _jitted(self, name: str) -> Callable[..., Any]:
        """The array body of the entry point ``name`` compiled by Numba (:mod:`symgrad.numba_backend`)."""
        function = (self._split if name == "forward" else self._functions)[name]
        body = inline_temporaries(function.body)  # Numba fuses the operations of one line into one loop
        text = numba_backend.body_source(name, ", ".join(self.graph.inputs), body)
        module = load_module(text, "numba", {**self._namespace, **numba_backend.namespace()})
        self._files.add(module.__file__)  # type: ignore[arg-type]
        return numba_backend.jit(module, name)

    def _sized(self, name: str, jitted: Callable[..., Any]) -> Callable[..., Any]:
        """``jitted``, but where an array input has more than :data:`NUMBA_MOST` entries, the
        NumPy lines (compiled on first use): the time is then the arrays', not the calls', and
        NumPy's loops over broadcast shapes run in SIMD where Numba's do not."""
        numpy_lines = _OnFirstCall(functools.partial(self._body, name, False))

        def sized(*values: Any) -> Any:
            for v in values:
                if v.__class__ is np.ndarray and v.size > NUMBA_MOST:
                    return numpy_lines(*values)
            return jitted(*values)

        return sized

    def _elementwise(self, name: str, jitted: Callable[..., Any]) -> Callable[..., Any]:
        """For a graph of elementwise ops on scalars, given a batch: the lines for floats in one
        loop over its points, compiled by Numba (:func:`symgrad.numba_backend.elementwise`),
        else ``jitted``."""
        function = self._functions[name]
        with collector_paused():
            lines = scalar_body(function.floats or function.body)
        made = numba_backend.elementwise(name, self.graph.inputs, lines, self._namespace, jitted, _SUM_EACH)
        return jitted if made is None else made

    @functools.cached_property
    def _summand(self) -> Compiled | None:
        """The summand of :func:`_summand_of_points` compiled for Numba (its program derived
        once, for value and value_and_grad both), or None."""
        with collector_paused():
            summand = _summand_of_points(self.graph)
            return None if summand is None else Compiled(summand, self.wrt, backend="numba")

    def _summed(self, name: str, jitted: Callable[..., Any]) -> Callable[..., Any]:
        """For the sum or mean of an elementwise graph of arrays (:func:`_summand_of_points`):
        the loop over the points of the summand, a graph of scalars, then NumPy's sum or mean
        of its values (the gradient of the sum is the summand's gradient at each point, the
        mean's that over the number of points); else ``jitted``.  Where the loop hands its
        inputs to ``jitted`` (all floats, or lines Numba refused), what comes back is not an
        array of points but the output already."""
        summand = self._summand
        loop = jitted if summand is None else summand._elementwise(name, jitted)
        if loop is jitted:
            return jitted
        mean = self.graph.nx.nodes[self.graph.output]["op"] == "mean"
        reduce = np.mean if mean else np.sum

        def summed_value(*values: Any) -> Any:
            value = loop(*values)
            return reduce(value) if value.__class__ is np.ndarray else value

        def summed(*values: Any) -> tuple[Any, dict[str, Any]]:
            value, grads = loop(*values)
            if value.__class__ is not np.ndarray:
                return value, grads
            if mean:
                grads = {k: g / value.size for k, g in grads.items()}
            return reduce(value), grads

        return summed_value if name == "value" else summed

    @functools.cached_property
    def value_and_grad(self) -> Callable[..., tuple[Any, dict[str, Any]]]:
        """``value_and_grad(**inputs)``: ``(value, {input: gradient})``, the gradient of the value's sum."""
        return self._entry("value_and_grad")

    @functools.cached_property
    def forward(self) -> Callable[..., tuple[Any, Any]]:
        """``forward(**inputs)``: ``(value, cache)``, the cache for :meth:`backward`."""
        return self._entry("forward")

    @functools.cached_property
    def _value(self) -> Callable[..., Any]:
        return self._entry("value")

    @functools.cached_property
    def _unchecked_value(self) -> Callable[..., Any]:
        return self._entry("unchecked_value")

    def __call__(self, *args: Any, **inputs: Any) -> Any:
        """The output's value at ``inputs``."""
        if args:
            what = "a dict; unpack it: f(**values)" if isinstance(args[0], Mapping) else "f(x=..., y=...)"
            raise InputError(f"a compiled function takes its inputs by name, not positionally: {what}")
        return self._value(**inputs)

    def backward(self, dout: Any, cache: Any) -> dict[str, Any]:
        """``{input: gradient}`` of ``sum(dout * value)``, from ``cache`` as :meth:`forward` returned it."""
        if (dout.__class__ is not float and dout.__class__ is not np.float64) or not self._scalar_out:
            dout = as_array("dout", dout)
            out_shape = self.graph.shape(self.graph.output)
            if self._cached_dims:
                try:
                    known = {d: int(cache[i]) for d, i in self._cached_dims.items()}
                except (TypeError, IndexError, ValueError):
                    raise InputError("cache is not one that forward(...) returned") from None
                out_shape = concrete(out_shape, known)
            if dout.ndim == 0:
                dout = float(dout) if out_shape == () else np.full(out_shape, float(dout))
            elif not self.batchable and dout.shape != out_shape:
                raise ShapeError(f"dout has shape {dout.shape}, but the output has shape {out_shape}")
        elif not math.isfinite(dout):
            raise InputError(f"value of 'dout' is not finite: {dout!r}")
        if not isinstance(cache, tuple):
            raise InputError(f"cache must be what forward(...) returned second, not {type(cache).__name__}")
        try:
            return self.module.backward(dout, cache)
        except _NUMERIC_ERRORS as e:
            raise self._evaluation_error(e) from None

    def _arguments(self, unknown: dict[str, Any], *values: Any) -> tuple[Any, ...]:
        """The inputs checked: named, numeric, finite and shaped as the graph allows."""
        if not unknown and (self._batch_as_checked(values) if self.batchable else self._as_checked(values)):
            return values
        names = self.graph.inputs
        given = {n: v for n, v in zip(names, values) if v is not _MISSING}
        given.update(unknown)
        if not self.batchable:
            dtypes = {n: self.graph.nx.nodes[n]["dtype"] for n in names}
            arrays = coerce(names, {n: self.graph.shape(n) for n in names}, given, dtypes)
            check_labels(self.graph, arrays)
            return tuple(float(a) if a.ndim == 0 else a for a in arrays.values())
        check_inputs(names, given)
        arrays = {n: as_array(n, given[n]) for n in names}
        try:
            np.broadcast_shapes(*(a.shape for a in arrays.values()))
        except ValueError:
            shown = ", ".join(f"{n} {a.shape}" for n, a in arrays.items() if a.ndim)
            raise ShapeError(f"input shapes do not broadcast together: {shown}") from None
        return tuple(float(a) if a.ndim == 0 else a for a in arrays.values())

    def _as_checked(self, values: tuple[Any, ...]) -> bool:
        """Every input already as the checks make it: a float64 array (a finite float for a
        scalar), or int64 labels; then shapes, named dimensions and label ranges checked as the
        generated module checks them (a ShapeError or InputError).  The arrays' entries are not
        read here: the entry points look for one that is not finite only where the output is
        not finite (:meth:`_finite_shown`)."""
        for v, (shape, classes) in zip(values, self._declared):
            if v.__class__ is float and shape == () and classes is None:
                if not math.isfinite(v):
                    return False
            elif v.__class__ is not np.ndarray or shape == ():
                return False
            elif classes is None:
                if v.dtype != np.float64:
                    return False
            elif v.dtype != np.int64:
                return False
        check_values(values, self._table)
        return True

    @staticmethod
    def _batch_as_checked(values: tuple[Any, ...]) -> bool:
        """Every input of a graph of scalars a finite float or a float64 array of one or more
        dimensions (its entries not read: :meth:`_finite_shown` does that where the output is
        not finite), the shapes broadcasting together.  A 0-d array is made a float first."""
        for v in values:
            if v.__class__ is float:
                if not math.isfinite(v):
                    return False
            elif v.__class__ is not np.ndarray or v.dtype != np.float64 or not v.ndim:
                return False
        try:
            np.broadcast_shapes(*(np.shape(v) for v in values))
        except ValueError:
            return False
        return True

    def _finite_shown(self, result: Any, values: tuple[Any, ...], pair: bool) -> Any:
        """``result``, after a test of its output: where that is not finite, an input array that
        is not finite is refused by name (an InputError); otherwise the output is NumPy's."""
        out = result[0] if pair else result
        if not (math.isfinite(out) if isinstance(out, float) else np.isfinite(out).all()):
            for n, v in zip(self.graph.inputs, values):
                if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all():
                    raise InputError(f"value of {n!r} is not finite: {v!r}")
        return result

    def _evaluation_error(self, e: BaseException) -> EvaluationError:
        """An EvaluationError naming the generated line where Python's float arithmetic failed."""
        line, tb = None, e.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename in self._files:
                line = linecache.getline(filename, tb.tb_lineno).strip()
            tb = tb.tb_next
        return EvaluationError(f"cannot evaluate {line or 'the generated code'}: {e}")

    def __repr__(self) -> str:
        what = self.graph.source or self.graph.output
        backend = f"; backend {self.backend}" if self.backend != "numpy" else ""
        return (f"<Compiled {what!r}: inputs {', '.join(self.graph.inputs) or 'none'}; "
                f"gradients {', '.join(self.wrt) or 'none'}{backend}>")


class _SourceDoc:
    """The class's docstring, read on the class; read on a compiled function, the generated
    source (written then, on first use), which ``help(f)`` shows."""

    def __init__(self, doc: str | None):
        self.doc = doc

    def __get__(self, obj: Compiled | None, cls: type | None = None) -> str | None:
        return self.doc if obj is None else f"Compiled gradient code; the generated source:\n\n{obj.source}"


Compiled.__doc__ = _SourceDoc(Compiled.__doc__)  # type: ignore[assignment]


def compile_graph(graph: Graph, wrt: Iterable[str] | None = None, backend: str = "numpy") -> Compiled:
    """Generate and compile NumPy code for ``graph``; see :meth:`symgrad.Graph.compile`."""
    return Compiled(graph, wrt, backend)
