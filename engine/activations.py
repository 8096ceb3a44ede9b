"""Element-wise activations: fused bias + activation forward, and the backward from the output.

Every derivative here is computed from the activation's output y (relu: y > 0, sigmoid:
y(1-y), tanh: 1-y^2, softmax: y*(dy - sum(dy*y))), so a layer keeps y only, never z.
Kernels take 2-D (N, F) arrays; wrappers reshape any leading axes away.
"""

from __future__ import annotations

import math

import numpy as np

from .jit import jit
from .layer import Layer, SpecReader

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
def column_sums(a, out):
    """out (F,) <- sums over the rows of a (N, F)."""
    n, f = a.shape
    for j in range(f):
        out[j] = 0.0
    for i in range(n):
        for j in range(f):
            out[j] += a[i, j]


@jit
def bias_act_backward(y, dy, act, slope, dz, db):
    """act_backward, plus db <- column sums of dz (skipped when db is empty)."""
    act_backward(y, dy, act, slope, dz)
    if db.size > 0:
        column_sums(dz, db)


def as_2d(x: np.ndarray) -> np.ndarray:
    """(..., F) -> (N, F) without copying a contiguous array."""
    return x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x


def torch_activation(code: int, slope: float):
    import torch.nn as nn

    return {IDENTITY: nn.Identity, RELU: nn.ReLU, SIGMOID: nn.Sigmoid, TANH: nn.Tanh,
            SOFTMAX: lambda: nn.Softmax(dim=-1), LEAKY_RELU: lambda: nn.LeakyReLU(slope)}[code]()


class Activation(Layer):
    """A standalone activation layer: {type = "relu"} and friends."""

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        self.kind = spec["type"]
        r = SpecReader(spec, self.kind, {"slope"} if self.kind == "leaky_relu" else set())
        self.act = CODES[self.kind]
        self.slope = r.float("slope", 0.01, lo=0.0) if self.kind == "leaky_relu" else 0.0
        if self.act == SOFTMAX and len(in_shape) == 0:
            raise ValueError("softmax needs a feature axis")

    def forward(self, x, ctx):
        y = np.array(x, dtype=self.dtype, order="C", copy=True)
        if y.size:
            bias_act_forward(as_2d(y), np.empty(0, self.dtype), self.act, self.slope)
        self.y = y
        return y

    def backward(self, dy, ctx):
        dz = np.empty_like(self.y)
        act_backward(as_2d(self.y), as_2d(np.ascontiguousarray(dy)), self.act, self.slope, as_2d(dz))
        return dz

    def torch_module(self):
        return torch_activation(self.act, self.slope)
