"""The dispersion samplers, the first GD step and the estimator of meanfield.dispersion (Seleznova & Kutyniok 2022).

Independent references: the exact finite-width moments (z-scores at |z| <= 4 over random networks), the brute-force
MLP sampler against the projection sampler, a literal finite-difference GD step, and closed-form estimator values.
"""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from meanfield import Network
from meanfield.dispersion import (
    estimate,
    gd_step_change,
    ntk_moments,
    offdiagonal_bounds,
    offdiagonal_eq18,
    offdiagonal_mean_ratio,
    sample_ntk_diagonal,
    sample_ntk_pair,
)
from meanfield.dispersion.first_step import _gd_theta


def _net(widths, sw2):
    """``(net, d)`` of the dispersion convention from the widths ``n_0..n_{L-1}``."""
    return Network(len(widths), "relu", sw2, parameterization="standard", width=tuple(widths[1:])), widths[0]


def _moments(widths, sw2, x0sq=1.0, form="corrected"):
    """The exact (or published, Thm. 3.2) moments of the network with widths ``n_0..n_{L-1}``."""
    return ntk_moments(*_net(widths, sw2), x0sq, form=form)


def _z_scores(sample, m):
    tw, tb = sample.theta_w, sample.theta_b
    N = tw.size
    z = {}
    for name, draws, exact in (
        ("mean_w", tw, m.mean_w),
        ("mean_b", tb, m.mean_b),
        ("second_w", tw * tw, m.second_w),
        ("second_b", tb * tb, m.second_b),
        ("cross_wb", tw * tb, m.cross_wb),
    ):
        z[name] = (draws.mean() - exact) / (draws.std(ddof=1) / math.sqrt(N))
    e = estimate(tw + tb, n_boot=2, seed=0)
    z["dispersion"] = (e.naive - m.dispersion) / e.naive_stderr
    return z


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------
NET, D = _net([10, 10], 2.0)


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda: sample_ntk_diagonal(NET, D, 0), "n_nets"),
        (lambda: sample_ntk_diagonal(NET, D, 10, method="x"), "method"),
        (lambda: sample_ntk_diagonal(NET, 0, 10), "d"),
        (lambda: sample_ntk_diagonal(NET, D, 10, x0_norm2=0.0), "x0_norm2"),
        (lambda: sample_ntk_diagonal(NET.replace(activation="tanh"), D, 10), "activation"),
        (lambda: sample_ntk_diagonal(NET.replace(sigma_b2=0.1), D, 10), "sigma_b2"),
        (lambda: sample_ntk_diagonal(NET.replace(parameterization="ntk"), D, 10), "parameterization"),
        (lambda: sample_ntk_diagonal(NET.replace(width=None), D, 10), "width"),
        (lambda: sample_ntk_diagonal([10, 10], 2.0, 10), "net"),
        (lambda: sample_ntk_pair(NET, D, 1.5, 10), "rho0"),
        (lambda: estimate([1.0, 2.0]), "thetas"),
        (lambda: estimate([1.0, 2.0, 3.0], form="paper"), "form"),
        (lambda: gd_step_change(*_net([10], 2.0), 0.1, 10), "depth"),
        (lambda: gd_step_change(NET, D, 0.0, 10), "lr"),
    ],
)
def test_bad_input_names_the_parameter(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_estimator_rejects_samples_without_a_positive_mean_square_estimate():
    with pytest.raises(ValueError, match="thetas"):
        estimate([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="thetas"):
        estimate([1.0, np.nan, 2.0])


# ---------------------------------------------------------------------------------------------------------------
# estimator (Seleznova & Kutyniok 2022, App. C.3)
# ---------------------------------------------------------------------------------------------------------------


def test_estimator_reproduces_known_values_and_the_published_prefactor():
    e = estimate([1.0, 2.0, 3.0, 4.0], n_boot=50, seed=0)
    assert_allclose(e.ratio, 1.75979283874021, rtol=1e-13)
    assert e.naive == 1.2
    t = np.random.default_rng(0).lognormal(size=50)
    published = estimate(t, n_boot=2, form="published").ratio
    assert_allclose(published, estimate(t, n_boot=2).ratio * 50 / 48, rtol=1e-13)


def test_estimator_bootstrap_stderr_matches_delta_method():
    t = np.random.default_rng(1).gamma(4.0, size=4000)  # D = E[t^2]/E[t]^2 = 1 + 1/4
    e = estimate(t, n_boot=400, seed=2)
    assert_allclose(e.stderr, e.naive_stderr, rtol=0.15)  # 400 replicates: the bootstrap SE has ~4 % relative noise
    assert abs(e.ratio - 1.25) / e.stderr < 4


# ---------------------------------------------------------------------------------------------------------------
# Monte Carlo: finite networks vs the exact moments (z <= 4) and vs Seleznova & Kutyniok 2022, Thm. 3.2
# ---------------------------------------------------------------------------------------------------------------

# configurations across the phases (widths, sigma_w2, ||x0||^2)
MC_CONFIGS = [
    ([30] * 4, 2.0, 1.0),
    ([30] * 4, 2.0, 2.0),
    ([20] * 6, 2.5, 1.0),
    ([50] * 5, 1.5, 1.0),
    ([25] + [50] * 4, 1.8, 1.0),
    ([20, 30, 40, 50, 40], 2.0, 1.0),
]


@pytest.mark.parametrize("widths, sw2, x0sq", MC_CONFIGS)
def test_projection_sampler_matches_exact_moments(widths, sw2, x0sq):
    s = sample_ntk_diagonal(*_net(widths, sw2), 100_000, x0_norm2=x0sq, seed=11)
    z = _z_scores(s, _moments(widths, sw2, x0sq))
    assert max(abs(v) for v in z.values()) <= 4, z


@pytest.mark.parametrize("widths, sw2", [([20] * 4, 2.0), ([15, 25, 20], 2.6)])
def test_matmul_sampler_matches_exact_moments(widths, sw2):
    s = sample_ntk_diagonal(*_net(widths, sw2), 20_000, method="matmul", seed=3)
    z = _z_scores(s, _moments(widths, sw2))
    assert max(abs(v) for v in z.values()) <= 4, z


def test_law_sampler_matches_exact_moments():
    s = sample_ntk_diagonal(*_net([20] * 8, 2.3), 200_000, method="law", seed=4)
    z = _z_scores(s, _moments([20] * 8, 2.3))
    assert max(abs(v) for v in z.values()) <= 4, z


def test_projection_and_matmul_samplers_agree_in_distribution():
    net, d = _net([12, 16, 10, 14], 2.4)
    a = sample_ntk_diagonal(net, d, 20_000, seed=21).theta
    b = sample_ntk_diagonal(net, d, 20_000, method="matmul", seed=22).theta
    for f in (lambda t: t, lambda t: t * t, lambda t: (t < np.median(a)).astype(float)):
        x, y = f(a), f(b)
        z = (x.mean() - y.mean()) / math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
        assert abs(z) <= 4


@pytest.mark.parametrize("method", ["projection", "law", "matmul"])
def test_samples_are_identical_across_batch_sizes_and_thread_pools(method):
    from concurrent.futures import ThreadPoolExecutor

    net, d = _net([6, 8, 5], 2.2)
    ref = sample_ntk_diagonal(net, d, 37, method=method, seed=5, batch_size=37)
    with ThreadPoolExecutor(2) as ex:
        others = [sample_ntk_diagonal(net, d, 37, method=method, seed=5, batch_size=b, executor=ex) for b in (1, 8)]
    for other in others:
        assert np.array_equal(ref.theta_w, other.theta_w) and np.array_equal(ref.theta_b, other.theta_b)
    assert not np.array_equal(ref.theta, sample_ntk_diagonal(net, d, 37, method=method, seed=6).theta)


def test_simulation_rejects_thm32_but_not_the_exact_moments():
    """Seleznova & Kutyniok 2022, Thm. 3.2 under-predicts the dispersion of [20]x5, sigma_w2 = 3 by 1.4 %."""
    widths, sw2 = [20] * 5, 3.0
    s = sample_ntk_diagonal(*_net(widths, sw2), 600_000, seed=2024)
    e = estimate(s.theta, n_boot=2, seed=0)
    z_exact = (e.naive - _moments(widths, sw2).dispersion) / e.naive_stderr
    z_published = (e.naive - _moments(widths, sw2, form="published").dispersion) / e.naive_stderr
    assert abs(z_exact) <= 4
    assert z_published > 4


# ---------------------------------------------------------------------------------------------------------------
# off-diagonal Monte Carlo (Seleznova & Kutyniok 2022, Thm. 3.3) and the first GD step (Thm. 4.1)
# ---------------------------------------------------------------------------------------------------------------


def test_offdiagonal_monte_carlo_respects_thm33_and_shows_eq18_is_not_a_lower_bound():
    widths, sw2, rho0 = [50] * 5, 1.5, 0.5
    p = sample_ntk_pair(*_net(widths, sw2), rho0, 20_000, seed=7)
    N = p.off.size
    # the diagonal entries of the pair sampler follow the exact law too
    z_diag = (p.diag.mean() - _moments(widths, sw2).mean) / (p.diag.std(ddof=1) / math.sqrt(N))
    assert abs(z_diag) <= 4
    ratio = p.off.mean() / p.diag.mean()
    psi = p.off / p.diag.mean() - ratio * p.diag / p.diag.mean()
    se = psi.std(ddof=1) / math.sqrt(N)
    assert 0.25 < ratio < 1  # eq. (16)
    # the App. A.2 infinite-width mean lies below the finite-width mean ...
    z_a2 = (p.off.mean() - offdiagonal_mean_ratio(*_net(widths, sw2), rho0) * _moments(widths, sw2).mean) / (
        p.off.std(ddof=1) / math.sqrt(N)
    )
    assert z_a2 > -4
    # ... but eq. (18) overshoots the measured ratio (0.616 vs 0.703)
    assert (ratio - offdiagonal_eq18(_net(widths, sw2)[0], rho0)) / se < -4
    d_off = np.mean(p.off**2) / p.off.mean() ** 2
    assert d_off <= offdiagonal_bounds(_moments(widths, sw2).dispersion).dispersion_upper  # eq. (17)


def _literal_theta(params, x):
    """Theta(x, x) = ||grad_params f||^2 by central finite differences on an explicit parameter list."""

    def f(ps):
        h = x
        for i in range(0, len(ps) - 2, 2):
            h = np.maximum(ps[i] @ h + ps[i + 1], 0.0)
        return float(ps[-2] @ h + ps[-1][0])

    grads = []
    for i, p in enumerate(params):
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            up = [q.copy() for q in params]
            dn = [q.copy() for q in params]
            up[i][idx] += 1e-6
            dn[i][idx] -= 1e-6
            g[idx] = (f(up) - f(dn)) / 2e-6
        grads.append(g)
    return sum(float(np.sum(g * g)) for g in grads), f(params), grads


def test_gd_step_matches_literal_finite_difference_step():
    rng = np.random.default_rng(8)
    sizes = [3, 4, 5, 3]  # n_0..n_{L-1}, L = 4
    x = rng.standard_normal(3)
    Ws = [rng.standard_normal((sizes[l], sizes[l - 1])) * np.sqrt(2.2 / sizes[l - 1]) for l in range(1, 4)]
    wL = rng.standard_normal(3) * np.sqrt(2.2 / 3)
    params = []
    for W in Ws:
        params += [W, np.zeros(W.shape[0])]
    params += [wL, np.zeros(1)]
    lr, y = 0.05, 0.3
    theta0, f0, grads = _literal_theta(params, x)
    stepped = [p - lr * (f0 - y) * g for p, g in zip(params, grads, strict=True)]
    theta1, _, _ = _literal_theta(stepped, x)
    from meanfield import MLP

    net = Network(4, "relu", 2.2, 0.0, "standard", width=sizes[1:])
    mlp = MLP(net, [*Ws, wL[None]], [np.zeros(W.shape[0]) for W in Ws] + [np.zeros(1)])
    t0, t1 = _gd_theta(mlp, x[None], lr, y)
    assert_allclose([t0, t1], [theta0, theta1], rtol=1e-7)
    assert abs(theta1 - theta0) > 1e-3 * theta0  # the step is not trivial


def test_gd_step_change_grows_with_depth_in_chaos_and_is_negative():
    """Seleznova & Kutyniok 2022, Thm. 4.1: |E dTheta|/E Theta blows up in the chaotic phase.

    Measured sign: the NTK decreases.
    """
    lr = 2e-3
    shallow = gd_step_change(*_net([30] * 3, 3.0), lr, 3000, seed=3)
    deep = gd_step_change(*_net([30] * 12, 3.0), lr, 3000, seed=12)
    assert (shallow.relative_change - deep.relative_change) / math.hypot(deep.stderr, shallow.stderr) > 4
    assert deep.relative_change / deep.stderr < -4
    ordered = gd_step_change(*_net([30] * 12, 1.0), lr, 3000, seed=13)
    assert abs(ordered.relative_change) < 0.01 * abs(deep.relative_change)


# configurations of the full-scale check: widths, sigma_w2, ||x0||^2
FULL_SCALE = [
    ([30] * 4, 2.0, 1.0),
    ([30] * 4, 2.0, 2.0),
    ([30] * 6, 2.0, 1.0),
    ([20] * 6, 2.0, 1.0),
    ([40] + [20] * 4, 2.0, 1.0),
    ([20] * 6, 2.5, 1.0),
    ([50] * 5, 1.5, 1.0),
    ([25] + [50] * 4, 1.8, 1.0),
    ([20, 30, 40, 50, 40], 2.0, 1.0),
    ([20] * 3, 2.0, 1.0),
]


@pytest.mark.slow
def test_exact_moments_at_full_scale():
    """10^6 networks per configuration: every moment of the exact form within |z| <= 4.

    Prints the z(D) of Seleznova & Kutyniok 2022, Thm. 3.2.
    """
    worst = 0.0
    for i, (widths, sw2, x0sq) in enumerate(FULL_SCALE):
        s = sample_ntk_diagonal(*_net(widths, sw2), 1_000_000, x0_norm2=x0sq, seed=37 + i)
        z = _z_scores(s, _moments(widths, sw2, x0sq))
        zp = _z_scores(s, _moments(widths, sw2, x0sq, form="published"))
        print(
            widths,
            sw2,
            x0sq,
            " ".join(f"{k}={v:+.2f}" for k, v in z.items()),
            f"| Thm 3.2 z(D)={zp['dispersion']:+.2f}",
        )
        worst = max(worst, max(abs(v) for v in z.values()))
    assert worst <= 4
