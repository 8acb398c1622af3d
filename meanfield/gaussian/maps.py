r"""Gaussian kernel maps: the expectations behind every NNGP, backward and NTK recursion.

For :math:`(u, v) \sim \mathcal N(0, \Lambda)` with :math:`\Lambda_{11} = q_1`, :math:`\Lambda_{22} = q_2` and
correlation :math:`c = \Lambda_{12}/\sqrt{q_1 q_2}`, this module evaluates

* ``cov``  :math:`= \mathbb E[\phi(u)\phi(v)]`,
* ``dcov`` :math:`= \mathbb E[\phi'(u)\phi'(v)]` (the derivative kernel, by Price's theorem the slope of ``cov``
  in :math:`\Lambda_{12}`),
* ``gap``  :math:`= \sqrt{\mathbb E\phi(u)^2\,\mathbb E\phi(v)^2} - \mathbb E[\phi(u)\phi(v)] \ge 0` and
  ``agap`` :math:`= \sqrt{\mathbb E\phi(u)^2\,\mathbb E\phi(v)^2} + \mathbb E[\phi(u)\phi(v)] \ge 0`, the
  Cauchy-Schwarz gaps that carry :math:`1 - c` and :math:`1 + c` to the next layer without cancellation,

and from them the scalar maps of one layer (Poole et al. 2016; Schoenholz et al. 2017): the variance map, the
correlation map, its form in :math:`1 - c` and its slope. The correlation enters as the pair
``(s, r) = (1 - c, 1 + c)``; each is accurate where it is small, so inputs arbitrarily close to parallel or
anti-parallel keep full relative precision (derived here). Closed forms come from one table
(:mod:`meanfield.activations`): the leaky-ReLU family and erf (:mod:`meanfield.gaussian.closed`); every other
activation uses the Mehler expansion (:mod:`meanfield.gaussian.hermite`). The one dispatch is
:func:`meanfield.gaussian.step.pair_step`; one-point moments use the one 1-D rule
(:mod:`meanfield.gaussian.quadrature`).
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_real, finite_array
from .._jit import njit
from ..activations import KIND_ERF, KIND_HERMITE, KIND_LEAKY, Activation, get_activation
from .closed import closed_variance, closed_variance_unit
from .hermite import HERMITE_TAYLOR_Q, hermite_coefficients, hermite_pair, pack_parity, taylor_coefficients
from .quadrature import expect
from .step import closed_unit_step, pair_step

__all__ = [
    "correlation_map",
    "correlation_slope",
    "decorrelation_map",
    "gaussian_moments",
    "pair_moments",
    "single_moments",
    "variance_map",
    "variance_slope",
]

_FOUR_OVER_PI = 4.0 / math.pi
_TINY = float(np.finfo(np.float64).tiny)


# ---------------------------------------------------------------------------------------------------------------
# one-point moments, shared by the recursions and the phase diagram
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _var_loop(kind, slope, q, v, dv):
    for i in range(q.shape[0]):
        v[i], dv[i] = closed_variance(kind, slope, q[i])


def single_moments(activation, q):
    r"""One-point moments :math:`(\mathbb E\phi(\sqrt q z)^2,\ \mathbb E\phi'(\sqrt q z)^2)`, shaped like ``q``.

    Closed forms for the table's activations; otherwise the one 1-D rule (:func:`meanfield.gaussian.quadrature.expect`),
    accurate to about 1e-14 for smooth activations at any ``q``.
    """
    act = get_activation(activation)
    q = finite_array(q, "q", low=0.0)
    if act.kind != KIND_HERMITE:
        flat = np.ascontiguousarray(q).reshape(-1)
        v, dv = np.empty_like(flat), np.empty_like(flat)
        _var_loop(act.kind, float(act.slope), flat, v, dv)
        return v.reshape(q.shape), dv.reshape(q.shape)
    return expect(lambda u, z: act.fn(u) ** 2, q), expect(lambda u, z: act.derivative(u) ** 2, q)


def second_moment(activation, q):
    r""":math:`\mathbb E\phi(\sqrt q z)^2` alone (the first output of :func:`single_moments`, without the cost of
    the derivative's moment on the general path; used by the fixed-point searches)."""
    act = get_activation(activation)
    if act.kind != KIND_HERMITE:
        return single_moments(act, q)[0]
    return expect(lambda u, z: act.fn(u) ** 2, finite_array(q, "q", low=0.0))


def variance_slope(activation, q):
    r""":math:`\frac{d}{dq}\mathbb E[\phi(\sqrt q z)^2] = \mathbb E[z\,\phi(\sqrt q z)\phi'(\sqrt q z)]/\sqrt q`.

    The slope of the variance map is ``sigma_w2`` times this; by Stein's lemma it equals
    :math:`\chi_1 + \sigma_w^2\int Dz\,\phi''\phi`, the argument of Schoenholz et al.'s (2017) depth scale
    :math:`\xi_q`, without a second derivative (derived here). Closed forms for the leaky-ReLU family,
    ``(1 + a^2)/2``, and erf, :math:`4/(\pi(1+2q)\sqrt{1+4q})`; the one 1-D rule otherwise. Below
    ``HERMITE_TAYLOR_Q = 1e-6``, where the rule would lose :math:`\phi''` to rounding, the slope comes from the
    small-variance series of the Hermite coefficients (:func:`meanfield.gaussian.hermite.taylor_rows`):
    :math:`v(q) = \sum_m a_m(q)^2 = \sum_m \frac{q^m}{m!}A_m(q)^2` with
    :math:`A_m = \sum_j t_{m+2j}q^j/(j!\,2^j)`, differentiated term by term (derived here; at ``q = 0`` it is
    :math:`\phi'(0)^2 + \phi(0)\phi''(0)`).
    """
    act = get_activation(activation)
    q = finite_array(q, "q", low=0.0)
    if act.kind == KIND_LEAKY:
        return np.full_like(q, 0.5 * (1.0 + act.slope**2))
    if act.kind == KIND_ERF:
        return _FOUR_OVER_PI / ((1.0 + 2.0 * q) * np.sqrt(1.0 + 4.0 * q))
    small = q < HERMITE_TAYLOR_Q
    out = np.empty(q.shape)
    if np.any(~small):
        qf = q[~small]
        out[~small] = expect(lambda u, z: z * act.fn(u) * act.derivative(u), qf) / np.sqrt(qf)
    if np.any(small):
        out[small] = _small_variance_slope(act, q[small])
    return out if out.ndim else out[()]


def _small_variance_slope(act, q):
    """dv/dq from the Taylor coefficients t_n = phi^(n)(0) (see :func:`variance_slope`), for q < 1e-6."""
    t = taylor_coefficients(act)
    N = t.size
    out = np.zeros(q.shape)
    with np.errstate(under="ignore"):
        for m in range(N - 1):
            jmax = (N - 1 - m) // 2
            A = np.zeros(q.shape)
            dA = np.zeros(q.shape)
            for j in range(jmax, -1, -1):  # Horner for A_m and its derivative
                dA = dA * q + A
                A = A * q + t[m + 2 * j] / (math.factorial(j) * 2.0**j)
            # d/dq [q^m A^2 / m!] = (m q^(m-1) A^2 + 2 q^m A A') / m!
            term = 2.0 * q**m * A * dA
            if m:
                term = term + m * q ** (m - 1) * A * A
            out += term / math.factorial(m)
    return out


# ---------------------------------------------------------------------------------------------------------------
# two-point moments and the public maps
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _pairs_loop(kind, slope, q1, q2, s, r, TA, TB, ia, ib, M, npar, apar, out):
    for i in range(q1.shape[0]):
        sq12 = math.sqrt(q1[i]) * math.sqrt(q2[i])
        cov, gap, agap, dcov = pair_step(kind, slope, q1[i], q2[i], sq12, s[i], r[i], TA, TB, ia[i], ib[i], M, npar,
                                         apar)  # fmt: skip
        out[0, i] = cov
        out[1, i] = gap
        out[2, i] = agap
        out[3, i] = dcov
        if kind == KIND_HERMITE:
            out[4, i] = np.sum(TA[ia[i] : ia[i] + npar * M] ** 2)
        else:
            out[4, i] = closed_variance(kind, slope, q1[i])[0]


def _flat(*xs):
    """The common broadcast shape of ``xs`` and each of them as a contiguous flat float64 array."""
    xs = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in xs))
    return xs[0].shape, tuple(np.ascontiguousarray(x).reshape(-1) for x in xs)


