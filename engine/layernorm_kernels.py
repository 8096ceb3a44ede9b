"""Layer normalization kernels over rows: forward with the saved xhat and 1/std, and backward."""

from __future__ import annotations

import math

from .jit import jit

LN_EPS = 1e-5


@jit
def layernorm_forward(x, gamma, beta, eps, y, xhat, rstd):
    """y = gamma * xhat + beta, xhat = (x - mean) / sqrt(var + eps) per row. x, y, xhat (N, F); rstd (N,)."""
    n, f = x.shape
    inv_f = 1.0 / f
    for i in range(n):
        m = 0.0
        for j in range(f):
            m += x[i, j]
        m *= inv_f
        v = 0.0
        for j in range(f):
            d = x[i, j] - m
            v += d * d
        r = 1.0 / math.sqrt(v * inv_f + eps)
        rstd[i] = r
        for j in range(f):
            h = (x[i, j] - m) * r                               # (N, F)
            xhat[i, j] = h
            y[i, j] = h * gamma[j] + beta[j]


@jit
def layernorm_backward(dy, xhat, rstd, gamma, dx, dgamma, dbeta):
    """dx (N, F) <- dL/dx; dgamma, dbeta (F,) OVERWRITTEN with their gradients. dx may alias dy."""
    n, f = dy.shape
    inv_f = 1.0 / f
    for j in range(f):
        dgamma[j] = 0.0
        dbeta[j] = 0.0
    for i in range(n):
        a = 0.0
        b = 0.0
        for j in range(f):
            g = dy[i, j] * gamma[j]                             # dL/dxhat (N, F)
            a += g
            b += g * xhat[i, j]
            dgamma[j] += dy[i, j] * xhat[i, j]
            dbeta[j] += dy[i, j]
        a *= inv_f
        b *= inv_f
        r = rstd[i]
        for j in range(f):
            dx[i, j] = r * (dy[i, j] * gamma[j] - a - xhat[i, j] * b)   # (N, F)
