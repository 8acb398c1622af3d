"""Property-based tests (hypothesis), continued from tests/test_properties.py: for random invalid values every public
function raises a ``ValueError`` that names the parameter (no crash inside numba, no NaN, no other exception)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from helpers import BUDGETS, check, documented_warnings
from hypothesis import strategies as st

import meanfield as mf
from meanfield.alignment import hsic, kta

# ---------------------------------------------------------------------------------------------------------------
# invalid values: a ValueError naming the parameter
# ---------------------------------------------------------------------------------------------------------------

#: values that are not a finite real scalar
NOT_A_NUMBER = st.sampled_from(
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        "2.0",
        "abc",
        True,
        False,
        np.True_,
        1 + 2j,
        np.complex128(1.0),
        np.array([1.0, 2.0]),
        [1.0],
        None,
        {1.0},
    ]
)
#: the same without arrays and lists, for array_like parameters (NaN, inf, strings, bools, complex, None, sets)
NOT_A_REAL = st.sampled_from(
    [
        float("nan"),
        float("inf"),
        -float("inf"),
        "2.0",
        "abc",
        True,
        np.True_,
        1 + 2j,
        np.array([1.0 + 1j]),
        np.array([1.0, np.nan]),
        None,
        {1.0},
    ]
)
NOT_NONE = NOT_A_NUMBER.filter(lambda v: v is not None)


def negative():
    return st.floats(-1e300, -1e-300)


def above(x):
    return st.floats(x, 1e300, exclude_min=True)


def below(x):
    return st.floats(-1e300, x, exclude_max=True)


NET = mf.Network(3, "tanh", 1.5, 0.1)
RELU5 = mf.Network(5)
RELU_SP = mf.Network(3, "relu", 2.0, 0.0, "standard", width=(4, 5))
SIM = mf.Network(2, width=4)
K4 = np.array([[2.0, 1.0, 0.0, 0.5], [1.0, 2.0, 0.0, 0.1], [0.0, 0.0, 1.0, 0.2], [0.5, 0.1, 0.2, 3.0]])
INF4 = np.where(K4 > 1.5, np.inf, K4)
ASYM = K4 + np.triu(np.ones((4, 4)), 1)
X3 = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5], [0.3, 0.3, 0.3]])
BAD_X = [
    np.array([[1.0, np.nan]]),
    np.array([[1.0 + 1j, 2.0]]),
    np.ones(3),
    np.zeros((0, 2)),
    [["a", "b"]],
    "abc",
    np.ones((2, 2, 2)),
    None,
]
# np.True_ / np.False_ are the flags True / False (tests/test_robust_inputs.py::test_numpy_bool_layers_are_flags)
BAD_LAYERS = [[1.5], [0], [4], "all", 2.0, [True], np.array([[1, 2]]), 1 + 0j]


#: case -> (call with the bad value, regex the message must contain, strategy of bad values)
INVALID = {
    "Network.depth": (lambda v: mf.Network(v), "depth", st.one_of(NOT_A_NUMBER, st.integers(-5, 0), st.floats(1, 9))),
    "Network.sigma_w2": (
        lambda v: mf.Network(3, "relu", v),
        "sigma_w2",
        st.one_of(NOT_A_NUMBER, negative(), st.just(0.0)),
    ),
    "Network.sigma_b2": (lambda v: mf.Network(3, "relu", 2.0, v), "sigma_b2", st.one_of(NOT_A_NUMBER, negative())),
    "Network.activation": (lambda v: mf.Network(3, v), "activation", st.one_of(NOT_A_NUMBER, st.just("relu6"))),
    "Network.parameterization": (lambda v: mf.Network(3, "relu", 2.0, 0.0, v), "parameterization", NOT_A_NUMBER),
    "Network.width": (
        lambda v: mf.Network(3, width=v),
        "width",
        st.one_of(NOT_NONE, st.integers(-5, 0), st.sampled_from([{4, 5}, [4.5, 5], (4, 5, 6)])),
    ),
    "kernels.X": (lambda v: mf.kernels(v, NET), "X", st.sampled_from(BAD_X)),
    "kernels.X2": (
        lambda v: mf.kernels(X3, NET, X2=v),
        "X2",
        st.sampled_from(
            [np.array([[1.0, np.inf, 0.0]]), np.array([[1j, 2.0, 0.0]]), np.ones((2, 2)), np.ones(3), "abc"]
        ),
    ),
    "kernels.layers": (lambda v: mf.kernels(X3, NET, layers=v), "layers", st.sampled_from(BAD_LAYERS)),
    "pair_curve.q1": (lambda v: mf.pair_curve(NET, q1=v), "q1", st.one_of(NOT_A_NUMBER, negative(), st.just(0.0))),
    "pair_curve.q2": (lambda v: mf.pair_curve(NET, q2=v), "q2", st.one_of(NOT_NONE, negative())),
    "pair_curve.c": (lambda v: mf.pair_curve(NET, c=v), "c", st.one_of(NOT_NONE, above(1.0), below(-1.0))),
    "pair_curve.s": (lambda v: mf.pair_curve(NET, s=v), "s", st.one_of(NOT_NONE, negative(), above(2.0))),
    "q_curve.q1": (lambda v: mf.q_curve(NET, v), "q1", st.one_of(NOT_A_NUMBER, negative())),
    "c_curve.c1": (lambda v: mf.c_curve(NET, v), "c1?", st.one_of(NOT_A_NUMBER, below(-1.0))),
    "phase.net": (lambda v: mf.phase(v), "net", st.one_of(NOT_A_NUMBER, st.just("relu"))),
    "fixed_point_q.net": (lambda v: mf.fixed_point_q(v), "net", st.one_of(NOT_A_NUMBER, st.just("relu"))),
    "edge_of_chaos.activation": (lambda v: mf.edge_of_chaos(v), "activation", NOT_A_NUMBER),
    "edge_of_chaos.sigma_b2": (lambda v: mf.edge_of_chaos("tanh", v), "sigma_b2", st.one_of(NOT_A_NUMBER, negative())),
    "variance_map.q": (lambda v: mf.variance_map(v, "tanh"), "q", st.one_of(NOT_A_REAL, negative())),
    "variance_map.sigma_w2": (
        lambda v: mf.variance_map(1.0, "tanh", v),
        "sigma_w2",
        st.one_of(NOT_A_NUMBER, negative()),
    ),
    "variance_map.sigma_b2": (
        lambda v: mf.variance_map(1.0, "tanh", 1.0, v),
        "sigma_b2",
        st.one_of(NOT_A_NUMBER, negative()),
    ),
    "correlation_map.c": (lambda v: mf.correlation_map(v, "tanh"), "c", st.one_of(NOT_A_REAL, above(1.0))),
    "correlation_map.q": (lambda v: mf.correlation_map(0.5, "tanh", v), "q", st.one_of(NOT_A_REAL, negative())),
    "decorrelation_map.s": (lambda v: mf.decorrelation_map(v, "erf"), "s", st.one_of(NOT_A_REAL, negative())),
    "correlation_slope.c": (lambda v: mf.correlation_slope(v, "erf"), "c", st.one_of(NOT_A_REAL, below(-1.0))),
    "gaussian_moments.q1": (lambda v: mf.gaussian_moments(v, 1.0, 0.5), "q1", st.one_of(NOT_A_REAL, negative())),
    "gaussian_moments.c": (lambda v: mf.gaussian_moments(1.0, 1.0, v), "c", st.one_of(NOT_A_REAL, above(1.0))),
    "hermite_coefficients.q": (lambda v: mf.hermite_coefficients("tanh", v), "q", st.one_of(NOT_A_REAL, negative())),
    "information_loss.eps": (
        lambda v: mf.information_loss(RELU5, eps=v),
        "eps",
        st.one_of(NOT_A_NUMBER, st.floats(2.0, 1e300), negative()),
    ),
    "information_loss.form": (lambda v: mf.information_loss(RELU5, form=v), "form", NOT_A_NUMBER),
    "peak_layer.depths": (
        lambda v: mf.peak_layer(RELU5, v),
        "depths?",
        st.one_of(NOT_NONE, st.integers(-5, 1), st.sampled_from([[[10, 20]], ["10"], 2.5])),
    ),
    "peak_layer.score": (lambda v: mf.peak_layer(RELU5, score=v), "score", NOT_A_NUMBER),
    "ntk_moments.net": (
        lambda v: mf.ntk_moments(v, 3),
        "net",
        st.one_of(NOT_A_NUMBER, st.sampled_from(["345", [3, 4]])),
    ),
    "ntk_moments.d": (
        lambda v: mf.ntk_moments(RELU_SP, v),
        "d",
        st.one_of(NOT_A_NUMBER, st.integers(-5, 0), st.just(2.5)),
    ),
    "ntk_moments.x0_norm2": (
        lambda v: mf.ntk_moments(RELU_SP, 3, x0_norm2=v),
        "x0_norm2",
        st.one_of(NOT_A_NUMBER, negative(), st.just(0.0)),
    ),
    "ntk_moments.form": (lambda v: mf.ntk_moments(RELU_SP, 3, form=v), "form", NOT_A_NUMBER),
    "dispersion_limit.sigma_w2": (
        lambda v: mf.dispersion_limit(v, 1.0),
        "sigma_w2|phase",
        st.one_of(NOT_A_NUMBER, negative(), st.just("hot")),
    ),
    "dispersion_limit.lam": (lambda v: mf.dispersion_limit("eoc", v), "lam", st.one_of(NOT_A_REAL, negative())),
    "dispersion_limit.alpha0": (
        lambda v: mf.dispersion_limit("eoc", 1.0, v),
        "alpha0",
        st.one_of(NOT_A_REAL, negative()),
    ),
    "cka.K": (lambda v: mf.cka(v, K4), "K", st.sampled_from([ASYM, np.ones((4, 3)), K4 * np.nan, K4 * 1j, "K", 3.0])),
    "cka.L": (lambda v: mf.cka(K4, v), "L", st.sampled_from([ASYM.T, np.ones((3, 3)), INF4, K4 + 1j, None])),
    "cka.unbiased": (lambda v: mf.cka(K4, K4, unbiased=v), "unbiased", st.sampled_from(["no", "yes", 2])),
    "kta.K": (lambda v: kta(v, K4), "K", st.sampled_from([ASYM, K4 * np.nan, K4 * 1j])),
    "hsic.L": (lambda v: hsic(K4, v), "L", st.sampled_from([ASYM.T, INF4, K4 * 1j])),
    "simulate.X": (lambda v: mf.simulate(v, SIM, 2, progress=False), "X", st.sampled_from(BAD_X)),
    "simulate.seed": (
        lambda v: mf.simulate(X3, SIM, 2, seed=v, progress=False),
        "seed",
        st.one_of(NOT_A_NUMBER, st.integers(-5, -1)),
    ),
    "simulate.n_nets": (
        lambda v: mf.simulate(X3, SIM, v, progress=False),
        "n_nets",
        st.one_of(NOT_A_NUMBER, st.integers(-5, 0)),
    ),
}


def _invalid_raises(case, value):
    fn, name, _ = INVALID[case]
    with documented_warnings(), warnings.catch_warnings():
        warnings.simplefilter("error")  # a ComplexWarning or DeprecationWarning is not a refusal
        try:
            fn(value)
        except ValueError as exc:
            msg = str(exc)
            assert re.search(rf"\b({name})\b", msg), f"{case}({value!r}): the message does not name {name}: {msg}"
            return
        except Exception as exc:  # noqa: BLE001 - any other exception is the failure being tested for
            raise AssertionError(f"{case}({value!r}) raised {type(exc).__name__}: {exc}") from exc
    raise AssertionError(f"{case}({value!r}) was accepted")


@pytest.mark.parametrize("case", sorted(INVALID))
@pytest.mark.parametrize("budget", BUDGETS)
def test_invalid_values_per_parameter(case, budget):
    """Every (function, parameter) pair of :data:`INVALID`, each with its own small budget."""
    check(budget, 4, lambda value: _invalid_raises(case, value), value=INVALID[case][2])
