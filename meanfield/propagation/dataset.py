r"""Infinite-width kernels over a dataset: NNGP, backward, NTK and its per-layer decomposition.

Recursions (Jacot et al. 2018 with biases in every layer; the backward kernel and the layer-wise decomposition
of Lou et al. 2022, App. A and eq. (9)):

.. math::
    \Sigma_1 &= \tfrac{\sigma_w^2}{d}\,x\cdot x' + \sigma_b^2, \qquad
    \Sigma_{l+1} = \sigma_w^2\,\mathbb E_{\Lambda_l}[\phi(u)\phi(v)] + \sigma_b^2, \qquad
    \dot\Sigma_{l+1} = \sigma_w^2\,\mathbb E_{\Lambda_l}[\phi'(u)\phi'(v)], \\
    \mathfrak B_l &= \prod_{k=l+1}^{L}\dot\Sigma_k\ (\mathfrak B_L = 1), \qquad
    \Theta^{(l)} = \Sigma_l\odot\mathfrak B_l, \qquad
    \Theta_L = \sum_{l=1}^L\Theta^{(l)}\ \ (\Theta_1 = \Sigma_1,\ \Theta_l = \Theta_{l-1}\odot\dot\Sigma_l + \Sigma_l).

Every pair of inputs is carried through the layers independently (compiled with numba, rows in parallel, a block
of columns of one row at a time with the layer loop outside the vectorized column loop:
:mod:`meanfield.propagation.tiles`), holding the variances and the pair ``(s, r) = (1 - c, 1 + c)`` computed from
the inputs themselves (:mod:`meanfield.propagation.inputs`), so nearly parallel or anti-parallel inputs keep full
relative precision at any depth (:mod:`meanfield.gaussian.maps`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_layers, check_memory, check_network
from ..activations import KIND_HERMITE
from ..network import Network
from .inputs import check_inputs, first_layer, per_layer, tangent_factors, variance_ratios, variance_sequences
from .tiles import propagate

__all__ = ["Kernels", "kernels"]


@dataclass(frozen=True)
class Kernels:
    """Infinite-width kernels of a :class:`~meanfield.Network` on inputs ``X`` (rows) and ``X2`` (columns).

    Attributes
    ----------
    nngp : ndarray (n, m)
        :math:`\\Sigma_L`, the NNGP kernel of the output.
    ntk : ndarray (n, m)
        :math:`\\Theta_L`, the tangent kernel (NTK parameterization; see :func:`kernels` for standard).
    layers : tuple of int or None
        1-based layer indices of the per-layer arrays below (None unless requested).
    nngp_layers, backward, ntk_layers : ndarray (len(layers), n, m) or None
        :math:`\\Sigma_l`, :math:`\\mathfrak B_l` and :math:`\\Theta^{(l)}` for each requested layer.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    layers: tuple[int, ...] | None = None
    nngp_layers: np.ndarray | None = None
    backward: np.ndarray | None = None
    ntk_layers: np.ndarray | None = None

    def layer(self, l: int) -> int:
        """Position of 1-based layer ``l`` in the per-layer arrays."""
        if self.layers is None or l not in self.layers:
            raise ValueError(f"layer {l} was not computed; pass layers=[..., {l}, ...] to kernels()")
        return self.layers.index(l)


def _layer_slots(layers, depth):
    if layers is None or (isinstance(layers, bool | np.bool_) and not layers):
        return None
    if isinstance(layers, bool | np.bool_):
        return tuple(range(1, depth + 1))
    return tuple(sorted(set(check_layers(layers, depth, "layers")[0])))


def kernels_nbytes(n: int, m: int, d: int, depth: int, n_layers: int = 0) -> float:
    """Estimated peak memory (bytes) of :func:`kernels` on ``n`` x ``m`` pairs of ``d``-dimensional inputs.

    Five ``n x m`` arrays (layer 1's ``Sigma_1``, ``s``, ``r``; the NNGP and NTK), three per requested layer, the
    unit inputs, about a dozen per-input sequences of length ``depth``, and each thread's tile buffers (which hold
    every layer when layers are requested). The Hermite tables of the general path (``2 n L K``) are not counted.
    """
    from numba import get_num_threads

    from .tiles import _BLOCK, _ROWS

    pairs = float(n) * float(m) * (5 + 3 * n_layers)
    per_input = float(n + m) * (12.0 * depth + 2 * (d + 1))
    tiles = get_num_threads() * (6 + 2 * (depth if n_layers else 1)) * _ROWS * _BLOCK
    return 8.0 * (pairs + per_input + tiles)


def _refuse_nonfinite(nngp, ntk, ntk_l):
    """The variances are finite (checked with the inputs), but the NTK sums over layers and in standard
    parameterization carries fan-in factors: refuse a kernel that overflows rather than return inf or NaN."""
    for name, arr in (("NNGP", nngp), ("NTK", ntk), ("per-layer NTK", ntk_l)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"the {name} overflows float64 (its entries exceed 1.8e308; the variances grow too fast with depth "
                "or the inputs are too large): use a smaller input norm, sigma_w2 or depth"
            )


