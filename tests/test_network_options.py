"""The options beyond the plain MLP in the Network spec: validation, normalisation of equal schedules, and the
refusal of every entry point that does not implement an option (never computed as if the network were plain)."""

import numpy as np
import pytest

from meanfield import Network


def test_schedules_are_tuples_and_equal_schedules_collapse():
    net = Network(4, sigma_w2=[2.0, 2.0, 1.5, 1.0], sigma_b2=np.array([0.0, 0.1, 0.1, 0.0]))
    assert net.sigma_w2 == (2.0, 2.0, 1.5, 1.0)
    assert net.weight_variances == (2.0, 2.0, 1.5, 1.0)
    assert net.bias_variances == (0.0, 0.1, 0.1, 0.0)
    assert net.variances(3) == (1.5, 0.1)
    assert net.features == ("schedule",)
    same = Network(3, sigma_w2=(1.5, 1.5, 1.5))
    assert same.sigma_w2 == 1.5 and same.plain and same == Network(3, sigma_w2=1.5)
    assert Network(3).weight_variances == (2.0, 2.0, 2.0)


def test_options_are_stored_and_named():
    net = Network(5, "tanh", residual=0.5, normalization="layer", dropout=0.9, width=16)
    assert (net.residual, net.normalization, net.dropout) == (0.5, "layer", 0.9)
    assert net.features == ("residual", "normalization", "dropout") and not net.plain
    assert Network(3, dropout=1.0).dropout is None  # keep probability 1 is no dropout
    assert net.replace(residual=None).features == ("normalization", "dropout")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(sigma_w2=[1.0, 2.0]), "sigma_w2"),
        (dict(sigma_w2=[1.0, 2.0, 0.0]), "sigma_w2"),
        (dict(sigma_b2=[0.0, -1.0, 0.0]), "sigma_b2"),
        (dict(sigma_w2=[[1.0, 2.0, 3.0]]), "sigma_w2"),
        (dict(sigma_w2=["1", 2.0, 3.0]), "sigma_w2"),
        (dict(residual=0.0), "residual"),
        (dict(residual=float("inf")), "residual"),
        (dict(residual="1"), "residual"),
        (dict(normalization="batch"), "normalization"),
        (dict(dropout=0.0), "dropout"),
        (dict(dropout=1.5), "dropout"),
        (dict(dropout=True), "dropout"),
        (dict(residual=1.0, width=(4, 5)), "width"),
        (dict(normalization="layer", width=1), "width"),
    ],
)
def test_bad_options_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Network(3, **kwargs)


def test_check_network_refuses_unsupported_options_by_name():
    from meanfield._checks import check_network

    with pytest.raises(ValueError, match=r"does not support dropout \(net\.dropout=0\.5\)"):
        check_network(Network(3, dropout=0.5), what="phase")
    assert check_network(Network(3, dropout=0.5), supports=("dropout",)).dropout == 0.5


def test_a_finite_network_of_absurd_depth_is_refused_before_building_its_widths():
    with pytest.raises(ValueError, match="depth must be <= 1000000 for a finite network"):
        Network(10**9, width=5)
    assert Network(10**9).depth == 10**9  # the infinite-width theory has no such limit
