r"""Kernels whose cost does not grow with depth, for inputs of equal norm: the composed layer maps tabulated once.

When every input has the same layer-1 variance :math:`q_1 = \sigma_w^2\|x\|^2/d + \sigma_b^2` (inputs on a
sphere, as in Lou et al. 2022, sec. 3.4, and :func:`meanfield.data.to_sphere`), every layer's variance
:math:`q_l` is shared by all inputs, so the NNGP :math:`\Sigma_L`, the NTK :math:`\Theta_L` and the per-layer
:math:`\Sigma_l, \mathfrak B_l, \Theta^{(l)}` of a pair are functions of one number, the input angle
:math:`\theta = \arccos c_1` (Jacot et al. 2018; Lou et al. 2022, eq. (9) for the per-layer decomposition). They
are tabulated once by running the exact layer recursion of :func:`meanfield.kernels` (the same compiled
column step, :mod:`meanfield.propagation.columns`) on Chebyshev nodes in the angle, in :math:`O(L K)` for
:math:`K` nodes, and every one of the :math:`n m` pairs is then evaluated in :math:`O(1)`, independently of
:math:`L`.

Interpolant (derived here). The angle is taken from the exact side of the pair,
:math:`t = \arccos(1 - \min(s, r))\in[0, \pi/2]` with :math:`(s, r) = (1 - c, 1 + c)` (:math:`t = \theta` for
:math:`c \ge 0`, :math:`t = \pi - \theta` otherwise), so nearly parallel and nearly anti-parallel pairs keep full
relative precision in :math:`t`. Each side is cut into dyadic levels :math:`t/(\pi/2)\in[2^{-j-1}, 2^{-j}]`,
:math:`j < J` with :math:`2^{-J}\approx 1/(4L)`, and a bottom level :math:`[0, 2^{-J}]`: deep ReLU-like maps have
a boundary layer of width :math:`\sim 1/L` at :math:`\theta = 0` (:math:`\theta_L\approx\theta/(1 + aL\theta)`,
a pole at distance :math:`1/(aL)`), which the grading resolves with a bounded number of nodes per level. Every
level is split into :math:`2^m` equal pieces and every piece carries a Chebyshev interpolant on
:math:`N + 1 \in \{17, 33, 65\}` Chebyshev-Lobatto nodes (nested, so doubling :math:`N` reuses the nodes), the
smallest :math:`N` whose last three coefficients are below ``1e-15`` of the piece's largest value, with :math:`m`
raised while 65 nodes do not suffice. The ReLU arc-cosine maps are analytic in :math:`\theta` (they have a
:math:`(1 - c)^{3/2}` term in :math:`c`), as are the smooth activations' maps, so the coefficients decay
geometrically until the rounding of the recursion itself.

Accuracy rule (decided when the table is built). Each piece's interpolants are compared with the exact
recursion at four interior points; the largest difference times 2 (plus the tail coefficients) is the piece's
error bound :math:`E` per function. A pair is evaluated from the table only when every returned entry has
:math:`E/|{\rm entry}| \le` ``SPHERE_TOL`` (``5e-14``, half the 1e-13 goal: the bound comes from four points);
other pairs (entries near a sign change of the kernel,
where the recursion itself has only absolute accuracy, e.g. tanh's NNGP at orthogonal inputs, or the zero of
ReLU's :math:`\Sigma_2` at antiparallel inputs) are carried through the exact layer loop, pair by pair.

Deep networks on the general path. Where the shared variances reach their fixed point to the last bit and at
least 512 layers remain (:func:`meanfield.propagation.sphere_power.powered`), the nodes are computed by repeated
squaring of the layer map, :math:`O(\log L)` per node; one check point per piece, and the nodes at angles below
``sphere_power.EXACT_BELOW``, still run the exact loop, so the bounds above measure the powering's error against
the loop as well (``SphereTable.powered`` records the layers so applied).

Cost: :math:`O(L K)` for the table (:math:`K` = the recorded node count, a few hundred; with powered nodes
:math:`O(L P + K\log L)` for :math:`P` pieces), :math:`O(n m)` for the pairs (one Gram matrix of the unit
inputs, as in :func:`meanfield.propagation.inputs.first_layer`), and :math:`O(L)` per pair that falls back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._checks import check_memory
from .inputs import _unit_rows
from .sphere_eval import evaluate, evaluate_two, fallback_sr
from .sphere_loop import Recursion
from .sphere_power import needs_loop, powered

__all__ = ["SPHERE_TOL", "SphereTable", "equal_norms", "sphere_kernels", "sphere_table"]

#: a pair is taken from the table only where the measured interpolation error is below this relative to every
#: returned entry; elsewhere it goes through the exact layer loop
SPHERE_TOL = 5e-14
#: with ``sphere=True``, layer-1 variances within this relative spread count as equal (rows normalized in floating
#: point differ by a few ulps); the kernels then differ from the loop's by about the spread times the entry's
#: condition number in q (large only near a sign change of the entry)
NORM_SPREAD = 4e-15
#: Chebyshev degrees tried per piece (nested Lobatto grids)
_DEGREES = (16, 32, 64)
#: the last three coefficients must be below this fraction of the piece's largest value
_CHOP = 1e-15
#: a flat tail of coefficients below this fraction of the piece's largest value is the recursion's own rounding
_PLATEAU = 1e-13
#: at most 2**_MAX_SPLIT pieces per dyadic level
_MAX_SPLIT = 6


# ---------------------------------------------------------------------------------------------------------------
# the table: piecewise Chebyshev interpolants in the angle, on dyadic levels of each side
# ---------------------------------------------------------------------------------------------------------------


def _lobatto(n):
    """Chebyshev-Lobatto points cos(k pi / n), k = 0..n, on [-1, 1] (symmetric to rounding)."""
    return np.sin(0.5 * np.pi * (n - 2 * np.arange(n + 1)) / n)


def _coefficients(values):
    """Chebyshev coefficients (along axis 0) of the interpolant through values at the n + 1 Lobatto points."""
    n = values.shape[0] - 1
    k = np.arange(n + 1)
    m = np.outer(k, k) % (2 * n)  # cos(pi m / n) from the symmetric sine form: exactly +-1 and 0 where due
    C = np.sin(0.5 * np.pi * (n - 2 * m) / n)
    w = np.ones(n + 1)
    w[0] = w[-1] = 0.5
    with np.errstate(over="ignore", invalid="ignore"):  # kernels beyond float64: refused after the evaluation
        c = (2.0 / n) * (C * w[None, :]) @ values
    c[0] *= 0.5
    c[-1] *= 0.5
    return c


def _resolved(c, scale):
    """Per function: the last three coefficients are below ``_CHOP`` of the largest value, or (from 33 nodes on)
    the upper half of the coefficients is a flat plateau below ``_PLATEAU``: the rounding of the recursion itself
    (the NTK's sum over L layers carries about sqrt(L) roundings), which no degree or split removes."""
    a = np.abs(c)
    ok = np.max(a[-3:], axis=0) <= _CHOP * scale
    n = c.shape[0] - 1
    if n >= 32:
        hi = a[n // 2 :]
        top = np.max(hi, axis=0)
        ok |= (top <= _PLATEAU * scale) & (top <= 10.0 * np.median(hi, axis=0))
    return ok


def _transform(v):
    """The values a piece interpolates: every backward kernel B_l (columns 3, 5, ...) that is positive on the whole
    piece as log B_l (B_l is a product of up to L derivative kernels and spans many decades across one piece; its
    logarithm is smooth and its absolute accuracy is B_l's relative accuracy), the rest as they are. Returns the
    transformed values and the mask of logarithms."""
    logm = np.zeros(v.shape[1], dtype=bool)
    logm[3::2] = np.all(v[:, 3::2] > 0, axis=0)
    if not logm.any():
        return v, logm
    tv = v.copy()
    tv[:, logm] = np.log(v[:, logm])
    return tv, logm


def _piece_bounds(level, sub, nsub, J):
    """The pieces [a, b] of u = t / (pi / 2) (see the module docstring); arrays of levels and sub-pieces."""
    level = np.asarray(level)
    top = level < J
    lo = np.ldexp(1.0, np.where(top, -level - 1, -J))
    return lo * (top + sub / nsub), lo * (top + (sub + 1) / nsub)


@dataclass(frozen=True)
class SphereTable:
    """The composed layer maps of a network at one shared input variance, tabulated in the angle.

    Attributes
    ----------
    depth, q : the network depth L and the shared layer-1 variance.
    layers : 1-based layers whose Sigma_l, B_l, Theta^(l) are tabulated (empty without per-layer outputs).
    nodes : number of angles at which the exact recursion was run (the O(L K) cost), including the checks.
    pieces : number of Chebyshev pieces over both sides; degrees : their degrees (array).
    levels : J, the number of dyadic levels per side above the bottom one.
    error : largest measured |interpolant - recursion| / |recursion| at the check points, over the functions
        and the points where |recursion| is at least 1e-3 of the function's largest value.
    powered : layers per node applied by repeated squaring of the layer map
        (:mod:`meanfield.propagation.sphere_power`; 0: every node ran the exact loop). The check points always
        run the exact loop.
    """

    depth: int
    q: float
    layers: tuple[int, ...]
    nodes: int
    pieces: int
    degrees: np.ndarray
    levels: int
    error: float
    powered: int
    # internal arrays for the compiled evaluation
    level_base: np.ndarray  # (2, J + 1) first piece of each level
    level_split: np.ndarray  # (2, J + 1) log2 of the pieces per level
    piece_deg: np.ndarray  # (P,)
    piece_off: np.ndarray  # (P,)
    coef: np.ndarray  # flat: piece p, order k, function f at off_p + k F + f
    bound: np.ndarray  # (P, F) error bounds (of log B_l where logm)
    logm: np.ndarray  # (P, F) 1 where the piece interpolates log B_l
    nfun: int


def _functions(rec, S0, R0, W0, slots, fast=None, exact=None):
    """The tabulated functions at the pairs, (K, F): W_L, Theta_L, then per requested layer W_l, B_l; with the
    powered recursion ``fast``, the pairs neither marked ``exact`` nor in need of the loop
    (:func:`meanfield.propagation.sphere_power.needs_loop`) through it."""
    if fast is not None:
        ex = exact | needs_loop(S0, R0)
        out = np.empty((S0.size, 2))
        out[ex] = _functions(rec, S0[ex], R0[ex], W0[ex], None)  # one exact run, both threads busy
        out[~ex] = np.stack(fast.run(S0[~ex], R0[~ex], W0[~ex]), axis=1)
        return out
    w, th, per = rec.run(S0, R0, W0, slots)
    cols = [w, th]
    if per is not None:
        Wl, B, _ = per
        for k in range(Wl.shape[0]):
            cols += [Wl[k], B[k]]
    return np.stack(cols, axis=1)


def sphere_table(net, q: float, layers=(), omw=None, omb=None, progress=False) -> SphereTable:
    r"""Tabulate the composed maps :math:`\theta\mapsto(\Sigma_L, \Theta_L)` (and per requested layer
    :math:`\Sigma_l, \mathfrak B_l`) of ``net`` for inputs of layer-1 variance ``q`` (module docstring).

    ``omw, omb`` are the NTK's per-layer weight and bias factors (default: NTK parameterization, 1 and
    sigma_b^2). Cost O(L K) with K = ``.nodes``.

    Examples
    --------
    >>> from meanfield import Network
    >>> tab = sphere_table(Network(100), 2.0)
    >>> tab.error < 1e-13, tab.nodes < 2000
    (True, True)
    """
    depth = net.depth
    omw = np.ones(depth) if omw is None else np.asarray(omw, dtype=np.float64)
    omb = np.full(depth, float(net.sigma_b2)) if omb is None else np.asarray(omb, dtype=np.float64)
    layers = tuple(layers)
    slots = None
    if layers:
        slots = np.full(depth, -1, dtype=np.int64)
        for k, l in enumerate(layers):
            slots[l - 1] = k
    rec = Recursion(net, float(q), omw, omb)
    # deep networks on the general path: the nodes through the powered layer map (O(log L) per node), the check
    # points through the exact loop
    fast = None if layers else powered(rec)
    sb = float(net.sigma_b2)
    # 2^-J ~ 1/(4L) for every activation: smooth ones have a boundary layer only ~1/sqrt(L) wide, but a bottom level
    # at 1/(4 L^(5/8)) (888 instead of 1162 nodes for tanh at L = 1e4) differed from the loop by 3.3e-13 at
    # theta = 1.7e-7: there the loop's own NTK departs from its smooth trend in s = 1 - c by ~4e-13 (rounding of c),
    # which the small pieces of the finer grading follow (3.0e-14)
    J = max(2, int(math.ceil(math.log2(4.0 * depth))))

    def evaluate(side, u, exact):
        """The functions at the angles t = u pi / 2 on the sides ``side`` (arrays); ``exact`` marks the points
        that run the exact loop when the nodes are powered."""
        e = 2.0 * np.sin(0.25 * np.pi * u) ** 2  # the small one of (s, r) exact
        s, r = np.where(side == 0, e, 2.0 - e), np.where(side == 0, 2.0 - e, e)
        c = np.where(s <= r, 1.0 - s, r - 1.0)
        return _functions(rec, s, r, q * c - sb, slots, fast, exact)

    # state per (side, level): split exponent; per piece: degree, values at its Lobatto nodes and check points
    split = np.zeros((2, J + 1), dtype=np.int64)
    result, checks = {}, {}
    todo = [(side, lev) for side in (0, 1) for lev in range(J + 1)]
    nodes = 0
    while todo:
        # every piece of the pending levels at the smallest degree, then doubled where unresolved; one run of the
        # recursion per degree for all pieces of both sides (with the check points in the first)
        pend = {}
        for side, lev in todo:
            nsub = 1 << split[side, lev]
            for sub in range(nsub):
                pend[(side, lev, sub)] = None
        deg = {key: _DEGREES[0] for key in pend}
        vals = {}
        active = list(pend)
        for di, n in enumerate(_DEGREES):
            x = _lobatto(n)
            new = np.arange(n + 1) if di == 0 else np.arange(1, n + 1, 2)  # nested: only the new nodes
            pts = np.concatenate([x[new], _CHECK]) if di == 0 else x[new]  # the check points with the first nodes
            # with powered nodes, one check point per piece runs the exact loop (it measures the powering's error,
            # the others the interpolation's); without, all of them (the nodes too)
            exact = np.zeros(pts.size, dtype=bool)
            if di == 0:
                exact[new.size + _EXACT_CHECK] = True
            keys = np.array(active)
            a, b = _piece_bounds(keys[:, 1], keys[:, 2], np.left_shift(1, split[keys[:, 0], keys[:, 1]]), J)
            u = (0.5 * (a + b)[:, None] + 0.5 * (b - a)[:, None] * pts[None, :]).ravel()
            f = evaluate(np.repeat(keys[:, 0], pts.size), u, np.tile(exact, len(active)))
            nodes += u.size
            f = f.reshape(len(active), pts.size, -1)
            for i, key in enumerate(active):
                full = np.empty((n + 1, f.shape[2]))
                if di > 0:
                    full[0::2] = vals[key]
                full[new] = f[i, : new.size]
                vals[key] = full
                if di == 0:
                    checks[key] = f[i, new.size :]
            still = []
            for key in active:
                v, lm = _transform(vals[key])
                c = _coefficients(v)
                scale = np.max(np.abs(v), axis=0)
                deg[key] = n
                if np.all(_resolved(c, scale)):
                    result[key] = (n, c, v, lm)
                else:
                    still.append(key)
            active = still
            if not active:
                break
        redo = set()
        for key in active:  # unresolved at the largest degree: split the level (or accept, measured below)
            side, lev, _ = key
            if split[side, lev] < _MAX_SPLIT:
                redo.add((side, lev))
            else:
                tv, lm = _transform(vals[key])
                result[key] = (deg[key], _coefficients(tv), tv, lm)
        for side, lev in redo:
            for key in [k for k in result if k[0] == side and k[1] == lev]:
                del result[key]
            split[side, lev] += 1
        todo = sorted(redo)
    return _assemble(rec, checks, result, split, J, layers, q, nodes, 0 if fast is None else fast.powered)


#: interior check points per piece (Chebyshev points of the first kind of degree 4: never Lobatto nodes)
_CHECK = np.cos((2 * np.arange(4) + 1) * np.pi / 8)
#: the check point that runs the exact loop when the nodes are powered
_EXACT_CHECK = 1


def _assemble(rec, checks, result, split, J, layers, q, nodes, npow):
    keys = [(side, lev, sub) for side in (0, 1) for lev in range(J + 1) for sub in range(1 << split[side, lev])]
    base = np.zeros((2, J + 1), dtype=np.int64)
    for p, key in enumerate(keys):
        if key[2] == 0:
            base[key[0], key[1]] = p
    P = len(keys)
    nfun = result[keys[0]][1].shape[1]
    degs = np.empty(P, dtype=np.int64)
    offs = np.empty(P, dtype=np.int64)
    blocks = []
    off = 0
    scales = np.zeros(nfun)
    for p, key in enumerate(keys):
        n, c, v, _ = result[key]
        scale = np.max(np.abs(v), axis=0)
        scales = np.maximum(scales, scale)
        big = np.flatnonzero(np.any(np.abs(c) > 1e-17 * scale[None, :], axis=1))
        keep = max(1, int(big[-1]) + 1 if big.size else 1)
        degs[p] = keep - 1
        offs[p] = off
        blocks.append(c[:keep].ravel())
        off += keep * nfun
    coef = np.concatenate(blocks)
    # check points: the exact recursion against the interpolants
    bound = np.zeros((P, nfun))
    logm = np.zeros((P, nfun), dtype=np.uint8)
    worst = 0.0
    for p in range(P):
        n = degs[p]
        c = coef[offs[p] : offs[p] + (n + 1) * nfun].reshape(n + 1, nfun)
        approx = np.polynomial.chebyshev.chebval(_CHECK, c).T  # (4, nfun)
        ex = checks[keys[p]]
        lg = result[keys[p]][3]
        logm[p] = lg
        with np.errstate(divide="ignore", invalid="ignore"):
            tex = np.where(lg[None, :], np.log(np.where(lg[None, :], ex, 1.0)), ex)
        diff = np.max(np.abs(approx - tex), axis=0)
        approx = np.where(lg[None, :], np.exp(np.where(lg[None, :], approx, 0.0)), approx)
        full = result[keys[p]][1]
        tail = np.sum(np.abs(full[-3:]), axis=0)
        scale = np.max(np.abs(result[keys[p]][2]), axis=0)
        bound[p] = np.maximum(np.maximum(2.0 * diff, tail), 4e-16 * scale)
        ok = (np.abs(ex) >= 1e-3 * scales[None, :]) | lg[None, :]
        if np.any(ok):
            worst = max(worst, float(np.max(np.where(ok, np.abs(approx - ex) / np.where(ok, np.abs(ex), 1.0), 0))))
    return SphereTable(
        depth=rec.depth, q=float(q), layers=tuple(layers), nodes=int(nodes), pieces=P, degrees=degs, levels=J,
        error=worst, powered=npow, level_base=base, level_split=split.copy(), piece_deg=degs, piece_off=offs, coef=coef,
        bound=np.ascontiguousarray(bound), logm=logm, nfun=nfun,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# the entry point used by :func:`meanfield.kernels`
# ---------------------------------------------------------------------------------------------------------------


def equal_norms(X, X2, sw, sb, spread=0.0):
    """(A, B, q) when every input of X and X2 (None: X alone) has the same layer-1 variance (to within a relative
    ``spread``: 0 asks for bitwise equality), else None. A and B are the bias-augmented unit inputs of
    :func:`meanfield.propagation.inputs.first_layer` and q the mean variance."""
    A, q1 = _unit_rows(X, sw, sb)
    B, q2 = (A, q1) if X2 is None else _unit_rows(X2, sw, sb)
    q = q1 if X2 is None else np.concatenate([q1, q2])
    lo, hi = float(q.min()), float(q.max())
    if hi - lo > spread * hi:
        return None
    return A, B, float(q[0]) if lo == hi else float(np.mean(q))


#: tables of the last few calls (a train/test split asks for the same network and variance several times)
_TABLES: dict = {}
_TABLES_KEPT = 4


def _cached_table(net, q, layers, omw, omb):
    key = (net, q, layers, omw.tobytes(), omb.tobytes())
    tab = _TABLES.get(key)
    if tab is None:
        tab = sphere_table(net, q, layers, omw, omb)
        if len(_TABLES) >= _TABLES_KEPT:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = tab
    return tab


def sphere_kernels(X, net, X2, layers, sphere, omw, omb):
    """:func:`meanfield.kernels` through the tabulated composed maps, or None where they do not apply.

    ``X``, ``X2`` (None: symmetric) are validated inputs; ``sphere`` is ``"auto"`` (use the tables when the
    layer-1 variances are exactly equal, :func:`equal_norms`, and ``net`` is a plain MLP of depth >= 2) or
    ``True`` (variances equal to a relative ``NORM_SPREAD``, taken as their mean; a ValueError says why when the
    tables do not apply). ``omw, omb`` are the NTK factors per layer.
    """
    from .dataset import Kernels, _layer_slots, _refuse_nonfinite

    if sphere is not True and sphere != "auto":
        raise ValueError(f'sphere must be True, False or "auto", got {sphere!r}')
    if not net.plain:
        if sphere is True:
            raise ValueError(f"sphere=True needs a plain MLP; this network uses {', '.join(net.features)}")
        return None
    if net.depth < 2:
        return None  # layer 1 is one matrix product: nothing to tabulate
    sw, sb = float(net.sigma_w2), float(net.sigma_b2)
    eq = equal_norms(X, X2, sw, sb, NORM_SPREAD if sphere is True else 0.0)
    if eq is None:
        if sphere is True:
            raise ValueError(f"sphere=True needs inputs of equal norm (sigma_w2 ||x||^2 / d + sigma_b2 equal to a "
                             f"relative {NORM_SPREAD:g}); use meanfield.data.to_sphere")  # fmt: skip
        return None
    A, B, q = eq
    sym = X2 is None
    depth = net.depth
    slots_t = _layer_slots(layers, depth) or ()
    n, m, nl = X.shape[0], (X if sym else X2).shape[0], len(slots_t)
    check_memory(
        8.0 * n * m * (3.2 + 3 * nl) + 8.0 * (n + m) * X.shape[1],
        f"kernels of {n} x {m} input pairs" + (f" with {nl} layers" if nl else ""),
        "use fewer inputs (blocks of rows: kernels(X[i:j], net, X2=X)) or fewer layers",
    )
    tab = _cached_table(net, q, tuple(slots_t), omw, omb)
    C = A @ B.T  # the Gram matrix of first_layer (the same product, so the same rounding), clipped in place
    np.clip(C, -1.0, 1.0, out=C)
    W0 = None

    def layer_one():
        d = X.shape[1]
        Y = X if sym else X2
        with np.errstate(over="ignore", under="ignore"):
            W = (sw / d) * (X @ Y.T)
            if not np.all(np.isfinite(W)):
                f = math.sqrt(sw / d)
                W = (X * f) @ (Y * f).T
        if not np.all(np.isfinite(W)):
            raise ValueError("the layer-1 kernel sigma_w2 x . x' / d overflows float64; rescale the inputs")
        return W

    if 1 in slots_t:
        W0 = layer_one()
    lay = np.array(slots_t, dtype=np.int64)
    shape_l = (nl, n, m) if nl else (0, 0, 0)
    nngp, ntk = np.empty((n, m)), np.empty((n, m))
    nngp_l, back_l, ntk_l = np.empty(shape_l), np.empty(shape_l), np.empty(shape_l)
    if nl == 0:
        flag = np.zeros((n, m), dtype=np.uint8)
        nbad = evaluate_two(A, B, C, sym, tab.levels, tab.level_base, tab.level_split, tab.piece_deg, tab.piece_off,
                            tab.coef, tab.bound, sb, SPHERE_TOL, nngp, ntk, flag)  # fmt: skip
    else:
        flag = np.empty((n, m), dtype=np.uint8)
        evaluate(
            A, B, C, sym, tab.levels, tab.level_base, tab.level_split, tab.piece_deg, tab.piece_off, tab.coef,
            tab.bound, tab.logm, tab.nfun, sb, SPHERE_TOL, lay, omw, omb, W0 if W0 is not None else np.zeros((1, 1)),
            depth, nngp, ntk, nngp_l, back_l, ntk_l, flag,
        )  # fmt: skip
        if sym:
            flag = np.triu(flag)
        nbad = 1
    I, Jx = np.nonzero(flag) if nbad else (np.empty(0, np.int64), np.empty(0, np.int64))
    if I.size:  # pairs the table cannot give to SPHERE_TOL: the exact layer loop, pair by pair
        if W0 is None:
            W0 = layer_one()
        S, R = np.empty(I.size), np.empty(I.size)
        fallback_sr(A, B, C, I, Jx, S, R)
        slots = None
        if nl:
            slots = np.full(depth, -1, dtype=np.int64)
            slots[lay - 1] = np.arange(nl)
        w, th, per = Recursion(net, q, omw, omb).run(S, R, W0[I, Jx], slots)
        if not nl:  # with per-layer outputs every entry is scanned below
            _refuse_nonfinite(w, th, th[:0])
        for a, b in ((I, Jx), (Jx, I)) if sym else ((I, Jx),):
            nngp[a, b] = w + sb
            ntk[a, b] = th
            if nl:
                nngp_l[:, a, b] = per[0] + sb
                back_l[:, a, b] = per[1]
                ntk_l[:, a, b] = per[2]
    # every entry from the table is a Chebyshev sum at |x| <= 1, bounded by the sum of |coefficients|: finite
    # when that is (the n x n scan costs ~10 % of the call); per-layer outputs exponentiate log B_l, so scan them
    with np.errstate(over="ignore"):
        total = float(np.sum(np.abs(tab.coef))) + abs(sb)
    if nl or not math.isfinite(total):
        _refuse_nonfinite(nngp, ntk, ntk_l)
    if nl == 0:
        return Kernels(nngp, ntk)
    return Kernels(nngp, ntk, tuple(slots_t), nngp_l, back_l, ntk_l)
