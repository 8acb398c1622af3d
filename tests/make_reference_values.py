"""Regenerate tests/data/reference_values.json from the independent mpmath reference (tests/reference.py).

The general-path (quadrature) references cost seconds each, so the default tests read them from the JSON file;
``test_maps.py::test_stored_reference_values_are_reproducible`` (marked slow) recomputes a sample of them.
Usage: python tests/make_reference_values.py
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
from mpmath import mp

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import reference as R  # noqa: E402

QUAD_ACTS = ["tanh", "gelu", "softplus", "sigmoid", "silu"]
QUAD_POINTS = [(1.0, 1.0, 0.5), (0.3, 2.0, -0.7), (10.0, 10.0, 0.95), (5.0, 10.0, -0.99), (0.01, 0.01, 0.999)]
KERNEL_X = [[1.0, 0.0, 0.5], [0.2, -1.0, 0.3], [0.9, 0.1, 0.5]]
KERNEL_CASES = [("tanh", 3, 1.5, 0.1), ("gelu", 3, 1.8, 0.05)]


def _str(v) -> str:
    """All 30 digits (str() of an mpf prints only the global 15)."""
    with mp.workdps(40):
        return mp.nstr(v, 30)


def main():
    out = {"moments": [], "kernels": []}
    for name in QUAD_ACTS:
        for q1, q2, c in QUAD_POINTS:
            l12 = c * np.sqrt(q1 * q2)
            cov, dcov = R.ref_cov_dcov(name, q1, l12, q2, dps=30)
            out["moments"].append(dict(act=name, q1=q1, q2=q2, c=c, cov=_str(cov), dcov=_str(dcov)))
            print(name, q1, q2, c, float(cov), float(dcov), flush=True)
    for name, depth, sw, sb in KERNEL_CASES:
        k = R.ref_kernels(np.array(KERNEL_X), depth, name, sw, sb, dps=25)
        out["kernels"].append(
            dict(
                act=name,
                depth=depth,
                sigma_w2=sw,
                sigma_b2=sb,
                X=KERNEL_X,
                nngp=[[_str(v) for v in row] for row in k.sigma[-1]],
                ntk=[[str(v) for v in row] for row in k.ntk[-1]],
            )  # fmt: skip
        )
        print(name, "kernels done", flush=True)
    path = pathlib.Path(__file__).parent / "data" / "reference_values.json"
    path.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
