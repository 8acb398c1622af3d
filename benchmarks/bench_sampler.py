"""Sampler throughput (networks/s) against the bare matmuls of the same shapes, measured in the same run.

    PYTHONPATH=. python benchmarks/bench_sampler.py [--nets M] [--repeat R] [--part 1|2|both]

Part 1 (issue 13): the exact conditional sampler against the weight-drawing sampler at (width 512, depth 10,
n = 8) and (width 2048, depth 20, n = 16): networks/s of ``simulate(method="conditional")`` over
``simulate(method="weights")`` (goal >= 20x) and both against the bare forward/backward matmul rate of the same
shapes. The machine is shared: the methods are timed alternately, best of ``--repeat``, in wall-clock and in
process CPU time.

Part 2: for each configuration of the weight-drawing sampler it times
  * ``simulate`` (method="weights", quantities nngp + ntk, default batch size, one BLAS thread),
  * the bare forward and backward matmuls of the same stacked shapes on pre-drawn weights (one BLAS thread),
  * drawing the same number of unit normals (the weights are N^2 normals per layer and network),
and prints networks/s, the ratio sampler/bare-matmul throughput (goal >= 0.5) and the peak traced memory.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

import meanfield as mf
from meanfield.finite.montecarlo import _MEMORY_BUDGET, _per_net_bytes, simulate
from meanfield.finite.stack import draw_stack
from meanfield.finite.streams import seed_sequences

CONFIGS = [(512, 10, 64), (128, 100, 16)]  # (width, depth, n)
CONDITIONAL_CONFIGS = [(512, 10, 8, 256, 4), (2048, 20, 16, 32, 1)]  # (width, depth, n, nets: conditional, weights)


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bare_matmuls(X, Ws):
    """Forward ``h @ W^T`` and backward ``delta @ W`` for every layer of a stack: the unavoidable matmuls."""
    h = X
    for W in Ws:
        h = np.matmul(h, np.swapaxes(W, -1, -2))
    d = np.ones(h.shape)
    for W in Ws[:0:-1]:
        d = np.matmul(d, W)
    return d


def layer_matmuls(h, W, depth):
    """The bare forward ``h @ W^T`` and backward ``delta @ W`` matmuls of ``depth`` square layers (one ``W`` reused:
    the rate does not depend on the values, and a 2048-wide depth-20 network's weights would take 670 MB)."""
    d = np.ones(h.shape)
    for _ in range(depth):
        h = np.matmul(h, W.T)
        d = np.matmul(d, W)
    return h, d


def conditional_vs_weights(width, depth, n, nets_c, nets_w, repeat):
    """Networks/s of both samplers and of the bare matmuls, timed alternately, best of ``repeat``."""
    net = mf.Network(depth, "relu", width=width)
    X = np.random.default_rng(0).standard_normal((n, width))
    q = ("nngp", "ntk")
    for m in ("conditional", "weights"):
        simulate(X, net, 2, quantities=q, method=m)  # warm-up (numba compilation, imports)
    W = np.random.default_rng(1).standard_normal((width, width)) / np.sqrt(width)
    jobs = {
        "conditional": (nets_c, lambda: simulate(X, net, nets_c, quantities=q, method="conditional")),
        "weights": (nets_w, lambda: simulate(X, net, nets_w, quantities=q, method="weights")),
        "bare matmuls": (4 * nets_w, lambda: [layer_matmuls(X, W, depth) for _ in range(4 * nets_w)]),
    }
    wall = {k: np.inf for k in jobs}
    cpu = {k: np.inf for k in jobs}
    with threadpool_limits(1, user_api="blas"):
        for _ in range(repeat):
            for k, (_, fn) in jobs.items():
                t, c = time.perf_counter(), time.process_time()
                fn()
                wall[k] = min(wall[k], time.perf_counter() - t)
                cpu[k] = min(cpu[k], time.process_time() - c)
    rate = {k: {"wall": jobs[k][0] / wall[k], "cpu": jobs[k][0] / cpu[k]} for k in jobs}
    print(f"width {width:4d}  depth {depth:3d}  n {n:3d}  (best of {repeat}; networks/s, wall-clock | CPU time)")
    for k in jobs:
        print(f"  {k:14s} {rate[k]['wall']:10.2f} | {rate[k]['cpu']:10.2f}")
    for clock in ("wall", "cpu"):
        c, w, m = rate["conditional"][clock], rate["weights"][clock], rate["bare matmuls"][clock]
        print(f"  [{clock:4s}] conditional / weights = {c / w:6.1f}x (goal >= 20)   conditional / bare matmuls = "
              f"{c / m:5.2f}   weights / bare matmuls = {w / m:5.3f}")  # fmt: skip
    return rate


def run(width, depth, n, n_nets, repeat):
    net = mf.Network(depth, "relu", width=width)
    d = width
    X = np.random.default_rng(0).standard_normal((n, d))
    batch = max(1, min(n_nets, _MEMORY_BUDGET // _per_net_bytes(net, d, n, True)))
    n_nets = max(n_nets, batch)
    simulate(X, net, batch, quantities=("nngp", "ntk"), method="weights")  # warm-up
    t_sim = best_of(lambda: simulate(X, net, n_nets, quantities=("nngp", "ntk"), method="weights"), repeat)

    Ws, _ = draw_stack(net, d, 1, False, seed_sequences(0, batch))
    with threadpool_limits(1, user_api="blas"):
        t_mm = best_of(lambda: [bare_matmuls(X, Ws) for _ in range(n_nets // batch)], repeat)
    n_mm = batch * (n_nets // batch)
    n_normals = sum(W[0].size for W in Ws)
    out = np.empty(n_normals)
    rng = np.random.Generator(np.random.SFC64(0))
    t_rng = best_of(lambda: [rng.standard_normal(out=out) for _ in range(n_nets)], repeat)

    tracemalloc.start()
    simulate(X, net, n_nets, quantities=("nngp", "ntk"), method="weights")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    sim_rate, mm_rate, rng_rate = n_nets / t_sim, n_mm / t_mm, n_nets / t_rng
    print(f"width {width:4d}  depth {depth:3d}  n {n:3d}  nets {n_nets}  batch {batch}")
    print(f"  sampler             {sim_rate:9.1f} nets/s")
    print(
        f"  bare matmuls        {mm_rate:9.1f} nets/s   ratio sampler/matmul = {sim_rate / mm_rate:.2f} (goal >= 0.5)"
    )
    bound = 1.0 / (1.0 + mm_rate / rng_rate)
    print(f"  drawing the normals {rng_rate:9.1f} nets/s   ({n_normals / 1e6:.2f} M normals per network)")
    print(f"  ratio bound if the sampler did nothing but draw weights and multiply: {bound:.2f}")
    print(f"  peak traced memory  {peak / 2**20:9.1f} MB  (working-memory budget {_MEMORY_BUDGET / 2**20:.0f} MB)")
    return sim_rate / mm_rate


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--part", choices=("1", "2", "both"), default="both")
    args = ap.parse_args()
    if args.part in ("1", "both"):
        for cfg in CONDITIONAL_CONFIGS:
            conditional_vs_weights(*cfg, args.repeat)
    if args.part in ("2", "both"):
        for cfg in CONFIGS:
            run(*cfg, args.nets, args.repeat)


if __name__ == "__main__":
    main()
