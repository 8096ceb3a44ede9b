"""One causal transformer block of the language model (engine/lm.py), forward and backward.

    pre-norm (GPT-2, nanoGPT):   x = x + attn(ln_1(x));   x = x + mlp(ln_2(x))
    post-norm (Vaswani, and engine/attention.py's block):
                                 x = ln_1(x + attn(x));   x = ln_2(x + mlp(x))

attn is causal multi-head self-attention (c_attn: the stacked query, key and value projection;
c_proj: the output projection), mlp is c_fc, GELU (tanh form) or ReLU, c_proj. Parameter
names are nanoGPT's (`ln_1.weight`, `attn.c_attn.weight`, `mlp.c_fc.weight`, ...), biases only
with bias = true (nanoGPT's bias=False leaves even the layer norms without one).

Every sequence is full length (a language model's windows have no padding), so the mask is
the causal one alone. Shapes: B batch, T steps, D width, H heads, Dh = D / H, F = MLP width,
N = B * T rows.
"""

from __future__ import annotations

import math

import numpy as np

from .activation_kernels import IDENTITY, RELU, act_backward, bias_act_forward
from .arrays import Buffers, column_sums
from .attention import split_heads
from .attention_kernels import masked_softmax, masked_softmax_backward
from .attention_products import dot, grad_dot, heads_matmul
from .layernorm_kernels import LN_EPS, layernorm_backward, layernorm_forward
from .lm_kernels import gelu_backward, gelu_forward

WORK_ARRAYS = 200     # about 35 arrays a shape: training, evaluation and generation windows


