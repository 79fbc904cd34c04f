"""Work done once per class of generated lines alike but for their names, and SymPy's cse
skipped where it would share nothing.

The float path's rewrite (symgrad.scalar) reads a one-line assignment once per
template (the line with its names replaced by holes) and fills in each line's
names.  It must give the same statements as the statement-by-statement rewrite,
for every row of the op table, whatever lines were templated before, and
whatever the names are.
"""

from __future__ import annotations

import ast
import importlib
import random

import pytest
import sympy as sp

import symgrad as sg
from symgrad import scalar
from symgrad.codegen import _functions
from symgrad.errors import SymgradError
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


def same_code(lines: list[str], expected: list[str]) -> bool:
    """The same statements (a line may be kept as written where the parse writes it again)."""
    return ast.dump(ast.parse("\n".join(lines))) == ast.dump(ast.parse("\n".join(expected)))


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
            assert same_code(scalar.scalar_body(lines), parsed_scalar_body(lines))
            checked += 1
    assert checked == 4 * len(PROGRAMS)


def test_adjoints_with_dout_put_in_once_per_alike_class_are_what_xreplace_gives(monkeypatch):
    def texts():
        return [f.body for program in PROGRAMS for f in _functions(program).values()]

    once = texts()
    monkeypatch.setattr(codegen, "evaluated", lambda build, *exprs: build(*exprs))
    assert once == texts()


def test_alike_lines_get_their_own_names():
    assert scalar.scalar_body(["a = np.exp(np.minimum(b, 0.0))/(1 + np.exp(-np.abs(b)))"]) == \
        ["_e_b = _exp(-b if b >= 0.0 else b)", "a = (1.0 if b >= 0.0 else _e_b) / (1.0 + _e_b)"]
    assert scalar.scalar_body(["c = np.exp(np.minimum(d, 0.0))/(1 + np.exp(-np.abs(d)))"]) == \
        ["_e_d = _exp(-d if d >= 0.0 else d)", "c = (1.0 if d >= 0.0 else _e_d) / (1.0 + _e_d)"]
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
    assert same_code(scalar.scalar_body(lines), parsed_scalar_body(lines))


@pytest.mark.parametrize("lines, kept", [
    (["q1 = x*2", "if q1.__class__ is np.ndarray:  # a batch", "    return q1, {", '        "x": q1,',
      "    }", 'return q1, {"x": q1}'], ["q1 = x * 2.0", 'return q1, {"x": q1}']),
    (["if q1.__class__ is np.ndarray or x.__class__ is np.ndarray:", "    q1 = q1 + 0", "q2 = q1"],
     ["q2 = q1"]),
    (["if q1.__class__ is np.ndarray:", "    q1 = q1 + 0", "else:", "    q1 = q1 - 0", "q2 = q1"],
     ["q1 = q1 - 0.0", "q2 = q1"]),  # an else runs for floats: parsed
    (['return q1, {"x": dx, "y": dy}'], ['return q1, {"x": dx, "y": dy}']),
    (["q1 = x*2", "del x  # freed", "q2 = q1", "del q1, y"], ["q1 = x * 2.0", "q2 = q1"]),
    (['return q1, {"x": dx*2}'], ["return (q1, {'x': dx * 2.0})"]),  # not names alone: rewritten
])
def test_batch_blocks_returns_of_names_and_dels_are_read_without_parsing(lines, kept):
    assert scalar.scalar_body(lines) == kept
    assert same_code(scalar.scalar_body(lines), parsed_scalar_body(lines))


def test_a_line_that_continues_another_is_left_to_the_parse():
    lines = ["y = dict(", "a = b,", ")", "z = np.exp(y)"]  # "a = b," parses alone: a keyword here
    assert same_code(scalar.scalar_body(lines), parsed_scalar_body(lines))


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
