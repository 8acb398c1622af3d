"""The sampler itself: exactness per network, reproducibility, and exact finite-width expectations."""

from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_allclose
from test_finite import _fd_param_jacobian

import meanfield as mf
from meanfield.finite import MLP
from meanfield.finite.montecarlo import run, simulate
from meanfield.finite.streams import generator, next_uint64, sfc64_states
from meanfield.stats import bootstrap, stderr

ALL = ("nngp", "backward", "ntk_layers", "ntk", "outputs")


def _X(n=4, d=3, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def _relu_sigma2(X, sw2, sb2):
    """Independent closed form of Sigma_2 for ReLU (Cho & Saul arc-cosine kernel of degree 1)."""
    S1 = sw2 / X.shape[1] * X @ X.T + sb2
    q = np.sqrt(np.diag(S1))
    c = np.clip(S1 / np.outer(q, q), -1, 1)
    th = np.arccos(c)
    return sw2 * np.outer(q, q) * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi) + sb2


@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_sampled_ntk_equals_finite_difference_jacobian_gram(activation, parameterization):
    net = mf.Network(3, activation, sigma_w2=1.8, sigma_b2=0.2, parameterization=parameterization, width=(3, 5))
    X = _X()
    sim = simulate(X, net, n_nets=3, seed=7, quantities=("ntk",))
    for i in range(3):
        mlp = MLP.sample(net, d=3, seed=np.random.SeedSequence(7, spawn_key=(i,)))
        J = _fd_param_jacobian(mlp, X)
        assert_allclose(sim["ntk"][i], J @ J.T, rtol=1e-6, atol=1e-6 * np.abs(J @ J.T).max())


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_layer_kernels_are_exact_per_network_identities(parameterization):
    net = mf.Network(4, "tanh", sigma_w2=1.5, sigma_b2=0.1, parameterization=parameterization, width=(6, 4, 5))
    X = _X(n=5)
    sim = simulate(X, net, n_nets=4, seed=2, quantities=ALL, layers=True)
    assert_allclose(sim["ntk_layers"].sum(axis=1), sim["ntk"], rtol=1e-13)
    assert_allclose(sim["backward"][:, -1], 1.0)
    stack = MLP.sample(net, d=3, seed=2, n_nets=4)
    assert_allclose(sim["outputs"], stack(X)[..., 0], rtol=1e-13)
    for l in range(1, 5):
        assert_allclose(sim["ntk_layers"][:, l - 1], stack.layer_ntk(X, l), rtol=1e-12)
    if parameterization == "ntk":  # K_l = F_l * B_l (Lou et al. 2022, eq. (9))
        assert_allclose(sim["ntk_layers"], sim["nngp"] * sim["backward"], rtol=1e-12)


def test_results_are_bit_identical_across_batch_sizes_and_process_pools():
    net = mf.Network(4, "erf", sigma_w2=1.6, sigma_b2=0.1, width=(16, 9, 12))
    X = _X(n=5)
    ref = simulate(X, net, 9, seed=11, quantities=ALL, layers=True, batch_size=9)
    others = [simulate(X, net, 9, seed=11, quantities=ALL, layers=True, batch_size=b) for b in (1, 4)]
    with ProcessPoolExecutor(2) as ex:
        others.append(simulate(X, net, 9, seed=11, quantities=ALL, layers=True, batch_size=2, executor=ex))
    for other in others:
        for q in ALL:
            assert np.array_equal(ref[q], other[q]), q
    assert not np.array_equal(ref["ntk"], simulate(X, net, 9, seed=12, quantities=("ntk",))["ntk"])


def test_relu_first_layer_kernel_is_deterministic_and_exact():
    net = mf.Network(3, "relu", sigma_w2=2.0, sigma_b2=0.3, width=8)
    X = _X(n=4, d=5)
    sim = simulate(X, net, 6, quantities=("nngp",), layers=True)
    exact = 2.0 / 5 * X @ X.T + 0.3
    assert_allclose(sim["nngp"][:, 0], np.broadcast_to(exact, (6, 4, 4)), rtol=1e-14)


