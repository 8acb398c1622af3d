"""Infinite-width kernels beyond the plain MLP (issue 11): per-layer variances, residual blocks, LayerNorm, dropout.

References written here from the recursions (never calling the package's propagation code): a scalar pair recursion
with mpmath at 40 digits for the closed forms (ReLU's arc-cosine kernels, Cho & Saul 2009; erf, Williams 1997) and a
2-D Gauss-Hermite rule for tanh; limits (beta -> 0, equal schedules, rho = 1), symmetry, PSD, the layer-sum
identity, homogeneity, near-parallel pairs.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from scipy.special import roots_hermitenorm

import meanfield as mf
from meanfield.propagation.arch_tiles import arch_kernels

OPTIONS = [
    dict(residual=0.6),
    dict(normalization="layer"),
    dict(dropout=0.8),
    dict(sigma_w2=[1.5, 1.2, 1.9, 1.1, 1.3], sigma_b2=[0.1, 0.0, 0.3, 0.05, 0.2]),
    dict(residual=1.0, normalization="layer"),
    dict(residual=0.3, dropout=0.7, sigma_w2=[1.5, 1.2, 1.9, 1.1, 1.3]),
    dict(residual=1.0, normalization="layer", dropout=0.9, sigma_b2=[0.1, 0.0, 0.3, 0.05, 0.2]),
]


# ---------------------------------------------------------------------------------------------------------------
# the reference recursion (module docstring of meanfield.propagation.architecture, written out per pair)
# ---------------------------------------------------------------------------------------------------------------


def _relu_moments(q1, q2, k):
    c = max(min(k / mp.sqrt(q1 * q2), 1), -1)
    th = mp.acos(c)
    return mp.sqrt(q1 * q2) / (2 * mp.pi) * (mp.sin(th) + (mp.pi - th) * c), (mp.pi - th) / (2 * mp.pi)


def _erf_moments(q1, q2, k):
    den = (1 + 2 * q1) * (1 + 2 * q2)
    return 2 / mp.pi * mp.asin(2 * k / mp.sqrt(den)), 4 / mp.pi / mp.sqrt(den - 4 * k * k)


_GH = roots_hermitenorm(360)  # 1e-12 for tanh up to q ~ 4 (its poles at i pi/2 slow the rule down)


def _tanh_moments(q1, q2, k):
    z, w = _GH
    w = w / w.sum()
    q1, q2, k = float(q1), float(q2), float(k)
    u = math.sqrt(q1) * z
    a = k / math.sqrt(q1) if q1 > 0 else 0.0
    b = math.sqrt(max(q2 - a * a, 0.0))
    v = a * z[:, None] + b * z[None, :]
    ww = w[:, None] * w[None, :]
    f1, f2 = np.tanh(u)[:, None], np.tanh(v)
    e = float(np.sum(ww * f1 * f2))
    dd = float(np.sum(ww * (1 - f1**2) * (1 - f2**2)))
    return mp.mpf(e), mp.mpf(dd)


MOMENTS = {"relu": _relu_moments, "erf": _erf_moments, "tanh": _tanh_moments}


def reference_pair(net, x1, x2, same):
    """(Sigma_l, B_l, Theta^(l)) for l = 1..L of one pair; ``same``: one forward pass (dropout masks shared)."""
    mom = MOMENTS[net.activation.name]
    L = net.depth
    sw = [mp.mpf(v) for v in net.weight_variances]
    sb = [mp.mpf(v) for v in net.bias_variances]
    rho = mp.mpf(net.dropout or 1)
    ln = net.normalization == "layer"
    d = len(x1)
    if net.parameterization == "standard":
        fan = [d] + list(net.width)
        ow = [mp.mpf(fan[l]) / sw[l] for l in range(L)]
        ob = [mp.mpf(1)] * L
    else:
        ow, ob = [mp.mpf(1)] * L, sb

    def dot(a, b):
        return mp.fsum(mp.mpf(float(u)) * mp.mpf(float(v)) for u, v in zip(a, b, strict=True))

    s11, s22, s12 = (sw[0] / d * dot(a, b) + sb[0] for a, b in ((x1, x1), (x2, x2), (x1, x2)))
    sig, F, M = [s12], [ow[0] * (s12 - sb[0]) + ob[0]], [None]
    for t in range(1, L):
        if ln:
            a11, a22, a12 = 1, 1, s12 / mp.sqrt(s11 * s22)
        else:
            a11, a22, a12 = s11, s22, s12
        e12, d12 = mom(a11, a22, a12)
        e11, e22 = mom(a11, a11, a11)[0], mom(a22, a22, a22)[0]
        if same:
            e12, d12 = e12 / rho, d12 / rho
        res = net.residual is not None and 1 <= t <= L - 2
        g2, gam = (mp.mpf(net.residual) ** 2, 1) if res else (1, 0)
        dd = sw[t] * d12 / (mp.sqrt(s11 * s22) if ln else 1)
        M.append(gam + g2 * dd)
        F.append(g2 * (ow[t] * sw[t] * e12 + ob[t]))
        s12 = gam * s12 + g2 * (sw[t] * e12 + sb[t])
        s11 = gam * s11 + g2 * (sw[t] * e11 / rho + sb[t])
        s22 = gam * s22 + g2 * (sw[t] * e22 / rho + sb[t])
        sig.append(s12)
    B = [mp.mpf(1)] * L
    for l in range(L - 2, -1, -1):
        B[l] = B[l + 1] * M[l + 1]
    return sig, B, [f * b for f, b in zip(F, B, strict=True)]


def reference_kernels(net, X, X2=None):
    """nngp, ntk and the per-layer arrays (L, n, m) from :func:`reference_pair`, floats."""
    sym = X2 is None
    X2 = X if sym else X2
    L = net.depth
    out = np.zeros((3, L, len(X), len(X2)))
    for i in range(len(X)):
        for j in range(len(X2)):
            sig, B, th = reference_pair(net, X[i], X2[j], same=sym and i == j)
            out[:, :, i, j] = np.array([[float(v) for v in a] for a in (sig, B, th)])
    return out[0, -1], out[2].sum(axis=0), out


def _inputs(n=3, d=5, seed=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d))


def _relerr(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ---------------------------------------------------------------------------------------------------------------
# against the reference: closed forms to ~1e-15, tanh to the quadrature's accuracy
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["relu", "erf"])
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "+".join(o))
def test_closed_forms_match_mpmath(act, opts):
    mp.mp.dps = 40
    kw = dict(sigma_w2=1.7, sigma_b2=0.1)
    kw.update(opts)
    X = _inputs()
    for param in ("ntk", "standard"):
        net = mf.Network(5, act, parameterization=param, width=64 if param == "standard" else None, **kw)
        k = mf.kernels(X, net, layers=True)
        nngp, ntk, per = reference_kernels(net, X)
        assert _relerr(k.nngp, nngp) < 2e-15
        assert _relerr(k.ntk, ntk) < 4e-15
        for got, want in zip((k.nngp_layers, k.backward, k.ntk_layers), per, strict=True):
            for l in range(net.depth):
                assert _relerr(got[l], want[l]) < 4e-15, (param, l)


@pytest.mark.parametrize(
    "opts",
    [OPTIONS[-1]] + [pytest.param(o, marks=pytest.mark.slow) for o in OPTIONS[:3]],
    ids=lambda o: "+".join(o),
)
def test_general_path_matches_quadrature(opts):
    kw = dict(sigma_w2=1.6, sigma_b2=0.1)
    kw.update(opts)
    net = mf.Network(5, "tanh", **kw)
    X = _inputs(seed=4)
    k = mf.kernels(X, net, layers=True)
    nngp, ntk, per = reference_kernels(net, X)
    assert _relerr(k.nngp, nngp) < 1e-10
    assert _relerr(k.ntk, ntk) < 1e-10
    assert _relerr(k.backward, per[1]) < 1e-10


def test_cross_kernels_match_reference_and_dropout_passes():
    """kernels(X, X2) are two forward passes everywhere, the diagonal of kernels(X) one pass."""
    mp.mp.dps = 30
    net = mf.Network(4, "relu", 1.8, 0.2, residual=0.5, dropout=0.75)
    X, X2 = _inputs(2), _inputs(3, seed=9)
    k = mf.kernels(X, net, X2=X2, layers=True)
    nngp, ntk, _ = reference_kernels(net, X, X2)
    assert _relerr(k.nngp, nngp) < 2e-15 and _relerr(k.ntk, ntk) < 4e-15
    one, two = mf.kernels(X, net), mf.kernels(X, net, X2=X)
    assert np.all(np.diag(one.nngp) > np.diag(two.nngp))  # 1/rho within a pass
    off = ~np.eye(2, dtype=bool)
    np.testing.assert_array_equal(one.nngp[off], two.nngp[off])
    q = mf.q_curve(net, float(mf.kernels(X[:1], net.replace(depth=1)).nngp[0, 0]))
    assert abs(one.nngp[0, 0] / q[-1] - 1) < 1e-14


# ---------------------------------------------------------------------------------------------------------------
# limits and identities
# ---------------------------------------------------------------------------------------------------------------


def test_limits_reproduce_the_plain_network():
    X = _inputs(4)
    base = mf.Network(5, "relu", 1.9, 0.1)
    plain = mf.kernels(X, base, layers=True)
    # rho = 1 is no dropout; a schedule of equal entries is the plain net: bit for bit
    for net in (base.replace(dropout=1.0), base.replace(sigma_w2=[1.9] * 5, sigma_b2=(0.1,) * 5)):
        k = mf.kernels(X, net, layers=True)
        np.testing.assert_array_equal(k.ntk, plain.ntk)
        np.testing.assert_array_equal(k.ntk_layers, plain.ntk_layers)
    # the residual/LayerNorm/dropout path on a plain net
    for act in ("relu", "erf", "tanh"):
        net = base.replace(activation=act)
        a, b = arch_kernels(X, net, None, True), mf.kernels(X, net, layers=True)
        for x, y in ((a.nngp, b.nngp), (a.ntk, b.ntk), (a.backward, b.backward), (a.ntk_layers, b.ntk_layers)):
            assert _relerr(x, y) < 1e-14
    # beta -> 0: layer 1 carried through the blocks, then the readout (a depth-2 net)
    tiny = mf.kernels(X, mf.Network(5, "tanh", [1.5, 2.0, 2.0, 2.0, 1.2], 0.1, residual=1e-200), layers=True)
    two = mf.kernels(X, mf.Network(2, "tanh", [1.5, 1.2], 0.1), layers=True)
    assert _relerr(tiny.nngp, two.nngp) < 1e-15 and _relerr(tiny.ntk, two.ntk) < 1e-15
    assert _relerr(tiny.nngp_layers[3], two.nngp_layers[0]) < 1e-15


def test_schedules_agree_between_the_two_paths():
    X = _inputs(5)
    for act in ("relu", "erf", "tanh"):
        net = mf.Network(5, act, [1.5, 2.0, 1.2, 1.9, 0.7], [0.0, 0.1, 0.3, 0.0, 0.2])
        a, b = arch_kernels(X, net, None, True), mf.kernels(X, net, layers=True)
        for x, y in ((a.nngp, b.nngp), (a.ntk, b.ntk), (a.nngp_layers, b.nngp_layers), (a.ntk_layers, b.ntk_layers)):
            assert _relerr(x, y) < 1e-14
        pa = mf.pair_curve(net, q1=1.3, q2=0.7, s=1e-9)
        from meanfield.propagation.pair import _arch_curve

        pb = _arch_curve(net, 1.3, 0.7, 1e-9, 2 - 1e-9)
        np.testing.assert_allclose(pa.s, pb.s, rtol=1e-13)
        np.testing.assert_allclose(pa.dot[1:], pb.dot[1:], rtol=1e-13)


@pytest.mark.parametrize(
    "act", ["relu", pytest.param("erf", marks=pytest.mark.slow), pytest.param("gelu", marks=pytest.mark.slow)]
)
def test_symmetry_psd_and_layer_sums(act):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(12, 6))
    X[1] = X[0] + 1e-8 * rng.normal(size=6)
    for opts in OPTIONS[::2]:
        for param in ("ntk", "standard"):
            net = mf.Network(5, act, parameterization=param, width=32, **(dict(sigma_w2=1.6, sigma_b2=0.1) | opts))
            k = mf.kernels(X, net, layers=True)
            for a in (k.nngp, k.ntk):
                np.testing.assert_array_equal(a, a.T)
                assert np.linalg.eigvalsh(a).min() > -1e-12 * np.abs(a).max()
            assert _relerr(k.ntk_layers.sum(axis=0), k.ntk) < 1e-12
            k2 = mf.kernels(X[:5], net, X2=X[5:])
            k3 = mf.kernels(X[5:], net, X2=X[:5])
            np.testing.assert_allclose(k2.ntk, k3.ntk.T, rtol=1e-14)


def test_homogeneity_relu_without_bias():
    """K(x, a x) = a K(x, x) for ReLU without biases or LayerNorm (residual blocks, schedules)."""
    x = _inputs(1)
    for opts in (dict(residual=1.0), dict(residual=0.2, sigma_w2=[1.0, 2.5, 1.5, 0.5, 2.0])):
        net = mf.Network(5, "relu", **({"sigma_w2": 2.0} | opts))
        for a in (3.0, 0.01, 1e5):
            k = mf.kernels(x, net, X2=np.vstack([x, a * x]))
            np.testing.assert_allclose(k.nngp[0, 1], a * k.nngp[0, 0], rtol=1e-14)
            np.testing.assert_allclose(k.ntk[0, 1], a * k.ntk[0, 0], rtol=1e-14)


# ---------------------------------------------------------------------------------------------------------------
# near-parallel pairs: 1 - c kept exactly (mpmath at 60 digits)
# ---------------------------------------------------------------------------------------------------------------


def _mp_relu_s(net, q1, q2, s0):
    """1 - c_l of the reference recursion at 60 digits (ReLU, no dropout)."""
    mp.mp.dps = 60
    L, ln = net.depth, net.normalization == "layer"
    sw, sb = net.weight_variances, net.bias_variances
    s11, s22 = mp.mpf(q1), mp.mpf(q2)
    s12 = (1 - mp.mpf(s0)) * mp.sqrt(s11 * s22)
    out = [mp.mpf(s0)]
    for t in range(1, L):
        a = (1, 1, s12 / mp.sqrt(s11 * s22)) if ln else (s11, s22, s12)
        e12 = _relu_moments(*a)[0]
        e11, e22 = mp.mpf(a[0]) / 2, mp.mpf(a[1]) / 2
        res = net.residual is not None and 1 <= t <= L - 2
        g2, gam = (mp.mpf(net.residual) ** 2, 1) if res else (1, 0)
        s12 = gam * s12 + g2 * (sw[t] * e12 + sb[t])
        s11 = gam * s11 + g2 * (sw[t] * e11 + sb[t])
        s22 = gam * s22 + g2 * (sw[t] * e22 + sb[t])
        out.append(1 - s12 / mp.sqrt(s11 * s22))
    return np.array([float(v) for v in out])


@pytest.mark.parametrize(
    "opts",
    [dict(residual=1.0), dict(residual=0.1, sigma_b2=0.2), dict(residual=0.5, normalization="layer", sigma_b2=0.1)],
    ids=lambda o: "+".join(o),
)
def test_near_parallel_pairs_keep_one_minus_c(opts):
    net = mf.Network(30, "relu", **({"sigma_w2": 2.0} | opts))
    for theta in (1e-2, 1e-5, 1e-8):
        s0 = 2 * math.sin(theta / 2) ** 2
        for q2 in (1.0, 1.7):
            pc = mf.pair_curve(net, q1=1.0, q2=q2, s=s0)
            want = _mp_relu_s(net, 1.0, q2, s0)
            np.testing.assert_allclose(pc.s, want, rtol=1e-12)
    # the dataset kernels: x' = x rotated by 1e-8; the derivative kernels depend on theta ~ sqrt(2 (1 - c)), so a
    # 1 - c lost to rounding would move the NTK by ~1e-8
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=8), rng.normal(size=8)
    y -= (y @ x) / (x @ x) * x
    y *= np.linalg.norm(x) / np.linalg.norm(y)
    X = np.vstack([x, x * math.cos(1e-8) + y * math.sin(1e-8)])
    k = mf.kernels(X, net.replace(depth=8), X2=X[::-1])
    mp.mp.dps = 60
    nngp, ntk, _ = reference_kernels(net.replace(depth=8), X, X[::-1])
    assert _relerr(k.nngp, nngp) < 1e-14 and _relerr(k.ntk, ntk) < 1e-14


def test_pair_curve_matches_kernels_and_q_curve():
    net = mf.Network(6, "erf", [1.5, 2.0, 1.2, 1.9, 0.7, 1.0], 0.2, residual=0.5, normalization="layer", dropout=0.9)
    X = _inputs(2, d=4)
    k = mf.kernels(X, net, X2=X)
    q = mf.kernels(X, mf.Network(1, "erf", 1.5, 0.2)).nngp
    pc = mf.pair_curve(net, q1=q[0, 0], q2=q[1, 1], c=q[0, 1] / math.sqrt(q[0, 0] * q[1, 1]))
    assert abs(pc.sigma[-1] / k.nngp[0, 1] - 1) < 1e-13
    np.testing.assert_allclose(mf.q_curve(net, q[0, 0]), pc.q1, rtol=1e-15)
    np.testing.assert_allclose(mf.c_curve(net, 0.3), mf.pair_curve(net, c=0.3).c, rtol=1e-15)
    one = mf.kernels(X, net)
    assert abs(one.nngp[0, 0] / pc.q1[-1] - 1) < 1e-14


@pytest.mark.slow
@pytest.mark.parametrize("act", ["relu", "erf", "tanh"])
def test_deep_random_combinations_match_reference(act):
    """Random schedules and options at depth 12 against the reference recursion (closed forms at 1e-13; tanh with
    LayerNorm, where the 2-D rule of the reference sees unit variances and keeps 1e-12, at 1e-9)."""
    mp.mp.dps = 40
    rng = np.random.default_rng(11)
    X = _inputs(3, seed=12)
    for _ in range(6):
        L = 12
        net = mf.Network(
            L, act, list(rng.uniform(0.8, 2.2, L)), list(rng.uniform(0, 0.3, L)),
            residual=[None, 1.0, 1 / math.sqrt(L)][rng.integers(3)],
            normalization=[None, "layer"][rng.integers(2)] if act != "tanh" else "layer",
            dropout=[None, 0.6, 0.95][rng.integers(3)],
        )  # fmt: skip
        k = mf.kernels(X, net, layers=True)
        nngp, ntk, per = reference_kernels(net, X)
        tol = 1e-13 if act != "tanh" else 1e-9
        assert _relerr(k.nngp, nngp) < tol and _relerr(k.ntk, ntk) < tol
        assert _relerr(k.ntk_layers, per[2]) < tol
