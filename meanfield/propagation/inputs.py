"""What the recursion needs from the inputs: validation, layer 1's exact (s, r), and the per-input sequences.

The pairs' work is O(n m L) (:mod:`meanfield.propagation.tiles`); everything here is O((n + m) L) or one matrix
product: the first layer's correlations as ``(s, r) = (1 - c, 1 + c)`` from the bias-augmented unit inputs (half
squared distances where 1 -/+ c is small, so nearly parallel inputs keep full relative precision), and every
input's variance sequence q_l with, on the general path, its Hermite coefficient rows at every layer.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .._checks import finite_array
from .._jit import njit
from ..activations import KIND_HERMITE
from ..gaussian.closed import closed_variance, closed_variance_unit
from ..gaussian.hermite import adaptive_coefficients, pack_parity

__all__ = ["check_inputs", "first_layer", "per_layer", "variance_ratios", "variance_sequences"]


def check_inputs(X, name="X", d=None) -> np.ndarray:
    """Validate a data matrix: 2-D ``(n, d)`` (a 1-D array is refused: one input is ``x[None, :]``), non-empty,
    finite, real (no complex, bool or object dtype), float64, optional column count ``d``."""
    X = finite_array(X, name)
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (n, d) with one input per row, got shape {X.shape}"
            + ("; for one input x pass x[None, :]" if X.ndim == 1 else "")
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n, d), got shape {X.shape}")
    if d is not None and X.shape[1] != d:
        raise ValueError(f"{name} must have d = {d} columns like X, got {X.shape[1]}")
    return np.ascontiguousarray(X)  # one memory layout: the first layer's sums then round the same way


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


def _unit_rows(Z, sw, sb):
    """Rows of ``[Z sqrt(sw/d), sqrt(sb)]`` scaled to unit length, and their squared norms q (layer-1 variances).

    Each row is first scaled exactly by a power of two (its largest entry into [0.5, 1)) before its norm is formed, so
    the unit vectors (hence the layer-1 correlations) are exact for any representable input, however large or small,
    and a tiny row is never mistaken for a zero one. A q outside the normal float64 range is refused: above it the
    NNGP is not representable, below it every kernel of the row has lost its relative precision."""
    d = Z.shape[1]
    aug = np.hstack([Z * math.sqrt(sw / d), np.full((Z.shape[0], 1), math.sqrt(sb))])
    top = np.max(np.abs(aug), axis=1)
    if np.any(top == 0):
        i = int(np.flatnonzero(top == 0)[0])
        raise ValueError(f"row {i} of the inputs has zero norm: a zero input has an undefined correlation when "
                         "sigma_b2 = 0; remove it")  # fmt: skip
    if not np.all(np.isfinite(top)):
        i = int(np.argmin(np.isfinite(top)))
        raise ValueError(f"input {i} times sqrt(sigma_w2 / d) overflows float64; rescale the inputs")
    e = np.frexp(top)[1]
    scaled = np.ldexp(aug, -e[:, None])
    norm = np.sqrt(np.einsum("ij,ij->i", scaled, scaled))
    with np.errstate(over="ignore", under="ignore"):
        q = np.ldexp(norm**2, 2 * e)  # sigma_w^2/d ||x||^2 + sigma_b^2
    if not np.all(np.isfinite(q)):
        i = int(np.argmin(np.isfinite(q)))
        raise ValueError(
            f"the layer-1 variance sigma_w2 ||x||^2 / d + sigma_b2 of input {i} overflows float64 "
            f"(||x|| = {np.ldexp(norm[i], e[i]) / math.sqrt(sw / d):.3g}); rescale the inputs"
        )
    if np.any(q < np.finfo(np.float64).tiny):
        i = int(np.flatnonzero(q < np.finfo(np.float64).tiny)[0])
        raise ValueError(f"row {i} of the inputs has sigma_w2/d ||x||^2 + sigma_b2 outside the float64 range (it "
                         "underflows below 2.2e-308); rescale the inputs")  # fmt: skip
    return scaled / norm[:, None], q


def first_layer(X, X2, sw, sb, sym):
    """Layer 1 (Sigma_1 - sigma_b^2, s, r, q_1(X), q_1(X2)): (s, r) from the bias-augmented unit inputs."""
    d = X.shape[1]
    A, q1 = _unit_rows(X, sw, sb)
    B, q2 = (A, q1) if sym else _unit_rows(X2, sw, sb)
    C = np.clip(A @ B.T, -1.0, 1.0)
    S = 1.0 - C
    R = 1.0 + C
    _refine(A, B, S, R, 0.05, sym)
    with np.errstate(over="ignore", under="ignore"):
        W0 = (sw / d) * (X @ X2.T)
        if not np.all(np.isfinite(W0)):  # x . x' overflows although sigma_w2 x . x' / d may not: scale first
            f = math.sqrt(sw / d)
            W0 = (X * f) @ (X2 * f).T
    if not np.all(np.isfinite(W0)):
        raise ValueError("the layer-1 kernel sigma_w2 x . x' / d overflows float64; rescale the inputs")
    return W0, S, R, q1, q2


def tangent_factors(net, d, sw, sb):
    """The factors ``(omega_w, omega_b)`` of each layer's parameters in the tangent kernel, arrays over the layers:
    NTK parameterization ``(1, sigma_b^2)``, standard ``(N_{l-1} / sigma_w^2, 1)`` (the fan-ins ``N_0 = d, N_1,
    ...``; a finite width is required). ``sw``, ``sb``: the variances of every layer (:func:`per_layer`)."""
    depth = sw.size
    if net.parameterization == "standard":
        if net.width is None:
            raise ValueError('parameterization="standard" needs a finite width (Network(width=...)): '
                             "the SP tangent kernel grows with the width")  # fmt: skip
        return np.array(net.fan_ins(d), dtype=np.float64) / sw, np.ones(depth)
    return np.ones(depth), sb.copy()


def per_layer(x, depth):
    """A variance (float) or schedule (sequence of ``depth`` floats) as a float64 array of length ``depth``."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(x, dtype=np.float64), (depth,)))


