"""One finder for scalar and array gates: what holds for one holds for the other."""

from __future__ import annotations

import pytest

import symgrad as sg

LAYER = ("relu(X @ W + b)", {"X": (4, 3), "W": (3, 5), "b": (5,)})
SCALAR = ("1/(1 + exp(-(w*x + b)))", {})


@pytest.mark.parametrize("text, shapes, pattern", [(*LAYER, "affine_relu"), (*SCALAR, "sigmoid")])
def test_fusing_a_pattern_again_changes_nothing(text, shapes, pattern):
    g = sg.graph(text, shapes=shapes)
    once = g.fuse(pattern)
    twice = once.fuse(pattern)
    assert len(once.gates) == 1 and twice.nodes == once.nodes
    assert [twice.expr(n) for n in twice.nodes] == [once.expr(n) for n in once.nodes]
    assert twice.expand(twice.gates).nodes == g.nodes  # one level opens it: no gate inside a gate
