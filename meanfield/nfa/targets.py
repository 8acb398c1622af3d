r"""Targets of the neural feature ansatz experiments: the expected gradient outer product and chain monomials.

Beaglehole et al. 2024, sec. 2.1: the EGOP :math:`\mathbb E_{x\sim\mu}[\nabla y\nabla y^\top]` of a target holds its
task-specific low-rank structure, and the chain-monomial task (its eq. (2)) has a known EGOP. Their App. F builds
the *alignment reversing* data set (:func:`alignment_reversing`), on which the early-time C-NFC is small.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int, check_real, check_seed, finite_array


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
    Beaglehole et al. 2024, sec. 2.1 and App. A, item 1: the Monte Carlo estimate of
    :math:`\mathbb E_{x\sim\mu}[\nabla y\nabla y^\top]`.

    Examples
    --------
    >>> import numpy as np
    >>> egop(lambda X: 2 * X, np.eye(2)).tolist()
    [[2.0, 0.0], [0.0, 2.0]]
    """
    X = finite_array(X, "X")
    Gr = finite_array(grad(X) if callable(grad) else grad, "grad")
    if X.ndim != 2 or Gr.shape != X.shape:
        raise ValueError(f"the gradients must have the shape of X {X.shape}, got {Gr.shape}")
    return Gr.T @ Gr / X.shape[0]


def _chain_block(X, r):
    """The leading ``r`` coordinates of ``X`` and their cyclic successors, after checking ``2 <= r <= d``."""
    X = finite_array(X, "X")
    r = check_int(r, "r")
    if X.ndim != 2 or not 2 <= r <= X.shape[1]:
        raise ValueError(f"X must be (n, d) with d >= r >= 2; got shape {X.shape} and r = {r}")
    Z = X[:, :r]
    return X, Z, np.roll(Z, -1, axis=1)


def chain_monomial(X, r: int) -> np.ndarray:
    r"""Chain-monomial target :math:`y = \sum_{k=1}^r x_k x_{k+1}` (indices mod ``r``, :math:`x_{r+1}\equiv x_1`).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs, ``d >= r``.
    r : int
        Rank, ``2 <= r <= d``.

    Returns
    -------
    ndarray (n,)

    Notes
    -----
    Beaglehole et al. 2024, eq. (2). Its App. I rescales ``y`` to unit standard deviation; do that yourself
    (``y / y.std()``). For ``r = 2`` the two terms coincide (:math:`y = 2x_1x_2`). The gradient is
    :func:`chain_monomial_gradient`.

    Examples
    --------
    >>> chain_monomial([[1.0, 2.0, 3.0]], 3).tolist()      # 1*2 + 2*3 + 3*1
    [11.0]
    """
    _, Z, nxt = _chain_block(X, r)
    return np.sum(Z * nxt, axis=1)


