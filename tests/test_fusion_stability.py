"""Stable gates: values and gradients from −1000 to 1000 against mpmath, and the stability lint.

Every number here goes through the interpreter, which evaluates the
Program's assignments with symgrad/printing.py's NumPy spelling (what
compiled code uses) and raises on overflow, invalid values and division by
zero.  The reference is mpmath at 60 digits.  Where the reference is a
normal float64 the result must agree to rel. 1e-12; where it is below the
normal range (it underflows), the result must be as tiny.
"""

import importlib
import math
import re
import warnings
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.ops import OPS
from symgrad.printing import evaluate

mp.mp.dps = 60
TINY, HUGE = np.finfo(float).tiny, np.finfo(float).max
GRID = np.unique(np.concatenate([
    np.linspace(-1000, 1000, 801), [-745.2, -709.5, -708.3, -37.5, -36.9, -1e-9, 0.0, 1e-9, 36.9, 37.5, 708.3,
                                    709.5, 745.2],
]))


def sig(x):
    return 1 / (1 + mp.exp(-x))


def lse(*values):
    """log(Σ e^v), exact to 60 digits even where it is nearly the largest v."""
    vs = sorted(mp.mpf(v) for v in values)
    return vs[-1] + mp.log1p(mp.fsum(mp.exp(v - vs[-1]) for v in vs[:-1]))


REFERENCES = {  # pattern: (spelling, value(x), d/dx)
    "sigmoid": ("1/(1+exp(-x))", sig, lambda x: sig(x) * sig(-x)),
    "logsigmoid": ("log(1/(1+exp(-x)))", lambda x: -mp.log1p(mp.exp(-x)), lambda x: sig(-x)),
    "softplus": ("log(1+exp(x))", lambda x: mp.log1p(mp.exp(x)), sig),
    "tanh": ("(exp(x)-exp(-x))/(exp(x)+exp(-x))", mp.tanh, lambda x: mp.sech(x) ** 2),
}


def agree(got: np.ndarray, reference: list) -> None:
    """``got`` equals the mpmath ``reference`` to rel. 1e-12 wherever that is a normal float."""
    got = np.asarray(got, dtype=float)
    assert np.all(np.isfinite(got))
    for g, r in zip(got.ravel(), reference):
        if TINY <= abs(r) <= HUGE:
            assert abs(g - float(r)) <= 1e-12 * abs(float(r)), (g, r)
        else:
            assert abs(g) <= 1e3 * TINY, (g, r)


def run(graph: sg.Graph, **values):
    """Backprop with every warning an error (the interpreter raises on overflow itself)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return graph.backprop(dout=np.ones(np.shape(next(iter(values.values())))), **values)


@pytest.mark.parametrize("pattern", sorted(REFERENCES))
def test_unary_gates_match_mpmath_from_minus_to_plus_1000(pattern):
    text, value, slope = REFERENCES[pattern]
    g = sg.graph(text, shapes={"x": GRID.shape})
    fused = g.fuse(pattern)
    assert [fused.nx.nodes[n]["label"] for n in fused.operations] == [pattern]
    t = run(fused, x=GRID)
    agree(t.value, [value(mp.mpf(x)) for x in GRID])
    agree(t.grads["x"], [slope(mp.mpf(x)) for x in GRID])


@pytest.mark.parametrize("pattern", sorted(REFERENCES))
def test_compiled_gates_match_mpmath_from_minus_to_plus_1000(pattern):
    """The generated code, whose value_and_grad shares a sigmoid's exp with its gradient."""
    text, value, slope = REFERENCES[pattern]
    f = sg.graph(text).fuse(pattern).compile()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for vg in (f.value_and_grad, lambda x: (f.forward(x=x)[0], f.backward(1.0, f.forward(x=x)[1]))):
            v, grads = vg(x=GRID)
            agree(v, [value(mp.mpf(x)) for x in GRID])
            agree(grads["x"], [slope(mp.mpf(x)) for x in GRID])
        for x in (-1000.0, -745.2, -709.5, -40.0, 0.0, 40.0, 709.5, 1000.0):  # floats: the sign test
            v, grads = f.value_and_grad(x=x)
            agree([v], [value(mp.mpf(x))])
            agree([grads["x"]], [slope(mp.mpf(x))])


