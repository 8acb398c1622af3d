"""Ready-made experiments that test the theory on trained finite networks.

* :func:`peak_layers_trained`: Lou et al. 2022, Fig. 3 on the CPU. For each depth, train an MLP and compare the layer
  of best tangent-kernel alignment, :math:`\\arg\\max_l A_l`, with the predicted equilibrium layer :math:`l^*(L)`.
* :func:`default_lr`: its learning rate per depth.
* :func:`equilibrium_experiment` / :func:`summarize_equilibrium`: the same test with the protocol of Lou et al. 2022
  (per-depth learning rates and epoch budgets, stop at training loss 0.1, several initializations per depth,
  bootstrap intervals over runs); resumable, spread over an executor; ``meanfield experiment equilibrium``.
* :func:`learning_rate_sweep` / :func:`chosen_learning_rates`: the learning rate of each depth picked by held-out
  accuracy, as Lou et al. 2022 picked theirs; ``meanfield experiment lr-sweep``, then
  ``meanfield experiment equilibrium --learning-rates-from``.

The default data set is :func:`meanfield.data.digits`, which needs the optional extra ``experiments``
(scikit-learn).
"""

from .eh_protocol import PRESETS, EHProtocol, EHSummary, equilibrium_experiment, preset, summarize_equilibrium
from .equilibrium import TrainedPeaks, default_lr, peak_layers_trained
from .lr_sweep import LRChoice, chosen_learning_rates, learning_rate_sweep

__all__ = [
    "PRESETS",
    "EHProtocol",
    "EHSummary",
    "LRChoice",
    "TrainedPeaks",
    "chosen_learning_rates",
    "default_lr",
    "equilibrium_experiment",
    "learning_rate_sweep",
    "peak_layers_trained",
    "preset",
    "summarize_equilibrium",
]
