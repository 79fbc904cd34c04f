"""The sandbox: a clean environment, no network, no stray processes, limits that hold,
a grader that reads what the student's process sends without trusting it, and a
refusal to grade where submissions cannot be isolated.  (Attacks by a whole hostile
class: test_homework_hostile.py.)"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad.cli import main
from symgrad.homework import Isolation, Limits, probe_isolation, sandbox
from symgrad.homework.sandbox import SandboxUnavailable

from .conftest import new_children

try:
    ISOLATION: Isolation | None = probe_isolation()
except SandboxUnavailable as e:
    ISOLATION, WHY = None, str(e)
LIMITS = Limits(wall_seconds=3, cpu_seconds=1, memory_mb=512, output_kb=64)
SPEC = """
[[problem]]
id = "circuit"
function = "grad"
expression = "(x + y) * z"
trials = 2
"""
needs_sandbox = pytest.mark.skipif(ISOLATION is None, reason="no sandbox here (bubblewrap)")


def run_code(tmp_path: Path, source: str, limits: Limits = LIMITS,
             isolation: Isolation | None = ISOLATION) -> sandbox.Outcome:
    """Run ``grad(x)`` of ``source`` once in the sandbox."""
    if isolation is None:
        pytest.skip(f"no sandbox here: {WHY}")
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
    assert env == {**sandbox.clean_env(sandbox.HOME), "PWD": sandbox.HOME}
    assert "s3cret-value" not in outcome.output(0)
    assert outcome.last("problem_done") is not None


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
    assert error is not None and error["message"].startswith("ConnectionRefusedError")


def test_the_graders_processes_are_invisible(tmp_path):
    outcome = run_code(tmp_path, """
        import os
        print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
        def grad(x):
            return x
    """)
    assert outcome.output(0).strip() == "[1, 2, 3]"  # bwrap's init, the supervisor, the student's process


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
    outcome = run_code(tmp_path, f"""
        import subprocess
        def grad(x):
            subprocess.Popen(["sleep", "{marker}"], start_new_session=True)
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


@pytest.mark.parametrize("forged, reason", [
    (b'not json\n', "sent the grader a line that is not JSON in grad() at test point 1: stopped"),
    (b'[1, 2]\n', "sent the grader a message that is not a JSON object in grad()"),
    (b'{"event": "bogus"}\n', "sent the grader an unknown message 'bogus' in grad()"),
    (b'{"event": "problem", "problem": 0}\n', "sent the grader a start of problem 0 out of order"),
    (b'{"event": "problem_done", "problem": 0}\n{"event": "trial", "problem": 0, "trial": 0}\n',
     "sent the grader a trial message outside its problem"),
    (b'{"event": "exit", "status": 0}\n', "sent the grader an exit message that is not the supervisor's"),
    (b"x" * 100, "sent the grader a line of more than 8 MB"),
])
def test_forged_messages_fail_the_student_not_the_grader(tmp_path, forged, reason):
    """A message against the protocol stops the run and fails the problem it was on."""
    data = f"{forged!r} * (100_000 if len({forged!r}) == 100 else 1)"
    result = grade_one(tmp_path, f"""
        import os, sys
        def grad(x, y, z):
            os.write(int(sys.argv[1]), {data})
            raise RuntimeError("caught")
    """)
    assert not result.passed and reason in result.reason, result.reason


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


