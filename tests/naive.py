"""Slow, obvious NumPy references for the core kernels (stumpy's tests/naive.py idea).

Everything here works element by element or row by row, in float64, straight from the
definitions, so a disagreement with the fast kernels points at the fast kernels.
"""

from __future__ import annotations

import math

import numpy as np

# ---- activations -----------------------------------------------------------------------------


def act(z, name, slope=0.01):
    """y = act(z) for z (N, F), row by row."""
    z = np.asarray(z, np.float64)
    y = np.empty_like(z)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            v = z[i, j]
            if name == "identity":
                y[i, j] = v
            elif name == "relu":
                y[i, j] = v if v > 0 else 0.0
            elif name == "leaky_relu":
                y[i, j] = v if v > 0 else slope * v
            elif name == "sigmoid":
                y[i, j] = 1.0 / (1.0 + math.exp(-v))
            elif name == "tanh":
                y[i, j] = math.tanh(v)
        if name == "softmax":
            e = [math.exp(v - max(z[i])) for v in z[i]]
            y[i] = [v / sum(e) for v in e]
    return y


def act_grad(z, dy, name, slope=0.01):
    """dL/dz from z (the input, not the output) and dy = dL/dy, via each derivative's definition."""
    z, dy = np.asarray(z, np.float64), np.asarray(dy, np.float64)
    y = act(z, name, slope)
    dz = np.empty_like(z)
    for i in range(z.shape[0]):
        if name == "softmax":   # full Jacobian: dy_j/dz_k = y_j (delta_jk - y_k)
            jac = np.diag(y[i]) - np.outer(y[i], y[i])
            dz[i] = jac.T @ dy[i]
            continue
        for j in range(z.shape[1]):
            v = z[i, j]
            deriv = {"identity": 1.0,
                     "relu": 1.0 if v > 0 else 0.0,
                     "leaky_relu": 1.0 if v > 0 else slope,
                     "sigmoid": y[i, j] * (1.0 - y[i, j]),
                     "tanh": 1.0 - math.tanh(v) ** 2}[name]
            dz[i, j] = deriv * dy[i, j]
    return dz


# ---- dense -----------------------------------------------------------------------------------


