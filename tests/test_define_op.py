"""Ops defined outside the package, through every stage: gelu (tanh and erf forms) and arctan.

Each op is defined with :func:`symgrad.define_op` inside a ``with`` block, so
nothing leaks into other tests (conftest's autouse fixture checks the table).
"""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import ExitStack

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.check import kink_expressions
from symgrad.cli import expr_help, main
from symgrad.composed import COMPOSED
from symgrad.ops import FUNCTIONS, OPS
from symgrad.program import build_program

from .conftest import central_differences, rel_error, sympy_gradient
from .test_op_table import check_gradient, check_row

GELU_TANH = "x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715*x**3)))"


def gelu_tanh(x):
    return x / 2 * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Float("0.044715") * x**3)))


def gelu_erf(x):
    return x / 2 * (1 + sp.erf(x / sp.sqrt(2)))


def has_scipy() -> bool:
    try:
        import scipy.special  # noqa: F401
    except ImportError:
        return False
    return True


def define(stack: ExitStack, kind: str) -> dict[str, sg.DefinedOp]:
    """The ops of ``kind``, defined until ``stack`` closes."""
    if kind == "gelu-tanh":
        return {"gelu": stack.enter_context(sg.define_op("gelu", gelu_tanh))}
    if kind == "arctan":
        return {"arctan": stack.enter_context(sg.define_op("arctan", sp.atan, numpy="np.arctan({0})"))}
    assert kind == "gelu-erf"
    if not has_scipy():
        pytest.skip("the erf form of gelu needs SciPy (pip install 'symgrad[scipy]')")
    erf = stack.enter_context(sg.define_op("erf", sp.erf, numpy="erf({0})",
                                           imports=["from scipy.special import erf"], domain=[(-2, 2)]))
    return {"erf": erf, "gelu": stack.enter_context(sg.define_op("gelu", gelu_erf))}


KINDS = ["gelu-tanh", "gelu-erf", "arctan"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_defined_op_is_a_row_the_generated_op_table_tests_cover(kind):
    with ExitStack() as stack:
        ops = define(stack, kind)
        for name, function in ops.items():
            assert name in FUNCTIONS and function.op is OPS[name]
            check_row(OPS[name])
            for front in ("string", "callable", "sympy"):
                check_gradient(OPS[name], front, function)


@pytest.mark.parametrize("kind", KINDS)
def test_a_defined_op_goes_through_every_stage(kind, tmp_path):
    with ExitStack() as stack:
        ops = define(stack, kind)
        name = "gelu" if "gelu" in ops else "arctan"
        f = ops[name]
        text = f"{name}(x) * y + {name}(2*x - y)"
        x, y = sp.symbols("x y", real=True)
        graphs = {
            "string": sg.graph(text),
            "callable": sg.graph(lambda x, y: f(x) * y + f(2 * x - y)),
            "sympy": sg.graph(f(x) * y + f(2 * x - y)),
        }
        point = {"x": 0.7, "y": -0.4}
        exact = sympy_gradient(graphs["string"].expression(), point)
        for front, g in graphs.items():
            assert sum(g.nx.nodes[n]["label"] == name for n in g.operations) == 2, front
            t = g.backprop(**point)
            numeric = central_differences(lambda **p: g.backprop(**p).value, point)  # noqa: B023
            for n in point:
                assert rel_error(t.grads[n], exact[n]) < 1e-10, (front, n)
                assert rel_error(t.grads[n], numeric[n]) < 1e-6, (front, n)
        g = graphs["string"]
        t = g.backprop(**point)

        # compiled, and checked by finite differences
        compiled = g.compile()
        value, grads = compiled.value_and_grad(**point)
        assert value == pytest.approx(t.value, rel=1e-12)
        assert all(grads[n] == pytest.approx(t.grads[n], rel=1e-12) for n in point)
        assert sg.check_grad(compiled, **point).ok
        assert sg.check_grad(g, **point).ok
        assert sg.check_local(g, **point).ok
        batch = compiled(x=np.array([0.1, 0.7]), y=-0.4)
        assert batch[1] == pytest.approx(t.value, rel=1e-12)

        # the generated module imports exactly what the ops declare, and runs in a fresh interpreter
        declared = sorted({line for op in ops.values() for line in op.op.imports})
        imports = [line for line in compiled.source.splitlines() if re.match(r"(import|from) ", line)]
        assert imports == ["import numpy as np", *declared]
        sg.codegen(g, tmp_path / "defined_grads.py")
        script = ("import json, defined_grads as m; v, gr = m.value_and_grad(0.7, -0.4); "
                  "print(json.dumps([float(v), {k: float(a) for k, a in gr.items()}]))")
        out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                             text=True, check=True).stdout
        fresh_value, fresh_grads = eval(out)  # our own JSON of floats
        assert fresh_value == pytest.approx(t.value, rel=1e-12)
        assert all(fresh_grads[n] == pytest.approx(t.grads[n], rel=1e-12) for n in point)

        # fused: one gate for the whole expression, and a gate around one use of the op
        whole = g.fuse_all()
        assert whole.backprop(**point).grads == pytest.approx(t.grads, rel=1e-10)
        op_node = next(n for n in g.operations if g.nx.nodes[n]["label"] == name)
        user = next(iter(g.consumers(op_node)))
        part = g.fuse({op_node, user})
        assert part.backprop(**point).grads == pytest.approx(t.grads, rel=1e-10)
        assert part.compile().value_and_grad(**point)[1] == pytest.approx(t.grads, rel=1e-10)

        # drawn, explained, printed
        assert f">{name}<" in sg.render(g) and f">{name}<" in sg.render(t)
        explained = str(t.explain("x"))
        assert f"∂{op_node}/∂x" in explained and t.explain("x")._repr_latex_()
        assert f"{op_node} = " in str(build_program(g))
        assert name in str(g)


