"""Issue 16, items 1 and 5: the general (Hermite) path at small and at large variances.

References are written here, independently of the implementation: Gaussian expectations by mpmath's Gauss-Hermite
rule at 30 digits with the scale sqrt(q) divided out of the integrand (so that q = 1e-300 is as easy as q = 1),
Mehler's formula on those coefficients for the two-point moments, mpmath's adaptive quadrature for large q, and a
float64 recursion of the variance and correlation maps by a 2-D Gauss-Hermite product rule (the pair (u, v) written
through its Cholesky factor) for the kernels.
"""

from __future__ import annotations

import functools
import math
import pathlib
import sys
import warnings

import mpmath as mp
import numpy as np
import pytest

import meanfield as mf
from meanfield.gaussian import variance_slope
from meanfield.gaussian.hermite import hermite_coefficients

# ------------------------------------------------------------------------------------------------------------------
# mpmath references
# ------------------------------------------------------------------------------------------------------------------

DPS = 30

MP_ACTS = {
    "tanh": (mp.tanh, lambda u: 1 - mp.tanh(u) ** 2),
    "gelu": (lambda u: u * mp.ncdf(u), lambda u: mp.ncdf(u) + u * mp.npdf(u)),
    "silu": (lambda u: u / (1 + mp.exp(-u)), lambda u: (1 + mp.exp(-u) + u * mp.exp(-u)) / (1 + mp.exp(-u)) ** 2),
    "softplus": (lambda u: mp.log1p(mp.exp(u)), lambda u: 1 / (1 + mp.exp(-u))),
}
#: phi(0) and phi(u) - phi(0) without cancellation (so that the integrands below are O(1) at any q)
MP_CENTER = {"softplus": (mp.log(2), lambda u: mp.log1p(mp.expm1(u) / 2))}


@functools.cache
def _gh(n=60):
    with mp.workdps(DPS):
        x, w = mp.gauss_quadrature(n, "hermite")  # weight exp(-x^2)
        return [mp.sqrt(2) * xi for xi in x], [wi / mp.sqrt(mp.pi) for wi in w]


def _he(k, z):
    """Probabilists' Hermite polynomial by its recurrence (mpmath)."""
    h0, h1 = mp.mpf(1), z
    if k == 0:
        return h0
    for j in range(1, k):
        h0, h1 = h1, z * h1 - j * h0
    return h1


@functools.cache
def mp_scaled(name, q, K=12):
    """(a_k(q) / sqrt q without phi(0), b_k(q), E phi^2, E phi'^2) by 60-point Gauss-Hermite at 30 digits; the
    first coefficient is (a_0 - phi(0)) / sqrt q."""
    phi, dphi = MP_ACTS[name]
    phi0, centered = MP_CENTER.get(name, (mp.mpf(0), phi))
    z, w = _gh()
    with mp.workdps(DPS):
        s = mp.sqrt(mp.mpf(q))
        f = [centered(s * zi) / s for zi in z]  # (phi(sqrt q z) - phi(0)) / sqrt q: O(1) at any q
        g = [dphi(s * zi) for zi in z]
        a = [
            mp.fsum(wi * fi * _he(k, zi) for wi, fi, zi in zip(w, f, z, strict=True)) / mp.sqrt(mp.factorial(k))
            for k in range(K)
        ]
        b = [
            mp.fsum(wi * gi * _he(k, zi) for wi, gi, zi in zip(w, g, z, strict=True)) / mp.sqrt(mp.factorial(k))
            for k in range(K)
        ]
        v = mp.fsum(wi * (phi0 + s * fi) ** 2 for wi, fi in zip(w, f, strict=True))
        dv = mp.fsum(wi * gi * gi for wi, gi in zip(w, g, strict=True))
    return a, b, v, dv


def mp_pair(name, q, c):
    """(cov, dcov, v - cov) at equal variances q by Mehler's formula on the mpmath coefficients."""
    a, b, v, _ = mp_scaled(name, q)
    phi0 = MP_CENTER.get(name, (mp.mpf(0), None))[0]
    with mp.workdps(DPS):
        c, s = mp.mpf(c), mp.sqrt(mp.mpf(q))
        a0 = phi0 + s * a[0]
        rest = mp.fsum(q * x * x * c**k for k, x in enumerate(a) if k)
        gap = mp.fsum(q * x * x * (1 - c**k) for k, x in enumerate(a) if k)  # v - cov, without cancellation
        return a0 * a0 + rest, mp.fsum(x * x * c**k for k, x in enumerate(b)), gap


