"""NumPy code from a Program: the text of generated modules.

The generated text is a module that imports only NumPy (and what the op table
declares for the ops it uses, such as ``from scipy.special import erf``): a
header naming the expression and its inputs, then three straight-line functions.

- ``forward(x, ...)`` computes every node, one assignment a line, named after
  the graph's nodes (``q1 = x + y``), and returns the output and a cache of
  the forward values the backward pass reads.
- ``backward(dout, cache)`` computes every adjoint (``dq1 = dq2*z``) from the
  cached values (never recomputing them) and returns ``{input: gradient}``.
- ``value_and_grad(x, ...)`` does both in one function with ``dout = 1``,
  adjoints that come out constants or copies folded into their uses (and
  negated ones read once, whose signs then cancel: ``dq4 = q6*q8**2``),
  and each value deleted after the line that reads it last (so the allocator
  reuses their memory instead of handing out fresh pages): in a graph of
  arrays, forward values too, as soon as neither the forward lines nor the
  gradients read them any more; in a graph of scalars, which may be run on a
  batch, the forward values the gradients do not read are deleted before
  the gradients are computed.  The adjoints read forward values instead of
  computing them again (``exp(q3 - q4)`` is ``q6`` where ``q6 = np.exp(q5)``
  and ``q5 = q3 - q4``); a softmax whose log-sum-exp no forward value holds
  is e/Σe with e = exp(x − max x), and in a graph of arrays a temporary the
  adjoints share that a forward line computes whole (one call) is computed
  before that line and read by both.  A sigmoid node
  ``q`` of a name keeps its exponential (``_exp_q``), from which its
  gradient reads σ(−a) = e^(−a)·σ(a) without another ``exp``; ``1 + tanh(u)``
  (GELU's) is 2σ(2u), whose derivative reads the same exponential.

Products print their scalar factors first (``2*q10*W1``, one pass over W1),
and an adjoint that is one number stretched to an array stays that number
where only elementwise arithmetic reads it.

Common sub-expressions of the adjoints are shared through SymPy's ``cse``
(temporaries ``_c1``, ``_c2``, ... placed just before their first use).

In a graph of scalars, inputs may be NumPy arrays of any broadcastable shapes
(a batch of points): the value is computed point by point, as NumPy
broadcasts (and spread over the batch of an input it does not read, ``x +
0*y`` at a batch of y, so that there is one output for each point), and
each gradient (of the value's sum, or of ``sum(dout * value)``) is summed
back to its input's shape by the module's ``_sum_to`` (in
``value_and_grad``, ``_sum_each``, which also makes each gradient a new
array: never an input, the value or another gradient).  The scalar
path pays one ``ndarray`` test for this, and one class test per input: inputs
that are not all Python floats go through the module's ``_points`` first, which
raises ValueError naming an input that is not real numbers (a bool, a complex
number, a string, a list) or shapes that do not broadcast.  Graphs with array-shaped nodes take
inputs of exactly their declared shapes: the module's ``_check`` (NumPy only,
the text of :data:`symgrad.dims.CHECK`) compares each input with the table
``_DECLARED`` first and raises ValueError naming the input and the dimension.
A named dimension (``("N", 3)``) is read once at the top of each function
that uses it (``N = X.shape[0]``) and travels in the cache to ``backward``.

:class:`symgrad.compiled.Compiled` runs that text, with input checks in front of it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sympy as sp
from sympy.matrices import MatrixBase
from sympy.matrices.expressions import MatrixExpr
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.utilities.iterables import iterable

from .alike import evaluated
from .dims import CHECK, Shape, declared, named, show
from .errors import EvaluationError, InputError, SymgradError, UnsupportedError
from .graph import Graph
from .ops import OPS, printed_as_form, sech2
from .printing import XP_FLOAT, array_api_code, float_literal, imports_of, numpy_code
from .program import Assign, Program, build_program
from .tensors import amax, broadcast_to, logsumexp, mean, reduce_sum, shape_of, sum_to
from .values import label_classes

SUM_TO = '''\
def _sum_to(g, x):
    """The gradient g summed over the axes a batch added or stretched, to the shape of x."""
    shape = np.shape(x)
    if np.shape(g) == shape:
        return g
    g = np.broadcast_to(g, np.broadcast_shapes(np.shape(g), shape))
    lead = g.ndim - len(shape)
    stretched = tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return np.sum(g, axis=tuple(range(lead)) + stretched).reshape(shape)
'''

POINTS = '''\
def _points(values, names):
    """Each value a real number or a NumPy array of them, and their shapes broadcast together."""
    for value, name in zip(values, names):
        real = isinstance(value, (int, float, np.integer, np.floating, np.ndarray))
        if not real or value.__class__ is bool:
            raise ValueError(f"value of {name!r} must be a real number or a NumPy array of real "
                             f"numbers, not {type(value).__name__}")
        if isinstance(value, np.ndarray) and value.dtype.kind not in "fiu":
            raise ValueError(f"value of {name!r} must be real numbers, not {value.dtype} data")
    try:
        np.broadcast_shapes(*(np.shape(v) for v in values))
    except ValueError:
        shown = ", ".join(f"{n} {np.shape(v)}" for v, n in zip(values, names) if np.ndim(v))
        raise ValueError(f"input shapes do not broadcast together: {shown}") from None
'''

SUM_EACH = '''\
def _sum_each(value, inputs, grads):
    """{input: gradient}, from {input: (gradient, input)} with the gradients of the value's sum:
    each stretched to the value's shape and summed to its input's, a new array (a copy where
    it would be the value, an input or another gradient)."""
    shape, taken, summed = np.shape(value), [value, *inputs], {}
    for name, (g, x) in grads.items():
        full = np.broadcast_shapes(np.shape(g), shape)
        if g.__class__ is not np.ndarray or g.shape != full or any(g is t for t in taken):
            g = np.broadcast_to(g, full).astype(np.result_type(g, value))
        summed[name] = g = _sum_to(g, x)
        taken.append(g)
    return summed
'''

BACKWARD_ALIAS = "_backward = backward  # for value_and_grad, whose inputs may be named backward"


# -- the generated text ---------------------------------------------------------


def module_source(program: Program) -> str:
    """The text of a standalone module computing ``program``: forward, backward, value_and_grad.

    Parameters
    ----------
    program:
        A :class:`symgrad.program.Program`, from :func:`symgrad.program.build_program`.

    Returns
    -------
    str
        Python source that imports only NumPy (and the imports its ops declare).

    >>> import symgrad as sg
    >>> from symgrad.program import build_program
    >>> text = module_source(build_program(sg.graph("(x + y) * z")))
    >>> print(text[text.index("def forward"):text.index("def backward")])
    def forward(x, y, z):
        \"\"\"The output q2, and the cache of forward values backward reads.\"\"\"
        if not x.__class__ is y.__class__ is z.__class__ is float:
            _points((x, y, z), ('x', 'y', 'z'))
        q1 = x + y
        q2 = q1*z
        return q2, (x, y, z, q1, q2)
    <BLANKLINE>
    <BLANKLINE>
    """
    return _module_text(program, _functions(program))


def program_imports(program: Program) -> tuple[str, ...]:
    """The import statements beyond NumPy the program's text needs: those its ops declare."""
    return imports_of(*(a.expr for a in program.forward), *(a.expr for a in program.backward))


