r"""Early-time centered NFC: the exact sample-space formula and its infinite-width limit (Beaglehole et al. 2024).

Under gradient flow :math:`\bar W_l(0) = 0`, so the centered NFM and AGOP start with their second time derivatives
(Beaglehole et al. 2024, Prop. 3, eq. (5)); their correlation is the :math:`t\to0^+` limit of the C-NFC, eq. (6).
This module holds that limit as pure functions of arrays and of the network spec:

* :func:`cnfc_early_kernels`: eq. (6) from the layer-input Gram, the PTK Gram and the loss derivative, in an
  :math:`O(n^3)` sample-space form that does not depend on the width (derived here);
* :func:`cnfc_early_infinite`: its infinite-width limit from the NNGP and backward kernel recursions of
  :func:`meanfield.kernels` (derived here).

The measurement on a finite network, :func:`meanfield.nfa.cnfc_early`, lives in :mod:`meanfield.nfa.measures`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._checks import check_layers, check_memory, check_operator_size, finite_array
from ..alignment.measures import pow2_scaled
from ..network import Network
from ..propagation.dataset import kernels, kernels_nbytes


def trace_prod(A, B):
    """``tr(A B)`` for symmetric ``A, B`` over the last two axes."""
    return np.sum(A * np.swapaxes(B, -1, -2), axis=(-2, -1))


def early_rho(G, U, V):
    """``tr(UGVG) / sqrt(tr(UGUG) tr(VGVG))`` over the last two axes (all symmetric ``n x n``); ``nan`` at 0/0.

    Scale-free in each of ``G, U, V``: each is first scaled exactly by a power of two to a largest entry in
    ``[0.5, 1)`` (and so are the products), so no trace over- or underflows."""
    G, U, V = (pow2_scaled(np.asarray(A, dtype=np.float64))[0] for A in (G, U, V))
    UG, VG = pow2_scaled(np.matmul(U, G))[0], pow2_scaled(np.matmul(V, G))[0]
    num = trace_prod(UG, VG)
    d1, d2 = trace_prod(UG, UG), trace_prod(VG, VG)
    ok = (d1 > 0) & (d2 > 0)
    out = np.where(ok, num / (np.sqrt(np.where(ok, d1, 1.0)) * np.sqrt(np.where(ok, d2, 1.0))), np.nan)
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
    Beaglehole et al. 2024, Prop. 3 and eq. (6); the sample-space form is derived here. Under gradient flow
    :math:`\bar W(0) = 0`, so the first non-zero derivatives of the centered NFM and AGOP are
    :math:`\dot W^\top\dot W = H^\top U H` and :math:`\dot W^\top K\dot W \propto H^\top V H` with
    :math:`U = M^\top\mathcal PM`, :math:`V = M^\top\mathcal P^2M` and :math:`M[(i,a), j] = \delta_{ij}R_{ia}`
    (for ``o = 1``, :math:`M = S = \operatorname{diag}(R)`). Hence, exactly,

    .. math::
        \mathrm{CNFC}_l(0^+) = \frac{\operatorname{tr}(UGVG)}{\sqrt{\operatorname{tr}(UGUG)\operatorname{tr}(VGVG)}},

    an :math:`O(n^3)` computation independent of the width. ``nan`` if a denominator vanishes. The published
    App. E restatement, eq. (8), puts the exponents :math:`-1/2` on factors of the denominator of a fraction; the
    value meant (and computed here) is eq. (6)'s product of the numerator with both factors to the power
    :math:`-1/2`.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((6, 3))
    >>> G = X @ X.T
    >>> round(cnfc_early_kernels(G, np.eye(6), X[:, 0]), 12)    # P a projector: exactly 1 (sec. 3.1)
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
    return early_rho(G, U, V)


def cnfc_early_infinite(net: Network, X, y, l):
    r"""Infinite-width early-time C-NFC of every requested layer, from the NNGP and backward kernel recursions.

    Parameters
    ----------
    net : Network
        Depth, activation, ``sigma_w2``, ``sigma_b2``. Width and parameterization are ignored: the PTK Gram and the
        layer-input Gram are functions of the network function only.
    X : array_like, shape (n, d)
    y : array_like, shape (n,) or (n, o)
        Loss derivative direction at :math:`f_0 = 0`: the targets for MSE (sign and scale cancel); for
        cross-entropy pass ``Y - 1/o``.
    l : int or sequence of int
        Layer(s) ``1..L``.

    Returns
    -------
    float or ndarray (len(l),)

    Notes
    -----
    Derived here from the remark after Beaglehole et al. 2024, eq. (7) (in the NTK regime the covariance term of
    eq. (7) vanishes, so the mean PTK decides). As the width grows at fixed ``n``,
    :math:`H_{l-1}H_{l-1}^\top/N_{l-1}\to(\Sigma_l-\sigma_b^2)/\sigma_w^2` (:math:`XX^\top/d` for ``l = 1``) and
    :math:`\mathcal P_l\to\mathfrak B_l = \prod_{k>l}\dot\Sigma_k`, the backward kernel of
    :func:`meanfield.kernels`, with different outputs decorrelated (:math:`\mathcal P_l\to\mathfrak B_l\otimes
    I_o`). With :math:`f_0\approx0` (small readout) the sample-space form of :func:`cnfc_early_kernels` becomes
    deterministic: :math:`U = \mathfrak B_l\odot yy^\top`, :math:`V = \mathfrak B_l^2\odot yy^\top`. The readout
    layer gives 1. Checked against the Monte Carlo mean of :func:`meanfield.nfa.cnfc_early` at width 4096
    (tests/test_nfa.py).

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import Network
    >>> X = np.random.default_rng(0).standard_normal((20, 4))
    >>> c = cnfc_early_infinite(Network(3), X, np.sign(X[:, 0] * X[:, 1]), [1, 2, 3])
    >>> c.round(4).tolist()               # the readout (layer 3) is trivially 1
    [0.9462, 0.981, 1.0]
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a meanfield.Network, got {type(net).__name__}")
    ls, single = check_layers(l, net.depth)
    X = finite_array(X, "X", ndim=(2,))
    Y = finite_array(y, "y", ndim=(1, 2))
    Y = Y[:, None] if Y.ndim == 1 else Y
    if Y.shape[0] != X.shape[0]:
        raise ValueError(f"y must have shape (n,) or (n, o) with n = X.shape[0]; got X {X.shape}, y {Y.shape}")
    n = X.shape[0]
    check_memory(kernels_nbytes(n, n, X.shape[1], net.depth, len(ls)) + 8.0 * 10 * n * n,
                 f"the early-time C-NFC of {len(ls)} layer(s) on n = {n} inputs",
                 "use fewer inputs (samples) or fewer layers")  # fmt: skip
    limit = dataclasses.replace(net, parameterization="ntk", width=None)
    k = kernels(X, limit, layers=list(ls))
    T = Y @ Y.T
    out = np.empty(len(ls))
    for j, lay in enumerate(ls):
        i = k.layer(lay)
        G = (k.nngp_layers[i] - net.sigma_b2) / net.sigma_w2
        B = k.backward[i]
        out[j] = early_rho(G, B * T, (B @ B) * T)
    return float(out[0]) if single else out
