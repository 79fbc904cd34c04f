"""Runs a student's functions at the test points, inside the sandbox.

Started by :mod:`symgrad.homework.sandbox` as ``python -I child.py FD LIMITS``
in its working directory, with the task (JSON) on stdin: a list of problems,
each naming the file, the function(s) and the test points (and ``quiet``: what
the student's code prints goes to /dev/null, for a problem run again after it
printed too much).  In the sandbox, LIMITS names a read-only ``source`` folder:
the submission, copied into the working directory (a private tmpfs) before any
of the student's code runs.  This file imports nothing from symgrad (only the
standard library, and NumPy when the inputs are arrays), so the student's
process never needs symgrad.

The process forks: the parent stays a small supervisor that waits for the
student's process and reports how it ended (exit status, signal, CPU time);
the child sets its resource limits, then for each problem in turn gives
itself a fresh CPU-time budget, imports the student's file (once per file)
and calls the student's functions.  An exception fails that problem only;
a run that is killed (a limit, ``os._exit``) ends there, and the grader
starts a new run for the problems after it.  Everything goes back to the
grader as JSON lines on file descriptor FD, tagged with the problem's index:

    {"event": "problem", "problem": 0}                 problem 0 starts
    {"event": "stage", "problem": 0, "stage": "import", "file": "homework.py"}
    {"event": "stage", "problem": 0, "stage": "call", "function": "grad", "trial": 0}
    {"event": "error", "problem": 0, "kind": "exception" | "memory" | "exit" | "missing",
     "message": ..., "file": ..., "line": ..., "function": ...}
    {"event": "trial", "problem": 0, "trial": 0, "returned": VALUE, "out": VALUE,
     "mutated": ["X"], "mutated_in": "forward", "mutated_dout": true}   (the last three if so)
    {"event": "problem_done", "problem": 0}
    {"event": "exit", "status": 0, "signal": null, "cpu": 0.05, "maxrss_kb": 20000}

A VALUE is ``{"kind": "scalar", "data": 1.5}``, ``{"kind": "array", "dtype":
"float64", "shape": [2, 3], "data": [...]}``, ``{"kind": "dict" | "tuple" |
"list", "items": ...}`` or ``{"kind": "other", "type": "NoneType"}``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import traceback
from typing import Any

MAX_ELEMENTS = 100_000
MAX_ITEMS = 100
HERE = os.getcwd()


def main() -> None:
    fd = int(sys.argv[1])
    limits = json.loads(sys.argv[2])
    task = json.loads(sys.stdin.read())
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    if limits.get("source"):
        import shutil

        shutil.copytree(limits["source"], HERE, dirs_exist_ok=True, copy_function=shutil.copyfile)
    channel = Channel(fd)
    pid = os.fork()
    if pid == 0:
        try:
            run(task, limits, channel)
        except BaseException as e:  # noqa: B036 - e.g. a returned value that cannot be read
            channel.send({"event": "error", "kind": "exception",
                          "message": f"{type(e).__name__} while reading the returned values"})
        finally:
            os._exit(0)
    _, status, usage = os.wait4(pid, 0)
    channel.send({"event": "exit",
                      "status": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                      "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                      "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss})
    os._exit(0)


class Channel:
    """JSON lines to the grader, tagged with the problem being run."""

    def __init__(self, fd: int):
        self.fd = fd
        self.problem: int | None = None

    def send(self, message: dict[str, Any]) -> None:
        if self.problem is not None:
            message = {**message, "problem": self.problem}
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


def set_limits(limits: dict[str, Any], problems: int) -> None:
    """Memory, file-size and process-count limits, and a CPU-time ceiling for all the problems."""
    import resource

    memory = int(limits["memory_mb"]) << 20
    file = int(limits.get("file_mb", 64)) << 20
    ceiling = math.ceil(cpu_used() + problems * (limits["cpu_seconds"] + 1)) + 1
    chosen = [(resource.RLIMIT_CPU, (ceiling, ceiling)), (resource.RLIMIT_AS, (memory, memory)),
              (resource.RLIMIT_FSIZE, (file, file)), (resource.RLIMIT_CORE, (0, 0))]
    if limits.get("processes"):  # in the sandbox's own user namespace: counts this run only
        chosen.append((resource.RLIMIT_NPROC, (limits["processes"], limits["processes"])))
    for kind, value in chosen:
        try:
            resource.setrlimit(kind, value)
        except (ValueError, OSError):  # a platform that does not enforce this one
            pass


def cpu_budget(seconds: float) -> None:
    """SIGXCPU once this problem has used ``seconds`` more CPU time."""
    import resource

    try:
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        soft = math.ceil(cpu_used() + seconds)
        resource.setrlimit(resource.RLIMIT_CPU, (soft if hard < 0 else min(soft, hard), hard))
    except (ValueError, OSError):
        pass


def cpu_used() -> float:
    t = os.times()
    return t.user + t.system


def run(task: dict[str, Any], limits: dict[str, Any], channel: Channel) -> None:
    set_limits(limits, len(task["problems"]))
    sys.dont_write_bytecode = True
    sys.path.insert(0, HERE)
    modules: dict[str, Any] = {}
    for k, problem in enumerate(task["problems"]):
        cpu_budget(limits["cpu_seconds"])
        channel.problem = k
        channel.send({"event": "problem"})
        run_problem(problem, modules, channel)
        flush()
        channel.send({"event": "problem_done"})


def run_problem(task: dict[str, Any], modules: dict[str, Any], channel: Channel) -> None:
    if task.get("quiet"):  # run again after printing too much: what it prints goes nowhere
        flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    points = [{n: decode(v) for n, v in t.items()} for t in task["trials"]]
    douts = [decode(d) for d in task.get("douts", [])]
    channel.send({"event": "stage", "stage": "import", "file": task["file"]})
    if task["file"] not in modules:
        try:
            modules[task["file"]] = load(task["file"])
        except BaseException as e:  # noqa: B036 - a student's SystemExit is a result too
            modules[task["file"]] = describe(e)
    module = modules[task["file"]]
    if isinstance(module, dict):  # the import failed
        channel.send({"event": "error", "stage": "import", **module})
        return
    wanted = [task["function"]] if task["style"] == "grad" else [task["forward"], task["backward"]]
    missing = [f for f in wanted if not callable(getattr(module, f, None))]
    if missing:
        channel.send({"event": "error", "stage": "import", "kind": "missing",
                      "message": f"{task['file']} defines no function {missing[0]}()"})
        return
    for i, point in enumerate(points):
        given = {n: copy(v) for n, v in point.items()}
        message: dict[str, Any] = {}
        try:
            if task["style"] == "grad":
                channel.send({"event": "stage", "stage": "call", "function": task["function"], "trial": i})
                returned = getattr(module, task["function"])(**given)
                message.update(returned=encode(returned), out=None)
                note_mutation(message, task["function"], given, point)
            else:
                channel.send({"event": "stage", "stage": "call", "function": task["forward"], "trial": i})
                result = getattr(module, task["forward"])(**given)
                note_mutation(message, task["forward"], given, point)
                if not isinstance(result, (tuple, list)) or len(result) != 2:
                    message.update(forward_returned=encode(result))
                else:
                    out, cache = result
                    dout = copy(douts[i])
                    channel.send({"event": "stage", "stage": "call", "function": task["backward"],
                                  "trial": i})
                    returned = getattr(module, task["backward"])(dout, cache)
                    message.update(returned=encode(returned), out=encode(out))
                    note_mutation(message, task["backward"], given, point)
                    if changed(dout, douts[i]):
                        message["mutated_dout"] = True
        except BaseException as e:  # noqa: B036
            channel.send({"event": "error", "stage": "call", "trial": i, **describe(e)})
            return
        channel.send({"event": "trial", "trial": i, **message})


def note_mutation(message: dict[str, Any], function: str, given: dict[str, Any],
                  original: dict[str, Any]) -> None:
    """Record the inputs ``function`` changed in place (the first function that did)."""
    names = [n for n in original if changed(given[n], original[n])]
    if names and "mutated" not in message:
        message.update(mutated=names, mutated_in=function)


def load(filename: str) -> Any:
    name = os.path.splitext(os.path.basename(filename))[0]
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, filename))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {filename}")
    module = importlib.util.module_from_spec(spec)
    if name not in sys.modules:  # a student's json.py must not replace the json this file uses
        sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def describe(e: BaseException) -> dict[str, Any]:
    """What went wrong, in one line, pointing at the student's own line of code."""
    flush()
    if isinstance(e, SystemExit):
        return {"kind": "exit", "message": f"called sys.exit({e.code!r})"}
    kind = "memory" if isinstance(e, MemoryError) else "exception"
    text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    here = HERE + os.sep
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith(here)]
    if not frames:
        return {"kind": kind, "message": text[:500]}
    f = frames[-1]
    return {"kind": kind, "message": text[:500], "file": f.filename[len(here):], "line": f.lineno,
            "function": f.name}


