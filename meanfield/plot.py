r"""Pictures of the theory and of its Monte Carlo checks (matplotlib, the optional extra ``[plot]``).

Every function draws into ``ax`` (a new figure when ``None``) and returns the Axes it drew into (an array of Axes
for the multi-panel pictures); nothing is shown or saved here (``ax.figure.savefig(path)``). matplotlib is imported
only when a function is called, so ``import meanfield`` never needs it; without it the call raises an
``ImportError`` saying how to install it.

* :func:`phase_diagram`: the classic picture of Poole et al. 2016 (Fig. 2) and Schoenholz et al. 2017 (Fig. 1):
  the correlation depth scale :math:`\xi_c` as a heat map over :math:`(\sigma_w^2, \sigma_b^2)` with a colour bar,
  the ordered and chaotic regions and the edge of chaos :math:`\chi_1 = 1`.
* :func:`kernel_layers`: per-layer kernel heat maps (:func:`meanfield.kernels` with ``layers=True``).
* :func:`propagation_curves`: :math:`q_l` and :math:`c_l` against the layer (:func:`meanfield.pair_curve`).
* :func:`information_loss`: :math:`\mathcal F_l`, :math:`\mathcal B_{l,L}` and the peak layer :math:`l^*` (Lou et
  al. 2022, Thms. 1-2, Cor. 1; :func:`meanfield.peak_layer`).
* :func:`dispersion`: NTK dispersion against depth or width, theory as a line and Monte Carlo points with error
  bars (Seleznova & Kutyniok 2022).
* :func:`theory_vs_simulation`: any theory value against its Monte Carlo mean with error bars
  (:func:`meanfield.simulate`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "dispersion",
    "information_loss",
    "kernel_layers",
    "phase_diagram",
    "propagation_curves",
    "theory_vs_simulation",
]

MISSING = "meanfield.plot needs matplotlib, the optional extra [plot]: pip install 'meanfield[plot]'"


def _pyplot():
    """matplotlib.pyplot, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(MISSING) from exc
    return plt


def _axes(ax, **kw):
    if ax is not None:
        return ax
    return _pyplot().subplots(**kw)[1]


def phase_diagram(diagram, ax=None, quantity="xi_c", vmax=None):
    r"""Heat map of a depth scale over the grid of a :class:`meanfield.PhaseDiagram`, with the edge of chaos.

    Parameters
    ----------
    diagram : PhaseDiagram
        From :func:`meanfield.phase_diagram`.
    ax : matplotlib Axes, optional
    quantity : {"xi_c", "xi_q", "chi1"}
        The colour (default: the correlation depth scale :math:`\xi_c`, Schoenholz et al. 2017, Fig. 1).
    vmax : float, optional
        Upper end of the colour scale (default: the 99th percentile of the finite values; :math:`\xi_c` diverges
        at the edge of chaos).

    Returns
    -------
    matplotlib.axes.Axes
        x: :math:`\sigma_w^2`, y: :math:`\sigma_b^2`; masked and infinite values are left blank.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import meanfield as mf
    >>> d = mf.phase_diagram("erf", np.linspace(0.5, 3, 30), np.linspace(0, 0.3, 20))
    >>> ax = phase_diagram(d)
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('$\\sigma_w^2$', '$\\sigma_b^2$')
    """
    plt = _pyplot()
    if quantity not in ("xi_c", "xi_q", "chi1"):
        raise ValueError(f"quantity must be one of 'xi_c', 'xi_q', 'chi1', got {quantity!r}")
    ax = _axes(ax, figsize=(6.0, 4.5))
    z = np.ma.masked_invalid(np.ma.masked_array(getattr(diagram, quantity), copy=True))
    finite = z.compressed()
    if vmax is None:
        vmax = float(np.percentile(finite, 99)) if finite.size else 1.0
    mesh = ax.pcolormesh(diagram.sigma_w2, diagram.sigma_b2, z, shading="nearest", cmap="viridis", vmin=0.0,
                         vmax=vmax)  # fmt: skip
    label = {"xi_c": r"$\xi_c$", "xi_q": r"$\xi_q$", "chi1": r"$\chi_1$"}[quantity]
    ax.figure.colorbar(mesh, ax=ax, label=label)
    # the phase boundary chi_1 = 1 of the grid, and the exact edge of chaos of every row
    if np.any(diagram.phase > 0) and np.any(diagram.phase < 0) and min(diagram.phase.shape) > 1:
        ax.contour(diagram.sigma_w2, diagram.sigma_b2, diagram.phase.astype(float), levels=[0.0], colors="w",
                   linewidths=0.6, linestyles=":")  # fmt: skip
    edge = diagram.edge_sigma_w2
    keep = ~np.ma.getmaskarray(edge)
    ax.plot(np.ma.getdata(edge)[keep], diagram.sigma_b2[keep], "r-", lw=1.5, label=r"edge of chaos $\chi_1 = 1$")
    sw, sb = diagram.sigma_w2, diagram.sigma_b2
    ax.set_xlim(sw.min(), sw.max())
    ax.set_ylim(sb.min(), sb.max())
    for name, code, where in (("ordered", -1, 0.15), ("chaotic", 1, 0.85)):
        if np.any(diagram.phase == code):
            ax.text(where, 0.9, name, transform=ax.transAxes, ha="center", color="w", fontsize=11)
    ax.set_xlabel(r"$\sigma_w^2$")
    ax.set_ylabel(r"$\sigma_b^2$")
    ax.set_title(f"{diagram.activation}: {label}")
    ax.legend(loc="lower right", fontsize=8)
    plt.sca(ax)
    return ax


