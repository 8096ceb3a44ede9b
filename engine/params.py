"""All trainable tensors of a model in one flat buffer.

Optimizers and diagnostics then run as one loop over one buffer (PERF-NOTES: one flat Adam is
far faster than many small ones), and per-tensor figures come from segment offsets.
"""

from __future__ import annotations

import numpy as np

from .jit import jit


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


# Reductions keep LANES partial sums (float64) and add them up in a fixed order at the end: the
# loop then vectorises without fastmath, and the result is the same bit for bit on every run.
LANES = 64


@jit
def segment_sumsq(x, offsets, out):
    """out[s] = sum of x[offsets[s]:offsets[s+1]]**2, accumulated in float64."""
    acc = np.empty(LANES)                                 # (LANES,) partial sums
    for s in range(offsets.size - 1):
        acc[:] = 0.0
        for lo in range(offsets[s], offsets[s + 1], LANES):
            xb = x[lo:min(lo + LANES, offsets[s + 1])]    # slices index from 0: no wraparound checks
            for k in range(xb.size):
                v = np.float64(xb[k])
                acc[k] += v * v
        out[s] = lane_total(acc)


@jit
def lane_total(acc):
    """Sum of the LANES partial sums, in a fixed order."""
    total = 0.0
    for k in range(acc.size):
        total += acc[k]
    return total