def test_relu_second_layer_kernel_and_output_covariance_are_exact_at_narrow_width():
    """z_1 is exactly Gaussian at any width, so E F_2 = Sigma_2 and E f(x) f(x') = Sigma_2 for depth 2."""
    sw2, sb2 = 2.0, 0.2
    net = mf.Network(2, "relu", sigma_w2=sw2, sigma_b2=sb2, width=6)
    X = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [-1.0, 0.1, 0.0], [0.0, 0.0, 2.0]])
    sim = simulate(X, net, 4000, seed=5, quantities=("nngp", "outputs"))
    theory = _relu_sigma2(X, sw2, sb2)
    assert np.abs(sim.zscore("nngp", theory)).max() <= 4
    ff = sim["outputs"][:, :, None] * sim["outputs"][:, None, :]
    z = (ff.mean(0) - theory) / (ff.std(0, ddof=1) / np.sqrt(4000))
    assert np.abs(z).max() <= 4


def test_depth_one_output_variance_is_the_linear_kernel():
    net = mf.Network(1, "relu", sigma_w2=1.3, sigma_b2=0.4, width=())
    X = _X(n=3, d=4)
    f = simulate(X, net, 5000, seed=1, quantities=("outputs",))["outputs"]
    theory = 1.3 / 4 * np.sum(X * X, axis=1) + 0.4
    z = ((f**2).mean(0) - theory) / ((f**2).std(0, ddof=1) / np.sqrt(5000))
    assert np.abs(z).max() <= 4


def test_bootstrap_of_the_mean_matches_the_analytic_standard_error():
    net = mf.Network(3, "relu", width=16)
    sim = simulate(_X(), net, 200, quantities=("ntk",))
    boot = sim.bootstrap(lambda s: s["ntk"].mean(0), n_boot=400, seed=1)
    assert_allclose(boot.estimate, sim.mean("ntk"), rtol=1e-14)
    assert_allclose(boot.stderr, sim.stderr("ntk"), rtol=0.2)  # bootstrap noise ~ 1/sqrt(2 n_boot) = 3.5%
    ratio = sim.bootstrap(lambda s: (s["ntk"][:, 0, 0] ** 2).mean() / s["ntk"][:, 0, 0].mean() ** 2, n_boot=50)
    assert ratio.estimate > 1 and ratio.stderr > 0


def _norms(batch, d):
    """A task of the runner: per network, the norm of d normals from its generator and 3 raw bits of its stream."""
    states = batch.sfc64_states()
    raw = np.array([[next_uint64(s) for _ in range(3)] for s in states], dtype=np.uint64)
    norms = np.array([np.linalg.norm(generator(q).standard_normal(d)) for q in batch.seeds])
    return {"norm": norms, "raw": raw}


def test_runner_is_bit_identical_across_batch_sizes_and_executors():
    from concurrent.futures import ThreadPoolExecutor

    ref = run(_norms, 11, seed=4, args=(3,), batch_size=11)
    with ThreadPoolExecutor(2) as ex, ProcessPoolExecutor(2) as pex:
        cases = ((1, None), (4, ex), (3, pex))
        others = [run(_norms, 11, seed=4, args=(3,), batch_size=b, executor=e) for b, e in cases]
    for other in others:
        assert np.array_equal(ref["norm"], other["norm"]) and np.array_equal(ref["raw"], other["raw"])
    fresh = run(_norms, 4, seed=None, args=(3,))
    assert np.array_equal(fresh["norm"], run(_norms, 4, seed=fresh.seed, args=(3,))["norm"])  # the stored seed


def test_numba_streams_are_the_sfc64_streams_of_the_spawned_seed_sequences():
    for root in (np.random.SeedSequence(7), np.random.SeedSequence(None), np.random.SeedSequence(3, spawn_key=(5, 2))):
        for start in (0, 2**32 - 1):
            states = sfc64_states(root, start, start + 3)
            for k in range(3):
                seq = np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + (start + k,))
                expected = np.random.SFC64(seq).random_raw(5)
                assert np.array_equal([next_uint64(states[k]) for _ in range(5)], expected)


