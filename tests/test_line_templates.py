"""Work done once per class of generated lines alike but for their names, and SymPy's cse
skipped where it would share nothing.

The float path's rewrite (symgrad.scalar) and the name check (symgrad.names)
read a one-line assignment once per template (the line with its names replaced
by holes) and fill in each line's names.  Both must give exactly what the
statement-by-statement rewrite and the full parse give, for every row of the op
table, whatever lines were templated before, and whatever the names are.
"""

from __future__ import annotations

import ast
import importlib
import random

import pytest
import sympy as sp

import symgrad as sg
from symgrad import names, scalar
from symgrad.codegen import _functions, module_source
from symgrad.errors import SymgradError, UnsupportedError
from symgrad.ops import OPS
from symgrad.program import build_program

from .test_op_table import row_graphs

codegen = importlib.import_module("symgrad.codegen")  # sg.codegen is the function


def SIG(a: str) -> str:
    """The sigmoid's NumPy spelling of ``a``."""
    return f"np.exp(np.minimum({a}, 0.0))/(1 + np.exp(-np.abs({a})))"


def parsed_scalar_body(lines: list[str]) -> list[str]:
    """The float lines from the parse of the whole body, statement by statement (no templates)."""
    out: list[str] = []
    defined: set[str] = set()
    for statement in ast.parse("\n".join(lines)).body:
        try:
            out += scalar._statement(statement, defined)
        except RecursionError:
            out += lines[statement.lineno - 1:statement.end_lineno]
    return out


def programs():
    """A program for each row of the op table that compiles, plain and fused, and some chains."""
    found = [build_program(g) for _, g in row_graphs()]
    for text in ("sigmoid(w1*sigmoid(w0*x + b0) + b1)", "tanh(tanh(x)*y)**2 + log(1 + exp(-x))",
                 "relu(x - y)*max(x, y) + min(y, x)/2"):
        found.append(build_program(sg.graph(text)))
    return found


PROGRAMS = programs()


def test_the_op_table_gives_programs():
    assert len(PROGRAMS) > len(OPS)


@pytest.mark.parametrize("round_", [0, 1])  # the second round reads the templates the first one made
def test_float_lines_equal_the_rewrite_of_the_whole_parse(round_):
    checked = 0
    for program in PROGRAMS:
        for function in _functions(program).values():
            lines = function.floats or function.body
            assert scalar.scalar_body(lines) == parsed_scalar_body(lines)
            checked += 1
    assert checked == 4 * len(PROGRAMS)


def test_the_name_check_of_templates_agrees_with_the_full_parse():
    for program in PROGRAMS:
        text = module_source(program)  # checks its names
        names._check_parsed(text)
        assert names._all_known(text)


def test_alike_lines_get_their_own_names():
    assert scalar.scalar_body(["a = np.exp(np.minimum(b, 0.0))/(1 + np.exp(-np.abs(b)))"]) == \
        ["_e_b = _exp(-b if b >= 0.0 else b)", "a = 1.0 / (1.0 + _e_b) if b >= 0.0 else _e_b / (1.0 + _e_b)"]
    assert scalar.scalar_body(["c = np.exp(np.minimum(d, 0.0))/(1 + np.exp(-np.abs(d)))"]) == \
        ["_e_d = _exp(-d if d >= 0.0 else d)", "c = 1.0 / (1.0 + _e_d) if d >= 0.0 else _e_d / (1.0 + _e_d)"]
    assert scalar.scalar_body(["c = np.log(d)"]) == ["c = _log(d)"]  # the function is kept, not a hole
    assert scalar.scalar_body(["c = d**2", "c = d**3"]) == ["c = d * d", "c = d ** 3"]


