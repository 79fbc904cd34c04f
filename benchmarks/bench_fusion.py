"""Fusion benchmark: how long fusing takes, and what it does to a forward + backward pass.

Run:  python benchmarks/bench_fusion.py

For each expression, the baseline is the unfused graph in the same run: the
table gives the fused graph's operation count and its forward + backward
time (the interpreter, on float64 vectors of N elements) as ratios to the
baseline, and the time the fusion itself took.
"""

from __future__ import annotations

import time

import numpy as np

import symgrad as sg

N = 100_000
CASES = {
    "sigmoid neuron": "1/(1+exp(-(w0*x0+w1*x1+w2)))",
    "softplus": "log(1 + exp(w*x + b))",
    "cross-entropy": "-(y*log(sigmoid(z)) + (1-y)*log(1-sigmoid(z)))",
    "log-sum-exp": "log(exp(a) + exp(b) + exp(c))",
    "tanh": "(exp(x)-exp(-x))/(exp(x)+exp(-x))",
}
FUSIONS = {"fuse_stable": lambda g: g.fuse_stable(), "fuse_all": lambda g: g.fuse_all()}


def backprop_time(graph: sg.Graph, values: dict[str, np.ndarray], repeat: int = 5) -> float:
    """The best of ``repeat`` forward + backward passes, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        graph.backprop(dout=np.ones(N), **values)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"forward + backward on vectors of {N} elements; ratios are fused / unfused (same run)\n")
    print(f"{'case':<16} {'fusion':<12} {'ops':>9} {'fuse ms':>8} {'backprop':>9}")
    for name, text in CASES.items():
        inputs = sg.graph(text).inputs
        g = sg.graph(text, shapes={n: (N,) for n in inputs})
        values = {n: rng.uniform(0.01, 0.99, N) if n == "y" else rng.normal(0, 3, N) for n in inputs}
        base = backprop_time(g, values)
        for label, fuse in FUSIONS.items():
            t0 = time.perf_counter()
            f = fuse(g)
            fuse_ms = (time.perf_counter() - t0) * 1000
            fused = backprop_time(f, values)
            ops = f"{len(f.operations)}/{len(g.operations)}"
            print(f"{name:<16} {label:<12} {ops:>9} {fuse_ms:>8.1f} {fused / base:>8.2f}x")


if __name__ == "__main__":
    main()
