"""What a student meets first: pictures in Jupyter, and messages that say what to do."""

import ast
import contextlib
import importlib.metadata
import io
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad.cli import main

ROOT = Path(__file__).resolve().parents[1]
NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
POINT = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)


def run(argv: list[str]) -> tuple[int, str, str]:
    """``symgrad ARGV`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 0
    return status, out.getvalue(), err.getvalue()


# -- sg.render as a cell's last line ----------------------------------------------


def test_render_shows_a_picture_in_jupyter_and_stays_a_string(tmp_path):
    formatters = pytest.importorskip("IPython.core.formatters")
    t = sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4)
    svg = sg.render(t)
    bundle, _ = formatters.DisplayFormatter().format(svg)
    assert bundle["image/svg+xml"] == str(svg) and str(svg).startswith("<svg")
    assert bundle["text/plain"].startswith("<SVG picture, ") and "<svg" not in bundle["text/plain"]
    # still the SVG text wherever code uses it as a string
    assert isinstance(svg, str) and "-12" in svg and ET.fromstring(svg).tag.endswith("svg")
    assert svg == sg.render(t, tmp_path / "t.svg") == (tmp_path / "t.svg").read_text(encoding="utf-8")
    assert f"{svg}" == str(svg) and type(str(svg)) is str and svg + "" == str(svg)
    width = ET.fromstring(svg).get("width")
    assert f"{float(width):.0f}×" in repr(svg)


# -- did you mean ------------------------------------------------------------------


def test_an_unknown_function_suggests_the_nearest_one():
    with pytest.raises(sg.ParseError, match=r"unknown function 'sigmod'; did you mean 'sigmoid'\?") as e:
        sg.graph("sigmod(x)")
    assert "known functions: abs" in str(e.value)
    status, _, err = run(["derive", "softplis(x) + 1"])
    assert status == 2 and "did you mean 'softplus'?" in err
    with pytest.raises(sg.ParseError) as e:
        sg.graph("zzzzz(x)")
    assert "did you mean" not in str(e.value)


def test_an_unknown_input_suggests_the_input_meant():
    g = sg.graph("x * y")
    with pytest.raises(sg.InputError, match=r"unknown input 'yy' \(did you mean 'y'\?\); the inputs are x"):
        g.backprop(x=1, yy=2)
    with pytest.raises(sg.InputError, match=r"unknown input 'Y' \(did you mean 'y'\?\)"):
        g.compile()(x=1, Y=2)
    status, _, err = run(["derive", "x * y", "--at", "x=1,z=2"])
    assert status == 2 and "unknown input 'z'" in err and "did you mean" not in err.replace("'y'", "")
    status, _, err = run(["derive", "W @ x", "--shape", "w=(2,2),x=(2,)"])
    assert status == 2 and "(a shape was given for 'w', not 'W')" in err
    with pytest.raises(sg.InputError, match=r"shapes given for 'X', which the expression does not use "
                                            r"\(did you mean 'x'\?\)"):
        sg.graph("sum(x)", shapes={"X": (2,)})


# -- messages that say what to write ------------------------------------------------


def test_matmul_without_shapes_says_to_declare_them():
    with pytest.raises(sg.ShapeError) as e:
        sg.graph("W @ x")
    assert "declare 'W', 'x' with shapes={'W': (2, 3), 'x': (3, 4)}" in str(e.value)
    with pytest.raises(sg.ShapeError, match=r"declare 'x' with shapes=\{'x': \(5, 4\)\}"):
        sg.graph(lambda W, x: W @ x, shapes={"W": (2, 5)})
    status, _, err = run(["derive", "W @ x"])
    assert status == 2 and '--shape "W=(2,3),x=(3,4)"' in err
    # the shapes it suggests work
    assert run(["derive", "sum(W @ x)", "--shape", "W=(2,3),x=(3,4)"])[0] == 0
    status, _, err = run(["derive", "sum(x, axis=1)"])
    assert status == 2 and '--shape "x=(2,4)"' in err
    assert run(["derive", "sum(sum(x, axis=1))", "--shape", "x=(2,4)"])[0] == 0


def test_e_to_the_x_suggests_exp():
    with pytest.raises(sg.InputError, match=r"missing value for input 'e'; .* write exp\(x\), not e\*\*x"):
        sg.graph("e**x").backprop(x=1.0)
    status, _, err = run(["derive", "e**x", "--at", "x=1"])
    assert status == 2 and "write exp(x)" in err
    assert "exp(x)" not in str(pytest.raises(sg.InputError, sg.graph("a**x").backprop, x=1.0).value)


def test_backprop_with_a_dict_says_to_unpack_it():
    g = sg.graph("(x + y) * z")
    values = {"x": -2, "y": 5, "z": -4}
    with pytest.raises(sg.InputError, match=r"g\.backprop\(\*\*values\)"):
        g.backprop(values)
    with pytest.raises(sg.InputError, match=r"unpack it: f\(\*\*values\)"):
        g.compile()(values)
    assert g.backprop(**values).grads == {"x": -4.0, "y": -4.0, "z": 3.0}
    assert g.compile()(**values) == -12.0


# -- the command line --------------------------------------------------------------


def test_an_expression_may_start_with_a_minus():
    for argv in (["derive", "-x*y", "--at", "x=1,y=2", "--brief"],
                 ["derive", "--at", "x=1,y=2", "-x*y", "--brief"],
                 ["derive", "--brief", "--", "-x*y", "--at", "x=1,y=2"]):
        status, out, err = run(argv)
        assert (status, out.split(), err) == (0, ["∂q2/∂x", "=", "-2", "∂q2/∂y", "=", "-1"], ""), argv
    status, out, _ = run(["derive", "-(x + y)", "--at", "x=1,y=2", "--dout", "-1e-3", "--brief"])
    assert status == 0 and "∂q2/∂x = 0.001" in out
    status, out, _ = run(["codegen", "-exp(x)"])
    assert status == 0 and "def forward(x)" in out
    status, _, err = run(["derive", "x", "-z"])  # an unknown option is still one
    assert status == 2 and "unrecognized arguments: -z" in err


def test_version():
    status, out, _ = run(["--version"])
    assert status == 0 and out.strip() == f"symgrad {sg.__version__}"


def test_render_to_a_file_says_what_it_wrote(tmp_path):
    path = tmp_path / "neuron.svg"

    def size() -> str:
        root = ET.fromstring(path.read_text(encoding="utf-8"))
        return f"{float(root.get('width')):.0f}×{float(root.get('height')):.0f} px"

    status, out, _ = run(["render", NEURON, "--at", ",".join(f"{k}={v}" for k, v in POINT.items()),
                          "-o", str(path)])
    assert status == 0 and out.splitlines() == [
        f"wrote {path}: the graph of {NEURON} with its values and gradients",
        f"  {len(sg.graph(NEURON).nodes)} nodes, {size()}"]
    assert "13 nodes" in out
    status, out, _ = run(["render", "x*y", "-o", str(path)])
    assert status == 0 and out.splitlines() == [f"wrote {path}: the graph of x*y with its local derivatives",
                                                f"  3 nodes, {size()}"]


def test_derive_brief_prints_just_the_gradients():
    at = ",".join(f"{k}={v}" for k, v in POINT.items())
    status, out, _ = run(["derive", NEURON, "--at", at, "--brief"])
    assert status == 0
    assert out.splitlines() == ["∂q8/∂w0 = -0.1966", "∂q8/∂x0 = 0.3932", "∂q8/∂w1 = -0.3932",
                                "∂q8/∂x1 = -0.5898", "∂q8/∂w2 = 0.1966"]
    status, _, err = run(["derive", NEURON, "--brief"])
    assert status == 2 and "--brief prints the gradients at a point: give the input values with --at" in err


def test_labels_are_declared_on_the_command_line():
    at = ["--at", "s=[[1,2,3],[0,0,1]],y=[2,0]"]
    status, _, err = run(["derive", "softmax_cross_entropy(s, y)", *at])
    assert status == 2 and "(on the command line: --labels y)" in err
    status, out, _ = run(["derive", "softmax_cross_entropy(s, y)", *at, "--labels", "y", "--brief"])
    s = np.array([[1.0, 2, 3], [0, 0, 1]])
    p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
    p[[0, 1], [2, 0]] -= 1
    assert status == 0 and out.splitlines()[0].startswith("∂q4/∂s = [[")
    shown = np.array(ast.literal_eval(out.split(" = ", 1)[1].strip()))
    np.testing.assert_allclose(shown, p / 2, atol=1e-4)
    assert "∂q4/∂y" not in out  # labels get no gradient
    shapes = ["--shape", "s=(2,3),y=(2,)"]
    status, out, _ = run(["codegen", "softmax_cross_entropy(s, y)", *shapes, "--labels", "y"])
    assert status == 0 and "def forward(s, y)" in out
    assert run(["render", "pick(s, y)", "--shape", "s=(2,3),y=(2,)", "--labels", "y"])[0] == 0
    status, _, err = run(["derive", "s * y", "--labels", "y"])
    assert status == 2 and "holds integer labels" in err


# -- notebooks ready to run --------------------------------------------------------


def _requirement_names(requirements: list[str], extras: dict[str, list[str]] | None = None) -> set[str]:
    """The distributions ``requirements`` name, with those of symgrad's own extras they include."""
    names = set()
    for r in requirements:
        name = re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower().replace("_", "-")
        included = re.match(r"symgrad\[([\w,-]+)\]", r)
        if included and extras is not None:
            for extra in included.group(1).split(","):
                names |= _requirement_names(extras[extra], extras)
        else:
            names.add(name)
    return names


