"""Neural networks from the lectures, backpropagated by symgrad and checked three ways:
against the hand-derived formulas, against hand-written NumPy, against finite differences."""

import numpy as np
import pytest

import symgrad as sg
from symgrad.printing import numpy_code
from symgrad.program import build_program

from .test_tensors_ops import finite_differences


def assert_grads_close(actual, expected, rtol=1e-6, atol=1e-8):
    assert set(actual) == set(expected)
    for name in expected:
        assert np.shape(actual[name]) == np.shape(expected[name]), name
        np.testing.assert_allclose(actual[name], expected[name], rtol=rtol, atol=atol, err_msg=name)


# -- CS229: a 3-layer sigmoid network (3-2-1 units), binary cross-entropy, examples in columns --


def cs229_net(X, W1, b1, W2, b2, W3, b3, y):
    a1 = sg.sigmoid(W1 @ X + b1)
    a2 = sg.sigmoid(W2 @ a1 + b2)
    a3 = sg.sigmoid(W3 @ a2 + b3)
    return sg.binary_cross_entropy(a3, y)


CS229_TEXT = ("-mean(y * log(sigmoid(W3 @ sigmoid(W2 @ sigmoid(W1 @ X + b1) + b2) + b3))"
              " + (1 - y) * log(1 - sigmoid(W3 @ sigmoid(W2 @ sigmoid(W1 @ X + b1) + b2) + b3)))")


def cs229_shapes(n, m):
    return {"X": (n, m), "W1": (3, n), "b1": (3, 1), "W2": (2, 3), "b2": (2, 1),
            "W3": (1, 2), "b3": (1, 1), "y": (1, m)}


def cs229_values(n, m, seed):
    rng = np.random.default_rng(seed)
    values = {k: rng.normal(size=s) for k, s in cs229_shapes(n, m).items()}
    values["y"] = rng.integers(0, 2, size=(1, m)).astype(float)
    return values


def cs229_by_hand(X, W1, b1, W2, b2, W3, b3, y):
    """The lecture's derivation: chain rule plus shape analysis, averaged over m examples."""
    m = X.shape[1]
    a1 = 1 / (1 + np.exp(-(W1 @ X + b1)))
    a2 = 1 / (1 + np.exp(-(W2 @ a1 + b2)))
    a3 = 1 / (1 + np.exp(-(W3 @ a2 + b3)))
    dW3 = (a3 - y) @ a2.T / m                               # ∂W3 = (a3 − y) a2ᵀ
    delta2 = (W3.T @ (a3 - y)) * a2 * (1 - a2)               # (W3ᵀ(a3 − y)) ∘ a2 ∘ (1 − a2)
    dW2 = delta2 @ a1.T / m                                 # ∂W2 = … · a1ᵀ
    delta1 = (W2.T @ delta2) * a1 * (1 - a1)
    dW1 = delta1 @ X.T / m
    return {
        "W3": dW3, "b3": (a3 - y).sum(axis=1, keepdims=True) / m,
        "W2": dW2, "b2": delta2.sum(axis=1, keepdims=True) / m,
        "W1": dW1, "b1": delta1.sum(axis=1, keepdims=True) / m,
    }


@pytest.mark.parametrize("m", [1, 5])
@pytest.mark.parametrize("front", ["callable", "string"])
def test_cs229_three_layer_sigmoid_network(front, m):
    n = 4
    source = cs229_net if front == "callable" else CS229_TEXT
    g = sg.graph(source, shapes=cs229_shapes(n, m))
    values = cs229_values(n, m, seed=m)
    t = g.backprop(**values)
    by_hand = cs229_by_hand(**values)
    for name, expected in by_hand.items():
        assert t.grads[name].shape == g.shape(name) == expected.shape
        np.testing.assert_allclose(t.grads[name], expected, rtol=1e-12, atol=1e-15, err_msg=name)
    if m == 1:  # one example: exactly the lecture's ∂W3 = (a3 − y)·a2ᵀ
        a2, a3 = (t.values[n] for n in g.nodes if g.shape(n) in ((2, 1), (1, 1)) and
                  g.nx.nodes[n]["op"] == "sigmoid")
        np.testing.assert_allclose(t.grads["W3"], (a3 - values["y"]) @ a2.T, rtol=1e-12)


