"""SGD with momentum and weight decay on finite MLPs (meanfield.training)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from meanfield.alignment import layer_alignment
from meanfield.finite import MLP
from meanfield.finite.training import accuracy, train
from meanfield.network import Network


@pytest.fixture
def tiny():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((6, 2))
    y = np.array([0, 1, 1, 0, 1, 0])
    mlp = MLP.sample(Network(3, "tanh", sigma_w2=1.5, sigma_b2=0.1, parameterization="standard", width=3), d=2,
                     seed=5, outputs=2)  # fmt: skip
    return mlp, X, y


def _fd_grad(mlp, X, Y, loss, h=1e-6):
    """Central finite differences of the mean loss, parameter by parameter (independent of MLP.grads)."""
    out = []
    for p in mlp.params:
        g = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            keep = p[idx]
            p[idx] = keep + h
            up = mlp.loss_grad(X, Y, loss)[0]
            p[idx] = keep - h
            down = mlp.loss_grad(X, Y, loss)[0]
            p[idx] = keep
            g[idx] = (up - down) / (2 * h)
        out.append(g)
    return out


@pytest.mark.parametrize("loss", ["xent", "mse"])
def test_two_steps_equal_hand_computed_momentum_update(tiny, loss):
    mlp, X, y = tiny
    Y = np.eye(2)[y]
    lr, mu, wd = 0.3, 0.9, 0.05
    # full batch: each epoch is one step, whatever the permutation
    hist = train(mlp, X, y, epochs=2, lr=lr, batch_size=6, momentum=mu, weight_decay=wd, loss=loss, seed=0)
    ref = mlp.copy()
    p0 = [p.copy() for p in ref.params]
    g0 = _fd_grad(ref, X, Y, loss)
    v1 = [g + wd * p for g, p in zip(g0, p0, strict=True)]
    for p, v in zip(ref.params, v1, strict=True):
        p -= lr * v  # theta_1 = theta_0 - lr (g_0 + wd theta_0)
    g1 = _fd_grad(ref, X, Y, loss)
    for p, g, v in zip(ref.params, g1, v1, strict=True):
        p -= lr * (mu * v + g + wd * p)  # v_2 = mu v_1 + g_1 + wd theta_1 ; theta_2 = theta_1 - lr v_2
    for got, want in zip(hist.mlp.params, ref.params, strict=True):
        assert_allclose(got, want, rtol=1e-7, atol=1e-9)  # finite-difference accuracy (h = 1e-6)
    # and the original network is untouched
    for p, q in zip(mlp.params, p0, strict=True):
        assert np.array_equal(p, q)


def test_minibatch_steps_follow_the_seeded_permutation(tiny):
    mlp, X, y = tiny
    Y = np.eye(2)[y]
    hist = train(mlp, X, y, epochs=1, lr=0.1, batch_size=4, momentum=0.5, seed=11, record_every=1)
    order = np.random.default_rng(11).permutation(6)
    ref = mlp.copy()
    vel = [np.zeros_like(p) for p in ref.params]
    losses = []
    for idx in (order[:4], order[4:]):
        value, grads = ref.grads(X[idx], Y[idx], "xent")
        losses.append(value)
        for p, g, v in zip(ref.params, grads, vel, strict=True):
            v *= 0.5
            v += g
            p -= 0.1 * v
    assert_allclose(hist.step_loss, losses, rtol=1e-15)
    for got, want in zip(hist.mlp.params, ref.params, strict=True):
        assert_allclose(got, want, rtol=1e-15, atol=1e-16)


def test_stack_trains_like_each_network_alone(tiny):
    _, X, y = tiny
    net = Network(3, "relu", parameterization="standard", width=4)
    a, b = MLP.sample(net, 2, seed=1, outputs=2), MLP.sample(net, 2, seed=2, outputs=2)
    stack = MLP(net, [np.stack([u, v]) for u, v in zip(a.weights, b.weights, strict=True)],
                [np.stack([u, v]) for u, v in zip(a.biases, b.biases, strict=True)])  # fmt: skip
    kw = dict(epochs=3, lr=0.05, batch_size=4, weight_decay=1e-3, seed=7, align_samples=4)
    hs, ha, hb = train(stack, X, y, **kw), train(a, X, y, **kw), train(b, X, y, **kw)
    for s, pa, pb in zip(hs.mlp.params, ha.mlp.params, hb.mlp.params, strict=True):
        assert_allclose(s[0], pa, rtol=1e-12, atol=1e-14)
        assert_allclose(s[1], pb, rtol=1e-12, atol=1e-14)
    assert_allclose(hs.loss[:, 1], hb.loss, rtol=1e-12)
    assert_allclose(hs.alignment[:, 0], ha.alignment, rtol=1e-10)
    assert hs.peak_layer.shape == (2,)


def test_records_at_chosen_epochs_and_alignment_matches_layer_alignment(tiny):
    mlp, X, y = tiny
    hist = train(mlp, X, y, epochs=5, lr=0.1, batch_size=3, record_every=2, seed=0, X_test=X[:3], Y_test=y[:3],
                 align_samples=5)  # fmt: skip
    assert hist.epochs.tolist() == [0, 2, 4, 5]
    assert hist.loss.shape == hist.train_acc.shape == hist.test_acc.shape == hist.test_loss.shape == (4,)
    assert hist.step_loss.shape == (10,)
    assert hist.alignment.shape == (4, 3) and hist.align_index.size == 5
    Y = np.eye(2)[y]
    assert_allclose(hist.alignment[-1], layer_alignment(hist.mlp, X[hist.align_index], Y[hist.align_index]),
                    rtol=1e-13)  # fmt: skip
    assert hist.peak_layer == int(np.argmax(hist.alignment[-1])) + 1
    assert_allclose(hist.loss[0], mlp.loss_grad(X, Y, "xent")[0], rtol=1e-15)
    h2 = train(mlp, X, y, epochs=4, lr=0.1, batch_size=3, record_every=[1, 3], seed=0)
    assert h2.epochs.tolist() == [0, 1, 3, 4] and h2.alignment is None and h2.test_acc is None


def test_small_mlp_learns_digits_fast():
    from meanfield.data import digits

    X, y, Xt, yt = digits(seed=0)
    mlp = MLP.sample(Network(3, "relu", parameterization="standard", width=64), d=64, seed=0, outputs=10)
    hist = train(mlp, X, y, epochs=8, lr=0.01, batch_size=32, weight_decay=5e-4, seed=0, X_test=Xt, Y_test=yt)
    # a 3-layer ReLU MLP on the 8x8 digits: about 0.95-0.97 test accuracy after a few epochs (0.1 is chance)
    assert hist.test_acc[-1] > 0.93
    assert hist.loss[-1] < 0.2 * hist.loss[0]


def test_accuracy_counts_argmax_and_sign():
    out = np.array([[[0.2, 0.1], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    assert_allclose(accuracy(out, np.eye(2)[[0, 1]]), [1.0, 0.5])
    assert accuracy(np.array([[0.3], [-2.0], [1.0]]), np.array([[1.0], [-1.0], [-1.0]])) == pytest.approx(2 / 3)


def test_divergence_is_reported(tiny):
    mlp, X, y = tiny
    big = MLP(mlp.net, [w * 1e3 for w in mlp.weights], mlp.biases)
    with pytest.raises(FloatingPointError, match="diverged"):
        train(big, X, np.eye(2)[y] * 1e150, epochs=3, lr=1e10, batch_size=6, loss="mse")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(lr=0.0), "lr must be"),
        (dict(epochs=0), "epochs must be"),
        (dict(batch_size=0), "batch_size must be"),
        (dict(momentum=1.0), "momentum must be"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(loss="hinge"), "loss must be"),
        (dict(X_test=np.zeros((2, 2))), "X_test and Y_test"),
        (dict(record_every=[9]), "record_every"),
        (dict(align_samples=0), "align_samples"),
    ],
)
def test_bad_arguments(tiny, kwargs, match):
    mlp, X, y = tiny
    args = dict(epochs=1, lr=0.1, batch_size=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train(mlp, X, y, **args)


def test_bad_targets(tiny):
    mlp, X, y = tiny
    with pytest.raises(ValueError, match="integer labels"):
        train(mlp, X, y + 5, epochs=1, lr=0.1, batch_size=2)
    with pytest.raises(ValueError, match="shape"):
        train(mlp, X, np.zeros((6, 3)), epochs=1, lr=0.1, batch_size=2)
    with pytest.raises(ValueError, match="must be a meanfield.finite.MLP"):
        train("net", X, y, epochs=1, lr=0.1, batch_size=2)


def test_train_with_layer_rates_matches_nfa_gd_steps():
    # plain GD (momentum 0, full batch) with per-layer rates equals repeated meanfield.finite.gd_step
    from meanfield.finite import gd_step

    rng = np.random.default_rng(3)
    X = rng.standard_normal((12, 4))
    Y = rng.standard_normal((12, 1))
    mlp = MLP.sample(Network(3, "tanh", 1.5, 0.1, width=6), d=4, seed=2)
    rates = [2.0, 0.5, 0.0]
    h = train(mlp, X, Y, epochs=3, lr=0.05, batch_size=12, momentum=0.0, loss="mse", layer_lr=rates, seed=0)
    ref = mlp
    for _ in range(3):
        ref = gd_step(ref, ref.grads(X, Y, "mse")[1], lr=0.05, layer_lr=rates)
    for a, b in zip(h.mlp.params, ref.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(h.mlp.weights[2], mlp.weights[2])  # rate 0 freezes the readout


def test_train_with_speeds_matches_nfa_slo_steps():
    from meanfield.finite import slo_step

    rng = np.random.default_rng(4)
    X = rng.standard_normal((10, 3))
    Y = rng.standard_normal((10, 1))
    mlp = MLP.sample(Network(2, "relu", width=8), d=3, seed=5)
    h = train(mlp, X, Y, epochs=2, lr=0.1, batch_size=10, momentum=0.0, loss="mse", speeds=[1.0, 0.2], seed=0)
    ref = mlp
    for _ in range(2):
        ref = slo_step(ref, ref.grads(X, Y, "mse")[1], lr=0.1, speeds=[1.0, 0.2], eps=0.1)
    for a, b in zip(h.mlp.params, ref.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)
    with pytest.raises(ValueError, match="not both"):
        train(mlp, X, Y, epochs=1, lr=0.1, batch_size=10, layer_lr=[1, 1], speeds=[1, 1])


def test_callback_sees_every_epoch_with_the_parameters_of_that_epoch(tiny):
    mlp, X, y = tiny
    seen = []
    kw = dict(lr=0.2, batch_size=4, momentum=0.5, seed=7)
    h = train(mlp, X, y, epochs=3, callback=lambda e, net: seen.append((e, [p.copy() for p in net.params])), **kw)
    assert [e for e, _ in seen] == [0, 1, 2, 3]
    for p, q in zip(seen[0][1], mlp.params, strict=True):
        assert np.array_equal(p, q)  # epoch 0: before training
    for k in (1, 2):  # after epoch k: what a k-epoch run with the same seed ends with
        for p, q in zip(seen[k][1], train(mlp, X, y, epochs=k, **kw).mlp.params, strict=True):
            assert np.array_equal(p, q)
    for p, q in zip(seen[3][1], h.mlp.params, strict=True):
        assert np.array_equal(p, q)
    with pytest.raises(ValueError, match="callback"):
        train(mlp, X, y, epochs=1, lr=0.1, batch_size=2, callback=3)


def test_train_records_feature_kernel_target_alignment_per_layer():
    # Canatar & Pehlevan 2022's layer-wise alignment: CKA(H_l H_l^T, Y Y^T) at every record, as computed directly
    from meanfield.alignment import cka, target_kernel

    rng = np.random.default_rng(7)
    X = rng.standard_normal((30, 5))
    y = (X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    mlp = MLP.sample(Network(4, "relu", width=16), d=5, seed=3, outputs=2)
    h = train(mlp, X, y, epochs=4, lr=0.05, batch_size=10, seed=1, align_samples=20, record_every=2)
    assert h.feature_alignment.shape == (3, 4)
    Y1 = np.eye(2)[y[h.align_index]]
    last = [cka(h.mlp.feature_kernel(X[h.align_index], l), target_kernel(Y1)) for l in range(1, 5)]
    assert_allclose(h.feature_alignment[-1], last, rtol=1e-12)
    # layer 0 is the input kernel: it does not train
    assert_allclose(h.feature_alignment[:, 0], h.feature_alignment[0, 0], rtol=1e-12)
