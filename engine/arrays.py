"""Kernel helpers every family shares: fill, the fixed-order reductions, masked time norms (at
absolute steps and aligned on each sample's answer), and the one cache of work arrays.

Fixed-order reductions keep `lanes.size` float64 partial sums and add them up in a fixed order at
the end: the loop then vectorises without fastmath, and the result is the same bit for bit on
every run. The lane count is part of the result (another count rounds differently), so each call
site keeps the count its recorded runs were made with: LANES for the optimizer's per-tensor sums,
CONV_LANES for the convolution's weight gradients.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from . import threads
from .jit import jit, jit_pieces

LANES = 64
CONV_LANES = 32


@jit
def fill(a, v):
    """a[:] = v for a 1-D array (a plain loop: cheaper to compile than slice assignment)."""
    for i in range(a.size):
        a[i] = v


@jit
def lane_total(lanes):
    """Sum of the partial sums lanes (L,), in a fixed order."""
    total = 0.0
    for k in range(lanes.size):
        total += lanes[k]
    return total


@jit
def lane_sum(a, lanes):
    """Sum of a (n,) through the float64 partial sums lanes (L,)."""
    nl = lanes.size
    fill(lanes, 0.0)
    for lo in range(0, a.size, nl):
        blk = a[lo:min(lo + nl, a.size)]                  # slices index from 0: no wraparound checks
        for q in range(blk.size):
            lanes[q] += blk[q]
    return lane_total(lanes)


@jit
def lane_sumsq(a, lanes):
    """Sum of a (n,) squared, each value squared in float64, through the partial sums lanes
    (LANES,): element q of every LANES-long run goes to lane q."""
    fill(lanes, 0.0)
    full = a.size - a.size % LANES
    for lo in range(0, full, LANES):
        for q in range(LANES):              # a constant trip count: LLVM keeps it unrolled
            v = np.float64(a[lo + q])
            lanes[q] += v * v
    for q in range(a.size - full):
        v = np.float64(a[full + q])
        lanes[q] += v * v
    return lane_total(lanes)


# A tensor's sum of squares is the sum, in order, of its blocks' sums (SUMSQ_BLOCK elements each,
# each block through LANES lanes): the blocks are fixed by the tensor's size, so on more than one
# thread they are shared out (Numba's threads) and the result keeps its bits.
SUMSQ_BLOCK = 16384


@jit
def sumsq_blocks(offsets):
    """(first (S+1,), start (B,), end (B,)): segment s has blocks first[s]..first[s+1]-1 (at least
    one, even if empty); block j covers x[start[j]:end[j]]."""
    first = np.empty(offsets.size, np.int64)
    first[0] = 0
    for s in range(offsets.size - 1):
        first[s + 1] = first[s] + max(1, (offsets[s + 1] - offsets[s] + SUMSQ_BLOCK - 1) // SUMSQ_BLOCK)
    start = np.empty(first[-1], np.int64)
    end = np.empty(first[-1], np.int64)
    for s in range(offsets.size - 1):
        for j in range(first[s], first[s + 1]):
            start[j] = offsets[s] + (j - first[s]) * SUMSQ_BLOCK
            end[j] = min(start[j] + SUMSQ_BLOCK, offsets[s + 1])
    return first, start, end


@jit
def add_blocks(sums, first, out):
    """out[s] = the sum of segment s's block sums, in order."""
    for s in range(out.size):
        total = 0.0
        for j in range(first[s], first[s + 1]):
            total += sums[j]
        out[s] = total


@jit
def segment_sumsq_serial(x, offsets, out):
    """segment_sumsq on one thread: the same blocks in the same order as the pieces (a loop of its
    own rather than the pieces' block plan: half the compile time)."""
    lanes = np.empty(LANES)
    for s in range(offsets.size - 1):
        total = 0.0
        for lo in range(offsets[s], offsets[s + 1], SUMSQ_BLOCK):
            total += lane_sumsq(x[lo:min(lo + SUMSQ_BLOCK, offsets[s + 1])], lanes)
        out[s] = total


