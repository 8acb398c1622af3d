"""Kernel alignment: matrix cosine, HSIC, (debiased) CKA, kernel-target alignment and layer-wise tangent-kernel CKA.

Pure functions over arrays. Kernel arguments are symmetric ``(..., n, n)`` arrays (to a relative tolerance
:data:`SYM_RTOL` = 1e-10 of their largest entry; an asymmetric kernel is a ValueError naming it): any leading axes are
batch axes (a stack of networks, of layers, ...), and the result has those leading axes.

Numerics: every argument is first scaled exactly by a power of two (:func:`numpy.ldexp`) to a largest entry in
``[0.5, 1)``, so the scale-invariant measures (:func:`cosine`, :func:`cka`, :func:`kta`, :func:`linear_cka`) give the
same result for ``a K`` and ``K`` at every ``a > 0`` for which ``a K`` is representable (to the bit when ``a`` is a
power of two; to rounding of ``a K`` otherwise), and no sum of squares over- or underflows. :func:`hsic`,
:func:`center` and :func:`u_center` scale back at the end and refuse (ValueError) a result
outside the float64 range rather than return ``inf`` or a number without relative precision.

:func:`layer_alignment` gives the layer alignments ``A_l`` of Lou et al. 2022, eq. (7) for a finite network from the
per-layer factorization of its tangent kernel, without forming the parameter Jacobian.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._checks import check_bool, check_choice, check_real, finite_array

LAYOUTS = ("operator", "traced")


class AlignmentWarning(UserWarning):
    """An alignment is undefined (``nan``), e.g. a debiased self-HSIC that is not positive."""


#: Relative tolerance of the symmetry check of kernel arguments: ``max|K - K^T| <= SYM_RTOL * max|K|``.
SYM_RTOL = 1e-10


def _exponent(A, axes=(-2, -1)):
    """The binary exponent ``e`` with ``max|A| = m 2^e``, ``m`` in ``[0.5, 1)``, over ``axes`` (0 for a zero block).

    Scaling by ``2^-e`` (:func:`numpy.ldexp`) is exact, never overflows, and puts every entry in ``[-1, 1]``.
    """
    top = np.max(np.abs(A), axis=axes) if A.size else np.zeros(A.shape[:-2])
    return np.frexp(top)[1]


def pow2_scaled(A, axes=(-2, -1)):
    """``(A 2^-e, e)`` with ``e`` from :func:`_exponent`: the same matrix with its largest entry in ``[0.5, 1)``."""
    e = _exponent(A, axes)
    return np.ldexp(A, -np.expand_dims(e, axes)), e


def square_kernel(K, name, symmetric=True):
    """``K`` as a finite float64 ``(..., n, n)`` array (refusing complex, bool and object dtypes), symmetric to
    :data:`SYM_RTOL` relative to its largest entry when ``symmetric``."""
    K = finite_array(K, name)
    if K.ndim < 2 or K.shape[-1] != K.shape[-2]:
        raise ValueError(f"{name} must be a square matrix (..., n, n), got shape {K.shape}")
    if symmetric and K.size:
        Ks, _ = pow2_scaled(K)
        gap = np.max(np.abs(Ks - np.swapaxes(Ks, -1, -2)))
        if gap > SYM_RTOL * np.max(np.abs(Ks)):
            raise ValueError(
                f"{name} must be symmetric: max|{name} - {name}^T| / max|{name}| = {gap / np.max(np.abs(Ks)):.3g} "
                f"exceeds the tolerance {SYM_RTOL:g}"
            )
    return K


def _pair(K, L, min_n=1):
    K, L = square_kernel(K, "K"), square_kernel(L, "L")
    if K.shape[-1] != L.shape[-1]:
        raise ValueError(f"K and L must have the same size n, got {K.shape[-1]} and {L.shape[-1]}")
    if K.shape[-1] < min_n:
        raise ValueError(f"the unbiased estimator needs n >= {min_n}, got n = {K.shape[-1]}")
    return K, L


def _inner(A, B):
    return np.sum(A * B, axis=(-2, -1))


def _ratio(num, den):
    """``num / den`` with ``nan`` (not a warning) where ``den`` is zero."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    ok = den > 0
    out = np.where(ok, num / np.where(ok, den, 1.0), np.nan)
    return out if out.ndim else float(out)


