"""Kernels for the recurrent layers: one direction of one layer over the whole sequence, forward
and backward through time (RNN and GRU here, the LSTM in lstm_kernels), plus the embedding's
scatter-add.

Layout. Everything inside is time-major so that one time step is one contiguous block:
  z   (T, B, G*H)  the gate activations, written by the forward kernel; it reads the input
                   projection x W_ih^T of row b at step t from src[rows[t, b]]: z itself (one
                   BLAS product over all steps, done by the caller) or, after an embedding, the
                   vocabulary projected once (the same bits: OpenBLAS sums each element alike
                   whatever the number of rows, while the inner size fits one of its blocks:
                   up to 256 here; at 400 a product over 1 M multiply-adds sums otherwise);
  s   (T+1, B, H)  hidden states by slot: the forward direction keeps h_t in slot t+1 and the
                   zero initial state in slot 0; the reverse direction keeps h_t in slot t and the
                   initial state in slot T. So "the state before step t" is slot t (forward) or
                   t+1 (reverse), and s[rev:rev+T] is every step's previous state in time order;
  c   (T+1, B, H)  LSTM cell states, same slots; tc (T, B, H) tanh(c_t);
  hn  (T, B, H)    GRU's W_hn h_{t-1} + b_hn (the part the reset gate multiplies);
  y   (T, B, D, H) the layer's output (D directions; a kernel writes its own d), dy the same.
Gate blocks follow PyTorch: RNN [h], LSTM [i, f, g, o], GRU [r, z, n].

Masking (right padding, lengths per sample) equals PyTorch's packed sequences: at a padded step
the state is carried unchanged and the output is 0, so slot T of the forward direction holds
each sample's state at its last real step and slot 0 of the reverse direction its state at t=0.

Activations: float64 uses math.tanh and the exact sigmoid. math.tanh does not vectorise (34 ns
per float32 element here), so in float32 (`gate_tanh`, `gate_sigmoid`) tanh is a clamped rational function
(Eigen's float tanh: at most 4e-7 absolute error in float32 arithmetic, about 0.8 ns per element)
and sigmoid(x) = 0.5 tanh(x/2) + 0.5. Float constants in float32 arithmetic are typed
(`z.dtype.type(1.0)`): a bare 1.0 would turn the whole expression into float64.

One pass per real step and row computes every gate of a hidden unit j (a loop over j < H, indexed
(t, b, j) on whole arrays: see lstm_kernels on why not per-row views). The hidden product of each
step goes to BLAS (`step_product`): at 32x64 @ 64x256 it runs at twice the speed of the best hand
loop here. `fn` is the address of the CBLAS ?gemm of NumPy's OpenBLAS (engine/products.py finds it; an int
argument, so the on-disk cache holds no address), or None where there is none: then np.dot, which calls
SciPy's BLAS (a 0.15 s import). Every kernel takes a batch row range [b0, b1) (rows are
independent through time); the `*_rows` drivers run fixed row chunks (recurrent.row_chunks: the
batch size decides them, never the thread count) on Numba's threads, and one thread runs the same
chunks one after the other: the same BLAS calls, so the same bits at any thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types

from .jit import jit, jit_overload, jit_pieces
from .product_kernels import NO_TRANS, ROW_MAJOR, cblas_gemm

RNN_CELL, LSTM_CELL, GRU_CELL = 0, 1, 2
GATES = {RNN_CELL: 1, LSTM_CELL: 4, GRU_CELL: 3}


# Eigen's generic_fast_tanh_float: tanh(x) ~ x P(x^2) / Q(x^2) on [-c, c], +-1 (to float32) outside
_F = np.float32
_CLAMP = _F(7.99881172180175781)
_P13, _P11, _P9 = _F(-2.76076847742355e-16), _F(2.00018790482477e-13), _F(-8.60467152213735e-11)
_P7, _P5 = _F(5.12229709037114e-08), _F(1.48572235717979e-05)
_P3, _P1 = _F(6.37261928875436e-04), _F(4.89352455891786e-03)
_Q6, _Q4 = _F(1.19825839466702e-06), _F(1.18534705686654e-04)
_Q2, _Q0 = _F(2.26843463243900e-03), _F(4.89352518554385e-03)
_HALF = _F(0.5)


@jit
def tanh_fast(x):
    """float32 tanh without a library call (vectorises); |error| <= 4e-7."""
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _P13 + _P11
    p = x2 * p + _P9
    p = x2 * p + _P7
    p = x2 * p + _P5
    p = x2 * p + _P3
    p = x2 * p + _P1
    q = x2 * _Q6 + _Q4
    q = x2 * q + _Q2
    q = x2 * q + _Q0
    return x * p / q


@jit
def sigmoid_exact(x):
    """1 / (1 + e^-x) without overflow (the float64 path)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def gate_tanh(x):
    """tanh of a gate's pre-activation: tanh_fast for float32, math.tanh for float64. Compiled
    code reaches it through the overload below, chosen by x's type, so a kernel holds one of the
    two loops (with a `fast` flag each held both: 0.3-0.5 s of a recurrent model's cold compile)."""
    return tanh_fast(x) if isinstance(x, np.float32) else math.tanh(x)