def _module_text(program: Program, functions: dict[str, _Function]) -> str:
    g = program.graph
    checked = not _batchable(g) and bool(g.inputs)
    imports = ["import numpy as np", *program_imports(program)]
    lines = _header(program, _batchable(g)) + [*imports, "", ""]
    if checked:
        lines += _declared_table(g) + ["", ""]
    for name in ("forward", "backward", "value_and_grad"):
        fn = functions[name]
        lines += [f"def {name}({fn.params}):", f'    """{fn.doc}"""', *_indent([*fn.check, *fn.body]), "", ""]
    if functions["backward"].batch_helpers:
        lines += [SUM_TO, "", SUM_EACH]
    if _batchable(g) and g.inputs:
        lines += ["", "", POINTS] if functions["backward"].batch_helpers else [POINTS]
    if checked:
        lines += [CHECK]
    return "\n".join(lines).rstrip("\n") + "\n"


def _declared_table(g: Graph) -> list[str]:
    """``_DECLARED``: each input's name, declared shape and label classes, for ``_check``."""
    classes = label_classes(g)
    rows = [f"    ({n!r}, {declared(g.shape(n))!r}, {classes.get(n, 0) if n in g.labels else None!r}),"
            for n in g.inputs]
    return ["# each input: its name, its shape (named dimensions as strings), and the number of",
            "# classes its integer labels pick from (None for real numbers); _check reads it",
            "_DECLARED = (", *rows, ")"]


@dataclass(frozen=True)
class _Function:
    """A generated function: parameters, docstring, the module's input check and body lines
    (not indented)."""

    params: str
    doc: str
    body: list[str]
    batch_helpers: bool = False
    floats: list[str] | None = None  # the body for floats where it differs: sigmoids not sharing arrays
    check: list[str] = field(default_factory=list)
    cache: tuple[str, ...] = ()  # forward: the names of the values the cache holds


def graph_dims(g: Graph) -> dict[str, tuple[str, int]]:
    """``{dimension name: (the first input that names it, the axis)}``."""
    found: dict[str, tuple[str, int]] = {}
    for n in g.inputs:
        for axis, size_ in enumerate(g.shape(n)):
            if named(size_):
                found.setdefault(str(size_), (n, axis))
    return found


def _reading(lines: list[str], dims: dict[str, tuple[str, int]]) -> list[str]:
    """``N = X.shape[0]`` for each named dimension ``lines`` use."""
    return [f"{d} = {n}.shape[{axis}]" for d, (n, axis) in dims.items()
            if any(re.search(rf"\b{d}\b", line) for line in lines)]


def _functions(program: Program, together: bool = True, split: bool = True) -> dict[str, _Function]:
    """The generated functions as text: with ``together``, value_and_grad and value (the output
    alone); with ``split``, forward and backward (their own pass over the adjoints)."""
    g = program.graph
    batchable = _batchable(g)
    out = g.output
    args = ", ".join(g.inputs)
    shapes, ints = _shapes(program), {g.symbol(n) for n in g.labels}
    shared, differences = _share_softmaxes(program, shapes, ints)
    forward = [line for a in program.forward for line in
               shared.get(a.target.name,
                          [f"{a.target.name} = {_forward_code(a.expr, a.node, shapes, ints)}"])]

    blind = batch_blind(program) if batchable else []
    guard = [out] + blind if batchable and program.wrt else []
    per_point = _spread(out, blind)
    dims = graph_dims(g)
    values = f"({args}{',' if len(g.inputs) == 1 else ''})"
    check = [f"_check({values}, _DECLARED)"] if not batchable and g.inputs else []
    if batchable and g.inputs:  # floats go straight through; anything else is checked first
        floats = " is ".join(f"{n}.__class__" for n in g.inputs)
        test = f"{floats} is not float" if len(g.inputs) == 1 else f"not {floats} is float"
        check = [f"if {test}:", f"    _points({values}, {tuple(g.inputs)!r})"]
    forward, rewrites = _tanh_plus_one(program, forward)
    functions = _together(program, forward, rewrites, differences, guard, dims, check, per_point) \
        if together else {}
    if not split:
        return functions

    backward, used, results = _adjoint_lines(program, program.dout, rewrites=rewrites)
    forward = _unread_dropped(forward, differences - used, [], out)
    position: dict[str, float] = {n: i for i, n in enumerate(g.nodes)}
    for line in forward:  # _exp_p and _den_p (1 + tanh(u) as 2σ(2u)): cached just before p
        made = line.split(" = ", 1)[0]
        if made not in position and made.startswith(("_exp_", "_den_")):
            position[made] = position[made[5:]] - (0.2 if made.startswith("_exp_") else 0.1)
    out_dims = [str(d) for d in g.shape(out) if named(d)]
    cached_dims = [d for d in dims if d in used or d in out_dims]  # backward reads them from the cache
    used = used - set(dims)
    cache = sorted(used | set(guard) | (set(program.wrt) if guard else set()), key=position.__getitem__)
    cache += cached_dims
    names = ", ".join(cache) + ("," if len(cache) == 1 else "")
    unpack = [f"{names} = cache"] if cache else []
    rename = [f"{program.dout} = dout"] if program.dout.name != "dout" else []
    spread = [f"if {out}.__class__ is np.ndarray:  # a batch of points: one dout for each (a new array)",
              f"    dout = np.full_like({out}, dout) if np.ndim(dout) == 0 else dout * np.ones_like({out})"
              ] if guard else []
    arrays = {n for n in g.inputs if g.shape(n) != ()}
    out_shape = show(g.shape(out))
    shown = f"{{{out_shape}}}" if out_dims else out_shape  # the sizes of named dimensions
    dout_check = [f"if np.shape(dout) != {out_shape}:",
                  f'    raise ValueError(f"dout has shape {{np.shape(dout)}}, but the output has shape '
                  f'{shown}")'] if not batchable else []
    forward_body = [*forward, *per_point, f"return {_owned(g, out, arrays, forward)}, ({names})"]
    return {
        "forward": _Function(args, f"The output {out}, and the cache of forward values backward reads.",
                             [*_reading(forward_body, dims), *forward_body], check=check, cache=tuple(cache)),
        "backward": _Function("dout, cache", f"The gradients of sum(dout * {out}): {{input: gradient}}.",
                              [*unpack, *dout_check, *spread, *rename, *backward,
                               *_returns(_fresh(results, [*rename, *backward], {*cache, "dout"}, arrays),
                                         guard, None)], bool(guard)),
        **functions,
    }


