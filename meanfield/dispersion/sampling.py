"""Monte Carlo of the NTK of finite ReLU networks in Seleznova & Kutyniok 2022's setting (diagonal and pairs).

The setting (Seleznova & Kutyniok 2022, eqs. (3), (4), (6)): a fully connected ReLU network in standard
parameterization, ``W^l_ij ~ N(0, sigma_w2 / n_{l-1})``, biases initialized to zero (``sigma_b = 0``) but trained,
scalar linear output, input dimension ``n_0 = d`` and hidden widths ``n_1..n_{L-1}``. The diagonal NTK entry is

    Theta(x, x) = sum_{l=1}^{L} ||delta^l||^2 (||x^{l-1}||^2 + 1) = Theta_W + Theta_b.

Every sampler here runs on the package's one Monte Carlo runner (:func:`meanfield.finite.run`): network ``i`` of a
seed is drawn from ``SeedSequence(seed, spawn_key=(i,))``, so the draws are reproducible per seed and identical for
every ``batch_size`` and ``executor``. The brute-force samplers draw :class:`meanfield.MLP` stacks and take their
tangent kernels from the package's one layer-kernel path (:func:`meanfield.finite.mlp.tangent_kernel`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, check_int, check_memory, check_real
from .._jit import njit
from ..finite.conditional import conditional_pass
from ..finite.mlp import MLP, kernel_factors, tangent_kernel
from ..finite.montecarlo import run
from ..finite.stack import draw_stack
from ..finite.streams import binomial_half, fill_normals, gamma
from ..network import Network
from .moments import check_network

__all__ = ["NTKPairSample", "NTKSample", "sample_ntk_diagonal", "sample_ntk_pair"]

METHODS = ("projection", "matmul", "law", "conditional")
PAIR_METHODS = ("conditional", "matmul")


# --------------------------------------------------------------------------------------------------------------
# the network of the dispersion subpackage
# --------------------------------------------------------------------------------------------------------------
def network_widths(net, d) -> tuple[np.ndarray, float]:
    """Widths ``(n_0 = d, n_1, ..., n_{L-1})`` (int64) and ``sigma_w2`` of a network the samplers can draw, after
    :func:`meanfield.dispersion.moments.check_network` (finite-width ReLU, standard parameterization, no bias
    variance): the NTP tangent kernel differs from the SP one by layer-dependent factors, which the samplers do not
    compute."""
    n = check_network(net, d)
    if n is None:
        raise ValueError("d must be an integer >= 1 (the input dimension), got None")
    return n.astype(np.int64), net.sigma_w2


def probe_inputs(d: int, x0_norm2: float = 1.0, rho=None) -> np.ndarray:
    """One input ``sqrt(x0_norm2) e_1`` (or two unit inputs at correlation ``rho``), shape ``(1 or 2, d)``.

    By rotational invariance of the first layer only these norms and correlations matter.
    """
    if rho is None:
        X = np.zeros((1, d))
        X[0, 0] = math.sqrt(x0_norm2)
        return X
    if d < 2 and abs(rho) < 1:
        raise ValueError(f"two inputs at correlation {rho} need an input dimension d >= 2, got {d}")
    X = np.zeros((2, d))
    X[0, 0] = 1.0
    X[1, 0] = rho
    if d > 1:
        X[1, 1] = math.sqrt(max(0.0, 1.0 - rho * rho))
    return X


def sp_relu_stack(seqs, n_int, sw2) -> MLP:
    """The networks of ``seqs`` as one :class:`meanfield.MLP` stack: SP ReLU, widths ``n_0..n_{L-1}``, a scalar
    readout and zero-initialized trainable biases (:func:`meanfield.finite.stack.draw_stack`)."""
    net = sp_relu_net(n_int, sw2)
    return MLP(net, *draw_stack(net, int(n_int[0]), 1, True, seqs))


def sp_relu_net(n_int, sw2) -> Network:
    """The :class:`~meanfield.Network` of the samplers: SP ReLU, hidden widths ``n_1..n_{L-1}``, ``sigma_b2 = 0``."""
    return Network(int(n_int.size), "relu", sw2, 0.0, "standard", width=tuple(int(w) for w in n_int[1:]))


def conditional_parts(seqs, n_int, sw2, X):
    """Weight and bias parts of the tangent kernel, ``(S, k, k)`` each, of the networks of ``seqs`` drawn by the
    exact conditional sampler (:func:`meanfield.finite.conditional.conditional_pass`; SP, so ``omega_W = omega_b =
    1``): ``sum_l G_l B_l`` and ``sum_l B_l`` (Seleznova & Kutyniok 2022, eq. (4))."""
    p = conditional_pass(X, sp_relu_net(n_int, sw2), seqs, bias=True)
    tw = sum(g * b for g, b in zip(p.grams, p.backward, strict=True))
    return tw, sum(p.backward)


def ntk_parts(mlp: MLP, X):
    """Weight and bias parts of the tangent kernel, ``sum_l K_l`` of the weights and of the biases, ``(S, k, k)``.

    One forward and one backward pass; each layer's kernel comes from
    :func:`meanfield.finite.mlp.tangent_kernel` (in SP: ``sum_l (delta_l . delta_l')(x_{l-1} . x_{l-1}')`` and
    ``sum_l delta_l . delta_l'``, Seleznova & Kutyniok 2022, eq. (4)).
    """
    zs, hs = mlp.forward_pass(X)
    deltas = mlp.backward_pass(X, zs)
    omega_w, omega_b = mlp.kernel_weights()
    tw = tb = 0.0
    for l in range(mlp.net.depth):
        G, B = kernel_factors(hs[l], deltas[l])
        tw = tw + tangent_kernel(G, B, omega_w[l], 0.0)
        tb = tb + tangent_kernel(G, B, 0.0, omega_b[l])
    return tw, tb


# --------------------------------------------------------------------------------------------------------------
# the diagonal entry
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NTKSample:
    """Independent draws of the diagonal NTK entry, split into weight and bias parts.

    Attributes
    ----------
    theta_w, theta_b : ndarray
        ``Theta_W(x, x)`` and ``Theta_b(x, x)``, one entry per network (network ``i`` at index ``i``).
    method : str
        Sampler used.
    """

    theta_w: np.ndarray
    theta_b: np.ndarray
    method: str

    @property
    def theta(self) -> np.ndarray:
        return self.theta_w + self.theta_b


@njit(cache=True, nogil=True)
def _projection_kernel(states, n, sw2, x0sq, out_w, out_b):
    """Per network: ``2 (n_1 + ... + n_{L-1}) + 1`` normals from its own stream, then the projection pass."""
    B = states.shape[0]
    L = n.shape[0]
    nmax = 1
    m = 1
    for l in range(L):
        nmax = max(nmax, n[l])
        if l > 0:
            m += 2 * n[l]
    H = np.zeros((L, nmax))  # H[l] = h^l, l = 1..L-1
    xn2 = np.empty(L)  # ||x^l||^2, l = 0..L-1
    d_next = np.empty(nmax)
    d = np.empty(nmax)
    z = np.empty(m)
    for bi in range(B):
        fill_normals(states[bi], z)
        xn2[0] = x0sq
        pos = 0
        for l in range(1, L):
            s = math.sqrt(sw2 / n[l - 1] * xn2[l - 1])
            acc = 0.0
            for i in range(n[l]):
                h = s * z[pos + i]
                H[l, i] = h
                if h > 0:
                    acc += h * h
            xn2[l] = acc
            pos += n[l]
        # z[pos] = g_L with W^L u_{L-1} = sqrt(sw2/n_{L-1}) g_L; delta^L = 1
        d_next[0] = 1.0
        gpos = pos
        bpos = pos + 1
        tw = xn2[L - 1]
        tb = 1.0
        for l in range(L - 1, 0, -1):
            nl = n[l]
            n_next = 1 if l == L - 1 else n[l + 1]
            scale = math.sqrt(sw2 / nl)
            alpha = 0.0  # (W^{l+1} u_l) . delta^{l+1}
            dn2 = 0.0
            for k in range(n_next):
                alpha += z[gpos + k] * d_next[k]
                dn2 += d_next[k] * d_next[k]
            alpha *= scale
            # W^{l+1,T} delta^{l+1} = u_l alpha + P_perp(g),  g ~ N(0, scale^2 ||delta^{l+1}||^2 I), u_l = x^l/||x^l||
            vs = scale * math.sqrt(dn2)
            proj = 0.0
            for i in range(nl):
                d[i] = vs * z[bpos + i]
                if H[l, i] > 0:
                    proj += d[i] * H[l, i]
            xnorm = math.sqrt(xn2[l])
            coef = (alpha - proj / xnorm) / xnorm if xnorm > 0 else 0.0
            acc = 0.0
            for i in range(nl):
                if H[l, i] > 0:
                    d_next[i] = d[i] + coef * H[l, i]
                    acc += d_next[i] * d_next[i]
                else:
                    d_next[i] = 0.0
            bpos += nl
            gpos -= nl
            tw += acc * xn2[l - 1]
            tb += acc
        out_w[bi] = tw
        out_b[bi] = tb


def _projection_task(batch, n_int, sw2, x0sq):
    out_w, out_b = np.empty(len(batch)), np.empty(len(batch))
    _projection_kernel(batch.sfc64_states(), n_int, sw2, x0sq, out_w, out_b)
    return {"theta_w": out_w, "theta_b": out_b}


@njit(cache=True, nogil=True)
def _law_draws(states, n_hidden, K, A, Bq, g):
    """Per network, from its own stream: ``K_q ~ Bin(n_q, 1/2)``, ``A_q ~ chi^2_{K_q}``, ``B_q ~ chi^2_{K_q - 1}``
    for the hidden layers and ``g ~ N(0, 1)``."""
    z = np.empty(1)
    for k in range(states.shape[0]):
        s = states[k]
        for q in range(n_hidden.size):
            K[k, q] = binomial_half(s, n_hidden[q])
            A[k, q] = 2.0 * gamma(s, K[k, q] / 2.0)
            Bq[k, q] = 2.0 * gamma(s, max(K[k, q] - 1, 0) / 2.0)
        fill_normals(s, z)
        g[k] = z[0]


def _law_task(batch, n_int, sw2, x0sq):
    """Draws of the exact scalar law of ``Theta`` (derived here, see :func:`sample_ntk_diagonal`), dead layers
    included."""
    b, L = len(batch), n_int.size
    n = n_int.astype(float)
    K = np.empty((b, L - 1), dtype=np.int64)
    A, Bq, g = np.empty((b, L - 1)), np.empty((b, L - 1)), np.empty(b)
    _law_draws(batch.sfc64_states(), n_int[1:], K, A, Bq, g)
    X = np.empty((b, L))
    X[:, 0] = x0sq
    for q in range(1, L):
        X[:, q] = sw2 / n[q - 1] * X[:, q - 1] * A[:, q - 1]
    f2 = sw2 / n[L - 1] * X[:, L - 1] * g**2
    dead = np.any(K == 0, axis=1) if L > 1 else np.zeros(b, bool)
    Xs = np.where(dead[:, None], 1.0, X)
    Dn = np.empty((b, L))
    Dn[:, L - 1] = 1.0
    for q in range(L - 1, 0, -1):
        Dn[:, q - 1] = f2 / Xs[:, q] + sw2 / n[q] * Dn[:, q] * Bq[:, q - 1]
    tw = np.sum(Dn * X, axis=1)
    tb = np.sum(Dn, axis=1)
    return {"theta_w": np.where(dead, 0.0, tw), "theta_b": np.where(dead, 1.0, tb)}


def _matmul_task(batch, n_int, sw2, x0sq):
    tw, tb = ntk_parts(sp_relu_stack(batch.seeds, n_int, sw2), probe_inputs(int(n_int[0]), x0sq))
    return {"theta_w": tw[:, 0, 0], "theta_b": tb[:, 0, 0]}


def _conditional_task(batch, n_int, sw2, x0sq):
    tw, tb = conditional_parts(batch.seeds, n_int, sw2, probe_inputs(int(n_int[0]), x0sq))
    return {"theta_w": tw[:, 0, 0], "theta_b": tb[:, 0, 0]}


_TASKS = {"projection": _projection_task, "law": _law_task, "matmul": _matmul_task, "conditional": _conditional_task}


def _per_net(n_int, method) -> float:
    """Numbers of work (and of memory) per network of a batch."""
    return {
        "projection": 2 * float(n_int[1:].sum()) + 1,
        "law": 4.0 * n_int.size,
        "matmul": float(np.sum(n_int[1:].astype(float) * n_int[:-1])) + 4 * float(n_int.sum()),
        "conditional": 12 * float(n_int.sum()) + 16 * n_int.size,  # two inputs: normals, Q_l, z_l, h_l, deltas
    }[method]


def default_batch(n_int, method) -> int:
    """Networks per batch: about 1e6 numbers of work per batch, at most 65536 networks."""
    return int(max(1, min(65536, 1e6 / _per_net(n_int, method))))


def check_sample_memory(n_int, n_nets, size, method, per_net_out):
    """Refuse a run whose results (``per_net_out`` float64 numbers per network) or whose batches of ``size``
    networks (a few times :func:`_per_net` numbers each, and the projection kernel's ``L x max(n)`` buffer) do not
    fit in memory (:func:`meanfield._checks.check_memory`)."""
    work = 4.0 * size * _per_net(n_int, method)
    if method == "projection":
        work += float(n_int.size) * float(n_int.max())
    check_memory(
        8.0 * (float(n_nets) * per_net_out + work),
        f"{n_nets} networks of depth {n_int.size} and widths up to {int(n_int.max())} ({method} sampler)",
        "use fewer networks (n_nets), a smaller depth or width, or a smaller batch_size",
    )


def sample_ntk_diagonal(net, d, n_nets, x0_norm2=1.0, method="projection", seed=None, executor=None,
                        progress=False, batch_size=None) -> NTKSample:  # fmt: skip
    """Sample the diagonal NTK entry ``Theta(x, x)`` of independent random SP ReLU networks (``sigma_b = 0``).

    Parameters
    ----------
    net : Network
        Finite-width ReLU network in standard parameterization with ``sigma_b2 = 0``
        (:func:`meanfield.dispersion.moments.check_network`);
        its hidden widths are ``n_1..n_{L-1}``, its depth ``L``; scalar output.
    d : int
        Input dimension ``n_0``.
    n_nets : int
        Number of independent networks.
    x0_norm2 : float
        ``||x^0||^2 > 0``.
    method : {"projection", "matmul", "law", "conditional"}
        ``"projection"`` (default, fast, exact in law): literal forward/backward pass in which every weight
        matrix is represented by its action on the current activation direction plus an independent Gaussian
        orthogonal to it (see Notes); O(n) work and ``2 n`` normals per layer. ``"conditional"``: the same
        construction by the package's general conditional sampler
        (:func:`meanfield.finite.conditional.conditional_pass`, any number of inputs; numpy instead of one numba
        kernel, so slower for one input).
        ``"matmul"``: the brute-force reference, a stack of :class:`meanfield.MLP` networks with every weight
        matrix drawn (the package's one forward/backward; the input is ``sqrt(x0_norm2) e_1``, which loses
        nothing by rotational invariance). ``"law"``: the scalar chi-square law of ``Theta`` (derived here, see
        Notes; it checks the algebra of :func:`meanfield.dispersion.ntk_moments`, not the law).
    seed : None, int or numpy.random.SeedSequence
        Network ``i`` is drawn from ``SeedSequence(seed, spawn_key=(i,))`` (:func:`meanfield.finite.run`).
    executor : concurrent.futures.Executor, optional
        Runs the batches (e.g. a ``ThreadPoolExecutor``: the numba kernels release the GIL).
    progress : bool
        Show a tqdm progress bar.
    batch_size : int, optional
        Networks per batch (default: about 1e6 numbers of work).

    Returns
    -------
    NTKSample

    Notes
    -----
    Layer 1 (all methods): for a fixed input only ``W^1 x ~ N(0, sigma_w2 ||x||^2 / n_0 I)`` enters ``Theta``
    (the layer-1 weight gradient is ``delta^1 x^T``), so ``W^1`` is never drawn; valid for Gaussian i.i.d. weights
    and ``sigma_b = 0`` at initialization.

    Projection method: for ``l >= 1`` write ``W^{l+1} = (W^{l+1} u) u^T + W^{l+1} P_perp`` with
    ``u = x^l / ||x^l||``. The forward pass only sees ``W^{l+1} u ~ N(0, sigma_w2/n_l I)`` (drawn forward); the
    backward pass ``W^{l+1,T} delta^{l+1} = u (W^{l+1} u . delta^{l+1}) + P_perp g`` with
    ``g ~ N(0, sigma_w2 ||delta^{l+1}||^2 / n_l I)`` independent of everything else, because ``W^{l+1} P_perp``
    is independent of ``W^{l+1} u`` and is not used by any other part of the forward or backward pass. This is
    an exact identity in distribution of the whole ``(x^l, delta^l)`` process; it does not use the scalar law
    (no Euler identity, no chi-square reduction), so it is an independent check of the exact moments. A numba
    kernel (which releases the GIL) draws each network's normals from its own stream
    (:mod:`meanfield.finite.streams`) and does the pass.

    Law method (derived here): with ``K_q ~ Bin(n_q, 1/2)`` the number of active units of layer ``q``,
    ``||x^q||^2 = sigma_w2/n_{q-1} ||x^{q-1}||^2 A_q`` with ``A_q ~ chi^2_{K_q}``. Backwards, the component of
    ``delta^q`` along ``x^q`` is ``f/||x^q||`` (Euler's identity for the positively homogeneous ReLU network) and
    the part orthogonal to it on the active units is independent, so ``||delta^q||^2 = f^2/||x^q||^2 +
    sigma_w2/n_q ||delta^{q+1}||^2 B_q`` with ``B_q ~ chi^2_{K_q - 1}`` and ``f^2 = sigma_w2/n_{L-1}
    ||x^{L-1}||^2 g^2``, ``g ~ N(0, 1)``. A layer without active units gives ``Theta = 1`` (the readout bias).

    Examples
    --------
    >>> from meanfield import Network
    >>> net = Network(3, "relu", 2.0, parameterization="standard", width=20)
    >>> s = sample_ntk_diagonal(net, 20, 2000, seed=1)
    >>> s.theta.shape, bool(abs(s.theta.mean() / 6 - 1) < 0.05)
    ((2000,), True)
    """
    n_int, sw2 = network_widths(net, d)
    x0sq = check_real(x0_norm2, "x0_norm2", low=0, low_open=True)
    n_nets = check_int(n_nets, "n_nets")
    check_choice(method, METHODS, "method")
    size = default_batch(n_int, method) if batch_size is None else check_int(batch_size, "batch_size")
    check_sample_memory(n_int, n_nets, min(size, n_nets), method, 3)  # theta_w, theta_b and their sum
    res = run(_TASKS[method], n_nets, seed, (n_int, sw2, x0sq), size, executor, progress, desc=method)
    return NTKSample(res["theta_w"], res["theta_b"], method)


# --------------------------------------------------------------------------------------------------------------
# two inputs
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NTKPairSample:
    """NTK entries of independent random networks on two unit inputs ``x, x~`` with ``<x, x~> = rho0``.

    Attributes
    ----------
    diag, diag2, off : ndarray
        ``Theta(x, x)``, ``Theta(x~, x~)``, ``Theta(x, x~)`` per network (weights plus biases).
    """

    diag: np.ndarray
    diag2: np.ndarray
    off: np.ndarray


def _pair_task(batch, n_int, sw2, X, method="matmul"):
    if method == "conditional":
        tw, tb = conditional_parts(batch.seeds, n_int, sw2, X)
    else:
        tw, tb = ntk_parts(sp_relu_stack(batch.seeds, n_int, sw2), X)
    t = tw + tb
    return {"diag": t[:, 0, 0], "diag2": t[:, 1, 1], "off": t[:, 0, 1]}


def sample_ntk_pair(net, d, rho0, n_nets, seed=None, executor=None, progress=False,
                    batch_size=None, method="conditional") -> NTKPairSample:  # fmt: skip
    """Sample diagonal and off-diagonal NTK entries of full random SP ReLU networks (``sigma_b = 0``).

    Parameters
    ----------
    net : Network
        As in :func:`sample_ntk_diagonal`.
    d : int
        Input dimension ``n_0 >= 2`` (``d = 1`` only for ``rho0 = +-1``).
    rho0 : float
        ``<x, x~>`` of the two unit inputs, in ``[-1, 1]``.
    n_nets : int
        Number of networks.
    seed, executor, progress, batch_size :
        As in :func:`sample_ntk_diagonal`.
    method : {"conditional", "matmul"}
        ``"conditional"`` (default): the exact conditional sampler
        (:func:`meanfield.finite.conditional.conditional_pass`, about ``4 n_l`` normals per layer, the two-input
        generalisation of the projection method of :func:`sample_ntk_diagonal`). ``"matmul"``: a stack of
        :class:`meanfield.MLP` networks with every weight drawn. The two agree in distribution.

    Returns
    -------
    NTKPairSample

    Notes
    -----
    The networks run on two unit inputs at correlation ``rho0`` (by rotational invariance only the correlation
    matters).
    ``Theta(x, x~) = sum_l <delta^l, delta~^l> (<x^{l-1}, x~^{l-1}> + 1)`` (Seleznova & Kutyniok 2022, eq. (4);
    written out in the proof of their Thm. A.9).

    Examples
    --------
    >>> from meanfield import Network
    >>> net = Network(3, "relu", 1.5, parameterization="standard", width=20)
    >>> p = sample_ntk_pair(net, 20, 0.5, 500, seed=0)
    >>> bool(np.all(p.off ** 2 <= p.diag * p.diag2 + 1e-9))
    True
    """
    n_int, sw2 = network_widths(net, d)
    rho = check_real(rho0, "rho0", -1.0, 1.0)
    n_nets = check_int(n_nets, "n_nets")
    check_choice(method, PAIR_METHODS, "method")
    X = probe_inputs(int(n_int[0]), 1.0, rho)
    size = max(1, default_batch(n_int, method) // 2) if batch_size is None else check_int(batch_size, "batch_size")
    check_sample_memory(n_int, n_nets, 2 * min(size, n_nets), method, 3)  # two inputs; diag, diag2, off
    res = run(_pair_task, n_nets, seed, (n_int, sw2, X, method), size, executor, progress, desc="pairs")
    return NTKPairSample(res["diag"], res["diag2"], res["off"])
