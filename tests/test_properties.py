"""Property-based tests (hypothesis) over every public theory function: nothing silently wrong.

Every property runs twice from the same function: in the fast suite with a small, derandomized example budget
(deterministic in CI) and, marked ``slow``, with :data:`SLOW_EXAMPLES` random examples (``pytest -m slow``).
For random valid specs (every activation of ``ACTIVATION_NAMES`` plus a leaky ReLU, both variances over orders of
magnitude, depths, both parameterizations, small random datasets with duplicate, (anti)parallel and badly scaled
rows) the outputs are finite (or a documented refusal), kernels are symmetric and positive semi-definite,
the per-layer NTK sums to the NTK, ReLU kernels without biases are homogeneous of degree 2, the alignment
measures are scale-invariant, and results do not depend on the memory layout or dtype of the inputs. For random
invalid values every function raises a ``ValueError`` that names the parameter.

Domain: the general (Hermite) path is documented to 1e-9 for variances ``q <= 10`` and its cost grows with ``q``
(about 1 s per layer at ``q = 1e4``), so on that path the data are scaled and the depth cut so that every variance
stays below :data:`Q_MAX_HERMITE`; small variances (down to ~1e-60) are kept. Closed forms (ReLU family, erf) are
exercised over their whole range.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import BUDGETS, SLOW_EXAMPLES, check, documented_warnings  # noqa: F401 (SLOW_EXAMPLES: the slow budget)
from hypothesis import strategies as st

import meanfield as mf
from meanfield.activations import KIND_HERMITE, KIND_LEAKY
from meanfield.alignment import cosine, hsic, kta

#: examples per property in the slow suite (the fast suite's budgets are given per test, 8 to 40)

#: largest variance reached on the general (Hermite) path: the documented accuracy domain (q <= 10)
Q_MAX_HERMITE = 10.0

#: positive semi-definiteness: eigenvalues >= -PSD_TOL * max |eigenvalue| (rounding of the entries, n <= 7)
PSD_TOL = 1e-10

#: sum of the per-layer NTKs against the NTK, relative to sum_l |Theta^(l)| entrywise
LAYER_SUM_TOL = 1e-12

#: K(a X) = a^2 K(X) for ReLU without bias, relative to sqrt(K_ii K_jj)
HOMOGENEITY_TOL = 1e-12

#: scale invariance of CKA, KTA, cosine (absolute, the measures are in [-1, 1])
SCALE_TOL = 1e-12

HERMITE = tuple(a for a in mf.ACTIVATION_NAMES if mf.get_activation(a).kind == KIND_HERMITE)
ACTIVATIONS = tuple(mf.ACTIVATION_NAMES) + ("leaky_relu:0.2",)
RELU_FAMILY = ("relu", "leaky_relu", "linear", "leaky_relu:0.2")
BOUNDED = ("erf", "tanh", "sigmoid")  # an edge of chaos exists at every sigma_b2 >= 0


# ---------------------------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------------------------


def log_uniform(lo, hi):
    """10**u, u uniform in [lo, hi]."""
    return st.floats(lo, hi).map(lambda e: float(10.0**e))


sigma_w2s = log_uniform(-1.3, 0.9)  # 0.05 .. 8
sigma_b2s = st.one_of(st.just(0.0), log_uniform(-4.0, 0.6))  # 0 or 1e-4 .. 4


@st.composite
def networks(draw, activations=ACTIVATIONS, depth_max=30, parameterization=None):
    act = draw(st.sampled_from(activations))
    sw, sb = draw(sigma_w2s), draw(sigma_b2s)
    depth = draw(st.integers(1, depth_max))
    param = draw(st.sampled_from(("ntk", "standard"))) if parameterization is None else parameterization
    width = draw(st.integers(1, 1000)) if param == "standard" else draw(st.one_of(st.none(), st.integers(1, 1000)))
    return mf.Network(depth, act, sw, sb, param, width)


@st.composite
def datasets(draw, n_max=6, d_max=5, log_scale=(-8.0, 8.0)):
    """Small data sets: iid Gaussian rows times 10**scale, some with a duplicate, an (anti)parallel, a nearly
    parallel row or rows of very different norms."""
    n, d = draw(st.integers(1, n_max)), draw(st.integers(1, d_max))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((n, d)) * 10.0 ** draw(st.floats(*log_scale))
    kind = draw(st.sampled_from(("iid", "duplicate", "parallel", "antiparallel", "near", "row_scales")))
    if n >= 2:
        if kind == "duplicate":
            X[1] = X[0]
        elif kind == "parallel":
            X[1] = 3.0 * X[0]
        elif kind == "antiparallel":
            X[1] = -0.5 * X[0]
        elif kind == "near":
            X[1] = X[0] + 1e-9 * rng.standard_normal(d) * np.linalg.norm(X[0])
    if kind == "row_scales":
        X *= 10.0 ** rng.uniform(-3, 3, (n, 1))
    return X


def _variances(net, q1):
    """q_1..q_L from q1 by the (cheap, quadrature) variance map."""
    qs = [float(q1)]
    for _ in range(net.depth - 1):
        qs.append(float(mf.variance_map(qs[-1], net.activation, net.sigma_w2, net.sigma_b2)))
    return np.array(qs)


def in_domain(net, X):
    """On the general path, scale X and cut the depth so every variance stays <= Q_MAX_HERMITE (module docstring)."""
    if net.activation.kind != KIND_HERMITE:
        return net, X
    sw, sb, d = net.sigma_w2, net.sigma_b2, X.shape[1]
    q1 = sw / d * float(np.max(np.einsum("ij,ij->i", X, X))) + sb
    if q1 > Q_MAX_HERMITE:
        if sb >= 0.5 * Q_MAX_HERMITE:
            net = net.replace(sigma_b2=0.25 * Q_MAX_HERMITE)
            sb = net.sigma_b2
        X = X * math.sqrt((0.5 * Q_MAX_HERMITE - sb) / (q1 - sb))
        q1 = sw / d * float(np.max(np.einsum("ij,ij->i", X, X))) + sb
    qs = _variances(net, q1)
    depth = int(np.argmax(qs > Q_MAX_HERMITE)) if np.any(qs > Q_MAX_HERMITE) else net.depth
    if depth != net.depth:
        net = net.replace(depth=max(depth, 1), width=net.width[0] if net.width else None)
    return net, X


def assert_psd(K, what):
    w = np.linalg.eigvalsh(K)
    scale = np.max(np.abs(w))
    assert w.min() >= -PSD_TOL * scale, f"{what} is not PSD: eigenvalues {w}"


def all_finite(*arrays):
    return all(a is None or np.all(np.isfinite(a)) for a in arrays)


# ---------------------------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------------------------


def _kernels_valid(net, X):
    net, X = in_domain(net, X)
    if net.sigma_b2 == 0.0:
        X = X + (np.einsum("ij,ij->i", X, X) == 0)[:, None]  # no zero rows without bias (documented refusal)
    with documented_warnings():
        k = mf.kernels(X, net, layers=True)
    for name in ("nngp", "ntk", "nngp_layers", "backward", "ntk_layers"):
        assert all_finite(getattr(k, name)), f"{name} not finite for {net} on X = {X!r}"
    assert np.array_equal(k.nngp, k.nngp.T) and np.array_equal(k.ntk, k.ntk.T), "kernels not symmetric"
    assert np.all(np.diag(k.nngp) > 0), f"NNGP diagonal not positive: {np.diag(k.nngp)}"
    assert_psd(k.nngp, "NNGP")
    assert_psd(k.ntk, "NTK")
    err = np.abs(k.ntk_layers.sum(axis=0) - k.ntk)
    assert np.all(err <= LAYER_SUM_TOL * np.abs(k.ntk_layers).sum(axis=0)), "sum_l Theta^(l) != Theta"
    assert np.array_equal(k.nngp_layers[-1], k.nngp)


@pytest.mark.parametrize("budget", BUDGETS)
def test_kernels_finite_symmetric_psd_and_layer_sum(budget):
    X = np.random.default_rng(0).normal(size=(4, 3))
    examples = [
        dict(net=mf.Network(50, "tanh", 0.5, 0.0), X=X),  # issue item 1: all NaN
        dict(net=mf.Network(2, "tanh", 1.0, 0.0), X=1e-7 * X),  # item 1: zeros
        dict(net=mf.Network(3, "erf", 1.0, 0.0), X=1e150 * X),  # item 2: all NaN
        dict(net=mf.Network(3, "erf", 1.0, 0.0), X=1e-150 * X),
    ]
    check(budget, 30, _kernels_valid, examples, net=networks(), X=datasets())


def _kernels_cross_matches_symmetric(net, X):
    net, X = in_domain(net, X)
    if net.sigma_b2 == 0.0:
        X = X + (np.einsum("ij,ij->i", X, X) == 0)[:, None]
    with documented_warnings():
        a = mf.kernels(X, net)
        b = mf.kernels(X, net, X2=X.copy())
    for name in ("nngp", "ntk"):
        ka, kb = getattr(a, name), getattr(b, name)
        assert all_finite(kb)
        scale = np.sqrt(np.abs(np.outer(np.diag(ka), np.diag(ka))))
        assert np.all(np.abs(ka - kb) <= 1e-12 * scale), f"{name}: cross kernel K(X, X) differs from K(X)"


@pytest.mark.parametrize("budget", BUDGETS)
def test_kernels_cross_equals_symmetric(budget):
    check(budget, 12, _kernels_cross_matches_symmetric, net=networks(), X=datasets())


@st.composite
def two_datasets(draw):
    """X (n, d) and X2 (m, d) with the same d."""
    X = draw(datasets(n_max=4, d_max=4, log_scale=(0.0, 0.0)))
    Y = draw(datasets(n_max=3, d_max=4, log_scale=(0.0, 0.0)))
    d = min(X.shape[1], Y.shape[1])
    return X[:, :d] + (X[:, :d] == 0), Y[:, :d] + (Y[:, :d] == 0)


def _relu_homogeneous(act, sw, depth, param, XY, log_a):
    X, Y = XY
    a = 10.0**log_a
    net = mf.Network(depth, act, sw, 0.0, param, 16 if param == "standard" else None)
    with documented_warnings():
        k = mf.kernels(X, net, X2=Y)
        ka = mf.kernels(a * X, net, X2=a * Y)
        kx, ky = mf.kernels(X, net), mf.kernels(Y, net)
    for name in ("nngp", "ntk"):
        ref, got = getattr(k, name), getattr(ka, name)
        assert all_finite(ref, got), f"{name} not finite at a = {a:g}"
        scale = np.sqrt(np.outer(np.diag(getattr(kx, name)), np.diag(getattr(ky, name))))
        # NTK parameterization: both kernels are homogeneous of degree 2; standard: the weight part only
        if param == "standard" and name == "ntk":
            continue
        assert np.all(np.abs(got / a**2 - ref) <= HOMOGENEITY_TOL * scale), f"{name}(aX) != a^2 {name}(X), a = {a:g}"


@pytest.mark.parametrize("budget", BUDGETS)
def test_relu_kernels_homogeneous_of_degree_two(budget):
    check(
        budget,
        20,
        _relu_homogeneous,
        act=st.sampled_from(RELU_FAMILY),
        sw=sigma_w2s,
        depth=st.integers(1, 30),
        param=st.just("ntk"),
        XY=two_datasets(),
        log_a=st.floats(-100.0, 100.0),
    )


@st.composite
def layouts_case(draw):
    net = draw(networks(depth_max=8))
    X = draw(datasets(n_max=5, d_max=4, log_scale=(-2.0, 2.0)))
    net, X = in_domain(net, X)
    if net.sigma_b2 == 0.0:
        X = X + (np.einsum("ij,ij->i", X, X) == 0)[:, None]
    return net, X


def _variants(X):
    """The same numbers as C and Fortran arrays and a non-contiguous view."""
    big = np.zeros((2 * X.shape[0], 3 * X.shape[1]))
    big[::2, ::3] = X
    return {"C": np.ascontiguousarray(X), "F": np.asfortranarray(X), "strided": big[::2, ::3]}


def _kernels_layout(case, use_x2):
    net, X = case
    X32 = X.astype(np.float32)
    with documented_warnings():
        ref = mf.kernels(X, net, X2=X if use_x2 else None, layers=True)
        for tag, V in _variants(X).items():
            got = mf.kernels(V, net, X2=_variants(X)[tag] if use_x2 else None, layers=True)
            for name in ("nngp", "ntk", "ntk_layers", "backward"):
                assert np.array_equal(getattr(ref, name), getattr(got, name)), f"{name} differs for {tag} layout"
        ref32 = mf.kernels(X32.astype(np.float64), net)
        got32 = mf.kernels(X32, net)
    assert np.array_equal(ref32.nngp, got32.nngp) and np.array_equal(ref32.ntk, got32.ntk), "float32 not upcast"


@pytest.mark.parametrize("budget", BUDGETS)
def test_kernels_bit_identical_across_layouts_and_dtypes(budget):
    check(budget, 10, _kernels_layout, case=layouts_case(), use_x2=st.booleans())


def _simulate_layout(case, seed):
    net, X = case
    net = net.replace(width=draw_width(seed), depth=min(net.depth, 4))
    with documented_warnings():
        ref = mf.simulate(X, net, n_nets=3, seed=seed, quantities=("nngp", "ntk", "backward"), progress=False)
        outs = {
            tag: mf.simulate(V, net, n_nets=3, seed=seed, quantities=("nngp", "ntk", "backward"), progress=False)
            for tag, V in _variants(X).items()
        }
        X32 = X.astype(np.float32)
        outs["float32"] = mf.simulate(
            X32, net, n_nets=3, seed=seed, quantities=("nngp", "ntk", "backward"), progress=False
        )
        ref32 = mf.simulate(
            X32.astype(np.float64), net, n_nets=3, seed=seed, quantities=("nngp", "ntk", "backward"), progress=False
        )
    for tag, got in outs.items():
        base = ref32 if tag == "float32" else ref
        for q in ("nngp", "ntk", "backward"):
            assert np.array_equal(base[q], got[q]), f"simulate {q} differs for {tag}"
            assert np.all(np.isfinite(got[q]))


def draw_width(seed):
    return 3 + seed % 13


@pytest.mark.parametrize("budget", BUDGETS)
def test_simulate_bit_identical_across_layouts_and_dtypes(budget):
    check(budget, 10, _simulate_layout, case=layouts_case(), seed=st.integers(0, 10**6))


# ---------------------------------------------------------------------------------------------------------------
# pair curves, phase, fixed points, edge of chaos
# ---------------------------------------------------------------------------------------------------------------


@st.composite
def pair_case(draw):
    net = draw(networks(depth_max=40))
    q1 = draw(log_uniform(-30.0, 8.0))
    q2 = draw(st.one_of(st.none(), log_uniform(-30.0, 8.0)))
    c = draw(st.one_of(st.floats(-1.0, 1.0), st.sampled_from([-1.0, 0.0, 1.0])))
    if net.activation.kind == KIND_HERMITE:  # documented domain of the general path
        q1 = min(q1, 0.5 * Q_MAX_HERMITE)
        q2 = None if q2 is None else min(q2, 0.5 * Q_MAX_HERMITE)
        qs = _variances(net, max(q1, q2 or 0.0))
        if np.any(qs > Q_MAX_HERMITE):
            net = net.replace(depth=max(int(np.argmax(qs > Q_MAX_HERMITE)), 1), width=None)
    return net, q1, q2, c


def _pair_curve_finite(case, use_s):
    net, q1, q2, c = case
    with documented_warnings():
        pc = mf.pair_curve(net, q1, q2, s=1.0 - c) if use_s else mf.pair_curve(net, q1, q2, c=c)
        qc = mf.q_curve(net, q1)
        cc = mf.c_curve(net, c, q1)
    for name in ("q1", "q2", "s", "r", "sigma"):
        assert all_finite(getattr(pc, name)), f"pair_curve.{name} not finite: {getattr(pc, name)}"
    for name in ("dot", "dot1", "dot2"):
        assert all_finite(getattr(pc, name)[1:]), f"pair_curve.{name} not finite"
    for q in (pc.q1, pc.q2):
        # a variance may be 0 only as the IEEE underflow of a decay that already left the normal range (its true
        # value rounds to 0; the closed-form correlations do not depend on it), never from a finite, normal variance
        gone = np.flatnonzero(q <= 0)
        assert gone.size == 0 or (gone[0] > 0 and q[gone[0] - 1] < 1e-250), "a variance vanished"
    # s and r travel separately (each exact where it is small); their sum is 2 to the documented accuracy of the
    # path: ~1e-15 for the closed forms, 1e-9 for the general (Hermite) path (the README's Accuracy section)
    tol = 1e-9 if net.activation.kind == KIND_HERMITE else 1e-12
    assert np.all(pc.s >= 0) and np.all(pc.r >= 0) and np.all(np.abs(pc.s + pc.r - 2.0) <= tol)
    assert np.all(np.abs(pc.c) <= 1.0)
    assert all_finite(qc, cc) and np.all(np.abs(cc) <= 1.0)
    assert np.array_equal(qc, mf.pair_curve(net, q1).q1)


@pytest.mark.parametrize("budget", BUDGETS)
def test_pair_q_and_c_curves_finite(budget):
    examples = [dict(case=(mf.Network(60, "relu", 1e-8, 0.0), 1.0, None, 0.5), use_s=False)]  # item 2: NaN s, r
    check(budget, 30, _pair_curve_finite, examples, case=pair_case(), use_s=st.booleans())


def _phase_consistent(net):
    with documented_warnings():
        p = mf.phase(net)
        q = mf.fixed_point_q(net)
    assert p.phase in ("ordered", "edge_of_chaos", "chaotic")
    assert q == p.q_star or (math.isnan(q) and math.isnan(p.q_star))
    assert math.isfinite(p.chi1) and p.chi1 > 0, f"chi1 = {p.chi1}"
    assert p.xi_q >= 0 and (p.xi_c >= 0 or math.isnan(p.xi_c))
    act, sw, sb = net.activation, net.sigma_w2, net.sigma_b2
    if math.isnan(q):  # documented: a linear variance map of slope exactly 1 without bias
        assert act.kind == KIND_LEAKY and sb == 0.0 and sw * (1 + act.slope**2) / 2 == 1.0
        return
    assert q >= 0, f"q* = {q}"
    if math.isfinite(q):
        with documented_warnings():
            image = float(mf.variance_map(q, act, sw, sb))
            slope = float(sw * mf.gaussian.variance_slope(act, q))
        assert abs(image - q) <= 1e-9 * max(q, 1e-300) + 1e-300, f"q* = {q} is not a fixed point: V(q*) = {image}"
        # stable: the documented "smallest stable fixed point" attracts q_1 < q*, so V'(q*) <= 1
        assert slope <= 1.0 + 1e-9, f"q* = {q} is an unstable fixed point (slope {slope})"
        assert math.isfinite(p.c_star) and -1.0 <= p.c_star <= 1.0
        assert "undefined" not in p.note, f"finite q* = {q} next to the note {p.note!r}"
    if act.name in BOUNDED:  # V(q) <= sigma_w2 sup phi^2 + sigma_b2: the variance cannot diverge
        assert math.isfinite(q), f"q* = {q} for the bounded {act.name}"
    if p.phase != "chaotic":
        assert p.c_star == 1.0


@pytest.mark.parametrize("budget", BUDGETS)
def test_phase_and_fixed_point_consistent(budget):
    nets = st.one_of(networks(depth_max=1), networks(depth_max=1).map(lambda n: n.replace(sigma_b2=0.0)))
    examples = [dict(net=mf.Network(1, "relu", 3.0, 0.0)), dict(net=mf.Network(1, "erf", 1.0, 1e6))]  # item 4
    check(budget, 30, _phase_consistent, examples, net=nets)


def _edge_of_chaos(act, sb):
    try:
        with documented_warnings():
            sw = mf.edge_of_chaos(act, sb)
    except ValueError as exc:
        kind = mf.get_activation(act).kind
        documented = (kind == KIND_LEAKY and sb > 0) or (act not in BOUNDED and "no edge of chaos" in str(exc))
        assert documented, f"edge_of_chaos({act!r}, {sb}) refused: {exc}"
        return
    assert math.isfinite(sw) and sw > 0
    with documented_warnings():
        p = mf.phase(mf.Network(1, act, sw, sb))
    assert abs(p.chi1 - 1.0) <= 1e-6, f"chi_1 = {p.chi1} at the edge of chaos sigma_w2 = {sw}"


@pytest.mark.parametrize("budget", BUDGETS)
def test_edge_of_chaos_has_chi1_one(budget):
    sbs = st.one_of(st.just(0.0), log_uniform(-4.0, 7.0))
    examples = [dict(act="erf", sb=1e6)]  # issue item 4: closed form 1571
    check(budget, 8, _edge_of_chaos, examples, act=st.sampled_from(ACTIVATIONS), sb=sbs)


# ---------------------------------------------------------------------------------------------------------------
# scalar maps
# ---------------------------------------------------------------------------------------------------------------


def _maps_finite(act, q, c, sw, sb):
    if mf.get_activation(act).kind == KIND_HERMITE:
        q = min(q, Q_MAX_HERMITE)
    with documented_warnings():
        v = float(mf.variance_map(q, act, sw, sb))
        cm = float(mf.correlation_map(c, act, q, sw, sb))
        c1 = float(mf.correlation_map(1.0, act, q, sw, sb))
        dm = float(mf.decorrelation_map(1.0 - c, act, q, sw, sb))
        sl = float(mf.correlation_slope(c, act, q, sw, sb))
        cov, dcov = mf.gaussian_moments(q, 0.5 * q, c, act)
        var1, _ = mf.gaussian_moments(q, q, 1.0, act)
        var2, _ = mf.gaussian_moments(0.5 * q, 0.5 * q, 1.0, act)
        a, b = mf.hermite_coefficients(act, q) if q <= Q_MAX_HERMITE else (0.0, 0.0)
    assert all_finite(v, cm, dm, sl, cov, dcov, a, b), (v, cm, dm, sl, cov, dcov, a, b)
    assert v >= sb, f"variance map {v} < sigma_b2 = {sb}"
    assert -1.0 <= cm <= 1.0 and 0.0 <= dm <= 2.0
    assert abs(c1 - 1.0) <= 1e-12, f"correlation map at c = 1 gives {c1}"
    # Cauchy-Schwarz: |E phi(u) phi(v)| <= sqrt(E phi(u)^2 E phi(v)^2)
    assert abs(float(cov)) <= math.sqrt(float(var1)) * math.sqrt(float(var2)) * (1 + 1e-12)


@pytest.mark.parametrize("budget", BUDGETS)
def test_scalar_maps_finite_and_bounded(budget):
    check(
        budget,
        30,
        _maps_finite,
        act=st.sampled_from(ACTIVATIONS),
        q=log_uniform(-300.0, 300.0),
        c=st.floats(-1.0, 1.0),
        sw=sigma_w2s,
        sb=sigma_b2s,
    )


# ---------------------------------------------------------------------------------------------------------------
# equilibrium: information loss and the peak layer
# ---------------------------------------------------------------------------------------------------------------


@st.composite
def equilibrium_nets(draw):
    net = draw(networks(depth_max=200, parameterization="ntk"))
    net = net.replace(depth=max(net.depth, 2), width=None)
    if net.activation.kind == KIND_HERMITE:
        qs = _variances(net, net.sigma_w2 + net.sigma_b2)  # inputs on the sphere
        if np.any(qs > Q_MAX_HERMITE):
            net = net.replace(depth=max(int(np.argmax(qs > Q_MAX_HERMITE)), 2))
    return net


def _information_loss(net, eps, form):
    with documented_warnings():
        il = mf.information_loss(net, eps=eps, form=form)
    assert all_finite(il.forward, il.backward), f"information loss not finite: {il}"
    assert np.all(il.forward >= 0) and np.all(il.forward <= 2.0)
    assert np.all(il.backward >= 0) and il.backward[-1] == 1.0


@pytest.mark.parametrize("budget", BUDGETS)
def test_information_loss_finite(budget):
    check(
        budget,
        25,
        _information_loss,
        net=equilibrium_nets(),
        eps=st.floats(0.01, 1.99),
        form=st.sampled_from(("corrected", "published")),
    )


def _peak_layer(net, eps, form, score, many):
    depths = np.unique(np.linspace(2, net.depth, 4).astype(int)) if many else None
    with documented_warnings():
        pk = mf.peak_layer(net, depths, eps=eps, form=form, score=score)
    L = np.atleast_1d(pk.depth)
    ls = np.atleast_1d(pk.l_star)
    assert np.all((ls >= 1) & (ls <= L)), f"l* = {ls} outside 1..L"
    lc = np.atleast_1d(pk.l_cont)
    assert np.all(np.isnan(lc) | ((lc >= 0.5) & (lc <= L + 0.5))), f"l_cont = {lc}"
    assert all_finite(np.atleast_1d(pk.forward), np.atleast_1d(pk.backward), np.atleast_1d(pk.asymptote))


@pytest.mark.parametrize("budget", BUDGETS)
def test_peak_layer_in_range(budget):
    check(
        budget,
        12,
        _peak_layer,
        net=equilibrium_nets(),
        eps=st.floats(0.01, 1.99),
        form=st.sampled_from(("corrected", "published")),
        score=st.sampled_from(("crossing", "harmonic")),
        many=st.booleans(),
    )


# ---------------------------------------------------------------------------------------------------------------
# dispersion
# ---------------------------------------------------------------------------------------------------------------


def _ntk_moments(depth, width, d, sw, log_x0, form):
    net = mf.Network(depth, "relu", sw, 0.0, "standard", width)
    with documented_warnings():
        m = mf.ntk_moments(net, d, x0_norm2=10.0**log_x0, form=form)
    assert math.isfinite(m.dispersion), f"dispersion = {m.dispersion} at ||x||^2 = 1e{log_x0:.1f}"
    assert math.isfinite(m.log_mean) and math.isfinite(m.log_second)
    if form == "corrected":
        assert m.dispersion >= 1.0 - 1e-12, f"E[Theta^2] < E[Theta]^2: D = {m.dispersion}"
    else:
        assert m.dispersion > 0


@pytest.mark.parametrize("budget", BUDGETS)
def test_ntk_moments_finite_dispersion(budget):
    examples = [dict(depth=3, width=4, d=3, sw=2.0, log_x0=200.0, form="corrected")]  # item 2: inf
    check(
        budget,
        40,
        _ntk_moments,
        examples,
        depth=st.integers(1, 60),
        width=st.integers(1, 300),
        d=st.integers(1, 300),
        sw=log_uniform(-1.0, 1.0),
        log_x0=st.floats(-300.0, 300.0),
        form=st.sampled_from(("corrected", "published")),
    )


def _dispersion_limit(phase, lam, alpha0, form):
    with documented_warnings():
        v = mf.dispersion_limit(phase, lam, alpha0, form)
    assert math.isfinite(v), f"dispersion limit {v} at lam = {lam}"  # documented inf only beyond lam ~ 142
    assert v >= 1.0 - 1e-9 if form == "corrected" else v > 0, f"dispersion limit {v} < 1"


@pytest.mark.parametrize("budget", BUDGETS)
def test_dispersion_limit_finite(budget):
    phases = st.one_of(st.sampled_from(("ordered", "eoc", "chaotic")), sigma_w2s)
    check(
        budget,
        15,
        _dispersion_limit,
        phase=phases,
        lam=log_uniform(-6.0, 2.0),
        alpha0=log_uniform(-3.0, 3.0),
        form=st.sampled_from(("corrected", "published")),
    )


# ---------------------------------------------------------------------------------------------------------------
# alignment measures
# ---------------------------------------------------------------------------------------------------------------


@st.composite
def gram_pairs(draw):
    n = draw(st.integers(2, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.standard_normal((n, draw(st.integers(1, 6))))
    B = np.hstack([A[:, :1], rng.standard_normal((n, draw(st.integers(1, 6))))])
    return A @ A.T, B @ B.T


def _conditioning(*Ks):
    """sum of ||K||_F / ||H K H||_F: how much centering amplifies the rounding of the entries (1 per kernel at best)."""
    out = 0.0
    for K in Ks:
        Kc = mf.alignment.center(K)
        out += float(np.linalg.norm(K) / max(np.linalg.norm(Kc), np.finfo(float).tiny))
    return out


def _scale_invariant(KL, log_c, log_k, unbiased):
    K, L = KL
    unbiased = unbiased and K.shape[0] >= 4
    c = 10.0**log_c
    K = K * 10.0**log_k
    with documented_warnings():
        ref = [mf.cka(K, L, unbiased), kta(K, L), cosine(K, L)]
        got = [mf.cka(c * K, L, unbiased), kta(c * K, L), cosine(c * K, L)]
        both = [mf.cka(c * K, c * L, unbiased), kta(c * K, c * L), cosine(c * K, c * L)]
    kappa = _conditioning(K / np.linalg.norm(K), L / np.linalg.norm(L))
    for name, r, g, b in zip(("cka", "kta", "cosine"), ref, got, both, strict=True):
        if name == "cka" and unbiased and math.isnan(r):
            assert math.isnan(g) and math.isnan(b)  # documented: debiased self-HSIC not positive
            continue
        tol = SCALE_TOL * (kappa if name == "cka" else 1.0)
        assert math.isfinite(r) and -1 - 1e-12 <= r <= 1 + 1e-12, f"{name} = {r}"
        assert abs(g - r) <= tol and abs(b - r) <= tol, f"{name}(cK, L): {r} -> {g}, {b} at c = {c:g}"
        if not unbiased:
            assert r >= -1e-12, f"{name} of PSD kernels is negative: {r}"


@pytest.mark.parametrize("budget", BUDGETS)
def test_alignment_scale_invariant(budget):
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(8, 3)), rng.normal(size=(8, 4))
    examples = [dict(KL=(A @ A.T, B @ B.T), log_c=c, log_k=0.0, unbiased=False) for c in (80.0, -100.0)]  # item 3
    check(
        budget,
        40,
        _scale_invariant,
        examples,
        KL=gram_pairs(),
        log_c=st.floats(-250.0, 250.0),
        log_k=st.floats(-30.0, 30.0),
        unbiased=st.booleans(),
    )


def _hsic_homogeneous(KL, log_c, unbiased):
    K, L = KL
    unbiased = unbiased and K.shape[0] >= 4
    c = 10.0**log_c
    with documented_warnings():
        ref = hsic(K, L, unbiased)
        got = hsic(c * K, L, unbiased)
        self_k = hsic(K, K, unbiased)
    assert math.isfinite(ref) and math.isfinite(got)
    if not unbiased:
        assert self_k >= 0
    assert abs(got / c - ref) <= 1e-12 * max(abs(self_k), math.sqrt(abs(self_k * hsic(L, L, unbiased))), 1e-300)


@pytest.mark.parametrize("budget", BUDGETS)
def test_hsic_homogeneous(budget):
    check(budget, 25, _hsic_homogeneous, KL=gram_pairs(), log_c=st.floats(-100.0, 100.0), unbiased=st.booleans())


def _cka_of_kernels(net, X):
    """CKA of the NNGP and NTK of one network: finite, in [0, 1] (the realistic case of issue item 3)."""
    net, X = in_domain(net, X)
    if net.sigma_b2 == 0.0:
        X = X + (np.einsum("ij,ij->i", X, X) == 0)[:, None]
    with documented_warnings():
        k = mf.kernels(X, net)
        v = mf.cka(k.nngp, k.ntk)
        ref = mf.cka(k.nngp / np.linalg.norm(k.nngp), k.ntk / np.linalg.norm(k.ntk))
    assert math.isnan(v) == math.isnan(ref)
    if not math.isnan(ref):
        tol = SCALE_TOL * _conditioning(k.nngp / np.linalg.norm(k.nngp), k.ntk / np.linalg.norm(k.ntk))
        assert -1e-12 <= v <= 1 + 1e-12 and abs(v - ref) <= tol, f"cka(nngp, ntk) = {v}, normalised {ref}"


@pytest.mark.parametrize("budget", BUDGETS)
def test_cka_of_network_kernels(budget):
    X20 = np.random.default_rng(0).normal(size=(20, 3))
    examples = [dict(net=mf.Network(500, "relu", 3.0), X=X20)]  # issue item 3: 0.0 instead of 0.3071
    check(budget, 10, _cka_of_kernels, examples, net=networks(), X=datasets(n_max=7))
