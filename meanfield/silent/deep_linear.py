"""Deep linear networks from small balanced initialization: scale dynamics and final kernels (Atanasov et al. 2022).

Their sec. 4 and Apps. C-D, G: ``f = w^L^T W^{L-1} ... W^1 x`` with per-layer rates ``eta_l``, on whitened data, in
the corrected forms (see each function's Notes). Time is measured in units of ``eta_L`` x steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import integrate

from .._checks import check_choice, check_int, check_real, finite_array
from .data import unit_vector

FORMS = ("corrected", "published")


@dataclass(frozen=True)
class NTKCoefficients:
    """Coefficients of the balanced deep linear NTK ``u^{2L-2} x^T [A r1 r1^T + B I] x'``
    (:func:`deep_linear_ntk_coeffs`)."""

    A: float
    B: float


def _rates(L, etas):
    L = check_int(L, "L", 2)
    if etas is None:
        return L, np.ones(L)
    e = finite_array(etas, "etas", ndim=(1,))
    if e.size != L or np.any(e <= 0):
        raise ValueError(f"etas must hold L = {L} positive per-layer learning rates, got {etas!r}")
    return L, e / e[-1]


def lr_kappa(L, etas=None):
    """Rate factor ``kappa = prod_{l<L} (eta_l / eta_L)^{1/2}`` of a balanced deep linear network.

    Parameters
    ----------
    L : int
        Depth ``L >= 2``.
    etas : array_like, optional
        The ``L`` per-layer learning rates (default equal).

    Returns
    -------
    float

    Notes
    -----
    Balanced rank-one weights ``W^l = sqrt(eta_l/eta_L) u r_{l+1} r_l^T`` (Atanasov et al. 2022, sec. 4.1) give the
    end-to-end weight ``w = kappa u^L`` along ``beta`` (derived here).

    Examples
    --------
    >>> lr_kappa(3, [4.0, 1.0, 1.0])
    2.0
    """
    _, rho = _rates(L, etas)
    return float(np.sqrt(np.prod(rho[:-1])))


def _scale_rate(L, s, kappa, form):
    check_choice(form, FORMS, "form")
    return (L if form == "corrected" else 1.0) * kappa ** (2.0 / L)


def _check_scale(L, s, w0, kappa):
    L = check_int(L, "L", 2)
    s = check_real(s, "s", low=0.0, low_open=True)
    w0 = check_real(w0, "w0", low=0.0, low_open=True)
    if w0 >= s:
        raise ValueError(f"w0 must be < s (start below the target), got w0={w0!r}, s={s!r}")
    return L, s, w0, check_real(kappa, "kappa", low=0.0, low_open=True)


def deep_linear_scale(t, L, s, w0, kappa=1.0, form="corrected"):
    """End-to-end weight ``w(t)`` of a balanced, aligned deep linear network (corrected scale ODE).

    Parameters
    ----------
    t : array_like
        Times ``t >= 0`` in units of ``eta_L x steps``.
    L : int
        Depth ``L >= 2``.
    s : float
        Target scale ``s > 0``.
    w0 : float
        Initial end-to-end weight, ``0 < w0 < s`` (``w0 = kappa u0^L`` for balanced weights of scale ``u0``).
    kappa : float
        Rate factor :func:`lr_kappa` (1 for equal rates).
    form : {"corrected", "published"}
        ``"corrected"`` (default): ``dw/dt = L kappa^{2/L} w^{2-2/L} (s - w)``. ``"published"``: Atanasov et al.
        2022's ``dc/dt = c^{2-2/L}(s - c)`` (eq. (39) and sec. 4.1.1), kept to let simulation decide.

    Returns
    -------
    ndarray
        ``w(t)``, same shape as ``t``; the network is ``f = w beta . x``.

    Notes
    -----
    From ``du/dt = u^{L-1}(s - u^L)`` (Atanasov et al. 2022, App. D.1) and ``c = u^L``:
    ``dc/dt = L c^{2-2/L} (s - c)``. Their eq. (39) (and sec. 4.1.1) drop the factor ``L``; for ``L = 2`` their own
    App. B.3 has ``dc/dt = 2c(s - c)``. Unequal rates (derived here, checked against GD in tests/test_silent.py):
    ``dw/dt = L kappa^{2/L} w^{2-2/L} (s - w)``. For ``L = 2`` the solution is the Saxe sigmoid
    ``w = s e^{2 kappa s t} / (e^{2 kappa s t} - 1 + s/w0)``. Integrated with ``solve_ivp`` (DOP853,
    ``rtol = 1e-11``) in ``y = log w``, whose right-hand side is smooth and bounded; :func:`deep_linear_time` is
    the independent inverse by quadrature.

    Examples
    --------
    >>> w = deep_linear_scale([0.0, 9.144747], 3, 1.0, 1e-3)
    >>> np.round(w, 6).tolist()
    [0.001, 0.5]
    """
    t = finite_array(t, "t", low=0.0)
    L, s, w0, kappa = _check_scale(L, s, w0, kappa)
    rate = _scale_rate(L, s, kappa, form)
    ts, inverse = np.unique(t.ravel(), return_inverse=True)  # sorted, without duplicates (solve_ivp needs that)
    if ts.size == 0 or ts[-1] == 0:
        return np.full(t.shape, w0)

    def rhs(_, y):
        w = np.exp(y[0])
        return [rate * w ** (1.0 - 2.0 / L) * (s - w)]

    sol = integrate.solve_ivp(
        rhs, (0.0, float(ts[-1])), [np.log(w0)], method="DOP853", t_eval=ts, rtol=1e-11, atol=1e-12
    )
    if not sol.success:  # pragma: no cover - the right-hand side is smooth and bounded
        raise RuntimeError(f"deep_linear_scale: integration failed: {sol.message}")
    return np.exp(sol.y[0])[inverse].reshape(t.shape)


def deep_linear_time(w, L, s, w0, kappa=1.0, form="corrected"):
    """Time for the balanced deep linear network to reach end-to-end weight ``w`` (inverse of the scale ODE).

    Parameters
    ----------
    w : float
        Target weight, ``w0 <= w < s``.
    L, s, w0, kappa, form
        As in :func:`deep_linear_scale`.

    Returns
    -------
    float
        The time at which ``w(t) = w``.

    Notes
    -----
    ``t(w) = int_{w0}^{w} dv / (L kappa^{2/L} v^{2-2/L} (s - v))`` (separable ODE of :func:`deep_linear_scale`),
    computed by adaptive quadrature in ``log v``. ``L = 3``, ``u0 = 0.1`` (``w0 = 10^{-3}``), ``s = 1``:
    ``t(s/2) = 9.1447`` (corrected) vs ``27.434`` with the published ODE; GD on the balanced manifold gives 9.148
    (tests/test_silent.py).

    Examples
    --------
    >>> round(deep_linear_time(0.5, 3, 1.0, 1e-3), 4), round(deep_linear_time(0.5, 3, 1.0, 1e-3, form="published"), 3)
    (9.1447, 27.434)
    """
    L, s, w0, kappa = _check_scale(L, s, w0, kappa)
    w = check_real(w, "w", low=w0)
    if w >= s:
        raise ValueError(f"w must be < s = {s}, got {w!r}")
    rate = _scale_rate(L, s, kappa, form)
    val, _ = integrate.quad(
        lambda y: 1.0 / (rate * np.exp(y * (1.0 - 2.0 / L)) * (s - np.exp(y))),
        np.log(w0),
        np.log(w),
        epsabs=0.0,
        epsrel=1e-12,
        limit=200,
    )
    return float(val)


def deep_linear_blowup_time(L, s, w0, kappa=1.0):
    """Blow-up time ``t_*`` of the early deep linear dynamics, the onset of learning for ``L >= 3``.

    Parameters
    ----------
    L : int
        Depth ``L >= 3``.
    s, w0, kappa : float
        As in :func:`deep_linear_scale`.

    Returns
    -------
    float
        ``t_*``, in units of ``eta_L`` x steps.

    Notes
    -----
    Neglecting ``w`` against ``s``: ``w(t) = [w0^{-(L-2)/L} - (L-2) kappa^{2/L} s t]^{-L/(L-2)}``, which blows up
    at ``t_* = w0^{-(L-2)/L} / ((L-2) kappa^{2/L} s)``, i.e. ``u0^{-(L-2)} / ((L-2) s)`` for equal rates
    (Atanasov et al. 2022, eq. (40), corrected). They state ``t_1/2 ~ L sigma^{-(L-2)} / (s(L-2))`` (sec. 4.1.1 and
    Fig. 4; App. D.1 prints the exponent ``-L-2``); the factor ``L`` comes from the ``L`` missing in their
    eq. (39). The exact time to reach ``s/2`` (:func:`deep_linear_time`) differs
    from ``t_*`` by an amount that stays bounded as ``w0 -> 0``, so ``t(s/2)/t_* -> 1``.

    Examples
    --------
    >>> round(deep_linear_blowup_time(3, 1.0, 1e-3), 6)
    10.0
    """
    L, s, w0, kappa = _check_scale(L, s, w0, kappa)
    if L < 3:
        raise ValueError(f"L must be an integer >= 3 (L = 2 has no finite blow-up), got {L}")
    return float(w0 ** (-(L - 2) / L) / ((L - 2) * kappa ** (2.0 / L) * s))


def deep_linear_ntk_coeffs(L, etas=None, lr_weighted=False) -> NTKCoefficients:
    """Coefficients ``(A, B)`` of the balanced deep linear NTK ``u^{2L-2} x^T [A r1 r1^T + B I] x'``.

    Parameters
    ----------
    L : int
        Depth ``L >= 2``.
    etas : array_like, optional
        The ``L`` per-layer learning rates (default equal); only the ratios ``eta_l / eta_L`` matter.
    lr_weighted : bool
        False: the unweighted parameter-gradient kernel ``sum_l K_l`` (Atanasov et al. 2022, eqs. (10), (34)-(36)).
        True: the rate-weighted kernel ``sum_l (eta_l/eta_L) K_l`` that drives ``df/dt`` under per-layer rates
        (time in units of ``eta_L`` x steps).

    Returns
    -------
    NTKCoefficients

    Notes
    -----
    With ``rho_l = eta_l/eta_L`` and balanced ``W^l = sqrt(rho_l) u r_{l+1} r_l^T``, layer ``l``'s block is
    ``K_l = u^{2L-2} prod_{l' != l} rho_{l'} x^T P_l x'`` with ``P_1 = I`` and ``P_l = r1 r1^T`` for ``l >= 2``. So
    (Atanasov et al. 2022, eq. (36)) ``B = prod_{l != 1} rho_l``, ``A = sum_{l=2}^{L} prod_{l' != l} rho_{l'}``, and
    ``A/B = (L - 1) eta_1/eta`` when ``eta_2 = ... = eta_L = eta`` (eq. (37)). Weighting each block by ``rho_l``
    gives ``B_eta = prod_l rho_l``, ``A_eta = (L - 1) B_eta``: ``A_eta/B_eta = L - 1`` for *any* rates
    (derived here). So Atanasov et al. 2022's statement that the strength of feature learning ``A/B`` grows with
    ``eta_1/eta_L`` (sec. 4.1, and after eq. (37)) holds for the unweighted kernel only.

    Examples
    --------
    >>> deep_linear_ntk_coeffs(3, [2.0, 1.0, 1.0]), deep_linear_ntk_coeffs(3, [2.0, 1.0, 1.0], lr_weighted=True)
    (NTKCoefficients(A=4.0, B=1.0), NTKCoefficients(A=4.0, B=2.0))
    """
    L, rho = _rates(L, etas)
    if lr_weighted:
        B = float(np.prod(rho))
        return NTKCoefficients(A=(L - 1) * B, B=B)
    others = np.array([np.prod(np.delete(rho, l)) for l in range(L)])  # prod_{l' != l} rho_l'
    return NTKCoefficients(A=float(others[1:].sum()), B=float(others[0]))


def final_ntk_linear(beta, s, L, etas=None, lr_weighted=False):
    """Final NTK matrix of a deep linear network trained from small balanced initialization.

    Parameters
    ----------
    beta : array_like, shape (D,)
        Task direction (normalized internally).
    s : float
        Target scale ``s > 0`` (``f -> s beta . x``).
    L : int
        Depth ``L >= 2``.
    etas, lr_weighted
        As in :func:`deep_linear_ntk_coeffs`.

    Returns
    -------
    ndarray, shape (D, D)
        ``M_inf`` with ``K_inf(x, x') = x^T M_inf x'``.

    Notes
    -----
    ``M_inf = (u*)^{2L-2} [A beta beta^T + B I]`` with ``u* = (s / kappa)^{1/L}`` (``kappa`` from
    :func:`lr_kappa`), i.e. ``s^{(2L-2)/L} [(L-1) beta beta^T + I]`` for equal rates (derived here). Atanasov et
    al. 2022, eq. (42) prints ``s^{2L-2}``; for ``L = 2`` both agree with their sec. 3.2 (``s (beta beta^T + I)``),
    and GD at ``L = 3``, ``s = 2`` gives the isotropic eigenvalue 2.522 vs ``2^{4/3} = 2.520`` (published: 16;
    tests/test_silent.py). Holds for any input covariance, since only balance and convergence to
    ``f = s beta . x`` are used (App. D.2).

    Examples
    --------
    >>> np.round(final_ntk_linear([1.0, 0.0], 2.0, 3), 4).tolist()
    [[7.5595, 0.0], [0.0, 2.5198]]
    """
    b = unit_vector(beta)
    s = check_real(s, "s", low=0.0, low_open=True)
    c = deep_linear_ntk_coeffs(L, etas, lr_weighted)
    u_star = (s / lr_kappa(L, etas)) ** (1.0 / L)
    return u_star ** (2 * L - 2) * (c.A * np.outer(b, b) + c.B * np.eye(b.size))


def final_nngp_linear(beta, L, l):
    """Final hidden-layer (NNGP) kernel matrix of a deep linear network: ``(beta^T beta)^{l/L}``.

    Parameters
    ----------
    beta : array_like, shape (D,) or (C, D)
        Teacher weights *including* their scale (``s beta_hat`` for scalar output; ``C x D`` for ``C`` outputs).
    L : int
        Depth ``L >= 2``.
    l : int
        Layer ``0 <= l <= L`` (``l = 0`` is the input kernel ``x . x'``).

    Returns
    -------
    ndarray, shape (D, D)
        ``N_l`` with ``K_l(x, x') = h_l(x) . h_l(x') = x^T N_l x'``.

    Notes
    -----
    Atanasov et al. 2022, App. D.3 and G.1 (eq. (54)): with equal rates, balanced small initialization and convergence,
    ``K_l = x^T W^{1T} ... W^{lT} W^l ... W^1 x' = x^T (beta^T beta)^{l/L} x'`` (PSD matrix power; the
    zero eigenvalues stay zero for ``l >= 1``). Scalar output: ``s^{2l/L} (beta_hat . x)(beta_hat . x')``, which on
    the training set is ``s^{2l/L - 2} y y^T``. The ``K_l = (y y^T)^{l/L}`` of their App. D.3 is wrong as a matrix
    power (it would give ``|y|^{2l/L-2} y y^T``); any alignment with ``y y^T`` is 1 for every
    ``l >= 1`` either way.

    Examples
    --------
    >>> np.round(final_nngp_linear([0.0, 8.0], 3, 2), 6).tolist()
    [[0.0, 0.0], [0.0, 16.0]]
    """
    B = finite_array(beta, "beta", ndim=(1, 2))
    B = B.reshape(1, -1) if B.ndim == 1 else B
    L = check_int(L, "L", 2)
    l = check_int(l, "l", 0)
    if l > L:
        raise ValueError(f"l must be an integer in [0, L = {L}], got {l}")
    if l == 0:
        return np.eye(B.shape[1])
    _, S, Vt = np.linalg.svd(B, full_matrices=False)
    return (Vt.T * S ** (2.0 * l / L)) @ Vt
