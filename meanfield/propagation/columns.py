r"""One layer step for a block of columns of one row: the compiled inner loops of :func:`meanfield.kernels`.

A row ``i`` and a block of up to 256 columns ``j`` share the row's quantities (scalars) while the column loop
vectorizes. :func:`closed_columns` inlines the closed forms' unit pair step (:mod:`meanfield.gaussian.step`);
the general (Mehler) path reorders the sums for SIMD, with the Hermite order as the outer loop and the columns
inside (:func:`hermite_columns`, :func:`hermite_two_rows`), but states no algebra of its own: every Horner step,
parity term and gap comes from the inlined helpers of :mod:`meanfield.gaussian.hermite`, and every layer update
from :func:`layer_update`.
"""

from __future__ import annotations

from numba import types
from numba.core.extending import intrinsic

from .._jit import njit
from ..gaussian.closed import pair_correlation
from ..gaussian.hermite import (
    HERMITE_UNROLL,
    block_parities,
    gap_mismatch,
    mehler_block4,
    mehler_gap_block4,
    parity_dcov,
    parity_terms,
    unit_scale,
)
from ..gaussian.step import closed_unit_step, next_correlation, next_correlation_unit

__all__ = ["closed_columns", "gather_columns", "hermite_columns", "hermite_two_rows", "layer_update", "ntk_accumulate"]

#: below this 1 - |c| (in some column of a block) the general path carries the Cauchy-Schwarz gaps exactly. The
#: plain gap sqrt(v1 v2) - cov is off by a few 1e-16 of sqrt(v1 v2) (the rounding of the rows' norms and of the
#: Mehler sum), the same at every layer once the variances sit at their fixed point: a bias of about
#: 1e-16 / (1 - |c|) relative in 1 - |c| per layer that adds up over the layers. At 1e-3 a near-critical tanh
#: network (chi_1 = 0.9998), which spends hundreds of layers at 1 - c ~ 1e-2, had its NTK off by 6e-12 relative at
#: L = 1000 (7e-11 at L = 1e4; the exact gaps: 1e-13, 4e-13 against mpmath), and kernels(X, X2) differed from
#: kernels(vstack(X, X2)) by that much; from 0.25 on the plain form's bias is about 1e-15 per layer (at most 1.7e-15).
_GAP_EXACT = 0.25


@intrinsic
def ntk_accumulate(typingctx, hi, lo, dot, x):
    r"""One compensated step of the NTK recursion :math:`\Theta \leftarrow \Theta\,\dot\Sigma + x` on
    :math:`\Theta = ` ``hi + lo``: returns ``(hi', lo')`` with ``hi' = fl(hi dot + x)`` and ``lo'`` collecting
    ``lo dot`` and the exact rounding errors of the product (a fused multiply-add) and of the sum (Knuth's
    TwoSum), so that ``hi + lo`` carries the recursion as if in twice the working precision (a compensated Horner
    scheme; Graillat, Langlois & Louvet 2005). Emitted as plain LLVM instructions without fast-math flags, so no
    contraction or reassociation in the calling loop can undo it; the loop still vectorizes.

    Why: where the NTK approaches its fixed point :math:`x/(1 - \dot\Sigma)` (the ordered phase near the edge
    of chaos, :math:`\dot\Sigma\to\chi_1\approx 1`), the same rounding of the plain update recurs at every
    layer and adds up to about :math:`\epsilon/(1 - \chi_1)` relative: 2e-13 for tanh (1.76, 0.05) at
    L = 10^4 (chi_1 = 0.9998); likewise the sum of L equal terms when :math:`\dot\Sigma = 1` (ReLU on the
    diagonal, 1.4e-13 at L = 10^4). Compensated, both stay at a few 1e-17 (tests/test_compensated_ntk.py).
    """
    f64 = types.float64
    sig = types.UniTuple(f64, 2)(f64, f64, f64, f64)

    def codegen(context, builder, signature, args):
        hi, lo, dot, x = args
        p = builder.fmul(hi, dot)
        ep = builder.fma(hi, dot, builder.fneg(p))  # hi dot - p, exactly
        s = builder.fadd(p, x)
        bb = builder.fsub(s, p)
        es = builder.fadd(builder.fsub(p, builder.fsub(s, bb)), builder.fsub(x, bb))  # p + x - s, exactly
        lo2 = builder.fadd(builder.fadd(builder.fmul(lo, dot), ep), es)
        return context.make_tuple(builder, signature.return_type, [s, lo2])

    return sig, codegen


