r"""The neural feature ansatz (NFA) and its centered form (C-NFC), measured on finite networks.

Beaglehole et al. 2024 study the correlation between a layer's neural feature matrix (NFM)
:math:`F_l = W_l^\top W_l` and its average gradient outer product (AGOP)
:math:`\bar G_l = \frac1n\sum_{i,a} J^a_l(x_i) J^a_l(x_i)^\top`, :math:`J^a_l = \partial f_a/\partial h_{l-1}`, and
show :math:`\bar G_l = W_l^\top K^{\rm ptk}_l W_l` with the pre-activation tangent (PTK) feature covariance
:math:`K^{\rm ptk}_l = \frac1n\sum_a\Delta_l^{a\top}\Delta_l^a` (their Prop. 2). Centering at initialization,
:math:`\bar W_l = W_l(t) - W_l(0)`, isolates the part driven by gradient descent (the C-NFC, their sec. 3).

Measurements on a finite :class:`~meanfield.MLP` (or a stack of them): :func:`nfc`, :func:`cnfc`, :func:`cuc_ratio`,
:func:`double_centered_nfc`, :func:`ptk_centered_nfc`, and the exact early-time C-NFC at any width,
:func:`cnfc_early` (its sample-space core and infinite-width limit are in :mod:`meanfield.nfa.early`). The one-step
training rules used in the examples (:func:`meanfield.finite.gd_step`, :func:`meanfield.finite.slo_step`) live with
the finite networks.

Layer ``l = 1..L`` owns ``W_l`` (``N_l x N_{l-1}``); the paper's layer index is ``l - 1``. All matrix comparisons
use the cosine :math:`\rho(A, B) = \langle A, B\rangle_F/(\|A\|_F\|B\|_F)` (the paper's (NFC) definition,
sec. 2.1), or its Pearson variants (App. L). Constant factors (the NTP multiplier ``m_w``, the ``1/n`` of the PTK
covariance, the sign and ``1/n`` of the loss derivative) cancel in every cosine.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_choice, check_layers, check_operator_size
from ..alignment.measures import cosine, pow2_scaled, psd_power
from ..finite.mlp import MLP
from .early import cnfc_early_kernels, early_rho, trace_prod

METRICS = ("cosine", "pearson", "diag_pearson")
METHODS = ("sample", "operator")


# ----------------------------------------------------------------------------------------------------------------
# validation and small helpers
# ----------------------------------------------------------------------------------------------------------------
def _check_mlp(mlp, name="mlp") -> MLP:
    if not isinstance(mlp, MLP):
        raise ValueError(f"{name} must be a meanfield.MLP, got {type(mlp).__name__}")
    return mlp


def _check_pair(mlp, mlp0) -> None:
    _check_mlp(mlp)
    _check_mlp(mlp0, "mlp0")
    if mlp.net != mlp0.net or any(a.shape != b.shape for a, b in zip(mlp.weights, mlp0.weights, strict=True)):
        raise ValueError("mlp and mlp0 must be the same architecture (same Network and weight shapes)")


def _rho(A, B, metric: str = "cosine", power: float = 1.0):
    """Matrix similarity: cosine, Pearson (mean of all entries removed) or diagonal Pearson, of ``A`` and
    ``B^power``."""
    check_choice(metric, METRICS, "metric")
    A, B = (
        pow2_scaled(np.asarray(A, dtype=np.float64))[0],
        psd_power(pow2_scaled(np.asarray(B, dtype=np.float64))[0], power),
    )
    if metric == "diag_pearson":
        A = np.diagonal(A, axis1=-2, axis2=-1)[..., :, None]
        B = np.diagonal(B, axis1=-2, axis2=-1)[..., :, None]
    if metric != "cosine":
        A = A - A.mean(axis=(-2, -1), keepdims=True)
        B = B - B.mean(axis=(-2, -1), keepdims=True)
    return cosine(A, B)


def _sandwich(W, K):
    """``W^T K W`` over the last two axes."""
    return np.matmul(np.swapaxes(W, -1, -2), np.matmul(K, W))


def _gram_t(W):
    """``W^T W`` over the last two axes."""
    return np.matmul(np.swapaxes(W, -1, -2), W)


# ----------------------------------------------------------------------------------------------------------------
# measurements on finite networks
# ----------------------------------------------------------------------------------------------------------------
def nfc(mlp, X, l: int, metric: str = "cosine", power: float = 1.0):
    r"""Neural feature correlation (UC-NFC) :math:`\rho(F_l, \bar G_l)` of layer ``l``.

    Parameters
    ----------
    mlp : MLP
        A finite network or a stack of networks.
    X : array_like, shape (n, d)
        Inputs over which the AGOP is averaged.
    l : int
        Layer ``1..L`` (the paper's layer ``l - 1``).
    metric : {"cosine", "pearson", "diag_pearson"}
        Cosine (Beaglehole et al. 2024, sec. 2.1, default), Pearson (entries' mean removed, App. L) or the Pearson
        correlation of the diagonals (App. L, Fig. 16).
    power : float
        Compare :math:`F` with the PSD power :math:`\bar G^{\alpha}` (the paper uses 1).

    Returns
    -------
    float or ndarray (S,)

    Notes
    -----
    :math:`F_l = W_l^\top W_l` and :math:`\bar G_l = \frac1n\sum_{i,a}J^a_l(x_i)J^a_l(x_i)^\top` (Beaglehole et al.
    2024, sec. 2.1, summed over outputs as noted there), both :math:`N_{l-1}\times N_{l-1}` (the paper states
    :math:`k_{\ell+1}\times k_{\ell+1}`; :math:`W^\top W` is :math:`k_\ell\times k_\ell`). By Prop. 2,
    :math:`\bar G_l = W_l^\top K^{\rm ptk}_l W_l` exactly, so the NFC measures how the right singular structure of
    :math:`W_l` aligns with the PTK feature covariance. For the readout of a scalar network the NFC is trivially 1.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> mlp = MLP.sample(Network(3, "relu", width=64), d=8, seed=0, bias=False)
    >>> X = np.random.default_rng(0).standard_normal((50, 8))
    >>> 0.0 < nfc(mlp, X, 1) < 1.0
    True
    >>> round(nfc(mlp, X, 3), 12)          # scalar readout: K_L = 1
    1.0
    """
    _check_mlp(mlp)
    return _rho(mlp.nfm(l), mlp.agop(X, l), metric, power)


def _centered_parts(mlp, mlp0, X, l):
    _check_pair(mlp, mlp0)
    l = mlp.check_layer(l)
    Wbar = mlp.weights[l - 1] - mlp0.weights[l - 1]
    return Wbar, mlp.ptk_cov(X, l)


def cnfc(mlp, mlp0, X, l: int, metric: str = "cosine", power: float = 1.0):
    r"""Centered neural feature correlation :math:`\rho(\bar W^\top\bar W,\ \bar W^\top K^{\rm ptk}_l(t)\,\bar W)`.

    Parameters
    ----------
    mlp, mlp0 : MLP
        The network now and at initialization (same architecture; stacks allowed).
    X : array_like, shape (n, d)
    l : int
        Layer ``1..L``.
    metric, power
        As in :func:`nfc`.

    Returns
    -------
    float or ndarray (S,)
        ``nan`` while :math:`\bar W_l = 0` (at initialization); its :math:`t\to0^+` limit is :func:`cnfc_early`.

    Notes
    -----
    :math:`\bar W_l = W_l(t) - W_l(0)` (Beaglehole et al. 2024, sec. 3 and App. A, item 8). The centered NFM and
    AGOP are the first terms of the decomposition of their eq. (3).

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> from meanfield.finite import gd_step
    >>> mlp0 = MLP.sample(Network(3, "relu", width=32), d=4, seed=0, bias=False)
    >>> X = np.random.default_rng(0).standard_normal((20, 4)); y = X[:, 0] * X[:, 1]
    >>> mlp1 = gd_step(mlp0, mlp0.grads(X, y)[1], lr=0.05)
    >>> bool(np.isnan(cnfc(mlp0, mlp0, X, 1))), 0.9 < cnfc(mlp1, mlp0, X, 1) <= 1.0
    (True, True)
    """
    Wbar, K = _centered_parts(mlp, mlp0, X, l)
    return _rho(_gram_t(Wbar), _sandwich(Wbar, K), metric, power)


def cuc_ratio(mlp, mlp0, X, l: int):
    r"""Centered-to-uncentered (C/UC) ratio of the unnormalized correlations (Beaglehole et al. 2024, sec. 5).

    :math:`\operatorname{tr}(\bar W^\top\bar W\,\bar W^\top K\bar W)/\operatorname{tr}(W^\top W\,W^\top KW)`.

    Parameters
    ----------
    mlp, mlp0 : MLP
        The network now and at initialization.
    X : array_like, shape (n, d)
    l : int
        Layer ``1..L``.

    Returns
    -------
    float or ndarray (S,)
        0 at initialization; near 1 when the weight change dominates (Beaglehole et al. 2024, sec. 5, Fig. 4).

    Notes
    -----
    Both traces carry the same powers of the NTP multiplier and of the ``1/n`` of :math:`K`, so the ratio is
    parameterization independent.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> mlp0 = MLP.sample(Network(2, "relu", width=16), d=3, seed=0, bias=False)
    >>> float(cuc_ratio(mlp0, mlp0, np.eye(3), 1))
    0.0
    """
    Wbar, K = _centered_parts(mlp, mlp0, X, l)
    W = mlp.weights[l - 1]
    num = trace_prod(_gram_t(Wbar), _sandwich(Wbar, K))
    den = trace_prod(_gram_t(W), _sandwich(W, K))
    out = num / den
    return out if np.ndim(out) else float(out)


def _ptk_change(mlp, mlp0, X, l):
    """``K-bar = (1/n) sum_a (Delta_t^a - Delta_0^a)^T (Delta_t^a - Delta_0^a)``, shape ``([S,] N_l, N_l)``."""
    _check_pair(mlp, mlp0)
    l = mlp.check_layer(l)
    dD = mlp.deltas(X)[l - 1] - mlp0.deltas(X)[l - 1]  # ([S,] o, n, N_l)
    n = dD.shape[-2]
    M = dD.reshape(dD.shape[:-3] + (-1, dD.shape[-1]))
    return _gram_t(M) / n


def double_centered_nfc(mlp, mlp0, X, l: int, metric: str = "cosine"):
    r"""Double-centered NFC :math:`\rho(\bar W^\top\bar W,\ \bar W^\top\bar K\bar W)` (Beaglehole et al. 2024, App. C).

    :math:`\bar K = \frac1n\sum_a(\Delta^a_t-\Delta^a_0)^\top(\Delta^a_t-\Delta^a_0)` centers the PTK features at
    initialization too; ``nan`` while either change is zero. Parameters as in :func:`cnfc`.

    Examples
    --------
    The double- and the PTK-centered NFC after one gradient step, and the latter at initialization:

    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> from meanfield.finite import gd_step
    >>> mlp0 = MLP.sample(Network(3, "tanh", width=16), d=3, seed=0, bias=False)
    >>> X = np.random.default_rng(0).standard_normal((10, 3))
    >>> mlp1 = gd_step(mlp0, mlp0.grads(X, X[:, 0])[1], lr=0.1)
    >>> 0.0 < double_centered_nfc(mlp1, mlp0, X, 1) <= 1.0, 0.0 < ptk_centered_nfc(mlp1, mlp0, X, 2) <= 1.0
    (True, True)
    >>> bool(np.isnan(ptk_centered_nfc(mlp0, mlp0, X, 2)))
    True
    """
    Kbar = _ptk_change(mlp, mlp0, X, l)
    Wbar = mlp.weights[l - 1] - mlp0.weights[l - 1]
    return _rho(_gram_t(Wbar), _sandwich(Wbar, Kbar), metric)


def ptk_centered_nfc(mlp, mlp0, X, l: int, metric: str = "cosine"):
    r"""PTK-centered NFC :math:`\rho(W_0^\top W_0,\ W_0^\top\bar KW_0)` (Beaglehole et al. 2024, App. C).

    How the *change* of the PTK features aligns with the initial weights; :math:`\bar K` as in
    :func:`double_centered_nfc`. ``nan`` at initialization. Parameters as in :func:`cnfc`; an example is in
    :func:`double_centered_nfc`.
    """
    Kbar = _ptk_change(mlp, mlp0, X, l)
    W0 = mlp0.weights[l - 1]
    return _rho(_gram_t(W0), _sandwich(W0, Kbar), metric)


def cnfc_early(mlp, X, Y, l, loss: str = "mse", zero_output: bool = False, method: str = "sample", force=False):
    r"""Exact early-time centered NFC :math:`\lim_{t\to0^+}\mathrm{CNFC}_l(t)` of a finite network, any width.

    Parameters
    ----------
    mlp : MLP
        The network at initialization (or a stack of networks).
    X : array_like, shape (n, d)
    Y : array_like
        Targets, as in :meth:`MLP.loss_grad`.
    l : int or sequence of int
        Layer(s) ``1..L``.
    loss : {"mse", "xent"}
        The training loss; its derivative at the current outputs drives gradient flow.
    zero_output : bool
        Take the loss derivative at :math:`f = 0` instead of at :math:`f_0`, as Beaglehole et al. 2024, sec. 4.1
        assume (they write :math:`\dot{\mathcal L} = Y`; for MSE it is :math:`-\operatorname{diag}(y)/n`, and the
        sign and scale cancel).
    method : {"sample", "operator"}
        ``"sample"`` (default): the width-independent sample-space form from the residual-seeded backward vectors.
        ``"operator"``: the literal eq. (6) with the ``(n o, n o)`` PTK Gram (memory guarded, see
        :func:`~meanfield.nfa.check_operator_size`).
    force : bool
        With ``method="operator"``, allow kernels above :data:`MAX_OPERATOR_ENTRIES` entries.

    Returns
    -------
    float or ndarray
        Shape ``([S,])`` for one layer, ``([S,] len(l))`` for a sequence.

    Notes
    -----
    Beaglehole et al. 2024, Prop. 3 and eq. (6). With :math:`g_l(x_i) = \sum_a R_{ia}\delta^a_l(x_i)` the
    backward vectors seeded with the loss derivative :math:`R = \partial\mathcal L/\partial f`, gradient flow has
    :math:`\dot W_l = -m_w\,g_l^\top H_{l-1}`, and

    .. math:: U = g_lg_l^\top,\qquad V = g_l\,(\textstyle\sum_a\Delta_l^{a\top}\Delta^a_l)\,g_l^\top,\qquad
              G = H_{l-1}H_{l-1}^\top

    give :math:`\mathrm{CNFC}_l(0^+) = \operatorname{tr}(UGVG)/\sqrt{\operatorname{tr}(UGUG)\operatorname{tr}(VGVG)}
    = \rho(\dot W^\top\dot W, \dot W^\top K^{\rm ptk}_l\dot W)` (:func:`~meanfield.nfa.cnfc_early_kernels`). It
    involves :math:`K^{\rm ptk}` at initialization only: :math:`\dot K` multiplies :math:`\bar W = O(t)` and drops
    out. One GD step of size :math:`\eta` has :math:`\bar W = -\eta\nabla\mathcal L` exactly, so the C-NFC after one
    step differs from this value only through :math:`K_1 - K_0 = O(\eta)` (within 0.003 at :math:`\eta = 0.05`
    for layer 2 of the test network in tests/test_nfa.py).

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> from meanfield.finite import gd_step
    >>> from meanfield.nfa import chain_monomial
    >>> X = np.random.default_rng(0).standard_normal((30, 5)); y = chain_monomial(X, 3)
    >>> mlp = MLP.sample(Network(3, "relu", width=64), d=5, seed=1, bias=False)
    >>> c0 = cnfc_early(mlp, X, y, [1, 2])
    >>> mlp1 = gd_step(mlp, mlp.grads(X, y)[1], lr=1e-5)   # one tiny GD step
    >>> bool(np.allclose(c0, [cnfc(mlp1, mlp, X, 1), cnfc(mlp1, mlp, X, 2)], atol=1e-5))
    True
    """
    _check_mlp(mlp)
    check_choice(method, METHODS, "method")
    X = mlp.check_inputs(X)
    ls, single = check_layers(l, mlp.net.depth)
    n, o = X.shape[0], mlp.outputs
    if method == "operator":
        check_operator_size(n, o, force)
    zs, hs = mlp.forward_pass(X)
    deltas = mlp.backward_pass(X, zs)
    f = mlp.unstack(zs[-1])
    _, R = mlp.loss_grad(X, Y, loss, output=np.zeros_like(f) if zero_output else f)
    R = R if mlp.stack is not None else R[None]  # (S, n, o)
    S = R.shape[0]
    out = []
    for k in ls:
        H = hs[k - 1]
        G = np.matmul(H, np.swapaxes(H, -1, -2))
        D = np.broadcast_to(deltas[k - 1], (S,) + deltas[k - 1].shape[1:])  # (S, o, n, N_k)
        if method == "operator":
            Dm = np.swapaxes(D, 1, 2).reshape(S, n * o, -1)
            out.append(cnfc_early_kernels(G, np.matmul(Dm, np.swapaxes(Dm, -1, -2)), R, force=True))
            continue
        g = np.einsum("sia,sain->sin", R, D)  # residual-seeded backward vectors (S, n, N_k)
        U = np.matmul(g, np.swapaxes(g, -1, -2))
        C = np.matmul(D.reshape(S, o * n, -1), np.swapaxes(g, -1, -2))  # delta^a(x_i) . g(x_j)
        V = np.matmul(np.swapaxes(C, -1, -2), C)
        out.append(early_rho(G, U, V))
    res = np.stack([np.asarray(v, dtype=np.float64).reshape(S) for v in out], axis=-1)  # (S, len)
    res = res[..., 0] if single else res
    res = mlp.unstack(res)
    return float(res) if np.ndim(res) == 0 else res
