"""Monte Carlo over finite random networks: the package's one runner, its statistics, and the empirical kernels.

:func:`run` is the one Monte Carlo loop of the package: network ``i`` of a seed is always drawn from
``numpy.random.SeedSequence(seed, spawn_key=(i,))``, networks are processed in batches (stacks) of
``batch_size``, batches go to any ``concurrent.futures``-style executor, a tqdm bar counts networks, and the
per-network results come back in network order as :class:`Samples` (mean, standard error, bootstrap). Results are
reproducible per seed and bit-identical whatever the batch size or executor. :func:`simulate` (the empirical kernels
below) and every sampler of :mod:`meanfield.dispersion` run on it.

:func:`simulate` draws ``n_nets`` independent networks from a :class:`~meanfield.Network` spec and records, per
network and exactly, the forward, backward and layer tangent kernels (Lou et al. 2022, eq. (9)). It runs the
package's single forward/backward pass (:mod:`meanfield.finite.mlp`) on stacks of ``batch_size`` networks, so every
layer of a whole stack is one batched BLAS call, and memory is bounded by ``batch_size``, not by ``n_nets``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .._checks import check_bool, check_choice, check_int, check_memory, check_network, finite_array, format_bytes
from .._executors import shipper
from ..activations import KIND_LEAKY
from ..network import Network
from ..stats import Bootstrap, bootstrap, stderr
from . import conditional
from .blocks import mask_sequence, skips
from .mlp import MLP, SUPPORTS, backward_factor, gram, tangent_kernel
from .stack import draw_stack
from .streams import root_sequence, seed_sequences, sfc64_states

__all__ = ["QUANTITIES", "Batch", "Samples", "Simulation", "run", "simulate"]

#: Quantities :func:`simulate` can record.
QUANTITIES = ("nngp", "backward", "ntk_layers", "ntk", "outputs")
_PER_LAYER = ("backward", "ntk_layers")
_NEEDS_BACKWARD = ("backward", "ntk_layers", "ntk")
#: samplers of :func:`simulate`
METHODS = ("conditional", "weights")
_MEMORY_BUDGET = 128 * 2**20  # bytes of working memory per stack when batch_size is None
#: batches submitted to an executor ahead of the one being collected (memory is bounded, not O(n_nets))
_IN_FLIGHT = 2 * (os.cpu_count() or 1) + 8


@dataclass(frozen=True)
class Samples:
    """Per-network results of a Monte Carlo run (the result of :func:`run`).

    Attributes
    ----------
    samples : dict
        Quantity name -> array with a leading axis of length ``n_nets`` (network ``i`` at index ``i``).
    seed : int or numpy.random.SeedSequence
        Network ``i`` was drawn from ``numpy.random.SeedSequence(seed, spawn_key=(i,))``.
    """

    samples: dict = field(repr=False)
    seed: int | np.random.SeedSequence

    @property
    def n_nets(self) -> int:
        return next(iter(self.samples.values())).shape[0]

    @property
    def quantities(self) -> tuple[str, ...]:
        return tuple(self.samples)

    def __getitem__(self, q: str) -> np.ndarray:
        if q not in self.samples:
            raise ValueError(f"quantity {q!r} was not recorded; recorded: {', '.join(self.samples)}")
        return self.samples[q]

    def mean(self, q: str) -> np.ndarray:
        """Monte Carlo mean over networks of quantity ``q``."""
        return self[q].mean(axis=0)

    def stderr(self, q: str) -> np.ndarray:
        """Standard error of :meth:`mean`, ``std(ddof=1) / sqrt(n_nets)`` (needs ``n_nets >= 2``)."""
        return stderr(self[q], "networks")

    def bootstrap(self, statistic, n_boot: int = 1000, seed=0) -> Bootstrap:
        """Bootstrap (over networks) of ``statistic(samples)``, where ``samples`` maps each recorded quantity to
        its per-network array; see :func:`bootstrap`.

        Examples
        --------
        The NTK dispersion ``E[Theta^2] / E[Theta]^2`` with the unbiased estimate of ``E[Theta]^2`` in the
        denominator, as Seleznova & Kutyniok 2022 (App. C.3) estimate it, with a bootstrap standard error:

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
        return bootstrap(statistic, self.samples, n_boot, seed)


