"""Matrix products as CBLAS calls from compiled code, whole or cut into independent pieces.

`gemm(fn, a, b, c, ta, tb, beta, pieces, rows)`: c = op(a) @ op(b) + beta * c, where op(x) is x
or x^T (`ta`, `tb`), every array 2-D and C-contiguous, `fn` the CBLAS ?gemm of NumPy's own
OpenBLAS (engine/products.py finds it and passes it in, so the cached machine code holds no
address). With pieces > 1 the rows of c (rows=True) or its columns are cut into that many
blocks, each one BLAS call on one thread; `gemm_pieces` runs the same blocks on Numba's threads.
The blocks depend on the shape only, never on the thread count, so one thread and two compute
the same calls and give the same bits.
"""

from __future__ import annotations

import numba
import numpy as np

from .jit import jit, jit_pieces

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
ALIGN = 16          # block edges on multiples of 16 elements: whole cache lines, whole SIMD tiles


@jit
def edge(total, pieces, i):
    """Start of block i of `pieces` over 0..total, on a multiple of ALIGN (the last ends at total)."""
    if i >= pieces:
        return total
    return (total * i // pieces) // ALIGN * ALIGN


@jit
def gemm_block(fn, a, b, c, ta, tb, beta, pieces, rows, i):
    """Block i of c = op(a) @ op(b) + beta c: one CBLAS call."""
    m = a.shape[1] if ta else a.shape[0]
    k = a.shape[0] if ta else a.shape[1]
    n = b.shape[0] if tb else b.shape[1]
    lda, ldb, ldc = a.shape[1], b.shape[1], c.shape[1]
    oa = ob = oc = 0                 # element offsets of the block's corner in a, b and c
    if rows:
        lo, hi = edge(m, pieces, i), edge(m, pieces, i + 1)
        oa, oc, m = (lo if ta else lo * lda), lo * ldc, hi - lo
    else:
        lo, hi = edge(n, pieces, i), edge(n, pieces, i + 1)
        ob, oc, n = (lo * ldb if tb else lo), lo, hi - lo
    size = np.uint64(c.itemsize)     # pointers are unsigned: keep the sums in uint64
    if m > 0 and n > 0:
        fn(ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k, 1.0,
           a.ctypes.data + np.uint64(oa) * size, lda, b.ctypes.data + np.uint64(ob) * size, ldb,
           beta, c.ctypes.data + np.uint64(oc) * size, ldc)


@jit
def gemm(fn, a, b, c, ta, tb, beta, pieces, rows):
    """All blocks, one after the other, on the calling thread."""
    for i in range(pieces):
        gemm_block(fn, a, b, c, ta, tb, beta, pieces, rows, i)


@jit_pieces
def gemm_pieces(fn, a, b, c, ta, tb, beta, pieces, rows):
    """The same blocks, one per Numba thread."""
    for i in numba.prange(pieces):
        gemm_block(fn, a, b, c, ta, tb, beta, pieces, rows, i)
