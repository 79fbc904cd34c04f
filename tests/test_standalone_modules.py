"""Every op of the table and every gate, written as a standalone module and run with NumPy alone.

Each case is a graph: one per op (on scalars and, for elementwise ops, on
arrays; the array ops on the shapes the table declares), one per spelling
of each gate in :data:`symgrad.gates.PATTERNS` fused into its gate, and one
per gate over arrays in :data:`symgrad.layers.LAYERS`.  :func:`symgrad.codegen`
writes each as a module; one fresh interpreter, in which symgrad, SymPy and
networkx cannot be imported, imports every module and runs ``value_and_grad``
and ``forward``/``backward`` (scalar graphs also on a batch of points).  The
numbers must equal the interpreter's (``Graph.backprop``), which the op-table
tests check against SymPy and finite differences.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.gates import PATTERNS
from symgrad.layers import LAYERS
from symgrad.ops import OPS, SMALL, Domain

from .conftest import required_params

NAMES = "abcd"
SIZES = {"n": 2, "k": 3, "m": 4, "c": 3, "b": 2, "1": 1}
# gates that have no spellings to rewrite, and the gates over arrays: an expression that fuses into each
GATE_TEXTS = {
    "affine": ("w0*x0 + w1*x1 + b", {}, {}),
    "affine_relu": ("relu(X @ W + b)", {"X": (2, 3), "W": (3, 4), "b": (4,)}, {}),
    "softmax_cross_entropy": ("-mean(pick(log_softmax(s), y))", {"s": (4, 3), "y": (4,)}, {"y": int}),
}

CHILD = r'''
import importlib, importlib.abc, json, sys
import numpy as np

class Refuse(importlib.abc.MetaPathFinder):
    """The generated code needs NumPy only: importing symgrad, SymPy or networkx fails."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("symgrad", "sympy", "networkx", "mpmath"):
            raise ImportError(f"standalone modules may not import {name}")
        return None

sys.meta_path.insert(0, Refuse())
folder = sys.argv[1]
sys.path.insert(0, folder)
cases = json.load(open(f"{folder}/cases.json"))
for case in cases:
    m = importlib.import_module(case["module"])
    data = np.load(f"{folder}/{case['module']}_in.npz")
    args = [data[n] if data[n].ndim else float(data[n]) for n in case["inputs"]]
    value, grads = m.value_and_grad(*args)
    result = {"value": value, **{"grad_" + k: v for k, v in grads.items()}}
    _, cache = m.forward(*args)
    dout = np.ones(np.shape(value)) if np.ndim(value) else 1.0
    result.update({"back_" + k: v for k, v in m.backward(dout, cache).items()})
    if case["batch"]:
        batch = [np.array([a, a + 0.125, a - 0.125]) if i == 0 else a for i, a in enumerate(args)]
        value, grads = m.value_and_grad(*batch)
        result["batch_value"] = value
        result.update({"batch_" + k: v for k, v in grads.items()})
    np.savez(f"{folder}/{case['module']}_out.npz", **result)
