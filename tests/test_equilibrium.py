"""Equilibrium Hypothesis theory of Lou et al. 2022: information loss, peak layer, asymptotics, scaling fits."""

import math
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats

from meanfield.activations import get_activation
from meanfield.equilibrium.asymptotics import (
    peak_layer_constant,
    relu_eoc_inverse_root,
    relu_eoc_one_minus_c,
    relu_eoc_slope,
)
from meanfield.equilibrium.curves import _generic_curves, _leaky_curves
from meanfield.equilibrium.information import LossModel, information_loss
from meanfield.equilibrium.peak import _crossing_fast, _scan, peak_layer
from meanfield.network import Network
from meanfield.stats import scaling_fit

FIG3_DEPTHS = np.arange(10, 101, 10)  # the depths of Lou et al. 2022, Fig. 3
RELU = Network(2)  # ReLU at the edge of chaos (2, 0); peak_layer(RELU, depths) evaluates any depths


def _slope(L, l):
    return np.polyfit(np.log(L), np.log(l), 1)[0]


def _logspaced(a, b, n=20):
    return np.unique(np.round(np.logspace(math.log10(a), math.log10(b), n)).astype(np.int64))


def _relu_curve(rho, depth):
    """s_l = 1 - c_l and log g'(c_l) (index l) of the exact ReLU EOC recursion from c_1 = rho."""
    s = np.empty((1, depth + 1))
    lg = np.empty((1, depth + 1))
    _leaky_curves(1.0, np.array([1.0 - rho]), s, lg)
    return s[0], lg[0]


# ---------------------------------------------------------------------------------------------------------------
# reference values of l*(L), recorded to 3 decimals when the method was designed
# ---------------------------------------------------------------------------------------------------------------


def test_fig3_depths_give_the_reference_peak_layers():
    assert peak_layer(RELU, FIG3_DEPTHS).l_star.tolist() == [5, 9, 12, 14, 17, 19, 21, 23, 25, 27]


def test_peak_layer_reference_table():
    L = np.array([10, 20, 50, 100, 200, 500, 1000, 10**4, 10**5])
    p = peak_layer(RELU, L)
    assert p.l_star.tolist() == [5, 9, 17, 27, 43, 80, 125, 524, 2120]
    # recorded to 3 decimals (2 for 1e4, 1e5)
    assert_allclose(p.l_cont[:7], [5.239, 8.583, 16.598, 27.044, 43.474, 79.788, 124.723], atol=6e-4)
    assert abs(p.l_cont[7] - 523.68) < 6e-3
    assert abs(p.l_cont[8] / 1e3 - 2.1204) < 1e-3


def test_peak_layer_at_a_million_layers_needs_exact_one_minus_c():
    # a plain c recursion gives 8504.7 here (its increments fall below one ulp of c); s = 1 - c gives 8484.28
    p = peak_layer(Network(10**6))
    assert p.l_star == 8484
    assert abs(p.l_cont - 8484.28) < 6e-3


def test_slope_over_every_depth_10_to_1000():
    L = np.arange(10, 1001)
    p = peak_layer(RELU, L)
    assert abs(_slope(L, p.l_star) - 0.674) < 5e-4
    assert abs(_slope(L, p.l_cont) - 0.675) < 5e-4
    # the reference C = 0.627 was recorded to 3 decimals; we get 0.62649, a last-digit rounding difference, hence 1e-3
    assert abs(scaling_fit(L, p.l_star, slope=0.6).intercept - 0.627) < 1e-3
    assert 0.6 <= _slope(L, p.l_star) <= 0.75  # a range statement only: never 0.60 +- 0.02 at these depths


def test_fig3_depth_fits():
    p = peak_layer(RELU, FIG3_DEPTHS)
    assert abs(scaling_fit(FIG3_DEPTHS, p.l_star).slope - 0.716) < 5e-4
    assert abs(scaling_fit(FIG3_DEPTHS, p.l_star, slope=0.6).intercept - 0.452) < 5e-4


