"""kernels_to_disk: tile-by-tile kernels on disk equal the in-memory kernels bit for bit, resume after an
interruption, run on any executor, and the CLI uses them (issue 13, part 3)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest

from meanfield import Activation, Network, kernels, kernels_to_disk
from meanfield.cli import main
from meanfield.propagation import ondisk

RNG = np.random.default_rng(13)
X = RNG.standard_normal((150, 5))
X2 = RNG.standard_normal((70, 5)) * 1.5


def _same(disk, mem):
    names = ("nngp", "ntk") + (("nngp_layers", "backward", "ntk_layers") if mem.layers is not None else ())
    assert disk.layers == mem.layers
    for name in names:
        assert np.array_equal(getattr(disk, name), getattr(mem, name)), name


@pytest.mark.parametrize(
    "act, sym, layers",
    [("relu", True, False), ("relu", False, [2, 4]), ("erf", True, True), ("leaky_relu:0.2", False, False)],
)
def test_bit_identical_to_in_memory(tmp_path, act, sym, layers):
    net = Network(4, act, 1.7, 0.2)
    x2 = None if sym else X2
    k = kernels_to_disk(X, net, tmp_path / "K", X2=x2, block=48, layers=layers, progress=False)  # ragged edge tiles
    _same(k, kernels(X, net, X2=x2, layers=layers))
    _same(k.load(), kernels(X, net, X2=x2, layers=layers))


def test_hermite_path_agrees_to_rounding(tmp_path):
    """tanh: each tile chooses its own Mehler order, so agreement is to the general path's accuracy, not bitwise."""
    net = Network(3, "tanh", 1.5, 0.1)
    k = kernels_to_disk(X, net, tmp_path / "K", block=32, progress=False)
    ref = kernels(X, net)
    np.testing.assert_allclose(k.ntk, ref.ntk, rtol=1e-9, atol=0)  # the general path's documented accuracy
    np.testing.assert_allclose(k.nngp, ref.nngp, rtol=1e-9, atol=0)
    assert np.array_equal(k.ntk, k.ntk.T)  # the lower triangle is the transpose, as in memory