def test_a_defined_op_on_the_command_line():
    with sg.define_op("gelu", gelu_tanh):
        assert "gelu" in expr_help()
        assert main(["derive", "gelu(x)", "--at", "x=0.5"]) == 0
    assert "gelu" not in expr_help()


def test_the_tanh_form_of_gelu_as_a_string_agrees_with_the_defined_op():
    with sg.define_op("gelu", gelu_tanh):
        defined = sg.graph("gelu(x)").compile()
        written = sg.graph(GELU_TANH).compile()
        for v in (-2.0, -0.3, 0.0, 1.5):
            assert defined(x=v) == pytest.approx(written(x=v), rel=1e-12)
            assert defined.value_and_grad(x=v)[1]["x"] == pytest.approx(
                written.value_and_grad(x=v)[1]["x"], rel=1e-12, abs=1e-15)


def test_a_declared_derivative_and_stable_spelling_are_used_by_the_backward_pass():
    def logistic(a):
        return 1 / (1 + sp.exp(-a))

    with sg.define_op("logistic", logistic, derivative=lambda a, out: out * (1 - out),
                      numpy="np.exp(-np.logaddexp(0, {0:n}))",
                      stable=[lambda f, a: (1 - f(a), f(-a))]) as logistic_op:
        g = sg.graph("logistic(x)")
        q = g.output
        assert g.local_derivatives(q, form="cached") == {"x": sp.Symbol(q, real=True) * (
            1 - sp.Symbol(q, real=True))}
        assert g.local_derivatives(q, form="numeric")["x"].has(logistic_op.op.function_class)
        # 1 - σ(40) rounds to 0 in the cached spelling; the stable one keeps e^(-40)
        want = float(sp.exp(-40) / (1 + sp.exp(-40)) ** 2)
        assert g.backprop(x=40.0).grads["x"] == pytest.approx(want, rel=1e-12)
        assert g.compile().value_and_grad(x=40.0)[1]["x"] == pytest.approx(want, rel=1e-12)


def test_a_defined_ops_kink_is_reported_by_the_checks():
    with sg.define_op("leaky", lambda a: sp.Max(a, a / 10), kink=lambda a: a):
        g = sg.graph("leaky(x) * 3")
        assert [name for name, _ in kink_expressions(g.expr("q1"))] == ["leaky"]
        assert sg.check_grad(g.compile(), x=1e-9).rows[0].status == "kink"
        assert sg.check_grad(g.compile(), x=0.5).ok


def test_defining_and_undefining():
    with sg.define_op("gelu", gelu_tanh) as gelu:
        assert sg.graph("gelu(x)").backprop(x=1.0).value == pytest.approx(float(gelu_tanh(sp.Float(1.0))))
        with pytest.raises(sg.SymgradError, match="'gelu' is taken"):
            sg.define_op("gelu", gelu_tanh)
    assert "gelu" not in OPS
    with pytest.raises(sg.ParseError, match="unknown function 'gelu'"):
        sg.graph("gelu(x)")
    with pytest.raises(sg.SymgradError, match="not defined"):
        gelu(sp.Symbol("x"))
    again = sg.define_op("gelu", lambda x: x * sg.sigmoid(sp.Float(1.702) * x))  # defined anew
    try:
        assert sg.graph("gelu(x)").compile()(x=1.0) == pytest.approx(1 / (1 + np.exp(-1.702)))
        with pytest.raises(sg.SymgradError, match="not defined"):
            gelu(sp.Symbol("x"))  # the first definition's function does not call the second's
        with pytest.raises(sg.SymgradError, match="not defined"):
            gelu.undefine()
    finally:
        sg.undefine_op("gelu")
    with pytest.raises(sg.SymgradError, match="not defined"):
        again(1.0)
    with pytest.raises(sg.SymgradError, match="built-in"):
        sg.undefine_op("exp")
    with pytest.raises(sg.SymgradError, match="no op named"):
        sg.undefine_op("gelu")


@pytest.mark.parametrize("name", ["exp", "softmax", "np", "pi", "dout", "1x", "for", ""])
def test_a_taken_or_bad_name_is_refused(name):
    with pytest.raises(sg.SymgradError):
        sg.define_op(name, gelu_tanh)


