r"""The predicted peak layer :math:`l^*(L)` of the Equilibrium Hypothesis, for one depth or many.

Lou et al. 2022, Cor. 1: the forward and backward information loss balance at :math:`l = \Theta(L^{3/5})`. Here
:math:`l^*(L) = \arg\min_l |\log\mathcal F_l - \log\mathcal B_{l,L}|` with the losses of
:func:`meanfield.equilibrium.information_loss` (the computable criterion is derived here; see :func:`peak_layer`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, check_network
from .._jit import njit
from ..activations import KIND_LEAKY
from ..network import FEATURES
from .asymptotics import SCORES, peak_layer_constant, residual_peak_layer_constant
from .information import FORMS, InformationLoss, LossModel, check_depths, check_loss_memory

__all__ = ["PeakLayer", "peak_layer"]


@njit(cache=True)
def _scan(log_f, S, Z, depths, harmonic, l_star, l_cont, log_b):
    """Exact O(L) scan per depth: argmin |D_l| (or argmax of the harmonic score), first sign change of D."""
    P = S.shape[0]
    for t in range(depths.shape[0]):
        L = depths[t]
        best = -1
        best_val = math.inf
        cross = -1
        vals = np.empty(L)
        lbs = np.empty(L)
        for i in range(L):
            lb = -math.inf
            for p in range(P):
                if Z[p, L - 1] == Z[p, i]:
                    lb = max(lb, S[p, L - 1] - S[p, i])
            lbs[i] = lb
            d = log_f[i] - lb
            if harmonic:
                # -log H = log(1/F + 1/B); minimize
                a, b = -log_f[i], -lb
                m = max(a, b)
                v = m + math.log1p(math.exp(min(a, b) - m)) if m < math.inf else math.inf
            else:
                v = abs(d)
            vals[i] = v
            if v < best_val:
                best_val = v
                best = i
            if cross < 0 and i > 0 and d <= 0.0 and log_f[i - 1] - lbs[i - 1] > 0.0:
                cross = i
        if best < 0:
            best = L - 1
        l_star[t] = best + 1
        log_b[t] = lbs[best]
        if harmonic:
            if 0 < best < L - 1:
                y0, y1, y2 = vals[best - 1], vals[best], vals[best + 1]
                den = y0 - 2.0 * y1 + y2
                l_cont[t] = best + 1 + (0.5 * (y0 - y2) / den if den > 0.0 else 0.0)
            else:
                l_cont[t] = math.nan
        elif cross > 0:
            d0 = log_f[cross - 1] - lbs[cross - 1]
            d1 = log_f[cross] - lbs[cross]
            l_cont[t] = cross + d0 / (d0 - d1)
        else:
            l_cont[t] = math.nan


def _crossing_fast(model, depths):
    """Single dominating pair and G_l = log F_l + S_l strictly decreasing: D_l(L) = G_l - S_L, one search per L."""
    S = model.S[0]
    G = model.log_f + S
    level = S[depths - 1]
    count = np.minimum(np.searchsorted(-G, -level, side="left"), depths)  # l with D_l > 0 are 1..count
    inside = (count >= 1) & (count < depths)
    i1 = np.where(inside, count, 0)  # 0-based index of the first l with D <= 0
    i0 = np.maximum(i1 - 1, 0)
    d0 = G[i0] - level
    d1 = G[i1] - level
    with np.errstate(invalid="ignore", divide="ignore"):
        l_cont = np.where(inside, i0 + 1 + d0 / (d0 - d1), np.nan)
    pick = np.where(np.abs(d1) < np.abs(d0), i1, i0)
    idx = np.where(inside, pick, np.where(count == 0, 0, depths - 1))
    return idx + 1, l_cont, level - S[idx]


@dataclass(frozen=True)
class PeakLayer:
    r"""Predicted equilibrium layer(s), for one depth (scalars) or many (arrays).

    Attributes
    ----------
    depth : int or ndarray
        L.
    l_star : int or ndarray
        :math:`l^*(L)`, the integer layer (argmin of :math:`|D_l|`, or argmax of the harmonic score).
    l_cont : float or ndarray
        The continuous crossing of :math:`D_l` by linear interpolation (harmonic: vertex of the parabola through
        the maximum and its neighbours); NaN when there is no interior crossing.
    forward, backward : float or ndarray
        :math:`\mathcal F` and :math:`\mathcal B_{\cdot,L}` at :math:`l^*`.
    asymptote : float or ndarray
        The reference law :math:`C L^{3/5}`: for residual ReLU networks without bias and a fixed
        :math:`\beta`, :func:`residual_peak_layer_constant`; for every other network Lou et al. 2022's
        :func:`peak_layer_constant` (the plain ReLU network at (2, 0), the paper's setting), a reference curve
        rather than that network's own asymptote.
    curves : InformationLoss
        The information-loss curves of the (largest) depth.
    form, score : str
    """

    depth: int | np.ndarray
    l_star: int | np.ndarray
    l_cont: float | np.ndarray
    forward: float | np.ndarray
    backward: float | np.ndarray
    asymptote: float | np.ndarray
    curves: InformationLoss
    form: str
    score: str


#: how the branch multiplier of a residual network depends on the depth in :func:`peak_layer`
RESIDUAL_SCALINGS = ("fixed", "inverse_sqrt")


def _depth_net(net, L, residual_scaling):
    """The network of depth L: ``net`` itself (a schedule fixes its depth), else ``net.replace(depth=L)`` with
    ``residual = net.residual / sqrt(L)`` for the stable scaling."""
    if L == net.depth and residual_scaling == "fixed":
        return net.replace(width=None)
    if residual_scaling == "inverse_sqrt":
        return net.replace(depth=L, width=None, residual=net.residual / math.sqrt(L))
    return net.replace(depth=L, width=None)


def _asymptote(net, form, score, residual_scaling):
    """C of the reference law C L^(3/5): derived for residual ReLU without bias and a fixed beta
    (:func:`residual_peak_layer_constant`); otherwise Lou et al. 2022's constant for the plain ReLU network at
    (2, 0) (:func:`peak_layer_constant`), the paper's setting, as a reference curve (always finite)."""
    act = net.activation
    relu0 = act.kind == KIND_LEAKY and act.slope == 0.0 and net.sigma_b2 == 0.0
    if relu0 and net.features == ("residual",) and residual_scaling == "fixed":
        return residual_peak_layer_constant(net.residual**2 * net.sigma_w2 / 2.0, form, score)
    return peak_layer_constant(form, score)


def peak_layer(net, depths=None, eps=0.5, form="corrected", score="crossing", pairs=None, residual_scaling="fixed"):
    r"""Predicted layer of best alignment, :math:`l^*(L)` (Lou et al. 2022, Cor. 1), for one depth or many.

    Parameters
    ----------
    net : Network
        Activation, ``sigma_w2``, ``sigma_b2`` and, unless ``depths`` is given, the depth L >= 2 (the width is
        ignored: infinite-width theory). Lou et al. 2022's setting is ReLU at (2, 0), ``Network(L)``.
    depths : int or array_like of int, optional
        Evaluate :math:`l^*` at these depths instead of ``net.depth`` (which is then ignored): the networks
        ``net.replace(depth=L)`` for every L. An array of depths costs :math:`O(L_{\max})` in total (plus a binary
        search per depth) and gives array results; ``None`` (default) or an int gives scalars.
    eps : float
        Pair restriction :math:`x\cdot x'/d \le 1 - \epsilon`, in (0, 2).
    form : {"corrected", "published"}
        Normalization of the forward loss (see :func:`information_loss`).
    score : {"crossing", "harmonic"}
        ``"crossing"``: :math:`\arg\min_l|\log\mathcal F_l - \log\mathcal B_{l,L}|`; ``"harmonic"``:
        :math:`\arg\max_l(\mathcal F_l^{-1} + \mathcal B_{l,L}^{-1})^{-1}` (costs O(L) per depth).
    pairs : array_like (n, d), optional
        Data set whose correlation range replaces :math:`[-1, 1-\epsilon]`.
    residual_scaling : {"fixed", "inverse_sqrt"}
        For a residual ``net``: ``"fixed"`` uses ``beta = net.residual`` at every depth; ``"inverse_sqrt"`` uses
        ``beta = net.residual / sqrt(L)`` for depth L (the stable scaling of Hayou et al. 2021), which makes every
        depth its own O(L) computation.

    Returns
    -------
    PeakLayer

    Notes
    -----
    The balance condition :math:`\mathcal{IL}^f \asymp \mathcal{IL}^b` and the 3/5 law are Lou et al. 2022's
    (sec. 3.3, Cor. 1); the criterion :math:`\arg\min_l|D_l|`, the normalization, :math:`\epsilon` and the
    rounding are choices made here. With :math:`G_l = \log\mathcal F_l + S_l` and
    :math:`\log\mathcal B_{l,L} = S_L - S_l`, the gap is :math:`D_l(L) = G_l - S_L`: when one pair attains every
    backward sup and :math:`G` is strictly decreasing (ReLU at (2, 0); checked, not assumed) the crossing for each L
    is a binary search of the level :math:`S_L` in :math:`G`. Otherwise every depth is scanned exactly in O(L).
    Asymptotically :math:`l^* \simeq (9\pi^2/2)^{1/5}L^{3/5} = 2.13551\,L^{3/5}` (:func:`peak_layer_constant`),
    approached slowly: the local log-log slope is 0.715 over [10, 100] and 0.604 over [1e4, 1e6] (the
    :math:`\log l/l` corrections of :func:`relu_eoc_one_minus_c` and :func:`relu_eoc_slope`).

    Every network option is accepted (:func:`information_loss`). Per-layer variances fix the depth (``depths`` must
    be ``net.depth``). A residual network's readout is a plain layer, so the curves to :math:`L_{\max}` also carry
    each layer computed as a readout, and each depth is scanned exactly in O(L). Residual ReLU at
    :math:`\sigma_b = 0` with a fixed :math:`\beta` keeps the 3/5 law with the constant of
    :func:`residual_peak_layer_constant` (``asymptote``; elsewhere the plain network's as a reference); with
    :math:`\beta = 1/\sqrt L`, :math:`l^*/L` tends to a constant (``notebooks/residual_peak.ipynb``).

    Examples
    --------
    >>> from meanfield import Network
    >>> relu = Network(100)                                        # ReLU at the edge of chaos (2, 0)
    >>> peak_layer(relu, np.arange(10, 101, 10)).l_star.tolist()   # the depths of Lou et al. 2022, Fig. 3
    [5, 9, 12, 14, 17, 19, 21, 23, 25, 27]
    >>> round(float(peak_layer(Network(100000)).l_cont), 2)
    2120.38
    >>> import warnings; warnings.simplefilter("ignore", UserWarning)
    >>> peak_layer(Network(10, residual=1.0), [10, 100, 1000], residual_scaling="inverse_sqrt").l_star.tolist()
    [10, 100, 1000]
    """
    check_network(net, supports=FEATURES, what="peak_layer")
    check_choice(form, FORMS, "form")
    check_choice(score, SCORES, "score")
    check_choice(residual_scaling, RESIDUAL_SCALINGS, "residual_scaling")
    if residual_scaling == "inverse_sqrt" and net.residual is None:
        raise ValueError('residual_scaling="inverse_sqrt" needs a residual network (net.residual = the constant c of '
                         "beta = c / sqrt(L))")  # fmt: skip
    depths = check_depths(net.depth) if depths is None else check_depths(depths, "depths")
    scalar = np.ndim(depths) == 0
    arr = np.atleast_1d(depths).astype(np.int64)
    if "schedule" in net.features and np.any(arr != net.depth):
        raise ValueError(
            f"depths: a per-layer schedule (net.sigma_w2 = {net.sigma_w2!r}, net.sigma_b2 = {net.sigma_b2!r}) fixes "
            f"the depth to net.depth = {net.depth}; give depths=None or one network per depth"
        )
    L_max = int(arr.max())
    check_loss_memory(L_max, arr.size)
    if residual_scaling == "inverse_sqrt":
        # beta depends on L: one O(L) model per depth
        l_star = np.empty(arr.size, dtype=np.int64)
        l_cont = np.empty(arr.size)
        log_b = np.empty(arr.size)
        log_f_star = np.empty(arr.size)
        for t, L in enumerate(arr):
            m = LossModel(_depth_net(net, int(L), residual_scaling), eps, form, pairs, warn=t == 0)
            lf, S, Z = m.depth_arrays(int(L))
            _scan(lf, S, Z, arr[t : t + 1], score == "harmonic", l_star[t : t + 1], l_cont[t : t + 1],
                  log_b[t : t + 1])  # fmt: skip
            log_f_star[t] = lf[l_star[t] - 1]
            if L == L_max:
                model = m  # the curves returned are those of the largest depth
    else:
        model = LossModel(_depth_net(net, L_max, residual_scaling), eps, form, pairs)
        fast = (
            net.plain
            and score == "crossing"
            and model.single
            and model.Z[0, -1] == 0
            and np.all(np.isfinite(model.log_f))
            and np.all(np.diff(model.log_f + model.S[0]) < 0)
        )
        if fast:
            l_star, l_cont, log_b = _crossing_fast(model, arr)
        else:
            l_star = np.empty(arr.size, dtype=np.int64)
            l_cont = np.empty(arr.size)
            log_b = np.empty(arr.size)
            if net.plain:
                _scan(model.log_f, model.S, model.Z, arr, score == "harmonic", l_star, l_cont, log_b)
            else:
                for t, L in enumerate(arr):
                    lf, S, Z = model.depth_arrays(int(L))
                    _scan(lf, S, Z, arr[t : t + 1], score == "harmonic", l_star[t : t + 1], l_cont[t : t + 1],
                          log_b[t : t + 1])  # fmt: skip
        log_f_star = np.array([model.depth_arrays(int(L))[0][ls - 1] for L, ls in zip(arr, l_star, strict=True)])
    if score == "crossing" and np.any(np.isnan(l_cont)):
        bad = arr[np.isnan(l_cont)]
        warnings.warn(
            f"no sign change of log F - log B within 1..L for depth(s) {bad[:5].tolist()}: l_cont is NaN and "
            "l_star is the layer of smallest |log F - log B|",
            UserWarning,
            stacklevel=2,
        )
    forward = np.exp(log_f_star)
    backward = np.exp(log_b)
    asym = _asymptote(net, form, score, residual_scaling) * arr.astype(np.float64) ** 0.6
    curves = model.loss(L_max)
    if scalar:
        return PeakLayer(
            int(arr[0]), int(l_star[0]), float(l_cont[0]), float(forward[0]), float(backward[0]), float(asym[0]),
            curves, form, score,
        )  # fmt: skip
    return PeakLayer(arr, l_star, l_cont, forward, backward, asym, curves, form, score)
