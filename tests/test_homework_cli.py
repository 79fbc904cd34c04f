"""``symgrad check``: a class of 200 in parallel, the report formats and the exit status."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

import symgrad as sg
from symgrad.cli import main
from symgrad.homework import grading

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "homework"
SPEC = """
[assignment]
title = "Tiny circuit"
seed = 5

[limits]
wall_seconds = 5
cpu_seconds = 2
memory_mb = 512

[[problem]]
id = "circuit"
function = "grad"
expression = "(x + y) * z"
points = 3
trials = 2
"""
RIGHT = 'def grad(x, y, z):\n    return {"x": z, "y": z, "z": x + y}\n'
SIGN = 'def grad(x, y, z):\n    return {"x": -z, "y": z, "z": x + y}\n'


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    return path


def students(folder: Path, n: int, wrong_every: int = 0) -> list[str]:
    folder.mkdir()
    paths = []
    for i in range(n):
        path = folder / f"student{i:03d}.py"
        path.write_text(SIGN if wrong_every and i % wrong_every == 0 else RIGHT)
        paths.append(str(path))
    return paths


def test_two_hundred_submissions_in_parallel(tmp_path, spec, capsys):
    paths = students(tmp_path / "class", 200, wrong_every=10)
    grades = tmp_path / "grades.csv"
    code = main(["check", str(spec), *paths, "--jobs", "2", "--progress", "--csv", str(grades), "--quiet"])
    assert code == 1  # 20 students flipped a sign
    err = capsys.readouterr().err
    assert "grading [" in err and "200/200" in err and err.count("\r") >= 200
    rows = list(csv.reader(io.StringIO(grades.read_text())))
    assert rows[0] == ["student", "circuit", "total"]
    assert len(rows) == 201
    scores = {name: (float(c), float(t)) for name, c, t in rows[1:]}
    assert len(scores) == 200
    for i in range(200):
        assert scores[f"student{i:03d}"] == ((2.0, 2.0) if i % 10 == 0 else (3.0, 3.0))


def test_json_junit_and_text(tmp_path, spec, capsys):
    paths = students(tmp_path / "few", 3, wrong_every=2)
    junit = tmp_path / "junit.xml"
    code = main(["check", str(spec), *paths, "--json", "-", "--junit", str(junit), "--no-progress"])
    assert code == 1
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["assignment"] == "Tiny circuit" and data["max_points"] == 3 and not data["passed"]
    by_name = {s["name"]: s for s in data["submissions"]}
    hints = by_name["student000"]["problems"][0]["hints"]
    assert len(hints) == 1 and hints[0].startswith("∂x: sign flipped on the path through")
    assert by_name["student001"]["passed"] and by_name["student001"]["score"] == 3
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "3" and root.get("failures") == "2"
    failures = root.findall(".//failure")
    assert len(failures) == 2 and all(f.get("message").startswith("∂x: sign flipped") for f in failures)
    assert "Class summary" not in out  # the report on stdout is the JSON alone


def test_text_report_and_exit_status(tmp_path, spec, capsys):
    paths = students(tmp_path / "good", 2)
    assert main(["check", str(spec), *paths]) == 0
    text = capsys.readouterr().out
    assert "student000" in text and "passed" in text and "Class summary" in text and "Sandbox:" in text
    bad = students(tmp_path / "bad", 1, wrong_every=1)
    assert main(["check", str(spec), *bad]) == 1
    assert "∂x: sign flipped" in capsys.readouterr().out
    assert main(["check", str(spec), *bad, "--report-only"]) == 0


def test_bad_input_is_an_error_not_a_traceback(tmp_path, spec, capsys):
    broken = tmp_path / "broken.toml"
    broken.write_text('[[problem]]\nid = "p"\nexpression = "x +"\n')
    assert main(["check", str(broken), str(tmp_path)]) == 2
    assert "symgrad: error: problem 'p': expression: syntax error" in capsys.readouterr().err
    assert main(["check", str(spec), str(tmp_path / "nobody")]) == 2
    assert "no such submission" in capsys.readouterr().err


def test_the_example_class_from_the_command_line(tmp_path, capsys):
    grades = tmp_path / "grades.csv"
    code = main(["check", str(EXAMPLE / "assignment.toml"), str(EXAMPLE / "submissions" / "correct"),
                 str(EXAMPLE / "submissions" / "transposed"), "--csv", str(grades), "-j", "2"])
    assert code == 1
    text = capsys.readouterr().out
    assert "∂X: shape (3, 4) where X is (4, 3): a missing transpose?" in text
    rows = list(csv.reader(io.StringIO(grades.read_text())))
    assert rows[0] == ["student", "circuit", "neuron", "neuron_layer", "ridge", "sigmoid_layer",
                       "sigmoid_prime", "logistic", "affine_backward", "softmax_loss", "total"]
    assert rows[1] == ["correct", "2", "2", "3", "2", "3", "1", "1", "3", "3", "20"]
    assert rows[2][0] == "transposed" and rows[2][5] == "2" and rows[2][-1] == "19"


def test_help_lists_the_options_and_explains_the_spec(capsys):
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out = capsys.readouterr().out
    for option in ("--jobs", "--json", "--csv", "--junit", "--report-only", "--progress", "--seed"):
        assert option in out
    for key in ("[assignment]", "[limits]", "[[problem]]", "[problem.inputs]", "expression =", "kind =",
                "style =", "function =", "wrt =", "regularization =", "batch =", "labels =", "value ="):
        assert key in out, key
    example = out.split("a full example: ")[1].split(")")[0]
    assert (EXAMPLE.parents[1] / example).is_file()


def test_jobs_grade_that_many_submissions_at_the_same_time(tmp_path, spec, monkeypatch):
    """The first three sandbox runs wait for each other: with --jobs 3 they meet."""
    barrier, lock, calls, running, peak = threading.Barrier(3, timeout=20), threading.Lock(), [0], [0], [0]
    real = grading.run

    def meeting(*args, **kwargs):
        with lock:
            calls[0] += 1
            first = calls[0] <= 3
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            if first:
                barrier.wait()
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(grading, "run", meeting)
    report = sg.homework.grade(spec, students(tmp_path / "class", 6), jobs=3)
    assert report.passed and len(report.submissions) == 6
    assert peak[0] == 3 and not barrier.broken

