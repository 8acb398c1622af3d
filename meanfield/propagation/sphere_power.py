r"""The layers past the variances' fixed point by repeated squaring of the pair map: the depth-free table build of
:mod:`meanfield.propagation.sphere` for deep networks on the general (Hermite) path.

Once the shared variance sequence of :class:`meanfield.propagation.sphere_loop.Recursion` has reached its fixed
point :math:`q^*` to the last bit (geometric convergence, e.g. by layer 55 for tanh at
:math:`(\sigma_w^2, \sigma_b^2) = (1.76, 0.05)`), every further layer applies the same map to a pair's state: the
angle :math:`t = \arccos c \mapsto t'` (the correlation map of Poole et al. 2016, eq. (5)) and the NTK update
:math:`\Theta' = \dot\Sigma(c)\,\Theta + \omega_w\Sigma' + \omega_b`, affine in :math:`\Theta` (Jacot et al.
2018, thm. 1). The :math:`k`-fold map is therefore :math:`(t, \Theta)\mapsto (t_k(t),\, a_k(t)\,\Theta + b_k(t))`,
and (derived here)

.. math::
    t_{2k} = t_k\circ t_k,\qquad a_{2k}(t) = a_k(t_k(t))\, a_k(t),\qquad b_{2k}(t) = a_k(t_k(t))\, b_k(t) +
    b_k(t_k(t)).

The map of :math:`K_0` = ``BASE`` layers is computed by the exact column step (with the compensated NTK,
:func:`meanfield.propagation.columns.ntk_accumulate`, and :math:`\log a` summed with Kahan's compensation) at the
nodes of a piecewise Chebyshev grid in :math:`t` (dyadic levels towards :math:`t = 0`, where deep maps have a
boundary layer of width about :math:`1/\sqrt L`), and squared by interpolating :math:`\rho_k = t_k/t` (relative
precision in :math:`t`, hence in :math:`1 - c`, as :math:`t\to 0`), :math:`\log a_k` and :math:`b_k` at the
images :math:`t_k(\text{nodes})` (barycentric formula of the second kind, stable to a few roundings). A pair runs
the exact steps up to layer :math:`l_0`, then the powers of the binary expansion of :math:`(L - 1 - l_0)/K_0`, then
the last step exactly (so :math:`\Sigma_L` is formed as in the loop).

Accuracy: against the layer loop (whose NTK is compensated) the powered NTK agrees to about 1e-14 relative
(tanh (1.76, 0.05), L = 10^4: 9e-15 for :math:`\theta\ge 10^{-2}`). Angles below ``EXACT_BELOW`` (where the
loop's own rounding of :math:`s = 1 - c` is not a smooth function of :math:`t`) always run the exact loop. The
sphere table checks its interpolants against the exact layer loop, never against this module, so an error of the
powering shows up in its per-piece bounds and sends the pairs concerned through the exact loop.

Cost: :math:`O(K_g (l_0 + K_0) + K_g N \log_2(L/K_0))` for :math:`K_g` grid nodes of degree :math:`N`, then
:math:`O(l_0 + N\log_2(L/K_0))` per pair, instead of :math:`O(L)`.

Examples
--------
>>> import numpy as np
>>> from meanfield import Network
>>> from meanfield.propagation.sphere_loop import Recursion
>>> net = Network(3000, "tanh", 1.76, 0.05)
>>> rec = Recursion(net, 1.81, np.ones(3000), np.full(3000, 0.05))
>>> fast = powered(rec)
>>> s = np.array([1e-4, 0.5, 1.0, 1.9]); r = 2.0 - s; w0 = 1.81 * (1.0 - s) - 0.05
>>> a, b = fast.run(s, r, w0), rec.run(s, r, w0)
>>> bool(np.max(np.abs(a[1] / b[1] - 1)) < 1e-13)
True
"""

from __future__ import annotations

import math

import numpy as np

from ..activations import KIND_HERMITE

__all__ = ["BASE", "EXACT_BELOW", "PI_GAP", "PoweredRecursion", "needs_loop", "powered"]

#: layers of the base map, computed by the exact column step
BASE = 64
#: the powering is used from this many layers past the variances' fixed point on
MIN_TAIL = 8 * BASE
#: input angles below this run the exact loop
EXACT_BELOW = 1e-5
#: the powering needs every pair's angle at layer l0 at least this far below pi
PI_GAP = 0.1
#: ... and must agree with the exact loop to this relative accuracy at the angles _VALIDATE (half the sphere
#: table's guard; tanh (1.76, 0.05) at L = 1e4: 6e-15; tanh (4, 0.001), chaotic, c* near 0: 9e-13, refused)
VALIDATE_TOL = 2.5e-14
_VALIDATE = np.array([1e-3, 1e-2, 0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, np.pi - 1e-3, np.pi])
#: Chebyshev degree and pieces per dyadic level of the powering grid
_DEG = 40
_SUB = 2


