"""The ``meanfield`` command line: one module per command group in this package.

Each command module defines ``add_parser(subparsers)``; the parser it adds sets ``run=<callable>``,
a function of the parsed arguments that returns a :class:`Result` (rows for the table, a dict for ``--json``).

Exit status and messages: 0 on success; 2 with a one-line message, never a traceback, for bad arguments, an
unreadable input, an output that cannot be written and a request that does not fit in memory (refused before it
starts, :func:`meanfield._checks.check_memory`); 130 with one line on Ctrl-C; 141 without a word when the reader of
stdout goes away (``meanfield peak-layer ... | head -1``). Output files are written where the message says: a path
without the suffix gets it (``--output K`` writes and reports ``K.npz``), a directory is refused.

JSON (``--json``) is strict JSON (RFC 8259): numbers that are not finite are the strings ``"nan"``, ``"inf"`` and
``"-inf"`` (Python's ``float()`` reads them back), never ``NaN``/``Infinity`` tokens or ``null``; ``null`` only
marks a value that does not exist (e.g. no fit with fewer than three depths).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np

from .._checks import check_memory

# command modules, in the order ``meanfield --help`` lists them
COMMANDS = (
    "peak-layer",
    "phase",
    "kernel",
    "simulate",
    "dispersion",
    "silent",
    "nfa-early",
    "predict",
    "phase-diagram",
    "experiment",
)

#: bytes per row of a printed table or of its JSON (Python objects, formatted cells, the output text; measured
#: about 1.1 kB for ``peak-layer``)
ROW_BYTES = 2048

EPILOG = (
    "exit status: 0 ok; 2 bad input, unwritable output or a request that does not fit in memory (one line on "
    'stderr); 130 interrupted. --json prints strict JSON: numbers that are not finite are the strings "nan", '
    '"inf", "-inf" (float() reads them back); null marks a value that does not exist.'
)


@dataclass
class Result:
    """What a command returns: a JSON-able dict and the rows of a readable table."""

    data: dict
    header: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class UsageError(ValueError):
    """Bad command-line input: reported in one line, exit status 2."""


def _jsonable(obj):
    """``obj`` with arrays as lists and every non-finite float as ``"nan"``, ``"inf"`` or ``"-inf"``."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def to_json(data) -> str:
    """The ``--json`` text of a command's data: strict JSON, non-finite numbers as strings (:func:`_jsonable`)."""
    return json.dumps(_jsonable(data), indent=2, allow_nan=False)


def check_rows(n_rows: int, what: str, hint: str) -> None:
    """Refuse a table of ``n_rows`` rows that would not fit in memory (:data:`ROW_BYTES` each)."""
    check_memory(float(n_rows) * ROW_BYTES, what, hint)


def output_path(path: str | None, suffix: str, option: str) -> str | None:
    """The path a file given as ``option`` will really be written to, checked before any work is done.

    ``suffix`` (``".npz"``) is appended when missing, as ``numpy.savez`` does, so the reported path is the written
    one; a directory, a missing directory or one without write permission is a :class:`UsageError`.
    """
    if path is None:
        return None
    if not path:
        raise UsageError(f"{option} must be a file name, got an empty string")
    if os.path.isdir(path):
        raise UsageError(
            f"{option} {path!r} is a directory; give a file name, e.g. {os.path.join(path, 'out' + suffix)}"
        )
    if not path.endswith(suffix):
        path += suffix
    if os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a directory")
    _check_parent(path, option)
    return path


def plot_path(path: str | None, option: str = "--plot") -> str | None:
    """Like :func:`output_path` for a figure: a name without an extension gets ``.png``; other extensions must be a
    format matplotlib writes."""
    if path is None:
        return None
    if not path:
        raise UsageError(f"{option} must be a file name, got an empty string")
    if os.path.isdir(path):
        raise UsageError(f"{option} {path!r} is a directory; give a file name, e.g. {os.path.join(path, 'plot.png')}")
    ext = os.path.splitext(path)[1].lower()
    if not ext:
        path += ".png"
    else:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = FigureCanvasBase.get_supported_filetypes()
        if ext[1:] not in formats:
            raise UsageError(
                f"{option} {path!r}: unknown figure format {ext!r}; use one of {', '.join(sorted(formats))}"
            )
    _check_parent(path, option)
    return path


