"""The one network description shared by the theory and the finite networks.

Index conventions (those of Lou et al. 2022, eq. (8)): a network of depth ``L`` has ``L``
weight matrices. Layer ``l = 1..L`` owns ``(W_l, b_l)`` and produces the pre-activations ``z_l``; the input to
layer ``l`` is ``h_{l-1}`` with ``h_0 = x`` (no activation on the raw input) and ``h_{l-1} = phi(z_{l-1})``.
Layer ``L`` is the readout. Hidden widths are ``N_1..N_{L-1}``; ``N_0 = d`` is the input dimension.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._checks import check_choice, check_int, check_real
from .activations import Activation, get_activation

__all__ = ["Network"]

PARAMETERIZATIONS = ("ntk", "standard")


@dataclass(frozen=True)
class Network:
    """A fully connected network: depth, activation, initialization variances, parameterization, widths.

    Parameters
    ----------
    depth : int
        ``L >= 1``, the number of weight matrices (``L - 1`` hidden layers and a readout).
    activation : str or Activation
        One of ``relu, erf, linear, leaky_relu (or 'leaky_relu:<slope>'), tanh, gelu, softplus, sigmoid,
        silu``, or a user :class:`~meanfield.Activation`.
    sigma_w2 : float
        Weight variance ``sigma_w^2 > 0`` (the weights have variance ``sigma_w^2 / fan_in``).
    sigma_b2 : float
        Bias variance ``sigma_b^2 >= 0``.
    parameterization : {"ntk", "standard"}
        NTK (NTP; Jacot et al. 2018) or standard (SP) parameterization. The forward functions and
        the NNGP kernels are identical; the tangent kernels differ.
    width : None, int or sequence of int
        ``None`` for the infinite-width theory, an int for equal hidden widths, or the ``L - 1`` hidden widths
        (a list, tuple, range or 1-D integer array).

    Every field is validated strictly (a ValueError naming it): integers must be ints (not bools, floats or
    strings), the variances real numbers (not strings, bools or arrays), ``width`` an ordered sequence (not a set).

    Examples
    --------
    >>> net = Network(5, "tanh", sigma_w2=1.5, sigma_b2=0.05, width=128)
    >>> net.width
    (128, 128, 128, 128)
    >>> Network(3, sigma_w2=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: sigma_w2 must be a finite number > 0, got -1.0
    """

    depth: int
    activation: str | Activation = "relu"
    sigma_w2: float = 2.0
    sigma_b2: float = 0.0
    parameterization: str = "ntk"
    width: int | tuple[int, ...] | None = None

    def __post_init__(self):
        depth = check_int(self.depth, "depth")
        act = get_activation(self.activation)
        sw = check_real(self.sigma_w2, "sigma_w2", low=0, low_open=True)
        sb = check_real(self.sigma_b2, "sigma_b2", low=0)
        param = check_choice(self.parameterization, PARAMETERIZATIONS, "parameterization")
        width = self.width
        if width is not None:
            if isinstance(width, numbers.Integral) and not isinstance(width, bool | np.bool_):
                width = (check_int(width, "width"),) * (depth - 1)
            else:
                if not isinstance(width, list | tuple | range | np.ndarray) or np.ndim(width) != 1:
                    raise ValueError(
                        f"width must be None, an integer >= 1 or a sequence (list, tuple, 1-D array) of depth - 1 = "
                        f"{depth - 1} integers >= 1, got {width!r}"
                    )
                width = tuple(width)
                if len(width) != depth - 1:
                    raise ValueError(f"width must list depth - 1 = {depth - 1} hidden widths, got {len(width)}")
                width = tuple(check_int(w, "width") for w in width)
        set_ = object.__setattr__
        set_(self, "depth", depth)
        set_(self, "activation", act)
        set_(self, "sigma_w2", sw)
        set_(self, "sigma_b2", sb)
        set_(self, "parameterization", param)
        set_(self, "width", width)

    @property
    def finite(self) -> bool:
        return self.width is not None

    def fan_ins(self, d: int) -> tuple[int, ...]:
        """Fan-ins ``(N_0 = d, N_1, ..., N_{L-1})`` of the ``L`` layers (requires a finite width)."""
        if self.width is None:
            raise ValueError("width is None (infinite width); this needs a finite Network(width=...)")
        return (check_int(d, "d"),) + self.width

    def replace(self, **changes) -> Network:
        """A copy with some fields changed (validated again)."""
        fields = dict(
            depth=self.depth,
            activation=self.activation,
            sigma_w2=self.sigma_w2,
            sigma_b2=self.sigma_b2,
            parameterization=self.parameterization,
            width=self.width,
        )
        fields.update(changes)
        return Network(**fields)
