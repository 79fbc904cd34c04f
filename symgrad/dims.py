"""Named dimensions: shapes whose sizes are names, ``("N", 3)``, bound when the code runs.

A named dimension is a SymPy symbol of that name (a positive integer), so it
flows through shape rules and vector-Jacobian products like any other size: a
mean over ``N`` divides by ``N``, and the generated code reads ``N =
X.shape[0]`` once at the top.  Equal names are the same size; a name never
broadcasts against another size (it may be 1 when the code runs, and then it
is 1 everywhere it appears).

:data:`CHECK` is the input check the generated modules carry (it needs only
NumPy); :func:`check_values` runs the same text, so a compiled function, the
interpreter and a written module refuse a value with the same message.

>>> X = ("N", 3)
>>> read_shape("X", X)
(N, 3)
>>> broadcast(read_shape("X", X), (3,)), size(read_shape("X", X))
((N, 3), 3*N)
>>> text(read_shape("X", X))
'N×3'
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import sympy as sp

from .errors import InputError, ShapeError

Size = Any  # an int, or a named dimension (a SymPy symbol)
Shape = tuple[Size, ...]
RESERVED = frozenset({"np", "numpy", "dout", "cache"})


def dim(name: str) -> sp.Symbol:
    """The symbol of the dimension called ``name``."""
    return sp.Symbol(name, integer=True, positive=True)


def named(n: Any) -> bool:
    """``n`` is a named dimension (not a number)."""
    return isinstance(n, sp.Symbol)


def read_shape(name: str, shape: Any) -> Shape:
    """``shape`` of input ``name`` as sizes and named dimensions, or a ShapeError.

    Sizes are whole numbers ≥ 0; names are identifiers (``"N"``, ``"batch"``).
    """
    if isinstance(shape, (str, int, sp.Symbol)) or not isinstance(shape, Sequence):
        raise ShapeError(f"shape {shape!r} of input {name!r} is not a tuple of sizes")
    out: list[Size] = []
    for n in shape:
        if isinstance(n, str) or named(n):
            text = str(n)
            if not text.isidentifier() or keyword.iskeyword(text) or text.startswith("_") \
                    or text in RESERVED:
                raise ShapeError(f"dimension {text!r} of input {name!r} is not a usable name "
                                 "(an identifier, not starting with _, not np, dout or cache)")
            out.append(dim(text))
            continue
        try:
            size_ = int(n)
        except (TypeError, ValueError):
            raise ShapeError(f"shape {shape!r} of input {name!r} is not a tuple of sizes") from None
        if isinstance(n, bool) or size_ != n:
            raise ShapeError(f"shape {shape!r} of input {name!r} is not a tuple of sizes")
        if size_ < 0:
            raise ShapeError(f"shape {tuple(shape)} of input {name!r} has a negative size")
        out.append(size_)
    return tuple(out)


def names(shapes: Sequence[Shape]) -> list[str]:
    """The dimension names in ``shapes``, each once, in order of appearance."""
    return list(dict.fromkeys(str(n) for s in shapes for n in s if named(n)))


def broadcast(*shapes: Shape) -> Shape:
    """NumPy's broadcast of ``shapes``, with names: equal sizes or names, or a size 1.

    Raises ValueError where they do not broadcast (as ``np.broadcast_shapes``).
    """
    rank = max((len(s) for s in shapes), default=0)
    out: list[Size] = []
    for axis in range(rank):
        size_: Size = 1
        for s in shapes:
            i = axis - rank + len(s)
            if i < 0:
                continue
            n = s[i]
            if n == size_ or n == 1:
                continue
            if size_ != 1:
                raise ValueError(f"shapes {shapes} do not broadcast")
            size_ = n
        out.append(size_ if named(size_) else int(size_))
    return tuple(out)


def size(shape: Shape) -> Any:
    """The number of entries: an int, or a product of names (``3*N``)."""
    total = sp.Mul(*(sp.Integer(n) if not named(n) else n for n in shape))
    return int(total) if total.is_Integer else total


def concrete(shape: Shape, sizes: Mapping[str, int]) -> tuple[int, ...]:
    """``shape`` with each name replaced by its size in ``sizes``."""
    return tuple(sizes[str(n)] if named(n) else int(n) for n in shape)


def show(shape: Shape) -> str:
    """A shape as NumPy writes it, names as they are: ``(N, 3)``, ``(3,)``."""
    return str(tuple(shape))


def text(shape: Shape, times: str = "×") -> str:
    """A shape for people to read: ``N×3``, ``3×H``, ``N`` (a vector), ``scalar``.

    Graph text and pictures show shapes this way; generated code and error
    messages keep NumPy's tuples (:func:`show`).

    >>> text((dim("N"), 3)), text((2,)), text(())
    ('N×3', '2', 'scalar')
    """
    return times.join(map(str, shape)) if shape else "scalar"


def legend(shapes: Mapping[str, Shape], sizes: Mapping[str, int] | None = None) -> str:
    """The line under a table that names the dimensions: ``named dimensions: N = 4 (X: N×3)``.

    ``shapes`` are the inputs' shapes; only those with named dimensions are
    listed, and ``""`` when there are none.  ``sizes`` adds each name's size.

    >>> legend({"X": (dim("N"), 3), "b": (3,)}, {"N": 4})
    'named dimensions: N = 4 (X: N×3)'
    """
    found = names(list(shapes.values()))
    if not found:
        return ""
    dims_ = ", ".join(f"{d} = {sizes[d]}" if sizes and d in sizes else d for d in found)
    inputs = ", ".join(f"{n}: {text(s)}" for n, s in shapes.items() if any(named(d) for d in s))
    return f"named dimensions: {dims_} ({inputs})"


def declared(shape: Shape) -> tuple[Any, ...]:
    """A shape for :data:`CHECK`'s table: sizes as ints, names as strings."""
    return tuple(str(n) if named(n) else int(n) for n in shape)


