r"""The general path: Hermite coefficients of an activation and the one definition of the Mehler sums.

Every activation without a closed form gets its 2-D Gaussian moments from Mehler's expansion

.. math:: \mathbb E[\phi(u)\phi(v)] = \sum_{k\ge0} a_k(q_1)\,a_k(q_2)\,c^k,\qquad
          a_k(q) = \mathbb E[\phi(\sqrt q z)\,\mathrm{He}_k(z)]/\sqrt{k!},

and the same with the coefficients :math:`b_k` of :math:`\phi'` for :math:`\mathbb E[\phi'(u)\phi'(v)]`. The
coefficients come from the one 1-D quadrature (:mod:`meanfield.gaussian.quadrature`), with the order chosen
adaptively until the neglected tail is below ``1e-13`` of the total (:func:`hermite_coefficients`).

The sums run by Horner's rule in :math:`u = c^2`, one parity of k at a time; a parity whose coefficients are
quadrature noise (odd or even activations, detected numerically) is dropped, which halves the work for tanh,
erf-like and sine activations. The compiled helpers below are the only statement of that algebra: the scalar
:func:`hermite_pair` and the vectorized column kernels of :mod:`meanfield.propagation` both inline them
(:func:`mehler_step`, :func:`mehler_gap_step`, their four-order blocks, :func:`parity_terms`,
:func:`parity_dcov`, :func:`gap_mismatch`). The gap sums that carry :math:`1 \mp c` without cancellation are
derived here (:func:`parity_terms`).
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_int, finite_array
from .._jit import njit
from ..activations import Activation, get_activation
from .closed import pair_correlation
from .quadrature import hermite_basis, rule_scale

__all__ = [
    "HERMITE_UNROLL",
    "adaptive_coefficients",
    "block_parities",
    "gap_mismatch",
    "hermite_coefficients",
    "hermite_pair",
    "mehler_block4",
    "mehler_gap_block4",
    "mehler_gap_step",
    "mehler_step",
    "pack_parity",
    "parity_dcov",
    "parity_terms",
    "taylor_coefficients",
    "taylor_rows",
    "truncation_error",
    "unit_scale",
]

#: relative size of the neglected Hermite tail
HERMITE_TAIL = 1e-13
#: largest Hermite order the general path will use
HERMITE_MAX_ORDER = 4096
#: a tail above this (relative) at the largest order is reported with a RuntimeWarning
HERMITE_WARN = 1e-9
#: the Mehler loops take this many coefficients per pass; parity blocks are zero-padded to a multiple of it
HERMITE_UNROLL = 4
#: a parity whose squared coefficients sum to less than this fraction of every row's norm is quadrature noise
PARITY_NOISE = 1e-30


# ---------------------------------------------------------------------------------------------------------------
# the Mehler sums (compiled, inlined into every caller)
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", inline="always")
def block_parities(blk, npar, apar):
    """Parities of k in block ``blk`` for phi and for phi' (opposite when phi has one parity, ``npar = 1``)."""
    if npar == 2:
        return blk, blk
    return apar, 1 - apar


@njit(cache=True, error_model="numpy", inline="always")
def mehler_step(h, hb, u, a1, a2, b1, b2):
    """One Horner step, highest order first, of the two Mehler sums H = sum a1 a2 u^m and Hb = sum b1 b2 u^m."""
    return h * u + a1 * a2, hb * u + b1 * b2


@njit(cache=True, error_model="numpy", inline="always")
def mehler_gap_step(h, j, p, d, hb, u, a1, a2, b1, b2, i1, i2):
    """One Horner step of the Mehler sums together with the gap sums of :func:`parity_terms`.

    Carries H = sum p_m u^m, J = sum_m p_m sum_{i<m} u^i, P = sum p_m and D = sum (i1 a1 - i2 a2)^2 (p = a1 a2),
    and Hb; ``i_k = 1/|a_k|`` normalizes the two rows, so that D (the squared distance of unit vectors,
    :func:`gap_mismatch`) does not lose the smaller row to the larger one's rounding.
    """
    pr = a1 * a2
    j = j * u + p
    p += pr
    h = h * u + pr
    e = a1 * i1 - a2 * i2
    d += e * e
    hb = hb * u + b1 * b2
    return h, j, p, d, hb


