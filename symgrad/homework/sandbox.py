"""Running untrusted code: one process per submission and problem, with limits.

Each run starts ``python -I child.py`` (see :mod:`symgrad.homework.child`):

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
CLEAN_ENV_KEYS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


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
    env.update({k: "1" for k in CLEAN_ENV_KEYS})
    return env


@dataclass
class Outcome:
    """What one run gave: the child's messages, the captured output, how it ended."""

    events: list[dict[str, Any]] = field(default_factory=list)
    output: str = ""
    output_bytes: int = 0
    timed_out: bool = False
    output_exceeded: bool = False
    channel_error: str | None = None
    seconds: float = 0.0

    def last(self, event: str) -> dict[str, Any] | None:
        found = [e for e in self.events if e.get("event") == event]
        return found[-1] if found else None


def run(task: dict[str, Any], workdir: Path, limits: Limits, isolation: Isolation) -> Outcome:
    """Run the child with ``task`` in ``workdir`` under ``limits``; never raises for what the child does."""
    read_end, write_end = os.pipe()
    argv = [*isolation.prefix, sys.executable, "-I", str(CHILD), str(write_end),
            json.dumps({"cpu_seconds": limits.cpu_seconds, "memory_mb": limits.memory_mb})]
    outcome = Outcome()
    start = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=workdir, env=clean_env(str(workdir)),
                                pass_fds=(write_end,), start_new_session=True)
    finally:
        os.close(write_end)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(task).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        channel = _read(proc, proc.stdout.fileno(), read_end, start + limits.wall_seconds,
                        limits.output_kb * 1024, outcome)
    finally:
        _kill(proc)
        os.close(read_end)
        if proc.stdout is not None:
            proc.stdout.close()
    outcome.seconds = time.monotonic() - start
    if outcome.channel_error is None:
        for line in channel.splitlines():
            try:
                message = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(message, dict):
                outcome.events.append(message)
    return outcome


def _read(proc: subprocess.Popen, out_fd: int, channel_fd: int, deadline: float, cap: int,
          outcome: Outcome) -> bytes:
    kept = bytearray()
    channel = bytearray()
    sel = selectors.DefaultSelector()
    sel.register(out_fd, selectors.EVENT_READ, "out")
    sel.register(channel_fd, selectors.EVENT_READ, "channel")
    open_fds = 2
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                outcome.timed_out = True
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                data = os.read(key.fd, 1 << 16)
                if not data:
                    sel.unregister(key.fd)
                    open_fds -= 1
                elif key.data == "out":
                    outcome.output_bytes += len(data)
                    if len(kept) < KEPT_OUTPUT_BYTES:
                        kept += data[:KEPT_OUTPUT_BYTES - len(kept)]
                else:
                    channel += data
            if outcome.output_bytes > cap:
                outcome.output_exceeded = True
                break
            if len(channel) > MAX_CHANNEL_BYTES:
                outcome.channel_error = f"sent more than {MAX_CHANNEL_BYTES >> 20} MB of results"
                break
            if _exited(proc) and open_fds and not sel.select(timeout=0.2):
                break  # exited; a leftover process of the student's may hold the pipes open
    finally:
        sel.close()
    outcome.output = kept.decode("utf-8", errors="replace")
    return bytes(channel)


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
