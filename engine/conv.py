"""Image layers, Conv2d and MaxPool2d, and two layers that fit anywhere: Dropout and Residual.

Layouts are torch's: images (B, C, H, W), conv weight (F, C, K, K), bias (F,).

Wide rows. Both convolution paths treat the padded input plane as one flat row of Hp*Wp values:
output (oh, ow) is computed at position p = oh*Wp + ow of a row of length L = (OH-1)*Wp + OW,
and tap (i, j) reads the input at s*p + i*Wp + j. For stride 1 a tap is then one contiguous run
of L values (one vectorised pass, or one copy for im2col) instead of OH short runs of OW.
Positions with ow >= OW ("garbage columns") are computed and dropped going forward and held at
zero going backward. With stride s > 1 most positions are garbage: correct, not fast.

Two paths, chosen by the taps per output C*K*K (FORWARD_/BACKWARD_DIRECT_MAX_TAPS):

- direct: loops, three taps per pass, bias and activation fused per output plane. Weight
  gradients accumulate per position over the batch (elementwise, so it vectorises) and are
  summed once at the end, in a fixed order.
- gemm: im2col into wide rows and BLAS products, in batch chunks that bound the column buffer.

MaxPool2d keeps the flat index of each window's maximum. Its dx is a PoolGrad: a complete,
ordinary gradient array that also names the pool, so the direct Conv2d backward under it can
build dL/dz from the winners alone (see PoolGrad).
"""

from __future__ import annotations

import numpy as np

from .activations import CODES, IDENTITY, RELU, SOFTMAX, act_backward, bias_act_forward, torch_activation
from .dense import Buffers, uniform_fan_in
from .errors import SpecError
from .jit import jit
from .layer import Layer, SpecReader
from .model import build_layers, named_param_shapes, split_views

# C*K*K up to these uses the direct kernels, above them im2col + BLAS (measured on the 2-core
# EPYC, one BLAS thread: the direct backward only wins for a 3x3 kernel on one channel)
FORWARD_DIRECT_MAX_TAPS = 40
BACKWARD_DIRECT_MAX_TAPS = 9
GEMM_CHUNK = 1 << 22          # elements of the im2col buffer per batch chunk (16 MiB in float32)
LANES = 32                    # partial sums per reduction: vectorises without fastmath, fixed order


# ---------------------------------------------------------------------------------------------
# kernels: helpers

@jit
def fill(a, v):
    """a[:] = v for a 1-D array (a plain loop: cheaper to compile than slice assignment)."""
    for i in range(a.size):
        a[i] = v


@jit
def lane_sum(a, lanes):
    """Sum of a (n,) through lanes.size float64 partial sums, added up in a fixed order."""
    nl = lanes.size
    fill(lanes, 0.0)
    for lo in range(0, a.size, nl):
        blk = a[lo:min(lo + nl, a.size)]
        for q in range(blk.size):
            lanes[q] += blk[q]
    total = 0.0
    for q in range(nl):
        total += lanes[q]
    return total


@jit
def pad_images(x, pad, xp):
    """xp (B, C, H+2p, W+2p) <- x (B, C, H, W) inside a zero border of width pad."""
    nb, nc, h, w = x.shape
    for n in range(nb):
        for c in range(nc):
            dst = xp[n, c]                                      # (Hp, Wp)
            fill(dst.reshape(dst.size), 0.0)
            for r in range(h):
                row = dst[pad + r]                              # (Wp,)
                src = x[n, c, r]                                # (W,)
                for q in range(w):
                    row[pad + q] = src[q]


# ---------------------------------------------------------------------------------------------
# kernels: direct convolution over wide rows

@jit
def _taps_forward(acc, xc, off, s, wr):
    """acc[p] += sum_j wr[j] * xc[s*p + off + j] for p < L: one kernel row, three taps a pass."""
    nl = acc.size
    k = wr.size
    j = 0
    while j < k:
        if s == 1 and j + 3 <= k:
            w0, w1, w2 = wr[j], wr[j + 1], wr[j + 2]
            x0 = xc[off + j:off + j + nl]                       # (L,)
            x1 = xc[off + j + 1:off + j + 1 + nl]
            x2 = xc[off + j + 2:off + j + 2 + nl]
            for p in range(nl):
                acc[p] += w0 * x0[p] + w1 * x1[p] + w2 * x2[p]  # (L,)
            j += 3
        elif s == 1:
            w0 = wr[j]
            x0 = xc[off + j:off + j + nl]
            for p in range(nl):
                acc[p] += w0 * x0[p]
            j += 1
        else:
            w0 = wr[j]
            for p in range(nl):
                acc[p] += w0 * xc[s * p + off + j]
            j += 1


