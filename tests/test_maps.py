"""Kernel maps against the independent mpmath reference (tests/reference.py), near c = +-1 and at extreme variances."""

import json
import pathlib
import sys

import numpy as np
import pytest
from mpmath import mp, mpf
from numpy.testing import assert_allclose

import meanfield as mf

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import reference as R  # noqa: E402

DATA = json.loads((pathlib.Path(__file__).parent / "data" / "reference_values.json").read_text())

C_GRID = [-1.0, -1.0 + 1e-14, -1.0 + 1e-10, -0.999999, -0.5, 0.0, 0.3, 0.9, 1 - 1e-6, 1 - 1e-10, 1 - 1e-14, 1.0]
Q_PAIRS = [(1.0, 1.0), (1e-8, 1e-8), (1e8, 1e8), (2.0**-26, 2.0**26), (0.5, 2.0), (2.0, 8.0)]  # sqrt(q1 q2) exact
CLOSED = [("relu", None), ("leaky_relu:0.2", 0.2), ("linear", None), ("erf", None)]


def _rel(actual, desired):
    desired = float(desired)
    return abs(actual - desired) / abs(desired) if desired != 0 else abs(actual)


@pytest.mark.parametrize("act, slope", CLOSED)
@pytest.mark.parametrize("q1, q2", Q_PAIRS)
def test_closed_forms_match_mpmath_to_1e12_everywhere(act, slope, q1, q2):
    # 50-digit closed forms written independently (tests/reference.py), c in [-1, 1] including +-1 exactly
    name = act.split(":")[0]
    cs = np.array(C_GRID)
    cov, dcov = mf.gaussian_moments(q1, q2, cs, act)
    for c, a, b in zip(cs, cov, dcov, strict=True):
        with mp.workdps(50):
            l12 = mpf(c) * mp.sqrt(mpf(q1) * mpf(q2))
            ref_cov = R.closed_cov(name, q1, l12, q2, slope=slope)
            ref_dcov = R.closed_dcov(name, q1, l12, q2, slope=slope)
        # relative 1e-12; exact zeros (ReLU at c = -1) are zero to the reference's 50 digits
        floor = 1e-40 * np.sqrt(q1 * q2)
        assert abs(a - float(ref_cov)) <= 1e-12 * abs(float(ref_cov)) + floor, (c, a, ref_cov)
        assert abs(b - float(ref_dcov)) <= 1e-12 * abs(float(ref_dcov)) + 1e-40, (c, b, ref_dcov)


def test_closed_forms_match_2d_quadrature_of_the_reference():
    # the closed forms of the reference are themselves checked against its 2-D quadrature in test_reference.py;
    # here one direct comparison with quadrature for each closed form, at an awkward point
    for act in ["relu", "erf"]:
        cov, dcov = mf.gaussian_moments(0.7, 1.9, -0.83, act)
        l12 = -0.83 * np.sqrt(0.7 * 1.9)
        assert _rel(float(cov), R.ref_cov(act, 0.7, l12, 1.9, dps=20)) < 1e-13
        assert _rel(float(dcov), R.ref_dcov(act, 0.7, l12, 1.9, dps=20)) < 1e-13


@pytest.mark.parametrize("case", DATA["moments"], ids=lambda c: f"{c['act']}-{c['q1']}-{c['q2']}-{c['c']}")
def test_general_path_matches_mpmath_to_1e9_for_q_up_to_10(case):
    cov, dcov = mf.gaussian_moments(case["q1"], case["q2"], case["c"], case["act"])
    assert _rel(float(cov), mpf(case["cov"])) <= 1e-9
    assert _rel(float(dcov), mpf(case["dcov"])) <= 1e-9


@pytest.mark.parametrize("case", DATA["kernels"], ids=lambda c: c["act"])
def test_general_path_kernels_match_mpmath_recursion(case):
    net = mf.Network(case["depth"], case["act"], case["sigma_w2"], case["sigma_b2"])
    k = mf.kernels(np.array(case["X"]), net)
    nngp = np.array([[float(mpf(v)) for v in row] for row in case["nngp"]])
    ntk = np.array([[float(mpf(v)) for v in row] for row in case["ntk"]])
    assert_allclose(k.nngp, nngp, rtol=1e-9)
    assert_allclose(k.ntk, ntk, rtol=1e-9)


@pytest.mark.parametrize("act", ["relu", "erf", "leaky_relu:0.3"])
def test_closed_form_kernels_match_mpmath_recursion(act):
    X = np.array([[1.0, 0.0, 0.5], [0.2, -1.0, 0.3], [0.9, 0.1, 0.5], [-1.0, 0.0, -0.5]])
    name, _, slope = act.partition(":")
    ref = R.ref_kernels(X, 6, name, 1.7, 0.2, dps=30, slope=float(slope) if slope else None)
    k = mf.kernels(X, mf.Network(6, act, 1.7, 0.2), layers=True)
    as_float = np.vectorize(float)
    assert_allclose(k.nngp_layers, as_float(ref.sigma), rtol=1e-12)
    assert_allclose(k.backward, as_float(ref.backward), rtol=1e-12)
    assert_allclose(k.ntk, as_float(ref.ntk[-1]), rtol=1e-12)
    assert_allclose(k.ntk_layers, as_float(ref.layers), rtol=1e-12)


