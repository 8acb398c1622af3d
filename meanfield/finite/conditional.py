"""The exact conditional sampler: every kernel of a finite random network without forming its weight matrices.

For ``n`` inputs, a layer's weights only ever act on the ``n``-dimensional span of its inputs on the forward pass,
so the ``N_l x N_{l-1}`` Gaussian weight matrix can be split into its action on that span (drawn forward) and an
independent Gaussian on the complement (drawn on the backward pass, where only ``W^T delta`` is needed). This
samples the exact joint law of the forward kernels, the backward kernels, the per-layer tangent kernels and the
outputs of the finite network with about ``2 n N`` normals per layer instead of ``N^2`` and ``O(N n^2)`` work
instead of ``O(N^2 n)``.

The construction (derived here; the one-input case is the projection sampler of
:func:`meanfield.dispersion.sample_ntk_diagonal`, which this generalises to ``n`` inputs, biases, both
parameterizations, per-layer variances and every activation). Write layer ``l`` with its bias as one matrix: with
``A = h_{l-1}`` (``n x N_{l-1}``, row ``i`` the input ``i``),

    z_l = A W~_l^T + 1 b~_l^T = A~ V^T,    A~ = [sqrt(sigma_w,l^2 / N_{l-1}) A, sigma_b,l 1]   (n x M),

where ``W~_l = m_w W_l`` and ``b~_l = m_b b_l`` are the effective parameters (the same law in NTP and SP) and
``V`` is ``N_l x M`` with i.i.d. ``N(0, 1)`` entries, ``M = N_{l-1} + 1`` (``N_{l-1}`` without biases or with
``sigma_b,l = 0``). Take a thin QR decomposition ``A~^T = Q R`` (Householder: ``Q`` is ``M x r`` with orthonormal
columns, ``r = min(n, M)``, whatever the rank of ``A~``) and split ``V = (V Q) Q^T + V P``, ``P = I - Q Q^T``:

* forward: ``z_l^T = (V Q) R`` and ``G = V Q`` is ``N_l x r`` i.i.d. ``N(0, 1)`` because ``Q`` has orthonormal
  columns, so ``z_l`` is drawn exactly with ``r N_l`` normals. Every unit's pre-activations are
  ``N(0, A~ A~^T) = N(0, F_l)``, the finite-width forward kernel.
* backward: ``delta_l V = (delta_l G) Q^T + delta_l V P``. ``V P`` is independent of ``G``, and nothing else of the
  forward or backward pass depends on it (``z_l`` depends on ``V`` only through ``G``; ``delta_l`` on ``z_l`` and the
  later layers), so conditionally on everything else ``delta_l V P`` has the law of ``E P`` with
  ``E = R_d^T Xi``, ``Xi`` an ``r' x M`` matrix of fresh normals and ``delta_l^T = Q_d R_d`` a QR decomposition
  (``E`` then has the row covariance ``delta_l delta_l^T``, ``r' = min(n, N_l)``). Hence, exactly in law,

      delta_l V = (delta_l G - E Q) Q^T + E,    delta_{l-1} = phi'(z_{l-1}) * sqrt(sigma_w,l^2 / N_{l-1}) [delta_l V]_w,

  where ``[.]_w`` drops the bias column: ``r' M`` more normals.

The options of :mod:`meanfield.network` change nothing in this split, which only concerns the Gaussian weights:
residual layers add ``z_{l-1}`` to ``z_l`` and scale the branch ``A~`` by ``beta`` (backward: ``delta_{l-1}`` adds
``delta_l``), LayerNorm and dropout act on the pre-/post-activations and enter the backward pass through the
LayerNorm Jacobian and the masks; each network draws its dropout masks from the child ``(i, 0)`` of its seed
sequence, as the weight-drawing sampler does. The kernels then follow the same conventions: ``F_l`` adds
``z_{l-1}.z'_{l-1}/N_{l-1}`` on residual layers and the branch part gets ``beta^2``, ``B_l`` is the kernel of
``df/dz_l`` (the residual stream) and ``K_l = beta^2 (omega_W G_l + omega_b) B_l``.

Numerics. The identities hold for any ``R`` with ``R^T R = A~ A~^T`` and any orthonormal ``Q`` whose span contains
the rows of ``A~``. Where the layer's Gram ``A~ A~^T`` (which the kernels need anyway) is well conditioned, ``R`` is
its Cholesky factor and ``Q = A~^T R^{-1}`` is applied without being formed (``E Q = (E A~^T) R^{-1}``,
``Y Q^T = (Y R^{-T}) A~``): Cholesky QR, whose loss of orthogonality ``O(eps cond(A~)^2)`` (Golub & Van Loan 2013,
sec. 5.3.2) is kept below ~1e-9 by taking it only when every pivot is at least ``1e-6`` of its diagonal entry
(every row of ``A~`` at an angle with ``sin^2 >= 1e-6`` to the span of the rows before it). Elsewhere ``Q`` and ``R``
come from a Householder QR of ``A~^T``, which is orthonormal to rounding whatever the rank, so rank deficiency
needs no pseudo-inverse (duplicate or nearly parallel inputs, ``n > N_{l-1}``, ReLU units that are zero on every
input). The choice is made per network from its own Gram, so results do not depend on the batch. ``E`` only needs
``R_d^T R_d = delta_l delta_l^T``, which QR gives for a singular ``delta_l`` too. The kernels are then the same
per-network formulas as the weight-drawing sampler (:func:`meanfield.simulate` with ``method="weights"``):
``F_l = sigma_w,l^2/N_{l-1} h_{l-1}.h'_{l-1} + sigma_b,l^2``, ``B_l = delta_l.delta'_l`` and
``K_l = (omega_W G_l + omega_b) B_l`` (Lou et al. 2022, eq. (9)).

Randomness: network ``i`` of a seed draws all its normals from its own stream ``Generator(SFC64(SeedSequence(seed,
spawn_key=(i,))))`` (:func:`meanfield.finite.streams.generator`) in a fixed order (forward normals of layers
``1..L``, then backward normals of layers ``L..2``), so results are reproducible per seed and bit-identical for
every batch size. The weight-drawing sampler uses the same streams for the weights themselves, so the two samplers
agree in distribution, not network by network.

Cost per network: ``sum_l (r_l N_l + r'_l M_l) ~ 2 n sum_l N_l`` normals and ``O(n^2 sum_l N_l)`` flops (``n x n``
Cholesky factors, or QR decompositions of ``M x n`` matrices, and ``n x N x r`` products), against
``sum_l N_l N_{l-1}`` normals and ``4 n sum_l N_l N_{l-1}`` flops for drawing the weights (:func:`default_method`
picks the cheaper one). The large arrays of a pass are slices of one per-thread buffer reused by the next pass
(:func:`release_workspace`), which at width 512 saved the third of the time fresh arrays spent in page faults.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from .._checks import check_bool, check_network, finite_array
from .._jit import njit
from ..activations import KIND_LEAKY
from ..network import Network
from .blocks import draw_masks, layer_norm, layer_norm_vjp, mask_sequence, skips
from .mlp import SUPPORTS as WEIGHTS_SUPPORTS
from .mlp import gram
from .streams import generator

__all__ = ["SUPPORTS", "ConditionalPass", "conditional_pass", "default_method", "normal_counts", "release_workspace"]

#: options beyond the plain MLP the conditional sampler implements (``Network.features`` names)
SUPPORTS = ("schedule", "residual", "normalization", "dropout")

#: seconds per normal, per flop of the weight sampler's matmuls and per flop of the conditional sampler's small
#: QR / matmul work, the cost model of :func:`default_method` (fitted to CPU times on one core, one BLAS thread,
#: widths 64-1024 and n = 8-256; only their ratios matter)
_NORMAL_COST = 1.0e-8
_FLOP_COST = 4.0e-11
_SMALL_FLOP_COST = 1.0e-10
#: smallest Cholesky pivot of a layer's Gram ``F = A~ A~^T``, relative to its diagonal entry, for which the
#: forward pass uses the Cholesky factor instead of a Householder QR (:func:`_basis`)
_BASIS_TOL = 1.0e-6
#: fixed cost of one layer of one stack in numpy calls (seconds), amortised over a stack of networks
_LAYER_OVERHEAD = 2.0e-4


def _dims(net: Network, d: int, n: int, bias: bool):
    """Per layer ``l = 1..L``: fan-in ``N_{l-1}``, width ``N_l``, ``M_l`` (fan-in plus a bias column when the
    layer has a random bias), ``r_l = min(n, M_l)`` and ``r'_l = min(n, N_l)``."""
    fan = net.fan_ins(d)
    outs = net.width + (1,)
    sb2 = net.bias_variances
    M = tuple(f + (1 if bias and sb2[l] > 0 else 0) for l, f in enumerate(fan))
    r = tuple(min(n, m) for m in M)
    rd = tuple(min(n, o) for o in outs)
    return fan, outs, M, r, rd


