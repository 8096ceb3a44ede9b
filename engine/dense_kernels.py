"""Dense-layer kernels for sparse inputs: gather the non-zeros, then x W^T and dW over them alone.

The products of dense inputs are BLAS calls in dense.py.
"""

from __future__ import annotations

from .jit import jit

SPARSE_CHUNK = 16          # the gather tests this many input values at once for any non-zero


@jit
def gather_nonzeros(x, bits, row_ptr, cols, vals):
    """The non-zeros of x (N, F), row by row: row i's are cols/vals[row_ptr[i]:row_ptr[i+1]].
    bits is x viewed as unsigned integers: an OR over a chunk of them (vectorised) skips the
    all-zero chunks. Returns the count, or -1 as soon as there are more than cols.size, or the
    first row alone holds 4x its share (a dense batch shows there)."""
    n, f = x.shape
    cap = cols.size
    limit = min(cap, max(1, 4 * cap // n))
    nnz = 0
    row_ptr[0] = 0
    for i in range(n):
        row, brow = x[i], bits[i]
        for lo in range(0, f, SPARSE_CHUNK):
            hi = min(lo + SPARSE_CHUNK, f)
            chunk = brow[lo:hi]
            any_bits = chunk[0]
            for k in range(1, chunk.size):
                any_bits |= chunk[k]
            if any_bits == 0:
                continue
            for j in range(lo, hi):
                if row[j] != 0:
                    if nnz == limit:
                        return -1
                    cols[nnz] = j
                    vals[nnz] = row[j]
                    nnz += 1
        row_ptr[i + 1] = nnz
        limit = cap
    return nnz


@jit
def sparse_matmul_wt(row_ptr, cols, vals, w, y):
    """y (N, out) <- x w^T with x given by its non-zeros; w (out, in). Row o of w stays in cache
    while every sample visits it."""
    n, out = y.shape
    for o in range(out):
        wo = w[o]
        for i in range(n):
            acc = y.dtype.type(0)
            for p in range(row_ptr[i], row_ptr[i + 1]):
                acc += vals[p] * wo[cols[p]]
            y[i, o] = acc


@jit
def sparse_grad_w(row_ptr, cols, vals, dz, dw):
    """dw (out, in) <- dz^T x with x given by its non-zeros; dz (N, out). Overwrites dw."""
    n, out = dz.shape
    for o in range(out):
        dwo = dw[o]
        dwo[:] = 0
        for i in range(n):
            d = dz[i, o]
            for p in range(row_ptr[i], row_ptr[i + 1]):
                dwo[cols[p]] += d * vals[p]
