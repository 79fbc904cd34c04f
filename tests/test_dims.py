"""Named dimensions and checked shapes, in the interpreter, compile() and the written module.

Code for a graph with named dimensions is generated once and run at several
sizes; its gradients must equal central finite differences at each.  Every
input of the wrong shape, rank or kind must get one error naming the input,
in every path, before anything is computed.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symgrad as sg
from symgrad.cli import main

from .conftest import central_differences as finite_differences

SHAPES = {"X": ("N", "K"), "W": ("K", "M"), "b": ("M",), "v": ("N",)}


def load(text: str, tmp_path, name: str = "generated"):
    """A written module, imported from its file."""
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def close(got, want) -> bool:
    return np.allclose(got, want, rtol=1e-5, atol=1e-7)


# -- the case a new user meets -------------------------------------------------------


def test_a_mean_over_a_named_batch_divides_by_the_batch_it_meets(tmp_path):
    text = sg.codegen(sg.graph("mean(relu(X @ W))", shapes={"X": ("N", 3), "W": (3, "H")}))
    assert "N = X.shape[0]" in text and "H = W.shape[1]" in text
    assert "1/(H*N)" in text and "128" not in text
    module = load(text, tmp_path)
    rng = np.random.default_rng(0)
    X, W = rng.normal(size=(64, 3)), rng.normal(size=(3, 2))
    for batch in (X, X[:32], X[:1]):
        value, grads = module.value_and_grad(batch, W)
        assert value == pytest.approx(np.maximum(batch @ W, 0).mean())
        want = finite_differences(lambda X, W: float(np.maximum(X @ W, 0).mean()), {"X": batch, "W": W},
                                  ["X", "W"])
        assert close(grads["W"], want["W"]) and close(grads["X"], want["X"])


def test_concrete_sizes_refuse_another_batch(tmp_path):
    module = load(sg.codegen(sg.graph("mean(relu(X @ W))", shapes={"X": (64, 3), "W": (3, 2)})), tmp_path)
    X, W = np.ones((64, 3)), np.ones((3, 2))
    with pytest.raises(ValueError, match=r"value of 'X' has shape \(32, 3\), but the graph declares "
                                         r"\(64, 3\): dimension 0 is 32, not 64"):
        module.value_and_grad(X[:32], W)
    f = sg.graph("mean(relu(X @ W))", shapes={"X": (64, 3), "W": (3, 2)}).compile()
    with pytest.raises(sg.ShapeError, match="dimension 0 is 32, not 64"):
        f.value_and_grad(X=X[:32], W=W)


def test_generated_code_reads_each_named_size_once_at_the_top():
    g = sg.graph(lambda X, y: sg.softmax_cross_entropy(X, y), shapes={"X": ("N", "C"), "y": ("N",)},
                 dtypes={"y": int})
    text = sg.codegen(g)
    for name in ("forward", "value_and_grad"):
        body = text[text.index(f"def {name}("):].split("\n\n\n")[0].splitlines()
        assert body[2].strip() == "_check((X, y), _DECLARED)"
        reads = [line.strip() for line in body if re.search(r"^\s*[NC] = ", line)]
        assert reads == ["N = X.shape[0]", "C = X.shape[1]"][: len(reads)] and reads
        assert all(not re.match(r"\s*[NC] = ", line) for line in body[3 + len(reads):])
    assert "('y', ('N',), 'C')" in text  # labels pick from C classes, however many C is


def test_named_dimensions_show_in_graph_text_tables_pictures_and_explanations():
    g = sg.graph("mean(relu(X @ W))", shapes={"X": ("N", 3), "W": (3, "H")})
    assert "graph(X: N×3, W: 3×H)" in str(g) and re.search(r"\[@\] +N×H\n", str(g))
    assert "broadcast_to(dq3/(H*N), (N, H))" in str(g.table())
    t = g.backprop(X=np.ones((4, 3)), W=np.ones((3, 2)))
    assert t.sizes == {"N": 4, "H": 2}
    assert "(N, H)" in str(t.table())
    assert str(t.table()).splitlines()[-1] == "named dimensions: N = 4, H = 2 (X: N×3, W: 3×H)"
    assert str(g.table()).splitlines()[-1] == "named dimensions: N, H (X: N×3, W: 3×H)"
    assert ">N×3<" in sg.render(t) and ">q1 · N×H<" in sg.render(g)
    assert str(t.explain("W")).splitlines()[-1] == "named dimensions: N, H (X: N×3, W: 3×H)"
    assert t.explain("W")._repr_markdown_().endswith("\n\nnamed dimensions: N, H (X: N×3, W: 3×H)")


def test_equal_names_are_the_same_size_and_names_do_not_broadcast_against_sizes():
    sg.graph("x * y", shapes={"x": ("N",), "y": ("N",)})
    sg.graph("x * y", shapes={"x": ("N", 1), "y": ("M",)})  # a 1 stretches to any size
    with pytest.raises(sg.ShapeError, match="do not broadcast"):
        sg.graph("x * y", shapes={"x": ("N",), "y": ("M",)})
    with pytest.raises(sg.ShapeError, match="do not broadcast"):
        sg.graph("x * y", shapes={"x": ("N",), "y": (3,)})
    with pytest.raises(sg.ShapeError, match="do not align"):
        sg.graph("A @ B", shapes={"A": ("N", "K"), "B": ("M", 2)})


@pytest.mark.parametrize("shape, words", [
    (("_N",), "not a usable name"), (("np",), "not a usable name"), (("for",), "not a usable name"),
    (("x",), "name of a node"), (("q1",), "name of a node"), (("dx",), "name of a node"),
    ("N", "not a tuple of sizes"), (("N", 2.5), "not a tuple of sizes"), ((True,), "not a tuple"),
])
def test_bad_dimension_names_are_named_errors(shape, words):
    with pytest.raises(sg.ShapeError, match=words):
        sg.graph("sum(2 * x)", shapes={"x": shape})


# -- the property: one code, every size ---------------------------------------------------

UNARY = ("tanh", "sigmoid", "softplus", "sin", "logsigmoid")


@st.composite
def by_n_m(draw, depth: int = 2) -> str:
    """An expression of shape (N, M) over X (N, K), W (K, M), b (M,), v (N,)."""
    if depth == 0:
        return draw(st.sampled_from(["(X @ W)", "(X @ tanh(W))"]))
    inner = draw(by_n_m(depth - 1))
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return f"{draw(st.sampled_from(UNARY))}({inner})"
    if kind == 1:
        return f"({inner} + b)"
    if kind == 2:
        return f"({inner} * {draw(by_n_m(depth - 1))})"
    if kind == 3:
        return f"(tanh({inner}) @ {draw(st.sampled_from(['W.T', 'tanh(W).T']))} @ W)"
    if kind == 4:
        return f"({inner}.T - {draw(st.sampled_from(['mean', 'logsumexp', 'sum']))}({inner}, axis=1)).T"
    if kind == 5:
        return f"(v * {inner}.T).T"
    return f"reshape({inner}.T, {draw(st.sampled_from(['(N, -1)', '(-1, M)', '(N, M)']))})"


@st.composite
def scalar(draw) -> str:
    body = draw(by_n_m())
    return draw(st.sampled_from([
        f"mean({body})", f"sum(mean({body}, axis=0))", f"mean(v * logsumexp({body}, axis=1))",
        f"0.5 * l2(mean({body}, axis=1))", f"sum(mean({body}, axis=1) * v)",
    ]))


SIZES = [{"N": 1, "K": 2, "M": 3}, {"N": 4, "K": 1, "M": 2}, {"N": 3, "K": 3, "M": 1}]


@settings(max_examples=20, deadline=None)
@given(scalar(), st.integers(0, 2**16))
def test_code_for_named_dimensions_is_right_at_every_size(tmp_path_factory, text, seed):
    shapes = {n: s for n, s in SHAPES.items() if re.search(rf"\b{n}\b", text)}
    g = sg.graph(text, shapes=shapes)
    f = g.compile()
    module = load(sg.codegen(g), tmp_path_factory.mktemp("m"))
    rng = np.random.default_rng(seed)
    for sizes in SIZES:
        point = {n: rng.uniform(-1, 1, tuple(sizes[d] for d in shapes[n])) for n in g.inputs}
        want = finite_differences(lambda **p: f(**p), point, g.inputs)
        value, grads = f.value_and_grad(**point)
        m_value, m_grads = module.value_and_grad(*(point[n] for n in g.inputs))
        t = g.backprop(**point)
        for n in g.inputs:
            for got in (t.grads[n], grads[n], m_grads[n]):
                assert np.shape(got) == point[n].shape and close(got, want[n]), (text, sizes, n)
        assert value == pytest.approx(t.value, rel=1e-12) and m_value == pytest.approx(t.value, rel=1e-12)


def flatten_by_name(X, W):
    N = X.shape[0]
    return sg.mean(sg.tanh(X.reshape(N, -1) @ W))


@pytest.mark.parametrize("source", [
    "mean(tanh(reshape(X, (N, -1)) @ W))", "mean(tanh(X.reshape(N, -1) @ W))",
    "mean(tanh(X.reshape((-1, 6)) @ W))",
    lambda X, W: sg.mean(sg.tanh(X.reshape(X.shape[0], -1) @ W)),
    lambda X, W: np.mean(np.tanh(np.reshape(X, (X.shape[0], -1)) @ W)), flatten_by_name,
], ids=["string", "string method", "string -1 first", "callable", "callable np", "callable N"])
def test_a_batch_flattened_by_its_named_size_is_right_at_every_size(source, tmp_path):
    """reshape(X, (N, -1)) reshapes with the size N the inputs give; the gradient comes back in
    X's shape."""
    g = sg.graph(source, shapes={"X": ("N", 2, 3), "W": (6, "H")})
    assert g.shape(g.operations[0]) == (sg.graph("x", shapes={"x": ("N",)}).shape("x")[0], 6)
    text = sg.codegen(g)
    assert "N = X.shape[0]" in text and re.search(r"np\.reshape\(X, \((N, -1|-1, 6)\)\)", text)
    assert re.search(r"np\.reshape\(\w+, \(N, 2, 3\)\)", text)  # the gradient, in X's shape
    f, module = g.compile(), load(text, tmp_path)
    rng = np.random.default_rng(3)
    for n, h in ((1, 2), (4, 1), (7, 3)):
        point = {"X": rng.normal(size=(n, 2, 3)), "W": rng.normal(size=(6, h))}
        want = finite_differences(lambda X, W: float(np.tanh(X.reshape(len(X), -1) @ W).mean()),
                                  point, ["X", "W"])
        for value, grads in ((g.backprop(**point).value, g.backprop(**point).grads),
                             f.value_and_grad(**point), module.value_and_grad(point["X"], point["W"])):
            assert value == pytest.approx(float(np.tanh(point["X"].reshape(n, -1) @ point["W"]).mean()))
            for name in ("X", "W"):
                assert grads[name].shape == point[name].shape and close(grads[name], want[name])


