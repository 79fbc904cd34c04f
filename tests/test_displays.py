"""Every display of every graph kind, generated from the op table and the gate library.

Each op on scalars and on arrays (elementwise ops broadcast, array ops at the
shapes their row declares, reductions with and without ``axis``), each gate
of :mod:`symgrad.gates` and each array gate of :mod:`symgrad.layers`, fused,
and whole expressions fused into one gate: for the graph and for its trace,
the text table, the LaTeX table, the SVG picture and the explanation (text,
Markdown, LaTeX) must all come out, naming every node.  A derivative is
written the same way by all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.gates import PATTERNS
from symgrad.layers import LAYERS
from symgrad.ops import OPS, Domain
from symgrad.tables import local_text, vjp_text, written

from .conftest import required_params

NAMES = "ab"
SIZES = {"n": 2, "m": 3, "k": 4, "c": 3, "b": 2, "1": 1}


@dataclass
class Case:
    """A graph to display, and the point of its trace."""

    source: Any
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    dtypes: dict[str, type] = field(default_factory=dict)
    fuse: tuple[str, ...] = ()
    fuse_all: bool = False

    def graph(self) -> sg.Graph:
        g = sg.graph(self.source, shapes=self.shapes or None, dtypes=self.dtypes or None)
        for name in self.fuse:
            g = g.fuse(name)
        return g.fuse_all() if self.fuse_all else g


def sample(domain: Domain, shape: tuple[int, ...], rng: np.random.Generator, classes: int = 3) -> Any:
    if domain.labels:
        return rng.integers(0, classes, size=shape)
    v = rng.uniform(domain.lo, domain.hi, size=shape)
    if domain.signed:
        v = v * rng.choice([-1.0, 1.0], size=shape)
    return float(v) if shape == () else v


def call(name: str, args: list[str], params: str = "") -> str:
    op = OPS[name]
    if op.infix:
        return f"({f' {op.infix} '.join(args)})"
    return f"{name}({', '.join(args)}{params})"


def op_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for name, op in OPS.items():
        args = list(NAMES[: op.arity])
        if op.elementwise:
            cases[f"{name}-scalar"] = Case(call(name, args))
            shapes = dict(zip(args, [(2, 3), (3,)]))
            cases[f"{name}-array"] = Case(f"sum({call(name, args)})", shapes)
            cases[f"{name}-array-out"] = Case(call(name, args), shapes)
            continue
        for i, letters in enumerate(op.shapes):
            shapes = {a: tuple(SIZES[c] for c in s) for a, s in zip(args, letters)}
            dtypes = {a: int for a, d in zip(args, op.domain) if d.labels}
            needed = required_params(op.params, shapes[args[0]])
            cases[f"{name}-array{i}"] = Case(f"sum({call(name, args, needed)})", shapes, dtypes)
            cases[f"{name}-array{i}-out"] = Case(call(name, args, needed), shapes, dtypes)
            if "axis" in op.params and len(letters[0]) > 1:
                cases[f"{name}-array{i}-axis"] = Case(f"sum({call(name, args, ', axis=1')})", shapes, dtypes)
    return cases


def gate_cases() -> dict[str, Case]:
    a, b, c = sp.symbols("a b c", real=True)
    bind = {"a": a, "b": b, "rest": sp.exp(b) + sp.exp(c)}
    cases: dict[str, Case] = {}
    for p in PATTERNS:
        for spelling, _ in p.rewrites[:1]:
            expr = spelling.xreplace({w: bind[w.name] for w in spelling.atoms(sp.Wild)})
            cases[f"gate-{p.name}"] = Case(expr,
                                           fuse=(p.name,))
    cases["gate-affine"] = Case("sigmoid(w0*x0 + w1*x1 + w2)", fuse=("affine", "sigmoid"))
    cases["gate-sigmoid-array"] = Case("sum(1/(1 + exp(-(W @ x))))", {"W": (2, 3), "x": (3,)},
                                       fuse=("sigmoid",))
    net = "softmax_cross_entropy(relu(X @ W + b) @ V, y)"
    net_shapes = {"X": (4, 3), "W": (3, 5), "b": (5,), "V": (5, 3), "y": (4,)}
    for name in LAYERS:
        cases[f"layer-{name}"] = Case(net, net_shapes, {"y": int}, fuse=(name,))
    cases["whole-scalar"] = Case("(x + y) * z + max(z, w)", fuse_all=True)
    cases["whole-array"] = Case("tanh(a * b) + a", {"a": (2, 3), "b": (3,)}, fuse_all=True)
    return cases


CASES = {**op_cases(), **gate_cases()}


def point(g: sg.Graph, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out = {}
    for n in g.inputs:
        domain = Domain(0.25, 2.0, signed=True)
        for v in g.consumers(n):
            op = OPS.get(g.nx.nodes[v].get("op") or "")
            if op is not None and len(op.domain) == len(g.operands(v)):
                domain = op.domain[g.operands(v).index(n)]
        if n in g.labels:
            domain = Domain(0, 0, labels=True)
        out[n] = sample(domain, g.shape(n), rng)
    return out


def displays(obj: Any) -> dict[str, str]:
    table = obj.table()
    explanation = obj.explain()
    return {"text table": str(table), "LaTeX table": table._repr_latex_(), "SVG": sg.render(obj),
            "explanation": str(explanation), "explanation (Markdown)": explanation._repr_markdown_(),
            "explanation (LaTeX)": explanation._repr_latex_()}


def named(text: str, node: str, kind: str) -> bool:
    if "LaTeX" in kind or "Markdown" in kind:
        return sp.latex(sp.Symbol(node)) in text
    if kind == "SVG":
        return f'data-node="{node}"' in text
    return re.search(rf"\b{re.escape(node)}\b", text) is not None


def test_the_cases_cover_every_op_gate_and_layer():
    ops = {k.split("-")[0] for k in CASES if "-" in k and not k.startswith(("gate", "layer", "whole"))}
    assert ops == set(OPS)
    assert {p.name for p in PATTERNS} <= {k.split("-")[1] for k in CASES if k.startswith("gate-")}
    assert {k[len("layer-"):] for k in CASES if k.startswith("layer-")} == set(LAYERS)


@pytest.mark.parametrize("key", sorted(CASES))
def test_every_display_of_graph_and_trace(key):
    g = CASES[key].graph()
    if CASES[key].fuse or CASES[key].fuse_all:
        assert g.gates, f"{key}: nothing was fused"
    t = g.backprop(**point(g, sorted(CASES).index(key)))
    for what, obj in (("graph", g), ("trace", t)):
        shown = displays(obj)
        for kind, text in shown.items():
            assert text, (key, what, kind)
            wanted = g.nodes if kind in ("text table", "LaTeX table", "SVG") else \
                [*(n for n in g.inputs if n not in g.labels), g.output]
            missing = [n for n in wanted if not named(text, n, kind)]
            assert not missing, f"{key}: the {what}'s {kind} does not name {missing}"


@pytest.mark.parametrize("key", sorted(CASES))
def test_a_derivative_is_written_alike_in_table_explanation_and_picture(key):
    g = CASES[key].graph()
    table, explanation, picture = str(g.table()), str(g.explain()), sg.render(g)
    for v in g.operations:
        form = "cached" if g.nx.nodes[v]["kind"] == "gate" else "derivative"
        vjps = None if g.elementwise(v) else g.vjps(v)
        for u in g.operands(v):
            if vjps is None:
                text = written(g, g.nx.edges[u, v][form], [v])
                assert text in local_text(g, v, u) and text in table, (key, v, u, text)
                sent = text
            elif u in vjps:
                text = vjp_text(vjps[u], g, v)
                assert text in table, (key, v, u, text)
                sent = text.split(" ↦ ", 1)[1]
            else:  # labels
                assert "labels (no gradient)" in table and "labels (no gradient)" in picture, (key, v, u)
                continue
            assert escaped(text[:31]) in picture, (key, v, u, text)
            if g.nx.nodes[u]["kind"] != "const":
                assert sent in explanation, (key, v, u, sent)


def escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_the_printers_agree_where_sympy_reorders():
    g = sg.graph("max(z, w)")
    shown = [str(g.table()), str(g.explain()), sg.render(g), g.table()._repr_latex_(),
             g.explain()._repr_markdown_()]
    assert all("[z &gt; w]" in s if s.startswith("<svg") else "[z > w]" in s for s in shown[:3]), shown[:3]
    assert all(r"\mathbb{1}\left[z > w\right]" in s for s in shown[3:]), shown[3:]
    assert not any("-w + z" in s or "- w + z" in s for s in shown)
