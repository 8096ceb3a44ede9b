"""Self-attention and layer normalization.

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

Products are BLAS (np.dot / np.matmul into preallocated arrays, heads as strided views);
softmax and layer norm are fused jitted kernels. Shapes: B batch, T steps, Tq query rows
(T, or 1 for "last"), E input width, D = dim, H heads, Dh = D / H, F = ff width.
"""

from __future__ import annotations

import math

import numpy as np

from .activations import IDENTITY, RELU, bias_act_backward, bias_act_forward, column_sums
from .dense import uniform_fan_in
from .errors import SpecError
from .jit import jit
from .layer import Layer, SpecReader

LN_EPS = 1e-5
POSITIONAL = ("learned", "sinusoidal", "none")
OUTPUTS = ("last", "all")


# ---------------------------------------------------------------------------------------------
# kernels

@jit
def layernorm_forward(x, gamma, beta, eps, y, xhat, rstd):
    """y = gamma * xhat + beta, xhat = (x - mean) / sqrt(var + eps) per row. x, y, xhat (N, F); rstd (N,)."""
    n, f = x.shape
    inv_f = 1.0 / f
    for i in range(n):
        m = 0.0
        for j in range(f):
            m += x[i, j]
        m *= inv_f
        v = 0.0
        for j in range(f):
            d = x[i, j] - m
            v += d * d
        r = 1.0 / math.sqrt(v * inv_f + eps)
        rstd[i] = r
        for j in range(f):
            h = (x[i, j] - m) * r                               # (N, F)
            xhat[i, j] = h
            y[i, j] = h * gamma[j] + beta[j]


@jit
def layernorm_backward(dy, xhat, rstd, gamma, dx, dgamma, dbeta):
    """dx (N, F) <- dL/dx; dgamma, dbeta (F,) OVERWRITTEN with their gradients. dx may alias dy."""
    n, f = dy.shape
    inv_f = 1.0 / f
    for j in range(f):
        dgamma[j] = 0.0
        dbeta[j] = 0.0
    for i in range(n):
        a = 0.0
        b = 0.0
        for j in range(f):
            g = dy[i, j] * gamma[j]                             # dL/dxhat (N, F)
            a += g
            b += g * xhat[i, j]
            dgamma[j] += dy[i, j] * xhat[i, j]
            dbeta[j] += dy[i, j]
        a *= inv_f
        b *= inv_f
        r = rstd[i]
        for j in range(f):
            dx[i, j] = r * (dy[i, j] * gamma[j] - a - xhat[i, j] * b)   # (N, F)


@jit
def masked_softmax(s, lens, last, scale):
    """In place: scores s (B, H, Tq, T) -> attention weights.

    Row i of sample b is the query at position q = lens[b] - 1 if last else i; it attends to keys
    0 .. min(q, lens[b] - 1) (causal + key padding). Masked weights are exactly 0.
    """
    nb, nh, tq, t = s.shape
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
                total = 0.0
                for j in range(nk):
                    e = math.exp(row[j] * scale - m)
                    row[j] = e
                    total += e
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
def batch_sums(a, out):
    """out (T, D) <- sums over the batch of a (B, T, D)."""
    nb, t, d = a.shape
    for i in range(t):
        for k in range(d):
            out[i, k] = 0.0
    for b in range(nb):
        for i in range(t):
            for k in range(d):
                out[i, k] += a[b, i, k]


@jit
def position_grad_norms(dx, lens, out):
    """out[t] (T,) <- mean of ||dx[b, t]|| over the samples b with t < lens[b]; 0 where none is that long."""
    nb, t, d = dx.shape
    for i in range(t):
        total = 0.0
        count = 0
        for b in range(nb):
            if i < lens[b]:
                s = 0.0
                for k in range(d):
                    s += dx[b, i, k] * dx[b, i, k]
                total += math.sqrt(s)
                count += 1
        out[i] = total / count if count > 0 else 0.0


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


