"""The exact layer recursion of :mod:`meanfield.propagation.sphere` for a list of pairs of inputs that share one
variance sequence (equal layer-1 variances): the nodes and check points of the sphere tables, and the pairs a
table cannot give to its tolerance.

Every pair runs the column step of :func:`meanfield.kernels` (:mod:`meanfield.propagation.columns`) through all
L layers, in blocks of columns (parallel over blocks, balanced over the threads; one thread for small work).
Cost O(L K) for K pairs.

Examples
--------
>>> import numpy as np
>>> from meanfield import Network
>>> rec = Recursion(Network(3), 2.0, np.ones(3), np.zeros(3))
>>> w, th, _ = rec.run(np.array([0.0]), np.array([2.0]), np.array([2.0]))
>>> float(w[0]), float(th[0])
(2.0, 6.0)
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from .._jit import njit
from ..activations import KIND_HERMITE, KIND_LEAKY
from .columns import closed_columns, gather_columns, hermite_columns
from .inputs import per_layer, variance_ratios, variance_sequences

__all__ = ["Recursion"]

#: columns per block of the node loop (as the dataset loop's blocks)
_NBLOCK = 256
#: closed-form pair-layer updates below which the exact recursion runs on one thread (~1 ms)
_SERIAL_WORK = 200_000


# ---------------------------------------------------------------------------------------------------------------
# the exact recursion for a list of pairs sharing one variance sequence
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def _pairs_block(
    b, kind, slope, sw, sb, Q, SQ, SV, rows, T, TA, TB, order, omw, omb, l_from, l_to, S, R, W, TH, TL, LA, slots,
    keep_dot, W_l, D_l, width,
):  # fmt: skip
    """Block b (columns b * width ...) of :func:`_pairs_loop`."""
    K = S.shape[0]
    nk = max(1, (order[:, 0] * order[:, 1]).max()) if kind == KIND_HERMITE else 1
    j0 = b * width
    nk0 = min(width, K - j0)
    # the general path takes the exact gap sums in a block with a pair near c = +-1, as the dataset loop does in
    # every block holding the diagonal: one extra parallel pair (s = 0) makes every block take them
    nj = nk0 + 1 if kind == KIND_HERMITE else nk0
    s = np.zeros(nj)
    r = np.full(nj, 2.0)
    w = np.zeros(nj)
    th = np.zeros(nj)
    tl = np.zeros(nj)  # the low part of the compensated NTK (columns.ntk_accumulate)
    s[:nk0] = S[j0 : j0 + nk0]
    r[:nk0] = R[j0 : j0 + nk0]
    w[:nk0] = W[j0 : j0 + nk0]
    th[:nk0] = TH[j0 : j0 + nk0]
    tl[:nk0] = TL[j0 : j0 + nk0]
    logs = LA.shape[0] > 0
    la = np.zeros(nk0)
    comp = np.zeros(nk0)
    q2 = np.empty(nj)
    sv2 = np.empty(nj)
    sqn2 = np.empty(nj)
    t2 = np.empty(nj)
    u2 = np.empty(nj)
    rb = np.empty(nj, dtype=np.int64)
    wl = np.empty(nj)
    dl = np.empty(nj)
    A2 = np.empty((nk, _NBLOCK + 3))
    B2 = np.empty((nk, _NBLOCK + 3))
    work = np.empty((13, _NBLOCK))
    if l_from == 1 and slots[0] >= 0:
        W_l[slots[0], j0 : j0 + nk0] = w[:nk0]
    if l_from == 1 and keep_dot:
        D_l[0, j0 : j0 + nk0] = 0.0
    gathered = -1
    for l in range(l_from, l_to):
        k = order[l - 1, 0]
        npar = order[l - 1, 1]
        apar = order[l - 1, 2]
        q2[:] = Q[l - 1]
        sv2[:] = SV[l - 1]
        sqn2[:] = SQ[l]
        t2[:] = T[0, l - 1]
        u2[:] = T[1, l - 1]
        if kind == KIND_HERMITE:
            if rows[l - 1] != gathered:  # at the variances' fixed point the rows repeat: gather once
                rb[:] = rows[l - 1]
                gather_columns(TA, TB, rb, npar * k, A2, B2)
                gathered = rows[l - 1]
            hermite_columns(sw, sb, SV[l - 1], SQ[l], rows[l - 1], k, npar, apar, omw[l], omb[l], sv2, sqn2,
                            TA, TB, s, r, w, th, tl, wl, dl, A2, B2, work)  # fmt: skip
        elif kind == KIND_LEAKY:  # a constant kind: the closed form is inlined and the loop vectorizes
            closed_columns(KIND_LEAKY, slope, sw, sb, Q[l - 1], SV[l - 1], SQ[l], T[0, l - 1], T[1, l - 1],
                           omw[l], omb[l], q2, sv2, sqn2, t2, u2, s, r, w, th, tl, wl, dl)  # fmt: skip
        else:
            closed_columns(kind, slope, sw, sb, Q[l - 1], SV[l - 1], SQ[l], T[0, l - 1], T[1, l - 1], omw[l],
                           omb[l], q2, sv2, sqn2, t2, u2, s, r, w, th, tl, wl, dl)  # fmt: skip
        if slots[l] >= 0:
            W_l[slots[l], j0 : j0 + nk0] = wl[:nk0]
        if keep_dot:
            D_l[l, j0 : j0 + nk0] = dl[:nk0]
        if logs:  # sum of log Sigmadot, Kahan-compensated
            for jj in range(nk0):
                y = math.log(dl[jj]) - comp[jj]
                z = la[jj] + y
                comp[jj] = (z - la[jj]) - y
                la[jj] = z
    S[j0 : j0 + nk0] = s[:nk0]
    R[j0 : j0 + nk0] = r[:nk0]
    W[j0 : j0 + nk0] = w[:nk0]
    TH[j0 : j0 + nk0] = th[:nk0]
    TL[j0 : j0 + nk0] = tl[:nk0]
    if logs:
        LA[j0 : j0 + nk0] = la


@njit(cache=True, parallel=True, error_model="numpy")
def _pairs_loop(
    kind, slope, sw, sb, Q, SQ, SV, rows, T, TA, TB, order, omw, omb, l_from, l_to, S, R, W, TH, TL, LA, slots,
    keep_dot, W_l, D_l, width,
):  # fmt: skip
    """Carry the pairs (S, R, W, TH + TL) of inputs with the one variance sequence Q in place through the layer
    steps l_from .. l_to - 1 (step l takes layer l to l + 1, 1-based), with the column step of
    :func:`meanfield.kernels` (the pairs are the columns of one row; every column has the same per-input
    quantities): on exit W = Sigma_{l_to} - sigma_b^2 and TH + TL = Theta_{l_to} (compensated). W_l[slots[l]] =
    Sigma_l - sigma_b^2 for the requested layers and, with ``keep_dot``, D_l[l] = Sigmadot_l (0 at l = 0); with
    a non-empty LA, LA = sum of log Sigmadot over the steps."""
    K = S.shape[0]
    nblk = (K + width - 1) // width
    for b in prange(nblk):
        _pairs_block(b, kind, slope, sw, sb, Q, SQ, SV, rows, T, TA, TB, order, omw, omb, l_from, l_to, S, R, W, TH,
                     TL, LA, slots, keep_dot, W_l, D_l, width)  # fmt: skip


@njit(cache=True, error_model="numpy")
def _pairs_serial(
    kind, slope, sw, sb, Q, SQ, SV, rows, T, TA, TB, order, omw, omb, l_from, l_to, S, R, W, TH, TL, LA, slots,
    keep_dot, W_l, D_l, width,
):  # fmt: skip
    """:func:`_pairs_loop` on one thread (small tables: no thread wake-up)."""
    K = S.shape[0]
    nblk = (K + width - 1) // width
    for b in range(nblk):
        _pairs_block(b, kind, slope, sw, sb, Q, SQ, SV, rows, T, TA, TB, order, omw, omb, l_from, l_to, S, R, W, TH,
                     TL, LA, slots, keep_dot, W_l, D_l, width)  # fmt: skip


@njit(cache=True, error_model="numpy")
def _backward(omw, omb, slots, W_l, D_l, B_out, TL_out):
    """B_l = prod_{k > l} Sigmadot_k and Theta^(l) = (omw_l W_l + omb_l) B_l at the requested layers, in the
    order of the dataset loop (from the top layer down), per pair."""
    depth = D_l.shape[0]
    for j in range(D_l.shape[1]):
        b = 1.0
        for l in range(depth - 1, -1, -1):
            k = slots[l]
            if k >= 0:
                B_out[k, j] = b
                TL_out[k, j] = (omw[l] * W_l[k, j] + omb[l]) * b
            b *= D_l[l, j]


class Recursion:
    """The shared variance sequence of one network and input variance, and the exact loop over pairs."""

    def __init__(self, net, q, omw, omb):
        act = net.activation
        self.kind, self.slope = act.kind, float(act.slope)
        self.sw, self.sb = float(net.sigma_w2), float(net.sigma_b2)
        self.depth = net.depth
        self.omw, self.omb = np.ascontiguousarray(omw, dtype=np.float64), np.ascontiguousarray(omb, dtype=np.float64)
        sw_l, sb_l = per_layer(self.sw, self.depth), per_layer(self.sb, self.depth)  # the plain MLP's constant schedule
        Q, V, rows, order, npar, apar, TA, TB = variance_sequences(act, sw_l, sb_l, np.array([q]), self.depth)
        self.Q = np.ascontiguousarray(Q[:, 0])
        self.SQ, self.SV = np.sqrt(self.Q), np.sqrt(np.ascontiguousarray(V[:, 0]))
        self.rows = np.ascontiguousarray(rows[:, 0])
        self.order = np.ascontiguousarray(np.stack([order, npar, apar], axis=1))
        self.TA, self.TB = TA, TB
        T = variance_ratios(act, sw_l, sb_l, Q) if act.kind != KIND_HERMITE else np.zeros((2,) + Q.shape)
        self.T = np.ascontiguousarray(T[:, :, 0])

    def run(self, S0, R0, W0, slots=None):
        """(W_L, Theta_L) and, for ``slots`` (a length-L int array, -1 where not requested), the per-layer
        (W_l, B_l, Theta^(l)) arrays (n_slots, K) of the pairs (S0, R0, W0)."""
        keep = slots is not None
        if slots is None:
            slots = np.full(self.depth, -1, dtype=np.int64)
        ns = int(slots.max()) + 1 if keep else 0
        S, R, W = (np.array(x, dtype=np.float64) for x in (S0, R0, W0))
        TH, TL = self.omw[0] * W + self.omb[0], np.zeros(W.size)
        W_l = np.empty((max(ns, 1), W.size))
        D_l = np.empty((self.depth if keep else 1, W.size))
        self.advance(1, self.depth, S, R, W, TH, TL, slots=slots, keep_dot=keep, W_l=W_l, D_l=D_l)
        if not keep:
            return W, TH + TL, None
        B, TH_l = np.empty((ns, W.size)), np.empty((ns, W.size))
        _backward(self.omw, self.omb, slots, W_l[:ns], D_l, B, TH_l)
        return W, TH + TL, (W_l[:ns], B, TH_l)

    def advance(self, l_from, l_to, S, R, W, TH, TL, LA=None, slots=None, keep_dot=False, W_l=None, D_l=None):
        """Carry the pairs' state (S, R, W, TH + TL; float64 arrays, changed in place) through the layer steps
        l_from .. l_to - 1 (:func:`_pairs_loop`); with ``LA`` (an array), LA = sum of log Sigmadot over them."""
        K = S.size
        if slots is None:
            slots = np.full(self.depth, -1, dtype=np.int64)
        LA = np.empty(0) if LA is None else LA
        W_l = np.empty((1, K)) if W_l is None else W_l
        D_l = np.empty((1, K)) if D_l is None else D_l
        # blocks of at most _NBLOCK - 1 columns, as many as a multiple of the threads (balanced); one thread for
        # small work, where waking the others costs more than it saves (ms on a loaded machine)
        threads = numba.get_num_threads()
        nblk = -(-K // (_NBLOCK - 1))
        steps = max(l_to - l_from, 0)
        parallel = threads > 1 and K > 1 and K * steps * (8 if self.kind == KIND_HERMITE else 1) > _SERIAL_WORK
        if parallel:
            nblk = -(-max(nblk, 2) // threads) * threads
        loop = _pairs_loop if parallel else _pairs_serial
        loop(
            self.kind, self.slope, self.sw, self.sb, self.Q, self.SQ, self.SV, self.rows, self.T, self.TA, self.TB,
            self.order, self.omw, self.omb, l_from, l_to, S, R, W, TH, TL, LA, slots, keep_dot, W_l, D_l,
            max(1, -(-K // nblk)),
        )  # fmt: skip