@pytest.mark.parametrize("text, words", [
    ("sum(reshape(X, (M, -1)))", "reshape() takes integers or the named dimensions N, not 'M'"),
    ("sum(X.reshape(-1))", "-1 would stand for 6*N, and a size must be a number or one named dimension"),
    ("sum(reshape(X, (2, -1)))", "-1 would stand for 3*N"),
    ("sum(reshape(X, (N, 5)))", "cannot reshape an array of shape (N, 2, 3) (6*N entries) into shape (N, 5)"),
    ("sum(transpose(X, (N, 0, 1)))", "transpose() takes integers"),
    ("sum(reshape(X, (N, N)))", "into shape (N, N)"),
])
def test_a_new_shape_names_only_declared_dimensions_that_fit(text, words):
    with pytest.raises(sg.SymgradError, match=re.escape(words)):
        sg.graph(text, shapes={"X": ("N", 2, 3)})


def test_a_traced_reshape_by_a_product_of_names_or_len_of_a_named_axis_is_a_named_error():
    with pytest.raises(sg.ShapeError, match=r"shape \(3\*N, 2\) is not a tuple of integers or named"):
        sg.graph(lambda X: X.reshape(X.shape[0] * 3, 2).sum(), shapes={"X": ("N", 3, 2)})
    with pytest.raises(sg.SymgradError, match=r"len\(\) of a traced value whose first dimension is named"):
        sg.graph(lambda X: X.reshape(len(X), -1).sum(), shapes={"X": ("N", 3, 2)})


