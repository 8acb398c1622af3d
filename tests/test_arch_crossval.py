"""Finite networks with the architecture options against the independent infinite-width reference (reference_arch):
NNGP Sigma_l, backward kernels B_l, layer tangent kernels Theta^(l) and the NTK, for residual blocks (beta = 1 and
1/sqrt(L)), LayerNorm, per-layer variance schedules and dropout, with ReLU, erf and tanh.

Every Monte Carlo entry is checked by its z-score |MC mean - reference| / stderr <= 4 with fixed seeds (widths
256-1024); the finite-width bias is O(1/N) and is measured separately (the width trend at the end). The reference is
first validated against the plain-MLP theory ``meanfield.kernels`` (to 1e-10) and against closed forms.
"""

import numpy as np
import pytest
from helpers import inputs_at_correlations
from numpy.testing import assert_allclose
from reference_arch import reference_kernels

import meanfield as mf
from meanfield.finite.montecarlo import simulate

Z_MAX = 4.0
QUANTITIES = ("nngp", "backward", "ntk_layers", "ntk")
ACTS = {"relu": (2.0, 0.1), "erf": (1.6, 0.1), "tanh": (1.5, 0.05)}

#: option name -> (Network keywords, depth); schedules are per weight layer
OPTIONS = {
    "residual-beta1": (dict(residual=1.0), 4),
    "residual-stable": (dict(residual=1 / np.sqrt(6)), 6),
    "layernorm": (dict(normalization="layer"), 4),
    "layernorm-residual": (dict(normalization="layer", residual=0.5), 4),
    "schedule": (dict(sigma_w2=(1.0, 2.5, 1.5, 2.0), sigma_b2=(0.1, 0.0, 0.3, 0.05)), 4),
    "dropout": (dict(dropout=0.8), 3),
}


def crossval_inputs(d=8, seed=0):
    """x0 (||x||^2 = d), and partners at correlations 0.5, 0.999 (nearly parallel), -0.999 (anti-parallel)."""
    X = inputs_at_correlations((0.5, 0.999, -0.999), d, seed)
    X[1] *= 1.3
    return X


def make_net(option, activation, width=None, parameterization="ntk"):
    kw, depth = OPTIONS[option]
    sw, sb = ACTS[activation]
    args = dict(sigma_w2=sw, sigma_b2=sb)
    args.update(kw)
    return mf.Network(depth, activation, parameterization=parameterization, width=width, **args)


def max_z(sim, ref, quantities=QUANTITIES):
    return {q: float(np.abs(sim.zscore(q, ref[q])).max()) for q in quantities}


# ---------------------------------------------------------------------------------------------------------------
# the reference itself
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize(
    "activation, sigma_w2, sigma_b2",
    [("relu", 2.0, 0.0), ("relu", 2.0, 0.2), ("erf", 1.6, 0.1), ("tanh", 1.5, 0.05), ("leaky_relu:0.2", 1.8, 0.1)],
)
def test_reference_equals_plain_mlp_theory(activation, sigma_w2, sigma_b2, parameterization):
    if parameterization == "standard" and sigma_b2 == 0:
        pytest.skip("SP with sigma_b2 = 0: whether a zero-variance bias is a trainable parameter is a convention")
    X = crossval_inputs()
    net = mf.Network(5, activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2, parameterization=parameterization, width=300)
    ref = reference_kernels(X, net)
    k = mf.kernels(X, net, layers=True)
    theory = {"nngp": k.nngp_layers, "backward": k.backward, "ntk_layers": k.ntk_layers, "ntk": k.ntk}
    for q in QUANTITIES:
        assert_allclose(ref[q], theory[q], rtol=1e-10, atol=1e-10 * np.abs(theory[q]).max(), err_msg=q)