def kernel_layers(kernels, which="nngp", layers=None, axes=None):
    r"""Per-layer kernel heat maps, one panel per layer, with one shared colour bar.

    Parameters
    ----------
    kernels : Kernels
        From :func:`meanfield.kernels` with ``layers=True``.
    which : {"nngp", "backward", "ntk"}
        :math:`\Sigma_l`, :math:`\mathfrak B_l` or the layer contributions :math:`\Theta^{(l)}`.
    layers : sequence of int, optional
        Layers (1..L) to draw; default: at most six, spread over the computed layers.
    axes : sequence of Axes, optional
        One per layer.

    Returns
    -------
    ndarray of matplotlib.axes.Axes
        Panel titles ``"layer l"``; x and y label the input index.
    """
    plt = _pyplot()
    field = {"nngp": "nngp_layers", "backward": "backward", "ntk": "ntk_layers"}
    if which not in field:
        raise ValueError(f"which must be one of {sorted(field)}, got {which!r}")
    stack = getattr(kernels, field[which])
    if stack is None or kernels.layers is None:
        raise ValueError("kernels has no per-layer kernels: compute it with meanfield.kernels(..., layers=True)")
    have = list(kernels.layers)
    if layers is None:
        pick = np.unique(np.linspace(0, len(have) - 1, min(6, len(have))).round().astype(int))
        layers = [have[i] for i in pick]
    missing = [int(l) for l in layers if int(l) not in have]
    if missing:
        raise ValueError(f"layers {missing} were not computed; available: {have}")
    if axes is None:
        fig, axes = plt.subplots(1, len(layers), figsize=(2.6 * len(layers) + 1.0, 2.8), squeeze=False)
        axes = axes[0]
    axes = np.asarray(axes, dtype=object).ravel()
    if axes.size != len(layers):
        raise ValueError(f"axes must hold one Axes per layer ({len(layers)}), got {axes.size}")
    mats = [stack[have.index(int(l))] for l in layers]
    lo, hi = min(float(m.min()) for m in mats), max(float(m.max()) for m in mats)
    for ax, l, m in zip(axes, layers, mats, strict=True):
        im = ax.imshow(m, vmin=lo, vmax=hi, cmap="magma", interpolation="nearest")
        ax.set_title(f"layer {int(l)}")
        ax.set_xlabel("input j")
        ax.set_ylabel("input i")
    name = {"nngp": r"$\Sigma_l$", "backward": r"$\mathfrak{B}_l$", "ntk": r"$\Theta^{(l)}$"}[which]
    axes[0].figure.colorbar(im, ax=list(axes), label=name)
    return axes


def propagation_curves(net, q1=1.0, c1=(0.0, 0.5, 0.9), axes=None):
    r"""The variance :math:`q_l` and the correlations :math:`c_l` over the layers l = 1..L of ``net``.

    Parameters
    ----------
    net : Network
    q1 : float
        Input variance :math:`q_1` (equal for both inputs).
    c1 : sequence of float
        Input correlations, one curve each.
    axes : pair of Axes, optional

    Returns
    -------
    ndarray of two matplotlib.axes.Axes
        :math:`q_l` against l, and :math:`c_l` against l (with :math:`c^*` dashed in the chaotic phase).
    """
    plt = _pyplot()
    from .phase import phase
    from .propagation import pair_curve

    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6))
    axes = np.asarray(axes, dtype=object).ravel()
    c1 = np.atleast_1d(np.asarray(c1, dtype=np.float64))
    layers = np.arange(1, net.depth + 1)
    curve = pair_curve(net, q1=q1)
    axes[0].plot(layers, curve.q1, "o-", ms=3, label=rf"$q_1 = {q1:g}$")
    for c in c1:
        axes[1].plot(layers, pair_curve(net, q1=q1, c=float(c)).c, "o-", ms=3, label=rf"$c_1 = {c:g}$")
    p = phase(net.replace(depth=1)) if net.plain else None
    if p is not None and np.isfinite(p.q_star):
        axes[0].axhline(p.q_star, color="k", ls="--", lw=0.8, label=r"$q^*$")
    if p is not None and np.isfinite(p.c_star):
        axes[1].axhline(p.c_star, color="k", ls="--", lw=0.8, label=r"$c^*$")
    axes[0].set_xlabel("layer l")
    axes[0].set_ylabel(r"$q_l$")
    axes[1].set_xlabel("layer l")
    axes[1].set_ylabel(r"$c_l$")
    for ax in axes:
        ax.legend(fontsize=8)
    return axes


