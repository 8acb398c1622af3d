"""``meanfield phase`` and ``meanfield eoc``: the mean-field phase diagram from the command line."""

from __future__ import annotations

from . import Result, UsageError, add_json_flag, add_network_arguments, finite_float, network_options, schedule_depth
from . import plot_path as plot_path

#: depth of a residual network when --depth is not given (its growth exponents are measured over its layers)
RESIDUAL_DEPTH = 100


def _phase(args) -> Result:
    from ..network import Network
    from ..phase import phase

    plot = plot_path(args.plot)  # checked before the work
    depth = args.depth
    fixed = schedule_depth(args)
    if depth is None:
        depth = fixed or (RESIDUAL_DEPTH if args.residual is not None else 1)
    elif fixed is not None and depth != fixed:
        raise UsageError(f"--depth {depth} disagrees with the {fixed} per-layer values of --sigma-w2/--sigma-b2")
    net = Network(depth, args.activation, **network_options(args, depth))
    if plot and not net.plain:
        raise UsageError(f"--plot draws the phase diagram of a plain network; this one has {', '.join(net.features)}")
    p = phase(net)
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
    if args.residual is not None or args.normalization is not None or args.dropout is not None or fixed:
        data.update(depth=depth, residual=args.residual, normalization=args.normalization, dropout=args.dropout,
                    tail_start=p.tail_start)  # fmt: skip
    if args.residual is not None:
        data.update(q_rate=p.q_rate, q_power=p.q_power, c_power=p.c_power, one_minus_c=p.one_minus_c)
    rows = [[k, v] for k, v in data.items() if k not in ("note",) and v is not None]
    notes = [f"note: {p.note}"] if p.note else []
    if plot:
        from ._figures import phase_point

        notes.append(phase_point(args.activation, net.sigma_w2, net.sigma_b2, plot))
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
    add_network_arguments(p, options=True)
    p.add_argument("--depth", type=int, default=None, help="number of weight layers L (default: the length of a "
                   f"per-layer --sigma-w2 list, {RESIDUAL_DEPTH} with --residual, else 1; only schedules and residual "
                   "networks depend on it)")  # fmt: skip
    p.add_argument("--plot", metavar="PNG", help="write the phase diagram around this point, marked (.png appended "
                   "when the name has no extension)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(run=_phase)

    e = sub.add_parser("eoc", help="the weight variance on the edge of chaos for a bias variance")
    e.add_argument("--activation", default="tanh", help="activation name (default tanh)")
    e.add_argument("--sigma-b2", type=finite_float("sigma-b2"), default=0.0, help="bias variance (default 0)")
    add_json_flag(e)
    e.set_defaults(run=_eoc)
