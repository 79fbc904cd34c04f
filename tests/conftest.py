"""Shared test helpers: independent oracles for gradients."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from symgrad.ops import CUSTOM_FUNCTIONS, OPS, Defined


@pytest.fixture(autouse=True)
def op_table_is_left_as_found():
    """Ops a test defines (sg.define_op) are undefined by its end: none leaks into another test."""
    before = dict(OPS)
    yield
    assert dict(OPS) == before, f"a test left ops defined: {sorted(set(OPS) - set(before))}"


def elementary(expr: sp.Expr) -> sp.Expr:
    """``expr`` with symgrad's own functions (sigmoid, relu, softplus, …) written out,
    so that SymPy's derivative of it does not use symgrad's declared rules."""
    return expr.replace(
        lambda e: isinstance(e, (*CUSTOM_FUNCTIONS, Defined)),
        lambda e: type(e).elementary(*e.args),
    )


def sympy_gradient(expr: sp.Expr, point: dict[str, float]) -> dict[str, float]:
    """SymPy's own ``diff`` of ``expr`` evaluated at ``point`` (an oracle)."""
    e = elementary(expr)
    subs = {sp.Symbol(n, real=True): sp.Float(v, 30) for n, v in point.items()}
    return {n: float(sp.diff(e, sp.Symbol(n, real=True)).evalf(30, subs=subs)) for n in point}


def central_differences(f, point: dict[str, float], h: float = 1e-6) -> dict[str, float]:
    """Central finite differences of the scalar function ``f(**point)``."""
    grads = {}
    for n, v in point.items():
        step = h * max(1.0, abs(v))
        hi = f(**{**point, n: v + step})
        lo = f(**{**point, n: v - step})
        grads[n] = (hi - lo) / (2 * step)
    return grads


def rel_error(a: float, b: float) -> float:
    return float(np.abs(a - b) / max(np.abs(a) + np.abs(b), 1e-12))
