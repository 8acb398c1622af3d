"""Helpers of the kernel-alignment (Canatar & Pehlevan 2022) and feature-alignment (Beaglehole et al. 2024)
experiments: meanfield.alignment.kernel_target_alignment and meanfield.nfa.alignment_reversing."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import meanfield.nfa as nf
from meanfield import MLP, Network
from meanfield.alignment import kernel_target_alignment
from meanfield.finite import train


def _cka_reference(A, B):
    """Biased CKA written out with explicit centering matrices (independent of meanfield.alignment)."""
    n = A.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    a, b = H @ A @ H, H @ B @ H
    return np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b))


def _problem(n=15, d=5, o=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    labels = np.arange(n) % o
    return X, labels, np.eye(o)[labels]


def test_kernel_target_alignment_against_explicit_kernels():
    X, labels, Y = _problem()
    mlp = MLP.sample(Network(3, "tanh", 1.5, 0.1, width=12), d=5, seed=1, outputs=3)
    a = kernel_target_alignment(mlp, X, labels)
    T = Y @ Y.T
    # features: l = 1 is the input kernel, l = 2, 3 the hidden post-activations, recomputed by a plain forward pass
    h, want = X, [_cka_reference(X @ X.T, T)]
    for W, b in zip(mlp.weights[:-1], mlp.biases[:-1], strict=True):
        h = np.tanh(h @ W.T * np.sqrt(1.5 / W.shape[1]) + np.sqrt(0.1) * b)
        want.append(_cka_reference(h @ h.T, T))
    assert_allclose(a.features, want, rtol=1e-10)
    # class-traced NTK (1/o) sum_a J_a J_a^T from finite differences of the outputs in every parameter
    f0, eps, J = mlp(X), 1e-6, []
    for p in mlp.params:
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + eps
            up = mlp(X)
            p[idx] = old - eps
            J.append((up - mlp(X)) / (2 * eps))
            p[idx] = old
    J = np.stack(J, axis=-1)  # (n, o, P)
    K = np.einsum("iap,jap->ij", J, J) / 3
    assert_allclose(a.ntk, _cka_reference(K, T), rtol=1e-6)
    assert_allclose(a.ntk_output, _cka_reference(K, f0 @ f0.T), rtol=1e-6)
    assert_allclose(a.output, _cka_reference(f0 @ f0.T, T), rtol=1e-10)


def test_kernel_target_alignment_stack_and_options():
    X, labels, Y = _problem(seed=2)
    stack = MLP.sample(Network(4, "relu", width=10), d=5, seed=3, outputs=3, n_nets=2)
    a = kernel_target_alignment(stack, X, Y)
    assert a.features.shape == (2, 4) and a.ntk.shape == (2,) and a.output.shape == (2,)
    one = MLP(stack.net, [w[1] for w in stack.weights], [b[1] for b in stack.biases])
    b = kernel_target_alignment(one, X, Y, ntk=False)
    assert b.ntk is None and b.ntk_output is None
    assert_allclose(b.features, a.features[1], rtol=1e-12)
    assert_allclose(b.output, a.output[1], rtol=1e-12)
    assert np.all((a.features >= 0) & (a.features <= 1 + 1e-12))
    with pytest.raises(ValueError, match="ntk"):
        kernel_target_alignment(one, X, Y, ntk=1)
    with pytest.raises(ValueError, match="X"):
        kernel_target_alignment(one, X[:, :3], Y)


def test_kernel_target_alignment_as_training_callback_rises():
    """Used as train(callback=...): the penultimate layer's target alignment rises during training
    (Canatar & Pehlevan 2022, Figs. 1-2) on a separable toy task."""
    X, labels, _ = _problem(n=40, d=6, o=2, seed=4)
    X[:, 0] += 2.0 * (2 * labels - 1)
    rec = []
    mlp = MLP.sample(Network(3, "relu", 2.0, 0.0, "standard", width=32), d=6, seed=5, outputs=2, bias=False)
    train(mlp, X, labels, 30, 0.05, 10, loss="mse", seed=0,
          callback=lambda e, m: rec.append(kernel_target_alignment(m, X, labels).features))  # fmt: skip
    rec = np.array(rec)
    assert rec.shape == (31, 3)
    assert_allclose(rec[:, 0], rec[0, 0], rtol=1e-12)  # the input kernel does not train
    assert rec[-1, 2] > rec[0, 2] + 0.1


def test_alignment_reversing_construction():
    X, y = nf.alignment_reversing(60, 10, 0.5, eps2=0.0, seed=1)
    assert X.shape == (60, 10) and np.sum(y > 0.5) == 30
    assert_allclose(y[:30], 1 + 1e-5)
    assert_allclose(y[30:], 1e-5)
    A, B = X[:30].T @ X[:30], X[30:].T @ X[30:]
    assert_allclose(B, np.linalg.matrix_power(np.linalg.inv(A), 2), rtol=1e-8, atol=1e-14)
    # fewer first-class samples than dimensions: X2^T X2 (X1^T X1)^2 is the projection onto the span of X1^T
    X, y = nf.alignment_reversing(40, 10, 0.15, eps2=0.0, seed=2)
    n1 = int(np.sum(y > 0.5))
    assert n1 == 6
    A, B = X[:n1].T @ X[:n1], X[n1:].T @ X[n1:]
    P = B @ A @ A
    assert_allclose(P @ P, P, atol=1e-8)
    assert np.isclose(np.trace(P), n1)
    # the noise and the scale
    X0, _ = nf.alignment_reversing(40, 10, 0.15, eps2=0.0, seed=2)
    X1, _ = nf.alignment_reversing(40, 10, 0.15, eps2=0.0, scale=2.0, seed=2)
    assert_allclose(X1[:n1], 2 * X0[:n1])
    assert_allclose(X1[n1:], X0[n1:] / 4)  # X2 = V2 S1^-1 U1^T with S1 the singular values of X1^T X1


@pytest.mark.parametrize(
    "kw, match",
    [(dict(balance=0.0), "balance"), (dict(balance=1.0), "balance"), (dict(eps1=0.0), "eps1"),
     (dict(eps2=-1.0), "eps2"), (dict(scale=0.0), "scale"), (dict(n=1), "n")],
)  # fmt: skip
def test_alignment_reversing_rejects_bad_input(kw, match):
    args = dict(n=20, d=4, balance=0.3) | kw
    with pytest.raises(ValueError, match=match):
        nf.alignment_reversing(**args)
