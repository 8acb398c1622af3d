r"""What the kernels predict about training: exact NNGP inference and the NTK-trained ensemble at any time.

Two infinite-width predictions for a regression task ``(X, Y)`` (``n`` training inputs, ``k`` outputs) on test
inputs ``X_*`` (``m`` of them), with :math:`K` the NNGP kernel (:math:`\Sigma_L`) and :math:`\Theta` the NTK
(:math:`\Theta_L`) of :func:`meanfield.kernels`; :math:`K = K(X, X)`, :math:`K_{*} = K(X_*, X)`,
:math:`K_{**} = K(X_*, X_*)`, likewise for :math:`\Theta`.

*NNGP posterior* (exact Bayesian inference with the NNGP prior and Gaussian noise of variance ``diag_reg``
:math:`= \sigma_\epsilon^2`; Lee et al. 2018, sec. 2.2 / Rasmussen & Williams 2006, eqs. (2.23)-(2.24)):

.. math:: \mu = K_*(K + \sigma_\epsilon^2 I)^{-1} Y,\qquad
          \Sigma = K_{**} - K_*(K + \sigma_\epsilon^2 I)^{-1}K_*^\top.

*NTK ensemble* (an infinite ensemble of infinitely wide networks trained by gradient flow on the MSE loss
:math:`\mathcal L = \frac1{2n}\sum_i\|f(x_i) - y_i\|^2`, the loss of :func:`meanfield.train` with ``loss="mse"``;
Lee et al. 2019, sec. 2.3.1): at time :math:`t` the outputs on ``X_*`` are Gaussian with

.. math::
    \mu_t &= \Theta_* P_t Y,\qquad P_t = \Theta^{-1}(I - e^{-\Theta t/n}),\\
    \Sigma_t &= K_{**} + \Theta_* P_t K P_t\Theta_*^\top - \Theta_* P_t K_*^\top - K_* P_t\Theta_*^\top .

Time is that of gradient flow on :math:`\mathcal L`: full-batch gradient descent at learning rate :math:`\eta`
reaches time :math:`t = \eta\,k` after :math:`k` steps. With ``lr`` the discrete steps themselves are predicted,
:math:`I - e^{-\Theta t/n}\to I - (I - \eta\Theta/n)^{k}`, stable iff :math:`\eta < 2n/\lambda_{\max}(\Theta)`
(:func:`max_learning_rate`). ``diag_reg`` :math:`= r` replaces :math:`\Theta` by :math:`\Theta + rI` in
:math:`P_t` (at :math:`t=\infty`, kernel ridge regression), as Neural Tangents' ``gradient_descent_mse_ensemble``
does (Novak et al. 2020). Neural Tangents normalizes the loss by ``y_train.size = n k``: its time is ``k`` times
this one for ``k`` outputs (equal for one output).

Numerics: one symmetric eigendecomposition :math:`\Theta + rI = V\Lambda V^\top` (LAPACK ``syevd``), reused for
every time; every matrix function is a diagonal in that basis, :math:`P_t = V\,g_t(\Lambda)\,V^\top` with
:math:`g_t(\lambda) = -\mathrm{expm1}(-\lambda t/n)/\lambda` (:math:`t/n` at :math:`\lambda = 0`; for gradient
descent :math:`-\mathrm{expm1}(k\,\mathrm{log1p}(-\eta\lambda/n))/\lambda`), exact to rounding for every
eigenvalue, so a kernel that is singular to working precision is fine at finite ``t``. At :math:`t = \infty` (and
for the NNGP) :math:`g = 1/\lambda` and a kernel whose smallest eigenvalue is below :math:`4 n \epsilon
\lambda_{\max}` (:math:`\epsilon` = 2.2e-16) is refused (``diag_reg`` is needed). At :math:`t = \infty` one step of
iterative refinement follows. Against a 50-digit mpmath solve of the same float64 matrices, nearly rank-one kernels
(deep erf networks in the ordered phase) of condition number :math:`\kappa` up to 1e12 give test means with a relative
error below :math:`\kappa\epsilon` (4e-6 at :math:`\kappa` = 6e11 with random targets), as LU with pivoting does:
the limit of any backward-stable float64 solve. Cost: :math:`O(n^3)` once, then per time
:math:`O(m n k)` for the mean and :math:`O(m n^2 + m^2 n)` for the covariance (:math:`O(n^3)` for the training
variances). Memory :math:`O(n^2 + nm + m^2)` working space plus the outputs (``len(t)`` means and, with the
covariance, ``len(t)`` :math:`m\times m` matrices); no :math:`n\times n` matrix per time is ever formed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._checks import check_bool, check_choice, check_memory, check_network, check_real, finite_array, real_array

__all__ = ["Prediction", "predict", "predict_kernels", "kernel_regression", "max_learning_rate"]

KERNELS = ("ntk", "nngp")
_EPS = np.finfo(np.float64).eps
#: relative tolerance of the symmetry check of a training kernel
SYM_RTOL = 1e-10


@dataclass(frozen=True)
class Prediction:
    """Infinite-width prediction of the outputs on test inputs (and on the training inputs).

    Attributes
    ----------
    kernel : {"ntk", "nngp"}
        The NTK-trained ensemble at the times ``t``, or the NNGP posterior.
    t : ndarray or None
        The times (``inf`` = end of training); None for the NNGP posterior. When ``t`` was given as a 1-D array
        every array below has a leading time axis of length ``len(t)``; for ``t=None`` or a scalar it has none.
    mean : ndarray ``([T,] m[, k])``
        Mean test outputs (no output axis when ``y_train`` was 1-D).
    covariance : ndarray ``([T,] m, m)`` or None
        Covariance of the test outputs, the same for every output (None when not computed).
    train_mean : ndarray ``([T,] n[, k])``
        Mean outputs on the training inputs.
    train_variance : ndarray ``([T,] n)`` or None
        Variance of the outputs on the training inputs (None when the covariance was not computed).
    lr : float or None
        Learning rate of discrete gradient descent (None: gradient flow).
    diag_reg : float
        The regularizer added to the training kernel's diagonal (the NNGP's noise variance).
    """

    kernel: str
    t: np.ndarray | None
    mean: np.ndarray
    covariance: np.ndarray | None
    train_mean: np.ndarray
    train_variance: np.ndarray | None
    lr: float | None = None
    diag_reg: float = 0.0

    @property
    def variance(self) -> np.ndarray | None:
        """Variance of each test output, the diagonal of :attr:`covariance` (``([T,] m)``)."""
        if self.covariance is None:
            return None
        return np.diagonal(self.covariance, axis1=-2, axis2=-1).copy()


# ----------------------------------------------------------------------------------------------------------------
# the one solver: an eigendecomposition of the training kernel, reused for every time
# ----------------------------------------------------------------------------------------------------------------
def _square(K, name, n=None):
    K = finite_array(K, name, ndim=(2,))
    if K.shape[0] != K.shape[1] or K.shape[0] == 0 or (n is not None and K.shape[0] != n):
        want = "(n, n)" if n is None else f"({n}, {n})"
        raise ValueError(f"{name} must be a square {want} kernel matrix with n >= 1, got shape {K.shape}")
    scale = np.max(np.abs(K))
    if np.max(np.abs(K - K.T)) > SYM_RTOL * scale:
        raise ValueError(f"{name} must be symmetric (to {SYM_RTOL:g} of its largest entry)")
    return 0.5 * (K + K.T)


def _cross(K, name, shape):
    K = finite_array(K, name, ndim=(2,))
    if K.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {K.shape}")
    return K


def _targets(y, n):
    y = real_array(y, "y_train", ndim=(1, 2))
    if y.shape[0] != n or y.size == 0:
        raise ValueError(f"y_train must have n = {n} rows (shape ({n},) or ({n}, k)), got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("y_train must be finite (no NaN or inf targets)")
    return y


def _times(t, lr):
    """(times (T,), has_axis, steps (T,) or None)."""
    if t is None:
        times, axis = np.array([np.inf]), False
    else:
        times = real_array(t, "t", ndim=(0, 1))
        axis = times.ndim == 1
        times = np.atleast_1d(times)
        if times.size == 0 or np.any(np.isnan(times)) or np.any(times < 0):
            raise ValueError(f"t must be None, a time >= 0 or a 1-D array of times >= 0 (inf allowed), got {t!r}")
    steps = None
    if lr is not None:
        steps = times / lr
        fin = np.isfinite(steps)
        whole = np.round(np.where(fin, steps, 0.0))
        bad = fin & (np.abs(np.where(fin, steps, 0.0) - whole) > 1e-9 * np.maximum(1.0, whole))
        if np.any(bad):
            raise ValueError(
                f"t must be a multiple of lr = {lr!r} (t / lr is the number of gradient-descent steps), "
                f"got t = {times[bad][0]!r}"
            )
        steps = np.where(fin, np.round(steps), np.inf)
    return times, axis, steps


class _Spectrum:
    """``K + r I = V diag(lam) V^T`` with the checks every use shares."""

    def __init__(self, K, diag_reg, name):
        self.n = n = K.shape[0]
        self.reg = diag_reg
        lam, V = np.linalg.eigh(K + diag_reg * np.eye(n))
        self.lam, self.V = lam, V
        self.lam_max = float(max(lam[-1], 0.0))
        self.tol = 4.0 * n * _EPS * max(float(np.max(np.abs(lam))), np.finfo(np.float64).tiny)
        if lam[0] < -self.tol:
            raise ValueError(
                f"{name} is not positive semi-definite (smallest eigenvalue {lam[0]:.3g}, largest "
                f"{lam[-1]:.3g}): a kernel matrix must be"
            )
        self.lam0 = lam - diag_reg  # eigenvalues of the unregularized kernel (same eigenvectors)

    def require_invertible(self, why):
        if self.lam[0] <= self.tol:
            raise ValueError(
                f"diag_reg: the training kernel is singular to working precision (smallest eigenvalue "
                f"{self.lam[0]:.3g} <= {self.tol:.3g} = 4 n eps lambda_max) and {why} needs its inverse; "
                "pass diag_reg > 0 (e.g. 1e-10 times its largest eigenvalue)"
                + ("" if "NNGP" in why else " or finite times t")
            )

    def check_lr(self, lr):
        limit = 2.0 * self.n / self.lam_max if self.lam_max > 0 else np.inf
        if lr >= limit:
            raise ValueError(
                f"lr must be < 2 n / lambda_max = {limit:.6g} for gradient descent to converge "
                f"(lambda_max = {self.lam_max:.6g} of the training kernel, n = {self.n}), got {lr!r}"
            )

    def gains(self, t, step, lr):
        """``g(lam)`` with ``P = V diag(g) V^T``: ``(1 - e^{-lam t/n})/lam`` (gradient flow), or
        ``(1 - (1 - lr lam/n)^step)/lam`` (``step`` steps of gradient descent); ``t/n`` at ``lam = 0``."""
        lam, n = self.lam, self.n
        if np.isinf(t):
            return 1.0 / lam
        zero = lam == 0
        safe = np.where(zero, 1.0, lam)
        if step is None:
            g = -np.expm1(-safe * t / n) / safe
        else:
            u = safe * lr / n  # in (-tiny, 2): check_lr
            small = u < 1
            decay = np.empty_like(u)
            decay[small] = -np.expm1(step * np.log1p(-u[small]))
            decay[~small] = 1.0 - (1.0 - u[~small]) ** step
            g = decay / safe
        return np.where(zero, t / n, g)


_CONTROLLER = []
#: training sets up to this size are solved with one BLAS thread (see :func:`_blas_for`)
SINGLE_THREAD_N = 1024


def _blas_for(n):
    """One BLAS thread for small kernels: LAPACK's threads cost far more than they gain on matrices of a few hundred
    rows when the cores are shared (measured: a 300 x 300 ``eigh`` 11 ms on one thread, 1.3 s with the default pool
    on 2 busy cores). The threadpoolctl controller is built once (building it costs ~15 ms)."""
    import contextlib

    if n > SINGLE_THREAD_N:
        return contextlib.nullcontext()
    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER.append(ThreadpoolController())
        except ImportError:  # pragma: no cover - optional
            _CONTROLLER.append(None)
    if _CONTROLLER[0] is None:  # pragma: no cover
        return contextlib.nullcontext()
    return _CONTROLLER[0].limit(limits=1, user_api="blas")


def _validate_common(kernel, diag_reg, lr):
    kernel = check_choice(kernel, KERNELS, "kernel")
    diag_reg = check_real(diag_reg, "diag_reg", low=0.0)
    if lr is not None:
        lr = check_real(lr, "lr", low=0.0, low_open=True)
    return kernel, diag_reg, lr


def _finish(out, what):
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"the {what} overflows float64 (the kernel or the targets are too large); rescale y_train or the inputs"
        )
    return out


def predict_kernels(
    k_train,
    k_test_train,
    y_train,
    t=None,
    kernel="ntk",
    nngp_train=None,
    nngp_test_train=None,
    nngp_test=None,
    diag_reg=0.0,
    lr=None,
) -> Prediction:
    r"""The prediction of :func:`predict` from given kernel matrices (any kernel, e.g. a finite network's).

    Parameters
    ----------
    k_train : array_like (n, n)
        Training kernel: the NTK :math:`\Theta(X, X)` for ``kernel="ntk"``, the NNGP :math:`K(X, X)` for
        ``"nngp"`` (symmetric positive semi-definite).
    k_test_train : array_like (m, n)
        The same kernel between test and training inputs.
    y_train : array_like (n,) or (n, k)
        Finite targets.
    t : None, float or 1-D array
        Times (``kernel="ntk"`` only; ``None`` or ``inf``: the end of training).
    kernel : {"ntk", "nngp"}
    nngp_train, nngp_test_train : array_like (n, n), (m, n)
        ``kernel="ntk"`` only: the NNGP blocks :math:`K`, :math:`K_*` the covariance needs.
    nngp_test : array_like (m, m)
        :math:`K_{**}`; with it (and, for the NTK, both NNGP blocks above) the covariance is computed.
    diag_reg : float
        ``>= 0``, added to the training kernel's diagonal (the NNGP's noise variance).
    lr : float, optional
        Learning rate ``> 0`` of discrete gradient descent (``kernel="ntk"``); ``t`` must be a multiple of it.

    Returns
    -------
    Prediction

    Notes
    -----
    Formulas, numerics and cost: module docstring (Lee et al. 2019, sec. 2.3.1; the NNGP posterior of Rasmussen &
    Williams 2006, eqs. (2.23)-(2.24)).

    Examples
    --------
    >>> K = np.array([[2.0, 1.0], [1.0, 2.0]]); Ks = np.array([[1.5, 1.5]])
    >>> p = predict_kernels(K, Ks, [1.0, 1.0], kernel="nngp", nngp_test=np.array([[2.0]]))
    >>> p.mean.round(12).tolist(), p.variance.round(12).tolist()   # 1.5 (1, 1) K^-1 (1, 1)^T = 1; 2 - 1.5
    ([1.0], [0.5])
    """
    kernel, diag_reg, lr = _validate_common(kernel, diag_reg, lr)
    K = _square(k_train, "k_train")
    n = K.shape[0]
    y = _targets(y_train, n)
    Ks = finite_array(k_test_train, "k_test_train", ndim=(2,))
    if Ks.shape[1] != n or Ks.shape[0] == 0:
        raise ValueError(f"k_test_train must have shape (m, n = {n}) with m >= 1, got {Ks.shape}")
    m = Ks.shape[0]
    if kernel == "nngp":
        if t is not None:
            raise ValueError("t: the NNGP posterior has no training time; pass t=None (or use kernel='ntk')")
        if lr is not None:
            raise ValueError("lr: the NNGP posterior has no learning rate; pass lr=None (or use kernel='ntk')")
        if nngp_train is not None or nngp_test_train is not None:
            raise ValueError("nngp_train / nngp_test_train are for kernel='ntk'; with 'nngp' pass k_train, "
                             "k_test_train (and nngp_test for the covariance)")  # fmt: skip
        C = D = None
    else:
        given = [a is not None for a in (nngp_train, nngp_test_train, nngp_test)]
        if any(given) and not all(given):
            raise ValueError("nngp_train, nngp_test_train and nngp_test: the NTK ensemble's covariance needs all "
                             "three NNGP blocks (or none of them for the mean only)")  # fmt: skip
        C = None if nngp_train is None else _square(nngp_train, "nngp_train", n)
        D = None if nngp_test_train is None else _cross(nngp_test_train, "nngp_test_train", (m, n))
    Kss = None if nngp_test is None else _square(nngp_test, "nngp_test", m)
    times, axis, steps = _times(t, lr)
    T = times.size
    k_out = 1 if y.ndim == 1 else y.shape[1]
    check_memory(
        8.0 * (4 * n * n + 3 * n * m + 2 * m * m + T * (m + n) * k_out + (T * (m * m + n) if Kss is not None else 0)),
        f"the prediction on {m} test and {n} training inputs at {T} time(s)",
        "use fewer test inputs or times, or covariance=False",
    )

    with _blas_for(n):
        return _solve(K, Ks, y, C, D, Kss, kernel, diag_reg, lr, times, axis, steps)


def _solve(K, Ks, y, C, D, Kss, kernel, diag_reg, lr, times, axis, steps):
    n, m, T = K.shape[0], Ks.shape[0], times.size
    sp = _Spectrum(K, diag_reg, "k_train")
    if kernel == "nngp" or np.any(np.isinf(times)):
        sp.require_invertible("the NNGP posterior" if kernel == "nngp" else "t = inf")
    if lr is not None:
        sp.check_lr(lr)
    V, lam0 = sp.V, sp.lam0
    Y2 = y.reshape(n, -1)
    Yt = V.T @ Y2  # targets in the eigenbasis
    B = Ks @ V  # test-train kernel in the eigenbasis
    cov_on = Kss is not None
    if cov_on and kernel == "ntk":
        C = V.T @ C @ V  # NNGP train kernel in the eigenbasis
        D = V.T @ D.T  # (n, m)
    mean = np.empty((T, m, Y2.shape[1]))
    tmean = np.empty((T, n, Y2.shape[1]))
    cov = np.empty((T, m, m)) if cov_on else None
    tvar = np.empty((T, n)) if (cov_on or kernel == "nngp") else None
    for i in range(T):
        g = sp.gains(times[i], None if steps is None else steps[i], lr)
        Bg = B * g
        a = lam0 * g  # the training-set operator K P_t is V diag(a) V^T
        if np.isinf(times[i]):  # (K + rI)^-1 Y with one step of iterative refinement
            alpha = V @ (g[:, None] * Yt)
            alpha += V @ (g[:, None] * (V.T @ (Y2 - K @ alpha - diag_reg * alpha)))
            mean[i] = Ks @ alpha
            tmean[i] = K @ alpha
        else:
            mean[i] = Bg @ Yt
            tmean[i] = V @ (a[:, None] * Yt)
        if kernel == "nngp":
            tvar[i] = (V * V) @ (lam0 * diag_reg * g)  # diag of K - K (K + r)^-1 K = V diag(lam0 r / lam) V^T
            if cov_on:
                cov[i] = Kss - Bg @ B.T
        elif cov_on:
            cross = Bg @ D
            c = Kss + (Bg @ C) @ Bg.T - cross - cross.T
            cov[i] = 0.5 * (c + c.T)
            W = V * (1.0 - a)
            tvar[i] = np.einsum("ij,ij->i", W @ C, W)
    if not axis:
        mean, tmean = mean[0], tmean[0]
        cov = None if cov is None else cov[0]
        tvar = None if tvar is None else tvar[0]
    if y.ndim == 1:
        mean, tmean = mean[..., 0], tmean[..., 0]
    _finish(mean, "predicted mean")
    if cov is not None:
        _finish(cov, "predicted covariance")
    return Prediction(
        kernel=kernel,
        t=None if kernel == "nngp" else (times if axis else times.reshape(())),
        mean=mean,
        covariance=cov,
        train_mean=tmean,
        train_variance=tvar,
        lr=lr,
        diag_reg=diag_reg,
    )


def kernel_regression(k_train, k_test_train, y_train, t=None, diag_reg=0.0, lr=None) -> np.ndarray:
    r"""Kernel (ridge) regression, or gradient flow / descent on the MSE loss in the kernel's function space.

    .. math:: f_t(X_*) = k_*\,(k + rI)^{-1}\,(I - e^{-(k + rI)\,t/n})\,Y \quad(t = \infty:\ k_*(k + rI)^{-1}Y),

    the function-space solution of gradient flow from :math:`f_0 = 0` on :math:`\frac1{2n}\sum\|f(x_i) - y_i\|^2`
    (Lee et al. 2019, sec. 2.2) and, at :math:`t = \infty`, kernel ridge regression with ridge ``diag_reg``. The
    one solver of the package (:func:`predict_kernels` without the covariance): used by :func:`predict`, the
    silent-alignment comparison (kernel regression with a trained network's final NTK, Atanasov et al. 2022, eq.
    (14)) and the learning-curve checks.

    Parameters
    ----------
    k_train : array_like (n, n)
        Symmetric positive semi-definite training kernel.
    k_test_train : array_like (m, n)
    y_train : array_like (n,) or (n, k)
    t, diag_reg, lr
        As in :func:`predict_kernels` (``t=None``: the end of training).

    Returns
    -------
    ndarray ``([T,] m[, k])``

    Examples
    --------
    >>> K = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> kernel_regression(K, K, [1.0, -1.0]).round(12).tolist()      # interpolates the training targets
    [1.0, -1.0]
    >>> kernel_regression(K, K, [1.0, -1.0], t=[0.0, np.inf]).round(12).tolist()
    [[0.0, 0.0], [1.0, -1.0]]
    """
    return predict_kernels(k_train, k_test_train, y_train, t=t, diag_reg=diag_reg, lr=lr).mean


def _net_inputs(X_train, X_test):
    X = finite_array(X_train, "X_train", ndim=(2,))
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X_train must have n >= 1 rows and d >= 1 columns, got shape {X.shape}")
    if X_test is None:
        return X, None
    Xs = finite_array(X_test, "X_test", ndim=(2,))
    if Xs.shape[0] == 0 or Xs.shape[1] != X.shape[1]:
        raise ValueError(f"X_test must have shape (m, d = {X.shape[1]}) with m >= 1 to match X_train, got {Xs.shape}")
    return X, Xs


#: the architectures :func:`meanfield.kernels` computes decide; :func:`predict` passes every option on to it
_ALL_FEATURES = ("schedule", "residual", "normalization", "dropout")


def predict(net, X_train, y_train, X_test, t=None, kernel="ntk", diag_reg=0.0, lr=None, covariance=True) -> Prediction:
    r"""Infinite-width prediction of a network trained on ``(X_train, y_train)``, on ``X_test``.

    Parameters
    ----------
    net : Network
        The spec (depth, activation, variances, parameterization; ``width`` for the standard parameterization,
        whose tangent kernel grows with it). Every architecture :func:`meanfield.kernels` computes.
    X_train : array_like (n, d)
    y_train : array_like (n,) or (n, k)
        Finite targets (``k`` outputs share the kernel).
    X_test : array_like (m, d)
    t : None, float or 1-D array of float
        ``kernel="ntk"``: training time(s) ``>= 0`` of gradient flow on :math:`\frac1{2n}\sum\|f - y\|^2`
        (``None`` or ``inf``: the end of training; full-batch GD at learning rate ``eta`` reaches ``t = eta k``
        after ``k`` steps). A 1-D array gives every result a leading time axis.
    kernel : {"ntk", "nngp"}
        ``"ntk"``: the ensemble of networks trained by gradient flow (Lee et al. 2019). ``"nngp"``: the exact
        Gaussian-process posterior with the NNGP prior.
    diag_reg : float
        ``>= 0``: the NNGP's observation-noise variance; for the NTK, added to the training NTK's diagonal.
    lr : float, optional
        Predict discrete full-batch gradient descent at this learning rate (``t`` a multiple of ``lr``); must be
        below :func:`max_learning_rate`.
    covariance : bool
        Also compute the covariance of the test outputs and the variance of the training outputs.

    Returns
    -------
    Prediction

    Notes
    -----
    Computes :func:`meanfield.kernels` on the training set, between test and training inputs and (with the
    covariance) on the test set, then :func:`predict_kernels` (formulas, numerics and cost in the module
    docstring: Lee et al. 2019, sec. 2.3.1; Rasmussen & Williams 2006, eqs. (2.23)-(2.24)).

    Examples
    --------
    >>> from meanfield import Network
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]) * np.sqrt(2)
    >>> p = predict(Network(3), X[:2], [1.0, -1.0], X, t=[0.0, 1.0, np.inf])
    >>> p.mean.shape, p.covariance.shape
    ((3, 3), (3, 3, 3))
    >>> p.mean[-1, :2].round(12).tolist()       # trained to the end: the training targets
    [1.0, -1.0]
    >>> bool(np.allclose(p.variance[0], [2.0, 2.0, 2.0]))   # t = 0: the NNGP prior variance q_L
    True
    """
    net = check_network(net, supports=_ALL_FEATURES, what="predict")
    X, Xs = _net_inputs(X_train, X_test)
    kernel, diag_reg, lr = _validate_common(kernel, diag_reg, lr)
    covariance = check_bool(covariance, "covariance")
    _targets(y_train, X.shape[0])
    from .propagation.dataset import kernels

    k_tr = kernels(X, net)
    k_cross = kernels(Xs, net, X2=X)
    k_te = kernels(Xs, net) if covariance else None
    nngp_test = None if k_te is None else k_te.nngp
    if kernel == "nngp":
        return predict_kernels(k_tr.nngp, k_cross.nngp, y_train, t=t, kernel="nngp", nngp_test=nngp_test,
                               diag_reg=diag_reg, lr=lr)  # fmt: skip
    return predict_kernels(
        k_tr.ntk, k_cross.ntk, y_train, t=t, kernel="ntk",
        nngp_train=k_tr.nngp if covariance else None, nngp_test_train=k_cross.nngp if covariance else None,
        nngp_test=nngp_test, diag_reg=diag_reg, lr=lr,
    )  # fmt: skip


def max_learning_rate(net, X_train, diag_reg=0.0, kernel="ntk") -> float:
    r"""The largest stable learning rate of full-batch gradient descent on :math:`\frac1{2n}\sum\|f - y\|^2`.

    .. math:: \eta_{\max} = \frac{2n}{\lambda_{\max}(\Theta + rI)},

    since one step maps the training residual to :math:`(I - \eta\Theta/n)` times itself, which shrinks every
    eigenmode iff :math:`|1 - \eta\lambda/n| < 1` (Lee et al. 2019, sec. 2.3.1 and their App. on the critical
    learning rate; Neural Tangents' ``max_learning_rate`` with ``y_train_size = n``). :func:`predict` with
    ``lr >= eta_max`` raises.

    Parameters
    ----------
    net : Network
    X_train : array_like (n, d)
    diag_reg : float
        ``>= 0``, added to the kernel's diagonal.
    kernel : {"ntk", "nngp"}
        The kernel gradient descent runs with: the NTK (all layers trained) or the NNGP (only the readout
        trained, NTK parameterization, readout bias included).

    Returns
    -------
    float
        ``inf`` when the kernel is zero.

    Examples
    --------
    >>> from meanfield import Network
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]]) * np.sqrt(2)
    >>> round(max_learning_rate(Network(3), X), 10)   # 2 n / (Theta(x,x) + Theta(x,x'))
    0.5426364907
    """
    net = check_network(net, supports=_ALL_FEATURES, what="max_learning_rate")
    X, _ = _net_inputs(X_train, None)
    kernel = check_choice(kernel, KERNELS, "kernel")
    diag_reg = check_real(diag_reg, "diag_reg", low=0.0)
    from .propagation.dataset import kernels

    k = kernels(X, net)
    K = k.ntk if kernel == "ntk" else k.nngp
    with _blas_for(K.shape[0]):
        lam_max = float(np.linalg.eigvalsh(K)[-1]) + diag_reg
    return 2.0 * X.shape[0] / lam_max if lam_max > 0 else float("inf")
