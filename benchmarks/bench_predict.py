"""meanfield.prediction against Neural Tangents on the same kernel matrices: agreement (1e-10) and time.

Neural Tangents 0.6.5 pins an older numpy and cannot import meanfield's numba stack, so it runs in its own virtual
environment (``../shared/bench/neural-tangents.txt``; default ``/work/nt-venv``, or ``NT_PYTHON=/path/to/python``):
this script computes the kernels with meanfield, hands the matrices to a Neural Tangents subprocess
(``nt.predict.gradient_descent_mse_ensemble`` with a kernel function that returns them, ``nt.predict.gp_inference``;
float64, ``diag_reg_absolute_scale=True``) and compares. Neural Tangents normalizes the MSE loss by
``y_train.size``; with one output its time equals meanfield's.

    PYTHONPATH=. python benchmarks/bench_predict.py [--n 400] [--m 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import meanfield as mf

NT_PYTHON = os.environ.get("NT_PYTHON", "/work/nt-venv/bin/python")
TIMES = [0.5, 5.0, 50.0, float("inf")]

NT_SCRIPT = r"""
import json, sys, time, collections
import numpy as np
import scipy.linalg
# jax 0.4.23 calls scipy.linalg.tril/triu, removed in scipy 1.13 (the pins leave scipy free): numpy's are the same
scipy.linalg.tril, scipy.linalg.triu = getattr(scipy.linalg, "tril", np.tril), getattr(scipy.linalg, "triu", np.triu)
import jax
jax.config.update("jax_enable_x64", True)
import neural_tangents as nt
d = np.load(sys.argv[1]); times = json.loads(sys.argv[3]); repeat = int(sys.argv[4])
n, m = d["ntk_tr"].shape[0], d["ntk_te"].shape[0]
Kern = collections.namedtuple("Kernel", ("nngp", "ntk"))
blocks = {"tr": Kern(d["nngp_tr"], d["ntk_tr"]), "te": Kern(d["nngp_te"], d["ntk_te"]),
          "cross": Kern(d["nngp_cross"], d["ntk_cross"])}
def kernel_fn(x1, x2, get, **kw):
    k = blocks["cross" if x2 is not None else ("tr" if x1.shape[0] == n else "te")]
    if isinstance(get, str):
        return getattr(k, get)
    return collections.namedtuple("Kernel", get)(*(getattr(k, g) for g in get))
x_tr, x_te = np.zeros((n, 1)), np.zeros((m, 1))
y = d["y"][:, None]
out, secs = {}, {"ntk": [], "nngp": []}
for r in range(repeat):
    s = time.perf_counter()
    fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_tr, y, diag_reg=0.0, diag_reg_absolute_scale=True)
    ts = np.array([t for t in times if np.isfinite(t)])
    g = fn(t=ts, x_test=x_te, get="ntk", compute_cov=True)
    gi = fn(t=None, x_test=x_te, get="ntk", compute_cov=True)
    mean = np.concatenate([np.asarray(g.mean)[..., 0], np.asarray(gi.mean)[None, :, 0]])
    cov = np.concatenate([np.asarray(g.covariance), np.asarray(gi.covariance)[None]])
    secs["ntk"].append(time.perf_counter() - s)
    s = time.perf_counter()
    gp = nt.predict.gp_inference(Kern(d["nngp_tr"], None), y, diag_reg=float(d["reg"]), diag_reg_absolute_scale=True)
    p = gp(get="nngp", k_test_train=Kern(d["nngp_cross"], None), k_test_test=Kern(d["nngp_te"], None))
    secs["nngp"].append(time.perf_counter() - s)
out = dict(ntk_mean=mean, ntk_cov=cov, nngp_mean=np.asarray(p.mean)[:, 0], nngp_cov=np.asarray(p.covariance))
np.savez(sys.argv[2], **out)
print(json.dumps(secs))
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--m", type=int, default=50)
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    if not os.path.exists(NT_PYTHON):
        print(f"Neural Tangents interpreter {NT_PYTHON} not found (set NT_PYTHON); nothing compared")
        return 1
    Xtr, ytr, Xte, _ = mf.data.digits()
    X, y, Xs = Xtr[: args.n], (ytr[: args.n] - 4.5) / 2.87, Xte[: args.m]
    net = mf.Network(args.depth, "relu", sigma_w2=2.0, sigma_b2=0.1)
    kt, kc, ks = mf.kernels(X, net), mf.kernels(Xs, net, X2=X), mf.kernels(Xs, net)
    reg = 1e-6 * float(np.trace(kt.nngp)) / args.n
    ours = {}
    secs = {"ntk": [], "nngp": []}
    for _ in range(args.repeat):
        s = time.perf_counter()
        p = mf.predict_kernels(kt.ntk, kc.ntk, y, t=TIMES, nngp_train=kt.nngp, nngp_test_train=kc.nngp,
                               nngp_test=ks.nngp)  # fmt: skip
        secs["ntk"].append(time.perf_counter() - s)
        s = time.perf_counter()
        q = mf.predict_kernels(kt.nngp, kc.nngp, y, kernel="nngp", nngp_test=ks.nngp, diag_reg=reg)
        secs["nngp"].append(time.perf_counter() - s)
    ours = dict(ntk_mean=p.mean, ntk_cov=p.covariance, nngp_mean=q.mean, nngp_cov=q.covariance)
    with tempfile.TemporaryDirectory() as tmp:
        kin, kout = os.path.join(tmp, "k.npz"), os.path.join(tmp, "nt.npz")
        np.savez(kin, ntk_tr=kt.ntk, ntk_cross=kc.ntk, ntk_te=ks.ntk, nngp_tr=kt.nngp, nngp_cross=kc.nngp,
                 nngp_te=ks.nngp, y=y, reg=reg)  # fmt: skip
        run = subprocess.run([NT_PYTHON, "-c", NT_SCRIPT, kin, kout, json.dumps(TIMES[:-1] + [1e309]),
                              str(args.repeat)], capture_output=True, text=True)  # fmt: skip
        if run.returncode != 0:
            print("Neural Tangents failed:", run.stderr.strip().splitlines()[-1:])
            return 1
        nt_secs = json.loads(run.stdout.strip().splitlines()[-1])
        theirs = dict(np.load(kout))
    print(f"n = {args.n} training, m = {args.m} test inputs, depth-{args.depth} ReLU kernels of the digits; "
          f"times {TIMES}")  # fmt: skip
    worst = 0.0
    for key in ours:
        a, b = np.asarray(ours[key]), theirs[key].reshape(np.shape(ours[key]))
        rel = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
        worst = max(worst, rel)
        print(f"  {key:10s} max |meanfield - NT| / max |NT| = {rel:.2e}")
    for k in ("ntk", "nngp"):
        print(f"  {k} time: meanfield best {min(secs[k]):.3f} s, Neural Tangents best {min(nt_secs[k]):.3f} s "
              f"(first call {nt_secs[k][0]:.3f} s, with jit)")  # fmt: skip
    print("agree to 1e-10" if worst < 1e-10 else f"DISAGREE: {worst:.2e}")
    return 0 if worst < 1e-10 else 2


if __name__ == "__main__":
    sys.exit(main())
