"""Explanations: the chain rule along every path, checked against the trace and against SymPy."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.tables import Table, derivative_table, trace_table

from .conftest import sympy_gradient


def test_lecture_example_prints_both_paths_products_and_the_gradients():
    t = sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4)
    text = str(t.explain())
    assert "∂q2/∂x = ∂q2/∂q1·∂q1/∂x = z·1 = (-4)·1 = -4" in text
    assert "∂q2/∂y = ∂q2/∂q1·∂q1/∂y = z·1 = (-4)·1 = -4" in text
    assert "∂q2/∂z = q1 = 3" in text
    assert "q2 ← q1 ← x" in text and "q2 ← q1 ← y" in text and "q2 ← z" in text
    finals = [line.rsplit(" = ", 1)[1] for line in text.splitlines() if line.startswith("    ")]
    assert finals == ["-4", "-4", "3"]


def test_branches_sum_over_paths():
    t = sg.graph("x*x + x").backprop(x=3)
    e = t.explain("x")
    (chain,) = e.chains
    assert chain.count == 2 and [p.value for p in chain.paths] == [6.0, 1.0]
    text = str(e)
    assert "2 paths, added where they meet" in text
    assert "q2 ← q1 ← x: ∂q2/∂q1·∂q1/∂x = 1·(2*x) = 1·6 = 6" in text
    assert "q2 ← x: ∂q2/∂x = 1" in text
    assert "sum: ∂q2/∂x = 6 + 1 = 7" in text


def test_a_dag_with_two_paths_through_shared_nodes():
    t = sg.graph("(a + b) * (a * b)").backprop(a=2, b=3)
    (chain,) = t.explain("a").chains
    assert chain.count == 2
    assert sorted(p.value for p in chain.paths) == [6.0, 15.0]  # (a·b)·1 and (a+b)·b
    assert chain.value == t.grads["a"] == 21.0
    assert "6 + 15 = 21" in str(t.explain("a")) or "15 + 6 = 21" in str(t.explain("a"))


def test_graph_explain_is_symbolic():
    text = str(sg.graph("x*x + x").explain("x"))
    assert "sum: ∂q2/∂x = 2*x + 1" in text
    assert not re.search(r"= \d+$", text.splitlines()[2])
    text = str(sg.graph("(x + y) * z").explain())
    assert "∂q2/∂x = ∂q2/∂q1·∂q1/∂x = z·1 = z" in text


def test_upstream_gradient_is_part_of_every_product():
    t = sg.graph("x*x + x").backprop(x=3, dout=2)
    text = str(t.explain("x"))
    assert "dout·∂q2/∂q1·∂q1/∂x = dout·1·(2*x) = 2·1·6 = 12" in text
    assert "sum: dout·∂q2/∂x = 12 + 2 = 14" in text


def test_the_output_and_an_unconnected_input():
    t = sg.graph(lambda x, y: sg.exp(x)).backprop(x=0.0, y=1.0)
    text = str(t.explain(["q1", "y"]))
    assert "∂q1/∂q1: the output itself" in text and "∂q1/∂q1 = 1" in text
    assert "no path from q1 to y" in text and "∂q1/∂y = 0" in text


def test_intermediate_nodes_can_be_explained():
    t = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").backprop(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    (chain,) = t.explain("q6").chains
    assert chain.paths[0].value == pytest.approx(-0.5344, abs=1e-4)
    assert "(-1/q7**2)·1 = (-0.5344)·1 = -0.5344" in str(t.explain("q6"))


def diamonds(levels: int):
    """A callable whose graph doubles the paths to x at every level: 2**levels paths."""
    def f(x):
        for _ in range(levels):
            x = sg.sin(x) + sg.cos(x)
        return x
    return f


def test_path_explosion_switches_to_node_by_node_sums():
    levels = 14
    t = sg.graph(diamonds(levels)).backprop(x=0.3)
    e = t.explain("x", max_paths=10)
    (chain,) = e.chains
    assert chain.count == 2**levels and chain.paths == ()
    assert len(chain.steps) == 3 * levels  # every node between x and the output, once
    assert chain.steps[-1].node == "x" and chain.steps[-1].value == t.grads["x"]
    text = str(e)
    assert f"{2**levels} paths, too many to list" in text
    assert len(text.splitlines()) == 2 + 3 * levels
    # Each line is the backward pass's sum for one node: d<node> = Σ d<consumer>·local.
    last = text.splitlines()[-1]
    assert last.startswith("- dx = dq1·∂q1/∂x + dq2·∂q2/∂x = dq1·cos(x) + dq2·(-sin(x)) = ")
    assert last.endswith(f"= {sg.tables.number(t.grads['x'])}")


def test_few_paths_are_listed_in_full():
    t = sg.graph(diamonds(3)).backprop(x=0.3)
    (chain,) = t.explain("x").chains
    assert chain.count == 8 == len(chain.paths)
    assert sum(p.value for p in chain.paths) == pytest.approx(t.grads["x"], rel=1e-12)


EXPRESSIONS = [
    "(x + y) * z", "x*x + x", "exp(x*y) / (1 + x*x) + y", "sigmoid(x*y + x) * tanh(y) - x",
    "log(1 + exp(x)) * (x - y) ** 2 + max(x, y)", "sqrt(x*x + y*y + 1) * sin(x + y*y)",
]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(EXPRESSIONS), st.tuples(st.floats(-2, 2), st.floats(-2, 2), st.floats(-2, 2)),
       st.floats(0.5, 2))
def test_paths_add_up_to_the_gradient(source, xyz, dout):
    g = sg.graph(source)
    point = {n: v for n, v in zip("xyz", xyz) if n in g.inputs}
    if "max" in source and abs(point["x"] - point["y"]) < 1e-3:
        return  # a kink
    t = g.backprop(dout=dout, **point)
    oracle = sympy_gradient(g.expression(), point)
    for chain in t.explain().chains:
        total = sum(p.value for p in chain.paths)
        assert total == pytest.approx(dout * oracle[chain.wrt], rel=1e-9, abs=1e-12)
        assert chain.value == pytest.approx(total, rel=1e-12, abs=1e-15)
        for path in chain.paths:  # each path's number is dout × the product of its local values
            assert path.value == pytest.approx(dout * math.prod(f.value for f in path.factors),
                                               rel=1e-12, abs=1e-15)
            # The factors are the graph's own edge derivatives, in order along the path.
            assert path.factors[0].node == g.output and path.factors[-1].operand == chain.wrt
            for f in path.factors:
                assert f.derivative == g.local_derivatives(f.node)[f.operand]


def test_tensor_paths_come_from_the_program():
    t = sg.graph("exp(x*y) + y", shapes={"x": (2,)}).backprop(x=[1.0, 2.0], y=0.5)
    (chain,) = t.explain("y").chains
    assert sum(p.value for p in chain.paths) == pytest.approx(t.grads["y"])
    assert t.grads["y"] == pytest.approx(np.sum(np.array([1.0, 2.0]) * np.exp([0.5, 1.0])) + 2)
    (chain,) = t.explain("x").chains
    np.testing.assert_allclose(chain.paths[0].value, t.grads["x"])


# -- LaTeX and Jupyter -------------------------------------------------------------------


def balanced(latex: str) -> bool:
    depth = 0
    for i, ch in enumerate(latex):
        if ch in "{}" and i and latex[i - 1] == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def test_latex_and_markdown_for_jupyter():
    t = sg.graph("x*x + x").backprop(x=3)
    e = t.explain()
    latex, markdown = e._repr_latex_(), e._repr_markdown_()
    assert latex.startswith("$$") and balanced(latex)
    assert r"\frac{\partial q_{2}}{\partial x}" in latex and r"2 x" in latex and "= 7" in latex
    assert markdown.count("$$") == 2 and balanced(markdown)
    assert r"q_{2} \leftarrow q_{1} \leftarrow x:\quad" in markdown
    assert r"\text{sum}:\quad \frac{\partial q_{2}}{\partial x} &= 6 + 1 = 7" in markdown


def test_tables_are_text_and_latex():
    g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))")
    t = g.backprop(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    table = t.table()
    assert isinstance(table, Table) and table == trace_table(t) and str(table) == trace_table(t)
    latex = table._repr_latex_()
    assert balanced(latex) and r"\begin{array}" in latex
    assert latex.count(r" \\") == 1 + sum(max(1, len(g.operands(n))) for n in g.nodes) - 1
    assert r"e^{q_{5}}" in latex and r"- \frac{1}{q_{7}^{2}}" in latex and "0.7311" in latex
    local = g.table()
    assert local == derivative_table(g)
    assert r"\frac{\partial q_{8}}{\partial q_{7}}" in local._repr_latex_()
    assert sp.latex(sp.exp(sp.Symbol("q5"))) in local._repr_latex_()


# -- errors ----------------------------------------------------------------------------------


def test_bad_arguments_are_symgrad_errors():
    g = sg.graph("(x + y) * z")
    t = g.backprop(x=1, y=2, z=3)
    with pytest.raises(sg.SymgradError, match="'w'.*inputs: x, y, z"):
        t.explain("w")
    with pytest.raises(sg.SymgradError, match="3"):
        g.explain(["x", 3])  # type: ignore[list-item]
    with pytest.raises(sg.SymgradError, match="max_paths"):
        t.explain("x", max_paths=0)
    with pytest.raises(sg.SymgradError, match="digits"):
        t.explain("x", digits=-2)
    with pytest.raises(sg.SymgradError, match="cannot explain a str"):
        sg.explain("(x + y) * z")  # type: ignore[arg-type]


def test_a_gate_is_one_factor_with_its_own_local_derivative():
    t = sg.graph("sigmoid(w0*x0 + w1*x1 + w2)").backprop(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    (chain,) = t.explain("w0").chains
    gate = chain.paths[0].factors[0]
    assert t.graph.nx.nodes[gate.node]["label"] == "σ"
    assert gate.value == pytest.approx(0.1966, abs=1e-4)
    assert chain.paths[0].value == pytest.approx(-0.1966, abs=1e-4)
    assert "(q5*(1 - q5))·1·1·x0" in str(t.explain("w0"))


def test_matrix_nodes_are_explained_node_by_node_with_their_vector_jacobian_products():
    g = sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)})
    t = g.backprop(W=[[0.1, 0.5], [-0.3, 0.8]], x=[0.2, 0.4])
    text = str(t.explain(["W", "x"]))
    assert "dW = outer(dq1, x) = [[0.088, 0.176], [0.104, 0.208]]" in text
    assert "dx = W.T @ dq1 = [-0.112,  0.636]" in text
    assert "dq1 = dq2·∂q2/∂q1 = dq2·(2*q1) = [0.44, 0.52]" in text
    assert "vector-Jacobian product" in text
    assert "$$" in t.explain("W")._repr_markdown_()
    assert "dW = outer(dq1, x)" in str(g.explain("W"))
