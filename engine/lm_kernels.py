"""Kernels of the transformer language model: GELU, the token + position embedding, its gradient.

GELU is the tanh form (GPT-2's; torch's GELU(approximate="tanh")). With `fast` (float32) tanh
is recurrent_kernels.tanh_fast (a rational function, |error| <= 4e-7, vectorises; math.tanh
cost 20 ns an element here, 8 ms a layer); float64 keeps math.tanh for the gradient checks. Shapes: N rows (B*T), F features, V vocabulary, D width.
"""

from __future__ import annotations

import math

from .jit import jit
from .recurrent_kernels import tanh_fast

GELU_C = math.sqrt(2.0 / math.pi)


@jit
def gelu_forward(u, h, fast):
    """h = 0.5 u (1 + tanh(c (u + 0.044715 u^3))); u, h (N, F)."""
    n, f = u.shape
    one = u.dtype.type(1.0)
    half, c, a = u.dtype.type(0.5), u.dtype.type(GELU_C), u.dtype.type(0.044715)
    for i in range(n):
        for j in range(f):
            x = u[i, j]
            z = c * (x + a * x * x * x)
            t = tanh_fast(z) if fast else math.tanh(z)
            h[i, j] = half * x * (one + t)


@jit
def gelu_backward(u, dh, du, fast):
    """du = dh * gelu'(u); u, dh, du (N, F), du a separate array (aliasing stops vectorising)."""
    n, f = u.shape
    one = u.dtype.type(1.0)
    half, c, a, a3 = u.dtype.type(0.5), u.dtype.type(GELU_C), u.dtype.type(0.044715), u.dtype.type(3 * 0.044715)
    for i in range(n):
        for j in range(f):
            x = u[i, j]
            z = c * (x + a * x * x * x)
            t = tanh_fast(z) if fast else math.tanh(z)
            dz = c * (one + a3 * x * x)
            du[i, j] = dh[i, j] * (half * (one + t) + half * x * (one - t * t) * dz)


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