def _cos(A, B):
    """``<A, B>_F / (||A||_F ||B||_F)`` over the last two axes, each argument first scaled exactly to a largest
    entry in ``[0.5, 1)`` (:func:`pow2_scaled`), so no sum of squares over- or underflows for any finite input."""
    A, _ = pow2_scaled(A)
    B, _ = pow2_scaled(B)
    return _ratio(_inner(A, B), np.sqrt(_inner(A, A)) * np.sqrt(_inner(B, B)))


def unscale(value, e, what, axes=None):
    """``value 2^e`` (exact), refusing a result outside the normal float64 range (an overflow to inf, or a largest
    entry over ``axes`` that underflows below 2.2e-308 and loses its relative precision) instead of returning it."""
    value = np.asarray(value, dtype=np.float64)
    if axes is not None:
        e = np.expand_dims(e, axes)
    with np.errstate(over="ignore", under="ignore"):  # detected below
        out = np.ldexp(value, e)
    top_in = np.abs(value) if axes is None else np.max(np.abs(value), axis=axes)
    top_out = np.abs(out) if axes is None else np.max(np.abs(out), axis=axes)
    bad = ~np.isfinite(top_out) | ((top_in != 0) & (top_out < np.finfo(np.float64).tiny))
    if np.any(bad):
        raise ValueError(
            f"{what} is outside the float64 range (about 2.2e-308 to 1.8e308) for these inputs; rescale them, or use "
            "a scale-invariant measure (cka, kta, cosine)"
        )
    return out if out.ndim else float(out)


def psd_power(B, power: float = 1.0):
    """The PSD matrix power ``B^power`` over the last two axes (negative eigenvalues clipped to 0); ``B`` itself
    (as a float64 array) when ``power == 1``.

    ``B`` must be symmetric (to :data:`SYM_RTOL`) and ``power > 0`` finite. The eigendecomposition is taken of ``B``
    scaled exactly by a power of two (:func:`numpy.ldexp`), so any finite ``B`` works; a result outside the float64
    range is refused.
    """
    power = check_real(power, "power", low=0, low_open=True)
    B = square_kernel(B, "B")
    if power == 1.0:
        return B
    Bs, e = pow2_scaled(B)
    w, V = np.linalg.eigh(Bs)
    with np.errstate(over="ignore", under="ignore"):
        f = np.exp2(e * power)[..., None, None]
    if not (np.all(np.isfinite(f)) and np.all(f > 0)):
        raise ValueError("B^power is outside the float64 range; rescale B")
    return np.matmul(V * np.clip(w, 0.0, None)[..., None, :] ** power, np.swapaxes(V, -1, -2)) * f


def cosine(A, B, power: float = 1.0):
    """Matrix cosine ``<A, B>_F / (||A||_F ||B||_F)``.

    Parameters
    ----------
    A, B : array_like, shape (..., p, q)
        Same-shape matrices.
    power : float
        Compare ``A`` with the PSD matrix power ``B^power`` (``B`` symmetric PSD; Beaglehole et al. 2024 use 1).

    Returns
    -------
    float or ndarray
        In ``[-1, 1]`` (``[0, 1]`` for PSD arguments); ``nan`` when a norm is zero.

    Notes
    -----
    The neural feature correlation of Beaglehole et al. 2024, sec. 2.1 (their definition (NFC)). Invariant to
    positive rescaling of either argument, not to adding a multiple of ``I`` or ``11^T``.

    Examples
    --------
    >>> cosine([[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 0.0]])
    0.7071067811865475
    """
    power = check_real(power, "power", low=0, low_open=True)
    A = finite_array(A, "A")
    B = finite_array(B, "B")
    if A.ndim < 2 or A.shape != B.shape:
        raise ValueError(f"A and B must be matrices of the same shape, got {A.shape} and {B.shape}")
    if power != 1.0:
        if B.shape[-1] != B.shape[-2]:
            raise ValueError("power != 1 needs a square symmetric PSD B")
        B = psd_power(pow2_scaled(B)[0], power)  # scale-free: B^power of B / max|B|
    return _cos(A, B)


def center(K):
    """Double centering ``H K H`` with ``H = I - 11^T/n`` (Kornblith et al. 2019; Canatar & Pehlevan 2022, sec. III).

    Examples
    --------
    >>> center([[2.0, 0.0], [0.0, 0.0]]).tolist()
    [[0.5, -0.5], [-0.5, 0.5]]
    """
    K = square_kernel(K, "K")
    Ks, e = pow2_scaled(K)
    return unscale(_center(Ks), e, "center(K)", axes=(-2, -1))


def _center(K):
    return K - K.mean(axis=-2, keepdims=True) - K.mean(axis=-1, keepdims=True) + K.mean(axis=(-2, -1), keepdims=True)


