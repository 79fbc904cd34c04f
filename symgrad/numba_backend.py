"""``g.compile(backend="numba")``: the generated lines, compiled by Numba.

The entry points and their input checks are the NumPy backend's
(:mod:`symgrad.compiled`); the array body they call, the lines :attr:`source`
shows, runs as one function that Numba compiles to machine code on its first
call.  A small net then pays for one call where NumPy pays for a few dozen,
each with its own overhead.  Where an array input has more than
:data:`symgrad.compiled.NUMBA_MOST` entries, NumPy's lines run instead: the
time is then the arrays', and NumPy's loops over broadcast shapes are the
faster ones.  Floats keep their own lines (a graph of scalars
at one point), and ``backward`` and ``module`` stay NumPy.  A graph of
elementwise ops on scalars, given a batch of points, runs its lines for floats
once per point in one loop (:func:`elementwise`): one pass over memory, where
NumPy makes one for each operation.

Numba reads the generated text as it is, with these differences, made here
and nowhere else:

- ``np`` is NumPy with what Numba's own lacks: ``sum``, ``mean``, ``max``
  and ``min`` over any axis or axes, with ``keepdims``, floats added in NumPy's
  pairwise order (the same sums, to the last bit, for contiguous arrays); ``expand_dims`` of a
  number (a 0-d array in NumPy); ``full`` of an array; ``heaviside``; and
  ``matmul`` (``a @ b`` is printed so) of arrays of any rank;
- an op whose NumPy spelling Numba refuses is written as its row of the op
  table spells it for Numba (``numba=``): the pick of one entry per row,
  ``s[np.arange(n), y]`` (two advanced indices), is ``_pick(s, y)``, and an
  op of :func:`symgrad.define_op` may give a spelling of its own;
- no ``del`` (Numba frees arrays itself), and gradients come back as a tuple
  that a Python function beside it makes the ``{input: gradient}`` dict.

Needs ``pip install 'symgrad[numba]'`` (Numba, and SciPy for its matrix products).
"""

from __future__ import annotations

import ast
import copy
import functools
import linecache
import re
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import UnsupportedError
from .ops import OPS
from .printing import _Arg


@functools.cache
def numba() -> Any:
    """The numba module; an UnsupportedError naming the extra where it is not installed."""
    try:
        import numba as nb
        import scipy.linalg  # noqa: F401  # Numba's matrix products call its BLAS
    except ImportError as e:
        raise UnsupportedError(f"backend='numba' needs Numba and SciPy (pip install 'symgrad[numba]'): "
                               f"{e}") from None
    return nb


def _literal(t: Any, default: Any) -> Any:
    """The value of a literal argument's Numba type (a default where it was left out)."""
    nb = numba()
    if not isinstance(t, nb.types.Type):  # left out: Numba passes the default itself
        return t
    if isinstance(t, (nb.types.Omitted, nb.types.NoneType)):
        return getattr(t, "value", default)
    if isinstance(t, nb.types.BaseTuple):
        return tuple(_literal(e, None) for e in t)
    if isinstance(t, nb.types.Literal):
        return t.literal_value
    raise nb.core.errors.TypingError(f"axis and keepdims must be constants, not {t}")


# each reduction: its start, and how it takes in one more entry v (NaN kept, as in NumPy)
_REDUCE = {"sum": ("0", "acc + v"), "mean": ("0.0", "acc + v"),
           "max": ("-np.inf", "v if v > acc or v != v else acc"),
           "min": ("np.inf", "v if v < acc or v != v else acc")}


# the sum of a[lo:lo + n] (one dimension, floats) in NumPy's own order of additions (its pairwise
# summation: eight running sums in blocks of up to 128 entries, the blocks added in halves), so a
# sum of contiguous floats is NumPy's to the last bit, its rounding error growing as log n, not n
_PAIRWISE = """def _pairwise(a, lo, n):
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    if n <= 128:
        r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
        r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
        end = lo + n - n % 8
        for i in range(lo + 8, end, 8):
            r0 += a[i]
            r1 += a[i + 1]
            r2 += a[i + 2]
            r3 += a[i + 3]
            r4 += a[i + 4]
            r5 += a[i + 5]
            r6 += a[i + 6]
            r7 += a[i + 7]
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for i in range(end, lo + n):
            res += a[i]
        return res
    half = n // 2
    half -= half % 8
    return _pairwise(a, lo, half) + _pairwise(a, lo + half, n - half)
"""


