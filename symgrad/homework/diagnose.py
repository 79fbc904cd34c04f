"""Diagnoses: one hint line that says how a wrong gradient is wrong.

:func:`diagnose` compares what a student returned with the reference at
every test point (plain NumPy arrays, one per point) and names the first
explanation that fits all of them: a mistake of the problem's misconception
catalogue (:mod:`symgrad.homework.misconceptions`, named with its node and
a counterexample), a wrong shape, NaN or inf, all zeros, a
flipped sign, a transpose, another variable's gradient, a known alternative
(a missing regularization term, an ignored ``dout``), a constant factor (2,
½, the batch size), or right at only some elements or test points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .misconceptions import Misconception, explain

Arrays = Sequence[Any]


def diagnose(name: str, got: Arrays, want: Arrays, *,
             others: Mapping[str, Arrays] | None = None,
             alternatives: Sequence[tuple[str, Arrays]] = (),
             batch: tuple[str, int] | None = None,
             where: Sequence[str] | None = None,
             misconceptions: Sequence[Misconception] = (),
             rtol: float = 1e-6, atol: float = 1e-9) -> str | None:
    """One hint line for a wrong gradient of ``name``, or None when it is right.

    Parameters
    ----------
    name:
        The variable the gradient belongs to (``"W"``); hints say ``W``.
    got, want:
        The student's values and the reference, one array per test point.
    others:
        ``{variable: reference gradients}`` of the other variables.
    alternatives:
        ``(hint, values)`` pairs: what a known mistake gives, and its hint.
    batch:
        ``(dimension name, size)`` of the batch, for the sum-vs-mean hint.
    where:
        A short description of each test point (``"x=1.5, y=-2"``).
    misconceptions:
        The problem's catalogue (:func:`~symgrad.homework.misconceptions.catalogue`):
        a match is named before any other hint.
    rtol, atol:
        Tolerances, as in :func:`numpy.isclose`.

    Returns
    -------
    str or None

    >>> W = np.arange(6.0).reshape(2, 3)
    >>> diagnose("W", [W.T], [W])
    'shape (3, 2) where W is (2, 3): a missing transpose?'
    >>> diagnose("x", [np.float64(-4.0)], [np.float64(4.0)])
    'sign flipped'
    >>> diagnose("b", [np.ones(3) / 4], [np.ones(3)], batch=("N", 4))
    '1/4 of the right value (N = 4, the batch size): a mean where the sum is taken?'
    """
    got = [np.asarray(g, dtype=float) for g in got]
    want = [np.asarray(w, dtype=float) for w in want]
    shape = want[0].shape
    if misconceptions and (named := explain(name, got, want, misconceptions, where, rtol, atol)):
        return named

    def same(a: Arrays, b: Arrays) -> bool:
        return all(x.shape == y.shape and bool(np.all(np.isclose(x, y, rtol, atol)))
                   for x, y in zip(a, b))

    wrong_shape = next((g.shape for g in got if g.shape != shape), None)
    if wrong_shape is not None:
        return _shape_hint(name, wrong_shape, shape, got, want, batch, same)
    bad = _non_finite(got, where)
    if bad:
        return bad
    if same(got, want):
        return None
    if all(not g.any() for g in got):
        return "all zeros: not computed yet?"
    if same([-g for g in got], want):
        return "sign flipped"
    if len(shape) == 2 and shape[0] == shape[1] and same([g.T for g in got], want):
        return f"transposed: the transpose of this is ∂{name}"
    for other, values in (others or {}).items():
        values = [np.asarray(v, dtype=float) for v in values]
        if other != name and not same(values, want):
            if same(got, values):
                return f"this is ∂{other}: the gradient of another variable?"
            if len(shape) == 2 and all(v.shape == shape[::-1] for v in values) \
                    and same([g.T for g in got], values):
                return f"this is ∂{other} transposed: the gradient of another variable?"
    for hint, values in alternatives:
        values = [np.asarray(v, dtype=float) for v in values]
        if not same(values, want) and same(got, values):
            return hint
    factor = _constant_factor(got, want, rtol, atol)
    if factor is not None and (by_factor := _factor_hint(factor, batch)) is not None:
        return by_factor
    return _partly_right(name, got, want, where, rtol, atol)


def _shape_hint(name: str, got_shape: tuple[int, ...], shape: tuple[int, ...], got: list[np.ndarray],
                want: list[np.ndarray], batch: tuple[str, int] | None, same: Any) -> str:
    if shape == ():
        return f"shape {got_shape} where {name} is a single number"
    if got_shape == ():
        return f"a single number where {name} has shape {shape}"
    head = f"shape {got_shape} where {name} is {shape}"
    shapes_agree = all(g.shape == got_shape for g in got)
    if len(shape) >= 2 and got_shape == shape[::-1]:
        if shapes_agree and same([g.T for g in got], want):
            return f"{head}: a missing transpose?"
        return f"{head}: transposed, and the values differ too"
    if len(got_shape) == len(shape) + 1 and got_shape[1:] == shape:
        n = got_shape[0]
        what = f"the batch axis ({batch[0]} = {n})" if batch and batch[1] == n else "axis 0"
        if shapes_agree and same([g.sum(axis=0) for g in got], want):
            return f"{head}: a missing sum over {what}?"
        return f"{head}: one row per example; sum over {what}?"
    return head


def _non_finite(got: list[np.ndarray], where: Sequence[str] | None) -> str | None:
    bad = [~np.isfinite(g) for g in got]
    if not any(b.any() for b in bad):
        return None
    nan = any(np.isnan(g).any() for g in got)
    kind = "NaN" if nan else "inf"
    why = "a 0/0 or a placeholder left in?" if nan else "an overflow or a division by zero?"
    if got[0].ndim == 0:
        points = [i for i, b in enumerate(bad) if b]
        if len(points) == len(got):
            return f"{kind} at every test point: {why}"
        at = f" ({where[points[0]]})" if where else ""
        return f"{kind} at {len(points)} of {len(got)} test points{at}: {why}"
    first = next(b for b in bad if b.any())
    cells = [list(map(int, i)) for i in zip(*np.nonzero(first))]
    return f"{kind} at {len(cells)} of {first.size} elements ({_cells(cells)}): {why}"


def _constant_factor(got: list[np.ndarray], want: list[np.ndarray], rtol: float,
                     atol: float) -> tuple[float, bool] | None:
    """(c, evidence) when got = c·want at every element and point (c ≠ 1), else None.

    ``evidence`` says whether the reference takes two different values, so that a
    constant ratio is more than a coincidence.
    """
    g = np.concatenate([x.ravel() for x in got])
    w = np.concatenate([x.ravel() for x in want])
    big = np.abs(w) > max(atol, 1e-12) * 10
    if not big.any():
        return None
    ratios = g[big] / w[big]
    c = float(np.median(ratios))
    tol = max(rtol, 1e-7) * 10
    if not np.allclose(ratios, c, rtol=tol, atol=0) or np.isclose(c, 1.0, rtol=tol):
        return None
    if not np.allclose(g[~big], c * w[~big], rtol=tol, atol=atol * max(1.0, abs(c))):
        return None
    return c, bool(np.ptp(w[big]) > tol * np.max(np.abs(w[big])))


def _factor_hint(factor: tuple[float, bool], batch: tuple[str, int] | None) -> str | None:
    """A hint for a named factor (the batch size, 2, ½), or any factor with evidence."""
    c, evidence = factor

    def near(x: float) -> bool:
        return bool(np.isclose(c, x, rtol=1e-6))

    if batch is not None and batch[1] > 2:
        dim, n = batch
        if near(n):
            return f"{n} times the right value ({dim} = {n}, the batch size): a sum where the mean is taken?"
        if near(1 / n):
            return f"1/{n} of the right value ({dim} = {n}, the batch size): a mean where the sum is taken?"
    if near(2):
        return "twice the right value: an extra factor of 2?"
    if near(0.5):
        return "half the right value: a missing factor of 2?"
    return f"off by a constant factor: {c:.4g} times the right value" if evidence else None


def _partly_right(name: str, got: list[np.ndarray], want: list[np.ndarray], where: Sequence[str] | None,
                  rtol: float, atol: float) -> str:
    right = np.stack([np.isclose(g, w, rtol, atol) for g, w in zip(got, want)])  # (points, *shape)
    size = want[0].size
    if size > 1:
        everywhere = right.all(axis=0)
        if everywhere.any():
            wrong = [list(map(int, i)) for i in zip(*np.nonzero(~everywhere))]
            if len(wrong) <= size - len(wrong):
                return f"right at {size - len(wrong)} of {size} elements; wrong at {_cells(wrong)}"
            cells = [list(map(int, i)) for i in zip(*np.nonzero(everywhere))]
            return f"wrong at {len(wrong)} of {size} elements; right only at {_cells(cells)}"
    per_point = right.reshape(len(got), -1).all(axis=1)
    if per_point.any():
        first = int(np.argmin(per_point))
        at = f"; wrong at {where[first]}" if where else ""
        return f"right at {int(per_point.sum())} of {len(got)} test points{at}"
    i = next(i for i in range(len(got)) if not right[i].all())
    g, w = got[i], want[i]
    at = f" at {where[i]}" if where else ""
    if w.ndim == 0:
        return f"expected {_num(w)}, got {_num(g)}{at}"
    err = np.abs(g - w)
    cell = tuple(int(k) for k in np.unravel_index(int(np.argmax(err)), w.shape))
    return (f"wrong: largest difference at {list(cell)}: expected {_num(w[cell])}, "
            f"got {_num(g[cell])}{at}")


def _cells(cells: list[list[int]], shown: int = 4) -> str:
    text = ", ".join(str(c) for c in cells[:shown])
    return text + (f" and {len(cells) - shown} more" if len(cells) > shown else "")


def _num(v: Any) -> str:
    x = float(v)
    return "0" if x == 0 else f"{x:.4g}"
