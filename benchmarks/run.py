"""symgrad's benchmarks: every number is a ratio against a baseline measured in the same run.

    python benchmarks/run.py            # graphs up to n = 1000 (a few minutes)
    python benchmarks/run.py --quick    # graphs up to n = 100 (well under a minute)

1. Latency of the compiled ``value_and_grad`` on the lectures' scalar cases against
   hand-written NumPy functions (goal: within 1.5x).
2. Derivation + compile time and generated op counts for growing graphs (a chain of
   sigmoid units, a DAG with heavy reuse, a scalar MLP), against SymPy's ``diff`` +
   ``cse`` + ``lambdify`` on the same expressions (goals: gradient ops at most 3x the
   forward ops; time linear in graph size).
3. Backward time / forward time of the generated code, on a batch of points.
4. The compiled CS231n two-layer net (affine → ReLU → affine → softmax cross-entropy +
   ½·reg·ΣW², fused into its layer and loss gates, and unfused) against the same net's
   forward and backward written by hand in NumPy, on the same data (goal: within 1.15x);
   and the input checks (shapes, named dimensions, kinds) against the whole call at N=64,
   with concrete and with named sizes (goal: below 5%).
5. Against the peers, on one core: the lectures' scalars against SymPy's lambdify (math and
   NumPy modules, with cse), and the scalars and the two-layer net from tiny to medium against
   JAX, PyTorch, PyTensor (C and Numba) and autograd where installed (skipped otherwise); SymPy
   input of growing depth, 10^5 nodes through every stage (10^4 with --quick), a 100k-point
   batch, a user's own layers (section 8) and the import time; as one table of the performance
   goals with a "now" column.
6. Growth: graph, backprop, compile and one call of a depth-n sigmoid chain from a string,
   a SymPy expression and a traced callable, n = 100 … 10,000, with the fitted exponents.
7. Cheap gradients: gradient / forward in operations and time for every family and front end,
   and the traced front end's time and memory per node.
8. A user's own layers: GELU (tanh form), attention scores softmax(Q Kᵀ/√d) and layer norm with
   gain and bias, written as a string or a traced callable and compiled, one value_and_grad of
   sum(layer · w) against the same forward and backward written by hand in NumPy, after checking
   that both give the same value and gradients (goal: within 1.1x).

Every timing warms its contenders up, then runs them interleaved (a different one first each
round) and reports the min and the median, so other load on the machine inflates both sides
of a ratio alike; BLAS (and JAX's XLA) runs on one thread unless OPENBLAS_NUM_THREADS
(or OMP_NUM_THREADS, MKL_NUM_THREADS, XLA_FLAGS) says otherwise.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import math
import os
import signal
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

# One BLAS thread, unless the caller says otherwise: both sides of a ratio run the same matrix
# products, and threads competing with other load on the machine only add noise to the ratios.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import symgrad as sg  # noqa: E402

# -- 1. the lectures' scalar cases, written by hand --------------------------------------


def hand_add_mul(x, y, z):
    q = x + y
    f = q * z
    return f, {"x": z, "y": z, "z": q}


def hand_neuron(w0, x0, w1, x1, w2):
    dot = w0 * x0 + w1 * x1 + w2
    f = 1.0 / (1.0 + np.exp(-dot))
    ddot = (1.0 - f) * f
    return f, {"w0": x0 * ddot, "x0": w0 * ddot, "w1": x1 * ddot, "x1": w1 * ddot, "w2": ddot}


def hand_max(z, w):
    f = np.maximum(z, w)
    dz = np.heaviside(z - w, 0.5)
    return f, {"z": dz, "w": 1.0 - dz}


def math_neuron(w0, x0, w1, x1, w2):
    dot = w0 * x0 + w1 * x1 + w2
    f = 1.0 / (1.0 + math.exp(-dot))
    ddot = (1.0 - f) * f
    return f, {"w0": x0 * ddot, "x0": w0 * ddot, "w1": x1 * ddot, "x1": w1 * ddot, "w2": ddot}


def math_max(z, w):
    return max(z, w), {"z": 1.0 if z > w else 0.0, "w": 0.0 if z > w else 1.0}


LECTURE = [
    ("(x + y) * z", hand_add_mul, hand_add_mul, dict(x=-2.0, y=5.0, z=-4.0)),
    ("1/(1+exp(-(w0*x0+w1*x1+w2)))", hand_neuron, math_neuron,
     dict(w0=2.0, x0=-1.0, w1=-3.0, x1=-2.0, w2=-3.0)),
    ("max(z, w)", hand_max, math_max, dict(z=2.0, w=-1.0)),
]


def timings(fns: dict[str, Callable[[], Any]], number: int, rounds: int,
            warmup: int = 3) -> dict[str, tuple[float, float]]:
    """Seconds per call of each function: (min, median) over ``rounds`` short interleaved repeats.

    Every function is called ``warmup`` times first (caches, allocator, branch predictors), then
    each round runs all of them, starting from a different one each round, so no contender is
    always first or always right after another; many short rounds give every function the same
    chances of a quiet moment on a busy machine.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    samples: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            samples[k].append(timeit.timeit(fns[k], number=number) / number)
    return {k: (min(v), statistics.median(v)) for k, v in samples.items()}


def best(fns: dict[str, Callable[[], Any]], number: int, rounds: int) -> dict[str, float]:
    """Seconds per call, the best of ``rounds`` warmed-up, interleaved repeats (see :func:`timings`)."""
    return {k: low for k, (low, _) in timings(fns, number, rounds).items()}


def latency_row(text: str, hand: Callable[..., Any], plain: Callable[..., Any], point: dict[str, float],
                quick: bool) -> list[str]:
    f = sg.graph(text).compile()
    for got, want in zip(f.value_and_grad(**point)[1].values(), hand(**point)[1].values()):
        assert math.isclose(got, want, abs_tol=1e-12), (text, got, want)
    t = timings({"hand": lambda: hand(**point), "compiled": lambda: f.value_and_grad(**point),
                 "generated": lambda: f.module.value_and_grad(**point), "plain": lambda: plain(**point)},
                number=200, rounds=40 if quick else 200)
    return [text, pair(t["hand"], 1e6), pair(t["compiled"], 1e6), ratios(t["compiled"], t["hand"]),
            ratios(t["generated"], t["hand"]), ratios(t["compiled"], t["plain"])]


def pair(t: tuple[float, float], scale: float) -> str:
    """A (min, median) time pair, scaled (1e6: µs, 1e3: ms): ``0.41/0.44``."""
    return f"{t[0] * scale:.2f}/{t[1] * scale:.2f}"


def ratios(a: tuple[float, float], b: tuple[float, float]) -> str:
    """Same-run ratios of two (min, median) pairs: ``1.10x/1.12x``."""
    return f"{a[0] / b[0]:.2f}x/{a[1] / b[1]:.2f}x"


