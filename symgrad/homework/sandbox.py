"""Running untrusted code: each submission in a bubblewrap sandbox, with limits.

Each run starts ``python -I child.py`` (see :mod:`symgrad.homework.child`)
under `bubblewrap <https://github.com/containers/bubblewrap>`_ (``bwrap``, the
sandbox Flatpak uses):

- in a fresh mount namespace that shows, read-only, only the Python runtime
  (``sys.prefix``, ``sys.base_prefix``, ``/usr``), NumPy, ``child.py`` and the
  submission's own files; every site-packages folder is hidden except NumPy,
  so neither symgrad, nor the spec, nor a classmate's folder is there;
- in a private tmpfs of :data:`DISK_MB` (its home and working directory, into
  which ``child.py`` copies the submission); the rest is read-only;
- with its own PID, network (no network at all: no TCP, no UNIX sockets of
  the host, abstract or named), IPC, UTS and user namespaces, uid 65534 (and,
  when the grader is root and the runtime is within nobody's reach, uid 65534
  on the host too, through ``setpriv``), no capabilities, no further user
  namespaces, a new session (no terminal), ``--die-with-parent``, and on
  x86-64 a seccomp filter that refuses the system calls a gradient has no
  use for (:data:`DENIED`: ptrace, keyrings, mounts, namespaces, BPF,
  io_uring, kernel modules, ...);
- with a clean environment, one BLAS thread, and limits: CPU time, address
  space and file size (``setrlimit`` in the child); memory and process count
  per submission from a cgroup where the grader may create one (v2 or v1),
  else ``RLIMIT_NPROC`` in the sandbox's user namespace and the grader's
  watch on the memory of the sandbox's processes (:func:`sandbox_memory_mb`,
  every :data:`WATCH_SECONDS`); and the grader's own clock for wall time.

Where bubblewrap is missing or cannot start, :func:`probe_isolation` raises
:class:`SandboxUnavailable` saying what to install; only an explicit
``unsafe=True`` (``--unsafe-no-sandbox``) runs submissions as plain processes.

The child's messages come back as JSON lines on a pipe and are read with
:func:`json.loads` only, checked against the protocol: a line too long, a
message the protocol does not allow at that point, or a problem out of order
stops the run and fails the problem it was on.  Nothing the child sends
extends a deadline: each problem gets ``wall_seconds`` from its start, and a
run never more than ``wall_seconds`` per problem it covers.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
import platform
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SymgradError
from .spec import Limits

CHILD = Path(__file__).with_name("child.py")
MAX_CHANNEL_BYTES = 64 << 20
MAX_LINE_BYTES = 8 << 20
MAX_KEPT_BYTES = 16 << 20
KEPT_OUTPUT_BYTES = 4096
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DISK_MB = 64
MAX_PROCESSES = 32
WATCH_SECONDS = 0.1
SANDBOX_UID = 65534
HOME = "/home/student"
SUBMISSION = "/run/submission"
CHILD_INSIDE = "/run/symgrad/child.py"
INSTALL = ("install bubblewrap (Debian, Ubuntu: `apt-get install bubblewrap`; Fedora: "
           "`dnf install bubblewrap`; Arch: `pacman -S bubblewrap`), or pass --unsafe-no-sandbox "
           "(unsafe=True) to run submissions without isolation, for code you trust")


# x86-64 numbers of the system calls the seccomp filter refuses (EPERM)
DENIED = {
    "ptrace": 101, "syslog": 103, "personality": 135, "pivot_root": 155, "acct": 163, "mount": 165,
    "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "init_module": 175,
    "delete_module": 176, "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
    "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
    "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433,
}


def seccomp_program() -> bytes | None:
    """The seccomp filter (classic BPF) bwrap installs, or None off x86-64.

    Any other architecture's calls, x32 calls and the calls in :data:`DENIED`
    get EPERM; the rest are allowed.
    """
    if platform.machine() not in ("x86_64", "AMD64") or sys.byteorder != "little":
        return None
    load, equal, at_least, give = 0x20, 0x15, 0x35, 0x06
    allow, denied = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EPERM
    numbers = sorted(DENIED.values())
    deny = 5 + len(numbers)  # the index of the last instruction
    program = [(load, 0, 0, 4), (equal, 0, deny - 2, 0xC000003E),  # AUDIT_ARCH_X86_64
               (load, 0, 0, 0), (at_least, deny - 4, 0, 0x40000000)]  # x32
    program += [(equal, deny - (5 + k), 0, n) for k, n in enumerate(numbers)]
    program += [(give, 0, 0, allow), (give, 0, 0, denied)]
    return b"".join(struct.pack("<HBBI", *instruction) for instruction in program)


class SandboxUnavailable(SymgradError):
    """The machine cannot isolate submissions; the message says what is missing."""


@dataclass(frozen=True)
class Cgroups:
    """Where the grader may make a cgroup per run: ``(version, parent folders)``."""

    version: int
    parents: tuple[str, ...]
    _count = itertools.count()

    @staticmethod
    def find(own_file: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> Cgroups | None:
        """Writable parents with memory and pids control, tried once; None when there are none."""
        for found in _cgroup_candidates(own_file, root):
            try:
                made = found.create(64, 8)
            except OSError:
                continue
            found.remove(made)
            return found
        return None

    def create(self, memory_mb: int, processes: int) -> list[str]:
        """A fresh cgroup with these limits; its folders (one per v1 hierarchy)."""
        name = f"symgrad-{os.getpid()}-{next(self._count)}"
        made: list[str] = []
        try:
            for parent in self.parents:
                folder = os.path.join(parent, name)
                os.mkdir(folder)
                made.append(folder)
            memory = str(memory_mb << 20)
            for folder in made:
                files = (("memory.max", memory), ("memory.swap.max", "0"), ("pids.max", str(processes))) \
                    if self.version == 2 else (("memory.limit_in_bytes", memory),
                                               ("memory.memsw.limit_in_bytes", memory),
                                               ("pids.max", str(processes)))
                for file, value in files:
                    path = os.path.join(folder, file)
                    if os.path.exists(path):
                        Path(path).write_text(value)
        except OSError:
            self.remove(made)
            raise
        return made

    def remove(self, made: list[str]) -> None:
        """Kill whatever is left in the cgroup and remove it."""
        for _ in range(50):
            left = False
            for folder in made:
                try:
                    pids = Path(folder, "cgroup.procs").read_text().split()
                except OSError:
                    continue
                for pid in pids:
                    left = True
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            if not left:
                break
            time.sleep(0.02)
        for folder in made:
            for _ in range(20):  # a v1 cgroup may stay busy for a moment after its last process
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)


def _cgroup_candidates(own_file: str = "/proc/self/cgroup", root: str = "/sys/fs/cgroup") -> list[Cgroups]:
    """Where the cgroup file ``own_file`` of this process and the hierarchies mounted at
    ``root`` offer memory and pids control: a v2 hierarchy (at ``root`` or ``root/unified``)
    whose ``cgroup.subtree_control`` enables both, then v1's memory and pids hierarchies."""
    try:
        lines = Path(own_file).read_text().splitlines()
    except OSError:
        return []
    own = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            own[c] = path.lstrip("/")
    found = []
    for mount in (root, os.path.join(root, "unified")):
        parent = os.path.join(mount, own.get("", ""))
        try:
            enabled = Path(parent, "cgroup.subtree_control").read_text().split()
        except OSError:
            continue
        if {"memory", "pids"} <= set(enabled):
            found.append(Cgroups(2, (parent,)))
    if "memory" in own and "pids" in own:
        parents = (os.path.join(root, "memory", own["memory"]), os.path.join(root, "pids", own["pids"]))
        if all(os.path.isdir(p) for p in parents):
            found.append(Cgroups(1, parents))
    return found