def test_one_bootstrap_and_stderr_for_arrays_and_dicts():
    t = np.random.default_rng(0).standard_normal(400)
    assert stderr(t) == pytest.approx(t.std(ddof=1) / 20, rel=1e-14)
    b = bootstrap(lambda a: a.mean(), t, n_boot=400, seed=1)
    assert b.estimate == pytest.approx(t.mean(), rel=1e-14)
    assert_allclose(b.stderr, stderr(t), rtol=0.2)  # bootstrap noise ~ 1/sqrt(2 n_boot) = 3.5%
    both = bootstrap(lambda s: s["a"].mean(), {"a": t}, n_boot=400, seed=1)
    assert both.stderr == b.stderr  # the same resamples
    with pytest.raises(ValueError, match="n_nets >= 2"):
        stderr(t[:1])


def test_zscore_treats_deterministic_entries_exactly():
    net = mf.Network(2, "relu", width=4)
    X = _X(n=2)
    sim = simulate(X, net, 5, quantities=("nngp",), layers=True)
    z = sim.zscore("nngp", np.stack([2.0 / 3 * X @ X.T, np.zeros((2, 2))]))
    assert np.all(z[0] == 0)
    assert np.all(np.isfinite(z[1]))
    assert np.all(np.isinf(sim.zscore("nngp", np.stack([2.0 / 3 * X @ X.T + 1e-6, np.zeros((2, 2))]))[0]))


def test_progress_bar_is_drawn_when_asked(capsys):
    simulate(_X(), mf.Network(2, width=4), 3, progress=True, batch_size=1)
    assert "3/3" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(net=mf.Network(3)), "width"),
        (dict(n_nets=0), "n_nets"),
        (dict(quantities=("ntk", "hessian")), "quantities"),
        (dict(batch_size=0), "batch_size"),
        (dict(seed=-1), "seed"),
        (dict(X=np.ones(3)), "X"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, word):
    args = dict(X=_X(), net=mf.Network(2, width=4), n_nets=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        simulate(**args)


def test_unrecorded_quantity_is_a_clear_error():
    sim = simulate(_X(), mf.Network(2, width=4), 2, quantities=("ntk",))
    with pytest.raises(ValueError, match="not recorded"):
        sim.mean("nngp")


# -- command line ------------------------------------------------------------------------------------------------
@pytest.fixture
def cli():
    import meanfield.cli as c

    assert "simulate" in c.COMMANDS
    return c.main


def test_cli_prints_mean_stderr_theory_and_z(cli, capsys):
    assert cli(["simulate", "--random", "3,8", "--depth", "3", "--width", "128", "--nets", "40"]) == 0
    out = capsys.readouterr().out
    assert "MC mean +- stderr" in out and "theory" in out and "max |z|" in out


def test_cli_json_and_npz_output(cli, capsys, tmp_path):
    import json

    X = _X(n=3, d=5)
    np.save(tmp_path / "X.npy", X)
    args = ["simulate", "--input", str(tmp_path / "X.npy"), "--depth", "3", "--width", "64", "--nets", "30"]
    args += ["--quantities", "ntk_layers,backward", "--json", "--output", str(tmp_path / "S.npz")]
    assert cli(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert np.asarray(data["quantities"]["ntk_layers"]["theory"]).shape == (3, 3, 3)
    assert data["quantities"]["backward"]["max_abs_z"] < 4
    saved = np.load(tmp_path / "S.npz")
    assert saved["ntk_layers"].shape == (30, 3, 3, 3)


@pytest.mark.parametrize(
    "extra, word",
    [
        (["--random", "3x8"], "--random"),
        (["--random", "3,8", "--quantities", "hessian"], "--quantities"),
        (["--random", "3,8", "--nets", "1"], "--nets"),
        (["--random", "3,8", "--activation", "swish"], "activation"),
    ],
)
def test_cli_bad_input_is_one_line_with_status_2(cli, capsys, extra, word):
    args = ["simulate", "--depth", "2", "--width", "8", "--nets", "4"] + extra
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert word in err and err.count("\n") == 1


def test_working_memory_is_bounded_by_the_batch_not_the_number_of_networks():
    import tracemalloc

    net = mf.Network(3, "relu", width=256)  # 0.5 MB of weights per network
    X = _X(n=2)

    def peak(n_nets):
        tracemalloc.start()
        simulate(X, net, n_nets, quantities=("ntk",), batch_size=2)
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p

    small, large = peak(4), peak(40)
    assert large - small < 2**20  # 36 more networks would hold 18 MB of weights if memory grew with n_nets
