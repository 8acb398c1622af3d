"""Kernels larger than memory: :func:`meanfield.kernels_to_disk` at large n against in-memory :func:`kernels`.

Usage::

    PYTHONPATH=. python benchmarks/bench_ondisk.py [--n 30000] [--ref 2000] [--block 2048] [--depth 10] [--d 32]
                                                   [--out /tmp/meanfield-ondisk] [--repeat 3] [--keep]

ReLU NNGP + NTK at depth L on n Gaussian inputs: the on-disk run (two n x n float64 arrays, 7.2 GB each at
n = 30 000) and the in-memory run at n = ``--ref`` each run in a fresh subprocess, which reports its wall time, its
CPU time and its peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Printed: time per kernel
entry of each and their ratio, in wall-clock and in process CPU time (the in-memory time is the best of
``--repeat`` runs, measured before and after the large run, since the machine is shared), the peak RSS of the
on-disk run, and a bit-for-bit check of the files against in-memory kernels of the first and last ``2 * block``
inputs. The output directory is deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np


def _inputs(n, d):
    return np.random.default_rng(0).standard_normal((n, d))


def _child(args):
    from meanfield import Network, kernels, kernels_to_disk

    net = Network(args.depth, "relu")
    X = _inputs(args.n, args.d)
    if args.child == "memory":
        kernels(X[:64], net)  # compilation outside the timing
        best, best_cpu = np.inf, np.inf
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            kernels(X, net)
            best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
        t, cpu = best, best_cpu
    else:
        kernels(X[:64], net)
        kernels(X[:64], net, X2=X[64:128])  # the cross tiles' compiled code too
        t0, c0 = time.perf_counter(), time.process_time()
        kernels_to_disk(X, net, args.out, block=args.block, progress=True)
        t, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    print(json.dumps({"seconds": t, "cpu": cpu, "peak_rss": rss}))


def _run(mode, n, args):
    cmd = [sys.executable, __file__, "--child", mode, "--n", str(n), "--block", str(args.block), "--depth",
           str(args.depth), "--d", str(args.d), "--out", args.out, "--repeat", str(args.repeat)]  # fmt: skip
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=30000)
    p.add_argument("--ref", type=int, default=2000)
    p.add_argument("--block", type=int, default=2048)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--d", type=int, default=32)
    p.add_argument("--out", default="/tmp/meanfield-ondisk")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--child", choices=["memory", "disk"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return _child(args)

    mem1 = _run("memory", args.ref, args)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    disk = _run("disk", args.n, args)
    mem2 = _run("memory", args.ref, args)
    t_mem = min(mem1["seconds"], mem2["seconds"])
    per_mem = t_mem / args.ref**2
    per_disk = disk["seconds"] / args.n**2
    print(f"in memory  n = {args.ref}: {t_mem:.3f} s, {per_mem * 1e9:.2f} ns/entry, peak RSS "
          f"{max(mem1['peak_rss'], mem2['peak_rss']) / 1e6:.0f} MB (runs: {mem1['seconds']:.3f}, "
          f"{mem2['seconds']:.3f} s)")  # fmt: skip
    print(f"on disk    n = {args.n}: {disk['seconds']:.1f} s, {per_disk * 1e9:.2f} ns/entry, peak RSS "
          f"{disk['peak_rss'] / 1e6:.0f} MB, block {args.block}")  # fmt: skip
    print(f"time per entry, on disk / in memory: {per_disk / per_mem:.3f}")
    cpu_mem = min(mem1["cpu"], mem2["cpu"]) / args.ref**2
    cpu_disk = disk["cpu"] / args.n**2
    print(f"CPU time per entry (both cores; the machine may be shared): in memory {cpu_mem * 1e9:.2f} ns, on disk "
          f"{cpu_disk * 1e9:.2f} ns, ratio {cpu_disk / cpu_mem:.3f}")  # fmt: skip

    from meanfield import Network, kernels
    from meanfield.propagation.ondisk import DiskKernels

    net = Network(args.depth, "relu")
    X = _inputs(args.n, args.d)
    k = DiskKernels(args.out, (args.n, args.n))
    s = 2 * args.block
    for lo in (0, (args.n - s) // 16 * 16):
        ref = kernels(X[lo : lo + s], net)
        same = np.array_equal(k.nngp[lo : lo + s, lo : lo + s], ref.nngp) and np.array_equal(
            k.ntk[lo : lo + s, lo : lo + s], ref.ntk
        )
        print(f"rows/cols {lo}..{lo + s - 1}: bit-identical to in-memory kernels: {same}")
    if not args.keep:
        shutil.rmtree(args.out)


if __name__ == "__main__":
    main()
