r"""Forward and backward information loss of every layer: the two sides of the Equilibrium Hypothesis.

Lou et al. 2022 (sec. 3.3-3.4) argue that the layers of a trained network whose tangent kernels align best with
the labels are those where the forward information loss (Thm. 1, :math:`\Theta(l^{-2})`) balances the backward
one (Thm. 2(ii), :math:`\Theta((l/L)^3)`). This module makes both sides computable (derived here; the definitions
are in :func:`information_loss`):

.. math::
    \mathcal F_l = \sup_{\rho}\,(1 - c_l(\rho)),\qquad
    \mathcal B_{l,L} = \sup_{\rho}\prod_{k=l+1}^{L}
        \frac{\dot\Sigma_k(x,x')}{\sqrt{\dot\Sigma_k(x,x)\,\dot\Sigma_k(x',x')}},

with the sups over input correlations :math:`\rho \in [-1, 1-\epsilon]` (Lou et al. 2022, eq. (10)) or over the
pairs of a data set. The forward sequence does not depend on L and :math:`\log\mathcal B_{l,L} = S_L - S_l` with
prefix sums :math:`S_m` of the log ratios, so every depth up to :math:`L_{\max}` costs :math:`O(L_{\max})` in total
(:class:`LossModel`, shared with :func:`meanfield.equilibrium.peak_layer`).
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, check_memory, check_network
from ..activations import KIND_LEAKY
from ..data import to_sphere
from ..network import FEATURES
from ..propagation import check_inputs
from .curves import arch_curves, curves

__all__ = ["InformationLoss", "information_loss"]

#: largest depth accepted (memory: a few arrays of this length)
MAX_DEPTH = 10**7

#: normalizations of the forward loss: ours (relative) and Lou et al. 2022's Thm. 1 as printed
FORMS = ("corrected", "published")

#: factor multiplying :math:`1 - c_l` in :math:`\mathcal F_l`, per form. "published" is Lou et al. 2022, Thm. 1
#: literally, :math:`|I^f_l - 1/2| = (1 - c_l)/2` for ReLU at (2, 0) with :math:`q_l = 1`.
FORWARD_FACTOR = {"corrected": 1.0, "published": 0.5}


def _fmt_var(v):
    """A variance or a per-layer schedule, short."""
    return f"{v:g}" if not isinstance(v, tuple) else "[" + ", ".join(f"{x:g}" for x in v) + "]"


def check_depths(depth, name="depth"):
    """Depth(s) L in ``[2, MAX_DEPTH]`` as an int or a 1-D int64 array (integral floats accepted; bools, strings,
    sets and nested arrays refused, with a ValueError naming ``name``)."""
    lead = "depth" if name == "depth" else f"{name}: depth"
    if isinstance(depth, set | frozenset | dict | str | bytes):
        raise ValueError(f"{lead} must be an integer >= 2 or a 1-D array of them, got {depth!r}")
    try:
        arr = np.asarray(depth)
    except (TypeError, ValueError):
        raise ValueError(f"{lead} must be an integer >= 2 or a 1-D array of them, got {depth!r}") from None
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{lead} must be an integer >= 2 or a 1-D array of them, got {depth!r}")
    if arr.ndim > 1:
        raise ValueError(f"{lead} must be an integer >= 2 or a 1-D array of them, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{lead} must not be empty")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ValueError(f"{lead} must hold integers, got {depth!r}")
    if np.issubdtype(arr.dtype, np.floating) and np.any(np.abs(arr) > MAX_DEPTH):
        raise ValueError(f"{lead} must be in [2, {MAX_DEPTH}] (a peak layer needs a hidden layer), got {depth!r}")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 2) | (arr > MAX_DEPTH)]
    if bad.size:
        raise ValueError(f"{lead} must be in [2, {MAX_DEPTH}] (a peak layer needs a hidden layer), got {bad[0]}")
    return int(arr) if arr.ndim == 0 else arr


def check_loss_memory(L_max, n_depths=1):
    """Refuse (:func:`meanfield._checks.check_memory`) curves to depth ``L_max`` for ``n_depths`` depths that do not
    fit in memory: about 40 float64 arrays of length ``L_max`` (the two pairs' curves, prefix sums, the
    :func:`meanfield.propagation.pair_curve` fields, the returned curves) and 16 per depth."""
    check_memory(8.0 * (40.0 * L_max + 16.0 * n_depths), f"information-loss curves to depth {L_max} for {n_depths} "
                 "depth(s)", "use a smaller maximal depth or fewer depths (e.g. a range with a step)")  # fmt: skip


def _check_eps(eps):
    ok = isinstance(eps, numbers.Real) and not isinstance(eps, bool | np.bool_) and 0.0 < eps < 2.0
    if not ok:
        raise ValueError(f"eps must be in (0, 2), a number (pairs with x.x'/d < 1 - eps), got {eps!r}")
    return float(eps)


def _pair_range(eps, pairs):
    """Start values s = 1 - rho at (rho_min, rho_max): [-1, 1 - eps] or the range of a data set's correlations."""
    if pairs is None:
        eps = _check_eps(eps)
        return np.array([2.0, eps]), (-1.0, 1.0 - eps)
    X = check_inputs(pairs, "pairs")
    if X.shape[0] < 2:
        raise ValueError(f"pairs must hold at least 2 inputs (rows), got {X.shape[0]}")
    U = to_sphere(X, norm2=1.0, name="pairs")  # unit rows: U U^T holds the cosines
    G = U @ U.T
    iu = np.triu_indices(X.shape[0], 1)
    rho = G[iu]
    i_max, i_min = int(np.argmax(rho)), int(np.argmin(rho))
    # 1 - rho and 1 + rho as half squared distances of unit vectors: exact for nearly (anti)parallel pairs
    s_top = 0.5 * float(np.sum((U[iu[0][i_max]] - U[iu[1][i_max]]) ** 2))
    s_bot = 2.0 - 0.5 * float(np.sum((U[iu[0][i_min]] + U[iu[1][i_min]]) ** 2))
    if s_top <= 0.0:
        raise ValueError("pairs contains two parallel inputs (correlation 1): remove duplicates")
    return np.array([s_bot, s_top]), (float(1.0 - s_bot), float(1.0 - s_top))


