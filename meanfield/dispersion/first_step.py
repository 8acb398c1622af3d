"""The change of the NTK in the first gradient-descent step, by simulation (Seleznova & Kutyniok 2022, Thm. 4.1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_int, check_real
from ..finite.montecarlo import run
from ..finite.optim import gd_step
from ..stats import stderr
from .sampling import default_batch, network_widths, probe_inputs, sp_relu_stack

__all__ = ["GDStepResult", "gd_step_change"]


@dataclass(frozen=True)
class GDStepResult:
    """Relative change of the diagonal NTK entry after one gradient-descent step, estimated by simulation.

    Attributes
    ----------
    relative_change : float
        ``E[Delta Theta(x, x)] / E[Theta(x, x)]`` (ratio of sample means).
    stderr : float
        Its standard error (delta method).
    mean_theta, mean_delta : float
        Sample means of ``Theta(x, x)`` at initialization and of ``Delta Theta(x, x)``.
    n_nets : int
    """

    relative_change: float
    stderr: float
    mean_theta: float
    mean_delta: float
    n_nets: int


def _gd_theta(mlp, X, lr, y):
    """Theta(x, x) of each network before and after one exact gradient step on ``(x, y)`` with the loss
    ``(f(x) - y)^2 / 2`` (``MLP.grads`` with ``loss="mse"``, all weights and biases)."""
    theta0 = mlp.ntk(X)[..., 0, 0]
    _, grads = mlp.grads(X, np.array([[y]]), "mse")
    theta1 = gd_step(mlp, grads, lr).ntk(X)[..., 0, 0]
    return theta0, theta1


def _gd_task(batch, n_int, sw2, x0sq, lr, y):
    theta0, theta1 = _gd_theta(sp_relu_stack(batch.seeds, n_int, sw2), probe_inputs(int(n_int[0]), x0sq), lr, y)
    return {"theta": theta0, "delta": theta1 - theta0}


def gd_step_change(net, d, lr, n_nets, y=0.0, x0_norm2=1.0, seed=None, executor=None, progress=False,
                   batch_size=None) -> GDStepResult:  # fmt: skip
    """Relative change ``E[Delta Theta(x,x)] / E[Theta(x,x)]`` of the NTK after one exact GD step (simulation).

    Parameters
    ----------
    net : Network
        Finite-width ReLU network in standard parameterization with ``sigma_b2 = 0``, depth ``L >= 2``
        (:func:`meanfield.dispersion.moments.check_network`).
    d : int
        Input dimension ``n_0``.
    lr : float
        Learning rate ``eta > 0``.
    n_nets : int
        Number of independent networks (``>= 2``).
    y : float
        Target of the training sample; loss ``(f(x) - y)^2 / 2``.
    x0_norm2 : float
        ``||x||^2``.
    seed, executor, progress, batch_size :
        As in :func:`meanfield.dispersion.sample_ntk_diagonal`.

    Returns
    -------
    GDStepResult

    Notes
    -----
    Each network takes one full-batch GD step on the single sample ``(x, y)`` (all weights and biases,
    ``W^l -= eta (f - y) delta^l x^{l-1,T}``, ``b^l -= eta (f - y) delta^l``), then ``Theta(x, x)`` is recomputed
    exactly (no linearization), all through :class:`meanfield.MLP` (``grads``, :func:`meanfield.finite.gd_step`,
    ``ntk``). The standard error is the delta-method error of the ratio of means.

    What Seleznova & Kutyniok 2022 prove (Thm. 4.1, proved as Thm. A.10): in the limit ``M, L -> inf``,
    ``L/M -> lambda`` at fixed ``eta``, the relative change tends to infinity in the chaotic phase (``a > 1``,
    eq. (21)) and to zero in the ordered phase (eq. (22)). The proof bounds ``E|Delta Theta|``, not
    ``E[Delta Theta]``, and tacitly takes ``y = 0``; the change scales like ``eta a^L / M``, so
    ``eta = O(a^{-L})`` is needed; the ordered-phase bound is ``~ eta a^{2L} L^2``. The theorem gives no value at
    finite size and no statement at the EOC (the paper cites Hanin & Nica 2019: exponential in lambda), and its
    constants reuse Lemma A.4, which does not hold at ``O(1)`` (only the exponential rates matter for the
    conclusions). This function measures the finite-size value; it proves nothing about the limit.

    Sign: the term the proof keeps is ``-2 eta f(x)^2 sum_l ||delta^{l+1}||^2 (||x^{l-1}||^2 + 1) < 0`` (for
    ``y = 0``), so the published eq. (21) (``E[Delta Theta]/E[Theta] -> +inf``) holds only as
    ``|E[Delta Theta]| / E[Theta] -> inf``: in simulation the NTK *decreases*. Measured here (widths [30] x L,
    ``eta = 2e-3``, 3000 networks): ``sigma_w2 = 3``: -0.0043(5), -0.084(5), -0.44(2) for L = 3, 6, 12; EOC:
    -0.0016(2), -0.010(1), -0.048(8); ``sigma_w2 = 1``: below 5e-4 in magnitude at every depth.

    Examples
    --------
    >>> from meanfield import Network
    >>> r = gd_step_change(Network(4, "relu", 2.0, parameterization="standard", width=20), 20, 1e-3, 200, seed=0)
    >>> bool(np.isfinite(r.relative_change) and r.stderr > 0)
    True
    """
    n_int, sw2 = network_widths(net, d)
    if n_int.size < 2:
        raise ValueError(f"net.depth must be >= 2 (at least one hidden layer) for gd_step_change, got {net.depth}")
    eta = check_real(lr, "lr", low=0, low_open=True)
    x0sq = check_real(x0_norm2, "x0_norm2", low=0, low_open=True)
    n_nets = check_int(n_nets, "n_nets", 2)
    yv = check_real(y, "y")
    size = max(1, default_batch(n_int, "matmul") // 4) if batch_size is None else batch_size
    res = run(_gd_task, n_nets, seed, (n_int, sw2, x0sq, eta, yv), size, executor, progress, desc="GD steps")
    t0, dt = res["theta"], res["delta"]
    m0, md = t0.mean(), dt.mean()
    psi = dt / m0 - md * t0 / m0**2
    return GDStepResult(float(md / m0), stderr(psi, "networks"), float(m0), float(md), n_nets)
