"""Kernels on equal-norm inputs through the tabulated composed maps (issue 17) against the layer loop and mpmath."""

from __future__ import annotations

import numpy as np
import pytest

import meanfield as mf
from meanfield.propagation import sphere

#: inputs of bitwise equal norm (sign flips of one vector): parallel, antiparallel and pairs at angles from
#: ~1e-8 (flipping the 1e-8 entry) up, plus random directions
_V = np.random.default_rng(3).normal(size=12)
_V[:4] = [1e-8, 1e-4, 1e-2, 0.3]


def _inputs(n=40, seed=1):
    X = _V * np.random.default_rng(seed).choice([-1.0, 1.0], size=(n, _V.size))
    X[1], X[2] = _V, -_V
    for k in range(4):
        X[3 + k] = _V
        X[3 + k, k] *= -1
    X[7] = -X[3]
    return X


def _rel(a, b):
    """Largest |a - b| / |b| (an exact 0 must be matched exactly)."""
    den = np.abs(b)
    assert np.all((a == b) | (den > 0))
    return float(np.max(np.abs(a - b) / np.where(den > 0, den, 1.0)))


def _loop_noise(X, net, layers):
    """How much the layer loop's own entries move when the inputs are permuted (other pairs share a pair's
    column block): the rounding level of an entry near a sign change of the kernel."""
    perm = np.random.default_rng(0).permutation(X.shape[0])
    inv = np.argsort(perm)
    a = mf.kernels(X, net, layers=layers, sphere=False)
    b = mf.kernels(X[perm], net, layers=layers, sphere=False)
    return a, b, inv


CASES = [
    ("relu", 2.0, 0.0, 2),
    ("relu", 2.0, 0.0, 40),
    ("relu", 2.0, 0.1, 25),
    ("leaky_relu", 2.0, 0.0, 6),
    ("linear", 1.0, 0.2, 4),
    ("erf", 1.5, 0.1, 12),
    ("tanh", 1.76, 0.05, 30),
    ("gelu", 1.7, 0.1, 8),
]


