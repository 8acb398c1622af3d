r"""The one-hidden-layer quadratic network :math:`f(x) = a^\top(Wx)^2`: early-time C-NFC theory.

Beaglehole et al. 2024, sec. 4.2 and Apps. E-F predict the early-time centered NFC of this network by free
probability (App. E) and give the expected second time derivatives of the centered NFM and AGOP (Prop. 8, App. F).
Both are implemented here in corrected forms; the printed forms stay available as ``form="published"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, check_int, finite_array, real_array

FORMS = ("corrected", "published")


def quadratic_r_moments(W, a, order: int = 4) -> np.ndarray:
    r"""Moments :math:`r_j = \tau(R^j) = \frac1d\operatorname{tr}R^j` of :math:`R = W^\top\mathrm{diag}(a)^2W`.

    Parameters
    ----------
    W : array_like, shape (k, d)
        First-layer weights of :math:`f(x) = a^\top(Wx)^2`.
    a : array_like, shape (k,)
        Readout weights.
    order : int
        Highest moment (default 4, what :func:`quadratic_free_cnfc` needs).

    Returns
    -------
    ndarray, shape (order,)
        :math:`r_1, \dots, r_{\rm order}`.

    Notes
    -----
    :math:`R` is Beaglehole et al. 2024, eq. (14). For :math:`a\sim\mathcal N(0, I)`,
    :math:`W\sim\mathcal N(0, 1/k)` (derived here): :math:`\mathbb E r_1 = 1`,
    :math:`\mathbb E r_2 = (k-1)/k + 3(d+2)/k`. Use the sample moments of the actual network (heavy :math:`a^4`
    tail).

    Examples
    --------
    >>> quadratic_r_moments([[1.0, 0.0], [0.0, 2.0]], [1.0, 1.0]).tolist()
    [2.5, 8.5, 32.5, 128.5]
    """
    W = finite_array(W, "W")
    a = finite_array(a, "a")
    if W.ndim != 2 or a.shape != (W.shape[0],):
        raise ValueError(f"W must be (k, d) and a (k,), got {W.shape} and {a.shape}")
    order = check_int(order, "order")
    R = W.T @ (a[:, None] ** 2 * W)
    ev = np.linalg.eigvalsh(R)
    return np.array([np.mean(ev**j) for j in range(1, order + 1)])


def _quadratic_data(X, y):
    X = real_array(X, "X")
    y = real_array(y, "y")
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must contain only finite numbers")
    A1 = X.T @ (y[:, None] * X)
    return A1, X.T @ X


def quadratic_free_cnfc(X, y, r_moments, form: str = "corrected") -> float:
    r"""Free-probability prediction of the early-time C-NFC of :math:`f(x) = a^\top(Wx)^2`.

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
        Labels (the loss derivative at :math:`f_0 = 0`).
    r_moments : array_like, shape (4,)
        :math:`r_j = \tau(R^j)`, ``j = 1..4`` (:func:`quadratic_r_moments` of a network, or their expectations).
    form : {"corrected", "published"}
        ``"corrected"`` (default): Beaglehole et al. 2024, eq. (26) with its last term corrected to
        :math:`\tau(B)^2\tau(\bar A^2)r_2^2`. ``"published"``: eq. (26) as printed, whose last term
        :math:`\tau(\bar A)^2\tau(B^2)r_2^2` is identically zero.

    Returns
    -------
    float
        :math:`\text{num}/\sqrt{\text{den}_1\text{den}_2}`.

    Notes
    -----
    Beaglehole et al. 2024, App. E. With :math:`A_1 = X^\top YX`, :math:`A = A_1^2`, :math:`B = X^\top X`,
    :math:`\tau = \frac1d\operatorname{tr}`, :math:`\bar M = M - \tau(M)I`, :math:`a = \tau(A)`, :math:`b = \tau(B)`,
    and :math:`R` free from :math:`\{A, B\}` (its Assumptions 5-7):

    .. math::
        \text{num} &= a^2b\,r_3 + 2a\,r_1r_2\,\tau(\bar A\bar B) + b\,r_1r_2\,\tau(\bar A^2)
        + r_1^3\,\tau(\bar A^2\bar B)\quad\text{(eq. (18))},\\
        \text{den}_1 &= \tau(A^2)r_1^2 + a^2r_2 - a^2r_1^2 \quad\text{(eq. (20))},\\
        \text{den}_2 &= r_1^4\tau((\bar A\bar B)^2) + 2r_1^2(r_2-r_1^2)\tau(\bar A\bar B)^2
        + 2r_1^2r_2\,(b\,\tau(\bar A^2\bar B) + a\,\tau(\bar A\bar B^2)) + 4ab\,r_1r_3\,\tau(\bar A\bar B)
        + a^2b^2r_4 + a^2r_2^2\tau(\bar B^2) + b^2r_2^2\tau(\bar A^2)\quad\text{(eq. (26), corrected)}.

    These approximate :math:`\tau(ARARBR)`, :math:`\tau(ARAR)`, :math:`\tau(ARBRARBR)`, the exact early-time
    C-NFC of the quadratic net with :math:`\mathcal P\propto XRX^\top` (App. E, eq. (8), read with the exponents
    of eq. (6)). The published last term of eq. (26) contains :math:`\tau(\bar A) = 0`; the last term of its own
    eq. (25), :math:`\tau(B)^2\tau(R^2\bar AR^2\bar A)`, gives :math:`b^2r_2^2\tau(\bar A^2)`. With the published
    term the prediction overshoots simulated networks by 0.10 on average on isotropic data and can exceed 1; the
    corrected one is within 0.02 (tests/test_nfa.py).

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield.nfa import cnfc_early_kernels
    >>> X = np.random.default_rng(0).standard_normal((30, 12)); y = np.sign(X[:, 0])
    >>> r = [1.0, 1.0, 1.0, 1.0]          # R = I is free from everything: the formula is exact
    >>> exact = cnfc_early_kernels(X @ X.T, X @ X.T, y)
    >>> bool(abs(quadratic_free_cnfc(X, y, r) - exact) < 1e-12), round(exact, 4)
    (True, 0.9647)
    """
    check_choice(form, FORMS, "form")
    r = np.asarray(r_moments, dtype=np.float64)
    if r.shape != (4,) or not np.all(np.isfinite(r)) or r[0] <= 0:
        raise ValueError(f"r_moments must be 4 finite moments tau(R^j) with r_1 > 0, got {r_moments!r}")
    r1, r2, r3, r4 = r
    A1, B = _quadratic_data(X, y)
    d = B.shape[0]
    A = A1 @ A1
    tau = lambda M: np.trace(M) / d  # noqa: E731
    a, b = tau(A), tau(B)
    Ab, Bb = A - a * np.eye(d), B - b * np.eye(d)
    AB = Ab @ Bb
    t_AB, t_A2, t_B2 = tau(AB), tau(Ab @ Ab), tau(Bb @ Bb)
    t_A2B, t_AB2, t_ABAB = tau(Ab @ AB), tau(AB @ Bb), tau(AB @ AB)
    num = a * a * b * r3 + 2 * a * r1 * r2 * t_AB + b * r1 * r2 * t_A2 + r1**3 * t_A2B
    den1 = tau(A @ A) * r1**2 + a * a * r2 - a * a * r1**2
    last = b * b * r2 * r2 * t_A2 if form == "corrected" else 0.0  # printed: tau(A-bar)^2 tau(B^2) r2^2 = 0
    den2 = (
        r1**4 * t_ABAB
        + 2 * r1**2 * (r2 - r1**2) * t_AB**2
        + 2 * r1**2 * r2 * (b * t_A2B + a * t_AB2)
        + 4 * a * b * r1 * r3 * t_AB
        + a * a * b * b * r4
        + a * a * r2 * r2 * t_B2
        + last
    )
    if den1 <= 0 or den2 <= 0:
        return float("nan")
    return float(num / np.sqrt(den1 * den2))


@dataclass(frozen=True)
class SecondDerivatives:
    """Result of :func:`quadratic_expected_second_derivatives`: expected second time derivatives (up to the
    common factor 2) of the centered NFM and of the centered AGOP, each ``(d, d)``."""

    nfm: np.ndarray
    agop: np.ndarray


def quadratic_expected_second_derivatives(X, y, k: int, form: str = "corrected") -> SecondDerivatives:
    r"""Expected second time derivatives of the centered NFM and AGOP of :math:`f = a^\top(Wx)^2`.

    Parameters
    ----------
    X : array_like, shape (n, d)
    y : array_like, shape (n,)
    k : int
        Width; :math:`a\sim\mathcal N(0, I_k)`, rows of :math:`W\sim\mathcal N(0, I_d/k)`.
    form : {"corrected", "published"}
        ``"corrected"`` (default, derived here) or Beaglehole et al. 2024, Prop. 8 as printed.

    Returns
    -------
    SecondDerivatives
        ``nfm`` :math:`=\mathbb E[X^\top Y\mathcal PYX]` and ``agop`` :math:`=\mathbb E[X^\top Y\mathcal P^2YX]`
        for :math:`\mathcal P = XRX^\top`, :math:`R = W^\top\operatorname{diag}(a^2)W` (the PTK Gram without its
        constant factor 4), :math:`Y = \operatorname{diag}(y)`.

    Notes
    -----
    With :math:`A_1 = X^\top YX` and :math:`B = X^\top X`: :math:`\mathbb E[R] = I_d`, so the NFM part is
    :math:`A_1^2` (as printed), and by Wick's theorem including the :math:`s_1\neq s_2` terms and the
    :math:`1/k^2` of :math:`\operatorname{Var}W`,

    .. math:: \mathbb E[RBR] = (1+\tfrac5k)B + \tfrac3k\operatorname{tr}(B)I_d,\qquad
              \mathbb E[X^\top Y\mathcal P^2YX] = (1+\tfrac5k)A_1BA_1 + \tfrac3k\operatorname{tr}(B)A_1^2 .

    The published Prop. 8 (App. F) prints :math:`3\operatorname{tr}(B)A_1^2 + 6A_1BA_1`: its Wick computation keeps
    only the :math:`s_1 = s_2` terms, drops the :math:`1/k^2` of :math:`\operatorname{Var}W`, and pairs
    :math:`W_{s,p_2}` with itself where :math:`W_{s,q_2}` is meant. Monte Carlo over :math:`5\times10^4` networks
    agrees with the corrected form (:math:`|z|\le2.3`) and rejects the printed one (:math:`|z|\ge148`,
    tests/test_nfa.py).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.eye(2); y = np.array([1.0, -1.0])
    >>> e = quadratic_expected_second_derivatives(X, y, k=5)
    >>> e.nfm.tolist(), e.agop.tolist()       # (1 + 5/5) * 1 + (3/5) * 2 = 3.2
    ([[1.0, 0.0], [0.0, 1.0]], [[3.2, 0.0], [0.0, 3.2]])
    """
    check_choice(form, FORMS, "form")
    k = check_int(k, "k")
    A1, B = _quadratic_data(X, y)
    A1sq = A1 @ A1
    ABA = A1 @ B @ A1
    trB = np.trace(B)
    if form == "corrected":
        return SecondDerivatives(nfm=A1sq, agop=(1 + 5 / k) * ABA + (3 / k) * trB * A1sq)
    return SecondDerivatives(nfm=A1sq, agop=3 * trB * A1sq + 6 * ABA)
