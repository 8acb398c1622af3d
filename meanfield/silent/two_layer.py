"""Silent alignment in two-layer linear networks: closed forms for the kernel and loss dynamics.

Atanasov et al. 2022 show that networks trained from small initialization on whitened data align their neural
tangent kernel (NTK) with the task while the kernel is still small, and then grow it only in scale: the trained
network is a kernel machine with its *final* NTK. This module holds the two-layer linear theory (their sec. 3 and
App. B) as pure functions; several published formulas are corrected (see each function's Notes).

Conventions: ``P`` inputs ``x in R^D``, column-centred and whitened so that ``X^T X / P = I_D``; teacher
``y = s beta . x`` with a unit vector ``beta``; loss ``L = 1/(2P) sum (f - y)^2``; gradient flow with unit rate, so
time ``t`` = (GD learning rate) x (steps). The NTK of a linear network is ``K(x, x') = x^T M x'``; "alignment" is
the uncentred kernel-target alignment of Atanasov et al. 2022, sec. 2, ``y^T K y / (|K|_F |y|^2)``, which for
whitened data equals ``beta^T M beta / |M|_F`` exactly. Network ``f = a^T W x`` with ``a_i ~ N(0, sigma^2/N)``,
``W_ij ~ N(0, sigma^2/D)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_choice, check_int, check_real, finite_array
from ..alignment.measures import kta
from .data import unit_vector

FORMS = ("corrected", "published")


@dataclass(frozen=True)
class OrderParameters:
    """Order parameters of a two-layer linear network: ``q = beta^T M beta / 2`` (the kernel along the task) and
    ``r = beta^T W^T a`` (the end-to-end weight along the task); floats or arrays over times."""

    q: float | np.ndarray
    r: float | np.ndarray


@dataclass(frozen=True)
class AlignmentLimits:
    """Initial and final NTK-target alignment of a linear network on whitened data (:func:`alignment_limits`)."""

    A0: float
    A_inf: float


def two_layer_ntk_matrix(a, W):
    """NTK matrix ``M = W^T W + |a|^2 I`` of ``f = a^T W x``, so that ``K(x, x') = x^T M x'``.

    Parameters
    ----------
    a : array_like, shape (N,)
        Readout weights.
    W : array_like, shape (N, D)
        First-layer weights.

    Returns
    -------
    ndarray, shape (D, D)

    Notes
    -----
    Atanasov et al. 2022, eq. (5): ``K = x^T W^T W x' + |a|^2 x^T x'`` (the two terms are the ``a`` and ``W``
    gradients).

    Examples
    --------
    >>> two_layer_ntk_matrix([1.0], [[1.0, 0.0]]).tolist()
    [[2.0, 0.0], [0.0, 1.0]]
    """
    a = finite_array(a, "a", ndim=(1,))
    W = finite_array(W, "W", ndim=(2,))
    if W.shape[0] != a.size:
        raise ValueError(f"W must have N = {a.size} rows to match a, got shape {W.shape}")
    return W.T @ W + (a @ a) * np.eye(W.shape[1])


def order_parameters(a, W, beta) -> OrderParameters:
    """Order parameters ``q = beta^T M beta / 2`` and ``r = beta^T W^T a`` of a two-layer linear network.

    Parameters
    ----------
    a : array_like, shape (N,)
    W : array_like, shape (N, D)
    beta : array_like, shape (D,)
        Task direction (normalized internally).

    Returns
    -------
    OrderParameters
        ``q`` and ``r`` as floats.

    Notes
    -----
    Atanasov et al. 2022, App. B.1: ``q = (|a|^2 + |W beta|^2) / 2`` measures the kernel along the task,
    ``r`` is the network's end-to-end weight along the task (``f = r beta . x`` on the task direction).
    ``q >= |r|`` always (AM-GM and Cauchy-Schwarz).

    Examples
    --------
    >>> order_parameters([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [1.0, 0.0])
    OrderParameters(q=1.0, r=1.0)
    """
    a = finite_array(a, "a", ndim=(1,))
    W = finite_array(W, "W", ndim=(2,))
    b = unit_vector(beta)
    Wb = W @ b
    return OrderParameters(q=float(0.5 * (a @ a + Wb @ Wb)), r=float(Wb @ a))


def expected_q0(sigma, N, D):
    """Mean initial order parameter ``<q_0> = sigma^2 (1 + N/D) / 2`` of the two-layer network.

    Parameters
    ----------
    sigma : float
        Initialization scale ``sigma > 0`` (``a_i ~ N(0, sigma^2/N)``, ``W_ij ~ N(0, sigma^2/D)``).
    N, D : int
        Hidden width and input dimension.

    Returns
    -------
    float

    Notes
    -----
    Atanasov et al. 2022, eq. (17), exact for Gaussian initialization: ``<q_0> = sigma^2/2 (1 + N/D)``, ``<r_0> = 0``,
    ``<r_0^2> = sigma^4 / D``. The phase-I/II solutions use the measured ``q_0`` (and ``r_0``) of a given draw.

    Examples
    --------
    >>> round(expected_q0(0.1, 50, 30), 12)
    0.013333333333
    """
    sigma = check_real(sigma, "sigma", low=0.0, low_open=True)
    return 0.5 * sigma**2 * (1.0 + check_int(N, "N", 1) / check_int(D, "D", 1))


def _check_qr0(s, q0, r0):
    s = check_real(s, "s", low=0.0, low_open=True)
    q0 = check_real(q0, "q0", low=0.0, low_open=True)
    r0 = check_real(r0, "r0")
    if abs(r0) > q0 * (1 + 1e-12) or q0 + r0 <= 0:
        raise ValueError(f"r0 must satisfy |r0| <= q0 and q0 + r0 > 0, got q0={q0!r}, r0={r0!r}")
    return s, q0, r0


def two_layer_qr(t, s, q0, r0=0.0) -> OrderParameters:
    """Whole-trajectory order parameters ``q(t)``, ``r(t)`` of a two-layer linear network on whitened data.

    Parameters
    ----------
    t : array_like
        Times ``t >= 0`` (learning rate x steps).
    s : float
        Target scale ``s > 0``.
    q0, r0 : float
        Initial order parameters (:func:`order_parameters` of the initial weights; ``|r0| <= q0``).

    Returns
    -------
    OrderParameters
        ``q`` and ``r``, arrays of the shape of ``t``.

    Notes
    -----
    Derived here, matching phase I (Atanasov et al. 2022, eq. (16): ``q +- r ~ e^{+-2st}``) to the phase-II
    sigmoid of Saxe et al. 2014 (Atanasov et al. 2022, App. B.3) with ``c_0 = (q_0 + r_0)/2``:

    ``q(t) = s [(q0+r0) e^{2st} + (q0-r0) e^{-2st}] / [(q0+r0)(e^{2st} - 1) + 2s]``,
    ``r(t) = s [(q0+r0) e^{2st} - (q0-r0) e^{-2st}] / [(q0+r0)(e^{2st} - 1) + 2s]``.

    For ``r0 = 0`` these are exactly Atanasov et al. 2022, eqs. (27)-(28). Keeping ``r0`` matters: a typical draw
    has ``|r0| ~ 0.2 q0`` (``<r0^2> = sigma^4/D``), and dropping it shifts the sigmoid (the ``r0 = 0`` forms miss
    gradient flow by more than 5% in tests/test_silent.py, these by ``O(q0)``). For ``q0 = r0`` (balanced and
    aligned start) ``q = r`` is the exact solution of Saxe et al. 2014. Valid to ``O(sigma^2)``. Evaluated after
    dividing by ``e^{2st}`` so that large ``t`` does not overflow.

    Examples
    --------
    >>> qr = two_layer_qr([0.0, 50.0], 1.0, 1e-4)
    >>> [round(float(v), 12) for v in (*qr.q, *qr.r)]
    [0.0001, 1.0, 0.0, 1.0]
    """
    t = finite_array(t, "t", low=0.0)
    s, q0, r0 = _check_qr0(s, q0, r0)
    em = np.exp(-2.0 * s * t)
    den = (q0 + r0) * (1.0 - em) + 2.0 * s * em
    grow, decay = (q0 + r0), (q0 - r0) * em * em
    return OrderParameters(q=s * (grow + decay) / den, r=s * (grow - decay) / den)


def two_layer_loss(t, s, q0, r0=0.0):
    """Training loss ``L(t) = (s - r(t))^2 / 2`` of the two-layer linear network on whitened data.

    Parameters
    ----------
    t : array_like
        Times ``t >= 0``.
    s, q0, r0 : float
        As in :func:`two_layer_qr`.

    Returns
    -------
    ndarray
        The loss at each time, shaped like ``t``.

    Notes
    -----
    With ``X^T X / P = I`` the loss is exactly ``|W^T a - s beta|^2 / 2``; its component along ``beta`` is
    ``(s - r)^2 / 2`` and the orthogonal component stays ``O(sigma^4)`` (it grows only like ``e^{st}``).

    Examples
    --------
    >>> float(two_layer_loss(0.0, 1.0, 1e-4)[()])
    0.5
    """
    return 0.5 * (s - two_layer_qr(t, s, q0, r0).r) ** 2


def half_loss_time(s, q0, r0=0.0, form="corrected"):
    """Time at which the two-layer loss falls to half of ``s^2/2``.

    Parameters
    ----------
    s, q0, r0 : float
        As in :func:`two_layer_qr`.
    form : {"corrected", "published"}
        ``"corrected"``: the closed form below. ``"published"``: the phase-II onset ``log(s / q0) / s`` of
        Atanasov et al. 2022, secs. 3.1 and 3.1.2 (with ``u_0^2 = q_0``), kept for comparison; it is too large by a
        factor of about 2.

    Returns
    -------
    float

    Notes
    -----
    Solve ``r(t) = s (1 - 2^{-1/2})`` with :func:`two_layer_qr`, neglecting the decaying ``e^{-2st}`` mode
    (relative error ``O((q0/s)^2)``; derived here):

    ``t_1/2 = log[(sqrt(2) - 1)(2s/(q0 + r0) - 1)] / (2s)  ~  log(2 (sqrt(2) - 1) s / q0) / (2s)``.

    Atanasov et al. 2022 state the onset of phase II as ``t ~ log(s sigma^{-2}) / s`` (sec. 3.1; sec. 3.1.2:
    "``e^{st} ~ s/u_0^2``"); the sigmoid of Saxe et al. 2014 that they quote (App. B.3) crosses ``c = s/2`` at
    ``e^{2st} = s/c_0 - 1``, so the correct prefactor is ``1/(2s)`` (their Fig. 2 caption's
    ``t_2 = log(s sigma^{-2})/2`` is right for ``s = 1``). Since ``q0 ~ sigma^2``, the half-loss time grows by
    ``ln(10)/s`` per decade of ``1/sigma`` (GD: 2.308 at ``s = 1``, tests/test_silent.py), while the alignment time
    does not move (:func:`alignment_time`).

    Examples
    --------
    >>> round(half_loss_time(1.0, 1.5e-6), 4), round(half_loss_time(1.0, 1.5e-6, r0=-0.3e-6), 4)
    (6.6109, 6.7225)
    """
    s, q0, r0 = _check_qr0(s, q0, r0)
    check_choice(form, FORMS, "form")
    if form == "published":
        return float(np.log(s / q0) / s)
    arg = (np.sqrt(2.0) - 1.0) * (2.0 * s / (q0 + r0) - 1.0)
    if arg <= 1.0:
        raise ValueError(
            f"half_loss_time needs a small initialization, q0 + r0 < 2s/(2 + sqrt(2)), got q0={q0}, r0={r0}"
        )
    return float(np.log(arg) / (2.0 * s))


def matrix_alignment(M, beta):
    """Kernel-target alignment of a linear kernel ``x^T M x'`` with a linear target on whitened data.

    Parameters
    ----------
    M : array_like, shape (D, D)
        Symmetric kernel matrix.
    beta : array_like, shape (D,)
        Target direction (normalized internally).

    Returns
    -------
    float
        ``beta^T M beta / |M|_F``.

    Notes
    -----
    For ``K = X M X^T`` and ``y = s X beta`` with ``X^T X = P I``: ``y^T K y / (|K|_F |y|^2) =
    beta^T M beta / |M|_F`` exactly; the left side is the alignment of Atanasov et al. 2022, sec. 2 (an
    *uncentred* KTA, although they cite Cortes et al. 2012, who center), and the right side is
    :func:`meanfield.alignment.kta` of ``M`` and ``beta beta^T`` (``|beta beta^T|_F = 1``).

    Examples
    --------
    >>> round(matrix_alignment(np.eye(4), [1.0, 0, 0, 0]), 6)
    0.5
    """
    M = finite_array(M, "M", ndim=(2,))
    b = unit_vector(beta)
    if M.shape != (b.size, b.size):
        raise ValueError(f"M must have shape ({b.size}, {b.size}) to match beta, got {M.shape}")
    return float(kta(M, np.outer(b, b)))


def isotropic_alignment(x, D):
    """Alignment ``A(x)`` of ``M = m0 [I + x (I + beta beta^T)]`` with the task, for an isotropic ``M_0``.

    Parameters
    ----------
    x : array_like
        Kernel growth in units of the initial kernel, ``x = (q - q0)/m0 >= 0``; in phase I (``r0 = 0``)
        ``x = (cosh(2st) - 1)/2``.
    D : int
        Input dimension.

    Returns
    -------
    ndarray

    Notes
    -----
    Derived here: ``A(x) = (1 + 2x) / sqrt((1 + 2x)^2 + (D - 1)(1 + x)^2)``, increasing from
    ``A_0 = 1/sqrt(D)`` to ``A_inf = 2/sqrt(D + 3)``.

    Examples
    --------
    >>> float(isotropic_alignment(0.0, 4)[()])
    0.5
    """
    x = finite_array(x, "x")
    if np.any(x < 0):
        raise ValueError("x must be >= 0")
    D = check_int(D, "D", 1)
    return (1 + 2 * x) / np.sqrt((1 + 2 * x) ** 2 + (D - 1) * (1 + x) ** 2)


def alignment_curve(t, M0, beta, s, q0, r0=0.0):
    """Predicted NTK-target alignment ``A(t)`` of a two-layer linear network on whitened data.

    Parameters
    ----------
    t : array_like
        Times ``t >= 0``.
    M0 : array_like, shape (D, D)
        Initial NTK matrix :func:`two_layer_ntk_matrix` ``(a_0, W_0)``.
    beta : array_like, shape (D,)
        Task direction.
    s, q0, r0 : float
        As in :func:`two_layer_qr`.

    Returns
    -------
    ndarray
        ``A(t) = beta^T M(t) beta / |M(t)|_F``, same shape as ``t``.

    Notes
    -----
    Derived here: to ``O(sigma^2)``, ``M(t) = M_0 + (q(t) - q_0)(I + beta beta^T)`` with ``q(t)`` from
    :func:`two_layer_qr` (both ``|a|^2`` and ``|W beta|^2`` grow by ``q - q_0``, and every direction orthogonal to
    ``beta`` by ``q - q_0``: Atanasov et al. 2022, eq. (18), with the factor ``s`` that it omits). Their eq. (19)
    (and eq. (7)) writes ``q_0 cosh(2st)[beta beta^T + I] + M_0``, which double-counts ``M_0`` at ``t = 0``.
    Evaluated without forming ``M(t)``:
    ``|M|_F^2 = |M0|_F^2 + 2 x (tr M0 + beta^T M0 beta) + x^2 (D + 3)``, ``x = q - q0``.

    Examples
    --------
    >>> import numpy as np
    >>> b = np.eye(30)[0]
    >>> A = alignment_curve([0.0, 60.0], 2e-6 * np.eye(30), b, 1.0, 1e-6)
    >>> np.round(A, 4).tolist(), round(2 / 33**0.5, 4)
    ([0.1826, 0.3482], 0.3482)
    """
    M0 = finite_array(M0, "M0", ndim=(2,))
    b = unit_vector(beta)
    D = b.size
    if M0.shape != (D, D):
        raise ValueError(f"M0 must have shape ({D}, {D}) to match beta, got {M0.shape}")
    x = two_layer_qr(t, s, q0, r0).q - q0
    bMb = b @ M0 @ b
    norm2 = np.sum(M0 * M0) + 2 * x * (np.trace(M0) + bMb) + x**2 * (D + 3)
    return (bMb + 2 * x) / np.sqrt(norm2)


def alignment_time(D, s, frac=0.9, M0=None, beta=None, q0=None, r0=0.0):
    """Time for the two-layer NTK alignment to cover a fraction ``frac`` of its rise ``A_0 -> A_inf``.

    Parameters
    ----------
    D : int
        Input dimension.
    s : float
        Target scale ``s > 0``.
    frac : float
        Fraction ``phi`` in ``(0, 1)``.
    M0, beta, q0, r0 : optional
        Give all of ``M0``, ``beta`` and ``q0`` to use the measured initial kernel (:func:`alignment_curve`);
        otherwise ``M_0`` is taken isotropic.

    Returns
    -------
    float

    Notes
    -----
    Isotropic ``M_0`` (derived here): ``A(x_phi) = A_0 + phi (A_inf - A_0)`` has the closed
    form ``x_phi = (k - 1)/(2 - k)`` with ``k = A sqrt(D - 1) / sqrt(1 - A^2)`` (from
    :func:`isotropic_alignment`), and ``t_A = arccosh(1 + 2 x_phi) / (2s)`` -- independent of ``sigma`` and
    ``proportional to 1/s``, while the loss time grows like ``log(1/sigma^2)/(2s)``: silent alignment
    (Atanasov et al. 2022, sec. 3.1). ``D = 30``, ``phi = 0.9``: ``t_A = 1.782/s``.
    With a measured ``M_0``: ``A_0 = A(0)``, ``A_inf = lim A(t)`` from :func:`alignment_curve`, and the crossing
    is found by bisection on ``t`` (``A(t)`` is increasing).

    Examples
    --------
    >>> round(alignment_time(30, 1.0), 4)
    1.7817
    """
    D = check_int(D, "D", 2)
    s = check_real(s, "s", low=0.0, low_open=True)
    frac = check_real(frac, "frac", low=0.0, high=1.0, low_open=True, high_open=True)
    given = [v is not None for v in (M0, beta, q0)]
    if any(given) and not all(given):
        raise ValueError("give all of M0, beta and q0 for a measured initial kernel, or none of them")
    if not all(given):
        A0, Ainf = 1.0 / np.sqrt(D), 2.0 / np.sqrt(D + 3)
        A = A0 + frac * (Ainf - A0)
        k = A * np.sqrt(D - 1) / np.sqrt(1 - A * A)
        x = (k - 1) / (2 - k)
        return float(np.arccosh(1 + 2 * x) / (2 * s))
    curve = lambda tt: alignment_curve(tt, M0, beta, s, q0, r0)  # noqa: E731
    A0 = float(curve(0.0))
    t_end = half_loss_time(s, q0, r0) + 40.0 / s  # q(t_end) = s to float precision
    Ainf = float(curve(t_end))
    target = A0 + frac * (Ainf - A0)
    lo, hi = 0.0, t_end
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if curve(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def alignment_limits(D, L=2, ratio=None) -> AlignmentLimits:
    """Initial and final NTK-target alignment ``(A_0, A_inf)`` of a linear network on whitened data.

    Parameters
    ----------
    D : int
        Input dimension.
    L : int
        Depth (number of weight matrices), ``L >= 2``.
    ratio : float, optional
        Spike-to-bulk ratio ``A/B`` of the final NTK (:func:`deep_linear_ntk_coeffs`); default ``L - 1``
        (equal rates, or the rate-weighted kernel for any rates).

    Returns
    -------
    AlignmentLimits

    Notes
    -----
    ``A_0 = 1/sqrt(D)`` for an isotropic initial kernel. The final kernel is ``prop. to A beta beta^T + B I``
    (Atanasov et al. 2022, eq. (42)), so ``A_inf = (A + B) / sqrt((A + B)^2 + (D - 1) B^2) = L / sqrt(L^2 + D - 1)``
    for ``A/B = L - 1`` (derived here); ``L = 2`` gives ``2/sqrt(D + 3)``, the dashed line of Atanasov et al.
    2022, Figs. 1 and 3. It increases to 1 with depth (their Fig. D.3b).

    Examples
    --------
    >>> lim = alignment_limits(30)
    >>> round(lim.A0, 4), round(lim.A_inf, 4), round(alignment_limits(30, L=3).A_inf, 4)
    (0.1826, 0.3482, 0.4867)
    """
    D = check_int(D, "D", 1)
    L = check_int(L, "L", 2)
    rho = float(L - 1) if ratio is None else check_real(ratio, "ratio", low=0.0)
    return AlignmentLimits(A0=float(1.0 / np.sqrt(D)), A_inf=float((rho + 1) / np.sqrt((rho + 1) ** 2 + D - 1)))


def saxe_mode_times(svals, c0, form="corrected"):
    """Transition times of the singular modes of a two-layer linear network (Saxe et al. 2014; multiple outputs).

    Parameters
    ----------
    svals : array_like
        Teacher singular values ``s_alpha > 0``.
    c0 : float or array_like
        Initial mode strengths ``c_0 > 0`` (``~ q_0``), broadcast against ``svals``.
    form : {"corrected", "published"}
        ``"corrected"``: exact time of ``c_alpha = s_alpha/2``. ``"published"``: Atanasov et al. 2022's
        ``t_alpha = log(s_alpha / c_0) / s_alpha`` (sec. 4.2), kept for comparison.

    Returns
    -------
    ndarray

    Notes
    -----
    Each mode follows the sigmoid ``c(t) = s e^{2st} / (e^{2st} - 1 + s/c_0)`` of Saxe et al. 2014 (Atanasov et
    al. 2022, App. B.3), which crosses ``s/2`` at ``t_alpha = log(s_alpha/c_0 - 1) / (2 s_alpha) ~
    log(s_alpha/c_0)/(2 s_alpha)``. Atanasov et al. 2022, sec. 4.2, omit the 2. Silent alignment for ``L = 2``
    needs ``1/s_min << log(s_max/c_0)/(2 s_max)`` (their sec. 4.2 condition with the 2 restored).

    Examples
    --------
    >>> np.round(saxe_mode_times([1.0, 2.0], 1e-4), 4).tolist()
    [4.6051, 2.4759]
    """
    sv = finite_array(svals, "svals")
    c0 = finite_array(c0, "c0")
    if np.any(sv <= 0) or np.any(c0 <= 0):
        raise ValueError("svals and c0 must be > 0")
    check_choice(form, FORMS, "form")
    if form == "published":
        return np.log(sv / c0) / sv
    if np.any(c0 >= sv / 2):
        raise ValueError("c0 must be < s_alpha / 2 (small initialization)")
    return np.log(sv / c0 - 1.0) / (2.0 * sv)
