"""``meanfield simulate``: Monte Carlo kernels of finite networks next to the infinite-width theory.

Examples::

    meanfield simulate --random 3,8 --depth 4 --width 512 --nets 200
    meanfield simulate --input X.npy --depth 6 --width 256 --nets 100 --activation erf --layers --json
"""

from __future__ import annotations

import numpy as np

from .._checks import check_memory
from ..data import to_sphere
from . import Result, UsageError, add_json_flag, add_network_arguments, load_array, output_path, plot_path

THEORY_QUANTITIES = ("nngp", "backward", "ntk_layers", "ntk")
MAX_ENTRY_ROWS = 60


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="Monte Carlo kernels of finite random networks vs the infinite-width theory",
        description="Sample finite random networks and print, per kernel entry, the Monte Carlo mean +- standard "
        "error next to the infinite-width theory and the z-score.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="X.npy", help="inputs, an (n, d) array saved with numpy.save")
    src.add_argument("--random", metavar="N,D", help="N random inputs of dimension D with ||x||^2 = D")
    p.add_argument("--depth", type=int, required=True, help="number of weight matrices L")
    p.add_argument("--width", type=int, required=True, help="hidden width N")
    p.add_argument("--nets", type=int, required=True, help="number of networks M")
    add_network_arguments(p)
    p.add_argument("--parameterization", default="ntk", choices=("ntk", "standard"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quantities",
        default="nngp,ntk",
        help=f"comma-separated subset of {','.join(THEORY_QUANTITIES)} (default nngp,ntk)",
    )
    p.add_argument("--layers", action="store_true", help="nngp of every layer (backward/ntk_layers always are)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--output", metavar="S.npz", help="save the per-network samples to this .npz file (.npz appended "
                   "when missing)")  # fmt: skip
    p.add_argument("--plot", metavar="PNG", help="write Monte Carlo means (2 s.e. bars) against the theory, one series "
                   "per quantity (.png appended when the name has no extension)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(run=run)


def _inputs(args) -> np.ndarray:
    if args.seed < 0:
        raise UsageError(f"--seed must be an integer >= 0, got {args.seed}")
    if args.input is not None:
        X = load_array(args.input, "--input")
        if X.ndim != 2:
            raise UsageError(f"--input must hold a 2-D array (n, d), got shape {X.shape}")
        return X  # simulate() validates it (real dtype: a complex array is refused, not cast)
    try:
        n, d = (int(v) for v in args.random.split(","))
    except ValueError:
        raise UsageError(f"--random must be N,D (two integers), got {args.random!r}") from None
    if n < 1 or d < 1:
        raise UsageError(f"--random N,D needs N >= 1 and D >= 1, got {args.random!r}")
    check_memory(16.0 * n * d, f"--random {args.random}: {n} inputs of dimension {d}", "use a smaller N or D")
    return to_sphere(np.random.default_rng(args.seed).standard_normal((n, d)))


def run(args) -> Result:
    from ..finite.montecarlo import simulate
    from ..network import Network
    from ..propagation.dataset import kernels

    quantities = tuple(q.strip() for q in args.quantities.split(",") if q.strip())
    bad = [q for q in quantities if q not in THEORY_QUANTITIES]
    if bad or not quantities:
        raise UsageError(f"--quantities must be a subset of {','.join(THEORY_QUANTITIES)}, got {args.quantities!r}")
    output = output_path(args.output, ".npz", "--output")  # checked before the work; the path really written
    plot = plot_path(args.plot)
    X = _inputs(args)
    net = Network(
        args.depth,
        args.activation,
        sigma_w2=args.sigma_w2,
        sigma_b2=args.sigma_b2,
        parameterization=args.parameterization,
        width=args.width,
    )
    if args.nets < 2:
        raise UsageError(f"--nets must be >= 2 (a standard error needs two networks), got {args.nets}")
    sim = simulate(X, net, args.nets, seed=args.seed, quantities=quantities, layers=args.layers,
                   batch_size=args.batch_size)  # fmt: skip
    k = kernels(X, net, layers=True)
    th_all = {"nngp": k.nngp_layers if args.layers else k.nngp, "backward": k.backward, "ntk_layers": k.ntk_layers,
              "ntk": k.ntk}  # fmt: skip
    if output:
        np.savez(output, X=X, **sim.samples)

    n = X.shape[0]
    iu = np.triu_indices(n)
    data = {"network": dict(depth=net.depth, activation=net.activation.name, sigma_w2=net.sigma_w2,
                            sigma_b2=net.sigma_b2, parameterization=net.parameterization, width=args.width),
            "n_nets": args.nets, "seed": args.seed, "X": X, "quantities": {}}  # fmt: skip
    per_entry = []
    total = 0  # entries of every quantity and layer; only the first MAX_ENTRY_ROWS become rows
    notes = []
    for q in quantities:
        mean, se, th = sim.mean(q), sim.stderr(q), th_all[q]
        z = sim.zscore(q, th)
        data["quantities"][q] = dict(mean=mean, stderr=se, theory=th, z=z, max_abs_z=float(np.abs(z).max()))
        notes.append(f"{q}: max |z| = {np.abs(z).max():.2f} over {z.size} entries")
        layered = mean.ndim == 3
        for li in range(mean.shape[0]) if layered else [None]:
            sl = (li,) if layered else ()
            total += iu[0].size
            for i, j in zip(*iu, strict=True):
                if len(per_entry) >= MAX_ENTRY_ROWS:
                    break
                idx = sl + (i, j)
                layer = li + 1 if layered else (net.depth if q in ("nngp",) else "-")
                per_entry.append([q, layer, int(i), int(j), f"{mean[idx]:.6g} +- {se[idx]:.2g}", th[idx], z[idx]])
    header = ["quantity", "layer", "i", "j", "MC mean +- stderr", "theory", "z"]
    if total > MAX_ENTRY_ROWS:
        notes.insert(0, f"(first {MAX_ENTRY_ROWS} of {total} entries shown; use --json for all)")
    notes.append(f"{args.nets} networks of width {args.width}; the finite-width bias is O(1/width)")
    if output:
        data["output"] = output
        notes.append(f"saved X and the per-network samples ({', '.join(sim.samples)}) to {output}")
    if plot:
        from ._figures import simulation

        qd = data["quantities"]
        notes.append(simulation(*({q: qd[q][k] for q in qd} for k in ("theory", "mean", "stderr")), plot))
    return Result(data=data, header=header, rows=per_entry, notes=notes)
