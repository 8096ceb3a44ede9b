"""Slow, obviously correct NumPy references for the kernels in engine/conv_kernels.py and engine/pooling_kernels.py.

One output position (or one window) at a time, straight from the definitions; the tests compare
the fast kernels against these in float32 and float64.
"""

import numpy as np


def pad(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x


def conv2d(x, w, b, stride=1, padding=0):
    """z (B, F, OH, OW) = conv2d(x (B, C, H, W), w (F, C, K, K)) + b (F,), no activation."""
    xp = pad(x, padding)
    nb, _, hp, wp = xp.shape
    nf, _, k, _ = w.shape
    oh, ow = (hp - k) // stride + 1, (wp - k) // stride + 1
    z = np.zeros((nb, nf, oh, ow), x.dtype)
    for r in range(oh):
        for q in range(ow):
            patch = xp[:, :, r * stride:r * stride + k, q * stride:q * stride + k]      # (B, C, K, K)
            z[:, :, r, q] = np.einsum("bcij,fcij->bf", patch, w) + b
    return z


def conv2d_backward(x, w, dz, stride=1, padding=0):
    """(dw, db, dx) given dz = dL/dz (B, F, OH, OW) for z = conv2d(x, w) + b."""
    xp = pad(x, padding)
    nf, _, k, _ = w.shape
    oh, ow = dz.shape[2], dz.shape[3]
    dw = np.zeros_like(w)
    dxp = np.zeros_like(xp)
    for r in range(oh):
        for q in range(ow):
            hs = slice(r * stride, r * stride + k)
            ws = slice(q * stride, q * stride + k)
            g = dz[:, :, r, q]                                                         # (B, F)
            dw += np.einsum("bf,bcij->fcij", g, xp[:, :, hs, ws])
            dxp[:, :, hs, ws] += np.einsum("bf,fcij->bcij", g, w)
    db = dz.sum(axis=(0, 2, 3))
    h, wd = x.shape[2], x.shape[3]
    return dw, db, dxp[:, :, padding:padding + h, padding:padding + wd]


def maxpool2d(x, size, stride):
    """(y (B, C, PH, PW), arg): window maxima and their flat index h*W + w (first maximum wins)."""
    nb, nc, h, w = x.shape
    ph, pw = (h - size) // stride + 1, (w - size) // stride + 1
    y = np.zeros((nb, nc, ph, pw), x.dtype)
    arg = np.zeros((nb, nc, ph, pw), np.int64)
    for n in range(nb):
        for c in range(nc):
            for r in range(ph):
                for q in range(pw):
                    win = x[n, c, r * stride:r * stride + size, q * stride:q * stride + size]
                    i, j = np.unravel_index(np.argmax(win), win.shape)
                    y[n, c, r, q] = win[i, j]
                    arg[n, c, r, q] = (r * stride + i) * w + q * stride + j
    return y, arg


def maxpool2d_backward(dy, arg, x_shape):
    nb, nc, h, w = x_shape
    dx = np.zeros((nb, nc, h * w), dy.dtype)
    for n in range(nb):
        for c in range(nc):
            np.add.at(dx[n, c], arg[n, c].ravel(), dy[n, c].ravel())
    return dx.reshape(x_shape)
