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

import meanfield.silent as ms
from meanfield import MLP, Network, train

D, N, P = 30, 50, 200  # input dimension, hidden width, samples of the two-layer experiments


# ------------------------------------------------------------------------------------------------------------------
# independent reference code: data, GD / gradient flow for linear networks, parameter-Jacobian NTK
# ------------------------------------------------------------------------------------------------------------------
def _task(s=1.0, seed=0, d=D, p=P):
    rng = np.random.default_rng(seed)
    X = ms.whiten(rng.standard_normal((p, d)))
    beta = rng.standard_normal(d)
    beta /= np.linalg.norm(beta)
    return X, s * (X @ beta), beta, rng


def _two_layer_init(rng, sigma, d=D, n=N):
    return rng.standard_normal(n) * sigma / np.sqrt(n), rng.standard_normal((n, d)) * sigma / np.sqrt(d)


def _linear_mlp(Ws):
    """The linear network f(x) = W_L ... W_1 x (SP, no biases: z_l = W_l h_{l-1}) with exactly these weights."""
    return MLP(Network(len(Ws), "linear", parameterization="standard", width=[W.shape[0] for W in Ws[:-1]]), Ws)


def _train_gd(X, y, Ws, lr, steps, rho=None, observe=None):
    """``steps`` full-batch GD steps of ``meanfield.train`` on |f - y|^2/(2P) with per-layer rates lr * rho_l.

    ``observe(step, mlp)`` sees the network before training and after every step (time t = lr * step).
    """
    return train(_linear_mlp(Ws), X, y, epochs=steps, lr=lr, batch_size=X.shape[0], momentum=0.0, loss="mse",
                 layer_lr=rho, seed=0, callback=observe)  # fmt: skip


def _gd_two_layer(X, y, beta, a, W, lr, steps):
    """GD on f = a^T W x from (a, W); records loss, q, r and the NTK alignment after every step."""
    obs = []

    def observe(_, mlp):
        W_, a_ = mlp.weights[0], mlp.weights[1][0]
        Wb = W_ @ beta
        M = W_.T @ W_ + (a_ @ a_) * np.eye(W_.shape[1])
        obs.append((0.5 * (a_ @ a_ + Wb @ Wb), Wb @ a_, beta @ M @ beta / np.linalg.norm(M)))

    hist = _train_gd(X, y, [W, a[None, :]], lr, steps, observe=observe)
    q, r, align = np.array(obs).T
    loss = np.append(hist.step_loss, hist.loss[-1])  # step k's batch loss is the full loss before step k
    return dict(t=lr * np.arange(steps + 1), loss=loss, q=q, r=r, A=align)


def _crossing(t, v, level):
    """First time the sampled curve v(t) crosses ``level`` (linear interpolation)."""
    up = v[0] < level
    i = int(np.argmax(v >= level)) if up else int(np.argmax(v <= level))
    assert i > 0, "curve never crosses the level"
    return t[i - 1] + (level - v[i - 1]) * (t[i] - t[i - 1]) / (v[i] - v[i - 1])


def _gd_deep(X, y, Ws, lr, steps, rho=None, beta=None):
    """GD for f = w^L^T W^{L-1}...W^1 x with per-layer rates lr * rho_l; returns weights, t and w(t) along beta."""
    w_end = []

    def observe(_, mlp):
        w_end.append(beta @ (X.T @ mlp(X)[:, 0]) / X.shape[0])  # end-to-end weight along beta (X^T X = P I)

    hist = _train_gd(X, y, Ws, lr, steps, rho, None if beta is None else observe)
    return hist.mlp.weights, lr * np.arange(steps + 1), np.array(w_end)


