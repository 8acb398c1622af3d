"""The compiled kernel helpers against independent references (mpmath at 50 digits)."""

import math

import mpmath
import numpy as np
import pytest

from meanfield._jit import njit
from meanfield.gaussian.closed import acos1m, leaky_pair

mpmath.mp.dps = 50


@njit(cache=True)
def _acos1m_many(e, out):
    for i in range(e.shape[0]):
        out[i] = acos1m(e[i])


def _ulp_errors(e):
    out = np.empty_like(e)
    _acos1m_many(e, out)
    ref = np.array([float(2 * mpmath.asin(mpmath.sqrt(mpmath.mpf(x) / 2))) for x in e])  # = arccos(1 - e)
    return np.abs(out - ref) / np.spacing(ref), out


def test_acos1m_is_within_two_ulp_of_mpmath_over_its_whole_range():
    rng = np.random.default_rng(0)
    # log-spaced down to the smallest normals, uniform on [0, 1], and both sides of the branch point e = 1/2
    e = np.concatenate([
        10.0 ** rng.uniform(-300, 0, 3000),
        rng.uniform(0, 1, 3000),
        0.5 + np.arange(-50, 51) * np.spacing(0.5),
        [0.5, 1.0, 2**-52, 1e-300, 0.25],
    ])  # fmt: skip
    err, _ = _ulp_errors(e)
    assert err.max() <= 2.0, (err.max(), e[err.argmax()])
    assert np.mean(err) < 0.6


def test_acos1m_is_exact_at_zero_and_keeps_the_sqrt_2e_law_for_tiny_e():
    out = np.empty(3)
    _acos1m_many(np.array([0.0, 1e-300, 1.0]), out)
    assert out[0] == 0.0
    assert out[1] == pytest.approx(math.sqrt(2e-300), rel=1e-15)
    assert abs(out[2] - math.pi / 2) <= np.spacing(math.pi / 2)


@pytest.mark.parametrize("c", [-1.0, -0.999999, -0.3, 0.0, 0.2, 0.7, 1 - 1e-9, 1.0])
def test_relu_pair_matches_arccos_kernel_in_mpmath(c):
    s, r = 1.0 - c, 1.0 + c
    cm = 1 - mpmath.mpf(s) if s <= r else mpmath.mpf(r) - 1  # the correlation the pair (s, r) stands for
    th = mpmath.acos(cm)
    cov_ref = (mpmath.sin(th) + (mpmath.pi - th) * cm) / (2 * mpmath.pi)
    dcov_ref = (mpmath.pi - th) / (2 * mpmath.pi)
    cov, gap, agap, dcov = leaky_pair(0.0, 1.0, s, r)
    # cov = E[phi phi] cancels as c -> -1 (it is carried to full relative precision through agap instead), so it
    # is checked to rounding of its scale q / 2; dcov, gap and agap to full relative precision
    assert cov == pytest.approx(float(cov_ref), rel=4e-16, abs=2e-16)
    assert dcov == pytest.approx(float(dcov_ref), rel=4e-16, abs=1e-30)
    assert gap == pytest.approx(float(mpmath.mpf(0.5) - cov_ref), rel=1e-15, abs=1e-300)
    assert agap == pytest.approx(float(mpmath.mpf(0.5) + cov_ref), rel=1e-15, abs=1e-300)
