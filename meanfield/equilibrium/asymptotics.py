r"""Asymptotic forms for ReLU at the edge of chaos (2, 0) and the constant of :math:`l^* \simeq C L^{3/5}`.

Lou et al. 2022 (Thms. 1-2, Cor. 1) state only orders, :math:`1 - c_l = \Theta(l^{-2})`,
:math:`\mathcal B_{l,L} = \Theta((l/L)^3)` and :math:`l^* = \Theta(L^{3/5})`. The constants below are derived here
from the expansion of the ReLU correlation map near :math:`c = 1` (each docstring gives its derivation) and checked
against the exact recursion in ``tests/test_equilibrium.py``.
"""

from __future__ import annotations

import math

import numpy as np

from .._checks import check_choice, check_real, finite_array
from .information import FORMS, FORWARD_FACTOR

__all__ = [
    "peak_layer_constant",
    "relu_eoc_inverse_root",
    "relu_eoc_one_minus_c",
    "relu_eoc_slope",
    "residual_peak_layer_constant",
]

#: scores of the peak layer: the crossing of log F and log B, or the maximum of their harmonic mean
SCORES = ("crossing", "harmonic")

#: factor m of the asymptote l* ~ (k m)^(1/5) L^(3/5) per score (see :func:`peak_layer_constant`)
SCORE_FACTOR = {"crossing": 1.0, "harmonic": 1.5}

_NINE_PI2_HALF = 4.5 * math.pi**2


def relu_eoc_one_minus_c(l):
    r"""Asymptotic decorrelation :math:`1 - c_l` of ReLU at the edge of chaos (2, 0).

    Parameters
    ----------
    l : array_like
        Layer indices, ``>= 1`` (meaningful for large l).

    Returns
    -------
    ndarray
        :math:`\frac{9\pi^2}{2l^2} - \frac{27\pi^2}{2}\frac{\log l}{l^3}`.

    Notes
    -----
    Derived here: with :math:`s_l = 1 - c_l`, the ReLU map (Lou et al. 2022, eq. (3)) gives
    :math:`s_{l+1} = s_l - a s_l^{3/2} - \dots` with :math:`a = 2\sqrt2/(3\pi)`; squaring the inverse of
    :func:`relu_eoc_inverse_root` gives this form. It sharpens the order :math:`\Theta(l^{-2})` of Lou et al. 2022,
    Thm. 1 (proved there after Hayou et al. 2020). The neglected term is :math:`O(l^{-3})` and depends on the input
    correlation; the relative error falls only like :math:`1/l`. Use :func:`relu_eoc_inverse_root` for a form whose
    remainder is :math:`o(1)`.

    Examples
    --------
    >>> round(float(relu_eoc_one_minus_c(1e6) * 1e12), 4)
    44.4114
    """
    l = finite_array(l, "l", low=1)
    return _NINE_PI2_HALF / l**2 - 13.5 * math.pi**2 * np.log(l) / l**3


def relu_eoc_slope(l):
    r"""Asymptotic slope :math:`g'(c_l)` of the ReLU correlation map at the edge of chaos (2, 0).

    Parameters
    ----------
    l : array_like
        Layer indices, ``>= 1``.

    Returns
    -------
    ndarray
        :math:`1 - \frac{3}{l} + \frac{9}{2}\frac{\log l}{l^2}`.

    Notes
    -----
    Lou et al. 2022, proof of Thm. 2 (App. B.2): :math:`g'(c_l) = 1 - 3/l + \kappa\log l/l^2 + O(l^{-2})` with a
    constant :math:`\kappa > 0` that the paper leaves open. :math:`\kappa = 9/2` is derived here: with
    :math:`g'(c) = 1 - \theta/\pi`, :math:`\theta = \arccos c \simeq \sqrt{2(1 - c)}` and
    :func:`relu_eoc_one_minus_c`, :math:`\theta_l/\pi = 3/l - \frac92\log l/l^2 + O(l^{-2})`. The remainder
    :math:`O(l^{-2})` depends on the input correlation.

    Examples
    --------
    >>> round(float(relu_eoc_slope(100.0)), 6)
    0.972072
    """
    l = finite_array(l, "l", low=1)
    return 1.0 - 3.0 / l + 4.5 * np.log(l) / l**2


def relu_eoc_inverse_root(l, offset=0.0):
    r"""Asymptotic :math:`t_l = (1 - c_l)^{-1/2}` of ReLU at the edge of chaos (2, 0).

    Parameters
    ----------
    l : array_like
        Layer indices, ``>= 1``.
    offset : float
        The correlation-dependent constant :math:`C(\rho)` (e.g. 0.50870 for :math:`c_1 = 0`).

    Returns
    -------
    ndarray
        :math:`\frac{\sqrt2}{3\pi}\,l + \frac{\log l}{\sqrt2\,\pi} + C(\rho)`.

    Notes
    -----
    Derived here: :math:`s_{l+1} = s_l - a s_l^{3/2} - O(s_l^{5/2})` with :math:`a = 2\sqrt2/(3\pi)` gives
    :math:`t_{l+1} = t_l + a/2 + 3a^2/(8t_l) + O(t_l^{-2})`, and summing, :math:`t_l = \frac a2 l +
    \frac{3a}{4}\log l + C(\rho) + o(1)`. So :math:`t_l - ` (this with ``offset = 0``) converges to
    :math:`C(\rho)`. This is the sharpest of the three forms and the one the tests check.

    Examples
    --------
    >>> round(float(relu_eoc_inverse_root(1e5, offset=0.5087)), 2)
    15008.37
    """
    l = finite_array(l, "l", low=1)
    return math.sqrt(2.0) / (3.0 * math.pi) * l + np.log(l) / (math.sqrt(2.0) * math.pi) + check_real(offset, "offset")


