"""Homework benchmark: the grader's references, from compiled code against the interpreter.

Run:  python benchmarks/bench_homework.py

For tensor problems of growing size, the time to compute the references at
every test point with the compiled ``value_and_grad`` / ``forward`` + ``backward``
(what the grader does) against the interpreter's ``backprop`` (the baseline,
measured in the same run), and the time the witness (``check_grad``) adds.
Compile time is paid once per problem and shown apart.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symgrad.homework import Problem, load_spec, reference_gradients  # noqa: E402
from symgrad.homework.reference import compiled, witness  # noqa: E402

SPEC = """
[[problem]]
id = "softmax_loss"
expression = "softmax_cross_entropy(X @ W, y) + reg * sum(W * W)"
wrt = ["W"]
trials = 5
[problem.inputs]
X = {{ shape = [{n}, {d}] }}
W = {{ shape = [{d}, {c}] }}
y = {{ shape = [{n}], labels = {c} }}
reg = {{ value = 0.1 }}

[[problem]]
id = "two_layer"
style = "layer"
expression = "relu(X @ W1 + b1) @ W2"
trials = 5
[problem.inputs]
X = {{ shape = [{n}, {d}] }}
W1 = {{ shape = [{d}, {h}] }}
b1 = {{ shape = [{h}] }}
W2 = {{ shape = [{h}, {c}] }}
"""
SIZES = [(16, 8, 16, 4), (128, 32, 64, 10), (1024, 128, 256, 10)]


def best(f, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(p: Problem) -> tuple[float, float, float, float]:
    """Compile time, then the interpreter's, the compiled code's and the witness's time
    over the problem's test points, in seconds."""
    points = p.sample(0)
    douts = p.sample_douts(0) if p.style == "layer" else [None] * len(points)
    t0 = time.perf_counter()
    compiled(p)
    compile_time = time.perf_counter() - t0

    def interpreter() -> None:
        for pt, dout in zip(points, douts):
            values = {k: pt[k] for k in p.graph.inputs}
            p.graph.backprop(**values) if dout is None else p.graph.backprop(dout=dout, **values)

    def fast() -> None:
        for pt, dout in zip(points, douts):
            reference_gradients(p, pt, dout)

    refs = [reference_gradients(p, pt, dout) for pt, dout in zip(points, douts)]

    def witnessed() -> None:
        for pt, dout, ref in zip(points, douts, refs):
            assert witness(p, pt, ref, dout) is None

    return compile_time, best(interpreter), best(fast), best(witnessed)


def main() -> None:
    print(f"{'problem':<14} {'N x D':>10}  {'compile':>8}  {'interpreter':>11}  {'compiled':>9}  "
          f"{'speed-up':>8}  {'witness':>8}")
    for n, d, h, c in SIZES:
        for p in load_spec(SPEC.format(n=n, d=d, h=h, c=c)).problems:
            compile_time, slow, quick, wit = measure(p)
            print(f"{p.id:<14} {f'{n} x {d}':>10}  {compile_time * 1e3:>6.0f}ms  {slow * 1e3:>9.1f}ms  "
                  f"{quick * 1e3:>7.1f}ms  {slow / quick:>7.1f}x  {wit * 1e3:>6.1f}ms")


if __name__ == "__main__":
    main()