@pytest.mark.parametrize("s", [1e-2, 1e-6, 1e-10, 1e-14, 1e-300])
def test_relu_decorrelation_map_is_exact_as_s_goes_to_zero(s):
    with mp.workdps(60):
        ref = 1 - R.relu_g(1 - mpf(s), dps=60)
    assert _rel(float(mf.decorrelation_map(s)), ref) <= 1e-14


@pytest.mark.parametrize("act, sw, sb", [("erf", 1.3, 0.2), ("tanh", 1.5, 0.05)])
@pytest.mark.parametrize("s", [1e-4, 1e-8, 1e-12])
def test_general_decorrelation_map_keeps_relative_precision(act, sw, sb, s):
    # 1 - c' from the map in s, against mpmath: the naive 1 - Sigma_12/q would be off by ~1e-16/s
    q = 0.8
    with mp.workdps(40):
        c = 1 - mpf(s)
        num = sw * R.ref_cov(act, q, c * q, q, dps=35) + sb
        qn = sw * R.ref_var(act, q, dps=35) + sb
        ref = 1 - num / qn
    assert _rel(float(mf.decorrelation_map(s, act, q, sw, sb)), ref) <= 1e-9


def test_relu_eoc_one_minus_c_matches_40_digit_recursion_at_depth_1e4():
    # l^2 (1 - c_l) for c_1 = 0 at l = 1e4 to 1e-6 relative (asymptotics derived in meanfield.equilibrium)
    curve = mf.pair_curve(mf.Network(10**4))
    ref = R.relu_eoc_one_minus_c(0.0, 10**4, dps=40)
    assert _rel(float(curve.s[-1]), ref) <= 1e-6
    assert abs(1e8 * curve.s[-1] - 44.261) < 5e-4


@pytest.mark.parametrize("act, q0", [("tanh", 0.5), ("sigmoid", 20.0)])
def test_edge_of_chaos_matches_mpmath(act, q0):
    # q0: starting point of the reference's Newton solve of the two EOC equations (sigmoid's q* is large)
    sw, q = (float(x) for x in R.ref_eoc_point(act, 0.05, q0=q0))
    assert_allclose(mf.edge_of_chaos(act, 0.05), sw, rtol=1e-10)
    assert_allclose(mf.fixed_point_q(mf.Network(1, act, sw, 0.05)), q, rtol=1e-9)


def test_gelu_with_bias_has_no_edge_of_chaos_on_its_stable_branch():
    # the mpmath reference finds chi_1 = 1 at sigma_w2 = 2.3025 on the *unstable* fixed point q* = 0.722; the
    # stable fixed point (q* = 0.186 there, chi_1 = 0.774) vanishes at sigma_w2 = 2.41595 before chi_1 reaches 1
    sw, q_unstable = (float(x) for x in R.ref_eoc_point("gelu", 0.05))
    assert abs(mf.variance_map(q_unstable, "gelu", sw, 0.05) - q_unstable) < 1e-8
    p = mf.phase(mf.Network(1, "gelu", sw, 0.05))
    assert p.q_star < 0.5 and p.phase == "ordered"
    with pytest.raises(ValueError, match="stable"):
        mf.edge_of_chaos("gelu", 0.05)


def test_variance_moments_match_mpmath_for_the_general_path():
    from meanfield.gaussian.maps import single_moments

    for act in ["tanh", "softplus", "silu"]:
        for q in [1e-6, 0.5, 10.0, 1e4]:
            v, dv = single_moments(act, q)
            assert _rel(float(v), R.ref_var(act, q)) <= 1e-12
            assert _rel(float(dv), R.ref_dvar(act, q)) <= 1e-12


def test_hermite_coefficients_of_known_functions():
    # phi = linear: a = (0, sqrt(q), 0, ...); erf has the Mehler series of (2/pi) arcsin(rho c)
    a, b = mf.hermite_coefficients("linear", 2.0, order=4)
    assert_allclose(a, [0, np.sqrt(2), 0, 0], atol=1e-15)
    assert_allclose(b, [1, 0, 0, 0], atol=1e-15)
    a, _ = mf.hermite_coefficients(mf.Activation(np.tanh, lambda u: 1 - np.tanh(u) ** 2, "tanh2"), 1.0)
    cov_mehler = np.sum(a * a * 0.3 ** np.arange(a.size))
    cov, _ = mf.gaussian_moments(1.0, 1.0, 0.3, "tanh")
    assert_allclose(cov_mehler, cov, rtol=1e-14)


def test_gaussian_moments_validate_inputs():
    with pytest.raises(ValueError, match="c"):
        mf.gaussian_moments(1.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="q1"):
        mf.gaussian_moments(-1.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="q2"):
        mf.gaussian_moments(1.0, np.nan, 0.5)
    with pytest.raises(ValueError, match="activation"):
        mf.gaussian_moments(1.0, 1.0, 0.5, "swish")


@pytest.mark.slow
def test_stored_reference_values_are_reproducible():
    for case in DATA["moments"][::4]:
        l12 = case["c"] * np.sqrt(case["q1"] * case["q2"])
        cov, dcov = R.ref_cov_dcov(case["act"], case["q1"], l12, case["q2"], dps=30)
        with mp.workdps(40):
            assert abs(cov - mpf(case["cov"])) <= 1e-25 * abs(cov)
            assert abs(dcov - mpf(case["dcov"])) <= 1e-25 * abs(dcov)
