"""Text from a character language model: seeded temperature / top-k sampling, and the LM's evaluation.

Two ways to get the next character's logits:
- stepped (a stack of embedding, RNN/LSTM/GRU, dense and element-wise layers): each recurrent
  layer carries its state from one character to the next, so n characters cost n cell steps;
  the cell equations are torch's, from the layer's own parameters;
- windowed (anything else, the transformer): the model re-reads the last `context` characters
  for every new one (no KV cache: a 64-character window of a 4-layer model is under a
  millisecond).
Either way a `lock` (the session's) is held around each model call, never the whole text, so
a sample drawn while training runs slows it by a step's worth at most.
"""

from __future__ import annotations

import math
import threading
from contextlib import nullcontext

import numpy as np

from .errors import DescentError
from .layer import Context

STEPPED = {"embedding", "rnn", "lstm", "gru", "dense", "dropout", "identity", "relu", "leaky_relu",
           "sigmoid", "tanh", "layernorm"}
RECURRENT = ("rnn", "lstm", "gru")
MAX_CHARS = 100_000


def check_settings(chars, temperature, top_k) -> None:
    """One-line errors for bad sampling settings (the CLI turns them into exit 2)."""
    if isinstance(chars, bool) or not isinstance(chars, int) or not 0 <= chars <= MAX_CHARS:
        raise DescentError(f"chars must be a whole number from 0 to {MAX_CHARS}, got {chars!r}")
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature < 0:
        raise DescentError(f"temperature must be a number >= 0 (0 = always the likeliest), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0):
        raise DescentError(f"top_k must be a whole number >= 0 (0 = all), got {top_k!r}")


def pick(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    """One id from logits (K,): the argmax at temperature 0, else softmax(logits / T) over the
    top_k largest (0 or None: all), as nanoGPT's sample.py."""
    z = np.asarray(logits, np.float64)
    if temperature == 0:
        return int(np.argmax(z))
    z = z / temperature
    if top_k and top_k < len(z):
        cut = np.partition(z, -top_k)[-top_k]
        z = np.where(z < cut, -np.inf, z)
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(z) - 1))


class _Stepper:
    """The stepped model: call with one id, get the next id's logits (K,)."""

    def __init__(self, net):
        self.net = net
        self.state: dict[int, list] = {}

    def __call__(self, token: int) -> np.ndarray:
        ctx = Context(train=False, want_time_grads=False)
        x = np.array([[token]], np.int64)
        for i, layer in enumerate(self.net.layers):
            if layer.kind in RECURRENT:
                x = self._cell(i, layer, np.asarray(x, np.float64).reshape(1, -1))
            else:
                x = layer.forward(x, ctx)
        return np.asarray(x, np.float64).reshape(-1)

    def _cell(self, i, layer, x):
        p, hsz = layer.p, layer.hidden
        states = self.state.setdefault(i, [None] * layer.layers)
        for k in range(layer.layers):
            w = {n: np.asarray(p[f"{n}_l{k}"], np.float64) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            h = states[k] if states[k] is not None else (np.zeros((1, hsz)),) * (2 if layer.kind == "lstm" else 1)
            gi = x @ w["weight_ih"].T + w["bias_ih"]
            gh = h[0] @ w["weight_hh"].T + w["bias_hh"]
            if layer.kind == "rnn":
                h = (np.tanh(gi + gh),)
            elif layer.kind == "gru":            # gates r, z, n
                r = _sigmoid(gi[:, :hsz] + gh[:, :hsz])
                z = _sigmoid(gi[:, hsz:2 * hsz] + gh[:, hsz:2 * hsz])
                n = np.tanh(gi[:, 2 * hsz:] + r * gh[:, 2 * hsz:])
                h = ((1.0 - z) * n + z * h[0],)
            else:                                 # gates i, f, g, o
                g = gi + gh
                c = _sigmoid(g[:, hsz:2 * hsz]) * h[1] + _sigmoid(g[:, :hsz]) * np.tanh(g[:, 2 * hsz:3 * hsz])
                h = (_sigmoid(g[:, 3 * hsz:]) * np.tanh(c), c)
            states[k] = h
            x = h[0]
        return x.reshape(1, 1, -1).astype(layer.dtype)


def _sigmoid(v):
    return 0.5 + 0.5 * np.tanh(0.5 * v)


def stepped(net) -> bool:
    return all(layer.kind in STEPPED for layer in net.layers) and not any(
        getattr(layer, "bidirectional", False) for layer in net.layers)


def generate(net, codec, prompt: str, chars: int, temperature: float = 0.8, top_k: int | None = None,
             seed: int = 0, context: int | None = None, lock=None, stop: threading.Event | None = None) -> str:
    """`chars` new characters after `prompt` ("" starts from a newline, as nanoGPT's samples do).
    The same seed, model and settings give the same text."""
    check_settings(chars, temperature, top_k)
    ids = list(codec.encode(prompt or "\n", "the prompt"))
    lock = lock or nullcontext()
    rng = np.random.default_rng(seed)
    out: list[int] = []
    if stepped(net):
        step = _Stepper(net)
        with lock:
            for token in ids[:-1]:
                step(token)
        token = ids[-1]
        for _ in range(chars):
            if stop is not None and stop.is_set():
                break
            with lock:
                logits = step(token)
            token = pick(logits, temperature, top_k, rng)
            out.append(token)
        return codec.decode(out)
    context = context or net.in_shape[0]
    ctx = Context(train=False, want_time_grads=False)
    for _ in range(chars):
        if stop is not None and stop.is_set():
            break
        window = np.array([ids[-context:]], np.int64)
        with lock:
            logits = np.array(net.forward(window, ctx)[0, -1], np.float64)
        token = pick(logits, temperature, top_k, rng)
        ids.append(token)
        out.append(token)
    return codec.decode(out)