def u_center(K):
    """U-centering (Szekely & Rizzo 2014) used by the unbiased HSIC; needs ``n >= 4``.

    Notes
    -----
    With ``K~ = K`` with its diagonal set to zero, ``S_i = sum_k K~_ik`` and ``T = sum_kl K~_kl``:
    ``K^u_ij = K~_ij - (S_i + S_j)/(n-2) + T/((n-1)(n-2))`` for ``i != j`` and ``K^u_ii = 0``
    Then ``HSIC_u(K, L) = <K^u, L^u>_F / (n(n-3))``, the U-statistic of Song et al. 2012, eq. (5).
    """
    K = square_kernel(K, "K")
    if K.shape[-1] < 4:
        raise ValueError(f"u_center needs n >= 4, got n = {K.shape[-1]}")
    Ks, e = pow2_scaled(K)
    return unscale(_u_center(Ks), e, "u_center(K)", axes=(-2, -1))


def _u_center(K):
    n = K.shape[-1]
    eye = np.eye(n, dtype=bool)
    Kt = np.where(eye, 0.0, K)
    S = Kt.sum(axis=-1)
    T = S.sum(axis=-1)
    U = Kt - (S[..., :, None] + S[..., None, :]) / (n - 2) + (T / ((n - 1) * (n - 2)))[..., None, None]
    return np.where(eye, 0.0, U)


def hsic(K, L, unbiased: bool = False):
    """Hilbert-Schmidt independence criterion of two Gram matrices.

    Parameters
    ----------
    K, L : array_like, shape (..., n, n)
    unbiased : bool
        False: the V-statistic ``tr(K H L H) / (n-1)^2``. True: the U-statistic of Song et al. (2012), eq. (5),
        computed by U-centering (needs ``n >= 4``).

    Returns
    -------
    float or ndarray

    Notes
    -----
    Gretton et al. 2005 (biased) and Song et al. 2012 (unbiased). The normalization ``(n-1)^2`` (some authors use
    ``n^2``) cancels in CKA.

    Examples
    --------
    >>> import numpy as np
    >>> K = np.diag([1.0, 2.0, 3.0, 4.0])
    >>> round(hsic(K, K), 6), round(hsic(K, K, unbiased=True), 6)
    (2.361111, 0.0)
    """
    unbiased = check_bool(unbiased, "unbiased")
    K, L = _pair(K, L, 4 if unbiased else 1)
    n = K.shape[-1]
    (Ks, eK), (Ls, eL) = pow2_scaled(K), pow2_scaled(L)
    if unbiased:
        out = _inner(_u_center(Ks), _u_center(Ls)) / (n * (n - 3))
    else:
        zero = np.zeros(np.broadcast_shapes(eK.shape, eL.shape))
        out = _inner(_center(Ks), _center(Ls)) / (n - 1) ** 2 if n > 1 else zero
    return unscale(out, eK + eL, "hsic(K, L)")


def cka(K, L, unbiased: bool = False):
    """Centered kernel alignment ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``.

    Parameters
    ----------
    K, L : array_like, shape (..., n, n)
    unbiased : bool
        Use the debiased HSIC (ignores the diagonals; can be negative). ``nan`` with an
        :class:`AlignmentWarning` when a self-HSIC is not positive.

    Returns
    -------
    float or ndarray
        The biased CKA is Lou et al. 2022, eq. (6), ``<K_c, L_c>_F / (||K_c||_F ||L_c||_F)``, in ``[0, 1]`` for PSD
        arguments; ``nan`` when a centered kernel vanishes.

    Notes
    -----
    Gretton et al. 2005; Cortes et al. 2012; Kornblith et al. 2019; Canatar & Pehlevan 2022, sec. III. Invariant to
    ``K -> a K + b 11^T`` (``a > 0``); the debiased form also to any change of the diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> K = np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    >>> round(cka(K, 3 * K + 5), 12)
    1.0
    """
    unbiased = check_bool(unbiased, "unbiased")
    K, L = _pair(K, L, 4 if unbiased else 1)
    Ks, Ls = pow2_scaled(K)[0], pow2_scaled(L)[0]
    if not unbiased:
        return _cos(_center(Ks), _center(Ls))
    Ku, Lu = pow2_scaled(_u_center(Ks))[0], pow2_scaled(_u_center(Ls))[0]
    kk, ll = _inner(Ku, Ku), _inner(Lu, Lu)
    if np.any(kk <= 0) or np.any(ll <= 0):
        warnings.warn("debiased self-HSIC is not positive; CKA is nan there", AlignmentWarning, stacklevel=2)
    ok = (kk > 0) & (ll > 0)
    return _ratio(_inner(Ku, Lu), np.where(ok, np.sqrt(np.where(ok, kk, 0.0)) * np.sqrt(np.where(ok, ll, 0.0)), 0.0))


