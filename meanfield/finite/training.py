"""Training finite networks: mini-batch SGD with momentum and weight decay on :class:`meanfield.finite.MLP`.

The gradients come from :meth:`MLP.grads`, the package's one forward/backward implementation; nothing here
differentiates anything. The layer-wise tangent-kernel alignment :math:`A_l` of Lou et al. 2022 (eq. (7)) is recorded
with :func:`meanfield.alignment.layer_alignment` at chosen epochs, which is what the Equilibrium Hypothesis experiment
(:mod:`meanfield.experiments`) needs.
"""

from __future__ import annotations

import numbers
import sys
import time
from dataclasses import dataclass

import numpy as np

from .._checks import check_int, check_network, check_real, check_seed
from ..alignment.measures import cka, layer_alignment, target_kernel
from .mlp import MLP
from .montecarlo import blas_limit
from .optim import step_scales

__all__ = ["History", "train", "accuracy"]

_LOSSES = ("xent", "mse")


@dataclass(frozen=True)
class History:
    """What :func:`train` recorded.

    Attributes
    ----------
    epochs : ndarray of int
        Epochs at which the records below were taken (0 = before training; the last epoch is always included).
    loss, test_loss : ndarray
        Loss on the whole training / test set at those epochs (``test_loss`` is None without test data); shape
        ``(records,)``, or ``(records, S)`` for a stack of networks.
    train_acc, test_acc : ndarray
        Classification accuracy (argmax of the outputs; sign agreement when there is one output).
    alignment : ndarray or None
        :math:`A_l`, shape ``(records, [S,] L)``, on the alignment subset (None if not requested).
    align_index : ndarray or None
        Rows of the training set used for :math:`A_l`.
    feature_alignment : ndarray or None
        The layer-wise target alignment of Canatar & Pehlevan 2022: CKA of the feature kernels
        :math:`h_{l-1} h_{l-1}^\top` of the input of every layer (:meth:`MLP.feature_kernel`, ``l = 1..L``,
        ``l = 1`` the inputs ``X``) with :math:`YY^\top`, shape ``(records, [S,] L)``, on the same subset.
    step_loss : ndarray
        Mini-batch loss of every step, shape ``(steps,)`` or ``(steps, S)``.
    mlp : MLP
        The trained network (the input network is left unchanged).
    seconds : float
        Wall time of the run.
    """

    epochs: np.ndarray
    loss: np.ndarray
    train_acc: np.ndarray
    test_loss: np.ndarray | None
    test_acc: np.ndarray | None
    alignment: np.ndarray | None
    align_index: np.ndarray | None
    step_loss: np.ndarray
    mlp: MLP
    seconds: float
    feature_alignment: np.ndarray | None = None

    @property
    def peak_layer(self):
        """1-based :math:`\\arg\\max_l A_l` at the last record (int, or an array for a stack)."""
        if self.alignment is None:
            raise ValueError("no alignment was recorded (train(..., align_samples=None))")
        out = np.argmax(self.alignment[-1], axis=-1) + 1
        return int(out) if np.ndim(out) == 0 else out


