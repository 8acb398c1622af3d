r"""Gaussian kernel maps: the expectations behind every NNGP, backward and NTK recursion.

For :math:`(u, v) \sim \mathcal N(0, \Lambda)` with :math:`\Lambda_{11} = q_1`, :math:`\Lambda_{22} = q_2` and
correlation :math:`c = \Lambda_{12}/\sqrt{q_1 q_2}`, this module evaluates

* ``cov``  :math:`= \mathbb E[\phi(u)\phi(v)]`,
* ``dcov`` :math:`= \mathbb E[\phi'(u)\phi'(v)]` (the derivative kernel, by Price's theorem the slope of ``cov``
  in :math:`\Lambda_{12}`),
* ``gap``  :math:`= \sqrt{\mathbb E\phi(u)^2\,\mathbb E\phi(v)^2} - \mathbb E[\phi(u)\phi(v)] \ge 0` and
  ``agap`` :math:`= \sqrt{\mathbb E\phi(u)^2\,\mathbb E\phi(v)^2} + \mathbb E[\phi(u)\phi(v)] \ge 0`, the
  Cauchy-Schwarz gaps that carry :math:`1 - c` and :math:`1 + c` to the next layer without cancellation.

The correlation enters as the pair ``(s, r) = (1 - c, 1 + c)``; each is accurate where it is small, so inputs
arbitrarily close to parallel or anti-parallel keep full relative precision (signal_propagation.md, sec. 2.2 and
2.4). Closed forms come from one table (:mod:`meanfield.activations`): the leaky-ReLU family (arc-cosine kernels of
Cho & Saul 2009; ReLU and linear are slopes 0 and 1) and erf (Williams 1997). Every other activation uses one
general path, the Mehler (Hermite) expansion

.. math:: \mathbb E[\phi(u)\phi(v)] = \sum_{k\ge0} a_k(q_1)\,a_k(q_2)\,c^k,\qquad
          a_k(q) = \mathbb E[\phi(\sqrt q z)\,\mathrm{He}_k(z)]/\sqrt{k!},

with the coefficients from 1-D Gauss-Hermite quadrature and the order chosen adaptively until the neglected tail is
below ``1e-13`` of the total (see :func:`hermite_coefficients`). The sums run by Horner's rule in :math:`c^2`, one
parity of k at a time; a parity whose coefficients are quadrature noise (odd or even activations, detected
numerically) is dropped, which halves the work for tanh, erf-like and sine activations.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit
from scipy import special

from ..activations import KIND_ERF, KIND_HERMITE, KIND_LEAKY, Activation, get_activation

__all__ = [
    "hermite_coefficients",
    "gaussian_moments",
    "variance_map",
    "correlation_map",
    "decorrelation_map",
    "correlation_slope",
]

_PI = math.pi
_TWO_OVER_PI = 2.0 / math.pi
_FOUR_OVER_PI = 4.0 / math.pi

#: relative size of the neglected Hermite tail
HERMITE_TAIL = 1e-13
#: largest Hermite order the general path will use
HERMITE_MAX_ORDER = 4096
#: a tail above this (relative) at the largest order is reported with a RuntimeWarning
HERMITE_WARN = 1e-9


# ---------------------------------------------------------------------------------------------------------------
# scalar kernels (numba)
# ---------------------------------------------------------------------------------------------------------------


# Taylor coefficients of h(theta) / theta^3 in powers of theta^2: (-1)^(k+1) 2k / (2k+1)!, k = 1..14
_H_COEF = tuple((-1.0) ** (k + 1) * 2.0 * k / math.factorial(2 * k + 1) for k in range(1, 15))


@njit(cache=True, error_model="numpy", inline="always")
def _h_series(theta):
    """h(theta) for theta < 0.1: the first six Taylor terms (relative error below 1e-18); straight-line Horner so
    that the pair loops vectorize."""
    t2 = theta * theta
    acc = _H_COEF[0] + t2 * (_H_COEF[1] + t2 * (_H_COEF[2] + t2 * (_H_COEF[3] + t2 * (_H_COEF[4] + t2 * _H_COEF[5]))))
    return acc * theta * t2


@njit(cache=True, error_model="numpy")
def _h(theta):
    """h(theta) = sin(theta) - theta cos(theta) on [0, pi], without cancellation at small theta."""
    if theta < 0.1:
        return _h_series(theta)
    return math.sin(theta) - theta * math.cos(theta)


@njit(cache=True, error_model="numpy", inline="always")
def _corr(s, r):
    """The correlation c from (s, r) = (1 - c, 1 + c), from whichever side is exact."""
    return 1.0 - s if s <= r else r - 1.0


@njit(cache=True, error_model="numpy")
def _erf_asin(q1, q2):
    """(rho, sqrt(1 - rho^2), arcsin rho) with rho = 2 sqrt(q1 q2) / sqrt((1 + 2 q1)(1 + 2 q2)).

    Written as an atan2 (exact as q -> infinity) and with the same operations for q1 == q2 as for the one-point
    variance, so that the Cauchy-Schwarz gap of equal variances cancels to exactly zero.
    """
    d1 = 1.0 + 2.0 * q1
    d2 = 1.0 + 2.0 * q2
    rho = 2.0 * math.sqrt(q1 * q2) / math.sqrt(d1 * d2)
    sq_rho = math.sqrt((1.0 + 2.0 * q1 + 2.0 * q2) / (d1 * d2))
    return rho, sq_rho, math.atan2(rho, sq_rho)


@njit(cache=True, error_model="numpy")
def _var(kind, slope, q):
    """One-point moments (E phi(sqrt q z)^2, E phi'(sqrt q z)^2) of the closed forms."""
    if kind == KIND_LEAKY:
        e = 0.5 * (1.0 + slope * slope)
        return e * q, e
    return _TWO_OVER_PI * _erf_asin(q, q)[2], _FOUR_OVER_PI / math.sqrt(1.0 + 4.0 * q)


@njit(cache=True, error_model="numpy")
def _asin_diff(a, b, a2_minus_b2, sqa, sqb):
    """arcsin(a) - arcsin(b) for 0 <= b <= a <= 1, given a^2 - b^2 exactly, sqa = sqrt(1 - a^2), sqb = sqrt(1 - b^2)."""
    num = a2_minus_b2 / (a * sqb + b * sqa) if a > 0.0 else 0.0
    return math.atan2(num, sqa * sqb + a * b)


# fdlibm (e_asin.c) rational approximation asin(y) = y + y R(y^2), R = z P(z) / Q(z), for z = y^2 <= 1/4, with
# |R(z) - (asin(y) - y) / y| < 2^-58.75 on that range (so asin to within 1 ulp)
_AS_P = (
    1.66666666666666657415e-01,
    -3.25565818622400915405e-01,
    2.01212532134862925881e-01,
    -4.00555345006794114027e-02,
    7.91534994289814532176e-04,
    3.47933107596021167570e-05,
)
_AS_Q = (-2.40339491173441421878e00, 2.02094576023350569471e00, -6.88283971605453293030e-01, 7.70381505559019352791e-02)
_PIO2_HI = 1.57079632679489655800e00  # pi/2 = _PIO2_HI + _PIO2_LO to 2^-106
_PIO2_LO = 6.12323399573676603587e-17


@njit(cache=True, error_model="numpy", inline="always")
def _acos1m(e):
    """arccos(1 - e) for 0 <= e <= 1 (theta in [0, pi/2]) from e itself, exact as e -> 0, with no libm call.

    Branch-free apart from a select, so the pair loops vectorize (numba has no vector asin). With y = sqrt(e/2),
    theta = 2 arcsin(y) for e <= 1/2 (z = y^2 = e/2 exactly); otherwise theta = pi/2 - arcsin(1 - e) with 1 - e
    exact (Sterbenz) and z = (1 - e)^2. Both use one rational arcsin on z <= 1/4 (fdlibm's e_asin.c); the result
    is within ~1.5 ulp, like 2 asin(sqrt(e/2)) with libm.
    """
    half = e <= 0.5
    root = math.sqrt(0.5 * e)  # unconditional: a libm call under a branch would stop the vectorizer
    y = root if half else 1.0 - e
    z = 0.5 * e if half else y * y
    p = z * (_AS_P[0] + z * (_AS_P[1] + z * (_AS_P[2] + z * (_AS_P[3] + z * (_AS_P[4] + z * _AS_P[5])))))
    q = 1.0 + z * (_AS_Q[0] + z * (_AS_Q[1] + z * (_AS_Q[2] + z * _AS_Q[3])))
    yr = y * (p / q)
    return 2.0 * (y + yr) if half else _PIO2_HI - (y - (_PIO2_LO - yr))


@njit(cache=True, error_model="numpy", inline="always")
def _leaky_pair(a, sq12, s, r):
    """Arc-cosine kernels of the leaky-ReLU family; ``sq12 = sqrt(q1 q2)``."""
    # theta = arccos c and pi - theta, each from the exact side; c from the same side
    lo = s <= r
    phi = _acos1m(s if lo else r)
    theta = phi if lo else _PI - phi
    pi_minus_theta = _PI - phi if lo else phi
    c = 1.0 - s if lo else r - 1.0
    # h = sin(theta) - theta cos(theta) with sin(theta) = sqrt(s r) and cos(theta) = c; below theta = 0.1 the
    # difference cancels, so use the series there (6 terms reach 1e-18 relative)
    # (both sides computed, then selected: no call under a branch, so the pair loops vectorize)
    sin_theta = math.sqrt(s * r)
    h_far = sin_theta - theta * c
    h = _h_series(theta) if theta < 0.1 else h_far
    # h(pi - theta) = h(theta) + pi c, which cancels as c -> -1: it gets its own series there
    hc_far = sin_theta + pi_minus_theta * c
    hc = _h_series(pi_minus_theta) if pi_minus_theta < 0.1 else hc_far
    sq = sq12 / (2.0 * _PI)
    ia = (1.0 - a) * (1.0 - a)
    ea = 1.0 + a * a
    # E[phi phi] = (1 + a^2) k1(theta) - 2a k1(pi - theta), k1(theta) = sq h(pi - theta) (Cho & Saul)
    cov = sq * (ea * hc - 2.0 * a * h)
    gap = sq * (ea * _PI * s - ia * h)
    agap = sq * (ea * _PI * r + ia * h)
    dcov = (ea * pi_minus_theta + 2.0 * a * theta) / (2.0 * _PI)
    return cov, gap, agap, dcov


@njit(cache=True, error_model="numpy")
def _erf_pair(q1, q2, s, r):
    c = _corr(s, r)
    rho, sq_rho, asin_rho = _erf_asin(q1, q2)
    sr = s * r  # 1 - c^2
    sq_rhoc = math.sqrt(sq_rho * sq_rho + rho * rho * sr)  # sqrt(1 - rho^2 c^2)
    asin_rhoc = math.atan2(rho * c, sq_rhoc)
    mismatch = math.sqrt(_erf_asin(q1, q1)[2] * _erf_asin(q2, q2)[2]) - asin_rho  # zero when q1 == q2
    rc = rho * abs(c)
    d = s if c >= 0.0 else r  # 1 - |c|, exact
    # arcsin(rho) - arcsin(rho |c|) cancels as |c| -> 1: use the stable difference formula there
    near = _asin_diff(rho, rc, rho * rho * d * (2.0 - d), sq_rho, sq_rhoc)
    far = asin_rho + math.atan2(rc, sq_rhoc)
    if c >= 0.0:
        gap, agap = mismatch + near, mismatch + far
    else:
        gap, agap = mismatch + far, mismatch + near
    cov = _TWO_OVER_PI * asin_rhoc
    dcov = _FOUR_OVER_PI / math.sqrt(1.0 + 2.0 * q1 + 2.0 * q2 + 4.0 * q1 * q2 * sr)
    return cov, _TWO_OVER_PI * gap, _TWO_OVER_PI * agap, dcov


#: the Mehler loops take this many coefficients per pass; parity blocks are zero-padded to a multiple of it
HERMITE_UNROLL = 4
#: a parity whose squared coefficients sum to less than this fraction of every row's norm is quadrature noise
PARITY_NOISE = 1e-30


@njit(cache=True, error_model="numpy", inline="always")
def _parity_terms(pa, c, t, d, H, P, J, D):
    """Contributions of one parity block to (cov, gap part, agap part, squared distance).

    For k = 2m + pa, with u = c^2: ``H = sum_m p_m u^m``, ``P = sum_m p_m`` and ``J = sum_m p_m sum_{j<m} u^j``
    (p = a1 a2). Since 1 - t^(2m) = (1 - t)(1 + t) sum_{j<m} u^j and 1 - t^(2m+1) = (1 - t)(1 + t (1 + t)
    sum_{j<m} u^j), ``S = sum p (1 - t^k)`` comes out as (1 - t) times sums of non-negative weights (no
    cancellation as t -> 1), and ``sum p (1 + t^k) = 2 P - S``. Odd k swap the two when c < 0.
    """
    if pa == 0:
        S = d * (1.0 + t) * J
        return H, S, 2.0 * P - S, D
    S = d * (P + t * (1.0 + t) * J)
    if c >= 0.0:
        return c * H, S, 2.0 * P - S, D
    return c * H, 2.0 * P - S, S, D


@njit(cache=True, error_model="numpy")
def _hermite_pair(TA, TB, ra, rb, M, npar, apar, s, r):
    """Mehler sums for one pair from the parity-packed rows at offsets ``ra``, ``rb`` of the flat tables (TA, TB)
    (``npar`` blocks of ``M`` coefficients each, see :func:`_pack_parity`): the same sums, in the same order, as
    the column kernel of :mod:`meanfield.propagation`."""
    c = _corr(s, r)
    t = abs(c)
    u = c * c
    d = s if c >= 0.0 else r  # d = 1 - |c|, exact
    cov = 0.0
    dcov = 0.0
    gap = 0.0
    agap = 0.0
    diff = 0.0
    n1 = 0.0
    n2 = 0.0
    for blk in range(npar):
        pa = blk if npar == 2 else apar  # parity of k for phi's block ...
        pb = blk if npar == 2 else 1 - apar  # ... and for phi' (opposite when phi has one parity)
        base = blk * M
        H = 0.0
        J = 0.0
        R = 0.0
        D = 0.0
        Hb = 0.0
        for m in range(M - 1, -1, -1):  # Horner, highest order first
            a1 = TA[ra + base + m]
            a2 = TA[rb + base + m]
            p = a1 * a2
            J = J * u + R
            R += p
            H = H * u + p
            e = a1 - a2
            D += e * e
            Hb = Hb * u + TB[ra + base + m] * TB[rb + base + m]
            n1 += a1 * a1
            n2 += a2 * a2
        cv, g, ag, D = _parity_terms(pa, c, t, d, H, R, J, D)
        cov += cv
        gap += g
        agap += ag
        diff += D
        dcov += c * Hb if pb == 1 else Hb
    # sqrt(n1 n2) - a1.a2 without cancellation: half the squared distance minus the norm mismatch
    mismatch = 0.5 * diff - 0.5 * (math.sqrt(n1) - math.sqrt(n2)) ** 2
    return cov, mismatch + gap, mismatch + agap, dcov


@njit(cache=True, error_model="numpy", inline="always")
def _pair(kind, slope, q1, q2, sq12, s, r, TA, TB, ra, rb, M, npar, apar):
    """(cov, gap, agap, dcov) for one pair: the single dispatch point of the closed-form table.

    ``sq12 = sqrt(q1 q2)``, precomputed by the callers from per-input square roots; (TA, TB, ra, rb, M, npar,
    apar) locate the parity-packed Hermite rows of the general path (:func:`_pack_parity`).
    """
    if kind == KIND_LEAKY:
        return _leaky_pair(slope, sq12, s, r)
    if kind == KIND_ERF:
        return _erf_pair(q1, q2, s, r)
    return _hermite_pair(TA, TB, ra, rb, M, npar, apar, s, r)


@njit(cache=True, error_model="numpy", inline="always")
def _next_corr(sw, sb, sv1, sv2, sqn1, sqn2, gap, agap):
    """(s, r) of the next layer from the Cauchy-Schwarz gaps, with the bias mixed in without cancellation.

    Arguments are square roots of the one-point moments ``sv_i = sqrt(v_i)`` and of the next variances
    ``sqn_i = sqrt(q_i')``. With a = sigma_w^2, b = sigma_b^2, q_i' = a v_i + b:
    sqrt(q1' q2') - (a sqrt(v1 v2) + b) = a b (sqrt v1 - sqrt v2)^2 / (sqrt(q1' q2') + a sqrt(v1 v2) + b),
    so 1 - c' = (that + a gap) / sqrt(q1' q2') and 1 + c' = (that + a agap + 2 b) / sqrt(q1' q2').
    """
    den = sqn1 * sqn2
    mix = 0.0
    if sb > 0.0:
        mix = sw * sb * (sv1 - sv2) ** 2 / (den + sw * sv1 * sv2 + sb)
    inv = 1.0 / den
    s = (mix + sw * gap) * inv
    r = (mix + sw * agap + 2.0 * sb) * inv
    return min(max(s, 0.0), 2.0), min(max(r, 0.0), 2.0)


# ---------------------------------------------------------------------------------------------------------------
# Hermite coefficients (the general path)
# ---------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _hermite_basis(nodes: int, order: int):
    """Probabilists' Gauss-Hermite nodes and sqrt(w) * He_k(z)/sqrt(k!) (bounded: the Gaussian is folded in)."""
    z, w = special.roots_hermitenorm(nodes)
    w = w / math.sqrt(2.0 * math.pi)
    sw = np.sqrt(w)
    psi = np.empty((order, nodes))
    psi[0] = sw
    if order > 1:
        psi[1] = z * sw
    for k in range(1, order - 1):
        psi[k + 1] = (z * psi[k] - math.sqrt(k) * psi[k - 1]) / math.sqrt(k + 1.0)
    return z, sw, psi


#: from this variance on, phi' comes from phi's coefficients (Stein) instead of its own quadrature
HERMITE_STEIN_Q = 1e-4


def _on_nodes(fn, activation, u, sw):
    with np.errstate(over="ignore", invalid="ignore"):
        f = np.asarray(fn(u), dtype=np.float64) * sw
    f[:, sw == 0] = 0.0
    if not np.all(np.isfinite(f)):
        raise ValueError(f"activation {activation.name!r} returned non-finite values on Gauss-Hermite nodes")
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
    """(a, b) to ``order`` by Gauss-Hermite quadrature with ``max(3 order / 2, 128)`` nodes (an even number).

    For ``q >= HERMITE_STEIN_Q``, b comes from a by Stein's identity E[phi'(sqrt q z) He_k(z)] =
    E[phi(sqrt q z) He_(k+1)(z)] / sqrt q, i.e. b_k = sqrt((k + 1) / q) a_(k+1): one activation evaluation and one
    product instead of two (the division by sqrt q amplifies a's rounding by at most 100 there). Smaller variances
    evaluate phi' itself.
    """
    nodes = max(order + order // 2, 128)
    nodes += nodes % 2
    z, sw, psi = _hermite_basis(nodes, order + 1)
    u = np.sqrt(q)[:, None] * z[None, :]
    a = _fold(_on_nodes(activation.fn, activation, u, sw), psi)
    b = a[:, 1:] * np.sqrt(np.arange(1.0, order + 1.0))[None, :]
    small = q < HERMITE_STEIN_Q
    with np.errstate(divide="ignore", invalid="ignore"):
        b /= np.sqrt(q)[:, None]
    if np.any(small):
        b[small] = _fold(_on_nodes(activation.derivative, activation, u[small], sw), psi[:order])
    return a[:, :order], b


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
        coefficients carries less than ``HERMITE_TAIL = 1e-13`` of the squared norm (at most 4096; a RuntimeWarning
        reports a tail above 1e-9 at that order).

    Returns
    -------
    a, b : ndarray, shape ``q.shape + (order,)``
        :math:`a_k(q) = \mathbb E[\phi(\sqrt q z)\mathrm{He}_k(z)]/\sqrt{k!}` and the same for :math:`\phi'`.

    Notes
    -----
    Computed by Gauss-Hermite quadrature with ``max(3 * order / 2, 128)`` nodes and the Gaussian weight folded into
    the Hermite functions, so nothing overflows; for ``q >= 1e-4`` the coefficients of :math:`\phi'` come from
    those of :math:`\phi` by Stein's identity, :math:`b_k = \sqrt{(k+1)/q}\,a_{k+1}`. Mehler's formula then gives
    every 2-D Gaussian moment,
    :math:`\mathbb E[\phi(u)\phi(v)] = \sum_k a_k(q_1)a_k(q_2)c^k`. The expansion converges geometrically for smooth
    activations, with a ratio that approaches 1 as ``q`` grows (for erf the ratio is ``2q/(1 + 2q)``), so the order
    grows with ``q``: about 100 at ``q = 1`` and 900 at ``q = 10`` for tanh. Validity: smooth activations,
    ``q <= 10`` for the documented 1e-9 accuracy; kinked activations (use the closed forms) converge only
    algebraically.

    Examples
    --------
    >>> a, b = hermite_coefficients("linear", 4.0, order=3)
    >>> round(float(a[1]), 12), round(float(b[0]), 12), bool(np.abs(a[::2]).max() + np.abs(b[1:]).max() < 1e-14)
    (2.0, 1.0, True)
    """
    act = get_activation(activation)
    q = np.asarray(q, dtype=np.float64)
    if not np.all(np.isfinite(q)) or np.any(q < 0):
        raise ValueError("q must be finite and >= 0")
    flat = q.reshape(-1)
    if order is not None:
        a, b = _coefficients_at(act, flat, int(order))
    else:
        a, b = _adaptive_coefficients(act, flat)
    return a.reshape(q.shape + (-1,)), b.reshape(q.shape + (-1,))


def _adaptive_coefficients(act: Activation, q: np.ndarray, start: int = 64):
    """Coefficients to the adaptive order. The row of the largest variance (usually the slowest to converge) is
    sized first on its own, so that all rows are computed once at about the right order (rounded up to a multiple
    of 32), doubling only if some other row needs more."""
    order = min(-(-max(int(start), 64) // 32) * 32, HERMITE_MAX_ORDER)
    if q.size > 1 and start <= 64:
        probe = _adaptive_coefficients(act, q[np.argmax(q)][None], start)[0].shape[1]
        order = min(-(-(probe + probe // 7 + 8) // 32) * 32, HERMITE_MAX_ORDER)
    while True:
        a, b = _coefficients_at(act, q, order)
        mass = a * a + b * b
        norm = mass.sum(axis=-1)
        # tail[:, k] = mass carried by coefficients k, k+1, ...
        tail = np.cumsum(mass[:, ::-1], axis=-1)[:, ::-1]
        ok = tail <= HERMITE_TAIL * norm[:, None]
        need = np.where(ok.any(axis=-1), ok.argmax(axis=-1), order)
        used = max(int(need.max()), 1)
        if used <= order - order // 8:
            return a[:, :used].copy(), b[:, :used].copy()
        if order >= HERMITE_MAX_ORDER:
            worst = float(np.max(tail[:, -1] / norm)) if norm.size else 0.0
            if worst > HERMITE_WARN:
                import warnings

                warnings.warn(
                    f"Hermite expansion of {act.name!r} truncated at order {order} with relative tail {worst:.1e} "
                    f"(max q = {q.max():.3g}); the general path is accurate to 1e-9 for q <= 10",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return a, b
        order = min(2 * order, HERMITE_MAX_ORDER)


def _pack_parity(a, b):
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
        pa = blk if npar == 2 else apar
        pb = blk if npar == 2 else 1 - apar
        xa, xb = a[:, pa::2], b[:, pb::2]
        TA[:, blk * M : blk * M + xa.shape[1]] = xa
        TB[:, blk * M : blk * M + xb.shape[1]] = xb
    return TA, TB, M, npar, apar


# ---------------------------------------------------------------------------------------------------------------
# variance-level moments, shared by the recursions and the phase diagram
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _var_loop(kind, slope, q, v, dv):
    for i in range(q.shape[0]):
        v[i], dv[i] = _var(kind, slope, q[i])


@functools.lru_cache(maxsize=1)
def _gl16():
    x, w = np.polynomial.legendre.leggauss(16)
    return x, w


@functools.lru_cache(maxsize=256)
def _gauss_rule(q: float):
    """Nodes z and weights for E[F(sqrt(q) z)], z ~ N(0, 1): composite 16-point Gauss-Legendre on panels that
    are finest (width ~ 1/(4 sqrt q)) where phi(sqrt(q) z) has its features and grow geometrically out to |z| = 40.
    """
    w0 = 0.25 * min(1.0, 1.0 / math.sqrt(q)) if q > 0 else 0.25
    edges = [0.0]
    width = w0
    while edges[-1] < 40.0:
        edges.append(min(edges[-1] + width, 40.0))
        width *= 1.35
    edges = np.array(edges)
    x, w = _gl16()
    lo, hi = edges[:-1, None], edges[1:, None]
    z = (0.5 * (hi - lo) * x + 0.5 * (hi + lo)).ravel()
    wz = (0.5 * (hi - lo) * w).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return np.concatenate([-z[::-1], z]), np.concatenate([wz[::-1], wz])


def _expect_1d(fn, q):
    """E[fn(sqrt(q) z, z)] for each entry of the array q (1-D Gaussian moments of the general path)."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty(q.size)
    for k, qk in enumerate(q.reshape(-1)):
        z, w = _gauss_rule(float(qk))
        out[k] = np.dot(w, fn(math.sqrt(qk) * z, z))
    return out.reshape(q.shape)


def single_moments(activation, q):
    r"""One-point moments :math:`(\mathbb E\phi(\sqrt q z)^2,\ \mathbb E\phi'(\sqrt q z)^2)`, shaped like ``q``.

    Closed forms for the table's activations; otherwise composite Gauss-Legendre in ``z`` with panels refined
    near ``z = 0`` on the scale ``1/sqrt(q)``, accurate to about 1e-14 for smooth activations at any ``q``.
    """
    act = get_activation(activation)
    q = np.asarray(q, dtype=np.float64)
    if act.kind != KIND_HERMITE:
        flat = np.ascontiguousarray(q).reshape(-1)
        v, dv = np.empty_like(flat), np.empty_like(flat)
        _var_loop(act.kind, float(act.slope), flat, v, dv)
        return v.reshape(q.shape), dv.reshape(q.shape)
    return _expect_1d(lambda u, z: act.fn(u) ** 2, q), _expect_1d(lambda u, z: act.derivative(u) ** 2, q)


def variance_slope(activation, q):
    r""":math:`\frac{d}{dq}\mathbb E[\phi(\sqrt q z)^2] = \mathbb E[z\,\phi(\sqrt q z)\phi'(\sqrt q z)]/\sqrt q`.

    The slope of the variance map is ``sigma_w2`` times this (signal_propagation.md, sec. 3: it equals
    :math:`\chi_1 + \sigma_w^2\int Dz\,\phi''\phi` by Stein's lemma, so no second derivative is needed).
    Closed forms for the leaky-ReLU family, ``(1 + a^2)/2``, and erf, :math:`4/(\pi(1+2q)\sqrt{1+4q})`;
    composite Gauss-Legendre otherwise (``q`` is floored at 1e-12, where the slope tends to
    :math:`\phi'(0)^2 + \phi(0)\phi''(0)`).
    """
    act = get_activation(activation)
    q = np.asarray(q, dtype=np.float64)
    if act.kind == KIND_LEAKY:
        return np.full_like(q, 0.5 * (1.0 + act.slope**2))
    if act.kind == KIND_ERF:
        return _FOUR_OVER_PI / ((1.0 + 2.0 * q) * np.sqrt(1.0 + 4.0 * q))
    qf = np.maximum(q, 1e-12)
    return _expect_1d(lambda u, z: z * act.fn(u) * act.derivative(u), qf) / np.sqrt(qf)


# ---------------------------------------------------------------------------------------------------------------
# public maps
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _pairs_loop(kind, slope, q1, q2, s, r, TA, TB, ia, ib, M, npar, apar, out):
    for i in range(q1.shape[0]):
        sq12 = math.sqrt(q1[i]) * math.sqrt(q2[i])
        cov, gap, agap, dcov = _pair(kind, slope, q1[i], q2[i], sq12, s[i], r[i], TA, TB, ia[i], ib[i], M, npar, apar)
        out[0, i] = cov
        out[1, i] = gap
        out[2, i] = agap
        out[3, i] = dcov
        if kind == KIND_HERMITE:
            out[4, i] = np.sum(TA[ia[i] : ia[i] + npar * M] ** 2)
        else:
            out[4, i] = _var(kind, slope, q1[i])[0]


def _check_real(name, x, lo=None, hi=None):
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite")
    if lo is not None and np.any(x < lo):
        raise ValueError(f"{name} must be >= {lo}")
    if hi is not None and np.any(x > hi):
        raise ValueError(f"{name} must be <= {hi}")
    return x


def _pair_moments(act: Activation, q1, q2, s, r):
    """Vectorized (cov, gap, agap, dcov, v1) over broadcast arrays; the one Python entry to :func:`_pair`.

    ``v1`` is E phi(sqrt(q1) z)^2 in the same representation as the gaps (the coefficient norm on the general
    path), so that 1 - c formed from them is consistent to rounding.
    """
    q1, q2, s, r = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in (q1, q2, s, r)))
    shape = q1.shape
    q1, q2, s, r = (np.ascontiguousarray(x).reshape(-1) for x in (q1, q2, s, r))
    n = q1.size
    if act.kind == KIND_HERMITE:
        qs, inv = np.unique(np.concatenate([q1, q2]), return_inverse=True)
        a, b, M, npar, apar = _pack_parity(*hermite_coefficients(act, qs))
        inv = inv.reshape(-1).astype(np.int64) * a.shape[1]  # offsets of the rows in the flat tables
        ia, ib = inv[:n].copy(), inv[n:].copy()
        a, b = a.ravel(), b.ravel()
    else:
        M, npar, apar = 0, 0, 0
        a = b = np.zeros(1)
        ia = ib = np.zeros(n, dtype=np.int64)
    out = np.empty((5, n))
    _pairs_loop(act.kind, float(act.slope), q1, q2, s, r, a, b, ia, ib, M, npar, apar, out)
    return tuple(o.reshape(shape) for o in out)


