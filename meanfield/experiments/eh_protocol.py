r"""The Equilibrium Hypothesis tested as Lou et al. 2022 ran it: per-depth learning rates and epoch budgets, several
independent initializations per depth, a stop at training loss 0.1, and bootstrap intervals over the runs.

Lou et al. 2022 (sec. 3.4, Fig. 3, App. E Tables 1-3) train ReLU MLPs of depth L = 10, 20, ..., 100 (width 100 on
MNIST, SGD with momentum and weight decay, batch 128, learning rate chosen per depth by held-out accuracy) and fit
:math:`\log l = \frac35\log L + C` to the layer :math:`\arg\max_l A_l` of best tangent-kernel alignment (their
eq. (7)). :func:`equilibrium_experiment` runs that protocol on an offline data set, one independently initialized
network per (depth, run), over an executor, keeping every finished run on disk (resumable);
:func:`summarize_equilibrium` gives per depth the mean and spread of the trained peak and the free log-log slope and
fixed-3/5 intercept with percentile bootstrap intervals over the runs (:func:`meanfield.stats.bootstrap`), against
the prediction :math:`l^*(L)` of :func:`meanfield.peak_layer`.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from .._checks import check_choice, check_int, check_real
from ..stats import bootstrap, scaling_fit

__all__ = [
    "PRESETS",
    "EHProtocol",
    "EHSummary",
    "equilibrium_experiment",
    "load_dataset",
    "preset",
    "summarize_equilibrium",
]

#: Lou et al. 2022, App. E, Table 3 (MNIST, width 100): learning rate and epoch budget per depth
PAPER_MNIST = {
    10: (3e-3, 100), 20: (3e-3, 100), 30: (3e-3, 100), 40: (2e-3, 100), 50: (1e-3, 100),
    60: (7e-4, 100), 70: (2e-4, 200), 80: (1e-4, 200), 90: (2e-4, 300), 100: (1e-4, 300),
}  # fmt: skip

RESIDUALS = (None, "1", "1/sqrt(L)")
DATASETS = ("digits", "mnist1d")


@dataclass(frozen=True)
class EHProtocol:
    """One training protocol: per-depth learning rates and epoch budgets plus the shared settings.

    Attributes
    ----------
    name : str
        Preset name.
    depths : tuple of int
    lr, epochs : tuple
        Learning rate and epoch budget per depth (before ``lr_scale``).
    width, batch_size : int
    momentum, weight_decay : float
        PyTorch-style SGD (:func:`meanfield.train`).
    stop_loss : float or None
        Stop at the first epoch whose mean mini-batch loss is at most this. Lou et al. 2022 state the stop at 0.1
        for their Figs. 4 and 12-15; for Fig. 3 their Tables 1-3 give only epoch budgets. None: full budgets.
    align_samples : int
        Training rows for :math:`A_l`.
    max_train : int or None
        Use only the first ``max_train`` training rows (the smoke preset).
    lr_scale : float
        Multiplies every learning rate (Lou et al. 2022, Fig. 8b: 1/4).
    residual : None, "1" or "1/sqrt(L)"
        Residual branch scale beta (:class:`meanfield.Network`, ``residual=``).
    """

    name: str
    depths: tuple
    lr: tuple
    epochs: tuple
    width: int = 100
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    stop_loss: float | None = 0.1
    align_samples: int = 50
    max_train: int | None = None
    lr_scale: float = 1.0
    residual: str | None = None

    def settings(self) -> dict:
        """What two runs must share to be pooled: everything but the depth list."""
        d = asdict(self)
        d.pop("depths")
        d["table"] = {str(L): [lr, ep] for L, lr, ep in zip(self.depths, self.lr, self.epochs, strict=True)}
        d.pop("lr")
        d.pop("epochs")
        return d

    def beta(self, depth: int) -> float | None:
        if self.residual is None:
            return None
        return 1.0 if self.residual == "1" else 1.0 / math.sqrt(depth)


PRESETS = {
    # the paper's MNIST table (Lou et al. 2022, Table 3); momentum and weight decay are not given in the paper
    "paper": EHProtocol(
        "paper",
        tuple(PAPER_MNIST),
        tuple(v[0] for v in PAPER_MNIST.values()),
        tuple(v[1] for v in PAPER_MNIST.values()),
    ),
    # seconds: small networks on 300 training rows, for the test suite
    "smoke": EHProtocol(
        "smoke", (3, 4, 6), (0.05, 0.05, 0.03), (4, 4, 4), width=16, batch_size=64, align_samples=10, max_train=300
    ),
}


def preset(name="paper", depths=None, lr_scale=1.0, residual=None, stop=True, learning_rates=None) -> EHProtocol:
    """A preset protocol, optionally restricted to some of its depths, with scaled learning rates or residual blocks;
    ``stop=False`` trains every network for its whole epoch budget (no stop at the training loss);
    ``learning_rates`` (``{L: lr}``, e.g. ``chosen_learning_rates(sweep).learning_rates``) replaces the preset's
    rate at those depths (the protocol is then named ``"<name>-swept"``; ``lr_scale`` still multiplies).

    >>> p = preset("paper", depths=[10, 50])
    >>> p.depths, p.lr, p.epochs
    ((10, 50), (0.003, 0.001), (100, 100))
    """
    base = PRESETS[check_choice(name, tuple(PRESETS), "preset")]
    lr_scale = check_real(lr_scale, "lr_scale", low=0.0, low_open=True)
    if residual is not None:
        check_choice(residual, RESIDUALS[1:], "residual")
    if depths is None:
        keep = list(range(len(base.depths)))
    else:
        depths = [check_int(int(L), "depths", 2) for L in depths]
        missing = [L for L in depths if L not in base.depths]
        if missing or not depths:
            raise ValueError(f"depths must be a non-empty subset of the {name!r} preset's {base.depths}, got {depths}")
        keep = [base.depths.index(L) for L in sorted(set(depths))]
    pick = lambda t: tuple(t[i] for i in keep)  # noqa: E731
    lr, label = pick(base.lr), base.name
    if learning_rates is not None:
        rates = {
            int(L): check_real(v, "learning_rates", low=0.0, low_open=True) for L, v in dict(learning_rates).items()
        }
        lr = tuple(rates.get(L, r) for L, r in zip(pick(base.depths), lr, strict=True))
        label = f"{base.name}-swept"
    return EHProtocol(
        label, pick(base.depths), lr, pick(base.epochs), base.width, base.batch_size, base.momentum,
        base.weight_decay, base.stop_loss if stop else None, base.align_samples, base.max_train, lr_scale, residual,
    )  # fmt: skip


def load_dataset(name="digits", seed=0):
    """``(X_train, y_train, X_test, y_test)`` of an offline data set: ``"digits"`` (:func:`meanfield.data.digits`)
    or ``"mnist1d"`` (:func:`meanfield.data.mnist1d`)."""
    from .. import data

    check_choice(name, DATASETS, "dataset")
    return data.digits(seed=seed) if name == "digits" else data.mnist1d(seed=seed)


def _one_run(job):
    """Train one network of the protocol and return its JSON-able record (runs in a worker process)."""
    from ..finite.mlp import MLP
    from ..finite.training import train
    from ..network import Network

    p, L, r, seed, (X, y, Xt, yt) = job["protocol"], job["depth"], job["run"], job["seed"], job["data"]
    i = p.depths.index(L)
    lr, epochs = p.lr[i] * p.lr_scale, p.epochs[i]
    ss = np.random.SeedSequence([seed, L, r])
    init, order = ss.spawn(2)
    net = Network(L, "relu", 2.0, 0.0, parameterization="standard", width=p.width, residual=p.beta(L))
    mlp = MLP.sample(net, d=X.shape[1], seed=init, outputs=int(y.max()) + 1)
    rec = {"depth": L, "run": r, "lr": lr, "epoch_budget": epochs, **job.get("record_extra", {})}
    start = time.perf_counter()
    try:
        h = train(
            mlp, X, y, epochs=epochs, lr=lr, batch_size=p.batch_size, momentum=p.momentum,
            weight_decay=p.weight_decay, seed=int(order.generate_state(1)[0]), X_test=Xt, Y_test=yt,
            align_samples=p.align_samples, stop_loss=p.stop_loss, progress=False,
        )  # fmt: skip
    except FloatingPointError as exc:
        rec.update(diverged=True, error=str(exc), peak=None, seconds=time.perf_counter() - start)
        return rec
    steps = -(-X.shape[0] // p.batch_size)
    A = h.alignment
    rec.update(
        diverged=False,
        epochs_run=int(h.epochs[-1]),
        reached_stop=bool(p.stop_loss is not None and np.mean(h.step_loss[-steps:]) <= p.stop_loss),
        epoch_loss=float(np.mean(h.step_loss[-steps:])),
        train_loss=float(h.loss[-1]),
        train_acc=float(h.train_acc[-1]),
        test_acc=float(h.test_acc[-1]),
        alignment=[float(a) for a in A[-1]],
        alignment_init=[float(a) for a in A[0]],
        peak=int(np.argmax(A[-1])) + 1,
        seconds=time.perf_counter() - start,
    )
    return rec


def _note_command(doc, command):
    """Keep the command line: ``doc["command"]`` is the last one, ``doc["commands"]`` every distinct one in order."""
    if command is None:
        return
    seen = doc.setdefault("commands", [doc["command"]] if "command" in doc else [])
    if command not in seen:
        seen.append(command)
    doc["command"] = command


def _records(doc):
    """``(doc, records, sorted depths)`` of a results dict or its JSON file; ValueError when it holds no run."""
    if isinstance(doc, str):
        with open(doc) as fh:
            doc = json.load(fh)
    recs = list(doc["records"].values())
    if not recs:
        raise ValueError("doc has no runs")
    return doc, recs, np.array(sorted({int(r["depth"]) for r in recs}))


def _key(L, r):
    return f"L={L}/r={r}"


def _write(path, doc):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(tmp, path)


def _run_jobs(jobs, doc, out, key, desc, executor=None, progress=None):
    """Run ``_one_run`` on every job (in this process or on ``executor``), storing each record in ``doc["records"]``
    under ``key(job, record)`` and rewriting ``out`` after each (so an interrupted call resumes); a tqdm bar when
    ``progress`` (default: stderr is a terminal); ``doc["wall_seconds"]`` accumulates the wall time."""
    elapsed, start = float(doc.get("wall_seconds", 0.0)), time.perf_counter()
    if progress is None:
        import sys

        progress = sys.stderr.isatty()
    bar = None
    if progress and jobs:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=desc)

    def done(job, rec):
        doc["records"][key(job, rec)] = rec
        doc["wall_seconds"] = elapsed + time.perf_counter() - start
        if out is not None:
            _write(out, doc)
        if bar is not None:
            bar.update(1)

    try:
        if executor is None:
            for job in jobs:
                done(job, _one_run(job))
        else:
            from concurrent.futures import as_completed

            futures = {executor.submit(_one_run, job): job for job in jobs}
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
    finally:
        if bar is not None:
            bar.close()
    doc["wall_seconds"] = elapsed + time.perf_counter() - start
    if out is not None:
        _write(out, doc)


def equilibrium_experiment(
    protocol="smoke", dataset="digits", runs=5, out=None, seed=0, executor=None, progress=None, command=None
) -> dict:
    r"""Train ``runs`` independently initialized ReLU MLPs per depth with the protocol and record the trained peaks.

    Parameters
    ----------
    protocol : str or EHProtocol
        A preset name (:data:`PRESETS`: ``"paper"``, Lou et al. 2022, Table 3; ``"smoke"``) or a protocol from
        :func:`preset`.
    dataset : {"digits", "mnist1d"}
        Offline data (:func:`load_dataset`); inputs centered and put on the sphere.
    runs : int
        Independent initializations per depth (run ``r`` of depth ``L`` is seeded by ``SeedSequence([seed, L, r])``
        for the initialization and the batch order, so a run is the same whether or not others ran).
    out : str, optional
        JSON file that keeps every finished run; runs already in it are skipped (resume), a file written with other
        settings is refused (ValueError).
    seed : int
    executor : concurrent.futures.Executor, optional
        Spreads the runs (one job per run; a process pool for real work). Default: in this process.
    progress : bool, optional
        tqdm bar over the runs (default: when stderr is a terminal).
    command : str, optional
        The command line, stored in the file.

    Returns
    -------
    dict
        ``{"protocol", "dataset", "seed", "records": {"L=10/r=0": {...}}, "wall_seconds", "command"}``; each record
        has ``depth, run, lr, epoch_budget, epochs_run, reached_stop, epoch_loss`` (mean mini-batch loss of the last
        epoch), ``train_loss`` (whole training set), ``train_acc, test_acc, alignment`` (final :math:`A_l`,
        ``l = 1..L``), ``alignment_init, peak`` (1-based argmax), ``seconds``; a diverged run has
        ``diverged=True`` and ``peak=None``. ``wall_seconds`` adds up the wall time of every call that added runs.

    Notes
    -----
    Cost: one run is ``epochs x ceil(n / batch)`` SGD steps of a width-``N`` depth-``L`` MLP, about
    ``0.028 L`` s per epoch of the 1437 digits at width 100 on one busy core, plus two alignment evaluations
    (``layer_alignment`` on ``align_samples`` rows, 6 s at L = 50).

    Examples
    --------
    >>> doc = equilibrium_experiment("smoke", runs=2)
    >>> sorted(doc["records"])[:2], doc["records"]["L=3/r=0"]["peak"] in (1, 2, 3)
    (['L=3/r=0', 'L=3/r=1'], True)
    """
    p = PRESETS[check_choice(protocol, tuple(PRESETS), "protocol")] if isinstance(protocol, str) else protocol
    if not isinstance(p, EHProtocol):
        raise ValueError(f"protocol must be a preset name or an EHProtocol, got {protocol!r}")
    check_choice(dataset, DATASETS, "dataset")
    runs = check_int(runs, "runs")
    seed = check_int(seed, "seed", 0)
    doc = {"protocol": p.settings(), "dataset": dataset, "seed": seed, "records": {}, "wall_seconds": 0.0}
    if out is not None and os.path.exists(out):
        with open(out) as fh:
            old = json.load(fh)
        same = {k: old.get(k) for k in ("protocol", "dataset", "seed")}
        want = json.loads(json.dumps({k: doc[k] for k in ("protocol", "dataset", "seed")}))
        # tables may differ in depths (a run restricted to some depths): compare the shared depths only
        ot, wt = same["protocol"].pop("table", {}), want["protocol"].pop("table")
        if same != want or any(ot[k] != v for k, v in wt.items() if k in ot):
            raise ValueError(f"out {out!r} holds runs with other settings; give another file to start afresh")
        doc = old
        doc["protocol"]["table"] = {**ot, **wt}
    _note_command(doc, command)
    X, y, Xt, yt = load_dataset(dataset, seed=seed)
    if p.max_train is not None:
        X, y = X[: p.max_train], y[: p.max_train]
    todo = [(L, r) for L in p.depths for r in range(runs) if _key(L, r) not in doc["records"]]
    jobs = [dict(protocol=p, depth=L, run=r, seed=seed, data=(X, y, Xt, yt)) for L, r in todo]
    _run_jobs(jobs, doc, out, lambda job, rec: _key(rec["depth"], rec["run"]), f"equilibrium {dataset}", executor,
              progress)  # fmt: skip
    return doc


@dataclass(frozen=True)
class EHSummary:
    r"""What the runs of :func:`equilibrium_experiment` carry about the Equilibrium Hypothesis.

    Attributes
    ----------
    depths : ndarray of int
    n_runs, n_diverged : ndarray of int
        Finished (non-diverged) and diverged runs per depth.
    peaks : ndarray, shape (runs, depths)
        Trained peak of every run (NaN for a diverged or missing run).
    peak_mean, peak_sd : ndarray
        Mean and standard deviation (ddof=1) over the runs of each depth.
    train_loss, test_acc, test_acc_sd, reached_stop, epochs_run : ndarray
        Per-depth means (``reached_stop``: fraction of runs that reached the stop loss).
    predicted, predicted_cont : ndarray
        :math:`l^*(L)` and its continuous value (:func:`meanfield.peak_layer`, ReLU at (2, 0), eps = 0.5; for a
        residual protocol the residual network's, NaN where ``peak_layer`` has no residual prediction).
    slope, slope_ci : float, tuple
        Free slope of :math:`\log \bar l = a\log L + C` fitted to the per-depth means, and its percentile
        bootstrap interval (runs resampled).
    intercept35, intercept35_ci : float, tuple
        The fixed-3/5 intercept C of Lou et al. 2022, Fig. 3, and its interval.
    predicted_slope, predicted_intercept35 : float
        The same fits of :math:`l^*(L)` over the same depths (0.716 over L = 10..100).
    level : float
        Coverage of the intervals.
    profiles : tuple of ndarray
        Per depth the run-mean of :math:`A_l/\max_l A_l` (Lou et al. 2022, Fig. 3's colour scale).
    verdict : str
    """

    depths: np.ndarray
    n_runs: np.ndarray
    n_diverged: np.ndarray
    peaks: np.ndarray
    peak_mean: np.ndarray
    peak_sd: np.ndarray
    train_loss: np.ndarray
    test_acc: np.ndarray
    test_acc_sd: np.ndarray
    reached_stop: np.ndarray
    epochs_run: np.ndarray
    predicted: np.ndarray
    predicted_cont: np.ndarray
    slope: float
    slope_ci: tuple
    intercept35: float
    intercept35_ci: tuple
    predicted_slope: float
    predicted_intercept35: float
    level: float
    profiles: tuple
    verdict: str

    def table(self) -> list[list]:
        """Rows ``[L, runs, mean peak, sd, l*(L), train loss, test acc, reached stop]``."""
        return [
            [int(L), int(n), float(m), float(s), float(q), float(tl), float(a), float(st)]
            for L, n, m, s, q, tl, a, st in zip(
                self.depths,
                self.n_runs,
                self.peak_mean,
                self.peak_sd,
                self.predicted,
                self.train_loss,
                self.test_acc,
                self.reached_stop,
                strict=True,
            )  # fmt: skip
        ]


def _fits(depths, peaks):
    """[free slope, fixed-3/5 intercept] of the per-depth mean peaks (NaN when a depth has no run)."""
    if peaks.shape[0] == 0 or not np.all(np.any(np.isfinite(peaks), axis=0)):
        return np.array([np.nan, np.nan])
    m = np.nanmean(peaks, axis=0)
    if not np.all(np.isfinite(m)):
        return np.array([np.nan, np.nan])
    free = scaling_fit(depths, m).slope if depths.size >= 3 else np.nan
    return np.array([free, scaling_fit(depths, m, slope=0.6).intercept if depths.size >= 2 else np.nan])


def _residual_prediction(depths, residual):
    """l*(L) of a residual ReLU network (beta = 1 or 1/sqrt(L)), where :func:`meanfield.peak_layer` has it; NaN
    (with a warning) where this version of it refuses residual networks."""
    import inspect
    import warnings

    from ..equilibrium import peak_layer
    from ..network import Network

    if "residual_scaling" not in inspect.signature(peak_layer).parameters:
        warnings.warn("this meanfield.peak_layer has no residual prediction: predicted l*(L) is NaN", stacklevel=3)
        nan = np.full(depths.size, np.nan)
        return nan, nan
    scaling = "fixed" if residual == "1" else "inverse_sqrt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pl = peak_layer(Network(int(depths.max()), residual=1.0), depths, residual_scaling=scaling)
    return np.asarray(pl.l_star, dtype=float), np.asarray(pl.l_cont)


def summarize_equilibrium(doc, level=0.95, n_boot=1000, seed=0) -> EHSummary:
    r"""Per-depth statistics, the scaling fits with bootstrap intervals, and the verdict on the 3/5 law.

    Parameters
    ----------
    doc : dict or str
        What :func:`equilibrium_experiment` returned, or its JSON file.
    level : float
        Coverage of the percentile intervals.
    n_boot : int
        Bootstrap resamples: whole runs are resampled (row ``r`` = run ``r`` of every depth; the runs are
        independent, so the rows are i.i.d.) and both fits are redone on the resampled per-depth means.
    seed : int
        Seed of the resampling.

    Returns
    -------
    EHSummary

    Notes
    -----
    The verdict compares the free slope's interval with the slope of the prediction :math:`l^*(L)` over the same
    depths (Lou et al. 2022, Cor. 1 with the corrected constants of :func:`meanfield.peak_layer`; 0.716 over
    L = 10..100, not the asymptotic 3/5), and says whether the 3/5 law's own slope lies in it.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> recs = {f"L={L}/r={r}": {"depth": L, "run": r, "peak": int(round(0.6 * L ** 0.7)) + int(rng.integers(2)),
    ...         "diverged": False, "train_loss": 0.1, "test_acc": 0.9, "reached_stop": True, "epochs_run": 5,
    ...         "alignment": list(np.ones(L))} for L in (10, 20, 40, 80) for r in range(5)}
    >>> s = summarize_equilibrium({"records": recs}, n_boot=200)
    >>> bool(s.slope_ci[0] < s.slope < s.slope_ci[1])
    True
    """
    from ..equilibrium import peak_layer
    from ..network import Network

    doc, recs, depths = _records(doc)
    runs = max(int(r["run"]) for r in recs) + 1
    peaks = np.full((runs, depths.size), np.nan)
    col = {int(L): j for j, L in enumerate(depths)}
    per = {int(L): [] for L in depths}
    for r in recs:
        per[int(r["depth"])].append(r)
        if not r.get("diverged") and r.get("peak") is not None:
            peaks[int(r["run"]), col[int(r["depth"])]] = r["peak"]
    ok = {L: [r for r in v if not r.get("diverged")] for L, v in per.items()}

    def mean_of(key):
        return np.array([np.mean([float(r[key]) for r in ok[L]]) if ok[L] else np.nan for L in depths])

    n_runs = np.array([len(ok[L]) for L in depths])
    has = np.any(np.isfinite(peaks), axis=0)
    peak_mean = np.array([np.nanmean(c) if h else np.nan for c, h in zip(peaks.T, has, strict=True)])
    if True:
        peak_sd = np.array([np.std(c[np.isfinite(c)], ddof=1) if np.sum(np.isfinite(c)) > 1 else np.nan
                            for c in peaks.T])  # fmt: skip
    acc_sd = np.array([np.std([r["test_acc"] for r in ok[L]], ddof=1) if len(ok[L]) > 1 else np.nan for L in depths])
    profiles = tuple(
        np.mean([np.asarray(r["alignment"]) / np.max(r["alignment"]) for r in ok[L]], axis=0)
        if ok[L]
        else np.full(L, np.nan)
        for L in depths
    )
    residual = (doc.get("protocol") or {}).get("residual")
    if residual is None:
        pl = peak_layer(Network(int(depths.max())), depths)
        l_star, l_cont = np.asarray(pl.l_star, dtype=float), np.asarray(pl.l_cont)
    else:
        l_star, l_cont = _residual_prediction(depths, residual)
    # the fits use the depths with at least one finished run; the others are named in the verdict
    fit = np.any(np.isfinite(peaks), axis=0)
    fd, fpeaks = depths[fit], peaks[:, fit]
    fits_pred = _fits(fd, l_star[None, fit]) if np.all(np.isfinite(l_star)) else np.array([np.nan, np.nan])
    if fd.size >= 2 and runs >= 2:
        k = 0 if fd.size >= 3 else 1  # the free slope needs 3 depths
        b = bootstrap(lambda s: _fits(fd, s)[k:], fpeaks, n_boot=n_boot, seed=seed, level=level)
        pad = np.full(k, np.nan)
        est, low, high = (np.concatenate([pad, v]) for v in (b.estimate, b.low, b.high))
    else:
        est = _fits(fd, fpeaks) if fd.size else np.array([np.nan, np.nan])
        low = high = np.array([np.nan, np.nan])
    left = f" (no finished run at L = {depths[~fit].tolist()})" if not np.all(fit) else ""
    if fd.size >= 3 and np.all(np.isfinite([low[0], high[0]])):
        inside = low[0] <= fits_pred[0] <= high[0]
        pred = (
            f"{'contains' if inside else 'excludes'} the predicted local slope {fits_pred[0]:.3f} and "
            if np.isfinite(fits_pred[0])
            else "(no prediction for this network) "
        )
        verdict = (
            f"free slope {est[0]:.3f}, {level:.0%} CI [{low[0]:.3f}, {high[0]:.3f}] over L = {fd.min()}.."
            f"{fd.max()}{left}: it {pred}{'contains' if low[0] <= 0.6 <= high[0] else 'excludes'} 3/5; fixed-3/5 "
            f"intercept {est[1]:.3f} [{low[1]:.3f}, {high[1]:.3f}] vs predicted {fits_pred[1]:.3f}"
        )
    else:
        verdict = f"too few depths or runs for a slope interval (needs >= 3 depths and >= 2 runs){left}"
    return EHSummary(
        depths=depths, n_runs=n_runs, n_diverged=np.array([len(per[L]) - len(ok[L]) for L in depths]), peaks=peaks,
        peak_mean=peak_mean, peak_sd=peak_sd, train_loss=mean_of("train_loss"), test_acc=mean_of("test_acc"),
        test_acc_sd=acc_sd, reached_stop=mean_of("reached_stop"), epochs_run=mean_of("epochs_run"),
        predicted=l_star, predicted_cont=l_cont, slope=float(est[0]),
        slope_ci=(float(low[0]), float(high[0])), intercept35=float(est[1]), intercept35_ci=(float(low[1]),
        float(high[1])), predicted_slope=float(fits_pred[0]), predicted_intercept35=float(fits_pred[1]),
        level=level, profiles=profiles, verdict=verdict,
    )  # fmt: skip
