"""Credit per gate: a submission returns the gradient of each gate of the graph besides the
inputs'; a backward right down to one gate scores the gates it got right, and the report says which."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import symgrad as sg
from symgrad.homework import Limits

LIMITS = Limits(wall_seconds=5, cpu_seconds=2, memory_mb=512, output_kb=16)
SPEC = """
[[problem]]
id = "neuron"
function = "neuron_grad"
expression = "sigmoid(w0*x0 + w1*x1 + w2)"
credit = "gates"
points = 9
"""
# the lecture's staged backward: q1 = w0*x0, q2 = w1*x1, q3 = q1 + q2, q4 = q3 + w2, q5 = sigmoid(q4)
RIGHT = """
import numpy as np

def neuron_grad(w0, x0, w1, x1, w2):
    q5 = 1 / (1 + np.exp(-(w0 * x0 + w1 * x1 + w2)))
    dq4 = q5 * (1 - q5)
    dq3 = dq4
    dw2 = dq4
    dq1 = dq3
    dq2 = dq3
    return {"w0": dq1 * x0, "x0": dq1 * w0, "w1": dq2 * x1, "x1": dq2 * w1, "w2": dw2,
            "dq4": dq4, "dq3": dq3, "dq2": dq2, "dq1": dq1}
"""
STUDENTS = {
    "right": (RIGHT, 9, ["q4", "q3", "q2", "q1"], []),
    # σ′ written as σ at the output gate: every gradient below it is wrong
    "sigma": (RIGHT.replace("dq4 = q5 * (1 - q5)", "dq4 = q5"), 0, [], ["q4", "q3", "q2", "q1"]),
    # right down to q3; the sign flipped on the edge q3 -> q1
    "sign_at_q3": (RIGHT.replace("dq1 = dq3", "dq1 = -dq3"), 6, ["q4", "q3", "q2"], ["q1"]),
    # every gate right, one local derivative of q1 wrong: only ∂x0 is lost
    "x0": (RIGHT.replace('"x0": dq1 * w0', '"x0": dq1 * x0'), 8, ["q4", "q3", "q2", "q1"], []),
    # the gates' gradients left out: the inputs' still count
    "no_gates": (RIGHT.replace(',\n            "dq4": dq4, "dq3": dq3, "dq2": dq2, "dq1": dq1}', "}"), 5, [],
                 ["q4", "q3", "q2", "q1"]),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("gates")
    for name, (source, *_) in STUDENTS.items():
        (root / name).mkdir()
        (root / name / "homework.py").write_text(textwrap.dedent(source))
    spec = sg.homework.load_spec(SPEC)
    return spec, sg.homework.grade(spec, [root / n for n in STUDENTS], jobs=2, limits=LIMITS)


def test_the_gates_are_the_nodes_symgrad_derive_names_in_backward_order(graded):
    spec, _ = graded
    assert spec.problems[0].gates == ("q4", "q3", "q2", "q1")
    shown = subprocess.run([sys.executable, "-m", "symgrad.cli", "derive", spec.problems[0].expression],
                           capture_output=True, text=True, timeout=120).stdout
    for line in ("q1 = w0*x0", "q2 = w1*x1", "q3 = q1 + q2", "q4 = q3 + w2", "q5 = sigmoid(q4)"):
        assert line in shown


@pytest.mark.parametrize("name", list(STUDENTS))
def test_a_backward_right_down_to_a_gate_scores_the_gates_it_got_right(graded, name):
    _, report = graded
    _, score, right, wrong = STUDENTS[name]
    result = report.submission(name).problem("neuron")
    assert result.score == pytest.approx(score)
    assert result.gates_right() == (right, wrong)
    data = json.loads(report.json())
    entry = next(s for s in data["submissions"] if s["name"] == name)["problems"][0]
    assert entry["gates"] == {"right": right, "wrong": wrong}


def test_the_report_names_the_gates_right_and_wrong(graded):
    _, report = graded
    text = report.text()
    assert "gates right: q4, q3, q2; wrong: q1" in text
    assert "gates right: none; wrong: q4, q3, q2, q1" in text
    hints = report.submission("no_gates").problem("neuron").hints()
    assert any("not returned: the gradient of q4 = q3 + w2 goes under 'dq4'" in h for h in hints)
    sign = report.submission("sign_at_q3").problem("neuron")
    wrong = {c.name for c in sign.checks if not c.ok}
    assert wrong == {"∂w0", "∂x0", "∂q1"}
    assert "sign flipped" in next(c.hint for c in sign.checks if c.name == "∂q1")


def test_credit_per_gate_is_for_code_problems():
    with pytest.raises(sg.homework.SpecError, match="credit = \"gates\" needs a code problem"):
        sg.homework.load_spec('[[problem]]\nid = "a"\nkind = "answer"\nexpression = "x*y"\n'
                              'credit = "gates"\n')
    with pytest.raises(sg.homework.SpecError, match="credit must be one of 'gradients', 'gates'"):
        sg.homework.load_spec('[[problem]]\nid = "a"\nexpression = "x*y"\ncredit = "nodes"\n')
