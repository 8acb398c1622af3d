"""Ready-made experiments that test the theory on trained finite networks.

* :func:`peak_layers_trained`: seed 000's Fig. 3 on the CPU. For each depth, train an MLP and compare the layer of
  best tangent-kernel alignment, :math:`\\arg\\max_l A_l`, with the predicted equilibrium layer :math:`l^*(L)`.
* :func:`digits`: scikit-learn's bundled handwritten digits (no download), standardized to :math:`\\|x\\|^2 = d`.

Needs the optional extra ``experiments`` (scikit-learn) only for :func:`digits`.
"""

from .equilibrium import TrainedPeaks, default_lr, digits, peak_layers_trained, standardize

__all__ = ["TrainedPeaks", "default_lr", "digits", "peak_layers_trained", "standardize"]
