"""Tests of meanfield.dispersion against reference values, sympy, mpmath and Monte Carlo.

The exact moments and the corrected limits are derived here (see the Notes of
:func:`meanfield.dispersion.ntk_moments` and :func:`meanfield.dispersion.dispersion_limit_expr`); their reference
values come from an independent implementation (>= 13 digits) and from the closed forms in mpmath (30 digits). The
published values are Seleznova & Kutyniok 2022, Thms. 3.1 and 3.2, evaluated the same way.
"""

import math

import mpmath as mp
import numpy as np
import pytest
import sympy as sp
from numpy.testing import assert_allclose

from meanfield import Network
from meanfield.dispersion import (
    dispersion_limit,
    dispersion_limit_expr,
    ntk_moments,
    offdiagonal_bounds,
    offdiagonal_eq18,
    offdiagonal_mean_ratio,
)
from meanfield.gaussian import correlation_map, correlation_slope

FIELDS = ("mean_w", "mean_b", "second_w", "second_b", "cross_wb", "dispersion")


def _sp(widths, sigma_w2):
    """The SP ReLU network without biases of widths ``n_0..n_{L-1}``, and its input dimension ``n_0``."""
    return Network(len(widths), "relu", sigma_w2, 0.0, "standard", width=tuple(widths[1:])), widths[0]


def _moments(widths, sigma_w2, x0_norm2=1.0, form="corrected"):
    return ntk_moments(*_sp(widths, sigma_w2), x0_norm2, form=form)


# exact finite-width moments (widths, sigma_w2, ||x0||^2, values), from an independent implementation
EXACT_TABLE = [
    ([3, 4, 5], 2, 1, (4, 3, 50, 15.5, 65 / 3, 2.22108843537415)),
    ([3, 4, 5], 3, 2, (18, 4.75, 1012.5, 49.28125, 174.375, 2.72533510445598)),
    (
        [100] * 50,
        1.5,
        1,
        (
            3.77547770951292e-5,
            3.99999773471337,
            9.97553578483904e-9,
            17.0992153209522,
            1.75720793467993e-4,
            1.06870395931855,
        ),
    ),
    ([100] * 50, 2, 1, (50, 50, 17495.7441241096, 6583.26782431802, 7621.67316197936, 3.93223582723863)),
    (
        [100] * 50,
        2.5,
        1,
        (
            2802596.92864964,
            280255.692864964,
            5.49684756161206e13,
            6.50268764644751e11,
            4.28061735179259e12,
            6.75295793479608,
        ),
    ),
    ([50] + [100] * 9, 2, 1, (19, 10, 499.429329503537, 115.693593957502, 223.143249498255, 1.26208016939066)),
    ([30] * 6, 2, 1, (6, 6, 63.1953371193416, 46.6868569958848, 48.4911039506173, 1.43655834733653)),
    (
        [20] * 6,
        2.5,
        1,
        (18.310546875, 11.2587890625, 771.104625891894, 220.510208708234, 354.726921068505, 1.94553346260451),
    ),
]

# Seleznova & Kutyniok 2022, Thm. 3.2 as published (eq. (13) as its proof derives it); sigma_w2 = 2a
PUBLISHED_TABLE = [
    ([3, 4, 5], 2, 1, (4, 3, 146 / 3, 15.5, 21, 13 / 6)),
    ([3, 4, 5], 3, 2, (18, 4.75, 985.5, 49.28125, 167.625, 2.64708368554522)),
    (
        [100] * 50,
        1.5,
        1,
        (
            3.77547770951292e-5,
            3.99999773471337,
            8.9637385463763e-9,
            17.0992153209522,
            1.75600434223901e-4,
            1.06870394421068,
        ),
    ),
    ([100] * 50, 2, 1, (50, 50, 15721.1882534836, 6583.26782431801, 7054.64945166635, 3.64137549811343)),
    (
        [100] * 50,
        2.5,
        1,
        (
            2802596.92864963,
            280255.692864963,
            4.93931408140107e13,
            6.50268764644743e11,
            3.62286220829552e12,
            6.02790959907201,
        ),
    ),
    ([50] + [100] * 9, 2, 1, (19, 10, 497.284071095601, 115.693593957502, 222.535433676135, 1.25808386730722)),
]


