r"""Infinite-width kernels over a dataset: NNGP, backward, NTK and its per-layer decomposition.

Recursions (signal_propagation.md, sec. 2.1, 4.1-4.3; seed 000, App. A and eq. (9); Jacot et al. 2018;
Arora et al. 2019):

.. math::
    \Sigma_1 &= \tfrac{\sigma_w^2}{d}\,x\cdot x' + \sigma_b^2, \qquad
    \Sigma_{l+1} = \sigma_w^2\,\mathbb E_{\Lambda_l}[\phi(u)\phi(v)] + \sigma_b^2, \qquad
    \dot\Sigma_{l+1} = \sigma_w^2\,\mathbb E_{\Lambda_l}[\phi'(u)\phi'(v)], \\
    \mathfrak B_l &= \prod_{k=l+1}^{L}\dot\Sigma_k\ (\mathfrak B_L = 1), \qquad
    \Theta^{(l)} = \Sigma_l\odot\mathfrak B_l, \qquad
    \Theta_L = \sum_{l=1}^L\Theta^{(l)}\ \ (\Theta_1 = \Sigma_1,\ \Theta_l = \Theta_{l-1}\odot\dot\Sigma_l + \Sigma_l).

Every pair of inputs is carried through the layers independently (pair-major, compiled with numba, rows in
parallel), holding the variances and the pair ``(s, r) = (1 - c, 1 + c)`` computed from the inputs themselves, so
nearly parallel or anti-parallel inputs keep full relative precision at any depth (:mod:`meanfield.maps`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .activations import KIND_HERMITE
from .maps import _next_corr, _pair, _var, hermite_coefficients
from .network import Network

__all__ = ["Kernels", "PairCurve", "kernels", "pair_curve", "check_inputs"]


@dataclass(frozen=True)
class Kernels:
    """Infinite-width kernels of a :class:`~meanfield.Network` on inputs ``X`` (rows) and ``X2`` (columns).

    Attributes
    ----------
    nngp : ndarray (n, m)
        :math:`\\Sigma_L`, the NNGP kernel of the output.
    ntk : ndarray (n, m)
        :math:`\\Theta_L`, the tangent kernel (NTK parameterization; see :func:`kernels` for standard).
    layers : tuple of int or None
        1-based layer indices of the per-layer arrays below (None unless requested).
    nngp_layers, backward, ntk_layers : ndarray (len(layers), n, m) or None
        :math:`\\Sigma_l`, :math:`\\mathfrak B_l` and :math:`\\Theta^{(l)}` for each requested layer.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    layers: tuple[int, ...] | None = None
    nngp_layers: np.ndarray | None = None
    backward: np.ndarray | None = None
    ntk_layers: np.ndarray | None = None

    def layer(self, l: int) -> int:
        """Position of 1-based layer ``l`` in the per-layer arrays."""
        if self.layers is None or l not in self.layers:
            raise ValueError(f"layer {l} was not computed; pass layers=[..., {l}, ...] to kernels()")
        return self.layers.index(l)