def test_cs229_gradients_match_finite_differences():
    g = sg.graph(cs229_net, shapes=cs229_shapes(4, 6))
    values = cs229_values(4, 6, seed=11)
    assert_grads_close(g.backprop(**values).grads, finite_differences(g, values, 1.0))


def test_cs229_backward_program_has_the_lectures_transposes():
    g = sg.graph(cs229_net, shapes=cs229_shapes(4, 6))
    program = build_program(g)
    code = {a.node: numpy_code(a.expr) for a in program.backward}
    w3 = g.consumers("W3")[0]
    assert code["W3"] == f"d{w3} @ {g.operands(w3)[1]}.T"     # ∂W3 = δ3 · a2ᵀ
    assert code[g.operands(w3)[1]] == f"W3.T @ d{w3}"         # the transpose goes on W3
    assert "np.sum(" in code["b1"] and "keepdims=True" in code["b1"]


# -- CS231n: affine → ReLU → affine → softmax cross-entropy + ½·reg·ΣW² -----------------------------


def two_layer(X, W1, b1, W2, b2, y, reg):
    h = sg.relu(X @ W1 + b1)
    scores = h @ W2 + b2
    return sg.softmax_cross_entropy(scores, y) + 0.5 * reg * (sg.l2(W1) + sg.l2(W2))


TWO_LAYER_TEXT = ("-mean(log(pick(softmax(relu(X @ W1 + b1) @ W2 + b2), y)))"
                  " + 0.5*reg*(sum(W1*W1) + sum(W2*W2))")


def two_layer_by_hand(X, W1, b1, W2, b2, y, reg):
    """The loss and gradients as written by hand in the CS231n assignments."""
    N = X.shape[0]
    h = np.maximum(0, X @ W1 + b1)
    scores = h @ W2 + b2
    probs = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    loss = -np.log(probs[np.arange(N), y]).mean() + 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    dscores = probs.copy()
    dscores[np.arange(N), y] -= 1
    dscores /= N
    dh = dscores @ W2.T
    dh[h <= 0] = 0
    return loss, {
        "W2": h.T @ dscores + reg * W2, "b2": dscores.sum(axis=0),
        "W1": X.T @ dh + reg * W1, "b1": dh.sum(axis=0), "X": dh @ W1.T,
        "reg": 0.5 * (np.sum(W1 * W1) + np.sum(W2 * W2)),
    }


