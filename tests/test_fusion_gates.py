"""The gate library, tested row by row: every spelling equals its gate, every stable
spelling equals what it replaces, and every fragile pattern's gate prints stably."""

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from symgrad.gates import PATTERNS, canonical
from symgrad.ops import BY_CLASS, STABLE_DERIVATIVES
from symgrad.printing import evaluate, numpy_code

from .conftest import elementary

A, B, C = sp.symbols("a b c", real=True)
POINTS = [(-2.3, 0.4, 1.1), (0.7, -1.6, 0.2), (1.9, 2.2, -0.8)]


def bind(e: sp.Expr) -> sp.Expr:
    """Wilds → symbols: ``a`` → a, ``b`` → b, ``rest`` (a sum of exponentials) → e^b + e^c."""
    values = {"a": A, "b": B, "rest": sp.exp(B) + sp.exp(C)}
    return e.xreplace({w: values[w.name] for w in e.atoms(sp.Wild)})


def value(e: sp.Expr, point) -> float:
    # substituted first, so Max(0, ·) compares numbers, not a 0.e-165 left by evalf's subs
    return float(elementary(e).xreplace({s: sp.Float(v, 30) for s, v in zip((A, B, C), point)}).evalf(30))


REWRITES = [(p.name, s, g) for p in PATTERNS for s, g in p.rewrites]


@pytest.mark.parametrize("name, spelling, gate", REWRITES, ids=[f"{n}:{s}" for n, s, _ in REWRITES])
def test_every_spelling_equals_its_gate(name, spelling, gate):
    s, g = bind(spelling), bind(gate)
    for point in POINTS:
        assert value(s, point) == pytest.approx(value(g, point), rel=1e-14)
    assert canonical(s) == canonical(g)
    assert next(p for p in PATTERNS if p.name == name).arguments(canonical(g).as_coeff_Mul()[1]) is not None


@pytest.mark.parametrize("spelling, stable", STABLE_DERIVATIVES, ids=[str(s) for s, _ in STABLE_DERIVATIVES])
def test_every_stable_derivative_spelling_equals_what_it_replaces(spelling, stable):
    s, t = bind(spelling), bind(stable)
    for point in POINTS:
        assert value(s, point) == pytest.approx(value(t, point), rel=1e-12)
        assert float(evaluate(t, dict(zip("abc", point)))) == pytest.approx(value(s, point), rel=1e-12)


@pytest.mark.parametrize("pattern", [p for p in PATTERNS if p.fragile], ids=lambda p: p.name)
def test_every_fragile_patterns_gate_has_a_stable_numpy_spelling(pattern):
    gate = canonical(bind(pattern.rewrites[0][1]))
    for f in gate.atoms(sp.Function):
        spelled = type(f) in BY_CLASS and BY_CLASS[type(f)].numpy
        assert spelled, f"{type(f).__name__} needs a NumPy template in the op table"
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for big in (-1000.0, 1000.0):
            v = evaluate(gate, {"a": big, "b": -big, "c": 0.5 * big})
            assert np.isfinite(v), numpy_code(gate)


def test_pattern_names_are_unique_and_fragile_ones_say_why():
    names = [p.name for p in PATTERNS]
    assert len(names) == len(set(names))
    assert {p.name for p in PATTERNS if p.fragile} == {
        "sigmoid", "softplus", "logsigmoid", "tanh", "logsumexp", "softmax"}


ATOMS = st.sampled_from([A, B, -A, 2 * B, A + B, sp.Float(0.5)])


@st.composite
def spelled(draw, depth=3):
    if depth == 0:
        return draw(ATOMS)
    x, y = draw(spelled(depth - 1)), draw(spelled(depth - 1))
    return draw(st.sampled_from([
        x + y, x * y, 1 / (1 + sp.exp(-x)), sp.exp(x) / (1 + sp.exp(x)), sp.log(1 + sp.exp(x)),
        sp.log(sp.exp(x) + sp.exp(y)), sp.exp(x) / (sp.exp(x) + sp.exp(y)), sp.Max(0, x),
        2 / (1 + sp.exp(-2 * x)) - 1, x - y, sp.log(1 / (1 + sp.exp(-x))),
    ]))


@settings(max_examples=60, deadline=None)
@given(spelled())
def test_canonical_keeps_the_value_and_is_idempotent(e):
    c = canonical(e)
    assert canonical(c) == c
    for point in POINTS[:2]:
        want, got = value(e, point), value(c, point)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
