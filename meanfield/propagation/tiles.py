"""The compiled recursion over a dataset: tiles of rows in parallel, column blocks carried through the layers.

:func:`propagate` splits the rows into tiles of ``_ROWS`` (in parallel; with symmetry, tiles ``t`` and
``tiles - 1 - t`` share a task so that the triangular work is balanced); :func:`_tile` walks a tile's columns in
blocks of ``_BLOCK``, and :func:`_block_layers` carries one block through all layers with the layer loop outside,
then the rows, then the vectorized column loop (:mod:`meanfield.propagation.columns`).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._jit import njit
from ..activations import KIND_HERMITE, KIND_LEAKY
from .columns import closed_columns, gather_columns, hermite_columns, hermite_two_rows

__all__ = ["propagate"]

#: columns per block: the per-pair state of one block stays in L1
_BLOCK = 256
#: rows per tile: the general path transposes the columns' Hermite coefficients once per tile and layer
_ROWS = 16


@njit(cache=True, error_model="numpy")
def _block_layers(
    kind, slope, sw_l, sb_l, i0, ni, j0, nj, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, T1, T2, TA, TB, order, omw, omb, S, R,
    W, TH, TL, keep, wbuf, dbuf, A2, B2, work,
):  # fmt: skip
    """Carry the pairs (i0 + ii, j0 + jj), ii < ni, jj < nj, through the layers: the layer loop outside, then the
    rows, then the column loop inside, which vectorizes (per-input arrays are laid out (layer, input)).

    On entry S, R, W hold layer 1's (1 - c, 1 + c, Sigma_1 - sigma_b^2) per (ii, jj), TH Theta_1 and TL zero; on
    exit W = Sigma_L - sigma_b^2 and TH + TL = Theta_L (the NTK compensated,
    :func:`meanfield.propagation.columns.ntk_accumulate`). With ``keep``, wbuf[l, ii, jj] = Sigma_l - sigma_b^2
    and dbuf[l, ii, jj] = Sigmadot_l (0-based l); otherwise every layer writes slot 0 of the buffers (unconditional
    stores keep the loops simple). ``sw_l``, ``sb_l``: sigma_w^2 and sigma_b^2 of every layer (per-layer schedules).
    """
    depth = Q1.shape[0]
    for ii in range(ni):
        for jj in range(nj):
            wbuf[0, ii, jj] = W[ii, jj]
            dbuf[0, ii, jj] = 0.0
    for l in range(1, depth):
        sw = sw_l[l]
        sb = sb_l[l]
        k = order[l - 1, 0]
        npar = order[l - 1, 1]
        apar = order[l - 1, 2]
        ow = omw[l]
        ob = omb[l]
        q2 = Q2[l - 1, j0 : j0 + nj]
        sv2 = SV2[l - 1, j0 : j0 + nj]
        sqn2 = SQ2[l, j0 : j0 + nj]
        rb = R2[l - 1, j0 : j0 + nj]
        t2 = T2[0, l - 1, j0 : j0 + nj]
        u2 = T2[1, l - 1, j0 : j0 + nj]
        if kind == KIND_HERMITE:
            gather_columns(TA, TB, rb, npar * k, A2, B2)
            lk = l if keep else 0
            ii = 0
            while ii < ni:  # rows in pairs where both can take the plain sums, else one at a time
                i = i0 + ii
                if ii + 1 < ni and hermite_two_rows(
                    sw, sb, SV1[l - 1, i], SQ1[l, i], R1[l - 1, i], SV1[l - 1, i + 1], SQ1[l, i + 1], R1[l - 1, i + 1],
                    k, npar, apar, ow, ob, sv2, sqn2, TA, TB, S[ii], R[ii], W[ii], TH[ii], TL[ii], wbuf[lk, ii],
                    dbuf[lk, ii], S[ii + 1], R[ii + 1], W[ii + 1], TH[ii + 1], TL[ii + 1], wbuf[lk, ii + 1],
                    dbuf[lk, ii + 1], A2, B2, work[0], work[1],
                ):  # fmt: skip
                    ii += 2
                    continue
                hermite_columns(sw, sb, SV1[l - 1, i], SQ1[l, i], R1[l - 1, i], k, npar, apar, ow, ob, sv2, sqn2,
                                TA, TB, S[ii], R[ii], W[ii], TH[ii], TL[ii], wbuf[lk, ii], dbuf[lk, ii], A2, B2,
                                work[0])  # fmt: skip
                ii += 1
            continue
        for ii in range(ni):
            i = i0 + ii
            q1 = Q1[l - 1, i]
            sv1 = SV1[l - 1, i]
            sqn1 = SQ1[l, i]
            s = S[ii]
            r = R[ii]
            w = W[ii]
            th = TH[ii]
            tl = TL[ii]
            wl = wbuf[l if keep else 0, ii]
            dl = dbuf[l if keep else 0, ii]
            t1 = T1[0, l - 1, i]
            u1 = T1[1, l - 1, i]
            if kind == KIND_LEAKY:  # a constant kind: only the closed form is inlined, and the loop vectorizes
                closed_columns(KIND_LEAKY, slope, sw, sb, q1, sv1, sqn1, t1, u1, ow, ob, q2, sv2, sqn2, t2, u2, s, r,
                               w, th, tl, wl, dl)  # fmt: skip
            else:
                closed_columns(kind, slope, sw, sb, q1, sv1, sqn1, t1, u1, ow, ob, q2, sv2, sqn2, t2, u2, s, r, w, th,
                               tl, wl, dl)  # fmt: skip


@njit(cache=True, error_model="numpy")
def _store_layers(sb, omw, omb, slots, wbuf, dbuf, ii, jj, i, j, nngp_l, back_l, ntk_l):
    depth = wbuf.shape[0]
    b = 1.0
    for l in range(depth - 1, -1, -1):
        k = slots[l]
        if k >= 0:
            nngp_l[k, i, j] = wbuf[l, ii, jj] + sb[l]
            back_l[k, i, j] = b
            ntk_l[k, i, j] = (omw[l] * wbuf[l, ii, jj] + omb[l]) * b
        b *= dbuf[l, ii, jj]


@njit(cache=True, error_model="numpy")
def _tile(
    i0, kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, T1, T2, TA, TB, order, W0, S0, R0, omw, omb, sym,
    slots, nngp, ntk, nngp_l, back_l, ntk_l, S, R, W, TH, TL, wbuf, dbuf, A2, B2, work,
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
                TL[ii, jj] = 0.0
        _block_layers(
            kind, slope, sw, sb, i0, ni, j0, nj, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, T1, T2, TA, TB, order, omw, omb,
            S, R, W, TH, TL, keep, wbuf, dbuf, A2, B2, work,
        )  # fmt: skip
        for ii in range(ni):
            i = i0 + ii
            for jj in range(nj):
                j = j0 + jj
                if sym and j < i:
                    continue
                nngp[i, j] = W[ii, jj] + sb[-1]
                ntk[i, j] = TH[ii, jj] + TL[ii, jj]
                if sym:
                    nngp[j, i] = W[ii, jj] + sb[-1]
                    ntk[j, i] = TH[ii, jj] + TL[ii, jj]
                if keep:
                    _store_layers(sb, omw, omb, slots, wbuf, dbuf, ii, jj, i, j, nngp_l, back_l, ntk_l)
                    if sym and j != i:
                        _store_layers(sb, omw, omb, slots, wbuf, dbuf, ii, jj, j, i, nngp_l, back_l, ntk_l)


@njit(cache=True, parallel=True, error_model="numpy")
def propagate(
    kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, T1, T2, TA, TB, order, W0, S0, R0, omw, omb, sym, slots,
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
        TL = np.empty((_ROWS, _BLOCK))
        wbuf = np.empty((nb, _ROWS, _BLOCK))
        dbuf = np.empty((nb, _ROWS, _BLOCK))
        A2 = np.empty((nk, width + 2))  # two spare columns: the rows' own coefficients
        B2 = np.empty((nk, width + 2))
        work = np.empty((2, 13, _BLOCK))  # per-column state of up to two rows of the general path
        _tile(
            t * _ROWS, kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, T1, T2, TA, TB, order, W0, S0, R0, omw,
            omb, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l, S, R, W, TH, TL, wbuf, dbuf, A2, B2, work,
        )  # fmt: skip
        if sym and tiles - 1 - t != t:
            _tile(
                (tiles - 1 - t) * _ROWS, kind, slope, sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, T1, T2, TA, TB, order,
                W0, S0, R0, omw, omb, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l, S, R, W, TH, TL, wbuf, dbuf, A2,
                B2, work,
            )  # fmt: skip
