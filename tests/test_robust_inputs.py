"""Issue 16, item 6: input coercions that change the question are ValueErrors naming the parameter; tiny rows are
not "zero norm"."""

import numpy as np
import pytest

import meanfield as mf
from meanfield import _checks, nfa, silent, stats
from meanfield import alignment as al
from meanfield import dispersion as dp
from meanfield import gaussian as ga
from meanfield.cli import main

X = np.random.default_rng(0).normal(size=(4, 3))
NET = mf.Network(3, "relu", 2.0)
FNET = mf.Network(3, "relu", 2.0, 0.0, "standard", width=8)


# ------------------------------------------------------------------------------------------------------------------
# complex, bool and object inputs
# ------------------------------------------------------------------------------------------------------------------
def test_complex_inputs_are_refused_not_cast():
    with pytest.raises(ValueError, match="X must be a real numeric array"):
        mf.kernels(X + 1j, NET)
    with pytest.raises(ValueError, match="X2 must be a real numeric array"):
        mf.kernels(X, NET, X2=X + 0j)
    with pytest.raises(ValueError, match="X must be a real numeric array"):
        mf.simulate(X + 1j, mf.Network(2, width=4), n_nets=2)
    mlp = mf.MLP.sample(mf.Network(2, width=4), d=3, seed=0)
    with pytest.raises(ValueError, match="X must be a real numeric array"):
        mlp.forward(X + 1j)
    with pytest.raises(ValueError, match="q must be a real numeric array"):
        mf.hermite_coefficients("tanh", 1.0 + 1j)
    with pytest.raises(ValueError, match="thetas must be a real numeric array"):
        dp.estimate(np.arange(1.0, 6.0) + 1j)
    with pytest.raises(ValueError, match="samples must be a real numeric array"):
        stats.bootstrap(np.mean, np.arange(5.0) + 1j, n_boot=10)
    with pytest.raises(ValueError, match="Y must be a real numeric array"):
        mf.target_kernel(np.eye(2) + 1j)
    with pytest.raises(ValueError, match="grad must be a real numeric array"):
        nfa.egop(X + 1j, X)


def test_cli_kernel_refuses_complex_input(tmp_path, capsys):
    path = tmp_path / "X.npy"
    np.save(path, X + 1j)
    assert main(["kernel", "--input", str(path), "--depth", "3"]) == 2
    err = capsys.readouterr().err
    assert "complex" in err and "real numbers" in err  # the CLI names the dtype and what it takes


@pytest.mark.parametrize("bad", [np.array([True, False]), {1.0, 2.0}, "12", np.array(["1", "2"]), [[1.0], [1.0, 2.0]]])
def test_real_array_refuses_bool_string_set_ragged(bad):
    with pytest.raises(ValueError, match="x must be a real numeric array"):
        _checks.real_array(bad, "x")


# ------------------------------------------------------------------------------------------------------------------
# shapes: 1-D X is not one row
# ------------------------------------------------------------------------------------------------------------------
def test_one_dimensional_X_is_refused():
    with pytest.raises(ValueError, match=r"X must be a 2-D array.*x\[None, :\]"):
        mf.kernels(X[0], NET)
    with pytest.raises(ValueError, match="X2 must be a 2-D array"):
        mf.kernels(X, NET, X2=X[0])
    with pytest.raises(ValueError, match="X must be a non-empty 2-D array"):
        mf.simulate(X[0], mf.Network(2, width=4), n_nets=2)
    with pytest.raises(ValueError, match="pairs must be a 2-D array"):
        mf.information_loss(mf.Network(10), pairs=X[0])


# ------------------------------------------------------------------------------------------------------------------
# layers
# ------------------------------------------------------------------------------------------------------------------
def test_numpy_bool_layers_are_flags():
    """layers=np.True_ returned only layer 1 and np.False_ raised."""
    k = mf.kernels(X, NET, layers=np.True_)
    assert k.layers == (1, 2, 3)
    assert mf.kernels(X, NET, layers=np.False_).layers is None


