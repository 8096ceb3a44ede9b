"""Inside the cell: gate activations and attention weights on one sample batch, for evaluation.

`inside_the_cell` runs one evaluation forward pass (no gradients, no effect on training) and reads
what the forward kernels already keep for backward: the recurrent kernel leaves every step's
gate activations in its workspace `z` (T, B, G*H), attention keeps its softmax weights.

Per recurrent layer (forward direction; stacked layers as "{name}.l{k}"), each curve is indexed
by the distance d back from each sample's answer (its last real step), averaged over the hidden
units and over the samples longer than d, like the aligned gradient ratio:
  LSTM: forget, input, output (sigmoid gates; a forget gate near 1 across the gap is why an LSTM
        remembers); GRU: update (z: the share of the old state kept, torch's convention).
Attention (mean over heads): the weights from the answer position back to every real position of
one chosen sentence (`sample`: the longest in the batch, so that every column has a word), in
sentence order.
"""

from __future__ import annotations

import numpy as np

from .arrays import aligned_mean
from .attention import SelfAttention
from .layer import Context
from .recurrent import GRU_CELL, LSTM_CELL, Recurrent, lengths_from_mask

# gate name -> block index in PyTorch's order (LSTM i, f, g, o; GRU r, z, n)
GATE_BLOCKS = {LSTM_CELL: {"forget": 1, "input": 0, "output": 3}, GRU_CELL: {"update": 1}}


def sample_index(mask, n: int) -> int:
    """The chosen sentence of a batch: the longest (the first of them)."""
    if mask is None or n == 0:
        return 0
    return int(np.argmax(np.asarray(mask, dtype=bool).sum(axis=1)))


def inside_the_cell(net, x, mask=None) -> dict:
    """{layer key: {curve name: list}} for the net's LSTM, GRU and attention layers; {} if none."""
    layers = [layer for layer in net.layers
              if (isinstance(layer, Recurrent) and layer.cell in GATE_BLOCKS) or isinstance(layer, SelfAttention)]
    if not layers or len(x) == 0:
        return {}
    net.forward(x, Context(train=False, mask=mask, want_time_grads=False))
    B = len(x)
    pick = sample_index(mask, B)
    found = {}
    for layer in layers:
        if isinstance(layer, SelfAttention):
            lens = np.asarray(layer.lens)
            n = int(lens[pick])
            att = layer.saved["att"]                             # (B, H, Tq, T)
            row = att[pick, :, 0 if layer.last else n - 1, :n]   # (H, n)
            found[layer.name] = {"attention": row.mean(axis=0, dtype=np.float64).tolist(), "sample": pick}
            continue
        T, H = layer.ws.T, layer.hidden
        lengths = lengths_from_mask(mask, B, T)
        for k in range(layer.layers):
            z = layer.ws.cells[k][0].z                           # (T, B, G*H) activations after forward
            curves = {}
            for gate, block in GATE_BLOCKS[layer.cell].items():
                # a padded step's slots hold whatever the workspace last had (the kernels skip
                # them; it may be inf or NaN): averaged here, never read (aligned_mean takes real
                # steps only)
                with np.errstate(invalid="ignore", over="ignore"):
                    per_step = z[:, :, block * H:(block + 1) * H].mean(axis=2, dtype=np.float64)   # (T, B)
                out = np.empty(T)
                aligned_mean(np.ascontiguousarray(per_step), lengths, out)
                curves[gate] = out.tolist()
            found[layer.name if layer.layers == 1 else f"{layer.name}.l{k}"] = curves
    return found


def gradient_ratio(trainer, x, y, mask=None) -> dict[str, np.ndarray]:
    """The answer-aligned ratio (ctx.time_grad_ratio) of every sequence layer on a given batch,
    without an update: forward, loss, backward. It overwrites the parameter gradients, which the
    next training step recomputes anyway; call it between steps (tests, one-off figures)."""
    from .losses import loss_targets

    ctx = Context(train=True, rng=np.random.default_rng(0), mask=mask, want_time_grads=True)
    out = trainer.net.forward(x, ctx)
    _, dout = trainer.loss_fn(out, loss_targets(trainer.loss_name, y, trainer.dtype))
    trainer.net.backward(dout, ctx)
    return dict(ctx.time_grad_ratio)
