"""The misconception catalogue, on a corpus of wrong submissions to the example assignment.

The corpus is made independently of the catalogue: local derivatives edited in
the graph and run through its compiled code, the references of other graphs
(without the regularization term, with dout taken as 1), other inputs'
gradients, hand-written NumPy for the tensor mistakes and hand-written answer
strings read by the grader's answer parser.  Each wrong submission goes through
the same diagnosis as the grader's (``diagnose`` with the problem's prepared
catalogue), and must be named, with its node and a counterexample.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.homework import diagnose, load_spec, prepare, reference_gradients
from symgrad.homework.answers import answer_values, parse_answer
from symgrad.homework.misconceptions import catalogue, counterexample, explain, for_problem

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "homework"
SPEC = load_spec(EXAMPLE / "assignment.toml")


@dataclass
class Wrong:
    """A wrong submission to one problem: its gradients, and how the hint must name it."""

    problem: str
    grads: dict[str, list[np.ndarray]]  # only the wrong ones; the others are right
    named: str  # a text the hint contains
    node: str | None = None  # or: the hint names this kind (named + node) among the same numbers
    source: str = ""


@pytest.fixture(scope="module")
def preps():
    return {p.id: prepare(p, SPEC.seed) for p in SPEC.problems}


def upstream(prep):
    return list(prep.douts) if prep.douts is not None else [None] * len(prep.points)


def differs(a, b, p):
    return any(x.shape != y.shape or not np.allclose(x, y, p.rtol, p.atol) for x, y in zip(a, b))


def wrong_grads(prep, values):
    """The graded gradients that differ from the right ones."""
    p = prep.problem
    return {n: v for n, v in values.items() if n in p.wrt and differs(v, prep.want(n), p)}


def from_graph(prep, graph):
    """The gradients of ``graph`` at the problem's test points, from its compiled code."""
    p = prep.problem
    refs = [reference_gradients(p, pt, d, graph=graph) for pt, d in zip(prep.points, upstream(prep))]
    return {n: [r.grads[n] for r in refs] for n in p.wrt}


def local_edits(prep):
    """Every elementwise edge's local derivative negated, dropped, written as the gate's value
    or as the derivative with respect to the other operand."""
    p, g = prep.problem, prep.problem.graph
    for v in g.operations:
        if not g.elementwise(v):
            continue
        op = g.nx.nodes[v].get("op")
        local = g.local_derivatives(v, cached=True)
        for u, d in local.items():
            if u in g.labels:
                continue
            edits = [(-d, "sign flipped on the path through ")]
            if d not in (1, -1):
                edits.append((sp.Integer(1), "a local derivative dropped at "))
            if len(local) == 1 and d != g.symbol(v) and not d.is_number:
                own = "a local derivative written as the gate's own value"
                edits.append((g.symbol(v), f"{'σ′ written as σ' if op == 'sigmoid' else own} at "))
            for other, d2 in local.items():
                if other != u and d2 != d:
                    edits.append((d2, "the local derivative at "))
            for new, named in edits:
                values = from_graph(prep, g.with_local_derivative(v, u, new))
                yield Wrong(p.id, values, named, v, f"∂{v}/∂{u} = {new}")


def upstream_ignored(prep):
    """Scalar graphs: one edge's upstream gradient ignored, by linearity from the interpreter's trace:
    ∂x changes by (1 − ∂v)·(∂v/∂u)·(∂u/∂x) when the edge u → v sends ∂v/∂u alone."""
    p, g = prep.problem, prep.problem.graph
    if any(g.shape(n) != () for n in g.nodes):
        return
    traces = [g.backprop(1.0 if d is None else d, **pt) for pt, d in zip(prep.points, upstream(prep))]
    for v in g.operations:
        for u in g.operands(v):
            if u in g.labels:
                continue
            values = {n: [t.grads[n] + (1 - t.node_grads[v]) * t.local[(v, u)] * t.jacobian(u, n)
                          for t in traces] for n in p.wrt}
            yield Wrong(p.id, values, "the upstream gradient d", v)


