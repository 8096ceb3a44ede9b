"""Self-attention: the layer and its wrappers; the kernels are in attention_kernels.py.

`SelfAttention` is one causal transformer block (post-norm, like torch's
TransformerEncoderLayer(norm_first=False) without dropout):

    x = proj(x)                 only when dim != input width
    x = x + pos[:T]             learned, sinusoidal or none
    y = norm1(x + MHA(x))       causal mask and key padding mask
    y = norm2(y + ff2(relu(ff1(y))))   only when ff > 0

Parameters use torch.nn.MultiheadAttention's layout (attn.in_proj_weight (3D, D) holds the
query, key and value projections stacked), so torch_module() loads our state_dict unchanged.

Masking: sample b has length n_b = number of True in its mask row (at least 1; padding is on the
right). Query position i attends to keys 0 .. min(i, n_b - 1): the causal mask and the key
padding mask together. Padded queries (i >= n_b) therefore see every real key, exactly what
torch computes, and no row is ever empty, so neither implementation can produce NaN.

With output = "last" only the query at each sample's last real step feeds the output, so the
block is evaluated for that one query (Tq = 1) while keys and values cover all T steps. This
is the same arithmetic torch does for that row; the other T - 1 rows are never computed.

Products are BLAS into preallocated arrays (attention_products: big ones in fixed blocks on the
engine's threads, heads as strided views one call per sample and head); softmax and layer norm
are fused jitted kernels. Shapes: B batch, T steps, Tq query rows
(T, or 1 for "last"), E input width, D = dim, H heads, Dh = D / H, F = ff width.
"""

from __future__ import annotations

import math

import numpy as np

from .activation_kernels import IDENTITY, RELU, bias_act_backward, bias_act_forward
from .arrays import Buffers, aligned_ratio, column_sums, masked_mean_norms
from .attention_kernels import (add_at_last, add_positions, bias_positions, fill_rows, gather_last, masked_softmax,
                                masked_softmax_backward, position_sumsq, sequence_lengths)
from .attention_products import dot, grad_dot, heads_matmul
from .dense import uniform_fan_in
from .errors import SpecError
from .layer import Layer, SpecReader
from .layernorm_kernels import LN_EPS, layernorm_backward, layernorm_forward

POSITIONAL = ("learned", "sinusoidal", "none")
OUTPUTS = ("last", "all")
# work arrays of one layer: about 40 per (B, T), for the training batch, the evaluation batch
# and a short last batch of each
WORK_ARRAYS = 240


# ---------------------------------------------------------------------------------------------
# helpers

