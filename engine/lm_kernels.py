"""Kernels of the transformer language model: GELU, the token + position embedding, its gradient.

GELU is the tanh form (GPT-2's; torch's GELU(approximate="tanh")): tanh through exp, which
vectorises where math.tanh does not. Shapes: N rows (B*T), F features, V vocabulary, D width.
"""

from __future__ import annotations

import math

from .jit import jit

GELU_C = math.sqrt(2.0 / math.pi)


@jit
def gelu_forward(u, h):
    """h = 0.5 u (1 + tanh(c (u + 0.044715 u^3))); u, h (N, F)."""
    n, f = u.shape
    c = GELU_C
    for i in range(n):
        for j in range(f):
            x = u[i, j]
            z = c * (x + 0.044715 * x * x * x)
            z = min(max(z, -20.0), 20.0)                # exp(2z) stays finite in float32
            e = math.exp(2.0 * z)
            t = 1.0 - 2.0 / (e + 1.0)                   # tanh(z)
            h[i, j] = 0.5 * x * (1.0 + t)


@jit
def gelu_backward(u, dh, du):
    """du = dh * gelu'(u); u, dh, du (N, F); du may alias dh."""
    n, f = u.shape
    c = GELU_C
    for i in range(n):
        for j in range(f):
            x = u[i, j]
            z = c * (x + 0.044715 * x * x * x)
            z = min(max(z, -20.0), 20.0)
            e = math.exp(2.0 * z)
            t = 1.0 - 2.0 / (e + 1.0)
            dz = c * (1.0 + 3.0 * 0.044715 * x * x)
            du[i, j] = dh[i, j] * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dz)


@jit
def embed_forward(ids, wte, wpe, out):
    """out[b, t] = wte[ids[b, t]] + wpe[t]. ids (B, T) int64; wte (V, D); wpe (P, D), P >= T; out (B, T, D)."""
    nb, t = ids.shape
    d = wte.shape[1]
    for b in range(nb):
        for i in range(t):
            k = ids[b, i]
            for j in range(d):
                out[b, i, j] = wte[k, j] + wpe[i, j]


@jit
def embed_backward(ids, dx, gwte, gwpe):
    """gwte[ids[b, t]] += dx[b, t] (ADDS: a tied head's gradient is already there);
    gwpe[t] = sum_b dx[b, t] for t < T, 0 beyond (OVERWRITES). dx (B, T, D)."""
    nb, t = ids.shape
    d = dx.shape[2]
    for i in range(gwpe.shape[0]):
        for j in range(d):
            gwpe[i, j] = 0.0
    for b in range(nb):
        for i in range(t):
            k = ids[b, i]
            for j in range(d):
                g = dx[b, i, j]
                gwte[k, j] += g
                gwpe[i, j] += g


@jit
def add_rows(a, b, out):
    """out = a + b, all (N, F); out may alias either."""
    n, f = a.shape
    for i in range(n):
        for j in range(f):
            out[i, j] = a[i, j] + b[i, j]
