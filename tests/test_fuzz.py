"""Fuzzing: whatever text or graph comes in, only a SymgradError or a right number comes out.

Strings come from the grammar (the expression strategy of the property tests,
with hostile constants: zero, numbers too small or too large for a float), from
the op table without keeping operands in their domains, and from hostile
text (huge literals, deep nesting, odd tokens).  Each goes through every
path (graph → backprop → compile → codegen → fuse) at ordinary and at
hostile points.  Any exception but a SymgradError fails; a number that comes
out must equal the interpreter's, and the interpreter's gradient must equal
SymPy's derivative where that is finite and the point is away from kinks.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.cli import main
from symgrad.gates import PATTERNS
from symgrad.ops import OPS

from .conftest import rel_error, sympy_gradient
from .test_property import VARIABLES, away_from_kinks, expressions

HOSTILE_CONSTANTS = (0, 0.0, 1, 2, 0.5, -1.5, 1e-320, 5e-324, 1e300, -1e300, 1.7e308, 710.0, -745.0)
SCALE = int(os.environ.get("SYMGRAD_FUZZ_SCALE", "1"))  # more examples for a longer campaign


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples * SCALE, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def unfitted(draw, depth: int = 3) -> str:
    """An expression over the elementwise ops whose operands may lie outside the op's domain."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            return draw(st.sampled_from(VARIABLES))
        return repr(draw(st.sampled_from(HOSTILE_CONSTANTS)))
    op = OPS[draw(st.sampled_from(sorted(n for n, o in OPS.items() if o.elementwise)))]
    args = [draw(unfitted(depth - 1)) for _ in range(op.arity)]
    if op.infix:
        return f"({args[0]} {op.infix} {args[1]})"
    return f"{op.name}({', '.join(args)})"


def hostile_literals() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(300, 5000).map(lambda n: "1" + "0" * n),
        st.integers(250, 4000).map(lambda n: "0x" + "f" * n),
        st.integers(300, 400).map(lambda n: f"1e{n}"),
        st.integers(300, 400).map(lambda n: f"1e-{n}"),
        st.sampled_from(["0", "0.0", "-0.0", "5e-324", "1.7976931348623157e308", "2**1024", "10**-400",
                         "1_000", "0b101", "0o17", "1e999", "inf", "nan", "pi"]),
    )


ODD = ["x", "y", "+", "-", "*", "/", "**", "@", "(", ")", ",", ".T", ".", "exp", "log", "sigmoid",
       "max", "sum", "axis=0", "axis=9", "keepdims=True", "=", "[", "]", "'", "\\", "\n", "\t", "#",
       "π", "x²", "\x00", "…", " ", "lambda", "__import__", "j", "0j", "1e", ";", ":", "not"]


def hostile_text() -> st.SearchStrategy[str]:
    deep = st.integers(30, 80).flatmap(lambda n: st.sampled_from([
        "(" * 10 * n + "x" + ")" * 10 * n, "exp(" * n + "x" + ")" * n, "-" * n + "x",
        "x" + "**x" * n, "+".join(["x"] * n), "sigmoid(" * n + "x" + ")" * n, "x" + ".T" * n,
    ]))
    tokens = st.lists(st.sampled_from(ODD) | hostile_literals(), max_size=20).map("".join)
    spliced = st.tuples(expressions(depth=2), hostile_literals(), st.sampled_from(["+", "*", "/", "**"])) \
        .map(lambda t: f"{t[0]} {t[2]} {t[1]}")
    return st.one_of(deep, tokens, spliced, st.text(max_size=30), hostile_literals())


ordinary = st.floats(-2, 2).filter(lambda v: abs(v) > 1e-3)
hostile = st.sampled_from([0.0, -0.0, 1e-320, 1e300, -1e300, 710.0, -745.0, 1.0])
points = st.fixed_dictionaries({v: ordinary | hostile for v in VARIABLES})


def only_symgrad_errors(fn, *args, **kwargs):
    """``fn``'s result, or None when it raised a SymgradError (any other exception fails the test)."""
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    except sg.SymgradError:
        return None


def finite(*values) -> bool:
    return all(np.all(np.isfinite(v)) and np.all(np.abs(v) < 1e12) for v in values)


def same(a, b) -> bool:
    return bool(np.allclose(a, b, rtol=1e-9, atol=1e-12))