def _together(program: Program, forward: list[str], rewrites: dict[sp.Expr, sp.Expr], differences: set[str],
              guard: list[str], dims: dict[str, tuple[str, int]], check: list[str],
              per_point: list[str]) -> dict[str, _Function]:
    """value_and_grad and value, as text: the forward lines, then the adjoints with dout = 1
    (``rewrites``: what they read instead of sech², :func:`_tanh_plus_one`; ``per_point``: the
    output spread over a batch it does not read, :func:`_spread`)."""
    g = program.graph
    batchable = _batchable(g)
    out = g.output
    args = ", ".join(g.inputs)
    values = f"({args}{',' if len(g.inputs) == 1 else ''})"
    scalar_out = g.shape(out) == ()
    dout = sp.Integer(1) if scalar_out else program.dout
    value_forward = _unread_dropped(forward, differences, [], out)
    together, read, folded = _adjoint_lines(program, dout, fold=True, rewrites=rewrites)
    plain = together  # the float lines share exponentials their own way (symgrad.scalar)
    together_forward, together = _share_sigmoids(forward, together, set(g.nx))
    sigmoids_shared = together_forward != forward
    float_forward = _unread_dropped(forward, differences, plain, out)
    together_forward = _unread_dropped(together_forward, differences, together, out)
    if not scalar_out:
        together.insert(0, f"{program.dout} = np.ones_like({out})")
    read = {n for line in together for n in _NAME.findall(line)} | set(folded.values())
    made = [line.split(" = ")[0] for line in together_forward]
    node_of = {n: n if n in g.nx else re.sub(r"^_(exp|den|max|sum)_", "", n) for n in made}  # _exp_q: q's
    dead = [n for n in made if n != out and n not in read and (batchable or g.shape(node_of[n]) != ())]
    if dead and batchable:  # arrays kept to the end would make the gradients' arrays take fresh memory
        together.insert(0, f"del {', '.join(dead)}  # forward values the gradients do not read")

    each = [f'"{n}": ({code}, {n})' for n, code in folded.items()]
    arrays = {n for n in g.inputs if g.shape(n) != ()}
    value = _owned(g, out, arrays, together_forward)
    summed = _wrapped(f"    return {value}, _sum_each({out}, {values}, {{", each, "})")
    batch = " or ".join(f"{n}.__class__ is np.ndarray" for n in guard)
    summing = [f"if {batch}:  # a batch of points: each gradient summed to its input's shape",
               *summed] if guard else []
    ending = [*summing, *_returns(_fresh(folded, [*together_forward, *together], {*g.inputs, out}, arrays),
                                  [], value)]
    kept = {n for line in ending for n in _NAME.findall(line)}
    if batchable:
        together_body = [*together_forward, *_freeing(together, made, kept), *per_point, *ending]
    else:  # arrays: each forward value freed after the line that reads it last, forward lines too
        numbers = {n for n in made if g.shape(node_of[n]) == ()}
        hoisted = _hoisted(together_forward, together)
        together_body = [*_freeing(hoisted, [], kept | numbers), *ending]
    value_body = [*value_forward, *per_point, f"return {_owned(g, out, arrays, value_forward)}"]
    float_body = [*float_forward, *plain, *per_point, *ending] if sigmoids_shared else None
    return {
        "value_and_grad": _Function(
            args, f"The output {out} and the gradients of its sum: (value, {{input: gradient}}).",
            [*_reading(together_body, dims), *together_body], check=check, floats=float_body),
        "value": _Function(args, f"The output {out}.", [*_reading(value_body, dims), *value_body]),
    }


_NAME = re.compile(r"[A-Za-z_]\w*")
_SIGMOID_SPELLING: str = OPS["sigmoid"].numpy  # type: ignore[assignment]  # a template: "(np.exp(...{0}...))"


def _spelled(spelling: str) -> str:
    """The op table's spelling as a regular expression: its operand, the group ``a``, a name or
    a negated name, the same at each place."""
    first, *rest = re.escape(spelling).split(re.escape("{0}"))
    return first + r"(?P<a>-?[A-Za-z_]\w*)" + "(?P=a)".join(rest)


_SIGMOID_TEXT = re.compile(_spelled(_SIGMOID_SPELLING))  # as it stands inside a line
_SIGMOID = re.compile(r"^(?P<q>\w+) = " + _spelled(_SIGMOID_SPELLING[1:-1]) + "$")  # a line of its own
_SIGMOID_HEAD = _SIGMOID_SPELLING.split("{0}")[0]
# q*σ(...) as a product of its own: not after / or **, not before **
_SIGMOID_PRODUCT = re.compile(r"(?<![\w./])(?<!\*\*)(?P<q>[A-Za-z_]\w*)\*"
                              + _spelled(_SIGMOID_SPELLING) + r"(?!\*\*)")


def _share_sigmoids(forward: list[str], adjoints: list[str], names: set[str]) -> tuple[list[str], list[str]]:
    """The lines of value_and_grad with each sigmoid of a name ``a`` sharing its exponential.

    A sigmoid node ``q = np.exp(np.minimum(a, 0.0))/(1 + np.exp(-np.abs(a)))``
    keeps ``e^(−|a|)`` as ``_exp_q`` and becomes ``np.maximum(_exp_q, a >= 0)/(1 + _exp_q)``
    (the numerator is 1 where a ≥ 0 and e^a elsewhere, as ``e^(−|a|) ≤ 1``: one cheap pass,
    where ``np.where`` takes five times as long); the adjoints read σ(a) as ``q``, σ(−a) as
    ``np.maximum(_exp_q, a < 0)/(1 + _exp_q)`` and
    the derivative σ(a)σ(−a), written ``q*σ(−a)``, as ``_exp_q/(1 + _exp_q)**2`` (the same for
    either sign of a), instead of computing two more exponentials.
    """
    forward_out: list[str] = []
    shared: dict[str, str] = {}  # the printed sigmoid to share -> what replaces it
    products: dict[str, str] = {}  # q*σ(−a), σ′(a), printed -> what replaces it
    for line in forward:
        m = _SIGMOID.match(line)
        e = f"_exp_{m['q']}" if m else ""
        if m is None or e in names:
            forward_out.append(line)
            continue
        q, a = m["q"], m["a"]
        minus_a = a[1:] if a.startswith("-") else "-" + a
        forward_out += [f"{e} = np.exp(-np.abs({a}))", f"{q} = np.maximum({e}, {a} >= 0)/(1 + {e})"]
        shared[_SIGMOID_SPELLING.format(minus_a)] = f"(np.maximum({e}, {a} < 0)/(1 + {e}))"  # σ(−a)
        shared[_SIGMOID_SPELLING.format(a)] = q  # σ(a)
        products[f"{q}*{_SIGMOID_SPELLING.format(minus_a)}"] = f"{e}/(1 + {e})**2"

    def share(m: re.Match[str]) -> str:
        return shared.get(m.group(0), m.group(0))

    def derivative(m: re.Match[str]) -> str:
        found = products.get(m.group(0))
        return m.group(0) if found is None else found if m.span() == whole else f"({found})"

    if shared:  # one pass over the lines, each sigmoid looked up
        out = []
        for line in adjoints:
            if _SIGMOID_HEAD in line:
                whole = (line.find(" = ") + 3, len(line))  # a product that is all the line holds
                line = _SIGMOID_TEXT.sub(share, _SIGMOID_PRODUCT.sub(derivative, line))
            out.append(line)
        adjoints = out
    return forward_out, adjoints


