"""Speed of ``meanfield.kernels`` (NNGP + NTK) against baselines measured in the same run.

Baselines:
  (a) a straightforward vectorized numpy recursion over n x n arrays (one layer at a time, closed-form ReLU; for tanh
      a 2-D Gauss-Hermite rule with 20 x 20 nodes, less accurate than meanfield's and only for the small case);
  (b) neural-tangents' analytic ``kernel_fn`` if it is installed (``pip install -e ".[bench]"``); skipped otherwise.

Goals (issue 3): ReLU n=2000, L=100 at least 10x faster than (a) and faster than (b); tanh within 5x of ReLU.
Issue 11: per-layer variance schedules and residual blocks cost at most 1.2x the plain ReLU kernel at n=2000, L=100
(the ratios are printed at the end, timed interleaved in the same run, best of R).
Usage: python benchmarks/bench_kernels.py [--quick] [--threads N] [--repeat R] | --sphere
(--threads sets numba's thread count for meanfield; numpy's BLAS threads are whatever the environment gives, and
the numpy recursion is dominated by elementwise single-threaded ufuncs.)
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import meanfield as mf


def numpy_relu(X, depth, sw=2.0, sb=0.0):
    d = X.shape[1]
    S = sw / d * X @ X.T + sb
    T = S.copy()
    for _ in range(depth - 1):
        q = np.sqrt(np.diag(S))
        c = np.clip(S / np.outer(q, q), -1.0, 1.0)
        th = np.arccos(c)
        Sdot = sw * (np.pi - th) / (2 * np.pi)
        S = sw * np.outer(q, q) * (np.sin(th) + (np.pi - th) * c) / (2 * np.pi) + sb
        T = T * Sdot + S
    return S, T


def numpy_tanh(X, depth, sw, sb, nodes=20):
    x, w = np.polynomial.hermite.hermgauss(nodes)
    z1, z2 = np.meshgrid(x * np.sqrt(2), x * np.sqrt(2), indexing="ij")
    ww = np.outer(w, w).ravel() / np.pi
    z1, z2 = z1.ravel(), z2.ravel()
    d = X.shape[1]
    S = sw / d * X @ X.T + sb
    T = S.copy()
    for _ in range(depth - 1):
        q = np.sqrt(np.diag(S))
        c = np.clip(S / np.outer(q, q), -1.0, 1.0)[..., None]
        u = q[:, None, None] * z1
        v = q[None, :, None] * (c * z1 + np.sqrt(1 - c**2) * z2)
        S = sw * (np.tanh(u) * np.tanh(v)) @ ww + sb
        Sdot = sw * ((1 - np.tanh(u) ** 2) * (1 - np.tanh(v) ** 2)) @ ww
        T = T * Sdot + S
    return S, T


def neural_tangents_fn(depth, act, sw, sb):
    try:
        from neural_tangents import stax
    except ImportError:
        return None
    layers = []
    nl = {"relu": stax.Relu(), "erf": stax.Erf()}.get(act)
    if nl is None:
        return None
    for _ in range(depth - 1):
        layers += [stax.Dense(1, W_std=np.sqrt(sw), b_std=np.sqrt(sb)), nl]
    layers += [stax.Dense(1, W_std=np.sqrt(sw), b_std=np.sqrt(sb))]
    return stax.serial(*layers)[2]


def timed(fn, repeat=1):
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def architecture_ratios(rng, cases, repeat):
    """Issue 11: per-layer schedules, residual blocks (and the other options) against the plain ReLU kernel, timed
    interleaved (one round of every variant, repeated) so that the machine's load hits them alike; best of R."""
    for n, depth in cases:
        X = rng.normal(size=(n, 32))
        nets = {
            "plain": mf.Network(depth, "relu", 2.0, 0.0),
            "schedule": mf.Network(depth, "relu", list(np.linspace(1.9, 2.1, depth)), 0.0),
            "plain, sigma_b2 = 0.1": mf.Network(depth, "relu", 2.0, 0.1),
            "schedule, sigma_b2 sched.": mf.Network(depth, "relu", 2.0, list(np.linspace(0.05, 0.1, depth))),
            "residual 1/sqrt(L)": mf.Network(depth, "relu", 2.0, 0.0, residual=1 / np.sqrt(depth)),
            "residual 1 + schedule": mf.Network(depth, "relu", list(np.linspace(1.9, 2.1, depth)), 0.0, residual=1.0),
            "residual+LN+dropout": mf.Network(
                depth, "relu", 2.0, 0.1, residual=1.0, normalization="layer", dropout=0.9
            ),
        }
        for net in nets.values():
            mf.kernels(X[:4], net)  # load the compiled kernels
        best = dict.fromkeys(nets, np.inf)
        for _ in range(repeat):
            for name, net in nets.items():
                best[name] = min(best[name], timed(lambda net=net, X=X: mf.kernels(X, net))[0])
        for name in nets:
            print(f"relu {name:>22} / plain at n={n}, L={depth}: {best[name] / best['plain']:.2f} "
                  f"({best[name]:.3f} s, best of {repeat})")  # fmt: skip


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="only the small case")
    ap.add_argument("--threads", type=int, default=None, help="numba threads for meanfield (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="best of R timings for the large case (small: R + 1)")
    args = ap.parse_args()
    if args.threads is not None:
        import numba

        numba.set_num_threads(args.threads)
        print(f"numba threads: {numba.get_num_threads()}")
    rng = np.random.default_rng(0)
    cases = [(500, 10)] if args.quick else [(500, 10), (2000, 100)]
    print(
        f"{'activation':>10} {'n':>5} {'L':>4} {'meanfield s':>12} {'numpy s':>9} {'ratio':>7} {'NT s':>7} {'ratio':>7}"
    )
    results = {}
    for n, depth in cases:
        X = rng.normal(size=(n, 32))
        for act, sw, sb in [("relu", 2.0, 0.0), ("tanh", 1.76, 0.05)]:
            net = mf.Network(depth, act, sw, sb)
            mf.kernels(X[:4], net)  # load the compiled kernels
            rep = args.repeat + 1 if n <= 500 else args.repeat
            t_mf, k = timed(lambda net=net, X=X: mf.kernels(X, net), repeat=rep)
            results[(act, n)] = t_mf
            if act == "relu":
                t_np, (S, T) = timed(lambda X=X, depth=depth: numpy_relu(X, depth), repeat=args.repeat)
                err = float(np.max(np.abs(T - k.ntk)) / np.max(np.abs(k.ntk)))
            elif n <= 500:
                t_np, (S, T) = timed(lambda X=X, depth=depth, sw=sw, sb=sb: numpy_tanh(X, depth, sw, sb))
                err = float(np.max(np.abs(T - k.ntk)) / np.max(np.abs(k.ntk)))
            else:
                t_np, err = np.nan, np.nan
            nt = neural_tangents_fn(depth, act, sw, sb)
            if nt is not None:
                t_nt, _ = timed(lambda nt=nt, X=X: np.asarray(nt(X, None, "ntk")))
            else:
                t_nt = np.nan
            print(f"{act:>10} {n:>5} {depth:>4} {t_mf:>12.3f} {t_np:>9.3f} {t_np / t_mf:>7.1f} "
                  f"{t_nt:>7.3f} {t_nt / t_mf:>7.1f}   (numpy max diff / max entry {err:.1e})")  # fmt: skip
    for n, depth in cases:
        print(f"tanh / relu time at n={n}, L={depth}: {results[('tanh', n)] / results[('relu', n)]:.2f}")
    architecture_ratios(rng, cases, max(args.repeat, 3))
    try:
        import neural_tangents  # noqa: F401
    except ImportError:
        print("neural-tangents is not installed: its column is skipped (pip install -e '.[bench]')")


# ---------------------------------------------------------------------------------------------------------------
# issue 17: kernels on the sphere through the tabulated composed maps (python bench_kernels.py --sphere)
# ---------------------------------------------------------------------------------------------------------------

#: flops of one pair-layer update of the ReLU loop (closed_columns): acos1m ~22 (a sqrt and a division counted as
#: one each), the h series ~12, leaky_unit ~10, next_correlation_unit ~4, the NNGP update ~4 and the compensated
#: NTK update ~12 (columns.ntk_accumulate: a product, an FMA, TwoSum's six additions, the low part's three)
RELU_UPDATE_FLOPS = 64

NT_WORKER = r"""
import sys, time, numpy as np, jax
jax.config.update("jax_enable_x64", True)
from neural_tangents import stax
n, depth, act, sw, sb = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
rng = np.random.default_rng(0)
X = rng.normal(size=(n, 32)); X *= np.sqrt(32) / np.linalg.norm(X, axis=1)[:, None]
nl = {"relu": stax.Relu(), "erf": stax.Erf()}[act]
first = stax.Dense(1, W_std=np.sqrt(sw), b_std=np.sqrt(sb))[2]
block = jax.jit(stax.serial(nl, stax.Dense(1, W_std=np.sqrt(sw), b_std=np.sqrt(sb)))[2])
best = np.inf
for rep in range(2):
    t = time.perf_counter()
    k = first(X, None, get=None)
    for _ in range(depth - 1):
        k = block(k)
    ntk = np.asarray(k.ntk); nngp = np.asarray(k.nngp)
    best = min(best, time.perf_counter() - t)
print(best)
"""


def neural_tangents_sphere(n, depth, act, sw, sb, python="/work/nt-venv/bin/python"):
    """Best-of-2 seconds of Neural Tangents (NNGP + NTK, float64, first Dense kernel then a jitted (act, Dense)
    block applied L - 1 times, as ../shared/bench/neural-tangents.txt recommends) in its own venv; None if absent."""
    import os
    import subprocess

    if not os.path.exists(python):
        return None
    out = subprocess.run([python, "-c", NT_WORKER, str(n), str(depth), act, str(sw), str(sb)], capture_output=True,
                         text=True, timeout=3600)  # fmt: skip
    if out.returncode:
        print("neural-tangents failed:", out.stderr.strip().splitlines()[-1:])
        return None
    return float(out.stdout.strip().splitlines()[-1])


def sphere_bench(repeat=2, loop_n=2000):
    """ReLU and tanh NNGP + NTK on the sphere at (n, L) = (2000, 100) and (2000, 10000): the tabulated path
    (cold: the table is built inside the timing) against the layer loop, and the loop against the roofline."""
    import numba

    from meanfield.propagation import sphere

    rng = np.random.default_rng(0)
    n = 2000
    X = rng.normal(size=(n, 32))
    X *= np.sqrt(32) / np.linalg.norm(X, axis=1)[:, None]
    threads = numba.get_num_threads()
    print(f"\nsphere path (issue 17), n = {n}, d = 32, numba threads = {threads}; best of {repeat}")
    print(f"{'activation':>10} {'L':>6} {'sphere s':>9} {'nodes':>6} {'powered':>7} {'loop s':>9} {'ratio':>7} "
          f"{'max rel diff':>12}")  # fmt: skip
    times = {}
    for act, sw, sb in [("relu", 2.0, 0.0), ("tanh", 1.76, 0.05)]:
        for depth in (100, 10000):
            net = mf.Network(depth, act, sw, sb)
            mf.kernels(X[:4], net, sphere=True)

            def fast(net=net):
                sphere._TABLES.clear()  # cold: the table is part of the cost
                return mf.kernels(X, net, sphere=True)

            t_s, k = timed(fast, repeat)
            tab = next(iter(sphere._TABLES.values()))
            # the loop at L = 10000 on all pairs takes minutes: time it on the first m rows against all columns
            # (O(m n L)) and scale to the full triangle
            m = n if depth <= 100 else 64
            t_l, kl = timed(lambda net=net, m=m: mf.kernels(X[:m], net, X2=X, sphere=False), 1 if m < n else repeat)
            if m < n:
                t_l *= (n * (n + 1) / 2) / (m * n)
            ref_n, ref_t = k.nngp[:m], k.ntk[:m]
            diff = max(float(np.max(np.abs(ref_n - kl.nngp) / np.abs(kl.nngp))),
                       float(np.max(np.abs(ref_t - kl.ntk) / np.abs(kl.ntk))))  # fmt: skip
            times[(act, depth)] = (t_s, t_l)
            est = " (loop scaled from 64 rows)" if m < n else ""
            print(f"{act:>10} {depth:>6} {t_s:>9.3f} {tab.nodes:>6} {tab.powered:>7} {t_l:>9.3f} {t_l / t_s:>7.1f} "
                  f"{diff:>12.1e}{est}")  # fmt: skip
    for act in ("relu", "tanh"):
        print(f"{act}: L = 10000 / L = 100 time of the sphere path: "
              f"{times[(act, 10000)][0] / times[(act, 100)][0]:.2f}")  # fmt: skip
    # the loop against the arithmetic roofline
    t_l = times[("relu", 100)][1]
    updates = n * (n + 1) / 2 * 99
    per_core = updates / t_l / threads
    import os
    import subprocess

    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = (
        "import numpy as np, time\na = np.random.rand(2000, 2000); a @ a\nb = 1e9\nfor _ in range(5):\n"
        "    t = time.perf_counter(); a @ a; b = min(b, time.perf_counter() - t)\nprint(2 * 2000**3 / b)"
    )
    dgemm = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout)
    peak = 2.6e9 * 32  # 2.6 GHz (BogoMIPS / 2) x two 512-bit FMA pipes x 8 doubles x 2 flops (AMD Zen 5)
    print(f"layer loop, ReLU (2000, 100): {per_core:.3g} pair-layer updates / s / core x {RELU_UPDATE_FLOPS} flops = "
          f"{per_core * RELU_UPDATE_FLOPS / 1e9:.2f} GFLOP/s per core; peak {peak / 1e9:.0f} GFLOP/s per core "
          f"(nominal), single-thread dgemm measured {dgemm / 1e9:.1f} GFLOP/s: "
          f"{per_core * RELU_UPDATE_FLOPS / peak:.1%} of nominal, "
          f"{per_core * RELU_UPDATE_FLOPS / dgemm:.1%} of dgemm")  # fmt: skip
    t_nt = neural_tangents_sphere(n, 100, "relu", 2.0, 0.0)
    if t_nt is None:
        print("neural-tangents venv (/work/nt-venv) not available: skipped")
    else:
        t_s = times[("relu", 100)][0]
        print(f"neural-tangents ReLU (2000, 100), NNGP + NTK: {t_nt:.3f} s; sphere path {t_s:.3f} s: "
              f"ratio {t_nt / t_s:.1f}")  # fmt: skip


if __name__ == "__main__":
    if "--sphere" in sys.argv:
        # best of 5: one cold call of ~0.05 s is easily doubled by a page-fault burst or a thread wake-up
        sphere_bench(repeat=5)
    else:
        main()
