"""Tests for meanfield.silent (Atanasov et al. 2022; Saxe et al. 2014).

The training checks train linear networks with ``meanfield.train`` (full batch, momentum 0, loss
``|f - y|^2 / (2P)``, so that t = learning rate x steps is the theory's time) from the small initial weights drawn
here, and compare with scipy's ``solve_ivp`` for exact gradient flow; both are independent of the closed forms under
test. Per-step observables (order parameters, kernel alignment, end-to-end weight) come from ``train``'s
``callback``; ``test_train_step_is_the_gradient_step_of_the_theory`` pins the step to a hand-written one.
"""

import dataclasses

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import integrate, optimize
from silent_reference import (
    D,
    N,
    P,
    _crossing,
    _gd_two_layer,
    _ntk_matrix_jacobian,
    _reference_gd_step,
    _rel,
    _task,
    _train_gd,
    _two_layer_init,
    _unit,
)

import meanfield.silent as ms


# ------------------------------------------------------------------------------------------------------------------
# two-layer closed forms: algebraic checks
# ------------------------------------------------------------------------------------------------------------------
def test_two_layer_qr_with_r0_zero_is_published_eqs_27_28():
    t, s, q0 = np.linspace(0, 8, 41), 1.3, 2e-4
    qr = ms.two_layer_qr(t, s, q0)
    q, r = qr.q, qr.r
    den = np.exp(2 * s * t) - 1 + 2 * s / q0
    assert_allclose(r, s * 2 * np.sinh(2 * s * t) / den, rtol=1e-12, atol=1e-300)
    assert_allclose(q, s * 2 * np.cosh(2 * s * t) / den, rtol=1e-12)


def test_two_layer_qr_balanced_aligned_start_is_saxe_sigmoid():
    t, s, c0 = np.linspace(0, 10, 51), 2.0, 1e-3
    qr = ms.two_layer_qr(t, s, c0, c0)
    q, r = qr.q, qr.r
    e = np.exp(2 * s * t)
    assert_allclose(q, s * e / (e - 1 + s / c0), rtol=1e-12)
    assert_allclose(r, q, rtol=1e-12)


def test_two_layer_qr_early_time_is_linearized_phase_one():
    # Atanasov et al. 2022, eq. (16): q + r = (q0 + r0) e^{2st}, q - r = (q0 - r0) e^{-2st}; error O(q e^{2st} / s)
    t, s, q0, r0 = np.linspace(0, 1.5, 16), 1.0, 1e-8, -3e-9
    qr = ms.two_layer_qr(t, s, q0, r0)
    q, r = qr.q, qr.r
    assert_allclose(q + r, (q0 + r0) * np.exp(2 * s * t), rtol=1e-5)
    assert_allclose(q - r, (q0 - r0) * np.exp(-2 * s * t), rtol=1e-5)


def test_two_layer_qr_large_time_limit_and_no_overflow():
    qr = ms.two_layer_qr(np.array([1e3, 1e6]), 1.5, 1e-6, 2e-7)
    q, r = qr.q, qr.r
    assert_allclose(q, 1.5, rtol=1e-14)
    assert_allclose(r, 1.5, rtol=1e-14)


def test_half_loss_time_solves_two_layer_loss():
    s, q0, r0 = 1.7, 3e-5, -4e-6
    t_half = ms.half_loss_time(s, q0, r0)
    # the closed form neglects the decaying mode, a relative error O((q0/s)^2) in the loss
    assert_allclose(ms.two_layer_loss(t_half, s, q0, r0), s**2 / 4, rtol=1e-6)


def test_two_layer_ntk_matrix_and_order_parameters_match_the_parameter_jacobian():
    rng = np.random.default_rng(16)
    a, W = rng.standard_normal(N), rng.standard_normal((N, D))
    beta = _unit(rng.standard_normal(D))
    M = ms.two_layer_ntk_matrix(a, W)
    assert_allclose(M, _ntk_matrix_jacobian([W, a[None, :]]), rtol=1e-12)  # Atanasov et al. 2022, eq. (5)
    o = ms.order_parameters(a, W, 3 * beta)
    q, r = o.q, o.r
    assert_allclose([q, r], [0.5 * beta @ M @ beta, beta @ (W.T @ a)], rtol=1e-12)  # App. B.1


