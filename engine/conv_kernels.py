"""Convolution kernels over wide rows; the wrappers that pick a path are in conv.py.

Layouts are torch's: images (B, C, H, W), conv weight (F, C, K, K), bias (F,).

Wide rows. Both convolution paths treat the padded input plane as one flat row of Hp*Wp values:
output (oh, ow) is computed at position p = oh*Wp + ow of a row of length L = (OH-1)*Wp + OW,
and tap (i, j) reads the input at s*p + i*Wp + j. For stride 1 a tap is then one contiguous run
of L values (one vectorised pass, or one copy for im2col) instead of OH short runs of OW.
Positions with ow >= OW ("garbage columns") are computed and dropped going forward and held at
zero going backward. With stride s > 1 most positions are garbage: correct, not fast.

Two paths, chosen by the taps per output C*K*K (FORWARD_/BACKWARD_DIRECT_MAX_TAPS):

- direct: loops, bias and activation fused per output plane. A 3x3 kernel at stride 1 (the
  common case) takes its nine taps in one pass, two filters (forward) or four samples (weight
  gradients) at a time, with fused multiply-adds; other kernels three taps a pass. Weight
  gradients accumulate per position over the samples of a batch piece (elementwise, so it
  vectorises) and are summed once per piece, in a fixed order (conv.py adds the pieces in order).
- gemm: im2col into wide rows and BLAS products, in batch chunks that bound the column buffer.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .activation_kernels import RELU
from .arrays import fill, lane_sum
from .fma import fma
from .jit import jit, jit_pieces


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
# direct convolution over wide rows

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
def _taps3_forward(a0, a1, xc, wp, wa, wb, first):
    """a0[p] (+)= sum_ij wa[i, j] * xc[p + i*wp + j], a1 the same with wb: a 3x3 kernel at stride 1
    for two filters, all nine taps in one pass (overwrites when `first`, else adds)."""
    nl = a0.size
    r0, r1, r2 = xc[0:nl + 2], xc[wp:wp + nl + 2], xc[2 * wp:2 * wp + nl + 2]     # (L + 2,) each
    u00, u01, u02, u10, u11, u12, u20, u21, u22 = (wa[0, 0], wa[0, 1], wa[0, 2], wa[1, 0], wa[1, 1],
                                                   wa[1, 2], wa[2, 0], wa[2, 1], wa[2, 2])
    v00, v01, v02, v10, v11, v12, v20, v21, v22 = (wb[0, 0], wb[0, 1], wb[0, 2], wb[1, 0], wb[1, 1],
                                                   wb[1, 2], wb[2, 0], wb[2, 1], wb[2, 2])
    for p in range(nl):
        x0, x1, x2 = r0[p], r0[p + 1], r0[p + 2]
        g = fma(u02, x2, fma(u01, x1, u00 * x0))
        h = fma(v02, x2, fma(v01, x1, v00 * x0))
        x0, x1, x2 = r1[p], r1[p + 1], r1[p + 2]
        g = fma(u12, x2, fma(u11, x1, fma(u10, x0, g)))
        h = fma(v12, x2, fma(v11, x1, fma(v10, x0, h)))
        x0, x1, x2 = r2[p], r2[p + 1], r2[p + 2]
        g = fma(u22, x2, fma(u21, x1, fma(u20, x0, g)))
        h = fma(v22, x2, fma(v21, x1, fma(v20, x0, h)))
        if first:
            a0[p] = g
            a1[p] = h
        else:
            a0[p] += g
            a1[p] += h


@jit
def conv_forward_direct3(xf, w, b, wp, act, acc, y):
    """y (B, F, OH, OW) <- act(conv(x, w) + b) for a 3x3 kernel at stride 1, act IDENTITY or RELU:
    two filters a pass (the last one twice when F is odd).

    xf (B, C, Hp*Wp) the padded input; w (F, C, 3, 3); b (F,); acc (2, L) scratch, L = (OH-1)*wp + OW.
    """
    nb, nc, _ = xf.shape
    nf = w.shape[0]
    a0, a1 = acc[0], acc[1]                                     # (L,) each
    for n in range(nb):
        f = 0
        while f < nf:
            g = min(f + 1, nf - 1)
            for c in range(nc):
                _taps3_forward(a0, a1, xf[n, c], wp, w[f, c], w[g, c], c == 0)
            _bias_act_plane(a0, wp, b[f], act, y[n, f])
            if g > f:
                _bias_act_plane(a1, wp, b[g], act, y[n, g])
            f = g + 1


@jit
def conv_forward_direct(xf, w, b, s, wp, act, acc, y):
    """conv_forward_direct3 for any kernel and stride, three taps of a kernel row a pass; acc[0]
    is the scratch. Its own kernel, so that a 3x3 model does not compile it."""
    nb, nc, _ = xf.shape
    nf, _, k, _ = w.shape
    a0 = acc[0]                                                 # (L,)
    for n in range(nb):
        for f in range(nf):
            fill(a0, 0.0)
            for c in range(nc):
                for i in range(k):
                    _taps_forward(a0, xf[n, c], i * wp, s, w[f, c, i])   # (L,)
            _bias_act_plane(a0, wp, b[f], act, y[n, f])


def _forward_pieces_kernel(three: bool):
    @jit_pieces
    def forward_pieces(xf, w, b, s, wp, act, accs, y):
        """The direct forward with the batch in len(accs) pieces on Numba's threads; accs (pieces, 2, L)."""
        nb, k = xf.shape[0], accs.shape[0]
        for i in prange(k):
            lo, hi = nb * i // k, nb * (i + 1) // k
            if three:
                conv_forward_direct3(xf[lo:hi], w, b, wp, act, accs[i], y[lo:hi])
            else:
                conv_forward_direct(xf[lo:hi], w, b, s, wp, act, accs[i], y[lo:hi])
    return forward_pieces


