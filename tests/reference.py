"""Independent high-precision (mpmath) reference for the kernel maps, written from the published formulas.

This module is test infrastructure: it does not import :mod:`meanfield` and was written from the published
formulas only (the recursions of Poole et al. 2016 and Jacot et al. 2018, the closed forms of Cho & Saul 2009 and
Williams 1997, the layer-wise decomposition of Lou et al. 2022, eq. (9)), so that the compiled maps can be checked
against it.
Everything is evaluated in mpmath; numpy is used only to hold arrays of ``mpf`` (``dtype=object``).

Public names
------------
gauss2(F, L11, L12, L22, dps=30, kinks_u=(), kinks_v=(), n=None, rule="auto")
    E[F(u, v)], (u, v) ~ N(0, [[L11, L12], [L12, L22]]), nested trapezoid or graded composite Gauss-Legendre.
gauss1(f, q, dps=30, points=(0,))
    E[f(sqrt(q) z)], adaptive mpmath quadrature (tanh-sinh) with split points.
ACTIVATIONS, phi(name, slope), dphi(name, slope)
    The named activations as mpmath functions.
ref_cov / ref_dcov(name, L11, L12, L22, dps=30, slope=None, method="auto")
    E[phi(u) phi(v)] and E[phi'(u) phi'(v)] by quadrature.
ref_cov_dcov(name, L11, L12, L22, dps=30, slope=None) -> (cov, dcov)
    Both at once in one nested ``gauss2`` pass.
ref_var / ref_dvar(name, q, dps=30, slope=None)
    E[phi(sqrt(q) z)^2] and E[phi'(sqrt(q) z)^2] by 1-D quadrature.
closed_cov / closed_dcov(name, L11, L12, L22, dps=50, slope=None)
    Arc-cosine (relu, leaky_relu, linear) and Williams (erf) closed forms.
relu_g, relu_gprime(c, dps=40), relu_eoc_one_minus_c(c1, l, dps=40)
    The ReLU correlation map at the edge of chaos and its iterate in 1 - c.
ref_kernels(X, depth, name, sigma_w2, sigma_b2, dps=30, slope=None) -> RefKernels
    Per-layer NNGP, derivative, backward and NTK kernels (NTK parameterization).
ref_fixed_point(name, sigma_w2, sigma_b2, dps=30, slope=None) -> (q*, chi_1)
ref_eoc_point(name, sigma_b2, dps=30, slope=None) -> (sigma_w2, q*)
ref_edge_of_chaos(name, sigma_b2, dps=30, slope=None) -> sigma_w2
erf_eoc_curve(q_star, dps=30) -> (sigma_w2, sigma_b2)

Methods
-------
* 2-D expectations (``gauss2``) of smooth integrands at moderate scales: tensor trapezoid rule in the
  standardized variables, step set by the strip of analyticity (tanh: poles at distance pi/2).
* 2-D expectations (``gauss2``) otherwise: write u = s1 x, v = s2 (c x + sqrt(1 - c^2) y) with x, y iid N(0, 1),
  s1 = sqrt(L11), s2 = sqrt(L22), c = L12 / (s1 s2), truncate both axes to [-K, K] with
  exp(-K^2/2) < 10^-(dps+5), and apply composite Gauss-Legendre rules on panels. Panels are split exactly at
  the kinks of F (``kinks_u`` in u, ``kinks_v`` in v, mapped to x and, for each x, to y) and graded
  geometrically (ratio 2) towards them down to the narrowest scale of the integrand (1/s1, 1/(s2 sqrt(1-c^2)),
  and the width sqrt(1-c^2)/|c| of the smoothed v-kink seen by the outer variable), so saturating activations at
  variances 1e-8 to 1e8 and correlations up to 1 - 1e-12 are resolved (tested). At |c| = 1 exactly the integral
  is 1-D.
* 1-D expectations (``gauss1``) use ``mpmath.quad`` (tanh-sinh, adaptive) on the same graded panels.
* ``ref_cov``/``ref_dcov`` with ``method="auto"`` integrate the inner variable analytically when the
  conditional expectation E[phi(m + s y)] has a closed form (relu family, erf, gelu), leaving a 1-D adaptive
  quadrature; otherwise (tanh, softplus, sigmoid, silu) they call ``gauss2``. Conditional forms used:
  E[relu(m + s y)] = m Phi(m/s) + s phi(m/s); E[erf(m + s y)] = erf(m / sqrt(1 + 2 s^2));
  E[gelu(m + s y)] = m Phi(m/r) + s^2 phi(m/r)/r and E[gelu'(m + s y)] = Phi(m/r) + m phi(m/r)/r^3, r = sqrt(1 + s^2).

Returned mpf carry dps + 10 digits; do arithmetic on them under ``mp.workdps`` (the global mp.dps is 15).
* Closed forms (Cho & Saul 2009 for the leaky-ReLU family, Williams 1997 for erf) are evaluated at 50 digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from mpmath import mp, mpf

__all__ = [
    "ACTIVATIONS",
    "RefKernels",
    "closed_cov",
    "closed_dcov",
    "dphi",
    "erf_eoc_curve",
    "gauss1",
    "gauss2",
    "phi",
    "ref_cov",
    "ref_cov_dcov",
    "ref_dcov",
    "ref_dvar",
    "ref_edge_of_chaos",
    "ref_eoc_point",
    "ref_fixed_point",
    "ref_kernels",
    "ref_var",
    "relu_eoc_one_minus_c",
    "relu_g",
    "relu_gprime",
]

_GUARD = 10  # extra working digits
LEAKY_DEFAULT_SLOPE = 0.01  # as meanfield.activations' "leaky_relu"


# ---------------------------------------------------------------------------------------------------------------
# quadrature machinery
# ---------------------------------------------------------------------------------------------------------------


def _cutoff(dps):
    """K with exp(-K^2/2) < 10^-(dps+5): the Gaussian tail beyond K is below the working precision."""
    return mpf(math.sqrt(2.0 * (dps + 5) * math.log(10.0)) + 0.5)


@lru_cache(maxsize=64)
def _gl_rule(n, dps):
    """Gauss-Legendre nodes and weights on [-1, 1] at ``dps`` digits (Newton on P_n), as tuples of mpf."""
    with mp.workdps(dps + 10):
        nodes, weights = [], []
        for i in range(1, n // 2 + 1):
            x = mp.cos(mp.pi * (i - mpf(1) / 4) / (n + mpf(1) / 2))
            for _ in range(100):
                p0, p1 = mpf(1), x
                for k in range(2, n + 1):
                    p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
                dp = n * (x * p1 - p0) / (x * x - 1)
                dx = p1 / dp
                x -= dx
                if abs(dx) < mpf(10) ** (-(dps + 8)):
                    break
            p0, p1 = mpf(1), x
            for k in range(2, n + 1):
                p0, p1 = p1, ((2 * k - 1) * x * p1 - (k - 1) * p0) / k
            dp = n * (x * p1 - p0) / (x * x - 1)
            w = 2 / ((1 - x * x) * dp * dp)
            nodes += [x, -x]
            weights += [w, w]
        if n % 2:
            p0, p1 = mpf(1), mpf(0)
            for k in range(2, n + 1):
                p0, p1 = p1, ((2 * k - 1) * 0 * p1 - (k - 1) * p0) / k
            dp = n * (0 * p1 - p0) / (0 - 1)
            nodes.append(mpf(0))
            weights.append(2 / (dp * dp))
    return tuple(nodes), tuple(weights)


def _default_n(dps):
    """Nodes per panel: a pole at distance pi/2 from a panel of half-width 1 (tanh at unit scale) gives a
    Bernstein-ellipse parameter rho = 3.43 and an error ~ rho^(-2n) = 10^(-1.07 n); ask for dps + 2 digits."""
    return max(8, math.ceil(0.95 * (dps + 2)))


def _breakpoints(features, K, hmax=2):
    """Sorted panel ends on [-K, K]: every feature point p, plus p +- w 2^j (j >= 0) up to width ``hmax``,
    then uniform filling so that no panel is wider than ``hmax``. ``features`` = iterable of (p, w)."""
    hmax = mpf(hmax)
    pts = {-K, K}
    for p, w in features:
        if not (-K < p < K):
            continue
        pts.add(p)
        w = min(mpf(w), hmax)
        if w <= 0:
            continue
        d = w
        while d < hmax:
            for q in (p - d, p + d):
                if -K < q < K:
                    pts.add(q)
            d *= 2
    pts = sorted(pts)
    out = [pts[0]]
    for b in pts[1:]:
        a = out[-1]
        if b - a <= 0:
            continue
        m = int(mp.ceil((b - a) / hmax))
        for k in range(1, m):
            out.append(a + (b - a) * k / m)
        out.append(b)
    return out


def _composite(f, breaks, rule, nout):
    """sum over panels of the Gauss-Legendre rule applied to f(t) exp(-t^2/2); f returns a list of length nout."""
    nodes, weights = rule
    acc = [mpf(0)] * nout
    for a, b in zip(breaks[:-1], breaks[1:], strict=False):
        h = (b - a) / 2
        m = (a + b) / 2
        for t0, w0 in zip(nodes, weights, strict=False):
            t = m + h * t0
            wt = w0 * h * mp.exp(-t * t / 2)
            vals = f(t)
            for k in range(nout):
                acc[k] += wt * vals[k]
    return acc


def _as_list(val):
    if isinstance(val, (list, tuple)):
        return list(val), True
    return [val], False


def _check_cov(L11, L12, L22):
    L11, L12, L22 = mpf(L11), mpf(L12), mpf(L22)
    if not (L11 > 0 and L22 > 0):
        raise ValueError(f"L11 and L22 must be > 0, got {L11}, {L22}")
    c = L12 / mp.sqrt(L11 * L22)
    if abs(c) > 1 + mpf(10) ** (-mp.dps + 3):
        raise ValueError(f"correlation L12/sqrt(L11 L22) must be in [-1, 1], got {c}")
    return L11, L12, L22


def gauss2(F, L11, L12, L22, dps=30, kinks_u=(), kinks_v=(), n=None, rule="auto"):
    """E[F(u, v)] for (u, v) ~ N(0, [[L11, L12], [L12, L22]]) by nested composite Gauss-Legendre quadrature.

    Parameters
    ----------
    F : callable or (callable, callable)
        F(u, v) of two mpf, or a pair (f, g) meaning F = f(u) g(v) (faster: f is evaluated once per outer
        node). Any of them may return a list of values; all are integrated at once (products elementwise).
    L11, L12, L22 : float or mpf
        Covariance entries; L11, L22 > 0 and |L12| <= sqrt(L11 L22).
    dps : int
        Target decimal digits.
    kinks_u, kinks_v : sequence of float
        Points where F is not smooth in u, resp. v (0 for ReLU-type activations). Panels are split there exactly.
        Independently of this, panels are graded towards u = 0 and v = 0 at the scales 1/sqrt(L11),
        1/sqrt(L22) so that saturating activations at large variance are resolved.
    n : int, optional
        Gauss-Legendre nodes per panel (default ``ceil(0.95 (dps + 2))``; panels are at most 2 wide in x and y).
    rule : {"auto", "gl", "trapezoid"}
        "auto": the tensor trapezoid rule when F has no kinks and all scales sqrt(L11), |L12|/sqrt(L11),
        sqrt(det/L11) are <= 2 (4-5x fewer nodes for the same accuracy), else graded composite Gauss-Legendre.
        "gl" / "trapezoid" force one rule (to cross-check the two).

    Returns
    -------
    mpf or list of mpf

    Notes
    -----
    u = s1 x, v = slope x + r y with s1 = sqrt(L11), slope = L12/s1, r = sqrt(det/L11), x, y iid N(0, 1), both
    truncated at K with exp(-K^2/2) < 10^-(dps+5). The inner integral over y is split at the v-kinks
    y = (k - slope x)/r. Seen by the outer variable, those kinks are smoothed over a width r/|slope|, so the outer
    panels are graded towards x = k/slope down to that width (this resolves correlations within 1e-15 of +-1).
    When det = 0 (|c| = 1) the integral is 1-D, v = sign(c) sqrt(L22) x.
    Smooth integrands at moderate scales use the trapezoid rule instead (see ``rule``), with the step chosen
    for poles at distance pi/2 in the activation's argument (tanh; sigmoid, softplus, silu have them at pi).
    Measured at dps=30: relu/erf/leaky against the closed forms to < 1e-27 for c in {-1, -0.3, 0.5, 0.99, 1}
    and variances (1, 1), (1, 4); at dps=20, relative error < 3e-21 at variances 1e8 / 1e-8 and c = 1 - 1e-12;
    tanh at (1, 0.5, 1): trapezoid and GL agree to 2e-36 (dps=30). Cost (pure-Python mpmath, no gmpy):
    tanh at dps=30 about 0.5-1 s (trapezoid), relu with kinks 1-3 s; the degenerate |c| = 1 case is 1-D.
    """
    if rule not in ("auto", "gl", "trapezoid"):
        raise ValueError(f"rule must be 'auto', 'gl' or 'trapezoid', got {rule!r}")
    with mp.workdps(dps + _GUARD):
        L11, L12, L22 = _check_cov(L11, L12, L22)
        sep = isinstance(F, tuple)
        if sep:
            f, g = F
            probe, vec = _as_list(f(mpf(0)))
        else:
            probe, vec = _as_list(F(mpf(0), mpf(0)))
        nout = len(probe)
        s1, s2 = mp.sqrt(L11), mp.sqrt(L22)
        det = L11 * L22 - L12 * L12
        K = _cutoff(dps)
        hmax = mpf(2)
        glr = _gl_rule(n or _default_n(dps), dps + _GUARD)
        one = mpf(1)
        norm = 1 / mp.sqrt(2 * mp.pi)
        wu = min(one, 1 / s1)
        ku = [mpf(k) / s1 for k in kinks_u]
        feats = [(mpf(0), wu)] + [(p, wu) for p in ku]
        if det <= 0:  # |c| = 1: v = sign * s2 * x exactly, a 1-D integral
            sign = 1 if L12 > 0 else -1
            wv = min(one, 1 / s2)
            feats += [(mpf(0), wv)] + [(sign * mpf(k) / s2, wv) for k in kinks_v]
            brk = _breakpoints(feats, K, hmax)
            if sep:

                def h(x):
                    return [a * b for a, b in zip(_as_list(f(s1 * x))[0], _as_list(g(sign * s2 * x))[0], strict=True)]

            else:

                def h(x):
                    return _as_list(F(s1 * x, sign * s2 * x))[0]

            res = [v * norm for v in _composite(h, brk, glr, nout)]
            return res if vec else res[0]

        r = mp.sqrt(det / L11)  # v = slope * x + r * y
        slope = L12 / s1
        smooth_moderate = not kinks_u and not kinks_v and max(s1, abs(slope), r) <= 2
        if rule == "trapezoid" or (rule == "auto" and smooth_moderate):
            res = _trapezoid2(F, sep, nout, s1, slope, r, dps, n)
            return res if vec else res[0]
        if slope != 0:
            # E_y[F(., slope x + r y)]: a v-kink is smoothed over r, a v-transition of width 1/... over max(1, r)
            wsm = max(one, r) / abs(slope)
            wkink = r / abs(slope)
            feats.append((mpf(0), min(wsm, wu)))
            feats += [(mpf(k) / slope, min(wkink, wsm, wu)) for k in kinks_v]
        brk_x = _breakpoints(feats, K, hmax)
        wy = min(one, 1 / r)
        kv = [mpf(k) for k in kinks_v]
        fixed_y = not kv and r <= 1  # smooth in y on the scale of the panels: one grid for every x
        if fixed_y:
            brk_y = _breakpoints([(mpf(0), hmax)], K, hmax)
            ynodes = []
            nodes, weights = glr
            for a, b in zip(brk_y[:-1], brk_y[1:], strict=False):
                hh, mm = (b - a) / 2, (a + b) / 2
                for t0, w0 in zip(nodes, weights, strict=False):
                    t = mm + hh * t0
                    ynodes.append((r * t, w0 * hh * mp.exp(-t * t / 2)))

        def inner(x):
            u = s1 * x
            mu = slope * x
            if sep:
                fu = _as_list(f(u))[0]
                gg = (lambda y: _as_list(g(mu + r * y))[0]) if not fixed_y else None
            if fixed_y:
                acc = [mpf(0)] * nout
                for ry, w in ynodes:
                    vals = _as_list(g(mu + ry))[0] if sep else _as_list(F(u, mu + ry))[0]
                    for k in range(nout):
                        acc[k] += w * vals[k]
            else:
                fy = [((k - mu) / r, wy) for k in kv] + [(-mu / r, wy)]
                brk_y = _breakpoints(fy, K, hmax)
                acc = _composite(gg if sep else (lambda y: _as_list(F(u, mu + r * y))[0]), brk_y, glr, nout)
            if sep:
                acc = [a * b for a, b in zip(acc, fu, strict=True)]
            return acc

        res = [v * norm * norm for v in _composite(inner, brk_x, glr, nout)]
        return res if vec else res[0]


def _trap_nodes(scale, dps, K):
    """Trapezoid nodes (t_k, h exp(-t_k^2/2)) on [-K, K] for integrands analytic in |Im t| < (pi/2)/scale.

    Error ~ exp(-2 pi d / h) for a pole at distance d (take d = 1.4/scale < pi/(2 scale)) and ~ exp(-2 pi^2/h^2)
    from the Gaussian itself; h is the larger step that keeps both below 10^-(dps+3).
    """
    D = (dps + 3) * mp.log(10)
    h = 2 * mp.pi * mpf(1.4) / (max(scale, mpf(1) / 16) * D)
    h = min(h, mpf(0.9) * mp.pi * mp.sqrt(2 / D))
    N = int(K / h) + 1
    return [(k * h, h * mp.exp(-((k * h) ** 2) / 2)) for k in range(-N, N + 1)]


def _trapezoid2(F, sep, nout, s1, slope, r, dps, n):
    """Smooth integrands at moderate scales: tensor trapezoid rule in (x, y) (Poisson summation: geometric
    convergence for integrands analytic in a strip; tanh has its poles at distance pi/2 in its argument)."""
    K = _cutoff(dps)
    xs = _trap_nodes(max(s1, abs(slope)), dps, K)
    ys = _trap_nodes(r, dps, K)
    acc = [mpf(0)] * nout
    for x, wx in xs:
        u, mu = s1 * x, slope * x
        inner = [mpf(0)] * nout
        for y, wy in ys:
            vals = _as_list(F[1](mu + r * y))[0] if sep else _as_list(F(u, mu + r * y))[0]
            for k in range(nout):
                inner[k] += wy * vals[k]
        if sep:
            fu = _as_list(F[0](u))[0]
            inner = [a * b for a, b in zip(inner, fu, strict=True)]
        for k in range(nout):
            acc[k] += wx * inner[k]
    return [+(a / (2 * mp.pi)) for a in acc]


def gauss1(f, q, dps=30, points=(0,)):
    """E[f(sqrt(q) z)], z ~ N(0, 1), by adaptive tanh-sinh quadrature (``mpmath.quad``) on graded panels.

    ``points`` are kinks / feature locations of f (in the argument of f); panels are split there and graded
    towards them down to the scale min(1, 1/sqrt(q)).
    """
    with mp.workdps(dps + _GUARD):
        q = mpf(q)
        if not q > 0:
            raise ValueError(f"q must be > 0, got {q}")
        s = mp.sqrt(q)
        K = _cutoff(dps)
        brk = _breakpoints([(mpf(p) / s, min(mpf(1), 1 / s)) for p in points], K, hmax=mpf(4))
        val = mp.quad(lambda x: f(s * x) * mp.exp(-x * x / 2), brk) / mp.sqrt(2 * mp.pi)
        return +val


# ---------------------------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------------------------


def _Phi(t):
    return mp.erfc(-t / mp.sqrt(2)) / 2


def _npdf(t):
    return mp.exp(-t * t / 2) / mp.sqrt(2 * mp.pi)


def _sigmoid(u):
    if u >= 0:
        return 1 / (1 + mp.exp(-u))
    e = mp.exp(u)
    return e / (1 + e)


def _relu_cond(m, s):
    """E[max(m + s y, 0)], y ~ N(0, 1)."""
    if s == 0:
        return max(m, mpf(0))
    return m * _Phi(m / s) + s * _npdf(m / s)


def _step_cond(m, s):
    """P(m + s y > 0)."""
    if s == 0:
        return mpf(1) if m > 0 else mpf(0)
    return _Phi(m / s)


def _leaky(a):
    a = mpf(a)
    return dict(
        phi=lambda u: u if u > 0 else a * u,
        dphi=lambda u: mpf(1) if u > 0 else a,
        # conditional expectations E[g(m + s y)]: phi = relu(t) - a relu(-t)
        cond=lambda m, s: _relu_cond(m, s) - a * _relu_cond(-m, s),
        dcond=lambda m, s: _step_cond(m, s) + a * _step_cond(-m, s),
        kink=True,
    )


def _gelu_cond(m, s):
    r = mp.sqrt(1 + s * s)
    return m * _Phi(m / r) + s * s * _npdf(m / r) / r


def _gelu_dcond(m, s):
    r = mp.sqrt(1 + s * s)
    return _Phi(m / r) + m * _npdf(m / r) / r**3


def _erf_cond(m, s):
    return mp.erf(m / mp.sqrt(1 + 2 * s * s))


def _erf_dcond(m, s):
    r2 = 1 + 2 * s * s
    return 2 / mp.sqrt(mp.pi) * mp.exp(-m * m / r2) / mp.sqrt(r2)


def _activation_table(slope):
    return {
        "relu": _leaky(0),
        "leaky_relu": _leaky(LEAKY_DEFAULT_SLOPE if slope is None else slope),
        "linear": _leaky(1),
        "erf": dict(phi=mp.erf, dphi=lambda u: 2 / mp.sqrt(mp.pi) * mp.exp(-u * u), cond=_erf_cond, dcond=_erf_dcond),
        "tanh": dict(phi=mp.tanh, dphi=lambda u: mp.sech(u) ** 2),
        "gelu": dict(
            phi=lambda u: u * _Phi(u), dphi=lambda u: _Phi(u) + u * _npdf(u), cond=_gelu_cond, dcond=_gelu_dcond
        ),
        "softplus": dict(phi=lambda u: mp.log1p(mp.exp(u)), dphi=_sigmoid),
        "sigmoid": dict(phi=_sigmoid, dphi=lambda u: _sigmoid(u) * _sigmoid(-u)),
        "silu": dict(phi=lambda u: u * _sigmoid(u), dphi=lambda u: _sigmoid(u) * (1 + u * _sigmoid(-u))),
    }


ACTIVATIONS = tuple(_activation_table(None))


def _act(name, slope=None):
    if name not in ACTIVATIONS:
        raise ValueError(f"name must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    if slope is not None and name != "leaky_relu":
        raise ValueError(f"slope is only for 'leaky_relu', got slope={slope!r} for {name!r}")
    return _activation_table(slope)[name]


def phi(name, slope=None):
    """The activation ``name`` as an mpmath function of one mpf (slope: leaky_relu only, default 0.01)."""
    return _act(name, slope)["phi"]


def dphi(name, slope=None):
    """The derivative phi' of activation ``name`` as an mpmath function."""
    return _act(name, slope)["dphi"]


