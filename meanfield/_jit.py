"""``njit`` for meanfield: numba's decorator with an on-disk cache that cannot go stale.

numba's ``cache=True`` keys each compiled function on the source file that defines it (a hash of that one file).
A kernel that inlines (``inline="always"``) or calls a helper from *another* file embeds the helper's compiled
code, so after an edit of the helper's file numba would load the caller's old machine code from ``__pycache__``.

This module's :func:`njit` is ``numba.njit`` with one change: with ``cache=True`` the dispatcher gets a cache
whose *source stamp* is, besides numba's hash of the function's own file,

* a hash of every ``.py`` file of the function's top-level package (meanfield, or whatever package uses this
  decorator) that contains compiled code (mentions ``njit``), together with every module of that package those
  files import (compile-time constants such as ``KIND_LEAKY`` are frozen into the machine code), and
* the same stamp of meanfield itself when the function lives outside meanfield (a test or another package that
  calls meanfield's helpers).

numba stores the stamp in each function's index file (``__pycache__/<module>.<name>-<line>.py3X.nbi``) and
discards the cached machine code when the stamp differs, so editing *any* compiled helper, or a module whose
constants compiled code uses, recompiles everything on its next call; nothing has to be deleted by hand. Cached
files stay where numba puts them (next to the sources, or under ``NUMBA_CACHE_DIR``). The files are read and
hashed once per process and package (a few ms); the hash is recomputed when a file's size or mtime changes.

Every module of meanfield imports ``njit`` from here (``from .._jit import njit``), never from numba;
``tests/test_jit_cache.py`` checks that and shows that an edited helper in another file is seen by a fresh process.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import os

import numba
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    InTreeCacheLocator,
    UserProvidedCacheLocator,
    UserWideCacheLocator,
)

__all__ = ["njit", "package_stamp"]

_HERE = os.path.dirname(os.path.abspath(__file__))  # the meanfield package


def _package_root(path: str) -> str | None:
    """The directory of the top-level package holding ``path`` (None for a file outside any package)."""
    d = os.path.dirname(os.path.abspath(path))
    root = None
    while os.path.isfile(os.path.join(d, "__init__.py")):
        root = d
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return root


def _module_file(root: str, parts: list[str]) -> str | None:
    """``root/a/b.py`` or ``root/a/b/__init__.py`` for the dotted parts ``[a, b]`` below the package root."""
    base = os.path.join(root, *parts)
    for cand in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(cand):
            return cand
    return None


def _imports(root: str, path: str, tree: ast.AST) -> set[str]:
    """Files of the package ``root`` that the module at ``path`` imports (relative or absolute imports)."""
    top = os.path.basename(root)
    rel = os.path.relpath(os.path.dirname(path), root)
    pkg = [] if rel == "." else rel.split(os.sep)  # the module's package, below the root
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else list(pkg)
                mod = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == top:
                mod = node.module.split(".")[1:]
            else:
                continue
            targets.append(mod)
            targets.extend(mod + [alias.name] for alias in node.names)  # "from . import x" imports a module x
        elif isinstance(node, ast.Import):
            targets.extend(a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == top)
        for parts in targets:
            f = _module_file(root, parts)
            if f is not None:
                out.add(f)
    return out


@functools.cache
def _stamp(root: str, stats: tuple) -> str:
    """sha256 over the compiled sources of the package at ``root`` and the package modules they import."""
    texts = {}
    for path, _, _ in stats:
        with open(path, "rb") as fh:
            texts[path] = fh.read()
    compiled = [p for p, t in texts.items() if b"njit" in t and os.path.abspath(p) != os.path.abspath(__file__)]
    chosen = set(compiled)
    todo = list(compiled)
    while todo:  # the in-package import closure of the compiled modules
        path = todo.pop()
        try:
            tree = ast.parse(texts[path])
        except SyntaxError:
            continue
        for dep in _imports(root, path, tree):
            if dep in texts and dep not in chosen:
                chosen.add(dep)
                todo.append(dep)
    h = hashlib.sha256()
    for path in sorted(chosen):
        h.update(os.path.relpath(path, root).encode())
        h.update(b"\0")
        h.update(hashlib.sha256(texts[path]).digest())
    return h.hexdigest()


def package_stamp(path: str) -> str:
    """The source stamp of the package holding ``path`` (see the module docstring); ``""`` outside a package."""
    root = _package_root(path)
    if root is None:
        return ""
    stats = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if x != "__pycache__" and not x.startswith("."))
        for name in sorted(files):
            if name.endswith(".py"):
                p = os.path.join(d, name)
                st = os.stat(p)
                stats.append((p, st.st_mtime_ns, st.st_size))
    return _stamp(root, tuple(stats))


class _PackageStampMixin:
    """A numba cache locator whose source stamp also covers the package's compiled sources (and meanfield's)."""

    def get_source_stamp(self):
        own = super().get_source_stamp()
        stamps = [package_stamp(self._py_file)]
        if _package_root(self._py_file) != _HERE:
            stamps.append(package_stamp(os.path.join(_HERE, "__init__.py")))
        return own, tuple(stamps)


class _InTreeLocator(_PackageStampMixin, InTreeCacheLocator):
    pass


class _UserProvidedLocator(_PackageStampMixin, UserProvidedCacheLocator):
    pass


class _UserWideLocator(_PackageStampMixin, UserWideCacheLocator):
    pass


class _CacheImpl(CompileResultCacheImpl):
    # numba's own order (NUMBA_CACHE_DIR first, then next to the sources, then the user-wide directory)
    _locator_classes = [_UserProvidedLocator, _InTreeLocator, _UserWideLocator]


class _PackageCache(FunctionCache):
    _impl_class = _CacheImpl


def njit(*args, **kwargs):
    """``numba.njit`` whose ``cache=True`` also watches every compiled source of the package (module docstring).

    Use exactly like ``numba.njit``: ``@njit``, ``@njit(cache=True, inline="always")``, ...
    """
    cache = kwargs.pop("cache", False)

    def attach(dispatcher):
        if cache:
            dispatcher._cache = _PackageCache(dispatcher.py_func)
        return dispatcher

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return attach(numba.njit(args[0]))
    decorate = numba.njit(*args, **kwargs)
    return lambda fn: attach(decorate(fn))