def normal_counts(net: Network, d: int, n: int, bias: bool = True) -> tuple[int, int]:
    """Numbers of normals one network draws: ``(forward, backward) = (sum_l r_l N_l, sum_{l >= 2} r'_l M_l)``.

    >>> from meanfield import Network
    >>> normal_counts(Network(3, "relu", width=100), d=10, n=4)
    (804, 500)
    """
    fan, outs, M, r, rd = _dims(net, d, n, bias)
    L = net.depth
    return sum(r[l] * outs[l] for l in range(L)), sum(rd[l] * M[l] for l in range(1, L))


def _costs(net: Network, d: int, n: int, bias: bool, batch: int) -> tuple[float, float]:
    """Modelled seconds per network of the weight-drawing and of the conditional sampler (see
    :func:`default_method`)."""
    fan, outs, M, r, rd = _dims(net, d, n, bias)
    params = sum(o * f for o, f in zip(outs, fan, strict=True))
    weights = params * (_NORMAL_COST + 4.0 * n * _FLOP_COST)
    fw, bw = normal_counts(net, d, n, bias)
    flops = sum(6.0 * n * n * (M[l] + outs[l]) for l in range(net.depth))
    conditional = (fw + bw) * _NORMAL_COST + flops * _SMALL_FLOP_COST + net.depth * _LAYER_OVERHEAD / max(batch, 1)
    return weights, conditional