def peak_layer_constant(form="corrected", score="crossing"):
    r"""Prefactor :math:`C` of the asymptotic peak layer :math:`l^* \simeq C L^{3/5}` (ReLU at (2, 0)).

    Parameters
    ----------
    form : {"corrected", "published"}
        Normalization of the forward loss (see :func:`meanfield.equilibrium.information_loss`).
    score : {"crossing", "harmonic"}
        Criterion of :func:`meanfield.equilibrium.peak_layer`.

    Returns
    -------
    float
        :math:`(k m)^{1/5}` with :math:`k = \frac{9\pi^2}{2}` (corrected) or :math:`\frac{9\pi^2}{4}` (published)
        and :math:`m = 1` (crossing) or :math:`3/2` (harmonic).

    Notes
    -----
    Derived here. Lou et al. 2022, Cor. 1 gives only :math:`l^* = \Theta(L^{3/5})`, and its Fig. 3 fits the
    intercept of :math:`\log l = \frac35\log L + C` to trained networks. With :math:`\mathcal F_l \simeq k/l^2`
    (:func:`relu_eoc_one_minus_c`) and :math:`\mathcal B_{l,L}\simeq(l/L)^3` (from :func:`relu_eoc_slope`: the
    product of :math:`1 - 3/k` over :math:`k = l..L-1`), the crossing :math:`k/l^2 = (l/L)^3` gives
    :math:`l = k^{1/5}L^{3/5}`; the maximum of the harmonic mean, :math:`\frac{d}{dl}(l^2/k + L^3/l^3) = 0`, gives
    :math:`l = (3k/2)^{1/5}L^{3/5}`. The limit does not depend on :math:`\epsilon`.

    Examples
    --------
    >>> round(peak_layer_constant(), 5), round(peak_layer_constant("published"), 5)
    (2.13551, 1.85907)
    """
    check_choice(form, FORMS, "form")
    check_choice(score, SCORES, "score")
    return (_NINE_PI2_HALF * FORWARD_FACTOR[form] * SCORE_FACTOR[score]) ** 0.2


def residual_peak_layer_constant(alpha, form="corrected", score="crossing"):
    r"""Prefactor :math:`C` of :math:`l^* \simeq C L^{3/5}` for residual ReLU networks with a fixed branch multiplier.

    Parameters
    ----------
    alpha : float
        :math:`\alpha = \beta^2\sigma_w^2/2 > 0` (``beta`` the branch multiplier, no bias).
    form, score : str
        As in :func:`peak_layer_constant`.

    Returns
    -------
    float
        :math:`((1 + \alpha)/\alpha)^{2/5}` times :func:`peak_layer_constant` (2.81783 at :math:`\beta = 1`,
        :math:`\sigma_w^2 = 2`).

    Notes
    -----
    Derived here. A residual ReLU block at :math:`\sigma_b = 0` maps :math:`s = 1 - c` to
    :math:`s' = s - \frac{\alpha}{1+\alpha}\frac{h(\theta)}{\pi} = s - \frac{\alpha}{1+\alpha}a s^{3/2} + \dots`
    (:func:`meanfield.equilibrium.curves.layer_update` with :math:`\mathbb E\phi^2 = q/2`), so
    :math:`s_l \simeq (\frac{1+\alpha}{\alpha})^2\frac{9\pi^2}{2l^2}` (:func:`relu_eoc_one_minus_c` slowed by
    :math:`\alpha/(1+\alpha)`), and its backward factor is :math:`(1 + \alpha(1 - \theta/\pi))/(1 + \alpha) =
    1 - \frac{\alpha}{1+\alpha}\frac{\theta_l}{\pi} = 1 - 3/l + \dots` with :math:`\theta_l \simeq \sqrt{2s_l}`:
    the same :math:`(l/L)^3` backward loss as the plain network. The forward constant :math:`k` grows by
    :math:`((1+\alpha)/\alpha)^2`, and the crossing :math:`k/l^2 = (l/L)^3` moves by its fifth root. A fixed
    :math:`\beta` keeps the 3/5 law (Lou et al. 2022, Cor. 1, for the plain network); :math:`\beta = 1/\sqrt L`
    makes :math:`\alpha \to 0` and does not.

    Examples
    --------
    >>> round(residual_peak_layer_constant(1.0), 5)
    2.81783
    """
    a = check_real(alpha, "alpha", low=0.0, low_open=True)
    return ((1.0 + a) / a) ** 0.4 * peak_layer_constant(form, score)
