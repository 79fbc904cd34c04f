"""Course platforms: one symbolic answer graded as JSON (PrairieLearn's external-grader shape),
the ``grade-answer`` command, and the Gradescope ``run_autograder`` script run end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import symgrad as sg
from symgrad.homework.answers import AnswerPool

ROOT = Path(__file__).resolve().parent.parent
HOMEWORK = ROOT / "examples" / "homework"
SPEC = sg.homework.load_spec(HOMEWORK / "assignment.toml")

# (problem, answer, right?, a phrase of the hint when wrong)
ANSWERS = [
    ("sigmoid_prime", "exp(-x) / (1 + exp(-x))**2", True, None),
    ("sigmoid_prime", "sigmoid(x) * (1 - sigmoid(x))", True, None),
    ("sigmoid_prime", "sigmoid(x) * sigmoid(-x)", True, None),
    ("sigmoid_prime", "exp(x) / (1 + exp(x))**2", True, None),
    ("sigmoid_prime", "1 / (2 + exp(x) + exp(-x))", True, None),
    ("sigmoid_prime", {"dx": "sigmoid(x) - sigmoid(x)**2"}, True, None),
    ("logistic", "-y * exp(-y*s) / (1 + exp(-y*s))", True, None),
    ("logistic", "-y * sigmoid(-y*s)", True, None),
    ("logistic", "-y / (1 + exp(y*s))", True, None),
    ("circuit", {"x": "z", "y": "z", "z": "x + y"}, True, None),
    ("sigmoid_prime", "sigmoid(x)", False, "σ′ written as σ"),
    ("sigmoid_prime", "-sigmoid(x) * (1 - sigmoid(x))", False, "sign flipped"),
    ("sigmoid_prime", "2 * sigmoid(x) * (1 - sigmoid(x))", False, "twice the right value"),
    ("sigmoid_prime", "exp(-x) / (1 + exp(-x))", False, "expected"),
    ("sigmoid_prime", "0", False, "all zeros"),
    ("logistic", "y * sigmoid(-y*s)", False, "sign flipped"),
    ("logistic", "-s * sigmoid(-y*s)", False, "wrong input"),
    ("logistic", "-y * sigmoid(y*s)", False, "expected"),
    ("circuit", {"x": "z", "y": "z", "z": "2*(x + y)"}, False, "twice the right value"),
    ("circuit", {"x": "z", "y": "x + y", "z": "x + y"}, False, "∂y"),
]


@pytest.fixture(scope="module")
def pool():
    with AnswerPool(SPEC.limits.memory_mb, workers=1) as p:
        yield p


@pytest.mark.parametrize("problem, answer, right, phrase", ANSWERS)
def test_one_answer_is_graded_as_json(pool, problem, answer, right, phrase):
    result = sg.homework.grade_answer(SPEC, problem, answer, pool=pool)
    json.dumps(result)  # every value is JSON
    assert result["gradable"] is True and set(result) == {"gradable", "score", "message", "tests"}
    wrt = SPEC.problem(problem).wrt
    assert [t["name"] for t in result["tests"]] == [f"∂{v}" for v in wrt]
    assert result["score"] == pytest.approx(sum(t["points"] for t in result["tests"])
                                            / sum(t["max_points"] for t in result["tests"]))
    if right:
        assert result["score"] == 1 and result["message"] == "right"
        assert all(t["message"] == "right" and "counterexample" not in t for t in result["tests"])
    else:
        assert result["score"] < 1 and phrase in result["message"]
        wrong = [t for t in result["tests"] if t["points"] < t["max_points"]]
        assert wrong and all("expected" in t["counterexample"] and "received" in t["counterexample"]
                             for t in wrong)


def test_an_unreadable_or_missing_answer_is_a_wrong_answer_not_an_error(pool):
    result = sg.homework.grade_answer(SPEC, "sigmoid_prime", "__import__('os')", pool=pool)
    assert result["score"] == 0 and "cannot read the answer" in result["message"]
    result = sg.homework.grade_answer(SPEC, "circuit", {"x": "z"}, pool=pool)
    assert result["score"] == pytest.approx(1 / 3, abs=1e-5)
    assert "no answer for y in the answer" in result["message"]
    with pytest.raises(sg.SymgradError, match="asks for x, y, z"):
        sg.homework.grade_answer(SPEC, "circuit", "z", pool=pool)
    with pytest.raises(sg.SymgradError, match="no problem 'nope'"):
        sg.homework.grade_answer(SPEC, "nope", "z", pool=pool)


def symgrad(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "symgrad.cli", *args], capture_output=True, text=True,
                          timeout=300, **kw)


def test_the_grade_answer_command_prints_json_and_says_right_or_wrong():
    spec = str(HOMEWORK / "assignment.toml")
    right = symgrad("grade-answer", spec, "sigmoid_prime", "sigmoid(x)*(1 - sigmoid(x))")
    assert right.returncode == 0, right.stderr
    assert json.loads(right.stdout)["score"] == 1
    wrong = symgrad("grade-answer", spec, "circuit", "x=z", "y=z", "z=2*(x + y)")
    assert wrong.returncode == 1
    data = json.loads(wrong.stdout)
    assert data["score"] == pytest.approx(2 / 3, abs=1e-5) and "∂z: twice the right value" in data["message"]
    bad = symgrad("grade-answer", spec, "circuit", "x=z", "y z")
    assert bad.returncode == 2 and "VAR=EXPR" in bad.stderr


@pytest.mark.parametrize("student, score", [("correct", 20), ("transposed", 19)])
def test_the_gradescope_script_writes_results_json(tmp_path, student, score):
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    shutil.copy(HOMEWORK / "assignment.toml", root / "source" / "assignment.toml")
    shutil.copytree(HOMEWORK / "submissions" / student, root / "submission")
    command = tmp_path / "symgrad"
    command.write_text(f"#!/bin/sh\nexec {sys.executable} -m symgrad.cli \"$@\"\n")
    command.chmod(0o755)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "SYMGRAD": str(command),
           "SYMGRAD_VISIBILITY": "after_published"}
    run = subprocess.run([str(ROOT / "examples" / "gradescope" / "run_autograder")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == pytest.approx(score), run.stdout + run.stderr  # says why it could not grade
    assert [t["name"] for t in results["tests"]] == [p.id for p in SPEC.problems]
    assert all(t["visibility"] == "after_published" for t in results["tests"])
    assert sum(t["max_score"] for t in results["tests"]) == SPEC.max_points


def test_the_gradescope_script_reports_when_it_cannot_grade(tmp_path):
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "source" / "assignment.toml").write_text("[[problem]]\nid = 'x'\n")  # no expression
    (root / "submission").mkdir()
    command = tmp_path / "symgrad"
    command.write_text(f"#!/bin/sh\nexec {sys.executable} -m symgrad.cli \"$@\"\n")
    command.chmod(0o755)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "SYMGRAD": str(command)}
    run = subprocess.run([str(ROOT / "examples" / "gradescope" / "run_autograder")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and "could not run" in results["output"]


def test_gradescope_results_are_for_one_submission():
    spec = str(HOMEWORK / "assignment.toml")
    subs = [str(HOMEWORK / "submissions" / n) for n in ("correct", "transposed")]
    run = symgrad("check", spec, *subs, "--gradescope", "-", "--no-progress")
    assert run.returncode == 2 and "--gradescope writes one student's results.json" in run.stderr
