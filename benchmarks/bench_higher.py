"""Hessian-vector products: reverse over reverse against forward over reverse.

Run:  python benchmarks/bench_higher.py [--quick]

For each case, ``sg.hvp(g, wrt, mode=...)`` is built and compiled in both
modes; the table gives each graph's operation count, the time to build and
compile it, and the time of one compiled evaluation, as a ratio to the
compiled gradient (``value_and_grad``) of the same graph, measured in the
same run (best of interleaved repeats).  Both modes must agree to 1e-10.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller cases")
    args = parser.parse_args()
    header = (f"{'case':<34} {'mode':<8} {'ops':>5} {'build s':>8} {'hvp/grad':>9}")
    print(header)
    print("-" * len(header))
    for name, g, wrt, values in cases(args.quick):
        for mode, ops, seconds, ratio in measure(g, wrt, values):
            print(f"{name:<34} {mode:<8} {ops:>5} {seconds:>8.2f} {ratio:>9.2f}")


if __name__ == "__main__":
    main()
