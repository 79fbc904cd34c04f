"""Matrix notation of array gradients, each formula checked against SymPy's entrywise expansion."""

import re

import pytest
import sympy as sp

import symgrad as sg

LECTURES = [
    # (expression, shapes, labels, {input: the gradient line, as printed})
    ("sum((W @ x)**2)", {"W": (2, 2), "x": (2,)}, None,
     {"W": "∂L/∂W = δq1 xᵀ", "x": "∂L/∂x = Wᵀ δq1"}),
    ("X @ W + b", {"X": (4, 3), "W": (3, 2), "b": (2,)}, None,
     {"X": "∂L/∂X = δ Wᵀ", "W": "∂L/∂W = Xᵀ δ", "b": "∂L/∂b = 𝟙ᵀ δ"}),
    ("mean(softmax_cross_entropy(s, y))", {"s": (3, 4), "y": (3,)}, {"y": int},
     {"s": "∂L/∂s = exp(s - q1 𝟙ᵀ)/3 - onehot(y)/3"}),
    ("l2(W)", {"W": (2, 3)}, None, {"W": "∂L/∂W = 2 W"}),
    ("mean(logaddexp(0, -y*(X@w)))", {"X": (4, 3), "w": (3,), "y": (4,)}, None,
     {"w": "∂L/∂w = Xᵀ δq2"}),
]


@pytest.mark.parametrize("text, shapes, labels, lines", LECTURES)
def test_lecture_formulas_print_and_equal_sympys_entrywise_derivatives(text, shapes, labels, lines):
    g = sg.graph(text, shapes=shapes, dtypes=labels)
    m = sg.matrix_notation(g)
    printed = str(m)
    for name, line in lines.items():
        assert any(row.startswith(line + " ") for row in m.text(name).splitlines()), (line, printed)
        assert str(g.shape(name)) in m.text(name).splitlines()[0]
    assert m.verify(points=2)
    latex = m.latex()
    assert latex.startswith("$$") and r"\frac{\partial L}{\partial" in latex


def test_norm_squared_written_out_and_in_latex():
    g = sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)})
    m = sg.matrix_notation(g)
    assert "∂L/∂W = 2 W x xᵀ" in m.text("W").splitlines()
    assert "∂L/∂x = 2 Wᵀ W x" in m.text("x").splitlines()
    assert r"\delta_{q_{1}} x^{\top}" in m.latex("W")
    assert m._repr_latex_() == m.latex()


def test_two_layer_net_gradients_verify_and_use_hadamard_products():
    g = sg.graph("mean(softmax_cross_entropy(relu(X @ W1 + b1) @ W2 + b2, y))",
                 shapes={"X": (3, 2), "W1": (2, 3), "b1": (3,), "W2": (3, 2), "b2": (2,), "y": (3,)},
                 dtypes={"y": int})
    m = sg.matrix_notation(g, ["W1", "W2"])
    assert "δq2 = δq3 ∘ [q2 > 0]" in [row.split("   ")[0].strip() for row in m.text("W1").splitlines()]
    assert m.text("W2").splitlines()[0].startswith("∂L/∂W2 = q3ᵀ δq5")
    assert r"\odot" in m.latex("W1")
    assert m.verify(points=1)


def test_a_wrong_formula_fails_verification():
    g = sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)})
    m = sg.matrix_notation(g, "W")
    f = m.formulas[0]
    wrong = type(f)(f.name, f.gradient, f.steps, f.forward, f.closed * sp.Rational(3, 2))
    broken = sg.MatrixNotation(g, (wrong,), m._shapes, m._adjoints, m.upstream)
    with pytest.raises(sg.SymgradError, match=r"∂/∂W\[0, 0\]"):
        broken.verify()


def test_unknown_names_are_named_errors():
    m = sg.matrix_notation(sg.graph("sum(x * x)", shapes={"x": (2,)}))
    with pytest.raises(sg.SymgradError, match="'z'"):
        m.text("z")
    with pytest.raises(sg.SymgradError, match="'z'"):
        sg.matrix_notation(sg.graph("sum(x * x)", shapes={"x": (2,)}), "z")


