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
    pieces = nb * nh
    if a.size * n >= HEADS_MIN_MACS and threads.pieces_threads(pieces) > 1:
        heads_gemm_pieces(fn, a, b, out, la[0], la[1], lb[0], lb[1], lc[1])
    else:
        heads_gemm(fn, a, b, out, la[0], la[1], lb[0], lb[1], lc[1])
    return out


@jit
def heads_block(fn, a, b, c, ta, lda, tb, ldb, ldc, i):
    """Piece i = (sample i // H, head i % H): c[s, h] = a[s, h] @ b[s, h], one CBLAS call."""
    nh, m, k, n = a.shape[1], a.shape[2], a.shape[3], b.shape[3]
    s, h = i // nh, i % nh
    oa = np.uint64(s * a.strides[0] + h * a.strides[1])        # byte offsets: non-negative (checked)
    ob = np.uint64(s * b.strides[0] + h * b.strides[1])
    oc = np.uint64(s * c.strides[0] + h * c.strides[1])
    f = c.dtype.type
    cblas_gemm(np.uint64(fn), ROW_MAJOR, ta, tb, m, n, k, f(1.0), a.ctypes.data + oa, lda, b.ctypes.data + ob, ldb,
               f(0.0), c.ctypes.data + oc, ldc)


@jit
def heads_gemm(fn, a, b, c, ta, lda, tb, ldb, ldc):
    """Every (sample, head) product, one after the other."""
    for i in range(a.shape[0] * a.shape[1]):
        heads_block(fn, a, b, c, ta, lda, tb, ldb, ldc, i)


@jit_pieces
def heads_gemm_pieces(fn, a, b, c, ta, lda, tb, ldb, ldc):
    """The same calls on Numba's threads."""
    for i in numba.prange(a.shape[0] * a.shape[1]):
        heads_block(fn, a, b, c, ta, lda, tb, ldb, ldc, i)