def test_local_slope_tends_to_three_fifths_slowly():
    ranges = [(10, 100), (100, 10**4), (1000, 10**5), (10**4, 10**6)]
    expected = [0.715, 0.642, 0.614, 0.604]
    slopes = []
    for (a, b), e in zip(ranges, expected, strict=True):
        L = _logspaced(a, b)
        slopes.append(_slope(L, peak_layer(RELU, L).l_cont))
        assert abs(slopes[-1] - e) < 2e-3
    assert np.all(np.diff(slopes) < 0)
    assert abs(slopes[-1] - 0.6) < 0.01


def test_peak_layer_over_depth_to_three_fifths_tends_to_the_constant():
    C = peak_layer_constant()
    assert abs(C - (9 * math.pi**2 / 2) ** 0.2) < 1e-15
    assert abs(C - 2.13551) < 5e-6
    L = np.array([10**3, 10**4, 10**5, 10**6])
    ratio = peak_layer(RELU, L).l_cont / L**0.6
    assert_allclose(ratio, [1.977, 2.085, 2.120, 2.131], atol=6e-4)
    gaps = C - ratio
    assert np.all(gaps > 0) and np.all(np.diff(gaps) < 0)
    assert gaps[-1] < 0.005


def test_published_form_variant():
    p = peak_layer(RELU, FIG3_DEPTHS, form="published")
    assert p.l_star.tolist() == [4, 7, 9, 11, 14, 16, 17, 19, 21, 23]
    assert abs(scaling_fit(FIG3_DEPTHS, p.l_star).slope - 0.752) < 5e-4
    L = np.arange(10, 1001)
    q = peak_layer(RELU, L, form="published")
    assert abs(_slope(L, q.l_star) - 0.694) < 5e-4
    assert abs(scaling_fit(L, q.l_star, slope=0.6).intercept - 0.465) < 5e-4
    assert abs(peak_layer_constant("published") - 1.85907) < 5e-6
    # asymptotically the published factor 1/2 of Thm. 1 shifts l* by 2^(-1/5)
    big = Network(10**6)
    assert abs(peak_layer(big, form="published").l_cont / peak_layer(big).l_cont - 2**-0.2) < 2e-3


def test_harmonic_score_variant():
    L = np.arange(10, 1001)
    p = peak_layer(RELU, L, score="harmonic")
    assert abs(_slope(L, p.l_star) - 0.675) < 5e-4
    assert abs(peak_layer_constant(score="harmonic") - 2.316) < 5e-4
    ratio = peak_layer(Network(10**5), score="harmonic").l_cont / 1e5**0.6
    assert 0.95 * 2.316 < ratio < 2.316


@pytest.mark.parametrize("eps,slope", [(0.1, 0.725), (1.0, 0.664), (1.9, 0.658), (0.01, 0.853)])
def test_slope_sensitivity_to_eps(eps, slope):
    L = np.arange(10, 1001)
    assert abs(_slope(L, peak_layer(RELU, L, eps=eps).l_star) - slope) < 5e-4


@pytest.mark.parametrize("rho,slope", [(0.0, 0.671), (0.5, 0.702), (0.9, 0.962)])
def test_single_pair_data_set(rho, slope):
    X = np.array([[1.0, 0.0], [rho, math.sqrt(1 - rho**2)]])
    L = np.arange(10, 1001)
    with warnings.catch_warnings():
        # at rho = 0.9 the shallow depths have no sign change (l* is then argmin |D|)
        warnings.filterwarnings("ignore", "no sign change", UserWarning)
        p = peak_layer(RELU, L, pairs=X)
    assert p.curves.rho == pytest.approx((rho, rho), abs=1e-15)
    assert abs(_slope(L, p.l_star) - slope) < 5e-4