@njit(cache=True, error_model="numpy", inline="always")
def mehler_block4(h, hb, u, a, b, x, y):
    """:func:`mehler_step` over four orders (``HERMITE_UNROLL``); a, b, x, y hold each row's four coefficients,
    highest order first (the row's own in a, b: kept in registers across a vectorized loop over x, y)."""
    h, hb = mehler_step(h, hb, u, a[0], x[0], b[0], y[0])
    h, hb = mehler_step(h, hb, u, a[1], x[1], b[1], y[1])
    h, hb = mehler_step(h, hb, u, a[2], x[2], b[2], y[2])
    return mehler_step(h, hb, u, a[3], x[3], b[3], y[3])


@njit(cache=True, error_model="numpy", inline="always")
def mehler_gap_block4(h, j, p, d, hb, u, a, b, x, y, i1, i2):
    """:func:`mehler_gap_step` over four orders, laid out like :func:`mehler_block4`."""
    h, j, p, d, hb = mehler_gap_step(h, j, p, d, hb, u, a[0], x[0], b[0], y[0], i1, i2)
    h, j, p, d, hb = mehler_gap_step(h, j, p, d, hb, u, a[1], x[1], b[1], y[1], i1, i2)
    h, j, p, d, hb = mehler_gap_step(h, j, p, d, hb, u, a[2], x[2], b[2], y[2], i1, i2)
    return mehler_gap_step(h, j, p, d, hb, u, a[3], x[3], b[3], y[3], i1, i2)


@njit(cache=True, error_model="numpy", inline="always")
def parity_terms(pa, c, t, d, H, P, J, D):
    """Contributions of one parity block to (cov, gap part, agap part, squared distance).

    For k = 2m + pa, with u = c^2: ``H = sum_m p_m u^m``, ``P = sum_m p_m`` and ``J = sum_m p_m sum_{j<m} u^j``
    (p = a1 a2). Since 1 - t^(2m) = (1 - t)(1 + t) sum_{j<m} u^j and 1 - t^(2m+1) = (1 - t)(1 + t (1 + t)
    sum_{j<m} u^j), ``S = sum p (1 - t^k)`` comes out as (1 - t) times sums of non-negative weights (no
    cancellation as t -> 1), and ``sum p (1 + t^k) = 2 P - S``. Odd k swap the two when c < 0. Derived here.
    """
    if pa == 0:
        S = d * (1.0 + t) * J
        return H, S, 2.0 * P - S, D
    S = d * (P + t * (1.0 + t) * J)
    if c >= 0.0:
        return c * H, S, 2.0 * P - S, D
    return c * H, 2.0 * P - S, S, D


@njit(cache=True, error_model="numpy", inline="always")
def parity_dcov(pb, c, hb):
    """A block's contribution to E[phi' phi']: its Mehler sum, times c for odd k."""
    return c * hb if pb == 1 else hb


@njit(cache=True, error_model="numpy", inline="always")
def unit_scale(sq):
    """1 / sq, the factor that makes a row of norm ``sq`` a unit vector (0 for a zero row)."""
    return 1.0 / sq if sq > 0.0 else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def gap_mismatch(dist2, sq1, sq2):
    """sqrt(v1 v2) - a1.a2 without cancellation, with ``sq_i = sqrt(v_i) = |a_i|`` and ``dist2 = |a1/sq1 -
    a2/sq2|^2`` (zero rows left out, :func:`unit_scale`): |a1||a2| - a1.a2 = |a1||a2| |a1/|a1| - a2/|a2||^2 / 2.

    The rows are normalized before they are subtracted: the unnormalized form |a1 - a2|^2/2 - (|a1| - |a2|)^2/2
    cancels to about 1e-16 |a1|^2, which is 1e-16 |a1| / |a2| relative to the result (3e-6 at variances 1 and
    1e-21, where the rows' norms differ by 1e10). Derived here.
    """
    return 0.5 * sq1 * sq2 * dist2


