"""Dispersion of the NTK in the limit of infinite depth and width, ``L/M -> lambda`` (Seleznova & Kutyniok 2022).

:func:`dispersion_limit` evaluates the limit of ``E[Theta^2] / E[Theta]^2`` in the three phases of a ReLU network
with ``sigma_b = 0`` (ordered ``sigma_w2 < 2``, edge of chaos ``sigma_w2 = 2``, chaotic ``sigma_w2 > 2``), either
corrected (the default, derived here) or as published (Thm. 3.1); :func:`dispersion_limit_expr` gives the same
limits as sympy expressions.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from .._checks import check_choice, check_real, finite_array

__all__ = ["dispersion_limit", "dispersion_limit_expr"]

_PHASES = {"ordered": "ordered", "eoc": "eoc", "edge": "eoc", "edge_of_chaos": "eoc", "chaotic": "chaotic"}
_FORMS = ("corrected", "published")


def _phase(phase_or_sigma_w2) -> str:
    """The phase of a ReLU network with ``sigma_b = 0``: ordered below ``sigma_w2 = 2``, EOC at 2, chaotic above."""
    if isinstance(phase_or_sigma_w2, str):
        key = phase_or_sigma_w2.lower().replace("-", "_")
        if key not in _PHASES:
            raise ValueError(
                f"phase must be one of 'ordered', 'eoc', 'chaotic' or a sigma_w2 > 0, got {phase_or_sigma_w2!r}"
            )
        return _PHASES[key]
    sw2 = check_real(phase_or_sigma_w2, "sigma_w2", low=0, low_open=True)
    return "ordered" if sw2 < 2.0 else ("eoc" if sw2 == 2.0 else "chaotic")


@cache
def _symbols():
    import sympy as sp

    return sp.Symbol("lam", positive=True), sp.Symbol("alpha0", positive=True)


@cache
def dispersion_limit_expr(phase, form="corrected"):
    """The infinite-depth-and-width dispersion limit as a sympy expression in ``lam`` and ``alpha0``.

    Parameters
    ----------
    phase : {"ordered", "eoc", "chaotic"}
        Phase of the ReLU network (``sigma_w2 <, =, > 2``).
    form : {"corrected", "published"}
        ``"corrected"``: the true limit (derived here, see Notes); ``"published"``: Seleznova & Kutyniok 2022,
        Thm. 3.1 as printed, eqs. (8) and (9) (eq. (9) is identical to the appendix form, eq. (41)).

    Returns
    -------
    sympy.Expr
        Expression in the positive symbols ``lam`` (= L/M) and ``alpha0`` (= n_0/M); the chaotic and ordered
        limits do not depend on ``alpha0``.

    Notes
    -----
    Corrected: ``D_chaos = [e^{5 lam}(9 lam^2 + 6 lam - 1) + e^{-lam}] / (27 lam^2)``,
    ``D_EOC = (I_WW/alpha0^2 + 2 I_Wb/alpha0 + I_bb) / (1 + 1/alpha0)^2`` with ``I_WW = D_chaos``,
    ``I_Wb = e^{-lam}(15 lam e^{6 lam} - 45 lam e^{lam} + 11 e^{6 lam} - 36 e^{lam} + 25)/(225 lam^2)``,
    ``I_bb = 2(e^{5 lam} - 1)/(25 lam^2) - 2/(5 lam)`` (the bias-only limit, eq. (34), correct in the paper).
    These are derived here as the continuum limit of the exact finite-width moments of
    :func:`~meanfield.dispersion.ntk_moments` (``form="corrected"``), to which those moments converge at rate
    ``1/M``. Published: ``D_chaos = e^{5 lam}/(2 lam) (1 - (1 - e^{-4 lam})/(4 lam))`` (eq. (8)) and eq. (9).
    The published chaotic and EOC limits are too low (by 27 % at ``lam = 1`` in the chaotic phase, 24 % at the
    EOC with ``alpha0 = 1``; they agree to first order in ``lam``): they inherit the same-layer coupling of
    Lemma A.4, which misses an ``O(1/n)`` term per layer (see :func:`~meanfield.dispersion.ntk_moments`). Both
    grow like ``e^{5 lam}`` in the chaotic phase and at the EOC; the EOC is smaller by the factor
    ``(1 + alpha0)^{-2}``, not by a slower rate as the theorem's wording says.
    Ordered phase: 1 in both forms (eq. (10), correct). The closed forms are of type 0/0 at ``lam = 0``; their
    limit is 1.

    Examples
    --------
    >>> import sympy as sp
    >>> lam, a0 = sp.symbols("lam alpha0", positive=True)
    >>> sp.series(dispersion_limit_expr("chaotic"), lam, 0, 3).removeO()
    47*lam**2/6 + 11*lam/3 + 1
    """
    import sympy as sp

    phase = _phase(phase)
    check_choice(form, _FORMS, "form")
    lam, a0 = _symbols()
    E = sp.exp
    if phase == "ordered":
        return sp.Integer(1)
    if form == "corrected":
        ww = (E(5 * lam) * (9 * lam**2 + 6 * lam - 1) + E(-lam)) / (27 * lam**2)
        if phase == "chaotic":
            return ww
        wb = E(-lam) * (15 * lam * E(6 * lam) - 45 * lam * E(lam) + 11 * E(6 * lam) - 36 * E(lam) + 25) / (225 * lam**2)
        bb = 2 * (E(5 * lam) - 1) / (25 * lam**2) - sp.Rational(2, 5) / lam
        return (ww / a0**2 + 2 * wb / a0 + bb) / (1 + 1 / a0) ** 2
    if phase == "chaotic":
        return E(5 * lam) / (2 * lam) * (1 - (1 - E(-4 * lam)) / (4 * lam))
    return (
        E(5 * lam) * (1 / (2 * lam) + (2 * a0**2 - 8 * a0) / (25 * lam**2))
        + (E(lam) - E(5 * lam)) * (1 - 4 * a0) / (8 * lam**2)
        + (2 * a0 / (5 * lam)) * ((4 - a0) / (5 * lam) - 1 - a0)
    ) / (1 + a0) ** 2


@cache
def _limit_functions(phase, form):
    """numpy and mpmath evaluators of the closed form."""
    import sympy as sp

    lam, a0 = _symbols()
    expr = dispersion_limit_expr(phase, form)
    return sp.lambdify((lam, a0), expr, "numpy"), sp.lambdify((lam, a0), expr, "mpmath")


_SMALL_LAMBDA = 0.05


def _positive_array(x, name: str) -> np.ndarray:
    arr = finite_array(x, name)
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be finite and > 0, got {x!r}")
    return arr


def dispersion_limit(phase_or_sigma_w2, lam, alpha0=1.0, form="corrected"):
    """Dispersion ``E[Theta^2]/E[Theta]^2`` in the limit ``M, L -> inf`` with ``L/M -> lam``.

    The limit of Seleznova & Kutyniok 2022, Thm. 3.1, for a ReLU network with ``sigma_b = 0``, constant hidden
    width ``M``, input dimension ``n_0 = alpha0 M`` and a unit input; corrected by default.

    Parameters
    ----------
    phase_or_sigma_w2 : {"ordered", "eoc", "chaotic"} or float
        The phase, or ``sigma_w2 > 0`` (ordered below 2, EOC at exactly 2, chaotic above).
    lam : float or array_like
        Depth-to-width ratio ``lambda = L/M > 0``.
    alpha0 : float or array_like
        ``n_0/M > 0`` (EOC only). For an input with ``||x^0||^2 != 1`` pass ``n_0/(M ||x^0||^2)``: the EOC
        limit depends on the input norm only through this combination (derived here; the theorem assumes unit
        inputs, and the finite-width moments at ``M = L = 2e4`` agree with it to ``O(1/M)``).
    form : {"corrected", "published"}
        ``"corrected"`` (default): the true limit (derived here, see :func:`dispersion_limit_expr`);
        ``"published"``: Thm. 3.1 as printed, eqs. (8), (9), (10), kept to reproduce the paper's figures.

    Returns
    -------
    float or ndarray
        The limit, broadcast over ``lam`` and ``alpha0``; ``inf`` where it exceeds the float64 range.

    Notes
    -----
    See :func:`dispersion_limit_expr` for the formulas and for what is wrong with the published ones. For
    ``lam >= 0.05`` the closed form is evaluated in float64 (relative error ~ 1e-16/lam^2); below, it cancels
    catastrophically (``1/lam^2`` terms), so it is evaluated in mpmath with ``30 + 2 log10(1/lam)`` digits, as
    are large ``lam`` where an intermediate exponential overflows (the limit itself is ``inf`` beyond
    ``lam ~ 142``). The limits as ``lam -> 0`` are 1 with slopes ``11/3`` (chaotic) and
    ``(5 alpha0^2 + 11 alpha0 + 11)/(3 (1 + alpha0)^2)`` (EOC), in both forms.

    Examples
    --------
    >>> round(dispersion_limit("chaotic", 1.0), 10)
    76.968596551
    >>> round(dispersion_limit(2.5, 1.0, form="published"), 10)
    55.994719892
    >>> dispersion_limit("eoc", [0.5, 1.0], alpha0=1.0).round(6)
    array([ 4.252806, 30.505833])
    >>> dispersion_limit(1.5, 3.0)
    1.0
    """
    phase = _phase(phase_or_sigma_w2)
    check_choice(form, _FORMS, "form")
    lam_arr = _positive_array(lam, "lam")
    a0_arr = _positive_array(alpha0, "alpha0")
    scalar = lam_arr.ndim == 0 and a0_arr.ndim == 0
    lam_b, a0_b = np.broadcast_arrays(lam_arr, a0_arr)
    if phase == "ordered":
        out = np.ones(lam_b.shape)
    else:
        fnum, fmp = _limit_functions(phase, form)
        out = np.empty(lam_b.shape)
        big = lam_b >= _SMALL_LAMBDA
        with np.errstate(over="ignore", invalid="ignore"):
            out[big] = fnum(lam_b[big], a0_b[big])
        import mpmath

        for idx in np.ndindex(lam_b.shape):
            if big[idx] and np.isfinite(out[idx]):
                continue
            lv, av = float(lam_b[idx]), float(a0_b[idx])
            with mpmath.workdps(30 + 2 * max(0, int(math.ceil(-math.log10(lv))))):
                val = fmp(mpmath.mpf(lv), mpmath.mpf(av))
            out[idx] = float(val) if val < mpmath.mpf(np.finfo(float).max) else math.inf
    return float(out) if scalar else out
