"""phase and fixed_point_q for networks with options (issue 11): per-layer schedules (tail values), LayerNorm,
dropout (Schoenholz et al. 2017: no critical line) and residual networks (growth instead of a fixed point), checked
against direct iteration of the maps and against mpmath closed forms."""

import math

import mpmath as mp
import numpy as np
import pytest

from meanfield import Network
from meanfield.equilibrium.curves import arch_curves
from meanfield.gaussian.maps import gaussian_moments, single_moments
from meanfield.phase import edge_of_chaos, fixed_point_q, phase

mp.mp.dps = 40


def _relu_cov(c):
    """E[relu(u) relu(v)] / q for unit-correlation c (Cho & Saul 2009), in mpmath."""
    c = mp.mpf(c)
    return (mp.sqrt(1 - c**2) + (mp.pi - mp.acos(c)) * c) / (2 * mp.pi)


def test_dropout_destroys_the_critical_line():
    """Schoenholz et al. 2017, sec. 5: with dropout c* < 1 for every sigma_w2 and xi_c stays finite, also on the
    plain network's edge of chaos, where xi_c diverges without dropout."""
    sw_eoc = edge_of_chaos("tanh", 0.05)
    assert phase(Network(1, "tanh", sw_eoc, 0.05)).xi_c > 1e4
    grid = np.r_[np.linspace(0.5, 4.0, 8), sw_eoc]
    for rho, bound in ((0.9, 6.0), (0.99, 25.0)):
        xi = []
        for sw in grid:
            p = phase(Network(1, "tanh", sw, 0.05, dropout=rho))
            assert p.c_star < 1.0 and p.chi_c < 1.0 and "no critical line" in p.note
            xi.append(p.xi_c)
        assert max(xi) < bound  # measured: 4.67 (rho = 0.9), 14.5 (rho = 0.99)
    # the maximum grows as rho -> 1 (the critical line is recovered only at rho = 1)
    peak = [max(phase(Network(1, "tanh", sw, 0.05, dropout=rho)).xi_c for sw in grid) for rho in (0.9, 0.99, 0.999)]
    assert peak[0] < peak[1] < peak[2]


def test_dropout_fixed_points_against_direct_iteration():
    """q* and c* from iterating the maps (variance map with 1/rho, covariance without), and chi_c from the
    geometric rate of c_l -> c*."""
    sw, sb, rho = 1.5, 0.05, 0.8
    net = Network(1, "tanh", sw, sb, dropout=rho)
    p = phase(net)
    q = 1.0
    for _ in range(300):
        q = float(sw / rho * single_moments("tanh", q)[0] + sb)
    assert abs(q - p.q_star) < 1e-12 * q and abs(fixed_point_q(net) - p.q_star) < 1e-15
    c, dev = 0.9, []
    for _ in range(150):
        c = float((sw * gaussian_moments(q, q, c, "tanh")[0] + sb) / q)
        dev.append(c - p.c_star)
    assert abs(dev[-1]) < 1e-14
    rate = dev[40] / dev[39]  # dev ~ 1e-7 here: second-order and rounding errors both below 1e-5
    assert abs(rate - p.chi_c) < 1e-5
    assert abs(p.xi_c + 1.0 / math.log(p.chi_c)) < 1e-12


def test_dropout_relu_against_mpmath():
    """ReLU with bias: q* = sb / (1 - sw / (2 rho)); c* solves c = (sw q* k(c) + sb) / q*;
    chi_c = sw (pi - theta*) / (2 pi)."""
    sw, sb, rho = 1.2, 0.3, 0.75
    p = phase(Network(1, "relu", sw, sb, dropout=rho))
    q = mp.mpf(sb) / (1 - mp.mpf(sw) / (2 * mp.mpf(rho)))
    c = mp.findroot(lambda c: (sw * q * _relu_cov(c) + sb) / q - c, 0.5)
    chi_c = sw * (mp.pi - mp.acos(c)) / (2 * mp.pi)
    assert abs(p.q_star - float(q)) < 1e-14 * float(q)
    assert abs(p.c_star - float(c)) < 1e-13
    assert abs(p.chi_c - float(chi_c)) < 1e-13
    assert abs(p.chi1 - sw / 2) < 1e-15  # slope of the correlation map at c = 1: sw E phi'^2


def test_layernorm_against_closed_forms():
    """LayerNorm feeds phi unit variances: q* = sw v(1) + sb after one layer (erf: v(1) = (2/pi) asin(2/3),
    E phi'^2 = 4/(pi sqrt 5), Williams 1997), chi1 = sw E phi'^2 / q*; ReLU without bias sits on the edge of chaos."""
    sw, sb = 1.3, 0.2
    p = phase(Network(4, "erf", sw, sb, normalization="layer"))
    q = sw * 2 / mp.pi * mp.asin(mp.mpf(2) / 3) + sb
    assert abs(p.q_star - float(q)) < 1e-15 and p.xi_q == 0.0
    assert abs(p.chi1 - float(sw * 4 / (mp.pi * mp.sqrt(5)) / q)) < 1e-14
    # c*: the fixed point of the unit-variance erf correlation map
    c = mp.findroot(lambda c: (sw * 2 / mp.pi * mp.asin(2 * c / 3) + sb) / q - c, 0.9)
    if p.phase == "chaotic":
        assert abs(p.c_star - float(c)) < 1e-12
    relu = phase(Network(4, "relu", 3.0, 0.0, normalization="layer"))
    assert relu.phase == "edge_of_chaos" and relu.q_star == 1.5 and relu.chi1 == 1.0
    assert fixed_point_q(Network(4, "erf", sw, sb, normalization="layer")) == p.q_star


