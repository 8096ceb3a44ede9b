"""A decoder-only transformer language model as one layer: token ids (B, T) -> logits (B, T, V).

    x = wte[ids] + wpe[:T]            token and learned position embeddings
    x = block_k(x), k = 0 .. layers-1 causal blocks (engine/lm_block.py)
    x = ln_f(x)                       pre-norm only (post-norm blocks end normalised)
    logits = x @ head^T               head = wte when tie = true (weight tying)

One layer rather than a stack of layers because of the tying: the head and the embedding
are one tensor, `wte.weight`, held once in the ParamSet and once in the state_dict (the torch
module computes the head with F.linear(x, wte.weight) instead of a second Linear). Names are
nanoGPT's (`wte.weight`, `h.0.attn.c_attn.weight`, `ln_f.weight`, `lm_head.weight` untied).

Spec keys [defaults]: vocab [from the data], layers [4], dim [128], heads [4], ff [4 x dim],
norm ["pre"], activation ["gelu"], bias [false], tie [true], max_len [the input length].
Init is nanoGPT's: N(0, 0.02) for weights and embeddings, the residual projections
(c_proj) N(0, 0.02 / sqrt(2 layers)), biases 0, layer norms 1.
"""

from __future__ import annotations

import math

import numpy as np

from .arrays import Buffers
from .attention_products import dot, grad_dot
from .errors import SpecError
from .layer import Layer, SpecReader
from .layernorm_kernels import LN_EPS, layernorm_backward, layernorm_forward
from .lm_block import Block
from .lm_kernels import embed_backward, embed_forward

NORMS = ("pre", "post")
ACTIVATIONS = ("gelu", "relu")


