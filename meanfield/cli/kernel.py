"""``meanfield kernel``: infinite-width NNGP and NTK of a dataset stored as .npy."""

from __future__ import annotations

import os

import numpy as np

from . import Result, add_json_flag, add_network_arguments, load_array, network_options, output_path, plot_path


def _kernel(args) -> Result:
    from ..network import Network
    from ..propagation import kernels

    if args.block is not None:  # asked for the on-disk path
        return _kernel_to_disk(args)
    output = output_path(args.output, ".npz", "--output")  # checked before the work; the path really written
    plot = plot_path(args.plot)
    X = load_array(args.input, "--input")
    X2 = load_array(args.input2, "--input2") if args.input2 else None
    width = args.width
    net = Network(args.depth, args.activation, parameterization=args.parameterization, width=width,
                  **network_options(args, args.depth))  # fmt: skip
    if output and not _fits(X, X2, net, args.layers):  # too large for memory: tile by tile into a directory
        args.output = output[: -len(".npz")]  # the directory: K for --output K or K.npz
        return _kernel_to_disk(args, X, X2, net)
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


def _fits(X, X2, net, layers) -> bool:
    """Whether the in-memory kernels (and their .npz) fit in the memory available now."""
    from .._checks import check_memory
    from ..propagation.dataset import kernels_nbytes

    n, d = X.shape
    m = n if X2 is None else X2.shape[0]
    nl = net.depth if layers else 0
    try:
        check_memory(kernels_nbytes(n, m, d, net.depth, nl), "kernels", "")
    except ValueError:
        return False
    return True


def _kernel_to_disk(args, X=None, X2=None, net=None) -> Result:
    """``--block``, or kernels too large for memory: :func:`meanfield.kernels_to_disk` into the directory
    ``--output`` (a directory of .npy files; a run interrupted there resumes when the command is repeated)."""
    from ..network import Network
    from ..propagation.ondisk import kernels_to_disk
    from . import UsageError

    if not args.output:
        raise UsageError("--block writes the kernels tile by tile to disk: give the directory with --output DIR")
    out = args.output
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"--output {out!r} is a file; the kernels on disk are a directory of .npy files")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise UsageError(f"--output {out!r}: the directory {parent!r} does not exist or is not writable")
    if X is None:
        X = load_array(args.input, "--input")
        X2 = load_array(args.input2, "--input2") if args.input2 else None
        net = Network(args.depth, args.activation, parameterization=args.parameterization, width=args.width,
                      **network_options(args, args.depth))  # fmt: skip
    block = 4096 if args.block is None else args.block
    k = kernels_to_disk(X, net, out, X2=X2, block=block, layers=args.layers, progress=None)
    n, m = k.shape
    diag = n == m
    data = {
        "shape": [n, m],
        "depth": net.depth,
        "activation": net.activation.name,
        "output": out,
        "format": "npy-directory",
        "block": block,
        "ntk_diag_mean": float(np.mean(np.diagonal(k.ntk))) if diag else None,
        "nngp_diag_mean": float(np.mean(np.diagonal(k.nngp))) if diag else None,
    }
    names = ("nngp", "ntk") + (("nngp_layers", "backward", "ntk_layers") if k.layers else ())
    files = ", ".join(f"{a}.npy" for a in names)
    rows = [["ntk", f"{n}x{m}", os.path.join(out, "ntk.npy")], ["nngp", f"{n}x{m}", os.path.join(out, "nngp.npy")]]
    notes = [f"wrote {files} to the directory {out} tile by tile (block {block}); "
             "read them with numpy.load(file, mmap_mode='r')"]  # fmt: skip
    return Result(data, ["kernel", "shape", "file"], rows, notes)


def add_parser(sub) -> None:
    p = sub.add_parser("kernel", help="infinite-width NNGP and NTK of the rows of a .npy array")
    p.add_argument("--input", required=True, help="inputs X, an (n, d) .npy array")
    p.add_argument("--input2", help="optional second inputs X2 (m, d) for a cross kernel")
    p.add_argument("--depth", type=int, required=True, help="number of weight matrices L")
    add_network_arguments(p, options=True)
    p.add_argument("--parameterization", default="ntk", choices=["ntk", "standard"])
    p.add_argument("--width", type=int, default=None, help="hidden width (needed for --parameterization standard)")
    p.add_argument("--layers", action="store_true", help="also per-layer NNGP, backward and NTK kernels")
    p.add_argument("--output", help="write the kernels to this .npz file (.npz is appended when missing); with "
                   "--block, or when they do not fit in memory, to this directory of .npy files")  # fmt: skip
    p.add_argument("--block", type=int, default=None, help="compute tile by tile (block x block, a multiple of 16) "
                   "into the directory --output, in memory O(block n); a repeated command resumes")  # fmt: skip
    p.add_argument("--plot", metavar="PNG", help="write per-layer heat maps of --plot-kernel (.png appended when the "
                   "name has no extension)")  # fmt: skip
    p.add_argument("--plot-kernel", choices=("nngp", "backward", "ntk"), default="nngp",
                   help="the per-layer kernel --plot draws: Sigma_l, B_l or Theta^(l) (default nngp)")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(run=_kernel)
