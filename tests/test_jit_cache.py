"""meanfield._jit.njit: the on-disk cache sees edits of compiled helpers in other files (no stale machine code)."""

import os
import pathlib
import re
import subprocess
import sys

import meanfield
from meanfield import _jit

ROOT = pathlib.Path(meanfield.__file__).resolve().parent.parent

HELPER = """
from meanfield._jit import njit

SCALE = {scale}


@njit(cache=True, inline="always")
def helper(x):
    return SCALE * x + {offset}
"""

KERNEL = """
from meanfield._jit import njit

from .helper import helper


@njit(cache=True)
def kernel(x):
    return helper(x) + 1.0
"""

RUN = (
    "from pkg.kernel import kernel; x = kernel(2.0); "
    "print(x, sum(kernel.stats.cache_hits.values()), sum(kernel.stats.cache_misses.values()))"
)


def _write_package(tmp_path, scale, offset):
    pkg = tmp_path / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text(HELPER.format(scale=scale, offset=offset))
    (pkg / "kernel.py").write_text(KERNEL)


def _run(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    env.pop("NUMBA_CACHE_DIR", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", RUN], env=env, capture_output=True, text=True, check=True)
    value, hits, misses = out.stdout.split()
    return float(value), int(hits), int(misses)


def test_editing_an_inlined_helper_in_another_file_recompiles_its_caller(tmp_path):
    _write_package(tmp_path, scale=3.0, offset=0.0)
    assert _run(tmp_path) == (7.0, 0, 1)  # 3 * 2 + 1, compiled and saved to pkg/__pycache__
    assert _run(tmp_path) == (7.0, 1, 0)  # a fresh process loads it from the cache
    # edit only the helper's file (kernel.py is untouched): plain numba would load kernel's stale code (7.0)
    _write_package(tmp_path, scale=5.0, offset=0.5)
    assert _run(tmp_path) == (11.5, 0, 1)  # 5 * 2 + 0.5 + 1: recompiled
    assert _run(tmp_path) == (11.5, 1, 0)  # and cached again
    # editing a module whose constant the compiled code froze (here the helper's SCALE) is seen as well
    (tmp_path / "pkg" / "helper.py").write_text(HELPER.format(scale=-1.0, offset=0.5))
    assert _run(tmp_path)[0] == -0.5


def test_package_stamp_covers_compiled_sources_and_their_imports(tmp_path):
    _write_package(tmp_path, scale=1.0, offset=0.0)
    (tmp_path / "pkg" / "notes.py").write_text("TEXT = 'no compiled code here'\n")
    first = _jit.package_stamp(str(tmp_path / "pkg" / "kernel.py"))
    (tmp_path / "pkg" / "notes.py").write_text("TEXT = 'edited, still no compiled code'\n")
    assert _jit.package_stamp(str(tmp_path / "pkg" / "kernel.py")) == first  # unrelated files do not count
    (tmp_path / "pkg" / "helper.py").write_text(HELPER.format(scale=2.0, offset=0.0))
    assert _jit.package_stamp(str(tmp_path / "pkg" / "kernel.py")) != first
    assert _jit.package_stamp(str(tmp_path / "loose.py")) == ""  # a file outside any package


def test_every_compiled_function_of_meanfield_uses_the_package_cache():
    # numba's own decorator would key the cache on one file only: every module imports njit from meanfield._jit
    offenders = []
    for path in (ROOT / "meanfield").rglob("*.py"):
        text = path.read_text()
        if (
            re.search(r"from numba import[^\n]*\b(njit|jit)\b|numba\.(njit|jit)\(|@jit\b", text)
            and path.name != "_jit.py"
        ):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == [], f"use `from .._jit import njit` in {offenders}"
    from meanfield.gaussian import closed
    from meanfield.propagation import tiles

    for fn in (closed.h_theta, tiles.propagate):
        assert isinstance(fn._cache, _jit._PackageCache)


def test_meanfield_stamp_changes_when_a_compiled_module_changes(tmp_path):
    # a copy of the package: editing a helper that another module inlines changes the stamp every cached
    # function of meanfield is keyed on
    import shutil

    copy = tmp_path / "meanfield"
    shutil.copytree(ROOT / "meanfield", copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = _jit.package_stamp(str(copy / "propagation" / "tiles.py"))
    closed = copy / "gaussian" / "closed.py"
    closed.write_text(closed.read_text() + "\n# an edit\n")
    assert _jit.package_stamp(str(copy / "propagation" / "tiles.py")) != before
    activations = copy / "activations.py"  # no compiled code, but its KIND_* constants are frozen into kernels
    after_closed = _jit.package_stamp(str(copy / "propagation" / "tiles.py"))
    activations.write_text(activations.read_text() + "\n# an edit\n")
    assert _jit.package_stamp(str(copy / "propagation" / "tiles.py")) != after_closed
