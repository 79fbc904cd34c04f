"""Hessian-vector products and whole Hessians.

Run:  python benchmarks/bench_higher.py [--quick] [--section hvp|hessian|w2]

1. Hessian-vector products, reverse over reverse against forward over
   reverse: for each case, ``sg.hvp(g, wrt, mode=...)`` is built and compiled
   in both modes; the table gives each graph's operation count, the time to
   build and compile it, and the time of one compiled evaluation, as a ratio
   to the compiled gradient (``value_and_grad``) of the same graph, measured
   in the same run (best of interleaved repeats).  Both modes must agree to 1e-10.
2. The Hessian of the logistic-regression loss mean(log(1 + exp(-y·Xw)))
   with respect to w (N = 1000 points, d = 10, 100, 1000): symgrad's compiled
   matrix Hessian (``sg.hessian(..., method="matrix")``), its Hessian-vector
   products column by column (d ≤ 100), ``autograd.hessian``,
   ``jax.jit(jax.hessian(...))`` and ``torch.autograd.functional.hessian``
   where installed (skipped otherwise), each as a ratio to the closed form
   Xᵀ diag(σ(1−σ)) X / N written by hand in NumPy, in the same run.  Every
   result must equal the closed form to 1e-8.
3. The Hessian of the two-layer net's loss (softmax cross-entropy of
   relu(X W1 + b1) W2 + b2, mean over N = 256 examples, + ½·reg·(‖W1‖² + ‖W2‖²))
   with respect to W2 of H × C = 5 × 2, 20 × 5, 100 × 10 (d = 10, 100, 1000
   entries): the same contenders, each as a ratio to the closed form
   (1/N) Σ_n h_n h_nᵀ ⊗ (diag(p_n) − p_n p_nᵀ) + reg·I written by hand in
   NumPy (one product for each term), in the same run; every result must
   equal it to 1e-8.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import symgrad as sg  # noqa: E402

MODES = ("reverse", "forward")


def cases(quick: bool) -> list[tuple[str, sg.Graph, str, dict[str, Any]]]:
    rng = np.random.default_rng(0)
    out = []
    neuron = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))")
    at = {"w0": 2.0, "x0": -1.0, "w1": -3.0, "x1": -2.0, "w2": -3.0}
    out.append(("sigmoid neuron, wrt w0", neuron, "w0", at))
    for d in (10, 100) if quick else (10, 100, 1000):
        n = 1000
        g = sg.graph("mean(logaddexp(0, -y*(X@w)))", shapes={"X": (n, d), "w": (d,), "y": (n,)})
        values = {"X": rng.normal(size=(n, d)), "y": rng.choice([-1.0, 1.0], size=n),
                  "w": rng.normal(size=d) / np.sqrt(d)}
        out.append((f"logistic regression N={n} d={d}", g, "w", values))
    n, d, h = 500, 20, 50
    g = sg.graph("mean((tanh(X @ W1) @ w2 - y)**2)",
                 shapes={"X": (n, d), "W1": (d, h), "w2": (h,), "y": (n,)})
    values = {"X": rng.normal(size=(n, d)), "W1": rng.normal(size=(d, h)) / np.sqrt(d),
              "w2": rng.normal(size=h) / np.sqrt(h), "y": rng.normal(size=n)}
    out.append((f"tanh net {d}-{h}-1, wrt W1", g, "W1", values))
    return out


def best(f, repeat: int = 7) -> float:
    number = max(1, int(0.02 / max(timeit.timeit(f, number=1), 1e-7)))
    return min(timeit.repeat(f, number=number, repeat=repeat)) / number


def measure(g: sg.Graph, wrt: str, values: dict[str, Any]) -> list[tuple[str, int, float, float]]:
    """(mode, operations, build seconds, hvp time / gradient time) for each mode."""
    grad = g.compile(wrt=[wrt])
    v = np.random.default_rng(1).normal(size=g.shape(wrt))
    v = float(v) if v.ndim == 0 else v  # scalars as Python floats, as the inputs
    built = {}
    for mode in MODES:
        t0 = time.perf_counter()
        graph = sg.hvp(g, wrt, mode=mode)
        f = graph.compile(wrt=[])
        built[mode] = (graph, f, time.perf_counter() - t0)
    results = [built[m][1](**values, v=v) for m in MODES]
    assert np.allclose(results[0], results[1], rtol=1e-10, atol=1e-13)
    calls = {m: (lambda f=built[m][1]: f(**values, v=v)) for m in MODES}
    calls["gradient"] = lambda: grad.value_and_grad(**values)
    times = {name: float("inf") for name in calls}
    for _ in range(3):  # interleaved, so load on the machine weighs on every side alike
        for name, call in calls.items():
            times[name] = min(times[name], best(call))
    return [(m, len(built[m][0].operations), built[m][2], times[m] / times["gradient"])
            for m in MODES]


def hvp_section(quick: bool) -> None:
    header = (f"{'case':<34} {'mode':<8} {'ops':>5} {'build s':>8} {'hvp/grad':>9}")
    print(header)
    print("-" * len(header))
    for name, g, wrt, values in cases(quick):
        for mode, ops, seconds, ratio in measure(g, wrt, values):
            print(f"{name:<34} {mode:<8} {ops:>5} {seconds:>8.2f} {ratio:>9.2f}")


def closed_form(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The logistic-regression Hessian by hand: Xᵀ diag(σ(1−σ)) X / N."""
    s = 1.0 / (1.0 + np.exp(-y * (X @ w)))
    return (X.T * (s * (1.0 - s))) @ X / len(y)


