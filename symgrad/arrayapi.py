"""Array-API code: one generated module for every array library of the standard.

``g.compile(xp=...)`` and ``sg.codegen(g, path, xp=True)`` generate the same
forward, backward and value_and_grad as the NumPy code (:mod:`symgrad.codegen`),
spelled in the Python array API standard: every function takes the array
library as its last parameter, ``xp``, and without it asks ``array_api_compat``
for the inputs' own (NumPy, CuPy, PyTorch, JAX, Dask, ``array_api_strict``).
Ops print as the op table declares for the standard (the row's ``xp``
spelling), else as their NumPy spelling with ``xp.`` for ``np.``
(:class:`symgrad.printing.ArrayAPIPrinter`); a spelling that calls a function
outside the standard is an UnsupportedError naming the node.

The module imports nothing at its top: ``array_api_compat`` only when no
``xp`` is passed.  Inputs of a graph of scalars may be arrays of broadcastable
shapes, as in the NumPy code; each gradient is summed back to its input's
shape by the module's ``_sum_to``.  Arrays made from numbers (``xp.full``,
``xp.zeros``, ``xp.eye``) take the float type of the inputs, ``_float``
(:data:`symgrad.printing.XP_FLOAT`; ``dout``'s in ``backward``), not the
library's default (float32 in PyTorch); JAX needs ``jax_enable_x64`` for
float64 at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import sympy as sp

from .codegen import (
    BACKWARD_ALIAS,
    _adjoint_lines,
    _batchable,
    _code,
    _fresh,
    _Function,
    _header,
    _indent,
    _number,
    _own,
    _reading,
    _returns,
    _shapes,
    _spread,
    batch_blind,
    graph_dims,
)
from .compiled import load_module
from .dims import named
from .errors import InputError, UnsupportedError
from .graph import Graph
from .printing import XP_FLOAT
from .program import Program, build_program
from .values import check_inputs, check_labels, coerce

# The functions and constants of the Python array API standard (2023.12) the printers may use.
STANDARD = frozenset("""
    abs acos acosh asin asinh atan atan2 atanh ceil clip cos cosh exp expm1 floor hypot isfinite isnan
    log log1p log2 log10 logaddexp maximum minimum pow round sign sin sinh sqrt square tan tanh trunc
    sum prod mean max min std var cumulative_sum matmul matrix_transpose tensordot vecdot
    permute_dims reshape expand_dims broadcast_to broadcast_arrays concat stack squeeze flip roll
    moveaxis take take_along_axis where argmax argmin asarray arange eye full full_like ones ones_like
    zeros zeros_like empty linspace astype all any float64 float32 int64 bool e pi inf nan
""".split())

SUM_TO = '''\
def _sum_to(g, x, xp):
    """The gradient g summed over the axes a batch added or stretched, to the shape of x."""
    g = xp.asarray(g, dtype=x.dtype)
    if g.shape == x.shape:
        return g
    g = xp.broadcast_arrays(g, x)[0]
    lead = g.ndim - x.ndim
    stretched = tuple(lead + i for i, n in enumerate(x.shape) if n == 1 and g.shape[lead + i] != 1)
    axes = tuple(range(lead)) + stretched
    return xp.reshape(xp.sum(g, axis=axes), x.shape) if axes else g
'''

NAMESPACE = '''\
def _namespace(*arrays):
    """The inputs' array library, from array_api_compat (NumPy, CuPy, PyTorch, JAX, Dask, ...)."""
    compat = __import__("array_api_compat")  # imported only when no xp is given
    return compat.array_namespace(*arrays)
'''

FLOAT_TYPE = '''\
def _float_type(a, xp):
    """The float type of the arrays made from numbers: a's, where a is floats, else the default."""
    dtype = xp.asarray(a).dtype
    return dtype if xp.isdtype(dtype, "real floating") else xp.asarray(0.0).dtype
