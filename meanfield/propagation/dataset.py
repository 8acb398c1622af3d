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

Every pair of inputs is carried through the layers independently (compiled with numba, rows in parallel, a block
of columns of one row at a time with the layer loop outside the vectorized column loop), holding the variances and
the pair ``(s, r) = (1 - c, 1 + c)`` computed from the inputs themselves, so nearly parallel or anti-parallel
inputs keep full relative precision at any depth (:mod:`meanfield.maps`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ..activations import KIND_HERMITE, KIND_LEAKY
from ..gaussian.maps import HERMITE_UNROLL, _adaptive_coefficients, _next_corr, _pack_parity, _pair, _parity_terms, _var
from ..network import Network

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


@njit(cache=True, parallel=True, error_model="numpy")
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


@njit(cache=True, error_model="numpy")
def _closed_sequences(kind, slope, sw, sb, Q, V):
    for l in range(Q.shape[0] - 1):
        for i in range(Q.shape[1]):
            V[l, i] = _var(kind, slope, Q[l, i])[0]
            Q[l + 1, i] = sw * V[l, i] + sb


def _variance_sequences(act, sw, sb, q1, depth):
    """q_l and v_l = E phi(sqrt(q_l) z)^2 for l = 1..L; on the general path also the parity-packed Hermite
    coefficients (:func:`meanfield.maps._pack_parity`) as flat tables (TA, TB) with ``rows[l, i]`` = offset of
    input i's row at layer l, ``order[l]`` = M (coefficients per parity block), ``npar[l]`` and ``apar[l]``."""
    n = q1.size
    Q = np.empty((depth, n))
    V = np.zeros((depth, n))
    rows = np.zeros((depth, n), dtype=np.int64)
    order = np.zeros(depth, dtype=np.int64)
    npar = np.zeros(depth, dtype=np.int64)
    apar = np.zeros(depth, dtype=np.int64)
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
            _, a, base, M, npl, apl = prev
        else:
            a, b = _adaptive_coefficients(act, uq)
            a, b, M, npl, apl = _pack_parity(a, b)
            tables_a.append(a.ravel())
            tables_b.append(b.ravel())
            base = offset
            offset += a.size
            prev = (uq, a, base, M, npl, apl)
        # flat tables, each layer with its own order (no padding to the largest)
        rows[l] = base + inv * a.shape[1]
        order[l], npar[l], apar[l] = M, npl, apl
        V[l] = np.einsum("ij,ij->i", a, a)[inv]
        Q[l + 1] = sw * V[l] + sb
    if tables_a:
        TA = np.concatenate(tables_a)
        TB = np.concatenate(tables_b)
    else:
        TA = TB = np.zeros(1)
    return Q, V, rows, order, npar, apar, TA, TB


# ---------------------------------------------------------------------------------------------------------------
# the compiled recursion: tiles of rows in parallel, column blocks carried through the layers
# ---------------------------------------------------------------------------------------------------------------


#: columns per block: the per-pair state of one block stays in L1
_BLOCK = 256
#: rows per tile: the general path transposes the columns' Hermite coefficients once per tile and layer
_ROWS = 16


@njit(cache=True, error_model="numpy")
def _block_layers(
    kind, slope, sw, sb, i0, ni, j0, nj, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, omw, omb, S, R, W, TH,
    keep, wbuf, dbuf, A2, B2, work,
):  # fmt: skip
    """Carry the pairs (i0 + ii, j0 + jj), ii < ni, jj < nj, through the layers: the layer loop outside, then the
    rows, then the column loop inside, which vectorizes (per-input arrays are laid out (layer, input)).

    On entry S, R, W hold layer 1's (1 - c, 1 + c, Sigma_1 - sigma_b^2) per (ii, jj) and TH Theta_1; on exit
    W = Sigma_L - sigma_b^2 and TH = Theta_L. With ``keep``, wbuf[l, ii, jj] = Sigma_l - sigma_b^2 and
    dbuf[l, ii, jj] = Sigmadot_l (0-based l); otherwise every layer writes slot 0 of the buffers (unconditional
    stores keep the loops simple).
    """
    depth = Q1.shape[0]
    for ii in range(ni):
        for jj in range(nj):
            wbuf[0, ii, jj] = W[ii, jj]
            dbuf[0, ii, jj] = 0.0
    for l in range(1, depth):
        k = order[l - 1, 0]
        npar = order[l - 1, 1]
        apar = order[l - 1, 2]
        ow = omw[l]
        ob = omb[l]
        q2 = Q2[l - 1, j0 : j0 + nj]
        sq2 = SQ2[l - 1, j0 : j0 + nj]
        sv2 = SV2[l - 1, j0 : j0 + nj]
        sqn2 = SQ2[l, j0 : j0 + nj]
        rb = R2[l - 1, j0 : j0 + nj]
        if kind == KIND_HERMITE:
            _gather_columns(TA, TB, rb, npar * k, A2, B2)
            lk = l if keep else 0
            ii = 0
            while ii < ni:  # rows in pairs where both can take the plain sums, else one at a time
                i = i0 + ii
                if ii + 1 < ni and _hermite_two_rows(
                    sw, sb, SV1[l - 1, i], SQ1[l, i], R1[l - 1, i], SV1[l - 1, i + 1], SQ1[l, i + 1], R1[l - 1, i + 1],
                    k, npar, apar, ow, ob, sv2, sqn2, TA, TB, S[ii], R[ii], W[ii], TH[ii], wbuf[lk, ii], dbuf[lk, ii],
                    S[ii + 1], R[ii + 1], W[ii + 1], TH[ii + 1], wbuf[lk, ii + 1], dbuf[lk, ii + 1], A2, B2, work[0],
                    work[1],
                ):  # fmt: skip
                    ii += 2
                    continue
                _hermite_columns(sw, sb, SV1[l - 1, i], SQ1[l, i], R1[l - 1, i], k, npar, apar, ow, ob, sv2, sqn2,
                                 TA, TB, S[ii], R[ii], W[ii], TH[ii], wbuf[lk, ii], dbuf[lk, ii], A2, B2,
                                 work[0])  # fmt: skip
                ii += 1
            continue
        for ii in range(ni):
            i = i0 + ii
            q1 = Q1[l - 1, i]
            sq1 = SQ1[l - 1, i]
            sv1 = SV1[l - 1, i]
            sqn1 = SQ1[l, i]
            ra = R1[l - 1, i]
            s = S[ii]
            r = R[ii]
            w = W[ii]
            th = TH[ii]
            wl = wbuf[l if keep else 0, ii]
            dl = dbuf[l if keep else 0, ii]
            if kind == KIND_LEAKY:  # a constant kind: only the closed form is inlined, and the loop vectorizes
                _columns(KIND_LEAKY, slope, sw, sb, q1, sq1, sv1, sqn1, ra, k, npar, apar, ow, ob, q2, sq2, sv2, sqn2,
                         rb, TA, TB, s, r, w, th, wl, dl)  # fmt: skip
            else:
                _columns(kind, slope, sw, sb, q1, sq1, sv1, sqn1, ra, k, npar, apar, ow, ob, q2, sq2, sv2, sqn2, rb, TA,
                         TB, s, r, w, th, wl, dl)  # fmt: skip


@njit(cache=True, error_model="numpy")
def _gather_columns(TA, TB, rb, k, A2, B2):
    """A2[kk, jj] = TA[rb[jj] + kk] for kk < k (and B2 from TB): the columns' rows transposed to (k, column)."""
    for jj in range(rb.shape[0]):
        row = rb[jj]
        for kk in range(k):
            A2[kk, jj] = TA[row + kk]
            B2[kk, jj] = TB[row + kk]


@njit(cache=True, error_model="numpy", inline="always")
def _columns(
    kind, slope, sw, sb, q1, sq1, sv1, sqn1, ra, k, npar, apar, ow, ob, q2, sq2, sv2, sqn2, rb, TA, TB, s, r, w, th,
    wl, dl,
):  # fmt: skip
    """One layer step for a block of columns of one row (row quantities are scalars)."""
    for jj in range(q2.shape[0]):
        cov, gap, agap, dcov = _pair(kind, slope, q1, q2[jj], sq1 * sq2[jj], s[jj], r[jj], TA, TB, ra, rb[jj], k,
                                     npar, apar)  # fmt: skip
        s[jj], r[jj] = _next_corr(sw, sb, sv1, sv2[jj], sqn1, sqn2[jj], gap, agap)
        wpart = sw * cov
        dot = sw * dcov
        w[jj] = wpart
        th[jj] = th[jj] * dot + ow * wpart + ob
        wl[jj] = wpart
        dl[jj] = dot


#: below this 1 - |c| (in some column of a block) the general path carries the Cauchy-Schwarz gaps exactly
_GAP_EXACT = 1e-3


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _horner_exact(A2, B2, last, base, M, W, nj):
    """Horner sums of one parity block for all columns: W[1..5] += (H, J, P, D, Hb) of
    :func:`meanfield.maps._hermite_pair`, four orders per pass (W[0] = c^2)."""
    for m0 in range(base + M - HERMITE_UNROLL, base - 1, -HERMITE_UNROLL):
        a3 = A2[m0 + 3, last]
        a2 = A2[m0 + 2, last]
        a1 = A2[m0 + 1, last]
        a0 = A2[m0, last]
        b3 = B2[m0 + 3, last]
        b2 = B2[m0 + 2, last]
        b1 = B2[m0 + 1, last]
        b0 = B2[m0, last]
        for jj in range(nj):
            u = W[0, jj]
            h = W[1, jj]
            j_ = W[2, jj]
            q = W[3, jj]
            dd = W[4, jj]
            hb = W[5, jj]
            x = A2[m0 + 3, jj]
            p = a3 * x
            j_ = j_ * u + q
            q += p
            h = h * u + p
            e = a3 - x
            dd += e * e
            hb = hb * u + b3 * B2[m0 + 3, jj]
            x = A2[m0 + 2, jj]
            p = a2 * x
            j_ = j_ * u + q
            q += p
            h = h * u + p
            e = a2 - x
            dd += e * e
            hb = hb * u + b2 * B2[m0 + 2, jj]
            x = A2[m0 + 1, jj]
            p = a1 * x
            j_ = j_ * u + q
            q += p
            h = h * u + p
            e = a1 - x
            dd += e * e
            hb = hb * u + b1 * B2[m0 + 1, jj]
            x = A2[m0, jj]
            p = a0 * x
            j_ = j_ * u + q
            q += p
            h = h * u + p
            e = a0 - x
            dd += e * e
            hb = hb * u + b0 * B2[m0, jj]
            W[1, jj] = h
            W[2, jj] = j_
            W[3, jj] = q
            W[4, jj] = dd
            W[5, jj] = hb


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _horner_plain(A2, B2, last, base, M, W, nj):
    """Only the Mehler sums themselves, W[1] += H and W[5] += Hb (the gaps then follow from cov)."""
    for m0 in range(base + M - HERMITE_UNROLL, base - 1, -HERMITE_UNROLL):
        a3 = A2[m0 + 3, last]
        a2 = A2[m0 + 2, last]
        a1 = A2[m0 + 1, last]
        a0 = A2[m0, last]
        b3 = B2[m0 + 3, last]
        b2 = B2[m0 + 2, last]
        b1 = B2[m0 + 1, last]
        b0 = B2[m0, last]
        for jj in range(nj):
            u = W[0, jj]
            h = W[1, jj]
            hb = W[5, jj]
            h = h * u + a3 * A2[m0 + 3, jj]
            hb = hb * u + b3 * B2[m0 + 3, jj]
            h = h * u + a2 * A2[m0 + 2, jj]
            hb = hb * u + b2 * B2[m0 + 2, jj]
            h = h * u + a1 * A2[m0 + 1, jj]
            hb = hb * u + b1 * B2[m0 + 1, jj]
            h = h * u + a0 * A2[m0, jj]
            hb = hb * u + b0 * B2[m0, jj]
            W[1, jj] = h
            W[5, jj] = hb


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _horner_plain2(A2, B2, col1, col2, base, M, W1, W2, nj):
    """:func:`_horner_plain` for two rows at once (their coefficients in columns col1, col2): each column
    coefficient loaded once serves both rows, halving the traffic from the transposed tables."""
    for m0 in range(base + M - HERMITE_UNROLL, base - 1, -HERMITE_UNROLL):
        a3 = A2[m0 + 3, col1]
        a2 = A2[m0 + 2, col1]
        a1 = A2[m0 + 1, col1]
        a0 = A2[m0, col1]
        b3 = B2[m0 + 3, col1]
        b2 = B2[m0 + 2, col1]
        b1 = B2[m0 + 1, col1]
        b0 = B2[m0, col1]
        e3 = A2[m0 + 3, col2]
        e2 = A2[m0 + 2, col2]
        e1 = A2[m0 + 1, col2]
        e0 = A2[m0, col2]
        f3 = B2[m0 + 3, col2]
        f2 = B2[m0 + 2, col2]
        f1 = B2[m0 + 1, col2]
        f0 = B2[m0, col2]
        for jj in range(nj):
            u = W1[0, jj]
            v = W2[0, jj]
            h = W1[1, jj]
            hb = W1[5, jj]
            g = W2[1, jj]
            gb = W2[5, jj]
            x = A2[m0 + 3, jj]
            y = B2[m0 + 3, jj]
            h = h * u + a3 * x
            hb = hb * u + b3 * y
            g = g * v + e3 * x
            gb = gb * v + f3 * y
            x = A2[m0 + 2, jj]
            y = B2[m0 + 2, jj]
            h = h * u + a2 * x
            hb = hb * u + b2 * y
            g = g * v + e2 * x
            gb = gb * v + f2 * y
            x = A2[m0 + 1, jj]
            y = B2[m0 + 1, jj]
            h = h * u + a1 * x
            hb = hb * u + b1 * y
            g = g * v + e1 * x
            gb = gb * v + f1 * y
            x = A2[m0, jj]
            y = B2[m0, jj]
            h = h * u + a0 * x
            hb = hb * u + b0 * y
            g = g * v + e0 * x
            gb = gb * v + f0 * y
            W1[1, jj] = h
            W1[5, jj] = hb
            W2[1, jj] = g
            W2[5, jj] = gb


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _hermite_prep(ra, M, npar, TA, TB, s, r, A2, B2, col, work, nj):
    """Copy the row's coefficients to column ``col`` of the transposed tables and set up the per-column state;
    True if some column is within ``_GAP_EXACT`` of c = +-1 (the exact gap sums are needed)."""
    for kk in range(npar * M):
        A2[kk, col] = TA[ra + kk]
        B2[kk, col] = TB[ra + kk]
    closest = 2.0
    for jj in range(nj):
        c = 1.0 - s[jj] if s[jj] <= r[jj] else r[jj] - 1.0
        closest = min(closest, min(s[jj], r[jj]))
        work[6, jj] = c
        work[7, jj] = abs(c)
        work[0, jj] = c * c
        work[8, jj] = 0.0
        work[9, jj] = 0.0
        work[10, jj] = 0.0
        work[11, jj] = 0.0
        work[12, jj] = 0.0
    return closest < _GAP_EXACT


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _plain_terms(pa, pb, work, nj):
    """cov += H (times c for odd k) and dcov += Hb (likewise), in straight loops that vectorize."""
    if pa == 1:
        for jj in range(nj):
            work[8, jj] += work[6, jj] * work[1, jj]
    else:
        for jj in range(nj):
            work[8, jj] += work[1, jj]
    if pb == 1:
        for jj in range(nj):
            work[9, jj] += work[6, jj] * work[5, jj]
    else:
        for jj in range(nj):
            work[9, jj] += work[5, jj]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _hermite_finish(exact, sw, sb, sv1, sqn1, ow, ob, sv2, sqn2, s, r, w, th, wl, dl, work, nj):
    """The next (s, r) from the gaps, and the kernels' layer step, from the sums in ``work``."""
    for jj in range(nj):
        cov = work[8, jj]
        if exact:
            # sqrt(v1 v2) - a1.a2 without cancellation: half the squared distance minus the norm mismatch
            mismatch = 0.5 * work[12, jj] - 0.5 * (sv1 - sv2[jj]) ** 2
            g = mismatch + work[10, jj]
            ag = mismatch + work[11, jj]
        else:
            g = sv1 * sv2[jj] - cov
            ag = sv1 * sv2[jj] + cov
        s[jj], r[jj] = _next_corr(sw, sb, sv1, sv2[jj], sqn1, sqn2[jj], g, ag)
        wpart = sw * cov
        dot = sw * work[9, jj]
        w[jj] = wpart
        th[jj] = th[jj] * dot + ow * wpart + ob
        wl[jj] = wpart
        dl[jj] = dot


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _hermite_columns(
    sw, sb, sv1, sqn1, ra, M, npar, apar, ow, ob, sv2, sqn2, TA, TB, s, r, w, th, wl, dl, A2, B2, work
):  # fmt: skip
    """The general (Mehler) path for a block of columns of one row, with the Hermite order as the outer loop and
    the columns inside, so that the column loop vectorizes.

    The same sums as :func:`meanfield.maps._hermite_pair` (Horner in u = c^2 from the highest order down, one
    parity block at a time, ``HERMITE_UNROLL`` orders per pass over the columns so that the accumulators stay in
    registers), and the norms from the per-input ``sqrt(v) = SV`` already used by
    :func:`meanfield.maps._next_corr`. When every column of the block has ``min(1 - c, 1 + c) >= _GAP_EXACT``
    the gaps are formed as ``sqrt(v1 v2) -/+ cov``, whose rounding (``1e-16`` of ``v``) moves the next layer's
    correlation by about ``1e-16`` absolute, small against ``1 -/+ c`` there; then only the two Mehler sums are
    needed (half the work, see also :func:`_hermite_two_rows`). Otherwise the exact gap sums are carried as well.
    ``A2, B2`` hold the columns' coefficient rows transposed to (k, column) (:func:`_gather_columns`); the row's
    own go to their last column. ``work`` holds the per-column state (rows 0-5: u = c^2 and the block's sums H,
    J, P, D, Hb; 6-12: c, |c|, cov, dcov, gap and agap parts, squared distance).
    """
    nj = sv2.shape[0]
    last = A2.shape[1] - 1
    exact = _hermite_prep(ra, M, npar, TA, TB, s, r, A2, B2, last, work, nj)
    W = work[:6]
    for blk in range(npar):
        for jj in range(nj):
            W[1, jj] = 0.0
            W[2, jj] = 0.0
            W[3, jj] = 0.0
            W[4, jj] = 0.0
            W[5, jj] = 0.0
        pa = blk if npar == 2 else apar  # parity of k for phi's block ...
        pb = blk if npar == 2 else 1 - apar  # ... and for phi' (opposite when phi has one parity)
        if exact:
            _horner_exact(A2, B2, last, blk * M, M, W, nj)
            for jj in range(nj):
                c = work[6, jj]
                cv, g, ag, dd = _parity_terms(pa, c, work[7, jj], s[jj] if c >= 0.0 else r[jj], W[1, jj], W[3, jj],
                                              W[2, jj], W[4, jj])  # fmt: skip
                work[8, jj] += cv
                work[10, jj] += g
                work[11, jj] += ag
                work[12, jj] += dd
            if pb == 1:
                for jj in range(nj):
                    work[9, jj] += work[6, jj] * W[5, jj]
            else:
                for jj in range(nj):
                    work[9, jj] += W[5, jj]
        else:
            _horner_plain(A2, B2, last, blk * M, M, W, nj)
            _plain_terms(pa, pb, work, nj)
    _hermite_finish(exact, sw, sb, sv1, sqn1, ow, ob, sv2, sqn2, s, r, w, th, wl, dl, work, nj)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _hermite_two_rows(
    sw, sb, sv1, sqn1, ra, sv1b, sqn1b, rab, M, npar, apar, ow, ob, sv2, sqn2, TA, TB, s, r, w, th, wl, dl, sB, rB,
    wB, thB, wlB, dlB, A2, B2, work, workB,
):  # fmt: skip
    """Two rows of :func:`_hermite_columns` at once when neither needs the exact gap sums (returns False, having
    changed nothing but scratch, when one does): the plain Mehler sums of both rows share every coefficient load."""
    nj = sv2.shape[0]
    last = A2.shape[1] - 1
    if _hermite_prep(ra, M, npar, TA, TB, s, r, A2, B2, last - 1, work, nj):
        return False
    if _hermite_prep(rab, M, npar, TA, TB, sB, rB, A2, B2, last, workB, nj):
        return False
    for blk in range(npar):
        for jj in range(nj):
            work[1, jj] = 0.0
            work[5, jj] = 0.0
            workB[1, jj] = 0.0
            workB[5, jj] = 0.0
        _horner_plain2(A2, B2, last - 1, last, blk * M, M, work, workB, nj)
        pa = blk if npar == 2 else apar
        pb = blk if npar == 2 else 1 - apar
        _plain_terms(pa, pb, work, nj)
        _plain_terms(pa, pb, workB, nj)
    _hermite_finish(False, sw, sb, sv1, sqn1, ow, ob, sv2, sqn2, s, r, w, th, wl, dl, work, nj)
    _hermite_finish(False, sw, sb, sv1b, sqn1b, ow, ob, sv2, sqn2, sB, rB, wB, thB, wlB, dlB, workB, nj)
    return True


@njit(cache=True, error_model="numpy")
def _store_layers(sb, omw, omb, slots, wbuf, dbuf, ii, jj, i, j, nngp_l, back_l, ntk_l):
    depth = wbuf.shape[0]
    b = 1.0
    for l in range(depth - 1, -1, -1):
        k = slots[l]
        if k >= 0:
            nngp_l[k, i, j] = wbuf[l, ii, jj] + sb
            back_l[k, i, j] = b
            ntk_l[k, i, j] = (omw[l] * wbuf[l, ii, jj] + omb[l]) * b
        b *= dbuf[l, ii, jj]


@njit(cache=True, error_model="numpy")
def _tile(
    i0, kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, W0, S0, R0, omw, omb, sym, slots,
    nngp, ntk, nngp_l, back_l, ntk_l, S, R, W, TH, wbuf, dbuf, A2, B2, work,
):  # fmt: skip
    """Rows i0 .. i0 + _ROWS - 1 against all columns (from i0 on with symmetry; only j >= i is stored there)."""
    n, m = W0.shape
    ni = min(_ROWS, n - i0)
    keep = nngp_l.shape[0] > 0
    start = i0 if sym else 0
    width = A2.shape[1] - 2  # columns per block (_BLOCK)
    for j0 in range(start, m, width):
        nj = min(width, m - j0)
        for ii in range(ni):
            for jj in range(nj):
                S[ii, jj] = S0[i0 + ii, j0 + jj]
                R[ii, jj] = R0[i0 + ii, j0 + jj]
                W[ii, jj] = W0[i0 + ii, j0 + jj]
                TH[ii, jj] = omw[0] * W[ii, jj] + omb[0]
        _block_layers(
            kind, slope, sw, sb, i0, ni, j0, nj, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, omw, omb,
            S, R, W, TH, keep, wbuf, dbuf, A2, B2, work,
        )  # fmt: skip
        for ii in range(ni):
            i = i0 + ii
            for jj in range(nj):
                j = j0 + jj
                if sym and j < i:
                    continue
                nngp[i, j] = W[ii, jj] + sb
                ntk[i, j] = TH[ii, jj]
                if sym:
                    nngp[j, i] = W[ii, jj] + sb
                    ntk[j, i] = TH[ii, jj]
                if keep:
                    _store_layers(sb, omw, omb, slots, wbuf, dbuf, ii, jj, i, j, nngp_l, back_l, ntk_l)
                    if sym and j != i:
                        _store_layers(sb, omw, omb, slots, wbuf, dbuf, ii, jj, j, i, nngp_l, back_l, ntk_l)


@njit(cache=True, parallel=True, error_model="numpy")
def _propagate(
    kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, W0, S0, R0, omw, omb, sym, slots,
    nngp, ntk, nngp_l, back_l, ntk_l,
):  # fmt: skip
    n = W0.shape[0]
    depth = Q1.shape[0]
    nb = depth if nngp_l.shape[0] > 0 else 1
    # coefficient buffers of the general path: orders 0..K (K + 1 when padded to even), one column per column of
    # the block and a last one for the row's own coefficients
    nk = (order[:, 0] * order[:, 1]).max() if kind == KIND_HERMITE else 1
    width = _BLOCK
    tiles = (n + _ROWS - 1) // _ROWS
    # with symmetry, tiles t and tiles-1-t share one task so that the triangular work is balanced
    tasks = (tiles + 1) // 2 if sym else tiles
    for t in prange(tasks):
        S = np.empty((_ROWS, _BLOCK))
        R = np.empty((_ROWS, _BLOCK))
        W = np.empty((_ROWS, _BLOCK))
        TH = np.empty((_ROWS, _BLOCK))
        wbuf = np.empty((nb, _ROWS, _BLOCK))
        dbuf = np.empty((nb, _ROWS, _BLOCK))
        A2 = np.empty((nk, width + 2))  # two spare columns: the rows' own coefficients
        B2 = np.empty((nk, width + 2))
        work = np.empty((2, 13, _BLOCK))  # per-column state of up to two rows of the general path
        _tile(
            t * _ROWS, kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, W0, S0, R0, omw, omb,
            sym, slots, nngp, ntk, nngp_l, back_l, ntk_l, S, R, W, TH, wbuf, dbuf, A2, B2, work,
        )  # fmt: skip
        if sym and tiles - 1 - t != t:
            _tile(
                (tiles - 1 - t) * _ROWS, kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, TA, TB, order, W0,
                S0, R0, omw, omb, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l, S, R, W, TH, wbuf, dbuf, A2, B2,
                work,
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
    arrays without ``layers`` (pairs are carried through the layers a 16 x 256 tile at a time, with a vectorized
    loop over the columns), ``3 * len(layers) * n * m`` with them; the general path also keeps each input's
    Hermite coefficients at every layer, ``2 n L K`` numbers for order ``K`` (half that for odd or even
    activations, whose other parity is dropped). Closed forms for ReLU / leaky
    ReLU / linear and erf are exact to rounding; other activations use
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
    Q, V, rows, order, npar, apar, TA, TB = _variance_sequences(act, sw, sb, nq, depth)
    order = np.ascontiguousarray(np.stack([order, npar, apar], axis=1))  # (M, npar, apar) per layer
    # per-input sequences laid out (layer, input): the row kernel's column loop reads them contiguously
    SQ, SV = np.sqrt(Q), np.sqrt(V)
    Q1, SQ1, SV1, R1 = (np.ascontiguousarray(a[:, :n]) for a in (Q, SQ, SV, rows))
    Q2, SQ2, SV2, R2 = (Q1, SQ1, SV1, R1) if sym else (np.ascontiguousarray(a[:, n:]) for a in (Q, SQ, SV, rows))

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


@njit(cache=True, error_model="numpy")
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
        k, npar, apar = order[l - 1, 0], order[l - 1, 1], order[l - 1, 2]
        q1 = Q[0, l - 1]
        q2 = Q[1, l - 1]
        sq1 = math.sqrt(q1)
        sq2 = math.sqrt(q2)
        cov, gap, agap, dcov = _pair(kind, slope, q1, q2, sq1 * sq2, s, r, TA, TB, ra, rb, k, npar, apar)
        d1 = _pair(kind, slope, q1, q1, q1, 0.0, 2.0, TA, TB, ra, ra, k, npar, apar)[3]
        d2 = _pair(kind, slope, q2, q2, q2, 0.0, 2.0, TA, TB, rb, rb, k, npar, apar)[3]
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
    from ..network import Network

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
    Q, V, rows, order, npar, apar, TA, TB = _variance_sequences(act, net.sigma_w2, net.sigma_b2, qs, depth)
    order = np.ascontiguousarray(np.stack([order, npar, apar], axis=1))
    Q, V, rows = (np.ascontiguousarray(a.T) for a in (Q, V, rows))
    out = np.empty((6, depth))
    _curve(act.kind, float(act.slope), net.sigma_w2, net.sigma_b2, Q, V, rows, TA, TB, order, s, r, out)
    return PairCurve(Q[0].copy(), Q[1].copy(), out[0], out[1], out[2], out[3], out[4], out[5])
