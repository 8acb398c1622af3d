r"""The neural feature ansatz (NFA) and its centered form (C-NFC): theory and finite-network measurements (seed 001).

Seed 001 (anonymous ICLR submission, *Feature learning as alignment*) studies the correlation between a layer's
neural feature matrix (NFM) :math:`F_l = W_l^\top W_l` and its average gradient outer product (AGOP)
:math:`\bar G_l = \frac1n\sum_{i,a} J^a_l(x_i) J^a_l(x_i)^\top`, :math:`J^a_l = \partial f_a/\partial h_{l-1}`, and
shows :math:`\bar G_l = W_l^\top K^{\rm ptk}_l W_l` with the pre-activation tangent (PTK) feature covariance
:math:`K^{\rm ptk}_l = \frac1n\sum_a\Delta_l^{a\top}\Delta_l^a` (Prop. 2). Centering at initialization,
:math:`\bar W_l = W_l(t) - W_l(0)`, isolates the part driven by gradient descent (the C-NFC).

Contents, in the corrected forms of ``feature_alignment.md`` sec. 2 (errata numbers refer to its sec. 7):

* measurements on a finite :class:`~meanfield.MLP` (or a stack of them): :func:`nfc`, :func:`cnfc`, :func:`cuc_ratio`,
  :func:`double_centered_nfc`, :func:`ptk_centered_nfc`;
* the exact early-time C-NFC at any width (sheet sec. 2.1, seed eq. (6)): :func:`cnfc_early`, its sample-space core
  :func:`cnfc_early_kernels`, and the infinite-width limit from the kernel recursions :func:`cnfc_early_infinite`;
* the one-hidden-layer quadratic network (sheet sec. 2.2): the free-probability prediction :func:`quadratic_free_cnfc`
  (corrected seed eq. (26)) with :func:`quadratic_r_moments`, and the corrected Prop. 8,
  :func:`quadratic_expected_second_derivatives`;
* targets: :func:`egop`, :func:`chain_monomial`, :func:`chain_monomial_egop`;
* one-step training rules (gradient descent with per-layer rates, the corrected speed-limited optimizer), written
  as pure functions of an ``MLP`` and its :meth:`~meanfield.MLP.grads` so that a training loop can use them:
  :func:`gd_step`, :func:`slo_step`;
* the memory guard for operator-valued (``n o x n o``) kernels: :func:`check_operator_size`.

Layer ``l = 1..L`` owns ``W_l`` (``N_l x N_{l-1}``); seed 001's layer index is ``l - 1`` (sheet sec. 0). All
matrix comparisons use the cosine :math:`\rho(A, B) = \langle A, B\rangle_F/(\|A\|_F\|B\|_F)` (seed 001 line 54),
or its Pearson variants (sheet sec. 1.1). Constant factors (the NTP multiplier ``m_w``, the ``1/n`` of the PTK
covariance, the sign and ``1/n`` of the loss derivative) cancel in every cosine.
"""

from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from .._checks import MAX_OPERATOR_ENTRIES, check_operator_size
from ..alignment.measures import cosine
from ..finite.mlp import MLP
from ..finite.optim import gd_step  # noqa: F401 (the doctests take one GD step)
from ..network import Network
from ..propagation.dataset import kernels

__all__ = [
    "MAX_OPERATOR_ENTRIES",
    "METRICS",
    "check_operator_size",
    "nfc",
    "cnfc",
    "cuc_ratio",
    "double_centered_nfc",
    "ptk_centered_nfc",
    "cnfc_early",
    "cnfc_early_kernels",
    "cnfc_early_infinite",
    "quadratic_r_moments",
    "quadratic_free_cnfc",
    "quadratic_expected_second_derivatives",
    "egop",
    "chain_monomial",
    "chain_monomial_egop",
]

METRICS = ("cosine", "pearson", "diag_pearson")
FORMS = ("corrected", "seed")

# ----------------------------------------------------------------------------------------------------------------
# validation and small helpers
# ----------------------------------------------------------------------------------------------------------------


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_mlp(mlp, name="mlp") -> MLP:
    if not isinstance(mlp, MLP):
        raise ValueError(f"{name} must be a meanfield.MLP, got {type(mlp).__name__}")
    return mlp


def _check_pair(mlp, mlp0) -> None:
    _check_mlp(mlp)
    _check_mlp(mlp0, "mlp0")
    if mlp.net != mlp0.net or any(a.shape != b.shape for a, b in zip(mlp.weights, mlp0.weights, strict=True)):
        raise ValueError("mlp and mlp0 must be the same architecture (same Network and weight shapes)")