def lecture_latency(quick: bool) -> None:
    print("1. value_and_grad latency on the lectures' scalar cases")
    print("   (hand-written NumPy functions are the baseline; goal: compiled within 1.5x)")
    rows = [latency_row(text, hand, plain, point, quick) for text, hand, plain, point in LECTURE]
    table(["case", "hand µs", "compiled µs", "compiled/hand", "generated/hand",
           "compiled/floats-only hand"], rows)
    print("   each cell: min/median over interleaved rounds")
    print("   generated: the module's own function, without symgrad's input checks;")
    print("   floats-only hand: written with the math module and if/else, so it takes no arrays")


# -- 2. growing graphs ------------------------------------------------------------------------


def traced(names: list[str], body: Callable[..., Any]) -> sg.Graph:
    """The graph of ``body(*inputs)`` for inputs named ``names``."""
    return sg.graph(signed(names, body))


def signed(names: list[str], body: Callable[..., Any]) -> Callable[..., Any]:
    """``body`` as a function whose parameters are named ``names``."""
    def fn(*args):
        return body(*args)

    fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    return fn


def chain(n: int, sigmoid: Callable[[Any], Any]):
    """h_0 = x, h_i = σ(w_i·h_{i−1} + b_i); the output is h_n."""
    names = ["x"] + [f"w{i}" for i in range(1, n + 1)] + [f"b{i}" for i in range(1, n + 1)]

    def body(x, *params):
        h = x
        for i in range(n):
            h = sigmoid(params[i] * h + params[n + i])
        return h
    return names, body


def dag(n: int, sin: Callable[[Any], Any]):
    """a_0 = x, a_1 = y, a_i = sin(a_{i−1}·a_{i−2}) + a_{i−1}·w_i: every node used three times."""
    names = ["x", "y"] + [f"w{i}" for i in range(2, n + 2)]

    def body(x, y, *w):
        a, b = x, y
        for i in range(n):
            a, b = b, sin(b * a) + b * w[i]
        return b
    return names, body


def mlp(n: int, sigmoid: Callable[[Any], Any]):
    """A scalar MLP: out = Σ_j v_j·σ(w_j·x + b_j) with n hidden units."""
    names = ["x"] + [f"{p}{j}" for p in "wbv" for j in range(1, n + 1)]

    def body(x, *params):
        out = 0
        for j in range(n):
            out = out + params[2 * n + j] * sigmoid(params[j] * x + params[n + j])
        return out
    return names, body


def sympy_sigmoid(a):
    return 1 / (1 + sp.exp(-a))


FAMILIES = {
    "sigmoid chain": (lambda n: chain(n, sg.sigmoid), lambda n: chain(n, sympy_sigmoid)),
    "DAG with reuse": (lambda n: dag(n, sg.sin), lambda n: dag(n, sp.sin)),
    "scalar MLP": (lambda n: mlp(n, sg.sigmoid), lambda n: mlp(n, sympy_sigmoid)),
}


def ops(fn: ast.AST) -> int:
    """Operations in generated code: arithmetic operators and function calls."""
    return sum(isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Call)) for n in ast.walk(fn))


def generated_ops(source: str) -> dict[str, int]:
    """Op counts of the assignments (not the return statements) of each generated function."""
    tree = ast.parse(source)
    return {f.name: sum(ops(s) for s in f.body if isinstance(s, ast.Assign))
            for f in tree.body if isinstance(f, ast.FunctionDef)}


def symgrad_run(family: str, n: int) -> dict[str, Any]:
    names, body = FAMILIES[family][0](n)
    start = time.perf_counter()
    g = traced(names, body)
    built = time.perf_counter()
    f = g.compile()
    done = time.perf_counter()
    counts = generated_ops(f.source)
    return dict(nodes=len(g.nodes), build=built - start, compile=done - built, total=done - start,
                forward=counts["forward"], backward=counts["backward"], f=f)


class TimeLimit(Exception):
    pass


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()``, or TimeLimit once it has run ``seconds`` (where the OS has SIGALRM)."""
    if not hasattr(signal, "SIGALRM"):
        return fn()

    def stop(signum, frame):
        raise TimeLimit

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sympy_run(family: str, n: int) -> dict[str, Any]:
    names, body = FAMILIES[family][1](n)
    symbols = [sp.Symbol(m, real=True) for m in names]
    expr = body(*symbols)
    start = time.perf_counter()
    grads = [sp.diff(expr, s) for s in symbols]
    fn = sp.lambdify(symbols, [expr, *grads], modules="numpy", cse=True)
    done = time.perf_counter()
    forward = sp.lambdify(symbols, expr, modules="numpy", cse=True)
    total_ops = ops(ast.parse(inspect.getsource(fn)))
    return dict(time=done - start, total=total_ops, forward=ops(ast.parse(inspect.getsource(forward))))


def growing_graphs(quick: bool) -> list[dict[str, Any]]:
    sizes = [10, 30, 100] if quick else [10, 30, 100, 300, 1000]
    budget = 5.0 if quick else 60.0  # SymPy is stopped after this long, and not run on larger graphs
    print("\n2. derivation + compile time and generated op counts for growing graphs")
    print("   symgrad: graph (local derivatives derived per edge) + program + codegen + compile;")
    print(f"   SymPy: diff for every input + lambdify(cse=True), on the same expression, stopped after "
          f"{budget:g} s")
    results = []
    for family in FAMILIES:
        rows, stopped = [], False
        for n in sizes:
            r = symgrad_run(family, n)
            s, shown = None, "-"
            if not stopped:
                try:
                    s = within(budget, lambda: sympy_run(family, n))  # noqa: B023
                except TimeLimit:
                    stopped, shown = True, f"> {budget:g}"
                except RecursionError:  # SymPy's recursive walks give up on deep expressions
                    stopped, shown = True, "RecursionError"
            per_node = r["total"] / r["nodes"] * 1e3
            rows.append([str(n), str(r["nodes"]), f"{r['total']:.2f}", f"{per_node:.2f}",
                         str(r["forward"]), str(r["backward"]), f"{r['backward'] / r['forward']:.2f}",
                         shown if s is None else f"{s['time']:.2f}",
                         "-" if s is None else str(s["total"]),
                         "-" if s is None else f"{s['time'] / r['total']:.1f}x",
                         "-" if s is None else f"{s['total'] / (r['forward'] + r['backward']):.1f}x"])
            results.append(dict(family=family, n=n, **r, sympy=s))
        print(f"\n   {family}")
        table(["n", "nodes", "symgrad s", "ms/node", "fwd ops", "grad ops", "grad/fwd",
               "SymPy s", "SymPy ops", "SymPy/symgrad time", "SymPy/symgrad ops"], rows, indent="   ")
    return results


def linearity(results: list[dict[str, Any]]) -> None:
    print("\n   time per node, largest graph / graph of n = 100 (1.0 = linear):")
    for family in FAMILIES:
        runs = {r["n"]: r for r in results if r["family"] == family}
        big = runs[max(runs)]
        base = runs[100]
        ratio = (big["total"] / big["nodes"]) / (base["total"] / base["nodes"])
        print(f"     {family}: n = {max(runs)}: {ratio:.2f}")
    worst = max(r["backward"] / r["forward"] for r in results)
    print(f"   largest gradient/forward op ratio: {worst:.2f} (goal: at most 3)")


# -- 3. backward / forward ---------------------------------------------------------------------


def forward_backward_row(name: str, f: sg.Compiled, rng: np.random.Generator, quick: bool) -> list[str]:
    args = [rng.uniform(-1, 1, 1000) for _ in f.graph.inputs]
    out, cache = f.module.forward(*args)
    dout = np.ones_like(out)
    t = best({"forward": lambda: f.module.forward(*args), "backward": lambda: f.module.backward(dout, cache)},
             number=10, rounds=20 if quick else 100)
    return [name, f"{t['forward'] * 1e6:.1f}", f"{t['backward'] * 1e6:.1f}",
            f"{t['backward'] / t['forward']:.2f}"]


def backward_forward(results: list[dict[str, Any]], quick: bool) -> None:
    print("\n3. backward time / forward time of the generated code, on a batch of 1000 points")
    rng = np.random.default_rng(0)
    cases = [(text, sg.graph(text).compile()) for text, *_ in LECTURE]
    cases += [(f"{r['family']} n={r['n']}", r["f"]) for r in results if r["n"] == 30]
    rows = [forward_backward_row(name, f, rng, quick) for name, f in cases]
    table(["graph", "forward µs", "backward µs", "backward/forward"], rows)


# -- 4. the two-layer net ------------------------------------------------------------------


def two_layer(X, W1, b1, W2, b2, y, reg):
    h = sg.relu(X @ W1 + b1)
    return sg.softmax_cross_entropy(h @ W2 + b2, y) + 0.5 * reg * (sg.l2(W1) + sg.l2(W2))


def hand_forward(X, W1, b1, W2, b2, y, reg):
    """The CS231n assignment's forward pass: the loss, and what the backward pass reads."""
    N = X.shape[0]
    h = np.maximum(0, X @ W1 + b1)
    scores = h @ W2 + b2
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(sums[:, 0]) - shifted[np.arange(N), y]) \
        + 0.5 * reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
    return loss, (X, W1, W2, y, reg, h, exp, sums)


