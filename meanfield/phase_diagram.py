r"""The mean-field phase diagram on a whole grid of :math:`(\sigma_w^2, \sigma_b^2)`, vectorized.

At every grid point this computes what :func:`meanfield.phase` computes at one (Poole et al. 2016; Schoenholz et
al. 2017): the stable fixed point :math:`q^*` of the variance map, :math:`\chi_1`, the correlation fixed point
:math:`c^*` with its slope :math:`\chi_c`, the depth scales :math:`\xi_q`, :math:`\xi_c` and the phase, and on
every row (one :math:`\sigma_b^2`) the edge of chaos :math:`\sigma_w^2` with :math:`\chi_1 = 1`
(as :func:`meanfield.edge_of_chaos`).

Vectorization (derived here):

* :math:`g(q) = \sigma_w^2 v(q) + \sigma_b^2 - q` with :math:`v(q) = \mathbb E\phi(\sqrt q z)^2` depends on the
  grid point only through two numbers, so :math:`v` is tabulated once on the bracketing grid of
  :func:`meanfield.phase.fixed_point_q` and every point's bracket (first sign change from + to -) is read off
  the table; the brackets are refined together by safeguarded Newton steps (slope :math:`\sigma_w^2 v'(q) - 1`
  from Stein's lemma, :func:`meanfield.gaussian.maps.variance_slope`).
* The one-point moments of the general (Hermite) path use the package's one 1-D rule
  (:func:`meanfield.gaussian.quadrature.gauss_rule`) at the cached scale
  :func:`meanfield.gaussian.quadrature.rule_scale` of each variance (a rule for a variance at most 19% larger,
  which is at least as fine), as one matrix product per scale; closed forms otherwise.
* :math:`c^*` is refined by safeguarded Newton steps on :math:`C(c) - c` (slope by Price's theorem) through the
  package's one pair step (:func:`meanfield.gaussian.maps.pair_moments`); on the general path the Hermite
  coefficients of each point are computed once (grouped by octaves of :math:`q^*`, so each group gets its own
  adaptive order) and reused by every step.
* The edge of chaos is parametrized by its fixed point: :math:`\chi_1 = 1` and :math:`q = \sigma_w^2v(q) +
  \sigma_b^2` give :math:`\sigma_w^2 = 1/\dot v(q)` and :math:`\sigma_b^2 = S(q) = q - v(q)/\dot v(q)` with
  :math:`\dot v(q) = \mathbb E\phi'(\sqrt q z)^2` (for erf this is Williams' 1997 closed form quoted in
  :func:`meanfield.edge_of_chaos`), so each row is one 1-D root of :math:`S(q) = \sigma_b^2` (Brent). The root is
  kept only where :math:`q` is the stable fixed point at :math:`(1/\dot v(q), \sigma_b^2)`; other rows (a
  saddle-node of the variance map, e.g. GELU with bias, and the tangent case :math:`\sigma_b^2 = 0`,
  :math:`\phi(0) = 0`) are handed to :func:`meanfield.edge_of_chaos`. A row where :math:`S(q) = \sigma_b^2` has no
  root for :math:`q \le 10^6` has no edge of chaos on a finite fixed point and is masked (softplus, whose
  :math:`S` decreases from :math:`-4\log^2 2`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ._checks import check_memory, finite_array
from .activations import KIND_HERMITE, KIND_LEAKY, Activation, get_activation
from .gaussian.hermite import hermite_coefficients, pack_parity
from .gaussian.maps import _pairs_loop, pair_moments, single_moments, variance_slope
from .gaussian.quadrature import gauss_rule, rule_scale
from .phase import EOC_TOL, edge_of_chaos

__all__ = ["PhaseDiagram", "phase_diagram", "FIXED", "DIVERGES", "ALL_FIXED", "ORDERED", "EDGE", "CHAOTIC"]

#: ``status`` codes: a finite stable fixed point q*; q_l diverges (no finite fixed point); every q is a fixed point
FIXED, DIVERGES, ALL_FIXED = 0, 1, 2
#: ``phase`` codes
ORDERED, EDGE, CHAOTIC = -1, 0, 1
PHASE_NAMES = {ORDERED: "ordered", EDGE: "edge_of_chaos", CHAOTIC: "chaotic"}

#: the base bracketing grid of the variance (the one of :func:`meanfield.phase.fixed_point_q`)
_BASE_GRID = np.concatenate([[0.0], np.logspace(-12, 6, 181)])
_WIDEN = 10.0
#: bytes per grid point at the peak (the bracketing table of about 200 variances, float64 and bool)
_BYTES_PER_POINT = 200 * 8 * 3


@dataclass(frozen=True)
class PhaseDiagram:
    r"""The mean-field phase diagram on a grid (Poole et al. 2016, Fig. 2; Schoenholz et al. 2017, Fig. 1).

    Every field on the grid has shape ``(len(sigma_b2), len(sigma_w2))``: row ``i`` is ``sigma_b2[i]``,
    column ``j`` is ``sigma_w2[j]``. Values that do not exist at a point are *masked* (``numpy.ma``), never NaN:

    Attributes
    ----------
    activation : str
        Name of the activation.
    sigma_w2, sigma_b2 : ndarray
        The grid axes (increasing).
    status : ndarray of int8
        :data:`FIXED` (0): a finite stable fixed point :math:`q^*`; :data:`DIVERGES` (1): :math:`q_l` grows without
        bound (no finite fixed point; :math:`\chi_1` and :math:`\xi_q` are their :math:`q \to \infty` limits, as
        in :func:`meanfield.phase`); :data:`ALL_FIXED` (2): the variance map is the identity (leaky-ReLU family at
        :math:`\sigma_w^2(1+a^2)/2 = 1`, :math:`\sigma_b^2 = 0`; values at ``q = 1``).
    phase : ndarray of int8
        :data:`ORDERED` (-1, :math:`\chi_1 < 1`), :data:`EDGE` (0, :math:`|\chi_1 - 1| \le 10^{-9}`),
        :data:`CHAOTIC` (+1).
    q_star : numpy.ma.MaskedArray
        Masked where ``status != FIXED``.
    chi1, xi_q : numpy.ma.MaskedArray
        :math:`\chi_1 = \sigma_w^2\mathbb E\phi'(\sqrt{q^*}z)^2` and the variance depth scale (never masked).
    c_star, chi_c, xi_c : numpy.ma.MaskedArray
        Correlation fixed point, its slope and depth scale; masked where they are undefined (chaotic without a
        finite :math:`q^*`). In the ordered phase and on the edge :math:`c^* = 1` and :math:`\chi_c = \chi_1`.
    edge_sigma_w2, edge_q_star : numpy.ma.MaskedArray, shape ``(len(sigma_b2),)``
        The edge of chaos of each row (:func:`meanfield.edge_of_chaos` of ``sigma_b2[i]``, anywhere, not only
        inside the grid) and its fixed point; masked for rows without one (leaky-ReLU family at
        :math:`\sigma_b^2 > 0`, activations whose stable fixed point disappears before :math:`\chi_1 = 1`);
        ``edge_q_star`` is also masked where every ``q`` is a fixed point (leaky-ReLU family at
        :math:`\sigma_b^2 = 0`).
    """

    activation: str
    sigma_w2: np.ndarray
    sigma_b2: np.ndarray
    status: np.ndarray
    phase: np.ndarray
    q_star: np.ma.MaskedArray
    c_star: np.ma.MaskedArray
    chi1: np.ma.MaskedArray
    chi_c: np.ma.MaskedArray
    xi_q: np.ma.MaskedArray
    xi_c: np.ma.MaskedArray
    edge_sigma_w2: np.ma.MaskedArray
    edge_q_star: np.ma.MaskedArray

    def phase_name(self, i: int, j: int) -> str:
        """``"ordered"``, ``"edge_of_chaos"`` or ``"chaotic"`` at row ``i``, column ``j``."""
        return PHASE_NAMES[int(self.phase[i, j])]


# ---------------------------------------------------------------------------------------------------------------
# one-point moments at many variances: the one rule, one matrix product per cached scale
# ---------------------------------------------------------------------------------------------------------------


def _moments(act: Activation, q: np.ndarray, slope: bool = True):
    """(v, dv, dv/dq) of E phi(sqrt(q) z)^2, E phi'(sqrt(q) z)^2 at every entry of the 1-D array ``q``.

    Closed forms through :func:`single_moments` / :func:`variance_slope`; on the general path the rule of
    :func:`gauss_rule` at :func:`rule_scale` of ``max(q, 1)`` (below ``q = 1`` the rule does not depend on ``q``),
    and the small-variance series of :func:`variance_slope` below 1e-6.
    """
    q = np.asarray(q, dtype=np.float64)
    if act.kind != KIND_HERMITE:
        v, dv = single_moments(act, q)
        return np.asarray(v), np.asarray(dv), (np.asarray(variance_slope(act, q)) if slope else None)
    v, dv = np.empty(q.shape), np.empty(q.shape)
    vs = np.empty(q.shape) if slope else None
    scale = np.array([rule_scale(x) for x in np.maximum(q, 1.0)])
    for s in np.unique(scale):
        idx = np.flatnonzero(scale == s)
        z, w = gauss_rule(float(s))
        # the far tail (|z| > 16.5, Gaussian weight below 1e-60) adds nothing in float64 to moments of activations
        # growing at most polynomially, and costs a third of the nodes
        keep = w > 1e-60
        z, w = z[keep], w[keep]
        sq = np.sqrt(q[idx])
        u = sq[:, None] * z[None, :]
        f, d = act.fn(u), act.derivative(u)
        # sums of products rather than BLAS dot products, which slow down by 100x on huge or subnormal entries
        v[idx] = np.sum(f * f * w, axis=1)
        dv[idx] = np.sum(d * d * w, axis=1)
        if slope:
            with np.errstate(divide="ignore", invalid="ignore"):
                vs[idx] = np.sum(f * d * (w * z), axis=1) / sq
    if slope:
        small = q < 1e-6
        if np.any(small):
            vs[small] = variance_slope(act, q[small])
    return v, dv, vs


# ---------------------------------------------------------------------------------------------------------------
# the variance fixed point on the grid
# ---------------------------------------------------------------------------------------------------------------


def _fixed_points(act, SW, SB, vg=None):
    """Smallest stable fixed point of every (SW, SB) (flat arrays), by the rules of ``phase._fixed_point_q``;
    ``vg``: v on ``_BASE_GRID`` if already computed."""
    n = SW.size
    if act.kind == KIND_LEAKY:
        m = SW * 0.5 * (1.0 + act.slope**2)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(m < 1.0, SB / (1.0 - m), np.inf)
        q[(m == 1.0) & (SB == 0.0)] = np.nan
        return q
    grid = _BASE_GRID.copy()
    vg = _moments(act, grid, slope=False)[0] if vg is None else vg
    q = np.full(n, np.nan)
    lo = np.zeros(n)
    hi = np.zeros(n)
    G = SW[:, None] * vg[None, :] + SB[:, None] - grid[None, :]
    todo = np.ones(n, dtype=bool)  # points still without a bracket or a value
    # q = 0 a fixed point (g(0) = 0) with g < 0 just above: stable unless the slope at 0 exceeds 1
    zero = (G[:, 0] == 0.0) & (G[:, 1] < 0.0)
    if np.any(zero):
        dv0 = float(single_moments(act, 0.0)[1])
        q[zero & (SW * dv0 <= 1.0)] = 0.0
        walk = np.flatnonzero(zero & (SW * dv0 > 1.0))
        todo[zero] = False
        if walk.size:  # an unstable q = 0: the stable point lies below the grid's first node; walk down
            down = grid[1] / _WIDEN ** np.arange(1, 289)
            vd = _moments(act, down, slope=False)[0]
            pos = (SW[walk, None] * vd[None, :] + SB[walk, None] - down[None, :]) >= 0.0
            has = pos.any(axis=1)
            q[walk[~has]] = 0.0
            k = pos.argmax(axis=1)[has]
            lo[walk[has]] = down[k]
            hi[walk[has]] = np.where(k > 0, down[np.maximum(k - 1, 0)], grid[1])
    neg = G < 0.0
    none = todo & ~neg.any(axis=1)
    if np.any(none):  # g >= 0 on the whole base grid: widen upwards (large sigma_b2) up to 1e300
        up = grid[-1] * _WIDEN ** np.arange(1, 295)
        vu = _moments(act, up, slope=False)[0]
        idx = np.flatnonzero(none)
        negu = (SW[idx, None] * vu[None, :] + SB[idx, None] - up[None, :]) < 0.0
        has = negu.any(axis=1)
        q[idx[~has]] = np.inf
        k = negu.argmax(axis=1)[has]
        lo[idx[has]] = np.where(k > 0, up[np.maximum(k - 1, 0)], grid[-1])
        hi[idx[has]] = up[k]
        todo[idx] = False
    idx = np.flatnonzero(todo)
    k = neg[idx].argmax(axis=1)
    lo[idx], hi[idx] = grid[k - 1], grid[k]
    search = np.flatnonzero(hi > 0.0)
    q[search] = _refine_q(act, SW[search], SB[search], lo[search], hi[search])
    return q


#: the fine table inside the base grid's brackets: this many sub-intervals per base interval
_FINE = 16


def _refine_q(act, sw, sb, lo, hi):
    """Roots of g(q) = sw v(q) + sb - q in [lo, hi] with g(lo) >= 0 > g(hi).

    Brackets between neighbours of the base grid are first narrowed on a shared table of v, ``_FINE`` times finer
    (one 1-D evaluation for all points), to the first sub-interval where g changes sign; the start is the secant
    through its ends. Then Newton steps kept in the bracket (bisection otherwise); a step below 1e-9 of the
    iterate, where the slope of g is not small, is the last one (quadratic convergence leaves an error of order
    1e-18), otherwise the iteration runs until the step or the bracket is at the rounding level.
    """
    n = lo.size
    x = 0.5 * (lo + hi)
    base = np.searchsorted(_BASE_GRID, lo)
    on_base = (base < _BASE_GRID.size - 1) & (_BASE_GRID[np.minimum(base, _BASE_GRID.size - 1)] == lo)
    on_base &= _BASE_GRID[np.minimum(base + 1, _BASE_GRID.size - 1)] == hi
    on_base &= lo > 0.0
    idx = np.flatnonzero(on_base)
    if idx.size:
        fine = np.logspace(-12, 6, 180 * _FINE + 1)
        vf = _moments(act, fine, slope=False)[0]
        k0 = np.round((np.log10(lo[idx]) + 12.0) * 10.0 * _FINE).astype(np.int64)
        cols = k0[:, None] + np.arange(_FINE + 1)[None, :]
        qf = fine[cols]
        qf[:, 0], qf[:, -1] = lo[idx], hi[idx]
        gf = sw[idx, None] * vf[cols] + sb[idx, None] - qf
        neg = gf < 0.0
        neg[:, -1] = True
        j = np.maximum(neg.argmax(axis=1), 1)
        rows = np.arange(idx.size)
        lo[idx], hi[idx] = qf[rows, j - 1], qf[rows, j]
        g0, g1 = gf[rows, j - 1], gf[rows, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            xs = lo[idx] + (hi[idx] - lo[idx]) * g0 / (g0 - g1)
        x[idx] = np.where(np.isfinite(xs) & (xs >= lo[idx]) & (xs < hi[idx]), xs, x[idx])
    active = np.arange(n)
    for _ in range(200):
        if active.size == 0:
            break
        xa = x[active]
        v, _, vs = _moments(act, xa)
        g = sw[active] * v + sb[active] - xa
        dg = sw[active] * vs - 1.0
        up = g >= 0.0
        lo[active] = np.where(up, xa, lo[active])
        hi[active] = np.where(up, hi[active], xa)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = -g / dg
        xn = xa + step
        bad = ~np.isfinite(xn) | (xn < lo[active]) | (xn > hi[active])
        xn = np.where(bad, 0.5 * (lo[active] + hi[active]), xn)
        last = ~bad & (np.abs(step) <= 1e-9 * np.abs(xa)) & (np.abs(dg) > 1e-3)
        done = last | (np.abs(xn - xa) <= 4e-16 * np.abs(xa)) | (hi[active] - lo[active] <= 4e-16 * hi[active])
        done |= g == 0
        x[active] = np.where(g == 0, xa, xn)
        active = active[~done]
    return x


# ---------------------------------------------------------------------------------------------------------------
# the correlation fixed point in the chaotic phase
# ---------------------------------------------------------------------------------------------------------------


def _pair_evaluator(act, q):
    """A function (s, r) -> (cov, gap, agap, dcov, v) at the fixed per-point variances ``q`` (1-D): the one pair
    step (:func:`pair_moments`), with the Hermite coefficients of each point computed once (in octaves of q)."""
    if act.kind != KIND_HERMITE:
        return lambda s, r, idx: pair_moments(act, q[idx], q[idx], s, r)
    groups = []
    octave = np.floor(np.log2(np.maximum(q, 1e-300)))
    for o in np.unique(octave):
        members = np.flatnonzero(octave == o)
        a, b, M, npar, apar = pack_parity(*hermite_coefficients(act, q[members]))
        offsets = np.arange(members.size, dtype=np.int64) * a.shape[1]
        groups.append((members, a.ravel(), b.ravel(), offsets, M, npar, apar))
    where = np.empty(q.size, dtype=np.int64)  # group of each point, and its row inside the group
    row = np.empty(q.size, dtype=np.int64)
    for g, (members, *_) in enumerate(groups):
        where[members] = g
        row[members] = np.arange(members.size)

    def evaluate(s, r, idx):
        out = np.empty((5, idx.size))
        for g, (_members, a, b, offsets, M, npar, apar) in enumerate(groups):
            sel = np.flatnonzero(where[idx] == g)
            if sel.size == 0:
                continue
            qq = np.ascontiguousarray(q[idx[sel]])
            off = np.ascontiguousarray(offsets[row[idx[sel]]])
            part = np.empty((5, sel.size))
            _pairs_loop(act.kind, float(act.slope), qq, qq, np.ascontiguousarray(s[sel]),
                        np.ascontiguousarray(r[sel]), a, b, off, off, M, npar, apar, part)  # fmt: skip
            out[:, sel] = part
        return tuple(out)

    return evaluate


def _correlation_fixed_points(act, q, sw, sb):
    """(c*, chi_c) at the chaotic points (1-D arrays), by the rules of :func:`meanfield.phase`: c* = 0 when
    C(0) <= 1e-14, the root of C(c) = c on [0, 1 - 1e-9] when C(1 - 1e-9) < 1 - 1e-9, and 1 otherwise."""
    n = q.size
    ev = _pair_evaluator(act, q)
    all_idx = np.arange(n)

    def f(c, idx):
        cov, gap, agap, dcov, v = ev(1.0 - c, 1.0 + c, idx)
        qn = sw[idx] * v + sb[idx]
        s_next = np.clip(sw[idx] * gap / qn, 0.0, 2.0)  # 1 - C(c), as in correlation_map
        r_next = np.clip((sw[idx] * agap + 2.0 * sb[idx]) / qn, 0.0, 2.0)
        cn = np.where(s_next <= r_next, 1.0 - s_next, r_next - 1.0)
        return cn - c, q[idx] * sw[idx] * dcov / qn - 1.0, dcov

    top = 1.0 - 1e-9
    f0 = f(np.zeros(n), all_idx)[0]
    fh = f(np.full(n, top), all_idx)[0]
    c = np.ones(n)
    c[f0 <= 1e-14] = 0.0
    idx = np.flatnonzero((f0 > 1e-14) & (fh < 0.0))
    lo, hi = np.zeros(idx.size), np.full(idx.size, top)
    x = np.zeros(idx.size)
    x[:] = 0.5
    active = np.arange(idx.size)
    for _ in range(200):
        if active.size == 0:
            break
        xa = x[active]
        fx, dfx, _ = f(xa, idx[active])
        pos = fx > 0.0
        lo[active] = np.where(pos, xa, lo[active])
        hi[active] = np.where(pos, hi[active], xa)
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = xa - fx / dfx
        bad = ~np.isfinite(xn) | (xn <= lo[active]) | (xn >= hi[active])
        xn = np.where(bad, 0.5 * (lo[active] + hi[active]), xn)
        done = (np.abs(xn - xa) <= 1e-15) | (hi[active] - lo[active] <= 1e-15) | (fx == 0.0)
        x[active] = np.where(fx == 0.0, xa, xn)
        active = active[~done]
    c[idx] = x
    dcov = f(c, all_idx)[2]
    return c, sw * dcov


def _depth_scale(slope):
    """-1 / log(slope), inf within EOC_TOL of slope 1 and above, 0 for slope <= 0 (as ``phase._depth_scale``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.where(slope > 0.0, -1.0 / np.log(np.where(slope > 0.0, slope, 0.5)), 0.0)
    return np.where(slope >= 1.0 - EOC_TOL, np.inf, xi)


# ---------------------------------------------------------------------------------------------------------------
# the edge of chaos, one root per row
# ---------------------------------------------------------------------------------------------------------------


def _edges(act, sigma_b2):
    n = sigma_b2.size
    sw_e, q_e = np.full(n, np.nan), np.full(n, np.nan)
    if act.kind == KIND_LEAKY:
        zero = sigma_b2 == 0.0
        sw_e[zero] = 2.0 / (1.0 + act.slope**2)
        return sw_e, q_e  # on the edge (sigma_b2 = 0) every q is a fixed point: q* is masked
    phi0 = float(act.fn(np.float64(0.0)))
    fallback = []
    grid = _BASE_GRID
    v, dv, _ = _moments(act, grid, slope=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        S = grid - v / dv
    cand = []
    for i, sb in enumerate(sigma_b2):
        if sb == 0.0 and phi0 == 0.0:
            fallback.append(i)  # the tangent case: edge_of_chaos decides (q* = 0 up to the edge, or not)
            continue
        d = S - sb
        ok = np.isfinite(d)
        k = np.flatnonzero(ok[1:] & ok[:-1] & (d[:-1] < 0.0) & (d[1:] >= 0.0))
        if k.size == 0:
            continue  # chi_1 = 1 on no finite fixed point up to q = 1e6: no edge of chaos (masked)

        def h(x, sb=sb):
            vv, dd, _ = _moments(act, np.array([x]), slope=False)
            return float(x - vv[0] / dd[0] - sb)

        q_e[i] = optimize.brentq(h, grid[k[0]], grid[k[0] + 1], xtol=1e-300, rtol=1e-15, maxiter=500)
        cand.append(i)
    if cand:
        cand = np.array(cand)
        sw_e[cand] = 1.0 / _moments(act, q_e[cand], slope=False)[1]
        # keep a root only if it is the stable fixed point at (sw, sb) that phase() and edge_of_chaos() find
        qs = _fixed_points(act, sw_e[cand], sigma_b2[cand], v)
        bad = ~(np.abs(qs - q_e[cand]) <= 1e-9 * np.maximum(q_e[cand], 1e-300))
        sw_e[cand[bad]] = q_e[cand[bad]] = np.nan
        fallback.extend(cand[bad].tolist())
    for i in fallback:
        try:
            sw_e[i] = edge_of_chaos(act, float(sigma_b2[i]))
        except ValueError:
            continue
        q_e[i] = _fixed_points(act, np.array([sw_e[i]]), np.array([float(sigma_b2[i])]), v)[0]
    return sw_e, q_e


# ---------------------------------------------------------------------------------------------------------------
# the public entry
# ---------------------------------------------------------------------------------------------------------------


def phase_diagram(activation="tanh", sigma_w2=None, sigma_b2=None) -> PhaseDiagram:
    r"""Fixed points, :math:`\chi_1`, :math:`\chi_c`, depth scales and the phase on a grid of initializations.

    Parameters
    ----------
    activation : str or Activation
    sigma_w2 : array_like, optional
        Weight variances, ``> 0``, increasing (default: 200 points on ``[0.5, 4]``).
    sigma_b2 : array_like, optional
        Bias variances, ``>= 0``, increasing (default: 200 points on ``[0, 0.3]``).

    Returns
    -------
    PhaseDiagram
        Fields of shape ``(len(sigma_b2), len(sigma_w2))``, masked where a value does not exist (never NaN).

    Notes
    -----
    The same quantities and rules as :func:`meanfield.phase` at each point (Poole et al. 2016, eqs. (3)-(5);
    Schoenholz et al. 2017, eqs. (5), (7), (10)): :math:`q^* = \sigma_w^2\int Dz\,\phi(\sqrt{q^*}z)^2 +
    \sigma_b^2`, :math:`\chi_1 = \sigma_w^2\int Dz\,\phi'(\sqrt{q^*}z)^2`, :math:`\chi_c = \sigma_w^2\,\mathbb
    E[\phi'(u_1)\phi'(u_2)]_{q^*,c^*}`, :math:`\xi_q^{-1} = -\log(\sigma_w^2 v'(q^*))`,
    :math:`\xi_c^{-1} = -\log\chi_c`; agreement with :func:`meanfield.phase` is about 1e-12 (a rule at most 19%
    finer on the general path, see the module docstring), and the edge of chaos of each row agrees with
    :func:`meanfield.edge_of_chaos` to 1e-8 or better.

    Cost: closed forms (ReLU family, erf) about 0.1 s for 200 x 200; the general path is dominated by the
    one-point moments (a few matrix products of the grid by ~450 quadrature nodes) and by the Hermite coefficients
    of the chaotic points, whose order grows with :math:`q^*` (about 140 at :math:`q^* = 1`, 1300 at 10):
    about 2-4 s for tanh on 200 x 200 with :math:`q^* \lesssim 4` (``benchmarks/bench_phase_diagram.py``).
    Memory: about 5 kB per grid point.

    Examples
    --------
    >>> d = phase_diagram("erf", sigma_w2=[1.0, 2.0], sigma_b2=[0.05])
    >>> [d.phase_name(0, j) for j in range(2)]
    ['ordered', 'chaotic']
    >>> round(float(d.c_star[0, 1]), 6), round(float(d.xi_c[0, 1]), 4)  # as phase(Network(1, "erf", 2.0, 0.05))
    (0.434481, 10.185)
    >>> bool(d.c_star.mask[0, 0]), float(d.c_star[0, 0])   # ordered: c* = 1, not masked
    (False, 1.0)
    >>> d = phase_diagram("relu", sigma_w2=[1.0, 2.5], sigma_b2=[0.0, 0.1])
    >>> d.status.tolist(), bool(d.q_star.mask[1, 1]), bool(d.c_star.mask[1, 1])  # q_l diverges at sigma_w2 > 2
    ([[0, 1], [0, 1]], True, True)
    >>> d.edge_sigma_w2.tolist()    # ReLU: an edge of chaos only at sigma_b2 = 0
    [2.0, None]
    """
    act = get_activation(activation)
    sw = np.atleast_1d(finite_array(np.linspace(0.5, 4.0, 200) if sigma_w2 is None else sigma_w2, "sigma_w2",
                                    ndim=(0, 1)))  # fmt: skip
    sb = np.atleast_1d(finite_array(np.linspace(0.0, 0.3, 200) if sigma_b2 is None else sigma_b2, "sigma_b2",
                                    ndim=(0, 1), low=0.0))  # fmt: skip
    if sw.size == 0 or sb.size == 0:
        raise ValueError("sigma_w2 and sigma_b2 must each have at least one value")
    if np.any(sw <= 0.0):
        raise ValueError("sigma_w2 must be > 0")
    if np.any(np.diff(sw) <= 0.0) or np.any(np.diff(sb) <= 0.0):
        raise ValueError("sigma_w2 and sigma_b2 must be strictly increasing")
    check_memory(float(sw.size) * sb.size * _BYTES_PER_POINT, f"a phase diagram of {sb.size} x {sw.size} points",
                 "use a coarser grid")  # fmt: skip
    SB, SW = (x.ravel() for x in np.meshgrid(sb, sw, indexing="ij"))
    vg = None if act.kind == KIND_LEAKY else _moments(act, _BASE_GRID, slope=False)[0]
    q = _fixed_points(act, SW, SB, vg)

    status = np.full(q.shape, FIXED, dtype=np.int8)
    status[np.isinf(q)] = DIVERGES
    status[np.isnan(q)] = ALL_FIXED
    # where the slopes are evaluated: q*, its q -> infinity stand-in, or q = 1 for the identity map (as phase())
    qe = np.where(status == FIXED, q, np.where(status == DIVERGES, 1.0 if act.kind == KIND_LEAKY else 1e12, 1.0))
    _, dv, vs = _moments(act, qe)
    chi1 = SW * dv
    xi_q = _depth_scale(SW * vs)
    ph = np.where(np.abs(chi1 - 1.0) <= EOC_TOL, EDGE, np.where(chi1 < 1.0, ORDERED, CHAOTIC)).astype(np.int8)

    c_star, chi_c = np.ones(q.shape), chi1.copy()
    undefined = np.zeros(q.shape, dtype=bool)
    chaotic = ph == CHAOTIC
    solve = np.flatnonzero(chaotic & (status == FIXED) & (qe > 0))
    if solve.size:
        c_star[solve], chi_c[solve] = _correlation_fixed_points(act, qe[solve], SW[solve], SB[solve])
    undefined[chaotic & (status != FIXED)] = True
    xi_c = _depth_scale(np.where(undefined, 0.5, chi_c))

    shape = (sb.size, sw.size)

    def masked(x, mask):
        return np.ma.MaskedArray(np.where(mask, 0.0, x).reshape(shape), mask=mask.reshape(shape).copy())

    none = np.zeros(q.shape, dtype=bool)
    sw_e, q_e = _edges(act, sb)
    no_edge = np.isnan(sw_e)
    return PhaseDiagram(
        activation=act.name,
        sigma_w2=sw,
        sigma_b2=sb,
        status=status.reshape(shape),
        phase=ph.reshape(shape),
        q_star=masked(q, status != FIXED),
        c_star=masked(c_star, undefined),
        chi1=masked(chi1, none),
        chi_c=masked(chi_c, undefined),
        xi_q=masked(xi_q, none),
        xi_c=masked(xi_c, undefined),
        edge_sigma_w2=np.ma.MaskedArray(np.where(no_edge, 0.0, sw_e), mask=no_edge),
        edge_q_star=np.ma.MaskedArray(np.where(np.isnan(q_e), 0.0, q_e), mask=np.isnan(q_e)),
    )
