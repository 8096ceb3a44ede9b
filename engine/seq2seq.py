"""An encoder-decoder (seq2seq) layer, with or without attention: `type = "seq2seq"`.

    { type = "seq2seq", cell = "gru", hidden = 128, embed = 64, attention = "additive" }

The input. The Net has one input, so a sample is one row of token ids laid out as
    x = [source ids, padded to S | decoder input: BOS, target ids, padded to W - S]
with the mask (B, W) True at the real tokens of each half (each half right-padded). S is
`source_len`, by default W // 2, which is the layout of the generated tasks (engine/data/reverse.py:
the target is as long as the source plus EOS, W = 2 S + 1). The labels are the target ids
followed by EOS, one per decoder step, IGNORE (-100) at padding: the per-token cross-entropy.
Output: logits (B, T, V), T = W - S. Source and target share one embedding (one vocabulary).

The model (Cho et al. 2014's RNN Encoder-Decoder, plus attention):
  encoder: an RNN, GRU or LSTM over the embedded source (masked, as packed sequences); its
           state at the last real token is the context vector c (the bottleneck);
  decoder: the same kind of cell over [embed(y_{t-1}); c] at every step, from a zero state;
  attention (optional): the decoder state s_t scores every encoder state h_j, dot-product
           (Luong) or additive (Bahdanau: v . tanh(W_q s_t + W_k h_j)); the weights give the
           context c_t = sum_j a_tj h_j; the head reads [s_t; c_t] (Luong's placement: attention
           after the decoder step, not fed back into it, so the decoder runs as one sequence);
  head: logits = W_o tanh(W_c [s_t; c_t] + b_c) + b_o.
In training the decoder reads the given target (teacher forcing). In evaluation (ctx.train False)
the decoder input after BOS is ignored: `decode` feeds back its own argmax (greedy), so
evaluation metrics are those of free-running output; `decode(..., temperature=T, seed=s)` samples.
After every forward in evaluation, `weights` holds the attention matrix (B, T, S) (None without).

Parameter names are the torch module's (engine/seq2seq_torch.py): embedding.weight,
encoder.weight_ih_l0 ... (nn.GRU named encoder), decoder.*, attention.query/key/v.weight
(additive only), combine.weight/bias, out.weight/bias. The recurrent kernels are engine/recurrent's.
"""

from __future__ import annotations

import numpy as np

from .dense import uniform_fan_in
from .errors import SpecError
from .layer import Context, Layer, SpecReader
from .recurrent import GRU, LSTM, RNN, lengths_from_mask
from .recurrent_kernels import id_range, scatter_add_rows
from .seq2seq_attention import attend, attend_backward, cell_step, head, head_backward, keys

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
ATTENTIONS = ("none", "additive", "dot")


