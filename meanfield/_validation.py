"""Input checks shared by the public functions (errors name the parameter and what is allowed)."""

from __future__ import annotations

import numbers

import numpy as np

#: Largest operator-valued kernel (entries of an ``(n o) x (n o)`` matrix) formed without ``force=True``:
#: 2e8 float64 entries = 1.6 GB (feature_alignment.md sec. 5.1).
MAX_OPERATOR_ENTRIES = 200_000_000


def finite_array(x, name: str, ndim=None) -> np.ndarray:
    """``x`` as a float64 array, refusing NaN/inf and (optionally) dimensions outside ``ndim``."""
    arr = np.asarray(x, dtype=np.float64)
    if ndim is not None and arr.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_operator_size(n: int, o: int, force: bool = False, limit: int = MAX_OPERATOR_ENTRIES) -> int:
    """Refuse to form an operator-valued kernel of ``(n o)^2`` entries above ``limit`` unless ``force``.

    Parameters
    ----------
    n, o : int
        Number of samples and of outputs; the kernel is ``(n o) x (n o)`` (seed 000 eq. (7), sheet sec. 1.4).
    force : bool
        Skip the check.
    limit : int
        Maximum number of entries, default :data:`MAX_OPERATOR_ENTRIES` (2e8, 1.6 GB in float64).

    Returns
    -------
    int
        The number of entries ``(n o)^2``.

    Notes
    -----
    Feature_alignment.md sec. 5.1: the operator-valued layer kernel grows like ``(n o)^2``; the class-traced
    ``(n, n)`` kernel (seed 002 eq. (8)) or the sample-space forms of this module avoid it.

    Examples
    --------
    >>> check_operator_size(100, 10)
    1000000
    >>> check_operator_size(20_000, 10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: an operator-valued kernel of (n o)^2 = 40000000000 entries (n = 20000, o = 10) exceeds the limit ...
    """
    n, o = _count(n, "n"), _count(o, "o")
    size = (n * o) ** 2
    if not force and size > limit:
        raise ValueError(
            f"an operator-valued kernel of (n o)^2 = {size} entries (n = {n}, o = {o}) exceeds the limit of "
            f"{limit} entries ({limit * 8 / 1e9:.2g} GB); use the class-traced (n, n) kernel, fewer samples, "
            "or force=True"
        )
    return size
