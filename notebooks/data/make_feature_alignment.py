"""Produce notebooks/data/feature_alignment.npz for the Beaglehole et al. 2024 sections of
notebooks/feature_ansatz.ipynb (the notebook only loads it).

1. Alignment reversing data set (their sec. 4.2, App. F, Fig. 3): meanfield.nfa.alignment_reversing at
   n = k = d = 256 (the paper: 1024), balances 0.05..0.95, 4 data seeds; the early-time C-NFC of one quadratic
   network f = a^T (W x)^2 (observed, meanfield.nfa.cnfc_early_kernels) against the free-probability prediction
   (meanfield.nfa.quadratic_free_cnfc with the moments of R averaged over 30 networks, as the paper did), at the
   data scale as written and at samples scaled by 1/d. Then the same network trained by full-batch GD (200 steps)
   on each data set (scale 1): UC-NFC and C-NFC of W at the start and the end, the relative weight change, and the
   UC-NFC of the same network on isotropic Gaussian inputs as a baseline.
2. Initialization-scale sweep with and without speed-limited optimization (their sec. 5, Figs. 4 and 11, App. I):
   chain monomial r = 5 on isotropic Gaussian data, n = 256, d = 32, width 256, two hidden ReLU layers without
   biases, standard parameterization with per-layer sigma_w2 = (s0^2, 1, 1e-4) (first-layer scale s0, readout
   scaled by 0.01 "to promote feature learning"), 600 full-batch GD steps at the paper's rates (0.03, 0.1, 0.2, 0.4
   for s0 = 1, 0.1, 0.01, 0.001); SLO with speeds (500, 0.002, 0.002) and eps = 0.1; 3 networks per setting.
   First-layer UC-NFC, C-NFC, C/UC ratio, losses, and the cosine of the NFM and the AGOP with the true EGOP,
   recorded every 20 steps; the trained first-layer NFMs (their Fig. 11).

~2-4 CPU minutes.

    PYTHONPATH=. python notebooks/data/make_feature_alignment.py
"""

import json
import os
import time

import numpy as np

import meanfield.nfa as nf
from meanfield import MLP, Network
from meanfield.activations import Activation
from meanfield.alignment import cosine
from meanfield.finite import train

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "feature_alignment.npz")
# 1. alignment reversing
NQ, BALANCES, DATA_SEEDS, NET_SEEDS, Q_STEPS = 256, (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.95), (0, 1, 2, 3), 30, 200
SQUARE = Activation(np.square, lambda u: 2.0 * u, "square")
# 2. initialization-scale sweep
N, D, K, R, STEPS, EVERY = 256, 32, 256, 5, 600, 20
SCALES, LRS = (1.0, 0.1, 0.01, 0.001), (0.03, 0.1, 0.2, 0.4)
SPEEDS, SLO_EPS, READOUT, NETS = (500.0, 0.002, 0.002), 0.1, 0.01, 3


def reversing():
    rng = np.random.default_rng(0)
    nets = [(rng.standard_normal((NQ, NQ)) / np.sqrt(NQ), rng.standard_normal(NQ)) for _ in range(NET_SEEDS)]
    r_mean = np.mean([nf.quadratic_r_moments(W, a) for W, a in nets], axis=0)
    W, a = nets[0]
    Rm = W.T @ (a[:, None] ** 2 * W)
    qnet = Network(2, SQUARE, 1.0, 0.0, "standard", width=NQ)
    shape = (len(BALANCES), len(DATA_SEEDS))
    pred, obs, uc_end, c_end, loss_end, uc0, dw = (np.full(shape, np.nan) for _ in range(7))
    for i, g in enumerate(BALANCES):
        for j, s in enumerate(DATA_SEEDS):
            X, y = nf.alignment_reversing(NQ, NQ, g, seed=s)
            obs[i, j] = nf.cnfc_early_kernels(X @ X.T, X @ Rm @ X.T, y)
            pred[i, j] = nf.quadratic_free_cnfc(X, y, r_mean)
            # train the same network: full-batch GD on MSE, step size from the curvature scale of the data
            mlp0 = MLP(qnet, [W.copy(), a[None, :].copy()])
            uc0[i, j] = nf.nfc(mlp0, X, 1)
            lr = 5.0 / (np.linalg.norm(X, 2) ** 4 * np.abs(a).max() ** 2 / NQ)
            try:
                h = train(mlp0, X, y, Q_STEPS, lr, NQ, momentum=0.0, loss="mse", seed=0)
            except FloatingPointError:
                continue
            uc_end[i, j], c_end[i, j] = nf.nfc(h.mlp, X, 1), nf.cnfc(h.mlp, mlp0, X, 1)
            dw[i, j] = np.linalg.norm(h.mlp.weights[0] - W) / np.linalg.norm(W)
            loss_end[i, j] = h.loss[-1] / h.loss[0]
        print(f"balance {g}: obs {obs[i].round(3)} pred {pred[i].round(3)} UC {uc_end[i].round(3)} "
              f"C {c_end[i].round(3)} loss ratio {loss_end[i].round(4)}", flush=True)  # fmt: skip
    # baseline: the same network's UC-NFC on isotropic Gaussian inputs of the same size
    mlp0 = MLP(qnet, [W, a[None, :]])
    uc_gauss = np.array([nf.nfc(mlp0, np.random.default_rng(50 + s).standard_normal((NQ, NQ)), 1) for s in DATA_SEEDS])
    print(f"UC-NFC at initialization on Gaussian inputs: {uc_gauss.round(3)}", flush=True)
    # the data scale is not stated in the paper: the same prediction/observation at scale 1/d
    pred_s, obs_s = np.full(shape, np.nan), np.full(shape, np.nan)
    for i, g in enumerate(BALANCES):
        for j, s in enumerate(DATA_SEEDS):
            X, y = nf.alignment_reversing(NQ, NQ, g, scale=1.0 / NQ, seed=s)
            obs_s[i, j] = nf.cnfc_early_kernels(X @ X.T, X @ Rm @ X.T, y)
            pred_s[i, j] = nf.quadratic_free_cnfc(X, y, r_mean)
        print(f"balance {g}, scale 1/d: obs {obs_s[i].round(3)} pred {pred_s[i].round(3)}", flush=True)
    return dict(rev_balance=np.array(BALANCES), rev_pred=pred, rev_obs=obs, rev_uc=uc_end, rev_c=c_end,
                rev_loss=loss_end, rev_pred_small=pred_s, rev_obs_small=obs_s, rev_uc0=uc0, rev_dw=dw,
                rev_uc_gauss=uc_gauss)  # fmt: skip


