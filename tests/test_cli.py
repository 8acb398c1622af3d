"""The command line: tables, --json, one-line errors with exit status 2."""

import json
import subprocess
import sys

import numpy as np
import pytest

from meanfield.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_phase_json(capsys):
    code, out, _ = run(capsys, "phase", "--activation", "erf", "--sigma-w2", "2.0", "--sigma-b2", "0.05", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["phase"] == "chaotic" and abs(data["q_star"] - 0.965955) < 5e-7


def test_phase_table_and_relu_note(capsys):
    code, out, _ = run(capsys, "phase")
    assert code == 0 and "edge_of_chaos" in out and "every q" in out


def test_eoc(capsys):
    code, out, _ = run(capsys, "eoc", "--activation", "tanh", "--sigma-b2", "0.05", "--json")
    assert code == 0 and abs(json.loads(out)["sigma_w2"] - 1.76095) < 5e-6


def test_kernel_roundtrip(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(5, 3))
    np.save(tmp_path / "X.npy", X)
    out_file = tmp_path / "K.npz"
    code, out, _ = run(capsys, "kernel", "--input", str(tmp_path / "X.npy"), "--depth", "4", "--layers",
                       "--output", str(out_file))  # fmt: skip
    assert code == 0
    saved = np.load(out_file)
    from meanfield import Network, kernels

    k = kernels(X, Network(4), layers=True)
    np.testing.assert_array_equal(saved["ntk"], k.ntk)
    np.testing.assert_array_equal(saved["ntk_layers"], k.ntk_layers)


@pytest.mark.parametrize(
    "argv, word",
    [
        (["phase", "--sigma-w2", "-1"], "sigma_w2"),
        (["phase", "--sigma-w2", "abc"], "sigma-w2"),
        (["phase", "--activation", "nope"], "activation"),
        (["eoc", "--activation", "relu", "--sigma-b2", "0.1"], "sigma_b2"),
        (["kernel", "--input", "/nonexistent.npy", "--depth", "3"], "cannot read"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, word):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert word in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_script_runs_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "meanfield", "phase", "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["phase"] == "edge_of_chaos"