@njit(cache=True, error_model="numpy", inline="always")
def layer_update(sw, sb, ow, ob, sv1, sv2, sqn1, sqn2, cov, gap, agap, dcov, jj, s, r, w, th, tl, wl, dl):
    """One layer of the kernel recursion for pair ``jj`` of a block, in place.

    The next (s, r) from the gaps (:func:`meanfield.gaussian.step.next_correlation`), w = Sigma_{l+1} -
    sigma_b^2 = sigma_w^2 cov, dl = Sigmadot_{l+1} = sigma_w^2 dcov and Theta_{l+1} = Theta_l Sigmadot_{l+1}
    + ow (Sigma_{l+1} - sigma_b^2) + ob, with (ow, ob) = (1, sigma_b^2) in NTK parameterization (Jacot et al.
    2018), carried compensated as th + tl (:func:`ntk_accumulate`); wl keeps the layer's w.
    """
    s[jj], r[jj] = next_correlation(sw, sb, sv1, sv2, sqn1, sqn2, gap, agap)
    wpart = sw * cov
    dot = sw * dcov
    w[jj] = wpart
    th[jj], tl[jj] = ntk_accumulate(th[jj], tl[jj], dot, ow * wpart + ob)
    wl[jj] = wpart
    dl[jj] = dot


@njit(cache=True, error_model="numpy", inline="always")
def closed_columns(
    kind, slope, sw, sb, q1, sv1, sqn1, t1, u1, ow, ob, q2, sv2, sqn2, t2, u2, s, r, w, th, tl, wl, dl
):  # fmt: skip
    """One layer step for a block of columns of one row with the closed forms (row quantities are scalars).

    The pair step is taken per unit of sqrt(v1 v2) (:func:`meanfield.gaussian.step.closed_unit_step`; ``u`` =
    sqrt(v/q)) and the next correlation from the ratios ``t = sqrt(sigma_w^2 v / q')``
    (:func:`meanfield.gaussian.step.next_correlation_unit`): no product of variances is formed, so the
    correlations stay exact when the variances are huge or underflow; w = sigma_w^2 cov_n sqrt(v1) sqrt(v2) and
    the kernels' update as in :func:`layer_update` (the NTK compensated as th + tl).
    """
    for jj in range(q2.shape[0]):
        cov, gap, agap, dcov = closed_unit_step(kind, slope, q1, q2[jj], u1 * u2[jj], s[jj], r[jj])
        s[jj], r[jj] = next_correlation_unit(sw, sb, sv1, sv2[jj], sqn1, sqn2[jj], t1 * t2[jj], gap, agap)
        wpart = sw * cov * sv1 * sv2[jj]
        dot = sw * dcov
        w[jj] = wpart
        th[jj], tl[jj] = ntk_accumulate(th[jj], tl[jj], dot, ow * wpart + ob)
        wl[jj] = wpart
        dl[jj] = dot


@njit(cache=True, error_model="numpy")
def gather_columns(TA, TB, rb, k, A2, B2):
    """A2[kk, jj] = TA[rb[jj] + kk] for kk < k (and B2 from TB): the columns' rows transposed to (k, column)."""
    for jj in range(rb.shape[0]):
        row = rb[jj]
        for kk in range(k):
            A2[kk, jj] = TA[row + kk]
            B2[kk, jj] = TB[row + kk]