def sweep():
    rng = np.random.default_rng(1)
    X, Xt = rng.standard_normal((N, D)), rng.standard_normal((1000, D))
    y, yt = nf.chain_monomial(X, R), nf.chain_monomial(Xt, R)
    sd = y.std()
    y, yt = y / sd, yt / sd  # unit standard deviation (their App. I)
    E = nf.chain_monomial_egop(D, R)
    EE = np.broadcast_to(E, (NETS, D, D))  # one copy per network of the stack
    marks = list(range(0, STEPS + 1, EVERY))
    keys = ("uc", "c", "ratio", "loss", "test_loss", "nfm_egop", "agop_egop")
    res = {f"{k}_{opt}": np.full((len(SCALES), len(marks), NETS), np.nan) for k in keys for opt in ("gd", "slo")}
    nfm = {opt: np.zeros((len(SCALES), D, D)) for opt in ("gd", "slo")}
    for i, (s0, lr) in enumerate(zip(SCALES, LRS, strict=True)):
        net = Network(3, "relu", (s0**2, 1.0, READOUT**2), 0.0, "standard", width=K)
        mlp0 = MLP.sample(net, d=D, seed=10 + i, bias=False, n_nets=NETS)
        for opt in ("gd", "slo"):
            rec = []

            def cb(step, m, rec=rec, mlp0=mlp0):
                if step % EVERY:
                    return
                rec.append((nf.nfc(m, X, 1), nf.cnfc(m, mlp0, X, 1) if step else np.full(NETS, np.nan),
                            nf.cuc_ratio(m, mlp0, X, 1), m.loss_grad(X, y)[0], m.loss_grad(Xt, yt)[0],
                            cosine(m.nfm(1), EE), cosine(m.agop(X, 1), EE)))  # fmt: skip

            kw = dict(speeds=SPEEDS, slo_eps=SLO_EPS) if opt == "slo" else {}
            try:
                h = train(mlp0, X, y, STEPS, lr, N, momentum=0.0, loss="mse", seed=0, callback=cb, **kw)
                nfm[opt][i] = h.mlp.nfm(1).mean(axis=0)
            except FloatingPointError as exc:
                print(f"s0 = {s0} {opt}: {exc}")
            for t, row in enumerate(rec):
                for k, v in zip(keys, row, strict=True):
                    res[f"{k}_{opt}"][i, t] = v
            last = {k: np.nanmean(res[f"{k}_{opt}"][i, len(rec) - 1]) for k in keys}
            print(f"s0 = {s0:g} {opt}: " + ", ".join(f"{k} {v:.3f}" for k, v in last.items()), flush=True)
    return dict(sweep_scales=np.array(SCALES), sweep_lrs=np.array(LRS), sweep_steps=np.array(marks),
                nfm_gd=nfm["gd"], nfm_slo=nfm["slo"], egop=E, **res)  # fmt: skip


def main(path=OUT):
    start = time.time()
    out = reversing()
    t1 = time.time() - start
    print(f"alignment reversing: {t1:.0f} s", flush=True)
    out.update(sweep())
    seconds = time.time() - start
    meta = dict(nq=NQ, q_steps=Q_STEPS, net_seeds=NET_SEEDS, n=N, d=D, k=K, r=R, steps=STEPS, speeds=SPEEDS,
                slo_eps=SLO_EPS, readout=READOUT, nets=NETS, seconds=round(seconds, 1),
                seconds_reversing=round(t1, 1),
                command="PYTHONPATH=. python notebooks/data/make_feature_alignment.py")  # fmt: skip
    np.savez_compressed(path, meta=json.dumps(meta), **out)
    print(f"wrote {path} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
