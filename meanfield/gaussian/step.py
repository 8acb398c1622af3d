r"""The compiled pair step: one dispatch over the activation table, and the next layer's correlation.

:func:`pair_step` is the single place where the kind of an activation (:mod:`meanfield.activations`) selects its
Gaussian moments: the closed forms of :mod:`meanfield.gaussian.closed` or the Mehler sums of
:mod:`meanfield.gaussian.hermite`. :func:`next_correlation` turns the Cauchy-Schwarz gaps into the next layer's
``(s, r) = (1 - c, 1 + c)``. Both are inlined into the scalar maps, the dataset kernels and the pair curves. The
closed forms also have a form per unit of :math:`\sqrt{q_1}\sqrt{q_2}` (:func:`closed_unit_step`,
:func:`next_correlation_unit`): the next correlation is then formed from ratios of variances, never from their
products, and stays exact when a variance under- or overflows (the leaky-ReLU correlations do not depend on q).
"""

from __future__ import annotations

from .._jit import njit
from ..activations import KIND_ERF, KIND_LEAKY
from .closed import erf_pair, erf_pair_unit, leaky_pair, leaky_unit
from .hermite import hermite_pair

__all__ = ["closed_unit_step", "next_correlation", "next_correlation_unit", "pair_step"]


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
def _bias_mix(sw, sb, sv1, sv2, den):
    """sqrt(q1' q2') - (a sqrt(v1 v2) + b) = a b (sqrt v1 - sqrt v2)^2 / (sqrt(q1' q2') + a sqrt(v1 v2) + b) with
    a = sigma_w^2, b = sigma_b^2 and den = sqrt(q1' q2'): the bias part of the next correlation, without
    cancellation (derived here)."""
    return sw * sb * (sv1 - sv2) ** 2 / (den + sw * sv1 * sv2 + sb)


@njit(cache=True, error_model="numpy", inline="always")
def next_correlation(sw, sb, sv1, sv2, sqn1, sqn2, gap, agap):
    """(s, r) of the next layer from the Cauchy-Schwarz gaps, with the bias mixed in without cancellation.

    Arguments are square roots of the one-point moments ``sv_i = sqrt(v_i)`` and of the next variances
    ``sqn_i = sqrt(q_i')``. With a = sigma_w^2, b = sigma_b^2, q_i' = a v_i + b:
    sqrt(q1' q2') - (a sqrt(v1 v2) + b) = a b (sqrt v1 - sqrt v2)^2 / (sqrt(q1' q2') + a sqrt(v1 v2) + b),
    so 1 - c' = (that + a gap) / sqrt(q1' q2') and 1 + c' = (that + a agap + 2 b) / sqrt(q1' q2') (derived here).
    """
    den = sqn1 * sqn2
    mix = _bias_mix(sw, sb, sv1, sv2, den) if sb > 0.0 else 0.0
    inv = 1.0 / den
    s = (mix + sw * gap) * inv
    r = (mix + sw * agap + 2.0 * sb) * inv
    return min(max(s, 0.0), 2.0), min(max(r, 0.0), 2.0)


@njit(cache=True, error_model="numpy", inline="always")
def closed_unit_step(kind, slope, q1, q2, su12, s, r):
    """(cov, gap, agap) / sqrt(v1 v2) and dcov of the closed forms (leaky family, erf), with v_i = E phi^2 and
    ``su12 = sqrt(v1/q1) sqrt(v2/q2)``: finite for every representable q1, q2 including 0.

    The leaky family gives its correlation map directly (:func:`meanfield.gaussian.closed.leaky_unit`, no q);
    erf divides :func:`meanfield.gaussian.closed.erf_pair_unit` (per unit of sqrt(q1) sqrt(q2)) by ``su12``.
    """
    if kind == KIND_LEAKY:
        return leaky_unit(slope, s, r)
    cov, gap, agap, dcov = erf_pair_unit(q1, q2, s, r)
    inv = 1.0 / su12
    return cov * inv, gap * inv, agap * inv, dcov


@njit(cache=True, error_model="numpy", inline="always")
def next_correlation_unit(sw, sb, sv1, sv2, sqn1, sqn2, t12, gap_n, agap_n):
    """:func:`next_correlation` from the gaps per unit of sqrt(v1 v2) and ``t12 = t_1 t_2`` with
    ``t_i = sqrt(sigma_w^2 v_i / q_i')`` (exactly 1 without bias; formed without dividing underflowed numbers:
    :func:`meanfield.propagation.inputs.variance_ratios`).

    1 - c' = t12 gap_n + mix / sqrt(q1' q2') and 1 + c' = t12 agap_n + (mix + 2 b) / sqrt(q1' q2'), the bias part
    ``mix`` as in :func:`next_correlation` (only when sigma_b^2 > 0, where q' >= sigma_b^2 keeps the division safe).
    """
    s = t12 * gap_n
    r = t12 * agap_n
    if sb > 0.0:
        den = sqn1 * sqn2
        mix = _bias_mix(sw, sb, sv1, sv2, den)
        s += mix / den
        r += (mix + 2.0 * sb) / den
    return min(max(s, 0.0), 2.0), min(max(r, 0.0), 2.0)
