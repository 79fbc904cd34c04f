"""Every value symgrad cannot compute gets a named error, in every path; every one it can is right.

The cases are the ones fuzzing found: constants that are not float64
numbers, nodes that divide by zero, derivatives SymPy gives as nan, and
values that used to reach the generated code as bare names (``nan``, ``inf``).
"""

import builtins
import re
import subprocess
import symtable
import sys

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad import compiled
from symgrad.compiled import ENTRY_DOCS, _body_source, _entry_source
from symgrad.names import check_spelling
from symgrad.ops import OPS
from symgrad.printing import float_literal

from .test_op_table import row_graphs


def every_path(text: str, **point: float) -> None:
    """Build, backprop, compile (and call) and write ``text``; each may only raise a SymgradError."""
    g = sg.graph(text)
    g.backprop(**point)
    g.compile().value_and_grad(**point)
    sg.codegen(g)


@pytest.mark.parametrize("text, words", [
    ("0.5/0.0", "division by zero"),
    ("x + 0.5/0.0", "division by zero"),
    ("softplus(exp(1e300))", "too large"),
    ("x + exp(710.0)", "too large for a 64-bit float"),
    ("x*0x" + "f" * 3600, "too large for a 64-bit float"),
    ("x*1" + "0" * 400, "too large for a 64-bit float"),
    ("x/0", "division by zero"),
    ("x/0.0", "division by zero"),
    ("x/1e-320", "too large for a 64-bit float"),
])
def test_constants_that_are_no_float64_are_refused_at_their_column(text, words):
    with pytest.raises(sg.ParseError) as info:
        every_path(text, x=1.0)
    assert words in str(info.value)
    assert info.value.column is not None


def test_a_constant_too_small_for_a_float_rounds_to_zero_and_prints():
    g = sg.graph("x + sigmoid(-1e300)")  # e^(-1e300): SymPy's exponent is too large for a Decimal
    assert str(g.expr("q1")) == "x"
    assert g.backprop(x=2.0).value == 2.0
    assert "sigmoid" in str(g) and sg.graph("sigmoid(-1e300)").backprop().value == 0.0


@pytest.mark.parametrize("text", ["0.0**y", "0**y", "0**y * y", "2*0**(3*y)"])
def test_the_gradient_of_a_power_of_zero_is_zero_where_it_is_defined(text):
    g = sg.graph(text)
    f = g.compile()
    for y in (0.0996, 0.5, 2.0):
        t = g.backprop(y=y)
        value, grads = f.value_and_grad(y=y)
        assert t.value == value == 0.0
        assert t.grads["y"] == grads["y"] == 0.0
    assert "nan" not in f.source
    with pytest.raises(sg.EvaluationError, match="divide by zero"):
        g.backprop(y=-1.0)


@pytest.mark.parametrize("text", ["(-2)**y", "(-2.0)**y * y"])
def test_a_negative_base_to_a_variable_power_has_no_real_gradient(text):
    g = sg.graph(text)
    for path in (g.compile, lambda: sg.codegen(g)):
        with pytest.raises(sg.EvaluationError, match="complex, not real"):
            path()


def test_a_gradient_too_large_for_a_float_is_refused_naming_the_node():
    for granularity in ("primitive", "nary"):
        g = sg.graph("x*1e300*1e300", granularity=granularity)
        with pytest.raises(sg.EvaluationError, match="too large for a 64-bit float") as info:
            g.compile()
        assert "node " in str(info.value)
        with pytest.raises(sg.EvaluationError):
            g.backprop(x=1.0)


@pytest.mark.parametrize("number, words", [
    (sp.nan, "undefined"), (sp.zoo, "infinite"), (sp.oo, "infinite"), (-sp.oo, "infinite"),
    (sp.I, "complex"), (sp.Float("1e400"), "too large"),
])
def test_no_float_literal_for_what_is_not_a_finite_real(number, words):
    with pytest.raises(sg.EvaluationError, match=words):
        float_literal(number)


def test_the_transpose_of_a_scalar_is_the_scalar_in_every_path():
    for text in ("x.T", "x.T * y", "exp(x).T"):
        g = sg.graph(text)
        point = {n: 1.5 for n in g.inputs}
        assert g.compile()(**point) == g.backprop(**point).value
        assert g.compile().value_and_grad(**point)[1] == pytest.approx(g.backprop(**point).grads)
    g = sg.graph(lambda x: x.T * 2)
    assert g.compile().value_and_grad(x=3.0)[1] == {"x": 2.0}


@pytest.mark.parametrize("text, name", [
    ("x + inf", "inf"),
    ("math.erf(x)", "math"),
    ("np.erf(x)", "np.erf"),
    ("zoo*x", "zoo"),
    ("np.linalg.nothing(x)", "np.linalg.nothing"),
    ("(lambda t: t*q)(x)", "q"),
    ("erf(x)", "erf"),  # no op of the expression imports it
])
def test_a_spelling_reading_a_name_the_code_lacks_is_refused(text, name):
    with pytest.raises(sg.UnsupportedError, match=f"reads {re.escape(name)}, which"):
        check_spelling(text, {"x"})


@pytest.mark.parametrize("text", [
    "erf(x) + np.linalg.norm(x)", "tuple(range(len(np.shape(x))))", "(lambda t: t*2)(x)",
    "[i for i in (x, y)]", "np.maximum(x, 0)",
])
def test_a_spelling_reading_names_the_code_has_passes(text):
    assert check_spelling(text, {"x", "y"}, imported={"erf"}) == text