@dataclass(frozen=True)
class Isolation:
    """How runs are isolated: bubblewrap with these mounts, or nothing (``unsafe``)."""

    bwrap: str | None = None
    binds: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    masks: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    cgroups: Cgroups | None = None
    user: tuple[str, ...] = ()

    @property
    def unsafe(self) -> bool:
        return self.bwrap is None

    @property
    def note(self) -> str:
        if self.unsafe:
            return ("UNSAFE: no sandbox (--unsafe-no-sandbox): submissions ran as plain processes "
                    "that could read and change the grader's files")
        limits = (f"memory and {MAX_PROCESSES} processes per submission (cgroup v{self.cgroups.version})"
                  if self.cgroups else
                  f"memory per process (rlimits) and per submission (the grader sums its processes' "
                  f"resident memory every {WATCH_SECONDS:g} s), {MAX_PROCESSES} processes (RLIMIT_NPROC)")
        filtered = ", seccomp filter" if seccomp_program() is not None else ""
        return (f"bubblewrap: own file system (read-only runtime, {DISK_MB} MB tmpfs), no network, "
                f"own processes, uid {SANDBOX_UID}{' (nobody on the host too)' if self.user else ''}"
                f"{filtered}; {limits}")

    def argv(self, submission: Path | None, env: dict[str, str], seccomp: int | None = None) -> list[str]:
        """The bwrap command line that runs what follows it inside the sandbox (with the seccomp
        filter read from file descriptor ``seccomp``)."""
        assert self.bwrap is not None
        args = [*self.user, self.bwrap, *(("--seccomp", str(seccomp)) if seccomp is not None else ()),
                "--unshare-all", "--unshare-user", "--disable-userns",
                "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--cap-drop", "ALL",
                "--die-with-parent", "--new-session", "--hostname", "sandbox", "--clearenv"]
        for name, value in env.items():
            args += ["--setenv", name, value]
        for path in self.binds:
            args += ["--ro-bind", path, path]
        for link, target in self.links:
            args += ["--symlink", target, link]
        for path in self.masks:
            args += ["--tmpfs", path]
        for path in self.keep:
            args += ["--ro-bind", path, path]
        for path in self.masks:
            args += ["--remount-ro", path]
        args += ["--proc", "/proc", "--dev", "/dev", "--ro-bind", str(CHILD), CHILD_INSIDE]
        if submission is not None:
            args += ["--ro-bind", str(submission), SUBMISSION]
        args += ["--size", str(DISK_MB << 20), "--perms", "0700", "--tmpfs", HOME,
                 "--remount-ro", "/dev", "--remount-ro", "/", "--chdir", HOME, "--"]
        return args


