"""Input checks shared by the public functions (errors name the parameter and what is allowed)."""

from __future__ import annotations

import math
import numbers

import numpy as np

#: Largest operator-valued kernel (entries of an ``(n o) x (n o)`` matrix) formed without ``force=True``:
#: 2e8 float64 entries = 1.6 GB.
MAX_OPERATOR_ENTRIES = 200_000_000


def check_int(value, name: str, low: int = 1, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]``; bools, floats and strings are refused.

    >>> check_int(3, "depth")
    3
    >>> check_int(0, "depth")
    Traceback (most recent call last):
    ...
    ValueError: depth must be an integer >= 1, got 0
    """
    ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and value >= low
    ok = ok and (high is None or value <= high)
    if not ok:
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")
    return int(value)


def check_real(value, name: str, low=None, high=None, low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the given range; bools, strings and arrays are refused.

    >>> check_real(2, "sigma_w2", low=0, low_open=True)
    2.0
    >>> check_real(-1.0, "sigma_w2", low=0, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: sigma_w2 must be a finite number > 0, got -1.0
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and np.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        rng = "" if low is None else (f" > {low}" if low_open else f" >= {low}")
        rng += "" if high is None else ((" and" if rng else "") + (f" < {high}" if high_open else f" <= {high}"))
        raise ValueError(f"{name} must be a finite number{rng}, got {value!r}")
    return float(value)


def check_choice(value, allowed, name: str):
    """``value`` if it is one of ``allowed``, else a ValueError listing them.

    >>> check_choice("published", ("corrected", "published"), "form")
    'published'
    """
    if not isinstance(value, str | int) or isinstance(value, bool) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_bool(value, name: str) -> bool:
    """``value`` as a bool; only ``True``/``False`` (and numpy bools) are accepted, not ``0``, ``1``, ``"yes"``,
    ``None`` or an array.

    >>> check_bool(np.True_, "unbiased")
    True
    >>> check_bool(1, "unbiased")
    Traceback (most recent call last):
    ...
    ValueError: unbiased must be True or False, got 1
    """
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_seed(seed, name: str = "seed", allow_none: bool = True):
    """``seed`` as an int >= 0, ``None`` (fresh entropy, when ``allow_none``) or a ``numpy.random.SeedSequence``.

    >>> check_seed("a")
    Traceback (most recent call last):
    ...
    ValueError: seed must be an integer >= 0, None or a numpy.random.SeedSequence, got 'a'
    """
    if isinstance(seed, np.random.SeedSequence) or (seed is None and allow_none):
        return seed
    ok = isinstance(seed, numbers.Integral) and not isinstance(seed, bool | np.bool_) and seed >= 0
    if not ok:
        what = "an integer >= 0, None or a numpy.random.SeedSequence" if allow_none else "an integer >= 0"
        raise ValueError(f"{name} must be {what}, got {seed!r}")
    return int(seed)


def real_array(x, name: str, ndim=None) -> np.ndarray:
    """``x`` as a float64 array of a real numeric dtype (signed/unsigned integers or floats); complex (whose imaginary
    part a cast would drop), bool, string and object arrays (sets, ragged lists, ``None``) are refused, as are
    dimensions outside ``ndim``.

    >>> real_array([1, 2], "x").dtype
    dtype('float64')
    >>> real_array([1 + 1j], "x")
    Traceback (most recent call last):
    ...
    ValueError: x must be a real numeric array (integers or floats), got dtype complex128
    """
    if isinstance(x, set | frozenset | dict | str | bytes):
        raise ValueError(f"{name} must be a real numeric array (integers or floats), got {type(x).__name__}")
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError):  # ragged nested sequences
        raise ValueError(f"{name} must be a real numeric array (integers or floats), got {x!r}") from None
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a real numeric array (integers or floats), got dtype {raw.dtype}")
    arr = raw.astype(np.float64, copy=False)
    if ndim is not None and arr.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimension(s), got shape {arr.shape}")
    return arr


def finite_array(x, name: str, ndim=None, low=None, high=None) -> np.ndarray:
    """``x`` as a float64 array (:func:`real_array`: no complex, bool, string or object dtype), refusing NaN/inf,
    dimensions outside ``ndim`` and (optionally) values outside ``[low, high]``."""
    arr = real_array(x, name, ndim)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    if low is not None and np.any(arr < low):
        raise ValueError(f"{name} must be >= {low}")
    if high is not None and np.any(arr > high):
        raise ValueError(f"{name} must be <= {high}")
    return arr


def check_operator_size(n: int, o: int, force: bool = False, limit: int = MAX_OPERATOR_ENTRIES) -> int:
    """Refuse to form an operator-valued kernel of ``(n o)^2`` entries above ``limit`` unless ``force``.

    Parameters
    ----------
    n, o : int
        Number of samples and of outputs; the kernel is ``(n o) x (n o)``, as in the layer alignment
        A_l of Lou et al. 2022, eq. (7).
    force : bool
        Skip the check.
    limit : int
        Maximum number of entries, default :data:`MAX_OPERATOR_ENTRIES` (2e8, 1.6 GB in float64).

    Returns
    -------
    int
        The number of entries ``(n o)^2``.

    Notes
    -----
    The operator-valued layer kernel grows like ``(n o)^2``; the class-traced ``(n, n)`` kernel (the trace over
    outputs, as in Canatar & Pehlevan 2022, eq. (8)) or the sample-space forms avoid it.

    Examples
    --------
    >>> check_operator_size(100, 10)
    1000000
    >>> check_operator_size(20_000, 10)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: an operator-valued kernel of (n o)^2 = 40000000000 entries (n = 20000, o = 10) exceeds the limit ...
    """
    n, o = check_int(n, "n"), check_int(o, "o")
    size = (n * o) ** 2
    if not force and size > limit:
        raise ValueError(
            f"an operator-valued kernel of (n o)^2 = {size} entries (n = {n}, o = {o}) exceeds the limit of "
            f"{limit} entries ({limit * 8 / 1e9:.2g} GB); use the class-traced (n, n) kernel, fewer samples, "
            "or force=True"
        )
    return size


def check_layers(l, depth: int, name: str = "l"):
    """One layer or a sequence of layers ``1..depth`` as a tuple of ints, and whether a single layer was given.

    Bools (``True``, ``np.True_``), non-integral floats (``1.5``), strings, sets and nested sequences are refused:
    each entry goes through :func:`check_int`.

    >>> check_layers(2, 3), check_layers([1, 3], 3)
    (((2,), True), ((1, 3), False))
    >>> check_layers([], 3)
    Traceback (most recent call last):
    ...
    ValueError: l must be a layer or a non-empty sequence of layers in [1, 3]
    """
    single = isinstance(l, numbers.Integral) and not isinstance(l, (bool, np.bool_))
    ls = (l,) if single else tuple(l) if isinstance(l, list | tuple | range | np.ndarray) else None
    if not ls:
        raise ValueError(f"{name} must be a layer or a non-empty sequence of layers in [1, {depth}]")
    return tuple(check_int(v, name, 1, depth) for v in ls), single


def check_network(net, name: str = "net", supports=(), what: str | None = None):
    """``net`` if it is a :class:`meanfield.Network` (the spec every theory function takes first), else a ValueError.

    ``supports`` lists the options beyond the plain MLP the caller implements (a subset of
    ``Network.features``' names: "schedule", "residual", "normalization", "dropout"); a network using any other
    option is refused with a ValueError naming it (and ``what``, the caller), never computed as if it were plain.

    >>> check_network("relu")
    Traceback (most recent call last):
    ...
    ValueError: net must be a meanfield.Network (the spec carrying the activation and both variances), got str
    >>> from meanfield import Network
    >>> check_network(Network(3, residual=1.0), what="fixed_point_q")
    Traceback (most recent call last):
    ...
    ValueError: net: fixed_point_q does not support residual networks (net.residual=1.0); it needs a plain MLP
    """
    from .network import Network

    if not isinstance(net, Network):
        raise ValueError(
            f"{name} must be a meanfield.Network (the spec carrying the activation and both variances), "
            f"got {type(net).__name__}"
        )
    missing = [f for f in net.features if f not in supports]
    if missing:
        words = {
            "schedule": ("per-layer variances", f"sigma_w2={net.sigma_w2!r}, sigma_b2={net.sigma_b2!r}"),
            "residual": ("residual networks", f"residual={net.residual!r}"),
            "normalization": ("normalization", f"normalization={net.normalization!r}"),
            "dropout": ("dropout", f"dropout={net.dropout!r}"),
        }
        f = missing[0]
        who = what or "this function"
        raise ValueError(f"{name}: {who} does not support {words[f][0]} ({name}.{words[f][1]}); it needs a plain MLP")
    return net


#: Requests below this many bytes pass :func:`check_memory` without a look at the available memory.
UNCHECKED_BYTES = 2**24


def _read_first(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def available_memory() -> tuple[int, str]:
    """Bytes this process can still allocate, and where that figure comes from.

    The smallest of: the kernel's estimate of memory available without swapping (``MemAvailable`` in
    ``/proc/meminfo``; ``os.sysconf`` free pages where that file is missing), the soft address-space and data limits
    (``RLIMIT_AS``, ``RLIMIT_DATA``, as set by ``ulimit -v`` / ``-d``) minus what the process already uses, and the
    memory limit of the control group (cgroup v2 ``memory.max`` or v1 ``memory.limit_in_bytes``) minus its usage.
    Tests replace this function (``monkeypatch.setattr(meanfield._checks, "available_memory", ...)``).
    """
    import os

    found = []
    meminfo = _read_first("/proc/meminfo")
    if meminfo:
        for line in meminfo.splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "available physical memory (MemAvailable)"))
    if not found:
        try:
            found.append((os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free physical memory"))
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            pass
    try:
        import resource

        status = _read_first("/proc/self/status") or ""
        fields = (line.split(":", 1) for line in status.splitlines() if line.startswith(("VmSize:", "VmData:")))
        used = {key: int(val.split()[0]) * 1024 for key, val in fields}
        limits = ((resource.RLIMIT_AS, "VmSize", "ulimit -v"), (resource.RLIMIT_DATA, "VmData", "ulimit -d"))
        for lim, key, label in limits:
            soft = resource.getrlimit(lim)[0]
            if soft != resource.RLIM_INFINITY and soft >= 0:
                inuse = used.get(key, 0)
                text = f"resource limit {label} of {format_bytes(soft)} minus {format_bytes(inuse)} in use"
                found.append((soft - inuse, text))
    except ImportError:  # pragma: no cover - non-POSIX
        pass
    cgroups = (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    )
    for lim_path, use_path in cgroups:
        lim, use = _read_first(lim_path), _read_first(use_path)
        if lim and use and lim.isdigit() and use.isdigit() and int(lim) < 2**60:
            found.append((int(lim) - int(use), f"control-group memory limit of {format_bytes(int(lim))}"))
            break
    if not found:  # pragma: no cover - nothing known: do not refuse
        return 2**63 - 1, "unknown"
    nbytes, source = min(found)
    return max(int(nbytes), 0), source


def format_bytes(nbytes) -> str:
    """Bytes in readable units: ``'1.5 GB'``, ``'320 MB'``."""
    nbytes = float(nbytes)
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.3g} {unit}"
    return f"{nbytes:.0f} bytes"


def check_memory(nbytes, what: str, hint: str) -> int:
    """Refuse up front, with a ValueError, a computation that needs more memory than the process can get.

    Parameters
    ----------
    nbytes : int or float
        Estimated peak memory of the computation in bytes (a float may exceed any int64: ``1e12 * 1e12``).
    what : str
        What needs the memory, e.g. ``"kernels of n = 60000 inputs"``.
    hint : str
        What to change, e.g. ``"use fewer inputs"``.

    Returns
    -------
    int
        ``nbytes`` rounded up, when it fits in :func:`available_memory`.

    Notes
    -----
    Requests below :data:`UNCHECKED_BYTES` (16 MB) are not checked, so that hot paths on small inputs do not read
    ``/proc`` (about 0.1 ms) on every call.

    Examples
    --------
    >>> check_memory(1000, "a small array", "nothing")
    1000
    >>> check_memory(1e30, "kernels of 1e13 inputs", "use fewer")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: kernels of 1e13 inputs needs about 1e+18 TB of memory, but only ... is available (...); use fewer
    """
    need = float(nbytes)
    if need < UNCHECKED_BYTES:
        return int(math.ceil(need))
    avail, source = available_memory()
    if not need <= avail:
        raise ValueError(
            f"{what} needs about {format_bytes(need)} of memory, but only {format_bytes(avail)} is available "
            f"({source}); {hint}"
        )
    return int(math.ceil(need))
