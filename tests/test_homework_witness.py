"""The reference and its witness: compiled code gives the reference, check_grad confirms it,
and a reference it does not confirm is the spec's problem, not the student's."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from xml.etree import ElementTree as ET

import numpy as np
import pytest

import symgrad as sg
from symgrad.cli import main
from symgrad.homework import Limits, load_spec, prepare, reference_gradients
from symgrad.homework.reference import Reference, witness

SPEC = """
[assignment]
title = "Witnessed"

[[problem]]
id = "circuit"
function = "circuit_grad"
expression = "(x + y) * z"
trials = 2

[[problem]]
id = "net"
function = "net_grad"
expression = "sum(sigmoid(X @ W))"
trials = 2
[problem.inputs]
X = { shape = [20, 10] }
W = { shape = [10, 5] }
"""
RIGHT = """
import numpy as np

def circuit_grad(x, y, z):
    return {"x": z, "y": z, "z": x + y}

def net_grad(X, W):
    s = 1 / (1 + np.exp(-(X @ W)))
    d = s * (1 - s)
    return {"X": d @ W.T, "W": X.T @ d}
"""
KINK = """
[[problem]]
id = "on_the_kink"
expression = "relu(x) * y"
wrt = ["x", "y"]
[problem.inputs]
x = { value = 0.0 }
"""
NOT_FINITE = """
[[problem]]
id = "log_of_negative"
expression = "log(x) * y"
[problem.inputs]
x = { range = [-2, -1] }
"""


def interpreted(problem, point, dout=None):
    """The reference by the other backend: the interpreter's backprop."""
    values = {n: point[n] for n in problem.graph.inputs}
    t = problem.graph.backprop(**values) if dout is None else problem.graph.backprop(dout=dout, **values)
    return t.value, t.grads


@pytest.mark.parametrize("problem_id", ["circuit", "neuron", "neuron_layer", "ridge", "sigmoid_layer",
                                        "sigmoid_prime", "logistic", "affine_backward", "softmax_loss"])
def test_compiled_references_agree_with_the_interpreter(problem_id):
    spec = load_spec("examples/homework/assignment.toml")
    prep = prepare(spec.problem(problem_id), seed=7)
    assert prep.spec_problem is None and len(prep.refs) == len(prep.points)
    for i, (point, ref) in enumerate(zip(prep.points, prep.refs)):
        value, grads = interpreted(prep.problem, point, None if prep.douts is None else prep.douts[i])
        np.testing.assert_allclose(ref.value, value, rtol=1e-12)
        for name in prep.problem.wrt:
            np.testing.assert_allclose(ref.grads[name], grads[name], rtol=1e-10, atol=1e-14)


def test_the_reference_runs_the_compiled_code(monkeypatch):
    p = load_spec(SPEC).problem("circuit")
    calls = []
    original = sg.Graph.backprop
    monkeypatch.setattr(sg.Graph, "backprop", lambda *a, **k: calls.append(1) or original(*a, **k))
    ref = reference_gradients(p, {"x": -2.0, "y": 5.0, "z": -4.0})
    assert {n: float(v) for n, v in ref.grads.items()} == {"x": -4.0, "y": -4.0, "z": 3.0}
    ref = reference_gradients(p, {"x": -2.0, "y": 5.0, "z": -4.0}, dout=2.0)
    assert {n: float(v) for n, v in ref.grads.items()} == {"x": -8.0, "y": -8.0, "z": 6.0}
    assert calls == []


def test_the_witness_confirms_right_references_and_refuses_wrong_ones():
    spec = load_spec(SPEC)
    for p in spec.problems:
        prep = prepare(p, seed=1)
        assert prep.spec_problem is None
        for point, ref in zip(prep.points, prep.refs):
            assert witness(p, point, ref) is None
            for name, grad in ref.grads.items():
                wrong = Reference(ref.value, {**ref.grads, name: grad * 1.01})
                assert witness(p, point, wrong) is not None, name