# -- every wrong input: one clear error, in every path -----------------------------------


def two_layer(X, W1, b1, W2, b2, y, reg):
    h = sg.relu(X @ W1 + b1)
    return sg.softmax_cross_entropy(h @ W2 + b2, y) + 0.5 * reg * (sg.l2(W1) + sg.l2(W2))


NET = {"X": ("N", "D"), "W1": ("D", 4), "b1": (4,), "W2": (4, "C"), "b2": ("C",), "y": ("N",)}


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    g = sg.graph(two_layer, shapes=NET, dtypes={"y": int})
    module = load(sg.codegen(g), tmp_path_factory.mktemp("net"), "net")
    rng = np.random.default_rng(1)
    point = {"X": rng.normal(size=(5, 3)), "W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=4),
             "W2": rng.normal(size=(4, 2)), "b2": rng.normal(size=2), "y": rng.integers(0, 2, 5), "reg": 0.1}
    return g, g.compile(), module, point


def paths(g, f, module):
    """Each way to run the graph: (name, function of the inputs by name, the error it raises)."""
    return [
        ("backprop", lambda p: g.backprop(**p).value, sg.SymgradError),
        ("value_and_grad", lambda p: f.value_and_grad(**p), sg.SymgradError),
        ("forward", lambda p: f.forward(**p), sg.SymgradError),
        ("call", lambda p: f(**p), sg.SymgradError),
        ("module value_and_grad", lambda p: module.value_and_grad(*(p[n] for n in g.inputs)), ValueError),
        ("module forward", lambda p: module.forward(*(p[n] for n in g.inputs)), ValueError),
    ]


