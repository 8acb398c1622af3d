"""Activation functions: one table of closed forms and one general (Hermite) path.

Every activation carries numpy-vectorized ``fn`` and ``derivative`` (used by the finite networks)
and a *kernel kind* that tells :mod:`meanfield.gaussian` how to evaluate its Gaussian moments:

=================  =======================  ===============================================
kind               activations              moments
=================  =======================  ===============================================
``KIND_LEAKY``     relu, leaky_relu, linear  arc-cosine closed form, slope ``a`` as parameter
``KIND_ERF``       erf                       Williams 1997 closed form
``KIND_HERMITE``   everything else           Hermite (Mehler) expansion from the one 1-D rule
=================  =======================  ===============================================

Adding an activation is adding a row to :data:`_TABLE`; nothing in the recursions branches on names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special

from ._checks import check_real

KIND_LEAKY = 0
KIND_ERF = 1
KIND_HERMITE = 2

__all__ = ["Activation", "get_activation", "leaky_relu", "ACTIVATION_NAMES"]


@dataclass(frozen=True)
class Activation:
    """A pointwise nonlinearity phi with its derivative.

    Parameters
    ----------
    fn : callable
        numpy-vectorized phi(u).
    derivative : callable
        numpy-vectorized phi'(u).
    name : str
        Display name.
    kind : int
        How the Gaussian moments are computed. User activations use the general Hermite path
        (``KIND_HERMITE``), which assumes phi is smooth (see :func:`meanfield.gaussian.hermite_coefficients`).
    slope : float
        Negative-side slope ``a`` of the leaky-ReLU family (``KIND_LEAKY`` only).

    Examples
    --------
    >>> import numpy as np
    >>> act = Activation(np.sin, np.cos, "sin")
    >>> act.name, act.kind == KIND_HERMITE
    ('sin', True)
    """

    fn: Callable = field(compare=False)
    derivative: Callable = field(compare=False)
    name: str = "custom"
    kind: int = KIND_HERMITE
    slope: float = 0.0

    def __post_init__(self):
        if not callable(self.fn) or not callable(self.derivative):
            raise ValueError("activation fn and derivative must be callables")
        if self.kind not in (KIND_LEAKY, KIND_ERF, KIND_HERMITE):
            raise ValueError(f"activation kind must be one of 0, 1, 2, got {self.kind!r}")
        if not np.isfinite(self.slope):
            raise ValueError(f"activation slope must be finite, got {self.slope!r}")

    @property
    def closed_form(self) -> bool:
        """True when the Gaussian moments have a closed form (no quadrature)."""
        return self.kind != KIND_HERMITE

    def __repr__(self) -> str:
        extra = f", slope={self.slope}" if self.kind == KIND_LEAKY and self.name == "leaky_relu" else ""
        return f"Activation({self.name!r}{extra})"


def leaky_relu(slope: float = 0.01) -> Activation:
    """Leaky ReLU phi(u) = max(u, 0) + slope * min(u, 0), in closed form.

    ``slope = 0`` is ReLU and ``slope = 1`` is the identity; both share this one closed form.
    """
    slope = check_real(slope, "slope")  # a real number: not a string, bool or array

    def fn(u):
        u = np.asarray(u, dtype=np.float64)
        return np.where(u > 0, u, slope * u)

    def derivative(u):
        u = np.asarray(u, dtype=np.float64)
        return np.where(u > 0, 1.0, slope)

    name = {0.0: "relu", 1.0: "linear"}.get(slope, "leaky_relu")
    return Activation(fn, derivative, name, KIND_LEAKY, slope)


def _gelu(u):
    return u * special.ndtr(u)


def _gelu_prime(u):
    return special.ndtr(u) + u * np.exp(-0.5 * u * u) / np.sqrt(2.0 * np.pi)


def _silu(u):
    return u * special.expit(u)


def _silu_prime(u):
    s = special.expit(u)
    return s * (1.0 + u * (1.0 - s))


def _sigmoid_prime(u):
    s = special.expit(u)
    return s * (1.0 - s)


def _tanh_prime(u):
    t = np.tanh(u)
    return 1.0 - t * t


def _erf_prime(u):
    return 2.0 / np.sqrt(np.pi) * np.exp(-np.square(u))


def _softplus(u):
    return np.logaddexp(0.0, u)


# name -> factory; the one table of built-in activations
_TABLE: dict[str, Callable[[], Activation]] = {
    "relu": lambda: leaky_relu(0.0),
    "linear": lambda: leaky_relu(1.0),
    "leaky_relu": lambda: leaky_relu(0.01),
    "erf": lambda: Activation(special.erf, _erf_prime, "erf", KIND_ERF),
    "tanh": lambda: Activation(np.tanh, _tanh_prime, "tanh"),
    "gelu": lambda: Activation(_gelu, _gelu_prime, "gelu"),
    "softplus": lambda: Activation(_softplus, special.expit, "softplus"),
    "sigmoid": lambda: Activation(special.expit, _sigmoid_prime, "sigmoid"),
    "silu": lambda: Activation(_silu, _silu_prime, "silu"),
}

ACTIVATION_NAMES = tuple(_TABLE)


def get_activation(activation) -> Activation:
    """Resolve a name (optionally ``"leaky_relu:0.2"``) or an :class:`Activation` to an :class:`Activation`.

    Examples
    --------
    >>> get_activation("relu")
    Activation('relu')
    >>> get_activation("leaky_relu:0.2").slope
    0.2
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        name, _, arg = activation.partition(":")
        if name == "leaky_relu" and arg:
            try:
                return leaky_relu(float(arg))
            except ValueError:
                raise ValueError(f"activation 'leaky_relu:<slope>' needs a number, got {activation!r}") from None
        if name in _TABLE and not arg:
            return _TABLE[name]()
    raise ValueError(
        f"activation must be one of {', '.join(ACTIVATION_NAMES)}, 'leaky_relu:<slope>' "
        f"or a meanfield.Activation, got {activation!r}"
    )
