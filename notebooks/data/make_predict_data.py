"""Produce notebooks/data/predict_ensembles.npz for notebooks/predict.ipynb (the notebook only loads it).

Trained ensembles (meanfield.experiments.ensembles.trained_ensemble): 32 digits points, standardized digit value as
the target, 4 test points, depth-2 ReLU networks (sigma_w2 = 2, sigma_b2 = 0.1, NTK parameterization), widths
64..4096, 100 networks each, full-batch GD at lr = 1.0 for 100 steps, outputs recorded along the way; and the
silent-alignment gaps (meanfield.experiments.ensembles.silent_alignment_gap) for two-layer and deep (L = 3) linear
networks over initialization scales. Takes ~10 CPU minutes (most of it width 4096).

    PYTHONPATH=. python notebooks/data/make_predict_data.py
"""

import os
import time

import numpy as np

import meanfield as mf
from meanfield.experiments.ensembles import silent_alignment_gap, trained_ensemble

WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
STEPS = (0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100)
LR, NETS = 1.0, 100
BASE = mf.Network(2, "relu", sigma_w2=2.0, sigma_b2=0.1)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "predict_ensembles.npz")
SILENT = {2: (1e-1, 1e-2, 1e-3, 1e-4), 3: (3e-1, 1e-1, 3e-2, 1e-2)}


def main(path=OUT):
    start = time.time()
    Xtr, ytr, Xte, _ = mf.data.digits()
    X, y, Xs = Xtr[:32], (ytr[:32] - 4.5) / 2.87, Xte[:4]
    kt, kc = mf.kernels(X, BASE), mf.kernels(Xs, BASE, X2=X)
    times = [LR * s for s in STEPS]
    shape = (len(WIDTHS), len(STEPS), Xs.shape[0])
    mean, var, m4 = np.empty(shape), np.empty(shape), np.empty(shape)
    ro_mean, ro_var, ro_m4 = (np.empty((len(WIDTHS), Xs.shape[0])) for _ in range(3))
    dev = np.empty(len(WIDTHS))
    for i, N in enumerate(WIDTHS):
        e = trained_ensemble(BASE.replace(width=N), X, y, Xs, STEPS, LR, NETS, seed=N)
        mean[i], var[i] = e.test.mean(axis=1), e.test.var(axis=1, ddof=1)
        m4[i] = ((e.test - mean[i][:, None]) ** 4).mean(axis=1)
        ro_mean[i], ro_var[i] = e.readout.mean(axis=0), e.readout.var(axis=0, ddof=1)
        ro_m4[i] = ((e.readout - ro_mean[i]) ** 4).mean(axis=0)
        lin = mf.kernel_regression(kt.ntk, kc.ntk, y[:, None] - e.train[0].T, t=times, lr=LR)
        own = e.test[0][None] + np.swapaxes(lin, 1, 2)
        dev[i] = np.sqrt(np.mean((e.test - own)[1:] ** 2))
        print(f"width {N}: {e.seconds:.0f} s, deviation {dev[i]:.4f}", flush=True)
    silent = []
    for L, sigmas in SILENT.items():
        for s in sigmas:
            steps = 1500 if L == 2 else int(3000 * (0.1 / s) ** 0.5) + 2000
            g = silent_alignment_gap(L, s, 0.1, steps)
            silent.append((L, s, g.final, g.initial, g.loss))
            print(f"silent L={L} sigma={s:g}: final {g.final:.3e} initial {g.initial:.3f} loss {g.loss:.1e}")
    np.savez_compressed(
        path, widths=np.array(WIDTHS), steps=np.array(STEPS), lr=LR, nets=NETS, X=X, y=y, X_test=Xs,
        mean=mean, var=var, m4=m4, readout_mean=ro_mean, readout_var=ro_var, readout_m4=ro_m4, deviation=dev,
        silent=np.array(silent),
    )  # fmt: skip
    print(f"wrote {path} in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
