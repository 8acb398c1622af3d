"""Tests for meanfield.alignment.learning_curves: cumulative power (Canatar & Pehlevan 2022, eq. (3)), learning curves
(Bordelon et al. 2020; Canatar et al. 2021) and layer alignment at initialization."""

import dataclasses

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import optimize

import meanfield as mf
from meanfield.alignment import cumulative_power, init_layer_alignment, learning_curve
from meanfield.data import to_sphere


# ------------------------------------------------------------------------------------------------------------------
# cumulative power
# ------------------------------------------------------------------------------------------------------------------
def test_cumulative_power_equals_projection_on_top_singular_vectors():
    """Independent route: for K = F F^T the top eigenvectors are the left singular vectors of F."""
    rng = np.random.default_rng(0)
    n, p, o = 40, 12, 3
    F = rng.standard_normal((n, p)) * np.geomspace(3, 0.1, p)
    Y = rng.standard_normal((n, o))
    cp = cumulative_power(F @ F.T, Y)
    lam, C = cp.eigvals, cp.C
    U, S, _ = np.linalg.svd(F, full_matrices=False)
    assert_allclose(lam[:p], S**2, rtol=1e-10)
    assert_allclose(lam[p:], 0, atol=1e-10 * S[0] ** 2)
    for rho in range(1, p + 1):
        proj = U[:, :rho] @ (U[:, :rho].T @ Y)
        assert_allclose(C[rho - 1], np.sum(proj**2) / np.sum(Y**2), rtol=1e-10)
    assert_allclose(C[-1], 1.0, rtol=1e-12)


def test_cumulative_power_below_one_at_the_rank_when_target_leaves_the_span():
    """Canatar & Pehlevan 2022, sec. III: target components along zero eigenvalues cannot be learned."""
    rng = np.random.default_rng(1)
    F = rng.standard_normal((30, 5))
    y_in = F @ rng.standard_normal(5)
    C_in = cumulative_power(F @ F.T, y_in).C
    assert_allclose(C_in[4], 1.0, rtol=1e-10)
    y_out = y_in + rng.standard_normal(30)
    C_out = cumulative_power(F @ F.T, y_out).C
    assert C_out[4] < 0.99
    assert np.all(np.diff(C_out) >= -1e-15)


def test_cumulative_power_uses_first_rho_modes_inclusive():
    """C(1) already holds the first mode's power (the published eq. (3), sum_{gamma<rho}, would give C(1) = 0)."""
    K = np.diag([5.0, 1.0])
    C = cumulative_power(K, np.array([3.0, 4.0])).C
    assert_allclose(C, [9 / 25, 1.0], rtol=1e-14)


def test_cumulative_power_centered_equals_manual_centering():
    rng = np.random.default_rng(2)
    F = rng.standard_normal((20, 6)) + 2.0
    K = F @ F.T
    y = rng.standard_normal(20) + 5.0
    H = np.eye(20) - 1.0 / 20
    lam_c, C_c = dataclasses.astuple(cumulative_power(K, y, center=True))
    lam_m, C_m = dataclasses.astuple(cumulative_power(H @ K @ H, H @ y))
    assert_allclose(lam_c, lam_m, atol=1e-10)
    assert_allclose(C_c[:6], C_m[:6], rtol=1e-10)


@pytest.mark.parametrize(
    "K, Y, word",
    [
        (np.ones((3, 2)), np.ones(3), "square"),
        (np.array([[1.0, 2.0], [0.0, 1.0]]), np.ones(2), "symmetric"),
        (np.eye(3), np.ones(4), "rows"),
        (np.eye(3), np.array([1.0, np.nan, 0.0]), "finite"),
    ],
)
def test_cumulative_power_bad_input(K, Y, word):
    with pytest.raises(ValueError, match=word):
        cumulative_power(K, Y)


# ------------------------------------------------------------------------------------------------------------------
# learning curves
# ------------------------------------------------------------------------------------------------------------------
def test_learning_curve_at_zero_samples_is_target_power():
    """With kappa^2 in the numerator, E_g(P=0) = sum abar^2 exactly (the published form gives /kappa^2)."""
    eigs = np.array([2.0, 0.5, 0.1, 0.0])
    abar2 = np.array([0.3, 0.2, 0.4, 0.1])
    for ridge, noise in [(0.0, 0.0), (0.3, 0.0), (1e-3, 0.2)]:
        lc = learning_curve(eigs, abar2, 0.0, ridge=ridge, noise=noise)
        assert float(lc.Eg) == pytest.approx(abar2.sum(), rel=1e-15)
        assert float(lc.kappa) == pytest.approx(ridge + eigs.sum(), rel=1e-15)


def test_learning_curve_isotropic_ridgeless_is_one_minus_P_over_D():
    """Exact result: min-norm linear regression on x ~ N(0, I_D) removes the projection on a random P-subspace."""
    d = 25
    P = np.arange(0, d)
    lc = learning_curve(np.ones(d), np.full(d, 1.0 / d), P)
    assert_allclose(lc.Eg, 1 - P / d, rtol=1e-12)
    assert_allclose(lc.kappa, d - P, rtol=1e-12)