def decode(v: dict[str, Any]) -> Any:
    if v["kind"] == "scalar":
        return int(v["data"]) if v["dtype"].startswith("int") else float(v["data"])
    import numpy as np

    return np.array(v["data"], dtype=v["dtype"]).reshape(v["shape"])


def copy(v: Any) -> Any:
    return v.copy() if hasattr(v, "copy") else v


def changed(given: Any, original: Any) -> bool:
    np = sys.modules.get("numpy")
    if np is None or not isinstance(original, np.ndarray):
        return False
    if not isinstance(given, np.ndarray) or given.shape != original.shape:
        return True
    return not bool(np.array_equal(given, original, equal_nan=True))


def encode(v: Any, depth: int = 0) -> dict[str, Any]:
    """A returned value as JSON; containers one level deep, numbers and arrays as data."""
    np = sys.modules.get("numpy")
    if isinstance(v, bool) or v is None:
        return {"kind": "other", "type": type(v).__name__}
    if isinstance(v, (int, float)):
        return {"kind": "scalar", "data": float(v)}
    if np is not None and isinstance(v, np.generic) and v.dtype.kind in "iuf":
        return {"kind": "scalar", "data": float(v)}
    if np is not None and isinstance(v, np.ndarray):
        if v.dtype.kind not in "iuf":
            return {"kind": "other", "type": f"an array of {v.dtype}"}
        if v.size > MAX_ELEMENTS:
            return {"kind": "other", "type": f"an array of {v.size} elements"}
        return {"kind": "array", "dtype": str(v.dtype), "shape": list(v.shape),
                "data": v.astype(float).ravel().tolist()}
    if isinstance(v, dict) and depth == 0:
        items = list(v.items())[:MAX_ITEMS]
        return {"kind": "dict", "items": {str(k): encode(x, 1) for k, x in items}}
    if isinstance(v, (list, tuple)):
        if depth == 0:
            return {"kind": "list" if isinstance(v, list) else "tuple",
                    "items": [encode(x, 1) for x in v[:MAX_ITEMS]], "length": len(v)}
        return {"kind": "list", "type": type(v).__name__}
    return {"kind": "other", "type": type(v).__name__}


if __name__ == "__main__":
    main()
