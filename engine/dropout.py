"""Dropout: a layer that fits anywhere."""

from __future__ import annotations

import numpy as np

from .arrays import Buffers
from .dropout_kernels import dropout_forward
from .errors import SpecError
from .layer import Layer, SpecReader


class Dropout(Layer):
    """Inverted dropout: keep each value with probability 1 - p and scale it by 1 / (1 - p).

    The mask comes from ctx.rng only, so one seed reproduces a run. Identity when not training.
    """

    kind = "dropout"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "dropout", {"p"})
        self.p_drop = r.float("p", 0.5, lo=0.0)
        if self.p_drop >= 1.0:
            raise SpecError(".p", f"must be below 1 (1 would drop everything), got {self.p_drop}")
        self.buf = Buffers(self.dtype)
        self.mask = None

    def forward(self, x, ctx):
        if not ctx.train or self.p_drop == 0.0:
            self.mask = None
            return x
        if ctx.rng is None:
            raise ValueError("dropout in training needs ctx.rng")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        mask = self.buf.get("mask", x.shape)
        y = self.buf.get("y", x.shape)
        ctx.rng.random(dtype=self.dtype, out=mask)
        t = self.dtype.type
        dropout_forward(x.reshape(-1), mask.reshape(-1), t(self.p_drop), t(1.0 / (1.0 - self.p_drop)),
                        y.reshape(-1))
        self.mask = mask
        return y

    def backward(self, dy, ctx):
        if not self.need_dx:
            return None
        if self.mask is None:
            return dy
        dx = self.buf.get("dx", self.mask.shape)
        np.multiply(dy, self.mask, out=dx)
        return dx

    def torch_module(self):
        import torch.nn as nn

        return nn.Dropout(self.p_drop)
