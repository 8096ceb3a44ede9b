"""Slow, obvious NumPy references for the recurrent layers: one sample and one step at a time,
written from the equations (PyTorch's conventions), with no shared code with engine/recurrent*.

`run` does forward and backward of a whole stack for given output gradients and returns the
output, the parameter gradients (torch names without the layer prefix), the input gradient and
the per-time-step gradient norms, with the same masking and truncation semantics as the engine:
padded steps carry the state; truncate k cuts the recurrence into processing position p (0 = the
first step a direction reads) when (length - p) % k == 0.
"""

from __future__ import annotations

import numpy as np

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def cell_forward(kind, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of one sample: x (in,), h, c (H,) -> (h_new, c_new, cache)."""
    H = h.shape[0]
    gi = w_ih @ x + b_ih
    gh = w_hh @ h + b_hh
    if kind == "rnn":
        h_new = np.tanh(gi + gh)
        return h_new, c, (x, h, c, h_new)
    if kind == "lstm":
        a = gi + gh
        i, f, g, o = sigmoid(a[:H]), sigmoid(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), sigmoid(a[3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        return h_new, c_new, (x, h, c, i, f, g, o, c_new)
    r = sigmoid(gi[:H] + gh[:H])
    z = sigmoid(gi[H:2 * H] + gh[H:2 * H])
    n = np.tanh(gi[2 * H:] + r * gh[2 * H:])
    h_new = (1 - z) * n + z * h
    return h_new, c, (x, h, r, z, n, gh[2 * H:])


def cell_backward(kind, dh, dc, cache, w_ih, w_hh, grads):
    """Gradients of one step given dL/dh_new, dL/dc_new; adds into grads (w_ih, w_hh, b_ih, b_hh);
    returns (dx, dh_prev, dc_prev)."""
    if kind == "rnn":
        x, h, c, h_new = cache
        da_i = da_h = dh * (1 - h_new ** 2)
        dc_prev = dc
        dh_extra = 0.0
    elif kind == "lstm":
        x, h, c, i, f, g, o, c_new = cache
        tc = np.tanh(c_new)
        dct = dc + dh * o * (1 - tc ** 2)
        da_i = da_h = np.concatenate([dct * g * i * (1 - i), dct * c * f * (1 - f), dct * i * (1 - g ** 2),
                                      dh * tc * o * (1 - o)])
        dc_prev = dct * f
        dh_extra = 0.0
    else:
        x, h, r, z, n, ghn = cache
        dn = dh * (1 - z)
        dan = dn * (1 - n ** 2)
        dar = dan * ghn * r * (1 - r)
        daz = dh * (h - n) * z * (1 - z)
        da_i = np.concatenate([dar, daz, dan])
        da_h = np.concatenate([dar, daz, dan * r])
        dh_extra = dh * z
        dc_prev = dc
    grads["w_ih"] += np.outer(da_i, x)
    grads["w_hh"] += np.outer(da_h, h)
    grads["b_ih"] += da_i
    grads["b_hh"] += da_h
    return w_ih.T @ da_i, w_hh.T @ da_h + dh_extra, dc_prev


def run(kind, params, x, lengths, layers, bidirectional, output, truncate, dout):
    """Forward and backward of a stack. params: torch names ("weight_ih_l0", ...); x (B, T, E);
    lengths (B,); dout: gradient of the output ((B, D*H) for "last", (B, T, D*H) for "all").
    Returns (out, grads by torch name, dx (B, T, E), norms {layer k: (T,)})."""
    B, T, _ = x.shape
    dirs = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[1]
    names = [(k, d, f"l{k}" + ("_reverse" if d else "")) for k in range(layers) for d in range(dirs)]
    grads = {f"{w}_{sfx}": np.zeros_like(params[f"{w}_{sfx}"]) for _, _, sfx in names
             for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    out = np.zeros((B, T, dirs * H) if output == "all" else (B, dirs * H))
    dx_all = np.zeros_like(x)
    sq = np.zeros((layers, T, B))
    for b in range(B):
        L = int(lengths[b])
        seq = x[b]                                          # (T, in) this layer's input
        tapes = []                                          # per layer: inputs, per direction caches
        for k in range(layers):
            ys = np.zeros((T, dirs * H))
            caches, finals = [], []
            for d in range(dirs):
                sfx = f"l{k}" + ("_reverse" if d else "")
                w = [params[f"{n}_{sfx}"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                order = list(range(L))[::-1] if d else list(range(L))
                h, c = np.zeros(H), np.zeros(H)
                cache = {}
                for t in order:
                    h, c, cache[t] = cell_forward(kind, seq[t], h, c, *w)
                    ys[t, d * H:(d + 1) * H] = h
                caches.append((order, cache))
                finals.append(h)
            tapes.append((seq, caches))
            seq = ys
            if k == layers - 1:
                if output == "all":
                    out[b] = ys
                else:
                    out[b] = np.concatenate(finals)
        # backward, top layer first
        dseq = dout[b] if output == "all" else np.zeros((T, dirs * H))
        for k in reversed(range(layers)):
            seq, caches = tapes[k]
            dx = np.zeros_like(seq)
            for d in range(dirs):
                sfx = f"l{k}" + ("_reverse" if d else "")
                w_ih, w_hh = params[f"weight_ih_{sfx}"], params[f"weight_hh_{sfx}"]
                g = {"w_ih": grads[f"weight_ih_{sfx}"], "w_hh": grads[f"weight_hh_{sfx}"],
                     "b_ih": grads[f"bias_ih_{sfx}"], "b_hh": grads[f"bias_hh_{sfx}"]}
                order, cache = caches[d]
                dh = dout[b, d * H:(d + 1) * H].copy() if (output == "last" and k == layers - 1) else np.zeros(H)
                dc = np.zeros(H)
                for p in reversed(range(L)):
                    t = order[p]
                    dh = dh + dseq[t, d * H:(d + 1) * H]
                    sq[k, t, b] += dh @ dh
                    dxt, dh, dc = cell_backward(kind, dh, dc, cache[t], w_ih, w_hh, g)
                    dx[t] += dxt
                    if truncate and (L - p) % truncate == 0:
                        dh, dc = np.zeros(H), np.zeros(H)
            dseq = dx
        dx_all[b] = dseq
    real = np.arange(T)[None, :] < np.asarray(lengths)[:, None]     # (B, T)
    norms = {}
    for k in range(layers):
        per = np.sqrt(sq[k]) * real.T                                  # (T, B)
        cnt = real.sum(axis=0)
        norms[k] = np.where(cnt > 0, per.sum(axis=1) / np.maximum(cnt, 1), 0.0)
    return out, grads, dx_all, norms
