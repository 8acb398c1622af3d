"""Tests for meanfield.nfa (Beaglehole et al. 2024): NFC measurements, the early-time C-NFC at finite
and infinite width, the quadratic-network free-probability prediction and the corrected Prop. 8.

Independent references used here: explicit one-step gradient descent (the C-NFC after one step), the feature-space
correlation built from ``MLP.grads`` and ``MLP.ptk_cov``, finite differences of the target, Monte Carlo over random
networks (z-scores), and direct formulas written out in the tests.
"""

import argparse
import json

import numpy as np
import pytest
from numpy.testing import assert_allclose
from threadpoolctl import threadpool_limits

import meanfield.nfa as nf
from meanfield import MLP, Activation, Network
from meanfield.cli import Result
from meanfield.cli import nfa_early as cli_nfa
from meanfield.data import to_sphere
from meanfield.finite import gd_step, slo_step

QUADRATIC = Activation(lambda u: u * u, lambda u: 2.0 * u, "quadratic")


# ------------------------------------------------------------------------------------------------------------------
# set-ups
# ------------------------------------------------------------------------------------------------------------------
def _chain_task(n=256, d=32, r=5, seed=0):
    """Beaglehole et al. 2024, App. I: Gaussian inputs, chain monomial of rank 5 scaled to unit std."""
    X = np.random.default_rng(seed).standard_normal((n, d))
    y = nf.chain_monomial(X, r)
    return X, y / y.std()


def _relu_net(width=128, depth=3):
    return Network(depth, "relu", 2.0, 0.0, "standard", width=width)  # SP He init, no bias


def _sphere_task(n=40, d=8, seed=0):
    """Infinite-width set-up: x on sqrt(d) S^{d-1}, y = sign(x1 x2) + x3 standardized."""
    X = to_sphere(np.random.default_rng(seed).standard_normal((n, d)))
    y = np.sign(X[:, 0] * X[:, 1]) + X[:, 2]
    return X, (y - y.mean()) / y.std()


def _quadratic_data(N, alpha, seed):
    """Proportional regime: n = d = N Gaussian inputs, covariance eigenvalues 1/(1 + j^alpha) in a random basis,
    y = sign(x.beta) + (x.beta)^2 / 2 standardized."""
    rng = np.random.default_rng(seed)
    lam = 1.0 / (1.0 + np.arange(1, N + 1) ** float(alpha))
    X = rng.standard_normal((N, N)) * np.sqrt(lam)
    Q = np.eye(N)
    if alpha != 0:  # isotropic covariance needs no rotation
        Q, _ = np.linalg.qr(rng.standard_normal((N, N)))
        X = X @ Q.T
    beta = rng.standard_normal(N)
    t = X @ beta / np.sqrt(np.sum(lam * (Q.T @ beta) ** 2))
    y = np.sign(t) + 0.5 * t**2
    return X, (y - y.mean()) / y.std()


# ------------------------------------------------------------------------------------------------------------------
# NFC measurements
# ------------------------------------------------------------------------------------------------------------------
def test_nfc_equals_cosine_of_nfm_and_explicit_agop():
    """Prop. 2 route (agop = W^T K W) vs the AGOP built from finite-difference input gradients of f."""
    net = Network(3, "tanh", 1.5, 0.0, width=[9, 7])
    mlp = MLP.sample(net, d=5, seed=3, bias=False)
    X = np.random.default_rng(1).standard_normal((6, 5))
    eps = 1e-6
    J = np.empty((6, 5))
    for j in range(5):
        e = np.zeros(5)
        e[j] = eps
        J[:, j] = (mlp(X + e)[:, 0] - mlp(X - e)[:, 0]) / (2 * eps)
    F = mlp.nfm(1)
    G = J.T @ J / 6
    want = np.sum(F * G) / np.sqrt(np.sum(F * F) * np.sum(G * G))
    assert_allclose(nf.nfc(mlp, X, 1), want, rtol=1e-8)
    # Pearson variants subtract the mean of all entries / compare diagonals
    Fc, Gc = F - F.mean(), G - G.mean()
    assert_allclose(nf.nfc(mlp, X, 1, metric="pearson"), np.sum(Fc * Gc) / np.linalg.norm(Fc) / np.linalg.norm(Gc),
                    rtol=1e-7)  # fmt: skip
    assert_allclose(nf.nfc(mlp, X, 1, metric="diag_pearson"), np.corrcoef(np.diag(F), np.diag(G))[0, 1], rtol=1e-7)


