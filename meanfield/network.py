"""The one network description shared by the theory and the finite networks.

Index conventions (those of Lou et al. 2022, eq. (8)): a network of depth ``L`` has ``L``
weight matrices. Layer ``l = 1..L`` owns ``(W_l, b_l)`` and produces the pre-activations ``z_l``; the input to
layer ``l`` is ``h_{l-1}`` with ``h_0 = x`` (no activation on the raw input) and ``h_{l-1} = phi(z_{l-1})``.
Layer ``L`` is the readout. Hidden widths are ``N_1..N_{L-1}``; ``N_0 = d`` is the input dimension.

Beyond the plain MLP (every option defaults to off):

- per-layer variances: ``sigma_w2`` / ``sigma_b2`` may list one value per weight layer ``l = 1..L``;
- residual blocks (``residual=beta``): ``z_1 = W_1 x + b_1``; for the hidden layers ``l = 2..L-1``,
  ``z_l = z_{l-1} + beta (W_l h_{l-1} + b_l)``; the readout ``z_L = W_L h_{L-1} + b_L`` (Yang & Schoenholz 2017;
  Hayou et al. 2021 for ``beta = 1/sqrt(L)``);
- LayerNorm (``normalization="layer"``): ``h_l = phi(LN(z_l))`` for ``l = 1..L-1``, with
  ``LN(z) = (z - mean(z)) / sqrt(var(z))`` over the ``N_l`` units, no learned gain or bias (no epsilon);
- dropout (``dropout=rho``): ``h_l = m_l * phi(.) / rho`` for ``l = 1..L-1`` with independent Bernoulli(rho) masks
  ``m_l`` drawn per input (Schoenholz et al. 2017, sec. 5): the variance map gets ``1/rho``, the covariance of two
  inputs does not.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._checks import check_choice, check_int, check_real
from .activations import Activation, get_activation

__all__ = ["Network"]

PARAMETERIZATIONS = ("ntk", "standard")

#: deepest finite network (its hidden widths are a tuple of depth - 1 ints; the theory, width=None, has no limit)
MAX_FINITE_DEPTH = 10**6

#: names of the options beyond the plain MLP, as used by :meth:`Network.features`
FEATURES = ("schedule", "residual", "normalization", "dropout")


def _variances(value, name: str, depth: int, low_open: bool):
    """A float, or a tuple of ``depth`` floats (collapsed to one float when all entries are equal)."""
    if isinstance(value, list | tuple | np.ndarray):
        if np.ndim(value) != 1 or len(value) != depth:
            raise ValueError(
                f"{name} must be a number or a sequence of depth = {depth} numbers (one per weight layer, input "
                f"layer first, readout last), got {value!r}"
            )
        vals = tuple(
            check_real(v.item() if isinstance(v, np.generic) else v, name, low=0, low_open=low_open) for v in value
        )
        return vals[0] if len(set(vals)) == 1 else vals
    return check_real(value, name, low=0, low_open=low_open)


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
    sigma_w2 : float or sequence of float
        Weight variance ``sigma_w^2 > 0`` (the weights have variance ``sigma_w^2 / fan_in``), or one value per
        weight layer ``l = 1..L`` (input layer first, readout last). A sequence of equal values is stored as one
        float.
    sigma_b2 : float or sequence of float
        Bias variance ``sigma_b^2 >= 0``, or one per weight layer as for ``sigma_w2``.
    parameterization : {"ntk", "standard"}
        NTK (NTP; Jacot et al. 2018) or standard (SP) parameterization. The forward functions and
        the NNGP kernels are identical; the tangent kernels differ.
    width : None, int or sequence of int
        ``None`` for the infinite-width theory, an int for equal hidden widths, or the ``L - 1`` hidden widths
        (a list, tuple, range or 1-D integer array).
    residual : None or float
        ``None`` for a plain MLP, or the branch multiplier ``beta > 0`` of residual blocks on the hidden layers
        ``l = 2..L-1``: ``z_l = z_{l-1} + beta (W_l phi(z_{l-1}) + b_l)`` (equal hidden widths required).
        ``beta = 1`` is the residual network of Yang & Schoenholz 2017, ``beta = 1/sqrt(L)`` the stable scaling
        of Hayou et al. 2021.
    normalization : None or "layer"
        ``"layer"``: LayerNorm without learned gain or bias on the pre-activations of every hidden layer, before
        ``phi`` (finite hidden widths must be >= 2).
    dropout : None or float
        Keep probability ``rho`` in ``(0, 1]`` of (inverted) dropout on the post-activations of every hidden
        layer at initialization (Schoenholz et al. 2017, sec. 5); ``1`` is stored as ``None`` (no dropout).

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
    residual: float | None = None
    normalization: str | None = None
    dropout: float | None = None

    def __post_init__(self):
        depth = check_int(self.depth, "depth")
        act = get_activation(self.activation)
        sw = _variances(self.sigma_w2, "sigma_w2", depth, low_open=True)
        sb = _variances(self.sigma_b2, "sigma_b2", depth, low_open=False)
        residual = None if self.residual is None else check_real(self.residual, "residual", low=0, low_open=True)
        norm = self.normalization
        if norm is not None and norm != "layer":
            raise ValueError(f'normalization must be None or "layer" (LayerNorm), got {norm!r}')
        dropout = None if self.dropout is None else check_real(self.dropout, "dropout", low=0, high=1, low_open=True)
        if dropout == 1.0:
            dropout = None
        param = check_choice(self.parameterization, PARAMETERIZATIONS, "parameterization")
        width = self.width
        if width is not None:
            if depth > MAX_FINITE_DEPTH:
                raise ValueError(
                    f"depth must be <= {MAX_FINITE_DEPTH} for a finite network (width given): its {depth} weight "
                    "matrices could not be held; use width=None for the infinite-width theory"
                )
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
            if residual is not None and len(set(width)) > 1:
                raise ValueError(f"width: residual networks need equal hidden widths, got {width}")
            if norm == "layer" and min(width, default=2) < 2:
                raise ValueError(f"width: LayerNorm needs hidden widths >= 2, got {width}")
        set_ = object.__setattr__
        set_(self, "depth", depth)
        set_(self, "activation", act)
        set_(self, "sigma_w2", sw)
        set_(self, "sigma_b2", sb)
        set_(self, "parameterization", param)
        set_(self, "width", width)
        set_(self, "residual", residual)
        set_(self, "normalization", norm)
        set_(self, "dropout", dropout)

    @property
    def finite(self) -> bool:
        return self.width is not None

    @property
    def weight_variances(self) -> tuple[float, ...]:
        """``sigma_w^2`` of every weight layer ``l = 1..L``."""
        sw = self.sigma_w2
        return sw if isinstance(sw, tuple) else (sw,) * self.depth

    @property
    def bias_variances(self) -> tuple[float, ...]:
        """``sigma_b^2`` of every weight layer ``l = 1..L``."""
        sb = self.sigma_b2
        return sb if isinstance(sb, tuple) else (sb,) * self.depth

    def variances(self, l: int) -> tuple[float, float]:
        """``(sigma_w^2, sigma_b^2)`` of weight layer ``l`` (``1..L``)."""
        l = check_int(l, "l", low=1, high=self.depth)
        return self.weight_variances[l - 1], self.bias_variances[l - 1]

    @property
    def features(self) -> tuple[str, ...]:
        """The options beyond the plain MLP this network uses, a subset of
        ``("schedule", "residual", "normalization", "dropout")``.

        >>> Network(4, sigma_w2=[2.0, 2.0, 1.5, 1.0], dropout=0.9).features
        ('schedule', 'dropout')
        >>> Network(4).features
        ()
        """
        used = {
            "schedule": isinstance(self.sigma_w2, tuple) or isinstance(self.sigma_b2, tuple),
            "residual": self.residual is not None,
            "normalization": self.normalization is not None,
            "dropout": self.dropout is not None,
        }
        return tuple(f for f in FEATURES if used[f])

    @property
    def plain(self) -> bool:
        """True for the i.i.d. MLP (no per-layer variances, residual blocks, normalization or dropout)."""
        return not self.features

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
            residual=self.residual,
            normalization=self.normalization,
            dropout=self.dropout,
        )
        fields.update(changes)
        return Network(**fields)
