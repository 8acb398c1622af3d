"""Ready-made experiments that test the theory on trained finite networks.

* :func:`peak_layers_trained`: Lou et al. 2022, Fig. 3 on the CPU. For each depth, train an MLP and compare the layer
  of best tangent-kernel alignment, :math:`\\arg\\max_l A_l`, with the predicted equilibrium layer :math:`l^*(L)`.
* :func:`default_lr`: its learning rate per depth.

The default data set is :func:`meanfield.data.digits`, which needs the optional extra ``experiments``
(scikit-learn).
"""

from .equilibrium import TrainedPeaks, default_lr, peak_layers_trained

__all__ = ["TrainedPeaks", "default_lr", "peak_layers_trained"]
