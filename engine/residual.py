"""Residual: y = x + block(x) around any stack of layers that keeps its input's shape."""

from __future__ import annotations

import numpy as np

from .arrays import Buffers
from .errors import SpecError
from .layer import Layer, SpecReader, named_param_shapes, named_transposed, split_views


class Residual(Layer):
    """y = x + block(x). The block's parameters are named "block.{j}.{name}" (torch: a module
    with a `block` Sequential), so in a model they read "2.block.0.weight".

    The model hands in its own `build_layers` as `build` (see Layer.builds_sublayers): the
    registry names this module, so importing the model from here would close a circle.
    """

    kind = "residual"
    builds_sublayers = True

    def __init__(self, spec, in_shape, dtype=np.float32, build=None):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "residual", {"layers"})
        layers = r.raw("layers")
        try:
            self.layers = build(layers, self.in_shape, self.dtype, prefix="block.")
        except SpecError as e:
            raise e.at(".layers") from None
        out = self.layers[-1].out_shape
        if out != self.in_shape:
            raise SpecError(".layers", f"a residual block must keep its input's shape: input {self.in_shape}, "
                                       f"block output {out}")
        self.out_shape = self.in_shape
        self.buf = Buffers(self.dtype)
        self._name = ""

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = value
        for j, layer in enumerate(self.layers):
            layer.name = f"{value}.block.{j}" if value else f"block.{j}"

    def sublayers(self):
        return list(self.layers)

    def param_shapes(self):
        return {f"block.{name}": shape for name, shape in named_param_shapes(self.layers)}

    def transposed_names(self):
        return [f"block.{name}" for name in named_transposed(self.layers)]

    def _split(self, views: dict) -> list[dict]:
        return split_views({name[len("block."):]: v for name, v in views.items()}, self.layers)

    def init_params(self, p, rng):
        for layer, pj in zip(self.layers, self._split(p)):
            layer.init_params(pj, rng)

    def bind(self, p, g):
        super().bind(p, g)
        for layer, pj, gj in zip(self.layers, self._split(p), self._split(g)):
            layer.bind(pj, gj)

    def forward(self, x, ctx):
        h = x
        for layer in self.layers:
            h = layer.forward(h, ctx)
        y = self.buf.get("y", np.shape(x))
        np.add(x, h, out=y)
        return y

    def backward(self, dy, ctx):
        d = dy
        for layer in reversed(self.layers):
            d = layer.backward(d, ctx)
        if not self.need_dx:
            return None
        dx = self.buf.get("dx", np.shape(dy))
        np.add(dy, d, out=dx)
        return dx

    def torch_module(self):
        import torch.nn as nn

        modules = [layer.torch_module() for layer in self.layers]

        class ResidualBlock(nn.Module):
            takes_mask = any(getattr(m, "takes_mask", False) for m in modules)

            def __init__(self):
                super().__init__()
                self.block = nn.Sequential(*modules)

            def forward(self, x, mask=None):
                h = x
                for module in self.block:
                    h = module(h, mask) if getattr(module, "takes_mask", False) else module(h)
                return x + h

        return ResidualBlock()
