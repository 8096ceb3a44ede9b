"""Dense-layer kernels for sparse inputs: gather the non-zeros row by row (CSR), turn them column
by column (CSC), and sum rows of a dense matrix weighted by them, which is x W^T (over the input's
rows) and dW (over its columns) alike.

The products of dense inputs are BLAS calls in dense.py.
"""

from __future__ import annotations

import numba

from .jit import jit, jit_pieces

SPARSE_CHUNK = 16          # the gather tests this many input values at once for any non-zero
AHEAD_ROWS = 2             # the gather's allowance above the rows seen so far, in rows' shares


@jit
def gather_nonzeros(x, bits, row_ptr, cols, vals):
    """The non-zeros of x (N, F), row by row: row i's are cols/vals[row_ptr[i]:row_ptr[i+1]].
    bits is x viewed as unsigned integers: an OR over a chunk of them (vectorised) skips the
    all-zero chunks. Returns the count, or -1 as soon as there are more than cols.size, or more
    than the first i + 1 rows' share of it plus AHEAD_ROWS rows' (a dense batch shows in its first
    row, one of 35% non-zeros by its fifth, where a cap of 25% is reached only near the end)."""
    n, f = x.shape
    cap = cols.size
    nnz = 0
    row_ptr[0] = 0
    for i in range(n):
        limit = min(cap, cap * (i + 1 + AHEAD_ROWS) // n)
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
    return nnz


@jit
def transpose_nonzeros(row_ptr, cols, vals, col_ptr, rows, tvals):
    """The same non-zeros column by column: column j's are rows/tvals[col_ptr[j]:col_ptr[j+1]],
    in row order (a counting sort; col_ptr has F + 1 entries)."""
    n = row_ptr.size - 1
    f = col_ptr.size - 1
    col_ptr[:] = 0
    for p in range(row_ptr[n]):
        col_ptr[cols[p] + 1] += 1
    for j in range(f):
        col_ptr[j + 1] += col_ptr[j]
    for i in range(n):                   # col_ptr[j] walks to the end of column j ...
        for p in range(row_ptr[i], row_ptr[i + 1]):
            j = cols[p]
            q = col_ptr[j]
            rows[q] = i
            tvals[q] = vals[p]
            col_ptr[j] = q + 1
    for j in range(f, 0, -1):            # ... so each entry now holds the next one's start
        col_ptr[j] = col_ptr[j - 1]
    col_ptr[0] = 0


@jit
def sum_rows(ptr, idx, vals, src, dst, r0, r1):
    """dst[r] <- the sum over p in ptr[r]:ptr[r+1] of vals[p] * src[idx[p]], for r0 <= r < r1,
    added in p order. Four terms per pass over dst[r] (the same sums, left to right, with a
    quarter of the loads and stores of dst): the rows of src come from the last-level cache, so
    one pass per term ran at about the speed of BLAS on the whole dense matrix."""
    out = dst.shape[1]
    for r in range(r0, r1):
        d = dst[r]
        d[:] = 0
        p, end = ptr[r], ptr[r + 1]
        while p + 4 <= end:
            v0, v1, v2, v3 = vals[p], vals[p + 1], vals[p + 2], vals[p + 3]
            s0, s1, s2, s3 = src[idx[p]], src[idx[p + 1]], src[idx[p + 2]], src[idx[p + 3]]
            for o in range(out):
                d[o] = (((d[o] + v0 * s0[o]) + v1 * s1[o]) + v2 * s2[o]) + v3 * s3[o]
            p += 4
        while p < end:
            v0, s0 = vals[p], src[idx[p]]
            for o in range(out):
                d[o] += v0 * s0[o]
            p += 1


@jit_pieces
def sum_rows_pieces(ptr, idx, vals, src, dst, cuts):
    """sum_rows on the row ranges cuts[i]:cuts[i+1], one per Numba thread: each row is summed as
    sum_rows sums it, so the bits do not depend on the cuts."""
    for i in numba.prange(cuts.size - 1):
        sum_rows(ptr, idx, vals, src, dst, cuts[i], cuts[i + 1])