@njit(cache=True, error_model="numpy")
def hermite_pair(TA, TB, ra, rb, M, npar, apar, s, r):
    """Mehler sums (cov, gap, agap, dcov) for one pair from the parity-packed rows at offsets ``ra``, ``rb`` of the
    flat tables (TA, TB) (``npar`` blocks of ``M`` coefficients each, see :func:`pack_parity`), at the correlation
    given by ``(s, r) = (1 - c, 1 + c)``."""
    c = pair_correlation(s, r)
    d = s if c >= 0.0 else r  # d = 1 - |c|, exact
    t = abs(c)
    u = c * c
    cov = 0.0
    dcov = 0.0
    gap = 0.0
    agap = 0.0
    diff = 0.0
    n1 = 0.0
    n2 = 0.0
    for m in range(npar * M):  # the rows' norms first: the gap sums take them as unit vectors (gap_mismatch)
        n1 += TA[ra + m] * TA[ra + m]
        n2 += TA[rb + m] * TA[rb + m]
    n1 = math.sqrt(n1)
    n2 = math.sqrt(n2)
    i1 = unit_scale(n1)
    i2 = unit_scale(n2)
    for blk in range(npar):
        pa, pb = block_parities(blk, npar, apar)
        base = blk * M
        H = 0.0
        J = 0.0
        R = 0.0
        D = 0.0
        Hb = 0.0
        for m in range(M - 1, -1, -1):  # Horner, highest order first
            a1 = TA[ra + base + m]
            a2 = TA[rb + base + m]
            H, J, R, D, Hb = mehler_gap_step(H, J, R, D, Hb, u, a1, a2, TB[ra + base + m], TB[rb + base + m], i1, i2)
        cv, g, ag, D = parity_terms(pa, c, t, d, H, R, J, D)
        cov += cv
        gap += g
        agap += ag
        diff += D
        dcov += parity_dcov(pb, c, Hb)
    mismatch = gap_mismatch(diff, n1, n2)
    return cov, mismatch + gap, mismatch + agap, dcov


# ---------------------------------------------------------------------------------------------------------------
# Hermite coefficients
# ---------------------------------------------------------------------------------------------------------------


#: from this variance on, phi' comes from phi's coefficients (Stein) instead of its own quadrature
HERMITE_STEIN_Q = 1e-4
#: below this variance the coefficients come from the Taylor coefficients of phi at 0 (:func:`taylor_coefficients`)
HERMITE_TAYLOR_Q = 1e-6
#: number of Taylor coefficients phi^(n)(0), n < TAYLOR_TERMS, kept for the small-variance series
TAYLOR_TERMS = 24
#: the reference variance (sigma_0 = 1/4) and order of the Hermite coefficients the Taylor coefficients come from
TAYLOR_REF_Q = 1.0 / 16.0
TAYLOR_REF_ORDER = 96


def _on_nodes(fn, activation, u, sw):
    with np.errstate(over="ignore", invalid="ignore"):
        f = np.asarray(fn(u), dtype=np.float64) * sw
    f[:, sw == 0] = 0.0
    if not np.all(np.isfinite(f)):
        raise ValueError(f"activation {activation.name!r} returned non-finite values on the quadrature nodes")
    return f


def _fold(f, psi):
    """Coefficients ``f @ psi.T`` on symmetric nodes (an even count): psi_k(-z) = (-1)^k psi_k(z), so even k take
    f(z) + f(-z) and odd k f(z) - f(-z) over the positive nodes only (half the products; an exactly odd or even
    f gives exact zeros for the other parity)."""
    h = f.shape[1] // 2
    fp, fm = f[:, h:], f[:, h - 1 :: -1]
    out = np.empty((f.shape[0], psi.shape[0]))
    out[:, 0::2] = (fp + fm) @ psi[0::2, h:].T
    out[:, 1::2] = (fp - fm) @ psi[1::2, h:].T
    return out


