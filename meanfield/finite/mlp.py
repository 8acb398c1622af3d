"""Finite random networks: the package's one forward and backward pass, on a stack of networks.

A concrete fully connected network drawn from a :class:`~meanfield.Network` spec, in the standard (SP) or NTK
(NTP) parameterization, with or without biases and with ``o >= 1`` outputs. Everything is exact numpy linear
algebra (no autodiff framework). The private functions :func:`_forward` and :func:`_backward` work on a *stack*
of networks (a leading batch axis, one BLAS call per layer for the whole stack); :class:`MLP`, the sampler
(:func:`meanfield.simulate`), the alignment metrics and the training code all go through them.

Parameterizations (signal_propagation.md, sec. 1) are one table of multipliers: every layer computes
``z_l = m_w,l * W_l h_{l-1} + m_b,l * b_l`` from stored (trainable) parameters ``W_l, b_l``:

==========  ==========================  ==========  =============================  =====================
param.      ``m_w,l``                   ``m_b,l``   stored ``W_l`` ~               stored ``b_l`` ~
==========  ==========================  ==========  =============================  =====================
NTP         ``sigma_w / sqrt(N_{l-1})``  ``sigma_b``  ``N(0, 1)``                   ``N(0, 1)``
SP          1                           1           ``N(0, sigma_w^2 / N_{l-1})``  ``N(0, sigma_b^2)``
==========  ==========================  ==========  =============================  =====================

Both draw the same unit normals from the same seed, so an SP and an NTP network with the same seed compute the
same function; only the parameter gradients (and so the tangent kernels) differ, by the factors ``m_w, m_b``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .._checks import check_operator_size
from ..network import Network

__all__ = ["MLP", "Forward"]

_LOSSES = ("mse", "xent")
_PARTS = ("both", "weight", "bias")
_KINDS = ("operator", "traced")


# ----------------------------------------------------------------------------------------------------------------
# the one forward / backward implementation (stacks of networks, leading axis S)
# ----------------------------------------------------------------------------------------------------------------
def _multipliers(net: Network, fan_ins) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer multipliers ``(m_w, m_b)`` of the forward pass (module docstring table)."""
    fan = np.asarray(fan_ins, dtype=np.float64)
    if net.parameterization == "ntk":
        return np.sqrt(net.sigma_w2 / fan), np.full(fan.size, np.sqrt(net.sigma_b2))
    return np.ones(fan.size), np.ones(fan.size)