def check_inputs(X, name="X", d=None) -> np.ndarray:
    """Validate a data matrix: 2-D, finite, float64, optional column count ``d``."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n, d), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or inf")
    if d is not None and X.shape[1] != d:
        raise ValueError(f"{name} must have d = {d} columns like X, got {X.shape[1]}")
    return X


# ---------------------------------------------------------------------------------------------------------------
# first layer: exact (s, r) from the inputs
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def _refine(A, B, S, R, thresh, sym):
    """Where 1 -/+ c is small, recompute it as half the squared distance of the unit vectors (no cancellation)."""
    n, m = S.shape
    d = A.shape[1]
    for i in prange(n):
        for j in range(i if sym else 0, m):
            if S[i, j] < thresh:
                acc = 0.0
                for k in range(d):
                    t = A[i, k] - B[j, k]
                    acc += t * t
                S[i, j] = 0.5 * acc
                R[i, j] = 2.0 - S[i, j]
            elif R[i, j] < thresh:
                acc = 0.0
                for k in range(d):
                    t = A[i, k] + B[j, k]
                    acc += t * t
                R[i, j] = 0.5 * acc
                S[i, j] = 2.0 - R[i, j]


def _first_layer(X, X2, sw, sb, sym):
    d = X.shape[1]

    def unit(Z):
        aug = np.hstack([Z * math.sqrt(sw / d), np.full((Z.shape[0], 1), math.sqrt(sb))])
        norm = np.sqrt(np.einsum("ij,ij->i", aug, aug))
        if np.any(norm == 0):
            raise ValueError("inputs with zero norm have an undefined correlation when sigma_b2 = 0; remove them")
        return aug / norm[:, None], norm**2

    A, q1 = unit(X)
    B, q2 = (A, q1) if sym else unit(X2)
    C = np.clip(A @ B.T, -1.0, 1.0)
    S = 1.0 - C
    R = 1.0 + C
    _refine(A, B, S, R, 0.05, sym)
    W0 = (sw / d) * (X @ X2.T)
    return W0, S, R, q1, q2


# ---------------------------------------------------------------------------------------------------------------
# per-input variance sequences (O(n L)) and Hermite coefficient tables
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _closed_sequences(kind, slope, sw, sb, Q, V):
    for l in range(Q.shape[0] - 1):
        for i in range(Q.shape[1]):
            V[l, i] = _var(kind, slope, Q[l, i])[0]
            Q[l + 1, i] = sw * V[l, i] + sb


def _variance_sequences(act, sw, sb, q1, depth):
    """q_l and v_l = E phi(sqrt(q_l) z)^2 for l = 1..L, plus Hermite rows (general path) per (layer, input)."""
    n = q1.size
    Q = np.empty((depth, n))
    V = np.zeros((depth, n))
    rows = np.zeros((depth, n), dtype=np.int64)
    order = np.zeros(depth, dtype=np.int64)
    Q[0] = q1
    tables_a, tables_b = [], []
    if act.kind != KIND_HERMITE:
        _closed_sequences(act.kind, float(act.slope), sw, sb, Q, V)
        depth = 0  # no Hermite tables
    offset = 0
    prev = None
    for l in range(depth - 1):  # Python loop over layers (general path only), never over matrix entries
        uq, inv = np.unique(Q[l], return_inverse=True)
        inv = inv.reshape(-1)
        if prev is not None and np.array_equal(uq, prev[0]):  # variances at their fixed point: reuse the rows
            a, base = prev[1], prev[2]
        else:
            a, b = hermite_coefficients(act, uq)
            tables_a.append(a)
            tables_b.append(b)
            base = offset
            offset += uq.size
            prev = (uq, a, base)
        rows[l] = base + inv
        order[l] = a.shape[1]
        V[l] = np.sum(a * a, axis=1)[inv]
        Q[l + 1] = sw * V[l] + sb
    if tables_a:
        k = max(t.shape[1] for t in tables_a)
        TA = np.zeros((offset, k))
        TB = np.zeros((offset, k))
        start = 0
        for a, b in zip(tables_a, tables_b, strict=True):
            TA[start : start + a.shape[0], : a.shape[1]] = a
            TB[start : start + b.shape[0], : b.shape[1]] = b
            start += a.shape[0]
    else:
        TA = TB = np.zeros((1, 1))
    return Q, V, rows, order, TA, TB


# ---------------------------------------------------------------------------------------------------------------
# the compiled pair-major recursion
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True)
def _pair_chain(
    kind, slope, sw, sb, depth, i, j, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, w0, s, r, omw, omb, wbuf, dbuf
):
    """Carry one pair through the layers. Returns (Sigma_L, Theta_L); fills wbuf[l] = Sigma_l - sigma_b^2 and
    dbuf[l] = Sigmadot_l (0-based l) when the buffers are non-empty."""
    keep = wbuf.shape[0] > 0
    wpart = w0
    theta = omw[0] * wpart + omb[0]
    if keep:
        wbuf[0] = wpart
        dbuf[0] = 0.0
    for l in range(1, depth):
        sq12 = SQ1[i, l - 1] * SQ2[j, l - 1]
        cov, gap, agap, dcov = _pair(
            kind, slope, Q1[i, l - 1], Q2[j, l - 1], sq12, s, r, TA, TB, R1[i, l - 1], R2[j, l - 1], order[l - 1]
        )
        s, r = _next_corr(sw, sb, SV1[i, l - 1], SV2[j, l - 1], SQ1[i, l], SQ2[j, l], gap, agap)
        wpart = sw * cov
        dot = sw * dcov
        theta = theta * dot + omw[l] * wpart + omb[l]
        if keep:
            wbuf[l] = wpart
            dbuf[l] = dot
    return wpart + sb, theta


@njit(cache=True)
def _store_layers(sb, omw, omb, slots, wbuf, dbuf, i, j, nngp_l, back_l, ntk_l):
    depth = wbuf.shape[0]
    b = 1.0
    for l in range(depth - 1, -1, -1):
        k = slots[l]
        if k >= 0:
            nngp_l[k, i, j] = wbuf[l] + sb
            back_l[k, i, j] = b
            ntk_l[k, i, j] = (omw[l] * wbuf[l] + omb[l]) * b
        b *= dbuf[l]


@njit(cache=True)
def _row(
    i, kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, W0, S0, R0, omw, omb, sym, slots,
    nngp, ntk, nngp_l, back_l, ntk_l, wbuf, dbuf,
):  # fmt: skip
    depth = Q1.shape[1]
    want = nngp_l.shape[0] > 0
    for j in range(i if sym else 0, W0.shape[1]):
        sig, th = _pair_chain(
            kind, slope, sw, sb, depth, i, j, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order,
            W0[i, j], S0[i, j], R0[i, j], omw, omb, wbuf, dbuf,
        )  # fmt: skip
        nngp[i, j] = sig
        ntk[i, j] = th
        if want:
            _store_layers(sb, omw, omb, slots, wbuf, dbuf, i, j, nngp_l, back_l, ntk_l)
        if sym and j != i:
            nngp[j, i] = sig
            ntk[j, i] = th
            if want:
                _store_layers(sb, omw, omb, slots, wbuf, dbuf, j, i, nngp_l, back_l, ntk_l)


@njit(cache=True, parallel=True)
def _propagate(
    kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, W0, S0, R0, omw, omb, sym, slots,
    nngp, ntk, nngp_l, back_l, ntk_l,
):  # fmt: skip
    n = W0.shape[0]
    nb = Q1.shape[1] if nngp_l.shape[0] > 0 else 0
    # with symmetry, rows t and n-1-t share one task so that the triangular work is balanced
    tasks = (n + 1) // 2 if sym else n
    for t in prange(tasks):
        wbuf = np.empty(nb)
        dbuf = np.empty(nb)
        _row(
            t, kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, W0, S0, R0, omw, omb, sym,
            slots,
            nngp, ntk, nngp_l, back_l, ntk_l, wbuf, dbuf,
        )  # fmt: skip
        if sym and n - 1 - t != t:
            _row(
                n - 1 - t, kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, W0, S0, R0, omw,
                omb, sym,
                slots, nngp, ntk, nngp_l, back_l, ntk_l, wbuf, dbuf,
            )  # fmt: skip


def _layer_slots(layers, depth):
    if layers is False or layers is None:
        return None
    if layers is True:
        chosen = list(range(1, depth + 1))
    else:
        try:
            chosen = sorted({int(x) for x in np.atleast_1d(layers)})
        except (TypeError, ValueError):
            raise ValueError(f"layers must be a bool or a list of layer indices in 1..{depth}") from None
        if not chosen or chosen[0] < 1 or chosen[-1] > depth:
            raise ValueError(f"layers must be a bool or a list of layer indices in 1..{depth}, got {layers!r}")
    return tuple(chosen)


def kernels(X, net: Network, X2=None, layers=False) -> Kernels:
    r"""Infinite-width NNGP and NTK of ``net`` on a dataset, optionally with every layer's decomposition.

    Parameters
    ----------
    X : array_like (n, d)
        Inputs, one per row (finite; no zero rows when ``sigma_b2 = 0``).
    net : Network
        The network spec. ``depth`` L; ``width`` is ignored in NTK parameterization.
    X2 : array_like (m, d), optional
        Second set of inputs for cross kernels (train x test). Default: ``X`` (symmetric, half the work).
    layers : bool or sequence of int
        ``True`` for all layers 1..L, or a list of 1-based layer indices, to also return
        :math:`\Sigma_l`, :math:`\mathfrak B_l` and :math:`\Theta^{(l)}` of those layers.

    Returns
    -------
    Kernels
        ``.nngp`` = :math:`\Sigma_L`, ``.ntk`` = :math:`\Theta_L`, and the per-layer arrays when requested.

    Notes
    -----
    *NTK parameterization* (signal_propagation.md, sec. 4.2-4.3):
    :math:`\Theta^{(l)} = \Sigma_l\odot\mathfrak B_l` and :math:`\sum_l\Theta^{(l)} = \Theta_L` exactly.

    *Standard parameterization* (``net.parameterization == "standard"``, requires ``net.width``; sheet sec. 1,
    seed 004's convention): the large-width limit of the SP tangent kernel with trainable biases in every layer,

    .. math:: \Theta^{SP,(l)} = \frac{N_{l-1}}{\sigma_w^2}\,(\Sigma_l - \sigma_b^2)\odot\mathfrak B_l + \mathfrak B_l,

    with :math:`N_0 = d`. The bias part :math:`\mathfrak B_l` converges as the width grows (and is present even
    when :math:`\sigma_b^2 = 0`); the weight part grows linearly with the fan-in :math:`N_{l-1}`, so only
    :math:`\Theta^{SP,(l)}/N_{l-1}` (or the NTP kernel) has a finite limit.

    Cost: :math:`O(n m L)` for the pairs and :math:`O((n + m) L)` for the variances. Memory: a few ``n x m``
    arrays without ``layers`` (pairs are carried through the layers one at a time), ``3 * len(layers) * n * m``
    with them. Closed forms for ReLU / leaky ReLU / linear and erf are exact to rounding; other activations use
    the Mehler expansion (:func:`meanfield.maps.hermite_coefficients`, 1e-9 relative for variances ``q <= 10``;
    cost grows with ``q``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]]) * np.sqrt(2)
    >>> k = kernels(X, Network(3))                       # ReLU at (2, 0), ||x||^2 = d
    >>> (k.ntk / 2).round(10).tolist()                   # Theta_3(x, x') / q at rho = 0 (sheet sec. 7)
    [[3.0, 0.6857086363], [0.6857086363, 3.0]]
    >>> k = kernels(X, Network(3), layers=True)
    >>> bool(np.allclose(k.ntk_layers.sum(axis=0), k.ntk, rtol=1e-14))
    True
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a meanfield.Network, got {type(net).__name__}")
    X = check_inputs(X, "X")
    sym = X2 is None
    X2 = X if sym else check_inputs(X2, "X2", X.shape[1])
    depth = net.depth
    act = net.activation
    sw, sb = net.sigma_w2, net.sigma_b2
    d = X.shape[1]
    if net.parameterization == "standard":
        if net.width is None:
            raise ValueError('parameterization="standard" needs a finite width (Network(width=...)): '
                             "the SP tangent kernel grows with the width")  # fmt: skip
        omw = np.array(net.fan_ins(d), dtype=np.float64) / sw
        omb = np.ones(depth)
    else:
        omw = np.ones(depth)
        omb = np.full(depth, sb)
    slots_t = _layer_slots(layers, depth)

    W0, S0, R0, q1, q2 = _first_layer(X, X2, sw, sb, sym)
    n, m = W0.shape
    nq = np.concatenate([q1, q2]) if not sym else q1
    Q, V, rows, order, TA, TB = _variance_sequences(act, sw, sb, nq, depth)
    # per-input sequences laid out (input, layer): each pair walks them contiguously
    Q, SQ, SV, rows = (np.ascontiguousarray(a.T) for a in (Q, np.sqrt(Q), np.sqrt(V), rows))
    Q1, SQ1, SV1, R1 = Q[:n], SQ[:n], SV[:n], rows[:n]
    Q2, SQ2, SV2, R2 = (Q1, SQ1, SV1, R1) if sym else (Q[n:], SQ[n:], SV[n:], rows[n:])

    slots = np.full(depth, -1, dtype=np.int64)
    nl = 0
    if slots_t is not None:
        for k, l in enumerate(slots_t):
            slots[l - 1] = k
        nl = len(slots_t)
    shape_l = (nl, n, m) if nl else (0, 0, 0)
    nngp, ntk = np.empty((n, m)), np.empty((n, m))
    nngp_l, back_l, ntk_l = np.empty(shape_l), np.empty(shape_l), np.empty(shape_l)
    _propagate(
        act.kind, float(act.slope), sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order,
        W0, S0, R0, omw, omb, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l,
    )  # fmt: skip
    if nl == 0:
        return Kernels(nngp, ntk)
    return Kernels(nngp, ntk, slots_t, nngp_l, back_l, ntk_l)


