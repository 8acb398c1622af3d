"""Cross-check of the dispersion samplers and exact moments against the general finite-network sampler.

:func:`meanfield.simulate` draws every weight matrix explicitly, layer 1 included, and computes the empirical NTK by
its own backpropagation; the projection sampler of :mod:`meanfield.dispersion` never draws a weight matrix.
"""

import math

import numpy as np
import pytest

import meanfield
from meanfield import simulate
from meanfield.dispersion import estimate, ntk_moments, sample_ntk_diagonal


def _network(widths, sigma_w2):
    return meanfield.Network(
        len(widths), "relu", sigma_w2=sigma_w2, sigma_b2=0.0, parameterization="standard", width=tuple(widths[1:])
    )


def _simulate_theta(widths, sigma_w2, n_nets, seed):
    net = _network(widths, sigma_w2)
    x = np.zeros((1, widths[0]))
    x[0, 0] = 1.0  # unit input; only ||x|| matters (rotational invariance of the first layer)
    sim = simulate(x, net, n_nets=n_nets, seed=seed, quantities=("ntk",), bias=True)
    return np.asarray(sim["ntk"])[:, 0, 0]


@pytest.mark.parametrize("widths, sigma_w2", [([20, 20, 20, 20], 2.0), ([12, 24, 16], 2.6), ([30, 30, 30], 1.4)])
def test_simulate_matches_exact_moments_and_projection_sampler(widths, sigma_w2):
    theta = _simulate_theta(widths, sigma_w2, 20_000, seed=1)
    m = ntk_moments(_network(widths, sigma_w2), widths[0])
    n = theta.size
    z_mean = (theta.mean() - m.mean) / (theta.std(ddof=1) / math.sqrt(n))
    z_second = (np.mean(theta**2) - m.second) / (np.std(theta**2, ddof=1) / math.sqrt(n))
    e = estimate(theta, n_boot=2)
    z_disp = (e.naive - m.dispersion) / e.naive_stderr
    assert max(abs(z_mean), abs(z_second), abs(z_disp)) <= 4, (z_mean, z_second, z_disp)
    other = sample_ntk_diagonal(_network(widths, sigma_w2), widths[0], 20_000, seed=2).theta
    for f in (lambda t: t, lambda t: t * t):
        a, b = f(theta), f(other)
        z = (a.mean() - b.mean()) / math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
        assert abs(z) <= 4