def gaussian_moments(q1, q2, c, activation="relu"):
    r"""The two Gaussian expectations behind every kernel map.

    Parameters
    ----------
    q1, q2 : array_like
        Variances :math:`\Lambda_{11}, \Lambda_{22} \ge 0`.
    c : array_like
        Correlation :math:`\Lambda_{12}/\sqrt{\Lambda_{11}\Lambda_{22}}` in ``[-1, 1]``.
    activation : str or Activation

    Returns
    -------
    cov, dcov : ndarray
        :math:`\mathbb E[\phi(u)\phi(v)]` and :math:`\mathbb E[\phi'(u)\phi'(v)]`.

    Notes
    -----
    ReLU / leaky ReLU with slope :math:`a` (arc-cosine kernels, signal_propagation.md sec. 2.2), with
    :math:`\theta = \arccos c` and :math:`h(\theta) = \sin\theta - \theta\cos\theta`:

    .. math:: \mathbb E[\phi\phi] = \tfrac{\sqrt{q_1q_2}}{2\pi}\big[(1-a)^2 h(\theta) + (1+a^2)\pi c\big],\qquad
              \mathbb E[\phi'\phi'] = \tfrac{(1+a^2)(\pi-\theta) + 2a\theta}{2\pi}.

    erf (Williams 1997; sheet sec. 2.3):
    :math:`\frac2\pi\arcsin\frac{2\Lambda_{12}}{\sqrt{(1+2q_1)(1+2q_2)}}` and
    :math:`\frac4\pi[(1+2q_1)(1+2q_2) - 4\Lambda_{12}^2]^{-1/2}`.
    Other activations: Mehler expansion (:func:`hermite_coefficients`). :math:`\theta` and :math:`\pi-\theta` are
    both computed from the exact side (``1 - c`` or ``1 + c``), and :math:`h` from its Taylor series for small
    :math:`\theta`, so the forms keep full relative precision at ``c = ±1``.

    Examples
    --------
    >>> cov, dcov = gaussian_moments(1.0, 1.0, 0.5)
    >>> round(float(cov), 10), round(float(dcov), 10)
    (0.3044988905, 0.3333333333)
    >>> [round(float(x), 12) for x in gaussian_moments(1.0, 1.0, 0.5, "erf")]
    [0.216346895939, 0.450158158079]
    """
    act = get_activation(activation)
    q1 = _check_real("q1", q1, 0.0)
    q2 = _check_real("q2", q2, 0.0)
    c = _check_real("c", c, -1.0, 1.0)
    cov, _, _, dcov, _ = _pair_moments(act, q1, q2, 1.0 - c, 1.0 + c)
    return cov, dcov


