"""Finite networks with the architecture options (per-layer variances, residual blocks, LayerNorm, dropout) against
independent references: central finite differences of the parameters, the definition of LayerNorm, the law of the
dropout masks, and reproducibility (bit-identical across batch sizes)."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_allclose

import meanfield as mf
from meanfield.finite import MLP, simulate, train
from meanfield.finite.blocks import layer_norm, layer_norm_vjp

EPS = 1e-6  # central differences: truncation ~EPS^2, rounding ~1e-16/EPS

OPTIONS = {
    "schedule": dict(sigma_w2=(1.3, 2.1, 0.8, 1.6), sigma_b2=(0.2, 0.0, 0.4, 0.1)),
    "residual": dict(residual=0.7),
    "normalization": dict(normalization="layer"),
    "dropout": dict(dropout=0.6),
    "all": dict(sigma_w2=(1.3, 2.1, 0.8, 1.6), sigma_b2=0.2, residual=0.5, normalization="layer", dropout=0.8),
}


def _net(option, parameterization="ntk", activation="tanh", width=5, depth=4):
    kw = dict(sigma_w2=1.7, sigma_b2=0.3)
    kw.update(OPTIONS[option])
    return mf.Network(depth, activation, parameterization=parameterization, width=width, **kw)


def _inputs(n=3, d=3, seed=11):
    return np.random.default_rng(seed).standard_normal((n, d))


def _with_params(mlp, flat):
    new = mlp.copy()
    pos = 0
    for p in new.params:
        p[...] = flat[pos : pos + p.size].reshape(p.shape)
        pos += p.size
    return new


def _fd_jacobian(mlp, X):
    """Columns d f(x_i) / d theta_k by central differences, and the layer of each parameter."""
    flat = np.concatenate([p.ravel() for p in mlp.params])
    per = 1 if mlp.biases is None else 2
    layer = np.concatenate([np.full(p.size, i // per + 1) for i, p in enumerate(mlp.params)])
    cols = []
    for k in range(flat.size):
        e = np.zeros_like(flat)
        e[k] = EPS
        cols.append(((_with_params(mlp, flat + e)(X) - _with_params(mlp, flat - e)(X)) / (2 * EPS)).ravel())
    return np.array(cols).T, layer


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("option", list(OPTIONS))
def test_layer_ntks_and_ntk_equal_finite_difference_jacobian_grams(option, parameterization):
    mlp = MLP.sample(_net(option, parameterization), d=3, seed=5)
    X = _inputs()
    J, layer = _fd_jacobian(mlp, X)
    K = mlp.ntk(X)
    tol = dict(rtol=1e-6, atol=1e-7 * np.abs(K).max())
    assert_allclose(K, J @ J.T, **tol)
    for l in range(1, mlp.net.depth + 1):
        Jl = J[:, layer == l]
        assert_allclose(mlp.layer_ntk(X, l), Jl @ Jl.T, **tol)


@pytest.mark.parametrize("option", ["residual", "all"])
def test_loss_gradients_equal_finite_differences(option):
    mlp = MLP.sample(_net(option, "standard"), d=3, seed=2, outputs=2)
    X, Y = _inputs(4), np.array([0, 1, 1, 0])
    _, grads = mlp.grads(X, Y, "xent")
    flat = np.concatenate([p.ravel() for p in mlp.params])
    for k in range(0, flat.size, 7):
        e = np.zeros_like(flat)
        e[k] = EPS
        fd = (_with_params(mlp, flat + e).loss_grad(X, Y, "xent")[0] - _with_params(mlp, flat - e).loss_grad(
            X, Y, "xent")[0]) / (2 * EPS)  # fmt: skip
        assert_allclose(np.concatenate([g.ravel() for g in grads])[k], fd, rtol=1e-6, atol=1e-9)


def test_both_parameterizations_compute_the_same_function_with_every_option():
    X = _inputs()
    f = [MLP.sample(_net("all", p), d=3, seed=4)(X) for p in ("ntk", "standard")]
    assert_allclose(f[0], f[1], rtol=1e-12)


def test_layer_norm_output_has_zero_mean_and_unit_variance_per_input():
    net = mf.Network(4, "linear", sigma_w2=1.3, sigma_b2=0.5, width=64, normalization="layer")
    mlp = MLP.sample(net, d=5, seed=1, n_nets=3)
    fw = mlp.forward(_inputs(6, 5))
    for h in fw.h[1:]:  # h_l = LN(z_l) for the linear activation
        assert_allclose(h.mean(axis=-1), 0.0, atol=1e-13)
        assert_allclose((h**2).mean(axis=-1), 1.0, rtol=1e-13)


def test_layer_norm_vjp_is_the_transpose_of_the_finite_difference_jacobian():
    rng = np.random.default_rng(0)
    z, g = rng.standard_normal(7), rng.standard_normal(7)
    J = np.array([(layer_norm(z + EPS * e)[0] - layer_norm(z - EPS * e)[0]) / (2 * EPS) for e in np.eye(7)]).T
    y, s = layer_norm(z)
    assert_allclose(layer_norm_vjp(g, y, s), J.T @ g, rtol=1e-7, atol=1e-9)
    with pytest.raises(ValueError, match="LayerNorm"):
        layer_norm(np.ones((2, 3)))


def test_dropout_masks_statistics_and_reproducibility():
    rho, width, n = 0.7, 200, 40
    net = mf.Network(4, "relu", width=width, dropout=rho)
    mlp = MLP.sample(net, d=3, seed=8, n_nets=5)
    masks = mlp.masks(n)
    M = np.stack(masks, axis=2)  # (S, n, L-1, N)
    assert set(np.unique(M)) == {0.0, 1.0 / rho}
    keep = M > 0
    m = keep.size
    assert abs(keep.mean() - rho) <= 4 * np.sqrt(rho * (1 - rho) / m)
    # independent across inputs, layers, units and networks: kept fractions and cross-row correlations
    rows = keep.reshape(5 * n, -1).astype(float)
    corr = np.corrcoef(rows)[np.triu_indices(5 * n, 1)]
    assert np.abs(corr).max() <= 5 / np.sqrt(rows.shape[1])
    assert abs(corr.mean()) <= 4 / np.sqrt(rows.shape[1] * corr.size) * 3
    # row j's masks do not depend on the number of rows; fixed across calls; the same in a single network
    assert np.array_equal(mlp.masks(3)[1], masks[1][:, :3])
    single = MLP.sample(net, d=3, seed=np.random.SeedSequence(8, spawn_key=(2,)))
    assert np.array_equal(single.masks(n)[0][0], masks[0][2])
    X = _inputs(4)
    assert np.array_equal(mlp(X), mlp(X))


def test_dropout_kernel_diagonal_gets_one_over_rho():
    """Dropout on h_{L-1} multiplies E h.h (same input, same mask) by 1/rho, not h.h' of two inputs."""
    rho = 0.5
    X = np.array([[1.0, 0.0], [0.0, 1.0]]) * np.sqrt(2)
    base = mf.Network(2, "relu", sigma_w2=2.0, width=4000)
    K0 = MLP.sample(base, d=2, seed=3).feature_kernel(X, 2) / 4000
    K1 = MLP.sample(base.replace(dropout=rho), d=2, seed=3).feature_kernel(X, 2) / 4000
    assert_allclose(K1[0, 0], K0[0, 0] / rho, rtol=0.06)
    assert_allclose(K1[0, 1], K0[0, 1], rtol=0.12)