def _coefficients_at(activation: Activation, q: np.ndarray, order: int):
    """(a, b) to ``order`` by the one 1-D rule (:func:`meanfield.gaussian.quadrature.hermite_basis`), built for
    the largest variance of the batch.

    For ``q >= HERMITE_STEIN_Q``, b comes from a by Stein's identity E[phi'(sqrt q z) He_k(z)] =
    E[phi(sqrt q z) He_(k+1)(z)] / sqrt q, i.e. b_k = sqrt((k + 1) / q) a_(k+1): one activation evaluation and one
    product instead of two (the division by sqrt q amplifies a's rounding by at most 100 there). Smaller variances
    evaluate phi' itself.
    """
    tiny = q < HERMITE_TAYLOR_Q
    if np.any(tiny):
        a = np.empty((q.size, order))
        b = np.empty((q.size, order))
        a[tiny], b[tiny] = taylor_rows(activation, q[tiny], order)
        if not np.all(tiny):
            a[~tiny], b[~tiny] = _coefficients_at(activation, q[~tiny], order)
        return a, b
    z, sw, psi = hermite_basis(rule_scale(float(q.max())) if q.size else 0.0, order + 1)
    u = np.sqrt(q)[:, None] * z[None, :]
    a = _fold(_on_nodes(activation.fn, activation, u, sw), psi)
    b = a[:, 1:] * np.sqrt(np.arange(1.0, order + 1.0))[None, :]
    small = q < HERMITE_STEIN_Q
    with np.errstate(divide="ignore", invalid="ignore"):
        b /= np.sqrt(q)[:, None]
    if np.any(small):
        b[small] = _fold(_on_nodes(activation.derivative, activation, u[small], sw), psi[:order])
    return a[:, :order], b


#: Taylor coefficients per activation, keyed by its (fn, derivative) callables (bounded, oldest dropped first)
_TAYLOR_CACHE: dict = {}
_TAYLOR_CACHE_SIZE = 64


