"""The standalone activation layers ({type = "relu"} and friends), and their torch equivalents.

The kernels are in activation_kernels.py.
"""

from __future__ import annotations

import numpy as np

from .activation_kernels import CODES, IDENTITY, LEAKY_RELU, RELU, SIGMOID, SOFTMAX, TANH, act_backward, bias_act_forward
from .layer import Layer, SpecReader


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
