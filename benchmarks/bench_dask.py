"""Data-parallel gradients on Dask: the two-layer net's loss over a batch of 10^6 examples.

Run:  python benchmarks/bench_dask.py [--quick] [--examples N] [--chunk C]

The CS231n two-layer net (affine → ReLU → affine → softmax cross-entropy,
mean over N, + ½·reg·ΣW²) with D = 20 inputs, H = 64 hidden units and
C = 10 classes.  ``g.compile(batch="N").value_and_grad`` runs on

- the whole batch in memory, the generated NumPy code in one call (the baseline);
- Dask's threads (no client), the batch chunked along N;
- a ``dask.distributed`` LocalCluster of 1 worker and of 2 workers (one
  process and one thread each), the chunks made and kept on the workers
  (``client.persist``), as they would be read there from storage.

Every row is timed in the same run (best of interleaved repeats) and given as
examples per second and as a ratio to the baseline; every row's loss and
gradients must equal the baseline's to 1e-12 (relative).  BLAS runs on one
thread per process, so 2 workers use 2 cores where the baseline uses 1.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import symgrad as sg  # noqa: E402

D, H, C = 20, 64, 10
TEXT = "softmax_cross_entropy(relu(X @ W1 + b1) @ W2 + b2, y) + 0.5*reg*(l2(W1) + l2(W2))"


def net() -> tuple[sg.Graph, dict[str, Any]]:
    shapes = {"X": ("N", D), "W1": (D, H), "b1": (H,), "W2": (H, C), "b2": (C,), "y": ("N",), "reg": ()}
    g = sg.graph(TEXT, shapes=shapes, dtypes={"y": int})
    rng = np.random.default_rng(0)
    params = {"W1": rng.normal(size=(D, H)) / np.sqrt(D), "b1": np.zeros(H),
              "W2": rng.normal(size=(H, C)) / np.sqrt(H), "b2": np.zeros(C), "reg": 1e-3}
    return g, params


def data(n: int, chunk: int) -> tuple[Any, Any]:
    """X and y as Dask arrays chunked along N, made chunk by chunk where they are computed."""
    import dask.array as da

    rng = da.random.default_rng(1)
    X = rng.normal(size=(n, D), chunks=(chunk, D))
    y = rng.integers(0, C, size=n, chunks=chunk)
    return X, y


def best(f, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return min(times), out


def fresh(call: Any, params: dict[str, Any]) -> Any:
    """``call(**params)``, each time with ``reg`` one unit in the last place away from the
    time before: Dask names tasks by their inputs' contents, so repeating a call could
    otherwise pick up the previous call's results still held on a worker."""
    reg = [params["reg"]]

    def run() -> Any:
        reg[0] = float(np.nextafter(reg[0], np.inf))
        return call(**{**params, "reg": reg[0]})
    return run


def agree(a: tuple[Any, dict[str, Any]], b: tuple[Any, dict[str, Any]]) -> float:
    """The largest relative difference between two (loss, gradients)."""
    worst = abs(float(a[0]) - float(b[0])) / abs(float(b[0]))
    for n, v in b[1].items():
        worst = max(worst, float(np.max(np.abs(a[1][n] - v)) / max(np.max(np.abs(v)), 1e-300)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 examples instead of 10^6")
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--chunk", type=int, default=None, help="examples per chunk (default N/8)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    try:
        import dask
        import distributed
    except ImportError as e:
        print(f"skipped: {e.name} is not installed (pip install 'symgrad[dask]')")
        return
    n = args.examples or (10**5 if args.quick else 10**6)
    chunk = args.chunk or n // 8
    g, params = net()
    f = g.compile(wrt=["W1", "b1", "W2", "b2"], batch="N")
    X, y = data(n, chunk)
    Xn, yn = dask.compute(X, y, scheduler="threads")
    print(f"two-layer net D={D} H={H} C={C}, N = {n:,} examples in {len(X.chunks[0])} chunks of {chunk:,}")
    print(f"dask {dask.__version__}, distributed {distributed.__version__}, NumPy {np.__version__}, "
          f"{os.cpu_count()} cores\n")

    rows: list[tuple[str, float, float]] = []
    t_base, base = best(functools.partial(f.value_and_grad, X=Xn, y=yn, **params), args.repeat)
    rows.append(("NumPy, whole batch in one call", t_base, 0.0))
    del Xn, yn
    t, out = best(fresh(functools.partial(f.value_and_grad, X=X, y=y), params), args.repeat)
    rows.append(("Dask threads (no client)", t, agree(out, base)))
    for workers in (1, 2):
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
        with cluster, distributed.Client(cluster) as client:
            Xp, yp = client.persist([X, y])
            distributed.wait([Xp, yp])
            run = fresh(functools.partial(f.value_and_grad, X=Xp, y=yp), params)
            run()  # the workers load the module once
            t, out = best(run, args.repeat)
            rows.append((f"LocalCluster, {workers} worker{'s' if workers > 1 else ''}", t, agree(out, base)))
    print(f"{'run':34} {'seconds':>8} {'examples/s':>12} {'/ NumPy':>8} {'max rel diff':>13}")
    for name, t, diff in rows:
        print(f"{name:34} {t:8.3f} {n / t:12,.0f} {t / t_base:8.2f} {diff:13.1e}")
        assert diff < 1e-12, (name, diff)
    one, two = rows[2][1], rows[3][1]
    print(f"\n2 workers / 1 worker: {two / one:.2f} of the time ({one / two:.2f}x the throughput)")


if __name__ == "__main__":
    main()
