"""Task-model alignment theory: cumulative power, kernel-regression learning curves, layer alignment at init.

Canatar & Pehlevan 2022 measure how well a layer's feature kernel suits a task by the *cumulative power* of the
target in the kernel's eigenbasis (their eq. (3)), and motivate it by the spectral learning-curve theory of kernel
regression (Bordelon et al. 2020; Canatar et al. 2021), which Atanasov et al. 2022 quote as their eq. (46). Both
are implemented here as pure functions over arrays, with two corrections of the published formulas (see the
functions' Notes): the cumulative sum of eq. (3) runs over ``gamma <= rho``, and the learning-curve numerator
carries ``kappa^2``.

It also has the one first-principles layer-alignment prediction of Canatar & Pehlevan's set-up: the target
alignment of every layer's feature kernel at initialization and infinite width (:func:`init_layer_alignment`,
derived here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_bool, check_real, finite_array
from ..network import Network
from ..propagation.dataset import kernels
from .measures import cka, kta, pow2_scaled, square_kernel, unscale


@dataclass(frozen=True)
class CumulativePower:
    """Result of :func:`cumulative_power`: the eigenvalues of the Gram matrix in decreasing order (all ``n``,
    including the null space) and ``C[rho - 1]``, the fraction of the target's power in the first ``rho`` modes."""

    eigvals: np.ndarray
    C: np.ndarray