def wrong_values(point):
    """(input, wrong value, words the error must hold) for every input."""
    out = []
    for name, value in point.items():
        v = np.asarray(value)
        out.append((name, v[..., None] if v.ndim else np.ones(2), "dimensional"))  # rank
        if name != "y":
            out.append((name, v.astype(bool), "must be real numbers, not bool"))
            out.append((name, v.astype(complex), "must be real numbers, not complex"))
        if v.ndim:
            out.append((name, np.concatenate([v, v[:1]]), "dimension 0"))  # size
    out.append(("y", np.full(5, 2), "labels 'y' must lie in 0 … 1"))
    out.append(("y", np.full(5, -1), "labels 'y' must lie in 0 … 1"))
    out.append(("y", np.full(5, 0.5), "integer labels"))
    return out


def test_the_net_runs_at_every_batch_size_the_same_in_every_path(net):
    g, f, module, point = net
    for n in (1, 5):
        p = {**point, "X": point["X"][:n], "y": point["y"][:n]}
        values = [fn(p) for name, fn, _ in paths(g, f, module)]
        firsts = [v[0] if isinstance(v, tuple) else v for v in values]
        assert np.allclose(firsts, firsts[0], rtol=1e-12)


def test_every_wrong_input_is_one_error_naming_it_in_every_path(net):
    g, f, module, point = net
    for name, value, words in wrong_values(point):
        for path, run, error in paths(g, f, module):
            with pytest.raises(error) as info:
                run({**point, name: value})
            message = str(info.value)
            assert f"'{name}'" in message and words in message, (path, name, message)


@pytest.mark.parametrize("labels", [np.array([0.0, 1.0, 1.0, 0.0, 1.0]), np.array([0, 1, 1, 0, 1.0]),
                                    [0.0, 1.0, 1.0, 0.0, 1.0], np.array([0, 1, 1, 0, 1], np.float32)],
                         ids=["float64", "mixed", "list of floats", "float32"])
