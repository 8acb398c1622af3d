"""mf.phase_diagram against mf.phase point by point and mf.edge_of_chaos row by row (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest

import meanfield as mf
from meanfield.phase_diagram import ALL_FIXED, CHAOTIC, DIVERGES, EDGE, FIXED, ORDERED

FIELDS = ("q_star", "c_star", "chi1", "chi_c", "xi_q", "xi_c")


def _check_against_phase(act, sw, sb, tol=1e-10):
    d = mf.phase_diagram(act, sw, sb)
    assert d.q_star.shape == (len(sb), len(sw))
    for i, b in enumerate(sb):
        for j, w in enumerate(sw):
            p = mf.phase(mf.Network(1, act, w, b))
            assert d.phase_name(i, j) == p.phase
            assert d.status[i, j] == (FIXED if np.isfinite(p.q_star) else DIVERGES if np.isinf(p.q_star) else ALL_FIXED)
            for f in FIELDS:
                ref, got = getattr(p, f), getattr(d, f)[i, j]
                if np.isnan(ref) or (f == "q_star" and not np.isfinite(ref)):
                    assert got is np.ma.masked, (f, b, w)
                    continue
                assert got is not np.ma.masked, (f, b, w)
                assert not np.isnan(got)
                if np.isinf(ref):
                    assert got == ref, (f, b, w)
                else:
                    assert got == pytest.approx(ref, rel=tol, abs=1e-13), (f, b, w, got, ref)
    return d


@pytest.mark.parametrize("act", ["tanh", "erf", "relu", "leaky_relu:0.2", "sigmoid"])
def test_matches_phase_pointwise(act):
    _check_against_phase(act, np.linspace(0.5, 4.0, 6), np.array([0.0, 0.02, 0.3]))


def _check_edges(act, sb):
    d = mf.phase_diagram(act, np.linspace(0.5, 4.0, 5), sb)
    for i, b in enumerate(sb):
        try:
            ref = mf.edge_of_chaos(act, b)
        except ValueError:
            assert d.edge_sigma_w2[i] is np.ma.masked
            continue
        assert abs(d.edge_sigma_w2[i] - ref) <= 1e-8 * ref, (b, d.edge_sigma_w2[i], ref)
        # on the edge, chi_1 = 1 at the reported fixed point
        p = mf.phase(mf.Network(1, act, float(d.edge_sigma_w2[i]), b))
        assert p.chi1 == pytest.approx(1.0, abs=1e-9)
        if np.isnan(p.q_star):  # every q is a fixed point on the edge (ReLU at sigma_b2 = 0)
            assert d.edge_q_star[i] is np.ma.masked
        else:
            assert d.edge_q_star[i] == pytest.approx(p.q_star, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("act", ["tanh", "erf", "relu"])
def test_edge_of_chaos_every_row(act):
    _check_edges(act, np.linspace(0.0, 0.3, 6))


@pytest.mark.slow
def test_edge_of_chaos_every_row_200():
    _check_edges("tanh", np.linspace(0.0, 0.3, 200))
    _check_edges("erf", np.linspace(0.0, 2.0, 200))


def test_phase_regions_and_masks():
    sw = np.linspace(0.5, 4.0, 40)
    d = mf.phase_diagram("tanh", sw, np.linspace(0.0, 0.3, 30))
    # ordered left of the edge, chaotic right of it, on every row
    for i in range(d.sigma_b2.size):
        e = float(d.edge_sigma_w2[i])
        assert np.all(d.phase[i, sw < e - 1e-6] == ORDERED)
        assert np.all(d.phase[i, sw > e + 1e-6] == CHAOTIC)
    assert not np.any(d.c_star.mask) and not np.any(d.q_star.mask)  # tanh: finite fixed points everywhere
    assert np.all(d.c_star[d.phase == CHAOTIC] < 1.0)
    assert np.all(d.c_star[d.phase == ORDERED] == 1.0)
    # ReLU: no finite fixed point for sigma_w2 > 2; masked, never NaN
    r = mf.phase_diagram("relu", [1.0, 2.0, 3.0], [0.0, 0.1])
    assert r.status.tolist() == [[FIXED, ALL_FIXED, DIVERGES], [FIXED, DIVERGES, DIVERGES]]
    assert r.phase[0, 1] == EDGE
    for f in FIELDS:
        assert not np.any(np.isnan(np.ma.getdata(getattr(r, f))))
    assert r.q_star.mask.tolist() == [[False, True, True], [False, True, True]]
    assert bool(r.c_star.mask[0, 2]) and bool(r.chi_c.mask[1, 2]) and bool(r.xi_c.mask[1, 2]) and not r.xi_c.mask[1, 1]
    assert r.edge_sigma_w2.tolist() == [2.0, None]


def test_bad_input():
    with pytest.raises(ValueError, match="sigma_w2"):
        mf.phase_diagram("tanh", [0.0, 1.0], [0.1])
    with pytest.raises(ValueError, match="sigma_b2"):
        mf.phase_diagram("tanh", [1.0], [-0.1])
    with pytest.raises(ValueError, match="increasing"):
        mf.phase_diagram("tanh", [2.0, 1.0], [0.1])
    with pytest.raises(ValueError, match="sigma_w2"):
        mf.phase_diagram("tanh", [np.nan], [0.1])


def test_cli_json(capsys):
    import json

    from meanfield.cli import main

    assert (
        main(["phase-diagram", "--activation", "relu", "--sigma-w2", "1:3:3", "--sigma-b2", "0:0.1:2", "--json"]) == 0
    )
    data = json.loads(capsys.readouterr().out)
    d = mf.phase_diagram("relu", [1.0, 2.0, 3.0], [0.0, 0.1])
    assert data["status"] == d.status.tolist() and data["phase"] == d.phase.tolist()
    assert data["q_star"] == [[0.0, None, None], [0.2, None, None]]  # null: no finite fixed point
    assert data["edge_sigma_w2"] == [2.0, None]
    assert data["chi1"][0] == pytest.approx([0.5, 1.0, 1.5])