CHECK = '''\
def _check(values, declared, shape_error=ValueError, value_error=ValueError):
    """Each value an array of its declared shape and kind; the sizes of the named dimensions.

    declared: (name, shape, classes) per input; a shape holds sizes and names of
    dimensions ("N"), and classes is None for real numbers, else the number of
    classes (or the name of the dimension) that integer labels pick from; 0 where
    nothing in the graph picks by them (only their sign is checked).
    """
    sizes = {}
    labels = False
    for value, (name, shape, classes) in zip(values, declared):
        if value.__class__ is np.ndarray:
            got, kind = value.shape, value.dtype
        elif shape and not isinstance(value, np.ndarray):
            raise value_error(f"value of {name!r} must be a NumPy array of shape {_text(shape)}, "
                              f"not {type(value).__name__}")
        else:
            got, kind = np.shape(value), np.asarray(value).dtype
        if got != shape:  # a named dimension, or a wrong shape
            if len(got) != len(shape):
                raise shape_error(f"value of {name!r} has shape {got}, but the graph declares "
                                  f"{_text(shape)}: {len(got)}-dimensional, not {len(shape)}-dimensional")
            for axis, (n, want) in enumerate(zip(got, shape)):
                if want.__class__ is str:
                    seen = sizes.setdefault(want, (n, name))
                    if seen[0] != n:
                        raise shape_error(f"value of {name!r} has shape {got}, but the graph declares "
                                          f"{_text(shape)}: dimension {axis} ({want}) is {n}, but {want} "
                                          f"is {seen[0]} in {seen[1]!r}")
                elif n != want:
                    raise shape_error(f"value of {name!r} has shape {got}, but the graph declares "
                                      f"{_text(shape)}: dimension {axis} is {n}, not {want}")
        if classes is None:
            if kind.kind not in "fiu":
                raise value_error(f"value of {name!r} must be real numbers, not {kind} data")
        else:
            labels = True
            if kind.kind not in "iu":
                raise value_error(f"value of {name!r} must be integer labels, not {kind} data")
    for value, (name, shape, classes) in zip(values, declared) if labels else ():
        if classes is not None and np.size(value):
            count = sizes[classes][0] if classes.__class__ is str else classes
            low, high = (value.min(), value.max()) if value.__class__ is np.ndarray else (value, value)
            if low < 0 or 0 < count <= high:
                raise value_error(f"labels {name!r} must lie in 0 … {count - 1} ({count} classes), "
                                  f"got {low if low < 0 else high}")
    return {k: n for k, (n, _) in sizes.items()}


def _text(shape):
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"
'''

_namespace: dict[str, Any] = {"np": np}
exec(compile(CHECK, "<symgrad-check>", "exec"), _namespace)
_check = _namespace["_check"]


def check_values(values: Sequence[Any], table: Sequence[tuple[str, tuple[Any, ...], Any]]) -> dict[str, int]:
    """Run :data:`CHECK` on ``values``: the sizes of the named dimensions, or a ShapeError
    (shapes) or InputError (kinds, labels) with the message a generated module gives."""
    return _check(values, table, ShapeError, InputError)