assert not [n for n in sys.modules if n.split(".")[0] in ("symgrad", "sympy", "networkx")]
print("ok", len(cases))
'''


def sample(domain: Domain, shape: tuple[int, ...], rng: np.random.Generator, classes: int = 1):
    if domain.labels:
        return rng.integers(0, classes, size=shape)
    values = rng.uniform(domain.lo, domain.hi, size=shape)
    return values * rng.choice([-1.0, 1.0], size=shape) if domain.signed else values


def op_cases() -> list[tuple[str, sg.Graph, dict]]:
    rng = np.random.default_rng(11)
    cases = []
    for name, op in sorted(OPS.items()):
        names = NAMES[: op.arity]
        text = f" {op.infix} ".join(names) if op.infix else f"{name}({', '.join(names)})"
        if op.elementwise:
            for shape in [(), (3,)]:
                shapes = {n: shape for n in names} if shape else {}
                point = {n: sample(d, shape, rng) for n, d in zip(names, op.domain)}
                cases.append((f"{name}{len(shape)}", sg.graph(text, shapes=shapes), point))
            continue
        for i, pattern in enumerate(op.shapes):
            shapes = {n: tuple(SIZES[ch] for ch in p) for n, p in zip(names, pattern)}
            dtypes = {n: int for n, d in zip(names, op.domain) if d.labels}
            needed = required_params(op.params, shapes[names[0]])
            text = f"{name}({', '.join(names)}{needed})" if needed else text
            classes = shapes[names[0]][-1] if shapes[names[0]] else 1
            point = {n: sample(d, shapes[n], rng, classes) for n, d in zip(names, op.domain)}
            cases.append((f"{name}{i}", sg.graph(text, shapes=shapes, dtypes=dtypes), point))
    return cases


def spelled(spelling: sp.Expr) -> sp.Expr:
    """A gate's spelling (in Wilds) with the Wilds replaced by inputs: ``a``, and ``exp(b)`` for a rest."""
    a, b = sp.symbols("a b", real=True)
    return spelling.xreplace({w: a if w.name == "a" else sp.exp(b) for w in spelling.atoms(sp.Wild)})


def gate_cases() -> list[tuple[str, sg.Graph, dict, sg.Graph]]:
    rng = np.random.default_rng(12)
    cases = []
    for pattern in PATTERNS:
        for i, (spelling, _) in enumerate(pattern.rewrites):
            g = sg.graph(spelled(spelling))
            point = {n: sample(SMALL, (), rng) for n in g.inputs}
            cases.append((f"gate_{pattern.name}{i}", g.fuse(pattern.name), point, g))
    for name, (text, shapes, dtypes) in GATE_TEXTS.items():
        g = sg.graph(text, shapes=shapes, dtypes=dtypes)
        classes = shapes.get("s", (1, 1))[-1]
        point = {n: sample(Domain(0, 0, labels=True) if n in dtypes else SMALL, g.shape(n), rng, classes)
                 for n in g.inputs}
        cases.append((f"gate_{name}", g.fuse(name), point, g))
    return cases


def test_every_gate_has_a_case():
    names = {p.name for p in PATTERNS if p.rewrites} | set(GATE_TEXTS)
    assert names == {p.name for p in PATTERNS} | set(LAYERS)


def test_every_case_fuses_into_its_gate():
    for name, fused, _, _ in gate_cases():
        labels = [fused.nx.nodes[n]["label"] for n in fused.gates]
        assert labels and all(label == name[len("gate_"):].rstrip("0123456789") for label in labels), name


def test_every_op_and_gate_runs_as_a_module_with_numpy_alone(tmp_path):
    cases = [(name, g, point, g) for name, g, point in op_cases()] + gate_cases()
    listed = []
    for name, g, point, _ in cases:
        module = f"m_{name}"
        sg.codegen(g, tmp_path / f"{module}.py")
        np.savez(tmp_path / f"{module}_in.npz", **{n: np.asarray(point[n]) for n in g.inputs})
        batch = all(g.shape(n) == () for n in g.nodes) and bool(g.inputs)
        listed.append({"module": module, "inputs": list(g.inputs), "batch": batch})
    (tmp_path / "cases.json").write_text(json.dumps(listed))
    run = subprocess.run([sys.executable, "-I", "-c", CHILD, str(tmp_path)], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["ok", str(len(cases))]

    for (name, g, point, original), case in zip(cases, listed):
        out = np.load(Path(tmp_path) / f"{case['module']}_out.npz")
        for reference in (g, original):  # the fused graph's interpreter, and the graph before fusing
            t = reference.backprop(**point)
            np.testing.assert_allclose(out["value"], t.value, rtol=1e-10, atol=1e-12, err_msg=name)
            for n in t.grads:
                np.testing.assert_allclose(out["grad_" + n], t.grads[n], rtol=1e-9, atol=1e-12,
                                           err_msg=f"{name}: ∂/∂{n}")
                np.testing.assert_allclose(out["back_" + n], t.grads[n], rtol=1e-9, atol=1e-12,
                                           err_msg=f"{name}: backward ∂/∂{n}")
        if case["batch"]:
            first = g.inputs[0]
            for k, shift in enumerate((0.0, 0.125, -0.125)):
                moved = {**point, first: float(point[first]) + shift}
                t = g.backprop(**moved)
                np.testing.assert_allclose(out["batch_value"][k], t.value, rtol=1e-10, atol=1e-12)
            traces = [g.backprop(**{**point, first: float(point[first]) + s}) for s in (0.0, 0.125, -0.125)]
            for n in g.inputs:  # the batched input: a gradient per point; the others: summed over it
                want = [t.grads[n] for t in traces] if n == first else sum(t.grads[n] for t in traces)
                np.testing.assert_allclose(out["batch_" + n], want, rtol=1e-9, atol=1e-12,
                                           err_msg=f"{name}: batch ∂/∂{n}")


@pytest.mark.parametrize("text", ["0.0**y + y", "x.T * 2", "2**x * 0**x"])
def test_cases_that_once_printed_bare_names_run_as_modules(text, tmp_path):
    g = sg.graph(text)
    sg.codegen(g, tmp_path / "m_case.py")
    point = {n: 0.75 for n in g.inputs}
    np.savez(tmp_path / "m_case_in.npz", **{n: np.asarray(v) for n, v in point.items()})
    (tmp_path / "cases.json").write_text(json.dumps([{"module": "m_case", "inputs": list(g.inputs),
                                                      "batch": True}]))
    run = subprocess.run([sys.executable, "-I", "-c", CHILD, str(tmp_path)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = np.load(tmp_path / "m_case_out.npz")
    t = g.backprop(**point)
    for n in g.inputs:
        assert np.isclose(out["grad_" + n], t.grads[n], rtol=1e-12)