def tensor_mistakes(prep):
    """Hand-written NumPy for the mistakes of the vectorized problems."""
    p = prep.problem
    pts, douts = prep.points, upstream(prep)
    bias = {"not summed back over axis 0": lambda g: g, "summed over axis 1 instead of axis 0":
            lambda g: g.sum(axis=1), "averaged over axis 0 instead of summed": lambda g: g.mean(axis=0)}
    if p.id == "affine_backward":
        yield Wrong(p.id, {"W": [(pt["X"].T @ d).T for pt, d in zip(pts, douts)]},
                    "transposed matmul adjoint at q1 (matmul): the gradient sent to W")
        yield Wrong(p.id, {"X": [(d @ pt["W"].T).T for pt, d in zip(pts, douts)]},
                    "transposed matmul adjoint at q1 (matmul): the gradient sent to X")
        for named, f in bias.items():
            yield Wrong(p.id, {"b": [f(d) for d in douts]},
                        f"the gradient of b, broadcast at q2 (add), {named}")
    if p.id == "sigmoid_layer":
        for named, f in bias.items():
            local = [d * s * (1 - s) for d, s in
                     ((d, 1 / (1 + np.exp(-(pt["X"] + pt["b"])))) for pt, d in zip(pts, douts))]
            yield Wrong(p.id, {"b": [f(g) for g in local]},
                        f"the gradient of b, broadcast at q1 (add), {named}")
    if p.id == "softmax_loss":
        data, reg = [], []
        for pt in pts:
            X, W, y = pt["X"], pt["W"], pt["y"]
            P = np.exp(X @ W) / np.exp(X @ W).sum(axis=1, keepdims=True)
            P[np.arange(len(y)), y] -= 1
            data.append(X.T @ P / len(y))
            reg.append(2 * float(pt["reg"]) * W)
        yield Wrong(p.id, {"W": [5 * a + b for a, b in zip(data, reg)]}, "missing 1/5 at q5 (mean)")
        yield Wrong(p.id, {"W": reg}, "W feeds q1, q6, but only the gradient from q6 was kept")
        yield Wrong(p.id, {"W": [a + 2 * b for a, b in zip(data, reg)]},
                    "twice the gradient of the regularization term reg * sum(W * W)")
        yield Wrong(p.id, {"W": [a + b / 9 for a, b in zip(data, reg)]}, "an extra 1/9 at q7 (sum)")
        for keep, part in (("q2", lambda P, onehot: P), ("q3", lambda P, onehot: -onehot)):
            values = []
            for pt, b in zip(pts, reg):
                X, W, y = pt["X"], pt["W"], pt["y"]
                P = np.exp(X @ W) / np.exp(X @ W).sum(axis=1, keepdims=True)
                values.append(X.T @ part(P, np.eye(3)[y]) / len(y) + b)
            yield Wrong(p.id, {"W": values}, f"q1 feeds q2, q3, but only the gradient from {keep} was kept")
    if p.id == "ridge":
        lam_w = [float(pt["lam"]) * pt["w"] for pt in pts]
        yield Wrong(p.id, {"w": lam_w}, "w feeds q1, q5, but only the gradient from q5 was kept")
        yield Wrong(p.id, {"w": [w + lw for w, lw in zip(prep.want("w"), lam_w)]},
                    "twice the gradient of the regularization term lam*w**2 / 2")


def other_graphs(prep):
    """The reference without its regularization term, with dout as 1, and other inputs' gradients."""
    p = prep.problem
    if p.unregularized is not None:
        yield Wrong(p.id, from_graph(prep, p.unregularized),
                    "missing the gradient of the regularization term")
    if prep.douts is not None:
        ones = [reference_gradients(p, pt, np.ones(p.output_shape)) for pt in prep.points]
        yield Wrong(p.id, {n: [r.grads[n] for r in ones] for n in p.wrt}, "ignores dout at the output")
    for name in p.wrt:
        for other in prep.refs[0].grads:
            if other != name:
                yield Wrong(p.id, {name: prep.want(other)}, f"this is ∂{other}")


ANSWERS = {  # symbolic answers students write, and what the hint must name
    "sigmoid_prime": [("sigmoid(x)", "σ′ written as σ at q1 (sigmoid)"),
                      ("1", "a local derivative dropped at q1 (sigmoid)"),
                      ("-sigmoid(x) * (1 - sigmoid(x))", "sign flipped on the path through q1 (sigmoid)")],
    "logistic": [("-y * exp(-y*s)", "a local derivative dropped at q5 (log)"),
                 ("-y * exp(-y*s) * log(1 + exp(-y*s))", "the gate's own value at q5 (log)"),
                 ("-y / (1 + exp(-y*s))", "a local derivative dropped at q3 (exp)"),
                 ("exp(-y*s) / (1 + exp(-y*s))", "a local derivative dropped at q2 (mul)"),
                 ("y * exp(-y*s) / (1 + exp(-y*s))", "sign flipped on the path through"),
                 ("s * exp(-y*s) / (1 + exp(-y*s))", "taken with respect to the wrong operand"),
                 ("-s * exp(-y*s) / (1 + exp(-y*s))", "this is ∂y")],
}


