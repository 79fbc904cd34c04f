"""Graphs of many alike nodes: each op pattern is derived once, and a later node of the same
pattern whose names sort the same way reuses the first one's expression and derivatives with
its own symbols put in.  Reused or not, every node gets what SymPy gives it afresh."""

from __future__ import annotations

import importlib
import inspect
import itertools

import networkx as nx
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad import ir
from symgrad.graph import add_op_node
from symgrad.ops import OPS
from symgrad.tracing import apply

from .conftest import central_differences, rel_error

graph_module = importlib.import_module("symgrad.graph")  # sg.graph is the function
ELEMENTWISE = sorted(n for n, op in OPS.items() if op.elementwise)
FORMS = ("derivative", "cached", "numeric")
# operand names and the node's own name: orders of the names that SymPy sorts differently
NAMES = [("x", "y", "q1"), ("y", "x", "q1"), ("q10", "q9", "q11"), ("w3", "q12", "b3"),
         ("q2", "q1", "q10")]


def patterns(arity: int) -> list[tuple]:
    """Operand patterns: node indices (0, 1) and constants."""
    if arity == 1:
        return [(0,)]
    return [(0, 1), (0, sp.Integer(3)), (sp.Rational(1, 2), 1), (0, 0), (0, sp.Float(-2.5))]


def node(g: nx.DiGraph, derived, name: str, op: str, pattern: tuple, names: tuple) -> None:
    for n in names[:2]:
        if n not in g:
            g.add_node(n, **ir.input_node(n, ()))
    operands = tuple(names[p] if isinstance(p, int) else p for p in pattern)
    add_op_node(g, name, op, operands, (), derived)


def derived_anew(monkeypatch, *args) -> int:
    """How many times ``node(*args)`` derives the node's forms (0: it reused an alike node's)."""
    calls = []
    original = graph_module._derive
    monkeypatch.setattr(graph_module, "_derive", lambda *a: calls.append(a) or original(*a))
    node(*args)
    monkeypatch.setattr(graph_module, "_derive", original)
    return len(calls)


def attributes(g: nx.DiGraph, name: str) -> list[str]:
    """The node's expression and every form of every edge into it, exactly (srepr)."""
    edges = [g.edges[u, name][k] for u in sorted(g.predecessors(name)) for k in FORMS]
    return [sp.srepr(e) for e in [g.nodes[name]["expr"], *edges]]


@pytest.mark.parametrize("op", ELEMENTWISE)
def test_a_reused_node_equals_its_fresh_derivation(op, monkeypatch):
    for pattern, names, earlier in itertools.product(patterns(OPS[op].arity), NAMES, NAMES):
        first = tuple("r" + n for n in earlier)  # sorts as ``earlier`` does
        g: nx.DiGraph = nx.DiGraph()
        derived: dict = {}
        node(g, derived, first[2], op, pattern, first)
        derivations = derived_anew(monkeypatch, g, derived, names[2], op, pattern, names)
        if earlier == names:
            assert derivations == 0, "the second node was derived again, not reused"
        fresh: nx.DiGraph = nx.DiGraph()
        node(fresh, None, names[2], op, pattern, names)
        assert attributes(g, names[2]) == attributes(fresh, names[2]), (op, pattern, names, earlier)
        for k in FORMS:  # equal as SymPy sees it, too (hash and ==)
            for u in fresh.predecessors(names[2]):
                assert g.edges[u, names[2]][k] == fresh.edges[u, names[2]][k]
                assert hash(g.edges[u, names[2]][k]) == hash(fresh.edges[u, names[2]][k])


def test_names_that_sort_differently_are_derived_again(monkeypatch):
    g: nx.DiGraph = nx.DiGraph()
    derived: dict = {}
    node(g, derived, "q1", "sub", (0, 1), ("x", "y"))
    assert derived_anew(monkeypatch, g, derived, "q2", "sub", (0, 1), ("y", "x")) == 1
    assert g.nodes["q2"]["expr"] == sp.Symbol("y", real=True) - sp.Symbol("x", real=True)


def chain_of_every_op(n: int):
    """Each link applies every elementwise op to the previous value (and the link's parameter,
    where the op takes two operands), each through a sigmoid, and adds them up."""
    def body(x, *params):
        h = x
        for p in params:
            terms = [sg.sigmoid(apply(name, h, p) if OPS[name].arity == 2 else apply(name, h))
                     for name in ELEMENTWISE]
            h = sum(terms) * 0.3 + p
        return h

    def fn(*args):
        return body(*args)

    names = ["x", *(f"p{i}" for i in range(n))]
    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])
    return fn


def test_a_graph_of_many_alike_nodes_has_the_finite_differences_gradient():
    g = sg.graph(chain_of_every_op(4))
    f = g.compile()
    rng = np.random.default_rng(3)
    for _ in range(3):
        # inside every op's domain (h stays positive, p away from 0) and away from the kinks
        # of max, min, abs and relu (x and the later values differ from each p by 0.4 or more)
        point = {n: float(rng.uniform(1.2, 1.5) if n == "x" else rng.uniform(0.3, 0.8)) for n in g.inputs}
        t = g.backprop(**point)
        value, grads = f.value_and_grad(**point)
        numeric = central_differences(lambda **p: f(**p), point)
        assert rel_error(value, t.value) < 1e-12
        for n in g.inputs:
            assert rel_error(grads[n], numeric[n]) < 1e-6, n
            assert rel_error(t.grads[n], numeric[n]) < 1e-6, n