def hand_backward(dout, cache):
    X, W1, W2, y, reg, h, exp, sums = cache
    N = X.shape[0]
    dscores = exp / sums
    dscores[np.arange(N), y] -= 1
    dscores *= dout / N
    dh = dscores @ W2.T
    dh[h <= 0] = 0
    return {"W1": X.T @ dh + dout * reg * W1, "b1": dh.sum(axis=0),
            "W2": h.T @ dscores + dout * reg * W2, "b2": dscores.sum(axis=0)}


def hand_value_and_grad(X, W1, b1, W2, b2, y, reg):
    loss, cache = hand_forward(X, W1, b1, W2, b2, y, reg)
    return loss, hand_backward(1.0, cache)


NETS = [(64, 3072, 100, 10), (128, 784, 256, 10)]


def net_rows(size: tuple[int, int, int, int], t: dict[str, tuple[float, float]]) -> list[list[str]]:
    N, D, H, C = size
    return [[f"N={N} D={D} H={H} C={C}", name, pair(t["hand"], 1e3),
             ratios(t[f"{name} compiled"], t["hand"]), ratios(t[f"{name} generated"], t["hand"]),
             ratios(t[f"{name} generated steps"], t["hand steps"])] for name in ("fused", "unfused")]


def net_times(size: tuple[int, int, int, int], quick: bool,
              peers: bool = False) -> dict[str, tuple[float, float]]:
    """(min, median) seconds of the hand-written net and the compiled nets, fused and unfused,
    and with ``peers``, of the installed peers' (:func:`peer_net_calls`)."""
    N, D, H, C = size
    shapes = {"X": (N, D), "W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,), "y": (N,)}
    rng = np.random.default_rng(0)
    point = {k: rng.normal(size=s) * (0.01 if k[0] == "W" else 1.0) for k, s in shapes.items() if k != "y"}
    point["y"] = rng.integers(0, C, size=N)
    point["reg"] = 0.1
    args = list(point.values())
    g = sg.graph(two_layer, shapes=shapes, dtypes={"y": int})
    expected = hand_value_and_grad(**point)
    contenders: dict[str, Callable[[], Any]] = {}
    for name, graph in (("fused", g.fuse("affine_relu").fuse("softmax_cross_entropy")), ("unfused", g)):
        for backend in ("numba", "numpy") if peers and _installed("numba") else ("numpy",):
            f = graph.compile(wrt=["W1", "b1", "W2", "b2"], backend=backend)
            value, grads = f.value_and_grad(**point)
            assert math.isclose(value, expected[0], rel_tol=1e-10), (value, expected[0])
            for n, want in expected[1].items():
                assert np.allclose(grads[n], want, rtol=1e-8, atol=1e-12), n
            if backend == "numba":
                contenders[f"{name} numba"] = lambda f=f: f.value_and_grad(**point)  # type: ignore[misc]
        module = f.module  # the NumPy backend's, compiled last

        def generated_steps(m=module):
            out, cache = m.forward(*args)
            return m.backward(1.0, cache)

        contenders[f"{name} compiled"] = lambda f=f: f.value_and_grad(**point)  # type: ignore[misc]
        contenders[f"{name} generated"] = lambda m=module: m.value_and_grad(*args)  # type: ignore[misc]
        contenders[f"{name} generated steps"] = generated_steps

    if peers:
        contenders.update(peer_net_calls(point, C))

    def hand_steps():
        out, cache = hand_forward(*args)
        return hand_backward(1.0, cache)

    X, W1, W2 = point["X"], point["W1"], point["W2"]
    hidden = np.maximum(X @ W1, 0.0)
    upstream = rng.normal(size=(N, C))
    dhidden = upstream @ W2.T

    def products():  # what any NumPy forward + backward of the net multiplies: a floor for all of them
        return X @ W1, hidden @ W2, hidden.T @ upstream, upstream @ W2.T, X.T @ dhidden

    # one run for both graphs and the hand-written baseline: every ratio shares its baseline's samples
    number = 1 if N * D > 10_000 else 100
    return timings({"hand": lambda: hand_value_and_grad(*args), "hand steps": hand_steps,
                    "products": products, **contenders}, number=number, rounds=40 if quick else 200)


def two_layer_net(quick: bool) -> None:
    print("\n4. the CS231n two-layer net, forward + backward, against hand-written NumPy")
    print("   (the same data; goal: within 1.15x)")
    times = {size: net_times(size, quick) for size in NETS}
    rows = [row for size in NETS for row in net_rows(size, times[size])]
    table(["net", "graph", "hand ms", "value_and_grad", "generated value_and_grad",
           "generated forward+backward"], rows)
    print("   value_and_grad: the compiled entry point (with input checks); generated: the module's")
    print("   own functions; forward+backward: forward(...) then backward(1.0, cache), against the")
    print("   hand-written forward and backward called the same way; each cell: min/median")
    for size, t in times.items():
        print(f"   N={size[0]} D={size[1]} H={size[2]} C={size[3]}: the five matrix products alone "
              f"(X W1, h W2, hᵀ ds, ds W2ᵀ, Xᵀ dh)\n     take {ratios(t['products'], t['hand'])} the "
              "hand-written net: no NumPy code of the net runs faster on the same BLAS threads")
    check_cost(quick)


def check_cost(quick: bool) -> None:
    """The input checks (shapes, named dimensions, kinds, label ranges) against the whole call."""
    N, D, H, C = NETS[0]
    print(f"\n   the input checks, against value_and_grad of the fused net at N={N} (goal: below 5%)")
    rows = []
    for named in (False, True):
        sizes = {"N": "N", "D": "D", "H": "H", "C": "C"} if named else {"N": N, "D": D, "H": H, "C": C}
        shapes = {"X": (sizes["N"], sizes["D"]), "W1": (sizes["D"], sizes["H"]), "b1": (sizes["H"],),
                  "W2": (sizes["H"], sizes["C"]), "b2": (sizes["C"],), "y": (sizes["N"],)}
        rng = np.random.default_rng(0)
        point = {k: rng.normal(size=(N, D) if k == "X" else (D, H) if k == "W1" else (H,) if k == "b1"
                               else (H, C) if k == "W2" else (C,)) for k in ("X", "W1", "b1", "W2", "b2")}
        point["y"] = rng.integers(0, C, size=N)
        point["reg"] = 0.1
        args = tuple(point.values())
        g = sg.graph(two_layer, shapes=shapes, dtypes={"y": int})
        g = g.fuse("affine_relu").fuse("softmax_cross_entropy")
        f = g.compile(wrt=["W1", "b1", "W2", "b2"])
        m, entry = f.module, f.value_and_grad
        entry(**point)
        body = entry.__globals__["_arrays_value_and_grad"]  # the generated lines the entry point calls
        entry.__globals__["_arrays_value_and_grad"] = lambda *a: (1.0, {})  # the entry point alone
        t = best({"call": lambda m=m, a=args: m.value_and_grad(*a),  # type: ignore[misc]
                  "module check": lambda m=m, a=args: m._check(a, m._DECLARED),  # type: ignore[misc]
                  "entry": lambda e=entry, p=point: e(**p)},  # type: ignore[misc]
                 number=20, rounds=10 if quick else 50)
        entry.__globals__["_arrays_value_and_grad"] = body
        entry_cost = t["entry"]
        rows.append(["named (N, D, H, C)" if named else "concrete", f"{t['call'] * 1e3:.2f}",
                     f"{t['module check'] * 1e6:.1f}", f"{t['module check'] / t['call'] * 100:.2f}%",
                     f"{entry_cost * 1e6:.1f}", f"{entry_cost / t['call'] * 100:.2f}%"])
    table(["shapes", "generated value_and_grad ms", "module check µs", "share",
           "compiled entry µs", "share"], rows)
    print("   module check: the written module's _check; compiled entry: all compile()'s entry point")
    print("   adds to the generated lines (inputs by name, one generated test of shapes, kinds and label")
    print("   ranges, the output's finiteness; the arrays' entries are read only when that fails)")


# -- 5. against the peers -----------------------------------------------------------------------


def lambdify_scalar(text: str, names: list[str], module: str) -> Callable[..., Any]:
    """SymPy's own answer: the value and every derivative, lambdified with ``cse`` (positional)."""
    symbols = [sp.Symbol(n, real=True) for n in names]
    expr = sp.parse_expr(text.replace("max", "Max"), local_dict=dict(zip(names, symbols)))  # our own text
    return sp.lambdify(symbols, [expr, *(sp.diff(expr, s) for s in symbols)], modules=module, cse=True)


def keyword_floor(names: list[str]) -> Callable[..., Any]:
    """The least a call of ``value_and_grad``'s contract can cost: the inputs by name in, the
    output and ``{input: gradient}`` out, with no work done and no input checked."""
    text = f"def floor(*, {', '.join(names)}):\n" \
        f"    return {names[0]}, {{{', '.join(f'{n!r}: {n}' for n in names)}}}\n"
    namespace: dict[str, Any] = {}
    exec(text, namespace)  # our own text: a function of these names
    return namespace["floor"]  # type: ignore[no-any-return]


def peer_scalar_calls(text: str, names: list[str], point: dict[str, float]) -> dict[str, Callable[[], Any]]:
    """Whatever of JAX, PyTorch, PyTensor and autograd is installed, each computing value and grads."""
    args = [point[n] for n in names]
    found: dict[str, Callable[[], Any]] = {}
    expr_fn = lambdify_scalar(text, names, "math")
    found["lambdify(math, cse)"] = lambda: expr_fn(*args)
    np_fn = lambdify_scalar(text, names, "numpy")
    found["lambdify(numpy, cse)"] = lambda: np_fn(*args)

    def body(lib: Any, sigmoid_exp: Callable[[Any], Any]) -> Callable[..., Any]:
        if text.startswith("(x + y)"):
            return lambda x, y, z: (x + y) * z
        return lambda w0, x0, w1, x1, w2: 1 / (1 + sigmoid_exp(-(w0 * x0 + w1 * x1 + w2)))

    try:
        import jax
        import jax.numpy as jnp
        jax_fn = jax.jit(jax.value_and_grad(body(jnp, jnp.exp), argnums=tuple(range(len(args)))))
        found["JAX jit(value_and_grad)"] = lambda: jax.block_until_ready(jax_fn(*args))
    except ImportError:
        pass
    try:
        import torch

        def torch_call() -> Any:
            xs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in args]
            out = body(torch, torch.exp)(*xs)
            return out.item(), [g.item() for g in torch.autograd.grad(out, xs)]
        found["PyTorch autograd"] = torch_call
    except ImportError:
        pass
    try:
        import autograd
        import autograd.numpy as anp
        ag_fn = autograd.value_and_grad(lambda v: body(anp, anp.exp)(*v))
        found["autograd"] = lambda: ag_fn(np.array(args))
    except ImportError:
        pass
    try:
        import pytensor
        import pytensor.tensor as pt
        xs = [pt.dscalar(n) for n in names]
        out = body(pt, pt.exp)(*xs)
        pt_fn = pytensor.function(xs, [out, *pytensor.grad(out, xs)])
        found["PyTensor"] = lambda: pt_fn(*args)
    except ImportError:
        pass
    return found


