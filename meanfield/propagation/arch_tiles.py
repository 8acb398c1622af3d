"""Kernels over a dataset for residual blocks, LayerNorm and dropout: the compiled tiles and the driver.

The recursion of :mod:`meanfield.propagation.architecture`, laid out as :mod:`meanfield.propagation.tiles`: tiles of
``_ROWS`` rows in parallel (with symmetry, tiles ``t`` and ``tiles - 1 - t`` share a task), each walking its columns
in blocks of ``_BLOCK`` through all layers with the layer loop outside and the column loop inside (per-input arrays
laid out (layer, input), so the closed forms vectorize over the columns).
"""

from __future__ import annotations

import math

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
def _columns(kind, slope, lay, ln, i, l, P1, P2, SQ1, SQ2, SV1, SV2, RW1, RW2, TA, TB,
             order, j0, s, r, w, th, wl, ml, fl):  # fmt: skip
    """Layer l -> l + 1 for row ``i`` against columns j0 .. j0 + len(s) - 1 (state s, r, w = Sigma, th = Theta)."""
    p1 = P1[l, i]
    sp1 = math.sqrt(p1)
    sq1 = SQ1[l, i]
    sqn1 = SQ1[l + 1, i]
    sve1 = SV1[l, i]
    ra = RW1[l, i]
    M, npar, apar = order[l, 0], order[l, 1], order[l, 2]
    for jj in range(s.shape[0]):
        j = j0 + jj
        p2 = P2[l, j]
        sq2 = SQ2[l, j]
        lni12 = 1.0 / (sq1 * sq2) if ln else 1.0
        s[jj], r[jj], w[jj], th[jj], ml[jj], fl[jj], _ = arch_step(
            kind, slope, lay, p1, p2, sp1 * math.sqrt(p2), sq1, sq2, sqn1, SQ2[l + 1, j],
            sve1, SV2[l, j], lni12, s[jj], r[jj], w[jj], th[jj], TA, TB, ra, RW2[l, j], M, npar, apar,
        )  # fmt: skip
        wl[jj] = w[jj]


@njit(cache=True, error_model="numpy")
def _block(kind, slope, sw, sb, g2, gam, ow, ob, mc, ex, ln, i0, ni, j0, nj, P1, P2, SQ1, SQ2, SV1, SV2, RW1, RW2,
           TA, TB, order, S, R, W, TH, keep, wbuf, mbuf, fbuf):  # fmt: skip
    depth = P1.shape[0]
    for l in range(depth - 1):
        lk = l + 1 if keep else 0
        a = (sw[l + 1], sb[l + 1], g2[l + 1], gam[l + 1], ow[l + 1], ob[l + 1], mc, ex)
        for ii in range(ni):
            i = i0 + ii
            s, r, w, th = S[ii, :nj], R[ii, :nj], W[ii, :nj], TH[ii, :nj]
            wl, ml, fl = wbuf[lk, ii, :nj], mbuf[lk, ii, :nj], fbuf[lk, ii, :nj]
            if kind == KIND_LEAKY:  # constant kinds: only that closed form is inlined and the loop vectorizes
                _columns(KIND_LEAKY, slope, a, ln, i, l, P1, P2, SQ1, SQ2,
                         SV1, SV2, RW1, RW2, TA, TB, order, j0, s, r, w, th, wl, ml, fl)  # fmt: skip
            elif kind == KIND_ERF:
                _columns(KIND_ERF, slope, a, ln, i, l, P1, P2, SQ1, SQ2,
                         SV1, SV2, RW1, RW2, TA, TB, order, j0, s, r, w, th, wl, ml, fl)  # fmt: skip
            else:
                _columns(kind, slope, a, ln, i, l, P1, P2, SQ1, SQ2,
                         SV1, SV2, RW1, RW2, TA, TB, order, j0, s, r, w, th, wl, ml, fl)  # fmt: skip


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
def _tile(i0, kind, slope, sw, sb, g2, gam, ow, ob, mc, ex, ln, P1, P2, SQ1, SQ2, SV1, SV2, RW1, RW2, TA, TB, order,
          W0, S0, R0, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l, S, R, W, TH, wbuf, mbuf, fbuf):  # fmt: skip
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
                W[ii, jj] = W0[i0 + ii, j0 + jj] + sb[0]
                TH[ii, jj] = ow[0] * W0[i0 + ii, j0 + jj] + ob[0]
                wbuf[0, ii, jj] = W[ii, jj]
                fbuf[0, ii, jj] = TH[ii, jj]
                mbuf[0, ii, jj] = 1.0
        _block(kind, slope, sw, sb, g2, gam, ow, ob, mc, ex, ln, i0, ni, j0, nj, P1, P2, SQ1, SQ2, SV1, SV2, RW1, RW2,
               TA, TB, order, S, R, W, TH, keep, wbuf, mbuf, fbuf)  # fmt: skip
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
def _propagate(kind, slope, sw, sb, g2, gam, ow, ob, mc, ex, ln, P1, P2, SQ1, SQ2, SV1, SV2, RW1, RW2, TA, TB, order,
               W0, S0, R0, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l):  # fmt: skip
    n = W0.shape[0]
    depth = P1.shape[0]
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
        _tile(t * _ROWS, kind, slope, sw, sb, g2, gam, ow, ob, mc, ex, ln, P1, P2, SQ1, SQ2, SV1, SV2, RW1, RW2, TA, TB,
              order, W0, S0, R0, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l, S, R, W, TH, wbuf, mbuf,
              fbuf)  # fmt: skip
        if sym and tiles - 1 - t != t:
            _tile((tiles - 1 - t) * _ROWS, kind, slope, sw, sb, g2, gam, ow, ob, mc, ex, ln, P1, P2, SQ1, SQ2, SV1,
                  SV2, RW1, RW2, TA, TB, order, W0, S0, R0, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l, S, R, W, TH,
                  wbuf, mbuf, fbuf)  # fmt: skip


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
    SQ, SV = np.sqrt(Q), np.sqrt(V / rho)

    def split(a):
        return (np.ascontiguousarray(a[:, :n]), a if sym else np.ascontiguousarray(a[:, n:]))

    (P1, P2), (SQ1, SQ2), (SV1, SV2), (RW1, RW2) = (split(a) for a in (P, SQ, SV, rows))
    slots = np.full(depth, -1, dtype=np.int64)
    for k, l in enumerate(slots_t or ()):
        slots[l - 1] = k
    shape_l = (nl, n, m) if nl else (0, 0, 0)
    nngp, ntk = np.empty((n, m)), np.empty((n, m))
    nngp_l, back_l, ntk_l = np.empty(shape_l), np.empty(shape_l), np.empty(shape_l)
    mc, ex = dropout_factors(net, same=False)
    ln = net.normalization == "layer"
    _propagate(act.kind, float(act.slope), sw, sb, g2, gam, ow, ob, mc, ex, ln, P1, P2, SQ1, SQ2, SV1, SV2, RW1, RW2,
               TA, TB, order, W0, S0, R0, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l)  # fmt: skip
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
