"""Grading results and their forms: terminal text, JSON, CSV and JUnit XML.

Everything a student's code produced (messages, printed output, file and
folder names) is shown with its control characters escaped (``\x1b``,
``\r``, ``\n``, bidirectional overrides), so that no report can be made to
show lines the grader did not write.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO
from xml.etree import ElementTree as ET

from .misconceptions import worst_text


@dataclass
class Check:
    """One thing checked in a problem (``∂x``, ``out``), and a hint line when it is wrong.

    ``counterexample`` is, for a wrong value, where it is most wrong: the test point, the
    expected and received values and, for arrays, the element (see
    :func:`~symgrad.homework.misconceptions.worst`).
    """

    name: str
    ok: bool
    hint: str | None = None
    counterexample: dict[str, Any] | None = field(default=None, repr=False)


@dataclass
class ProblemResult:
    """One problem of one submission.  ``reason`` is set when the whole problem failed;
    ``spec_problem`` when the problem was graded for nobody (its reference is at fault)."""

    problem: str
    points: float
    score: float = 0.0
    checks: list[Check] = field(default_factory=list)
    reason: str | None = None
    output: str = ""
    seconds: float = 0.0
    spec_problem: str | None = None
    gates: list[str] = field(default_factory=list)

    def gates_right(self) -> tuple[list[str], list[str]]:
        """With credit per gate: the gates whose gradient is right, and those where it is wrong,
        in the order backpropagation reaches them."""
        ok = {c.name: c.ok for c in self.checks}
        return ([g for g in self.gates if ok.get(f"∂{g}")], [g for g in self.gates if not ok.get(f"∂{g}")])

    @property
    def graded(self) -> bool:
        return self.spec_problem is None

    @property
    def passed(self) -> bool:
        return self.reason is None and bool(self.checks) and all(c.ok for c in self.checks)

    def hints(self) -> list[str]:
        """One line per failure; checks that fail the same way share a line."""
        if self.spec_problem is not None:
            return [f"not graded: {self.spec_problem}"]
        if self.reason is not None:
            return [self.reason]
        grouped: dict[str, list[str]] = {}
        for c in self.checks:
            if not c.ok:
                grouped.setdefault(c.hint or "wrong", []).append(c.name)
        return [f"{', '.join(names)}: {hint}" for hint, names in grouped.items()]

    def explained(self) -> list[str]:
        """:meth:`hints`, each with where its first check is most wrong (the test point, expected
        and received, the element of an array) unless the hint already names one."""
        lines = self.hints()
        if self.reason is not None or self.spec_problem is not None:
            return lines
        grouped: dict[str, Check] = {}
        for c in self.checks:
            if not c.ok:
                grouped.setdefault(c.hint or "wrong", c)
        return [line if c.counterexample is None or "counterexample" in line or "expected" in line
                else f"{line} — {worst_text(c.counterexample)}"
                for line, c in zip(lines, grouped.values())]

    def failures(self) -> list[dict[str, Any]]:
        """One record per wrong check: its name, hint and counterexample; or the reason."""
        if self.spec_problem is not None:
            return []
        if self.reason is not None:
            return [{"check": "", "hint": self.reason}]
        return [{"check": c.name, "hint": c.hint or "wrong", **(c.counterexample or {})}
                for c in self.checks if not c.ok]


@dataclass
class SubmissionResult:
    name: str
    path: str
    problems: list[ProblemResult]

    @property
    def score(self) -> float:
        return sum(p.score for p in self.problems)

    @property
    def max_points(self) -> float:
        """The points of the problems graded."""
        return sum(p.points for p in self.problems if p.graded)

    @property
    def passed(self) -> bool:
        """Every problem graded passed."""
        return all(p.passed for p in self.problems if p.graded)

    def problem(self, problem_id: str) -> ProblemResult:
        return next(p for p in self.problems if p.problem == problem_id)


@dataclass
class ClassReport:
    """Every submission's results, and how to show them."""

    title: str
    problems: list[tuple[str, float]]
    submissions: list[SubmissionResult]
    isolation: str = ""
    seed: int = 0
    spec_problems: dict[str, str] = field(default_factory=dict)
    unsafe: bool = False
    partial: bool = False
    not_graded: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every submission passed every problem graded."""
        return all(s.passed for s in self.submissions)

    @property
    def max_points(self) -> float:
        """The points of the problems graded."""
        return sum(p for i, p in self.problems if i not in self.spec_problems)

    def submission(self, name: str) -> SubmissionResult:
        return next(s for s in self.submissions if s.name == name)

    def text(self) -> str:
        """A readable report: one block per student, then the class summary.

        Without a sandbox, every line says so; after an interruption, the report
        opens with the submissions not graded.
        """
        total = self.max_points
        width = max([len(escape(s.name)) for s in self.submissions] + [10])
        ids = max([len(i) for i, _ in self.problems] + [7])
        lines = [f"{escape(self.title)}: {len(self.submissions)} submission(s)", ""]
        if self.partial:
            lines += [f"PARTIAL: grading was interrupted; {len(self.not_graded)} submission(s) not graded: "
                      + ", ".join(escape(n) for n in self.not_graded), ""]
        if self.spec_problems:
            lines += ["Not graded (a problem in the spec, not in the submissions; fix the spec):"]
            lines += [f"  {escape(message)}" for message in self.spec_problems.values()]
            lines.append("")
        for s in self.submissions:
            lines.append(f"{escape(s.name):<{width}}  {_pts(s.score):>5}/{_pts(total):<5}  "
                         f"{'passed' if s.passed else 'FAILED'}")
            for p in s.problems:
                if p.passed or not p.graded:
                    continue
                hints = [escape(h) for h in p.explained()]
                head = f"  {p.problem:<{ids}}  {_pts(p.score):>5}/{_pts(p.points):<4} "
                lines.append(head + hints[0])
                lines.extend(" " * len(head) + h for h in hints[1:])
                if p.gates:
                    right, wrong = p.gates_right()
                    lines.append(" " * len(head) + f"gates right: {', '.join(right) or 'none'}; "
                                                   f"wrong: {', '.join(wrong) or 'none'}")
        lines += ["", "Class summary", self.summary()]
        if self.isolation:
            lines += ["", f"Sandbox: {self.isolation}"]
        text = "\n".join(lines)
        if self.unsafe:
            text = "\n".join(f"[UNSAFE: no sandbox] {line}" for line in text.split("\n"))
        return text

    def summary(self) -> str:
        from ..tables import render

        n = len(self.submissions) or 1
        rows = []
        for pid, points in self.problems:
            if pid in self.spec_problems:
                rows.append([pid, _pts(points), "not graded", ""])
                continue
            results = [s.problem(pid) for s in self.submissions]
            rows.append([pid, _pts(points), _pts(sum(r.score for r in results) / n),
                         f"{sum(r.passed for r in results)}/{len(results)}"])
        rows.append(["total", _pts(self.max_points),
                     _pts(sum(s.score for s in self.submissions) / n),
                     f"{sum(s.passed for s in self.submissions)}/{len(self.submissions)}"])
        return "\n".join("  " + line for line in render(["problem", "points", "mean", "passed"],
                                                         rows).splitlines())

    def to_dict(self) -> dict[str, Any]:
        return {
            "assignment": self.title, "seed": self.seed, "sandbox": self.isolation,
            "unsafe_no_sandbox": self.unsafe, "partial": self.partial, "not_graded": self.not_graded,
            "max_points": self.max_points, "passed": self.passed,
            "problems": [{"id": i, "points": p, "spec_problem": self.spec_problems.get(i)}
                         for i, p in self.problems],
            "submissions": [{
                "name": s.name, "path": s.path, "score": s.score, "max_points": s.max_points,
                "passed": s.passed, **({"sandbox": self.isolation} if self.unsafe else {}),
                "problems": [{
                    "id": p.problem, "score": p.score, "points": p.points, "passed": p.passed,
                    "graded": p.graded,
                    "reason": p.reason, "hints": p.hints(), "seconds": round(p.seconds, 3),
                    "checks": [{"name": c.name, "ok": c.ok, "hint": c.hint,
                                **({"counterexample": c.counterexample} if c.counterexample else {})}
                               for c in p.checks],
                    "output": p.output,
                    **({"gates": dict(zip(("right", "wrong"), p.gates_right()))} if p.gates else {}),
                } for p in s.problems],
            } for s in self.submissions],
        }

    def json(self) -> str:
        """JSON, with every control character escaped (C1 and bidirectional ones too)."""
        return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}",
                                   json.dumps(self.to_dict(), indent=2, ensure_ascii=False))

    def csv(self) -> str:
        """One row per student, one column per problem (empty when not graded), and the total;
        after an interruption, the students not graded have rows of empty cells."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        unsafe = ["sandbox"] if self.unsafe else []
        writer.writerow(["student", *(i for i, _ in self.problems), "total", *unsafe])
        for s in self.submissions:
            writer.writerow([_cell(s.name), *(_pts(s.problem(i).score) if i not in self.spec_problems else ""
                                              for i, _ in self.problems), _pts(s.score),
                             *(["UNSAFE: no sandbox"] if self.unsafe else [])])
        for name in self.not_graded:
            writer.writerow([_cell(name), *("" for _ in self.problems), "",
                             *(["UNSAFE: no sandbox"] if self.unsafe else [])])
        return buffer.getvalue()

    def failures_csv(self) -> str:
        """One row per wrong check (or failed problem): student, problem, check, hint, and where
        it is most wrong: the test point, the element of an array, expected and received."""
        columns = ["point", "at", "index", "expected", "received", "expected_shape", "received_shape"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["student", "problem", "check", "hint", *columns])
        for s in self.submissions:
            for p in s.problems:
                for f in p.failures():
                    writer.writerow([_cell(s.name), p.problem, f["check"], _cell(f["hint"]),
                                     f.get("point", ""), _cell(f.get("at", "")),
                                     *(_field(f.get(c)) for c in columns[2:])])
        return buffer.getvalue()

    def gradescope(self, visibility: str = "visible") -> str:
        """Gradescope's ``results.json`` for the one submission graded: its score, and a test per
        problem with its score, points, status and the hint lines (``visibility`` for every test:
        ``visible``, ``hidden``, ``after_due_date`` or ``after_published``)."""
        if visibility not in GRADESCOPE_VISIBILITY:
            raise ValueError(f"visibility must be one of {', '.join(GRADESCOPE_VISIBILITY)}, "
                             f"not {visibility!r}")
        if len(self.submissions) != 1:
            raise ValueError(f"a Gradescope results.json holds one submission, not {len(self.submissions)}")
        s = self.submissions[0]
        tests = []
        for number, p in enumerate(s.problems, 1):
            lines = [escape(h, keep="\n") for h in p.explained()] if not p.passed else []
            if p.output:
                lines += ["", "printed:", escape(p.output, keep="\n\t")]
            tests.append({"name": p.problem, "number": str(number), "score": round(p.score, 4),
                          "max_score": p.points if p.graded else 0,
                          "status": "passed" if p.passed or not p.graded else "failed",
                          "output": "\n".join(lines), "visibility": visibility})
        output = f"{escape(self.title)}: {_pts(s.score)}/{_pts(s.max_points)}"
        if self.spec_problems:
            output += "\nNot graded (a problem in the spec): " + ", ".join(self.spec_problems)
        if self.partial:
            output += "\nGrading was interrupted: this result is partial."
        return json.dumps({"score": round(s.score, 4), "output": output,
                           "visibility": visibility, "stdout_visibility": "hidden",
                           "execution_time": round(sum(p.seconds for p in s.problems), 3),
                           "tests": tests}, indent=2, ensure_ascii=False)

    def junit(self) -> str:
        """JUnit XML: a test suite per student, a test case per problem (skipped when not graded);
        after an interruption, a suite of skipped cases for the students not graded."""
        def failures(problems: list[ProblemResult]) -> str:
            return str(sum(p.graded and not p.passed for p in problems))

        root = ET.Element("testsuites", name=escape(self.title),
                          tests=str(len(self.submissions) * len(self.problems)),
                          failures=failures([p for s in self.submissions for p in s.problems]))
        for s in self.submissions:
            suite = ET.SubElement(root, "testsuite", name=escape(s.name), tests=str(len(s.problems)),
                                  failures=failures(s.problems),
                                  skipped=str(sum(not p.graded for p in s.problems)),
                                  time=f"{sum(p.seconds for p in s.problems):.3f}")
            for p in s.problems:
                case = ET.SubElement(suite, "testcase", classname=escape(s.name), name=p.problem,
                                     time=f"{p.seconds:.3f}")
                properties = ET.SubElement(case, "properties")
                score = f"{_pts(p.score)}/{_pts(p.points)}"
                properties.append(ET.Element("property", name="score", value=score))
                if self.unsafe:
                    properties.append(ET.Element("property", name="sandbox", value="UNSAFE: no sandbox"))
                if p.spec_problem is not None:
                    ET.SubElement(case, "skipped", message=escape(p.spec_problem))
                elif not p.passed:
                    hints = [escape(h) for h in p.explained()]
                    failure = ET.SubElement(case, "failure", message=hints[0])
                    failure.text = "\n".join(hints)
                if p.output:
                    ET.SubElement(case, "system-out").text = escape(p.output, keep="\n\t")
        if self.not_graded:
            suite = ET.SubElement(root, "testsuite", name="not graded (interrupted)",
                                  tests=str(len(self.not_graded)), failures="0",
                                  skipped=str(len(self.not_graded)))
            for name in self.not_graded:
                case = ET.SubElement(suite, "testcase", classname=escape(name), name="all problems")
                ET.SubElement(case, "skipped", message="grading was interrupted")
        return ET.tostring(root, encoding="unicode", xml_declaration=True)


