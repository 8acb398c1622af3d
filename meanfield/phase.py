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
from .gaussian.maps import correlation_map, pair_moments, second_moment, single_moments, variance_slope
from .network import FEATURES, Network
from .propagation.pair import pair_curve

__all__ = ["Phase", "c_curve", "edge_of_chaos", "fixed_point_q", "phase", "q_curve"]

#: |chi_1 - 1| below this is reported as the edge of chaos
EOC_TOL = 1e-9


@dataclass(frozen=True)
class Phase:
    r"""Mean-field phase of an activation and initialization (Poole et al. 2016; Schoenholz et al. 2017).

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
    phase : {"ordered", "edge_of_chaos", "chaotic", "residual"}
        ``"residual"``: a residual network, which has no fixed point (``q_star = inf``; ``c_star``, ``chi1``,
        ``chi_c``, ``xi_q``, ``xi_c`` are NaN); its growth is in the four fields below.
    note : str
        What is special about this point, if anything (also: which values of a per-layer schedule were used).
    q_rate : float
        Residual networks: :math:`q_{L-1}/q_{L-2}`, the growth factor of the variance over the last residual block
        (tends to :math:`1 + \beta^2\sigma_w^2\lim_q\mathbb E\phi(\sqrt q z)^2/q`: :math:`1 + \beta^2\sigma_w^2/2`
        for ReLU, exponential growth; 1 for bounded activations, polynomial growth). NaN otherwise.
    q_power : float
        Residual networks: the local exponent :math:`p` of :math:`q_l \sim l^p` over the last half of the hidden
        layers, :math:`\log(q_{L-1}/q_k)/\log((L-1)/k)` with :math:`k = \lfloor (L-1)/2\rfloor` (about 1 for
        tanh or LayerNorm, whose variance grows linearly; large when ``q_rate > 1``). NaN otherwise.
    c_power : float
        Residual networks: the local exponent :math:`\gamma` of :math:`1 - c_l \sim l^{-\gamma}` over the same
        layers, from orthogonal inputs on the sphere (:math:`\gamma \to 2` for ReLU with a fixed :math:`\beta`:
        polynomial, not exponential, approach of :math:`c_l` to 1; about 0 when :math:`c_l` stays away from 1,
        e.g. with dropout or :math:`\beta = 1/\sqrt L`). NaN otherwise.
    one_minus_c : float
        Residual networks: :math:`1 - c_{L-1}` at the last hidden layer, same inputs. NaN otherwise.
    tail_start : int
        First layer of the constant tail of a per-layer schedule whose values (those of layer L) the phase
        describes; 1 for constant variances.
    """

    q_star: float
    c_star: float
    chi1: float
    chi_c: float
    xi_q: float
    xi_c: float
    phase: str
    note: str = ""
    q_rate: float = math.nan
    q_power: float = math.nan
    c_power: float = math.nan
    one_minus_c: float = math.nan
    tail_start: int = 1


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

    Options (derived here): a per-layer schedule uses the values of its constant tail (:func:`phase` says from
    which layer); dropout with keep probability :math:`\rho` divides :math:`\sigma_w^2` by :math:`\rho` in the
    variance map (Schoenholz et al. 2017, sec. 5); LayerNorm feeds :math:`\phi` unit variances, so
    :math:`q^* = \sigma_w^2\mathbb E\phi(z)^2/\rho + \sigma_b^2` is reached after one layer; a residual network
    has no fixed point, :math:`q_l` grows without bound (``inf``; :func:`phase` reports the growth).

    Examples
    --------
    >>> round(fixed_point_q(Network(1, "relu", 1.5, 0.1)), 12)
    0.4
    >>> round(fixed_point_q(Network(1, "erf", 1.0, 0.05)), 6)
    0.288427
    >>> round(fixed_point_q(Network(3, "relu", 1.5, 0.1, dropout=0.9)), 12)   # 0.1 / (1 - 0.75 / 0.9)
    0.6
    """
    net = check_network(net, supports=FEATURES, what="fixed_point_q")
    if net.residual is not None:
        return math.inf
    sw, sb, _ = _tail(net)
    inv_rho = 1.0 if net.dropout is None else 1.0 / net.dropout
    if net.normalization == "layer":
        return float(sw * inv_rho * single_moments(net.activation, 1.0)[0] + sb)
    return _fixed_point_q(net.activation, sw * inv_rho, sb)


def _tail(net):
    """(sigma_w2, sigma_b2, l0) of layer L, constant over layers l0..L of the schedule."""
    sw, sb, L = net.weight_variances, net.bias_variances, net.depth
    l0 = L
    while l0 > 1 and sw[l0 - 2] == sw[L - 1] and sb[l0 - 2] == sb[L - 1]:
        l0 -= 1
    return sw[L - 1], sb[L - 1], l0


#: the variance brackets are widened by this factor per step, up to _Q_MAX (beyond which q_l is taken to diverge)
_WIDEN = 10.0
_Q_MAX = 1e300
#: first positive node of the variance grid of the fixed-point search
_Q_GRID_FIRST = 1e-12


#: variances at which the large-q slope sigma_w^2 v(q) / q is sampled before the dense upward search
_FAR_Q = (1e6, 1e9, 1e14, 1e22, 1e35, 1e55, 1e90, 1e150, 1e220, 1e300)


def _diverges(act, sw, margin=1.01):
    r"""True if the variance map grows faster than the identity at every sampled large variance,
    :math:`\sigma_w^2 v(q) / q \ge` ``margin`` for q in :data:`_FAR_Q` (then :math:`g(q) > 0` there for every
    :math:`\sigma_b^2 \ge 0`: the map has no fixed point above :math:`10^6`). A shortcut of the dense search (each
    quadrature at :math:`q \sim 10^{300}` costs ~1000 panels); between the samples :math:`v(q)/q` is taken to
    move monotonically towards its limit :math:`(\phi_+^2 + \phi_-^2)/2`, :math:`\phi_\pm = \lim \phi(u)/u`,
    as it does for every activation of the table."""
    return all(sw * float(second_moment(act, q)) / q >= margin for q in _FAR_Q)


def _fixed_point_q(act, sw, sb):
    if act.kind == KIND_LEAKY:
        m = sw * 0.5 * (1.0 + act.slope**2)
        if m < 1.0:
            return sb / (1.0 - m)
        # m > 1: q = 0 (sigma_b2 = 0) is an unstable fixed point and every q_1 > 0 grows without bound
        return math.nan if (m == 1.0 and sb == 0.0) else math.inf

    def g(q):
        return float(sw * second_moment(act, q) + sb - q)

    grid = list(np.concatenate([[0.0], np.logspace(math.log10(_Q_GRID_FIRST), 6, 181)]))
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
    if not any(v < 0.0 for v in vals) and _diverges(act, sw):
        return math.inf
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

    Options (derived here unless cited). *Per-layer variances*: the values of the constant tail of the schedule
    (``tail_start``, and a note). *Dropout* (keep probability :math:`\rho`; Schoenholz et al. 2017, sec. 5):
    :math:`q^* = \sigma_w^2\mathbb E\phi^2/\rho + \sigma_b^2` and :math:`C(c) = (\sigma_w^2\mathbb E[\phi(u)\phi(v)]
    + \sigma_b^2)/q^*`, so :math:`C(1) < 1`: :math:`c^* < 1` is the last down-crossing of :math:`C(c) - c` on
    :math:`[-1, 1]` (grid of 401 points, then Brent), :math:`\chi_c = \sigma_w^2\mathbb E[\phi'\phi']_{c^*}` and
    :math:`\xi_c` is finite for every :math:`\sigma_w^2` (tanh, :math:`\sigma_b^2 = 0.05`: at most 4.67, 14.5,
    42.8 for :math:`\rho = 0.9, 0.99, 0.999`, growing like :math:`(1-\rho)^{-1/2}`); ``chi1`` stays the slope of
    :math:`C` at :math:`c = 1`, :math:`\sigma_w^2\mathbb E\phi'^2`, and ``phase`` is "ordered" for ``chi1 <= 1``,
    else "chaotic" (never "edge_of_chaos"). *LayerNorm*: :math:`\phi` sees unit variances, :math:`q^* =
    \sigma_w^2\mathbb E\phi(z)^2/\rho + \sigma_b^2` from layer 2 on (:math:`\xi_q = 0`), :math:`\chi_1 =
    \sigma_w^2\mathbb E\phi'(z)^2/q^*`. *Residual networks* have no fixed point: ``phase = "residual"`` and the
    growth fields ``q_rate``, ``q_power``, ``c_power``, ``one_minus_c`` of :class:`Phase`, measured on the network's
    own layers (:func:`meanfield.equilibrium.curves.arch_curves`, orthogonal inputs on the sphere); for ReLU with a
    fixed :math:`\beta` the approach :math:`1 - c_l \simeq ((1+\alpha)/\alpha)^2\,9\pi^2/(2l^2)`,
    :math:`\alpha = \beta^2\sigma_w^2/2`, is polynomial (Yang & Schoenholz 2017 for the polynomial approach).

    Examples
    --------
    >>> p = phase(Network(1, "erf", 2.0, 0.05))
    >>> p.phase, round(p.q_star, 6), round(p.chi1, 6), round(p.c_star, 6), round(p.xi_c, 4)
    ('chaotic', 0.965955, 1.154653, 0.434481, 10.185)
    >>> phase(Network(3)).phase       # ReLU at (2, 0): He initialization
    'edge_of_chaos'
    >>> round(phase(Network(3, "tanh", 1.7, 0.05, dropout=0.9)).xi_c, 4)   # finite: no critical line
    4.6472
    >>> p = phase(Network(200, residual=1.0))
    >>> p.phase, round(p.q_rate, 12), round(p.c_power, 2)   # q_l ~ 2^l, 1 - c_l ~ l^(-2)
    ('residual', 2.0, 1.8)
    """
    net = check_network(net, supports=FEATURES, what="phase")
    act = net.activation
    sw, sb, l0 = _tail(net)
    notes = []
    if "schedule" in net.features:
        span = f"constant from layer {l0} to {net.depth}" if l0 < net.depth else "only layer L: not constant at the end"
        notes.append(f"per-layer schedule: the phase of its tail, sigma_w2 = {sw:g}, sigma_b2 = {sb:g} ({span})")
    if net.residual is not None:
        return _residual_phase(net, notes, l0)
    if net.normalization is not None or net.dropout is not None:
        return _option_phase(net, sw, sb, notes, l0)

    q = _fixed_point_q(act, sw, sb)
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
    return Phase(float(q), c_star, chi1, chi_c, xi_q, xi_c, name, "; ".join(notes), tail_start=l0)


