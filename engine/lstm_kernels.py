"""The LSTM's kernels: one direction of one layer through time, forward and backward, rows b0..b1-1.

Arrays and slots as in recurrent_kernels (z, s, c, tc, q; y and dy as (T, B, D, H), this
direction's columns at d). Per real step and row, one loop over j < H reads the four
pre-activations z + q + bias, activates them (i, f, o sigmoid, g tanh; sigmoid as
0.5 tanh(x/2) + 0.5 in float32: `gate_sigmoid`) and writes i, f, g, o back into z, c_t, tanh(c_t), h_t and the
output.

Indexing is by (t, b, j) on whole arrays, never through per-row views: a view updates the array's
reference count, an atomic add on a cache line that both threads of a split batch share (with two
threads the GRU kernel, which took views, cost 40% more CPU than with one). The output's
direction is an index of its own (y4[t, b, d, j]) rather than a column offset: an offset that
could be negative, as far as LLVM knows, turned the store into a scatter (19% of the forward).
"""

from __future__ import annotations

import numba

from .jit import jit, jit_pieces
from .recurrent_kernels import gate_sigmoid, gate_tanh, step_product, sumsq_row


@jit
def lstm_forward(fn, z, src, rows, whh_t, bias, s, c, tc, q, y, d, lengths, reverse, b0, b1):
    """z (T, B, 4H) out: the gates i, f, g, o; src[rows[t, b]] (4H,) the input part x_t W_ih^T of
    row b at step t (src is z itself, rows its row numbers, or an embedding's vocabulary projected
    once and rows the token ids: see recurrent.py); whh_t (H, 4H) = W_hh^T; bias
    (4H,) b_ih + b_hh; s, c (T+1, B, H) states by slot (the initial slot zero on entry); tc (T, B,
    H); q (B, 4H) scratch; y (T, B, D, H) the layer's output, this direction at d (0 at padded
    steps); lengths (B,) real steps per sample."""
    T = z.shape[0]
    H = s.shape[2]
    for step in range(T):
        t = T - 1 - step if reverse else step
        prev = t + 1 if reverse else t
        cur = t if reverse else t + 1
        step_product(fn, s, prev, b0, b1, whh_t, q)                # (rows, 4H) = (rows, H) @ (H, 4H), BLAS
        for b in range(b0, b1):
            if t >= lengths[b]:                                    # padding: carry the state, output 0
                for j in range(H):
                    s[cur, b, j] = s[prev, b, j]
                    c[cur, b, j] = c[prev, b, j]
                    y[t, b, d, j] = 0.0
                continue
            xr = rows[t, b]
            for j in range(4 * H):                                  # every gate: x + q + bias, in the old order
                q[b, j] = src[xr, j] + q[b, j] + bias[j]
            for j in range(H):
                gi = gate_sigmoid(q[b, j])
                gf = gate_sigmoid(q[b, H + j])
                gg = gate_tanh(q[b, 2 * H + j])
                go = gate_sigmoid(q[b, 3 * H + j])
                cc = gf * c[prev, b, j] + gi * gg
                th = gate_tanh(cc)
                z[t, b, j], z[t, b, H + j], z[t, b, 2 * H + j], z[t, b, 3 * H + j] = gi, gf, gg, go
                c[cur, b, j] = cc
                tc[t, b, j] = th
                h = go * th
                s[cur, b, j] = h
                y[t, b, d, j] = h


@jit
def lstm_backward(fn, z, whh, c, tc, dy, d, dh, dc, dq, dg, lengths, reverse, truncate, norms, b0, b1):
    """Backward through time for `lstm_forward`, rows b0..b1-1, one pass over the four gates per
    row and step. dy (T, B, D, H) the output's gradient (this direction at d), or shape (0, 0, 0,
    0) when only the final state has one; dh, dc (B, H): on entry the final state's gradients,
    scratch afterwards; dq (B, H) scratch. Out: dg (T, B, 4H) the gates' pre-activation gradient
    (what W_ih, W_hh, both biases and the input see); norms (T, B) += ||dL/dh_t||^2 at real steps
    (skipped when empty). truncate as in recurrent_kernels.gru_backward. The next step's dL/dh is
    dq + dy (the old generic kernel's 0 + dq + dy, the same value)."""
    T = z.shape[0]
    H = dh.shape[1]
    one = z.dtype.type(1.0)
    has_dy = dy.shape[0] > 0
    want_norms = norms.shape[0] > 0
    for step in range(T):
        t = step if reverse else T - 1 - step
        prev = t + 1 if reverse else t
        for b in range(b0, b1):
            if t >= lengths[b]:                                    # padding: the state passed through
                for j in range(4 * H):
                    dg[t, b, j] = 0.0
                continue
            if has_dy:
                for j in range(H):
                    dh[b, j] += dy[t, b, d, j]
            if want_norms:
                norms[t, b] += sumsq_row(dh, b)
            for j in range(H):
                i, f, gv, o, th = z[t, b, j], z[t, b, H + j], z[t, b, 2 * H + j], z[t, b, 3 * H + j], tc[t, b, j]
                dd = dh[b, j]
                dct = dc[b, j] + dd * o * (one - th * th)
                dg[t, b, j] = dct * gv * i * (one - i)
                dg[t, b, H + j] = dct * c[prev, b, j] * f * (one - f)
                dg[t, b, 2 * H + j] = dct * i * (one - gv * gv)
                dg[t, b, 3 * H + j] = dd * th * o * (one - o)
                dc[b, j] = dct * f
        step_product(fn, dg, t, b0, b1, whh, dq)                   # (rows, H) = (rows, 4H) @ (4H, H); 0 for padding
        for b in range(b0, b1):
            n_real = lengths[b]
            if truncate > 0 and t < n_real and ((t + 1) % truncate == 0 if reverse else (n_real - t) % truncate == 0):
                for j in range(H):
                    dh[b, j] = 0.0
                    dc[b, j] = 0.0
            elif t < n_real:                                       # a padded step leaves dL/dh as it was
                for j in range(H):
                    dh[b, j] = dq[b, j]


@jit_pieces
def lstm_forward_rows(fn, z, src, rows, whh_t, bias, s, c, tc, q, y, d, lengths, reverse, edges):
    """`lstm_forward` over the row chunks edges[i]..edges[i+1]-1, on Numba's threads."""
    for i in numba.prange(len(edges) - 1):
        lstm_forward(fn, z, src, rows, whh_t, bias, s, c, tc, q, y, d, lengths, reverse, edges[i], edges[i + 1])


@jit_pieces
def lstm_backward_rows(fn, z, whh, c, tc, dy, d, dh, dc, dq, dg, lengths, reverse, truncate, norms, edges):
    """`lstm_backward` over the row chunks edges[i]..edges[i+1]-1, on Numba's threads."""
    for i in numba.prange(len(edges) - 1):
        lstm_backward(fn, z, whh, c, tc, dy, d, dh, dc, dq, dg, lengths, reverse, truncate, norms, edges[i],
                      edges[i + 1])