@jit_pieces
def segment_sumsq_pieces(x, offsets, out, pieces):
    # Piece i takes the blocks whose middle lies in its share of the elements, not an equal count
    # of blocks: Numba deals out a prange's iterations by count, and a model's small tensors (one
    # block each) would leave one thread three times the other's work (20 us where 12 would do).
    first, start, end = sumsq_blocks(offsets)
    sums = np.empty(first[-1])
    mid = 2 * start + (end - start)                 # twice each block's middle, in order
    n = 2 * offsets[-1]
    for i in numba.prange(pieces):
        j0 = np.searchsorted(mid, n * i // pieces)
        j1 = start.size if i == pieces - 1 else np.searchsorted(mid, n * (i + 1) // pieces)
        lanes = np.empty(LANES)
        for j in range(j0, j1):
            sums[j] = lane_sumsq(x[start[j]:end[j]], lanes)
    add_blocks(sums, first, out)


def segment_sumsq(x, offsets, out):
    """out[s] = sum of x[offsets[s]:offsets[s+1]]**2, accumulated in float64 (blocks of lanes)."""
    n = threads.pieces_threads(x.size // SUMSQ_BLOCK)
    if n > 1:
        segment_sumsq_pieces(x, offsets, out, n)
    else:
        segment_sumsq_serial(x, offsets, out)


@jit
def column_sums(a, out):
    """out (F,) <- sums over the rows of a (N, F), row after row."""
    n, f = a.shape
    for j in range(f):
        out[j] = 0.0
    for i in range(n):
        for j in range(f):
            out[j] += a[i, j]


@jit
def masked_mean_norms(sq, lengths, out):
    """out[t] = mean over samples b with t < lengths[b] of sqrt(sq[t, b]); 0 where there are none.

    sq (T, B) squared norms per step and sample; lengths (B,); out (T,). A sequence layer's
    ||dL/dh_t|| over the real (unpadded) steps.
    """
    T, B = sq.shape
    for t in range(T):
        total = 0.0
        count = 0
        for b in range(B):
            if t < lengths[b]:
                total += math.sqrt(sq[t, b])
                count += 1
        out[t] = total / count if count else 0.0


@jit
def aligned_ratio(sq, lengths, out):
    """out[d] = mean over samples b with lengths[b] > d of sqrt(sq[L-1-d, b] / sq[L-1, b]), L = lengths[b].

    sq (T, B) squared norms ||dL/dh_t||^2; lengths (B,); out (T,) indexed by distance d back from
    each sample's last real step (its answer), 0 where no sample reaches that far. Aligning on the
    answer and dividing by its norm makes decay comparable across sentences of any length; samples
    whose answer norm is 0 carry no information and are left out.
    """
    T, B = sq.shape
    for d in range(T):
        out[d] = 0.0
    counts = np.zeros(T, np.int64)
    for b in range(B):
        n = lengths[b]
        if n < 1 or sq[n - 1, b] <= 0.0:
            continue
        inv = 1.0 / sq[n - 1, b]
        for d in range(n):
            out[d] += math.sqrt(sq[n - 1 - d, b] * inv)
            counts[d] += 1
    for d in range(T):
        if counts[d]:
            out[d] /= counts[d]


@jit
def aligned_mean(v, lengths, out):
    """out[d] = mean over samples b with lengths[b] > d of v[L-1-d, b], L = lengths[b]; 0 where none.

    v (T, B) a per-step value (a gate's mean activation); out (T,) by distance back from the answer.
    """
    T, B = v.shape
    for d in range(T):
        out[d] = 0.0
    counts = np.zeros(T, np.int64)
    for b in range(B):
        n = lengths[b]
        for d in range(n):
            out[d] += v[n - 1 - d, b]
            counts[d] += 1
    for d in range(T):
        if counts[d]:
            out[d] /= counts[d]


class Buffers:
    """Reusable work arrays keyed by (name, shape, dtype): no allocation in the steady state.

    Past `limit` arrays (evaluation with odd batch sizes) the cache starts afresh rather than
    grow. Arrays already handed out stay valid: a layer keeps a reference to what its backward
    pass reads, and never looks it up again.
    """

    def __init__(self, dtype, limit: int = 32):
        self.dtype = np.dtype(dtype)
        self.limit = limit
        self._arrays = {}

    def get(self, name: str, shape: tuple, dtype=None) -> np.ndarray:
        dtype = self.dtype if dtype is None else np.dtype(dtype)
        key = (name, tuple(shape), dtype)
        a = self._arrays.get(key)
        if a is None:
            if len(self._arrays) > self.limit:
                self._arrays.clear()
            a = self._arrays[key] = np.empty(shape, dtype)
        return a