@jit
def _taps_grad(t, k0, dz, xc, off, s, k):
    """t[k0 + j, p] += dz[p] * xc[s*p + off + j] for j < k, p < L: weight gradients, unreduced."""
    nl = dz.size
    j = 0
    while j < k:
        if s == 1 and j + 3 <= k:
            t0, t1, t2 = t[k0 + j], t[k0 + j + 1], t[k0 + j + 2]   # (L,) each
            x0 = xc[off + j:off + j + nl]
            x1 = xc[off + j + 1:off + j + 1 + nl]
            x2 = xc[off + j + 2:off + j + 2 + nl]
            for p in range(nl):
                g = dz[p]
                t0[p] += g * x0[p]
                t1[p] += g * x1[p]
                t2[p] += g * x2[p]
            j += 3
        elif s == 1:
            t0 = t[k0 + j]
            x0 = xc[off + j:off + j + nl]
            for p in range(nl):
                t0[p] += dz[p] * x0[p]
            j += 1
        else:
            t0 = t[k0 + j]
            for p in range(nl):
                t0[p] += dz[p] * xc[s * p + off + j]
            j += 1


@jit
def _taps_dx(dxc, dzf, off, s, wr, wp, nl):
    """dxc[s*p + off + j] += wr[j] * dz[p] with dz = dzf[wp:wp + L], L = nl.

    Stride 1 gathers three taps a pass: dxc[off + j + q] += sum_t wr[j+t] * dz[q - t] for
    q < L + 2, reading the zeros that dzf keeps before and after dz.
    """
    k = wr.size
    j = 0
    while j < k:
        if s == 1 and j + 3 <= k:
            w0, w1, w2 = wr[j], wr[j + 1], wr[j + 2]
            d = dxc[off + j:off + j + nl + 2]                   # (L + 2,)
            z0 = dzf[wp:wp + nl + 2]
            z1 = dzf[wp - 1:wp + nl + 1]
            z2 = dzf[wp - 2:wp + nl]
            for q in range(nl + 2):
                d[q] += w0 * z0[q] + w1 * z1[q] + w2 * z2[q]
            j += 3
        elif s == 1:
            w0 = wr[j]
            d = dxc[off + j:off + j + nl]                       # (L,)
            z0 = dzf[wp:wp + nl]
            for q in range(nl):
                d[q] += w0 * z0[q]
            j += 1
        else:
            w0 = wr[j]
            for p in range(nl):
                dxc[s * p + off + j] += w0 * dzf[wp + p]
            j += 1


@jit
def conv_forward_direct(xf, w, b, s, wp, act, slope, acc, y):
    """y (B, F, OH, OW) <- act(conv(x, w) + b).

    xf (B, C, Hp*Wp) the padded input; w (F, C, K, K); b (F,); acc (L,) scratch, L = (OH-1)*wp + OW.
    """
    nb, nc, _ = xf.shape
    nf, _, k, _ = w.shape
    oh, ow = y.shape[2], y.shape[3]
    for n in range(nb):
        for f in range(nf):
            fill(acc, 0.0)
            for c in range(nc):
                for i in range(k):
                    _taps_forward(acc, xf[n, c], i * wp, s, w[f, c, i])   # (L,)
            _bias_act_plane(acc, wp, b[f], act, slope, y[n, f])


@jit
def _bias_act_plane(z, wp, bias, act, slope, yp):
    """yp (OH, OW) <- act(z[r*wp + q] + bias): rows of pitch wp (wide, or wp = OW) into a plane.

    ReLU is applied in the same pass (NaN stays NaN, as in torch); other activations through
    bias_act_forward, over the whole plane at once except softmax, which is per row.
    """
    oh, ow = yp.shape
    zero = bias - bias
    for r in range(oh):
        src = z[r * wp:r * wp + ow]
        dst = yp[r]                                             # (OW,)
        if act == RELU:
            for q in range(ow):
                v = src[q] + bias
                dst[q] = zero if v <= zero else v
        else:
            for q in range(ow):
                dst[q] = src[q] + bias
    if act != IDENTITY and act != RELU:
        bias_act_forward(yp if act == SOFTMAX else yp.reshape(1, oh * ow), z[:0], act, slope)