def test_gram_alignment_equals_matrix_alignment_for_whitened_data():
    X, y, beta, rng = _task(s=1.7, seed=3)
    B = rng.standard_normal((D, D))
    M = B @ B.T
    K = X @ M @ X.T
    assert_allclose(y @ K @ y / (np.linalg.norm(K) * (y @ y)), ms.matrix_alignment(M, beta), rtol=1e-12)


def test_alignment_curve_matches_explicit_kernel_matrix():
    rng = np.random.default_rng(4)
    beta = _unit(rng.standard_normal(D))
    a, W = _two_layer_init(rng, 1e-2)
    M0 = ms.two_layer_ntk_matrix(a, W)
    o = ms.order_parameters(a, W, beta)
    q0, r0 = o.q, o.r
    t = np.array([0.0, 0.7, 1.9, 5.0])
    q = ms.two_layer_qr(t, 1.0, q0, r0).q
    explicit = [ms.matrix_alignment(M0 + (qi - q0) * (np.eye(D) + np.outer(beta, beta)), beta) for qi in q]
    assert_allclose(ms.alignment_curve(t, M0, beta, 1.0, q0, r0), explicit, rtol=1e-12)


def test_isotropic_alignment_time_closed_form_matches_root_finding():
    for d, s, frac in [(30, 1.0, 0.9), (10, 2.5, 0.5), (200, 0.3, 0.99)]:
        lim = ms.alignment_limits(d)
        A0, Ainf = lim.A0, lim.A_inf
        level = A0 + frac * (Ainf - A0)
        x = optimize.brentq(lambda x, d=d, level=level: ms.isotropic_alignment(x, d) - level, 0, 1e9, xtol=1e-14)
        assert_allclose(ms.alignment_time(d, s, frac), np.arccosh(1 + 2 * x) / (2 * s), rtol=1e-10)
    assert_allclose(ms.alignment_time(30, 1.0), 1.7817, atol=5e-5)  # 1.782 / s


def test_alignment_time_with_isotropic_M0_reduces_to_closed_form():
    beta = _unit(np.arange(1.0, D + 1))
    q0 = 1e-9
    t_measured = ms.alignment_time(D, 1.0, 0.9, M0=2 * q0 * np.eye(D), beta=beta, q0=q0)
    assert_allclose(t_measured, ms.alignment_time(D, 1.0, 0.9), rtol=1e-6)


def test_alignment_limits_agree_with_final_kernels():
    beta = _unit(np.linspace(-1, 2, D))
    for L in (2, 3, 5):
        A_inf = ms.matrix_alignment(ms.final_ntk_linear(beta, 1.3, L), beta)
        assert_allclose(ms.alignment_limits(D, L).A_inf, A_inf, rtol=1e-12)
        assert_allclose(A_inf, L / np.sqrt(L**2 + D - 1), rtol=1e-12)
    assert_allclose(ms.alignment_limits(D).A_inf, 2 / np.sqrt(33), rtol=1e-14)
    assert_allclose(ms.alignment_limits(D, L=3, ratio=8.0).A_inf, 9 / np.sqrt(81 + D - 1), rtol=1e-14)


def test_expected_q0_matches_monte_carlo():
    rng = np.random.default_rng(5)
    sigma, n, d, reps = 0.3, 20, 12, 4000
    beta = _unit(rng.standard_normal(d))
    draws = np.array(
        [dataclasses.astuple(ms.order_parameters(*_two_layer_init(rng, sigma, d, n), beta)) for _ in range(reps)]
    )
    for value, expected in [(draws[:, 0], ms.expected_q0(sigma, n, d)), (draws[:, 1], 0.0)]:
        z = (value.mean() - expected) / (value.std(ddof=1) / np.sqrt(reps))
        assert abs(z) <= 4
    r2 = draws[:, 1] ** 2  # Atanasov et al. 2022, eq. (17): <r0^2> = sigma^4 / D
    assert abs((r2.mean() - sigma**4 / d) / (r2.std(ddof=1) / np.sqrt(reps))) <= 4


