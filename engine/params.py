"""All trainable tensors of a model in one flat buffer.

Optimizers and diagnostics then run as one loop over one buffer (PERF-NOTES: one flat Adam is
far faster than many small ones), and per-tensor figures come from segment offsets
(arrays.segment_sumsq).

A layer may keep a 2-D tensor in memory as its transpose (`transposed`): its view still has the
declared (torch) shape and values, in Fortran order. Dense weights are kept so because x @ W
with W (in, out) in rows is 10-25% faster on OpenBLAS than x @ W^T with W (out, in) in rows, and
so is its gradient x^T @ dz (bench/README: "Dense weights").
"""

from __future__ import annotations

import numpy as np



class ParamSet:
    """Flat values and gradients, with a named view of each tensor (names in torch state_dict order)."""

    def __init__(self, entries: list[tuple[str, tuple]], dtype=np.float32, transposed=()):
        self.dtype = np.dtype(dtype)
        self.names = [name for name, _ in entries]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate parameter names in {self.names}")
        self.shapes = {name: tuple(shape) for name, shape in entries}
        self.transposed = [name for name in self.names if name in set(transposed)]
        bad = [name for name in self.transposed if len(self.shapes[name]) != 2]
        if bad or len(self.transposed) != len(set(transposed)):
            raise ValueError(f"transposed: {sorted(set(transposed) - set(self.transposed)) + bad} are not 2-D tensors here")
        sizes = [int(np.prod(shape, dtype=np.int64)) for _, shape in entries]
        self.offsets = np.zeros(len(entries) + 1, dtype=np.int64)
        self.offsets[1:] = np.cumsum(sizes) if sizes else []
        self.flat = np.zeros(int(self.offsets[-1]), dtype=self.dtype)
        self.grad = np.zeros_like(self.flat)
        self.values = {}
        self.grads = {}
        for i, name in enumerate(self.names):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            self.values[name] = self._view(self.flat, i)
            self.grads[name] = self._view(self.grad, i)

    def _view(self, buf: np.ndarray, i: int) -> np.ndarray:
        """Tensor i of a flat buffer laid out like `flat`, in its declared shape."""
        name = self.names[i]
        seg, shape = buf[self.offsets[i]:self.offsets[i + 1]], self.shapes[name]
        return seg.reshape(shape[::-1]).T if name in self.transposed else seg.reshape(shape)

    def logical(self, buf: np.ndarray) -> np.ndarray:
        """A copy of a flat buffer laid out like `flat` (an optimizer slot) with every tensor in C
        order of its declared shape: the layout checkpoints keep, whatever the memory layout."""
        out = np.array(buf, copy=True)
        for i, name in enumerate(self.names):
            if name in self.transposed:
                out[self.offsets[i]:self.offsets[i + 1]] = self._view(buf, i).ravel()
        return out

    def physical(self, arr: np.ndarray) -> np.ndarray:
        """The inverse of `logical`: a checkpoint's flat slot in the memory layout of `flat`."""
        out = np.array(arr, dtype=self.dtype, copy=True)
        for i, name in enumerate(self.names):
            if name in self.transposed:
                self._view(out, i)[...] = arr[self.offsets[i]:self.offsets[i + 1]].reshape(self.shapes[name])
        return out

    @property
    def size(self) -> int:
        return int(self.flat.size)

    def state_dict(self) -> dict[str, np.ndarray]:
        """C-ordered copies of every tensor, by name (loads into the equivalent torch model)."""
        return {name: np.ascontiguousarray(self.values[name]) if name in self.transposed else self.values[name].copy()
                for name in self.names}

    def load_state_dict(self, state: dict) -> None:
        """Copy tensors in by name; every name must be present with the same shape."""
        missing = [n for n in self.names if n not in state]
        unexpected = [n for n in state if n not in self.shapes]
        if missing or unexpected:
            raise ValueError(f"state_dict mismatch: missing {missing}, unexpected {unexpected}")
        for name in self.names:
            value = np.asarray(state[name])
            if value.shape != self.shapes[name]:
                raise ValueError(f"{name}: shape {value.shape} does not match {self.shapes[name]}")
            self.values[name][...] = value