def test_the_notebooks_extra_brings_jupyter_and_everything_the_notebooks_import():
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    extra = _requirement_names(extras["notebooks"], extras)
    assert extra & {"jupyterlab", "notebook"}, "the notebooks extra must bring Jupyter"
    available = extra | _requirement_names(project["dependencies"])
    imported = set()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                for node in ast.walk(ast.parse("".join(cell["source"]))):
                    if isinstance(node, ast.Import):
                        imported |= {(path.name, a.name.split(".")[0]) for a in node.names}
                    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                        imported.add((path.name, node.module.split(".")[0]))
    assert {m for _, m in imported} >= {"symgrad", "numpy", "matplotlib", "tqdm"}
    distributions = importlib.metadata.packages_distributions()
    for notebook, module in sorted(imported):
        if module in sys.stdlib_module_names or module == "symgrad":
            continue
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        assert names & available, f"{notebook} imports {module}, which symgrad[notebooks] does not install"


def test_the_readme_and_the_docs_say_how_to_open_the_notebooks():
    for page in (ROOT / "README.md", ROOT / "docs" / "getting-started.md"):
        text = page.read_text(encoding="utf-8")
        assert '".[notebooks]"' in text and "jupyter lab notebooks/" in text, page.name


def test_an_unknown_fusion_pattern_suggests_the_nearest_one():
    with pytest.raises(sg.FusionError, match=r"unknown pattern 'sigmod'; did you mean 'sigmoid'\?"):
        sg.graph(NEURON).fuse("sigmod")
    status, _, err = run(["derive", NEURON, "--fuse", "softplu"])
    assert status == 2 and "did you mean 'softplus'?" in err
