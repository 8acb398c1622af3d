r"""The one quadrature rule for one-dimensional Gaussian integrals :math:`\mathbb E[F(z)]`, z ~ N(0, 1).

Every 1-D Gaussian integral of the package goes through :func:`gauss_rule`: the one-point moments
:math:`\mathbb E\phi(\sqrt q z)^2`, :math:`\mathbb E\phi'(\sqrt q z)^2` and :math:`\mathbb E[z\phi\phi']`
(:func:`expect`, used by :func:`meanfield.gaussian.maps.single_moments` and the phase diagram) and the Hermite
coefficients :math:`\mathbb E[\phi(\sqrt q z)\mathrm{He}_k(z)]/\sqrt{k!}` of the Mehler expansion
(:func:`hermite_basis`, used by :mod:`meanfield.gaussian.hermite`), so the variances of the recursions, the fixed
points and the correlation maps all share one rule.

The rule is composite 16-point Gauss-Legendre in z, symmetric about 0, with the Gaussian density folded into the
weights. Its panels follow the integrand's finest scale:

* moments (``order = 0``): panels finest near ``z = 0`` (width ``0.25 min(1, 1/sqrt q)``, where
  :math:`\phi(\sqrt q z)` has its features), growing geometrically (x1.35) out to ``|z| = 40``: about 1e-14 for
  smooth activations at any ``q`` (1e-6 to 1e4 in the tests), where a Gauss-Hermite rule would need
  :math:`\gtrsim 10^6` nodes at ``q = 10^4``;
* Hermite coefficients to ``order`` K: equal panels of width ``min(16/sqrt K, 1.5/sqrt q, 2.5)`` on ``|z| <= 13``
  (at most ``3 K / 64 + 8`` panels, reached only beyond the documented ``q <= 10``)
  (about 2.5 wavelengths of :math:`\mathrm{He}_K(z)e^{-z^2/4}` per panel, a panel per distance to the nearest
  complex singularity of :math:`\phi(\sqrt q z)` for the table's activations; beyond 13 the integrand is below
  1e-18 of its scale), which costs about as many nodes as Gauss-Hermite's ``1.5 K`` and fewer at large K.

The layouts and their accuracy are chosen here (the tests compare against 30-50 digit mpmath references).
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["expect", "gauss_rule", "hermite_basis", "rule_scale"]

#: coefficient panels extend to this |z| (the integrand is below 1e-18 of its scale beyond)
COEFFICIENT_EXTENT = 13.0
#: moment panels extend to this |z| (the Gaussian underflows beyond)
MOMENT_EXTENT = 40.0


@functools.lru_cache(maxsize=1)
def _gl16():
    x, w = np.polynomial.legendre.leggauss(16)
    return x, w


def _panel_edges(q: float, order: int) -> np.ndarray:
    """Panel edges on [0, extent] (see the module docstring)."""
    if order:
        h = min(16.0 / math.sqrt(order), 1.5 / math.sqrt(q) if q > 0 else math.inf, 2.5)
        # at most ~1.5 order + 256 nodes: beyond the documented range (q > 10) the truncated expansion, not the
        # rule, limits the accuracy, and the table psi stays as small as a Gauss-Hermite rule's
        n = min(max(1, math.ceil(COEFFICIENT_EXTENT / h)), 3 * order // 64 + 8)
        return np.linspace(0.0, COEFFICIENT_EXTENT, n + 1)
    width = 0.25 * min(1.0, 1.0 / math.sqrt(q)) if q > 0 else 0.25
    edges = [0.0]
    while edges[-1] < MOMENT_EXTENT:
        edges.append(min(edges[-1] + width, MOMENT_EXTENT))
        width *= 1.35
    return np.array(edges)


def gauss_rule(q: float, order: int = 0):
    """Nodes z and weights w with sum(w F(z)) = E[F(z)], z ~ N(0, 1), for integrands F(z) = f(sqrt(q) z) times,
    when ``order > 0``, Hermite polynomials up to He_(order-1) (see the module docstring).

    Symmetric: ``z[::-1] == -z`` and ``w[::-1] == w``, an even number of nodes. Variances below the one where the
    finest panel stops shrinking share one cached rule (the panels depend on ``q`` only through
    ``min(1, 1/sqrt q)``, resp. ``min(16/sqrt K, 1.5/sqrt q, 2.5)``).
    """
    q, order = float(q), int(order)
    floor = 1.0 if order == 0 else (1.5 / min(16.0 / math.sqrt(order), 2.5)) ** 2
    return _gauss_rule(max(q, floor) if q == q else q, order)


@functools.lru_cache(maxsize=256)
def _gauss_rule(q: float, order: int):
    edges = _panel_edges(float(q), int(order))
    x, w = _gl16()
    lo, hi = edges[:-1, None], edges[1:, None]
    z = (0.5 * (hi - lo) * x + 0.5 * (hi + lo)).ravel()
    wz = (0.5 * (hi - lo) * w).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return np.concatenate([-z[::-1], z]), np.concatenate([wz[::-1], wz])


def expect(fn, q):
    """E[fn(sqrt(q) z, z)] for each entry of the array q (the moment layout of :func:`gauss_rule`)."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty(q.size)
    for k, qk in enumerate(q.reshape(-1)):
        z, w = gauss_rule(float(qk))
        out[k] = np.dot(w, fn(math.sqrt(qk) * z, z))
    return out.reshape(q.shape)


def rule_scale(q_max: float) -> float:
    """The variance a coefficient rule is built for: ``q_max`` rounded up to a power of 2^(1/4) (so that a batch
    of variances shares one cached rule, at most 19% finer than needed)."""
    if not q_max > 0:
        return 0.0
    return float(2.0 ** (math.ceil(4.0 * math.log2(q_max)) / 4.0))


@functools.lru_cache(maxsize=32)
def hermite_basis(q: float, order: int):
    """The coefficient rule for variances up to ``q`` and orders below ``order``: nodes z, sqrt(w) and the table
    psi[k] = sqrt(w) He_k(z)/sqrt(k!) (bounded: the Gaussian is folded in), so that a_k = (f sqrt(w)) . psi[k]."""
    z, w = gauss_rule(q, order)
    sw = np.sqrt(w)
    psi = np.empty((order, z.size))
    psi[0] = sw
    if order > 1:
        psi[1] = z * sw
    for k in range(1, order - 1):
        psi[k + 1] = (z * psi[k] - math.sqrt(k) * psi[k - 1]) / math.sqrt(k + 1.0)
    return z, sw, psi
