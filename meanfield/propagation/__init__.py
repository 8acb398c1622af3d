"""Propagation of kernels through the layers: over datasets and along one pair of inputs."""

from .dataset import Kernels, kernels
from .inputs import check_inputs
from .ondisk import DiskKernels, kernels_to_disk
from .pair import PairCurve, pair_curve

__all__ = [
    "DiskKernels",
    "Kernels",
    "PairCurve",
    "check_inputs",
    "kernels",
    "kernels_to_disk",
    "pair_curve",
]
