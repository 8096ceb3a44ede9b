"""Element-wise activation kernels: fused bias + activation forward, and the backward from the output.

Every derivative here is computed from the activation's output y (relu: y > 0, sigmoid:
y(1-y), tanh: 1-y^2, softmax: y*(dy - sum(dy*y))), so a layer keeps y only, never z.
Kernels take 2-D (N, F) arrays; wrappers reshape any leading axes away.

Each activation has kernels of its own, made from one body with the activation's code as a
constant of the compiled function (a closure variable: Numba prunes the branches of the other
five before typing them, and its cache keys each variant by that value). One kernel taking the
code as an argument compiled all six branches, and linked all of them into every kernel that
called it, for a model that uses one or two: 2.3 s of the bench's cold compile went to the
activation family and the convolution's plane kernel that called it.
"""

from __future__ import annotations

import math

import numpy as np

from .arrays import column_sums
from .jit import jit

IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, SOFTMAX = range(6)
CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU,
         "sigmoid": SIGMOID, "tanh": TANH, "softmax": SOFTMAX}


def _forward_kernel(act: int):
    @jit
    def bias_act(z, b, slope):
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

    return bias_act


def _backward_kernel(act: int):
    @jit
    def backward(y, dy, slope, dz, db):
        """dz <- dL/dz given y = act(z) and dy = dL/dy, all (N, F); dz may alias dy. Then db <-
        the column sums of dz, unless db is empty."""
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
        if db.size > 0:
            column_sums(dz, db)

    return backward


_FORWARD = [_forward_kernel(code) for code in range(len(CODES))]
_BACKWARD = [_backward_kernel(code) for code in range(len(CODES))]


def bias_act_forward(z, b, act: int, slope: float) -> None:
    """In place: z <- act(z + b). z (N, F); b (F,) or empty for no bias."""
    _FORWARD[act](z, b, slope)


def act_backward(y, dy, act: int, slope: float, dz) -> None:
    """dz <- dL/dz given y = act(z) and dy = dL/dy, all (N, F). dz may alias dy."""
    _BACKWARD[act](y, dy, slope, dz, np.empty(0, dz.dtype))


def bias_act_backward(y, dy, act: int, slope: float, dz, db) -> None:
    """act_backward, plus db <- column sums of dz (skipped when db is empty)."""
    _BACKWARD[act](y, dy, slope, dz, db)
