"""Checking the numbers a user passes in: every input given, numeric, finite, shaped."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .dims import Shape, check_values, declared, named
from .errors import InputError
from .hints import did_you_mean
from .ops import op_of

if TYPE_CHECKING:
    from .graph import Graph


def as_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array, or an InputError naming ``name``."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        raise InputError(f"value of {name!r} must be a number, not {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        raise InputError(f"value of {name!r} must be real, not {value!r}")
    try:
        array = np.asarray(value)
    except Exception:
        raise InputError(f"value of {name!r} is not numeric: {value!r}") from None
    if array.dtype.kind not in "iuf":
        what = "complex" if array.dtype.kind == "c" else f"{array.dtype} data"
        raise InputError(f"value of {name!r} must be real numbers, not {what}")
    array = array.astype(float, copy=False)
    if not np.isfinite(np.sum(array)) and not np.all(np.isfinite(array)):  # the sum: one pass, no mask
        raise InputError(f"value of {name!r} is not finite: {value!r}")
    return array


def check_inputs(inputs: tuple[str, ...], values: Mapping[str, Any]) -> None:
    """Refuse missing and unknown input names, naming them (and the input a typo meant)."""
    hint = ""
    known = set(inputs)  # a set: many inputs stay linear
    unknown = [n for n in values if n not in known]
    missing = [n for n in inputs if n not in values]
    if unknown:
        if len(unknown) == 1:
            hint = did_you_mean(unknown[0], missing or inputs, " (did you mean {!r}?)")
        raise InputError(
            f"unknown input {', '.join(map(repr, unknown))}{hint}; "
            f"the inputs are {', '.join(inputs) or 'none'}"
        )
    if missing:
        hint = "; e is an input here: for Euler's number, write exp(x), not e**x" if "e" in missing else ""
        raise InputError(f"missing value for input {', '.join(map(repr, missing))}{hint}")


def coerce(inputs: tuple[str, ...], shapes: Mapping[str, Shape],
           values: Mapping[str, Any], dtypes: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """Every input's value as an array of its declared shape: float64, or int64 for labels
    (which must come as integers: 1.0 is refused, as a written module refuses it).

    Named dimensions take their sizes from the values, the same in every input
    that names them; :func:`sizes` reads them back.
    """
    check_inputs(inputs, values)
    out = {}
    for name in inputs:
        array = as_array(name, values[name])
        if (dtypes or {}).get(name) == "int":  # as a written module's _check: integer dtypes only
            kind = np.asarray(values[name]).dtype
            if kind.kind not in "iu":
                raise InputError(f"value of {name!r} must be integer labels, not {kind} data")
            array = np.asarray(values[name]).astype(np.int64)
        out[name] = array
    check_values(list(out.values()), [(n, declared(shapes[n]), None) for n in inputs])
    return out


def sizes(shapes: Mapping[str, Shape], arrays: Mapping[str, Any]) -> dict[str, int]:
    """``{dimension name: its size}`` as the arrays (already checked) give them."""
    return {str(n): np.shape(arrays[name])[axis]
            for name, shape in shapes.items() for axis, n in enumerate(shape) if named(n)}


def check_labels(graph: Graph, env: Mapping[str, np.ndarray]) -> None:
    """Refuse labels outside 0 … C−1, where C is the number of scores they pick from."""
    known = sizes({n: graph.shape(n) for n in graph.inputs}, env)
    for labels, found in label_classes(graph).items():
        classes = known[found] if isinstance(found, str) else found
        bad = env[labels][(env[labels] < 0) | (env[labels] >= classes)]
        if bad.size:
            raise InputError(
                f"labels {labels!r} must lie in 0 … {classes - 1} ({classes} classes), "
                f"got {int(bad[0])}"
            )


def label_classes(graph: Graph) -> dict[str, int | str]:
    """``{labels input: the number of classes its labels pick from}`` (the fewest, if several),
    or the name of the dimension that gives it; found once per graph (a graph does not change)."""
    found = vars(graph).get("_label_classes")
    if found is None:
        found = vars(graph)["_label_classes"] = _label_classes(graph)
    return dict(found)


def _label_classes(graph: Graph) -> dict[str, int | str]:
    """:func:`label_classes`, found from the graph's operations."""
    classes: dict[str, int | str] = {}
    for g, data in _operations(graph.nx):
        for i in op_of(data["op"]).label_operands:
            scores, labels = data["operands"][0], data["operands"][i]
            if i == 0:  # labels spread over a class axis of the node's own (onehot)
                n = data["shape"][-1]
            else:
                n = g.nodes[scores]["shape"][-1] if isinstance(scores, str) else 1
            n = str(n) if named(n) else int(n)
            have = classes.get(labels, n)
            numbers_ = [c for c in (n, have) if isinstance(c, int)]
            classes[labels] = min(numbers_) if numbers_ else n
    return classes


def _operations(g: Any) -> list[tuple[Any, dict[str, Any]]]:
    """(graph, attributes) of every operation node, the ones fused into gates too."""
    found = []
    for _, data in g.nodes(data=True):
        if data["kind"] == "gate":
            found += _operations(data["body"])
        elif data["kind"] == "op":
            found.append((g, data))
    return found
