"""Property tests: random expressions over the whole op table.

Each generated expression keeps every operand inside its op's domain by
construction (positive operands pass through ``sigmoid(·) + 0.25``, small ones
through ``tanh``), so values stay finite.  Backprop's gradients must equal
SymPy's own ``diff`` of the whole expression (rel. 1e-10) and central finite
differences (rel. 1e-6), away from kinks.
"""

import numpy as np
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.ops import NONZERO, OPS, POSITIVE, SMALL
from symgrad.printing import array_api_code, numpy_code

from .conftest import central_differences, rel_error, sympy_gradient

VARIABLES = ("a", "b", "c")


def fit(text: str, domain) -> str:
    """Wrap an operand so its value lies in ``domain``."""
    if domain in (POSITIVE, NONZERO):
        return f"(sigmoid({text}) + 0.25)"
    if domain == SMALL:
        return f"tanh({text})"
    return text


@st.composite
def expressions(draw, depth: int = 3, constants: tuple[float, ...] = (0.5, 1, 2, -1.5, 3),
                constant_odds: int = 5) -> str:
    """An expression string over the elementwise ops; a leaf is a constant once in ``constant_odds``."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        if draw(st.integers(1, constant_odds)) == 1:
            return repr(draw(st.sampled_from(constants)))
        return draw(st.sampled_from(VARIABLES))
    op = OPS[draw(st.sampled_from(sorted(n for n, o in OPS.items() if o.elementwise)))]
    args = [fit(draw(expressions(depth - 1, constants, constant_odds)), d) for d in op.domain]
    if op.infix:
        return f"({args[0]} {op.infix} {args[1]})"
    return f"{op.name}({', '.join(args)})"


points = st.fixed_dictionaries(
    {v: st.floats(-2, 2).filter(lambda x: abs(x) > 1e-3) for v in VARIABLES}
)


def away_from_kinks(g: sg.Graph, t: sg.Trace) -> bool:
    for n in g.operations:
        op = OPS.get(g.nx.nodes[n]["op"])
        if op is None or op.kink is None:
            continue
        args = [t.values[o] if isinstance(o, str) else float(o) for o in g.nx.nodes[n]["operands"]]
        if abs(float(op.kink(*args))) < 1e-4:
            return False
    return True


@settings(max_examples=120, deadline=None)
@given(expressions(), points, st.sampled_from(["primitive", "nary"]))
def test_backprop_equals_sympy_diff_and_finite_differences(text, point, granularity):
    g = sg.graph(text, granularity=granularity)
    point = {n: point[n] for n in g.inputs}
    assume(point)
    t = g.backprop(**point)
    assume(away_from_kinks(g, t))
    assume(all(abs(v) < 1e6 for v in t.values.values()))
    exact = sympy_gradient(g.expression(), point)
    numeric = central_differences(lambda **p: g.backprop(**p).value, point)
    for n in g.inputs:
        assert rel_error(t.grads[n], exact[n]) < 1e-10 or abs(t.grads[n] - exact[n]) < 1e-12, (text, n)
        assert rel_error(t.grads[n], numeric[n]) < 1e-6 or abs(t.grads[n] - numeric[n]) < 1e-7, (text, n)


@settings(max_examples=60, deadline=None)
@given(expressions(), points)
def test_the_three_front_ends_agree(text, point):
    from_text = sg.graph(text)
    from_sympy = sg.graph(from_text.expression())
    point = {n: point[n] for n in from_text.inputs}
    assume(point)
    a = from_text.backprop(**point)
    b = from_sympy.backprop(**{n: point[n] for n in from_sympy.inputs})
    assume(away_from_kinks(from_text, a) and away_from_kinks(from_sympy, b))
    assert np.isclose(a.value, b.value, rtol=1e-12, atol=1e-12)
    for n in from_sympy.inputs:
        assert np.isclose(a.grads[n], b.grads[n], rtol=1e-9, atol=1e-12)


# -- the printers against SymPy's lambdify, on products, quotients and integer powers ----------

_X, _Y, _Z = sp.symbols("x y z", real=True)


def _arithmetic(children):
    return st.one_of(
        st.tuples(children, children).map(lambda t: t[0] * t[1]),
        st.tuples(children, children).map(lambda t: t[0] / t[1]),
        st.tuples(children, children).map(lambda t: t[0] + t[1]),
        st.tuples(children, children).map(lambda t: t[0] - t[1]),
        st.tuples(children, st.sampled_from([-4, -3, -2, -1, 2, 3, 4])).map(lambda t: t[0] ** t[1]),
        children.map(lambda c: -c), children.map(sp.exp), children.map(sp.tanh))


ARITHMETIC = st.recursive(st.sampled_from([_X, _Y, _Z, sp.Integer(2), sp.Rational(1, 3), sp.Float(0.7)]),
                          _arithmetic, max_leaves=8)


@settings(max_examples=500, deadline=None)
@given(ARITHMETIC)
def test_printed_code_computes_what_lambdify_computes(e):
    """The NumPy and array-API printers' own spellings (x**3 as a product, scalar factors first)
    keep SymPy's precedence: y/x**3 is y/(x*x*x), never y/x*x*x."""
    assume(isinstance(e, sp.Expr) and not e.has(sp.zoo, sp.nan, sp.oo) and len(str(e)) < 200)
    env = {"x": np.array([1.3, -0.7]), "y": np.array([0.4, 2.1]), "z": np.array([-1.1, 0.9])}
    with np.errstate(all="ignore"):
        want = sp.lambdify([_X, _Y, _Z], e, "numpy")(env["x"], env["y"], env["z"])
        assume(np.all(np.isfinite(want)))
        try:
            codes = [(numpy_code(e), {"np": np}), (array_api_code(e), {"xp": np})]
        except sg.EvaluationError:  # a constant too large for a float
            return
        for code, names in codes:
            assert np.allclose(eval(code, {**names, **env}), want, rtol=1e-9), (e, code)
