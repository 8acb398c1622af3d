"""``meanfield predict``: the command line face of meanfield.prediction (JSON, tables, .npz output, bad input)."""

import json

import numpy as np
import pytest

import meanfield as mf
from meanfield.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(3)
    arrays = dict(X=rng.standard_normal((8, 3)), y=rng.standard_normal(8), y2=rng.standard_normal((8, 2)),
                  Xt=rng.standard_normal((2, 3)))  # fmt: skip
    paths = {}
    for name, a in arrays.items():
        paths[name] = str(d / f"{name}.npy")
        np.save(paths[name], a)
    return d, arrays, paths


def test_json_matches_the_api(files, capsys):
    _, a, p = files
    code, out, err = run(capsys, "predict", "--train", p["X"], "--targets", p["y"], "--test", p["Xt"], "--depth", "4",
                         "--time", "1,10,inf", "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    ref = mf.predict(mf.Network(4), a["X"], a["y"], a["Xt"], t=[1.0, 10.0, np.inf])
    np.testing.assert_allclose(data["mean"], ref.mean, rtol=1e-14)
    np.testing.assert_allclose(data["variance"], ref.variance, rtol=1e-14)
    assert data["t"] == [1.0, 10.0, "inf"] and data["kernel"] == "ntk"


def test_nngp_output_file_and_table(files, capsys):
    d, a, p = files
    code, out, err = run(capsys, "predict", "--train", p["X"], "--targets", p["y2"], "--test", p["Xt"], "--depth",
                         "3", "--kernel", "nngp", "--diag-reg", "0.01", "--activation", "erf", "--output",
                         str(d / "P"))  # fmt: skip
    assert code == 0, err
    saved = np.load(d / "P.npz")
    ref = mf.predict(mf.Network(3, "erf"), a["X"], a["y2"], a["Xt"], kernel="nngp", diag_reg=0.01)
    np.testing.assert_allclose(saved["mean"], ref.mean, rtol=1e-14)
    np.testing.assert_allclose(saved["covariance"], ref.covariance, rtol=1e-14)
    assert out.splitlines()[0].split() == ["t", "input", "mean[0]", "mean[1]", "sd"]
    assert str(d / "P.npz") in out


@pytest.mark.parametrize(
    "extra, word",
    [
        (["--diag-reg", "-1"], "--diag-reg"),
        (["--lr", "100", "--time", "100"], "--lr"),
        (["--lr", "0.3", "--time", "1"], "--time"),
        (["--time", "1,-2"], "--time"),
        (["--time", "a"], "--time"),
        (["--kernel", "nngp", "--time", "1"], "--time"),
    ],
)
def test_bad_input_exit_2_naming_the_option(files, capsys, extra, word):
    _, _, p = files
    code, out, err = run(capsys, "predict", "--train", p["X"], "--targets", p["y"], "--test", p["Xt"], "--depth", "3",
                         *extra)  # fmt: skip
    assert code == 2 and word in err and len(err.strip().splitlines()) == 1


def test_mismatched_files_are_named(files, capsys):
    _, _, p = files
    code, _, err = run(capsys, "predict", "--train", p["X"], "--targets", p["Xt"], "--test", p["Xt"], "--depth", "3")
    assert code == 2 and "--targets" in err
    code, _, err = run(capsys, "predict", "--train", p["X"], "--targets", p["y"], "--test", p["y"], "--depth", "3")
    assert code == 2 and "--test" in err
