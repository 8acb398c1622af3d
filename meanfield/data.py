r"""Inputs for the theory and the experiments: rows on the sphere, and the bundled digits data set.

The infinite-width theory in this package takes inputs on the sphere :math:`\sqrt d\,\mathbb S^{d-1}`
(:math:`\|x\|^2 = d`, so that :math:`\Sigma_1(x, x) = \sigma_w^2 + \sigma_b^2` for every input), as in
Lou et al. 2022, sec. 3.4. :func:`to_sphere` is the one place that puts rows there.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import check_real, finite_array

__all__ = ["digits", "mnist1d", "to_sphere"]


def to_sphere(X, mean=None, norm2=None, name="X"):
    r"""Rescale every row of ``X`` to the common squared Euclidean norm ``norm2`` (default d), after an optional
    centering.

    Parameters
    ----------
    X : array_like (n, d)
        Inputs, one per row (finite, non-empty).
    mean : array_like (d,), optional
        Subtract this from every row first (e.g. ``X.mean(axis=0)``, or the training set's means for test data).
        Default: no centering.
    norm2 : float, optional
        The squared norm :math:`\|x\|^2` of every output row, > 0. Default: ``d``, the sphere
        :math:`\sqrt d\,\mathbb S^{d-1}`.
    name : str
        Name of ``X`` in error messages.

    Returns
    -------
    ndarray (n, d)
        :math:`\sqrt{\mathrm{norm2}}\,(x - \mu)/\|x - \mu\|` per row (float64, a new array).

    Notes
    -----
    Convention: the Euclidean norm of each row separately; the direction of every (centered) row is kept. A row
    that is zero (after centering) has no direction and raises a ValueError naming the row. The arithmetic is
    ``Z * (sqrt(norm2) / ||Z||)`` per row, so a row that already has the norm comes back unchanged to rounding; each row
    is first scaled exactly by a power of two to a largest entry in ``[0.5, 1)``, so a tiny (1e-200, subnormal) or
    huge (1e300) row is put on the sphere like any other, and only an exactly zero row is refused.
    Lou et al. 2022, sec. 3.4 writes the sphere as :math:`\sqrt d\,\mathbb S^d` but defines it as
    :math:`\{x \in \mathbb R^d: \|x\| = \sqrt d\}`, i.e. :math:`\sqrt d\,\mathbb S^{d-1}`.

    Examples
    --------
    >>> X = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [0.0, 5.0, 1.0]])
    >>> np.round(np.sum(to_sphere(X, mean=X.mean(axis=0)) ** 2, axis=1), 12).tolist()
    [3.0, 3.0, 3.0]
    >>> to_sphere([[3.0, 4.0], [0.0, -2.0]], norm2=1.0).round(12).tolist()
    [[0.6, 0.8], [0.0, -1.0]]
    """
    X = finite_array(X, name, ndim=(2,))
    if X.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {X.shape}")
    d = X.shape[1]
    target = d if norm2 is None else check_real(norm2, "norm2", low=0, low_open=True)
    if mean is None:
        Z = X
    else:
        mu = finite_array(mean, "mean")
        if mu.shape != (d,):
            raise ValueError(f"mean must have shape ({d},), got {mu.shape}")
        Z = X - mu
    top = np.max(np.abs(Z), axis=1, keepdims=True)
    zero = np.flatnonzero(top[:, 0] == 0)
    if zero.size:
        what = "equals the feature mean (zero after centering)" if mean is not None else "is zero"
        raise ValueError(f"row {zero[0]} of {name} {what}: a zero row has no direction")
    Z = np.ldexp(Z, -np.frexp(top)[1])  # exact power-of-two scaling per row: tiny or huge rows keep their norm
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    return Z * (math.sqrt(target) / norms)


def digits(test_size=0.2, seed=0):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), split and put on the sphere.

    Parameters
    ----------
    test_size : float
        Fraction held out, in (0, 1) (stratified split).
    seed : int
        Seed of the split.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Inputs centered with the training means and put on the sphere :math:`\\|x\\|^2 = 64`
        (:func:`to_sphere`), and integer labels 0..9.

    Notes
    -----
    Ships with scikit-learn (no network access); install the optional extra ``meanfield[experiments]``. Centering
    first spreads the pair correlations (raw pixel vectors are all positively correlated).
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ImportError("digits() needs scikit-learn: pip install 'meanfield[experiments]'") from exc
    if not 0.0 < float(test_size) < 1.0:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)
    mu = Xtr.mean(axis=0)
    return to_sphere(Xtr, mu), ytr.astype(np.int64), to_sphere(Xte, mu), yte.astype(np.int64)


def mnist1d(seed=0):
    """MNIST-1D (Greydanus 2020): 5000 one-dimensional digit signals of length 40, 10 classes, 4000/1000 split.

    Parameters
    ----------
    seed : int
        Seed of the generator (the package's default is 42; ``seed`` is added to it, so ``seed=0`` is the
        published data set's generator settings).

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Inputs centered with the training means and put on the sphere :math:`\\|x\\|^2 = 40`
        (:func:`to_sphere`), and integer labels 0..9.

    Notes
    -----
    Generated locally from the package's templates with ``mnist1d.data.make_dataset`` (about 5 s; no download);
    install the optional extra ``meanfield[experiments]``.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:  # pragma: no cover - optional dependency
        raise ImportError("mnist1d() needs the mnist1d package: pip install 'meanfield[experiments]'") from exc
    args = get_dataset_args()
    args.seed = 42 + int(seed)
    d = make_dataset(args)
    Xtr, Xte = np.asarray(d["x"], dtype=np.float64), np.asarray(d["x_test"], dtype=np.float64)
    mu = Xtr.mean(axis=0)
    return to_sphere(Xtr, mu), np.asarray(d["y"], np.int64), to_sphere(Xte, mu), np.asarray(d["y_test"], np.int64)
