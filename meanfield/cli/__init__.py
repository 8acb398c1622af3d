"""The ``meanfield`` command line: one module per command group in this package.

Each command module defines ``add_parser(subparsers)``; the parser it adds sets ``run=<callable>``,
a function of the parsed arguments that returns a :class:`Result` (rows for the table, a dict for ``--json``).
Bad arguments exit with status 2 and a one-line message, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
from dataclasses import dataclass, field

import numpy as np

# command modules, in the order ``meanfield --help`` lists them
COMMANDS = ("peak-layer", "phase", "kernel", "simulate", "dispersion", "silent", "nfa-early")


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
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


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


def add_network_arguments(parser: argparse.ArgumentParser, activation: str = "relu", sigma_w2: float = 2.0) -> None:
    """The options every command that builds a :class:`meanfield.Network` shares: activation and both variances."""
    parser.add_argument("--activation", default=activation, help=f"activation name (default {activation})")
    parser.add_argument(
        "--sigma-w2", type=finite_float("sigma-w2"), default=sigma_w2, help=f"weight variance (default {sigma_w2:g})"
    )
    parser.add_argument("--sigma-b2", type=finite_float("sigma-b2"), default=0.0, help="bias variance (default 0)")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="meanfield", description="Signal propagation, NTK and dispersion theory of deep networks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.run(args)
    except (UsageError, ValueError) as exc:
        print(f"meanfield {args.command}: error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(_jsonable(result.data), indent=2))
    else:
        if result.rows:
            print(format_table(result.header, result.rows))
        for note in result.notes:
            print(note)
    return 0
