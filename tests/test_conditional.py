"""The exact conditional sampler (meanfield.finite.conditional): identities per network, reproducibility, and
agreement in distribution with the weight-drawing sampler and with the dispersion module's projection sampler."""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_allclose

import meanfield as mf
from meanfield.dispersion import ntk_moments, sample_ntk_diagonal
from meanfield.finite.conditional import conditional_pass, default_method, normal_counts
from meanfield.finite.montecarlo import simulate
from meanfield.finite.streams import generator, seed_sequences
from meanfield.stats import bootstrap, stderr

KERNELS = ("nngp", "backward", "ntk_layers", "ntk")
ALL = KERNELS + ("outputs",)


def _X(n=3, d=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def _z_mean(a, b):
    """Entrywise z of the difference of two Monte Carlo means; entries that do not fluctuate in either sample
    (F_1, B_L) must agree to rounding and get z = 0."""
    se = np.sqrt(stderr(a) ** 2 + stderr(b) ** 2)
    scale = np.maximum(np.abs(a).max(axis=0), np.abs(b).max(axis=0))
    live = se > 1e-12 * scale
    diff = a.mean(axis=0) - b.mean(axis=0)
    assert np.all(np.abs(diff[~live]) <= 1e-12 * scale[~live])
    return np.where(live, diff / np.where(live, se, 1.0), 0.0), live


def _z_var(a, b, live, seed=0):
    """Entrywise z of the difference of the two sample variances, bootstrap standard errors (meanfield.stats)."""
    ba = bootstrap(lambda s: s.var(axis=0, ddof=1), a, n_boot=300, seed=seed)
    bb = bootstrap(lambda s: s.var(axis=0, ddof=1), b, n_boot=300, seed=seed + 1)
    se = np.sqrt(np.asarray(ba.stderr) ** 2 + np.asarray(bb.stderr) ** 2)
    return np.where(live, (ba.estimate - bb.estimate) / np.where(live, se, 1.0), 0.0)


def _upper(a):
    """The entries ``i <= j`` of the trailing (n, n) axes (the kernels are symmetric)."""
    n = a.shape[-1]
    i, j = np.triu_indices(n)
    return a[..., i, j]


def _compare(X, net, n_nets, seed, bias=True, quantities=ALL):
    """Largest |z| of means and of variances per quantity between the two samplers (independent seeds)."""
    a = simulate(X, net, n_nets, seed=seed, quantities=quantities, layers=True, bias=bias, method="conditional")
    b = simulate(X, net, n_nets, seed=seed + 1, quantities=quantities, layers=True, bias=bias, method="weights")
    out = {}
    for q in quantities:
        x, y = (a[q], b[q]) if q == "outputs" else (_upper(a[q]), _upper(b[q]))
        zm, live = _z_mean(x, y)
        zv = _z_var(x, y, live)
        out[q] = (float(np.abs(zm).max()), float(np.abs(zv).max()))
    return out


# ----------------------------------------------------------------------------------------------------------------
# fast: identities, reproducibility, the default, refusals, one small distribution check
# ----------------------------------------------------------------------------------------------------------------
def test_conditional_kernels_satisfy_the_per_network_identities_and_are_reproducible():
    X = np.vstack([_X(n=3), _X(n=1)[:1]])  # the last input duplicates the first: a rank-deficient layer input
    X[3] = X[0]
    net = mf.Network(4, "tanh", sigma_w2=1.5, sigma_b2=0.1, width=(6, 3, 5))  # n = 4 > N_2 = 3
    ref = simulate(X, net, 9, seed=11, quantities=ALL, layers=True, batch_size=9, method="conditional")
    assert_allclose(ref["ntk_layers"].sum(axis=1), ref["ntk"], rtol=1e-13)
    assert_allclose(ref["ntk_layers"], ref["nngp"] * ref["backward"], rtol=1e-12)  # NTP: K_l = F_l B_l
    assert_allclose(ref["backward"][:, -1], 1.0)
    assert_allclose(ref["nngp"][:, 0], np.broadcast_to(1.5 / 4 * X @ X.T + 0.1, (9, 4, 4)), rtol=1e-14)
    assert_allclose(ref["outputs"][:, 3], ref["outputs"][:, 0], rtol=1e-9)  # duplicate inputs stay duplicates
    assert_allclose(ref["ntk"][:, 3, 3], ref["ntk"][:, 0, 0], rtol=1e-9)
    assert np.all(np.linalg.eigvalsh(ref["ntk"]) > -1e-10 * np.abs(ref["ntk"]).max())
    with ThreadPoolExecutor(2) as ex:
        others = [simulate(X, net, 9, seed=11, quantities=ALL, layers=True, batch_size=b, method="conditional",
                           executor=ex if b == 4 else None) for b in (1, 4)]  # fmt: skip
    for other in others:
        for q in ALL:
            assert np.array_equal(ref[q], other[q]), q
    # forward-only runs draw the same forward normals
    fwd = simulate(X, net, 9, seed=11, quantities=("nngp", "outputs"), layers=True, method="conditional")
    assert np.array_equal(fwd["nngp"], ref["nngp"]) and np.array_equal(fwd["outputs"], ref["outputs"])
    other_seed = simulate(X, net, 9, seed=12, quantities=("ntk",), method="conditional")
    assert not np.array_equal(ref["ntk"], other_seed["ntk"])


def test_standard_parameterization_and_no_bias_weights():
    X = _X()
    net = mf.Network(3, "erf", sigma_w2=1.7, sigma_b2=0.3, parameterization="standard", width=(5, 7))
    s = simulate(X, net, 5, seed=2, quantities=("nngp", "backward", "ntk_layers"), layers=True, method="conditional")
    G = [(s["nngp"][:, l] - 0.3) * [4, 5, 7][l] / 1.7 for l in range(3)]
    for l in range(3):  # SP: K_l = (G_l + 1) B_l
        assert_allclose(s["ntk_layers"][:, l], (G[l] + 1.0) * s["backward"][:, l], rtol=1e-10, atol=1e-12)
    nb = simulate(X, net, 5, seed=2, quantities=("nngp", "ntk_layers"), layers=True, method="conditional", bias=False)
    assert_allclose(nb["nngp"][:, 0], np.broadcast_to(1.7 / 4 * X @ X.T, (5, 3, 3)), rtol=1e-14)


def test_normal_counts_and_the_default_method():
    net = mf.Network(10, "relu", width=512)
    fw, bw = normal_counts(net, 512, 8)
    assert fw == 8 * 512 * 9 + 8 and bw == 512 * (8 * 8 + 1)  # r = n, M = N (sigma_b2 = 0); readout r' = 1
    assert fw + bw < 512 * 512 * 10 / 25
    assert default_method(net, 512, 8) == "conditional"
    assert default_method(mf.Network(20, "relu", width=2048), 2048, 16) == "conditional"
    assert default_method(mf.Network(3, "relu", width=16), 16, 64) == "weights"
    opts = mf.Network(4, "relu", sigma_w2=(2.0, 1.5, 1.5, 1.0), residual=0.5, dropout=0.9, width=512)
    assert default_method(opts, 512, 8) == "conditional" and default_method(opts.replace(width=16), 16, 64) == "weights"


def test_bad_method_is_refused_by_name():
    with pytest.raises(ValueError) as e:
        simulate(_X(), mf.Network(3, width=8), 4, method="exact")
    assert all(w in str(e.value) for w in ("method", "conditional", "weights")), str(e.value)


def test_architecture_options_are_reproducible_and_keep_the_identities():
    X = _X(n=4)
    net = mf.Network(4, "tanh", (1.2, 1.8, 1.5, 0.9), 0.1, residual=0.6, normalization="layer", dropout=0.85, width=7)
    ref = simulate(X, net, 7, seed=3, quantities=ALL, layers=True, batch_size=7, method="conditional")
    assert_allclose(ref["ntk_layers"].sum(axis=1), ref["ntk"], rtol=1e-13)
    assert_allclose(ref["backward"][:, -1], 1.0)
    assert np.all(np.linalg.eigvalsh(ref["ntk"]) > -1e-10 * np.abs(ref["ntk"]).max())
    for b in (1, 3):
        other = simulate(X, net, 7, seed=3, quantities=ALL, layers=True, batch_size=b, method="conditional")
        assert all(np.array_equal(ref[q], other[q]) for q in ALL)
    fwd = simulate(X, net, 7, seed=3, quantities=("nngp", "outputs"), layers=True, method="conditional")
    assert np.array_equal(fwd["nngp"], ref["nngp"]) and np.array_equal(fwd["outputs"], ref["outputs"])
    p = conditional_pass(X, net, seed_sequences(3, 2))
    assert p.skips[0] is None and p.skips[-1] is None and p.skips[1].shape == (2, 4, 4)
    with pytest.raises(ValueError, match="LayerNorm"):  # a zero input without biases: no normalization
        simulate(np.zeros((2, 3)), net.replace(sigma_b2=0.0), 2, method="conditional")


def test_conditional_pass_refuses_bad_input():
    net = mf.Network(2, width=4)
    for call, word in [
        (lambda: conditional_pass(np.ones(3), net, seed_sequences(0, 2)), "X"),
        (lambda: conditional_pass(_X(), net, []), "seeds"),
        (lambda: conditional_pass(_X(), mf.Network(2), seed_sequences(0, 2)), "width"),
        (lambda: conditional_pass(_X(), net, seed_sequences(0, 2), bias="yes"), "bias"),
    ]:
        with pytest.raises(ValueError, match=word):
            call()


def test_per_layer_variances_give_the_exact_second_layer_kernel():
    """E F_2 = sigma_w,2^2 E[relu(u) relu(v)] + sigma_b,2^2 with (u, v) ~ N(0, F_1): the arc-cosine kernel of
    degree 1 (Cho & Saul 2009) of layer 1's own variances, exact at any width."""
    X = _X(n=3, d=5)
    net = mf.Network(3, "relu", sigma_w2=(1.2, 2.5, 1.0), sigma_b2=(0.3, 0.05, 0.0), width=(8, 8))
    s = simulate(X, net, 3000, seed=4, quantities=("nngp",), layers=True, method="conditional")
    S1 = 1.2 / 5 * X @ X.T + 0.3
    q = np.sqrt(np.diag(S1))
    c = np.clip(S1 / np.outer(q, q), -1, 1)
    th = np.arccos(c)
    exact = 2.5 * np.outer(q, q) * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi) + 0.05
    assert_allclose(s["nngp"][:, 0], np.broadcast_to(S1, (3000, 3, 3)), rtol=1e-14)
    z = (s.mean("nngp")[1] - exact) / s.stderr("nngp")[1]
    assert np.abs(z).max() <= 4, z