@pytest.mark.parametrize("widths, sw2, x0sq, values", EXACT_TABLE)
def test_exact_moments_reproduce_reference_table(widths, sw2, x0sq, values):
    m = _moments(widths, sw2, x0sq)
    assert_allclose([getattr(m, f) for f in FIELDS], values, rtol=1e-12)
    assert_allclose(m.mean, m.mean_w + m.mean_b, rtol=1e-15)
    assert_allclose(m.second, m.second_w + 2 * m.cross_wb + m.second_b, rtol=1e-14)


@pytest.mark.parametrize("widths, sw2, x0sq, values", PUBLISHED_TABLE)
def test_published_moments_reproduce_reference_table(widths, sw2, x0sq, values):
    m = _moments(widths, sw2, x0sq, form="published")
    assert_allclose([getattr(m, f) for f in FIELDS], values, rtol=1e-12)


@pytest.mark.parametrize(
    "profile, sw2, value",
    [
        ("a", 1.8, 1.05281962203237),
        ("b", 1.8, 1.07792819095779),
        ("c", 1.8, 1.19102339430880),
        ("a", 2.0, 2.01447243535988),
        ("b", 2.0, 1.60553609021191),
        ("c", 2.0, 1.98220988498961),
    ],
)
def test_published_fig6_architectures_reproduce_reference(profile, sw2, value):
    L, m1, m2 = 60, 100, 500
    widths = {
        "a": [m1 + math.ceil(l * (m2 - m1) / L) for l in range(L)],
        "b": [math.ceil((m1 + m2) / 2)] * L,
        "c": [m2 + math.ceil(l * (m1 - m2) / L) for l in range(L)],
    }[profile]
    assert_allclose(_moments(widths, sw2, form="published").dispersion, value, rtol=1e-12)


def _literal_moments(widths, sw2, x0sq):
    """O(L^4) mpmath enumeration of every pair of terms of the exact scalar law (ntk_moments Notes), not a DP.

    A term is (type, l, p): weight or bias term of layer l whose ||delta^l||^2 takes the f^2/X_p injection at
    layer p (p = None: the pure backward chain). Per layer q its factor is F (forward), B (backward) or 1.
    """
    n = [mp.mpf(v) for v in widths]
    L = len(n)
    s2 = mp.mpf(sw2)
    E1 = {}
    E2 = {}
    for q in range(1, L):
        c, cp, m = s2 / n[q], s2 / n[q - 1], n[q]
        f, b = cp * m / 2, c * (m / 2 - 1)
        E1[q] = {"F": f, "B": b, "1": 1}
        E2[q] = {
            ("F", "F"): cp**2 * m * (m + 5) / 4,
            ("B", "B"): c**2 * (m**2 + m - 4) / 4,
            ("F", "B"): c * cp * m * (m - 1) / 4,
            ("B", "F"): c * cp * m * (m - 1) / 4,
        }
        for k, v in (("F", f), ("B", b)):
            E2[q][(k, "1")] = E2[q][("1", k)] = v
        E2[q][("1", "1")] = 1
    cL = s2 / n[-1]

    def terms(kind):
        for l in range(1, L + 1):
            for p in [None] + list(range(l, L)):
                fac = {}
                for q in range(1, L):
                    if q < l:
                        fac[q] = "F" if kind == "W" else "1"
                    elif p is None or q < p:
                        fac[q] = "B"
                    elif q == p:
                        fac[q] = "1"
                    else:
                        fac[q] = "F"
                yield (x0sq if kind == "W" else 1), fac, p is not None

    def first(kind):
        return sum(w * mp.fprod(E1[q][f[q]] for q in f) * (cL if inj else 1) for w, f, inj in terms(kind))

    def second(k1, k2):
        tot = mp.mpf(0)
        for w1, f1, i1 in terms(k1):
            for w2, f2, i2 in terms(k2):
                fin = (3 * cL**2) if (i1 and i2) else ((cL if i1 else 1) * (cL if i2 else 1))
                tot += w1 * w2 * mp.fprod(E2[q][(f1[q], f2[q])] for q in f1) * fin
        return tot

    return [first("W"), first("b"), second("W", "W"), second("b", "b"), second("W", "b")]


