"""Kernels for the recurrent layers: one direction of one layer over the whole sequence, forward
and backward through time, plus the embedding's scatter-add.

Layout. Everything inside is time-major so that one time step is one contiguous block:
  z   (T, B, G*H)  the input projection x W_ih^T on entry to the forward kernel (one BLAS product
                   over all steps, done by the caller), the gate activations on exit;
  s   (T+1, B, H)  hidden states by slot: the forward direction keeps h_t in slot t+1 and the
                   zero initial state in slot 0; the reverse direction keeps h_t in slot t and the
                   initial state in slot T. So "the state before step t" is slot t (forward) or
                   t+1 (reverse), and s[rev:rev+T] is every step's previous state in time order;
  c   (T+1, B, H)  LSTM cell states, same slots; tc (T, B, H) tanh(c_t);
  hn  (T, B, H)    GRU's W_hn h_{t-1} + b_hn (the part the reset gate multiplies).
Gate blocks follow PyTorch: RNN [h], LSTM [i, f, g, o], GRU [r, z, n].

Masking (right padding, lengths per sample) equals PyTorch's packed sequences: at a padded step
the state is carried unchanged and the output is 0, so slot T of the forward direction holds
each sample's state at its last real step and slot 0 of the reverse direction its state at t=0.

Activations: float64 uses math.tanh and the exact sigmoid. math.tanh does not vectorise (34 ns
per float32 element here), so with `fast` (the float32 path) tanh is a clamped rational function
(Eigen's float tanh: at most 4e-7 absolute error in float32 arithmetic, about 0.8 ns per element)
and sigmoid(x) = 0.5 + 0.5 tanh(x/2). Float constants in float32 arithmetic are typed
(`z.dtype.type(1.0)`): a bare 1.0 would turn the whole expression into float64.

The hidden product of each step goes to BLAS (np.dot inside the kernel calls SciPy's BLAS with no
GIL): at 32x64 @ 64x256 it runs at twice the speed of the best hand loop here (64 against 32
GMAC/s, AVX-512). The result lands in scratch and is added to the gates in the same pass that
activates them. Every kernel takes a batch row range [b0, b1), so threads can run slices of a
batch (rows are independent through time). OpenBLAS sums each output element the same way for
any number of rows from 2 up (a single row goes to gemv, which sums differently), so a split
whose slices all have at least 2 rows changes no bit of the result (tests/test_recurrent.py).
"""

from __future__ import annotations

import math

import numpy as np

from .arrays import fill
from .jit import jit

RNN_CELL, LSTM_CELL, GRU_CELL = 0, 1, 2
GATES = {RNN_CELL: 1, LSTM_CELL: 4, GRU_CELL: 3}


def gate_coefficients(cell: int, hidden: int, dtype) -> np.ndarray:
    """(alpha, beta, gamma) per gate column for `activate`, (3, width): sigmoid for LSTM's i, f, o
    and GRU's r, z; tanh for RNN's h and LSTM's g. GRU's n (which needs r first) is left out, so
    the GRU array is only 2H wide (a contiguous array keeps `activate` vectorised)."""
    sigmoid = {RNN_CELL: (), LSTM_CELL: (0, 1, 3), GRU_CELL: (0, 1)}[cell]
    width = 2 * hidden if cell == GRU_CELL else GATES[cell] * hidden
    coef = np.zeros((3, width), dtype)
    coef[:2] = 1.0
    for k in sigmoid:
        coef[:, k * hidden:(k + 1) * hidden] = 0.5
    return coef


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
def activate(v, h, bias, coef, fast):
    """Gate activations in place over one row: v[j] <- act_j(v[j] + h[j] + bias[j]) (input part,
    hidden part, bias), sigmoid or tanh by column. coef (3, len(v)): (alpha, beta, gamma) = (0.5, 0.5, 0.5) for sigmoid, (1, 1, 0) for
    tanh, so that with `fast` one vectorised loop computes beta * tanh(alpha * x) + gamma
    (sigmoid(x) = 0.5 + 0.5 tanh(x / 2)); exact mode uses math.exp / math.tanh."""
    al, be, ga = coef[0], coef[1], coef[2]
    if fast:
        for j in range(v.shape[0]):
            v[j] = be[j] * tanh_fast(al[j] * (v[j] + h[j] + bias[j])) + ga[j]
    else:
        for j in range(v.shape[0]):
            x = v[j] + h[j] + bias[j]
            if ga[j] == 0.0:
                v[j] = math.tanh(x)
            elif x >= 0:
                v[j] = 1.0 / (1.0 + math.exp(-x))
            else:
                e = math.exp(x)
                v[j] = e / (1.0 + e)


