"""Issue 16, item 2 (scalar maps): the per-unit forms at extreme variances, checked against mpmath, and refusals of
what float64 cannot hold; leftovers of the CLI's input checks."""

from __future__ import annotations

import mpmath as mp
import pytest

import meanfield as mf

DPS = 30


def _mp_relu_cov(q1, q2, c):
    """Arc-cosine kernel of degree 1 (Cho & Saul 2009) at 30 digits."""
    with mp.workdps(DPS):
        c = mp.mpf(c)
        th = mp.acos(c)
        return mp.sqrt(mp.mpf(q1) * mp.mpf(q2)) / (2 * mp.pi) * (mp.sin(th) + (mp.pi - th) * c)


def _mp_erf_cov(q1, q2, c):
    """Williams (1997): (2/pi) arcsin(2 c sqrt(q1 q2) / sqrt((1 + 2 q1)(1 + 2 q2))) at 30 digits."""
    with mp.workdps(DPS):
        q1, q2, c = mp.mpf(q1), mp.mpf(q2), mp.mpf(c)
        return 2 / mp.pi * mp.asin(2 * c * mp.sqrt(q1 * q2) / mp.sqrt((1 + 2 * q1) * (1 + 2 * q2)))


@pytest.mark.parametrize("q", [1e-300, 1e-200, 1e200, 1e300])
def test_gaussian_moments_extreme_variances_mpmath(q):
    for c in (-0.7, 0.5, 1.0):
        cov, dcov = mf.gaussian_moments(q, q, c, "relu")
        assert float(cov) == pytest.approx(float(_mp_relu_cov(q, q, c)), rel=1e-14)
        cov, dcov = mf.gaussian_moments(q, q, c, "erf")
        assert float(cov) == pytest.approx(float(_mp_erf_cov(q, q, c)), rel=1e-14)
        with mp.workdps(DPS):
            ref = 4 / mp.pi / mp.sqrt((1 + 2 * mp.mpf(q) * (1 - c)) * (1 + 2 * mp.mpf(q) * (1 + c)))  # no cancellation
        assert float(dcov) == pytest.approx(float(ref), rel=1e-13)
    # very unequal variances: sqrt(q1) sqrt(q2), never sqrt(q1 q2)
    cov, _ = mf.gaussian_moments(1e-300, 1e300, 0.5, "relu")
    assert float(cov) == pytest.approx(float(_mp_relu_cov(1e-300, 1e300, 0.5)), rel=1e-14)


def test_gaussian_moments_small_variance_general_path():
    # tanh(x) = x - x^3/3 + ...: E[tanh(u) tanh(v)] = c q (1 - 2 q) + O(q^3) at equal variances
    for q in (1e-200, 1e-300):
        cov, dcov = mf.gaussian_moments(q, q, 0.5, "tanh")
        assert float(cov) == pytest.approx(0.5 * q, rel=1e-14)
        assert float(dcov) == pytest.approx(1.0, rel=1e-14)


def _mp_relu_corr(c, sw, sb, q):
    with mp.workdps(DPS):
        q, sw, sb = mp.mpf(q), mp.mpf(sw), mp.mpf(sb)
        return (sw * _mp_relu_cov(q, q, c) + sb) / (sw * q / 2 + sb)


