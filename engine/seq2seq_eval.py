"""What a seq2seq evaluation reports (Session.evaluate calls this when the labels are per token).

metrics: engine.metrics.sequences on the greedy decoding of the test split (token_accuracy,
sequence_accuracy = accuracy, loss per token, error).
details:
  "by_length": {"length": [...], "accuracy": [...]} exact-sequence accuracy per source length;
  "samples":   up to SAMPLES test sentences spread over the lengths, each {"length", "source",
               "target", "output" (word lists; output up to its EOS), "right" (per target
               position: the output's token there is the target's)};
  "attention": {"source", "output", "weights" (len(output) + 1 rows, one per decoder step up to
               and including EOS, at most the decoder's steps; len(source) columns)} for one sample (the longest of at most
               ATTENTION_LEN words), only with attention and our own engine.
Decoding runs here, in the thread that runs the session (the TUI's worker), never in the UI.
"""

from __future__ import annotations

import numpy as np

from .data.reverse import EOS
from .metrics import sequences
from .seq2seq import Seq2Seq

SAMPLES = 6
ATTENTION_LEN = 16          # the heatmap's sample: short enough to read at 80x24


def seq2seq_layer(trainer):
    net = getattr(trainer, "net", None)
    layers = [] if net is None else [layer for layer in net.layers if isinstance(layer, Seq2Seq)]
    return layers[0] if layers else None


def evaluate_seq2seq(session, x, y, mask) -> tuple[dict, dict]:
    ds = session.dataset
    with session._lock:
        logits = session.trainer.predict(x, mask)
    metrics, found = sequences(logits, y)
    exact = found["correct"]
    pred = logits.argmax(axis=-1)
    lengths = ds.extra_test.get("length")
    lengths = (y != -100).sum(axis=1) - 1 if lengths is None else np.asarray(lengths)[:len(y)]
    values = np.unique(lengths)
    details = {"by_length": {"length": values.tolist(),
                             "accuracy": [float(exact[lengths == v].mean()) for v in values]}}
    vocab = ds.vocab or [str(i) for i in range(logits.shape[-1])]
    src_len = x.shape[1] - logits.shape[1]                 # x = [source | decoder input], engine/seq2seq.py
    details["samples"] = [_sample(x[i, :src_len], y[i], pred[i], int(lengths[i]), vocab)
                          for i in _spread(lengths, SAMPLES)]
    layer = seq2seq_layer(session.trainer)
    if layer is not None and layer.attention != "none" and len(x):
        short = np.flatnonzero(lengths <= ATTENTION_LEN)
        i = int(short[np.argmax(lengths[short])]) if len(short) else int(np.argmin(lengths))
        with session._lock:
            tokens, _, weights = layer.decode(x[i:i + 1], None if mask is None else mask[i:i + 1])
        n = int(lengths[i])
        out = words_of(tokens[0], vocab)
        details["attention"] = {"source": words_of(x[i, :n], vocab), "output": out,
                                "weights": np.asarray(weights[0, :len(out) + 1, :n], np.float64).round(4).tolist()}
    return metrics, details


def _spread(lengths, k: int) -> list[int]:
    """k sample indices whose lengths run from the shortest to the longest."""
    if len(lengths) == 0:
        return []
    order = np.argsort(lengths, kind="stable")
    picks = np.linspace(0, len(order) - 1, min(k, len(order))).round().astype(int)
    return [int(order[p]) for p in picks]


def words_of(ids, vocab) -> list[str]:
    out = []
    for i in np.asarray(ids).tolist():
        if i == EOS or i <= 0:            # EOS, padding, IGNORE
            break
        out.append(vocab[i] if i < len(vocab) else "?")
    return out


def _sample(src, target, pred, n: int, vocab) -> dict:
    real = target != -100
    right = (pred == target)[real].tolist()
    return {"length": n, "source": words_of(src[:n], vocab), "target": words_of(target, vocab),
            "output": words_of(pred, vocab), "right": [bool(r) for r in right]}
