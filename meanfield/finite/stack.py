"""Stacks of finite networks: the one draw, forward pass and backward pass, for ``S`` networks at once.

Every array carries a leading stack axis ``S``, so each layer of a whole stack is one batched BLAS call;
:class:`meanfield.finite.MLP` (one network or a stack) and the Monte Carlo runner (:mod:`meanfield.finite.montecarlo`)
both run on these functions. The parameterization table (NTP / SP) is in :mod:`meanfield.finite.mlp`.
"""

from __future__ import annotations

import numpy as np

from ..network import Network
from .streams import generator

__all__ = ["backward_stack", "draw_stack", "forward_stack", "multipliers"]


def multipliers(net: Network, fan_ins) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer multipliers ``(m_w, m_b)`` of the forward pass (the table of :mod:`meanfield.finite.mlp`)."""
    fan = np.asarray(fan_ins, dtype=np.float64)
    if net.parameterization == "ntk":
        return np.sqrt(net.sigma_w2 / fan), np.full(fan.size, np.sqrt(net.sigma_b2))
    return np.ones(fan.size), np.ones(fan.size)


def _init_std(net: Network, fan_ins) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviations of the stored parameters ``(W_l, b_l)`` at initialization."""
    fan = np.asarray(fan_ins, dtype=np.float64)
    if net.parameterization == "ntk":
        return np.ones(fan.size), np.ones(fan.size)
    return np.sqrt(net.sigma_w2 / fan), np.full(fan.size, np.sqrt(net.sigma_b2))


def draw_stack(net: Network, d: int, outputs: int, bias: bool, seqs) -> tuple[list, list | None]:
    """Draw a stack of networks, one independent stream per network (:func:`meanfield.finite.streams.generator`).

    Within a network the draw order is ``W_1, b_1, W_2, b_2, ...`` (unit normals, then scaled), so a network
    depends only on its own seed sequence, never on which stack it is drawn in.
    """
    fan = net.fan_ins(d)
    outs = net.width + (outputs,)
    S = len(seqs)
    Ws = [np.empty((S, o, f)) for o, f in zip(outs, fan, strict=True)]
    bs = [np.empty((S, o)) for o in outs] if bias else None
    for s, seq in enumerate(seqs):
        rng = generator(seq)
        for l in range(net.depth):
            rng.standard_normal(out=Ws[l][s])
            if bias:
                rng.standard_normal(out=bs[l][s])
    std_w, std_b = _init_std(net, fan)
    for l in range(net.depth):
        if std_w[l] != 1.0:
            Ws[l] *= std_w[l]
        if bias and std_b[l] != 1.0:
            bs[l] *= std_b[l]
    return Ws, bs


def forward_stack(X, Ws, bs, mw, mb, act):
    """Pre-activations ``z_1..z_L`` (each ``(S, n, N_l)``) and layer inputs ``h_0 = X, h_1..h_{L-1}``."""
    h = X
    zs, hs = [], [X]
    L = len(Ws)
    for l in range(L):
        z = np.matmul(h, np.swapaxes(Ws[l], -1, -2))
        if mw[l] != 1.0:
            z *= mw[l]
        if bs is not None and mb[l] != 0.0:
            z += mb[l] * bs[l][:, None, :]
        zs.append(z)
        if l < L - 1:
            h = act.fn(z)
            hs.append(h)
    return zs, hs


def backward_stack(zs, Ws, mw, act, seed):
    """Backward vectors for ``k`` output directions at once.

    ``seed`` has shape ``(S or 1, k, n, o)`` and is ``dF/dz_L`` for ``k`` scalar functions ``F`` of the outputs
    (``e_a`` for the per-output deltas, the loss residual for parameter gradients). Returns the list
    ``delta_1..delta_L`` with ``delta_l = phi'(z_l) * (m_w,l+1 * delta_{l+1} @ W_{l+1})`` of shape
    ``(S, k, n, N_l)`` (``delta_L`` is ``seed`` itself): backpropagation, the chain rule through eq. (8) of
    Lou et al. 2022.
    """
    L = len(Ws)
    deltas = [None] * L
    d = seed
    deltas[L - 1] = d
    for l in range(L - 2, -1, -1):
        S0, k, n, _ = d.shape
        g = np.matmul(d.reshape(S0, k * n, -1), Ws[l + 1])
        if mw[l + 1] != 1.0:
            g *= mw[l + 1]
        S = g.shape[0]
        d = g.reshape(S, k, n, -1)
        d *= act.derivative(zs[l])[:, None]
        deltas[l] = d
    return deltas
