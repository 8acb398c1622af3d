"""``meanfield phase`` and ``meanfield eoc``: the mean-field phase diagram from the command line."""

from __future__ import annotations

from . import Result, add_json_flag, add_network_arguments, finite_float, plot_path


def _phase(args) -> Result:
    from ..network import Network
    from ..phase import phase

    plot = plot_path(args.plot)  # checked before the work
    p = phase(Network(1, args.activation, args.sigma_w2, args.sigma_b2))
    data = {
        "activation": args.activation,
        "sigma_w2": args.sigma_w2,
        "sigma_b2": args.sigma_b2,
        "q_star": p.q_star,
        "c_star": p.c_star,
        "chi1": p.chi1,
        "chi_c": p.chi_c,
        "xi_q": p.xi_q,
        "xi_c": p.xi_c,
        "phase": p.phase,
        "note": p.note,
    }
    rows = [[k, v] for k, v in data.items() if k not in ("note",)]
    notes = [f"note: {p.note}"] if p.note else []
    if plot:
        from ._figures import phase_point

        notes.append(phase_point(args.activation, args.sigma_w2, args.sigma_b2, plot))
    return Result(data, ["quantity", "value"], rows, notes)


def _eoc(args) -> Result:
    from ..network import Network
    from ..phase import edge_of_chaos, fixed_point_q

    sw = edge_of_chaos(args.activation, args.sigma_b2)
    q = fixed_point_q(Network(1, args.activation, sw, args.sigma_b2))
    data = {"activation": args.activation, "sigma_b2": args.sigma_b2, "sigma_w2": sw, "q_star": q}
    return Result(data, ["quantity", "value"], [[k, v] for k, v in data.items()])


def add_parser(sub) -> None:
    p = sub.add_parser("phase", help="fixed points, chi_1, depth scales and the phase of an initialization")
    add_network_arguments(p)
    p.add_argument("--plot", metavar="PNG", help="write the phase diagram around this point, marked (.png appended "
                   "when the name has no extension)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(run=_phase)

    e = sub.add_parser("eoc", help="the weight variance on the edge of chaos for a bias variance")
    e.add_argument("--activation", default="tanh", help="activation name (default tanh)")
    e.add_argument("--sigma-b2", type=finite_float("sigma-b2"), default=0.0, help="bias variance (default 0)")
    add_json_flag(e)
    e.set_defaults(run=_eoc)