def test_what_the_table_cannot_use_is_refused_when_defined():
    with pytest.raises(sg.SymgradError, match="not an import statement"):
        sg.define_op("f", sp.erfc, numpy="erfc({0})", imports=["import os; os.getcwd()"])
    with pytest.raises(sg.SymgradError, match="uses erf, which has no NumPy spelling"):
        sg.define_op("gelu", gelu_erf)
    with pytest.raises(sg.SymgradError, match="give the NumPy spelling"):
        sg.define_op("arctan", sp.atan)
    with pytest.raises(sg.SymgradError, match="cannot be filled in"):
        sg.define_op("arctan", sp.atan, numpy="np.arctan({1})")
    with pytest.raises(sg.SymgradError, match="domain= takes"):
        sg.define_op("f", gelu_tanh, domain=["wide"])
    with pytest.raises(sg.SymgradError, match="one domain per operand"):
        sg.define_op("f", gelu_tanh, domain=[(0, 1), (0, 1)])
    with pytest.raises(sg.SymgradError, match="SymPy expression"):
        sg.define_op("f", lambda x: "x + 1")
    with pytest.raises(sg.SymgradError, match="already the op 'tanh'"):
        sg.define_op("hyperbolic_tangent", sp.tanh, numpy="np.tanh({0})")
    with pytest.raises(sg.SymgradError, match="numba= respells the NumPy spelling; give numpy= too"):
        sg.define_op("f", gelu_tanh, numba="np.tanh({0})")
    for numba in ("np.arctan({1})", "np.arctan({0}", "x = {0}"):
        with pytest.raises(sg.SymgradError, match=r"Numba spelling .* is not one expression of \{0\}"):
            sg.define_op("arctan", sp.atan, numpy="np.arctan({0})", numba=numba)
    assert "f" not in OPS and "arctan" not in OPS


def test_an_import_that_fails_is_a_named_error_when_code_is_compiled_or_evaluated():
    missing = "from symgrad_no_such_module import erfc"
    with sg.define_op("erfc", sp.erfc, numpy="erfc({0})", imports=[missing]):
        g = sg.graph("erfc(x) + x")
        x = sp.Symbol("x", real=True)
        assert g.local_derivatives("q1")["x"] == sp.diff(sp.erfc(x), x)
        with pytest.raises(sg.UnsupportedError, match="erfc needs 'from symgrad_no_such_module import erfc'"):
            g.compile()
        with pytest.raises(sg.SymgradError, match="symgrad_no_such_module"):
            g.backprop(x=0.5)
        assert "from symgrad_no_such_module import erfc" in sg.codegen(g)  # the text names what it needs


def test_the_cli_help_and_the_docs_list_every_function_of_the_table():
    names = set(FUNCTIONS) | set(COMPOSED)
    helped = set(expr_help().split("the functions ")[1].split(" (")[0].split())
    assert helped == names
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    concepts = (docs / "concepts.md").read_text(encoding="utf-8")
    listed = concepts[concepts.index("Expression strings may call"):concepts.index("## Node names")]
    assert set(re.findall(r"\w+", " ".join(re.findall(r"`([^`]*)`", listed)))) == names
    api = (docs / "api.md").read_text(encoding="utf-8")
    section = api[api.index("### Functions for expressions"):api.index("```python", api.index(
        "### Functions for expressions"))]
    assert names <= set(re.findall(r"\w+", " ".join(re.findall(r"`([^`]*)`", section))))


def test_an_input_may_not_take_the_name_an_import_binds():
    with sg.define_op("erfc", sp.erfc, numpy="erfc({0})", imports=["from math import erfc"]):
        with pytest.raises(sg.SymgradError, match="'erfc' is the name 'from math import erfc' binds"):
            sg.graph("erfc(erfc)")
    assert list(sg.graph("erfc * 2").inputs) == ["erfc"]


def test_a_defined_op_of_two_operands_with_a_derivative_through_its_output():
    with sg.define_op("lse2", lambda a, b: sp.log(sp.exp(a) + sp.exp(b)), numpy="np.logaddexp({0}, {1})",
                      derivative=lambda a, b, out: (sp.exp(a - out), sp.exp(b - out))) as lse2:
        check_row(lse2.op)
        for front in ("string", "callable", "sympy"):
            check_gradient(lse2.op, front, lse2)
        assert sg.graph("lse2(x, y)").local_derivatives("q1", form="cached") == {
            "x": sp.exp(sp.Symbol("x", real=True) - sp.Symbol("q1", real=True)),
            "y": sp.exp(sp.Symbol("y", real=True) - sp.Symbol("q1", real=True))}
        value, grads = sg.graph("lse2(x, y)").compile().value_and_grad(x=1000.0, y=0.0)  # no overflow
        assert value == 1000.0 and grads == {"x": 1.0, "y": pytest.approx(np.exp(-1000.0))}
