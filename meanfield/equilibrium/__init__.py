"""The Equilibrium Hypothesis: information loss and the predicted peak layer (Lou et al. 2022)."""

from .peak import (
    InformationLoss,
    PeakLayer,
    ScalingFit,
    information_loss,
    peak_layer,
    peak_layer_constant,
    relu_eoc_inverse_root,
    relu_eoc_one_minus_c,
    relu_eoc_slope,
    scaling_fit,
)

__all__ = [
    "InformationLoss",
    "PeakLayer",
    "ScalingFit",
    "information_loss",
    "peak_layer",
    "peak_layer_constant",
    "relu_eoc_inverse_root",
    "relu_eoc_one_minus_c",
    "relu_eoc_slope",
    "scaling_fit",
]
