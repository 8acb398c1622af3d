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
from dataclasses import dataclass
from functools import cache

import numpy as np
from numba import njit

__all__ = [
    "NTKMoments",
    "ntk_moments",
    "dispersion_limit",
    "dispersion_limit_expr",
    "offdiagonal_mean_ratio",
    "offdiagonal_eq18",
    "offdiagonal_bounds",
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
