"""Silent alignment in linear networks: closed forms for the kernel and loss dynamics (seed 003).

Seed 003 (Atanasov, Bordelon & Pehlevan, ICLR 2022) shows that networks trained from small initialization on
whitened data align their neural tangent kernel (NTK) with the task while the kernel is still small, and then
grow it only in scale: the trained network is a kernel machine with its *final* NTK. This module holds the
linear-network theory as pure functions, in the corrected forms of ``feature_alignment.md`` sec. 4 (the errata
numbers below refer to its sec. 7).

Conventions (feature_alignment.md sec. 4): ``P`` inputs ``x in R^D``, column-centred and whitened so that
``X^T X / P = I_D``; teacher ``y = s beta . x`` with a unit vector ``beta``; loss ``L = 1/(2P) sum (f - y)^2``;
gradient flow with unit rate, so time ``t`` = (GD learning rate) x (steps). The NTK of a linear network is
``K(x, x') = x^T M x'``; "alignment" is the uncentred kernel-target alignment of seed 003, line 74,
``y^T K y / (|K|_F |y|^2)``, which for whitened data equals ``beta^T M beta / |M|_F`` exactly.
Two-layer network ``f = a^T W x`` with ``a_i ~ N(0, sigma^2/N)``, ``W_ij ~ N(0, sigma^2/D)``;
deep network ``f = w^L^T W^{L-1} ... W^1 x`` with per-layer rates ``eta_l``.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import integrate

from .._checks import finite_array
from ..alignment.learning_curves import learning_curve

__all__ = [
    "alignment_curve",
    "alignment_limits",
    "alignment_time",
    "deep_linear_blowup_time",
    "deep_linear_ntk_coeffs",
    "deep_linear_scale",
    "deep_linear_time",
    "expected_q0",
    "final_nngp_linear",
    "final_ntk_linear",
    "half_loss_time",
    "isotropic_alignment",
    "linear_teacher",
    "lr_kappa",
    "matrix_alignment",
    "order_parameters",
    "partial_whiten",
    "saxe_mode_times",
    "transfer_Eg",
    "two_layer_loss",
    "two_layer_ntk_matrix",
    "two_layer_qr",
    "unwhitened_phase1_matrix",
    "unwhitened_spike",
    "whiten",
]

SCALE_FORMS = ("corrected", "seed")


# ----------------------------------------------------------------------------------------------------------------
# input validation
# ----------------------------------------------------------------------------------------------------------------
def _real(value, name: str, low=None, low_open=False, high=None) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        rng = "" if low is None else (f" > {low}" if low_open else f" >= {low}")
        rng += "" if high is None else f" and <= {high}"
        raise ValueError(f"{name} must be a finite number{rng}, got {value!r}")
    return float(value)


def _int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _unit(beta, name="beta") -> np.ndarray:
    b = finite_array(beta, name, ndim=(1,))
    norm = np.linalg.norm(b)
    if b.size == 0 or norm == 0:
        raise ValueError(f"{name} must be a non-zero vector")
    return b / norm


def _times(t) -> np.ndarray:
    t = finite_array(t, "t")
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    return t


# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------
def _centred_svd(X):
    X = finite_array(X, "X", ndim=(2,))
    P, D = X.shape
    Xc = X - X.mean(axis=0, keepdims=True)
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    if P - 1 < D or S[-1] <= 1e-12 * S[0]:
        raise ValueError(f"X must have rank D = {D} after centring its columns (needs P >= D + 1), got shape {X.shape}")
    return U, S, Vt


def whiten(X):
    """Centre the columns of a data matrix and whiten it to ``X^T X / P = I_D``.

    Parameters
    ----------
    X : array_like, shape (P, D)
        Inputs as rows; needs ``P >= D + 1`` and full column rank after centring.

    Returns
    -------
    ndarray, shape (P, D)
        ``sqrt(P) U V^T`` for the thin SVD ``X_c = U S V^T`` of the centred data.

    Notes
    -----
    Seed 003 assumes zero-mean inputs (line 80) and calls the data whitened when all non-zero singular values of
    ``X`` are equal (line 108); feature_alignment.md sec. 4 fixes ``Sigma = X^T X / P = I_D`` exactly. The SVD form
    is the symmetric (ZCA-like) whitening ``X_c (X_c^T X_c / P)^{-1/2}``.

    Examples
    --------
    >>> import numpy as np
    >>> Xw = whiten(np.random.default_rng(0).standard_normal((50, 4)))
    >>> bool(np.allclose(Xw.T @ Xw / 50, np.eye(4)))
    True
    """
    U, _, Vt = _centred_svd(X)
    return np.sqrt(U.shape[0]) * (U @ Vt)


def partial_whiten(X, gamma):
    """Partially whiten a data matrix: ``X_gamma = c U S^gamma V^T`` (seed 003, sec. 5).

    Parameters
    ----------
    X : array_like, shape (P, D)
        Inputs as rows (centred internally; full column rank required).
    gamma : float
        Exponent in ``[0, 1]``: 0 is fully whitened, 1 keeps the original spectrum shape.

    Returns
    -------
    ndarray, shape (P, D)
        The transformed data, scaled so that the covariance ``X_gamma^T X_gamma / P`` has mean eigenvalue 1.

    Notes
    -----
    Seed 003, sec. 5 (lines 200ff) and Fig. 6: ``X = U S V^T -> U S^gamma V^T``, i.e. covariance eigenvalues
    ``lambda_k -> lambda_k^gamma`` up to scale. The overall scale ``c`` is an implementation choice
    (feature_alignment.md sec. 4.2): it makes ``gamma = 0`` coincide with :func:`whiten` and keeps the time scale
    of the dynamics comparable across ``gamma``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((40, 3)) * [1.0, 2.0, 4.0]
    >>> bool(np.allclose(partial_whiten(X, 0.0), whiten(X)))
    True
    """
    gamma = _real(gamma, "gamma", low=0.0, high=1.0)
    U, S, Vt = _centred_svd(X)
    P, D = U.shape[0], Vt.shape[0]
    Sg = S**gamma
    c = np.sqrt(P * D / np.sum(Sg**2))
    return c * (U * Sg) @ Vt


def linear_teacher(X, beta, s=1.0):
    """Targets of the linear teacher of seed 003: ``y = s beta_hat . x``.

    Parameters
    ----------
    X : array_like, shape (P, D)
        Inputs as rows.
    beta : array_like, shape (D,)
        Teacher direction (normalized internally to a unit vector).
    s : float
        Target scale ``s > 0``.

    Returns
    -------
    ndarray, shape (P,)

    Notes
    -----
    Seed 003, line 80: ``y^mu = s beta_T . x^mu`` with ``|beta_T| = 1``.

    Examples
    --------
    >>> linear_teacher([[1.0, 2.0]], [3.0, 4.0], s=5.0).tolist()
    [11.0]
    """
    X = finite_array(X, "X", ndim=(2,))
    b = _unit(beta)
    if X.shape[1] != b.size:
        raise ValueError(f"beta must have length D = {X.shape[1]}, got {b.size}")
    return _real(s, "s", low=0.0, low_open=True) * (X @ b)


# ----------------------------------------------------------------------------------------------------------------
# two-layer linear network (seed 003 sec. 3, App. B)
# ----------------------------------------------------------------------------------------------------------------
def two_layer_ntk_matrix(a, W):
    """NTK matrix ``M = W^T W + |a|^2 I`` of ``f = a^T W x``, so that ``K(x, x') = x^T M x'``.

    Parameters
    ----------
    a : array_like, shape (N,)
        Readout weights.
    W : array_like, shape (N, D)
        First-layer weights.

    Returns
    -------
    ndarray, shape (D, D)

    Notes
    -----
    Seed 003, eq. (5): ``K = x^T W^T W x' + |a|^2 x^T x'`` (the two terms are the ``a`` and ``W`` gradients).

    Examples
    --------
    >>> two_layer_ntk_matrix([1.0], [[1.0, 0.0]]).tolist()
    [[2.0, 0.0], [0.0, 1.0]]
    """
    a = finite_array(a, "a", ndim=(1,))
    W = finite_array(W, "W", ndim=(2,))
    if W.shape[0] != a.size:
        raise ValueError(f"W must have N = {a.size} rows to match a, got shape {W.shape}")
    return W.T @ W + (a @ a) * np.eye(W.shape[1])


def order_parameters(a, W, beta):
    """Order parameters ``q = beta^T M beta / 2`` and ``r = beta^T W^T a`` of a two-layer linear network.

    Parameters
    ----------
    a : array_like, shape (N,)
    W : array_like, shape (N, D)
    beta : array_like, shape (D,)
        Task direction (normalized internally).

    Returns
    -------
    (q, r) : tuple of float

    Notes
    -----
    Seed 003, App. B.1 (line 301): ``q = (|a|^2 + |W beta|^2) / 2`` measures the kernel along the task,
    ``r`` is the network's end-to-end weight along the task (``f = r beta . x`` on the task direction).
    ``q >= |r|`` always (AM-GM and Cauchy-Schwarz).

    Examples
    --------
    >>> order_parameters([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [1.0, 0.0])
    (1.0, 1.0)
    """
    a = finite_array(a, "a", ndim=(1,))
    W = finite_array(W, "W", ndim=(2,))
    b = _unit(beta)
    Wb = W @ b
    return float(0.5 * (a @ a + Wb @ Wb)), float(Wb @ a)


def expected_q0(sigma, N, D):
    """Mean initial order parameter ``<q_0> = sigma^2 (1 + N/D) / 2`` of the two-layer network.

    Parameters
    ----------
    sigma : float
        Initialization scale ``sigma > 0`` (``a_i ~ N(0, sigma^2/N)``, ``W_ij ~ N(0, sigma^2/D)``).
    N, D : int
        Hidden width and input dimension.

    Returns
    -------
    float

    Notes
    -----
    Seed 003, eq. (17), exact for Gaussian initialization: ``<q_0> = sigma^2/2 (1 + N/D)``, ``<r_0> = 0``,
    ``<r_0^2> = sigma^4 / D``. The phase-I/II solutions use the measured ``q_0`` (and ``r_0``) of a given draw.

    Examples
    --------
    >>> round(expected_q0(0.1, 50, 30), 12)
    0.013333333333
    """
    sigma = _real(sigma, "sigma", low=0.0, low_open=True)
    return 0.5 * sigma**2 * (1.0 + _int(N, "N", 1) / _int(D, "D", 1))


def _check_qr0(s, q0, r0):
    s = _real(s, "s", low=0.0, low_open=True)
    q0 = _real(q0, "q0", low=0.0, low_open=True)
    r0 = _real(r0, "r0")
    if abs(r0) > q0 * (1 + 1e-12) or q0 + r0 <= 0:
        raise ValueError(f"r0 must satisfy |r0| <= q0 and q0 + r0 > 0, got q0={q0!r}, r0={r0!r}")
    return s, q0, r0


def two_layer_qr(t, s, q0, r0=0.0):
    """Whole-trajectory order parameters ``q(t)``, ``r(t)`` of a two-layer linear network on whitened data.

    Parameters
    ----------
    t : array_like
        Times ``t >= 0`` (learning rate x steps).
    s : float
        Target scale ``s > 0``.
    q0, r0 : float
        Initial order parameters (:func:`order_parameters` of the initial weights; ``|r0| <= q0``).

    Returns
    -------
    (q, r) : tuple of ndarray
        Same shape as ``t``.

    Notes
    -----
    feature_alignment.md sec. 4.1 [derived], matching phase I (seed 003 eq. (16): ``q +- r ~ e^{+-2st}``) to the
    Saxe phase-II sigmoid with ``c_0 = (q_0 + r_0)/2``:

    ``q(t) = s [(q0+r0) e^{2st} + (q0-r0) e^{-2st}] / [(q0+r0)(e^{2st} - 1) + 2s]``,
    ``r(t) = s [(q0+r0) e^{2st} - (q0-r0) e^{-2st}] / [(q0+r0)(e^{2st} - 1) + 2s]``.

    For ``r0 = 0`` these are exactly seed 003, eqs. (27)-(28). Keeping ``r0`` matters: a typical draw has
    ``|r0| ~ 0.2 q0`` (``<r0^2> = sigma^4/D``), and dropping it shifts the sigmoid (5% vs 0.5-1% maximal error
    in the sheet's GD check). For ``q0 = r0`` (balanced and aligned start) ``q = r`` is the exact Saxe solution.
    Valid to ``O(sigma^2)``. Evaluated after dividing by ``e^{2st}`` so that large ``t`` does not overflow.

    Examples
    --------
    >>> q, r = two_layer_qr([0.0, 50.0], 1.0, 1e-4)
    >>> [round(float(v), 12) for v in (*q, *r)]
    [0.0001, 1.0, 0.0, 1.0]
    """
    t = _times(t)
    s, q0, r0 = _check_qr0(s, q0, r0)
    em = np.exp(-2.0 * s * t)
    den = (q0 + r0) * (1.0 - em) + 2.0 * s * em
    grow, decay = (q0 + r0), (q0 - r0) * em * em
    return s * (grow + decay) / den, s * (grow - decay) / den


def two_layer_loss(t, s, q0, r0=0.0):
    """Training loss ``L(t) = (s - r(t))^2 / 2`` of the two-layer linear network on whitened data.

    Parameters
    ----------
    t : array_like
        Times ``t >= 0``.
    s, q0, r0 : float
        As in :func:`two_layer_qr`.

    Returns
    -------
    ndarray

    Notes
    -----
    With ``X^T X / P = I`` the loss is exactly ``|W^T a - s beta|^2 / 2``; its component along ``beta`` is
    ``(s - r)^2 / 2`` and the orthogonal component stays ``O(sigma^4)`` (it grows only like ``e^{st}``)
    (feature_alignment.md sec. 4.1).

    Examples
    --------
    >>> float(two_layer_loss(0.0, 1.0, 1e-4)[()])
    0.5
    """
    _, r = two_layer_qr(t, s, q0, r0)
    return 0.5 * (s - r) ** 2


def half_loss_time(s, q0, r0=0.0, form="corrected"):
    """Time at which the two-layer loss falls to half of ``s^2/2``.

    Parameters
    ----------
    s, q0, r0 : float
        As in :func:`two_layer_qr`.
    form : {"corrected", "seed"}
        ``"corrected"``: the closed form below. ``"seed"``: seed 003's phase-II onset ``log(s / q0) / s``
        (line 97 / 135, with ``u_0^2 = q_0``), kept for comparison; it is too large by a factor of about 2.

    Returns
    -------
    float

    Notes
    -----
    Solve ``r(t) = s (1 - 2^{-1/2})`` with :func:`two_layer_qr`, neglecting the decaying ``e^{-2st}`` mode
    (relative error ``O((q0/s)^2)``), feature_alignment.md sec. 4.1:

    ``t_1/2 = log[(sqrt(2) - 1)(2s/(q0 + r0) - 1)] / (2s)  ~  log(2 (sqrt(2) - 1) s / q0) / (2s)``.

    Erratum 17: seed 003 states the onset of phase II as ``t ~ log(s sigma^{-2}) / s`` (lines 97, 135:
    "``e^{st} ~ s/u_0^2``"); the Saxe solution it quotes crosses ``c = s/2`` at ``e^{2st} = s/c_0 - 1``, so the
    correct prefactor is ``1/(2s)`` (the Fig. 2 caption's ``t_2 = log(s sigma^{-2})/2`` is right for ``s = 1``).
    Since ``q0 ~ sigma^2``, the half-loss time grows by ``ln(10)/s`` per decade of ``1/sigma`` (GD: 2.308 at
    ``s = 1``, feature_alignment.md sec. 6.2), while the alignment time does not move (:func:`alignment_time`).

    Examples
    --------
    >>> round(half_loss_time(1.0, 1.5e-6), 4), round(half_loss_time(1.0, 1.5e-6, r0=-0.3e-6), 4)
    (6.6109, 6.7225)
    """
    s, q0, r0 = _check_qr0(s, q0, r0)
    if form not in SCALE_FORMS:
        raise ValueError(f"form must be one of {SCALE_FORMS}, got {form!r}")
    if form == "seed":
        return float(np.log(s / q0) / s)
    arg = (np.sqrt(2.0) - 1.0) * (2.0 * s / (q0 + r0) - 1.0)
    if arg <= 1.0:
        raise ValueError(
            f"half_loss_time needs a small initialization, q0 + r0 < 2s/(2 + sqrt(2)), got q0={q0}, r0={r0}"
        )
    return float(np.log(arg) / (2.0 * s))


def matrix_alignment(M, beta):
    """Kernel-target alignment of a linear kernel ``x^T M x'`` with a linear target on whitened data.

    Parameters
    ----------
    M : array_like, shape (D, D)
        Symmetric kernel matrix.
    beta : array_like, shape (D,)
        Target direction (normalized internally).

    Returns
    -------
    float
        ``beta^T M beta / |M|_F``.

    Notes
    -----
    For ``K = X M X^T`` and ``y = s X beta`` with ``X^T X = P I``: ``y^T K y / (|K|_F |y|^2) =
    beta^T M beta / |M|_F`` exactly (feature_alignment.md sec. 4.1); the left side is the alignment of seed 003,
    line 74 (an *uncentred* KTA despite the citation of Cortes et al., erratum 16).

    Examples
    --------
    >>> round(matrix_alignment(np.eye(4), [1.0, 0, 0, 0]), 6)
    0.5
    """
    M = finite_array(M, "M", ndim=(2,))
    b = _unit(beta)
    if M.shape != (b.size, b.size):
        raise ValueError(f"M must have shape ({b.size}, {b.size}) to match beta, got {M.shape}")
    return float(b @ M @ b / np.linalg.norm(M))


def isotropic_alignment(x, D):
    """Alignment ``A(x)`` of ``M = m0 [I + x (I + beta beta^T)]`` with the task, for an isotropic ``M_0``.

    Parameters
    ----------
    x : array_like
        Kernel growth in units of the initial kernel, ``x = (q - q0)/m0 >= 0``; in phase I (``r0 = 0``)
        ``x = (cosh(2st) - 1)/2``.
    D : int
        Input dimension.

    Returns
    -------
    ndarray

    Notes
    -----
    feature_alignment.md sec. 4.1: ``A(x) = (1 + 2x) / sqrt((1 + 2x)^2 + (D - 1)(1 + x)^2)``, increasing from
    ``A_0 = 1/sqrt(D)`` to ``A_inf = 2/sqrt(D + 3)``.

    Examples
    --------
    >>> float(isotropic_alignment(0.0, 4)[()])
    0.5
    """
    x = finite_array(x, "x")
    if np.any(x < 0):
        raise ValueError("x must be >= 0")
    D = _int(D, "D", 1)
    return (1 + 2 * x) / np.sqrt((1 + 2 * x) ** 2 + (D - 1) * (1 + x) ** 2)


def alignment_curve(t, M0, beta, s, q0, r0=0.0):
    """Predicted NTK-target alignment ``A(t)`` of a two-layer linear network on whitened data.

    Parameters
    ----------
    t : array_like
        Times ``t >= 0``.
    M0 : array_like, shape (D, D)
        Initial NTK matrix :func:`two_layer_ntk_matrix` ``(a_0, W_0)``.
    beta : array_like, shape (D,)
        Task direction.
    s, q0, r0 : float
        As in :func:`two_layer_qr`.

    Returns
    -------
    ndarray
        ``A(t) = beta^T M(t) beta / |M(t)|_F``, same shape as ``t``.

    Notes
    -----
    feature_alignment.md sec. 4.1 [derived]: to ``O(sigma^2)``, ``M(t) = M_0 + (q(t) - q_0)(I + beta beta^T)``
    with ``q(t)`` from :func:`two_layer_qr` (both ``|a|^2`` and ``|W beta|^2`` grow by ``q - q_0``, and every
    direction orthogonal to ``beta`` by ``q - q_0``, seed 003 eq. (18) with the missing factor ``s``, erratum 18).
    Seed 003, eq. (19) (and eq. (7)) writes ``q_0 cosh(2st)[beta beta^T + I] + M_0``, which double-counts ``M_0``
    at ``t = 0`` (erratum 19). Evaluated without forming ``M(t)``:
    ``|M|_F^2 = |M0|_F^2 + 2 x (tr M0 + beta^T M0 beta) + x^2 (D + 3)``, ``x = q - q0``.

    Examples
    --------
    >>> import numpy as np
    >>> b = np.eye(30)[0]
    >>> A = alignment_curve([0.0, 60.0], 2e-6 * np.eye(30), b, 1.0, 1e-6)
    >>> np.round(A, 4).tolist(), round(2 / 33**0.5, 4)
    ([0.1826, 0.3482], 0.3482)
    """
    M0 = finite_array(M0, "M0", ndim=(2,))
    b = _unit(beta)
    D = b.size
    if M0.shape != (D, D):
        raise ValueError(f"M0 must have shape ({D}, {D}) to match beta, got {M0.shape}")
    q, _ = two_layer_qr(t, s, q0, r0)
    x = q - q0
    bMb = b @ M0 @ b
    norm2 = np.sum(M0 * M0) + 2 * x * (np.trace(M0) + bMb) + x**2 * (D + 3)
    return (bMb + 2 * x) / np.sqrt(norm2)


def alignment_time(D, s, frac=0.9, M0=None, beta=None, q0=None, r0=0.0):
    """Time for the two-layer NTK alignment to cover a fraction ``frac`` of its rise ``A_0 -> A_inf``.

    Parameters
    ----------
    D : int
        Input dimension.
    s : float
        Target scale ``s > 0``.
    frac : float
        Fraction ``phi`` in ``(0, 1)``.
    M0, beta, q0, r0 : optional
        Give all of ``M0``, ``beta`` and ``q0`` to use the measured initial kernel (:func:`alignment_curve`);
        otherwise ``M_0`` is taken isotropic.

    Returns
    -------
    float

    Notes
    -----
    Isotropic ``M_0`` (feature_alignment.md sec. 4.1): ``A(x_phi) = A_0 + phi (A_inf - A_0)`` has the closed
    form ``x_phi = (k - 1)/(2 - k)`` with ``k = A sqrt(D - 1) / sqrt(1 - A^2)`` (from
    :func:`isotropic_alignment`), and ``t_A = arccosh(1 + 2 x_phi) / (2s)`` -- independent of ``sigma`` and
    ``proportional to 1/s``, while the loss time grows like ``log(1/sigma^2)/(2s)``: silent alignment
    (seed 003, sec. 3.1). ``D = 30``, ``phi = 0.9``: ``t_A = 1.782/s``.
    With a measured ``M_0``: ``A_0 = A(0)``, ``A_inf = lim A(t)`` from :func:`alignment_curve`, and the crossing
    is found by bisection on ``t`` (``A(t)`` is increasing).

    Examples
    --------
    >>> round(alignment_time(30, 1.0), 4)
    1.7817
    """
    D = _int(D, "D", 2)
    s = _real(s, "s", low=0.0, low_open=True)
    frac = _real(frac, "frac", low=0.0, low_open=True)
    if frac >= 1.0:
        raise ValueError(f"frac must be a finite number > 0 and < 1, got {frac!r}")
    given = [v is not None for v in (M0, beta, q0)]
    if any(given) and not all(given):
        raise ValueError("give all of M0, beta and q0 for a measured initial kernel, or none of them")
    if not all(given):
        A0, Ainf = 1.0 / np.sqrt(D), 2.0 / np.sqrt(D + 3)
        A = A0 + frac * (Ainf - A0)
        k = A * np.sqrt(D - 1) / np.sqrt(1 - A * A)
        x = (k - 1) / (2 - k)
        return float(np.arccosh(1 + 2 * x) / (2 * s))
    curve = lambda tt: alignment_curve(tt, M0, beta, s, q0, r0)  # noqa: E731
    A0 = float(curve(0.0))
    t_end = half_loss_time(s, q0, r0) + 40.0 / s  # q(t_end) = s to float precision
    Ainf = float(curve(t_end))
    target = A0 + frac * (Ainf - A0)
    lo, hi = 0.0, t_end
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if curve(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def alignment_limits(D, L=2, ratio=None):
    """Initial and final NTK-target alignment ``(A_0, A_inf)`` of a linear network on whitened data.

    Parameters
    ----------
    D : int
        Input dimension.
    L : int
        Depth (number of weight matrices), ``L >= 2``.
    ratio : float, optional
        Spike-to-bulk ratio ``A/B`` of the final NTK (:func:`deep_linear_ntk_coeffs`); default ``L - 1``
        (equal rates, or the rate-weighted kernel for any rates).

    Returns
    -------
    (A0, Ainf) : tuple of float

    Notes
    -----
    ``A_0 = 1/sqrt(D)`` for an isotropic initial kernel. The final kernel is ``prop. to A beta beta^T + B I``
    (seed 003, eq. (42)), so ``A_inf = (A + B) / sqrt((A + B)^2 + (D - 1) B^2) = L / sqrt(L^2 + D - 1)`` for
    ``A/B = L - 1`` (feature_alignment.md sec. 4.3 [derived]); ``L = 2`` gives ``2/sqrt(D + 3)``, the dashed
    line of seed 003 Figs. 1 and 3. It increases to 1 with depth (seed 003, Fig. D.3b).

    Examples
    --------
    >>> [round(v, 4) for v in alignment_limits(30)], round(alignment_limits(30, L=3)[1], 4)
    ([0.1826, 0.3482], 0.4867)
    """
    D = _int(D, "D", 1)
    L = _int(L, "L", 2)
    rho = float(L - 1) if ratio is None else _real(ratio, "ratio", low=0.0)
    return float(1.0 / np.sqrt(D)), float((rho + 1) / np.sqrt((rho + 1) ** 2 + D - 1))


def saxe_mode_times(svals, c0, form="corrected"):
    """Transition times of the singular modes of a two-layer linear network (multiple outputs).

    Parameters
    ----------
    svals : array_like
        Teacher singular values ``s_alpha > 0``.
    c0 : float or array_like
        Initial mode strengths ``c_0 > 0`` (``~ q_0``), broadcast against ``svals``.
    form : {"corrected", "seed"}
        ``"corrected"``: exact time of ``c_alpha = s_alpha/2``. ``"seed"``: seed 003's
        ``t_alpha = log(s_alpha / c_0) / s_alpha`` (line 185), kept for comparison.

    Returns
    -------
    ndarray

    Notes
    -----
    Each mode follows the Saxe sigmoid ``c(t) = s e^{2st} / (e^{2st} - 1 + s/c_0)`` (seed 003, App. B.3), which
    crosses ``s/2`` at ``t_alpha = log(s_alpha/c_0 - 1) / (2 s_alpha) ~ log(s_alpha/c_0)/(2 s_alpha)``.
    Erratum 17: seed 003, line 185, omits the 2. Silent alignment for ``L = 2`` needs
    ``1/s_min << log(s_max/c_0)/(2 s_max)`` (seed 003, sec. 4.2, corrected).

    Examples
    --------
    >>> np.round(saxe_mode_times([1.0, 2.0], 1e-4), 4).tolist()
    [4.6051, 2.4759]
    """
    sv = finite_array(svals, "svals")
    c0 = finite_array(c0, "c0")
    if np.any(sv <= 0) or np.any(c0 <= 0):
        raise ValueError("svals and c0 must be > 0")
    if form not in SCALE_FORMS:
        raise ValueError(f"form must be one of {SCALE_FORMS}, got {form!r}")
    if form == "seed":
        return np.log(sv / c0) / sv
    if np.any(c0 >= sv / 2):
        raise ValueError("c0 must be < s_alpha / 2 (small initialization)")
    return np.log(sv / c0 - 1.0) / (2.0 * sv)


# ----------------------------------------------------------------------------------------------------------------
# unwhitened two-layer network (seed 003 sec. 3.2, App. B.2)
# ----------------------------------------------------------------------------------------------------------------
def _sigma_beta(Sigma, beta):
    S = finite_array(Sigma, "Sigma", ndim=(2,))
    b = _unit(beta)
    if S.shape != (b.size, b.size) or not np.allclose(S, S.T, rtol=1e-10, atol=1e-14):
        raise ValueError(f"Sigma must be a symmetric ({b.size}, {b.size}) matrix")
    return S, b


def unwhitened_phase1_matrix(Sigma, beta):
    """Linear system ``dr/dt = s T r`` of the early two-layer dynamics on unwhitened data (seed 003, eq. (23)).

    Parameters
    ----------
    Sigma : array_like, shape (D, D)
        Input covariance ``X^T X / P``.
    beta : array_like, shape (D,)
        Task direction (normalized internally).

    Returns
    -------
    ndarray, shape (5, 5)
        ``T`` for ``r = (beta^T W^T a, |a|^2, beta^T W^T W Sigma beta, beta^T Sigma W^T a,
        beta^T Sigma W^T W Sigma beta)``.

    Notes
    -----
    Seed 003, App. B.2, eqs. (20)-(23): early on ``da/dt = s W Sigma beta``, ``dW/dt = s a beta^T Sigma``; with
    ``a = beta^T Sigma beta``, ``b = beta^T Sigma^2 beta``

    ``T = [[0, a, 1, 0, 0], [0, 0, 0, 2, 0], [b, 0, 0, a, 0], [0, b, 0, 0, 1], [0, 0, 0, 2b, 0]]``,

    with eigenvalues ``{0, +-sqrt(b), +-2 sqrt(b)}`` independent of ``a`` (every row re-derived and the
    eigenvalues confirmed in feature_alignment.md sec. 4.2). The growing mode ``2 sqrt(b)`` puts the early kernel
    spike along ``Sigma beta`` (:func:`unwhitened_spike`), not ``beta``.

    Examples
    --------
    >>> T = unwhitened_phase1_matrix(np.diag([4.0, 1.0]), [1.0, 0.0])
    >>> np.round(np.sort(np.linalg.eigvals(T).real), 6).tolist()
    [-8.0, -4.0, 0.0, 4.0, 8.0]
    """
    S, b = _sigma_beta(Sigma, beta)
    Sb = S @ b
    a_, b_ = float(b @ Sb), float(Sb @ Sb)
    return np.array(
        [
            [0.0, a_, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 2.0, 0.0],
            [b_, 0.0, 0.0, a_, 0.0],
            [0.0, b_, 0.0, 0.0, 1.0],
            [0.0, 0.0, 0.0, 2 * b_, 0.0],
        ]
    )


def unwhitened_spike(Sigma, beta):
    """Shape of the early NTK growth on unwhitened data: ``M = Sigma beta beta^T Sigma / |Sigma beta| + I``.

    Parameters
    ----------
    Sigma : array_like, shape (D, D)
        Input covariance.
    beta : array_like, shape (D,)
        Task direction (normalized internally).

    Returns
    -------
    ndarray, shape (D, D)
        ``K(t) ~ K(0) + |a(t)|^2 x^T M x'`` in phase I.

    Notes
    -----
    Seed 003, App. B.2, eq. (25): the spike points along ``Sigma beta``; at late times the kernel must rotate to
    the final ``s x^T (beta beta^T + I) x'`` (sec. 3.2), during the loss drop, which breaks silent alignment.
    For whitened data it reduces to ``beta beta^T + I``.

    Examples
    --------
    >>> unwhitened_spike(np.eye(2), [0.0, 1.0]).tolist()
    [[1.0, 0.0], [0.0, 2.0]]
    """
    S, b = _sigma_beta(Sigma, beta)
    Sb = S @ b
    return np.outer(Sb, Sb) / np.linalg.norm(Sb) + np.eye(b.size)


# ----------------------------------------------------------------------------------------------------------------
# deep linear networks (seed 003 sec. 4, App. C-D, G)
# ----------------------------------------------------------------------------------------------------------------
def _rates(L, etas):
    L = _int(L, "L", 2)
    if etas is None:
        return L, np.ones(L)
    e = finite_array(etas, "etas", ndim=(1,))
    if e.size != L or np.any(e <= 0):
        raise ValueError(f"etas must hold L = {L} positive per-layer learning rates, got {etas!r}")
    return L, e / e[-1]


def lr_kappa(L, etas=None):
    """Rate factor ``kappa = prod_{l<L} (eta_l / eta_L)^{1/2}`` of a balanced deep linear network.

    Parameters
    ----------
    L : int
        Depth ``L >= 2``.
    etas : array_like, optional
        The ``L`` per-layer learning rates (default equal).

    Returns
    -------
    float

    Notes
    -----
    Balanced rank-one weights ``W^l = sqrt(eta_l/eta_L) u r_{l+1} r_l^T`` (seed 003, line 162) give the end-to-end
    weight ``w = kappa u^L`` along ``beta`` (feature_alignment.md sec. 4.3 [derived]).

    Examples
    --------
    >>> lr_kappa(3, [4.0, 1.0, 1.0])
    2.0
    """
    _, rho = _rates(L, etas)
    return float(np.sqrt(np.prod(rho[:-1])))


def _scale_rate(L, s, kappa, form):
    if form not in SCALE_FORMS:
        raise ValueError(f"form must be one of {SCALE_FORMS}, got {form!r}")
    return (L if form == "corrected" else 1.0) * kappa ** (2.0 / L)


def _check_scale(L, s, w0, kappa):
    L = _int(L, "L", 2)
    s = _real(s, "s", low=0.0, low_open=True)
    w0 = _real(w0, "w0", low=0.0, low_open=True)
    if w0 >= s:
        raise ValueError(f"w0 must be < s (start below the target), got w0={w0!r}, s={s!r}")
    return L, s, w0, _real(kappa, "kappa", low=0.0, low_open=True)


def deep_linear_scale(t, L, s, w0, kappa=1.0, form="corrected"):
    """End-to-end weight ``w(t)`` of a balanced, aligned deep linear network (corrected scale ODE).

    Parameters
    ----------
    t : array_like
        Times ``t >= 0`` in units of ``eta_L x steps``.
    L : int
        Depth ``L >= 2``.
    s : float
        Target scale ``s > 0``.
    w0 : float
        Initial end-to-end weight, ``0 < w0 < s`` (``w0 = kappa u0^L`` for balanced weights of scale ``u0``).
    kappa : float
        Rate factor :func:`lr_kappa` (1 for equal rates).
    form : {"corrected", "seed"}
        ``"corrected"`` (default): ``dw/dt = L kappa^{2/L} w^{2-2/L} (s - w)``. ``"seed"``: seed 003's
        ``dc/dt = c^{2-2/L}(s - c)`` (eq. (39), line 172), kept to let simulation decide.

    Returns
    -------
    ndarray
        ``w(t)``, same shape as ``t``; the network is ``f = w beta . x``.

    Notes
    -----
    From ``du/dt = u^{L-1}(s - u^L)`` (seed 003, line 442) and ``c = u^L``: ``dc/dt = L c^{2-2/L} (s - c)``.
    Erratum 20: seed 003 eq. (39) and line 172 drop the factor ``L``; for ``L = 2`` its own App. B.3 has
    ``dc/dt = 2c(s - c)``. Unequal rates (feature_alignment.md sec. 4.3 [derived, GD-checked]):
    ``dw/dt = L kappa^{2/L} w^{2-2/L} (s - w)``. For ``L = 2`` the solution is the Saxe sigmoid
    ``w = s e^{2 kappa s t} / (e^{2 kappa s t} - 1 + s/w0)``. Integrated with ``solve_ivp`` (DOP853,
    ``rtol = 1e-11``) in ``y = log w``, whose right-hand side is smooth and bounded; :func:`deep_linear_time` is
    the independent inverse by quadrature.

    Examples
    --------
    >>> w = deep_linear_scale([0.0, 9.144747], 3, 1.0, 1e-3)
    >>> np.round(w, 6).tolist()
    [0.001, 0.5]
    """
    t = _times(t)
    L, s, w0, kappa = _check_scale(L, s, w0, kappa)
    rate = _scale_rate(L, s, kappa, form)
    ts, inverse = np.unique(t.ravel(), return_inverse=True)  # sorted, without duplicates (solve_ivp needs that)
    if ts.size == 0 or ts[-1] == 0:
        return np.full(t.shape, w0)

    def rhs(_, y):
        w = np.exp(y[0])
        return [rate * w ** (1.0 - 2.0 / L) * (s - w)]

    sol = integrate.solve_ivp(
        rhs, (0.0, float(ts[-1])), [np.log(w0)], method="DOP853", t_eval=ts, rtol=1e-11, atol=1e-12
    )
    if not sol.success:  # pragma: no cover - the right-hand side is smooth and bounded
        raise RuntimeError(f"deep_linear_scale: integration failed: {sol.message}")
    return np.exp(sol.y[0])[inverse].reshape(t.shape)


def deep_linear_time(w, L, s, w0, kappa=1.0, form="corrected"):
    """Time for the balanced deep linear network to reach end-to-end weight ``w`` (inverse of the scale ODE).

    Parameters
    ----------
    w : float
        Target weight, ``w0 <= w < s``.
    L, s, w0, kappa, form
        As in :func:`deep_linear_scale`.

    Returns
    -------
    float

    Notes
    -----
    ``t(w) = int_{w0}^{w} dv / (L kappa^{2/L} v^{2-2/L} (s - v))`` (separable ODE of :func:`deep_linear_scale`),
    computed by adaptive quadrature in ``log v``. ``L = 3``, ``u0 = 0.1`` (``w0 = 10^{-3}``), ``s = 1``:
    ``t(s/2) = 9.1447`` (corrected) vs ``27.434`` with the seed's ODE; GD on the balanced manifold gives 9.148
    (feature_alignment.md sec. 4.3).

    Examples
    --------
    >>> round(deep_linear_time(0.5, 3, 1.0, 1e-3), 4), round(deep_linear_time(0.5, 3, 1.0, 1e-3, form="seed"), 3)
    (9.1447, 27.434)
    """
    L, s, w0, kappa = _check_scale(L, s, w0, kappa)
    w = _real(w, "w", low=w0)
    if w >= s:
        raise ValueError(f"w must be < s = {s}, got {w!r}")
    rate = _scale_rate(L, s, kappa, form)
    val, _ = integrate.quad(
        lambda y: 1.0 / (rate * np.exp(y * (1.0 - 2.0 / L)) * (s - np.exp(y))),
        np.log(w0),
        np.log(w),
        epsabs=0.0,
        epsrel=1e-12,
        limit=200,
    )
    return float(val)


def deep_linear_blowup_time(L, s, w0, kappa=1.0):
    """Blow-up time ``t_*`` of the early-time deep linear dynamics: the onset of learning for ``L >= 3``.

    Parameters
    ----------
    L : int
        Depth ``L >= 3``.
    s, w0, kappa : float
        As in :func:`deep_linear_scale`.

    Returns
    -------
    float

    Notes
    -----
    Neglecting ``w`` against ``s``: ``w(t) = [w0^{-(L-2)/L} - (L-2) kappa^{2/L} s t]^{-L/(L-2)}``, which blows up
    at ``t_* = w0^{-(L-2)/L} / ((L-2) kappa^{2/L} s)``, i.e. ``u0^{-(L-2)} / ((L-2) s)`` for equal rates
    (feature_alignment.md sec. 4.3, corrected eq. (40)). Erratum 22: seed 003 states
    ``t_1/2 ~ L sigma^{-(L-2)} / (s(L-2))`` (line 172; line 450 prints the exponent ``-L-2``); its factor ``L``
    comes from the missing ``L`` in its ODE. The exact time to reach ``s/2`` (:func:`deep_linear_time`) differs
    from ``t_*`` by an amount that stays bounded as ``w0 -> 0``, so ``t(s/2)/t_* -> 1``.

    Examples
    --------
    >>> round(deep_linear_blowup_time(3, 1.0, 1e-3), 6)
    10.0
    """
    L, s, w0, kappa = _check_scale(L, s, w0, kappa)
    if L < 3:
        raise ValueError(f"L must be an integer >= 3 (L = 2 has no finite blow-up), got {L}")
    return float(w0 ** (-(L - 2) / L) / ((L - 2) * kappa ** (2.0 / L) * s))


def deep_linear_ntk_coeffs(L, etas=None, lr_weighted=False):
    """Coefficients ``(A, B)`` of the balanced deep linear NTK ``u^{2L-2} x^T [A r1 r1^T + B I] x'``.

    Parameters
    ----------
    L : int
        Depth ``L >= 2``.
    etas : array_like, optional
        The ``L`` per-layer learning rates (default equal); only the ratios ``eta_l / eta_L`` matter.
    lr_weighted : bool
        False: the unweighted parameter-gradient kernel ``sum_l K_l`` (seed 003, eqs. (10), (34)-(36)).
        True: the rate-weighted kernel ``sum_l (eta_l/eta_L) K_l`` that drives ``df/dt`` under per-layer rates
        (time in units of ``eta_L`` x steps).

    Returns
    -------
    (A, B) : tuple of float

    Notes
    -----
    With ``rho_l = eta_l/eta_L`` and balanced ``W^l = sqrt(rho_l) u r_{l+1} r_l^T``, layer ``l``'s block is
    ``K_l = u^{2L-2} prod_{l' != l} rho_{l'} x^T P_l x'`` with ``P_1 = I`` and ``P_l = r1 r1^T`` for ``l >= 2``. So
    (seed 003, eq. (36)) ``B = prod_{l != 1} rho_l``, ``A = sum_{l=2}^{L} prod_{l' != l} rho_{l'}``, and
    ``A/B = (L - 1) eta_1/eta`` when ``eta_2 = ... = eta_L = eta`` (eq. (37)). Weighting each block by ``rho_l``
    gives ``B_eta = prod_l rho_l``, ``A_eta = (L - 1) B_eta``: ``A_eta/B_eta = L - 1`` for *any* rates
    (feature_alignment.md sec. 4.3 [derived]; erratum 24: "faster first-layer learning gives more feature
    learning", seed 003 lines 168, 417, holds for the unweighted kernel only).

    Examples
    --------
    >>> deep_linear_ntk_coeffs(3, [2.0, 1.0, 1.0]), deep_linear_ntk_coeffs(3, [2.0, 1.0, 1.0], lr_weighted=True)
    ((4.0, 1.0), (4.0, 2.0))
    """
    L, rho = _rates(L, etas)
    if lr_weighted:
        B = float(np.prod(rho))
        return (L - 1) * B, B
    others = np.array([np.prod(np.delete(rho, l)) for l in range(L)])  # prod_{l' != l} rho_l'
    return float(others[1:].sum()), float(others[0])


def final_ntk_linear(beta, s, L, etas=None, lr_weighted=False):
    """Final NTK matrix of a deep linear network trained from small balanced initialization.

    Parameters
    ----------
    beta : array_like, shape (D,)
        Task direction (normalized internally).
    s : float
        Target scale ``s > 0`` (``f -> s beta . x``).
    L : int
        Depth ``L >= 2``.
    etas, lr_weighted
        As in :func:`deep_linear_ntk_coeffs`.

    Returns
    -------
    ndarray, shape (D, D)
        ``M_inf`` with ``K_inf(x, x') = x^T M_inf x'``.

    Notes
    -----
    ``M_inf = (u*)^{2L-2} [A beta beta^T + B I]`` with ``u* = (s / kappa)^{1/L}`` (``kappa`` from
    :func:`lr_kappa`), i.e. ``s^{(2L-2)/L} [(L-1) beta beta^T + I]`` for equal rates
    (feature_alignment.md sec. 4.3). Erratum 23: seed 003, eq. (42) prints ``s^{2L-2}``; for ``L = 2`` both agree
    with its line 148 (``s (beta beta^T + I)``), and a GD check at ``L = 3``, ``s = 2`` gives the isotropic
    eigenvalue 2.536 vs ``2^{4/3} = 2.520`` (seed: 16). Holds for any input covariance, since only balance and
    convergence to ``f = s beta . x`` are used (seed 003, D.2).

    Examples
    --------
    >>> np.round(final_ntk_linear([1.0, 0.0], 2.0, 3), 4).tolist()
    [[7.5595, 0.0], [0.0, 2.5198]]
    """
    b = _unit(beta)
    s = _real(s, "s", low=0.0, low_open=True)
    A, B = deep_linear_ntk_coeffs(L, etas, lr_weighted)
    u_star = (s / lr_kappa(L, etas)) ** (1.0 / L)
    return u_star ** (2 * L - 2) * (A * np.outer(b, b) + B * np.eye(b.size))


def final_nngp_linear(beta, L, l):
    """Final hidden-layer (NNGP) kernel matrix of a deep linear network: ``(beta^T beta)^{l/L}``.

    Parameters
    ----------
    beta : array_like, shape (D,) or (C, D)
        Teacher weights *including* their scale (``s beta_hat`` for scalar output; ``C x D`` for ``C`` outputs).
    L : int
        Depth ``L >= 2``.
    l : int
        Layer ``0 <= l <= L`` (``l = 0`` is the input kernel ``x . x'``).

    Returns
    -------
    ndarray, shape (D, D)
        ``N_l`` with ``K_l(x, x') = h_l(x) . h_l(x') = x^T N_l x'``.

    Notes
    -----
    Seed 003, D.3 and G.1 (eq. (54)): with equal rates, balanced small initialization and convergence,
    ``K_l = x^T W^{1T} ... W^{lT} W^l ... W^1 x' = x^T (beta^T beta)^{l/L} x'`` (PSD matrix power; the
    zero eigenvalues stay zero for ``l >= 1``). Scalar output: ``s^{2l/L} (beta_hat . x)(beta_hat . x')``, which on
    the training set is ``s^{2l/L - 2} y y^T``. Erratum 25: seed 003, line 472's ``K_l = (y y^T)^{l/L}`` is wrong
    as a matrix power (it would give ``|y|^{2l/L-2} y y^T``); any alignment with ``y y^T`` is 1 for every
    ``l >= 1`` either way.

    Examples
    --------
    >>> np.round(final_nngp_linear([0.0, 8.0], 3, 2), 6).tolist()
    [[0.0, 0.0], [0.0, 16.0]]
    """
    B = finite_array(beta, "beta", ndim=(1, 2))
    B = B.reshape(1, -1) if B.ndim == 1 else B
    L = _int(L, "L", 2)
    l = _int(l, "l", 0)
    if l > L:
        raise ValueError(f"l must be an integer in [0, L = {L}], got {l}")
    if l == 0:
        return np.eye(B.shape[1])
    _, S, Vt = np.linalg.svd(B, full_matrices=False)
    return (Vt.T * S ** (2.0 * l / L)) @ Vt


# ----------------------------------------------------------------------------------------------------------------
# transfer learning with the learned kernel (seed 003 App. E)
# ----------------------------------------------------------------------------------------------------------------
def transfer_Eg(A, alpha, D, P, ridge=0.0, noise=0.0):
    """Generalization error of kernel regression with the learned linear kernel on a correlated new task.

    Parameters
    ----------
    A : float
        Feature-learning strength ``A >= 0`` of ``K(x, x') = x^T [A beta beta^T + I] x'``.
    alpha : float
        Overlap of the new task with ``beta``, ``|alpha| <= 1``: ``w = alpha beta + sqrt(1 - alpha^2) w_perp``.
    D : int
        Input dimension (``x ~ N(0, I_D)``).
    P : float or array_like
        Training-set sizes.
    ridge, noise : float
        Ridge on the unnormalized Gram matrix and label-noise variance, as in
        :func:`~meanfield.alignment_theory.learning_curve`.

    Returns
    -------
    LearningCurve
        Same fields as :func:`~meanfield.alignment_theory.learning_curve`.

    Notes
    -----
    Seed 003, App. E: eigenvalues ``1 + A`` (along ``beta``, target power ``alpha^2``) and ``1`` (``D - 1`` times,
    total power ``1 - alpha^2``), put into the learning-curve theory with the ``kappa^2`` restored (erratum 26;
    the seed's App. E formula, line 512, lacks it and gives ``E_g ~ 10^{-4}`` instead of order 1).

    Examples
    --------
    >>> round(float(transfer_Eg(0.0, 0.5, 100, 50).Eg), 12)
    0.5
    """
    A = _real(A, "A", low=0.0)
    alpha = _real(alpha, "alpha", low=-1.0, high=1.0)
    D = _int(D, "D", 2)
    eigs = np.concatenate([[1.0 + A], np.ones(D - 1)])
    abar2 = np.concatenate([[alpha**2], np.full(D - 1, (1.0 - alpha**2) / (D - 1))])
    return learning_curve(eigs, abar2, P, ridge=ridge, noise=noise)
