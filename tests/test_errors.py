"""Bad input gets a SymgradError that names what is wrong, and never runs code."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg


@pytest.mark.parametrize("text, column, words", [
    ("(x + y", None, "syntax error"),
    ("x + * y", 5, "syntax error"),
    ("2x + 1", 1, "invalid decimal literal"),
    ("foo(x)", 1, "unknown function 'foo'"),
    ("x + bar(y, 2)", 5, "unknown function 'bar'"),
    ("x.real", 1, "attribute access"),
    ("x[0] + 1", 1, "subscripts"),
    ("(lambda: 1)()", 1, "only calls of named functions"),
    ("lambda x: x", 1, "lambdas"),
    ("[a for a in b]", 1, "comprehensions"),
    ("x if y else z", 1, "conditionals"),
    ("x < y", 1, "comparisons"),
    ("x // y", 1, "operator //"),
    ("~x", 1, "operator ~"),
    ("exp(x, y)", 1, "exp() takes 1 argument, got 2"),
    ("exp(x=1)", 5, "keyword"),
    ("'abc'", 1, "is not a number"),
    ("1j * x", 1, "is not a number"),
    ("x + True", 5, "is not a number"),
    ("log(-1) + x", 1, "not a finite real number"),
    ("1/0 + x", 1, "not a finite real number"),
    ("10**10**10 * x", 1, "too large"),
    ("", None, "empty expression"),
    ("np + 1", 1, "reserved"),
])
def test_parse_errors_name_the_offending_token(text, column, words):
    with pytest.raises(sg.ParseError) as info:
        sg.graph(text)
    assert words in str(info.value)
    if column is not None:
        assert info.value.column == column


def test_parse_error_points_at_the_column():
    with pytest.raises(sg.ParseError) as info:
        sg.graph("x + foo(y)")
    assert str(info.value).endswith("x + foo(y)\n      ^")


@pytest.mark.parametrize("attack", [
    "__import__('os').system('touch {marker}')",
    "().__class__.__bases__[0].__subclasses__()",
    "exec('open(\"{marker}\", \"w\")')",
    "eval('1')",
    "open('{marker}', 'w')",
    "x.__globals__",
    "getattr(x, 'y')",
])
def test_code_in_strings_never_runs(attack, tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(sg.SymgradError):
        sg.graph(attack.format(marker=marker))
    assert not marker.exists()
    assert not os.path.exists(str(marker))


def test_missing_and_unknown_values():
    g = sg.graph("(x + y) * z")
    with pytest.raises(sg.InputError, match="missing value for input 'z'"):
        g.backprop(x=1, y=2)
    with pytest.raises(sg.InputError, match="unknown input 'w'; the inputs are x, y, z"):
        g.backprop(x=1, y=2, z=3, w=4)


@pytest.mark.parametrize("value, words", [
    ("3", "must be a number"),
    (None, "must be a number"),
    (True, "must be a number"),
    (1 + 2j, "must be real"),
    ([1, 2], "has shape (2,)"),
    (float("nan"), "not finite"),
    (float("inf"), "not finite"),
    ({"a": 1}, "must be real numbers"),
])
def test_non_numeric_values_are_refused(value, words):
    with pytest.raises(sg.SymgradError, match="'x'") as info:
        sg.graph("x * 2").backprop(x=value)
    assert words in str(info.value)


def test_log_of_a_negative_names_the_node_and_value():
    with pytest.raises(sg.EvaluationError) as info:
        sg.graph("log(x - y) * 2").backprop(x=1, y=2.5)
    message = str(info.value)
    assert "q2 = log(q1)" in message and "q1 = -1.5" in message


def test_division_by_zero_names_the_node_and_value():
    with pytest.raises(sg.EvaluationError) as info:
        sg.graph("1 / (x - y)").backprop(x=2, y=2)
    assert "q2 = 1/q1" in str(info.value) and "q1 = 0" in str(info.value)


def test_overflow_names_the_node():
    with pytest.raises(sg.EvaluationError, match="q1 = exp"):
        sg.graph("exp(x) * 2").backprop(x=1000)


def test_derivative_that_cannot_be_evaluated_names_the_edge():
    with pytest.raises(sg.EvaluationError, match="∂q1/∂x"):
        sg.graph("sqrt(x)").backprop(x=0)


@pytest.mark.parametrize("fn, words", [
    (lambda x: x if x > 0 else -x, "compared"),
    (lambda x: 1 if x else 0, "truth value"),
    (lambda x: float(x), "no number"),
    (lambda x: [x, x], "must return one traced value"),
    (lambda x: x + "a", "cannot combine"),
    (lambda *xs: xs[0], "cannot be traced"),
    (lambda: 1, "takes no parameters"),
    (lambda x: 1 / 0, "ZeroDivisionError"),
])
def test_tracing_errors(fn, words):
    with pytest.raises(sg.TracingError, match=words):
        sg.graph(fn)


def test_unsupported_sympy_function_is_named():
    import sympy as sp

    x = sp.Symbol("x")
    with pytest.raises(sg.UnsupportedError, match="asinh"):
        sg.graph(sp.asinh(x) + 1)


def test_bad_arguments_to_graph():
    with pytest.raises(sg.SymgradError, match="granularity"):
        sg.graph("x", granularity="fine")
    with pytest.raises(sg.SymgradError, match="cannot build a graph from int"):
        sg.graph(3)
    with pytest.raises(sg.InputError, match="'w'"):
        sg.graph("x + 1", shapes={"w": (2,)})
    with pytest.raises(sg.SymgradError, match="no node 'q9'"):
        sg.graph("x + 1").local_derivatives("q9")


def test_deeply_nested_and_very_long_expressions():
    assert str(sg.graph("(" * 1000 + "x" + ")" * 1000).output) == "x"
    with pytest.raises(sg.ParseError, match="never closed"):
        sg.graph("(" * 1000 + "x" + ")" * 999)
    with pytest.raises(sg.ParseError, match="unknown function 'foo'") as e:
        sg.graph("sigmoid(" * 500 + "x + foo(y)" + ")" * 500)
    assert e.value.column == len("sigmoid(" * 500 + "x + ") + 1  # the column in the whole text
    with pytest.raises(sg.ParseError, match="syntax error") as e:
        sg.graph("exp(" * 450 + "x + " + ")" * 450)
    assert e.value.column == len("exp(" * 450 + "x + ") + 1
    with pytest.raises(sg.ParseError):
        sg.graph("-" * 200_000 + "x")
    g = sg.graph(" + ".join(f"x{i}" for i in range(3000)))
    assert len(g.operations) == 2999


TOKENS = ["x", "y", "1", "2.5", "0", "1e999", "j", "+", "-", "*", "/", "**", "@", "(", ")", ",",
          "exp", "log", "sqrt", "max", "relu", "[", "]", ".", "T", "lambda", ":", "'", "=", " ",
          "__import__", "os", "not", "if", "else", "{", "}", "\\", "\n", "#"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=25).map("".join) | st.text(max_size=40))
def test_fuzz_only_symgrad_errors_come_out(text):
    try:
        g = sg.graph(text)
    except sg.SymgradError:
        return
    assert isinstance(g, sg.Graph)


@pytest.mark.parametrize("depth", [140, 220])
def test_strings_nested_deeper_than_pythons_parser_takes(depth):
    import math

    text = "x"
    for i in range(depth):  # a call of two operands at every other level, a group, a call of one
        text = f"logaddexp(({text}) * 0.5, sigmoid(x) * {i % 3})" if i % 2 else f"sigmoid({text})"
    levels = [text[:i].count("(") - text[:i].count(")") for i in range(0, len(text), 7)]
    assert max(levels) > 200  # deeper than Python's parser takes
    g = sg.graph(text)
    x, want = 0.3, 0.3
    for i in range(depth):
        sig = 1 / (1 + math.exp(-x))
        pair = math.exp(want * 0.5) + math.exp(sig * (i % 3))
        want = math.log(pair) if i % 2 else 1 / (1 + math.exp(-want))
    trace = g.backprop(x=x)
    assert trace.value == pytest.approx(want, rel=1e-12)
    h = 1e-6
    slope = (g.backprop(x=x + h).value - g.backprop(x=x - h).value) / (2 * h)
    assert trace.grads["x"] == pytest.approx(slope, rel=1e-6)
