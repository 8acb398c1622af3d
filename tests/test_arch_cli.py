"""The architecture options on the command line (issue 11): --sigma-w2/--sigma-b2 lists, --residual,
--residual-scaling, --normalization, --dropout for kernel, phase and peak-layer; one-line errors, exit status 2."""

import json
import math

import numpy as np
import pytest

from meanfield import Network
from meanfield.cli import main
from meanfield.phase import phase
from meanfield.propagation import kernels


def run(capsys, *argv):
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    path = tmp_path_factory.mktemp("arch") / "X.npy"
    np.save(path, np.random.default_rng(0).normal(size=(3, 4)))
    return str(path)


@pytest.mark.parametrize(
    "extra, options",
    [
        (["--residual", "0.1"], dict(residual=0.1)),
        (["--dropout", "0.9"], dict(dropout=0.9)),
        (["--normalization", "layer"], dict(normalization="layer")),
        (["--sigma-w2", "2,2,1.5"], dict(sigma_w2=(2.0, 2.0, 1.5))),
        (
            ["--sigma-w2", "2,2,1.5", "--sigma-b2", "0,0.1,0", "--residual", "0.5", "--dropout", "0.8"],
            dict(sigma_w2=(2.0, 2.0, 1.5), sigma_b2=(0.0, 0.1, 0.0), residual=0.5, dropout=0.8),
        ),
    ],
)
def test_kernel_with_options_is_the_library_kernel(capsys, inputs, extra, options):
    """``kernel`` computes the kernels of the network the options describe (exit 0, the library's numbers)."""
    code, out, err = run(capsys, "kernel", "--input", inputs, "--depth", "3", *extra, "--json")
    assert code == 0 and err == ""
    data = json.loads(out)
    k = kernels(np.load(inputs), Network(3, **options))
    assert np.array_equal(np.array(data["ntk"]), k.ntk) and np.array_equal(np.array(data["nngp"]), k.nngp)


@pytest.mark.parametrize(
    "extra, word",
    [
        (["--sigma-w2", "2,2"], "--sigma-w2 lists 2 values"),
        (["--residual", "-1"], "--residual must be a number > 0"),
        (["--dropout", "0"], "--dropout must be a number in (0, 1]"),
        (["--dropout", "1.5"], "--dropout must be a number in (0, 1]"),
        (["--normalization", "batch"], "invalid choice"),
        (["--sigma-b2", "0,x,0"], "--sigma-b2 must be a number or a comma list"),
        (["--sigma-w2", "2,inf,2"], "--sigma-w2 values must be finite"),
    ],
)
def test_kernel_refuses_options_in_one_line(capsys, inputs, extra, word):
    """Invalid option values: one line naming the option, exit 2."""
    code, out, err = run(capsys, "kernel", "--input", inputs, "--depth", "3", *extra)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and word in err and "Traceback" not in err


def test_phase_dropout_matches_library(capsys):
    code, out, _ = run(capsys, "phase", "--activation", "tanh", "--sigma-w2", "1.7", "--sigma-b2", "0.05",
                       "--dropout", "0.9", "--json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    ref = phase(Network(1, "tanh", 1.7, 0.05, dropout=0.9))
    assert data["xi_c"] == ref.xi_c and data["c_star"] == ref.c_star and data["dropout"] == 0.9
    assert math.isfinite(data["xi_c"]) and "no critical line" in data["note"]


def test_phase_residual_and_schedule(capsys):
    code, out, _ = run(capsys, "phase", "--residual", "1", "--depth", "50", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["phase"] == "residual" and data["q_star"] == "inf" and abs(data["q_rate"] - 2.0) < 1e-12
    code, out, _ = run(capsys, "phase", "--activation", "tanh", "--sigma-w2", "1,1,1.5,1.5", "--sigma-b2", "0.05",
                       "--json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["depth"] == 4 and data["tail_start"] == 3 and data["sigma_w2"] == [1.0, 1.0, 1.5, 1.5]
    assert data["q_star"] == phase(Network(1, "tanh", 1.5, 0.05)).q_star
    code, _, err = run(capsys, "phase", "--sigma-w2", "1,2", "--depth", "3")
    assert code == 2 and "--depth 3 disagrees" in err
    code, _, err = run(capsys, "phase", "--sigma-w2=-1,2")
    assert code == 2 and "sigma_w2" in err and err.count("\n") == 1


def test_peak_layer_residual_scaling(capsys):
    code, out, _ = run(capsys, "peak-layer", "--depth", "10", "100", "--residual", "1", "--residual-scaling",
                       "inverse_sqrt", "--json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["residual_scaling"] == "inverse_sqrt" and data["l_star"] == [10, 100]
    code, out, _ = run(capsys, "peak-layer", "--depth", "100", "--residual", "1", "--json")
    data = json.loads(out)
    assert code == 0 and data["l_star"] == [34] and abs(data["constant"] - 2.8178278041642644) < 1e-12
    code, _, err = run(capsys, "peak-layer", "--depth", "10", "--residual-scaling", "inverse_sqrt")
    assert code == 2 and "needs --residual" in err
    code, _, err = run(capsys, "peak-layer", "--depth", "10", "--residual-scaling", "sqrt")
    assert code == 2 and "invalid choice" in err


def test_peak_layer_schedule_fixes_the_depth(capsys):
    code, out, _ = run(capsys, "peak-layer", "--depth", "5", "--sigma-w2", "1,2,2,2,2", "--json")
    assert code == 0 and json.loads(out)["sigma_w2"] == [1.0, 2.0, 2.0, 2.0, 2.0]
    code, _, err = run(capsys, "peak-layer", "--depth", "5", "10", "--sigma-w2", "1,2,2,2,2")
    assert code == 2 and "fixes the depth to 5" in err
    code, _, err = run(capsys, "peak-layer", "--depth", "5", "--sigma-w2", "1,2,2,2,2", "--sigma-b2", "0,0,0")
    assert code == 2 and "--sigma-b2 lists 3 values" in err
