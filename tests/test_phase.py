"""Phase diagram: fixed points, slopes, depth scales and the edge of chaos against independent check values."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import meanfield as mf


@pytest.mark.parametrize(
    "act, sw, sb, q_star, chi1, xi_q, xi_c, name",
    [
        # computed independently (mpmath: tests/reference.py), to the printed digits
        ("relu", 1.5, 0.1, 0.4, 0.75, 3.4761, 3.4761, "ordered"),
        ("erf", 1.0, 0.05, 0.288427, 0.867595, 1.6737, 7.0407, "ordered"),
        ("erf", 2.0, 0.05, 0.965955, 1.154653, 1.0731, 10.1850, "chaotic"),
    ],
)
def test_fixed_points_and_depth_scales_match_check_values(act, sw, sb, q_star, chi1, xi_q, xi_c, name):
    p = mf.phase(mf.Network(1, act, sw, sb))
    assert p.phase == name
    digits = lambda x: 0.5 * 10 ** -(len(f"{x}".split(".")[1]))  # noqa: E731 - half a unit of the last digit
    assert abs(p.q_star - q_star) <= digits(q_star)
    assert abs(p.chi1 - chi1) <= digits(chi1)
    assert abs(p.xi_q - xi_q) <= digits(xi_q)
    assert abs(p.xi_c - xi_c) <= digits(xi_c)


def test_erf_chaotic_fixed_correlation_matches_check_values():
    p = mf.phase(mf.Network(1, "erf", 2.0, 0.05))
    assert abs(p.c_star - 0.434481) <= 5e-7
    assert abs(p.chi_c - 0.906482) <= 5e-7


def test_erf_near_edge_depth_scale():
    p = mf.phase(mf.Network(1, "erf", 1.5, 0.1))
    assert abs(p.q_star - 0.691100) <= 5e-7 and abs(p.chi1 - 0.984359) <= 5e-7
    assert abs(p.xi_c - 63.43) <= 5e-3


def test_erf_closed_forms_for_chi1_and_chi_c():
    # derived from Williams 1997: chi_1 = 4 sw / (pi sqrt(1 + 4 q*)),
    # chi_c = 4 sw / pi [(1 + 2q*)^2 - 4 q*^2 c*^2]^(-1/2)
    p = mf.phase(mf.Network(1, "erf", 2.0, 0.05))
    q, c = p.q_star, p.c_star
    assert_allclose(p.chi1, 8 / (np.pi * np.sqrt(1 + 4 * q)), rtol=1e-14)
    assert_allclose(p.chi_c, 8 / np.pi / np.sqrt((1 + 2 * q) ** 2 - 4 * q**2 * c**2), rtol=1e-13)
    # q* solves the variance map exactly
    assert_allclose(mf.variance_map(q, "erf", 2.0, 0.05), q, rtol=1e-15)
    assert_allclose(mf.correlation_map(c, "erf", q, 2.0, 0.05), c, rtol=1e-13)


@pytest.mark.parametrize("q_star", [0.1, 1.0, 2.0, 5.0])
def test_general_edge_of_chaos_on_the_erf_closed_form_curve(q_star):
    # derived from Williams 1997: sigma_w^2 = (pi/4) sqrt(1 + 4 q*),
    # sigma_b^2 = q* - sqrt(1 + 4q*)/2 arcsin(2q*/(1+2q*))
    sw = np.pi / 4 * np.sqrt(1 + 4 * q_star)
    sb = q_star - 0.5 * np.sqrt(1 + 4 * q_star) * np.arcsin(2 * q_star / (1 + 2 * q_star))
    assert_allclose(mf.edge_of_chaos("erf", sb), sw, rtol=1e-10)
    p = mf.phase(mf.Network(1, "erf", sw, sb))
    assert_allclose(p.q_star, q_star, rtol=1e-10)
    assert p.phase == "edge_of_chaos" and math.isinf(p.xi_c)


def test_tanh_edge_of_chaos_matches_check_values():
    sw = mf.edge_of_chaos("tanh", 0.05)
    assert abs(sw - 1.76095) <= 5e-6
    assert abs(mf.fixed_point_q(mf.Network(1, "tanh", sw, 0.05)) - 0.57005) <= 5e-6
    assert mf.phase(mf.Network(1, "tanh", sw, 0.05)).phase == "edge_of_chaos"


@pytest.mark.parametrize("act, expected", [("tanh", 1.0), ("erf", np.pi / 4), ("relu", 2.0), ("leaky_relu:0.5", 1.6)])
def test_edge_of_chaos_without_bias(act, expected):
    assert_allclose(mf.edge_of_chaos(act, 0.0), expected, rtol=1e-15)


def test_relu_special_points_are_reported_not_crashed():
    he = mf.phase(mf.Network(5))
    assert he.phase == "edge_of_chaos" and math.isnan(he.q_star) and "every q" in he.note
    diverging = mf.phase(mf.Network(1, "relu", 2.5, 0.1))
    assert math.isinf(diverging.q_star) and diverging.phase == "chaotic" and "diverges" in diverging.note
    with pytest.raises(ValueError, match="sigma_b2"):
        mf.edge_of_chaos("relu", 0.1)


def test_odd_activation_without_bias_has_c_star_zero_in_chaos():
    p = mf.phase(mf.Network(1, "tanh", 2.0, 0.0))
    assert p.phase == "chaotic" and p.c_star == 0.0
    assert p.chi_c < 1 < p.chi1


def test_chi1_is_the_slope_of_the_correlation_map_at_one():
    for act, sw, sb in [("tanh", 1.2, 0.1), ("gelu", 1.8, 0.05), ("erf", 1.0, 0.3)]:
        p = mf.phase(mf.Network(1, act, sw, sb))
        assert_allclose(mf.correlation_slope(1.0, act, p.q_star, sw, sb), p.chi1, rtol=1e-9)


def test_correlation_slope_is_price_theorem_not_finite_differences():
    # the slope equals a central difference of the map itself (an independent check of Price's theorem)
    for act in ["tanh", "erf", "relu", "softplus"]:
        c, h = 0.3, 1e-5
        fd = (mf.correlation_map(c + h, act, 0.8, 1.5, 0.1) - mf.correlation_map(c - h, act, 0.8, 1.5, 0.1)) / (2 * h)
        assert_allclose(mf.correlation_slope(c, act, 0.8, 1.5, 0.1), fd, rtol=1e-8)


def test_variance_slope_gives_xi_q_as_the_derivative_of_the_variance_map():
    for act, sw, sb in [("tanh", 1.5, 0.1), ("erf", 1.2, 0.2), ("sigmoid", 2.0, 0.0)]:
        p = mf.phase(mf.Network(1, act, sw, sb))
        h = 1e-5 * p.q_star
        fd = (mf.variance_map(p.q_star + h, act, sw, sb) - mf.variance_map(p.q_star - h, act, sw, sb)) / (2 * h)
        assert_allclose(np.exp(-1 / p.xi_q), fd, rtol=1e-8)


def test_curves_follow_the_maps():
    q = mf.q_curve(mf.Network(6, "tanh", 1.5, 0.1), 0.3)
    for l in range(5):
        assert_allclose(q[l + 1], mf.variance_map(q[l], "tanh", 1.5, 0.1), rtol=1e-13)
    c = mf.c_curve(mf.Network(4, "relu", 2.0, 0.0), 0.2)
    assert_allclose(c, [0.2, mf.correlation_map(0.2), mf.correlation_map(mf.correlation_map(0.2)), c[3]], rtol=1e-15)


def test_bad_phase_arguments():
    with pytest.raises(ValueError, match="sigma_w2"):
        mf.phase(mf.Network(1, "tanh", -1.0, 0.0))
    with pytest.raises(ValueError, match="activation"):
        mf.phase(mf.Network(1, "cosh", 1.0, 0.0))
    with pytest.raises(ValueError, match="both"):
        mf.phase("tanh")
    with pytest.raises(ValueError, match="sigma_b2"):
        mf.edge_of_chaos("tanh", -0.1)


@pytest.mark.parametrize("sb", [0.0, 0.3])
def test_softplus_edge_of_chaos_is_the_limit_two(sb):
    # softplus ~ relu at large q: chi_1 -> sigma_w2 / 2 as q* -> inf. Below 2 the fixed point is finite with
    # chi_1 < 1, rising to 1 as q* escapes; at and above 2 the variance map stays above the identity at large q
    # (mpmath: 2 E softplus(sqrt(q) z)^2 > q), so chi_1 = 1 is reached only in the limit sigma_w2 -> 2.
    import reference as R

    assert mf.edge_of_chaos("softplus", sb) == 2.0
    chis = [mf.phase(mf.Network(1, "softplus", 2.0 * (1 - eps), sb)).chi1 for eps in (1e-1, 1e-3, 1e-6)]
    assert chis[0] < chis[1] < chis[2] < 1.0 and 1.0 - chis[2] < 0.01
    for q in (1e4, 1e8):
        assert 2.0 * float(R.ref_var("softplus", q)) + sb > q
    assert math.isinf(mf.phase(mf.Network(1, "softplus", 2.002, sb)).q_star)
