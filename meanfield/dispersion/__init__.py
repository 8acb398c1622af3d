"""Finite-width NTK dispersion of deep ReLU networks (Seleznova & Kutyniok 2022).

``moments``: exact finite-width moments of the diagonal NTK entry and Thm. 3.2 as published; ``limits``: the
infinite-depth-and-width limits (Thm. 3.1, corrected); ``offdiagonal``: off-diagonal entries (Thm. 3.3);
``sampling``: Monte Carlo over random networks and the dispersion estimator.
"""

from .limits import dispersion_limit, dispersion_limit_expr
from .moments import (
    DispersionEstimate,
    GDStepResult,
    NTKMoments,
    NTKPairSample,
    NTKSample,
    estimate,
    gd_step_change,
    ntk_moments,
    sample_ntk_diagonal,
    sample_ntk_pair,
)
from .offdiagonal import OffdiagonalBounds, offdiagonal_bounds, offdiagonal_eq18, offdiagonal_mean_ratio

__all__ = [
    "DispersionEstimate",
    "GDStepResult",
    "NTKMoments",
    "NTKPairSample",
    "NTKSample",
    "OffdiagonalBounds",
    "dispersion_limit",
    "dispersion_limit_expr",
    "estimate",
    "gd_step_change",
    "ntk_moments",
    "offdiagonal_bounds",
    "offdiagonal_eq18",
    "offdiagonal_mean_ratio",
    "sample_ntk_diagonal",
    "sample_ntk_pair",
]