# ---------------------------------------------------------------------------------------------------------------
# Gaussian moments of named activations
# ---------------------------------------------------------------------------------------------------------------


def _cond_route(f, G, L11, L12, L22, dps):
    """E[f(u) g(v)] = E_u[f(u) G(mu(u), r)] with G(m, r) = E[g(m + r y)] in closed form; 1-D adaptive quad."""
    with mp.workdps(dps + _GUARD):
        L11, L12, L22 = _check_cov(L11, L12, L22)
        s1 = mp.sqrt(L11)
        det = L11 * L22 - L12 * L12
        r = mp.sqrt(det / L11) if det > 0 else mpf(0)
        slope = L12 / s1
        K = _cutoff(dps)
        one = mpf(1)
        wu = min(one, 1 / s1)
        feats = [(mpf(0), wu)]
        if slope != 0:
            feats.append((mpf(0), min(wu, min(one, r) / abs(slope))))
        brk = _breakpoints(feats, K, hmax=mpf(4))
        val = mp.quad(lambda x: f(s1 * x) * G(slope * x, r) * mp.exp(-x * x / 2), brk) / mp.sqrt(2 * mp.pi)
        return +val


def _moment(key, name, L11, L12, L22, dps, slope, method):
    a = _act(name, slope)
    f = a["phi"] if key == "cond" else a["dphi"]
    if method == "closed":
        return (closed_cov if key == "cond" else closed_dcov)(name, L11, L12, L22, dps=dps, slope=slope)
    if method == "auto" and key in a:
        return _cond_route(f, a[key], L11, L12, L22, dps)
    if method in ("auto", "nested"):
        k = (0,) if a.get("kink") else ()
        return gauss2((f, f), L11, L12, L22, dps=dps, kinks_u=k, kinks_v=k)
    raise ValueError(f"method must be 'auto', 'nested' or 'closed', got {method!r}")