def default_method(net: Network, d: int, n: int, bias: bool = True, batch: int = 64) -> str:
    """The faster sampler for ``n`` inputs of dimension ``d``: ``"conditional"`` or ``"weights"``.

    The rule compares modelled costs per network: drawing the weights costs ``sum_l N_l N_{l-1}`` normals (10 ns
    each) and ``4 n sum_l N_l N_{l-1}`` flops (0.04 ns each: large BLAS matmuls, one thread); the conditional
    sampler ``sum_l (r_l N_l + r'_l M_l)`` normals, ``6 n^2 sum_l (M_l + N_l)`` flops (0.1 ns each: thin QR and
    matmuls with an inner dimension ``n``) and about 0.2 ms of numpy calls per layer and stack of ``batch``
    networks. Fitted to CPU times at widths 64-1024 and ``n = 8-256``: it picked the faster sampler at 14 of 16
    measured points; of the other two, one was a tie (3 %) and one a miss (width 1024, depth 3, ``n = 128``:
    53 ms conditional against 41 ms weights). The conditional sampler wins while ``n`` is below about a sixth of
    the widths (at (512, 10, 8) by ~27x, at (2048, 20, 16) by ~55x, measured after the constants were fitted, when
    the conditional pass became ~1.6x faster: the rule now errs towards the weights near the crossover), the
    weights beyond. Networks using an option only one sampler implements go to that one. The choice depends only
    on the network, ``d``, ``n`` and ``bias`` (never on the batch size of a run), so a run's results do not depend
    on ``batch_size``.

    >>> from meanfield import Network
    >>> default_method(Network(10, "relu", width=512), d=512, n=8)
    'conditional'
    >>> default_method(Network(3, "relu", width=16), d=16, n=64)
    'weights'
    """
    if any(f not in SUPPORTS for f in net.features):
        return "weights"
    if any(f not in WEIGHTS_SUPPORTS for f in net.features):  # options only the conditional sampler implements
        return "conditional"
    weights, conditional = _costs(net, d, n, bias, batch)
    return "conditional" if conditional < weights else "weights"


@njit(cache=True, nogil=True)
def _dot(a, b, start):
    """``sum_{i >= start} a[i] b[i]`` with four partial sums (a fixed order; no latency-bound chain)."""
    m = a.shape[0]
    t0 = t1 = t2 = t3 = 0.0
    i = start
    while i + 3 < m:
        t0 += a[i] * b[i]
        t1 += a[i + 1] * b[i + 1]
        t2 += a[i + 2] * b[i + 2]
        t3 += a[i + 3] * b[i + 3]
        i += 4
    while i < m:
        t0 += a[i] * b[i]
        i += 1
    return (t0 + t1) + (t2 + t3)


