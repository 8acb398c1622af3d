"""Dispersion of the neural tangent kernel of deep, finite ReLU networks (seed 004, ``ntk_dispersion.md``).

Setting (``ntk_dispersion.md`` sec. 1; seed 004, eqs. (3), (4), (6)): a fully connected ReLU network in standard
parameterization, ``W^l_ij ~ N(0, sigma_w2 / n_{l-1})``, biases initialized to zero (``sigma_b = 0``) but trained,
scalar linear output, widths ``n_0`` (input) ``.. n_{L-1}``. The diagonal NTK entry is

    Theta(x, x) = sum_{l=1}^{L} ||delta^l||^2 (||x^{l-1}||^2 + 1) = Theta_W + Theta_b,

and its *dispersion* is ``D = E[Theta^2] / E[Theta]^2`` (second moment over squared mean, ``D >= 1``).

What is here
------------
* :func:`ntk_moments` -- first and second moments of ``Theta_W``, ``Theta_b`` for any width profile, either exact
  (``method="exact"``, the scalar reduction of ``ntk_dispersion.md`` sec. 2.2b) or as published (``"paper"``,
  seed 004 Thm 3.2 with erratum E1). One O(L) dynamic program serves both; it is overflow-free.
* :func:`dispersion_limit`, :func:`dispersion_limit_expr` -- the infinite-depth-and-width limits (L/M -> lambda),
  corrected (default) or as published (seed 004 Thm 3.1), numerically and as sympy expressions.
* :func:`offdiagonal_mean_ratio`, :func:`offdiagonal_eq18`, :func:`offdiagonal_bounds` -- Thm 3.3.
* :func:`sample_ntk_diagonal` (fast diagonal sampler), :func:`sample_ntk_pair` (full networks, two inputs),
  :func:`gd_step_change` (one exact gradient-descent step, Thm 4.1), :func:`estimate` (App. C.3 estimator).
"""

from __future__ import annotations

import math
import numbers
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
from .._jit import njit

from ..finite.mlp import MLP
from ..network import Network
from ..nfa.measures import gd_step

__all__ = [
    "NTKMoments",
    "NTKSample",
    "NTKPairSample",
    "DispersionEstimate",
    "GDStepResult",
    "ntk_moments",
    "dispersion_limit",
    "dispersion_limit_expr",
    "offdiagonal_mean_ratio",
    "offdiagonal_eq18",
    "offdiagonal_bounds",
    "sample_ntk_diagonal",
    "sample_ntk_pair",
    "gd_step_change",
    "estimate",
]

_LOG2 = math.log(2.0)

# --------------------------------------------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------------------------------------------


