"""Two-layer linear networks on unwhitened data: the early dynamics and the kernel spike (Atanasov et al. 2022).

Their sec. 3.2 and App. B.2: early in training the kernel grows along ``Sigma beta``, not ``beta``, and must rotate
later, which breaks silent alignment.
"""

from __future__ import annotations

import numpy as np

from .._checks import finite_array
from .data import unit_vector


def _sigma_beta(Sigma, beta):
    S = finite_array(Sigma, "Sigma", ndim=(2,))
    b = unit_vector(beta)
    if S.shape != (b.size, b.size) or not np.allclose(S, S.T, rtol=1e-10, atol=1e-14):
        raise ValueError(f"Sigma must be a symmetric ({b.size}, {b.size}) matrix")
    return S, b


def unwhitened_phase1_matrix(Sigma, beta):
    """Linear system ``dr/dt = s T r`` of the early two-layer dynamics on unwhitened data.

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
    Atanasov et al. 2022, App. B.2, eqs. (20)-(23): early on ``da/dt = s W Sigma beta``,
    ``dW/dt = s a beta^T Sigma``; with ``a = beta^T Sigma beta``, ``b = beta^T Sigma^2 beta``

    ``T = [[0, a, 1, 0, 0], [0, 0, 0, 2, 0], [b, 0, 0, a, 0], [0, b, 0, 0, 1], [0, 0, 0, 2b, 0]]``,

    with eigenvalues ``{0, +-sqrt(b), +-2 sqrt(b)}`` independent of ``a`` (every row re-derived here;
    tests/test_silent.py checks the matrix against the linearized flow, and the spectrum). The growing mode
    ``2 sqrt(b)`` puts the early kernel spike along ``Sigma beta`` (:func:`unwhitened_spike`), not ``beta``.

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
    Atanasov et al. 2022, App. B.2, eq. (25): the spike points along ``Sigma beta``; at late times the kernel must
    rotate to the final ``s x^T (beta beta^T + I) x'`` (sec. 3.2), during the loss drop, which breaks silent alignment.
    For whitened data it reduces to ``beta beta^T + I``.

    Examples
    --------
    >>> unwhitened_spike(np.eye(2), [0.0, 1.0]).tolist()
    [[1.0, 0.0], [0.0, 2.0]]
    """
    S, b = _sigma_beta(Sigma, beta)
    Sb = S @ b
    return np.outer(Sb, Sb) / np.linalg.norm(Sb) + np.eye(b.size)
