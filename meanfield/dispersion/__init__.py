"""Finite-width NTK dispersion of deep ReLU networks (Seleznova & Kutyniok 2022).

``moments``: exact finite-width moments of the diagonal NTK entry and Thm. 3.2 as published; ``limits``: the
infinite-depth-and-width limits (Thm. 3.1, corrected); ``offdiagonal``: off-diagonal entries (Thm. 3.3);
``sampling``: Monte Carlo over random networks; ``estimate``: the dispersion estimator; ``first_step``: the change
of the NTK after one gradient-descent step.
"""

from .estimate import DispersionEstimate, estimate
from .first_step import GDStepResult, gd_step_change
from .limits import dispersion_limit, dispersion_limit_expr
from .moments import NTKMoments, ntk_moments
from .offdiagonal import OffdiagonalBounds, offdiagonal_bounds, offdiagonal_eq18, offdiagonal_mean_ratio
from .sampling import NTKPairSample, NTKSample, sample_ntk_diagonal, sample_ntk_pair

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