def _flat_tables(a, b, inv, n):
    """The parity-packed coefficient tables flattened, and the offsets of the rows of the ``n`` first and ``n``
    second arguments in them (``inv``: each argument's row in the tables)."""
    off = inv * a.shape[1]
    return a.ravel(), b.ravel(), off[:n].copy(), off[n:].copy()


def _no_tables(n):
    """Placeholders of the tables for the closed forms (the compiled loops take them but do not read them)."""
    zeros = np.zeros(n, dtype=np.int64)
    return 0, 0, 0, np.zeros(1), np.zeros(1), zeros, zeros


def pair_moments(act: Activation, q1, q2, s, r):
    """Vectorized (cov, gap, agap, dcov, v1) over broadcast arrays; the one Python entry to the compiled pair step.

    ``v1`` is E phi(sqrt(q1) z)^2 in the same representation as the gaps (the coefficient norm on the general
    path), so that 1 - c formed from them is consistent to rounding.
    """
    shape, (q1, q2, s, r) = _flat(q1, q2, s, r)
    n = q1.size
    if act.kind == KIND_HERMITE:
        qs, inv = np.unique(np.concatenate([q1, q2]), return_inverse=True)
        a, b, M, npar, apar = pack_parity(*hermite_coefficients(act, qs))
        a, b, ia, ib = _flat_tables(a, b, inv.reshape(-1).astype(np.int64), n)
    else:
        M, npar, apar, a, b, ia, ib = _no_tables(n)
    out = np.empty((5, n))
    _pairs_loop(act.kind, float(act.slope), q1, q2, s, r, a, b, ia, ib, M, npar, apar, out)
    return tuple(o.reshape(shape) for o in out)


