"""Issue 16, item 2: products of variances must neither over- nor underflow.

Correlations are formed as k / (sqrt(q1) sqrt(q2)), never k / sqrt(q1 q2); a number that cannot be represented
(the NNGP itself overflowing float64) is refused with a ValueError instead of NaN; the NTK dispersion is
scale-free. References are independent: Williams' (1997) erf recursion and the arc-cosine recursion (Cho & Saul
2009) evaluated in mpmath at 50 digits.
"""

import math

import mpmath as mp
import numpy as np
import pytest

import meanfield as mf

X = np.random.default_rng(0).normal(size=(4, 3))


def _erf_kernels_mp(X, depth, sw, sb):
    """NNGP and NTK (NTK parameterization) of an erf network by Williams' closed forms, in mpmath."""
    with mp.workdps(800):  # (1 + 2q)^2 - 4 q^2 at q ~ 1e300 needs ~600 digits
        n, d = X.shape
        rows = [[mp.mpf(float(v)) for v in row] for row in X]
        S = [
            [sw * mp.fsum(a * b for a, b in zip(rows[i], rows[j], strict=True)) / d + sb for j in range(n)]
            for i in range(n)
        ]
        T = [row[:] for row in S]
        for _ in range(depth - 1):
            new_s = [[None] * n for _ in range(n)]
            new_t = [[None] * n for _ in range(n)]
            for i in range(n):
                for j in range(n):
                    den = (1 + 2 * S[i][i]) * (1 + 2 * S[j][j])
                    new_s[i][j] = sw * 2 / mp.pi * mp.asin(2 * S[i][j] / mp.sqrt(den)) + sb
                    dot = sw * 4 / mp.pi / mp.sqrt(den - 4 * S[i][j] ** 2)
                    new_t[i][j] = T[i][j] * dot + new_s[i][j]
            S, T = new_s, new_t
        return S, T


def _assert_kernel_close(K, ref, rtol):
    """|K_ij - ref_ij| <= rtol sqrt(ref_ii ref_jj): relative to the scale of the entry, also where it crosses 0."""
    n = K.shape[0]
    for i in range(n):
        for j in range(n):
            scale = mp.sqrt(ref[i][i] * ref[j][j])
            err = abs(mp.mpf(float(K[i, j])) - ref[i][j]) / scale
            assert err < rtol, (i, j, float(K[i, j]), ref[i][j])


@pytest.mark.parametrize("scale", [1e150, 1e-150, 1e100, 1e-100, 1.0])
def test_erf_kernels_at_extreme_norms_match_mpmath(scale):
    # reproducer: ||x|| ~ 1e150 or 1e-150 gave all NaN (q1 q2 overflowed / underflowed inside the erf kernel)
    net = mf.Network(3, "erf", 1.0, 0.0)
    k = mf.kernels(scale * X, net)
    assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
    S, T = _erf_kernels_mp(scale * X, 3, 1.0, 0.0)
    _assert_kernel_close(k.nngp, S, 1e-13)
    _assert_kernel_close(k.ntk, T, 1e-13)


@pytest.mark.parametrize("scale", [1e150, 1e-150])
def test_erf_kernels_with_bias_at_extreme_norms_match_mpmath(scale):
    net = mf.Network(4, "erf", 1.7, 0.1)
    k = mf.kernels(scale * X, net, X2=X[:2] * scale * 3.0)
    full = np.vstack([scale * X, X[:2] * scale * 3.0])
    S, T = _erf_kernels_mp(full, 4, 1.7, 0.1)
    sub_s = [[S[i][j] for j in range(4, 6)] for i in range(4)]
    sub_t = [[T[i][j] for j in range(4, 6)] for i in range(4)]
    for i in range(4):
        for j in range(2):
            for K, ref, R in ((k.nngp, sub_s, S), (k.ntk, sub_t, T)):
                scale_ij = mp.sqrt(R[i][i] * R[4 + j][4 + j])
                assert abs(mp.mpf(float(K[i, j])) - ref[i][j]) / scale_ij < 1e-13