def probe_isolation(unsafe: bool = False) -> Isolation:
    """The sandbox of this machine, tried once; :class:`SandboxUnavailable` when there is none.

    With ``unsafe=True``, no sandbox: submissions run as plain processes.

    >>> probe_isolation().note  # doctest: +SKIP
    'bubblewrap: own file system (read-only runtime, 64 MB tmpfs), no network, ...'
    """
    if unsafe:
        return Isolation()
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"the grader's sandbox needs Linux (this is {sys.platform}); "
                                 "pass --unsafe-no-sandbox (unsafe=True) to grade code you trust")
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"the grader's sandbox needs bubblewrap (bwrap), which is not on the PATH: "
                                 f"{INSTALL}")
    return _probe(bwrap, sys.executable)


@functools.lru_cache(maxsize=4)
def _probe(bwrap: str, executable: str) -> Isolation:
    isolation = Isolation(bwrap, *_runtime(), cgroups=Cgroups.find())
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv is not None:  # root: run the sandbox as nobody, where it can
        as_nobody = dataclasses.replace(isolation, user=(
            setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--"))
        try:
            return _try(as_nobody, executable)
        except SandboxUnavailable:
            pass  # the runtime is out of nobody's reach (say, in root's home)
    return _try(isolation, executable)


def _try(isolation: Isolation, executable: str) -> Isolation:
    """The isolation, once a sandbox has imported NumPy under it."""
    bwrap = isolation.bwrap
    seccomp = _seccomp_fd()
    argv = [*isolation.argv(None, clean_env(HOME), seccomp), executable, "-I", "-c", "import numpy"]
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=60,
                              pass_fds=() if seccomp is None else (seccomp,))
    except (OSError, subprocess.SubprocessError) as e:
        raise SandboxUnavailable(f"bubblewrap ({bwrap}) cannot start a sandbox here: {e}") from None
    finally:
        if seccomp is not None:
            os.close(seccomp)
    if done.returncode != 0:
        said = done.stdout.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise SandboxUnavailable(
            f"bubblewrap ({bwrap}) cannot start a sandbox here ({said[0][:300]}): it needs user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0, "
            "or an AppArmor profile that allows bwrap), or pass --unsafe-no-sandbox to grade code you trust")
    return isolation


def _seccomp_fd() -> int | None:
    """A pipe's read end holding the seccomp filter, for bwrap's --seccomp; None off x86-64."""
    program = seccomp_program()
    if program is None:
        return None
    read, write = os.pipe()
    try:
        os.write(write, program)  # a few hundred bytes: far less than a pipe holds
    finally:
        os.close(write)
    return read


def _runtime() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[str, ...], tuple[str, ...]]:
    """What the sandbox shows: Python's prefixes and /usr, with every site-packages hidden but NumPy's."""
    import numpy

    binds: list[str] = []
    links: list[tuple[str, str]] = []
    for top in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache"):
        if os.path.islink(top):
            links.append((top, os.readlink(top)))
        elif os.path.exists(top):
            binds.append(top)
    for prefix in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix):
        real = os.path.realpath(prefix)
        if not any(real == b or real.startswith(b + os.sep) for b in binds):
            binds.append(real)
    numpy_dir = os.path.dirname(os.path.realpath(numpy.__file__))
    keep = [numpy_dir] + [p for p in (numpy_dir + ".libs",) if os.path.isdir(p)]
    grader = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))

    def shown(path: str) -> bool:
        return any(path == b or path.startswith(b + os.sep) for b in binds)

    masks: list[str] = []
    for entry in [*sys.path, os.path.dirname(numpy_dir)]:
        real = os.path.realpath(entry) if entry else ""
        if os.path.basename(real) in ("site-packages", "dist-packages") and os.path.isdir(real) \
                and real not in masks and shown(real):
            masks.append(real)
    if shown(grader) and not any(grader.startswith(m + os.sep) for m in masks):
        masks.append(grader)  # symgrad itself, where no site-packages hides it
    return tuple(binds), tuple(links), tuple(masks), tuple(keep)


