"""Timing of :func:`meanfield.phase_diagram` on 200 x 200 grids (best of N, after one warm-up call).

Targets (issue 14): tanh under 5 s; the ReLU family and erf under 1 s.
Run: ``python benchmarks/bench_phase_diagram.py [activation ...]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import meanfield as mf

GRIDS = {
    # the window of Poole et al. 2016, Fig. 2 and Schoenholz et al. 2017, Fig. 1
    "tanh": (np.linspace(0.5, 4.0, 200), np.linspace(0.0, 0.3, 200)),
    "erf": (np.linspace(0.5, 4.0, 200), np.linspace(0.0, 0.3, 200)),
    "relu": (np.linspace(0.5, 4.0, 200), np.linspace(0.0, 0.3, 200)),
    "leaky_relu:0.1": (np.linspace(0.5, 4.0, 200), np.linspace(0.0, 0.3, 200)),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("activations", nargs="*", default=list(GRIDS))
    args = parser.parse_args(argv)
    for name in args.activations:
        sw, sb = GRIDS.get(name, GRIDS["tanh"])
        mf.phase_diagram(name, sw[:4], sb[:4])  # warm-up: numba caches, quadrature rules
        times, cpu = [], []
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            d = mf.phase_diagram(name, sw, sb)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        chaotic = float(np.mean(d.phase == 1))
        print(
            f"{name:16s} {sb.size} x {sw.size}: best {min(times):.3f} s of {args.repeat} "
            f"(all: {', '.join(f'{t:.3f}' for t in times)}); CPU time best {min(cpu):.3f} s; "
            f"chaotic fraction {chaotic:.2f}"
        )


if __name__ == "__main__":
    main()