def _layers(l, depth: int):
    """``l`` as a tuple of 1-based layers and whether a scalar was given."""
    scalar = isinstance(l, numbers.Integral) and not isinstance(l, bool)
    ls = (l,) if scalar else tuple(l)
    if not ls:
        raise ValueError("l must be a layer or a non-empty sequence of layers")
    for v in ls:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 1 <= v <= depth:
            raise ValueError(f"layer l must be an integer in [1, {depth}], got {v!r}")
    return tuple(int(v) for v in ls), scalar


def _rho(A, B, metric: str = "cosine", power: float = 1.0):
    """Matrix similarity of sheet sec. 1.1: cosine, Pearson (mean of all entries removed) or diagonal Pearson."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if power != 1.0:
        w, V = np.linalg.eigh(B)
        B = np.matmul(V * np.clip(w, 0.0, None)[..., None, :] ** power, np.swapaxes(V, -1, -2))
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


def _trace_prod(A, B):
    """``tr(A B)`` for symmetric ``A, B`` over the last two axes."""
    return np.sum(A * np.swapaxes(B, -1, -2), axis=(-2, -1))


# ----------------------------------------------------------------------------------------------------------------
# measurements on finite networks (sheet sec. 2 table)
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
        Layer ``1..L`` (seed 001's layer ``l - 1``).
    metric : {"cosine", "pearson", "diag_pearson"}
        Cosine (seed 001 line 54, default), Pearson (entries' mean removed, seed 001 App. L) or the Pearson
        correlation of the diagonals (seed 001 Fig. 16); sheet sec. 1.1.
    power : float
        Compare :math:`F` with :math:`\bar G^{\alpha}` (PSD power, sheet sec. 1.1; seed 001 uses 1).

    Returns
    -------
    float or ndarray (S,)

    Notes
    -----
    :math:`F_l = W_l^\top W_l` (seed 001 line 43) and :math:`\bar G_l = \frac1n\sum_{i,a}J^a_l(x_i)J^a_l(x_i)^\top`
    (line 45, summed over outputs as at line 62), both :math:`N_{l-1}\times N_{l-1}` (erratum 1). By Prop. 2,
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
    :math:`\bar W_l = W_l(t) - W_l(0)` (seed 001 lines 127-131, glossary item 8; sheet sec. 2). The centered NFM and
    AGOP are the first terms of the decomposition of seed eq. (3).

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> mlp0 = MLP.sample(Network(3, "relu", width=32), d=4, seed=0, bias=False)
    >>> X = np.random.default_rng(0).standard_normal((20, 4)); y = X[:, 0] * X[:, 1]
    >>> mlp1 = gd_step(mlp0, mlp0.grads(X, y)[1], lr=0.05)
    >>> bool(np.isnan(cnfc(mlp0, mlp0, X, 1))), 0.9 < cnfc(mlp1, mlp0, X, 1) <= 1.0
    (True, True)
    """
    Wbar, K = _centered_parts(mlp, mlp0, X, l)
    return _rho(_gram_t(Wbar), _sandwich(Wbar, K), metric, power)


