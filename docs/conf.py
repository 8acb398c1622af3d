"""Sphinx configuration: numpydoc + autosummary API reference, myst-nb gallery (not executed), argparse CLI reference.

Build: ``pip install -e ".[docs]" && sphinx-build -W -b html docs docs/_build/html``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import generate  # noqa: E402  (the API and gallery pages, generated from meanfield.__all__ and notebooks/)

import meanfield  # noqa: E402

project = "meanfield"
author = "the meanfield authors"
release = version = meanfield.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_nb",
]

# the notebooks are executed by the test suite (nbmake); here their committed outputs are rendered as they are
# (refresh them after a change with: python docs/execute_notebooks.py notebooks/*.ipynb)
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "amsmath"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks: set[str] = set()
numpydoc_xref_param_type = False

exclude_patterns = ["_build", "README.md", "generate.py"]
html_theme = "alabaster"
html_title = f"meanfield {release}"
suppress_warnings = ["myst.header"]
os.environ.setdefault("MPLBACKEND", "Agg")

generate.write_all(HERE, ROOT)