conv_forward_pieces3 = _forward_pieces_kernel(True)
conv_forward_pieces = _forward_pieces_kernel(False)


@jit
def _bias_act_plane(z, wp, bias, act, yp):
    """yp (OH, OW) <- act(z[r*wp + q] + bias): rows of pitch wp (wide, or wp = OW) into a plane.
    act is IDENTITY or RELU (NaN stays NaN, as in torch); conv.py applies any other activation
    to the whole output afterwards, so that its code is not compiled into these kernels."""
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


@jit
def _act_backward_plane(y, dy, act, wp, dz):
    """dz[r*wp + q] <- dL/dz for y, dy (OH, OW), rows of pitch wp with zeros past OW. act is
    IDENTITY or RELU (conv.py turns dy into dz first for any other)."""
    oh, ow = y.shape
    for r in range(oh):
        yr, dr = y[r], dy[r]                                    # (OW,)
        dst = dz[r * wp:(r + 1) * wp]                           # (Wp,)
        if act == RELU:
            for q in range(ow):
                dst[q] = dr[q] if yr[q] > 0 else 0.0
        else:
            for q in range(ow):
                dst[q] = dr[q]
        for q in range(ow, wp):
            dst[q] = 0.0


@jit
def dz_dense(y, dy, act, wp, dzs):
    """dzs (B, F, (OH+2)*wp) <- dL/dz in wide rows, between a zero row above and below.

    y, dy (B, F, OH, OW); the garbage columns (ow >= OW) are zero. act is IDENTITY or RELU.
    """
    nb, nf, oh, ow = y.shape
    for n in range(nb):
        for f in range(nf):
            d = dzs[n, f]                                       # ((OH+2)*Wp,)
            fill(d[:wp], 0.0)
            fill(d[(oh + 1) * wp:], 0.0)
            _act_backward_plane(y[n, f], dy[n, f], act, wp, d[wp:])


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
def _taps3_grad(t, k0, d0, xa, off):
    """t[k0 + j, p] += d0[p] * xa[p + off + j] for j < 3: one kernel row of a 3x3 kernel at stride 1."""
    nl = d0.size
    t0, t1, t2 = t[k0], t[k0 + 1], t[k0 + 2]                    # (L,) each
    a = xa[off:off + nl + 2]                                    # (L + 2,)
    for p in range(nl):
        g = d0[p]
        t0[p] = fma(g, a[p], t0[p])
        t1[p] = fma(g, a[p + 1], t1[p])
        t2[p] = fma(g, a[p + 2], t2[p])


def _wgrads_kernel(three: bool):
    @jit
    def wgrads(xf, dzs, s, wp, oh, ow, k, t, lanes, part):
        """part (F, C*K*K + 1) float64 <- the weight gradients of conv_forward_direct summed over
        the samples of xf and dzs (dz_dense or dz_winners), the bias's in the last column.

        xf (B', C, Hp*Wp) padded input; dzs (B', F, (OH+2)*wp); t (C*K*K + 1, L) and lanes
        (CONV_LANES,) float64 scratch. Per filter, t sums per position over the samples in order,
        then each row once through the lanes.
        """
        nb, nc, _ = xf.shape
        nf = dzs.shape[1]
        nl = (oh - 1) * wp + ow
        nk = nc * k * k
        for f in range(nf):
            fill(t.reshape(t.size), 0.0)
            tb = t[nk]                                          # (L,) bias row
            for n in range(nb):
                d0 = dzs[n, f, wp:wp + nl]                      # (L,)
                for p in range(nl):
                    tb[p] += d0[p]
                for c in range(nc):
                    for i in range(k):
                        if three:
                            _taps3_grad(t, (c * k + i) * k, d0, xf[n, c], i * wp)
                        else:
                            _taps_grad(t, (c * k + i) * k, d0, xf[n, c], i * wp, s, k)
            for q in range(nk + 1):
                part[f, q] = lane_sum(t[q], lanes)

    return wgrads