def _tanh_plus_one(program: Program, forward: list[str]) -> tuple[list[str], dict[sp.Expr, sp.Expr]]:
    """The forward lines with each ``p = t + 1`` of ``t = tanh(u)``, ``u`` a name and ``p`` the
    only reader of ``t``, computed as 2σ(2u) (the tanh form of GELU has one), and what the
    adjoints read instead of tanh′(u) = sech²(u).

    With e = e^(−2|u|), ``p = 2*np.maximum(e, u >= 0)/(1 + e)``: one ``exp`` for the value and
    its derivative, where ``np.tanh`` and sech² took two, nothing that overflows, and exact where
    1 + tanh(u) rounds to 0 (u < −19).  sech²(u) = 4σ(2u)σ(−2u) is then ``4*e/(1 + e)**2``.
    Lines ``_exp_p`` and ``_den_p`` hold e and 1 + e.
    """
    if not any(isinstance(a.expr, sp.tanh) for a in program.forward):
        return forward, {}
    names = {a.target.name for a in program.forward} | set(program.graph.nx)
    readers: dict[sp.Symbol, list[Assign]] = {}
    for a in program.forward:
        for s in a.expr.free_symbols:
            readers.setdefault(s, []).append(a)  # type: ignore[arg-type]
    adjoint_reads = {s for adj in program.backward for s in adj.expr.free_symbols}
    dropped: set[str] = set()
    replaced: dict[str, list[str]] = {}
    rewrites: dict[sp.Expr, sp.Expr] = {}
    for a in program.forward:
        t, u = a.target, a.expr.args[0] if isinstance(a.expr, sp.tanh) else None
        if not isinstance(u, sp.Symbol) or t in adjoint_reads:
            continue
        sums = readers.get(t, [])  # the output has none
        if len(sums) != 1 or sums[0].expr - t != 1:
            continue
        p = sums[0].target
        e, den = f"_exp_{p.name}", f"_den_{p.name}"
        if e in names or den in names:
            continue
        dropped.add(t.name)
        replaced[p.name] = [f"{e} = np.exp(-2*np.abs({u.name}))", f"{den} = 1 + {e}",
                            f"{p.name} = 2*np.maximum({e}, {u.name} >= 0)/{den}"]
        rewrites[sech2(u)] = 4 * sp.Symbol(e, real=True) / sp.Symbol(den, real=True) ** 2
    if not rewrites:
        return forward, {}
    lines: list[str] = []
    for line in forward:
        target = line.split(" = ", 1)[0]
        if target not in dropped:
            lines += replaced.get(target, [line])
    return lines, rewrites


def _share_softmaxes(program: Program, shapes: dict[sp.Symbol, Shape],
                     ints: set[sp.Symbol]) -> tuple[dict[str, list[str]], set[str]]:
    """Lines for each softmax ``p = exp(x - l)`` of ``l = logsumexp(x, axis, keepdims=True)``,
    sharing its exponentials: ``l`` computes ``_exp_l = np.exp(x - _max_l)`` and its sum
    ``_sum_l`` on the way, and ``p = _exp_l/_sum_l``, one ``exp`` over ``x`` instead of two.
    Any other log-sum-exp of an array takes its maximum once, as ``_max_l``.

    Returns {node: the lines that compute it} for ``l`` and ``p``, and the names the
    caller drops where nothing else reads them: ``l``, and the differences ``x - l``
    that ``p`` was the exponential of.
    """
    lines: dict[str, list[str]] = {}
    differences: set[str] = set()
    node_of = {a.target: a for a in program.forward}
    for a in program.forward:
        e = a.expr
        if not (isinstance(e, logsumexp) and e.args[0].is_Symbol and shapes[e.args[0]] != ()):
            continue
        if not e.keepdims:
            lines[a.target.name] = _one_maximum(a.target, e, a.node, shapes, ints)
            continue
        x, lse = e.args[0], a.target
        softmaxes = []
        for p in program.forward:
            if not isinstance(p.expr, sp.exp):
                continue
            inner = p.expr.args[0]
            if inner == x - lse:
                softmaxes.append(p)
            elif inner in node_of and node_of[inner].expr == x - lse:
                softmaxes.append(p)
                differences.add(inner.name)
        if not softmaxes:
            lines[lse.name] = _one_maximum(lse, e, a.node, shapes, ints)
            continue
        m, ex, total = (sp.Symbol(f"_{k}_{lse}", real=True) for k in ("max", "exp", "sum"))
        shapes.update({m: shapes[lse], ex: shapes[x], total: shapes[lse]})
        lines[lse.name] = [f"{m} = {_code(amax(x, e.args[1], sp.true), a.node, shapes, ints)}",
                         f"{ex} = {_code(sp.exp(x - m), a.node, shapes, ints)}",
                         f"{total} = {_code(reduce_sum(ex, e.args[1], sp.true), a.node, shapes, ints)}",
                         f"{lse} = {_code(sp.log(total) + m, a.node, shapes, ints)}"]
        for p in softmaxes:
            lines[p.target.name] = [f"{p.target} = {ex}/{total}"]
        differences.add(lse.name)  # a softmax alone needs no log
    return lines, differences


def _one_maximum(lse: sp.Symbol, e: logsumexp, node: str, shapes: dict[sp.Symbol, Shape],
                 ints: set[sp.Symbol]) -> list[str]:
    """``l = logsumexp(x, axis)`` as two lines that take the maximum once: ``_max_l``, kept
    over the reduced axes, and the log-sum-exp, which reads it whole (``keepdims``) or with
    those axes indexed away (``_max_l[:, 0]``)."""
    x, axes = e.args[0], e.args[1]
    rank = len(shapes[x])
    reduced = {int(i) % rank for i in axes} if len(axes) else set(range(rank))
    m = sp.Symbol(f"_max_{lse}", real=True)
    shapes[m] = tuple(1 if i in reduced else n for i, n in enumerate(shapes[x]))
    index = "" if e.keepdims else \
        "[" + ", ".join("0" if i in reduced else ":" for i in range(max(reduced) + 1)) + "]"
    total = _code(sp.log(reduce_sum(sp.exp(x - m), axes, e.args[2])), node, shapes, ints)
    return [f"{m} = {_code(amax(x, axes, sp.true), node, shapes, ints)}", f"{lse} = {total} + {m}{index}"]


