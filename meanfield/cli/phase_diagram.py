"""``meanfield phase-diagram``: chi_1, q*, c*, the depth scales and the edge of chaos on a grid of initializations.

Examples::

    meanfield phase-diagram --activation tanh --plot phase.png
    meanfield phase-diagram --activation erf --sigma-w2 0.5:4:50 --sigma-b2 0:0.3:20 --json
"""

from __future__ import annotations

import numpy as np

from . import Result, UsageError, add_json_flag, plot_path


def parse_grid(text: str, option: str) -> np.ndarray:
    """``a:b:n`` (n equally spaced values from a to b, inclusive) or one value ``a``."""
    parts = str(text).split(":")
    try:
        if len(parts) == 1:
            return np.array([float(parts[0])])
        if len(parts) == 3:
            a, b, n = float(parts[0]), float(parts[1]), int(parts[2])
            if n >= 2 and b > a and np.isfinite(a) and np.isfinite(b):
                return np.linspace(a, b, n)
    except ValueError:
        pass
    raise UsageError(f"{option} takes a:b:n (n >= 2 values from a to b > a) or one number, got {text!r}")


def _masked_list(x):
    """A masked array as nested lists with None where masked (JSON null: the value does not exist)."""
    x = np.ma.masked_array(x)
    return np.where(np.ma.getmaskarray(x), None, np.ma.getdata(x).astype(object)).tolist()


def run(args) -> Result:
    from ..phase_diagram import PHASE_NAMES, phase_diagram

    plot = plot_path(args.plot)  # checked before the work; the path really written
    sw = parse_grid(args.sigma_w2, "--sigma-w2")
    sb = parse_grid(args.sigma_b2, "--sigma-b2")
    d = phase_diagram(args.activation, sw, sb)
    notes = []
    if plot:
        from .. import plot as mfplot
        from . import _figures

        notes.append(_figures.save(mfplot.phase_diagram(d, quantity=args.quantity), plot))
    rows = []
    for i, b in enumerate(sb):
        e = d.edge_sigma_w2[i]
        counts = [int(np.sum(d.phase[i] == code)) for code in PHASE_NAMES]
        rows.append([float(b), "none" if e is np.ma.masked else float(e),
                     "-" if d.edge_q_star[i] is np.ma.masked else float(d.edge_q_star[i]), *counts])  # fmt: skip
    header = ["sigma_b2", "edge sigma_w2", "edge q*", *(f"#{name}" for name in PHASE_NAMES.values())]
    data = {
        "activation": d.activation,
        "sigma_w2": sw,
        "sigma_b2": sb,
        "layout": "fields are [sigma_b2 row][sigma_w2 column]; null: the value does not exist there",
        "status_codes": {"0": "finite fixed point", "1": "q_l diverges", "2": "every q is a fixed point"},
        "phase_codes": {str(k): v for k, v in PHASE_NAMES.items()},
        "status": d.status,
        "phase": d.phase,
        **{f: _masked_list(getattr(d, f)) for f in ("q_star", "c_star", "chi1", "chi_c", "xi_q", "xi_c")},
        "edge_sigma_w2": _masked_list(d.edge_sigma_w2),
        "edge_q_star": _masked_list(d.edge_q_star),
    }
    notes.insert(0, f"{sb.size} x {sw.size} grid; counts of grid points per phase in each row")
    return Result(data, header, rows, notes)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "phase-diagram",
        help="q*, c*, chi_1, chi_c, depth scales and the edge of chaos on a grid of (sigma_w2, sigma_b2)",
        description="The mean-field phase diagram (Poole et al. 2016; Schoenholz et al. 2017) on a grid: per row "
        "(one sigma_b2) the edge of chaos sigma_w2 (chi_1 = 1) and how many grid points are ordered, on the edge "
        "or chaotic; --json gives every field on the grid, --plot the xi_c heat map with the edge of chaos.",
    )
    p.add_argument("--activation", default="tanh", help="activation name (default tanh)")
    p.add_argument("--sigma-w2", default="0.5:4:200", metavar="A:B:N",
                   help="weight variances: N values from A to B (default 0.5:4:200)")  # fmt: skip
    p.add_argument("--sigma-b2", default="0:0.3:200", metavar="A:B:N",
                   help="bias variances: N values from A to B (default 0:0.3:200)")  # fmt: skip
    p.add_argument("--quantity", choices=("xi_c", "xi_q", "chi1"), default="xi_c", help="colour of --plot")
    p.add_argument("--plot", metavar="PNG", help="write the phase diagram figure (.png appended when the name has "
                   "no extension)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(run=run)