def kernels(X, net: Network, X2=None, layers=False, sphere="auto") -> Kernels:
    r"""Infinite-width NNGP and NTK of ``net`` on a dataset, optionally with every layer's decomposition.

    Parameters
    ----------
    X : array_like (n, d)
        Inputs, one per row (finite; no zero rows when ``sigma_b2 = 0``).
    net : Network
        The network spec. ``depth`` L; ``width`` is ignored in NTK parameterization.
    X2 : array_like (m, d), optional
        Second set of inputs for cross kernels (train x test). Default: ``X`` (symmetric, half the work).
    layers : bool, int or sequence of int
        ``True`` for all layers 1..L, or a 1-based layer index or a list of them (integers, not bools or floats), to
        also return
        :math:`\Sigma_l`, :math:`\mathfrak B_l` and :math:`\Theta^{(l)}` of those layers.
    sphere : "auto", True or False
        Inputs of equal norm share every layer's variance, so their kernels are functions of the angle alone:
        ``"auto"`` (default) detects exactly equal layer-1 variances and then evaluates the composed maps
        tabulated once in the angle, in :math:`O(L K + n m)` instead of :math:`O(n m L)`, agreeing with the layer
        loop to 1e-13 relative (pairs where the table cannot, the loop carries; :mod:`meanfield.propagation.sphere`);
        ``True`` also takes variances equal to a relative 4e-15 (rows normalized in floating point) as equal and
        raises a ValueError when the tables do not apply; ``False`` always runs the layer loop.

    Returns
    -------
    Kernels
        ``.nngp`` = :math:`\Sigma_L`, ``.ntk`` = :math:`\Theta_L`, and the per-layer arrays when requested.

    Notes
    -----
    *NTK parameterization* (Jacot et al. 2018; Lou et al. 2022, eq. (9)):
    :math:`\Theta^{(l)} = \Sigma_l\odot\mathfrak B_l` and :math:`\sum_l\Theta^{(l)} = \Theta_L` exactly.

    *Standard parameterization* (``net.parameterization == "standard"``, requires ``net.width``; the
    convention of Seleznova & Kutyniok 2022): the large-width limit of the SP tangent kernel with trainable biases
    in every layer,

    .. math:: \Theta^{SP,(l)} = \frac{N_{l-1}}{\sigma_w^2}\,(\Sigma_l - \sigma_b^2)\odot\mathfrak B_l + \mathfrak B_l,

    with :math:`N_0 = d`. The bias part :math:`\mathfrak B_l` converges as the width grows (and is present even
    when :math:`\sigma_b^2 = 0`); the weight part grows linearly with the fan-in :math:`N_{l-1}`, so only
    :math:`\Theta^{SP,(l)}/N_{l-1}` (or the NTP kernel) has a finite limit.

    *Beyond the plain MLP* (every option of :class:`~meanfield.Network` and every combination; the recursions are
    in :mod:`meanfield.propagation.architecture`): per-layer variances (``sigma_w2``/``sigma_b2`` schedules) use
    this function's own path with the variances of each layer; residual blocks, LayerNorm and dropout go through
    :mod:`meanfield.propagation.arch_tiles`. With residual blocks the per-layer tangent kernels are
    :math:`\Theta^{(l)} = F_l\odot\mathfrak B_l` with :math:`F_l = \beta^2(\omega_w\sigma_w^2\mathbb E[h h'] +
    \omega_b)` (in NTK parameterization :math:`F_l = \Sigma_l - \Sigma_{l-1}`, not :math:`\Sigma_l`) and the
    backward kernels :math:`\mathfrak B_{l-1} = (1 + \beta^2\dot\Sigma_l)\odot\mathfrak B_l` on the blocks;
    their sum is still the NTK. *Dropout*: the diagonal ``i == i`` of ``kernels(X)`` is one forward pass (one set of
    masks: the variance map gets :math:`1/\rho`); entries between different rows, and every entry of
    ``kernels(X, X2)`` (even for equal rows), are two passes with independent masks (no :math:`1/\rho`). The NTK
    is the tangent kernel of the network with its masks fixed at initialization, in expectation over masks and
    weights (at infinite width it concentrates): its backward derivative kernels get the same :math:`1/\rho` within
    one pass.

    Cost: :math:`O(n m L)` for the pairs and :math:`O((n + m) L)` for the variances. Memory: a few ``n x m``
    arrays without ``layers`` (pairs are carried through the layers a 16 x 256 tile at a time, with a vectorized
    loop over the columns), ``3 * len(layers) * n * m`` with them; the general path also keeps each input's
    Hermite coefficients at every layer, ``2 n L K`` numbers for order ``K`` (half that for odd or even
    activations, whose other parity is dropped). Closed forms for ReLU / leaky
    ReLU / linear and erf are exact to rounding; other activations use
    the Mehler expansion (:func:`meanfield.gaussian.hermite_coefficients`, 1e-9 relative for variances ``q <= 10``;
    cost grows with ``q``).

    Range: the closed forms never multiply two variances (correlations are k / (sqrt(q1) sqrt(q2)) and the next
    layer's from ratios of variances), so inputs of any representable norm keep their correlations, and a
    variance that underflows (ReLU at small sigma_w2, deep) leaves the correlations exact while the kernel entries
    round to 0. A variance, NNGP or NTK that overflows float64 raises ``ValueError`` naming it (never inf or NaN).
    The NTK update :math:`\Theta_{l+1} = \Theta_l\dot\Sigma_{l+1} + \Sigma_{l+1}` is carried in twice the
    working precision (:func:`meanfield.propagation.columns.ntk_accumulate`), so its rounding does not add up over
    thousands of layers near :math:`\dot\Sigma = 1` (ReLU's diagonal at L = 10^4 is L q exactly).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]]) * np.sqrt(2)
    >>> k = kernels(X, Network(3))                       # ReLU at (2, 0), ||x||^2 = d
    >>> (k.ntk / 2).round(10).tolist()                   # Theta_3(x, x') / q at rho = 0 (mpmath: tests/reference.py)
    [[3.0, 0.6857086363], [0.6857086363, 3.0]]
    >>> k = kernels(X, Network(3), layers=True)
    >>> bool(np.allclose(k.ntk_layers.sum(axis=0), k.ntk, rtol=1e-14))
    True
    """
    net = check_network(net, supports=("schedule", "residual", "normalization", "dropout"), what="kernels")
    if not net.plain and net.features != ("schedule",):
        from .arch_tiles import arch_kernels

        return arch_kernels(X, net, X2, layers)
    X = check_inputs(X, "X")
    sym = X2 is None
    X2 = X if sym else check_inputs(X2, "X2", X.shape[1])
    depth = net.depth
    act = net.activation
    sw, sb = per_layer(net.sigma_w2, depth), per_layer(net.sigma_b2, depth)
    d = X.shape[1]
    omw, omb = tangent_factors(net, d, sw, sb)
    if sphere is not False:  # equal norms: the composed maps tabulated in the angle
        from .sphere import sphere_kernels

        fast = sphere_kernels(X, net, None if sym else X2, layers, sphere, omw, omb)
        if fast is not None:
            return fast
    slots_t = _layer_slots(layers, depth)
    nx, mx, nl = X.shape[0], X2.shape[0], len(slots_t or ())
    check_memory(
        kernels_nbytes(nx, mx, d, depth, nl),
        f"kernels of {nx} x {mx} input pairs at depth {depth}" + (f" with {nl} layers" if nl else ""),
        "use fewer inputs (blocks of rows: kernels(X[i:j], net, X2=X)), fewer layers or a smaller depth",
    )

    W0, S0, R0, q1, q2 = first_layer(X, X2, sw[0], sb[0], sym)
    n, m = W0.shape
    nq = np.concatenate([q1, q2]) if not sym else q1
    Q, V, rows, order, npar, apar, TA, TB = variance_sequences(act, sw, sb, nq, depth)
    order = np.ascontiguousarray(np.stack([order, npar, apar], axis=1))  # (M, npar, apar) per layer
    # per-input sequences laid out (layer, input): the row kernel's column loop reads them contiguously
    SQ, SV = np.sqrt(Q), np.sqrt(V)
    T = variance_ratios(act, sw, sb, Q) if act.kind != KIND_HERMITE else np.zeros((2,) + Q.shape)
    Q1, SQ1, SV1, R1 = (np.ascontiguousarray(a[:, :n]) for a in (Q, SQ, SV, rows))
    Q2, SQ2, SV2, R2 = (Q1, SQ1, SV1, R1) if sym else (np.ascontiguousarray(a[:, n:]) for a in (Q, SQ, SV, rows))
    T1 = np.ascontiguousarray(T[:, :, :n])
    T2 = T1 if sym else np.ascontiguousarray(T[:, :, n:])

    slots = np.full(depth, -1, dtype=np.int64)
    nl = 0
    if slots_t is not None:
        for k, l in enumerate(slots_t):
            slots[l - 1] = k
        nl = len(slots_t)
    shape_l = (nl, n, m) if nl else (0, 0, 0)
    nngp, ntk = np.empty((n, m)), np.empty((n, m))
    nngp_l, back_l, ntk_l = np.empty(shape_l), np.empty(shape_l), np.empty(shape_l)
    propagate(
        act.kind, float(act.slope), sw, sb, Q1, Q2, SQ1, SQ2, SV1, SV2, R1, R2, T1, T2, TA, TB, order,
        W0, S0, R0, omw, omb, sym, slots, nngp, ntk, nngp_l, back_l, ntk_l,
    )  # fmt: skip
    _refuse_nonfinite(nngp, ntk, ntk_l)
    if nl == 0:
        return Kernels(nngp, ntk)
    return Kernels(nngp, ntk, slots_t, nngp_l, back_l, ntk_l)