def _option_phase(net, sw, sb, notes, l0):
    r"""Phase with LayerNorm and/or dropout (no residual blocks); see :func:`phase`."""
    act = net.activation
    rho = 1.0 if net.dropout is None else net.dropout
    ln = net.normalization == "layer"
    if ln:
        qin = 1.0
        q = float(sw / rho * single_moments(act, 1.0)[0] + sb)
        vslope = 0.0  # q_l = q* from layer 2 on
        notes.append("LayerNorm: phi sees unit variances, q_l = q* from layer 2 on (xi_q = 0)")
    else:
        q = _fixed_point_q(act, sw / rho, sb)
        if not math.isfinite(q):
            notes.append("the variance q_l diverges or every q is fixed: no finite fixed point with dropout")
            return Phase(float(q), math.nan, math.nan, math.nan, math.nan, math.nan, "chaotic" if math.isinf(q)
                         else "edge_of_chaos", "; ".join(notes), tail_start=l0)  # fmt: skip
        qin = q
        vslope = float(sw / rho * variance_slope(act, q))
    v, dd = (float(x) for x in single_moments(act, qin))
    chi1 = sw * dd * qin / q  # slope of the correlation map at c = 1: q_in sigma_w^2 E phi'^2 / q*

    def c_next(c):
        c = np.asarray(c, dtype=np.float64)
        _, gap, _, _, vv = pair_moments(act, qin, qin, 1.0 - c, 1.0 + c)
        return 1.0 - sw * (gap + vv * (1.0 / rho - 1.0)) / q

    if rho == 1.0 and chi1 <= 1.0 + EOC_TOL:
        c_star = 1.0
    else:
        # the stable fixed point: the last sign change of C(c) - c from + to - on [-1, 1] (C(1) < 1 with dropout)
        grid = np.linspace(-1.0, 1.0 if rho < 1.0 else 1.0 - 1e-9, 401)
        f = c_next(grid) - grid
        down = np.nonzero((f[:-1] >= 0.0) & (f[1:] < 0.0))[0]
        if down.size == 0:
            c_star = -1.0 if f[0] < 0.0 else 1.0
        else:
            k = int(down[-1])
            c_star = float(optimize.brentq(lambda c: float(c_next(c)) - c, grid[k], grid[k + 1], xtol=1e-15,
                                           rtol=1e-15, maxiter=500))  # fmt: skip
    dcov = float(pair_moments(act, qin, qin, 1.0 - c_star, 1.0 + c_star)[3])
    chi_c = sw * dcov * qin / q
    if rho < 1.0:
        name = "ordered" if chi1 <= 1.0 else "chaotic"
        notes.append(
            f"dropout (rho = {rho:g}): c = 1 is not a fixed point (C(1) = {float(c_next(1.0)):.6g} < 1), so c* < 1 "
            "and xi_c is finite for every sigma_w2: no critical line (Schoenholz et al. 2017, sec. 5); chi1 is the "
            "slope of the correlation map at c = 1, the gradient norm grows by chi1 / rho per layer"
        )
    elif abs(chi1 - 1.0) <= EOC_TOL:
        name = "edge_of_chaos"
    else:
        name = "ordered" if chi1 < 1.0 else "chaotic"
    return Phase(q, c_star, chi1, chi_c, _depth_scale(vslope), _depth_scale(chi_c), name, "; ".join(notes),
                 tail_start=l0)  # fmt: skip