def chain_monomial_gradient(X, r: int) -> np.ndarray:
    r"""Gradient of :func:`chain_monomial`: :math:`\partial y/\partial x_j = x_{j-1} + x_{j+1}` for ``j <= r``.

    Parameters
    ----------
    X : array_like, shape (n, d)
    r : int
        Rank, ``2 <= r <= d``.

    Returns
    -------
    ndarray (n, d)
        Zero in the columns ``j > r``.

    Examples
    --------
    >>> chain_monomial_gradient([[1.0, 2.0, 3.0, 4.0]], 3).tolist()
    [[5.0, 4.0, 3.0, 0.0]]
    """
    X, Z, nxt = _chain_block(X, r)
    g = np.zeros_like(X)
    g[:, : Z.shape[1]] = nxt + np.roll(Z, 1, axis=1)
    return g


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
        diagonal 2, entries 1 at cyclic distance 2, 0 at distance 1 (derived here; Beaglehole et al. 2024 says
        "either 1 or 0" after eq. (2)).

    Notes
    -----
    The block is circulant with eigenvalues :math:`2 + 2\cos(4\pi m/r)`: rank ``r`` for odd ``r`` (rank 5 for the
    paper's ``r = 5``), rank ``r/2`` for even ``r`` (``r = 4``: entries 2 at distance 2, rank 2). For ``r = 3``
    distance 2 is distance 1 (all off-diagonals 1); for ``r = 2`` the matrix is ``4 * ones``.

    Examples
    --------
    >>> chain_monomial_egop(5, 5)[0].tolist()
    [2.0, 0.0, 1.0, 1.0, 0.0]
    """
    d, r = check_int(d, "d"), check_int(r, "r")
    if not 2 <= r <= d:
        raise ValueError(f"need 2 <= r <= d, got r = {r}, d = {d}")
    S = np.roll(np.eye(r), 1, axis=1) + np.roll(np.eye(r), -1, axis=1)  # grad = S x (restricted to the block)
    E = np.zeros((d, d))
    E[:r, :r] = S @ S.T
    return E


def alignment_reversing(
    n: int, d: int, balance: float, eps1: float = 0.5, eps2: float = 1e-2, scale: float = 1.0, seed=None
):
    r"""The alignment reversing data set of Beaglehole et al. 2024 (sec. 4.2, App. F).

    Parameters
    ----------
    n, d : int
        Number of samples (``n >= 2``) and input dimension.
    balance : float
        :math:`\gamma \in (0, 1)`: the fraction of samples in the first class (label 1); ``n_1 = round(gamma n)``
        is clipped to ``1..n-1``.
    eps1 : float
        :math:`\epsilon_1 > 0`: the first class is :math:`\mathcal N(0, \mathbf 1\mathbf 1^\top + \epsilon_1 I)`
        (paper: 0.5).
    eps2 : float
        :math:`\epsilon_2 \ge 0`: standard deviation of the Gaussian noise added to every input (paper: 0.01).
    scale : float
        :math:`c > 0` multiplying the Gaussian samples (:math:`X^{(1)}` and :math:`\tilde X_2`). The paper does not
        state the scale of its data; 1 (default) is the construction as written.
    seed : None or int

    Returns
    -------
    X : ndarray, shape (n, d)
        Rows ``0..n_1-1`` are :math:`X^{(1)}`, the rest :math:`X^{(2)}`.
    y : ndarray, shape (n,)
        :math:`1 + 10^{-5}` on the first class, :math:`10^{-5}` on the second.

    Notes
    -----
    App. F: with the SVD :math:`X^{(1)\top}X^{(1)} = U_1S_1U_1^\top` and the left singular vectors :math:`V_2` of a
    fresh sample :math:`\tilde X_2` of ``n - n_1`` rows from the first class's distribution,
    :math:`X^{(2)} = V_2S_1^{-1}U_1^\top`, so that :math:`X^{(2)\top}X^{(2)} = (X^{(1)\top}X^{(1)})^{-2}`; then
    :math:`X \leftarrow X + \epsilon_2 Z` and :math:`y \leftarrow y + 10^{-5}\mathbf 1`. The paper does not say what
    to do when the ranks differ (``n_1 < d`` or ``n - n_1 < n_1``); here the construction keeps the
    :math:`r = \min(n_1, n - n_1, d)` leading singular directions (reduced SVDs), which gives
    :math:`X^{(2)\top}X^{(2)} = U_{1,r}S_{1,r}^{-2}U_{1,r}^\top` exactly before the noise. The paper's argument
    (:math:`X^\top X \approx X^{(2)\top}X^{(2)}`) needs :math:`X^{(1)\top}X^{(1)}` to be small, which depends on
    ``scale``; at ``scale = 1`` the direction :math:`\mathbf 1` dominates every matrix involved. Cost: two SVDs,
    :math:`O(n d \min(n, d))`.

    Examples
    --------
    >>> X, y = alignment_reversing(40, 8, 0.25, eps2=0.0, seed=0)
    >>> X.shape, int((y > 0.5).sum())
    ((40, 8), 10)
    >>> A = X[:10].T @ X[:10]; B = X[10:].T @ X[10:]
    >>> bool(np.allclose(B @ A @ A, np.eye(8)))      # X2^T X2 = (X1^T X1)^(-2) when n_1 >= d
    True
    """
    n = check_int(n, "n", 2)
    d = check_int(d, "d", 1)
    balance = check_real(balance, "balance", low=0.0, high=1.0, low_open=True, high_open=True)
    eps1 = check_real(eps1, "eps1", low=0.0, low_open=True)
    eps2 = check_real(eps2, "eps2", low=0.0)
    scale = check_real(scale, "scale", low=0.0, low_open=True)
    rng = np.random.default_rng(check_seed(seed))
    n1 = min(max(int(round(balance * n)), 1), n - 1)
    n2 = n - n1

    def sample(m):  # N(0, 1 1^T + eps1 I): a shared standard normal along 1 plus isotropic noise
        return scale * (rng.standard_normal((m, 1)) + np.sqrt(eps1) * rng.standard_normal((m, d)))

    X1 = sample(n1)
    _, s1, u1t = np.linalg.svd(X1, full_matrices=False)  # X1^T X1 = U1 diag(s1^2) U1^T
    v2 = np.linalg.svd(sample(n2), full_matrices=False)[0]
    r = min(n1, n2, d)
    X2 = v2[:, :r] @ (u1t[:r] / s1[:r, None] ** 2)
    X = np.vstack([X1, X2]) + eps2 * rng.standard_normal((n, d))
    y = np.r_[np.ones(n1), np.zeros(n2)] + 1e-5
    return X, y