def accuracy(output, Y) -> np.ndarray | float:
    """Fraction of rows whose largest output matches the largest target (sign agreement when ``o = 1``).

    Parameters
    ----------
    output : ndarray, shape ([S,] n, o)
    Y : ndarray, shape (n, o)

    Returns
    -------
    float or ndarray (S,)

    Examples
    --------
    >>> accuracy(np.array([[2.0, 1.0], [0.0, 3.0]]), np.array([[1.0, 0.0], [1.0, 0.0]]))
    0.5
    """
    output = np.asarray(output)
    if output.shape[-1] == 1:
        hit = np.sign(output[..., 0]) == np.sign(Y[:, 0])
    else:
        hit = np.argmax(output, axis=-1) == np.argmax(Y, axis=-1)
    out = hit.mean(axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def _record_epochs(record_every, epochs):
    if record_every is None:
        marks = {epochs}
    elif isinstance(record_every, numbers.Integral) and not isinstance(record_every, bool):
        check_int(record_every, "record_every")
        marks = set(range(0, epochs + 1, int(record_every))) | {epochs}
    else:
        try:
            marks = {int(e) for e in record_every}
        except (TypeError, ValueError):
            raise ValueError("record_every must be None, an integer >= 1 or a list of epochs") from None
        if any(e < 0 or e > epochs for e in marks):
            raise ValueError(f"record_every epochs must lie in [0, epochs = {epochs}]")
        marks |= {epochs}
    return sorted(marks | {0})


def train(
    mlp,
    X,
    Y,
    epochs,
    lr,
    batch_size,
    momentum=0.9,
    weight_decay=0.0,
    loss="xent",
    record_every=None,
    seed=None,
    X_test=None,
    Y_test=None,
    align_samples=None,
    progress=None,
    blas_threads=1,
    layer_lr=None,
    speeds=None,
    slo_eps=0.1,
    callback=None,
    stop_loss=None,
) -> History:
    r"""Train a finite network by mini-batch SGD with momentum and weight decay.

    Parameters
    ----------
    mlp : MLP
        The network to train (a copy is trained; ``mlp`` itself is not modified). A stack of networks trains
        every network of the stack on the same batches.
    X : array_like (n, d)
        Training inputs.
    Y : array_like (n, o) or (n,)
        Targets: one-hot rows, real targets, or integer class labels (turned into one-hot rows).
    epochs : int
        Passes over the training set.
    lr : float
        Learning rate :math:`\eta > 0`.
    batch_size : int
        Mini-batch size; each epoch visits a fresh random permutation, the last batch may be smaller.
    momentum : float
        :math:`\mu \in [0, 1)`.
    weight_decay : float
        :math:`\lambda \ge 0`, applied to every parameter (weights and biases), as an added :math:`\lambda p` in
        the gradient.
    loss : {"xent", "mse"}
        Softmax cross-entropy or :math:`\frac1{2n}\sum\|f - y\|^2` (:meth:`MLP.loss_grad`).
    record_every : None, int or sequence of int
        Record after every k-th epoch, or at the listed epochs; epoch 0 (initialization) and the last epoch are
        always recorded.
    seed : None or int
        Seeds the batch order and the alignment subset.
    X_test, Y_test : array_like, optional
        Held-out data for the test loss and accuracy.
    align_samples : int, optional
        Record :math:`A_l` (:func:`meanfield.alignment.layer_alignment`) and the feature-kernel alignments
        (``History.feature_alignment``, Canatar & Pehlevan 2022) on this many training rows (a fixed random
        subset, at most n).
        The layer kernels are :math:`(n_a o)\times(n_a o)`, so memory grows like :math:`L (n_a o)^2`.
    progress : bool, optional
        Show a tqdm progress bar; default: on for runs of 5000 steps or more when stderr is a terminal.
    blas_threads : int or None
        BLAS threads during training (threadpoolctl, when installed). Default 1: the steps are small matmuls
        (batch x width), where BLAS threading costs more than it gains (measured on 2 busy cores, depth 10,
        width 100, batch 128: 8 ms per step with 1 thread, 500 ms with the default pool). None leaves BLAS alone.

    layer_lr : sequence of float, optional
        Per-layer learning-rate multipliers :math:`c_l` (layer ``l`` trains at :math:`\eta c_l`; the per-layer rates
        of Atanasov et al. 2022, sec. 4).
    speeds : sequence of float, optional
        Speed-limited optimization (Beaglehole et al. 2024, sec. 5.2, sign-corrected:
        :func:`meanfield.finite.slo_step`): layer ``l``'s gradient is replaced by
        :math:`C_l g_l/(\epsilon + \|g_l\|)` with :math:`\epsilon` = ``slo_eps``. Not with ``layer_lr``.
    slo_eps : float
        :math:`\epsilon \ge 0` of speed-limited optimization (Beaglehole et al. 2024, App. I: 0.1).
    callback : callable, optional
        ``callback(epoch, mlp)`` is called once before training (``epoch = 0``) and after every epoch, with the
        network being trained (live parameter arrays: read them or copy them, do not modify them). Its return value
        is ignored. For per-step observables of full-batch runs (one step per epoch), e.g. kernel alignment
        curves, that ``record_every`` does not keep.
    stop_loss : float, optional
        Stop after the first epoch whose mean mini-batch loss (the running training loss of the epoch, averaged over
        its steps; for a stack, of every network) is ``<= stop_loss``; that epoch is recorded and is
        ``History.epochs[-1]``. Lou et al. 2022 stop "after a train loss of 0.1 or 500 epochs, whichever was
        sooner" (Fig. 4) and "until convergence (train loss reaches 0.1)" (Figs. 12-15). Default: run all ``epochs``.

    Returns
    -------
    History

    Notes
    -----
    With ``layer_lr`` or ``speeds`` the batch gradient of each layer is first multiplied by
    :func:`meanfield.finite.step_scales` (before weight decay and momentum).

    One step on a batch :math:`\mathcal B` (PyTorch's ``SGD(momentum, weight_decay)`` with no dampening and no
    Nesterov; Lou et al. 2022, sec. 3.4 say "SGD with momentum and weight decay" without values):

    .. math:: g = \nabla_\theta\,\ell_{\mathcal B}(\theta) + \lambda\theta,\qquad
              v \leftarrow \mu v + g\ (v_0 = 0),\qquad \theta \leftarrow \theta - \eta v,

    with :math:`\ell_{\mathcal B}` the mean loss over the batch. The gradient is :meth:`MLP.grads` (one forward and
    one backward pass per batch).

    Examples
    --------
    >>> from meanfield import Network
    >>> from meanfield.finite import MLP
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((40, 5)); y = (X[:, 0] > 0).astype(int)
    >>> mlp = MLP.sample(Network(3, width=32), d=5, seed=1, outputs=2)
    >>> h = train(mlp, X, y, epochs=20, lr=0.05, batch_size=10, seed=0)
    >>> bool(h.loss[-1] < h.loss[0]), float(h.train_acc[-1]) > 0.9
    (True, True)
    """
    if not isinstance(mlp, MLP):
        raise ValueError(f"mlp must be a meanfield.finite.MLP, got {type(mlp).__name__}")
    # dropout masks are fixed per input row (the network at initialization), not redrawn per step: no training
    check_network(mlp.net, "mlp.net", supports=("schedule", "residual", "normalization"), what="train")
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
    X = mlp.check_inputs(X)
    n = X.shape[0]
    Y = mlp.targets(Y, n, "mse", "Y")
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size")
    lr = check_real(lr, "lr", low=0, low_open=True)
    momentum = check_real(momentum, "momentum", low=0.0, high=1.0, high_open=True)
    weight_decay = check_real(weight_decay, "weight_decay", low=0.0)
    seed = check_seed(seed)
    if stop_loss is not None:
        stop_loss = check_real(stop_loss, "stop_loss", low=0.0)
    if callback is not None and not callable(callback):
        raise ValueError(f"callback must be callable as callback(epoch, mlp) or None, got {callback!r}")
    if (X_test is None) != (Y_test is None):
        raise ValueError("give both X_test and Y_test, or neither")
    if X_test is not None:
        X_test = mlp.check_inputs(X_test)
        Y_test = mlp.targets(Y_test, X_test.shape[0], "mse", "Y_test")
    marks = _record_epochs(record_every, epochs)
    rng = np.random.default_rng(seed)
    align_index = None
    if align_samples is not None:
        k = check_int(align_samples, "align_samples")
        align_index = np.sort(rng.choice(n, size=min(k, n), replace=False))

    net = mlp.copy()
    records = {
        "epochs": [],
        "loss": [],
        "train_acc": [],
        "test_loss": [],
        "test_acc": [],
        "alignment": [],
        "feature_alignment": [],
    }

    def record(epoch):
        value, _ = net.loss_grad(X, Y, loss)
        records["epochs"].append(epoch)
        records["loss"].append(value)
        records["train_acc"].append(accuracy(net(X), Y))
        if X_test is not None:
            records["test_loss"].append(net.loss_grad(X_test, Y_test, loss)[0])
            records["test_acc"].append(accuracy(net(X_test), Y_test))
        if align_index is not None:
            Xa, Ya = X[align_index], Y[align_index]
            records["alignment"].append(layer_alignment(net, Xa, Ya))
            target = target_kernel(Ya)
            feats = [cka(net.feature_kernel(Xa, l), target) for l in range(1, net.net.depth + 1)]
            records["feature_alignment"].append(np.stack(feats, axis=-1))

    steps_per_epoch = -(-n // batch_size)
    total = epochs * steps_per_epoch
    if progress is None:
        progress = total >= 5000 and sys.stderr.isatty()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"train L={net.net.depth}", leave=False)
    rule = None
    if layer_lr is not None or speeds is not None:
        rule = dict(layer_lr=layer_lr, speeds=speeds, eps=slo_eps)
        step_scales(net, [np.zeros_like(p) for p in net.params], **rule)  # validate before training
    step_loss = []
    start = time.perf_counter()
    # overflow in a diverging run is reported below as a FloatingPointError, not as numpy warnings
    with blas_limit(blas_threads), np.errstate(over="ignore", invalid="ignore"):
        _run(
            net, X, Y, loss, epochs, batch_size, lr, momentum, weight_decay, rng, marks, record, bar, step_loss, rule,
            callback, stop_loss,
        )  # fmt: skip
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - start

    def arr(key):
        return np.asarray(records[key]) if records[key] else None

    return History(
        np.asarray(records["epochs"]), arr("loss"), arr("train_acc"), arr("test_loss"), arr("test_acc"),
        arr("alignment"), align_index, np.asarray(step_loss), net, seconds, arr("feature_alignment"),
    )  # fmt: skip


def pow2_scaled(g, m):
    """g times a per-layer multiplier that is a float or one value per network of a stack."""
    m = np.asarray(m, dtype=np.float64)
    return g * m.reshape(m.shape + (1,) * (g.ndim - m.ndim))


def _run(net, X, Y, loss, epochs, batch_size, lr, momentum, weight_decay, rng, marks, record, bar, step_loss,
         rule=None, callback=None, stop_loss=None):  # fmt: skip
    """The SGD loop: PyTorch's SGD(momentum, weight_decay), one MLP.grads call per batch."""
    n = X.shape[0]
    per = 1 if net.biases is None else 2
    steps_per_epoch = -(-n // batch_size)
    params = net.params  # views into net's arrays: updated in place
    velocity = [np.zeros_like(p) for p in params]
    if 0 in marks:
        record(0)
    if callback is not None:
        callback(0, net)
    for epoch in range(1, epochs + 1):
        order = rng.permutation(n)
        for b in range(steps_per_epoch):
            idx = order[b * batch_size : (b + 1) * batch_size]
            value, grads = net.grads(X[idx], Y[idx], loss)
            if rule is not None:
                scales = step_scales(net, grads, **rule)
                grads = [pow2_scaled(g, scales[i // per]) for i, g in enumerate(grads)]
            for p, g, v in zip(params, grads, velocity, strict=True):
                if weight_decay:
                    g = g + weight_decay * p
                v *= momentum
                v += g
                p -= lr * v
            step_loss.append(value)
            if not np.all(np.isfinite(value)):
                raise FloatingPointError(f"training diverged at epoch {epoch} (loss {value}); lower lr")
        if bar is not None:
            bar.update(steps_per_epoch)
        done = stop_loss is not None and np.all(np.mean(step_loss[-steps_per_epoch:], axis=0) <= stop_loss)
        if epoch in marks or done:
            record(epoch)
        if callback is not None:
            callback(epoch, net)
        if done:
            break
