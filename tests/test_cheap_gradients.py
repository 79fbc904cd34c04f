"""Cheap gradients: a shared sub-expression is one node with several consumers, from every
front end, and the gradient costs at most three times the forward pass in operations.

The families are those of ``benchmarks/run.py``: a sigmoid chain, a DAG whose every node is
used three times, and a scalar MLP; each from a string, a SymPy expression and a callable.
Operations are counted in the generated code's assignments (operators and calls), and the
gradients are checked against central differences.
"""

from __future__ import annotations

import ast
import importlib.util
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.program import build_program

from .conftest import central_differences

# the families the benchmark times (benchmarks/run.py, section 7), loaded from its file
_spec = importlib.util.spec_from_file_location(
    "symgrad_benchmarks_run", Path(__file__).resolve().parent.parent / "benchmarks" / "run.py")
benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark)
chain, dag, mlp, signed, sympy_sigmoid = (benchmark.chain, benchmark.dag, benchmark.mlp,
                                          benchmark.signed, benchmark.sympy_sigmoid)


FAMILIES = {
    "chain": (chain, sg.sigmoid, sympy_sigmoid),
    "dag": (dag, sg.sin, sp.sin),
    "mlp": (mlp, sg.sigmoid, sympy_sigmoid),
}
OPS_PER_STEP = {"chain": 6, "dag": 4, "mlp": 8}  # at most, with 1/(1 + exp(-a)) written out


def source(family: str, front: str, n: int):
    make, traced_fn, sympy_fn = FAMILIES[family]
    if front == "callable":
        return signed(*make(n, traced_fn))
    names, body = make(n, sympy_fn)
    expr = body(*[sp.Symbol(m, real=True) for m in names])
    return expr if front == "sympy" else str(expr)


def assignment_ops(code: str) -> dict[str, int]:
    """Operators and calls in the assignments of each generated function."""
    counts = {}
    for f in ast.parse(code).body:
        if isinstance(f, ast.FunctionDef):
            counts[f.name] = sum(isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Call))
                                 for s in f.body if isinstance(s, ast.Assign) for n in ast.walk(s))
    return counts


def written_size(expr: sp.Basic) -> int:
    """Sub-expressions counted with repeats, as a tree (what str() writes out)."""
    sizes: dict[sp.Basic, int] = {}
    stack = [expr]
    while stack:  # each distinct sub-expression once: a tree walk would take exponential time
        e = stack[-1]
        todo = [a for a in e.args if a not in sizes]
        if todo:
            stack.extend(todo)
        else:
            sizes[e] = 1 + sum(sizes[a] for a in e.args)
            stack.pop()
    return sizes[expr]


FRONTS = ["string", "sympy", "callable"]
CASES = [(f, front) for f in FAMILIES for front in FRONTS]


@pytest.mark.parametrize(("family", "front"), CASES)
def test_shared_subexpressions_are_one_node(family, front):
    n = 8
    g = sg.graph(source(family, front, n))
    seen = Counter((g.nx.nodes[v]["op"], g.nx.nodes[v]["operands"]) for v in g.operations)
    assert max(seen.values()) == 1  # no node is a copy of another
    assert len(g.operations) <= OPS_PER_STEP[family] * n + 2
    if family == "dag":  # every a_i feeds three nodes: one node, three consumers
        shared = [v for v in g.operations if len(g.consumers(v)) == 3]
        assert len(shared) >= n - 2


@pytest.mark.parametrize(("family", "front"), CASES)
def test_gradient_costs_at_most_three_forward_passes(family, front):
    n = 8 if family == "dag" and front == "string" else 12
    g = sg.graph(source(family, front, n))
    program = build_program(g)
    for adjoint in program.backward:  # each adjoint sums its consumers' terms once
        consumers = [t.consumer for t in adjoint.terms]
        assert len(consumers) == len(set(consumers))
    f = g.compile()
    counts = assignment_ops(f.source)
    assert counts["backward"] <= 3 * counts["forward"], counts
    assert counts["value_and_grad"] <= 4 * counts["forward"], counts  # forward and gradient in one
    backward = next(x for x in ast.parse(f.source).body
                    if isinstance(x, ast.FunctionDef) and x.name == "backward")
    targets = Counter(t.id for s in backward.body if isinstance(s, ast.Assign)
                      for t in s.targets if isinstance(t, ast.Name))
    assert max(targets.values()) == 1  # every gradient assigned once: summed where branches meet

    rng = np.random.default_rng(len(g.inputs))
    point = {name: float(rng.uniform(-0.9, 0.9)) for name in g.inputs}
    value, grads = f.value_and_grad(**point)
    expected = central_differences(lambda **p: float(f(**p)), point)
    for name in g.inputs:
        assert math.isclose(grads[name], expected[name], rel_tol=1e-6, abs_tol=1e-8), name
    trace = g.backprop(**point)
    assert trace.value == pytest.approx(value, rel=1e-12)
    for name in g.inputs:
        assert trace.grads[name] == pytest.approx(grads[name], rel=1e-9, abs=1e-12)


def test_a_dag_written_out_exponentially_is_built_in_linear_size():
    deep = dag(40, sp.sin)
    assert len(sg.graph(deep[1](*[sp.Symbol(m, real=True) for m in deep[0]])).operations) == 4 * 40
    n = 16  # shallow enough to print, but 5.6 million terms long
    names, body = dag(n, sp.sin)
    expr = body(*[sp.Symbol(m, real=True) for m in names])
    assert written_size(expr) > 10**6  # as a tree: far too large to print
    g = sg.graph(expr)
    assert len(g.operations) == 4 * n
    assert g.source == f"a SymPy expression of {written_size(expr):,} terms written out"
    assert "terms written out" in repr(g)
    names3, body3 = dag(3, sp.sin)
    small = body3(*[sp.Symbol(m, real=True) for m in names3])
    assert sg.graph(small).source == str(small)  # small enough: printed as written
    point = {name: 0.1 * (i % 7) - 0.3 for i, name in enumerate(g.inputs)}
    f = g.compile()
    value, grads = f.value_and_grad(**point)
    traced = sg.graph(signed(*dag(n, sg.sin))).compile()
    assert value == pytest.approx(traced(**point), rel=1e-12)
    expected = central_differences(lambda **p: float(f(**p)), point, names=["x", "y", "w2", f"w{n + 1}"])
    for name, want in expected.items():
        assert grads[name] == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_many_inputs_keep_their_adjoints_and_order():
    n = 300
    g = sg.graph(signed(*mlp(n, sg.sigmoid)))
    program = build_program(g)
    assert program.wrt == g.inputs
    for name in g.inputs:
        assert program.adjoint(name).node == name
    assert [program.grads[name] for name in g.inputs] == [program.adjoint(m).target for m in g.inputs]
    with pytest.raises(sg.SymgradError, match="no adjoint"):
        program.adjoint("nowhere")
    with pytest.raises(sg.SymgradError, match="cannot differentiate with respect to 'z'"):
        build_program(g, ["x", "z"])
    square = sg.graph("x*x*y + y")
    assert square.operands("q1") == ["x"]  # a repeated operand once
    assert square.operands("q2") == ["q1", "y"]