# ----------------------------------------------------------------------------------------------------------------
# the runner
# ----------------------------------------------------------------------------------------------------------------
def blas_limit(threads):
    """Limit the BLAS thread pool (threadpoolctl, when installed) inside a ``with`` block; None: no limit."""
    if threads is None:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - optional
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads, user_api="blas")


@dataclass(frozen=True)
class Batch:
    """Networks ``start..stop-1`` of a seed: what a task of :func:`run` receives.

    Network ``i`` owns ``SeedSequence(root.entropy, spawn_key=root.spawn_key + (i,))``: :attr:`seeds` gives these
    (for :func:`meanfield.finite.stack.draw_stack` or :func:`meanfield.finite.streams.generator`), :meth:`sfc64_states`
    the seeded SFC64 states of the same streams for numba kernels (:mod:`meanfield.finite.streams`).
    """

    root: np.random.SeedSequence
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def seeds(self) -> list:
        return seed_sequences(self.root, self.stop - self.start, self.start)

    def sfc64_states(self) -> np.ndarray:
        return sfc64_states(self.root, self.start, self.stop)


def _run_batch(task, batch, args, blas_threads):
    """One task call on ``batch``, with limited BLAS threads."""
    with blas_limit(blas_threads):
        return batch.start, task(batch, *args)


def _ship_batch(batch, task, args, blas_threads):
    """:func:`_run_batch` with the batch first (the part that changes between submissions)."""
    return _run_batch(task, batch, args, blas_threads)


