"""Max-pooling kernels: window maxima with their winners, and the gradient sent back to them."""

from __future__ import annotations

import numpy as np
from numba import prange

from .arrays import fill
from .jit import jit, jit_pieces


@jit
def _pool2x2_row(x0, x1, base, w, yr, ar):
    """One output row of maxpool_forward for 2x2 windows at stride 2, the stride a constant so
    that the loop vectorises (paired loads); x0, x1 the two input rows, base the flat index of x0."""
    for q in range(yr.size):
        v0, v1, v2, v3 = x0[2 * q], x0[2 * q + 1], x1[2 * q], x1[2 * q + 1]
        m = v0
        a = base + 2 * q
        better = v1 > m
        m = v1 if better else m
        a = base + 2 * q + 1 if better else a
        better = v2 > m
        m = v2 if better else m
        a = base + w + 2 * q if better else a
        better = v3 > m
        m = v3 if better else m
        a = base + w + 2 * q + 1 if better else a
        nan = (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
        yr[q] = v0 + np.nan if nan else m
        ar[q] = a


@jit
def maxpool2x2_forward(x, y, arg):
    """y (B, C, PH, PW) <- maxima of the 2x2 windows at stride 2 of x (B, C, H, W); arg <- their
    flat index h*W + w. Ties go to the first maximum (so y = x at arg); a window holding NaN
    gives NaN, as in torch. The common case, on its own so that a model using it compiles it only."""
    nb, nc, _, w = x.shape
    ph = y.shape[2]
    for n in range(nb):
        for c in range(nc):
            xc = x[n, c]                                        # (H, W)
            for r in range(ph):
                h0 = 2 * r
                _pool2x2_row(xc[h0], xc[h0 + 1], h0 * w, w, y[n, c, r], arg[n, c, r])


@jit
def maxpool_forward(x, size, s, y, arg):
    """maxpool2x2_forward for any window size and stride: branch-free selects, with the 2-wide
    window unrolled."""
    nb, nc, _, w = x.shape
    ph, pw = y.shape[2], y.shape[3]
    for n in range(nb):
        for c in range(nc):
            xc = x[n, c]                                        # (H, W)
            for r in range(ph):
                h0 = r * s
                yr = y[n, c, r]                                 # (PW,)
                ar = arg[n, c, r]
                if size == 2:
                    x0, x1 = xc[h0], xc[h0 + 1]
                    base = h0 * w
                    for q in range(pw):
                        j = q * s
                        v0, v1, v2, v3 = x0[j], x0[j + 1], x1[j], x1[j + 1]
                        m = v0
                        a = base + j
                        better = v1 > m
                        m = v1 if better else m
                        a = base + j + 1 if better else a
                        better = v2 > m
                        m = v2 if better else m
                        a = base + w + j if better else a
                        better = v3 > m
                        m = v3 if better else m
                        a = base + w + j + 1 if better else a
                        nan = (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
                        yr[q] = v0 + np.nan if nan else m
                        ar[q] = a
                else:
                    for q in range(pw):
                        w0 = q * s
                        m = xc[h0, w0]
                        a = h0 * w + w0
                        nan = False
                        for i in range(size):
                            row = xc[h0 + i]
                            for j in range(size):
                                v = row[w0 + j]
                                better = v > m
                                m = v if better else m
                                a = (h0 + i) * w + w0 + j if better else a
                                nan |= v != v
                        yr[q] = m + np.nan if nan else m
                        ar[q] = a


@jit
def maxpool_backward(dy, arg, dx):
    """dx (B, C, H*W) <- zeros plus dy (B, C, PH, PW) added at the winners arg."""
    nb, nc, ph, pw = dy.shape
    for n in range(nb):
        for c in range(nc):
            dxc = dx[n, c]                                      # (H*W,)
            fill(dxc, 0.0)
            g = dy[n, c]
            a = arg[n, c]
            for r in range(ph):
                for q in range(pw):
                    dxc[a[r, q]] += g[r, q]


@jit_pieces
def maxpool2x2_forward_pieces(x, y, arg, k):
    """maxpool2x2_forward with the batch in k pieces on Numba's threads (each window on its own:
    any cut gives the same bits)."""
    nb = x.shape[0]
    for i in prange(k):
        lo, hi = nb * i // k, nb * (i + 1) // k
        maxpool2x2_forward(x[lo:hi], y[lo:hi], arg[lo:hi])


@jit_pieces
def maxpool_forward_pieces(x, size, s, y, arg, k):
    """maxpool_forward in k pieces on Numba's threads."""
    nb = x.shape[0]
    for i in prange(k):
        lo, hi = nb * i // k, nb * (i + 1) // k
        maxpool_forward(x[lo:hi], size, s, y[lo:hi], arg[lo:hi])


@jit_pieces
def maxpool_backward_pieces(dy, arg, dx, k):
    """maxpool_backward with the batch in k pieces on Numba's threads."""
    nb = dy.shape[0]
    for i in prange(k):
        lo, hi = nb * i // k, nb * (i + 1) // k
        maxpool_backward(dy[lo:hi], arg[lo:hi], dx[lo:hi])
