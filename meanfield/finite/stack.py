"""Stacks of finite networks: the one draw, forward pass and backward pass, for ``S`` networks at once.

Every array carries a leading stack axis ``S``, so each layer of a whole stack is one batched BLAS call;
:class:`meanfield.finite.MLP` (one network or a stack) and the Monte Carlo runner (:mod:`meanfield.finite.montecarlo`)
both run on these functions. The parameterization table (NTP / SP) is in :mod:`meanfield.finite.mlp`.
"""

from __future__ import annotations

import numpy as np

from ..network import Network
from .blocks import branch_scales, layer_norm, layer_norm_vjp
from .streams import generator

__all__ = [
    "backward_factor",
    "backward_stack",
    "draw_stack",
    "forward_stack",
    "gram",
    "kernel_factors",
    "multipliers",
    "tangent_kernel",
]


def multipliers(net: Network, fan_ins) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer multipliers ``(m_w, m_b)`` of the forward pass (the table of :mod:`meanfield.finite.mlp`, with the
    variances of each layer, ``net.variances(l)``), times ``beta`` on the residual hidden layers
    (:func:`meanfield.finite.blocks.branch_scales`): layer ``l`` adds ``m_w,l W_l h_{l-1} + m_b,l b_l``."""
    fan = np.asarray(fan_ins, dtype=np.float64)
    beta = branch_scales(net)
    if net.parameterization == "ntk":
        sw = np.asarray(net.weight_variances, dtype=np.float64)
        sb = np.asarray(net.bias_variances, dtype=np.float64)
        return beta * np.sqrt(sw / fan), beta * np.sqrt(sb)
    return beta.copy(), beta.copy()


def _init_std(net: Network, fan_ins) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviations of the stored parameters ``(W_l, b_l)`` at initialization."""
    fan = np.asarray(fan_ins, dtype=np.float64)
    if net.parameterization == "ntk":
        return np.ones(fan.size), np.ones(fan.size)
    sw = np.asarray(net.weight_variances, dtype=np.float64)
    sb = np.asarray(net.bias_variances, dtype=np.float64)
    return np.sqrt(sw / fan), np.sqrt(sb)


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


def forward_stack(X, Ws, bs, mw, mb, act, skip=None, norm: bool = False, masks=None):
    """Pre-activations ``z_1..z_L`` (each ``(S, n, N_l)``) and layer inputs ``h_0 = X, h_1..h_{L-1}``.

    ``z_l = [z_{l-1} if skip[l-1]] + m_w,l W_l h_{l-1} + m_b,l b_l`` and ``h_l = masks[l-1] * phi(LN(z_l))``
    (LayerNorm when ``norm``; ``masks`` the dropout multipliers ``m_l / rho`` of
    :func:`meanfield.finite.blocks.draw_masks`, or None); the options of :mod:`meanfield.network`.
    """
    h = X
    zs, hs = [], [X]
    L = len(Ws)
    for l in range(L):
        z = np.matmul(h, np.swapaxes(Ws[l], -1, -2))
        if mw[l] != 1.0:
            z *= mw[l]
        if bs is not None and mb[l] != 0.0:
            z += mb[l] * bs[l][:, None, :]
        if skip is not None and skip[l]:
            z += zs[-1]
        zs.append(z)
        if l < L - 1:
            h = act.fn(layer_norm(z)[0] if norm else z)
            if masks is not None:
                h = h * masks[l]  # not in place: a user phi may return its argument
            hs.append(h)
    return zs, hs


