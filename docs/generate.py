"""Pages generated at build time (never hand-copied): the API index from ``meanfield.__all__`` and the
subpackages' ``__all__``, and the notebook gallery from ``notebooks/``. Called from ``conf.py``."""

from __future__ import annotations

import importlib
import inspect
import shutil
from pathlib import Path

import meanfield

#: subpackages and modules whose ``__all__`` is documented (plus the top-level ``meanfield.__all__``)
MODULES = [
    "meanfield.gaussian",
    "meanfield.propagation",
    "meanfield.equilibrium",
    "meanfield.dispersion",
    "meanfield.alignment",
    "meanfield.silent",
    "meanfield.nfa",
    "meanfield.finite",
    "meanfield.stats",
    "meanfield.data",
    "meanfield.experiments",
    "meanfield.plot",
]


def public_names():
    """(module name, [public names that are functions or classes]) for the top level and each module."""
    out = []
    top = [n for n in meanfield.__all__ if not inspect.ismodule(getattr(meanfield, n))]
    out.append(("meanfield", sorted(top, key=str.lower)))
    seen = {id(getattr(meanfield, n)) for n in top}
    for mod in MODULES:
        m = importlib.import_module(mod)
        names = [n for n in getattr(m, "__all__", []) if not inspect.ismodule(getattr(m, n))]
        names = [n for n in names if id(getattr(m, n)) not in seen or mod == "meanfield.plot"]
        out.append((mod, sorted(names, key=str.lower)))
    return out


def write_api(docs: Path) -> int:
    lines = [
        "API reference",
        "=============",
        "",
        "Every public name: ``meanfield.__all__`` and the ``__all__`` of each subpackage (names already exported",
        "at the top level are listed there once). Generated from the docstrings (numpydoc).",
        "",
    ]
    count = 0
    for mod, names in public_names():
        if not names:
            continue
        title = f"``{mod}``"
        m = importlib.import_module(mod)
        doc = (inspect.getdoc(m) or "").split("\n\n")[0].replace("\n", " ")
        lines += [title, "-" * len(title), "", f".. currentmodule:: {mod}", ""]
        if mod != "meanfield":
            lines += [f"{doc}", ""] if doc and "`" not in doc else []
        code = [n for n in names if inspect.isclass(getattr(m, n)) or callable(getattr(m, n))]
        data = [n for n in names if n not in code]
        lines += [".. autosummary::", "   :toctree: generated", "   :nosignatures:", ""]
        lines += [f"   {n}" for n in code]
        lines.append("")
        for n in data:  # constants: their value is their documentation
            lines += [f".. py:data:: {n}", f"   :value: {getattr(m, n)!r}", ""]
        count += len(names)
    (docs / "api.rst").write_text("\n".join(lines) + "\n")
    return count


def write_gallery(docs: Path, root: Path) -> None:
    target = docs / "gallery"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir()
    books = sorted((root / "notebooks").glob("*.ipynb"))
    for nb in books:
        shutil.copy2(nb, target / nb.name)
    lines = [
        "# Notebook gallery",
        "",
        "The notebooks of `notebooks/`, rendered with the outputs stored in them (the docs build does not execute",
        "them; the test suite runs every notebook with nbmake). Run them with `jupyter lab notebooks/` to see the",
        "figures.",
        "",
        "```{toctree}",
        ":maxdepth: 1",
        "",
        *[f"gallery/{nb.stem}" for nb in books],
        "```",
        "",
    ]
    (docs / "gallery.md").write_text("\n".join(lines))


def write_cli(docs: Path) -> None:
    """The command-line reference: the ``--help`` of ``meanfield`` and of each command, from the parsers."""
    import os

    from meanfield.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width: fixed, so the page does not depend on it
    parser = build_parser()
    lines = [
        "Command line",
        "============",
        "",
        "The ``meanfield`` command (``python -m meanfield`` works too). This page is generated from the argparse",
        "parsers themselves (``meanfield.cli.build_parser``) at every docs build: it is the ``--help`` of each",
        "command.",
        "",
        ".. code-block:: text",
        "",
        *("   " + ln for ln in parser.format_help().splitlines()),
        "",
    ]
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        title = f"meanfield {name}"
        lines += [title, "-" * len(title), "", ".. code-block:: text", ""]
        lines += ["   " + ln if ln else "" for ln in p.format_help().splitlines()]
        lines.append("")
    (docs / "cli.rst").write_text("\n".join(lines) + "\n")


def write_all(docs: Path, root: Path) -> None:
    n = write_api(docs)
    write_cli(docs)
    write_gallery(docs, root)
    (docs / "_build").mkdir(exist_ok=True)
    (docs / "_build" / "public_names.txt").write_text(f"{n}\n")
