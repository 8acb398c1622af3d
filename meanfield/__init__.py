"""meanfield: exact, fast signal propagation and tangent-kernel theory for random deep networks.

The pipeline: a :class:`Network` spec -> Gaussian kernel maps (:mod:`meanfield.maps`) -> kernels over a dataset
(:func:`kernels`) and the phase diagram (:func:`phase`) -> equilibrium, dispersion and alignment analyses, each
checked against finite random networks.
"""

from . import alignment, dispersion, equilibrium, experiments, finite, gaussian, nfa, propagation, silent  # noqa: F401
from .activations import ACTIVATION_NAMES, Activation, get_activation, leaky_relu
from .alignment import LearningCurve, cka, cumulative_power, learning_curve, target_kernel
from .dispersion import NTKMoments, dispersion_limit, dispersion_limit_expr, ntk_moments, sample_ntk_diagonal
from .equilibrium import InformationLoss, PeakLayer, information_loss, peak_layer
from .finite import MLP, History, Simulation, simulate, train
from .gaussian import (
    correlation_map,
    correlation_slope,
    decorrelation_map,
    gaussian_moments,
    hermite_coefficients,
    variance_map,
)
from .network import Network
from .phase import Phase, c_curve, edge_of_chaos, fixed_point_q, phase, q_curve
from .propagation import Kernels, PairCurve, kernels, pair_curve
from .stats import ScalingFit, scaling_fit

__version__ = "0.1.0"

__all__ = [
    "History",
    "experiments",
    "train",
    "nfa",
    "alignment",
    "cka",
    "target_kernel",
    "equilibrium",
    "InformationLoss",
    "PeakLayer",
    "ScalingFit",
    "information_loss",
    "peak_layer",
    "scaling_fit",
    "MLP",
    "Simulation",
    "simulate",
    "ACTIVATION_NAMES",
    "LearningCurve",
    "NTKMoments",
    "cumulative_power",
    "dispersion",
    "dispersion_limit",
    "dispersion_limit_expr",
    "learning_curve",
    "ntk_moments",
    "sample_ntk_diagonal",
    "silent",
    "Activation",
    "Kernels",
    "Network",
    "PairCurve",
    "Phase",
    "c_curve",
    "correlation_map",
    "correlation_slope",
    "decorrelation_map",
    "edge_of_chaos",
    "fixed_point_q",
    "gaussian_moments",
    "get_activation",
    "hermite_coefficients",
    "kernels",
    "leaky_relu",
    "pair_curve",
    "phase",
    "q_curve",
    "variance_map",
]
