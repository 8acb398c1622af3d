import numpy as np
import pytest

import meanfield as mf


def test_network_normalizes_fields():
    net = mf.Network(4, "tanh", sigma_w2=1, sigma_b2=0, width=8)
    assert net.width == (8, 8, 8)
    assert isinstance(net.sigma_w2, float)
    assert net.activation.name == "tanh"
    assert net.fan_ins(3) == (3, 8, 8, 8)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(depth=0), "depth"),
        (dict(depth=2.5), "depth"),
        (dict(depth=3, sigma_w2=0.0), "sigma_w2"),
        (dict(depth=3, sigma_w2=np.nan), "sigma_w2"),
        (dict(depth=3, sigma_b2=-1e-3), "sigma_b2"),
        (dict(depth=3, activation="swish"), "activation"),
        (dict(depth=3, parameterization="mup"), "parameterization"),
        (dict(depth=3, width=0), "width"),
        (dict(depth=3, width=(4, 4, 4)), "width"),
        (dict(depth=3, width=(4, -1)), "width"),
    ],
)
def test_invalid_network_names_parameter(kwargs, word):
    with pytest.raises(ValueError, match=word):
        mf.Network(**kwargs)


def test_activation_table_derivatives_match_finite_differences():
    u = np.linspace(-3, 3, 101) + 1e-3  # avoid the ReLU kink
    for name in mf.ACTIVATION_NAMES:
        act = mf.get_activation(name)
        h = 1e-6
        fd = (act.fn(u + h) - act.fn(u - h)) / (2 * h)
        np.testing.assert_allclose(act.derivative(u), fd, rtol=1e-6, atol=1e-8, err_msg=name)