def _check_parent(path: str, option: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"{option} {path!r}: directory {parent!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path!r}: directory {parent!r} is not writable")


def load_array(path: str, option: str) -> np.ndarray:
    """The real numeric array of a ``.npy`` file (``numpy.save``), read with ``allow_pickle=False``.

    Text files, ``.npz`` archives and arrays of Python objects are refused with what is expected instead.
    """
    expected = "an (n, d) array of real numbers saved with numpy.save (a .npy file)"
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {path!r}: {exc.strerror or exc}") from None
    if magic.startswith(b"PK"):
        raise UsageError(f"{option} {path!r} is a .npz archive; it takes {expected}, e.g. "
                         f"numpy.save('X.npy', numpy.load({path!r})['X'])")  # fmt: skip
    if magic != b"\x93NUMPY":
        raise UsageError(f"{option} {path!r} is not a .npy file; it takes {expected} (for a text table: "
                         f"numpy.save('X.npy', numpy.loadtxt({path!r})))")  # fmt: skip
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc) or "Object arrays" in str(exc):
            raise UsageError(f"{option} {path!r} holds Python objects (dtype object); it takes {expected}") from None
        raise UsageError(f"{option}: cannot read {path!r} as a .npy file ({exc}); it takes {expected}") from None
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {path!r} ({exc}); it takes {expected}") from None
    if arr.dtype.kind not in "biuf":
        raise UsageError(f"{option} {path!r} holds an array of dtype {arr.dtype}; it takes {expected}")
    return arr


def _fmt(v) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.6g}"
    return str(v)


