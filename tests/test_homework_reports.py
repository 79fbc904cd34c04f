"""Reports: where each failure is most wrong (test point, expected, received, the element of an
array) in every form; output cut with a marker; a dict under other names; Gradescope's results.json."""

from __future__ import annotations

import csv
import io
import json
import textwrap
from xml.etree import ElementTree as ET

import numpy as np
import pytest

import symgrad as sg
from symgrad.homework import Limits

LIMITS = Limits(wall_seconds=5, cpu_seconds=2, memory_mb=512, output_kb=16)
SPEC = """
[assignment]
title = "Reports"

[[problem]]
id = "circuit"
function = "circuit_grad"
expression = "(x + y) * z"

[[problem]]
id = "norm"
function = "norm_grad"
expression = "sum((W @ x)**2)"
points = 2
[problem.inputs]
W = { shape = [2, 3] }
x = { shape = [3] }
"""
RIGHT = """
import numpy as np

def circuit_grad(x, y, z):
    return {"x": z, "y": z, "z": x + y}

def norm_grad(W, x):
    q = W @ x
    return {"W": 2 * np.outer(q, x), "x": 2 * W.T @ q}
"""
STUDENTS = {
    "alice": RIGHT,
    "bob": RIGHT.replace('"z": x + y', '"z": 2 * (x + y)'),
    "carol": RIGHT.replace('return {"W": 2 * np.outer(q, x)',
                           'dW = 2 * np.outer(q, x)\n    dW[1, 2] += 1.0\n    return {"W": dW'),
    "dave": RIGHT.replace('{"W": 2 * np.outer(q, x), "x": 2 * W.T @ q}',
                          '{"weight": 2 * np.outer(q, x), "input": 2 * W.T @ q}'),
    "erin": RIGHT.replace("    return {\"x\": z", "    print('y' * 100_000)\n    return {\"x\": z"),
    # more than the 4 kB kept, once (the grader calls grad at several points): well under 16 kB
    "frank": RIGHT.replace("    q = W @ x", "    global said\n    if 'said' not in globals():\n"
                                            "        said = print('f' * 6000)\n    q = W @ x"),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    for name, source in STUDENTS.items():
        (root / name).mkdir()
        (root / name / "homework.py").write_text(textwrap.dedent(source))
    spec = sg.homework.load_spec(SPEC)
    report = sg.homework.grade(spec, [root / n for n in STUDENTS], jobs=2, limits=LIMITS)
    return spec, report


def test_a_scalar_failure_records_the_test_point_expected_and_received(graded):
    spec, report = graded
    check = next(c for c in report.submission("bob").problem("circuit").checks if c.name == "∂z")
    cx = check.counterexample
    point = spec.problems[0].sample(spec.seed)[cx["point"] - 1]
    right = float(point["x"] + point["y"])
    assert cx["expected"] == pytest.approx(right) and cx["received"] == pytest.approx(2 * right)
    assert "index" not in cx and cx["at"].startswith("x=")
    # the point where it is most wrong: |2s - s| is largest there
    sums = [abs(float(p["x"] + p["y"])) for p in spec.problems[0].sample(spec.seed)]
    assert cx["point"] - 1 == int(np.argmax(sums))


def test_an_array_failure_records_the_worst_element_and_its_index(graded):
    _, report = graded
    check = next(c for c in report.submission("carol").problem("norm").checks if c.name == "∂W")
    cx = check.counterexample
    assert cx["index"] == [1, 2] and cx["shape"] == [2, 3]
    assert cx["received"] - cx["expected"] == pytest.approx(1.0)
    assert "right at 5 of 6 elements; wrong at [1, 2]" in check.hint


def test_every_form_carries_the_counterexample(graded):
    _, report = graded
    text = report.text()
    line = next(ln for ln in text.splitlines() if "twice the right value" in ln)
    assert "— at x=" in line and "expected" in line and "received" in line
    assert "element [1, 2]" in next(ln for ln in text.splitlines() if "5 of 6 elements" in ln)

    data = json.loads(report.json())
    bob = next(s for s in data["submissions"] if s["name"] == "bob")
    z = next(c for c in bob["problems"][0]["checks"] if c["name"] == "∂z")
    assert set(z["counterexample"]) == {"point", "at", "expected", "received"}

    rows = list(csv.DictReader(io.StringIO(report.failures_csv())))
    carol = next(r for r in rows if r["student"] == "carol")
    assert carol["problem"] == "norm" and carol["check"] == "∂W" and carol["index"] == "[1, 2]"
    assert float(carol["received"]) - float(carol["expected"]) == pytest.approx(1.0, rel=1e-4)
    assert {r["student"] for r in rows} == {"bob", "carol", "dave"}
    numbers = [r[k] for r in rows for k in ("expected", "received") if r[k]]
    assert numbers and all(isinstance(float(x), float) for x in numbers)  # no quote before a minus sign

    root = ET.fromstring(report.junit())
    failure = root.find("testsuite[@name='carol']/testcase[@name='norm']/failure")
    assert failure is not None and "element [1, 2]: expected" in (failure.text or "")


def test_a_dict_under_other_names_is_reported_with_the_names_found(graded):
    _, report = graded
    hints = {c.name: c.hint for c in report.submission("dave").problem("norm").checks}
    assert "keys 'weight', 'input'; asked: W, x" in hints["∂W"]
    assert "'weight' holds ∂W; name it 'W' (or 'dW')" in hints["∂W"]
    assert "'input' holds ∂x; name it 'x' (or 'dx')" in hints["∂x"]


def test_printing_too_much_is_cut_with_a_marker_and_still_graded(graded):
    _, report = graded
    erin = report.submission("erin")
    assert erin.passed and erin.score == 3
    out = erin.problem("circuit").output
    assert out.endswith("[output cut here: more than 16 kB printed; the rest was discarded and the "
                        "problem graded without it]")
    frank = report.submission("frank").problem("norm")
    assert frank.passed and frank.output.endswith("[output cut here: only the first 4 kB are kept]")
    assert frank.output.startswith("f" * 4000)


def test_gradescope_results_hold_the_documented_fields(graded, tmp_path):
    _, report = graded
    one = sg.homework.ClassReport(report.title, report.problems, [report.submission("carol")],
                                  report.isolation, report.seed)
    results = json.loads(one.gradescope(visibility="after_due_date"))
    # the fields of Gradescope's autograder specification (results.json)
    top = {"score", "execution_time", "output", "output_format", "test_output_format",
           "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
    per_test = {"score", "max_score", "status", "name", "name_format", "number", "output",
                "output_format", "tags", "visibility", "extra_data"}
    assert set(results) <= top and {"score", "tests"} <= set(results)
    assert isinstance(results["score"], (int, float)) and isinstance(results["execution_time"], (int, float))
    for test in results["tests"]:
        assert set(test) <= per_test and {"name", "score", "max_score", "output", "visibility"} <= set(test)
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] == "after_due_date"
        assert isinstance(test["score"], (int, float)) and isinstance(test["max_score"], (int, float))
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
    assert results["stdout_visibility"] in ("hidden", "visible")
    assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]))
    assert results["score"] == pytest.approx(report.submission("carol").score)
    norm = next(t for t in results["tests"] if t["name"] == "norm")
    assert norm["status"] == "failed" and norm["max_score"] == 2 and "element [1, 2]" in norm["output"]
    with pytest.raises(ValueError, match="one submission"):
        report.gradescope()
    with pytest.raises(ValueError, match="visibility"):
        one.gradescope(visibility="sometimes")


