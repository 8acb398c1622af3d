"""``meanfield silent``: silent-alignment timescales and alignment limits of linear networks (Atanasov et al. 2022)."""

from __future__ import annotations

import numpy as np

from .. import silent as sa
from . import Result, UsageError, add_json_flag


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "silent",
        help="silent-alignment timescales and NTK alignment limits of linear networks (Atanasov et al. 2022)",
        description=(
            "Predicted alignment time, half-loss time and NTK-target alignment limits of a linear network "
            "trained by gradient flow from small Gaussian initialization on whitened data "
            "(Atanasov et al. 2022, in corrected forms)."
        ),
    )
    p.add_argument("--dim", type=int, default=30, help="input dimension D (default 30)")
    p.add_argument("--sigma", type=float, default=1e-3, help="initialization scale sigma (default 1e-3)")
    p.add_argument("--width", type=int, default=50, help="hidden width N (default 50)")
    p.add_argument("--scale", type=float, default=1.0, help="target scale s, y = s beta.x (default 1)")
    p.add_argument("--depth", type=int, default=2, help="number of weight matrices L >= 2 (default 2)")
    p.add_argument("--frac", type=float, default=0.9, help="alignment fraction for t_A (default 0.9)")
    add_json_flag(p)
    p.set_defaults(run=run)


def run(args) -> Result:
    D, N, L, s, sigma = args.dim, args.width, args.depth, args.scale, args.sigma
    if D < 2:
        raise UsageError(f"--dim must be an integer >= 2, got {D}")
    if N < 1:
        raise UsageError(f"--width must be an integer >= 1, got {N}")
    if L < 2:
        raise UsageError(f"--depth must be an integer >= 2, got {L}")
    for name, v in (("--sigma", sigma), ("--scale", s)):
        if not np.isfinite(v) or v <= 0:
            raise UsageError(f"{name} must be a finite number > 0, got {v}")
    if not 0 < args.frac < 1:
        raise UsageError(f"--frac must be in (0, 1), got {args.frac}")

    q0 = sa.expected_q0(sigma, N, D)
    t_align = sa.alignment_time(D, s, args.frac)
    t_half = sa.half_loss_time(s, q0)
    limits = sa.alignment_limits(D, 2)
    A0, A_inf_2 = limits.A0, limits.A_inf
    data = {
        "dim": D,
        "width": N,
        "sigma": sigma,
        "scale": s,
        "depth": L,
        "frac": args.frac,
        "q0_expected": q0,
        "two_layer": {
            "t_align": t_align,
            "t_half": t_half,
            "t_half_published": sa.half_loss_time(s, q0, form="published"),
            "separation": t_half / t_align,
            "A0": A0,
            "A_inf": A_inf_2,
        },
    }
    rows = [
        ["q0 = sigma^2 (1 + N/D) / 2", q0, "Atanasov et al. 2022, eq. (17)"],
        ["t_A (two-layer, isotropic M0)", t_align, "derived here (alignment_time)"],
        ["t_1/2 (two-layer, r0 = 0)", t_half, "corrected phase-II onset (half_loss_time)"],
        ["t_1/2 / t_A", t_half / t_align, "silent if >> 1"],
        ["A_0 = 1/sqrt(D)", A0, "derived here (alignment_limits)"],
        ["A_inf (L = 2) = 2/sqrt(D+3)", A_inf_2, "derived here (alignment_limits)"],
    ]
    notes = [
        "times are gradient-flow times (learning rate x steps) for whitened data, X^T X / P = I",
        f"the published phase-II onset log(s/q0)/s = {data['two_layer']['t_half_published']:.4g} "
        "(Atanasov et al. 2022, sec. 3.1) is ~2x too late",
    ]
    if L >= 3:
        w0 = sigma**L  # balanced, aligned start with u0 = sigma (assumption)
        if w0 >= s:
            raise UsageError(f"--sigma too large for depth {L}: sigma^L = {w0:g} must be < --scale {s}")
        A_inf_L = sa.alignment_limits(D, L).A_inf
        deep = {
            "A_inf": A_inf_L,
            "t_half_balanced": sa.deep_linear_time(s / 2, L, s, w0),
            "t_half_balanced_published_ode": sa.deep_linear_time(s / 2, L, s, w0, form="published"),
            "t_blowup": sa.deep_linear_blowup_time(L, s, w0),
        }
        data["deep"] = deep
        rows += [
            [f"A_inf (L = {L}) = L/sqrt(L^2+D-1)", A_inf_L, "derived here (alignment_limits)"],
            [f"t(w = s/2), balanced u0 = sigma, L = {L}", deep["t_half_balanced"], "eq. (39) with the factor L"],
            ["t_* = u0^-(L-2) / ((L-2) s)", deep["t_blowup"], "eq. (40), corrected"],
        ]
        notes.append(
            "deep rows assume a balanced start aligned with the task (u0 = sigma); from random Gaussian init "
            "t_1/2 ~ sigma^-(L-2) with a heuristic prefactor"
        )
    return Result(data=data, header=["quantity", "value", "source"], rows=rows, notes=notes)
