r"""One-step training rules on :class:`~meanfield.finite.MLP`: gradient descent with per-layer rates, and the
speed-limited optimizer of Beaglehole et al. 2024 (sec. 5.2), sign-corrected.

The rules are pure functions of an ``MLP`` and its gradients (:meth:`MLP.grads`), returning a new ``MLP``, so that
a training loop (:func:`meanfield.train`) and a measurement (:mod:`meanfield.nfa`, :mod:`meanfield.dispersion`)
share them. A step is :math:`\theta_l \leftarrow \theta_l - \eta\, m_l\, g_l` for the weights and biases of layer
``l``, with the per-layer multipliers :math:`m_l` of :func:`step_scales`.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_real
from .mlp import MLP, check_mlp

__all__ = ["gd_step", "slo_step", "step_scales"]


def _layer_factors(values, depth, name):
    if values is None:
        return np.ones(depth)
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (depth,) or not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError(f"{name} must hold depth = {depth} finite numbers >= 0, got {values!r}")
    return v


def _rebuild(mlp, grads, scale_of_layer):
    """New MLP with ``p - scale_l * g`` for every parameter ``p`` of layer ``l`` (order of :attr:`MLP.params`)."""
    params = mlp.params
    grads = list(grads)
    if len(grads) != len(params) or any(np.shape(g) != p.shape for g, p in zip(grads, params, strict=True)):
        raise ValueError("grads must match mlp.params in number and shapes (as returned by MLP.grads)")
    per = 1 if mlp.biases is None else 2
    new = []
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        g = np.asarray(g, dtype=np.float64)
        if not np.all(np.isfinite(g)):
            raise ValueError(f"grads[{i}] contains non-finite values")
        s = scale_of_layer(i // per)
        s = np.asarray(s).reshape(np.shape(s) + (1,) * (p.ndim - np.ndim(s)))
        new.append(p - s * g)
    Ws = new[::per]
    bs = None if mlp.biases is None else new[1::2]
    return MLP(mlp.net, Ws, bs, mlp.mask_seeds)


def step_scales(mlp, grads, layer_lr=None, speeds=None, eps: float = 0.1) -> list:
    r"""Per-layer multipliers :math:`m_l` of the gradient for the training rules of this module.

    ``layer_lr`` gives per-layer learning rates, :math:`m_l = c_l`; ``speeds`` gives speed-limited optimization
    (SLO, Beaglehole et al. 2024, sec. 5.2, sign-corrected: see :func:`slo_step`),
    :math:`m_l = C_l/(\epsilon + \|g_l\|)` with the Frobenius norm of the layer's whole gradient (per network for
    a stack). Neither: :math:`m_l = 1`. Used by :func:`gd_step`, :func:`slo_step` and :func:`meanfield.train`; the
    step is :math:`\theta_l \leftarrow \theta_l - \eta m_l g_l`. Each entry is a float or an array over the networks
    of a stack.
    """
    depth = mlp.net.depth
    if layer_lr is not None and speeds is not None:
        raise ValueError("give layer_lr (per-layer rates) or speeds (speed-limited optimization), not both")
    if not np.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if speeds is None:
        return list(_layer_factors(layer_lr, depth, "layer_lr"))
    C = _layer_factors(speeds, depth, "speeds")
    per = 1 if mlp.biases is None else 2
    if len(grads) != len(mlp.params):
        raise ValueError("grads must match mlp.params in number and shapes (as returned by MLP.grads)")
    out = []
    for l in range(depth):
        sq = np.sum(np.asarray(grads[per * l], dtype=np.float64) ** 2, axis=(-2, -1))
        if per == 2:
            sq = sq + np.sum(np.asarray(grads[per * l + 1], dtype=np.float64) ** 2, axis=-1)
        den = eps + np.sqrt(sq)
        out.append(np.where(den > 0, C[l] / np.where(den > 0, den, 1.0), 0.0))
    return out


def gd_step(mlp, grads, lr: float, layer_lr=None) -> MLP:
    r"""One gradient-descent step with optional per-layer learning-rate multipliers; returns a new MLP.

    Parameters
    ----------
    mlp : MLP
        Current network (or stack).
    grads : list of ndarray
        Gradients in the order and shapes of ``mlp.params`` (as returned by :meth:`MLP.grads`).
    lr : float
        Learning rate :math:`\eta > 0`.
    layer_lr : sequence of float, optional
        Multipliers :math:`c_l\ge0`, ``l = 1..L`` (layer ``l`` uses :math:`\eta c_l`; the per-layer learning rates
        of Atanasov et al. 2022, sec. 4).

    Returns
    -------
    MLP
        :math:`\theta_l \leftarrow \theta_l - \eta c_l\nabla_{\theta_l}\mathcal L` (weights and biases of layer ``l``).

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> mlp = MLP.sample(Network(2, "relu", width=8), d=3, seed=0)
    >>> X = np.eye(3); y = np.ones(3)
    >>> new = gd_step(mlp, mlp.grads(X, y)[1], lr=0.1)
    >>> bool(new.grads(X, y)[0] < mlp.grads(X, y)[0])
    True
    """
    check_mlp(mlp)
    lr = check_real(lr, "lr", low=0, low_open=True)
    c = step_scales(mlp, grads, layer_lr=layer_lr)
    return _rebuild(mlp, grads, lambda l: lr * c[l])


def slo_step(mlp, grads, lr: float, speeds, eps: float = 0.1) -> MLP:
    r"""One step of speed-limited optimization (SLO, Beaglehole et al. 2024, sec. 5.2), sign-corrected.

    Parameters
    ----------
    mlp : MLP
        Current network (or stack).
    grads : list of ndarray
        Gradients in the order and shapes of ``mlp.params``.
    lr : float
        Learning rate :math:`\eta > 0`.
    speeds : sequence of float
        Per-layer speeds :math:`C_l\ge0`, ``l = 1..L``.
    eps : float
        Relaxation :math:`\epsilon\ge0` (Beaglehole et al. 2024, App. I: 0.1; ``0`` gives the pure normalization
        of their sec. 5.2).

    Returns
    -------
    MLP
        :math:`\theta_l \leftarrow \theta_l - \eta\,C_l\,g_l/(\epsilon + \|g_l\|)` with
        :math:`g_l = \nabla_{\theta_l}\mathcal L` (weights and biases of layer ``l``).

    Notes
    -----
    The published update rule (Beaglehole et al. 2024, sec. 5.2) reads
    :math:`W \leftarrow W + \eta C \nabla\mathcal L/\|\nabla\mathcal L\|`, which is gradient *ascent*; descent
    needs the minus sign used here (the loss decreases after one step, see the tests). The practical form divides
    by :math:`\epsilon + \|\nabla\mathcal L\|` (their App. I). App. J's "divide by
    :math:`\epsilon\|\nabla\mathcal L\|`" is ``eps = 0`` with :math:`\eta` rescaled by :math:`1/\epsilon`. The norm
    is the Frobenius norm of the layer's whole gradient (weights and biases together; the paper's networks have no
    biases); the paper does not say which norm, Frobenius is our reading. For a stack the norm is taken per network.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> mlp = MLP.sample(Network(2, "relu", width=8), d=3, seed=0, bias=False)
    >>> g = mlp.grads(np.eye(3), np.ones(3))[1]
    >>> new = slo_step(mlp, g, lr=1.0, speeds=[0.5, 0.0], eps=0.0)
    >>> step = np.linalg.norm(mlp.weights[0] - new.weights[0])
    >>> round(float(step), 12), bool(np.all(new.weights[1] == mlp.weights[1]))
    (0.5, True)
    """
    check_mlp(mlp)
    lr = check_real(lr, "lr", low=0, low_open=True)
    m = step_scales(mlp, list(grads), speeds=speeds, eps=eps)
    return _rebuild(mlp, grads, lambda l: lr * m[l])
