"""``symgrad check``: the homework checker on the command line.

Output files are checked before grading starts (a temporary file is made
beside each, so an unwritable path is refused at once) and replaced
atomically at the end.  Ctrl-C or SIGTERM stop grading promptly: every
sandbox is killed, temporary folders are removed, and the reports are
written for the submissions finished, marked partial (exit status 130 or
143).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from ..cli import ANSWER_HELP, CHECK_HELP
from ..errors import InputError
from .grading import grade
from .report import GRADESCOPE_VISIBILITY
from .single import grade_answer
from .spec import load_spec

DESCRIPTION = """\
Grade every SUBMISSION against the assignment SPEC.  Students' gradient code runs in a
bubblewrap sandbox (its own read-only view of the Python runtime, no network, time, CPU,
memory, process and disk limits, a clean environment) at random test points and is
compared with the gradients symgrad derives from the spec's expressions, themselves
confirmed by finite differences; symbolic answers are compared with SymPy's derivatives.
Every failure gets a one-line diagnosis.
"""
EXAMPLES = """\
the spec (TOML; a full example: examples/homework/assignment.toml):
  [assignment]                   title, seed of the test points, file = "homework.py",
                                 answers = "answers.toml", dims = { N = 4 }
  [limits]                       wall_seconds, cpu_seconds, memory_mb, output_kb (per run)
  [[problem]]                    one table per problem:
  id = "circuit"
  expression = "(x + y) * z"     the reference, in symgrad's syntax (@, .T, sum, softmax, ...)
  kind = "code"                  "code": homework.py defines a function; "answer": answers.toml
                                 holds [circuit] x = "z" (SymPy-equivalent expressions pass)
  style = "grad"                 grad: function(**inputs) -> {name: gradient} or a tuple;
                                 layer: forward(**inputs) -> (out, cache), backward(dout, cache)
  function = "circuit_grad"      (forward = "...", backward = "..." for the layer style)
  points = 2                     what the problem is worth
  trials = 3                     how many random test points
  rtol = 1e-6                    tolerances of the comparison (and atol = 1e-9)
  wrt = ["x", "y"]               the gradients asked for (default: every sampled input)
  regularization = "..."         a term of the expression ("missing regularization" hint)
  batch = "N"                    the batch dimension ("sum vs mean" hint)
  [problem.inputs]               how inputs are sampled (default: uniform in [-2, 2]):
  x = { range = [-5, 5] }        W = { shape = ["N", 3] }   y = { shape = ["N"], labels = 10 }
  lam = { value = 0.1 }          a fixed number

