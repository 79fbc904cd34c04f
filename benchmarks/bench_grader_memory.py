"""Homework benchmark: the grader's own memory while it grades a hostile class.

Run:  python benchmarks/bench_grader_memory.py [JOBS]   (needs bubblewrap; default JOBS: 8)

Grades, at ``-j JOBS``, JOBS submissions of each kind in a fresh process and
prints how much the grader's peak resident memory (VmHWM) grew while grading:
correct submissions (the baseline, measured in the same run), submissions that
flood the grader with 40,000 valid messages each, and submissions that send
16 MB of numbers each (the most results a run may keep). Answer workers are
processes of their own and not counted.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
[[problem]]
id = "circuit"
function = "grad"
expression = "(x + y) * z"
trials = 2

[[problem]]
id = "square"
kind = "answer"
expression = "x**2"
"""
RIGHT = 'def grad(x, y, z):\n    return {"x": z, "y": z, "z": x + y}\n'
FLOOD = """import os, sys
def grad(x, y, z):
    line = b'{"event": "stage", "problem": 0, "stage": "call", "function": "grad", "trial": 0}\\n'
    for _ in range(40):
        os.write(int(sys.argv[1]), line * 1000)
    return {"x": z, "y": z, "z": x + y}
"""
NUMBERS = """import os, sys
def grad(x, y, z):
    n = 1_900_000
    for k in (0, 1):
        head = (b'{"event": "trial", "problem": 0, "trial": %d, '
                b'"returned": {"kind": "array", "shape": [%d], "data": [')
        os.write(int(sys.argv[1]), head % (k, n) + b"0.5," * (n - 1) + b'0.5]}}\\n')
    return {"x": z, "y": z, "z": x + y}
"""
GRADE = """
import json, sys
from pathlib import Path
import symgrad as sg
from symgrad.homework import Limits
def peak():
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) >> 10
room, jobs = Path(sys.argv[1]), int(sys.argv[2])
before = peak()
sg.homework.grade(room / "spec.toml", sorted(p for p in room.iterdir() if p.is_dir()), jobs=jobs,
                  limits=Limits(wall_seconds=30, cpu_seconds=10, memory_mb=384, answer_seconds=60))
print(json.dumps(peak() - before))
"""


def growth(source: str, jobs: int) -> int:
    """MB the grader's peak memory grew by while grading ``jobs`` copies of ``source``."""
    with tempfile.TemporaryDirectory() as tmp:
        room = Path(tmp)
        (room / "spec.toml").write_text(SPEC)
        for i in range(jobs):
            (room / f"s{i:03}").mkdir()
            (room / f"s{i:03}" / "homework.py").write_text(source)
            (room / f"s{i:03}" / "answers.toml").write_text('[square]\nx = "2*x"\n')
        done = subprocess.run([sys.executable, "-c", GRADE, str(room), str(jobs)], capture_output=True,
                              text=True, check=True, cwd=ROOT)
        return int(done.stdout)


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    base = growth(RIGHT, jobs)
    print(f"-j {jobs}, {jobs} submissions of each kind: the grader's peak memory grew by")
    print(f"  correct (baseline)            {base:6d} MB")
    for name, source in (("40,000 messages each", FLOOD), ("16 MB of numbers each", NUMBERS)):
        mb = growth(source, jobs)
        print(f"  {name:<29} {mb:6d} MB  ({mb - base:+d} MB over the baseline, "
              f"{(mb - base) / jobs:.0f} MB a submission)")


if __name__ == "__main__":
    main()
