"""meanfield.prediction: NNGP posterior and NTK-ensemble predictions (Lee et al. 2019) against independent dense
formulas, explicit gradient descent, a 50-digit mpmath solve for ill-conditioned kernels, the learning-curve theory,
and the silent-alignment claim (Atanasov et al. 2022, eq. (14)) on trained linear networks."""

import tracemalloc

import mpmath as mp
import numpy as np
import pytest
import scipy.linalg as sl

import meanfield as mf
from meanfield import Network

RNG = np.random.default_rng(12)
X = RNG.standard_normal((12, 6))
XS = RNG.standard_normal((5, 6))
Y = RNG.standard_normal((12, 2))
NET = Network(3, "erf", sigma_w2=1.5, sigma_b2=0.1)
TIMES = [0.0, 0.7, 5.0, np.inf]


@pytest.fixture(scope="module")
def kers():
    return mf.kernels(X, NET), mf.kernels(XS, NET, X2=X), mf.kernels(XS, NET)


def _dense_ntk(kt, kc, ks, t, y, steps=None, lr=None):
    """Lee et al. 2019, sec. 2.3.1, written with scipy.linalg.expm and solve (no eigendecomposition)."""
    Th, K, n = kt.ntk, kt.nngp, kt.ntk.shape[0]
    if np.isinf(t):
        P = np.linalg.inv(Th)
    elif steps is None:
        P = np.linalg.solve(Th, np.eye(n) - sl.expm(-Th * t / n))
    else:
        P = np.linalg.solve(Th, np.eye(n) - np.linalg.matrix_power(np.eye(n) - lr * Th / n, steps))
    A = kc.ntk @ P
    At = Th @ P
    cov = ks.nngp + A @ K @ A.T - A @ kc.nngp.T - kc.nngp @ A.T
    tcov = K + At @ K @ At.T - At @ K - K @ At.T
    return A @ y, cov, At @ y, np.diag(tcov)


def test_ntk_ensemble_matches_dense_formulas(kers):
    p = mf.predict(NET, X, Y, XS, t=TIMES)
    assert p.mean.shape == (4, 5, 2) and p.covariance.shape == (4, 5, 5) and p.train_variance.shape == (4, 12)
    for i, t in enumerate(TIMES):
        mean, cov, tmean, tvar = _dense_ntk(*kers, t, Y)
        np.testing.assert_allclose(p.mean[i], mean, atol=1e-12)
        np.testing.assert_allclose(p.covariance[i], cov, atol=1e-12)
        np.testing.assert_allclose(p.train_mean[i], tmean, atol=1e-12)
        np.testing.assert_allclose(p.train_variance[i], tvar, atol=1e-12)
    np.testing.assert_allclose(p.variance, np.diagonal(p.covariance, axis1=1, axis2=2))
    # t = 0: the prior; t = inf: the training targets are fitted and the training variance vanishes
    np.testing.assert_array_equal(p.mean[0], 0.0)
    np.testing.assert_allclose(p.covariance[0], kers[2].nngp, rtol=1e-15)
    np.testing.assert_allclose(p.train_mean[-1], Y, atol=1e-12)
    assert np.abs(p.train_variance[-1]).max() < 1e-12


def test_discrete_gradient_descent_matches_explicit_steps(kers):
    """(I - lr Theta / n)^k: the outputs of function-space gradient descent, iterated explicitly."""
    kt, kc, _ = kers
    n = X.shape[0]
    lr = 0.9 * mf.max_learning_rate(NET, X)
    steps = [0, 1, 7, 40]
    p = mf.predict(NET, X, Y, XS, t=[lr * k for k in steps], lr=lr, covariance=False)
    f, fs = np.zeros_like(Y), np.zeros((XS.shape[0], 2))
    for k in range(max(steps) + 1):
        if k in steps:
            i = steps.index(k)
            np.testing.assert_allclose(p.mean[i], fs, atol=1e-12)
            np.testing.assert_allclose(p.train_mean[i], f, atol=1e-12)
        resid = (f - Y) / n
        f, fs = f - lr * kt.ntk @ resid, fs - lr * kc.ntk @ resid
    pc = mf.predict(NET, X, Y, XS, t=lr * 7, lr=lr)
    mean, cov, _, tvar = _dense_ntk(*kers, lr * 7, Y, steps=7, lr=lr)
    np.testing.assert_allclose(pc.mean, mean, atol=1e-12)
    np.testing.assert_allclose(pc.covariance, cov, atol=1e-12)
    np.testing.assert_allclose(pc.train_variance, tvar, atol=1e-12)
    assert p.covariance is None and p.train_variance is None and p.lr == lr


