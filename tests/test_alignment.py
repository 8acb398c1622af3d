"""Alignment primitives against independent references (brute-force U/V statistics, published check values)."""

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose
from test_finite import _fd_param_jacobian

import meanfield as mf
from meanfield import alignment as al
from meanfield.finite import MLP


def _kornblith_data():
    rs = np.random.RandomState(1337)
    X = rs.randn(100, 10)
    Y = rs.randn(100, 10) + X
    return X, Y


def test_cka_reproduces_the_kornblith_demo_values():
    """The Kornblith et al. 2019 demo values: 0.5576132566 (biased) and 0.5134564895 (debiased), linear kernels."""
    X, Y = _kornblith_data()
    K, L = X @ X.T, Y @ Y.T
    assert al.cka(K, L) == pytest.approx(0.5576132566, abs=1e-9)
    assert al.cka(K, L, unbiased=True) == pytest.approx(0.5134564895, abs=1e-9)
    assert al.linear_cka(X, Y) == pytest.approx(0.5576132566, abs=1e-9)
    assert al.linear_cka(X, Y, unbiased=True) == pytest.approx(0.5134564895, abs=1e-9)


def _random_psd(n, seed):
    A = np.random.default_rng(seed).standard_normal((n, n + 2))
    return np.tanh(A) @ np.tanh(A).T


def _v_statistic(K, L):
    n = K.shape[0]
    r = range(n)
    s = sum(
        K[i, j] * L[i, j] + K[i, j] * L[q, t] - 2 * K[i, j] * L[i, q] for i, j, q, t in itertools.product(r, r, r, r)
    )
    return s / n**4


def _u_statistic(K, L):
    n = K.shape[0]
    tuples = list(itertools.permutations(range(n), 4))
    s = sum(K[i, j] * L[i, j] + K[i, j] * L[q, t] - 2 * K[i, j] * L[i, q] for i, j, q, t in tuples)
    return s / len(tuples)


def test_hsic_equals_brute_force_v_and_u_statistics_at_n8():
    n = 8
    K, L = _random_psd(n, 1), _random_psd(n, 2) + 0.3
    assert_allclose(al.hsic(K, L) * (n - 1) ** 2 / n**2, _v_statistic(K, L), rtol=1e-12)
    assert_allclose(al.hsic(K, L, unbiased=True), _u_statistic(K, L), rtol=1e-12)


@pytest.mark.parametrize("unbiased", [False, True])
def test_feature_space_cka_equals_gram_cka(unbiased):
    rng = np.random.default_rng(4)
    A, B = rng.standard_normal((30, 5)), np.tanh(rng.standard_normal((30, 8)))
    assert_allclose(al.linear_cka(A, B, unbiased), al.cka(A @ A.T, B @ B.T, unbiased), rtol=1e-12)


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_is_invariant_to_scaling_and_constant_shift(unbiased):
    K, L = _random_psd(12, 5), _random_psd(12, 6)
    base = al.cka(K, L, unbiased)
    assert_allclose(al.cka(3.7 * K + 2.5 * np.ones((12, 12)), L, unbiased), base, rtol=1e-12)
    assert_allclose(al.cka(K, 0.2 * L - 4.0, unbiased), base, rtol=1e-12)
    assert not np.isclose(al.kta(K + 5.0, L), al.kta(K, L))  # the uncentered alignment is not invariant


def test_debiased_cka_ignores_the_diagonal():
    K, L = _random_psd(10, 7), _random_psd(10, 8)
    assert_allclose(al.cka(K + np.diag(np.arange(10.0)), L, unbiased=True), al.cka(K, L, unbiased=True), rtol=1e-12)


def test_cka_of_a_stack_is_the_stack_of_ckas():
    Ks = np.stack([_random_psd(7, s) for s in range(3)])
    L = _random_psd(7, 9)
    assert_allclose(al.cka(Ks, L), [al.cka(K, L) for K in Ks], rtol=1e-14)


def test_alignment_of_zero_kernel_is_nan_without_runtime_warning():
    assert np.isnan(al.cka(np.ones((4, 4)), _random_psd(4, 1)))
    assert np.isnan(al.cosine(np.zeros((2, 2)), np.eye(2)))
    with pytest.warns(al.AlignmentWarning):
        assert np.isnan(al.cka(np.eye(5), _random_psd(5, 1), unbiased=True))