@pytest.mark.parametrize("bad", [[1.5], [1.0], [True, 2], [[1, 2]], {1, 2}, "1", [0], [4]])
def test_bad_layer_indices_are_refused(bad):
    with pytest.raises(ValueError, match="layers must be"):
        mf.kernels(X, NET, layers=bad)


def test_layer_indices_keep_order_and_duplicates_collapse():
    assert mf.kernels(X, NET, layers=[3, 1, 3]).layers == (1, 3)
    assert mf.kernels(X, NET, layers=2).layers == (2,)
    assert mf.kernels(X, NET, layers=np.array([2, 3])).layers == (2, 3)


def test_simulate_flags_are_bools():
    net = mf.Network(2, width=4)
    with pytest.raises(ValueError, match="layers must be True or False"):
        mf.simulate(X, net, n_nets=2, layers=[1, 2])
    with pytest.raises(ValueError, match="bias must be True or False"):
        mf.simulate(X, net, n_nets=2, bias="no")


# ------------------------------------------------------------------------------------------------------------------
# Network: every field strictly
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(sigma_w2="2.0"), "sigma_w2"),
        (dict(sigma_w2=np.array([1.0, 2.0])), "sigma_w2"),
        (dict(sigma_w2=True), "sigma_w2"),
        (dict(sigma_w2=1 + 0j), "sigma_w2"),
        (dict(sigma_b2="0"), "sigma_b2"),
        (dict(sigma_b2=np.nan), "sigma_b2"),
        (dict(width={4, 5}), "width"),
        (dict(width="45"), "width"),
        (dict(width=[4, 5.5]), "width"),
        (dict(width=[4, True]), "width"),
        (dict(width=4.0), "width"),
        (dict(width=np.array([[4, 5]])), "width"),
        (dict(width=[4]), "width"),
        (dict(parameterization=["ntk"]), "parameterization"),
        (dict(parameterization="NTK"), "parameterization"),
    ],
)
def test_network_fields_are_validated_strictly(kwargs, name):
    with pytest.raises(ValueError, match=name):
        mf.Network(3, "relu", **kwargs)


@pytest.mark.parametrize("depth", ["3", 3.0, True, np.True_, 0, [3]])
def test_network_depth_is_an_int(depth):
    with pytest.raises(ValueError, match="depth"):
        mf.Network(depth)


def test_network_accepts_numpy_scalars_and_sequences():
    net = mf.Network(np.int64(3), "relu", np.float64(2.0), np.float32(0.5), width=np.array([4, 5]))
    assert net.width == (4, 5) and type(net.depth) is int and type(net.sigma_w2) is float
    assert mf.Network(3, width=range(4, 6)).width == (4, 5)


def test_phase_with_array_variance_is_a_value_error():
    """mf.phase(Network(1, "tanh", np.array([1., 2.]), 0.0)) was a TypeError."""
    with pytest.raises(ValueError, match="sigma_w2"):
        mf.phase(mf.Network(1, "tanh", np.array([1.0, 2.0]), 0.0))


# ------------------------------------------------------------------------------------------------------------------
# depths, counts, seeds, flags
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [[[10, 20]], {10, 20}, "10", [10.5], [True, 10], [1]])
def test_peak_layer_depths(bad):
    with pytest.raises(ValueError, match="depths"):
        mf.peak_layer(mf.Network(10), bad)


@pytest.mark.parametrize("eps", ["0.5", True, 2.0, np.nan])
def test_information_loss_eps(eps):
    with pytest.raises(ValueError, match="eps"):
        mf.information_loss(mf.Network(10), eps=eps)


@pytest.mark.parametrize("bad", ["345", [[1, 2, 3]], np.array([[10.0, 20, 30]]), [1 + 1j, 2, 3]])
def test_scaling_fit_refuses_strings_and_2d(bad):
    with pytest.raises(ValueError, match="depths"):
        mf.scaling_fit(bad, [5, 9, 12])
    with pytest.raises(ValueError, match="layers"):
        mf.scaling_fit([10, 20, 30], bad)


