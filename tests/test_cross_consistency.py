"""Cross kernels ``kernels(X, net, X2=Y)`` against the symmetric ``kernels(vstack(X, Y), net)`` on the general
(Hermite) path, and the recursion's rounding against mpmath.

Near criticality (tanh at (1.76, 0.05), chi_1 = 0.9998; sigmoid on its edge of chaos) a pair spends hundreds of
layers at 1 - c ~ 1e-3 .. 1e-1. The plain gap sqrt(v1 v2) - cov (used for blocks of columns far from c = +-1) has an
absolute rounding of a few 1e-16 that repeats at every layer once the variances are at their fixed point, so it
biased 1 - c by about 1e-16 / (1 - c) relative per layer: with the plain form down to 1 - |c| = 1e-3 the NTK of the
cross call (a block without the diagonal) was off by 6e-12 (tanh) and 1.4e-11 (sigmoid) relative at L = 1000, while
the symmetric call (whose block holds the diagonal, hence carries the exact gap sums) was within 1e-13 of the same
recursion on the same Hermite tables in exact arithmetic. Against the independent reference (tests/reference.py) both
calls now carry the tables' own error (tanh: +2.9e-13 at L = 100, +6.5e-12 at L = 1000: the Hermite series cut at
``HERMITE_TAIL = 1e-13`` leave E[phi'^2] 7e-14 low; with 1e-18 both calls are within 1.6e-15 of the reference at
L = 1000); before, the cross call's rounding bias happened to offset most of it at L = 1000 (+4.6e-13).
"""

import mpmath as mp
import numpy as np
import pytest

import meanfield as mf
from meanfield.propagation.inputs import first_layer, per_layer, variance_sequences

#: the two inputs of the report: correlation 0.32, squared norms 1 ulp apart (so the layer loop runs)
_rng = np.random.default_rng(0)
_X = _rng.normal(size=(2000, 32))
_X *= np.sqrt(32) / np.linalg.norm(_X, axis=1)[:, None]
PAIR = np.ascontiguousarray(_X[[46, 372]])


@pytest.mark.parametrize("name, sw, depth", [("tanh", 1.76, 1000), ("sigmoid", 103.128, 40)])
def test_cross_matches_symmetric_deep(name, sw, depth):
    # measured after the fix: 0 (tanh, L = 1000) and 9e-16 (sigmoid on its edge of chaos, L = 40); before: 6.0e-12
    # and 5.8e-13. The tolerance is the exact-gap path's own accumulated rounding at L = 1000 (1e-13 against mpmath,
    # test below).
    net = mf.Network(depth, name, sw, 0.05)
    a = mf.kernels(PAIR[:1], net, X2=PAIR[1:], sphere=False)
    s = mf.kernels(PAIR, net, sphere=False)
    assert abs(a.ntk[0, 0] / s.ntk[0, 1] - 1) < 1e-13
    assert abs(a.nngp[0, 0] / s.nngp[0, 1] - 1) < 1e-13


def _mp_recursion(net, X):
    """Theta_L and Sigma_L of the pair from the library's own float Hermite tables and variances, in exact (40-digit)
    arithmetic: what the compiled recursion computes, without its rounding (the coefficients' own error, about
    3e-13 at L = 100 against the independent quadrature of tests/reference.py, is common to both calls)."""
    L = net.depth
    sw, sb = per_layer(net.sigma_w2, L), per_layer(net.sigma_b2, L)
    W0, S0, _, q1, q2 = first_layer(X[:1], X[1:], sw[0], sb[0], False)
    _, _, rows, order, npar, apar, TA, TB = variance_sequences(net.activation, sw, sb, np.concatenate([q1, q2]), L)
    cache = {}

    def row(T, off, K):
        key = (id(T), int(off), int(K))
        if key not in cache:
            cache[key] = [mp.mpf(float(x)) for x in T[off : off + K]]
        return cache[key]

    with mp.workdps(40):
        s = mp.mpf(float(S0[0, 0]))
        th = mp.mpf(float(W0[0, 0])) + sb[0]
        w = mp.mpf(float(W0[0, 0]))
        for l in range(1, L):
            M, npl, apl = int(order[l - 1]), int(npar[l - 1]), int(apar[l - 1])
            a1, a2 = row(TA, rows[l - 1, 0], npl * M), row(TA, rows[l - 1, 1], npl * M)
            b1, b2 = row(TB, rows[l - 1, 0], npl * M), row(TB, rows[l - 1, 1], npl * M)
            c = 1 - s
            u = c * c
            cov = dcov = mp.mpf(0)
            for blk in range(npl):  # sum_m a1 a2 c^(2m + parity), Horner in u = c^2
                pa, pb = (blk, blk) if npl == 2 else (apl, 1 - apl)
                h = hb = mp.mpf(0)
                for k in range(blk * M + M - 1, blk * M - 1, -1):
                    h = h * u + a1[k] * a2[k]
                    hb = hb * u + b1[k] * b2[k]
                cov += h * c**pa
                dcov += hb * c**pb
            qa = sw[l] * mp.fsum(x * x for x in a1) + sb[l]
            qb = sw[l] * mp.fsum(x * x for x in a2) + sb[l]
            w = sw[l] * cov
            th = th * (sw[l] * dcov) + w + sb[l]
            s = 1 - (w + sb[l]) / mp.sqrt(qa * qb)
        return float(th), float(w + sb[-1])


def test_recursion_rounding_vs_mpmath():
    # tanh near criticality, L = 1000: both calls against the exact evaluation of the same tables. Measured:
    # symmetric 9.9e-14 (NTK), cross the same after the fix (before: -5.9e-12); the exact-gap path's rounding
    # (-3.8e-16 relative in 1 - c per layer, systematic) accumulates to about 1e-13 here, hence 5e-13.
    net = mf.Network(1000, "tanh", 1.76, 0.05)
    th, nngp = _mp_recursion(net, PAIR)
    a = mf.kernels(PAIR[:1], net, X2=PAIR[1:], sphere=False)
    s = mf.kernels(PAIR, net, sphere=False)
    for k in (a.ntk[0, 0], s.ntk[0, 1]):
        assert abs(k / th - 1) < 5e-13
    for k in (a.nngp[0, 0], s.nngp[0, 1]):
        assert abs(k / nngp - 1) < 5e-13


@pytest.mark.slow
def test_independent_reference_depth_100():
    # tests/reference.py (published formulas, its own 2-D quadrature at 20 digits; about 40 s): both calls within
    # 1e-12 relative at L = 100. Measured: NTK +2.9e-13 for both (the Hermite coefficients' error, common to both
    # calls; before the fix the cross call's rounding bias, -6e-14, happened to offset part of it), NNGP +4.2e-14.
    from reference import ref_kernels

    L = 100
    ref = ref_kernels(PAIR, L, "tanh", 1.76, 0.05, dps=20)
    with mp.workdps(30):
        th, nngp = ref.ntk[L - 1][0, 1], ref.sigma[L - 1][0, 1]
        net = mf.Network(L, "tanh", 1.76, 0.05)
        a = mf.kernels(PAIR[:1], net, X2=PAIR[1:], sphere=False)
        s = mf.kernels(PAIR, net, sphere=False)
        for k in (a.ntk[0, 0], s.ntk[0, 1]):
            assert abs(float(mp.mpf(k) / th - 1)) < 1e-12
        for k in (a.nngp[0, 0], s.nngp[0, 1]):
            assert abs(float(mp.mpf(k) / nngp - 1)) < 1e-12
