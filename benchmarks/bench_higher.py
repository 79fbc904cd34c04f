"""Hessian-vector products and whole Hessians.

Run:  python benchmarks/bench_higher.py [--quick] [--section hvp|hessian]

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
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import timeit
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
    exact = closed_form(X, y, w)
    for name, call in calls.items():
        assert np.allclose(call(), exact, rtol=1e-8, atol=1e-12), name
    calls["closed form by hand (NumPy)"] = lambda: closed_form(X, y, w)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases")
    parser.add_argument("--section", choices=("hvp", "hessian"), help="run one section only")
    args = parser.parse_args()
    if args.section in (None, "hvp"):
        hvp_section(args.quick)
    if args.section is None:
        print()
    if args.section in (None, "hessian"):
        hessian_section(args.quick)


if __name__ == "__main__":
    main()