def taylor_coefficients(activation) -> np.ndarray:
    r"""Taylor coefficients :math:`t_n = \phi^{(n)}(0)`, ``n < TAYLOR_TERMS``, for the small-variance series.

    :math:`t_0 = \phi(0)` and :math:`t_1 = \phi'(0)` are evaluated; the others come from the Hermite coefficients at
    the reference variance :math:`q_0 = 1/16` (the one 1-D rule) by the scaling relation of Hermite polynomials,
    :math:`\mathrm{He}_n(\gamma z) = \sum_k \frac{n!}{k!\,2^k (n-2k)!}\gamma^{n-2k}(\gamma^2 - 1)^k
    \mathrm{He}_{n-2k}(z)`, taken to :math:`\gamma = 0`:

    .. math:: t_n = q_0^{-n/2}\sum_{k\ge0} (-1)^k\,\frac{\sqrt{(n+2k)!}}{k!\,2^k}\,a_{n+2k}(q_0)

    (derived here). The weights grow only polynomially in k and the :math:`a_j(q_0)` decay faster than any power
    for smooth activations, so the sum converges; the absolute error of :math:`t_n` is about
    :math:`10^{-17}\,4^n`, and an activation that is exactly odd or even on the symmetric nodes gets exact zeros.
    The high orders enter the series of :func:`taylor_rows` only multiplied by powers of ``q <= 1e-6``.
    """
    act = get_activation(activation)
    key = (act.fn, act.derivative)
    try:
        hit = _TAYLOR_CACHE.get(key)
    except TypeError:  # unhashable callables: no caching
        key, hit = None, None
    if hit is not None:
        return hit
    K = TAYLOR_REF_ORDER
    a = _coefficients_at(act, np.array([TAYLOR_REF_Q]), K)[0][0]
    # orders whose coefficients are rounding noise (below 1e-16 of the norm from some order on) are left out: the
    # weights would amplify their noise by up to 1e9
    big = np.nonzero(np.abs(a) > 1e-16 * math.sqrt(float(np.dot(a, a))))[0]
    K = int(big.max()) + 1 if big.size else 0
    t = np.zeros(TAYLOR_TERMS)
    for n in range(2, min(K, TAYLOR_TERMS)):
        k = np.arange((K - 1 - n) // 2 + 1)
        j = n + 2 * k
        lw = np.array([0.5 * math.lgamma(x + 1.0) for x in j]) - np.array([math.lgamma(x + 1.0) for x in k])
        lw -= k * math.log(2.0) + 0.5 * n * math.log(TAYLOR_REF_Q)
        terms = np.where(k % 2 == 0, 1.0, -1.0) * a[j] * np.exp(lw)
        t[n] = math.fsum(terms)
    with np.errstate(all="ignore"):
        t[0] = float(np.asarray(act.fn(np.zeros(1)), dtype=np.float64)[0])
        t[1] = float(np.asarray(act.derivative(np.zeros(1)), dtype=np.float64)[0])
    if not np.all(np.isfinite(t)):
        raise ValueError(f"activation {act.name!r} is not smooth at 0 (non-finite Taylor coefficients)")
    if key is not None:
        if len(_TAYLOR_CACHE) >= _TAYLOR_CACHE_SIZE:
            _TAYLOR_CACHE.pop(next(iter(_TAYLOR_CACHE)))
        _TAYLOR_CACHE[key] = t
    return t


def taylor_rows(activation, q: np.ndarray, order: int):
    r"""(a, b) to ``order`` for small variances ``q < HERMITE_TAYLOR_Q`` from the Taylor coefficients of phi at 0.

    With :math:`\phi(\sqrt q z) = \sum_n t_n q^{n/2} z^n/n!` and :math:`\mathbb E[z^{m+2j}\mathrm{He}_m(z)] =
    (m+2j)!/(j!\,2^j)`,

    .. math:: a_m(q) = \frac{q^{m/2}}{\sqrt{m!}}\sum_{j\ge0}\frac{t_{m+2j}}{j!\,2^j}\,q^j,\qquad
              b_m(q) = \frac{q^{m/2}}{\sqrt{m!}}\sum_{j\ge0}\frac{t_{m+1+2j}}{j!\,2^j}\,q^j

    (derived here; the second is Stein's :math:`b_m = \sqrt{(m+1)/q}\,a_{m+1}` without the division). Every
    coefficient keeps its relative accuracy down to ``q = 0``, where quadrature on the nodes
    :math:`\sqrt q z` loses the powers of :math:`\sqrt q` to rounding. Orders ``m >= TAYLOR_TERMS - 1`` are
    below :math:`10^{-66}` of the leading ones at ``q < 1e-6`` and are set to zero.
    """
    t = taylor_coefficients(activation)
    q = np.asarray(q, dtype=np.float64)
    sq = np.sqrt(q)
    a = np.zeros((q.size, order))
    b = np.zeros((q.size, order))
    N = TAYLOR_TERMS

    def series(first):
        acc = np.zeros(q.size)
        jmax = (N - 1 - first) // 2
        for j in range(jmax, -1, -1):  # Horner in q
            acc = acc * q + t[first + 2 * j] / (math.factorial(j) * 2.0**j)
        return acc

    with np.errstate(under="ignore"):
        for m in range(min(order, N - 1)):
            scale = sq**m / math.sqrt(math.factorial(m))
            a[:, m] = scale * series(m)
            b[:, m] = scale * series(m + 1)
    return a, b


def hermite_coefficients(activation, q, order=None):
    r"""Normalized Hermite coefficients of :math:`\phi(\sqrt q z)` and :math:`\phi'(\sqrt q z)`.

    Parameters
    ----------
    activation : str or Activation
    q : array_like
        Variances, ``q >= 0``.
    order : int, optional
        Number of coefficients. Default: chosen adaptively (the largest ``q`` is sized first, then all rows
        at that order, doubling if needed) until the last eighth of the
        coefficients carries less than ``HERMITE_TAIL = 1e-13`` of the squared norm, for phi (without a_0, which
        cancels from the gaps) and for phi' each against its own norm (at most ``HERMITE_MAX_ORDER = 4096``; there
        a RuntimeWarning reports an error above 1e-9, measured against the one-point moments,
        :func:`truncation_error`).

    Returns
    -------
    a, b : ndarray, shape ``q.shape + (order,)``
        :math:`a_k(q) = \mathbb E[\phi(\sqrt q z)\mathrm{He}_k(z)]/\sqrt{k!}` and the same for :math:`\phi'`.

    Notes
    -----
    Computed by the one 1-D rule (:mod:`meanfield.gaussian.quadrature`: composite Gauss-Legendre with panels
    sized by the order and the largest ``q``) with the Gaussian weight folded into the Hermite functions, so
    nothing overflows; for ``q >= 1e-4`` the coefficients of :math:`\phi'` come from
    those of :math:`\phi` by Stein's identity, :math:`b_k = \sqrt{(k+1)/q}\,a_{k+1}`. Mehler's formula then gives
    every 2-D Gaussian moment,
    :math:`\mathbb E[\phi(u)\phi(v)] = \sum_k a_k(q_1)a_k(q_2)c^k`. The expansion converges geometrically for smooth
    activations, with a ratio that approaches 1 as ``q`` grows (for erf the ratio is ``2q/(1 + 2q)``), so the order
    grows with ``q``: about 140 at ``q = 1`` and 1300 at ``q = 10`` for tanh. Validity: smooth activations,
    ``q <= 10`` for the documented 1e-9 accuracy (beyond, the warning above gives the error: GELU at ``q = 1000``
    is capped with 2e-4); kinked activations (use the closed forms) converge only algebraically. Below
    ``q = 1e-6`` the coefficients come from the series of :func:`taylor_rows` instead, so that each keeps its
    relative precision down to ``q = 0`` (quadrature keeps only ``1e-16`` of the norm, while
    :math:`a_k = O(q^{k/2})`).

    Examples
    --------
    >>> a, b = hermite_coefficients("linear", 4.0, order=3)
    >>> round(float(a[1]), 12), round(float(b[0]), 12), bool(np.abs(a[::2]).max() + np.abs(b[1:]).max() < 1e-14)
    (2.0, 1.0, True)
    """
    act = get_activation(activation)
    q = finite_array(q, "q", low=0.0)
    order = None if order is None else check_int(order, "order")
    flat = q.reshape(-1)
    if order is not None:
        a, b = _coefficients_at(act, flat, order)
    else:
        a, b = adaptive_coefficients(act, flat)
    return a.reshape(q.shape + (-1,)), b.reshape(q.shape + (-1,))


def adaptive_coefficients(act: Activation, q: np.ndarray, start: int = 64):
    """Coefficients to the adaptive order. The row of the largest variance (usually the slowest to converge) is
    sized first on its own, so that all rows are computed once at about the right order (rounded up to a multiple
    of 32), doubling only if some other row needs more."""
    order = min(-(-max(int(start), 64) // 32) * 32, HERMITE_MAX_ORDER)
    if q.size > 1 and start <= 64:
        probe = adaptive_coefficients(act, q[np.argmax(q)][None], start)[0].shape[1]
        order = min(-(-(probe + probe // 7 + 8) // 32) * 32, HERMITE_MAX_ORDER)
    while True:
        a, b = _coefficients_at(act, q, order)
        # the tails of phi's and phi''s coefficients, each relative to its own norm: for small q the norm of a is
        # O(q) against O(1) for b (and the reverse for large q), so one shared norm would drop the smaller set
        # phi's norm leaves out a_0 (the mean), which cancels from every gap: for phi(0) != 0 at small q the gaps
        # are O(q) against a_0^2 = O(1) and need a_1, a_2, ... to their own relative precision
        ok = _tail_ok(a, 1) & _tail_ok(b, 0)
        need = np.where(ok.any(axis=-1), ok.argmax(axis=-1), order)
        used = max(int(need.max()), 1)
        if used <= order - order // 8:
            return a[:, :used].copy(), b[:, :used].copy()
        if order >= HERMITE_MAX_ORDER:
            _warn_truncation(act, q, a, b, need >= order - order // 8)
            return a, b
        order = min(2 * order, HERMITE_MAX_ORDER)


def _tail_ok(x, first):
    """ok[:, k]: the coefficients k, k+1, ... of each row carry at most ``HERMITE_TAIL`` of the squared norm of its
    coefficients from order ``first`` on (``ok[:, :first]`` is False)."""
    mass = x * x
    tail = np.cumsum(mass[:, ::-1], axis=-1)[:, ::-1]
    ok = tail <= HERMITE_TAIL * mass[:, first:].sum(axis=-1)[:, None]
    ok[:, :first] = False
    return ok


def truncation_error(act: Activation, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    r"""Relative error of the truncated Mehler sums of each row, measured against the one-point moments.

    The neglected tails are :math:`T_a = \mathbb E\phi(\sqrt q z)^2 - \sum_k a_k^2` and the same for
    :math:`\phi'` (the moments by the one 1-D rule, accurate to about 1e-14). By Cauchy-Schwarz the tail of every
    Mehler sum, :math:`|\sum_{k\ge K} a_k(q_1)a_k(q_2)c^k| \le \sqrt{T_a(q_1)T_a(q_2)}`, so
    ``max(T_a / E phi^2, T_b / E phi'^2)`` bounds the error of cov (and dcov) relative to
    :math:`\sqrt{\mathbb E\phi(u)^2\,\mathbb E\phi(v)^2}` over all correlations (derived here).
    """
    from .quadrature import expect

    ea = expect(lambda u, z: act.fn(u) ** 2, q)
    eb = expect(lambda u, z: act.derivative(u) ** 2, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        ra = np.where(ea > 0, np.abs(ea - np.einsum("ij,ij->i", a, a)) / ea, 0.0)
        rb = np.where(eb > 0, np.abs(eb - np.einsum("ij,ij->i", b, b)) / eb, 0.0)
    return np.maximum(ra, rb)


def _warn_truncation(act, q, a, b, rows):
    """RuntimeWarning with the measured error when rows capped at ``HERMITE_MAX_ORDER`` miss the documented 1e-9."""
    if not np.any(rows):
        return
    err = truncation_error(act, q[rows], a[rows], b[rows])
    k = int(np.argmax(err))
    if err[k] > HERMITE_WARN:
        import warnings

        warnings.warn(
            f"Hermite expansion of {act.name!r} truncated at order {a.shape[1]} (HERMITE_MAX_ORDER): the Gaussian "
            f"moments are off by up to {err[k]:.1e} relative at q = {q[rows][k]:.6g} (measured against the "
            "one-point moments); the general path keeps 1e-9 for q <= 10",
            RuntimeWarning,
            stacklevel=3,
        )


def pack_parity(a, b):
    """Rows of Hermite coefficients (a of phi, b of phi'), split by the parity of k into zero-padded blocks.

    Returns ``(TA, TB, M, npar, apar)``: 2-D tables with ``npar * M`` columns, ``M`` a multiple of
    ``HERMITE_UNROLL``. When every row's coefficients of one parity of phi (and the other parity of phi') carry
    less than ``PARITY_NOISE`` of its squared norm, that parity is quadrature noise of an odd (or even) activation
    and is dropped: ``npar = 1`` and ``apar`` is the parity of phi's surviving block (phi' keeps ``1 - apar``).
    Otherwise ``npar = 2`` with blocks (even k, odd k) for both. The test is numerical, never by name.
    """
    n, K = a.shape
    M = -(-max(-(-K // 2), 1) // HERMITE_UNROLL) * HERMITE_UNROLL
    ma = np.einsum("ij,ij->i", a, a)
    mb = np.einsum("ij,ij->i", b, b)

    def noise(x, norm):
        return bool(np.all(np.einsum("ij,ij->i", x, x) <= PARITY_NOISE * norm))

    if noise(a[:, 0::2], ma) and noise(b[:, 1::2], mb):
        npar, apar = 1, 1
    elif noise(a[:, 1::2], ma) and noise(b[:, 0::2], mb):
        npar, apar = 1, 0
    else:
        npar, apar = 2, 0
    TA = np.zeros((n, npar * M))
    TB = np.zeros((n, npar * M))
    for blk in range(npar):
        pa, pb = block_parities(blk, npar, apar)
        xa, xb = a[:, pa::2], b[:, pb::2]
        TA[:, blk * M : blk * M + xa.shape[1]] = xa
        TB[:, blk * M : blk * M + xb.shape[1]] = xb
    return TA, TB, M, npar, apar