@njit(cache=True, error_model="numpy")
def _unit_loop(kind, slope, q1, q2, s, r, TA, TB, ia, ib, M, npar, apar, out):
    """(cov, gap, agap) per unit of sqrt(v1) sqrt(v2) and dcov, v_i = E phi(sqrt(q_i) z)^2: the closed forms'
    unit step (:func:`meanfield.gaussian.step.closed_unit_step`), or the Mehler sums of rows scaled to unit norm."""
    for i in range(q1.shape[0]):
        if kind == KIND_HERMITE:
            cov, gap, agap, dcov = hermite_pair(TA, TB, ia[i], ib[i], M, npar, apar, s[i], r[i])
        else:
            su12 = math.sqrt(closed_variance_unit(kind, slope, q1[i])[0]) * math.sqrt(
                closed_variance_unit(kind, slope, q2[i])[0]
            )
            cov, gap, agap, dcov = closed_unit_step(kind, slope, q1[i], q2[i], su12, s[i], r[i])
        out[0, i] = cov
        out[1, i] = gap
        out[2, i] = agap
        out[3, i] = dcov


#: the variance at which the general path takes the direction of a row that vanishes at q = 0 (its q -> 0 limit)
_LIMIT_Q = 1e-300


def _unit_moments(act: Activation, q1, q2, s, r):
    """Per-unit pair moments over broadcast arrays: ``(cov_n, gap_n, agap_n, dcov, root1, root2, ratio1, ratio2)``.

    ``cov_n`` etc. are (cov, gap, agap) / (sqrt(v1) sqrt(v2)), ``root_i = sqrt(v_i)`` and ``ratio_i =
    q_i / v_i``, each formed without a product or quotient of variances, so that all are finite for every
    representable q (the correlation maps of the leaky family do not depend on q at all). Closed forms: the unit
    step and ``v_i / q_i`` (:func:`meanfield.gaussian.closed.closed_variance_unit`); general path: the Mehler sums
    of coefficient rows scaled to unit norm, ``root`` the row's norm. A row that vanishes (q = 0 and phi(0) = 0)
    takes its q -> 0 direction (the rows at q = 1e-300, where the next order is 1e-150 of the first), with
    ``root = 0`` and ``ratio = 1 / phi'(0)^2``.
    """
    shape, (q1, q2, s, r) = _flat(q1, q2, s, r)
    n = q1.size
    if act.kind == KIND_HERMITE:
        qs, inv = np.unique(np.concatenate([q1, q2]), return_inverse=True)
        a, b = hermite_coefficients(act, qs)
        norm = np.sqrt(np.einsum("ij,ij->i", a, a))
        ratio = np.empty_like(norm)
        zero = norm == 0.0
        with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
            if np.any(zero):
                pad = max(8 - a.shape[1], 0)  # the q = 0 rows alone are sized to a_0
                a, b = (np.pad(x, ((0, 0), (0, pad))) for x in (a, b))
                a[zero] = hermite_coefficients(act, np.full(int(zero.sum()), _LIMIT_Q), a.shape[1])[0]
                lim = np.sqrt(np.einsum("ij,ij->i", a[zero], a[zero]))
                a[zero] /= np.where(lim > 0.0, lim, 1.0)[:, None]
                ratio[zero] = _LIMIT_Q / lim / lim
            a[~zero] /= norm[~zero, None]
            ratio[~zero] = qs[~zero] / norm[~zero] / norm[~zero]
        a, b, M, npar, apar = pack_parity(a, b)
        inv = inv.reshape(-1).astype(np.int64)
        root = norm[inv]
        ratio = ratio[inv]
        a, b, ia, ib = _flat_tables(a, b, inv, n)
    else:
        M, npar, apar, a, b, ia, ib = _no_tables(n)
        qq = np.concatenate([q1, q2])
        vq = _closed_unit_variance(act, qq)
        root = np.sqrt(vq) * np.sqrt(qq)
        ratio = 1.0 / vq
    out = np.empty((4, n))
    _unit_loop(act.kind, float(act.slope), q1, q2, s, r, a, b, ia, ib, M, npar, apar, out)
    parts = (*out, root[:n], root[n:], ratio[:n], ratio[n:])
    return tuple(np.asarray(x).reshape(shape) for x in parts)


