"""The finite network against independent references: central finite differences of its parameters and inputs."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import meanfield as mf
from meanfield.finite import MLP

EPS = 1e-6  # central differences: truncation ~EPS^2, rounding ~1e-16/EPS


def _tiny(activation, parameterization, depth=3, widths=(4, 5), outputs=1, bias=True, seed=3):
    net = mf.Network(depth, activation, sigma_w2=1.7, sigma_b2=0.3, parameterization=parameterization, width=widths)
    return MLP.sample(net, d=3, seed=seed, outputs=outputs, bias=bias)


def _with_params(mlp, flat):
    """A copy of ``mlp`` whose parameters are the flat vector ``flat`` (order of ``mlp.params``)."""
    new = mlp.copy()
    pos = 0
    for p in new.params:
        p[...] = flat[pos : pos + p.size].reshape(p.shape)
        pos += p.size
    return new


def _fd_param_jacobian(mlp, X):
    """d f_a(x_i) / d theta by central differences, rows in sample-major order ``i * o + a``."""
    flat = np.concatenate([p.ravel() for p in mlp.params])
    cols = []
    for k in range(flat.size):
        e = np.zeros_like(flat)
        e[k] = EPS
        fp = _with_params(mlp, flat + e)(X)
        fm = _with_params(mlp, flat - e)(X)
        cols.append(((fp - fm) / (2 * EPS)).ravel())
    return np.array(cols).T


def _inputs(n=4, d=3, seed=11):
    return np.random.default_rng(seed).standard_normal((n, d))


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_empirical_ntk_equals_finite_difference_jacobian_gram(activation, parameterization):
    mlp = _tiny(activation, parameterization)
    X = _inputs()
    J = _fd_param_jacobian(mlp, X)
    K = mlp.ntk(X)
    assert_allclose(K, J @ J.T, rtol=1e-6, atol=1e-6 * np.abs(K).max())


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_ntk_parts_equal_finite_difference_blocks_with_outputs(parameterization, bias):
    mlp = _tiny("tanh", parameterization, depth=4, widths=(5, 3, 4), outputs=3, bias=bias)
    X = _inputs(n=3)
    J = _fd_param_jacobian(mlp, X)
    pos = 0
    total = 0
    for l in range(1, 5):
        nW = mlp.weights[l - 1].size
        JW = J[:, pos : pos + nW]
        pos += nW
        assert_allclose(mlp.layer_ntk(X, l, part="weight"), JW @ JW.T, rtol=1e-6, atol=1e-9)
        if bias:
            nb = mlp.biases[l - 1].size
            Jb = J[:, pos : pos + nb]
            pos += nb
            assert_allclose(mlp.layer_ntk(X, l, part="bias"), Jb @ Jb.T, rtol=1e-6, atol=1e-9)
        else:
            assert np.all(mlp.layer_ntk(X, l, part="bias") == 0)
        total = total + mlp.layer_ntk(X, l)
    assert pos == J.shape[1]
    assert_allclose(total, mlp.ntk(X), rtol=1e-13)


def test_traced_kernel_is_output_average_of_operator_kernel():
    mlp = _tiny("erf", "ntk", outputs=3)
    X = _inputs(n=5)
    K = mlp.layer_ntk(X, 2).reshape(5, 3, 5, 3)
    assert_allclose(mlp.layer_ntk(X, 2, layout="traced"), np.einsum("iaja->ij", K) / 3, rtol=1e-13)


@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_parameter_gradients_equal_finite_differences(loss):
    mlp = _tiny("tanh", "standard", depth=3, widths=(6, 9), outputs=3)
    X = _inputs(n=5)
    Y = np.eye(3)[[0, 2, 1, 1, 0]]
    value, grads = mlp.grads(X, Y, loss=loss)
    flat = np.concatenate([p.ravel() for p in mlp.params])
    fd = np.empty_like(flat)
    for k in range(flat.size):
        e = np.zeros_like(flat)
        e[k] = EPS
        fd[k] = (
            _with_params(mlp, flat + e).loss_grad(X, Y, loss)[0] - _with_params(mlp, flat - e).loss_grad(X, Y, loss)[0]
        ) / (2 * EPS)
    assert_allclose(np.concatenate([g.ravel() for g in grads]), fd, rtol=1e-6, atol=1e-10)
    assert value == pytest.approx(mlp.loss_grad(X, Y, loss)[0], rel=1e-15)


def test_xent_accepts_integer_labels_and_matches_one_hot():
    mlp = _tiny("relu", "ntk", outputs=3)
    X = _inputs(n=4)
    labels = np.array([2, 0, 1, 2])
    a = mlp.loss_grad(X, labels, "xent")
    b = mlp.loss_grad(X, np.eye(3)[labels], "xent")
    assert a[0] == b[0]
    assert_allclose(a[1], b[1])


def test_input_jacobian_equals_finite_differences_through_the_first_layer():
    mlp = _tiny("tanh", "ntk", depth=4, widths=(6, 9, 7), outputs=3)
    X = _inputs(n=2)
    J = mlp.input_jacobian(X, 1)  # (o, n, d)
    for i in range(2):
        for k in range(3):
            e = np.zeros(3)
            e[k] = EPS
            fd = (mlp(X[i : i + 1] + e) - mlp(X[i : i + 1] - e))[0] / (2 * EPS)
            assert_allclose(J[:, i, k], fd, rtol=1e-7, atol=1e-10)


def test_agop_equals_weight_sandwich_of_ptk_covariance():
    """Beaglehole et al. 2024, Prop. 2: G_l = W^T K^ptk W (effective weights, K^ptk = (1/n) sum_a Delta^T Delta)."""
    mlp = _tiny("tanh", "ntk", depth=4, widths=(6, 9, 7), outputs=3)
    X = _inputs(n=7)
    for l in (2, 3, 4):
        D = mlp.deltas(X)[l - 1]
        Kptk = np.einsum("ain,aim->nm", D, D) / 7
        Weff = mlp.multipliers[0][l - 1] * mlp.weights[l - 1]
        assert_allclose(mlp.agop(X, l), Weff.T @ Kptk @ Weff, rtol=1e-12, atol=1e-14)
    assert_allclose(mlp.nfm(2), mlp.weights[1].T @ mlp.weights[1])


def test_sp_and_ntp_networks_with_one_seed_compute_the_same_function():
    X = _inputs()
    a = _tiny("erf", "ntk")
    b = _tiny("erf", "standard")
    assert_allclose(a(X), b(X), rtol=1e-13)
    assert not np.allclose(a.ntk(X), b.ntk(X))


def test_stack_of_networks_matches_networks_drawn_one_by_one():
    net = mf.Network(3, "relu", sigma_b2=0.1, width=(7, 5))
    stack = MLP.sample(net, d=3, seed=5, n_nets=4, outputs=2)
    X = _inputs()
    K = stack.ntk(X)
    _, g = stack.grads(X, np.ones((4, 2)))
    for i in range(4):
        one = MLP.sample(net, d=3, seed=np.random.SeedSequence(5, spawn_key=(i,)), outputs=2)
        assert np.array_equal(one.weights[1], stack.weights[1][i])
        assert_allclose(one.ntk(X), K[i], rtol=1e-13)
        assert_allclose(one.grads(X, np.ones((4, 2)))[1][2], g[2][i], rtol=1e-13)
        assert_allclose(one.deltas(X)[0], stack.deltas(X)[0][i], rtol=1e-13)


def test_readout_delta_is_unit_vector_per_output():
    mlp = _tiny("relu", "ntk", outputs=2)
    D = mlp.deltas(_inputs(n=3))[-1]
    assert D.shape == (2, 3, 2)
    assert_allclose(D, np.broadcast_to(np.eye(2)[:, None, :], (2, 3, 2)))


@pytest.mark.parametrize(
    "call, word",
    [
        (lambda m, X: m.layer_ntk(X, 0), "layer"),
        (lambda m, X: m.layer_ntk(X, 4), "layer"),
        (lambda m, X: m.layer_ntk(X, 1, part="all"), "part"),
        (lambda m, X: m.ntk(X[:, :2]), "X"),
        (lambda m, X: m.ntk(X * np.nan), "X"),
        (lambda m, X: m.grads(X, np.ones((3, 1))), "Y"),
        (lambda m, X: m.loss_grad(X, np.ones((4, 1)), "hinge"), "loss"),
    ],
)
def test_bad_input_names_the_parameter(call, word):
    mlp = _tiny("relu", "ntk")
    with pytest.raises(ValueError, match=word):
        call(mlp, _inputs())


def test_sample_requires_a_finite_width():
    with pytest.raises(ValueError, match="width"):
        MLP.sample(mf.Network(3), d=2, seed=0)


def test_wrong_weight_shapes_are_rejected():
    net = mf.Network(2, width=4)
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        MLP(net, [np.ones((4, 3)), np.ones((1, 5))])


def test_ptk_covariance_gram_and_feature_kernel_match_their_definitions():
    mlp = _tiny("tanh", "ntk", depth=4, widths=(6, 9, 7), outputs=3)
    X = _inputs(n=5)
    D = mlp.deltas(X)[2]  # (o, n, N_3)
    assert_allclose(mlp.ptk_cov(X, 3), np.einsum("ain,aim->nm", D, D) / 5, rtol=1e-13)
    assert_allclose(mlp.ptk_cov(X, 3, normalize=False), np.einsum("ain,aim->nm", D, D), rtol=1e-13)
    P = mlp.ptk_gram(X, 3)
    assert_allclose(P.reshape(5, 3, 5, 3), np.einsum("ain,bjn->iajb", D, D), rtol=1e-13)
    assert_allclose(mlp.ptk_gram(X, 3, layout="traced"), np.einsum("ain,ajn->ij", D, D) / 3, rtol=1e-13)
    # P_l = D D^T and n K^ptk_l = D^T D share their nonzero spectrum
    ev_p = np.sort(np.linalg.eigvalsh(P))[-7:]
    ev_k = np.sort(np.linalg.eigvalsh(5 * mlp.ptk_cov(X, 3)))[-7:]
    assert_allclose(ev_p, ev_k, rtol=1e-10, atol=1e-12)
    H = np.tanh(mlp.forward(X).z[1])
    assert_allclose(mlp.feature_kernel(X, 3), H @ H.T, rtol=1e-13)
    assert_allclose(mlp.feature_kernel(X, 1), X @ X.T, rtol=1e-13)
    with pytest.raises(ValueError, match="hidden layer"):
        mlp.feature_kernel(X, 5)


def test_operator_kernels_are_refused_above_the_memory_guard(monkeypatch):
    # the memory guard: (n o)^2 entries above the limit need force=True; traced kernels are fine
    import meanfield._checks as v
    from meanfield.alignment import layer_alignment

    monkeypatch.setattr(v, "MAX_OPERATOR_ENTRIES", 100)
    monkeypatch.setattr(v.check_operator_size, "__defaults__", (False, 100))
    mlp = MLP.sample(mf.Network(2, "relu", width=4), d=3, seed=0, outputs=3)
    X = np.random.default_rng(0).standard_normal((5, 3))  # (5 * 3)^2 = 225 > 100
    for call in (lambda **k: mlp.ntk(X, **k), lambda **k: mlp.layer_ntk(X, 1, **k), lambda **k: mlp.ptk_gram(X, 2, **k),
                 lambda **k: layer_alignment(mlp, X, np.eye(3)[[0, 1, 2, 0, 1]], **k)):  # fmt: skip
        with pytest.raises(ValueError, match="force=True"):
            call()
        assert np.all(np.isfinite(call(force=True)))
    assert mlp.ntk(X, layout="traced").shape == (5, 5)
