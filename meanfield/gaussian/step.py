"""The compiled pair step: one dispatch over the activation table, and the next layer's correlation.

:func:`pair_step` is the single place where the kind of an activation (:mod:`meanfield.activations`) selects its
Gaussian moments: the closed forms of :mod:`meanfield.gaussian.closed` or the Mehler sums of
:mod:`meanfield.gaussian.hermite`. :func:`next_correlation` turns the Cauchy-Schwarz gaps into the next layer's
``(s, r) = (1 - c, 1 + c)``. Both are inlined into the scalar maps, the dataset kernels and the pair curves.
"""

from __future__ import annotations

from .._jit import njit
from ..activations import KIND_ERF, KIND_LEAKY
from .closed import erf_pair, leaky_pair
from .hermite import hermite_pair

__all__ = ["next_correlation", "pair_step"]


@njit(cache=True, error_model="numpy", inline="always")
def pair_step(kind, slope, q1, q2, sq12, s, r, TA, TB, ra, rb, M, npar, apar):
    """(cov, gap, agap, dcov) for one pair: the single dispatch point of the closed-form table.

    ``sq12 = sqrt(q1 q2)``, precomputed by the callers from per-input square roots; (TA, TB, ra, rb, M, npar,
    apar) locate the parity-packed Hermite rows of the general path (:func:`meanfield.gaussian.hermite.pack_parity`).
    """
    if kind == KIND_LEAKY:
        return leaky_pair(slope, sq12, s, r)
    if kind == KIND_ERF:
        return erf_pair(q1, q2, s, r)
    return hermite_pair(TA, TB, ra, rb, M, npar, apar, s, r)


@njit(cache=True, error_model="numpy", inline="always")
def next_correlation(sw, sb, sv1, sv2, sqn1, sqn2, gap, agap):
    """(s, r) of the next layer from the Cauchy-Schwarz gaps, with the bias mixed in without cancellation.

    Arguments are square roots of the one-point moments ``sv_i = sqrt(v_i)`` and of the next variances
    ``sqn_i = sqrt(q_i')``. With a = sigma_w^2, b = sigma_b^2, q_i' = a v_i + b:
    sqrt(q1' q2') - (a sqrt(v1 v2) + b) = a b (sqrt v1 - sqrt v2)^2 / (sqrt(q1' q2') + a sqrt(v1 v2) + b),
    so 1 - c' = (that + a gap) / sqrt(q1' q2') and 1 + c' = (that + a agap + 2 b) / sqrt(q1' q2') (derived here).
    """
    den = sqn1 * sqn2
    mix = 0.0
    if sb > 0.0:
        mix = sw * sb * (sv1 - sv2) ** 2 / (den + sw * sv1 * sv2 + sb)
    inv = 1.0 / den
    s = (mix + sw * gap) * inv
    r = (mix + sw * agap + 2.0 * sb) * inv
    return min(max(s, 0.0), 2.0), min(max(r, 0.0), 2.0)