# `three` a closure constant (see activation_kernels): the 3x3 stride-1 kernel (k = 3, s = 1)
# holds only its taps, so a 3x3 model does not compile the general ones
conv_wgrads_part3 = _wgrads_kernel(True)
conv_wgrads_part = _wgrads_kernel(False)


# The backward's pieces: one driver a step, each calling one kernel, so a model compiles only the
# paths it takes (one driver calling them all, its gufunc compiling the whole tree once more, made
# a two-thread first start of digits_cnn 57-59 s; these, 36-40 s, 2026-12-03)
@jit_pieces
def dz_dense_pieces(y, dy, act, wp, dzs, pieces):
    nb = y.shape[0]
    for i in prange(pieces):
        lo, hi = nb * i // pieces, nb * (i + 1) // pieces
        dz_dense(y[lo:hi], dy[lo:hi], act, wp, dzs[lo:hi])


@jit_pieces
def dz_winners_pieces(dyp, outp, arg, act, ow, wp, dzs, pieces):
    nb = dyp.shape[0]
    for i in prange(pieces):
        lo, hi = nb * i // pieces, nb * (i + 1) // pieces
        dz_winners(dyp[lo:hi], outp[lo:hi], arg[lo:hi], act, ow, wp, dzs[lo:hi])


def _wgrads_pieces_kernel(three: bool):
    @jit_pieces
    def wgrads_pieces(xf, dzs, s, wp, oh, ow, k, ts, lanes, parts):
        """Piece i's weight-gradient sums into parts[i] (conv_wgrads_part3 / _part)."""
        nb, n = xf.shape[0], ts.shape[0]
        for i in prange(n):
            lo, hi = nb * i // n, nb * (i + 1) // n
            if three:
                conv_wgrads_part3(xf[lo:hi], dzs[lo:hi], s, wp, oh, ow, k, ts[i], lanes[i], parts[i])
            else:
                conv_wgrads_part(xf[lo:hi], dzs[lo:hi], s, wp, oh, ow, k, ts[i], lanes[i], parts[i])
    return wgrads_pieces


conv_wgrads_pieces3 = _wgrads_pieces_kernel(True)
conv_wgrads_pieces = _wgrads_pieces_kernel(False)


@jit_pieces
def conv_dx_pieces(w, dzs, s, wp, oh, ow, dxf, pieces):
    nb = dxf.shape[0]
    for i in prange(pieces):
        lo, hi = nb * i // pieces, nb * (i + 1) // pieces
        conv_dx_direct(w, dzs[lo:hi], s, wp, oh, ow, dxf[lo:hi])


@jit
def add_parts(parts, dw, db):
    """dw (F, C*K*K) and db (F,) (or empty) <- the pieces' sums (pieces, F, C*K*K + 1), added in order."""
    npc, nf, nk1 = parts.shape
    for f in range(nf):
        for q in range(nk1):
            v = 0.0
            for i in range(npc):
                v += parts[i, f, q]
            if q < nk1 - 1:
                dw[f, q] = v
            elif db.size > 0:
                db[f] = v


@jit
def conv_dx_direct(w, dzs, s, wp, oh, ow, dxf):
    """dxf (B', C, Hp*Wp) <- dL/dx of conv_forward_direct, padded, for the B' samples of dzs."""
    nb, nc, _ = dxf.shape
    nf, _, k, _ = w.shape
    nl = (oh - 1) * wp + ow
    for n in range(nb):
        for c in range(nc):
            dxc = dxf[n, c]                                     # (Hp*Wp,)
            fill(dxc, 0.0)
            for f in range(nf):
                for i in range(k):
                    _taps_dx(dxc, dzs[n, f], i * wp, s, w[f, c, i], wp, nl)


# ---------------------------------------------------------------------------------------------
# im2col for the BLAS path

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
def planes_bias_act(z, b, act, n0, wp, y):
    """y[n0 + m, f] <- act(z[f, m] + b[f]) per plane. z (F, nb, OH*wp) wide rows; y (B, F, OH, OW)."""
    nf, m, _ = z.shape
    for mm in range(m):
        for f in range(nf):
            _bias_act_plane(z[f, mm], wp, b[f], act, y[n0 + mm, f])   # (OH, OW)


@jit
def planes_act_backward(y, dy, act, n0, wp, dz):
    """dz[f, m] <- dL/dz for planes n0 + m of y, dy (B, F, OH, OW). dz (F, nb, OH*wp) wide rows;
    act is IDENTITY or RELU."""
    nf, m, _ = dz.shape
    for mm in range(m):
        for f in range(nf):
            _act_backward_plane(y[n0 + mm, f], dy[n0 + mm, f], act, wp, dz[f, mm])
