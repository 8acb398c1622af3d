"""``meanfield peak-layer``: the predicted equilibrium layer l*(L) of Lou et al. 2022 (Cor. 1) for given depths."""

from __future__ import annotations

import warnings

import numpy as np

from .._checks import check_memory
from ..equilibrium import peak_layer, peak_layer_constant
from ..equilibrium.asymptotics import SCORES
from ..equilibrium.information import FORMS, MAX_DEPTH
from ..equilibrium.peak import RESIDUAL_SCALINGS
from ..network import Network
from ..stats import scaling_fit
from . import (
    ROW_BYTES,
    Result,
    UsageError,
    add_json_flag,
    add_network_arguments,
    check_rows,
    network_options,
    plot_path,
)


def parse_depths(tokens) -> np.ndarray:
    """Depths from tokens ``10 20 50`` and ranges ``a:b`` or ``a:b:step`` (inclusive), sorted and unique.

    Ranges become numpy ranges (no Python list per depth); a request whose table would not fit in memory is
    refused before anything is computed (:func:`meanfield.cli.check_rows`).
    """
    parts_out = []
    count = 0
    for tok in tokens:
        parts = str(tok).split(":")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise UsageError(f"--depth takes integers or ranges a:b[:step], got {tok!r}") from None
        if len(nums) == 1:
            parts_out.append(np.array(nums, dtype=np.int64))
            count += 1
            continue
        if len(nums) not in (2, 3) or (len(nums) == 3 and nums[2] < 1) or nums[1] < nums[0]:
            raise UsageError(f"--depth range must be a:b or a:b:step with a <= b and step >= 1, got {tok!r}")
        a, b = nums[0], nums[1]
        if b > MAX_DEPTH:
            raise UsageError(f"--depth must be <= {MAX_DEPTH}, got {tok!r}")
        step = nums[2] if len(nums) == 3 else 1
        count += (b - a) // step + 1
        check_rows(count, f"a table of {count} depths", "ask for fewer depths, e.g. a range with a step (a:b:step)")
        parts_out.append(np.arange(a, b + 1, step, dtype=np.int64))
    return np.unique(np.concatenate(parts_out))


def _constant(res) -> float:
    """C of the asymptote C L^(3/5) where it is known (NaN otherwise: options without a derived law)."""
    return float(np.atleast_1d(res.asymptote)[0] / np.atleast_1d(res.depth)[0] ** 0.6)