def _layer_args(activation, sigma_w2, sigma_b2):
    act = get_activation(activation)
    sw = float(_check_real("sigma_w2", sigma_w2))
    sb = float(_check_real("sigma_b2", sigma_b2))
    if not sw > 0:
        raise ValueError(f"sigma_w2 must be > 0, got {sigma_w2!r}")
    if not sb >= 0:
        raise ValueError(f"sigma_b2 must be >= 0, got {sigma_b2!r}")
    return act, sw, sb


def variance_map(q, activation="relu", sigma_w2=2.0, sigma_b2=0.0):
    r"""Length map :math:`q_{l+1} = \sigma_w^2\int Dz\,\phi(\sqrt{q_l}z)^2 + \sigma_b^2` (sheet sec. 2.1).

    Examples
    --------
    >>> float(variance_map(1.0))
    1.0
    >>> round(float(variance_map(1.0, "erf", 1.0, 0.0)), 12)  # (2/pi) arcsin(2/3)
    0.464559054398
    """
    act, sw, sb = _layer_args(activation, sigma_w2, sigma_b2)
    v, _ = single_moments(act, _check_real("q", q, 0.0))
    return sw * v + sb


def _corr_step(act, sw, sb, q, s, r):
    """One correlation step at equal variances q: returns (s', r', slope dc'/dc)."""
    q = np.asarray(q, dtype=np.float64)
    cov, gap, agap, dcov, v = _pair_moments(act, q, q, s, r)
    qn = sw * v + sb
    with np.errstate(divide="ignore", invalid="ignore"):
        s_next = np.clip(sw * gap / qn, 0.0, 2.0)
        r_next = np.clip((sw * agap + 2.0 * sb) / qn, 0.0, 2.0)
        slope = q * sw * dcov / qn
    degenerate = qn == 0
    s_next = np.where(degenerate, 0.0, s_next)
    r_next = np.where(degenerate, 2.0, r_next)
    return s_next, r_next, slope


