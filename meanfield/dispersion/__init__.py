"""Finite-width NTK dispersion (Seleznova & Kutyniok 2022)."""

from .estimate import (
    DispersionEstimate,
    estimate,
)
from .first_step import (
    GDStepResult,
    gd_step_change,
)
from .moments import (
    NTKMoments,
    dispersion_limit,
    dispersion_limit_expr,
    ntk_moments,
    offdiagonal_bounds,
    offdiagonal_eq18,
    offdiagonal_mean_ratio,
)
from .sampling import (
    NTKPairSample,
    NTKSample,
    sample_ntk_diagonal,
    sample_ntk_pair,
)

__all__ = [
    "DispersionEstimate",
    "GDStepResult",
    "NTKMoments",
    "NTKPairSample",
    "NTKSample",
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