# ---------------------------------------------------------------------------------------------------------------
# one pair through many layers: O(L) curves for phase diagrams and the equilibrium analysis
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairCurve:
    """Layer-by-layer quantities of one input pair, arrays over layers l = 1..L (index l - 1).

    Attributes
    ----------
    q1, q2 : variances :math:`\\Sigma_l(x, x)`, :math:`\\Sigma_l(x', x')`.
    s, r : :math:`1 - c_l` and :math:`1 + c_l`, each exact where small.
    sigma : :math:`\\Sigma_l(x, x')`.
    dot, dot1, dot2 : :math:`\\dot\\Sigma_l(x, x')`, :math:`\\dot\\Sigma_l(x, x)`, :math:`\\dot\\Sigma_l(x', x')`
        (entry 0, layer 1, has no derivative kernel and holds NaN).
    """

    q1: np.ndarray
    q2: np.ndarray
    s: np.ndarray
    r: np.ndarray
    sigma: np.ndarray
    dot: np.ndarray
    dot1: np.ndarray
    dot2: np.ndarray

    @property
    def c(self) -> np.ndarray:
        """Correlations :math:`c_l`, formed from the exact side."""
        return np.where(self.s <= self.r, 1.0 - self.s, self.r - 1.0)


@njit(cache=True)
def _curve(kind, slope, sw, sb, Q, V, rows, TA, TB, order, s, r, out):
    depth = Q.shape[1]
    out[0, 0] = s
    out[1, 0] = r
    out[2, 0] = math.sqrt(Q[0, 0] * Q[1, 0]) * (1.0 - s if s <= r else r - 1.0)
    out[3, 0] = np.nan
    out[4, 0] = np.nan
    out[5, 0] = np.nan
    for l in range(1, depth):
        ra = rows[0, l - 1]
        rb = rows[1, l - 1]
        k = order[l - 1]
        q1 = Q[0, l - 1]
        q2 = Q[1, l - 1]
        sq1 = math.sqrt(q1)
        sq2 = math.sqrt(q2)
        cov, gap, agap, dcov = _pair(kind, slope, q1, q2, sq1 * sq2, s, r, TA, TB, ra, rb, k)
        d1 = _pair(kind, slope, q1, q1, q1, 0.0, 2.0, TA, TB, ra, ra, k)[3]
        d2 = _pair(kind, slope, q2, q2, q2, 0.0, 2.0, TA, TB, rb, rb, k)[3]
        s, r = _next_corr(
            sw, sb, math.sqrt(V[0, l - 1]), math.sqrt(V[1, l - 1]), math.sqrt(Q[0, l]), math.sqrt(Q[1, l]), gap, agap
        )
        out[0, l] = s
        out[1, l] = r
        out[2, l] = sw * cov + sb
        out[3, l] = sw * dcov
        out[4, l] = sw * d1
        out[5, l] = sw * d2


