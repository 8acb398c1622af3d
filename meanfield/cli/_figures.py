"""Figures of the command line: the ``--plot PATH`` of each command, drawn by :mod:`meanfield.plot`.

matplotlib is imported only when ``--plot`` is given (the Agg backend, nothing is shown); the path has been
checked by :func:`meanfield.cli.plot_path` before the work started.
"""

from __future__ import annotations

import numpy as np


def _pyplot():
    from .. import plot

    plot._pyplot()  # the ImportError that says how to install matplotlib
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(axes, path: str) -> str:
    """Write the figure of ``axes`` (an Axes or an array of them) to ``path``, close it, and say where."""
    plt = _pyplot()
    fig = np.ravel(np.asarray(axes, dtype=object))[0].figure
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return f"plot written to {path}"


def phase_point(activation, sigma_w2: float, sigma_b2: float, path: str) -> str:
    """The phase diagram around one initialization, with the point marked."""
    _pyplot()
    from .. import plot
    from ..phase_diagram import phase_diagram

    sw = np.linspace(min(0.5, 0.5 * sigma_w2), max(4.0, 1.5 * sigma_w2), 60)
    sb = np.linspace(0.0, max(0.3, 1.5 * sigma_b2), 40)
    ax = plot.phase_diagram(phase_diagram(activation, sw, sb))
    ax.plot([sigma_w2], [sigma_b2], "w*", ms=12, mec="k", label=rf"$({sigma_w2:g}, {sigma_b2:g})$")
    ax.legend(loc="lower right", fontsize=8)
    return save(ax, path)


def dispersion_depth(sigma_w2, width, depth, n0, x0_norm2, published, point, path) -> str:
    """Exact (and, with ``published``, Thm. 3.2's) dispersion against depth 1..``depth`` at this width, with the
    Monte Carlo ``point = (value, stderr)`` at ``depth`` when given (Seleznova & Kutyniok 2022)."""
    _pyplot()
    from .. import plot
    from ..dispersion import ntk_moments
    from ..network import Network

    L = np.unique(np.geomspace(1, depth, min(depth, 60)).round().astype(int))
    nets = [Network(int(l), "relu", sigma_w2, 0.0, "standard", width=width) for l in L]
    exact = [ntk_moments(net, n0, x0_norm2).dispersion for net in nets]
    ax = plot.dispersion(L, exact, along="depth", label="exact (corrected)")
    if published:
        ax.plot(L, [ntk_moments(net, n0, x0_norm2, form="published").dispersion for net in nets], "--",
                label="Thm. 3.2 as published")  # fmt: skip
    if point is not None:
        ax.errorbar([depth], [point[0]], yerr=[2.0 * point[1]], fmt="o", ms=5, capsize=3, color="k",
                    label="Monte Carlo (2 s.e.)")  # fmt: skip
    ax.set_title(f"width M = {width}, $\\sigma_w^2$ = {sigma_w2:g}")
    ax.legend(fontsize=8)
    return save(ax, path)


def simulation(theory: dict, mean: dict, stderr: dict, path: str) -> str:
    """Monte Carlo means against the theory, one series per quantity, with 2-standard-error bars."""
    _pyplot()
    from .. import plot

    ax = None
    for q in theory:
        ax = plot.theory_vs_simulation(theory[q], mean[q], stderr[q], ax=ax, label=q)
    return save(ax, path)
