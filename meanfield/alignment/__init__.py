"""Similarity measures between kernels, layer alignment and kernel learning curves."""

from .learning_curves import (
    CumulativePower,
    LearningCurve,
    cumulative_power,
    init_layer_alignment,
    learning_curve,
)
from .measures import (
    LAYOUTS,
    AlignmentWarning,
    center,
    cka,
    cosine,
    hsic,
    kta,
    layer_alignment,
    linear_cka,
    psd_power,
    target_kernel,
    u_center,
)
from .tracking import KernelAlignment, kernel_target_alignment

__all__ = [
    "AlignmentWarning",
    "CumulativePower",
    "KernelAlignment",
    "LAYOUTS",
    "LearningCurve",
    "center",
    "cka",
    "cosine",
    "cumulative_power",
    "hsic",
    "init_layer_alignment",
    "kernel_target_alignment",
    "kta",
    "layer_alignment",
    "learning_curve",
    "linear_cka",
    "psd_power",
    "target_kernel",
    "u_center",
]
