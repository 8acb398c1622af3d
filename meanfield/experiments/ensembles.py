r"""Trained ensembles of finite networks: the check of :func:`meanfield.predict` against real training.

:func:`trained_ensemble` trains stacks of independently initialized networks by full-batch gradient descent on the MSE
loss (:func:`meanfield.train`, momentum 0) and records their outputs on the training and test inputs after chosen
numbers of steps; it also returns the outputs of the same initial networks after training the readout alone to
convergence (the NNGP posterior sample of Lee et al. 2019, sec. 2.3.1: with only the last layer trained, the tangent
kernel is the last layer's feature kernel, whose infinite-width limit is the NNGP). Nothing here uses the theory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_bool, check_int, check_real
from ..finite.mlp import MLP
from ..finite.training import train

__all__ = ["SilentGap", "TrainedEnsemble", "silent_alignment_gap", "trained_ensemble"]


@dataclass(frozen=True)
class TrainedEnsemble:
    """What :func:`trained_ensemble` recorded.

    Attributes
    ----------
    steps : ndarray of int (R,)
        Gradient-descent steps of the records (time ``t = lr * steps``).
    test : ndarray (R, S, m)
        Outputs of the ``S`` networks on the test inputs at each record (one output).
    train : ndarray (R, S, n)
        Their outputs on the training inputs.
    readout : ndarray (S, m) or None
        Test outputs of the initial networks after training the readout layer alone to convergence (the limit of
        gradient descent on the readout from its initial value: the minimum-norm change that interpolates).
    lr : float
    seconds : float
    """

    steps: np.ndarray
    test: np.ndarray
    train: np.ndarray
    readout: np.ndarray | None
    lr: float
    seconds: float


def _readout_fit(mlp, X, y, X_test):
    """Outputs on ``X_test`` after gradient descent on the readout ``(W_L, b_L)`` alone, run to convergence.

    The readout is a linear model in its parameters with features ``phi = (m_w h_{L-1}, m_b)``; gradient descent
    from ``theta_0`` converges to ``theta_0 + Phi^+ (y - f_0(X))`` (the minimum-norm correction), computed with
    ``numpy.linalg.lstsq`` per network.
    """
    L = mlp.net.depth
    mw, mb = mlp.multipliers
    _, hs = mlp.forward_pass(X)
    _, hs_t = mlp.forward_pass(X_test)
    f0, f0_t = mlp(X)[..., 0], mlp(X_test)[..., 0]
    f0, f0_t = np.atleast_2d(f0), np.atleast_2d(f0_t)
    out = np.empty_like(f0_t)
    for s in range(f0.shape[0]):
        bias = [] if mlp.biases is None else [np.full((X.shape[0], 1), mb[L - 1])]
        bias_t = [] if mlp.biases is None else [np.full((X_test.shape[0], 1), mb[L - 1])]
        Phi = np.hstack([mw[L - 1] * hs[L - 1][s]] + bias)
        Phi_t = np.hstack([mw[L - 1] * hs_t[L - 1][s]] + bias_t)
        delta = np.linalg.lstsq(Phi, y - f0[s], rcond=None)[0]
        out[s] = f0_t[s] + Phi_t @ delta
    return out


def trained_ensemble(
    net, X, y, X_test, steps, lr, n_nets, seed=0, batch_size=25, readout=True, progress=False
) -> TrainedEnsemble:
    r"""Train ``n_nets`` independently initialized networks by full-batch gradient descent and record their outputs.

    Parameters
    ----------
    net : Network
        The finite spec (``net.width`` required), one output.
    X : array_like (n, d)
        Training inputs.
    y : array_like (n,)
        Scalar targets.
    X_test : array_like (m, d)
    steps : sequence of int
        Steps after which the outputs are recorded (0 = initialization).
    lr : float
        Learning rate :math:`\eta`; the loss is :math:`\frac1{2n}\sum_i (f(x_i) - y_i)^2` (``train(loss="mse")``,
        momentum 0), so after :math:`k` steps the gradient-flow time is :math:`t = \eta k`.
    n_nets : int
        Number of networks.
    seed : int
        Stack ``j`` of ``batch_size`` networks is drawn with ``numpy.random.SeedSequence(seed, spawn_key=(j,))``.
    batch_size : int
        Networks trained together (one BLAS call per layer for the stack; memory grows with it).
    readout : bool
        Also train the readout alone to convergence from the same initial networks (:class:`TrainedEnsemble`).
    progress : bool
        A tqdm bar over the stacks.

    Returns
    -------
    TrainedEnsemble

    Notes
    -----
    Cost: ``n_nets * max(steps)`` forward and backward passes on ``n`` inputs (``train``'s loop).

    Examples
    --------
    >>> from meanfield import Network
    >>> rng = np.random.default_rng(0)
    >>> X, Xt = rng.standard_normal((6, 3)), rng.standard_normal((2, 3))
    >>> e = trained_ensemble(Network(2, width=16), X, X[:, 0], Xt, steps=[0, 5], lr=0.5, n_nets=4, batch_size=2)
    >>> e.test.shape, e.train.shape, e.readout.shape
    ((2, 4, 2), (2, 4, 6), (4, 2))
    """
    import time

    X = np.asarray(X, dtype=np.float64)
    X_test = np.asarray(X_test, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    marks = sorted({check_int(int(s), "steps", low=0) for s in steps})
    lr = check_real(lr, "lr", low=0.0, low_open=True)
    n_nets = check_int(n_nets, "n_nets")
    batch_size = check_int(batch_size, "batch_size")
    readout = check_bool(readout, "readout")
    n, m = X.shape[0], X_test.shape[0]
    R = len(marks)
    test = np.empty((R, n_nets, m))
    tr = np.empty((R, n_nets, n))
    ro = np.empty((n_nets, m)) if readout else None
    chunks = range(0, n_nets, batch_size)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"train width {net.width[0]}", leave=False)
    start = time.perf_counter()
    for j, lo in enumerate(chunks):
        hi = min(lo + batch_size, n_nets)
        mlp = MLP.sample(net, d=X.shape[1], seed=np.random.SeedSequence(seed, spawn_key=(j,)), n_nets=hi - lo)
        if readout:
            ro[lo:hi] = _readout_fit(mlp, X, y, X_test)

        def record(epoch, live, lo=lo, hi=hi):
            if epoch in marks:
                r = marks.index(epoch)
                test[r, lo:hi] = live(X_test)[..., 0]
                tr[r, lo:hi] = live(X)[..., 0]

        train(mlp, X, y, epochs=max(max(marks), 1), lr=lr, batch_size=n, momentum=0.0, loss="mse", seed=0,
              callback=record)  # fmt: skip
    return TrainedEnsemble(np.array(marks), test, tr, ro, lr, time.perf_counter() - start)


@dataclass(frozen=True)
class SilentGap:
    """What :func:`silent_alignment_gap` measured (relative differences on the test inputs)."""

    final: float
    initial: float
    loss: float
    test_norm: float


def silent_alignment_gap(depth, sigma, lr, steps, D=30, N=20, P=10, n_test=8, seed=0, net_seed=1) -> SilentGap:
    r"""Trained linear network vs kernel regression with its final and its initial empirical NTK.

    Atanasov et al. 2022, eq. (14): a network trained from small initialization is (as ``sigma -> 0``) the kernel
    regressor :math:`f(x) = k_\infty(x)^\top K_\infty^{-1} y` of its *final* NTK. Set-up: ``P < D`` Gaussian
    inputs (so the interpolant is not unique and the kernel matters), linear teacher ``y = beta . x`` with a unit
    ``beta``, a depth-``L`` linear network ``f = W_L ... W_1 x`` (standard parameterization, no biases, hidden
    width ``N``, ``W_l`` entries ``N(0, sigma^2 / fan_in)``), full-batch gradient descent on
    :math:`\frac1{2P}\sum(f - y)^2` (:func:`meanfield.train`) for ``steps`` steps at rate ``lr``; the tangent
    kernels are :meth:`MLP.ntk` of the final and the initial network and the regression is
    :func:`meanfield.kernel_regression` (``t = inf``).

    Returns
    -------
    SilentGap
        ``final`` / ``initial``: :math:`\|f_{KR}(X_*) - f(X_*)\| / \|f(X_*)\|` on ``n_test`` Gaussian test inputs
        with the final / initial NTK; ``loss``: the final training loss (check convergence); ``test_norm``:
        :math:`\|f(X_*)\|`.

    Examples
    --------
    >>> g = silent_alignment_gap(2, 1e-2, 0.1, 500)
    >>> bool(g.loss < 1e-15), bool(g.final < 0.01 < 0.2 < g.initial)
    (True, True)
    """
    from ..network import Network
    from ..prediction import kernel_regression

    rng = np.random.default_rng(seed)
    Xt, Xs = rng.standard_normal((P, D)), rng.standard_normal((n_test, D))
    beta = rng.standard_normal(D)
    y = Xt @ (beta / np.linalg.norm(beta))
    r = np.random.default_rng(net_seed)
    widths = [N] * (depth - 1)
    Ws = [r.standard_normal((o, f)) * sigma / np.sqrt(f) for o, f in zip(widths + [1], [D] + widths, strict=True)]
    mlp = MLP(Network(depth, "linear", parameterization="standard", width=widths), Ws)
    h = train(mlp, Xt, y, epochs=steps, lr=lr, batch_size=P, momentum=0.0, loss="mse", seed=0)
    f = h.mlp(Xs)[:, 0]
    XA = np.vstack([Xt, Xs])
    gaps = []
    for m in (h.mlp, mlp):
        K = m.ntk(XA)
        gaps.append(float(np.linalg.norm(kernel_regression(K[:P, :P], K[P:, :P], y) - f) / np.linalg.norm(f)))
    return SilentGap(gaps[0], gaps[1], float(h.loss[-1]), float(np.linalg.norm(f)))