class Seq2Seq(Layer):
    kind = "seq2seq"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "seq2seq", {"cell", "hidden", "embed", "vocab", "attention", "attention_dim",
                                          "combine", "source_len"})
        self.cell = r.choice("cell", tuple(CELLS), "gru")
        self.hidden = H = r.int("hidden", 128, lo=1)
        self.embed = E = r.int("embed", 64, lo=1)
        self.vocab = r.int("vocab", lo=2)
        self.attention = r.choice("attention", ATTENTIONS, "none")
        self.attention_dim = r.int("attention_dim", H, lo=1)
        self.combine = r.int("combine", H, lo=1)
        if len(in_shape) != 1 or in_shape[0] < 2:
            raise SpecError(".type", f"seq2seq expects token ids [source | decoder input] (W,) per sample, got "
                                     f"input of shape {tuple(in_shape)}; use it on a seq2seq data source")
        W = in_shape[0]
        self.S = r.int("source_len", W // 2, lo=1, hi=W - 1)
        self.T = W - self.S
        cls = CELLS[self.cell]
        self.encoder = cls({"hidden": H, "output": "all"}, (self.S, E), dtype)
        self.decoder = cls({"hidden": H, "output": "all"}, (self.T, E + H), dtype)
        self.features = 2 * H if self.attention != "none" else H
        self.out_shape = (self.T, self.vocab)
        self.weights = None
        self._name = ""

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        self._name = value
        self.encoder.name = f"{value}.encoder" if value else "encoder"
        self.decoder.name = f"{value}.decoder" if value else "decoder"

    # parameters ------------------------------------------------------------------------------
    def param_shapes(self):
        H, A = self.hidden, self.attention_dim
        shapes = {"embedding.weight": (self.vocab, self.embed)}
        for prefix, part in (("encoder", self.encoder), ("decoder", self.decoder)):
            shapes |= {f"{prefix}.{k}": s for k, s in part.param_shapes().items()}
        if self.attention == "additive":
            shapes |= {"attention.query.weight": (A, H), "attention.key.weight": (A, H), "attention.v.weight": (1, A)}
        return shapes | {"combine.weight": (self.combine, self.features), "combine.bias": (self.combine,),
                         "out.weight": (self.vocab, self.combine), "out.bias": (self.vocab,)}

    @staticmethod
    def _part(views: dict, prefix: str) -> dict:
        return {k[len(prefix) + 1:]: v for k, v in views.items() if k.startswith(prefix + ".")}

    def init_params(self, p, rng):
        p["embedding.weight"][...] = rng.standard_normal(p["embedding.weight"].shape)      # nn.Embedding's N(0, 1)
        self.encoder.init_params(self._part(p, "encoder"), rng)
        self.decoder.init_params(self._part(p, "decoder"), rng)
        for name, view in p.items():
            if not name.startswith(("embedding.", "encoder.", "decoder.")):             # nn.Linear's default
                fan_in = view.shape[1] if view.ndim == 2 else p[name.replace("bias", "weight")].shape[1]
                view[...] = uniform_fan_in(rng, view.shape, fan_in, self.dtype)

    def bind(self, p, g):
        super().bind(p, g)
        self.encoder.bind(self._part(p, "encoder"), self._part(g, "encoder"))
        self.decoder.bind(self._part(p, "decoder"), self._part(g, "decoder"))

    # forward ---------------------------------------------------------------------------------
    def _split(self, x, mask):
        ids = np.ascontiguousarray(x, dtype=np.int64)
        if ids.ndim != 2 or ids.shape[1] != self.S + self.T:
            raise ValueError(f"seq2seq expects (batch, {self.S + self.T}) token ids, got {ids.shape}")
        if ids.size:
            lo, hi = id_range(ids)
            if lo < 0 or hi >= self.vocab:
                raise ValueError(f"token id {lo if lo < 0 else hi} outside the vocabulary 0..{self.vocab - 1}")
        B = len(ids)
        smask = np.ones((B, self.S), bool) if mask is None else np.asarray(mask, bool)[:, :self.S]
        lengths = lengths_from_mask(smask, B, self.S)
        return ids[:, :self.S], ids[:, self.S:], smask, lengths

    def _encode(self, src, smask, lengths, ctx):
        sub = Context(train=ctx.train, rng=ctx.rng, mask=smask, want_time_grads=ctx.want_time_grads,
                      time_grad_norms=ctx.time_grad_norms, time_grad_ratio=ctx.time_grad_ratio)
        K = self.encoder.forward(self.p["embedding.weight"][src], sub)            # (B, S, H), 0 at padding
        last = np.maximum(lengths - 1, 0)
        c = K[np.arange(len(src)), last] * (lengths > 0)[:, None]                  # (B, H) the context vector
        return K, c, last, sub

    def forward(self, x, ctx):
        if not ctx.train:
            return self.decode(x, ctx.mask)[1]
        src, tin, smask, lengths = self._split(x, ctx.mask)
        B, T, E = len(src), self.T, self.embed
        K, c, last, enc_ctx = self._encode(src, smask, lengths, ctx)
        din = np.empty((B, T, E + self.hidden), self.dtype)
        din[..., :E] = self.p["embedding.weight"][tin]
        din[..., E:] = c[:, None, :]
        dec_ctx = Context(train=True, rng=ctx.rng, mask=None, want_time_grads=ctx.want_time_grads,
                          time_grad_norms=ctx.time_grad_norms, time_grad_ratio=ctx.time_grad_ratio)
        S = self.decoder.forward(din, dec_ctx)                                     # (B, T, H)
        if self.attention == "none":
            feat, a, cache = S, None, None
        else:
            cv, a, cache = attend(self.attention, self.p, S, K, smask)
            feat = np.concatenate([S, cv], axis=-1)
        logits, u = head(self.p, feat)
        self.saved = (src, tin, smask, lengths, last, K, S, a, cache, feat, u, enc_ctx, dec_ctx)
        return logits

    def backward(self, dy, ctx):
        src, tin, smask, lengths, last, K, S, a, cache, feat, u, enc_ctx, dec_ctx = self.saved
        p, g, H, E = self.p, self.g, self.hidden, self.embed
        dfeat = head_backward(p, g, feat, u, np.asarray(dy, self.dtype))
        dS = np.ascontiguousarray(dfeat[..., :H])
        if self.attention == "none":
            dK = np.zeros_like(K)
        else:
            dS2, dK = attend_backward(self.attention, p, g, S, K, a, cache, dfeat[..., H:])
            dS += dS2
        ddin = self.decoder.backward(dS, dec_ctx)                                   # (B, T, E + H)
        dK[np.arange(len(src)), last] += ddin[..., E:].sum(axis=1) * (lengths > 0)[:, None]
        des = self.encoder.backward(dK, enc_ctx)                                    # (B, S, E)
        ids = np.concatenate([src.reshape(-1), tin.reshape(-1)])
        scatter_add_rows(ids, np.concatenate([des.reshape(-1, E), ddin[..., :E].reshape(-1, E)]),
                         g["embedding.weight"])
        return None

    # decoding --------------------------------------------------------------------------------
    def decode(self, x, mask=None, temperature: float = 0.0, seed: int | None = None):
        """(tokens (B, T) int64, logits (B, T, V), attention weights (B, T, S) or None), feeding
        each step's token back in: the argmax (temperature <= 0) or a draw from
        softmax(logits / temperature) with numpy's Generator seeded by `seed`."""
        src, tin, smask, lengths = self._split(x, mask)
        B, T, V = len(src), self.T, self.vocab
        ctx = Context(train=False, want_time_grads=False)
        K, c, _, _ = self._encode(src, smask, lengths, ctx)
        K = np.array(K, copy=True)
        emb, d = self.p["embedding.weight"], self.decoder.p
        w = (d["weight_ih_l0"], d["weight_hh_l0"], d["bias_ih_l0"], d["bias_hh_l0"])
        k = keys(self.attention, self.p, K)
        rng = np.random.default_rng(seed) if temperature > 0 else None
        h = np.zeros((B, self.hidden), self.dtype)
        cell = np.zeros_like(h) if self.cell == "lstm" else None
        tokens = np.zeros((B, T), np.int64)
        logits = np.empty((B, T, V), self.dtype)
        weights = np.zeros((B, T, self.S), self.dtype) if self.attention != "none" else None
        prev = tin[:, 0]
        for t in range(T):
            h, cell = cell_step(self.cell, np.concatenate([emb[prev], c], axis=1), h, cell, *w)
            feat = h[:, None, :]
            if weights is not None:
                cv, a, _ = attend(self.attention, self.p, feat, K, smask, k)
                weights[:, t] = a[:, 0]
                feat = np.concatenate([feat, cv], axis=-1)
            logits[:, t] = head(self.p, feat)[0][:, 0]
            prev = tokens[:, t] = pick(logits[:, t], temperature, rng)
        self.weights = weights
        return tokens, logits, weights

    def torch_module(self):
        from .seq2seq_torch import torch_seq2seq

        return torch_seq2seq(self)


def pick(logits, temperature: float, rng) -> np.ndarray:
    """(B,) token ids from (B, V) logits: argmax, or one draw per row at `temperature`."""
    if temperature <= 0:
        return logits.argmax(axis=1)
    z = logits.astype(np.float64) / temperature
    prob = np.exp(z - z.max(axis=1, keepdims=True))
    cum = np.cumsum(prob, axis=1)
    draw = rng.random(len(z))[:, None] * cum[:, -1:]
    return np.minimum((cum < draw).sum(axis=1), logits.shape[1] - 1)