def cuc_ratio(mlp, mlp0, X, l: int):
    r"""Centered-to-uncentered (C/UC) ratio of the unnormalized correlations, seed 001 sec. 5.

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
        0 at initialization; near 1 when the weight change dominates (seed 001 sec. 5, Fig. 4).

    Notes
    -----
    Seed 001 lines 226 and 239 (the "C/UC ratio" of the unnormalized correlations); sheet sec. 2 table. Both
    traces carry the same powers of the NTP multiplier and of the ``1/n`` of :math:`K`, so the ratio is
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
    num = _trace_prod(_gram_t(Wbar), _sandwich(Wbar, K))
    den = _trace_prod(_gram_t(W), _sandwich(W, K))
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
    r"""Double-centered NFC :math:`\rho(\bar W^\top\bar W,\ \bar W^\top\bar K\bar W)` (seed 001 App. C, line 366).

    :math:`\bar K = \frac1n\sum_a(\Delta^a_t-\Delta^a_0)^\top(\Delta^a_t-\Delta^a_0)` centers the PTK features at
    initialization too; ``nan`` while either change is zero. Parameters as in :func:`cnfc`.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> mlp0 = MLP.sample(Network(3, "tanh", width=16), d=3, seed=0, bias=False)
    >>> X = np.random.default_rng(0).standard_normal((10, 3))
    >>> mlp1 = gd_step(mlp0, mlp0.grads(X, X[:, 0])[1], lr=0.1)
    >>> 0.0 < double_centered_nfc(mlp1, mlp0, X, 1) <= 1.0
    True
    """
    Kbar = _ptk_change(mlp, mlp0, X, l)
    Wbar = mlp.weights[l - 1] - mlp0.weights[l - 1]
    return _rho(_gram_t(Wbar), _sandwich(Wbar, Kbar), metric)


def ptk_centered_nfc(mlp, mlp0, X, l: int, metric: str = "cosine"):
    r"""PTK-centered NFC :math:`\rho(W_0^\top W_0,\ W_0^\top\bar KW_0)` (seed 001 App. C, line 377).

    How the *change* of the PTK features aligns with the initial weights; :math:`\bar K` as in
    :func:`double_centered_nfc`. ``nan`` at initialization. Parameters as in :func:`cnfc`.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> mlp0 = MLP.sample(Network(3, "tanh", width=16), d=3, seed=0, bias=False)
    >>> X = np.random.default_rng(0).standard_normal((10, 3))
    >>> mlp1 = gd_step(mlp0, mlp0.grads(X, X[:, 0])[1], lr=0.1)
    >>> 0.0 < ptk_centered_nfc(mlp1, mlp0, X, 2) <= 1.0
    True
    """
    Kbar = _ptk_change(mlp, mlp0, X, l)
    W0 = mlp0.weights[l - 1]
    return _rho(_gram_t(W0), _sandwich(W0, Kbar), metric)


# ----------------------------------------------------------------------------------------------------------------
# early-time C-NFC (sheet sec. 2.1)
# ----------------------------------------------------------------------------------------------------------------
def _early_rho(G, U, V):
    """``tr(UGVG) / sqrt(tr(UGUG) tr(VGVG))`` over the last two axes (all symmetric ``n x n``)."""
    UG, VG = np.matmul(U, G), np.matmul(V, G)
    num = _trace_prod(UG, VG)
    d1, d2 = _trace_prod(UG, UG), _trace_prod(VG, VG)
    ok = (d1 > 0) & (d2 > 0)
    out = np.where(ok, num / np.sqrt(np.where(ok, d1 * d2, 1.0)), np.nan)
    return out if out.ndim else float(out)


def cnfc_early_kernels(G, P, R, force: bool = False):
    r"""Early-time C-NFC from the three sample-space ingredients: layer-input Gram, PTK Gram, loss residual.

    Parameters
    ----------
    G : array_like, shape ([S,] n, n)
        :math:`H_{l-1}H_{l-1}^\top`, the Gram matrix of the inputs to layer ``l`` (any positive multiple).
    P : array_like, shape ([S,] n, n) or ([S,] n o, n o)
        PTK Gram :math:`\mathcal P_l = \Delta_l\Delta_l^\top`; for ``o > 1`` outputs the operator-valued block
        matrix :math:`[(i,a),(j,b)] = \delta^a_l(x_i)\cdot\delta^b_l(x_j)` in sample-major order (row ``i o + a``).
    R : array_like, shape ([S,] n) or ([S,] n, o)
        Loss derivative :math:`\partial\mathcal L/\partial f(x_i)` (any multiple; the sign and scale cancel).
    force : bool
        Allow an operator-valued ``P`` above :data:`MAX_OPERATOR_ENTRIES` entries.

    Returns
    -------
    float or ndarray (S,)

    Notes
    -----
    Seed 001 Prop. 3 and eq. (6), sheet sec. 2.1 (boxed formula and its sample-space form). Under gradient flow
    :math:`\bar W(0) = 0`, so the first non-zero derivatives of the centered NFM and AGOP are
    :math:`\dot W^\top\dot W = H^\top U H` and :math:`\dot W^\top K\dot W \propto H^\top V H` with
    :math:`U = M^\top\mathcal PM`, :math:`V = M^\top\mathcal P^2M` and :math:`M[(i,a), j] = \delta_{ij}R_{ia}`
    (for ``o = 1``, :math:`M = S = \operatorname{diag}(R)`). Hence, exactly,

    .. math::
        \mathrm{CNFC}_l(0^+) = \frac{\operatorname{tr}(UGVG)}{\sqrt{\operatorname{tr}(UGUG)\operatorname{tr}(VGVG)}},

    an :math:`O(n^3)` computation independent of the width. ``nan`` if a denominator vanishes.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((6, 3))
    >>> G = X @ X.T
    >>> round(cnfc_early_kernels(G, np.eye(6), X[:, 0]), 12)    # P a projector: exactly 1 (seed 001 line 163)
    1.0
    """
    G = np.asarray(G, dtype=np.float64)
    P = np.asarray(P, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    if G.ndim < 2 or G.shape[-1] != G.shape[-2]:
        raise ValueError(f"G must be a square (n, n) matrix (or a stack), got shape {G.shape}")
    n = G.shape[-1]
    if R.ndim == G.ndim - 1:  # scalar output: R is (..., n)
        R = R[..., None]
    if R.shape[-2] != n:
        raise ValueError(f"R must have shape (n={n},) or (n={n}, o), got {R.shape}")
    o = R.shape[-1]
    if P.ndim < 2 or P.shape[-2:] != (n * o, n * o):
        raise ValueError(f"P must have shape (n o, n o) = ({n * o}, {n * o}) for n = {n}, o = {o}, got {P.shape}")
    if o > 1:
        check_operator_size(n, o, force)
    for name, a in (("G", G), ("P", P), ("R", R)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must contain only finite numbers")
    # P M: column j of M is R_j. placed at rows (j, a) -> (P M)[:, j] = sum_a P[:, (j, a)] R[j, a]
    Pr = P.reshape(P.shape[:-1] + (n, o))
    PM = np.einsum("...kja,...ja->...kj", Pr, R)  # (n o, n)
    Rf = R.reshape(R.shape[:-2] + (n * o,))
    U = Rf[..., :, None] * PM  # rows (i, a) weighted by R_ia, then summed over a
    U = U.reshape(U.shape[:-2] + (n, o, n)).sum(axis=-2)
    V = np.matmul(np.swapaxes(PM, -1, -2), PM)
    return _early_rho(G, U, V)


def cnfc_early(mlp, X, Y, l, loss: str = "mse", zero_output: bool = False, form: str = "sample", force=False):
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
        Take the loss derivative at :math:`f = 0` instead of at :math:`f_0` (the seed's assumption
        :math:`\dot{\mathcal L} = \operatorname{diag}(y)`, line 173; erratum 5).
    form : {"sample", "operator"}
        ``"sample"`` (default): the width-independent sample-space form from the residual-seeded backward vectors.
        ``"operator"``: the literal eq. (6) with the ``(n o, n o)`` PTK Gram (memory guarded, see
        :func:`check_operator_size`).
    force : bool
        With ``form="operator"``, allow kernels above :data:`MAX_OPERATOR_ENTRIES` entries.

    Returns
    -------
    float or ndarray
        Shape ``([S,])`` for one layer, ``([S,] len(l))`` for a sequence.

    Notes
    -----
    Sheet sec. 2.1 (seed 001 Prop. 3, eq. (6)). With :math:`g_l(x_i) = \sum_a R_{ia}\delta^a_l(x_i)` the
    backward vectors seeded with the loss derivative :math:`R = \partial\mathcal L/\partial f`, gradient flow has
    :math:`\dot W_l = -m_w\,g_l^\top H_{l-1}`, and

    .. math:: U = g_lg_l^\top,\qquad V = g_l\,(\textstyle\sum_a\Delta_l^{a\top}\Delta^a_l)\,g_l^\top,\qquad
              G = H_{l-1}H_{l-1}^\top

    give :math:`\mathrm{CNFC}_l(0^+) = \operatorname{tr}(UGVG)/\sqrt{\operatorname{tr}(UGUG)\operatorname{tr}(VGVG)}
    = \rho(\dot W^\top\dot W, \dot W^\top K^{\rm ptk}_l\dot W)`. It involves :math:`K^{\rm ptk}` at
    initialization only: :math:`\dot K` multiplies :math:`\bar W = O(t)` and drops out. One GD step of size
    :math:`\eta` has :math:`\bar W = -\eta\nabla\mathcal L` exactly, so the C-NFC after one step differs from this
    value only through :math:`K_1 - K_0 = O(\eta)` (sheet sec. 6.3: within 0.002 at :math:`\eta = 0.05`).

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import MLP, Network
    >>> X = np.random.default_rng(0).standard_normal((30, 5)); y = chain_monomial(X, 3)
    >>> mlp = MLP.sample(Network(3, "relu", width=64), d=5, seed=1, bias=False)
    >>> c0 = cnfc_early(mlp, X, y, [1, 2])
    >>> mlp1 = gd_step(mlp, mlp.grads(X, y)[1], lr=1e-5)   # one tiny GD step
    >>> bool(np.allclose(c0, [cnfc(mlp1, mlp, X, 1), cnfc(mlp1, mlp, X, 2)], atol=1e-5))
    True
    """
    _check_mlp(mlp)
    if form not in ("sample", "operator"):
        raise ValueError(f"form must be 'sample' or 'operator', got {form!r}")
    X = mlp.check_inputs(X)
    ls, scalar = _layers(l, mlp.net.depth)
    n, o = X.shape[0], mlp.outputs
    if form == "operator":
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
        if form == "operator":
            Dm = np.swapaxes(D, 1, 2).reshape(S, n * o, -1)
            out.append(cnfc_early_kernels(G, np.matmul(Dm, np.swapaxes(Dm, -1, -2)), R, force=True))
            continue
        g = np.einsum("sia,sain->sin", R, D)  # residual-seeded backward vectors (S, n, N_k)
        U = np.matmul(g, np.swapaxes(g, -1, -2))
        C = np.matmul(D.reshape(S, o * n, -1), np.swapaxes(g, -1, -2))  # delta^a(x_i) . g(x_j)
        V = np.matmul(np.swapaxes(C, -1, -2), C)
        out.append(_early_rho(G, U, V))
    res = np.stack([np.asarray(v, dtype=np.float64).reshape(S) for v in out], axis=-1)  # (S, len)
    res = res[..., 0] if scalar else res
    res = mlp.unstack(res)
    return float(res) if np.ndim(res) == 0 else res


