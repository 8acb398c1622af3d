"""Propagation of kernels through the layers: over datasets and along one pair of inputs."""

from .dataset import Kernels, kernels
from .inputs import check_inputs
from .pair import PairCurve, pair_curve

__all__ = [
    "Kernels",
    "PairCurve",
    "check_inputs",
    "kernels",
    "pair_curve",
]
