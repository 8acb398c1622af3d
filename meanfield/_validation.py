"""Input checks shared by the public functions (errors name the parameter and what is allowed)."""

from __future__ import annotations

import numpy as np


def finite_array(x, name: str, ndim=None) -> np.ndarray:
    """``x`` as a float64 array, refusing NaN/inf and (optionally) dimensions outside ``ndim``."""
    arr = np.asarray(x, dtype=np.float64)
    if ndim is not None and arr.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimension(s), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return arr