@functools.cache
def _pairwise() -> Any:
    """:data:`_PAIRWISE` compiled by Numba (it calls itself by its global name)."""
    namespace: dict[str, Any] = {}
    exec(_PAIRWISE, namespace)
    namespace["_pairwise"] = numba().njit(error_model="numpy")(namespace["_pairwise"])
    return namespace["_pairwise"]


def _reduction_source(kind: str, ndim: int, axes: tuple[int, ...], keepdims: bool,
                      integers: bool = False, pairwise: str = "") -> str:
    """A Numba function reducing an array of ``ndim`` dimensions over ``axes`` as NumPy would:
    loops over every axis in order (memory order for C arrays: no copy, whichever axes are
    reduced), each entry taken into its kept position's result.

    ``pairwise`` (a sum or mean of floats): ``"C"`` where the array is C-contiguous, else
    ``"A"``.  Where the last axis is reduced, each run along it is added by ``_pairwise``; a C
    array whose reduced axes are its last ones is read as runs as long as all of them together
    (NumPy's runs), so its sums are NumPy's exactly."""
    kept = [i for i in range(ndim) if i not in axes]
    start, step = _REDUCE[kind]
    if integers and kind in ("max", "min"):  # no infinity among integers
        start = str(np.iinfo(np.int64).min if kind == "max" else np.iinfo(np.int64).max)
    shape = [f"a.shape[{i}]" if i in kept else "1" for i in range(ndim)] if keepdims else \
        [f"a.shape[{i}]" for i in kept]
    at = f"out[{', '.join(f'i{k}' for k in kept)}]" if kept else "out[0]"
    count = " * ".join(f"a.shape[{d}]" for d in axes) or "1"
    empty = "" if kind in ("sum", "mean") else "zero-size array to reduction operation " \
        f"{'maximum' if kind == 'max' else 'minimum'} which has no identity"
    read, loops_over = "a", ndim
    if pairwise and ndim - 1 in axes:
        runs = pairwise == "C" and axes == tuple(range(ndim - len(axes), ndim))  # the last axes, runs
        loops_over = ndim - len(axes) if runs else ndim - 1
        if runs and len(axes) > 1:
            read = "runs"
        run = f"{read}[{', '.join(f'i{d}' for d in range(loops_over))}]" if loops_over else read
        taken = [f"{'    ' * (loops_over + 1)}{at} += _pairwise({run}, 0, {read}.shape[{loops_over}])"]
    else:
        taken = [f"{'    ' * (ndim + 1)}acc, v = {at}, a[{', '.join(f'i{d}' for d in range(ndim))}]",
                 f"{'    ' * (ndim + 1)}{at} = {step}"]
    leading = "".join(f"a.shape[{d}], " for d in range(loops_over))
    return "\n".join([
        "def reduce(a, axis=None, keepdims=False):",
        *([f"    if {count} == 0:", f"        raise ValueError({empty!r})"] if empty else []),
        f"    out = np.full(({''.join(f'a.shape[{k}], ' for k in kept) or '1,'}), {start}, "
        f"dtype={'np.float64' if kind == 'mean' else 'a.dtype'})",
        *([f"    runs = a.reshape(({leading}{count},))"] if read == "runs" else []),
        *(f"{'    ' * (d + 1)}for i{d} in range(a.shape[{d}]):" for d in range(loops_over)),
        *taken,
        *(["    out /= " + count] if kind == "mean" else []),
        f"    return out.reshape(({''.join(s + ', ' for s in shape)}))" if shape else "    return out[0]",
    ])