SMALL_Q = [1e-300, 1e-200, 1e-100, 1e-30, 1e-14, 1e-8, 1e-5]
ACTS = ["tanh", "gelu", "silu", "softplus"]


# ------------------------------------------------------------------------------------------------------------------
# item 1: the coefficients and the moments at small variances
# ------------------------------------------------------------------------------------------------------------------


def test_hermite_coefficients_tanh_1e14_reproducer():
    a, b = hermite_coefficients("tanh", 1e-14)
    assert a.size >= 2
    assert a[1] == pytest.approx(1e-7 * (1 - 1e-14), rel=1e-14)  # a_1 = sqrt(q) (1 - q + ...)
    assert a[0] == 0.0


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("q", SMALL_Q)
def test_small_q_coefficients_mpmath(name, q):
    """a_k(q)/sqrt(q) and b_k(q), k < 4, to 1e-15 of their O(1) scale and to 1e-13 relative (a_0 = phi(0) + O(q)
    of softplus to 1e-15 relative)."""
    a, b = hermite_coefficients(name, q, order=4)
    ra, rb, _, _ = mp_scaled(name, q)
    sq = math.sqrt(q)
    if name in MP_CENTER:
        ref0 = MP_CENTER[name][0] + mp.sqrt(mp.mpf(q)) * ra[0]
        assert a[0] == pytest.approx(float(ref0), rel=1e-15)
    # above HERMITE_TAYLOR_Q = 1e-6 the quadrature keeps each a_k to 1e-16 of the norm (a_0 = log 2 for softplus)
    atol = 1e-15 if q < 1e-6 else 2e-16 * math.sqrt(float(np.dot(a, a))) / sq
    for k in range(4):
        pairs = [(b[k], float(rb[k]))]
        if k or name not in MP_CENTER:
            pairs.append((a[k] / sq, float(ra[k])))
        for got, ref in pairs:
            assert abs(got - ref) <= max(atol, 1e-15) + 1e-13 * abs(ref), (k, got, ref)


@pytest.mark.parametrize("name", ACTS)
@pytest.mark.parametrize("q", SMALL_Q)
def test_small_q_moments_mpmath(name, q):
    """E phi^2, E phi'^2, E[phi phi] and E[phi' phi'] at equal small variances, relative 1e-13."""
    _, _, v, dv = mp_scaled(name, q)
    got_v, got_dv = mf.gaussian.single_moments(name, q)
    assert float(got_v) == pytest.approx(float(v), rel=1e-13)
    assert float(got_dv) == pytest.approx(float(dv), rel=1e-13)
    for c in (0.3, -0.7, 0.999):
        cov, dcov = mf.gaussian_moments(q, q, c, name)
        rc, rd, _ = mp_pair(name, q, c)
        assert float(cov) == pytest.approx(float(rc), rel=1e-13), c
        assert float(dcov) == pytest.approx(float(rd), rel=1e-13), c


@pytest.mark.parametrize("q", [1e-150, 1e-100, 1e-30, 1e-12, 1e-8])
def test_gelu_orthogonal_cov_closed_form(q):
    """At c = 0 only a_0^2 survives; for GELU a_0 = E[u Phi(u)] = q / sqrt(2 pi (1 + q)) (Stein), so
    E[phi(u) phi(v)] = q^2 / (2 pi (1 + q)): relative accuracy needs a_0 = O(q) exactly, not to 1e-16 of sqrt(q)."""
    cov, _ = mf.gaussian_moments(q, q, 0.0, "gelu")
    with mp.workdps(DPS):
        ref = mp.mpf(q) ** 2 / (2 * mp.pi * (1 + mp.mpf(q)))
    assert float(cov) == pytest.approx(float(ref), rel=1e-13)
    assert float(mf.gaussian_moments(q, q, 0.0, "tanh")[0]) == 0.0  # odd: exactly zero


