"""One symbolic answer, graded on its own: for a course platform's external grader hook.

:func:`grade_answer` takes a spec, a problem's id and the student's answer
(one expression string, or one per variable) and returns a JSON-ready dict
in the shape PrairieLearn's external graders return: ``gradable``, a
``score`` from 0 to 1, a ``message``, and one entry of ``tests`` per
derivative with its ``points``, ``max_points`` and ``message``.  The answer
is checked exactly as an answers file is (:func:`~symgrad.homework.grading.check_answers`):
symgrad's safe parser in a worker process, the numbers at the problem's
test points and SymPy, a diagnosis of every wrong derivative.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from .answers import AnswerPool
from .grading import check_answers, prepare
from .report import escape
from .spec import Spec, load_spec

MAX_ANSWER_CHARS = 10_000


def grade_answer(spec: Spec | str | Path, problem: str, answer: str | Mapping[str, str], *,
                 seed: int | None = None, pool: AnswerPool | None = None) -> dict[str, Any]:
    """Grade one student's symbolic answer to one problem of ``spec``.

    Parameters
    ----------
    spec:
        A :class:`Spec`, or the path of (or TOML text of) an assignment spec.
    problem:
        The problem's id; its ``expression`` is differentiated with respect to its ``wrt``.
    answer:
        ∂f/∂v as an expression string when the problem asks for one derivative, or
        ``{variable: expression}`` (keys ``x`` or ``dx``).
    seed:
        The seed of the test points (default: the spec's).
    pool:
        Worker processes to check answers in, kept for many calls (default: one, for this call).

    Returns
    -------
    dict
        ``{"gradable": True, "score": 0..1, "message": ..., "tests": [{"name": "∂x",
        "points": ..., "max_points": ..., "message": ..., "counterexample": ...}]}``;
        ``gradable`` is False (score 0, with the reason) when the problem cannot be
        graded (its reference failed its witness).

    >>> import symgrad as sg
    >>> spec = '''
    ... [[problem]]
    ... id = "sig"
    ... expression = "sigmoid(x)"
    ... '''
    >>> sg.homework.grade_answer(spec, "sig", "sigmoid(x) * (1 - sigmoid(x))")["score"]
    1.0
    >>> print(sg.homework.grade_answer(spec, "sig", "sigmoid(x)")["message"])  # doctest: +ELLIPSIS
    ∂x: ...
    """
    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    p = spec.problem(problem)
    if isinstance(answer, str):
        if len(p.wrt) != 1:
            raise InputError(f"problem {p.id!r} asks for {', '.join(p.wrt)}: give the answer as "
                             f"{{variable: expression}}")
        answer = {p.wrt[0]: answer}
    if not isinstance(answer, Mapping) or not all(isinstance(k, str) for k in answer):
        raise InputError("the answer must be an expression string or {variable: expression}")
    answers: dict[str, Any] = {}
    for var in p.wrt:
        key = next((k for k in (var, f"d{var}") if k in answer), None)
        if key is not None:
            answers[var] = answer[key]
            if isinstance(answers[var], str) and len(answers[var]) > MAX_ANSWER_CHARS:
                raise InputError(f"the answer for {var} is longer than {MAX_ANSWER_CHARS} characters")
    prep = prepare(p, spec.seed if seed is None else seed)
    if prep.spec_problem is not None:
        return {"gradable": False, "score": 0.0, "message": f"not graded: {prep.spec_problem}", "tests": []}
    if pool is None:
        with AnswerPool(spec.limits.memory_mb) as own:
            result = check_answers(prep, answers, "the answer", spec.limits, own)
    else:
        result = check_answers(prep, answers, "the answer", spec.limits, pool)
    tests = [{"name": c.name, "points": result.points / len(result.checks) if c.ok else 0.0,
              "max_points": result.points / len(result.checks),
              "message": "right" if c.ok else escape(c.hint or "wrong"),
              **({"counterexample": c.counterexample} if c.counterexample else {})}
             for c in result.checks]
    score = result.score / result.points if result.points else float(result.passed)
    message = "\n".join(escape(h) for h in result.explained()) or "right"
    return {"gradable": True, "score": round(score, 6), "message": message, "tests": tests}