def test_the_witness_checks_large_inputs_along_directions():
    p = load_spec(SPEC).problem("net")
    prep = prepare(p, seed=2)
    point, ref = prep.points[0], prep.refs[0]
    wrong = Reference(ref.value, {**ref.grads, "W": ref.grads["W"] + 0.01})
    why = witness(p, point, wrong)
    assert why is not None and "along a random direction" in why


def test_a_layer_reference_is_witnessed_with_its_dout():
    p = load_spec("examples/homework/assignment.toml").problem("sigmoid_layer")
    prep = prepare(p, seed=0)
    point, dout, ref = prep.points[0], prep.douts[0], prep.refs[0]
    assert witness(p, point, ref, dout) is None
    assert witness(p, point, ref, -dout) is not None  # the gradient of another upstream


def test_a_point_on_a_kink_is_a_spec_problem():
    prep = prepare(load_spec(KINK).problems[0], seed=0)
    assert prep.refs == []
    assert prep.spec_problem.startswith(
        "problem 'on_the_kink': the reference failed its check at test point 1 (x=0, y=")
    assert "next to a kink (relu), where ∂x is not defined" in prep.spec_problem


def test_a_reference_that_is_not_finite_is_a_spec_problem():
    prep = prepare(load_spec(NOT_FINITE).problems[0], seed=0)
    assert "the reference is not finite at x=-1" in prep.spec_problem
    assert "log(x)" in prep.spec_problem


def broken(spec):
    """The spec with the net's sigmoid given a wrong local derivative: a bug in the reference."""
    net = spec.problem("net")
    g = net.graph
    sigmoid = next(n for n in g.operations if str(g.expr(n)).startswith("sigmoid"))
    operand = g.operands(sigmoid)[0]
    bad = dataclasses.replace(net, graph=g.with_local_derivative(sigmoid, operand, sigmoid))
    return dataclasses.replace(spec, problems=(spec.problem("circuit"), bad))


def test_a_broken_reference_is_graded_for_nobody(tmp_path):
    right, sign = tmp_path / "right.py", tmp_path / "sign.py"
    right.write_text(RIGHT)
    sign.write_text(RIGHT.replace('{"x": z,', '{"x": -z,'))
    report = sg.homework.grade(broken(load_spec(SPEC)), [right, sign], limits=Limits(wall_seconds=5))
    message = report.spec_problems["net"]
    assert message.startswith("problem 'net': the reference failed its check at test point 1")
    assert "along a random direction" in message
    good, bad = report.submission("right"), report.submission("sign")
    assert good.passed and good.score == good.max_points == 1  # the right student is not blamed
    hints = bad.problem("circuit").hints()
    assert not bad.passed and len(hints) == 1 and hints[0].startswith("∂x: sign flipped on the path through")
    for s in (good, bad):
        net = s.problem("net")
        assert not net.graded and net.hints() == [f"not graded: {message}"] and net.checks == []
    assert "Not graded" in report.text() and message in report.text()
    rows = list(csv.reader(io.StringIO(report.csv())))
    assert rows[1] == ["right", "1", "", "1"] and rows[2] == ["sign", "0.67", "", "0.67"]
    data = json.loads(report.json())
    assert data["max_points"] == 1 and data["problems"][1]["spec_problem"] == message
    root = ET.fromstring(report.junit())
    assert root.get("failures") == "1" and len(root.findall(".//skipped")) == 2


def test_the_command_line_exits_2_on_a_spec_problem(tmp_path, capsys):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC + KINK)
    right = tmp_path / "right.py"
    right.write_text(RIGHT + "\ndef grad(x, y):\n    return {'x': 0.0, 'y': 0.0}\n")
    assert main(["check", str(spec), str(right)]) == 2
    captured = capsys.readouterr()
    assert "symgrad: spec problem: problem 'on_the_kink'" in captured.err
    assert "right" in captured.out and "passed" in captured.out
    assert main(["check", str(spec), str(right), "--report-only"]) == 0