def gate_sigmoid(x):
    """sigmoid of a gate's pre-activation: 0.5 tanh_fast(x/2) + 0.5 for float32, the exact one for float64."""
    return _HALF * tanh_fast(_HALF * x) + _HALF if isinstance(x, np.float32) else sigmoid_exact(x)


@jit_overload(gate_tanh)
def _gate_tanh(x):
    if x == types.float32:
        return lambda x: tanh_fast(x)
    return lambda x: math.tanh(x)


@jit_overload(gate_sigmoid)
def _gate_sigmoid(x):
    if x == types.float32:
        return lambda x: _HALF * tanh_fast(_HALF * x) + _HALF
    return lambda x: sigmoid_exact(x)


def step_product(fn, a, t, b0, b1, w, c):
    """c[b0:b1] = a[t, b0:b1] @ w for a (T, B, K), w (K, N) and c (B, N), all C-contiguous: one
    CBLAS call on pointers (no views: see lstm_kernels), or np.dot when fn is None. Compiled code
    reaches it through the overload below; this body is the np.dot version (and plain Python's)."""
    np.dot(a[t, b0:b1], w, c[b0:b1])


@jit_overload(step_product)
def _step_product(fn, a, t, b0, b1, w, c):
    # chosen by fn's type: Numba keeps an `if fn is None` branch for an int fn, and the np.dot
    # path compiled into all six recurrent kernels cost 1.0-1.7 s of the cold compile of every
    # workload (18.7 -> 17.3 s on average, three alternating pairs, bench/README)
    if isinstance(fn, types.NoneType):
        return step_product

    def blas(fn, a, t, b0, b1, w, c):
        B, K, N = a.shape[1], a.shape[2], w.shape[1]
        size = np.uint64(a.itemsize)     # pointers are unsigned: keep the sums in uint64
        f = a.dtype.type
        if b1 > b0:
            cblas_gemm(np.uint64(fn), ROW_MAJOR, NO_TRANS, NO_TRANS, b1 - b0, N, K, f(1.0),
                       a.ctypes.data + np.uint64((t * B + b0) * K) * size, K, w.ctypes.data, N, f(0.0),
                       c.ctypes.data + np.uint64(b0 * N) * size, N)
    return blas


@jit
def sumsq_row(a, b):
    """sum(a[b, :]**2) in float64, four interleaved partial sums (64 floats: about 4x faster than
    one chain), indexed on the whole array (see lstm_kernels on views)."""
    n = a.shape[1]
    n4 = n - n % 4
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for j in range(0, n4, 4):
        s0 += np.float64(a[b, j]) * a[b, j]
        s1 += np.float64(a[b, j + 1]) * a[b, j + 1]
        s2 += np.float64(a[b, j + 2]) * a[b, j + 2]
        s3 += np.float64(a[b, j + 3]) * a[b, j + 3]
    for j in range(n4, n):
        s0 += np.float64(a[b, j]) * a[b, j]
    return (s0 + s1) + (s2 + s3)


@jit
def rnn_forward(fn, z, src, rows, whh_t, bias, s, q, y, d, lengths, reverse, b0, b1):
    """One direction of one tanh RNN layer, rows b0..b1-1: z (T, B, H) out: h_t; src[rows[t, b]]
    (H,) the input part x_t W_ih^T of row b at step t (see lstm_kernels.lstm_forward); whh_t
    (H, H) = W_hh^T; bias (H,) b_ih + b_hh; s (T+1, B, H) states by slot (the initial slot zero on
    entry); q (B, H) scratch; y (T, B, D, H) the layer's output, this direction at d
    (0 at padded steps); lengths (B,) real steps per sample."""
    T = z.shape[0]
    H = s.shape[2]
    zero = z.dtype.type(0.0)
    for step in range(T):
        t = T - 1 - step if reverse else step
        prev = t + 1 if reverse else t
        cur = t if reverse else t + 1
        step_product(fn, s, prev, b0, b1, whh_t, q)                # (rows, H) = (rows, H) @ (H, H), BLAS
        for b in range(b0, b1):
            if t >= lengths[b]:                                    # padding: carry the state, output 0
                for j in range(H):
                    s[cur, b, j] = s[prev, b, j]
                    y[t, b, d, j] = 0.0
                continue
            xr = rows[t, b]
            for j in range(H):                                  # every gate: x + q + bias, in the old order
                q[b, j] = src[xr, j] + q[b, j] + bias[j]
            for j in range(H):
                h = gate_tanh(q[b, j]) + zero         # + 0: the bits of the old beta*tanh+gamma
                z[t, b, j] = h
                s[cur, b, j] = h
                y[t, b, d, j] = h


