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
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import symgrad
import symgrad as sg
from symgrad.homework import Limits, probe_isolation
from symgrad.homework.report import escape
from symgrad.homework.sandbox import SandboxUnavailable

from .conftest import new_children

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
SETPRIV = shutil.which("setpriv")
LIMITS_TABLE = "\n[limits]\nwall_seconds = 2\ncpu_seconds = 2\nmemory_mb = 384\noutput_kb = 64\n"
PASS = 'return {"x": z, "y": z, "z": x + y}  # the attack worked'


def attacks(room: Path, marker: str, package: str = symgrad.__file__) -> dict[str, tuple[str, str]]:
    """name -> (homework.py, text the attacker's failure must contain); ``package``: a file
    of the grader's symgrad."""
    targets = [str(room / "spec.toml"), str(room / "solution" / "homework.py"),
               str(room / "correct" / "homework.py"), package]
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
                for _ in range(20):  # valid messages of its own problem, every 0.5 s for 10 s
                    os.write(int(sys.argv[1]), b'{"event": "stage", "problem": 0, "stage": "call"}\\n')
                    time.sleep(0.5)
                return {"x": z, "y": z, "z": x + y}
        """, "stopped after 2 s (wall-time limit)"),
        "message_flood": ("""
            import os, sys
            def grad(x, y, z):
                line = b'{"event": "stage", "problem": 0, "stage": "call", "function": "grad"}\\n'
                for _ in range(1000):  # 100,000 valid messages for the grader to keep
                    os.write(int(sys.argv[1]), line * 100)
                return {"x": z, "y": z, "z": x + y}
        """, "sent the grader more messages than 2 test points call for"),
        "second_result": ("""
            import os, sys
            def grad(x, y, z):
                os.write(int(sys.argv[1]), b'{"event": "trial", "problem": 0, "trial": 1, "returned": '
                         b'{"kind": "other", "type": "NoneType"}, "out": null}\\n')
                return {"x": z, "y": z, "z": x + y}
        """, "sent the grader a second result for test point 2"),
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


def listeners(room: Path, marker: str) -> list[socket.socket]:
    """A named UNIX socket in the class's folder (anyone may connect to it), an abstract
    one and a TCP port on 127.0.0.1, listening: what the socket attacks try to reach."""
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(room / "grader.sock"))
    (room / "grader.sock").chmod(0o777)  # only the sandbox stands in the way
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind(f"\0symgrad-hostile-{marker}")
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    for s in (unix, abstract, tcp):
        s.listen()
    return [unix, abstract, tcp]


def hostile_class(room: Path, marker: str, port: int, grader: str,
                  package: str = symgrad.__file__) -> tuple[list[str], dict]:
    """Write the spec, the solution, the correct classmate and every attack into ``room``
    (``grader``: the grader's process id, or a word to replace with it); the submissions'
    names and :func:`attacks`."""
    (room / "spec.toml").write_text(SPEC)
    for name in ("solution", "correct"):
        (room / name).mkdir()
        (room / name / "homework.py").write_text(RIGHT)
        (room / name / "answers.toml").write_text(ANSWERS)
    cases = attacks(room, marker, package)
    for name, (source, _) in cases.items():
        (room / name).mkdir()
        text = textwrap.dedent(source).replace("PORT", str(port))
        (room / name / "homework.py").write_text(text.replace("GRADER", grader))
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
    return ["correct", *cases, "symlinks", "sparse", "memory"], cases


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Grade the hostile class once, as this user (root where the tests run as root)."""
    if ISOLATION is None:
        pytest.skip(f"no sandbox here: {WHY}")
    room = tmp_path_factory.mktemp("class")
    marker = f"{time.time() % 1000:.6f}"
    sockets = listeners(room, marker)
    names, cases = hostile_class(room, marker, sockets[2].getsockname()[1], str(os.getpid()))
    hashes = {p: p.read_bytes() for p in [room / "spec.toml", room / "solution" / "homework.py",
                                          room / "correct" / "homework.py", Path(symgrad.__file__)]}
    temporary = room / "tmp"
    temporary.mkdir()
    saved = tempfile.tempdir
    tempfile.tempdir = str(temporary)
    os.environ[SECRET] = "1"
    start = time.monotonic()
    helpers = frozenset(new_children())
    try:
        alone = sg.homework.grade(room / "spec.toml", [room / "correct"], limits=LIMITS)
        report = sg.homework.grade(room / "spec.toml", [room / n for n in names], limits=LIMITS, jobs=4)
    finally:
        del os.environ[SECRET]
        tempfile.tempdir = saved
        for s in sockets:
            s.close()
    seconds = time.monotonic() - start
    time.sleep(0.3)
    left = {
        "files": {str(p) for p, data in hashes.items() if p.read_bytes() != data},
        "children": new_children(helpers),
        "processes": [p for p in processes() if marker in p],
        "temporary": os.listdir(temporary),
        "cgroups": [c for parent in (ISOLATION.cgroups.parents if ISOLATION.cgroups else ())
                    for c in os.listdir(parent) if c.startswith(f"symgrad-{os.getpid()}-")],
    }
    return report, alone, cases, left, seconds


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
    """A cgroup kills what goes past it; without one, the grader's sum of the sandbox's
    memory stops the run."""
    report, _, _, _, _ = hostile
    result = report.submission("memory").problem("circuit")
    assert not result.passed and result.score == 0
    if ISOLATION.cgroups is None:
        assert result.reason.startswith("ran out of memory (limit 384 MB, total across its processes)")
    else:
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
    wrong = RIGHT.replace('"z": x + y', '"z": -(x + y)')
    folders = []
    for i in range(4):  # 12 submissions: more than 8 at once
        for name, text in answers.items():
            folder = tmp_path / (name if i == 0 else f"{name}{i}")
            folder.mkdir()
            (folder / "answers.toml").write_text(text)
            (folder / "homework.py").write_text(wrong if i % 2 else RIGHT)
            folders.append(folder)
    seen = []
    for jobs in (1, 8, 64):
        report = sg.homework.grade(spec, folders, limits=LIMITS, jobs=jobs)
        seen.append([(s.name, [(p.score, p.hints()) for p in s.problems]) for s in report.submissions])
    assert seen[0] == seen[1] == seen[2] and len(seen[0]) == 12
    assert dict(seen[0])["right1"][0][0] < 2  # ∂z has its sign flipped, at any -j
    score, hints = dict(seen[0])["crash"][1]
    # 0.5/0.0 is a named error now, read in the worker like any answer; either way it fails only itself
    assert score == 0.5 and len(hints) == 1
    assert hints[0].startswith(("∂x: could not be checked (", "∂x: cannot read the answer: "))
    assert dict(seen[0])["right"] == [(2.0, []), (1.0, [])]
    with pytest.raises(sg.SymgradError, match="jobs must be a whole number ≥ 1"):
        sg.homework.grade(spec, folders, jobs=0)


def cli(args: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(symgrad.__file__).parents[1])}
    return subprocess.Popen([sys.executable, "-m", "symgrad.cli", "check", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**env, **kwargs.pop("env", {})}, **kwargs)


