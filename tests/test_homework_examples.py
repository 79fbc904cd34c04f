"""The example assignment: every submission graded, each mistake with its diagnosis line,
every hostile submission stopped with a clear reason, and the grader unharmed."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import secrets
from pathlib import Path

import pytest

import symgrad as sg
from symgrad.homework import Limits, load_spec

from .conftest import new_children

HOMEWORK = Path(__file__).resolve().parents[1] / "examples" / "homework"
LIMITS = Limits(wall_seconds=3, cpu_seconds=1, memory_mb=512, output_kb=256)
SECRET_NAME = "SYMGRAD_TEST_SECRET"
PWNED = Path("/tmp/symgrad-pwned")

# submission -> {problem: text its hint line must contain}; every other problem must pass
MISTAKES = {
    "correct": {},
    "sign_flipped": {"circuit": "∂x: sign flipped"},
    "factor_two": {"ridge": "∂w: a local derivative dropped at q8 (div): ∂q8/∂q7 = 1/2 taken as 1"},
    "missing_regularization": {"ridge": "∂w: missing the gradient of the regularization term lam*w**2 / 2"},
    "other_variable": {"neuron": "∂w0: this is ∂x0: the gradient with respect to the wrong input"},
    "nan_placeholder": {"neuron_layer": "∂x1: NaN at every test point"},
    "ignores_dout": {"neuron_layer": "∂w2: ignores dout at the output q5"},
    "mean_not_sum": {"sigmoid_layer": "∂b: the gradient of b, broadcast at q1 (add), averaged over axis 0 "
                                      "instead of summed"},
    "not_summed": {"sigmoid_layer": "∂b: the gradient of b, broadcast at q1 (add), not summed back over "
                                    "axis 0"},
    "transposed": {"sigmoid_layer": "∂X: shape (3, 4) where X is (4, 3): a missing transpose?"},
    "some_elements": {"sigmoid_layer": "∂X: right at 9 of 12 elements; wrong at [3, 0], [3, 1], [3, 2]"},
    "list_not_array": {"sigmoid_layer": "∂X: a list, not a NumPy array"},
    "no_return": {"neuron": "neuron_grad() returned None; expected a dict"},
    "answer_sign": {"sigmoid_prime": "∂x: sign flipped"},
    "answer_other_variable": {"logistic": "∂s: this is ∂y: the gradient with respect to the wrong input"},
    "affine_missing_transpose": {
        "affine_backward": "∂W: transposed matmul adjoint at q1 (matmul)"},
    "softmax_transposed": {"softmax_loss": "∂W: transposed: the transpose of this is ∂W"},
    "softmax_missing_regularization": {
        "softmax_loss": "∂W: missing the gradient of the regularization term reg * sum(W * W)"},
    "softmax_sum_not_mean": {"softmax_loss": "∂W: missing 1/5 at q5 (mean): the mean's gradient taken "
                                             "as a sum's"},
    "softmax_some_elements": {
        "softmax_loss": "∂W: right at 6 of 9 elements; wrong at [0, 2], [1, 2], [2, 2]"},
}
CODE = ("circuit", "neuron", "neuron_layer", "ridge", "sigmoid_layer", "affine_backward", "softmax_loss")
HOSTILE = {
    "loop_forever": {"circuit": "limit"},
    "allocate_8gib": {"circuit": "ran out of memory (limit 512 MB) in circuit_grad() at test point 1"},
    "exit": {"circuit": "called sys.exit(0) in circuit_grad()",
             "neuron": "exited (status 3) in neuron_grad() at test point 1 before returning its results"},
    "crash_at_import": {p: "raised ModuleNotFoundError: No module named 'torch_that_is_not_installed' "
                           "(homework.py, line 4) while importing homework.py" for p in CODE},
    "print_50mb": {},  # printing too much is not a mistake: graded again with its output discarded
    "mutate_inputs": {"sigmoid_layer": "modified its input X in place in sigmoid_layer_forward()"},
    "read_environment": {"circuit": "raised LookupError: no secret in the environment"},
    "unsafe_answer": {"sigmoid_prime": "∂x: cannot read the answer"},
}


def tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def graded():
    """Grade every example submission once, with a secret in the grader's environment."""
    secret = secrets.token_hex(16)
    environ = dict(os.environ)
    cwd = os.getcwd()
    rlimits = {r: resource.getrlimit(r) for r in (resource.RLIMIT_AS, resource.RLIMIT_CPU,
                                                   resource.RLIMIT_FSIZE)}
    before = tree_hash(HOMEWORK)
    helpers = frozenset(new_children())
    folders = [HOMEWORK / "submissions" / n for n in MISTAKES] + [HOMEWORK / "hostile" / n for n in HOSTILE]
    folders.append(HOMEWORK / "submissions" / "correct" / "answers.toml")  # a single file
    folders.append(HOMEWORK / "submissions" / "correct_other_forms")
    os.environ[SECRET_NAME] = secret
    try:
        report = sg.homework.grade(HOMEWORK / "assignment.toml", folders, jobs=2, limits=LIMITS)
    finally:
        del os.environ[SECRET_NAME]
    harm = {
        "environment": dict(os.environ) == environ, "cwd": os.getcwd() == cwd,
        "rlimits": rlimits == {r: resource.getrlimit(r) for r in rlimits},
        "files": tree_hash(HOMEWORK) == before, "children": new_children(helpers) == [],
    }
    return report, secret, harm


