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
    rates = None
    if args.learning_rates_from is not None:
        from ..experiments.lr_sweep import chosen_learning_rates

        rates = chosen_learning_rates(_read_json(args.learning_rates_from, "--learning-rates-from")).learning_rates
    protocol = preset(args.preset, depths=args.depths, lr_scale=args.lr_scale, residual=args.residual,
                      stop=not args.no_stop, learning_rates=rates)  # fmt: skip
    with _executor(args.workers) as ex:
        doc = equilibrium_experiment(protocol, args.dataset, args.runs, out, args.seed, ex, _show(args), _command(args))
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


def _read_json(path, flag):
    import json

    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{flag}: cannot read {path!r} as JSON ({exc})") from None


def _executor(workers):
    """A process pool of ``workers`` processes as a context manager, or (one worker) a context giving None."""
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if workers == 1:
        from contextlib import nullcontext

        return nullcontext()
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers)


def _command(args):
    """The command line as typed, stored in the results file."""
    return "meanfield " + " ".join(shlex.quote(a) for a in (args.argv or sys.argv[1:]))


def _show(args):
    """A progress bar on a terminal, never in JSON mode."""
    return False if args.json else None


def _lr_sweep(args) -> Result:
    from ..experiments.eh_protocol import preset
    from ..experiments.lr_sweep import chosen_learning_rates, learning_rate_sweep

    out = output_path(args.out, ".json", "--out")
    try:
        factors = [float(t) for t in args.factors.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--factors must be comma-separated numbers, got {args.factors!r}") from None
    protocol = preset(args.preset, depths=args.depths, residual=args.residual)
    with _executor(args.workers) as ex:
        doc = learning_rate_sweep(protocol, args.dataset, factors, args.runs, args.validation, out, args.seed, ex,
                                  _show(args), _command(args))  # fmt: skip
    c = chosen_learning_rates(doc)
    data = {"out": out, "wall_seconds": doc["wall_seconds"], "depths": c.depths, "factors": c.factors, "lr": c.lr,
            "accuracy": c.accuracy, "learning_rates": {str(k): v for k, v in c.learning_rates.items()}}  # fmt: skip
    header = ["L", *(f"acc x{f:.3g}" for f in c.factors), "chosen lr"]
    notes = [f"validation accuracy (mean of {args.runs} run(s)) on {args.validation:.0%} of the training rows; "
             f"wall time {doc['wall_seconds']:.1f} s" + (f"; runs kept in {out}" if out else "")]  # fmt: skip
    return Result(data, header, c.table(), notes)


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
    e.add_argument(
        "--learning-rates-from",
        default=None,
        metavar="SWEEP.json",
        help="use the rates chosen by held-out accuracy in a 'meanfield experiment lr-sweep' file",
    )
    add_json_flag(e)
    e.set_defaults(run=_equilibrium, argv=None)
    w = inner.add_parser(
        "lr-sweep", help="learning rate per depth chosen by held-out accuracy (Lou et al. 2022's choice; resumable)"
    )
    w.add_argument("--preset", default="smoke", choices=("paper", "smoke"), help="protocol (default smoke)")
    w.add_argument("--dataset", default="digits", choices=("digits", "mnist1d"), help="data set (default digits)")
    w.add_argument("--factors", default="0.3333333333333333,1,3", help="multipliers of the preset's rates")
    w.add_argument("--runs", type=int, default=1, help="networks per depth and rate (default 1)")
    w.add_argument("--validation", type=finite_float("validation"), default=0.2,
                   help="fraction of the training rows held out (default 0.2)")  # fmt: skip
    w.add_argument("--depths", type=_int_list, default=None, help="comma-separated subset of the preset's depths")
    w.add_argument("--residual", default=None, choices=("1", "1/sqrt(L)"), help="residual branch scale beta")
    w.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    w.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    w.add_argument("--out", default=None, help="JSON file keeping finished runs; rerun to resume")
    add_json_flag(w)
    w.set_defaults(run=_lr_sweep, argv=None)
