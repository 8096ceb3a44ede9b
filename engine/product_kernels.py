"""Matrix products as CBLAS calls from compiled code, whole or cut into independent pieces.

`gemm(fn, a, b, c, ta, tb, beta, pieces, rows)`: c = op(a) @ op(b) + beta * c, where op(x) is x
or x^T (`ta`, `tb`), every array 2-D and C-contiguous, `fn` the address of the CBLAS ?gemm of
NumPy's own OpenBLAS (engine/products.py finds it and passes it in as an int, so the cached
machine code holds no address; a ctypes function argument would cost 1.7 us per call to unbox). With pieces > 1 the rows of c (rows=True) or its columns are cut into that many
blocks, each one BLAS call on one thread; `gemm_pieces` runs the same blocks on Numba's threads.
The blocks depend on the shape only, never on the thread count, so one thread and two compute
the same calls and give the same bits.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .jit import jit, jit_pieces

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
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
    f = c.dtype.type
    if m > 0 and n > 0:
        cblas_gemm(np.uint64(fn), ROW_MAJOR, TRANS if ta else NO_TRANS, TRANS if tb else NO_TRANS, m, n, k,
                   f(1.0), a.ctypes.data + np.uint64(oa) * size, lda, b.ctypes.data + np.uint64(ob) * size, ldb,
                   f(beta), c.ctypes.data + np.uint64(oc) * size, ldc)


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