def test_nfc_of_scalar_readout_is_one_and_stack_matches_single_networks():
    net = Network(3, "relu", width=16)
    X = np.random.default_rng(0).standard_normal((7, 4))
    stack = MLP.sample(net, d=4, seed=5, bias=False, n_nets=3)
    vals = nf.nfc(stack, X, 2)
    assert vals.shape == (3,)
    for s in range(3):
        single = MLP(net, [w[s] for w in stack.weights])
        assert_allclose(vals[s], nf.nfc(single, X, 2), rtol=1e-12)
    assert_allclose(nf.nfc(stack, X, 3), 1.0, rtol=1e-12)


def test_centered_variants_against_direct_formulas():
    """C-NFC, C/UC ratio, double- and PTK-centered NFC written out from weights and deltas
    (Beaglehole et al. 2024, sec. 3, App. C)."""
    net = Network(3, "tanh", 1.2, 0.0, width=12)
    X = np.random.default_rng(2).standard_normal((9, 4))
    y = np.sin(X[:, 0]) + X[:, 1]
    mlp0 = MLP.sample(net, d=4, seed=0, bias=False)
    mlp = mlp0
    for _ in range(5):
        mlp = gd_step(mlp, mlp.grads(X, y)[1], lr=0.3)
    l = 2
    Wb = mlp.weights[l - 1] - mlp0.weights[l - 1]
    D1, D0 = mlp.deltas(X)[l - 1][0], mlp0.deltas(X)[l - 1][0]  # (n, N_l), one output
    K = D1.T @ D1 / 9
    Kb = (D1 - D0).T @ (D1 - D0) / 9
    W, W0 = mlp.weights[l - 1], mlp0.weights[l - 1]

    def rho(A, B):
        return np.sum(A * B) / np.sqrt(np.sum(A * A) * np.sum(B * B))

    assert_allclose(nf.cnfc(mlp, mlp0, X, l), rho(Wb.T @ Wb, Wb.T @ K @ Wb), rtol=1e-12)
    assert_allclose(nf.double_centered_nfc(mlp, mlp0, X, l), rho(Wb.T @ Wb, Wb.T @ Kb @ Wb), rtol=1e-12)
    assert_allclose(nf.ptk_centered_nfc(mlp, mlp0, X, l), rho(W0.T @ W0, W0.T @ Kb @ W0), rtol=1e-12)
    want = np.trace(Wb.T @ Wb @ Wb.T @ K @ Wb) / np.trace(W.T @ W @ W.T @ K @ W)
    assert_allclose(nf.cuc_ratio(mlp, mlp0, X, l), want, rtol=1e-12)
    assert np.isnan(nf.cnfc(mlp0, mlp0, X, l))


def test_centered_variants_reject_mismatched_networks():
    X = np.zeros((2, 3))
    a = MLP.sample(Network(2, width=4), d=3, seed=0)
    b = MLP.sample(Network(2, width=5), d=3, seed=0)
    with pytest.raises(ValueError, match="same architecture"):
        nf.cnfc(a, b, X, 1)
    with pytest.raises(ValueError, match="layer l"):
        nf.cnfc(a, a, X, 3)


