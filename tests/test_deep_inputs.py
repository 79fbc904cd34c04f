"""Deep expressions from SymPy: built without recursion, derived and compiled, checked against
finite differences."""

import sympy as sp

import symgrad as sg

from .conftest import central_differences, rel_error


def deep_chain(steps: int) -> sp.Expr:
    """h ← h + a·sin(h), ``steps`` times from h = x: three levels a step, each h used twice."""
    x, a = sp.symbols("x a")
    h: sp.Expr = x
    for _ in range(steps):
        h = sp.Add(h, sp.Mul(a, sp.sin(h, evaluate=False), evaluate=False), evaluate=False)
    return h


def test_a_sympy_expression_2000_levels_deep_builds_and_its_gradient_is_right():
    expr = deep_chain(667)
    g = sg.graph(expr)
    assert len(g.operations) == 3 * 667  # each h once, however many consumers it has
    assert "2002 levels deep" in g.source  # too deep to print: summarized
    point = {"x": 0.4, "a": 0.002}
    trace = g.backprop(**point)
    f = g.compile()
    value, grads = f.value_and_grad(**point)
    assert value == trace.value
    numeric = central_differences(lambda **p: f(**p), point)
    for n in point:
        assert rel_error(grads[n], numeric[n]) < 1e-6, n
        assert rel_error(trace.grads[n], grads[n]) < 1e-12, n


def test_constant_parts_and_negated_terms_of_a_sympy_expression_keep_their_shape():
    x, y = sp.symbols("x y")
    g = sg.graph(x - y * sp.exp(2) + 1 / y)
    assert g.backprop(x=1.0, y=2.0).grads == {"x": 1.0, "y": -float(sp.exp(2)) - 0.25}
    assert g.source == str(x - y * sp.exp(2) + 1 / y)