def information_loss(peak, ax=None):
    r"""Forward loss :math:`\mathcal F_l`, backward loss :math:`\mathcal B_{l,L}` and the peak layer :math:`l^*`.

    Parameters
    ----------
    peak : PeakLayer or InformationLoss
        From :func:`meanfield.peak_layer` for one depth (its curves and :math:`l^*` are drawn) or
        :func:`meanfield.information_loss` (the curves only).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Log-scale y; a vertical line at :math:`l^*` (Lou et al. 2022, Cor. 1).
    """
    _pyplot()
    curves = getattr(peak, "curves", peak)
    if np.ndim(curves.depth) != 0:
        raise ValueError("information_loss plots one depth: call meanfield.peak_layer(net) with a single depth")
    ax = _axes(ax, figsize=(5.5, 4.0))
    ax.semilogy(curves.layers, curves.forward, "-", label=r"forward $\mathcal{F}_l$")
    ax.semilogy(curves.layers, curves.backward, "-", label=r"backward $\mathcal{B}_{l,L}$")
    if curves is not peak:
        ax.axvline(int(peak.l_star), color="k", ls="--", lw=1, label=rf"$l^* = {int(peak.l_star)}$")
    ax.set_xlabel("layer l")
    ax.set_ylabel("information loss")
    ax.set_title(f"L = {int(curves.depth)}")
    ax.legend(fontsize=8)
    return ax


def dispersion(x, theory, simulated=None, stderr=None, along="depth", ax=None, label="theory"):
    r"""NTK dispersion :math:`\mathbb E[\Theta^2]/\mathbb E[\Theta]^2` against depth or width.

    Parameters
    ----------
    x : array_like
        Depths or widths.
    theory : array_like
        Predicted dispersion at each ``x`` (e.g. :attr:`meanfield.NTKMoments.dispersion`).
    simulated, stderr : array_like, optional
        Monte Carlo estimates and their standard errors, drawn as points with error bars (2 standard errors).
    along : {"depth", "width"}
    ax : matplotlib Axes, optional
    label : str

    Returns
    -------
    matplotlib.axes.Axes
    """
    _pyplot()
    if along not in ("depth", "width"):
        raise ValueError(f"along must be 'depth' or 'width', got {along!r}")
    x = np.asarray(x, dtype=np.float64)
    ax = _axes(ax, figsize=(5.5, 4.0))
    ax.plot(x, np.asarray(theory, dtype=np.float64), "-", label=label)
    if simulated is not None:
        err = None if stderr is None else 2.0 * np.asarray(stderr, dtype=np.float64)
        ax.errorbar(x, np.asarray(simulated, dtype=np.float64), yerr=err, fmt="o", ms=4, capsize=3,
                    label="Monte Carlo (2 s.e.)")  # fmt: skip
    ax.set_xlabel("depth L" if along == "depth" else "width M")
    ax.set_ylabel(r"dispersion $\mathbb{E}[\Theta^2]/\mathbb{E}[\Theta]^2$")
    ax.legend(fontsize=8)
    return ax


def theory_vs_simulation(theory, mean, stderr, ax=None, label="kernel entries"):
    r"""Monte Carlo means (with 2-standard-error bars) against the theory values they estimate.

    Parameters
    ----------
    theory, mean, stderr : array_like
        Same shape: e.g. ``mf.kernels(X, net).ntk`` and ``sim.mean("ntk")``, ``sim.stderr("ntk")`` of
        :func:`meanfield.simulate`.
    ax : matplotlib Axes, optional
    label : str

    Returns
    -------
    matplotlib.axes.Axes
        x: theory, y: simulation, with the diagonal y = x.
    """
    _pyplot()
    t = np.asarray(theory, dtype=np.float64).ravel()
    m = np.asarray(mean, dtype=np.float64).ravel()
    s = np.asarray(stderr, dtype=np.float64).ravel()
    if not (t.shape == m.shape == s.shape):
        raise ValueError(f"theory, mean and stderr must have the same size, got {t.size}, {m.size}, {s.size}")
    ax = _axes(ax, figsize=(4.5, 4.5))
    ax.errorbar(t, m, yerr=2.0 * s, fmt="o", ms=3, capsize=2, label=f"{label} (2 s.e.)")
    lo, hi = float(min(t.min(), m.min())), float(max(t.max(), m.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="y = x")
    ax.set_xlabel("theory")
    ax.set_ylabel("simulation")
    ax.legend(fontsize=8)
    return ax
