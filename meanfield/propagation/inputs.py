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
from ..gaussian.closed import closed_variance
from ..gaussian.hermite import adaptive_coefficients, pack_parity

__all__ = ["check_inputs", "first_layer", "variance_sequences"]


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


def first_layer(X, X2, sw, sb, sym):
    """Layer 1 (Sigma_1 - sigma_b^2, s, r, q_1(X), q_1(X2)): (s, r) from the bias-augmented unit inputs."""
    d = X.shape[1]

    def unit(Z):
        aug = np.hstack([Z * math.sqrt(sw / d), np.full((Z.shape[0], 1), math.sqrt(sb))])
        top = np.max(np.abs(aug), axis=1)  # scale each row exactly by a power of two first: no under/overflow
        if np.any(top == 0):
            i = int(np.flatnonzero(top == 0)[0])
            raise ValueError(f"row {i} of the inputs has zero norm: a zero input has an undefined correlation when "
                             "sigma_b2 = 0; remove it")  # fmt: skip
        aug = np.ldexp(aug, -np.frexp(top)[1][:, None])
        norm = np.sqrt(np.einsum("ij,ij->i", aug, aug))
        q = np.ldexp(norm**2, 2 * np.frexp(top)[1])  # sigma_w^2/d ||x||^2 + sigma_b^2
        bad = ~np.isfinite(q) | (q < np.finfo(np.float64).tiny)
        if np.any(bad):
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"row {i} of the inputs has sigma_w2/d ||x||^2 + sigma_b2 outside the float64 range "
                             "(2.2e-308 to 1.8e308); rescale the inputs")  # fmt: skip
        return aug / norm[:, None], q

    A, q1 = unit(X)
    B, q2 = (A, q1) if sym else unit(X2)
    C = np.clip(A @ B.T, -1.0, 1.0)
    S = 1.0 - C
    R = 1.0 + C
    _refine(A, B, S, R, 0.05, sym)
    W0 = (sw / d) * (X @ X2.T)
    return W0, S, R, q1, q2


@njit(cache=True, error_model="numpy")
def _closed_sequences(kind, slope, sw, sb, Q, V):
    for l in range(Q.shape[0] - 1):
        for i in range(Q.shape[1]):
            V[l, i] = closed_variance(kind, slope, Q[l, i])[0]
            Q[l + 1, i] = sw * V[l, i] + sb


#: the general path refuses variances below the smallest normal float64 (their products and gaps would be
#: subnormal: relative precision lost, then 0/0)
_Q_TINY = float(np.finfo(np.float64).tiny)


def _check_representable(q, layer, act, sw, sb):
    """Refuse a variance that underflowed float64 (the kernels of that layer are not representable)."""
    bad = q < _Q_TINY
    if np.any(bad):
        raise ValueError(
            f"the variance q_l underflows float64 at layer {layer} (q = {float(q[bad].max()):.3g} < {_Q_TINY:.3g}; "
            f"{act.name} at sigma_w2 = {sw:g}, sigma_b2 = {sb:g} shrinks it geometrically): the kernels of that layer "
            "are not representable; use fewer layers, larger inputs, a larger sigma_w2 or sigma_b2 > 0"
        )


def variance_sequences(act, sw, sb, q1, depth):
    """q_l and v_l = E phi(sqrt(q_l) z)^2 for l = 1..L; on the general path also the parity-packed Hermite
    coefficients (:func:`meanfield.gaussian.hermite.pack_parity`) as flat tables (TA, TB) with ``rows[l, i]`` =
    offset of input i's row at layer l, ``order[l]`` = M (coefficients per parity block), ``npar[l]`` and
    ``apar[l]``."""
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
    if depth > 1:
        _check_representable(Q[0], 1, act, sw, sb)
    for l in range(depth - 1):  # Python loop over layers (general path only), never over matrix entries
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
        Q[l + 1] = sw * V[l] + sb
        _check_representable(Q[l + 1], l + 2, act, sw, sb)
    if tables_a:
        TA = np.concatenate(tables_a)
        TB = np.concatenate(tables_b)
    else:
        TA = TB = np.zeros(1)
    return Q, V, rows, order, npar, apar, TA, TB