PEER_PACKAGES = ("jax", "torch", "pytensor", "autograd")
NET_PEERS = ("JAX jit(value_and_grad)", "PyTorch autograd", "autograd", "PyTensor", "PyTensor-Numba")


def peer_net_calls(point: dict[str, Any], C: int) -> dict[str, Callable[[], Any]]:
    """The two-layer net's loss and its gradients for W1, b1, W2, b2, in whichever of JAX,
    PyTorch, PyTensor (its C backend, and Numba's where installed) and autograd is installed;
    each is checked against the hand-written net before it is timed."""
    names = ["X", "W1", "b1", "W2", "b2", "y", "reg"]
    args = [point[n] for n in names]
    found: dict[str, Callable[[], Any]] = {}

    def loss(lib: Any, X: Any, W1: Any, b1: Any, W2: Any, b2: Any, onehot: Any, reg: Any) -> Any:
        torch_like = hasattr(lib, "relu")  # PyTorch: relu, amax(dim, keepdim)
        z = X @ W1 + b1
        h = lib.relu(z) if torch_like else lib.maximum(z, 0)
        s = h @ W2 + b2
        m = s.amax(dim=1, keepdim=True) if torch_like else s.max(axis=1, keepdims=True)
        lse = lib.log(lib.exp(s - m).sum(axis=1)) + m[:, 0]
        return (lse - (s * onehot).sum(axis=1)).mean() + 0.5 * reg * ((W1 * W1).sum() + (W2 * W2).sum())

    onehot = np.eye(C)[point["y"]]
    try:
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_enable_x64", True)
        jax_args = [jnp.asarray(a) for a in [*args[:5], onehot, args[6]]]
        jax_fn = jax.jit(jax.value_and_grad(lambda *a: loss(jnp, *a), argnums=(1, 2, 3, 4)))
        found["JAX jit(value_and_grad)"] = lambda: jax.block_until_ready(jax_fn(*jax_args))
    except ImportError:
        pass
    try:
        import torch

        def torch_call() -> Any:
            ts = [torch.from_numpy(a) for a in [*args[:5], onehot]]
            for t in ts[1:5]:
                t.requires_grad_(True)
            out = loss(torch, *ts, args[6])
            return out.item(), [g.numpy() for g in torch.autograd.grad(out, ts[1:5])]
        found["PyTorch autograd"] = torch_call
    except ImportError:
        pass
    try:
        import autograd
        import autograd.numpy as anp
        ag_fn = autograd.value_and_grad(lambda w: loss(anp, args[0], *w, onehot, args[6]))
        found["autograd"] = lambda: ag_fn([args[1], args[2], args[3], args[4]])
    except ImportError:
        pass
    try:
        import pytensor
        import pytensor.tensor as pt
        xs = [pt.dmatrix("X"), pt.dmatrix("W1"), pt.dvector("b1"), pt.dmatrix("W2"), pt.dvector("b2"),
              pt.dmatrix("onehot"), pt.dscalar("reg")]
        out = loss(pt, *xs)
        outputs = [out, *pytensor.grad(out, xs[1:5])]
        values = [*args[:5], onehot, args[6]]
        for label, mode in (("PyTensor", None), ("PyTensor-Numba", "NUMBA")):
            if mode == "NUMBA" and not _installed("numba"):
                continue
            fn = pytensor.function(xs, outputs, mode=mode)
            found[label] = lambda fn=fn: fn(*values)  # type: ignore[misc]
    except ImportError:
        pass
    expected = hand_value_and_grad(**point)
    for label, call in found.items():
        value, grads = _value_and_grads(call())
        assert math.isclose(value, expected[0], rel_tol=1e-9), (label, value, expected[0])
        for got, n in zip(grads, ("W1", "b1", "W2", "b2")):
            assert np.allclose(got, expected[1][n], rtol=1e-7, atol=1e-10), (label, n)
    return found


