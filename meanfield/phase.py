r"""Mean-field phase diagram: fixed points, :math:`\chi_1`, depth scales, edge of chaos.

Poole et al. 2016 (the variance map, :math:`q^*` and :math:`\chi_1`) and Schoenholz et al. 2017 (the depth
scales and :math:`\chi_c`):

.. math::
    q^* = \sigma_w^2\!\int\!Dz\,\phi(\sqrt{q^*}z)^2 + \sigma_b^2,\qquad
    \chi_1 = \sigma_w^2\!\int\!Dz\,\phi'(\sqrt{q^*}z)^2,\qquad
    \chi_c = \sigma_w^2\,\mathbb E[\phi'(u_1)\phi'(u_2)]_{q^*, c^*},

    \xi_q^{-1} = -\log\big(\sigma_w^2\,\tfrac{d}{dq}\mathbb E\phi(\sqrt q z)^2\big|_{q^*}\big),\qquad
    \xi_c^{-1} = -\log\chi_c .

Ordered: :math:`\chi_1 < 1` (:math:`c^* = 1` stable); chaotic: :math:`\chi_1 > 1` (a stable :math:`c^* < 1`);
edge of chaos: :math:`\chi_1 = 1`. Every function takes the network spec first (``phase(net)``,
``fixed_point_q(net)``, ``q_curve(net, q1)``, ``c_curve(net, c1)``); its depth and width are ignored except by the
curves, which run over l = 1..``net.depth``. :func:`edge_of_chaos` searches over :math:`\sigma_w^2` and so takes
an activation and :math:`\sigma_b^2`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ._checks import check_network, check_real
from .activations import KIND_LEAKY, get_activation
from .gaussian.maps import correlation_map, pair_moments, single_moments, variance_slope
from .network import Network
from .propagation.pair import pair_curve

__all__ = ["Phase", "c_curve", "edge_of_chaos", "fixed_point_q", "phase", "q_curve"]

#: |chi_1 - 1| below this is reported as the edge of chaos
EOC_TOL = 1e-9


@dataclass(frozen=True)
class Phase:
    """Mean-field phase of an activation and initialization (Poole et al. 2016; Schoenholz et al. 2017).

    Attributes
    ----------
    q_star : float
        Stable fixed point of the variance map (``inf`` when ``q_l`` diverges, ``nan`` when every ``q`` is fixed).
    c_star : float
        Stable fixed point of the correlation map at ``q_star`` (1 in the ordered phase and at the edge of chaos).
    chi1, chi_c : float
        Slopes of the correlation map at ``c = 1`` and at ``c_star``.
    xi_q, xi_c : float
        Depth scales of the variance and of the correlation (``inf`` where the convergence is not exponential).
    phase : {"ordered", "edge_of_chaos", "chaotic"}
    note : str
        What is special about this point, if anything.
    """

    q_star: float
    c_star: float
    chi1: float
    chi_c: float
    xi_q: float
    xi_c: float
    phase: str
    note: str = ""


def _depth_scale(slope: float) -> float:
    """-1 / log(slope): infinite at (or within EOC_TOL of) slope 1, where convergence is not exponential."""
    if slope >= 1.0 - EOC_TOL:
        return math.inf
    return -1.0 / math.log(slope) if slope > 0.0 else 0.0


def fixed_point_q(net: Network) -> float:
    r"""Smallest stable fixed point :math:`q^*` of ``net``'s variance map (the attractor of every :math:`q_1 < q^*`).

    Returns ``inf`` when the variance diverges (also when :math:`q = 0` is a fixed point but unstable, as for
    ReLU with :math:`\sigma_w^2 > 2` and no bias: every :math:`q_1 > 0` grows without bound), and ``nan`` for a
    linear variance map of slope exactly 1 without bias (ReLU at (2, 0): every ``q`` is a fixed point).

    Notes
    -----
    The leaky-ReLU family has the linear map :math:`q' = \sigma_w^2\frac{1+a^2}{2}q + \sigma_b^2`. Otherwise the
    root of :math:`g(q) = \sigma_w^2 v(q) + \sigma_b^2 - q` is bracketed on a logarithmic grid over
    :math:`[10^{-12}, 10^6]` (first sign change from + to -), widened by factors of 10 up to :math:`10^{300}` while
    :math:`g \ge 0` (large :math:`\sigma_b^2`) and down to :math:`10^{-300}` when :math:`q = 0` is an unstable
    fixed point, and refined with Brent's method to full precision. ``inf`` means :math:`g \ge 0` up to
    :math:`10^{300}`.

    Examples
    --------
    >>> round(fixed_point_q(Network(1, "relu", 1.5, 0.1)), 12)
    0.4
    >>> round(fixed_point_q(Network(1, "erf", 1.0, 0.05)), 6)
    0.288427
    """
    net = check_network(net)
    return _fixed_point_q(net.activation, net.sigma_w2, net.sigma_b2)


#: the variance brackets are widened by this factor per step, up to _Q_MAX (beyond which q_l is taken to diverge)
_WIDEN = 10.0
_Q_MAX = 1e300


def _fixed_point_q(act, sw, sb):
    if act.kind == KIND_LEAKY:
        m = sw * 0.5 * (1.0 + act.slope**2)
        if m < 1.0:
            return sb / (1.0 - m)
        # m > 1: q = 0 (sigma_b2 = 0) is an unstable fixed point and every q_1 > 0 grows without bound
        return math.nan if (m == 1.0 and sb == 0.0) else math.inf

    def g(q):
        return float(sw * single_moments(act, q)[0] + sb - q)

    grid = list(np.concatenate([[0.0], np.logspace(-12, 6, 181)]))
    vals = [g(q) for q in grid]
    if vals[0] == 0.0 and vals[1] < 0.0:
        # q = 0 is a fixed point; it is the stable one unless the map's slope at 0 exceeds 1, in which case a
        # stable fixed point lies below the grid's first node: walk down until g > 0
        if sw * float(single_moments(act, 0.0)[1]) <= 1.0:
            return 0.0
        lo = grid[1]
        while vals[1] < 0.0 and lo > 1e-300:
            lo /= _WIDEN
            grid.insert(1, lo)
            vals.insert(1, g(lo))
        if vals[1] < 0.0:
            return 0.0
    # the first sign change from + to - above 0; widen the grid upwards while g stays >= 0 (large sigma_b2)
    while not any(v < 0.0 for v in vals) and grid[-1] < _Q_MAX:
        grid.append(grid[-1] * _WIDEN)
        vals.append(g(grid[-1]))
    neg = [k for k, v in enumerate(vals) if v < 0.0]
    if not neg:
        return math.inf  # g >= 0 up to 1e300: q_l grows without bound
    k = neg[0]
    if k == 0:  # g(0) < 0 cannot happen for sigma_b2 >= 0
        return 0.0
    return float(optimize.brentq(g, grid[k - 1], grid[k], xtol=1e-300, rtol=1e-15, maxiter=500))


def phase(net: Network) -> Phase:
    r"""Fixed points, slopes, depth scales and the phase of a network's activation and initialization.

    Parameters
    ----------
    net : Network
        Activation and variances (its depth and width are ignored).

    Returns
    -------
    Phase

    Notes
    -----
    :math:`\chi_1 = \sigma_w^2\int Dz\,\phi'(\sqrt{q^*}z)^2`; :math:`\chi_c` uses Price's theorem (no finite
    differences); :math:`\xi_q` uses :math:`\tfrac{d}{dq}\mathbb E\phi^2 = \mathbb E[z\phi\phi']/\sqrt q`
    (Stein's lemma, equal to :math:`\chi_1 + \sigma_w^2\int Dz\,\phi''\phi`). In the chaotic phase
    :math:`c^*` is the root of :math:`C(c) = c` on :math:`[0, 1)` (Brent). References: Poole et al. 2016,
    Schoenholz et al. 2017.

    Examples
    --------
    >>> p = phase(Network(1, "erf", 2.0, 0.05))
    >>> p.phase, round(p.q_star, 6), round(p.chi1, 6), round(p.c_star, 6), round(p.xi_c, 4)
    ('chaotic', 0.965955, 1.154653, 0.434481, 10.185)
    >>> phase(Network(3)).phase       # ReLU at (2, 0): He initialization
    'edge_of_chaos'
    """
    net = check_network(net)
    act, sw, sb = net.activation, net.sigma_w2, net.sigma_b2

    q = _fixed_point_q(act, sw, sb)
    notes = []
    if math.isnan(q):
        notes.append("every q is a fixed point (q_l = q_1 exactly); values are at q = 1")
        qe = 1.0
    elif math.isinf(q):
        notes.append("the variance q_l diverges: no finite fixed point; slopes are their q -> infinity limits")
        qe = 1e12 if act.kind != KIND_LEAKY else 1.0
    else:
        qe = q
    _, dv = single_moments(act, qe)
    chi1 = float(sw * dv)
    vslope = float(sw * variance_slope(act, qe))
    xi_q = _depth_scale(vslope)

    if abs(chi1 - 1.0) <= EOC_TOL:
        name = "edge_of_chaos"
    else:
        name = "ordered" if chi1 < 1.0 else "chaotic"
    c_star, chi_c = 1.0, chi1
    if name == "chaotic" and qe > 0 and not math.isinf(q):

        def f(c):
            return float(correlation_map(c, act, qe, sw, sb)) - c

        hi = 1.0 - 1e-9
        if f(0.0) <= 1e-14:  # odd activations without bias: c* = 0 up to rounding of the Mehler sum
            c_star = 0.0
        elif f(hi) < 0.0:
            c_star = float(optimize.brentq(f, 0.0, hi, xtol=1e-15, rtol=1e-15, maxiter=500))
        dcov = pair_moments(act, qe, qe, 1.0 - c_star, 1.0 + c_star)[3]
        chi_c = float(sw * dcov)
    elif name == "chaotic":
        c_star = math.nan
        chi_c = math.nan
        notes.append("c* is undefined without a finite q*")
        if act.kind == KIND_LEAKY and sb == 0.0:
            notes.append("with sigma_b2 = 0 the ReLU correlation map does not depend on sigma_w2: c_l -> 1")
    if act.kind == KIND_LEAKY and name != "ordered" and sb > 0:
        notes.append("the leaky-ReLU family has its edge of chaos only at sigma_b2 = 0")
    xi_c = _depth_scale(chi_c) if not math.isnan(chi_c) else math.nan
    return Phase(float(q), c_star, chi1, chi_c, xi_q, xi_c, name, "; ".join(notes))


def edge_of_chaos(activation="tanh", sigma_b2=0.0) -> float:
    r"""The weight variance :math:`\sigma_w^2` on the edge of chaos, :math:`\chi_1(q^*(\sigma_w^2)) = 1`.

    Parameters
    ----------
    activation : str or Activation
    sigma_b2 : float
        Bias variance, ``>= 0``.

    Returns
    -------
    float

    Notes
    -----
    Brent's method on :math:`\log\chi_1` as a function of :math:`\log\sigma_w^2`, with :math:`q^*` solved
    exactly at each step, on the bracket :math:`[10^{-3}, 10^3]` widened by factors of :math:`10^3` (to
    :math:`[10^{-300}, 10^{300}]` at most) until :math:`\chi_1 - 1` changes sign (large :math:`\sigma_b^2` moves
    the edge to large :math:`\sigma_w^2`: erf at :math:`\sigma_b^2 = 10^6` has it at about 1572).
    For erf the curve is known in closed form, :math:`\sigma_w^2 = \frac\pi4\sqrt{1+4q^*}`,
    :math:`\sigma_b^2 = q^* - \frac12\sqrt{1+4q^*}\arcsin\frac{2q^*}{1+2q^*}` (derived here from Williams' 1997 erf
    kernel: :math:`q^* = \sigma_w^2 v(q^*) + \sigma_b^2` with :math:`\chi_1 = 1`).
    The leaky-ReLU family (slope ``a``) has its edge of chaos at :math:`\sigma_w^2 = 2/(1+a^2)` and
    :math:`\sigma_b^2 = 0` only. Without bias and with :math:`\phi(0) = 0`, :math:`q^* = 0` up to the edge and
    :math:`\sigma_w^2 = 1/\phi'(0)^2` exactly (the root of :math:`\chi_1 = 1` is tangent there, so it is not
    searched for).

    Examples
    --------
    >>> round(edge_of_chaos("tanh", 0.05), 5)
    1.76095
    >>> round(edge_of_chaos("erf", 0.0) * 4 / np.pi, 12)
    1.0
    """
    act = get_activation(activation)
    sb = check_real(sigma_b2, "sigma_b2", low=0.0)
    if act.kind == KIND_LEAKY:
        if sb > 0:
            raise ValueError(
                f"{act.name} has no edge of chaos for sigma_b2 > 0 (the variance diverges where chi_1 = 1); "
                "use sigma_b2 = 0"
            )
        return 2.0 / (1.0 + act.slope**2)
    phi0, dphi0 = float(act.fn(np.float64(0.0))), float(act.derivative(np.float64(0.0)))
    if sb == 0.0 and phi0 == 0.0 and dphi0 != 0.0:
        # q* = 0 is the fixed point up to the edge, where chi_1 = sigma_w2 phi'(0)^2 (erf: pi/4, tanh: 1) -- when
        # the variance map stays below the identity there (odd, saturating activations); for SiLU or GELU it does not
        # (q* = inf at 1/phi'(0)^2), so the general search below decides
        sw0 = 1.0 / dphi0**2
        q0 = _fixed_point_q(act, sw0, sb)
        if math.isfinite(q0) and abs(math.log(sw0 * float(single_moments(act, q0)[1]))) < 1e-6:
            return sw0

    def log_chi(log_sw):
        sw = math.exp(log_sw)
        q = _fixed_point_q(act, sw, sb)
        if math.isinf(q):
            return math.inf
        return math.log(sw * float(single_moments(act, q)[1]))

    # bracket [1e-3, 1e3], widened by factors of 1e3 (down to 1e-300, up to 1e300) until chi_1 changes sign
    lo, hi = math.log(1e-3), math.log(1e3)
    step = math.log(1e3)
    while not log_chi(lo) < 0 and lo > math.log(1e-300):
        lo -= step
    while not log_chi(hi) > 0 and hi < math.log(1e300):
        hi += step
    if not (log_chi(lo) < 0 < log_chi(hi)):
        raise ValueError(
            f"no edge of chaos found for {act.name} at sigma_b2 = {sb} with sigma_w2 in "
            f"[{math.exp(lo):.3g}, {math.exp(hi):.3g}]"
        )
    root = optimize.brentq(log_chi, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=300)
    chi = log_chi(root)
    if not abs(chi) < 1e-6:
        # log chi_1 jumped across zero: the stable fixed point q* vanished there (a saddle-node bifurcation of the
        # variance map, e.g. GELU with bias), so chi_1 = 1 is never reached on the stable branch
        raise ValueError(
            f"{act.name} at sigma_b2 = {sb} has no edge of chaos on its stable variance fixed point: the fixed point "
            f"disappears at sigma_w2 = {math.exp(root):.10g} with chi_1 = {math.exp(min(chi, 700.0)):.6g}"
        )
    return math.exp(root)


def q_curve(net: Network, q1) -> np.ndarray:
    """Variances :math:`q_l` for l = 1..``net.depth`` from :math:`q_1` (the variance map iterated; Poole et al. 2016).

    Every option of the spec: per-layer variances, residual blocks (:math:`q_{l} = q_{l-1} + \\beta^2(\\sigma_w^2
    \\mathbb E\\phi^2 + \\sigma_b^2)`, Yang & Schoenholz 2017), LayerNorm (:math:`\\phi` sees unit variance) and
    dropout (:math:`\\mathbb E\\phi^2/\\rho`, Schoenholz et al. 2017, sec. 5): the recursions of
    :mod:`meanfield.propagation.architecture`.

    Examples
    --------
    >>> q_curve(Network(4, "relu", 1.0, 0.5), 1.0).tolist()
    [1.0, 1.0, 1.0, 1.0]
    >>> q_curve(Network(4, "relu", 2.0, 0.0, residual=1.0), 1.0).tolist()   # doubles on each residual block
    [1.0, 2.0, 4.0, 4.0]
    """
    net = check_network(net, supports=("schedule", "residual", "normalization", "dropout"), what="q_curve")
    return pair_curve(net, q1=q1).q1


def c_curve(net: Network, c1, q1=1.0) -> np.ndarray:
    """Correlations :math:`c_l` for l = 1..``net.depth`` from :math:`c_1` at equal input variances :math:`q_1`.

    For full precision near ``c = 1`` use :func:`meanfield.propagation.pair_curve` and its ``s`` (``1 - c``). Every
    option of the spec (:func:`q_curve`); with dropout the two inputs are two forward passes (independent masks).

    Examples
    --------
    >>> np.round(c_curve(Network(3), 0.0), 10).tolist()
    [0.0, 0.3183098862, 0.4937310902]
    """
    net = check_network(net, supports=("schedule", "residual", "normalization", "dropout"), what="c_curve")
    c1 = check_real(c1, "c1", low=-1.0, high=1.0)
    return pair_curve(net, q1=q1, c=c1).c