@pytest.mark.parametrize(
    "widths, sw2, x0sq", [([3, 4, 5], 2.0, 1.0), ([7, 3, 9, 4], 2.6, 0.7), ([5, 6, 2, 8, 3], 1.3, 1.9), ([4], 2.0, 2.0)]
)
def test_moment_dp_equals_literal_pair_enumeration(widths, sw2, x0sq):
    m = _moments(widths, sw2, x0sq)
    ref = [float(v) for v in _literal_moments(widths, sw2, x0sq)]
    assert_allclose([m.mean_w, m.mean_b, m.second_w, m.second_b, m.cross_wb], ref, rtol=1e-13)


def test_exact_and_published_share_eqs_11_12_14_and_differ_in_13_15():
    rng = np.random.default_rng(5)
    for _ in range(5):
        widths = rng.integers(5, 60, size=rng.integers(2, 9))
        sw2, x0sq = rng.uniform(0.5, 3.5), rng.uniform(0.3, 3)
        ex, pa = _moments(widths, sw2, x0sq), _moments(widths, sw2, x0sq, form="published")
        assert_allclose([ex.mean_w, ex.mean_b, ex.second_b], [pa.mean_w, pa.mean_b, pa.second_b], rtol=1e-12)
    ex, pa = _moments([20, 20, 20], 2.0), _moments([20, 20, 20], 2.0, form="published")
    # E||delta^1||^2||x^2||^2 carries the extra a^4 (n2/n0) 8/(n1 n2) that Thm. 3.2 drops (x2 in E[Theta_W^2])
    assert_allclose(ex.second_w - pa.second_w, 2 * 8 / 400, rtol=1e-12)
    assert_allclose(ex.cross_wb - pa.cross_wb, 8 / 400, rtol=1e-12)


def test_printed_eq13_is_impossible_and_the_published_form_follows_its_proof():
    """Thm. 3.2, eq. (13) as printed, ``X(1,L) [sum r_l^2 + sum_{l1<l2} r_l1 r_l2 C(l1,l2)]``, gives
    ``E[Theta_W^2] < E[Theta_W]^2`` (impossible); form="published" takes the cross term from the proof of
    Lemma A.5, ``2 sum_{l1<l2} r_l1 r_l2 X(1,l1) C(l1,l2) X(l2,L)``."""
    M, L, a = 10_000, 100, 1.25  # lambda = 0.01, chaotic
    d = np.arange(1, L)
    printed = (1 + 5 / M) ** (L - 1) * (L + np.sum((L - d) * (1 + 1 / M) ** d))  # / a^(2(L-1)); r_l = 1
    assert_allclose(printed / L**2, 0.532375304059618, rtol=1e-12)  # E[Theta_W^2] / E[Theta_W]^2 < 1
    m = _moments([M] * L, 2 * a, form="published")
    assert m.second_w > m.mean_w**2
    # the full dispersion of eqs. (11), (12), (13) from its proof, (14), (15): literal mpmath sums, 30 digits
    assert_allclose(m.dispersion, 1.03624234947701904632576393928, rtol=1e-12)


def test_depth_one_network_is_deterministic():
    m = ntk_moments(Network(1, "relu", 2.3, 0.0, "standard", width=()), 7, x0_norm2=1.7)
    assert_allclose([m.mean_w, m.mean_b, m.second, m.dispersion], [1.7, 1.0, 2.7**2, 1.0], rtol=1e-15)


