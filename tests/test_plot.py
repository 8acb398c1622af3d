"""meanfield.plot: each picture written to a PNG (Agg), its labels and data ranges read back through the Axes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import meanfield as mf  # noqa: E402
from meanfield import plot  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _save(ax, tmp_path, name):
    fig = np.ravel(ax)[0].figure
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_phase_diagram_picture(tmp_path):
    sw, sb = np.linspace(0.5, 4.0, 30), np.linspace(0.0, 0.3, 12)
    d = mf.phase_diagram("erf", sw, sb)
    ax = plot.phase_diagram(d)
    _save(ax, tmp_path, "phase")
    assert ax.get_xlabel() == r"$\sigma_w^2$" and ax.get_ylabel() == r"$\sigma_b^2$"
    assert ax.get_xlim() == (0.5, 4.0) and ax.get_ylim() == (0.0, 0.3)
    # the edge-of-chaos line is the diagram's edge curve, row by row
    (edge,) = [ln for ln in ax.get_lines() if "edge of chaos" in ln.get_label()]
    np.testing.assert_array_equal(edge.get_xdata(), np.ma.getdata(d.edge_sigma_w2))
    np.testing.assert_array_equal(edge.get_ydata(), sb)
    # the heat map holds xi_c (infinite on the edge: left blank) and has a colour bar labelled xi_c
    mesh = ax.collections[0]
    arr = mesh.get_array()
    finite = np.isfinite(np.ma.getdata(d.xi_c)) & ~np.ma.getmaskarray(d.xi_c)
    np.testing.assert_allclose(np.ma.getdata(arr).reshape(d.xi_c.shape)[finite], np.ma.getdata(d.xi_c)[finite])
    assert ax.figure.axes[-1].get_ylabel() == r"$\xi_c$"
    texts = {t.get_text() for t in ax.texts}
    assert {"ordered", "chaotic"} <= texts
    with pytest.raises(ValueError, match="quantity"):
        plot.phase_diagram(d, quantity="q")


def test_kernel_layers_picture(tmp_path):
    X = mf.data.to_sphere(np.random.default_rng(0).normal(size=(6, 4)))
    k = mf.kernels(X, mf.Network(5, "tanh", 1.5, 0.1), layers=True)
    axes = plot.kernel_layers(k, "nngp", layers=[1, 3, 5])
    _save(axes, tmp_path, "kernels")
    assert [a.get_title() for a in axes] == ["layer 1", "layer 3", "layer 5"]
    assert axes[0].get_xlabel() == "input j" and axes[0].get_ylabel() == "input i"
    for a, l in zip(axes, (1, 3, 5), strict=True):
        np.testing.assert_array_equal(a.images[0].get_array(), k.nngp_layers[l - 1])
    lo, hi = axes[0].images[0].get_clim()
    assert lo == pytest.approx(k.nngp_layers[[0, 2, 4]].min()) and hi == pytest.approx(k.nngp_layers[[0, 2, 4]].max())
    with pytest.raises(ValueError, match="layers=True"):
        plot.kernel_layers(mf.kernels(X, mf.Network(3)))
    with pytest.raises(ValueError, match="not computed"):
        plot.kernel_layers(k, layers=[7])


def test_propagation_curves_picture(tmp_path):
    net = mf.Network(12, "tanh", 2.5, 0.1)
    axes = plot.propagation_curves(net, q1=0.5, c1=(0.2, 0.9))
    _save(axes, tmp_path, "curves")
    assert axes[0].get_xlabel() == "layer l" and axes[0].get_ylabel() == "$q_l$" and axes[1].get_ylabel() == "$c_l$"
    q = axes[0].get_lines()[0]
    np.testing.assert_array_equal(q.get_xdata(), np.arange(1, 13))
    np.testing.assert_allclose(q.get_ydata(), mf.q_curve(net, 0.5))
    np.testing.assert_allclose(axes[1].get_lines()[1].get_ydata(), mf.c_curve(net, 0.9, q1=0.5), rtol=1e-12)
    p = mf.phase(net)
    assert axes[1].get_lines()[-1].get_ydata()[0] == pytest.approx(p.c_star)  # c* of the chaotic phase


def test_information_loss_picture(tmp_path):
    res = mf.peak_layer(mf.Network(40), 40)
    ax = plot.information_loss(res)
    _save(ax, tmp_path, "loss")
    assert ax.get_xlabel() == "layer l" and ax.get_yscale() == "log"
    f, b, peak = ax.get_lines()
    np.testing.assert_array_equal(f.get_ydata(), res.curves.forward)
    np.testing.assert_array_equal(b.get_ydata(), res.curves.backward)
    assert peak.get_xdata()[0] == res.l_star and f"{int(res.l_star)}" in peak.get_label()
    assert plot.information_loss(mf.information_loss(mf.Network(10))).get_title() == "L = 10"


def test_dispersion_and_simulation_pictures(tmp_path):
    depth = np.array([5, 10, 20])
    nets = [mf.Network(int(L), "relu", 2.0, 0.0, "standard", width=50) for L in depth]
    theory = np.array([mf.ntk_moments(net, 50).dispersion for net in nets])
    ax = plot.dispersion(depth, theory, theory * 1.01, 0.02 * theory, along="depth")
    _save(ax, tmp_path, "dispersion")
    assert ax.get_xlabel() == "depth L" and "dispersion" in ax.get_ylabel()
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), theory)
    bars = ax.containers[0]
    np.testing.assert_array_equal(bars.lines[0].get_ydata(), theory * 1.01)
    seg = bars.lines[2][0].get_segments()
    np.testing.assert_allclose([s[1, 1] - s[0, 1] for s in seg], 4 * 0.02 * theory)  # 2 s.e. each side
    assert plot.dispersion([50, 100], [1.0, 1.1], along="width").get_xlabel() == "width M"
    ax = plot.theory_vs_simulation([1.0, 2.0], [1.1, 1.9], [0.05, 0.05])
    _save(ax, tmp_path, "simulation")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("theory", "simulation")
    lo, hi = ax.get_xlim()
    assert lo <= 1.0 and hi >= 2.0


def test_missing_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"meanfield\[plot\]"):
        plot.dispersion([1, 2], [1.0, 1.0])


def _cli(*argv):
    from meanfield.cli import main

    return main([str(a) for a in argv])


def test_cli_plots(tmp_path, capsys):
    """--plot on phase-diagram, phase, kernel, dispersion and simulate writes a PNG and says where."""
    X = tmp_path / "X.npy"
    np.save(X, np.random.default_rng(0).normal(size=(5, 3)))
    runs = {
        "pd": ("phase-diagram", "--activation", "erf", "--sigma-w2", "0.5:3:12", "--sigma-b2", "0:0.2:4"),
        "ph": ("phase", "--activation", "tanh", "--sigma-w2", "1.5", "--sigma-b2", "0.05"),
        "k": ("kernel", "--input", X, "--depth", "3", "--plot-kernel", "ntk"),
        "d": ("dispersion", "--sigma-w2", "2", "--width", "10", "--depth", "4", "--simulate", "50"),
        "s": ("simulate", "--random", "3,4", "--depth", "2", "--width", "16", "--nets", "10"),
    }
    for name, argv in runs.items():
        assert _cli(*argv, "--plot", tmp_path / name) == 0, name
        out = capsys.readouterr().out
        path = tmp_path / f"{name}.png"
        assert f"plot written to {path}" in out
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _cli("phase-diagram", "--sigma-w2", "1:2", "--plot", tmp_path / "x.png") == 2
    assert "a:b:n" in capsys.readouterr().err
    assert _cli("phase", "--plot", tmp_path / "x.unknownext") == 2
    assert "unknown figure format" in capsys.readouterr().err