def _reduction(kind: str) -> Callable[..., Any]:
    """NumPy's ``np.<kind>`` for Numba: any axis or tuple of axes, and keepdims (both constants)."""
    nb = numba()

    def reduce(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
        raise NotImplementedError("called only in code Numba compiles")

    @nb.extending.overload(reduce, prefer_literal=True)
    def typed(a, axis=None, keepdims=False):  # type: ignore[no-untyped-def]  # Numba compares signatures
        if not isinstance(a, nb.types.Array):  # a number: itself
            return lambda a, axis=None, keepdims=False: a
        chosen = _literal(axis, None)
        axes = tuple(range(a.ndim)) if chosen is None else \
            tuple(sorted(x % a.ndim for x in (chosen if isinstance(chosen, tuple) else (chosen,))))
        keep = bool(_literal(keepdims, False))
        pairwise = "" if kind in ("max", "min") or not isinstance(a.dtype, nb.types.Float) else \
            "C" if a.layout == "C" else "A"
        if not keep and len(axes) == a.ndim and not pairwise:
            return {"sum": lambda a, axis=None, keepdims=False: a.sum(),
                    "max": lambda a, axis=None, keepdims=False: a.max(),
                    "min": lambda a, axis=None, keepdims=False: a.min(),
                    "mean": lambda a, axis=None, keepdims=False: a.sum() / a.size}[kind]
        namespace: dict[str, Any] = {"np": np, "_pairwise": _pairwise()}
        exec(_reduction_source(kind, a.ndim, axes, keep, isinstance(a.dtype, nb.types.Integer), pairwise),
             namespace)
        return namespace["reduce"]  # type: ignore[no-any-return]

    reduce.__name__ = kind
    return reduce


def _matmul_source(na: int, nb: int) -> str:
    """A Numba function for ``a @ b`` with ``na`` and ``nb`` dimensions, one of them more than
    two: both broadcast to the batch shape, one product of matrices per batch entry."""
    nbatch = max(na, nb) - 2

    def size(name: str, ndim: int, i: int) -> str:  # batch axis i of an operand, 1 where it has none
        axis = i - nbatch + max(ndim - 2, 0)
        return f"{name}.shape[{axis}]" if axis >= 0 and ndim > 2 else "1"

    batch = "".join(f"s{i}, " for i in range(nbatch))
    return "\n".join([
        "def matmul(a, b):",
        "    A = a.reshape((1, a.shape[0]))" if na == 1 else "    A = a",
        "    B = b.reshape((b.shape[0], 1))" if nb == 1 else "    B = b",
        *(f"    s{i} = max({size('a', na, i)}, {size('b', nb, i)})" for i in range(nbatch)),
        f"    S = {' * '.join(f's{i}' for i in range(nbatch))}",
        "    n, k, m = A.shape[-2], A.shape[-1], B.shape[-1]",
        f"    As = np.ascontiguousarray(np.broadcast_to(A, ({batch}n, k))).reshape((S, n, k))",
        f"    Bs = np.ascontiguousarray(np.broadcast_to(B, ({batch}k, m))).reshape((S, k, m))",
        "    out = np.empty((S, n, m))",
        "    for i in range(S):",
        "        out[i] = As[i] @ Bs[i]",
        f"    return out.reshape(({batch}{'' if na == 1 else 'n, '}{'' if nb == 1 else 'm, '}))"])


@functools.cache
def _matmul() -> Any:
    """``a @ b`` for Numba, whose own takes one- and two-dimensional arrays only."""
    nb = numba()

    def matmul(a: Any, b: Any) -> Any:
        raise NotImplementedError("called only in code Numba compiles")

    @nb.extending.overload(matmul)
    def typed(a, b):  # type: ignore[no-untyped-def]  # Numba compares signatures
        if not (isinstance(a, nb.types.Array) and isinstance(b, nb.types.Array)) or max(a.ndim, b.ndim) <= 2:
            return lambda a, b: a @ b
        namespace: dict[str, Any] = {"np": np}
        exec(_matmul_source(a.ndim, b.ndim), namespace)
        return namespace["matmul"]

    return matmul


def _full(shape: Any, fill: Any) -> Any:
    raise NotImplementedError("called only in code Numba compiles")


def _expand_dims(a: Any, axis: Any) -> Any:
    raise NotImplementedError("called only in code Numba compiles")


@functools.cache
def _numpy() -> types.ModuleType:
    module = types.ModuleType("numpy", "NumPy as Numba compiles the generated lines (symgrad.numba_backend)")
    module.__dict__.update({k: v for k, v in vars(np).items() if not k.startswith("__")})
    for kind in _REDUCE:
        setattr(module, kind, _reduction(kind))
    nb = numba()

    @nb.extending.overload(_full)
    def full(shape, fill):  # type: ignore[no-untyped-def]  # np.full of an array: NumPy's broadcast
        if isinstance(fill, nb.types.Array):
            return lambda shape, fill: np.broadcast_to(fill, shape).copy()
        return lambda shape, fill: np.full(shape, fill)

    @nb.extending.overload(_expand_dims, prefer_literal=True)
    def expand_dims(a, axis):  # type: ignore[no-untyped-def]  # of a number (a 0-d array in NumPy) too
        axes = _literal(axis, None)
        count = len(axes) if isinstance(axes, tuple) else 1
        ndim = (a.ndim if isinstance(a, nb.types.Array) else 0) + count
        where = sorted(x % ndim for x in (axes if isinstance(axes, tuple) else (axes,)))
        shape = []
        dims = iter(range(ndim - count))
        for i in range(ndim):
            shape.append("1" if i in where else f"a.shape[{next(dims)}]")
        namespace: dict[str, Any] = {"np": np}
        made = "np.ascontiguousarray(a)" if isinstance(a, nb.types.Array) else "np.full(1, a)"
        exec(f"def expand_dims(a, axis):\n    return {made}.reshape(({', '.join(shape)},))", namespace)
        return namespace["expand_dims"]

    @nb.vectorize(["float64(float64, float64)"])
    def heaviside(x, h):  # type: ignore[no-untyped-def]  # a ufunc Numba lacks
        return 0.0 if x < 0 else 1.0 if x > 0 else h if x == 0 else x

    vars(module).update(full=_full, expand_dims=_expand_dims, heaviside=heaviside, matmul=_matmul())
    return module


@functools.cache
def _pick() -> Any:
    @numba().njit
    def pick(s: Any, y: Any) -> Any:
        """``s[np.arange(n), y]``: row i's entry y[i]."""
        out = np.empty(y.shape[0], dtype=s.dtype)
        for i in range(y.shape[0]):
            out[i] = s[i, y[i]]
        return out

    return pick


def _spelled(template: str | Callable[..., str], operands: list[_Arg], params: tuple[str, ...]) -> ast.expr:
    """An op table spelling with its operands and its parameters at their defaults, parsed."""
    text = template(*operands, **dict.fromkeys(params)) if callable(template) else \
        template.format(*operands, **dict.fromkeys(params, ""))
    return ast.parse(text, mode="eval").body


def _respellings() -> tuple[tuple[ast.expr, ast.expr], ...]:
    """(NumPy spelling, Numba spelling) of each op of the table that declares one for Numba
    (the built-in pick, and ops of :func:`symgrad.define_op` given ``numba=``, as the table
    stands now), with operands ``_0``, ``_1``, … standing for any expression."""
    found = []
    for op in OPS.values():
        if op.numba is not None and op.numpy is not None:
            operands = [_Arg(f"_{i}", f"_{i}") for i in range(op.arity)]
            found.append((_spelled(op.numpy, operands, op.params), _spelled(op.numba, operands, op.params)))
    return tuple(found)


def _bind(pattern: Any, node: Any, bound: dict[str, ast.expr]) -> bool:
    """Whether ``node`` is ``pattern`` with each operand ``_i`` an expression (the same one
    wherever ``_i`` appears), recorded in ``bound``."""
    if isinstance(pattern, ast.Name) and re.fullmatch(r"_\d+", pattern.id):
        seen = bound.setdefault(pattern.id, node)
        return seen is node or ast.dump(seen) == ast.dump(node)
    if isinstance(pattern, list):
        return isinstance(node, list) and len(pattern) == len(node) and \
            all(_bind(p, n, bound) for p, n in zip(pattern, node))
    if not isinstance(pattern, ast.AST):
        return bool(pattern == node)
    return type(pattern) is type(node) and all(
        _bind(getattr(pattern, f), getattr(node, f, None), bound) for f in pattern._fields if f != "ctx")


class _Operands(ast.NodeTransformer):
    def __init__(self, bound: dict[str, ast.expr]):
        self.bound = bound

    def visit_Name(self, node: ast.Name) -> Any:
        return self.bound.get(node.id, node)


class _Respelled(ast.NodeTransformer):
    """Each op the table spells for Numba (``numba=``: the pick ``s[np.arange(n), y]``, two
    advanced indices, is ``_pick(s, y)``) in that spelling, and ``a @ b`` as
    ``np.matmul(a, b)`` (:func:`_matmul`, for arrays of any rank)."""

    def __init__(self) -> None:
        self.respellings = _respellings()

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        self.generic_visit(node)
        if isinstance(node.op, ast.MatMult):
            return ast.Call(ast.Attribute(ast.Name("np", ast.Load()), "matmul", ast.Load()),
                            [node.left, node.right], [])
        return node

    def generic_visit(self, node: ast.AST) -> Any:
        node = super().generic_visit(node)
        for numpy, numba in self.respellings:
            bound: dict[str, ast.expr] = {}
            if _bind(numpy, node, bound):
                return _Operands(bound).visit(copy.deepcopy(numba))
        return node


class _Dicts(ast.NodeTransformer):
    """Each returned ``{input: gradient}`` a tuple of the gradients, ``keys`` their names; and
    no ``del`` (Numba frees each array itself, and refuses the statement)."""

    def __init__(self) -> None:
        self.keys: list[str] | None = None
        self.batch = False  # whether a batch's gradients are summed to their inputs' shapes

    def visit_Delete(self, node: ast.Delete) -> Any:
        return None

    def visit_If(self, node: ast.If) -> Any:
        """``if q.__class__ is np.ndarray: return q, _sum_each(...)`` (a graph of scalars on a
        batch of points) is left to the caller (``_sum_each``, on what Numba returns)."""
        if ast.unparse(node.test).endswith(".__class__ is np.ndarray"):
            self.batch = True
            return None
        return self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> Any:
        if isinstance(node.value, ast.Tuple) and isinstance(grads := node.value.elts[-1], ast.Dict):
            keys = [ast.literal_eval(k) for k in grads.keys if k is not None]
            if self.keys not in (None, keys):
                raise UnsupportedError("the generated function returns gradients of different inputs")
            self.keys = keys
            node.value.elts[-1] = ast.Tuple(grads.values, ast.Load())
        return node


def body_source(name: str, params: str, body: list[str]) -> str:
    """A generated function's lines for Numba, as ``_jit_<name>`` (returning a tuple where the
    generated one returns a dict), and ``_arrays_<name>``, which calls it and gives the dict
    back; Numba's refusal to compile becomes an UnsupportedError (``_unsupported``), raised
    again on later calls without compiling again."""
    tree = ast.parse("\n".join([f"def _jit_{name}({params}):", *("    " + line for line in body)]))
    dicts = _Dicts()
    tree = _Respelled().visit(dicts.visit(tree))
    call = f"_jit_{name}({params})"
    out = f"_r[0], {{{', '.join(f'{k!r}: _r[1][{i}]' for i, k in enumerate(dicts.keys))}}}" \
        if dicts.keys is not None else "_r"
    if dicts.batch and dicts.keys is not None:  # a batch: the value or any input an array
        summed = ", ".join(f"{k!r}: (_r[1][{i}], {k})" for i, k in enumerate(dicts.keys))
        batch = " or ".join(f"{v}.__class__ is _numpy.ndarray" for v in ["_r[0]", *params.split(", ")])
        out = f"(_r[0], _sum_each(_r[0], ({params},), {{{summed}}})) if {batch} else ({out})"
    return "\n".join([ast.unparse(tree), "", "",
                      "_refused = None  # why Numba refused to compile it, once it has", "", "",
                      f"def _arrays_{name}({params}):",
                      "    global _refused",
                      "    if _refused is not None:  # not again: it takes seconds to fail",
                      "        raise _UnsupportedError(_refused)",
                      "    try:", f"        _r = {call}", "    except _NUMBA_ERRORS as e:",
                      f"        _refused = str(_unsupported(e, {name!r}))",
                      "        raise _UnsupportedError(_refused) from None",
                      f"    return {out}", ""])


class _ForLoop(ast.NodeTransformer):
    """The float lines as a loop over points wants them: ``-n if n >= 0.0 else n`` (−|n|, the
    cheapest spelling in Python) as ``-abs(n)``, which a loop computes without a branch; and
    a comparison among the arguments of ``max`` or ``min`` (Python's take a bool as 0 or 1,
    Numba's want numbers of one type) as ``1.0 if ... else 0.0``."""

    def visit_Call(self, node: ast.Call) -> Any:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in ("max", "min"):
            node.args = [ast.IfExp(a, ast.Constant(1.0), ast.Constant(0.0))
                         if isinstance(a, ast.Compare) else a for a in node.args]
        return node

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        self.generic_visit(node)
        test, body, orelse = node.test, node.body, node.orelse
        name = orelse.id if isinstance(orelse, ast.Name) else None
        if (name is not None and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
                and test.left.id == name and len(test.ops) == 1 and isinstance(test.ops[0], ast.GtE)
                and ast.unparse(test.comparators[0]) == "0.0" and ast.unparse(body) == f"-{name}"):
            return ast.UnaryOp(ast.USub(), _call("abs", ast.Name(name, ast.Load())))
        return node


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Name(name, ast.Load()), list(args), [])


