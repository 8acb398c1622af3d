"""An independent infinite-width reference for the architecture options: plain numpy quadrature, one pair at a time.

Written from the definitions in :mod:`meanfield.network` only (no code of ``meanfield.propagation`` or
``meanfield.gaussian``), as the cross-check of the theory. For one pair of inputs ``(x, x')`` it carries the 2x2
covariance of the pre-activations through the layers and returns, per layer, the NNGP ``Sigma_l``, the backward
kernel ``B_l = lim E[df/dz_l . df/dz'_l]`` (the gradient of ``z_l``, the residual stream in a residual network),
the layer tangent kernel ``Theta^(l)`` and the NTK ``sum_l Theta^(l)``, for both parameterizations.

Recursions (``u, v ~ N(0, C)`` with ``C`` the 2x2 covariance of ``z_{l-1}`` at ``(x, x')``):

- LayerNorm (unit-variance normalization at infinite width: the mean over units vanishes and the variance over
  units is ``q = C_xx``): ``phi`` acts on ``z / sqrt(q)``, i.e. ``C -> C / sqrt(q q')`` (a correlation matrix), and
  the backward pass through ``LN`` multiplies by ``1/sqrt(q)`` per input, so ``E[phi' phi']`` gets
  ``1/sqrt(q q')`` (the rank-two projections of the LN Jacobian are O(1/N));
- dropout: ``E[(m/rho)^2] = 1/rho`` for one input, ``E[m m'/rho^2] = 1`` for two inputs with independent masks, so
  the diagonal of ``P = E[h h']`` and of ``Pdot = E[phi' phi']`` gets ``1/rho``, the off-diagonal does not;
- the branch ``A_l = sigma_w,l^2 P_{l-1} + sigma_b,l^2`` (``P_0 = x.x'/d``), ``Sigma_1 = A_1``;
- residual hidden layers ``l = 2..L-1``: ``Sigma_l = Sigma_{l-1} + beta^2 A_l`` (the skip and the branch are
  uncorrelated: ``W_l`` is independent of ``z_{l-1}``); other layers ``Sigma_l = A_l``;
- backward: ``B_L = 1`` and ``B_{l-1} = [B_l on residual layers] + beta_l^2 sigma_w,l^2 Pdot_{l-1} B_l``; the cross
  term ``E[delta_l . (branch backprop)]`` is a sum of N terms of mean zero, O(1/sqrt(N)) relative, so it vanishes at
  infinite width (gradient independence, Yang & Schoenholz 2017);
- layer tangent kernels: NTP ``Theta^(l) = beta_l^2 A_l B_l``; SP ``Theta^(l) = beta_l^2 (N_{l-1} P_{l-1} + 1) B_l``
  (``N_0 P_0 = x.x'``; the ``+ 1`` and ``sigma_b^2`` only with biases).

Gaussian expectations: for the ReLU family (positively homogeneous ``phi`` of degree 1 and ``phi'`` of degree 0)
in polar coordinates, the radial integral in closed form ``int_0^inf r^(k+1) e^(-r^2/2) dr = 2^(k/2) Gamma(k/2 + 1)``
and the angular one by Gauss-Legendre on the arcs between the kinks (exact to rounding); for smooth activations a
tensor trapezoid rule (:func:`_trapezoid`, its step shrinking with the variance) after a Cholesky
factorization of ``C``.
"""

from __future__ import annotations

import math

import numpy as np

from meanfield.activations import KIND_LEAKY

N_GL = 24

_t, _tw = np.polynomial.legendre.leggauss(N_GL)


def _homogeneous(act):
    return act.kind == KIND_LEAKY


def _polar(f, g, kf, kg, C):
    """E f(u) g(v) for positively homogeneous f, g of degrees kf, kg."""
    L = np.linalg.cholesky(C + 0.0) if C[1, 1] * C[0, 0] > C[0, 1] ** 2 else None
    if L is None:  # u, v parallel: v = (C01 / C00) u * ... use the rank-one factor
        a = np.array([math.sqrt(C[0, 0]), 0.0])
        b = np.array([C[0, 1] / math.sqrt(C[0, 0]), 0.0])
    else:
        a, b = L[0], L[1]
    cuts = [0.0, 2 * math.pi]
    for vec in (a, b):
        if np.any(vec != 0):
            th = math.atan2(-vec[0], vec[1]) % math.pi  # e_theta orthogonal to vec, and theta + pi
            cuts += [th, th + math.pi]
    cuts = np.unique(np.array(cuts))
    total = 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        th = 0.5 * (hi - lo) * _t + 0.5 * (hi + lo)
        e = np.stack([np.cos(th), np.sin(th)])
        total += 0.5 * (hi - lo) * np.sum(_tw * f(a @ e) * g(b @ e))
    k = kf + kg
    return total * 2 ** (k / 2) * math.gamma(k / 2 + 1) / (2 * math.pi)


def expect(f, g, C, homogeneous=None):
    """``E[f(u) g(v)]`` for ``(u, v) ~ N(0, C)``; ``homogeneous = (kf, kg)`` selects the exact polar rule."""
    C = np.asarray(C, dtype=np.float64)
    if homogeneous is not None:
        return _polar(f, g, homogeneous[0], homogeneous[1], C)
    s0 = math.sqrt(C[0, 0])
    c = C[0, 1] / s0
    r = math.sqrt(max(C[1, 1] - c * c, 0.0))
    x, w = _trapezoid(max(C[0, 0], C[1, 1]))
    u = s0 * x[:, None]
    v = c * x[:, None] + r * x[None, :]
    return float(np.sum(w[:, None] * w[None, :] * f(u) * g(v)))


