r"""Statistics shared by several topics: standard errors, the one bootstrap, log-log scaling fits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._checks import check_int, check_real, check_seed, finite_array, real_array

__all__ = ["Bootstrap", "ScalingFit", "bootstrap", "scaling_fit", "stderr"]


@dataclass(frozen=True)
class Bootstrap:
    """A bootstrap estimate: the statistic on the full sample, its bootstrap standard error and, when a ``level``
    was asked for, the percentile confidence interval ``[low, high]`` (None otherwise)."""

    estimate: np.ndarray | float
    stderr: np.ndarray | float
    low: np.ndarray | float | None = None
    high: np.ndarray | float | None = None


def stderr(values, name: str = "values") -> np.ndarray | float:
    """Standard error of the mean over the leading axis, ``std(ddof=1) / sqrt(n)`` (needs ``n >= 2``).

    Also the delta-method standard error of a smooth statistic when ``values`` are its influence values.

    >>> stderr(np.array([1.0, 2.0, 3.0, 4.0]))
    0.6454972243679028
    """
    a = real_array(values, name)
    if a.ndim == 0 or a.shape[0] < 2:
        raise ValueError(f"a standard error needs at least 2 {name} (n_nets >= 2), got shape {a.shape}")
    se = a.std(axis=0, ddof=1) / np.sqrt(a.shape[0])
    return se if se.ndim else float(se)


def bootstrap(statistic, samples, n_boot: int = 1000, seed=0, level=None) -> Bootstrap:
    """Bootstrap (over networks) estimate and standard error of any statistic of per-network samples.

    Parameters
    ----------
    statistic : callable
        ``statistic(samples) -> float or ndarray``, called on the full sample and on every resample.
    samples : ndarray or dict of ndarray
        Per-network values (leading axis = networks), or a dict of such arrays resampled together (so statistics
        that combine several quantities of the same networks keep their correlations).
    n_boot : int
        Number of bootstrap resamples (>= 2).
    seed : None, int or numpy.random.SeedSequence
        Seed of the resampling (``numpy.random.default_rng(seed)``).
    level : float, optional
        Also return the percentile interval of this coverage in (0, 1): the ``(1 - level)/2`` and
        ``(1 + level)/2`` quantiles of the finite resampled statistics (Efron & Tibshirani 1993, ch. 13).

    Returns
    -------
    Bootstrap
        ``estimate = statistic(samples)`` and ``stderr`` = the standard deviation (``ddof=1``) over the resamples
        whose statistic is finite (a resample can make a ratio's denominator vanish).

    Examples
    --------
    >>> b = bootstrap(lambda t: t.mean(), np.arange(10.0), n_boot=200, seed=1)
    >>> b.estimate, bool(0.5 < b.stderr < 1.5)
    (4.5, True)
    """
    if not callable(statistic):
        raise ValueError("statistic must be a callable of the samples")
    n_boot = check_int(n_boot, "n_boot", 2)
    if level is not None:
        level = check_real(level, "level", low=0.0, high=1.0, low_open=True, high_open=True)
    arrays = samples if isinstance(samples, dict) else {None: real_array(samples, "samples")}
    if any(np.ndim(a) == 0 for a in arrays.values()):
        raise ValueError("samples must be an array (or a dict of arrays) with one entry per sample along axis 0")
    n = next(iter(arrays.values())).shape[0]
    rng = np.random.default_rng(check_seed(seed))
    estimate = np.asarray(statistic(samples), dtype=np.float64)
    reps = np.empty((n_boot,) + estimate.shape)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        resample = {q: a[idx] for q, a in arrays.items()}
        reps[b] = statistic(resample if isinstance(samples, dict) else resample[None])
    finite = np.all(np.isfinite(reps.reshape(n_boot, -1)), axis=1)
    if level is not None and not finite.any():
        raise ValueError("no bootstrap resample gave a finite statistic; the interval does not exist")
    se = reps[finite].std(axis=0, ddof=1)
    low = high = None
    if level is not None:
        low, high = np.quantile(reps[finite], [(1 - level) / 2, (1 + level) / 2], axis=0)
        low, high = (low, high) if np.ndim(low) else (float(low), float(high))
    return Bootstrap(estimate if estimate.ndim else float(estimate), se if se.ndim else float(se), low, high)


@dataclass(frozen=True)
class ScalingFit:
    r"""Least-squares fit :math:`\log l = a\log L + C`.

    Attributes
    ----------
    slope, intercept : float
        a and C (natural logarithms).
    slope_stderr, intercept_stderr : float
        Standard errors (0 for a fixed slope's ``slope_stderr``).
    fixed : bool
        True when the slope was fixed.
    n : int
        Number of points.
    """

    slope: float
    intercept: float
    slope_stderr: float
    intercept_stderr: float
    fixed: bool
    n: int

    @property
    def prefactor(self) -> float:
        """:math:`e^C`, so that :math:`l \\approx e^C L^a`."""
        return math.exp(self.intercept)


def scaling_fit(depths, layers, slope=None):
    r"""Fit :math:`\log l = a\log L + C` by least squares, with a free or a fixed slope.

    Parameters
    ----------
    depths : array_like
        Depths L (> 0).
    layers : array_like
        Layers l (> 0), same length.
    slope : float, optional
        Fix the slope (``0.6`` is the procedure of Lou et al. 2022, Fig. 3); default: fit it.

    Returns
    -------
    ScalingFit

    Notes
    -----
    Ordinary least squares on the logarithms. Free slope (n >= 3): the usual standard errors from the residual
    variance with n - 2 degrees of freedom (as :func:`scipy.stats.linregress`). Fixed slope a (n >= 2):
    :math:`C = \mathrm{mean}(\log l - a\log L)` with standard error :math:`\mathrm{sd}/\sqrt n`, the fit of
    Lou et al. 2022, sec. 3.4 and Fig. 3 ("the constant C that minimizes the squared error").

    Examples
    --------
    >>> L = np.arange(10, 101, 10)
    >>> l_star = [5, 9, 12, 14, 17, 19, 21, 23, 25, 27]   # meanfield.peak_layer(Network(100), L).l_star
    >>> round(scaling_fit(L, l_star, slope=0.6).intercept, 3)
    0.452
    """
    x = finite_array(depths, "depths", ndim=(1,))
    y = finite_array(layers, "layers", ndim=(1,))
    if x.shape != y.shape:
        raise ValueError(f"depths and layers must have the same length, got {x.size} and {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))) or np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("depths and layers must be finite and > 0")
    lx, ly = np.log(x), np.log(y)
    n = x.size
    if slope is not None:
        a = check_real(slope, "slope")
        if n < 2:
            raise ValueError(f"a fixed-slope fit needs at least 2 points, got {n}")
        r = ly - a * lx
        return ScalingFit(a, float(r.mean()), 0.0, float(r.std(ddof=1) / math.sqrt(n)), True, n)
    if n < 3:
        raise ValueError(f"a free-slope fit needs at least 3 points (for standard errors), got {n}")
    xm = lx.mean()
    sxx = float(np.sum((lx - xm) ** 2))
    if sxx == 0.0:
        raise ValueError("depths must not all be equal for a free-slope fit")
    a = float(np.sum((lx - xm) * (ly - ly.mean())) / sxx)
    c = float(ly.mean() - a * xm)
    res = ly - (a * lx + c)
    s2 = float(np.sum(res**2) / (n - 2))
    return ScalingFit(a, c, math.sqrt(s2 / sxx), math.sqrt(s2 * (1.0 / n + xm**2 / sxx)), False, n)