def _hoisted(forward: list[str], adjoints: list[str]) -> list[str]:
    """``forward`` then ``adjoints``, with each shared temporary of the adjoints whose text a
    forward line computes inside it (``_c1 = np.exp(q5 - np.max(q5, axis=1, keepdims=True))``,
    the exponentials inside a fused softmax-cross-entropy gate's log-sum-exp) assigned before
    that line and read there: computed once for both passes.  Only a temporary that is one call
    moves (a call binds tighter than any operator), and only into a line that reads its names."""
    bodies = [line.partition(" = ") for line in forward]
    readers: dict[str, list[int]] = {}  # each name: the forward lines that read it
    for i, (_, _, body) in enumerate(bodies):
        for n in set(_NAME.findall(body)):
            readers.setdefault(n, []).append(i)
    before: dict[int, list[str]] = {}
    rest: list[str] = []
    for line in adjoints:
        target, _, text = line.partition(" = ")
        names = set(_NAME.findall(text))
        found = None
        if target.startswith("_c") and names <= readers.keys() and _one_call(text):
            inside = re.compile(r"(?<![\w.])" + re.escape(text))
            fewest = min((readers[n] for n in names), key=len)
            found = next((i for i in fewest if inside.search(bodies[i][2])), None)
        if found is None:
            rest.append(line)
            continue
        head, eq, body = bodies[found]
        bodies[found] = (head, eq, inside.sub(target, body))
        before.setdefault(found, []).append(line)
    return [*(moved for i, b in enumerate(bodies) for moved in [*before.get(i, []), "".join(b)]), *rest]


def _one_call(text: str) -> bool:
    """``text`` is one call (``np.exp(...)``)."""
    try:
        return isinstance(ast.parse(text, mode="eval").body, ast.Call)
    except SyntaxError:
        return False


def _unread_dropped(lines: list[str], names: set[str], later: list[str], out: str) -> list[str]:
    """``lines`` without the assignments of ``names`` that no other line (nor ``later``) reads."""
    while True:
        read = {n for line in [*lines, *later] for n in _NAME.findall(line.split(" = ", 1)[-1])}
        kept = [line for line in lines if line.split(" = ")[0] not in names - read - {out}]
        if len(kept) == len(lines):
            return kept
        lines = kept


def _freeing(lines: list[str], made: list[str], kept: set[str]) -> list[str]:
    """``lines`` (assignments, the first may be a ``del``) with ``del a, b`` after the line that
    reads a value for the last time, for the values ``made`` before them and those they make,
    except the ones in ``kept``: arrays freed as soon as they are done with, so the ones
    computed next reuse their memory instead of taking fresh memory."""
    values = set(made) | {line.split(" = ")[0] for line in lines if not line.startswith("del ")}
    last: dict[str, int] = {}
    for i, line in enumerate(lines):
        if not line.startswith("del "):
            for n in _NAME.findall(line.split(" = ", 1)[1]):
                last[n] = i
    done: dict[int, list[str]] = {}
    for n, i in last.items():
        if n in values and n not in kept:
            done.setdefault(i, []).append(n)
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in done:
            out.append(f"del {', '.join(done[i])}")
    return out


def batch_blind(program: Program) -> list[str]:
    """The inputs whose batch the output may not show: unused, or cancelled (x - x).

    The output broadcasts an input unless every path from it passes through a
    node whose expression lost the operand.  For a batch of points, those inputs
    join the output in the test for a batch, and the output is spread over
    their batch (:func:`_spread`): one output for each point.
    """
    g = program.graph
    shows = {g.output}
    for n in reversed(g.nodes):
        if any(v in shows and (not g.elementwise(v) or g.symbol(n) in g.expr(v).free_symbols)
               for v in g.nx.successors(n)):
            shows.add(n)
    return [n for n in g.inputs if n not in shows]


def _spread(out: str, blind: list[str], xp: bool = False) -> list[str]:
    """The lines that give a batch through a graph of scalars one output for each point where
    the output does not read the inputs ``blind`` (``x + 0*y`` at a batch of y): the output
    plus zeros of their shapes, where one of them is an array (array-API code: of a rank
    above 0)."""
    if not blind:
        return []
    zeros = " + ".join(f"{'xp' if xp else 'np'}.zeros_like({n})" for n in blind)
    test = " or ".join(f"{n}.ndim" if xp else f"{n}.__class__ is np.ndarray" for n in blind)
    return [f"if {test}:  # a batch the output does not read: one output for each point",
            f"    {out} = {out} + {zeros}"]


def _header(program: Program, batchable: bool) -> list[str]:
    g = program.graph
    if g.source:
        what = g.source
    elif len(g.operations) <= 40:
        what = str(g.expression())
    else:
        what = f"a graph of {len(g.operations)} operations"
    what = " ".join(what.split())
    what = (what if len(what) <= 100 else what[:97] + "...").replace("\\", "\\\\").replace('"', '\\"')
    if batchable:
        shapes = ["floats, or NumPy arrays of broadcastable shapes (a batch of points);",
                  "           each gradient is summed back to its input's shape"]
    else:
        shapes = [", ".join(f"{n} {g.shape(n)}" for n in g.inputs) + f"; output {g.shape(g.output)}"]
    return [
        f'"""Forward and backward code for {what}, generated by symgrad.',
        "",
        f"Inputs:    {', '.join(g.inputs) or 'none'}",
        f"Output:    {g.output}",
        f"Gradients: {', '.join(program.wrt) or 'none'}",
        f"Shapes:    {shapes[0]}",
        *shapes[1:],
        "",
        "value_and_grad(...) returns the output and the gradient of its sum; forward(...)",
        "returns the output and a cache, which backward(dout, cache) turns into gradients.",
        '"""',
        "",
    ]