def _relu_c_mp(c1, depth):
    """ReLU correlation map c' = (sqrt(1 - c^2) + (pi - arccos c) c) / pi at sigma_b2 = 0 (q-independent)."""
    with mp.workdps(50):
        c = mp.mpf(c1)
        out = [c]
        for _ in range(depth - 1):
            c = (mp.sqrt(1 - c * c) + (mp.pi - mp.acos(c)) * c) / mp.pi
            out.append(c)
        return out


def test_relu_pair_curve_survives_variance_underflow():
    # reproducer: pair_curve for ReLU at sigma_w2 = 1e-8 turned s, r, Sigma into NaN once q underflowed
    depth = 200
    pc = mf.pair_curve(mf.Network(depth, "relu", 1e-8, 0.0), c=0.3)
    assert pc.q1[-1] == 0.0  # (5e-9)^199 underflows: the variance itself is below float64's range
    assert np.all(np.isfinite(pc.s)) and np.all(np.isfinite(pc.r)) and np.all(np.isfinite(pc.sigma))
    ref = _relu_c_mp(0.3, depth)
    for l in range(depth):
        assert abs(pc.s[l] - float(1 - ref[l])) <= 3e-14 * float(1 - ref[l]), l
    # the correlations do not depend on sigma_w2 without bias
    np.testing.assert_allclose(pc.s, mf.pair_curve(mf.Network(depth, "relu", 2.0, 0.0), c=0.3).s, rtol=1e-14)
    # where q is representable, Sigma = sqrt(q1 q2) c; below, it underflows to 0 (never NaN)
    ok = pc.q1 > 1e-290
    np.testing.assert_allclose(pc.sigma[ok], pc.q1[ok] * pc.c[ok], rtol=1e-13)
    assert np.all(pc.sigma[~ok] >= 0.0) and np.all(pc.sigma[~ok] < 1e-280)


def test_relu_kernels_scale_with_sigma_w2_down_to_underflow():
    # ReLU without bias: Sigma_L(sigma_w2) = (sigma_w2 / 2)^L Sigma_L(2) exactly; 1e-8 at depth 30 is ~1e-250
    depth, sw = 30, 1e-8
    small = mf.kernels(X, mf.Network(depth, "relu", sw, 0.0))
    he = mf.kernels(X, mf.Network(depth, "relu", 2.0, 0.0))
    np.testing.assert_allclose(small.nngp, (sw / 2) ** depth * he.nngp, rtol=1e-13)
    deep = mf.kernels(X, mf.Network(60, "relu", sw, 0.0), layers=True)  # q_60 ~ 1e-470 underflows: zeros, no NaN
    for arr in (deep.nngp, deep.ntk, deep.nngp_layers, deep.backward, deep.ntk_layers):
        assert np.all(np.isfinite(arr))
    assert np.all(deep.nngp == 0.0)


def test_erf_correlations_survive_variance_underflow():
    # erf at sigma_w2 < pi/4 without bias: q_l ~ (4 sigma_w2 / pi)^l underflows near l = 1570, where erf is linear
    # to within q (relative): the correlation has converged and must stay put, not turn NaN
    pc = mf.pair_curve(mf.Network(2000, "erf", 0.5, 0.0), c=0.3)
    assert pc.q1[-1] < 1e-320  # subnormal, then 0
    assert np.all(np.isfinite(pc.s)) and np.all(np.isfinite(pc.sigma)) and np.all(np.isfinite(pc.dot[1:]))
    assert abs(pc.c[-1] - pc.c[1400]) < 1e-15
    k = mf.kernels(X, mf.Network(2000, "erf", 0.5, 0.0))
    assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))