@pytest.mark.parametrize(
    "q, sw, sb",
    [(1e300, 1e10, 0.0), (1e300, 1e10, 1.0), (1e-310, 2.0, 0.0), (1e-200, 1e-200, 0.0), (1e-200, 1e-200, 1e-399)],
)
def test_correlation_maps_relu_any_scale_mpmath(q, sw, sb):
    """The ReLU correlation map does not depend on q (it returned NaN at q sigma_w^2 = 1e310 and lost digits at
    denormal q); with a bias it is (sigma_w^2 k + sigma_b^2) / (sigma_w^2 q / 2 + sigma_b^2)."""
    sb = float(sb)
    for c in (-0.9, 0.0, 0.5, 0.999):
        ref = _mp_relu_corr(c, sw, sb, q)
        assert float(mf.correlation_map(c, "relu", q, sw, sb)) == pytest.approx(float(ref), rel=1e-14, abs=1e-15)
        assert float(mf.decorrelation_map(1.0 - c, "relu", q, sw, sb)) == pytest.approx(float(1 - ref), rel=1e-13)
        with mp.workdps(DPS):  # slope q Sigmadot / q' = sigma_w^2 q (pi - theta) / (2 pi) / q'
            q_, sw_ = mp.mpf(q), mp.mpf(sw)
            slope = sw_ * q_ * (mp.pi - mp.acos(c)) / (2 * mp.pi) / (sw_ * q_ / 2 + sb)
        assert float(mf.correlation_slope(c, "relu", q, sw, sb)) == pytest.approx(float(slope), rel=1e-14)


def test_correlation_maps_tiny_products_are_the_limits():
    # sigma_w^2 E tanh^2 = 1e-400 underflowed: the map returned c' = 1 and a NaN slope; the odd activation's map is
    # the linear one, c' = c (1 - 2q)/(1 - 2q) + O(q^2) = c, slope 1
    assert float(mf.correlation_map(0.5, "tanh", 1e-200, 1e-200)) == pytest.approx(0.5, rel=1e-15)
    assert float(mf.correlation_slope(0.5, "tanh", 1e-200, 1e-200)) == pytest.approx(1.0, rel=1e-15)
    assert float(mf.correlation_map(0.5, "erf", 1e-310)) == pytest.approx(0.5, rel=1e-15)  # was 0.49999999999998
    # q = 0 (both inputs zero): the q -> 0 limits, not the 'degenerate' c' = 1 and a NaN slope
    assert float(mf.correlation_map(0.5, "relu", 0.0)) == pytest.approx(float(_mp_relu_corr(0.5, 2.0, 0.0, 1.0)))
    assert float(mf.correlation_map(0.5, "tanh", 0.0)) == pytest.approx(0.5, rel=1e-14)
    assert float(mf.correlation_slope(0.5, "tanh", 0.0)) == pytest.approx(1.0, rel=1e-14)
    assert float(mf.correlation_slope(0.5, "erf", 0.0)) == pytest.approx(1.0, rel=1e-14)


def test_unrepresentable_variances_are_refused():
    with pytest.raises(ValueError, match="overflows float64.*sigma_w2"):
        mf.variance_map(1e300, "relu", 1e10)
    with pytest.raises(ValueError, match="underflows float64.*sigma_w2"):
        mf.variance_map(1e-300, "relu", 1e-300)
    assert float(mf.variance_map(1e300, "relu", 1.0)) == 5e299
    assert float(mf.variance_map(0.0, "tanh", 1.0)) == 0.0  # an exact zero is not an underflow


# ------------------------------------------------------------------------------------------------------------------
# leftovers: a negative seed is refused, whatever else is asked
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["dispersion", "--sigma-w2", "2", "--width", "4", "--depth", "3", "--seed", "-1", "--simulate", "0"],
        ["dispersion", "--sigma-w2", "2", "--width", "4", "--depth", "3", "--seed", "-1"],
        ["dispersion", "--sigma-w2", "2", "--width", "4", "--depth", "3", "--seed", "-1", "--simulate", "5"],
        ["nfa-early", "--seed", "-1"],
        ["simulate", "--seed", "-1", "--depth", "2", "--width", "4", "--nets", "3", "--random", "3,2"],
    ],
)
def test_negative_seed_is_refused(capsys, argv):
    from meanfield.cli import main

    code = main(argv)
    out = capsys.readouterr()
    assert code == 2 and out.out == "", (code, out)
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"meanfield {argv[0]}: error: --seed must be an integer >= 0, got -1"