# ------------------------------------------------------------------------------------------------------------------
# two-layer closed forms against gradient flow and gradient descent
# ------------------------------------------------------------------------------------------------------------------
def _flow_two_layer(X, y, a, W, t_eval):
    """Exact gradient flow of the two-layer linear network (solve_ivp); returns (a, W) at each time."""
    p, n, d = X.shape[0], a.size, X.shape[1]

    def rhs(_, th):
        aa, WW = th[:n], th[n:].reshape(n, d)
        g = X.T @ (X @ (WW.T @ aa) - y) / p
        return -np.concatenate([WW @ g, np.outer(aa, g).ravel()])

    sol = integrate.solve_ivp(
        rhs, (0, t_eval[-1]), np.concatenate([a, W.ravel()]), t_eval=t_eval, method="DOP853", rtol=1e-10, atol=1e-16
    )
    assert sol.success
    return [(th[:n], th[n:].reshape(n, d)) for th in sol.y.T]


def test_whole_trajectory_closed_forms_match_gradient_flow_to_order_sigma_squared():
    t = np.linspace(0, 14, 141)
    errors = []
    for sigma in (1e-2, 1e-3):
        X, y, beta, rng = _task()
        a, W = _two_layer_init(rng, sigma)
        o = ms.order_parameters(a, W, beta)
        q0, r0 = o.q, o.r
        flow = _flow_two_layer(X, y, a, W, t)
        q, r = np.array([dataclasses.astuple(ms.order_parameters(aa, WW, beta)) for aa, WW in flow]).T
        pred = ms.two_layer_qr(t, 1.0, q0, r0)
        q_pred, r_pred = pred.q, pred.r
        err = max(np.max(np.abs(q - q_pred) / q_pred), np.max(np.abs(r - r_pred)))
        assert err < 5 * q0  # neglected terms are O(q0 / s)
        errors.append(err)
        # the published r0 = 0 forms (eqs. (27)-(28)) miss by ~|r0|/q0 (-0.17 in this draw)
        q_published = ms.two_layer_qr(t, 1.0, q0).q
        assert np.max(np.abs(q - q_published) / q_published) > 0.05
    assert 50 < errors[0] / errors[1] < 200  # sigma^2 scaling: factor 100 per decade


@pytest.mark.parametrize(
    "dims, rho", [((D, N, 1), (1.0, 1.0)), ((D, N, N, 1), (4.0, 1.0, 1.0)), ((D, 7, 5, 1), (2, 0.5, 3))]
)
def test_train_step_is_the_gradient_step_of_the_theory(dims, rho):
    """meanfield.train (full batch, momentum 0, "mse") = GD on |f - y|^2/(2P) with rates lr * rho_l, so t = lr k."""
    X, y, _, rng = _task(s=1.3, seed=17)
    Ws = [rng.standard_normal((dims[l + 1], dims[l])) * 0.3 / np.sqrt(dims[l]) for l in range(len(dims) - 1)]
    lr, steps = 0.05, 3
    hist = _train_gd(X, y, Ws, lr, steps, rho)
    ref, losses = Ws, []
    for _ in range(steps):
        ref, value = _reference_gd_step(X, y, ref, lr, rho)
        losses.append(value)
    for got, want in zip(hist.mlp.weights, ref, strict=True):
        assert_allclose(got, want, rtol=1e-12, atol=1e-12 * np.max(np.abs(want)))
    assert_allclose(hist.step_loss, losses, rtol=1e-12)


