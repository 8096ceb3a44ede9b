"""Token embeddings and recurrent layers (tanh RNN, LSTM, GRU) with backpropagation through time.

Parameters use PyTorch's names, layouts, gate order and default init, so a state_dict moves both
ways with torch.nn.Embedding / nn.RNN / nn.LSTM / nn.GRU:
  weight_ih_l{k} (G*H, in), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k} (G*H,), and the
  same with suffix "_reverse" for the second direction; G = 1 (RNN), 4 (LSTM i,f,g,o), 3 (GRU
  r,z,n with n = tanh(W_in x + b_in + r * (W_hn h + b_hn))); init U(-1/sqrt(H), 1/sqrt(H)), plus
  the LSTM's forget_bias (default 1.0; 0 is torch's init) on the f block of bias_ih.
  `init = "orthogonal"` and `init_scale` s change weight_hh only (engine/init.py): every
  singular value s, the knob of the exploding-gradients lesson.

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

Backward also records ||dL/dh_t|| per time step into ctx.time_grad_norms (see `Recurrent`), and
the same aligned on each sample's answer into ctx.time_grad_ratio.
"""

from __future__ import annotations

import numpy as np

from . import products, threads
from .arrays import aligned_ratio, masked_mean_norms
from .dense import Buffers, uniform_fan_in
from .errors import SpecError
from .init import RECURRENT_INITS, recurrent_weight
from .layer import Layer, SpecReader
from .lstm_kernels import lstm_backward, lstm_backward_rows, lstm_forward, lstm_forward_rows
from .recurrent_kernels import (GATES, GRU_CELL, LSTM_CELL, RNN_CELL, gru_backward, gru_backward_rows, gru_forward,
                                gru_forward_rows, id_range, rnn_backward, rnn_backward_rows, rnn_forward,
                                rnn_forward_rows, scatter_add_rows)
from .recurrent_work import Workspace


# Batch rows are independent through time, so the BPTT kernels run a batch as ROW_PIECES fixed
# chunks of rows (row_chunks: the batch size decides them), on Numba's threads when the engine's
# one thread setting (DESCENT_THREADS) allows and the layer is big enough to gain
# (threads.for_work), else one after the other: the same BLAS calls either way, so the result is
# bit-identical for any thread count. The layer's big products go through products.matmul (fixed
# blocks by shape, the same rule).
ROW_PIECES = 2               # row chunks of a batch (of at least 8 rows each)
EVAL_ROW_STEPS = 8192        # evaluation forward in slices of at most this many rows x time steps