def clean_env(home: str) -> dict[str, str]:
    """The whole environment of a student's process: nothing of the grader's."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8"}
    env.update({k: "1" for k in THREAD_VARIABLES})
    return env


@dataclass
class Outcome:
    """What one run gave: the child's messages, the captured output, how it ended.

    ``current`` is the index of the problem that was running when the run
    ended and ``done`` the problems it finished; ``stopped`` says why the
    grader stopped it ("timeout", "output", "channel", "protocol",
    "memory", "cancelled"), or is None; ``violation`` describes a message
    against the protocol.
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[int | None, bytes] = field(default_factory=dict)
    seconds: dict[int | None, float] = field(default_factory=dict)
    current: int | None = None
    done: set[int] = field(default_factory=set)
    stopped: str | None = None
    violation: str = ""

    def of(self, problem: int) -> list[dict[str, Any]]:
        """The events of one problem."""
        return [e for e in self.events if e.get("problem") == problem]

    def last(self, event: str, problem: int | None = None) -> dict[str, Any] | None:
        found = [e for e in self.events if e.get("event") == event
                 and (problem is None or e.get("problem") == problem)]
        return found[-1] if found else None

    def output(self, problem: int | None) -> str:
        return self.outputs.get(problem, b"").decode("utf-8", errors="replace")


def run(task: dict[str, Any], workdir: Path, limits: Limits, isolation: Isolation,
        cancel: threading.Event | None = None) -> Outcome:
    """Run the child with ``task`` on the submission copied in ``workdir``; never raises for
    what the child does.

    Each problem gets ``limits.wall_seconds`` from the moment it starts (the
    grader's clock) and may print ``limits.output_kb``; past either, or when
    ``cancel`` is set, the whole run is killed.  In a sandbox without a cgroup,
    so is a run whose processes together hold more than ``limits.memory_mb``
    (:func:`sandbox_memory_mb`, every :data:`WATCH_SECONDS`).
    """
    read_end, write_end = os.pipe()
    child_limits: dict[str, Any] = {"cpu_seconds": limits.cpu_seconds, "memory_mb": limits.memory_mb,
                                    "file_mb": DISK_MB}
    made: list[str] = []
    seccomp = None
    if isolation.unsafe:
        argv, cwd, env = [sys.executable, "-I", str(CHILD)], workdir, clean_env(str(workdir))
    else:
        child_limits.update(source=SUBMISSION, processes=MAX_PROCESSES)
        env = clean_env(HOME)
        seccomp = _seccomp_fd()
        argv = [*isolation.argv(workdir, env, seccomp), sys.executable, "-I", CHILD_INSIDE]
        cwd = workdir.parent
        if isolation.cgroups is not None:
            made = isolation.cgroups.create(limits.memory_mb + DISK_MB + 64, MAX_PROCESSES)
            join = 'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; ' \
                   'shift; exec "$@"'
            argv = ["/bin/sh", "-c", join, "sh", *(os.path.join(f, "cgroup.procs") for f in made),
                    "--", *argv]
    argv += [str(write_end), json.dumps(child_limits)]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                pass_fds=(write_end,) if seccomp is None else (write_end, seccomp),
                                start_new_session=True)
    except BaseException:
        os.close(read_end)
        if isolation.cgroups is not None:
            isolation.cgroups.remove(made)
        raise
    finally:
        os.close(write_end)
        if seccomp is not None:
            os.close(seccomp)
    outcome = Outcome()
    try:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(task).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        trials = [len(problem.get("trials", ())) for problem in task["problems"]]
        # without a cgroup, the grader itself watches the sandbox's total memory
        watch = not isolation.unsafe and isolation.cgroups is None
        _Reader(proc, limits, outcome, trials, cancel, watch).read(proc.stdout.fileno(), read_end)
    finally:
        _kill(proc)
        if isolation.cgroups is not None:
            isolation.cgroups.remove(made)
        os.close(read_end)
        if proc.stdout is not None:
            proc.stdout.close()
    return outcome


