"""Exact finite-width moments of the diagonal NTK entry of a deep ReLU network (Seleznova & Kutyniok 2022).

Setting (Seleznova & Kutyniok 2022, eqs. (3), (4), (6)): a fully connected ReLU network in standard
parameterization, ``W^l_ij ~ N(0, sigma_w2 / n_{l-1})``, biases initialized to zero (``sigma_b = 0``) but trained,
scalar linear output, input dimension ``n_0 = d`` and hidden widths ``n_1 .. n_{L-1}``. The diagonal NTK entry is

    Theta(x, x) = sum_{l=1}^{L} ||delta^l||^2 (||x^{l-1}||^2 + 1) = Theta_W + Theta_b,

and its *dispersion* is ``D = E[Theta^2] / E[Theta]^2`` (second moment over squared mean, ``D >= 1``).

:func:`ntk_moments` gives the first and second moments of ``Theta_W``, ``Theta_b`` for any width profile, exact
(``form="corrected"``, derived here) or as published (``form="published"``, Seleznova & Kutyniok 2022, Thm. 3.2).
One O(L) dynamic programme serves both; it is overflow-free. :func:`check_network` is the one check of the
network description shared by the dispersion subpackage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, check_int, check_real
from .._checks import check_network as check_plain
from .._jit import njit
from ..activations import KIND_LEAKY

__all__ = ["NTKMoments", "check_network", "ntk_moments"]

_LOG2 = math.log(2.0)

# --------------------------------------------------------------------------------------------------------------
# the network the formulas describe
# --------------------------------------------------------------------------------------------------------------


def check_network(net, d=None) -> np.ndarray | None:
    """Refuse a network the dispersion formulas do not describe; return its widths ``n_0, n_1, .., n_{L-1}``.

    Parameters
    ----------
    net : Network
        A ReLU network without biases (``sigma_b2 = 0``: biases initialized to zero, trained) in standard
        parameterization, the setting of Seleznova & Kutyniok 2022 (eqs. (3), (6)). Its ``width`` gives the hidden
        widths ``n_1 .. n_{L-1}`` and must be finite when ``d`` is given.
    d : int, optional
        Input dimension ``n_0 >= 1``. ``None``: only the architecture is checked (infinite-width formulas).

    Returns
    -------
    ndarray or None
        ``(n_0, n_1, .., n_{L-1})`` as floats (length ``L = net.depth``), or ``None`` if ``d`` is ``None``.

    Notes
    -----
    The NTK of these formulas sums the squared gradients of the *standard-parameterization* weights and of the
    biases (eq. (4)); in NTK parameterization each layer would carry the factor ``sigma_w2 / n_{l-1}`` and, at
    ``sigma_b2 = 0``, no bias term, so the formulas do not apply and that parameterization is refused. Every
    moment here also relies on ``sigma_b = 0`` (positive homogeneity of the ReLU network).

    Examples
    --------
    >>> from meanfield import Network
    >>> check_network(Network(3, "relu", 2.0, 0.0, "standard", width=(4, 5)), d=3)
    array([3., 4., 5.])
    >>> check_network(Network(3, "relu", 2.0, 0.0, width=4), d=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: parameterization must be 'standard' (the NTK dispersion formulas are for the standard ...), got 'ntk'
    """
    check_plain(net, what="the NTK dispersion")
    act = net.activation
    if not (act.kind == KIND_LEAKY and act.slope == 0.0):
        raise ValueError(f"activation must be 'relu' (the NTK dispersion formulas are for ReLU networks), got {act!r}")
    if net.sigma_b2 != 0.0:
        raise ValueError(
            f"sigma_b2 must be 0 (biases initialized to zero; the NTK dispersion formulas need sigma_b = 0), "
            f"got {net.sigma_b2!r}"
        )
    if net.parameterization != "standard":
        raise ValueError(
            "parameterization must be 'standard' (the NTK dispersion formulas are for the standard "
            f"parameterization), got {net.parameterization!r}"
        )
    if d is None:
        return None
    n0 = check_int(d, "d")
    if net.width is None:
        raise ValueError("width must be finite (the hidden widths n_1..n_(L-1)); got None (infinite width)")
    return np.array((n0, *net.width), dtype=float)


# --------------------------------------------------------------------------------------------------------------
# overflow-free arithmetic: a value is a mantissa and a base-2 exponent
# --------------------------------------------------------------------------------------------------------------


def _ldexp(m: float, k: float) -> float:
    """``m * 2**k`` with overflow to ``inf`` (never a warning)."""
    if m == 0.0:
        return 0.0
    try:
        return math.ldexp(m, int(k))
    except OverflowError:
        return math.copysign(math.inf, m)


def _log_scaled(m: float, k: float) -> float:
    return math.log(m) + k * _LOG2 if m > 0 else -math.inf


def _add_scaled(terms):
    """Sum of ``m_i * 2**k_i`` (m_i >= 0) as a (mantissa, exponent) pair without overflow."""
    kmax = max(k for m, k in terms if m != 0.0) if any(m != 0.0 for m, _ in terms) else 0
    return sum(_ldexp(m, k - kmax) for m, k in terms), kmax


# --------------------------------------------------------------------------------------------------------------
# finite-width moments: one dynamic programme over layers, two tables of per-layer moments
# --------------------------------------------------------------------------------------------------------------

# factor kinds of one layer q in the product representation of a term of Theta: F = forward ratio
# ||x^q||^2/||x^{q-1}||^2, B = backward ratio, ONE = layer contributes nothing
_F, _B, _ONE = 0, 1, 2
_SELF = -1  # placeholder: the "before layer l" self-transition uses F for a weight term and ONE for a bias term

# state machines (rows: from-state, to-state, factor kind); see ntk_moments Notes
_CORRECTED_TRANS = np.array([[0, 0, _SELF], [0, 1, _B], [0, 2, _ONE], [1, 1, _B], [1, 2, _ONE], [2, 2, _F]], np.int64)
_PUBLISHED_TRANS = np.array([[0, 0, _SELF], [0, 1, _B], [1, 1, _B]], np.int64)


def _corrected_tables(n: np.ndarray, sw2: float):
    """Per-layer moments (layers q = 1..L-1) of the exact scalar law (derived here, :func:`ntk_moments` Notes)."""
    nq, npv = n[1:], n[:-1]
    c, cp = sw2 / nq, sw2 / npv
    e1 = np.stack([cp * nq / 2, c * (nq / 2 - 1), np.ones_like(nq)], axis=1)
    ff = cp * cp * nq * (nq + 5) / 4
    bb = c * c * (nq * nq + nq - 4) / 4
    fb = c * cp * nq * (nq - 1) / 4
    return e1, _second_table(e1, ff, bb, fb)


def _published_tables(n: np.ndarray, sw2: float):
    """Per-layer moments assumed by Seleznova & Kutyniok 2022 (Lemmas A.1, A.2, A.4; eqs. (24), (26))."""
    a = sw2 / 2
    nq, npv = n[1:], n[:-1]
    ratio = nq / npv
    e1 = np.stack([a * ratio, np.full_like(nq, a), np.ones_like(nq)], axis=1)
    ff = a * a * ratio * ratio * (1 + 5 / nq)
    bb = a * a * (1 + 5 / nq)
    fb = a * a * ratio * (1 + 1 / nq)
    return e1, _second_table(e1, ff, bb, fb)


def _second_table(e1, ff, bb, fb):
    e2 = np.empty((e1.shape[0], 3, 3))
    e2[:, _F, _F], e2[:, _B, _B], e2[:, _F, _B], e2[:, _B, _F] = ff, bb, fb, fb
    for k in range(3):
        e2[:, k, _ONE] = e1[:, k]
        e2[:, _ONE, k] = e1[:, k]
    return e2


@njit(cache=True)
def _renorm(arr, exps, idx):
    m = np.max(np.abs(arr))
    if m > 2.0**200 or (0.0 < m < 2.0**-200):
        k = math.frexp(m)[1]
        arr *= 2.0 ** (-k)
        exps[idx] += k


@njit(cache=True)
def _moment_dp(e1, e2, trans, x0sq, nstates):
    """Run the DP; return first-moment state vectors (2, S) and second-moment state matrices (3, S, S) as
    mantissas with base-2 exponents. Term types: 0 = weight term, 1 = bias term; pairs (W,W), (W,b), (b,b)."""
    S = nstates
    self_kind = np.array([_F, _ONE])
    v = np.zeros((2, S))
    v[0, 0] = x0sq
    v[1, 0] = 1.0
    ev = np.zeros(2)
    pairs = np.array([[0, 0], [0, 1], [1, 1]])
    V = np.zeros((3, S, S))
    V[0, 0, 0] = x0sq * x0sq
    V[1, 0, 0] = x0sq
    V[2, 0, 0] = 1.0
    eV = np.zeros(3)
    T = trans.shape[0]
    for q in range(e1.shape[0]):
        for t in range(2):
            w = np.zeros(S)
            for r in range(T):
                e = trans[r, 2] if trans[r, 2] >= 0 else self_kind[t]
                w[trans[r, 1]] += v[t, trans[r, 0]] * e1[q, e]
            v[t] = w
            _renorm(v[t], ev, t)
        for p in range(3):
            t1, t2 = pairs[p, 0], pairs[p, 1]
            W = np.zeros((S, S))
            for r1 in range(T):
                k1 = trans[r1, 2] if trans[r1, 2] >= 0 else self_kind[t1]
                for r2 in range(T):
                    k2 = trans[r2, 2] if trans[r2, 2] >= 0 else self_kind[t2]
                    W[trans[r1, 1], trans[r2, 1]] += V[p, trans[r1, 0], trans[r2, 0]] * e2[q, k1, k2]
            V[p] = W
            _renorm(V[p], eV, p)
    return v, ev, V, eV


@dataclass(frozen=True)
class NTKMoments:
    """First and second moments of the diagonal NTK entry ``Theta(x, x) = Theta_W + Theta_b`` at initialization.

    Moments that exceed the float64 range are ``inf`` (``0.0`` on underflow); their natural logarithms
    (``log_*`` fields) and the dispersion are always finite for valid input.

    Attributes
    ----------
    mean_w, mean_b : float
        ``E[Theta_W]``, ``E[Theta_b]``.
    second_w, second_b, cross_wb : float
        ``E[Theta_W^2]``, ``E[Theta_b^2]``, ``E[Theta_W Theta_b]``.
    mean, second : float
        ``E[Theta]`` and ``E[Theta^2] = E[Theta_W^2] + 2 E[Theta_W Theta_b] + E[Theta_b^2]``.
    dispersion : float
        ``E[Theta^2] / E[Theta]^2``.
    log_mean_w, log_mean_b, log_second_w, log_second_b, log_cross_wb, log_mean, log_second : float
        Natural logarithms of the moments.
    form : str
        ``"corrected"`` (exact) or ``"published"`` (Seleznova & Kutyniok 2022, Thm. 3.2).
    """

    mean_w: float
    mean_b: float
    second_w: float
    second_b: float
    cross_wb: float
    mean: float
    second: float
    dispersion: float
    log_mean_w: float
    log_mean_b: float
    log_second_w: float
    log_second_b: float
    log_cross_wb: float
    log_mean: float
    log_second: float
    form: str

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def ntk_moments(net, d, x0_norm2=1.0, form="corrected") -> NTKMoments:
    """Moments of the diagonal NTK entry of a finite SP ReLU network with zero-initialized biases.

    Parameters
    ----------
    net : Network
        ReLU, ``sigma_b2 = 0``, standard parameterization, finite ``width`` = the hidden widths ``n_1 .. n_{L-1}``
        (the output width is 1); depth ``L = net.depth``; weights ``N(0, sigma_w2 / fan_in)``, ``a = sigma_w2 / 2``
        (see :func:`check_network`).
    d : int
        Input dimension ``n_0``.
    x0_norm2 : float
        Squared input norm ``||x^0||^2 > 0``.
    form : {"corrected", "published"}
        ``"corrected"``: the exact finite-width moments (derived here, see Notes; not in the paper).
        ``"published"``: Seleznova & Kutyniok 2022, Thm. 3.2, eqs. (11)-(15), with the cross term of eq. (13) as
        its proof derives it (see Notes) and the ``O(M^{-3/2})`` terms dropped.

    Returns
    -------
    NTKMoments

    Notes
    -----
    Both forms evaluate ``E[Theta_x Theta_y]`` as a sum over pairs of terms ``||delta^l||^2 ||x^{l-1}||^2``
    (weight) or ``||delta^l||^2`` (bias), each a product of per-layer factors. A term is a walk through a small
    state machine over layers ``q = 1..L-1``; the expectation of a product of two walks factorizes over layers,
    so all ``O(L^2)`` pairs are summed by one O(L) dynamic programme over pairs of states.

    ``"corrected"`` uses the exact scalar law of ``(||x^q||^2, ||delta^q||^2)``, derived here: write
    ``W^{q+1} = (W^{q+1} u) u^T + W^{q+1} P_perp`` with ``u = x^q/||x^q||``. The forward pass after layer ``q``
    sees only ``W^{q+1} u``, so ``W^{q+1} P_perp`` is independent of everything downstream; in
    ``delta^q = D^q W^{q+1,T} delta^{q+1}`` it contributes a Gaussian on the ``K_q - 1`` active directions
    orthogonal to ``u``, and the ``u``-component is ``f(x)/||x^q||`` (Euler identity ``sum_i x^q_i delta^q_i = f``
    for ``sigma_b = 0``). Hence, with ``K_q ~ Bin(n_q, 1/2)``, ``A_q ~ chi2(K_q)``, ``B_q ~ chi2(K_q - 1)``,
    ``C ~ chi2(1)``: ``X_q = (sigma_w2/n_{q-1}) X_{q-1} A_q``, ``f^2 = (sigma_w2/n_{L-1}) X_{L-1} C``,
    ``D_q = f^2/X_q + (sigma_w2/n_q) D_{q+1} B_q``, ``Theta_W = sum_l D_l X_{l-1}``, ``Theta_b = sum_l D_l``.
    States: 0 = before the term's layer, 1 = in its backward segment, 2 = after the ``f^2/X_p`` injection; the
    final readout factor has ``E[C^2] = 3``. Dead layers (``K_q = 0``, probability ``2^{-n_q}``) are ignored, as
    in the paper: the result is exact up to a relative error ``O(L 2^{-min n})`` (negligible for widths >= 20).

    ``"published"`` uses two states (before / after the term's layer) with the per-layer moments of Lemmas A.1,
    A.2 (eqs. (24), (26)) and the same-layer coupling ``(1 + 1/n)`` of Lemma A.4; this reproduces eqs. (11),
    (12), (13), (14), (15) exactly, except that eq. (13) is taken as its proof (Lemma A.5) derives it: the
    printed eq. (13) has ``X(1,L) sum_{l1<l2} r_l1 r_l2 C(l1,l2)`` in its cross term, which lacks the factor 2
    and keeps the ``(1 + 5/n)`` factors of layers ``l1..l2-1``; used instead is
    ``2 sum_{l1<l2} r_l1 r_l2 X(1,l1) C(l1,l2) X(l2,L)`` (the printed form gives ``D < 1``, impossible).
    Eqs. (11), (12), (14) agree with ``"corrected"``; (13) and (15) do not: Lemma A.4 treats the coupling of
    ``||x^p||^2`` and ``||delta^p||^2`` as ``O(M^{-3/2})`` beyond ``1 + 1/n_p``, but the Euler identity above
    makes it ``O(1/n_p)`` in every layer and coherent along the chain, so the published second moments are low
    at finite width (``E[||delta^1||^2 ||x^2||^2]`` of a depth-3 network lacks ``a^4 (n_2/n_0) 8/(n_1 n_2)``)
    and the error does not vanish as ``L, M -> inf`` at fixed ``L/M`` (about 24 % low at ``L/M = 1``,
    ``sigma_w2 = 2``); simulation rejects them, not the corrected form.

    Stabilization: the state vectors are rescaled by powers of two whenever they leave ``[2^-200, 2^200]``;
    the exponents are carried separately, so depth ``1e5`` in the chaotic phase (moments ~ ``1.5^(1e5)``) works
    and the dispersion keeps full precision. The input norm enters the same way: the moments are homogeneous in
    ``||x^0||^2`` (``Theta_W`` of degree 1, ``Theta_b`` of degree 0), so the programme runs at ``||x^0||^2 = 1``
    and ``x0_norm2`` joins the mantissas and exponents; the dispersion is exact at any representable norm
    (``x0_norm2 = 1e200`` as well as ``1e-300``) even where ``E[Theta^2]`` itself is ``inf``.

    Examples
    --------
    >>> from meanfield import Network
    >>> m = ntk_moments(Network(3, "relu", 2.0, 0.0, "standard", width=(4, 5)), d=3)
    >>> [round(v, 12) for v in (m.mean_w, m.mean_b, m.second_w, m.second_b, m.dispersion)]
    [4.0, 3.0, 50.0, 15.5, 2.221088435374]
    >>> net = Network(50, "relu", 2.0, 0.0, "standard", width=100)
    >>> round(ntk_moments(net, 100).dispersion, 10)
    3.9322358272
    >>> round(ntk_moments(net, 100, form="published").dispersion, 10)
    3.6413754981
    >>> big = ntk_moments(Network(10**5, "relu", 3.0, 0.0, "standard", width=10**5), 10**5)
    >>> big.mean, round(big.dispersion, 4)
    (inf, 76.9549)
    """
    n = check_network(net, d)
    if n is None:
        raise ValueError("d must be an integer >= 1 (the input dimension), got None")
    sw2 = net.sigma_w2
    x0sq = check_real(x0_norm2, "x0_norm2", low=0, low_open=True)
    check_choice(form, ("corrected", "published"), "form")
    if form == "corrected":
        e1, e2 = _corrected_tables(n, sw2)
        trans, nstates = _CORRECTED_TRANS, 3
        c_last = sw2 / n[-1]
        fin, extra = np.array([1.0, 1.0, c_last]), 2.0 * c_last * c_last  # E[C] = 1, E[C^2] = 3
    else:
        e1, e2 = _published_tables(n, sw2)
        trans, nstates = _PUBLISHED_TRANS, 2
        fin, extra = np.array([1.0, 1.0]), 0.0
    # the moments are homogeneous in ||x^0||^2 (degree 1 for Theta_W, 0 for Theta_b): run the programme at
    # ||x^0||^2 = 1 and put x0_norm2 = mx 2^kx into the mantissas and the exponents, so no norm overflows
    mx, kx = math.frexp(x0sq)
    v, ev, V, eV = _moment_dp(e1, e2, trans, 1.0, nstates)
    deg_first, deg_second = (1, 0), (2, 1, 0)  # powers of ||x^0||^2 in E[Theta_W], E[Theta_b]; (W,W), (W,b), (b,b)
    first = [(float(fin @ v[t]) * mx ** deg_first[t], float(ev[t]) + kx * deg_first[t]) for t in range(2)]
    second = [
        (float(fin @ V[p] @ fin + extra * V[p, -1, -1]) * mx ** deg_second[p], float(eV[p]) + kx * deg_second[p])
        for p in range(3)
    ]
    (mww, kww), (mwb, kwb), (mbb, kbb) = second
    mean = _add_scaled(first)
    sec = _add_scaled([(mww, kww), (2.0 * mwb, kwb), (mbb, kbb)])
    scaled = {  # (mantissa, base-2 exponent) of each moment
        "mean_w": first[0],
        "mean_b": first[1],
        "second_w": second[0],
        "second_b": second[2],
        "cross_wb": second[1],
        "mean": mean,
        "second": sec,
    }
    return NTKMoments(
        **{k: _ldexp(*v) for k, v in scaled.items()},
        **{f"log_{k}": _log_scaled(*v) for k, v in scaled.items()},
        dispersion=_ldexp(sec[0] / mean[0] ** 2, sec[1] - 2 * mean[1]),
        form=form,
    )
