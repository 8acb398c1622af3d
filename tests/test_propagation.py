"""Kernels over datasets: identities, independent check values, precision near parallel inputs, bad input."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import meanfield as mf

ACTS = ["relu", "erf", "tanh", "gelu", "leaky_relu:0.2", "linear", "softplus", "sigmoid", "silu"]


def _data(n=6, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _unit_pair(rho, d=2):
    """Two inputs with ||x||^2 = d and correlation rho (so q_1 = sigma_w2 at sigma_b2 = 0)."""
    x = np.array([1.0, 0.0])
    y = np.array([rho, np.sqrt(1 - rho**2)])
    return np.vstack([x, y]) * np.sqrt(d)


@pytest.mark.parametrize(
    "rho, depth, expected",
    [
        (0.0, 2, 0.3183098862),
        (0.0, 3, 0.6857086363),
        (0.0, 5, 1.4303904972),
        (0.0, 10, 3.1559474489),
        (0.0, 100, 27.2667587783),
        (0.5, 2, 0.9423311144),
        (0.5, 3, 1.3514795611),
        (0.5, 5, 2.1071125384),
        (0.5, 10, 3.7926943562),
    ],
)
def test_relu_eoc_ntk_matches_check_values(rho, depth, expected):
    # Theta_L(x, x') / q at ReLU (2, 0), computed independently (mpmath: tests/reference.py)
    k = mf.kernels(_unit_pair(rho), mf.Network(depth))
    assert_allclose(k.ntk[0, 1] / 2.0, expected, rtol=0, atol=6e-11)
    assert_allclose(np.diag(k.ntk), 2.0 * depth, rtol=1e-14)  # Theta_L(x, x) = L q


@pytest.mark.parametrize("depth, expected", [(2, 0.5), (3, 0.3015576242), (10, 0.0407250335)])
def test_relu_eoc_backward_first_layer_matches_check_values(depth, expected):
    k = mf.kernels(_unit_pair(0.0), mf.Network(depth), layers=[1])
    assert_allclose(k.backward[0, 0, 1], expected, atol=6e-11)


@pytest.mark.parametrize("sigma_w2", [1.0, 2.0])
@pytest.mark.parametrize("rho", [-0.5, 0.0, 0.5, 0.9])
def test_one_hidden_layer_relu_ntk_closed_form(rho, sigma_w2):
    # derived here from Jacot et al. 2018 with Cho & Saul 2009:
    # Theta_2 = sigma_w^4 (2 rho (pi - theta) + sin theta) / (2 pi) for ||x||^2 = d
    theta = np.arccos(rho)
    expected = sigma_w2**2 * (2 * rho * (np.pi - theta) + np.sin(theta)) / (2 * np.pi)
    k = mf.kernels(_unit_pair(rho), mf.Network(2, sigma_w2=sigma_w2))
    assert_allclose(k.ntk[0, 1], expected, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_ntk_layers_sum_to_ntk(act, param):
    net = mf.Network(7, act, 1.3, 0.2, parameterization=param, width=(5, 9, 9, 9, 9, 3))
    X = _data()
    k = mf.kernels(X, net, layers=True)
    assert k.ntk_layers.shape == (7, 6, 6)
    assert_allclose(k.ntk_layers.sum(axis=0), k.ntk, rtol=1e-12)
    assert_allclose(k.nngp_layers[-1], k.nngp, rtol=1e-15)
    assert_allclose(k.backward[-1], 1.0, rtol=0)


@pytest.mark.parametrize("act", ACTS)
def test_cross_kernel_with_same_inputs_equals_symmetric_kernel(act):
    net = mf.Network(5, act, 1.7, 0.1)
    X = _data(5, 3, seed=1)
    sym = mf.kernels(X, net, layers=True)
    cross = mf.kernels(X, net, X2=X.copy(), layers=True)
    for name in ("nngp", "ntk", "nngp_layers", "backward", "ntk_layers"):
        assert_allclose(getattr(cross, name), getattr(sym, name), rtol=1e-13, atol=1e-300, err_msg=name)


def test_cross_kernel_blocks_match_joint_kernel():
    net = mf.Network(6, "erf", 1.5, 0.3)
    X = _data(7, 3, seed=2)
    joint = mf.kernels(X, net)
    cross = mf.kernels(X[:4], net, X2=X[4:])
    assert_allclose(cross.ntk, joint.ntk[:4, 4:], rtol=1e-13)
    assert_allclose(cross.nngp, joint.nngp[:4, 4:], rtol=1e-13)


@pytest.mark.parametrize("act", ACTS)
def test_kernels_are_symmetric_and_psd(act):
    net = mf.Network(8, act, 1.6, 0.05)
    X = _data(12, 5, seed=3)
    k = mf.kernels(X, net, layers=True)
    for K in [k.nngp, k.ntk, *k.nngp_layers, *k.backward, *k.ntk_layers]:
        assert_allclose(K, K.T, rtol=0, atol=0)
        w = np.linalg.eigvalsh(K)
        assert w.min() >= -1e-12 * w.max()


@pytest.mark.parametrize("alpha", [3.0, 1e-3, 1e4])
def test_relu_kernels_are_positively_homogeneous_to_1e12_at_depth_50(alpha):
    # without bias, K(x, alpha x) = alpha K(x, x) for NNGP and NTK; neural-tangents and a plain numpy recursion
    # are off by 1e-8..1e-6 on such entries because they recover 1 - c from a rounded c
    x = _data(1, 7, seed=4)
    X = np.vstack([x, alpha * x, _data(1, 7, seed=5)])
    k = mf.kernels(X, mf.Network(50))
    assert_allclose(k.nngp[0, 1], alpha * k.nngp[0, 0], rtol=1e-12)
    assert_allclose(k.ntk[0, 1], alpha * k.ntk[0, 0], rtol=1e-12)
    assert_allclose(k.ntk[1, 1], alpha**2 * k.ntk[0, 0], rtol=1e-12)


@pytest.mark.parametrize("act", ["relu", "erf", "tanh"])
def test_near_parallel_inputs_track_one_minus_c_exactly(act):
    # inputs at angle 1e-7: 1 - c_1 = 5e-15 is carried exactly, so Sigma_L(x,x') < Sigma_L(x,x) strictly and the
    # decorrelation agrees with the one-pair curve started from the exact s
    eps = 1e-7
    X = np.array([[1.0, 0.0], [np.cos(eps), np.sin(eps)]]) * np.sqrt(2)
    net = mf.Network(30, act, 1.8, 0.0 if act == "relu" else 0.1)
    k = mf.kernels(X, net, layers=True)
    curve = mf.pair_curve(net, q1=net.sigma_w2 + net.sigma_b2, s=2 * np.sin(eps / 2) ** 2)
    # the curve starts from the same s as the kernels (up to the bias) only for relu at sigma_b2 = 0
    q = k.nngp_layers[:, 0, 0]
    s_kern = 1 - k.nngp_layers[:, 0, 1] / q
    assert np.all(s_kern > 0)
    if act == "relu":
        assert_allclose(k.nngp_layers[:, 0, 1], q * (1 - curve.s), rtol=1e-15)


def test_relu_ntk_with_bias_matches_explicit_recursion():
    # an independent float64 recursion (Cho & Saul 2009; Jacot et al. 2018) for well-separated inputs
    sw, sb, L = 1.7, 0.3, 6
    X = _data(4, 3, seed=6)
    S = sw / 3 * X @ X.T + sb
    T = S.copy()
    for _ in range(L - 1):
        q = np.sqrt(np.diag(S))
        c = np.clip(S / np.outer(q, q), -1, 1)
        np.fill_diagonal(c, 1.0)  # the rounded diagonal would put arccos off by ~1e-8 (the naive recursion's flaw)
        th = np.arccos(c)
        Sdot = sw * (np.pi - th) / (2 * np.pi)
        S = sw * np.outer(q, q) * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi) + sb
        T = T * Sdot + S
    k = mf.kernels(X, mf.Network(L, "relu", sw, sb))
    assert_allclose(k.nngp, S, rtol=1e-12)
    assert_allclose(k.ntk, T, rtol=1e-12)


def test_standard_parameterization_weight_part_scales_with_fan_in():
    X = _data(3, 4, seed=7)
    base = mf.Network(4, "tanh", 1.5, 0.2, parameterization="standard", width=(10, 20, 30))
    ntp = mf.kernels(X, base.replace(parameterization="ntk"), layers=True)
    sp = mf.kernels(X, base, layers=True)
    fan = np.array([4, 10, 20, 30])[:, None, None]
    expected = fan / 1.5 * (ntp.nngp_layers - 0.2) * ntp.backward + ntp.backward
    assert_allclose(sp.ntk_layers, expected, rtol=1e-13)


def test_layers_subset_matches_full():
    net = mf.Network(9, "gelu", 1.4, 0.1)
    X = _data(5, 3, seed=8)
    full = mf.kernels(X, net, layers=True)
    sub = mf.kernels(X, net, layers=[9, 2, 5])
    assert sub.layers == (2, 5, 9)
    assert_allclose(sub.ntk_layers, full.ntk_layers[[1, 4, 8]], rtol=1e-15)
    assert sub.layer(5) == 1


@pytest.mark.parametrize(
    "X, kwargs, word",
    [
        (np.array([[1.0, np.nan]]), {}, "NaN"),
        (np.array([[1.0, np.inf]]), {}, "NaN or inf"),
        (np.zeros((2, 3)), {}, "zero norm"),
        (np.ones((2, 3)), {"X2": np.ones((2, 4))}, "columns"),
        (np.ones((0, 3)), {}, "non-empty"),
        (np.ones((2, 3)), {"layers": [0]}, "layers"),
        (np.ones((2, 3)), {"layers": [11]}, "layers"),
    ],
)
def test_bad_inputs_raise_value_error(X, kwargs, word):
    with pytest.raises(ValueError, match=word):
        mf.kernels(X, mf.Network(10), **kwargs)


def test_standard_parameterization_needs_width():
    with pytest.raises(ValueError, match="width"):
        mf.kernels(np.ones((2, 3)), mf.Network(3, parameterization="standard"))


def test_zero_rows_are_fine_with_bias():
    k = mf.kernels(np.zeros((2, 3)), mf.Network(4, "relu", 1.0, 0.5))
    assert np.all(np.isfinite(k.ntk))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    act=st.sampled_from(["relu", "erf", "tanh", "leaky_relu:0.3", "sigmoid"]),
    depth=st.integers(1, 12),
    sw=st.floats(0.1, 4.0),
    sb=st.floats(0.0, 2.0),
    seed=st.integers(0, 10**6),
    scale=st.floats(1e-3, 1e3),
)
def test_random_valid_specs_never_produce_nan(act, depth, sw, sb, seed, scale):
    X = np.random.default_rng(seed).normal(size=(4, 3)) * scale
    with warnings.catch_warnings():  # large variances may warn that the general path is approximate
        warnings.simplefilter("ignore", RuntimeWarning)
        k = mf.kernels(X, mf.Network(depth, act, sw, sb), layers=True)
    for a in (k.nngp, k.ntk, k.ntk_layers, k.backward):
        assert np.all(np.isfinite(a))
    assert np.all(np.diag(k.nngp) > 0)


@settings(max_examples=40, deadline=None)
@given(
    depth=st.one_of(st.integers(-5, 0), st.floats(0.5, 3.5)),
    sw=st.one_of(st.floats(-10, 0), st.just(float("nan"))),
)
def test_invalid_specs_raise_value_error(depth, sw):
    with pytest.raises(ValueError):
        mf.Network(depth)
    with pytest.raises(ValueError):
        mf.Network(3, sigma_w2=sw)