def test_nngp_posterior_matches_dense_formulas(kers):
    kt, kc, ks = kers
    for reg in (0.0, 0.3):
        p = mf.predict(NET, X, Y[:, 0], XS, kernel="nngp", diag_reg=reg)
        Kr = kt.nngp + reg * np.eye(12)
        np.testing.assert_allclose(p.mean, kc.nngp @ np.linalg.solve(Kr, Y[:, 0]), atol=1e-12)
        np.testing.assert_allclose(p.covariance, ks.nngp - kc.nngp @ np.linalg.solve(Kr, kc.nngp.T), atol=1e-12)
        tvar = np.diag(kt.nngp - kt.nngp @ np.linalg.solve(Kr, kt.nngp))
        np.testing.assert_allclose(p.train_variance, tvar, atol=1e-12)
        assert p.t is None and p.mean.shape == (5,) and p.kernel == "nngp"


def test_ntk_with_the_nngp_as_tangent_kernel_ends_at_the_posterior(kers):
    """Readout-only training: Theta = K, and the ensemble at t = inf is the NNGP posterior (Lee et al. 2019)."""
    kt, kc, ks = kers
    a = mf.predict_kernels(kt.nngp, kc.nngp, Y, nngp_train=kt.nngp, nngp_test_train=kc.nngp, nngp_test=ks.nngp)
    b = mf.predict_kernels(kt.nngp, kc.nngp, Y, kernel="nngp", nngp_test=ks.nngp)
    np.testing.assert_allclose(a.mean, b.mean, atol=1e-12)
    np.testing.assert_allclose(a.covariance, b.covariance, atol=1e-12)


def test_standard_parameterization_and_scalar_times():
    net = Network(3, "relu", sigma_w2=2.0, sigma_b2=0.1, parameterization="standard", width=64)
    kt, kc = mf.kernels(X, net), mf.kernels(XS, net, X2=X)
    p = mf.predict(net, X, Y, XS, t=2.0, covariance=False)
    assert p.mean.shape == (5, 2) and p.t.shape == ()
    np.testing.assert_allclose(p.mean, mf.kernel_regression(kt.ntk, kc.ntk, Y, t=2.0), rtol=1e-13)
    np.testing.assert_allclose(p.mean, mf.kernel_regression(kt.ntk, kc.ntk, Y, t=[2.0])[0], rtol=1e-13)


def _ordered_kernel(depth, seed):
    """Deep erf networks in the ordered phase: correlations tend to 1, the kernel to rank one."""
    rng = np.random.default_rng(seed)
    Xa = rng.standard_normal((19, 8))
    return mf.kernels(Xa, Network(depth, "erf", sigma_w2=0.5, sigma_b2=0.1)), rng.standard_normal(16)


@pytest.mark.parametrize("depth, kappa_min", [(10, 1e5), (20, 1e8), (30, 5e11), (32, 1e12)])
def test_ill_conditioned_kernels_against_mpmath(depth, kappa_min):
    """NNGP condition numbers 2.6e5 .. 2.4e12 (NTK 3e4 .. 1e11): relative error of the test means below
    kappa * eps (the float64 limit of a backward-stable solve) and within 10x of LU with pivoting."""
    mp.mp.dps = 50
    k, y = _ordered_kernel(depth, depth)
    kappas = []
    for K_all in (k.nngp, k.ntk):
        K, Ks = K_all[:16, :16], K_all[16:, :16]
        lam = np.linalg.eigvalsh(K)
        kappas.append(lam[-1] / lam[0])
        a = mp.lu_solve(mp.matrix(K.tolist()), mp.matrix(y.tolist()))
        ref = np.array([float(v) for v in mp.matrix(Ks.tolist()) * a], dtype=float)
        err = np.abs(mf.kernel_regression(K, Ks, y) - ref).max() / np.abs(ref).max()
        err_lu = np.abs(Ks @ np.linalg.solve(K, y) - ref).max() / np.abs(ref).max()
        assert err < kappas[-1] * np.finfo(float).eps
        assert err < max(10 * err_lu, 1e-13)
    assert kappas[0] > kappa_min  # the test really reaches the ill-conditioned range