def answers(prep):
    p = prep.problem
    for text, named in ANSWERS.get(p.id, []):
        values = answer_values(parse_answer(text, p.shapes), prep.points, p.inputs[p.wrt[0]].shape)
        yield Wrong(p.id, {p.wrt[0]: values}, named, source=text)


@pytest.fixture(scope="module")
def corpus(preps):
    found = []
    for prep in preps.values():
        for make in (local_edits, upstream_ignored, tensor_mistakes, other_graphs, answers):
            for w in make(prep):
                w.grads = wrong_grads(prep, w.grads)
                if w.grads:  # a mistake that changes nothing here is no wrong submission
                    found.append(w)
    return found


def hint(prep, name, got):
    """The grader's diagnosis of ``got`` for ∂name, made as the grader makes it."""
    p = prep.problem
    return diagnose(name, got, prep.want(name), others=prep.others(name),
                    alternatives=prep.alternatives_for(name), batch=p.batch, where=prep.where,
                    misconceptions=prep.misconceptions, rtol=p.rtol, atol=p.atol)


def names(text, w):
    """Whether the hint names ``w``: its text, or its kind at its node (first, among the nodes
    with the same numbers, or among the other kinds listed)."""
    if w.node is None:
        return w.named in text
    head = text.split(" — ")[0]
    same = re.search(r"\(the same numbers at ([^;)]*)", head)
    if head.startswith(w.named) and same is not None and w.node in same.group(1).split(", "):
        return True
    listed = re.search(r"or equally: (.*)\)$", head)
    clauses = [head.split(":")[0], *(listed.group(1).split("; ") if listed else [])]
    return any(c.startswith(w.named) and f"{w.node} (" in c for c in clauses)


def test_the_corpus_is_named_with_node_and_counterexample(preps, corpus):
    assert len(corpus) >= 200
    problems = {w.problem for w in corpus}
    assert problems == {p.id for p in SPEC.problems}  # scalar, vectorized and answer problems
    wrong = []
    for w in corpus:
        prep = preps[w.problem]
        for name, got in w.grads.items():
            text = hint(prep, name, got)
            assert text is not None
            if not names(text, w):
                wrong.append((w.problem, w.named, w.node, w.source, name, text))
                continue
            assert re.search(r"— counterexample at .+: expected .+, received .+$", text), text
    named = 1 - len(wrong) / len(corpus)
    assert named >= 0.9, "\n".join(map(str, wrong))


@pytest.mark.parametrize("problem", [p.id for p in SPEC.problems])
def test_right_gradients_are_never_flagged(preps, problem):
    prep = preps[problem]
    assert prep.misconceptions  # every problem of the example has a catalogue
    for name in prep.problem.wrt:
        want = prep.want(name)
        assert hint(prep, name, [w.copy() for w in want]) is None
        assert hint(prep, name, [w * (1 + 1e-9) for w in want]) is None
        assert explain(name, want, want, prep.misconceptions) is None
    for m in prep.misconceptions:  # no entry of the catalogue is a right gradient
        for name, values in m.values.items():
            if name in prep.problem.wrt:
                assert differs(values, prep.want(name), prep.problem), m.text


def test_every_kind_is_in_the_catalogue(preps):
    kinds = {m.kind for prep in preps.values() for m in prep.misconceptions}
    assert kinds == {"sign", "value", "dropped", "regularization", "fan-out", "transpose", "mean", "sum",
                     "axis", "dout", "upstream", "wrt", "operand"}


def test_catalogue_values_agree_with_compiled_mutations(preps):
    """The catalogue's σ′-as-σ on the neuron is what the graph with that derivative computes."""
    prep = preps["neuron_layer"]
    g = prep.problem.graph
    values = from_graph(prep, g.with_local_derivative("q5", "q4", "q5"))
    [m] = [m for m in prep.misconceptions if m.kind == "value" and m.node == "q5"]
    for name in prep.problem.wrt:
        np.testing.assert_allclose(m.values[name], values[name], rtol=1e-12)


def test_a_missing_transpose_in_a_square_matmul_adjoint():
    g = sg.graph("sum((X @ W)**2)", shapes={"X": (4, 3), "W": (3, 3)})
    rng = np.random.default_rng(1)
    points = [{"X": rng.normal(size=(4, 3)), "W": rng.normal(size=(3, 3))} for _ in range(2)]
    found = catalogue(g, points)
    right = [2 * (p["X"] @ p["W"]) @ p["W"].T for p in points]
    student = [2 * (p["X"] @ p["W"]) @ p["W"] for p in points]  # dX = dout @ W
    text = diagnose("X", student, right, misconceptions=found)
    assert text.startswith("a transpose missing in the matmul adjoint at q1 (matmul): the gradient sent to X "
                           "computed as dq1 @ W, not dq1 @ W.T — counterexample at test point ")
    student = [(2 * p["X"].T @ (p["X"] @ p["W"])).T for p in points]  # dW transposed
    right = [2 * p["X"].T @ (p["X"] @ p["W"]) for p in points]
    assert diagnose("W", student, right, misconceptions=found).startswith(
        "transposed matmul adjoint at q1 (matmul): the gradient sent to W is the transpose of X.T @ dq1")