@pytest.mark.parametrize("name", ["tanh", "gelu", "softplus"])
@pytest.mark.parametrize("q", [1e-300, 1e-100, 1e-14, 1e-8])
def test_small_q_correlation_map_mpmath(name, q):
    """c' = cov / v at sigma_b2 = 0 (the map tends to the linear one), and s' = 1 - c' near c = 1 to 1e-12
    relative."""
    sw = 0.5
    _, _, v, _ = mp_scaled(name, q)
    for c in (0.3, -0.7):
        rc, _, _ = mp_pair(name, q, c)
        got = float(mf.correlation_map(c, name, q, sw, 0.0))
        assert got == pytest.approx(float(rc / v), rel=1e-13)  # HERMITE_TAIL = 1e-13 of the squared norm
    for s in (0.7, 1.7, 1e-6):
        with mp.workdps(DPS):
            _, _, gap = mp_pair(name, q, 1 - mp.mpf(s))
            ref_s = gap / v  # 1 - c' at sigma_b2 = 0
        assert float(mf.decorrelation_map(s, name, q, sw, 0.0)) == pytest.approx(float(ref_s), rel=1e-12), s


@pytest.mark.parametrize("name", ["tanh", "gelu", "softplus"])
def test_small_q_variance_slope(name):
    """d/dq E phi(sqrt q z)^2 at small q: mpmath at q = 1e-8 (E[z phi phi'] / sqrt q at 60 digits) and the limit
    phi'(0)^2 + phi(0) phi''(0) below."""
    phi, dphi = MP_ACTS[name]
    z, w = _gh()
    with mp.workdps(60):
        q = mp.mpf("1e-8")
        s = mp.sqrt(q)
        ref = mp.fsum(wi * zi * phi(s * zi) * dphi(s * zi) for wi, zi in zip(w, z, strict=True)) / s
        limit = dphi(mp.mpf(0)) ** 2 + phi(mp.mpf(0)) * mp.diff(dphi, 0)
    assert float(variance_slope(name, 1e-8)) == pytest.approx(float(ref), rel=1e-12)
    for qq in (0.0, 1e-300, 1e-100, 1e-20):
        assert float(variance_slope(name, qq)) == pytest.approx(float(limit), rel=1e-13)


# ------------------------------------------------------------------------------------------------------------------
# item 1: the reproducers through the recursions
# ------------------------------------------------------------------------------------------------------------------

_ncdf = np.vectorize(lambda u: 0.5 * math.erfc(-u / math.sqrt(2.0)))

NP_ACTS = {
    "tanh": (np.tanh, lambda u: 1 - np.tanh(u) ** 2),
    "gelu": (lambda u: u * _ncdf(u), lambda u: _ncdf(u) + u * np.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)),
    "silu": (lambda u: u / (1 + np.exp(-u)), lambda u: (1 + np.exp(-u) + u * np.exp(-u)) / (1 + np.exp(-u)) ** 2),
}


def reference_kernels(X, name, sw, sb, depth, n=80):
    """NNGP and NTK by the 2-D Gauss-Hermite product rule (u = sqrt(q1) z1, v = sqrt(q2)(c z1 + sqrt(1-c^2) z2)),
    layer by layer (Jacot et al. 2018), written independently of the package."""
    phi, dphi = NP_ACTS[name]
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    Z1, Z2 = np.meshgrid(z, z, indexing="ij")
    W = np.outer(w, w)
    d = X.shape[1]
    K = sw * (X @ X.T) / d + sb
    T = K.copy()
    m = X.shape[0]
    for _ in range(depth - 1):
        Kn = np.empty_like(K)
        D = np.empty_like(K)
        for i in range(m):
            for j in range(i, m):
                q1, q2 = K[i, i], K[j, j]
                c = np.clip(K[i, j] / (math.sqrt(q1) * math.sqrt(q2)), -1.0, 1.0)
                u = math.sqrt(q1) * Z1
                v = math.sqrt(q2) * (c * Z1 + math.sqrt(max(1 - c * c, 0.0)) * Z2)
                Kn[i, j] = Kn[j, i] = sw * np.sum(W * phi(u) * phi(v)) + sb
                D[i, j] = D[j, i] = sw * np.sum(W * dphi(u) * dphi(v))
        T = T * D + Kn
        K = Kn
    return K, T


X4 = np.random.default_rng(0).normal(size=(4, 3))