def cumulative_power(K, Y, center=False) -> CumulativePower:
    """Cumulative power of a target in the eigenbasis of a Gram matrix (task-model alignment).

    Parameters
    ----------
    K : array_like, shape (n, n)
        Symmetric Gram matrix of the kernel on ``n`` samples (for Canatar & Pehlevan 2022, a layer feature
        kernel ``H_l H_l^T``).
    Y : array_like, shape (n,) or (n, o)
        Targets (one column per output).
    center : bool
        If True, use ``H K H`` and ``H Y`` with ``H = I - 11^T / n`` (the centering of CKA).

    Returns
    -------
    CumulativePower
        ``eigvals`` (n,): eigenvalues of ``K`` in decreasing order (all ``n`` of them, including the null space);
        ``C`` (n,): ``C[rho - 1]`` is the fraction of the target's power in the first ``rho`` eigenmodes.

    Notes
    -----
    With ``K = sum_rho lambda_rho v_rho v_rho^T`` (``lambda_1 >= lambda_2 >= ...``, orthonormal ``v_rho``) and
    ``a_rho = v_rho^T Y``,

    ``C(rho) = sum_{gamma <= rho} |a_gamma|^2 / |Y|_F^2``,  rho = 1..n.

    Canatar & Pehlevan 2022, sec. III, eq. (3). The published eq. (3) sums over ``gamma < rho``; "the amount of
    power placed in the first rho eigenmodes", as the text below it says, needs ``<=`` with 1-based ``rho``
    (with ``<``, ``C(1) = 0`` always). The denominator includes the null-space modes, so ``C(rank K) < 1`` exactly
    when part of the target is unlearnable by the kernel (sec. III). Within a block of tied eigenvalues the
    eigenvectors are not unique, so only ``C`` at the block boundaries is basis-independent.
    ``C`` is ``nan`` if ``Y`` is zero (after centering).

    Examples
    --------
    >>> import numpy as np
    >>> K = np.diag([3.0, 2.0, 0.0])
    >>> cp = cumulative_power(K, np.array([1.0, 1.0, 1.0]))
    >>> cp.eigvals.tolist(), np.round(cp.C, 4).tolist()
    ([3.0, 2.0, 0.0], [0.3333, 0.6667, 1.0])
    """
    K = finite_array(K, "K", ndim=(2,))
    n = K.shape[0]
    if K.shape != (n, n) or n == 0:
        raise ValueError(f"K must be a square (n, n) matrix with n >= 1, got shape {K.shape}")
    K = square_kernel(K, "K")  # symmetric to SYM_RTOL (1e-10) of its largest entry
    center = check_bool(center, "center")
    Y = finite_array(Y, "Y", ndim=(1, 2))
    if Y.shape[0] != n:
        raise ValueError(f"Y must have n = {n} rows to match K, got shape {Y.shape}")
    Y = pow2_scaled(Y.reshape(n, -1))[0]  # C is scale-free in Y: exact power-of-two scaling, no overflow in Y^2
    K, e = pow2_scaled(K)  # eigenvalues of K 2^-e, scaled back exactly below
    if center:
        K = K - K.mean(axis=0, keepdims=True)
        K = K - K.mean(axis=1, keepdims=True)
        Y = Y - Y.mean(axis=0, keepdims=True)
    lam, V = np.linalg.eigh(0.5 * (K + K.T))
    lam, V = unscale(lam[::-1], e, "the eigenvalues of K", axes=(-1,)), V[:, ::-1]
    power = np.sum((V.T @ Y) ** 2, axis=1)
    total = np.sum(Y**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        C = np.cumsum(power) / total if total > 0 else np.full(n, np.nan)
    return CumulativePower(eigvals=lam, C=np.minimum(C, 1.0))


@dataclass(frozen=True)
class LearningCurve:
    """Result of :func:`learning_curve`: generalization error and the self-consistent constants, one per ``P``."""

    Eg: np.ndarray
    kappa: np.ndarray
    gamma: np.ndarray


def learning_curve(eigs, abar2, P, ridge=0.0, noise=0.0):
    """Average generalization error of kernel ridge regression from the kernel spectrum (spectral bias theory).

    Parameters
    ----------
    eigs : array_like, shape (M,)
        Population eigenvalues ``lambda_k >= 0`` of the kernel's integral operator.
    abar2 : array_like, shape (M,)
        Target power ``abar_k^2 >= 0`` in each eigenfunction (``y = sum_k abar_k phi_k``).
    P : float or array_like
        Training-set sizes ``P >= 0`` (any shape; the result has the same shape).
    ridge : float
        Ridge ``lambda >= 0`` added to the *unnormalized* Gram matrix: ``f(x) = k(x)^T (K + lambda I)^{-1} y``.
    noise : float
        Label-noise variance ``epsilon^2 >= 0``.

    Returns
    -------
    LearningCurve
        ``Eg`` (test error against the noiseless target), ``kappa`` and ``gamma``, each shaped like ``P``.

    Notes
    -----
    Replica-symmetric theory (Bordelon et al. 2020; Canatar et al. 2021): solve for ``kappa > 0``

    ``kappa = lambda + kappa sum_k lambda_k / (P lambda_k + kappa)``,
    ``gamma = P sum_k lambda_k^2 / (P lambda_k + kappa)^2``,
    ``E_g = [sum_k kappa^2 abar_k^2 / (P lambda_k + kappa)^2 + gamma epsilon^2] / (1 - gamma)``.

    Atanasov et al. 2022, eq. (46) (App. E.1, and their transfer-learning formula after eq. (48)) omit the
    ``kappa^2`` in the numerator; without it ``E_g(P = 0) = sum abar^2 / kappa^2`` instead of ``sum abar^2``.

    Numerics: the equation is rewritten as ``F(kappa) = 1 - lambda/kappa - sum_k lambda_k/(P lambda_k + kappa) = 0``;
    ``F`` increases with ``kappa`` and ``F(lambda + sum lambda_k) >= 0``, so the root is bracketed and found by a
    bisection on ``log kappa``, vectorized over ``P`` (64 halvings of a bracket of at most ``e^700`` reach float64
    resolution). ``P = 0`` gives ``kappa = lambda + sum lambda_k`` exactly. For ``lambda = 0`` and ``P`` at least
    the number ``n_+`` of non-zero eigenvalues, the root is ``kappa = 0``: then ``gamma = n_+/P`` and only the
    power in zero modes (and the noise) survives, amplified by ``1/(1 - gamma)``; at ``P = n_+`` exactly this is
    ``inf`` unless that numerator vanishes (then 0, the limit from ``P < n_+``).
    The theory is asymptotic (large ``P`` and many modes); at small ``P`` and few dimensions expect
    finite-size deviations of a few percent.

    Examples
    --------
    Ridgeless regression on an isotropic spectrum in ``D = 10`` dimensions gives ``E_g = 1 - P/D``:

    >>> import numpy as np
    >>> lc = learning_curve(np.ones(10), np.full(10, 0.1), [0, 2, 5])
    >>> np.round(lc.Eg, 12).tolist()
    [1.0, 0.8, 0.5]
    """
    lam_k = finite_array(eigs, "eigs", ndim=(1,))
    a2 = finite_array(abar2, "abar2", ndim=(1,))
    if lam_k.size == 0 or lam_k.shape != a2.shape:
        raise ValueError(f"eigs and abar2 must be non-empty 1-D arrays of equal length, got {lam_k.shape}, {a2.shape}")
    if np.any(lam_k < 0) or np.any(a2 < 0):
        raise ValueError("eigs and abar2 must be >= 0")
    P_arr = finite_array(P, "P")
    if np.any(P_arr < 0):
        raise ValueError("P must be >= 0")
    ridge, noise = check_real(ridge, "ridge", low=0.0), check_real(noise, "noise", low=0.0)
    shape = P_arr.shape
    Pv = P_arr.reshape(-1, 1)
    lam_pos = lam_k[lam_k > 0]
    n_plus = lam_pos.size
    hi_val = ridge + lam_k.sum()
    if hi_val == 0:
        raise ValueError("eigs must contain a positive eigenvalue when ridge = 0")

    def F(kap):  # increasing in kappa; root = kappa
        return 1.0 - ridge / kap - np.sum(lam_pos / (Pv * lam_pos + kap), axis=1, keepdims=True)

    zero_root = (ridge == 0) & (Pv >= n_plus)
    log_hi = np.full_like(Pv, np.log(hi_val))
    log_lo = np.full_like(Pv, np.log(ridge) if ridge > 0 else np.log(hi_val) - 700.0)
    for _ in range(64):
        mid = 0.5 * (log_lo + log_hi)
        neg = F(np.exp(mid)) < 0
        log_lo = np.where(neg, mid, log_lo)
        log_hi = np.where(neg, log_hi, mid)
    kappa = np.exp(0.5 * (log_lo + log_hi))
    kappa = np.where(Pv == 0, hi_val, kappa)
    kappa = np.where(zero_root, 0.0, kappa)

    denom = Pv * lam_k + kappa  # (nP, M)
    zero_mode = denom == 0  # lambda_k = 0 with kappa = 0: the ratio kappa/denom -> 1
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(zero_mode, 1.0, kappa / np.where(zero_mode, 1.0, denom))
        share = np.where(zero_mode, 0.0, Pv * lam_k / np.where(zero_mode, 1.0, denom))
    gamma = np.sum(share**2, axis=1, keepdims=True) / np.where(Pv > 0, Pv, 1.0)
    gamma = np.where(Pv > 0, gamma, 0.0)
    num = np.sum(ratio**2 * a2, axis=1, keepdims=True) + gamma * noise
    one_m = 1.0 - gamma
    with np.errstate(invalid="ignore", divide="ignore"):
        Eg = np.where(one_m > 0, num / np.where(one_m > 0, one_m, 1.0), np.where(num > 0, np.inf, 0.0))
    return LearningCurve(Eg=Eg.reshape(shape), kappa=kappa.reshape(shape), gamma=gamma.reshape(shape))


def init_layer_alignment(net: Network, X, Y, center=True):
    """Target alignment of each layer's feature kernel at initialization, in the infinite-width limit.

    Parameters
    ----------
    net : Network
        The network (its depth ``L``, activation and ``sigma_w2``, ``sigma_b2``; the width is ignored).
    X : array_like, shape (n, d)
        Inputs (rows).
    Y : array_like, shape (n,) or (n, o)
        Targets; the target kernel is ``Y Y^T`` (Canatar & Pehlevan 2022's ``K_fbar``, class-traced for ``o > 1``).
    center : bool
        True (default): centered kernel alignment (biased :func:`cka`, Canatar & Pehlevan 2022, sec. III). False:
        uncentered :func:`kta` (their eq. (4)), applied to ``Sigma_l - sigma_b^2``.

    Returns
    -------
    ndarray, shape (L,)
        Entry ``l - 1`` is the alignment of the input kernel of weight layer ``l = 1..L``,
        ``H_{l-1} H_{l-1}^T``, with ``Y Y^T``: ``l = 1`` is the data kernel ``X X^T``, ``l = 2..L`` the hidden
        layers' post-activations (Canatar & Pehlevan's layer ``l - 1``).

    Notes
    -----
    Derived here. Canatar & Pehlevan's layer feature kernel ``K^(l-1)`` (post-activations of hidden layer
    ``l - 1``) is ``H_{l-1} H_{l-1}^T = N_{l-1} / sigma_w^2 (F_l - sigma_b^2)`` with ``F_l`` the forward kernel of
    layer ``l``, which at initialization and infinite width is proportional to ``Sigma_l - sigma_b^2``. Centered
    alignment ignores the scale and the constant, so ``A_l^init = CKA(Sigma_l, Y Y^T)`` exactly in that limit,
    with ``Sigma_l`` from :func:`meanfield.kernels`. At the ReLU edge of chaos it decreases with depth towards the
    identity-kernel value ``sqrt((o - 1)/(n - 1))`` for balanced one-hot labels: at initialization the hierarchy is
    *input*-aligned, so the end-of-training increase with depth that Canatar & Pehlevan 2022 report (their Fig. 2)
    is a training effect. Finite networks are biased downward by ``O(l/N)``.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import Network
    >>> X = np.random.default_rng(0).standard_normal((12, 4))
    >>> A = init_layer_alignment(Network(4, "linear", sigma_w2=1.0), X, X[:, 0])
    >>> bool(np.allclose(A, A[0]))  # a linear network keeps the input geometry
    True
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a meanfield.Network, got {type(net).__name__}")
    center = check_bool(center, "center")
    X = finite_array(X, "X", ndim=(2,))
    Y = finite_array(Y, "Y", ndim=(1, 2))
    if Y.shape[0] != X.shape[0]:
        raise ValueError(f"Y must have n = {X.shape[0]} rows to match X, got shape {Y.shape}")
    Y = pow2_scaled(Y.reshape(X.shape[0], -1))[0]  # alignment is scale-free in Y: Y Y^T cannot overflow
    T = Y @ Y.T
    align = cka if center else kta
    k = kernels(X, net, layers=True)
    return np.array([align(S - net.sigma_b2, T) for S in k.nngp_layers])