@jit
def tanh_inplace(v, fast):
    """v <- tanh(v), v 1-D."""
    if fast:
        for j in range(v.shape[0]):
            v[j] = tanh_fast(v[j])
    else:
        for j in range(v.shape[0]):
            v[j] = math.tanh(v[j])


@jit
def copy_into(dst, src):
    """dst[:] = src for 1-D arrays (an explicit loop compiles smaller than slice assignment)."""
    for j in range(dst.shape[0]):
        dst[j] = src[j]


@jit
def sumsq(v):
    """sum(v**2) in float64, four interleaved partial sums (64 floats: about 4x faster than one chain)."""
    n = v.shape[0]
    n4 = n - n % 4
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for j in range(0, n4, 4):
        s0 += np.float64(v[j]) * v[j]
        s1 += np.float64(v[j + 1]) * v[j + 1]
        s2 += np.float64(v[j + 2]) * v[j + 2]
        s3 += np.float64(v[j + 3]) * v[j + 3]
    for j in range(n4, n):
        s0 += np.float64(v[j]) * v[j]
    return (s0 + s1) + (s2 + s3)


@jit
def recurrent_forward(cell, z, whh_t, bias, b_hn, coef, s, hn, q, y, y_off, lengths, reverse, fast, b0, b1):
    """One direction of one RNN or GRU layer, rows b0..b1-1 (see the module docstring for the
    layouts; the LSTM has its own `lstm_forward`).

    z holds x W_ih^T on entry; bias (G*H,) b_ih + b_hh (GRU's n block: b_in only); whh_t (H, G*H)
    = W_hh^T; b_hn (H,) GRU's b_hn; coef from gate_coefficients; q (B, G*H) scratch;
    y (T, B, Dy) the layer's output, this direction in columns y_off..y_off+H (0 at padded
    steps); lengths (B,) real steps per sample. s[init slot] must hold zeros on entry.
    Loops index whole 1-D views from 0 (v[j], j in range(len)) so that LLVM vectorises them."""
    T = z.shape[0]
    H = s.shape[2]
    one = z.dtype.type(1.0)                                        # float literals would promote float32 to float64
    gru = cell == GRU_CELL
    for step in range(T):
        t = T - 1 - step if reverse else step
        prev = t + 1 if reverse else t
        cur = t if reverse else t + 1
        np.dot(s[prev, b0:b1], whh_t, q[b0:b1])                    # (rows, GH) = (rows, H) @ (H, GH), BLAS
        for b in range(b0, b1):
            yb = y[t, b, y_off:y_off + H]                          # (H,)
            hp, hb = s[prev, b], s[cur, b]                         # (H,)
            if t >= lengths[b]:                                    # padding: carry the state, output 0
                copy_into(hb, hp)
                fill(yb, 0.0)
                continue
            g = z[t, b]                                            # (GH,) pre-activations
            na = coef.shape[1]                                     # GRU keeps W_hn h apart: r multiplies it
            activate(g[:na], q[b, :na], bias[:na], coef, fast)     # RNN h; GRU r, z
            if cell == RNN_CELL:
                for j in range(H):
                    hb[j] = g[j]
                    yb[j] = g[j]
                continue
            gr, tv = g[:H], g[2 * H:]                              # r, n (H,)
            hnb, qn, b_in = hn[t, b], q[b, 2 * H:], bias[2 * H:]   # (H,)
            for j in range(H):
                hnb[j] = qn[j] + b_hn[j]
                tv[j] += b_in[j] + gr[j] * hnb[j]
            tanh_inplace(tv, fast)                                 # GRU n
            gz = g[H:2 * H]
            for j in range(H):
                hb[j] = (one - gz[j]) * tv[j] + gz[j] * hp[j]
                yb[j] = hb[j]


