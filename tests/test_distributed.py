"""A real Dask cluster (distributed.LocalCluster, 2 worker processes) runs simulate, run and kernels_to_disk with
results bit-identical to the serial run, closure activations included (issue 13, part 2)."""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip(
    "distributed", reason="the [distributed] extra (dask, distributed) is absent: pip install -e '.[distributed]'"
)

import multiprocessing  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402

from meanfield import Activation, Network, kernels_to_disk, leaky_relu  # noqa: E402
from meanfield.finite import run, simulate  # noqa: E402
from meanfield.finite.streams import generator  # noqa: E402

X = np.array([[1.0, 0.0, 0.5], [0.6, 0.8, -0.2], [-0.3, 0.4, 1.0], [0.2, -1.0, 0.1]])


@pytest.fixture(scope="module")
def executor():
    """One cluster for the module (its start-up dominates): 2 worker processes, one thread each."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=50
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        yield client.get_executor()


def _scaled_tanh(a):
    """A user activation built from closures: the standard pickle refuses it, cloudpickle ships it."""
    return Activation(lambda u: np.tanh(a * u), lambda u: a * (1.0 - np.tanh(a * u) ** 2), f"tanh{a}")


@pytest.mark.parametrize("activation", ["relu", leaky_relu(0.2), _scaled_tanh(0.9)], ids=["relu", "leaky", "closure"])
def test_simulate_on_dask_is_bit_identical(executor, activation):
    net = Network(3, activation, 1.8, 0.1, width=24)
    q = ("nngp", "backward", "ntk", "outputs")
    serial = simulate(X, net, n_nets=12, seed=7, quantities=q, batch_size=5)
    dask = simulate(X, net, n_nets=12, seed=7, quantities=q, batch_size=3, executor=executor)
    for name in q:
        assert np.array_equal(serial[name], dask[name]), name


def test_run_ships_a_closure_task(executor):
    shift = 2.5

    def task(batch, d):
        return {"x": np.array([generator(s).standard_normal(d).sum() + shift for s in batch.seeds])}

    serial = run(task, 9, seed=3, args=(4,), batch_size=9)
    dask = run(task, 9, seed=3, args=(4,), batch_size=2, executor=executor)
    assert np.array_equal(serial["x"], dask["x"])


@pytest.mark.slow  # the workers' first kernels call loads the propagation code (~8 s under load); threads run fast
def test_kernels_to_disk_on_dask(executor, tmp_path):
    Xk = np.random.default_rng(1).standard_normal((70, 4))
    net = Network(3, leaky_relu(0.3), 1.5, 0.1)  # a closure activation, closed form (fast)
    serial = kernels_to_disk(Xk, net, tmp_path / "S", block=32, progress=False)
    dask = kernels_to_disk(Xk, net, tmp_path / "D", block=32, executor=executor, progress=False)
    assert np.array_equal(serial.ntk, dask.ntk) and np.array_equal(serial.nngp, dask.nngp)


@pytest.mark.slow  # process start-up
def test_simulate_in_a_process_pool_ships_closures():
    """The standard pickle of a process pool refuses closures; the cloudpickled task carries them."""
    net = Network(3, _scaled_tanh(1.1), 1.6, 0.05, width=16)
    serial = simulate(X, net, n_nets=6, seed=2, quantities=("ntk",), batch_size=6)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        pooled = simulate(X, net, n_nets=6, seed=2, quantities=("ntk",), batch_size=2, executor=ex)
    assert np.array_equal(serial["ntk"], pooled["ntk"])