# ------------------------------------------------------------------------------------------------------------------
# early-time C-NFC, finite width
# ------------------------------------------------------------------------------------------------------------------
def test_cnfc_early_sample_form_equals_feature_form_and_operator_form():
    """Sample-space form = rho(Wdot^T Wdot, Wdot^T K Wdot) from MLP.grads and MLP.ptk_cov = literal eq. (6)."""
    X, y = _chain_task(n=64, d=10)
    mlp = MLP.sample(_relu_net(width=48), d=10, seed=4, bias=False)
    c = nf.cnfc_early(mlp, X, y, [1, 2, 3])
    g = mlp.grads(X, y)[1]
    for l in (1, 2, 3):
        Wd, K = g[l - 1], mlp.ptk_cov(X, l)
        A, B = Wd.T @ Wd, Wd.T @ K @ Wd
        assert_allclose(c[l - 1], np.sum(A * B) / np.sqrt(np.sum(A * A) * np.sum(B * B)), atol=1e-13)
    assert_allclose(nf.cnfc_early(mlp, X, y, [1, 2, 3], method="operator"), c, atol=1e-13)
    assert_allclose(c[2], 1.0, atol=1e-13)  # scalar readout


def test_cnfc_early_multi_output_xent_equals_feature_form():
    X = np.random.default_rng(0).standard_normal((30, 6))
    labels = np.argmax(X[:, :3], axis=1)
    mlp = MLP.sample(Network(3, "tanh", 1.5, 0.1, width=20), d=6, seed=1, outputs=3, bias=True)
    c = nf.cnfc_early(mlp, X, labels, [1, 2, 3], loss="xent")
    g = mlp.grads(X, labels, loss="xent")[1]
    for l in (1, 2, 3):
        Wd, K = g[2 * (l - 1)], mlp.ptk_cov(X, l)
        A, B = Wd.T @ Wd, Wd.T @ K @ Wd
        assert_allclose(c[l - 1], np.sum(A * B) / np.sqrt(np.sum(A * A) * np.sum(B * B)), atol=1e-13)
    assert_allclose(nf.cnfc_early(mlp, X, labels, [1, 2, 3], loss="xent", method="operator"), c, atol=1e-13)


def test_cnfc_early_on_a_stack_equals_single_networks():
    X, y = _chain_task(n=20, d=6)
    net = Network(3, "tanh", 1.5, 0.05, width=10)
    stack = MLP.sample(net, d=6, seed=2, bias=True, n_nets=3)
    c = nf.cnfc_early(stack, X, y, [1, 2])
    assert c.shape == (3, 2)
    for s in range(3):
        single = MLP(net, [w[s] for w in stack.weights], [b[s] for b in stack.biases])
        assert_allclose(c[s], nf.cnfc_early(single, X, y, [1, 2]), rtol=1e-12)
        assert_allclose(c[s, 0], nf.cnfc_early(single, X, y, 1), rtol=1e-12)


def test_cnfc_early_is_the_small_step_limit_of_one_gd_step():
    """Exactness: after one GD step Wbar = -lr grad exactly, so the gap is K_1 - K_0 = O(lr) and vanishes."""
    X, y = _chain_task()
    for seed in range(3):
        mlp = MLP.sample(_relu_net(), d=32, seed=seed, bias=False)
        c0 = nf.cnfc_early(mlp, X, y, [1, 2])
        g = mlp.grads(X, y)[1]
        gaps = []
        for lr in (5e-3, 5e-5):
            m1 = gd_step(mlp, g, lr)
            gaps.append(np.abs([nf.cnfc(m1, mlp, X, l) for l in (1, 2)] - c0))
        assert np.all(gaps[0] < 0.003)  # the tolerance of the layer-2 check below
        assert np.all(gaps[1] < 3e-5)  # 100x smaller step: the gap is O(lr)


def test_cnfc_early_matches_one_gd_step_at_learning_rate_005_layer2():
    """At lr = 0.05 (ReLU [32,128,128,1], chain monomial, n = 256): within 0.003 for layer 2.

    Layer 1 does not meet 0.003 for every draw at this learning rate: one SP step moves the readout by 4-50 % of
    its norm, and the layer-1 gap grows with it (median 0.007, max 0.09 over 20 draws; see the report).
    """
    X, y = _chain_task()
    for seed in range(4):
        mlp = MLP.sample(_relu_net(), d=32, seed=seed, bias=False)
        m1 = gd_step(mlp, mlp.grads(X, y)[1], 0.05)
        assert abs(nf.cnfc(m1, mlp, X, 2) - nf.cnfc_early(mlp, X, y, 2)) < 0.003