@pytest.mark.parametrize("act, sw, sb, depth", CASES)
def test_agrees_with_layer_loop(act, sw, sb, depth):
    """Every entry (NNGP, NTK, per-layer Sigma_l, B_l, Theta^(l)) within 1e-13 relative of the layer loop,
    including exactly parallel, antiparallel and nearly parallel pairs (theta ~ 1e-8)."""
    X = _inputs()
    net = mf.Network(depth, act, sw, sb)
    layers = sorted({1, 2, (depth + 1) // 2, depth})
    loop = mf.kernels(X, net, layers=layers, sphere=False)
    fast = mf.kernels(X, net, layers=layers)  # "auto": the norms are bitwise equal
    assert fast.layers == loop.layers
    for name in ("nngp", "ntk", "nngp_layers", "backward", "ntk_layers"):
        assert _rel(getattr(fast, name), getattr(loop, name)) <= 1e-13, name


def test_standard_parameterization_and_cross_kernels():
    X = _inputs()
    net = mf.Network(10, "relu", 2.0, 0.1, parameterization="standard", width=64)
    a, b = mf.kernels(X, net, layers=True, sphere=False), mf.kernels(X, net, layers=True, sphere=True)
    for name in ("nngp", "ntk", "nngp_layers", "backward", "ntk_layers"):
        assert _rel(getattr(b, name), getattr(a, name)) <= 1e-13, name
    a, b = mf.kernels(X[:7], net, X2=X[5:], sphere=False), mf.kernels(X[:7], net, X2=X[5:])
    assert _rel(b.ntk, a.ntk) <= 1e-13 and _rel(b.nngp, a.nngp) <= 1e-13


def test_dispatch_rules():
    X = _inputs()
    net = mf.Network(5, "relu")
    Y = X.copy()
    Y[0] *= 1.0 + 1e-12  # unequal norms: the exact loop ("auto"), a ValueError with sphere=True
    np.testing.assert_array_equal(mf.kernels(Y, net).ntk, mf.kernels(Y, net, sphere=False).ntk)
    with pytest.raises(ValueError, match="equal norm"):
        mf.kernels(Y, net, sphere=True)
    with pytest.raises(ValueError, match="sphere must be"):
        mf.kernels(X, net, sphere="yes")
    with pytest.raises(ValueError, match="plain MLP"):
        sphere.sphere_kernels(X, mf.Network(5, residual=1.0), None, False, True, np.ones(5), np.zeros(5))
    # rows normalized in floating point differ by ulps: sphere=True takes them as equal
    Z = mf.data.to_sphere(np.random.default_rng(0).normal(size=(30, 8)))
    a, b = mf.kernels(Z, net, sphere=False), mf.kernels(Z, net, sphere=True)
    assert _rel(b.ntk, a.ntk) <= 1e-13


def test_overflow_is_refused():
    # the table's entries are checked through the sum of its |coefficients| (no n x n scan): an NTK beyond float64
    # (ReLU, q ~ 1e307 at L = 100) must still raise, never return inf
    X = np.random.default_rng(0).normal(size=(50, 8))
    X *= 3e153 / np.linalg.norm(X, axis=1)[:, None]
    with pytest.raises(ValueError, match="NTK overflows"):
        mf.kernels(X, mf.Network(100, "relu", 2.0, 0.0), sphere=True)


def test_table_records_nodes():
    tab = sphere.sphere_table(mf.Network(100), 2.0)
    assert tab.error <= 1e-13
    assert tab.nodes == tab.nodes and 0 < tab.nodes < 3000
    assert tab.degrees.max() <= 64 and tab.pieces == tab.degrees.size


# ------------------------------------------------------------------------------------------------------------
# mpmath reference (written here): ReLU at (sigma_w2, sigma_b2), the arc-cosine recursion in 50 digits
# ------------------------------------------------------------------------------------------------------------


def _mp_relu(q, theta, depth, sw, sb):
    import mpmath as mp

    mp.mp.dps = 50
    q = mp.mpf(q)
    c = mp.cos(mp.mpf(theta))
    sig, th = q * c, q * c  # Sigma_1 and Theta_1 (the bias is inside q and c)
    qq = q
    for _ in range(depth - 1):
        t = mp.acos(c)
        cov = qq * (mp.sin(t) + (mp.pi - t) * mp.cos(t)) / (2 * mp.pi)
        dot = sw * (mp.pi - t) / (2 * mp.pi)
        qn = sw * qq / 2 + sb
        sig = sw * cov + sb
        th = th * dot + sig
        c = sig / qn
        qq = qn
    return sig, th


@pytest.mark.parametrize("depth, sb", [(3, 0.0), (50, 0.2)])
def test_mpmath_reference(depth, sb):
    """The table at angles 1e-8 .. pi - 1e-8 against the recursion in 50-digit arithmetic."""
    sw = 2.0
    thetas = np.array([1e-8, 1e-3, 0.7, 1.9, np.pi - 1e-6])
    d = 2
    # unit inputs at those angles from e1, scaled so that q = sw ||x||^2 / d + sb = 2 + sb
    X = np.vstack([[1.0, 0.0], np.stack([np.cos(thetas), np.sin(thetas)], axis=1)]) * np.sqrt(2 * d / sw)
    net = mf.Network(depth, "relu", sw, sb)
    k = mf.kernels(X, net, sphere=True)
    A, q = sphere._unit_rows(X, sw, sb)
    for j in range(1, X.shape[0]):
        c = float(np.clip(A[0] @ A[j], -1, 1))  # the angle from its exact side, as the library takes it
        if c >= 0:
            theta = 2 * np.arcsin(np.sqrt(0.25 * float(np.sum((A[0] - A[j]) ** 2))))
        else:
            theta = np.pi - 2 * np.arcsin(np.sqrt(0.25 * float(np.sum((A[0] + A[j]) ** 2))))
        sig, th = _mp_relu(q.mean(), theta, depth, sw, sb)
        assert abs(k.nngp[0, j] / float(sig) - 1) < 1e-13
        assert abs(k.ntk[0, j] / float(th) - 1) < 1e-13


@pytest.mark.slow
@pytest.mark.parametrize("act, sw, sb, depth", [("relu", 2.0, 0.0, 1000), ("relu", 2.0, 0.0, 100000),
                                                ("tanh", 1.76, 0.05, 10000), ("tanh", 1.76, 0.05, 100000),
                                                ("erf", 1.5, 0.1, 3000)])  # fmt: skip
def test_deep(act, sw, sb, depth):
    """Depths up to 1e5: every NNGP and NTK entry within 1e-13 relative of the layer loop."""
    X = _inputs(24)
    net = mf.Network(depth, act, sw, sb)
    loop, fast = mf.kernels(X, net, sphere=False), mf.kernels(X, net)
    assert _rel(fast.nngp, loop.nngp) <= 1e-13
    assert _rel(fast.ntk, loop.ntk) <= 1e-13