def correlation_map(c, activation="relu", q=1.0, sigma_w2=2.0, sigma_b2=0.0):
    r"""Correlation of the next layer's pre-activations, :math:`c_{l+1} = C(c_l)` at equal variances ``q``.

    Parameters
    ----------
    c : array_like
        Input correlations, in ``[-1, 1]``.
    activation : str or Activation
    q : array_like
        Variance :math:`q_l` of both inputs at this layer.
    sigma_w2, sigma_b2 : float

    Returns
    -------
    ndarray
        :math:`c_{l+1} = (\sigma_w^2\mathbb E[\phi(u)\phi(v)] + \sigma_b^2)/q_{l+1}`, same shape as ``c``.

    Notes
    -----
    For ReLU at (2, 0) this is :math:`g(c) = (c\arcsin c + \sqrt{1 - c^2})/\pi + c/2` (seed 000, eq. (3)).
    Near ``c = 1`` use :func:`decorrelation_map`, which keeps full relative precision in :math:`1 - c`.

    Examples
    --------
    >>> round(float(correlation_map(0.0)), 15)   # 1/pi
    0.318309886183791
    """
    act, sw, sb = _layer_args(activation, sigma_w2, sigma_b2)
    c = _check_real("c", c, -1.0, 1.0)
    q = _check_real("q", q, 0.0)
    s_next, r_next, _ = _corr_step(act, sw, sb, q, 1.0 - c, 1.0 + c)
    return np.where(s_next <= r_next, 1.0 - s_next, r_next - 1.0)


