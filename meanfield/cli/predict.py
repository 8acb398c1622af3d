"""``meanfield predict``: infinite-width predictions of a trained network (NTK ensemble or NNGP posterior).

Examples::

    meanfield predict --train X.npy --targets y.npy --test Xt.npy --depth 10 --time 1,10,100 --json
    meanfield predict --train X.npy --targets y.npy --test Xt.npy --depth 10 --kernel nngp --diag-reg 1e-3 --output P
"""

from __future__ import annotations

import math

import numpy as np

from . import (
    Result,
    UsageError,
    add_json_flag,
    add_network_arguments,
    check_rows,
    finite_float,
    load_array,
    output_path,
)

#: test inputs listed per time in the table (all of them are in --json and --output)
MAX_TABLE_INPUTS = 20


def parse_times(text: str | None):
    """``"1,10,100"`` -> array of times (``inf`` allowed); None -> None (the end of training)."""
    if text is None:
        return None
    try:
        times = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--time must be comma-separated numbers >= 0 (inf allowed), got {text!r}") from None
    if not times or any(math.isnan(v) or v < 0 for v in times):
        raise UsageError(f"--time must be comma-separated numbers >= 0 (inf allowed), got {text!r}")
    return np.array(times)


def _predict(args) -> Result:
    from ..network import Network
    from ..prediction import predict

    output = output_path(args.output, ".npz", "--output")  # checked before the work; the path really written
    times = parse_times(args.time)
    if args.kernel == "nngp" and (times is not None or args.lr is not None):
        raise UsageError("--time and --lr are for --kernel ntk (the NNGP posterior has no training time)")
    X = load_array(args.train, "--train")
    y = load_array(args.targets, "--targets")
    Xt = load_array(args.test, "--test")
    for name, a in (("--train", X), ("--test", Xt)):
        if a.ndim != 2:
            raise UsageError(f"{name} must hold a 2-D array (n, d), got shape {a.shape}")
    if y.ndim not in (1, 2):
        raise UsageError(f"--targets must hold a 1-D (n,) or 2-D (n, k) array, got shape {y.shape}")
    net = Network(args.depth, args.activation, args.sigma_w2, args.sigma_b2, args.parameterization, args.width)
    cov = not args.mean_only
    try:
        p = predict(net, X, y, Xt, t=times, kernel=args.kernel, diag_reg=args.diag_reg, lr=args.lr, covariance=cov)
    except ValueError as exc:  # name the command-line options, not the Python arguments
        text = str(exc)
        for py, opt in (("X_train", "--train"), ("y_train", "--targets"), ("X_test", "--test"),
                        ("diag_reg", "--diag-reg"), ("lr", "--lr"), ("t ", "--time ")):  # fmt: skip
            if text.startswith(py):
                text = opt + text[len(py) :]
        raise UsageError(text) from None
    arrays = {"mean": p.mean, "train_mean": p.train_mean}
    if cov:
        arrays.update(covariance=p.covariance, variance=p.variance, train_variance=p.train_variance)
    if p.t is not None:
        arrays["t"] = np.atleast_1d(p.t)
    if output:
        np.savez(output, **arrays)
    m = Xt.shape[0]
    data = {
        "kernel": p.kernel,
        "t": None if p.t is None else np.atleast_1d(p.t).tolist(),
        "lr": p.lr,
        "diag_reg": p.diag_reg,
        "n_train": X.shape[0],
        "n_test": m,
        "outputs": 1 if y.ndim == 1 else y.shape[1],
        "output": output,
    }
    if not output:
        data.update({k: v for k, v in arrays.items() if k not in ("covariance", "t")})
    # table: one row per (time, test input), the first MAX_TABLE_INPUTS inputs
    t_list = [None] if p.t is None else np.atleast_1d(p.t).tolist()
    mean = (p.mean if y.ndim == 2 else p.mean[..., None]).reshape(len(t_list), m, -1)
    var = None if p.variance is None else p.variance.reshape(len(t_list), m)
    shown = min(m, MAX_TABLE_INPUTS)
    check_rows(len(t_list) * shown, "the table of predictions", "use --json or --output")
    rows = []
    for i, t in enumerate(t_list):
        for j in range(shown):
            row = ["-" if t is None else t, j] + [float(v) for v in mean[i, j]]
            row.append(float(np.sqrt(max(var[i, j], 0.0))) if var is not None else "-")
            rows.append(row)
    header = ["t", "input"] + [f"mean[{a}]" for a in range(mean.shape[-1])] + ["sd"]
    notes = [f"saved {', '.join(arrays)} to {output}"] if output else []
    if shown < m:
        notes.append(f"first {shown} of {m} test inputs shown; --json or --output for all")
    return Result(data, header, rows, notes)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="infinite-width predictions: the NTK-trained ensemble over time or the NNGP posterior",
        description="Mean (and variance) of the outputs on test inputs of infinitely wide networks trained by "
        "gradient flow / descent on the MSE loss (Lee et al. 2019), or the exact NNGP posterior.",
    )
    p.add_argument("--train", required=True, metavar="X.npy", help="training inputs, an (n, d) .npy array")
    p.add_argument("--targets", required=True, metavar="y.npy", help="training targets, an (n,) or (n, k) .npy array")
    p.add_argument("--test", required=True, metavar="Xt.npy", help="test inputs, an (m, d) .npy array")
    p.add_argument("--depth", type=int, required=True, help="number of weight matrices L")
    add_network_arguments(p)
    p.add_argument("--parameterization", default="ntk", choices=["ntk", "standard"])
    p.add_argument("--width", type=int, default=None, help="hidden width (needed for --parameterization standard)")
    p.add_argument("--kernel", default="ntk", choices=["ntk", "nngp"], help="ntk ensemble (default) or nngp posterior")
    p.add_argument("--time", help="comma-separated training times, e.g. 1,10,100,inf (default: end of training)")
    p.add_argument("--lr", type=finite_float("lr"), default=None,
                   help="predict discrete gradient descent at this learning rate (times: multiples of it)")  # fmt: skip
    p.add_argument("--diag-reg", type=finite_float("diag-reg"), default=0.0,
                   help="added to the training kernel's diagonal (the NNGP noise variance); default 0")  # fmt: skip
    p.add_argument("--mean-only", action="store_true", help="skip the covariance")
    p.add_argument("--output", help="write the predictions to this .npz file (.npz is appended when missing)")
    add_json_flag(p)
    p.set_defaults(run=_predict)
