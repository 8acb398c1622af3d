r"""Closed forms of the Gaussian kernel maps, compiled: the leaky-ReLU family and erf.

For :math:`(u, v) \sim \mathcal N(0, \Lambda)` with variances :math:`q_1, q_2` and correlation :math:`c`, each pair
function returns ``(cov, gap, agap, dcov)``: :math:`\mathbb E[\phi(u)\phi(v)]`, the Cauchy-Schwarz gaps
:math:`\sqrt{\mathbb E\phi(u)^2\,\mathbb E\phi(v)^2} \mp \mathbb E[\phi(u)\phi(v)]` and
:math:`\mathbb E[\phi'(u)\phi'(v)]`. The correlation enters as the pair ``(s, r) = (1 - c, 1 + c)``, each side
exact where it is small, so the forms keep full relative precision at ``c = ±1``.

* Leaky ReLU with negative slope :math:`a` (ReLU and linear are slopes 0 and 1): the arc-cosine kernels of
  degree 1 and 0 (Cho & Saul 2009), with :math:`\theta = \arccos c` and :math:`h(\theta) = \sin\theta -
  \theta\cos\theta`,

  .. math:: \mathbb E[\phi\phi] = \tfrac{\sqrt{q_1q_2}}{2\pi}\big[(1-a)^2 h(\theta) + (1+a^2)\pi c\big],\qquad
            \mathbb E[\phi'\phi'] = \tfrac{(1+a^2)(\pi-\theta) + 2a\theta}{2\pi};

  for ReLU at :math:`\sigma_w^2 = 2` the correlation map is :math:`g(c) = c + h(\theta)/\pi`, Lou et al. 2022,
  eq. (3).
* erf (Williams 1997): :math:`\frac2\pi\arcsin\frac{2\Lambda_{12}}{\sqrt{(1+2q_1)(1+2q_2)}}` and
  :math:`\frac4\pi[(1+2q_1)(1+2q_2) - 4\Lambda_{12}^2]^{-1/2}`.

The small-angle series of :math:`h`, the branch-free :math:`\arccos(1 - e)` and the gap formulas that avoid
cancellation are derived here (see each function). :func:`leaky_decorrelation` is the same map at
:math:`\sigma_b^2 = 0` in the variables of the peak-layer analysis (:mod:`meanfield.equilibrium`).
"""

from __future__ import annotations

import math

from .._jit import njit
from ..activations import KIND_LEAKY

__all__ = [
    "acos1m",
    "closed_variance",
    "closed_variance_unit",
    "erf_pair",
    "erf_pair_unit",
    "h_theta",
    "leaky_decorrelation",
    "leaky_pair",
    "leaky_unit",
    "pair_correlation",
]

_PI = math.pi
_INV_PI = 1.0 / math.pi
_TWO_OVER_PI = 2.0 / math.pi
_FOUR_OVER_PI = 4.0 / math.pi

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
def h_theta(theta):
    """h(theta) = sin(theta) - theta cos(theta) on [0, pi], without cancellation at small theta."""
    if theta < 0.1:
        return _h_series(theta)
    return math.sin(theta) - theta * math.cos(theta)


@njit(cache=True, error_model="numpy", inline="always")
def pair_correlation(s, r):
    """The correlation c from (s, r) = (1 - c, 1 + c), from whichever side is exact."""
    return 1.0 - s if s <= r else r - 1.0


@njit(cache=True, error_model="numpy", inline="always")
def _asinc(x, sqx):
    """arcsin(x) / x for 0 <= x <= 1 given sqx = sqrt(1 - x^2) (computed without cancellation by the caller), as
    atan2 so that x near 1 loses nothing; 1 below x = 1e-8, where the next term x^2/6 is below the rounding."""
    return math.atan2(x, sqx) / x if x > 1e-8 else 1.0


@njit(cache=True, error_model="numpy", inline="always")
def _atanc(t):
    """arctan(t) / t for t >= 0 (1 below t = 1e-8, where the next term t^2/3 is below the rounding)."""
    return math.atan(t) / t if t > 1e-8 else 1.0


@njit(cache=True, error_model="numpy", inline="always")
def _erf_scales(q):
    """(a, rho_hat, rho) of one variance: a = 1/(1 + 2q), rho_hat = sqrt(2/(1 + 2q)), rho = sqrt(2q/(1 + 2q)).

    Each is a ratio of terms of the size of q, so nothing over- or underflows for any representable q
    (``rho = sqrt(q) rho_hat``; q = 0 gives rho = 0 and rho_hat = sqrt 2).
    """
    h = 0.5 + q
    rho_hat = 1.0 / math.sqrt(h)
    return 0.5 / h, rho_hat, math.sqrt(q) * rho_hat


@njit(cache=True, error_model="numpy", inline="always")
def _erf_self(a, rho):
    """arcsin(x) / x for x = rho^2 = 2q/(1 + 2q), with sqrt(1 - x^2) = sqrt(a (2 - a)) exact."""
    return _asinc(rho * rho, math.sqrt(a * (2.0 - a)))