def failing(report, name):
    return {p.problem: p for p in report.submission(name).problems if not p.passed}


@pytest.mark.parametrize("name", ["correct", "correct_other_forms"])
def test_the_correct_submissions_score_full_marks(graded, name):
    report, _, _ = graded
    s = report.submission(name)
    assert s.passed and s.score == s.max_points == 20
    assert all(c.ok for p in s.problems for c in p.checks)


def test_answers_in_other_forms_are_right():
    """σ(x)(1 − σ(x)) in one submission, e^{−x}/(1 + e^{−x})² in the other."""
    forms = {name: (HOMEWORK / "submissions" / name / "answers.toml").read_text()
             for name in ("correct", "correct_other_forms")}
    assert 'x = "exp(-x) / (1 + exp(-x))**2"' in forms["correct"]
    assert 'x = "sigmoid(x) * (1 - sigmoid(x))"' in forms["correct_other_forms"]


@pytest.mark.parametrize("name", [n for n in MISTAKES if n != "correct"])
def test_each_mistake_fails_with_its_diagnosis(graded, name):
    report, _, _ = graded
    expected = MISTAKES[name]
    wrong = failing(report, name)
    assert set(wrong) == set(expected), f"{name}: {({p: r.hints() for p, r in wrong.items()})}"
    for problem, text in expected.items():
        lines = wrong[problem].hints()
        assert any(text in line for line in lines), f"{name}/{problem}: {lines}"
        assert wrong[problem].score < wrong[problem].points
    assert not report.submission(name).passed


@pytest.mark.parametrize("name", list(HOSTILE))
def test_each_hostile_submission_fails_with_a_clear_reason_within_its_limits(graded, name):
    report, _, _ = graded
    wrong = failing(report, name)
    assert set(wrong) == set(HOSTILE[name]), f"{name}: {({p: r.hints() for p, r in wrong.items()})}"
    for problem, text in HOSTILE[name].items():
        result = wrong[problem]
        assert text in result.hints()[0], result.hints()
        assert result.score == 0
        assert result.seconds < LIMITS.wall_seconds + 2
    passed = [p for p in report.submission(name).problems if p.passed]
    assert len(passed) == 9 - len(HOSTILE[name])  # the rest of the submission is graded as usual


def test_the_endless_loop_is_stopped_by_a_limit(graded):
    report, _, _ = graded
    reason = report.submission("loop_forever").problem("circuit").reason
    assert ("CPU-time limit (1 s)" in reason or "wall-time limit" in reason) and "circuit_grad()" in reason


def test_the_student_never_sees_the_graders_secret(graded):
    report, secret, _ = graded
    assert secret not in report.json()
    assert "found the secret" not in report.submission("read_environment").problem("circuit").output


def test_printing_is_capped_in_the_report_and_the_right_answer_still_counts(graded):
    report, _, _ = graded
    result = report.submission("print_50mb").problem("circuit")
    marker = ("\n[output cut here: more than 256 kB printed; the rest was discarded and the problem "
              "graded without it]")
    assert result.passed and result.score == result.points
    assert result.output.endswith(marker) and set(result.output[:-len(marker)]) <= {"x", "\n"}
    assert len(result.output) <= 4096 + len(marker)
    data = json.loads(report.json())
    entry = next(s for s in data["submissions"] if s["name"] == "print_50mb")["problems"][0]
    assert entry["output"].endswith(marker) and entry["passed"]


def test_the_unsafe_answer_ran_nothing(graded):
    report, _, _ = graded
    assert not PWNED.exists()
    hint = report.submission("unsafe_answer").problem("sigmoid_prime").hints()[0]
    assert "only calls of named functions" in hint


def test_the_grader_is_unharmed(graded):
    _, _, harm = graded
    assert harm == {k: True for k in harm}


def test_the_reports_cover_every_submission(graded):
    report, _, _ = graded
    n = len(MISTAKES) + len(HOSTILE) + 2
    assert len(report.submissions) == n and not report.passed
    text = report.text()
    assert "correct" in text and "Class summary" in text and f"2/{n}" in text
    assert len(report.csv().splitlines()) == n + 1


def test_the_spec_problems_are_those_graded(graded):
    report, _, _ = graded
    spec = load_spec(HOMEWORK / "assignment.toml")
    assert [i for i, _ in report.problems] == [p.id for p in spec.problems]


def test_a_single_answers_file_is_a_submission(graded):
    report, _, _ = graded
    s = report.submission("answers")
    assert s.problem("sigmoid_prime").passed and s.problem("logistic").passed
    reason = "no homework.py in the submission (answers.toml is not a .py file)"
    assert all(s.problem(problem).reason == reason for problem in CODE)