def _value_and_grads(result: Any) -> tuple[float, list[np.ndarray]]:
    """A peer's (value, gradients) in one shape: a float, and four NumPy arrays."""
    if isinstance(result, list) and len(result) == 5:  # PyTensor: [value, *gradients]
        result = (result[0], result[1:])
    value, grads = result
    return float(value), [np.asarray(g) for g in grads]


TINY = (5, 4, 10, 3)


def sympy_chain(n: int) -> sp.Expr:
    """The depth-n sigmoid chain as one SymPy expression, built unevaluated (SymPy's own
    evaluation of a deep expression is slow, and recursive for symbols with assumptions)."""
    h: sp.Expr = sp.Symbol("x")
    one = sp.Integer(1)
    for i in range(1, n + 1):
        a = sp.Add(sp.Mul(sp.Symbol(f"w{i}"), h, evaluate=False), sp.Symbol(f"b{i}"), evaluate=False)
        h = sp.Pow(sp.Add(one, sp.exp(sp.Mul(-1, a, evaluate=False), evaluate=False), evaluate=False), -1,
                   evaluate=False)
    return h


def sympy_front_end(n: int) -> str:
    """``sg.graph`` of a depth-n chain given as a SymPy expression: seconds, or what stopped it."""
    expr = sympy_chain(n)
    start = time.perf_counter()
    try:
        within(60, lambda: sg.graph(expr))
    except RecursionError:
        return "RecursionError"
    except TimeLimit:
        return "> 60 s"
    return f"{time.perf_counter() - start:.2f} s"


def batch_sigmoid(quick: bool) -> dict[str, tuple[float, float]]:
    """A 100k-point batch through the sigmoid neuron: hand-written NumPy, fused and unfused."""
    rng = np.random.default_rng(0)
    point = {n: rng.normal(size=100_000) for n in ("w0", "x0", "w1", "x1", "w2")}
    g = sg.graph(LECTURE[1][0])
    fused, unfused = g.fuse("sigmoid").compile(), g.compile()
    fns = {"hand": lambda: hand_neuron(**point), "fused": lambda: fused.value_and_grad(**point),
           "unfused": lambda: unfused.value_and_grad(**point)}
    want = hand_neuron(**point)
    for name, graph in (("fused", g.fuse("sigmoid")), ("unfused", g)) if _installed("numba") else ():
        f = graph.compile(backend="numba")
        value, grads = f.value_and_grad(**point)
        assert np.allclose(value, want[0], rtol=1e-12) and all(
            np.allclose(grads[n], want[1][n], rtol=1e-10, atol=1e-14) for n in point), name
        fns[f"{name} numba"] = lambda f=f: f.value_and_grad(**point)  # type: ignore[misc]
    return timings(fns, number=1, rounds=10 if quick else 40)


def import_time(code: str = "import symgrad") -> float:
    """Seconds of ``code`` (an import) in a fresh interpreter, less the interpreter's own start."""
    import subprocess

    def run(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1],
                       stdout=subprocess.DEVNULL)
        return time.perf_counter() - start
    return min(run(code) for _ in range(5)) - min(run("pass") for _ in range(5))


