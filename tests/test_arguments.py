"""Arguments of the public API are checked: a wrong one gets a SymgradError naming it.

And on the command line, ``symgrad: error: ...`` and exit status 2, never a traceback.
"""

from __future__ import annotations

import pytest
import sympy as sp

import symgrad as sg
from symgrad.cli import main
from symgrad.fusion import REACH, _region
from symgrad.gates import canonical
from symgrad.ops import softplus


@pytest.mark.parametrize("wrt", [5, 2.5, {"x": 1}, [5], [["x"]], ["w"]])
def test_wrt_that_names_no_input_is_refused(wrt):
    g = sg.graph("x * y")
    with pytest.raises(sg.SymgradError, match="wrt takes|differentiate with respect to"):
        g.compile(wrt=wrt)
    with pytest.raises(sg.SymgradError, match="wrt takes|differentiate with respect to"):
        sg.codegen(g, wrt=wrt)


def test_an_input_named_twice_in_wrt_gets_one_gradient():
    f = sg.graph("x * y").compile(wrt=["x", "x"])
    assert f.wrt == ("x",)
    assert f.value_and_grad(x=2.0, y=3.0)[1] == {"x": 3.0}


@pytest.mark.parametrize("option", ["shapes", "dtypes"])
@pytest.mark.parametrize("value", [[1], [("x", (2,))], "x", 3])
def test_shapes_and_dtypes_must_be_mappings(option, value):
    with pytest.raises(sg.InputError, match=f"{option} takes a mapping"):
        sg.graph("x * y", **{option: value})


@pytest.mark.parametrize("dout", [float("nan"), float("inf"), -float("inf")])
def test_a_dout_that_is_not_finite_is_refused_in_both_paths(dout):
    g = sg.graph("x * y")
    with pytest.raises(sg.InputError, match="'dout' is not finite"):
        g.backprop(dout=dout, x=1.0, y=2.0)
    f = g.compile()
    _, cache = f.forward(x=1.0, y=2.0)
    with pytest.raises(sg.InputError, match="'dout' is not finite"):
        f.backward(dout, cache)


def test_backward_wants_the_cache_forward_returned():
    f = sg.graph("x * y").compile()
    with pytest.raises(sg.InputError, match="cache must be what forward"):
        f.backward(1.0, 5)


@pytest.mark.parametrize("options, words", [
    ({"sample": 0}, "sample must be a whole number ≥ 1"),
    ({"sample": -2}, "sample must be"),
    ({"sample": 1.5}, "sample must be"),
    ({"tol": 0}, "tol must be a positive finite number"),
    ({"tol": float("nan")}, "tol must be"),
    ({"step": -1e-5}, "step must be"),
    ({"step": "small"}, "step must be"),
    ({"seed": -1}, "seed must be a whole number ≥ 0"),
    ({"method": "directional", "directions": 0}, "directions must be"),
    ({"wrt": 5}, "wrt takes"),
    ({"method": 3}, "unknown method"),
])
def test_check_grad_options_out_of_range_are_named(options, words):
    f = sg.graph("x * y").compile()
    with pytest.raises(sg.InputError, match=words):
        sg.check_grad(f, x=1.0, y=2.0, **options)


def test_check_grad_takes_a_sample_of_one_and_numpy_integers():
    import numpy as np

    f = sg.graph("sum(W * W)", shapes={"W": (3, 3)}).compile()
    r = sg.check_grad(f, W=np.ones((3, 3)), sample=np.int64(1), seed=np.int64(2))
    assert r.ok and r.inputs["W"].checked == 1


@pytest.mark.parametrize("options", [{"sample": 0}, {"tol": -1.0}, {"seed": -3}])
def test_check_local_options_out_of_range_are_named(options):
    with pytest.raises(sg.InputError, match=next(iter(options))):
        sg.check_local(sg.graph("x * y"), x=1.0, y=2.0, **options)


@pytest.mark.parametrize("option", [["--seed", "-1"], ["--jobs", "0"]])
def test_symgrad_check_refuses_a_negative_seed_without_a_traceback(tmp_path, capsys, option):
    spec = tmp_path / "spec.toml"
    spec.write_text('[[problem]]\nid = "p"\nfunction = "grad"\nexpression = "x * y"\n')
    student = tmp_path / "student.py"
    student.write_text('def grad(x, y):\n    return {"x": y, "y": x}\n')
    assert main(["check", str(spec), str(student), *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("symgrad: error: ") and option[0][2:] in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["derive", "0.5/0.0"],
    ["derive", "x/0", "--at", "x=1"],
    ["derive", "x + exp(710.0)", "--at", "x=1"],
    ["codegen", "x/1e-320"],
    ["codegen", "x*0x" + "f" * 3600],
    ["derive", "x*y", "--dout", "nan", "--at", "x=1,y=2"],
    ["codegen", "x*y", "--wrt", "z"],
    ["codegen", "(-2)**y"],
])
def test_the_command_line_names_bad_values_and_exits_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("symgrad: error: ") and "Traceback" not in err


def test_the_command_line_derives_a_power_of_zero_and_a_scalar_transpose(capsys):
    assert main(["derive", "0**x + x.T", "--at", "x=0.5"]) == 0
    assert "∂q2/∂x = 1" in capsys.readouterr().out


def test_gate_spellings_nested_deeper_than_fifty_are_all_rewritten():
    x = sp.Symbol("x", real=True)
    e = x
    for _ in range(60):
        e = sp.log(1 + sp.exp(sp.sin(e)))
    rewritten = canonical(e)
    assert not rewritten.has(sp.exp)
    assert len(rewritten.atoms(softplus)) == 60


def test_patterns_are_looked_for_a_bounded_distance_above_each_node():
    text = "x"
    for _ in range(20):
        text = f"1/(1 + exp(-{text}))"
    g = sg.graph(text)
    region = _region(g, g.output, set(), shared=True)
    assert REACH < len(g.operations) and len(region) == REACH + 1


def test_fusing_a_chain_deeper_than_python_recursion_allows_is_a_fusion_error():
    text = "x"
    for _ in range(100):
        text = f"1/(1 + exp(-{text}))"
    with pytest.raises(sg.FusionError, match="nested too deeply"):
        sg.graph(text).fuse_all()
