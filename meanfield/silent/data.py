"""Data for the silent-alignment theory: whitening, partial whitening and the linear teacher (Atanasov et al. 2022).

Conventions: ``P`` inputs ``x in R^D`` as rows, column-centred and whitened so that ``X^T X / P = I_D``; teacher
``y = s beta . x`` with a unit vector ``beta``.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_real, finite_array


def unit_vector(beta, name="beta") -> np.ndarray:
    """``beta`` as a unit vector (a finite, non-zero 1-D array)."""
    b = finite_array(beta, name, ndim=(1,))
    if b.size == 0 or not np.any(b):
        raise ValueError(f"{name} must be a non-zero vector")
    b = np.ldexp(b, -np.frexp(np.max(np.abs(b)))[1])  # exact scaling: a tiny or huge beta keeps its direction
    return b / np.linalg.norm(b)


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
    Atanasov et al. 2022 assume zero-mean inputs (sec. 3) and call the data whitened when all non-zero singular
    values of ``X`` are equal (sec. 3.1.1); here ``Sigma = X^T X / P = I_D`` exactly. The SVD form is the symmetric
    (ZCA-like) whitening ``X_c (X_c^T X_c / P)^{-1/2}``.

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
    """Partially whiten a data matrix: ``X_gamma = c U S^gamma V^T`` (Atanasov et al. 2022, sec. 5).

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
    Atanasov et al. 2022, sec. 5 and Fig. 6: ``X = U S V^T -> U S^gamma V^T``, i.e. covariance eigenvalues
    ``lambda_k -> lambda_k^gamma`` up to scale. The overall scale ``c`` is an implementation choice: it makes
    ``gamma = 0`` coincide with :func:`whiten` and keeps the time scale of the dynamics comparable across
    ``gamma``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((40, 3)) * [1.0, 2.0, 4.0]
    >>> bool(np.allclose(partial_whiten(X, 0.0), whiten(X)))
    True
    """
    gamma = check_real(gamma, "gamma", low=0.0, high=1.0)
    U, S, Vt = _centred_svd(X)
    P, D = U.shape[0], Vt.shape[0]
    Sg = S**gamma
    c = np.sqrt(P * D / np.sum(Sg**2))
    return c * (U * Sg) @ Vt


def linear_teacher(X, beta, s=1.0):
    """Targets of the linear teacher of Atanasov et al. 2022: ``y = s beta_hat^T x``.

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
    Atanasov et al. 2022, sec. 3: ``y^mu = s beta_T . x^mu`` with ``|beta_T| = 1``.

    Examples
    --------
    >>> linear_teacher([[1.0, 2.0]], [3.0, 4.0], s=5.0).tolist()
    [11.0]
    """
    X = finite_array(X, "X", ndim=(2,))
    b = unit_vector(beta)
    if X.shape[1] != b.size:
        raise ValueError(f"beta must have length D = {X.shape[1]}, got {b.size}")
    return check_real(s, "s", low=0.0, low_open=True) * (X @ b)
