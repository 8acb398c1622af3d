"""Execute notebooks in place so that the documentation renders their outputs (the docs build does not execute them;
the test suite runs them with nbmake). Usage: ``python docs/execute_notebooks.py notebooks/*.ipynb``."""

import os
import sys
import time

import nbformat
from nbclient import NotebookClient

for path in sys.argv[1:]:
    start = time.time()
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": os.path.dirname(path)}}
    ).execute()
    nbformat.write(nb, path)
    print(f"{path}: {time.time() - start:.1f} s", flush=True)