def ref_cov(name, L11, L12, L22, dps=30, slope=None, method="auto"):
    """E[phi(u) phi(v)], (u, v) ~ N(0, [[L11, L12], [L12, L22]]), by quadrature.

    ``method``: "auto" (inner variable analytic where E[phi(m + s y)] has a closed form: relu family, erf, gelu;
    otherwise nested ``gauss2``), "nested" (always ``gauss2``), "closed" (``closed_cov``).
    """
    return _moment("cond", name, L11, L12, L22, dps, slope, method)


def ref_dcov(name, L11, L12, L22, dps=30, slope=None, method="auto"):
    """E[phi'(u) phi'(v)], (u, v) ~ N(0, [[L11, L12], [L12, L22]]), by quadrature (see :func:`ref_cov`)."""
    return _moment("dcond", name, L11, L12, L22, dps, slope, method)


def ref_cov_dcov(name, L11, L12, L22, dps=30, slope=None):
    """(E[phi phi], E[phi' phi']) in one nested ``gauss2`` pass (for activations without a conditional form)."""
    a = _act(name, slope)
    f, df = a["phi"], a["dphi"]
    k = (0,) if a.get("kink") else ()

    def both(t):
        return [f(t), df(t)]

    return tuple(gauss2((both, both), L11, L12, L22, dps=dps, kinks_u=k, kinks_v=k))