def test_learning_curve_kappa_solves_fixed_point_and_matches_brentq():
    eigs = np.arange(1, 401.0) ** -1.5
    abar2 = eigs * np.cos(np.arange(400)) ** 2
    P = np.array([[1.0, 7.0], [60.0, 350.0]])
    for ridge in (0.0, 1e-3, 0.5):
        lc = learning_curve(eigs, abar2, P, ridge=ridge)
        assert lc.Eg.shape == P.shape
        for p, kap in zip(P.ravel(), lc.kappa.ravel(), strict=True):
            ref = optimize.brentq(
                lambda k, p=p, ridge=ridge: k - ridge - k * np.sum(eigs / (p * eigs + k)),
                1e-300,
                10.0,
                xtol=1e-300,
                rtol=1e-15,
            )
            assert_allclose(kap, ref, rtol=1e-12)


def test_learning_curve_equals_kappa_for_target_power_equal_to_eigenvalues():
    """Identity at ridge 0 and P below the rank: abar_k^2 = lambda_k gives E_g = kappa (from the fixed point)."""
    eigs = np.geomspace(1, 1e-4, 300)
    lc = learning_curve(eigs, eigs, np.array([3.0, 30.0, 250.0]))
    assert_allclose(lc.Eg, lc.kappa, rtol=1e-11)


def test_learning_curve_beyond_the_rank_with_zero_ridge():
    """kappa = 0 for P >= n_+: the zero-mode power acts as noise, amplified by 1 / (1 - n_+/P)."""
    eigs = np.array([1.0, 0.5, 0.0])
    abar2 = np.array([0.2, 0.3, 0.5])
    lc = learning_curve(eigs, abar2, np.array([2.0, 4.0, 8.0]), noise=0.1)
    gamma = 2 / np.array([2.0, 4.0, 8.0])
    assert_allclose(lc.kappa, 0.0)
    assert_allclose(lc.gamma, gamma)
    assert np.isinf(lc.Eg[0])
    assert_allclose(lc.Eg[1:], (0.5 + gamma[1:] * 0.1) / (1 - gamma[1:]), rtol=1e-14)
    # a learnable noiseless target interpolates exactly at P = n_+
    assert float(learning_curve(eigs[:2], abar2[:2], 2.0).Eg) == 0.0


def test_learning_curve_decreases_with_P_without_noise():
    eigs = np.arange(1, 201.0) ** -2.0
    lc = learning_curve(eigs, eigs / eigs.sum(), np.arange(0, 300), ridge=1e-4)
    assert np.all(np.diff(lc.Eg) < 0)


def test_gapped_spectrum_error_is_one_minus_cumulative_power():
    """Canatar & Pehlevan 2022, sec. III: with a spectral gap and P between the mode counts, E_g ~ 1 - C(rho*).

    Levels: m1 = 1 mode at 1, m2 = 500 at 1e-4 (ridgeless). At P = 25 the first level is learned and the rest
    is not; the corrections are gamma/(1 - gamma) with gamma ~ m1/P + P/m2 = 0.09.
    """
    m1, m2 = 1, 500
    eigs = np.concatenate([np.ones(m1), np.full(m2, 1e-4)])
    abar2 = np.concatenate([np.full(m1, 0.6 / m1), np.full(m2, 0.4 / m2)])
    C = cumulative_power(np.diag(eigs), np.sqrt(abar2)).C
    lc = learning_curve(eigs, abar2, 25.0)
    assert C[m1 - 1] == pytest.approx(0.6, rel=1e-12)
    bound = 0.09 / (1 - 0.09)
    assert abs(float(lc.Eg) / (1 - C[m1 - 1]) - 1) < bound


def _ridge_population_error(lam, w, p, ridge, noise, reps, rng):
    """Kernel ridge with K(x, x') = sum_k lam_k x_k x'_k, x ~ N(0, I): exact test error |w_hat - w|^2 per draw."""
    errs = np.empty(reps)
    for i in range(reps):
        X = rng.standard_normal((p, lam.size))
        y = X @ w + np.sqrt(noise) * rng.standard_normal(p)
        alpha = np.linalg.solve((X * lam) @ X.T + ridge * np.eye(p), y)
        errs[i] = np.sum((lam * (X.T @ alpha) - w) ** 2)
    return errs.mean(), errs.std(ddof=1) / np.sqrt(reps)