def row_chunks(B: int) -> list[tuple[int, int]]:
    """Row ranges of a batch of B rows: ROW_PIECES of a multiple of 4 rows, none under 8 rows."""
    size = max(8, (-(-B // ROW_PIECES) + 3) // 4 * 4)
    chunks = [(lo, min(lo + size, B)) for lo in range(0, B, size)]
    if len(chunks) > 1 and chunks[-1][1] - chunks[-1][0] < 8:            # fold a short tail into its neighbour
        chunks[-2:] = [(chunks[-2][0], B)]
    return chunks


_edges: dict[int, np.ndarray] = {}


def chunk_edges(B: int) -> np.ndarray:
    """row_chunks(B) as edges (n + 1,) int64, the form the `*_rows` drivers take."""
    e = _edges.get(B)
    if e is None:
        if len(_edges) >= 64:
            _edges.clear()
        e = _edges[B] = np.array([lo for lo, _ in row_chunks(B)] + [B], np.int64)
    return e


def kernel_gemm(dtype):
    """The CBLAS ?gemm the kernels call for their step products (products.py finds it), or None:
    then they use np.dot, SciPy's BLAS, which must be held to one thread too."""
    fn = products.gemm_address(dtype)
    if fn is None:
        threads.cover_kernel_blas()
    return fn


def run_rows(serial, pieces, args, B: int, n: int) -> None:
    """serial(*args, b0, b1) over the fixed row chunks of a batch of B rows: with n > 1 (and a
    thread-safe Numba threading layer) all at once through the prange driver `pieces`."""
    edges = chunk_edges(B)
    if n > 1 and len(edges) > 2 and threads.pieces_threads(len(edges) - 1) > 1:
        pieces(*args, edges)
        return
    for i in range(len(edges) - 1):
        serial(*args, edges[i], edges[i + 1])


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
        ctx.tokens = (y, ids, self.p["weight"])     # a recurrent layer reading y projects the vocabulary instead
        return y

    def backward(self, dy, ctx):
        if isinstance(dy, TokenGrad) and dy.ids is self.ids:             # summed by token already
            np.copyto(self.g["weight"], dy.table)
            return None
        dy2 = np.ascontiguousarray(dy, dtype=self.dtype).reshape(-1, self.dim)   # (B*T, dim)
        scatter_add_rows(self.ids.reshape(-1), dy2, self.g["weight"])
        return None                                                    # nothing upstream of token ids

    def torch_module(self):
        import torch.nn as nn

        return nn.Embedding(self.vocab, self.dim)


class TokenGrad:
    """The input gradient a recurrent layer hands back to the embedding it read through the
    vocabulary (ctx.tokens): `table` (V, E) is already the embedding weight's gradient (each
    step's gate gradients summed by token, times W_ih: V rows in place of T * B), for the
    embedding whose `ids` these are. Any other reader gets the (B, T, E) array from np.asarray,
    computed as without the fold."""

    def __init__(self, ids, table, dense):
        self.ids, self.table, self._dense = ids, table, dense

    def __array__(self, dtype=None, copy=None):
        a = self._dense()
        return a if dtype is None else a.astype(dtype, copy=False)


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
    is a real step (0 where no sample has one). ctx.time_grad_ratio[same key] (T,) is indexed by
    the distance d back from each sample's last real step: the mean over samples longer than d of
    ||dL/dh_{L-1-d}|| / ||dL/dh_{L-1}||, so that sentences of different lengths line up."""

    cell = RNN_CELL
    torch_class = "RNN"

    def __init__(self, spec, in_shape, dtype=np.float32):
        super().__init__(spec, in_shape, dtype)
        keys = {"hidden", "layers", "bidirectional", "output", "truncate", "init", "init_scale"}
        r = SpecReader(spec, self.kind, keys | ({"forget_bias"} if self.cell == LSTM_CELL else set()))
        self.hidden = r.int("hidden", lo=1)
        # Jozefowicz et al. 2015: a forget-gate bias of 1 lets an LSTM keep its memory from the
        # start; with torch's 0 it learned Nile at gap 100 one fact at a time over ~1750 steps
        self.forget_bias = r.float("forget_bias", 1.0) if self.cell == LSTM_CELL else 0.0
        self.layers = r.int("layers", 1, lo=1)
        self.bidirectional = r.bool("bidirectional", False)
        self.output = r.choice("output", ("last", "all"), "last")
        self.truncate = r.int("truncate", 0, lo=0)
        # weight_hh only: its singular values set how the state (and the gradient) grows per step
        self.init = r.choice("init", RECURRENT_INITS, "default")
        self.init_scale = r.float("init_scale", 1.0, lo=0)
        if self.init_scale <= 0:
            raise SpecError(".init_scale", f"must be > 0, got {self.init_scale:g}")
        if len(in_shape) != 2:
            raise SpecError(".hidden", f"{self.kind} expects a sequence (T, features) per sample, got input of "
                                       f"shape {tuple(in_shape)}: put an embedding layer before it for token ids")
        self.dirs = 2 if self.bidirectional else 1
        self.in_size = in_shape[1]
        width = self.hidden * self.dirs
        self.out_shape = (in_shape[0], width) if self.output == "all" else (width,)
        self.gh = GATES[self.cell] * self.hidden
        self._work: dict[tuple, Workspace] = {}
        self.fold = None                    # (ids, table) when the last training forward read a vocabulary

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
            if name.startswith("weight_hh"):       # default, scale 1: the same draws as uniform_fan_in
                view[...] = recurrent_weight(rng, view.shape, self.hidden, self.init, self.init_scale, self.dtype)
            else:
                view[...] = uniform_fan_in(rng, view.shape, self.hidden, self.dtype)
            if self.forget_bias and name.startswith("bias_ih"):
                view[self.hidden:2 * self.hidden] += self.forget_bias    # gate order i, f, g, o

    def bind(self, p, g):
        super().bind(p, g)
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        views = lambda a, k, d: tuple(a[f"{n}_l{k}{'_reverse' if d else ''}"] for n in names)  # noqa: E731
        # per [layer][direction]: (w_ih, w_hh, b_ih, b_hh) values and gradients
        self.pv = [[views(p, k, d) for d in range(self.dirs)] for k in range(self.layers)]
        self.gv = [[views(g, k, d) for d in range(self.dirs)] for k in range(self.layers)]

    def _workspace(self, T: int, B: int, train: bool) -> "Workspace":
        if not train:                       # evaluation batches can be large: don't keep their arrays
            self.ws = None                  # nor the previous slice's while this one's are allocated
            return Workspace(self, T, B, backward=False)
        w = self._work.get((T, B))
        if w is None:
            if len(self._work) >= 4:
                self._work.clear()
            w = self._work[T, B] = Workspace(self, T, B)
        return w

    def _split(self, T: int, B: int) -> int:
        """Threads for a pass over (T, B): the engine's rule on the layer's multiply-adds."""
        ins = self.in_size + (self.layers - 1) * self.hidden * self.dirs
        return threads.for_work(B * T * self.gh * (self.hidden * self.layers + ins) * self.dirs)

    # forward ---------------------------------------------------------------------------------
    def forward(self, x, ctx):
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.in_size:
            raise ValueError(f"{self.kind} expects (batch, T, {self.in_size}), got {x.shape}")
        B, T, _ = x.shape
        lengths = lengths_from_mask(ctx.mask, B, T)
        tok = ctx.tokens
        ids, table = (tok[1], tok[2]) if tok is not None and tok[0] is x else (None, None)
        rows = max(8, EVAL_ROW_STEPS // max(T, 1))
        if ctx.train or B <= rows:
            return self._forward(x, lengths, ctx.train, ids, table)
        # evaluation: slices of rows (rows are independent), so that long sequences don't hold a
        # whole evaluation batch's gate and state arrays at once
        out = None
        for lo in range(0, B, rows):
            hi = B if B - lo < rows + 8 else lo + rows                   # no slice of under 8 rows
            part = self._forward(x[lo:hi], lengths[lo:hi], False, None if ids is None else ids[lo:hi], table)
            if out is None:
                out = np.empty((B,) + part.shape[1:], part.dtype)
            out[lo:hi] = part
            if hi == B:
                break
        return out

    def _forward(self, x, lengths, train: bool, ids=None, table=None):
        """ids (B, T), table (V, E): x = table[ids] (x is an embedding's output); with fewer words
        than rows the first layer projects the vocabulary, (V, E) @ (E, GH), instead of x."""
        B, T, _ = x.shape
        H, D = self.hidden, self.dirs
        ws = self._workspace(T, B, train)
        n, fn = self._split(T, B), kernel_gemm(self.dtype)
        lookup = ids is not None and len(table) < T * B
        if lookup:
            np.copyto(ws.ids, ids.T)                                     # (T, B) token ids, time-major
        else:                                                            # (lookup: x is read through the table)
            np.copyto(ws.x, x.transpose(1, 0, 2))                        # (T, B, E) time-major
        self.fold = (ids, table) if lookup and train else None          # backward sums by token too
        inp = ws.x
        for k in range(self.layers):
            y4 = ws.y[k].reshape(T, B, D, H)                             # this direction's output at [:, :, d]
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh = self.pv[k][d]
                cw = ws.cells[k][d]
                if k == 0 and lookup:                                    # the same bits as x @ W_ih^T
                    if cw.table.shape[0] != len(table):
                        cw.table = np.empty((len(table), self.gh), self.dtype)
                    products.matmul(table, w_ih.T, cw.table)             # (V, GH)
                    src, src_rows = cw.table, ws.ids
                else:
                    products.matmul(inp.reshape(T * B, -1), w_ih.T, cw.z.reshape(T * B, -1))   # (T*B, GH) all steps
                    src, src_rows = cw.z.reshape(T * B, -1), ws.rows
                np.add(b_ih, b_hh, out=cw.bias)
                if self.cell == GRU_CELL:                                # b_hn stays inside r * (...)
                    cw.bias[2 * H:] = b_ih[2 * H:]
                np.copyto(cw.whh_t, w_hh.T)
                cw.s[T if d else 0] = 0.0
                if self.cell == LSTM_CELL:
                    cw.c[T if d else 0] = 0.0
                rev, head = bool(d), (fn, cw.z, src, src_rows, cw.whh_t, cw.bias)
                if self.cell == LSTM_CELL:
                    run_rows(lstm_forward, lstm_forward_rows, head + (cw.s, cw.c, cw.tc, cw.q, y4, d, lengths, rev),
                             B, n)
                elif self.cell == GRU_CELL:
                    run_rows(gru_forward, gru_forward_rows, head + (b_hh[2 * H:], cw.s, cw.hn, cw.q, y4, d, lengths,
                                                                    rev), B, n)
                else:
                    run_rows(rnn_forward, rnn_forward_rows, head + (cw.s, cw.q, y4, d, lengths, rev), B, n)
            inp = ws.y[k]
        self.ws, self.lengths = ws, lengths
        if self.output == "all":
            np.copyto(ws.out, inp.transpose(1, 0, 2))                    # (B, T, D*H)
        else:
            for d, cw in enumerate(ws.cells[-1]):                        # packed h_n: forward at slot T, reverse at 0
                ws.out[:, d * H:(d + 1) * H] = cw.s[0 if d else T]
        return ws.out

    # backward --------------------------------------------------------------------------------
    def backward(self, dy, ctx):
        ws, lengths = self.ws, self.lengths
        T, B = ws.T, ws.B
        H, D = self.hidden, self.dirs
        dy = np.asarray(dy, dtype=self.dtype)
        if self.output == "all":
            dseq = ws.dy
            np.copyto(dseq, dy.reshape(B, T, H * D).transpose(1, 0, 2))  # (T, B, D*H)
        else:
            dseq = ws.empty3
        want, fold = ctx.want_time_grads, self.fold
        n, fn = self._split(T, B), kernel_gemm(self.dtype)
        for k in reversed(range(self.layers)):
            norms = ws.norms[k] if want else ws.empty2                   # (T, B) float64
            if want:
                norms[...] = 0.0
            need_dx = k > 0 or self.need_dx
            dy4 = dseq.reshape(T, B, D, H) if dseq.size else ws.empty4        # (T, B, D, H)
            dx = ws.dx[k]                                                # (T, B, in_k)
            inp = ws.x if k == 0 else ws.y[k - 1]
            for d in range(D):
                cw = ws.cells[k][d]
                w_ih, w_hh, _, _ = self.pv[k][d]
                gw_ih, gw_hh, gb_ih, gb_hh = self.gv[k][d]
                if k == self.layers - 1 and self.output == "last":
                    cw.dh[...] = dy[:, d * H:(d + 1) * H]
                else:
                    cw.dh[...] = 0.0
                cw.dc[...] = 0.0
                rev, cut = bool(d), self.truncate
                if self.cell == LSTM_CELL:
                    run_rows(lstm_backward, lstm_backward_rows, (fn, cw.z, w_hh, cw.c, cw.tc, dy4, d, cw.dh, cw.dc,
                                                                 cw.dq, cw.dg, lengths, rev, cut, norms), B, n)
                elif self.cell == GRU_CELL:
                    run_rows(gru_backward, gru_backward_rows, (fn, cw.z, w_hh, cw.s, cw.hn, dy4, d, cw.dh, cw.dq,
                                                               cw.dg, cw.dgh, lengths, rev, cut, norms), B, n)
                else:
                    run_rows(rnn_backward, rnn_backward_rows, (fn, cw.z, w_hh, dy4, d, cw.dh, cw.dq, cw.dg, lengths,
                                                               rev, cut, norms), B, n)
                dg2, dgh2 = cw.dg.reshape(T * B, -1), cw.dgh.reshape(T * B, -1)      # (T*B, GH)
                prev = cw.s[1:] if d else cw.s[:T]                                  # (T, B, H) states before each step
                target = dx if d == 0 else ws.dxr[k]
                products.matmul(dgh2.T, prev.reshape(T * B, H), gw_hh)             # (GH, H)
                if k == 0 and fold is not None:     # x = table[ids]: dg summed by token, (V, GH), does for x
                    if cw.dtab.shape[0] != len(fold[1]):
                        cw.dtab = np.empty((len(fold[1]), self.gh), self.dtype)
                    scatter_add_rows(ws.ids.reshape(-1), dg2, cw.dtab)             # in (t, b) order
                    products.matmul(cw.dtab.T, fold[1], gw_ih)                     # (GH, E)
                else:
                    products.matmul(dg2.T, inp.reshape(T * B, -1), gw_ih)           # (GH, in)
                    if need_dx:
                        products.matmul(dg2, w_ih, target.reshape(T * B, -1))       # (T*B, in)
                np.dot(ws.ones, dg2, out=gb_ih)                                     # column sums (GH,)
                if cw.dgh is cw.dg:                                                 # RNN, LSTM: the same sums
                    np.copyto(gb_hh, gb_ih)
                else:
                    np.dot(ws.ones, dgh2, out=gb_hh)
                if need_dx and d and not (k == 0 and fold is not None):
                    dx += target
            if want:
                out = np.empty(T)
                masked_mean_norms(norms, lengths, out)
                key = self.name if self.layers == 1 else f"{self.name}.l{k}"
                ctx.time_grad_norms[key] = out
                ratio = np.empty(T)
                aligned_ratio(norms, lengths, ratio)
                ctx.time_grad_ratio[key] = ratio
            dseq = dx
        if not self.need_dx:
            return None
        if fold is not None:
            if ws.demb.shape != fold[1].shape:
                ws.demb = np.empty(fold[1].shape, self.dtype)
            for d, cw in enumerate(ws.cells[0]):                         # (V, GH) @ (GH, E), both directions
                products.matmul(cw.dtab, self.pv[0][d][0], ws.demb, beta=1.0 if d else 0.0)
            return TokenGrad(fold[0], ws.demb, self._dense_dx)
        np.copyto(ws.dx_out, dseq.transpose(1, 0, 2))                    # (B, T, E)
        return ws.dx_out

    def _dense_dx(self):
        """The first layer's input gradient (B, T, E) after a folded backward, as without the fold."""
        ws = self.ws
        T, B = ws.T, ws.B
        for d, cw in enumerate(ws.cells[0]):
            target = ws.dx[0] if d == 0 else ws.dxr[0]
            products.matmul(cw.dg.reshape(T * B, -1), self.pv[0][d][0], target.reshape(T * B, -1))
            if d:
                ws.dx[0] += target
        np.copyto(ws.dx_out, ws.dx[0].transpose(1, 0, 2))
        return ws.dx_out

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
