"""The dispersion ``E[theta^2] / E[theta]^2`` estimated from a sample (Seleznova & Kutyniok 2022, App. C.3)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, check_int, check_seed, real_array
from ..stats import bootstrap, stderr

__all__ = ["DispersionEstimate", "estimate"]

FORMS = ("corrected", "published")


@dataclass(frozen=True)
class DispersionEstimate:
    """Estimates of ``E[theta^2]/E[theta]^2`` from a sample.

    Attributes
    ----------
    ratio : float
        Leave-one-out ratio estimator of Seleznova & Kutyniok 2022, App. C.3, with the corrected prefactor
        ``1/N`` (or the published ``1/(N - 2)`` if requested).
    stderr : float
        Bootstrap standard error of ``ratio``.
    naive : float
        ``mean(theta^2) / mean(theta)^2``.
    naive_stderr : float
        Delta-method standard error of ``naive``.
    n : int
        Sample size.
    """

    ratio: float
    stderr: float
    naive: float
    naive_stderr: float
    n: int


def _loo_ratio(t, prefactor_n):
    """Leave-one-out ratio estimator along the last axis (``nan`` where a denominator is not positive)."""
    N = t.shape[-1]
    S = t.sum(axis=-1, keepdims=True)
    Q = (t * t).sum(axis=-1, keepdims=True)
    den = ((S - t) ** 2 - (Q - t * t)) / ((N - 1) * (N - 2))
    ok = np.all(den > 0, axis=-1)
    safe = np.where(den > 0, den, 1.0)
    return np.where(ok, np.sum(t * t / safe, axis=-1) / prefactor_n, np.nan)


def estimate(thetas, n_boot=500, seed=None, form="corrected") -> DispersionEstimate:
    """Estimate the dispersion ``E[theta^2]/E[theta]^2`` from i.i.d. draws (Seleznova & Kutyniok 2022, App. C.3).

    Parameters
    ----------
    thetas : array_like
        1-d sample ``theta_1..theta_N`` (``N >= 3``), finite and positive-mean.
    n_boot : int
        Bootstrap replicates for the standard error (``>= 2``; :func:`meanfield.stats.bootstrap`).
    seed : None, int or numpy.random.SeedSequence
        Seed of the bootstrap resampling.
    form : {"corrected", "published"}
        Prefactor ``1/N`` (corrected) or the published ``1/(N - 2)``.

    Returns
    -------
    DispersionEstimate

    Notes
    -----
    ``r = (1/N) sum_i theta_i^2 / {[(sum_{j != i} theta_j)^2 - sum_{j != i} theta_j^2] / ((N - 1)(N - 2))}``:
    numerator and denominator use disjoint samples and the denominator is an unbiased estimator of
    ``E[theta]^2``. The published estimator (App. C.3) has the prefactor ``1/(N - 2)``; the paper's own expectation
    of it gives ``N/(N - 2) mu_2/mu_1^2``, so it is biased by the factor ``N/(N-2)``, and ``1/N`` removes that.
    Even with ``1/N`` it is only first-order unbiased (Jensen on ``1/denominator``). The bootstrap standard error
    resamples the whole estimator; ``naive_stderr`` is the influence-function error of the naive ratio,
    ``psi_i = theta_i^2/mu_1^2 - 2 mu_2 theta_i / mu_1^3``.

    Examples
    --------
    >>> e = estimate([1.0, 2.0, 3.0, 4.0], n_boot=10, seed=0)
    >>> round(e.ratio, 14), e.naive
    (1.75979283874021, 1.2)
    >>> round(estimate([1.0, 2.0, 3.0, 4.0], n_boot=10, form="published").ratio, 14)
    3.51958567748041
    """
    t = real_array(thetas, "thetas")
    seed = check_seed(seed)
    if t.ndim != 1 or t.size < 3:
        raise ValueError(f"thetas must be a 1-d sample of size >= 3, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("thetas must be finite")
    if not t.mean() > 0:
        raise ValueError("thetas must have a positive mean")
    n_boot = check_int(n_boot, "n_boot", 2)
    check_choice(form, FORMS, "form")
    N = t.size
    pref = N if form == "corrected" else N - 2
    ratio = float(_loo_ratio(t, pref))
    if not np.isfinite(ratio):
        raise ValueError(
            "thetas give a non-positive leave-one-out estimate of E[theta]^2; the estimator needs a "
            "sample whose pairwise products are mostly positive"
        )
    boot = bootstrap(lambda s: _loo_ratio(s, pref), t, n_boot, seed)
    m1, m2 = t.mean(), (t * t).mean()
    psi = t * t / m1**2 - 2 * m2 * t / m1**3
    return DispersionEstimate(ratio=ratio, stderr=boot.stderr, naive=float(m2 / m1**2),
                              naive_stderr=stderr(psi, "thetas"), n=N)  # fmt: skip
