"""Throughput of the NTK-diagonal samplers of meanfield.dispersion against bare batched matmul (same run).

Usage::

    PYTHONPATH=. python benchmarks/bench_dispersion.py [--width 50] [--depth 25] [--networks 100000] [--jobs 2]
                                                       [--reject]

Prints networks per second of each sampler next to two baselines measured in the same process on the same shapes:
``matmul`` = the forward and backward matrix-vector products of the networks with pre-drawn weights (no random
numbers), ``normals`` = drawing the weights only. ``--reject`` adds the Monte Carlo run that rejects
Seleznova & Kutyniok 2022, Thm. 3.2 (a million networks). ``--jobs`` threads run the batches
(a ``ThreadPoolExecutor``; the numba kernels release the GIL).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from meanfield import Network
from meanfield.dispersion import estimate, ntk_moments, sample_ntk_diagonal


def _net(widths, sigma_w2):
    """``(net, d)`` of the dispersion samplers for the widths ``n_0..n_{L-1}``."""
    return Network(len(widths), "relu", sigma_w2, parameterization="standard", width=tuple(widths[1:])), widths[0]


def _timeit(fn, repeat=1):
    fn()  # warm-up (numba compilation, allocations)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def bare_matmul_rate(width, depth, batch=512):
    """Networks/s of 2 (L - 2) batched (1 x n)(n x n) products plus the readout, weights pre-drawn."""
    rng = np.random.default_rng(0)
    Ws = rng.standard_normal((depth - 2, batch, width, width)) / np.sqrt(width)
    x0 = np.abs(rng.standard_normal((batch, 1, width)))

    def run():
        x = x0
        for W in Ws:
            x = np.maximum(x @ W.transpose(0, 2, 1), 0.0)
        d = x
        for W in Ws[::-1]:
            d = d @ W

    return batch / _timeit(run, repeat=3)


def bare_normals_rate(width, depth, batch=512):
    """Networks/s of drawing (L - 2) n x n Gaussian weight matrices into a reused buffer."""
    rng = np.random.default_rng(0)
    buf = np.empty((depth - 2) * batch * width * width)
    return batch / _timeit(lambda: rng.standard_normal(out=buf), repeat=3)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=50)
    p.add_argument("--depth", type=int, default=25)
    p.add_argument("--networks", type=int, default=100_000)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--reject", action="store_true")
    args = p.parse_args(argv)
    widths = [args.width] * args.depth
    print(f"widths [{args.width}] x {args.depth}, sigma_w2 = 2, {args.jobs} thread(s), cpu_count = {os.cpu_count()}")
    base_mm = bare_matmul_rate(args.width, args.depth)
    base_rng = bare_normals_rate(args.width, args.depth)
    print(f"{'baseline':28s} {'networks/s':>12s}")
    print(f"{'bare matmul (fwd + bwd)':28s} {base_mm:12.0f}")
    print(f"{'bare normals (all weights)':28s} {base_rng:12.0f}")
    exact = ntk_moments(*_net(widths, 2.0))
    print(
        f"\n{'sampler':12s} {'networks':>9s} {'seconds':>8s} {'networks/s':>11s} {'/matmul':>8s} "
        f"{'D (MC)':>8s} {'+-':>7s} {'z vs exact':>10s}"
    )
    pool = ThreadPoolExecutor(args.jobs) if args.jobs > 1 else None
    for method, n in (
        ("projection", args.networks),
        ("law", args.networks),
        ("matmul", max(2000, args.networks // 20)),
    ):
        sample_ntk_diagonal(*_net(widths, 2.0), 64, method=method, seed=0, executor=pool)  # compile / warm up
        t0 = time.perf_counter()
        s = sample_ntk_diagonal(*_net(widths, 2.0), n, method=method, seed=1, executor=pool)
        dt = time.perf_counter() - t0
        e = estimate(s.theta, n_boot=2, seed=0)
        print(
            f"{method:12s} {n:9d} {dt:8.2f} {n / dt:11.0f} {n / dt / base_mm:8.2f} {e.naive:8.4f} "
            f"{e.naive_stderr:7.4f} {(e.naive - exact.dispersion) / e.naive_stderr:+10.2f}"
        )
    paper = ntk_moments(*_net(widths, 2.0), form="published").dispersion
    print(f"exact dispersion {exact.dispersion:.6f}; Seleznova & Kutyniok 2022, Thm. 3.2 as published {paper:.6f}")
    if args.reject:
        w, sw2, n = [20] * 6, 2.5, 1_000_000
        t0 = time.perf_counter()
        s = sample_ntk_diagonal(*_net(w, sw2), n, seed=7, executor=pool)
        e = estimate(s.theta, n_boot=2, seed=0)
        ex, pa = ntk_moments(*_net(w, sw2)).dispersion, ntk_moments(*_net(w, sw2), form="published").dispersion
        se = e.naive_stderr
        print(
            f"\n[20]x6, sigma_w2 = 2.5, {n} networks ({time.perf_counter() - t0:.1f} s): D = {e.naive:.5f} "
            f"+- {se:.5f}; exact {ex:.5f} (z = {(e.naive - ex) / se:+.2f}), "
            f"Thm 3.2 {pa:.5f} (z = {(e.naive - pa) / se:+.2f})"
        )
    if pool is not None:
        pool.shutdown()


if __name__ == "__main__":
    main()
