"""Symbolic answers: read by the safe parser, compared symbolically and at random points."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.graph import graph
from symgrad.homework import Limits
from symgrad.homework.answers import AnswerPool, answer_values, check, parse_answer, same_symbolically

SIGMOID = graph("sigmoid(x)")
LIMITS = Limits(wall_seconds=3, cpu_seconds=1, memory_mb=512, output_kb=64)


@pytest.mark.parametrize("text", ["sigmoid(x)*(1 - sigmoid(x))", "exp(-x)/(1 + exp(-x))**2",
                                  "1/(2 + exp(x) + exp(-x))", "sigmoid(x) - sigmoid(x)**2",
                                  "exp(x)/(1 + exp(x))**2"])
def test_every_form_of_the_sigmoid_derivative_is_right(text):
    assert same_symbolically(parse_answer(text, {"x": ()}), SIGMOID, "x")


@pytest.mark.parametrize("text", ["sigmoid(x)*(sigmoid(x) - 1)", "sigmoid(x)", "exp(-x)/(1 + exp(-x))"])
def test_wrong_forms_are_not(text):
    assert not same_symbolically(parse_answer(text, {"x": ()}), SIGMOID, "x")


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('true')", "only calls of named functions"),
    ("x.real", "attribute access"),
    ("(lambda: 1)()", "only calls of named functions"),
    ("open('/etc/passwd')", "unknown function 'open'"),
    ("x + y", "uses 'y', which is not an input of this problem (inputs: x)"),
    ("x" + " + x" * 5000, "too long"),
])
def test_unsafe_or_foreign_answers_are_refused(text, message):
    with pytest.raises(sg.SymgradError) as e:
        parse_answer(text, {"x": ()})
    assert message in str(e.value)


def test_values_keep_nan_and_broadcast_constants():
    points = [{"x": np.asarray(-1.0)}, {"x": np.asarray(4.0)}]
    log = answer_values(parse_answer("log(x)", {"x": ()}), points, ())
    assert np.isnan(log[0]) and np.isclose(log[1], np.log(4.0))
    two = answer_values(parse_answer("2", {"x": (3,)}), [{"x": np.zeros(3)}], (3,))
    assert np.array_equal(two[0], [2.0, 2.0, 2.0])
    wrong = answer_values(parse_answer("x", {"x": (3,), "y": (2,)}), [{"x": np.zeros(3)}], (2,))
    assert wrong[0].shape == (3,)  # left for the diagnosis to name


def test_the_worker_replies_values_first_then_verdicts():
    request = {"expression": "x*y + 0*z", "shapes": {"x": [], "y": [], "z": []},
               "answers": {"x": "y", "y": "2*x", "z": "nonsense("},
               "points": [{"x": {"shape": [], "data": [2.0]}, "y": {"shape": [], "data": [3.0]},
                           "z": {"shape": [], "data": [1.0]}}]}
    replies = list(check(request))
    assert replies[0] == {"var": "x", "values": [{"shape": [], "data": [3.0]}]}
    assert replies[1] == {"var": "y", "values": [{"shape": [], "data": [4.0]}]}
    assert replies[2]["var"] == "z" and "syntax error" in replies[2]["error"]
    assert replies[3:] == [{"var": "x", "symbolic": "zero"}, {"var": "y", "symbolic": "nonzero"},
                           {"done": True}]


def test_a_worker_that_overruns_is_replaced():
    request = {"expression": "sigmoid(x)", "shapes": {"x": []}, "answers": {"x": "sigmoid(x)*(1-sigmoid(x))"},
               "points": [{"x": {"shape": [], "data": [0.5]}}]}
    with AnswerPool(512) as pool:
        replies, status = pool.ask(request, timeout=0.0)
        assert status == "timeout" and replies == []
        replies, status = pool.ask(request, timeout=60)
        assert status == "done" and {"var": "x", "symbolic": "zero"} in replies


SPEC = """
[[problem]]
id = "prod"
kind = "answer"
expression = "x*y + sin(x)"
"""


def grade(folder, answers: str | None):
    folder.mkdir(parents=True)
    if answers is not None:
        (folder / "answers.toml").write_text(answers)
    return sg.homework.grade(SPEC, [folder], limits=LIMITS).submissions[0].problems[0]


def test_answers_graded_through_the_spec(tmp_path):
    right = grade(tmp_path / "right", '[prod]\ndx = "y + cos(x)"\ny = "x"\n')
    assert right.passed and right.score == 1
    wrong = grade(tmp_path / "wrong", '[prod]\nx = "y + cos(x) + 1"\ny = "y + cos(x)"\n')
    hints = wrong.hints()
    assert hints[0].startswith("∂x: expected ") and " at x=" in hints[0]
    assert hints[1].startswith("∂y: this is ∂x: the gradient with respect to the wrong input (x, not y) — "
                               "counterexample at x=")
    assert wrong.score == 0


def test_missing_and_malformed_answers(tmp_path):
    for i, (answers, expected) in enumerate([
        (None, "no answers.toml in the submission"),
        ("[prod\n", "answers.toml is not valid TOML"),
        ("[other]\nx = '1'\n", "no [prod] table in answers.toml"),
    ]):
        result = grade(tmp_path / str(i), answers)
        assert result.reason is not None and result.reason.startswith(expected)
    result = grade(tmp_path / "x", "[prod]\nx = 3\n")
    assert [c.hint for c in result.checks] == ['the answer must be a string like "2*x"',
                                               "no answer for y in [prod] of answers.toml"]