@njit(cache=True, error_model="numpy")
def closed_variance_unit(kind, slope, q):
    """(E phi(sqrt q z)^2 / q, E phi'(sqrt q z)^2) of the closed forms, finite down to q = 0 (the q -> 0 limit).

    Leaky family: ((1 + a^2)/2, (1 + a^2)/2). erf (Williams 1997): (2/pi) arcsin(x) / q with x = 2q/(1 + 2q),
    written (2/pi) asinc(x) rho_hat^2, and 4 / (pi sqrt(1 + 4q)).
    """
    if kind == KIND_LEAKY:
        e = 0.5 * (1.0 + slope * slope)
        return e, e
    a, rho_hat, rho = _erf_scales(q)
    dv = _FOUR_OVER_PI / math.sqrt(1.0 + 4.0 * q) if q < 1e300 else 0.5 * _FOUR_OVER_PI / math.sqrt(q)
    return _TWO_OVER_PI * _erf_self(a, rho) * (rho_hat * rho_hat), dv


@njit(cache=True, error_model="numpy")
def closed_variance(kind, slope, q):
    """One-point moments (E phi(sqrt q z)^2, E phi'(sqrt q z)^2) of the closed forms (leaky family or erf)."""
    vq, dv = closed_variance_unit(kind, slope, q)
    return vq * q, dv


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
def acos1m(e):
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
def _leaky_angles(s, r):
    """(theta, pi - theta, c, h(theta), h(pi - theta)) of the pair (s, r) = (1 - c, 1 + c), each from its exact side.

    h = sin(theta) - theta cos(theta) with sin(theta) = sqrt(s r) and cos(theta) = c; below theta = 0.1 the
    difference cancels, so the series is used there (6 terms reach 1e-18 relative). h(pi - theta) = h(theta) + pi c
    cancels as c -> -1 and gets its own series. Both sides are computed, then selected: no call under a branch, so
    the pair loops vectorize.
    """
    lo = s <= r
    phi = acos1m(s if lo else r)
    theta = phi if lo else _PI - phi
    pi_minus_theta = _PI - phi if lo else phi
    c = 1.0 - s if lo else r - 1.0
    sin_theta = math.sqrt(s * r)
    h_far = sin_theta - theta * c
    h = _h_series(theta) if theta < 0.1 else h_far
    hc_far = sin_theta + pi_minus_theta * c
    hc = _h_series(pi_minus_theta) if pi_minus_theta < 0.1 else hc_far
    return theta, pi_minus_theta, c, h, hc


@njit(cache=True, error_model="numpy", inline="always")
def leaky_pair(a, sq12, s, r):
    """Arc-cosine kernels of the leaky-ReLU family with slope ``a``: (cov, gap, agap, dcov); ``sq12 = sqrt(q1 q2)``.

    E[phi phi] = (1 + a^2) k1(theta) - 2a k1(pi - theta) with k1(theta) = sqrt(q1 q2) h(pi - theta) / (2 pi)
    (Cho & Saul 2009, degree 1), and the gaps sqrt(q1 q2)(1 + a^2)/2 -/+ E[phi phi] written so that they carry
    s = 1 - c and r = 1 + c without cancellation (derived here).
    """
    cov, gap, agap, dcov = leaky_unit(a, s, r)
    scale = 0.5 * (1.0 + a * a) * sq12  # sqrt(E phi(u)^2 E phi(v)^2)
    return cov * scale, gap * scale, agap * scale, dcov


@njit(cache=True, error_model="numpy", inline="always")
def leaky_unit(a, s, r):
    """:func:`leaky_pair` per unit of sqrt(E phi(u)^2 E phi(v)^2) = (1 + a^2)/2 sqrt(q1) sqrt(q2): (cov, gap, agap)
    divided by it, and dcov. These are the correlation map itself, independent of q (derived here from Cho & Saul
    2009): with kappa = (1 - a)^2 / (1 + a^2), gap = s - kappa h(theta)/pi, agap = r + kappa h(theta)/pi and
    cov = (h(pi - theta) - 2a h(theta) / (1 + a^2)) / pi, as in :func:`leaky_decorrelation`.
    """
    theta, pi_minus_theta, c, h, hc = _leaky_angles(s, r)
    ea = 1.0 + a * a
    kh = ((1.0 - a) * (1.0 - a) / (ea * _PI)) * h  # the factors are loop invariants: no division per pair
    cov = _INV_PI * hc - (2.0 * a / (ea * _PI)) * h
    dcov = (ea * pi_minus_theta + 2.0 * a * theta) / (2.0 * _PI)
    return cov, s - kh, r + kh, dcov