def unknown_names(source: str) -> set[str]:
    """The oracle, from Python's own symbol tables: the names a function of ``source`` reads that
    neither it nor the module defines, nor Python's builtins, and the ``np.`` attributes NumPy
    lacks."""
    top = symtable.symtable(source, "<generated>", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    defined |= set(dir(builtins))
    unknown: set[str] = set()
    tables = list(top.get_children())
    while tables:
        table = tables.pop()
        tables += table.get_children()
        unknown |= {s.get_name() for s in table.get_symbols()
                    if s.is_referenced() and s.is_global() and s.get_name() not in defined}
    for path in set(re.findall(r"(?<![\w.])np((?:\.[A-Za-z_]\w*)+)", source)):
        value: object = np
        for attr in path[1:].split("."):
            if not hasattr(value, attr):
                unknown.add(f"np{path}")
                break
            value = getattr(value, attr)
    return unknown


def test_every_generated_module_reads_only_names_it_has():
    """Spellings are checked as they are printed, and nothing else reads the modules' names:
    each module generated for the op table's rows, plain and fused, in NumPy and in the array
    API, passes the check of the whole text."""
    checked = 0
    for _, g in row_graphs():
        f = g.compile()
        assert unknown_names(f.source) == set(), f.source
        assert unknown_names(sg.codegen(g, xp=True)) == set()
        checked += 1
    assert checked > 40


def entry_texts(f: sg.Compiled) -> list[str]:
    """The texts of ``f``'s entry points and of the bodies they call, as ``f`` writes them."""
    table = None if f.batchable else f._table
    texts = []
    for name in ("unchecked_value", *ENTRY_DOCS):
        functions = f._split if name == "forward" else f._functions
        texts.append(_entry_source(functions, f.graph.inputs, f.batchable, (name,), table))
        for floats in (True, False) if f.batchable else (False,):
            if name != "unchecked_value":
                texts.append(_body_source(functions, f.graph.inputs, name, floats))
    return texts


@pytest.mark.parametrize("apart", [False, True])
def test_every_entry_point_reads_only_names_its_namespace_has(monkeypatch, apart):
    """The same oracle for what compile() runs: entry points (checked inline, through
    ``_arguments``, for floats and for arrays) and the bodies they call, inline or apart."""
    if apart:
        monkeypatch.setattr(compiled, "APART_LINES", 2)
    graphs = [g for _, g in row_graphs()]
    graphs += [sg.graph("softmax_cross_entropy(X @ W, y)", shapes={"X": ("N", 3), "W": (3, "C"), "y": ("N",)},
                        dtypes={"y": int}), sg.graph("x * y"), sg.graph("2.0 + 1.0")]
    for g in graphs:
        f = g.compile()
        for text in entry_texts(f):
            assert unknown_names(text) <= set(f._namespace), text


def test_an_unchecked_module_would_be_found_by_the_oracle():
    assert unknown_names("import numpy as np\ndef f(x):\n    y = x*nan\n    return np.erf(y)") == \
        {"nan", "np.erf"}
    assert unknown_names("import numpy as np\ndef f(x):\n    return np.exp(x)\n") == set()


def test_an_op_spelled_with_an_undeclared_name_is_refused_when_defined():
    with pytest.raises(sg.UnsupportedError, match=r"mytanh: the spelling math.tanh\(a0\) reads math, which"):
        sg.define_op("mytanh", lambda a: sp.tanh(a), numpy="math.tanh({0})")
    with pytest.raises(sg.UnsupportedError, match="reads np.arctanh2, which"):
        sg.define_op("mytanh", lambda a: sp.tanh(a), numpy="np.arctanh2({0})")
    with pytest.raises(sg.UnsupportedError, match="reads erf, which"):  # no imports= binds it
        sg.define_op("myerf", sp.erf, numpy="erf({0})")
    assert "mytanh" not in OPS and "myerf" not in OPS


def test_a_module_with_a_power_of_zero_runs_in_a_fresh_interpreter(tmp_path):
    path = tmp_path / "zero_power.py"
    sg.codegen("0.0**y + y", path)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import zero_power as m; "
              "v, g = m.value_and_grad(0.0996); print(repr(float(v)), repr(float(g['y'])))")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [repr(0.0996), "1.0"]
    assert np.isclose(float(out.stdout.split()[0]), 0.0996)


def test_gradients_that_overflow_when_added_up_are_an_evaluation_error():
    g = sg.graph("(a + abs(a)) * 1.7976931348623157e308")
    with pytest.raises(sg.EvaluationError, match="cannot add up the gradient of a: overflow"):
        g.backprop(a=0.5)


@pytest.mark.parametrize("source, words", [
    (lambda x: x + 10**400, "of 1329 bits is too large"),
    (lambda x: x + 10**5000, "too large"),  # too long for Python to print
    (sp.Float("1e400") * sp.Symbol("x", real=True), "too large for a 64-bit float"),
    (sp.exp(1000) * sp.Symbol("x", real=True), "constant exp(1000) is too large"),
    (lambda x: x / 0, "division by zero"),
])
def test_every_front_end_refuses_constants_a_float_cannot_hold(source, words):
    with pytest.raises(sg.EvaluationError, match=words.replace("(", r"\(").replace(")", r"\)")):
        sg.graph(source)


def test_a_sympy_constant_too_small_for_a_float_is_zero():
    from symgrad.ops import sigmoid

    x = sp.Symbol("x", real=True)
    g = sg.graph(sigmoid(sp.Float(-1e300)) * x + x)
    assert g.backprop(x=2.0).grads == {"x": 1.0}
    assert sg.graph(sigmoid(sp.Float(-1e300))).backprop().value == 0.0