class Block:
    """Holds views of its parameters (`bind`) and what backward needs from forward."""

    def __init__(self, dim: int, heads: int, ff: int, norm: str, activation: str, bias: bool, dtype):
        self.d, self.h, self.f = dim, heads, ff
        self.pre, self.gelu, self.bias = norm == "pre", activation == "gelu", bias
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.dtype = np.dtype(dtype)
        self.fast = self.dtype == np.float32
        self.buf = Buffers(self.dtype, WORK_ARRAYS)
        self._empty = np.zeros(0, self.dtype)
        self._zeros = np.zeros(dim, self.dtype)              # the bias of a bias-free layer norm
        self._scratch = np.zeros(dim, self.dtype)            # its (unused) gradient

    def param_shapes(self) -> dict[str, tuple]:
        d, f, b = self.d, self.f, self.bias
        shapes = {"ln_1.weight": (d,)} | ({"ln_1.bias": (d,)} if b else {})
        shapes |= {"attn.c_attn.weight": (3 * d, d)} | ({"attn.c_attn.bias": (3 * d,)} if b else {})
        shapes |= {"attn.c_proj.weight": (d, d)} | ({"attn.c_proj.bias": (d,)} if b else {})
        shapes |= {"ln_2.weight": (d,)} | ({"ln_2.bias": (d,)} if b else {})
        shapes |= {"mlp.c_fc.weight": (f, d)} | ({"mlp.c_fc.bias": (f,)} if b else {})
        shapes |= {"mlp.c_proj.weight": (d, f)} | ({"mlp.c_proj.bias": (d,)} if b else {})
        return shapes

    def bind(self, p: dict, g: dict) -> None:
        self.p, self.g = p, g

    def forward_floats(self, t: int) -> int:
        """Floats `forward` takes from its buffers for one window of t steps (pre- and post-norm
        alike): ten (T, D) arrays, two norms' 1/std, the (H, T, T) attention, and the MLP's
        (T, F) input and, for GELU, its output (ReLU works in place)."""
        return 10 * t * self.d + 2 * t + self.h * t * t + (2 if self.gelu else 1) * t * self.f

    def _b(self, name: str) -> np.ndarray:
        return self.p[name] if self.bias else self._empty

    def _ln(self, x, name, out, xhat, rstd):
        beta = self.p[f"{name}.bias"] if self.bias else self._zeros
        layernorm_forward(x, self.p[f"{name}.weight"], beta, LN_EPS, out, xhat, rstd)

    def _ln_back(self, dy, xhat, rstd, name, dx):
        gb = self.g[f"{name}.bias"] if self.bias else self._scratch
        layernorm_backward(dy, xhat, rstd, self.p[f"{name}.weight"], dx, self.g[f"{name}.weight"], gb)

    # -- forward ------------------------------------------------------------------------------------

    def forward(self, x: np.ndarray, nb: int, t: int) -> np.ndarray:
        """x (N, D) contiguous -> a new (N, D) (a buffer of this block's)."""
        d, f, n, w, p = self.d, self.f, nb * t, self.buf, self.p
        s = {"x": x}
        a = x
        if self.pre:
            a, s["xhat1"], s["rstd1"] = w.get("a", (n, d)), w.get("xhat1", (n, d)), w.get("rstd1", (n,))
            self._ln(x, "ln_1", a, s["xhat1"], s["rstd1"])
        s["a"] = a
        qkv = w.get("qkv", (nb, t, 3 * d))
        dot(a, p["attn.c_attn.weight"].T, qkv.reshape(n, 3 * d))                # (N, 3D)
        if self.bias:
            bias_act_forward(qkv.reshape(n, 3 * d), p["attn.c_attn.bias"], IDENTITY, 0.0)
        q4, k4, v4 = (split_heads(qkv[:, :, i * d:(i + 1) * d], self.h) for i in range(3))
        att = w.get("att", (nb, self.h, t, t))
        heads_matmul(q4, k4.transpose(0, 1, 3, 2), att)                                # (B, H, T, T)
        lens = w.get("lens", (nb,), np.int64)
        lens.fill(t)
        masked_softmax(att, lens, False, self.scale)
        o = w.get("o", (nb, t, d))
        heads_matmul(att, v4, split_heads(o, self.h))                                  # (B, H, T, Dh)
        r = w.get("r1", (n, d))
        dot(o.reshape(n, d), p["attn.c_proj.weight"].T, r)                       # (N, D)
        if self.bias:
            bias_act_forward(r, p["attn.c_proj.bias"], IDENTITY, 0.0)
        np.add(r, x, out=r)                                                              # residual
        x1 = r
        if not self.pre:
            x1, s["xhat1"], s["rstd1"] = w.get("x1", (n, d)), w.get("xhat1", (n, d)), w.get("rstd1", (n,))
            self._ln(r, "ln_1", x1, s["xhat1"], s["rstd1"])
        s |= {"qkv": qkv, "att": att, "o": o, "x1": x1}

        m = x1
        if self.pre:
            m, s["xhat2"], s["rstd2"] = w.get("m", (n, d)), w.get("xhat2", (n, d)), w.get("rstd2", (n,))
            self._ln(x1, "ln_2", m, s["xhat2"], s["rstd2"])
        s["m"] = m
        u = w.get("u", (n, f))
        dot(m, p["mlp.c_fc.weight"].T, u)                                         # (N, F)
        if self.gelu:
            if self.bias:
                bias_act_forward(u, p["mlp.c_fc.bias"], IDENTITY, 0.0)
            hid = w.get("hid", (n, f))
            gelu_forward(u, hid, self.fast)
            s["u"] = u
        else:
            bias_act_forward(u, self._b("mlp.c_fc.bias"), RELU, 0.0)
            hid = u
        s["hid"] = hid
        r2 = w.get("r2", (n, d))
        dot(hid, p["mlp.c_proj.weight"].T, r2)                                   # (N, D)
        if self.bias:
            bias_act_forward(r2, p["mlp.c_proj.bias"], IDENTITY, 0.0)
        np.add(r2, x1, out=r2)
        y = r2
        if not self.pre:
            y, s["xhat2"], s["rstd2"] = w.get("y", (n, d)), w.get("xhat2", (n, d)), w.get("rstd2", (n,))
            self._ln(r2, "ln_2", y, s["xhat2"], s["rstd2"])
        self.saved, self.shape = s, (nb, t)
        return y

    # -- backward -----------------------------------------------------------------------------------

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy (N, D) -> dx (N, D) (a buffer of this block's); overwrites this block's gradients."""
        s, (nb, t) = self.saved, self.shape
        d, f, n, w, p, g = self.d, self.f, nb * t, self.buf, self.p, self.g

        # MLP
        dr2 = dy
        if not self.pre:
            dr2 = w.get("dr2", (n, d))
            self._ln_back(dy, s["xhat2"], s["rstd2"], "ln_2", dr2)
        grad_dot(dr2, s["hid"], g["mlp.c_proj.weight"])                              # (D, F)
        if self.bias:
            column_sums(dr2, g["mlp.c_proj.bias"])
        du = w.get("du", (n, f))
        dot(dr2, p["mlp.c_proj.weight"], du)                                      # (N, F)
        if self.gelu:
            dhid, du = du, w.get("du2", (n, f))
            gelu_backward(s["u"], dhid, du, self.fast)   # out of place: in place it did not vectorise (7x slower)
        else:
            act_backward(s["hid"], du, RELU, 0.0, du)
        grad_dot(du, s["m"], g["mlp.c_fc.weight"])                                   # (F, D)
        if self.bias:
            column_sums(du, g["mlp.c_fc.bias"])
        dx1 = w.get("dx1", (n, d))
        dot(du, p["mlp.c_fc.weight"], dx1)                                        # (N, D) via m
        if self.pre:
            dm = dx1
            dx1 = w.get("dx1b", (n, d))
            self._ln_back(dm, s["xhat2"], s["rstd2"], "ln_2", dx1)
        np.add(dx1, dr2, out=dx1)                                                        # residual

        # attention
        dr1 = dx1
        if not self.pre:
            dr1 = w.get("dr1", (n, d))
            self._ln_back(dx1, s["xhat1"], s["rstd1"], "ln_1", dr1)
        o = s["o"]
        grad_dot(dr1, o.reshape(n, d), g["attn.c_proj.weight"])                     # (D, D)
        if self.bias:
            column_sums(dr1, g["attn.c_proj.bias"])
        do = w.get("do", (nb, t, d))
        dot(dr1, p["attn.c_proj.weight"], do.reshape(n, d))                      # (N, D)
        att, qkv = s["att"], s["qkv"]
        q4, k4, v4 = (split_heads(qkv[:, :, i * d:(i + 1) * d], self.h) for i in range(3))
        dqkv = w.get("dqkv", (nb, t, 3 * d))
        dq4, dk4, dv4 = (split_heads(dqkv[:, :, i * d:(i + 1) * d], self.h) for i in range(3))
        do4 = split_heads(do, self.h)
        datt = w.get("datt", (nb, self.h, t, t))
        heads_matmul(do4, v4.transpose(0, 1, 3, 2), datt)                              # (B, H, T, T)
        heads_matmul(att.transpose(0, 1, 3, 2), do4, dv4)                              # (B, H, T, Dh)
        masked_softmax_backward(att, datt, self.scale)
        heads_matmul(datt, k4, dq4)
        heads_matmul(datt.transpose(0, 1, 3, 2), q4, dk4)
        dqkv2 = dqkv.reshape(n, 3 * d)
        grad_dot(dqkv2, s["a"], g["attn.c_attn.weight"])                            # (3D, D)
        if self.bias:
            column_sums(dqkv2, g["attn.c_attn.bias"])
        da = w.get("da", (n, d))
        dot(dqkv2, p["attn.c_attn.weight"], da)                                  # (N, D)
        if self.pre:
            dx = w.get("dx", (n, d))
            self._ln_back(da, s["xhat1"], s["rstd1"], "ln_1", dx)
            np.add(dx, dr1, out=dx)                                                      # residual
            return dx
        np.add(da, dr1, out=da)
        return da