def kta(K, L):
    """Uncentered kernel-target alignment ``<K, L>_F / (||K||_F ||L||_F)`` (Cristianini et al. 2001).

    Notes
    -----
    Canatar & Pehlevan 2022, sec. III, eq. (4) in the finite form printed below it (eq. (4) itself writes
    ``||K_1 K_2||^2_HS`` for the inner product ``<K_1, K_2>_HS``). The alignment of Atanasov et al. 2022, sec. 2,
    ``y^T K y / (||K||_F ||y||^2)``, is ``kta(K, y y^T)`` (uncentered, although they cite Cortes et al. 2012, who
    center). Not invariant to ``K -> K + c 11^T``.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([1.0, -1.0, 1.0])
    >>> round(kta(np.outer(y, y), np.outer(y, y)), 12)
    1.0
    """
    K, L = _pair(K, L)
    return _cos(K, L)


def linear_cka(A, B, unbiased: bool = False):
    """CKA of the linear kernels ``A A^T`` and ``B B^T``, computed in feature space.

    Parameters
    ----------
    A : array_like, shape (..., n, p)
    B : array_like, shape (..., n, q)
        Feature matrices with the same rows (samples).
    unbiased : bool
        Debiased CKA (feature form of Kornblith et al. 2019; needs ``n >= 4``).

    Returns
    -------
    float or ndarray
        Equal to ``cka(A A^T, B B^T, unbiased)``.

    Notes
    -----
    With column-centered features, biased: ``||A^T B||_F^2 / (||A^T A||_F ||B^T B||_F)`` at cost ``O(n (p+q)^2)``.
    Debiased: each ``||X^T Y||_F^2`` becomes ``||X^T Y||_F^2 - n/(n-2) sum_i ||x_i||^2 ||y_i||^2 +
    ||X||_F^2 ||Y||_F^2 / ((n-1)(n-2))`` (``= n(n-3) HSIC_u``; Kornblith et al. 2019).

    Examples
    --------
    >>> import numpy as np
    >>> A = np.random.default_rng(0).standard_normal((20, 3))
    >>> round(linear_cka(A, 2 * A @ np.diag([1.0, 1.0, 1.0])), 12)
    1.0
    """
    unbiased = check_bool(unbiased, "unbiased")
    A = finite_array(A, "A")
    B = finite_array(B, "B")
    if A.ndim < 2 or B.ndim < 2 or A.shape[:-1] != B.shape[:-1]:
        raise ValueError(f"A and B must be feature matrices (..., n, p) with the same n, got {A.shape}, {B.shape}")
    n = A.shape[-2]
    if unbiased and n < 4:
        raise ValueError(f"the unbiased estimator needs n >= 4, got n = {n}")
    A, B = (
        pow2_scaled(A)[0],
        pow2_scaled(B)[0],
    )  # exact power-of-two scaling: CKA is scale-free, the sums cannot overflow
    A = A - A.mean(axis=-2, keepdims=True)
    B = B - B.mean(axis=-2, keepdims=True)
    A, B = pow2_scaled(A)[0], pow2_scaled(B)[0]

    def cross(X, Y):
        s = np.sum(np.matmul(np.swapaxes(X, -1, -2), Y) ** 2, axis=(-2, -1))
        if unbiased:
            nx, ny = np.sum(X * X, axis=-1), np.sum(Y * Y, axis=-1)
            s = s - n / (n - 2) * np.sum(nx * ny, axis=-1) + nx.sum(-1) * ny.sum(-1) / ((n - 1) * (n - 2))
        return s

    ab, aa, bb = cross(A, B), cross(A, A), cross(B, B)
    if unbiased and (np.any(aa <= 0) or np.any(bb <= 0)):
        warnings.warn("debiased self-HSIC is not positive; CKA is nan there", AlignmentWarning, stacklevel=2)
    ok = (aa > 0) & (bb > 0)
    return _ratio(ab, np.where(ok, np.sqrt(np.where(ok, aa, 0.0)) * np.sqrt(np.where(ok, bb, 0.0)), 0.0))


