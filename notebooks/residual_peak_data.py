"""Precompute the data of ``residual_peak.ipynb``: the predicted peak layer l*(L) of residual ReLU networks.

Run from the repository root (about 15 s): ``python notebooks/residual_peak_data.py``; it writes
``notebooks/residual_peak.npz`` (a few kB), which the notebook reads.

Setting: ReLU, sigma_w2 = 2, sigma_b2 = 0, inputs on the sphere, pairs with x.x'/d <= 1 - eps, eps = 0.5 (the
defaults of :func:`meanfield.equilibrium.peak_layer`); residual blocks on the hidden layers with beta = 1 (fixed) and
beta = 1/sqrt(L) (``residual_scaling="inverse_sqrt"``, Hayou et al. 2021); 41 log-spaced depths L = 10..10^5; both
forms of the forward loss and both scores. The plain network (Lou et al. 2022) is stored for comparison.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

DEPTHS = np.unique(np.round(np.geomspace(10, 1e5, 41)).astype(np.int64))
SCALINGS, FORMS, SCORES = ("fixed", "inverse_sqrt"), ("corrected", "published"), ("crossing", "harmonic")
CASES = [(s, f, c) for s in SCALINGS for f in FORMS for c in SCORES]
CURVE_DEPTH = 1000


def compute():
    from meanfield import Network
    from meanfield.equilibrium import information_loss, peak_layer

    out = {"depths": DEPTHS, "curve_depth": np.int64(CURVE_DEPTH)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the L^(3/5) law is proven for the plain network only
        for scaling, form, score in CASES:
            res = peak_layer(Network(int(DEPTHS.max()), residual=1.0), DEPTHS, form=form, score=score,
                             residual_scaling=scaling)  # fmt: skip
            out[f"l_star/{scaling}/{form}/{score}"] = res.l_star
            out[f"l_cont/{scaling}/{form}/{score}"] = res.l_cont
        out["l_star/plain/corrected/crossing"] = peak_layer(Network(int(DEPTHS.max())), DEPTHS).l_star
        for name, beta in (("fixed", 1.0), ("inverse_sqrt", 1.0 / np.sqrt(CURVE_DEPTH)), ("plain", None)):
            il = information_loss(Network(CURVE_DEPTH, residual=beta))
            out[f"forward/{name}"] = il.forward
            out[f"backward/{name}"] = il.backward
    return out


if __name__ == "__main__":
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "residual_peak.npz")
    np.savez_compressed(path, **compute())
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
