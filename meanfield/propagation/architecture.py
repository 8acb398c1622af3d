r"""Kernel recursions beyond the plain MLP: residual blocks, LayerNorm and dropout (with per-layer variances).

The network (conventions of :class:`meanfield.Network`): ``z_1 = W_1 x + b_1``; hidden layers ``l = 2..L-1`` are
residual blocks ``z_l = gamma_l z_{l-1} + beta (W_l h_{l-1} + b_l)`` (``gamma_l = 1``; without ``residual``,
``gamma_l = 0`` and ``beta = 1``); the readout ``z_L = W_L h_{L-1} + b_L``; ``h_l = m_l * phi(N(z_l)) / rho`` with
``N`` the identity or LayerNorm and ``m_l`` Bernoulli(rho) dropout masks drawn per forward pass.

Infinite-width recursions (one layer ``l -> l + 1``, a = beta_l^2 sigma_{w,l+1}^2, b = beta_l^2 sigma_{b,l+1}^2 with
beta_l = beta on residual layers and 1 otherwise; ``gamma`` as above):

* LayerNorm: the mean over the units vanishes and the empirical variance concentrates at ``q_l(x)``, so
  ``N(z_l) = z_l / sqrt(q_l(x))``: unit variance and the same correlation (Xiong et al. 2020's pre-LN analysis at
  infinite width; derived here). Its Jacobian ``(I - 11^T/N - n n^T/N) / sqrt(q_l)`` acts on the backpropagated
  signal, which is independent of the normalized units ``n`` at infinite width; the two rank-one projections remove
  ``O(1/N)`` of its squared norm, so the backward step only gains ``1 / sqrt(q_l(x) q_l(x'))`` (derived here).
* Dropout (Schoenholz et al. 2017, sec. 5): ``E[h h']`` is ``E[phi phi'] / rho`` within one forward pass (the same
  mask) and ``E[phi phi']`` between two passes (independent masks); so are the derivative kernels of the backward
  pass with the masks held fixed at initialization.
* Forward (Yang & Schoenholz 2017 for the skip; the cross term of skip and branch vanishes at infinite width since
  ``W_l`` is independent of ``z_{l-1}``):
  ``Sigma_{l+1} = gamma Sigma_l + beta_l^2 (sigma_w^2 E[h_l h_l'] + sigma_b^2)``,
  ``q_{l+1} = gamma q_l + beta_l^2 (sigma_w^2 E phi^2 / rho + sigma_b^2)``.
* Backward (Hayou et al. 2021 for the residual NTK; Jacot et al. 2018; Lou et al. 2022, App. A for the layer-wise
  split): ``B_L = 1``, ``B_l = m_{l+1} B_{l+1}`` with the multiplier
  ``m_{l+1} = gamma + beta_l^2 Sigmadot_{l+1}``,
  ``Sigmadot_{l+1} = sigma_w^2 E[phi'(N z) phi'(N z')] [/ rho within a pass] [/ sqrt(q_l q_l') with LayerNorm]``.
* Tangent kernel: the parameters of layer ``l + 1`` contribute ``F_{l+1} = beta_l^2 (omega_w sigma_w^2
  E[h_l h_l'] + omega_b)`` (``(omega_w, omega_b) = (1, sigma_b^2)`` in NTK parameterization, ``(N_l / sigma_w^2,
  1)`` in standard), ``F_1 = omega_w (Sigma_1 - sigma_b^2) + omega_b``; ``Theta^{(l)} = F_l B_l`` and
  ``Theta_{l+1} = m_{l+1} Theta_l + F_{l+1}`` (derived here: the chain rule through the skip, each parameter
  entering once), so ``Theta_L = sum_l Theta^{(l)}``.

Near-parallel exactness: the pair carries ``(s, r) = (1 - c, 1 + c)``. With ``A = (sqrt(gamma q_1), sqrt(a v_1),
sqrt(b))`` and ``B`` the same for the second input (``v`` = E h^2 within a pass), ``sqrt(q_1' q_2') = |A||B|``,
and ``|A||B| - A.B = sum_{i<j} (A_i B_j - A_j B_i)^2 / (|A||B| + A.B)`` (Lagrange's identity) is formed without
cancellation, so ``1 - c' = (that + gamma s sqrt(q_1 q_2) + a gap) / sqrt(q_1' q_2')`` with the Cauchy-Schwarz gap
``gap = sqrt(v_1 v_2) - E[h h']`` of the activation's closed or Mehler form (derived here). Dropout between two
passes adds ``(1 - rho) sqrt(v_1 v_2)`` to both gaps (``v`` within a pass carries the ``1/rho``).
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit
from ..activations import KIND_HERMITE
from ..gaussian.closed import closed_variance
from ..gaussian.hermite import adaptive_coefficients, pack_parity
from ..gaussian.step import pair_step

__all__ = ["arch_pair", "arch_sequences", "arch_step", "dropout_factors", "layer_schedule", "pair_layers"]

_Q_TINY = float(np.finfo(np.float64).tiny)


def layer_schedule(net, d=None):
    """Per-layer arrays (length L, index l - 1 is layer l): sigma_w^2, sigma_b^2, beta_l^2 (the branch factor of
    layer l's parameters), gamma_l (1 on residual layers, else 0), and (omega_w, omega_b) of the tangent kernel
    (standard parameterization needs the fan-ins, hence ``d``)."""
    depth = net.depth
    sw = np.array(net.weight_variances, dtype=np.float64)
    sb = np.array(net.bias_variances, dtype=np.float64)
    g2 = np.ones(depth)
    gam = np.zeros(depth)
    if net.residual is not None and depth >= 3:
        g2[1 : depth - 1] = net.residual**2
        gam[1 : depth - 1] = 1.0
    if net.parameterization == "standard":
        if net.width is None:
            raise ValueError('parameterization="standard" needs a finite width (Network(width=...)): '
                             "the SP tangent kernel grows with the width")  # fmt: skip
        ow = np.array(net.fan_ins(d), dtype=np.float64) / sw
        ob = np.ones(depth)
    else:
        ow = np.ones(depth)
        ob = sb.copy()
    return sw, sb, g2, gam, ow, ob


@njit(cache=True, error_model="numpy")
def _closed_sequences(kind, slope, sw, sb, g2, gam, ln, rho, Q, P, V, DV):
    for l in range(Q.shape[0] - 1):
        for i in range(Q.shape[1]):
            p = 1.0 if ln else Q[l, i]
            v, dv = closed_variance(kind, slope, p)
            P[l, i] = p
            V[l, i] = v
            DV[l, i] = dv
            Q[l + 1, i] = gam[l + 1] * Q[l, i] + g2[l + 1] * (sw[l + 1] * v / rho + sb[l + 1])


def _refuse(Q, l, what):
    raise ValueError(
        f"the variance Sigma_l(x, x) {what} float64 at layer l = {l + 1} (q_{l} up to {np.max(Q[l - 1]):.3g}): the "
        "kernels of that layer are not representable; use a smaller input norm, other variances, a smaller "
        "residual branch multiplier or a shallower network"
    )


def _check_q(Q):
    bad = ~np.isfinite(Q)
    if bad.any():
        _refuse(Q, int(np.argmax(bad.any(axis=1))), "overflows")
    small = Q < _Q_TINY
    if small.any():
        _refuse(Q, int(np.argmax(small.any(axis=1))), "underflows")


def arch_sequences(act, net, sched, q1):
    """Per-input sequences over the layers, each shaped (depth, n): Q (variances q_l), P (the variance fed to phi:
    1 with LayerNorm, else q_l), V = E phi(sqrt(P) z)^2, DV = E phi'(sqrt(P) z)^2 (no dropout factors), and on the
    general path the parity-packed Hermite rows at P (``rows``, ``order`` (depth, 3) = (M, npar, apar), TA, TB),
    as :func:`meanfield.propagation.inputs.variance_sequences`. ``sched`` from :func:`layer_schedule`."""
    sw, sb, g2, gam = sched[:4]
    depth, n = net.depth, q1.size
    ln = net.normalization == "layer"
    rho = 1.0 if net.dropout is None else float(net.dropout)
    Q = np.empty((depth, n))
    P, V, DV = np.ones((depth, n)), np.zeros((depth, n)), np.zeros((depth, n))
    rows = np.zeros((depth, n), dtype=np.int64)
    order = np.zeros((depth, 3), dtype=np.int64)
    Q[0] = q1
    TA = TB = np.zeros(1)
    if act.kind != KIND_HERMITE:
        with np.errstate(over="ignore", invalid="ignore"):
            _closed_sequences(act.kind, float(act.slope), sw, sb, g2, gam, ln, rho, Q, P, V, DV)
        _check_q(Q)
        return Q, P, V, DV, rows, order, TA, TB
    tables_a, tables_b, offset, prev = [], [], 0, None
    _check_q(Q[:1])
    for l in range(depth - 1):  # Python loop over layers (general path only), never over matrix entries
        P[l] = 1.0 if ln else Q[l]
        uq, inv = np.unique(P[l], return_inverse=True)
        inv = inv.reshape(-1)
        if prev is not None and np.array_equal(uq, prev[0]):
            _, a, b, base, M, npl, apl = prev
        else:
            a, b = adaptive_coefficients(act, uq)
            a, b, M, npl, apl = pack_parity(a, b)
            tables_a.append(a.ravel())
            tables_b.append(b.ravel())
            base, offset = offset, offset + a.size
            prev = (uq, a, b, base, M, npl, apl)
        rows[l] = base + inv * a.shape[1]
        order[l] = (M, npl, apl)
        V[l] = np.einsum("ij,ij->i", a, a)[inv]
        DV[l] = np.einsum("ij,ij->i", b, b)[inv]
        with np.errstate(over="ignore", invalid="ignore"):
            Q[l + 1] = gam[l + 1] * Q[l] + g2[l + 1] * (sw[l + 1] * V[l] / rho + sb[l + 1])
        _check_q(Q[: l + 2])
    if tables_a:
        TA, TB = np.concatenate(tables_a), np.concatenate(tables_b)
    return Q, P, V, DV, rows, order, TA, TB


@njit(cache=True, error_model="numpy", inline="always")
def arch_step(kind, slope, lay, p1, p2, sp12, sq1, sq2, sqn1, sqn2, inv, sve1, sve2, lni12, s, r, sig, th, TA, TB, ra,
              rb, M, npar, apar):  # fmt: skip
    """One layer l -> l + 1 of one pair (module docstring): returns (s', r', Sigma', Theta', m, F, Sigmadot).

    Per input: ``p`` the variance fed to phi (``sp12 = sqrt(p1) sqrt(p2)``), ``sq = sqrt(q_l)``,
    ``sqn = sqrt(q_{l+1})`` (``inv = 1 / (sqn1 sqn2)``), ``sve = sqrt(E h^2)`` within a pass (``E phi^2 / rho``),
    ``lni12`` the LayerNorm Jacobian factor ``1/sqrt(q_l q_l')`` (1 without LayerNorm). Layer scalars
    ``lay = (sw, sb, g2, gam, ow, ob, mc, ex)``: sigma_w^2, sigma_b^2 of layer l + 1, ``g2 = beta_l^2``, ``gam`` (1
    on residual layers), (``ow``, ``ob``) the tangent-kernel weights, and the dropout factors (``mc``, ``ex``) =
    (1, 1 - rho) between two forward passes, (1/rho, 0) within one. (At most 30 arguments: CPython passes more as a
    tuple, which numba cannot inline.)
    """
    sw, sb, g2, gam, ow, ob, mc, ex = lay
    cov, gap, agap, dcov = pair_step(kind, slope, p1, p2, sp12, s, r, TA, TB, ra, rb, M, npar, apar)
    sv12 = sve1 * sve2
    cov = mc * cov
    gap = mc * gap + ex * sv12
    agap = mc * agap + ex * sv12
    a = g2 * sw
    b = g2 * sb
    skip = gam * sq1 * sq2
    cross = gam * a * (sq1 * sve2 - sve1 * sq2) ** 2 + gam * b * (sq1 - sq2) ** 2 + a * b * (sve1 - sve2) ** 2
    den = sqn1 * sqn2
    mix = cross / (den + skip + a * sv12 + b)
    s_n = (mix + s * skip + a * gap) * inv
    r_n = (mix + r * skip + a * agap + 2.0 * b) * inv
    dot = sw * (mc * dcov) * lni12
    mult = gam + g2 * dot
    f = g2 * (ow * (sw * cov) + ob)
    return (
        min(max(s_n, 0.0), 2.0),
        min(max(r_n, 0.0), 2.0),
        gam * sig + a * cov + b,
        th * mult + f,
        mult,
        f,
        dot,
    )


@njit(cache=True, error_model="numpy")
def arch_pair(
    kind, slope, sw, sb, g2, gam, ow, ob, mc, ex, ln, Q, P, SVE, rows, TA, TB, order, i1, i2, s, r, sig, out
):  # fmt: skip
    """Carry one pair (inputs ``i1``, ``i2`` of the per-input sequences) through all layers; ``out`` (7, depth)
    receives per layer (s, r, Sigma, Theta, m, F, Sigmadot) (layer 1: m = Sigmadot = NaN)."""
    depth = Q.shape[0]
    th = ow[0] * (sig - sb[0]) + ob[0]
    out[0, 0] = s
    out[1, 0] = r
    out[2, 0] = sig
    out[3, 0] = th
    out[4, 0] = np.nan
    out[5, 0] = th
    out[6, 0] = np.nan
    for l in range(depth - 1):
        q1 = Q[l, i1]
        q2 = Q[l, i2]
        sq1 = math.sqrt(q1)
        sq2 = math.sqrt(q2)
        lni12 = 1.0 / (sq1 * sq2) if ln else 1.0
        p1 = P[l, i1]
        p2 = P[l, i2]
        lay = (sw[l + 1], sb[l + 1], g2[l + 1], gam[l + 1], ow[l + 1], ob[l + 1], mc, ex)
        sqn1, sqn2 = math.sqrt(Q[l + 1, i1]), math.sqrt(Q[l + 1, i2])
        s, r, sig, th, m, f, dot = arch_step(
            kind, slope, lay, p1, p2, math.sqrt(p1) * math.sqrt(p2), sq1, sq2, sqn1, sqn2, 1.0 / (sqn1 * sqn2),
            SVE[l, i1], SVE[l, i2],
            lni12, s, r, sig, th, TA, TB, rows[l, i1], rows[l, i2], order[l, 0], order[l, 1], order[l, 2],
        )  # fmt: skip
        out[0, l + 1] = s
        out[1, l + 1] = r
        out[2, l + 1] = sig
        out[3, l + 1] = th
        out[4, l + 1] = m
        out[5, l + 1] = f
        out[6, l + 1] = dot


def dropout_factors(net, same):
    """(mc, ex) of :func:`arch_step`: (1/rho, 0) within one forward pass, (1, 1 - rho) between two."""
    rho = 1.0 if net.dropout is None else float(net.dropout)
    return (1.0 / rho, 0.0) if same else (1.0, 1.0 - rho)


def pair_layers(net, sched, seq, i1, i2, s, r, sig, same=False):
    """:func:`arch_pair` on inputs ``i1``, ``i2`` of the sequences ``seq`` (from :func:`arch_sequences`)."""
    Q, P, V, DV, rows, order, TA, TB = seq
    rho = 1.0 if net.dropout is None else float(net.dropout)
    SVE = np.sqrt(V / rho)
    mc, ex = dropout_factors(net, same)
    out = np.empty((7, net.depth))
    act = net.activation
    sw, sb, g2, gam, ow, ob = sched
    arch_pair(act.kind, float(act.slope), sw, sb, g2, gam, ow, ob, mc, ex, net.normalization == "layer", Q, P, SVE,
              rows, TA, TB, order, i1, i2, s, r, sig, out)  # fmt: skip
    return out