def peers(X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """``{name: w ↦ Hessian}`` for the autodiff libraries that are installed."""
    out: dict[str, Any] = {}
    try:
        import autograd
        import autograd.numpy as anp

        out["autograd.hessian"] = autograd.hessian(
            lambda w: anp.mean(anp.logaddexp(0.0, -y * anp.dot(X, w))))
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        h = jax.jit(jax.hessian(lambda w: jnp.mean(jnp.logaddexp(0.0, -yj * (Xj @ w)))))
        out["jax.hessian (jit)"] = lambda w: np.asarray(h(jnp.asarray(w)).block_until_ready())
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(1)
        Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

        def loss(w: Any) -> Any:
            return torch.nn.functional.softplus(-yt * (Xt @ w)).mean()

        out["torch.autograd.functional.hessian"] = lambda w: torch.autograd.functional.hessian(
            loss, torch.from_numpy(w), vectorize=True).numpy()
    except ImportError:
        pass
    return out


def hessian_case(d: int, n: int, rng: np.random.Generator) -> list[tuple[str, float | None, float, float]]:
    """(method, build seconds, seconds, ratio to the closed form) for one d."""
    X, y = rng.normal(size=(n, d)), rng.choice([-1.0, 1.0], size=n)
    w = rng.normal(size=d) / np.sqrt(d)
    g = sg.graph("mean(logaddexp(0, -y*(X@w)))", shapes={"X": (n, d), "w": (d,), "y": (n,)})
    calls: dict[str, Any] = {}
    build: dict[str, float] = {}
    methods = ("matrix", "columns") if d <= 100 else ("matrix",)
    for method in methods:
        name = {"matrix": "symgrad matrix Hessian", "columns": "symgrad Hessian-vector products"}[method]
        t0 = time.perf_counter()
        h = sg.hessian(g, "w", method=method)
        build[name] = time.perf_counter() - t0
        calls[name] = lambda h=h: h(X=X, y=y, w=w)
    for name, f in peers(X, y).items():
        t0 = time.perf_counter()
        f(w)  # tracing and compiling, for those that do
        build[name] = time.perf_counter() - t0
        calls[name] = lambda f=f: f(w)
    return against_closed_form(calls, build, lambda: closed_form(X, y, w))


def against_closed_form(calls: dict, build: dict, closed: Callable[[], np.ndarray]) -> list[tuple]:
    """Each call checked against the closed form, then timed beside it (best of interleaved
    repeats): rows of (name, build seconds, seconds, ratio to the closed form)."""
    exact = closed()
    for name, call in calls.items():
        assert np.allclose(call(), exact, rtol=1e-8, atol=1e-12), name
    calls["closed form by hand (NumPy)"] = closed
    times = {name: float("inf") for name in calls}
    for _ in range(3):  # interleaved
        for name, call in calls.items():
            times[name] = min(times[name], best(call, repeat=3))
    base = times["closed form by hand (NumPy)"]
    return [(name, build.get(name), times[name], times[name] / base) for name in calls]


def hessian_section(quick: bool) -> None:
    rng = np.random.default_rng(0)
    header = f"{'d':>5} {'method':<36} {'build s':>8} {'time ms':>9} {'/ closed form':>14}"
    print(header)
    print("-" * len(header))
    for d in (10, 100) if quick else (10, 100, 1000):
        for name, built, seconds, ratio in hessian_case(d, 1000, rng):
            shown = f"{built:>8.2f}" if built is not None else f"{'':>8}"
            print(f"{d:>5} {name:<36} {shown} {seconds * 1e3:>9.3f} {ratio:>14.2f}")


TWO_LAYER = "softmax_cross_entropy(relu(X @ W1 + b1) @ W2 + b2, y) + 0.5*reg*(l2(W1) + l2(W2))"


def w2_closed_form(X: np.ndarray, W1: np.ndarray, b1: np.ndarray, W2: np.ndarray, b2: np.ndarray,
                   y: np.ndarray, reg: float) -> np.ndarray:
    """The two-layer net's Hessian in W2 by hand: (1/N) Σ_n h_n h_nᵀ ⊗ (diag(p_n) − p_n p_nᵀ) + reg·I."""
    hidden = np.maximum(X @ W1 + b1, 0.0)
    scores = hidden @ W2 + b2
    p = np.exp(scores - scores.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n, (h, c) = len(y), W2.shape
    hp = (hidden[:, :, None] * p[:, None, :]).reshape(n, h * c)  # h_na p_ni
    out = -(hp.T @ hp).reshape(h, c, h, c)
    diagonal = (hidden.T @ hp).reshape(h, h, c)  # Σ_n h_na h_nb p_ni
    i = np.arange(c)
    out[:, i, :, i] += np.moveaxis(diagonal, 2, 0)
    out /= n
    out.reshape(h * c, h * c)[np.diag_indices(h * c)] += reg
    return out


def w2_peers(values: dict[str, Any]) -> dict[str, Any]:
    """``{name: W2 ↦ Hessian}`` for the autodiff libraries that are installed."""
    X, W1, b1, b2, y, reg = (values[k] for k in ("X", "W1", "b1", "b2", "y", "reg"))
    rows = np.arange(len(y))
    out: dict[str, Any] = {}
    try:
        import autograd
        import autograd.numpy as anp

        def a_loss(W2: Any) -> Any:
            s = anp.dot(anp.maximum(anp.dot(X, W1) + b1, 0.0), W2) + b2
            s = s - anp.max(s, axis=1, keepdims=True)
            logp = s - anp.log(anp.sum(anp.exp(s), axis=1, keepdims=True))
            return -anp.mean(logp[rows, y]) + 0.5 * reg * (anp.sum(W1 * W1) + anp.sum(W2 * W2))

        out["autograd.hessian"] = autograd.hessian(a_loss)
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        Xj, W1j, b1j, b2j, yj = (jnp.asarray(v) for v in (X, W1, b1, b2, y))

        def j_loss(W2: Any) -> Any:
            s = jnp.maximum(Xj @ W1j + b1j, 0.0) @ W2 + b2j
            logp = jax.nn.log_softmax(s, axis=1)
            return -jnp.mean(logp[rows, yj]) + 0.5 * reg * (jnp.sum(W1j * W1j) + jnp.sum(W2 * W2))

        h = jax.jit(jax.hessian(j_loss))
        out["jax.hessian (jit)"] = lambda W2: np.asarray(h(jnp.asarray(W2)).block_until_ready())
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(1)
        Xt, W1t, b1t, b2t, yt = (torch.from_numpy(np.asarray(v)) for v in (X, W1, b1, b2, y))

        def t_loss(W2: Any) -> Any:
            s = torch.relu(Xt @ W1t + b1t) @ W2 + b2t
            ce = torch.nn.functional.cross_entropy(s, yt)
            return ce + 0.5 * reg * ((W1t * W1t).sum() + (W2 * W2).sum())

        out["torch.autograd.functional.hessian"] = lambda W2: torch.autograd.functional.hessian(
            t_loss, torch.from_numpy(W2), vectorize=True).numpy()
    except ImportError:
        pass
    return out


def w2_case(h: int, c: int, n: int, rng: np.random.Generator) -> list[tuple[str, float | None, float, float]]:
    """(method, build seconds, seconds, ratio to the closed form) for W2 of h × c."""
    d_in = 20
    shapes = {"X": (n, d_in), "W1": (d_in, h), "b1": (h,), "W2": (h, c), "b2": (c,), "y": (n,), "reg": ()}
    g = sg.graph(TWO_LAYER, shapes=shapes, dtypes={"y": int})
    values: dict[str, Any] = {"X": rng.normal(size=(n, d_in)),
                              "W1": rng.normal(size=(d_in, h)) / np.sqrt(d_in),
                              "b1": rng.normal(size=h) * 0.1, "W2": rng.normal(size=(h, c)) / np.sqrt(h),
                              "b2": np.zeros(c), "y": rng.integers(0, c, size=n), "reg": 1e-3}
    calls: dict[str, Any] = {}
    build: dict[str, float] = {}
    for method in ("matrix", "columns") if h * c <= 100 else ("matrix",):
        name = {"matrix": "symgrad matrix Hessian", "columns": "symgrad Hessian-vector products"}[method]
        t0 = time.perf_counter()
        hess = sg.hessian(g, "W2", method=method)
        build[name] = time.perf_counter() - t0
        calls[name] = lambda hess=hess: hess(**values)
    for name, f in w2_peers(values).items():
        t0 = time.perf_counter()
        f(values["W2"])
        build[name] = time.perf_counter() - t0
        calls[name] = lambda f=f: f(values["W2"])
    return against_closed_form(calls, build, lambda: w2_closed_form(**values))


def w2_section(quick: bool) -> None:
    rng = np.random.default_rng(0)
    print("two-layer net, Hessian with respect to W2 (H × C), N = 256")
    header = f"{'d':>5} {'method':<36} {'build s':>8} {'time ms':>9} {'/ closed form':>14}"
    print(header)
    print("-" * len(header))
    for h, c in ((5, 2), (20, 5)) if quick else ((5, 2), (20, 5), (100, 10)):
        for name, built, seconds, ratio in w2_case(h, c, 256, rng):
            shown = f"{built:>8.2f}" if built is not None else f"{'':>8}"
            print(f"{h * c:>5} {name:<36} {shown} {seconds * 1e3:>9.3f} {ratio:>14.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases")
    parser.add_argument("--section", choices=("hvp", "hessian", "w2"), help="run one section only")
    args = parser.parse_args()
    sections = {"hvp": hvp_section, "hessian": hessian_section, "w2": w2_section}
    for name, section in sections.items():
        if args.section in (None, name):
            section(args.quick)
            if args.section is None and name != "w2":
                print()


if __name__ == "__main__":
    main()
