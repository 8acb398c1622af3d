r"""Statistics shared by several topics: log-log scaling fits with standard errors."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._checks import check_real

__all__ = ["ScalingFit", "scaling_fit"]


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
    x = np.asarray(depths, dtype=np.float64).ravel()
    y = np.asarray(layers, dtype=np.float64).ravel()
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