def decorrelation_map(s, activation="relu", q=1.0, sigma_w2=2.0, sigma_b2=0.0):
    r"""The map :math:`s_{l+1} = 1 - c_{l+1}` as a function of :math:`s_l = 1 - c_l`, exact as :math:`s \to 0`.

    Notes
    -----
    Computed from the Cauchy-Schwarz gap :math:`\sqrt{\mathbb E\phi(u)^2\mathbb E\phi(v)^2} - \mathbb E[\phi(u)\phi(v)]`
    in closed or Mehler form (never as ``1 - c``): for ReLU at (2, 0),
    :math:`s_{l+1} = s_l - h(\theta_l)/\pi` with :math:`\theta_l = 2\arcsin\sqrt{s_l/2}`
    (signal_propagation.md, sec. 2.2).

    Examples
    --------
    >>> s = decorrelation_map(1e-12)  # ReLU at (2, 0): s - (2 sqrt 2 / 3 pi) s^(3/2) + ...
    >>> abs(float(s) / (1e-12 * (1 - 2 * 2**0.5 / (3 * np.pi) * 1e-6)) - 1) < 1e-14
    True
    """
    act, sw, sb = _layer_args(activation, sigma_w2, sigma_b2)
    s = _check_real("s", s, 0.0, 2.0)
    q = _check_real("q", q, 0.0)
    s_next, _, _ = _corr_step(act, sw, sb, q, s, 2.0 - s)
    return s_next


def correlation_slope(c, activation="relu", q=1.0, sigma_w2=2.0, sigma_b2=0.0):
    r"""Slope :math:`\partial c_{l+1}/\partial c_l = q_l\,\dot\Sigma_{l+1}/q_{l+1}` (Price's theorem; never
    finite differences). At ``c = 1`` and ``q = q^*`` this is :math:`\chi_1` (sheet sec. 3).

    Examples
    --------
    >>> float(correlation_slope(0.5))  # ReLU at (2, 0): g'(c) = 1/2 + arcsin(c)/pi
    0.6666666666666666
    """
    act, sw, sb = _layer_args(activation, sigma_w2, sigma_b2)
    c = _check_real("c", c, -1.0, 1.0)
    q = _check_real("q", q, 0.0)
    _, _, slope = _corr_step(act, sw, sb, q, 1.0 - c, 1.0 + c)
    return slope