def backward_stack(zs, Ws, mw, act, seed, skip=None, norm: bool = False, masks=None):
    """Backward vectors for ``k`` output directions at once.

    ``seed`` has shape ``(S or 1, k, n, o)`` and is ``dF/dz_L`` for ``k`` scalar functions ``F`` of the outputs
    (``e_a`` for the per-output deltas, the loss residual for parameter gradients). Returns the list
    ``delta_1..delta_L`` with ``delta_l = phi'(z_l) * (m_w,l+1 * delta_{l+1} @ W_{l+1})`` of shape
    ``(S, k, n, N_l)`` (``delta_L`` is ``seed`` itself): backpropagation, the chain rule through eq. (8) of
    Lou et al. 2022. With the options of :func:`forward_stack` (same ``skip``, ``norm``, ``masks``):
    ``delta_l = [delta_{l+1} if skip[l]] + J_LN(z_l)^T (phi'(LN z_l) * masks[l-1] * (m_w,l+1 delta_{l+1} @
    W_{l+1}))`` (:func:`meanfield.finite.blocks.layer_norm_vjp`).
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
        g = g.reshape(S, k, n, -1)
        if masks is not None:
            g *= masks[l][:, None]
        if norm:
            y, s = layer_norm(zs[l])
            g *= act.derivative(y)[:, None]
            g = layer_norm_vjp(g, y[:, None], s[:, None])
        else:
            g *= act.derivative(zs[l])[:, None]
        if skip is not None and skip[l + 1]:
            g += d
        d = g
        deltas[l] = d
    return deltas


# the layer tangent kernel from one forward / backward pass (Lou et al. 2022, eq. (9))
def gram(A):
    """``A @ A^T`` over the last two axes."""
    return np.matmul(A, np.swapaxes(A, -1, -2))


def _output_major(delta):
    """``(S, k, n, N)`` -> ``(S, n * k, N)`` in sample-major order (row ``i * k + a``)."""
    S, k, n, N = delta.shape
    return np.swapaxes(delta, 1, 2).reshape(S, n * k, N)


def kernel_factors(h, delta, layout: str = "operator"):
    """The two Gram factors of a layer's tangent kernel: ``G = h_{l-1}.h'_{l-1}`` and ``B = delta_l.delta'_l``.

    Parameters
    ----------
    h : ndarray, shape (S, n, N_{l-1})
        The layer's input ``h_{l-1}`` on the ``n`` inputs (``h_0 = X`` may have no stack axis).
    delta : ndarray, shape (S, o, n, N_l)
        Its backward vectors ``delta^a_l(x_i) = df_a(x_i)/dz_l`` (backpropagation seeded with ``e_a``).
    layout : {"operator", "traced"}
        ``"operator"``: ``(S, n o, n o)`` in sample-major order (row ``i o + a``; ``G`` repeated over outputs).
        ``"traced"``: ``B`` is the class-traced ``(1/o) sum_a delta^a_l(x_i).delta^a_l(x_j)``, ``(S, n, n)``.

    Returns
    -------
    G, B : ndarray
        ``G`` of shape ``([S,] m, m)`` and ``B`` of shape ``(S, m, m)``, ``m = n o`` or ``n``. For ``o = 1``
        both layouts agree: ``B`` is the backward kernel and ``G`` the (unnormalized) forward kernel of
        Lou et al. 2022, eq. (9).
    """
    o = delta.shape[1]
    G = gram(h)
    if layout == "operator" and o > 1:
        G = np.repeat(np.repeat(G, o, axis=-2), o, axis=-1)
    return G, backward_factor(delta, layout)


def backward_factor(delta, layout: str = "operator"):
    """``B = delta_l.delta'_l`` of :func:`kernel_factors` alone: ``(S, n o, n o)`` or traced ``(S, n, n)``."""
    if layout == "traced":
        return gram(delta).sum(axis=1) / delta.shape[1]
    return gram(_output_major(delta))


def tangent_kernel(G, B, omega_w, omega_b):
    """Tangent kernel of one layer's parameters from its factors (:func:`kernel_factors`): ``(omega_w G + omega_b) B``.

    ``K_l[(i,a),(j,b)] = (omega_w h_{l-1}(x_i).h_{l-1}(x_j) + omega_b) delta^a_l(x_i).delta^b_l(x_j)`` with
    ``(omega_w, omega_b) = (m_w,l^2, m_b,l^2)`` for the weights and biases of layer ``l`` (``omega_w = 0`` gives
    the bias part alone, ``omega_b = 0`` the weight part or a network without biases). This is the factorization
    of Lou et al. 2022, eq. (9), with biases and ``o`` outputs: in NTP ``(omega_w, omega_b) = (sigma_w^2/N_{l-1},
    sigma_b^2)``, so ``K_l = F_l * B_l``; in SP ``(1, 1)``. Exact at any width; the parameter Jacobian is never
    formed.
    """
    return (omega_w * G + omega_b) * B