@njit(cache=True, nogil=True)
def _householder_stack(W, Qt, R, want_q):
    """Thin Householder QR of ``W[k]^T`` for every matrix of a stack: ``W[k]^T = Qt[k]^T R[k]``.

    ``W`` is ``(S, n, M)`` (overwritten by the reflectors), ``Qt`` ``(S, r, M)`` (rows orthonormal; filled only
    when ``want_q``), ``R`` ``(S, r, n)`` upper triangular, ``r = min(n, M)``. A column of ``W^T`` already in the
    span of the previous ones gets ``R[k, k] = 0`` and the identity reflector, so ``Qt`` has orthonormal rows
    whatever the rank (Golub & Van Loan 2013, Alg. 5.2.1, with the thin ``Q`` accumulated backwards as in their
    sec. 5.1.6). Per matrix ``4 M n^2`` flops, in a fixed order (the result does not depend on the stack).
    """
    S, n, M = W.shape
    r = min(n, M)
    beta = np.empty(r)
    for s in range(S):
        A = W[s]
        for k in range(r):
            x0 = A[k, k]
            tail = _dot(A[k], A[k], k + 1)
            nrm = math.sqrt(tail + x0 * x0)
            alpha = -nrm if x0 >= 0.0 else nrm
            v0 = x0 - alpha
            vn2 = tail + v0 * v0
            A[k, k] = v0
            b = 2.0 / vn2 if vn2 > 0.0 else 0.0
            beta[k] = b
            for j in range(k + 1, n):
                t = _dot(A[k], A[j], k) * b
                for i in range(k, M):
                    A[j, i] -= t * A[k, i]
            R[s, k, k] = alpha
            for j in range(k + 1, n):
                R[s, k, j] = A[j, k]
            for j in range(k):
                R[s, k, j] = 0.0
        if want_q:
            Q = Qt[s]
            Q[:, :] = 0.0
            for k in range(r):
                Q[k, k] = 1.0
            for k in range(r - 1, -1, -1):
                b = beta[k]
                if b == 0.0:
                    continue
                for c in range(k, r):
                    t = _dot(A[k], Q[c], k) * b
                    for i in range(k, M):
                        Q[c, i] -= t * A[k, i]


@njit(cache=True, nogil=True)
def _cholesky_stack(B, R, ok, tol):
    """Upper Cholesky factors ``R[k]^T R[k] = B[k]`` (``n^3 / 3`` flops each); ``ok[k] = False`` when a pivot is
    not above ``tol`` times its diagonal entry (a numerically singular ``B[k]``: the caller falls back to QR).
    Cholesky is backward stable (``R^T R = B + O(n eps |B|)``) whenever it does not break down."""
    S, n, _ = B.shape
    for s in range(S):
        ok[s] = True
        A = B[s]
        U = R[s]
        U[:, :] = 0.0
        for k in range(n):
            d = A[k, k]
            for i in range(k):
                d -= U[i, k] * U[i, k]
            if not (d > tol * A[k, k] and d > 0.0):
                ok[s] = False
                break
            rk = math.sqrt(d)
            U[k, k] = rk
            for j in range(k + 1, n):
                t = A[k, j]
                for i in range(k):
                    t -= U[i, k] * U[i, j]
                U[k, j] = t / rk


@njit(cache=True, nogil=True)
def _cholesky_inverse_stack(B, R, Rinv, ok, tol):
    """:func:`_cholesky_stack` with the inverse factors: ``R[k]^T R[k] = B[k]`` and ``Rinv[k] = R[k]^{-1}`` (upper
    triangular, back substitution, ``n^3 / 3`` flops), where ``ok[k]``; rows of a failed factor are left as they
    are (the caller replaces them)."""
    _cholesky_stack(B, R, ok, tol)
    S, n, _ = B.shape
    for s in range(S):
        if not ok[s]:
            continue
        U = R[s]
        V = Rinv[s]
        V[:, :] = 0.0
        for j in range(n):
            V[j, j] = 1.0 / U[j, j]
            for i in range(j - 1, -1, -1):
                t = 0.0
                for k in range(i + 1, j + 1):
                    t += U[i, k] * V[k, j]
                V[i, j] = -t / U[i, i]


def _basis(At, F):
    """The forward factorisation of a layer for a stack ``At`` (``(S, n, M)``, the rows of ``A~``) with Gram
    ``F = A~ A~^T`` (``(S, n, n)``): ``(R, K, Kinv)`` with ``R^T R = F`` (``(S, r, n)``, upper) and ``Q^T = Kinv^T K``
    an orthonormal basis of the row span of ``A~`` (``Q`` as in the module docstring; ``Kinv`` None stands for the
    identity).

    Where the Cholesky factor of ``F`` is well conditioned (every pivot above :data:`_BASIS_TOL` times its diagonal
    entry, i.e. every row of ``A~`` has ``sin^2 >= 1e-6`` of its angle to the span of the rows before it) ``R`` is
    that factor, ``K = A~`` and ``Kinv = R^{-1}`` (``Q = A~^T R^{-1}`` is never formed: the backward pass applies it
    as ``(E A~^T) R^{-1}`` and ``(Y R^{-T}) A~``; its loss of orthogonality is ``O(eps cond(A~)^2) <= ~1e-9``).
    Elsewhere (near-duplicate or duplicate inputs, ``n > M``, units that are zero on every input) ``R`` and
    ``K = Q^T`` come from the Householder QR of ``A~^T`` (orthonormal to rounding whatever the rank) and
    ``Kinv = I``. Each network's branch depends on its own ``F`` only, so results do not depend on the stack."""
    S, n, M = At.shape
    if M < n:
        Qt, R = _qr(At, overwrite=True)
        return R, Qt, None
    R, Kinv, ok = np.empty((S, n, n)), np.empty((S, n, n)), np.empty(S, dtype=np.bool_)
    _cholesky_inverse_stack(np.ascontiguousarray(F), R, Kinv, ok, _BASIS_TOL)
    K = At
    bad = np.flatnonzero(~ok)
    if bad.size:
        Qt, Rq = _qr(At[bad])
        K[bad], R[bad], Kinv[bad] = Qt, Rq, np.eye(n)
    return R, K, Kinv