def test_resume_after_interruption(tmp_path, monkeypatch):
    net = Network(3, "relu")
    original = ondisk._tile_task
    calls = []

    def interrupted(*args):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args[0].shape[0])
        return original(*args)

    monkeypatch.setattr(ondisk, "_tile_task", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kernels_to_disk(X, net, tmp_path / "K", block=32, progress=False)
    with open(tmp_path / "K" / "done.txt") as f:
        assert len(f.readlines()) == 3
    with open(tmp_path / "K" / "done.txt", "a") as f:
        f.write("64 9")  # a line cut by the interruption is ignored
    calls.clear()

    def counted(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(ondisk, "_tile_task", counted)
    k = kernels_to_disk(X, net, tmp_path / "K", block=32, progress=False)
    assert len(calls) == 5 * 6 // 2 - 3  # 15 tiles on and above the diagonal, 3 already written
    _same(k, kernels(X, net))
    calls.clear()
    kernels_to_disk(X, net, tmp_path / "K", block=32, progress=False)  # complete: nothing recomputed
    assert calls == []


def test_refuses_other_computations_and_bad_arguments(tmp_path):
    net = Network(3, "relu")
    kernels_to_disk(X[:40], net, tmp_path / "K", block=16, progress=False)
    with pytest.raises(ValueError, match="different kernel computation"):
        kernels_to_disk(X[:41], net, tmp_path / "K", block=16, progress=False)
    with pytest.raises(ValueError, match="different kernel computation"):
        kernels_to_disk(X[:40], Network(3, "erf"), tmp_path / "K", block=16, progress=False)
    k = kernels_to_disk(X[:40], net, tmp_path / "K", block=16, layers=True, overwrite=True, progress=False)
    _same(k, kernels(X[:40], net, layers=True))
    k = kernels_to_disk(X[:40], net, tmp_path / "K", block=32, overwrite=True, progress=False)
    assert sorted(os.listdir(tmp_path / "K")) == ["done.txt", "manifest.json", "nngp.npy", "ntk.npy"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a kernels_to_disk run"):
        kernels_to_disk(X, net, tmp_path / "other", overwrite=True, progress=False)
    with pytest.raises(ValueError, match="block must be a multiple of 16"):
        kernels_to_disk(X, net, tmp_path / "B", block=40)
    with pytest.raises(ValueError, match="block"):
        kernels_to_disk(X, net, tmp_path / "B", block=8)
    with pytest.raises(ValueError, match="X2"):
        kernels_to_disk(X, net, tmp_path / "B", X2=np.ones((3, 4)))
    with pytest.raises(ValueError, match="executor"):
        kernels_to_disk(X, net, tmp_path / "B", executor=object())
    with pytest.raises(ValueError, match="not computed"):
        _ = k.backward


def _scaled_tanh(a):
    """A user activation that is a closure (not picklable by the standard pickle)."""
    return Activation(lambda u: np.tanh(a * u), lambda u: a * (1.0 - np.tanh(a * u) ** 2), f"tanh{a}")


def test_threads_give_the_serial_files(tmp_path):
    net = Network(3, "erf", 1.5, 0.1)
    serial = kernels_to_disk(X, net, tmp_path / "S", block=48, layers=True, progress=False)
    with ThreadPoolExecutor(2) as ex:
        _same(kernels_to_disk(X, net, tmp_path / "T", block=48, layers=True, executor=ex, progress=False), serial)


@pytest.mark.slow  # process start-up; the same cloudpickle path runs fast on Dask workers in test_distributed.py
def test_process_pool_gives_the_serial_files(tmp_path):
    """A process pool with a closure activation (cloudpickled) writes the serial run's files bit for bit."""
    net = Network(3, _scaled_tanh(0.8), 1.5, 0.1)
    serial = kernels_to_disk(X, net, tmp_path / "S", block=48, layers=True, progress=False)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        k = kernels_to_disk(X, net, tmp_path / "P", block=48, layers=True, executor=ex, in_flight=2, progress=False)
    _same(k, serial)


def test_cli_block_writes_a_directory(tmp_path, capsys):
    x = tmp_path / "X.npy"
    np.save(x, X[:50])
    out = tmp_path / "K"
    args = ["kernel", "--input", str(x), "--depth", "3", "--output", str(out), "--block", "16"]
    assert main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "npy-directory" and data["shape"] == [50, 50] and data["output"] == str(out)
    ref = kernels(X[:50], Network(3, "relu", 2.0, 0.0))
    assert np.array_equal(np.load(out / "ntk.npy"), ref.ntk)
    assert main(["kernel", "--input", str(x), "--depth", "3", "--block", "16"]) == 2  # needs --output
    assert "--output DIR" in capsys.readouterr().err
    assert main(["kernel", "--input", str(x), "--depth", "3", "--block", "20", "--output", str(tmp_path / "B")]) == 2
    assert "multiple of 16" in capsys.readouterr().err


def test_cli_falls_back_to_disk_when_memory_is_short(tmp_path, capsys, monkeypatch):
    from meanfield.cli import kernel as cli_kernel

    monkeypatch.setattr(cli_kernel, "_fits", lambda *a: False)
    x = tmp_path / "X.npy"
    np.save(x, X[:20])
    assert main(["kernel", "--input", str(x), "--depth", "2", "--output", str(tmp_path / "K.npz"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["output"] == str(tmp_path / "K") and data["block"] == 4096
    assert np.array_equal(np.load(tmp_path / "K" / "nngp.npy"), kernels(X[:20], Network(2, "relu", 2.0, 0.0)).nngp)


@pytest.mark.slow
def test_bit_identical_at_n_3000(tmp_path):
    Xl = np.random.default_rng(3).standard_normal((3000, 20))
    for act, x2 in (("relu", None), ("erf", np.random.default_rng(4).standard_normal((1000, 20)))):
        net = Network(10, act, 2.0 if act == "relu" else 1.5, 0.1)
        k = kernels_to_disk(Xl, net, tmp_path / act, X2=x2, block=512, progress=False)
        _same(k, kernels(Xl, net, X2=x2))


_CHILD = """
import sys, numpy as np
from meanfield import Network, kernels_to_disk
X = np.random.default_rng(5).standard_normal((600, 8))
kernels_to_disk(X, Network(6, "relu"), sys.argv[1], block=32, progress=False)
"""


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    """A run killed with SIGKILL between tiles resumes from the tiles it wrote and ends bit-identical."""
    out = tmp_path / "K"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(out)], env=dict(os.environ))
    done = out / "done.txt"
    deadline = time.time() + 300
    while time.time() < deadline and (not done.exists() or len(done.read_text().splitlines()) < 20):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(done.read_text().splitlines())
    assert 20 <= written < 19 * 20 // 2  # killed part-way through the 190 tiles
    X6 = np.random.default_rng(5).standard_normal((600, 8))
    k = kernels_to_disk(X6, Network(6, "relu"), out, block=32, progress=False)
    _same(k, kernels(X6, Network(6, "relu")))