def angle(s, r):
    """t = arccos c from (s, r) = (1 - c, 1 + c), taken from the exact small side."""
    return np.where(s <= r, 2.0 * np.arcsin(np.sqrt(0.5 * s)), np.pi - 2.0 * np.arcsin(np.sqrt(0.5 * r)))


def needs_loop(s, r):
    """The pairs (s, r) that run the exact loop rather than the powered map: angles below ``EXACT_BELOW``."""
    return angle(s, r) < EXACT_BELOW


def sides(t):
    """(s, r) = (1 - cos t, 1 + cos t) with full relative precision."""
    return 2.0 * np.sin(0.5 * t) ** 2, 2.0 * np.cos(0.5 * t) ** 2


class _Grid:
    """Piecewise Chebyshev grid on [0, tmax]: levels [2^-j-1, 2^-j] tmax (j < J) and [0, 2^-J] tmax, each cut in
    ``_SUB`` pieces carrying ``_DEG + 1`` Chebyshev points of the first kind."""

    def __init__(self, tmax, J):
        self.tmax, self.J = tmax, J
        n = _DEG + 1
        self.x = np.cos((2 * np.arange(n) + 1) * np.pi / (2 * n))[::-1]
        j = np.repeat(np.arange(J + 1), _SUB)
        m = np.tile(np.arange(_SUB), J + 1)
        a = np.where(j < J, np.ldexp(1.0, -j - 1), 0.0)
        b = np.ldexp(1.0, -np.minimum(j, J))
        self.lo = (a + (b - a) * m / _SUB) * tmax
        self.hi = (a + (b - a) * (m + 1) / _SUB) * tmax
        self.nodes = (0.5 * (self.lo + self.hi)[:, None] + 0.5 * (self.hi - self.lo)[:, None] * self.x[None, :]).ravel()
        k = np.arange(n)
        self.wb = (-1.0) ** k * np.sin((2 * k + 1) * np.pi / (2 * n))[::-1]  # barycentric weights of the points

    def evaluate(self, vals, t):
        """The interpolants through ``vals`` (P, N + 1, F) at the nodes, at the angles t: (len(t), F)."""
        u = np.clip(t / self.tmax, 0.0, 1.0)
        e = np.frexp(u)[1]  # u in [2^(e-1), 2^e): level -e, exactly
        j = np.where(u > 0, np.clip(-e, 0, self.J), self.J)
        a = np.where(j < self.J, np.ldexp(1.0, -j - 1), 0.0)
        b = np.ldexp(1.0, -j)
        m = np.clip(np.floor((u - a) / (b - a) * _SUB), 0, _SUB - 1).astype(np.int64)
        p = j * _SUB + m
        x = (2.0 * t - self.lo[p] - self.hi[p]) / (self.hi[p] - self.lo[p])
        d = x[:, None] - self.x[None, :]
        hit = d == 0.0
        d[hit] = 1.0
        q = self.wb[None, :] / d
        if hit.any():
            rows = hit.any(axis=1)
            q[rows] = hit[rows].astype(np.float64)
        return np.einsum("nk,nkf->nf", q, vals[p]) / np.sum(q, axis=1)[:, None]


class PoweredRecursion:
    """:class:`meanfield.propagation.sphere_loop.Recursion` without per-layer outputs, with the layers past the
    variances' fixed point applied by repeated squaring (module docstring). ``.l0``: the layer up to which every
    pair runs the exact steps; ``.powered``: the layers applied by squaring; ``.nodes``: the grid nodes."""

    def __init__(self, rec, l0, tmax):
        self.rec, self.l0, self.depth = rec, l0, rec.depth
        self.powered = rec.depth - 1 - l0
        self.grid = g = _Grid(tmax, max(2, int(math.ceil(math.log2(4.0 * math.sqrt(self.depth))))))
        t = g.nodes
        self.nodes = t.size
        s, r = sides(t)
        q = float(rec.Q[-1])
        w = q * np.where(s <= r, 1.0 - s, r - 1.0) - rec.sb
        la = np.zeros(t.size)
        b = self._exact(s, r, w, np.zeros(t.size), rec.depth - 1 - BASE, rec.depth - 1, la)
        vals = np.stack([angle(s, r) / t, la, b], axis=1)
        if not np.all(np.isfinite(vals)):
            raise FloatingPointError("the base map has non-finite values")
        self.tables = []
        n = self.powered // BASE
        for i in range(n.bit_length()):
            tab = vals.reshape(-1, g.x.size, 3).copy()
            self.tables.append(tab)
            if i + 1 == n.bit_length():
                break
            v2 = g.evaluate(tab, t * vals[:, 0])
            vals = np.stack([vals[:, 0] * v2[:, 0], vals[:, 1] + v2[:, 1], np.exp(v2[:, 1]) * vals[:, 2] + v2[:, 2]], 1)

    def _exact(self, S, R, W, TH, l_from, l_to, LA=None):
        """The exact steps l_from .. l_to - 1 on the state (changed in place); returns Theta (compensated sum)."""
        TL = np.zeros(S.size)
        self.rec.advance(l_from, l_to, S, R, W, TH, TL, LA)
        TH += TL
        return TH

    def run(self, S0, R0, W0):
        """(W_L, Theta_L) of the pairs (S0, R0, W0), as :meth:`Recursion.run` without per-layer outputs (the
        pairs at angles below ``EXACT_BELOW`` through the exact loop)."""
        rec = self.rec
        S, R, W = (np.array(x, dtype=np.float64) for x in (S0, R0, W0))
        tiny = needs_loop(S, R)
        if tiny.any():
            W_out, TH_out = np.empty(S.size), np.empty(S.size)
            W_out[tiny], TH_out[tiny], _ = rec.run(S[tiny], R[tiny], W[tiny])
            W_out[~tiny], TH_out[~tiny] = self.run(S[~tiny], R[~tiny], W[~tiny])
            return W_out, TH_out
        TH = rec.omw[0] * W + rec.omb[0]
        self._exact(S, R, W, TH, 1, self.l0)
        t = angle(S, R)
        n = self.powered // BASE
        for i, tab in enumerate(self.tables):
            if n >> i & 1:
                v = self.grid.evaluate(tab, t)
                t = t * v[:, 0]
                TH = np.exp(v[:, 1]) * TH + v[:, 2]
        S, R = sides(t)
        self._exact(S, R, W, TH, self.depth - 1, self.depth)
        return W, TH