def test_labels_that_are_floats_are_refused_the_same_way_in_every_path(net, labels):
    """Whole numbers stored as floats are not labels: every path says so with one message."""
    g, f, module, point = net
    kind = np.asarray(labels).dtype
    messages = set()
    for path, run, error in paths(g, f, module):
        if path.startswith("module") and isinstance(labels, list):
            continue  # a written module takes NumPy arrays for array inputs
        with pytest.raises(error) as info:
            run({**point, "y": labels})
        messages.add(str(info.value))
    assert messages == {f"value of 'y' must be integer labels, not {kind} data"}
    for ints in (point["y"].astype(np.int32), point["y"].tolist(), point["y"].astype(np.uint8)):
        want = f.value_and_grad(**point)[0]
        assert f.value_and_grad(**{**point, "y": ints})[0] == want
        assert g.backprop(**{**point, "y": ints}).value == pytest.approx(want, rel=1e-12)


def test_a_named_dimension_must_agree_across_inputs(net):
    g, f, module, point = net
    bad = {**point, "y": point["y"][:4]}
    for _, run, error in paths(g, f, module):
        with pytest.raises(error, match=r"value of 'y' has shape \(4,\), but the graph declares \(N,\): "
                                        r"dimension 0 \(N\) is 4, but N is 5 in 'X'"):
            run(bad)


def test_the_same_message_from_compile_and_from_the_module(net):
    g, f, module, point = net
    bad = {**point, "W2": point["W2"][:, :1]}
    with pytest.raises(sg.ShapeError) as compiled:
        f.value_and_grad(**bad)
    with pytest.raises(ValueError) as written:
        module.value_and_grad(*(bad[n] for n in g.inputs))
    assert str(compiled.value) == str(written.value)
    assert "dimension 1 (C) is 1, but C is 2 in 'W2'" not in str(written.value)  # b2 comes later
    with pytest.raises(ValueError, match=r"'b2' has shape \(2,\).*: dimension 0 \(C\) is 2, but C is 1"):
        module.value_and_grad(*(bad[n] for n in g.inputs))


def test_backward_checks_dout_against_the_named_output_shape(tmp_path):
    g = sg.graph("tanh(X @ W)", shapes={"X": ("N", 3), "W": (3, "H")})
    f, module = g.compile(), load(sg.codegen(g), tmp_path)
    X, W = np.ones((4, 3)), np.ones((3, 2))
    out, cache = f.forward(X=X, W=W)
    assert f.backward(np.ones((4, 2)), cache)["W"].shape == (3, 2)
    assert np.array_equal(f.backward(1.0, cache)["W"], f.backward(np.ones((4, 2)), cache)["W"])
    with pytest.raises(sg.ShapeError, match=r"dout has shape \(2, 4\), but the output has shape \(4, 2\)"):
        f.backward(np.ones((2, 4)), cache)
    out, cache = module.forward(X, W)
    with pytest.raises(ValueError, match=r"dout has shape \(\), but the output has shape \(4, 2\)"):
        module.backward(1.0, cache)


