"""meanfield: exact, fast signal propagation and tangent-kernel theory for random deep networks."""

from .activations import ACTIVATION_NAMES, Activation, get_activation, leaky_relu
from .network import Network

__version__ = "0.1.0"

__all__ = ["ACTIVATION_NAMES", "Activation", "Network", "get_activation", "leaky_relu"]
