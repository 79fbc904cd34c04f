"""Array bodies with single-use temporaries written into their readers (symgrad.temporaries).

The compiled entry points run these bodies; the module keeps the readable
lines.  Both must give the same numbers, bit for bit, for every row of the op
table, plain and fused, for batches large enough that NumPy reuses the
temporaries' buffers, and for the nets and layers of arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

import symgrad as sg
from symgrad.temporaries import MAX_PARTS, inline_temporaries

from .test_op_table import row_graphs


def run(body: list[str], **inputs):
    """The value ``body`` returns, run as a function of ``inputs``."""
    namespace: dict = {"np": np}
    exec("def f({}):\n{}".format(", ".join(inputs), "\n".join("    " + line for line in body)), namespace)
    return namespace["f"](**inputs)


def test_a_chain_is_written_into_its_reader_and_its_dels_go():
    body = ["q1 = w0*x0", "q2 = w1*x1", "q3 = q1 + q2", "q4 = np.exp(-q3)",
            "del q1, q2, q3  # forward values the gradients do not read", "q5 = q4*x0", "return q5, q4"]
    assert inline_temporaries(body) == ["q4 = np.exp(-((w0*x0) + (w1*x1)))", "q5 = q4*x0", "return q5, q4"]


def test_a_del_of_what_a_temporary_reads_waits_for_its_reader():
    body = ["a = x*2", "z = a*3", "b = a + 1", "del a, x", "c = b*y", "d = np.exp(c)", "e = d*z", "return e"]
    inlined = inline_temporaries(body)
    assert inlined == ["a = x*2", "del x", "e = (np.exp(((a + 1)*y)))*(a*3)", "del a", "return e"]
    x, y = np.linspace(0.1, 1, 5), np.linspace(-1, 2, 5)
    np.testing.assert_array_equal(run(inlined, x=x, y=y), run(body, x=x, y=y))


@pytest.mark.parametrize("body", [
    ["a = x*2", "b = a + 1", "c = a*b", "return c"],  # read twice
    ["a = x*2", "a = a + 1", "b = a*3", "return b"],  # assigned twice
    ["a = x*2", "if x.__class__ is float:", "    x = 1.0", "b = a + 1", "return b"],  # a statement between
    ["a = x*2", "x = y", "b = a + 1", "return b"],  # what it reads is assigned before its reader
    ["a = x*2", "return a + 1"],  # read by another statement
    ["a = x[:, 0]", "b = a + 1", "return b"],  # a line the templates do not cover
])
def test_a_temporary_is_kept_where_writing_it_in_could_change_what_runs(body):
    assert inline_temporaries(body)[0] == body[0]


def test_a_long_chain_is_written_in_a_few_parts_a_line():
    body = ["q0 = x + 1", *(f"q{i} = np.sin(q{i - 1})" for i in range(1, 40)), "return q39"]
    inlined = inline_temporaries(body)
    assert 40 // MAX_PARTS <= len(inlined) - 1 < 40
    assert all(line.count("np.sin") <= MAX_PARTS for line in inlined)
    x = np.linspace(-2, 2, 7)
    np.testing.assert_array_equal(run(inlined, x=x), run(body, x=x))


def same(a, b) -> None:
    """The same numbers, bit for bit (nan where nan), in the same structure."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    else:
        assert type(a) is type(b)
        np.testing.assert_array_equal(a, b)


def compiled_rows():
    return [pytest.param(g.compile(), id=name) for name, g in row_graphs()]


@pytest.mark.parametrize("f", compiled_rows())
def test_entries_give_the_modules_numbers_for_every_op(f):
    rng = np.random.default_rng(0)
    for size in (50_000, 3) if f.batchable else (None,):  # NumPy reuses buffers of 256 KiB and more
        point = {n: rng.uniform(0.2, 0.8, size) for n in f.graph.inputs}  # a reduction's row: a point
        with np.errstate(all="ignore"):
            same(f.value_and_grad(**point), f.module.value_and_grad(**point))
            same(f.forward(**point)[0], f.module.forward(**point)[0])


LAYERS = [
    ("sum(x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715*x**3))) * w)", {"x": (300, 200), "w": (300, 200)}),
    ("sum(softmax(Q @ K.T / sqrt(8), axis=-1) * W)", {"Q": (256, 8), "K": (256, 8), "W": (256, 256)}),
    ("sum((x - mean(x, axis=1, keepdims=True))**2 * exp(-x) * w)", {"x": (300, 200), "w": (300, 200)}),
]


@pytest.mark.parametrize("text, shapes", LAYERS)
def test_entries_give_the_modules_numbers_for_layers(text, shapes):
    rng = np.random.default_rng(1)
    f = sg.graph(text, shapes=shapes).compile()
    point = {n: rng.standard_normal(s) for n, s in shapes.items()}
    same(f.value_and_grad(**point), f.module.value_and_grad(**point))


def test_the_sigmoid_neurons_batch_runs_fewer_lines():
    g = sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))")
    body = g.compile()._functions["value_and_grad"].body
    assert len(inline_temporaries(body)) < len(body) - 4
    fused = inline_temporaries(g.fuse("sigmoid").compile()._functions["value_and_grad"].body)
    assert fused[0] == "q4 = ((w0*x0) + (w1*x1)) + w2"  # as docs/api.md shows it


@pytest.mark.parametrize("text, shapes", [("1/(1+exp(-(w0*x0+w1*x1+w2)))", None), LAYERS[0]])
def test_buffers_numpy_reuses_are_never_an_input_or_another_result(text, shapes):
    rng = np.random.default_rng(2)
    g = sg.graph(text, shapes=shapes) if shapes else sg.graph(text)
    sizes = shapes or {n: (50_000,) for n in g.inputs}
    point = {n: rng.standard_normal(sizes[n]) for n in g.inputs}
    kept = {n: v.copy() for n, v in point.items()}
    value, grads = g.compile().value_and_grad(**point)
    results = [value, *grads.values()]
    for i, r in enumerate(results):
        assert not any(np.shares_memory(r, v) for v in point.values())
        assert not any(np.shares_memory(r, s) for s in results[i + 1:])
    for n in point:
        np.testing.assert_array_equal(point[n], kept[n])  # the inputs are as they were
