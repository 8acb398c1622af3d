"""Monte Carlo over finite random networks: empirical NNGP, backward and tangent kernels, batched and reproducible.

:func:`simulate` draws ``n_nets`` independent networks from a :class:`~meanfield.Network` spec and records, per
network and exactly, the kernels of signal_propagation.md sec. 4.3 and 9. It runs the package's single
forward/backward pass (:mod:`meanfield.finite`) on stacks of ``batch_size`` networks, so every layer of a whole
stack is one batched BLAS call, and memory is bounded by ``batch_size``, not by ``n_nets``.
"""

from __future__ import annotations

import contextlib
import numbers
import sys
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from ..activations import KIND_LEAKY
from ..network import Network
from .mlp import _backward, _draw, _forward, _gram, _multipliers, _seed_sequences

__all__ = ["simulate", "Simulation", "Bootstrap", "QUANTITIES"]

#: Quantities :func:`simulate` can record.
QUANTITIES = ("nngp", "backward", "ntk_layers", "ntk", "outputs")
_PER_LAYER = ("backward", "ntk_layers")
_NEEDS_BACKWARD = ("backward", "ntk_layers", "ntk")
_MEMORY_BUDGET = 128 * 2**20  # bytes of working memory per stack when batch_size is None


@dataclass(frozen=True)
class Bootstrap:
    """A bootstrap estimate: the statistic on the full sample and its bootstrap standard error."""

    estimate: np.ndarray | float
    stderr: np.ndarray | float


@dataclass(frozen=True)
class Simulation:
    """Samples of empirical kernels over independent finite networks (the result of :func:`simulate`).

    Attributes
    ----------
    net : Network
        The spec the networks were drawn from.
    X : ndarray, shape (n, d)
        The inputs.
    seed : int
        Network ``i`` was drawn from ``numpy.random.SeedSequence(seed, spawn_key=(i,))``.
    bias : bool
        Whether the networks had bias parameters.
    samples : dict
        Quantity name -> array with a leading axis of length ``n_nets``: ``nngp`` ``(n_nets, [L,] n, n)``,
        ``backward`` and ``ntk_layers`` ``(n_nets, L, n, n)``, ``ntk`` ``(n_nets, n, n)``, ``outputs``
        ``(n_nets, n)``.
    """

    net: Network
    X: np.ndarray
    seed: int
    bias: bool
    samples: dict = field(repr=False)

    @property
    def n_nets(self) -> int:
        return next(iter(self.samples.values())).shape[0]

    @property
    def quantities(self) -> tuple[str, ...]:
        return tuple(self.samples)

    def __getitem__(self, q: str) -> np.ndarray:
        return self.samples[self._check(q)]

    def _check(self, q):
        if q not in self.samples:
            raise ValueError(f"quantity {q!r} was not recorded; recorded: {', '.join(self.samples)}")
        return q

    def mean(self, q: str) -> np.ndarray:
        """Monte Carlo mean over networks of quantity ``q``."""
        return self[q].mean(axis=0)

    def stderr(self, q: str) -> np.ndarray:
        """Standard error of :meth:`mean`, ``std(ddof=1) / sqrt(n_nets)`` (needs ``n_nets >= 2``)."""
        a = self[q]
        if a.shape[0] < 2:
            raise ValueError("stderr needs n_nets >= 2")
        return a.std(axis=0, ddof=1) / np.sqrt(a.shape[0])

    def zscore(self, q: str, theory) -> np.ndarray:
        """``(mean - theory) / stderr`` entrywise.

        Entries that do not fluctuate (``stderr`` at rounding level, e.g. the first-layer forward kernel or
        ``B_L = 1``) get ``z = 0`` when they agree with ``theory`` to 1e-12 relative and ``+-inf`` otherwise.
        """
        m, s = self.mean(q), self.stderr(q)
        diff = m - np.asarray(theory, dtype=np.float64)
        scale = np.abs(self[q]).max(axis=0)
        exact = s <= 1e-12 * scale  # rounding-level spread of a deterministic entry
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(exact, 0.0, diff / np.where(exact, 1.0, s))
        if np.any(exact):
            z = np.where(exact & (np.abs(diff) > 1e-12 * scale), np.copysign(np.inf, diff), z)
        return z

    def bootstrap(self, statistic, n_boot: int = 1000, seed: int = 0) -> Bootstrap:
        """Bootstrap (over networks) estimate and standard error of any statistic of the samples.

        Parameters
        ----------
        statistic : callable
            ``statistic(samples) -> float or ndarray``, where ``samples`` maps each recorded quantity to its
            array of per-network values (leading axis = networks), e.g.
            ``lambda s: (s["ntk"] ** 2).mean(0) / s["ntk"].mean(0) ** 2``.
        n_boot : int
            Number of bootstrap resamples (>= 2).
        seed : int
            Seed of the resampling.

        Returns
        -------
        Bootstrap
            ``estimate = statistic(samples)`` and ``stderr`` = the standard deviation over resamples.

        Notes
        -----
        Resamples networks with replacement, so statistics that combine several quantities of the same
        networks keep their correlations. Seed 004 (App. C.3) estimates the NTK dispersion
        ``E[Theta^2] / E[Theta]^2`` with the unbiased ``mu_1^2 = M/(M-1) (mean^2 - mean(Theta^2)/M)`` in the
        denominator and reports a bootstrap standard error; that is the example below.

        Examples
        --------
        >>> import numpy as np
        >>> from meanfield import Network
        >>> sim = simulate(np.eye(2), Network(3, "relu", width=16), n_nets=50, seed=0, quantities=("ntk",))
        >>> def dispersion(s):
        ...     t = s["ntk"][:, 0, 0]
        ...     m1, m2, M = t.mean(), (t * t).mean(), t.size
        ...     return m2 / (M / (M - 1) * (m1 * m1 - m2 / M))
        >>> b = sim.bootstrap(dispersion, n_boot=200)
        >>> bool(b.estimate > 1 and 0 < b.stderr < 1)
        True
        """
        if not callable(statistic):
            raise ValueError("statistic must be a callable of the samples dict")
        if isinstance(n_boot, bool) or not isinstance(n_boot, numbers.Integral) or n_boot < 2:
            raise ValueError(f"n_boot must be an integer >= 2, got {n_boot!r}")
        rng = np.random.default_rng(seed)
        n = self.n_nets
        estimate = np.asarray(statistic(self.samples), dtype=np.float64)
        reps = np.empty((n_boot,) + estimate.shape)
        for b in range(n_boot):
            idx = rng.integers(0, n, n)
            reps[b] = statistic({q: a[idx] for q, a in self.samples.items()})
        est = estimate if estimate.ndim else float(estimate)
        se = reps.std(axis=0, ddof=1)
        return Bootstrap(est, se if se.ndim else float(se))


