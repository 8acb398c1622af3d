"""Finite networks: the independent check of the theory (MLP, the Monte Carlo runner, training rules, training)."""

from .mlp import (
    MLP,
    Forward,
)
from .montecarlo import (
    QUANTITIES,
    Samples,
    Simulation,
    run,
    simulate,
)
from .optim import (
    gd_step,
    slo_step,
    step_scales,
)
from .training import (
    History,
    accuracy,
    train,
)

__all__ = [
    "Forward",
    "History",
    "MLP",
    "QUANTITIES",
    "Samples",
    "Simulation",
    "accuracy",
    "gd_step",
    "run",
    "simulate",
    "slo_step",
    "step_scales",
    "train",
]