def _closed_unit_variance(act, q):
    """E phi(sqrt q z)^2 / q of the closed forms (finite at q = 0), by the compiled unit form."""
    out = np.empty(q.size)
    _unit_var_loop(act.kind, float(act.slope), np.ascontiguousarray(q, dtype=np.float64).reshape(-1), out)
    return out


@njit(cache=True, error_model="numpy")
def _unit_var_loop(kind, slope, q, out):
    for i in range(q.shape[0]):
        out[i] = closed_variance_unit(kind, slope, q[i])[0]


def _finite(x, what, params):
    """Refuse a result that over- or underflowed float64 with a ValueError naming the parameters."""
    x = np.asarray(x)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} overflows float64 (largest representable 1.8e308); reduce {params}")
    return x


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
    ReLU / leaky ReLU with slope :math:`a` (arc-cosine kernels of Cho & Saul 2009), with
    :math:`\theta = \arccos c` and :math:`h(\theta) = \sin\theta - \theta\cos\theta`:

    .. math:: \mathbb E[\phi\phi] = \tfrac{\sqrt{q_1q_2}}{2\pi}\big[(1-a)^2 h(\theta) + (1+a^2)\pi c\big],\qquad
              \mathbb E[\phi'\phi'] = \tfrac{(1+a^2)(\pi-\theta) + 2a\theta}{2\pi}.

    erf (Williams 1997):
    :math:`\frac2\pi\arcsin\frac{2\Lambda_{12}}{\sqrt{(1+2q_1)(1+2q_2)}}` and
    :math:`\frac4\pi[(1+2q_1)(1+2q_2) - 4\Lambda_{12}^2]^{-1/2}`.
    Other activations: Mehler expansion (:func:`hermite_coefficients`). :math:`\theta` and :math:`\pi-\theta` are
    both computed from the exact side (``1 - c`` or ``1 + c``), and :math:`h` from its Taylor series for small
    :math:`\theta`, so the forms keep full relative precision at ``c = ±1``. Every moment is formed per unit of
    :math:`\sqrt{v_1}\sqrt{v_2}` (:math:`v_i = \mathbb E\phi(\sqrt{q_i}z)^2`) and scaled back by the two
    roots, never by :math:`\sqrt{q_1q_2}`, so any representable variances work (``q = 1e-300`` or ``1e300``); a
    result beyond float64 is a ValueError.

    Examples
    --------
    >>> cov, dcov = gaussian_moments(1.0, 1.0, 0.5)
    >>> round(float(cov), 10), round(float(dcov), 10)
    (0.3044988905, 0.3333333333)
    >>> [round(float(x), 12) for x in gaussian_moments(1.0, 1.0, 0.5, "erf")]
    [0.216346895939, 0.450158158079]
    """
    act = get_activation(activation)
    q1 = finite_array(q1, "q1", low=0.0)
    q2 = finite_array(q2, "q2", low=0.0)
    c = finite_array(c, "c", low=-1.0, high=1.0)
    cov_n, _, _, dcov, root1, root2, _, _ = _unit_moments(act, q1, q2, 1.0 - c, 1.0 + c)
    with np.errstate(over="ignore", under="ignore"):
        cov = cov_n * root1 * root2  # per unit of sqrt(v1) sqrt(v2), never sqrt(v1 v2)
    return _finite(cov, "E[phi(u) phi(v)]", "q1, q2"), _finite(dcov, "E[phi'(u) phi'(v)]", "q1, q2")


def _layer_args(activation, sigma_w2, sigma_b2):
    act = get_activation(activation)
    sw = check_real(sigma_w2, "sigma_w2", low=0.0, low_open=True)
    sb = check_real(sigma_b2, "sigma_b2", low=0.0)
    return act, sw, sb


def variance_map(q, activation="relu", sigma_w2=2.0, sigma_b2=0.0):
    r"""Length map :math:`q_{l+1} = \sigma_w^2\int Dz\,\phi(\sqrt{q_l}z)^2 + \sigma_b^2` (Poole et al. 2016).

    A next variance beyond float64 (over 1.8e308, or a non-zero one below 2.2e-308) is a ValueError.

    Examples
    --------
    >>> float(variance_map(1.0))
    1.0
    >>> round(float(variance_map(1.0, "erf", 1.0, 0.0)), 12)  # (2/pi) arcsin(2/3)
    0.464559054398
    """
    act, sw, sb = _layer_args(activation, sigma_w2, sigma_b2)
    q = finite_array(q, "q", low=0.0)
    v, _ = single_moments(act, q)
    with np.errstate(over="ignore", under="ignore"):
        out = sw * v + sb
    _finite(out, "the next variance sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2", "q or sigma_w2")
    if np.any((out < _TINY) & (v > 0.0)):
        raise ValueError(
            "the next variance sigma_w2 E[phi(sqrt(q) z)^2] + sigma_b2 underflows float64 (below 2.2e-308); "
            "increase q or sigma_w2"
        )
    return out


def _corr_step(act, sw, sb, q, s, r):
    """One correlation step at equal variances q: returns (s', r', slope dc'/dc), per unit of the variances.

    With v = E phi^2, q' = sigma_w^2 v + sigma_b^2 and the gaps per unit of v (:func:`_unit_moments`):
    1 - c' = t^2 gap_n and 1 + c' = t^2 agap_n + 2 (1 - t^2), slope = t^2 dcov q / v, where t^2 = sigma_w^2 v / q'
    and 1 - t^2 = sigma_b^2 / q' are formed directly while sigma_w^2 v is a normal float and from
    log(sigma_b^2 / (sigma_w^2 v)) otherwise: no variance is multiplied or divided by another, so the maps are
    finite and exact for every representable q and sigma_w^2 (derived here). At q' = 0 (q = 0, phi(0) = 0,
    sigma_b^2 = 0) they are the limits q -> 0.
    """
    _, gap_n, agap_n, dcov, root, _, ratio, _ = _unit_moments(act, q, q, s, r)
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        if sb == 0.0:
            t2 = np.ones_like(root)
        else:
            x = sw * root * root
            direct = (x >= _TINY) & np.isfinite(x)
            lr = math.log(sb) - math.log(sw) - 2.0 * np.log(root)  # log(sigma_b^2 / (sigma_w^2 v)), +inf at v = 0
            t2 = np.where(direct, x / (x + sb), 1.0 / (1.0 + np.exp(lr)))
        u = 1.0 - t2 if sb == 0.0 else np.where(direct, sb / (x + sb), 1.0 / (1.0 + np.exp(-lr)))
        s_next = np.clip(t2 * gap_n, 0.0, 2.0)
        r_next = np.clip(t2 * agap_n + 2.0 * u, 0.0, 2.0)
        slope = dcov * ratio * t2
    for name, x in (("the correlation map", s_next + r_next), ("its slope", slope)):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} is undefined at q = 0 for {act.name!r} (phi(0) = phi'(0) = 0); pass q > 0")
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
    For ReLU at (2, 0) this is :math:`g(c) = (c\arcsin c + \sqrt{1 - c^2})/\pi + c/2` (Lou et al. 2022, eq. (3)).
    Near ``c = 1`` use :func:`decorrelation_map`, which keeps full relative precision in :math:`1 - c`. The map
    is formed from ratios of variances (:func:`_corr_step`), so it is exact at any representable ``q`` and
    ``sigma_w2`` (ReLU at ``q = 1e300``, ``sigma_w2 = 1e10`` is ``g(c)``); at ``q = 0`` with ``phi(0) = 0`` and no
    bias it is the limit ``q -> 0`` (``c`` itself for tanh).

    Examples
    --------
    >>> round(float(correlation_map(0.0)), 15)   # 1/pi
    0.318309886183791
    """
    act, sw, sb = _layer_args(activation, sigma_w2, sigma_b2)
    c = finite_array(c, "c", low=-1.0, high=1.0)
    q = finite_array(q, "q", low=0.0)
    s_next, r_next, _ = _corr_step(act, sw, sb, q, 1.0 - c, 1.0 + c)
    return np.where(s_next <= r_next, 1.0 - s_next, r_next - 1.0)