def every_path(text: str, point: dict[str, float], granularity: str = "primitive",
               pattern: str = "sigmoid") -> None:
    """Build, run, compile, write and fuse ``text``; any numbers that come out must agree."""
    g = only_symgrad_errors(sg.graph, text, granularity=granularity)
    if g is None:
        return
    point = {n: point[n] for n in g.inputs}
    t = only_symgrad_errors(g.backprop, **point)
    f = only_symgrad_errors(g.compile)
    text_of_module = only_symgrad_errors(sg.codegen, g)
    fused = only_symgrad_errors(g.fuse, pattern)
    only_symgrad_errors(g.lint)
    if f is not None:
        compiled = only_symgrad_errors(f.value_and_grad, **point)
        if t is not None and compiled is not None and finite(t.value, *t.grads.values()):
            value, grads = compiled
            assert same(value, t.value), (text, point)
            assert all(same(grads[n], t.grads[n]) for n in g.inputs), (text, point)
    if text_of_module is not None and t is not None and finite(t.value, *t.grads.values()):
        namespace = {"np": np}
        exec(compile(text_of_module, "<fuzzed module>", "exec"), namespace)  # noqa: S102 (our own text)
        with np.errstate(all="ignore"):
            value, grads = namespace["value_and_grad"](*(point[n] for n in g.inputs))
        assert same(value, t.value) and all(same(grads[n], t.grads[n]) for n in g.inputs), (text, point)
    if fused is not None and t is not None and finite(t.value, *t.grads.values()):
        ft = only_symgrad_errors(fused.backprop, **point)
        if ft is not None:
            assert np.allclose(ft.value, t.value, rtol=1e-7, atol=1e-9), (text, point)
            assert all(np.allclose(ft.grads[n], t.grads[n], rtol=1e-6, atol=1e-9) for n in g.inputs)
    if t is not None and point and finite(*t.values.values(), *t.grads.values()) \
            and away_from_kinks(g, t) and all(abs(v) < 1e3 for v in point.values()):
        exact = only_symgrad_errors(sympy_gradient, g.expression(), point)
        for n in g.inputs:
            if exact is not None and math.isfinite(exact[n]) and abs(exact[n]) < 1e12:
                assert rel_error(t.grads[n], exact[n]) < 1e-7 or abs(t.grads[n] - exact[n]) < 1e-9, \
                    (text, n, point)


@fuzz(20)
@given(expressions(constants=HOSTILE_CONSTANTS, constant_odds=3), points,
       st.sampled_from(["primitive", "nary"]), st.sampled_from([p.name for p in PATTERNS]))
def test_grammar_with_hostile_constants_and_points(text, point, granularity, pattern):
    every_path(text, point, granularity, pattern)


@fuzz(20)
@given(unfitted(), points, st.sampled_from([p.name for p in PATTERNS]))
def test_op_table_outside_its_domains(text, point, pattern):
    every_path(text, point, "primitive", pattern)


@fuzz(60)
@given(hostile_text())
def test_hostile_text_gets_a_graph_or_a_symgrad_error(text):
    g = only_symgrad_errors(sg.graph, text)
    assume(g is not None)
    assert isinstance(g, sg.Graph)
    point = {n: 0.5 for n in g.inputs}
    only_symgrad_errors(g.backprop, **point)
    f = only_symgrad_errors(g.compile)
    if f is not None:
        only_symgrad_errors(f.value_and_grad, **point)


@fuzz(15)
@given(hostile_text() | unfitted(), st.sampled_from(["derive", "codegen"]))
def test_the_command_line_never_shows_a_traceback(capsys, text, command):
    argv = [command, "--", text] if command == "codegen" else [command, "--at", "x=0.5,y=1e300", "--", text]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse refusing the arguments: its usage message, status 2
        code = e.code
    out = capsys.readouterr()
    assert code in (0, 2)
    assert "Traceback" not in out.err
    if code == 2:
        assert "error:" in out.err


TENSORS = {"W": (2, 3), "x": (3,), "b": (2,), "s": (4, 3)}


@st.composite
def array_expressions(draw, depth: int = 3) -> str:
    """An expression over arrays (W 2×3, x 3, b 2, s 4×3) and scalars, any op of the table, with
    axes and keepdims= that may not fit: the shapes decide whether it is a graph or a ShapeError."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([*TENSORS, "a", "0.5", "2", "0", "1e-320"]))
    name = draw(st.sampled_from(sorted(n for n in OPS if n != "pick")))
    op = OPS[name]
    args = [draw(array_expressions(depth - 1)) for _ in range(op.arity)]
    if op.infix:
        return f"({args[0]} {op.infix} {args[1]})"
    if name == "transpose":
        return f"({args[0]}).T"
    keywords = ""
    if "axis" in op.params and draw(st.booleans()):
        keywords += f", axis={draw(st.integers(-3, 3))}"
    if "keepdims" in op.params and draw(st.booleans()):
        keywords += ", keepdims=True"
    return f"{name}({', '.join(args)}{keywords})"


@fuzz(25)
@given(array_expressions(), st.integers(0, 2**32 - 1))
def test_array_expressions_get_a_graph_or_a_symgrad_error_and_agree(text, seed):
    names = set(re.findall(r"[A-Za-z_]\w*", text))
    g = only_symgrad_errors(sg.graph, text, shapes={n: s for n, s in TENSORS.items() if n in names})
    assume(g is not None)
    rng = np.random.default_rng(seed)
    point = {n: rng.uniform(-1.5, 1.5, size=g.shape(n)) for n in g.inputs}
    t = only_symgrad_errors(g.backprop, **point)
    f = only_symgrad_errors(g.compile)
    only_symgrad_errors(sg.codegen, g)
    fused = only_symgrad_errors(g.fuse_stable)
    if t is None or not finite(t.value, *t.grads.values()):
        return
    if f is not None:
        value, grads = only_symgrad_errors(f.value_and_grad, **point) or (None, None)
        if value is not None:
            assert np.allclose(value, t.value, rtol=1e-9, atol=1e-12), text
            assert all(np.allclose(grads[n], t.grads[n], rtol=1e-9, atol=1e-12) for n in g.inputs), text
    if fused is not None:
        ft = only_symgrad_errors(fused.backprop, **point)
        if ft is not None:
            assert all(np.allclose(ft.grads[n], t.grads[n], rtol=1e-6, atol=1e-9) for n in g.inputs), text