class TransformerLM(Layer):
    kind = "transformer"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "transformer", {"vocab", "layers", "dim", "hidden", "heads", "ff", "norm",
                                             "activation", "bias", "tie", "max_len"})
        if len(in_shape) != 1:
            raise SpecError(".vocab", f"a transformer language model takes token ids (T,) per sample, "
                                      f"got input of shape {tuple(in_shape)}")
        self.steps = int(in_shape[0])
        self.vocab = r.int("vocab", lo=1)
        self.n_layers = r.int("layers", 4, lo=1, hi=64)
        self.dim = r.int("dim", 128, lo=1)
        if "hidden" in spec:       # the recurrent cells' word, kept when a knob switches the cell type
            self.dim = r.int("hidden", lo=1)
        self.heads = r.int("heads", 4, lo=1)
        if self.dim % self.heads:
            raise SpecError(".heads", f"must divide dim ({self.dim}), got {self.heads}")
        self.ff = r.int("ff", 4 * self.dim, lo=1)
        self.norm = r.choice("norm", NORMS, "pre")
        self.activation = r.choice("activation", ACTIVATIONS, "gelu")
        self.bias = r.bool("bias", False)
        self.tie = r.bool("tie", True)
        self.max_len = r.int("max_len", self.steps, lo=1)
        if self.max_len < self.steps:
            raise SpecError(".max_len", f"must be at least the context {self.steps}, got {self.max_len}")
        self.out_shape = (self.steps, self.vocab)
        self.blocks = [Block(self.dim, self.heads, self.ff, self.norm, self.activation, self.bias, self.dtype)
                       for _ in range(self.n_layers)]
        self.final_norm = self.norm == "pre"
        self.buf = Buffers(self.dtype, 64)
        self._zeros = np.zeros(self.dim, self.dtype)
        self._scratch = np.zeros(self.dim, self.dtype)

    def param_shapes(self):
        d = self.dim
        shapes = {"wte.weight": (self.vocab, d), "wpe.weight": (self.max_len, d)}
        for k, block in enumerate(self.blocks):
            shapes |= {f"h.{k}.{name}": shape for name, shape in block.param_shapes().items()}
        if self.final_norm:
            shapes |= {"ln_f.weight": (d,)} | ({"ln_f.bias": (d,)} if self.bias else {})
        if not self.tie:
            shapes["lm_head.weight"] = (self.vocab, d)
        return shapes

    def init_params(self, p, rng):
        resid = 0.02 / math.sqrt(2 * self.n_layers)
        for name, view in p.items():
            if name.endswith(".bias"):
                view[...] = 0.0
            elif name.startswith(("ln_", "h.")) and ".ln_" in f".{name}":
                view[...] = 1.0
            elif name.endswith("c_proj.weight"):
                view[...] = rng.normal(0.0, resid, size=view.shape)
            else:
                view[...] = rng.normal(0.0, 0.02, size=view.shape)

    def bind(self, p, g):
        super().bind(p, g)
        for k, block in enumerate(self.blocks):
            pre = f"h.{k}."
            block.bind({n[len(pre):]: v for n, v in p.items() if n.startswith(pre)},
                       {n[len(pre):]: v for n, v in g.items() if n.startswith(pre)})

    def eval_floats(self) -> int:
        t, d = self.steps, self.dim
        final = 2 * t * d + t if self.final_norm else 0
        return t * d + sum(b.forward_floats(t) for b in self.blocks) + final + t * self.vocab

    @property
    def head(self) -> str:
        return "wte.weight" if self.tie else "lm_head.weight"

    def forward(self, x, ctx):
        ids = np.ascontiguousarray(x, dtype=np.int64)
        if ids.ndim != 2:
            raise ValueError(f"transformer expects token ids (B, T), got {ids.shape}")
        nb, t = ids.shape
        if t > self.max_len:
            raise ValueError(f"sequence length {t} is longer than max_len {self.max_len}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab):
            raise ValueError(f"token ids must lie in 0..{self.vocab - 1}")
        d, n, w, p = self.dim, nb * t, self.buf, self.p
        h = w.get("emb", (nb, t, d))
        embed_forward(ids, p["wte.weight"], p["wpe.weight"], h)                          # (B, T, D)
        h = h.reshape(n, d)
        for block in self.blocks:
            h = block.forward(h, nb, t)
        z = h
        if self.final_norm:
            z, xhat, rstd = w.get("z", (n, d)), w.get("xhat", (n, d)), w.get("rstd", (n,))
            beta = p["ln_f.bias"] if self.bias else self._zeros
            layernorm_forward(h, p["ln_f.weight"], beta, LN_EPS, z, xhat, rstd)
            self.xhat, self.rstd = xhat, rstd
        logits = w.get("logits", (n, self.vocab))
        dot(z, p[self.head].T, logits)                                            # (N, V)
        self.ids, self.z = ids, z
        return logits.reshape(nb, t, self.vocab)

    def backward(self, dy, ctx):
        nb, t = self.ids.shape
        d, n, w, p, g = self.dim, nb * t, self.buf, self.p, self.g
        dl = np.ascontiguousarray(dy, dtype=self.dtype).reshape(n, self.vocab)
        grad_dot(dl, self.z, g[self.head])                                              # (V, D)
        dz = w.get("dz", (n, d))
        dot(dl, p[self.head], dz)                                                 # (N, D)
        dh = dz
        if self.final_norm:
            dh = w.get("dh", (n, d))
            gb = g["ln_f.bias"] if self.bias else self._scratch
            layernorm_backward(dz, self.xhat, self.rstd, p["ln_f.weight"], dh, g["ln_f.weight"], gb)
        for block in reversed(self.blocks):
            dh = block.backward(dh)
        if not self.tie:
            g["wte.weight"][...] = 0.0
        embed_backward(self.ids, dh.reshape(nb, t, d), g["wte.weight"], g["wpe.weight"])
        return None          # token ids have no gradient

    def torch_module(self):
        return torch_lm(self)


def torch_lm(layer: TransformerLM):
    """The same model from torch parts (F.scaled_dot_product_attention, nn.LayerNorm), same names."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    d, bias = layer.dim, layer.bias

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(d, 3 * d, bias=bias)
            self.c_proj = nn.Linear(d, d, bias=bias)

        def forward(self, x):
            nb, t, _ = x.shape
            q, k, v = self.c_attn(x).split(d, dim=2)
            q, k, v = (a.view(nb, t, layer.heads, d // layer.heads).transpose(1, 2) for a in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(nb, t, d))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(d, layer.ff, bias=bias)
            self.c_proj = nn.Linear(layer.ff, d, bias=bias)
            self.act = nn.GELU(approximate="tanh") if layer.activation == "gelu" else nn.ReLU()

        def forward(self, x):
            return self.c_proj(self.act(self.c_fc(x)))

    class TorchBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(d, eps=LN_EPS, bias=bias)
            self.attn = CausalSelfAttention()
            self.ln_2 = nn.LayerNorm(d, eps=LN_EPS, bias=bias)
            self.mlp = MLP()

        def forward(self, x):
            if layer.norm == "pre":
                x = x + self.attn(self.ln_1(x))
                return x + self.mlp(self.ln_2(x))
            x = self.ln_1(x + self.attn(x))
            return self.ln_2(x + self.mlp(x))

    class TorchLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(layer.vocab, d)
            self.wpe = nn.Embedding(layer.max_len, d)
            self.h = nn.ModuleList([TorchBlock() for _ in range(layer.n_layers)])
            if layer.final_norm:
                self.ln_f = nn.LayerNorm(d, eps=LN_EPS, bias=bias)
            if not layer.tie:
                self.lm_head = nn.Linear(d, layer.vocab, bias=False)

        def forward(self, ids):
            t = ids.shape[1]
            x = self.wte(ids) + self.wpe(torch.arange(t, device=ids.device))
            for block in self.h:
                x = block(x)
            if layer.final_norm:
                x = self.ln_f(x)
            return F.linear(x, self.wte.weight if layer.tie else self.lm_head.weight)

    return TorchLM()