def test_simulate_with_every_option_is_bit_identical_across_batch_sizes_and_matches_mlp():
    net = _net("all", "standard", activation="relu", width=16)
    X = _inputs(3)
    q = ("nngp", "backward", "ntk_layers", "ntk", "outputs")
    a = simulate(X, net, 7, seed=3, quantities=q, layers=True, batch_size=2)
    b = simulate(X, net, 7, seed=3, quantities=q, layers=True, batch_size=7)
    with ThreadPoolExecutor(2) as ex:
        c = simulate(X, net, 7, seed=3, quantities=q, layers=True, batch_size=3, executor=ex)
    for k in q:
        assert np.array_equal(a[k], b[k]) and np.array_equal(a[k], c[k])
    mlp = MLP.sample(net, d=3, seed=3, n_nets=7)
    assert_allclose(a["outputs"], mlp(X)[..., 0], rtol=1e-13)
    assert_allclose(a["ntk"], mlp.ntk(X), rtol=1e-12)
    for l in range(1, 5):
        assert_allclose(a["ntk_layers"][:, l - 1], mlp.layer_ntk(X, l), rtol=1e-12)
        assert_allclose(a["backward"][:, l - 1], mlp.ptk_gram(X, l), rtol=1e-12)


def test_simulate_forward_kernel_of_a_residual_layer_adds_the_skip():
    net = mf.Network(3, "tanh", sigma_w2=1.5, sigma_b2=0.2, width=8, residual=0.5)
    X = _inputs(2)
    sim = simulate(X, net, 2, seed=1, quantities=("nngp",), layers=True)
    fw = MLP.sample(net, d=3, seed=1, n_nets=2).forward(X)
    z1, h1 = fw.z[0], fw.h[1]
    want = z1 @ np.swapaxes(z1, -1, -2) / 8 + 0.25 * (1.5 / 8 * h1 @ np.swapaxes(h1, -1, -2) + 0.2)
    assert_allclose(sim["nngp"][:, 1], want, rtol=1e-12)


def test_mlp_needs_mask_seeds_for_dropout_and_train_refuses_dropout():
    net = mf.Network(3, "relu", width=4, dropout=0.9)
    mlp = MLP.sample(net, d=2, seed=0)
    with pytest.raises(ValueError, match="mask_seeds"):
        MLP(net, mlp.weights, mlp.biases)
    with pytest.raises(ValueError, match="train does not support dropout"):
        train(mlp, np.eye(2), np.ones(2), epochs=1, lr=0.1, batch_size=2)
    copy = mlp.copy()
    assert np.array_equal(copy(np.eye(2)), mlp(np.eye(2)))
