"""meanfield: exact, fast signal propagation and tangent-kernel theory for random deep networks.

The pipeline, one subpackage per stage:

* the spec: :class:`Network` (:mod:`meanfield.network`) and the activation table (:mod:`meanfield.activations`);
* Gaussian expectations: closed forms, the Hermite expansion and the one quadrature (:mod:`meanfield.gaussian`);
* propagation through the layers, over datasets and along one pair (:func:`kernels`, :func:`pair_curve`);
* theory built on it: :func:`phase`, :mod:`meanfield.equilibrium`, :mod:`meanfield.dispersion`,
  :mod:`meanfield.alignment`, :mod:`meanfield.silent`, :mod:`meanfield.nfa`;
* beside it, :mod:`meanfield.finite` (the :class:`MLP`, the one Monte Carlo runner :func:`simulate`, training), the
  independent check, which shares only the spec with the theory.

Papers are cited by author and year; the bibliography is ``docs/references.md`` in the repository.
"""

from . import alignment, data, dispersion, equilibrium, experiments, finite, gaussian, nfa, propagation, silent, stats
from . import plot as plot  # matplotlib is imported only when a plot function is called
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
from .phase_diagram import PhaseDiagram, phase_diagram
from .prediction import Prediction, kernel_regression, max_learning_rate, predict, predict_kernels
from .propagation import Kernels, PairCurve, kernels, pair_curve
from .propagation.ondisk import DiskKernels, kernels_to_disk
from .stats import ScalingFit, scaling_fit

__version__ = "0.1.0"

__all__ = [
    # subpackages
    "alignment",
    "data",
    "dispersion",
    "equilibrium",
    "experiments",
    "finite",
    "gaussian",
    "nfa",
    "plot",
    "propagation",
    "silent",
    "stats",
    # functions and classes
    "Activation",
    "ACTIVATION_NAMES",
    "c_curve",
    "cka",
    "correlation_map",
    "correlation_slope",
    "cumulative_power",
    "decorrelation_map",
    "dispersion_limit",
    "dispersion_limit_expr",
    "edge_of_chaos",
    "fixed_point_q",
    "gaussian_moments",
    "get_activation",
    "hermite_coefficients",
    "History",
    "information_loss",
    "InformationLoss",
    "Kernels",
    "kernels",
    "kernels_to_disk",
    "DiskKernels",
    "leaky_relu",
    "kernel_regression",
    "learning_curve",
    "LearningCurve",
    "max_learning_rate",
    "MLP",
    "Network",
    "ntk_moments",
    "NTKMoments",
    "pair_curve",
    "predict",
    "predict_kernels",
    "Prediction",
    "PairCurve",
    "peak_layer",
    "PeakLayer",
    "Phase",
    "phase",
    "phase_diagram",
    "PhaseDiagram",
    "q_curve",
    "sample_ntk_diagonal",
    "scaling_fit",
    "ScalingFit",
    "simulate",
    "Simulation",
    "target_kernel",
    "train",
    "variance_map",
]
