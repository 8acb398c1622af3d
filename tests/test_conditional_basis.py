"""The conditional sampler's forward basis (Cholesky of the layer Gram, Householder QR where it is ill conditioned)
and its reused per-thread workspace (meanfield.finite.conditional)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import meanfield as mf
from meanfield.finite import conditional
from meanfield.finite.conditional import _basis, conditional_pass
from meanfield.finite.streams import seed_sequences


def _check_basis(At):
    """``R^T R = A~ A~^T`` and ``Q^T = Kinv^T K`` has orthonormal rows whose span contains the rows of ``A~``."""
    F = At @ np.swapaxes(At, -1, -2)
    R, K, Kinv = _basis(At.copy(), F)
    Qt = K if Kinv is None else np.swapaxes(Kinv, -1, -2) @ K
    scale = np.abs(F).max()
    assert_allclose(np.swapaxes(R, -1, -2) @ R, F, atol=1e-13 * scale)
    r = Qt.shape[-2]
    assert_allclose(Qt @ np.swapaxes(Qt, -1, -2), np.broadcast_to(np.eye(r), (At.shape[0], r, r)), atol=1e-9)
    resid = At - (At @ np.swapaxes(Qt, -1, -2)) @ Qt  # the rows of A~ lie in the span
    assert np.abs(resid).max() <= 1e-9 * np.abs(At).max()
    return Kinv


@pytest.mark.parametrize("case", ["generic", "near_duplicate", "duplicate", "more_inputs_than_width", "zero_row"])
def test_forward_basis_is_exact_on_both_branches(case):
    rng = np.random.default_rng(7)
    S, n, M = 5, 4, 9
    At = rng.standard_normal((S, n, M))
    if case == "near_duplicate":  # sin^2 of the angle ~1e-12: below the Cholesky threshold, QR instead
        At[1:3, 3] = At[1:3, 0] + 1e-6 * rng.standard_normal((2, M))
    elif case == "duplicate":
        At[2, 3] = At[2, 1]
    elif case == "more_inputs_than_width":
        At = rng.standard_normal((S, n, 3))
    elif case == "zero_row":  # a ReLU unit pattern that vanishes on one input
        At[4, 2] = 0.0
    Kinv = _check_basis(At)
    if case == "generic":
        assert_allclose(Kinv, np.linalg.inv(_basis(At.copy(), At @ np.swapaxes(At, -1, -2))[0]), rtol=1e-10)
    if case in ("near_duplicate", "duplicate", "zero_row"):  # the QR networks get Kinv = I, the others Cholesky
        bad = {"near_duplicate": [1, 2], "duplicate": [2], "zero_row": [4]}[case]
        assert_allclose(Kinv[bad], np.broadcast_to(np.eye(n), (len(bad), n, n)))
        good = [s for s in range(S) if s not in bad]
        assert not np.allclose(Kinv[good], np.eye(n))
    if case == "more_inputs_than_width":
        assert Kinv is None


def test_near_duplicate_inputs_keep_the_per_network_identities():
    """Two inputs 1e-7 apart: their outputs and kernels agree to ~1e-6 relative in every network, and the NTK is
    positive semi-definite (the projector of the backward pass stays orthogonal)."""
    X = np.random.default_rng(1).standard_normal((3, 6))
    X = np.vstack([X, X[0] + 1e-7 * np.random.default_rng(2).standard_normal(6)])
    net = mf.Network(4, "relu", 2.0, 0.1, width=32)
    s = mf.simulate(X, net, 12, seed=5, quantities=("ntk", "outputs"), method="conditional")
    assert_allclose(s["outputs"][:, 3], s["outputs"][:, 0], rtol=1e-5, atol=1e-6)
    assert_allclose(s["ntk"][:, 3, 3], s["ntk"][:, 0, 0], rtol=1e-5)
    assert np.all(np.linalg.eigvalsh(s["ntk"]) > -1e-9 * np.abs(s["ntk"]).max())


def test_reused_workspace_never_leaks_into_results():
    """A pass's results own their memory: a later pass on the same thread (which reuses the workspace) leaves them
    unchanged, and a released workspace gives the same numbers again."""
    X = np.random.default_rng(3).standard_normal((5, 8))
    net = mf.Network(3, "tanh", 1.5, 0.2, width=16)
    a = conditional_pass(X, net, seed_sequences(0, 4))
    saved = [a.outputs.copy()] + [g.copy() for g in a.grams] + [b.copy() for b in a.backward]
    conditional_pass(2 * X, net, seed_sequences(1, 6))
    for x, y in zip(saved, [a.outputs, *a.grams, *a.backward], strict=True):
        assert np.array_equal(x, y)
    conditional.release_workspace()
    b = conditional_pass(X, net, seed_sequences(0, 4))
    assert np.array_equal(a.outputs, b.outputs) and all(
        np.array_equal(x, y) for x, y in zip(a.backward, b.backward, strict=True)
    )