def _adjoint_lines(program: Program, dout: sp.Expr, fold: bool = False, xp: bool = False,
                   rewrites: dict[sp.Expr, sp.Expr] | None = None
                   ) -> tuple[list[str], set[str], dict[str, str]]:
    """The adjoint assignments with ``dout`` substituted, sharing common sub-expressions.

    Returns the lines, the names of the forward values they read, and the
    code of each input's gradient.  With ``fold``, an adjoint that is a
    constant or a copy of another name (``dq8 = 1``, ``dq3 = dq4``) is not
    assigned but substituted where it is used.  With ``xp``, the text is
    array-API code (:func:`symgrad.printing.array_api_code`).  ``rewrites`` replaces
    sub-expressions (``sech2(u)``) with what the forward lines hold (:func:`_tanh_plus_one`).
    """
    lib = "xp" if xp else "np"
    dtype = f", dtype={XP_FLOAT}" if xp else ""  # array-API code: the float type of the inputs
    subs: dict[sp.Symbol, sp.Expr] = {program.dout: dout}
    shapes, ints = _shapes(program), {program.graph.symbol(n) for n in program.graph.labels}
    stretched = _stretched(program, shapes)
    results: dict[str, str] = {}
    targets: list[sp.Symbol] = []
    exprs: list[sp.Expr] = []
    zeros: dict[sp.Symbol, str] = {}
    wrt = set(program.wrt)
    gradients = {adj.target for adj in program.backward if adj.node in wrt}
    target_shape = {adj.target: adj.shape for adj in program.backward}
    known = {a.expr: a.target for a in program.forward if not a.expr.is_Atom}
    memo: dict[sp.Basic, sp.Basic] = {}
    for adj in program.backward:
        if adj.node in wrt:
            results[adj.node] = adj.target.name
        if not adj.terms:  # an input the output does not depend on
            zeros[adj.target] = "0.0" if adj.shape == () else f"{lib}.zeros({show(adj.shape)}{dtype})"
            targets.append(adj.target)
            continue
        expr = stretched.get(adj.target, adj.expr)
        if rewrites:
            expr = expr.xreplace(rewrites)
        if len(subs) > 1 or dout != program.dout:  # something to put in, once per alike class
            put = sorted((s for s in expr.free_symbols if s in subs), key=str)
            pairs = [x for s in put for x in (s, subs[s])]  # type: ignore[index]
            expr = evaluated(_replaced, expr, *pairs) if pairs else expr
        expr = _reusing(expr, known, memo)
        if fold and (expr.is_Number or expr.is_Symbol):
            subs[adj.target] = expr
            if adj.node in wrt and expr.is_Number and adj.shape != ():  # an array of its input's shape
                zeros[adj.target] = f"{lib}.full({show(adj.shape)}, {_number(expr, adj.target.name)}{dtype})"
                targets.append(adj.target)
            elif adj.node in wrt:
                results[adj.node] = _number(expr, adj.target.name) if expr.is_Number else expr.name
            continue
        targets.append(adj.target)
        exprs.append(expr)
    if fold:
        kept = gradients | {sp.Symbol(code, real=True) for code in results.values() if code.isidentifier()}
        computed = [t for t in targets if t not in zeros]
        folded_in = _fold_negations(computed, exprs, kept)
        targets = [t for t in targets if t not in folded_in]
        exprs = [e for t, e in zip(computed, exprs) if t not in folded_in]
    temporaries = sp.numbered_symbols("_c", start=1, real=True)
    shared, reduced = ([], exprs) if _nothing_common(exprs) else sp.cse(exprs, symbols=temporaries)
    shared_expr = dict(shared)
    position = {s: i for i, (s, _) in enumerate(shared)}

    lines: list[str] = []
    placed: set[sp.Symbol] = set()
    reduced_iter = iter(reduced)
    for target in targets:
        if target in zeros:
            lines.append(f"{target.name} = {zeros[target]}")
            continue
        expr = next(reduced_iter)
        for s in _needed(expr, shared_expr, position, placed):
            shapes[s] = _shape(shared_expr[s], shapes) or ()
            lines.append(f"{s.name} = {_code(shared_expr[s], target.name, shapes, ints, xp)}")
            placed.add(s)
        if target in gradients and isinstance(expr, broadcast_to):  # a fresh array, not a read-only view
            value = expr.args[0]
            fill = _number(value, target.name) if value.is_Number else \
                _code(value, target.name, shapes, ints, xp)
            shape = show(expr.array_shape())
            code = f"{lib}.full({shape}, {fill}{dtype})" if not xp or value.is_Number else \
                f"xp.zeros({shape}{dtype}) + {fill}"  # the standard fills with numbers only
        elif expr.is_Number and target in gradients and target_shape[target] != ():  # an array of zeros, say
            code = f"{lib}.full({show(target_shape[target])}, {_number(expr, target.name)}{dtype})"
        else:
            code = _number(expr, target.name) if expr.is_Number else \
                _code(expr, target.name, shapes, ints, xp)
        lines.append(f"{target.name} = {code}")
    adjoint_names = {t.name for t in targets} | {s.name for s in position} | {program.dout.name}
    free = {s.name if s.is_Symbol else str(s)
            for e in [*reduced, *shared_expr.values()] for s in e.free_symbols}
    free |= {code for code in results.values() if code.isidentifier()}  # a gradient folded to a copy
    free |= {str(n) for a in program.backward if a.target in zeros for n in a.shape if named(n)}
    return lines, free - adjoint_names, {n: results[n] for n in program.wrt}


def _replaced(expr: sp.Expr, *pairs: sp.Expr) -> sp.Expr:
    """``expr`` with each symbol of ``pairs`` (symbol, value, symbol, value, ...) replaced."""
    return expr.xreplace(dict(zip(pairs[::2], pairs[1::2])))


LINEAR = (reduce_sum, mean, sum_to)  # f(c*x, ...) = c*f(x, ...) for a number c


def _reusing(expr: sp.Expr, known: dict[sp.Expr, sp.Symbol], memo: dict[sp.Basic, sp.Basic]) -> sp.Expr:
    """``expr`` reading the forward values it recomputes, with numbers taken out of sums.

    Built from the leaves up, so a forward value found inside another is found
    too: with ``q5 = q3 - q4`` and ``q6 = exp(q5)`` forward, ``exp(q3 - q4)``
    is ``q6`` (one pass fewer of ``exp``, and no ``q3 - q4`` either).  A sum
    of a number times an array is the number times the sum
    (``-np.sum(dq5, axis=1)``, not ``np.sum(-dq5, axis=1)``: no negated copy).
    ``known``: {forward expression: its node's symbol}; ``memo`` caches the
    rebuilt sub-expressions across the adjoints of one program.
    """
    if expr.is_Atom or not isinstance(expr, sp.Basic):
        return expr
    done = memo.get(expr)
    if done is not None:
        return done
    args = tuple(_reusing(a, known, memo) if isinstance(a, sp.Expr) else a for a in expr.args)
    new = expr.func(*args) if args != expr.args else expr
    if printed_as_form(new):
        new = _reusing(new.printed(*new.args), known, memo)  # printed as a form: share its parts
    elif isinstance(new, sp.exp) and (softmax := _softmax(new.args[0])) is not None:
        new = _reusing(softmax, known, memo)
    if isinstance(new, LINEAR):
        coeff, rest = new.args[0].as_coeff_Mul()
        if coeff.is_Number and coeff != 1 and not rest.is_Number:
            new = coeff * new.func(rest, *new.args[1:])
    found = known.get(new, new)
    memo[expr] = found
    return found


def _softmax(exponent: sp.Expr) -> sp.Expr | None:
    """exp(``exponent``) as e/Σe with e = exp(x − max x) where ``exponent`` is
    x − logsumexp(x, axis, keepdims=True), else None: a softmax whose log-sum-exp no forward
    value holds (the backward of a fused softmax-cross-entropy gate) takes one ``exp`` and no
    ``log``, where the log-sum-exp written out takes two ``exp``s and a ``log``."""
    if not exponent.is_Add:
        return None
    for term in exponent.args:
        coeff, lse = term.as_coeff_Mul()
        if coeff == -1 and isinstance(lse, logsumexp) and lse.keepdims and exponent - term == lse.args[0]:
            x, axis = lse.args[0], lse.args[1]
            e = sp.exp(x - amax(x, axis, sp.true))
            return e / reduce_sum(e, axis, sp.true)
    return None


