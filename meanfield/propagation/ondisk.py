r"""Kernels larger than memory: :func:`kernels` computed tile by tile into ``.npy`` files on disk.

:func:`kernels_to_disk` splits the ``n x m`` pairs into ``block x block`` tiles, computes each tile with
:func:`meanfield.propagation.kernels` on its rows and columns (the same recursion, Jacot et al. 2018 and
Lou et al. 2022 eq. (9): see :mod:`meanfield.propagation.dataset`), and writes it into its place in one ``.npy``
file per kernel. Tiles are independent tasks, so any ``concurrent.futures``-style executor (threads, a process pool,
a Dask ``Client.get_executor()``) can compute them; the calling process alone writes. Finished tiles are logged in a
manifest, so an interrupted run (Ctrl-C, a killed process, a lost worker) resumes from the tiles already written.

Format: a directory of plain ``.npy`` files (``nngp.npy``, ``ntk.npy``, and with ``layers`` ``nngp_layers.npy``,
``backward.npy``, ``ntk_layers.npy`` of shape ``(len(layers), n, m)``), plus ``manifest.json`` (what is computed)
and ``done.txt`` (the finished tiles). Chosen over zarr because it needs no extra dependency, any numpy reads it as a
memory map (``numpy.load(path, mmap_mode="r")``) without loading it, and a kernel is dense and incompressible
(zarr's chunking and compression buy nothing here; its chunked layout would only help a cluster without a shared
file system, where the calling process still writes every tile). Tiles are written with ``os.pwrite`` row segment
by row segment, not through a writable memory map: pages written through a map count in the process's resident
memory until the kernel evicts them, written ones go to the page cache only.

Exactness: every entry is computed by the same compiled code on the same per-pair inputs as in memory, so with a
closed-form activation (ReLU family, erf) the files equal ``kernels(X, net, X2)`` bit for bit (``block`` is a
multiple of 16, the row tile of :mod:`meanfield.propagation.tiles`; measured: a block of 137 differs in the last
bit). With symmetric inputs only the tiles on and above the diagonal are computed and the lower triangle is their
transpose, as in memory. The general (Hermite) path chooses its Mehler order from the variances of the inputs it
is given, so a tile may use another order than the whole dataset: tiles then agree with the in-memory kernels to
the path's documented accuracy (1e-9 relative; measured up to 4e-12 for tanh), not bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections import deque
from dataclasses import dataclass

import numpy as np

from .._checks import check_bool, check_int, check_network, format_bytes
from .._executors import shipper
from .dataset import Kernels, _layer_slots, kernels
from .inputs import check_inputs

__all__ = ["DiskKernels", "kernels_to_disk"]

_FORMAT = "meanfield-kernels-npy/1"
_MANIFEST = "manifest.json"
_DONE = "done.txt"
#: bytes written per pwrite call when a tile is transposed into the lower triangle (a 256-column slab)
_SLAB = 256
#: rows per block of the transposed copy into a slab (64 x 64 blocks stay in the L1/L2 cache: measured 3 ns per entry
#: against 10-14 ns for one strided copy of the whole slab)
_BLOCK_T = 64
_ARRAYS = ("nngp", "ntk", "nngp_layers", "backward", "ntk_layers")


@dataclass(frozen=True)
class DiskKernels:
    """Kernels stored on disk by :func:`kernels_to_disk`: a directory of ``.npy`` files.

    Attributes
    ----------
    path : str
        The directory.
    shape : tuple of int
        ``(n, m)``.
    layers : tuple of int or None
        1-based layers of the per-layer arrays (None unless requested).

    The arrays are opened read-only as memory maps on access (:attr:`nngp`, :attr:`ntk`, and with layers
    :attr:`nngp_layers`, :attr:`backward`, :attr:`ntk_layers`); :meth:`load` reads them into a
    :class:`~meanfield.propagation.Kernels`.
    """

    path: str
    shape: tuple[int, int]
    layers: tuple[int, ...] | None = None

    def _open(self, name):
        if name != "nngp" and name != "ntk" and self.layers is None:
            raise ValueError(f"{name} was not computed; pass layers=... to kernels_to_disk")
        return np.load(os.path.join(self.path, name + ".npy"), mmap_mode="r", allow_pickle=False)

    @property
    def nngp(self) -> np.memmap:
        return self._open("nngp")

    @property
    def ntk(self) -> np.memmap:
        return self._open("ntk")

    @property
    def nngp_layers(self) -> np.memmap:
        return self._open("nngp_layers")

    @property
    def backward(self) -> np.memmap:
        return self._open("backward")

    @property
    def ntk_layers(self) -> np.memmap:
        return self._open("ntk_layers")

    def load(self) -> Kernels:
        """All arrays read into memory, as :func:`kernels` returns them."""
        if self.layers is None:
            return Kernels(np.array(self.nngp), np.array(self.ntk))
        return Kernels(np.array(self.nngp), np.array(self.ntk), self.layers, np.array(self.nngp_layers),
                       np.array(self.backward), np.array(self.ntk_layers))  # fmt: skip


def _tile_task(rows, cols, net, layers):
    """One tile: the kernels of ``rows`` against ``cols`` (``cols`` None: the symmetric kernels of ``rows``).

    BLAS runs on one thread: OpenBLAS's threaded matrix-vector products split their sums, so the general path's
    Hermite coefficients would depend on the BLAS threads of the process computing the tile (a Dask worker has one,
    this process may have more), and tiles must not depend on where they run. BLAS is a negligible part of a tile.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; without it BLAS keeps its threads
        k = kernels(rows, net, X2=cols, layers=layers)
    else:
        with threadpool_limits(limits=1, user_api="blas"):
            k = kernels(rows, net, X2=cols, layers=layers)
    out = {"nngp": k.nngp, "ntk": k.ntk}
    if k.layers is not None:
        out.update(nngp_layers=k.nngp_layers, backward=k.backward, ntk_layers=k.ntk_layers)
    return out


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a).view(np.uint8).ravel())
    return h.hexdigest()


