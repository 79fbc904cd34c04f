"""Homework benchmarks: the grader's references, and its throughput on a class.

Run:  python benchmarks/bench_homework.py                  # references
      python benchmarks/bench_homework.py --throughput     # 500 submissions, sandboxed
      python benchmarks/bench_homework.py --throughput --submissions 100 --jobs 2

For tensor problems of growing size, the time to compute the references at
every test point with the compiled ``value_and_grad`` / ``forward`` + ``backward``
(what the grader does) against the interpreter's ``backprop`` (the baseline,
measured in the same run), and the time the witness (``check_grad``) adds.
Compile time is paid once per problem and shown apart.

Throughput: copies of the example assignment's submissions (the correct one
and one per common mistake, in turn) graded with the sandbox on, first one at
a time (``jobs=1``, the baseline, on a slice) and then with ``jobs`` = every
core on all of them; it prints submissions per second for each, the speed-up
(how much of the cores the grader uses), the load average of the machine
during the run, and, where this process may make a cgroup v1 ``cpuacct``
group (as root), the CPU time per submission of the grader and every process
it started — sandboxes included — and the rate that many idle cores would
sustain (cores / CPU seconds per submission).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symgrad.homework import Problem, grade, load_spec, reference_gradients  # noqa: E402
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


HOMEWORK = Path(__file__).resolve().parents[1] / "examples" / "homework"
CPUACCT = Path("/sys/fs/cgroup/cpuacct")


class CpuMeter:
    """CPU time of this process and all it starts, from a cgroup v1 cpuacct group of its own;
    ``seconds()`` is None where no such group can be made."""

    def __init__(self) -> None:
        self.group: Path | None = CPUACCT / f"symgrad-bench-{os.getpid()}"
        try:
            self.group.mkdir()
            (self.group / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            self.group = None

    def seconds(self) -> float | None:
        if self.group is None:
            return None
        return int((self.group / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        if self.group is not None:
            (CPUACCT / "cgroup.procs").write_text(str(os.getpid()))
            time.sleep(0.2)  # the last sandboxes leave the group
            try:
                self.group.rmdir()
            except OSError:
                pass


def submissions(folder: Path, n: int) -> list[Path]:
    """``n`` submission folders, copies of the example submissions in turn."""
    examples = sorted(p for p in (HOMEWORK / "submissions").iterdir() if p.is_dir())
    made = []
    for i in range(n):
        target = folder / f"student{i:04d}"
        shutil.copytree(examples[i % len(examples)], target)
        made.append(target)
    return made


def rate(paths: list[Path], jobs: int, meter: CpuMeter) -> tuple[float, float | None, int]:
    """Submissions per second, CPU seconds per submission (or None), and how many passed."""
    cpu = meter.seconds()
    t0 = time.perf_counter()
    report = grade(HOMEWORK / "assignment.toml", paths, jobs=jobs)
    elapsed = time.perf_counter() - t0
    used = meter.seconds()
    per = None if cpu is None or used is None else (used - cpu) / len(paths)
    return len(paths) / elapsed, per, sum(s.passed for s in report.submissions)


def throughput(n: int, jobs: int, baseline: int) -> None:
    meter = CpuMeter()
    try:
        with tempfile.TemporaryDirectory(prefix="symgrad-bench-") as tmp:
            paths = submissions(Path(tmp), n)
            load0 = os.getloadavg()[0]
            one, one_cpu, _ = rate(paths[:baseline], 1, meter)
            many, many_cpu, passed = rate(paths, jobs, meter)
            load1 = os.getloadavg()[0]
    finally:
        meter.close()
    print(f"throughput: the example assignment ({len(load_spec(HOMEWORK / 'assignment.toml').problems)} "
          f"problems), sandbox on, {os.cpu_count()} cores")
    print(f"  jobs=1 (baseline)  {baseline:>4} submissions  {one:6.2f} submissions/s")
    print(f"  jobs={jobs:<14} {n:>4} submissions  {many:6.2f} submissions/s  "
          f"{many / one:.2f}x the baseline  ({passed} passed)")
    if many_cpu is not None:
        print(f"  CPU per submission (grader + sandboxes + answer workers): {many_cpu * 1e3:.0f} ms; "
              f"{os.cpu_count()} idle cores would sustain {os.cpu_count() / many_cpu:.1f} submissions/s")
    else:
        print("  CPU per submission: n/a (no cgroup v1 cpuacct group can be made here)")
    print(f"  load average of the machine: {load0:.1f} before, {load1:.1f} after")


def references() -> None:
    print(f"{'problem':<14} {'N x D':>10}  {'compile':>8}  {'interpreter':>11}  {'compiled':>9}  "
          f"{'speed-up':>8}  {'witness':>8}")
    for n, d, h, c in SIZES:
        for p in load_spec(SPEC.format(n=n, d=d, h=h, c=c)).problems:
            compile_time, slow, quick, wit = measure(p)
            print(f"{p.id:<14} {f'{n} x {d}':>10}  {compile_time * 1e3:>6.0f}ms  {slow * 1e3:>9.1f}ms  "
                  f"{quick * 1e3:>7.1f}ms  {slow / quick:>7.1f}x  {wit * 1e3:>6.1f}ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--throughput", action="store_true", help="grade a class of submissions")
    parser.add_argument("--submissions", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline", type=int, default=50, help="submissions graded with jobs=1")
    args = parser.parse_args()
    if args.throughput:
        throughput(args.submissions, args.jobs, min(args.baseline, args.submissions))
    else:
        references()


if __name__ == "__main__":
    main()
