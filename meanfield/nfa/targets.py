r"""Targets of the neural feature ansatz experiments: the expected gradient outer product and chain monomials.

Beaglehole et al. 2024, sec. 2.1: the EGOP :math:`\mathbb E_{x\sim\mu}[\nabla y\nabla y^\top]` of a target holds its
task-specific low-rank structure, and the chain-monomial task (its eq. (2)) has a known EGOP.
"""

from __future__ import annotations

import numpy as np

from .._checks import check_int, finite_array


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