def every_expression(g) -> list[sp.Expr]:
    """Every node's expression and every form of every edge's derivative."""
    found = [g.expr(n) for n in g.operations]
    found += [d[k] for _, _, d in g.nx.edges(data=True) for k in FORMS if d[k] is not None]
    return found


def test_printing_once_per_alike_expression_prints_each_as_directly():
    from symgrad.printing import _array_api_code, _numpy_code, array_api_code, numpy_code

    g = sg.graph(chain_of_every_op(3))
    exprs = every_expression(g)
    shapes = {g.symbol(n): () for n in g.nodes}
    ints = {g.symbol("x")}
    for e in exprs:
        assert numpy_code(e) == _numpy_code(e, None, frozenset()), e
        assert array_api_code(e) == _array_api_code(e, None, frozenset()), e
        assert numpy_code(e, shapes, ints) == _numpy_code(e, shapes, ints), e


def test_printing_once_per_alike_expression_with_arrays_and_labels():
    from symgrad.printing import _numpy_code, numpy_code

    shapes = {"s": (4, 3), "y": (4,), "W": (3, 3), "b": (3,)}
    g = sg.graph("mean(pick(relu(s @ W + b) * 2, y))", shapes=shapes, dtypes={"y": int})
    f = g.compile()
    known = {g.symbol(n): g.shape(n) for n in g.nodes}
    labels = {g.symbol("y")}
    for e in every_expression(g):
        assert numpy_code(e, known, labels) == _numpy_code(e, known, labels), e
    assert f.source  # the module compiled with the remembered spellings


def test_names_the_printer_spells_otherwise_are_printed_directly():
    from symgrad.printing import numpy_code

    lam, x = sp.symbols("lambda x", real=True)
    assert numpy_code(lam * x + 1) == "lambda_*x + 1"
    y, x_plain = sp.Symbol("y", positive=True), sp.Symbol("x")
    assert numpy_code(sp.exp(y) + x_plain) == "x + np.exp(y)"


def test_an_op_defined_or_undefined_changes_the_remembered_spelling():
    from symgrad.printing import numpy_code

    x, q = sp.symbols("x q", real=True)
    before = numpy_code(sp.atan(x) * q)
    with sg.define_op("arctan_op", sp.atan, numpy="np.arctan2({0}, 1.0)"):
        assert numpy_code(sp.atan(x) * q) == "q*np.arctan2(x, 1.0)"
    assert numpy_code(sp.atan(x) * q) == before != "q*np.arctan2(x, 1.0)"


def test_products_built_once_per_alike_class_equal_sympys():
    import operator

    from symgrad.alike import evaluated

    g = sg.graph(chain_of_every_op(3))
    for u, v, d in g.nx.edges(data=True):
        upstream = sp.Symbol(f"d{v}", real=True)
        mine, sympys = evaluated(operator.mul, upstream, d["numeric"]), upstream * d["numeric"]
        assert sp.srepr(mine) == sp.srepr(sympys), (u, v)


def test_evaluating_once_compiled_code_per_alike_class_gives_the_same_numbers():
    from symgrad.errors import UnsupportedError
    from symgrad.printing import _numpy_code, evaluate

    g = sg.graph(chain_of_every_op(3))
    rng = np.random.default_rng(5)
    env = {n: float(rng.uniform(0.3, 0.8)) for n in g.nodes}
    for e in every_expression(g):
        direct = eval(_numpy_code(e, None, frozenset()), {"np": np}, env)
        assert evaluate(e, env) == direct, e
    x, y = sp.symbols("x y", real=True)
    with pytest.raises(UnsupportedError, match="y"):
        evaluate(sp.exp(x) + y, {"x": 1.0})


def test_numbers_and_symbols_are_evaluated_without_printing_as_printed():
    from symgrad.errors import EvaluationError, UnsupportedError
    from symgrad.printing import _numpy_code, evaluate

    x = sp.Symbol("x", real=True)
    env = {"x": np.array([0.5, -2.0]), "n": np.array([1, 2])}
    for e in (sp.Integer(1), sp.Integer(-3), sp.Rational(1, 3), sp.Float("0.1"), sp.pi, x,
              sp.Symbol("n", real=True)):
        value = evaluate(e, env)
        direct = np.asarray(eval(_numpy_code(e, None, frozenset()), {"np": np}, env), dtype=float)
        assert value.dtype == direct.dtype == float and np.array_equal(value, direct), e
    for e in (sp.nan, sp.oo, sp.zoo):
        with pytest.raises(EvaluationError):
            evaluate(e, env)
    with pytest.raises(UnsupportedError, match="y"):
        evaluate(sp.Symbol("y", real=True), env)


def test_an_expression_with_a_bound_dummy_is_built_and_printed_directly():
    import operator

    from symgrad.alike import evaluated, template
    from symgrad.printing import _numpy_code

    x, y = sp.symbols("x y", real=True)
    t = sp.Dummy("t", real=True)
    integral = sp.Integral(x * t, (t, 0, 1))  # t sorts among x and y, or their placeholders
    assert template(_numpy_code, integral * y, None, frozenset(), OPS.generation) is None
    assert sp.srepr(evaluated(operator.mul, y, integral)) == sp.srepr(y * integral)