def test_small_distribution_smoke_check_against_the_weight_sampler():
    X = _X()
    net = mf.Network(3, "relu", sigma_w2=2.0, sigma_b2=0.1, width=(10, 6))
    a = simulate(X, net, 400, seed=1, quantities=("ntk", "backward"), layers=True, method="conditional")
    b = simulate(X, net, 400, seed=2, quantities=("ntk", "backward"), layers=True, method="weights")
    for q in ("ntk", "backward"):
        z, _ = _z_mean(_upper(a[q]), _upper(b[q]))
        assert np.abs(z).max() <= 4, (q, z)


def test_one_input_matches_the_projection_sampler_and_the_exact_moments():
    """For one input (SP ReLU, sigma_b = 0, trained biases) the conditional sampler is the projection sampler of
    the dispersion module: the same law of Theta(x, x), and both match the exact moments (Seleznova & Kutyniok
    2022 setting; meanfield.dispersion.ntk_moments)."""
    widths, sw2, d = [12, 16, 10, 14], 2.4, 9
    net = mf.Network(len(widths) + 1, "relu", sw2, 0.0, "standard", width=widths)
    M = 20_000
    proj = sample_ntk_diagonal(net, d, M, x0_norm2=1.3, seed=21).theta
    cond = sample_ntk_diagonal(net, d, M, x0_norm2=1.3, method="conditional", seed=22).theta
    X = np.zeros((1, d))
    X[0, 0] = math.sqrt(1.3)
    sim = simulate(X, net, 4000, seed=23, quantities=("ntk",), method="conditional")["ntk"][:, 0, 0]
    for f in (lambda t: t, lambda t: t * t, lambda t: (t < np.median(proj)).astype(float)):
        for other in (cond, sim):
            x, y = f(proj), f(other)
            z = (x.mean() - y.mean()) / math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
            assert abs(z) <= 4, z
    mom = ntk_moments(net, d, x0_norm2=1.3)
    for t in (proj, cond):
        assert abs(t.mean() - mom.mean) / stderr(t) <= 4
        assert abs(np.mean(t * t) - mom.second) / stderr(t * t) <= 4


