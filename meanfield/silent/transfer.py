"""Transfer learning with the kernel learned by a linear network (Atanasov et al. 2022, App. E)."""

from __future__ import annotations

import numpy as np

from .._checks import check_int, check_real
from ..alignment.learning_curves import learning_curve


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
        :func:`meanfield.alignment.learning_curve`.

    Returns
    -------
    LearningCurve
        Same fields as :func:`meanfield.alignment.learning_curve`.

    Notes
    -----
    Atanasov et al. 2022, App. E: eigenvalues ``1 + A`` (along ``beta``, target power ``alpha^2``) and ``1``
    (``D - 1`` times, total power ``1 - alpha^2``), put into the learning-curve theory with the ``kappa^2`` that
    their App. E.1 formula omits (without it ``E_g ~ 10^{-4}`` instead of order 1).

    Examples
    --------
    >>> round(float(transfer_Eg(0.0, 0.5, 100, 50).Eg), 12)
    0.5
    """
    A = check_real(A, "A", low=0.0)
    alpha = check_real(alpha, "alpha", low=-1.0, high=1.0)
    D = check_int(D, "D", 2)
    eigs = np.concatenate([[1.0 + A], np.ones(D - 1)])
    abar2 = np.concatenate([[alpha**2], np.full(D - 1, (1.0 - alpha**2) / (D - 1))])
    return learning_curve(eigs, abar2, P, ridge=ridge, noise=noise)