def kernel_source(name: str, inputs: tuple[str, ...],
                  lines: list[str]) -> tuple[str, list[str] | None] | None:
    """``_kernel_<name>``: the lines for floats (:func:`symgrad.scalar.scalar_body`) run once for
    each point of a batch, in one loop, storing the output and each gradient in arrays of their
    own (``_out0``, ``_out1``, … as many as the returned values), and the names of the inputs
    whose gradients they are (None for the value alone).  None where the lines do not end in
    their one ``return`` or use a name the loop needs."""
    tree = ast.parse("\n".join(lines))
    returns = [node for node in ast.walk(tree) if isinstance(node, ast.Return)]
    if len(returns) != 1 or tree.body[-1] is not returns[0] or returns[0].value is None:
        return None
    result, keys, outs = returns[0].value, None, [returns[0].value]
    if isinstance(result, ast.Tuple) and len(result.elts) == 2 and isinstance(result.elts[1], ast.Dict):
        grads = result.elts[1]
        keys = [ast.literal_eval(k) for k in grads.keys if k is not None]
        outs = [result.elts[0], *grads.values]
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    mine = {"_i", "_at", *(f"_a_{n}" for n in inputs), *(f"_out{i}" for i in range(len(outs)))}
    if used & mine:
        return None
    body = _ForLoop().visit(_Respelled().visit(ast.Module(tree.body[:-1], []))).body
    params = [*(f"_a_{n}" for n in inputs), *(f"_out{i}" for i in range(len(outs)))]
    text = "\n".join([
        f"def _kernel_{name}({', '.join(params)}):",
        "    for _i in range(_out0.shape[0]):",
        *(f"        {n} = _at(_a_{n}, _i)" for n in inputs),
        *("        " + line for s in body for line in ast.unparse(s).splitlines()),
        *(f"        _out{i}[_i] = {ast.unparse(out)}" for i, out in enumerate(outs))])
    return text, keys