MISPLACED = [
    ('[[problem]]\nid = "c"\nexpression = "(x + y) * z"\n[problem.inputs]\nx = { range = [-3, 3] }\n'
     'wrt = ["x"]\n', "wrt = ['x'] is under [problem.inputs], so TOML reads it as an input; wrt is a key "
     "of the [[problem]] table: move it above [problem.inputs]"),
    ('[[problem]]\nid = "c"\nexpression = "(x + y) * z"\n[problem.inputs]\nx = { range = [-3, 3] }\n'
     'points = 2\n', "points = 2 is under [problem.inputs]"),
    ('[[problem]]\nid = "c"\nexpression = "(x + y) * z"\nwall_seconds = 3\n',
     "wall_seconds is a key of the [limits] table, not of this one: move it under [limits]"),
    ('[limits]\nwall_seconds = 3\nseed = 4\n[[problem]]\nid = "c"\nexpression = "x * y"\n',
     "[limits]: seed is a key of the [assignment] table"),
    ('[[problem]]\nid = "c"\nexpression = "(x + y) * z"\nx = { range = [-3, 3] }\n',
     "unknown key 'x'; an input's sampling? put it under [problem.inputs]"),
]


@pytest.mark.parametrize("text, message", MISPLACED)
def test_a_misplaced_key_says_where_it_belongs(text, message):
    with pytest.raises(sg.homework.SpecError) as e:
        sg.homework.load_spec(text)
    assert message in str(e.value)