def _net_key(net) -> str:
    """What identifies the computation of ``net`` (a user activation by its name: use distinct names)."""
    return repr(net)


class _Writer:
    """Writes tiles into the ``.npy`` files with ``os.pwrite`` (nothing mapped, nothing read back)."""

    def __init__(self, path, names, shape, nl, create):
        self.fds, self.offsets, self.m = {}, {}, shape[1]
        for name in names:
            full = (nl,) + shape if name.endswith("layers") or name == "backward" else shape
            file = os.path.join(path, name + ".npy")
            if create:  # header + a sparse file of the full size (no data written, no memory used)
                with open(file, "wb") as f:
                    np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": full})
                    f.truncate(f.tell() + 8 * int(np.prod(full)))
            fd = os.open(file, os.O_RDWR)
            size = os.fstat(fd).st_size
            self.fds[name] = fd
            self.offsets[name] = size - 8 * int(np.prod(full))  # data start = after the header
        self.n = shape[0]

    def write(self, name, tile, i0, j0, transpose=False):
        """``tile`` (``(r, c)`` or ``(nl, r, c)``) into rows i0.., columns j0..; transposed: into rows j0.., columns
        i0.. (the lower triangle of a symmetric kernel)."""
        fd, base, n, m = self.fds[name], self.offsets[name], self.n, self.m
        tiles = tile if tile.ndim == 3 else tile[None]
        for k, t in enumerate(tiles):
            if not transpose:
                t = np.ascontiguousarray(t, dtype="<f8")
                for r in range(t.shape[0]):
                    os.pwrite(fd, t[r], base + 8 * ((k * n + i0 + r) * m + j0))
                continue
            rows, cols = t.shape
            buf = np.empty((min(_SLAB, cols), rows), dtype="<f8")
            for c0 in range(0, cols, _SLAB):  # a slab of columns becomes rows
                slab = buf[: min(_SLAB, cols - c0)]
                for r0 in range(0, rows, _BLOCK_T):  # in square blocks: 4x faster than one strided copy
                    slab[:, r0 : r0 + _BLOCK_T] = t[r0 : r0 + _BLOCK_T, c0 : c0 + slab.shape[0]].T
                for r in range(slab.shape[0]):
                    os.pwrite(fd, slab[r], base + 8 * ((k * n + j0 + c0 + r) * m + i0))

    def close(self):
        for fd in self.fds.values():
            os.close(fd)
        self.fds = {}


def _read_done(path):
    done = set()
    try:
        with open(os.path.join(path, _DONE)) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and line.endswith("\n"):  # a line cut by an interruption is ignored
                    done.add((int(parts[0]), int(parts[1])))
    except FileNotFoundError:
        pass
    return done


