"""The silent alignment effect in linear networks (Atanasov et al. 2022; mode times of Saxe et al. 2014)."""

from .data import linear_teacher, partial_whiten, whiten
from .deep_linear import (
    NTKCoefficients,
    deep_linear_blowup_time,
    deep_linear_ntk_coeffs,
    deep_linear_scale,
    deep_linear_time,
    final_nngp_linear,
    final_ntk_linear,
    lr_kappa,
)
from .transfer import transfer_Eg
from .two_layer import (
    FORMS,
    AlignmentLimits,
    OrderParameters,
    alignment_curve,
    alignment_limits,
    alignment_time,
    expected_q0,
    half_loss_time,
    isotropic_alignment,
    matrix_alignment,
    order_parameters,
    saxe_mode_times,
    two_layer_loss,
    two_layer_ntk_matrix,
    two_layer_qr,
)
from .unwhitened import unwhitened_phase1_matrix, unwhitened_spike

__all__ = [
    "AlignmentLimits",
    "FORMS",
    "NTKCoefficients",
    "OrderParameters",
    "alignment_curve",
    "alignment_limits",
    "alignment_time",
    "deep_linear_blowup_time",
    "deep_linear_ntk_coeffs",
    "deep_linear_scale",
    "deep_linear_time",
    "expected_q0",
    "final_nngp_linear",
    "final_ntk_linear",
    "half_loss_time",
    "isotropic_alignment",
    "linear_teacher",
    "lr_kappa",
    "matrix_alignment",
    "order_parameters",
    "partial_whiten",
    "saxe_mode_times",
    "transfer_Eg",
    "two_layer_loss",
    "two_layer_ntk_matrix",
    "two_layer_qr",
    "unwhitened_phase1_matrix",
    "unwhitened_spike",
    "whiten",
]
