"""The architecture options of finite networks: residual blocks, LayerNorm and dropout masks.

The forward and backward passes of :mod:`meanfield.finite.stack` are written once for every
:class:`~meanfield.Network`; this module holds the pieces they combine (conventions in :mod:`meanfield.network`):

- the *layer structure* :func:`skips` (which layers add their input ``z_{l-1}``) and :func:`branch_scales`
  (``beta`` of residual blocks, folded into the layer multipliers ``(m_w, m_b)`` of
  :func:`meanfield.finite.stack.multipliers`): hidden layer ``l = 2..L-1`` of a residual net computes
  ``z_l = z_{l-1} + beta (W_l h_{l-1} + b_l)`` (Yang & Schoenholz 2017; Hayou et al. 2021), so
  ``df/dW_l = beta m_w delta_l h_{l-1}^T`` with ``delta_l = df/dz_l`` the gradient of the residual stream;
- LayerNorm without gain, bias or epsilon, :func:`layer_norm` and its exact backward pass :func:`layer_norm_vjp`
  (Ba et al. 2016, eq. (4) without ``g, b``): ``y = (z - mean(z)) / s`` with ``s^2 = mean((z - mean z)^2)``, whose
  Jacobian ``dy/dz = (I - 1 1^T / N - y y^T / N) / s`` is symmetric;
- inverted dropout masks, :func:`draw_masks` (Srivastava et al. 2014; Schoenholz et al. 2017, sec. 5):
  ``h_l = m_l * phi(.) / rho`` with ``m_l ~ Bernoulli(rho)`` independent per unit, per input and per network.

Dropout masks are part of a network's randomness: network ``i`` of a seed draws its masks from the first child
``SeedSequence(seed, spawn_key=(i, 0))`` of its own sequence (:func:`mask_sequence`), input row ``j`` taking the
``j``-th block of ``sum_l N_l`` uniforms. So the masks of row ``j`` do not depend on how many inputs follow it, on
the batch size or on the executor, and a network's forward pass, its gradients and its tangent kernels all see the
same masks: the tangent kernel of a dropout network is that of the network with its masks fixed.
"""

from __future__ import annotations

import numpy as np

from ..network import Network
from .streams import generator

__all__ = ["branch_scales", "check_mask_seeds", "draw_masks", "layer_norm", "layer_norm_vjp", "mask_sequence", "skips"]

#: child spawn key of a network's seed sequence that owns its dropout masks
MASK_KEY = 0


def skips(net: Network) -> np.ndarray:
    """``skip[l - 1]`` is True when layer ``l`` adds its input ``z_{l-1}`` (residual hidden layers ``2..L-1``)."""
    out = np.zeros(net.depth, dtype=bool)
    if net.residual is not None:
        out[1 : net.depth - 1] = True
    return out


def branch_scales(net: Network) -> np.ndarray:
    """Multiplier of each layer's ``W_l h_{l-1} + b_l``: ``beta`` on residual hidden layers, 1 elsewhere."""
    return np.where(skips(net), net.residual if net.residual is not None else 1.0, 1.0)


def layer_norm(z):
    """LayerNorm over the last axis without gain, bias or epsilon: ``(y, s)`` with ``y = (z - mean z) / s``.

    ``s`` keeps the reduced axis (shape ``(..., 1)``). A constant vector (``s = 0``, e.g. a zero input without
    biases) has no normalization: ValueError rather than NaN.

    >>> y, s = layer_norm(np.array([[1.0, 2.0, 3.0, 6.0]]))
    >>> bool(np.allclose(y.mean(-1), 0) and np.allclose((y**2).mean(-1), 1))
    True
    """
    c = z - z.mean(axis=-1, keepdims=True)
    s = np.sqrt(np.mean(c * c, axis=-1, keepdims=True))
    if np.any(s <= 0):
        raise ValueError(
            "LayerNorm of a constant pre-activation vector is undefined (zero variance over the units; e.g. a zero "
            "input row without biases): use inputs that are not zero or a network with biases"
        )
    return c / s, s


def layer_norm_vjp(g, y, s):
    """``(dy/dz)^T g = (g - mean(g) - y mean(g y)) / s`` over the last axis (the Jacobian is symmetric)."""
    return (g - g.mean(axis=-1, keepdims=True) - y * np.mean(g * y, axis=-1, keepdims=True)) / s


def mask_sequence(seq: np.random.SeedSequence) -> np.random.SeedSequence:
    """The seed sequence of a network's dropout masks: child ``MASK_KEY`` of the network's sequence ``seq``."""
    return np.random.SeedSequence(seq.entropy, spawn_key=tuple(seq.spawn_key) + (MASK_KEY,))


def check_mask_seeds(net: Network, mask_seeds, n_seq: int):
    """``mask_seeds`` as a list of ``n_seq`` SeedSequences for a dropout ``net`` (None otherwise), or ValueError."""
    if net.dropout is None:
        if mask_seeds is not None:
            raise ValueError("mask_seeds is only for dropout networks (net.dropout is None)")
        return None
    if mask_seeds is None or len(mask_seeds) != n_seq:
        raise ValueError(f"mask_seeds must hold {n_seq} numpy.random.SeedSequence (one per network) for a dropout "
                         f"network (net.dropout={net.dropout}); MLP.sample draws them")  # fmt: skip
    mask_seeds = list(mask_seeds)
    if not all(isinstance(q, np.random.SeedSequence) for q in mask_seeds):
        raise ValueError("mask_seeds must hold numpy.random.SeedSequence objects")
    return mask_seeds


def draw_masks(mask_seqs, n: int, widths, rho: float) -> list:
    """Inverted-dropout multipliers ``m_l / rho`` of hidden layers ``1..L-1`` for ``n`` input rows.

    Parameters
    ----------
    mask_seqs : sequence of numpy.random.SeedSequence
        One per network of the stack (:func:`mask_sequence` of the network's sequence).
    n : int
        Number of input rows.
    widths : sequence of int
        Hidden widths ``N_1..N_{L-1}``.
    rho : float
        Keep probability in ``(0, 1)``.

    Returns
    -------
    list of ndarray
        Layer ``l`` at index ``l - 1``, shape ``(S, n, N_l)``, entries ``0`` or ``1/rho``. Row ``j`` of network
        ``s`` is drawn from uniforms ``j M .. (j + 1) M - 1`` (``M = sum_l N_l``) of the network's mask stream, so
        it does not depend on ``n`` beyond ``j``. Cost ``O(S n M)``.
    """
    widths = tuple(widths)
    M = sum(widths)
    U = np.empty((len(mask_seqs), n, M))
    for s, seq in enumerate(mask_seqs):
        generator(seq).random(out=U[s])
    keep = (U < rho) * (1.0 / rho)
    edges = np.cumsum((0,) + widths)
    return [keep[:, :, edges[l] : edges[l + 1]] for l in range(len(widths))]
