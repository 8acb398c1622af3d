"""Resource requests refused before they start (issue 16): one memory check (meanfield._checks.check_memory) at
every entry point, a clear ValueError (what it needs, what is available, what to change) instead of a numpy
allocation error after minutes, and no O(n_nets) Python structures in the Monte Carlo runner.

No test allocates much: the available memory is monkeypatched, and every refusal comes before the allocation.
"""

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import meanfield as mf
import meanfield._checks as checks
from meanfield.cli import main
from meanfield.dispersion import sample_ntk_diagonal, sample_ntk_pair
from meanfield.equilibrium import information_loss, peak_layer
from meanfield.finite.montecarlo import run, simulate
from meanfield.nfa import cnfc_early_infinite

GB = 10**9


@pytest.fixture
def limit(monkeypatch):
    """Set the memory the process may still allocate (bytes)."""

    def set_limit(nbytes):
        monkeypatch.setattr(checks, "available_memory", lambda: (int(nbytes), "test limit"))

    return set_limit


def refused(exc_info, *words):
    msg = str(exc_info.value)
    assert "needs about" in msg and "is available (test limit)" in msg, msg
    for w in words:
        assert w in msg, msg
    return msg


# ---------------------------------------------------------------------------------------------------- the helper
def test_check_memory_refuses_with_need_availability_and_hint(limit):
    limit(4 * GB)
    assert checks.check_memory(3 * GB, "x", "y") == 3 * GB
    with pytest.raises(ValueError) as e:
        checks.check_memory(16 * GB, "kernels of 20000 x 20000 input pairs", "use fewer inputs")
    assert str(e.value) == (
        "kernels of 20000 x 20000 input pairs needs about 16 GB of memory, but only 4 GB is available "
        "(test limit); use fewer inputs"
    )
    with pytest.raises(ValueError, match="needs about 1e"):
        checks.check_memory(1e30, "huge", "less")  # beyond int64: still a clear refusal


def test_small_requests_are_not_checked(limit):
    limit(0)  # nothing available: small requests still pass without reading /proc
    assert checks.check_memory(checks.UNCHECKED_BYTES - 1, "x", "y") == checks.UNCHECKED_BYTES - 1
    k = mf.kernels(np.eye(3), mf.Network(3))
    assert np.all(np.isfinite(k.ntk))


def test_available_memory_reads_the_system():
    nbytes, source = checks.available_memory()
    assert isinstance(nbytes, int) and 0 < nbytes < 2**63 and source