@pytest.fixture(scope="module")
def gd_runs():
    """Two-layer GD runs (D=30, N=50, P=200, lr 0.005), s = 1 at sigma = 1e-2, 1e-3 and s = 2."""
    runs = {}
    for s, sigma, lr, T in [(1.0, 1e-2, 0.005, 10.0), (1.0, 1e-3, 0.005, 12.0), (2.0, 1e-3, 0.0025, 6.0)]:
        X, y, beta, rng = _task(s=s)
        a, W = _two_layer_init(rng, sigma)
        o = ms.order_parameters(a, W, beta)
        q0, r0 = o.q, o.r
        run = _gd_two_layer(X, y, beta, a, W, lr, int(round(T / lr)))
        run.update(q0=q0, r0=r0, M0=ms.two_layer_ntk_matrix(a, W), beta=beta, s=s, lr=lr)
        runs[s, sigma] = run
    return runs


def _measured_times(run):
    t_half = _crossing(run["t"], run["loss"], run["loss"][0] / 2)
    A = run["A"]
    t_align = _crossing(run["t"], A, A[0] + 0.9 * (A[-1] - A[0]))
    return t_half, t_align


def test_half_loss_time_matches_gd(gd_runs):
    for run in gd_runs.values():
        t_half, _ = _measured_times(run)
        predicted = ms.half_loss_time(run["s"], run["q0"], run["r0"])
        assert abs(t_half - predicted) < 0.05
        # the published onset log(s/u0^2)/s (Atanasov et al. 2022, secs. 3.1, 3.1.2) is about twice too late
        assert ms.half_loss_time(run["s"], run["q0"], form="published") - t_half > 0.8 * t_half


def test_half_loss_time_step_per_decade_of_sigma_is_ln10_over_s(gd_runs):
    step = _measured_times(gd_runs[1.0, 1e-3])[0] - _measured_times(gd_runs[1.0, 1e-2])[0]
    # GD with rate eta runs slow by a relative eta * s: allow twice that over the step
    assert abs(step - np.log(10)) < 2 * 0.005 * np.log(10)


def test_alignment_time_is_independent_of_sigma_and_matches_prediction(gd_runs):
    times = {}
    for key, run in gd_runs.items():
        _, t_align = _measured_times(run)
        predicted = ms.alignment_time(D, run["s"], 0.9, run["M0"], run["beta"], run["q0"], run["r0"])
        assert abs(t_align - predicted) < 0.05 / run["s"]
        times[key] = t_align
    assert abs(times[1.0, 1e-2] - times[1.0, 1e-3]) < 0.01
    assert abs(times[1.0, 1e-3] - 1.83) < 0.05
    assert abs(2 * times[2.0, 1e-3] - times[1.0, 1e-3]) < 0.01  # t_A proportional to 1/s


def test_alignment_is_complete_before_the_loss_drops(gd_runs):
    """Silent alignment: at the half-loss time the NTK alignment already sits at 2/sqrt(D+3)."""
    run = gd_runs[1.0, 1e-3]
    A_inf = ms.alignment_limits(D).A_inf
    assert abs(run["A"][-1] - A_inf) < 1e-3
    t_half, t_align = _measured_times(run)
    assert abs(np.interp(t_half, run["t"], run["A"]) - A_inf) < 1e-3
    assert t_align < 0.3 * t_half


def test_alignment_curve_tracks_gd(gd_runs):
    for run in gd_runs.values():
        predicted = ms.alignment_curve(run["t"], run["M0"], run["beta"], run["s"], run["q0"], run["r0"])
        assert np.max(np.abs(run["A"] - predicted)) < 3e-3


def test_final_two_layer_kernel_is_s_times_identity_plus_spike():
    X, y, beta, rng = _task(s=1.5)
    a, W = _two_layer_init(rng, 1e-3)
    q0 = ms.order_parameters(a, W, beta).q
    ((a_end, W_end),) = _flow_two_layer(X, y, a, W, np.array([40.0]))  # converged to float precision
    target = ms.final_ntk_linear(beta, 1.5, 2)  # Atanasov et al. 2022, sec. 3.2: s x^T (beta beta^T + I) x'
    assert _rel(ms.two_layer_ntk_matrix(a_end, W_end), target) < 10 * q0


# ------------------------------------------------------------------------------------------------------------------
# unwhitened data
# ------------------------------------------------------------------------------------------------------------------
def _r_vector(a, W, S, b):
    Sb = S @ b
    return np.array([b @ W.T @ a, a @ a, b @ W.T @ W @ Sb, Sb @ W.T @ a, Sb @ W.T @ W @ Sb])