def _fold_negations(targets: list[sp.Symbol], exprs: list[sp.Expr], kept: set[sp.Symbol]) -> set[sp.Symbol]:
    """The adjoints substituted into their one use (``exprs`` updated): each negated one
    (``dq7 = -q8**2``) read once, by elementwise arithmetic, where the signs then usually
    cancel: ``dq4 = q8**2*q6`` instead of ``dq7 = -q8**2``, ``dq5 = dq7*q6``, ``dq4 = -dq5``,
    two passes over the arrays instead of four.  So is each scaled one (``dq2 = 0.044715*dq4``),
    whose number then joins its reader's (``0.134145*dq4*x**2``, not ``3*dq2*x**2``).
    ``kept`` (the gradients) stay."""
    done: set[sp.Symbol] = set()
    readers: dict[sp.Symbol, set[int]] = {}  # each symbol: the expressions that may read it
    for j, e in enumerate(exprs):
        for s in e.free_symbols:
            readers.setdefault(s, set()).add(j)
    for i, (t, e) in enumerate(zip(targets, exprs)):
        scaled = e.is_Mul and e.args[0].is_Number and abs(e.args[0]) != 1
        if t in kept or not (scaled or e.could_extract_minus_sign()):
            continue
        users = [j for j in sorted(readers.get(t, ())) if j > i and t in exprs[j].free_symbols]
        if len(users) != 1:
            continue
        use = exprs[users[0]]
        if not _inside_array_function(use, t) and sp.Basic.count(use, t) == 1:  # a reduction has count()
            exprs[users[0]] = use.xreplace({t: e})
            for s in e.free_symbols:  # what it reads now
                readers.setdefault(s, set()).add(users[0])
            done.add(t)
    return done


def _nothing_common(exprs: list[sp.Expr]) -> bool:
    """True only where SymPy's ``cse`` of ``exprs`` would return them as they are, sharing nothing.

    ``cse`` shares a sub-expression that occurs twice, and the arguments two sums
    (or two products) have in common, two or more; it also rewrites a power with a
    negative exponent and a sub-expression whose minus sign it can take out
    (other than the minus of a symbol, ``-q8``).  One walk over the expressions
    finds none of these, or says False (then ``cse`` runs), also for anything
    this walk does not know (matrices, non-commutative products, long sums).
    """
    seen: set[sp.Basic] = set()
    pairs: dict[type, set[frozenset[sp.Basic]]] = {sp.Add: set(), sp.Mul: set()}
    todo: list[Any] = list(exprs)
    while todo:
        e = todo.pop()
        if not isinstance(e, sp.Basic) or isinstance(e, (MatrixExpr, MatrixBase)) or e.is_Order:
            return False
        if e.is_Atom:
            continue
        if iterable(e):
            todo.extend(e)
            continue
        if e in seen:
            return False
        seen.add(e)
        args = e.args
        if e.could_extract_minus_sign() and not (e.is_Mul and len(args) == 2 and args[0] is sp.S.NegativeOne
                                                 and args[1].is_Atom):
            return False
        if e.is_Add or e.is_Mul:
            if len(args) < 2 or len(args) > 8 or not e.is_commutative:
                return False
            found = pairs[sp.Add if e.is_Add else sp.Mul]
            for i, a in enumerate(args):
                for b in args[i + 1:]:
                    pair = frozenset((a, b))
                    if pair in found:
                        return False
                    found.add(pair)
        elif e.is_Pow and e.exp.could_extract_minus_sign():
            return False
        elif type(e) is not sp.Pow and not isinstance(e, sp.Function):
            return False
        todo.extend(args)
    return True


def _shapes(program: Program) -> dict[sp.Symbol, Shape]:
    """The shape of every node's value and adjoint, by symbol."""
    g = program.graph
    shapes = {g.symbol(n): g.shape(n) for n in g.nodes}
    shapes.update({a.target: a.shape for a in program.backward})
    shapes[program.dout] = g.shape(g.output)
    return shapes


def _shape(expr: sp.Expr, shapes: dict[sp.Symbol, Shape]) -> Shape | None:
    try:
        return shape_of(expr, shapes)
    except SymgradError:
        return None


def _stretched(program: Program, shapes: dict[sp.Symbol, Shape]) -> dict[sp.Symbol, sp.Expr]:
    """Adjoints that are a number or a smaller array stretched to an array, kept unstretched
    where every use allows.

    The gradient of a sum's operand is the upstream number broadcast to the
    operand's shape (``dq11 = np.broadcast_to(dq12, (3072, 100))``).  Where it
    is only read by elementwise arithmetic whose result keeps its shape
    without it (``2*dq11*W1``), the number itself is used (``2*dq12*W1``: one
    pass over W1, no stretched operand).  The same holds for a mean over an
    axis kept (``np.broadcast_to(dq5/1024, (256, 1024))`` read by
    ``2*dq3*q2`` stays a column: ``2*dq3`` is 256 products, not 262,144).
    Updates ``shapes`` for those adjoints.
    """
    wrt = set(program.wrt)
    kept: dict[sp.Symbol, sp.Expr] = {}
    readers: dict[sp.Symbol, list[int]] | None = None  # each symbol: the adjoints that read it
    for i, adj in enumerate(program.backward):
        expr = adj.expr
        small = _shape(expr.args[0], shapes) if isinstance(expr, broadcast_to) else None
        if adj.node in wrt or small is None:
            continue
        if readers is None:  # found once, when the first stretched adjoint needs it
            readers = {}
            for j, a in enumerate(program.backward):
                for s in a.expr.free_symbols:
                    readers.setdefault(s, []).append(j)
        uses = [program.backward[j] for j in readers.get(adj.target, ()) if j > i]
        full, shapes[adj.target] = shapes[adj.target], small
        if all(not _inside_array_function(a.expr, adj.target) and _shape(a.expr, shapes) == a.shape
               for a in uses):
            kept[adj.target] = expr.args[0]
        else:
            shapes[adj.target] = full
    return kept


def _inside_array_function(expr: sp.Expr, symbol: sp.Symbol) -> bool:
    """``symbol`` is read by an operation whose result depends on its operands' shapes."""
    todo = [expr]
    while todo:  # one walk, down to the array operations
        e = todo.pop()
        if e.is_Atom:
            continue
        if callable(getattr(type(e), "array_shape", None)):
            if symbol in e.free_symbols:
                return True
            continue
        todo.extend(a for a in e.args if isinstance(a, sp.Basic))
    return False


def _needed(expr: sp.Expr, shared: dict[sp.Symbol, sp.Expr], position: dict[sp.Symbol, int],
            placed: set[sp.Symbol]) -> list[sp.Symbol]:
    """The temporaries ``expr`` needs that are not placed yet, dependencies first."""
    todo = [s for s in expr.free_symbols if s in shared and s not in placed]
    found: set[sp.Symbol] = set()
    while todo:
        s = todo.pop()
        if s not in found:
            found.add(s)
            todo.extend(t for t in shared[s].free_symbols if t in shared and t not in placed)
    return sorted(found, key=position.__getitem__)


def _wrapped(head: str, items: list[str], tail: str) -> list[str]:
    """``head`` + the items joined + ``tail`` on one line if it fits, else one item a line."""
    flat = head + ", ".join(items) + tail
    if len(flat) <= 96:
        return [flat]
    indent = head[:len(head) - len(head.lstrip())] + "    "
    return [head, *(f"{indent}{item}," for item in items), indent[4:] + tail.lstrip()]