def powered(rec):
    r"""A :class:`PoweredRecursion` for the recursion ``rec``, or None where it does not apply:

    * not the general Hermite path (the closed forms' loop is cheap; erf's variance ends in a two-cycle of the
      last bit, so its layer step never repeats exactly);
    * fewer than ``MIN_TAIL`` layers past the point from which the layer step (variance, Hermite row and order,
      NTK factors) repeats to the last bit;
    * the anti-parallel pair still within ``PI_GAP`` of :math:`t = \pi` at layer :math:`l_0` (odd activations
      without bias keep :math:`c = -1` fixed): the state is the angle, which carries :math:`1 + c` only to
      absolute precision, and the grid resolves the boundary layer at :math:`t = 0` alone;
    * a derivative kernel that is not positive (:math:`\log a` undefined);
    * disagreement with the exact loop beyond ``VALIDATE_TOL`` at a few angles from 1e-3 to pi, checked here
      (cost: those angles through all L layers).
    """
    L = rec.depth
    if rec.kind != KIND_HERMITE or L < MIN_TAIL + 2:
        return None
    # step l (1-based, l = 1 .. L - 1) uses Q[l-1], SV[l-1], SQ[l], rows[l-1], order[l-1], omw[l], omb[l]
    same = (
        (rec.Q[:-1] == rec.Q[-2]) & (rec.SV[:-1] == rec.SV[-2]) & (rec.SQ[1:] == rec.SQ[-1])
        & (rec.rows[:-1] == rec.rows[-2]) & np.all(rec.order[:-1] == rec.order[-2], axis=1)
        & (rec.omw[1:] == rec.omw[-1]) & (rec.omb[1:] == rec.omb[-1])
    )  # fmt: skip
    bad = np.flatnonzero(~same)
    first = int(bad[-1]) + 2 if bad.size else 1  # the first repeating step
    if L - 1 - first < MIN_TAIL:
        return None
    l0 = first + (L - 1 - first) % BASE
    # the domain: the anti-parallel pair has the largest angle at layer l0 (the correlation map is increasing)
    s, r = np.array([2.0]), np.array([0.0])
    rec.advance(1, l0, s, r, np.array([-float(rec.Q[0]) - rec.sb]), np.zeros(1), np.zeros(1))
    tmax = float(angle(s, r)[0])
    if not math.pi - tmax >= PI_GAP:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        try:
            fast = PoweredRecursion(rec, l0, tmax * (1.0 + 1e-9) + 1e-12)
        except FloatingPointError:  # a derivative kernel <= 0 somewhere (log a undefined): the exact loop
            return None
    # validated against the exact loop before use: a few angles over the whole range
    s, r = sides(_VALIDATE)
    w0 = float(rec.Q[0]) * np.where(s <= r, 1.0 - s, r - 1.0) - rec.sb
    (w, th), (we, the, _) = fast.run(s, r, w0), rec.run(s, r, w0)
    scale = float(rec.Q[-1])  # the NNGP against the variance: it crosses zero in the chaotic phase
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = np.max(np.abs(th - the) / np.abs(the)) <= VALIDATE_TOL and np.max(np.abs(w - we)) <= VALIDATE_TOL * scale
    return fast if ok else None