@pytest.mark.parametrize(
    "name, sw, depth, scale, rtol",
    [
        ("tanh", 0.5, 50, 1.0, 1e-12),  # the reproducer: NNGP ~ 1e-15, not NaN
        ("gelu", 0.5, 20, 1.0, 1e-12),
        ("silu", 0.5, 20, 1.0, 1e-12),
        ("gelu", 0.5, 60, 1.0, 1e-12),
        ("tanh", 0.9, 300, 1.0, 1e-10),  # 300 layers of 1e-13 (HERMITE_TAIL) each
        ("tanh", 1.0, 2, 1e-7, 1e-12),  # kernels(1e-7 X, ...) returned zeros
    ],
)
def test_ordered_phase_kernels_reproducers(name, sw, depth, scale, rtol):
    X = scale * X4
    k = mf.kernels(X, mf.Network(depth, name, sw, 0.0))
    assert np.all(np.isfinite(k.nngp)) and np.all(np.isfinite(k.ntk))
    K, T = reference_kernels(X, name, sw, 0.0, depth)
    np.testing.assert_allclose(k.nngp, K, rtol=rtol, atol=0)
    np.testing.assert_allclose(k.ntk, T, rtol=rtol, atol=0)
    if (name, sw, depth) == ("tanh", 0.5, 50):
        assert 1e-17 < np.abs(k.nngp).max() < 1e-14


def test_ordered_phase_tanh_depth50_longdouble_variance():
    """q_l of tanh at (0.5, 0) by the variance map in long double (Gauss-Hermite, 80 nodes), against q_curve."""
    z, w = np.polynomial.hermite_e.hermegauss(80)
    z, w = z.astype(np.longdouble), (w / w.sum()).astype(np.longdouble)
    q = np.longdouble(0.5)
    ref = [q]
    for _ in range(49):
        q = np.longdouble(0.5) * np.sum(w * np.tanh(np.sqrt(q) * z) ** 2)
        ref.append(q)
    got = mf.q_curve(mf.Network(50, "tanh", 0.5, 0.0), 0.5)
    np.testing.assert_allclose(got, np.array(ref, dtype=np.float64), rtol=1e-12)
    assert 1e-17 < got[-1] < 1e-14


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_ordered_phase_downstream_functions_finite():
    """Everything that inherits the general path at small variances: curves, peak layer, information loss, the
    early-time NFA limit and the initial layer alignment."""
    net = mf.Network(50, "tanh", 0.5, 0.0)
    assert np.all(np.isfinite(mf.q_curve(net, 1.0))) and mf.q_curve(net, 1.0)[-1] > 0
    c = mf.c_curve(net, 0.3)
    assert np.all(np.isfinite(c)) and abs(c[-1] - c[-2]) < 1e-12  # the map tends to the linear one
    pc = mf.pair_curve(net, q1=1.0, c=0.3)
    assert np.all(np.isfinite(pc.s)) and np.all(np.isfinite(pc.sigma)) and np.all(np.isfinite(pc.dot[1:]))
    loss = mf.information_loss(net)
    for field in ("forward", "backward"):
        vals = getattr(loss, field, None)
        if vals is not None:
            assert np.all(np.isfinite(np.asarray(vals)))
    peak = mf.peak_layer(net)
    assert peak is not None
    y = np.array([1.0, -1.0, 1.0, -1.0])
    nfa = mf.nfa.cnfc_early_infinite(net, X4, y, [1, 25, 50])
    assert np.all(np.isfinite(nfa))
    al = mf.alignment.init_layer_alignment(net, X4, y)
    assert np.all(np.isfinite(al))


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_underflow_is_a_clear_error():
    """Beyond float64 the general path refuses with a message about underflow, never NaN or 'overflow'."""
    with pytest.raises(ValueError, match="underflows"):
        mf.kernels(X4, mf.Network(400, "tanh", 0.1, 0.0))
    with pytest.raises(ValueError, match="underflow") as info:
        mf.information_loss(mf.Network(400, "tanh", 0.1, 0.0))
    assert "overflow " not in str(info.value)
    with pytest.raises(ValueError, match="underflows"):
        mf.kernels(1e-160 * X4, mf.Network(2, "tanh", 1.0, 0.0))


# ------------------------------------------------------------------------------------------------------------------
# item 5: accuracy at large variances, or a warning with the error
# ------------------------------------------------------------------------------------------------------------------


def _mp_gelu_dv(q):
    """E GELU'(sqrt q z)^2 by mpmath's adaptive quadrature, split where GELU' varies (|z| ~ 1/sqrt q)."""
    _, dphi = MP_ACTS["gelu"]
    with mp.workdps(30):
        s = mp.sqrt(mp.mpf(q))
        f = lambda z: dphi(s * z) ** 2 * mp.npdf(z)  # noqa: E731
        pts = [-mp.inf, -8, -1, -8 / s, -1 / s, 0, 1 / s, 8 / s, 1, 8, mp.inf]
        return mp.quad(f, sorted(set(pts)))