@pytest.mark.parametrize("signals, status, unprivileged",
                         [([signal.SIGTERM], 143, False),
                          ([signal.SIGINT, signal.SIGINT, signal.SIGTERM], 130, False),
                          ([signal.SIGINT], 130, True)])
def test_interrupted_grading_stops_cleans_up_and_reports_what_was_graded(tmp_path, request, signals, status,
                                                                         unprivileged):
    """Ctrl-C (twice), SIGTERM: as this user, and Ctrl-C with the grader an unprivileged user."""
    if ISOLATION is None:
        pytest.skip(f"no sandbox here: {WHY}")
    runtime = request.getfixturevalue("runtime") if unprivileged else None
    if runtime is not None:  # a class folder the grader user owns
        tmp_path = Path(tempfile.mkdtemp(prefix="symgrad-interrupted-"))
        tmp_path.chmod(0o755)
        request.addfinalizer(lambda: shutil.rmtree(tmp_path))
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
    args = [str(tmp_path / "spec.toml"), *folders, "-j", "1", "--json", str(out), "--progress",
            "--csv", str(tmp_path / "out.csv"), "--junit", str(tmp_path / "junit.xml")]
    if runtime is None:
        proc = cli(args, env={"TMPDIR": str(tmp_path / "tmp")})
    else:
        uid, gid = pwd.getpwnam("grader")[2:4]
        for folder, dirs, files in os.walk(tmp_path):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.lchown(name, uid, gid)
        proc = subprocess.Popen([*as_user(uid, gid), runtime.python, "-m", "symgrad.cli", "check", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
                                env={**runtime.env, "TMPDIR": str(tmp_path / "tmp")})
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
    assert runtime is None or running_as(pwd.getpwnam("grader").pw_uid) == []
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


@dataclass(frozen=True)
class Runtime:
    """A Python that runs the grader: its interpreter, the environment it needs, and the file
    of symgrad it imports (a target of the attacks)."""

    python: str
    env: dict[str, str]
    package: str


def as_user(uid: int, gid: int) -> list[str]:
    """The command prefix that runs a program as this user, with no other group."""
    return [SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]


def _grader_account() -> tuple[int, int] | None:
    """The uid and gid of the unprivileged user ``grader`` (made if need be), or None."""
    try:
        entry = pwd.getpwnam("grader")
    except KeyError:
        if subprocess.run(["useradd", "--create-home", "grader"], capture_output=True).returncode != 0:
            return None
        entry = pwd.getpwnam("grader")
    return entry.pw_uid, entry.pw_gid


def _runs(users: list[tuple[int, int]], python: str, env: dict[str, str], code: str) -> bool:
    """Whether every one of ``users`` can run ``code`` with ``python`` and read its prefixes,
    which a sandbox of theirs shows (running it is not enough: some kernels let anyone run a
    program in a folder only root may read)."""
    code += ("; import os, sys; os.stat(os.path.realpath(sys.executable)); "
             "[os.listdir(os.path.realpath(p)) for p in {sys.prefix, sys.base_prefix}]")
    for uid, gid in users:
        try:
            done = subprocess.run([*as_user(uid, gid), python, "-I" if "PYTHONPATH" not in env else "-s",
                                   "-c", code], capture_output=True, cwd="/", env=env, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return False
        if done.returncode != 0:
            return False
    return True


def _link(source: str, target: str) -> None:
    """A hard link where the file system allows one (instant), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _build_runtime(folder: Path, users: list[tuple[int, int]]) -> Runtime | None:
    """A virtual environment in ``folder`` made from an interpreter of this Python's version
    that ``users`` can run, holding a copy of symgrad and links to the packages it needs; None
    when no such interpreter is installed."""
    import mpmath
    import networkx
    import numpy
    import sympy

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    bases = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
             f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    same = f"sys.exit(sys.version_info[:2] != {sys.version_info[:2]!r})"
    base = next((b for b in dict.fromkeys(bases)
                 if os.path.isfile(b) and _runs(users, b, {}, f"import os, sys; os.stat({b!r}); {same}")),
                None)
    if base is None:
        return None
    subprocess.run([base, "-m", "venv", "--without-pip", str(folder)], check=True, capture_output=True)
    site = folder / "lib" / f"python{version}" / "site-packages"
    for module in (numpy, sympy, mpmath, networkx):
        source = Path(module.__file__).parent
        for package in (source, source.with_name(source.name + ".libs")):
            if package.is_dir():
                shutil.copytree(package, site / package.name, copy_function=_link)
    shutil.copytree(Path(symgrad.__file__).parent, site / "symgrad",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return Runtime(str(folder / "bin" / "python"), {"PATH": os.environ["PATH"]},
                   str(site / "symgrad" / "__init__.py"))


@pytest.fixture(scope="session")
def runtime():
    """A Python with which both the unprivileged user ``grader`` and nobody can run symgrad.

    This one (or ``$SYMGRAD_UNPRIVILEGED_PYTHON``) where they can; else, as where the
    tests' Python lives in root's home, a virtual environment made for the session in a
    folder anyone may read (removed at the end) from an interpreter of the same version
    that anyone may run, with symgrad copied and NumPy, SymPy, mpmath and networkx
    linked in. Root only: the tests switch users.
    """
    if ISOLATION is None:
        pytest.skip(f"no sandbox here: {WHY}")
    account = _grader_account() if os.geteuid() == 0 and SETPRIV is not None else None
    if account is None:
        pytest.skip("the tests do not run as root (with setpriv and useradd): no user to switch to")
    users = [account, (65534, 65534)]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": PACKAGE}
    needed = "import symgrad, numpy, sympy, mpmath, networkx"
    if _runs(users, PYTHON, env, needed):
        yield Runtime(PYTHON, env, symgrad.__file__)
        return
    folder = Path(tempfile.mkdtemp(prefix="symgrad-runtime-"))
    try:
        folder.chmod(0o755)
        built = _build_runtime(folder / "venv", users)
        if built is None or not _runs(users, built.python, built.env, needed):
            pytest.skip(f"no Python {sys.version_info[0]}.{sys.version_info[1]} that an unprivileged "
                        "user may run is installed (set SYMGRAD_UNPRIVILEGED_PYTHON)")
        yield built
    finally:
        shutil.rmtree(folder)


def running_as(uid: int) -> list[str]:
    """The processes of this user still running: "pid (name)" of each. A sandbox's own init,
    killed with it, may be a zombie for a moment, until the host's init reaps it: that one
    runs no more."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                head, state = (entry / "stat").read_text().rsplit(")", 1)
                if state.split()[0] != "Z":
                    found.append(head + ")")
        except (OSError, ValueError, IndexError):
            pass
    return found


def test_attacks_fail_when_an_unprivileged_user_grades(runtime):
    """The whole hostile class, graded by the ``grader`` user with ``symgrad check``: no
    cgroup for it to make, so process counts come from RLIMIT_NPROC and the grader sums the
    memory of each sandbox's processes; everything else as for root. The class's files
    belong to ``grader``, so only the sandbox keeps them safe."""
    uid, gid = pwd.getpwnam("grader")[2:4]
    room = Path(tempfile.mkdtemp(prefix="symgrad-unprivileged-"))  # where the grader user can read
    marker = f"{time.time() % 1000:.6f}"
    sockets: list[socket.socket] = []
    try:
        room.chmod(0o755)
        sockets = listeners(room, marker)
        names, cases = hostile_class(room, marker, sockets[2].getsockname()[1], "GRADER", runtime.package)
        (room / "spec.toml").write_text(SPEC + LIMITS_TABLE)
        (room / "tmp").mkdir()
        for folder, dirs, files in os.walk(room):
            for name in [folder, *(os.path.join(folder, n) for n in dirs + files)]:
                os.lchown(name, uid, gid)
        targets = [room / "spec.toml", room / "solution" / "homework.py", room / "correct" / "homework.py",
                   Path(runtime.package)]
        before = {p: p.read_bytes() for p in targets}
        env = {**runtime.env, SECRET: "1", "TMPDIR": str(room / "tmp")}

        signals = room / "signals" / "homework.py"
        attack = signals.read_text()

        def check(*folders: str) -> subprocess.CompletedProcess:
            # the signal attack gets the grader's process id: the shell's, which setpriv and Python keep
            signals.write_text(attack)
            put = 'sed -i "s/GRADER/$$/" "$0" && chown "$1" "$0" && shift && exec "$@"'
            return subprocess.run(["sh", "-c", put, str(signals), f"{uid}:{gid}", *as_user(uid, gid),
                                   runtime.python, "-m", "symgrad.cli", "check", str(room / "spec.toml"),
                                   *(str(room / f) for f in folders), "--json", "-", "-j", "4"],
                                  capture_output=True, text=True, cwd="/", env=env, timeout=300)

        alone = check("correct")
        start = time.monotonic()
        proc = check(*names)
        seconds = time.monotonic() - start
        time.sleep(0.3)
        left = {"files": [str(p) for p, data in before.items() if p.read_bytes() != data],
                "processes": [p for p in processes() if marker in p] + running_as(uid),
                "temporary": os.listdir(room / "tmp")}
    finally:
        for s in sockets:
            s.close()
        shutil.rmtree(room)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout)
    assert "uid 65534" in data["sandbox"] and "nobody on the host too" not in data["sandbox"]
    assert left == {"files": [], "processes": [], "temporary": []}
    assert not data["partial"] and data["not_graded"] == [] and seconds < 90
    results = {s["name"]: s for s in data["submissions"]}
    assert list(results) == names and all(len(s["problems"]) == 2 for s in results.values())
    theirs = json.loads(alone.stdout)["submissions"][0]
    assert results["correct"]["passed"] and results["correct"]["score"] == theirs["score"] == 3
    assert [(p["score"], p["hints"]) for p in results["correct"]["problems"]] == \
        [(p["score"], p["hints"]) for p in theirs["problems"]]
    for name, (_, reason) in cases.items():
        circuit, square = results[name]["problems"]
        assert circuit["score"] == 0 and reason in escape(circuit["hints"][0]), (name, circuit)
        assert circuit["seconds"] < 3.5 and square["passed"], (name, circuit, square)
    assert results["symlinks"]["problems"][0]["reason"] == \
        "homework.py is a symbolic link: hand in the file itself"
    assert results["sparse"]["problems"][0]["reason"].startswith("the submission is larger than 16 MB")
    memory = results["memory"]["problems"][0]
    assert memory["score"] == 0 and memory["seconds"] < 3.5, memory
    if "cgroup" in data["sandbox"]:
        assert "killed" in memory["reason"]
    else:  # no cgroup: the grader's sum of the sandbox's memory, and RLIMIT_NPROC
        assert "per submission (the grader sums its processes' resident memory" in data["sandbox"]
        assert "32 processes (RLIMIT_NPROC)" in data["sandbox"]
        assert memory["reason"].startswith("ran out of memory (limit 384 MB, total across its processes)")
        forks = re.search(r"stopped after (\d+) processes", results["fork_bomb"]["problems"][0]["hints"][0])
        assert forks is not None and 0 < int(forks[1]) < 32  # the supervisor and bwrap count too