#: fewest layers for the growth exponents of a residual network
_MIN_RESIDUAL_DEPTH = 6


def _residual_phase(net, notes, l0):
    r"""Growth of :math:`q_l` and approach of :math:`c_l` to 1 in a residual network; see :func:`phase`."""
    from .equilibrium.curves import arch_curves

    nan = math.nan
    notes.append("residual network: no fixed point; q_l grows and c_l approaches its limit polynomially or "
                 "exponentially, see q_rate, q_power, c_power (Yang & Schoenholz 2017)")  # fmt: skip
    if net.depth < _MIN_RESIDUAL_DEPTH:
        notes.append(f"depth {net.depth} < {_MIN_RESIDUAL_DEPTH}: too few residual blocks for growth exponents")
        return Phase(math.inf, nan, nan, nan, nan, nan, "residual", "; ".join(notes), tail_start=l0)
    ac = arch_curves(net.replace(width=None), np.array([1.0]))  # orthogonal inputs on the sphere
    lq, s = ac.log_q[0], ac.s[0]
    m = net.depth - 1  # last hidden layer
    k = m // 2
    span = math.log(m / k)
    q_rate = math.exp(lq[m - 1] - lq[m - 2])
    q_power = (lq[m - 1] - lq[k - 1]) / span
    with np.errstate(divide="ignore"):
        c_power = -(math.log(s[m - 1]) - math.log(s[k - 1])) / span if s[k - 1] > 0 else nan
    return Phase(math.inf, nan, nan, nan, nan, nan, "residual", "; ".join(notes), q_rate, q_power, c_power,
                 float(s[m - 1]), l0)  # fmt: skip


