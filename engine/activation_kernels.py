"""Element-wise activation kernels: fused bias + activation forward, and the backward from the output.

Every derivative here is computed from the activation's output y (relu: y > 0, sigmoid:
y(1-y), tanh: 1-y^2, softmax: y*(dy - sum(dy*y))), so a layer keeps y only, never z.
Kernels take 2-D (N, F) arrays; wrappers reshape any leading axes away.
"""

from __future__ import annotations

import math

from .arrays import column_sums
from .jit import jit

IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, SOFTMAX = range(6)
CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU,
         "sigmoid": SIGMOID, "tanh": TANH, "softmax": SOFTMAX}


@jit
def bias_act_forward(z, b, act, slope):
    """In place: z <- act(z + b). z (N, F); b (F,) or empty for no bias."""
    n, f = z.shape
    has_bias = b.size > 0
    for i in range(n):
        row = z[i]
        if has_bias:
            for j in range(f):
                row[j] += b[j]
        if act == RELU:
            for j in range(f):
                row[j] = max(row[j], 0.0)
        elif act == LEAKY_RELU:
            for j in range(f):
                if row[j] < 0:
                    row[j] *= slope
        elif act == SIGMOID:
            for j in range(f):
                v = row[j]
                if v >= 0:
                    row[j] = 1.0 / (1.0 + math.exp(-v))
                else:
                    e = math.exp(v)
                    row[j] = e / (1.0 + e)
        elif act == TANH:
            for j in range(f):
                row[j] = math.tanh(row[j])
        elif act == SOFTMAX:
            m = row[0]
            for j in range(1, f):
                m = max(m, row[j])
            s = 0.0
            for j in range(f):
                row[j] = math.exp(row[j] - m)
                s += row[j]
            inv = 1.0 / s
            for j in range(f):
                row[j] *= inv


@jit
def act_backward(y, dy, act, slope, dz):
    """dz <- dL/dz given y = act(z) and dy = dL/dy, all (N, F). dz may alias dy."""
    n, f = y.shape
    for i in range(n):
        if act == IDENTITY:
            for j in range(f):
                dz[i, j] = dy[i, j]
        elif act == RELU:
            for j in range(f):
                dz[i, j] = dy[i, j] if y[i, j] > 0 else 0.0
        elif act == LEAKY_RELU:
            for j in range(f):
                dz[i, j] = dy[i, j] if y[i, j] > 0 else dy[i, j] * slope
        elif act == SIGMOID:
            for j in range(f):
                dz[i, j] = dy[i, j] * y[i, j] * (1.0 - y[i, j])
        elif act == TANH:
            for j in range(f):
                dz[i, j] = dy[i, j] * (1.0 - y[i, j] * y[i, j])
        elif act == SOFTMAX:
            s = 0.0
            for j in range(f):
                s += dy[i, j] * y[i, j]
            for j in range(f):
                dz[i, j] = y[i, j] * (dy[i, j] - s)


@jit
def bias_act_backward(y, dy, act, slope, dz, db):
    """act_backward, plus db <- column sums of dz (skipped when db is empty)."""
    act_backward(y, dy, act, slope, dz)
    if db.size > 0:
        column_sums(dz, db)
