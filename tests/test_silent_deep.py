"""Tests for meanfield.silent, continued from tests/test_silent.py: deep linear networks (Atanasov et al. 2022,
sec. 5 and App. D), transfer learning (App. E), input validation and the command line (same reference code, from
silent_reference.py)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from silent_reference import (
    D,
    N,
    P,
    _crossing,
    _gd_deep,
    _linear_mlp,
    _ntk_matrix_jacobian,
    _rel,
    _task,
    _train_gd,
    _unit,
)

import meanfield.silent as ms


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
