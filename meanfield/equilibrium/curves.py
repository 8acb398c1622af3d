r"""The per-layer curves behind the information loss: :math:`s_l = 1 - c_l` and the log backward factors.

For a pair of inputs with :math:`1 - c_1 = s_0`, the curves are :math:`s_l` for :math:`l = 1..L` and
:math:`\log(\dot\Sigma_l(x,x')/\sqrt{\dot\Sigma_l(x,x)\,\dot\Sigma_l(x',x')})` for :math:`l = 2..L` (Lou et al. 2022,
App. A.3, eq. (4), generalized to any activation and :math:`\sigma`'s). The leaky-ReLU family at :math:`\sigma_b = 0`
(ReLU included) has an exact fast path; everything else goes through :func:`meanfield.propagation.pair_curve`.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import njit
from ..activations import KIND_LEAKY
from ..gaussian.closed import leaky_decorrelation
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
