"""The mpmath reference (tests/reference.py) against printed check values and its own closed forms.

Check values: values of the closed forms (Cho & Saul 2009; Williams 1997; Lou et al. 2022, eq. (3)), the fixed
points and edge of chaos of Poole et al. 2016 and Schoenholz et al. 2017, and the ReLU edge-of-chaos asymptotics
derived here (meanfield.equilibrium), each computed independently to the printed digits. Tolerances: 10-12
printed digits for closed-form values (so 1e-10 / 1e-12 absolute), 5-6 digits for fixed points and the tanh edge
of chaos; the quadratures are held to 1e-20 against the 50-digit closed forms.
"""

import numpy as np
import pytest
import reference as R
from mpmath import mp, mpf

TIGHT = mpf("1e-20")


@pytest.fixture(autouse=True)
def _high_precision():
    """Arithmetic on the returned mpf (products, ratios) must not round them back to 15 digits."""
    with mp.workdps(60):
        yield


def close(a, b, tol):
    with mp.workdps(60):
        return abs(mpf(a) - mpf(b)) <= tol


# ----------------------------------------------------------------------------- ReLU correlation map (sec. 2.2)


@pytest.mark.parametrize(
    "c, g, gp",
    [(0, 0.3183098862, 0.5), (0.5, 0.6089977810, 2 / 3), (-1, 0, 0), (1, 1, 1)],
)
def test_relu_g_matches_check_values(c, g, gp):
    assert close(R.relu_g(c), g, 1e-10)
    assert close(R.relu_gprime(c), gp, 1e-15)


def test_relu_g_is_normalized_arccos_kernel():
    # g(c) = 2 E[relu(u) relu(v)] at unit variances (Cho-Saul k_1 / 2 with sigma_w^2 = 2)
    for c in (-0.7, 0.1, 0.93):
        assert close(2 * R.closed_cov("relu", 1, c, 1), R.relu_g(c), 1e-35)
        assert close(2 * R.closed_dcov("relu", 1, c, 1), R.relu_gprime(c), 1e-35)


def test_relu_cov_at_identity_half_matches_dblquad_value():
    assert close(R.closed_cov("relu", 1, 0.5, 1), 0.3044988905, 1e-10)
    assert close(R.ref_cov("relu", 1, 0.5, 1, dps=25), R.closed_cov("relu", 1, 0.5, 1), TIGHT)


# ----------------------------------------------------------------------------- erf (sec. 2.3, 7)


@pytest.mark.parametrize(
    "L, cov, dcov",
    [((1, 0.5, 1), 0.216346895939, 0.450158158079), ((1, 1, 4), 0.251528260250, 0.265488797625)],
)
def test_erf_closed_forms_match_check_values(L, cov, dcov):
    assert close(R.closed_cov("erf", *L), cov, 1e-12)
    assert close(R.closed_dcov("erf", *L), dcov, 1e-12)


@pytest.mark.parametrize("L", [(1, 0.5, 1), (1, 1, 4)])
def test_erf_quadrature_matches_williams(L):
    assert close(R.ref_cov("erf", *L, dps=22), R.closed_cov("erf", *L), TIGHT)
    assert close(R.ref_dcov("erf", *L, dps=22), R.closed_dcov("erf", *L), TIGHT)


def test_erf_one_dimensional_moments():
    for q in (0.3, 2.0):
        assert close(R.ref_var("erf", q, dps=25), 2 / mp.pi * mp.asin(2 * mpf(q) / (1 + 2 * mpf(q))), TIGHT)
        assert close(R.ref_dvar("erf", q, dps=25), 4 / mp.pi / mp.sqrt(1 + 4 * mpf(q)), TIGHT)


# ----------------------------------------------------------------------------- gauss2 vs closed forms


CORRS = [-1, -0.3, 0.99, 1]
VARS = [(1.0, 1.0), (0.5, 2.0)]  # sqrt(L11 L22) = 1 exactly, so c = +-1 is exactly degenerate


def _lam(c, v):
    a, b = v
    return a, c * float(np.sqrt(a * b)), b


@pytest.mark.parametrize(
    "c, v",
    [(c, VARS[0]) for c in CORRS] + [pytest.param(c, VARS[1], marks=pytest.mark.slow) for c in CORRS],
)
def test_gauss2_relu_matches_arccos_closed_form(c, v):
    L = _lam(c, v)
    f = lambda t: [max(t, 0), mpf(1) if t > 0 else mpf(0)]  # noqa: E731
    cov, dcov = R.gauss2((f, f), *L, dps=22, kinks_u=(0,), kinks_v=(0,))
    assert close(cov, R.closed_cov("relu", *L), TIGHT)
    assert close(dcov, R.closed_dcov("relu", *L), TIGHT)


