"""Conv2d: the layer, and the wrappers that check shapes, hold buffers and pick a kernel path.

The kernels and the wide-row layout they share are described in conv_kernels.py.
"""

from __future__ import annotations

import numpy as np

from .activation_kernels import CODES, IDENTITY, RELU, SOFTMAX, act_backward, bias_act_forward
from . import products, threads
from .activations import torch_activation
from .arrays import CONV_LANES, Buffers
from .conv_kernels import (add_parts, col2im, conv_dx_direct, conv_dx_pieces, conv_forward_direct,
                           conv_forward_direct3, conv_forward_pieces, conv_forward_pieces3, conv_wgrads_part,
                           conv_wgrads_part3, conv_wgrads_pieces, conv_wgrads_pieces3, dz_dense, dz_dense_pieces,
                           dz_winners, dz_winners_pieces, im2col, pad_images, planes_act_backward, planes_bias_act)
from .dense import uniform_fan_in
from .errors import SpecError
from .layer import Layer, SpecReader

# C*K*K up to these uses the direct kernels, above them im2col + BLAS (measured on the 2-core
# EPYC, one BLAS thread: the direct backward only wins for a 3x3 kernel on one channel)
FORWARD_DIRECT_MAX_TAPS = 40
BACKWARD_DIRECT_MAX_TAPS = 9
GEMM_CHUNK = 1 << 22          # elements of the im2col buffer per batch chunk (16 MiB in float32)
PIECE = 8                     # samples per batch piece of the direct kernels, at least
MAX_PIECES = 4


