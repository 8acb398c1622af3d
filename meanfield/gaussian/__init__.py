"""Gaussian expectations: closed forms, the Hermite expansion, the one 1-D quadrature and the scalar maps."""

from .hermite import hermite_coefficients
from .maps import (
    correlation_map,
    correlation_slope,
    decorrelation_map,
    gaussian_moments,
    single_moments,
    variance_map,
    variance_slope,
)

__all__ = [
    "correlation_map",
    "correlation_slope",
    "decorrelation_map",
    "gaussian_moments",
    "hermite_coefficients",
    "single_moments",
    "variance_map",
    "variance_slope",
]