def test_data_pairs_use_the_range_of_correlations():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 8))
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    G = (U @ U.T)[np.triu_indices(30, 1)]
    il = information_loss(Network(40), pairs=X)
    assert_allclose(il.rho, (G.min(), G.max()), rtol=1e-12)
    # F from c_1 = rho_min, B from c_1 = rho_max
    s_lo, _ = _relu_curve(G.min(), 40)
    _, lg_hi = _relu_curve(G.max(), 40)
    assert_allclose(il.forward, s_lo[:40], rtol=1e-12)
    assert_allclose(il.backward[9], np.exp(lg_hi[10:40].sum()), rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# structure: monotonicity, array form, the two numerical paths
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("L", [2, 3, 10, 57, 1000])
def test_forward_decreases_backward_increases_single_crossing(L):
    il = information_loss(Network(L))
    assert np.all(np.diff(il.forward) < 0)
    assert np.all(np.diff(il.backward) > 0)
    assert il.backward[-1] == 1.0 and il.forward[0] == 2.0
    D = il.gap
    assert np.count_nonzero(np.diff(np.sign(D)) != 0) == 1
    p = peak_layer(Network(L))
    assert p.l_star == int(np.argmin(np.abs(D))) + 1
    k = int(np.argmax(D <= 0))  # first non-positive, 0-based
    assert k - 1 < p.l_cont - 1 <= k


def test_relu_eoc_curves_match_closed_form_values():
    # reference values of the ReLU edge-of-chaos recursion: c_10 from c_1 = 0 and the backward product B_1 at rho = 0
    s, lg = _relu_curve(0.0, 10)
    assert_allclose(1 - s[9], 0.8548092375, atol=1e-10)
    assert_allclose(np.exp(lg[1:10].sum()), 0.0407250335, atol=1e-10)


def test_array_form_equals_one_depth_at_a_time():
    L = np.array([2, 3, 7, 10, 33, 100, 250, 999])
    for form in ("corrected", "published"):
        for score in ("crossing", "harmonic"):
            many = peak_layer(RELU, L, form=form, score=score)
            for k, depth in enumerate(L):
                one = peak_layer(Network(int(depth)), form=form, score=score)
                assert one.l_star == many.l_star[k]
                assert_allclose(one.l_cont, many.l_cont[k], rtol=1e-13, equal_nan=True)
                assert_allclose(one.backward, many.backward[k], rtol=1e-12)


def test_fast_crossing_equals_exact_scan():
    L = np.arange(2, 3001)
    model = LossModel(Network(3000), 0.5, "corrected", None)
    l_fast, c_fast, b_fast = _crossing_fast(model, L)
    l_scan = np.empty(L.size, dtype=np.int64)
    c_scan, b_scan = np.empty(L.size), np.empty(L.size)
    _scan(model.log_f, model.S, model.Z, L, False, l_scan, c_scan, b_scan)
    assert_array_equal(l_fast, l_scan)
    assert_allclose(c_fast, c_scan, rtol=1e-12)
    assert_allclose(b_fast, b_scan, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,depth", [("relu", 3000), ("leaky_relu:0.2", 2000), ("linear", 50)])
def test_exact_leaky_path_matches_general_pair_curve(name, depth):
    act = get_activation(name)
    s0 = np.array([2.0, 0.5])
    s_gen, l_gen = _generic_curves(depth, act, 2.0, 0.0, s0)
    s_fast = np.empty((2, depth))
    l_fast = np.empty((2, depth))
    kappa = (1 - act.slope) ** 2 / (1 + act.slope**2)
    _leaky_curves(kappa, s0, s_fast, l_fast)
    assert_allclose(s_fast, s_gen, rtol=1e-11)
    finite = np.isfinite(l_gen)
    assert_array_equal(finite, np.isfinite(l_fast))
    assert_allclose(np.cumsum(np.where(finite, l_fast, 0), axis=1), np.cumsum(np.where(finite, l_gen, 0), axis=1),
                    rtol=1e-11, atol=1e-13)  # fmt: skip


def test_other_settings_warn_and_still_cross():
    # erf on its edge-of-chaos curve at q* = 1 (meanfield.edge_of_chaos): the generalized definitions, with a warning
    with pytest.warns(UserWarning, match="proven only for ReLU"):
        p = peak_layer(Network(40, "erf", sigma_w2=1.756204, sigma_b2=0.1841397), [10, 20, 40])
    assert np.all(np.diff(p.l_star) >= 0) and np.all(p.l_star >= 1)
    assert np.all(np.isfinite(p.l_cont))
    with pytest.warns(UserWarning, match="proven only for ReLU"):
        information_loss(Network(10, sigma_w2=1.5))


def test_relu_eoc_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        peak_layer(Network(100))


def test_odd_activation_without_crossing_says_so():
    # erf at (pi/4, 0): c = -1 is a fixed point, so sup(1 - c_l) = 2 forever and the backward sup is 1
    with pytest.warns(UserWarning, match="no sign change"):
        warnings.filterwarnings("ignore", "the L", UserWarning)
        p = peak_layer(Network(12, "erf", sigma_w2=math.pi / 4))
    assert math.isnan(p.l_cont)


# ---------------------------------------------------------------------------------------------------------------
# asymptotic forms (meanfield.equilibrium.asymptotics): the recursion converges to them at the stated rates
# ---------------------------------------------------------------------------------------------------------------

_DECADES = np.array([10**3, 10**4, 10**5, 10**6])


@pytest.fixture(scope="module")
def relu_rho0():
    return _relu_curve(0.0, 10**6)


def test_one_minus_c_asymptote_error_falls_like_one_over_l(relu_rho0):
    s, _ = relu_rho0
    assert_allclose((_DECADES[:2] ** 2 * s[_DECADES[:2] - 1]), [43.215, 44.261], atol=6e-4)
    err = np.abs(s[_DECADES - 1] / relu_eoc_one_minus_c(_DECADES) - 1)
    # O(l^-3) remainder: the relative error falls tenfold per decade (from above, by log l / l corrections)
    ratios = err[1:] / err[:-1]
    assert np.all(ratios > 0.1) and np.all(np.diff(ratios) < 0) and ratios[-1] < 0.1005


def test_inverse_root_asymptote_converges_to_its_constant(relu_rho0):
    s, _ = relu_rho0
    C = s[_DECADES - 1] ** -0.5 - relu_eoc_inverse_root(_DECADES)
    assert abs(C[2] - 0.50870) < 5e-5
    assert abs(C[2] - C[1]) < 3.5e-4
    assert np.all(np.abs(np.diff(C[1:])) < np.abs(np.diff(C[:-1])) / 5)


def test_slope_asymptote_log_coefficient_is_nine_halves(relu_rho0):
    _, lg = relu_rho0
    gp = np.exp(lg[_DECADES])  # g'(c_l) sits at index l
    y = (gp - 1 + 3 / _DECADES) * _DECADES**2
    slopes = np.diff(y) / np.diff(np.log(_DECADES))
    assert_allclose(slopes, [4.690, 4.531, 4.505], atol=6e-4)
    # remainder of relu_eoc_slope is O(l^-2): l^2 (g' - asymptote) settles to a constant
    rem = (gp - relu_eoc_slope(_DECADES)) * _DECADES**2
    assert np.all(np.abs(np.diff(rem)) < np.abs(rem[:-1]) * 0.1)


def test_lemma2_has_a_constant_and_a_negative_log_term(relu_rho0):
    # Lou et al. 2022, Lemma 2 prints log(zeta_l l^3) = +kappa log l / l + O(1/l); what holds is
    # log r_inf - kappa log l / l + O(1/l): a constant R = log r_inf = 5.2815 approached from below, kappa = 9/2
    _, lg = relu_rho0
    log_zeta = np.concatenate([[0.0, 0.0], np.cumsum(lg[1:])])  # log zeta_l = sum_{k=1}^{l-1} log g'(c_k)
    y = log_zeta[_DECADES] + 3 * np.log(_DECADES)
    assert_allclose(y, [5.2420, 5.2765, 5.2809, 5.2815], atol=6e-4)
    assert np.all(np.diff(y) > 0)
    l = _logspaced(10**4, 10**6, 200)
    A = np.stack([np.ones(l.size), np.log(l) / l, 1.0 / l], axis=1)
    R, k, _ = np.linalg.lstsq(A, log_zeta[l] + 3 * np.log(l), rcond=None)[0]
    assert abs(R - 5.2815) < 1e-3
    assert abs(k + 4.5) < 0.05


def test_backward_product_tends_to_cube_of_layer_ratio():
    _, lg = _relu_curve(0.5, 10**6)
    S = np.concatenate([[0.0], np.cumsum(lg[1:])])  # S[m-1] = sum_{k<m} log g'(c_k)
    vals = [(L / l) ** 3 * np.exp(S[L - 1] - S[l - 1]) for l, L in [(100, 10**4), (1000, 10**5), (10**4, 10**6)]]
    assert_allclose(vals, [1.396, 1.046, 1.0056], atol=6e-4)


def test_asymptote_helpers_reject_bad_layers():
    for fn in (relu_eoc_one_minus_c, relu_eoc_slope, relu_eoc_inverse_root):
        with pytest.raises(ValueError, match="l must be"):
            fn(0.5)
        with pytest.raises(ValueError, match="l must be"):
            fn([10, np.nan])


# ---------------------------------------------------------------------------------------------------------------
# scaling_fit and bad arguments
# ---------------------------------------------------------------------------------------------------------------


def test_scaling_fit_matches_linregress():
    rng = np.random.default_rng(1)
    L = np.arange(10, 101, 10)
    l = 1.7 * L**0.65 * np.exp(0.05 * rng.standard_normal(L.size))
    fit = scaling_fit(L, l)
    ref = stats.linregress(np.log(L), np.log(l))
    assert_allclose([fit.slope, fit.intercept, fit.slope_stderr, fit.intercept_stderr],
                    [ref.slope, ref.intercept, ref.stderr, ref.intercept_stderr], rtol=1e-12)  # fmt: skip
    fixed = scaling_fit(L, l, slope=0.6)
    r = np.log(l) - 0.6 * np.log(L)
    assert fixed.fixed and fixed.slope == 0.6
    assert_allclose([fixed.intercept, fixed.intercept_stderr], [r.mean(), r.std(ddof=1) / math.sqrt(L.size)],
                    rtol=1e-13)  # fmt: skip
    assert fixed.prefactor == pytest.approx(math.exp(r.mean()), rel=1e-14)


@pytest.mark.parametrize(
    "net,kwargs,match",
    [
        (dict(depth=1), {}, "depth must be in"),
        (dict(depth=10), dict(depths=[10, 1]), "depth must be in"),
        (dict(depth=10), dict(depths=2.5), "depth must hold integers"),
        (dict(depth=10), dict(depths=[]), "depth must not be empty"),
        (dict(depth=10), dict(depths="10"), "depth must be an integer"),
        (dict(depth=10), dict(eps=0.0), r"eps must be in \(0, 2\)"),
        (dict(depth=10), dict(eps=2.0), r"eps must be in \(0, 2\)"),
        (dict(depth=10), dict(eps=-0.1), r"eps must be in \(0, 2\)"),
        (dict(depth=10), dict(form="absolute"), "form must be one of"),
        (dict(depth=10), dict(score="product"), "score must be one of"),
        (dict(depth=10, sigma_w2=-1.0), {}, "sigma_w2 must be"),
        (dict(depth=10), dict(pairs=np.ones((1, 3))), "at least 2 inputs"),
        (dict(depth=10), dict(pairs=np.array([[1.0, 2.0], [2.0, 4.0]])), "parallel"),
        (dict(depth=10), dict(pairs=np.array([[1.0, 2.0], [0.0, 0.0]])), "zero row"),
        (None, {}, "must be a meanfield.Network"),
    ],
)
def test_bad_arguments_raise_clear_errors(net, kwargs, match):
    with pytest.raises(ValueError, match=match):
        peak_layer(10 if net is None else Network(**net), **kwargs)


def test_bad_fit_arguments():
    with pytest.raises(ValueError, match="same length"):
        scaling_fit([10, 20, 30], [1, 2])
    with pytest.raises(ValueError, match="> 0"):
        scaling_fit([10, 20, 30], [1, 0, 2])
    with pytest.raises(ValueError, match="at least 3"):
        scaling_fit([10, 20], [3, 5])
    with pytest.raises(ValueError, match="must be a meanfield.Network"):
        information_loss(10)


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli():
    import meanfield.cli as c

    assert "peak-layer" in c.COMMANDS
    return c


def test_cli_json_output_matches_library(cli, capsys):
    import json

    assert cli.main(["peak-layer", "--depth", "10:100:10", "1000", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["depth"] == [*range(10, 101, 10), 1000]
    assert data["l_star"] == [5, 9, 12, 14, 17, 19, 21, 23, 25, 27, 125]
    ref = peak_layer(RELU, np.array(data["depth"]))
    assert_allclose(data["l_cont"], ref.l_cont, rtol=1e-15)
    assert_allclose(data["asymptote"], (4.5 * math.pi**2) ** 0.2 * np.array(data["depth"]) ** 0.6, rtol=1e-14)
    assert data["fit"]["slope"] == pytest.approx(scaling_fit(ref.depth, ref.l_star).slope, rel=1e-14)
    assert data["warnings"] == []


def test_cli_table_and_range(cli, capsys):
    assert cli.main(["peak-layer", "--depth", "10", "20", "50", "100", "1000"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["L", "l*", "l_cont", "C*L^(3/5)", "F(l*)", "B(l*)"]
    assert [line.split()[:2] for line in out[1:6]] == [["10", "5"], ["20", "9"], ["50", "17"], ["100", "27"],
                                                       ["1000", "125"]]  # fmt: skip
    assert "slope 0.69" in out[6]
    assert cli.main(["peak-layer", "--depth", "10:1000", "--json"]) == 0
    import json

    assert len(json.loads(capsys.readouterr().out)["depth"]) == 991


def test_cli_options_reach_the_library(cli, capsys):
    import json

    assert cli.main(["peak-layer", "--depth", "10:100:10", "--form", "published", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["l_star"] == [4, 7, 9, 11, 14, 16, 17, 19, 21, 23]
    assert cli.main(["peak-layer", "--depth", "50", "--score", "harmonic", "--eps", "0.3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["l_star"] == [peak_layer(Network(50), eps=0.3, score="harmonic").l_star]
    assert cli.main(["peak-layer", "--depth", "20", "--sigma-w2", "1.9", "--json"]) == 0
    assert "proven only for ReLU" in json.loads(capsys.readouterr().out)["warnings"][0]


def test_cli_plot_writes_png(cli, tmp_path, capsys):
    path = tmp_path / "l_star.png"
    assert cli.main(["peak-layer", "--depth", "10:200:10", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plot written" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--depth", "1"], "depth must be in"),
        (["--depth", "10", "--eps", "2"], "eps must be in"),
        (["--depth", "10:x"], "integers or ranges"),
        (["--depth", "100:10"], "a <= b"),
        (["--depth", "10", "--sigma-w2", "0"], "sigma_w2"),
    ],
)
def test_cli_bad_arguments_exit_2_in_one_line(cli, capsys, argv, match):
    assert cli.main(["peak-layer", *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_cli_unknown_form_is_rejected(cli, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["peak-layer", "--depth", "10", "--form", "absolute"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