def ref_var(name, q, dps=30, slope=None):
    """E[phi(sqrt(q) z)^2], z ~ N(0, 1), by 1-D adaptive quadrature."""
    f = phi(name, slope)
    return gauss1(lambda u: f(u) ** 2, q, dps=dps)


def ref_dvar(name, q, dps=30, slope=None):
    """E[phi'(sqrt(q) z)^2], z ~ N(0, 1), by 1-D adaptive quadrature."""
    f = dphi(name, slope)
    return gauss1(lambda u: f(u) ** 2, q, dps=dps)


# ---------------------------------------------------------------------------------------------------------------
# closed forms (Cho & Saul 2009; Williams 1997)
# ---------------------------------------------------------------------------------------------------------------

_CLOSED = ("relu", "leaky_relu", "linear", "erf")


def _closed_slope(name, slope):
    if name not in _CLOSED:
        raise ValueError(f"closed forms exist for {', '.join(_CLOSED)}, got {name!r}")
    if slope is not None and name != "leaky_relu":
        raise ValueError(f"slope is only for 'leaky_relu', got slope={slope!r} for {name!r}")
    return {"relu": 0, "linear": 1}.get(name, LEAKY_DEFAULT_SLOPE if slope is None else slope)


def _theta(L11, L12, L22):
    c = L12 / mp.sqrt(L11 * L22)
    c = min(max(c, mpf(-1)), mpf(1))
    return mp.acos(c)


