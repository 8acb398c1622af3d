"""Per-network random streams: network ``i`` of a seed owns ``SeedSequence(seed, spawn_key=(i,))``.

:func:`seed_sequences` gives these sequences and :func:`generator` a network's numpy stream,
``Generator(SFC64(seq))`` (what :class:`~meanfield.finite.MLP` draws its weights from). Creating those Python objects
costs about 15 microseconds per network, more than the whole sample of a fast sampler, so :func:`sfc64_states`
computes the same seeding (numpy's ``SeedSequence`` hash and
``SFC64`` warm-up, reimplemented bit for bit and checked against numpy in the tests) for a whole batch of networks in
compiled code. Kernels then draw from each network's 4-word state with :func:`next_uint64`, :func:`next_double`,
:func:`fill_normals`, :func:`gamma` and :func:`binomial_half`, which are exact in law (polar-method normals,
Marsaglia & Tsang gammas, binomials from counted bits; not numpy's ziggurat, so the normals differ from
``Generator.standard_normal`` on the same bits).
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_int
from .._jit import njit

__all__ = [
    "binomial_half",
    "fill_normals",
    "gamma",
    "generator",
    "next_double",
    "next_uint64",
    "root_sequence",
    "seed_sequences",
    "sfc64_states",
]

_M32 = np.uint64(0xFFFFFFFF)
_INIT_A = np.uint64(0x43B0D7E5)
_MULT_A = np.uint64(0x931E8875)
_INIT_B = np.uint64(0x8B51F9DD)
_MULT_B = np.uint64(0x58F38DED)
_MIX_L = np.uint64(0xCA01F9DD)
_MIX_R = np.uint64(0x4973F715)
_U16 = np.uint64(16)
_POOL = 4


def root_sequence(seed) -> np.random.SeedSequence:
    """The root ``SeedSequence`` of ``seed`` (None: fresh entropy, drawn once here)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is not None:
        check_int(seed, "seed", 0)
    return np.random.SeedSequence(seed)


def seed_sequences(seed, n_nets, start=0):
    """Per-network seed sequences: network ``i`` of ``seed`` is ``SeedSequence(seed, spawn_key=(i,))``.

    ``n_nets=None`` gives the single sequence ``seed`` itself (used by ``MLP.sample`` without a stack).
    """
    root = root_sequence(seed)
    entropy, key = root.entropy, tuple(root.spawn_key)
    if n_nets is None:
        return [np.random.SeedSequence(entropy, spawn_key=key)]
    return [np.random.SeedSequence(entropy, spawn_key=key + (i,)) for i in range(start, start + n_nets)]


def generator(seq) -> np.random.Generator:
    """The random stream of one network: ``Generator(SFC64(seq))``.

    SFC64 is the fastest numpy bit generator for normals here (10.4 vs 13.3 ns per normal for PCG64).
    """
    return np.random.Generator(np.random.SFC64(seq))


def _words(n: int) -> list[int]:
    """numpy's little-endian uint32 words of a non-negative int (``0`` is one word)."""
    out = [n & 0xFFFFFFFF]
    n >>= 32
    while n:
        out.append(n & 0xFFFFFFFF)
        n >>= 32
    return out


@njit(cache=True, nogil=True)
def _hashmix(value, h):
    value = (value ^ h[0]) & _M32
    h[0] = (h[0] * _MULT_A) & _M32
    value = (value * h[0]) & _M32
    return value ^ (value >> _U16)


@njit(cache=True, nogil=True)
def _mix(x, y):
    r = (_MIX_L * x - _MIX_R * y) & _M32
    return r ^ (r >> _U16)


@njit(cache=True, nogil=True)
def next_uint64(s):
    """The next 64 bits of the SFC64 state ``s`` (4 uint64 words, updated in place)."""
    tmp = s[0] + s[1] + s[3]
    s[3] += np.uint64(1)
    s[0] = s[1] ^ (s[1] >> np.uint64(11))
    s[1] = s[2] + (s[2] << np.uint64(3))
    s[2] = ((s[2] << np.uint64(24)) | (s[2] >> np.uint64(40))) + tmp
    return tmp