@functools.cache
def _at() -> Any:
    """``_at(x, i)``: entry i of a flat array, or a float itself (an input the batch does not vary)."""
    nb = numba()

    def at(x: Any, i: int) -> Any:
        raise NotImplementedError("called only in code Numba compiles")

    @nb.extending.overload(at)
    def typed(x, i):  # type: ignore[no-untyped-def]  # Numba compares signatures
        if isinstance(x, nb.types.Array):
            return lambda x, i: x[i]
        return lambda x, i: x

    return at


@functools.cache
def _float_helpers() -> dict[str, Any]:
    """The float lines' own functions (:data:`symgrad.scalar.NAMESPACE`), for Numba."""
    from .scalar import NAMESPACE
    nb = numba()
    return {k: nb.njit(v) if isinstance(v, types.FunctionType) else v for k, v in NAMESPACE.items()}


def elementwise(name: str, inputs: tuple[str, ...], lines: list[str], names: dict[str, Any],
                fallback: Callable[..., Any], sum_each: Callable[..., Any]) -> Callable[..., Any] | None:
    """The array body of a graph of scalars for a batch: :func:`kernel_source`'s loop compiled
    by Numba on its first call, one pass over the points where NumPy makes one for each
    operation.  ``names`` are what the lines import.  Inputs are floats and float64 arrays
    whose shapes broadcast; each gradient is summed to its input's shape (``sum_each``).
    Inputs that are all floats, and lines Numba refuses (then and after: ``refused`` is
    true), go to ``fallback``.  None where the lines make no kernel."""
    made = kernel_source(name, inputs, lines)
    if made is None:
        return None
    text, keys = made
    namespace: dict[str, Any] = {**names, **_float_helpers(), "np": _numpy(), "_at": _at()}
    exec(compile(text, f"<symgrad kernel {name}>", "exec"), namespace)
    kernel = numba().njit(error_model="numpy")(namespace[f"_kernel_{name}"])
    errors = refusals()
    count = 1 + (len(keys) if keys is not None else 0)
    index = {n: i for i, n in enumerate(inputs)}
    refused: list[bool] = []

    def run(*values: Any) -> Any:
        if refused or all(v.__class__ is float for v in values):
            return fallback(*values)
        shape = np.broadcast_shapes(*(np.shape(v) for v in values))
        flat = [v if v.__class__ is float else (v if v.shape == shape else np.broadcast_to(v, shape)).ravel()
                for v in values]
        outs = [np.empty(shape) for _ in range(count)]
        try:
            kernel(*flat, *(o.reshape(-1) for o in outs))
        except errors:  # a line Numba cannot compile for floats: the array lines, as before
            refused.append(True)
            return fallback(*values)
        if keys is None:
            return outs[0]
        return outs[0], sum_each(outs[0], values, {k: (g, values[index[k]]) for k, g in zip(keys, outs[1:])})

    run.__name__ = f"_arrays_{name}"
    run.refused = refused  # type: ignore[attr-defined]
    return run


