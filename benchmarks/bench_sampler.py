"""Sampler throughput (networks/s) against the bare matmuls of the same shapes, measured in the same run.

    PYTHONPATH=. python benchmarks/bench_sampler.py [--nets M] [--repeat R]

For each configuration it times
  * ``simulate`` (quantities nngp + ntk, default batch size, one BLAS thread, as the sampler runs by default),
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


def run(width, depth, n, n_nets, repeat):
    net = mf.Network(depth, "relu", width=width)
    d = width
    X = np.random.default_rng(0).standard_normal((n, d))
    batch = max(1, min(n_nets, _MEMORY_BUDGET // _per_net_bytes(net, d, n, True)))
    n_nets = max(n_nets, batch)
    simulate(X, net, batch, quantities=("nngp", "ntk"))  # warm-up
    t_sim = best_of(lambda: simulate(X, net, n_nets, quantities=("nngp", "ntk")), repeat)

    Ws, _ = draw_stack(net, d, 1, False, seed_sequences(0, batch))
    with threadpool_limits(1, user_api="blas"):
        t_mm = best_of(lambda: [bare_matmuls(X, Ws) for _ in range(n_nets // batch)], repeat)
    n_mm = batch * (n_nets // batch)
    n_normals = sum(W[0].size for W in Ws)
    out = np.empty(n_normals)
    rng = np.random.Generator(np.random.SFC64(0))
    t_rng = best_of(lambda: [rng.standard_normal(out=out) for _ in range(n_nets)], repeat)

    tracemalloc.start()
    simulate(X, net, n_nets, quantities=("nngp", "ntk"))
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
    args = ap.parse_args()
    for cfg in CONFIGS:
        run(*cfg, args.nets, args.repeat)


if __name__ == "__main__":
    main()
