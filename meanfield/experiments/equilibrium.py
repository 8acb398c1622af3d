r"""Lou et al. 2022, Fig. 3 on the CPU: trained peak layers :math:`\arg\max_l A_l` against the predicted
:math:`l^*(L)`."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np

from ..data import digits
from ..equilibrium import peak_layer
from ..finite.mlp import MLP
from ..finite.training import History, train
from ..network import Network
from ..stats import ScalingFit, scaling_fit

__all__ = ["TrainedPeaks", "default_lr", "peak_layers_trained"]


def default_lr(depth):
    """Default learning rate of :func:`peak_layers_trained`: ``min(0.01, 0.02 / L)`` (batch 32).

    Deeper He-initialized networks need smaller steps, as in Lou et al. 2022, Tables 1-3 (lr from 0.003 at L = 10
    down to 1e-4 at L = 100 with batch 128 on MNIST). Tuned on the digits with batch 32, momentum 0.9, 40 epochs
    (``seed=0``): L = 10 trains stably at 0.003 (test accuracy 0.956), L = 20 at 0.001 (0.944), L = 50 at 2.5e-4
    (0.875) but not at 1e-3 or 3e-3 (loss oscillates); L = 100 reaches only 0.27 at 1e-4 and oscillates at 5e-4
    within 40 epochs.
    Lou et al. 2022, Fig. 8 shows that the learning rate moves the intercept of the peak layers.
    """
    return min(0.01, 0.02 / float(depth))


@dataclass(frozen=True)
class TrainedPeaks:
    """Result of :func:`peak_layers_trained`.

    Attributes
    ----------
    depths : ndarray of int
    trained : ndarray of int
        :math:`\\arg\\max_l A_l` at the end of training (of the alignment averaged over the repeats).
    trained_each : ndarray of int, shape (depths, repeats)
        The same for every trained network.
    predicted : ndarray of int
        :math:`l^*(L)` (:func:`meanfield.peak_layer` of ``Network(L)``: ReLU at (2, 0), eps = 0.5).
    predicted_data : ndarray of int
        :math:`l^*(L)` with the correlation range of the training inputs (``pairs=X_train``).
    alignment : tuple of ndarray
        Final :math:`A_l` per depth, shape ``(repeats, L)``.
    test_acc : ndarray, shape (depths, repeats)
    lr : ndarray
        Learning rate used at each depth.
    fit_trained, fit_predicted : ScalingFit or None
        Slope-3/5 fits :math:`\\log l = \\frac35\\log L + C` (the procedure of Lou et al. 2022, Fig. 3; None for
        one depth).
    free_fit_trained, free_fit_predicted : ScalingFit or None
        Free-slope fits (None with fewer than 3 depths).
    histories : tuple of History
        Full training records per depth.
    seconds : float
        Total wall time.
    """

    depths: np.ndarray
    trained: np.ndarray
    trained_each: np.ndarray
    predicted: np.ndarray
    predicted_data: np.ndarray
    alignment: tuple
    test_acc: np.ndarray
    lr: np.ndarray
    fit_trained: ScalingFit | None
    fit_predicted: ScalingFit | None
    free_fit_trained: ScalingFit | None
    free_fit_predicted: ScalingFit | None
    histories: tuple = field(repr=False)
    seconds: float = 0.0

    def table(self) -> list[list]:
        """Rows ``[L, trained, predicted, predicted (data pairs), test accuracy]`` for printing."""
        return [
            [int(L), int(t), int(p), int(q), float(np.mean(a))]
            for L, t, p, q, a in zip(
                self.depths, self.trained, self.predicted, self.predicted_data, self.test_acc, strict=True
            )
        ]


def _per_depth(value, depths, name):
    if value is None:
        return np.array([default_lr(L) for L in depths])
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(depths.size, float(arr))
    if arr.shape != depths.shape or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{name} must be a number > 0 or one per depth ({depths.size}), got {value!r}")
    return arr


def peak_layers_trained(
    depths=tuple(range(10, 101, 10)),
    data=None,
    width=100,
    epochs=40,
    lr=None,
    batch_size=32,
    momentum=0.9,
    weight_decay=5e-4,
    loss="xent",
    align_samples=50,
    repeats=1,
    seed=0,
    parameterization="standard",
    progress=None,
) -> TrainedPeaks:
    r"""Train ReLU MLPs of several depths and compare their peak alignment layer with the predicted :math:`l^*(L)`.

    Parameters
    ----------
    depths : sequence of int
        Depths L >= 2 (Lou et al. 2022, Fig. 3: 10, 20, ..., 100).
    data : tuple, optional
        ``(X_train, y_train, X_test, y_test)`` with integer labels (or one-hot rows); default
        :func:`meanfield.data.digits`. Inputs are used as given (:func:`meanfield.data.to_sphere` puts them on the
        theory's sphere).
    width : int
        Hidden width (Lou et al. 2022: 100 for MNIST/FMNIST in Tables 2-3, 256 for CIFAR10 in Table 1; the text
        says 256 for all).
    epochs, lr, batch_size, momentum, weight_decay, loss :
        As in :func:`meanfield.train`; ``lr`` is a number, one per depth, or None for :func:`default_lr`.
    align_samples : int
        Training rows used for :math:`A_l` (kernels of size ``(align_samples * o)^2`` per layer).
    repeats : int
        Independently initialized networks per depth, trained together as a stack on the same batches.
    seed : int
        Seeds the initializations (network ``r`` of depth ``L`` uses seed ``(seed, L)``, stack index ``r``) and the
        batch order.
    parameterization : {"standard", "ntk"}
        Lou et al. 2022 train in the standard parameterization with He initialization (sigma_w2 = 2,
        sigma_b2 = 0); here every layer has a bias.

    Returns
    -------
    TrainedPeaks

    Notes
    -----
    Lou et al. 2022, sec. 3.4 and Fig. 3: after training, the layer-wise tangent kernels :math:`K_l` are aligned
    with the labels, :math:`A_l = \mathrm{CKA}(K_l, YY^\top)` (eq. (7); :func:`meanfield.alignment.layer_alignment`,
    operator kernel with :math:`o = 10`), and the arg-max layer is compared with the Equilibrium Hypothesis.
    The prediction is :func:`meanfield.peak_layer`. The *initial* infinite-width layer kernels do not show the
    hierarchy (derived here: in a balanced two-cluster model their alignment peaks at the last layer for every
    depth), so only the trained arg-max is meaningful. Both are fitted with :func:`meanfield.scaling_fit`, slope
    fixed at 3/5 and free.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> from meanfield.data import to_sphere
    >>> X0 = rng.standard_normal((60, 6)); X = to_sphere(X0, mean=X0.mean(axis=0)); y = (X[:, 0] > 0).astype(int)
    >>> res = peak_layers_trained([3, 4], data=(X, y, X, y), width=16, epochs=2, lr=0.01, align_samples=10)
    >>> res.predicted.tolist(), res.trained.shape
    ([2, 3], (2,))
    """
    depths = np.asarray(depths)
    if depths.ndim != 1 or depths.size == 0 or not np.issubdtype(depths.dtype, np.integer) or np.any(depths < 2):
        raise ValueError(f"depths must be a non-empty list of integers >= 2, got {depths!r}")
    depths = depths.astype(np.int64)
    if isinstance(repeats, bool) or not isinstance(repeats, numbers.Integral) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    lrs = _per_depth(lr, depths, "lr")
    if data is None:
        data = digits(seed=seed)
    if len(data) != 4:
        raise ValueError("data must be (X_train, y_train, X_test, y_test)")
    X_tr, y_tr, X_te, y_te = data
    X_tr = np.asarray(X_tr, dtype=np.float64)
    y_arr = np.asarray(y_tr)
    outputs = int(y_arr.max()) + 1 if y_arr.ndim == 1 else int(y_arr.shape[1])

    histories, trained_each, aligns, accs = [], [], [], []
    for L, rate in zip(depths, lrs, strict=True):
        net = Network(int(L), "relu", 2.0, 0.0, parameterization=parameterization, width=width)
        mlp = MLP.sample(net, d=X_tr.shape[1], seed=np.random.SeedSequence((seed, int(L))), outputs=outputs,
                         n_nets=repeats)  # fmt: skip
        hist: History = train(
            mlp, X_tr, y_tr, epochs=epochs, lr=float(rate), batch_size=batch_size, momentum=momentum,
            weight_decay=weight_decay, loss=loss, record_every=None, seed=seed, X_test=X_te, Y_test=y_te,
            align_samples=align_samples, progress=progress,
        )  # fmt: skip
        A = hist.alignment[-1]  # (repeats, L)
        histories.append(hist)
        aligns.append(A)
        trained_each.append(hist.peak_layer)
        accs.append(hist.test_acc[-1])
    trained = np.array([int(np.argmax(A.mean(axis=0))) + 1 for A in aligns])
    theory = Network(int(depths.max()))  # ReLU at the edge of chaos (2, 0), infinite width
    predicted = peak_layer(theory, depths).l_star
    predicted_data = peak_layer(theory, depths, pairs=X_tr).l_star
    fixed = np.unique(depths).size >= 2
    free = depths.size >= 3 and fixed
    return TrainedPeaks(
        depths=depths,
        trained=trained,
        trained_each=np.array(trained_each),
        predicted=np.asarray(predicted),
        predicted_data=np.asarray(predicted_data),
        alignment=tuple(aligns),
        test_acc=np.array(accs),
        lr=lrs,
        fit_trained=scaling_fit(depths, trained, slope=0.6) if fixed else None,
        fit_predicted=scaling_fit(depths, predicted, slope=0.6) if fixed else None,
        free_fit_trained=scaling_fit(depths, trained) if free else None,
        free_fit_predicted=scaling_fit(depths, predicted) if free else None,
        histories=tuple(histories),
        seconds=float(sum(h.seconds for h in histories)),
    )
