"""The layers past the variances' fixed point by repeated squaring of the layer map (sphere_power), against the
exact layer loop; and the variance sequence's fast-forward at its fixed point."""

from __future__ import annotations

import numpy as np
import pytest
from test_sphere import _inputs, _rel

import meanfield as mf
from meanfield.activations import get_activation
from meanfield.propagation import sphere
from meanfield.propagation.inputs import per_layer, variance_sequences
from meanfield.propagation.sphere_loop import Recursion
from meanfield.propagation.sphere_power import EXACT_BELOW, powered, sides

#: input angles: exactly parallel, below EXACT_BELOW (exact loop), then 1e-5 .. pi (powered)
THETAS = np.concatenate(
    [[0.0, 1e-8, 3e-6], np.logspace(-5, -2.05, 12), np.logspace(-2, 0, 8), np.linspace(1.1, np.pi, 8)]
)


def _run_both(act, sw, sb, depth, q=1.3):
    rec = Recursion(mf.Network(depth, act, sw, sb), q, np.ones(depth), np.full(depth, sb))
    s, r = sides(THETAS)
    w0 = q * np.where(s <= r, 1 - s, r - 1) - sb
    fast = powered(rec)
    assert fast is not None and fast.powered > depth // 2
    return fast.run(s, r, w0), rec.run(s, r, w0)[:2]


@pytest.mark.parametrize(
    "act, sw, sb, depth",
    [("tanh", 1.76, 0.05, 3000), ("tanh", 3.0, 0.05, 1000), ("gelu", 1.7, 0.1, 1000), ("sigmoid", 10.0, 0.1, 1000)],
)
def test_powered_matches_layer_loop(act, sw, sb, depth):
    # near-critical ordered tanh (chi_1 = 0.9998), chaotic tanh, gelu, sigmoid. Measured: NTK 1.7e-14 (tanh 1.76,
    # at theta = 2e-4: the loop's own rounding of c at small angles), <= 6.2e-15 elsewhere; NNGP <= 6.7e-15. The
    # bound is the sphere table's own guard against the loop.
    (w, th), (wl, thl) = _run_both(act, sw, sb, depth)
    assert _rel(th, thl) <= sphere.SPHERE_TOL
    assert _rel(w, wl) <= sphere.SPHERE_TOL
    tiny = THETAS < EXACT_BELOW  # these run the exact loop itself
    assert np.array_equal(th[tiny], thl[tiny]) and np.array_equal(w[tiny], wl[tiny])


def test_where_powering_does_not_apply():
    def rec(act, sw, sb, depth):
        return Recursion(mf.Network(depth, act, sw, sb), 1.3, np.ones(depth), np.full(depth, sb))

    assert powered(rec("relu", 2.0, 0.0, 3000)) is None  # closed forms: the loop is cheap
    assert powered(rec("tanh", 1.76, 0.05, 400)) is None  # too few layers past the fixed point
    assert powered(rec("tanh", 1.0, 0.0, 3000)) is None  # edge of chaos without bias: q_l -> 0 like 1/l, no fixed point
    assert powered(rec("erf", 1.5, 0.1, 3000)) is None  # closed form (its variance ends in a two-cycle of the last bit)
    # odd, no bias, chaotic: c = -1 stays fixed, the angle near pi cannot carry 1 + c (it was off by O(1))
    assert powered(rec("tanh", 3.0, 0.0, 3000)) is None
    # chaotic with c* near 0 (tiny bias): the powered map was 9e-13 off the loop; the validation refuses it
    assert powered(rec("tanh", 4.0, 0.001, 3000)) is None
    tab = sphere.sphere_table(mf.Network(3000, "tanh", 1.76, 0.05), 1.3, layers=(1, 3000))
    assert tab.powered == 0  # per-layer outputs: the exact loop


def test_table_through_powered_nodes():
    # the table of a deep near-critical tanh network is built from powered nodes, and every entry (parallel,
    # antiparallel, theta ~ 1e-8 .. pi) stays within 1e-13 of the layer loop
    net = mf.Network(3000, "tanh", 1.76, 0.05)
    X = _inputs(24)
    sphere._TABLES.clear()
    fast, loop = mf.kernels(X, net), mf.kernels(X, net, sphere=False)
    tab = next(iter(sphere._TABLES.values()))
    assert tab.powered > 2000 and tab.error <= 1e-13
    assert _rel(fast.nngp, loop.nngp) <= 1e-13
    assert _rel(fast.ntk, loop.ntk) <= 1e-13


def test_variance_fast_forward_is_bitwise():
    # once every q_l repeats to the last bit under a constant schedule, the rest of the sequence is copied; a
    # schedule whose last layer differs by one ulp cannot be fast-forwarded, so it runs every layer: the shared
    # layers agree bit for bit
    act = get_activation("tanh")
    L = 400
    q1 = np.array([1.81, 0.7, 1.81])
    sw, sb = per_layer(1.76, L), per_layer(0.05, L)
    sw_last = sw.copy()
    sw_last[-1] = np.nextafter(sw[-1], 2.0)
    a = variance_sequences(act, sw, sb, q1, L)
    b = variance_sequences(act, sw_last, sb, q1, L)
    assert np.array_equal(a[0][: L - 1], b[0][: L - 1])  # q_l
    for x, y in zip(a[1:6], b[1:6], strict=True):  # v_l, rows, order, npar, apar (the last layer's are unused)
        assert np.array_equal(x, y)
    assert np.array_equal(a[6], b[6]) and np.array_equal(a[7], b[7])  # the coefficient tables
