"""The assignment spec, input sampling and the reference gradients."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from symgrad.homework import SpecError, load_spec, prepare, reference_gradients

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "homework" / "assignment.toml"


def one(body: str):
    return load_spec("[[problem]]\nid = \"p\"\n" + body).problems[0]


def test_the_example_spec_loads():
    spec = load_spec(EXAMPLE)
    assert [p.id for p in spec.problems] == ["circuit", "neuron", "neuron_layer", "ridge", "sigmoid_layer",
                                             "sigmoid_prime", "logistic", "affine_backward", "softmax_loss"]
    assert spec.max_points == 20 and spec.seed == 2024
    assert spec.limits.output_kb == 256
    layer = spec.problem("sigmoid_layer")
    assert layer.shapes == {"X": (4, 3), "b": (3,)} and layer.batch == ("N", 4)
    assert layer.output_shape == (4, 3) and layer.style == "layer"
    ridge = spec.problem("ridge")
    assert ridge.wrt == ("w", "b") and ridge.inputs["lam"].value is not None
    assert spec.problem("neuron_layer").returns == ("w0", "x0", "w1", "x1", "w2")
    assert spec.problem("logistic").kind == "answer" and spec.problem("logistic").trials == 5
    affine = spec.problem("affine_backward")
    assert affine.shapes == {"X": (4, 2), "W": (2, 3), "b": (3,)} and affine.output_shape == (4, 3)
    softmax = spec.problem("softmax_loss")
    assert softmax.wrt == ("W",) and softmax.shapes["W"] == (3, 3) and softmax.batch == ("N", 5)
    assert softmax.inputs["y"].labels == 3 and softmax.regularization == "reg * sum(W * W)"


def test_sampling_shapes_ranges_labels_and_fixed_values():
    p = one('''expression = "x + lam * sum(W) + mean(pick(W, y))"
dims = { N = 5 }
[problem.inputs]
x = { range = [1, 2] }
W = { shape = ["N", 3], range = [-1, 0] }
y = { shape = ["N"], labels = 3 }
lam = { value = 0.25 }
''')
    points = p.sample(seed=7)
    assert len(points) == 3
    for pt in points:
        assert pt["x"].shape == () and 1 <= pt["x"] <= 2
        assert pt["W"].shape == (5, 3) and np.all((-1 <= pt["W"]) & (pt["W"] <= 0))
        assert pt["y"].dtype == np.int64 and pt["y"].shape == (5,) and set(pt["y"]) <= {0, 1, 2}
        assert pt["lam"] == 0.25
    assert p.wrt == ("x", "W")  # labels and fixed values have no gradient by default
    again = p.sample(seed=7)
    assert all(np.array_equal(a[n], b[n]) for a, b in zip(points, again) for n in a)
    assert not np.array_equal(p.sample(seed=8)[0]["W"], points[0]["W"])


def test_labels_are_spread_over_the_classes():
    p = one('expression = "mean(pick(S, y))"\n[problem.inputs]\nS = { shape = [400, 3] }\n'
            'y = { shape = [400], labels = 3 }')
    counts = np.bincount(p.sample(0)[0]["y"], minlength=3)
    assert counts.min() > 80


def test_layer_douts_are_away_from_zero_and_one():
    p = one('style = "layer"\nexpression = "2 * X"\n[problem.inputs]\nX = { shape = [4, 3] }')
    for d in p.sample_douts(0):
        assert d.shape == (4, 3) and np.all((np.abs(d) >= 1.5) & (np.abs(d) <= 3))


@pytest.mark.parametrize("body, message", [
    ('expression = "x +"', "syntax error"),
    ('expression = "__import__(1)"', "unknown function '__import__'"),
    ("points = 1", "expression must be a string"),
    ('expression = "x"\ncolour = 1', "unknown key 'colour'"),
    ('expression = "x"\nkind = "essay"', "kind must be one of"),
    ('expression = "x"\nwrt = ["z"]', "wrt names 'z', which is not an input"),
    ('expression = "x * y"\n[problem.inputs]\ny = { labels = 1 }\n', "number of classes"),
    ('expression = "mean(pick(S, y))"\nwrt = ["y"]\n[problem.inputs]\nS = { shape = [2, 3] }\n'
     'y = { shape = [2], labels = 3 }', "integer labels have no gradient"),
    ('expression = "x * y"\n[problem.inputs]\ny = { labels = 3 }', "labels can only select entries"),
    ('expression = "x"\n[problem.inputs]\nz = { range = [0, 1] }', "input 'z' does not occur"),
    ('expression = "X"\n[problem.inputs]\nX = { shape = ["N"] }', "dimension 'N'"),
    ('expression = "x"\n[problem.inputs]\nx = { range = [2, 1] }', "low < high"),
    ('expression = "x"\n[problem.inputs]\nx = { range = [0, 1], value = 3 }',
     "one of range, labels and value"),
    ('expression = "2 * X"\n[problem.inputs]\nX = { shape = [2] }', "style \"grad\" needs a scalar"),
    ('expression = "x"\nbatch = "N"', "batch names 'N'"),
    ('expression = "x"\ntrials = 0', "trials"),
    ('expression = "x"\nfunction = "not a name"', "function must be a Python function name"),
    ('expression = "x * y"\nreturns = ["x"]', "returns must list"),
    ('expression = "x"\nregularization = "z**2"', "regularization"),
])
def test_bad_specs_are_refused_with_the_problem_named(body, message):
    with pytest.raises(SpecError) as e:
        one(body)
    assert message in str(e.value)
    assert "problem 'p'" in str(e.value)


def test_spec_level_errors():
    with pytest.raises(SpecError, match="no problems"):
        load_spec("[assignment]\ntitle = 'x'\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec("[[problem]\n")
    with pytest.raises(SpecError, match="used twice"):
        load_spec('[[problem]]\nid = "a"\nexpression = "x"\n[[problem]]\nid = "a"\nexpression = "y"\n')
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(Path("/nonexistent/spec.toml"))
    with pytest.raises(SpecError, match=r"\[limits\] memory_mb"):
        load_spec('[limits]\nmemory_mb = 1\n[[problem]]\nid = "a"\nexpression = "x"\n')


def test_reference_reproduces_the_worked_numbers():
    spec = load_spec(EXAMPLE)
    r = reference_gradients(spec.problem("circuit"), {"x": -2.0, "y": 5.0, "z": -4.0})
    assert float(r.value) == -12.0
    assert {n: float(v) for n, v in r.grads.items()} == {"x": -4.0, "y": -4.0, "z": 3.0}
    point = {"w0": 2.0, "x0": -1.0, "w1": -3.0, "x1": -2.0, "w2": -3.0}
    r = reference_gradients(spec.problem("neuron"), point)
    assert float(r.value) == pytest.approx(0.7311, abs=1e-4)
    expected = {"w0": -0.1966, "x0": 0.3932, "w1": -0.3932, "x1": -0.5898, "w2": 0.1966}
    assert {n: round(float(v), 4) for n, v in r.grads.items()} == expected


def central_differences(f, point, dout, names, h=1e-6):
    """∑ dout · ∂f/∂input by central differences, for the inputs ``names``."""
    grads = {}
    for name in names:
        value = point[name]
        g = np.zeros(np.shape(value))
        for i in np.ndindex(g.shape):
            up, down = np.array(value, dtype=float), np.array(value, dtype=float)
            up[i] += h
            down[i] -= h
            g[i] = np.sum(dout * (f({**point, name: up}) - f({**point, name: down}))) / (2 * h)
        grads[name] = g
    return grads


@pytest.mark.parametrize("problem_id", ["circuit", "neuron", "neuron_layer", "ridge", "sigmoid_layer",
                                        "sigmoid_prime", "logistic", "affine_backward", "softmax_loss"])
def test_references_agree_with_finite_differences(problem_id):
    spec = load_spec(EXAMPLE)
    prep = prepare(spec.problem(problem_id), seed=3)
    p = prep.problem

    def f(pt):
        return reference_gradients(p, pt).value

    douts = prep.douts or [np.ones(p.output_shape)] * len(prep.points)
    for point, dout, ref in zip(prep.points, douts, prep.refs):
        numeric = central_differences(f, point, dout, p.wrt)
        for name in p.wrt:
            np.testing.assert_allclose(ref.grads[name], numeric[name], rtol=1e-6, atol=1e-8)


def test_the_alternatives_are_what_the_mistakes_give():
    spec = load_spec(EXAMPLE)
    ridge = prepare(spec.problem("ridge"), seed=1)
    (hint, refs), = ridge.alternatives
    assert "regularization term lam*w**2 / 2" in hint
    for point, ref in zip(ridge.points, refs):
        err = point["w"] * point["x"] + point["b"] - point["y"]
        assert np.isclose(ref.grads["w"], err * point["x"]) and np.isclose(ref.grads["b"], err)
    layer = prepare(spec.problem("sigmoid_layer"), seed=1)
    (hint, refs), = layer.alternatives
    assert "ignores dout" in hint
    for point, ref in zip(layer.points, refs):
        s = 1 / (1 + np.exp(-(point["X"] + point["b"])))
        np.testing.assert_allclose(ref.grads["X"], s * (1 - s))
    assert layer.where == ["test point 1", "test point 2", "test point 3"]
    assert prepare(spec.problem("circuit"), seed=1).where[0].startswith("x=")
