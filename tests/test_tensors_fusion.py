"""Gates over arrays: affine + ReLU layers and softmax cross-entropy, each fused into one node.

Checked against the unfused graphs (values and every gradient, interpreted and
compiled), against SymPy's componentwise expansion at small shapes, at scores
of ±1000, and in tables, pictures, explanations and check_grad.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad import tracing
from symgrad.layers import LAYERS, softmax_cross_entropy_expr, tensor_canonical
from symgrad.ops import relu
from symgrad.tensors import explicit, logsumexp, onehot, symbol_array

from .test_tensors_nets import TWO_LAYER_TEXT, two_layer, two_layer_by_hand, two_layer_case

BOTH = ["affine_relu", "softmax_cross_entropy"]


def fused(g):
    return g.fuse("affine_relu").fuse("softmax_cross_entropy")


def gate_labels(g):
    return sorted(g.nx.nodes[n]["label"] for n in g.gates)


def assert_same_grads(a, b, rtol=1e-12, atol=1e-14):
    assert set(a) == set(b)
    for n in a:
        assert np.shape(a[n]) == np.shape(b[n]), n
        np.testing.assert_allclose(a[n], b[n], rtol=rtol, atol=atol, err_msg=n)


# -- the CS231n two-layer net, fused ----------------------------------------------------------


@pytest.mark.parametrize("source", [two_layer, TWO_LAYER_TEXT], ids=["callable", "string"])
def test_two_layer_net_fused_keeps_value_and_every_gradient(source):
    shapes, values = two_layer_case(N=6, D=5, H=7, C=4, seed=3)
    g = sg.graph(source, shapes=shapes, dtypes={"y": int})
    f = fused(g)
    assert gate_labels(f) == BOTH
    assert not any(f.nx.nodes[n]["op"] in ("logsumexp", "pick", "relu") for n in f.operations)
    layer = next(n for n in f.gates if f.nx.nodes[n]["label"] == "affine_relu")
    loss = next(n for n in f.gates if f.nx.nodes[n]["label"] == "softmax_cross_entropy")
    assert set(f.operands(layer)) == {"X", "W1", "b1"} and f.shape(layer) == (6, 7)
    assert f.shape(loss) == () and "y" in f.operands(loss)
    assert len(f.operations) < len(g.operations) - 4

    a, b = g.backprop(**values), f.backprop(**values)
    assert b.value == pytest.approx(a.value, rel=1e-13)
    assert_same_grads(b.grads, a.grads)
    loss_value, by_hand = two_layer_by_hand(**values)
    assert b.value == pytest.approx(loss_value, rel=1e-12)
    assert_same_grads(b.grads, by_hand, rtol=1e-10, atol=1e-12)

    cg, cf = g.compile(), f.compile()
    (vg, gg), (vf, gf) = cg.value_and_grad(**values), cf.value_and_grad(**values)
    assert vf == pytest.approx(vg, rel=1e-13)
    assert_same_grads(gf, gg)
    assert_same_grads(gf, b.grads)
    out, cache = cf.forward(**values)
    assert_same_grads(cf.backward(2.5, cache), {k: 2.5 * v for k, v in gg.items()})


def test_fused_code_has_the_layer_transposes_and_no_jacobian():
    shapes, values = two_layer_case()
    f = fused(sg.graph(two_layer, shapes=shapes, dtypes={"y": int})).compile()
    backward = f.source[f.source.index("def backward"):f.source.index("def value_and_grad")]
    assert "X.T @ " in backward and " @ W1.T" in backward and " @ W2.T" in backward
    assert "*(q3 > 0)" in backward  # the relu mask read off the layer's output
    assert backward.count(" > 0)") == 1  # computed once, shared
    assert "np.eye(3)[y]" in backward and "np.max(" in backward  # p − onehot(y), max subtracted
    assert "np.eye(5)" not in f.source and "np.eye(6)" not in f.source  # no Jacobian, no identity
    forward = f.source[f.source.index("def forward"):f.source.index("def backward")]
    assert "q3 = np.maximum(b1 + X @ W1, 0)" in forward


def test_fused_net_expands_back_to_its_members():
    shapes, _ = two_layer_case()
    g = sg.graph(two_layer, shapes=shapes, dtypes={"y": int})
    e = fused(g).expand()
    assert e.nodes == g.nodes
    assert all(e.nx.nodes[n]["op"] == g.nx.nodes[n]["op"] for n in g.nodes)
    assert set(e.nx.edges) == set(g.nx.edges)
    one = fused(g).expand(["q3"])
    assert gate_labels(one) == ["softmax_cross_entropy"]


def test_column_layer_and_a_bias_free_product_do_not_confuse_the_pattern():
    shapes = {"W": (3, 4), "X": (4, 5), "b": (3, 1), "V": (2, 3)}
    g = sg.graph("sum(V @ relu(W @ X + b))", shapes=shapes)
    f = g.fuse("affine_relu")
    assert gate_labels(f) == ["affine_relu"]
    gate = f.gates[0]
    assert f.operands(gate) == ["W", "X", "b"]
    rng = np.random.default_rng(0)
    values = {n: rng.normal(size=s) for n, s in shapes.items()}
    assert_same_grads(f.backprop(**values).grads, g.backprop(**values).grads)
    assert_same_grads(f.compile().value_and_grad(**values)[1], g.backprop(**values).grads)
    assert "keepdims=True" in f.compile().source  # db sums over the examples, kept as a column
    plain = sg.graph("sum(relu(W @ X))", shapes={"W": (3, 4), "X": (4, 5)})
    assert plain.fuse("affine_relu").gates == []


def test_max_spelling_of_relu_and_two_layers():
    shapes = {"X": (4, 3), "W1": (3, 5), "b1": (5,), "W2": (5, 2), "b2": (2,)}
    g = sg.graph("sum(max(0, max(0, X @ W1 + b1) @ W2 + b2))", shapes=shapes)
    f = g.fuse("affine_relu")
    assert gate_labels(f) == ["affine_relu", "affine_relu"]
    rng = np.random.default_rng(5)
    values = {n: rng.normal(size=s) for n, s in shapes.items()}
    assert_same_grads(f.backprop(**values).grads, g.backprop(**values).grads)


def test_affine_relu_rule_against_the_componentwise_expansion():
    """Every vector-Jacobian product of the layer gate equals SymPy's derivative of the
    layer written out entry by entry, at random points away from the kink."""
    N, D, H = 2, 3, 2
    g = sg.graph("relu(X @ W + b)", shapes={"X": (N, D), "W": (D, H), "b": (H,)}).fuse("affine_relu")
    gate = g.output
    rules = g.vjps(gate)
    env = {sp.Symbol(n, real=True): symbol_array(n, s) for n, s in
           {"X": (N, D), "W": (D, H), "b": (H,), f"d{gate}": (N, H)}.items()}
    assert isinstance(g.expr(gate), relu)
    layer = explicit(g.expr(gate), env)
    env[sp.Symbol(gate, real=True)] = layer
    upstream = env[sp.Symbol(f"d{gate}", real=True)]
    total = sum(upstream[i] * layer[i] for i in np.ndindex(N, H))  # sum(dout * layer)
    rng = np.random.default_rng(1)
    for _ in range(3):
        point = {e: rng.normal() for a in env.values() for e in a.flat if isinstance(e, sp.Indexed)}
        for name in ("X", "W", "b"):
            got = explicit(rules[name].expr, env)
            for index in np.ndindex(*got.shape):
                entry = env[sp.Symbol(name, real=True)][index]
                want = sp.diff(total, entry).subs(point)
                assert float(got[index].subs(point)) == pytest.approx(float(want), abs=1e-12)


# -- softmax cross-entropy: every spelling, one gate ------------------------------------------


def naive(S, y):  # exp(S) / Σ exp(S), written out
    e = tracing.exp(S)
    return -tracing.mean(tracing.log(tracing.pick(e / tracing.reduce_sum(e, axis=1, keepdims=True), y)))


SPELLINGS = [
    "softmax_cross_entropy(S, y)",
    "-mean(pick(log_softmax(S), y))",
    "-mean(log(pick(softmax(S), y)))",
    "mean(logsumexp(S, axis=1) - pick(S, y))",
    "mean(logsumexp(S, axis=1)) - mean(pick(S, y))",
    "-sum(log(pick(softmax(S), y))) / 2",
    naive,
]
SHAPES = {"S": (2, 3), "y": (2,)}


@pytest.mark.parametrize("spelling", SPELLINGS, ids=lambda s: s if isinstance(s, str) else s.__name__)
def test_every_spelling_becomes_one_stable_gate(spelling):
    g = sg.graph(spelling, shapes=SHAPES, dtypes={"y": int})
    f = g.fuse("softmax_cross_entropy")
    assert f.operations == [f.output] and gate_labels(f) == ["softmax_cross_entropy"]
    S, y = (f.symbol(n) for n in ("S", "y"))
    assert f.expr(f.output) == softmax_cross_entropy_expr(S, y)
    # the rule, simplified: dout·(p − onehot(y))/N with p = exp(S − logsumexp(S)) (max subtracted)
    d = sp.Symbol(f"d{f.output}", real=True)
    p = sp.exp(S - logsumexp(S, sp.Tuple(1), sp.true))
    assert sp.simplify(f.vjps(f.output)["S"].expr - d * (p - onehot(y, 3)) / 2) == 0
    # ... and that rule equals SymPy's derivative of the unfused composition, entry by entry
    labels = np.array([2, 0])
    entries = symbol_array("S", (2, 3))
    env = {S: entries, y: labels, d: sp.Integer(1)}
    loss = explicit(g.expression(), env)[()]
    rule = explicit(f.vjps(f.output)["S"].expr, env)
    for index in np.ndindex(2, 3):
        assert sp.simplify(sp.diff(loss, entries[index]) - rule[index]) == 0, index
    point = {"S": np.array([[0.3, -1.2, 2.0], [1.5, 0.1, -0.4]]), "y": labels}
    assert_same_grads(f.backprop(**point).grads, g.backprop(**point).grads)


@pytest.mark.parametrize("text", [
    "mean(logsumexp(S, axis=1) + pick(S, y))",
    "sum(logsumexp(S, axis=1) - pick(S, y))",
    "mean(logsumexp(S, axis=0)) - mean(pick(S, y))",
    "-mean(pick(S, y))",
])
def test_other_losses_are_not_softmax_cross_entropy(text):
    g = sg.graph(text, shapes=SHAPES, dtypes={"y": int})
    assert g.fuse("softmax_cross_entropy").gates == []


def test_canonical_spellings_agree():
    S, y = sp.Symbol("S", real=True), sp.Symbol("y", real=True)
    shapes = {S: (2, 3), y: (2,)}
    lse_k = logsumexp(S, sp.Tuple(1), sp.true)
    from symgrad.tensors import mean, pick
    spelled = -mean(sp.log(pick(sp.exp(S - lse_k), y, sp.false)), sp.Tuple(), sp.false)
    assert tensor_canonical(spelled, shapes) == tensor_canonical(softmax_cross_entropy_expr(S, y), shapes)
    assert set(LAYERS) == set(BOTH)


def test_softmax_cross_entropy_gate_is_stable_at_scores_of_a_thousand():
    N, C = 3, 4
    S = np.array([[1000.0, -1000.0, 0.0, 999.0],
                  [-1000.0, -1000.0, -999.0, -1000.0],
                  [0.0, 1000.0, 1000.0, -1000.0]])
    y = np.array([1, 2, 0])
    shift = S - S.max(axis=1, keepdims=True)
    p = np.exp(shift) / np.exp(shift).sum(axis=1, keepdims=True)
    loss = np.mean(np.log(np.exp(shift).sum(axis=1)) - shift[np.arange(N), y])
    expected = (p - np.eye(C)[y]) / N
    for spelling in SPELLINGS[:5]:
        g = sg.graph(spelling, shapes={"S": (N, C), "y": (N,)}, dtypes={"y": int})
        f = g.fuse("softmax_cross_entropy")
        assert gate_labels(f) == ["softmax_cross_entropy"]
        with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
            warnings.simplefilter("error")
            t = f.backprop(S=S, y=y)
            value, grads = f.compile().value_and_grad(S=S, y=y)
        for v, grad in ((t.value, t.grads["S"]), (value, grads["S"])):
            assert np.isfinite(v) and v == pytest.approx(loss, rel=1e-12)
            assert np.all(np.isfinite(grad))
            np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-300)


# -- everywhere a gate goes ------------------------------------------------------------------------


def test_tables_pictures_and_explanations_show_each_gate_as_one_node():
    shapes, values = two_layer_case()
    f = fused(sg.graph(two_layer, shapes=shapes, dtypes={"y": int}))
    table = str(f.table())
    assert "affine_relu" in table and "softmax_cross_entropy" in table
    assert "onehot(y, 3)" in table and "[q3 > 0]" in table
    t = f.backprop(**values)
    trace = str(t.table())
    assert trace.count("affine_relu") == 1 and trace.count("softmax_cross_entropy") == 1
    assert "logsumexp" not in [f.nx.nodes[n]["label"] for n in f.nodes]
    svg = sg.render(t)
    assert svg.count(">affine_relu<") == 1 and svg.count(">softmax_cross_entropy<") == 1
    assert ">@<" in svg  # the second layer's product is still its own node
    text = str(sg.explain(f, "W1"))
    assert "W1" in text and "q3" in text
    assert t.jacobian("q3", "b1").shape == (5, 6, 6)


def test_fused_nets_pass_check_grad():
    shapes, values = two_layer_case(seed=9)
    for g in (sg.graph(two_layer, shapes=shapes, dtypes={"y": int}),
              fused(sg.graph(TWO_LAYER_TEXT, shapes=shapes, dtypes={"y": int}))):
        r = sg.check_grad(g.compile(), **values)
        assert r.ok and r.max_rel_error < 1e-6, str(r)
        assert sg.check_local(g, **values).ok


def test_unknown_pattern_lists_the_array_gates():
    with pytest.raises(sg.FusionError, match="affine_relu, softmax_cross_entropy"):
        sg.graph("x * y").fuse("softmax_crossentropy")


def test_fusing_twice_and_in_either_order_gives_the_same_graph():
    shapes, _ = two_layer_case()
    g = sg.graph(TWO_LAYER_TEXT, shapes=shapes, dtypes={"y": int})
    a = fused(g)
    b = g.fuse("softmax_cross_entropy").fuse("affine_relu")
    assert a.nodes == b.nodes and all(a.expr(n) == b.expr(n) for n in a.nodes)
    again = fused(a)
    assert again.nodes == a.nodes


def test_labels_inside_a_gate_are_still_checked():
    g = sg.graph("-mean(log(pick(softmax(S), y)))", shapes=SHAPES, dtypes={"y": int})
    f = g.fuse("softmax_cross_entropy")
    assert gate_labels(f) == ["softmax_cross_entropy"]
    S = np.zeros((2, 3))
    for y in ([0, 3], [-1, 0]):
        with pytest.raises(sg.InputError, match=r"labels 'y' must lie in 0 … 2"):
            f.backprop(S=S, y=y)
        with pytest.raises(sg.InputError, match=r"labels 'y' must lie in 0 … 2"):
            f.compile().value_and_grad(S=S, y=y)


def test_jacobian_cut_keeps_the_graphs_order():
    from symgrad.interpret import _cut

    shapes, values = two_layer_case()
    f = fused(sg.graph(two_layer, shapes=shapes, dtypes={"y": int}))
    cut = _cut(f, "q5", "b1")
    assert cut.nodes == [n for n in f.nodes if n in cut.nodes]
    assert cut.nx.in_degree("b1") == 0
    jac = f.backprop(**values).jacobian("q5", "b1")
    assert jac.shape == (5, 3, 6) and np.any(jac != 0)
