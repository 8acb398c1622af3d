"""Off-diagonal NTK entries ``Theta(x, x~)`` of deep ReLU networks (Seleznova & Kutyniok 2022, Thm. 3.3).

:func:`offdiagonal_mean_ratio` is the infinite-width estimate of ``E[Theta(x, x~)] / E[Theta(x, x)]`` from the
proof of Thm. 3.3, :func:`offdiagonal_eq18` the paper's bias-only estimate (eq. (18)) and
:func:`offdiagonal_bounds` the bounds of eqs. (16), (17).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_real, finite_array
from ..gaussian import correlation_map, correlation_slope
from .moments import check_network

__all__ = ["OffdiagonalBounds", "offdiagonal_bounds", "offdiagonal_eq18", "offdiagonal_mean_ratio"]


def _offdiag_sums(L, a, rho, weights_r):
    """sum_l c_l rho_{l-1} prod_{k=l}^{L-1} g(rho_{k-1}) (weights) and the bias sums, all divided by s^(L-1).

    ``rho_k = r(rho_{k-1})`` with the normalized ReLU correlation map ``r`` (``correlation_map`` at
    ``sigma_w2 = 2``) and ``g = r'`` (``correlation_slope``).
    """
    s = max(a, 1.0)
    rhos = [rho]
    for _ in range(L - 1):
        rhos.append(correlation_map(rhos[-1], "relu"))
    slopes = correlation_slope(np.stack(rhos[: L - 1]), "relu") if L > 1 else None
    # walk l = L..1 keeping P_l = prod_{k=l}^{L-1} g(rho_{k-1}) and the factor a^{L-l}/s^{L-1}
    prod = np.ones_like(rho)
    num_w = np.zeros_like(rho)
    num_b = np.zeros_like(rho)
    den_b = 0.0
    for l in range(L, 0, -1):
        if l < L:
            prod = prod * slopes[l - 1]
        wa = math.exp((L - l) * math.log(a) - (L - 1) * math.log(s))  # a^{L-l} / s^{L-1}
        num_w = num_w + weights_r[l - 1] * rhos[l - 1] * prod
        num_b = num_b + wa * prod
        den_b += wa
    wscale = math.exp((L - 1) * (math.log(a) - math.log(s)))  # a^{L-1} / s^{L-1}
    return wscale * num_w, num_b, wscale * float(np.sum(weights_r)), den_b


def offdiagonal_mean_ratio(net, d, rho0):
    """Infinite-width estimate of ``E[Theta(x, x~)] / E[Theta(x, x)]`` for unit inputs with ``<x, x~> = rho0``.

    Parameters
    ----------
    net : Network
        ReLU, ``sigma_b2 = 0``, standard parameterization, finite hidden widths ``n_1 .. n_{L-1}`` (see
        :func:`~meanfield.dispersion.check_network`; only the ratios ``r_l = n_{l-1}/n_0`` enter).
    d : int
        Input dimension ``n_0``.
    rho0 : float or array_like
        Input correlation in ``[-1, 1]``.

    Returns
    -------
    float or ndarray

    Notes
    -----
    Numerator: the infinite-width expression in the proof of Seleznova & Kutyniok 2022, Thm. 3.3 (App. A.2, the
    bound on ``lim E[Theta(x, x~)]``)
    ``a^{L-1} sum_l r_l rho_{l-1} prod_{k=l}^{L-1} g(rho_{k-1}) + sum_l a^{L-l} prod_{k=l}^{L-1} g(rho_{k-1})``
    with ``a = sigma_w2 / 2``, ``g(t) = (pi/2 + arcsin t)/pi``, ``rho_k = r^{(k)}(rho0)`` and the ReLU
    correlation map ``r(t) = (sqrt(1 - t^2) + t pi/2 + t arcsin t)/pi`` (:func:`meanfield.gaussian.correlation_map`
    and :func:`~meanfield.gaussian.correlation_slope` at ``sigma_w2 = 2``; the paper's appendix calls them ``g``
    and ``f``). Denominator: eqs. (11) + (12). At finite width the true mean off-diagonal entry is slightly larger
    (the paper: ``E[rho]`` approaches ``r^{(k)}(rho0)`` from below; Monte Carlo of ``[50] x 5``,
    ``sigma_w2 = 1.5``, ``rho0 = 0.5``: 2.8558 +- 0.0021 against 2.8114 for this numerator).
    Thm. 3.3, eq. (16), bounds the limit of this ratio by ``[1/4, 1]`` (see :func:`offdiagonal_bounds`).
    Overflow-free: both sums are divided by ``max(a, 1)^{L-1}``.

    Examples
    --------
    >>> from meanfield import Network
    >>> net = Network(5, "relu", 1.5, 0.0, "standard", width=50)
    >>> round(float(offdiagonal_mean_ratio(net, 50, 0.5)), 4)
    0.6068
    >>> float(offdiagonal_mean_ratio(net, 50, 1.0))
    1.0
    """
    n = check_network(net, d)
    if n is None:
        raise ValueError("d must be an integer >= 1 (the input dimension), got None")
    a = net.sigma_w2 / 2
    rho = finite_array(rho0, "rho0", low=-1.0, high=1.0)
    nw, nb, dw, db = _offdiag_sums(n.size, a, rho, n / n[0])
    out = (nw + nb) / (dw + db)
    return float(out) if out.ndim == 0 else out


def offdiagonal_eq18(net, rho0):
    """Seleznova & Kutyniok 2022, eq. (18): the bias-only estimate of ``E[Theta(x, x~)] / E[Theta(x, x)]``.

    Parameters
    ----------
    net : Network
        ReLU, ``sigma_b2 = 0``, standard parameterization (see :func:`~meanfield.dispersion.check_network`); only
        its depth ``L`` and ``sigma_w2`` enter (the paper uses this in the ordered phase, ``sigma_w2 < 2``), so its
        width may be infinite.
    rho0 : float or array_like
        Input correlation in ``[-1, 1]``.

    Returns
    -------
    float or ndarray
        ``sum_l a^{L-l} prod_{k=l}^{L-1} g(rho_{k-1}) / sum_l a^{L-l}``, notation of
        :func:`offdiagonal_mean_ratio`.

    Notes
    -----
    Eq. (18) is printed with "≳", as a lower bound, but it keeps only the bias part ``Theta_b`` of the NTK and
    is NOT a lower bound at moderate depth (widths ``[50] x 5``, ``sigma_w2 = 1.5``, ``rho0 = 0.5``: Monte Carlo
    0.616 against 0.703 from eq. (18)). It is meaningful only when ``Theta_W`` is negligible (ordered phase,
    ``L`` large). Use :func:`offdiagonal_mean_ratio` for the full infinite-width expression, which stays below
    the simulation as the paper argues.

    Examples
    --------
    >>> from meanfield import Network
    >>> round(float(offdiagonal_eq18(Network(10, "relu", 1.5, 0.0, "standard"), 0.5)), 12)
    0.683137044588
    """
    check_network(net)
    L = net.depth
    a = net.sigma_w2 / 2
    rho = finite_array(rho0, "rho0", low=-1.0, high=1.0)
    _, nb, _, db = _offdiag_sums(L, a, rho, np.zeros(L))
    out = nb / db
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class OffdiagonalBounds:
    """The bounds of Seleznova & Kutyniok 2022, Thm. 3.3, in the limit ``L/M -> lambda``.

    Attributes
    ----------
    mean_ratio_lower, mean_ratio_upper : float
        ``1/4`` and ``1``, the bounds of eq. (16) on ``E[Theta(x, x~)] / E[Theta(x, x)]``.
    dispersion_upper : float
        ``16 D``, the bound of eq. (17) on the off-diagonal dispersion.
    """

    mean_ratio_lower: float
    mean_ratio_upper: float
    dispersion_upper: float


def offdiagonal_bounds(diagonal_dispersion) -> OffdiagonalBounds:
    """The bounds of Seleznova & Kutyniok 2022, Thm. 3.3 (eqs. (16), (17)) in the limit ``L/M -> lambda``.

    Parameters
    ----------
    diagonal_dispersion : float
        Limit of the diagonal dispersion ``E[Theta(x,x)^2]/E[Theta(x,x)]^2`` (>= 1).

    Returns
    -------
    OffdiagonalBounds

    Notes
    -----
    Eq. (17) follows from (16) and Cauchy-Schwarz ``E[Theta(x,x~)^2] <= E[Theta(x,x)^2]`` for equal-norm inputs;
    its proof does not use the value of Thm. 3.1 (whose chaotic and EOC limits are too low, see
    :func:`~meanfield.dispersion.dispersion_limit_expr`), so it holds with the true diagonal dispersion.

    Examples
    --------
    >>> offdiagonal_bounds(1.5).dispersion_upper
    24.0
    """
    d = check_real(diagonal_dispersion, "diagonal_dispersion", low=1)
    return OffdiagonalBounds(mean_ratio_lower=0.25, mean_ratio_upper=1.0, dispersion_upper=16.0 * d)
