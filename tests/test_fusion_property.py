"""Property tests: fusing never changes a value or a gradient.

Random expressions over the op table's elementwise ops (operands kept inside
each op's domain, as in test_property.py) are built at both granularities; a random
valid sub-graph (a node and operands used only inside the set), the whole
expression, and every fragile spelling are fused; expanding gives the
original graph back.

Numerically, backprop agrees.  Symbolically, each gate's expression is
proved equal (``simplify`` to 0) to the composition of the nodes it
replaced, and its local derivatives (plain, cached and numeric forms) to
SymPy's derivatives of that composition; piecewise expressions (max, abs,
relu), which ``simplify`` cannot settle, are compared as identities.  The whole gradient, composed
from the fused graph's adjoint program into one expression per input, is
checked against SymPy's gradient of the whole expression as an identity at
random points evaluated with 40 significant digits (proving such identities
with ``simplify`` can take minutes).
"""

import numpy as np
import sympy as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.ops import OPS
from symgrad.program import build_program

from .conftest import elementary
from .test_fusion import same_structure
from .test_property import VARIABLES
from .test_property import expressions as property_expressions


def expressions(depth: int = 3):
    return property_expressions(depth, constants=(0.5, 2, -1.5), constant_odds=6)


@st.composite
def graphs_and_sets(draw, depth: int = 3):
    """A graph and a valid set to fuse: a node, grown by operands used only inside the set."""
    g = sg.graph(draw(expressions(depth)), granularity=draw(st.sampled_from(["primitive", "nary"])))
    ops = [n for n in g.operations if g.nx.nodes[n]["kind"] == "op"]
    assume(ops)
    members = {draw(st.sampled_from(ops))}
    while draw(st.integers(0, 4)):
        grow = sorted({u for m in members for u in g.operands(m)
                       if g.nx.nodes[u]["kind"] == "op" and u not in members
                       and all(c in members for c in g.nx.successors(u))})
        if not grow:
            break
        members.add(draw(st.sampled_from(grow)))
    return g, members


points = st.fixed_dictionaries({v: st.floats(-2, 2).filter(lambda x: abs(x) > 1e-3) for v in VARIABLES})


def near_a_kink(g: sg.Graph, t: sg.Trace) -> bool:
    for n in g.operations:
        data = g.nx.nodes[n]
        op = OPS.get(data["op"] or "")
        if op is not None and op.kink is not None:
            args = [t.values[o] if isinstance(o, str) else float(o) for o in data["operands"]]
            if abs(float(op.kink(*args))) < 1e-4:
                return True
    return False


def close(a: sg.Trace, b: sg.Trace) -> None:
    assert np.isclose(a.value, b.value, rtol=1e-10, atol=1e-12)
    for n, v in a.grads.items():
        assert np.isclose(v, b.grads[n], rtol=1e-8, atol=1e-10), n


@settings(max_examples=50, deadline=None)
@given(graphs_and_sets(), points)
def test_fusing_keeps_every_value_and_gradient(graph_and_set, point):
    g, members = graph_and_set
    point = {n: point[n] for n in g.inputs}
    assume(point)
    t = g.backprop(**point)
    assume(not near_a_kink(g, t) and all(abs(v) < 1e6 for v in t.values.values()))
    fused = g.fuse(members)
    everything = g.fuse_all()
    stable = g.fuse_stable()
    for other in (fused, everything, stable, fused.fuse_all()):
        close(t, other.backprop(**point))
    same_structure(fused.expand(), g)
    same_structure(everything.expand(), g)
    same_structure(fused.fuse_all().expand(), g)
    close(t, stable.expand().backprop(**point))


def plain(e: sp.Expr) -> sp.Expr:
    """``e`` in elementary functions, with one subgradient convention at kinks."""
    e = elementary(e).rewrite(sp.tanh, sp.exp)
    return e.replace(lambda x: isinstance(x, sp.Heaviside), lambda x: sp.Heaviside(x.args[0]))


def same(a: sp.Expr, b: sp.Expr) -> bool:
    """``a`` and ``b`` are equal once expanded, or equal at random points to 40 digits
    (not ``sp.simplify``, which can take minutes on one nested exponential)."""
    d = plain(a) - plain(b)
    if d == 0 or sp.expand(d) == 0:
        return True
    return identical(a, b, sorted(d.free_symbols, key=str))


def identical(a: sp.Expr, b: sp.Expr, symbols: list[sp.Symbol]) -> bool:
    """``a`` and ``b`` agree at random points, evaluated with 40 digits.

    To 10 digits: float constants in the expressions (0.5, exp(0.5) once SymPy
    has folded it) carry 15.
    """
    rng = np.random.default_rng(len(symbols))
    d, scale = plain(a) - plain(b), plain(b)
    for _ in range(3):
        point = {s: sp.Float(rng.uniform(-1.5, 1.5), 40) for s in symbols}
        x, y = complex(d.evalf(40, subs=point)), complex(scale.evalf(40, subs=point))
        if abs(x) > 1e-10 * (1 + abs(y)):
            return False
    return True


def gradient_expressions(g: sg.Graph) -> dict[str, sp.Expr]:
    """The adjoint program composed into one expression per input (dout = 1)."""
    program = build_program(g)
    values = {}
    for step in program.forward:
        values[step.target] = step.expr.xreplace(values)
    adjoints = {program.dout: sp.Integer(1)}
    for a in program.backward:
        adjoints[a.target] = a.expr.xreplace(adjoints).xreplace(values)
    return {n: adjoints[s] for n, s in program.grads.items()}


@settings(max_examples=20, deadline=None)
@given(graphs_and_sets(depth=2))
def test_a_gate_is_its_nodes_composed_and_derived_symbolically(graph_and_set):
    g, members = graph_and_set
    f = g.fuse(members)
    out = next(n for n in f.gates)
    values = {}
    for n in g.nodes:
        if n in members:
            values[g.symbol(n)] = g.expr(n).xreplace(values)
    composed = values[g.symbol(out)]
    assert same(f.expr(out), composed)
    for u in f.operands(out):
        exact = sp.diff(plain(composed), g.symbol(u))
        edge = f.nx.edges[u, out]
        assert same(edge["derivative"], exact)
        for form in ("cached", "numeric"):
            assert same(edge[form].xreplace({f.symbol(out): f.expr(out)}), exact), form
    whole = g.expression()
    inputs = [sp.Symbol(n, real=True) for n in g.inputs]
    assert identical(f.expression(), whole, inputs)
    for n, expr in gradient_expressions(f).items():
        assert identical(expr, sp.diff(plain(whole), sp.Symbol(n, real=True)), inputs), n