def test_counterexample_names_the_worst_element():
    got = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.0, 9.0]])]
    want = [np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 2.0], [3.0, 4.0]])]
    assert counterexample(got, want, ["p1", "p2"]) == \
        "counterexample at p2, element [1, 1]: expected 4, received 9"
    assert counterexample([np.zeros(3)], [np.zeros((3, 1))]) == \
        "counterexample at test point 1: expected shape (3, 1), received shape (3,)"


def test_a_catalogue_that_cannot_be_built_costs_a_diagnosis_not_a_grade():
    p = load_spec('[[problem]]\nid = "p"\nexpression = "log(x)"').problems[0]
    with pytest.raises(sg.SymgradError, match="log"):
        catalogue(p.graph, [{"x": np.asarray(0.0)}])
    assert for_problem(p, [{"x": np.asarray(0.0)}]) == []
    assert [m.kind for m in for_problem(p, [{"x": np.asarray(2.0)}])] == ["sign", "value", "dropped"]


def test_end_to_end_through_grade(tmp_path):
    """A few mistakes graded in the sandbox: each named with its node and a counterexample."""
    folder = tmp_path / "student"
    shutil.copytree(EXAMPLE / "submissions" / "correct", folder)
    code = (folder / "homework.py").read_text()
    code = code.replace('    da = out * (1 - out)\n    return {"w0"', '    da = out\n    return {"w0"')
    code = code.replace('"w": err * x + lam * w', '"w": lam * w')
    code = code.replace("return dout @ W.T, X.T @ dout, dout.sum(axis=0)",
                        "return dout @ W.T, X.T @ dout, dout.sum(axis=1)")
    (folder / "homework.py").write_text(code)
    (folder / "answers.toml").write_text(textwrap.dedent('''\
        [sigmoid_prime]
        x = "sigmoid(x)"

        [logistic]
        s = "-y * exp(-y*s)"
        '''))
    report = sg.homework.grade(EXAMPLE / "assignment.toml", [folder])
    s = report.submission("student")
    hints = {p.problem: p.hints() for p in s.problems if not p.passed}
    assert set(hints) == {"neuron", "ridge", "affine_backward", "sigmoid_prime", "logistic"}
    assert len(hints["neuron"]) == 5 and all("σ′ written as σ at q5 (sigmoid)" in h for h in hints["neuron"])
    [ridge] = hints["ridge"]
    assert ridge.startswith("∂w: w feeds q1, q5, but only the gradient from q5 was kept")
    [affine] = hints["affine_backward"]
    assert affine.startswith("∂b: the gradient of b, broadcast at q2 (add), summed over axis 1 "
                             "instead of axis 0")
    assert affine.endswith("expected shape (3,), received shape (4,)")
    assert hints["sigmoid_prime"][0].startswith("∂x: σ′ written as σ at q1 (sigmoid)")
    assert hints["logistic"][0].startswith("∂s: a local derivative dropped at q5 (log)")
    for h in (*hints["neuron"], *hints["ridge"], *hints["sigmoid_prime"], *hints["logistic"]):
        assert re.search(r"— counterexample at .+: expected .+, received .+$", h), h


def test_named_dimensions_take_their_sizes_from_the_test_points():
    g = sg.graph("mean(sigmoid(X @ W + b))", shapes={"X": ("N", 3), "W": (3, 2), "b": (2,)})
    rng = np.random.default_rng(0)
    points = [{"X": rng.normal(size=(5, 3)), "W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
              for _ in range(2)]
    found = {m.text: m for m in catalogue(g, points)}
    mean = found["missing 1/10 at q4 (mean): the mean's gradient taken as a sum's"]
    right = g.compile()
    for point, values in zip(points, mean.values["b"]):
        np.testing.assert_allclose(values, 10 * right.value_and_grad(**point)[1]["b"])
    averaged = found["the gradient of b, broadcast at q2 (add), averaged over axis 0 instead of summed"]
    for point, values in zip(points, averaged.values["b"]):
        np.testing.assert_allclose(values, right.value_and_grad(**point)[1]["b"] / 5)