def sinusoid_table(n: int, d: int) -> np.ndarray:
    """(n, d) float64 fixed encodings (Vaswani et al. 2017): sin on even columns, cos on odd ones."""
    pos = np.arange(n, dtype=np.float64)[:, None]
    rate = np.exp(np.arange(0, d, 2, dtype=np.float64) * (-math.log(10000.0) / d))
    table = np.zeros((n, d))
    table[:, 0::2] = np.sin(pos * rate)
    table[:, 1::2] = np.cos(pos * rate[: d // 2])
    return table


def split_heads(a: np.ndarray, heads: int) -> np.ndarray:
    """(B, T, D) array or view with a contiguous last axis -> (B, H, T, D/H) view (never a copy)."""
    b, t, d = a.shape
    v = a.reshape(b, t, heads, d // heads).transpose(0, 2, 1, 3)
    assert np.may_share_memory(v, a)   # a reshape that had to copy would make out= writes vanish
    return v


def lengths_of(mask, batch: int, steps: int, out: np.ndarray) -> np.ndarray:
    """Per-sample lengths (B,) from ctx.mask (or all T without one), into out."""
    if mask is None:
        out.fill(steps)
        return out
    mask = np.asarray(mask)
    if mask.shape != (batch, steps):
        raise ValueError(f"mask has shape {mask.shape}, expected {(batch, steps)}")
    sequence_lengths(np.ascontiguousarray(mask, dtype=np.bool_), out)
    return out


# ---------------------------------------------------------------------------------------------
# the layer

class SelfAttention(Layer):
    """A causal transformer block over (B, T, E) sequences; see the module docstring.

    Spec keys: heads [1], dim [input width] (`hidden` is accepted as another name, so a scenario
    can switch a recurrent layer's type to attention), positional ["learned"], max_len [512],
    output ["last"], ff [0 = no feed-forward sublayer].
    """

    kind = "attention"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "attention", {"heads", "dim", "hidden", "positional", "max_len", "output", "ff"})
        if len(in_shape) != 2:
            raise ValueError("attention expects a sequence (T, features); put an embedding layer before token ids")
        self.steps, self.in_width = int(in_shape[0]), int(in_shape[1])
        self.heads = r.int("heads", 1, lo=1)
        self.dim = r.int("dim", self.in_width, lo=1)
        if "hidden" in spec:   # the recurrent layers' word for it, kept when a scenario switches the cell type
            hidden = r.int("hidden", lo=1)
            if "dim" in spec and hidden != self.dim:
                raise SpecError(".hidden", f"is another name for dim; they disagree ({hidden} and {self.dim})")
            self.dim = hidden
        if self.dim % self.heads:
            raise SpecError(".heads", f"must divide dim ({self.dim}), got {self.heads}")
        self.positional = r.choice("positional", POSITIONAL, "learned")
        self.max_len = r.int("max_len", 512, lo=1)
        if self.max_len < self.steps:
            raise SpecError(".max_len", f"must be at least the sequence length {self.steps}, got {self.max_len}")
        self.output = r.choice("output", OUTPUTS, "last")
        # a transformer block carries a feed-forward sublayer; without one, a single layer cannot
        # combine two words (Nile at gap 200: 7 of 8 facts, "largest planet" vs "hottest planet")
        self.ff = r.int("ff", 2 * self.dim, lo=0)
        self.last = self.output == "last"
        self.has_proj = self.dim != self.in_width
        self.out_shape = (self.dim,) if self.last else (self.steps, self.dim)
        self.scale = 1.0 / math.sqrt(self.dim // self.heads)
        self.table = (sinusoid_table(self.max_len, self.dim).astype(self.dtype)
                      if self.positional == "sinusoidal" else None)
        self.buf = Buffers(self.dtype, WORK_ARRAYS)

    def param_shapes(self):
        d, f = self.dim, self.ff
        shapes = {}
        if self.positional == "learned":
            shapes["pos"] = (self.max_len, d)
        if self.has_proj:
            shapes |= {"proj.weight": (d, self.in_width), "proj.bias": (d,)}
        shapes |= {"attn.in_proj_weight": (3 * d, d), "attn.in_proj_bias": (3 * d,),
                   "attn.out_proj.weight": (d, d), "attn.out_proj.bias": (d,),
                   "norm1.weight": (d,), "norm1.bias": (d,)}
        if f:
            shapes |= {"ff1.weight": (f, d), "ff1.bias": (f,), "ff2.weight": (d, f), "ff2.bias": (d,),
                       "norm2.weight": (d,), "norm2.bias": (d,)}
        return shapes

    def init_params(self, p, rng):
        """torch's defaults: Linear U(+-1/sqrt(fan_in)); MHA in_proj Xavier-uniform, biases 0;
        LayerNorm 1 and 0; learned positions N(0, 0.02) (torch has no default; GPT-2's)."""
        d = self.dim
        fan_in = {"proj": self.in_width, "attn.out_proj": d, "ff1": d, "ff2": self.ff}
        for name, view in p.items():
            if name == "pos":
                view[...] = rng.normal(0.0, 0.02, size=view.shape)
            elif name == "attn.in_proj_weight":
                bound = math.sqrt(6.0 / (d + 3 * d))
                view[...] = rng.uniform(-bound, bound, size=view.shape)
            elif name in ("attn.in_proj_bias", "attn.out_proj.bias", "norm1.bias", "norm2.bias"):
                view[...] = 0.0
            elif name in ("norm1.weight", "norm2.weight"):
                view[...] = 1.0
            else:
                view[...] = uniform_fan_in(rng, view.shape, fan_in[name.rsplit(".", 1)[0]], self.dtype)

    # -- forward ---------------------------------------------------------------------------------

    def forward(self, x, ctx):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.in_width:
            raise ValueError(f"attention expects input (B, T, {self.in_width}), got {x.shape}")
        nb, t, _ = x.shape
        if t > self.max_len:
            raise ValueError(f"sequence length {t} is longer than max_len {self.max_len}")
        d, h, tq = self.dim, self.heads, 1 if self.last else t
        p, w = self.p, self.buf
        lens = lengths_of(ctx.mask, nb, t, w.get("lens", (nb,), np.int64))

        # block input: projection and positions
        xe = x
        table = None if self.positional == "none" else p["pos"] if self.positional == "learned" else self.table
        if self.has_proj:
            # bias and positions first, the product added onto them: one pass over (B, T, D) fewer
            xe = w.get("xe", (nb, t, d))
            if table is None:
                fill_rows(xe.reshape(nb * t, d), p["proj.bias"])
            else:
                bias_positions(p["proj.bias"], table, xe)
            dot(x.reshape(nb * t, -1), p["proj.weight"].T, xe.reshape(nb * t, d), beta=1.0)   # (B*T, D)
        elif table is not None:
            out = w.get("xe", (nb, t, d))
            add_positions(xe, table, out)                        # (B, T, D)
            xe = out
        xq = xe
        if self.last:
            xq = w.get("xq", (nb, 1, d))
            gather_last(xe, lens, xq)                            # (B, 1, D)

        # attention
        w_in, b_in = p["attn.in_proj_weight"], p["attn.in_proj_bias"]
        q, kv = w.get("q", (nb, tq, d)), w.get("kv", (nb, t, 2 * d))
        dot(xq.reshape(nb * tq, d), w_in[:d].T, q.reshape(nb * tq, d))       # (B*Tq, D)
        bias_act_forward(q.reshape(nb * tq, d), b_in[:d], IDENTITY, 0.0)
        fill_rows(kv.reshape(nb * t, 2 * d), b_in[d:])
        dot(xe.reshape(nb * t, d), w_in[d:].T, kv.reshape(nb * t, 2 * d), beta=1.0)    # (B*T, 2D)
        q4, k4, v4 = split_heads(q, h), split_heads(kv[:, :, :d], h), split_heads(kv[:, :, d:], h)
        att = w.get("att", (nb, h, tq, t))
        heads_matmul(q4, k4.transpose(0, 1, 3, 2), att)        # (B, H, Tq, T)
        masked_softmax(att, lens, self.last, self.scale)         # (B, H, Tq, T)
        o = w.get("o", (nb, tq, d))
        heads_matmul(att, v4, split_heads(o, h))                # (B, H, Tq, Dh)
        r1 = w.get("r1", (nb * tq, d))
        dot(o.reshape(nb * tq, d), p["attn.out_proj.weight"].T, r1)          # (B*Tq, D)
        bias_act_forward(r1, p["attn.out_proj.bias"], IDENTITY, 0.0)
        np.add(r1, xq.reshape(nb * tq, d), out=r1)               # residual
        y = w.get("y1", (nb * tq, d))
        xhat1, rstd1 = w.get("xhat1", (nb * tq, d)), w.get("rstd1", (nb * tq,))
        layernorm_forward(r1, p["norm1.weight"], p["norm1.bias"], LN_EPS, y, xhat1, rstd1)
        # what backward reads, held here: the cache may start afresh before then
        saved = dict(att=att, q=q, kv=kv, o=o, y1=y, xhat1=xhat1, rstd1=rstd1)

        # feed-forward sublayer
        if self.ff:
            hid, r2 = w.get("hid", (nb * tq, self.ff)), w.get("r2", (nb * tq, d))
            dot(y, p["ff1.weight"].T, hid)                # (B*Tq, F)
            bias_act_forward(hid, p["ff1.bias"], RELU, 0.0)
            dot(hid, p["ff2.weight"].T, r2)               # (B*Tq, D)
            bias_act_forward(r2, p["ff2.bias"], IDENTITY, 0.0)
            np.add(r2, y, out=r2)                                # residual
            y = w.get("y2", (nb * tq, d))
            xhat2, rstd2 = w.get("xhat2", (nb * tq, d)), w.get("rstd2", (nb * tq,))
            layernorm_forward(r2, p["norm2.weight"], p["norm2.bias"], LN_EPS, y, xhat2, rstd2)
            saved |= dict(hid=hid, xhat2=xhat2, rstd2=rstd2)

        self.x, self.xe, self.xq, self.saved, self.lens = x, xe, xq, saved, lens
        return y.reshape((nb, d) if self.last else (nb, t, d))

    # -- backward --------------------------------------------------------------------------------

    def backward(self, dy, ctx):
        x, xe, xq, a, lens = self.x, self.xe, self.xq, self.saved, self.lens
        w = self.buf
        nb, t, _ = x.shape
        d, h, tq = self.dim, self.heads, 1 if self.last else t
        n = nb * tq
        p, g = self.p, self.g
        dy = np.ascontiguousarray(dy, dtype=self.dtype).reshape(n, d)

        # feed-forward sublayer
        if self.ff:
            dr2, dhid, dy1 = w.get("dr2", (n, d)), w.get("dhid", (n, self.ff)), w.get("dy1", (n, d))
            layernorm_backward(dy, a["xhat2"], a["rstd2"], p["norm2.weight"], dr2, g["norm2.weight"], g["norm2.bias"])
            grad_dot(dr2, a["hid"], g["ff2.weight"])          # (D, F)
            column_sums(dr2, g["ff2.bias"])
            dot(dr2, p["ff2.weight"], dhid)               # (B*Tq, F)
            bias_act_backward(a["hid"], dhid, RELU, 0.0, dhid, g["ff1.bias"])
            grad_dot(dhid, a["y1"], g["ff1.weight"])         # (F, D)
            dot(dhid, p["ff1.weight"], dy1)               # (B*Tq, D)
            np.add(dy1, dr2, out=dy1)                            # residual
            dy = dy1

        # norm1, output projection
        dr1, do = w.get("dr1", (n, d)), w.get("do", (nb, tq, d))
        layernorm_backward(dy, a["xhat1"], a["rstd1"], p["norm1.weight"], dr1, g["norm1.weight"], g["norm1.bias"])
        grad_dot(dr1, a["o"].reshape(n, d), g["attn.out_proj.weight"])          # (D, D)
        column_sums(dr1, g["attn.out_proj.bias"])
        dot(dr1, p["attn.out_proj.weight"], do.reshape(n, d))                # (B*Tq, D)

        # attention
        att, q, kv = a["att"], a["q"], a["kv"]
        dq, dkv, datt = w.get("dq", (nb, tq, d)), w.get("dkv", (nb, t, 2 * d)), w.get("datt", (nb, h, tq, t))
        do4, q4 = split_heads(do, h), split_heads(q, h)
        k4, v4 = split_heads(kv[:, :, :d], h), split_heads(kv[:, :, d:], h)
        heads_matmul(do4, v4.transpose(0, 1, 3, 2), datt)      # (B, H, Tq, T)
        heads_matmul(att.transpose(0, 1, 3, 2), do4, split_heads(dkv[:, :, d:], h))   # (B, H, T, Dh)
        masked_softmax_backward(att, datt, self.scale)           # (B, H, Tq, T)
        heads_matmul(datt, k4, split_heads(dq, h))              # (B, H, Tq, Dh)
        heads_matmul(datt.transpose(0, 1, 3, 2), q4, split_heads(dkv[:, :, :d], h))  # (B, H, T, Dh)

        # input projections
        w_in, gw_in, gb_in = p["attn.in_proj_weight"], g["attn.in_proj_weight"], g["attn.in_proj_bias"]
        dq2, dkv2, xe2 = dq.reshape(n, d), dkv.reshape(nb * t, 2 * d), xe.reshape(nb * t, d)
        grad_dot(dq2, xq.reshape(n, d), gw_in[:d])           # (D, D)
        column_sums(dq2, gb_in[:d])
        grad_dot(dkv2, xe2, gw_in[d:])                       # (2D, D)
        column_sums(dkv2, gb_in[d:])
        dxe, dxq = w.get("dxe", (nb, t, d)), w.get("dxq", (nb, tq, d))
        dot(dkv2, w_in[d:], dxe.reshape(nb * t, d))       # (B*T, D)
        dot(dq2, w_in[:d], dxq.reshape(n, d))             # (B*Tq, D)
        np.add(dxq.reshape(n, d), dr1, out=dxq.reshape(n, d))    # residual
        if self.last:
            add_at_last(dxe, lens, dxq)                          # (B, T, D)
        else:
            np.add(dxe, dxq, out=dxe)

        if ctx.want_time_grads:
            norms = np.empty(t)                                  # a fresh (T,): records keep it
            sq = w.get("sq", (t, nb), np.float64)
            position_sumsq(dxe, sq)                              # (T, B)
            masked_mean_norms(sq, lens, norms)
            ctx.time_grad_norms[self.name] = norms
            ratio = np.empty(t)
            aligned_ratio(sq, lens, ratio)
            ctx.time_grad_ratio[self.name] = ratio

        # positions and projection
        if self.positional == "learned":
            gpos = g["pos"]
            column_sums(dxe.reshape(nb, t * d), gpos[:t].reshape(t * d))   # sums over the batch (T*D,)
            gpos[t:] = 0.0
        if not self.has_proj:
            return dxe if self.need_dx else None
        grad_dot(dxe.reshape(nb * t, d), x.reshape(nb * t, -1), g["proj.weight"])   # (D, E)
        column_sums(dxe.reshape(nb * t, d), g["proj.bias"])
        if not self.need_dx:
            return None
        dx = w.get("dx", x.shape)
        dot(dxe.reshape(nb * t, d), p["proj.weight"], dx.reshape(nb * t, -1))      # (B*T, E)
        return dx

    # -- torch -----------------------------------------------------------------------------------

    def torch_module(self):
        import torch
        import torch.nn as nn

        layer = self

        class TorchSelfAttention(nn.Module):
            """The same block from torch parts; forward(x, mask) with mask (B, T) bool, True = real."""

            takes_mask = True

            def __init__(self):
                super().__init__()
                d = layer.dim
                if layer.positional == "learned":
                    self.pos = nn.Parameter(torch.zeros(layer.max_len, d))
                elif layer.positional == "sinusoidal":
                    self.register_buffer("pos", torch.from_numpy(layer.table.copy()),
                                         persistent=False)
                if layer.has_proj:
                    self.proj = nn.Linear(layer.in_width, d)
                self.attn = nn.MultiheadAttention(d, layer.heads, batch_first=True)
                self.norm1 = nn.LayerNorm(d, eps=LN_EPS)
                if layer.ff:
                    self.ff1 = nn.Linear(d, layer.ff)
                    self.ff2 = nn.Linear(layer.ff, d)
                    self.norm2 = nn.LayerNorm(d, eps=LN_EPS)

            def encode(self, x):
                """The block input: projection and positions, (B, T, D)."""
                if layer.has_proj:
                    x = self.proj(x)
                if layer.positional != "none":
                    x = x + self.pos[: x.shape[1]]
                return x

            def block(self, x, mask=None):
                nb, t, _ = x.shape
                causal = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
                pad = None
                if mask is not None:
                    pad = ~mask.to(torch.bool)
                    pad[:, 0] = False                        # an empty sequence counts as one token
                a, _ = self.attn(x, x, x, attn_mask=causal, key_padding_mask=pad, need_weights=False)
                y = self.norm1(x + a)
                if layer.ff:
                    y = self.norm2(y + self.ff2(torch.relu(self.ff1(y))))
                if not layer.last:
                    return y
                if mask is None:
                    return y[:, -1]
                last = mask.to(torch.long).sum(1).clamp(min=1) - 1
                return y[torch.arange(nb, device=y.device), last]

            def forward(self, x, mask=None):
                return self.block(self.encode(x), mask)

        return TorchSelfAttention()
