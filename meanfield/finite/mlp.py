"""Finite random networks: the package's one forward and backward pass, on a stack of networks.

A concrete fully connected network drawn from a :class:`~meanfield.Network` spec, in the standard (SP) or NTK
(NTP) parameterization, with or without biases and with ``o >= 1`` outputs. Everything is exact numpy linear
algebra (no autodiff framework). The functions of :mod:`meanfield.finite.stack` work on a *stack* of networks (a
leading batch axis, one BLAS call per layer for the whole stack), and :func:`kernel_factors` /
:func:`tangent_kernel` are the one computation of a layer's tangent kernel; :class:`MLP`, the Monte Carlo runner
(:func:`meanfield.simulate`, the dispersion samplers), the alignment metrics and the training code all go through
them.

Parameterizations are one table of multipliers: every layer computes ``z_l = m_w,l * W_l h_{l-1} + m_b,l * b_l``
from stored (trainable) parameters ``W_l, b_l``:

==========  ==========================  ==========  =============================  =====================
param.      ``m_w,l``                   ``m_b,l``   stored ``W_l`` ~               stored ``b_l`` ~
==========  ==========================  ==========  =============================  =====================
NTP         ``sigma_w / sqrt(N_{l-1})``  ``sigma_b``  ``N(0, 1)``                   ``N(0, 1)``
SP          1                           1           ``N(0, sigma_w^2 / N_{l-1})``  ``N(0, sigma_b^2)``
==========  ==========================  ==========  =============================  =====================

NTP is the parameterization of Jacot et al. 2018 (sec. 2, with their ``beta = sigma_b``); SP is the standard
initialization of Lou et al. 2022, eq. (8) and Seleznova & Kutyniok 2022, eqs. (3) and (6). Both draw the same unit
normals from the same seed, so an SP and an NTP network with the same seed compute the same function; only the
parameter gradients (and so the tangent kernels) differ, by the factors ``m_w, m_b``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .._checks import (
    check_bool,
    check_choice,
    check_int,
    check_memory,
    check_network,
    check_operator_size,
    finite_array,
    real_array,
)
from ..network import Network
from .blocks import check_mask_seeds, draw_masks, mask_sequence, skips
from .stack import (  # noqa: F401  (the layer-kernel functions are part of this module's interface)
    backward_factor,
    backward_stack,
    draw_stack,
    forward_stack,
    gram,
    kernel_factors,
    multipliers,
    tangent_kernel,
)
from .streams import seed_sequences

#: bytes of one network's numpy.random.SeedSequence in a stack (MLP.sample's memory estimate)
SEED_BYTES = 400

__all__ = ["MLP", "Forward"]

#: the options of the Network spec the finite networks implement (all of them)
SUPPORTS = ("schedule", "residual", "normalization", "dropout")

_LOSSES = ("mse", "xent")
_PARTS = ("both", "weight", "bias")
LAYOUTS = ("operator", "traced")


def check_mlp(mlp, name: str = "mlp"):
    """``mlp`` if it is an :class:`MLP`, else a ValueError naming ``name``."""
    if not isinstance(mlp, MLP):
        raise ValueError(f"{name} must be a meanfield.MLP, got {type(mlp).__name__}")
    return mlp


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
    mask_seeds : sequence of numpy.random.SeedSequence, optional
        Dropout networks only (``net.dropout``; required there): one sequence per network of the stack (one for a
        single network) from which the masks of every input row are drawn
        (:func:`meanfield.finite.blocks.draw_masks`; :meth:`sample` sets them). The masks are fixed: every pass
        over the same input rows sees the same masks.

    Notes
    -----
    Layer ``l`` computes ``z_l = m_w,l W_l h_{l-1} + m_b,l b_l`` with ``(m_w, m_b) = (sigma_w / sqrt(N_{l-1}),
    sigma_b)`` in NTP and ``(1, 1)`` in SP (module docstring); ``h_0 = x`` and ``h_l = phi(z_l)``. Every option of
    the spec is realised (:mod:`meanfield.network`; :mod:`meanfield.finite.blocks`): per-layer variances, residual
    blocks (``beta`` folded into ``(m_w, m_b)`` of those layers, ``z_l = z_{l-1} + m_w W_l h_{l-1} + m_b b_l``),
    LayerNorm (``h_l = phi(LN(z_l))``) and dropout (``h_l = m_l phi(.) / rho`` with fixed masks).
    Every method accepts ``X`` of shape ``(n, d)``; for a stack, every result gains a leading axis ``S``.
    The per-layer tangent kernel is computed without the parameter Jacobian from the exact factorization
    ``K_l[(i,a),(j,b)] = (m_w^2 h_{l-1}(x_i).h_{l-1}(x_j) + m_b^2) delta^a_l(x_i).delta^b_l(x_j)``
    (:func:`tangent_kernel`; Lou et al. 2022, eq. (9)), which is ``F_l * B_l`` in NTP.

    The building blocks other modules combine (one forward pass, one backward pass, the layer kernel of that pass)
    are public: :meth:`check_inputs`, :meth:`check_layer`, :meth:`check_kernel_size`, :meth:`targets`,
    :meth:`forward_pass`, :meth:`backward_pass`, :meth:`layer_kernel` and :meth:`unstack`.

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

    def __init__(self, net: Network, weights, biases=None, mask_seeds=None):
        check_network(net, supports=SUPPORTS, what="MLP")
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
        self.mask_seeds = check_mask_seeds(net, mask_seeds, stack or 1)
        self._masks = {}
        self._skip = skips(net) if net.residual is not None else None
        self.weights = weights
        self.biases = biases
        self.stack = stack
        self.d = d
        self.outputs = outs[-1]
        self.fan_ins = fan
        self.multipliers = multipliers(net, fan)

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
        check_network(net, supports=SUPPORTS, what="MLP.sample")
        if net.width is None:
            raise ValueError("net.width is None; MLP.sample needs Network(width=...) (int or hidden widths)")
        d = check_int(d, "d")
        outputs = check_int(outputs, "outputs")
        if n_nets is not None:
            n_nets = check_int(n_nets, "n_nets")
        outs = net.width + (outputs,)
        params = sum(float(o) * f for o, f in zip(outs, net.fan_ins(d), strict=True)) + (sum(outs) if bias else 0)
        check_memory(
            (n_nets or 1) * (8.0 * params + SEED_BYTES),
            f"{n_nets or 1} network(s) of {params:.4g} parameters",
            "use a smaller width, or fewer networks at a time (n_nets; meanfield.simulate works in batches)",
        )
        seqs = seed_sequences(seed, n_nets)
        Ws, bs = draw_stack(net, d, outputs, check_bool(bias, "bias"), seqs)
        if n_nets is None:
            Ws = [w[0] for w in Ws]
            bs = None if bs is None else [b[0] for b in bs]
        return cls(net, Ws, bs, [mask_sequence(q) for q in seqs] if net.dropout is not None else None)

    def copy(self) -> MLP:
        """A deep copy (independent parameter arrays)."""
        return MLP(
            self.net,
            [w.copy() for w in self.weights],
            None if self.biases is None else [b.copy() for b in self.biases],
            self.mask_seeds,
        )

    @property
    def params(self) -> list:
        """The trainable arrays ``[W_1, b_1, ..., W_L, b_L]`` (biases omitted when absent), not copies."""
        if self.biases is None:
            return list(self.weights)
        return [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]

    # -- building blocks (used by alignment, nfa and training) --------------------------------------------------
    def _stacked(self):
        if self.stack is None:
            return [w[None] for w in self.weights], None if self.biases is None else [b[None] for b in self.biases]
        return self.weights, self.biases

    def masks(self, n: int):
        """The fixed dropout multipliers ``m_l / rho`` of hidden layers ``1..L-1`` for ``n`` input rows, each
        ``(S or 1, n, N_l)`` (:func:`meanfield.finite.blocks.draw_masks`); None without dropout."""
        if self.net.dropout is None:
            return None
        if n not in self._masks:
            self._masks = {n: draw_masks(self.mask_seeds, n, self.net.width, self.net.dropout)}
        return self._masks[n]

    def _options(self, n: int) -> dict:
        """The architecture keywords of :func:`~meanfield.finite.stack.forward_stack` / ``backward_stack``."""
        return dict(skip=self._skip, norm=self.net.normalization == "layer", masks=self.masks(n))

    def unstack(self, a):
        """``a`` without its leading stack axis for a single network (``a`` itself for a stack)."""
        return a if self.stack is not None else a[0]

    def check_inputs(self, X) -> np.ndarray:
        """``X`` as a finite float64 array of shape ``(n, d)`` with ``n >= 1`` (ValueError naming ``X`` otherwise)."""
        X = finite_array(X, "X")
        if X.ndim != 2 or X.shape[1] != self.d:
            raise ValueError(f"X must have shape (n, d={self.d}), got {X.shape}")
        if X.shape[0] < 1 or not np.all(np.isfinite(X)):
            raise ValueError("X must be a non-empty array of finite numbers")
        return X

    def check_layer(self, l) -> int:
        """``l`` as a layer index in ``1..L``."""
        return check_int(l, "layer l", 1, self.net.depth)

    def check_kernel_size(self, X, layout: str, force: bool = False) -> str:
        """Validate ``layout`` and apply the memory guard of operator-valued ``(n o, n o)`` kernels.

        Returns ``layout``; raises a ValueError above :data:`meanfield._checks.MAX_OPERATOR_ENTRIES` entries
        unless ``force`` (:func:`meanfield._checks.check_operator_size`).
        """
        check_choice(layout, LAYOUTS, "layout")
        if layout == "operator" and self.outputs > 1:
            check_operator_size(X.shape[0], self.outputs, force)
        return layout

    def forward_pass(self, X):
        """The stacked forward pass (:func:`meanfield.finite.stack.forward_stack`): lists ``zs`` and ``hs``.

        ``X`` must already be checked (:meth:`check_inputs`); ``S = 1`` for a single network.
        """
        Ws, bs = self._stacked()
        mw, mb = self.multipliers
        return forward_stack(X, Ws, bs, mw, mb, self.net.activation, **self._options(X.shape[0]))

    def backward_pass(self, X, zs=None):
        """The stacked backward vectors of every output (:func:`meanfield.finite.stack.backward_stack`, seed ``e_a``).

        Returns the list ``delta_1..delta_L``, each ``(S or 1, o, n, N_l)``; ``zs`` from :meth:`forward_pass`
        (computed when omitted).
        """
        if zs is None:
            zs, _ = self.forward_pass(X)
        o, n = self.outputs, X.shape[0]
        seed = np.broadcast_to(np.eye(o)[None, :, None, :], (1, o, n, o))
        Ws, _ = self._stacked()
        return backward_stack(zs, Ws, self.multipliers[0], self.net.activation, seed, **self._options(n))

    def layer_kernel(self, hs, deltas, l: int, part: str = "both", layout: str = "operator"):
        """Tangent kernel of layer ``l`` from one :meth:`forward_pass` / :meth:`backward_pass` (stacked).

        ``part`` and ``layout`` as in :meth:`layer_ntk`; the result keeps the stack axis.
        """
        omega_w, omega_b = self.kernel_weights(part)
        G, B = kernel_factors(hs[l - 1], deltas[l - 1], layout)
        return tangent_kernel(G, B, omega_w[l - 1], omega_b[l - 1])

    def kernel_weights(self, part: str = "both") -> tuple[np.ndarray, np.ndarray]:
        """Per-layer ``(omega_w, omega_b) = (m_w^2, m_b^2)`` of :func:`tangent_kernel` for the parameters of
        ``part`` (``omega_b = 0`` without biases)."""
        mw, mb = self.multipliers
        omega_w = mw**2 if part in ("both", "weight") else np.zeros_like(mw)
        omega_b = mb**2 if (part in ("both", "bias") and self.biases is not None) else np.zeros_like(mb)
        return omega_w, omega_b

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
        X = self.check_inputs(X)
        zs, hs = self.forward_pass(X)
        h = (hs[0],) + tuple(self.unstack(v) for v in hs[1:])
        return Forward(tuple(self.unstack(z) for z in zs), h)

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
        ``delta_l = phi'(z_l) * (m_w,l+1 W_{l+1}^T delta_{l+1})`` (backpropagation), one backward pass per output,
        all outputs in one matmul per layer.
        """
        X = self.check_inputs(X)
        return [
            self.unstack(np.broadcast_to(d, (d.shape[0] if self.stack is None else self.stack,) + d.shape[1:]))
            for d in self.backward_pass(X)
        ]

    # -- tangent kernels ----------------------------------------------------------------------------------------
    def layer_ntk(self, X, l: int, part: str = "both", layout: str = "operator", force: bool = False) -> np.ndarray:
        """Tangent kernel of the parameters of layer ``l``, ``K_l = Psi_l^T Psi_l``.

        Parameters
        ----------
        X : array_like, shape (n, d)
        l : int
            Layer, ``1..L``.
        part : {"both", "weight", "bias"}
            Contribution of ``W_l``, of ``b_l``, or of both.
        layout : {"operator", "traced"}
            ``"operator"``: the ``(n o, n o)`` kernel in sample-major order (row ``i o + a``), the layer kernel
            ``Psi_l^T Psi_l`` of Lou et al. 2022, sec. 2.2 (eq. (7)). ``"traced"``: the ``(n, n)`` class-traced
            kernel ``(1/o) sum_a K[(i,a),(j,a)]`` (Canatar & Pehlevan 2022, eq. (8)).
        force : bool
            Form an operator kernel above :data:`meanfield._checks.MAX_OPERATOR_ENTRIES` entries anyway
            (otherwise ValueError).

        Returns
        -------
        ndarray, shape ([S,] n o, n o) or ([S,] n, n)

        Notes
        -----
        ``K_l[(i,a),(j,b)] = (omega_W h_{l-1}(x_i).h_{l-1}(x_j) + omega_b) delta^a_l(x_i).delta^b_l(x_j)`` with
        ``(omega_W, omega_b) = (m_w^2, m_b^2)``: ``(sigma_w^2/N_{l-1}, sigma_b^2)`` in NTP (so ``K_l = F_l * B_l``)
        and ``(1, 1)`` in SP (:func:`tangent_kernel`; Lou et al. 2022, eq. (9)). ``omega_b = 0`` without biases.
        On a residual layer both get ``beta^2`` and ``delta_l = df/dz_l`` is the gradient of the residual stream;
        with dropout the masks are those of the network (fixed). Exact at any width; the Jacobian ``Psi_l`` is never
        formed.
        """
        X = self.check_inputs(X)
        l = self.check_layer(l)
        check_choice(part, _PARTS, "part")
        self.check_kernel_size(X, layout, force)
        zs, hs = self.forward_pass(X)
        deltas = self.backward_pass(X, zs)
        return self.unstack(self.layer_kernel(hs, deltas, l, part, layout))

    def ntk(self, X, layout: str = "operator", force: bool = False) -> np.ndarray:
        """The empirical NTK ``sum_l K_l`` (see :meth:`layer_ntk`), shape ``([S,] n o, n o)`` or traced."""
        X = self.check_inputs(X)
        self.check_kernel_size(X, layout, force)
        zs, hs = self.forward_pass(X)
        deltas = self.backward_pass(X, zs)
        out = sum(self.layer_kernel(hs, deltas, l, "both", layout) for l in range(1, self.net.depth + 1))
        return self.unstack(out)

    # -- feature-learning diagnostics (Beaglehole et al. 2024, sec. 2) ------------------------------------------
    def input_jacobian(self, X, l: int) -> np.ndarray:
        """``J^a_l(x_i) = df_a(x_i)/dh_{l-1} = m_w,l W_l^T delta^a_l(x_i)``, shape ``([S,] o, n, N_{l-1})``.

        ``l = 1`` gives the Jacobian with respect to the input ``x`` (the gradient in the AGOP of
        Beaglehole et al. 2024, sec. 2).
        """
        X = self.check_inputs(X)
        l = self.check_layer(l)
        Ws, _ = self._stacked()
        D = self.backward_pass(X)[l - 1]
        S0, o, n, N = D.shape
        J = np.matmul(D.reshape(S0, o * n, N), Ws[l - 1]) * self.multipliers[0][l - 1]
        return self.unstack(J.reshape(J.shape[0], o, n, -1))

    def agop(self, X, l: int) -> np.ndarray:
        """Average gradient outer product ``G_l = (1/n) sum_{i,a} J^a_l(x_i) J^a_l(x_i)^T``.

        Returns an array of shape ``([S,] N_{l-1}, N_{l-1})``.

        Notes
        -----
        The AGOP of Beaglehole et al. 2024, sec. 2, summed over outputs (their remark on ``c >= 1`` outputs in
        the same section). Equals ``W_l^T K^ptk_l W_l`` (their Prop. 2) with the effective weights ``m_w W_l``
        and ``K^ptk_l = (1/n) sum_a Delta^aT Delta^a``.
        """
        X = self.check_inputs(X)
        J = self.input_jacobian(X, l)
        J = J if self.stack is not None else J[None]
        S, o, n, N = J.shape
        Jm = J.reshape(S, o * n, N)
        return self.unstack(np.matmul(np.swapaxes(Jm, -1, -2), Jm) / n)

    def nfm(self, l: int) -> np.ndarray:
        """Neural feature matrix ``W_l^T W_l`` of the stored (trainable) weights, ``([S,] N_{l-1}, N_{l-1})``.

        The NFM of Beaglehole et al. 2024, sec. 2. In NTP the effective weight is ``m_w W_l``; the constant factor
        does not change any cosine.
        """
        l = self.check_layer(l)
        W = self.weights[l - 1]
        return np.matmul(np.swapaxes(W, -1, -2), W)

    def ptk_gram(self, X, l: int, layout: str = "operator", force: bool = False) -> np.ndarray:
        """Backward (PTK) Gram matrix ``P_l[(i,a),(j,b)] = delta^a_l(x_i).delta^b_l(x_j)``.

        ``layout="operator"`` gives ``([S,] n o, n o)`` in sample-major order; ``"traced"`` gives
        ``(1/o) sum_a Delta^a_l Delta^a_l^T`` of shape ``([S,] n, n)`` (the same trace as :meth:`layer_ntk`).
        For ``o = 1`` this is the backward kernel ``B_l`` of :func:`meanfield.simulate` and the PTK of
        Beaglehole et al. 2024, sec. 2.
        """
        X = self.check_inputs(X)
        l = self.check_layer(l)
        self.check_kernel_size(X, layout, force)
        B = backward_factor(self.backward_pass(X)[l - 1], layout)
        S = self.stack or 1
        return self.unstack(np.broadcast_to(B, (S,) + B.shape[1:]).copy())

    def ptk_cov(self, X, l: int, normalize: bool = True) -> np.ndarray:
        """PTK feature covariance ``K^ptk_l = (1/n) sum_a Delta^a_l^T Delta^a_l``, shape ``([S,] N_l, N_l)``.

        ``normalize=False`` drops the ``1/n``: Beaglehole et al. 2024, sec. 2 define the PTK feature covariance
        without it and then write it as the AGOP of the pre-activations, with it. With the ``1/n``,
        ``agop(X, l) = (m_w W_l)^T K^ptk_l (m_w W_l)`` exactly (their Prop. 2).
        """
        X = self.check_inputs(X)
        l = self.check_layer(l)
        D = self.backward_pass(X)[l - 1]
        S0, o, n, N = D.shape
        Dm = D.reshape(S0, o * n, N)
        out = np.matmul(np.swapaxes(Dm, -1, -2), Dm) / (n if normalize else 1.0)
        return self.unstack(np.broadcast_to(out, (self.stack or 1, N, N)).copy())

    def feature_kernel(self, X, l: int) -> np.ndarray:
        """Feature kernel ``h_{l-1} h_{l-1}^T`` of the input of layer ``l = 1..L`` (``l = 1``: ``X X^T``).

        The layer kernel ``K^(l-1)`` of Canatar & Pehlevan 2022 (post-activations of hidden layer ``l - 1``);
        equals ``N_{l-1} / sigma_w^2 (F_l - sigma_b^2)`` for the forward kernel ``F_l`` of
        :func:`meanfield.simulate`. Shape ``([S,] n, n)``.
        """
        X = self.check_inputs(X)
        L = self.net.depth
        if isinstance(l, bool) or not isinstance(l, numbers.Integral) or not 1 <= l <= L:
            raise ValueError(f"layer l must be an integer in [1, {L}] (the input of layer l: X for l = 1, "
                             f"hidden layer l - 1 otherwise), got {l!r}")  # fmt: skip
        _, hs = self.forward_pass(X)
        G = gram(hs[l - 1])
        return self.unstack(np.broadcast_to(G, (self.stack or 1,) + G.shape[-2:]).copy())

    # -- losses and gradients -----------------------------------------------------------------------------------
    def targets(self, Y, n: int, loss: str = "mse", name: str = "Y") -> np.ndarray:
        """Targets of shape ``(n, o)``: integer labels ``(n,)`` become one-hot rows for cross-entropy, and for any
        loss when ``o > 1`` (the one label convention of the package: training and alignment use it too)."""
        real_array(Y, name)  # no complex, bool, string or object targets
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
        X = self.check_inputs(X)
        n = X.shape[0]
        Y = self.targets(Y, n, loss)
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
        X = self.check_inputs(X)
        zs, hs = self.forward_pass(X)
        value, resid = self.loss_grad(X, Y, loss, output=self.unstack(zs[-1]))
        seed = resid[None, None] if self.stack is None else resid[:, None]
        Ws, _ = self._stacked()
        mw, mb = self.multipliers
        deltas = backward_stack(zs, Ws, mw, self.net.activation, seed, **self._options(X.shape[0]))
        out = []
        for l in range(self.net.depth):
            g = deltas[l][:, 0]  # (S, n, N_l)
            gW = np.matmul(np.swapaxes(g, -1, -2), np.broadcast_to(hs[l], g.shape[:1] + hs[l].shape[-2:]))
            out.append(self.unstack(mw[l] * gW))
            if self.biases is not None:
                out.append(self.unstack(mb[l] * g.sum(axis=-2)))
        return value, out