def cnfc_early_infinite(X, y, l, net: Network):
    r"""Infinite-width early-time C-NFC of every requested layer, from the NNGP and backward kernel recursions.

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like, shape (n,) or (n, o)
        Loss derivative direction at :math:`f_0 = 0`: the targets for MSE (sign and scale cancel); for
        cross-entropy pass ``Y - 1/o``.
    l : int or sequence of int
        Layer(s) ``1..L``.
    net : Network
        Depth, activation, ``sigma_w2``, ``sigma_b2``. Width and parameterization are ignored: the PTK Gram and the
        layer-input Gram are functions of the network function only.

    Returns
    -------
    float or ndarray (len(l),)

    Notes
    -----
    Sheet sec. 2.1, "infinite-width prediction" (derived from seed 001 line 183, eq. (7): the covariance term
    vanishes in the NTK regime). As the width grows at fixed ``n``, :math:`H_{l-1}H_{l-1}^\top/N_{l-1}\to
    (\Sigma_l-\sigma_b^2)/\sigma_w^2` (:math:`XX^\top/d` for ``l = 1``) and :math:`\mathcal P_l\to\mathfrak B_l =
    \prod_{k>l}\dot\Sigma_k`, the backward kernel of :func:`meanfield.kernels`, with different outputs
    decorrelated (:math:`\mathcal P_l\to\mathfrak B_l\otimes I_o`). With :math:`f_0\approx0` (small readout) the
    sample-space form of :func:`cnfc_early_kernels` becomes deterministic:
    :math:`U = \mathfrak B_l\odot yy^\top`, :math:`V = \mathfrak B_l^2\odot yy^\top`. The readout layer gives 1.
    Checked against the Monte Carlo mean of :func:`cnfc_early` at width 4096 (sheet sec. 6.3).

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import Network
    >>> X = np.random.default_rng(0).standard_normal((20, 4))
    >>> c = cnfc_early_infinite(X, np.sign(X[:, 0] * X[:, 1]), [1, 2, 3], Network(3))
    >>> c.round(4).tolist()               # the readout (layer 3) is trivially 1
    [0.9462, 0.981, 1.0]
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a meanfield.Network, got {type(net).__name__}")
    ls, scalar = _layers(l, net.depth)
    y = np.asarray(y, dtype=np.float64)
    Y = y[:, None] if y.ndim == 1 else y
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or Y.ndim != 2 or Y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have shape (n,) or (n, o) with n = X.shape[0]; got X {X.shape}, y {y.shape}")
    if not np.all(np.isfinite(Y)):
        raise ValueError("y must contain only finite numbers")
    limit = dataclasses.replace(net, parameterization="ntk", width=None)
    k = kernels(X, limit, layers=list(ls))
    T = Y @ Y.T
    out = np.empty(len(ls))
    for j, lay in enumerate(ls):
        i = k.layer(lay)
        G = (k.nngp_layers[i] - net.sigma_b2) / net.sigma_w2
        B = k.backward[i]
        out[j] = _early_rho(G, B * T, (B @ B) * T)
    return float(out[0]) if scalar else out


# ----------------------------------------------------------------------------------------------------------------
# one-hidden-layer quadratic network (sheet sec. 2.2)
# ----------------------------------------------------------------------------------------------------------------
def quadratic_r_moments(W, a, order: int = 4) -> np.ndarray:
    r"""Moments :math:`r_j = \tau(R^j) = \frac1d\operatorname{tr}R^j` of :math:`R = W^\top\mathrm{diag}(a)^2W`.

    Parameters
    ----------
    W : array_like, shape (k, d)
        First-layer weights of :math:`f(x) = a^\top(Wx)^2`.
    a : array_like, shape (k,)
        Readout weights.
    order : int
        Highest moment (default 4, what :func:`quadratic_free_cnfc` needs).

    Returns
    -------
    ndarray, shape (order,)
        :math:`r_1, \dots, r_{\rm order}`.

    Notes
    -----
    Sheet sec. 2.2; seed 001 eq. (14). For :math:`a\sim\mathcal N(0, I)`, :math:`W\sim\mathcal N(0, 1/k)`:
    :math:`\mathbb E r_1 = 1`, :math:`\mathbb E r_2 = (k-1)/k + 3(d+2)/k`. Use the sample moments of the actual
    network (heavy :math:`a^4` tail).

    Examples
    --------
    >>> quadratic_r_moments([[1.0, 0.0], [0.0, 2.0]], [1.0, 1.0]).tolist()
    [2.5, 8.5, 32.5, 128.5]
    """
    W = np.asarray(W, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    if W.ndim != 2 or a.shape != (W.shape[0],):
        raise ValueError(f"W must be (k, d) and a (k,), got {W.shape} and {a.shape}")
    order = _count(order, "order")
    R = W.T @ (a[:, None] ** 2 * W)
    ev = np.linalg.eigvalsh(R)
    return np.array([np.mean(ev**j) for j in range(1, order + 1)])


def _quadratic_data(X, y):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must contain only finite numbers")
    A1 = X.T @ (y[:, None] * X)
    return A1, X.T @ X


def quadratic_free_cnfc(X, y, r_moments, form: str = "corrected") -> float:
    r"""Free-probability prediction of the early-time C-NFC of :math:`f(x) = a^\top(Wx)^2` (seed 001 App. E).

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
        Labels (the loss derivative at :math:`f_0 = 0`).
    r_moments : array_like, shape (4,)
        :math:`r_j = \tau(R^j)`, ``j = 1..4`` (:func:`quadratic_r_moments` of a network, or their expectations).
    form : {"corrected", "seed"}
        ``"corrected"`` (default): seed eq. (26) with its last term corrected to
        :math:`\tau(B)^2\tau(\bar A^2)r_2^2` (sheet sec. 2.2, erratum 10). ``"seed"``: as printed,
        :math:`\tau(\bar A)^2\tau(B^2)r_2^2\equiv0`.

    Returns
    -------
    float
        :math:`\text{num}/\sqrt{\text{den}_1\text{den}_2}`.

    Notes
    -----
    With :math:`A_1 = X^\top YX`, :math:`A = A_1^2`, :math:`B = X^\top X`, :math:`\tau = \frac1d\operatorname{tr}`,
    :math:`\bar M = M - \tau(M)I`, :math:`a = \tau(A)`, :math:`b = \tau(B)`, and :math:`R` free from
    :math:`\{A, B\}` (seed Assumptions 5-7):

    .. math::
        \text{num} &= a^2b\,r_3 + 2a\,r_1r_2\,\tau(\bar A\bar B) + b\,r_1r_2\,\tau(\bar A^2)
        + r_1^3\,\tau(\bar A^2\bar B)\quad\text{(eq. (18))},\\
        \text{den}_1 &= \tau(A^2)r_1^2 + a^2r_2 - a^2r_1^2 \quad\text{(eq. (20))},\\
        \text{den}_2 &= r_1^4\tau((\bar A\bar B)^2) + 2r_1^2(r_2-r_1^2)\tau(\bar A\bar B)^2
        + 2r_1^2r_2\,(b\,\tau(\bar A^2\bar B) + a\,\tau(\bar A\bar B^2)) + 4ab\,r_1r_3\,\tau(\bar A\bar B)
        + a^2b^2r_4 + a^2r_2^2\tau(\bar B^2) + b^2r_2^2\tau(\bar A^2)\quad\text{(eq. (26), corrected)}.

    These approximate :math:`\tau(ARARBR)`, :math:`\tau(ARAR)`, :math:`\tau(ARBRARBR)`, the exact early-time
    C-NFC of the quadratic net with :math:`\mathcal P\propto XRX^\top` (eq. (8), erratum 8 for its exponents).
    The printed eq. (26) overshoots by 0.07-0.08 on near-isotropic data (sheet sec. 6.3).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((30, 12)); y = np.sign(X[:, 0])
    >>> r = [1.0, 1.0, 1.0, 1.0]          # R = I is free from everything: the formula is exact
    >>> exact = cnfc_early_kernels(X @ X.T, X @ X.T, y)
    >>> bool(abs(quadratic_free_cnfc(X, y, r) - exact) < 1e-12), round(exact, 4)
    (True, 0.9647)
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    r = np.asarray(r_moments, dtype=np.float64)
    if r.shape != (4,) or not np.all(np.isfinite(r)) or r[0] <= 0:
        raise ValueError(f"r_moments must be 4 finite moments tau(R^j) with r_1 > 0, got {r_moments!r}")
    r1, r2, r3, r4 = r
    A1, B = _quadratic_data(X, y)
    d = B.shape[0]
    A = A1 @ A1
    tau = lambda M: np.trace(M) / d  # noqa: E731
    a, b = tau(A), tau(B)
    Ab, Bb = A - a * np.eye(d), B - b * np.eye(d)
    AB = Ab @ Bb
    t_AB, t_A2, t_B2 = tau(AB), tau(Ab @ Ab), tau(Bb @ Bb)
    t_A2B, t_AB2, t_ABAB = tau(Ab @ AB), tau(AB @ Bb), tau(AB @ AB)
    num = a * a * b * r3 + 2 * a * r1 * r2 * t_AB + b * r1 * r2 * t_A2 + r1**3 * t_A2B
    den1 = tau(A @ A) * r1**2 + a * a * r2 - a * a * r1**2
    last = b * b * r2 * r2 * t_A2 if form == "corrected" else 0.0  # printed: tau(A-bar)^2 tau(B^2) r2^2 = 0
    den2 = (
        r1**4 * t_ABAB
        + 2 * r1**2 * (r2 - r1**2) * t_AB**2
        + 2 * r1**2 * r2 * (b * t_A2B + a * t_AB2)
        + 4 * a * b * r1 * r3 * t_AB
        + a * a * b * b * r4
        + a * a * r2 * r2 * t_B2
        + last
    )
    if den1 <= 0 or den2 <= 0:
        return float("nan")
    return float(num / np.sqrt(den1 * den2))


