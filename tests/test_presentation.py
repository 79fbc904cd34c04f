"""One presentation: tables (text and LaTeX), explanations and pictures show every op's
local derivative, or vector-Jacobian product, as the same text (generated from the op table)."""

import pytest

import symgrad as sg
from symgrad.ops import OPS
from symgrad.picture import MAX_TEXT, Picture
from symgrad.tables import LatexWriter, expression_text, shown_derivative, vjp_text
from symgrad.tracing import apply

from .conftest import param_choices

SIZES = {"n": 2, "k": 3, "m": 2, "c": 3, "b": 2, "1": 1}


def graph_of(op) -> sg.Graph:
    """The op applied to inputs a, b, …: its first declared shapes, the parameters it needs."""
    names = "ab"[: op.arity]
    shapes = [tuple(SIZES[ch] for ch in p) for p in op.shapes[0]] if op.shapes else [()] * op.arity
    needed = tuple(p for p in op.params if p in ("shape", "axes"))
    params = param_choices(needed, shapes[0])[0] if needed else {}
    dtypes = {n: int for n, d in zip(names, op.domain) if d.labels}
    traced = {1: lambda a: apply(op.name, a, **params), 2: lambda a, b: apply(op.name, a, b, **params)}
    return sg.graph(traced[op.arity], shapes=dict(zip(names, shapes)), dtypes=dtypes)


def row_of(table: str, marker: str) -> str:
    """The line of ``table`` holding ``marker`` (a node's ∂node/∂operand)."""
    lines = [line for line in table.splitlines() if marker in line]
    assert len(lines) == 1, (marker, table)
    return lines[0]


def short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_display_shows_the_same_derivative(name):
    g = graph_of(OPS[name])
    text, latex = str(g.table()), g.table()._repr_latex_()
    explanation = str(g.explain())
    picture = Picture(g, None)
    checked = 0
    for n in g.operations:
        for u in g.operands(n):
            if g.elementwise(n):
                shown = shown_derivative(g, n, u)
                plain, tex = expression_text(g, n, shown), expression_text(g, n, shown, latex=True)
                assert plain in explanation, (n, u, explanation)
            else:
                rule = g.nx.edges[u, n]["vjp"]
                plain, tex = vjp_text(rule, g, n), vjp_text(rule, g, n, latex=True)
            assert f"  {plain}" in row_of(text, f"∂{n}/∂{u}")  # the first form, or the cached one
            assert f" & {tex}" in row_of(latex, LatexWriter(4).partial(n, u))
            assert picture.edges[u, n].below == short(plain)
            checked += 1
    assert checked


def test_a_gate_shows_its_own_form_everywhere():
    g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").fuse("sigmoid")
    gate = g.output
    (operand,) = g.operands(gate)
    shown = shown_derivative(g, gate, operand)
    assert shown == g.nx.edges[operand, gate]["cached"]  # σ·(1 − σ), through the gate's output
    plain = expression_text(g, gate, shown)
    assert f"  {plain}" in row_of(str(g.table()), f"∂{gate}/∂{operand}")
    assert plain in str(g.explain())
    assert Picture(g, None).edges[operand, gate].below == short(plain)
    t = g.backprop(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    assert plain in row_of(str(t.table()), f"  {operand}  ")
