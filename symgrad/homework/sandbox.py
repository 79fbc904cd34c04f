"""Running untrusted code: a process of its own for each submission, with limits.

The sandbox needs a POSIX system (Linux or macOS).  Each run starts
``python -I child.py`` (see :mod:`symgrad.homework.child`):

- in a temporary copy of the submission, which is also its home directory;
- with a clean environment: none of the grader's variables, one BLAS thread;
- with CPU-time, memory and file-size limits (``setrlimit`` in the child) and a
  wall-time limit (the grader kills the whole process group);
- where the platform allows it (Linux, ``unshare`` permitted), in its own
  network namespace (no network at all) and its own PID namespace with a
  fresh ``/proc`` (the grader's process and environment are not visible, and
  every process the student starts dies with the run).  Elsewhere the runs
  go on without them, and :attr:`Isolation.note` says so;
- printing is read as it comes and capped: a run that prints more than the
  limit is stopped.

One run grades all of a submission's code problems in turn, each with its
own wall-time, CPU-time and output allowance; when a run is stopped, the
grader starts a new one for the problems that did not get their turn.

The child's answers come back as JSON lines on a pipe and are read with
:func:`json.loads` only; nothing the student's process sends is unpickled or
evaluated.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .spec import Limits

CHILD = Path(__file__).with_name("child.py")
MAX_CHANNEL_BYTES = 64 << 20
KEPT_OUTPUT_BYTES = 4096
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class Isolation:
    """How runs are isolated on this machine: the command prefix, and what it gives."""

    prefix: tuple[str, ...] = ()
    network: bool = False
    processes: bool = False

    @property
    def note(self) -> str:
        if self.network and self.processes:
            return "no network, own process namespace (unshare)"
        if self.network:
            return "no network (unshare); the grader's processes are visible to submissions"
        return ("not isolated from the network or the grader's processes: unshare is not "
                "available or not permitted here")


def probe_isolation() -> Isolation:
    """The strongest isolation this machine allows, found by trying it once.

    >>> probe_isolation().note  # doctest: +SKIP
    'no network, own process namespace (unshare)'
    """
    unshare = shutil.which("unshare")
    if not sys.platform.startswith("linux") or unshare is None:
        return Isolation()
    full = ("--net", "--pid", "--fork", "--mount-proc", "--kill-child")
    user = ("--user", "--map-root-user")
    for flags, processes in ((full, True), (user + full, True), (("--net",), False),
                             (user + ("--net",), False)):
        prefix = (unshare, *flags)
        try:
            done = subprocess.run([*prefix, sys.executable, "-I", "-c", "pass"], env=clean_env("/"),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=20)
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return Isolation(prefix, network=True, processes=processes)
    return Isolation()


def clean_env(home: str) -> dict[str, str]:
    """The whole environment of a student's process: nothing of the grader's."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8"}
    env.update({k: "1" for k in THREAD_VARIABLES})
    return env


@dataclass
class Outcome:
    """What one run gave: the child's messages, the captured output, how it ended.

    ``current`` is the index of the problem that was running when the run
    ended; ``stopped`` says why the grader stopped it ("timeout", "output",
    "channel"), or is None.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[int | None, bytes] = field(default_factory=dict)
    seconds: dict[int | None, float] = field(default_factory=dict)
    current: int | None = None
    stopped: str | None = None

    def of(self, problem: int) -> list[dict[str, Any]]:
        """The events of one problem."""
        return [e for e in self.events if e.get("problem") == problem]

    def last(self, event: str, problem: int | None = None) -> dict[str, Any] | None:
        found = [e for e in self.events if e.get("event") == event
                 and (problem is None or e.get("problem") == problem)]
        return found[-1] if found else None

    def output(self, problem: int | None) -> str:
        return self.outputs.get(problem, b"").decode("utf-8", errors="replace")


def run(task: dict[str, Any], workdir: Path, limits: Limits, isolation: Isolation) -> Outcome:
    """Run the child with ``task`` in ``workdir``; never raises for what the child does.

    Each problem gets ``limits.wall_seconds`` from the moment it starts and
    may print ``limits.output_kb``; past either, the whole run is killed.
    """
    read_end, write_end = os.pipe()
    argv = [*isolation.prefix, sys.executable, "-I", str(CHILD), str(write_end),
            json.dumps({"cpu_seconds": limits.cpu_seconds, "memory_mb": limits.memory_mb})]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=workdir, env=clean_env(str(workdir)),
                                pass_fds=(write_end,), start_new_session=True)
    finally:
        os.close(write_end)
    outcome = Outcome()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(task).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        _Reader(proc, limits, outcome).read(proc.stdout.fileno(), read_end)
    finally:
        _kill(proc)
        os.close(read_end)
        if proc.stdout is not None:
            proc.stdout.close()
    return outcome


class _Reader:
    """Reads the child's output and messages as they come, enforcing the per-problem limits."""

    def __init__(self, proc: subprocess.Popen, limits: Limits, outcome: Outcome):
        self.proc, self.limits, self.outcome = proc, limits, outcome
        self.started = self.now = time.monotonic()
        self.deadline = self.started + limits.wall_seconds
        self.printed = 0
        self.channel = bytearray()
        self.received = 0

    def read(self, out_fd: int, channel_fd: int) -> None:
        sel = selectors.DefaultSelector()
        sel.register(out_fd, selectors.EVENT_READ, "out")
        sel.register(channel_fd, selectors.EVENT_READ, "channel")
        open_fds = 2
        try:
            while open_fds and self.outcome.stopped is None:
                self.now = time.monotonic()
                if self.now >= self.deadline:
                    self.outcome.stopped = "timeout"
                    break
                for key, _ in sel.select(timeout=min(self.deadline - self.now, 0.5)):
                    data = os.read(key.fd, 1 << 16)
                    self.now = time.monotonic()
                    if not data:
                        sel.unregister(key.fd)
                        open_fds -= 1
                    elif key.data == "out":
                        self.output(data)
                    else:
                        self.messages(data)
                if _exited(self.proc) and open_fds and not sel.select(timeout=0.2):
                    break  # exited; a leftover process of the student's may hold the pipes open
        finally:
            sel.close()
        self.outcome.seconds[self.outcome.current] = self.now - self.started

    def output(self, data: bytes) -> None:
        self.printed += len(data)
        kept = self.outcome.outputs.setdefault(self.outcome.current, b"")
        if len(kept) < KEPT_OUTPUT_BYTES:
            self.outcome.outputs[self.outcome.current] = kept + data[:KEPT_OUTPUT_BYTES - len(kept)]
        if self.printed > self.limits.output_kb * 1024:
            self.outcome.stopped = "output"

    def messages(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > MAX_CHANNEL_BYTES:
            self.outcome.stopped = "channel"
            return
        self.channel += data
        *lines, rest = self.channel.split(b"\n")
        self.channel = bytearray(rest)
        for line in lines:
            try:
                message = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if not isinstance(message, dict):
                continue
            self.outcome.events.append(message)
            if message.get("event") == "problem" and isinstance(message.get("problem"), int):
                # a new problem: its own wall time and output allowance
                self.outcome.seconds[self.outcome.current] = self.now - self.started
                self.outcome.current = message["problem"]
                self.started, self.printed = self.now, 0
                self.deadline = self.now + self.limits.wall_seconds


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the process has ended, without reaping it (so its group id stays ours to kill)."""
    if not hasattr(os, "waitid"):
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill(proc: subprocess.Popen) -> None:
    """Kill the run's whole process group (the child started a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
