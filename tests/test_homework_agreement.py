"""The grader never passes a wrong answer: over every op of the table, through the real grading path.

For each op, one answer problem; right answers (SymPy's derivative, and the
derivative of the op's elementary form where it has one) must score, and
wrong ones (scaled, shifted, or equal at the test points only) must not.
A mark needs the numbers and SymPy to agree; where they do not, the hint says so.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from sympy.printing.str import StrPrinter

import symgrad as sg
from symgrad.homework import Limits
from symgrad.homework.answers import parse_answer, same_symbolically
from symgrad.ops import OPS

NAMES = "ab"
LIMITS = Limits(wall_seconds=5, cpu_seconds=2, memory_mb=512, output_kb=64, answer_seconds=120)

# Array ops: (expression, shapes, {input: a right answer}); SymPy does not differentiate
# these, so the numbers alone decide.
ARRAY_PROBLEMS = {
    "matmul": ("sum(a @ b)", {"a": (2, 3), "b": (3,)}, {"a": "b + 0*a", "b": "sum(a, axis=0)"}),
    "transpose": ("sum(a.T * b)", {"a": (2, 3), "b": (3, 2)}, {"a": "b.T", "b": "a.T"}),
    "sum": ("sum(a)", {"a": (2, 3)}, {"a": "1"}),
    "mean": ("mean(a)", {"a": (2, 3)}, {"a": "1/6"}),
    "logsumexp": ("logsumexp(a)", {"a": (3,)}, {"a": "exp(a - logsumexp(a))"}),
    "permute_dims": ("sum(transpose(a, (1, 0)) * b)", {"a": (2, 3), "b": (3, 2)},
                     {"a": "b.T", "b": "transpose(a, (1, 0))"}),
    "reshape": ("sum(reshape(a, (6,)) * b)", {"a": (2, 3), "b": (6,)},
                {"a": "reshape(b, (2, 3))", "b": "reshape(a, (6,))"}),
}
NO_ANSWER = {"pick", "amax", "amin"}  # one-hot gradients: no answer in the grammar builds them


class AnswerText(StrPrinter):
    """SymPy's derivative as answer text: step functions through relu and abs."""

    def _print_Heaviside(self, e: sp.Expr) -> str:
        u = self._print(e.args[0])
        return f"relu({u})/({u})"

    def _print_sign(self, e: sp.Expr) -> str:
        u = self._print(e.args[0])
        return f"abs({u})/({u})"

    def _print_Abs(self, e: sp.Expr) -> str:
        return f"abs({self._print(e.args[0])})"

    def _print_Max(self, e: sp.Expr) -> str:
        return f"max({', '.join(self._print(a) for a in e.args)})"

    def _print_Min(self, e: sp.Expr) -> str:
        return f"min({', '.join(self._print(a) for a in e.args)})"


def scalar_ops() -> list[str]:
    return sorted(n for n, op in OPS.items() if op.elementwise)


def expression_of(name: str) -> str:
    op = OPS[name]
    args = NAMES[: op.arity]
    return f" {op.infix} ".join(args) if op.infix else f"{name}({', '.join(args)})"


def right_answers(name: str) -> list[dict[str, str]]:
    """Two right forms of each partial derivative: SymPy's, and that of the elementary form."""
    if name in ARRAY_PROBLEMS:
        return [ARRAY_PROBLEMS[name][2]]
    op = OPS[name]
    symbols = [sp.Symbol(n, real=True) for n in NAMES[: op.arity]]
    expr = op.sympy(*symbols)
    forms = [expr]
    if hasattr(op.function_class, "elementary"):
        forms.append(op.function_class.elementary(*symbols))
    return [{s.name: AnswerText().doprint(sp.diff(f, s)) for s in symbols} for f in forms]


def spec_text(names: list[str]) -> str:
    blocks = []
    for name in names:
        if name in ARRAY_PROBLEMS:
            text, shapes, _ = ARRAY_PROBLEMS[name]
            inputs = [f'{n} = {{ shape = {list(s)}, range = [-2, 2] }}' for n, s in shapes.items()]
        else:
            text = expression_of(name)
            inputs = [f"{n} = {{ range = [{d.lo}, {d.hi}] }}" for n, d in zip(NAMES, OPS[name].domain)]
        blocks.append(f'[[problem]]\nid = "{name}"\nkind = "answer"\nexpression = "{text}"\n'
                      f"[problem.inputs]\n" + "\n".join(inputs) + "\n")
    return "\n".join(blocks)


