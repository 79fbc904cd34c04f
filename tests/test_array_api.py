"""The compiled-code corpus as array-API code: array_api_strict, PyTorch (CPU), JAX (CPU, jitted).

The corpus is the other tests' cases: every op of the table on its declared
shapes (on scalars and arrays for elementwise ops), every array op with every
parameter choice, every gate fused, and the lectures' nets.  Each runs as
array-API code on a library and must give the NumPy code's value and
gradients (value_and_grad, and forward then backward) to 1e-12.  A summary
test per library asserts 0 disagreements and names the count of cases.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import InputError, UnsupportedError

from .test_compile_tensors import CASES as ARRAY_CASES
from .test_compile_tensors import case_graph
from .test_standalone_modules import gate_cases, op_cases
from .test_tensors_nets import cs229_net, cs229_shapes, cs229_values, two_layer, two_layer_case

strict = pytest.importorskip("array_api_strict", reason="array-api-strict is not installed (symgrad[xp])")
pytest.importorskip("array_api_compat", reason="array-api-compat is not installed (symgrad[xp])")


def two_layer_graph(named: bool):
    shapes, values = two_layer_case()
    if named:
        shapes = {**shapes, "X": ("N", 4), "y": ("N",)}
    return sg.graph(two_layer, shapes=shapes, dtypes={"y": int}), values


@functools.cache
def corpus() -> tuple[tuple[str, sg.Graph, dict], ...]:
    cases = [(name, g, point) for name, g, point in op_cases()]
    cases += [(name, g, point) for name, g, point, _ in gate_cases()]
    for name, shapes, params in ARRAY_CASES:
        g, point = case_graph(name, shapes, params)
        cases.append((f"{name}{shapes}{params}".replace(" ", ""), g, point))
    for named in (False, True):
        g, values = two_layer_graph(named)
        cases.append((f"two_layer{'_N' if named else ''}", g, values))
    shapes = cs229_shapes(3, 4)
    cases.append(("cs229", sg.graph(cs229_net, shapes=shapes), cs229_values(3, 4, 0)))
    rng = np.random.default_rng(4)
    xy = {"x": rng.normal(size=(3, 4)), "y": rng.normal(size=(3, 4))}
    cases += [  # numbers that take a function to compute (a library's sqrt may refuse a Python number)
        ("computed_constants", sg.graph("sum(x*sqrt(2) + log(1 + exp(1)) + tanh(0.5)*y + pi*x - y/sqrt(pi))",
                                        shapes={"x": (3, 4), "y": (3, 4)}), xy),
        ("gelu_tanh_form", sg.graph("sum(x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715*x**3))) * y)",
                                    shapes={"x": (3, 4), "y": (3, 4)}), xy),
        ("batch_the_output_does_not_read", sg.graph("x*3 + 0*y"), {"x": 2.0, "y": np.ones(4)}),
        ("nodes_that_are_numbers", sg.graph("abs(abs(c - c)) + min(cos(a - a), relu(b - b)) + a*b"),
         {n: rng.normal(size=4) for n in "abc"}),  # c - c is 0.0, which abs' derivative, sign, reads
        ("amax_of_a_vector_along_its_axis",  # its vjp expands the number dout = 1
         sg.graph("amax(x, axis=-1) + amin(x, axis=0)", shapes={"x": (3,)}),
         {"x": np.array([1.0, 3.0, 2.0])}),
    ]
    return tuple(cases)


@functools.cache
def reference(i: int):
    """The NumPy code's value, gradients and backward gradients for case ``i``."""
    _, g, point = corpus()[i]
    f = g.compile()
    value, grads = f.value_and_grad(**point)
    out, cache = f.forward(**point)
    back = f.backward(np.ones(np.shape(out)) if np.ndim(out) else 1.0, cache)
    return value, grads, back


def disagreements(i: int, value, grads, back) -> list[str]:
    name = corpus()[i][0]
    want_value, want_grads, want_back = reference(i)
    found = []
    pairs = [("value", value, want_value)]
    pairs += [(f"d{n}", grads[n], want_grads[n]) for n in want_grads if grads]
    pairs += [(f"backward d{n}", back[n], want_back[n]) for n in want_back]
    for what, got, want in pairs:
        got = np.asarray(got, dtype=float)
        if got.shape != np.shape(want) or not np.allclose(got, want, rtol=1e-12, atol=1e-12):
            found.append(f"{name}: {what} is {got}, NumPy gives {want}")
    return found


