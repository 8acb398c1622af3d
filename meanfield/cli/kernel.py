"""``meanfield kernel``: infinite-width NNGP and NTK of a dataset stored as .npy."""

from __future__ import annotations

import numpy as np

from . import Result, add_json_flag, add_network_arguments, load_array, network_options, output_path, plot_path


def _kernel(args) -> Result:
    from ..network import Network
    from ..propagation import kernels

    output = output_path(args.output, ".npz", "--output")  # checked before the work; the path really written
    plot = plot_path(args.plot)
    X = load_array(args.input, "--input")
    X2 = load_array(args.input2, "--input2") if args.input2 else None
    width = args.width
    net = Network(args.depth, args.activation, parameterization=args.parameterization, width=width,
                  **network_options(args, args.depth))  # fmt: skip
    k = kernels(X, net, X2=X2, layers=args.layers or bool(plot))
    arrays = {"nngp": k.nngp, "ntk": k.ntk}
    if args.layers:
        arrays.update(layers=np.array(k.layers), nngp_layers=k.nngp_layers, backward=k.backward,
                      ntk_layers=k.ntk_layers)  # fmt: skip
    if output:
        np.savez(output, **arrays)
    n, m = k.ntk.shape
    data = {
        "shape": [n, m],
        "depth": net.depth,
        "activation": net.activation.name,
        "output": output,
        "ntk_diag_mean": float(np.mean(np.diag(k.ntk))) if n == m else None,
        "nngp_diag_mean": float(np.mean(np.diag(k.nngp))) if n == m else None,
    }
    if args.json and not output:
        data.update({name: a for name, a in arrays.items()})
    rows = [["ntk", f"{n}x{m}", float(k.ntk.min()), float(k.ntk.max())],
            ["nngp", f"{n}x{m}", float(k.nngp.min()), float(k.nngp.max())]]  # fmt: skip
    notes = [f"saved {', '.join(arrays)} to {output}"] if output else ["use --output K.npz to save"]
    if plot:
        from .. import plot as mfplot
        from ._figures import save

        notes.append(save(mfplot.kernel_layers(k, args.plot_kernel), plot))
    return Result(data, ["kernel", "shape", "min", "max"], rows, notes)


def add_parser(sub) -> None:
    p = sub.add_parser("kernel", help="infinite-width NNGP and NTK of the rows of a .npy array")
    p.add_argument("--input", required=True, help="inputs X, an (n, d) .npy array")
    p.add_argument("--input2", help="optional second inputs X2 (m, d) for a cross kernel")
    p.add_argument("--depth", type=int, required=True, help="number of weight matrices L")
    add_network_arguments(p, options=True)
    p.add_argument("--parameterization", default="ntk", choices=["ntk", "standard"])
    p.add_argument("--width", type=int, default=None, help="hidden width (needed for --parameterization standard)")
    p.add_argument("--layers", action="store_true", help="also per-layer NNGP, backward and NTK kernels")
    p.add_argument("--output", help="write the kernels to this .npz file (.npz is appended when missing)")
    p.add_argument("--plot", metavar="PNG", help="write per-layer heat maps of --plot-kernel (.png appended when the "
                   "name has no extension)")  # fmt: skip
    p.add_argument("--plot-kernel", choices=("nngp", "backward", "ntk"), default="nngp",
                   help="the per-layer kernel --plot draws: Sigma_l, B_l or Theta^(l) (default nngp)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(run=_kernel)
