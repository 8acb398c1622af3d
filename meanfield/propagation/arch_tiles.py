"""Kernels over a dataset for residual blocks, LayerNorm and dropout: the compiled tiles and the driver.

The recursion of :mod:`meanfield.propagation.architecture`, laid out as :mod:`meanfield.propagation.tiles`: tiles of
``_ROWS`` rows in parallel (with symmetry, tiles ``t`` and ``tiles - 1 - t`` share a task), each walking its columns
in blocks of ``_BLOCK`` through all layers with the layer loop outside and the column loop inside (per-input arrays
laid out (layer, input), so the closed forms vectorize over the columns).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._checks import check_memory
from .._jit import njit
from ..activations import KIND_ERF, KIND_LEAKY
from .architecture import arch_pair, arch_sequences, arch_step, dropout_factors, layer_schedule
from .inputs import check_inputs, first_layer
from .tiles import _BLOCK, _ROWS

__all__ = ["arch_kernels"]


@njit(cache=True, error_model="numpy", inline="always")
def _columns(kind, slope, lay, row, p2, sp2, sq2, sqn2, sv2, ln2, rb, TA, TB, M, npar, apar, s, r, w, th, wl, ml,
             fl):  # fmt: skip
    """Layer l -> l + 1 for one row against a block of columns (state s, r, w = Sigma, th = Theta, 1-D over the
    block). ``row`` = (p, sqrt(p), sqrt(q_l), sqrt(q_{l+1}), sqrt(E h^2), LayerNorm factor, Hermite row offset) of
    the row; the column arrays are the same quantities as contiguous slices, so the loop has no branch or square
    root of its own and vectorizes for the closed forms."""
    p1, sp1, sq1, sqn1, sve1, ln1, ra = row
    isq1 = 1.0 / sqn1
    for jj in range(s.shape[0]):
        s[jj], r[jj], w[jj], th[jj], ml[jj], fl[jj], _ = arch_step(
            kind, slope, lay, p1, p2[jj], sp1 * sp2[jj], sq1, sq2[jj], sqn1, sqn2[jj], isq1 / sqn2[jj], sve1, sv2[jj],
            ln1 * ln2[jj], s[jj], r[jj], w[jj], th[jj], TA, TB, int(ra), rb[jj], M, npar, apar,
        )  # fmt: skip
        wl[jj] = w[jj]


@njit(cache=True, error_model="numpy")
def _block(kind, slope, tab, i0, ni, j0, nj, P1, P2, SP1, SP2, SQ1, SQ2, SV1, SV2, LN1, LN2, RW1, RW2, TA, TB, order,
           S, R, W, TH, keep, wbuf, mbuf, fbuf):  # fmt: skip
    depth = P1.shape[0]
    for l in range(depth - 1):
        lk = l + 1 if keep else 0
        a = (tab[0, l + 1], tab[1, l + 1], tab[2, l + 1], tab[3, l + 1], tab[4, l + 1], tab[5, l + 1], tab[6, l + 1],
             tab[7, l + 1])  # fmt: skip
        M, npar, apar = order[l, 0], order[l, 1], order[l, 2]
        jb = j0 + nj
        p2, sp2, sq2, sqn2 = P2[l, j0:jb], SP2[l, j0:jb], SQ2[l, j0:jb], SQ2[l + 1, j0:jb]
        sv2, ln2, rb = SV2[l, j0:jb], LN2[l, j0:jb], RW2[l, j0:jb]
        for ii in range(ni):
            i = i0 + ii
            row = (P1[l, i], SP1[l, i], SQ1[l, i], SQ1[l + 1, i], SV1[l, i], LN1[l, i], float(RW1[l, i]))
            s, r, w, th = S[ii, :nj], R[ii, :nj], W[ii, :nj], TH[ii, :nj]
            wl, ml, fl = wbuf[lk, ii, :nj], mbuf[lk, ii, :nj], fbuf[lk, ii, :nj]
            if kind == KIND_LEAKY:  # constant kinds: only that closed form is inlined and the loop vectorizes
                _columns(KIND_LEAKY, slope, a, row, p2, sp2, sq2, sqn2, sv2, ln2, rb, TA, TB, M, npar, apar, s, r, w,
                         th, wl, ml, fl)  # fmt: skip
            elif kind == KIND_ERF:
                _columns(KIND_ERF, slope, a, row, p2, sp2, sq2, sqn2, sv2, ln2, rb, TA, TB, M, npar, apar, s, r, w,
                         th, wl, ml, fl)  # fmt: skip
            else:
                _columns(kind, slope, a, row, p2, sp2, sq2, sqn2, sv2, ln2, rb, TA, TB, M, npar, apar, s, r, w, th,
                         wl, ml, fl)  # fmt: skip


@njit(cache=True, error_model="numpy")
def _store(slots, wbuf, mbuf, fbuf, ii, jj, i, j, nngp_l, back_l, ntk_l):
    """Per-layer arrays of one pair: Sigma_l, B_l = prod_{k > l} m_k and Theta^(l) = F_l B_l."""
    depth = wbuf.shape[0]
    b = 1.0
    for l in range(depth - 1, -1, -1):
        k = slots[l]
        if k >= 0:
            nngp_l[k, i, j] = wbuf[l, ii, jj]
            back_l[k, i, j] = b
            ntk_l[k, i, j] = fbuf[l, ii, jj] * b
        b *= mbuf[l, ii, jj]


@njit(cache=True, error_model="numpy")
def _tile(i0, kind, slope, tab, ins1, ins2, RW1, RW2, TA, TB, order, W0, S0, R0, sym, slots, nngp, ntk, nngp_l,
          back_l, ntk_l, S, R, W, TH, wbuf, mbuf, fbuf):  # fmt: skip
    n, m = W0.shape
    ni = min(_ROWS, n - i0)
    keep = nngp_l.shape[0] > 0
    start = i0 if sym else 0
    for j0 in range(start, m, _BLOCK):
        nj = min(_BLOCK, m - j0)
        for ii in range(ni):
            for jj in range(nj):
                S[ii, jj] = S0[i0 + ii, j0 + jj]
                R[ii, jj] = R0[i0 + ii, j0 + jj]
                W[ii, jj] = W0[i0 + ii, j0 + jj] + tab[1, 0]
                TH[ii, jj] = tab[4, 0] * W0[i0 + ii, j0 + jj] + tab[5, 0]
                wbuf[0, ii, jj] = W[ii, jj]
                fbuf[0, ii, jj] = TH[ii, jj]
                mbuf[0, ii, jj] = 1.0
        _block(kind, slope, tab, i0, ni, j0, nj, ins1[0], ins2[0], ins1[1], ins2[1], ins1[2], ins2[2], ins1[3],
               ins2[3], ins1[4], ins2[4], RW1, RW2, TA, TB, order, S, R, W, TH, keep, wbuf, mbuf, fbuf)  # fmt: skip
        for ii in range(ni):
            i = i0 + ii
            for jj in range(nj):
                j = j0 + jj
                if sym and j < i:
                    continue
                nngp[i, j] = W[ii, jj]
                ntk[i, j] = TH[ii, jj]
                if sym:
                    nngp[j, i] = W[ii, jj]
                    ntk[j, i] = TH[ii, jj]
                if keep:
                    _store(slots, wbuf, mbuf, fbuf, ii, jj, i, j, nngp_l, back_l, ntk_l)
                    if sym and j != i:
                        _store(slots, wbuf, mbuf, fbuf, ii, jj, j, i, nngp_l, back_l, ntk_l)


@njit(cache=True, parallel=True, error_model="numpy")
def _propagate(kind, slope, tab, ins1, ins2, RW1, RW2, TA, TB, order, W0, S0, R0, sym, slots, nngp, ntk, nngp_l,
               back_l, ntk_l):  # fmt: skip
    """``tab`` (8, depth): sigma_w^2, sigma_b^2, beta_l^2, gamma, omega_w, omega_b and the dropout factors (mc, ex)
    per layer; ``ins1``/``ins2`` (5, depth, n): P, sqrt(P), sqrt(q), sqrt(E h^2) and the LayerNorm factor per input."""
    n = W0.shape[0]
    depth = ins1.shape[1]
    nb = depth if nngp_l.shape[0] > 0 else 2
    tiles = (n + _ROWS - 1) // _ROWS
    tasks = (tiles + 1) // 2 if sym else tiles
    for t in prange(tasks):
        S = np.empty((_ROWS, _BLOCK))
        R = np.empty((_ROWS, _BLOCK))
        W = np.empty((_ROWS, _BLOCK))
        TH = np.empty((_ROWS, _BLOCK))
        wbuf = np.empty((nb, _ROWS, _BLOCK))
        mbuf = np.empty((nb, _ROWS, _BLOCK))
        fbuf = np.empty((nb, _ROWS, _BLOCK))
        _tile(t * _ROWS, kind, slope, tab, ins1, ins2, RW1, RW2, TA, TB, order, W0, S0, R0, sym, slots, nngp, ntk,
              nngp_l, back_l, ntk_l, S, R, W, TH, wbuf, mbuf, fbuf)  # fmt: skip
        if sym and tiles - 1 - t != t:
            _tile((tiles - 1 - t) * _ROWS, kind, slope, tab, ins1, ins2, RW1, RW2, TA, TB, order, W0, S0, R0, sym,
                  slots, nngp, ntk, nngp_l, back_l, ntk_l, S, R, W, TH, wbuf, mbuf, fbuf)  # fmt: skip


def arch_kernels(X, net, X2, layers):
    """:func:`meanfield.kernels` for networks with residual blocks, LayerNorm or dropout (see its docstring)."""
    from .dataset import Kernels, _layer_slots, _refuse_nonfinite, kernels_nbytes

    X = check_inputs(X, "X")
    sym = X2 is None
    X2 = X if sym else check_inputs(X2, "X2", X.shape[1])
    depth, act, d = net.depth, net.activation, X.shape[1]
    sched = layer_schedule(net, d)
    sw, sb, g2, gam, ow, ob = sched
    slots_t = _layer_slots(layers, depth)
    nx, mx, nl = X.shape[0], X2.shape[0], len(slots_t or ())
    check_memory(
        kernels_nbytes(nx, mx, d, depth, nl) * 1.5,
        f"kernels of {nx} x {mx} input pairs at depth {depth}" + (f" with {nl} layers" if nl else ""),
        "use fewer inputs (blocks of rows: kernels(X[i:j], net, X2=X)), fewer layers or a smaller depth",
    )
    W0, S0, R0, q1, q2 = first_layer(X, X2, sw[0], sb[0], sym)
    n, m = W0.shape
    seq = arch_sequences(act, net, sched, q1 if sym else np.concatenate([q1, q2]))
    Q, P, V, DV, rows, order, TA, TB = seq
    rho = 1.0 if net.dropout is None else float(net.dropout)
    ln = net.normalization == "layer"
    SQ, SV = np.sqrt(Q), np.sqrt(V / rho)
    ins = np.stack([P, np.sqrt(P), SQ, SV, 1.0 / SQ if ln else np.ones_like(SQ)])
    ins1 = np.ascontiguousarray(ins[:, :, :n])
    ins2 = ins1 if sym else np.ascontiguousarray(ins[:, :, n:])
    RW1 = np.ascontiguousarray(rows[:, :n])
    RW2 = RW1 if sym else np.ascontiguousarray(rows[:, n:])
    slots = np.full(depth, -1, dtype=np.int64)
    for k, l in enumerate(slots_t or ()):
        slots[l - 1] = k
    shape_l = (nl, n, m) if nl else (0, 0, 0)
    nngp, ntk = np.empty((n, m)), np.empty((n, m))
    nngp_l, back_l, ntk_l = np.empty(shape_l), np.empty(shape_l), np.empty(shape_l)
    mc, ex = dropout_factors(net, same=False)
    table = np.array([sw, sb, g2, gam, ow, ob, np.full(depth, mc), np.full(depth, ex)])
    _propagate(act.kind, float(act.slope), table, ins1, ins2, RW1, RW2, TA, TB, order, W0, S0, R0, sym, slots, nngp,
               ntk, nngp_l, back_l, ntk_l)  # fmt: skip
    if sym and net.dropout is not None:  # the diagonal of kernels(X) is one forward pass (the same masks)
        mc, ex = dropout_factors(net, same=True)
        out = np.empty((7, depth))
        for i in range(n):
            arch_pair(act.kind, float(act.slope), sw, sb, g2, gam, ow, ob, mc, ex, ln, Q, P, SV, rows, TA, TB, order,
                      i, i, 0.0, 2.0, float(Q[0, i]), out)  # fmt: skip
            nngp[i, i], ntk[i, i] = out[2, -1], out[3, -1]
            if nl:
                b = np.ones(depth)
                b[:-1] = np.cumprod(out[4, :0:-1])[::-1]
                idx = np.array(slots_t) - 1
                nngp_l[:, i, i] = out[2, idx]
                back_l[:, i, i] = b[idx]
                ntk_l[:, i, i] = out[5, idx] * b[idx]
    _refuse_nonfinite(nngp, ntk, ntk_l)
    if nl == 0:
        return Kernels(nngp, ntk)
    return Kernels(nngp, ntk, slots_t, nngp_l, back_l, ntk_l)
