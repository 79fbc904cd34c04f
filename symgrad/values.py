"""Checking the numbers a user passes in: every input given, numeric, finite, shaped."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError, ShapeError
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
    """Refuse missing and unknown input names, naming them."""
    unknown = [n for n in values if n not in inputs]
    if unknown:
        raise InputError(
            f"unknown input {', '.join(map(repr, unknown))}; "
            f"the inputs are {', '.join(inputs) or 'none'}"
        )
    missing = [n for n in inputs if n not in values]
    if missing:
        raise InputError(f"missing value for input {', '.join(map(repr, missing))}")


def coerce(inputs: tuple[str, ...], shapes: Mapping[str, tuple[int, ...]],
           values: Mapping[str, Any], dtypes: Mapping[str, str] | None = None) -> dict[str, np.ndarray]:
    """Every input's value as an array of its declared shape: float64, or int64 for labels."""
    check_inputs(inputs, values)
    out = {}
    for name in inputs:
        array = as_array(name, values[name])
        if array.shape != tuple(shapes[name]):
            raise ShapeError(
                f"value of {name!r} has shape {array.shape}, but the graph declares {tuple(shapes[name])}"
            )
        if (dtypes or {}).get(name) == "int":
            if not np.all(array == np.round(array)):
                raise InputError(f"value of {name!r} must be integer labels, got {values[name]!r}")
            array = array.astype(np.int64)
        out[name] = array
    return out


def check_labels(graph: Graph, env: Mapping[str, np.ndarray]) -> None:
    """Refuse labels outside 0 … C−1, where C is the number of scores they pick from."""
    for g, data in _operations(graph.nx):
        for i in op_of(data["op"]).label_operands:
            scores, labels = data["operands"][0], data["operands"][i]
            classes = g.nodes[scores]["shape"][-1] if isinstance(scores, str) else 1
            bad = env[labels][(env[labels] < 0) | (env[labels] >= classes)]
            if bad.size:
                raise InputError(
                    f"labels {labels!r} must lie in 0 … {classes - 1} ({classes} classes), "
                    f"got {int(bad[0])}"
                )


def label_classes(graph: Graph) -> dict[str, int]:
    """``{labels input: the number of classes its labels pick from}`` (the fewest, if several)."""
    classes: dict[str, int] = {}
    for g, data in _operations(graph.nx):
        for i in op_of(data["op"]).label_operands:
            scores, labels = data["operands"][0], data["operands"][i]
            n = g.nodes[scores]["shape"][-1] if isinstance(scores, str) else 1
            classes[labels] = min(n, classes.get(labels, n))
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