def test_a_written_module_needs_only_numpy(tmp_path):
    text = sg.codegen(sg.graph(two_layer, shapes=NET, dtypes={"y": int}))
    (tmp_path / "net.py").write_text(text)
    script = textwrap.dedent("""
        import sys, numpy as np
        sys.modules["sympy"] = sys.modules["symgrad"] = None  # not importable
        import net
        X = np.ones((3, 2)); y = np.array([0, 1, 1])
        value, grads = net.value_and_grad(X, np.ones((2, 4)), np.ones(4), np.ones((4, 2)), np.ones(2), y, 0.1)
        assert grads["W1"].shape == (2, 4)
        try:
            net.value_and_grad(X, np.ones((2, 4)), np.ones(4), np.ones((4, 2)), np.ones(3), y, 0.1)
        except ValueError as e:
            print(e)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "value of 'b2' has shape (3,), but the graph declares (C,)" in done.stdout


# -- the command line -----------------------------------------------------------------------


def test_cli_codegen_with_named_dimensions(tmp_path, capsys):
    path = tmp_path / "layer.py"
    assert main(["codegen", "mean(relu(X @ W))", "--shape", "X=(N,3),W=(3,H)", "-o", str(path)]) == 0
    module = load(path.read_text(), tmp_path, "layer")
    X, W = np.random.default_rng(2).normal(size=(7, 3)), np.ones((3, 2))
    assert module.value_and_grad(X, W)[0] == pytest.approx(np.maximum(X @ W, 0).mean())
    assert main(["derive", "mean(2 * X)", "--shape", "X=(N,3)", "--at", "X=[[1,2,3],[4,5,6]]"]) == 0
    assert "dX = 2*dq1 = [[0.3333, 0.3333, 0.3333], [0.3333, 0.3333, 0.3333]]" in capsys.readouterr().out


def test_cli_codegen_flattens_a_batch_by_its_named_size(tmp_path, capsys):
    path = tmp_path / "flat.py"
    assert main(["codegen", "sum(reshape(X, (N, -1)) @ W)", "--shape", "X=(N,2,3),W=(6,H)",
                 "-o", str(path)]) == 0
    module = load(path.read_text(), tmp_path, "flat")
    X, W = np.random.default_rng(4).normal(size=(5, 2, 3)), np.ones((6, 2))
    value, grads = module.value_and_grad(X, W)
    assert value == pytest.approx(np.sum(X.reshape(5, -1) @ W)) and grads["X"].shape == X.shape
    assert np.allclose(grads["X"], 2.0)  # each entry meets every column of W once
    capsys.readouterr()
    assert main(["codegen", "sum(reshape(X, (M, -1)))", "--shape", "X=(N,2,3)"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("symgrad: error: reshape() takes integers or the named dimensions N, not 'M'")
    assert "Traceback" not in err


@pytest.mark.parametrize("shape", ["X=(N,f(1))", "X=(N,__import__)", "X=(N,'a')", "X=(N,0)"])
def test_cli_bad_named_shapes_are_errors(shape, capsys):
    assert main(["codegen", "mean(2 * X)", "--shape", shape]) == 2
    assert "symgrad: error:" in capsys.readouterr().err


def test_a_gradient_that_is_a_copy_of_a_forward_value_is_not_deleted_before_it_is_returned():
    g = sg.graph("sum(mean(sigmoid(X @ W + b), axis=1) * v)", shapes=SHAPES)
    X, W, b, v = np.ones((2, 2)), np.ones((2, 3)), np.ones(3), np.ones(2)
    grads = g.compile().value_and_grad(X=X, W=W, b=b, v=v)[1]
    assert np.allclose(grads["v"], g.backprop(X=X, W=W, b=b, v=v).grads["v"])


def test_a_sympy_matrix_of_symbolic_size_has_a_named_dimension():
    import sympy as sp

    N = sp.Symbol("N")
    g = sg.graph(sp.MatrixSymbol("X", N, 3) * sp.MatrixSymbol("W", 3, 2))
    assert g.shape("X") == g.shape(g.output)[:1] + (3,) and str(g.shape("X")[0]) == "N"
    assert g.backprop(X=np.ones((5, 3)), W=np.ones((3, 2))).value.shape == (5, 2)
    with pytest.raises(sg.ShapeError, match=r"matrix X is \(N, 3\), but shapes gives \(4, 3\)"):
        sg.graph(sp.MatrixSymbol("X", N, 3) * sp.MatrixSymbol("W", 3, 2), shapes={"X": (4, 3)})
    with pytest.raises(sg.ShapeError, match="give whole numbers or names"):
        sg.graph(sp.MatrixSymbol("X", N + 1, 3) * sp.MatrixSymbol("W", 3, 2))


def test_a_zero_gradient_of_named_shape_reads_its_size(tmp_path):
    g = sg.graph(lambda x, X: sg.sum(x * 2), shapes={"x": ("M",), "X": ("N", 3)})
    f, module = g.compile(), load(sg.codegen(g), tmp_path)
    x, X = np.ones(2), np.ones((4, 3))
    out, cache = f.forward(x=x, X=X)
    assert np.array_equal(f.backward(1.0, cache)["X"], np.zeros((4, 3)))
    assert np.array_equal(f.value_and_grad(x=x, X=X)[1]["X"], np.zeros((4, 3)))
    assert np.array_equal(module.backward(1.0, module.forward(x, X)[1])["X"], np.zeros((4, 3)))
    assert np.array_equal(g.backprop(x=x, X=X).grads["X"], np.zeros((4, 3)))


def test_check_grad_and_jacobians_with_named_dimensions(net):
    g, f, module, point = net
    for n in (1, 5):
        p = {**point, "X": point["X"][:n], "y": point["y"][:n]}
        assert sg.check_grad(f, **p).ok
        assert sg.check_local(g, **p).ok
    t = sg.graph("tanh(X @ W)", shapes={"X": ("N", 2), "W": (2, "H")}).backprop(X=np.ones((3, 2)),
                                                                             W=np.ones((2, 4)))
    assert t.jacobian("q1", "W").shape == (3, 4, 2, 4)


def test_a_written_module_takes_arrays_for_array_inputs(net):
    g, f, module, point = net
    args = [point[n].tolist() if n == "b2" else point[n] for n in g.inputs]
    with pytest.raises(ValueError, match=r"value of 'b2' must be a NumPy array of shape \(C,\), not list"):
        module.value_and_grad(*args)
    assert f.value_and_grad(**{**point, "b2": point["b2"].tolist()})[0] == f.value_and_grad(**point)[0]


# -- a written module for scalars: floats or a batch of points, real numbers only ---------------


@pytest.mark.parametrize("text", ["(x + y) * z", "max(z, w)", "sigmoid(x)"])
def test_a_scalar_module_refuses_values_that_are_not_real_numbers_in_every_path(text, tmp_path):
    g = sg.graph(text)
    f, module = g.compile(), load(sg.codegen(g), tmp_path)
    good = {n: 0.5 + i for i, n in enumerate(g.inputs)}
    wrong = [(True, "bool"), (1j, "complex"), ("2", "str"), (None, "NoneType"), ([1.0, 2.0], "list"),
             (np.array([True, False]), "bool data"), (np.ones(2, complex), "complex128 data"),
             (np.array(["a"]), "<U1 data"), (np.array([1.0, None]), "object data"), (np.bool_(True), "bool")]
    for name in g.inputs:
        for value, words in wrong:
            point = {**good, name: value}
            args = [point[n] for n in g.inputs]
            for run in (module.value_and_grad, module.forward):
                with pytest.raises(ValueError, match=rf"value of '{name}' must be .*real numbers, not "
                                                     rf"{re.escape(words)}"):
                    run(*args)
            for run in (f.value_and_grad, f.forward, f, lambda **p: g.backprop(**p).value):
                if isinstance(value, list):
                    continue  # symgrad's own entry points convert lists of numbers
                with pytest.raises(sg.SymgradError, match=f"'{name}'"):
                    run(**point)
    if len(g.inputs) > 1:
        first, second = g.inputs[:2]
        args = [np.ones(2) if n == first else np.ones(3) if n == second else 1.0 for n in g.inputs]
        with pytest.raises(ValueError, match=rf"input shapes do not broadcast together: {first} \(2,\), "
                                             rf"{second} \(3,\)"):
            module.value_and_grad(*args)
    # what the module accepts it computes as compile() does: floats, ints, NumPy scalars, batches
    for value in (2.0, 2, np.float64(2.0), np.int64(2), np.float32(2.0), np.array([0.5, 2.0]),
                  np.array([1, 2])):
        point = {**good, g.inputs[0]: value}
        got, grads = module.value_and_grad(*(point[n] for n in g.inputs))
        want, want_grads = f.value_and_grad(**point)
        np.testing.assert_allclose(got, want, rtol=1e-6)
        for n in g.inputs:
            np.testing.assert_allclose(grads[n], want_grads[n], rtol=1e-6)