# ----------------------------------------------------------------------------------------------------------------
# slow: the two samplers agree in distribution (means |z| <= 4, variances within 4 bootstrap standard errors)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
@pytest.mark.parametrize(
    "parameterization, widths, n, bias, n_nets",
    [("ntk", (12, 7), 3, True, 2000), ("standard", (9, 11), 3, True, 2000), ("ntk", (5, 3, 6), 7, False, 8000)],
)
def test_conditional_and_weight_samplers_agree_in_distribution(activation, parameterization, widths, n, bias, n_nets):
    """Means (|z| <= 4) and variances (within 4 bootstrap standard errors) of every entry of every kernel.

    The last configuration is rank deficient (a duplicate input, n = 7 > widths 5, 3, 6, no biases); its ReLU
    kernels are heavy-tailed at width 3, and at 2000 networks the backward kernel reached |z| = 4.08 (seed 100)
    while 20 000 networks gave 2.0 and another seed 2.1, so it runs with 8000 networks."""
    X = _X(n=n)
    if n > 4:  # duplicate inputs and n > width: rank-deficient layer inputs and backward vectors
        X[4] = X[0]
    net = mf.Network(len(widths) + 1, activation, 1.8, 0.2, parameterization, width=widths)
    res = _compare(X, net, n_nets, seed=100, bias=bias)
    print(activation, parameterization, widths, {q: (round(m, 2), round(v, 2)) for q, (m, v) in res.items()})
    for q, (zm, zv) in res.items():
        assert zm <= 4 and zv <= 4, (q, zm, zv)


