"""Small input factories shared by the test modules (import as ``from helpers import ...``)."""

import numpy as np

from meanfield.data import to_sphere


def inputs_at_correlations(rhos, d=8, seed=0):
    """x0 with ||x0||^2 = d, then one partner per rho with correlation rho to x0 (same norm), stacked as rows."""
    rng = np.random.default_rng(seed)
    x0 = to_sphere(rng.standard_normal((1, d)))[0]
    v = rng.standard_normal(d)
    v -= (v @ x0) / d * x0
    v = to_sphere(v[None])[0]
    return np.stack([x0] + [rho * x0 + np.sqrt(1 - rho**2) * v for rho in rhos])
