r"""The per-layer curves behind the information loss: :math:`s_l = 1 - c_l` and the log backward factors.

For a pair of inputs with :math:`1 - c_1 = s_0`, the curves are :math:`s_l` for :math:`l = 1..L` and
:math:`\log(\dot\Sigma_l(x,x')/\sqrt{\dot\Sigma_l(x,x)\,\dot\Sigma_l(x',x')})` for :math:`l = 2..L` (Lou et al. 2022,
App. A.3, eq. (4), generalized to any activation and :math:`\sigma`'s). The leaky-ReLU family at :math:`\sigma_b = 0`
(ReLU included) has an exact fast path; everything else goes through :func:`meanfield.propagation.pair_curve`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .._jit import njit
from ..activations import KIND_HERMITE, KIND_LEAKY
from ..gaussian.closed import _leaky_angles as leaky_angles
from ..gaussian.closed import closed_variance_unit, leaky_decorrelation
from ..gaussian.maps import pair_moments, single_moments
from ..gaussian.step import closed_unit_step
from ..network import Network
from ..propagation import pair_curve


@njit(cache=True)
def _leaky_curves(kappa, s0, out_s, out_log):
    """Exact s = 1 - c recursion of the leaky-ReLU family at sigma_b2 = 0 for each start in s0.

    s_{l+1} = s_l - kappa h(theta_l)/pi and log ratio_{l+1} = log1p(-kappa theta_l/pi), theta_l = arccos(1 - s_l),
    kappa = (1 - a)^2/(1 + a^2) (kappa = 1 for ReLU: c_{l+1} = g(c_l), ratio = g'(c_l) of Lou et al. 2022, eq. (3)),
    one step of :func:`meanfield.gaussian.closed.leaky_decorrelation` per layer (derived here). Why a separate
    kernel: it is ~100x faster than three general pair steps per layer (two curves of 10^6 layers: ~20 ms against ~2
    s), which is what makes every depth up to 10^6 cost well under a second; and log1p(-theta/pi) keeps the small
    quantity 1 - g' exact instead of rounding g' to a double first (measured: the prefix sum S at L = 10^6 differs
    from the one built on log(pair_curve().dot) by 1e-11, so both reproduce l_cont(10^6) = 8484.28; the tests
    compare the two paths). A ratio of exactly 0 (c = -1 with ReLU) is stored as -inf.
    """
    n = s0.shape[0]
    depth = out_s.shape[1]
    for p in range(n):
        s = s0[p]
        out_log[p, 0] = 0.0
        for l in range(depth):
            out_s[p, l] = s
            if l + 1 < depth:
                s_next, x = leaky_decorrelation(kappa, s)
                out_log[p, l + 1] = math.log1p(-x) if x < 1.0 else -math.inf
                s = s_next


def _generic_curves(depth, act, sw, sb, s0):
    """Same outputs through :func:`meanfield.propagation.pair_curve` (any activation, any sigma's)."""
    q1 = sw + sb  # ||x||^2 = d: Sigma_1(x, x) = sigma_w^2 + sigma_b^2
    net = Network(depth, act, sw, sb)
    n = s0.size
    out_s = np.empty((n, depth))
    out_log = np.zeros((n, depth))
    for p in range(n):
        # 1 - c_1 with c_1 = (sigma_w^2 rho + sigma_b^2)/(sigma_w^2 + sigma_b^2), formed from 1 - rho exactly
        pc = pair_curve(net, q1=q1, s=sw * s0[p] / q1)
        if not (np.all(np.isfinite(pc.q1)) and np.all(np.isfinite(pc.sigma[1:]))):
            bad = int(np.argmin(np.isfinite(pc.q1) & np.isfinite(pc.sigma)))
            if np.isinf(pc.q1[bad]) or np.isinf(pc.sigma[bad]):
                raise ValueError(
                    f"the variances overflow at layer {bad + 1} (sigma_w2 = {sw:g} is far from the edge of chaos); "
                    "use a smaller depth or sigma_w2"
                )
            raise ValueError(
                f"the kernels are not representable at layer {bad + 1} (a variance underflows float64: sigma_w2 = "
                f"{sw:g} is far below the edge of chaos); use a smaller depth, a larger sigma_w2 or sigma_b2 > 0"
            )
        out_s[p] = pc.s
        if depth > 1:
            with np.errstate(divide="ignore"):
                out_log[p, 1:] = np.log(pc.dot[1:]) - 0.5 * (np.log(pc.dot1[1:]) + np.log(pc.dot2[1:]))
    return out_s, out_log


def curves(depth, act, sw, sb, s0):
    """(s, log ratio) arrays (len(s0), depth); log ratio[:, k-1] = log of layer k's factor, entry 0 = 0."""
    if act.kind == KIND_LEAKY and sb == 0.0:
        # correlation dynamics of the leaky family at sigma_b = 0 do not depend on q or sigma_w: exact fast path
        a = float(act.slope)
        out_s = np.empty((s0.size, depth))
        out_log = np.empty((s0.size, depth))
        _leaky_curves((1.0 - a) ** 2 / (1.0 + a * a), s0, out_s, out_log)
        return out_s, out_log
    return _generic_curves(depth, act, sw, sb, s0)


# ---------------------------------------------------------------------------------------------------------------
# networks beyond the plain MLP: per-layer variances, residual blocks, LayerNorm, dropout
# ---------------------------------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def layer_update(sw, sb, resid, beta2, ln, inv_rho, lq, s, r, vrel, gap_n, agap_n, dd, x):
    r"""One layer of the equal-variance pair recursion of a network with options: ``(lq', s', r', log factor)``.

    The state is :math:`(\log q, s, r) = (\log\Sigma_{l-1}(x,x), 1 - c_{l-1}, 1 + c_{l-1})` for two inputs of equal
    norm (equal variances at every layer). The moments are taken at the input of the weight layer's branch, of
    variance :math:`q_{in} = q` (1 with LayerNorm, whose infinite-width limit is :math:`z/\sqrt q`):
    ``vrel`` :math:`= \mathbb E\phi^2/q`, ``gap_n``, ``agap_n`` :math:`= 1 \mp \mathbb E[\phi(u)\phi(v)]/\mathbb
    E\phi^2`, ``dd`` :math:`= \mathbb E\phi'^2` and ``x`` :math:`= 1 - \mathbb E[\phi'(u)\phi'(v)]/\mathbb E\phi'^2`
    (each exact where small). Derived here, with :math:`\rho` the keep probability (``inv_rho`` :math:`= 1/\rho`):

    plain layer (Schoenholz et al. 2017, sec. 5 for dropout: the diagonal gets :math:`1/\rho`, the covariance not)

    .. math:: q' = \sigma_w^2\mathbb E\phi^2/\rho + \sigma_b^2,\quad
              q'(1 - c') = \sigma_w^2\mathbb E\phi^2\,(\mathrm{gap}_n + 1/\rho - 1),\quad
              \text{factor} = \frac{\dot\Sigma(x,x')}{\dot\Sigma(x,x)} = \rho\,(1 - x);

    residual block :math:`z_l = z_{l-1} + \beta(W_l h_{l-1} + b_l)` (Yang & Schoenholz 2017; the cross term of
    skip and branch vanishes at infinite width because :math:`W_l` is independent of :math:`z_{l-1}`)

    .. math:: q' = q + \beta^2(\sigma_w^2\mathbb E\phi^2/\rho + \sigma_b^2),\quad
              q'(1 - c') = q(1 - c) + \beta^2\sigma_w^2\mathbb E\phi^2\,(\mathrm{gap}_n + 1/\rho - 1),

    and the backward kernel, through :math:`\partial z_l/\partial z_{l-1} = I + \beta W_l\,
    \mathrm{diag}(\phi'(\cdot)/\sqrt{q})` (the :math:`1/\sqrt q` with LayerNorm only; its rank-one projections
    vanish at infinite width), gets the factor
    :math:`\Pi_{l-1}(x,x') = (1 + \beta^2\sigma_w^2 g\,\mathbb E[\phi'\phi'])\,\Pi_l(x,x')` and on the diagonal
    :math:`1 + \beta^2\sigma_w^2 g\,\mathbb E\phi'^2/\rho`, with :math:`g = 1/q` with LayerNorm and 1 without, so

    .. math:: \log\text{factor} = \mathrm{log1p}\Big(-\frac{\beta^2\sigma_w^2 g\,\mathbb E\phi'^2(1/\rho - 1 + x)}
              {1 + \beta^2\sigma_w^2 g\,\mathbb E\phi'^2/\rho}\Big).

    ``vrel`` and :math:`\sigma_b^2/q` carry :math:`q` only as ratios, so the leaky-ReLU family (homogeneous) never
    forms :math:`q` itself: residual ReLU at :math:`\beta = 1` has :math:`q_l \propto 2^l` and runs to any depth.
    """
    eq = math.exp(-lq) if (sb > 0.0 or ln) else 0.0
    brel = sb * eq
    extra = inv_rho - 1.0
    if resid:
        den = 1.0 + beta2 * (sw * vrel * inv_rho + brel)
        s_next = (s + beta2 * sw * vrel * (gap_n + extra)) / den
        r_next = (r + beta2 * (sw * vrel * (agap_n + extra) + 2.0 * brel)) / den
        g = eq if ln else 1.0
        a = beta2 * sw * g * dd
        log_f = math.log1p(-a * (extra + x) / (1.0 + a * inv_rho))
    else:
        den = sw * vrel * inv_rho + brel
        s_next = sw * vrel * (gap_n + extra) / den
        r_next = (sw * vrel * (agap_n + extra) + 2.0 * brel) / den
        log_f = (math.log1p(-x) if x < 1.0 else -math.inf) - math.log(inv_rho)
    return lq + math.log(den), min(max(s_next, 0.0), 2.0), min(max(r_next, 0.0), 2.0), log_f


@njit(cache=True, error_model="numpy")
def _closed_moments(kind, slope, ln, lq, s, r):
    """(vrel, gap_n, agap_n, dd, x) of :func:`layer_update` from the closed forms (leaky family, erf).

    Leaky family: q-free (x = kappa theta / pi exactly, kappa = (1 - a)^2/(1 + a^2)); erf at q_in:
    E[phi'phi']/E phi'^2 = (1 + 4 q^2 s r / (1 + 4q))^(-1/2) (from Williams 1997; derived here), so
    x = -expm1(-log1p(.)/2) exactly.
    """
    qin = 1.0 if (ln or kind == KIND_LEAKY) else math.exp(lq)
    vq, dd = closed_variance_unit(kind, slope, qin)
    _, gap_n, agap_n, _ = closed_unit_step(kind, slope, qin, qin, vq, s, r)
    if kind == KIND_LEAKY:
        theta = leaky_angles(s, r)[0]
        x = (1.0 - slope) * (1.0 - slope) / (1.0 + slope * slope) * theta / math.pi
    else:
        x = -math.expm1(-0.5 * math.log1p(4.0 * qin * qin * s * r / (1.0 + 4.0 * qin)))
    vrel = vq * qin * math.exp(-lq) if ln else vq
    return vrel, gap_n, agap_n, dd, x


@njit(cache=True, error_model="numpy")
def _arch_closed(kind, slope, sws, sbs, res, beta2, ln, inv_rho, lq1, s1, out):
    """Curves of :func:`arch_curves` for the closed forms; ``out`` is (6, n_pairs, depth)."""
    n = s1.shape[0]
    depth = sws.shape[0]
    for p in range(n):
        lq, s, r = lq1, s1[p], 2.0 - s1[p]
        out[0, p, 0] = s
        out[1, p, 0] = 0.0
        out[2, p, 0] = s
        out[3, p, 0] = 0.0
        out[4, p, 0] = lq
        out[5, p, 0] = lq
        for l in range(1, depth):
            vrel, gap_n, agap_n, dd, x = _closed_moments(kind, slope, ln, lq, s, r)
            # the layer as a readout (plain step), then as itself
            ro = layer_update(sws[l], sbs[l], False, beta2, ln, inv_rho, lq, s, r, vrel, gap_n, agap_n, dd, x)
            out[2, p, l] = ro[1]
            out[3, p, l] = ro[3]
            out[5, p, l] = ro[0]
            if res[l]:
                lq, s, r, lf = layer_update(sws[l], sbs[l], True, beta2, ln, inv_rho, lq, s, r, vrel, gap_n, agap_n,
                                            dd, x)  # fmt: skip
            else:
                lq, s, r, lf = ro
            out[0, p, l] = s
            out[1, p, l] = lf
            out[4, p, l] = lq


def _hermite_moments(act, ln, lq, s, r):
    """(vrel, gap_n, agap_n, dd, x) arrays over pairs through :func:`meanfield.gaussian.maps.pair_moments`."""
    qin = np.ones_like(lq) if ln else np.exp(lq)
    _, gap, agap, dcov, v = pair_moments(act, qin, qin, s, r)
    dd = single_moments(act, qin)[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (v / qin * (np.exp(-lq) if ln else 1.0), gap / v, agap / v, dd, 1.0 - dcov / dd)
    if not all(np.all(np.isfinite(o)) for o in out):
        raise ValueError(
            f"the kernels of {act.name} are not representable (a variance under- or overflows float64 at "
            f"log q = {float(np.min(lq)):.4g}); use a smaller depth or other variances"
        )
    return out


def _arch_hermite(act, sws, sbs, res, beta2, ln, inv_rho, lq1, s1, out, progress=None):
    """:func:`_arch_closed` for the Mehler-expansion activations: one vectorized pair step per layer in Python."""
    lq = np.full(s1.size, lq1)
    s = s1.astype(np.float64).copy()
    r = 2.0 - s
    out[0, :, 0], out[1, :, 0], out[2, :, 0], out[3, :, 0], out[4, :, 0], out[5, :, 0] = s, 0.0, s, 0.0, lq, lq
    for l in range(1, sws.size):
        mom = _hermite_moments(act, ln, lq, s, r)
        new = np.empty((4, s.size))
        for p in range(s.size):
            args = (lq[p], s[p], r[p]) + tuple(float(m[p]) for m in mom)
            ro = layer_update(sws[l], sbs[l], False, beta2, ln, inv_rho, *args)
            out[2, p, l], out[3, p, l], out[5, p, l] = ro[1], ro[3], ro[0]
            new[:, p] = layer_update(sws[l], sbs[l], True, beta2, ln, inv_rho, *args) if res[l] else ro
        lq, s, r = new[0], new[1], new[2]
        out[0, :, l], out[1, :, l], out[4, :, l] = s, new[3], lq


@dataclass(frozen=True)
class ArchCurves:
    """Per-layer curves of a network with options, arrays (n_pairs, depth) over layers l = 1..L (index l - 1).

    Attributes
    ----------
    s : :math:`1 - c_l` of the network's own layer l (a residual block for l = 2..L-1 when ``net.residual``).
    log_factor : log of layer l's normalized backward factor (entry 0 is 0).
    s_out, log_out : the same with layer l computed as a plain layer, i.e. as the readout of a depth-l network
        (equal to ``s`` and ``log_factor`` for plain layers).
    log_q, log_q_out : :math:`\\log q_l` along the network, and with layer l as the readout.
    """

    s: np.ndarray
    log_factor: np.ndarray
    s_out: np.ndarray
    log_out: np.ndarray
    log_q: np.ndarray
    log_q_out: np.ndarray


def arch_curves(net, s0, q1=None) -> ArchCurves:
    r"""The curves of :func:`curves` for any :class:`~meanfield.Network` option (schedule, residual, LayerNorm,
    dropout), in O(L) (derived here; see :func:`layer_update`).

    Inputs on the sphere (:math:`\Sigma_1(x, x) = \sigma_{w,1}^2 + \sigma_{b,1}^2`, or ``q1``) with
    :math:`1 - \rho =` ``s0`` (an array of pairs). Layer 1 is plain (no LayerNorm or dropout acts on the raw input);
    layers 2..L-1 are residual blocks when ``net.residual`` is set; the readout L is a plain layer whose input
    carries LayerNorm and dropout as every hidden post-activation does. Cost: ~0.1 us per layer and pair for the
    closed forms (leaky-ReLU family, erf: 10^6 layers in well under a second), one vectorized Mehler step per layer
    (~1 ms) otherwise. The Mehler expansion keeps 1e-9 only up to q ~ 10: a residual network of such an activation
    without LayerNorm, whose q_l grows without bound, loses accuracy with depth (one RuntimeWarning says how much;
    erf and the leaky-ReLU family are exact at every q).
    """
    s0 = np.atleast_1d(np.asarray(s0, dtype=np.float64))
    act = net.activation
    sws = np.asarray(net.weight_variances, dtype=np.float64)
    sbs = np.asarray(net.bias_variances, dtype=np.float64)
    L = net.depth
    res = np.zeros(L, dtype=np.bool_)
    beta2 = 0.0
    if net.residual is not None:
        res[1 : L - 1] = True
        beta2 = float(net.residual) ** 2
    ln = net.normalization == "layer"
    inv_rho = 1.0 / net.dropout if net.dropout is not None else 1.0
    q = sws[0] + sbs[0] if q1 is None else float(q1)
    s1 = np.clip(sws[0] * s0 / q, 0.0, 2.0)  # 1 - c_1 = sigma_w^2 (1 - rho) / q_1, formed from 1 - rho exactly
    out = np.empty((6, s0.size, L))
    if act.kind == KIND_HERMITE:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            _arch_hermite(act, sws, sbs, res, beta2, ln, inv_rho, math.log(q), s1, out)
        if caught:  # the Mehler expansion lost accuracy at large q (residual blocks without LayerNorm): say so once
            warnings.warn(f"{len(caught)} layers warned; the last: {caught[-1].message}", RuntimeWarning, stacklevel=2)
    else:
        _arch_closed(act.kind, float(act.slope), sws, sbs, res, beta2, ln, inv_rho, math.log(q), s1, out)
    if not np.all(np.isfinite(out[4])):
        raise ValueError("the variances q_l overflow float64; use a smaller depth or other variances")
    return ArchCurves(out[0], out[1], out[2], out[3], out[4], out[5])