def run(task, n_nets: int, seed=0, args=(), batch_size: int = 1, executor=None, progress: bool = False,
        blas_threads: int | None = 1, desc: str = "networks") -> Samples:  # fmt: skip
    """Run ``task`` over ``n_nets`` independent random networks, in batches, and collect per-network results.

    Parameters
    ----------
    task : callable
        ``task(batch, *args) -> dict`` of arrays whose leading axis has length ``len(batch)``: one row per network,
        network ``k`` of the :class:`Batch` drawn only from its own stream (``batch.seeds[k]`` or
        ``batch.sfc64_states()[k]``). Closures and lambdas work with any executor: ``task`` and ``args`` are
        cloudpickled once for executors other than thread pools (:mod:`meanfield._executors`).
    n_nets : int
        Number of networks.
    seed : None, int or numpy.random.SeedSequence
        Network ``i`` receives ``SeedSequence(seed, spawn_key=(i,))``; None draws fresh entropy once (stored in
        the result's ``seed``).
    args : tuple
        Further arguments of ``task`` (anything cloudpickle serializes, for a process pool or Dask).
    batch_size : int
        Networks per task call.
    executor : concurrent.futures.Executor, optional
        Anything with ``submit`` (a ``ThreadPoolExecutor``, a ``ProcessPoolExecutor``, a Dask
        ``Client.get_executor()``); batches are merged in network order. None runs them here, one after another.
    progress : bool
        Show a tqdm progress bar counting networks.
    blas_threads : int or None
        BLAS threads while a batch is computed (threadpoolctl, when installed); None leaves BLAS alone.
    desc : str
        Label of the progress bar.

    Returns
    -------
    Samples
        Every array of ``task`` concatenated over batches, in network order. Bit-identical for every
        ``batch_size`` and executor, because network ``i`` depends only on its own seed sequence.

    Examples
    --------
    >>> from meanfield.finite.streams import generator
    >>> def norms(batch, d):
    ...     return {"norm": np.array([np.linalg.norm(generator(s).standard_normal(d)) for s in batch.seeds])}
    >>> a = run(norms, 10, seed=3, args=(5,), batch_size=4)
    >>> b = run(norms, 10, seed=3, args=(5,), batch_size=10)
    >>> a["norm"].shape, bool(np.array_equal(a["norm"], b["norm"]))
    ((10,), True)
    """
    if not callable(task):
        raise ValueError("task must be a callable task(batch, *args) -> dict of arrays")
    n_nets = check_int(n_nets, "n_nets")
    batch_size = check_int(batch_size, "batch_size")
    if blas_threads is not None:
        blas_threads = check_int(blas_threads, "blas_threads")
    if executor is not None and not hasattr(executor, "submit"):
        raise ValueError("executor must be a concurrent.futures.Executor (an object with .submit)")
    root = root_sequence(seed)
    starts = range(0, n_nets, batch_size)  # lazy: nothing of size O(n_nets) is built in Python
    samples = {}

    from tqdm import tqdm

    bar = tqdm(total=n_nets, disable=not progress, desc=desc, unit="net")

    def store(start, out):
        if not isinstance(out, dict) or not out:
            raise ValueError("task must return a non-empty dict of per-network arrays")
        out = {q: np.asarray(a) for q, a in out.items()}
        if not samples:  # the first batch tells the size of a network's results
            row = sum(a.nbytes / max(a.shape[0], 1) for a in out.values())
            check_memory(n_nets * row, f"the results of {n_nets} networks ({format_bytes(row)} each)",
                         "use fewer networks (n_nets) or record less per network")  # fmt: skip
        for q, a in out.items():
            if q not in samples:
                samples[q] = np.empty((n_nets,) + a.shape[1:], dtype=a.dtype)
            samples[q][start : start + a.shape[0]] = a
        bar.update(np.shape(next(iter(out.values())))[0])

    def batch(s):
        return Batch(root, s, min(s + batch_size, n_nets))

    pending = deque()
    try:
        if executor is None:
            for s in starts:
                store(*_run_batch(task, batch(s), args, blas_threads))
        else:  # at most _IN_FLIGHT batches submitted ahead, collected in network order
            # task and args cloudpickled once (closures, custom activations reach worker processes)
            ship = shipper(executor, _ship_batch, (task, args, blas_threads))
            for s in starts:
                pending.append(ship(batch(s)))
                if len(pending) >= _IN_FLIGHT:
                    store(*pending.popleft().result())
            while pending:
                store(*pending.popleft().result())
    finally:
        for fut in pending:
            fut.cancel()
        bar.close()
    return Samples(samples, seed if seed is not None else root.entropy)


# ----------------------------------------------------------------------------------------------------------------
# empirical kernels of finite networks
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Simulation(Samples):
    """Samples of empirical kernels over independent finite networks (the result of :func:`simulate`).

    Attributes
    ----------
    samples : dict
        Quantity name -> array with a leading axis of length ``n_nets``: ``nngp`` ``(n_nets, [L,] n, n)``,
        ``backward`` and ``ntk_layers`` ``(n_nets, L, n, n)``, ``ntk`` ``(n_nets, n, n)``, ``outputs``
        ``(n_nets, n)``.
    seed : int
        Network ``i`` was drawn from ``numpy.random.SeedSequence(seed, spawn_key=(i,))``.
    net : Network
        The spec the networks were drawn from.
    X : ndarray, shape (n, d)
        The inputs.
    bias : bool
        Whether the networks had bias parameters.
    """

    net: Network
    X: np.ndarray
    bias: bool

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
        residual=net.residual,
        normalization=net.normalization,
        dropout=net.dropout,
    )