def _gram_root(delta, B):
    """Upper ``R`` (``(S, r', n)``, ``r' = min(n, N)``) with ``R^T R = B = delta delta^T`` for a stack ``delta``
    ``(S, n, N)``: the Cholesky factor of ``B``, or, where it breaks down (``B`` singular: ``n > N``, an input
    whose backward vector vanishes), the ``R`` of a Householder QR of ``delta^T``."""
    S, n, N = delta.shape
    if N < n:
        return _qr(delta, want_q=False)[1]
    R, ok = np.empty((S, n, n)), np.empty(S, dtype=np.bool_)
    _cholesky_stack(B, R, ok, 64 * np.finfo(np.float64).eps)
    bad = np.flatnonzero(~ok)
    if bad.size:
        R[bad] = _qr(delta[bad], want_q=False)[1]
    return R


def _qr(W, want_q=True, overwrite=False):
    """``(Qt, R)`` with ``Qt^T R = W^T`` for a stack ``W`` ``(S, n, M)``: ``Qt`` ``(S, r, M)`` with orthonormal
    rows (None unless ``want_q``) and ``R`` ``(S, r, n)``, ``r = min(n, M)`` (:func:`_householder_stack`; measured
    faster than ``numpy.linalg.qr`` and than CholeskyQR2 for these tall, thin matrices)."""
    S, n, M = W.shape
    r = min(n, M)
    Qt = np.empty((S, r if want_q else 0, M))
    R = np.empty((S, r, n))
    if not (overwrite and W.flags.c_contiguous and W.flags.writeable):
        W = np.array(W, dtype=np.float64, order="C")  # a copy: the kernel overwrites it
    _householder_stack(W, Qt, R, want_q)
    return (Qt if want_q else None), R


def _activation(act):
    """``(fn, derivative)`` of ``act``; the ReLU family gets branch-free forms (``np.where`` on a random sign
    pattern costs ~20-100 ns per entry; ``max(u, 0) + a min(u, 0)`` is the same value)."""
    if act.kind != KIND_LEAKY:
        return act.fn, act.derivative
    a = float(act.slope)
    if a == 0.0:
        return (lambda u: np.maximum(u, 0.0)), (lambda u: (u > 0.0).astype(np.float64))

    def fn(u):
        return np.maximum(u, 0.0) + a * np.minimum(u, 0.0)

    def derivative(u):
        d = (u > 0.0).astype(np.float64)
        d *= 1.0 - a
        d += a
        return d

    return fn, derivative


@dataclass(frozen=True)
class ConditionalPass:
    """One conditional forward/backward pass over a stack of ``S`` networks (the result of
    :func:`conditional_pass`).

    Attributes
    ----------
    outputs : ndarray, shape (S, n)
        The network outputs ``f(X) = z_L``.
    grams : tuple of ndarray
        ``G_l = h_{l-1}.h'_{l-1}`` for ``l = 1..L`` (index ``l - 1``), each ``(S, n, n)`` (``G_1 = X X^T``
        broadcast over the stack).
    skips : tuple of ndarray or None
        Residual networks: ``z_{l-1}.z'_{l-1}`` for every layer ``l`` that adds its input (None elsewhere); None
        for a network without residual blocks.
    backward : tuple of ndarray or None
        ``B_l = delta_l.delta'_l`` for ``l = 1..L``, each ``(S, n, n)`` (``B_L = 1``); None when the pass was
        forward only.
    """

    outputs: np.ndarray
    grams: tuple
    backward: tuple | None
    skips: tuple | None = None


