"""Produce notebooks/data/kernel_alignment.npz for notebooks/kernel_alignment.ipynb (the notebook only loads it).

Canatar & Pehlevan 2022 on scikit-learn's bundled 8x8 digits (MNIST-1D is not in meanfield.data on this branch):
depth-5 ReLU MLPs (4 hidden layers of width 128, SP, sigma_w2 = 2, no biases), MSE loss, SGD with momentum 0.9,
lr 0.02, batch 50, 40 epochs on 500 training digits, 3 independently initialised networks. Recorded with
meanfield.alignment.kernel_target_alignment through train(callback=...): the layer feature kernels' centered
alignment with Y Y^T on 300 training and 300 test digits (Figs. 1-2), the class-traced NTK's alignment with the
target and with the output kernel (Fig. 7); spectra and cumulative power C(rho) of the layer kernels and the NTK at
epochs 0, 2 and 40 (Figs. 3-5, 8); and the learning-curve check: on a pool of 899 held-out digits (uniform
measure on the pool = the population), the spectral theory E_g(P) (meanfield.alignment.learning_curve), the
heuristic 1 - C(rho*) and kernel ridge regression (meanfield.kernel_regression) with the trained kernels, P random
pool points drawn with replacement. ~1-2 CPU minutes.

    PYTHONPATH=. python notebooks/data/make_kernel_alignment.py
"""

import itertools
import json
import os
import time

import numpy as np

import meanfield as mf
from meanfield import MLP, Network
from meanfield.alignment import cumulative_power, kernel_target_alignment, learning_curve
from meanfield.finite import train

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel_alignment.npz")
DEPTH, WIDTH, LR, BATCH, EPOCHS, SEEDS = 5, 128, 0.02, 50, 40, (1, 2, 3)
N_TRAIN, N_ALIGN = 500, 300
SNAP = (0, 2, EPOCHS)  # spectra at initialization, early (the paper's "middle", epoch 25 of 5000) and the end
P_VALUES = np.array([5, 10, 20, 50, 100, 200, 400])
DRAWS, RIDGES, TOP = 20, (1e-4, 1e-2), 200  # ridge relative to the mean diagonal of the pool kernel


def pool_problem(K, Yc):
    """Centered pool kernel and its population spectrum (eigenvalues / N, target power per mode / N)."""
    N = K.shape[0]
    H = np.eye(N) - 1.0 / N
    Kc = H @ K @ H
    lam, V = np.linalg.eigh(Kc)
    lam, V = np.clip(lam[::-1], 0, None), V[:, ::-1]
    a2 = np.sum((V.T @ Yc) ** 2, axis=1) / N
    return Kc, lam / N, a2


def learning_check(K, Yc, rng, ridge_rel):
    """Theory E_g(P), 1 - C(rho*), and kernel ridge regression error on the pool, all normalized by <|y|^2>."""
    Kc, lam, a2 = pool_problem(K, Yc)
    N, total = K.shape[0], a2.sum()
    ridge = ridge_rel * np.trace(Kc) / N
    lc = learning_curve(lam, a2, P_VALUES, ridge=ridge)
    C = cumulative_power(Kc, Yc).C
    rho_star = np.array([int(np.sum(P * lam > k)) for P, k in zip(P_VALUES, lc.kappa, strict=True)])
    heur = np.array([1.0 - (C[r - 1] if r > 0 else 0.0) for r in rho_star])
    emp = np.empty((len(P_VALUES), DRAWS))
    for i, P in enumerate(P_VALUES):
        for j in range(DRAWS):
            idx = rng.integers(0, N, size=P)
            f = mf.kernel_regression(Kc[np.ix_(idx, idx)], Kc[:, idx], Yc[idx], diag_reg=ridge)
            emp[i, j] = np.mean(np.sum((f - Yc) ** 2, axis=1)) / total
    return lc.Eg / total, heur, rho_star, emp


