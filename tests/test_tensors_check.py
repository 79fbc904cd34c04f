"""check_grad on the lectures' networks: the compiled gradients pass, a classic mistake fails."""

from __future__ import annotations

import numpy as np

import symgrad as sg

from .test_tensors_nets import two_layer, two_layer_case

H = "sigmoid(T2 @ sigmoid(T1 @ X))"
J_TEXT = f"-sum(Y * log({H}) + (1 - Y) * log(1 - {H})) / 4 + lam / (2 * 4) * (sum(T1**2) + sum(T2**2))"


def j_case(seed=2):
    m, K = 4, 3
    shapes = {"X": (4, m), "T1": (3, 4), "T2": (K, 3), "Y": (K, m)}
    rng = np.random.default_rng(seed)
    values = {k: rng.normal(size=s) for k, s in shapes.items()}
    values["Y"] = np.eye(K)[rng.integers(0, K, size=m)].T
    values["lam"] = 0.3
    return shapes, values


def test_two_layer_net_passes_check_grad_and_a_missing_regularizer_fails():
    shapes, values = two_layer_case(seed=6)
    f = sg.graph(two_layer, shapes=shapes, dtypes={"y": int}).compile()
    r = sg.check_grad(f, **values)
    assert r.ok and r.max_rel_error < 1e-6, str(r)
    assert {row.name for row in r.rows} == {"X", "W1", "b1", "W2", "b2", "reg"}

    def forgot_the_regularizer(**point):  # dW1 without reg·W1, a classic slip
        value, grads = f.value_and_grad(**point)
        return value, {**grads, "W1": grads["W1"] - point["reg"] * point["W1"]}

    wrong = sg.check_grad(forgot_the_regularizer, graph=f.graph, wrt=list(f.wrt), **values)
    assert not wrong.ok
    assert [row.name for row in wrong.rows if row.status == "FAIL"] == ["W1"]


def test_slides_cost_passes_check_grad_and_a_halved_penalty_fails():
    shapes, values = j_case()
    f = sg.graph(J_TEXT, shapes=shapes).compile(wrt=["T1", "T2"])
    r = sg.check_grad(f, **values)
    assert r.ok and r.max_rel_error < 1e-6, str(r)
    assert sg.check_grad(f, **values, method="directional").ok

    def halved_penalty(**point):  # λ/(2m)·Θ instead of λ/m·Θ
        value, grads = f.value_and_grad(**point)
        return value, {n: grads[n] - point["lam"] / 8 * point[n] for n in ("T1", "T2")}

    wrong = sg.check_grad(halved_penalty, graph=f.graph, wrt=["T1", "T2"], **values)
    assert not wrong.ok
    assert {row.name for row in wrong.rows if row.status == "FAIL"} == {"T1", "T2"}