def test_available_memory_sees_ulimit_v():
    """Under an address-space limit of 4 GB (``ulimit -v``) the figure is at most the limit, and kernels at
    n = 20000 (16 GB) are refused up front (the issue's case), in a subprocess that sets the limit itself."""
    code = textwrap.dedent(
        """
        import resource, numpy as np
        resource.setrlimit(resource.RLIMIT_AS, (4 * 10**9, resource.RLIM_INFINITY))
        import meanfield as mf
        from meanfield._checks import available_memory
        nbytes, source = available_memory()
        assert nbytes <= 4 * 10**9 and "ulimit -v" in source, (nbytes, source)
        X = np.random.default_rng(0).normal(size=(20000, 3))
        try:
            mf.kernels(X, mf.Network(3))
        except ValueError as exc:
            print(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "kernels of 20000 x 20000 input pairs at depth 3 needs about 16 GB" in out.stdout
    assert "ulimit -v" in out.stdout and "use fewer inputs" in out.stdout


# ------------------------------------------------------------------------------------------------ entry points
def test_kernels_n60000_refused(limit):
    limit(24 * GB)
    X = np.random.default_rng(0).normal(size=(60000, 3))
    with pytest.raises(ValueError) as e:
        mf.kernels(X, mf.Network(3))
    refused(e, "60000 x 60000", "144 GB", "kernels(X[i:j], net, X2=X)")


def test_kernels_n20000_under_4gb_refused_also_with_layers(limit):
    limit(4 * GB)
    X = np.random.default_rng(0).normal(size=(20000, 3))
    with pytest.raises(ValueError) as e:
        mf.kernels(X, mf.Network(3))
    refused(e, "16 GB")
    with pytest.raises(ValueError) as e:
        mf.kernels(X, mf.Network(3), layers=True)
    refused(e, "with 3 layers", "44.8 GB", "fewer layers")


def test_kernels_cross_block_fits_where_the_full_kernel_does_not(limit):
    """The advice works: a block of rows against all columns needs a fraction of the memory."""
    from meanfield.propagation.dataset import kernels_nbytes

    full, block = kernels_nbytes(20000, 20000, 3, 3), kernels_nbytes(200, 20000, 3, 3)
    assert full > 16e9 and block < full / 50


def test_mlp_sample_many_networks_refused(limit):
    limit(8 * GB)
    t = time.perf_counter()
    with pytest.raises(ValueError) as e:
        mf.MLP.sample(mf.Network(3, width=10), 4, n_nets=10**9)
    refused(e, "1000000000 network(s)", "n_nets")
    with pytest.raises(ValueError) as e:
        mf.MLP.sample(mf.Network(3, width=10**9), 4)
    refused(e, "smaller width")
    assert time.perf_counter() - t < 5


def test_sample_ntk_diagonal_and_pair_refused_at_once(limit):
    limit(8 * GB)
    net = mf.Network(3, "relu", 2.0, 0.0, "standard", width=20)
    t = time.perf_counter()
    for method in ("projection", "law", "matmul"):
        with pytest.raises(ValueError) as e:
            sample_ntk_diagonal(net, 20, 10**12, method=method)
        refused(e, "1000000000000 networks", f"({method} sampler)")
    with pytest.raises(ValueError) as e:
        sample_ntk_pair(net, 20, 0.5, 10**12)
    refused(e, "1000000000000 networks")
    assert time.perf_counter() - t < 5  # no batch list of 10^12 entries is built


def test_sample_ntk_diagonal_deep_projection_buffer_refused(limit):
    """The projection kernel holds an (L, max width) buffer per batch: counted even for few networks."""
    limit(1 * GB)
    net = mf.Network(20000, "relu", 2.0, 0.0, "standard", width=20000)
    with pytest.raises(ValueError) as e:
        sample_ntk_diagonal(net, 1, 3)
    refused(e, "depth 20000")


def test_simulate_many_nets_or_wide_refused(limit):
    limit(8 * GB)
    X = np.eye(3)
    with pytest.raises(ValueError) as e:
        simulate(X, mf.Network(3, width=8), 10**12)
    refused(e, "1000000000000 networks", "n_nets")
    with pytest.raises(ValueError) as e:
        simulate(X, mf.Network(3, width=10**9), 10)
    refused(e, "widths up to 1000000000", "smaller width")


def _ones(batch):
    return {"x": np.ones(len(batch))}


@pytest.mark.parametrize("executor", [None, "threads"])
def test_run_builds_nothing_of_size_n_nets(limit, executor):
    """10^12 networks, one per batch: refused after the first batch (results of 8 TB), within a second, with or
    without an executor (batches are made lazily, a few in flight)."""
    from concurrent.futures import ThreadPoolExecutor

    limit(8 * GB)
    t = time.perf_counter()
    with pytest.raises(ValueError) as e:
        if executor is None:
            run(_ones, 10**12, seed=0, batch_size=1)
        else:
            with ThreadPoolExecutor(2) as ex:
                run(_ones, 10**12, seed=0, batch_size=1, executor=ex)
    refused(e, "the results of 1000000000000 networks")
    assert time.perf_counter() - t < 5


def test_run_with_executor_still_bit_identical():
    from concurrent.futures import ThreadPoolExecutor

    from meanfield.finite.streams import generator

    def task(batch):
        return {"z": np.array([generator(s).standard_normal() for s in batch.seeds])}

    a = run(task, 100, seed=5, batch_size=3)
    with ThreadPoolExecutor(2) as ex:
        b = run(task, 100, seed=5, batch_size=1, executor=ex)  # 100 batches > the in-flight window
    np.testing.assert_array_equal(a["z"], b["z"])


def test_peak_layer_and_information_loss_deep_refused(limit):
    limit(1 * GB)
    with pytest.raises(ValueError) as e:
        peak_layer(mf.Network(10), [2, 10**7])
    refused(e, "depth 10000000", "fewer depths")
    with pytest.raises(ValueError) as e:
        information_loss(mf.Network(10**7))
    refused(e, "depth 10000000")


def test_nfa_early_many_samples_refused(limit):
    limit(24 * GB)
    X = np.random.default_rng(0).normal(size=(100000, 8))
    with pytest.raises(ValueError) as e:
        cnfc_early_infinite(mf.Network(3), X, X[:, 0], [1, 2, 3])
    refused(e, "n = 100000", "fewer inputs")


# --------------------------------------------------------------------------------------------- the command line
@pytest.mark.parametrize(
    "argv, words",
    [
        (["dispersion", "--sigma-w2", "2", "--width", "100", "--depth", str(10**9)], ["depth-1000000000"]),
        (["dispersion", "--sigma-w2", "2", "--width", "100", "--depth", "5", "--simulate", str(10**12)],
         ["1000000000000 networks"]),
        (["simulate", "--random", "3,4", "--depth", "3", "--width", "8", "--nets", str(10**12)],
         ["1000000000000 networks"]),
        (["simulate", "--random", "3,4", "--depth", "3", "--width", str(10**9), "--nets", "10"],
         ["widths up to 1000000000"]),
        (["simulate", "--random", f"{10**9},1000", "--depth", "3", "--width", "8", "--nets", "10"], ["--random"]),
        (["nfa-early", "--samples", "100000"], ["n = 100000"]),
        (["peak-layer", "--depth", "2:10000000"], ["a table of 9999999 depths", "a:b:step"]),
        (["kernel", "--input", "{X}", "--depth", "3"], ["60000 x 60000"]),
    ],
)  # fmt: skip
def test_cli_resource_requests_refused_in_one_line(limit, capsys, tmp_path, argv, words):
    limit(4 * GB)
    if "{X}" in argv:
        np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(size=(60000, 3)))
        argv = [str(tmp_path / "X.npy") if a == "{X}" else a for a in argv]
    t = time.perf_counter()
    code = main(argv)
    out = capsys.readouterr()
    assert time.perf_counter() - t < 20
    assert code == 2 and out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"meanfield {argv[0]}: error: "), out.err
    assert "needs about" in out.err and "available (test limit)" in out.err
    for w in words:
        assert w in out.err


def test_cli_peak_layer_range_is_not_a_python_list(limit):
    """The depths of a range are counted (and refused) before anything of their size exists."""
    from meanfield.cli.peak_layer import parse_depths

    limit(4 * GB)
    np.testing.assert_array_equal(parse_depths(["10", "2:6:2", "4"]), [2, 4, 6, 10])
    with pytest.raises(ValueError, match="a table of 10000009 depths"):
        parse_depths(["2:10", "1:10000000"])