@dataclass(frozen=True)
class InformationLoss:
    r"""Forward and backward information loss over the layers of one network.

    Attributes
    ----------
    depth : int
        L.
    layers : ndarray of int
        1..L.
    forward : ndarray
        :math:`\mathcal F_l = \sup_\rho(1 - c_l(\rho))` (times 1/2 with ``form="published"``), decreasing in l.
    backward : ndarray
        :math:`\mathcal B_{l,L}`, increasing in l, :math:`\mathcal B_{L,L} = 1`.
    rho : tuple of float
        The correlation range :math:`(\rho_{\min}, \rho_{\max})` of the sups.
    form : str
        ``"corrected"`` or ``"published"`` (see :func:`information_loss`).
    """

    depth: int
    layers: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    rho: tuple[float, float]
    form: str

    @property
    def gap(self) -> np.ndarray:
        r""":math:`D_l = \log\mathcal F_l - \log\mathcal B_{l,L}` (strictly decreasing for ReLU at (2, 0))."""
        with np.errstate(divide="ignore"):
            return np.log(self.forward) - np.log(self.backward)


class LossModel:
    """Forward log F_l and backward prefix sums for every layer up to ``net.depth`` (the largest depth needed).

    Attributes: ``net``, ``rho`` (the correlation range), ``form``, ``log_f`` (log F_l, l = 1..L), ``S`` and ``Z``
    (per dominating pair: prefix sums of the finite log ratios and counts of zero ratios, so that
    log B_{l,L} = S[L-1] - S[l-1] when Z[L-1] == Z[l-1], else -inf) and ``single`` (one pair dominates every
    backward factor, so ``S`` and ``Z`` hold that pair only).
    """

    def __init__(self, net, eps, form, pairs, warn=True):
        check_network(net, supports=FEATURES, what="information_loss")
        check_choice(form, FORMS, "form")
        act = net.activation
        relu_eoc = act.kind == KIND_LEAKY and act.slope == 0.0 and net.sigma_w2 == 2.0 and net.sigma_b2 == 0.0
        if warn and not (relu_eoc and net.plain):
            what = f"{act.name} at ({_fmt_var(net.sigma_w2)}, {_fmt_var(net.sigma_b2)})"
            if not net.plain:
                what += f" with {', '.join(net.features)}"
            warnings.warn(
                f"the L^(3/5) law is proven only for ReLU at the edge of chaos (2, 0) (plain network); {what} uses "
                "the generalized definitions (information_loss)",
                UserWarning,
                stacklevel=3,
            )
        self.net = net
        self.form = form
        s0, self.rho = _pair_range(eps, pairs)
        if net.plain:
            s, logr = curves(net.depth, act, net.sigma_w2, net.sigma_b2, s0)
            s_out = log_out = None
        else:
            ac = arch_curves(net, s0)
            s, logr, s_out, log_out = ac.s, ac.log_factor, ac.s_out, ac.log_out
        with np.errstate(divide="ignore"):
            self.log_f = np.log(np.max(s, axis=0)) + math.log(FORWARD_FACTOR[form])
            # log F_l and log of layer l's backward factor when layer l is the readout (residual networks: the
            # readout is a plain layer, not a residual block); None when they equal log_f and the factors
            self.log_f_out = None if s_out is None else np.log(np.max(s_out, axis=0)) + math.log(FORWARD_FACTOR[form])
        self.R = log_out
        finite = np.isfinite(logr)
        self.S = np.cumsum(np.where(finite, logr, 0.0), axis=1)  # S[p, l-1] = sum_{k=2}^{l} log ratio_k
        self.Z = np.cumsum(~finite, axis=1)  # zero factors among k = 2..l
        # a pair whose every factor is at least as large as every other pair's gives the sup of each product
        top = np.nonzero(np.all(logr >= logr.max(axis=0), axis=1))[0]
        self.single = top.size > 0 and net.plain
        if self.single:
            self.S, self.Z = self.S[top[:1]], self.Z[top[:1]]

    def depth_arrays(self, L):
        """(log F_l, S, Z) of depth ``L`` for the scan of :func:`meanfield.equilibrium.peak_layer`: with the readout
        in place of layer L (its forward loss and its factor), so that log B_{l,L} = S[L-1] - S[l-1]."""
        if self.R is None:
            return self.log_f[:L], self.S[:, :L], self.Z[:, :L]
        log_f = self.log_f[:L].copy()
        log_f[L - 1] = self.log_f_out[L - 1]
        S, Z = self.S[:, :L].copy(), self.Z[:, :L].copy()
        if L >= 2:
            last = self.R[:, L - 1]
            ok = np.isfinite(last)
            S[:, L - 1] = S[:, L - 2] + np.where(ok, last, 0.0)
            Z[:, L - 1] = Z[:, L - 2] + ~ok
        return log_f, S, Z

    def log_backward(self, L):
        """log B_{l,L} for l = 1..L."""
        _, S, Z = self.depth_arrays(L)
        with np.errstate(invalid="ignore"):
            val = np.where(Z[:, -1:] - Z == 0, S[:, -1:] - S, -np.inf)
        return val.max(axis=0)

    def loss(self, L) -> InformationLoss:
        """The :class:`InformationLoss` of depth ``L`` (<= ``net.depth``)."""
        forward = np.exp(self.depth_arrays(L)[0])
        backward = np.exp(self.log_backward(L))
        return InformationLoss(L, np.arange(1, L + 1), forward, backward, self.rho, self.form)


