"""A hostile class: each attack is a submission graded beside a correct classmate.

For every attack: the grader survives, the classmate's grade is what it is
alone, the attacker fails with a reason, nothing it started is left running,
no cgroup or temporary folder is left behind, and the report is complete.
An attack that worked would return the right gradient and pass; so each
attacker must fail.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import symgrad
import symgrad as sg
from symgrad.homework import Limits, probe_isolation
from symgrad.homework.report import escape
from symgrad.homework.sandbox import SandboxUnavailable

try:
    ISOLATION = probe_isolation()
except SandboxUnavailable as e:  # every test here grades code: the conftest hook skips them
    ISOLATION, WHY = None, str(e)

LIMITS = Limits(wall_seconds=2, cpu_seconds=2, memory_mb=384, output_kb=64, answer_seconds=20)
SPEC = """
[assignment]
title = "Hostile class"

[[problem]]
id = "circuit"
function = "grad"
expression = "(x + y) * z"
points = 2
trials = 2

[[problem]]
id = "square"
kind = "answer"
expression = "x**2"
"""
RIGHT = 'def grad(x, y, z):\n    return {"x": z, "y": z, "z": x + y}\n'
ANSWERS = '[square]\nx = "2*x"\n'
SECRET = "SYMGRAD_HOSTILE_SECRET"
PACKAGE = str(Path(symgrad.__file__).parents[1])
PYTHON = os.environ.get("SYMGRAD_UNPRIVILEGED_PYTHON", sys.executable)
PASS = 'return {"x": z, "y": z, "z": x + y}  # the attack worked'


def attacks(room: Path, marker: str) -> dict[str, tuple[str, str]]:
    """name -> (homework.py, text the attacker's failure must contain)."""
    targets = [str(room / "spec.toml"), str(room / "solution" / "homework.py"),
               str(room / "correct" / "homework.py"), symgrad.__file__]
    return {
        "read_files": (f"""
            def grad(x, y, z):
                for path in {targets!r}:
                    try:
                        open(path).read()
                    except OSError:
                        continue
                    {PASS}
                raise PermissionError("could read none of the grader's files")
        """, "raised PermissionError: could read none"),
        "write_files": (f"""
            def grad(x, y, z):
                for path in {targets!r} + ["/x", "/tmp/x", "/dev/shm/x"]:
                    try:
                        open(path, "a").write("# changed by a classmate")
                    except OSError:
                        continue
                    {PASS}
                raise PermissionError("could write none of the grader's files")
        """, "raised PermissionError: could write none"),
        "import_symgrad": (f"""
            def grad(x, y, z):
                import symgrad
                {PASS}
        """, "raised ModuleNotFoundError: No module named 'symgrad'"),
        "deadline_reset": ("""
            import os, sys, time
            def grad(x, y, z):
                for _ in range(100):  # valid messages of its own problem, every 0.1 s for 10 s
                    os.write(int(sys.argv[1]), b'{"event": "stage", "problem": 0, "stage": "call"}\\n')
                    time.sleep(0.1)
                return {"x": z, "y": z, "z": x + y}
        """, "stopped after 2 s (wall-time limit)"),
        "deadline_restart": ("""
            import os, sys, time
            def grad(x, y, z):
                for _ in range(100):
                    os.write(int(sys.argv[1]), b'{"event": "problem", "problem": 0}\\n')
                    time.sleep(0.1)
                return {"x": z, "y": z, "z": x + y}
        """, "sent the grader a start of problem 0 out of order"),
        "fake_events": ("""
            import os, sys
            def grad(x, y, z):
                os.write(int(sys.argv[1]), b'{"event": "grade", "score": 100}\\n')
                return {"x": z, "y": z, "z": x + y}
        """, "sent the grader an unknown message 'grade'"),
        "fork_bomb": (f"""
            import os
            def grad(x, y, z):
                n = 0
                for _ in range(300):
                    try:
                        pid = os.fork()
                    except OSError:
                        break
                    if pid == 0:
                        os.execv("/bin/sleep", ["sleep", "{marker}"])
                    n += 1
                if n == 300:
                    {PASS}
                raise RuntimeError(f"stopped after {{n}} processes")
        """, "raised RuntimeError: stopped after"),
        "disk_fill": ("""
            def grad(x, y, z):
                written = 0
                try:
                    for i in range(100):
                        with open(f"fill{i}", "wb") as f:
                            f.write(b"x" * (10 << 20))
                        written += 10
                except OSError as e:
                    raise OSError(f"wrote {written} MB: {e}")
                return {"x": z, "y": z, "z": x + y}
        """, "No space left on device"),
        "unix_socket": (f"""
            import socket
            def grad(x, y, z):
                for address in ({str(room / "grader.sock")!r}, "\\0symgrad-hostile-{marker}"):
                    try:
                        socket.socket(socket.AF_UNIX).connect(address)
                    except OSError:
                        continue
                    {PASS}
                raise ConnectionError("reached no UNIX socket")
        """, "raised ConnectionError: reached no UNIX socket"),
        "tcp_socket": (f"""
            import socket
            def grad(x, y, z):
                try:
                    socket.create_connection(("127.0.0.1", PORT), timeout=1)
                except OSError:
                    raise ConnectionError("reached no TCP port")
                {PASS}
        """, "raised ConnectionError: reached no TCP port"),
        "signals": ("""
            import os, signal
            def grad(x, y, z):
                for pid in (GRADER, 1):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        continue
                raise ProcessLookupError("no grader to kill")
        """, "raised ProcessLookupError: no grader to kill"),
        "environment": (f"""
            import os
            def grad(x, y, z):
                for pid in os.listdir("/proc"):
                    try:
                        if b"{SECRET}" in open(f"/proc/{{pid}}/environ", "rb").read():
                            {PASS}
                    except OSError:
                        pass
                raise LookupError("no secret found")
        """, "raised LookupError: no secret found"),
        "terminal_escape": ("""
            def grad(x, y, z):
                raise ValueError("\\x1b[2K\\r\\x1b[32mcorrect  2/2  passed\\x1b[0m\\n\\u202e")
        """, "\\x1b[2K\\r\\x1b[32mcorrect"),
    }


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Grade the hostile class once, as this user (root where the tests run as root)."""
    if ISOLATION is None:
        pytest.skip(f"no sandbox here: {WHY}")
    room = tmp_path_factory.mktemp("class")
    marker = f"{time.time() % 1000:.6f}"
    (room / "spec.toml").write_text(SPEC)
    for name in ("solution", "correct"):
        (room / name).mkdir()
        (room / name / "homework.py").write_text(RIGHT)
        (room / name / "answers.toml").write_text(ANSWERS)
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(room / "grader.sock"))
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0symgrad-hostile-{marker}")
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    for s in (unix, abstract, tcp):
        s.listen()
    cases = attacks(room, marker)
    for name, (source, _) in cases.items():
        (room / name).mkdir()
        text = textwrap.dedent(source).replace("PORT", str(tcp.getsockname()[1]))
        (room / name / "homework.py").write_text(text.replace("GRADER", str(os.getpid())))
        (room / name / "answers.toml").write_text(ANSWERS)
    (room / "symlinks").mkdir()
    (room / "symlinks" / "homework.py").symlink_to(room / "solution" / "homework.py")
    (room / "symlinks" / "answers.toml").symlink_to(room / "solution" / "answers.toml")
    (room / "sparse").mkdir()
    (room / "sparse" / "homework.py").write_text(RIGHT)
    with open(room / "sparse" / "big.bin", "wb") as f:
        f.truncate(2 << 30)  # 2 GB that take no disk here
    (room / "memory").mkdir()
    (room / "memory" / "homework.py").write_text(textwrap.dedent(f"""
        import os, select, time
        def grad(x, y, z):
            read, write = os.pipe()
            children = []
            for _ in range(4):  # 4 x 200 MB: each within the 384 MB per process, not together
                pid = os.fork()
                if pid == 0:
                    held = b"x" * (200 << 20)
                    os.write(write, b"!")
                    time.sleep(20)
                    os._exit(len(held) == 0)
                children.append(pid)
            ready, end = 0, time.monotonic() + 1.5
            while ready < 4 and select.select([read], [], [], max(end - time.monotonic(), 0))[0]:
                ready += len(os.read(read, 4))
            if ready == 4 and all(os.waitpid(pid, os.WNOHANG) == (0, 0) for pid in children):
                {PASS}
            raise MemoryError(f"{{4 - ready}} of the children were killed")
    """))
    names = ["correct", *cases, "symlinks", "sparse", "memory"]
    hashes = {p: p.read_bytes() for p in [room / "spec.toml", room / "solution" / "homework.py",
                                          room / "correct" / "homework.py", Path(symgrad.__file__)]}
    temporary = room / "tmp"
    temporary.mkdir()
    saved = tempfile.tempdir
    tempfile.tempdir = str(temporary)
    os.environ[SECRET] = "1"
    start = time.monotonic()
    try:
        alone = sg.homework.grade(room / "spec.toml", [room / "correct"], limits=LIMITS)
        report = sg.homework.grade(room / "spec.toml", [room / n for n in names], limits=LIMITS, jobs=4)
    finally:
        del os.environ[SECRET]
        tempfile.tempdir = saved
        for s in (unix, abstract, tcp):
            s.close()
    seconds = time.monotonic() - start
    time.sleep(0.3)
    left = {
        "files": {str(p) for p, data in hashes.items() if p.read_bytes() != data},
        "children": children_of(os.getpid()),
        "processes": [p for p in processes() if marker in p],
        "temporary": os.listdir(temporary),
        "cgroups": [c for parent in (ISOLATION.cgroups.parents if ISOLATION.cgroups else ())
                    for c in os.listdir(parent) if c.startswith(f"symgrad-{os.getpid()}-")],
    }
    return report, alone, cases, left, seconds


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return found


def test_the_grader_survives_and_leaves_nothing_behind(hostile):
    report, _, cases, left, seconds = hostile
    assert left == {"files": set(), "children": [], "processes": [], "temporary": [], "cgroups": []}
    assert len(report.submissions) == len(cases) + 4 and report.not_graded == []
    assert not report.partial and all(len(s.problems) == 2 for s in report.submissions)
    assert seconds < 45


def test_the_classmate_is_graded_as_if_alone(hostile):
    report, alone, _, _, _ = hostile
    ours, theirs = report.submission("correct"), alone.submission("correct")
    assert ours.passed and ours.score == theirs.score == 3
    assert [(p.score, p.hints()) for p in ours.problems] == [(p.score, p.hints()) for p in theirs.problems]


def test_every_attack_fails_with_its_reason(hostile):
    report, _, cases, _, _ = hostile
    for name, (_, reason) in cases.items():
        result = report.submission(name).problem("circuit")
        assert not result.passed and result.score == 0, name
        assert reason in escape(result.hints()[0]), (name, result.hints())
        assert result.seconds < LIMITS.wall_seconds + 1.5, (name, result.seconds)
        assert report.submission(name).problem("square").passed, name  # the rest is graded as usual


def test_symbolic_links_and_sparse_files_are_refused(hostile):
    report, _, _, _, _ = hostile
    links = report.submission("symlinks")
    assert links.problem("circuit").reason == "homework.py is a symbolic link: hand in the file itself"
    assert links.problem("square").reason == "answers.toml is a symbolic link: hand in the file itself"
    sparse = report.submission("sparse").problem("circuit")
    assert sparse.reason == "the submission is larger than 16 MB or holds more than 1000 files"


def test_memory_is_counted_per_submission(hostile):
    report, _, _, _, _ = hostile
    if ISOLATION.cgroups is None:
        pytest.skip("no cgroup here: memory is limited per process only")
    result = report.submission("memory").problem("circuit")
    assert not result.passed
    assert "of the children were killed" in result.reason or "was killed" in result.reason


def test_student_text_cannot_forge_report_lines(hostile):
    report, _, _, _, _ = hostile
    text, junit, csv = report.text(), report.junit(), report.csv()
    for form in (text, junit, csv, report.json()):
        assert "\x1b" not in form and "\r" not in form and "\u202e" not in form
    forged = [line for line in text.splitlines() if "correct  2/2  passed" in line]
    assert forged and all(line.startswith("  circuit") for line in forged)
    assert json.loads(report.json())["submissions"][0]["name"] == "correct"


def test_results_are_the_same_at_any_number_of_jobs(tmp_path):
    """-j caps the answer workers too; an answer that cannot be checked fails only itself."""
    spec = SPEC.replace('expression = "x**2"', 'expression = "x**2 + y"')
    answers = {"right": '[square]\nx = "2*x"\ny = "1"\n', "crash": '[square]\nx = "0.5/0.0*x"\ny = "1"\n',
               "wrong": '[square]\nx = "x"\ny = "1"\n'}
    folders = []
    for name, text in answers.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "answers.toml").write_text(text)
        (tmp_path / name / "homework.py").write_text(RIGHT)
        folders.append(tmp_path / name)
    seen = []
    for jobs in (1, 8, 64):
        report = sg.homework.grade(spec, folders, limits=LIMITS, jobs=jobs)
        seen.append([(s.name, [(p.score, p.hints()) for p in s.problems]) for s in report.submissions])
    assert seen[0] == seen[1] == seen[2]
    score, hints = dict(seen[0])["crash"][1]
    assert score == 0.5 and len(hints) == 1 and "0.5" in hints[0] and hints[0].startswith("∂x: ")
    assert dict(seen[0])["right"] == [(2.0, []), (1.0, [])]
    with pytest.raises(sg.SymgradError, match="jobs must be a whole number ≥ 1"):
        sg.homework.grade(spec, folders, jobs=0)


def cli(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(symgrad.__file__).parents[1])}
    return subprocess.Popen([sys.executable, "-m", "symgrad.cli", "check", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**env, **kwargs.pop("env", {})}, **kwargs)


@pytest.mark.parametrize("signals, status", [([signal.SIGTERM], 143),
                                             ([signal.SIGINT, signal.SIGINT, signal.SIGTERM], 130)])
def test_interrupted_grading_stops_cleans_up_and_reports_what_was_graded(tmp_path, signals, status):
    if ISOLATION is None:
        pytest.skip(f"no sandbox here: {WHY}")
    marker = f"{time.time() % 1000:.6f}"
    (tmp_path / "spec.toml").write_text(SPEC)
    folders = []
    for i in range(6):
        folder = tmp_path / f"s{i}"
        folder.mkdir()
        body = RIGHT if i == 0 else (f"import subprocess\ndef grad(x, y, z):\n"
                                     f"    subprocess.run(['sleep', '1.5', '{marker}'])\n"
                                     f"    return {{'x': z, 'y': z, 'z': x + y}}\n")
        (folder / "homework.py").write_text(body)
        (folder / "answers.toml").write_text(ANSWERS)
        folders.append(str(folder))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "out.json"
    proc = cli([str(tmp_path / "spec.toml"), *folders, "-j", "1", "--json", str(out), "--progress",
                "--csv", str(tmp_path / "out.csv"), "--junit", str(tmp_path / "junit.xml")],
               env={"TMPDIR": str(tmp_path / "tmp")})
    assert proc.stderr is not None
    seen = ""
    while "1/6" not in seen:  # the first submission is graded, the second sleeping
        seen += proc.stderr.read(1)
        assert proc.poll() is None, seen
    time.sleep(0.5)
    start = time.monotonic()
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.01)
    _, err = proc.communicate(timeout=20)
    # a signal that comes once the reports are out, as Python exits, may end it by that signal
    assert proc.returncode in (status, -signals[-1]), err
    assert time.monotonic() - start < 5
    data = json.loads(out.read_text())
    assert data["partial"] and 1 <= len(data["submissions"]) < 6
    assert len(data["submissions"]) + len(data["not_graded"]) == 6
    assert data["submissions"][0]["name"] == "s0" and data["submissions"][0]["passed"]
    assert "interrupted" in err
    rows = (tmp_path / "out.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[1] == "s0,2,1,3" and rows[-1] == "s5,,,"
    junit = (tmp_path / "junit.xml").read_text()
    assert junit.count('message="grading was interrupted"') == len(data["not_graded"])
    time.sleep(0.3)
    assert [p for p in processes() if marker in p] == []
    assert os.listdir(tmp_path / "tmp") == []
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out.json")) == []


def test_an_unwritable_output_is_refused_before_grading(tmp_path, capsys):
    from symgrad.cli import main

    (tmp_path / "spec.toml").write_text(SPEC)
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "homework.py").write_text(RIGHT)
    start = time.monotonic()
    code = main(["check", str(tmp_path / "spec.toml"), str(tmp_path / "a"), "--json",
                 str(tmp_path / "no" / "such" / "folder" / "out.json")])
    assert code == 2 and time.monotonic() - start < 5
    err = capsys.readouterr().err
    assert "symgrad: error: --json" in err and "cannot be written: No such file or directory" in err
    assert main(["check", str(tmp_path / "spec.toml"), str(tmp_path / "a"), "--csv", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def _grader_user() -> str | None:
    """``runuser`` where an unprivileged user (``grader``, made if need be) can run
    :data:`PYTHON` with symgrad (this Python, or ``$SYMGRAD_UNPRIVILEGED_PYTHON``, say a
    virtual environment of /usr/bin/python3 where this one lives in root's home); else None."""
    runuser = shutil.which("runuser")
    if os.geteuid() != 0 or runuser is None:
        return None
    try:
        pwd.getpwnam("grader")
    except KeyError:
        if subprocess.run(["useradd", "-m", "grader"], capture_output=True).returncode != 0:
            return None
    probe = subprocess.run([runuser, "-u", "grader", "--", PYTHON, "-c", "import symgrad"],
                           capture_output=True, cwd="/", env={"PYTHONPATH": PACKAGE})
    return runuser if probe.returncode == 0 else None


def test_attacks_fail_when_an_unprivileged_user_grades(tmp_path):
    runuser = _grader_user()
    user = "grader"
    if runuser is None:
        pytest.skip("not root, or this Python cannot be run by an unprivileged user here")
    room = Path(tempfile.mkdtemp(prefix="symgrad-unprivileged-"))  # where the grader user can read
    try:
        room.chmod(0o755)
        (room / "spec.toml").write_text(SPEC)
        cases = attacks(room, "0")
        for name in ("correct", "read_files", "write_files", "signals", "environment", "fork_bomb"):
            (room / name).mkdir()
            body = RIGHT if name == "correct" else textwrap.dedent(cases[name][0])
            (room / name / "homework.py").write_text(body.replace("GRADER", "1"))
            (room / name / "answers.toml").write_text(ANSWERS)
        proc = subprocess.run([runuser, "-u", user, "--", PYTHON, "-m", "symgrad.cli", "check",
                               str(room / "spec.toml"), *(str(p) for p in room.iterdir() if p.is_dir()),
                               "--json", "-"], capture_output=True, text=True, cwd="/", timeout=120,
                              env={"PYTHONPATH": PACKAGE, "PATH": os.environ["PATH"], SECRET: "1"})
    finally:
        shutil.rmtree(room)
    assert proc.returncode == 1, proc.stderr
    data = {s["name"]: s for s in json.loads(proc.stdout)["submissions"]}
    assert data["correct"]["passed"] and len(data) == 6
    for name in ("read_files", "write_files", "signals", "environment", "fork_bomb"):
        assert cases[name][1] in data[name]["problems"][0]["hints"][0], data[name]


def test_a_root_grader_runs_sandboxes_as_nobody(tmp_path):
    """Where the runtime is within nobody's reach, a root grader's sandboxes are uid 65534 on
    the host too; a student's file the grader alone may read (mode 600) is still graded."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("the grader is not root here")
    (tmp_path / "spec.toml").write_text(SPEC)
    cases = attacks(tmp_path, "0")
    for name in ("correct", "read_files", "fork_bomb"):
        (tmp_path / name).mkdir()
        body = RIGHT if name == "correct" else textwrap.dedent(cases[name][0])
        (tmp_path / name / "homework.py").write_text(body)
        (tmp_path / name / "homework.py").chmod(0o600)
        (tmp_path / name / "answers.toml").write_text(ANSWERS)
    names = ("correct", "read_files", "fork_bomb")
    proc = subprocess.run([PYTHON, "-m", "symgrad.cli", "check", str(tmp_path / "spec.toml"),
                           *(str(tmp_path / n) for n in names), "--json", "-"],
                          capture_output=True, text=True, cwd="/", timeout=120,
                          env={"PYTHONPATH": PACKAGE, "PATH": os.environ["PATH"]})
    data = json.loads(proc.stdout)
    if "nobody on the host too" not in data["sandbox"]:
        pytest.skip("this Python is out of nobody's reach (try SYMGRAD_UNPRIVILEGED_PYTHON)")
    results = {s["name"]: s for s in data["submissions"]}
    assert results["correct"]["passed"] and proc.returncode == 1
    for name in ("read_files", "fork_bomb"):
        assert cases[name][1] in results[name]["problems"][0]["hints"][0], results[name]
