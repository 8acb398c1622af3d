"""The Equilibrium Hypothesis experiment with the protocol of Lou et al. 2022: smoke preset end to end, resuming,
the bootstrap intervals, the stop at a training loss, and the command line."""

import json

import numpy as np
import pytest

from meanfield import Network
from meanfield.cli import main
from meanfield.experiments import eh_protocol
from meanfield.experiments.eh_protocol import equilibrium_experiment, preset, summarize_equilibrium
from meanfield.finite import MLP
from meanfield.finite.training import train
from meanfield.stats import bootstrap

pytest.importorskip("sklearn")


def test_smoke_end_to_end(tmp_path):
    out = str(tmp_path / "eh.json")
    doc = equilibrium_experiment("smoke", runs=2, out=out)
    assert sorted(doc["records"]) == sorted(f"L={L}/r={r}" for L in (3, 4, 6) for r in range(2))
    for rec in doc["records"].values():
        assert not rec["diverged"]
        assert len(rec["alignment"]) == rec["depth"] and 1 <= rec["peak"] <= rec["depth"]
        assert rec["peak"] == int(np.argmax(rec["alignment"])) + 1
        assert 0.0 <= rec["test_acc"] <= 1.0 and rec["epochs_run"] <= rec["epoch_budget"]
    with open(out) as fh:
        assert json.load(fh)["records"] == json.loads(json.dumps(doc["records"]))
    s = summarize_equilibrium(out, n_boot=200)
    assert s.depths.tolist() == [3, 4, 6] and s.n_runs.tolist() == [2, 2, 2]
    assert s.predicted.tolist() == [2, 3, 4]
    assert s.slope_ci[0] <= s.slope <= s.slope_ci[1]
    assert [p.shape[0] for p in s.profiles] == [3, 4, 6] and all(np.max(p) <= 1.0 for p in s.profiles)
    assert "CI" in s.verdict


def test_runs_are_independent_of_what_else_ran_and_resume_skips_finished(tmp_path, monkeypatch):
    out = str(tmp_path / "eh.json")
    p = preset("smoke", depths=[3, 4])
    first = equilibrium_experiment(p, runs=1, out=out)
    calls = []
    real = eh_protocol._one_run
    monkeypatch.setattr(eh_protocol, "_one_run", lambda job: calls.append((job["depth"], job["run"])) or real(job))
    again = equilibrium_experiment(preset("smoke"), runs=2, out=out)  # adds depth 6 and run 1
    assert sorted(calls) == [(3, 1), (4, 1), (6, 0), (6, 1)]
    assert again["records"]["L=3/r=0"] == json.loads(json.dumps(first["records"]["L=3/r=0"]))
    fresh = equilibrium_experiment(p, runs=2)  # the same run computed alone is the same run
    for key in ("L=3/r=1", "L=4/r=1"):
        assert fresh["records"][key]["alignment"] == again["records"][key]["alignment"]
    with pytest.raises(ValueError, match="other settings"):
        equilibrium_experiment(preset("smoke", lr_scale=0.5), runs=1, out=out)


def test_preset_validation():
    assert preset("paper").lr[-1] == 1e-4 and preset("paper").epochs[-1] == 300
    with pytest.raises(ValueError, match="depths"):
        preset("paper", depths=[15])
    with pytest.raises(ValueError, match="residual"):
        preset("paper", residual="2")
    assert preset("paper", depths=[10], residual="1/sqrt(L)").beta(100) == 0.1
    assert preset("paper").stop_loss == 0.1 and preset("paper", stop=False).stop_loss is None


def test_slope_interval_on_synthetic_runs():
    """Peaks l = round(0.8 L^0.7) + noise of sd 1: the 95% interval holds 0.7 and excludes 3/5 and 1."""
    rng = np.random.default_rng(3)
    depths = (10, 20, 40, 80, 160)
    recs = {}
    for L in depths:
        for r in range(8):
            peak = max(1, int(round(0.8 * L**0.7 + rng.normal())))
            recs[f"L={L}/r={r}"] = dict(depth=L, run=r, peak=peak, diverged=False, train_loss=0.1, test_acc=0.9,
                                        reached_stop=True, epochs_run=1, alignment=[1.0] * L)  # fmt: skip
    s = summarize_equilibrium({"records": recs}, n_boot=500)
    assert s.slope_ci[0] < 0.7 < s.slope_ci[1]
    # per-depth means have sd ~ 1/sqrt(8) on l = 4..28, so the slope's sd is ~0.04 and the 95% width ~0.16
    assert s.slope_ci[1] - s.slope_ci[0] < 0.25
    assert "excludes 3/5" in s.verdict