@jit
def _act_backward_plane(y, dy, act, slope, wp, dz, dzp):
    """dz[r*wp + q] <- dL/dz for y, dy (OH, OW), rows of pitch wp with zeros past OW; dzp (OH, OW) scratch."""
    oh, ow = y.shape
    if act == SOFTMAX:
        act_backward(y, dy, act, slope, dzp)
    else:
        act_backward(y.reshape(1, oh * ow), dy.reshape(1, oh * ow), act, slope, dzp.reshape(1, oh * ow))
    for r in range(oh):
        src = dzp[r]
        dst = dz[r * wp:(r + 1) * wp]                           # (Wp,)
        for q in range(ow):
            dst[q] = src[q]
        for q in range(ow, wp):
            dst[q] = 0.0


@jit
def dz_dense(y, dy, act, slope, wp, dzs):
    """dzs (B, F, (OH+2)*wp) <- dL/dz in wide rows, between a zero row above and below.

    y, dy (B, F, OH, OW); the garbage columns (ow >= OW) are zero.
    """
    nb, nf, oh, ow = y.shape
    dzp = np.empty((oh, ow), y.dtype)                           # (OH, OW) scratch
    for n in range(nb):
        for f in range(nf):
            d = dzs[n, f]                                       # ((OH+2)*Wp,)
            fill(d[:wp], 0.0)
            fill(d[(oh + 1) * wp:], 0.0)
            _act_backward_plane(y[n, f], dy[n, f], act, slope, wp, d[wp:], dzp)