def one_core() -> Callable[[], None]:
    """Pin every thread of this process to one CPU (Linux), so that peers which start threads of
    their own (JAX's dispatch, PyTorch's pool) get one core, as the NumPy code has; returns what
    undoes it."""
    if not hasattr(os, "sched_setaffinity"):
        return lambda: None
    before = os.sched_getaffinity(0)
    threads = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]

    def pin(cpus: set[int]) -> None:
        for t in threads:
            try:
                os.sched_setaffinity(t, cpus)
            except OSError:  # a thread that has ended
                pass
    pin({min(before)})
    return lambda: pin(before)


def peers(quick: bool) -> None:
    print("\n5. against the peers: the table of the performance goals, with a 'now' column")
    missing = [p for p in PEER_PACKAGES if not _installed(p)]
    if missing:
        print(f"   not installed, skipped: {', '.join(missing)}")
    print("   (the process pinned to one core, every library on one thread)")
    unpin = one_core()
    try:
        _peers(quick)
    finally:
        unpin()


def _peers(quick: bool) -> None:
    rows = []
    scalar_now, scalar_peer, scalar_floor = [], [], []
    for text, _, plain, point in LECTURE[:2]:
        names = list(point)
        f = sg.graph(text).compile()
        fns = {"hand (math)": lambda plain=plain, point=point: plain(**point),
               "compiled": lambda f=f, point=point: f.value_and_grad(**point)}
        if "exp" in text:
            fused = sg.graph(text).fuse("sigmoid").compile()
            fns["compiled, fused"] = lambda f=fused, point=point: f.value_and_grad(**point)
        floor = keyword_floor(names)
        fns["no work, by name"] = lambda floor=floor, point=point: floor(**point)
        fns.update(peer_scalar_calls(text, names, point))
        t = timings(fns, number=200, rounds=40 if quick else 200)
        print(f"\n   {text}: µs per value-and-gradient call, min/median")
        table(["contender", "µs", "/ lambdify(math, cse)"],
              [[k, pair(v, 1e6), ratios(v, t["lambdify(math, cse)"])] for k, v in t.items()], indent="     ")
        scalar_now.append("/".join(pair(t[k], 1e6) for k in fns if k.startswith("compiled")))
        scalar_peer.append(pair(t["lambdify(math, cse)"], 1e6))
        scalar_floor.append(pair(t["no work, by name"], 1e6))
    print("\n   no work, by name: a function that takes the inputs by name and returns the output and a dict")
    print("   of them, and does nothing else: the least a call of value_and_grad's contract can cost")
    rows.append(["lecture scalars: (x+y)z / sigmoid neuron (unfused/fused), µs min/median",
                 " ; ".join(scalar_now) + f" (no work, by name: {' ; '.join(scalar_floor)})",
                 "lambdify(math, cse) " + " ; ".join(scalar_peer), "≤ lambdify"])
    for size in [TINY, *NETS]:
        t = net_times(size, quick, peers=True)
        measured = [k for k in NET_PEERS if k in t]
        fastest = min(measured, key=lambda k: t[k][0], default=None)
        peer = f"{fastest} {ratios(t[fastest], t['hand'])}" if fastest else \
            "none installed (PyTensor-Numba 0.64x-0.84x when the goals were set)"
        numba = f"; backend='numba': fused {ratios(t['fused numba'], t['hand'])}, " \
            f"unfused {ratios(t['unfused numba'], t['hand'])}" if "fused numba" in t else ""
        rows.append([f"two-layer net {size}, fwd+bwd, / hand",
                     f"fused {ratios(t['fused compiled'], t['hand'])}, "
                     f"unfused {ratios(t['unfused compiled'], t['hand'])}{numba} "
                     f"(hand {pair(t['hand'], 1e3)} ms; "
                     f"its five matrix products alone {ratios(t['products'], t['hand'])})",
                     peer, "≤ 0.6x / 0.8x hand"])
        if measured:
            print(f"\n   two-layer net {size}: the peers and symgrad / hand, min/median")
            ours = [c for b in ("compiled", "numba") for k in ("fused", "unfused") if (c := f"{k} {b}") in t]
            table(["contender", "/ hand"], [[k, ratios(t[k], t["hand"])] for k in measured + ours],
                  indent="     ")
    depths = [65, 300] if quick else [65, 1000, 10_000]
    rows.append(["sg.graph(sympy_expr), sigmoid chain of depth " + "/".join(map(str, depths)),
                 " / ".join(sympy_front_end(n) for n in depths), "string front end linear",
                 "< 10 s at 10,000"])
    n = 2_000 if quick else 20_000
    stages = stages_apart(n)
    rows.append([f"traced sigmoid chain of n = {n:,} ({stages['nodes']:,} nodes): graph, backprop, compile, "
                 "one call, in a fresh process",
                 " + ".join(f"{stages[k]:.1f}" for k in ("graph", "backprop", "compile", "call"))
                 + f" = {sum(stages[k] for k in ('graph', 'backprop', 'compile', 'call')):.1f} s", "-",
                 "< 60 s at 10^5 nodes"])
    t = batch_sigmoid(quick)
    numba = f"; backend='numba': fused {ratios(t['fused numba'], t['hand'])}, " \
        f"unfused {ratios(t['unfused numba'], t['hand'])}" if "fused numba" in t else ""
    rows.append(["sigmoid neuron, 100k-point batch, / hand", f"fused {ratios(t['fused'], t['hand'])}, "
                 f"unfused {ratios(t['unfused'], t['hand'])}{numba}", "-", "fused ≤ unfused ≤ 1.1x"])
    layers = [layer_times(source, shapes, wrt, hand, quick) for _, source, shapes, wrt, hand in user_layers()]
    numba = "; backend='numba': " + " / ".join(ratios(t["numba"], t["hand"]) for t in layers) \
        if "numba" in layers[0] else ""
    rows.append(["a user's own layers, fwd+bwd, / hand: GELU (/ hand with the exact tanh') / attention "
                 "scores / layer norm", " / ".join(ratios(t["compiled"], t["hand"]) for t in layers) + numba,
                 "-", "≤ 1.1x each"])
    rows.append(["import symgrad (its public names load on first use)", f"{import_time():.2f} s", "-",
                 "≤ 0.3 s"])
    version = import_time("from symgrad.cli import main; main(['--version'])")
    first_use = import_time("import symgrad as sg; sg.graph('x * y')")
    rows.append(["  symgrad --version / first use: + sg.graph('x * y')",
                 f"{version:.2f} s / {first_use:.2f} s", "-", "-"])
    rows.append(["  what the first use loads: import sympy / + numpy / + networkx",
                 " / ".join(f"{import_time('import ' + m):.2f} s"
                            for m in ("sympy", "sympy, numpy", "sympy, numpy, networkx")), "-", "-"])
    print()
    table(["work", "now", "fastest peer", "goal"], rows)