_RENAME = re.compile(r"^(\w+) = (\w+)$")
_VIEW = re.compile(r"^(\w+) = (np|xp)\.broadcast_to\(")


def _renamed(lines: list[str]) -> Callable[[str], str]:
    """The name each name of ``lines`` is a plain rename of (``a = b``: ``b``), or itself."""
    alias = {m[1]: m[2] for line in lines if (m := _RENAME.match(line))}

    def root(name: str) -> str:
        seen = set()
        while name in alias and name not in seen:
            seen.add(name)
            name = alias[name]
        return name
    return root


def _fresh(grads: dict[str, str], lines: list[str], held: set[str], arrays: set[str],
           copy: str = "np.copy({})") -> dict[str, str]:
    """``grads`` with each gradient of an array input (``arrays``) that would be an array the
    caller holds or the cache keeps (``held``), another gradient, or a read-only view
    (``broadcast_to``) copied: changing one gradient in place then changes nothing else.
    Names renamed by a plain ``a = b`` among ``lines`` are the same array."""
    root = _renamed(lines)
    views = {m[1] for line in lines if (m := _VIEW.match(line))}
    taken = {root(h) for h in held}
    fresh = {}
    for n, code in grads.items():
        same = root(code) if _NAME.fullmatch(code) else None
        shared = same is not None and n in arrays and (same in taken or same in views)
        fresh[n] = copy.format(code) if shared else code
        if same is not None:
            taken.add(same)
    return fresh


def _own(out: str, arrays: set[str], lines: list[str], copy: str = "np.copy({})") -> str:
    """The output as returned: a copy where it is an array input itself (the graph ``x``) or a
    plain rename of one among ``lines`` (``q1 = x``), so that the caller's array is never the
    value too.  In a graph of scalars (``arrays`` is then every input), ``+q1``: a new array
    for a batch, the float itself for a float."""
    return copy.format(out) if _renamed(lines)(out) in arrays else out


def _owned(g: Graph, out: str, arrays: set[str], lines: list[str]) -> str:
    """:func:`_own` for the NumPy code: ``np.copy`` of an array input, ``+x`` of a scalar's."""
    return _own(out, set(g.inputs), lines, "+{}") if _batchable(g) else _own(out, arrays, lines)


def _returns(grads: dict[str, str], guard: list[str], value: str | None) -> list[str]:
    """The return statement; for a batch of points, each gradient summed to its input's shape."""
    def result(items: list[str], indent: str) -> list[str]:
        head = f"{indent}return " + ("" if value is None else f"{value}, ")
        flat = head + "{" + ", ".join(items) + "}"
        if len(flat) <= 96:
            return [flat]
        return [head + "{", *(f"{indent}    {item}," for item in items), indent + "}"]

    plain = [f'"{n}": {code}' for n, code in grads.items()]
    if not guard:
        return result(plain, "")
    summed = [f'"{n}": _sum_to({code}, {n})' for n, code in grads.items()]
    test = " or ".join(f"{n}.__class__ is np.ndarray" for n in guard)
    return [f"if {test}:  # a batch of points: sum each gradient over it",
            *result(summed, "    "), *result(plain, "")]


def _code(expr: sp.Expr, node: str, shapes: dict[sp.Symbol, Any] | None = None,
          ints: set[sp.Symbol] | None = None, xp: bool = False) -> str:
    try:
        return _bare((array_api_code if xp else numpy_code)(expr, shapes, ints or frozenset()))
    except PrintMethodNotImplementedError:
        what = "array-API" if xp else "NumPy"
        raise UnsupportedError(f"node {node}: no {what} spelling for {expr}") from None
    except SymgradError as e:  # a value with no spelling: nan, inf, a complex number
        raise type(e)(f"node {node}: {e}") from None


def _bare(code: str) -> str:
    """``code`` without parentheses around the whole of it (``(-np.logaddexp(0, q1))``)."""
    if not (code.startswith("(") and code.endswith(")")):
        return code
    depth = 0
    for i, c in enumerate(code):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if depth == 0 and i < len(code) - 1:
            return code  # (a)*(b): the first parenthesis closes early
    return code[1:-1]


def _forward_code(expr: sp.Expr, node: str, shapes: dict[sp.Symbol, Any], ints: set[sp.Symbol]) -> str:
    """A forward line's expression; a number as a float literal, so a constant output is a float."""
    return _number(expr, node) if expr.is_Number else _code(expr, node, shapes, ints)


def _number(value: sp.Expr, node: str) -> str:
    """A number as a float literal; an EvaluationError naming ``node`` where it is nan or inf."""
    try:
        return float_literal(value)
    except EvaluationError as e:
        raise EvaluationError(f"node {node}: {e}") from None


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for line in lines]


def _batchable(graph: Graph) -> bool:
    """A graph of scalars whose ops each act on one point: its inputs may be arrays (a batch of
    points).  A sum, mean or maximum of a scalar would reduce over the batch instead, so a graph
    that has one takes scalars only."""
    return all(d["shape"] == () and d.get("elementwise") is not False for _, d in graph.nx.nodes(data=True))


def codegen(source: Any, path: str | Path | None = None, *, wrt: Iterable[str] | None = None,
            xp: Any = None) -> str:
    """Write a standalone module (NumPy only) with ``forward``, ``backward`` and ``value_and_grad``.

    Parameters
    ----------
    source:
        A :class:`symgrad.Graph`, or anything :func:`symgrad.graph` accepts.
    path:
        Where to write the module; ``None`` only returns the text.
    wrt:
        The inputs to differentiate with respect to (default: all).
    xp:
        True (or an array library, whose functions are then checked) for
        array-API code (:mod:`symgrad.arrayapi`): each function takes the
        library as ``xp``.  None: NumPy code.

    Returns
    -------
    str
        The module's source text.

    >>> import symgrad as sg
    >>> text = sg.codegen("x * y", wrt=["x"])
    >>> print(text[text.index("def value_and_grad"):].split("\\n\\n\\n")[0])
    def value_and_grad(x, y):
        \"\"\"The output q1 and the gradients of its sum: (value, {input: gradient}).\"\"\"
        if not x.__class__ is y.__class__ is float:
            _points((x, y), ('x', 'y'))
        q1 = x*y
        if q1.__class__ is np.ndarray:  # a batch of points: each gradient summed to its input's shape
            return q1, _sum_each(q1, (x, y), {"x": (y, x)})
        return q1, {"x": y}
    """
    from .frontends import graph as build_graph

    g = source if isinstance(source, Graph) else build_graph(source)
    if xp is None or xp is False:
        text = module_source(build_program(g, wrt))
    else:
        from .arrayapi import ArrayCompiled, array_api_source

        text = array_api_source(build_program(g, wrt)) if xp is True else ArrayCompiled(g, wrt, xp).source
    if path is not None:
        try:
            Path(path).write_text(text)
        except OSError as e:
            raise InputError(f"cannot write {str(path)!r}: {e.strerror or e}") from None
    return text
