"""``symgrad check``: the homework checker on the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .grading import grade
from .spec import load_spec

DESCRIPTION = """\
Grade every SUBMISSION against the assignment SPEC.  Students' gradient code runs in a
sandbox (time, CPU and memory limits, a clean environment) at random test points and is
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

Each submission is a folder (holding the files the spec names), or a single .py file
used for every code problem, or a single answers .toml file.  The exit status is 0 when
every submission passed, 1 when some did not, 2 on a bad spec (one that cannot be read,
or a problem whose reference gradients finite differences do not confirm: that problem
is graded for nobody); always 0 with --report-only.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``check`` to the subcommands of ``symgrad``."""
    p = sub.add_parser(
        "check", help="grade students' gradient code and symbolic answers (the homework checker)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
    )
    p.add_argument("spec", metavar="SPEC", help="the assignment spec (a TOML file)")
    p.add_argument("submissions", metavar="SUBMISSION", nargs="+", help="a submission folder or file")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="grade N submissions at the same time (default 1)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON (- for stdout)")
    p.add_argument("--csv", metavar="FILE",
                   help="write one row per student, one column per problem, and the total (- for stdout)")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML for autograders (- for stdout)")
    p.add_argument("--seed", type=int, help="the seed of the random test points (default: the spec's)")
    p.add_argument("--report-only", action="store_true",
                   help="exit with status 0 even when submissions fail")
    p.add_argument("--quiet", action="store_true", help="no terminal report")
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show a progress bar on stderr (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(run=check)


def check(args: argparse.Namespace) -> str:
    """Grade, write the requested files, and return the terminal report."""
    spec = load_spec(Path(args.spec))
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    report = grade(spec, args.submissions, jobs=args.jobs, seed=args.seed, progress=progress)
    to_stdout = False
    for destination, text in ((args.json, report.json), (args.csv, report.csv), (args.junit, report.junit)):
        if destination is None:
            continue
        content = text()
        if destination == "-":
            sys.stdout.write(content if content.endswith("\n") else content + "\n")
            to_stdout = True
        else:
            Path(destination).write_text(content, encoding="utf-8")
    if report.spec_problems:
        for message in report.spec_problems.values():
            print(f"symgrad: spec problem: {message}", file=sys.stderr)
    args.exit_code = 0 if args.report_only else 2 if report.spec_problems else 0 if report.passed else 1
    return "" if args.quiet or to_stdout else report.text()
