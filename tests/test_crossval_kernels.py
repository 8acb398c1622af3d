"""Monte Carlo over finite networks against the infinite-width theory: Sigma_l, B_l, Theta^(l), Theta_L.

Every entry is checked by its z-score |MC mean - theory| / stderr <= 4 (fixed seeds). The finite-width bias is
O(1/N); at the widths used here it is well below the Monte Carlo error (test_crossval_width.py measures it).
Theory and sampler share only the Network spec: ``meanfield.propagation.kernels`` vs ``meanfield.simulate``.
"""

import numpy as np
import pytest
from helpers import inputs_at_correlations

import meanfield as mf
from meanfield.finite.montecarlo import simulate
from meanfield.propagation import kernels

Z_MAX = 4.0
QUANTITIES = ("nngp", "backward", "ntk_layers", "ntk")


def crossval_inputs(d=8, seed=0):
    """x0 (||x||^2 = d), and partners at correlations 0.5, 0.999 (nearly parallel), -0.999 (anti-parallel)."""
    X = inputs_at_correlations((0.5, 0.999, -0.999), d, seed)
    X[1] *= 1.3  # one input off the sphere
    return X


def theory(X, net):
    k = kernels(X, net, layers=True)
    return {"nngp": k.nngp_layers, "backward": k.backward, "ntk_layers": k.ntk_layers, "ntk": k.ntk}


def max_z(sim, th):
    return {q: float(np.abs(sim.zscore(q, th[q])).max()) for q in QUANTITIES}


# (activation, sigma_w2, sigma_b2, depth, width, parameterization, n_nets)
CASES = {
    "relu-eoc-L4-N512": ("relu", 2.0, 0.0, 4, 512, "ntk", 300),
    "relu-bias-L6-N256": ("relu", 2.0, 0.2, 6, 256, "ntk", 300),
    "erf-L5-N512": ("erf", 1.6, 0.1, 5, 512, "ntk", 200),
    "tanh-L3-N1024": ("tanh", 1.5, 0.05, 3, 1024, "ntk", 100),
    "tanh-L2-N256": ("tanh", 1.2, 0.3, 2, 256, "ntk", 300),
    "relu-sp-L3-N512": ("relu", 2.0, 0.1, 3, 512, "standard", 300),
}


@pytest.fixture(scope="module", params=list(CASES), ids=list(CASES))
def case(request):
    act, sw2, sb2, depth, width, param, n_nets = CASES[request.param]
    net = mf.Network(depth, act, sigma_w2=sw2, sigma_b2=sb2, parameterization=param, width=width)
    X = crossval_inputs()
    sim = simulate(X, net, n_nets, seed=2024, quantities=QUANTITIES, layers=True)
    return sim, theory(X, net)


def test_nngp_of_every_layer_matches_sigma_l(case):
    sim, th = case
    assert max_z(sim, th)["nngp"] <= Z_MAX


def test_backward_kernels_match_the_product_of_derivative_kernels(case):
    sim, th = case
    assert max_z(sim, th)["backward"] <= Z_MAX


def test_layer_tangent_kernels_match_theta_l(case):
    sim, th = case
    assert max_z(sim, th)["ntk_layers"] <= Z_MAX


def test_ntk_matches_theta_L(case):
    sim, th = case
    assert max_z(sim, th)["ntk"] <= Z_MAX


@pytest.mark.slow
@pytest.mark.parametrize("activation, sigma_w2, sigma_b2", [("relu", 2.0, 0.0), ("erf", 1.6, 0.1), ("tanh", 1.5, 0.05)])
@pytest.mark.parametrize("depth", [2, 4, 6])
@pytest.mark.parametrize("width", [256, 1024])
def test_sweep_every_kernel_within_four_standard_errors(activation, sigma_w2, sigma_b2, depth, width):
    net = mf.Network(depth, activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2, width=width)
    X = crossval_inputs()
    sim = simulate(X, net, 300, seed=7, quantities=QUANTITIES, layers=True)
    z = max_z(sim, theory(X, net))
    assert max(z.values()) <= Z_MAX, z


def test_one_hidden_layer_relu_ntk_matches_the_closed_form():
    """Theta_2 = sigma_w^4 (2 rho (pi - theta) + sin theta) / (2 pi) for ||x||^2 = d (derived here: the NTK
    recursion of Jacot et al. 2018 with the arc-cosine kernels of Cho & Saul 2009; the first-layer term
    sigma_w^4 rho (pi - theta) / (2 pi) plus the readout term sigma_w^4 (sin theta + (pi - theta) rho) / (2 pi)).

    An independent run (width 20000, 300 nets) gave 0.63627 +- 0.00078 vs 0.63662 at rho = 0.
    """
    d = 8
    X = inputs_at_correlations([0.0, 0.9], d=d, seed=5)  # x0, a partner at rho = 0 and one at rho = 0.9
    rho = np.clip(X @ X.T / d, -1, 1)
    th = np.arccos(rho)
    closed = 4.0 * (2 * rho * (np.pi - th) + np.sin(th)) / (2 * np.pi)
    net = mf.Network(2, "relu", sigma_w2=2.0, width=20000)
    np.testing.assert_allclose(kernels(X, net).ntk, closed, rtol=1e-12)
    sim = simulate(X, net, 300, seed=3, quantities=("ntk",))
    assert np.abs(sim.zscore("ntk", closed)).max() <= Z_MAX