def _weights_reference(X, net, n_nets, seed):
    """An independent weight-drawing reference for the options of the spec (per-layer variances, residual blocks,
    LayerNorm, dropout; conventions of meanfield.network), one network at a time with explicit matrices: W_l ~
    N(0, sigma_w,l^2 / N_{l-1}), b_l ~ N(0, sigma_b,l^2), dropout masks per input, the backward pass through the
    explicit LayerNorm Jacobian (I - 1 1^T / N - y y^T / N) / s; NTP kernels."""
    n, d = X.shape
    L = net.depth
    fan, outs = net.fan_ins(d), net.width + (1,)
    sw2, sb2 = net.weight_variances, net.bias_variances
    beta = [net.residual if net.residual is not None and 1 <= l <= L - 2 else 1.0 for l in range(L)]
    skip = [net.residual is not None and 1 <= l <= L - 2 for l in range(L)]
    act = net.activation
    out = {q: np.empty((n_nets, L, n, n)) for q in ("nngp", "backward", "ntk_layers")}
    for k, seq in enumerate(seed_sequences(seed, n_nets)):
        rng = generator(seq)
        W = [rng.standard_normal((outs[l], fan[l])) * math.sqrt(sw2[l] / fan[l]) for l in range(L)]
        b = [rng.standard_normal(outs[l]) * math.sqrt(sb2[l]) for l in range(L)]
        keep = [(rng.random((n, outs[l])) < net.dropout) / net.dropout if net.dropout else None for l in range(L - 1)]
        for i in range(n):  # one input at a time: forward, then backward with explicit Jacobians
            h, zs, hs, Js = X[i], [], [X[i]], []
            for l in range(L):
                z = beta[l] * (W[l] @ h + b[l]) + (zs[-1] if skip[l] else 0.0)
                zs.append(z)
                if l < L - 1:
                    J = np.eye(outs[l])
                    u = z
                    if net.normalization == "layer":
                        c = z - z.mean()
                        s = math.sqrt(np.mean(c * c))
                        u = c / s
                        J = (np.eye(outs[l]) - 1.0 / outs[l] - np.outer(u, u) / outs[l]) / s
                    m = keep[l][i] if keep[l] is not None else 1.0
                    h = m * act.fn(u)
                    Js.append((J, m * act.derivative(u)))  # dh/dz = diag(m phi'(u)) J
                    hs.append(h)
            delta = [None] * L
            delta[L - 1] = np.ones(1)
            for l in range(L - 2, -1, -1):
                g = beta[l + 1] * (W[l + 1].T @ delta[l + 1])  # df/dh_l
                J, dphi = Js[l]
                delta[l] = J.T @ (dphi * g) + (delta[l + 1] if skip[l + 1] else 0.0)
            if i == 0:
                H, D, Z = [[None] * L for _ in range(3)]
            for l in range(L):
                for lst, v in ((H, hs[l]), (D, delta[l]), (Z, zs[l - 1] if l > 0 else None)):
                    if i == 0:
                        lst[l] = [] if v is not None else None
                    if v is not None:
                        lst[l].append(v)
        for l in range(L):
            G = np.array(H[l]) @ np.array(H[l]).T
            B = np.array(D[l]) @ np.array(D[l]).T
            F = beta[l] ** 2 * (sw2[l] / fan[l] * G + sb2[l])
            out["ntk_layers"][k, l] = F * B
            if skip[l]:
                F = F + np.array(Z[l]) @ np.array(Z[l]).T / fan[l]
            out["nngp"][k, l], out["backward"][k, l] = F, B
    out["ntk"] = out["ntk_layers"].sum(axis=1)
    return out


