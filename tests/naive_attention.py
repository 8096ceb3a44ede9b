"""A slow, plain NumPy reference for engine.attention (the idea of stumpy's tests/naive.py).

One sample and one head at a time, the full T x T score matrix with an explicit boolean mask,
every query position computed (also for output = "last", which then picks one row). No JIT,
no preallocation, no strided views: it shares nothing with the fast code but the maths.
Parameters come as a dict keyed by the layer's local names ("attn.in_proj_weight", ...).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-5


def layernorm(x, w, b):
    """Over the last axis; returns y and what the backward needs."""
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    xhat = (x - mu) / np.sqrt(var + EPS)
    return xhat * w + b, (xhat, var)


def layernorm_back(dy, cache, w):
    """dx, dw, db for y = layernorm(x, w, b) (the textbook form, over the last axis)."""
    xhat, var = cache
    f = xhat.shape[-1]
    dxhat = dy * w
    dx = (f * dxhat - dxhat.sum(-1, keepdims=True) - xhat * (dxhat * xhat).sum(-1, keepdims=True)) \
        / (f * np.sqrt(var + EPS))
    axes = tuple(range(dy.ndim - 1))
    return dx, (dy * xhat).sum(axes), dy.sum(axes)


def allowed(t: int, n: int) -> np.ndarray:
    """(T, T) bool: query i may see key j when j <= i (causal) and j < n (not padding)."""
    i, j = np.meshgrid(np.arange(t), np.arange(t), indexing="ij")
    return (j <= i) & (j < n)


def forward(x, params, lens, heads, positional, table, ff, output):
    """x (B, T, E) -> y ((B, D) for "last", (B, T, D) for "all"), and a cache per sample."""
    nb, t, _ = x.shape
    p = params
    d = p["attn.in_proj_weight"].shape[1]
    dh = d // heads
    ys, caches = [], []
    for b in range(nb):
        c = {"x": x[b], "n": int(lens[b])}
        xe = x[b] @ p["proj.weight"].T + p["proj.bias"] if "proj.weight" in p else x[b].copy()
        if positional == "learned":
            xe = xe + p["pos"][:t]
        elif positional == "sinusoidal":
            xe = xe + table[:t]
        c["xe"] = xe
        qkv = xe @ p["attn.in_proj_weight"].T + p["attn.in_proj_bias"]
        c["qkv"] = qkv
        ok = allowed(t, c["n"])
        o = np.zeros((t, d))
        c["att"] = []
        for h in range(heads):
            qh = qkv[:, h * dh:(h + 1) * dh]
            kh = qkv[:, d + h * dh:d + (h + 1) * dh]
            vh = qkv[:, 2 * d + h * dh:2 * d + (h + 1) * dh]
            s = np.where(ok, qh @ kh.T / np.sqrt(dh), -np.inf)
            a = np.exp(s - s.max(1, keepdims=True))
            a /= a.sum(1, keepdims=True)
            c["att"].append(a)
            o[:, h * dh:(h + 1) * dh] = a @ vh
        c["o"] = o
        y, c["ln1"] = layernorm(xe + o @ p["attn.out_proj.weight"].T + p["attn.out_proj.bias"],
                                p["norm1.weight"], p["norm1.bias"])
        c["y1"] = y
        if ff:
            hid = np.maximum(y @ p["ff1.weight"].T + p["ff1.bias"], 0.0)
            c["hid"] = hid
            y, c["ln2"] = layernorm(y + hid @ p["ff2.weight"].T + p["ff2.bias"], p["norm2.weight"], p["norm2.bias"])
        ys.append(y[c["n"] - 1] if output == "last" else y)
        caches.append(c)
    return np.array(ys), caches


def backward(dy, caches, params, heads, positional, ff, output):
    """Gradients (dict by local name), dL/dx (B, T, E) and dL/dxe (B, T, D) for upstream dy."""
    p = params
    d = p["attn.in_proj_weight"].shape[1]
    dh = d // heads
    g = {k: np.zeros_like(v) for k, v in p.items()}
    dxs, dxes = [], []
    for b, c in enumerate(caches):
        t = c["xe"].shape[0]
        if output == "last":
            dyb = np.zeros((t, d))
            dyb[c["n"] - 1] = dy[b]
        else:
            dyb = dy[b]
        if ff:
            dr2, dw, db = layernorm_back(dyb, c["ln2"], p["norm2.weight"])
            g["norm2.weight"] += dw
            g["norm2.bias"] += db
            g["ff2.weight"] += dr2.T @ c["hid"]
            g["ff2.bias"] += dr2.sum(0)
            dhid = (dr2 @ p["ff2.weight"]) * (c["hid"] > 0)
            g["ff1.weight"] += dhid.T @ c["y1"]
            g["ff1.bias"] += dhid.sum(0)
            dyb = dr2 + dhid @ p["ff1.weight"]
        dr1, dw, db = layernorm_back(dyb, c["ln1"], p["norm1.weight"])
        g["norm1.weight"] += dw
        g["norm1.bias"] += db
        g["attn.out_proj.weight"] += dr1.T @ c["o"]
        g["attn.out_proj.bias"] += dr1.sum(0)
        do = dr1 @ p["attn.out_proj.weight"]
        qkv = c["qkv"]
        dqkv = np.zeros_like(qkv)
        for h in range(heads):
            cols = slice(h * dh, (h + 1) * dh)
            qh, kh, vh = qkv[:, cols], qkv[:, d:][:, cols], qkv[:, 2 * d:][:, cols]
            a, doh = c["att"][h], do[:, cols]
            da = doh @ vh.T
            ds = a * (da - (da * a).sum(1, keepdims=True)) / np.sqrt(dh)
            dqkv[:, cols] = ds @ kh
            dqkv[:, d:][:, cols] = ds.T @ qh
            dqkv[:, 2 * d:][:, cols] = a.T @ doh
        g["attn.in_proj_weight"] += dqkv.T @ c["xe"]
        g["attn.in_proj_bias"] += dqkv.sum(0)
        dxe = dqkv @ p["attn.in_proj_weight"] + dr1
        if positional == "learned":
            g["pos"][:t] += dxe
        if "proj.weight" in p:
            g["proj.weight"] += dxe.T @ c["x"]
            g["proj.bias"] += dxe.sum(0)
            dxs.append(dxe @ p["proj.weight"])
        else:
            dxs.append(dxe)
        dxes.append(dxe)
    return g, np.array(dxs), np.array(dxes)


def position_norms(dxe, lens):
    """(T,): mean over the samples with t < n of ||dL/dxe_t||; 0 where no sample is that long."""
    t = dxe.shape[1]
    norms = np.linalg.norm(dxe, axis=2)
    real = np.arange(t)[None, :] < np.asarray(lens)[:, None]
    count = real.sum(0)
    return np.where(count > 0, (norms * real).sum(0) / np.maximum(count, 1), 0.0)