def quadratic_expected_second_derivatives(X, y, k: int, form: str = "corrected"):
    r"""Expected second time derivatives of the centered NFM and AGOP of :math:`f = a^\top(Wx)^2` (Prop. 8).

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    k : int
        Width; :math:`a\sim\mathcal N(0, I_k)`, rows of :math:`W\sim\mathcal N(0, I_d/k)`.
    form : {"corrected", "seed"}
        ``"corrected"`` (default, sheet sec. 2.2, erratum 11) or the printed Prop. 8.

    Returns
    -------
    nfm, agop : ndarray, shape (d, d)
        :math:`\mathbb E[X^\top Y\mathcal PYX]` and :math:`\mathbb E[X^\top Y\mathcal P^2YX]` for
        :math:`\mathcal P = XRX^\top`, :math:`R = W^\top\operatorname{diag}(a^2)W` (the PTK Gram without its
        constant factor 4), :math:`Y = \operatorname{diag}(y)`.

    Notes
    -----
    With :math:`A_1 = X^\top YX` and :math:`B = X^\top X`: :math:`\mathbb E[R] = I_d`, so the NFM part is
    :math:`A_1^2` (as printed), and by Wick's theorem including the :math:`s_1\neq s_2` terms and the
    :math:`1/k^2` of :math:`\operatorname{Var}W`,

    .. math:: \mathbb E[RBR] = (1+\tfrac5k)B + \tfrac3k\operatorname{tr}(B)I_d,\qquad
              \mathbb E[X^\top Y\mathcal P^2YX] = (1+\tfrac5k)A_1BA_1 + \tfrac3k\operatorname{tr}(B)A_1^2 .

    The seed (App. F, line 565) prints :math:`3\operatorname{tr}(B)A_1^2 + 6A_1BA_1`, which keeps only
    :math:`s_1 = s_2` and drops the :math:`1/k^2` (and has a Wick index slip, erratum 12).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.eye(2); y = np.array([1.0, -1.0])
    >>> nfm, agop = quadratic_expected_second_derivatives(X, y, k=5)
    >>> nfm.tolist(), agop.tolist()       # (1 + 5/5) * 1 + (3/5) * 2 = 3.2
    ([[1.0, 0.0], [0.0, 1.0]], [[3.2, 0.0], [0.0, 3.2]])
    """
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    k = _count(k, "k")
    A1, B = _quadratic_data(X, y)
    A1sq = A1 @ A1
    ABA = A1 @ B @ A1
    trB = np.trace(B)
    if form == "corrected":
        return A1sq, (1 + 5 / k) * ABA + (3 / k) * trB * A1sq
    return A1sq, 3 * trB * A1sq + 6 * ABA