def test_cosine_power_uses_the_psd_matrix_power():
    B = _random_psd(5, 3)
    w, V = np.linalg.eigh(B)
    half = V @ np.diag(np.sqrt(w)) @ V.T
    assert_allclose(al.cosine(B, B, power=0.5), al.cosine(B, half), rtol=1e-12)


def test_operator_target_is_vec_outer_product_in_sample_major_order():
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    T = al.target_kernel(Y, "operator")
    assert T.shape == (6, 6)
    assert T[0, 4] == 1.0 and T[0, 1] == 0.0  # (i=0,a=0) with (i=2,a=0); (0,0) with (0,1)
    assert_allclose(al.target_kernel(Y), Y @ Y.T)


def test_lou2022_vector_and_matrix_forms_of_eq7_agree():
    """A = Y~^T K Y~ / (||C K C||_F ||Y~||^2), Lou et al. 2022, eq. (7), equals cka(K, Y Y^T)."""
    rng = np.random.default_rng(2)
    P = rng.standard_normal((40, 9))
    K = P.T @ P
    y = rng.standard_normal(9)
    yt = y - y.mean()
    direct = yt @ K @ yt / (np.linalg.norm(al.center(K)) * (yt @ yt))
    assert_allclose(al.cka(K, np.outer(y, y)), direct, rtol=1e-12)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_layer_alignment_equals_cka_of_the_explicit_finite_difference_jacobian(parameterization):
    net = mf.Network(3, "tanh", sigma_w2=1.5, sigma_b2=0.2, parameterization=parameterization, width=(4, 5))
    mlp = MLP.sample(net, d=3, seed=1, outputs=2)
    X = np.random.default_rng(3).standard_normal((5, 3))
    Y = np.eye(2)[[0, 1, 1, 0, 1]]
    J = _fd_param_jacobian(mlp, X)  # rows i*o + a
    sizes = [p.size for p in mlp.params]
    bounds = np.cumsum([0] + [sizes[2 * k] + sizes[2 * k + 1] for k in range(3)])
    T = np.outer(Y.ravel(), Y.ravel())
    expected = [al.cka(J[:, a:b] @ J[:, a:b].T, T) for a, b in itertools.pairwise(bounds)]
    assert_allclose(al.layer_alignment(mlp, X, Y), expected, rtol=1e-6)
    assert_allclose(al.layer_alignment(mlp, X, np.array([0, 1, 1, 0, 1])), expected, rtol=1e-6)
    Jt = J.reshape(5, 2, -1)
    traced = [
        al.cka(np.einsum("iap,jap->ij", Jt[..., a:b], Jt[..., a:b]), Y @ Y.T) for a, b in itertools.pairwise(bounds)
    ]
    assert_allclose(al.layer_alignment(mlp, X, Y, layout="traced"), traced, rtol=1e-6)


def test_layer_alignment_of_a_stack_matches_each_network():
    net = mf.Network(4, "relu", width=16)
    stack = MLP.sample(net, d=4, seed=2, n_nets=3)
    X = np.random.default_rng(0).standard_normal((8, 4))
    y = np.sign(X[:, 0])
    A = al.layer_alignment(stack, X, y)
    for i in range(3):
        one = MLP.sample(net, d=4, seed=np.random.SeedSequence(2, spawn_key=(i,)))
        assert_allclose(A[i], al.layer_alignment(one, X, y), rtol=1e-12)


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda: al.cka(np.ones((3, 4)), np.ones((3, 4))), "square"),
        (lambda: al.cka(np.eye(3), np.eye(4)), "same size"),
        (lambda: al.hsic(np.eye(3), np.eye(3), unbiased=True), "n >= 4"),
        (lambda: al.target_kernel(np.ones(3), layout="matrix"), "layout"),
        (lambda: al.cosine(np.eye(2), np.eye(3)), "same shape"),
        (lambda: al.cka(np.full((2, 2), np.nan), np.eye(2)), "finite"),
    ],
)
def test_bad_input_names_the_problem(call, word):
    with pytest.raises(ValueError, match=word):
        call()