@pytest.mark.parametrize("scale", [1e-150, 1e-200, 1e-160])
def test_tiny_inputs_are_not_zero_norm(scale):
    # the layer-1 correlations come from rows scaled exactly by a power of two: exact however small the input; a row
    # whose layer-1 variance is still a normal float64 (scale 1e-150: q ~ 1e-300) gives finite kernels, one below
    # that range (1e-160, 1e-200 at sigma_w2 = 1) is refused with that reason, never called "zero norm"
    for act in ("relu", "erf"):
        net = mf.Network(3, act, 1.0, 0.0)
        if scale >= 1e-150:
            k = mf.kernels(scale * X, net)
            assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
            assert np.all(np.diag(k.nngp) > 0)
        else:
            with pytest.raises(ValueError, match="outside the float64 range") as info:
                mf.kernels(scale * X, net)
            assert "zero norm" not in str(info.value)
    pc = mf.pair_curve(mf.Network(5, "relu", 2.0, 0.0), q1=1e-320, c=0.3)
    np.testing.assert_allclose(pc.c, [float(c) for c in _relu_c_mp(0.3, 5)], rtol=1e-14)


def test_unrepresentable_kernels_are_refused():
    with pytest.raises(ValueError, match="layer-1 variance .* overflows float64"):
        mf.kernels(1e160 * X, mf.Network(3, "erf", 1.0, 0.0))
    with pytest.raises(ValueError, match="overflows float64 at layer l = "):
        mf.kernels(X, mf.Network(2000, "relu", 3.0, 0.0))  # q_l ~ 1.5^l exceeds 1.8e308 near l = 1750
    with pytest.raises(ValueError, match="overflows float64 at layer l = "):
        mf.pair_curve(mf.Network(2000, "relu", 3.0, 0.0))
    with pytest.raises(ValueError, match="NTK overflows float64"):
        mf.kernels(X, mf.Network(1740, "relu", 3.0, 0.0))  # q_L < 1.8e308 but Theta_L ~ L q_L / ... does not fit
    with pytest.raises(ValueError, match="overflows float64"):
        mf.kernels(1e155 * X, mf.Network(2, "relu", 2.0, 0.0))


def test_ntk_dispersion_is_scale_free():
    # reproducer: x0_norm2 = 1e200 gave inf (1e100 gave 1.7602). Theta_W is homogeneous of degree 1 in ||x^0||^2
    # and Theta_b of degree 0, so D(x) = (s_W x^2 + 2 c x + s_b) / (m_W x + m_b)^2 with the moments at x = 1;
    # for this network m_W = 7/3, m_b = 2 (by hand: E||x^1||^2 = 4 (1/2)(2/3) x, E||delta^1||^2 = 4 (1/2)(1/2))
    net = mf.Network(2, "relu", 2.0, 0.0, "standard", width=(4,))
    one = mf.ntk_moments(net, 3)
    assert abs(one.mean_w - 7 / 3) < 1e-15 and one.mean_b == 2.0
    with mp.workdps(60):
        mw, mb = mp.mpf(7) / 3, mp.mpf(2)
        sw_, cr, sb_ = (mp.mpf(v) for v in (one.second_w, one.cross_wb, one.second_b))
        for x in ("1e-300", "1e-100", "1", "1e100", "1e200", "1e300", "1.7e308"):
            xm = mp.mpf(x)
            ref = (sw_ * xm**2 + 2 * cr * xm + sb_) / (mw * xm + mb) ** 2
            m = mf.ntk_moments(net, 3, x0_norm2=float(x))
            assert math.isfinite(m.dispersion)
            assert abs(m.dispersion - float(ref)) <= 4e-16 * float(ref), x
            log_second, log_mean = mp.log(sw_ * xm**2 + 2 * cr * xm + sb_), mp.log(mw * xm + mb)
            assert abs(m.log_second - float(log_second)) <= 1e-15 * (1 + abs(float(log_second)))
            assert abs(m.log_mean - float(log_mean)) <= 1e-15 * (1 + abs(float(log_mean)))
    assert mf.ntk_moments(net, 3, x0_norm2=1e200).second == math.inf  # documented: the field overflows, its log not
