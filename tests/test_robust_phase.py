"""Issue 16, item 4: fixed points and the edge of chaos, checked against erf's closed forms in mpmath and against
the limits of the iterated variance map (q_curve)."""

import math

import mpmath as mp
import numpy as np
import pytest

import meanfield as mf


def _erf_fixed_point_mp(sw, sb):
    """q* = sigma_w2 (2/pi) arcsin(2q/(1 + 2q)) + sigma_b2 (Williams 1997), by mpmath's root finder."""
    with mp.workdps(40):
        f = lambda q: sw * 2 / mp.pi * mp.asin(2 * q / (1 + 2 * q)) + sb - q  # noqa: E731
        return mp.findroot(f, mp.mpf(sb) + sw)


def test_erf_fixed_point_beyond_the_initial_grid():
    # reproducer: fixed_point_q(erf, 1.0, 1e6) returned inf; q* ~ 1e6 + 1 (the map is a contraction there)
    net = mf.Network(1, "erf", 1.0, 1e6)
    q = mf.fixed_point_q(net)
    ref = _erf_fixed_point_mp(1.0, 1e6)
    assert abs(q - float(ref)) <= 2e-16 * float(ref)
    curve = mf.q_curve(mf.Network(50, "erf", 1.0, 1e6), 1.0)
    assert abs(curve[-1] - q) <= 2e-16 * q
    assert mf.phase(net).q_star == q


@pytest.mark.parametrize("sb", [1e3, 1e8, 1e12, 1e20])
def test_erf_fixed_point_large_bias(sb):
    q = mf.fixed_point_q(mf.Network(1, "erf", 2.0, sb))
    assert abs(q - float(_erf_fixed_point_mp(2.0, sb))) <= 2e-16 * q


def test_relu_unstable_zero_fixed_point_is_not_returned():
    # reproducer: fixed_point_q(relu, 3.0, 0.0) returned 0.0 (unstable) and phase reported q* = 0 next to a note
    # that q* is undefined; q_l = 1.5^(l - 1) q_1 grows without bound from every q_1 > 0
    net = mf.Network(1, "relu", 3.0, 0.0)
    assert mf.fixed_point_q(net) == math.inf
    p = mf.phase(net)
    assert p.q_star == math.inf and "diverges" in p.note
    curve = mf.q_curve(mf.Network(100, "relu", 3.0, 0.0), 1e-10)
    np.testing.assert_allclose(curve, 1e-10 * 1.5 ** np.arange(100), rtol=1e-13)


@pytest.mark.parametrize(
    ("act", "sw", "sb", "expected"),
    [
        ("relu", 1.0, 0.0, 0.0),  # ordered: q_l -> 0
        ("relu", 1.0, 0.5, 1.0),  # 0.5 / (1 - 0.5)
        ("relu", 2.0, 0.0, math.nan),  # every q is fixed
        ("relu", 2.0, 0.1, math.inf),
        ("relu", 3.0, 0.5, math.inf),
        ("leaky_relu:0.5", 3.0, 0.0, math.inf),  # slope 3 (1 + 1/4)/2 > 1
        ("leaky_relu:0.5", 1.0, 0.0, 0.0),
    ],
)
def test_leaky_fixed_points(act, sw, sb, expected):
    q = mf.fixed_point_q(mf.Network(1, act, sw, sb))
    if math.isnan(expected):
        assert math.isnan(q)
    else:
        assert q == pytest.approx(expected, rel=1e-15, abs=0.0)


@pytest.mark.parametrize(("act", "sw", "sb"), [("tanh", 1.5, 0.0), ("tanh", 0.5, 0.3), ("erf", 3.0, 0.0),
                                               ("erf", 0.5, 0.0), ("tanh", 4.0, 2.0)])  # fmt: skip