GRADESCOPE_VISIBILITY = ("visible", "hidden", "after_due_date", "after_published")


def _field(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return "[" + ", ".join(str(k) for k in v) + "]"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def _pts(x: float) -> str:
    return f"{round(x, 2):g}"


_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def escape(text: str, keep: str = "") -> str:
    """Text safe for a terminal, CSV or XML: control characters (but those in ``keep``) escaped.

    >>> escape("\\x1b[2K\\r9/9 passed\\n")
    '\\\\x1b[2K\\\\r9/9 passed\\\\n'
    """
    def one(m: re.Match[str]) -> str:
        c = m.group()
        if c in keep:
            return c
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c) or \
            (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return _NOT_XML.sub("\ufffd", _CONTROL.sub(one, text))


def _cell(text: str) -> str:
    """A CSV cell: escaped, and never a formula (=, +, -, @ first) for a spreadsheet."""
    text = escape(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


class ProgressBar:
    """A one-line progress bar on stderr: ``grading [#####.....] 57/200 alice``."""

    def __init__(self, stream: TextIO | None = None, width: int = 30):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width

    def __call__(self, done: int, total: int, name: str) -> None:
        filled = self.width * done // max(total, 1)
        bar = "#" * filled + "." * (self.width - filled)
        end = "\n" if done >= total else ""
        self.stream.write(f"\rgrading [{bar}] {done}/{total} {name[:24]:<24}{end}")
        self.stream.flush()