@pytest.mark.parametrize("d", ["345", True, 3.0, None, 0])
def test_ntk_moments_d(d):
    with pytest.raises(ValueError, match="d must be an integer"):
        mf.ntk_moments(FNET, d)


@pytest.mark.parametrize("width", ["345", [True, 4], {4, 5}])
def test_ntk_moments_widths_through_network(width):
    """ntk_moments("345", 2.0) read a string as widths [345]; widths now live in the Network, validated there."""
    with pytest.raises(ValueError, match="width"):
        mf.ntk_moments(mf.Network(3, "relu", 2.0, 0.0, "standard", width=width), 3)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size="2"), "batch_size"),
        (dict(seed="a"), "seed"),
        (dict(seed=1.5), "seed"),
        (dict(seed=-1), "seed"),
        (dict(executor=4), "executor"),
        (dict(n_nets=0), "n_nets"),
        (dict(n_nets=True), "n_nets"),
        (dict(d=None), "d"),
    ],
)
def test_sampler_arguments(kwargs, name):
    args = dict(net=FNET, d=3, n_nets=4, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        mf.sample_ntk_diagonal(**args)


@pytest.mark.parametrize("seed", ["a", 1.5, True, [1, 2]])
def test_seeds_are_value_errors(seed):
    with pytest.raises(ValueError, match="seed"):
        mf.MLP.sample(mf.Network(2, width=4), d=3, seed=seed)
    with pytest.raises(ValueError, match="seed"):
        dp.estimate(np.arange(1.0, 6.0), n_boot=10, seed=seed)
    with pytest.raises(ValueError, match="seed"):
        stats.bootstrap(np.mean, np.arange(5.0), n_boot=10, seed=seed)


def test_training_arguments():
    mlp = mf.MLP.sample(mf.Network(2, width=4), d=3, seed=0)
    y = np.array([0.0, 1.0, 0.0, 1.0])
    for kwargs, name in [(dict(momentum="0.9"), "momentum"), (dict(weight_decay=True), "weight_decay"),
                         (dict(seed="a"), "seed")]:  # fmt: skip
        with pytest.raises(ValueError, match=name):
            mf.train(mlp, X, y, epochs=1, lr=0.1, batch_size=2, loss="mse", **kwargs)
    with pytest.raises(ValueError, match="bias must be True or False"):
        mf.MLP.sample(mf.Network(2, width=4), d=3, bias="yes")
    with pytest.raises(ValueError, match="net must be a meanfield.Network"):
        mf.MLP.sample("relu", d=3)


def test_flags_of_the_alignment_measures():
    K = X @ X.T
    for f, name in [(al.cka, "unbiased"), (al.hsic, "unbiased"), (al.linear_cka, "unbiased")]:
        with pytest.raises(ValueError, match=name):
            f(K, K, "yes")
    with pytest.raises(ValueError, match="center must be True or False"):
        al.init_layer_alignment(NET, X, X[:, 0], center=0)
    with pytest.raises(ValueError, match="center must be True or False"):
        mf.cumulative_power(K, X[:, 0], center="no")
    with pytest.raises(ValueError, match="mlp must be a meanfield.MLP"):
        al.layer_alignment("mlp", X, X[:, 0])


@pytest.mark.parametrize("bad", ["2", True, 1.5, -1])
def test_hermite_order(bad):
    with pytest.raises(ValueError, match="order"):
        mf.hermite_coefficients("tanh", 1.0, order=bad)


@pytest.mark.parametrize("q", ["1", True, np.nan, -1.0])
def test_one_point_moments_q(q):
    with pytest.raises(ValueError, match="q must"):
        ga.single_moments("tanh", q)
    with pytest.raises(ValueError, match="q must"):
        ga.variance_slope("tanh", q)
    with pytest.raises(ValueError, match="q must"):
        mf.hermite_coefficients("tanh", q)


def test_scalar_parameters_named():
    with pytest.raises(ValueError, match="c1"):
        mf.c_curve(NET, "0.3")
    with pytest.raises(ValueError, match="offset"):
        mf.equilibrium.relu_eoc_inverse_root(10.0, offset="1")
    with pytest.raises(ValueError, match="W must be a real numeric array"):
        nfa.quadratic_r_moments(np.ones((2, 2)) + 1j, np.ones(2))
    with pytest.raises(ValueError, match="X must be a real numeric array"):
        nfa.chain_monomial(X + 1j, 2)


# ------------------------------------------------------------------------------------------------------------------
# tiny but non-zero inputs are not "zero norm"
# ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tiny", [1e-200, 5e-324])
def test_to_sphere_and_unit_vector_keep_tiny_rows(tiny):
    Z = np.array([[tiny, 0.0, 0.0], [0.0, tiny, -tiny], [1.0, 2.0, 3.0]])
    S = mf.data.to_sphere(Z)
    np.testing.assert_allclose(S[0], [np.sqrt(3), 0, 0], rtol=1e-15)
    np.testing.assert_allclose(S[1], [0, np.sqrt(1.5), -np.sqrt(1.5)], rtol=1e-15)
    big = mf.data.to_sphere(np.array([[1e300, 1e300]]), norm2=2.0)
    np.testing.assert_allclose(big, [[1.0, 1.0]], rtol=1e-15)
    b = silent.matrix_alignment(np.eye(2), [tiny, 0.0])
    assert b == pytest.approx(silent.matrix_alignment(np.eye(2), [1.0, 0.0]), rel=1e-15)
    with pytest.raises(ValueError, match="row 0 of X is zero"):
        mf.data.to_sphere(np.array([[0.0, 0.0], [1.0, 0.0]]))


@pytest.mark.parametrize("tiny", [1e-200, 5e-324])
@pytest.mark.parametrize("act", ["relu", "tanh", "erf"])
def test_kernels_with_tiny_rows_and_biases(tiny, act):
    """With sigma_b2 > 0 a tiny row is the zero input to rounding (it was refused as 'zero norm')."""
    net = mf.Network(3, act, 2.0, 0.1)
    Z = np.array([[tiny, 0.0, 0.0], [1.0, 2.0, 3.0]])
    k, k0 = mf.kernels(Z, net), mf.kernels(np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]), net)
    np.testing.assert_allclose(k.ntk, k0.ntk, rtol=1e-14)
    np.testing.assert_allclose(k.nngp, k0.nngp, rtol=1e-14)


