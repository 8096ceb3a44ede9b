"""MaxPool2d: the layer, its wrappers, and PoolGrad.

MaxPool2d keeps the flat index of each window's maximum. Its dx is a PoolGrad: a complete,
ordinary gradient array that also names the pool, so the direct Conv2d backward under it can
build dL/dz from the winners alone (see PoolGrad).
"""

from __future__ import annotations

import numpy as np

from . import threads
from .arrays import Buffers
from .conv import Conv2d, batch_pieces, image_shape
from .errors import SpecError
from .layer import Layer, SpecReader
from .pooling_kernels import (maxpool2x2_forward, maxpool2x2_forward_pieces, maxpool_backward, maxpool_backward_pieces,
                              maxpool_forward, maxpool_forward_pieces)


def maxpool2d_forward(x, size, stride, buf=None):
    """Window maxima of x (B, C, H, W); returns (y (B, C, PH, PW), arg: int32 flat winner indices).

    buf: Buffers of x's dtype (the winners are int32 arrays in it).
    """
    x = np.ascontiguousarray(x)
    if x.ndim != 4:
        raise ValueError(f"maxpool2d needs x (B, C, H, W), got {x.shape}")
    buf = buf or Buffers(x.dtype)
    nb, nc, h, w = x.shape
    ph, pw = (h - size) // stride + 1, (w - size) // stride + 1
    if ph < 1 or pw < 1:
        raise ValueError(f"window {size} does not fit a {h}x{w} image")
    y = buf.get("y", (nb, nc, ph, pw))
    arg = buf.get("arg", (nb, nc, ph, pw), np.int32)
    pieces = batch_pieces(nb)
    two = threads.pieces_threads(pieces) > 1
    if size == 2 and stride == 2:
        maxpool2x2_forward_pieces(x, y, arg, pieces) if two else maxpool2x2_forward(x, y, arg)
    elif two:
        maxpool_forward_pieces(x, size, stride, y, arg, pieces)
    else:
        maxpool_forward(x, size, stride, y, arg)
    return y, arg


def maxpool2d_backward(dy, arg, x_shape, buf=None, out=None):
    """dL/dx (B, C, H, W) from dy (B, C, PH, PW): each window's gradient goes to its winner
    (into `out` when given)."""
    dy = np.ascontiguousarray(dy)
    if dy.shape != arg.shape:
        raise ValueError(f"maxpool2d backward: dy {dy.shape} for winners {arg.shape}")
    buf = buf or Buffers(dy.dtype)
    nb, nc, h, w = x_shape
    dx = buf.get("dx", (nb, nc, h, w)) if out is None else out
    pieces = batch_pieces(nb)
    if threads.pieces_threads(pieces) > 1:
        maxpool_backward_pieces(dy, arg, dx.reshape(nb, nc, h * w), pieces)
    else:
        maxpool_backward(dy, arg, dx.reshape(nb, nc, h * w))
    return dx


class PoolGrad(np.ndarray):
    """MaxPool2d's dx: a plain, complete gradient that also names the pool that made it.

    Conv2d.backward, handed one whose pool's input was the conv's own output, reads the pool's
    winners instead of the dense array (same values, a quarter of the work for 2x2 windows).
    Any arithmetic on it gives an ordinary array again, so a container that adds gradients
    (Residual) falls back to the dense path. Layers must not modify a dy they are given in place.
    """

    pool = None
    filled = True     # False: the pool left it empty for the Conv2d under it, which reads the winners


class MaxPool2d(Layer):
    kind = "maxpool2d"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "maxpool2d", {"size", "stride"})
        self.size = r.int("size", 2, lo=1)
        self.stride = r.int("stride", self.size, lo=1)
        c, h, w = image_shape(in_shape, "maxpool2d", ".size")
        ph, pw = (h - self.size) // self.stride + 1, (w - self.size) // self.stride + 1
        if h < self.size or w < self.size:
            raise SpecError(".size", f"a {self.size}x{self.size} window does not fit a {h}x{w} image")
        self.out_shape = (c, ph, pw)
        self.buf = Buffers(self.dtype)
        self.winners_only = False

    def after(self, prev):
        # a direct Conv2d with ReLU (or none) right below reads the winners, never the dense dx:
        # don't build it (about 8% of a step of the bench's CNN)
        self.winners_only = isinstance(prev, Conv2d) and prev.reads_winners()

    def fill(self, dx) -> None:
        """Write the dense gradient into a PoolGrad this pool left empty."""
        maxpool2d_backward(self.dy, self.arg, self.x_shape, out=dx.view(np.ndarray))
        dx.filled = True

    def forward(self, x, ctx):
        self.x_in = x                     # the object itself: Conv2d checks it is its own output
        x = np.ascontiguousarray(x, dtype=self.dtype)
        self.x_shape = x.shape
        self.y, self.arg = maxpool2d_forward(x, self.size, self.stride, self.buf)
        return self.y

    def backward(self, dy, ctx):
        if not self.need_dx:
            return None
        self.dy = np.ascontiguousarray(dy, dtype=self.dtype)
        if self.winners_only:
            dx = self.buf.get("dx", self.x_shape).view(PoolGrad)
            dx.filled = False
        else:
            dx = maxpool2d_backward(self.dy, self.arg, self.x_shape, self.buf).view(PoolGrad)
        dx.pool = self
        return dx

    def torch_module(self):
        import torch.nn as nn

        return nn.MaxPool2d(self.size, self.stride)
