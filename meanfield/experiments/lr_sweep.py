r"""The learning rate of each depth chosen by held-out accuracy, as Lou et al. 2022 say they chose theirs.

Lou et al. 2022 (sec. 3.4 and App. E) pick the learning rate of every depth by accuracy on held-out data and report
only the winners (their Tables 1-3). :func:`learning_rate_sweep` redoes that choice on our data: for every depth of a
protocol and every factor of a grid around the protocol's rate, it trains ``runs`` networks on the training rows minus
a held-out validation part and records their validation accuracy; :func:`chosen_learning_rates` picks per depth the
rate with the best mean validation accuracy, and :func:`meanfield.experiments.preset` takes the result
(``learning_rates=``) for the real runs on the whole training set. The test set is never used for the choice.

Examples
--------
>>> doc = learning_rate_sweep("smoke", factors=(0.5, 2.0), runs=1)
>>> choice = chosen_learning_rates(doc)
>>> choice.depths.tolist(), choice.accuracy.shape
([3, 4, 6], (3, 2))
>>> sorted(choice.learning_rates) == [3, 4, 6]
True
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, check_int, check_real
from .eh_protocol import DATASETS, PRESETS, EHProtocol, _note_command, _records, _run_jobs, load_dataset

__all__ = ["LRChoice", "chosen_learning_rates", "learning_rate_sweep"]


def _key(L, factor, r):
    return f"L={L}/f={factor:.6g}/r={r}"


def _split(X, y, validation, seed):
    """Training rows split into (fit, validation) by a permutation seeded by ``seed`` (stratification is not needed
    at these sizes: every class has >= 100 training rows)."""
    perm = np.random.default_rng([seed, 17]).permutation(X.shape[0])
    k = int(round(validation * X.shape[0]))
    fit, val = perm[k:], perm[:k]
    return X[fit], y[fit], X[val], y[val]


def learning_rate_sweep(
    protocol="smoke",
    dataset="digits",
    factors=(1 / 3, 1.0, 3.0),
    runs=1,
    validation=0.2,
    out=None,
    seed=0,
    executor=None,
    progress=None,
    command=None,
) -> dict:
    """Validation accuracy of ``runs`` networks per depth and learning-rate factor.

    Parameters
    ----------
    protocol : str or EHProtocol
        A preset name or a protocol from :func:`meanfield.experiments.preset`; every depth of it is swept with the
        learning rates ``factor * lr(L) * lr_scale`` and the protocol's epoch budget and stop loss.
    dataset : {"digits", "mnist1d"}
    factors : sequence of float
        Multipliers of the protocol's learning rate (default 1/3, 1, 3), each > 0.
    runs : int
        Networks per (depth, factor). Run ``r`` of depth ``L`` has the same initialization and batch order for every
        factor (common random numbers: the comparison between rates is not blurred by the initialization).
    validation : float
        Fraction of the training rows held out for the choice, in (0, 1) (the test set is not touched).
    out : str, optional
        JSON file keeping finished runs (resume; other settings are refused).
    seed, executor, progress, command
        As in :func:`meanfield.experiments.equilibrium_experiment`.

    Returns
    -------
    dict
        ``{"protocol", "dataset", "seed", "factors", "validation", "records", "wall_seconds", "command"}``; records
        are keyed ``"L=10/f=0.333333/r=0"`` and are those of ``equilibrium_experiment`` with ``test_acc`` the
        validation accuracy and ``factor`` added.

    Notes
    -----
    Cost: ``len(factors) * runs`` times one run of the protocol per depth, on ``1 - validation`` of the rows.
    """
    p = PRESETS[check_choice(protocol, tuple(PRESETS), "protocol")] if isinstance(protocol, str) else protocol
    if not isinstance(p, EHProtocol):
        raise ValueError(f"protocol must be a preset name or an EHProtocol, got {protocol!r}")
    check_choice(dataset, DATASETS, "dataset")
    factors = [check_real(f, "factors", low=0.0, low_open=True) for f in np.atleast_1d(factors)]
    if not factors:
        raise ValueError("factors must hold at least one learning-rate factor > 0")
    runs = check_int(runs, "runs")
    validation = check_real(validation, "validation", low=0.0, high=1.0, low_open=True, high_open=True)
    seed = check_int(seed, "seed", 0)
    doc = {
        "protocol": p.settings(), "dataset": dataset, "seed": seed, "factors": [float(f) for f in factors],
        "validation": validation, "records": {}, "wall_seconds": 0.0,
    }  # fmt: skip
    if out is not None and os.path.exists(out):
        with open(out) as fh:
            old = json.load(fh)
        keys = ("protocol", "dataset", "seed", "validation")
        if {k: old.get(k) for k in keys} != json.loads(json.dumps({k: doc[k] for k in keys})):
            raise ValueError(f"out {out!r} holds a sweep with other settings; give another file to start afresh")
        old["factors"] = sorted(set(old["factors"]) | set(doc["factors"]))
        doc = old
    _note_command(doc, command)
    X, y, _, _ = load_dataset(dataset, seed=seed)
    if p.max_train is not None:
        X, y = X[: p.max_train], y[: p.max_train]
    data = _split(X, y, validation, seed)
    todo = [(L, f, r) for L in p.depths for f in factors for r in range(runs) if _key(L, f, r) not in doc["records"]]
    jobs = [
        dict(
            protocol=dataclasses.replace(p, lr_scale=p.lr_scale * f),
            depth=L,
            run=r,
            seed=seed,
            data=data,
            factor=f,
            record_extra={"factor": f},
        )  # fmt: skip
        for L, f, r in todo
    ]
    _run_jobs(jobs, doc, out, lambda job, rec: _key(rec["depth"], job["factor"], rec["run"]),
              f"learning-rate sweep {dataset}", executor, progress)  # fmt: skip
    return doc


@dataclass(frozen=True)
class LRChoice:
    """The learning rate per depth picked by mean validation accuracy.

    Attributes
    ----------
    depths : ndarray of int
    factors : ndarray
        The swept multipliers of the protocol's learning rate.
    lr : ndarray, shape (depths, factors)
        The learning rates tried.
    accuracy, accuracy_sd : ndarray, shape (depths, factors)
        Mean and standard deviation (ddof=1; NaN for one run) of the validation accuracy over the runs; a diverged
        run counts as accuracy 0.1 (chance for 10 classes); NaN where no run finished.
    chosen : ndarray
        Index into ``factors`` of the choice per depth (ties: the smaller rate).
    learning_rates : dict
        ``{L: lr}`` of the choice, for ``preset(..., learning_rates=...)``.
    """

    depths: np.ndarray
    factors: np.ndarray
    lr: np.ndarray
    accuracy: np.ndarray
    accuracy_sd: np.ndarray
    chosen: np.ndarray
    learning_rates: dict

    def table(self) -> list[list]:
        """Rows ``[L, lr_1 acc, ..., lr_k acc, chosen lr]``."""
        return [
            [int(L), *(float(a) for a in acc), float(lr[c])]
            for L, acc, lr, c in zip(self.depths, self.accuracy, self.lr, self.chosen, strict=True)
        ]


def chosen_learning_rates(doc) -> LRChoice:
    """Per depth, the learning rate of :func:`learning_rate_sweep` with the best mean validation accuracy.

    Parameters
    ----------
    doc : dict or str
        What :func:`learning_rate_sweep` returned, or its JSON file.

    Returns
    -------
    LRChoice
    """
    doc, recs, depths = _records(doc)
    factors = np.array(sorted({float(r["factor"]) for r in recs}))
    shape = (depths.size, factors.size)
    lr, acc, sd = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for i, L in enumerate(depths):
        for j, f in enumerate(factors):
            mine = [r for r in recs if int(r["depth"]) == L and float(r["factor"]) == f]
            if not mine:
                continue
            lr[i, j] = mine[0]["lr"]
            a = [0.1 if r.get("diverged") else float(r["test_acc"]) for r in mine]
            acc[i, j] = np.mean(a)
            sd[i, j] = np.std(a, ddof=1) if len(a) > 1 else np.nan
    if np.any(np.all(np.isnan(acc), axis=1)):
        raise ValueError(f"doc has depths without any run: {depths[np.all(np.isnan(acc), axis=1)].tolist()}")
    # ties (equal mean accuracy) go to the smaller rate: argmax takes the first of the ascending factors
    chosen = np.nanargmax(np.where(np.isnan(acc), -np.inf, acc), axis=1)
    rates = {int(L): float(lr[i, chosen[i]]) for i, L in enumerate(depths)}
    return LRChoice(depths, factors, lr, acc, sd, chosen, rates)