def test_without_bubblewrap_the_grader_refuses_unless_told_it_is_unsafe(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        probe_isolation()
    file = tmp_path / "student.py"
    file.write_text('def grad(x, y, z):\n    return {"x": z, "y": z, "z": x + y}\n')
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    assert main(["check", str(spec), str(file), "--json", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert "symgrad: error: the grader's sandbox needs bubblewrap (bwrap)" in err
    assert "--unsafe-no-sandbox" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.toml", "student.py"]  # no r.json
    assert main(["check", str(spec), str(file), "--unsafe-no-sandbox", "--csv", str(tmp_path / "r.csv")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("[UNSAFE: no sandbox] ") for line in lines)
    assert (tmp_path / "r.csv").read_text().splitlines() == [
        "student,circuit,total,sandbox", "student,1,1,UNSAFE: no sandbox"]
    unsafe = probe_isolation(unsafe=True)
    assert unsafe == Isolation() and unsafe.unsafe and "UNSAFE" in unsafe.note
    report = sg.homework.grade(SPEC, [file], limits=LIMITS, unsafe_no_sandbox=True)
    assert report.submissions[0].passed and report.unsafe and '"unsafe_no_sandbox": true' in report.json()


def test_answer_problems_need_no_sandbox(tmp_path, monkeypatch):
    """Answers are read by symgrad's parser, never run: they are graded without bubblewrap."""
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "answers.toml").write_text('[d]\nx = "2*x"\n')
    report = sg.homework.grade('[[problem]]\nid = "d"\nkind = "answer"\nexpression = "x**2"\n', [folder])
    assert report.submissions[0].passed and not report.unsafe


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
        "return {'x': z, 'y': z}": ("∂z: missing from the dict grad() returned (keys 'x', 'y'; "
                                    "asked: x, y, z)", 2 / 3),
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


JUNK = [5, "x", None, [], {}, [1, [2]], {"kind": "array", "shape": [10**6, 10**6], "data": []},
        {"kind": "array", "shape": "3", "data": "abc"}, {"kind": "tuple", "items": 5, "length": "3"},
        {"kind": "dict", "items": [1, 2]}, {"kind": "scalar", "data": True}, {"kind": {"a": 1}},
        {"kind": "list", "items": [{}, None], "length": 10**30}, 1e308, -0.0, "\x1b[2J"]


@pytest.mark.parametrize("style", ["grad", "layer"])
def test_forged_values_in_valid_messages_fail_only_the_student(style):
    """Messages the protocol allows, holding any JSON at all: each read as the student's failure,
    with a reason, never an exception in the grader."""
    from symgrad.homework import grading

    text = SPEC if style == "grad" else SPEC.replace('function = "grad"', 'style = "layer"')
    prep = grading.prepare(sg.homework.load_spec(text).problems[0], 0)
    limits = Limits()
    fields = {"trial": ["returned", "out", "mutated", "mutated_in", "forward_returned", "mutated_dout",
                        "trial"],
              "error": ["message", "kind", "file", "line", "function", "stage", "trial"],
              "stage": ["stage", "trial", "function", "file"]}
    for event, names in fields.items():
        for name in names:
            for junk in JUNK:
                events = [{"event": "stage", "problem": 0, "stage": "call", "trial": 0},
                          {"event": event, "problem": 0, "trial": 0, name: junk}]
                events += [{"event": "trial", "problem": 0, "trial": i, "returned": junk}
                           for i in range(1, len(prep.points))]
                reason = grading._problem_error(events, limits) or grading._mutation(prep.problem, events)
                checks, why = grading._code_checks(prep, events)
                assert reason or why or not all(c.ok for c in checks), (event, name, junk)
                outcome = sandbox.Outcome(events=events, current=0, stopped="protocol", violation="x")
                assert grading._run_end(outcome, 0, limits)


@pytest.mark.skipif(sandbox.seccomp_program() is None, reason="the seccomp filter is for x86-64")
def test_the_seccomp_filter_refuses_what_a_gradient_has_no_use_for(tmp_path):
    """ptrace and the kernel keyrings get EPERM (without the filter: ESRCH, and a keyring id)."""
    outcome = run_code(tmp_path, """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        def call(*args):
            ctypes.set_errno(0)
            return libc.syscall(*args), os.strerror(ctypes.get_errno())
        print(call(101, 16, 999999, 0, 0), call(250, 0, -4, 0, 0), call(39))  # ptrace, keyctl, getpid
        def grad(x):
            return x
    """)
    assert outcome.output(0).split("\n")[0] == (
        "(-1, 'Operation not permitted') (-1, 'Operation not permitted') (3, 'Success')")
    assert outcome.last("problem_done") is not None


def feed(lines: list[bytes], trials: int = 2) -> sandbox.Outcome:
    """What the grader makes of these lines from a run of one problem of ``trials`` test points."""
    outcome = sandbox.Outcome()
    reader = sandbox._Reader(None, LIMITS, outcome, [trials], None)  # type: ignore[arg-type]
    for line in [b'{"event": "problem", "problem": 0}', *lines]:
        if outcome.stopped is None:
            reader.messages(line + b"\n")
    return outcome


def trial(k: int, padding: int = 0) -> bytes:
    return (b'{"event": "trial", "problem": 0, "trial": %d, "returned": {"kind": "other", "type": "%s"}}'
            % (k, b"x" * padding))


def test_a_run_keeps_what_the_protocol_allows_and_no_more(monkeypatch):
    stage = b'{"event": "stage", "problem": 0, "stage": "call", "function": "grad"}'
    allowed = sandbox.allowed_messages(2)
    assert feed([stage] * allowed).stopped is None
    flood = feed([stage] * 10_000)
    assert flood.violation == "more messages than 2 test points call for"
    assert len(flood.events) == 1 + allowed
    assert feed([trial(0), trial(1)]).stopped is None
    assert feed([trial(1), trial(1)]).violation == "a second result for test point 2"
    for bad in (trial(2), trial(-1), trial(0).replace(b'"trial": 0', b'"trial": true')):
        assert feed([bad]).violation == "a trial message without its trial", bad
    assert feed([stage.replace(b'"problem": 0', b'"problem": 0.0')]).violation == \
        "a stage message outside its problem"
    monkeypatch.setattr(sandbox, "MAX_KEPT_BYTES", 1 << 20)
    assert feed([trial(0, 600_000)]).stopped is None
    big = feed([trial(0, 600_000), trial(1, 600_000)])
    assert big.violation == "more than 1 MB of results" and len(big.events) == 2


def fake_cgroupfs(root: Path, monkeypatch, version: int) -> None:
    """A folder tree that answers like a cgroup file system: a new folder comes with its
    control files, and one goes with them. It checks what the grader writes, not what a
    kernel would make of it."""
    files = {2: ("cgroup.procs", "memory.max", "memory.swap.max", "pids.max"),
             1: ("cgroup.procs", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "pids.max")}[version]
    real_mkdir, real_rmdir = os.mkdir, os.rmdir

    def mkdir(path, *args, **kwargs):
        real_mkdir(path, *args, **kwargs)
        if str(path).startswith(str(root)):
            for name in files:
                Path(path, name).write_text("" if name == "cgroup.procs" else "max")

    def rmdir(path, *args, **kwargs):
        if str(path).startswith(str(root)):
            if Path(path, "cgroup.procs").read_text().strip():
                raise OSError(16, "Device or resource busy")  # a cgroup with processes stays
            for name in files:
                Path(path, name).unlink()
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "rmdir", rmdir)


def test_cgroup_v2_limits_are_written_where_the_grader_may_make_cgroups(tmp_path, monkeypatch):
    """The v2 path on a fake cgroup tree (this machine may have v1 only): found from the
    process's own cgroup when its subtree enables memory and pids, limits written to
    memory.max, memory.swap.max and pids.max, what is left in a cgroup killed, and the
    cgroup removed."""
    root = tmp_path / "cgroup"
    own = root / "user.slice" / "grader"
    own.mkdir(parents=True)
    (tmp_path / "self").write_text("0::/user.slice/grader\n")
    fake_cgroupfs(root, monkeypatch, 2)
    assert sandbox.Cgroups.find(str(tmp_path / "self"), str(root)) is None  # no controllers enabled
    (own / "cgroup.subtree_control").write_text("cpu memory pids\n")
    found = sandbox.Cgroups.find(str(tmp_path / "self"), str(root))
    assert found == sandbox.Cgroups(2, (str(own),))
    assert list(own.iterdir()) == [own / "cgroup.subtree_control"]  # the trial cgroup is gone
    made = found.create(448, 32)
    assert len(made) == 1 and Path(made[0]).parent == own and Path(made[0]).name.startswith("symgrad-")
    limits = {name: Path(made[0], name).read_text() for name in ("memory.max", "memory.swap.max", "pids.max")}
    assert limits == {"memory.max": str(448 << 20), "memory.swap.max": "0", "pids.max": "32"}
    left = subprocess.Popen(["sleep", "30"])
    Path(made[0], "cgroup.procs").write_text(f"{left.pid}\n")
    removing = threading.Thread(target=found.remove, args=(made,))
    removing.start()
    assert left.wait(timeout=5) == -signal.SIGKILL
    Path(made[0], "cgroup.procs").write_text("")  # the kernel's part: the killed process leaves
    removing.join(timeout=10)
    assert not removing.is_alive() and not Path(made[0]).exists()
    assert "(cgroup v2)" in dataclasses.replace(ISOLATION or Isolation("bwrap"), cgroups=found).note


def test_cgroup_v1_limits_go_to_both_hierarchies(tmp_path, monkeypatch):
    root = tmp_path / "cgroup"
    for hierarchy in ("memory", "pids"):
        (root / hierarchy / "grading").mkdir(parents=True)
    (tmp_path / "self").write_text("5:pids:/grading\n4:memory:/grading\n3:cpu,cpuacct:/\n")
    fake_cgroupfs(root, monkeypatch, 1)
    found = sandbox.Cgroups.find(str(tmp_path / "self"), str(root))
    assert found == sandbox.Cgroups(1, (str(root / "memory" / "grading"), str(root / "pids" / "grading")))
    made = found.create(448, 32)
    assert [Path(m).parent.parent.name for m in made] == ["memory", "pids"]
    for folder in made:
        assert Path(folder, "pids.max").read_text() == "32"
        assert Path(folder, "memory.limit_in_bytes").read_text() == str(448 << 20)
    found.remove(made)
    assert not any(Path(m).exists() for m in made)


def test_results_are_kept_as_arrays_and_read_as_before():
    from symgrad.homework.grading import _decode

    line = (b'{"event": "trial", "problem": 0, "trial": 0, "returned": {"kind": "dict", "items": {'
            b'"x": {"kind": "array", "dtype": "float64", "shape": [2], "data": [1, 2.5]}, '
            b'"y": {"kind": "array", "dtype": "float64", "shape": [1], "data": ["a"]}}}}')
    items = feed([line]).events[-1]["returned"]["items"]
    assert isinstance(items["x"]["data"], np.ndarray) and items["y"]["data"] is None
    x, why = _decode(items["x"])
    assert why is None and x.tolist() == [1.0, 2.5]
    assert _decode(items["y"]) == (None, "could not be read")
    assert _decode(json.loads(line)["returned"]["items"]["y"]) == (None, "could not be read")


HOLDERS = """
    import os, time
    started = []
    def grad(x, y, z):
        if not started:  # at the first test point
            started.append(True)
            read, write = os.pipe()
            for _ in range(CHILDREN):  # each child holds 200 MB, within the per-process limit
                if os.fork() == 0:
                    if os.fork():  # and an orphan below it, reparented to the sandbox's init
                        os._exit(0)
                    held = bytearray(200 << 20)
                    held[::4096] = b"x" * len(held[::4096])
                    os.write(write, b"!")
                    time.sleep(20)
                    os._exit(len(held) == 0)
            for _ in range(CHILDREN):
                os.read(read, 1)
            time.sleep(0.5)  # time for the grader to look
        return {"x": z, "y": z, "z": x + y}
"""


@pytest.mark.parametrize("children, passes", [(1, True), (3, False)])
def test_without_a_cgroup_the_grader_bounds_memory_across_processes(tmp_path, children, passes):
    """No cgroup (an unprivileged grader): the grader sums the memory of the sandbox's
    processes, orphans included, and stops a run past the limit; one that stays within it
    (one child of 200 MB, 512 MB allowed) is graded as usual."""
    if ISOLATION is None:
        pytest.skip(f"no sandbox here: {WHY}")
    isolation = dataclasses.replace(ISOLATION, cgroups=None)
    assert "per submission (the grader sums its processes' resident memory every 0.1 s)" in isolation.note
    assert "32 processes (RLIMIT_NPROC)" in isolation.note
    helpers = frozenset(new_children())
    result = grade_one(tmp_path, HOLDERS.replace("CHILDREN", str(children)), isolation=isolation)
    if passes:
        assert result.passed, result.reason
    else:
        assert not result.passed and result.reason.startswith(
            "ran out of memory (limit 512 MB, total across its processes) in grad()"), result.reason
    time.sleep(0.2)
    assert new_children(helpers) == []


def test_the_memory_of_a_process_tree_is_summed():
    """A parent and a child holding 100 MB of their own: the sum counts the child's 100 MB
    once and the pages they share (Python itself) once between them."""
    code = ("import os, sys, time\nheld = bytearray(100 << 20); held[::4096] = b'x' * len(held[::4096])\n"
            "r, w = os.pipe()\nif os.fork() == 0:\n    mine = bytearray(100 << 20)\n"
            "    mine[::4096] = b'y' * len(mine[::4096]); os.write(w, b'!'); time.sleep(30)\n"
            "os.read(r, 1); print('ready', flush=True); time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        total = sandbox.sandbox_memory_mb(proc.pid)
        assert 200 <= total < 200 + 60, total  # parent's 100 MB, child's 100 MB, Python's pages
        assert sandbox.sandbox_memory_mb(os.getpid()) >= total  # this process is above them
    finally:
        proc.kill()
        proc.wait()