def test_moments_are_overflow_free_at_depth_1e5():
    m = _moments([10**5] * 10**5, 3.0)  # lambda = 1, moments ~ 1.5^(1e5)
    assert math.isinf(m.mean) and math.isinf(m.second)
    assert_allclose(m.log_mean_w, (10**5 - 1) * math.log(1.5) + math.log(10**5), rtol=1e-12)  # eq. (11)
    assert_allclose(m.dispersion, dispersion_limit("chaotic", 1.0), rtol=2e-3)
    small = _moments([10**3] * 10**4, 1.5)  # ordered: E[Theta_W] underflows, its log does not
    assert small.mean_w == 0.0 and math.isfinite(small.log_mean_w)
    assert_allclose(small.log_mean_w, (10**4 - 1) * math.log(0.75) + math.log(10**4), rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------------------------------------------

LIMITS = [  # (phase, lam, alpha0, corrected, published), mpmath at 30 digits
    ("chaotic", 0.1, 1, 1.45827342266267, 1.44922694569463),
    ("chaotic", 0.25, 1, 2.65913491874051, 2.56805083337548),
    ("chaotic", 0.5, 1, 7.76031555447443, 6.91560761570180),
    ("chaotic", 1, 1, 76.9685965510090, 55.9947198920236),
    ("chaotic", 2, 1, 9585.59284899258, 4818.52030061706),
    ("eoc", 0.1, 0.1, 1.41556484725331, 1.40741185473772),
    ("eoc", 0.1, 0.5, 1.31956785260092, 1.31372798733549),
    ("eoc", 0.1, 1, 1.26866674921050, 1.26435852002890),
    ("eoc", 0.1, 2, 1.23006676691371, 1.22724239397095),
    ("eoc", 0.5, 0.1, 6.97136425792880, 6.23040240281543),
    ("eoc", 0.5, 0.5, 5.19607606935848, 4.70541497231609),
    ("eoc", 0.5, 1, 4.25280644783782, 3.91198969835829),
    ("eoc", 0.5, 2, 3.53543690700871, 3.32634512289053),
    ("eoc", 1, 0.1, 66.4865249482268, 48.4596472658918),
    ("eoc", 1, 0.5, 42.9545334570566, 31.7691541938632),
    ("eoc", 1, 1, 30.5058325924622, 23.1657500861160),
    ("eoc", 1, 2, 21.0960188494556, 16.9019318059241),
    ("eoc", 2, 0.1, 8091.44981095521, 4067.71746004249),
    ("eoc", 2, 0.5, 4755.09414377240, 2410.52057509692),
    ("eoc", 2, 1, 3008.12136398282, 1562.24423631678),
    ("eoc", 2, 2, 1706.66629940692, 951.116913523274),
]


@pytest.mark.parametrize("phase, lam, a0, corrected, published", LIMITS)
def test_limits_reproduce_reference_tables(phase, lam, a0, corrected, published):
    assert_allclose(dispersion_limit(phase, lam, alpha0=a0), corrected, rtol=1e-12)
    assert_allclose(dispersion_limit(phase, lam, alpha0=a0, form="published"), published, rtol=1e-12)


def test_limit_is_vectorized_and_ordered_phase_is_one():
    lam = np.array([0.1, 0.5, 1.0])
    a0 = np.array([[0.5], [2.0]])
    out = dispersion_limit("eoc", lam, alpha0=a0)
    assert out.shape == (2, 3)
    assert_allclose(out[1, 1], 3.53543690700871, rtol=1e-12)
    assert_allclose(dispersion_limit(1.2, lam), 1.0)
    assert dispersion_limit(2.5, 0.5) == dispersion_limit("chaotic", 0.5)
    assert dispersion_limit(2.0, 0.5) == dispersion_limit("eoc", 0.5)


def test_limit_small_lambda_uses_stable_evaluation():
    lam = np.array([1e-9, 1e-6, 1e-3, 0.049, 0.051])
    for phase, slope in (("chaotic", 11 / 3), ("eoc", (5 + 11 + 11) / 12)):
        out = dispersion_limit(phase, lam)
        assert_allclose(out[:2] - 1, slope * lam[:2], rtol=1e-5)
        assert np.all(np.diff(out) > 0)
    # continuity across the switch between mpmath and float64 evaluation
    assert_allclose(dispersion_limit("chaotic", 0.05 - 1e-12), dispersion_limit("chaotic", 0.05), rtol=1e-10)


def test_limit_large_lambda_overflows_to_inf_only_when_the_value_does():
    assert_allclose(dispersion_limit("eoc", 130.0) / math.exp(5 * 130.0), 1 / 12, rtol=1e-2)
    assert dispersion_limit("chaotic", 200.0) == math.inf


LAM, A0 = sp.symbols("lam alpha0", positive=True)


def test_symbolic_eq9_equals_eq41():
    E = sp.exp
    l, a = LAM, A0
    eq41 = (
        E(5 * l) * (sp.Rational(1, 2) + (16 * a**2 + 36 * a - 25) / (200 * l))
        + E(l) * (1 - 4 * a) / (8 * l)
        + 2 * a * (4 - a) / (25 * l)
        - 2 * a * (1 + a) / 5
    ) / ((1 + a) ** 2 * l)
    assert sp.simplify(dispersion_limit_expr("eoc", "published") - eq41) == 0


@pytest.mark.parametrize(
    "phase, form, coeffs",
    [
        ("chaotic", "corrected", [1, sp.Rational(11, 3), sp.Rational(47, 6)]),
        ("chaotic", "published", [1, sp.Rational(11, 3), sp.Rational(43, 6)]),
        ("eoc", "corrected", [1, (5 * A0**2 + 11 * A0 + 11) / (3 * (1 + A0) ** 2)]),
        ("eoc", "published", [1, (5 * A0**2 + 11 * A0 + 11) / (3 * (1 + A0) ** 2)]),
    ],
)
def test_symbolic_series_at_small_lambda(phase, form, coeffs):
    ser = sp.series(dispersion_limit_expr(phase, form), LAM, 0, len(coeffs)).removeO()
    for k, c in enumerate(coeffs):
        assert sp.simplify(ser.coeff(LAM, k) - c) == 0


def test_symbolic_alpha0_limits_of_eoc():
    bias_only = 2 * (sp.exp(5 * LAM) - 1) / (25 * LAM**2) - sp.Rational(2, 5) / LAM  # eq. (34)
    for form in ("corrected", "published"):
        eoc = dispersion_limit_expr("eoc", form)
        assert sp.simplify(sp.limit(eoc, A0, 0) - dispersion_limit_expr("chaotic", form)) == 0  # Remark 1
        assert sp.simplify(sp.limit(eoc, A0, sp.oo) - bias_only) == 0
    # bias-only EOC series 1 + 5 lam/3 + 25 lam^2/12
    assert sp.series(bias_only, LAM, 0, 3).removeO() == 1 + 5 * LAM / 3 + sp.Rational(25, 12) * LAM**2


def test_symbolic_large_lambda_asymptotics():
    ch = dispersion_limit_expr("chaotic")
    eoc = dispersion_limit_expr("eoc")
    assert sp.limit(ch * sp.exp(-5 * LAM), LAM, sp.oo) == sp.Rational(1, 3)
    assert sp.simplify(sp.limit(eoc * sp.exp(-5 * LAM), LAM, sp.oo) - 1 / (3 * (1 + A0) ** 2)) == 0
    assert sp.limit(dispersion_limit_expr("chaotic", "published") * LAM * sp.exp(-5 * LAM), LAM, sp.oo) == sp.S.Half


@pytest.mark.parametrize(
    "sw2, lam, a0",
    [(2.5, 0.5, 1.0), (4.0, 0.25, 1.0), (2.0, 0.5, 1.0), (2.0, 1.0, 0.5), (1.5, 0.5, 1.0), (1.8, 1.0, 1.0)],
)
def test_exact_moments_converge_to_corrected_limit_at_rate_one_over_m(sw2, lam, a0):
    limit = dispersion_limit(sw2, lam, alpha0=a0)
    errs = []
    for M in (1000, 10000):
        D = _moments([int(a0 * M)] + [M] * (int(lam * M) - 1), sw2).dispersion
        errs.append(D - limit)
    assert abs(errs[1]) < 1e-2 * limit  # close at M = 1e4
    assert_allclose(errs[0] / errs[1], 10.0, rtol=0.03)  # O(1/M): the error drops by 10 per decade


def test_published_finite_width_converges_to_published_limit_not_to_the_exact_moments():
    M, lam = 10000, 1.0
    widths = [M] * int(lam * M)
    published = _moments(widths, 2.0, form="published").dispersion
    # Thm. 3.2 (eq. (13) as its proof derives it) tends to Thm. 3.1 at rate 1/M: -1.34e-3 at M = 1e4
    assert_allclose(published / dispersion_limit("eoc", lam, form="published") - 1, -1.34e-3, atol=2e-5)
    exact = _moments(widths, 2.0).dispersion
    assert exact / published - 1 > 0.3  # Thm. 3.2 is off by ~32 % at lambda = 1 (Lemma A.4's coupling)


# ---------------------------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda: _moments([10, 10], 0.0), "sigma_w2"),
        (lambda: _moments([10, 10], -2.0), "sigma_w2"),
        (lambda: _moments([10, 0], 2.0), "width"),
        (lambda: _moments([10, 2.5], 2.0), "width"),
        (lambda: _moments([], 2.0), "depth"),
        (lambda: ntk_moments(Network(2, "relu", 2.0, 0.0, "standard", width=10), 0), "d"),
        (lambda: ntk_moments(Network(2, "relu", 2.0, 0.0, "standard"), 10), "width"),
        (lambda: ntk_moments(Network(2, "tanh", 2.0, 0.0, "standard", width=10), 10), "activation"),
        (lambda: ntk_moments(Network(2, "relu", 2.0, 0.1, "standard", width=10), 10), "sigma_b2"),
        (lambda: ntk_moments(Network(2, "relu", 2.0, 0.0, "ntk", width=10), 10), "parameterization"),
        (lambda: ntk_moments([10, 10], 2.0), "net"),
        (lambda: _moments([10, 10], 2.0, x0_norm2=0), "x0_norm2"),
        (lambda: _moments([10, 10], 2.0, form="thm"), "form"),
        (lambda: dispersion_limit("eoc", 0.0), "lam"),
        (lambda: dispersion_limit("eoc", [0.5, -1.0]), "lam"),
        (lambda: dispersion_limit("eoc", 0.5, alpha0=0), "alpha0"),
        (lambda: dispersion_limit("critical", 0.5), "phase"),
        (lambda: dispersion_limit(-1.0, 0.5), "sigma_w2"),
        (lambda: dispersion_limit("eoc", 0.5, form="x"), "form"),
        (lambda: offdiagonal_mean_ratio(*_sp([10, 10], 2.0), 1.5), "rho0"),
        (lambda: offdiagonal_eq18(Network(0, "relu", 1.5, 0.0, "standard"), 0.5), "depth"),
        (lambda: offdiagonal_eq18(Network(3, "erf", 1.5, 0.0, "standard"), 0.5), "activation"),
        (lambda: offdiagonal_bounds(0.5), "diagonal_dispersion"),
    ],
)
def test_bad_input_names_the_parameter(call, word):
    with pytest.raises(ValueError, match=word):
        call()