def _reference_gd_step(X, y, Ws, lr, rho):
    """One GD step on |f - y|^2/(2P) for a deep linear network, written out by hand (the backward pass)."""
    hs = [X]
    for W in Ws:
        hs.append(hs[-1] @ W.T)
    e = (hs[-1][:, 0] - y) / X.shape[0]
    g, grads = np.ones(1), [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        grads[l] = np.outer(g, hs[l].T @ e)
        g = Ws[l].T @ g
    return [W - lr * c * G for W, c, G in zip(Ws, rho, grads, strict=True)], 0.5 * np.mean((hs[-1][:, 0] - y) ** 2)


def _ntk_matrix_jacobian(Ws, rho=None):
    """M with K(x, x') = x^T M x', from the explicit parameter Jacobian on the basis inputs x = e_i."""
    L, d = len(Ws), Ws[0].shape[1]
    rho = np.ones(L) if rho is None else np.asarray(rho, dtype=float)
    hs = [np.eye(d)]
    for W in Ws[:-1]:
        hs.append(hs[-1] @ W.T)
    g, blocks = np.ones(1), []
    for l in range(L - 1, -1, -1):  # df/dW_l = g_l h_{l-1}^T, flattened per input
        blocks.append(np.sqrt(rho[l]) * np.einsum("a,ib->iab", g, hs[l]).reshape(d, -1))
        g = Ws[l].T @ g
    J = np.concatenate(blocks, axis=1)
    return J @ J.T


def _unit(v):
    return v / np.linalg.norm(v)


def _rel(A, B):
    return np.linalg.norm(A - B) / np.linalg.norm(B)


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


# ------------------------------------------------------------------------------------------------------------------
# deep linear networks
# ------------------------------------------------------------------------------------------------------------------
def test_deep_linear_scale_L2_is_saxe_sigmoid():
    t, s, w0, kappa = np.linspace(0, 6, 25), 1.5, 1e-4, 1.7
    e = np.exp(2 * kappa * s * t)
    assert_allclose(ms.deep_linear_scale(t, 2, s, w0, kappa), s * e / (e - 1 + s / w0), rtol=1e-8)


@pytest.mark.parametrize("L, kappa, form", [(3, 1.0, "corrected"), (4, 2.0, "corrected"), (3, 1.0, "published")])
def test_deep_linear_scale_and_time_are_inverse(L, kappa, form):
    s, w0 = 1.0, 1e-3
    levels = np.array([0.01, 0.2, 0.5, 0.9, 0.999])
    times = np.array([ms.deep_linear_time(w, L, s, w0, kappa, form) for w in levels])
    assert_allclose(ms.deep_linear_scale(times, L, s, w0, kappa, form), levels, rtol=1e-8)


def test_deep_linear_scale_accepts_unsorted_times_with_repeats():
    t = np.array([[2.0, 0.0], [0.5, 2.0]])
    expected = [[ms.deep_linear_scale(float(v), 3, 1.0, 1e-3) for v in row] for row in t]
    assert_allclose(ms.deep_linear_scale(t, 3, 1.0, 1e-3), expected, rtol=1e-9)


def test_published_scale_ode_is_L_times_slower():
    assert_allclose(
        ms.deep_linear_time(0.5, 3, 1.0, 1e-3, form="published"), 3 * ms.deep_linear_time(0.5, 3, 1.0, 1e-3), rtol=1e-10
    )


def test_deep_linear_early_time_solution_bounds_the_exact_time():
    # t_exact(w) - t_early(w) = int [1/(s - v) - 1/s] / (L kappa^{2/L} v^{2-2/L}) dv, in [0, t_early w/(s - w)]
    L, s, w0, kappa = 3, 1.0, 1e-6, 1.3
    for w in (1e-4, 1e-2, 0.1):
        t_early = (w0 ** (-(L - 2) / L) - w ** (-(L - 2) / L)) / ((L - 2) * kappa ** (2 / L) * s)
        gap = ms.deep_linear_time(w, L, s, w0, kappa) - t_early
        assert 0 <= gap <= t_early * w / (s - w)
    t_star = ms.deep_linear_blowup_time(L, s, w0, kappa)
    assert_allclose(t_star, w0 ** (-1 / 3) / kappa ** (2 / 3), rtol=1e-14)
    ratios = [
        ms.deep_linear_time(0.5, L, s, w, kappa) / ms.deep_linear_blowup_time(L, s, w, kappa) for w in (1e-3, 1e-9)
    ]
    assert abs(ratios[1] - 1) < abs(ratios[0] - 1) < 0.1


def _balanced(rng, L, u0, rho, beta, n=N):
    rs = [beta] + [_unit(rng.standard_normal(n)) for _ in range(L - 1)] + [np.ones(1)]
    return [np.sqrt(rho[l]) * u0 * np.outer(rs[l + 1], rs[l]) for l in range(L)]


@pytest.mark.parametrize(
    "L, eta1, expected",
    [(3, 1.0, 9.145), (3, 2.0, 6.391)],  # GD: 9.148 and 6.394
)
def test_balanced_deep_linear_gd_follows_corrected_scale_ode(L, eta1, expected):
    X, y, beta, rng = _task()
    rho = np.ones(L)
    rho[0] = eta1
    kappa, u0, lr = ms.lr_kappa(L, rho), 0.1, 0.002
    w0 = kappa * u0**L
    predicted = ms.deep_linear_time(0.5, L, 1.0, w0, kappa)
    assert abs(predicted - expected) < 1e-3
    _, t, w = _gd_deep(X, y, _balanced(rng, L, u0, rho, beta), lr, int(1.1 * predicted / lr), rho, beta)
    t_half = _crossing(t, w, 0.5)
    assert abs(t_half - predicted) < 0.01  # 9.145 +- 0.01
    # Atanasov et al. 2022, eq. (39) (no factor L) refuted
    assert ms.deep_linear_time(0.5, L, 1.0, w0, kappa, form="published") > 2.5 * t_half


@pytest.mark.parametrize("L, rho", [(2, [3.0, 1.0]), (3, [1.0, 1.0, 1.0]), (4, [2.0, 0.5, 3.0, 1.5])])
@pytest.mark.parametrize("lr_weighted", [False, True])
def test_deep_linear_ntk_coeffs_match_balanced_jacobian_kernel(L, rho, lr_weighted):
    rng = np.random.default_rng(10)
    rho = np.asarray(rho) / rho[-1]
    r1 = _unit(rng.standard_normal(8))
    u = 0.7
    Ws = _balanced(rng, L, u, rho, r1, n=6)
    M = _ntk_matrix_jacobian(Ws, rho if lr_weighted else None)
    c = ms.deep_linear_ntk_coeffs(L, rho * 2.5, lr_weighted)  # only the ratios matter
    A, B = c.A, c.B
    assert_allclose(M, u ** (2 * L - 2) * (A * np.outer(r1, r1) + B * np.eye(8)), rtol=1e-12, atol=1e-14)
    if not lr_weighted and np.all(rho[1:] == 1):
        assert_allclose(A / B, (L - 1) * rho[0], rtol=1e-14)  # Atanasov et al. 2022, eq. (37)
    if lr_weighted:
        assert_allclose(A / B, L - 1, rtol=1e-14)


@pytest.fixture(scope="module")
def deep_runs():
    """L = 3 linear nets from small random Gaussian init, trained to convergence at s = 2 (equal and eta1 = 4 eta)."""
    out = {}
    for rates in ((1.0, 1.0, 1.0), (4.0, 1.0, 1.0)):
        for sigma in (0.1, 0.05):
            X, y, beta, rng = _task(s=2.0, seed=11)
            dims = [D, N, N, 1]
            Ws = [rng.standard_normal((dims[l + 1], dims[l])) * sigma / np.sqrt(dims[l]) for l in range(3)]
            lr = 0.01
            Wf = _train_gd(X, y, Ws, lr, int((2.5 * 0.9 / sigma + 5) / lr), np.array(rates)).mlp.weights
            w_end = beta @ (X.T @ _linear_mlp(Wf)(X)[:, 0]) / P  # end-to-end weight along beta
            assert abs(w_end - 2.0) < 1e-8  # converged
            out[rates, sigma] = (Wf, beta)
    return out


@pytest.mark.parametrize("rates", [(1.0, 1.0, 1.0), (4.0, 1.0, 1.0)])
@pytest.mark.parametrize("lr_weighted", [False, True])
def test_final_ntk_after_training_matches_corrected_formula(deep_runs, rates, lr_weighted):
    errs = []
    for sigma in (0.1, 0.05):
        Wf, beta = deep_runs[rates, sigma]
        M = _ntk_matrix_jacobian(Wf, np.array(rates) if lr_weighted else None)
        errs.append(_rel(M, ms.final_ntk_linear(beta, 2.0, 3, rates, lr_weighted)))
    assert errs[1] < 0.01
    assert 3 < errs[0] / errs[1] < 5  # the O(sigma^2) initialization remainder
    if rates == (1.0, 1.0, 1.0) and not lr_weighted:  # the published s^{2L-2} = 16 for the isotropic part (eq. (42))
        published_M = 2.0**4 * (2 * np.outer(beta, beta) + np.eye(D))
        assert _rel(published_M, M) > 5  # published / true ~ 2^{4 - 4/3} = 6.3


def test_final_nngp_after_training_matches_matrix_power(deep_runs):
    for l in (1, 2):
        errs = []
        for sigma in (0.1, 0.05):
            Wf, beta = deep_runs[(1.0, 1.0, 1.0), sigma]
            Pl = np.linalg.multi_dot(Wf[:l][::-1]) if l > 1 else Wf[0]
            errs.append(_rel(Pl.T @ Pl, ms.final_nngp_linear(2.0 * beta, 3, l)))
        assert errs[1] < 0.05
        assert 3 < errs[0] / errs[1] < 5


def test_final_nngp_on_training_set_is_scaled_target_kernel():
    X, y, beta, _ = _task(s=1.7, seed=12)
    L = 4
    for l in range(1, L + 1):
        K = X @ ms.final_nngp_linear(1.7 * beta, L, l) @ X.T
        assert_allclose(K, 1.7 ** (2 * l / L - 2) * np.outer(y, y), rtol=1e-10, atol=1e-10)
    # the published (y y^T)^{l/L} (Atanasov et al. 2022, App. D.3), read as a matrix power, is |y|^{2l/L-2} y y^T:
    # a different scale
    assert not np.isclose(np.linalg.norm(y) ** (2 / L - 2), 1.7 ** (2 / L - 2))
    assert_allclose(ms.final_nngp_linear(np.eye(3)[:2] * [[2.0], [3.0]], 2, 0), np.eye(3))
    assert_allclose(ms.final_nngp_linear(np.eye(3)[:2] * [[2.0], [3.0]], 2, 1), np.diag([2.0, 3.0, 0.0]), atol=1e-14)


def test_final_alignment_grows_with_depth_in_training(deep_runs):
    Wf, beta = deep_runs[(1.0, 1.0, 1.0), 0.05]
    A = ms.matrix_alignment(_ntk_matrix_jacobian(Wf), beta)
    assert abs(A - ms.alignment_limits(D, 3).A_inf) < 1e-3  # 0.4867 > 0.3482 at L = 2


def test_random_init_deep_half_time_scales_as_sigma_to_minus_L_plus_2_and_alignment_comes_first():
    """Atanasov et al. 2022, Fig. 4 (L = 3): t_1/2 ~ sigma^{-(L-2)}, and cos(W1^T W1, beta beta^T) reaches 1/2
    before t_1/2."""
    X, y, beta, _ = _task()
    lr, L, dims = 0.02, 3, [D, N, N, 1]
    half, cos_half = [], []
    for sigma in (0.05, 0.025):
        rng = np.random.default_rng(14)
        Ws = [rng.standard_normal((dims[l + 1], dims[l])) * sigma / np.sqrt(dims[l]) for l in range(L)]
        steps = int(2.5 / sigma / lr)
        cos = []

        def observe(k, mlp, cos=cos, steps=steps):
            if k < steps:
                F = mlp.weights[0].T @ mlp.weights[0]
                cos.append(beta @ F @ beta / np.linalg.norm(F))

        loss, cos = _train_gd(X, y, Ws, lr, steps, observe=observe).step_loss, np.array(cos)
        t = lr * np.arange(steps)
        half.append(_crossing(t, loss, loss[0] / 2))
        cos_half.append(_crossing(t, cos, 0.5))
    slope = np.log(half[1] / half[0]) / np.log(0.5)
    assert abs(slope + (L - 2)) < 0.1
    assert all(c < 0.8 * h for c, h in zip(cos_half, half, strict=True))
    # the published prefactor L/((L-2) s) sigma^{-(L-2)} (sec. 4.1.1, Fig. 4) overestimates t_1/2 by more than 2x
    assert L / 0.025 > 2 * half[1]


def test_final_layer_kernels_align_monotonically_with_depth_for_multiple_outputs():
    """Atanasov et al. 2022, App. G.1: K_l = X (beta^T beta)^{l/L} X^T goes from X X^T to Y Y^T."""
    X, _, _, rng = _task(seed=15)
    B = rng.standard_normal((4, D)) * [[3.0], [1.5], [1.0], [0.3]]  # C = 4 outputs
    Y = X @ B.T
    L = 6
    kta = []
    for l in range(L + 1):
        K = X @ ms.final_nngp_linear(B, L, l) @ X.T
        kta.append(np.sum(K * (Y @ Y.T)) / (np.linalg.norm(K) * np.linalg.norm(Y @ Y.T)))
    assert_allclose(X @ ms.final_nngp_linear(B, L, L) @ X.T, Y @ Y.T, rtol=1e-10, atol=1e-9)
    assert np.all(np.diff(kta) > 0) and kta[-1] == pytest.approx(1.0, rel=1e-12)


def test_saxe_mode_times_are_half_crossings_of_the_sigmoid():
    sv, c0 = np.array([0.5, 1.0, 3.0]), 1e-4
    expected = [ms.deep_linear_time(s / 2, 2, s, c0) for s in sv]
    assert_allclose(ms.saxe_mode_times(sv, c0), expected, rtol=1e-9)
    assert np.all(ms.saxe_mode_times(sv, c0, form="published") > 1.9 * ms.saxe_mode_times(sv, c0))


# ------------------------------------------------------------------------------------------------------------------
# transfer learning (App. E)
# ------------------------------------------------------------------------------------------------------------------
def _ridge_population_error(M, w, p, ridge, reps, rng):
    """Kernel ridge with K = x^T M x' on x ~ N(0, I): exact population error |w_hat - w|^2 per draw."""
    d = M.shape[0]
    errs = np.empty(reps)
    for i in range(reps):
        X = rng.standard_normal((p, d))
        alpha = np.linalg.solve(X @ M @ X.T + ridge * np.eye(p), X @ w)
        errs[i] = np.sum((M @ X.T @ alpha - w) ** 2)
    return errs.mean(), errs.std(ddof=1) / np.sqrt(reps)


@pytest.mark.parametrize(
    "A, alpha, p", [(0.0, 0.5, 20), (0.0, 0.5, 50), (10.0, 1.0, 20), (10.0, 0.5, 50), (100.0, 0.8, 20)]
)
def test_transfer_Eg_matches_kernel_ridge_simulation(A, alpha, p):
    rng = np.random.default_rng(13)
    d, ridge = 100, 1e-2
    beta = np.eye(d)[0]
    w_perp = _unit(np.concatenate([[0.0], rng.standard_normal(d - 1)]))
    w = alpha * beta + np.sqrt(1 - alpha**2) * w_perp
    mean, se = _ridge_population_error(A * np.outer(beta, beta) + np.eye(d), w, p, ridge, 100, rng)
    lc = ms.transfer_Eg(A, alpha, d, p, ridge=ridge)
    assert abs(mean - lc.Eg) <= 3 * se
    # the published App. E.1 formula (no kappa^2 in the numerator) is orders of magnitude off
    lam = np.array([1 + A, 1.0])
    published = (alpha**2 / (lam[0] * p + lc.kappa) ** 2 + (1 - alpha**2) / (p + lc.kappa) ** 2) / (1 - lc.gamma)
    assert abs(mean - published) > 10 * se


def test_transfer_Eg_decreases_with_A_for_the_learned_task():
    P_grid = np.array([5, 20, 50, 90])
    errs = np.array([ms.transfer_Eg(A, 1.0, 100, P_grid, ridge=1e-2).Eg for A in (0.0, 1.0, 10.0, 100.0)])
    assert np.all(np.diff(errs, axis=0) < 0)
    assert_allclose(ms.transfer_Eg(0.0, 0.3, 100, P_grid, ridge=0.0).Eg, 1 - P_grid / 100, rtol=1e-10)


# ------------------------------------------------------------------------------------------------------------------
# input validation
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, word",
    [
        (lambda: ms.two_layer_qr(1.0, -1.0, 1e-3), "s"),
        (lambda: ms.two_layer_qr(1.0, 1.0, 1e-3, 2e-3), "r0"),
        (lambda: ms.two_layer_qr(-1.0, 1.0, 1e-3), "t"),
        (lambda: ms.two_layer_qr(np.nan, 1.0, 1e-3), "t"),
        (lambda: ms.half_loss_time(1.0, 0.9), "small"),
        (lambda: ms.half_loss_time(1.0, 1e-3, form="paper"), "form"),
        (lambda: ms.alignment_time(30, 1.0, frac=1.0), "frac"),
        (lambda: ms.alignment_time(30, 1.0, M0=np.eye(30)), "M0"),
        (lambda: ms.alignment_limits(30, L=1), "L"),
        (lambda: ms.whiten(np.ones((5, 10))), "rank"),
        (lambda: ms.partial_whiten(np.random.default_rng(0).standard_normal((9, 2)), 1.5), "gamma"),
        (lambda: ms.deep_linear_scale(1.0, 3, 1.0, 2.0), "w0"),
        (lambda: ms.deep_linear_time(1.0, 3, 1.0, 1e-3), "w"),
        (lambda: ms.deep_linear_blowup_time(2, 1.0, 1e-3), "L"),
        (lambda: ms.deep_linear_ntk_coeffs(3, [1.0, 1.0]), "etas"),
        (lambda: ms.final_nngp_linear([1.0, 0.0], 3, 4), "l"),
        (lambda: ms.matrix_alignment(np.eye(3), [0.0, 0.0, 0.0]), "beta"),
        (lambda: ms.transfer_Eg(1.0, 1.5, 10, 5), "alpha"),
        (lambda: ms.saxe_mode_times([1.0], 0.6), "c0"),
    ],
)
def test_bad_input_names_the_parameter(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# ------------------------------------------------------------------------------------------------------------------
# command line
# ------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def cli():
    import meanfield.cli as mcli

    assert "silent" in mcli.COMMANDS
    return mcli


def test_cli_silent_json_reports_timescales_and_limits(cli, capsys):
    import json

    assert cli.main(["silent", "--dim", "30", "--sigma", "1e-3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    two = data["two_layer"]
    assert_allclose(two["t_align"], ms.alignment_time(30, 1.0), rtol=1e-12)
    assert_allclose(two["t_half"], ms.half_loss_time(1.0, ms.expected_q0(1e-3, 50, 30)), rtol=1e-12)
    assert_allclose([two["A0"], two["A_inf"]], [1 / np.sqrt(30), 2 / np.sqrt(33)], rtol=1e-12)
    assert "deep" not in data


def test_cli_silent_table_with_depth(cli, capsys):
    assert cli.main(["silent", "--dim", "30", "--sigma", "0.1", "--depth", "3"]) == 0
    out = capsys.readouterr().out
    assert "9.14475" in out and "0.486664" in out  # balanced L = 3, u0 = 0.1; A_inf(L = 3)


@pytest.mark.parametrize(
    "argv, word",
    [
        (["--dim", "1"], "--dim"),
        (["--sigma", "-1"], "--sigma"),
        (["--depth", "1"], "--depth"),
        (["--sigma", "2"], "small"),
    ],
)
def test_cli_silent_bad_input_exits_2_with_one_line(cli, capsys, argv, word):
    assert cli.main(["silent", *argv]) == 2
    err = capsys.readouterr().err
    assert word in err and err.count("\n") == 1