def dense(x, w, b, name="identity", slope=0.01):
    """y = act(x w^T + b), x (N, in), w (out, in), b (out,) or None; explicit sums."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    n, out = x.shape[0], w.shape[0]
    z = np.zeros((n, out))
    for i in range(n):
        for o in range(out):
            z[i, o] = sum(x[i, k] * w[o, k] for k in range(x.shape[1])) + (0.0 if b is None else b[o])
    return act(z, name, slope)


def dense_grads(x, w, b, dy, name="identity", slope=0.01):
    """(dx, dw, db) of L = sum(dy * dense(x, w, b)), by explicit sums."""
    x, w, dy = (np.asarray(a, np.float64) for a in (x, w, dy))
    n, out = x.shape[0], w.shape[0]
    z = np.zeros((n, out))
    for i in range(n):
        for o in range(out):
            z[i, o] = sum(x[i, k] * w[o, k] for k in range(x.shape[1])) + (0.0 if b is None else b[o])
    dz = act_grad(z, dy, name, slope)
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for i in range(n):
        for o in range(out):
            for k in range(x.shape[1]):
                dx[i, k] += dz[i, o] * w[o, k]
                dw[o, k] += dz[i, o] * x[i, k]
    db = np.array([sum(dz[i, o] for i in range(n)) for o in range(out)])
    return dx, dw, db


# ---- losses ----------------------------------------------------------------------------------


def softmax_cross_entropy(logits, labels):
    logits = np.asarray(logits, np.float64)
    n = logits.shape[0]
    loss, d = 0.0, np.zeros_like(logits)
    for i in range(n):
        row = logits[i]
        m = max(row)
        s = sum(math.exp(v - m) for v in row)
        loss += -(row[labels[i]] - m - math.log(s))
        for j in range(row.size):
            d[i, j] = (math.exp(row[j] - m) / s - (1.0 if j == labels[i] else 0.0)) / n
    return loss / n, d


def binary_cross_entropy(logits, targets):
    z, t = np.asarray(logits, np.float64).ravel(), np.asarray(targets, np.float64).ravel()
    n = z.size
    loss, d = 0.0, np.zeros(n)
    for i in range(n):
        p = 1.0 / (1.0 + math.exp(-z[i]))
        loss += -(t[i] * math.log(p) + (1.0 - t[i]) * math.log(1.0 - p))
        d[i] = (p - t[i]) / n
    return loss / n, d.reshape(np.shape(logits))


def mean_squared_error(pred, target):
    p, t = np.asarray(pred, np.float64).ravel(), np.asarray(target, np.float64).ravel()
    n = p.size
    return sum((p[i] - t[i]) ** 2 for i in range(n)) / n, (2.0 * (p - t) / n).reshape(np.shape(pred))


# ---- optimizers (one step, element by element, as torch.optim documents them) ------------------


def sgd(p, g, buf, lr, momentum=0.0, nesterov=False, wd=0.0, first=False):
    p, buf = p.astype(np.float64), buf.astype(np.float64)
    for i in range(p.size):
        d = g[i] + wd * p[i]
        if momentum:
            buf[i] = d if first else momentum * buf[i] + d
            d = d + momentum * buf[i] if nesterov else buf[i]
        p[i] -= lr * d
    return p, buf


def rmsprop(p, g, sq, buf, lr, alpha=0.99, eps=1e-8, momentum=0.0, wd=0.0):
    p, sq, buf = p.astype(np.float64), sq.astype(np.float64), buf.astype(np.float64)
    for i in range(p.size):
        d = g[i] + wd * p[i]
        sq[i] = alpha * sq[i] + (1 - alpha) * d * d
        avg = math.sqrt(sq[i]) + eps
        if momentum > 0:
            buf[i] = momentum * buf[i] + d / avg
            p[i] -= lr * buf[i]
        else:
            p[i] -= lr * d / avg
    return p, sq, buf


def adam(p, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False):
    p, m, v = p.astype(np.float64), m.astype(np.float64), v.astype(np.float64)
    for i in range(p.size):
        d = g[i]
        if decoupled:
            p[i] *= 1 - lr * wd
        else:
            d = d + wd * p[i]
        m[i] = b1 * m[i] + (1 - b1) * d
        v[i] = b2 * v[i] + (1 - b2) * d * d
        m_hat = m[i] / (1 - b1 ** t)
        v_hat = v[i] / (1 - b2 ** t)
        p[i] -= lr * m_hat / (math.sqrt(v_hat) + eps)
    return p, m, v


def clip_scale(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_'s factor for a list of gradient arrays."""
    norm = math.sqrt(sum(float(np.sum(np.asarray(g, np.float64) ** 2)) for g in grads))
    return min(1.0, max_norm / (norm + 1e-6)), norm


def segment_sumsq(x, offsets):
    return np.array([sum(float(v) ** 2 for v in x[offsets[s]:offsets[s + 1]]) for s in range(len(offsets) - 1)])


def time_stats(norms, lengths):
    """Per-sample norms (B, T) -> (the mean over real steps, the answer-aligned ratio), by loops:
    the reference for the torch backend's and Monitor's per-time-step figures."""
    B, T = norms.shape
    mean, ratio = np.zeros(T), np.zeros(T)
    for t in range(T):
        real = [norms[b, t] for b in range(B) if t < lengths[b]]
        mean[t] = np.mean(real) if real else 0.0
        back = [norms[b, lengths[b] - 1 - t] / norms[b, lengths[b] - 1] for b in range(B)
                if t < lengths[b] and norms[b, lengths[b] - 1] > 0]
        ratio[t] = np.mean(back) if back else 0.0
    return mean, ratio
