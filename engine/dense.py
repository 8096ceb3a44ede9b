"""Fully connected layers: BLAS for the products (engine/products.py), one fused kernel for bias + activation.

Weight layout is torch.nn.Linear's: weight (out, in), bias (out,), under those names and shapes;
in memory the weight is (in, out) in rows (stored_transposed, see params.py), so the products
are x @ W and x^T @ dz, which OpenBLAS runs faster than x @ W^T.

Sparse inputs (a bag-of-words batch is about 1% non-zero, an MNIST batch 19%) take a second
path: a wide layer first gathers the input's non-zeros row by row (giving up as soon as there are
more than SPARSE_DENSITY of them, or more than the rows so far may hold, so a dense batch costs
a scan of part of one row), then x W^T and dW visit the non-zeros alone: each output
row is a sum of rows of W (of dz for dW, over the non-zeros turned column by column). Both paths
compute the same sums; only the rounding order differs.

Where the sparse path pays (one thread, quiet, 2026-12-04, MNIST's 784 -> 1024 layer at batch
128, 19% non-zero, microseconds): x W^T 1300-1390 against BLAS's 2520-2770, dW 1280-1290 (+70 to
turn the non-zeros) against 2460-2680, the gather 140-160. The sums run at about 30 GFLOP/s of
the products actually done, BLAS at 77 on the dense matrix: the crossover is near 40% non-zero on
this machine, so SPARSE_DENSITY leaves a margin for faster BLAS elsewhere.
"""

from __future__ import annotations

import math

import numpy as np

from . import threads
from .activation_kernels import CODES, bias_act_backward, bias_act_forward
from .activations import as_2d, torch_activation
from .arrays import Buffers
from .dense_kernels import gather_nonzeros, sum_rows, sum_rows_pieces, transpose_nonzeros
from .errors import SpecError
from .layer import Layer, SpecReader
from .products import matmul

SPARSE_DENSITY = 0.25      # inputs with at most this share of non-zeros take the sparse path
SPARSE_MIN_FAN_IN = 256    # narrower layers never look
SPARSE_MIN_UNITS = 32      # nor narrower outputs: the gather costs 1-4 ns an input value, a BLAS
                           # product ~0.026 ns a value and output, so it would cost more than it saves


def uniform_fan_in(rng, shape, fan_in, dtype):
    """torch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def sparse_product(ptr, idx, vals, src, dst):
    """dst <- S @ src for the sparse S (dst's rows) given by ptr/idx/vals: one thread, or row
    ranges of about equal non-zeros on DESCENT_THREADS (the bits are the same either way)."""
    m = dst.shape[0]
    n = threads.pieces_threads(threads.for_work(int(ptr[m]) * dst.shape[1]))
    if n < 2:
        sum_rows(ptr, idx, vals, src, dst, 0, m)
        return
    cuts = np.empty(n + 1, np.int64)
    cuts[0], cuts[n] = 0, m
    cuts[1:n] = np.searchsorted(ptr[:m + 1], int(ptr[m]) * np.arange(1, n) // n)
    sum_rows_pieces(ptr, idx, vals, src, dst, cuts)


class Dense(Layer):
    kind = "dense"
    stored_transposed = ("weight",)     # (out, in) as torch names it, in memory as (in, out): params.py

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
        self.sparse_ok = self.fan_in >= SPARSE_MIN_FAN_IN and self.units >= SPARSE_MIN_UNITS
        self.csr = None            # (row_ptr, cols, vals) of the last input when it was sparse
        self._csr_space = {}
        self._csc_space = {}

    def _gather(self, x2):
        """The non-zeros of x2 if it is sparse enough, else None."""
        n = x2.shape[0]
        space = self._csr_space.get(n)
        if space is None:
            if len(self._csr_space) > 8:     # evaluation with odd batch sizes; don't grow forever
                self._csr_space.clear()
                self._csc_space.clear()
            cap = max(1, int(SPARSE_DENSITY * n * self.fan_in))
            # unsigned column ids: numba then skips the negative-index wraparound in the gathers
            space = self._csr_space[n] = (np.empty(n + 1, np.int64), np.empty(cap, np.uint32),
                                          np.empty(cap, self.dtype))
        bits = x2.view(np.uint32 if x2.dtype.itemsize == 4 else np.uint64)
        return space if gather_nonzeros(x2, bits, *space) >= 0 else None

    def _by_column(self, n):
        """The last sparse input's non-zeros column by column (for dW)."""
        row_ptr, cols, vals = self.csr
        space = self._csc_space.get(n)
        if space is None:
            space = self._csc_space[n] = (np.empty(self.fan_in + 1, np.int64), np.empty(cols.size, np.uint32),
                                          np.empty(cols.size, self.dtype))
        transpose_nonzeros(row_ptr, cols, vals, *space)
        return space

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
        self.csr = self._gather(x2) if self.sparse_ok and x2.dtype == self.dtype and x2.flags.c_contiguous else None
        wt = self.p["weight"].T                                  # (in, out)
        if self.csr is None:
            matmul(x2, wt, y)
        else:
            sparse_product(*self.csr, wt, y)
        bias_act_forward(y, self.p["bias"] if self.has_bias else self._empty, self.act, self.slope)
        self.x2, self.y = x2, y
        return y.reshape(x.shape[:-1] + (self.units,))

    def backward(self, dy, ctx):
        dy2 = as_2d(np.ascontiguousarray(dy, dtype=self.dtype))  # (N, out)
        dz = self.buf.get("dz", dy2.shape)
        bias_act_backward(self.y, dy2, self.act, self.slope, dz, self.g["bias"] if self.has_bias else self._empty)
        gwt = self.g["weight"].T                                 # (in, out), as stored
        if self.csr is not None:
            sparse_product(*self._by_column(self.x2.shape[0]), dz, gwt)
        else:
            matmul(self.x2.T, dz, gwt)                           # x^T dz
        if not self.need_dx:
            return None
        dx = self.buf.get("dx", self.x2.shape)
        matmul(dz, self.p["weight"], dx)                        # (N, in)
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