@pytest.mark.parametrize("tiny", [1e-200, 5e-324])
def test_kernels_with_tiny_rows_without_biases_say_why(tiny):
    """Without biases sigma_w2/d ||x||^2 of a 1e-200 row underflows float64: refused with that reason, not as a zero
    input; an exactly zero row is still named as zero."""
    Z = np.array([[tiny, 0.0, 0.0], [1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match=r"row 0 .* outside the float64 range") as info:
        mf.kernels(Z, NET)
    assert "zero norm" not in str(info.value)
    with pytest.raises(ValueError, match="row 0 of the inputs has zero norm"):
        mf.kernels(np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]), NET)


def test_kernels_rows_at_the_edges_of_the_range_without_biases():
    """Rows of norm 1e-150 and 1e150 are representable (q ~ 1e-300, 1e300): ReLU's K(aX) = a^2 K(X)."""
    for a in (1e-150, 1e150):
        k = mf.kernels(X * a, NET)
        np.testing.assert_allclose(k.ntk, mf.kernels(X, NET).ntk * a**2, rtol=1e-13)


@pytest.mark.parametrize("slope", ["0.1", True, np.array([0.1, 0.2]), np.inf])
def test_leaky_relu_slope_is_a_real_number(slope):
    with pytest.raises(ValueError, match="slope"):
        mf.leaky_relu(slope)
