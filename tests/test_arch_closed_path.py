"""The closed-form column step of the residual/LayerNorm/dropout kernels (issue 11's performance goal) against the
general per-pair step.

:mod:`meanfield.propagation.arch_tiles` takes the closed forms (leaky-ReLU family, erf) through a specialised step
with precomputed per-input factors, in a lean copy (no LayerNorm, dropout or hidden-layer biases) and a full one;
:func:`meanfield.propagation.architecture.arch_pair` keeps the general step (Lagrange's identity, a division per
pair). The lean and full copies must give the same bits where both apply, and the tiles must agree with the general
step to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import meanfield as mf
from meanfield.propagation import arch_tiles
from meanfield.propagation.architecture import arch_sequences, layer_schedule, pair_layers
from meanfield.propagation.inputs import first_layer

L = 7
SW = [1.5, 2.0, 1.2, 1.9, 0.7, 2.2, 1.1]
SB = [0.1, 0.0, 0.3, 0.05, 0.2, 0.0, 0.1]

LEAN = [
    dict(residual=1.0),
    dict(residual=1 / math.sqrt(L), sigma_w2=SW),
    dict(residual=0.4, sigma_w2=SW, sigma_b2=[0.2] + [0.0] * (L - 1)),  # a first-layer bias only
]
FULL = [
    dict(residual=1.0, normalization="layer"),
    dict(residual=0.5, dropout=0.8, sigma_w2=SW),
    dict(residual=1.0, normalization="layer", dropout=0.9, sigma_b2=SB),
    dict(residual=1 / math.sqrt(L), sigma_b2=SB),
    dict(normalization="layer", sigma_w2=SW),
    dict(dropout=0.7, sigma_b2=0.1),
]


def _net(act, opts, param="ntk"):
    kw = dict(sigma_w2=2.0, sigma_b2=0.0) | opts
    return mf.Network(L, act, parameterization=param, width=48 if param == "standard" else None, **kw)


def _inputs(n, seed, d=6):
    X = np.random.default_rng(seed).normal(size=(n, d))
    X[1] = X[0] * 2.5  # proportional inputs: 1 - c stays 0 through the homogeneous layers
    X[2] = X[3] + 1e-7 * X[4]  # a near-parallel pair
    return X


@pytest.mark.parametrize("act", ["relu", "leaky_relu:0.2", "erf"])
@pytest.mark.parametrize("opts", LEAN, ids=lambda o: "+".join(o))
def test_lean_step_gives_the_bits_of_the_full_step(act, opts, monkeypatch):
    net = _net(act, opts)
    assert not arch_tiles.needs_full_step(net)
    X = _inputs(9, 1)
    lean = mf.kernels(X, net)
    lean_cross = mf.kernels(X[:4], net, X2=X[4:])
    monkeypatch.setattr(arch_tiles, "needs_full_step", lambda net: True)
    full = mf.kernels(X, net)
    full_cross = mf.kernels(X[:4], net, X2=X[4:])
    layers = mf.kernels(X, net, layers=True)  # per-layer kernels take the full step with the per-layer stores
    for a, b in ((lean, full), (lean_cross, full_cross), (lean, layers)):
        np.testing.assert_array_equal(a.nngp, b.nngp)
        np.testing.assert_array_equal(a.ntk, b.ntk)


def _general(net, X, X2, layers):
    """Sigma_l, B_l, Theta^(l) of every pair (i, j) from the general per-pair step (two forward passes)."""
    sched = layer_schedule(net, X.shape[1])
    W0, S0, R0, q1, q2 = first_layer(X, X2, sched[0][0], sched[1][0], False)
    seq = arch_sequences(net.activation, net, sched, np.concatenate([q1, q2]))
    n, m = W0.shape
    out = np.empty((3, len(layers), n, m))
    for i in range(n):
        for j in range(m):
            o = pair_layers(net, sched, seq, i, n + j, S0[i, j], R0[i, j], W0[i, j] + sched[1][0])
            b = np.ones(net.depth)
            b[:-1] = np.cumprod(o[4, :0:-1])[::-1]
            idx = np.array(layers) - 1
            out[:, :, i, j] = o[2, idx], b[idx], o[5, idx] * b[idx]
    return out


def _relerr(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


@pytest.mark.parametrize("act", ["relu", "erf"])
@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_closed_tiles_match_the_general_step(act, param):
    """Kernels, backward and per-layer tangent kernels of the tiles against arch_pair for lean and full networks
    (cross kernels: two forward passes everywhere), relative to the largest entry: 1e-15 for ReLU; 3e-15 for erf,
    whose tiles take the per-unit form of the plain network (closed_unit_step) and arch_pair the direct one, each
    within ~2.5e-15 of a 40-digit mpmath recursion at this depth (as test_arch_kernels checks at depth 5)."""
    tol = 1e-15 if act == "relu" else 3e-15
    X, X2 = _inputs(5, 2), _inputs(6, 3)
    for opts in LEAN + FULL:
        net = _net(act, opts, param)
        k = mf.kernels(X, net, X2=X2, layers=True)
        plain = mf.kernels(X, net, X2=X2)
        ref = _general(net, X, X2, k.layers)
        assert _relerr(plain.nngp, ref[0, -1]) < tol and _relerr(plain.ntk, ref[2].sum(axis=0)) < tol, opts
        for got, want in zip((k.nngp_layers, k.backward, k.ntk_layers), ref, strict=True):
            for l in range(len(k.layers)):
                assert _relerr(got[l], want[l]) < tol, (opts, l)
