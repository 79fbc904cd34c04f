"""Data-parallel gradients on Dask: chunked value_and_grad equals the NumPy code's on the whole batch."""

from __future__ import annotations

import os

import numpy as np
import pytest

import symgrad as sg
from symgrad.errors import InputError, ShapeError, UnsupportedError

from .test_tensors_nets import two_layer, two_layer_case

da = pytest.importorskip("dask.array", reason="dask[array] is not installed (symgrad[dask])")


def net(N):
    shapes, values = two_layer_case(N=N, seed=N)
    shapes = {**shapes, "X": ("N", 4), "y": ("N",)}
    return sg.graph(two_layer, shapes=shapes, dtypes={"y": int}), values


SUM_TEXT = "sum(relu(X @ W) * t) * c"  # a sum over N, scaled by a value that does not depend on it


def sum_loss(N):
    rng = np.random.default_rng(N)
    g = sg.graph(SUM_TEXT, shapes={"X": ("N", 3), "W": (3, 2), "t": ("N", 2), "c": ()})
    return g, {"X": rng.normal(size=(N, 3)), "W": rng.normal(size=(3, 2)), "t": rng.normal(size=(N, 2)),
               "c": 0.7}


def chunked(g, values, chunks):
    """The batched inputs as Dask arrays with ``chunks`` along N (axis 0)."""
    return {n: da.from_array(v, chunks=(chunks,) + tuple(-1 for _ in np.shape(v)[1:]))
            if g.shape(n) and str(g.shape(n)[0]) == "N" else v for n, v in values.items()}


def assert_same(f, g, values, chunks):
    want, want_grads = g.compile().value_and_grad(**values)
    value, grads = f.value_and_grad(**chunked(g, values, chunks))
    assert value == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert set(grads) == set(want_grads)
    for n in want_grads:
        np.testing.assert_allclose(grads[n], want_grads[n], rtol=1e-12, atol=1e-12, err_msg=n)


@pytest.mark.parametrize("N, chunks", [(10, (3, 3, 4)), (10, (10,)), (1, (1,)), (7, (1, 2, 1, 3)),
                                       (9, (5, 4))], ids=["uneven", "single", "one", "many", "two"])
@pytest.mark.parametrize("loss", [net, sum_loss], ids=["mean", "sum"])
def test_chunked_gradients_equal_the_whole_batch(loss, N, chunks):
    g, values = loss(N)
    f = g.compile(batch="N")
    assert f.kind == ("mean" if loss is net else "sum")
    assert_same(f, g, values, chunks)


def test_gradients_of_the_parameters_only():
    g, values = net(8)
    f = g.compile(wrt=["W1", "b1", "W2", "b2"], batch="N")
    value, grads = f.value_and_grad(**chunked(g, values, 3))
    assert set(grads) == {"W1", "b1", "W2", "b2"}
    want = g.compile().value_and_grad(**values)[1]
    np.testing.assert_allclose(grads["W1"], want["W1"], rtol=1e-12, atol=1e-12)


def test_on_a_local_cluster_of_two_workers():
    distributed = pytest.importorskip("distributed", reason="distributed is not installed (symgrad[dask])")
    g, values = net(12)
    f = g.compile(batch="N")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert_same(f, g, values, (4, 4, 4))


def test_a_worker_that_dies_mid_computation_is_retried_and_the_result_is_unchanged(tmp_path):
    distributed = pytest.importorskip("distributed", reason="distributed is not installed (symgrad[dask])")
    g, values = net(12)
    f = g.compile(batch="N")
    died = tmp_path / "died"

    class DieOnce(distributed.WorkerPlugin):
        """The first worker to start a chunk's gradient ends its process there and then."""

        def __init__(self, flag: str):
            self.flag = flag

        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and "_chunk" in str(key):
                try:  # the first to create the flag dies; creating it is atomic
                    os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
                except FileExistsError:
                    return
                os._exit(1)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        register = getattr(client, "register_plugin", None) or client.register_worker_plugin
        register(DieOnce(str(died)))
        assert_same(f, g, values, (4, 4, 4))
        assert died.exists()  # a worker did die while computing a chunk
        client.wait_for_workers(2, timeout=60)  # and the nanny started it again


def test_chunked_along_a_dimension_that_is_not_the_batch():
    g, values = net(8)
    f = g.compile(batch="N")
    bad = {**chunked(g, values, 4), "X": da.from_array(values["X"], chunks=(4, 2))}
    with pytest.raises(ShapeError, match=r"value of 'X' is chunked along axis 1 \(2 \+ 2\)"):
        f.value_and_grad(**bad)
    other = {**chunked(g, values, 4), "y": da.from_array(values["y"], chunks=(3,))}
    with pytest.raises(ShapeError, match="value of 'y' has chunks"):
        f.value_and_grad(**other)


def test_mixed_array_libraries_in_one_call():
    strict = pytest.importorskip("array_api_strict")
    g, values = net(8)
    f = g.compile(batch="N")
    with pytest.raises(InputError, match="value of 'W1' is a array_api_strict"):
        f.value_and_grad(**{**chunked(g, values, 4), "W1": strict.asarray(values["W1"])})


def test_bad_labels_in_a_chunk_are_an_input_error():
    g, values = net(8)
    values["y"] = values["y"].copy()
    values["y"][6] = 7
    with pytest.raises(InputError, match="labels 'y' must lie in 0"):
        g.compile(batch="N").value_and_grad(**chunked(g, values, 4))


@pytest.mark.parametrize("text, shapes, message", [
    ("sum(X * w) + c", {"X": ("N", 2), "w": (2,), "c": ()}, "adds a value that does not depend on the batch"),
    ("exp(mean(X * w))", {"X": ("N", 2), "w": (2,)}, "is not linear"),
    ("sum(X.T @ X)", {"X": ("N", 2)}, "only a sum or a mean"),
    ("sum(X) + mean(X)", {"X": ("N", 2)}, "mixes sums and means"),
    ("mean((X - mean(X, axis=0))**2)", {"X": ("N", 2)}, "spreads a value reduced over N"),
    ("sum(w * w)", {"w": (2,)}, "no input has the dimension N"),
])
def test_losses_that_do_not_split_into_chunks(text, shapes, message):
    with pytest.raises(UnsupportedError, match=message):
        sg.graph(text, shapes=shapes).compile(batch="N")


def test_an_xp_lacking_a_needed_function_with_batch():
    with pytest.raises(UnsupportedError, match="takes no xp"):
        net(4)[0].compile(batch="N", xp=np)