# ----------------------------------------------------------------------------------------------------------------
def _pack(net: Network) -> dict:
    """A picklable description of ``net`` (closures of the leaky-ReLU family are rebuilt from their slope)."""
    act = net.activation
    token = f"leaky_relu:{act.slope!r}" if act.kind == KIND_LEAKY else act
    return dict(
        depth=net.depth,
        activation=token,
        sigma_w2=net.sigma_w2,
        sigma_b2=net.sigma_b2,
        parameterization=net.parameterization,
        width=net.width,
    )


def _blas_limit(threads):
    """Limit the BLAS thread pool (threadpoolctl, when installed) for the duration of a chunk."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


def _simulate_chunk(X, spec, seed, start, stop, quantities, layers, bias, blas_threads=None):
    """Record ``quantities`` for networks ``start..stop-1`` of ``seed`` as one stack, with limited BLAS threads."""
    with _blas_limit(blas_threads):
        return _chunk(X, spec, seed, start, stop, quantities, layers, bias)


def _chunk(X, spec, seed, start, stop, quantities, layers, bias):
    """Record ``quantities`` for networks ``start..stop-1`` of ``seed`` as one stack (no loop over networks)."""
    net = Network(**spec)
    L = net.depth
    fan = net.fan_ins(X.shape[1])
    Ws, bs = _draw(net, X.shape[1], 1, bias, _seed_sequences(seed, stop - start, start))
    mw, mb = _multipliers(net, fan)
    zs, hs = _forward(X, Ws, bs, mw, mb, net.activation)
    S, n = stop - start, X.shape[0]
    sb2 = net.sigma_b2 if bias else 0.0
    out = {}
    if "outputs" in quantities:
        out["outputs"] = zs[-1][:, :, 0]
    grams = [np.broadcast_to(_gram(h), (S, n, n)) for h in hs] if set(quantities) - {"outputs"} else None
    if "nngp" in quantities:
        ls = range(L) if layers else [L - 1]
        F = np.stack([net.sigma_w2 / fan[l] * grams[l] + sb2 for l in ls], axis=1)
        out["nngp"] = F if layers else F[:, 0]
    if any(q in quantities for q in _NEEDS_BACKWARD):
        seed_delta = np.ones((1, 1, n, 1))
        deltas = _backward(zs, Ws, mw, net.activation, seed_delta)
        B = np.empty((S, L, n, n))
        for l in range(L):
            B[:, l] = _gram(deltas[l][:, 0])
        omega_w, omega_b = mw**2, (mb**2 if bias else np.zeros(L))
        if "backward" in quantities:
            out["backward"] = B
        if "ntk_layers" in quantities or "ntk" in quantities:
            K = np.stack([(omega_w[l] * grams[l] + omega_b[l]) * B[:, l] for l in range(L)], axis=1)
            if "ntk_layers" in quantities:
                out["ntk_layers"] = K
            if "ntk" in quantities:
                out["ntk"] = K.sum(axis=1)
    return start, out


def _shapes(q, n, L, layers, n_nets):
    if q == "outputs":
        return (n_nets, n)
    if q in _PER_LAYER or (q == "nngp" and layers):
        return (n_nets, L, n, n)
    return (n_nets, n, n)


def _per_net_bytes(net: Network, d: int, n: int, bias: bool) -> int:
    fan = net.fan_ins(d)
    outs = net.width + (1,)
    params = sum(o * f for o, f in zip(outs, fan, strict=True)) + (sum(outs) if bias else 0)
    acts = 4 * n * sum(outs)  # z, h, phi'(z), delta
    kernels = 4 * net.depth * n * n
    return 8 * (params + acts + kernels)


def simulate(
    X,
    net: Network,
    n_nets: int,
    seed: int = 0,
    quantities=("nngp", "ntk"),
    layers: bool = False,
    batch_size: int | None = None,
    executor: Executor | None = None,
    progress: bool | None = None,
    bias: bool = True,
    blas_threads: int | None = 1,
) -> Simulation:
    """Empirical kernels of ``n_nets`` independent finite random networks.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Inputs.
    net : Network
        The spec; ``net.width`` (int or the hidden widths) is required. Either parameterization, any activation.
    n_nets : int
        Number of independent networks.
    seed : int
        Network ``i`` is drawn from ``numpy.random.SeedSequence(seed, spawn_key=(i,))`` (the same network as
        ``MLP.sample(net, d, seed, n_nets=...)[i]``), so results are bit-identical whatever ``batch_size``,
        ``executor`` or number of workers.
    quantities : sequence of str
        Any of ``"nngp"`` (forward kernels ``F_l``), ``"backward"`` (``B_l``), ``"ntk_layers"`` (``K_l``),
        ``"ntk"`` (``sum_l K_l``) and ``"outputs"`` (``f(X)``). Only these are computed and stored.
    layers : bool
        Record ``nngp`` for every layer ``(n_nets, L, n, n)`` instead of the output layer only ``(n_nets, n, n)``.
        ``backward`` and ``ntk_layers`` are always per layer.
    batch_size : int, optional
        Networks per stack (one batched BLAS call per layer). Default: as many as fit in 128 MB.
    executor : concurrent.futures.Executor, optional
        Receives the stacks as tasks (a ``ProcessPoolExecutor``, or a Dask ``Client.get_executor()``); results
        are merged in network order.
    progress : bool, optional
        Show a tqdm progress bar. Default: when stderr is a terminal.
    bias : bool
        Whether every layer has a bias parameter (variance ``sigma_b2``); without biases ``sigma_b2`` is unused.
    blas_threads : int or None
        BLAS threads per process while a stack is computed (via threadpoolctl when it is installed). Default 1:
        a stack is many small matmuls, where BLAS threading costs more than it gains (measured 8x slower with
        2 threads at n = 4, width 1024); use ``executor`` to run stacks in parallel. None leaves BLAS alone.

    Returns
    -------
    Simulation

    Notes
    -----
    Per network, exactly (signal_propagation.md, sec. 1, 4.3, 9): the forward kernel
    ``F_l = sigma_w^2/N_{l-1} h_{l-1}.h'_{l-1} + sigma_b^2`` (the finite-width ``Sigma_l``; ``F_1`` is
    deterministic), the backward kernel ``B_l = delta_l.delta'_l`` with ``delta_l = df/dz_l`` (``B_L = 1``), and the
    layer tangent kernel ``K_l = omega_W h_{l-1}.h'_{l-1} B_l + omega_b B_l`` with ``(omega_W, omega_b) =
    (sigma_w^2/N_{l-1}, sigma_b^2)`` in NTP (so ``K_l = F_l * B_l``) and ``(1, 1)`` in SP (seed 000 eq. (9),
    with biases). As ``N -> inf`` in NTP, ``E F_l -> Sigma_l``, ``E B_l -> prod_{k>l} Sigmadot_k`` and
    ``E K_l -> Theta^(l)``; the finite-width bias is ``O(1/N)``.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import Network
    >>> X = np.array([[1.0, 0.0], [0.6, 0.8]])
    >>> sim = simulate(X, Network(3, "relu", width=64), n_nets=20, seed=1, quantities=("ntk",))
    >>> sim["ntk"].shape
    (20, 2, 2)
    >>> bool(np.all(sim.stderr("ntk") > 0))
    True
    """
    if not isinstance(net, Network):
        raise ValueError(f"net must be a meanfield.Network, got {type(net).__name__}")
    if net.width is None:
        raise ValueError("net.width is None: simulate needs finite networks, e.g. Network(..., width=512)")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a non-empty 2-D array (n, d), got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X must contain only finite numbers")
    if isinstance(n_nets, bool) or not isinstance(n_nets, numbers.Integral) or n_nets < 1:
        raise ValueError(f"n_nets must be an integer >= 1, got {n_nets!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if isinstance(quantities, str):
        quantities = (quantities,)
    quantities = tuple(dict.fromkeys(quantities))
    bad = [q for q in quantities if q not in QUANTITIES]
    if bad or not quantities:
        raise ValueError(f"quantities must be a non-empty subset of {QUANTITIES}, got {quantities!r}")
    n, d = X.shape
    if batch_size is None:
        batch_size = max(1, min(n_nets, _MEMORY_BUDGET // _per_net_bytes(net, d, n, bias)))
    elif isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if executor is not None and not isinstance(executor, Executor) and not hasattr(executor, "submit"):
        raise ValueError("executor must be a concurrent.futures.Executor (an object with .submit)")
    if progress is None:
        progress = sys.stderr.isatty()

    n_nets, seed, batch_size = int(n_nets), int(seed), int(batch_size)
    L = net.depth
    samples = {q: np.empty(_shapes(q, n, L, layers, n_nets)) for q in quantities}
    spec = _pack(net)
    chunks = [(s, min(s + batch_size, n_nets)) for s in range(0, n_nets, batch_size)]
    args = (X, spec, seed)
    if blas_threads is not None and (
        isinstance(blas_threads, bool) or not isinstance(blas_threads, numbers.Integral) or blas_threads < 1
    ):
        raise ValueError(f"blas_threads must be None or an integer >= 1, got {blas_threads!r}")
    rest = (quantities, bool(layers), bool(bias), blas_threads)

    from tqdm import tqdm

    bar = tqdm(total=n_nets, disable=not progress, desc="networks", unit="net")

    def store(start, out):
        for q, a in out.items():
            samples[q][start : start + a.shape[0]] = a
        bar.update(next(iter(out.values())).shape[0])

    try:
        if executor is None:
            for a, b in chunks:
                store(*_simulate_chunk(*args, a, b, *rest))
        else:
            futures = [executor.submit(_simulate_chunk, *args, a, b, *rest) for a, b in chunks]
            for fut in futures:
                store(*fut.result())
    finally:
        bar.close()
    return Simulation(net, X, seed, bool(bias), samples)