def conditional_pass(X, net: Network, seeds, bias: bool = True, backward: bool = True) -> ConditionalPass:
    """Forward and backward pass of a stack of random networks by the exact conditional construction.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs.
    net : Network
        Finite widths, any activation, either parameterization (the pass does not depend on it; only the tangent
        kernel weights do), and every option of the spec: per-layer variances, residual blocks, LayerNorm and
        dropout (:data:`SUPPORTS`).
    seeds : sequence of numpy.random.SeedSequence
        One per network: network ``k`` draws every normal from ``generator(seeds[k])``.
    bias : bool
        Whether every layer has a bias (variance ``sigma_b,l^2``).
    backward : bool
        Also run the backward pass (the backward normals are drawn after all forward ones, so the forward pass
        of a network is the same either way).

    Returns
    -------
    ConditionalPass

    Notes
    -----
    The construction and its exactness are in the module docstring: per layer a thin QR of the ``M x n`` matrix
    ``A~^T``, ``r N_l`` forward normals and (backward) a QR of ``delta_l^T`` and ``r' M`` normals; no ``N x N``
    matrix is formed. Cost ``O(n^2 sum_l N_l)`` flops and about ``2 n sum_l N_l`` normals per network.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import Network
    >>> from meanfield.finite.streams import seed_sequences
    >>> X = np.array([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0]])  # a duplicate input: rank-deficient A
    >>> p = conditional_pass(X, Network(3, "relu", width=64), seed_sequences(0, 5))
    >>> p.outputs.shape, len(p.grams), p.backward[0].shape
    ((5, 3), 3, (5, 3, 3))
    >>> bool(np.allclose(p.outputs[:, 0], p.outputs[:, 2]) and np.allclose(p.backward[-1], 1.0))
    True
    """
    check_network(net, supports=SUPPORTS, what="the conditional sampler")
    if net.width is None:
        raise ValueError("net.width is None: the conditional sampler needs finite networks, e.g. width=512")
    X = finite_array(X, "X")
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a non-empty 2-D array (n, d), got shape {X.shape}")
    bias, backward = check_bool(bias, "bias"), check_bool(backward, "backward")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one numpy.random.SeedSequence (one per network)")
    return _conditional_pass(X, net, seeds, bias, backward)


class _Arena:
    """Slices of one float64 buffer for the large arrays of a pass (:func:`_workspace`); ``take`` falls back to a
    fresh array when the buffer is full."""

    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, shape):
        size = math.prod(shape)
        if self.pos + size > self.buf.size:
            return np.empty(shape)
        out = self.buf[self.pos : self.pos + size].reshape(shape)
        self.pos += size
        return out


_LOCAL = threading.local()


def _workspace(size: int) -> _Arena | None:
    """A per-thread buffer of at least ``size`` float64 for one pass, reused by the next pass of the same thread
    (None while the thread's buffer is in use: a nested pass allocates its own arrays).

    Why: a pass over a stack touches about ``1.5`` MB per network at width 512 in arrays of a few MB; fresh
    arrays come from new, zero-filled pages every time (the allocator returns large blocks to the system), and at
    (width 512, depth 10, n = 8) the page faults took a third of the time. The buffer is kept until
    :func:`release_workspace` (``simulate`` calls it when a run ends) or the thread ends."""
    if getattr(_LOCAL, "busy", False):
        return None
    buf = getattr(_LOCAL, "buf", None)
    if buf is None or buf.size < size:
        _LOCAL.buf = buf = None  # free the old one first
        _LOCAL.buf = buf = np.empty(size)
    return _Arena(buf)


def release_workspace() -> None:
    """Free this thread's buffer of :func:`_workspace` (other threads' buffers go with their threads)."""
    _LOCAL.buf = None


def _pass_size(S, n, fan, outs, M, total, backward):
    """float64 numbers :func:`_conditional_pass` takes from its workspace."""
    L = len(fan)
    size = S * total + sum(S * n * (m + o) for m, o in zip(M[1:], outs[1:], strict=True)) + S * n * outs[0]
    size += 2 * S * n * max(outs[:-1], default=1)  # post-activations, ping-pong
    if backward:
        size += 2 * S * n * max(M) + 2 * S * n * max(fan[1:], default=1)
    return size + 4 * L


@njit(cache=True, nogil=True)
def _leaky_vjp(DV, scale, z, slope, out):
    """``out = phi'(z) * scale * DV[..., :N]`` for ``phi(u) = max(u, 0) + slope min(u, 0)`` (one pass, no
    temporaries)."""
    S, n, N = out.shape
    for s in range(S):
        for i in range(n):
            dv = DV[s, i]
            zz = z[s, i]
            o = out[s, i]
            for j in range(N):
                v = dv[j] * scale
                o[j] = v if zz[j] > 0.0 else slope * v


