"""Behaviour the docs promise, fixed while writing them: tensors on the command line,
and check_local naming a fused gate whose hand-written derivative is wrong."""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.cli import main, parse_shapes


def test_derive_takes_array_values_and_their_shapes(capsys):
    assert main(["derive", "sum((W @ x)**2)", "--at", "W=[[0.1,0.5],[-0.3,0.8]],x=[0.2,0.4]"]) == 0
    out = capsys.readouterr().out
    assert "∂q3/∂W = [[0.088, 0.176], [0.104, 0.208]]" in out
    assert "∂q3/∂x = [-0.112,  0.636]" in out


def test_codegen_takes_shapes(tmp_path):
    path = tmp_path / "norm2.py"
    assert main(["codegen", "sum((W @ x)**2)", "--shape", "W=(2,2),x=(2,)", "-o", str(path)]) == 0
    namespace: dict = {}
    exec(path.read_text(), namespace)
    W, x = np.array([[0.1, 0.5], [-0.3, 0.8]]), np.array([0.2, 0.4])
    value, grads = namespace["value_and_grad"](W, x)
    assert np.isclose(value, 0.116) and np.allclose(grads["x"], [-0.112, 0.636])


def test_render_takes_array_values(capsys):
    assert main(["render", "sum(x*x)", "--at", "x=[1,2]"]) == 0
    assert "<svg" in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["x=(0,)", "x=(2.5,)", "x=(True,)", "x=[-1]"])
def test_bad_shapes_are_refused(spec):
    with pytest.raises(sg.InputError, match="'x'"):
        parse_shapes([spec])


def test_shapes_from_values_and_declarations():
    assert parse_shapes(["W=(2,3),x=3"], {"b": [1.0, 2.0], "c": 1.5}) == {"b": (2,), "W": (2, 3), "x": (3,)}


def test_check_local_names_a_wrong_fused_gate():
    g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").fuse("sigmoid")
    point = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)
    assert sg.check_local(g, **point).ok
    assert any(r.node == "q8" for r in sg.check_local(g, **point).rows)
    bad = g.with_local_derivative("q8", "q4", "q8*(1 + q8)")
    assert sg.check_local(bad, **point).wrong == ("q8",)
    assert not sg.check_grad(bad.compile(), **point).ok
