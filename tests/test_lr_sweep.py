"""The learning rate per depth chosen by held-out accuracy (Lou et al. 2022's choice): the split never touches the test
set, every rate starts from the same initialization, the choice is the best mean validation accuracy, and the chosen
rates feed the experiment's protocol and the command line."""

import json

import numpy as np
import pytest

from meanfield.cli import main
from meanfield.experiments import chosen_learning_rates, eh_protocol, learning_rate_sweep, preset
from meanfield.experiments import lr_sweep as sweep_module
from meanfield.experiments.eh_protocol import load_dataset

pytest.importorskip("sklearn")


def test_sweep_smoke_same_initialization_for_every_rate_and_resume(tmp_path, monkeypatch):
    out = str(tmp_path / "sweep.json")
    p = preset("smoke", depths=[3, 4])
    doc = learning_rate_sweep(p, factors=(0.5, 2.0), runs=1, out=out)
    assert "commands" not in doc
    assert sorted(doc["records"]) == ["L=3/f=0.5/r=0", "L=3/f=2/r=0", "L=4/f=0.5/r=0", "L=4/f=2/r=0"]
    for L, lr in zip(p.depths, p.lr, strict=True):
        a, b = doc["records"][f"L={L}/f=0.5/r=0"], doc["records"][f"L={L}/f=2/r=0"]
        assert a["lr"] == pytest.approx(0.5 * lr) and b["lr"] == pytest.approx(2.0 * lr)
        assert a["alignment_init"] == b["alignment_init"]  # common random numbers: one initialization per run
        assert a["alignment"] != b["alignment"]
    calls = []
    real = eh_protocol._one_run
    monkeypatch.setattr(eh_protocol, "_one_run", lambda job: calls.append((job["depth"], job["factor"])) or real(job))
    again = learning_rate_sweep(p, factors=(0.5, 1.0, 2.0), runs=1, out=out, command="second")
    again = learning_rate_sweep(p, factors=(0.5, 1.0, 2.0), runs=1, out=out, command="third")
    assert sorted(calls) == [(3, 1.0), (4, 1.0)]
    assert again["factors"] == [0.5, 1.0, 2.0]
    assert again["command"] == "third" and again["commands"] == ["second", "third"]
    with pytest.raises(ValueError, match="other settings"):
        learning_rate_sweep(p, factors=(0.5,), runs=1, validation=0.3, out=out)


def test_validation_rows_come_from_the_training_rows_only():
    X, y, Xt, _ = load_dataset("digits")
    Xf, yf, Xv, yv = sweep_module._split(X, y, 0.2, 0)
    assert Xf.shape[0] + Xv.shape[0] == X.shape[0] and Xv.shape[0] == round(0.2 * X.shape[0])
    rows = {r.tobytes() for r in X}
    assert all(r.tobytes() in rows for r in Xv) and not {r.tobytes() for r in Xv} & {r.tobytes() for r in Xf}
    assert not {r.tobytes() for r in Xv} & {r.tobytes() for r in Xt}


def _rec(L, f, r, acc, diverged=False):
    return {"depth": L, "factor": f, "run": r, "lr": 1e-3 * f, "test_acc": acc, "diverged": diverged}


def test_choice_is_the_best_mean_validation_accuracy_and_ties_take_the_smaller_rate():
    recs = [
        _rec(10, 0.5, 0, 0.80), _rec(10, 0.5, 1, 0.90), _rec(10, 2.0, 0, 0.86), _rec(10, 2.0, 1, 0.86),
        _rec(20, 0.5, 0, 0.70), _rec(20, 0.5, 1, 0.70), _rec(20, 2.0, 0, 0.70), _rec(20, 2.0, 1, 0.70),
        _rec(30, 0.5, 0, 0.50), _rec(30, 2.0, 0, 0.0, diverged=True), _rec(30, 2.0, 1, 0.99),
    ]  # fmt: skip
    c = chosen_learning_rates({"records": {str(i): r for i, r in enumerate(recs)}})
    assert c.depths.tolist() == [10, 20, 30] and c.factors.tolist() == [0.5, 2.0]
    np.testing.assert_allclose(c.accuracy, [[0.85, 0.86], [0.70, 0.70], [0.50, (0.1 + 0.99) / 2]])
    assert c.learning_rates == {10: 2e-3, 20: 5e-4, 30: 2e-3}
    assert np.isnan(c.accuracy_sd[2, 0]) and c.accuracy_sd[0, 0] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert c.table()[0] == pytest.approx([10, 0.85, 0.86, 2e-3])


def test_chosen_rates_make_a_protocol_and_bad_input_is_refused():
    p = preset("paper", depths=[10, 20, 30], learning_rates={20: 1e-3})
    assert p.name == "paper-swept" and p.lr == (3e-3, 1e-3, 3e-3) and p.epochs == (100, 100, 100)
    assert p.settings() != preset("paper", depths=[10, 20, 30]).settings()  # the runs go to another file
    with pytest.raises(ValueError, match="learning_rates"):
        preset("paper", learning_rates={10: 0.0})
    with pytest.raises(ValueError, match="factors"):
        learning_rate_sweep("smoke", factors=(1.0, -2.0))
    with pytest.raises(ValueError, match="validation"):
        learning_rate_sweep("smoke", validation=1.0)
    with pytest.raises(ValueError, match="no runs"):
        chosen_learning_rates({"records": {}})


def test_cli_sweep_then_equilibrium_with_the_chosen_rates(tmp_path, capsys):
    sweep = str(tmp_path / "sweep.json")
    argv = ["experiment", "lr-sweep", "--preset", "smoke", "--depths", "3", "--factors", "0.5,2", "--out", sweep]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    chosen = data["learning_rates"]["3"]
    assert chosen in (0.025, 0.1) and data["factors"] == [0.5, 2.0]
    out = str(tmp_path / "eh.json")
    assert main(["experiment", "equilibrium", "--preset", "smoke", "--depths", "3", "--runs", "1",
                 "--learning-rates-from", sweep, "--out", out, "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    with open(out) as fh:
        doc = json.load(fh)
    assert doc["records"]["L=3/r=0"]["lr"] == chosen and doc["protocol"]["name"] == "smoke-swept"
    assert main([*argv[:-2], "--factors", "a,b"]) == 2
    assert "--factors" in capsys.readouterr().err
    assert main(["experiment", "equilibrium", "--learning-rates-from", str(tmp_path / "missing.json")]) == 2
    assert "--learning-rates-from" in capsys.readouterr().err
