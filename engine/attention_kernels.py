"""Attention kernels: masked softmax and its backward, positions, sequence lengths, the last query.

Masking is described in attention.py: sample b has length lens[b] (at least 1), and query
position i attends to keys 0 .. min(i, lens[b] - 1).
"""

from __future__ import annotations

from .exp_fast import softmax_exp
from .jit import jit


@jit
def masked_softmax(s, lens, last, scale):
    """In place: scores s (B, H, Tq, T) -> attention weights.

    Row i of sample b is the query at position q = lens[b] - 1 if last else i; it attends to keys
    0 .. min(q, lens[b] - 1) (causal + key padding). Masked weights are exactly 0.
    """
    nb, nh, tq, t = s.shape
    f = s.dtype.type                  # scale is a float64: the exponent back in s's own precision
    for b in range(nb):
        n = lens[b]
        for h in range(nh):
            for i in range(tq):
                q = n - 1 if last else i
                nk = min(q + 1, n)
                row = s[b, h, i]                                # (T,)
                m = row[0] * scale
                for j in range(1, nk):
                    m = max(m, row[j] * scale)
                for j in range(nk):                 # apart from the sum, so that it vectorises
                    row[j] = softmax_exp(f(row[j] * scale - m))
                total = 0.0
                for j in range(nk):
                    total += row[j]
                inv = 1.0 / total
                for j in range(nk):
                    row[j] *= inv
                for j in range(nk, t):
                    row[j] = 0.0


@jit
def masked_softmax_backward(p, dp, scale):
    """In place: dp (B, H, Tq, T) = dL/dweights -> dL/dscores, given the weights p (B, H, Tq, T).

    Masked entries have p = 0, so their gradient comes out 0 without looking at the mask.
    """
    nb, nh, tq, t = p.shape
    for b in range(nb):
        for h in range(nh):
            for i in range(tq):
                s = 0.0
                for j in range(t):
                    s += dp[b, h, i, j] * p[b, h, i, j]
                for j in range(t):
                    dp[b, h, i, j] = scale * p[b, h, i, j] * (dp[b, h, i, j] - s)   # (B, H, Tq, T)


@jit
def add_positions(x, table, out):
    """out[b, t] = x[b, t] + table[t]. x, out (B, T, D), may be the same array; table (max_len, D)."""
    nb, t, d = x.shape
    for b in range(nb):
        for i in range(t):
            for k in range(d):
                out[b, i, k] = x[b, i, k] + table[i, k]


@jit
def bias_positions(bias, table, out):
    """out[b, t] = bias + table[t], the start of the block input before the projection adds to
    it (products.matmul with beta = 1). bias (D,); table (max_len, D); out (B, T, D)."""
    nb, t, d = out.shape
    for b in range(nb):
        for i in range(t):
            for k in range(d):
                out[b, i, k] = bias[k] + table[i, k]


@jit
def fill_rows(out, row):
    """out[i] = row for every row i of out (N, F): a bias a product then adds to."""
    n, f = out.shape
    for i in range(n):
        for k in range(f):
            out[i, k] = row[k]


@jit
def sequence_lengths(mask, lens):
    """lens (B,) <- number of True per row of mask (B, T), at least 1."""
    nb, t = mask.shape
    for b in range(nb):
        n = 0
        for j in range(t):
            if mask[b, j]:
                n += 1
        lens[b] = max(n, 1)


@jit
def gather_last(x, lens, out):
    """out[b] = x[b, lens[b] - 1]. x (B, T, D); out (B, 1, D)."""
    nb, t, d = x.shape
    for b in range(nb):
        for k in range(d):
            out[b, 0, k] = x[b, lens[b] - 1, k]


@jit
def add_at_last(dx, lens, d_last):
    """dx[b, lens[b] - 1] += d_last[b]. dx (B, T, D); d_last (B, 1, D)."""
    nb, t, d = dx.shape
    for b in range(nb):
        for k in range(d):
            dx[b, lens[b] - 1, k] += d_last[b, 0, k]


@jit
def position_sumsq(dx, sq):
    """sq[t, b] (T, B) float64 <- ||dx[b, t]||^2 for dx (B, T, D), for masked_mean_norms."""
    nb, t, d = dx.shape
    for i in range(t):
        for b in range(nb):
            s = 0.0
            for k in range(d):
                s += dx[b, i, k] * dx[b, i, k]
            sq[i, b] = s