def run(i: int, xp, to_numpy) -> list[str]:
    _, g, point = corpus()[i]
    f = g.compile(xp=xp)
    value, grads = f.value_and_grad(**point)
    out, cache = f.forward(**point)
    dout = xp.ones_like(out)
    back = f.backward(dout, cache)
    return disagreements(i, to_numpy(value), {k: to_numpy(v) for k, v in grads.items()},
                         {k: to_numpy(v) for k, v in back.items()})


CASE_IDS = [name for name, _, _ in corpus()]


# -- array_api_strict -------------------------------------------------------------

def strict_numpy(a):
    return np.asarray(strict.asarray(a, dtype=strict.float64)) if not isinstance(a, float) else a


@pytest.mark.parametrize("i", range(len(CASE_IDS)), ids=CASE_IDS)
def test_case_on_array_api_strict(i):
    assert run(i, strict, strict_numpy) == []


def test_array_api_strict_summary(capsys):
    found = [d for i in range(len(CASE_IDS)) for d in run(i, strict, strict_numpy)]
    with capsys.disabled():
        print(f"\narray_api_strict: {len(found)} disagreements over {len(CASE_IDS)} cases")
    assert len(CASE_IDS) > 150
    assert found == []


# -- PyTorch (CPU) --------------------------------------------------------------------

@pytest.fixture
def torch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(before)


def test_corpus_on_pytorch(torch, capsys):
    def to_numpy(a):
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)

    found = [d for i in range(len(CASE_IDS)) for d in run(i, torch, to_numpy)]
    with capsys.disabled():
        print(f"\ntorch: {len(found)} disagreements over {len(CASE_IDS)} cases")
    assert found == []


def test_corpus_on_pytorch_with_its_float32_default():
    """float64 inputs under PyTorch's own default, float32: the arrays the code makes from numbers
    (xp.full, xp.zeros, xp.eye, a folded dout) take the inputs' float type, so nothing rounds."""
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    assert torch.get_default_dtype() == torch.float32

    def to_numpy(a):
        assert not isinstance(a, torch.Tensor) or a.dtype == torch.float64, a.dtype
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)

    assert [d for i in range(len(CASE_IDS)) for d in run(i, torch, to_numpy)] == []


def test_torch_tensors_in_and_out(torch):
    g, values = two_layer_graph(named=True)
    f = g.compile(xp=torch)
    tensors = {k: torch.asarray(v) for k, v in values.items()}
    value, grads = f.value_and_grad(**tensors)
    assert isinstance(value, torch.Tensor) and all(isinstance(v, torch.Tensor) for v in grads.values())
    want, want_grads = g.compile().value_and_grad(**values)
    assert float(value) == pytest.approx(want, rel=1e-12)


# -- JAX (CPU), jitted -------------------------------------------------------------

@pytest.fixture
def jax():
    jax = pytest.importorskip("jax", reason="JAX is not installed")
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield jax
    jax.config.update("jax_enable_x64", before)


def test_corpus_on_jax_jitted_and_against_jax_grad(jax, capsys):
    import jax.numpy as jnp

    found = []
    # jit compiles each case anew, which is slow: the parameter choices of the array ops run
    # eagerly (each op on its declared shapes is jitted)
    chosen = [i for i, (name, _, _) in enumerate(corpus()) if "[" not in name]
    for i in range(len(CASE_IDS)):
        name, g, point = corpus()[i]
        f = g.compile(xp=jnp)
        args = f.arguments(point)
        value, grads = (jax.jit(f.module.value_and_grad) if i in chosen else f.module.value_and_grad)(*args)
        out, cache = f.module.forward(*args)
        back = f.module.backward(jnp.ones_like(out), cache)
        found += disagreements(i, np.asarray(value), {k: np.asarray(v) for k, v in grads.items()},
                               {k: np.asarray(v) for k, v in back.items()})
        # the generated gradients are jax.grad's gradients of the same generated function
        positions = [k for k, n in enumerate(g.inputs) if n in f.wrt]
        total = jax.grad(lambda *a, m=f.module: jnp.sum(m.forward(*a)[0]), argnums=positions)(*args)
        if name.startswith("two_layer"):  # forward and backward jitted apart, the cache between them
            out, cache = jax.jit(f.module.forward)(*args)
            back = jax.jit(f.module.backward)(jnp.ones_like(out), cache)
            found += disagreements(i, np.asarray(out), {}, {k: np.asarray(v) for k, v in back.items()})
        for k, t in zip(positions, total):
            n = g.inputs[k]
            if not np.allclose(np.asarray(grads[n]), np.asarray(t), rtol=1e-10, atol=1e-12):
                found.append(f"{name}: d{n} is {np.asarray(grads[n])}, jax.grad gives {np.asarray(t)}")
    with capsys.disabled():
        print(f"\njax: {len(found)} disagreements over {len(CASE_IDS)} cases ({len(chosen)} jitted)")
    assert len(chosen) > 50
    assert found == []