def target_kernel(Y, layout: str = "traced"):
    """Target kernel of labels ``Y``.

    Parameters
    ----------
    Y : array_like, shape (n,) or (n, o)
        Targets (one-hot rows for classification).
    layout : {"traced", "operator"}
        ``"traced"``: ``Y Y^T`` of shape ``(n, n)``, the target of Canatar & Pehlevan 2022 (sec. III) and
        Atanasov et al. 2022. ``"operator"``: ``vec(Y) vec(Y)^T`` of shape ``(n o, n o)`` in sample-major order
        (index ``i o + a``), the target of Lou et al. 2022, eq. (7).

    Returns
    -------
    ndarray

    Examples
    --------
    >>> target_kernel([[1.0, 0.0], [0.0, 1.0]], layout="operator").shape
    (4, 4)
    """
    check_choice(layout, LAYOUTS, "layout")
    Y = finite_array(Y, "Y")
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] < 1:
        raise ValueError(f"Y must have shape (n,) or (n, o), got {Y.shape}")
    if layout == "traced":
        return Y @ Y.T
    v = Y.ravel()
    return np.outer(v, v)


def layer_alignment(mlp, X, Y, layout: str = "operator", centered: bool = True, unbiased: bool = False, force=False):
    """Alignment ``A_l`` of every layer's tangent kernel with the target (Lou et al. 2022, eq. (7)).

    Parameters
    ----------
    mlp : meanfield.MLP
        A finite network (or a stack of them) with ``o`` outputs.
    X : array_like, shape (n, d)
    Y : array_like, shape (n, o) (or (n,) when o = 1)
        Targets, e.g. one-hot labels; integer class labels ``(n,)`` are one-hot encoded when ``o > 1``.
    layout : {"operator", "traced"}
        ``"operator"`` (default, Lou et al. 2022): the ``(n o, n o)`` layer kernel ``K_l`` against
        ``vec(Y) vec(Y)^T``. ``"traced"``: the class-traced kernel (Canatar & Pehlevan 2022, eq. (8)) against
        ``Y Y^T``. Identical when ``o = 1``.
    centered : bool
        CKA (default) or the uncentered alignment :func:`kta`.
    unbiased : bool
        Debiased CKA.
    force : bool
        Form operator kernels above the memory guard's limit anyway (:meth:`MLP.layer_ntk`).

    Returns
    -------
    ndarray, shape ([S,] L)
        ``A_l`` for ``l = 1..L`` (index ``l - 1``).

    Notes
    -----
    ``A_l = CKA(K_l, Y Y^T)`` with ``K_l = Psi_l^T Psi_l`` the tangent kernel of layer ``l``'s parameters
    (weights and biases, as the network has them). ``K_l`` comes from the exact factorization
    ``K_l[(i,a),(j,b)] = (omega_W h_{l-1}(x_i).h_{l-1}(x_j) + omega_b) delta^a_l(x_i).delta^b_l(x_j)``
    (Lou et al. 2022, eq. (9)): one forward pass, one backward pass for all outputs, and no ``P_l x n o``
    Jacobian.

    Examples
    --------
    >>> import numpy as np
    >>> from meanfield import Network
    >>> from meanfield.finite import MLP
    >>> mlp = MLP.sample(Network(3, "relu", width=32), d=4, seed=0, outputs=2)
    >>> X = np.random.default_rng(0).standard_normal((6, 4))
    >>> A = layer_alignment(mlp, X, np.eye(2)[[0, 1, 0, 1, 0, 1]])
    >>> A.shape, bool(np.all((A >= 0) & (A <= 1)))
    ((3,), True)
    """
    from ..finite.mlp import check_mlp

    check_mlp(mlp)
    kind = check_choice(layout, LAYOUTS, "layout")  # the MLP's kernel layout
    centered, unbiased = check_bool(centered, "centered"), check_bool(unbiased, "unbiased")
    force = check_bool(force, "force")
    X = mlp.check_inputs(X)
    n = X.shape[0]
    mlp.check_kernel_size(X, "operator" if kind == "operator" else "traced", force)
    Y = np.asarray(Y)
    Yt = mlp.targets(Y, n, "mse")  # integer class labels -> one-hot rows when o > 1
    T = target_kernel(Yt, kind)
    zs, hs = mlp.forward_pass(X)
    deltas = mlp.backward_pass(X, zs)
    traced = kind
    K = np.stack(
        [mlp.layer_kernel(hs, deltas, l, "both", traced) for l in range(1, mlp.net.depth + 1)], axis=1
    )  # (S, L, m, m)
    out = cka(K, T, unbiased=unbiased) if centered else kta(K, np.broadcast_to(T, K.shape))
    return mlp.unstack(out)