@pytest.mark.parametrize("c", CORRS)
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "erf"])
def test_conditional_route_matches_closed_forms(name, c):
    L = _lam(c, (0.5, 2.0))
    assert close(R.ref_cov(name, *L, dps=22), R.closed_cov(name, *L), TIGHT)
    assert close(R.ref_dcov(name, *L, dps=22), R.closed_dcov(name, *L), TIGHT)


@pytest.mark.slow
@pytest.mark.parametrize("c", CORRS)
@pytest.mark.parametrize("v", VARS)
@pytest.mark.parametrize("name", ["erf", "leaky_relu"])
def test_gauss2_nested_matches_closed_forms(name, c, v):
    L = _lam(c, v)
    assert close(R.ref_cov(name, *L, dps=22, method="nested"), R.closed_cov(name, *L), TIGHT)
    assert close(R.ref_dcov(name, *L, dps=22, method="nested"), R.closed_dcov(name, *L), TIGHT)


@pytest.mark.slow
@pytest.mark.parametrize("L", [(1e8, 0.5e8, 1e8), (1e-8, 0.5e-8, 1e-8), (1e8, -0.3, 1e-8), (1e4, 99.9999, 1.0)])
@pytest.mark.parametrize("name", ["erf", "relu"])
def test_gauss2_extreme_variances(name, L):
    cov = R.ref_cov(name, *L, dps=20, method="nested")
    ref = R.closed_cov(name, *L)
    assert close(cov / ref, 1, mpf("1e-19"))


def test_gauss2_generic_integrand_isserlis_and_mgf():
    L11, L12, L22 = 0.7, -0.4, 1.3
    m4, mgf = R.gauss2(lambda u, v: [u * u * v * v, mp.exp(u + v)], L11, L12, L22, dps=16)
    L11, L12, L22 = mpf(L11), mpf(L12), mpf(L22)
    assert close(m4, L11 * L22 + 2 * L12**2, mpf("1e-16"))
    assert close(mgf, mp.exp((L11 + 2 * L12 + L22) / 2), mpf("1e-16"))


def test_gauss2_degenerate_correlation_is_one_dimensional():
    # c = -1 exactly: v = -2u, E[u^2 v^2] = 4 E[u^4] = 12 L11^2
    val = R.gauss2(lambda u, v: u * u * v * v, 1.5, -3.0, 6.0, dps=20)
    assert close(val, 12 * mpf(1.5) ** 2, TIGHT)


@pytest.mark.parametrize(
    "name, dps",
    [("tanh", 12)] + [pytest.param(nm, 22, marks=pytest.mark.slow) for nm in ("tanh", "softplus", "sigmoid", "silu")],
)
def test_gauss2_trapezoid_and_gauss_legendre_agree(name, dps):
    # two independent rules on the same smooth integrand (phi phi and phi' phi' at once)
    f, df = R.phi(name), R.dphi(name)

    def both(t):
        return [f(t), df(t)]

    L = (0.7, -0.5, 1.6)
    a = R.gauss2((both, both), *L, dps=dps, rule="trapezoid")
    b = R.gauss2((both, both), *L, dps=dps, rule="gl")
    tol = mpf(10) ** (-dps)
    assert close(a[0], b[0], tol) and close(a[1], b[1], tol)


def test_smooth_cov_reduces_to_variance_at_c_one():
    # c = 1: E[phi(u) phi(v)] with v = u is the 1-D second moment (1-D tanh-sinh vs 1-D composite GL)
    for name in ("tanh", "softplus"):
        assert close(R.ref_cov(name, 0.8, 0.8, 0.8, dps=20), R.ref_var(name, 0.8, dps=20), TIGHT)
        assert close(R.ref_dcov(name, 0.8, 0.8, 0.8, dps=20), R.ref_dvar(name, 0.8, dps=20), TIGHT)


@pytest.mark.slow
def test_gelu_conditional_route_matches_nested():
    L = (0.8, 0.3, 1.7)
    a = R.ref_cov("gelu", *L, dps=20)
    b = R.ref_cov("gelu", *L, dps=20, method="nested")
    assert close(a, b, TIGHT)


def test_invalid_covariance_is_rejected():
    with pytest.raises(ValueError, match="correlation"):
        R.closed_cov("relu", 1, 2, 1)
    with pytest.raises(ValueError, match="L11"):
        R.ref_cov("relu", -1, 0, 1)
    with pytest.raises(ValueError, match="name"):
        R.ref_var("swish", 1)


# ----------------------------------------------------------------------------- ReLU at the edge of chaos