def _installed(package: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(package) is not None


# -- 6. growth exponents ----------------------------------------------------------------------


def chain_text(n: int) -> str:
    """The depth-n sigmoid chain as a string."""
    h = "x"
    for i in range(1, n + 1):
        h = f"sigmoid(w{i}*{h} + b{i})"
    return h


FRONT_ENDS: dict[str, Callable[[int], Any]] = {
    "string": chain_text,
    "SymPy expression": sympy_chain,
    "callable": lambda n: signed(*chain(n, sg.sigmoid)),
}


def stage_times(front: str, n: int) -> dict[str, float]:
    """Seconds of each stage for the depth-n chain from ``front``: graph, backprop, compile, call."""
    made = FRONT_ENDS[front](n)
    times: dict[str, float] = {}
    start = time.perf_counter()
    g = made if isinstance(made, sg.Graph) else sg.graph(made)
    times["graph"] = time.perf_counter() - start
    point = {name: 0.1 for name in g.inputs}
    start = time.perf_counter()
    g.backprop(**point)
    times["backprop"] = time.perf_counter() - start
    start = time.perf_counter()
    f = g.compile()
    times["compile"] = time.perf_counter() - start
    start = time.perf_counter()
    f.value_and_grad(**point)
    times["call"] = time.perf_counter() - start
    times["nodes"] = len(g.nodes)
    return times


def stages_apart(n: int) -> dict[str, float]:
    """:func:`stage_times` of the callable chain of depth ``n`` in a fresh interpreter, so that
    what earlier rows left in memory does not count."""
    import json
    import subprocess

    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import run; "
            f"print(json.dumps(run.stage_times('callable', {n})))")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def exponent(ns: list[int], ts: list[float]) -> float:
    """The least-squares slope of log t against log n: 1.0 is linear, 2.0 quadratic."""
    xs, ys = [math.log(n) for n in ns], [math.log(max(t, 1e-9)) for t in ts]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def growth(quick: bool) -> None:
    sizes = [100, 200, 400] if quick else [100, 300, 1000, 3000, 10_000]
    budget = 30.0 if quick else 300.0  # a front end stops growing once one size took this long
    print("\n6. growth with graph size: the sigmoid chain of depth n from every front end")
    print(f"   (seconds per stage; a front end stops after a size whose stages took over {budget:g} s;")
    print("   the exponent is the slope of log time against log n: 1.0 is linear)")
    for front in FRONT_ENDS:
        stage_times(front, 10)  # warm-up: first calls load and cache what later ones reuse
        rows, done = [], []
        for n in sizes:
            try:
                t = stage_times(front, n)
            except (sg.SymgradError, RecursionError, MemoryError) as e:
                rows.append([str(n), "-", f"{type(e).__name__}: {str(e)[:60]}", "", "", ""])
                break
            done.append((n, t))
            rows.append([str(n), str(int(t["nodes"])), *(f"{t[s]:.3f}" for s in STAGES)])
            if sum(t[s] for s in STAGES) > budget:
                break
        if len(done) >= 2:
            ns = [n for n, _ in done]
            rows.append(["exponent", "", *(f"{exponent(ns, [t[s] for _, t in done]):.2f}" for s in STAGES)])
        print(f"\n   {front}")
        table(["n", "nodes", *STAGES], rows, indent="   ")


STAGES = ("graph", "backprop", "compile", "call")


# -- 7. cheap gradients and the traced front end's size ------------------------------------------


def family_source(family: str, front: str, n: int) -> Any:
    """The family's graph source from ``front``: a callable, a SymPy expression or its text."""
    if front == "callable":
        return signed(*FAMILIES[family][0](n))
    names, body = FAMILIES[family][1](n)
    expr = body(*[sp.Symbol(m, real=True) for m in names])
    return expr if front == "SymPy expression" else str(expr)


def cheap_gradients(quick: bool) -> None:
    n = 10 if quick else 30
    print("\n7. cheap gradients: gradient / forward, in operations of the generated assignments and in")
    print(f"   time on a batch of 1000 points (n = {n}; the DAG as a string at n = 8, its text grows")
    print("   exponentially; goal: at most 3 for both)")
    rng = np.random.default_rng(0)
    rows = []
    for family in FAMILIES:
        for front in ("string", "SymPy expression", "callable"):
            size = 8 if family == "DAG with reuse" and front == "string" else n
            f = sg.graph(family_source(family, front, size)).compile()
            counts = generated_ops(f.source)
            args = [rng.uniform(-1, 1, 1000) for _ in f.graph.inputs]
            out, cache = f.module.forward(*args)
            dout = np.ones_like(out)
            t = timings({"forward": lambda: f.module.forward(*args),  # noqa: B023
                         "backward": lambda: f.module.backward(dout, cache)},  # noqa: B023
                        number=10, rounds=10 if quick else 40)
            back, fwd = t["backward"], t["forward"]
            rows.append([family, front, str(size), str(counts["forward"]), str(counts["backward"]),
                         f"{counts['backward'] / counts['forward']:.2f}",
                         f"{back[0] / fwd[0]:.2f}/{back[1] / fwd[1]:.2f}"])
    table(["family", "front end", "n", "fwd ops", "grad ops", "ops ratio", "time ratio min/median"], rows)

    import tracemalloc

    sizes = [1000] if quick else [1000, 10_000]
    repeats = 1 if quick else 3
    print("\n   the traced front end: time and peak memory of sg.graph(callable) (goal at n = 10,000:")
    print(f"   under 10 s and 4 KiB per node; seconds: the fastest of {repeats} run(s) without tracemalloc,")
    print("   which slows Python several times; memory: one more run under it)")
    rows = []
    for family in ("sigmoid chain", "DAG with reuse"):
        for size in sizes:
            fn = family_source(family, "callable", size)
            took = math.inf
            for _ in range(repeats):
                start = time.perf_counter()
                g = sg.graph(fn)
                took = min(took, time.perf_counter() - start)
                del g
            tracemalloc.start()
            g = sg.graph(fn)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            nodes = len(g.nodes)
            rows.append([family, str(size), str(nodes), f"{took:.2f}", f"{peak / 2**20:.1f}",
                         f"{peak / nodes / 1024:.2f}"])
            del g
    table(["family", "n", "nodes", "seconds", "peak MiB", "KiB per node"], rows)


# -- 8. a user's own layers ------------------------------------------------------------------------

GELU_C = math.sqrt(2 / math.pi)


def hand_gelu(x, w):
    """sum(gelu(x)·w), gelu in its tanh form, and its gradient in x, written by hand."""
    x2 = x * x
    t = np.tanh(GELU_C * (x + 0.044715 * (x2 * x)))
    half = 0.5 * (1 + t)
    loss = np.sum(x * half * w)
    return loss, {"x": w * (half + 0.5 * x * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * x2))}


