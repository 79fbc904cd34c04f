"""The command line: derive, codegen and render (check has its own tests)."""

import subprocess
import sys

import numpy as np
import pytest

import symgrad as sg
from symgrad.cli import main, parse_shapes, parse_values


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_derive_prints_graph_derivatives_passes_and_gradients(capsys):
    code, out, _ = run(capsys, "derive", "(x + y) * z", "--at", "x=-2,y=5,z=-4")
    assert code == 0
    for section in ["Graph", "Local derivatives", "Forward pass", "Backward pass", "Gradients"]:
        assert section in out
    assert "q1 = x + y = 3" in out and "q2 = q1*z = -12" in out
    assert "dq1 = dq2*z = -4" in out
    assert "∂q2/∂x = -4" in out and "∂q2/∂y = -4" in out and "∂q2/∂z = 3" in out


def test_derive_the_sigmoid_neuron(capsys):
    code, out, _ = run(capsys, "derive", "1/(1+exp(-(w0*x0+w1*x1+w2)))",
                       "--at", "w0=2,x0=-1", "--at", "w1=-3,x1=-2,w2=-3")
    assert code == 0
    assert "q8 = 1/q7 = 0.7311" in out
    assert "∂q8/∂x1 = -0.5898" in out and "∂q8/∂w2 = 0.1966" in out
    assert "-q8**2" in out  # the cached form of 1/x's derivative


def test_derive_without_values_shows_the_derivation_only(capsys):
    code, out, _ = run(capsys, "derive", "a*b*c", "--granularity", "nary")
    assert code == 0
    assert "∂q1/∂a" in out and "b*c" in out and "Forward pass" not in out


def test_max_gate_with_upstream_gradient(capsys):
    code, out, _ = run(capsys, "derive", "max(z, w)", "--at", "z=2,w=-1", "--dout", "2")
    assert "∂q1/∂z = 2" in out and "∂q1/∂w = 0" in out


@pytest.mark.parametrize("argv, words", [
    (["derive", "foo(x)"], "unknown function 'foo'"),
    (["derive", "x + y", "--at", "x=1"], "missing value for input 'y'"),
    (["derive", "x", "--at", "x=__import__('os')"], "not a number"),
    (["derive", "x", "--at", "x"], "NAME=VALUE"),
    (["derive", "log(x)", "--at", "x=-1"], "q1 = log(x)"),
])
def test_errors_are_one_line_and_exit_2(capsys, argv, words):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("symgrad: error:") and words in err


def test_values_split_at_top_level_commas():
    assert parse_values(["x=-2,W=[[1, 2], [3, 4]]", "y=0.5"]) == {
        "x": -2, "W": [[1, 2], [3, 4]], "y": 0.5}


def test_help_lists_the_commands():
    result = subprocess.run([sys.executable, "-m", "symgrad", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "derive" in result.stdout and "examples:" in result.stdout
    result = subprocess.run([sys.executable, "-m", "symgrad", "derive", "--help"],
                            capture_output=True, text=True)
    assert "--granularity" in result.stdout and "--at" in result.stdout


def test_a_reader_that_stops_early_is_not_an_error():
    expr = "+".join(f"sin(x{i})*y" for i in range(300))
    p = subprocess.Popen([sys.executable, "-m", "symgrad", "codegen", expr],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().startswith(b'"""')
    p.stdout.close()  # like `| head -1`
    assert p.wait(timeout=60) == 0
    assert b"Traceback" not in p.stderr.read()


# -- tensors on the command line ------------------------------------------------


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


def test_render_draws_a_part_given_its_end_or_a_number_of_nodes(capsys):
    assert main(["render", "sin(cos(exp(x*y))) + x", "--at", "x=0.3,y=2", "--end", "q3"]) == 0
    svg = capsys.readouterr().out
    assert 'data-drawn="5"' in svg and 'data-node="q4"' not in svg and 'data-node="q3"' in svg
    assert main(["render", "sin(cos(exp(x*y))) + x", "--max-nodes", "2"]) == 0
    assert 'data-drawn="2"' in capsys.readouterr().out
    assert main(["render", "sin(cos(exp(x*y))) + x", "--max-nodes", "0"]) == 0
    assert "data-drawn" not in capsys.readouterr().out
    assert main(["render", "x*y", "--end", "q7"]) != 0
    assert "cannot end a picture at 'q7'" in capsys.readouterr().err


@pytest.mark.parametrize("spec", ["x=(0,)", "x=(2.5,)", "x=(True,)", "x=[-1]"])
def test_bad_shapes_are_refused(spec):
    with pytest.raises(sg.InputError, match="'x'"):
        parse_shapes([spec])


def test_shapes_from_values_and_declarations():
    assert parse_shapes(["W=(2,3),x=3"], {"b": [1.0, 2.0], "c": 1.5}) == {"b": (2,), "W": (2, 3), "x": (3,)}


def test_the_fuse_help_names_every_gate_of_the_gate_tables(capsys):
    from symgrad.gates import patterns
    from symgrad.layers import LAYERS

    with pytest.raises(SystemExit):
        main(["derive", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    names = [p.name for p in patterns()] + list(LAYERS)
    assert len(names) >= 10 and all(f"{n}," in text or f"{n};" in text or f"{n})" in text for n in names)
