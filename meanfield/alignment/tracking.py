"""Kernel-target alignments of a finite network at one moment of training (Canatar & Pehlevan 2022).

One call measures every alignment Canatar & Pehlevan 2022 follow during training on one data set: the centered
alignment of each layer's feature kernel with the target kernel (their Figs. 1-2) and of the class-traced empirical
NTK with the target and with the network's own output kernel (their Fig. 7). Pass it to
:func:`meanfield.train` through ``callback=`` to record the curves on a training and a held-out set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_bool
from .measures import cka, target_kernel

__all__ = ["KernelAlignment", "kernel_target_alignment"]


@dataclass(frozen=True)
class KernelAlignment:
    """Result of :func:`kernel_target_alignment` (all centered alignments in ``[0, 1]``).

    Attributes
    ----------
    features : ndarray, shape ([S,] L)
        ``CKA(h_{l-1} h_{l-1}^T, Y Y^T)`` for ``l = 1..L`` (``l = 1``: the inputs ``X X^T``; ``l = L``: the
        penultimate layer, Canatar & Pehlevan's ``K^(L)``).
    ntk : ndarray or float
        ``CKA(K^NTK, Y Y^T)`` of the class-traced empirical NTK (NTK-target alignment), or None.
    ntk_output : ndarray or float
        ``CKA(K^NTK, f f^T)`` (NTK-network alignment), or None.
    output : ndarray or float
        ``CKA(f f^T, Y Y^T)`` (network-target alignment).
    """

    features: np.ndarray
    ntk: np.ndarray | float | None
    ntk_output: np.ndarray | float | None
    output: np.ndarray | float


def kernel_target_alignment(mlp, X, Y, ntk: bool = True, unbiased: bool = False) -> KernelAlignment:
    r"""Centered alignments of a network's layer feature kernels, NTK and outputs with the target kernel.

    Parameters
    ----------
    mlp : meanfield.MLP
        A finite network (or a stack) with ``o`` outputs.
    X : array_like, shape (n, d)
    Y : array_like, shape (n, o), or (n,) integer labels (one-hot encoded when ``o > 1``)
    ntk : bool
        Also form the class-traced NTK (cost ``O(L n^2 (N + o))`` and one backward pass; default True).
    unbiased : bool
        Debiased CKA (:func:`meanfield.alignment.cka`).

    Returns
    -------
    KernelAlignment

    Notes
    -----
    With the target kernel :math:`K_{\bar f} = YY^\top` (Canatar & Pehlevan 2022, sec. III), the layer feature
    kernels :math:`K^{(l)} = \psi^{(l)}\psi^{(l)\top}` (:meth:`MLP.feature_kernel`), the class-traced NTK
    :math:`K^{NTK} = \frac1o\sum_a \nabla_\theta f_a \cdot \nabla_\theta f_a` (their eq. (8), :meth:`MLP.ntk` with
    ``layout="traced"``) and the output kernel :math:`K_f = f f^\top`, every entry is the biased centered kernel
    alignment :math:`\mathrm{CKA}(A, B) = \langle HAH, HBH\rangle_F / (\|HAH\|_F\|HBH\|_F)`,
    :math:`H = I - \mathbf 1\mathbf 1^\top/n` (their sec. III). The paper's curves are these numbers on the
    training and the test set over training (Figs. 1-2, 7). Cost: one forward pass (and one backward pass with
    ``ntk``) over ``X``, ``L + 3`` ``n x n`` kernels.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> mlp = MLP.sample(Network(3, "relu", width=16), d=4, seed=0, outputs=2)
    >>> X = np.random.default_rng(0).standard_normal((8, 4))
    >>> a = kernel_target_alignment(mlp, X, np.arange(8) % 2)
    >>> a.features.shape, bool(0 <= a.ntk <= 1)
    ((3,), True)
    """
    from ..finite.mlp import check_mlp

    check_mlp(mlp)
    ntk, unbiased = check_bool(ntk, "ntk"), check_bool(unbiased, "unbiased")
    X = mlp.check_inputs(X)
    n = X.shape[0]
    Yt = mlp.targets(np.asarray(Y), n, "mse")
    T = target_kernel(Yt)
    L = mlp.net.depth
    zs, hs = mlp.forward_pass(X)
    S = mlp.stack or 1
    feats = []
    for l in range(1, L + 1):
        H = hs[l - 1].reshape((-1,) + hs[l - 1].shape[-2:])
        feats.append(np.broadcast_to(cka(H @ np.swapaxes(H, -1, -2), T, unbiased=unbiased), (S,)))
    out = np.asarray(mlp(X)).reshape(S, n, -1)
    Kf = out @ np.swapaxes(out, -1, -2)
    output = cka(Kf, T, unbiased=unbiased)
    k_ntk = k_nf = None
    if ntk:
        deltas = mlp.backward_pass(X, zs)
        K = sum(mlp.layer_kernel(hs, deltas, l, "both", "traced") for l in range(1, L + 1))
        K = np.broadcast_to(K, (S, n, n))
        k_ntk, k_nf = cka(K, T, unbiased=unbiased), cka(K, Kf, unbiased=unbiased)
        k_ntk, k_nf = mlp.unstack(np.asarray(k_ntk)), mlp.unstack(np.asarray(k_nf))
    return KernelAlignment(
        features=mlp.unstack(np.stack(feats, axis=-1)),
        ntk=_scalar(k_ntk),
        ntk_output=_scalar(k_nf),
        output=_scalar(mlp.unstack(np.asarray(output))),
    )


def _scalar(v):
    if v is None:
        return None
    return float(v) if np.ndim(v) == 0 else v
