"""Small float64 training steps through every kernel family, as named arrays.

test_layout.py runs these once compiled and once with NUMBA_DISABLE_JIT=1 (the kernels as plain
Python): the two must agree, so a kernel never depends on what only compiled code does.
Run as a script, it writes the arrays to the .npz file named on the command line.
"""

from __future__ import annotations

import sys

import numpy as np

from descent.engine.backend import Trainer
from descent.engine.optim import OptimConfig

B, T = 4, 5
LENS = [5, 3, 1, 4]

CASES = {
    "dense": ([{"type": "dense", "units": 6, "activation": "tanh"}, {"type": "dense", "units": 3, "activation": "relu"},
               {"type": "dense", "units": 3}], (7,), "cross_entropy", "adam"),
    "sparse_dense": ([{"type": "dense", "units": 3, "activation": "sigmoid"}, {"type": "dense", "units": 1}],
                     (300,), "bce", "sgd"),
    "conv": ([{"type": "conv2d", "filters": 2, "kernel": 3, "padding": 1, "activation": "relu"},
              {"type": "maxpool2d", "size": 2}, {"type": "dropout", "p": 0.3}, {"type": "flatten"},
              {"type": "dense", "units": 3, "activation": "leaky_relu"}, {"type": "softmax"}],
             (1, 6, 6), "cross_entropy", "rmsprop"),
    "conv_gemm": ([{"type": "conv2d", "filters": 2, "kernel": 3, "stride": 2, "activation": "tanh"},
                   {"type": "flatten"}, {"type": "dense", "units": 2}], (5, 7, 7), "mse", "adamw"),
    "residual": ([{"type": "dense", "units": 4}, {"type": "residual", "layers": [
                     {"type": "dense", "units": 4, "activation": "relu"}, {"type": "layernorm"}]},
                  {"type": "dense", "units": 2}], (3,), "mse", "adam"),
    "attention": ([{"type": "embedding", "dim": 4, "vocab": 9},
                   {"type": "attention", "heads": 2, "dim": 6, "ff": 8}, {"type": "dense", "units": 1}],
                  (T,), "bce", "adam"),
    "lstm": ([{"type": "embedding", "dim": 3, "vocab": 9}, {"type": "lstm", "hidden": 4},
              {"type": "dense", "units": 3}], (T,), "cross_entropy", "sgd"),
    "gru": ([{"type": "embedding", "dim": 3, "vocab": 9}, {"type": "gru", "hidden": 3, "output": "all"},
             {"type": "flatten"}, {"type": "dense", "units": 2}], (T,), "mse", "adam"),
    "transformer": ([{"type": "transformer", "vocab": 9, "layers": 2, "dim": 4, "heads": 2, "bias": True},
                     {"type": "flatten"}, {"type": "dense", "units": 2}], (T,), "mse", "adamw"),
    # x = [source (T) | BOS + reversed source], a label per decoder step (IGNORE past the end)
    "seq2seq_lstm": ([{"type": "seq2seq", "cell": "lstm", "hidden": 4, "embed": 3, "vocab": 9,
                       "attention": "additive", "attention_dim": 3}], (2 * T + 1,), "cross_entropy", "adam"),
    "seq2seq_gru": ([{"type": "seq2seq", "cell": "gru", "hidden": 3, "embed": 2, "vocab": 9, "attention": "none"}],
                    (2 * T + 1,), "cross_entropy", "sgd"),
}


def batch(name, in_shape, loss, rng):
    mask = None
    if name.startswith("seq2seq"):
        return seq2seq_batch(rng)
    if CASES[name][0][0]["type"] in ("embedding", "transformer"):
        mask = np.arange(T)[None, :] < np.array(LENS)[:, None]
        x = np.where(mask, rng.integers(1, 9, size=(B, T)), 0).astype(np.int64)
    elif name == "sparse_dense":
        x = (rng.random((B,) + in_shape) < 0.02) * rng.standard_normal((B,) + in_shape)
    else:
        x = rng.standard_normal((B,) + in_shape)
    if loss == "cross_entropy":
        y = rng.integers(0, 3, B)
    elif loss == "bce":
        y = rng.integers(0, 2, (B, 1)).astype(np.float64)
    else:
        y = rng.standard_normal((B, CASES[name][0][-1]["units"]))
    return x, y, mask


def seq2seq_batch(rng):
    from descent.engine.data.reverse import BOS, EOS, IGNORE

    x = np.zeros((B, 2 * T + 1), np.int64)
    mask = np.zeros_like(x, bool)
    y = np.full((B, T + 1), IGNORE, np.int64)
    for b, n in enumerate(LENS):
        src = rng.integers(4, 9, n)
        x[b, :n], x[b, T], x[b, T + 1:T + 1 + n] = src, BOS, src[::-1]
        mask[b, :n] = mask[b, T:T + 1 + n] = True
        y[b, :n], y[b, n] = src[::-1], EOS
    return x, y, mask


def run_cases() -> dict[str, np.ndarray]:
    out = {}
    for name, (layers, in_shape, loss, kind) in CASES.items():
        rng = np.random.default_rng(len(name))
        t = Trainer(layers, in_shape, loss, OptimConfig(kind=kind, lr=0.05, momentum=0.9), seed=2, dtype="float64")
        for step in range(2):
            x, y, mask = batch(name, in_shape, loss, rng)
            s = t.step(x, y, mask)
            out[f"{name}.{step}.loss"] = np.array([s.loss, s.grad_norm, s.param_norm])
            out[f"{name}.{step}.grad_norms"] = np.array(list(s.grad_norms.values()))
            for layer, norms in (s.time_grad_norms or {}).items():
                out[f"{name}.{step}.time.{layer}"] = norms
        out[f"{name}.grad"] = t.net.params.grad.copy()
        out[f"{name}.params"] = t.net.params.flat.copy()
        out[f"{name}.predict"] = t.predict(x, mask)
    return out


if __name__ == "__main__":
    np.savez(sys.argv[1], **run_cases())