@pytest.mark.parametrize("lines", [
    ["_exp = np.exp(x)", "y = np.exp(_exp) + _exp", f"z = {SIG('_exp')}"],
    ["_e_q1 = q1*2", f"q2 = {SIG('q1')}", f"q3 = {SIG('-q1')} + _e_q1"],
    ["abs = np.abs(x)", "max = np.maximum(abs, 0)", f"_sigmoid = {SIG('max')}"],
    [f"q2 = {SIG('q1')}", "q1 = q2 + 1", f"q3 = {SIG('-q1')}"],
    [f"q1 = {SIG('q0')}", "if q1.__class__ is np.ndarray:", "    q1 = q1 + 0",
     "q2 = np.exp(np.minimum(-q0, 0.0))/(1 + np.exp(-np.abs(-q0)))", "return q2, {", '    "x": q1,', "}"],
    ["q1 = x  # a comment", "q2 = q1 ; q3 = np.exp(q2)", "q4 = (q3 +", "  q1)", "q5 = np.exp(x)"],
    ["np = 1", "q = np + 1", "q = 1e5*x + x.real + X.T"],
])
def test_names_the_rewrite_reads_and_lines_it_does_not_template(lines):
    assert scalar.scalar_body(lines) == parsed_scalar_body(lines)


def test_a_line_that_continues_another_is_left_to_the_parse():
    lines = ["y = dict(", "a = b,", ")", "z = np.exp(y)"]  # "a = b," parses alone: a keyword here
    assert scalar.scalar_body(lines) == parsed_scalar_body(lines)


BAD = [  # (source, the name the full check names)
    "import numpy as np\ndef f(x):\n    y = x*nan\n    return y",
    "import numpy as np\ndef f(x):\n    y = np.erf(x)\n    return y",
    "import numpy as np\ndef f(x):\n    y = np.linalg.nothing(x)\n    return y",
    'import numpy as np\ndef f(x):\n    s = """\nnan = 1\n"""\n    return x*nan',  # an assignment in a string
    "import numpy as np\ndef f(x):\n    y = dict(\n    nan = x,\n    )\n    return nan",  # a keyword
    "import numpy as np\ndef f(x):\n    y = x\n    return y\ndef g(z):\n    w = x*z\n    return w",
    # runs of one-line assignments, one of them in a string, one read before a later run defines it
    'import numpy as np\ndef f(x):\n    a = x\n    s = """\nnan = 1\nb = 2\n"""\n    c = a\n    return x*nan',
    "import numpy as np\ndef f(x):\n    a = x\n    b = a*q\n    del a\n    c = b\n    return c",
    # entries of a dictionary written a line an entry, and a del of names
    "import numpy as np\ndef f(x):\n    a = x\n    return {\n        'a': a,\n        \"b\": x*nan,\n    }",
    "import numpy as np\ndef f(x):\n    return a, {\n        'a': (np.erf(x), x),\n    }",
    "import numpy as np\ndef f(x):\n    d = {\n        'a': x,\n    }\n    del d, e\n    return d\n"
    "def g(y):\n    return {\n        'y': x,\n    }",
]


@pytest.mark.parametrize("source", BAD)
def test_an_unknown_name_is_refused_as_the_full_parse_refuses_it(source):
    with pytest.raises(UnsupportedError) as full:
        names._check_parsed(source)
    with pytest.raises(UnsupportedError) as quick:
        names.check_names(source)
    assert str(quick.value) == str(full.value)
    assert not names._all_known(source)


GOOD = [
    "import numpy as np\ndef f(x):\n    y = np.exp(x)\n    z = np.linalg.norm(y)\n    return z",
    "import numpy as np\nK = 2\ndef f(x):\n    y = x*K\n    return y\ndef g(x):\n    w = y*x\n    return w",
    "def f(x):\n    y = abs(x)\n    z = [i for i in (y, x)]\n    return z",
    "import numpy as np\ndef f(x):\n    a = x\n    b = np.exp(a)\n    del a\n    c = b*x\n    if c:\n"
    "        d = c\n        e = d\n    f = c\n    return f",
    "import numpy as np\ndef f(x):\n    a = np.exp(x)\n    b = a*x\n    del a, x  # freed\n    return b, {\n"
    "        'b': (np.sum(b), b),\n        \"c\": {\n            'd': b,\n        },\n    }",
]


@pytest.mark.parametrize("source", [
    # an entry outside a dictionary (here in a string)
    'import numpy as np\ndef f(x):\n    s = """\n"a": nan,\n"""\n    return x',
])
def test_entries_the_quick_check_cannot_place_are_left_to_the_full_parse(source):
    names._check_parsed(source)
    names.check_names(source)
    assert not names._all_known(source)


@pytest.mark.parametrize("source", GOOD)
def test_known_names_pass_both_checks(source):
    names._check_parsed(source)
    names.check_names(source)
    assert names._all_known(source)


