"""The seq2seq layer's PyTorch twin (engine/seq2seq.py): the same model from torch.nn parts, with
the same parameter names, so the torch backend trains it and the gradient checks compare with it.

Train mode: teacher forcing over the whole target (the encoder through pack_padded_sequence).
Eval mode: greedy decoding, one nn.GRU / nn.LSTM / nn.RNN step at a time.
"""

from __future__ import annotations


def torch_seq2seq(layer):
    import torch
    import torch.nn as nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    V, E, H, A, C = layer.vocab, layer.embed, layer.hidden, layer.attention_dim, layer.combine
    S_in, T, kind = layer.S, layer.T, layer.attention
    cls = getattr(nn, {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[layer.cell])

    class Seq2SeqTorch(nn.Module):
        takes_mask = True

        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, E)
            self.encoder = cls(E, H, batch_first=True)
            self.decoder = cls(E + H, H, batch_first=True)
            if kind == "additive":
                self.attention = nn.Module()
                self.attention.query = nn.Linear(H, A, bias=False)
                self.attention.key = nn.Linear(H, A, bias=False)
                self.attention.v = nn.Linear(A, 1, bias=False)
            self.combine = nn.Linear(2 * H if kind != "none" else H, C)
            self.out = nn.Linear(C, V)

        def encode(self, src, smask):
            lengths = smask.sum(dim=1)
            packed = pack_padded_sequence(self.embedding(src), lengths.cpu(), batch_first=True, enforce_sorted=False)
            K = pad_packed_sequence(self.encoder(packed)[0], batch_first=True, total_length=S_in)[0]
            return K, K[torch.arange(len(src)), lengths - 1]

        def head(self, s, K, smask):
            """logits and attention weights for decoder states s (B, t, H)."""
            if kind == "none":
                return self.out(torch.tanh(self.combine(s))), None
            if kind == "dot":
                scores = s @ K.transpose(1, 2)
            else:
                e = torch.tanh(self.attention.query(s)[:, :, None] + self.attention.key(K)[:, None])
                scores = self.attention.v(e)[..., 0]
            a = torch.softmax(scores.masked_fill(~smask[:, None, :], float("-inf")), dim=-1)
            return self.out(torch.tanh(self.combine(torch.cat([s, a @ K], dim=-1)))), a

        def forward(self, x, mask=None):
            src, tin = x[:, :S_in], x[:, S_in:]
            smask = (torch.ones_like(src, dtype=torch.bool) if mask is None else mask[:, :S_in].bool())
            K, c = self.encode(src, smask)
            if self.training:
                din = torch.cat([self.embedding(tin), c[:, None].expand(-1, T, -1)], dim=-1)
                return self.head(self.decoder(din)[0], K, smask)[0]
            state, prev, out = None, tin[:, 0], []
            for _ in range(T):
                s, state = self.decoder(torch.cat([self.embedding(prev), c], dim=-1)[:, None], state)
                logits = self.head(s, K, smask)[0][:, 0]
                out.append(logits)
                prev = logits.argmax(dim=-1)
            return torch.stack(out, dim=1)

    return Seq2SeqTorch()