def _refuse_overflow(Q, sw, sb):
    """ValueError naming the first layer whose variance q_l = Sigma_l(x, x) overflows float64, if any."""
    bad = ~np.isfinite(Q)
    if bad.any():
        l = int(np.argmax(bad.any(axis=1)))
        prev = np.max(Q[l - 1]) if l > 0 else math.inf
        raise ValueError(
            f"the variance Sigma_l(x, x) overflows float64 at layer l = {l + 1} (max q_{l} = {prev:.3g} with "
            f"sigma_w2 = {sw[l]:g}, sigma_b2 = {sb[l]:g}): the NNGP itself is not representable; use a smaller "
            "input norm, a smaller sigma_w2 or a shallower network"
        )


@njit(cache=True, error_model="numpy")
def _closed_sequences(kind, slope, sw, sb, Q, V):
    for l in range(Q.shape[0] - 1):
        for i in range(Q.shape[1]):
            V[l, i] = closed_variance(kind, slope, Q[l, i])[0]
            Q[l + 1, i] = sw[l + 1] * V[l, i] + sb[l + 1]


#: the general path refuses variances below the smallest normal float64 (their products and gaps would be
#: subnormal: relative precision lost, then 0/0)
_Q_TINY = float(np.finfo(np.float64).tiny)


def _check_representable(q, layer, act, sw, sb):
    """Refuse a variance that underflowed float64 (the kernels of that layer are not representable); ``sw``, ``sb``
    are the variances of that layer."""
    bad = q < _Q_TINY
    if np.any(bad):
        raise ValueError(
            f"the variance q_l underflows float64 at layer {layer} (q = {float(q[bad].max()):.3g} < {_Q_TINY:.3g}; "
            f"{act.name} at sigma_w2 = {sw:g}, sigma_b2 = {sb:g} shrinks it geometrically): the kernels of that layer "
            "are not representable; use fewer layers, larger inputs, a larger sigma_w2 or sigma_b2 > 0"
        )