@pytest.mark.parametrize("p, noise", [(20, 0.0), (20, 0.05), (50, 0.0), (50, 0.05)])
def test_learning_curve_matches_kernel_ridge_simulation(p, noise):
    """Power-law spectrum lambda_k = k^{-1.5} in D = 200 dims, abar_k^2 prop. to lambda_k: within 3 SE (100 draws)."""
    rng = np.random.default_rng(100 + p + int(100 * noise))
    lam = np.arange(1, 201.0) ** -1.5
    abar2 = lam / lam.sum()
    w = np.sqrt(abar2) * rng.choice([-1.0, 1.0], lam.size)  # y = sum_k abar_k phi_k, phi_k(x) = x_k
    mean, se = _ridge_population_error(lam, w, p, 1e-3, noise, 100, rng)
    lc = learning_curve(lam, abar2, p, ridge=1e-3, noise=noise)
    assert abs(mean - float(lc.Eg)) <= 3 * se


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(eigs=[1.0, -1.0], abar2=[1.0, 1.0], P=1), "eigs"),
        (dict(eigs=[1.0, 1.0], abar2=[1.0], P=1), "equal length"),
        (dict(eigs=[1.0], abar2=[1.0], P=-1), "P"),
        (dict(eigs=[1.0], abar2=[1.0], P=np.nan), "P"),
        (dict(eigs=[1.0], abar2=[1.0], P=1, ridge=-1.0), "ridge"),
        (dict(eigs=[1.0], abar2=[1.0], P=1, noise=np.inf), "noise"),
        (dict(eigs=[0.0], abar2=[1.0], P=1), "positive eigenvalue"),
    ],
)
def test_learning_curve_bad_input(kwargs, word):
    with pytest.raises(ValueError, match=word):
        learning_curve(**kwargs)


# ------------------------------------------------------------------------------------------------------------------
# layer-target alignment at initialization (Canatar & Pehlevan 2022 set-up)
# ------------------------------------------------------------------------------------------------------------------
def _clusters(d=16, n=60, seed=0):
    """Two balanced Gaussian clusters projected on sqrt(d) S^{d-1}, one-hot labels."""
    rng = np.random.default_rng(seed)
    lab = np.repeat([0, 1], n // 2)
    X = rng.standard_normal((2, d))[lab] + rng.standard_normal((n, d))
    return to_sphere(X), np.eye(2)[lab]


def _cka(K, T):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    Kc, Tc = H @ K @ H, H @ T @ H
    return np.trace(Kc @ Tc) / np.sqrt(np.trace(Kc @ Kc) * np.trace(Tc @ Tc))


def test_init_layer_alignment_starts_at_the_input_kernel():
    X, Y = _clusters()
    A = init_layer_alignment(mf.Network(3, "tanh", sigma_w2=1.7, sigma_b2=0.3), X, Y)
    assert_allclose(A[0], _cka(X @ X.T, Y @ Y.T), rtol=1e-12)


def test_init_layer_alignment_of_a_linear_network_is_depth_independent():
    X, Y = _clusters(seed=1)
    A = init_layer_alignment(mf.Network(6, "linear", sigma_w2=1.3, sigma_b2=0.4), X, Y)
    assert_allclose(A, A[0], rtol=1e-12)
    A_kta = init_layer_alignment(mf.Network(6, "linear", sigma_w2=1.3), X, Y, center=False)
    assert_allclose(A_kta, np.sum((X @ X.T) * (Y @ Y.T)) / (np.linalg.norm(X @ X.T) * np.linalg.norm(Y @ Y.T)))


def test_init_layer_alignment_decays_with_depth_to_the_identity_kernel_value():
    """ReLU edge of chaos: input-aligned hierarchy, A_l -> sqrt((o - 1)/(n - 1)) like 1/l."""
    X, Y = _clusters()
    A = init_layer_alignment(mf.Network(1000), X, Y)
    limit = np.sqrt(1 / 59)
    assert np.all(np.diff(A) < 0)
    assert limit < A[-1] < A[99]
    assert (A[99] - limit) > 5 * (A[-1] - limit)  # a 1/l approach gives a factor ~10 between l = 100 and 1000


def test_init_layer_alignment_matches_finite_relu_network_after_jackknife():
    """Layer 1 of ReLU nets of width 500 (40 draws). CKA of a finite Gram matrix is biased by O(1/N); a grouped
    jackknife over the N iid hidden units removes that term, leaving O(1/N^2)."""
    X, Y = _clusters()
    theory = init_layer_alignment(mf.Network(2), X, Y)[1]
    rng = np.random.default_rng(17)
    n_units, groups, reps = 500, 10, 40
    T = Y @ Y.T
    est = np.empty(reps)
    for r in range(reps):
        H = np.maximum(X @ (rng.standard_normal((n_units, X.shape[1])) * np.sqrt(2 / X.shape[1])).T, 0)
        K = H @ H.T
        leave_out = [_cka(K - H[:, g::groups] @ H[:, g::groups].T, T) for g in range(groups)]
        est[r] = groups * _cka(K, T) - (groups - 1) * np.mean(leave_out)
    z = (est.mean() - theory) / (est.std(ddof=1) / np.sqrt(reps))
    assert abs(z) <= 4


def test_init_layer_alignment_bad_input():
    with pytest.raises(ValueError, match="Network"):
        init_layer_alignment(3, np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="rows"):
        init_layer_alignment(mf.Network(2), np.eye(3), np.ones(4))