# ---------------------------------------------------------------------------------------------------------------
# off-diagonal helpers
# ---------------------------------------------------------------------------------------------------------------


def _eq18(depth, sw2, rho0):
    return offdiagonal_eq18(Network(depth, "relu", sw2, 0.0, "standard"), rho0)


def test_relu_maps_and_eq18_reproduce_reference():
    # the ReLU correlation map r and its slope g of Thm. 3.3 are meanfield.gaussian's maps at sigma_w2 = 2
    assert_allclose(correlation_map(0.5, "relu"), 0.608997781044229, rtol=1e-14)
    assert_allclose(correlation_slope(0.5, "relu"), 2 / 3, rtol=1e-15)
    assert_allclose(_eq18(10, 1.5, 0.5), 0.683137044588, rtol=1e-11)
    assert_allclose(_eq18(50, 1.5, 0.1), 0.861441509970, rtol=1e-11)
    assert_allclose(_eq18(20, 1.8, 0.9), 0.634648586311, rtol=1e-11)
    # the App. A.2 numerator for [50]x5, sigma_w2 = 1.5, rho0 = 0.5 (2.8114), over eqs. (11)+(12)
    den = _moments([50] * 5, 1.5).mean
    assert_allclose(offdiagonal_mean_ratio(*_sp([50] * 5, 1.5), 0.5) * den, 2.8114, atol=1e-4)
    assert_allclose(offdiagonal_mean_ratio(*_sp([30] * 5, 2.5), 0.1) * _moments([30] * 5, 2.5).mean, 7.3481, atol=1e-4)