def test_logistic_regression_hessian_in_matrix_notation():
    loss = sg.graph("mean(logaddexp(0, -y*(X@w)))", shapes={"X": (4, 2), "y": (4,), "w": (2,)})
    h = sg.hessian_notation(loss, "w")
    assert str(h) == "∂²L/∂w² = Xᵀ diag((y^2 ∘ σ(y ∘ X w) ∘ σ(-y ∘ X w))/4) X"
    assert r"\operatorname{diag}" in h.latex() and h._repr_latex_() == h.latex()
    assert h.verify()
    wrong = sg.HessianNotation(loss, "w", h.closed * 2, h._shapes)
    with pytest.raises(sg.SymgradError, match="w\\[0\\]"):
        wrong.verify()


def test_explanations_of_array_graphs_end_with_the_matrix_notation():
    g = sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)})
    t = g.backprop(W=[[0.1, 0.5], [-0.3, 0.8]], x=[0.2, 0.4])
    e = t.explain(["W", "x"])
    text = str(e)
    rows = [row.strip() for row in text.splitlines()]
    assert "∂L/∂W = δq1 xᵀ   (2, 2)" in rows and "∂L/∂x = Wᵀ δq1   (2,)" in rows
    assert "∂L/∂W = 2 W x xᵀ" in rows and "∂L/∂x = 2 Wᵀ W x" in rows
    assert "In matrix notation (L = q3" in text
    assert text.index("dW = outer(dq1, x)") < text.index("In matrix notation")  # after the steps
    assert e.matrix_notation is not None and e.matrix_notation.verify()
    markdown = e._repr_markdown_()
    assert r"\delta_{q_{1}} x^{\top}" in markdown and r"\quad 2 \times 2" in markdown
    latex = g.explain("W")._repr_latex_()
    assert latex.count("$$") == 2 and r"\delta_{q_{1}} x^{\top}" in latex


def test_explanations_of_a_layer_name_the_upstream_gradient_and_scalars_have_none():
    affine = sg.graph("X @ W + b", shapes={"X": (4, 3), "W": (3, 2), "b": (2,)})
    text = str(affine.explain(["W", "b"]))
    assert "δ = ∂L/∂q2 for a loss L further on" in text
    assert any(row.strip().startswith("∂L/∂W = Xᵀ δ ") for row in text.splitlines())
    assert any(row.strip().startswith("∂L/∂b = 𝟙ᵀ δ ") for row in text.splitlines())
    assert "matrix notation" not in str(sg.graph("x * y + exp(x)").explain())
    assert sg.graph("x * y + exp(x)").explain().matrix_notation is None
    inner = affine.explain("q1")  # an intermediate node: the chain rule only
    assert inner.matrix_notation is None and "matrix notation" not in str(inner)


def test_explanations_of_the_two_layer_net_with_named_dimensions():
    g = sg.graph("mean(softmax_cross_entropy(relu(X @ W1 + b1) @ W2 + b2, y))",
                 shapes={"X": ("N", 2), "W1": (2, 3), "b1": (3,), "W2": (3, 2), "b2": (2,), "y": ("N",)},
                 dtypes={"y": int})
    text = str(g.explain("W2"))
    assert any(row.strip().startswith("∂L/∂W2 = q3ᵀ δq5") for row in text.splitlines())
    assert "δq8 = 1/N" in [row.strip().split("   ")[0] for row in text.splitlines()]
    assert text.rstrip().endswith("named dimensions: N (X: N×2, y: N)")  # the legend stays last


@pytest.mark.parametrize("text, shapes", [
    ("softmax_cross_entropy(relu(X @ W1 + b1) @ W2 + b2, y) + 0.5*reg*(l2(W1) + l2(W2))",
     {"X": (4, 2), "W1": (2, 3), "b1": (3,), "W2": (3, 3), "b2": (3,), "y": (4,), "reg": ()}),
    ("mean((tanh(X @ W1) @ w2 - y)**2)", {"X": (5, 3), "W1": (3, 4), "w2": (4,), "y": (5,)}),
])
def test_every_name_a_formula_reads_is_defined_and_numbers_are_short(text, shapes):
    g = sg.graph(text, shapes=shapes, dtypes={"y": int} if "softmax" in text else None)
    m = sg.matrix_notation(g)
    for name in g.inputs:
        if name in g.labels:
            continue
        block = m.text(name).splitlines()[:-1]  # the last line: the gradient written out in the inputs
        defined = {line.split(" = ")[0].strip() for line in block}
        for line in block:
            right = line.split(" = ", 1)[1]
            for used in re.findall(r"δ?q\d+", right):
                assert used in defined, f"{used} in {line!r} of ∂L/∂{name} is not defined"
        assert "0.5000" not in m.text(name)
    assert m.verify()