def _plot(path, res, fit):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    L = res.depth
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    ax.loglog(L, res.l_star, "o" if L.size <= 60 else "-", ms=4, label=r"$l^*(L)$")
    grid = np.geomspace(L.min(), L.max(), 200)
    const = _constant(res)
    if np.isfinite(const):
        ax.loglog(grid, const * grid**0.6, "k--", lw=1, label=rf"${const:.4g}\,L^{{3/5}}$")
    if fit is not None:
        ax.loglog(grid, fit.prefactor * grid**fit.slope, ":", lw=1, label=f"fit: slope {fit.slope:.3f}")
    ax.set_xlabel("depth L")
    ax.set_ylabel("predicted peak layer")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args) -> Result:
    plot = plot_path(args.plot)  # checked before the work; the path really written
    depths = parse_depths(args.depth)
    n, L_max = depths.size, int(depths.max())
    # the table (ROW_BYTES a row) and the curves (as in meanfield.equilibrium.information.check_loss_memory)
    check_memory(n * ROW_BYTES + 8.0 * (40 * L_max + 16 * n), f"peak-layer for {n} depths up to {L_max}",
                 "ask for fewer depths, e.g. a range with a step (a:b:step)")  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if args.residual_scaling != "fixed" and args.residual is None:
            raise UsageError("--residual-scaling inverse_sqrt needs --residual C (then beta = C / sqrt(L))")
        L_net = int(depths.max())
        schedule = [len(v) for v in (args.sigma_w2, args.sigma_b2) if isinstance(v, tuple)]
        if schedule and (depths.size > 1 or schedule[0] != L_net):
            raise UsageError(f"a per-layer --sigma-w2/--sigma-b2 list fixes the depth to {schedule[0]}; give --depth "
                             f"{schedule[0]} only")  # fmt: skip
        net = Network(L_net, args.activation, **network_options(args, L_net))
        res = peak_layer(net, depths, eps=args.eps, form=args.form, score=args.score,
                         residual_scaling=args.residual_scaling)  # fmt: skip
    notes = [f"warning: {w.message}" for w in caught if issubclass(w.category, UserWarning)]
    fit = scaling_fit(res.depth, res.l_star) if res.depth.size >= 3 else None
    if fit is not None:
        fixed = scaling_fit(res.depth, res.l_star, slope=0.6)
        notes.insert(0, f"log-log fit of l*: slope {fit.slope:.4f} +- {fit.slope_stderr:.4f}; with slope 3/5 fixed, "
                        f"C = {fixed.intercept:.4f} (l* ~ {fixed.prefactor:.4f} L^(3/5))")  # fmt: skip
    if plot:
        _plot(plot, res, fit)
        notes.append(f"plot written to {plot}")
    rows = [
        [int(L), int(ls), float(lc), float(a), float(f), float(b)]
        for L, ls, lc, a, f, b in zip(
            res.depth, res.l_star, res.l_cont, res.asymptote, res.forward, res.backward, strict=True
        )
    ]
    data = {
        "activation": args.activation,
        "sigma_w2": args.sigma_w2,
        "sigma_b2": args.sigma_b2,
        "residual": args.residual,
        "residual_scaling": args.residual_scaling,
        "normalization": args.normalization,
        "dropout": args.dropout,
        "eps": args.eps,
        "form": args.form,
        "score": args.score,
        "constant": peak_layer_constant(args.form, args.score) if net.plain else _constant(res),
        "depth": res.depth,
        "l_star": res.l_star,
        "l_cont": res.l_cont,
        "asymptote": res.asymptote,
        "forward": res.forward,
        "backward": res.backward,
        "fit": None
        if fit is None
        else {
            "slope": fit.slope,
            "slope_stderr": fit.slope_stderr,
            "intercept": fit.intercept,
            "intercept_stderr": fit.intercept_stderr,
        },  # fmt: skip
        "warnings": [str(w.message) for w in caught if issubclass(w.category, UserWarning)],
    }
    header = ["L", "l*", "l_cont", "C*L^(3/5)", "F(l*)", "B(l*)"]
    return Result(data=data, header=header, rows=rows, notes=notes)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "peak-layer",
        help="predicted layer of best kernel alignment, l*(L) ~ C L^(3/5) (Equilibrium Hypothesis)",
        description="Where forward and backward information loss balance (Lou et al. 2022, Thms. 1-2, Cor. 1): "
        "l*(L) = argmin_l |log F_l - log B_{l,L}| with F_l = sup(1 - c_l), B_{l,L} = sup prod g'(c_k).",
    )
    p.add_argument("--depth", nargs="+", required=True, metavar="L",
                   help="depths: integers and/or inclusive ranges a:b[:step], e.g. 10 20 50 or 10:1000")  # fmt: skip
    add_network_arguments(p, options=True)
    p.add_argument("--residual-scaling", choices=RESIDUAL_SCALINGS, default="fixed",
                   help="with --residual C: 'fixed' uses beta = C at every depth, 'inverse_sqrt' beta = C / sqrt(L) "
                   "(Hayou et al. 2021: --residual 1 --residual-scaling inverse_sqrt)")  # fmt: skip
    p.add_argument("--eps", type=float, default=0.5, help="pairs with x.x'/d <= 1 - eps, eps in (0, 2)")
    p.add_argument("--form", choices=FORMS, default="corrected", help="relative F (corrected) or Thm. 1's (published)")
    p.add_argument("--score", choices=SCORES, default="crossing", help="crossing of log F and log B, or harmonic")
    p.add_argument("--plot", metavar="PNG", help="write a log-log figure of l*(L) and C L^(3/5) (.png appended when "
                   "the name has no extension)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(run=run)