def closed_cov(name, L11, L12, L22, dps=50, slope=None):
    """Closed-form E[phi(u) phi(v)] for relu / leaky_relu / linear (arc-cosine) and erf (Williams).

    Leaky ReLU with slope a, theta = arccos(L12/sqrt(L11 L22)):
    sqrt(L11 L22)/(2 pi) [(1 + a^2)(sin theta + (pi - theta) cos theta) - 2a (sin theta - theta cos theta)]
    (phi(t) = relu(t) - a relu(-t) and the Cho-Saul J_1 at theta and pi - theta). erf:
    (2/pi) arcsin(2 L12 / sqrt((1 + 2 L11)(1 + 2 L22))).
    """
    with mp.workdps(dps + _GUARD):
        if name == "erf":
            L11, L12, L22 = _check_cov(L11, L12, L22)
            return +(2 / mp.pi * mp.asin(2 * L12 / mp.sqrt((1 + 2 * L11) * (1 + 2 * L22))))
        a = mpf(_closed_slope(name, slope))
        L11, L12, L22 = _check_cov(L11, L12, L22)
        th = _theta(L11, L12, L22)
        j1 = mp.sin(th) + (mp.pi - th) * mp.cos(th)
        j1m = mp.sin(th) - th * mp.cos(th)
        return +(mp.sqrt(L11 * L22) / (2 * mp.pi) * ((1 + a * a) * j1 - 2 * a * j1m))