# ----------------------------------------------------------------------------------------------------------------
# targets
# ----------------------------------------------------------------------------------------------------------------
def egop(grad, X) -> np.ndarray:
    r"""Expected (empirical) gradient outer product :math:`\frac1n\sum_i\nabla y(x_i)\nabla y(x_i)^\top`.

    Parameters
    ----------
    grad : callable or array_like
        ``grad(X) -> (n, d)`` gradients of the target at the rows of ``X``, or the ``(n, d)`` array itself.
    X : array_like, shape (n, d)

    Returns
    -------
    ndarray, shape (d, d)

    Notes
    -----
    Seed 001 line 68 and glossary item 1 (sheet sec. 2 table): the Monte Carlo estimate of
    :math:`\mathbb E_{x\sim\mu}[\nabla y\nabla y^\top]`.

    Examples
    --------
    >>> import numpy as np
    >>> egop(lambda X: 2 * X, np.eye(2)).tolist()
    [[2.0, 0.0], [0.0, 2.0]]
    """
    X = np.asarray(X, dtype=np.float64)
    Gr = np.asarray(grad(X) if callable(grad) else grad, dtype=np.float64)
    if X.ndim != 2 or Gr.shape != X.shape:
        raise ValueError(f"the gradients must have the shape of X {X.shape}, got {Gr.shape}")
    return Gr.T @ Gr / X.shape[0]