def information_loss(net, eps=0.5, pairs=None, form="corrected"):
    r"""Forward and backward information loss of every layer (the two sides of the Equilibrium Hypothesis).

    Parameters
    ----------
    net : Network
        Depth L >= 2, activation, ``sigma_w2``, ``sigma_b2`` and any option (per-layer variances, ``residual``,
        ``normalization``, ``dropout``; see Notes); the width is ignored (infinite-width theory).
    eps : float
        Pairs are restricted to :math:`x\cdot x'/d \le 1 - \epsilon`, :math:`\epsilon\in(0, 2)` (Lou et al. 2022,
        eq. (10), which takes :math:`\epsilon \in (0, 1)`).
    pairs : array_like (n, d), optional
        A data set: the correlation range becomes :math:`[\rho_{\min}, \rho_{\max}]` over its distinct pairs
        (cosines of the rows; inputs are taken on the sphere :math:`\|x\|^2 = d`). Replaces ``eps``.
    form : {"corrected", "published"}
        ``"corrected"``: :math:`\mathcal F_l = 1 - c_l`, the forward kernel's relative distance from its limit;
        ``"published"``: :math:`\frac12(1 - c_l)`, Lou et al. 2022, Thm. 1 as printed (:math:`q_l = 1`).

    Returns
    -------
    InformationLoss

    Notes
    -----
    The computable form of Lou et al. 2022, Thms. 1 and 2(ii) (derived here):
    :math:`\mathcal F_l = \sup_\rho(1 - c_l)` and :math:`\mathcal B_{l,L} = \sup_\rho\prod_{k=l+1}^L
    \dot\Sigma_k(x,x')/\sqrt{\dot\Sigma_k(x,x)\dot\Sigma_k(x',x')}`, the sups taken at the two ends of the
    correlation range (the correlation map is increasing for monotone activations; the backward sup is the larger of
    the two end products). For ReLU at (2, 0) this is :math:`\mathcal F_l = 1 - c_l(-1)` and
    :math:`\mathcal B_{l,L} = \prod_{k=l}^{L-1}g'(c_k(1-\epsilon))` with :math:`g` of Lou et al. 2022, eq. (3).
    :math:`\mathcal B` is the width-free backward kernel: the paper's :math:`I^b_{l,\infty}`
    (eq. (4), Thm. 2) is the per-neuron gradient covariance, which carries a factor :math:`1/N` from the width-one
    readout; :math:`N I^b_{l,N} \to \mathcal B_{l,L}`.

    Normalization: Thm. 1 measures :math:`|I^f_{l,\infty} - 1/2|`, with :math:`I^f_{l,\infty} = q_l c_l/2`
    and a limit 1/2 that needs :math:`q_l = 1`; the paper's own inputs (:math:`\|x\|^2 = d` at
    :math:`\sigma_w^2 = 2`) give :math:`q_l = 2` and a limit 1. The relative distance
    :math:`|I^f_l - I^f_\infty|/I^f_\infty = 1 - c_l` holds for every :math:`q`, hence the default
    ``form="corrected"``; ``"published"`` keeps the printed factor 1/2, which moves :math:`l^*` by
    :math:`2^{-1/5}` asymptotically (:func:`peak_layer_constant`).

    Networks with options (derived here; :func:`meanfield.equilibrium.curves.layer_update`): the same two
    definitions, with :math:`c_l` and the normalized backward factors of the network's own layers. A residual block
    :math:`z_l = z_{l-1} + \beta(W_l\phi(z_{l-1}) + b_l)` has the backward factor
    :math:`\frac{1 + \beta^2\sigma_w^2\mathbb E[\phi'(u)\phi'(v)]}{\sqrt{(1 + \beta^2\sigma_w^2\mathbb E\phi'(u)^2)
    (1 + \beta^2\sigma_w^2\mathbb E\phi'(v)^2)}}` (skip path 1, branch :math:`\beta^2\dot\Sigma`; the cross term
    vanishes at infinite width); the readout :math:`z_L = W_L\phi(z_{L-1}) + b_L` is a plain layer, so a residual
    network of depth L has :math:`\mathcal F_L` and :math:`\mathcal B_{\cdot,L}`'s last factor from a plain step.
    LayerNorm: :math:`\phi` sees unit variances and its derivative carries :math:`1/\sqrt{q_{l-1}}` (relevant only
    inside residual blocks, where it does not cancel). Dropout (keep probability :math:`\rho`): the variance map
    and the diagonal derivative kernel get :math:`1/\rho`, the covariances do not, so a plain layer's factor is
    :math:`\rho\,\mathbb E[\phi'\phi']/\mathbb E\phi'^2` and :math:`1 - c_l` does not tend to 0. Per-layer
    variances enter layer by layer.

    Numerics: the leaky-ReLU family at :math:`\sigma_b = 0` (ReLU included) tracks :math:`s = 1 - c` with the exact
    series of :math:`h(\theta)` and accumulates :math:`\log g' = \mathrm{log1p}(-\theta/\pi)`; other settings use
    :func:`meanfield.propagation.pair_curve`, which also carries :math:`1 - c` exactly. Inputs on the sphere:
    :math:`\Sigma_1(x, x) = \sigma_w^2 + \sigma_b^2`. A ``UserWarning`` is raised outside ReLU at (2, 0), where the
    :math:`L^{3/5}` law is not proven.

    Examples
    --------
    >>> from meanfield import Network
    >>> il = information_loss(Network(10))
    >>> round(float(il.forward[4]), 6), round(float(il.backward[4]), 6)   # layer 5 of a depth-10 ReLU net
    (0.395174, 0.354263)
    >>> il = information_loss(Network(10, residual=1.0))                  # a residual ReLU network
    >>> round(float(il.forward[4]), 6), round(float(il.backward[4]), 6)
    (0.82914, 0.458476)
    """
    L = check_depths(check_network(net, supports=FEATURES, what="information_loss").depth)
    check_loss_memory(L)
    return LossModel(net, eps, form, pairs).loss(L)