def test_memory_does_not_grow_with_the_number_of_times():
    """n = 120, 1000 times, mean only: an n x n matrix per time would be 115 MB."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((120, 40))
    K = A @ A.T / 40 + 0.1 * np.eye(120)
    Ks = rng.standard_normal((3, 40)) @ A.T / 40
    tracemalloc.start()
    out = mf.kernel_regression(K, Ks, rng.standard_normal(120), t=np.linspace(0, 100, 1000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (1000, 3)
    assert peak < 15 * 120 * 120 * 8  # a handful of n x n arrays


def test_learning_curve_theory_against_kernel_regression_with_the_one_solver():
    """learning_curve (Bordelon et al. 2020; Canatar et al. 2021) vs kernel ridge regression computed with
    kernel_regression: power-law spectrum in D = 200, P = 30, ridge 1e-3, 100 draws, within 3 standard errors."""
    rng = np.random.default_rng(7)
    lam = np.arange(1, 201.0) ** -1.5
    abar2 = lam / lam.sum()
    w = np.sqrt(abar2) * rng.choice([-1.0, 1.0], lam.size)
    p, errs = 30, []
    for _ in range(100):
        Xd = rng.standard_normal((p, lam.size))
        Kt = (Xd * lam) @ Xd.T
        # test "inputs": the eigenfunctions themselves, k(e_k, x) = lam_k x_k, so the prediction is w_hat_k
        w_hat = mf.kernel_regression(Kt, (Xd * lam).T, Xd @ w, diag_reg=1e-3)
        errs.append(np.sum((w_hat - w) ** 2))
    errs = np.array(errs)
    theory = float(mf.learning_curve(lam, abar2, p, ridge=1e-3).Eg)
    assert abs(errs.mean() - theory) <= 3 * errs.std(ddof=1) / np.sqrt(errs.size)


# ---- the silent-alignment claim (Atanasov et al. 2022, eq. (14)) -----------------------------------------------
def test_silent_alignment_final_ntk_regression_reproduces_the_network():
    """Two-layer linear network, P = 10 < D = 30: the final-NTK gap shrinks like sigma (3.5e-2 -> 3.5e-4 over two
    decades); the initial NTK stays ~35 % off."""
    from meanfield.experiments.ensembles import silent_alignment_gap

    g1 = silent_alignment_gap(2, 1e-1, 0.1, 800)
    g3 = silent_alignment_gap(2, 1e-3, 0.1, 800)
    assert g1.loss < 1e-20 and g3.loss < 1e-20
    assert g3.final < 1e-3 and g3.final < 0.02 * g1.final
    assert min(g1.initial, g3.initial) > 0.2


# ---- bad input ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(X_test=np.ones((3, 5))), "X_test"),
        (dict(y_train=np.ones(11)), "y_train"),
        (dict(y_train=np.r_[np.nan, np.ones(11)]), "y_train"),
        (dict(diag_reg=-1e-3), "diag_reg"),
        (dict(lr=10.0, t=[10.0]), "lr"),
        (dict(lr=0.1, t=[0.25]), "t"),
        (dict(t=[-1.0]), "t"),
        (dict(t=[[1.0]]), "t"),
        (dict(kernel="nngp", t=1.0), "t"),
        (dict(kernel="gp"), "kernel"),
        (dict(covariance=1), "covariance"),
        (dict(X_train=np.ones((12, 6)) * np.nan), "X_train"),
    ],
)
def test_predict_bad_input(kwargs, word):
    args = dict(X_train=X, y_train=Y[:, 0], X_test=XS)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        mf.predict(NET, **args)


def test_singular_kernel_needs_diag_reg():
    Xd = np.vstack([X[:4], X[:1]])  # a repeated input: the training kernel is singular
    with pytest.raises(ValueError, match="diag_reg"):
        mf.predict(NET, Xd, np.arange(5.0), XS)
    with pytest.raises(ValueError, match="diag_reg"):
        mf.predict(NET, Xd, np.arange(5.0), XS, kernel="nngp")
    p = mf.predict(NET, Xd, np.arange(5.0), XS, t=[1.0, 10.0])  # finite times need no inverse
    assert np.all(np.isfinite(p.mean))
    q = mf.predict(NET, Xd, np.arange(5.0), XS, diag_reg=1e-6)
    assert np.all(np.isfinite(q.mean))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(k_train=-np.eye(3)), "positive semi-definite"),
        (dict(k_train=np.triu(np.ones((3, 3)))), "symmetric"),
        (dict(k_test_train=np.ones((2, 4))), "k_test_train"),
        (dict(nngp_train=np.eye(3)), "nngp_test_train"),
        (dict(kernel="nngp", nngp_train=np.eye(3)), "nngp_train"),
    ],
)
def test_predict_kernels_bad_input(kwargs, word):
    args = dict(k_train=np.eye(3), k_test_train=np.ones((2, 3)), y_train=np.ones(3))
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        mf.predict_kernels(**args)


def test_architectures_are_those_of_kernels():
    """predict computes with meanfield.kernels, which refuses (by name) the options it does not implement."""
    net = Network(3, residual=1.0)
    try:
        mf.kernels(X[:2], net)
    except ValueError as exc:
        with pytest.raises(ValueError, match="residual"):
            mf.predict(net, X, Y, XS)
        assert "residual" in str(exc)
    else:
        p = mf.predict(net, X, Y, XS, covariance=False)
        assert np.all(np.isfinite(p.mean))
