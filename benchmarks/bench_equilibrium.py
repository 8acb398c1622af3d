"""Benchmark: the predicted peak layer for every depth 1..10^6, and one training run of the default experiment.

Run: ``PYTHONPATH=. python benchmarks/bench_equilibrium.py [--no-train]``. Prints times and ratios against a
baseline measured in the same run (no timed assertions anywhere).

* ``peak_layer(2..10^6)``: the goal is < 1 s (the issue's target), i.e. O(L_max) in total.
* baseline: the same curves through the general pair step (``meanfield.propagation.pair_curve``, two pairs of 10^6
  layers), which is what the exact ReLU path replaces.
* second baseline: one depth at a time for the ten depths of Lou et al. 2022, Fig. 3 (the naive way to fill a figure).
* training: one run of :func:`meanfield.experiments.peak_layers_trained`'s default setting at depths 10 and 50,
  against the same number of bare ``MLP.grads`` calls (the cost of the forward/backward passes alone).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _best(fn, repeat=3):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def bench_theory():
    from meanfield.activations import get_activation
    from meanfield.equilibrium import peak_layer
    from meanfield.equilibrium.curves import _generic_curves
    from meanfield.network import Network

    relu = Network(2)  # ReLU at the edge of chaos (2, 0); the depths are given explicitly
    peak_layer(relu, np.arange(2, 100))  # compile / load the numba cache
    depths = np.arange(2, 10**6 + 1)
    t_all, res = _best(lambda: peak_layer(relu, depths))
    print(f"peak_layer for every depth 2..10^6 ({depths.size} depths): {t_all:.3f} s  (goal < 1 s)")
    print(f"  l*(10^6) = {res.l_star[-1]}, l_cont = {res.l_cont[-1]:.2f}")
    t_gen, _ = _best(lambda: _generic_curves(10**6, get_activation("relu"), 2.0, 0.0, np.array([2.0, 0.5])), 1)
    print(f"baseline: general pair step for the same two curves: {t_gen:.3f} s  (ratio {t_gen / t_all:.1f}x)")
    fig3 = np.arange(10, 101, 10)
    t_one, _ = _best(lambda: [peak_layer(Network(int(L))) for L in fig3])
    t_arr, _ = _best(lambda: peak_layer(relu, fig3))
    print(f"Fig. 3 depths 10..100: one at a time {t_one * 1e3:.2f} ms, array form {t_arr * 1e3:.2f} ms "
          f"(ratio {t_one / t_arr:.1f}x)")  # fmt: skip
    return t_all


def bench_training(depths=(10, 50)):
    from meanfield.data import digits
    from meanfield.experiments import default_lr, peak_layers_trained
    from meanfield.finite import MLP
    from meanfield.finite.montecarlo import blas_limit
    from meanfield.network import Network

    data = digits(seed=0)
    X, y = data[0], data[1]
    for L in depths:
        t = time.perf_counter()
        res = peak_layers_trained(depths=[L], data=data, seed=0)
        dt = time.perf_counter() - t
        hist = res.histories[0]
        steps = hist.step_loss.shape[0]
        # baseline: the same number of bare MLP.grads calls on batches of 32 (no update, no records)
        mlp = MLP.sample(Network(L, width=100, parameterization="standard"), d=64, seed=0, outputs=10)
        idx = np.arange(32)
        with blas_limit(1):
            t = time.perf_counter()
            for s in range(steps):
                mlp.grads(X[(idx + 32 * s) % X.shape[0]], y[(idx + 32 * s) % X.shape[0]], "xent")
            base = time.perf_counter() - t
        print(
            f"training L = {L} (default experiment: width 100, 40 epochs, batch 32, lr {default_lr(L):.2g}, "
            f"{steps} steps): {dt:.1f} s; bare MLP.grads for the same steps {base:.1f} s (ratio {dt / base:.2f}); "
            f"peak layer {res.trained[0]} vs predicted {res.predicted[0]}, test acc {res.test_acc[0, 0]:.3f}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-train", action="store_true", help="skip the training benchmark")
    args = parser.parse_args(argv)
    bench_theory()
    if not args.no_train:
        bench_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