def test_relu_eoc_sequences_match_check_values():
    for c1, l, c in [(0, 2, 0.3183098862), (0, 3, 0.4937310902), (0, 5, 0.6809535334), (0, 10, 0.8548092375)]:
        assert close(1 - R.relu_eoc_one_minus_c(c1, l), c, 1e-10)
    for c1, l, c in [(0.5, 2, 0.6089977810), (0.5, 3, 0.6839056509), (0.5, 10, 0.8860334783)]:
        assert close(1 - R.relu_eoc_one_minus_c(c1, l), c, 1e-10)


@pytest.mark.parametrize("s, ratio", [(1e-4, 0.996999), (1e-6, 0.999700), (1e-8, 0.999970)])
def test_relu_eoc_slope_near_one(s, ratio):
    r = R.relu_eoc_one_minus_c(1 - mpf(s), 2) / mpf(s)
    assert close(r, ratio, 1e-6)
    # and the expansion 1 - (2 sqrt 2 / 3 pi) sqrt(s) - (sqrt 2 / 30 pi) s^(3/2)
    s = mpf(s)
    assert close(r, 1 - 2 * mp.sqrt(2) / (3 * mp.pi) * mp.sqrt(s) - mp.sqrt(2) / (30 * mp.pi) * s**1.5, s**2)


@pytest.mark.parametrize("l, value", [(10, 14.519), (100, 36.428), (1000, 43.215), (10_000, 44.261)])
def test_relu_eoc_l2_one_minus_c(l, value):
    assert close(l**2 * R.relu_eoc_one_minus_c(0, l), value, 5e-4)


def test_relu_eoc_iteration_agrees_with_direct_g():
    c = mpf(0.2)
    with mp.workdps(50):
        for _ in range(29):
            c = R.relu_g(c, dps=50)
        assert close(1 - c, R.relu_eoc_one_minus_c(0.2, 30), mpf("1e-38"))


# ----------------------------------------------------------------------------- kernel recursions (sec. 4, 7)

X_RHO0 = np.array([[1.0, 1.0], [1.0, -1.0]])  # d = 2, |x|^2 = d, rho = 0, q = sigma_w2 = 2
X_RHO_HALF = np.array([[2.0, 0.0], [1.0, np.sqrt(3.0)]])  # rho = 0.5 (up to rounding of sqrt 3)


@pytest.mark.parametrize(
    "X, depth, value",
    [
        (X_RHO0, 2, 0.3183098862),
        (X_RHO0, 3, 0.6857086363),
        (X_RHO0, 5, 1.4303904972),
        (X_RHO0, 10, 3.1559474489),
        (X_RHO0, 100, 27.2667587783),
        (X_RHO_HALF, 2, 0.9423311144),
        (X_RHO_HALF, 3, 1.3514795611),
        (X_RHO_HALF, 5, 2.1071125384),
        (X_RHO_HALF, 10, 3.7926943562),
    ],
)
def test_relu_eoc_ntk_matches_check_values(X, depth, value):
    k = R.ref_kernels(X, depth, "relu", 2.0, 0.0)
    q0, q1 = k.sigma[0, 0, 0], k.sigma[0, 1, 1]
    assert all(close(k.sigma[l, i, i], k.sigma[0, i, i], 1e-25) for l in range(depth) for i in (0, 1))
    assert close(k.theta[0, 0] / q0, depth, 1e-25)
    assert close(k.theta[0, 1] / mp.sqrt(q0 * q1), value, 1e-9)


@pytest.mark.parametrize("depth, value", [(2, 0.5), (3, 0.3015576242), (10, 0.0407250335)])
def test_relu_eoc_backward_kernel_matches_check_values(depth, value):
    k = R.ref_kernels(X_RHO0, depth, "relu", 2.0, 0.0)
    assert close(k.backward[0, 0, 1], value, 1e-10)
    assert close(k.backward[0, 0, 0], 1, 1e-25)
    assert k.backward[-1, 0, 1] == 1


@pytest.mark.parametrize("rho, value", [(-0.5, -0.028834), (0.0, 0.159155), (0.5, 0.471166), (0.9, 0.840164)])
def test_one_hidden_layer_relu_ntk(rho, value):
    X = np.sqrt(2.0) * np.array([[1.0, 0.0], [rho, np.sqrt(1 - rho**2)]])
    k1 = R.ref_kernels(X, 2, "relu", 1.0, 0.0)
    k2 = R.ref_kernels(X, 2, "relu", 2.0, 0.0)
    assert close(k1.theta[0, 1], value, 1e-6)
    assert close(k1.theta[0, 0], 1, 1e-15)  # |x|^2 = d up to the rounding of sqrt(2)
    assert close(k2.theta[0, 1], 4 * k1.theta[0, 1], 1e-25)