def kernels_to_disk(X, net, path, X2=None, block: int = 4096, layers=False, executor=None, progress=None,
                    overwrite: bool = False, in_flight: int | None = None) -> DiskKernels:  # fmt: skip
    r"""Infinite-width NNGP and NTK of ``net`` on a dataset, computed tile by tile into ``.npy`` files under ``path``.

    The same kernels as :func:`meanfield.propagation.kernels` (:math:`\Sigma_L`, :math:`\Theta_L` and optionally
    :math:`\Sigma_l`, :math:`\mathfrak B_l`, :math:`\Theta^{(l)}`; Jacot et al. 2018, Lou et al. 2022 eq. (9)),
    for datasets whose ``n x m`` arrays do not fit in memory.

    Parameters
    ----------
    X : array_like (n, d)
        Inputs (rows of the kernels).
    net : Network
        The spec, as for :func:`kernels`.
    path : str or os.PathLike
        A directory (created; its parents must exist). Holds ``nngp.npy``, ``ntk.npy`` (``(n, m)`` float64), with
        ``layers`` also ``nngp_layers.npy``, ``backward.npy``, ``ntk_layers.npy`` (``(len(layers), n, m)``), and
        ``manifest.json``, ``done.txt``. If it holds an unfinished run of the same computation (same inputs, net,
        block and layers), that run resumes; a different computation is refused unless ``overwrite``.
    X2 : array_like (m, d), optional
        Columns for cross kernels. Default: ``X`` (symmetric: only tiles on and above the diagonal are computed).
    block : int
        Rows and columns per tile, a multiple of 16 (the row tile of the compiled recursion, so that every pair is
        computed exactly as in memory). Memory is about ``(8 + 3 len(layers)) * 8 * block^2`` bytes per tile being
        computed or waiting to be written.
    layers : bool, int or sequence of int
        As for :func:`kernels`.
    executor : concurrent.futures.Executor, optional
        Computes the tiles (threads, a ``ProcessPoolExecutor``, a Dask ``Client.get_executor()``; custom
        activations are cloudpickled, :mod:`meanfield._executors`). None: one after another here, each tile using
        numba's threads. A process pool must use the "spawn" or "forkserver" start method
        (``ProcessPoolExecutor(mp_context=multiprocessing.get_context("spawn"))``): numba's OpenMP threads make
        ``fork`` unsafe once kernels have run in this process.
    progress : bool, optional
        A tqdm bar counting tiles. Default: when stderr is a terminal.
    overwrite : bool
        Replace a different computation found under ``path``.
    in_flight : int, optional
        Tiles submitted to ``executor`` ahead of the one being written (bounds memory). Default: CPUs + 1.

    Returns
    -------
    DiskKernels
        The directory, with the arrays as read-only memory maps.

    Notes
    -----
    Cost: the work of :func:`kernels` (``O(n m L)``, half with symmetry) plus writing ``8 n m (2 + 3 len(layers))``
    bytes. Peak memory: ``O(block (n + m))`` — the inputs, and a few ``block x block`` arrays per tile in flight —
    whatever ``n m``. Exactness: bit for bit equal to :func:`kernels` for the closed-form activations; see
    :mod:`meanfield.propagation.ondisk`. A tile is logged as done only after all its arrays are written, so a run
    killed at any point resumes correctly (the files survive a killed process through the page cache; after a
    machine crash, start again with ``overwrite=True``).

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from meanfield import Network
    >>> X = np.random.default_rng(0).standard_normal((40, 3))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     k = kernels_to_disk(X, Network(3), tmp + "/K", block=16)
    ...     bool(np.array_equal(k.ntk, kernels(X, Network(3)).ntk))
    True
    """
    net = check_network(net)
    X = check_inputs(X, "X")
    sym = X2 is None
    X2 = None if sym else check_inputs(X2, "X2", X.shape[1])
    block = check_int(block, "block", 16)
    if block % 16:
        raise ValueError(f"block must be a multiple of 16 (the compiled recursion's row tile), got {block}")
    overwrite = check_bool(overwrite, "overwrite")
    progress = sys.stderr.isatty() if progress is None else check_bool(progress, "progress")
    in_flight = (os.cpu_count() or 1) + 1 if in_flight is None else check_int(in_flight, "in_flight")
    if executor is not None and not hasattr(executor, "submit"):
        raise ValueError("executor must be a concurrent.futures.Executor (an object with .submit)")
    slots = _layer_slots(layers, net.depth)
    nl = len(slots or ())
    n = X.shape[0]
    m = n if sym else X2.shape[0]
    names = list(_ARRAYS if nl else _ARRAYS[:2])
    manifest = {
        "format": _FORMAT,
        "shape": [n, m],
        "symmetric": sym,
        "block": block,
        "layers": list(slots) if slots else None,
        "net": _net_key(net),
        "inputs": _digest(X, X2),
        "arrays": names,
    }

    path = os.fspath(path)
    mfile = os.path.join(path, _MANIFEST)
    create, stale = True, []
    if os.path.isdir(path) and os.listdir(path):
        try:
            with open(mfile) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        ours = isinstance(old, dict) and old.get("format") == _FORMAT
        if old == manifest:
            create = False
        elif not ours:
            raise ValueError(f"path {path!r} holds files that are not a kernels_to_disk run: refusing to touch them; "
                             "use another path")  # fmt: skip
        elif not overwrite:
            raise ValueError(f"path {path!r} holds a different kernel computation (other inputs, net, block or "
                             "layers): use another path or overwrite=True")  # fmt: skip
        else:
            stale = [a for a in old.get("arrays", []) if a in _ARRAYS]
    elif os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"path {path!r} exists and is not a directory")
    total = 8.0 * n * m * (2 + 3 * nl)
    if create:
        os.makedirs(path, exist_ok=True)
        for file in [_MANIFEST, _DONE] + [a + ".npy" for a in dict.fromkeys(stale + names)]:
            if os.path.exists(os.path.join(path, file)):
                os.remove(os.path.join(path, file))
        free = shutil.disk_usage(path).free
        if total > free:
            raise ValueError(f"the kernels need {format_bytes(total)} on disk and {path!r} has {format_bytes(free)} "
                             "free: use another path, fewer layers or fewer inputs")  # fmt: skip
    done = set() if create else _read_done(path)

    starts_i = range(0, n, block)
    tiles = [(i0, j0) for i0 in starts_i for j0 in range(i0 if sym else 0, m, block) if (i0, j0) not in done]
    writer = _Writer(path, names, (n, m), nl, create)
    if create:  # the manifest last: a directory with a manifest has its files
        with open(mfile, "w") as f:
            json.dump(manifest, f, indent=1)
    cols = X if sym else X2

    def args(t):
        i0, j0 = t
        rows = X[i0 : i0 + block]
        if sym and i0 == j0:
            return rows, None
        return rows, cols[j0 : j0 + block]

    from tqdm import tqdm

    n_tiles = len(starts_i) * (len(starts_i) + 1) // 2 if sym else len(starts_i) * len(range(0, m, block))
    bar = tqdm(total=n_tiles, initial=n_tiles - len(tiles), disable=not progress, desc="tiles", unit="tile")
    pending = deque()
    try:
        with open(os.path.join(path, _DONE), "a+") as log:
            if log.tell() > 0:  # a line cut by an interruption is ended, so that the next entry stays readable
                log.seek(log.tell() - 1)
                if log.read(1) != "\n":
                    log.write("\n")

            def store(t, out):
                i0, j0 = t
                for name in names:
                    writer.write(name, out[name], i0, j0)
                    if sym and i0 != j0:
                        writer.write(name, out[name], i0, j0, transpose=True)
                log.write(f"{i0} {j0}\n")  # after all of the tile's arrays
                log.flush()
                bar.update(1)

            if executor is None:
                for t in tiles:
                    store(t, _tile_task(*args(t), net, slots or False))
            else:  # the net (a custom activation too) is cloudpickled once
                ship = shipper(executor, _tile_task, (net, slots or False))
                for t in tiles:
                    pending.append((t, ship(*args(t))))
                    if len(pending) >= in_flight:
                        t0, fut = pending.popleft()
                        store(t0, fut.result())
                while pending:
                    t0, fut = pending.popleft()
                    store(t0, fut.result())
    finally:
        for _, fut in pending:
            fut.cancel()
        writer.close()
        bar.close()
    return DiskKernels(path, (n, m), slots)
