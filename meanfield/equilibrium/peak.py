r"""The Equilibrium Hypothesis: forward and backward information loss and the predicted peak layer.

Seed 000 (Lou et al. 2022) argues that the layers of a trained network whose tangent kernels align best with the
labels are those where the forward information loss (Theorem 1, :math:`\Theta(l^{-2})`) balances the backward one
(Theorem 2(ii), :math:`\Theta((l/L)^3)`), which gives :math:`l^* = \Theta(L^{3/5})` (Corollary 1). This module makes
that statement computable (signal_propagation.md, sec. 5.1-5.3):

.. math::
    \mathcal F_l = \sup_{\rho}\,(1 - c_l(\rho)),\qquad
    \mathcal B_{l,L} = \sup_{\rho}\prod_{k=l+1}^{L}
        \frac{\dot\Sigma_k(x,x')}{\sqrt{\dot\Sigma_k(x,x)\,\dot\Sigma_k(x',x')}},\qquad
    l^*(L) = \arg\min_l\,\big|\log\mathcal F_l - \log\mathcal B_{l,L}\big|,

with the sups over input correlations :math:`\rho \in [-1, 1-\epsilon]` (seed eq. (10)) or over the pairs of a
data set. The forward sequence does not depend on L and :math:`\log\mathcal B_{l,L} = S_L - S_l` with prefix sums
:math:`S_m` of the log ratios, so every depth up to :math:`L_{\max}` costs :math:`O(L_{\max})` in total.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from .._jit import njit

from ..activations import KIND_LEAKY
from ..gaussian.closed import h_theta as _h
from ..network import Network
from ..propagation import check_inputs, pair_curve

__all__ = [
    "InformationLoss",
    "PeakLayer",
    "ScalingFit",
    "information_loss",
    "peak_layer",
    "scaling_fit",
    "peak_layer_constant",
    "relu_eoc_one_minus_c",
    "relu_eoc_slope",
    "relu_eoc_inverse_root",
]

#: largest depth accepted (memory: a few arrays of this length)
MAX_DEPTH = 10**7

NORMS = ("relative", "paper")
SCORES = ("crossing", "harmonic")

# forward normalization: log of the factor multiplying 1 - c_l (sheet sec. 5.2). "paper" is Theorem 1 literally,
# |I^f_l - 1/2| = (1 - c_l)/2 for ReLU at (2, 0) with q = 1.
_NORM_LOG_FACTOR = {"relative": 0.0, "paper": math.log(0.5)}
# norm factor k/(9 pi^2/2) and score factor m of the asymptote l* ~ (k m)^(1/5) L^(3/5), k = 9 pi^2/2 x norm factor
_NORM_FACTOR = {"relative": 1.0, "paper": 0.5}
_SCORE_FACTOR = {"crossing": 1.0, "harmonic": 1.5}

_NINE_PI2_HALF = 4.5 * math.pi**2


# ---------------------------------------------------------------------------------------------------------------
# section 5.1: asymptotic forms for ReLU at the edge of chaos
# ---------------------------------------------------------------------------------------------------------------


def _layers_arg(l, name="l"):
    l = np.asarray(l, dtype=np.float64)
    if not np.all(np.isfinite(l)) or np.any(l < 1):
        raise ValueError(f"{name} must be finite and >= 1")
    return l


def relu_eoc_one_minus_c(l):
    r"""Asymptotic decorrelation :math:`1 - c_l` of ReLU at the edge of chaos (2, 0).

    Parameters
    ----------
    l : array_like
        Layer indices, ``>= 1`` (meaningful for large l).

    Returns
    -------
    ndarray
        :math:`\frac{9\pi^2}{2l^2} - \frac{27\pi^2}{2}\frac{\log l}{l^3}`.

    Notes
    -----
    From :math:`s_{l+1} = s_l - a s_l^{3/2} - \dots` with :math:`a = 2\sqrt2/(3\pi)` (signal_propagation.md
    sec. 5.1; seed 000, proof of Theorem 1 via Hayou et al. 2020). The neglected term is :math:`O(l^{-3})` and depends
    on the input correlation; the relative error falls only like :math:`1/l`. Use :func:`relu_eoc_inverse_root` for a
    form whose remainder is :math:`o(1)`.

    Examples
    --------
    >>> round(float(relu_eoc_one_minus_c(1e6) * 1e12), 4)
    44.4114
    """
    l = _layers_arg(l)
    return _NINE_PI2_HALF / l**2 - 13.5 * math.pi**2 * np.log(l) / l**3


def relu_eoc_slope(l):
    r"""Asymptotic slope :math:`g'(c_l)` of the ReLU correlation map at the edge of chaos (2, 0).

    Parameters
    ----------
    l : array_like
        Layer indices, ``>= 1``.

    Returns
    -------
    ndarray
        :math:`1 - \frac{3}{l} + \frac{9}{2}\frac{\log l}{l^2}`.

    Notes
    -----
    Seed 000, proof of Theorem 2: :math:`g'(c_l) = 1 - 3/l + \kappa\log l/l^2 + O(l^{-2})`, with the constant
    :math:`\kappa = 9/2` that the seed leaves open (signal_propagation.md sec. 5.1, erratum 6). The remainder
    :math:`O(l^{-2})` depends on the input correlation.

    Examples
    --------
    >>> round(float(relu_eoc_slope(100.0)), 6)
    0.972072
    """
    l = _layers_arg(l)
    return 1.0 - 3.0 / l + 4.5 * np.log(l) / l**2


def relu_eoc_inverse_root(l, offset=0.0):
    r"""Asymptotic :math:`t_l = (1 - c_l)^{-1/2}` of ReLU at the edge of chaos (2, 0).

    Parameters
    ----------
    l : array_like
        Layer indices, ``>= 1``.
    offset : float
        The correlation-dependent constant :math:`C(\rho)` (e.g. 0.50870 for :math:`c_1 = 0`).

    Returns
    -------
    ndarray
        :math:`\frac{\sqrt2}{3\pi}\,l + \frac{\log l}{\sqrt2\,\pi} + C(\rho)`.

    Notes
    -----
    signal_propagation.md sec. 5.1; the remainder is :math:`o(1)`, so :math:`t_l - ` (this with ``offset = 0``)
    converges to :math:`C(\rho)`. This is the sharpest of the three forms and the one the tests check.

    Examples
    --------
    >>> round(float(relu_eoc_inverse_root(1e5, offset=0.5087)), 2)
    15008.37
    """
    l = _layers_arg(l)
    return math.sqrt(2.0) / (3.0 * math.pi) * l + np.log(l) / (math.sqrt(2.0) * math.pi) + float(offset)


def peak_layer_constant(norm="relative", score="crossing"):
    r"""Prefactor :math:`C` of the asymptotic peak layer :math:`l^* \simeq C L^{3/5}` (ReLU at (2, 0)).

    Parameters
    ----------
    norm : {"relative", "paper"}
    score : {"crossing", "harmonic"}

    Returns
    -------
    float
        :math:`(k m)^{1/5}` with :math:`k = \frac{9\pi^2}{2}` (relative) or :math:`\frac{9\pi^2}{4}` (paper) and
        :math:`m = 1` (crossing) or :math:`3/2` (harmonic).

    Notes
    -----
    With :math:`\mathcal F_l \simeq k/l^2` and :math:`\mathcal B_{l,L}\simeq(l/L)^3` (sec. 5.1), the crossing
    :math:`k/l^2 = (l/L)^3` gives :math:`l = k^{1/5}L^{3/5}`; the maximum of the harmonic mean,
    :math:`\frac{d}{dl}(l^2/k + L^3/l^3) = 0`, gives :math:`l = (3k/2)^{1/5}L^{3/5}` (signal_propagation.md sec. 5.2).

    Examples
    --------
    >>> round(peak_layer_constant(), 5), round(peak_layer_constant("paper"), 5)
    (2.13551, 1.85907)
    """
    _check_choice(norm, NORMS, "norm")
    _check_choice(score, SCORES, "score")
    return (_NINE_PI2_HALF * _NORM_FACTOR[norm] * _SCORE_FACTOR[score]) ** 0.2


# ---------------------------------------------------------------------------------------------------------------
# curves: forward decorrelation and backward log ratios over layers
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _leaky_curves(kappa, s0, out_s, out_log):
    """Exact s = 1 - c recursion of the leaky-ReLU family at sigma_b2 = 0 for each start in s0.

    s_{l+1} = s_l - kappa h(theta_l)/pi and log ratio_{l+1} = log1p(-kappa theta_l/pi), theta_l = 2 asin sqrt(s_l/2),
    kappa = (1 - a)^2/(1 + a^2) (kappa = 1 for ReLU: c_{l+1} = g(c_l), ratio = g'(c_l)); the recipe of sheet
    sec. 2.2 and 9. Why a separate kernel: it is ~100x faster than three general pair steps per layer (two curves of
    10^6 layers: ~20 ms against ~2 s), which is what makes every depth up to 10^6 cost well under a second; and
    log1p(-theta/pi) keeps the small quantity 1 - g' exact instead of rounding g' to a double first (measured: the
    prefix sum S at L = 10^6 differs from the one built on log(pair_curve().dot) by 1e-11, so both reproduce
    l_cont(10^6) = 8484.28; the tests compare the two paths). A ratio of exactly 0 (c = -1 with ReLU) is stored
    as -inf.
    """
    n = s0.shape[0]
    depth = out_s.shape[1]
    for p in range(n):
        s = s0[p]
        out_log[p, 0] = 0.0
        for l in range(depth):
            out_s[p, l] = s
            if l + 1 < depth:
                theta = 2.0 * math.asin(math.sqrt(0.5 * s))
                x = kappa * theta / math.pi
                out_log[p, l + 1] = math.log1p(-x) if x < 1.0 else -math.inf
                s = max(s - kappa * _h(theta) / math.pi, 0.0)


def _generic_curves(depth, act, sw, sb, s0):
    """Same outputs through :func:`meanfield.propagation.pair_curve` (any activation, any sigma's)."""
    q1 = sw + sb  # ||x||^2 = d: Sigma_1(x, x) = sigma_w^2 + sigma_b^2
    n = s0.size
    out_s = np.empty((n, depth))
    out_log = np.zeros((n, depth))
    for p in range(n):
        # 1 - c_1 with c_1 = (sigma_w^2 rho + sigma_b^2)/(sigma_w^2 + sigma_b^2), formed from 1 - rho exactly
        pc = pair_curve(depth, act, sw, sb, q1=q1, s=sw * s0[p] / q1)
        if not (np.all(np.isfinite(pc.q1)) and np.all(np.isfinite(pc.sigma[1:]))):
            bad = int(np.argmin(np.isfinite(pc.q1) & np.isfinite(pc.sigma)))
            raise ValueError(
                f"the variances overflow at layer {bad + 1} (sigma_w2 = {sw:g} is far from the edge of chaos); "
                "use a smaller depth or sigma_w2"
            )
        out_s[p] = pc.s
        if depth > 1:
            with np.errstate(divide="ignore"):
                out_log[p, 1:] = np.log(pc.dot[1:]) - 0.5 * (np.log(pc.dot1[1:]) + np.log(pc.dot2[1:]))
    return out_s, out_log


def _curves(depth, act, sw, sb, s0):
    """(s, log ratio) arrays (len(s0), depth); log ratio[:, k-1] = log of layer k's factor, entry 0 = 0."""
    if act.kind == KIND_LEAKY and sb == 0.0:
        # correlation dynamics of the leaky family at sigma_b = 0 do not depend on q or sigma_w: exact fast path
        a = float(act.slope)
        out_s = np.empty((s0.size, depth))
        out_log = np.empty((s0.size, depth))
        _leaky_curves((1.0 - a) ** 2 / (1.0 + a * a), s0, out_s, out_log)
        return out_s, out_log
    return _generic_curves(depth, act, sw, sb, s0)


def _check_choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _check_eps(eps):
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise ValueError(f"eps must be a number in (0, 2), got {eps!r}") from None
    if not 0.0 < eps < 2.0:
        raise ValueError(f"eps must be in (0, 2) (pairs with x.x'/d < 1 - eps), got {eps!r}")
    return eps


def _pair_range(eps, pairs):
    """Start values s = 1 - rho at (rho_min, rho_max): [-1, 1 - eps] or the range of a data set's correlations."""
    if pairs is None:
        eps = _check_eps(eps)
        return np.array([2.0, eps]), (-1.0, 1.0 - eps)
    X = check_inputs(pairs, "pairs")
    if X.shape[0] < 2:
        raise ValueError(f"pairs must hold at least 2 inputs (rows), got {X.shape[0]}")
    norms = np.linalg.norm(X, axis=1)
    if np.any(norms == 0):
        raise ValueError("pairs contains a zero row, whose correlation is undefined")
    U = X / norms[:, None]
    G = U @ U.T
    iu = np.triu_indices(X.shape[0], 1)
    rho = G[iu]
    i_max, i_min = int(np.argmax(rho)), int(np.argmin(rho))
    # 1 - rho and 1 + rho as half squared distances of unit vectors: exact for nearly (anti)parallel pairs
    s_top = 0.5 * float(np.sum((U[iu[0][i_max]] - U[iu[1][i_max]]) ** 2))
    s_bot = 2.0 - 0.5 * float(np.sum((U[iu[0][i_min]] + U[iu[1][i_min]]) ** 2))
    if s_top <= 0.0:
        raise ValueError("pairs contains two parallel inputs (correlation 1): remove duplicates")
    return np.array([s_bot, s_top]), (float(1.0 - s_bot), float(1.0 - s_top))


class _Model:
    """Forward log F_l and backward prefix sums for every layer up to the largest depth."""

    def __init__(self, depth_max, activation, sigma_w2, sigma_b2, eps, norm, pairs):
        net = Network(int(depth_max), activation, sigma_w2, sigma_b2)
        _check_choice(norm, NORMS, "norm")
        act = net.activation
        if not (act.kind == KIND_LEAKY and act.slope == 0.0 and net.sigma_w2 == 2.0 and net.sigma_b2 == 0.0):
            warnings.warn(
                f"the L^(3/5) law is proven only for ReLU at the edge of chaos (2, 0); {act.name} at "
                f"({net.sigma_w2:g}, {net.sigma_b2:g}) uses the generalized definitions (signal_propagation.md 5.2)",
                UserWarning,
                stacklevel=3,
            )
        self.net = net
        s0, self.rho = _pair_range(eps, pairs)
        s, logr = _curves(net.depth, act, net.sigma_w2, net.sigma_b2, s0)
        with np.errstate(divide="ignore"):
            self.log_f = np.log(np.max(s, axis=0)) + _NORM_LOG_FACTOR[norm]
        finite = np.isfinite(logr)
        self.S = np.cumsum(np.where(finite, logr, 0.0), axis=1)  # S[p, l-1] = sum_{k=2}^{l} log ratio_k
        self.Z = np.cumsum(~finite, axis=1)  # zero factors among k = 2..l
        # a pair whose every factor is at least as large as every other pair's gives the sup of each product
        top = np.nonzero(np.all(logr >= logr.max(axis=0), axis=1))[0]
        self.single = top.size > 0
        if self.single:
            self.S, self.Z = self.S[top[:1]], self.Z[top[:1]]

    def log_backward(self, L):
        """log B_{l,L} for l = 1..L."""
        S, Z = self.S[:, :L], self.Z[:, :L]
        with np.errstate(invalid="ignore"):
            val = np.where(Z[:, -1:] - Z == 0, S[:, -1:] - S, -np.inf)
        return val.max(axis=0)


@dataclass(frozen=True)
class InformationLoss:
    r"""Forward and backward information loss over the layers of one network.

    Attributes
    ----------
    depth : int
        L.
    layers : ndarray of int
        1..L.
    forward : ndarray
        :math:`\mathcal F_l = \sup_\rho(1 - c_l(\rho))` (times 1/2 with ``norm="paper"``), decreasing in l.
    backward : ndarray
        :math:`\mathcal B_{l,L}`, increasing in l, :math:`\mathcal B_{L,L} = 1`.
    rho : tuple of float
        The correlation range :math:`(\rho_{\min}, \rho_{\max})` of the sups.
    norm : str
    """

    depth: int
    layers: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    rho: tuple[float, float]
    norm: str

    @property
    def gap(self) -> np.ndarray:
        r""":math:`D_l = \log\mathcal F_l - \log\mathcal B_{l,L}` (strictly decreasing for ReLU at (2, 0))."""
        with np.errstate(divide="ignore"):
            return np.log(self.forward) - np.log(self.backward)


def _loss_from_model(model, L, norm):
    forward = np.exp(model.log_f[:L])
    backward = np.exp(model.log_backward(L))
    return InformationLoss(L, np.arange(1, L + 1), forward, backward, model.rho, norm)


def information_loss(net, eps=0.5, pairs=None, norm="relative"):
    r"""Forward and backward information loss of every layer (the two sides of the Equilibrium Hypothesis).

    Parameters
    ----------
    net : Network
        Depth L, activation, ``sigma_w2``, ``sigma_b2`` (the width is ignored: infinite-width theory).
    eps : float
        Pairs are restricted to :math:`x\cdot x'/d \le 1 - \epsilon`, :math:`\epsilon\in(0, 2)` (seed eq. (10)).
    pairs : array_like (n, d), optional
        A data set: the correlation range becomes :math:`[\rho_{\min}, \rho_{\max}]` over its distinct pairs
        (cosines of the rows; inputs are taken on the sphere :math:`\|x\|^2 = d`). Replaces ``eps``.
    norm : {"relative", "paper"}
        ``"relative"``: :math:`\mathcal F_l = 1 - c_l`, the forward kernel's relative distance from its limit;
        ``"paper"``: :math:`\frac12(1 - c_l)`, Theorem 1 literally (q = 1).

    Returns
    -------
    InformationLoss

    Notes
    -----
    signal_propagation.md sec. 5.2 (seed 000, Theorems 1-2):
    :math:`\mathcal F_l = \sup_\rho(1 - c_l)` and :math:`\mathcal B_{l,L} = \sup_\rho\prod_{k=l+1}^L
    \dot\Sigma_k(x,x')/\sqrt{\dot\Sigma_k(x,x)\dot\Sigma_k(x',x')}`, the sups taken at the two ends of the
    correlation range (the correlation map is increasing for monotone activations; the backward sup is the larger of
    the two end products). For ReLU at (2, 0) this is :math:`\mathcal F_l = 1 - c_l(-1)` and
    :math:`\mathcal B_{l,L} = \prod_{k=l}^{L-1}g'(c_k(1-\epsilon))`.

    Numerics: the leaky-ReLU family at :math:`\sigma_b = 0` (ReLU included) tracks :math:`s = 1 - c` with the exact
    series of :math:`h(\theta)` and accumulates :math:`\log g' = \mathrm{log1p}(-\theta/\pi)` (sheet sec. 2.2, 9);
    other settings use :func:`meanfield.propagation.pair_curve`, which also carries :math:`1 - c` exactly. Inputs
    on the sphere: :math:`\Sigma_1(x, x) = \sigma_w^2 + \sigma_b^2`. A ``UserWarning`` is raised outside ReLU at
    (2, 0), where the :math:`L^{3/5}` law is not proven.

    Examples
    --------
    >>> il = information_loss(Network(10))
    >>> round(float(il.forward[4]), 6), round(float(il.backward[4]), 6)   # layer 5 of a depth-10 ReLU net
    (0.395174, 0.354263)
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a meanfield.Network, got {type(net).__name__}")
    L = _check_depths(net.depth)
    model = _Model(L, net.activation, net.sigma_w2, net.sigma_b2, eps, norm, pairs)
    return _loss_from_model(model, L, norm)


# ---------------------------------------------------------------------------------------------------------------
# the peak layer for many depths
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _scan(log_f, S, Z, depths, harmonic, l_star, l_cont, log_b):
    """Exact O(L) scan per depth: argmin |D_l| (or argmax of the harmonic score), first sign change of D."""
    P = S.shape[0]
    for t in range(depths.shape[0]):
        L = depths[t]
        best = -1
        best_val = math.inf
        cross = -1
        vals = np.empty(L)
        lbs = np.empty(L)
        for i in range(L):
            lb = -math.inf
            for p in range(P):
                if Z[p, L - 1] == Z[p, i]:
                    lb = max(lb, S[p, L - 1] - S[p, i])
            lbs[i] = lb
            d = log_f[i] - lb
            if harmonic:
                # -log H = log(1/F + 1/B); minimize
                a, b = -log_f[i], -lb
                m = max(a, b)
                v = m + math.log1p(math.exp(min(a, b) - m)) if m < math.inf else math.inf
            else:
                v = abs(d)
            vals[i] = v
            if v < best_val:
                best_val = v
                best = i
            if cross < 0 and i > 0 and d <= 0.0 and log_f[i - 1] - lbs[i - 1] > 0.0:
                cross = i
        if best < 0:
            best = L - 1
        l_star[t] = best + 1
        log_b[t] = lbs[best]
        if harmonic:
            if 0 < best < L - 1:
                y0, y1, y2 = vals[best - 1], vals[best], vals[best + 1]
                den = y0 - 2.0 * y1 + y2
                l_cont[t] = best + 1 + (0.5 * (y0 - y2) / den if den > 0.0 else 0.0)
            else:
                l_cont[t] = math.nan
        elif cross > 0:
            d0 = log_f[cross - 1] - lbs[cross - 1]
            d1 = log_f[cross] - lbs[cross]
            l_cont[t] = cross + d0 / (d0 - d1)
        else:
            l_cont[t] = math.nan


def _crossing_fast(model, depths):
    """Single dominating pair and G_l = log F_l + S_l strictly decreasing: D_l(L) = G_l - S_L, one search per L."""
    S = model.S[0]
    G = model.log_f + S
    level = S[depths - 1]
    count = np.minimum(np.searchsorted(-G, -level, side="left"), depths)  # l with D_l > 0 are 1..count
    inside = (count >= 1) & (count < depths)
    i1 = np.where(inside, count, 0)  # 0-based index of the first l with D <= 0
    i0 = np.maximum(i1 - 1, 0)
    d0 = G[i0] - level
    d1 = G[i1] - level
    with np.errstate(invalid="ignore", divide="ignore"):
        l_cont = np.where(inside, i0 + 1 + d0 / (d0 - d1), np.nan)
    pick = np.where(np.abs(d1) < np.abs(d0), i1, i0)
    idx = np.where(inside, pick, np.where(count == 0, 0, depths - 1))
    return idx + 1, l_cont, level - S[idx]


def _check_depths(depth):
    arr = np.asarray(depth)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"depth must be an integer >= 2 or an array of them, got {depth!r}")
    if arr.size == 0:
        raise ValueError("depth must not be empty")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ValueError(f"depth must hold integers, got {depth!r}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 2) | (arr > MAX_DEPTH)]
    if bad.size:
        raise ValueError(f"depth must be in [2, {MAX_DEPTH}] (a peak layer needs a hidden layer), got {bad[0]}")
    return int(arr) if arr.ndim == 0 else arr


@dataclass(frozen=True)
class PeakLayer:
    r"""Predicted equilibrium layer(s), for one depth (scalars) or many (arrays).

    Attributes
    ----------
    depth : int or ndarray
        L.
    l_star : int or ndarray
        :math:`l^*(L)`, the integer layer (argmin of :math:`|D_l|`, or argmax of the harmonic score).
    l_cont : float or ndarray
        The continuous crossing of :math:`D_l` by linear interpolation (harmonic: vertex of the parabola through
        the maximum and its neighbours); NaN when there is no interior crossing.
    forward, backward : float or ndarray
        :math:`\mathcal F` and :math:`\mathcal B_{\cdot,L}` at :math:`l^*`.
    asymptote : float or ndarray
        :math:`C L^{3/5}` with :func:`peak_layer_constant` (ReLU at (2, 0)).
    curves : InformationLoss
        The information-loss curves of the (largest) depth.
    norm, score : str
    """

    depth: int | np.ndarray
    l_star: int | np.ndarray
    l_cont: float | np.ndarray
    forward: float | np.ndarray
    backward: float | np.ndarray
    asymptote: float | np.ndarray
    curves: InformationLoss
    norm: str
    score: str


def peak_layer(
    depth, activation="relu", sigma_w2=2.0, sigma_b2=0.0, eps=0.5, norm="relative", score="crossing", pairs=None
):
    r"""Predicted layer of best alignment, :math:`l^*(L)` (seed 000, Corollary 1), for one or many depths.

    Parameters
    ----------
    depth : int or array_like of int
        L >= 2. An array of depths costs :math:`O(L_{\max})` in total (plus a binary search per depth).
    activation, sigma_w2, sigma_b2 :
        As in :class:`~meanfield.Network`; the seed's setting is ReLU at (2, 0).
    eps : float
        Pair restriction :math:`x\cdot x'/d \le 1 - \epsilon`, in (0, 2).
    norm : {"relative", "paper"}
        Forward normalization (see :func:`information_loss`).
    score : {"crossing", "harmonic"}
        ``"crossing"``: :math:`\arg\min_l|\log\mathcal F_l - \log\mathcal B_{l,L}|`; ``"harmonic"``:
        :math:`\arg\max_l(\mathcal F_l^{-1} + \mathcal B_{l,L}^{-1})^{-1}` (costs O(L) per depth).
    pairs : array_like (n, d), optional
        Data set whose correlation range replaces :math:`[-1, 1-\epsilon]`.

    Returns
    -------
    PeakLayer

    Notes
    -----
    signal_propagation.md sec. 5.2-5.3. With :math:`G_l = \log\mathcal F_l + S_l` and
    :math:`\log\mathcal B_{l,L} = S_L - S_l`, the gap is :math:`D_l(L) = G_l - S_L`: when one pair attains every
    backward sup and :math:`G` is strictly decreasing (ReLU at (2, 0); checked, not assumed) the crossing for each L
    is a binary search of the level :math:`S_L` in :math:`G`. Otherwise every depth is scanned exactly in O(L).
    Asymptotically :math:`l^* \simeq (9\pi^2/2)^{1/5}L^{3/5} = 2.13551\,L^{3/5}`, approached slowly: the local
    log-log slope is 0.715 over [10, 100] and 0.604 over [1e4, 1e6] (the :math:`\log l/l` corrections of sec. 5.1).
    The normalization, :math:`\epsilon`, the log-distance criterion and the rounding are implementation choices;
    the balance condition and the 3/5 law are the seed's.

    Examples
    --------
    >>> peak_layer(np.arange(10, 101, 10)).l_star.tolist()      # the seed's depths (sheet sec. 5.3)
    [5, 9, 12, 14, 17, 19, 21, 23, 25, 27]
    >>> round(float(peak_layer(100000).l_cont), 2)
    2120.38
    """
    _check_choice(norm, NORMS, "norm")
    _check_choice(score, SCORES, "score")
    depths = _check_depths(depth)
    scalar = np.ndim(depths) == 0
    arr = np.atleast_1d(depths).astype(np.int64)
    L_max = int(arr.max())
    model = _Model(L_max, activation, sigma_w2, sigma_b2, eps, norm, pairs)
    fast = (
        score == "crossing"
        and model.single
        and model.Z[0, -1] == 0
        and np.all(np.isfinite(model.log_f))
        and np.all(np.diff(model.log_f + model.S[0]) < 0)
    )
    if fast:
        l_star, l_cont, log_b = _crossing_fast(model, arr)
    else:
        l_star = np.empty(arr.size, dtype=np.int64)
        l_cont = np.empty(arr.size)
        log_b = np.empty(arr.size)
        _scan(model.log_f, model.S, model.Z, arr, score == "harmonic", l_star, l_cont, log_b)
    if score == "crossing" and np.any(np.isnan(l_cont)):
        bad = arr[np.isnan(l_cont)]
        warnings.warn(
            f"no sign change of log F - log B within 1..L for depth(s) {bad[:5].tolist()}: l_cont is NaN and "
            "l_star is the layer of smallest |log F - log B|",
            UserWarning,
            stacklevel=2,
        )
    forward = np.exp(model.log_f[l_star - 1])
    backward = np.exp(log_b)
    asym = peak_layer_constant(norm, score) * arr.astype(np.float64) ** 0.6
    curves = _loss_from_model(model, L_max, norm)
    if scalar:
        return PeakLayer(
            int(arr[0]), int(l_star[0]), float(l_cont[0]), float(forward[0]), float(backward[0]), float(asym[0]),
            curves, norm, score,
        )  # fmt: skip
    return PeakLayer(arr, l_star, l_cont, forward, backward, asym, curves, norm, score)


# ---------------------------------------------------------------------------------------------------------------
# log-log fits
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingFit:
    r"""Least-squares fit :math:`\log l = a\log L + C`.

    Attributes
    ----------
    slope, intercept : float
        a and C (natural logarithms).
    slope_se, intercept_se : float
        Standard errors (0 for a fixed slope's ``slope_se``).
    fixed : bool
        True when the slope was fixed.
    n : int
        Number of points.
    """

    slope: float
    intercept: float
    slope_se: float
    intercept_se: float
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
        Fix the slope (``0.6`` is the seed's Fig. 3 procedure); default: fit it.

    Returns
    -------
    ScalingFit

    Notes
    -----
    Ordinary least squares on the logarithms. Free slope (n >= 3): the usual standard errors from the residual
    variance with n - 2 degrees of freedom. Fixed slope a (n >= 2): :math:`C = \mathrm{mean}(\log l - a\log L)` with
    standard error :math:`\mathrm{sd}/\sqrt n` (signal_propagation.md sec. 5.3; seed 000 Fig. 3).

    Examples
    --------
    >>> L = np.arange(10, 101, 10)
    >>> fit = scaling_fit(L, peak_layer(L).l_star, slope=0.6)
    >>> round(fit.intercept, 3)
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
        a = float(slope)
        if not np.isfinite(a):
            raise ValueError(f"slope must be finite, got {slope!r}")
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
