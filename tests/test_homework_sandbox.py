"""The sandbox: a clean environment, no network, no stray processes, limits that hold,
and a grader that reads what the student's process sends without trusting it."""

from __future__ import annotations

import json
import socket
import textwrap
import time
from pathlib import Path

import pytest

import symgrad as sg
from symgrad.homework import Isolation, Limits, probe_isolation, sandbox

ISOLATION = probe_isolation()
LIMITS = Limits(wall_seconds=3, cpu_seconds=1, memory_mb=512, output_kb=64)
SPEC = """
[[problem]]
id = "circuit"
function = "grad"
expression = "(x + y) * z"
trials = 2
"""
needs_namespaces = pytest.mark.skipif(not ISOLATION.processes, reason="unshare is not permitted here")


def run_code(tmp_path: Path, source: str, limits: Limits = LIMITS,
             isolation: Isolation = ISOLATION) -> sandbox.Outcome:
    """Run ``grad(x)`` of ``source`` once in the sandbox."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "m.py").write_text(textwrap.dedent(source))
    task = {"problems": [{"file": "m.py", "style": "grad", "function": "grad", "forward": "f",
                          "backward": "b", "douts": [],
                          "trials": [{"x": {"kind": "scalar", "dtype": "float64", "data": 1.5}}]}]}
    return sandbox.run(task, work, limits, isolation)


def grade_one(tmp_path: Path, source: str, **kwargs):
    file = tmp_path / "student.py"
    file.write_text(textwrap.dedent(source))
    return sg.homework.grade(SPEC, [file], limits=LIMITS, **kwargs).submissions[0].problems[0]


def test_the_student_sees_a_clean_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMGRAD_GRADER_SECRET", "s3cret-value")
    outcome = run_code(tmp_path, """
        import json, os
        print(json.dumps(dict(os.environ)))
        def grad(x):
            return x
    """)
    env = json.loads(outcome.output(0))
    assert set(env) == set(sandbox.clean_env("/")) and env["HOME"] == str(tmp_path / "work")
    assert "s3cret-value" not in outcome.output(0)
    assert outcome.last("problem_done") is not None


@pytest.mark.skipif(not ISOLATION.network, reason="no network namespace here")
def test_the_student_has_no_network(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # reachable from the grader
        outcome = run_code(tmp_path, f"""
            import socket
            def grad(x):
                socket.create_connection(("127.0.0.1", {port}), timeout=1)
                return x
        """)
    finally:
        server.close()
    error = outcome.last("error", 0)
    assert error is not None and error["message"].startswith(("ConnectionRefusedError", "OSError"))


@needs_namespaces
def test_the_graders_processes_are_invisible(tmp_path):
    outcome = run_code(tmp_path, """
        import os
        print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        def grad(x):
            return x
    """)
    assert outcome.output(0).strip() == "[1, 2]"  # the supervisor and the student's process


def stray_processes(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(entry.name)
        except OSError:
            pass
    return found


def test_processes_the_student_starts_die_with_the_run(tmp_path):
    marker = f"{time.time() % 1000:.6f}"
    escape = "start_new_session=True" if ISOLATION.processes else "start_new_session=False"
    outcome = run_code(tmp_path, f"""
        import subprocess
        def grad(x):
            subprocess.Popen(["sleep", "{marker}"], {escape})
            return x
    """)
    assert outcome.last("problem_done") is not None
    time.sleep(0.2)
    assert stray_processes(marker) == []


def test_the_wall_time_limit_stops_a_sleeping_student(tmp_path):
    start = time.monotonic()
    outcome = run_code(tmp_path, """
        import time
        def grad(x):
            time.sleep(60)
    """, limits=Limits(wall_seconds=1, cpu_seconds=1, memory_mb=512, output_kb=64))
    assert outcome.stopped == "timeout" and time.monotonic() - start < 3


def test_forged_messages_do_not_fool_the_grader(tmp_path):
    result = grade_one(tmp_path, """
        import os, sys
        def grad(x, y, z):
            fd = int(sys.argv[1])
            os.write(fd, b'not json\\n[1, 2]\\n{"event": "problem_done", "problem": 0}\\n')
            os.write(fd, b'{"event": "trial", "problem": 0, "trial": 0, "returned": 7}\\n')
            raise RuntimeError("caught")
    """)
    assert not result.passed and result.reason.startswith("raised RuntimeError: caught")


def test_a_broken_return_value_is_a_clear_failure(tmp_path):
    result = grade_one(tmp_path, """
        class Weird:
            def __float__(self):
                raise ValueError("no")
        def grad(x, y, z):
            return {"x": Weird(), "y": "z", "z": [1.0]}
    """)
    assert [c.hint for c in result.checks] == [
        "a Weird, not a number or a NumPy array", "a str, not a number or a NumPy array",
        "a list, not a NumPy array: return np.array(...)"]


def test_grading_goes_on_without_isolation(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    plain = probe_isolation()
    assert plain == Isolation() and "not isolated" in plain.note
    result = grade_one(tmp_path, """
        def grad(x, y, z):
            return {"x": z, "y": z, "z": x + y}
    """, isolation=plain)
    assert result.passed


def test_a_missing_function_and_a_missing_file(tmp_path):
    result = grade_one(tmp_path, "def other(x): return x\n")
    assert result.reason == "student.py defines no function grad()"
    folder = tmp_path / "folder"
    folder.mkdir()
    report = sg.homework.grade(SPEC, [folder], limits=LIMITS)
    assert report.submissions[0].problems[0].reason == "no homework.py in the submission"


def test_each_problem_gets_its_own_budget_after_a_stopped_run(tmp_path):
    spec = SPEC + """
