r"""Evaluation of the tabulated composed maps of :mod:`meanfield.propagation.sphere` over the pairs of a dataset.

Every pair (i, j) of unit inputs gets (s, r) = (1 - c, 1 + c) exactly as the layer loop forms them, its piece of
the table and the local variable x in [-1, 1] of that piece (:func:`_locate`), and the piece's Chebyshev series
at x, :math:`\sum_k a_k T_k(x)` with :math:`T_{k+1} = 2xT_k - T_{k-1}`.

Speed. For one pair the recurrence is a chain of dependent multiply-adds (about 4 cycles each, so ~100 ns at
degree 64). :func:`evaluate_two` (NNGP and NTK only, the common case) therefore works row by row: it locates
every pair of the row, sorts the pairs by piece (a counting sort over the few dozen pieces), and runs each piece's
recurrence over its bucket with the loop over pairs innermost, where the compiler vectorizes it across pairs and
no chain is serial; the same operations in the same order as the single-pair recurrence, so the values are
bitwise those of :func:`_chebyshev2`. Per-layer outputs take :func:`evaluate` (one pair at a time).

Cost: O(n m) for the pairs, ~(degree + 30) vector operations per 8 pairs.

Examples
--------
>>> import numpy as np
>>> from meanfield import Network, kernels
>>> X = np.random.default_rng(0).normal(size=(5, 3))
>>> X /= np.linalg.norm(X, axis=1)[:, None]
>>> k = kernels(X, Network(50), sphere=True)
>>> bool(np.allclose(k.ntk, kernels(X, Network(50), sphere=False).ntk, rtol=1e-13, atol=0))
True
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .._jit import njit
from ..gaussian.closed import acos1m

# ---------------------------------------------------------------------------------------------------------------
# one pair at a time (all functions, per-layer outputs)
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy", inline="always")
def _pair_sr(A, B, C, i, j):
    """(s, r) of pair (i, j) exactly as :func:`meanfield.propagation.inputs.first_layer` forms them: from the
    clipped Gram entry, refined to half a squared distance of the unit inputs where 1 -/+ c < 0.05."""
    c = min(max(C[i, j], -1.0), 1.0)
    s = 1.0 - c
    r = 1.0 + c
    if s < 0.05:
        acc = 0.0
        for k in range(A.shape[1]):
            t = A[i, k] - B[j, k]
            acc += t * t
        s = 0.5 * acc
        r = 2.0 - s
    elif r < 0.05:
        acc = 0.0
        for k in range(A.shape[1]):
            t = A[i, k] + B[j, k]
            acc += t * t
        r = 0.5 * acc
        s = 2.0 - r
    return s, r


@njit(cache=True, error_model="numpy", inline="always")
def _locate(s, r, J, base, split):
    """(piece, x in [-1, 1]) of the pair (s, r): the side from the exact end, the dyadic level of
    u = t / (pi / 2) from its binary exponent, then the equal sub-piece."""
    side = 0 if s <= r else 1
    t = acos1m(s if side == 0 else r)
    u = t * (2.0 / math.pi)
    if u >= math.ldexp(1.0, -J):
        m, e = math.frexp(u)
        lev = -e
        y = 2.0 * m - 1.0
        if lev < 0:
            lev = 0
            y = 1.0
    else:
        lev = J
        y = math.ldexp(u, J)
    nsub = 1 << split[side, lev]
    z = y * nsub
    sub = min(int(z), nsub - 1)
    return base[side, lev] + sub, 2.0 * (z - sub) - 1.0


@njit(cache=True, error_model="numpy", inline="always")
def _chebyshev(coef, o, n, nfun, x, acc):
    """acc[f] = sum_k coef[o + k nfun + f] T_k(x), k = 0..n (three-term recurrence for T_k)."""
    for f in range(nfun):
        acc[f] = coef[o + f]
    if n >= 1:
        t0 = 1.0
        t1 = x
        for f in range(nfun):
            acc[f] += coef[o + nfun + f] * x
        x2 = 2.0 * x
        for k in range(2, n + 1):
            t2 = x2 * t1 - t0
            b = o + k * nfun
            for f in range(nfun):
                acc[f] += coef[b + f] * t2
            t0 = t1
            t1 = t2


@njit(cache=True, error_model="numpy", inline="always")
def _chebyshev2(coef, o, n, x):
    """:func:`_chebyshev` for the two functions (W_L, Theta_L), in registers."""
    a0 = coef[o]
    a1 = coef[o + 1]
    if n >= 1:
        t0 = 1.0
        t1 = x
        a0 += coef[o + 2] * x
        a1 += coef[o + 3] * x
        x2 = 2.0 * x
        for k in range(2, n + 1):
            t2 = x2 * t1 - t0
            a0 += coef[o + 2 * k] * t2
            a1 += coef[o + 2 * k + 1] * t2
            t0 = t1
            t1 = t2
    return a0, a1


_TILE = 32


@njit(cache=True, error_model="numpy")
def _eval_tile(
    i0, A, B, C, sym, J, base, split, deg, off, coef, bound, logm, nfun, sb, tol, lay, omw, omb, W0, depth, nngp, ntk,
    nngp_l, back_l, ntk_l, flag, acc,
):  # fmt: skip
    n, m = C.shape
    ni = min(_TILE, n - i0)
    nl = lay.shape[0]
    for j0 in range(i0 if sym else 0, m, _TILE):
        nj = min(_TILE, m - j0)
        for ii in range(ni):
            i = i0 + ii
            for jj in range(nj):
                j = j0 + jj
                if sym and j < i:
                    continue
                s, r = _pair_sr(A, B, C, i, j)
                p, x = _locate(s, r, J, base, split)
                if nfun == 2:
                    w, th = _chebyshev2(coef, off[p], deg[p], x)
                else:
                    _chebyshev(coef, off[p], deg[p], nfun, x, acc)
                    w, th = acc[0], acc[1]
                sig = w + sb
                bad = bound[p, 0] > tol * abs(sig) or bound[p, 1] > tol * abs(th)
                nngp[i, j] = sig
                ntk[i, j] = th
                if sym:
                    nngp[j, i] = sig
                    ntk[j, i] = th
                for k in range(nl):
                    l = lay[k]
                    if l == 1:
                        wk, ew = W0[i, j], 0.0
                    else:
                        wk, ew = acc[2 + 2 * k], bound[p, 2 + 2 * k]
                    if l == depth:
                        bk, eb = 1.0, 0.0
                    elif logm[p, 3 + 2 * k]:
                        bk = math.exp(acc[3 + 2 * k])
                        eb = bound[p, 3 + 2 * k] * bk
                    else:
                        bk, eb = acc[3 + 2 * k], bound[p, 3 + 2 * k]
                    tk = (omw[l - 1] * wk + omb[l - 1]) * bk
                    err_t = abs(omw[l - 1]) * ew * abs(bk) + abs(omw[l - 1] * wk + omb[l - 1]) * eb
                    bad = bad or ew > tol * abs(wk + sb) or eb > tol * abs(bk) or err_t > tol * abs(tk)
                    nngp_l[k, i, j] = wk + sb
                    back_l[k, i, j] = bk
                    ntk_l[k, i, j] = tk
                    if sym:
                        nngp_l[k, j, i] = wk + sb
                        back_l[k, j, i] = bk
                        ntk_l[k, j, i] = tk
                flag[i, j] = 1 if bad else 0


@njit(cache=True, parallel=True, error_model="numpy")
def evaluate(
    A, B, C, sym, J, base, split, deg, off, coef, bound, logm, nfun, sb, tol, lay, omw, omb, W0, depth, nngp, ntk,
    nngp_l, back_l, ntk_l, flag,
):  # fmt: skip
    """Every pair from the table (tiles of rows in parallel; with symmetry tiles t and T - 1 - t share a task so
    that the triangle is balanced); flag[i, j] = 1 where the measured error bound exceeds ``tol`` of an entry."""
    n = C.shape[0]
    tiles = (n + _TILE - 1) // _TILE
    tasks = (tiles + 1) // 2 if sym else tiles
    for t in prange(tasks):
        acc = np.empty(nfun)
        _eval_tile(t * _TILE, A, B, C, sym, J, base, split, deg, off, coef, bound, logm, nfun, sb, tol, lay, omw, omb,
                   W0, depth, nngp, ntk, nngp_l, back_l, ntk_l, flag, acc)  # fmt: skip
        if sym and tiles - 1 - t != t:
            _eval_tile((tiles - 1 - t) * _TILE, A, B, C, sym, J, base, split, deg, off, coef, bound, logm, nfun, sb,
                       tol, lay, omw, omb, W0, depth, nngp, ntk, nngp_l, back_l, ntk_l, flag, acc)  # fmt: skip


@njit(cache=True, error_model="numpy")
def fallback_sr(A, B, C, I, Jx, S, R):
    for k in range(I.shape[0]):
        S[k], R[k] = _pair_sr(A, B, C, I[k], Jx[k])


# ---------------------------------------------------------------------------------------------------------------
# NNGP and NTK only: pairs bucketed by piece, the recurrence vectorized across each bucket
# ---------------------------------------------------------------------------------------------------------------

#: pairs per chunk of a bucket (the recurrence's state, 5 arrays of this length, stays in L1)
_CHUNK = 256


@njit(cache=True, error_model="numpy")
def _series_chunk(coef, o, n, xs, cnt, a0, a1, T0, T1, X2):
    """(a0, a1)[:cnt] = :func:`_chebyshev2` at xs[:cnt] (the same operations in the same order), with the loop over
    the pairs innermost and two orders per pass."""
    for k in range(cnt):
        a0[k] = coef[o]
        a1[k] = coef[o + 1]
    if n < 1:
        return
    c0 = coef[o + 2]
    c1 = coef[o + 3]
    for k in range(cnt):
        x = xs[k]
        T0[k] = 1.0
        T1[k] = x
        a0[k] += c0 * x
        a1[k] += c1 * x
        X2[k] = 2.0 * x
    d = 2
    while d + 1 <= n:
        c0a = coef[o + 2 * d]
        c1a = coef[o + 2 * d + 1]
        c0b = coef[o + 2 * d + 2]
        c1b = coef[o + 2 * d + 3]
        for k in range(cnt):
            x2 = X2[k]
            t1 = T1[k]
            t2 = x2 * t1 - T0[k]
            t3 = x2 * t2 - t1
            a0[k] = (a0[k] + c0a * t2) + c0b * t3
            a1[k] = (a1[k] + c1a * t2) + c1b * t3
            T0[k] = t2
            T1[k] = t3
        d += 2
    if d == n:
        c0 = coef[o + 2 * d]
        c1 = coef[o + 2 * d + 1]
        for k in range(cnt):
            t2 = X2[k] * T1[k] - T0[k]
            a0[k] += c0 * t2
            a1[k] += c1 * t2


@njit(cache=True, error_model="numpy")
def _row_two(i, j0, A, B, C, sym, J, base, split, deg, off, coef, bound, sb, tol, nngp, ntk, flag, buf, ibuf, start):
    """Row i, columns j0..m - 1 (and their mirror with ``sym``): locate, bucket by piece, evaluate, write back.
    Returns the number of flagged pairs."""
    m = C.shape[1]
    cnt = m - j0
    P = deg.shape[0]
    xs, xb = buf[0], buf[1]
    nrow, trow = nngp[i], ntk[i]
    a0, a1, T0, T1, X2 = buf[4], buf[5], buf[6], buf[7], buf[8]
    S, R, U = buf[9], buf[10], buf[11]
    ps, jb = ibuf[0], ibuf[1]
    # (s, r) as _pair_sr forms them (C is clipped), refined where 1 -/+ c < 0.05: separate loops, so that the
    # common ones vectorize (one loop calling _pair_sr and _locate per pair is ~20x slower)
    for k in range(cnt):
        c = C[i, j0 + k]
        S[k] = 1.0 - c
        R[k] = 1.0 + c
    for k in range(cnt):
        if S[k] < 0.05 or R[k] < 0.05:
            S[k], R[k] = _pair_sr(A, B, C, i, j0 + k)
    for k in range(cnt):
        s = S[k]
        r = R[k]
        U[k] = acos1m(s if s <= r else r) * (2.0 / math.pi)
    # _locate for the top level (u >= 1/2: frexp's exponent is 0, or 1 at u = 1), then the others one by one
    n0, n1 = 1 << split[0, 0], 1 << split[1, 0]
    b0, b1 = base[0, 0], base[1, 0]
    for k in range(cnt):
        lo = S[k] <= R[k]
        y = min(2.0 * U[k] - 1.0, 1.0)
        nsub = n0 if lo else n1
        z = y * nsub
        sub = min(int(z), nsub - 1)
        ps[k] = (b0 if lo else b1) + sub
        xs[k] = 2.0 * (z - sub) - 1.0
    start[:] = 0
    for k in range(cnt):
        if U[k] < 0.5:
            ps[k], xs[k] = _locate(S[k], R[k], J, base, split)
        start[ps[k] + 1] += 1
    for p in range(P):
        start[p + 1] += start[p]
    pos = start[P + 1 :]  # scratch after the P + 1 bucket starts
    pos[:P] = start[:P]
    for k in range(cnt):
        p = ps[k]
        q = pos[p]
        xb[q] = xs[k]
        jb[q] = k
        pos[p] = q + 1
    bad = 0
    for p in range(P):
        b0, b1 = start[p], start[p + 1]
        e0, e1 = bound[p, 0], bound[p, 1]
        for c0 in range(b0, b1, _CHUNK):
            c = min(_CHUNK, b1 - c0)
            _series_chunk(coef, off[p], deg[p], xb[c0 : c0 + c], c, a0, a1, T0, T1, X2)
            nb = 0
            for k in range(c):
                sig = a0[k] + sb
                a0[k] = sig
                nb += 1 if e0 > tol * abs(sig) or e1 > tol * abs(a1[k]) else 0
            for k in range(c):
                jj = jb[c0 + k] + j0
                nrow[jj] = a0[k]
                trow[jj] = a1[k]
            if nb:
                for k in range(c):
                    if e0 > tol * abs(a0[k]) or e1 > tol * abs(a1[k]):
                        flag[i, j0 + jb[c0 + k]] = 1
                bad += nb
    if sym:
        for k in range(j0, m):
            nngp[k, i] = nrow[k]
            ntk[k, i] = trow[k]
    return bad


@njit(cache=True, parallel=True, error_model="numpy")
def evaluate_two(A, B, C, sym, J, base, split, deg, off, coef, bound, sb, tol, nngp, ntk, flag):
    """NNGP and NTK of every pair from the table (row tiles in parallel, tiles t and T - 1 - t in one task with
    symmetry); flag[i, j] = 1 (flag starts at 0) where the error bound exceeds ``tol`` of an entry. Returns the
    number of flagged pairs."""
    n, m = C.shape
    P = deg.shape[0]
    tiles = (n + _TILE - 1) // _TILE
    tasks = (tiles + 1) // 2 if sym else tiles
    nbad = np.zeros(tasks, dtype=np.int64)
    for t in prange(tasks):
        buf = np.empty((12, max(m, _CHUNK)))
        ibuf = np.empty((2, m), dtype=np.int64)
        start = np.empty(2 * P + 1, dtype=np.int64)
        bad = 0
        for h in range(2 if sym else 1):
            tile = t if h == 0 else tiles - 1 - t
            if h == 1 and tile == t:
                break
            for i in range(tile * _TILE, min(n, (tile + 1) * _TILE)):
                bad += _row_two(i, i if sym else 0, A, B, C, sym, J, base, split, deg, off, coef, bound, sb, tol,
                                nngp, ntk, flag, buf, ibuf, start)  # fmt: skip
        nbad[t] = bad
    return nbad.sum()