@njit(cache=True, error_model="numpy")
def leaky_decorrelation(kappa, s):
    """One layer of the leaky-ReLU family at sigma_b^2 = 0 in the variable s = 1 - c: ``(s', x)``.

    With kappa = (1 - a)^2 / (1 + a^2) (1 for ReLU) and theta = arccos(1 - s): s' = max(s - kappa h(theta)/pi, 0)
    is :func:`leaky_pair`'s gap divided by E phi^2 (the correlation map does not depend on q or sigma_w^2), and
    x = kappa theta / pi = 1 - E[phi' phi'] / E[phi'^2] is the backward ratio's distance from 1, returned as
    itself so that log(1 - x) = log1p(-x) stays exact (for ReLU, s' = 1 - g(c) and 1 - x = g'(c) of
    Lou et al. 2022, eq. (3)). Derived here.
    """
    theta, _, _, h, _ = _leaky_angles(s, 2.0 - s)
    return max(s - kappa * h / _PI, 0.0), kappa * theta / _PI


@njit(cache=True, error_model="numpy", inline="always")
def erf_pair_unit(q1, q2, s, r):
    """Williams' (1997) erf kernels per unit of sqrt(q1) sqrt(q2): (cov, gap, agap) / (sqrt(q1) sqrt(q2)) and dcov.

    With rho_i = sqrt(2 q_i / (1 + 2 q_i)), rho = rho_1 rho_2 and a_i = 1/(1 + 2 q_i):
    E[phi phi] = (2/pi) arcsin(rho c), 1 - rho^2 = a_1 + a_2 - a_1 a_2 (no product of variances is formed) and
    E[phi' phi'] = (4/pi) sqrt(a_1) sqrt(a_2) / sqrt(1 - rho^2 c^2). Every arcsin / arctan of an argument
    proportional to rho is written as that argument times asinc / atanc, and rho / (sqrt(q1) sqrt(q2)) =
    rho_hat_1 rho_hat_2 is finite, so the forms hold for any representable q_i, including q_i -> 0 (the linear
    limit) and q_i -> infinity (the sign limit). The gaps use the stable arcsin difference (derived here):
    arcsin(rho) - arcsin(rho |c|) = arctan(num / den) with num = rho (1 - |c|)(1 + |c|) / (sqrt(1 - rho^2 c^2) +
    |c| sqrt(1 - rho^2)) and den = sqrt(1 - rho^2) sqrt(1 - rho^2 c^2) + rho^2 |c|, plus the Cauchy-Schwarz
    mismatch sqrt(A_1 A_2) - arcsin(rho) with A_i = arcsin(rho_i^2), exactly zero when q1 == q2.
    """
    c = pair_correlation(s, r)
    a1, h1, rho1 = _erf_scales(q1)
    a2, h2, rho2 = _erf_scales(q2)
    rho = rho1 * rho2
    rho_n = h1 * h2  # rho / (sqrt(q1) sqrt(q2))
    one_m_rho2 = a1 + a2 - a1 * a2
    sq_rho = math.sqrt(one_m_rho2)
    sq_rhoc = math.sqrt(one_m_rho2 + rho * rho * (s * r))  # sqrt(1 - rho^2 c^2)
    ac = abs(c)
    d = s if c >= 0.0 else r  # 1 - |c|, exact
    asinc_rho = _asinc(rho, sq_rho)
    mism = math.sqrt(_erf_self(a1, rho1)) * h1 * (math.sqrt(_erf_self(a2, rho2)) * h2) - asinc_rho * rho_n
    mismatch = 0.0 if q1 == q2 else mism  # sqrt(A1 A2) - arcsin(rho), per unit of sqrt(q1) sqrt(q2)
    # arcsin(rho) - arcsin(rho |c|) cancels as |c| -> 1: the stable difference
    num_n = rho_n * d * (2.0 - d) / (sq_rhoc + ac * sq_rho)
    den = sq_rho * sq_rhoc + rho * rho * ac
    # the ratios first: atanc(t) ~ 1/t and rho_n ~ 1/q would underflow in their product at q ~ 1e300 and c = 1
    near = _atanc(num_n * math.sqrt(q1) * math.sqrt(q2) / den) * (num_n / den)
    tc = _atanc(rho * ac / sq_rhoc) * (rho_n / sq_rhoc)  # arctan(rho |c| / sqrt(1 - rho^2 c^2)) / |c|, per unit
    far = asinc_rho * rho_n + tc * ac
    if c >= 0.0:
        gap, agap = mismatch + near, mismatch + far
    else:
        gap, agap = mismatch + far, mismatch + near
    dcov = _FOUR_OVER_PI * math.sqrt(a1) * math.sqrt(a2) / sq_rhoc
    return _TWO_OVER_PI * tc * c, _TWO_OVER_PI * gap, _TWO_OVER_PI * agap, dcov


@njit(cache=True, error_model="numpy")
def erf_pair(q1, q2, s, r):
    """Williams' (1997) erf kernels: (cov, gap, agap, dcov), :func:`erf_pair_unit` times sqrt(q1) sqrt(q2)."""
    cov, gap, agap, dcov = erf_pair_unit(q1, q2, s, r)
    sq12 = math.sqrt(q1) * math.sqrt(q2)
    return cov * sq12, gap * sq12, agap * sq12, dcov
