"""Independent reference code for the tests of meanfield.silent: data, gradient descent and gradient flow for linear
networks, the parameter-Jacobian NTK (import as ``from silent_reference import ...``)."""

import numpy as np

import meanfield.silent as ms
from meanfield import MLP, Network, train

D, N, P = 30, 50, 200  # input dimension, hidden width, samples of the two-layer experiments


# ------------------------------------------------------------------------------------------------------------------
# independent reference code: data, GD / gradient flow for linear networks, parameter-Jacobian NTK
# ------------------------------------------------------------------------------------------------------------------
def _task(s=1.0, seed=0, d=D, p=P):
    rng = np.random.default_rng(seed)
    X = ms.whiten(rng.standard_normal((p, d)))
    beta = rng.standard_normal(d)
    beta /= np.linalg.norm(beta)
    return X, s * (X @ beta), beta, rng


def _two_layer_init(rng, sigma, d=D, n=N):
    return rng.standard_normal(n) * sigma / np.sqrt(n), rng.standard_normal((n, d)) * sigma / np.sqrt(d)


def _linear_mlp(Ws):
    """The linear network f(x) = W_L ... W_1 x (SP, no biases: z_l = W_l h_{l-1}) with exactly these weights."""
    return MLP(Network(len(Ws), "linear", parameterization="standard", width=[W.shape[0] for W in Ws[:-1]]), Ws)


def _train_gd(X, y, Ws, lr, steps, rho=None, observe=None):
    """``steps`` full-batch GD steps of ``meanfield.train`` on |f - y|^2/(2P) with per-layer rates lr * rho_l.

    ``observe(step, mlp)`` sees the network before training and after every step (time t = lr * step).
    """
    return train(_linear_mlp(Ws), X, y, epochs=steps, lr=lr, batch_size=X.shape[0], momentum=0.0, loss="mse",
                 layer_lr=rho, seed=0, callback=observe)  # fmt: skip


def _gd_two_layer(X, y, beta, a, W, lr, steps):
    """GD on f = a^T W x from (a, W); records loss, q, r and the NTK alignment after every step."""
    obs = []

    def observe(_, mlp):
        W_, a_ = mlp.weights[0], mlp.weights[1][0]
        Wb = W_ @ beta
        M = W_.T @ W_ + (a_ @ a_) * np.eye(W_.shape[1])
        obs.append((0.5 * (a_ @ a_ + Wb @ Wb), Wb @ a_, beta @ M @ beta / np.linalg.norm(M)))

    hist = _train_gd(X, y, [W, a[None, :]], lr, steps, observe=observe)
    q, r, align = np.array(obs).T
    loss = np.append(hist.step_loss, hist.loss[-1])  # step k's batch loss is the full loss before step k
    return dict(t=lr * np.arange(steps + 1), loss=loss, q=q, r=r, A=align)


def _crossing(t, v, level):
    """First time the sampled curve v(t) crosses ``level`` (linear interpolation)."""
    up = v[0] < level
    i = int(np.argmax(v >= level)) if up else int(np.argmax(v <= level))
    assert i > 0, "curve never crosses the level"
    return t[i - 1] + (level - v[i - 1]) * (t[i] - t[i - 1]) / (v[i] - v[i - 1])


def _gd_deep(X, y, Ws, lr, steps, rho=None, beta=None):
    """GD for f = w^L^T W^{L-1}...W^1 x with per-layer rates lr * rho_l; returns weights, t and w(t) along beta."""
    w_end = []

    def observe(_, mlp):
        w_end.append(beta @ (X.T @ mlp(X)[:, 0]) / X.shape[0])  # end-to-end weight along beta (X^T X = P I)

    hist = _train_gd(X, y, Ws, lr, steps, rho, None if beta is None else observe)
    return hist.mlp.weights, lr * np.arange(steps + 1), np.array(w_end)


def _reference_gd_step(X, y, Ws, lr, rho):
    """One GD step on |f - y|^2/(2P) for a deep linear network, written out by hand (the backward pass)."""
    hs = [X]
    for W in Ws:
        hs.append(hs[-1] @ W.T)
    e = (hs[-1][:, 0] - y) / X.shape[0]
    g, grads = np.ones(1), [None] * len(Ws)
    for l in range(len(Ws) - 1, -1, -1):
        grads[l] = np.outer(g, hs[l].T @ e)
        g = Ws[l].T @ g
    return [W - lr * c * G for W, c, G in zip(Ws, rho, grads, strict=True)], 0.5 * np.mean((hs[-1][:, 0] - y) ** 2)


def _ntk_matrix_jacobian(Ws, rho=None):
    """M with K(x, x') = x^T M x', from the explicit parameter Jacobian on the basis inputs x = e_i."""
    L, d = len(Ws), Ws[0].shape[1]
    rho = np.ones(L) if rho is None else np.asarray(rho, dtype=float)
    hs = [np.eye(d)]
    for W in Ws[:-1]:
        hs.append(hs[-1] @ W.T)
    g, blocks = np.ones(1), []
    for l in range(L - 1, -1, -1):  # df/dW_l = g_l h_{l-1}^T, flattened per input
        blocks.append(np.sqrt(rho[l]) * np.einsum("a,ib->iab", g, hs[l]).reshape(d, -1))
        g = Ws[l].T @ g
    J = np.concatenate(blocks, axis=1)
    return J @ J.T


def _unit(v):
    return v / np.linalg.norm(v)


def _rel(A, B):
    return np.linalg.norm(A - B) / np.linalg.norm(B)
