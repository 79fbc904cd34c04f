"""Grading: every submission, every problem, at the same random test points.

:func:`grade` draws each problem's test points once, computes the reference
there (:func:`~symgrad.homework.reference.reference_gradients`), then grades
the submissions in parallel threads (at most ``jobs`` at a time): code
problems run in the sandbox (:mod:`symgrad.homework.sandbox`), all of a
submission's problems in one run; answer problems go to worker processes (at
most ``jobs`` of them, and no more than the cores).  Each submission is first
copied, regular files and folders only (no symbolic links, devices or pipes)
and within a size, into a temporary folder that the sandbox shows read-only.
Whatever one submission does, the others are graded; Ctrl-C (KeyboardInterrupt)
stops every run and returns the report of the submissions finished, marked
partial.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..interpret import backprop
from ..tables import expression_text
from .answers import AnswerPool, agreed
from .diagnose import diagnose
from .misconceptions import Misconception, for_problem, worst
from .reference import Codes, Reference, point_text, reference_gradients, witness
from .report import Check, ClassReport, ProblemResult, ProgressBar, SubmissionResult
from .sandbox import KEPT_OUTPUT_BYTES, MAX_CHANNEL_BYTES, Isolation, Outcome, probe_isolation, run
from .spec import Limits, Problem, Spec, SpecError, load_spec, tomllib

Progress = Callable[[int, int, str], None]
MAX_ANSWERS_BYTES = 1 << 20
MAX_SUBMISSION_BYTES = 16 << 20
MAX_SUBMISSION_FILES = 1000


@dataclass
class Prepared:
    """A problem's test points and everything a correct submission returns there.

    ``spec_problem`` says why the problem cannot be graded (its reference cannot be
    evaluated, or finite differences do not confirm it); then ``refs`` is empty.
    """

    problem: Problem
    points: list[dict[str, np.ndarray]]
    douts: list[np.ndarray] | None
    refs: list[Reference]
    alternatives: list[tuple[str, list[Reference]]]
    where: list[str]
    spec_problem: str | None = None
    misconceptions: list[Misconception] = field(default_factory=list)
    gates: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def want(self, name: str) -> list[np.ndarray]:
        return [r.grads[name] for r in self.refs]

    def others(self, name: str) -> dict[str, list[np.ndarray]]:
        return {n: self.want(n) for n in self.refs[0].grads if n != name}

    def alternatives_for(self, name: str) -> list[tuple[str, list[np.ndarray]]]:
        return [(hint, [r.grads[name] for r in refs]) for hint, refs in self.alternatives]


def prepare(problem: Problem, seed: int) -> Prepared:
    """Draw the problem's test points, compute the references there and have them witnessed.

    Each reference is confirmed by :func:`symgrad.check_grad` (the witness); a
    reference that cannot be computed or confirmed makes the problem a spec
    problem, graded for nobody.
    """
    points = problem.sample(seed)
    layer = problem.kind == "code" and problem.style == "layer"
    douts = problem.sample_douts(seed) if layer else None
    upstream: list[np.ndarray | None] = list(douts) if douts else [None] * len(points)
    where = [", ".join(f"{n}={float(v):.4g}" for n, v in p.items()) if all(np.ndim(v) == 0
             for v in p.values()) else f"test point {i + 1}" for i, p in enumerate(points)]
    codes: Codes = {}  # each graph compiled once for this plan
    try:
        refs = [reference_gradients(problem, p, d, codes=codes) for p, d in zip(points, upstream)]
    except SpecError as e:
        return Prepared(problem, points, douts, [], [], where, spec_problem=str(e))
    for i, (p, d, ref) in enumerate(zip(points, upstream, refs)):
        why = witness(problem, p, ref, d, codes)
        if why is not None:
            return Prepared(problem, points, douts, [], [], where, spec_problem=(
                f"problem {problem.id!r}: the reference failed its check at test point {i + 1} "
                f"({point_text(p)}): {why}"))
    alternatives = []
    try:
        if problem.unregularized is not None:
            data = [reference_gradients(problem, p, d, graph=problem.unregularized, codes=codes)
                    for p, d in zip(points, upstream)]
            alternatives.append((f"missing the gradient of the regularization term {problem.regularization}",
                                 data))
            if problem.batch is not None:
                alternatives += _batch_alternatives(problem.batch, refs, data)
        if layer:
            alternatives.append(("ignores dout: multiply by the upstream gradient",
                                 [reference_gradients(problem, p, np.ones(problem.output_shape), codes=codes)
                                  for p in points]))
    except SpecError:
        pass  # a diagnosis the less
    return Prepared(problem, points, douts, refs, alternatives, where,
                    misconceptions=for_problem(problem, points, douts),
                    gates=_gate_gradients(problem, points, douts))


def _gate_gradients(problem: Problem, points: list[dict[str, np.ndarray]],
                    douts: list[np.ndarray] | None) -> dict[str, list[np.ndarray]]:
    """``{gate: its gradient at each test point}`` for a problem credited per gate."""
    if not problem.gates:
        return {}
    traces = [backprop(problem.graph, p, 1.0 if douts is None else douts[i]) for i, p in enumerate(points)]
    return {n: [np.asarray(t.node_grads[n], dtype=float) for t in traces] for n in problem.gates}


def _batch_alternatives(batch: tuple[str, int], refs: list[Reference],
                        data: list[Reference]) -> list[tuple[str, list[Reference]]]:
    """The data term (all but the regularization) summed where it is averaged, and the reverse."""
    dim, n = batch

    def scaled(c: float) -> list[Reference]:
        return [Reference(r.value, {k: c * d.grads[k] + (r.grads[k] - d.grads[k]) for k in r.grads})
                for r, d in zip(refs, data)]

    return [(f"the data term is {n} times the right value ({dim} = {n}, the batch size): "
             "a sum where the mean is taken?", scaled(n)),
            (f"the data term is 1/{n} of the right value ({dim} = {n}, the batch size): "
             "a mean where the sum is taken?", scaled(1 / n))]


def grade(spec: Spec | str | Path, submissions: Iterable[str | Path], *, jobs: int | None = None,
          seed: int | None = None, limits: Limits | None = None,
          progress: Progress | bool = False, isolation: Isolation | None = None,
          unsafe_no_sandbox: bool = False) -> ClassReport:
    """Grade every submission against the spec.

    Parameters
    ----------
    spec:
        A :class:`Spec`, or the path of (or TOML text of) an assignment spec.
    submissions:
        Paths of submissions: each a folder, or a single ``.py`` or answers ``.toml`` file.
    jobs:
        How many submissions are graded at the same time, and the most answer
        workers (default: the number of cores).
    seed:
        The seed of the random test points (default: the spec's).
    limits:
        The limits of each run (default: the spec's).
    progress:
        True for a progress bar on stderr, or a callable ``(done, total, name)``.
    isolation:
        How runs are isolated (default: :func:`~symgrad.homework.sandbox.probe_isolation`,
        which raises :class:`~symgrad.homework.sandbox.SandboxUnavailable` when this
        machine cannot isolate submissions and the spec has code problems).
    unsafe_no_sandbox:
        Run code problems as plain processes, without isolation (code you trust only);
        the report says so on every line.

    Returns
    -------
    ClassReport
        Its ``spec_problems`` names the problems graded for nobody, and why: a
        reference that cannot be evaluated, or that finite differences do not confirm.
        After Ctrl-C it holds the submissions finished, with ``partial`` set.

    >>> import symgrad as sg
    >>> report = sg.homework.grade("examples/homework/assignment.toml",
    ...                            ["examples/homework/submissions/correct"])  # doctest: +SKIP
    >>> report.passed  # doctest: +SKIP
    True
    """
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    seed = spec.seed if seed is None else seed
    limits = limits or spec.limits
    jobs = _cores() if jobs is None else jobs
    for name, value, lowest in (("seed", seed, 0), ("jobs", jobs, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
            raise InputError(f"{name} must be a whole number ≥ {lowest}, not {value!r}")
    paths = [Path(s) for s in submissions]
    for p in paths:
        if not p.exists() and not p.is_symlink():
            raise InputError(f"no such submission: {str(p)!r}")
    code = any(p.kind == "code" for p in spec.problems)
    if isolation is None:
        isolation = probe_isolation(unsafe=True) if unsafe_no_sandbox or not code else probe_isolation()
    names = _names(paths)
    report = progress if callable(progress) else ProgressBar() if progress else None
    results: list[SubmissionResult | None] = [None] * len(paths)
    cancel = threading.Event()
    plan: list[Prepared] = []
    tmp = Path(tempfile.mkdtemp(prefix="symgrad-check-"))
    tmp.chmod(0o711)
    try:
        plan = [prepare(p, seed) for p in spec.problems]
        with AnswerPool(limits.memory_mb, workers=min(jobs, _cores()), cancel=cancel) as pool:
            executor = ThreadPoolExecutor(jobs)
            try:
                futures = {executor.submit(grade_submission, spec, plan, name, path, limits, isolation, pool,
                                           tmp, cancel): i
                           for i, (name, path) in enumerate(zip(names, paths))}
                for done, future in enumerate(as_completed(futures), 1):
                    i = futures[future]
                    results[i] = future.result()
                    if report is not None:
                        report(done, len(paths), names[i])
            except KeyboardInterrupt:
                cancel.set()
            finally:
                _stop(executor, cancel)
    except KeyboardInterrupt:
        cancel.set()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ClassReport(spec.title, [(p.id, p.points) for p in spec.problems],
                       [r for r in results if r is not None],
                       isolation.note if code else "none needed (no code problems)", seed,
                       {prep.problem.id: prep.spec_problem for prep in plan if prep.spec_problem},
                       unsafe=isolation.unsafe and code, partial=cancel.is_set(),
                       not_graded=[n for n, r in zip(names, results) if r is None])


def _cores() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _stop(executor: ThreadPoolExecutor, cancel: threading.Event) -> None:
    """Wait for the running submissions (quick once ``cancel`` is set), even through more Ctrl-C."""
    while True:
        try:
            executor.shutdown(wait=True, cancel_futures=True)
            return
        except KeyboardInterrupt:
            cancel.set()


def _names(paths: list[Path]) -> list[str]:
    names: list[str] = []
    for p in paths:
        name = p.resolve().name if p.is_dir() and not p.is_symlink() else p.stem
        n, k = name, 2
        while n in names:
            n, k = f"{name} ({k})", k + 1
        names.append(n)
    return names


def grade_submission(spec: Spec, plan: list[Prepared], name: str, path: Path, limits: Limits,
                     isolation: Isolation, pool: AnswerPool, tmp: Path | None = None,
                     cancel: threading.Event | None = None) -> SubmissionResult | None:
    """One submission's results (None when ``cancel`` stopped it); a problem the grader
    cannot finish fails with the reason."""
    results: dict[str, ProblemResult] = {
        prep.problem.id: ProblemResult(prep.problem.id, prep.problem.points, spec_problem=prep.spec_problem)
        for prep in plan if prep.spec_problem is not None}
    plan = [prep for prep in plan if prep.spec_problem is None]
    code = [prep for prep in plan if prep.problem.kind == "code"]
    if cancel is not None and cancel.is_set():
        return None
    with tempfile.TemporaryDirectory(prefix="symgrad-submission-", dir=tmp) as folder:
        os.chmod(folder, 0o711)  # a sandbox running as nobody reaches its copy, and lists nothing
        copy = Path(folder) / "submission"
        refused = copy_submission(path, copy)
        single = path.is_file() and not path.is_symlink()
        try:
            results.update(grade_code(code, copy, single, limits, isolation, refused, cancel))
        except Exception as e:  # a grader bug must not stop the class
            results.update({prep.problem.id: _grader_failed(prep, e) for prep in code})
        for prep in plan:
            if prep.problem.kind == "answer":
                try:
                    results[prep.problem.id] = grade_answers(prep, copy, single, spec.answers_file, limits,
                                                             pool, refused)
                except Exception as e:
                    results[prep.problem.id] = _grader_failed(prep, e)
    if cancel is not None and cancel.is_set():
        return None
    return SubmissionResult(name, str(path), [results[p.id] for p in spec.problems])


def copy_submission(path: Path, copy: Path) -> dict[str, str]:
    """Copy the submission's folders and regular files into ``copy``; what was left out, and why.

    Symbolic links, devices, pipes and sockets are left out (a link would show
    the grader's files to the student); a submission over
    :data:`MAX_SUBMISSION_BYTES` or :data:`MAX_SUBMISSION_FILES` is left out
    whole, under the key ``""``.
    """
    copy.mkdir()
    refused: dict[str, str] = {}
    budget = [MAX_SUBMISSION_BYTES, MAX_SUBMISSION_FILES]

    def one(source: Path, target: Path, relative: str) -> None:
        info = source.lstat()
        if stat.S_ISLNK(info.st_mode):
            refused[relative] = f"{relative} is a symbolic link: hand in the file itself"
        elif stat.S_ISDIR(info.st_mode):
            if source.name in ("__pycache__", ".git") and relative:
                return
            target.mkdir(exist_ok=True)
            target.chmod(0o755)
            for entry in sorted(os.listdir(source)):
                one(source / entry, target / entry, f"{relative}/{entry}" if relative else entry)
        elif stat.S_ISREG(info.st_mode):
            budget[0] -= info.st_size
            budget[1] -= 1
            if budget[0] < 0 or budget[1] < 0:
                raise OverflowError
            fd = os.open(source, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as f, open(target, "wb") as out:
                out.write(f.read(info.st_size + 1)[:info.st_size])
            target.chmod(0o644)
        else:
            refused[relative] = f"{relative} is not a regular file"

    try:
        if path.is_symlink():
            return {"": f"{path.name} is a symbolic link: hand in the submission itself"}
        one(path, copy / path.name if path.is_file() else copy, "" if path.is_dir() else path.name)
    except OverflowError:
        shutil.rmtree(copy)
        copy.mkdir()
        return {"": f"the submission is larger than {MAX_SUBMISSION_BYTES >> 20} MB "
                    f"or holds more than {MAX_SUBMISSION_FILES} files"}
    except OSError as e:
        return {"": f"the submission cannot be read: {type(e).__name__}: {e.strerror}"}
    return refused


def _grader_failed(prep: Prepared, e: Exception) -> ProblemResult:
    return ProblemResult(prep.problem.id, prep.problem.points,
                         reason=f"the grader failed here: {type(e).__name__}: {e}")


# -- code problems ----------------------------------------------------------------


def grade_code(preps: list[Prepared], copy: Path, single: bool, limits: Limits, isolation: Isolation,
               refused: dict[str, str] | None = None,
               cancel: threading.Event | None = None) -> dict[str, ProblemResult]:
    """Run the student's functions in the sandbox and compare them with the references.

    ``copy`` is the submission's copy (:func:`copy_submission`, which left out
    ``refused``); ``single`` says it is one file.  All problems go in one run;
    when a run is stopped (a limit, a crash), the problem it was on fails with
    the reason and a new run takes the rest.
    """
    refused = refused or {}
    files = sorted(os.listdir(copy)) if single else []
    results = {}
    pending = []
    for prep in preps:
        p = prep.problem
        filename = (files[0] if files else next(iter(refused), p.file)) if single else p.file
        if "" in refused:
            results[p.id] = ProblemResult(p.id, p.points, reason=refused[""])
        elif single and not filename.endswith(".py"):
            reason = f"no {p.file} in the submission ({filename} is not a .py file)"
            results[p.id] = ProblemResult(p.id, p.points, reason=reason)
        elif filename in refused:
            results[p.id] = ProblemResult(p.id, p.points, reason=refused[filename])
        elif (copy / filename).is_file():
            pending.append((prep, filename))
        else:
            results[p.id] = ProblemResult(p.id, p.points, reason=f"no {filename} in the submission")
    while pending:
        if cancel is not None and cancel.is_set():
            break
        outcome = _run(pending, copy, limits, isolation, cancel)
        stopped = min(k for k in range(len(pending) + 1) if k not in outcome.done)
        for k, (prep, _) in enumerate(pending[:stopped + 1]):
            if k == stopped and outcome.stopped == "output":
                # printed too much: run it again with its output discarded, and grade that run
                again = _run([pending[k]], copy, limits, isolation, cancel, quiet=True)
                result = _code_result(prep, again, 0, 0 not in again.done, limits)
                result.output = _cut(outcome.output(k), limits, True)
                results[prep.problem.id] = result
            else:
                results[prep.problem.id] = _code_result(prep, outcome, k, k == stopped, limits)
        pending = pending[stopped + 1:]
    return results


def _code_result(prep: Prepared, outcome: Outcome, k: int, stopped: bool, limits: Limits) -> ProblemResult:
    """The result of the ``k``-th problem of a run; ``stopped`` when the run ended in it."""
    result = ProblemResult(prep.problem.id, prep.problem.points,
                           output=_cut(outcome.output(k), limits, False), seconds=outcome.seconds.get(k, 0.0))
    events = outcome.of(k)
    if stopped:  # a message against the protocol outweighs the error it may hide
        error = None if outcome.stopped == "protocol" else _problem_error(events, limits)
        result.reason = error or _run_end(outcome, k, limits)
    else:
        result.reason = _problem_error(events, limits) or _mutation(prep.problem, events)
        if result.reason is None:
            result.checks, result.reason = _code_checks(prep, events)
            result.gates = list(prep.problem.gates)
    _score(result)
    return result


def _cut(output: str, limits: Limits, over_limit: bool) -> str:
    """The output kept, with a visible marker where it was cut."""
    if over_limit:
        return (output + f"\n[output cut here: more than {limits.output_kb} kB printed; the rest was "
                f"discarded and the problem graded without it]")
    if len(output.encode()) >= KEPT_OUTPUT_BYTES:
        return output + f"\n[output cut here: only the first {KEPT_OUTPUT_BYTES >> 10} kB are kept]"
    return output


def _run(preps: list[tuple[Prepared, str]], copy: Path, limits: Limits, isolation: Isolation,
         cancel: threading.Event | None, quiet: bool = False) -> Outcome:
    """One sandboxed run of the given problems, on the submission's copy (read-only in the
    sandbox; without one, a fresh copy of it); ``quiet`` sends what the code prints nowhere."""
    problems = []
    for prep, filename in preps:
        p = prep.problem
        problems.append({
            "quiet": quiet, "file": filename, "style": p.style, "function": p.function,
            "forward": p.forward, "backward": p.backward,
            "trials": [{n: _encode(v) for n, v in pt.items()} for pt in prep.points],
            "douts": [_encode(d) for d in prep.douts or []]})
    if not isolation.unsafe:
        return run({"problems": problems}, copy, limits, isolation, cancel)
    with tempfile.TemporaryDirectory(prefix="symgrad-run-", dir=copy.parent) as tmp:
        workdir = Path(tmp) / "work"
        shutil.copytree(copy, workdir)
        return run({"problems": problems}, workdir, limits, isolation, cancel)


def _encode(v: np.ndarray) -> dict[str, Any]:
    dtype = "int64" if v.dtype.kind in "iu" else "float64"
    if v.ndim == 0:
        return {"kind": "scalar", "dtype": dtype, "data": v.item()}
    return {"kind": "array", "dtype": dtype, "shape": list(v.shape), "data": v.ravel().tolist()}


def _where(events: list[dict[str, Any]]) -> str:
    stages = [e for e in events if e.get("event") == "stage"]
    if not stages:
        return "before it started"
    stage = stages[-1]
    if stage.get("stage") == "import":
        return f"while importing {str(stage.get('file'))[:60]}"
    trial = stage.get("trial")
    at = f" at test point {trial + 1}" if isinstance(trial, int) else ""
    return f"in {str(stage.get('function'))[:40]}(){at}"


def _problem_error(events: list[dict[str, Any]], limits: Limits) -> str | None:
    """The exception (or exit, or missing function) that failed the problem, or None."""
    errors = [e for e in events if e.get("event") == "error"]
    if not errors:
        return None
    error, where = errors[-1], _where(events)
    kind, message = error.get("kind"), str(error.get("message"))[:500]
    if kind == "missing":
        return message
    if kind == "exit":
        return f"{message} {where}"
    if isinstance(error.get("file"), str):
        function = str(error.get("function"))[:40]
        inside = "" if function == "<module>" or f"in {function}()" in where else f", in {function}"
        message += f" ({error['file'][:60]}, line {error.get('line')}{inside})"
    if kind == "memory":
        return f"ran out of memory (limit {limits.memory_mb} MB) {where}: {message}"
    return f"raised {message} {where}"


def _run_end(outcome: Outcome, k: int, limits: Limits) -> str:
    """Why the run stopped during problem ``k``: a limit, a signal, an exit."""
    where = _where(outcome.of(k))
    if outcome.stopped == "timeout":
        return f"stopped after {limits.wall_seconds:g} s (wall-time limit) {where}: an endless loop?"
    if outcome.stopped == "output":
        return f"printed more than {limits.output_kb} kB {where}: stopped"
    if outcome.stopped == "channel":
        return f"sent more than {MAX_CHANNEL_BYTES >> 20} MB of results {where}: stopped"
    if outcome.stopped == "protocol":
        return f"sent the grader {outcome.violation} {where}: stopped"
    if outcome.stopped == "memory":
        return f"ran out of memory (limit {limits.memory_mb} MB, total across its processes) {where}: stopped"
    if outcome.stopped == "cancelled":
        return "grading was interrupted"
    end = outcome.last("exit")
    if end is None:
        tail = outcome.output(k).strip().splitlines()[-1:] or ["no output"]
        return f"the sandbox stopped unexpectedly {where} ({tail[0][:200]})"
    sig = end.get("signal")
    if isinstance(sig, int):
        if sig == signal.SIGXCPU:
            return f"exceeded the CPU-time limit ({limits.cpu_seconds:g} s) {where}"
        if sig == signal.SIGKILL:
            return f"was killed {where}: over the CPU-time or memory limit?"
        if sig == getattr(signal, "SIGXFSZ", -1):
            return f"wrote a file over the size limit {where}"
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        return f"crashed ({name}) {where}"
    return (f"exited (status {end.get('status')}) {where} before returning its results: "
            "sys.exit or os._exit?")


def _mutation(p: Problem, events: list[dict[str, Any]]) -> str | None:
    for e in events:
        if e.get("event") != "trial":
            continue
        named = e.get("mutated")
        mutated = [n for n in named if isinstance(n, str) and n in p.inputs] if isinstance(named, list) \
            else []
        function = str(e.get("mutated_in"))[:40]
        if mutated:
            return (f"modified its input {', '.join(mutated)} in place in {function}() "
                    f"(like x += 1): work on a copy")
        if e.get("mutated_dout"):
            return f"modified dout in place in {p.backward}() (like dout *= 2): work on a copy"
    return None


def _code_checks(prep: Prepared, events: list[dict[str, Any]]) -> tuple[list[Check], str | None]:
    """A check for each gradient (and the forward output), or why the results cannot be read."""
    p = prep.problem
    trials = {e["trial"]: e for e in events if e.get("event") == "trial" and isinstance(e.get("trial"), int)}
    found = [trials.get(i) for i in range(len(prep.points))]
    if any(e is None for e in found):
        return [], "some test points returned no results"
    runs = [e for e in found if e is not None]
    function = p.function if p.style == "grad" else p.backward
    checks = []
    if p.style == "layer":
        bad = next((e for e in runs if "forward_returned" in e), None)
        if bad is not None:
            return [], f"{p.forward}() returned {_describe(bad['forward_returned'])}; expected (out, cache)"
        outs = [_decode(e.get("out")) for e in runs]
        checks.append(_check("out", outs, [r.value for r in prep.refs], prep, others={}, alternatives=[]))
    per_trial = []
    for e in runs:
        grads, problem = _gradients(e.get("returned"), p, function)
        if problem is not None:
            return [], problem
        per_trial.append(grads)
    for name in p.wrt:
        got = [g.get(name) for g in per_trial]
        if any(v is None for v in got):
            checks.append(Check(f"∂{name}", False, _missing(name, prep, runs, function)))
            continue
        checks.append(_check(f"∂{name}", [_decode(v) for v in got], prep.want(name), prep,
                             others=prep.others(name), alternatives=prep.alternatives_for(name)))
    return checks + _gate_checks(prep, runs, function), None


def _gate_checks(prep: Prepared, runs: list[dict[str, Any]], function: str) -> list[Check]:
    """With credit per gate: a check of each gate's gradient, returned as ``dq3`` (or ``q3``)."""
    checks = []
    items = [r.get("items") if isinstance(r := e.get("returned"), dict) and r.get("kind") == "dict" else None
             for e in runs]
    g = prep.problem.graph
    for node, want in prep.gates.items():
        label = f"∂{node}"
        if not all(isinstance(i, dict) for i in items):
            checks.append(Check(label, False, f"{function}() returned no dict: return the gates' gradients "
                                              f"in one, like {{'d{node}': ...}}, for credit per gate"))
            continue
        got = [i.get(f"d{node}", i.get(node)) for i in items if isinstance(i, dict)]
        if any(v is None for v in got):
            checks.append(Check(label, False, f"not returned: the gradient of {node} = "
                                              f"{expression_text(g, node)} goes under 'd{node}'"))
            continue
        checks.append(_check(label, [_decode(v) for v in got], want, prep, others={}, alternatives=[]))
    return checks


def _missing(name: str, prep: Prepared, runs: list[dict[str, Any]], function: str) -> str:
    """Why ``∂name`` is not in what was returned: the keys found, and which of them holds it."""
    p = prep.problem
    items = [r.get("items") if isinstance(r := e.get("returned"), dict) else None for e in runs]
    dicts = [i for i in items if isinstance(i, dict)]
    if len(dicts) != len(items) or not dicts:
        return f"missing from what {function}() returned"
    keys = list(dicts[0])
    asked = {n for v in p.wrt for n in (v, f"d{v}")}
    found = ", ".join(repr(k) for k in keys) if keys else "none"
    head = f"missing from the dict {function}() returned (keys {found}; asked: {', '.join(p.wrt)})"
    for key in (k for k in keys if k not in asked):
        values = [_decode(i.get(key)) for i in dicts]
        if len(values) == len(runs) and all(why is None for _, why in values) and all(
                v is not None and v.shape == w.shape and bool(np.all(np.isclose(v, w, p.rtol, p.atol)))
                for (v, _), w in zip(values, prep.want(name))):
            return f"{head}: {key!r} holds ∂{name}; name it {name!r} (or 'd{name}')"
    return head


def _check(label: str, got: list[tuple[np.ndarray | None, str | None]], want: list[np.ndarray],
           prep: Prepared, others: dict[str, list[np.ndarray]],
           alternatives: list[tuple[str, list[np.ndarray]]]) -> Check:
    problems = [why for _, why in got if why is not None]
    if problems:
        return Check(label, False, problems[0])
    values = [v for v, _ in got]
    p = prep.problem
    hint = diagnose(label.lstrip("∂"), values, want, others=others, alternatives=alternatives,
                    batch=p.batch, where=prep.where, rtol=p.rtol, atol=p.atol,
                    misconceptions=prep.misconceptions if label.startswith("∂") else ())
    return Check(label, hint is None, hint, None if hint is None else worst(values, want, prep.where))


def _gradients(returned: Any, p: Problem, function: str) -> tuple[dict[str, Any], str | None]:
    """``{name: encoded value}`` from what the student returned, or why it cannot be read."""
    order = p.returns if p.style == "layer" else p.wrt
    names = ", ".join(f"d{n}" for n in order)
    if not isinstance(returned, dict):
        return {}, f"{function}() returned something unreadable"
    kind = returned.get("kind")
    items = returned.get("items")
    if kind == "dict" and isinstance(items, dict):
        found = {}
        for n in p.wrt:
            key = n if n in items else f"d{n}" if f"d{n}" in items else None
            if key is not None:
                found[n] = items[key]
        return found, None
    if kind in ("tuple", "list") and isinstance(items, list) and (len(order) > 1 or kind == "tuple"):
        length = returned.get("length", len(items))
        if length != len(order):
            return {}, f"{function}() returned {length} values; expected {len(order)}: ({names})"
        return dict(zip(order, items)), None
    if len(order) == 1:
        return {order[0]: returned}, None
    expected = f"a dict {{'{order[0]}': d{order[0]}, ...}} or a tuple ({names})"
    return {}, f"{function}() returned {_describe(returned)}; expected {expected}"


def _describe(v: Any) -> str:
    if not isinstance(v, dict):
        return "something unreadable"
    kind = v.get("kind")
    if kind == "scalar":
        return "a single number"
    if kind == "array":
        shape = v.get("shape")
        return f"an array of shape {tuple(shape) if isinstance(shape, list) else '?'}"[:80]
    if kind in ("tuple", "list", "dict"):
        items = v.get("items")
        return f"a {kind} of {len(items) if isinstance(items, (list, dict)) else '?'} items"
    t = str(v.get("type"))[:60]
    return "None" if t == "NoneType" else t if t.startswith("an ") else f"a {t}"


def _decode(v: Any) -> tuple[np.ndarray | None, str | None]:
    """An encoded value as an array, or why it is not a number or a NumPy array."""
    if not isinstance(v, dict):
        return None, "could not be read"
    kind = v.get("kind")
    if kind == "scalar" and isinstance(v.get("data"), (int, float)) and not isinstance(v["data"], bool):
        return np.asarray(float(v["data"])), None
    if kind == "array":
        shape = v.get("shape")
        try:
            if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
                raise ValueError
            data = np.array(v.get("data"), dtype=float)
            if data.ndim != 1 or data.size != int(np.prod(shape)):
                raise ValueError
            return data.reshape(shape), None
        except (ValueError, TypeError, OverflowError):
            return None, "could not be read"
    if kind in ("list", "tuple"):
        return None, f"a {kind}, not a NumPy array: return np.array(...)"
    return None, f"{_describe(v)}, not a number or a NumPy array"


def _score(result: ProblemResult) -> None:
    if result.reason is not None or not result.checks:
        result.score = 0.0
    else:
        result.score = result.points * sum(c.ok for c in result.checks) / len(result.checks)


# -- answer problems ---------------------------------------------------------------


def grade_answers(prep: Prepared, copy: Path, single: bool, answers_file: str, limits: Limits,
                  pool: AnswerPool, refused: dict[str, str] | None = None) -> ProblemResult:
    """Read the student's answers for this problem (from the submission's copy, see
    :func:`copy_submission`) and compare them with the derivatives."""
    answers, problem = _read_answers(copy, single, answers_file, prep.problem, refused or {})
    if problem is not None:
        return ProblemResult(prep.problem.id, prep.problem.points, reason=problem)
    return check_answers(prep, answers, f"[{prep.problem.id}] of {answers_file}", limits, pool)


def check_answers(prep: Prepared, answers: dict[str, Any], source: str, limits: Limits,
                  pool: AnswerPool) -> ProblemResult:
    """Compare ``{variable: expression string}`` with the problem's derivatives at its test points
    and symbolically; ``source`` says where a missing answer should have been."""
    p = prep.problem
    result = ProblemResult(p.id, p.points)
    request = {"expression": p.expression, "shapes": {n: list(s) for n, s in p.shapes.items()},
               "labels": [n for n, s in p.inputs.items() if s.labels is not None],
               "answers": {v: answers[v] for v in p.wrt if isinstance(answers.get(v), str)},
               "points": [{n: {"shape": list(np.shape(v)), "data": np.ravel(v).astype(float).tolist()}
                           for n, v in pt.items()} for pt in prep.points]}
    replies, status = _ask_each(pool, request, limits.answer_seconds)
    values = {r["var"]: r for r in replies if "values" in r or "error" in r}
    symbolic = {r["var"]: r["symbolic"] for r in replies if "symbolic" in r}
    for var in p.wrt:
        label = f"∂{var}"
        if var not in answers:
            result.checks.append(Check(label, False, f"no answer for {var} in {source}"))
        elif not isinstance(answers[var], str):
            result.checks.append(Check(label, False, "the answer must be a string like \"2*x\""))
        elif "error" in values.get(var, {}):
            result.checks.append(Check(label, False, f"cannot read the answer: {values[var]['error']}"))
        elif var not in values:
            failed = [str(r["failed"])[:200] for r in replies if r.get("var") == var and "failed" in r]
            why = "took too long to check" if status.get(var) == "timeout" else \
                f"could not be checked ({failed[0]})" if failed else "could not be checked"
            result.checks.append(Check(label, False, why))
        else:
            got = [_decode({"kind": "array", **v}) for v in values[var]["values"]]
            check = _check(label, got, prep.want(var), prep, others=prep.others(var), alternatives=[])
            result.checks.append(agreed(check, symbolic.get(var)))
    _score(result)
    return result


def _ask_each(pool: AnswerPool, request: dict[str, Any],
              seconds: float) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The worker's replies, one request per answer (an answer that crashes its worker fails
    only itself); and how each ended."""
    replies, status = [], {}
    for var, text in request["answers"].items():
        got, status[var] = pool.ask({**request, "answers": {var: text}}, seconds)
        replies += [r for r in got if r.get("var") == var] + [{"var": var, **r} for r in got if "failed" in r]
    return replies, status


def _read_answers(copy: Path, single: bool, answers_file: str, p: Problem,
                  refused: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    names = sorted(os.listdir(copy)) if single else []
    name = (names[0] if names else next(iter(refused), answers_file)) if single else answers_file
    if "" in refused or name in refused:
        return {}, refused.get("", refused.get(name))
    file = copy / name
    if file.suffix != ".toml" or not file.is_file():
        return {}, f"no {answers_file} in the submission"
    try:
        if file.stat().st_size > MAX_ANSWERS_BYTES:
            return {}, f"{file.name} is larger than {MAX_ANSWERS_BYTES >> 20} MB"
        data = tomllib.loads(file.read_text(encoding="utf-8", errors="replace"))
    except (OSError, tomllib.TOMLDecodeError, RecursionError) as e:
        return {}, f"{file.name} is not valid TOML: {e}"
    table = data.get(p.id)
    if not isinstance(table, dict):
        return {}, f"no [{p.id}] table in {file.name}"
    answers = {}
    for var in p.wrt:
        for key in (var, f"d{var}"):
            if key in table:
                answers[var] = table[key]
                break
    return answers, None
