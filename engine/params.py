"""All trainable tensors of a model in one flat buffer.

Optimizers and diagnostics then run as one loop over one buffer (PERF-NOTES: one flat Adam is
far faster than many small ones), and per-tensor figures come from segment offsets
(arrays.segment_sumsq).
"""

from __future__ import annotations

import numpy as np



class ParamSet:
    """Flat values and gradients, with a named view of each tensor (names in torch state_dict order)."""

    def __init__(self, entries: list[tuple[str, tuple]], dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.names = [name for name, _ in entries]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"duplicate parameter names in {self.names}")
        self.shapes = {name: tuple(shape) for name, shape in entries}
        sizes = [int(np.prod(shape, dtype=np.int64)) for _, shape in entries]
        self.offsets = np.zeros(len(entries) + 1, dtype=np.int64)
        self.offsets[1:] = np.cumsum(sizes) if sizes else []
        self.flat = np.zeros(int(self.offsets[-1]), dtype=self.dtype)
        self.grad = np.zeros_like(self.flat)
        self.values = {}
        self.grads = {}
        for i, name in enumerate(self.names):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            self.values[name] = self.flat[lo:hi].reshape(self.shapes[name])
            self.grads[name] = self.grad[lo:hi].reshape(self.shapes[name])

    @property
    def size(self) -> int:
        return int(self.flat.size)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of every tensor, by name (loads into the equivalent torch model)."""
        return {name: self.values[name].copy() for name in self.names}

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
