"""Matrix products for the layers: out = a @ b (+ beta * out) on NumPy's own OpenBLAS, on one
BLAS thread per piece, big products cut into pieces that run on up to DESCENT_THREADS threads.

Why not np.dot with OpenBLAS's own threads: OpenBLAS cuts a product by its thread count, and the
cut changes the bits of the result (a product split at a block edge gives other bits in ~2% of
float32 shapes and ~30% of float64 ones here), so a run would train differently on one thread
and on two. Here a product of at least PIECE_MIN_MACS multiply-adds is always computed as PIECES
blocks of rows, of columns or of the inner axis (then added in order), whatever the thread count;
one thread computes the blocks one after the other, two at once. One thread pays for the cut:
0-13% more on the bench's products.

Which way to cut (quiet, 2026-12-01, microseconds on two threads, rows / columns): 64x64x2000
103 / 98, 64x2000x64 116 / 72, 64x128x784 81 / 69, 128x784x64 63 / 91, 256x128x784 199 / 224,
3200x192x64 275 / 432: columns while the output has fewer than ROWS_FROM rows, else rows; the
inner axis when it is INNER_FROM times the output's longer side (each thread then packs half of
both operands instead of one whole; inner / columns: 64x64x2000 94 / 120, 64x128x784 75 / 83).
Columns too when the output is over WIDE_FROM times wider than tall: a row cut has each thread
pack all of b (MNIST's 784 -> 1024 layer, 128x1024x784: rows 1060 / columns 936 us on two
threads, 2117 / 1822 on one; 2026-12-01 21:58, as dense layers now multiply, x @ W (in, out)).

The CBLAS functions come from the OpenBLAS that NumPy's wheels bundle (numpy.libs), passed to
the kernels as arguments so the on-disk cache holds no address. Where NumPy has another BLAS,
products fall back to np.dot on one thread: the same bits at any thread count, no split.
"""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

from . import threads
from .product_kernels import COLS, INNER, ROWS, gemm, gemm_pieces

PIECES = 2                  # blocks of a big product: the shape decides, never the thread count
PIECE_MIN_MACS = 1_000_000  # below this a product is one call (a block must outweigh a hand-off, ~2 us)
ROWS_FROM = 128             # cut rows when the output has this many, else columns (table above)
INNER_FROM = 4              # cut the inner axis when it is this many times the output's longer side
WIDE_FROM = 4               # cut columns when the output is more than this many times wider than tall

_NO_SCRATCH = {np.dtype(t): np.empty((0, 0, 0), t) for t in (np.float32, np.float64)}   # splits that need none
_fns: dict | None = None    # dtype -> address of the CBLAS ?gemm, found on first use; {} when there is none


def _find_cblas() -> dict:
    """{float32: sgemm, float64: dgemm} addresses in NumPy's bundled 64-bit-integer OpenBLAS, or {}
    (the library stays loaded: NumPy holds it)."""
    here = os.path.dirname(np.__file__)
    for path in sorted(glob.glob(os.path.join(here, os.pardir, "numpy.libs", "*openblas64*.so*"))):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in ("scipy_cblas_", "cblas_"):
            fns = {}
            for dtype, letter in ((np.float32, "s"), (np.float64, "d")):
                fn = getattr(lib, f"{prefix}{letter}gemm64_", None)
                if fn is None:
                    break
                fns[np.dtype(dtype)] = ctypes.cast(fn, ctypes.c_void_p).value
            if len(fns) == 2:
                return fns
    return {}


def _cblas() -> dict:
    global _fns
    if _fns is None:
        threads.blas_one_thread()
        _fns = _find_cblas()
    return _fns


def gemm_address(dtype) -> int | None:
    """The address of the CBLAS ?gemm for float32 or float64 (what the kernels take as `fn`), or
    None where NumPy bundles no OpenBLAS (callers then use np.dot)."""
    return _cblas().get(np.dtype(dtype))


def matmul(a, b, out, beta: float = 0.0, inner: bool = False):
    """out = a @ b + beta * out for 2-D a (m, k), b (k, n) and a C-contiguous out (m, n) of one
    float dtype; a and b each C-contiguous or the transpose of a C-contiguous array (x.T).
    inner: a big product is cut along k whatever the shape (a weight gradient summed over many
    rows: each thread then reads half of them)."""
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k or out.shape != (m, n):
        raise ValueError(f"matmul: shapes {a.shape} @ {b.shape} -> {out.shape}")
    fn = (_fns if _fns is not None else _cblas()).get(out.dtype)
    fa, fb = a.flags, b.flags
    ta, tb = not fa.c_contiguous, not fb.c_contiguous
    if (fn is None or (ta and not fa.f_contiguous) or (tb and not fb.f_contiguous) or not out.flags.c_contiguous
            or a.dtype != out.dtype or b.dtype != out.dtype or m * n * k == 0):
        if beta == 0.0:
            np.dot(a, b, out=out)
        else:
            out *= beta
            out += np.dot(a, b)
        return out
    pieces = PIECES if m * n * k >= PIECE_MIN_MACS else 1
    kernel = gemm_pieces if threads.pieces_threads(pieces) > 1 else gemm
    scratch = _NO_SCRATCH[out.dtype]
    if pieces == 1:
        split = ROWS
    elif inner or k >= INNER_FROM * max(m, n):
        split, scratch = INNER, np.empty((pieces - 1, m, n), out.dtype)
    else:
        split = ROWS if m >= ROWS_FROM and n <= WIDE_FROM * m else COLS
    kernel(fn, a.T if ta else a, b.T if tb else b, out, ta, tb, beta, pieces, split, scratch)
    return out