def test_reference_closed_forms_of_residual_relu_and_layernorm():
    """ReLU without bias: a residual block multiplies q by 1 + beta^2 sigma_w^2 / 2, and the diagonal of the
    backward kernel by the same factor; LayerNorm makes every hidden q_l = sigma_w^2 / 2 (E relu(u)^2 = 1/2)."""
    X = crossval_inputs()
    beta, sw = 0.6, 1.7
    ref = reference_kernels(X, mf.Network(5, "relu", sigma_w2=sw, residual=beta))
    q1 = sw * np.sum(X**2, axis=1) / X.shape[1]
    grow = 1 + beta**2 * sw / 2
    want = [q1 * grow**k for k in range(4)] + [sw / 2 * q1 * grow**3]
    assert_allclose([np.diag(s) for s in ref["nngp"]], want, rtol=1e-13)
    # backward: B_4 = sigma_w^2 / 2 (readout), each residual block below multiplies by the same factor
    want_b = [[sw / 2 * grow ** (3 - k)] * 4 for k in range(1, 4)]
    assert_allclose([np.diag(b) for b in ref["backward"]][1:4], want_b, rtol=1e-13)
    ln = reference_kernels(X, mf.Network(4, "relu", sigma_w2=sw, sigma_b2=0.3, normalization="layer"))
    assert_allclose([np.diag(s) for s in ln["nngp"][1:]], np.full((3, 4), sw / 2 + 0.3), rtol=1e-13)
    # LN of a bias-free ReLU net is scale invariant: K(x, 2x) = K(x, x) beyond layer 1, backward scaled by 1/2
    Y = np.stack([X[0], 2 * X[0]])
    ln0 = reference_kernels(Y, mf.Network(4, "relu", sigma_w2=sw, normalization="layer"))
    assert_allclose(ln0["nngp"][1:, 0, 1], ln0["nngp"][1:, 0, 0], rtol=1e-13)
    assert_allclose(ln0["backward"][0, 0, 1], ln0["backward"][0, 0, 0] / 2, rtol=1e-13)


def test_reference_dropout_scales_the_diagonal_only():
    X = crossval_inputs()
    rho = 0.7
    plain = reference_kernels(X, mf.Network(2, "erf", sigma_w2=1.6, sigma_b2=0.0))
    drop = reference_kernels(X, mf.Network(2, "erf", sigma_w2=1.6, sigma_b2=0.0, dropout=rho))
    off = ~np.eye(4, dtype=bool)
    assert_allclose(drop["nngp"][1][off], plain["nngp"][1][off], rtol=1e-14)
    assert_allclose(np.diag(drop["nngp"][1]), np.diag(plain["nngp"][1]) / rho, rtol=1e-14)
    assert_allclose(np.diag(drop["backward"][0]), np.diag(plain["backward"][0]) / rho, rtol=1e-14)


# ---------------------------------------------------------------------------------------------------------------
# the theory of meanfield.kernels with the options (runs once the theory implements them)
# ---------------------------------------------------------------------------------------------------------------
THEORY_CASES = [(o, a, "ntk") for o in OPTIONS for a in ACTS] + [(o, "relu", "standard") for o in OPTIONS]


@pytest.mark.parametrize("option, activation, parameterization", THEORY_CASES)
def test_kernels_with_options_match_the_reference(option, activation, parameterization):
    X = crossval_inputs()
    net = make_net(option, activation, width=300, parameterization=parameterization)
    try:
        k = mf.kernels(X, net, layers=True)
    except ValueError as err:
        if "does not support" in str(err):
            pytest.skip(str(err))
        raise
    ref = reference_kernels(X, net)
    theory = {"nngp": k.nngp_layers, "backward": k.backward, "ntk_layers": k.ntk_layers, "ntk": k.ntk}
    for q in QUANTITIES:
        if theory[q] is None:  # a quantity the theory does not define for this option (documented there)
            continue
        assert_allclose(theory[q], ref[q], rtol=1e-9, atol=1e-10 * np.abs(ref[q]).max(), err_msg=q)


# ---------------------------------------------------------------------------------------------------------------
# Monte Carlo: finite networks (simulate) against the reference
# ---------------------------------------------------------------------------------------------------------------
FAST_CASES = {  # (option, activation, width, n_nets, quantities)
    "residual-beta1-relu": ("residual-beta1", "relu", 256, 120, QUANTITIES),
    "layernorm-tanh": ("layernorm", "tanh", 256, 120, QUANTITIES),
    "dropout-erf-nngp": ("dropout", "erf", 256, 120, ("nngp",)),
}


