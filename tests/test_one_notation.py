"""One notation in every display: a sigmoid's derivative through its node (q*(1 - q)), step
functions as indicators ([z > w], \\mathbb{1}[z > w] in LaTeX), broadcast_to readable in LaTeX."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.cli import main
from symgrad.program import build_program
from symgrad.tables import written

NEURON_AT = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)


def sigmoid_graphs():
    yield "op", sg.graph("sigmoid(w0*x0 + w1*x1 + w2)"), "q5", "q4"
    yield "gate", sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").fuse("sigmoid"), "q8", "q4"
    yield "traced", sg.graph(lambda w0, x0, w1, x1, w2: sg.sigmoid(w0 * x0 + w1 * x1 + w2)), "q5", "q4"


def displays(g, t):
    program = build_program(g)
    return {
        "graph table": str(g.table()), "trace table": str(t.table()), "explanation": str(t.explain()),
        "graph picture": sg.render(g), "program": str(program),
        "graph LaTeX": g.table()._repr_latex_(), "trace LaTeX": t.table()._repr_latex_(),
        "explanation LaTeX": t.explain()._repr_markdown_(),
    }


@pytest.mark.parametrize("kind, g, q, a", list(sigmoid_graphs()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_a_sigmoid_derivative_reads_q_times_one_minus_q_everywhere(kind, g, q, a):
    t = g.backprop(**NEURON_AT)
    n = q[1:]
    for name, text in displays(g, t).items():
        for stale in ("sigmoid(-", "1 - sigmoid", r"1 - \sigma"):
            assert stale not in text, (kind, name, stale)
        if "LaTeX" in name:
            assert rf"q_{{{n}}} \left(1 - q_{{{n}}}\right)" in text, (kind, name)
        elif name != "graph picture" or kind != "gate":
            assert f"{q}*(1 - {q})" in text, (kind, name, text)
    # the same words with numbers: the local derivative is q(1 - q) at q's value, and SymPy's σ'
    value = t.values[q]
    z = sp.Symbol("z")
    oracle = float(sp.diff(1 / (1 + sp.exp(-z)), z).subs(z, t.values[a]))
    assert t.local[q, a] == pytest.approx(value * (1 - value)) == pytest.approx(oracle)
    row = next(line for line in str(t.table()).splitlines() if line.startswith(q))
    assert f"{q}*(1 - {q})" in row and f"{oracle:.4g}" in row


def test_the_backward_pass_of_derive_and_the_gate_picture_read_the_same(capsys):
    assert main(["derive", "sigmoid(y)", "--at", "y=0.5"]) == 0
    out = capsys.readouterr().out
    assert "dy = dq1*q1*(1 - q1) = 0.235" in out and "sigmoid(-" not in out
    fused = sg.graph("1/(1+exp(-(w*x+b)))").fuse("sigmoid")
    picture = sg.render(fused)
    assert "q6*(1 - q6)" in picture and "sigmoid(-" not in picture


def test_generated_code_keeps_the_stable_form_and_its_numbers():
    g = sg.graph("sigmoid(x) * y")
    f = g.compile()
    assert "[" not in f.source.split("def backward", 1)[1].split("return", 1)[0].replace("[]", "")
    x, y = 40.0, 2.0  # 1 - q rounds to 0 here; q*sigmoid(-x) does not
    value, grads = f.value_and_grad(x=x, y=y)
    assert grads["x"] == pytest.approx(y * np.exp(-x), rel=1e-9) and grads["x"] > 0


@pytest.mark.parametrize("source, at, shown", [
    ("max(z, w)", dict(z=2, w=-1), {"z": ("[z > w]", 1.0), "w": ("[w > z]", 0.0)}),
    ("min(z, w)", dict(z=2, w=-1), {"z": ("[w > z]", 0.0), "w": ("[z > w]", 1.0)}),
    ("max(z, w)", dict(z=1, w=1), {"z": ("[z > w]", 0.5), "w": ("[w > z]", 0.5)}),  # a tie: ½ each
    ("relu(x)", dict(x=-0.5), {"x": ("[x > 0]", 0.0)}),
    ("relu(x)", dict(x=0.0), {"x": ("[x > 0]", 0.0)}),
])
def test_step_functions_read_as_indicators_with_their_values(source, at, shown):
    g = sg.graph(source)
    t = g.backprop(**at)
    out = g.output
    texts = [str(t.table()), str(t.explain()), str(g.table()), str(build_program(g))]
    picture = sg.render(g)
    for u, (bracket, value) in shown.items():
        assert all(bracket in text for text in texts), (u, bracket)
        assert bracket.replace(">", "&gt;") in picture
        assert t.local[out, u] == value
        left, right = re.match(r"\[(\w+) > (\w+)\]", bracket).groups()
        values = {**at, "0": 0}
        assert value == (1.0 if values[left] > values[right] else 0.5 if values[left] == values[right]
                         and source.startswith(("max", "min")) else 0.0)
        latex = rf"\mathbb{{1}}\left[{left} > {right}\right]"
        assert latex in g.table()._repr_latex_() and latex in t.table()._repr_latex_()
    assert "Heaviside" not in "".join(texts) + picture + g.table()._repr_latex_()


def test_indicators_of_any_argument():
    g = sg.graph("x * y")
    x, y = sp.symbols("x y")
    assert written(g, sp.Heaviside(x, 0), ["q1"]) == "[x > 0]"
    assert written(g, sp.Heaviside(x, 1), ["q1"]) == "[x ≥ 0]"
    assert written(g, sp.Heaviside(-x, 0), ["q1"]) == "[x < 0]"
    assert written(g, sp.Heaviside(x - y), ["q1"]) == "[x > y]"
    assert written(g, y * sp.Heaviside(x * y, 0), ["q1"]) == "y*[x*y > 0]"
    assert written(g, sp.Heaviside(x, 1), ["q1"], latex=True) == r"\mathbb{1}\left[x \geq 0\right]"


@pytest.mark.parametrize("shapes, size", [({"X": (3, 4)}, r"3 \times 4"), ({"X": ("N", 3)}, r"N \times 3")])
def test_broadcast_to_reads_as_a_subscripted_broadcast_in_latex(shapes, size):
    g = sg.graph("mean(X)", shapes=shapes)
    latex = g.table()._repr_latex_()
    assert rf"\operatorname{{broadcast}}_{{{size}}}\left(" in latex
    assert "broadcast\\_to" not in latex and r"\text{(" not in latex
    assert "broadcast_to(dq1/" in str(g.table())  # the text keeps NumPy's spelling