@jit
def recurrent_backward(cell, z, whh, s, hn, dy, y_off, dh, dq, dg, dgh, lengths, reverse, truncate, norms, b0, b1):
    """Backward through time for what `recurrent_forward` did, rows b0..b1-1 (RNN, GRU).

    dy (T, B, Dy): gradient of the layer output (this direction at y_off), or shape (0, 0, 0) when
    only the final state has one. dh (B, H): on entry the gradient of the final state (slot T
    forward, slot 0 reverse); scratch afterwards. dq (B, H) scratch.
    Out: dg (T, B, GH) gradient of the gate pre-activations, for W_ih, b_ih and the input;
    dgh (T, B, GH) the same as seen by W_hh h + b_hh (differs from dg in GRU's n block only; pass
    dg itself for RNN); norms (T, B) += ||dL/dh_t||^2 at real steps (skipped when empty).
    truncate k > 0 cuts the recurrent gradient (h; the LSTM's kernel c too) every k real steps
    counted back from the last step a direction processes: forward into step t when (length - t) % k == 0, reverse into
    step t when (t + 1) % k == 0."""
    T = z.shape[0]
    H = s.shape[2]
    one = z.dtype.type(1.0)                                        # float literals would promote float32 to float64
    has_dy = dy.shape[0] > 0
    want_norms = norms.shape[0] > 0
    for step in range(T):
        t = step if reverse else T - 1 - step
        prev = t + 1 if reverse else t
        for b in range(b0, b1):
            a, ah = dg[t, b], dgh[t, b]                            # (GH,)
            if t >= lengths[b]:                                    # padding: the state passed through
                fill(a, 0.0)
                fill(ah, 0.0)
                continue
            d, g = dh[b], z[t, b]                                  # (H,) dL/dh_t so far, (GH,) gates
            if has_dy:
                dyb = dy[t, b, y_off:y_off + H]                    # (H,)
                for j in range(H):
                    d[j] += dyb[j]
            if want_norms:
                norms[t, b] += sumsq(d)
            # gate gradients; d becomes the part of dL/dh_{t-1} that bypasses W_hh (GRU: z * d)
            if cell == RNN_CELL:
                for j in range(H):
                    a[j] = d[j] * (one - g[j] * g[j])
                    d[j] = 0.0
            else:
                gr, gz, gn = g[:H], g[H:2 * H], g[2 * H:]          # (H,) each
                ar, az, an = a[:H], a[H:2 * H], a[2 * H:]
                hr, hz, hnn = ah[:H], ah[H:2 * H], ah[2 * H:]
                hp, hnb = s[prev, b], hn[t, b]                     # (H,)
                for j in range(H):
                    r, u, n = gr[j], gz[j], gn[j]
                    dan = d[j] * (one - u) * (one - n * n)
                    ar[j] = dan * hnb[j] * r * (one - r)
                    az[j] = d[j] * (hp[j] - n) * u * (one - u)
                    an[j] = dan
                    hr[j] = ar[j]
                    hz[j] = az[j]
                    hnn[j] = dan * r
                    d[j] = d[j] * u
        np.dot(dgh[t, b0:b1], whh, dq[b0:b1])                      # (rows, H) = (rows, GH) @ (GH, H); 0 for padding
        for b in range(b0, b1):
            n_real = lengths[b]
            if truncate > 0 and t < n_real and ((t + 1) % truncate == 0 if reverse else (n_real - t) % truncate == 0):
                fill(dh[b], 0.0)
            else:
                d, db = dh[b], dq[b]                               # (H,)
                for j in range(H):
                    d[j] += db[j]


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


