"""The homework checker: grade students' gradient code and symbolic answers, safely.

>>> import symgrad as sg
>>> report = sg.homework.grade("assignment.toml", ["alice/", "bob/"], jobs=2)  # doctest: +SKIP
>>> print(report.text())  # doctest: +SKIP
"""

from .diagnose import diagnose
from .grading import grade, prepare
from .misconceptions import Misconception, catalogue
from .reference import Reference, reference_gradients
from .report import Check, ClassReport, ProblemResult, SubmissionResult
from .sandbox import Isolation, SandboxUnavailable, probe_isolation
from .single import grade_answer
from .spec import InputSpec, Limits, Problem, Spec, SpecError, load_spec

__all__ = [
    "Check", "ClassReport", "InputSpec", "Isolation", "Limits", "Misconception", "Problem", "ProblemResult",
    "Reference", "SandboxUnavailable", "Spec", "SpecError", "SubmissionResult", "catalogue", "diagnose",
    "grade", "grade_answer", "load_spec", "prepare", "probe_isolation", "reference_gradients",
]