def _kernels_task(batch, X, spec, quantities, layers, bias):
    """Record ``quantities`` for the networks of ``batch`` as one stack (no loop over networks)."""
    net = Network(**spec)
    L = net.depth
    fan = net.fan_ins(X.shape[1])
    seqs = batch.seeds
    masks = [mask_sequence(q) for q in seqs] if net.dropout is not None else None
    mlp = MLP(net, *draw_stack(net, X.shape[1], 1, bias, seqs), masks)
    zs, hs = mlp.forward_pass(X)
    S, n = len(batch), X.shape[0]
    out = {}
    if "outputs" in quantities:
        out["outputs"] = zs[-1][:, :, 0]
    grams = [np.broadcast_to(gram(h), (S, n, n)) for h in hs] if set(quantities) - {"outputs"} else None
    if "nngp" in quantities:
        out["nngp"] = _forward_kernels(net, grams, zs, fan, bias, range(L) if layers else [L - 1])
        if not layers:
            out["nngp"] = out["nngp"][:, 0]
    if any(q in quantities for q in _NEEDS_BACKWARD):
        deltas = mlp.backward_pass(X, zs)
        B = np.empty((S, L, n, n))
        for l in range(L):
            B[:, l] = backward_factor(deltas[l])
        if "backward" in quantities:
            out["backward"] = B
        if "ntk_layers" in quantities or "ntk" in quantities:
            omega_w, omega_b = mlp.kernel_weights()
            K = np.stack([tangent_kernel(grams[l], B[:, l], omega_w[l], omega_b[l]) for l in range(L)], axis=1)
            if "ntk_layers" in quantities:
                out["ntk_layers"] = K
            if "ntk" in quantities:
                out["ntk"] = K.sum(axis=1)
    return out


def _forward_kernels(net: Network, grams, zs, fan, bias: bool, ls):
    """``F_l = [z_{l-1}.z'_{l-1}/N_{l-1} on residual layers] + beta_l^2 (sigma_w,l^2/N_{l-1} h_{l-1}.h'_{l-1} +
    sigma_b,l^2)`` for the layers ``ls`` (0-based), stacked on axis 1: the covariance of ``z_l`` per unit given the
    layers below (the skip and the branch are uncorrelated given them), whose mean is ``Sigma_l``."""
    skip = skips(net)
    sw, sb = net.weight_variances, net.bias_variances
    beta2 = net.residual**2 if net.residual is not None else 1.0
    out = []
    for l in ls:
        F = sw[l] / fan[l] * grams[l] + (sb[l] if bias else 0.0)
        if skip[l]:
            F = gram(zs[l - 1]) / fan[l] + beta2 * F
        out.append(F)
    return np.stack(out, axis=1)