[[problem]]
id = "again"
function = "grad2"
expression = "x * y"
"""
    file = tmp_path / "student.py"
    file.write_text(textwrap.dedent("""
        def grad(x, y, z):
            while True:
                pass
        def grad2(x, y):
            return {"x": y, "y": x}
    """))
    first, second = sg.homework.grade(spec, [file], limits=LIMITS).submissions[0].problems
    assert "limit" in first.reason and second.passed


def test_modifying_inputs_in_backward_or_dout_is_named(tmp_path):
    spec = """
[[problem]]
id = "layer"
style = "layer"
expression = "2 * X"
[problem.inputs]
X = { shape = [3] }
"""
    cases = {
        "cache": ("X", "X *= 0", "modified its input X in place in backward()"),
        "dout": ("X", "dout *= 2", "modified dout in place in backward()"),
    }
    for name, (cache, statement, expected) in cases.items():
        file = tmp_path / f"{name}.py"
        file.write_text(textwrap.dedent(f"""
            def forward(X):
                return 2 * X, X
            def backward(dout, {cache}):
                result = 2 * dout
                {statement}
                return result
        """))
        result = sg.homework.grade(spec, [file], limits=LIMITS).submissions[0].problems[0]
        assert result.reason is not None and result.reason.startswith(expected), result.reason


def test_unreadable_results_fail_the_problem_with_the_reason(tmp_path):
    cases = {
        "return {'x': z, 'y': z}": ("∂z: missing from what grad() returned (x, y)", 2 / 3),
        "return z, z": ("grad() returned 2 values; expected 3: (dx, dy, dz)", 0),
        "return 'grads'": ("grad() returned a str; expected a dict {'x': dx, ...} or a tuple "
                           "(dx, dy, dz)", 0),
    }
    for i, (statement, (expected, score)) in enumerate(cases.items()):
        (tmp_path / str(i)).mkdir()
        result = grade_one(tmp_path / str(i), f"def grad(x, y, z):\n    {statement}\n")
        assert result.hints() == [expected] and result.score == pytest.approx(score)


def test_the_student_works_in_a_fresh_copy_of_the_submission(tmp_path):
    """Files the student writes or deletes stay in a temporary copy that is gone afterwards."""
    result = grade_one(tmp_path, """
        import os
        from pathlib import Path
        print("cwd", os.getcwd())
        Path("written.txt").write_text("x")
        os.remove("student.py")
        def grad(x, y, z):
            return {"x": z, "y": z, "z": x + y}
    """)
    assert result.passed
    cwd = Path(result.output.split("cwd ", 1)[1].split()[0])
    assert cwd != Path.cwd() and not cwd.exists() and tmp_path not in cwd.parents
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student.py"]
