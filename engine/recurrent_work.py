"""The arrays of one pass of a recurrent stack (engine/recurrent.py), allocated once per (T, B)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .recurrent_kernels import GRU_CELL, LSTM_CELL


class Workspace:
    """Every array one pass of a recurrent stack needs for one (T, B), allocated once and reused;
    with backward=False (evaluation) only the forward pass's: about half the memory."""

    def __init__(self, layer, T: int, B: int, backward: bool = True):
        dt, H, D, GH = layer.dtype, layer.hidden, layer.dirs, layer.gh
        empty3 = np.zeros((0, 0, 0), dt)
        f = lambda *shape: np.empty(shape, dt)  # noqa: E731
        b = f if backward else (lambda *shape: empty3)  # noqa: E731
        self.T, self.B = T, B
        self.empty3, self.empty4, self.empty2 = empty3, np.zeros((0, 0, 0, 0), dt), np.zeros((0, 0))
        self.x = f(T, B, layer.in_size)                                   # input, time-major
        self.rows = np.arange(T * B).reshape(T, B)                        # row numbers of (T*B, .) views
        self.ids = np.empty((T, B), np.int64)                             # token ids, time-major
        self.y = [f(T, B, D * H) for _ in range(layer.layers)]            # each layer's output sequence
        self.out = f(B, T, D * H) if layer.output == "all" else f(B, D * H)
        self.dy = b(T, B, D * H) if layer.output == "all" else empty3
        ins = [layer.in_size] + [D * H] * (layer.layers - 1)
        self.dx = [b(T, B, n) for n in ins]                               # gradient of each layer's input
        self.dxr = [b(T, B, n) for n in ins] if D == 2 else []
        self.dx_out = b(B, T, layer.in_size)
        self.demb = f(0, 0)                                               # embedding gradient (fold)
        self.norms = np.zeros((layer.layers, T, B) if backward else (0, 0, 0))
        self.ones = np.ones(T * B if backward else 0, dt)
        lstm, gru = layer.cell == LSTM_CELL, layer.cell == GRU_CELL
        self.cells = [[SimpleNamespace(
            z=f(T, B, GH), table=f(0, GH), dtab=f(0, GH), bias=f(GH), whh_t=f(H, GH), s=f(T + 1, B, H),
            c=f(T + 1, B, H) if lstm else empty3, tc=f(T, B, H) if lstm else empty3,
            hn=f(T, B, H) if gru else empty3, q=f(B, GH), dh=b(B, H), dc=b(B, H), dq=b(B, H),
            dg=(dg := b(T, B, GH)), dgh=b(T, B, GH) if gru else dg,
        ) for _ in range(D)] for _ in range(layer.layers)]