def _per_net_bytes(net: Network, d: int, n: int, bias: bool) -> int:
    fan = net.fan_ins(d)
    outs = net.width + (1,)
    params = sum(o * f for o, f in zip(outs, fan, strict=True)) + (sum(outs) if bias else 0)
    acts = (4 if net.plain or net.features == ("schedule",) else 6) * n * sum(outs)  # z, h, phi'(z), delta; LN, masks
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
    executor=None,
    progress: bool | None = None,
    bias: bool = True,
    blas_threads: int | None = 1,
    method: str | None = None,
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
        Network ``i`` is drawn from ``numpy.random.SeedSequence(seed, spawn_key=(i,))`` (with
        ``method="weights"`` the same network as ``MLP.sample(net, d, seed, n_nets=...)[i]``), so results are
        bit-identical whatever ``batch_size``, ``executor`` or number of workers (:func:`run`).
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
    method : {"conditional", "weights"}, optional
        ``"weights"``: draw every weight matrix and run the network (:mod:`meanfield.finite.mlp`, the reference).
        ``"conditional"``: the exact conditional sampler (:mod:`meanfield.finite.conditional`), the same joint law
        of every recorded quantity without forming the weight matrices (about ``2 n N`` instead of ``N^2``
        normals per layer). Default: the faster one for this network and ``n``
        (:func:`meanfield.finite.conditional.default_method`). The two agree in distribution, not network by
        network; each is reproducible per seed and bit-identical across batch sizes and executors. The conditional
        sampler also implements every option of the spec (per-layer variances, residual blocks, LayerNorm,
        dropout; conventions in :mod:`meanfield.finite.conditional`).

    Returns
    -------
    Simulation

    Notes
    -----
    Per network, exactly: the forward kernel ``F_l = sigma_w^2/N_{l-1} h_{l-1}.h'_{l-1} + sigma_b^2`` (the
    finite-width ``Sigma_l``; ``F_1`` is deterministic), the backward kernel ``B_l = delta_l.delta'_l`` with
    ``delta_l = df/dz_l`` (``B_L = 1``), and the layer tangent kernel ``K_l = omega_W h_{l-1}.h'_{l-1} B_l +
    omega_b B_l`` with ``(omega_W, omega_b) = (sigma_w^2/N_{l-1}, sigma_b^2)`` in NTP (so ``K_l = F_l * B_l``)
    and ``(1, 1)`` in SP (Lou et al. 2022, eq. (9), with biases; :func:`meanfield.finite.mlp.tangent_kernel`).
    As ``N -> inf`` in NTP, ``E F_l -> Sigma_l``, ``E B_l -> prod_{k>l} Sigmadot_k`` and ``E K_l -> Theta^(l)``;
    the finite-width bias is ``O(1/N)`` (Hanin & Nica 2019).

    Every option of the spec is simulated (:class:`~meanfield.finite.MLP`): with residual blocks ``F_l`` adds the
    skip ``z_{l-1}.z'_{l-1}/N_{l-1}`` and the branch gets ``beta^2`` (``B_l`` is the kernel of ``df/dz_l``, the
    residual stream, and ``K_l = beta^2 (omega_W G + omega_b) B_l``); with dropout every network has its own fixed
    masks (:mod:`meanfield.finite.blocks`, reproducible per seed and bit-identical across batch sizes), so
    averages run over masks and weights.

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
    if method is not None:
        check_choice(method, METHODS, "method")
    check_network(net, supports=SUPPORTS if method == "weights" else conditional.SUPPORTS, what="simulate")
    if net.width is None:
        raise ValueError("net.width is None: simulate needs finite networks, e.g. Network(..., width=512)")
    X = finite_array(X, "X")  # real: no complex (whose imaginary part a cast drops), bool or object dtype
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be a non-empty 2-D array (n, d), got shape {X.shape}")
    layers, bias = check_bool(layers, "layers"), check_bool(bias, "bias")
    if method is None:
        method = conditional.default_method(net, X.shape[1], X.shape[0], bias)
    if progress is not None:
        progress = check_bool(progress, "progress")
    n_nets = check_int(n_nets, "n_nets")
    seed = check_int(seed, "seed", 0)
    if isinstance(quantities, str):
        quantities = (quantities,)
    quantities = tuple(dict.fromkeys(quantities))
    bad = [q for q in quantities if q not in QUANTITIES]
    if bad or not quantities:
        raise ValueError(f"quantities must be a non-empty subset of {QUANTITIES}, got {quantities!r}")
    n, d = X.shape
    per_net = conditional.per_net_bytes if method == "conditional" else _per_net_bytes
    if batch_size is None:
        batch_size = max(1, min(n_nets, _MEMORY_BUDGET // per_net(net, d, n, bias)))
    L = net.depth
    per_q = {"nngp": L * n * n if layers else n * n, "backward": L * n * n, "ntk_layers": L * n * n, "ntk": n * n,
             "outputs": n}  # fmt: skip
    stored = 8.0 * sum(per_q[q] for q in quantities)
    check_memory(
        float(n_nets) * stored + float(batch_size) * per_net(net, d, n, bias),
        f"simulate with {n_nets} networks of widths up to {max(net.width, default=1)} on {n} inputs",
        "use fewer networks (n_nets), a smaller width, fewer inputs or quantities, or a smaller batch_size",
    )
    if progress is None:
        progress = sys.stderr.isatty()
    args = (X, _pack(net), quantities, bool(layers), bool(bias))
    task = conditional.conditional_task if method == "conditional" else _kernels_task
    try:
        res = run(task, n_nets, seed, args, batch_size, executor, progress, blas_threads)
    finally:
        if method == "conditional":
            conditional.release_workspace()  # this thread's reused buffer of the conditional passes
    samples = {q: res.samples[q] for q in quantities}  # in the order asked for
    return Simulation(samples, seed, net, X, bool(bias))