def allowed_messages(trials: int) -> int:
    """The most messages a problem of ``trials`` test points sends: its start and end, the
    import, an error, and per test point two calls and a result (and some to spare)."""
    return 8 + 4 * trials


class _Reader:
    """Reads the child's output and messages as they come, enforcing the limits and the protocol.

    What it keeps of a run is bounded whatever the child sends: the output up to
    :data:`KEPT_OUTPUT_BYTES` a problem, one pending line of at most
    :data:`MAX_LINE_BYTES`, and at most :func:`allowed_messages` messages a problem
    (each test point's result once) of :data:`MAX_KEPT_BYTES` in all; past any of
    these, the run stops.
    """

    def __init__(self, proc: subprocess.Popen, limits: Limits, outcome: Outcome, trials: list[int],
                 cancel: threading.Event | None, watch: bool = False):
        self.proc, self.limits, self.outcome, self.trials = proc, limits, outcome, trials
        self.watch = watch
        self.problems = len(trials)
        self.cancel = cancel
        self.counted = [0] * len(trials)
        self.results: set[tuple[int, int]] = set()
        self.kept = 0
        self.started = self.now = time.monotonic()
        self.end = self.started + limits.wall_seconds * max(self.problems, 1)
        self.deadline = min(self.started + limits.wall_seconds, self.end)
        self.printed = 0
        self.channel = bytearray()
        self.received = 0
        self.exited = False
        self.watched = self.now

    def read(self, out_fd: int, channel_fd: int) -> None:
        sel = selectors.DefaultSelector()
        sel.register(out_fd, selectors.EVENT_READ, "out")
        sel.register(channel_fd, selectors.EVENT_READ, "channel")
        open_fds = 2
        try:
            while open_fds and self.outcome.stopped is None:
                self.now = time.monotonic()
                if self.cancel is not None and self.cancel.is_set():
                    self.outcome.stopped = "cancelled"
                    break
                if self.now >= self.deadline:
                    self.outcome.stopped = "timeout"
                    break
                if self.watch and self.now >= self.watched + WATCH_SECONDS:
                    self.watched = self.now
                    if sandbox_memory_mb(self.proc.pid) > self.limits.memory_mb:
                        self.outcome.stopped = "memory"
                        break
                for key, _ in sel.select(timeout=min(self.deadline - self.now, 0.1)):
                    data = os.read(key.fd, 1 << 16)
                    self.now = time.monotonic()
                    if not data:
                        sel.unregister(key.fd)
                        open_fds -= 1
                    elif key.data == "out":
                        self.output(data)
                    else:
                        self.messages(data)
                    if self.outcome.stopped is not None:
                        break
                if self.outcome.stopped is None and _exited(self.proc) and open_fds \
                        and not sel.select(timeout=0.2):
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
        start = len(self.channel)
        self.channel += data
        if b"\n" not in data:
            if len(self.channel) > MAX_LINE_BYTES:
                self.violate(f"a line of more than {MAX_LINE_BYTES >> 20} MB")
            return
        cut = self.channel.rindex(b"\n", start)
        lines = bytes(self.channel[:cut]).split(b"\n")
        del self.channel[:cut + 1]
        for line in lines:
            if self.outcome.stopped is not None:
                return
            if len(line) > MAX_LINE_BYTES:
                self.violate(f"a line of more than {MAX_LINE_BYTES >> 20} MB")
                return
            self.kept += len(line)
            if self.kept > MAX_KEPT_BYTES:
                self.violate(f"more than {MAX_KEPT_BYTES >> 20} MB of results")
                return
            try:
                message = json.loads(line)
            except (ValueError, RecursionError):
                self.violate("a line that is not JSON")
                return
            self.accept(message)

    def accept(self, message: Any) -> None:
        """Check one message against the protocol (see :mod:`symgrad.homework.child`) and keep it."""
        o = self.outcome
        if not isinstance(message, dict):
            return self.violate("a message that is not a JSON object")
        event, problem = message.get("event"), message.get("problem")
        running = o.current is not None and o.current not in o.done
        if event == "problem":
            expected = 0 if o.current is None else o.current + 1
            if type(problem) is not int or problem != expected or problem >= self.problems or running \
                    or self.exited:
                return self.violate(f"a start of problem {str(problem)[:20]} out of order")
            # a new problem: its own wall time (never past the run's) and output allowance
            o.seconds[o.current] = self.now - self.started
            o.current = problem
            self.started, self.printed = self.now, 0
            self.deadline = min(self.now + self.limits.wall_seconds, self.end)
        elif event in ("stage", "error", "trial", "problem_done"):
            if not running or problem != o.current or type(problem) is not int:
                return self.violate(f"a {event} message outside its problem")
            self.counted[problem] += 1
            if self.counted[problem] > allowed_messages(self.trials[problem]):
                return self.violate(f"more messages than {self.trials[problem]} test points call for")
            if event == "trial":
                trial = message.get("trial")
                if not isinstance(trial, int) or isinstance(trial, bool) \
                        or not 0 <= trial < self.trials[problem]:
                    return self.violate("a trial message without its trial")
                if (problem, trial) in self.results:
                    return self.violate(f"a second result for test point {trial + 1}")
                self.results.add((problem, trial))
                _compact(message)
            if event == "problem_done" and isinstance(problem, int):
                o.done.add(problem)
        elif event == "exit":
            if "problem" in message or self.exited:
                return self.violate("an exit message that is not the supervisor's")
            self.exited = True
        else:
            return self.violate(f"an unknown message {str(event)[:40]!r}")
        o.events.append(message)

    def violate(self, what: str) -> None:
        """A message against the protocol: the run stops, the problem it was on fails."""
        o = self.outcome
        o.stopped, o.violation = "protocol", what
        if o.current is not None:
            o.done.discard(o.current)