def main(path=OUT):
    start = time.time()
    Xtr, ytr, Xte, yte = mf.data.digits(test_size=0.5, seed=0)
    X, y = Xtr[:N_TRAIN], ytr[:N_TRAIN]
    Xa, ya = X[:N_ALIGN], y[:N_ALIGN]  # training digits for the kernels
    Xb, yb = Xte[:N_ALIGN], yte[:N_ALIGN]  # held-out digits for the kernels
    Ypool = np.eye(10)[yte]
    Yc = Ypool - Ypool.mean(axis=0)
    net = Network(DEPTH, "relu", 2.0, 0.0, "standard", width=WIDTH)
    out = {k: [] for k in ("feat_train", "feat_test", "ntk_train", "ntk_test", "ntk_out", "out_train",
                           "loss", "train_acc", "test_acc")}  # fmt: skip
    spectra = {}
    lc = {}
    for s in SEEDS:
        mlp0 = MLP.sample(net, d=X.shape[1], seed=s, outputs=10, bias=False)
        rec = {k: [] for k in out}
        snaps = {}

        def callback(epoch, m, rec=rec, snaps=snaps):
            a, b = kernel_target_alignment(m, Xa, ya), kernel_target_alignment(m, Xb, yb)
            rec["feat_train"].append(a.features)
            rec["feat_test"].append(b.features)
            rec["ntk_train"].append(a.ntk)
            rec["ntk_test"].append(b.ntk)
            rec["ntk_out"].append(a.ntk_output)
            rec["out_train"].append(a.output)
            if epoch in SNAP:
                snaps[epoch] = m.copy()

        h = train(mlp0, X, y, EPOCHS, LR, BATCH, loss="mse", seed=s, X_test=Xte, Y_test=yte, record_every=1,
                  callback=callback)  # fmt: skip
        rec["loss"], rec["train_acc"], rec["test_acc"] = h.loss, h.train_acc, h.test_acc
        for k in out:
            out[k].append(np.asarray(rec[k]))
        print(f"seed {s}: loss {h.loss[-1]:.4f} train acc {h.train_acc[-1]:.3f} test acc {h.test_acc[-1]:.3f} "
              f"({time.time() - start:.0f} s)")  # fmt: skip
        if s != SEEDS[0]:
            continue
        # spectra and cumulative power (first network): layer feature kernels l = 2..L and the traced NTK
        Ya = np.eye(10)[ya]
        for e in SNAP:
            m = snaps[e]
            for l in range(2, DEPTH + 1):
                cp = cumulative_power(m.feature_kernel(Xa, l), Ya)
                spectra[f"eig_l{l}_e{e}"], spectra[f"C_l{l}_e{e}"] = cp.eigvals[:TOP], cp.C[:TOP]
            cp = cumulative_power(m.ntk(Xa, layout="traced"), Ya)
            spectra[f"eig_ntk_e{e}"], spectra[f"C_ntk_e{e}"] = cp.eigvals[:TOP], cp.C[:TOP]
        # learning curves on the held-out pool: input kernel, penultimate layer at init, trained layers, trained NTK
        rng = np.random.default_rng(0)
        kern = {"input": Xte @ Xte.T, "init_l5": snaps[0].feature_kernel(Xte, DEPTH)}
        for l in range(2, DEPTH + 1):
            kern[f"trained_l{l}"] = snaps[EPOCHS].feature_kernel(Xte, l)
        kern["trained_ntk"] = snaps[EPOCHS].ntk(Xte, layout="traced")
        for (ir, rr), (name, K) in itertools.product(enumerate(RIDGES), kern.items()):
            th, heur, rs, emp = learning_check(K, Yc, rng, rr)
            lc[f"theory_{name}_r{ir}"], lc[f"heur_{name}_r{ir}"], lc[f"rhostar_{name}_r{ir}"] = th, heur, rs
            lc[f"emp_{name}_r{ir}"] = emp
            print(f"  ridge {rr:g} {name:12s} theory {np.round(th, 3)}\n  {'':12s} 1-C(rho*) {np.round(heur, 3)}\n"
                  f"  {'':12s} KRR {np.round(emp.mean(1), 3)}")  # fmt: skip
    seconds = time.time() - start
    np.savez_compressed(
        path,
        **{k: np.stack(v) for k, v in out.items()},
        **spectra,
        **lc,
        P=P_VALUES,
        epochs=np.arange(EPOCHS + 1),
        snap=np.array(SNAP),
        meta=json.dumps(dict(depth=DEPTH, width=WIDTH, lr=LR, batch=BATCH, epochs=EPOCHS, seeds=SEEDS,
                             n_train=N_TRAIN, n_align=N_ALIGN, pool=int(Xte.shape[0]), draws=DRAWS,
                             ridges=RIDGES, seconds=round(seconds, 1),
                             command="PYTHONPATH=. python notebooks/data/make_kernel_alignment.py")),
    )  # fmt: skip
    print(f"wrote {path} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
