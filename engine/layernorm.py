"""LayerNorm: torch.nn.LayerNorm over the last axis."""

from __future__ import annotations

import numpy as np

from .arrays import Buffers
from .layer import Layer, SpecReader
from .layernorm_kernels import LN_EPS, layernorm_backward, layernorm_forward


class LayerNorm(Layer):
    """torch.nn.LayerNorm over the last axis: weight (F,), bias (F,), eps 1e-5."""

    kind = "layernorm"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        SpecReader(spec, "layernorm", set())
        if len(in_shape) == 0:
            raise ValueError("layernorm needs a feature axis")
        self.width = in_shape[-1]
        self.buf = Buffers(self.dtype)

    def param_shapes(self):
        return {"weight": (self.width,), "bias": (self.width,)}

    def init_params(self, p, rng):
        p["weight"][...] = 1.0
        p["bias"][...] = 0.0

    def forward(self, x, ctx):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        x2 = x.reshape(-1, self.width)                           # (N, F)
        b = self.buf
        y, xhat, rstd = b.get("y", x2.shape), b.get("xhat", x2.shape), b.get("rstd", (x2.shape[0],))
        layernorm_forward(x2, self.p["weight"], self.p["bias"], LN_EPS, y, xhat, rstd)
        self.xhat, self.rstd = xhat, rstd
        return y.reshape(x.shape)

    def backward(self, dy, ctx):
        dy2 = np.ascontiguousarray(dy, dtype=self.dtype).reshape(-1, self.width)
        dx = self.buf.get("dx", dy2.shape)
        layernorm_backward(dy2, self.xhat, self.rstd, self.p["weight"], dx,
                           self.g["weight"], self.g["bias"])
        return dx.reshape(dy.shape) if self.need_dx else None

    def torch_module(self):
        import torch.nn as nn

        return nn.LayerNorm(self.width, eps=LN_EPS)
