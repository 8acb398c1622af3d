"""``meanfield nfa-early``: the infinite-width early-time centered NFC of every layer (Beaglehole et al. 2024)."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from .. import nfa
from ..activations import get_activation
from ..data import to_sphere
from ..finite.mlp import MLP
from ..network import Network
from . import Result, UsageError, add_json_flag, add_network_arguments

TASKS = ("sign", "chain")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "nfa-early",
        help="infinite-width early-time centered NFC per layer (Beaglehole et al. 2024), optionally vs finite networks",
        description=(
            "Predicted centered neural feature correlation at t -> 0+ of every layer of an infinitely wide network "
            "(Beaglehole et al. 2024, eq. (6), in the limit derived from the NNGP and backward kernel recursions) on a "
            "synthetic task; "
            "with --width and --nets, also the Monte Carlo mean of the exact finite-width value with a z-score."
        ),
    )
    p.add_argument("--depth", type=int, default=3, help="number of weight matrices L >= 2 (default 3)")
    add_network_arguments(p)
    p.add_argument("--dim", type=int, default=8, help="input dimension d (default 8)")
    p.add_argument("--samples", type=int, default=40, help="number of inputs n (default 40)")
    p.add_argument(
        "--task",
        choices=TASKS,
        default="sign",
        help="'sign': y = sign(x1 x2) + x3 (default); 'chain': chain monomial of rank min(5, d)",
    )
    p.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    p.add_argument("--width", type=int, default=None, help="finite width N for a Monte Carlo comparison")
    p.add_argument("--nets", type=int, default=10, help="number of finite networks with --width (default 10)")
    add_json_flag(p)
    p.set_defaults(run=run)


def _task(args):
    if args.seed < 0:
        raise UsageError(f"--seed must be an integer >= 0, got {args.seed}")
    rng = np.random.default_rng(args.seed)
    X = to_sphere(rng.standard_normal((args.samples, args.dim)))  # inputs on sqrt(d) S^{d-1}
    if args.task == "sign":
        if args.dim < 3:
            raise UsageError(f"--task sign needs --dim >= 3, got {args.dim}")
        y = np.sign(X[:, 0] * X[:, 1]) + X[:, 2]
    else:
        if args.dim < 2:
            raise UsageError(f"--task chain needs --dim >= 2, got {args.dim}")
        y = nfa.chain_monomial(X, min(5, args.dim))
    sd = y.std()
    if sd == 0:
        raise UsageError("the task's labels are constant on this sample; change --seed or --samples")
    return X, (y - y.mean()) / sd


def run(args) -> Result:
    if args.depth < 2:
        raise UsageError(f"--depth must be an integer >= 2, got {args.depth}")
    if args.dim < 1 or args.samples < 2:
        raise UsageError(f"--dim must be >= 1 and --samples >= 2, got {args.dim} and {args.samples}")
    if args.width is not None and (args.width < 1 or args.nets < 2):
        raise UsageError(f"--width must be >= 1 and --nets >= 2, got {args.width} and {args.nets}")
    try:
        act = get_activation(args.activation)
        net = Network(args.depth, act, args.sigma_w2, args.sigma_b2)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    X, y = _task(args)
    layers = list(range(1, args.depth + 1))
    pred = nfa.cnfc_early_infinite(net, X, y, layers)
    data = {
        "depth": args.depth,
        "activation": act.name,
        "sigma_w2": args.sigma_w2,
        "sigma_b2": args.sigma_b2,
        "dim": args.dim,
        "samples": args.samples,
        "task": args.task,
        "seed": args.seed,
        "layers": layers,
        "cnfc_early_infinite": pred,
    }
    header = ["layer", "C-NFC(0+) infinite width"]
    rows = [[l, pred[l - 1]] for l in layers]
    notes = [
        "exact t -> 0+ limit of rho(Wbar^T Wbar, Wbar^T K Wbar) under gradient flow at infinite width, f_0 = 0 "
        "(Beaglehole et al. 2024, eq. (6))",
        f"layer {args.depth} is the scalar readout: trivially 1",
    ]
    if args.width is not None:
        finite = Network(args.depth, act, args.sigma_w2, args.sigma_b2, "standard", width=args.width)
        vals = np.empty((args.nets, args.depth))
        # thin matmuls: extra BLAS threads only contend with numba's pool
        with threadpool_limits(limits=1, user_api="blas"):
            for s in range(args.nets):
                mlp = MLP.sample(finite, args.dim, seed=s, bias=args.sigma_b2 > 0)
                mlp.weights[-1] *= 1e-3  # small readout: f_0 ~ 0, as the limit assumes (the scale cancels)
                vals[s] = nfa.cnfc_early(mlp, X, y, layers)
        mean = vals.mean(axis=0)
        stderr = vals.std(axis=0, ddof=1) / np.sqrt(args.nets)
        ok = stderr > 1e-12  # the readout is exactly 1 for every network: no z-score
        z = np.where(ok, (mean - pred) / np.where(ok, stderr, 1.0), np.nan)
        data.update(width=args.width, nets=args.nets, mc_mean=mean, mc_stderr=stderr, z=z)
        header += [f"MC mean (N={args.width})", "stderr", "z"]
        rows = [row + [mean[i], stderr[i], z[i]] for i, row in enumerate(rows)]
        notes.append(f"Monte Carlo: {args.nets} SP networks of width {args.width}, readout scaled by 1e-3")
    return Result(data=data, header=header, rows=rows, notes=notes)