def test_offdiagonal_ratio_is_one_on_the_diagonal_and_within_eq16_bounds():
    rho = np.linspace(-1, 1, 9)
    for widths, sw2 in (([100] * 40, 1.5), ([100] * 40, 2.0), ([100] * 400, 3.0)):
        r = offdiagonal_mean_ratio(*_sp(widths, sw2), rho)
        assert_allclose(r[-1], 1.0, rtol=1e-12)
        assert np.all(np.diff(r) > 0)
        b = offdiagonal_bounds(1.0)
        assert np.all(r[rho >= 0] >= b.mean_ratio_lower) and np.all(r <= b.mean_ratio_upper + 1e-12)


# ---------------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli():
    import meanfield.cli as mcli

    assert "dispersion" in mcli.COMMANDS
    return mcli.main


def test_cli_prints_moments_limit_and_simulation(cli, capsys):
    assert cli(["dispersion", "--sigma-w2", "2.0", "--width", "100", "--depth", "50", "--published"]) == 0
    out = capsys.readouterr().out
    assert "3.93224" in out and "3.64138" in out  # exact and Thm. 3.2 dispersion of [100]x50
    assert "4.2528064" in out and "3.9119897" in out  # corrected / published limit at lambda = 0.5
    assert cli(["dispersion", "--sigma-w2", "2.5", "--width", "20", "--depth", "6", "--simulate", "20000"]) == 0
    out = capsys.readouterr().out
    assert "z(exact)" in out and "Monte Carlo: 20000 networks" in out