def chain_monomial(X, r: int, gradient: bool = False):
    r"""Chain-monomial target :math:`y = \sum_{k=1}^r x_k x_{k+1}` (indices mod ``r``, :math:`x_{r+1}\equiv x_1`).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs, ``d >= r``.
    r : int
        Rank, ``2 <= r <= d``.
    gradient : bool
        Also return :math:`\nabla y` with :math:`\partial y/\partial x_j = x_{j-1} + x_{j+1}` (``j <= r``).

    Returns
    -------
    y : ndarray (n,)
    grad : ndarray (n, d), only if ``gradient``

    Notes
    -----
    Seed 001 eq. (2), lines 74-76 (sheet sec. 2). Seed 001 App. I rescales ``y`` to unit standard deviation;
    do that yourself (``y / y.std()``). For ``r = 2`` the two terms coincide (:math:`y = 2x_1x_2`).

    Examples
    --------
    >>> chain_monomial([[1.0, 2.0, 3.0]], 3).tolist()      # 1*2 + 2*3 + 3*1
    [11.0]
    """
    X = np.asarray(X, dtype=np.float64)
    r = _count(r, "r")
    if X.ndim != 2 or not 2 <= r <= X.shape[1]:
        raise ValueError(f"X must be (n, d) with d >= r >= 2; got shape {X.shape} and r = {r}")
    Z = X[:, :r]
    nxt = np.roll(Z, -1, axis=1)
    y = np.sum(Z * nxt, axis=1)
    if not gradient:
        return y
    g = np.zeros_like(X)
    g[:, :r] = nxt + np.roll(Z, 1, axis=1)
    return y, g