def _linear_tail_edge(act):
    r""":math:`2/(a_+^2 + a_-^2)` for an activation with linear tails :math:`\phi(z) \sim a_\pm z` as
    :math:`z \to \pm\infty` (checked at :math:`|z| = 10^6` and :math:`10^7`), else None."""
    a = []
    for sign in (1.0, -1.0):
        z1, z2 = sign * 1e6, sign * 1e7
        s1, s2 = float(act.fn(np.float64(z1))) / z1, float(act.fn(np.float64(z2))) / z2
        if not (math.isfinite(s1) and math.isfinite(s2)) or abs(s1 - s2) > 1e-9 * max(1.0, abs(s2)):
            return None
        a.append(s2)
    total = a[0] ** 2 + a[1] ** 2
    return 2.0 / total if total > 1e-6 else None


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
    searched for). Activations with linear tails :math:`\phi(z) \sim a_\pm z` (softplus) whose fixed point escapes
    to infinity before :math:`\chi_1` reaches 1 have their edge at the limit :math:`2/(a_+^2 + a_-^2)`, where
    :math:`q^* \to \infty` and :math:`\chi_1 \to 1` from below (softplus: 2, for every :math:`\sigma_b^2`).

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
        if _fixed_point_q(act, sw0 * (1.0 - 1e-6), sb) == 0.0:
            # q* = 0 up to sw0, where chi_1 = sigma_w2 phi'(0)^2 -> 1 (SiLU, GELU: at sw0 the variance map's next
            # term pushes q away from 0 and q* jumps to inf). The edge is the left limit: the largest sigma_w2 whose
            # stable fixed point is still q* = 0, i.e. sigma_w2 v(q) < q at the variance grid's first node (chi_1
            # there is 1 to ~1e-12)
            q_first = _Q_GRID_FIRST
            sw = min(sw0, q_first / float(second_moment(act, q_first)))
            while _fixed_point_q(act, sw, sb) != 0.0:
                sw = math.nextafter(sw, 0.0)
            return sw

    def log_chi(log_sw):
        sw = math.exp(log_sw)
        q = _fixed_point_q(act, sw, sb)
        if math.isinf(q):
            return math.inf
        return math.log(sw * float(single_moments(act, q)[1]))

    sw_tail = _linear_tail_edge(act)
    if sw_tail is not None:
        # activations linear at both ends (softplus: slopes 1 and 0) behave like the leaky-ReLU family at large q:
        # chi_1 -> sigma_w2 (a_+^2 + a_-^2) / 2 as q* -> inf. When the fixed point just below that sigma_w2 is on
        # the escaping branch (q* huge) with chi_1 still < 1 (1 - chi_1 falls only like q*^-1/2), chi_1 reaches 1
        # only in the limit q* -> inf: the edge is the limit itself (softplus: exactly 2), reached from the ordered
        # side; searching for it would chase q* -> inf for minutes
        below = sw_tail * (1.0 - 1e-9)
        q = _fixed_point_q(act, below, sb)
        if (
            math.isfinite(q)
            and q > 1e5
            and log_chi(math.log(below)) < 0.0
            and math.isinf(_fixed_point_q(act, sw_tail * (1.0 + 1e-3), sb))
        ):
            return sw_tail

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