# -- cse skipped where it would share nothing ---------------------------------------------------


def test_cse_is_skipped_only_where_it_returns_the_adjoints_as_they_are():
    lists = []
    for program in PROGRAMS:
        for dout, fold in ((program.dout, False), (sp.Integer(1), True)):
            lists.append(adjoint_exprs(program, dout, fold))
    skipped = 0
    for exprs in lists:
        if codegen._nothing_common(exprs):
            skipped += 1
            assert sp.cse(exprs, symbols=sp.numbered_symbols("_c", start=1, real=True)) == ([], exprs)
    assert skipped > len(lists) // 4


def adjoint_exprs(program, dout, fold: bool) -> list:
    """The adjoint expressions ``_adjoint_lines`` hands to cse (dout substituted, copies folded)."""
    subs = {program.dout: dout}
    exprs = []
    for adj in program.backward:
        if not adj.terms:
            continue
        expr = adj.expr.xreplace(subs)
        if fold and (expr.is_Number or expr.is_Symbol):
            subs[adj.target] = expr
            continue
        exprs.append(expr)
    return exprs


def random_expr(rng: random.Random, symbols: list, depth: int):
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(symbols + [sp.Integer(2), sp.Rational(1, 3), sp.Integer(-1)])
    kind = rng.choice(["add", "mul", "pow", "sin", "exp", "neg", "sigmoid", "max"])
    a, b = random_expr(rng, symbols, depth - 1), random_expr(rng, symbols, depth - 1)
    power = rng.choice([2, -1, sp.Rational(1, 2)])
    return {"add": lambda: a + b, "mul": lambda: a * b, "pow": lambda: a ** power,
            "sin": lambda: sp.sin(a), "exp": lambda: sp.exp(a), "neg": lambda: -a,
            "sigmoid": lambda: sg.sigmoid(a) if isinstance(a, sp.Symbol) else sp.exp(-a),
            "max": lambda: sp.Max(a, b)}[kind]()


def test_cse_is_skipped_only_where_it_shares_nothing_on_random_expressions():
    rng = random.Random(0)
    symbols = list(sp.symbols("x y z dq1 dq2 q10", real=True))
    skipped = 0
    for _ in range(600):
        try:
            exprs = [random_expr(rng, symbols, rng.randint(1, 3)) for _ in range(rng.randint(1, 4))]
        except (TypeError, ValueError):  # Max of a complex number: not an expression codegen sees
            continue
        if codegen._nothing_common(exprs):
            skipped += 1
            assert sp.cse(exprs, symbols=sp.numbered_symbols("_c", start=1, real=True)) == ([], exprs), exprs
    assert skipped > 50


def test_what_cse_would_share_is_not_skipped():
    x, y, z, w = sp.symbols("x y z w", real=True)
    assert codegen._nothing_common([x * y, sp.exp(x) * w, sg.sigmoid(-z) * y])
    for exprs in ([x * y * z, x * y * w], [x + y + z, sp.sin(x + y + w)], [sp.sin(x) * y, sp.sin(x) * z],
                  [1 / x, y], [-2 * x * y, z], [-(x + y), z], [sp.Matrix([x, y])]):
        assert not codegen._nothing_common(exprs), exprs
    assert sp.cse([x * y * z, x * y * w])[0]  # what the first of those gives cse to share


def test_building_backprop_and_compiling_leave_the_garbage_collector_as_they_found_it():
    import gc

    assert gc.isenabled()
    sg.graph("sin(x)*y").compile()
    sg.graph(lambda x, y: x * y).backprop(x=1.0, y=2.0)
    sg.graph(sp.sin(sp.Symbol("x"))).compile().value_and_grad(x=1.0)
    assert gc.isenabled()
    with pytest.raises(SymgradError):
        sg.graph("x*")
    with pytest.raises(SymgradError):
        sg.graph("x*y").backprop(x=1.0)
    assert gc.isenabled()
    with pytest.raises(SymgradError):
        sg.graph("x*y").compile(wrt=["z"])
    assert gc.isenabled()
    gc.disable()
    try:
        sg.graph("x*y").compile()
        assert not gc.isenabled()
    finally:
        gc.enable()
