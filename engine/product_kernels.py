"""Matrix products as CBLAS calls from compiled code, whole or cut into independent pieces.

`gemm(fn, a, b, c, ta, tb, beta, pieces, split, scratch)`: c = op(a) @ op(b) + beta * c, where op(x) is x
or x^T (`ta`, `tb`), every array 2-D and C-contiguous, `fn` the address of the CBLAS ?gemm of
NumPy's own OpenBLAS (engine/products.py finds it and passes it in as an int, so the cached
machine code holds no address; a ctypes function argument would cost 1.7 us per call to unbox). With pieces > 1 the rows of c, its columns or the inner axis (split) are cut into
that many blocks, each one BLAS call on one thread (inner blocks summed afterwards in order); `gemm_pieces` runs the same blocks on Numba's threads.
The blocks depend on the shape only, never on the thread count, so one thread and two compute
the same calls and give the same bits.
"""

from __future__ import annotations

import ctypes

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .jit import jit, jit_pieces

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
ROWS, COLS, INNER = 0, 1, 2     # how a product is cut: rows or columns of c, or its inner (k) axis
ALIGN = 16          # block edges on multiples of 16 elements: whole cache lines, whole SIMD tiles


@intrinsic
def cblas_gemm(typingctx, fn, order, ta, tb, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc):
    """Call the CBLAS ?gemm at address fn (an int): float32 scalars for sgemm, else dgemm."""
    real = types.float32 if alpha == types.float32 else types.float64
    u64, i32, i64 = types.uint64, types.int32, types.int64
    sig = types.void(u64, i32, i32, i32, i64, i64, i64, real, u64, i64, u64, i64, real, u64, i64)

    def codegen(context, builder, signature, args):
        word, int32, ptr = ir.IntType(64), ir.IntType(32), ir.IntType(8).as_pointer()
        flt = ir.FloatType() if real == types.float32 else ir.DoubleType()
        fnty = ir.FunctionType(ir.VoidType(), [int32, int32, int32, word, word, word, flt, ptr, word, ptr, word,
                                               flt, ptr, word])
        call = [builder.inttoptr(a, ptr) if i in (8, 10, 13) else a for i, a in enumerate(args)]
        builder.call(builder.inttoptr(call[0], fnty.as_pointer()), call[1:])
        return context.get_dummy_value()

    return sig, codegen


if numba.config.DISABLE_JIT:     # plain Python (tests/test_layout.py): the same CBLAS call through ctypes
    def cblas_gemm(fn, order, ta, tb, m, n, k, alpha, pa, lda, pb, ldb, beta, pc, ldc):  # noqa: F811
        real = ctypes.c_float if isinstance(alpha, np.float32) else ctypes.c_double
        i64, ptr, i32 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int32
        call = ctypes.CFUNCTYPE(None, i32, i32, i32, i64, i64, i64, real, ptr, i64, ptr, i64, real, ptr, i64)(int(fn))
        call(order, ta, tb, int(m), int(n), int(k), float(alpha), int(pa), int(lda), int(pb), int(ldb), float(beta),
             int(pc), int(ldc))

@jit
def edge(total, pieces, i):
    """Start of block i of `pieces` over 0..total, on a multiple of ALIGN (the last ends at total)."""
    if i >= pieces:
        return total
    return (total * i // pieces) // ALIGN * ALIGN


@jit
def gemm_block(fn, a, b, c, ta, tb, beta, pieces, split, i, scratch):
    """Block i of c = op(a) @ op(b) + beta c: one CBLAS call. split: ROWS or COLS of c, or INNER
    (the k axis: block 0 into c, block i > 0 into scratch[i - 1], added afterwards by add_inner)."""
    m = a.shape[1] if ta else a.shape[0]
    k = a.shape[0] if ta else a.shape[1]
    n = b.shape[0] if tb else b.shape[1]
    lda, ldb, ldc = a.shape[1], b.shape[1], c.shape[1]
    oa = ob = oc = 0                 # element offsets of the block's corner in a, b and c
    out = c
    if split == ROWS:
        lo, hi = edge(m, pieces, i), edge(m, pieces, i + 1)
        oa, oc, m = (lo if ta else lo * lda), lo * ldc, hi - lo
    elif split == COLS:
        lo, hi = edge(n, pieces, i), edge(n, pieces, i + 1)
        ob, oc, n = (lo * ldb if tb else lo), lo, hi - lo
    else:
        lo, hi = edge(k, pieces, i), edge(k, pieces, i + 1)
        oa, ob, k = (lo * lda if ta else lo), (lo if tb else lo * ldb), hi - lo
        if i > 0:
            out, ldc, beta = scratch[i - 1], n, 0.0
    size = np.uint64(c.itemsize)     # pointers are unsigned: keep the sums in uint64
    f = c.dtype.type
    if m > 0 and n > 0:
        cblas_gemm(np.uint64(fn), ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k,
                   f(1.0), a.ctypes.data + np.uint64(oa) * size, lda, b.ctypes.data + np.uint64(ob) * size, ldb,
                   f(beta), out.ctypes.data + np.uint64(oc) * size, ldc)


@jit
def add_inner(c, scratch):
    """c += scratch[0] + scratch[1] + ..., in that order (an INNER split's blocks after the first)."""
    for j in range(scratch.shape[0]):
        cj = scratch[j]
        for r in range(c.shape[0]):
            for q in range(c.shape[1]):
                c[r, q] += cj[r, q]


@jit
def gemm(fn, a, b, c, ta, tb, beta, pieces, split, scratch):
    """All blocks, one after the other, on the calling thread."""
    for i in range(pieces):
        gemm_block(fn, a, b, c, ta, tb, beta, pieces, split, i, scratch)
    if split == INNER:
        add_inner(c, scratch)


@jit_pieces
def gemm_pieces(fn, a, b, c, ta, tb, beta, pieces, split, scratch):
    """The same blocks, one per Numba thread, then the same sum."""
    for i in numba.prange(pieces):
        gemm_block(fn, a, b, c, ta, tb, beta, pieces, split, i, scratch)
    if split == INNER:
        add_inner(c, scratch)