# -- the text and the errors -------------------------------------------------------

def test_numpy_code_is_unchanged_by_the_array_api_printer():
    g, _ = two_layer_graph(named=True)
    text = g.compile().source
    assert "xp." not in text and "np.maximum(q2, 0)" in text and "q5[np.arange(y.shape[0]), y]" in text
    assert sg.codegen(g) == text


def test_array_api_module_reads_named_dimensions_and_takes_xp():
    g, values = two_layer_graph(named=True)
    text = sg.codegen(g, xp=True)
    assert "import numpy" not in text and "np." not in text
    assert "def value_and_grad(X, W1, b1, W2, b2, y, reg, xp=None):" in text
    assert "    N = X.shape[0]" in text
    assert "xp.take(xp.reshape(q5, (-1,)), xp.arange(y.shape[0])*q5.shape[1] + y)" in text


def test_written_module_runs_with_its_inputs_library(tmp_path):
    g, values = two_layer_graph(named=True)
    sg.codegen(g, tmp_path / "net_xp.py", xp=strict)
    namespace: dict = {}
    exec(compile((tmp_path / "net_xp.py").read_text(), "net_xp.py", "exec"), namespace)
    args = [strict.asarray(values[n]) for n in g.inputs]
    value, grads = namespace["value_and_grad"](*args)  # xp from array_api_compat
    want, want_grads = g.compile().value_and_grad(**values)
    assert float(value) == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(np.asarray(grads["W1"]), want_grads["W1"], rtol=1e-12)


def test_mixed_array_libraries_are_an_input_error_naming_the_input():
    g, values = two_layer_graph(named=True)
    f = g.compile(xp=strict)
    mixed = {**{k: strict.asarray(v) for k, v in values.items()}, "W2": values["W2"]}
    with pytest.raises(InputError, match="'W2' is a NumPy array"):
        f.value_and_grad(**mixed)
    f_np = g.compile(xp=np)
    with pytest.raises(InputError, match="value of 'X' is a array_api_strict array, but this function "
                                         "computes with numpy"):
        f_np.value_and_grad(**{**values, "X": strict.asarray(values["X"])})


@pytest.mark.parametrize("named", [False, True])
def test_labels_of_the_arrays_own_library_are_checked_for_range(named):
    """Native labels out of range are an InputError, as NumPy ones are (JAX would clamp them)."""
    g, values = two_layer_graph(named=named)
    f = g.compile(xp=strict)
    native = {k: strict.asarray(v) for k, v in values.items()}
    classes = values["W2"].shape[1]
    for wrong, bad in ((classes, classes), (-1, -1)):
        y = values["y"].copy()
        y[len(y) // 2] = wrong
        with pytest.raises(InputError, match=f"labels 'y' must lie in 0 … {classes - 1} .*got {bad}"):
            f.value_and_grad(**{**native, "y": strict.asarray(y)})
    value, _ = f.value_and_grad(**native)
    assert float(value) == pytest.approx(g.compile().value_and_grad(**values)[0], rel=1e-12)


def test_a_library_lacking_a_needed_function_is_named():
    class Partial:
        """array_api_strict without logaddexp."""

        __array_api_version__ = "2023.12"

        def __getattr__(self, name):
            if name == "logaddexp":
                raise AttributeError(name)
            return getattr(strict, name)

    g = sg.graph("sum(softplus(x))", shapes={"x": (3,)})
    with pytest.raises(UnsupportedError, match="lacks xp.logaddexp"):
        g.compile(xp=Partial())
    with pytest.raises(UnsupportedError, match="not an array library"):
        g.compile(xp=object())


def test_an_op_spelled_outside_the_standard_is_named_and_declares_its_spelling():
    import sympy

    g_text, shapes = "sum(arctan_(x))", {"x": (3,)}
    point = {"x": np.array([0.5, -1.0, 2.0])}
    with sg.define_op("arctan_", sympy.atan, numpy="np.arctan({0})"):
        g = sg.graph(g_text, shapes=shapes)
        with pytest.raises(UnsupportedError, match="xp.arctan is not in the Python array API standard"):
            g.compile(xp=strict)
    with sg.define_op("arctan_", sympy.atan, numpy="np.arctan({0})", xp="xp.atan({0})"):
        g = sg.graph(g_text, shapes=shapes)
        value, grads = g.compile(xp=strict).value_and_grad(**point)
        want, want_grads = g.compile().value_and_grad(**point)
        assert float(value) == pytest.approx(want, rel=1e-14)
        np.testing.assert_allclose(np.asarray(grads["x"]), 1 / (1 + point["x"] ** 2), rtol=1e-14)