def test_fixed_point_is_the_limit_of_q_curve(act, sw, sb):
    # the stable fixed point is what the variance map converges to from q_1 = 1
    q = mf.fixed_point_q(mf.Network(1, act, sw, sb))
    limit = mf.q_curve(mf.Network(400, act, sw, sb), 1.0)[-1]
    assert q == pytest.approx(limit, rel=1e-12, abs=1e-60)  # erf (0.5, 0): q* = 0, q_400 ~ 0.64^400


def test_tanh_fixed_point_below_the_initial_grid():
    # tanh at sigma_w2 = 1 + eps without bias: q = 0 is unstable and q* ~ eps / 2 (tanh^2 ~ u^2 - 2/3 u^4)
    eps = 1e-14
    q = mf.fixed_point_q(mf.Network(1, "tanh", 1.0 + eps, 0.0))
    assert q == pytest.approx(((1.0 + eps) - 1.0) / 2.0, rel=1e-3)


def test_edge_of_chaos_beyond_the_initial_bracket():
    # reproducer: edge_of_chaos("erf", sigma_b2=1e6) said "no edge of chaos in [1e-3, 1e3]"; erf's closed form,
    # sigma_w2 = (pi/4) sqrt(1 + 4q), sigma_b2 = q - (1/2) sqrt(1 + 4q) arcsin(2q/(1 + 2q)), puts it near 1572
    with mp.workdps(40):
        sb = mp.mpf(10) ** 6
        q = mp.findroot(lambda q: q - mp.sqrt(1 + 4 * q) / 2 * mp.asin(2 * q / (1 + 2 * q)) - sb, sb + 1571)
        ref = float(mp.pi / 4 * mp.sqrt(1 + 4 * q))
    sw = mf.edge_of_chaos("erf", sigma_b2=1e6)
    assert abs(sw - ref) <= 1e-12 * ref
    assert abs(mf.phase(mf.Network(1, "erf", sw, 1e6)).chi1 - 1.0) < 1e-9


@pytest.mark.parametrize("sb", [1e-8, 0.05, 10.0, 1e4, 1e9])
def test_edge_of_chaos_erf_closed_form(sb):
    sw = mf.edge_of_chaos("erf", sigma_b2=sb)
    q = mf.fixed_point_q(mf.Network(1, "erf", sw, sb))
    with mp.workdps(40):
        qm = mp.mpf(q)
        assert abs(sw - float(mp.pi / 4 * mp.sqrt(1 + 4 * qm))) <= 1e-12 * sw
        sb_ref = qm - mp.sqrt(1 + 4 * qm) / 2 * mp.asin(2 * qm / (1 + 2 * qm))
        assert abs(float(sb_ref) - sb) <= 1e-9 * max(sb, q)


def test_edge_of_chaos_of_silu_and_gelu_without_bias_is_the_left_limit_four():
    """phi(0) = 0, phi'(0) = 1/2: q* = 0 is stable up to sigma_w2 = 4, where the variance jumps to inf. The edge is
    the left limit (chi_1 = sigma_w2 / 4 -> 1), found without a Brent search through the diverging side (which
    took minutes: each fixed point with q* = inf swept quadratures up to q = 1e300)."""
    for act in ("gelu", "silu"):
        sw = mf.edge_of_chaos(act, 0.0)
        assert 4.0 * (1 - 1e-11) < sw <= 4.0
        p = mf.phase(mf.Network(1, act, sw, 0.0))
        assert p.q_star == 0.0 and abs(p.chi1 - 1.0) < 1e-11
        assert mf.fixed_point_q(mf.Network(1, act, 4.0 * (1 + 1e-9), 0.0)) == math.inf


def test_quadrature_rule_is_shared_below_its_finest_panel_scale():
    from meanfield.gaussian.quadrature import _gauss_rule, gauss_rule

    for order in (0, 16, 300):
        for q in (0.0, 1e-300, 1e-9, 0.2):
            z, w = gauss_rule(q, order)
            z0, w0 = _gauss_rule.__wrapped__(q, order)  # the rule built for q itself
            assert np.array_equal(z, z0) and np.array_equal(w, w0)