def test_cnfc_early_projector_ptk_gives_one():
    """Beaglehole et al. 2024, sec. 3.1: if P is proportional to a projector the derivatives correlate perfectly."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((12, 5))
    Q, _ = np.linalg.qr(rng.standard_normal((12, 4)))
    assert_allclose(nf.cnfc_early_kernels(X @ X.T, 3.0 * Q @ Q.T, rng.standard_normal(12)), 1.0, atol=1e-13)


def test_cnfc_early_kernels_validates_shapes():
    with pytest.raises(ValueError, match="P must have shape"):
        nf.cnfc_early_kernels(np.eye(3), np.eye(4), np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        nf.cnfc_early_kernels(np.eye(3), np.eye(3), [1.0, np.nan, 1.0])


def test_operator_form_memory_guard():
    mlp = MLP.sample(Network(2, width=4), d=3, seed=0, outputs=2)
    X = np.zeros((5, 3))
    with pytest.raises(ValueError, match="exceeds the limit"):
        nf.check_operator_size(10_000, 2)
    assert nf.check_operator_size(10_000, 2, force=True) == 400_000_000
    assert nf.check_operator_size(5, 2, limit=100) == 100
    with pytest.raises(ValueError, match="exceeds the limit"):
        nf.check_operator_size(6, 2, limit=100)
    nf.cnfc_early(mlp, X, np.zeros((5, 2)), 1, method="operator")  # small: fine


# ------------------------------------------------------------------------------------------------------------------
# early-time C-NFC, infinite width
# ------------------------------------------------------------------------------------------------------------------
def _mc_early(X, y, width, nets, depth=3):
    net = _relu_net(width=width, depth=depth)
    vals = np.empty((nets, depth - 1))
    with threadpool_limits(1, user_api="blas"):  # thin matmuls: BLAS threads only contend with numba's pool
        for s in range(nets):
            mlp = MLP.sample(net, d=X.shape[1], seed=s, bias=False)
            mlp.weights[-1] *= 1e-3  # f_0 ~ 0 as the limit assumes
            vals[s] = nf.cnfc_early(mlp, X, y, list(range(1, depth)))
    return vals.mean(axis=0), vals.std(axis=0, ddof=1) / np.sqrt(nets)


def test_cnfc_early_infinite_matches_monte_carlo_at_width_4096():
    """Sphere set-up (d = 8, n = 40): one hidden layer (20 nets) and two hidden layers (8 nets), z <= 4."""
    X, y = _sphere_task()
    for depth, width, nets in ((2, 4096, 20), (3, 4096, 8)):
        pred = nf.cnfc_early_infinite(Network(depth), X, y, list(range(1, depth)))
        mean, se = _mc_early(X, y, width, nets, depth)
        assert np.all(np.abs((mean - pred) / se) <= 4), (depth, pred, mean, se)


@pytest.mark.slow
def test_cnfc_early_infinite_matches_monte_carlo_width_sweep():
    """Sphere set-up (L = 3, d = 8, n = 40): widths 1024 and 4096, 40 networks each."""
    X, y = _sphere_task()
    pred = nf.cnfc_early_infinite(Network(3), X, y, [1, 2])
    for width, nets in ((1024, 40), (4096, 40)):
        mean, se = _mc_early(X, y, width, nets)
        assert np.all(np.abs((mean - pred) / se) <= 4), (width, pred, mean, se)


def test_cnfc_early_infinite_with_bias_and_tanh_vs_wide_network():
    """sigma_b > 0 and a smooth activation (Hermite path): the limit of G is (Sigma - sigma_b^2)/sigma_w^2."""
    X, y = _sphere_task(n=16, d=5, seed=3)
    net = Network(3, "tanh", 1.8, 0.2, "standard", width=1024)
    pred = nf.cnfc_early_infinite(net, X, y, [1, 2])
    vals = []
    with threadpool_limits(1, user_api="blas"):
        for s in range(10):
            mlp = MLP.sample(net, d=5, seed=s, bias=True)
            mlp.weights[-1] *= 1e-3
            mlp.biases[-1] *= 0.0
            vals.append(nf.cnfc_early(mlp, X, y, [1, 2]))
    vals = np.array(vals)
    z = (vals.mean(0) - pred) / (vals.std(0, ddof=1) / np.sqrt(len(vals)))
    assert np.all(np.abs(z) <= 4), (pred, vals.mean(0))


def test_cnfc_early_infinite_multi_output_equals_scalar_formula_on_hadamard_target():
    """o outputs: U = B o YY^T. A target Y = [y, 0] must give the scalar-output value."""
    X, y = _sphere_task(n=12, d=4)
    net = Network(4, "erf", 1.5, 0.1)
    assert_allclose(nf.cnfc_early_infinite(net, X, np.c_[y, 0 * y], [1, 2, 3]),
                    nf.cnfc_early_infinite(net, X, y, [1, 2, 3]), rtol=1e-13)  # fmt: skip
    assert_allclose(nf.cnfc_early_infinite(net, X, y, 4), 1.0, atol=1e-13)


# ------------------------------------------------------------------------------------------------------------------
# quadratic network: free probability (Beaglehole et al. 2024, App. E)
# ------------------------------------------------------------------------------------------------------------------
def test_quadratic_free_cnfc_against_simulation_and_printed_eq26_refuted():
    """Corrected eq. (26) vs the exact early-time C-NFC of single quadratic networks (n = k = d = 256, alpha = 0).

    The prediction uses each network's sample moments r_j; the check is a z-score of the mean difference over
    (data, network) draws. The printed eq. (26) (last term identically zero) misses by > 0.05 and even exceeds 1.
    """
    N = 256
    diffs, published, obs_all = [], [], []
    for ds in range(2):
        X, y = _quadratic_data(N, 0.0, ds)
        G = X @ X.T
        for s in range(3):
            rng = np.random.default_rng(100 + s)
            W, a = rng.standard_normal((N, N)) / np.sqrt(N), rng.standard_normal(N)
            obs = nf.cnfc_early_kernels(G, X @ (W.T @ (a[:, None] ** 2 * W)) @ X.T, y)
            r = nf.quadratic_r_moments(W, a)
            diffs.append(obs - nf.quadratic_free_cnfc(X, y, r))
            published.append(nf.quadratic_free_cnfc(X, y, r, form="published") - obs)
            obs_all.append(obs)
    diffs = np.array(diffs)
    z = diffs.mean() / (diffs.std(ddof=1) / np.sqrt(len(diffs)))
    assert abs(z) <= 4 and np.all(np.abs(diffs) < 0.05), diffs
    assert np.mean(published) > 0.05


def test_quadratic_network_mlp_matches_sample_space_formula():
    """f = a^T (W x)^2 as an MLP with a quadratic activation: P = 4 X R X^T, same C-NFC (scale cancels)."""
    rng = np.random.default_rng(0)
    n, d, k = 20, 6, 9
    X, y = rng.standard_normal((n, d)), rng.standard_normal(n)
    W, a = rng.standard_normal((k, d)) / np.sqrt(k), rng.standard_normal(k)
    mlp = MLP(Network(2, QUADRATIC, 1.0, 0.0, "standard", width=k), [W, a[None, :]])
    want = nf.cnfc_early_kernels(X @ X.T, X @ W.T @ np.diag(a**2) @ W @ X.T, y)
    assert_allclose(nf.cnfc_early(mlp, X, y, 1, zero_output=True), want, rtol=1e-12)


def test_quadratic_free_cnfc_is_exact_for_scalar_R_and_printed_eq26_is_not():
    """R = c I is free from any data matrices, so the corrected formula must equal the exact value
    rho(A1^2, A1 B A1) (with P = c X X^T) to rounding; the printed eq. (26) (last term zero) does not."""
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((30, 12)) + 0.3, rng.standard_normal(30)
    for c in (1.0, 2.5):
        r = c ** np.arange(1, 5)
        exact = nf.cnfc_early_kernels(X @ X.T, c * X @ X.T, y)
        assert_allclose(nf.quadratic_free_cnfc(X, y, r), exact, rtol=1e-12)
        assert abs(nf.quadratic_free_cnfc(X, y, r, form="published") - exact) > 1e-3


def test_quadratic_free_cnfc_isotropic_special_case():
    """Beaglehole et al. 2024, sec. 4.2 (B = I): num = a^2 r3 + r1 r2 tau(Abar^2), den1 as eq. (20)."""
    rng = np.random.default_rng(1)
    d = 10
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = np.sqrt(1.0) * Q  # X^T X = I
    y = rng.standard_normal(d)
    r = np.array([1.3, 2.1, 4.0, 8.5])
    A1 = X.T @ np.diag(y) @ X
    A = A1 @ A1
    a = np.trace(A) / d
    Ab = A - a * np.eye(d)
    tA2 = np.trace(Ab @ Ab) / d
    num = a * a * r[2] + r[0] * r[1] * tA2
    den1 = np.trace(A @ A) / d * r[0] ** 2 + a * a * r[1] - a * a * r[0] ** 2
    den2 = r[0] ** 4 * np.trace(Ab @ Ab) / d * 0 + a * a * r[3] + r[1] ** 2 * tA2  # B-bar = 0, b = 1
    assert_allclose(nf.quadratic_free_cnfc(X, y, r), num / np.sqrt(den1 * den2), rtol=1e-12)


def test_prop8_corrected_expectation_against_monte_carlo_and_published_form_refuted():
    rng = np.random.default_rng(0)
    M = 50_000
    for d, k in ((6, 4), (6, 20)):
        X, y = rng.standard_normal((12, d)), np.sign(rng.standard_normal(12))
        A1, B = X.T @ (y[:, None] * X), X.T @ X
        W, a = rng.standard_normal((M, k, d)) / np.sqrt(k), rng.standard_normal((M, k))
        R = np.einsum("msi,ms,msj->mij", W, a * a, W)
        nfm_mc, agop_mc = A1 @ R @ A1, A1 @ R @ B @ R @ A1
        e = nf.quadratic_expected_second_derivatives(X, y, k)
        nfm, agop = e.nfm, e.agop
        for mc, want in ((nfm_mc, nfm), (agop_mc, agop)):
            z = (mc.mean(0) - want) / (mc.std(0) / np.sqrt(M))
            assert np.max(np.abs(z)) <= 4
        agop_published = nf.quadratic_expected_second_derivatives(X, y, k, form="published").agop
        z_published = (agop_mc.mean(0) - agop_published) / (agop_mc.std(0) / np.sqrt(M))
        assert np.max(np.abs(z_published)) > 50


# ------------------------------------------------------------------------------------------------------------------
# targets
# ------------------------------------------------------------------------------------------------------------------
def test_chain_monomial_gradient_matches_finite_differences_and_egop_matches_monte_carlo():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 7))
    g = nf.chain_monomial_gradient(X, 5)
    eps = 1e-6
    for j in range(7):
        e = np.zeros(7)
        e[j] = eps
        assert_allclose(g[:, j], (nf.chain_monomial(X + e, 5) - nf.chain_monomial(X - e, 5)) / (2 * eps), atol=1e-8)
    Xb = rng.standard_normal((200_000, 8))
    for r in (3, 4, 5):
        E = nf.egop(lambda Z, r=r: nf.chain_monomial_gradient(Z, r), Xb)
        assert np.max(np.abs(E - nf.chain_monomial_egop(8, r))) < 0.03  # MC SE ~ 0.003-0.006 per entry
    E5 = nf.chain_monomial_egop(8, 5)
    assert np.linalg.matrix_rank(E5) == 5 and np.linalg.matrix_rank(nf.chain_monomial_egop(8, 4)) == 2
    assert E5[0, 1] == 0 and E5[0, 2] == 1 and E5[0, 0] == 2


# ------------------------------------------------------------------------------------------------------------------
# training rules
# ------------------------------------------------------------------------------------------------------------------
def test_gd_step_layer_rates_and_slo_step():
    net = Network(3, "relu", width=8)
    mlp = MLP.sample(net, d=3, seed=0, bias=True)
    X, y = np.random.default_rng(0).standard_normal((6, 3)), np.ones(6)
    _, g = mlp.grads(X, y)
    new = gd_step(mlp, g, 0.1, layer_lr=[1.0, 0.0, 2.0])
    assert_allclose(new.weights[0], mlp.weights[0] - 0.1 * g[0])
    assert_allclose(new.biases[0], mlp.biases[0] - 0.1 * g[1])
    assert np.all(new.weights[1] == mlp.weights[1])
    assert_allclose(new.weights[2], mlp.weights[2] - 0.2 * g[4])
    C, eps = [2.0, 0.5, 1.0], 0.1
    new = slo_step(mlp, g, 0.3, C, eps)
    for l in range(3):
        norm = np.sqrt(np.sum(g[2 * l] ** 2) + np.sum(g[2 * l + 1] ** 2))
        assert_allclose(new.weights[l], mlp.weights[l] - 0.3 * C[l] * g[2 * l] / (eps + norm))
    # descent direction (Beaglehole et al. 2024, sec. 5.2 prints '+', which ascends)
    assert new.grads(X, y)[0] < mlp.grads(X, y)[0]
    with pytest.raises(ValueError, match="speeds"):
        slo_step(mlp, g, 0.1, [1.0, 1.0])
    with pytest.raises(ValueError, match="grads"):
        gd_step(mlp, g[:-1], 0.1)


def test_steps_on_a_stack_use_per_network_norms():
    net = Network(2, "tanh", width=5)
    stack = MLP.sample(net, d=3, seed=0, bias=False, n_nets=2)
    X, y = np.random.default_rng(1).standard_normal((4, 3)), np.ones(4)
    _, g = stack.grads(X, y)
    new = slo_step(stack, g, 1.0, [1.0, 1.0], eps=0.0)
    for s in range(2):
        assert_allclose(np.linalg.norm(new.weights[0][s] - stack.weights[0][s]), 1.0, rtol=1e-12)


# ------------------------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------------------------
def _cli(*argv):
    parser = argparse.ArgumentParser()
    cli_nfa.add_parser(parser.add_subparsers())
    args = parser.parse_args(["nfa-early", *argv])
    return args.run(args)


def test_cli_nfa_early_matches_library_and_reports_monte_carlo():
    res = _cli("--depth", "3", "--json")
    assert isinstance(res, Result)
    X, y = _sphere_task()
    assert_allclose(res.data["cnfc_early_infinite"], nf.cnfc_early_infinite(Network(3), X, y, [1, 2, 3]), rtol=1e-14)
    res = _cli("--depth", "3", "--width", "256", "--nets", "16")
    assert len(res.rows[0]) == 5 and np.all(np.abs(res.data["z"][:2]) <= 4)


def test_cli_nfa_early_through_main_if_registered(capsys):
    from meanfield import cli

    assert cli.main(["nfa-early", "--depth", "4", "--task", "chain", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["cnfc_early_infinite"]) == 4
    assert cli.main(["nfa-early", "--depth", "1"]) == 2


def test_cli_nfa_early_rejects_bad_input():
    from meanfield.cli import UsageError

    with pytest.raises(UsageError, match="--depth"):
        _cli("--depth", "1")
    with pytest.raises(UsageError, match="activation|unknown"):
        _cli("--activation", "nope")
