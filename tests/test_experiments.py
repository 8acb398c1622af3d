"""The Equilibrium Hypothesis experiment (Lou et al. 2022, Fig. 3 on the CPU) and its data helpers."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from meanfield.data import digits, to_sphere
from meanfield.equilibrium import peak_layer
from meanfield.experiments import default_lr, peak_layers_trained
from meanfield.network import Network
from meanfield.stats import scaling_fit

RELU = Network(2)  # ReLU at the edge of chaos (2, 0); peak_layer(RELU, depths) evaluates any depths


def test_to_sphere_centers_and_puts_rows_on_the_sphere():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 7)) + 3.0
    Z = to_sphere(X, mean=X.mean(axis=0))
    assert_allclose(np.sum(Z**2, axis=1), 7.0, rtol=1e-14)
    mu = X.mean(axis=0)
    # direction of the centered row is kept
    assert_allclose(Z[3] / np.linalg.norm(Z[3]), (X[3] - mu) / np.linalg.norm(X[3] - mu), rtol=1e-14)
    # a given mean (the training set's) is used as is
    assert_allclose(to_sphere(X[:2], mean=np.zeros(7)), X[:2] * np.sqrt(7) / np.linalg.norm(X[:2], axis=1)[:, None])
    with pytest.raises(ValueError, match="feature mean"):
        to_sphere(np.ones((3, 2)), mean=np.ones(2))
    with pytest.raises(ValueError, match="mean must have shape"):
        to_sphere(X, mean=np.zeros(3))


def test_digits_split_is_stratified_and_standardized():
    X, y, Xt, yt = digits(test_size=0.2, seed=0)
    assert X.shape == (1437, 64) and Xt.shape == (360, 64)
    assert_allclose(np.sum(X**2, axis=1), 64.0, rtol=1e-13)
    assert_allclose(np.sum(Xt**2, axis=1), 64.0, rtol=1e-13)
    assert sorted(set(y.tolist())) == list(range(10))
    assert np.all(np.abs(np.bincount(yt) - 36) <= 1)  # stratified: 36 per class in 360
    with pytest.raises(ValueError, match="test_size"):
        digits(test_size=1.0)


def test_default_lr_decreases_with_depth():
    assert default_lr(2) == 0.01 and default_lr(100) == pytest.approx(2e-4)
    assert all(default_lr(a) >= default_lr(b) for a, b in [(5, 10), (10, 20), (50, 100)])


def test_peak_layers_trained_small_run_reports_consistent_fields():
    X, y, Xt, yt = digits(seed=1)
    data = (X[:300], y[:300], Xt[:100], yt[:100])
    depths = [3, 5, 8]
    res = peak_layers_trained(depths, data=data, width=32, epochs=3, lr=0.01, align_samples=12, repeats=2, seed=0)
    assert res.depths.tolist() == depths
    assert res.predicted.tolist() == peak_layer(RELU, np.array(depths)).l_star.tolist()
    assert res.predicted_data.tolist() == peak_layer(RELU, np.array(depths), pairs=data[0]).l_star.tolist()
    assert res.trained_each.shape == (3, 2) and res.test_acc.shape == (3, 2)
    for L, A, t, each in zip(depths, res.alignment, res.trained, res.trained_each, strict=True):
        assert A.shape == (2, L)
        assert t == np.argmax(A.mean(axis=0)) + 1
        assert each.tolist() == (np.argmax(A, axis=1) + 1).tolist()
    assert res.fit_trained.slope == 0.6 and res.fit_trained.fixed
    assert res.fit_trained.intercept == pytest.approx(scaling_fit(depths, res.trained, slope=0.6).intercept)
    assert res.free_fit_predicted.slope == pytest.approx(scaling_fit(depths, res.predicted).slope)
    assert np.all(res.test_acc > 0.3)  # well above chance (0.1) after 3 short epochs
    assert len(res.table()) == 3 and res.seconds > 0


def test_peak_layers_trained_rejects_bad_arguments():
    X0 = np.random.default_rng(0).standard_normal((10, 3))
    X = to_sphere(X0, mean=X0.mean(axis=0))
    y = np.arange(10) % 2
    data = (X, y, X, y)
    with pytest.raises(ValueError, match="depths"):
        peak_layers_trained([1, 3], data=data)
    with pytest.raises(ValueError, match="lr"):
        peak_layers_trained([3, 4], data=data, lr=[0.1])
    with pytest.raises(ValueError, match="repeats"):
        peak_layers_trained([3], data=data, repeats=0)
    with pytest.raises(ValueError, match="data must be"):
        peak_layers_trained([3], data=(X, y))


def test_single_depth_run_has_no_fits():
    X0 = np.random.default_rng(0).standard_normal((20, 4))
    X = to_sphere(X0, mean=X0.mean(axis=0))
    y = np.arange(20) % 2
    res = peak_layers_trained([3], data=(X, y, X, y), width=8, epochs=1, lr=0.01, align_samples=6)
    assert res.fit_trained is None and res.free_fit_trained is None
    assert res.trained.shape == (1,) and 1 <= res.trained[0] <= 3
