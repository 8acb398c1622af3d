"""``meanfield dispersion``: NTK moments and dispersion of a finite SP ReLU network (Seleznova & Kutyniok 2022).

Example::

    meanfield dispersion --sigma-w2 2.0 --width 100 --depth 50 --simulate 20000 --published
"""

from __future__ import annotations

import math

from .._checks import check_memory
from . import Result, UsageError, add_json_flag, plot_path

_ROWS = (
    ("E[Theta_W]", "mean_w", "w"),
    ("E[Theta_b]", "mean_b", "b"),
    ("E[Theta_W^2]", "second_w", "ww"),
    ("E[Theta_b^2]", "second_b", "bb"),
    ("E[Theta_W Theta_b]", "cross_wb", "wb"),
    ("E[Theta]", "mean", "t"),
    ("E[Theta^2]", "second", "tt"),
    ("dispersion", "dispersion", None),
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "dispersion",
        help="NTK moments and dispersion E[Theta^2]/E[Theta]^2 of a finite ReLU network (SP, sigma_b = 0)",
        description="Exact finite-width moments of the diagonal NTK (derived in meanfield.dispersion.ntk_moments), "
        "the infinite-depth-and-width limit at lambda = L/M, and optionally a Monte Carlo estimate.",
    )
    p.add_argument("--sigma-w2", type=float, required=True, help="weight variance sigma_w^2 > 0")
    p.add_argument("--width", type=int, required=True, help="hidden width M >= 1")
    p.add_argument("--depth", type=int, required=True, help="depth L >= 1 (number of weight layers)")
    p.add_argument("--alpha0", type=float, default=1.0, help="input dimension n_0 = round(alpha0 * M) (default 1)")
    p.add_argument("--x0-norm2", type=float, default=1.0, help="squared input norm ||x||^2 (default 1)")
    p.add_argument(
        "--published",
        action="store_true",
        help="also show Seleznova & Kutyniok 2022, Thm 3.2 / Thm 3.1 as published",
    )
    p.add_argument("--simulate", type=int, default=0, metavar="N", help="Monte Carlo over N random networks")
    p.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo (default 0)")
    p.add_argument("--plot", metavar="PNG", help="write the dispersion against depth 1..L at this width, with the "
                   "Monte Carlo point of --simulate (.png appended when the name has no extension)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(run=run)


def _check(args):
    if args.width < 1:
        raise UsageError(f"--width must be an integer >= 1, got {args.width}")
    if args.depth < 1:
        raise UsageError(f"--depth must be an integer >= 1, got {args.depth}")
    for name in ("sigma_w2", "alpha0", "x0_norm2"):
        v = getattr(args, name)
        if not (math.isfinite(v) and v > 0):
            raise UsageError(f"--{name.replace('_', '-')} must be a finite number > 0, got {v}")
    if args.simulate < 0:
        raise UsageError(f"--simulate must be >= 0, got {args.simulate}")
    if args.seed < 0:  # refused whatever --simulate is: a seed the run would not accept is an error, not ignored
        raise UsageError(f"--seed must be an integer >= 0, got {args.seed}")
    n0 = round(args.alpha0 * args.width)
    if n0 < 1:
        raise UsageError(f"--alpha0 * --width must round to an input dimension >= 1, got {args.alpha0 * args.width}")
    if args.simulate and args.simulate < 3:
        raise UsageError(f"--simulate needs at least 3 networks, got {args.simulate}")
    # the network's width tuple and the moment recursion's per-layer arrays (about 30 float64 a layer), before the
    # Network is built; the Monte Carlo checks its own (meanfield.dispersion.sample_ntk_diagonal)
    check_memory(8.0 * 64 * args.depth, f"the moments of a depth-{args.depth} network", "use a smaller --depth")
    return n0


def _draws(sample, key):
    tw, tb = sample.theta_w, sample.theta_b
    t = tw + tb
    return {"w": tw, "b": tb, "ww": tw * tw, "bb": tb * tb, "wb": tw * tb, "t": t, "tt": t * t}[key]


def run(args) -> Result:
    from .. import dispersion as dsp
    from ..network import Network

    plot = plot_path(args.plot)  # checked before the work
    n0 = _check(args)
    net = Network(args.depth, "relu", args.sigma_w2, 0.0, "standard", width=args.width)
    lam = args.depth / args.width
    alpha0_eff = n0 / (args.width * args.x0_norm2)  # the EOC limit sees n_0 / (M ||x||^2) (dispersion_limit)
    exact = dsp.ntk_moments(net, n0, args.x0_norm2)
    published = dsp.ntk_moments(net, n0, args.x0_norm2, form="published") if args.published else None
    limit = dsp.dispersion_limit(args.sigma_w2, lam, alpha0=alpha0_eff)
    limit_published = (
        dsp.dispersion_limit(args.sigma_w2, lam, alpha0=alpha0_eff, form="published") if args.published else None
    )

    header = ["quantity", "exact"] + (["published (Thm 3.2)"] if args.published else [])
    sim = None
    if args.simulate:
        sample = dsp.sample_ntk_diagonal(net, n0, args.simulate, x0_norm2=args.x0_norm2, seed=args.seed)
        est = dsp.estimate(sample.theta, n_boot=200, seed=args.seed)
        sim = {}
        for _label, field, key in _ROWS:
            if key is None:
                value, stderr = est.naive, est.naive_stderr
            else:
                draws = _draws(sample, key)
                value, stderr = float(draws.mean()), float(draws.std(ddof=1) / math.sqrt(draws.size))
            entry = {
                "value": value,
                "stderr": stderr,
                "z_exact": (value - getattr(exact, field)) / stderr if stderr > 0 else None,
            }
            if published is not None:
                entry["z_published"] = (value - getattr(published, field)) / stderr if stderr > 0 else None
            sim[field] = entry
        sim["loo_ratio"] = {"value": est.ratio, "bootstrap_stderr": est.stderr}
        header += ["MC", "+- stderr", "z(exact)"] + (["z(published)"] if args.published else [])

    rows = []
    for label, field, _ in _ROWS:
        row = [label, getattr(exact, field)]
        if published is not None:
            row.append(getattr(published, field))
        if sim is not None:
            e = sim[field]
            row += [e["value"], e["stderr"], _z(e["z_exact"])]
            if published is not None:
                row.append(_z(e["z_published"]))
        rows.append(row)

    notes = [
        f"widths n_0..n_(L-1) = [{n0}] + [{args.width}] x {args.depth - 1}, sigma_w2 = {args.sigma_w2:g}, "
        f"||x||^2 = {args.x0_norm2:g}, lambda = L/M = {lam:.6g}",
        f"limit M, L -> inf at lambda = {lam:.6g} (corrected): {limit:.8g}"
        + (f"; Thm 3.1 as published: {limit_published:.8g}" if args.published else ""),
    ]
    if math.isinf(exact.mean):
        notes.append(
            f"moments overflow float64: log E[Theta] = {exact.log_mean:.8g}, log E[Theta^2] = {exact.log_second:.8g}"
        )
    if sim is not None:
        notes.append(
            f"Monte Carlo: {args.simulate} networks (projection sampler, seed {args.seed}); App. C.3 estimator "
            f"(1/N prefactor) {sim['loo_ratio']['value']:.6g} +- {sim['loo_ratio']['bootstrap_stderr']:.2g} "
            "(bootstrap)"
        )
    data = {
        "widths": {"n0": n0, "width": args.width, "depth": args.depth},
        "sigma_w2": args.sigma_w2,
        "x0_norm2": args.x0_norm2,
        "lambda": lam,
        "exact": exact.as_dict(),
        "limit": {"corrected": limit},
    }
    if args.published:
        data["published"] = published.as_dict()
        data["limit"]["published"] = limit_published
    if sim is not None:
        data["simulation"] = {"n_nets": args.simulate, "seed": args.seed, **sim}
    if plot:
        from ._figures import dispersion_depth

        point = None if sim is None else (sim["dispersion"]["value"], sim["dispersion"]["stderr"])
        notes.append(dispersion_depth(args.sigma_w2, args.width, args.depth, n0, args.x0_norm2, args.published,
                                      point, plot))  # fmt: skip
    return Result(data=data, header=header, rows=rows, notes=notes)


def _z(z):
    return "n/a" if z is None else f"{z:+.2f}"