def _conditional_pass(X, net: Network, seeds, bias: bool, backward: bool) -> ConditionalPass:
    """:func:`conditional_pass` without validation (the Monte Carlo task calls this)."""
    n, d = X.shape
    S = len(seeds)
    fan, outs, M, _, _ = _dims(net, d, n, bias)
    n_fw, n_bw = normal_counts(net, d, n, bias)
    total = n_fw + (n_bw if backward else 0)
    arena = _workspace(_pass_size(S, n, fan, outs, M, total, backward))
    if arena is None:
        return _run_pass(X, net, seeds, bias, backward, _Arena(np.empty(0)))
    _LOCAL.busy = True
    try:
        return _run_pass(X, net, seeds, bias, backward, arena)
    finally:
        _LOCAL.busy = False


def _run_pass(X, net: Network, seeds, bias: bool, backward: bool, arena: _Arena) -> ConditionalPass:
    """The pass; every large array is a slice of ``arena`` (nothing returned is)."""
    n, d = X.shape
    L, S = net.depth, len(seeds)
    act = net.activation
    fn, derivative = _activation(act)
    leaky = act.kind == KIND_LEAKY
    fan, outs, M, r, rd = _dims(net, d, n, bias)
    sw2, sb2 = net.weight_variances, net.bias_variances
    n_fw, n_bw = normal_counts(net, d, n, bias)
    total = n_fw + (n_bw if backward else 0)
    buf = arena.take((S, total))
    for k, seq in enumerate(seeds):  # network k: its own stream, forward normals first
        generator(seq).standard_normal(out=buf[k])

    skip = skips(net)
    beta = np.where(skip, net.residual if net.residual is not None else 1.0, 1.0)
    norm = net.normalization == "layer"
    masks = draw_masks([mask_sequence(q) for q in seeds], n, net.width, net.dropout) if net.dropout else None
    hbufs = [arena.take((S, n, max(outs[:-1], default=1))) for _ in range(2)]
    pos = 0
    h = X
    zs, Qs, Gts, grams, lns = [], [], [], [], []
    for l in range(L):
        G = gram(h)
        grams.append(G)
        c = beta[l] * np.sqrt(sw2[l] / fan[l])
        F = (c * c) * G
        if l == 0:
            At = np.empty((1, n, M[0]))
        else:
            At = arena.take((S, n, M[l]))
        np.multiply(h, c, out=At[..., : fan[l]])
        if M[l] > fan[l]:  # the bias column
            At[..., fan[l]] = beta[l] * np.sqrt(sb2[l])
            F = F + beta[l] ** 2 * sb2[l]
        if F.ndim == 2:
            F = F[None]
        R, Qt, Kinv = _basis(At, F)  # (.., r, n), (.., r, M), (.., r, r): R^T R = F, Q^T = Kinv^T Qt
        Gt = buf[:, pos : pos + r[l] * outs[l]].reshape(S, r[l], outs[l])
        pos += r[l] * outs[l]
        z = np.matmul(np.swapaxes(R, -1, -2), Gt, out=arena.take((S, n, outs[l])))  # every unit ~ N(0, A~ A~^T)
        if skip[l]:
            z += zs[-1]
        zs.append(z)
        Qs.append((Qt, Kinv))
        Gts.append(Gt)
        if l < L - 1:
            if norm:
                y, sd = layer_norm(z)
                lns.append((y, sd))
                h = fn(y)
            elif leaky:
                hb = hbufs[l % 2][..., : outs[l]]
                np.maximum(z, 0.0, out=hb)
                if act.slope != 0.0:
                    hb += act.slope * np.minimum(z, 0.0)
                h = hb
            else:
                h = fn(z)
            if masks is not None:
                h = h * masks[l]  # not in place: a user phi may return its argument
    outputs = zs[-1][:, :, 0].copy()
    grams = tuple(np.broadcast_to(g, (S, n, n)) for g in grams)
    sk = tuple(gram(zs[l - 1]) if skip[l] else None for l in range(L)) if skip.any() else None
    if not backward:
        return ConditionalPass(outputs, grams, None, sk)

    delta = np.ones((S, n, 1))
    Bs = [None] * L
    Bs[L - 1] = np.ones((S, n, n))
    Ebuf, DVbuf = arena.take((S, n, max(M))), arena.take((S, n, max(M)))
    gbufs = [arena.take((S, n, max(fan[1:], default=1))) for _ in range(2)]
    for l in range(L - 1, 0, -1):
        Rd = np.ones((S, 1, n)) if l == L - 1 else _gram_root(delta, Bs[l])  # (S, r', n), Rd^T Rd = B_{l+1}
        Xi = buf[:, pos : pos + rd[l] * M[l]].reshape(S, rd[l], M[l])
        pos += rd[l] * M[l]
        E = np.matmul(np.swapaxes(Rd, -1, -2), Xi, out=Ebuf[..., : M[l]])  # fresh delta V', row covariance B_l
        Qt, Kinv = Qs[l]  # Q^T = Kinv^T Qt
        C = np.matmul(delta, np.swapaxes(Gts[l], -1, -2))  # delta G, (S, n, r)
        EQ = np.matmul(E, np.swapaxes(Qt, -1, -2))
        if Kinv is not None:
            EQ = np.matmul(EQ, Kinv)
        C -= EQ
        if Kinv is not None:
            C = np.matmul(C, np.swapaxes(Kinv, -1, -2))
        DV = np.matmul(C, Qt, out=DVbuf[..., : M[l]])
        DV += E
        scale = beta[l] * np.sqrt(sw2[l] / fan[l])  # df/dh_{l-1} through the weights of layer l + 1
        g = gbufs[l % 2][..., : fan[l]]
        if leaky and not norm and masks is None:
            _leaky_vjp(DV, scale, zs[l - 1], float(act.slope), g)
        else:
            np.multiply(DV[..., : fan[l]], scale, out=g)
            if masks is not None:
                g *= masks[l - 1]
            if norm:
                y, sd = lns[l - 1]
                g = layer_norm_vjp(derivative(y) * g, y, sd)
            else:
                g = derivative(zs[l - 1]) * g
        if skip[l]:
            g += delta  # the residual stream
        delta = g
        Bs[l - 1] = gram(delta)
    return ConditionalPass(outputs, grams, tuple(Bs), sk)