@njit(cache=True, error_model="numpy")
def _ratios(kind, slope, sw_l, sb_l, Q, T):
    for l in range(Q.shape[0] - 1):
        sw = sw_l[l + 1]
        sb = sb_l[l + 1]
        for i in range(Q.shape[1]):
            q = Q[l, i]
            u = closed_variance_unit(kind, slope, q)[0]
            T[1, l, i] = math.sqrt(u)
            if sb > 0.0:
                T[0, l, i] = 1.0 / math.sqrt(1.0 + sb / q / (sw * u))  # q = 0 (underflowed): 0
            else:
                T[0, l, i] = 1.0


def variance_ratios(act, sw, sb, Q):
    """Per-input ratios of the closed forms, shape (2, depth, n): ``T[0, l, i] = sqrt(sigma_w^2 v_l / q_{l+1})``
    and ``T[1, l, i] = sqrt(v_l / q_l)`` with v_l = E phi(sqrt(q_l) z)^2, from v/q in closed form
    (:func:`meanfield.gaussian.closed.closed_variance_unit`): finite when q under- or overflows, and T[0] exactly
    1 without bias; ``sigma_w^2``, ``sigma_b^2`` of layer l + 1 (``sw``, ``sb``: arrays over the layers,
    :func:`per_layer`). The last layer is unused."""
    T = np.zeros((2,) + Q.shape)
    _ratios(act.kind, float(act.slope), sw, sb, Q, T)
    return T


def variance_sequences(act, sw, sb, q1, depth):
    """q_l and v_l = E phi(sqrt(q_l) z)^2 for l = 1..L; on the general path also the parity-packed Hermite
    coefficients (:func:`meanfield.gaussian.hermite.pack_parity`) as flat tables (TA, TB) with ``rows[l, i]`` =
    offset of input i's row at layer l, ``order[l]`` = M (coefficients per parity block), ``npar[l]`` and
    ``apar[l]``. ``sw``, ``sb``: the variances of every layer as arrays (:func:`per_layer`)."""
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
        with np.errstate(over="ignore"):
            _closed_sequences(act.kind, float(act.slope), sw, sb, Q, V)
        depth = 0  # no Hermite tables
    offset = 0
    prev = None
    if depth > 1:
        _check_representable(Q[0], 1, act, sw[0], sb[0])
    for l in range(depth - 1):  # Python loop over layers (general path only), never over matrix entries
        if not np.all(np.isfinite(Q[l])):
            _refuse_overflow(Q[: l + 1], sw, sb)
        uq, inv = np.unique(Q[l], return_inverse=True)
        inv = inv.reshape(-1)
        if prev is not None and np.array_equal(uq, prev[0]):  # variances at their fixed point: reuse the rows
            _, a, base, M, npl, apl = prev
        else:
            a, b = adaptive_coefficients(act, uq)
            a, b, M, npl, apl = pack_parity(a, b)
            tables_a.append(a.ravel())
            tables_b.append(b.ravel())
            base = offset
            offset += a.size
            prev = (uq, a, base, M, npl, apl)
        # flat tables, each layer with its own order (no padding to the largest)
        rows[l] = base + inv * a.shape[1]
        order[l], npar[l], apar[l] = M, npl, apl
        V[l] = np.einsum("ij,ij->i", a, a)[inv]
        Q[l + 1] = sw[l + 1] * V[l] + sb[l + 1]
        _check_representable(Q[l + 1], l + 2, act, sw[l + 1], sb[l + 1])
        if (
            np.array_equal(Q[l + 1], Q[l]) and np.all(sw[l + 1 :] == sw[l + 1]) and np.all(sb[l + 1 :] == sb[l + 1])
        ):  # every variance at its fixed point to the last bit, the schedule constant: the rest repeats layer l
            rows[l + 1 : depth - 1] = rows[l]
            order[l + 1 : depth - 1], npar[l + 1 : depth - 1], apar[l + 1 : depth - 1] = M, npl, apl
            V[l + 1 : depth - 1] = V[l]
            Q[l + 2 :] = Q[l + 1]
            break
    _refuse_overflow(Q, sw, sb)
    if tables_a:
        TA = np.concatenate(tables_a)
        TB = np.concatenate(tables_b)
    else:
        TA = TB = np.zeros(1)
    return Q, V, rows, order, npar, apar, TA, TB