def closed_dcov(name, L11, L12, L22, dps=50, slope=None):
    """Closed-form E[phi'(u) phi'(v)]: leaky ReLU ((1 + a^2)(pi - theta) + 2 a theta)/(2 pi);
    erf (4/pi) [(1 + 2 L11)(1 + 2 L22) - 4 L12^2]^(-1/2)."""
    with mp.workdps(dps + _GUARD):
        if name == "erf":
            L11, L12, L22 = _check_cov(L11, L12, L22)
            return +(4 / mp.pi / mp.sqrt((1 + 2 * L11) * (1 + 2 * L22) - 4 * L12 * L12))
        a = mpf(_closed_slope(name, slope))
        L11, L12, L22 = _check_cov(L11, L12, L22)
        th = _theta(L11, L12, L22)
        return +(((1 + a * a) * (mp.pi - th) + 2 * a * th) / (2 * mp.pi))


def relu_g(c, dps=40):
    """ReLU EOC correlation map g(c) = (c arcsin c + sqrt(1 - c^2))/pi + c/2 (Lou et al. 2022, eq. (3))."""
    with mp.workdps(dps + _GUARD):
        c = mpf(c)
        return +((c * mp.asin(c) + mp.sqrt(1 - c * c)) / mp.pi + c / 2)