'''

_CALL = re.compile(r"\bxp\.(\w+)")


def _xp_code(expr: sp.Expr, node: str, shapes: Any, ints: set[sp.Symbol]) -> str:
    """Array-API text of ``expr`` (a number as a float literal); an UnsupportedError naming ``node``
    for a call outside the standard."""
    if expr.is_Number:
        return _number(expr, node)
    text = _code(expr, node, shapes, ints, xp=True)
    _standard(text, node)
    return text


def _standard(text: str, node: str) -> None:
    outside = sorted({f for f in _CALL.findall(text) if f not in STANDARD})
    if outside or re.search(r"\bnp\.", text):
        what = ", ".join(f"xp.{f}" for f in outside) or "np."
        raise UnsupportedError(f"node {node}: no array-API spelling for {text} ({what} is not in the "
                               "Python array API standard; an op declares one with xp=...)")


def array_api_functions(program: Program) -> dict[str, _Function]:
    """forward, backward, value_and_grad and value as array-API text, each with an ``xp`` parameter."""
    g = program.graph
    if "xp" in g.inputs:
        raise UnsupportedError("an input named 'xp' would hide the array library parameter of "
                               "array-API code; rename it")
    out = g.output
    args = ", ".join(g.inputs)
    shapes, ints = _shapes(program), {g.symbol(n) for n in g.labels}
    like = next((n for n in g.inputs if n not in g.labels), None)  # an input whose float type numbers take
    forward = []
    for a in program.forward:
        code = _xp_code(a.expr, a.node, shapes, ints)
        if a.expr.is_number and like is not None:  # an array: a library's sign() may refuse a number
            code = f"xp.asarray({code}, dtype={XP_FLOAT})"
        forward.append(f"{a.target.name} = {code}")
    backward, used, results = _adjoint_lines(program, program.dout, xp=True)
    for line in backward:
        _standard(line, line.split(" = ")[0])
    batch = _batchable(g) and bool(program.wrt)
    if _batchable(g):  # one output for each point of a batch the output does not read
        forward = [*forward, *_spread(out, batch_blind(program), xp=True)]
    position = {n: i for i, n in enumerate(g.nodes)}
    dims = graph_dims(g)
    out_dims = [str(d) for d in g.shape(out) if named(d)]
    cached_dims = [d for d in dims if d in used or d in out_dims]
    used = used - set(dims)
    kept = used | ({out, *program.wrt} if batch else set()) | {dims[d][0] for d in cached_dims}
    cache = sorted(kept, key=position.__getitem__)  # named dimensions: read from the arrays (jit traces them)
    names = ", ".join(cache) + ("," if len(cache) == 1 else "")
    namespace = ["if xp is None:", f"    xp = _namespace({args})"] if g.inputs else \
        ["if xp is None:", "    import numpy as xp"]
    unpack = [f"{names} = cache"] if cache else []
    rename = [f"{program.dout} = dout"] if program.dout.name != "dout" else []
    spread = ["dout = dout * xp.ones_like(" + out + ")"] if batch else []
    if batch:
        grads = [f'"{n}": _sum_to({code}, {n}, xp)' for n, code in results.items()]
        returns = ["return {" + ", ".join(grads) + "}"]
        together = [f"return {out}, _backward(xp.ones_like({out}), ({names}), xp)"]
    else:
        arrays, copy = {n for n in g.inputs if g.shape(n) != ()}, "xp.asarray({}, copy=True)"
        returns = _returns(_fresh(results, [*rename, *backward], {*cache, "dout"}, arrays, copy), [], None)
        scalar_out = g.shape(out) == ()
        lines, read, folded = _adjoint_lines(program, sp.Integer(1) if scalar_out else program.dout,
                                             fold=True, xp=True)
        for line in lines:
            _standard(line, line.split(" = ")[0])
        if not scalar_out:
            lines.insert(0, f"{program.dout} = xp.ones_like({out})")
        fresh = _fresh(folded, [*forward, *lines], {*g.inputs, out}, arrays, copy)
        together = [*lines, *_returns(fresh, [], _own(out, arrays, forward, copy))]
    own = _own(out, {n for n in g.inputs if g.shape(n) != ()}, forward, "xp.asarray({}, copy=True)")
    forward_body = [*forward, f"return {own}, ({names})"]
    together_body = [*forward, *together]
    value_body = [*forward, f"return {own}"]
    with_xp = f"{args}, xp=None" if args else "xp=None"
    float_of = f"_float_type({like}, xp)" if like is not None else "xp.asarray(0.0).dtype"
    backward_body = [*unpack, *_reading(backward, {d: dims[d] for d in cached_dims}), *spread,
                     *rename, *backward, *returns]
    return {
        "forward": _Function(with_xp, f"The output {out}, and the cache of forward values backward reads.",
                             [*namespace, *_float(forward_body, float_of), *_reading(forward_body, dims),
                              *forward_body], cache=tuple(cache)),
        "backward": _Function("dout, cache, xp=None", f"The gradients of sum(dout * {out}): "
                              "{input: gradient}.",
                              [*(["if xp is None:", "    xp = _namespace(dout)"]),
                               *_float(backward_body, "_float_type(dout, xp)"), *backward_body], batch),
        "value_and_grad": _Function(
            with_xp, f"The output {out} and the gradients of its sum: (value, {{input: gradient}}).",
            [*namespace, *_float(together_body, float_of), *_reading(together_body, dims), *together_body]),
        "value": _Function(with_xp, f"The output {out}.",
                           [*namespace, *_float(value_body, float_of), *_reading(value_body, dims),
                            *value_body]),
    }


def _float(body: list[str], float_of: str) -> list[str]:
    """``_float = _float_type(x, xp)`` where ``body`` makes arrays from numbers: the float type
    they take (an input's, or dout's in backward), not the library's default."""
    used = any(re.search(rf"\b{XP_FLOAT}\b", line) for line in body)
    return [f"{XP_FLOAT} = {float_of}  # the float type of the arrays made from numbers"] if used else []


def array_api_source(program: Program) -> str:
    """The text of a module computing ``program`` with any array library of the standard.

    >>> import symgrad as sg
    >>> text = array_api_source(build_program(sg.graph("relu(x) * y", shapes={"x": (3,), "y": (3,)})))
    >>> print(text[text.index("def forward"):text.index("def backward")].strip())
    def forward(x, y, xp=None):
        \"\"\"The output q2, and the cache of forward values backward reads.\"\"\"
        if xp is None:
            xp = _namespace(x, y)
        q1 = xp.maximum(x, 0.0)
        q2 = q1*y
        return q2, (x, y, q1)
    """
    g = program.graph
    functions = array_api_functions(program)
    header = _header(program, _batchable(g))
    header[-3:-3] = ["", "Every function takes the array library (Python array API standard) as xp;",
                     "without it, array_api_compat gives the inputs' own."]
    lines = [*header, ""]
    for name in ("forward", "backward", "value_and_grad"):
        fn = functions[name]
        lines += [f"def {name}({fn.params}):", f'    """{fn.doc}"""', *_indent(fn.body), "", ""]
    lines += [NAMESPACE, ""]
    if any(XP_FLOAT in line for fn in functions.values() for line in fn.body):
        lines += ["", FLOAT_TYPE, ""]
    if functions["backward"].batch_helpers:
        lines += ["", SUM_TO, "", BACKWARD_ALIAS]
    return "\n".join(lines).rstrip("\n") + "\n"


def namespace(xp: Any) -> Any:
    """The array-API namespace of library ``xp`` (a module such as ``numpy``, ``torch``,
    ``jax.numpy``, ``array_api_strict``), from ``array_api_compat``."""
    try:
        import array_api_compat
    except ImportError:
        raise UnsupportedError("xp= needs array-api-compat (pip install 'symgrad[xp]')") from None
    if getattr(xp, "__array_api_version__", None) is not None and not hasattr(xp, "ndarray"):
        return xp  # already a namespace of the standard (array_api_strict, a compat namespace)
    asarray = getattr(xp, "asarray", None)
    if asarray is None:
        raise UnsupportedError(f"xp={getattr(xp, '__name__', xp)!r} is not an array library: "
                               "it has no asarray")
    try:
        return array_api_compat.array_namespace(asarray(0.0))
    except TypeError as e:
        raise UnsupportedError(f"xp={getattr(xp, '__name__', xp)!r} is not an array library "
                               f"array_api_compat knows: {e}") from None


def library(ns: Any) -> str:
    """The short name of a namespace's library: ``array_api_strict``, ``torch``, ``numpy``."""
    return str(getattr(ns, "__name__", ns)).removeprefix("array_api_compat.")


def _probe(xp: Any, v: Any, labels: bool) -> np.ndarray:
    """A NumPy stand-in for the native array ``v`` that the checks read: its shape, and for
    labels its least and greatest entries (a library may clamp a label out of range where
    NumPy raises, so the checks must see them)."""
    probe = np.zeros(tuple(int(d) for d in v.shape), dtype=int if labels else float)
    if labels and probe.size:
        flat = probe.reshape(-1)
        flat[0], flat[-1] = int(xp.min(v)), int(xp.max(v))
    return probe


class ArrayCompiled:
    """A graph's array-API code, compiled for one array library ``xp``.

    The calling conventions are :class:`symgrad.compiled.Compiled`'s: ``f(**inputs)``,
    ``f.value_and_grad(**inputs)``, ``f.forward(**inputs)``, ``f.backward(dout, cache)``,
    ``f.source``, ``f.module`` (whose functions take positional inputs and ``xp``).
    Inputs may be arrays of ``xp``'s library, NumPy arrays or Python numbers
    (converted with ``xp.asarray``); arrays of another library are an InputError.

    >>> import symgrad as sg, numpy as np
    >>> f = sg.graph("sum(x * y)", shapes={"x": (2,), "y": (2,)}).compile(xp=np)
    >>> value, grads = f.value_and_grad(x=[1.0, 2.0], y=[3.0, 4.0])
    >>> float(value), grads["x"].tolist()
    (11.0, [3.0, 4.0])
    """

    def __init__(self, graph: Graph, wrt: Iterable[str] | None = None, xp: Any = None):
        self.graph = graph
        self.program = build_program(graph, wrt)
        self.wrt: tuple[str, ...] = self.program.wrt
        self.xp = namespace(xp)
        self.source = array_api_source(self.program)
        missing = sorted({f for f in _CALL.findall(self.source) if not hasattr(self.xp, f)})
        if missing:
            raise UnsupportedError(f"the array library {library(self.xp)} lacks "
                                   f"{', '.join('xp.' + f for f in missing)}, which the generated code calls")
        self.module = load_module(self.source, "xp", {})
        self.__doc__ = f"Compiled array-API code ({library(self.xp)}); the generated source:\n\n{self.source}"

    def arguments(self, inputs: Mapping[str, Any]) -> tuple[Any, ...]:
        """The inputs as arrays of ``xp``, checked: named, shaped as declared, labels in range."""
        import array_api_compat

        g, xp = self.graph, self.xp
        check_inputs(g.inputs, inputs)
        native: dict[str, Any] = {}
        plain: dict[str, Any] = {}
        for n in g.inputs:
            v = inputs[n]
            if array_api_compat.is_array_api_obj(v) and not isinstance(v, (np.ndarray, np.generic)):
                found = array_api_compat.array_namespace(v)
                if found is not xp:
                    raise InputError(f"value of {n!r} is a {library(found)} array, but this function "
                                     f"computes with {library(xp)}: one array library per call")
                native[n] = v
            else:
                plain[n] = v
        mixed = [n for n, v in plain.items() if isinstance(v, np.ndarray)] if native else []
        if mixed:
            raise InputError(f"value of {mixed[0]!r} is a NumPy array, but {', '.join(map(repr, native))} "
                             f"{'is' if len(native) == 1 else 'are'} {library(xp)} arrays: "
                             "one array library per call")
        dtypes = {n: g.nx.nodes[n]["dtype"] for n in g.inputs}
        shapes = {n: g.shape(n) for n in g.inputs}
        if _batchable(g):
            arrays = {n: np.asarray(plain[n], dtype=float) for n in plain}
        else:  # the NumPy checks on the plain values, shapes (and labels' extremes) on the native arrays
            probe = {n: _probe(xp, v, dtypes[n] == "int") for n, v in native.items()}
            arrays = coerce(g.inputs, shapes, {**plain, **probe}, dtypes)
            check_labels(g, arrays)
        return tuple(native[n] if n in native else xp.asarray(arrays[n]) for n in g.inputs)

    def __call__(self, **inputs: Any) -> Any:
        """The output's value at ``inputs``."""
        return self.module.forward(*self.arguments(inputs), xp=self.xp)[0]

    def value_and_grad(self, **inputs: Any) -> tuple[Any, dict[str, Any]]:
        """``(value, {input: gradient})``: the gradient of the value's sum."""
        return self.module.value_and_grad(*self.arguments(inputs), xp=self.xp)  # type: ignore[no-any-return]

    def forward(self, **inputs: Any) -> tuple[Any, Any]:
        """``(value, cache)``; :meth:`backward` turns the cache into gradients."""
        return self.module.forward(*self.arguments(inputs), xp=self.xp)  # type: ignore[no-any-return]

    def backward(self, dout: Any, cache: Any) -> dict[str, Any]:
        """``{input: gradient}`` of ``sum(dout * value)``."""
        if not isinstance(cache, tuple):
            raise InputError(f"cache must be what forward(...) returned second, not {type(cache).__name__}")
        xp = self.xp
        if not hasattr(dout, "dtype"):  # a number: in the float type of the forward values, not the default
            floats = [c.dtype for c in cache if hasattr(c, "dtype") and xp.isdtype(c.dtype, "real floating")]
            dout = xp.asarray(dout, dtype=floats[0]) if floats else xp.asarray(dout)
        return self.module.backward(xp.asarray(dout), cache, xp=xp)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        what = self.graph.source or self.graph.output
        inputs = ", ".join(self.graph.inputs) or "none"
        return f"<ArrayCompiled {what!r} with {library(self.xp)}: inputs {inputs}>"