def _check_widths(widths) -> np.ndarray:
    try:
        arr = np.asarray(widths, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"widths must be a sequence of integers >= 1 (n_0..n_(L-1)), got {widths!r}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("widths must be a non-empty 1-d sequence n_0..n_(L-1) of integers >= 1")
    if not np.all(np.isfinite(arr)) or np.any(arr < 1) or np.any(arr != np.round(arr)):
        bad = arr[~(np.isfinite(arr) & (arr >= 1) & (arr == np.round(arr)))][0]
        raise ValueError(f"widths must be integers >= 1, got {bad!r}")
    return arr


def _check_positive(value, name: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}") from None
    if not (np.isfinite(out) and out > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return out


def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_method(value, allowed, name="method"):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def _ldexp(m: float, k: float) -> float:
    """``m * 2**k`` with overflow to ``inf`` (never a warning)."""
    if m == 0.0:
        return 0.0
    try:
        return math.ldexp(m, int(k))
    except OverflowError:
        return math.copysign(math.inf, m)


def _log_scaled(m: float, k: float) -> float:
    return math.log(m) + k * _LOG2 if m > 0 else -math.inf


def _add_scaled(terms):
    """Sum of ``m_i * 2**k_i`` (m_i >= 0) as a (mantissa, exponent) pair without overflow."""
    kmax = max(k for m, k in terms if m != 0.0) if any(m != 0.0 for m, _ in terms) else 0
    return sum(_ldexp(m, k - kmax) for m, k in terms), kmax


# --------------------------------------------------------------------------------------------------------------
# finite-width moments: one dynamic program over layers, two tables of per-layer moments
# --------------------------------------------------------------------------------------------------------------

# factor kinds of one layer q in the product representation of a term of Theta: F = forward ratio
# ||x^q||^2/||x^{q-1}||^2, B = backward ratio, ONE = layer contributes nothing
_F, _B, _ONE = 0, 1, 2
_SELF = -1  # placeholder: the "before layer l" self-transition uses F for a weight term and ONE for a bias term

# state machines (rows: from-state, to-state, factor kind); see ntk_moments Notes
_EXACT_TRANS = np.array([[0, 0, _SELF], [0, 1, _B], [0, 2, _ONE], [1, 1, _B], [1, 2, _ONE], [2, 2, _F]], np.int64)
_PAPER_TRANS = np.array([[0, 0, _SELF], [0, 1, _B], [1, 1, _B]], np.int64)


def _exact_tables(n: np.ndarray, sw2: float):
    """Per-layer moments (layers q = 1..L-1) of the exact scalar law (ntk_dispersion.md sec. 2.2b)."""
    nq, npv = n[1:], n[:-1]
    c, cp = sw2 / nq, sw2 / npv
    e1 = np.stack([cp * nq / 2, c * (nq / 2 - 1), np.ones_like(nq)], axis=1)
    ff = cp * cp * nq * (nq + 5) / 4
    bb = c * c * (nq * nq + nq - 4) / 4
    fb = c * cp * nq * (nq - 1) / 4
    return e1, _second_table(e1, ff, bb, fb)


def _paper_tables(n: np.ndarray, sw2: float):
    """Per-layer moments assumed by seed 004 (Lemmas A.1, A.2, A.4; eqs. (24), (26))."""
    a = sw2 / 2
    nq, npv = n[1:], n[:-1]
    ratio = nq / npv
    e1 = np.stack([a * ratio, np.full_like(nq, a), np.ones_like(nq)], axis=1)
    ff = a * a * ratio * ratio * (1 + 5 / nq)
    bb = a * a * (1 + 5 / nq)
    fb = a * a * ratio * (1 + 1 / nq)
    return e1, _second_table(e1, ff, bb, fb)


def _second_table(e1, ff, bb, fb):
    e2 = np.empty((e1.shape[0], 3, 3))
    e2[:, _F, _F], e2[:, _B, _B], e2[:, _F, _B], e2[:, _B, _F] = ff, bb, fb, fb
    for k in range(3):
        e2[:, k, _ONE] = e1[:, k]
        e2[:, _ONE, k] = e1[:, k]
    return e2


@njit(cache=True)
def _renorm(arr, exps, idx):
    m = np.max(np.abs(arr))
    if m > 2.0**200 or (0.0 < m < 2.0**-200):
        k = math.frexp(m)[1]
        arr *= 2.0 ** (-k)
        exps[idx] += k


@njit(cache=True)
def _moment_dp(e1, e2, trans, x0sq, nstates):
    """Run the DP; return first-moment state vectors (2, S) and second-moment state matrices (3, S, S) as
    mantissas with base-2 exponents. Term types: 0 = weight term, 1 = bias term; pairs (W,W), (W,b), (b,b)."""
    S = nstates
    self_kind = np.array([_F, _ONE])
    v = np.zeros((2, S))
    v[0, 0] = x0sq
    v[1, 0] = 1.0
    ev = np.zeros(2)
    pairs = np.array([[0, 0], [0, 1], [1, 1]])
    V = np.zeros((3, S, S))
    V[0, 0, 0] = x0sq * x0sq
    V[1, 0, 0] = x0sq
    V[2, 0, 0] = 1.0
    eV = np.zeros(3)
    T = trans.shape[0]
    for q in range(e1.shape[0]):
        for t in range(2):
            w = np.zeros(S)
            for r in range(T):
                e = trans[r, 2] if trans[r, 2] >= 0 else self_kind[t]
                w[trans[r, 1]] += v[t, trans[r, 0]] * e1[q, e]
            v[t] = w
            _renorm(v[t], ev, t)
        for p in range(3):
            t1, t2 = pairs[p, 0], pairs[p, 1]
            W = np.zeros((S, S))
            for r1 in range(T):
                k1 = trans[r1, 2] if trans[r1, 2] >= 0 else self_kind[t1]
                for r2 in range(T):
                    k2 = trans[r2, 2] if trans[r2, 2] >= 0 else self_kind[t2]
                    W[trans[r1, 1], trans[r2, 1]] += V[p, trans[r1, 0], trans[r2, 0]] * e2[q, k1, k2]
            V[p] = W
            _renorm(V[p], eV, p)
    return v, ev, V, eV


@dataclass(frozen=True)
class NTKMoments:
    """First and second moments of the diagonal NTK entry ``Theta(x, x) = Theta_W + Theta_b`` at initialization.

    Moments that exceed the float64 range are ``inf`` (``0.0`` on underflow); their natural logarithms
    (``log_*`` fields) and the dispersion are always finite for valid input.

    Attributes
    ----------
    mean_w, mean_b : float
        ``E[Theta_W]``, ``E[Theta_b]``.
    second_w, second_b, cross_wb : float
        ``E[Theta_W^2]``, ``E[Theta_b^2]``, ``E[Theta_W Theta_b]``.
    mean, second : float
        ``E[Theta]`` and ``E[Theta^2] = E[Theta_W^2] + 2 E[Theta_W Theta_b] + E[Theta_b^2]``.
    dispersion : float
        ``E[Theta^2] / E[Theta]^2``.
    log_mean_w, log_mean_b, log_second_w, log_second_b, log_cross_wb, log_mean, log_second : float
        Natural logarithms of the moments.
    method : str
        ``"exact"`` or ``"paper"``.
    """

    mean_w: float
    mean_b: float
    second_w: float
    second_b: float
    cross_wb: float
    mean: float
    second: float
    dispersion: float
    log_mean_w: float
    log_mean_b: float
    log_second_w: float
    log_second_b: float
    log_cross_wb: float
    log_mean: float
    log_second: float
    method: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def ntk_moments(widths, sigma_w2, x0_norm2=1.0, method="exact") -> NTKMoments:
    """Moments of the diagonal NTK entry of a finite SP ReLU network with zero-initialized biases.

    Parameters
    ----------
    widths : sequence of int
        ``n_0, n_1, ..., n_{L-1}``: input dimension and the ``L - 1`` hidden widths (the output width is 1).
        The depth ``L`` is ``len(widths)``.
    sigma_w2 : float
        Weight variance ``sigma_w^2 > 0`` (weights ``N(0, sigma_w2 / fan_in)``); ``a = sigma_w2 / 2``.
    x0_norm2 : float
        Squared input norm ``||x^0||^2 > 0``.
    method : {"exact", "paper"}
        ``"exact"``: exact finite-width moments (``ntk_dispersion.md`` sec. 2.2b, not in seed 004).
        ``"paper"``: seed 004 Thm 3.2 as published, eqs. (11)-(15) with the cross term of eq. (13) corrected
        (erratum E1) and the ``O(M^{-3/2})`` terms dropped.

    Returns
    -------
    NTKMoments

    Notes
    -----
    Both methods evaluate ``E[Theta_x Theta_y]`` as a sum over pairs of terms ``||delta^l||^2 ||x^{l-1}||^2``
    (weight) or ``||delta^l||^2`` (bias), each a product of per-layer factors. A term is a walk through a small
    state machine over layers ``q = 1..L-1``; the expectation of a product of two walks factorizes over layers,
    so all ``O(L^2)`` pairs are summed by one O(L) dynamic program over pairs of states.

    ``"exact"`` uses the exact scalar law of ``(||x^q||^2, ||delta^q||^2)`` (sec. 2.2b): with
    ``K_q ~ Bin(n_q, 1/2)``, ``A_q ~ chi2(K_q)``, ``B_q ~ chi2(K_q - 1)``, ``C ~ chi2(1)``,
    ``X_q = (sigma_w2/n_{q-1}) X_{q-1} A_q``, ``f^2 = (sigma_w2/n_{L-1}) X_{L-1} C``,
    ``D_q = f^2/X_q + (sigma_w2/n_q) D_{q+1} B_q``. States: 0 = before the term's layer, 1 = in its backward
    segment, 2 = after the ``f^2/X_p`` injection (Euler identity ``sum_i x^p_i delta^p_i = f``); the final
    readout factor has ``E[C^2] = 3``. Dead layers (``K_q = 0``, probability ``2^{-n_q}``) are ignored, as in the
    paper: the result is exact up to a relative error ``O(L 2^{-min n})`` (negligible for widths >= 20).

    ``"paper"`` uses two states (before / after the term's layer) with the per-layer moments of Lemmas A.1, A.2
    and the same-layer coupling ``(1 + 1/n)`` of Lemma A.4; this reproduces eqs. (11), (12), (13, corrected),
    (14), (15) exactly. Eqs. (11), (12), (14) agree with ``"exact"``; (13) and (15) do not (errata E0, E6).

    Stabilization: the state vectors are rescaled by powers of two whenever they leave ``[2^-200, 2^200]``;
    the exponents are carried separately, so depth ``1e5`` in the chaotic phase (moments ~ ``1.5^(1e5)``) works and
    the dispersion keeps full precision.

    Examples
    --------
    >>> m = ntk_moments([3, 4, 5], 2.0)
    >>> [round(v, 12) for v in (m.mean_w, m.mean_b, m.second_w, m.second_b, m.dispersion)]
    [4.0, 3.0, 50.0, 15.5, 2.221088435374]
    >>> round(ntk_moments([100] * 50, 2.0).dispersion, 10)
    3.9322358272
    >>> round(ntk_moments([100] * 50, 2.0, method="paper").dispersion, 10)
    3.6413754981
    >>> big = ntk_moments([10**5] * 10**5, 3.0)
    >>> big.mean, round(big.dispersion, 4)
    (inf, 76.9549)
    """
    n = _check_widths(widths)
    sw2 = _check_positive(sigma_w2, "sigma_w2")
    x0sq = _check_positive(x0_norm2, "x0_norm2")
    _check_method(method, ("exact", "paper"))
    if method == "exact":
        e1, e2 = _exact_tables(n, sw2)
        trans, nstates = _EXACT_TRANS, 3
        c_last = sw2 / n[-1]
        fin, extra = np.array([1.0, 1.0, c_last]), 2.0 * c_last * c_last  # E[C] = 1, E[C^2] = 3
    else:
        e1, e2 = _paper_tables(n, sw2)
        trans, nstates = _PAPER_TRANS, 2
        fin, extra = np.array([1.0, 1.0]), 0.0
    v, ev, V, eV = _moment_dp(e1, e2, trans, x0sq, nstates)
    first = [(float(fin @ v[t]), float(ev[t])) for t in range(2)]
    second = [(float(fin @ V[p] @ fin + extra * V[p, -1, -1]), float(eV[p])) for p in range(3)]
    (mw, kw), (mb, kb) = first
    (mww, kww), (mwb, kwb), (mbb, kbb) = second
    mean = _add_scaled(first)
    sec = _add_scaled([(mww, kww), (2.0 * mwb, kwb), (mbb, kbb)])
    disp = _ldexp(sec[0] / mean[0] ** 2, sec[1] - 2 * mean[1])
    return NTKMoments(
        mean_w=_ldexp(mw, kw),
        mean_b=_ldexp(mb, kb),
        second_w=_ldexp(mww, kww),
        second_b=_ldexp(mbb, kbb),
        cross_wb=_ldexp(mwb, kwb),
        mean=_ldexp(*mean),
        second=_ldexp(*sec),
        dispersion=disp,
        log_mean_w=_log_scaled(mw, kw),
        log_mean_b=_log_scaled(mb, kb),
        log_second_w=_log_scaled(mww, kww),
        log_second_b=_log_scaled(mbb, kbb),
        log_cross_wb=_log_scaled(mwb, kwb),
        log_mean=_log_scaled(*mean),
        log_second=_log_scaled(*sec),
        method=method,
    )


# --------------------------------------------------------------------------------------------------------------
# infinite-depth-and-width limits (Thm 3.1 and its correction)
# --------------------------------------------------------------------------------------------------------------

_PHASES = {"ordered": "ordered", "eoc": "eoc", "edge": "eoc", "edge_of_chaos": "eoc", "chaotic": "chaotic"}


def _phase(phase_or_sigma_w2) -> str:
    if isinstance(phase_or_sigma_w2, str):
        key = phase_or_sigma_w2.lower().replace("-", "_")
        if key not in _PHASES:
            raise ValueError(
                f"phase must be one of 'ordered', 'eoc', 'chaotic' or a sigma_w2 > 0, got {phase_or_sigma_w2!r}"
            )
        return _PHASES[key]
    sw2 = _check_positive(phase_or_sigma_w2, "sigma_w2")
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
    form : {"corrected", "paper"}
        ``"corrected"``: ``ntk_dispersion.md`` sec. 2.3 (CORRECTED); ``"paper"``: seed 004 Thm 3.1 as published,
        eqs. (8) and (9) (eq. (9) is identical to eq. (41)).

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
    Published: ``D_chaos = e^{5 lam}/(2 lam) (1 - (1 - e^{-4 lam})/(4 lam))`` (eq. (8)) and eq. (9).
    Ordered phase: 1 in both forms (eq. (10)). The closed forms are of type 0/0 at ``lam = 0``; their limit is 1.

    Examples
    --------
    >>> import sympy as sp
    >>> lam, a0 = sp.symbols("lam alpha0", positive=True)
    >>> sp.series(dispersion_limit_expr("chaotic"), lam, 0, 3).removeO()
    47*lam**2/6 + 11*lam/3 + 1
    """
    import sympy as sp

    phase = _phase(phase)
    _check_method(form, ("corrected", "paper"), "form")
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


def dispersion_limit(phase_or_sigma_w2, lam, alpha0=1.0, form="corrected"):
    """Dispersion ``E[Theta^2]/E[Theta]^2`` in the limit ``M, L -> inf`` with ``L/M -> lam`` (seed 004 Thm 3.1).

    Parameters
    ----------
    phase_or_sigma_w2 : {"ordered", "eoc", "chaotic"} or float
        The phase, or ``sigma_w2 > 0`` (ordered below 2, EOC at exactly 2, chaotic above).
    lam : float or array_like
        Depth-to-width ratio ``lambda = L/M > 0``.
    alpha0 : float or array_like
        ``n_0/M > 0`` (EOC only; for ``||x^0||^2 != 1`` pass ``n_0/(M ||x^0||^2)``, erratum E8).
    form : {"corrected", "paper"}
        ``"corrected"`` (default): ``ntk_dispersion.md`` sec. 2.3 / 4.0; ``"paper"``: Thm 3.1 as published
        (Seleznova & Kutyniok 2022), kept to reproduce the paper's figures.

    Returns
    -------
    float or ndarray
        The limit, broadcast over ``lam`` and ``alpha0``; ``inf`` where it exceeds the float64 range.

    Notes
    -----
    See :func:`dispersion_limit_expr` for the formulas. For ``lam >= 0.05`` the closed form is evaluated in
    float64 (relative error ~ 1e-16/lam^2); below, it cancels catastrophically (``1/lam^2`` terms), so it is
    evaluated in mpmath with ``30 + 2 log10(1/lam)`` digits, as are large ``lam`` where an intermediate
    exponential overflows (the limit itself is ``inf`` beyond ``lam ~ 142``). The limits as ``lam -> 0`` are 1
    with slopes ``11/3`` (chaotic) and
    ``(5 alpha0^2 + 11 alpha0 + 11)/(3 (1 + alpha0)^2)`` (EOC), ``ntk_dispersion.md`` sec. 3.3.

    Examples
    --------
    >>> round(dispersion_limit("chaotic", 1.0), 10)
    76.968596551
    >>> round(dispersion_limit(2.5, 1.0, form="paper"), 10)
    55.994719892
    >>> dispersion_limit("eoc", [0.5, 1.0], alpha0=1.0).round(6)
    array([ 4.252806, 30.505833])
    >>> dispersion_limit(1.5, 3.0)
    1.0
    """
    phase = _phase(phase_or_sigma_w2)
    _check_method(form, ("corrected", "paper"), "form")
    lam_arr = np.asarray(lam, dtype=float)
    a0_arr = np.asarray(alpha0, dtype=float)
    if not np.all(np.isfinite(lam_arr)) or np.any(lam_arr <= 0):
        raise ValueError(f"lam must be finite and > 0, got {lam!r}")
    if not np.all(np.isfinite(a0_arr)) or np.any(a0_arr <= 0):
        raise ValueError(f"alpha0 must be finite and > 0, got {alpha0!r}")
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


# --------------------------------------------------------------------------------------------------------------
# off-diagonal entries (Thm 3.3)
# --------------------------------------------------------------------------------------------------------------


def _relu_corr(t):
    """Normalized ReLU correlation map r(t) = 2 E[phi(u) phi(v)] (arc-cosine kernel of order 1)."""
    t = np.clip(t, -1.0, 1.0)
    return (np.sqrt(1 - t * t) + t * np.pi / 2 + t * np.arcsin(t)) / np.pi


def _relu_dcorr(t):
    """g(t) = 2 E[phi'(u) phi'(v)] = (pi/2 + arcsin t)/pi (arc-cosine kernel of order 0)."""
    return (np.pi / 2 + np.arcsin(np.clip(t, -1.0, 1.0))) / np.pi


def _check_rho(rho0):
    rho = np.asarray(rho0, dtype=float)
    if not np.all(np.isfinite(rho)) or np.any(np.abs(rho) > 1):
        raise ValueError(f"rho0 must be in [-1, 1], got {rho0!r}")
    return rho


def _offdiag_sums(L, a, rho, weights_r):
    """sum_l c_l rho_{l-1} prod_{k=l}^{L-1} g(rho_{k-1}) (weights) and the bias sums, all divided by s^(L-1)."""
    s = max(a, 1.0)
    rhos = [rho]
    for _ in range(L - 1):
        rhos.append(_relu_corr(rhos[-1]))
    # walk l = L..1 keeping P_l = prod_{k=l}^{L-1} g(rho_{k-1}) and the factor a^{L-l}/s^{L-1}
    prod = np.ones_like(rho)
    num_w = np.zeros_like(rho)
    num_b = np.zeros_like(rho)
    den_b = 0.0
    for l in range(L, 0, -1):
        if l < L:
            prod = prod * _relu_dcorr(rhos[l - 1])
        wa = math.exp((L - l) * math.log(a) - (L - 1) * math.log(s))  # a^{L-l} / s^{L-1}
        num_w = num_w + weights_r[l - 1] * rhos[l - 1] * prod
        num_b = num_b + wa * prod
        den_b += wa
    wscale = math.exp((L - 1) * (math.log(a) - math.log(s)))  # a^{L-1} / s^{L-1}
    return wscale * num_w, num_b, wscale * float(np.sum(weights_r)), den_b


def offdiagonal_mean_ratio(widths, sigma_w2, rho0):
    """Infinite-width estimate of ``E[Theta(x, x~)] / E[Theta(x, x)]`` for unit inputs with ``<x, x~> = rho0``.

    Parameters
    ----------
    widths : sequence of int
        ``n_0..n_{L-1}`` (only the ratios ``r_l = n_{l-1}/n_0`` enter).
    sigma_w2 : float
        Weight variance ``> 0``.
    rho0 : float or array_like
        Input correlation in ``[-1, 1]``.

    Returns
    -------
    float or ndarray

    Notes
    -----
    Numerator: the infinite-width expression of seed 004 App. A.2 (line 2218; ``ntk_dispersion.md`` sec. 2.4)
    ``a^{L-1} sum_l r_l rho_{l-1} prod_{k=l}^{L-1} g(rho_{k-1}) + sum_l a^{L-l} prod_{k=l}^{L-1} g(rho_{k-1})``
    with ``g(t) = (pi/2 + arcsin t)/pi``, ``rho_k = r^{(k)}(rho0)`` and the ReLU correlation map
    ``r(t) = (sqrt(1 - t^2) + t pi/2 + t arcsin t)/pi``. Denominator: eqs. (11) + (12). At finite width the
    true mean off-diagonal entry is slightly larger (the paper's "approaches from below"; sheet sec. 3.9).
    Thm 3.3 eq. (16) bounds the limit of this ratio by ``[1/4, 1]`` (see :func:`offdiagonal_bounds`).
    Overflow-free: both sums are divided by ``max(a, 1)^{L-1}``.

    Examples
    --------
    >>> round(float(offdiagonal_mean_ratio([50] * 5, 1.5, 0.5)), 4)
    0.6068
    >>> float(offdiagonal_mean_ratio([50] * 5, 1.5, 1.0))
    1.0
    """
    n = _check_widths(widths)
    a = _check_positive(sigma_w2, "sigma_w2") / 2
    rho = _check_rho(rho0)
    nw, nb, dw, db = _offdiag_sums(n.size, a, rho, n / n[0])
    out = (nw + nb) / (dw + db)
    return float(out) if out.ndim == 0 else out


def offdiagonal_eq18(depth, sigma_w2, rho0):
    """Seed 004 eq. (18): the bias-only estimate of ``E[Theta(x, x~)] / E[Theta(x, x)]`` (ordered phase).

    Parameters
    ----------
    depth : int
        ``L >= 1``.
    sigma_w2 : float
        Weight variance ``> 0`` (the paper uses this in the ordered phase, ``sigma_w2 < 2``).
    rho0 : float or array_like
        Input correlation in ``[-1, 1]``.

    Returns
    -------
    float or ndarray
        ``sum_l a^{L-l} prod_{k=l}^{L-1} g(rho_{k-1}) / sum_l a^{L-l}``.

    Notes
    -----
    Caveat (``ntk_dispersion.md`` erratum E9): eq. (18) is stated with "≳" but it keeps only the bias part
    ``Theta_b`` of the NTK; it is NOT a lower bound at moderate depth (widths [50]x5, sigma_w2 = 1.5, rho0 = 0.5:
    Monte Carlo 0.616 vs eq. (18) 0.703). It is meaningful only when ``Theta_W`` is negligible (ordered phase,
    ``L`` large). Use :func:`offdiagonal_mean_ratio` for the full infinite-width expression.

    Examples
    --------
    >>> round(float(offdiagonal_eq18(10, 1.5, 0.5)), 12)
    0.683137044588
    """
    L = _check_count(depth, "depth")
    a = _check_positive(sigma_w2, "sigma_w2") / 2
    rho = _check_rho(rho0)
    _, nb, _, db = _offdiag_sums(L, a, rho, np.zeros(L))
    out = nb / db
    return float(out) if out.ndim == 0 else out


def offdiagonal_bounds(diagonal_dispersion):
    """The bounds of seed 004 Thm 3.3 (eqs. (16), (17)) in the limit ``L/M -> lambda``.

    Parameters
    ----------
    diagonal_dispersion : float
        Limit of the diagonal dispersion ``E[Theta(x,x)^2]/E[Theta(x,x)]^2`` (>= 1).

    Returns
    -------
    dict
        ``mean_ratio_lower = 1/4`` and ``mean_ratio_upper = 1`` (eq. (16)) for
        ``E[Theta(x, x~)]/E[Theta(x, x)]``, and ``dispersion_upper = 16 D`` (eq. (17)) for the off-diagonal
        dispersion.

    Notes
    -----
    Eq. (17) follows from (16) and Cauchy-Schwarz ``E[Theta(x,x~)^2] <= E[Theta(x,x)^2]`` for equal-norm inputs;
    its proof does not use the (incorrect, erratum E0) value of Thm 3.1, so it holds with the true diagonal
    dispersion (``ntk_dispersion.md`` E0, sec. 3.9).

    Examples
    --------
    >>> offdiagonal_bounds(1.5)["dispersion_upper"]
    24.0
    """
    d = float(diagonal_dispersion)
    if not (np.isfinite(d) and d >= 1):
        raise ValueError(f"diagonal_dispersion must be a finite number >= 1, got {diagonal_dispersion!r}")
    return {"mean_ratio_lower": 0.25, "mean_ratio_upper": 1.0, "dispersion_upper": 16.0 * d}


# --------------------------------------------------------------------------------------------------------------
# Monte Carlo
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NTKSample:
    """Independent draws of the diagonal NTK entry, split into weight and bias parts.

    Attributes
    ----------
    theta_w, theta_b : ndarray
        ``Theta_W(x, x)`` and ``Theta_b(x, x)``, one entry per network.
    method : str
        Sampler used.
    """

    theta_w: np.ndarray
    theta_b: np.ndarray
    method: str

    @property
    def theta(self) -> np.ndarray:
        return self.theta_w + self.theta_b


def _chunks(total: int, size: int):
    return [min(size, total - s) for s in range(0, total, size)]


def _buffer(ws, name, shape):
    """A reusable float64 work array (fresh large allocations are slow: page faults dominate the sampler)."""
    size = int(np.prod(shape))
    buf = ws.get(name)
    if buf is None or buf.size < size:
        buf = np.empty(size)
        ws[name] = buf
    return buf[:size].reshape(shape)


def _run_chunks(fn, sizes, seed, n_jobs):
    """Apply ``fn(rng, size, workspace)`` to each chunk with its own spawned generator.

    Chunk ``i`` always uses child ``i`` of ``SeedSequence(seed)``, so the draws do not depend on ``n_jobs``.
    Threads work round-robin on the chunks; numpy's generators, matmul and the numba kernels release the GIL.
    """
    seqs = np.random.SeedSequence(seed).spawn(len(sizes))
    jobs = [(np.random.default_rng(s), b) for s, b in zip(seqs, sizes, strict=True)]
    n_jobs = max(1, min(len(jobs), n_jobs or (os.cpu_count() or 1)))
    out = [None] * len(jobs)

    def worker(j0):
        ws = {}
        for i in range(j0, len(jobs), n_jobs):
            out[i] = fn(jobs[i][0], jobs[i][1], ws)

    if n_jobs == 1:
        worker(0)
    else:
        with ThreadPoolExecutor(n_jobs) as pool:
            list(pool.map(worker, range(n_jobs)))
    return out


@njit(cache=True, nogil=True)
def _projection_kernel(z, n, sw2, x0sq, out_w, out_b):
    B = z.shape[0]
    L = n.shape[0]
    nmax = 1
    for l in range(L):
        nmax = max(nmax, n[l])
    H = np.zeros((L, nmax))  # H[l] = h^l, l = 1..L-1
    xn2 = np.empty(L)  # ||x^l||^2, l = 0..L-1
    d_next = np.empty(nmax)
    d = np.empty(nmax)
    for bi in range(B):
        xn2[0] = x0sq
        pos = 0
        for l in range(1, L):
            s = math.sqrt(sw2 / n[l - 1] * xn2[l - 1])
            acc = 0.0
            for i in range(n[l]):
                h = s * z[bi, pos + i]
                H[l, i] = h
                if h > 0:
                    acc += h * h
            xn2[l] = acc
            pos += n[l]
        # z[bi, pos] = g_L with W^L u_{L-1} = sqrt(sw2/n_{L-1}) g_L; delta^L = 1
        d_next[0] = 1.0
        gpos = pos
        bpos = pos + 1
        tw = xn2[L - 1]
        tb = 1.0
        for l in range(L - 1, 0, -1):
            nl = n[l]
            n_next = 1 if l == L - 1 else n[l + 1]
            scale = math.sqrt(sw2 / nl)
            alpha = 0.0  # (W^{l+1} u_l) . delta^{l+1}
            dn2 = 0.0
            for k in range(n_next):
                alpha += z[bi, gpos + k] * d_next[k]
                dn2 += d_next[k] * d_next[k]
            alpha *= scale
            # W^{l+1,T} delta^{l+1} = u_l alpha + P_perp(g),  g ~ N(0, scale^2 ||delta^{l+1}||^2 I), u_l = x^l/||x^l||
            vs = scale * math.sqrt(dn2)
            proj = 0.0
            for i in range(nl):
                d[i] = vs * z[bi, bpos + i]
                if H[l, i] > 0:
                    proj += d[i] * H[l, i]
            xnorm = math.sqrt(xn2[l])
            coef = (alpha - proj / xnorm) / xnorm if xnorm > 0 else 0.0
            acc = 0.0
            for i in range(nl):
                if H[l, i] > 0:
                    d_next[i] = d[i] + coef * H[l, i]
                    acc += d_next[i] * d_next[i]
                else:
                    d_next[i] = 0.0
            bpos += nl
            gpos -= nl
            tw += acc * xn2[l - 1]
            tb += acc
        out_w[bi] = tw
        out_b[bi] = tb


def _projection_chunk(rng, b, ws, n_int, sw2, x0sq):
    z = _buffer(ws, "z", (b, 2 * int(n_int[1:].sum()) + 1))
    rng.standard_normal(out=z)
    out_w, out_b = np.empty(b), np.empty(b)
    _projection_kernel(z, n_int, sw2, x0sq, out_w, out_b)
    return out_w, out_b


def _law_chunk(rng, b, ws, n_int, sw2, x0sq):
    """Draws of the exact scalar law (sec. 2.2b), dead layers included."""
    L = n_int.size
    n = n_int.astype(float)
    X = np.empty((b, L))
    X[:, 0] = x0sq
    K = rng.binomial(n_int[1:], 0.5, size=(b, L - 1))
    A = rng.gamma(K / 2.0, 2.0) if L > 1 else np.empty((b, 0))
    Bq = rng.gamma(np.maximum(K - 1, 0) / 2.0, 2.0) if L > 1 else np.empty((b, 0))
    for q in range(1, L):
        X[:, q] = sw2 / n[q - 1] * X[:, q - 1] * A[:, q - 1]
    f2 = sw2 / n[L - 1] * X[:, L - 1] * rng.standard_normal(b) ** 2
    dead = np.any(K == 0, axis=1) if L > 1 else np.zeros(b, bool)
    Xs = np.where(dead[:, None], 1.0, X)
    Dn = np.empty((b, L))
    Dn[:, L - 1] = 1.0
    for q in range(L - 1, 0, -1):
        Dn[:, q - 1] = f2 / Xs[:, q] + sw2 / n[q] * Dn[:, q] * Bq[:, q - 1]
    tw = np.sum(Dn * X, axis=1)
    tb = np.sum(Dn, axis=1)
    return np.where(dead, 0.0, tw), np.where(dead, 1.0, tb)


def _sp_relu_stack(rng, b, n_int, sw2):
    """``b`` SP ReLU networks with widths ``n_0..n_{L-1}``, a scalar readout and zero-initialized trainable biases
    (seed 004's setting), drawn as a :class:`meanfield.MLP` stack: the package's one forward/backward."""
    net = Network(int(n_int.size), "relu", sw2, 0.0, "standard", width=tuple(int(w) for w in n_int[1:]))
    return MLP.sample(net, d=int(n_int[0]), seed=int(rng.integers(2**63)), n_nets=b)


def _inputs(n0, x0sq, rho=None):
    """One input with ``||x||^2 = x0sq`` (or two unit inputs at correlation ``rho``); by rotational invariance
    only these norms and correlations matter."""
    if rho is None:
        X = np.zeros((1, n0))
        X[0, 0] = math.sqrt(x0sq)
        return X
    if n0 < 2 and abs(rho) < 1:
        raise ValueError(f"two inputs at correlation {rho} need an input dimension n_0 >= 2, got {n0}")
    X = np.zeros((2, n0))
    X[0, 0] = 1.0
    X[1, 0] = rho
    if n0 > 1:
        X[1, 1] = math.sqrt(max(0.0, 1.0 - rho * rho))
    return X


def _ntk_parts(mlp, X):
    """Weight and bias parts of the SP tangent kernel, ``sum_l (delta_l . delta_l')(x_{l-1} . x_{l-1}')`` and
    ``sum_l delta_l . delta_l'``, shape ``(b, k, k)`` (ntk_dispersion.md sec. 1), from one forward and one backward
    pass of :class:`meanfield.MLP`."""
    fw = mlp.forward(X)
    tw = tb = 0.0
    for h, d in zip(fw.h, mlp.deltas(X), strict=True):
        d = d[:, 0]  # scalar output: (b, k, N_l)
        dd = d @ np.swapaxes(d, -1, -2)
        tw = tw + dd * (h @ np.swapaxes(h, -1, -2))
        tb = tb + dd
    return tw, tb


def _matmul_chunk(rng, b, ws, n_int, sw2, x0sq):
    tw, tb = _ntk_parts(_sp_relu_stack(rng, b, n_int, sw2), _inputs(int(n_int[0]), x0sq))
    return tw[:, 0, 0], tb[:, 0, 0]


_SAMPLERS = {"projection": _projection_chunk, "law": _law_chunk, "matmul": _matmul_chunk}


def _default_chunk(n_int, method):
    per_net = {
        "projection": 2 * float(n_int[1:].sum()) + 1,
        "law": 4.0 * n_int.size,
        "matmul": float(np.sum(n_int[1:] * n_int[:-1])) + 4 * float(n_int.sum()),
    }[method]
    return int(max(1, min(65536, 1e6 / per_net)))


def sample_ntk_diagonal(widths, sigma_w2, n_networks, x0_norm2=1.0, method="projection", seed=None, n_jobs=None):
    """Sample the diagonal NTK entry ``Theta(x, x)`` of independent random SP ReLU networks (``sigma_b = 0``).

    Parameters
    ----------
    widths : sequence of int
        ``n_0..n_{L-1}`` (input dimension and hidden widths; scalar output).
    sigma_w2 : float
        Weight variance ``> 0``.
    n_networks : int
        Number of independent networks.
    x0_norm2 : float
        ``||x^0||^2 > 0``.
    method : {"projection", "matmul", "law"}
        ``"projection"`` (default, fast, exact in law): literal forward/backward pass in which every weight
        matrix is represented by its action on the current activation direction plus an independent Gaussian
        orthogonal to it (see Notes); O(n) work and ``2 n`` normals per layer.
        ``"matmul"``: the brute-force reference, a stack of :class:`meanfield.MLP` networks with every weight
        matrix drawn (the package's one forward/backward; the input is ``sqrt(x0_norm2) e_1``, which loses
        nothing by rotational invariance). ``"law"``: the scalar chi-square law of
        ``ntk_dispersion.md`` sec. 2.2b (fastest; it checks the algebra of :func:`ntk_moments`, not the law).
    seed : int, optional
        Seed of ``numpy.random.SeedSequence``; chunk ``i`` uses spawned child ``i``, so results do not depend
        on ``n_jobs``.
    n_jobs : int, optional
        Threads (default: all cores).

    Returns
    -------
    NTKSample

    Notes
    -----
    Layer 1 (all methods): for a fixed input only ``W^1 x ~ N(0, sigma_w2 ||x||^2 / n_0 I)`` enters ``Theta``
    (the layer-1 weight gradient is ``delta^1 x^T``), so ``W^1`` is never drawn; valid for Gaussian i.i.d. weights
    and ``sigma_b = 0`` at initialization.

    Projection method: for ``l >= 1`` write ``W^{l+1} = (W^{l+1} u) u^T + W^{l+1} P_perp`` with
    ``u = x^l / ||x^l||``. The forward pass only sees ``W^{l+1} u ~ N(0, sigma_w2/n_l I)`` (drawn forward); the
    backward pass ``W^{l+1,T} delta^{l+1} = u (W^{l+1} u . delta^{l+1}) + P_perp g`` with
    ``g ~ N(0, sigma_w2 ||delta^{l+1}||^2 / n_l I)`` independent of everything else, because ``W^{l+1} P_perp``
    is independent of ``W^{l+1} u`` and is not used by any other part of the forward or backward pass. This is
    an exact identity in distribution of the whole ``(x^l, delta^l)`` process; it does not use the scalar law
    of sec. 2.2b (no Euler identity, no chi-square reduction), so it is an independent check of
    :func:`ntk_moments`. The normals come from numpy ``Generator`` (PCG64) in reused chunk buffers; the numba
    kernel releases the GIL and the chunks run on ``n_jobs`` threads.

    Examples
    --------
    >>> s = sample_ntk_diagonal([20, 20, 20], 2.0, 2000, seed=1)
    >>> s.theta.shape, bool(abs(s.theta.mean() / 6 - 1) < 0.05)
    ((2000,), True)
    """
    n = _check_widths(widths)
    sw2 = _check_positive(sigma_w2, "sigma_w2")
    x0sq = _check_positive(x0_norm2, "x0_norm2")
    N = _check_count(n_networks, "n_networks")
    _check_method(method, tuple(_SAMPLERS))
    n_int = n.astype(np.int64)
    size = _default_chunk(n_int, method)
    fn = _SAMPLERS[method]
    parts = _run_chunks(lambda rng, b, ws: fn(rng, b, ws, n_int, sw2, x0sq), _chunks(N, size), seed, n_jobs)
    return NTKSample(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), method)


@dataclass(frozen=True)
class NTKPairSample:
    """NTK entries of independent random networks on two unit inputs ``x, x~`` with ``<x, x~> = rho0``.

    Attributes
    ----------
    diag, diag2, off : ndarray
        ``Theta(x, x)``, ``Theta(x~, x~)``, ``Theta(x, x~)`` per network (weights plus biases).
    """

    diag: np.ndarray
    diag2: np.ndarray
    off: np.ndarray


def sample_ntk_pair(widths, sigma_w2, rho0, n_networks, seed=None, n_jobs=None) -> NTKPairSample:
    """Sample diagonal and off-diagonal NTK entries of full random SP ReLU networks (``sigma_b = 0``).

    Parameters
    ----------
    widths : sequence of int
        ``n_0..n_{L-1}``.
    sigma_w2 : float
        Weight variance ``> 0``.
    rho0 : float
        ``<x, x~>`` of the two unit inputs, in ``[-1, 1]``.
    n_networks : int
        Number of networks.
    seed, n_jobs :
        As in :func:`sample_ntk_diagonal`.

    Returns
    -------
    NTKPairSample

    Notes
    -----
    A stack of :class:`meanfield.MLP` networks (every weight drawn) on two unit inputs at correlation ``rho0``
    (``n_0 >= 2``; by rotational invariance only the correlation matters).
    ``Theta(x, x~) = sum_l <delta^l, delta~^l> (<x^{l-1}, x~^{l-1}> + 1)`` (seed 004, line 2170).

    Examples
    --------
    >>> p = sample_ntk_pair([20, 20, 20], 1.5, 0.5, 500, seed=0)
    >>> bool(np.all(p.off ** 2 <= p.diag * p.diag2 + 1e-9))
    True
    """
    n = _check_widths(widths)
    sw2 = _check_positive(sigma_w2, "sigma_w2")
    rho = float(_check_rho(rho0))
    N = _check_count(n_networks, "n_networks")
    n_int = n.astype(np.int64)
    X = _inputs(int(n_int[0]), 1.0, rho)
    size = max(1, _default_chunk(n_int, "matmul") // 2)

    def fn(rng, b, ws):
        tw, tb = _ntk_parts(_sp_relu_stack(rng, b, n_int, sw2), X)
        t = tw + tb
        return t[:, 0, 0], t[:, 1, 1], t[:, 0, 1]

    parts = _run_chunks(fn, _chunks(N, size), seed, n_jobs)
    return NTKPairSample(*(np.concatenate([p[i] for p in parts]) for i in range(3)))


# --------------------------------------------------------------------------------------------------------------
# first gradient-descent step (Thm 4.1)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GDStepResult:
    """Relative change of the diagonal NTK entry after one gradient-descent step, estimated by simulation.

    Attributes
    ----------
    relative_change : float
        ``E[Delta Theta(x, x)] / E[Theta(x, x)]`` (ratio of sample means).
    se : float
        Its standard error (delta method).
    mean_theta, mean_delta : float
        Sample means of ``Theta(x, x)`` at initialization and of ``Delta Theta(x, x)``.
    n_networks : int
    """

    relative_change: float
    se: float
    mean_theta: float
    mean_delta: float
    n_networks: int


def _gd_theta(mlp, X, lr, y):
    """Theta(x, x) of each network before and after one exact gradient step on ``(x, y)`` with the loss
    ``(f(x) - y)^2 / 2`` (``MLP.grads`` with ``loss="mse"``, all weights and biases)."""
    theta0 = mlp.ntk(X)[..., 0, 0]
    _, grads = mlp.grads(X, np.array([[y]]), "mse")
    theta1 = gd_step(mlp, grads, lr).ntk(X)[..., 0, 0]
    return theta0, theta1


def _gd_chunk(rng, b, ws, n_int, sw2, x0sq, lr, y):
    theta0, theta1 = _gd_theta(_sp_relu_stack(rng, b, n_int, sw2), _inputs(int(n_int[0]), x0sq), lr, y)
    return theta0, theta1 - theta0


def gd_step_change(widths, sigma_w2, lr, n_networks, y=0.0, x0_norm2=1.0, seed=None, n_jobs=None) -> GDStepResult:
    """Relative change ``E[Delta Theta(x,x)] / E[Theta(x,x)]`` of the NTK after one exact GD step (simulation).

    Parameters
    ----------
    widths : sequence of int
        ``n_0..n_{L-1}``, ``L >= 2``.
    sigma_w2 : float
        Weight variance ``> 0``.
    lr : float
        Learning rate ``eta > 0``.
    n_networks : int
        Number of independent networks (``>= 2``).
    y : float
        Target of the training sample; loss ``(f(x) - y)^2 / 2``.
    x0_norm2 : float
        ``||x||^2``.
    seed, n_jobs :
        As in :func:`sample_ntk_diagonal`.

    Returns
    -------
    GDStepResult

    Notes
    -----
    Each network takes one full-batch GD step on the single sample ``(x, y)`` (all weights and biases,
    ``W^l -= eta (f - y) delta^l x^{l-1,T}``, ``b^l -= eta (f - y) delta^l``), then ``Theta(x, x)`` is recomputed
    exactly (no linearization), all through :class:`meanfield.MLP` (``grads``, :func:`meanfield.nfa.gd_step`,
    ``ntk``). The standard error is the delta-method error of the ratio of means.

    What seed 004 proves (Thm 4.1 = Thm A.10; ``ntk_dispersion.md`` sec. 2.5, erratum E10): in the limit
    ``M, L -> inf``, ``L/M -> lambda`` at fixed ``eta``, the relative change tends to infinity in the chaotic
    phase (``a > 1``; the proof bounds ``E|Delta Theta|``, not ``E[Delta Theta]``, tacitly with ``y = 0``; it
    scales like ``eta a^L / M``, so ``eta = O(a^{-L})`` is needed) and to zero in the ordered phase (an upper
    bound ``~ eta a^{2L} L^2``). It gives no value at finite size, no statement at the EOC (the paper cites
    Hanin & Nica 2020: exponential in lambda), and its constants are unverified (they reuse Lemma A.4, which is
    wrong at the ``O(1)`` level, erratum E0; only the exponential rates matter for the conclusions). This
    function measures the finite-size value; it proves nothing about the limit.

    Sign: the term the proof keeps is ``-2 eta f(x)^2 sum_l ||delta^{l+1}||^2 (||x^{l-1}||^2 + 1) < 0`` (for
    ``y = 0``), so eq. (21) is best read as ``|E[Delta Theta]| / E[Theta] -> inf``: in simulation the NTK
    *decreases*. Measured here (widths [30] x L, ``eta = 2e-3``, 3000 networks): ``sigma_w2 = 3``: -0.0043(5),
    -0.084(5), -0.44(2) for L = 3, 6, 12; EOC: -0.0016(2), -0.010(1), -0.048(8); ``sigma_w2 = 1``: below 5e-4 in
    magnitude at every depth.

    Examples
    --------
    >>> r = gd_step_change([20] * 4, 2.0, 1e-3, 200, seed=0)
    >>> bool(np.isfinite(r.relative_change) and r.se > 0)
    True
    """
    n = _check_widths(widths)
    if n.size < 2:
        raise ValueError("widths must have length >= 2 (at least one hidden layer) for gd_step_change")
    sw2 = _check_positive(sigma_w2, "sigma_w2")
    eta = _check_positive(lr, "lr")
    x0sq = _check_positive(x0_norm2, "x0_norm2")
    N = _check_count(n_networks, "n_networks", 2)
    yv = float(y)
    if not np.isfinite(yv):
        raise ValueError(f"y must be finite, got {y!r}")
    n_int = n.astype(np.int64)
    size = max(1, _default_chunk(n_int, "matmul") // 4)
    parts = _run_chunks(
        lambda rng, b, ws: _gd_chunk(rng, b, ws, n_int, sw2, x0sq, eta, yv), _chunks(N, size), seed, n_jobs
    )
    t0 = np.concatenate([p[0] for p in parts])
    dt = np.concatenate([p[1] for p in parts])
    m0, md = t0.mean(), dt.mean()
    psi = dt / m0 - md * t0 / m0**2
    return GDStepResult(float(md / m0), float(psi.std(ddof=1) / math.sqrt(N)), float(m0), float(md), N)


# --------------------------------------------------------------------------------------------------------------
# estimator (App. C.3)
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DispersionEstimate:
    """Estimates of ``E[theta^2]/E[theta]^2`` from a sample.

    Attributes
    ----------
    ratio : float
        Leave-one-out ratio estimator of seed 004 App. C.3 with the corrected prefactor ``1/N`` (erratum E5)
        (or the printed ``1/(N - 2)`` if requested).
    se : float
        Bootstrap standard error of ``ratio``.
    naive : float
        ``mean(theta^2) / mean(theta)^2``.
    se_delta : float
        Delta-method standard error of ``naive``.
    n : int
        Sample size.
    """

    ratio: float
    se: float
    naive: float
    se_delta: float
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


def estimate(thetas, n_boot=500, seed=None, prefactor="corrected") -> DispersionEstimate:
    """Estimate the dispersion ``E[theta^2]/E[theta]^2`` from i.i.d. draws (seed 004 App. C.3, corrected).

    Parameters
    ----------
    thetas : array_like
        1-d sample ``theta_1..theta_N`` (``N >= 3``), finite and positive-mean.
    n_boot : int
        Bootstrap replicates for the standard error (``>= 2``).
    seed : int, optional
        Seed of the bootstrap resampling.
    prefactor : {"corrected", "paper"}
        ``1/N`` (corrected, erratum E5) or the printed ``1/(N - 2)``.

    Returns
    -------
    DispersionEstimate

    Notes
    -----
    ``r = (1/N) sum_i theta_i^2 / {[(sum_{j != i} theta_j)^2 - sum_{j != i} theta_j^2] / ((N - 1)(N - 2))}``
    (``ntk_dispersion.md`` sec. 2.6): numerator and denominator use disjoint samples and the denominator is an
    unbiased estimator of ``E[theta]^2``. With the printed prefactor ``1/(N-2)`` the estimator is biased by the
    factor ``N/(N-2)``. Even with ``1/N`` it is only first-order unbiased (Jensen on ``1/denominator``). The
    bootstrap standard error resamples the whole estimator; ``se_delta`` is the influence-function error of the
    naive ratio, ``psi_i = theta_i^2/mu_1^2 - 2 mu_2 theta_i / mu_1^3``.

    Examples
    --------
    >>> e = estimate([1.0, 2.0, 3.0, 4.0], n_boot=10, seed=0)
    >>> round(e.ratio, 14), e.naive
    (1.75979283874021, 1.2)
    >>> round(estimate([1.0, 2.0, 3.0, 4.0], n_boot=10, prefactor="paper").ratio, 14)
    3.51958567748041
    """
    t = np.asarray(thetas, dtype=float)
    if t.ndim != 1 or t.size < 3:
        raise ValueError(f"thetas must be a 1-d sample of size >= 3, got shape {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("thetas must be finite")
    if not t.mean() > 0:
        raise ValueError("thetas must have a positive mean")
    B = _check_count(n_boot, "n_boot", 2)
    _check_method(prefactor, ("corrected", "paper"), "prefactor")
    N = t.size
    pref = N if prefactor == "corrected" else N - 2
    ratio = float(_loo_ratio(t, pref))
    if not np.isfinite(ratio):
        raise ValueError(
            "thetas give a non-positive leave-one-out estimate of E[theta]^2; the estimator needs a "
            "sample whose pairwise products are mostly positive"
        )
    rng = np.random.default_rng(seed)
    reps = []
    per = max(1, int(4e6 // N))
    for s in range(0, B, per):
        idx = rng.integers(0, N, size=(min(per, B - s), N))
        reps.append(_loo_ratio(t[idx], pref))
    reps = np.concatenate(reps)
    reps = reps[np.isfinite(reps)]  # resamples with a non-positive denominator (only for signed samples)
    m1, m2 = t.mean(), (t * t).mean()
    psi = t * t / m1**2 - 2 * m2 * t / m1**3
    return DispersionEstimate(
        ratio=ratio,
        se=float(reps.std(ddof=1)),
        naive=float(m2 / m1**2),
        se_delta=float(psi.std(ddof=1) / math.sqrt(N)),
        n=N,
    )
