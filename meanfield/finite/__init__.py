"""Finite networks: the independent check of the theory (MLP, Monte Carlo, training)."""

from .mlp import (
    MLP,
    Forward,
)
from .montecarlo import (
    QUANTITIES,
    Bootstrap,
    Simulation,
    simulate,
)
from .training import (
    History,
    accuracy,
    train,
)

__all__ = [
    "Bootstrap",
    "Forward",
    "History",
    "MLP",
    "QUANTITIES",
    "Simulation",
    "accuracy",
    "simulate",
    "train",
]