@pytest.mark.parametrize("name, sw, sb", [("relu", 2.0, 0.5), ("erf", 1.6, 0.1), ("leaky_relu", 1.3, 0.2)])
def test_ntk_layers_sum_to_ntk(name, sw, sb):
    X = np.array([[0.3, -1.2, 0.5], [1.0, 0.4, -0.7], [-0.2, 0.1, 2.0]])
    k = R.ref_kernels(X, 6, name, sw, sb)
    total = k.layers.sum(axis=0)
    assert all(close(total[i, j], k.theta[i, j], 1e-25) for i in range(3) for j in range(3))
    # the recursion itself: Theta_l = Theta_{l-1} * Sigmadot_l + Sigma_l, and B_l = B_{l+1} * Sigmadot_{l+1}
    assert close(k.ntk[3, 0, 2], k.ntk[2, 0, 2] * k.sigma_dot[3, 0, 2] + k.sigma[3, 0, 2], 1e-25)
    assert close(k.backward[2, 1, 2], k.backward[3, 1, 2] * k.sigma_dot[3, 1, 2], 1e-25)
    assert np.isnan(k.to_float("sigma_dot")[0]).all()


def test_ref_kernels_smooth_activation_uses_quadrature():
    # gelu: conditional route off the diagonal, 1-D on the diagonal; check Sigma_2 entry by entry
    X = np.array([[1.0, 0.5], [-0.3, 1.1]])
    k = R.ref_kernels(X, 2, "gelu", 1.5, 0.1, dps=20)
    S1 = k.sigma[0]
    assert close(k.sigma[1, 0, 0], 1.5 * R.ref_var("gelu", S1[0, 0], dps=20) + mpf(0.1), TIGHT)
    assert close(k.sigma[1, 0, 1], 1.5 * R.ref_cov("gelu", S1[0, 0], S1[0, 1], S1[1, 1], dps=20) + mpf(0.1), TIGHT)


@pytest.mark.slow
def test_ref_kernels_tanh_depth3():
    X = np.array([[1.0, 0.5], [-0.3, 1.1], [0.2, -0.9]])
    k = R.ref_kernels(X, 3, "tanh", 1.5, 0.1, dps=20)
    total = k.layers.sum(axis=0)
    assert close(total[0, 2], k.theta[0, 2], 1e-18)
    # diagonal of Sigma_3 from the 1-D variance map
    q2 = k.sigma[1, 1, 1]
    assert close(k.sigma[2, 1, 1], 1.5 * R.ref_var("tanh", q2, dps=20) + mpf(0.1), TIGHT)


# ----------------------------------------------------------------------------- fixed points, edge of chaos (sec. 3)


def test_relu_fixed_point():
    q, chi = R.ref_fixed_point("relu", 1.5, 0.1, dps=20)
    assert close(q, 0.4, 1e-18)
    assert close(chi, 0.75, 1e-18)


@pytest.mark.parametrize(
    "sw, sb, qstar, chi1",
    [
        pytest.param(1.0, 0.05, 0.288427, 0.867595, marks=pytest.mark.slow),
        (2.0, 0.05, 0.965955, 1.154653),
        pytest.param(1.5, 0.1, 0.691100, 0.984359, marks=pytest.mark.slow),
    ],
)
def test_erf_fixed_points(sw, sb, qstar, chi1):
    q, chi = R.ref_fixed_point("erf", sw, sb, dps=15)
    assert close(q, qstar, 1e-6)
    assert close(chi, chi1, 1e-6)
    assert close(chi, 4 * mpf(sw) / (mp.pi * mp.sqrt(1 + 4 * q)), 1e-13)


@pytest.mark.parametrize(
    "qstar, sw, sb", [(0.1, 0.929296, 9.363804e-4), (1, 1.756204, 0.1841397), (2, 2.356194, 0.6090572)]
)
def test_erf_eoc_curve_matches_check_values(qstar, sw, sb):
    w, b = R.erf_eoc_curve(qstar)
    assert close(w, sw, 1e-6)
    assert close(b, sb, 1e-7 * max(1, sb * 10) if sb > 1e-3 else 1e-9)


def test_erf_eoc_root_matches_closed_curve():
    w, b = R.erf_eoc_curve(1)
    sw, q = R.ref_eoc_point("erf", b, dps=15, q0=0.8)
    assert close(q, 1, 1e-12)
    assert close(sw, w, 1e-12)


def test_tanh_edge_of_chaos():
    sw, q = R.ref_eoc_point("tanh", 0.05, dps=15)
    assert close(sw, 1.76095, 6e-6)
    assert close(q, 0.57005, 6e-6)
    assert R.ref_edge_of_chaos("tanh", 0) == 1
    assert R.ref_edge_of_chaos("relu", 0) == 2