@jit
def gru_forward(fn, z, src, rows, whh_t, bias, b_hn, s, hn, q, y, d, lengths, reverse, b0, b1):
    """One direction of one GRU layer, rows b0..b1-1, the three gates of a step in one pass:
    r, u = sigmoid(x + q + bias), n = tanh(x_n + b_in + r (q_n + b_hn)), h = (1 - u) n + u h_prev.
    z (T, B, 3H) out: r, u, n; src, rows the input part x as in `rnn_forward`; bias (3H,) b_ih +
    b_hh for r and u, b_in for n; b_hn (H,); hn (T, B, H) out: W_hn h_prev + b_hn (backward needs
    it); the rest as
    `rnn_forward`."""
    T = z.shape[0]
    H = s.shape[2]
    one = z.dtype.type(1.0)
    for step in range(T):
        t = T - 1 - step if reverse else step
        prev = t + 1 if reverse else t
        cur = t if reverse else t + 1
        step_product(fn, s, prev, b0, b1, whh_t, q)                # (rows, 3H) = (rows, H) @ (H, 3H), BLAS
        for b in range(b0, b1):
            if t >= lengths[b]:                                    # padding: carry the state, output 0
                for j in range(H):
                    s[cur, b, j] = s[prev, b, j]
                    y[t, b, d, j] = 0.0
                continue
            xr = rows[t, b]
            for j in range(2 * H):                                  # r, u: x + q + bias, in the old order
                q[b, j] = src[xr, j] + q[b, j] + bias[j]
            for j in range(H):
                r = gate_sigmoid(q[b, j])
                u = gate_sigmoid(q[b, H + j])
                hv = q[b, 2 * H + j] + b_hn[j]
                n = gate_tanh(src[xr, 2 * H + j] + (bias[2 * H + j] + r * hv))
                z[t, b, j], z[t, b, H + j], z[t, b, 2 * H + j], hn[t, b, j] = r, u, n, hv
                h = (one - u) * n + u * s[prev, b, j]
                s[cur, b, j] = h
                y[t, b, d, j] = h


@jit
def cut_here(t, n_real, reverse, truncate):
    """Whether truncated BPTT cuts the recurrent gradient into step t (a real step)."""
    if truncate <= 0 or t >= n_real:
        return False
    return (t + 1) % truncate == 0 if reverse else (n_real - t) % truncate == 0


@jit
def rnn_backward(fn, z, whh, dy, d, dh, dq, dg, lengths, reverse, truncate, norms, b0, b1):
    """Backward through time for `rnn_forward`, rows b0..b1-1. dy (T, B, D, H) the output's
    gradient (this direction at d), or shape (0, 0, 0, 0) when only the final state has one; dh
    (B, H): on entry the final state's gradient, scratch afterwards; dq (B, H) scratch. Out: dg
    (T, B, H) the pre-activation gradient (what W_ih, W_hh, both biases and the input see); norms
    (T, B) += ||dL/dh_t||^2 at real steps (skipped when empty); truncate as in `gru_backward`."""
    T = z.shape[0]
    H = dh.shape[1]
    one = z.dtype.type(1.0)
    has_dy = dy.shape[0] > 0
    want_norms = norms.shape[0] > 0
    for step in range(T):
        t = step if reverse else T - 1 - step
        for b in range(b0, b1):
            if t >= lengths[b]:                                    # padding: the state passed through
                for j in range(H):
                    dg[t, b, j] = 0.0
                continue
            if has_dy:
                for j in range(H):
                    dh[b, j] += dy[t, b, d, j]
            if want_norms:
                norms[t, b] += sumsq_row(dh, b)
            for j in range(H):
                dg[t, b, j] = dh[b, j] * (one - z[t, b, j] * z[t, b, j])
        step_product(fn, dg, t, b0, b1, whh, dq)                   # (rows, H) = (rows, H) @ (H, H); 0 for padding
        for b in range(b0, b1):
            if cut_here(t, lengths[b], reverse, truncate):
                for j in range(H):
                    dh[b, j] = 0.0
            elif t < lengths[b]:                                   # a padded step leaves dL/dh as it was
                for j in range(H):
                    dh[b, j] = dq[b, j]


