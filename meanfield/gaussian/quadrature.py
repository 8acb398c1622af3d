r"""The one quadrature rule for one-dimensional Gaussian integrals :math:`\mathbb E[F(\sqrt q\,z)]`, z ~ N(0, 1).

Placeholder during the restructuring: see the final docstring.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

__all__ = ["expect", "gauss_rule", "hermite_basis"]


@functools.lru_cache(maxsize=1)
def _gl16():
    x, w = np.polynomial.legendre.leggauss(16)
    return x, w


@functools.lru_cache(maxsize=256)
def gauss_rule(q: float):
    """Nodes z and weights for E[F(sqrt(q) z)], z ~ N(0, 1): composite 16-point Gauss-Legendre on panels that
    are finest (width ~ 1/(4 sqrt q)) where phi(sqrt(q) z) has its features and grow geometrically out to |z| = 40.
    """
    w0 = 0.25 * min(1.0, 1.0 / math.sqrt(q)) if q > 0 else 0.25
    edges = [0.0]
    width = w0
    while edges[-1] < 40.0:
        edges.append(min(edges[-1] + width, 40.0))
        width *= 1.35
    edges = np.array(edges)
    x, w = _gl16()
    lo, hi = edges[:-1, None], edges[1:, None]
    z = (0.5 * (hi - lo) * x + 0.5 * (hi + lo)).ravel()
    wz = (0.5 * (hi - lo) * w).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return np.concatenate([-z[::-1], z]), np.concatenate([wz[::-1], wz])


def expect(fn, q):
    """E[fn(sqrt(q) z, z)] for each entry of the array q."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty(q.size)
    for k, qk in enumerate(q.reshape(-1)):
        z, w = gauss_rule(float(qk))
        out[k] = np.dot(w, fn(math.sqrt(qk) * z, z))
    return out.reshape(q.shape)


@functools.lru_cache(maxsize=16)
def hermite_basis(nodes: int, order: int):
    """Probabilists' Gauss-Hermite nodes and sqrt(w) * He_k(z)/sqrt(k!) (bounded: the Gaussian is folded in)."""
    z, w = special.roots_hermitenorm(nodes)
    w = w / math.sqrt(2.0 * math.pi)
    sw = np.sqrt(w)
    psi = np.empty((order, nodes))
    psi[0] = sw
    if order > 1:
        psi[1] = z * sw
    for k in range(1, order - 1):
        psi[k + 1] = (z * psi[k] - math.sqrt(k) * psi[k - 1]) / math.sqrt(k + 1.0)
    return z, sw, psi
