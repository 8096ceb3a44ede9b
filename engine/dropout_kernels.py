"""The dropout kernel: the mask and the masked output in one pass."""

from __future__ import annotations

from .jit import jit


@jit
def dropout_forward(x, u, p, scale, y):
    """In place u -> mask (scale where u >= p, else 0); y = x * mask. All (N,)."""
    for i in range(x.size):
        m = scale if u[i] >= p else 0.0
        u[i] = m
        y[i] = x[i] * m