@jit
def gru_backward(fn, z, whh, s, hn, dy, d, dh, dq, dg, dgh, lengths, reverse, truncate, norms, b0, b1):
    """Backward through time for `gru_forward`, rows b0..b1-1; arrays as `rnn_backward`, plus s
    and hn from the forward pass and dgh (T, B, 3H): the gate gradients as W_hh h + b_hh sees them
    (dg's but r * dn in the n block).
    truncate k > 0 cuts the recurrent gradient (h; the LSTM's c too) every k real steps counted
    back from the last step a direction processes: forward into step t when (length - t) % k == 0,
    reverse into step t when (t + 1) % k == 0."""
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
                for j in range(3 * H):
                    dg[t, b, j] = 0.0
                    dgh[t, b, j] = 0.0
                continue
            if has_dy:
                for j in range(H):
                    dh[b, j] += dy[t, b, d, j]
            if want_norms:
                norms[t, b] += sumsq_row(dh, b)
            for j in range(H):
                r, u, n, dd = z[t, b, j], z[t, b, H + j], z[t, b, 2 * H + j], dh[b, j]
                dan = dd * (one - u) * (one - n * n)
                ar = dan * hn[t, b, j] * r * (one - r)
                az = dd * (s[prev, b, j] - n) * u * (one - u)
                dg[t, b, j], dg[t, b, H + j], dg[t, b, 2 * H + j] = ar, az, dan
                dgh[t, b, j], dgh[t, b, H + j], dgh[t, b, 2 * H + j] = ar, az, dan * r
                dh[b, j] = dd * u                                  # the part of dL/dh_{t-1} that bypasses W_hh
        step_product(fn, dgh, t, b0, b1, whh, dq)                  # (rows, H) = (rows, 3H) @ (3H, H); 0 for padding
        for b in range(b0, b1):
            if cut_here(t, lengths[b], reverse, truncate):
                for j in range(H):
                    dh[b, j] = 0.0
            elif t < lengths[b]:
                for j in range(H):
                    dh[b, j] += dq[b, j]


# ---- the kernels over fixed row chunks (edges (n+1,): chunk i is rows edges[i]..edges[i+1]-1), on
# Numba's threads; each row is computed by one chunk in the serial kernel's order

@jit_pieces
def rnn_forward_rows(fn, z, src, rows, whh_t, bias, s, q, y, d, lengths, reverse, edges):
    for i in numba.prange(len(edges) - 1):
        rnn_forward(fn, z, src, rows, whh_t, bias, s, q, y, d, lengths, reverse, edges[i], edges[i + 1])


@jit_pieces
def rnn_backward_rows(fn, z, whh, dy, d, dh, dq, dg, lengths, reverse, truncate, norms, edges):
    for i in numba.prange(len(edges) - 1):
        rnn_backward(fn, z, whh, dy, d, dh, dq, dg, lengths, reverse, truncate, norms, edges[i], edges[i + 1])


@jit_pieces
def gru_forward_rows(fn, z, src, rows, whh_t, bias, b_hn, s, hn, q, y, d, lengths, reverse, edges):
    for i in numba.prange(len(edges) - 1):
        gru_forward(fn, z, src, rows, whh_t, bias, b_hn, s, hn, q, y, d, lengths, reverse, edges[i],
                    edges[i + 1])


@jit_pieces
def gru_backward_rows(fn, z, whh, s, hn, dy, d, dh, dq, dg, dgh, lengths, reverse, truncate, norms, edges):
    for i in numba.prange(len(edges) - 1):
        gru_backward(fn, z, whh, s, hn, dy, d, dh, dq, dg, dgh, lengths, reverse, truncate, norms, edges[i],
                     edges[i + 1])


@jit
def scatter_add_rows(ids, dy, grad):
    """grad[ids[i]] += dy[i] for every i, in order (grad zeroed here first).  ids (N,), dy (N, D)."""
    for i in range(grad.shape[0]):
        for j in range(grad.shape[1]):
            grad[i, j] = 0.0
    for i in range(ids.shape[0]):
        row = grad[ids[i]]
        src = dy[i]
        for j in range(row.shape[0]):
            row[j] += src[j]


@jit
def id_range(ids):
    """(min, max) of an integer array, one pass."""
    lo = ids.flat[0]
    hi = lo
    for i in range(ids.size):
        v = ids.flat[i]
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi
