"""Token embeddings and recurrent layers (tanh RNN, LSTM, GRU) with backpropagation through time.

Parameters use PyTorch's names, layouts, gate order and default init, so a state_dict moves both
ways with torch.nn.Embedding / nn.RNN / nn.LSTM / nn.GRU:
  weight_ih_l{k} (G*H, in), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k} (G*H,), and the
  same with suffix "_reverse" for the second direction; G = 1 (RNN), 4 (LSTM i,f,g,o), 3 (GRU
  r,z,n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))); init U(-1/sqrt(H), 1/sqrt(H)).

Sequences are (B, T, E) with ctx.mask (B, T) bool, True = real token, padding on the right (None =
all real). The semantics are those of PyTorch's pack_padded_sequence: at padded steps the state is
carried unchanged and the output is 0; output = "last" gives, per sample, the top layer's state
at its last real step (bidirectional: the reverse direction's state at t = 0 appended), which is
packed h_n; output = "all" gives every step (T, H * directions).

truncate = k > 0 is truncated BPTT: each direction cuts every sequence (its real steps, in the
order it reads them) into chunks of k steps counted back from the last step it reads (the last real
token forward, t = 0 in reverse), and no gradient crosses a chunk boundary through the recurrent
state (h, and c for LSTM), as if the state were detached there. Gradients from the outputs into
the weights and inputs are otherwise exact; with output = "last" only the last k steps learn.

Backward also records ||dL/dh_t|| per time step into ctx.time_grad_norms (see `Recurrent`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .dense import Buffers, uniform_fan_in
from .errors import SpecError
from .layer import Layer, SpecReader
from .recurrent_kernels import (GATES, GRU_CELL, LSTM_CELL, RNN_CELL, id_range, recurrent_backward,
                                recurrent_forward, scatter_add_rows)


# Batch rows are independent through time, so the BPTT kernels (which release the GIL) run the
# batch in THREADS slices side by side; the result is bit-identical for any number of slices.
THREADS = min(2, os.cpu_count() or 1)
_pool: ThreadPoolExecutor | None = None


def run_rows(kernel, args, B: int) -> None:
    """kernel(*args, b0, b1) over batch rows 0..B-1, split across THREADS threads (slices of 4k rows)."""
    global _pool
    n = min(THREADS, B // 8)
    if n < 2:
        kernel(*args, 0, B)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(max(THREADS - 1, 1), thread_name_prefix="descent-bptt")
    cuts = [0] + [min(B, -(-B * i // n) // 4 * 4) for i in range(1, n)] + [B]
    futures = [_pool.submit(kernel, *args, lo, hi) for lo, hi in zip(cuts[1:-1], cuts[2:])]
    kernel(*args, cuts[0], cuts[1])
    for f in futures:
        f.result()


class Embedding(Layer):
    """Token ids (B, T) int -> vectors (B, T, dim); torch.nn.Embedding (weight (vocab, dim), N(0, 1)).

    Id 0 (padding) is an ordinary row: the mask handles padding downstream."""

    kind = "embedding"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, "embedding", {"dim", "vocab"})
        self.dim = r.int("dim", lo=1)
        self.vocab = r.int("vocab", lo=1)
        if len(in_shape) != 1:
            raise SpecError(".dim", f"embedding expects token ids (T,) per sample, got input of shape "
                                    f"{tuple(in_shape)}; use it first on a text or sequence dataset")
        self.out_shape = (in_shape[0], self.dim)
        self.buf = Buffers(self.dtype)

    def param_shapes(self):
        return {"weight": (self.vocab, self.dim)}

    def init_params(self, p, rng):
        p["weight"][...] = rng.standard_normal(p["weight"].shape).astype(self.dtype)

    def forward(self, x, ctx):
        ids = np.asarray(x)
        if ids.dtype.kind not in "iu":
            raise ValueError(f"embedding expects integer token ids, got {ids.dtype}")
        ids = np.ascontiguousarray(ids, dtype=np.int64)                # (B, T)
        if ids.size:
            lo, hi = id_range(ids)
            if lo < 0 or hi >= self.vocab:
                raise ValueError(f"token id {lo if lo < 0 else hi} outside the vocabulary 0..{self.vocab - 1}")
        y = self.buf.get("y", ids.shape + (self.dim,))                 # (B, T, dim)
        np.take(self.p["weight"], ids, axis=0, out=y, mode="clip")
        self.ids = ids
        return y

    def backward(self, dy, ctx):
        dy2 = np.ascontiguousarray(dy, dtype=self.dtype).reshape(-1, self.dim)   # (B*T, dim)
        scatter_add_rows(self.ids.reshape(-1), dy2, self.g["weight"])
        return None                                                    # nothing upstream of token ids

    def torch_module(self):
        import torch.nn as nn

        return nn.Embedding(self.vocab, self.dim)


def lengths_from_mask(mask, B: int, T: int) -> np.ndarray:
    """Real steps per sample (B,) int64 from a right-padded (B, T) mask (None = all T)."""
    if mask is None:
        return np.full(B, T, dtype=np.int64)
    m = np.asarray(mask, dtype=bool)
    if m.shape != (B, T):
        raise ValueError(f"mask has shape {m.shape}, the sequence batch is {(B, T)}")
    lengths = m.sum(axis=1, dtype=np.int64)
    if not np.array_equal(m, np.arange(T)[None, :] < lengths[:, None]):
        raise ValueError("mask must be right-padded: True for the real tokens of each row, then False")
    return lengths


class Recurrent(Layer):
    """Shared by RNN, LSTM and GRU: spec, parameters, the per-layer/direction driver, torch twin.

    Per-time-step gradient norms: backward puts ||dL/dh_t|| (t = 0..T-1) of each stacked layer
    into ctx.time_grad_norms["{name}"] (one layer) or ["{name}.l{k}"]: dL/dh_t is the total
    gradient of the state at step t (from the output and from later steps), its norm over hidden
    units (both directions: sqrt of the sum of squares), averaged over the samples for which t
    is a real step (0 where no sample has one)."""

    cell = RNN_CELL
    torch_class = "RNN"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        r = SpecReader(spec, self.kind, {"hidden", "layers", "bidirectional", "output", "truncate"})
        self.hidden = r.int("hidden", lo=1)
        self.layers = r.int("layers", 1, lo=1)
        self.bidirectional = r.bool("bidirectional", False)
        self.output = r.choice("output", ("last", "all"), "last")
        self.truncate = r.int("truncate", 0, lo=0)
        if len(in_shape) != 2:
            raise SpecError(".hidden", f"{self.kind} expects a sequence (T, features) per sample, got input of "
                                       f"shape {tuple(in_shape)}: put an embedding layer before it for token ids")
        self.dirs = 2 if self.bidirectional else 1
        self.in_size = in_shape[1]
        width = self.hidden * self.dirs
        self.out_shape = (in_shape[0], width) if self.output == "all" else (width,)
        self.gh = GATES[self.cell] * self.hidden
        self.buf = [Buffers(self.dtype) for _ in range(self.layers * self.dirs + 1)]
        self.buf64 = Buffers(np.float64)
        self._empty3 = np.zeros((0, 0, 0), self.dtype)
        self._empty2 = np.zeros((0, 0))

    # parameters ------------------------------------------------------------------------------
    def _suffixes(self):
        return [(k, d, f"l{k}" + ("_reverse" if d else "")) for k in range(self.layers) for d in range(self.dirs)]

    def param_shapes(self):
        shapes = {}
        for k, _, sfx in self._suffixes():
            fan_in = self.in_size if k == 0 else self.hidden * self.dirs
            shapes[f"weight_ih_{sfx}"] = (self.gh, fan_in)
            shapes[f"weight_hh_{sfx}"] = (self.gh, self.hidden)
            shapes[f"bias_ih_{sfx}"] = (self.gh,)
            shapes[f"bias_hh_{sfx}"] = (self.gh,)
        return shapes

    def init_params(self, p, rng):
        for name, view in p.items():
            view[...] = uniform_fan_in(rng, view.shape, self.hidden, self.dtype)

    # forward ---------------------------------------------------------------------------------
    def forward(self, x, ctx):
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.in_size:
            raise ValueError(f"{self.kind} expects (batch, T, {self.in_size}), got {x.shape}")
        B, T, _ = x.shape
        H, GH, D = self.hidden, self.gh, self.dirs
        lengths = lengths_from_mask(ctx.mask, B, T)
        fast = self.dtype == np.float32
        top = self.buf[-1] if ctx.train else Buffers(self.dtype)
        inp = top.get("x", (T, B, self.in_size))                       # (T, B, E) time-major
        np.copyto(inp, x.transpose(1, 0, 2))
        cache = []
        for k in range(self.layers):
            y = top.get(f"y{k}", (T, B, H * D))                          # (T, B, D*H)
            for d in range(D):
                buf = self.buf[k * D + d] if ctx.train else Buffers(self.dtype)
                sfx = f"l{k}" + ("_reverse" if d else "")
                w_ih, w_hh = self.p[f"weight_ih_{sfx}"], self.p[f"weight_hh_{sfx}"]
                b_ih, b_hh = self.p[f"bias_ih_{sfx}"], self.p[f"bias_hh_{sfx}"]
                z = buf.get("z", (T, B, GH))                             # (T, B, GH)
                np.dot(inp.reshape(T * B, -1), w_ih.T, out=z.reshape(T * B, GH))
                bias = buf.get("bias", (GH,))
                np.add(b_ih, b_hh, out=bias)
                if self.cell == GRU_CELL:                                # b_hn stays inside r * (...)
                    bias[2 * H:] = b_ih[2 * H:]
                z += bias
                whh_t = buf.get("whh_t", (H, GH))
                np.copyto(whh_t, w_hh.T)
                s = buf.get("s", (T + 1, B, H))                          # (T+1, B, H) state slots
                s[T if d else 0] = 0.0
                c = tc = hn = self._empty3
                if self.cell == LSTM_CELL:
                    c = buf.get("c", (T + 1, B, H))
                    c[T if d else 0] = 0.0
                    tc = buf.get("tc", (T, B, H))
                elif self.cell == GRU_CELL:
                    hn = buf.get("hn", (T, B, H))
                q = buf.get("q", (B, GH))
                run_rows(recurrent_forward, (self.cell, z, whh_t, b_hh[2 * H:], s, c, tc, hn, q, y, d * H,
                                             lengths, bool(d), fast), B)
                cache.append((inp, z, s, c, tc, hn, buf))
            inp = y
        self.cache, self.lengths, self.T, self.B = cache, lengths, T, B
        if self.output == "all":
            out = top.get("out", (B, T, H * D))
            np.copyto(out, inp.transpose(1, 0, 2))
            return out
        out = top.get("out", (B, H * D))
        for d, (_, _, s, *_rest) in enumerate(cache[-D:]):
            out[:, d * H:(d + 1) * H] = s[0 if d else T]
        return out

    # backward --------------------------------------------------------------------------------
    def backward(self, dy, ctx):
        T, B, lengths = self.T, self.B, self.lengths
        H, GH, D = self.hidden, self.gh, self.dirs
        top = self.buf[-1]
        dy = np.asarray(dy, dtype=self.dtype)
        if self.output == "all":
            dseq = top.get("dy", (T, B, H * D))                          # (T, B, D*H)
            np.copyto(dseq, dy.reshape(B, T, H * D).transpose(1, 0, 2))
        else:
            dseq = self._empty3
        want = ctx.want_time_grads
        for k in reversed(range(self.layers)):
            norms = self.buf64.get(f"norms{k}", (T, B)) if want else self._empty2
            if want:
                norms[...] = 0.0
            need_dx = k > 0 or self.need_dx
            dx = top.get(f"dx{k}", (T, B, self.in_size if k == 0 else H * D)) if need_dx else None
            for d in range(D):
                inp, z, s, c, tc, hn, buf = self.cache[k * D + d]
                sfx = f"l{k}" + ("_reverse" if d else "")
                dh = buf.get("dh", (B, H))
                if k == self.layers - 1 and self.output == "last":
                    dh[...] = dy[:, d * H:(d + 1) * H]
                else:
                    dh[...] = 0.0
                dc = buf.get("dc", (B, H))
                dc[...] = 0.0
                dg = buf.get("dg", (T, B, GH))                           # (T, B, GH)
                dgh = buf.get("dgh", (T, B, GH)) if self.cell == GRU_CELL else dg
                run_rows(recurrent_backward, (self.cell, z, self.p[f"weight_hh_{sfx}"], s, c, tc, hn, dseq, d * H,
                                              dh, dc, buf.get("dhd", (B, H)), dg, dgh, buf.get("qb", (B, H)),
                                              lengths, bool(d), self.truncate, norms), B)
                dg2, dgh2 = dg.reshape(T * B, GH), dgh.reshape(T * B, GH)
                np.dot(dg2.T, inp.reshape(T * B, -1), out=self.g[f"weight_ih_{sfx}"])      # (GH, in)
                prev = s[1:] if d else s[:T]                                               # (T, B, H)
                np.dot(dgh2.T, prev.reshape(T * B, H), out=self.g[f"weight_hh_{sfx}"])     # (GH, H)
                np.sum(dg2, axis=0, out=self.g[f"bias_ih_{sfx}"])
                np.sum(dgh2, axis=0, out=self.g[f"bias_hh_{sfx}"])
                if need_dx:
                    w_ih = self.p[f"weight_ih_{sfx}"]
                    if d == 0:
                        np.dot(dg2, w_ih, out=dx.reshape(T * B, -1))                       # (T*B, in)
                    else:
                        tmp = top.get(f"dxr{k}", dx.shape)
                        np.dot(dg2, w_ih, out=tmp.reshape(T * B, -1))
                        dx += tmp
            if want:
                self._record_norms(ctx, k, norms)
            dseq = dx
        if not self.need_dx:
            return None
        dx_out = top.get("dx_out", (B, T, self.in_size))
        np.copyto(dx_out, dseq.transpose(1, 0, 2))
        return dx_out

    def _record_norms(self, ctx, k, norms):
        """norms (T, B) squared per sample (0 at padded steps) -> mean norm over real samples, (T,)."""
        T = norms.shape[0]
        real = np.arange(T)[:, None] < self.lengths[None, :]            # (T, B)
        count = real.sum(axis=1)
        total = np.sqrt(norms).sum(axis=1)
        key = self.name if self.layers == 1 else f"{self.name}.l{k}"
        ctx.time_grad_norms[key] = np.where(count > 0, total / np.maximum(count, 1), 0.0)

    # torch -----------------------------------------------------------------------------------
    def torch_module(self):
        import torch
        import torch.nn as nn
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        base = getattr(nn, self.torch_class)
        last, dirs = self.output == "last", self.dirs

        class Masked(base):
            """batch_first nn.{RNN,LSTM,GRU} reading a (B, T) right-padded mask through packing."""

            takes_mask = True

            def forward(self, x, mask=None):
                T = x.shape[1]
                if mask is None:
                    out, state = super().forward(x)
                else:
                    lengths = torch.as_tensor(mask).sum(dim=1).cpu()
                    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                    out, state = super().forward(packed)
                    out = pad_packed_sequence(out, batch_first=True, total_length=T)[0]
                if not last:
                    return out
                h_n = state[0] if isinstance(state, tuple) else state            # (layers*dirs, B, H)
                return torch.cat([h_n[h_n.shape[0] - dirs + d] for d in range(dirs)], dim=1)

        return Masked(self.in_size, self.hidden, num_layers=self.layers, batch_first=True,
                      bidirectional=self.bidirectional)


class RNN(Recurrent):
    """Elman RNN: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)."""

    kind = "rnn"
    cell = RNN_CELL
    torch_class = "RNN"


class LSTM(Recurrent):
    kind = "lstm"
    cell = LSTM_CELL
    torch_class = "LSTM"


class GRU(Recurrent):
    kind = "gru"
    cell = GRU_CELL
    torch_class = "GRU"