def relu_gprime(c, dps=40):
    """g'(c) = 1/2 + arcsin(c)/pi."""
    with mp.workdps(dps + _GUARD):
        return +(mpf(1) / 2 + mp.asin(mpf(c)) / mp.pi)


def relu_eoc_one_minus_c(c1, l, dps=40):
    """1 - c_l for ReLU at (sigma_w2, sigma_b2) = (2, 0), c_1 = c1, c_{k+1} = g(c_k).

    Iterated in s = 1 - c with theta = 2 arcsin(sqrt(s/2)) and s' = s - (sin theta - theta cos theta)/pi
    (g of Lou et al. 2022, eq. (3), in the variable s; derived here), at ``dps`` + 20 working digits so the
    cancellation in sin - theta cos costs nothing.
    """
    l = int(l)
    if l < 1:
        raise ValueError(f"l must be >= 1, got {l}")
    with mp.workdps(dps + 20):
        s = 1 - mpf(c1)
        for _ in range(l - 1):
            th = 2 * mp.asin(mp.sqrt(s / 2))
            s = s - (mp.sin(th) - th * mp.cos(th)) / mp.pi
        return +s


# ---------------------------------------------------------------------------------------------------------------
# kernel recursions (Poole et al. 2016; Jacot et al. 2018; Lou et al. 2022, eq. (9)), NTK parameterization
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefKernels:
    """Per-layer reference kernels; arrays of mpf (dtype=object), layer l at index l-1.

    sigma : (L, n, n)       NNGP Sigma_l.
    sigma_dot : (L, n, n)   Sigmadot_l = sigma_w2 E[phi' phi'] under Lambda_{l-1}; layer 1 is NaN (undefined).
    backward : (L, n, n)    B_l = prod_{k>l} Sigmadot_k, B_L = 1.
    ntk : (L, n, n)         Theta_l (NTK of the depth-l network); ``theta`` = Theta_L.
    layers : (L, n, n)      Theta^(l) = Sigma_l * B_l; sums over l to Theta_L.
    """

    sigma: np.ndarray
    sigma_dot: np.ndarray
    backward: np.ndarray
    ntk: np.ndarray
    layers: np.ndarray

    @property
    def theta(self):
        return self.ntk[-1]

    def to_float(self, field):
        """A field as a float64 ndarray (NaN where undefined)."""
        arr = getattr(self, field)
        return np.array([float(v) for v in arr.flat], dtype=np.float64).reshape(arr.shape)


def _per_layer(val, depth, label):
    vals = list(val) if np.ndim(val) else [val] * depth
    if len(vals) != depth:
        raise ValueError(f"{label} must be a scalar or have length depth={depth}, got {len(vals)}")
    return [mpf(v) for v in vals]