def test_unwhitened_matrix_is_the_linearized_flow():
    rng = np.random.default_rng(6)
    d, n, s = 7, 5, 1.4
    B = rng.standard_normal((d, d))
    S = B @ B.T / d + 0.2 * np.eye(d)
    b = _unit(rng.standard_normal(d))
    a, W = rng.standard_normal(n), rng.standard_normal((n, d))
    da, dW = s * W @ S @ b, s * np.outer(a, S @ b)  # Atanasov et al. 2022, eqs. (20)-(21)
    h = 1e-5
    fd = (_r_vector(a + h * da, W + h * dW, S, b) - _r_vector(a - h * da, W - h * dW, S, b)) / (2 * h)
    assert_allclose(fd, s * ms.unwhitened_phase1_matrix(S, b) @ _r_vector(a, W, S, b), rtol=1e-7)


def test_unwhitened_spectrum_and_growing_mode():
    rng = np.random.default_rng(7)
    B = rng.standard_normal((6, 6))
    S = B @ B.T
    b = _unit(rng.standard_normal(6))
    T = ms.unwhitened_phase1_matrix(S, b)
    a_, b_ = b @ S @ b, b @ S @ S @ b
    root = np.sqrt(b_)
    assert_allclose(np.sort(np.linalg.eigvals(T).real), [-2 * root, -root, 0, root, 2 * root], atol=1e-9 * b_)
    v = np.array([a_, root, a_ * root, b_, b_ * root])  # Atanasov et al. 2022, eq. (24)
    assert_allclose(T @ v, 2 * root * v, rtol=1e-12)


def test_unwhitened_early_spike_along_sigma_beta_then_rotates_to_beta():
    rng = np.random.default_rng(8)
    X = ms.partial_whiten(rng.standard_normal((P, D)) * np.linspace(0.3, 2.0, D), 1.0)
    S = X.T @ X / P
    beta = _unit(rng.standard_normal(D))
    spike = _unit(S @ beta)
    assert abs(spike @ beta) < 0.95
    a, W = _two_layer_init(rng, 1e-4)
    M0 = ms.two_layer_ntk_matrix(a, W)
    # growth rate 2 s sqrt(b), b = |Sigma beta|^2 (eq. (23)): kernel grown ~e^{10}-fold, loss still at its start
    t_early = 5.0 / np.linalg.norm(S @ beta)
    (a_e, W_e), (a_end, W_end) = _flow_two_layer(X, X @ beta, a, W, np.array([t_early, 400.0]))
    assert 0.5 * np.mean((X @ (W_e.T @ a_e) - X @ beta) ** 2) > 0.99 * 0.5 * np.mean((X @ beta) ** 2)
    top = np.linalg.eigh(ms.two_layer_ntk_matrix(a_e, W_e) - M0)[1][:, -1]
    assert abs(top @ spike) > 0.999
    assert_allclose(ms.unwhitened_spike(S, beta) @ spike, (1 + np.linalg.norm(S @ beta)) * spike, rtol=1e-12)
    # late: the kernel has rotated to the whitened-case shape s (beta beta^T + I) (Atanasov et al. 2022, sec. 3.2)
    assert _rel(ms.two_layer_ntk_matrix(a_end, W_end), ms.final_ntk_linear(beta, 1.0, 2)) < 1e-3


def test_partial_whiten_powers_the_covariance_spectrum():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((80, 5)) * [0.5, 1.0, 2.0, 3.0, 5.0]
    lam = np.linalg.eigvalsh(np.cov(X.T, bias=True))
    for gamma in (0.0, 0.5, 1.0):
        Xg = ms.partial_whiten(X, gamma)
        lam_g = np.linalg.eigvalsh(Xg.T @ Xg / 80)
        assert_allclose(lam_g, lam**gamma / np.mean(lam**gamma), rtol=1e-10)
        assert_allclose(Xg.mean(axis=0), 0, atol=1e-12)
