"""The seq2seq layer's attention and output head, forward and backward, in batched NumPy.

Shapes: decoder states S (B, T, H), encoder states K (B, S_in, H), source mask (B, S_in) bool.
Scores (B, T, S_in):
  dot       (Luong et al. 2015): s_t . h_j
  additive  (Bahdanau et al. 2014): v . tanh(W_q s_t + W_k h_j)
Weights a = softmax over the real source positions; context c_t = sum_j a_tj h_j.
Head (Luong's attentional vector, eq. 5): u_t = tanh(W_c [s_t; c_t] + b_c), logits = W_o u_t + b_o
(without attention u_t = tanh(W_c s_t + b_c)).

Every product covers all steps at once, so no Python loop runs per time step in training; they
go through attention_products (big ones in fixed pieces on the engine's threads: the same bits
on one thread and two), the rest is NumPy.
"""

from __future__ import annotations

import numpy as np

from .attention_products import bmm, grad_dot, mat

NEG = -1e30           # a padded source position's score: exp underflows to exactly 0


def softmax_masked(scores, smask):
    """Softmax over the last axis with padded positions at weight 0. scores (B, T, S), smask (B, S)."""
    z = np.where(smask[:, None, :], scores, NEG)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    e *= smask[:, None, :]
    return e / np.maximum(e.sum(axis=-1, keepdims=True), np.finfo(scores.dtype).tiny)


def keys(kind, p, K):
    """What the scores need from the encoder states alone (additive: W_k h_j, (B, S_in, A)), so a
    decoding loop computes it once rather than at every step."""
    return mat(K, p["attention.key.weight"].T) if kind == "additive" else None


def attend(kind, p, S, K, smask, k=None):
    """(context (B, T, H), weights (B, T, S_in), cache for attend_backward); `k` from `keys`."""
    if kind == "dot":
        scores = bmm(S, K.transpose(0, 2, 1))                              # (B, T, S_in)
        cache = {}
    else:
        q = mat(S, p["attention.query.weight"].T)                          # (B, T, A)
        k = keys(kind, p, K) if k is None else k                           # (B, S_in, A)
        e = np.tanh(q[:, :, None, :] + k[:, None, :, :])                   # (B, T, S_in, A)
        scores = e @ p["attention.v.weight"][0]                            # (B, T, S_in)
        cache = {"e": e}
    a = softmax_masked(scores, smask)
    return bmm(a, K), a, cache


def attend_backward(kind, p, g, S, K, a, cache, dctx):
    """Gradients into S and K (returned, (B, T, H) and (B, S_in, H)); parameter gradients
    written into g (overwritten)."""
    dK = bmm(a.transpose(0, 2, 1), dctx)                                   # (B, S_in, H) via the context
    da = bmm(dctx, K.transpose(0, 2, 1))                                   # (B, T, S_in)
    ds = a * (da - (da * a).sum(axis=-1, keepdims=True))                   # softmax backward; 0 at padding
    if kind == "dot":
        dS = bmm(ds, K)
        dK += bmm(ds.transpose(0, 2, 1), S)
        return dS, dK
    e, v = cache["e"], p["attention.v.weight"][0]
    g["attention.v.weight"][0] = np.einsum("bts,btsa->a", ds, e)
    dpre = ds[..., None] * v * (1.0 - e * e)                               # (B, T, S_in, A)
    dq, dk = dpre.sum(axis=2), dpre.sum(axis=1)                            # (B, T, A), (B, S_in, A)
    wq, wk = p["attention.query.weight"], p["attention.key.weight"]
    H = S.shape[-1]
    grad_dot(dq.reshape(-1, dq.shape[-1]), S.reshape(-1, H), g["attention.query.weight"])
    grad_dot(dk.reshape(-1, dk.shape[-1]), K.reshape(-1, H), g["attention.key.weight"])
    dK += mat(dk, wk)
    return mat(dq, wq), dK


def head(p, feat):
    """(logits (B, T, V), u (B, T, C)) from features (B, T, F)."""
    u = mat(feat, p["combine.weight"].T)
    u += p["combine.bias"]
    np.tanh(u, out=u)
    logits = mat(u, p["out.weight"].T)
    logits += p["out.bias"]
    return logits, u


def head_backward(p, g, feat, u, dlogits):
    """dfeat (B, T, F); the head's parameter gradients written into g."""
    V, C, F = dlogits.shape[-1], u.shape[-1], feat.shape[-1]
    d2 = dlogits.reshape(-1, V)
    grad_dot(d2, u.reshape(-1, C), g["out.weight"])
    g["out.bias"][...] = d2.sum(axis=0)
    du = mat(dlogits, p["out.weight"]) * (1.0 - u * u)                     # (B, T, C)
    grad_dot(du.reshape(-1, C), feat.reshape(-1, F), g["combine.weight"])
    g["combine.bias"][...] = du.reshape(-1, C).sum(axis=0)
    return mat(du, p["combine.weight"])


def sigmoid(x):
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def cell_step(kind, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of nn.RNN / nn.LSTM / nn.GRU (PyTorch's gate order) for a batch: x (B, in),
    h, c (B, H) -> (h', c'); c is None except for the LSTM. Used by decoding, which feeds each
    step's output back in and so cannot run the whole-sequence kernels."""
    gi = x @ w_ih.T + b_ih
    gh = h @ w_hh.T + b_hh
    if kind == "rnn":
        return np.tanh(gi + gh), None
    H = h.shape[1]
    if kind == "lstm":
        z = gi + gh
        i, f, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), sigmoid(z[:, 3 * H:])
        c2 = f * c + i * np.tanh(z[:, 2 * H:3 * H])
        return o * np.tanh(c2), c2
    r = sigmoid(gi[:, :H] + gh[:, :H])
    u = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    return (1.0 - u) * n + u * h, None
