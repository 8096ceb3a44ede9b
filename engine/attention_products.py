"""The attention layers' matrix products, on the engine's thread policy (engine/threads.py).

`dot(a, b, out)`: a 2-D product; big ones go to products.matmul (fixed blocks on Numba's
threads), small ones to np.dot (one BLAS call: same bits on any thread count, and ~2 us less
of Python per call than products.matmul's checks).

`grad_dot(a, b, out)`: out = a.T @ b over many rows (a weight gradient summed over the B*T rows),
always cut along those rows (products.matmul's inner cut, two halves added in order). Cutting
out's rows or columns instead has each thread read all B*T rows of one operand: 128x3200x64 took
506 us on one thread that way, 443 unsplit, 416 in halves (207 on two threads, against 251).

`heads_matmul(a, b, out)`: out[i, j] = a[i, j] @ b[i, j] over the (B, H) leading axes of 4-D head
views (attention.split_heads, transposed or not), one CBLAS call per (sample, head) with the
views' own strides as leading dimensions. np.matmul runs on one thread, and without BLAS when the
output is a strided view (the key and value gradients of workload 4e: 245 us, against 33-39 us
here). The (sample, head) products are the pieces: each is one call on one thread whoever runs
it, so one thread and two give the same bits.
"""

from __future__ import annotations

import numba
import numpy as np

from . import products, threads
from .jit import jit, jit_pieces
from .product_kernels import NO_TRANS, ROW_MAJOR, TRANS, cblas_gemm

# Below this many multiply-adds over all (sample, head) pieces, one thread: entering a parallel
# region costs a few microseconds, as much as ~100k multiply-adds of these small products.
HEADS_MIN_MACS = 100_000


def dot(a, b, out, beta: float = 0.0):
    """out = a @ b + beta * out for 2-D a, b and a C-contiguous out of one float dtype (see
    products.matmul)."""
    if beta != 0.0 or a.shape[0] * a.shape[1] * b.shape[1] >= products.PIECE_MIN_MACS:
        return products.matmul(a, b, out, beta)
    return np.dot(a, b, out=out)


def grad_dot(a, b, out):
    """out (M, K) = a.T @ b for a (N, M), b (N, K), cut along the N rows (module docstring)."""
    return products.matmul(a.T, b, out, inner=True)


def mat(x, w):
    """x (..., K) @ w (K, N) as a new (..., N) array, through dot (w may be a transpose)."""
    x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    if x2.dtype != w.dtype:
        return x @ w
    out = np.empty((x2.shape[0], w.shape[1]), x2.dtype)
    return dot(x2, w, out).reshape(x.shape[:-1] + (w.shape[1],))


def bmm(a, b):
    """a (B, M, K) @ b (B, K, N) per sample as a new (B, M, N) array, through heads_matmul (views
    welcome, as there)."""
    out = np.empty(a.shape[:2] + b.shape[2:], np.result_type(a, b))
    heads_matmul(a[:, None], b[:, None], out[:, None])
    return out


def _op(rows: int, cols: int, s_row: int, s_col: int):
    """(CBLAS transpose flag, leading dimension) of a (rows, cols) view with element strides
    (s_row, s_col), or None when neither reading of it is a CBLAS matrix."""
    if s_col == 1 or cols == 1:                  # row-major: (r, c) at r * ld + c
        if rows == 1:
            return NO_TRANS, max(cols, 1)
        if s_row >= max(cols, 1):
            return NO_TRANS, s_row
    if s_row == 1 or rows == 1:                  # the transpose of a row-major (cols, rows)
        if cols == 1:
            return TRANS, max(rows, 1)
        if s_col >= max(rows, 1):
            return TRANS, s_col
    return None


def _layout(x, rows: int, cols: int):
    size = x.itemsize
    s0, s1, s2, s3 = x.strides
    if min(s0, s1, s2, s3) < 0 or s0 % size or s1 % size or s2 % size or s3 % size:
        return None
    return _op(rows, cols, s2 // size, s3 // size)


def heads_matmul(a, b, out):
    """out (B, H, M, N) = a (B, H, M, K) @ b (B, H, K, N) per (sample, head); views welcome
    (each 2-D slice with one contiguous axis; out's last axis contiguous)."""
    nb, nh, m, k = a.shape
    n = b.shape[3]
    if b.shape != (nb, nh, k, n) or out.shape != (nb, nh, m, n):
        raise ValueError(f"heads_matmul: shapes {a.shape} @ {b.shape} -> {out.shape}")
    fn = products.gemm_address(out.dtype)
    la, lb, lc = _layout(a, m, k), _layout(b, k, n), _layout(out, m, n)
    if (fn is None or la is None or lb is None or lc is None or lc[0] != NO_TRANS
            or a.dtype != out.dtype or b.dtype != out.dtype or a.size * n == 0):
        return np.matmul(a, b, out=out)
    # the views as addresses and strides: their layouts ('C' or not, which Numba types apart)
    # then compile one kernel, where arrays compiled one per combination, some of them only at a
    # transformer's first evaluation
    g = np.array([a.strides[0], a.strides[1], b.strides[0], b.strides[1], out.strides[0], out.strides[1],
                  nh, m, n, k, la[0], la[1], lb[0], lb[1], lc[1]], np.int64)
    args = (fn, out.dtype.type(1.0), a.ctypes.data, b.ctypes.data, out.ctypes.data, g)
    if a.size * n >= HEADS_MIN_MACS and threads.pieces_threads(nb * nh) > 1:
        heads_gemm_pieces(*args, nb * nh)
    else:
        heads_gemm(*args, nb * nh)
    return out


@jit
def heads_block(fn, one, pa, pb, pc, g, i):
    """Piece i = (sample i // H, head i % H) of heads_matmul: one CBLAS call. pa, pb, pc the
    addresses of a, b and out; g their byte strides over (sample, head), then H, M, N, K and the
    CBLAS flags and leading dimensions; one is 1 in the arrays' dtype."""
    nh = g[6]
    s, h = i // nh, i % nh
    oa = np.uint64(s * g[0] + h * g[1])                         # byte offsets: non-negative (checked)
    ob = np.uint64(s * g[2] + h * g[3])
    oc = np.uint64(s * g[4] + h * g[5])
    cblas_gemm(np.uint64(fn), ROW_MAJOR, g[10], g[12], g[7], g[8], g[9], one, np.uint64(pa) + oa, g[11],
               np.uint64(pb) + ob, g[13], one - one, np.uint64(pc) + oc, g[14])


@jit
def heads_gemm(fn, one, pa, pb, pc, g, pieces):
    """Every (sample, head) product, one after the other."""
    for i in range(pieces):
        heads_block(fn, one, pa, pb, pc, g, i)


@jit_pieces
def heads_gemm_pieces(fn, one, pa, pb, pc, g, pieces):
    """The same calls on Numba's threads."""
    for i in numba.prange(pieces):
        heads_block(fn, one, pa, pb, pc, g, i)
