"""``meanfield experiment equilibrium``: the Equilibrium Hypothesis with the protocol of Lou et al. 2022 (resumable)."""

from __future__ import annotations

import shlex
import sys

from . import Result, UsageError, add_json_flag, finite_float, output_path


def _int_list(text):
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"--depths must be comma-separated integers, got {text!r}") from None


def _equilibrium(args) -> Result:
    from ..experiments.eh_protocol import equilibrium_experiment, preset, summarize_equilibrium

    out = output_path(args.out, ".json", "--out")
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    protocol = preset(args.preset, depths=args.depths, lr_scale=args.lr_scale, residual=args.residual,
                      stop=not args.no_stop)  # fmt: skip
    command = "meanfield " + " ".join(shlex.quote(a) for a in (args.argv or sys.argv[1:]))
    show = False if args.json else None  # a bar on a terminal, never in JSON mode
    if args.workers == 1:
        doc = equilibrium_experiment(protocol, args.dataset, args.runs, out, args.seed, None, show, command)
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.workers) as ex:
            doc = equilibrium_experiment(protocol, args.dataset, args.runs, out, args.seed, ex, show, command)
    s = summarize_equilibrium(doc)
    data = {
        "out": out,
        "wall_seconds": doc["wall_seconds"],
        "depths": s.depths,
        "runs": s.n_runs,
        "peak_mean": s.peak_mean,
        "peak_sd": s.peak_sd,
        "predicted": s.predicted,
        "test_acc": s.test_acc,
        "slope": s.slope,
        "slope_ci": list(s.slope_ci),
        "intercept35": s.intercept35,
        "intercept35_ci": list(s.intercept35_ci),
        "predicted_slope": s.predicted_slope,
        "verdict": s.verdict,
    }
    header = ["L", "runs", "peak_mean", "peak_sd", "l*(L)", "train_loss", "test_acc", "reached_stop"]
    notes = [s.verdict, f"wall time {doc['wall_seconds']:.1f} s" + (f"; runs kept in {out}" if out else "")]
    return Result(data, header, s.table(), notes)


def add_parser(sub) -> None:
    p = sub.add_parser("experiment", help="experiments on trained finite networks (equilibrium)")
    inner = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", parser_class=type(p))
    inner.required = True
    e = inner.add_parser(
        "equilibrium",
        help="trained peak layers vs l*(L) with the protocol of Lou et al. 2022 (resumable with --out)",
    )
    e.add_argument("--preset", default="smoke", choices=("paper", "smoke"), help="protocol (default smoke)")
    e.add_argument("--dataset", default="digits", choices=("digits", "mnist1d"), help="data set (default digits)")
    e.add_argument("--runs", type=int, default=5, help="independent initializations per depth (default 5)")
    e.add_argument("--depths", type=_int_list, default=None, help="comma-separated subset of the preset's depths")
    e.add_argument("--lr-scale", type=finite_float("lr-scale"), default=1.0, help="multiply every learning rate")
    e.add_argument("--residual", default=None, choices=("1", "1/sqrt(L)"), help="residual branch scale beta")
    e.add_argument("--no-stop", action="store_true", help="train for the whole epoch budgets (no stop at loss 0.1)")
    e.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    e.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    e.add_argument("--out", default=None, help="JSON file keeping finished runs; rerun to resume")
    add_json_flag(e)
    e.set_defaults(run=_equilibrium, argv=None)