def refusals() -> tuple[type[BaseException], ...]:
    """The errors with which Numba refuses to compile a function."""
    nb = numba()
    return (nb.core.errors.TypingError, nb.core.errors.LoweringError, nb.core.errors.UnsupportedError,
            nb.core.errors.CompilerError)


def unsupported(e: BaseException, name: str) -> UnsupportedError:
    """Numba's refusal to compile ``name``, as an UnsupportedError naming the line it stopped at."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    specific = [line for line in lines if re.match(r"\w+Error: ", line)]
    plain = [line for line in lines if not line.startswith(("Failed in", "During:"))]
    why = (specific[-1] if specific else " ".join(plain[:2])).split(' File "')[0]
    loc = getattr(e, "loc", None)
    line = linecache.getline(loc.filename, loc.line).strip() if loc is not None and loc.line else ""
    return UnsupportedError(f"backend='numba' cannot compile {name}" + (f", at {line}" if line else "")
                            + f": {why}" + " (backend='numpy' runs every graph)")


def namespace() -> dict[str, Any]:
    """What the lines of :func:`body_source` read besides the generated code's own names."""
    return {"np": _numpy(), "_pick": _pick(), "_NUMBA_ERRORS": refusals(), "_unsupported": unsupported,
            "_UnsupportedError": UnsupportedError, "_numpy": np}


def jit(module: types.ModuleType, name: str) -> Callable[..., Any]:
    """``_arrays_<name>`` of a module run from :func:`body_source`, its ``_jit_<name>`` made a
    Numba function (compiled on its first call, for the types it is called with)."""
    jitted = f"_jit_{name}"
    setattr(module, jitted, numba().njit(error_model="numpy")(getattr(module, jitted)))
    return getattr(module, f"_arrays_{name}")  # type: ignore[no-any-return]
