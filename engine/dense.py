"""Fully connected layers: BLAS for the products, one fused kernel for bias + activation.

Weight layout is torch.nn.Linear's: weight (out, in), bias (out,).
"""

from __future__ import annotations

import math

import numpy as np

from .activations import CODES, as_2d, bias_act_backward, bias_act_forward, torch_activation
from .errors import SpecError
from .layer import Layer, SpecReader


class Buffers:
    """Reusable output arrays keyed by (name, shape): no allocation in the steady state."""

    def __init__(self, dtype):
        self.dtype = dtype
        self._arrays = {}

    def get(self, name: str, shape: tuple) -> np.ndarray:
        key = (name, shape)
        a = self._arrays.get(key)
        if a is None:
            if len(self._arrays) > 32:   # evaluation with odd batch sizes; don't grow forever
                self._arrays.clear()
            a = self._arrays[key] = np.empty(shape, self.dtype)
        return a


def uniform_fan_in(rng, shape, fan_in, dtype):
    """torch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Dense(Layer):
    kind = "dense"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "dense", {"units", "activation", "bias", "slope"})
        self.units = r.int("units", lo=1)
        self.act_name = r.choice("activation", list(CODES), "identity")
        self.act = CODES[self.act_name]
        self.slope = r.float("slope", 0.01, lo=0.0)
        self.has_bias = r.bool("bias", True)
        if len(in_shape) not in (1, 2):
            raise SpecError(".units", f"dense expects a flat input (features,) or a sequence (T, features), "
                                      f"got {in_shape}: add {{ type = \"flatten\" }} before it")
        self.fan_in = in_shape[-1]
        self.out_shape = tuple(in_shape[:-1]) + (self.units,)
        self.buf = Buffers(self.dtype)
        self._empty = np.empty(0, self.dtype)

    def param_shapes(self):
        shapes = {"weight": (self.units, self.fan_in)}
        if self.has_bias:
            shapes["bias"] = (self.units,)
        return shapes

    def init_params(self, p, rng):
        for name, view in p.items():
            view[...] = uniform_fan_in(rng, view.shape, self.fan_in, self.dtype)

    def forward(self, x, ctx):
        x2 = as_2d(x)                                            # (N, in)
        y = self.buf.get("y", (x2.shape[0], self.units))         # (N, out)
        np.dot(x2, self.p["weight"].T, out=y)
        bias_act_forward(y, self.p["bias"] if self.has_bias else self._empty, self.act, self.slope)
        self.x2, self.y = x2, y
        return y.reshape(x.shape[:-1] + (self.units,))

    def backward(self, dy, ctx):
        dy2 = as_2d(np.ascontiguousarray(dy, dtype=self.dtype))  # (N, out)
        dz = self.buf.get("dz", dy2.shape)
        bias_act_backward(self.y, dy2, self.act, self.slope, dz, self.g["bias"] if self.has_bias else self._empty)
        np.dot(dz.T, self.x2, out=self.g["weight"])              # (out, in)
        if not self.need_dx:
            return None
        dx = self.buf.get("dx", self.x2.shape)
        np.dot(dz, self.p["weight"], out=dx)                     # (N, in)
        return dx.reshape(dy.shape[:-1] + (self.fan_in,))

    def torch_module(self):
        import torch.nn as nn

        act = torch_activation(self.act, self.slope)

        class DenseAct(nn.Linear):   # a Linear, so state_dict names stay weight / bias
            def forward(self, x):
                return act(super().forward(x))

        return DenseAct(self.fan_in, self.units, bias=self.has_bias)


class Flatten(Layer):
    kind = "flatten"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        SpecReader(spec, "flatten", set())
        self.out_shape = (int(np.prod(in_shape)),)

    def forward(self, x, ctx):
        self.x_shape = x.shape
        return np.ascontiguousarray(x).reshape(x.shape[0], -1)

    def backward(self, dy, ctx):
        return dy.reshape(self.x_shape)

    def torch_module(self):
        import torch.nn as nn

        return nn.Flatten()