def _init_std(net: Network, fan_ins) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviations of the stored parameters ``(W_l, b_l)`` at initialization."""
    fan = np.asarray(fan_ins, dtype=np.float64)
    if net.parameterization == "ntk":
        return np.ones(fan.size), np.ones(fan.size)
    return np.sqrt(net.sigma_w2 / fan), np.full(fan.size, np.sqrt(net.sigma_b2))


def _seed_sequences(seed, n_nets, start=0):
    """Per-network seed sequences: network ``i`` of ``seed`` is ``SeedSequence(seed, spawn_key=(i,))``.

    ``n_nets=None`` gives the single sequence ``seed`` itself (used by ``MLP.sample`` without a stack).
    """
    if isinstance(seed, np.random.SeedSequence):
        entropy, key = seed.entropy, tuple(seed.spawn_key)
    else:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"seed must be None, an integer >= 0 or a numpy SeedSequence, got {seed!r}")
        entropy, key = np.random.SeedSequence(seed).entropy, ()
    if n_nets is None:
        return [np.random.SeedSequence(entropy, spawn_key=key)]
    return [np.random.SeedSequence(entropy, spawn_key=key + (i,)) for i in range(start, start + n_nets)]


def _draw(net: Network, d: int, outputs: int, bias: bool, seqs) -> tuple[list, list | None]:
    """Draw a stack of networks, one independent SFC64 stream per network.

    SFC64 is the fastest numpy bit generator for normals here (10.4 vs 13.3 ns per normal for PCG64).

    Within a network the draw order is ``W_1, b_1, W_2, b_2, ...`` (unit normals, then scaled), so a network
    depends only on its own seed sequence, never on which stack it is drawn in.
    """
    fan = net.fan_ins(d)
    outs = net.width + (outputs,)
    S = len(seqs)
    Ws = [np.empty((S, o, f)) for o, f in zip(outs, fan, strict=True)]
    bs = [np.empty((S, o)) for o in outs] if bias else None
    for s, seq in enumerate(seqs):
        rng = np.random.Generator(np.random.SFC64(seq))
        for l in range(net.depth):
            rng.standard_normal(out=Ws[l][s])
            if bias:
                rng.standard_normal(out=bs[l][s])
    std_w, std_b = _init_std(net, fan)
    for l in range(net.depth):
        if std_w[l] != 1.0:
            Ws[l] *= std_w[l]
        if bias and std_b[l] != 1.0:
            bs[l] *= std_b[l]
    return Ws, bs


def _forward(X, Ws, bs, mw, mb, act):
    """Pre-activations ``z_1..z_L`` (each ``(S, n, N_l)``) and layer inputs ``h_0 = X, h_1..h_{L-1}``."""
    h = X
    zs, hs = [], [X]
    L = len(Ws)
    for l in range(L):
        z = np.matmul(h, np.swapaxes(Ws[l], -1, -2))
        if mw[l] != 1.0:
            z *= mw[l]
        if bs is not None and mb[l] != 0.0:
            z += mb[l] * bs[l][:, None, :]
        zs.append(z)
        if l < L - 1:
            h = act.fn(z)
            hs.append(h)
    return zs, hs


def _backward(zs, Ws, mw, act, seed):
    """Backward vectors for ``k`` output directions at once (signal_propagation.md, sec. 4.1).

    ``seed`` has shape ``(S or 1, k, n, o)`` and is ``dF/dz_L`` for ``k`` scalar functions ``F`` of the outputs
    (``e_a`` for the per-output deltas, the loss residual for parameter gradients). Returns the list
    ``delta_1..delta_L`` with ``delta_l = phi'(z_l) * (m_w,l+1 * delta_{l+1} @ W_{l+1})`` of shape
    ``(S, k, n, N_l)`` (``delta_L`` is ``seed`` itself).
    """
    L = len(Ws)
    deltas = [None] * L
    d = seed
    deltas[L - 1] = d
    for l in range(L - 2, -1, -1):
        S0, k, n, _ = d.shape
        g = np.matmul(d.reshape(S0, k * n, -1), Ws[l + 1])
        if mw[l + 1] != 1.0:
            g *= mw[l + 1]
        S = g.shape[0]
        d = g.reshape(S, k, n, -1)
        d *= act.derivative(zs[l])[:, None]
        deltas[l] = d
    return deltas


def _gram(A):
    """``A @ A^T`` over the last two axes."""
    return np.matmul(A, np.swapaxes(A, -1, -2))


def _output_major(delta):
    """``(S, k, n, N)`` -> ``(S, n * k, N)`` in sample-major order (row ``i * k + a``)."""
    S, k, n, N = delta.shape
    return np.swapaxes(delta, 1, 2).reshape(S, n * k, N)


# ----------------------------------------------------------------------------------------------------------------
# the public finite network
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Forward:
    """Result of :meth:`MLP.forward`.

    Attributes
    ----------
    z : tuple of ndarray
        Pre-activations ``z_1..z_L`` (index ``l - 1``), each ``([S,] n, N_l)``; ``z[-1]`` is the output ``f(X)``.
    h : tuple of ndarray
        Layer inputs ``h_0 = X, h_1 = phi(z_1), ..., h_{L-1}`` (index ``l - 1`` is the input of layer ``l``).
    """

    z: tuple
    h: tuple

    @property
    def output(self) -> np.ndarray:
        """The network output ``f(X) = z_L``, shape ``([S,] n, o)``."""
        return self.z[-1]


class MLP:
    """A finite fully connected network (or a stack of them) drawn from a :class:`~meanfield.Network`.

    Parameters
    ----------
    net : Network
        The spec: depth ``L``, activation, ``sigma_w2``, ``sigma_b2``, parameterization and the hidden widths
        (``net.width`` is required).
    weights : sequence of ndarray
        The stored parameters ``W_1..W_L``, each ``(N_l, N_{l-1})``, or ``(S, N_l, N_{l-1})`` for a stack of
        ``S`` networks. ``N_0 = d`` is the input dimension and ``N_L = o`` the number of outputs. In NTP these are
        the unit-variance parameters (the layer multiplies by ``sigma_w / sqrt(N_{l-1})``).
    biases : sequence of ndarray or None
        ``b_1..b_L``, each ``([S,] N_l)``; None for a network without bias parameters.

    Notes
    -----
    Layer ``l`` computes ``z_l = m_w,l W_l h_{l-1} + m_b,l b_l`` with ``(m_w, m_b) = (sigma_w / sqrt(N_{l-1}),
    sigma_b)`` in NTP and ``(1, 1)`` in SP (signal_propagation.md, sec. 1); ``h_0 = x`` and ``h_l = phi(z_l)``.
    Every method accepts ``X`` of shape ``(n, d)``; for a stack, every result gains a leading axis ``S``.
    The per-layer tangent kernel is computed without the parameter Jacobian from the exact factorization
    ``K_l[(i,a),(j,b)] = (m_w^2 h_{l-1}(x_i).h_{l-1}(x_j) + m_b^2) delta^a_l(x_i).delta^b_l(x_j)``
    (signal_propagation.md, sec. 4.3 and 6), which is ``F_l * B_l`` in NTP.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import Network
    >>> net = Network(3, "tanh", sigma_w2=1.5, sigma_b2=0.1, width=16)
    >>> mlp = MLP.sample(net, d=4, seed=0)
    >>> X = np.random.default_rng(1).standard_normal((5, 4))
    >>> mlp.forward(X).output.shape
    (5, 1)
    >>> K = mlp.ntk(X)
    >>> bool(np.allclose(K, sum(mlp.layer_ntk(X, l) for l in range(1, 4))))
    True
    """

    def __init__(self, net: Network, weights, biases=None):
        if not isinstance(net, Network):
            raise ValueError(f"net must be a meanfield.Network, got {type(net).__name__}")
        if net.width is None:
            raise ValueError("net.width is None; a finite MLP needs Network(width=...) (int or hidden widths)")
        weights = [np.asarray(w, dtype=np.float64) for w in weights]
        if len(weights) != net.depth:
            raise ValueError(f"weights must hold depth = {net.depth} matrices, got {len(weights)}")
        nd = weights[0].ndim
        if nd not in (2, 3) or any(w.ndim != nd for w in weights):
            raise ValueError("weights must all be 2-D (one network) or all 3-D (a stack of networks)")
        stack = weights[0].shape[0] if nd == 3 else None
        d = weights[0].shape[-1]
        fan = net.fan_ins(d)
        outs = net.width + (weights[-1].shape[-2],)
        for l, w in enumerate(weights):
            want = (outs[l], fan[l]) if stack is None else (stack, outs[l], fan[l])
            if w.shape != want:
                raise ValueError(f"weights[{l}] (layer {l + 1}) must have shape {want}, got {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"weights[{l}] (layer {l + 1}) contains non-finite values")
        if biases is not None:
            biases = [np.asarray(b, dtype=np.float64) for b in biases]
            if len(biases) != net.depth:
                raise ValueError(f"biases must hold depth = {net.depth} vectors, got {len(biases)}")
            for l, b in enumerate(biases):
                want = (outs[l],) if stack is None else (stack, outs[l])
                if b.shape != want:
                    raise ValueError(f"biases[{l}] (layer {l + 1}) must have shape {want}, got {b.shape}")
                if not np.all(np.isfinite(b)):
                    raise ValueError(f"biases[{l}] (layer {l + 1}) contains non-finite values")
        self.net = net
        self.weights = weights
        self.biases = biases
        self.stack = stack
        self.d = d
        self.outputs = outs[-1]
        self.fan_ins = fan
        self.multipliers = _multipliers(net, fan)

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def sample(cls, net: Network, d: int, seed=None, outputs: int = 1, bias: bool = True, n_nets: int | None = None):
        """Draw a network (or a stack of ``n_nets``) at initialization.

        Parameters
        ----------
        net : Network
            The spec (``net.width`` required).
        d : int
            Input dimension ``N_0``.
        seed : None, int or numpy.random.SeedSequence
            Network ``i`` of a stack uses ``SeedSequence(seed, spawn_key=(i,))``, exactly as network ``i`` of
            :func:`meanfield.simulate` with the same seed; without a stack the sequence ``seed`` itself is used.
        outputs : int
            Number of outputs ``o >= 1``.
        bias : bool
            Whether every layer has a bias parameter (initialized with variance ``sigma_b2``).
        n_nets : int or None
            Draw a stack of this many networks (leading axis on every result).

        Returns
        -------
        MLP
        """
        if net.width is None:
            raise ValueError("net.width is None; MLP.sample needs Network(width=...) (int or hidden widths)")
        d = _count(d, "d")
        outputs = _count(outputs, "outputs")
        if n_nets is not None:
            n_nets = _count(n_nets, "n_nets")
        seqs = _seed_sequences(seed, n_nets)
        Ws, bs = _draw(net, d, outputs, bool(bias), seqs)
        if n_nets is None:
            Ws = [w[0] for w in Ws]
            bs = None if bs is None else [b[0] for b in bs]
        return cls(net, Ws, bs)

    def copy(self) -> MLP:
        """A deep copy (independent parameter arrays)."""
        return MLP(
            self.net, [w.copy() for w in self.weights], None if self.biases is None else [b.copy() for b in self.biases]
        )

    @property
    def params(self) -> list:
        """The trainable arrays ``[W_1, b_1, ..., W_L, b_L]`` (biases omitted when absent), not copies."""
        if self.biases is None:
            return list(self.weights)
        return [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]

    # -- internal helpers ---------------------------------------------------------------------------------------
    def _stacked(self):
        if self.stack is None:
            return [w[None] for w in self.weights], None if self.biases is None else [b[None] for b in self.biases]
        return self.weights, self.biases

    def _out(self, a):
        return a if self.stack is not None else a[0]

    def _check_X(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.d:
            raise ValueError(f"X must have shape (n, d={self.d}), got {X.shape}")
        if X.shape[0] < 1 or not np.all(np.isfinite(X)):
            raise ValueError("X must be a non-empty array of finite numbers")
        return X

    def _check_layer(self, l) -> int:
        if isinstance(l, bool) or not isinstance(l, numbers.Integral) or not 1 <= l <= self.net.depth:
            raise ValueError(f"layer l must be an integer in [1, {self.net.depth}], got {l!r}")
        return int(l)

    def _fwd(self, X):
        Ws, bs = self._stacked()
        mw, mb = self.multipliers
        return _forward(X, Ws, bs, mw, mb, self.net.activation)

    def _deltas(self, X, zs=None):
        if zs is None:
            zs, _ = self._fwd(X)
        o, n = self.outputs, X.shape[0]
        seed = np.broadcast_to(np.eye(o)[None, :, None, :], (1, o, n, o))
        Ws, _ = self._stacked()
        return _backward(zs, Ws, self.multipliers[0], self.net.activation, seed)

    # -- forward / backward -------------------------------------------------------------------------------------
    def forward(self, X) -> Forward:
        """Pre-activations and layer inputs of every layer.

        Parameters
        ----------
        X : array_like, shape (n, d)

        Returns
        -------
        Forward
            ``z[l-1]`` = ``z_l`` of shape ``([S,] n, N_l)`` and ``h[l-1]`` = ``h_{l-1}`` (``h[0]`` is ``X``).
        """
        X = self._check_X(X)
        zs, hs = self._fwd(X)
        h = (hs[0],) + tuple(self._out(v) for v in hs[1:])
        return Forward(tuple(self._out(z) for z in zs), h)

    def __call__(self, X) -> np.ndarray:
        """The outputs ``f(X)``, shape ``([S,] n, o)``."""
        return self.forward(X).output

    def deltas(self, X) -> list:
        """Backward vectors ``delta^a_l(x_i) = df_a(x_i)/dz_l`` for every layer and output.

        Returns
        -------
        list of ndarray
            Index ``l - 1`` holds ``delta_l`` of shape ``([S,] o, n, N_l)``; ``delta_L[a, i] = e_a``.

        Notes
        -----
        ``delta_l = phi'(z_l) * (m_w,l+1 W_{l+1}^T delta_{l+1})`` (signal_propagation.md, sec. 4.1 and 6),
        one backward pass per output, all outputs in one matmul per layer.
        """
        X = self._check_X(X)
        return [
            self._out(np.broadcast_to(d, (d.shape[0] if self.stack is None else self.stack,) + d.shape[1:]))
            for d in self._deltas(X)
        ]

    # -- tangent kernels ----------------------------------------------------------------------------------------
    def layer_ntk(self, X, l: int, part: str = "both", kind: str = "operator", force: bool = False) -> np.ndarray:
        """Tangent kernel of the parameters of layer ``l``, ``K_l = Psi_l^T Psi_l``.

        Parameters
        ----------
        X : array_like, shape (n, d)
        l : int
            Layer, ``1..L``.
        part : {"both", "weight", "bias"}
            Contribution of ``W_l``, of ``b_l``, or of both.
        kind : {"operator", "traced"}
            ``"operator"``: the ``(n o, n o)`` kernel in sample-major order (row ``i o + a``), seed 000 eq. (7).
            ``"traced"``: the ``(n, n)`` class-traced kernel ``(1/o) sum_a K[(i,a),(j,a)]`` (seed 002 eq. (8)).
        force : bool
            Form an operator kernel above :data:`meanfield._validation.MAX_OPERATOR_ENTRIES` entries anyway
            (feature_alignment.md sec. 5.1; otherwise ValueError).

        Returns
        -------
        ndarray, shape ([S,] n o, n o) or ([S,] n, n)

        Notes
        -----
        ``K_l[(i,a),(j,b)] = (omega_W h_{l-1}(x_i).h_{l-1}(x_j) + omega_b) delta^a_l(x_i).delta^b_l(x_j)`` with
        ``(omega_W, omega_b) = (m_w^2, m_b^2)``: ``(sigma_w^2/N_{l-1}, sigma_b^2)`` in NTP (so ``K_l = F_l * B_l``)
        and ``(1, 1)`` in SP (signal_propagation.md, sec. 1, 4.3, 6). ``omega_b = 0`` without biases. Exact at
        any width; the Jacobian ``Psi_l`` is never formed.
        """
        X = self._check_X(X)
        l = self._check_layer(l)
        if part not in _PARTS:
            raise ValueError(f"part must be one of {_PARTS}, got {part!r}")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        self._guard(X, kind, force)
        zs, hs = self._fwd(X)
        deltas = self._deltas(X, zs)
        return self._out(self._layer_kernel(hs, deltas, l, part, kind))

    def _guard(self, X, kind, force):
        """The memory guard for operator-valued (n o x n o) kernels."""
        if kind == "operator" and self.outputs > 1:
            check_operator_size(X.shape[0], self.outputs, force)

    def _layer_kernel(self, hs, deltas, l, part, kind):
        mw, mb = self.multipliers
        omega_w = mw[l - 1] ** 2 if part in ("both", "weight") else 0.0
        omega_b = mb[l - 1] ** 2 if (part in ("both", "bias") and self.biases is not None) else 0.0
        o = self.outputs
        G = omega_w * _gram(hs[l - 1]) + omega_b
        if kind == "traced":
            D = deltas[l - 1]
            B = np.matmul(D, np.swapaxes(D, -1, -2)).sum(axis=1) / o
            return G * B
        D = _output_major(deltas[l - 1])
        B = _gram(D)
        if o > 1:
            G = np.repeat(np.repeat(G, o, axis=-2), o, axis=-1)
        return G * B

    def ntk(self, X, kind: str = "operator", force: bool = False) -> np.ndarray:
        """The empirical NTK ``sum_l K_l`` (see :meth:`layer_ntk`), shape ``([S,] n o, n o)`` or traced."""
        X = self._check_X(X)
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        self._guard(X, kind, force)
        zs, hs = self._fwd(X)
        deltas = self._deltas(X, zs)
        out = sum(self._layer_kernel(hs, deltas, l, "both", kind) for l in range(1, self.net.depth + 1))
        return self._out(out)

    # -- feature-learning diagnostics (feature_alignment.md, sec. 2) --------------------------------------------
    def input_jacobian(self, X, l: int) -> np.ndarray:
        """``J^a_l(x_i) = df_a(x_i)/dh_{l-1} = m_w,l W_l^T delta^a_l(x_i)``, shape ``([S,] o, n, N_{l-1})``.

        ``l = 1`` gives the Jacobian with respect to the input ``x`` (feature_alignment.md, sec. 2).
        """
        X = self._check_X(X)
        l = self._check_layer(l)
        Ws, _ = self._stacked()
        D = self._deltas(X)[l - 1]
        S0, o, n, N = D.shape
        J = np.matmul(D.reshape(S0, o * n, N), Ws[l - 1]) * self.multipliers[0][l - 1]
        return self._out(J.reshape(J.shape[0], o, n, -1))

    def agop(self, X, l: int) -> np.ndarray:
        """Average gradient outer product ``G_l = (1/n) sum_{i,a} J^a_l(x_i) J^a_l(x_i)^T``.

        Returns an array of shape ``([S,] N_{l-1}, N_{l-1})``.

        Notes
        -----
        Seed 001, line 45; summed over outputs (line 62). Equals ``W_l^T K^ptk_l W_l`` (seed 001 Prop. 2) with the
        effective weights ``m_w W_l`` and ``K^ptk_l = (1/n) sum_a Delta^aT Delta^a``.
        """
        X = self._check_X(X)
        J = self.input_jacobian(X, l)
        J = J if self.stack is not None else J[None]
        S, o, n, N = J.shape
        Jm = J.reshape(S, o * n, N)
        return self._out(np.matmul(np.swapaxes(Jm, -1, -2), Jm) / n)

    def nfm(self, l: int) -> np.ndarray:
        """Neural feature matrix ``W_l^T W_l`` of the stored (trainable) weights, ``([S,] N_{l-1}, N_{l-1})``.

        Seed 001, line 43. In NTP the effective weight is ``m_w W_l``; the constant factor does not change any
        cosine (feature_alignment.md, sec. 1.1).
        """
        l = self._check_layer(l)
        W = self.weights[l - 1]
        return np.matmul(np.swapaxes(W, -1, -2), W)

    def ptk_gram(self, X, l: int, kind: str = "operator", force: bool = False) -> np.ndarray:
        """Backward (PTK) Gram matrix ``P_l[(i,a),(j,b)] = delta^a_l(x_i).delta^b_l(x_j)``.

        ``kind="operator"`` gives ``([S,] n o, n o)`` in sample-major order; ``"traced"`` gives
        ``(1/o) sum_a Delta^a_l Delta^a_l^T`` of shape ``([S,] n, n)`` (the same trace as :meth:`layer_ntk`).
        For ``o = 1`` this is the sampler's backward kernel ``B_l`` (seed 001's ``K^(l)``; feature_alignment.md
        sec. 0 and 2).
        """
        X = self._check_X(X)
        l = self._check_layer(l)
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        self._guard(X, kind, force)
        D = self._deltas(X)[l - 1]
        if kind == "traced":
            out = np.matmul(D, np.swapaxes(D, -1, -2)).sum(axis=1) / self.outputs
        else:
            out = _gram(_output_major(D))
        S = self.stack or 1
        return self._out(np.broadcast_to(out, (S,) + out.shape[1:]).copy())

    def ptk_cov(self, X, l: int, normalize: bool = True) -> np.ndarray:
        """PTK feature covariance ``K^ptk_l = (1/n) sum_a Delta^a_l^T Delta^a_l``, shape ``([S,] N_l, N_l)``.

        ``normalize=False`` drops the ``1/n`` (seed 001 line 93 vs line 107). With the ``1/n``,
        ``agop(X, l) = (m_w W_l)^T K^ptk_l (m_w W_l)`` exactly (seed 001 Prop. 2).
        """
        X = self._check_X(X)
        l = self._check_layer(l)
        D = self._deltas(X)[l - 1]
        S0, o, n, N = D.shape
        Dm = D.reshape(S0, o * n, N)
        out = np.matmul(np.swapaxes(Dm, -1, -2), Dm) / (n if normalize else 1.0)
        return self._out(np.broadcast_to(out, (self.stack or 1, N, N)).copy())

    def feature_kernel(self, X, l: int) -> np.ndarray:
        """Post-activation feature kernel ``H_l H_l^T`` of hidden layer ``l = 0..L-1`` (``l = 0``: ``X X^T``).

        Seed 002's layer kernel ``K^(l)``; equals ``N_l / sigma_w^2 (F_{l+1} - sigma_b^2)`` (feature_alignment.md
        sec. 0). Shape ``([S,] n, n)``.
        """
        X = self._check_X(X)
        if isinstance(l, bool) or not isinstance(l, numbers.Integral) or not 0 <= l <= self.net.depth - 1:
            raise ValueError(f"hidden layer l must be an integer in [0, {self.net.depth - 1}], got {l!r}")
        _, hs = self._fwd(X)
        G = _gram(hs[l])
        return self._out(np.broadcast_to(G, (self.stack or 1,) + G.shape[-2:]).copy())

    # -- losses and gradients -----------------------------------------------------------------------------------
    def _targets(self, Y, n, loss, name="Y"):
        """Targets of shape (n, o). Integer labels (n,) become one-hot rows for cross-entropy, and for any loss
        when o > 1 (the one label convention of the package: sampler, training and alignment use it too)."""
        Y = np.asarray(Y)
        o = self.outputs
        if Y.ndim == 1 and np.issubdtype(Y.dtype, np.integer) and (loss == "xent" or o > 1):
            if Y.shape != (n,) or Y.min() < 0 or Y.max() >= o:
                raise ValueError(f"{name}: integer labels must have shape ({n},) with values in [0, {o - 1}]")
            return np.eye(o)[Y]
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim == 1 and o == 1:
            Y = Y[:, None]
        if Y.shape != (n, o):
            raise ValueError(f"{name} must have shape (n={n}, o={o}) or hold {n} integer labels, got {Y.shape}")
        if not np.all(np.isfinite(Y)):
            raise ValueError(f"{name} must be finite")
        return Y

    def loss_grad(self, X, Y, loss: str = "mse", output=None):
        """Loss and its gradient with respect to the outputs.

        Parameters
        ----------
        X : array_like, shape (n, d)
        Y : array_like
            Targets ``(n, o)`` (one-hot for ``"xent"``; integer class labels ``(n,)`` are accepted too).
        loss : {"mse", "xent"}
            ``"mse"``: ``(1/2n) sum_i ||f(x_i) - y_i||^2``. ``"xent"``: softmax cross-entropy
            ``-(1/n) sum_i sum_a y_ia log softmax(f(x_i))_a``.
        output : ndarray, optional
            Precomputed ``f(X)`` (skips the forward pass).

        Returns
        -------
        loss : float or ndarray (S,)
        resid : ndarray, shape ([S,] n, o)
            ``dloss/df``: ``(f - Y)/n`` or ``(softmax(f) - Y)/n``.
        """
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
        X = self._check_X(X)
        n = X.shape[0]
        Y = self._targets(Y, n, loss)
        f = self(X) if output is None else np.asarray(output, dtype=np.float64)
        if loss == "mse":
            r = f - Y
            value = 0.5 * np.sum(r * r, axis=(-2, -1)) / n
            return value, r / n
        m = f.max(axis=-1, keepdims=True)
        logz = m + np.log(np.sum(np.exp(f - m), axis=-1, keepdims=True))
        logp = f - logz
        value = -np.sum(Y * logp, axis=(-2, -1)) / n
        # d/df of -sum_a y_a log softmax(f)_a is softmax(f) sum_a y_a - y (sum_a y_a = 1 for one-hot rows)
        return value, (np.exp(logp) * Y.sum(axis=-1, keepdims=True) - Y) / n

    def grads(self, X, Y, loss: str = "mse"):
        """Loss and its gradient with respect to every trainable parameter.

        Parameters
        ----------
        X, Y, loss
            As in :meth:`loss_grad`.

        Returns
        -------
        loss : float or ndarray (S,)
        grads : list of ndarray
            Same order and shapes as :attr:`params`: ``dloss/dW_l = m_w,l sum_i g_l(x_i) h_{l-1}(x_i)^T`` and
            ``dloss/db_l = m_b,l sum_i g_l(x_i)``, where ``g_l`` is the backward pass seeded with ``dloss/df``.

        Examples
        --------
        >>> import numpy as np
        >>> from meanfield import Network
        >>> mlp = MLP.sample(Network(2, "relu", width=8), d=3, seed=0)
        >>> X = np.eye(3); Y = np.ones((3, 1))
        >>> loss, g = mlp.grads(X, Y)
        >>> [a.shape for a in g] == [p.shape for p in mlp.params]
        True
        """
        X = self._check_X(X)
        zs, hs = self._fwd(X)
        value, resid = self.loss_grad(X, Y, loss, output=self._out(zs[-1]))
        seed = resid[None, None] if self.stack is None else resid[:, None]
        Ws, _ = self._stacked()
        mw, mb = self.multipliers
        deltas = _backward(zs, Ws, mw, self.net.activation, seed)
        out = []
        for l in range(self.net.depth):
            g = deltas[l][:, 0]  # (S, n, N_l)
            gW = np.matmul(np.swapaxes(g, -1, -2), np.broadcast_to(hs[l], g.shape[:1] + hs[l].shape[-2:]))
            out.append(self._out(mw[l] * gW))
            if self.biases is not None:
                out.append(self._out(mb[l] * g.sum(axis=-2)))
        return value, out


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