def ref_kernels(X, depth, name, sigma_w2, sigma_b2, dps=30, slope=None):
    """NNGP, derivative, backward and NTK kernels of a depth-L network (NTK parameterization), in mpmath.

    Sigma_1 = sigma_w2/d X X^T + sigma_b2, Sigma_{l+1} = sigma_w2 E[phi phi] + sigma_b2,
    Sigmadot_{l+1} = sigma_w2 E[phi' phi'] (expectations under Lambda_l built from Sigma_l),
    Theta_1 = Sigma_1, Theta_l = Theta_{l-1} * Sigmadot_l + Sigma_l, B_l = prod_{k>l} Sigmadot_k
    (Poole et al. 2016; Jacot et al. 2018). ``sigma_w2``/``sigma_b2`` may be per-layer sequences (index l-1).

    relu, leaky_relu, linear and erf use the closed forms (any depth); the other activations use 1-D quadrature
    on the diagonal and, off the diagonal, the conditional 1-D route (gelu) or one nested ``gauss2`` pass for
    phi phi and phi' phi' together (tanh, softplus, sigmoid, silu: about 1-3 s per pair and layer at dps=30).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a 2-D array (n, d), got shape {X.shape}")
    depth = int(depth)
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    _act(name, slope)
    closed = name in _CLOSED
    n, d = X.shape
    with mp.workdps(dps + _GUARD):
        sw = _per_layer(sigma_w2, depth, "sigma_w2")
        sb = _per_layer(sigma_b2, depth, "sigma_b2")
        Xm = [[mpf(float(v)) for v in row] for row in X]
        S = np.empty((depth, n, n), dtype=object)
        D = np.empty((depth, n, n), dtype=object)
        for i in range(n):
            for j in range(n):
                S[0, i, j] = sw[0] / d * mp.fsum(a * b for a, b in zip(Xm[i], Xm[j], strict=True)) + sb[0]
                D[0, i, j] = mp.nan
        for l in range(1, depth):
            P = S[l - 1]
            for i in range(n):
                for j in range(i, n):
                    L11, L12, L22 = P[i, i], P[i, j], P[j, j]
                    if closed:
                        e = closed_cov(name, L11, L12, L22, dps=dps, slope=slope)
                        de = closed_dcov(name, L11, L12, L22, dps=dps, slope=slope)
                    elif i == j:
                        e = ref_var(name, L11, dps=dps, slope=slope)
                        de = ref_dvar(name, L11, dps=dps, slope=slope)
                    elif "cond" in _act(name, slope):
                        e = ref_cov(name, L11, L12, L22, dps=dps, slope=slope)
                        de = ref_dcov(name, L11, L12, L22, dps=dps, slope=slope)
                    else:
                        e, de = ref_cov_dcov(name, L11, L12, L22, dps=dps, slope=slope)
                    S[l, i, j] = S[l, j, i] = sw[l] * e + sb[l]
                    D[l, i, j] = D[l, j, i] = sw[l] * de
        B = np.empty_like(S)
        B[depth - 1] = np.full((n, n), mpf(1), dtype=object)
        for l in range(depth - 2, -1, -1):
            B[l] = B[l + 1] * D[l + 1]
        T = np.empty_like(S)
        T[0] = S[0].copy()
        for l in range(1, depth):
            T[l] = T[l - 1] * D[l] + S[l]
        layers = S * B
    return RefKernels(S, D, B, T, layers)


# ---------------------------------------------------------------------------------------------------------------
# fixed points and edge of chaos (Poole et al. 2016; Schoenholz et al. 2017)
# ---------------------------------------------------------------------------------------------------------------


def ref_fixed_point(name, sigma_w2, sigma_b2, dps=30, slope=None, q0=1.0):
    """(q*, chi_1): q* = sigma_w2 E[phi(sqrt(q*) z)^2] + sigma_b2 (mpmath findroot from q0),
    chi_1 = sigma_w2 E[phi'(sqrt(q*) z)^2]."""
    with mp.workdps(dps + _GUARD):
        sw, sb = mpf(sigma_w2), mpf(sigma_b2)
        # iterate the variance map first (contracting near a stable q*), then polish with the secant method
        q = mpf(q0)
        for _ in range(20):
            q = sw * ref_var(name, q, dps=15, slope=slope) + sb
        q = mp.findroot(lambda t: t - sw * ref_var(name, t, dps=dps, slope=slope) - sb, q, tol=mpf(10) ** (-2 * dps))
        return +q, +(sw * ref_dvar(name, q, dps=dps, slope=slope))


def ref_eoc_point(name, sigma_b2, dps=30, slope=None, q0=0.5):
    """(sigma_w2, q*) on the edge of chaos chi_1 = 1 at bias variance ``sigma_b2``.

    With V(q) = E[phi(sqrt q z)^2] and D(q) = E[phi'(sqrt q z)^2]: sigma_w2 = 1/D(q*) and
    q* = V(q*)/D(q*) + sigma_b2, solved for q* by mpmath findroot (secant from ``q0``).
    sigma_b2 = 0 returns the q* -> 0 limit (1/phi'(0)^2, 0) when phi(0) = 0.
    """
    with mp.workdps(dps + _GUARD):
        sb = mpf(sigma_b2)
        if sb < 0:
            raise ValueError(f"sigma_b2 must be >= 0, got {sigma_b2}")
        if name in ("relu", "leaky_relu", "linear"):
            # V/D = q for positively homogeneous phi: chi_1 = 1 fixes sigma_w2 and only sigma_b2 = 0 has a q*
            if sb != 0:
                raise ValueError(f"{name} has an edge of chaos only at sigma_b2 = 0, got {sigma_b2}")
            a = mpf(_closed_slope(name, slope))
            return +(2 / (1 + a * a)), mpf(0)  # E[phi'^2] = (1 + a^2)/2
        f0, df0 = phi(name, slope)(mpf(0)), dphi(name, slope)(mpf(0))
        if sb == 0 and f0 == 0:
            return +(1 / df0**2), mpf(0)

        def resid(q):
            return q - ref_var(name, q, dps=dps, slope=slope) / ref_dvar(name, q, dps=dps, slope=slope) - sb

        q = mp.findroot(resid, mpf(q0), tol=mpf(10) ** (-2 * dps))
        return +(1 / ref_dvar(name, q, dps=dps, slope=slope)), +q


def ref_edge_of_chaos(name, sigma_b2, dps=30, slope=None, q0=0.5):
    """sigma_w2 with chi_1 = 1 at the variance fixed point (see :func:`ref_eoc_point`)."""
    return ref_eoc_point(name, sigma_b2, dps=dps, slope=slope, q0=q0)[0]


def erf_eoc_curve(q_star, dps=30):
    """Closed-form erf edge of chaos parameterized by q* > 0 (derived here from Williams 1997):
    sigma_w2 = (pi/4) sqrt(1 + 4 q*), sigma_b2 = q* - (1/2) sqrt(1 + 4 q*) arcsin(2 q*/(1 + 2 q*))."""
    with mp.workdps(dps + _GUARD):
        q = mpf(q_star)
        r = mp.sqrt(1 + 4 * q)
        return +(mp.pi / 4 * r), +(q - r / 2 * mp.asin(2 * q / (1 + 2 * q)))