def test_cli_json_has_z_scores_within_four(cli, capsys):
    import json

    args = ["dispersion", "--sigma-w2", "1.8", "--width", "30", "--depth", "5", "--alpha0", "0.5"]
    assert cli(args + ["--simulate", "30000", "--seed", "3", "--published", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["widths"]["n0"] == 15
    assert_allclose(data["exact"]["dispersion"], _moments([15] + [30] * 4, 1.8).dispersion, rtol=1e-14)
    zs = [v["z_exact"] for k, v in data["simulation"].items() if isinstance(v, dict) and "z_exact" in v]
    assert len(zs) == 8 and max(abs(z) for z in zs) <= 4


def test_cli_handles_overflowing_moments(cli, capsys):
    assert cli(["dispersion", "--sigma-w2", "3", "--width", "100000", "--depth", "100000"]) == 0
    out = capsys.readouterr().out
    assert "inf" in out and "76.95" in out and "log E[Theta]" in out


@pytest.mark.parametrize(
    "args, word",
    [
        (["--sigma-w2", "0", "--width", "10", "--depth", "3"], "sigma-w2"),
        (["--sigma-w2", "2", "--width", "0", "--depth", "3"], "width"),
        (["--sigma-w2", "2", "--width", "10", "--depth", "0"], "depth"),
        (["--sigma-w2", "2", "--width", "10", "--depth", "3", "--alpha0", "-1"], "alpha0"),
        (["--sigma-w2", "2", "--width", "10", "--depth", "3", "--simulate", "2"], "simulate"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(cli, capsys, args, word):
    assert cli(["dispersion"] + args) == 2
    err = capsys.readouterr().err
    assert word in err and err.count("\n") == 1