def test_schedule_uses_the_constant_tail():
    net = Network(5, "tanh", (1.0, 1.0, 1.5, 1.5, 1.5), 0.05)
    p, ref = phase(net), phase(Network(1, "tanh", 1.5, 0.05))
    assert (p.q_star, p.c_star, p.chi1, p.xi_c) == (ref.q_star, ref.c_star, ref.chi1, ref.xi_c)
    assert p.tail_start == 3 and "constant from layer 3 to 5" in p.note
    q = phase(Network(3, "tanh", (1.5, 1.5, 1.0), (0.05, 0.05, 0.1)))
    assert q.tail_start == 3 and "not constant at the end" in q.note
    assert q.q_star == phase(Network(1, "tanh", 1.0, 0.1)).q_star
    assert fixed_point_q(net) == ref.q_star


def test_residual_relu_growth_against_mpmath():
    """beta = 1, ReLU at (2, 0): q_l = 2^(l-1) q_1 exactly (q_rate = 2), and c_l from the residual map
    c' = (c + alpha k(c)) / (1 + alpha), alpha = beta^2 sw / 2, iterated in mpmath."""
    beta, sw, L = 0.7, 2.0, 40
    net = Network(L, "relu", sw, 0.0, residual=beta)
    ac = arch_curves(net, np.array([1.0]))
    alpha = mp.mpf(beta) ** 2 * sw / 2
    c = mp.mpf(0)
    for l in range(2, L):
        c = (c + alpha * 2 * _relu_cov(c)) / (1 + alpha)
        assert abs(ac.s[0, l - 1] - float(1 - c)) < 4e-15 * float(1 - c)  # a few ulps over 40 layers
        assert abs(ac.log_q[0, l - 1] - float(mp.log(2 * (1 + alpha) ** (l - 1)))) < 1e-13 * l
    p = phase(net)
    assert p.phase == "residual" and p.q_star == math.inf and math.isnan(p.c_star)
    assert abs(p.q_rate - (1 + beta**2 * sw / 2)) < 1e-13
    assert fixed_point_q(net) == math.inf


def test_residual_relu_approach_is_polynomial():
    """1 - c_l ~ ((1 + alpha)/alpha)^2 (9 pi^2/2) / l^2 (derived in residual_peak_layer_constant): exponent 2, not an
    exponential; the local exponent c_power tends to 2 from below (log corrections)."""
    p_short, p_long = phase(Network(200, residual=1.0)), phase(Network(20000, residual=1.0))
    assert 1.7 < p_short.c_power < p_long.c_power < 2.0
    assert p_long.c_power > 1.95
    s = arch_curves(Network(10**5, residual=1.0), np.array([1.0])).s[0]
    l = 10**5 - 1
    assert abs(s[l - 1] * l**2 / (4 * 4.5 * math.pi**2) - 1) < 0.02


def test_residual_layernorm_and_bounded_growth_is_linear():
    """With LayerNorm the branch has a fixed variance: q_l = q_1 + (l - 1) beta^2 (sw v(1) + sb) exactly; erf without
    LayerNorm grows linearly too (E erf(sqrt(q) z)^2 -> 1): q_rate -> 1, q_power -> 1."""
    beta, sw, sb = 0.5, 1.5, 0.1
    ac = arch_curves(Network(30, "tanh", sw, sb, residual=beta, normalization="layer"), np.array([1.0]))
    v1 = float(single_moments("tanh", 1.0)[0])
    l = np.arange(1, 30)
    assert np.allclose(np.exp(ac.log_q[0, :29]), sw + sb + (l - 1) * beta**2 * (sw * v1 + sb), rtol=1e-13)
    p = phase(Network(2000, "erf", 1.0, 0.0, residual=1.0))
    assert abs(p.q_rate - 1) < 2e-3 and 0.9 < p.q_power < 1.05


def test_residual_too_shallow_is_reported():
    p = phase(Network(4, residual=1.0))
    assert p.phase == "residual" and math.isnan(p.q_rate) and "too few residual blocks" in p.note


@pytest.mark.slow
def test_dropout_xi_c_scan_is_bounded_for_every_activation():
    """The finite correlation depth scale of dropout, on a fine sigma_w2 grid, for erf and tanh."""
    for act in ("erf", "tanh"):
        for sw in np.geomspace(0.3, 10.0, 120):
            p = phase(Network(1, act, sw, 0.05, dropout=0.9))
            assert math.isfinite(p.xi_c) and p.xi_c < 6.0