@pytest.mark.parametrize("text, slope", [
    ("sigmoid(-x)", lambda x: -sig(x) * sig(-x)),
    ("sigmoid(sigmoid(x) * 30 - 15)",
     lambda x: sig(30 * sig(x) - 15) * sig(15 - 30 * sig(x)) * 30 * sig(x) * sig(-x)),
])
def test_shared_sigmoid_exponentials_keep_the_precision_of_the_gradient(text, slope):
    f = sg.graph(text).compile()
    assert "_exp_q" in f.source.split("def value_and_grad")[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, grads = f.value_and_grad(x=GRID)
    agree(grads["x"], [slope(mp.mpf(x)) for x in GRID])


def test_the_shared_sigmoid_is_spelled_as_the_docs_say():
    """docs/stability.md quotes the value and the gradient of a sigmoid node in value_and_grad."""
    docs = (Path(__file__).parent.parent / "docs" / "stability.md").read_text()
    quoted = re.search(r"as `(np\.maximum\(_exp_q, a >= 0\)/\(1 \+ _exp_q\))`", docs)
    gradient = re.search(r"σ\(a\)·σ\(−a\) is `(_exp_q/\(1 \+ _exp_q\)\*\*2)`", docs)
    assert quoted and gradient
    body = sg.graph("sigmoid(x)").compile().source.split("def value_and_grad")[1]
    assert f"q1 = {quoted[1].replace('_exp_q', '_exp_q1').replace('a >=', 'x >=')}" in body
    assert f"dx = {gradient[1].replace('_exp_q', '_exp_q1')}" in body


def test_the_shared_sigmoids_derivative_replaces_only_a_product_of_its_own():
    """q*σ(−a) becomes e/(1 + e)²; where / or ** binds q or σ(−a) more tightly, it stays."""
    share = importlib.import_module("symgrad.codegen")._share_sigmoids
    sig = OPS["sigmoid"].numpy.format
    forward = ["q = " + sig("a")[1:-1]]
    derivative, minus = "_exp_q/(1 + _exp_q)**2", "(np.maximum(_exp_q, a < 0)/(1 + _exp_q))"
    for adjoint, want in [
        (f"d = q*{sig('-a')}", f"d = {derivative}"),
        (f"d = 2*q*{sig('-a')}/3", f"d = 2*({derivative})/3"),
        (f"d = -q*{sig('-a')}", f"d = -({derivative})"),
        (f"d = x/q*{sig('-a')}", f"d = x/q*{minus}"),
        (f"d = y**q*{sig('-a')}", f"d = y**q*{minus}"),
        (f"d = q*{sig('-a')}**2", f"d = q*{minus}**2"),
        (f"d = p*{sig('-a')}", f"d = p*{minus}"),
    ]:
        assert share(forward, [adjoint], {"q", "a"})[1] == [want]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_plus_tanh_is_two_sigmoids_exact_where_it_rounds_to_zero(dtype):
    """The compiled code computes 1 + tanh(u) as 2σ(2u) (GELU's tanh form has it): no cancellation
    where tanh(u) is near −1, sech²(u) from the same exp, and no overflow in any float type."""
    f = sg.graph("(1 + tanh(x))*y").compile()
    assert "np.tanh(" not in f.source.split("def value_and_grad")[1].split("\ndef ")[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for grid in (GRID, *([x] for x in GRID[::40])):  # a batch, and floats one by one
            x = np.asarray(grid, dtype=dtype) if dtype != np.float64 or len(grid) > 1 else float(grid[0])
            y = 1.0 if np.ndim(x) == 0 else np.ones_like(x)
            value, grads = f.value_and_grad(x=x, y=y)
            assert np.array_equal(f(x=x, y=y), value)  # the value alone is computed the same way
            out, cache = f.forward(x=x, y=y)  # and so are forward and backward
            assert np.array_equal(out, value) and np.allclose(f.backward(1.0, cache)["x"], grads["x"],
                                                              rtol=1e-15, atol=0)
            if dtype == np.float64:
                agree(np.atleast_1d(value), [2 * sig(2 * mp.mpf(v)) for v in np.atleast_1d(grid)])  # 1 + tanh
                agree(np.atleast_1d(grads["x"]), [mp.sech(mp.mpf(v)) ** 2 for v in np.atleast_1d(grid)])
            else:  # the module keeps float32 (the compiled entry converts to float64)
                value, grads = f.module.value_and_grad(x, y)
                assert value.dtype == grads["x"].dtype == np.float32
                assert np.all(np.isfinite(value)) and np.all(np.isfinite(grads["x"]))
                want = 2 * np.exp(-np.logaddexp(0, -2 * x.astype(float)))  # 2σ(2x) in float64
                assert np.allclose(value, want, rtol=1e-6, atol=1e-37)  # float32's normal range
    t = sg.graph("(1 + tanh(x))*y").backprop(x=-20.0, y=1.0)
    assert t.value < 1e-16 and t.grads["x"] == pytest.approx(4 * math.exp(-40), rel=1e-12)


@pytest.mark.parametrize("text", ["(1 + tanh(x))*tanh(x)", "tanh(x) + 1", "(tanh(x) + 1)*(2 + tanh(x))",
                                  "(1 + tanh(x*y))*x", "(1 + tanh(x))*(1 + tanh(x))"])
def test_tanh_plus_one_agrees_with_the_interpreter_where_it_is_rewritten_or_not(text):
    g = sg.graph(text)
    f = g.compile()
    point = {n: np.linspace(-3.0, 2.0, 7) + i for i, n in enumerate(g.inputs)}
    value, grads = f.value_and_grad(**point)
    for k in range(7):
        at = {n: float(v[k]) for n, v in point.items()}
        t = g.backprop(**at)
        floats = f.value_and_grad(**at)
        for got_value, got in ((value[k], {n: grads[n][k] for n in g.inputs}), floats):
            assert got_value == pytest.approx(t.value, rel=1e-13, abs=1e-15)
            assert all(got[n] == pytest.approx(t.grads[n], rel=1e-12, abs=1e-15) for n in g.inputs)


@pytest.mark.parametrize("offset", [-1500.0, -800.0, -30.0, -1.0, 0.0, 2.5, 40.0, 700.0])
def test_log_sum_exp_matches_mpmath_from_minus_to_plus_1000(offset):
    x, y = GRID, GRID + offset
    g = sg.graph("log(exp(x) + exp(y))", shapes={"x": GRID.shape, "y": GRID.shape}).fuse("logsumexp")
    t = run(g, x=x, y=y)
    ref = [lse(a, b) for a, b in zip(x, y)]
    agree(t.value, ref)
    agree(t.grads["x"], [mp.exp(mp.mpf(a) - s) for a, s in zip(x, ref)])
    agree(t.grads["y"], [mp.exp(mp.mpf(b) - s) for b, s in zip(y, ref)])


def test_three_operand_log_sum_exp_matches_mpmath():
    n = GRID.shape
    g = sg.graph("log(exp(x) + exp(y) + exp(z))", shapes={"x": n, "y": n, "z": n}).fuse("logsumexp")
    x, y, z = GRID, GRID[::-1].copy(), np.clip(GRID * 0.5 - 3, -1000, 1000)
    t = run(g, x=x, y=y, z=z)
    ref = [lse(*vs) for vs in zip(x, y, z)]
    agree(t.value, ref)
    for name, vs in (("x", x), ("y", y), ("z", z)):
        agree(t.grads[name], [mp.exp(mp.mpf(v) - s) for v, s in zip(vs, ref)])


@pytest.mark.parametrize("pattern", ["sigmoid", "logsigmoid", "softplus"])
def test_the_spelled_out_graph_overflows_where_the_gate_does_not(pattern):
    text = REFERENCES[pattern][0]
    x = 1000.0 if pattern == "softplus" else -1000.0
    with pytest.raises(sg.EvaluationError, match="overflow"):
        sg.graph(text).backprop(x=x)
    assert np.isfinite(run(sg.graph(text).fuse(pattern), x=x).grads["x"])


def test_the_cached_gradient_loses_what_the_numeric_form_keeps():
    g = sg.graph("1/(1+exp(-x))").fuse("sigmoid")
    q = sp.Symbol(g.output, real=True)
    cached = g.local_derivatives(g.output, cached=True)["x"]
    numeric = g.local_derivatives(g.output, form="numeric")["x"]
    assert cached == q * (1 - q)
    env = {"x": 40.0, g.output: evaluate(g.expr(g.output), {"x": 40.0})}
    assert float(evaluate(cached, env)) == 0.0  # 1 - q rounds to 0
    exact = float(sig(mp.mpf(40)) * sig(mp.mpf(-40)))
    assert float(evaluate(numeric, env)) == pytest.approx(exact, rel=1e-14)


def test_binary_cross_entropy_after_fuse_stable_matches_mpmath():
    n = GRID.shape
    g = sg.graph("-(y*log(sigmoid(z)) + (1-y)*log(1-sigmoid(z)))", shapes={"y": n, "z": n})
    s = g.fuse_stable()
    z = sp.Symbol("z", real=True)
    assert {s.expr(n) for n in s.gates} == {sg.logsigmoid(z), sg.logsigmoid(-z)}
    for label in (0.0, 1.0):
        t = run(s, y=np.full(n, label), z=GRID)
        zs = [mp.mpf(z) for z in GRID]
        agree(t.value, [mp.log1p(mp.exp(-z)) if label else mp.log1p(mp.exp(z)) for z in zs])
        agree(t.grads["z"], [-sig(-z) if label else sig(z) for z in zs])


# -- lint -----------------------------------------------------------------------------


@pytest.mark.parametrize("text, gate", [
    ("log(1 + exp(a)) * b", "softplus"),
    ("log(sigmoid(a)) + b", "logsigmoid"),
    ("exp(a)/(exp(a) + exp(b))", "softmax"),
    ("exp(a)/(exp(a) + exp(b) + exp(c))", "softmax"),
    ("2 * 1/(1 + exp(-a))", "sigmoid"),
    ("log(exp(a) + exp(b)) - a", "logsumexp"),
    ("(exp(a)-exp(-a))/(exp(a)+exp(-a))", "tanh"),
])
def test_lint_names_the_fragile_node_and_its_stable_gate(text, gate):
    g = sg.graph(text)
    findings = g.lint()
    assert [f.gate for f in findings] == [gate]
    f = findings[0]
    assert f.nodes[-1] == f.node and set(f.nodes) <= set(g.operations)
    assert str(f).startswith(f"{f.node} = ") and f"use the {gate} gate" in str(f)
    stable = g.fuse_stable()
    assert stable.lint() == [] and stable.nx.nodes[f.node]["label"] == gate
    point = {n: v for n, v in zip(g.inputs, [0.4, -1.3, 0.9])}
    assert stable.backprop(**point).grads == pytest.approx(g.backprop(**point).grads, rel=1e-10)


@pytest.mark.parametrize("text", [
    "sigmoid(a) * b", "softplus(a)", "logsigmoid(a)", "logaddexp(a, b)", "max(0, a) + relu(b)",
    "a*b + c", "exp(a) * b", "log(a + 1)", "tanh(a)",
])
def test_lint_passes_stable_spellings(text):
    assert sg.graph(text).lint() == []
    assert sg.graph(text).fuse_stable().nodes == sg.graph(text).nodes


def test_lint_finds_each_spelling_in_one_graph():
    g = sg.graph("-(y*log(sigmoid(z)) + (1-y)*log(1-sigmoid(z))) + log(1 + exp(z))")
    findings = g.lint()
    assert [(f.node, f.gate, f.replacement) for f in findings] == [
        ("q2", "logsigmoid", sg.logsigmoid(sp.Symbol("z", real=True))),
        ("q6", "logsigmoid", sg.logsigmoid(-sp.Symbol("z", real=True))),
        ("q12", "softplus", sg.softplus(sp.Symbol("z", real=True))),
    ]
    assert findings[0].nodes == ("q1", "q2")  # the shared sigmoid is recomputed by the gate
    t = g.fuse_stable().backprop(y=1.0, z=-1000.0)
    assert t.value == pytest.approx(1000.0, rel=1e-12) and t.grads["z"] == pytest.approx(-1.0, rel=1e-12)


def test_the_sigmoid_keeps_its_subnormal_values_so_its_log_is_right():
    """σ(a) ≈ e^a is subnormal for a from −745 to −708: every spelling keeps it, so log σ(−720)
    is −720, not the log of a capped exponential's 1e-308 (−709)."""
    f = sg.graph("sigmoid(x)").compile()
    xs = np.array([-744.0, -720.0, -709.5, -708.0])
    exact = np.exp(xs)  # σ(a) = e^a (1 − e^a + …): e^a to the last subnormal bit here
    for got in (f(x=xs), f.value_and_grad(x=xs)[0], f.forward(x=xs)[0],
                np.array([f.value_and_grad(x=float(x))[0] for x in xs])):
        np.testing.assert_allclose(got, exact, rtol=1e-9, atol=0)
    g = sg.graph("log(sigmoid(x)) * y").compile()  # lint would suggest logsigmoid; the value is right anyway
    np.testing.assert_allclose(g(x=np.array([-720.0, -30.0]), y=1.0),
                               [-720.0, -30.0 - np.log1p(np.exp(-30.0))], rtol=1e-12)