def chain_monomial_egop(d: int, r: int) -> np.ndarray:
    r"""Exact EGOP of :func:`chain_monomial` under :math:`x\sim\mathcal N(0, I_d)`.

    Parameters
    ----------
    d, r : int
        Input dimension and rank, ``2 <= r <= d``.

    Returns
    -------
    ndarray, shape (d, d)
        Zero outside the leading ``r x r`` block; inside, :math:`\mathbb E[(x_{i-1}+x_{i+1})(x_{j-1}+x_{j+1})]`:
        diagonal 2, entries 1 at cyclic distance 2, 0 at distance 1 (sheet sec. 2; the seed's "1 or 0" at line 76).

    Notes
    -----
    The block is circulant with eigenvalues :math:`2 + 2\cos(4\pi m/r)`: rank ``r`` for odd ``r`` (rank 5 for the
    seed's ``r = 5``), rank ``r/2`` for even ``r`` (``r = 4``: entries 2 at distance 2, rank 2). For ``r = 3``
    distance 2 is distance 1 (all off-diagonals 1); for ``r = 2`` the matrix is ``4 * ones``.

    Examples
    --------
    >>> chain_monomial_egop(5, 5)[0].tolist()
    [2.0, 0.0, 1.0, 1.0, 0.0]
    """
    d, r = _count(d, "d"), _count(r, "r")
    if not 2 <= r <= d:
        raise ValueError(f"need 2 <= r <= d, got r = {r}, d = {d}")
    S = np.roll(np.eye(r), 1, axis=1) + np.roll(np.eye(r), -1, axis=1)  # grad = S x (restricted to the block)
    E = np.zeros((d, d))
    E[:r, :r] = S @ S.T
    return E