def format_table(header, rows) -> str:
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def finite_float(name: str):
    """An argparse ``type`` that parses a finite float and names the option ``--name`` in its error."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"--{name} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"--{name} must be finite, got {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in its error message
    return parse


def variances_arg(name: str):
    """An argparse ``type`` for ``--name``: a number, or a comma list of per-layer values (a tuple). Their ranges are
    checked by :class:`meanfield.Network` (a ValueError naming ``sigma_w2`` or ``sigma_b2``)."""

    def parse(text):
        parts = [p.strip() for p in str(text).split(",")]
        values = []
        for p in parts:
            try:
                v = float(p)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"--{name} must be a number or a comma list of numbers (one per weight layer, input layer "
                    f"first), got {text!r}"
                ) from None
            if not math.isfinite(v):
                raise argparse.ArgumentTypeError(f"--{name} values must be finite, got {text!r}")
            values.append(v)
        return values[0] if len(values) == 1 else tuple(values)

    parse.__name__ = name
    return parse


def _positive(name: str, high: float | None = None):
    """An argparse ``type``: a finite number > 0 (and <= ``high``), naming ``--name`` in its error."""

    def parse(text):
        span = f"a number in (0, {high:g}]" if high is not None else "a number > 0"
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name} must be {span}, got {text!r}") from None
        if not (math.isfinite(value) and value > 0 and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"--{name} must be {span}, got {text!r}")
        return value

    parse.__name__ = name
    return parse


def add_network_arguments(
    parser: argparse.ArgumentParser, activation: str = "relu", sigma_w2: float = 2.0, options: bool = False
) -> None:
    """The options every command that builds a :class:`meanfield.Network` shares: activation and both variances.

    With ``options=True`` (commands whose theory implements them: ``kernel``, ``phase``, ``peak-layer``) also the
    architecture options of the spec, read back by :func:`network_options`: ``--sigma-w2``/``--sigma-b2`` as a
    number or a comma list of per-layer values (``2,2,1.5``), ``--residual BETA``, ``--normalization layer`` and
    ``--dropout RHO``.
    """
    parser.add_argument("--activation", default=activation, help=f"activation name (default {activation})")
    if not options:
        parser.add_argument("--sigma-w2", type=finite_float("sigma-w2"), default=sigma_w2,
                            help=f"weight variance (default {sigma_w2:g})")  # fmt: skip
        parser.add_argument("--sigma-b2", type=finite_float("sigma-b2"), default=0.0, help="bias variance (default 0)")
        return
    parser.add_argument("--sigma-w2", type=variances_arg("sigma-w2"), default=sigma_w2, metavar="S[,S,...]",
                        help=f"weight variance, or one per weight layer as a comma list, input layer first "
                        f"(default {sigma_w2:g})")  # fmt: skip
    parser.add_argument("--sigma-b2", type=variances_arg("sigma-b2"), default=0.0, metavar="S[,S,...]",
                        help="bias variance, or one per weight layer as a comma list (default 0)")  # fmt: skip
    parser.add_argument("--residual", type=_positive("residual"), default=None, metavar="BETA",
                        help="residual blocks z_l = z_{l-1} + BETA (W_l phi(z_{l-1}) + b_l) on the hidden layers "
                        "(default: a plain MLP)")  # fmt: skip
    parser.add_argument("--normalization", choices=["layer"], default=None,
                        help="'layer': LayerNorm without gain or bias on the hidden pre-activations")  # fmt: skip
    parser.add_argument("--dropout", type=_positive("dropout", 1.0), default=None, metavar="RHO",
                        help="keep probability of dropout on every hidden post-activation, in (0, 1]")  # fmt: skip


def network_options(args, depth: int | None) -> dict:
    """The keyword arguments of :class:`meanfield.Network` given by :func:`add_network_arguments` (``options=True``),
    with a :class:`UsageError` naming the flag when a per-layer list does not have ``depth`` values."""
    for flag, value in (("--sigma-w2", args.sigma_w2), ("--sigma-b2", args.sigma_b2)):
        if isinstance(value, tuple) and depth is not None and len(value) != depth:
            raise UsageError(f"{flag} lists {len(value)} values; it needs one number or one per weight layer, "
                             f"depth = {depth}")  # fmt: skip
    return dict(
        sigma_w2=args.sigma_w2,
        sigma_b2=args.sigma_b2,
        residual=getattr(args, "residual", None),
        normalization=getattr(args, "normalization", None),
        dropout=getattr(args, "dropout", None),
    )


def schedule_depth(args) -> int | None:
    """The depth a per-layer ``--sigma-w2``/``--sigma-b2`` list fixes (None for plain numbers); lists of different
    lengths are a :class:`UsageError`."""
    lengths = {len(v) for v in (args.sigma_w2, args.sigma_b2) if isinstance(v, tuple)}
    if len(lengths) > 1:
        raise UsageError(f"--sigma-w2 and --sigma-b2 list different numbers of layers: {sorted(lengths)}")
    return lengths.pop() if lengths else None


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meanfield", description="Signal propagation, NTK and dispersion theory of deep networks.",
                     epilog=EPILOG)  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Run the ``meanfield`` command with ``argv`` (default ``sys.argv[1:]``) and return the exit status."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("meanfield: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (| head): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
        except (OSError, ValueError):
            pass
        return 141


def _main(argv) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.run(args)
        text = to_json(result.data) if getattr(args, "json", False) else None
    except (UsageError, ValueError) as exc:
        return _fail(args, exc)
    except MemoryError:
        return _fail(args, "out of memory; ask for less (fewer inputs, layers, depths or networks)")
    except BrokenPipeError:
        raise
    except OSError as exc:  # an output file that cannot be written
        where = f" {exc.filename!r}" if getattr(exc, "filename", None) else ""
        return _fail(args, f"cannot write{where}: {exc.strerror or exc}")
    if text is not None:
        print(text)
    else:
        if result.rows:
            print(format_table(result.header, result.rows))
        for note in result.notes:
            print(note)
    sys.stdout.flush()
    return 0


def _fail(args, message) -> int:
    text = " ".join(str(message).split())  # one line
    print(f"meanfield {args.command}: error: {text}", file=sys.stderr)
    return 2