def hand_gelu_exact(x, w):
    """:func:`hand_gelu` with tanh' = 1 − t² spelled as symgrad's op table does: 4e/(1 + e)²,
    e = exp(−2|u|), exact where 1 − t² rounds to 0 (|u| > 19) and loses digits before that."""
    x2 = x * x
    u = GELU_C * (x + 0.044715 * (x2 * x))
    half = 0.5 * (1 + np.tanh(u))
    loss = np.sum(x * half * w)
    e = np.exp(-2 * np.abs(u))
    return loss, {"x": w * (half + 2 * x * e / (1 + e) ** 2 * GELU_C * (1 + 3 * 0.044715 * x2))}


def hand_attention(Q, K, W):
    """sum(softmax(Q Kᵀ/√d)·W) over rows, and its gradients in Q and K, written by hand."""
    scale = 1 / math.sqrt(Q.shape[1])
    s = (Q @ K.T) * scale
    s -= s.max(axis=1, keepdims=True)
    e = np.exp(s)
    p = e / e.sum(axis=1, keepdims=True)
    pw = p * W
    ds = pw - p * pw.sum(axis=1, keepdims=True)  # softmax's backward, from the forward's p·W
    ds *= scale
    return pw.sum(), {"Q": ds @ K, "K": ds.T @ Q}


def hand_layer_norm(x, gamma, beta, w):
    """sum(layer_norm(x)·γ + β)·w) over the last axis, and its gradients in x, γ and β, by hand."""
    xc = x - x.mean(axis=1, keepdims=True)
    inv = 1 / np.sqrt((xc * xc).mean(axis=1, keepdims=True) + 1e-5)
    xhat = xc * inv
    loss = np.sum((xhat * gamma + beta) * w)
    dxhat = w * gamma
    dx = inv * (dxhat - dxhat.mean(axis=1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=1, keepdims=True))
    return loss, {"x": dx, "gamma": (w * xhat).sum(axis=0), "beta": w.sum(axis=0)}


def layer_norm(x, gamma, beta, w):
    """The layer norm as a user writes it over traced arrays."""
    mu = sg.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    var = sg.mean(xc * xc, axis=-1, keepdims=True)
    return sg.sum((xc / sg.sqrt(var + 1e-5) * gamma + beta) * w)


def user_layers() -> list[tuple[str, Any, dict[str, tuple[int, ...]], list[str], Callable[..., Any]]]:
    """(name, graph source, shapes, gradients wanted, hand-written value and gradients) per layer."""
    N, D, T, d = 256, 1024, 128, 64
    return [
        ("GELU (tanh form), (256, 1024)", "sum(x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715*x**3))) * w)",
         {"x": (N, D), "w": (N, D)}, ["x"], hand_gelu),
        ("  the same, against hand-written NumPy with the exact tanh'",
         "sum(x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715*x**3))) * w)",
         {"x": (N, D), "w": (N, D)}, ["x"], hand_gelu_exact),
        ("attention scores softmax(Q Kᵀ/√d), T=128 d=64", f"sum(softmax(Q @ K.T / sqrt({d}), axis=-1) * W)",
         {"Q": (T, d), "K": (T, d), "W": (T, T)}, ["Q", "K"], hand_attention),
        ("layer norm with gain and bias, (256, 1024)", layer_norm,
         {"x": (N, D), "gamma": (D,), "beta": (D,), "w": (N, D)}, ["x", "gamma", "beta"], hand_layer_norm),
    ]


def layer_times(source: Any, shapes: dict[str, tuple[int, ...]], wrt: list[str], hand: Callable[..., Any],
                quick: bool) -> dict[str, tuple[float, float]]:
    """(min, median) seconds of one compiled value_and_grad call and of the hand-written layer,
    after checking that both give the same value and gradients."""
    rng = np.random.default_rng(0)
    point = {k: rng.standard_normal(s) for k, s in shapes.items()}
    f = sg.graph(source, shapes=shapes).compile(wrt=wrt)
    value, grads = f.value_and_grad(**point)
    want, want_grads = hand(**point)
    assert np.allclose(value, want, rtol=1e-10), (value, want)
    for n in wrt:
        assert np.allclose(grads[n], want_grads[n], rtol=1e-8, atol=1e-10), n
    fns = {"hand": lambda: hand(**point), "compiled": lambda: f.value_and_grad(**point),
           "generated": lambda: f.module.value_and_grad(**point)}
    if _installed("numba"):
        fast = sg.graph(source, shapes=shapes).compile(wrt=wrt, backend="numba")
        value, grads = fast.value_and_grad(**point)
        assert np.allclose(value, want, rtol=1e-10) and all(
            np.allclose(grads[n], want_grads[n], rtol=1e-8, atol=1e-10) for n in wrt)
        fns["numba"] = lambda: fast.value_and_grad(**point)
    return timings(fns, number=1, rounds=20 if quick else 100)


def own_layers(quick: bool) -> list[list[str]]:
    print("\n8. a user's own layers, forward + backward of sum(layer(x)·w), against hand-written NumPy")
    print("   (the same data and the same loss; goal: compiled within 1.1x)")
    rows = []
    for name, source, shapes, wrt, hand in user_layers():
        t = layer_times(source, shapes, wrt, hand, quick)
        numba = ratios(t["numba"], t["hand"]) if "numba" in t else "-"
        rows.append([name, pair(t["hand"], 1e3), pair(t["compiled"], 1e3), ratios(t["compiled"], t["hand"]),
                     ratios(t["generated"], t["hand"]), numba])
    table(["layer", "hand ms", "compiled ms", "compiled/hand", "generated/hand", "numba/hand"], rows)
    print("   compiled: the compiled value_and_grad (with input checks); generated: the module's own")
    print("   function; numba: compile(backend='numba'), with the same checks; each cell: min/median")
    return rows


def table(header: list[str], rows: list[list[str]], indent: str = "   ") -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print(indent + "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller graphs and fewer repeats")
    parser.add_argument("--section", type=int, choices=[1, 2, 3, 4, 5, 6, 7, 8], action="append",
                        help="run only this section (repeatable; 3 needs 2's graphs and runs it too)")
    args = parser.parse_args(argv)
    sections = set(args.section or [1, 2, 3, 4, 5, 6, 7, 8])
    if 1 in sections:
        lecture_latency(args.quick)
    if sections & {2, 3}:
        results = growing_graphs(args.quick)
        linearity(results)
        if 3 in sections:
            backward_forward(results, args.quick)
    if 4 in sections:
        two_layer_net(args.quick)
    if 5 in sections:
        peers(args.quick)
    if 6 in sections:
        growth(args.quick)
    if 7 in sections:
        cheap_gradients(args.quick)
    if 8 in sections:
        own_layers(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
