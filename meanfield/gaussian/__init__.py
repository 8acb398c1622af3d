"""Gaussian expectations: closed forms, the Hermite expansion and the one quadrature."""

from .maps import (
    correlation_map,
    correlation_slope,
    decorrelation_map,
    gaussian_moments,
    hermite_coefficients,
    variance_map,
)

__all__ = [
    "correlation_map",
    "correlation_slope",
    "decorrelation_map",
    "gaussian_moments",
    "hermite_coefficients",
    "variance_map",
]