@pytest.mark.parametrize("q", [1000.0, 5864.0])
def test_large_q_warns_with_a_bound_on_the_error(q):
    """GELU at q = 1000 and 5864: the expansion is capped at HERMITE_MAX_ORDER; the slope of the correlation map
    at c = 1 (E[phi'^2] in Mehler form) misses mpmath by more than 1e-9, and a RuntimeWarning says so with an
    estimate that bounds the error."""
    with pytest.warns(RuntimeWarning, match=r"off by up to ([0-9.e+-]+) relative") as rec:
        slope = float(mf.correlation_slope(1.0, "gelu", q, 1.0, 0.0))
    est = float([r for r in rec if "off by up to" in str(r.message)][0].message.args[0].split("off by up to ")[1]
                .split(" ")[0])  # fmt: skip
    v, _ = mf.gaussian.single_moments("gelu", q)
    ref = q * float(_mp_gelu_dv(q)) / float(v)  # slope = q sigma_w^2 dcov / q' with sigma_b2 = 0
    err = abs(slope - ref) / ref
    assert 1e-9 < err <= 1.1 * est
    # chi_1 = sigma_w^2 E phi'^2 by the one-point rule is right
    assert float(mf.gaussian.single_moments("gelu", q)[1]) == pytest.approx(float(_mp_gelu_dv(q)), rel=1e-12)


def test_large_q_kernels_warn():
    """The NTK at q ~ 5864 is off by ~1e-3 (the issue): kernels() now says so."""
    X = X4 / np.linalg.norm(X4, axis=1, keepdims=True) * math.sqrt(3 * 5864.0)
    with pytest.warns(RuntimeWarning, match="HERMITE_MAX_ORDER"):
        mf.kernels(X, mf.Network(2, "gelu", 1.0, 0.0))


@pytest.mark.parametrize("name, q", [("gelu", 10.0), ("tanh", 10.0), ("gelu", 100.0)])
def test_documented_range_is_accurate_and_silent(name, q):
    """Within the documented range the Mehler slope at c = 1 matches the one-point moment (mpmath-checked in
    test_large_q_warns_with_a_bound_on_the_error's rule) to 1e-9, without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a, b = hermite_coefficients(name, q)
        _, dv = mf.gaussian.single_moments(name, q)
        assert float(np.dot(b, b)) == pytest.approx(float(dv), rel=1e-12)
    if name == "gelu":
        assert float(dv) == pytest.approx(float(_mp_gelu_dv(q)), rel=1e-12)


def test_very_unequal_variances_keep_s_plus_r_two():
    # found by the property tests (issue 16): the gap sums took |a1 - a2|^2 / 2 - (|a1| - |a2|)^2 / 2 of rows whose
    # norms differ by 1e10, which cancels to 1e-16 |a1| / |a2| = 3e-6; they now take the rows as unit vectors
    for act in ("silu", "tanh"):
        pc = mf.pair_curve(mf.Network(7, act, 1.0, 0.0), 1.0, 1.735375695492304e-21, s=1.0)
        np.testing.assert_allclose(pc.s + pc.r, 2.0, rtol=0, atol=1e-9)


def test_very_unequal_variances_correlations_mpmath():
    """1 - c_l of the pair above against the 2-D Gaussian integrals at 30 digits (tests/reference.py), layer by
    layer; tanh is odd, so c = 0 stays exactly 0 (it moved by 5e-7 before)."""
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    import reference as R

    q2 = 1.735375695492304e-21
    pc = mf.pair_curve(mf.Network(7, "silu", 1.0, 0.0), 1.0, q2, s=1.0)
    with mp.workdps(DPS):
        a, b, c = mp.mpf(1), mp.mpf(q2), mp.mpf(0)
        for l in range(1, 4):  # three layers keep the test fast; the error does not grow with depth (checked to 7)
            cov = R.ref_cov("silu", a, c * mp.sqrt(a) * mp.sqrt(b), b)
            a, b = R.ref_var("silu", a), R.ref_var("silu", b)
            c = cov / (mp.sqrt(a) * mp.sqrt(b))
            assert abs(float(1 - c) - pc.s[l]) < 2e-15, l
            assert float(b) == pytest.approx(pc.q2[l], rel=1e-14)
    tanh = mf.pair_curve(mf.Network(7, "tanh", 1.0, 0.0), 1.0, q2, s=1.0)
    np.testing.assert_allclose(tanh.s, 1.0, rtol=0, atol=1e-15)
