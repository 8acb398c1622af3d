"""The Equilibrium Hypothesis of Lou et al. 2022: information loss and the predicted peak layer l*(L).

* :mod:`.information`: forward and backward information loss of every layer (:func:`information_loss`);
* :mod:`.peak`: the layer where they balance, :math:`l^*(L)`, for one depth or many (:func:`peak_layer`);
* :mod:`.asymptotics`: ReLU edge-of-chaos asymptotics and the constant of :math:`l^* \\simeq C L^{3/5}`;
* :mod:`.curves`: the per-layer curves both are built from.

Log-log fits of :math:`l^*(L)` are :func:`meanfield.stats.scaling_fit`.
"""

from .asymptotics import (
    peak_layer_constant,
    relu_eoc_inverse_root,
    relu_eoc_one_minus_c,
    relu_eoc_slope,
    residual_peak_layer_constant,
)
from .information import InformationLoss, information_loss
from .peak import PeakLayer, peak_layer

__all__ = [
    "InformationLoss",
    "PeakLayer",
    "information_loss",
    "peak_layer",
    "peak_layer_constant",
    "relu_eoc_inverse_root",
    "relu_eoc_one_minus_c",
    "relu_eoc_slope",
    "residual_peak_layer_constant",
]