def test_percentile_interval_of_a_mean():
    """n = 400 standard normals: the 90% percentile interval of the mean is mean +- 1.645/sqrt(n) to 10%."""
    x = np.random.default_rng(0).standard_normal(400)
    b = bootstrap(np.mean, x, n_boot=2000, seed=1, level=0.9)
    half = 1.645 * x.std(ddof=1) / 20
    assert abs((b.high - b.low) / 2 - half) < 0.1 * half
    assert abs((b.high + b.low) / 2 - x.mean()) < 0.1 * half
    assert bootstrap(np.mean, x, n_boot=10).low is None
    with pytest.raises(ValueError, match="level"):
        bootstrap(np.mean, x, level=1.0)
    with pytest.raises(ValueError, match="finite"):
        bootstrap(lambda t: np.inf, x, n_boot=5, level=0.9)


def test_train_stops_at_the_training_loss():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5))
    y = (X[:, 0] > 0).astype(int)
    mlp = MLP.sample(Network(3, width=32), d=5, seed=1, outputs=2)
    h = train(mlp, X, y, epochs=200, lr=0.05, batch_size=16, seed=0, stop_loss=0.2)
    stop = int(h.epochs[-1])
    assert stop < 200 and len(h.step_loss) == 4 * stop
    assert np.mean(h.step_loss[-4:]) <= 0.2 < np.mean(h.step_loss[-8:-4])
    with pytest.raises(ValueError, match="stop_loss"):
        train(mlp, X, y, epochs=2, lr=0.05, batch_size=16, stop_loss=-1.0)


def test_cli_smoke(tmp_path, capsys):
    out = tmp_path / "eh"
    assert main(["experiment", "equilibrium", "--preset", "smoke", "--runs", "2", "--depths", "3,4", "--out", str(out),
                 "--json"]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert data["out"] == str(out) + ".json" and data["depths"] == [3, 4]
    assert main(["experiment", "equilibrium", "--preset", "paper", "--depths", "15"]) == 2
    assert "depths" in capsys.readouterr().err


@pytest.mark.slow
def test_mnist1d_offline():
    pytest.importorskip("mnist1d")
    from meanfield.data import mnist1d

    X, y, Xt, yt = mnist1d()
    assert X.shape == (4000, 40) and Xt.shape == (1000, 40) and set(np.unique(y)) == set(range(10))
    assert np.allclose(np.sum(X**2, axis=1), 40.0)


def test_diverged_runs_are_kept_and_left_out_of_the_fits():
    doc = equilibrium_experiment(preset("smoke", depths=[3], lr_scale=1e6), runs=1)
    rec = doc["records"]["L=3/r=0"]
    assert rec["diverged"] and rec["peak"] is None and "diverged" in rec["error"]
    recs = {f"L={L}/r={r}": dict(depth=L, run=r, peak=L // 2, diverged=False, train_loss=0.1, test_acc=0.9,
                                 reached_stop=True, epochs_run=1, alignment=[1.0] * L)
            for L in (10, 20, 40, 80) for r in range(3)}  # fmt: skip
    for r in range(3):
        recs[f"L=80/r={r}"] = dict(depth=80, run=r, peak=None, diverged=True)
    s = summarize_equilibrium({"records": recs}, n_boot=100)
    assert s.n_runs.tolist() == [3, 3, 3, 0] and s.n_diverged.tolist() == [0, 0, 0, 3]
    assert "no finished run at L = [80]" in s.verdict and "over L = 10..40" in s.verdict
    assert abs(s.slope - 1.0) < 0.05


def test_residual_summary_uses_the_residual_prediction_or_says_there_is_none():
    import warnings

    recs = {f"L={L}/r={r}": dict(depth=L, run=r, peak=2, diverged=False, train_loss=0.1, test_acc=0.9,
                                 reached_stop=True, epochs_run=1, alignment=[1.0] * L)
            for L in (10, 20, 40) for r in range(2)}  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = summarize_equilibrium({"protocol": {"residual": "1/sqrt(L)"}, "records": recs}, n_boot=50)
    if np.all(np.isnan(s.predicted)):
        assert any("no residual prediction" in str(w.message) for w in caught)
    else:  # beta = 1/sqrt(L): the predicted peak is the last layer
        assert s.predicted.tolist() == [10, 20, 40]