@njit(cache=True, error_model="numpy", inline="always")
def _four(T, m0, col):
    """Coefficients m0 + 3, ..., m0 of column ``col`` (highest order first), one ``HERMITE_UNROLL`` pass."""
    return T[m0 + 3, col], T[m0 + 2, col], T[m0 + 1, col], T[m0, col]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _horner_exact(A2, B2, last, base, M, W, nj, sv1, sv2):
    """Horner sums of one parity block for all columns: W[1..5] += (H, J, P, D, Hb) of
    :func:`meanfield.gaussian.hermite.mehler_gap_step`, four orders per pass (W[0] = c^2), the squared distance
    D between the rows scaled to unit norm by the per-input ``sqrt(v) = sv``."""
    i1 = unit_scale(sv1)
    for m0 in range(base + M - HERMITE_UNROLL, base - 1, -HERMITE_UNROLL):
        a = _four(A2, m0, last)
        b = _four(B2, m0, last)
        for jj in range(nj):
            W[1, jj], W[2, jj], W[3, jj], W[4, jj], W[5, jj] = mehler_gap_block4(
                W[1, jj], W[2, jj], W[3, jj], W[4, jj], W[5, jj], W[0, jj], a, b, _four(A2, m0, jj), _four(B2, m0, jj),
                i1, unit_scale(sv2[jj]),
            )  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _horner_plain(A2, B2, last, base, M, W, nj):
    """Only the Mehler sums themselves, W[1] += H and W[5] += Hb (the gaps then follow from cov)."""
    for m0 in range(base + M - HERMITE_UNROLL, base - 1, -HERMITE_UNROLL):
        a = _four(A2, m0, last)
        b = _four(B2, m0, last)
        for jj in range(nj):
            W[1, jj], W[5, jj] = mehler_block4(W[1, jj], W[5, jj], W[0, jj], a, b, _four(A2, m0, jj), _four(B2, m0, jj))


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _horner_plain2(A2, B2, col1, col2, base, M, W1, W2, nj):
    """:func:`_horner_plain` for two rows at once (their coefficients in columns col1, col2): each column
    coefficient loaded once serves both rows, halving the traffic from the transposed tables."""
    for m0 in range(base + M - HERMITE_UNROLL, base - 1, -HERMITE_UNROLL):
        a = _four(A2, m0, col1)
        b = _four(B2, m0, col1)
        e = _four(A2, m0, col2)
        f = _four(B2, m0, col2)
        for jj in range(nj):
            x = _four(A2, m0, jj)
            y = _four(B2, m0, jj)
            W1[1, jj], W1[5, jj] = mehler_block4(W1[1, jj], W1[5, jj], W1[0, jj], a, b, x, y)
            W2[1, jj], W2[5, jj] = mehler_block4(W2[1, jj], W2[5, jj], W2[0, jj], e, f, x, y)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _hermite_prep(ra, M, npar, TA, TB, s, r, A2, B2, col, work, nj):
    """Copy the row's coefficients to column ``col`` of the transposed tables and set up the per-column state;
    True if some column is within ``_GAP_EXACT`` of c = +-1 (the exact gap sums are needed)."""
    for kk in range(npar * M):
        A2[kk, col] = TA[ra + kk]
        B2[kk, col] = TB[ra + kk]
    closest = 2.0
    for jj in range(nj):
        c = pair_correlation(s[jj], r[jj])
        closest = min(closest, min(s[jj], r[jj]))
        work[6, jj] = c
        work[7, jj] = abs(c)
        work[0, jj] = c * c
        for row in range(8, 13):
            work[row, jj] = 0.0
    return closest < _GAP_EXACT


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _plain_terms(pa, pb, work, nj):
    """cov += H and dcov += Hb, each times c for odd k, in a straight loop that vectorizes."""
    for jj in range(nj):
        c = work[6, jj]
        work[8, jj] += parity_dcov(pa, c, work[1, jj])
        work[9, jj] += parity_dcov(pb, c, work[5, jj])


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _hermite_finish(exact, sw, sb, sv1, sqn1, ow, ob, sv2, sqn2, s, r, w, th, tl, wl, dl, work, nj):
    """The next (s, r) from the gaps, and the kernels' layer step, from the sums in ``work``."""
    for jj in range(nj):
        cov = work[8, jj]
        if exact:
            mismatch = gap_mismatch(work[12, jj], sv1, sv2[jj])
            g = mismatch + work[10, jj]
            ag = mismatch + work[11, jj]
        else:
            g = sv1 * sv2[jj] - cov
            ag = sv1 * sv2[jj] + cov
        layer_update(sw, sb, ow, ob, sv1, sv2[jj], sqn1, sqn2[jj], cov, g, ag, work[9, jj], jj, s, r, w, th, tl, wl,
                     dl)  # fmt: skip


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def hermite_columns(
    sw, sb, sv1, sqn1, ra, M, npar, apar, ow, ob, sv2, sqn2, TA, TB, s, r, w, th, tl, wl, dl, A2, B2, work
):  # fmt: skip
    """The general (Mehler) path for a block of columns of one row, with the Hermite order as the outer loop and
    the columns inside, so that the column loop vectorizes.

    The same sums as :func:`meanfield.gaussian.hermite.hermite_pair` (Horner in u = c^2 from the highest order
    down, one parity block at a time, ``HERMITE_UNROLL`` orders per pass over the columns so that the accumulators
    stay in registers), and the norms from the per-input ``sqrt(v) = SV`` already used by
    :func:`meanfield.gaussian.step.next_correlation`. When every column of the block has
    ``min(1 - c, 1 + c) >= _GAP_EXACT`` the gaps are formed as ``sqrt(v1 v2) -/+ cov``, whose rounding (``1e-16``
    of ``v``) moves the next layer's correlation by about ``1e-16`` absolute, at most ``1e-15`` relative to
    ``1 -/+ c`` there (a bias repeated at every layer, so it is kept that small);
    then only the two Mehler sums are needed (half the work, see also :func:`hermite_two_rows`). Otherwise the exact
    gap sums are carried as well. ``A2, B2`` hold the columns' coefficient rows transposed to (k, column)
    (:func:`gather_columns`); the row's own go to their last column. ``work`` holds the per-column state (rows 0-5:
    u = c^2 and the block's sums H, J, P, D, Hb; 6-12: c, |c|, cov, dcov, gap and agap parts, squared distance).
    """
    nj = sv2.shape[0]
    last = A2.shape[1] - 1
    exact = _hermite_prep(ra, M, npar, TA, TB, s, r, A2, B2, last, work, nj)
    W = work[:6]
    for blk in range(npar):
        for jj in range(nj):
            for row in range(1, 6):
                W[row, jj] = 0.0
        pa, pb = block_parities(blk, npar, apar)
        if exact:
            _horner_exact(A2, B2, last, blk * M, M, W, nj, sv1, sv2)
            for jj in range(nj):
                c = work[6, jj]
                cv, g, ag, dd = parity_terms(pa, c, work[7, jj], s[jj] if c >= 0.0 else r[jj], W[1, jj], W[3, jj],
                                             W[2, jj], W[4, jj])  # fmt: skip
                work[8, jj] += cv
                work[9, jj] += parity_dcov(pb, c, W[5, jj])
                work[10, jj] += g
                work[11, jj] += ag
                work[12, jj] += dd
        else:
            _horner_plain(A2, B2, last, blk * M, M, W, nj)
            _plain_terms(pa, pb, work, nj)
    _hermite_finish(exact, sw, sb, sv1, sqn1, ow, ob, sv2, sqn2, s, r, w, th, tl, wl, dl, work, nj)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def hermite_two_rows(
    sw, sb, sv1, sqn1, ra, sv1b, sqn1b, rab, M, npar, apar, ow, ob, sv2, sqn2, TA, TB, s, r, w, th, tl, wl, dl, sB,
    rB, wB, thB, tlB, wlB, dlB, A2, B2, work, workB,
):  # fmt: skip
    """Two rows of :func:`hermite_columns` at once when neither needs the exact gap sums (returns False, having
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
        pa, pb = block_parities(blk, npar, apar)
        _plain_terms(pa, pb, work, nj)
        _plain_terms(pa, pb, workB, nj)
    _hermite_finish(False, sw, sb, sv1, sqn1, ow, ob, sv2, sqn2, s, r, w, th, tl, wl, dl, work, nj)
    _hermite_finish(False, sw, sb, sv1b, sqn1b, ow, ob, sv2, sqn2, sB, rB, wB, thB, tlB, wlB, dlB, workB, nj)
    return True