def _compact(message: dict[str, Any]) -> None:
    """Hold the numbers of every array in a result as a NumPy array (8 bytes a number, not the
    32 of a Python float in a list); data that is not numbers becomes None (it cannot be read
    either way)."""
    stack = [message.get(key) for key in ("returned", "out", "forward_returned")]
    while stack:
        value = stack.pop()
        if not isinstance(value, dict):
            continue
        if value.get("kind") == "array" and isinstance(value.get("data"), list):
            try:
                value["data"] = np.array(value["data"], dtype=float)
            except (ValueError, TypeError, OverflowError, RecursionError):
                value["data"] = None
        items = value.get("items")
        stack.extend(items.values() if isinstance(items, dict) else items if isinstance(items, list) else ())


def sandbox_memory_mb(pid: int) -> float:
    """The memory held by process ``pid`` and every process below it (a sandbox: orphans
    are reparented to its PID namespace's init, which is below it), in MB: the sum of
    each one's proportional set size (its own pages, and its share of those it shares),
    or its resident set size where that cannot be read."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    parent = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            children.setdefault(parent, []).append(int(entry.name))
    kb, stack = 0, [pid]
    while stack:
        process = stack.pop()
        stack.extend(children.get(process, ()))
        for file, key in (("smaps_rollup", b"\nPss:"), ("status", b"\nVmRSS:")):
            try:
                with open(f"/proc/{process}/{file}", "rb") as f:
                    text = f.read()
            except OSError:
                continue
            at = text.find(key)
            if at >= 0:
                kb += int(text[at + len(key):].split()[0])
                break
    return kb / 1024


def _exited(proc: subprocess.Popen) -> bool:
    """Whether the process has ended, without reaping it (so its group id stays ours to kill)."""
    if not hasattr(os, "waitid"):
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill(proc: subprocess.Popen) -> None:
    """Kill the run's whole process group (the child started a session of its own); in a
    sandbox, bwrap's death takes every process of its PID namespace with it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
