"""One pair of inputs through many layers in O(L): the curves behind phase diagrams and the peak-layer analysis."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_network, check_real
from .._jit import njit
from ..activations import KIND_HERMITE
from ..gaussian.closed import pair_correlation
from ..gaussian.step import closed_unit_step, next_correlation, next_correlation_unit, pair_step
from ..network import Network
from .inputs import per_layer, variance_ratios, variance_sequences

__all__ = ["PairCurve", "pair_curve"]


@dataclass(frozen=True)
class PairCurve:
    """Layer-by-layer quantities of one input pair, arrays over layers l = 1..L (index l - 1).

    Attributes
    ----------
    q1, q2 : variances :math:`\\Sigma_l(x, x)`, :math:`\\Sigma_l(x', x')`.
    s, r : :math:`1 - c_l` and :math:`1 + c_l`, each exact where small.
    sigma : :math:`\\Sigma_l(x, x')`.
    dot, dot1, dot2 : :math:`\\dot\\Sigma_l(x, x')`, :math:`\\dot\\Sigma_l(x, x)`, :math:`\\dot\\Sigma_l(x', x')`
        (entry 0, layer 1, has no derivative kernel and holds NaN): :math:`\\sigma_{w,l}^2\\,\\mathbb
        E[\\phi'\\phi']` of the branch, with the LayerNorm and dropout factors
        (:mod:`meanfield.propagation.architecture`).
    back : the backward multiplier :math:`m_l = \\mathfrak B_{l-1}(x, x') / \\mathfrak B_l(x, x')`: ``dot`` for
        plain layers, :math:`1 + \\beta^2\\dot\\Sigma_l` for residual ones (entry 0 is NaN).

    With dropout the two inputs are two different forward passes (independent masks), even when they are equal;
    ``q1``, ``q2``, ``dot1``, ``dot2`` are within one pass.
    """

    q1: np.ndarray
    q2: np.ndarray
    s: np.ndarray
    r: np.ndarray
    sigma: np.ndarray
    dot: np.ndarray
    dot1: np.ndarray
    dot2: np.ndarray
    back: np.ndarray | None = None

    @property
    def c(self) -> np.ndarray:
        """Correlations :math:`c_l`, formed from the exact side."""
        return np.where(self.s <= self.r, 1.0 - self.s, self.r - 1.0)


@njit(cache=True, error_model="numpy")
def _curve(kind, slope, sw_l, sb_l, Q, V, T, rows, TA, TB, order, s, r, out):
    depth = Q.shape[1]
    out[0, 0] = s
    out[1, 0] = r
    out[2, 0] = math.sqrt(Q[0, 0]) * math.sqrt(Q[1, 0]) * pair_correlation(s, r)
    out[3, 0] = np.nan
    out[4, 0] = np.nan
    out[5, 0] = np.nan
    for l in range(1, depth):
        sw = sw_l[l]
        sb = sb_l[l]
        ra = rows[0, l - 1]
        rb = rows[1, l - 1]
        k, npar, apar = order[l - 1, 0], order[l - 1, 1], order[l - 1, 2]
        q1 = Q[0, l - 1]
        q2 = Q[1, l - 1]
        sq1 = math.sqrt(q1)
        sq2 = math.sqrt(q2)
        d1 = pair_step(kind, slope, q1, q1, q1, 0.0, 2.0, TA, TB, ra, ra, k, npar, apar)[3]
        d2 = pair_step(kind, slope, q2, q2, q2, 0.0, 2.0, TA, TB, rb, rb, k, npar, apar)[3]
        sv1, sv2 = math.sqrt(V[0, l - 1]), math.sqrt(V[1, l - 1])
        sqn1, sqn2 = math.sqrt(Q[0, l]), math.sqrt(Q[1, l])
        if kind == KIND_HERMITE:
            cov, gap, agap, dcov = pair_step(kind, slope, q1, q2, sq1 * sq2, s, r, TA, TB, ra, rb, k, npar, apar)
            s, r = next_correlation(sw, sb, sv1, sv2, sqn1, sqn2, gap, agap)
        else:  # per unit of sqrt(q1) sqrt(q2), correlations from variance ratios (exact if q under/overflows)
            cov, gap, agap, dcov = closed_unit_step(kind, slope, q1, q2, T[0, 1, l - 1] * T[1, 1, l - 1], s, r)
            s, r = next_correlation_unit(sw, sb, sv1, sv2, sqn1, sqn2, T[0, 0, l - 1] * T[1, 0, l - 1], gap, agap)
            cov = cov * sv1 * sv2
        out[0, l] = s
        out[1, l] = r
        out[2, l] = sw * cov + sb
        out[3, l] = sw * dcov
        out[4, l] = sw * d1
        out[5, l] = sw * d2


def pair_curve(net: Network, q1=1.0, q2=None, c=None, s=None) -> PairCurve:
    r"""Carry one pair of inputs through ``net.depth`` layers in :math:`O(L)`: variances, correlation, derivative
    kernels.

    Parameters
    ----------
    net : Network
        Depth L (the curves run over l = 1..L), activation and variances; the width is ignored.
    q1, q2 : float
        Layer-1 variances :math:`\Sigma_1(x, x)` and :math:`\Sigma_1(x', x')` (``q2`` defaults to ``q1``).
    c, s : float
        Layer-1 correlation, given either as ``c`` in [-1, 1] or, for full precision near parallel inputs, as
        ``s = 1 - c`` in [0, 2]. Default ``c = 0``.

    Returns
    -------
    PairCurve

    Notes
    -----
    The same compiled pair step as :func:`meanfield.kernels`, so deep curves keep the exact :math:`1 - c`
    tracking: ReLU at (2, 0) from ``c = 0`` gives :math:`l^2(1 - c_l) \to 9\pi^2/2` (derived here; see
    :mod:`meanfield.equilibrium`).

    Examples
    --------
    >>> pc = pair_curve(Network(10))
    >>> round(float(pc.c[9]), 10)          # ReLU EOC sequence from c_1 = 0 (mpmath: tests/reference.py)
    0.8548092375
    """
    net = check_network(net, supports=("schedule", "residual", "normalization", "dropout"), what="pair_curve")
    q1 = check_real(q1, "q1", low=0.0, low_open=True)
    q2 = q1 if q2 is None else check_real(q2, "q2", low=0.0, low_open=True)
    if s is not None and c is not None:
        raise ValueError("give the layer-1 correlation as c or as s = 1 - c, not both")
    if s is None:
        c = 0.0 if c is None else check_real(c, "c", low=-1.0, high=1.0)
        s, r = 1.0 - c, 1.0 + c
    else:
        s = check_real(s, "s", low=0.0, high=2.0)
        r = 2.0 - s
    act, depth = net.activation, net.depth
    if not net.plain and net.features != ("schedule",):
        return _arch_curve(net, q1, q2, s, r)
    sw, sb = per_layer(net.sigma_w2, depth), per_layer(net.sigma_b2, depth)
    qs = np.array([q1, q2], dtype=np.float64)
    Q, V, rows, order, npar, apar, TA, TB = variance_sequences(act, sw, sb, qs, depth)
    order = np.ascontiguousarray(np.stack([order, npar, apar], axis=1))
    T = variance_ratios(act, sw, sb, Q) if act.kind != KIND_HERMITE else np.zeros((2,) + Q.shape)
    T = np.ascontiguousarray(T.transpose(2, 0, 1))  # (input, ratio, layer)
    Q, V, rows = (np.ascontiguousarray(a.T) for a in (Q, V, rows))
    out = np.empty((6, depth))
    _curve(act.kind, float(act.slope), sw, sb, Q, V, T, rows, TA, TB, order, s, r, out)
    return PairCurve(Q[0].copy(), Q[1].copy(), out[0], out[1], out[2], out[3], out[4], out[5], out[3].copy())


def _arch_curve(net, q1, q2, s, r):
    """Residual blocks, LayerNorm, dropout: :func:`meanfield.propagation.architecture.arch_pair`."""
    from .architecture import arch_sequences, layer_schedule, pair_layers

    sched = layer_schedule(net.replace(parameterization="ntk"))
    seq = arch_sequences(net.activation, net, sched, np.array([q1, q2], dtype=np.float64))
    Q, P, V, DV = seq[:4]
    sig = math.sqrt(q1) * math.sqrt(q2) * pair_correlation(s, r)
    out = pair_layers(net, sched, seq, 0, 1, s, r, sig)
    rho = 1.0 if net.dropout is None else float(net.dropout)
    dots = np.full((2, net.depth), np.nan)
    dots[:, 1:] = sched[0][None, 1:] * DV[:-1].T / rho
    if net.normalization == "layer":
        dots[:, 1:] /= Q[:-1].T
    return PairCurve(Q[:, 0].copy(), Q[:, 1].copy(), out[0], out[1], out[2], out[6], dots[0], dots[1], out[4])