@jit
def dz_winners(dyp, outp, arg, act, ow, wp, dzs):
    """dz_dense when a max-pool consumed y: only the window winners get a gradient.

    dyp, outp (B, F, PH, PW) the pool's gradient and output (= y at the winner); arg the pool's
    winner indices h*OW + w into the (OH, OW) plane. act is IDENTITY or RELU.
    """
    nb, nf, ph, pw = dyp.shape
    oh = (dzs.shape[2] // wp) - 2
    widx = np.empty(oh * ow, np.int64)                          # (OH*OW,) plane index -> wide position
    for h in range(oh):
        for q in range(ow):
            widx[h * ow + q] = (h + 1) * wp + q
    for n in range(nb):
        for f in range(nf):
            d = dzs[n, f]                                       # ((OH+2)*Wp,)
            fill(d, 0.0)
            g, o, a = dyp[n, f], outp[n, f], arg[n, f]          # (PH, PW)
            zero = d[0]
            for r in range(ph):
                for q in range(pw):
                    v = g[r, q]
                    if act == RELU:
                        v = v if o[r, q] > zero else zero
                    d[widx[a[r, q]]] += v


@jit
def conv_grads_direct(xf, w, dzs, s, wp, oh, ow, t, dw, db, dxf):
    """Gradients of conv_forward_direct from dzs (dz_dense or dz_winners); OVERWRITES dw, db, dxf.

    xf (B, C, Hp*Wp) padded input; t (C*K*K + 1, L) scratch; dw (F, C*K*K); db (F,) or empty;
    dxf (B, C, Hp*Wp), or empty when dx isn't needed.
    """
    nb, nc, _ = xf.shape
    nf, _, k, _ = w.shape
    nl = (oh - 1) * wp + ow
    nk = nc * k * k
    lanes = np.empty(LANES)                                     # (LANES,) float64 partial sums
    for f in range(nf):
        fill(t.reshape(t.size), 0.0)
        tb = t[nk]                                              # (L,) bias row
        for n in range(nb):
            dz = dzs[n, f, wp:wp + nl]                          # (L,)
            for p in range(nl):
                tb[p] += dz[p]
            for c in range(nc):
                for i in range(k):
                    _taps_grad(t, (c * k + i) * k, dz, xf[n, c], i * wp, s, k)
        for q in range(nk):
            dw[f, q] = lane_sum(t[q], lanes)
        if db.size > 0:
            db[f] = lane_sum(tb, lanes)
    if dxf.size > 0:
        for n in range(nb):
            for c in range(nc):
                dxc = dxf[n, c]                                 # (Hp*Wp,)
                fill(dxc, 0.0)
                for f in range(nf):
                    for i in range(k):
                        _taps_dx(dxc, dzs[n, f], i * wp, s, w[f, c, i], wp, nl)


# ---------------------------------------------------------------------------------------------
# kernels: im2col for the BLAS path

@jit
def im2col(xf, k, s, wp, nl, n0, cols):
    """cols (C*K*K, nb, OH*wp) <- patches of samples n0 .. n0+nb in wide rows:
    cols[(c, i, j), m, p] = xf[n0 + m, c, s*p + i*wp + j] for p < L = nl, zero after.

    xf (B, C, Hp*Wp) the padded input. For stride 1 every row is one contiguous copy.
    """
    nc = xf.shape[1]
    _, m, lw = cols.shape
    for c in range(nc):
        for i in range(k):
            for j in range(k):
                kk = (c * k + i) * k + j
                off = i * wp + j
                for mm in range(m):
                    src = xf[n0 + mm, c]                        # (Hp*Wp,)
                    dst = cols[kk, mm]                          # (OH*Wp,)
                    if s == 1:
                        seg = src[off:off + nl]
                        for p in range(nl):
                            dst[p] = seg[p]
                    else:
                        for p in range(nl):
                            dst[p] = src[s * p + off]
                    for p in range(nl, lw):
                        dst[p] = 0.0


@jit
def col2im(dcols, k, s, wp, nl, n0, dxf):
    """dxf[n0 .. n0+nb] += the patches in dcols (C*K*K, nb, OH*wp): the transpose of im2col."""
    nc = dxf.shape[1]
    m = dcols.shape[1]
    for mm in range(m):
        for c in range(nc):
            dst = dxf[n0 + mm, c]                               # (Hp*Wp,)
            for i in range(k):
                for j in range(k):
                    off = i * wp + j
                    src = dcols[(c * k + i) * k + j, mm]        # (OH*Wp,)
                    if s == 1:
                        seg = dst[off:off + nl]
                        for p in range(nl):
                            seg[p] += src[p]
                    else:
                        for p in range(nl):
                            dst[s * p + off] += src[p]


@jit
def planes_bias_act(z, b, act, slope, n0, wp, y):
    """y[n0 + m, f] <- act(z[f, m] + b[f]) per plane. z (F, nb, OH*wp) wide rows; y (B, F, OH, OW)."""
    nf, m, _ = z.shape
    for mm in range(m):
        for f in range(nf):
            _bias_act_plane(z[f, mm], wp, b[f], act, slope, y[n0 + mm, f])   # (OH, OW)


@jit
def planes_act_backward(y, dy, act, slope, n0, wp, dz):
    """dz[f, m] <- dL/dz for planes n0 + m of y, dy (B, F, OH, OW). dz (F, nb, OH*wp) wide rows."""
    nf, m, _ = dz.shape
    oh, ow = y.shape[2], y.shape[3]
    dzp = np.empty((oh, ow), y.dtype)                           # (OH, OW) scratch
    for mm in range(m):
        for f in range(nf):
            _act_backward_plane(y[n0 + mm, f], dy[n0 + mm, f], act, slope, wp, dz[f, mm], dzp)


# ---------------------------------------------------------------------------------------------
# kernels: max-pooling and dropout

@jit
def maxpool_forward(x, size, s, y, arg):
    """y (B, C, PH, PW) <- window maxima of x (B, C, H, W); arg <- their flat index h*W + w.

    Ties go to the first maximum; a window holding NaN gives NaN, as in torch. Branch-free
    (max and selects), with the 2x2 window unrolled: the common case.
    """
    nb, nc, _, w = x.shape
    ph, pw = y.shape[2], y.shape[3]
    for n in range(nb):
        for c in range(nc):
            xc = x[n, c]                                        # (H, W)
            for r in range(ph):
                h0 = r * s
                yr = y[n, c, r]                                 # (PW,)
                ar = arg[n, c, r]
                if size == 2:
                    x0, x1 = xc[h0], xc[h0 + 1]
                    base = h0 * w
                    for q in range(pw):
                        j = q * s
                        v0, v1, v2, v3 = x0[j], x0[j + 1], x1[j], x1[j + 1]
                        m = v0
                        a = base + j
                        better = v1 > m
                        m = max(v1, m)
                        a = base + j + 1 if better else a
                        better = v2 > m
                        m = max(v2, m)
                        a = base + w + j if better else a
                        better = v3 > m
                        m = max(v3, m)
                        a = base + w + j + 1 if better else a
                        nan = (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
                        yr[q] = np.nan if nan else m
                        ar[q] = a
                else:
                    for q in range(pw):
                        w0 = q * s
                        m = xc[h0, w0]
                        a = h0 * w + w0
                        nan = False
                        for i in range(size):
                            row = xc[h0 + i]
                            for j in range(size):
                                v = row[w0 + j]
                                better = v > m
                                m = max(v, m)
                                a = (h0 + i) * w + w0 + j if better else a
                                nan |= v != v
                        yr[q] = np.nan if nan else m
                        ar[q] = a


@jit
def maxpool_backward(dy, arg, dx):
    """dx (B, C, H*W) <- zeros plus dy (B, C, PH, PW) added at the winners arg."""
    nb, nc, ph, pw = dy.shape
    for n in range(nb):
        for c in range(nc):
            dxc = dx[n, c]                                      # (H*W,)
            fill(dxc, 0.0)
            g = dy[n, c]
            a = arg[n, c]
            for r in range(ph):
                for q in range(pw):
                    dxc[a[r, q]] += g[r, q]


@jit
def dropout_forward(x, u, p, scale, y):
    """In place u -> mask (scale where u >= p, else 0); y = x * mask. All (N,)."""
    for i in range(x.size):
        m = scale if u[i] >= p else 0.0
        u[i] = m
        y[i] = x[i] * m


# ---------------------------------------------------------------------------------------------
# wrappers: shape checks, buffers and the choice of path

def conv_out_size(n: int, k: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - k) // stride + 1


def conv2d_forward(x, w, b, stride, padding, act=IDENTITY, slope=0.0, buf=None, path="auto"):
    """y = act(conv2d(x, w) + b) with x (B, C, H, W), w (F, C, K, K), b (F,).

    Returns (y, saved): saved is what conv2d_backward needs. path: "auto", "direct" or "gemm".
    """
    x = np.ascontiguousarray(x)
    if x.ndim != 4 or w.ndim != 4 or w.shape[1] != x.shape[1] or w.shape[2] != w.shape[3]:
        raise ValueError(f"conv2d needs x (B, C, H, W) and w (F, C, K, K), got {x.shape} and {w.shape}")
    if x.dtype != w.dtype or b.dtype != w.dtype or b.shape != (w.shape[0],):
        raise ValueError(f"conv2d: x {x.dtype}{x.shape}, w {w.dtype}{w.shape}, b {b.dtype}{b.shape} do not match")
    buf = buf or Buffers(x.dtype)
    nb, nc, h, wd = x.shape
    nf, _, k, _ = w.shape
    oh, ow = conv_out_size(h, k, stride, padding), conv_out_size(wd, k, stride, padding)
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {k} does not fit a {h}x{wd} image with padding {padding}")
    xp = x
    if padding:
        xp = buf.get("xp", (nb, nc, h + 2 * padding, wd + 2 * padding))
        pad_images(x, padding, xp)
    hp, wp = xp.shape[2], xp.shape[3]
    xf = xp.reshape(nb, nc, hp * wp)                            # (B, C, Hp*Wp) wide rows
    nl = (oh - 1) * wp + ow
    y = buf.get("y", (nb, nf, oh, ow))
    nk = nc * k * k
    if _direct(path, nk, FORWARD_DIRECT_MAX_TAPS):
        conv_forward_direct(xf, w, b, stride, wp, act, slope, buf.get("acc", (nl,)), y)
        return y, (xp, None)
    w2 = w.reshape(nf, nk)                                      # (F, C*K*K)
    cols = None
    for n0, m in _chunks(nb, nk * oh * wp):
        cols = buf.get("cols", (nk, m, oh * wp))
        z = buf.get("z", (nf, m, oh * wp))
        im2col(xf, k, stride, wp, nl, n0, cols)
        np.dot(w2, cols.reshape(nk, -1), out=z.reshape(nf, -1))     # (F, m*OH*Wp)
        planes_bias_act(z, b, act, slope, n0, wp, y)
    return y, (xp, cols if cols.shape[1] == nb else None)


def conv2d_backward(saved, w, y, dy, stride, padding, act, slope, dw, db, need_dx=True, buf=None,
                    path="auto", winners=None):
    """OVERWRITES dw (F, C, K, K) and db (F,) (empty: no bias); returns dx (B, C, H, W) or None.

    winners: (dy, y, arg) of a max-pool whose input was y, for the direct path with identity or
    ReLU; then dy is not read.
    """
    xp, cols = saved
    buf = buf or Buffers(xp.dtype)
    dy = np.ascontiguousarray(dy, dtype=y.dtype)
    if dy.shape != y.shape or dw.shape != w.shape:
        raise ValueError(f"conv2d backward: dy {dy.shape} for y {y.shape}, dw {dw.shape} for w {w.shape}")
    nb, nc, hp, wp = xp.shape
    nf, _, k, _ = w.shape
    oh, ow = y.shape[2], y.shape[3]
    nk, nl = nc * k * k, (oh - 1) * wp + ow
    xf = xp.reshape(nb, nc, hp * wp)
    dxp = buf.get("dxp", xp.shape) if need_dx else None
    dxf = dxp.reshape(nb, nc, hp * wp) if need_dx else buf.get("none", (0, 0, 0))
    if _direct(path, nk, BACKWARD_DIRECT_MAX_TAPS):
        dzs = buf.get("dzs", (nb, nf, (oh + 2) * wp))
        if winners is not None and act in (IDENTITY, RELU):
            dyp, outp, arg = winners
            dz_winners(dyp, outp, arg, act, ow, wp, dzs)
        else:
            dz_dense(y, dy, act, slope, wp, dzs)
        t = buf.get("t", (nk + 1, nl))
        conv_grads_direct(xf, w, dzs, stride, wp, oh, ow, t, dw.reshape(nf, nk), db, dxf)
    else:
        w2, dw2 = w.reshape(nf, nk), dw.reshape(nf, nk)
        if need_dx:
            dxp[...] = 0.0
        for n0, m in _chunks(nb, nk * oh * wp):
            if cols is None or cols.shape[1] != m:
                cols = buf.get("cols", (nk, m, oh * wp))
                im2col(xf, k, stride, wp, nl, n0, cols)
            cols2 = cols.reshape(nk, -1)                        # (C*K*K, m*OH*Wp)
            dz = buf.get("dz", (nf, m, oh * wp))
            planes_act_backward(y, dy, act, slope, n0, wp, dz)
            dz2 = dz.reshape(nf, -1)                            # (F, m*OH*Wp)
            if n0 == 0:
                np.dot(dz2, cols2.T, out=dw2)                   # (F, C*K*K)
                if db.size:
                    np.sum(dz2, axis=1, out=db)
            else:
                dw2 += np.dot(dz2, cols2.T, out=buf.get("dw", dw2.shape))
                if db.size:
                    db += np.sum(dz2, axis=1, out=buf.get("db", db.shape))
            if need_dx:
                dcols = buf.get("dcols", cols.shape)
                np.dot(w2.T, dz2, out=dcols.reshape(nk, -1))    # (C*K*K, m*OH*Wp)
                col2im(dcols, k, stride, wp, nl, n0, dxf)
            cols = None
    if not need_dx:
        return None
    if padding:
        dx = buf.get("dx", (nb, nc, hp - 2 * padding, wp - 2 * padding))
        np.copyto(dx, dxp[:, :, padding:hp - padding, padding:wp - padding])
        return dx
    return dxp


def _direct(path: str, taps: int, most: int) -> bool:
    if path not in ("auto", "direct", "gemm"):
        raise ValueError(f"path must be auto, direct or gemm, got {path!r}")
    return path == "direct" or (path == "auto" and taps <= most)


def _chunks(nb: int, per_sample: int):
    step = max(1, min(nb, GEMM_CHUNK // max(per_sample, 1)))
    for n0 in range(0, nb, step):
        yield n0, min(step, nb - n0)


def maxpool2d_forward(x, size, stride, buf=None, arg_buf=None):
    """Window maxima of x (B, C, H, W); returns (y (B, C, PH, PW), arg: int32 flat winner indices).

    buf and arg_buf are Buffers of x's dtype and of int32.
    """
    x = np.ascontiguousarray(x)
    if x.ndim != 4:
        raise ValueError(f"maxpool2d needs x (B, C, H, W), got {x.shape}")
    buf = buf or Buffers(x.dtype)
    nb, nc, h, w = x.shape
    ph, pw = (h - size) // stride + 1, (w - size) // stride + 1
    if ph < 1 or pw < 1:
        raise ValueError(f"window {size} does not fit a {h}x{w} image")
    y = buf.get("y", (nb, nc, ph, pw))
    arg = (arg_buf or Buffers(np.int32)).get("arg", (nb, nc, ph, pw))
    maxpool_forward(x, size, stride, y, arg)
    return y, arg


def maxpool2d_backward(dy, arg, x_shape, buf=None):
    """dL/dx (B, C, H, W) from dy (B, C, PH, PW): each window's gradient goes to its winner."""
    dy = np.ascontiguousarray(dy)
    if dy.shape != arg.shape:
        raise ValueError(f"maxpool2d backward: dy {dy.shape} for winners {arg.shape}")
    buf = buf or Buffers(dy.dtype)
    nb, nc, h, w = x_shape
    dx = buf.get("dx", (nb, nc, h, w))
    maxpool_backward(dy, arg, dx.reshape(nb, nc, h * w))
    return dx


# ---------------------------------------------------------------------------------------------
# layers

def _image_shape(in_shape, kind: str, key: str) -> tuple:
    if len(in_shape) != 3:
        raise SpecError(key, f"{kind} expects images (C, H, W), got {tuple(in_shape)}")
    return tuple(int(v) for v in in_shape)


class Conv2d(Layer):
    kind = "conv2d"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "conv2d", {"filters", "kernel", "stride", "padding", "activation", "bias", "slope"})
        self.filters = r.int("filters", lo=1)
        self.kernel = r.int("kernel", 3, lo=1)
        self.stride = r.int("stride", 1, lo=1)
        self.padding = r.int("padding", 0, lo=0)
        self.act = CODES[r.choice("activation", list(CODES), "identity")]
        self.slope = r.float("slope", 0.01, lo=0.0)
        self.has_bias = r.bool("bias", True)
        c, h, w = _image_shape(in_shape, "conv2d", ".filters")
        k, s, p = self.kernel, self.stride, self.padding
        oh, ow = conv_out_size(h, k, s, p), conv_out_size(w, k, s, p)
        if oh < 1 or ow < 1:
            raise SpecError(".kernel", f"a {k}x{k} kernel does not fit a {h}x{w} image with padding {p}: "
                                       f"the output would be empty")
        self.channels = c
        self.fan_in = c * k * k
        self.out_shape = (self.filters, oh, ow)
        self.buf = Buffers(self.dtype)
        self._no_bias = np.zeros(self.filters, self.dtype)
        self._empty = np.empty(0, self.dtype)

    def param_shapes(self):
        shapes = {"weight": (self.filters, self.channels, self.kernel, self.kernel)}
        if self.has_bias:
            shapes["bias"] = (self.filters,)
        return shapes

    def init_params(self, p, rng):
        for view in p.values():
            view[...] = uniform_fan_in(rng, view.shape, self.fan_in, self.dtype)

    def forward(self, x, ctx):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        b = self.p["bias"] if self.has_bias else self._no_bias
        self.y, self.saved = conv2d_forward(x, self.p["weight"], b, self.stride, self.padding, self.act,
                                            self.slope, self.buf)
        return self.y

    def backward(self, dy, ctx):
        pool = getattr(dy, "pool", None)
        winners = (pool.dy, pool.y, pool.arg) if pool is not None and pool.x_in is self.y else None
        return conv2d_backward(self.saved, self.p["weight"], self.y, dy, self.stride, self.padding, self.act,
                               self.slope, self.g["weight"], self.g["bias"] if self.has_bias else self._empty,
                               self.need_dx, self.buf, winners=winners)

    def torch_module(self):
        import torch.nn as nn

        act = torch_activation(self.act, self.slope)

        class ConvAct(nn.Conv2d):   # a Conv2d, so state_dict names stay weight / bias
            def forward(self, x):
                return act(super().forward(x))

        return ConvAct(self.channels, self.filters, self.kernel, stride=self.stride, padding=self.padding,
                       bias=self.has_bias)


class PoolGrad(np.ndarray):
    """MaxPool2d's dx: a plain, complete gradient that also names the pool that made it.

    Conv2d.backward, handed one whose pool's input was the conv's own output, reads the pool's
    winners instead of the dense array (same values, a quarter of the work for 2x2 windows).
    Any arithmetic on it gives an ordinary array again, so a container that adds gradients
    (Residual) falls back to the dense path. Layers must not modify a dy they are given in place.
    """

    pool = None


class MaxPool2d(Layer):
    kind = "maxpool2d"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "maxpool2d", {"size", "stride"})
        self.size = r.int("size", 2, lo=1)
        self.stride = r.int("stride", self.size, lo=1)
        c, h, w = _image_shape(in_shape, "maxpool2d", ".size")
        ph, pw = (h - self.size) // self.stride + 1, (w - self.size) // self.stride + 1
        if h < self.size or w < self.size:
            raise SpecError(".size", f"a {self.size}x{self.size} window does not fit a {h}x{w} image")
        self.out_shape = (c, ph, pw)
        self.buf = Buffers(self.dtype)
        self.arg_buf = Buffers(np.int32)

    def forward(self, x, ctx):
        self.x_in = x                     # the object itself: Conv2d checks it is its own output
        x = np.ascontiguousarray(x, dtype=self.dtype)
        self.x_shape = x.shape
        self.y, self.arg = maxpool2d_forward(x, self.size, self.stride, self.buf, self.arg_buf)
        return self.y

    def backward(self, dy, ctx):
        if not self.need_dx:
            return None
        self.dy = np.ascontiguousarray(dy, dtype=self.dtype)
        dx = maxpool2d_backward(self.dy, self.arg, self.x_shape, self.buf).view(PoolGrad)
        dx.pool = self
        return dx

    def torch_module(self):
        import torch.nn as nn

        return nn.MaxPool2d(self.size, self.stride)


class Dropout(Layer):
    """Inverted dropout: keep each value with probability 1 - p and scale it by 1 / (1 - p).

    The mask comes from ctx.rng only, so one seed reproduces a run. Identity when not training.
    """

    kind = "dropout"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "dropout", {"p"})
        self.p_drop = r.float("p", 0.5, lo=0.0)
        if self.p_drop >= 1.0:
            raise SpecError(".p", f"must be below 1 (1 would drop everything), got {self.p_drop}")
        self.buf = Buffers(self.dtype)
        self.mask = None

    def forward(self, x, ctx):
        if not ctx.train or self.p_drop == 0.0:
            self.mask = None
            return x
        if ctx.rng is None:
            raise ValueError("dropout in training needs ctx.rng")
        x = np.ascontiguousarray(x, dtype=self.dtype)
        mask = self.buf.get("mask", x.shape)
        y = self.buf.get("y", x.shape)
        ctx.rng.random(dtype=self.dtype, out=mask)
        t = self.dtype.type
        dropout_forward(x.reshape(-1), mask.reshape(-1), t(self.p_drop), t(1.0 / (1.0 - self.p_drop)),
                        y.reshape(-1))
        self.mask = mask
        return y

    def backward(self, dy, ctx):
        if not self.need_dx:
            return None
        if self.mask is None:
            return dy
        dx = self.buf.get("dx", self.mask.shape)
        np.multiply(dy, self.mask, out=dx)
        return dx

    def torch_module(self):
        import torch.nn as nn

        return nn.Dropout(self.p_drop)


class Residual(Layer):
    """y = x + block(x). The block's parameters are named "block.{j}.{name}" (torch: a module
    with a `block` Sequential), so in a model they read "2.block.0.weight"."""

    kind = "residual"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "residual", {"layers"})
        layers = r.raw("layers")
        try:
            self.layers = build_layers(layers, self.in_shape, self.dtype, prefix="block.")
        except SpecError as e:
            raise e.at(".layers") from None
        out = self.layers[-1].out_shape
        if out != self.in_shape:
            raise SpecError(".layers", f"a residual block must keep its input's shape: input {self.in_shape}, "
                                       f"block output {out}")
        self.out_shape = self.in_shape
        self.buf = Buffers(self.dtype)
        self._name = ""

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = value
        for j, layer in enumerate(self.layers):
            layer.name = f"{value}.block.{j}" if value else f"block.{j}"

    def sublayers(self):
        return list(self.layers)

    def param_shapes(self):
        return {f"block.{name}": shape for name, shape in named_param_shapes(self.layers)}

    def _split(self, views: dict) -> list[dict]:
        return split_views({name[len("block."):]: v for name, v in views.items()}, self.layers)

    def init_params(self, p, rng):
        for layer, pj in zip(self.layers, self._split(p)):
            layer.init_params(pj, rng)

    def bind(self, p, g):
        super().bind(p, g)
        for layer, pj, gj in zip(self.layers, self._split(p), self._split(g)):
            layer.bind(pj, gj)

    def forward(self, x, ctx):
        h = x
        for layer in self.layers:
            h = layer.forward(h, ctx)
        y = self.buf.get("y", np.shape(x))
        np.add(x, h, out=y)
        return y

    def backward(self, dy, ctx):
        d = dy
        for layer in reversed(self.layers):
            d = layer.backward(d, ctx)
        if not self.need_dx:
            return None
        dx = self.buf.get("dx", np.shape(dy))
        np.add(dy, d, out=dx)
        return dx

    def torch_module(self):
        import torch.nn as nn

        modules = [layer.torch_module() for layer in self.layers]

        class ResidualBlock(nn.Module):
            takes_mask = any(getattr(m, "takes_mask", False) for m in modules)

            def __init__(self):
                super().__init__()
                self.block = nn.Sequential(*modules)

            def forward(self, x, mask=None):
                h = x
                for module in self.block:
                    h = module(h, mask) if getattr(module, "takes_mask", False) else module(h)
                return x + h

        return ResidualBlock()