def pair_curve(depth, activation="relu", sigma_w2=2.0, sigma_b2=0.0, q1=1.0, q2=None, c=None, s=None):
    r"""Carry one pair of inputs through ``depth`` layers in :math:`O(L)`: variances, correlation, derivative kernels.

    Parameters
    ----------
    depth : int
        Number of layers L (the curves run over l = 1..L).
    activation, sigma_w2, sigma_b2 :
        As in :class:`~meanfield.Network`.
    q1, q2 : float
        Layer-1 variances :math:`\Sigma_1(x, x)` and :math:`\Sigma_1(x', x')` (``q2`` defaults to ``q1``).
    c, s : float
        Layer-1 correlation, given either as ``c`` in [-1, 1] or, for full precision near parallel inputs, as
        ``s = 1 - c`` in [0, 2]. Default ``c = 0``.

    Returns
    -------
    PairCurve

    Notes
    -----
    The same compiled pair step as :func:`kernels` (signal_propagation.md sec. 2.1-2.4), so deep curves keep the
    exact :math:`1 - c` tracking of sec. 2.2: ReLU at (2, 0) from ``c = 0`` gives
    :math:`l^2(1 - c_l) \to 9\pi^2/2` (sec. 5.1).

    Examples
    --------
    >>> pc = pair_curve(10)
    >>> round(float(pc.c[9]), 10)          # ReLU EOC sequence from c_1 = 0 (sheet sec. 7)
    0.8548092375
    """
    from .network import Network

    net = Network(depth, activation, sigma_w2, sigma_b2)
    q2 = q1 if q2 is None else q2
    qs = np.array([q1, q2], dtype=np.float64)
    if not np.all(np.isfinite(qs)) or np.any(qs <= 0):
        raise ValueError(f"q1 and q2 must be finite and > 0, got {q1!r}, {q2!r}")
    if s is not None and c is not None:
        raise ValueError("give the layer-1 correlation as c or as s = 1 - c, not both")
    if s is None:
        c = 0.0 if c is None else float(c)
        if not -1.0 <= c <= 1.0:
            raise ValueError(f"c must be in [-1, 1], got {c!r}")
        s, r = 1.0 - c, 1.0 + c
    else:
        s = float(s)
        if not 0.0 <= s <= 2.0:
            raise ValueError(f"s = 1 - c must be in [0, 2], got {s!r}")
        r = 2.0 - s
    act = net.activation
    Q, V, rows, order, TA, TB = _variance_sequences(act, net.sigma_w2, net.sigma_b2, qs, depth)
    Q, V, rows = (np.ascontiguousarray(a.T) for a in (Q, V, rows))
    out = np.empty((6, depth))
    _curve(act.kind, float(act.slope), net.sigma_w2, net.sigma_b2, Q, V, rows, TA, TB, order, s, r, out)
    return PairCurve(Q[0].copy(), Q[1].copy(), out[0], out[1], out[2], out[3], out[4], out[5])