def answers_toml(answers: dict[str, dict[str, str]]) -> str:
    return "\n".join(f"[{p}]\n" + "".join(f'{v} = "{t}"\n' for v, t in table.items())
                     for p, table in answers.items())


def test_every_op_has_a_problem():
    assert set(OPS) == set(scalar_ops()) | set(ARRAY_PROBLEMS) | NO_ANSWER


@pytest.mark.parametrize("name", scalar_ops())
def test_right_answers_are_the_same_symbolically(name):
    reference = sg.graph(expression_of(name))
    for answers in right_answers(name):
        for var, text in answers.items():
            assert same_symbolically(parse_answer(text, {n: () for n in reference.inputs}), reference, var), \
                (name, var, text)


def test_every_op_right_and_wrong_through_the_grader(tmp_path):
    rng = np.random.default_rng(11)
    names = scalar_ops() + sorted(ARRAY_PROBLEMS)
    submissions: dict[str, dict[str, dict[str, str]]] = {"right0": {}, "right1": {}, "scaled": {},
                                                        "shifted": {}, "at_points_only": {}}
    for name in names:
        forms = right_answers(name)
        right = forms[0]
        submissions["right0"][name] = right
        submissions["right1"][name] = forms[-1]
        c = round(float(rng.uniform(0.1, 0.9)), 3)
        submissions["scaled"][name] = {v: f"({t})*{1 + c}" for v, t in right.items()}
        submissions["shifted"][name] = {v: f"({t}) + {c}" for v, t in right.items()}
        if name not in ARRAY_PROBLEMS:  # equal wherever a < 10, so at every test point
            submissions["at_points_only"][name] = {v: f"({t}) + relu(a - 10)" for v, t in right.items()}
    folders = []
    for sub, answers in submissions.items():
        folder = tmp_path / sub
        folder.mkdir()
        (folder / "answers.toml").write_text(answers_toml(answers))
        folders.append(folder)
    report = sg.homework.grade(spec_text(names), folders, limits=LIMITS)
    assert not report.spec_problems
    for name in names:
        for sub in ("right0", "right1"):
            result = report.submission(sub).problem(name)
            assert result.passed and result.score == result.points, (sub, name, result.hints())
        for sub in ("scaled", "shifted"):
            result = report.submission(sub).problem(name)
            assert result.score == 0 and all(not c.ok for c in result.checks), (sub, name)
        if name not in ARRAY_PROBLEMS:
            result = report.submission("at_points_only").problem(name)
            assert result.score == 0, name
            assert all(c.hint and c.hint.startswith("the checks disagree") for c in result.checks), \
                (name, result.hints())


def test_an_answer_that_drops_an_operand_of_logaddexp_is_wrong(tmp_path):
    spec = '[[problem]]\nid = "lse"\nkind = "answer"\nexpression = "logaddexp(x, y)"\n'
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "answers.toml").write_text('[lse]\nx = "1"\ny = "exp(y - logaddexp(x, y))"\n')
    result = sg.homework.grade(spec, [folder], limits=LIMITS).submissions[0].problems[0]
    assert [c.ok for c in result.checks] == [False, True]
    assert result.score == result.points / 2
    assert not same_symbolically(parse_answer("1", {"x": (), "y": ()}), sg.graph("logaddexp(x, y)"), "x")


def test_a_symbolic_match_does_not_override_the_numbers(tmp_path):
    spec = ('[[problem]]\nid = "square"\nkind = "answer"\nexpression = "x**2 + y"\nwrt = ["x", "y"]\n'
            "[problem.inputs]\nx = { value = 0.0 }\ny = { range = [-1, 1] }\n")
    folder = tmp_path / "one"
    folder.mkdir()
    answer = "2*x*sin(2*x)/(2*sin(x)*cos(x))"  # 2x, but 0/0 at x = 0
    (folder / "answers.toml").write_text(f'[square]\nx = "{answer}"\ny = "1"\n')
    result = sg.homework.grade(spec, [folder], limits=LIMITS).submissions[0].problems[0]
    assert [c.ok for c in result.checks] == [False, True]
    assert result.checks[0].hint.startswith("the checks disagree: SymPy simplifies the answer to the "
                                            "derivative, but the numbers differ")