class Workspace:
    """Work arrays by name for one (B, T): allocated on first use, reused by every later step."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.arrays = {}

    def get(self, name: str, shape: tuple, dtype=None) -> np.ndarray:
        a = self.arrays.get(name)
        if a is None:
            a = self.arrays[name] = np.empty(shape, dtype or self.dtype)
        return a


class Workspaces:
    """One Workspace per (B, T) seen lately (training batch, evaluation batch, a short last batch)."""

    def __init__(self, dtype, keep: int = 6):
        self.dtype, self.keep, self.spaces = dtype, keep, {}

    def __call__(self, key) -> Workspace:
        w = self.spaces.get(key)
        if w is None:
            if len(self.spaces) >= self.keep:
                del self.spaces[next(iter(self.spaces))]     # the oldest
            w = self.spaces[key] = Workspace(self.dtype)
        return w


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
# layers

class LayerNorm(Layer):
    """torch.nn.LayerNorm over the last axis: weight (F,), bias (F,), eps 1e-5."""

    kind = "layernorm"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        SpecReader(spec, "layernorm", set())
        if len(in_shape) == 0:
            raise ValueError("layernorm needs a feature axis")
        self.width = in_shape[-1]
        self.spaces = Workspaces(self.dtype)

    def param_shapes(self):
        return {"weight": (self.width,), "bias": (self.width,)}

    def init_params(self, p, rng):
        p["weight"][...] = 1.0
        p["bias"][...] = 0.0

    def forward(self, x, ctx):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        x2 = x.reshape(-1, self.width)                           # (N, F)
        w = self.spaces(x2.shape)
        y, xhat, rstd = w.get("y", x2.shape), w.get("xhat", x2.shape), w.get("rstd", (x2.shape[0],))
        layernorm_forward(x2, self.p["weight"], self.p["bias"], LN_EPS, y, xhat, rstd)
        self.w = w
        return y.reshape(x.shape)

    def backward(self, dy, ctx):
        w = self.w
        dy2 = np.ascontiguousarray(dy, dtype=self.dtype).reshape(-1, self.width)
        dx = w.get("dx", dy2.shape)
        layernorm_backward(dy2, w.arrays["xhat"], w.arrays["rstd"], self.p["weight"], dx,
                           self.g["weight"], self.g["bias"])
        return dx.reshape(dy.shape) if self.need_dx else None

    def torch_module(self):
        import torch.nn as nn

        return nn.LayerNorm(self.width, eps=LN_EPS)


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
        self.spaces = Workspaces(self.dtype)

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
        p, w = self.p, self.spaces((nb, t))
        lens = lengths_of(ctx.mask, nb, t, w.get("lens", (nb,), np.int64))

        # block input: projection and positions
        xe = x
        if self.has_proj:
            xe = w.get("xe", (nb, t, d))
            np.dot(x.reshape(nb * t, -1), p["proj.weight"].T, out=xe.reshape(nb * t, d))   # (B*T, D)
            bias_act_forward(xe.reshape(nb * t, d), p["proj.bias"], IDENTITY, 0.0)
        if self.positional != "none":
            table = p["pos"] if self.positional == "learned" else self.table
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
        np.dot(xq.reshape(nb * tq, d), w_in[:d].T, out=q.reshape(nb * tq, d))       # (B*Tq, D)
        bias_act_forward(q.reshape(nb * tq, d), b_in[:d], IDENTITY, 0.0)
        np.dot(xe.reshape(nb * t, d), w_in[d:].T, out=kv.reshape(nb * t, 2 * d))    # (B*T, 2D)
        bias_act_forward(kv.reshape(nb * t, 2 * d), b_in[d:], IDENTITY, 0.0)
        q4, k4, v4 = split_heads(q, h), split_heads(kv[:, :, :d], h), split_heads(kv[:, :, d:], h)
        att = w.get("att", (nb, h, tq, t))
        np.matmul(q4, k4.transpose(0, 1, 3, 2), out=att)        # (B, H, Tq, T)
        masked_softmax(att, lens, self.last, self.scale)         # (B, H, Tq, T)
        o = w.get("o", (nb, tq, d))
        np.matmul(att, v4, out=split_heads(o, h))                # (B, H, Tq, Dh)
        r1 = w.get("r1", (nb * tq, d))
        np.dot(o.reshape(nb * tq, d), p["attn.out_proj.weight"].T, out=r1)          # (B*Tq, D)
        bias_act_forward(r1, p["attn.out_proj.bias"], IDENTITY, 0.0)
        np.add(r1, xq.reshape(nb * tq, d), out=r1)               # residual
        y = w.get("y1", (nb * tq, d))
        layernorm_forward(r1, p["norm1.weight"], p["norm1.bias"], LN_EPS, y,
                          w.get("xhat1", (nb * tq, d)), w.get("rstd1", (nb * tq,)))

        # feed-forward sublayer
        if self.ff:
            hid, r2 = w.get("hid", (nb * tq, self.ff)), w.get("r2", (nb * tq, d))
            np.dot(y, p["ff1.weight"].T, out=hid)                # (B*Tq, F)
            bias_act_forward(hid, p["ff1.bias"], RELU, 0.0)
            np.dot(hid, p["ff2.weight"].T, out=r2)               # (B*Tq, D)
            bias_act_forward(r2, p["ff2.bias"], IDENTITY, 0.0)
            np.add(r2, y, out=r2)                                # residual
            y = w.get("y2", (nb * tq, d))
            layernorm_forward(r2, p["norm2.weight"], p["norm2.bias"], LN_EPS, y,
                              w.get("xhat2", (nb * tq, d)), w.get("rstd2", (nb * tq,)))

        self.x, self.xe, self.xq, self.w, self.lens = x, xe, xq, w, lens
        return y.reshape((nb, d) if self.last else (nb, t, d))

    # -- backward --------------------------------------------------------------------------------

    def backward(self, dy, ctx):
        x, xe, xq, w, lens = self.x, self.xe, self.xq, self.w, self.lens
        a = w.arrays
        nb, t, _ = x.shape
        d, h, tq = self.dim, self.heads, 1 if self.last else t
        n = nb * tq
        p, g = self.p, self.g
        dy = np.ascontiguousarray(dy, dtype=self.dtype).reshape(n, d)

        # feed-forward sublayer
        if self.ff:
            dr2, dhid, dy1 = w.get("dr2", (n, d)), w.get("dhid", (n, self.ff)), w.get("dy1", (n, d))
            layernorm_backward(dy, a["xhat2"], a["rstd2"], p["norm2.weight"], dr2, g["norm2.weight"], g["norm2.bias"])
            np.dot(dr2.T, a["hid"], out=g["ff2.weight"])          # (D, F)
            column_sums(dr2, g["ff2.bias"])
            np.dot(dr2, p["ff2.weight"], out=dhid)               # (B*Tq, F)
            bias_act_backward(a["hid"], dhid, RELU, 0.0, dhid, g["ff1.bias"])
            np.dot(dhid.T, a["y1"], out=g["ff1.weight"])         # (F, D)
            np.dot(dhid, p["ff1.weight"], out=dy1)               # (B*Tq, D)
            np.add(dy1, dr2, out=dy1)                            # residual
            dy = dy1

        # norm1, output projection
        dr1, do = w.get("dr1", (n, d)), w.get("do", (nb, tq, d))
        layernorm_backward(dy, a["xhat1"], a["rstd1"], p["norm1.weight"], dr1, g["norm1.weight"], g["norm1.bias"])
        np.dot(dr1.T, a["o"].reshape(n, d), out=g["attn.out_proj.weight"])          # (D, D)
        column_sums(dr1, g["attn.out_proj.bias"])
        np.dot(dr1, p["attn.out_proj.weight"], out=do.reshape(n, d))                # (B*Tq, D)

        # attention
        att, q, kv = a["att"], a["q"], a["kv"]
        dq, dkv, datt = w.get("dq", (nb, tq, d)), w.get("dkv", (nb, t, 2 * d)), w.get("datt", (nb, h, tq, t))
        do4, q4 = split_heads(do, h), split_heads(q, h)
        k4, v4 = split_heads(kv[:, :, :d], h), split_heads(kv[:, :, d:], h)
        np.matmul(do4, v4.transpose(0, 1, 3, 2), out=datt)      # (B, H, Tq, T)
        np.matmul(att.transpose(0, 1, 3, 2), do4, out=split_heads(dkv[:, :, d:], h))   # (B, H, T, Dh)
        masked_softmax_backward(att, datt, self.scale)           # (B, H, Tq, T)
        np.matmul(datt, k4, out=split_heads(dq, h))              # (B, H, Tq, Dh)
        np.matmul(datt.transpose(0, 1, 3, 2), q4, out=split_heads(dkv[:, :, :d], h))  # (B, H, T, Dh)

        # input projections
        w_in, gw_in, gb_in = p["attn.in_proj_weight"], g["attn.in_proj_weight"], g["attn.in_proj_bias"]
        dq2, dkv2, xe2 = dq.reshape(n, d), dkv.reshape(nb * t, 2 * d), xe.reshape(nb * t, d)
        np.dot(dq2.T, xq.reshape(n, d), out=gw_in[:d])           # (D, D)
        column_sums(dq2, gb_in[:d])
        np.dot(dkv2.T, xe2, out=gw_in[d:])                       # (2D, D)
        column_sums(dkv2, gb_in[d:])
        dxe, dxq = w.get("dxe", (nb, t, d)), w.get("dxq", (nb, tq, d))
        np.dot(dkv2, w_in[d:], out=dxe.reshape(nb * t, d))       # (B*T, D)
        np.dot(dq2, w_in[:d], out=dxq.reshape(n, d))             # (B*Tq, D)
        np.add(dxq.reshape(n, d), dr1, out=dxq.reshape(n, d))    # residual
        if self.last:
            add_at_last(dxe, lens, dxq)                          # (B, T, D)
        else:
            np.add(dxe, dxq, out=dxe)

        if ctx.want_time_grads:
            norms = np.empty(t)                                  # a fresh (T,): records keep it
            position_grad_norms(dxe, lens, norms)
            ctx.time_grad_norms[self.name] = norms

        # positions and projection
        if self.positional == "learned":
            gpos = g["pos"]
            batch_sums(dxe, gpos[:t])                            # (T, D)
            gpos[t:] = 0.0
        if not self.has_proj:
            return dxe if self.need_dx else None
        np.dot(dxe.reshape(nb * t, d).T, x.reshape(nb * t, -1), out=g["proj.weight"])   # (D, E)
        column_sums(dxe.reshape(nb * t, d), g["proj.bias"])
        if not self.need_dx:
            return None
        dx = w.get("dx", x.shape)
        np.dot(dxe.reshape(nb * t, d), p["proj.weight"], out=dx.reshape(nb * t, -1))      # (B*T, E)
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