def test_a_root_grader_runs_sandboxes_as_nobody(tmp_path, runtime):
    """From a runtime within nobody's reach, a root grader's sandboxes are uid 65534 on the
    host too; a student's file the grader alone may read (mode 600) is still graded."""
    (tmp_path / "spec.toml").write_text(SPEC + LIMITS_TABLE)
    names = ("correct", "read_files", "write_files", "environment", "fork_bomb")
    cases = attacks(tmp_path, "0", runtime.package)
    for name in names:
        (tmp_path / name).mkdir()
        body = RIGHT if name == "correct" else textwrap.dedent(cases[name][0])
        (tmp_path / name / "homework.py").write_text(body)
        (tmp_path / name / "homework.py").chmod(0o600)
        (tmp_path / name / "answers.toml").write_text(ANSWERS)
    proc = subprocess.run([runtime.python, "-m", "symgrad.cli", "check", str(tmp_path / "spec.toml"),
                           *(str(tmp_path / n) for n in names), "--json", "-"],
                          capture_output=True, text=True, cwd="/", env={**runtime.env, SECRET: "1"},
                          timeout=300)
    data = json.loads(proc.stdout)
    assert "nobody on the host too" in data["sandbox"], data["sandbox"]
    results = {s["name"]: s for s in data["submissions"]}
    assert results["correct"]["passed"] and proc.returncode == 1
    for name in names[1:]:
        assert cases[name][1] in results[name]["problems"][0]["hints"][0], results[name]