def _options_compare(X, net, n_nets, seed):
    """Largest |z| (means, variances) per kernel of the conditional sampler against the independent reference
    and against ``simulate(method="weights")``."""
    a = simulate(X, net, n_nets, seed=seed, quantities=KERNELS, layers=True, method="conditional")
    refs = [_weights_reference(X, net, n_nets, seed=seed + 1),
            simulate(X, net, n_nets, seed=seed + 2, quantities=KERNELS, layers=True, method="weights")]  # fmt: skip
    res = {}
    for q in KERNELS:
        zs = []
        for b in refs:
            zm, live = _z_mean(_upper(a[q]), _upper(b[q]))
            zs.append((float(np.abs(zm).max()), float(np.abs(_z_var(_upper(a[q]), _upper(b[q]), live)).max())))
        res[q] = (max(z[0] for z in zs), max(z[1] for z in zs))
    return res


@pytest.mark.slow
@pytest.mark.parametrize(
    "activation, options",
    [
        ("relu", dict(residual=0.7)),
        ("erf", dict(residual=0.7)),
        ("tanh", dict(residual=1.0)),
        ("erf", dict(normalization="layer")),
        ("relu", dict(dropout=0.8)),
        ("tanh", dict(residual=0.6, normalization="layer", dropout=0.85, sigma_w2=(1.2, 1.8, 1.5, 0.9))),
    ],
)
def test_architecture_options_agree_with_an_independent_weight_sampler(activation, options):
    X = _X(n=3)
    kw = dict(sigma_w2=1.6, sigma_b2=0.1) | options
    net = mf.Network(4, activation, parameterization="ntk", width=8, **kw)
    res = _options_compare(X, net, 2000, seed=40)
    print(activation, options, {q: (round(m, 2), round(v, 2)) for q, (m, v) in res.items()})
    for q, (zm, zv) in res.items():
        assert zm <= 4 and zv <= 4, (q, zm, zv)


@pytest.mark.slow
def test_per_layer_variances_agree_with_an_independent_weight_sampler():
    X = _X(n=3)
    net = mf.Network(4, "tanh", sigma_w2=(1.0, 2.2, 1.6, 0.8), sigma_b2=(0.1, 0.0, 0.3, 0.2), width=(9, 6, 11))
    for q, (zm, zv) in _options_compare(X, net, 2000, seed=5).items():
        assert zm <= 4 and zv <= 4, (q, zm, zv)