def two_layer_case(N=5, D=4, H=6, C=3, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"X": (N, D), "W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,), "y": (N,)}
    values = {k: rng.normal(size=s) for k, s in shapes.items() if k != "y"}
    values["y"] = rng.integers(0, C, size=N)
    values["reg"] = 0.1
    return shapes, values


@pytest.mark.parametrize("source", [two_layer, TWO_LAYER_TEXT], ids=["callable", "string"])
def test_cs231n_two_layer_net(source):
    shapes, values = two_layer_case()
    g = sg.graph(source, shapes=shapes, dtypes={"y": int})
    t = g.backprop(**values)
    loss, by_hand = two_layer_by_hand(**values)
    assert t.value == pytest.approx(loss, rel=1e-12)
    assert_grads_close(t.grads, by_hand, rtol=1e-10, atol=1e-12)
    assert_grads_close(t.grads, finite_differences(g, values, 1.0))


def test_cs231n_softmax_gradient_is_p_minus_onehot():
    shapes, values = two_layer_case(seed=4)
    g = sg.graph(two_layer, shapes=shapes, dtypes={"y": int})
    t = g.backprop(**values)
    scores = next(n for n in g.nodes if g.shape(n) == (5, 3) and g.nx.nodes[n]["op"] == "add")
    s = t.values[scores]
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(t.node_grads[scores], (p - np.eye(3)[values["y"]]) / 5, rtol=1e-12)


def test_cs231n_svm_loss_matches_hand_written():
    rng = np.random.default_rng(7)
    N, D, C = 6, 4, 5
    X, W, y = rng.normal(size=(N, D)), rng.normal(size=(D, C)), rng.integers(0, C, size=N)
    g = sg.graph("svm_loss(X @ W, y) + 0.5*reg*l2(W)", shapes={"X": (N, D), "W": (D, C), "y": (N,)},
                 dtypes={"y": int})
    t = g.backprop(X=X, W=W, y=y, reg=0.2)
    scores = X @ W
    margins = np.maximum(0, scores - scores[np.arange(N), y][:, None] + 1)
    margins[np.arange(N), y] = 0
    mask = (margins > 0).astype(float)
    mask[np.arange(N), y] = -mask.sum(axis=1)
    assert t.value == pytest.approx(margins.sum() / N + 0.1 * np.sum(W * W), rel=1e-12)
    np.testing.assert_allclose(t.grads["W"], X.T @ mask / N + 0.2 * W, rtol=1e-12)
    assert_grads_close(t.grads, finite_differences(g, {"X": X, "W": W, "y": y, "reg": 0.2}, 1.0))


# -- the slides: J(Θ) = −1/m Σ [y log h + (1 − y) log(1 − h)] + λ/(2m) Σ Θ² ------------------------


def test_slides_regularized_cost():
    m, K = 4, 3
    h = "sigmoid(T2 @ sigmoid(T1 @ X))"
    text = f"-sum(Y * log({h}) + (1 - Y) * log(1 - {h})) / {m} + lam / (2 * {m}) * (sum(T1**2) + sum(T2**2))"
    shapes = {"X": (4, m), "T1": (3, 4), "T2": (K, 3), "Y": (K, m)}
    rng = np.random.default_rng(2)
    values = {k: rng.normal(size=s) for k, s in shapes.items()}
    values["Y"] = np.eye(K)[rng.integers(0, K, size=m)].T
    values["lam"] = 0.3
    g = sg.graph(text, shapes=shapes)
    t = g.backprop(**values)
    h1 = 1 / (1 + np.exp(-values["T1"] @ values["X"]))
    h = 1 / (1 + np.exp(-values["T2"] @ h1))
    Y, T1, T2 = values["Y"], values["T1"], values["T2"]
    J = -np.sum(Y * np.log(h) + (1 - Y) * np.log(1 - h)) / m + 0.3 / (2 * m) * (np.sum(T1**2) + np.sum(T2**2))
    assert t.value == pytest.approx(J, rel=1e-12)
    assert_grads_close(t.grads, finite_differences(g, values, 1.0))
    np.testing.assert_allclose(t.grads["T2"], (h - Y) @ h1.T / m + 0.3 / m * T2, rtol=1e-12)


# -- CS231n on images: a batch (N, 3, H, W) flattened to (N, 3·H·W) before the first affine layer ----


def image_net(X, W1, b1, W2, b2, y, reg):
    h = sg.relu(X.reshape(X.shape[0], -1) @ W1 + b1)
    return sg.softmax_cross_entropy(h @ W2 + b2, y) + 0.5 * reg * (sg.l2(W1) + sg.l2(W2))


IMAGE_NET_TEXT = ("softmax_cross_entropy(relu(reshape(X, (4, -1)) @ W1 + b1) @ W2 + b2, y)"
                  " + 0.5*reg*(l2(W1) + l2(W2))")


@pytest.mark.parametrize("source", [image_net, IMAGE_NET_TEXT], ids=["callable", "string"])
def test_cs231n_net_on_a_batch_of_images(source):
    """CS231n's affine_backward reshapes dx back to the images' shape; so does the graph."""
    N, image = 4, (3, 2, 2)
    shapes, values = two_layer_case(N=N, D=12, seed=9)
    shapes["X"] = (N, *image)
    values["X"] = values["X"].reshape(N, *image)
    g = sg.graph(source, shapes=shapes, dtypes={"y": int})
    flat = {**values, "X": values["X"].reshape(N, -1)}
    loss, by_hand = two_layer_by_hand(**flat)
    by_hand["X"] = by_hand["X"].reshape(N, *image)
    for value, grads in (astuple(g.backprop(**values)), g.compile().value_and_grad(**values)):
        assert value == pytest.approx(loss, rel=1e-12)
        assert_grads_close(grads, by_hand, rtol=1e-10, atol=1e-12)
    assert_grads_close(g.backprop(**values).grads, finite_differences(g, values, 1.0))


def astuple(t):
    return t.value, t.grads


# -- attention scores over a batch: softmax(Q Kᵀ / √d) V for each of B sequences ----------------------


def attention_by_hand(Q, K, V, dout):
    """Forward and backward written out per batch entry, with the batched transposes of NumPy."""
    d, mT = Q.shape[-1], lambda a: np.swapaxes(a, -1, -2)  # NumPy ≥ 2 spells it a.mT
    S = Q @ mT(K) / np.sqrt(d)
    P = np.exp(S - S.max(axis=-1, keepdims=True))
    P /= P.sum(axis=-1, keepdims=True)
    out = P @ V
    dP = dout @ mT(V)
    dS = P * (dP - np.sum(dP * P, axis=-1, keepdims=True)) / np.sqrt(d)
    return out, {"Q": dS @ K, "K": mT(dS) @ Q, "V": mT(P) @ dout}


@pytest.mark.parametrize("text", [
    "softmax(Q @ K.mT / 2, axis=-1) @ V",
    "softmax(matmul(Q, swapaxes(K, -1, -2)) / 2) @ V",
    "exp(Q @ transpose(K, (0, 2, 1)) / 2 - logsumexp(Q @ K.mT / 2, axis=2, keepdims=True)) @ V",
])
def test_batched_attention(text):
    B, T, d, e = 3, 4, 4, 2
    rng = np.random.default_rng(5)
    values = {"Q": rng.normal(size=(B, T, d)), "K": rng.normal(size=(B, T, d)),
              "V": rng.normal(size=(B, T, e))}
    dout = rng.normal(size=(B, T, e))
    g = sg.graph(text, shapes={n: v.shape for n, v in values.items()})
    out, by_hand = attention_by_hand(**values, dout=dout)
    t = g.backprop(dout=dout, **values)
    np.testing.assert_allclose(t.value, out, rtol=1e-12)
    assert_grads_close(t.grads, by_hand, rtol=1e-10, atol=1e-12)
    f = g.compile()
    _, cache = f.forward(**values)
    assert_grads_close(f.backward(dout, cache), by_hand, rtol=1e-10, atol=1e-12)
    assert_grads_close(t.grads, finite_differences(g, values, dout))


def test_one_weight_matrix_for_a_batch_gets_the_batch_sum():
    rng = np.random.default_rng(1)
    A, W, x = rng.normal(size=(5, 2, 3)), rng.normal(size=(3, 4)), rng.normal(size=(4,))
    g = sg.graph("sum(tanh(A @ W) @ x)", shapes={"A": A.shape, "W": W.shape, "x": x.shape})
    t = g.backprop(A=A, W=W, x=x)
    dZ = (1 - np.tanh(A @ W) ** 2) * x                  # (5, 2, 4)
    np.testing.assert_allclose(t.grads["W"], sum(A[i].T @ dZ[i] for i in range(5)), rtol=1e-12)
    np.testing.assert_allclose(t.grads["x"], np.tanh(A @ W).sum(axis=(0, 1)), rtol=1e-12)
    assert t.grads["W"].shape == W.shape and t.grads["x"].shape == x.shape
