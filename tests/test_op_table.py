"""Tests generated from the op table: every row, at points inside its declared domain."""

import inspect
import math

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.errors import SymgradError
from symgrad.ops import CUSTOM_FUNCTIONS, OPS, Defined, Domain
from symgrad.tracing import apply

from .conftest import central_differences, rel_error, sympy_gradient

NAMES = "abcd"
INFIX_CALLS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
               "div": lambda a, b: a / b, "pow": lambda a, b: a**b}


def sample(domain: Domain, rng: np.random.Generator) -> float:
    v = rng.uniform(domain.lo, domain.hi)
    return float(v * rng.choice([-1, 1])) if domain.signed else float(v)


def text_of(op) -> str:
    args = NAMES[: op.arity]
    if op.infix:
        return f" {op.infix} ".join(args)
    return f"{op.name}({', '.join(args)})"


def row_graphs() -> list[tuple[str, sg.Graph]]:
    """(name, graph) of each row of the table that builds, plain and with every gate fused."""
    found = []
    for name in sorted(OPS):
        for fused in (False, True):
            try:
                g = sg.graph(text_of(OPS[name]))
                found.append((f"{name}{'-fused' if fused else ''}", g.fuse_all() if fused else g))
            except SymgradError:
                continue
    return found


def check_row(op) -> None:
    """The row declares what every backend and test needs."""
    assert len(op.domain) == op.arity, f"{op.name} needs one domain per operand"
    assert op.label
    if op.function_class is not None:
        assert op.numpy or issubclass(op.function_class, Defined), f"{op.name} needs a NumPy spelling"
    if op.kink is not None:
        assert len(inspect.signature(op.kink).parameters) == op.arity + len(op.params)


def check_gradient(op, front: str, function=None) -> None:
    """The op's graph from ``front`` gives SymPy's gradient and the finite differences' at points
    inside its domain; ``function`` is the op as a Python function (default ``sg.<name>``)."""
    name = op.name
    names = NAMES[: op.arity]
    symbols = [sp.Symbol(n, real=True) for n in names]
    if front == "string":
        g = sg.graph(text_of(op))
    elif front == "sympy":
        g = sg.graph(op.sympy(*symbols))
    else:
        f = INFIX_CALLS.get(name) or function or getattr(sg, name)
        g = sg.graph((lambda a: f(a)) if op.arity == 1 else (lambda a, b: f(a, b)))
    expr = g.expression()
    rng = np.random.default_rng(sorted(OPS).index(name))
    for _ in range(5):
        point = {n: sample(d, rng) for n, d in zip(names, op.domain)}
        if op.kink is not None and abs(float(op.kink(*point.values()))) < 1e-3:
            continue
        t = g.backprop(**point)
        exact = sympy_gradient(expr, point)
        numeric = central_differences(lambda **p: g.backprop(**p).value, point)
        for n in names:
            assert rel_error(t.grads[n], exact[n]) < 1e-10, (name, n, point)
            assert rel_error(t.grads[n], numeric[n]) < 1e-6, (name, n, point)


def check_declared_derivative(cls) -> None:
    """A function's declared derivative equals SymPy's derivative of its elementary form."""
    a = sp.Symbol("a", real=True)
    declared = sp.diff(cls(a), a)
    derived = sp.diff(cls.elementary(a), a)
    for v in [-3.0, -0.7, 0.4, 2.5]:
        want = float(derived.subs(a, v).evalf())
        got = float(declared.subs(a, v).rewrite(sp.exp).rewrite("elementary").evalf())
        assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("name", sorted(OPS))
def test_row_is_complete(name):
    check_row(OPS[name])


@pytest.mark.parametrize("name", sorted(n for n, op in OPS.items() if op.elementwise))
@pytest.mark.parametrize("front", ["string", "callable", "sympy"])
def test_gradient_matches_sympy_and_finite_differences(name, front):
    check_gradient(OPS[name], front)


@pytest.mark.parametrize("cls", CUSTOM_FUNCTIONS, ids=lambda c: c.__name__)
def test_declared_derivative_equals_sympys_derivative_of_the_definition(cls):
    check_declared_derivative(cls)


@pytest.mark.parametrize("text, point, expected", [
    ("relu(a)", {"a": 0.0}, {"a": 0.0}),
    ("abs(a)", {"a": 0.0}, {"a": 0.0}),
    ("max(a, b)", {"a": 1.0, "b": 1.0}, {"a": 0.5, "b": 0.5}),
    ("min(a, b)", {"a": 1.0, "b": 1.0}, {"a": 0.5, "b": 0.5}),
])
def test_subgradient_convention_at_kinks(text, point, expected):
    assert sg.graph(text).backprop(**point).grads == expected


def test_lecture_unary_gates_are_ops_with_a_constant_operand():
    g = sg.graph("1/(x + 1) * -1 + x**2 + 2**x - (3 - x) + x/4")
    labels = {g.nx.nodes[n]["label"] for n in g.operations}
    assert {"+1", "1/x", "*-1", "**2", "2**x", "3-x", "/4"} <= labels


@pytest.mark.parametrize("name", ["sigmoid", "relu", "softplus", "logsigmoid"])
@pytest.mark.parametrize("number", [-1, 0, 2, 0.5])
def test_custom_functions_of_numbers_are_numbers(name, number):
    """A constant such as relu(-1) folds to a number, so x**relu(-1) is x**0 and compiles."""
    value = OPS[name].sympy(sp.sympify(number))
    assert value.is_number and not value.has(OPS[name].function_class)
    assert math.isclose(float(value), float(OPS[name].sympy(sp.Float(number)).evalf()))
    g = sg.graph(lambda x: x ** apply(name, number) + x)
    assert math.isclose(g.compile().value_and_grad(x=1.5)[0], g.backprop(x=1.5).value)


def test_gradient_helpers_are_rows_of_the_one_table():
    """The backward pass's helpers are declared in the op table, out of reach of strings."""
    from symgrad.ops import op_of

    assert {"step", "sgn", "sum_to", "broadcast_to", "eye"} <= set(OPS.gradient)
    assert not set(OPS.gradient) & set(OPS)
    assert op_of("sum_to") is OPS.gradient["sum_to"]
    with pytest.raises(sg.SymgradError, match="sum_to"):
        sg.graph("sum_to(x)")