def batch_pieces(nb: int) -> int:
    """Batch pieces of the direct kernels: the batch size decides, never the thread count, since
    the weight gradients are summed per piece and the pieces added in order (same bits on one
    thread and two). Up to 4, so that two threads share them evenly."""
    return max(1, min(MAX_PIECES, nb // PIECE))


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
    fused = act if act in (IDENTITY, RELU) else IDENTITY    # the kernels add the bias and apply these two
    cols = None
    if _direct(path, nk, FORWARD_DIRECT_MAX_TAPS):
        pieces, three = batch_pieces(nb), k == 3 and stride == 1
        if threads.pieces_threads(pieces) > 1:     # every sample on its own: any cut gives the same bits
            drive = conv_forward_pieces3 if three else conv_forward_pieces
            drive(xf, w, b, stride, wp, fused, buf.get("accs", (pieces, 2, nl)), y)
        elif three:
            conv_forward_direct3(xf, w, b, wp, fused, buf.get("acc", (2, nl)), y)
        else:
            conv_forward_direct(xf, w, b, stride, wp, fused, buf.get("acc", (2, nl)), y)
    else:
        w2 = w.reshape(nf, nk)                                      # (F, C*K*K)
        for n0, m in _chunks(nb, nk * oh * wp):
            cols = buf.get("cols", (nk, m, oh * wp))
            z = buf.get("z", (nf, m, oh * wp))
            im2col(xf, k, stride, wp, nl, n0, cols)
            products.matmul(w2, cols.reshape(nk, -1), z.reshape(nf, -1))    # (F, m*OH*Wp)
            planes_bias_act(z, b, fused, n0, wp, y)
    if act != fused:      # softmax over each row of a plane, as torch's Softmax(dim=-1); the rest per element
        bias_act_forward(y.reshape(-1, ow) if act == SOFTMAX else y.reshape(nb, -1), b[:0], act, slope)
    return y, (xp, cols if cols is not None and cols.shape[1] == nb else None)


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
    use_winners = winners is not None and act in (IDENTITY, RELU)
    if act not in (IDENTITY, RELU):     # dy becomes dz here: the kernels below take identity and ReLU only
        dz_act = buf.get("dz_act", y.shape)
        rows = (-1, ow) if act == SOFTMAX else (nb, -1)
        act_backward(y.reshape(rows), dy.reshape(rows), act, slope, dz_act.reshape(rows))
        dy, act = dz_act, IDENTITY
    dxp = buf.get("dxp", xp.shape) if need_dx else None
    dxf = dxp.reshape(nb, nc, hp * wp) if need_dx else buf.get("none", (0, 0, 0))
    if _direct(path, nk, BACKWARD_DIRECT_MAX_TAPS):
        dzs = buf.get("dzs", (nb, nf, (oh + 2) * wp))
        dyp, outp, arg = winners if use_winners else (y, y, buf.get("noarg", (0, 0, 0, 0), np.int32))
        pieces = batch_pieces(nb)
        ts, parts = buf.get("ts", (pieces, nk + 1, nl)), buf.get("parts", (pieces, nf, nk + 1), np.float64)
        lanes = buf.get("lanes", (pieces, CONV_LANES), np.float64)
        three = k == 3 and stride == 1
        if threads.pieces_threads(pieces) > 1:     # the same steps, each on Numba's threads
            if use_winners:
                dz_winners_pieces(dyp, outp, arg, act, ow, wp, dzs, pieces)
            else:
                dz_dense_pieces(y, dy, act, wp, dzs, pieces)
            wgrads = conv_wgrads_pieces3 if three else conv_wgrads_pieces
            wgrads(xf, dzs, stride, wp, oh, ow, k, ts, lanes, parts)
            if need_dx:
                conv_dx_pieces(w, dzs, stride, wp, oh, ow, dxf, pieces)
        else:
            # each step's kernel called from here, so that only the kernels this model uses
            # compile (a first run: 2.3 s less for a ReLU conv under a pool)
            for i in range(pieces):
                lo, hi = nb * i // pieces, nb * (i + 1) // pieces
                if use_winners:
                    dz_winners(dyp[lo:hi], outp[lo:hi], arg[lo:hi], act, ow, wp, dzs[lo:hi])
                else:
                    dz_dense(y[lo:hi], dy[lo:hi], act, wp, dzs[lo:hi])
                if three:
                    conv_wgrads_part3(xf[lo:hi], dzs[lo:hi], stride, wp, oh, ow, k, ts[i], lanes[i], parts[i])
                else:
                    conv_wgrads_part(xf[lo:hi], dzs[lo:hi], stride, wp, oh, ow, k, ts[i], lanes[i], parts[i])
                if need_dx:
                    conv_dx_direct(w, dzs[lo:hi], stride, wp, oh, ow, dxf[lo:hi])
        add_parts(parts, dw.reshape(nf, nk), db)
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
            planes_act_backward(y, dy, act, n0, wp, dz)
            dz2 = dz.reshape(nf, -1)                            # (F, m*OH*Wp)
            products.matmul(dz2, cols2.T, dw2, beta=0.0 if n0 == 0 else 1.0)     # (F, C*K*K)
            if db.size and n0 == 0:
                np.sum(dz2, axis=1, out=db)
            elif db.size:
                db += np.sum(dz2, axis=1, out=buf.get("db", db.shape))
            if need_dx:
                dcols = buf.get("dcols", cols.shape)
                products.matmul(w2.T, dz2, dcols.reshape(nk, -1))                # (C*K*K, m*OH*Wp)
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


def image_shape(in_shape, kind: str, key: str) -> tuple:
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
        c, h, w = image_shape(in_shape, "conv2d", ".filters")
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

    def reads_winners(self) -> bool:
        """Whether a max-pool right above makes its backward read the pool's winners, not dy."""
        return self.act in (IDENTITY, RELU) and _direct("auto", self.fan_in, BACKWARD_DIRECT_MAX_TAPS)

    def forward(self, x, ctx):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        b = self.p["bias"] if self.has_bias else self._no_bias
        self.y, self.saved = conv2d_forward(x, self.p["weight"], b, self.stride, self.padding, self.act,
                                            self.slope, self.buf)
        return self.y

    def backward(self, dy, ctx):
        pool = getattr(dy, "pool", None)
        winners = (pool.dy, pool.y, pool.arg) if pool is not None and pool.x_in is self.y else None
        if pool is not None and not dy.filled and (winners is None or not self.reads_winners()):
            pool.fill(dy)                   # the pool left dy to the winners, and they don't apply here
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
