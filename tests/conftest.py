"""Shared test helpers: independent oracles for gradients."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from symgrad.homework.sandbox import SandboxUnavailable
from symgrad.ops import CUSTOM_FUNCTIONS, OPS, Defined

# Numba compiles the tests' functions without LLVM's optimizations: the same arithmetic (no
# fast-math either way) in half the time; the benchmarks run the optimized code and check it
os.environ.setdefault("NUMBA_OPT", "0")


@pytest.fixture(autouse=True)
def op_table_is_left_as_found():
    """Ops a test defines (sg.define_op) are undefined by its end: none leaks into another test."""
    before = dict(OPS)
    yield
    assert dict(OPS) == before, f"a test left ops defined: {sorted(set(OPS) - set(before))}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that grades code where this machine has no sandbox (no bubblewrap) is skipped,
    saying why: the grader refuses to run submissions there (test_homework_sandbox tests
    that refusal)."""
    outcome = yield
    report = outcome.get_result()
    error = call.excinfo.value if call.excinfo is not None else None
    while error is not None and not isinstance(error, SandboxUnavailable):
        error = error.__cause__ or error.__context__
    said = [line for line in f"{report.capstderr}\n{report.longrepr}".splitlines()
            if any(refused in line for refused in REFUSED)]
    if report.failed and (error is not None or said):
        report.outcome = "skipped"
        why = error if error is not None else said[0].split("symgrad: error: ", 1)[-1][:300]
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: no sandbox here: {why}")


REFUSED = ("symgrad: error: the grader's sandbox needs", "symgrad: error: bubblewrap")


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


def central_differences(f, point: dict, names=None, h: float = 1e-6) -> dict:
    """Central finite differences of the scalar function ``f(**point)``, entry by entry of each
    input in ``names`` (every input by default), each step scaled by the entry's size."""
    grads = {}
    for n in point if names is None else names:
        x = np.asarray(point[n], dtype=float)
        g = np.zeros_like(x)
        for ix in np.ndindex(x.shape):
            step = h * max(1.0, abs(float(x[ix])))
            hi, lo = x.copy(), x.copy()
            hi[ix] += step
            lo[ix] -= step
            if not x.shape:
                hi, lo = float(hi), float(lo)
            g[ix] = (f(**{**point, n: hi}) - f(**{**point, n: lo})) / (2 * step)
        grads[n] = float(g) if not x.shape else g
    return grads


def rel_error(a: float, b: float) -> float:
    return float(np.abs(a - b) / max(np.abs(a) + np.abs(b), 1e-12))


def param_choices(params: tuple[str, ...], shape: tuple[int, ...], negative_axis: bool = True
                  ) -> list[dict]:
    """Every combination of test values for an op's keyword parameters, on an operand of ``shape``."""
    ndim = len(shape)
    identity = tuple(range(ndim))
    swapped = identity[:-2] + identity[:-3:-1] if ndim > 1 else identity
    choices = {
        "axis": [None, *range(ndim)] + ([-1] if negative_axis and ndim else []),
        "keepdims": [False, True],
        "axes": list(dict.fromkeys([identity[::-1], swapped, identity[1:] + identity[:1]])),
        "shape": list(dict.fromkeys([(-1,), (*shape[:1], -1), (-1, *shape[-1:]), shape[::-1]])),
    }
    return [dict(zip(params, combo)) for combo in itertools.product(*(choices[p] for p in params))]


def required_params(params: tuple[str, ...], shape: tuple[int, ...]) -> str:
    """Keyword text (``", shape=(-1,)"``) for the parameters an op cannot do without."""
    needed = tuple(p for p in params if p in ("shape", "axes"))
    if not needed:
        return ""
    return "".join(f", {k}={v}" for k, v in param_choices(needed, shape)[0].items())


def new_children(before: frozenset[int] = frozenset()) -> list[int]:
    """This process's children that are not in ``before`` (taken before the work began:
    libraries such as multiprocessing may keep a helper process of their own for the whole run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in before:
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found
