"""Kernels over a dataset for residual blocks, LayerNorm and dropout: the compiled tiles and the driver.

The recursion of :mod:`meanfield.propagation.architecture`, laid out as :mod:`meanfield.propagation.tiles`: tiles of
``_ROWS`` rows in parallel (with symmetry, tiles ``t`` and ``tiles - 1 - t`` share a task), each walking its columns
in blocks of ``_BLOCK`` through all layers with the layer loop outside and the column loop inside (per-input arrays
laid out (layer, input), so the closed forms vectorize over the columns).

The closed forms (leaky-ReLU family, erf) take a specialised step, :func:`_closed_step`, with no division or square
root of its own: every factor of the pair update of :func:`meanfield.propagation.architecture.arch_step` that
belongs to one input is computed once per input and layer (:func:`closed_inputs`), as the plain network does
(:func:`meanfield.propagation.columns.closed_columns`). With ``A = (sqrt(gamma q_l), sqrt(a) sqrt(E h^2),
sqrt(b))`` and ``sqrt(q_{l+1}) = |A|``, the bias/skip part of the next correlation is
``(|A||B| - A.B) / (|A||B|) = |A/|A| - B/|B||^2 / 2`` (derived here): a sum of squared differences of per-input
unit vectors, which, like Lagrange's identity used by ``arch_step``, never cancels and vanishes quadratically for
proportional inputs, but needs no division per pair. The general (Mehler) path keeps ``arch_step``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .._checks import check_memory
from .._jit import njit
from ..activations import KIND_ERF, KIND_HERMITE, KIND_LEAKY
from ..gaussian.closed import closed_variance_unit
from ..gaussian.step import closed_unit_step
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


#: rows of the per-input array of the closed forms' path (:func:`closed_inputs`)
_NCLOSED = 11


@njit(cache=True, error_model="numpy", inline="always")
def _closed_step(kind, slope, lay, x1, p2, su2, sv2, d02, d12, d22, k2, t2, e2, b2, ln2, s, r, sig, th, full):
    """One layer l -> l + 1 of one pair with the closed forms, between two forward passes: (s', r', Sigma',
    Theta', m, F) as :func:`meanfield.propagation.architecture.arch_step` with (mc, ex) = (1, 1 - rho).

    Per input (the row's in the tuple ``x1``, the column's as arguments; :func:`closed_inputs`): ``p`` the
    variance fed to phi, ``su = sqrt(v/p)``, ``sv = sqrt(v)`` with v = E phi(sqrt(p) z)^2, the unit vector
    ``d = (sqrt(gamma q_l), sqrt(a E h^2), sqrt(b)) / sqrt(2 q_{l+1})`` (scaled by 1/sqrt 2), ``k = sqrt(gamma
    q_l / q_{l+1})``, ``t = sqrt(a v / q_{l+1})``, ``e = sqrt(a ex E h^2 / q_{l+1})``, ``b = sqrt(2 b / q_{l+1})``
    and the LayerNorm factor ``ln``. Then (module docstring) ``1 - c' = |d - d'|^2 + s k k' + gap_u t t' + e e'``
    and ``1 + c' = |d - d'|^2 + r k k' + agap_u t t' + e e' + b b'``, (gap_u, agap_u) the gaps per unit of
    sqrt(v v') (:func:`meanfield.gaussian.step.closed_unit_step`). Every pair term is a product or squared
    difference of the two inputs' factors, so the step is symmetric in the pair bit for bit. Layer scalars
    ``lay = (gamma, a, b, a omega_w, beta_l^2 omega_b)`` with a = beta_l^2 sigma_w^2, b = beta_l^2 sigma_b^2.

    ``full`` (a constant at each call site): False leaves out the terms of LayerNorm, dropout and hidden-layer
    biases (``ln = 1``, ``e = 0``, ``d_2 = 0``, ``b = 0`` and the layer's b = 0), which are exact ones and zeros
    then, so both give the same bits where the lean form applies (same order of the remaining operations).
    """
    gam, a, bb, fa, fb = lay
    p1, su1, sv1, d01, d11, d21, k1, t1, e1, b1, ln1 = x1
    cov, gap, agap, dcov = closed_unit_step(kind, slope, p1, p2, su1 * su2, s, r)
    c0 = d01 - d02
    c1 = d11 - d12
    mix = c0 * c0 + c1 * c1
    if full:
        c2 = d21 - d22
        mix = (mix + c2 * c2) + e1 * e2
    k12 = k1 * k2
    t12 = t1 * t2
    s_n = mix + s * k12 + gap * t12
    r_n = mix + r * k12 + agap * t12
    cov = cov * (sv1 * sv2)
    dot = a * dcov
    sig_n = gam * sig + a * cov
    if full:
        r_n = r_n + b1 * b2
        dot = dot * (ln1 * ln2)
        sig_n = sig_n + bb
    mult = gam + dot
    f = fa * cov + fb
    return min(max(s_n, 0.0), 2.0), min(max(r_n, 0.0), 2.0), sig_n, th * mult + f, mult, f


@njit(cache=True, error_model="numpy", inline="always")
def _closed_columns(kind, slope, lay, x1, cols, s, r, w, th, wl, ml, fl, keep, full):
    """:func:`_closed_step` for one row (``x1``) against a block of columns (``cols``: the per-input rows of
    :func:`closed_inputs` as contiguous slices); the per-layer buffers are written only with ``keep``."""
    p2, su2, sv2, d02, d12, d22, k2, t2, e2, b2, ln2 = cols
    for jj in range(s.shape[0]):
        sn, rn, wn, tn, mn, fn = _closed_step(
            kind, slope, lay, x1, p2[jj], su2[jj], sv2[jj], d02[jj], d12[jj], d22[jj], k2[jj], t2[jj], e2[jj],
            b2[jj], ln2[jj], s[jj], r[jj], w[jj], th[jj], full,
        )  # fmt: skip
        s[jj] = sn
        r[jj] = rn
        w[jj] = wn
        th[jj] = tn
        if keep:
            wl[jj] = wn
            ml[jj] = mn
            fl[jj] = fn


@njit(cache=True, error_model="numpy", inline="always")
def _closed_rows(kind, slope, lay, U1, l, i0, ni, nj, cols, S, R, W, TH, wbuf, mbuf, fbuf, lk, keep, full):
    """:func:`_closed_columns` for the rows i0 .. i0 + ni - 1 of a tile at layer l (``kind``, ``keep`` and
    ``full`` constants at each call site, so that each copy is one straight loop)."""
    for ii in range(ni):
        i = i0 + ii
        x1 = (U1[0, l, i], U1[1, l, i], U1[2, l, i], U1[3, l, i], U1[4, l, i], U1[5, l, i], U1[6, l, i],
              U1[7, l, i], U1[8, l, i], U1[9, l, i], U1[10, l, i])  # fmt: skip
        _closed_columns(kind, slope, lay, x1, cols, S[ii, :nj], R[ii, :nj], W[ii, :nj], TH[ii, :nj],
                        wbuf[lk, ii, :nj], mbuf[lk, ii, :nj], fbuf[lk, ii, :nj], keep, full)  # fmt: skip


@njit(cache=True, error_model="numpy")
def _block_closed(kind, slope, tab, i0, ni, j0, nj, U1, U2, S, R, W, TH, keep, full, wbuf, mbuf, fbuf):
    """:func:`_block` for the closed forms: ``U1``, ``U2`` (11, depth, n) from :func:`closed_inputs`; ``full``
    False when the network has neither LayerNorm, dropout nor hidden-layer biases (:func:`_closed_step`). The lean
    copy is taken only then, for the leaky-ReLU family and without ``keep`` (per-layer kernels requested); erf
    always takes the full copy."""
    depth = U1.shape[1]
    jb = j0 + nj
    for l in range(depth - 1):
        lk = l + 1 if keep else 0
        sw, sb, g2 = tab[0, l + 1], tab[1, l + 1], tab[2, l + 1]
        gam, ow, ob = tab[3, l + 1], tab[4, l + 1], tab[5, l + 1]
        a = g2 * sw
        lay = (gam, a, g2 * sb, g2 * (ow * sw), g2 * ob)
        cols = (U2[0, l, j0:jb], U2[1, l, j0:jb], U2[2, l, j0:jb], U2[3, l, j0:jb], U2[4, l, j0:jb], U2[5, l, j0:jb],
                U2[6, l, j0:jb], U2[7, l, j0:jb], U2[8, l, j0:jb], U2[9, l, j0:jb], U2[10, l, j0:jb])  # fmt: skip
        # constant kinds and flags: each branch inlines one specialised loop, which vectorizes. The leaky-ReLU
        # family gets the lean copy (no LayerNorm, dropout or hidden biases) and the full one, each without the
        # per-layer stores, and the full one with them (keep); erf (whose loop calls libm) shares one copy, whose
        # stores go to an unused slot without keep (compile time)
        if kind == KIND_LEAKY and keep:
            _closed_rows(KIND_LEAKY, slope, lay, U1, l, i0, ni, nj, cols, S, R, W, TH, wbuf, mbuf, fbuf, lk, True, True)
        elif kind == KIND_LEAKY and full:
            _closed_rows(KIND_LEAKY, slope, lay, U1, l, i0, ni, nj, cols, S, R, W, TH, wbuf, mbuf, fbuf, lk, False,
                         True)  # fmt: skip
        elif kind == KIND_LEAKY:
            _closed_rows(KIND_LEAKY, slope, lay, U1, l, i0, ni, nj, cols, S, R, W, TH, wbuf, mbuf, fbuf, lk, False,
                         False)  # fmt: skip
        else:
            _closed_rows(KIND_ERF, slope, lay, U1, l, i0, ni, nj, cols, S, R, W, TH, wbuf, mbuf, fbuf, lk, True, True)


@njit(cache=True, error_model="numpy")
def _unit_variances(kind, slope, P, out):
    """out[l, i] = E phi(sqrt(p) z)^2 / p at p = P[l, i] in closed form (finite down to p = 0)."""
    for l in range(P.shape[0]):
        for i in range(P.shape[1]):
            out[l, i] = closed_variance_unit(kind, slope, P[l, i])[0]


def closed_inputs(act, net, sched, seq):
    """The per-input factors of :func:`_closed_step`, shape (11, depth, n): P, sqrt(v/p), sqrt(v), the unit
    vector d (3 rows), k, t, e, b and the LayerNorm factor, as there; row l of each holds the quantities of the step
    l -> l + 1 (the layer scalars of layer l + 1, ``sqrt(q_{l+1})``); the last layer's are unused (zeros)."""
    sw, sb, g2, gam = sched[:4]
    Q, P, V = seq[:3]
    rho = 1.0 if net.dropout is None else float(net.dropout)
    mc, ex = dropout_factors(net, same=False)
    depth, n = Q.shape
    U = np.zeros((_NCLOSED, depth, n))
    U[0] = P
    vq = np.empty_like(P)
    _unit_variances(act.kind, float(act.slope), P, vq)
    U[1] = np.sqrt(vq)
    U[2] = np.sqrt(V)
    a = (g2 * sw)[1:, None]
    b = (g2 * sb)[1:, None]
    inv = 1.0 / np.sqrt(Q[1:])
    inv2 = 1.0 / np.sqrt(2.0 * Q[1:])
    sq = np.sqrt(Q[:-1])
    sve = np.sqrt(V[:-1] / rho)
    gs = np.sqrt(gam[1:, None])
    U[3, :-1] = gs * sq * inv2
    U[4, :-1] = np.sqrt(a) * sve * inv2
    U[5, :-1] = np.sqrt(b) * inv2
    U[6, :-1] = gs * sq * inv
    U[7, :-1] = np.sqrt(a * mc) * U[2, :-1] * inv
    U[8, :-1] = np.sqrt(a * ex) * sve * inv
    U[9, :-1] = np.sqrt(2.0 * b) * inv
    U[10] = 1.0 / np.sqrt(Q) if net.normalization == "layer" else 1.0
    return U


def needs_full_step(net):
    """False when :func:`_closed_step`'s lean form applies: no LayerNorm, no dropout, no bias after layer 1."""
    return net.normalization is not None or net.dropout is not None or any(v > 0.0 for v in net.bias_variances[1:])


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
            _columns(KIND_HERMITE, slope, a, row, p2, sp2, sq2, sqn2, sv2, ln2, rb, TA, TB, M, npar, apar, s, r, w,
                     th, wl, ml, fl)  # fmt: skip


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
def _tile(i0, kind, slope, full, tab, ins1, ins2, RW1, RW2, TA, TB, order, W0, S0, R0, sym, slots, nngp, ntk, nngp_l,
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
        if kind == KIND_HERMITE:
            _block(kind, slope, tab, i0, ni, j0, nj, ins1[0], ins2[0], ins1[1], ins2[1], ins1[2], ins2[2], ins1[3],
                   ins2[3], ins1[4], ins2[4], RW1, RW2, TA, TB, order, S, R, W, TH, keep, wbuf, mbuf, fbuf)  # fmt: skip
        else:
            _block_closed(kind, slope, tab, i0, ni, j0, nj, ins1, ins2, S, R, W, TH, keep, full, wbuf, mbuf, fbuf)
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
def _propagate(kind, slope, full, tab, ins1, ins2, RW1, RW2, TA, TB, order, W0, S0, R0, sym, slots, nngp, ntk, nngp_l,
               back_l, ntk_l):  # fmt: skip
    """``tab`` (8, depth): sigma_w^2, sigma_b^2, beta_l^2, gamma, omega_w, omega_b and the dropout factors (mc, ex)
    per layer; ``ins1``/``ins2``: for the general path (5, depth, n) P, sqrt(P), sqrt(q), sqrt(E h^2) and the
    LayerNorm factor per input, for the closed forms (11, depth, n) from :func:`closed_inputs`."""
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
        _tile(t * _ROWS, kind, slope, full, tab, ins1, ins2, RW1, RW2, TA, TB, order, W0, S0, R0, sym, slots, nngp, ntk,
              nngp_l, back_l, ntk_l, S, R, W, TH, wbuf, mbuf, fbuf)  # fmt: skip
        if sym and tiles - 1 - t != t:
            _tile((tiles - 1 - t) * _ROWS, kind, slope, full, tab, ins1, ins2, RW1, RW2, TA, TB, order, W0, S0, R0, sym,
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
        kernels_nbytes(nx, mx, d, depth, nl) * 1.5 + 8.0 * (nx + mx) * depth * _NCLOSED,
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
    mc, ex = dropout_factors(net, same=False)
    if act.kind == KIND_HERMITE:
        ins = np.stack([P, np.sqrt(P), SQ, SV, 1.0 / SQ if ln else np.ones_like(SQ)])
    else:
        ins = closed_inputs(act, net, sched, seq)
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
    table = np.array([sw, sb, g2, gam, ow, ob, np.full(depth, mc), np.full(depth, ex)])
    _propagate(act.kind, float(act.slope), needs_full_step(net), table, ins1, ins2, RW1, RW2, TA, TB, order, W0,
               S0, R0, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l)  # fmt: skip
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