examples:
  symgrad check examples/homework/assignment.toml examples/homework/submissions/*
  symgrad check assignment.toml submissions/* --jobs 4 --csv grades.csv --junit junit.xml
  symgrad check assignment.toml alice/ --json -          # JSON on stdout
  symgrad check assignment.toml /autograder/submission \
      --gradescope /autograder/results/results.json --report-only   # on Gradescope

Each submission is a folder (holding the files the spec names), or a single .py file
used for every code problem, or a single answers .toml file.  The exit status is 0 when
every submission passed, 1 when some did not, 2 on a bad spec (one that cannot be read,
or a problem whose reference gradients finite differences do not confirm: that problem
is graded for nobody), on an output file that cannot be written, or when this machine
cannot isolate submissions (install bubblewrap: apt-get install bubblewrap); always 0
with --report-only.  Interrupted (Ctrl-C, SIGTERM): the reports of the submissions
finished, marked partial, and status 130 (143 for SIGTERM).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``check`` to the subcommands of ``symgrad``."""
    p = sub.add_parser(
        "check", help=CHECK_HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
    )
    p.add_argument("spec", metavar="SPEC", help="the assignment spec (a TOML file)")
    p.add_argument("submissions", metavar="SUBMISSION", nargs="+", help="a submission folder or file")
    p.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                   help="grade N submissions at the same time, with at most N answer workers "
                        "(default: the number of cores)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON (- for stdout)")
    p.add_argument("--csv", metavar="FILE",
                   help="write one row per student, one column per problem, and the total (- for stdout)")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML for autograders (- for stdout)")
    p.add_argument("--failures-csv", metavar="FILE",
                   help="write one row per failed check: student, problem, check, hint, the test point, "
                        "the element, expected and received (- for stdout)")
    p.add_argument("--gradescope", metavar="FILE",
                   help="write Gradescope's results.json for the one submission graded (- for stdout)")
    p.add_argument("--gradescope-visibility", default="visible", choices=GRADESCOPE_VISIBILITY,
                   help="when students see each test on Gradescope (default: visible)")
    p.add_argument("--seed", type=int, help="the seed of the random test points (default: the spec's)")
    p.add_argument("--report-only", action="store_true",
                   help="exit with status 0 even when submissions fail")
    p.add_argument("--quiet", action="store_true", help="no terminal report")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run submissions without isolation, where bubblewrap is missing: only for code "
                        "you trust (every line of the report says so)")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show a progress bar on stderr (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(run=check)


def add_answer_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``grade-answer`` to the subcommands of ``symgrad``."""
    p = sub.add_parser(
        "grade-answer", help=ANSWER_HELP,
        description="Grade ANSWER, the derivative of PROBLEM's expression in SPEC, and print JSON in "
                    "the shape of PrairieLearn's external graders: gradable, score (0 to 1), message, "
                    "and a test per derivative with its points and hint.  Answers go through "
                    "symgrad's safe parser, never eval.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  symgrad grade-answer assignment.toml sigmoid_prime 'sigmoid(x)*(1 - sigmoid(x))'\n"
               "  symgrad grade-answer assignment.toml circuit x=z y=z 'z=x + y'\n"
               "The exit status is 0 when the answer is right, 1 when it is not, 2 on a bad spec "
               "or problem id.")
    p.add_argument("spec", metavar="SPEC", help="the assignment spec (a TOML file)")
    p.add_argument("problem", metavar="PROBLEM", help="the problem's id")
    p.add_argument("answers", metavar="ANSWER", nargs="+",
                   help="the derivative as an expression, or VAR=EXPR for each variable asked")
    p.add_argument("--seed", type=int, help="the seed of the test points (default: the spec's)")
    p.set_defaults(run=grade_answer_command)


def grade_answer_command(args: argparse.Namespace) -> str:
    """Grade one answer and return its JSON."""
    named = [a.partition("=") for a in args.answers]
    if len(args.answers) == 1 and not named[0][1]:
        answer: str | dict[str, str] = args.answers[0]
    elif all(sep and name.strip().isidentifier() for name, sep, _ in named):
        answer = {name.strip(): text for name, _, text in named}
    else:
        raise InputError("give one expression, or VAR=EXPR for each variable (like x=z 'y=x + 1')")
    result = grade_answer(load_spec(Path(args.spec)), args.problem, answer, seed=args.seed)
    args.exit_code = 0 if result["gradable"] and result["score"] == 1 else 1
    return json.dumps(result, indent=2, ensure_ascii=False)


def check(args: argparse.Namespace) -> str:
    """Grade, write the requested files, and return the terminal report."""
    spec = load_spec(Path(args.spec))
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, not {args.jobs}")
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.gradescope is not None and len(args.submissions) != 1:
        raise InputError(f"--gradescope writes one student's results.json: give one submission, "
                         f"not {len(args.submissions)}")
    outputs = [(_Output(destination, option), form) for destination, option, form in
               ((args.json, "--json", "json"), (args.csv, "--csv", "csv"), (args.junit, "--junit", "junit"),
                (args.failures_csv, "--failures-csv", "failures_csv"),
                (args.gradescope, "--gradescope", "gradescope"))
               if destination is not None]
    try:
        with _Signals() as signals:
            report = grade(spec, args.submissions, jobs=args.jobs, seed=args.seed, progress=progress,
                           unsafe_no_sandbox=args.unsafe_no_sandbox)
            signals.stop()
        to_stdout = False
        for output, form in outputs:
            content = report.gradescope(args.gradescope_visibility) if form == "gradescope" \
                else getattr(report, form)()
            output.write(content if content.endswith("\n") else content + "\n")
            to_stdout = to_stdout or output.stdout
    finally:
        for output, _ in outputs:
            output.discard()
    if report.spec_problems:
        for message in report.spec_problems.values():
            print(f"symgrad: spec problem: {message}", file=sys.stderr)
    if report.partial:
        print(f"symgrad: interrupted: the reports hold {len(report.submissions)} submission(s); "
              f"{len(report.not_graded)} not graded", file=sys.stderr)
    args.exit_code = 128 + (signals.received or signal.SIGINT) if report.partial else 0 if args.report_only \
        else 2 if report.spec_problems else 0 if report.passed else 1
    return "" if args.quiet or to_stdout else report.text()


class _Output:
    """An output file, checked now (a temporary file beside it) and replaced atomically later."""

    def __init__(self, destination: str, option: str):
        self.stdout = destination == "-"
        self.path = Path(destination)
        self.temporary: str | None = None
        if self.stdout:
            return
        if self.path.is_dir():
            raise InputError(f"{option} {destination}: is a folder")
        try:
            fd, self.temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp",
                                                  dir=self.path.parent)
            os.close(fd)
        except OSError as e:
            raise InputError(f"{option} {destination}: cannot be written: {e.strerror}") from None

    def write(self, content: str) -> None:
        if self.stdout:
            sys.stdout.write(content)
            return
        assert self.temporary is not None
        with open(self.temporary, "w", encoding="utf-8") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(self.temporary, 0o644)
        os.replace(self.temporary, self.path)
        self.temporary = None

    def discard(self) -> None:
        if self.temporary is not None:
            try:
                os.unlink(self.temporary)
            except OSError:
                pass
            self.temporary = None


class _Signals:
    """SIGTERM as Ctrl-C while grading (the grader then stops every run and reports what was
    graded); after that, further signals are noted, not acted on, until the reports are out."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.saved: dict[int, object] = {}

    def __enter__(self) -> _Signals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self.interrupt)
        return self

    def interrupt(self, sig: int, frame: FrameType | None) -> None:
        first = self.received is None
        self.received = self.received or sig
        if first:
            raise KeyboardInterrupt

    def stop(self) -> None:
        """From now on (writing the reports), a signal is only noted."""
        self.received = self.received or 0

    def __exit__(self, *exc: object) -> None:
        if self.received:  # interrupted: the process ends once the reports are out; more signals wait
            return
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