def decorrelation_map(s, activation="relu", q=1.0, sigma_w2=2.0, sigma_b2=0.0):
    r"""The map :math:`s_{l+1} = 1 - c_{l+1}` as a function of :math:`s_l = 1 - c_l`, exact as :math:`s \to 0`.

    Notes
    -----
    Computed from the Cauchy-Schwarz gap :math:`\sqrt{\mathbb E\phi(u)^2\mathbb E\phi(v)^2} - \mathbb E[\phi(u)\phi(v)]`
    in closed or Mehler form (never as ``1 - c``): for ReLU at (2, 0),
    :math:`s_{l+1} = s_l - h(\theta_l)/\pi` with :math:`\theta_l = 2\arcsin\sqrt{s_l/2}`
    (Lou et al. 2022, eq. (3), in the variable :math:`1 - c`; derived here).

    Examples
    --------
    >>> s = decorrelation_map(1e-12)  # ReLU at (2, 0): s - (2 sqrt 2 / 3 pi) s^(3/2) + ...
    >>> abs(float(s) / (1e-12 * (1 - 2 * 2**0.5 / (3 * np.pi) * 1e-6)) - 1) < 1e-14
    True
    """
    act, sw, sb = _layer_args(activation, sigma_w2, sigma_b2)
    s = finite_array(s, "s", low=0.0, high=2.0)
    q = finite_array(q, "q", low=0.0)
    s_next, _, _ = _corr_step(act, sw, sb, q, s, 2.0 - s)
    return s_next


def correlation_slope(c, activation="relu", q=1.0, sigma_w2=2.0, sigma_b2=0.0):
    r"""Slope :math:`\partial c_{l+1}/\partial c_l = q_l\,\dot\Sigma_{l+1}/q_{l+1}` (Price's theorem; never
    finite differences). At ``c = 1`` and ``q = q^*`` this is :math:`\chi_1` (Poole et al. 2016; Schoenholz et
    al. 2017).

    Examples
    --------
    >>> float(correlation_slope(0.5))  # ReLU at (2, 0): g'(c) = 1/2 + arcsin(c)/pi
    0.6666666666666666
    """
    act, sw, sb = _layer_args(activation, sigma_w2, sigma_b2)
    c = finite_array(c, "c", low=-1.0, high=1.0)
    q = finite_array(q, "q", low=0.0)
    _, _, slope = _corr_step(act, sw, sb, q, 1.0 - c, 1.0 + c)
    return slope
