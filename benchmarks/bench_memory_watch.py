"""Homework benchmark: what the grader's watch on a sandbox's memory costs.

Run:  python benchmarks/bench_memory_watch.py [SUBMISSIONS]   (needs bubblewrap; default 8)

Without a cgroup, the grader sums the memory of each running sandbox's processes every
0.1 s (:func:`symgrad.homework.sandbox.sandbox_memory_mb`). Prints the time of one such
poll against listing ``/proc`` (the least any look at the machine's processes costs),
measured in the same run, and the time to grade SUBMISSIONS correct submissions whose
function sleeps 0.5 s at each of 2 test points, at ``-j 4``, with the watch (no cgroup)
against with a cgroup where the grader may make one (root): wall time and the grader's
own CPU time.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import symgrad as sg
from symgrad.homework import Limits, probe_isolation
from symgrad.homework.sandbox import sandbox_memory_mb

SPEC = """
[[problem]]
id = "circuit"
function = "grad"
expression = "(x + y) * z"
trials = 2
"""
SLEEPER = 'import time\ndef grad(x, y, z):\n    time.sleep(0.5)\n    return {"x": z, "y": z, "z": x + y}\n'


def per_call(function, calls: int = 100) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def grading_seconds(isolation, submissions: int) -> tuple[float, float]:
    """Wall time and the grader's own CPU time (its threads, not the sandboxes) to grade."""
    with tempfile.TemporaryDirectory() as tmp:
        folders = []
        for i in range(submissions):
            folder = Path(tmp) / f"s{i:02}"
            folder.mkdir()
            (folder / "homework.py").write_text(SLEEPER)
            folders.append(folder)
        start, cpu = time.monotonic(), time.process_time()
        report = sg.homework.grade(SPEC, folders, jobs=4, isolation=isolation,
                                   limits=Limits(wall_seconds=10, cpu_seconds=5, memory_mb=384))
        assert all(s.passed for s in report.submissions)
        return time.monotonic() - start, time.process_time() - cpu


def main() -> None:
    submissions = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    processes = sum(name.isdigit() for name in os.listdir("/proc"))
    poll = per_call(lambda: sandbox_memory_mb(os.getpid()))
    listing = per_call(lambda: os.listdir("/proc"))
    print(f"one poll, {processes} processes on the machine: {poll * 1e3:.1f} ms "
          f"({poll / listing:.1f}x listing /proc, {listing * 1e3:.2f} ms)")
    isolation = probe_isolation()
    watched, watched_cpu = grading_seconds(dataclasses.replace(isolation, cgroups=None), submissions)
    print(f"{submissions} submissions at -j 4, watched: {watched:.2f} s, "
          f"the grader's CPU {watched_cpu:.2f} s")
    if isolation.cgroups is None:
        return
    kernel, kernel_cpu = grading_seconds(isolation, submissions)
    print(f"{submissions} submissions at -j 4, cgroup v{isolation.cgroups.version}: {kernel:.2f} s, the "
          f"grader's CPU {kernel_cpu:.2f} s (watched: {watched / kernel:.2f}x the time, "
          f"{watched_cpu / kernel_cpu:.2f}x the CPU)")


if __name__ == "__main__":
    main()