@njit(cache=True, nogil=True)
def _states(prefix, keys, out):
    """SFC64 states seeded from ``SeedSequence`` entropy words ``prefix + words(key)`` for every key."""
    entropy = np.empty(prefix.size + 2, dtype=np.uint64)
    entropy[: prefix.size] = prefix
    pool = np.empty(_POOL, dtype=np.uint64)
    h = np.empty(1, dtype=np.uint64)
    for k in range(keys.size):
        key = np.uint64(keys[k])
        m = prefix.size
        entropy[m] = key & _M32
        m += 1
        if key >> np.uint64(32):
            entropy[m] = key >> np.uint64(32)
            m += 1
        h[0] = _INIT_A  # SeedSequence.mix_entropy
        for i in range(_POOL):
            pool[i] = _hashmix(entropy[i] if i < m else np.uint64(0), h)
        for i_src in range(_POOL):
            for i_dst in range(_POOL):
                if i_src != i_dst:
                    pool[i_dst] = _mix(pool[i_dst], _hashmix(pool[i_src], h))
        for i_src in range(_POOL, m):
            for i_dst in range(_POOL):
                pool[i_dst] = _mix(pool[i_dst], _hashmix(entropy[i_src], h))
        hb = _INIT_B  # SeedSequence.generate_state(3, uint64): six uint32 words, little-endian pairs
        s = out[k]
        for w in range(3):
            lo_hi = np.zeros(2, dtype=np.uint64)
            for half in range(2):
                v = (pool[(2 * w + half) % _POOL] ^ hb) & _M32
                hb = (hb * _MULT_B) & _M32
                v = (v * hb) & _M32
                lo_hi[half] = v ^ (v >> _U16)
            s[w] = lo_hi[0] | (lo_hi[1] << np.uint64(32))
        s[3] = np.uint64(1)  # numpy's sfc64_set_seed: counter 1, then 12 rounds
        for _ in range(12):
            next_uint64(s)


def sfc64_states(root: np.random.SeedSequence, start: int, stop: int) -> np.ndarray:
    """SFC64 states ``(stop - start, 4)`` of networks ``start..stop-1`` of ``root``.

    Row ``k`` is the state of ``numpy.random.SFC64(SeedSequence(root.entropy, spawn_key=root.spawn_key +
    (start + k,)))`` right after seeding: the same bits, without creating the Python objects.
    """
    if root.pool_size != _POOL:
        raise ValueError(f"root must have pool_size {_POOL}, got {root.pool_size}")
    run = _words(int(root.entropy)) if isinstance(root.entropy, int | np.integer) else None
    if run is None:  # a sequence of ints as entropy
        run = [w for e in root.entropy for w in _words(int(e))]
    run += [0] * max(0, _POOL - len(run))  # a spawn key is always present here: pad to the pool size
    prefix = run + [w for key in root.spawn_key for w in _words(int(key))]
    out = np.empty((stop - start, 4), dtype=np.uint64)
    _states(np.array(prefix, dtype=np.uint64), np.arange(start, stop, dtype=np.uint64), out)
    return out


@njit(cache=True, nogil=True)
def next_double(s):
    """A uniform double in ``[0, 1)`` from the top 53 bits (numpy's ``next_double``)."""
    return (next_uint64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
def _normal_pair(s):
    """Two independent standard normals (Marsaglia's polar method: a uniform point of the unit disk)."""
    while True:
        u = 2.0 * next_double(s) - 1.0
        v = 2.0 * next_double(s) - 1.0
        r2 = u * u + v * v
        if 0.0 < r2 < 1.0:
            f = math.sqrt(-2.0 * math.log(r2) / r2)
            return u * f, v * f


@njit(cache=True, nogil=True)
def fill_normals(s, out):
    """Fill ``out`` with independent standard normals (Marsaglia's polar method, pairs)."""
    m = out.size
    for j in range(0, m, 2):
        a, b = _normal_pair(s)
        out[j] = a
        if j + 1 < m:
            out[j + 1] = b


@njit(cache=True, nogil=True)
def gamma(s, shape):
    """A ``Gamma(shape, 1)`` variate, ``shape >= 0`` (Marsaglia & Tsang 2000; ``shape < 1`` by the boost
    ``Gamma(a) = Gamma(a + 1) U^(1/a)``; ``0`` for ``shape = 0``)."""
    if shape <= 0.0:
        return 0.0
    boost = 1.0
    a = shape
    if a < 1.0:
        boost = (1.0 - next_double(s)) ** (1.0 / a)
        a += 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = _normal_pair(s)[0]
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = 1.0 - next_double(s)
        if math.log(u) < 0.5 * x * x + d - d * v + d * math.log(v):
            return d * v * boost


@njit(cache=True, nogil=True)
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return int((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True, nogil=True)
def binomial_half(s, n):
    """A ``Bin(n, 1/2)`` variate: the number of ones among ``n`` random bits."""
    k = 0
    left = n
    while left >= 64:
        k += _popcount(next_uint64(s))
        left -= 64
    if left > 0:
        k += _popcount(next_uint64(s) >> np.uint64(64 - left))
    return k
