"""Dense-layer kernels for sparse inputs: gather the non-zeros, then x W^T and dW over them alone
(the weight as it is stored, (in, out)).

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
def sparse_matmul(row_ptr, cols, vals, wt, y):
    """y (N, out) <- x wt with x given by its non-zeros; wt (in, out), the dense layer's weight
    as it is stored. Each non-zero adds its scaled row of wt to the sample's row of y: each
    output is summed over the non-zeros in order, as x w^T one output at a time would."""
    n, out = y.shape
    for i in range(n):
        yi = y[i]
        yi[:] = 0
        for p in range(row_ptr[i], row_ptr[i + 1]):
            v = vals[p]
            row = wt[cols[p]]
            for o in range(out):
                yi[o] += v * row[o]


@jit
def sparse_grad_w(row_ptr, cols, vals, dz, dwt):
    """dwt (in, out) <- x^T dz with x given by its non-zeros; dz (N, out). Overwrites dwt; each
    entry is summed over the samples in order."""
    n, out = dz.shape
    dwt[:] = 0
    for i in range(n):
        dzi = dz[i]
        for p in range(row_ptr[i], row_ptr[i + 1]):
            v = vals[p]
            row = dwt[cols[p]]
            for o in range(out):
                row[o] += v * dzi[o]