@pytest.mark.parametrize("case", list(FAST_CASES))
def test_small_monte_carlo_matches_reference(case):
    option, act, width, n_nets, qs = FAST_CASES[case]
    net = make_net(option, act, width)
    X = crossval_inputs()
    sim = simulate(X, net, n_nets, seed=7, quantities=qs, layers=True)
    z = max_z(sim, reference_kernels(X, net), qs)
    assert max(z.values()) <= Z_MAX, z


SLOW_CASES = [  # (option, activation, parameterization, width, n_nets)
    (option, act, "ntk", width, 300)
    for option in OPTIONS
    for act, width in (("relu", 512), ("erf", 256), ("tanh", 1024))
] + [
    ("residual-stable", "relu", "standard", 512, 300),
    ("layernorm", "erf", "standard", 512, 300),
    ("schedule", "tanh", "standard", 512, 300),
    ("dropout", "relu", "standard", 512, 300),
]


@pytest.fixture(scope="module")
def slow_results():
    """Largest |z| per case and quantity (filled by the slow test, printed at the end of the module)."""
    out = {}
    yield out
    if out:
        print("\nlargest |z| per option:")
        for key, z in sorted(out.items()):
            print(" ", key, {q: round(v, 2) for q, v in z.items()})


@pytest.mark.slow
@pytest.mark.parametrize("option, activation, parameterization, width, n_nets", SLOW_CASES)
def test_monte_carlo_matches_reference_for_every_option(
    option, activation, parameterization, width, n_nets, slow_results
):
    net = make_net(option, activation, width, parameterization)
    X = crossval_inputs()
    sim = simulate(X, net, n_nets, seed=2024, quantities=QUANTITIES, layers=True)
    z = max_z(sim, reference_kernels(X, net))
    slow_results[(option, activation, parameterization, width)] = z
    assert max(z.values()) <= Z_MAX, z


# ---------------------------------------------------------------------------------------------------------------
# width trend: the finite-width bias D(N) = E K_N - K_inf halves when the width doubles
# ---------------------------------------------------------------------------------------------------------------
TREND_CASES = {  # (option, activation, narrow width, n_nets per width, quantities)
    "residual-beta1-relu": ("residual-beta1", "relu", 32, 20000, QUANTITIES),
    "layernorm-tanh": ("layernorm", "tanh", 32, 20000, QUANTITIES),
    "dropout-relu": ("dropout", "relu", 32, 20000, ("nngp",)),
}


def width_trend(option, act, N, n_nets, qs, seed=99):
    """Per quantity: (D(N), se), (D(2N), se)."""
    X = inputs_at_correlations((0.5, -0.9), 8, 1)
    out = {}
    for width in (N, 2 * N):
        net = make_net(option, act, width)
        sim = simulate(X, net, n_nets, seed=seed, quantities=qs, layers=True)
        ref = reference_kernels(X, net)
        for q in qs:
            m, se = sim.mean(q), sim.stderr(q)
            se = np.where(se > 1e-12 * np.abs(m), se, 0.0)
            out.setdefault(q, []).append((m - ref[q], se))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case", list(TREND_CASES))
def test_finite_width_bias_halves_when_the_width_doubles(case):
    option, act, N, n_nets, qs = TREND_CASES[case]
    trend = width_trend(option, act, N, n_nets, qs)
    report = {}
    for q in qs:
        (d1, s1), (d2, s2) = trend[q]
        detected = (s1 > 0) & (np.abs(d1) > Z_MAX * s1)
        if not detected.any():
            continue
        ratio = d2[detected] / d1[detected]
        z_law = (d1 - 2 * d2)[detected] / np.sqrt(s1**2 + 4 * s2**2)[detected]
        report[q] = (float(np.median(ratio)), float(np.abs(z_law).max()), int(detected.sum()))
        assert np.abs(z_law).max() <= Z_MAX, (q, report[q])
        assert np.all(np.abs(d2[detected]) < np.abs(d1[detected]))
    print(f"\nwidth trend {case} (median D(2N)/D(N), max |z| of D(N) - 2 D(2N), entries):", report)
    assert report, "the O(1/N) bias should be resolved at the narrow width"