def conditional_task(batch, X, spec, quantities, layers, bias):
    """Task of :func:`meanfield.finite.montecarlo.run` for ``simulate(..., method="conditional")``: the
    quantities of :func:`meanfield.simulate` for the networks of ``batch``, from :func:`conditional_pass`."""
    net = Network(**spec)
    L = net.depth
    fan = net.fan_ins(X.shape[1])
    sw2, sb2 = net.weight_variances, net.bias_variances
    need_back = any(q in quantities for q in ("backward", "ntk_layers", "ntk"))
    p = _conditional_pass(X, net, batch.seeds, bias, need_back)
    out = {}
    if "outputs" in quantities:
        out["outputs"] = p.outputs
    beta2 = np.where(skips(net), net.residual**2 if net.residual is not None else 1.0, 1.0)
    if "nngp" in quantities:  # F_l = [z_{l-1}.z'_{l-1} / N_{l-1}] + beta^2 (sigma_w^2/N_{l-1} G_l + sigma_b^2)
        ls = range(L) if layers else [L - 1]
        F = []
        for l in ls:
            f = beta2[l] * (sw2[l] / fan[l] * p.grams[l] + (sb2[l] if bias else 0.0))
            F.append(f if p.skips is None or p.skips[l] is None else f + p.skips[l] / fan[l])
        F = np.stack(F, axis=1)
        out["nngp"] = F if layers else F[:, 0]
    if need_back:
        B = np.stack(p.backward, axis=1)
        if "backward" in quantities:
            out["backward"] = B
        if "ntk_layers" in quantities or "ntk" in quantities:
            ntp = net.parameterization == "ntk"
            K = np.empty_like(B)
            for l in range(L):
                omega_w, omega_b = beta2[l] * np.array((sw2[l] / fan[l], sb2[l]) if ntp else (1.0, 1.0))
                K[:, l] = (omega_w * p.grams[l] + (omega_b if bias else 0.0)) * B[:, l]
            if "ntk_layers" in quantities:
                out["ntk_layers"] = K
            if "ntk" in quantities:
                out["ntk"] = K.sum(axis=1)
    return out


def per_net_bytes(net: Network, d: int, n: int, bias: bool) -> int:
    """Working memory of one network of :func:`conditional_pass` (normals, ``Q_l``, ``G_l``, ``z_l`` and the
    kernels), for the default batch size of :func:`meanfield.simulate`."""
    fan, outs, M, r, rd = _dims(net, d, n, bias)
    fw, bw = normal_counts(net, d, n, bias)
    kept = sum(M[l] * r[l] + 4 * n * outs[l] for l in range(net.depth))  # Q_l, z_l, h_l; LayerNorm, masks
    return 8 * (fw + bw + kept + 6 * net.depth * n * n + 4 * n * max(M))