@jit
def sigmoid_exact(x):
    """1 / (1 + e^-x) without overflow (the exact mode of `activate`)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)

@jit
def lstm_forward(z, whh_t, bias, s, c, tc, q, y, y_off, lengths, reverse, fast, b0, b1):
    """The LSTM's `recurrent_forward`, rows b0..b1-1, with every gate of a step in one pass.

    Same arrays and slots as `recurrent_forward` (no hn, no coef: i, f, o are sigmoids, g tanh).
    Per real step and row, one loop over j < H reads the four pre-activations z + q + bias,
    activates them, and writes i, f, g, o back into z, c_t, tanh(c_t), h_t and the output; each
    value is the expression `activate` computes (sigmoid as 0.5 tanh(x/2) + 0.5 with `fast`), so
    the bits are those of the generic kernel this replaced (which ran one loop per gate block).
    Indexing is by (t, b, j) on the whole arrays, not through per-row views: a view costs a
    reference count update, which at H = 64 cost as much as the arithmetic."""
    T = z.shape[0]
    H = s.shape[2]
    half = z.dtype.type(0.5)
    for step in range(T):
        t = T - 1 - step if reverse else step
        prev = t + 1 if reverse else t
        cur = t if reverse else t + 1
        np.dot(s[prev, b0:b1], whh_t, q[b0:b1])                    # (rows, 4H) = (rows, H) @ (H, 4H), BLAS
        for b in range(b0, b1):
            if t >= lengths[b]:                                    # padding: carry the state, output 0
                for j in range(H):
                    s[cur, b, j] = s[prev, b, j]
                    c[cur, b, j] = c[prev, b, j]
                    y[t, b, y_off + j] = 0.0
                continue
            if fast:
                for j in range(H):
                    gi = half * tanh_fast(half * (z[t, b, j] + q[b, j] + bias[j])) + half
                    gf = half * tanh_fast(half * (z[t, b, H + j] + q[b, H + j] + bias[H + j])) + half
                    gg = tanh_fast(z[t, b, 2 * H + j] + q[b, 2 * H + j] + bias[2 * H + j])
                    go = half * tanh_fast(half * (z[t, b, 3 * H + j] + q[b, 3 * H + j] + bias[3 * H + j])) + half
                    cc = gf * c[prev, b, j] + gi * gg
                    th = tanh_fast(cc)
                    z[t, b, j], z[t, b, H + j], z[t, b, 2 * H + j], z[t, b, 3 * H + j] = gi, gf, gg, go
                    c[cur, b, j] = cc
                    tc[t, b, j] = th
                    s[cur, b, j] = go * th
                    y[t, b, y_off + j] = go * th
            else:
                for j in range(H):
                    gi = sigmoid_exact(z[t, b, j] + q[b, j] + bias[j])
                    gf = sigmoid_exact(z[t, b, H + j] + q[b, H + j] + bias[H + j])
                    gg = math.tanh(z[t, b, 2 * H + j] + q[b, 2 * H + j] + bias[2 * H + j])
                    go = sigmoid_exact(z[t, b, 3 * H + j] + q[b, 3 * H + j] + bias[3 * H + j])
                    cc = gf * c[prev, b, j] + gi * gg
                    th = math.tanh(cc)
                    z[t, b, j], z[t, b, H + j], z[t, b, 2 * H + j], z[t, b, 3 * H + j] = gi, gf, gg, go
                    c[cur, b, j] = cc
                    tc[t, b, j] = th
                    s[cur, b, j] = go * th
                    y[t, b, y_off + j] = go * th


@jit
def lstm_backward(z, whh, c, tc, dy, y_off, dh, dc, dq, dg, lengths, reverse, truncate, norms, b0, b1):
    """The LSTM's `recurrent_backward`, rows b0..b1-1, one pass over the four gates per row and
    step (same arrays; dg is also what W_hh sees). dh on entry: the final state's gradient; the
    next step's dL/dh is written as dq + dy in one pass (the old kernel's 0 + dq + dy, the same
    value)."""
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
                    dh[b, j] += dy[t, b, y_off + j]
            if want_norms:
                norms[t, b] += sumsq(dh[b])
            for j in range(H):
                i, f, gv, o, th = z[t, b, j], z[t, b, H + j], z[t, b, 2 * H + j], z[t, b, 3 * H + j], tc[t, b, j]
                d = dh[b, j]
                dct = dc[b, j] + d * o * (one - th * th)
                dg[t, b, j] = dct * gv * i * (one - i)
                dg[t, b, H + j] = dct * c[prev, b, j] * f * (one - f)
                dg[t, b, 2 * H + j] = dct * i * (one - gv * gv)
                dg[t, b, 3 * H + j] = d * th * o * (one - o)
                dc[b, j] = dct * f
        np.dot(dg[t, b0:b1], whh, dq[b0:b1])                       # (rows, H) = (rows, 4H) @ (4H, H); 0 for padding
        for b in range(b0, b1):
            n_real = lengths[b]
            if truncate > 0 and t < n_real and ((t + 1) % truncate == 0 if reverse else (n_real - t) % truncate == 0):
                for j in range(H):
                    dh[b, j] = 0.0
                    dc[b, j] = 0.0
            elif t < n_real:                                           # a padded step leaves dL/dh as it was
                for j in range(H):
                    dh[b, j] = dq[b, j]