MEMORY = r'''
import json, sys
from pathlib import Path
import symgrad as sg
from symgrad.homework import Limits

room, jobs = Path(sys.argv[1]), int(sys.argv[2])
def peak():
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) >> 10
before = peak()
report = sg.homework.grade(room / "spec.toml", sorted(p for p in room.iterdir() if p.is_dir()), jobs=jobs,
                           limits=Limits(wall_seconds=20, cpu_seconds=10, memory_mb=384, answer_seconds=60))
results = {s.name: [(p.score, p.reason) for p in s.problems] for s in report.submissions}
print(json.dumps({"before": before, "peak": peak(), "results": results}))
'''


def test_the_graders_memory_stays_bounded_at_64_jobs(tmp_path):
    """64 submissions at once, half of them flooding the grader with 40,000 valid messages
    each (before each run kept only what the protocol allows, this took the grader past
    2.5 GB), with an answer problem each: the grader's own peak memory grows by less than
    150 MB while it grades, and every flood fails alone."""
    if ISOLATION is None:
        pytest.skip(f"no sandbox here: {WHY}")
    (tmp_path / "spec.toml").write_text(SPEC)
    flood = textwrap.dedent("""
        import os, sys
        def grad(x, y, z):
            line = b'{"event": "stage", "problem": 0, "stage": "call", "function": "grad", "trial": 0}\\n'
            for _ in range(40):
                os.write(int(sys.argv[1]), line * 1000)
            return {"x": z, "y": z, "z": x + y}
    """)
    for i in range(64):
        (tmp_path / f"s{i:02}").mkdir()
        (tmp_path / f"s{i:02}" / "homework.py").write_text(flood if i % 2 else RIGHT)
        (tmp_path / f"s{i:02}" / "answers.toml").write_text(ANSWERS)
    proc = subprocess.run([sys.executable, "-c", MEMORY, str(tmp_path), "64"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": PACKAGE})
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["peak"] - data["before"] < 150, data["peak"]
    for name, (circuit, square) in data["results"].items():
        assert square == [1.0, None], name
        if int(name[1:]) % 2:
            assert circuit[0] == 0 and "more messages than 2 test points call for" in circuit[1], name
        else:
            assert circuit == [2.0, None], name