def _trapezoid(q):
    """The trapezoid rule on ``|z| <= 9`` with step ``h = 0.1 / max(1, sqrt q)``, Gaussian density in the weights.

    For an integrand analytic in the strip ``|Im z| < d`` the rule's error is about ``exp(-2 pi d / h)``
    (Trefethen & Weideman 2014); ``phi(sqrt(q) z)`` of tanh or SiLU has poles at ``|Im z| = pi / (2 sqrt q)``, so
    ``2 pi d / h = 5 pi^2 > 49`` at every ``q`` (rounding-level accuracy), where a fixed Gauss-Hermite rule of 400
    nodes is only good to 4e-10 at ``q = 4`` and 1e-6 at ``q = 8`` (residual networks grow ``q``); beyond 9 the
    density is below 3e-18."""
    h = 0.1 / max(1.0, math.sqrt(q))
    n = math.ceil(9.0 / h)
    x = h * np.arange(-n, n + 1)
    return x, h * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _moments(act, C):
    """2x2 matrices ``E[phi phi]`` and ``E[phi' phi']`` under ``N(0, C)``."""
    hom = _homogeneous(act)
    P, D = np.empty((2, 2)), np.empty((2, 2))
    for i, j in ((0, 0), (1, 1), (0, 1)):
        Cij = np.array([[C[i, i], C[i, j]], [C[i, j], C[j, j]]])
        P[i, j] = expect(act.fn, act.fn, Cij, (1, 1) if hom else None)
        D[i, j] = expect(act.derivative, act.derivative, Cij, (0, 0) if hom else None)
    P[1, 0], D[1, 0] = P[0, 1], D[0, 1]
    return P, D


def reference_pair(x1, x2, net, bias: bool = True) -> dict:
    """Per-layer 2x2 kernels of the pair ``(x1, x2)`` for the spec ``net`` (module docstring).

    Returns a dict with ``nngp``, ``backward``, ``ntk_layers`` of shape ``(L, 2, 2)`` and ``ntk`` ``(2, 2)``.
    SP needs ``net.width``.
    """
    X = np.array([x1, x2], dtype=np.float64)
    d = X.shape[1]
    L = net.depth
    sw, sb = net.weight_variances, net.bias_variances
    sb = sb if bias else (0.0,) * L
    act = net.activation
    rho = net.dropout
    ln = net.normalization == "layer"
    skip = [net.residual is not None and 2 <= l <= L - 1 for l in range(1, L + 1)]
    beta2 = [net.residual**2 if s else 1.0 for s in skip]
    Pin = [X @ X.T / d]
    Sigma = [sw[0] * Pin[0] + sb[0]]
    Dots = [None]
    for l in range(2, L + 1):
        C = Sigma[-1]
        scale = np.sqrt(np.outer(np.diag(C), np.diag(C)))
        P, D = _moments(act, C / scale if ln else C)
        if rho is not None:
            P[np.diag_indices(2)] /= rho
            D[np.diag_indices(2)] /= rho
        if ln:
            D = D / scale
        A = sw[l - 1] * P + sb[l - 1]
        Sigma.append((C if skip[l - 1] else 0.0) + beta2[l - 1] * A)
        Pin.append(P)
        Dots.append(sw[l - 1] * D)
    B = [None] * L
    B[L - 1] = np.ones((2, 2))
    for l in range(L, 1, -1):
        B[l - 2] = (B[l - 1] if skip[l - 1] else 0.0) + beta2[l - 1] * Dots[l - 1] * B[l - 1]
    K = []
    for l in range(1, L + 1):
        if net.parameterization == "ntk":
            F = sw[l - 1] * Pin[l - 1] + sb[l - 1]
        else:
            N = d if l == 1 else net.width[l - 2]
            F = N * Pin[l - 1] + (1.0 if bias else 0.0)
        K.append(beta2[l - 1] * F * B[l - 1])
    K = np.array(K)
    return {"nngp": np.array(Sigma), "backward": np.array(B), "ntk_layers": K, "ntk": K.sum(axis=0)}


def reference_kernels(X, net, bias: bool = True) -> dict:
    """:func:`reference_pair` for every pair of rows of ``X``: ``nngp``, ``backward``, ``ntk_layers`` ``(L, n, n)``
    and ``ntk`` ``(n, n)``."""
    X = np.asarray(X, dtype=np.float64)
    n, L = X.shape[0], net.depth
    out = {q: np.empty((L, n, n)) for q in ("nngp", "backward", "ntk_layers")}
    for i in range(n):
        for j in range(i, n):
            r = reference_pair(X[i], X[j], net, bias)
            for q in out:
                out[q][:, i, j] = r[q][:, 0, 1]
                out[q][:, j, i] = r[q][:, 0, 1]
                out[q][:, i, i] = r[q][:, 0, 0]
                out[q][:, j, j] = r[q][:, 1, 1]
    out["ntk"] = out["ntk_layers"].sum(axis=0)
    return out
