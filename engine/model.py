"""Build a network from a plain description (a list of layer dicts) and run it.

Parameter names follow torch.nn.Sequential over the layers' torch modules ("0.weight",
"1.weight_ih_l0", "2.block.0.weight"), so checkpoints move both ways with PyTorch.

`{ type = "mlp", depth = 3, units = 8, activation = "tanh" }` is shorthand for `depth` pairs of
a dense layer and its activation, expanded in place before building (so one knob turns the
depth, and the names stay those of the plain Sequential: "0.weight", "2.weight", ...).
"""

from __future__ import annotations

import importlib

import numpy as np

from .errors import SpecError
from .layer import Context, Layer, named_param_shapes, named_transposed, split_views
from .params import ParamSet

# type -> "module:Class"; modules are imported on first use so a missing family fails only where used
REGISTRY = {
    "dense": "dense:Dense",
    "flatten": "dense:Flatten",
    **{name: "activations:Activation" for name in ("identity", "relu", "leaky_relu", "sigmoid", "tanh", "softmax")},
    "conv2d": "conv:Conv2d",
    "maxpool2d": "pooling:MaxPool2d",
    "dropout": "dropout:Dropout",
    "residual": "residual:Residual",
    "embedding": "recurrent:Embedding",
    "rnn": "recurrent:RNN",
    "lstm": "recurrent:LSTM",
    "gru": "recurrent:GRU",
    "attention": "attention:SelfAttention",
    "layernorm": "layernorm:LayerNorm",
    "transformer": "lm:TransformerLM",
    "seq2seq": "seq2seq:Seq2Seq",
}


MLP_KEYS = {"type", "depth", "units", "activation"}
MLP_ACTIVATIONS = ("identity", "relu", "leaky_relu", "sigmoid", "tanh")


def expand_mlp(entry: dict) -> list[dict]:
    """An mlp entry as its dense + activation layers; SpecErrors keyed like ".depth"."""
    for key in entry:
        if key not in MLP_KEYS:
            raise SpecError(f".{key}", f"unknown key for mlp (known: {', '.join(sorted(MLP_KEYS))})")
    depth, units = entry.get("depth", 1), entry.get("units")
    for key, v in (("depth", depth), ("units", units)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise SpecError(f".{key}", f"must be a whole number >= 1, got {v!r}")
    act = entry.get("activation", "relu")
    if act not in MLP_ACTIVATIONS:
        raise SpecError(".activation", f"must be one of {', '.join(MLP_ACTIVATIONS)}, got {act!r}")
    return [layer for _ in range(int(depth)) for layer in ({"type": "dense", "units": int(units)}, {"type": act})]


def layer_class(kind: str):
    module, cls = REGISTRY[kind].split(":")
    return getattr(importlib.import_module(f"descent.engine.{module}"), cls)


def build_layers(spec, in_shape: tuple, dtype=np.float32, prefix: str = "") -> list[Layer]:
    """Layers for `spec`, shapes checked in order. Errors are SpecError keyed like "[1].hidden"."""
    if not isinstance(spec, (list, tuple)) or not spec:
        raise SpecError("", "must be a non-empty list of layer tables")
    layers, shape = [], tuple(in_shape)
    for i, entry in _expanded(spec):
        kind = entry.get("type")
        if kind not in REGISTRY:
            raise SpecError(f"[{i}].type", f"unknown layer type {kind!r} (known: {', '.join(sorted([*REGISTRY, 'mlp']))})")
        cls = layer_class(kind)
        try:
            layer = cls(dict(entry), shape, dtype, build=build_layers) if cls.builds_sublayers else cls(dict(entry), shape, dtype)
        except SpecError as e:
            raise e.at(f"[{i}]") from None
        except ValueError as e:   # a kernel wrapper's shape complaint
            raise SpecError(f"[{i}]", f"{kind} cannot take input of shape {shape}: {e}") from None
        layer.name = f"{prefix}{len(layers)}"
        if layers:
            layer.after(layers[-1])
        layers.append(layer)
        shape = layer.out_shape
    return layers


def _expanded(spec) -> list[tuple[int, dict]]:
    """(index in `spec`, layer entry) with every mlp entry expanded; errors keep the spec's index."""
    out = []
    for i, entry in enumerate(spec):
        if not hasattr(entry, "get"):
            raise SpecError(f"[{i}]", f"must be a table like {{ type = \"dense\", units = 10 }}, got {entry!r}")
        if entry.get("type") != "mlp":
            out.append((i, entry))
            continue
        try:
            out.extend((i, layer) for layer in expand_mlp(dict(entry)))
        except SpecError as e:
            raise e.at(f"[{i}]") from None
    return out


def fill_from_data(layers: list, vocab_size: int | None) -> list:
    """Embedding and transformer layers without `vocab` take the dataset's vocabulary size, and
    a dense layer with units = "vocab" (a language model's output) one unit per token."""
    for layer in layers:
        if layer.get("type") in ("embedding", "transformer", "seq2seq") and "vocab" not in layer and vocab_size:
            layer["vocab"] = vocab_size
        if layer.get("type") == "dense" and layer.get("units") == "vocab" and vocab_size:
            layer["units"] = vocab_size
        if layer.get("type") == "residual":
            fill_from_data(layer.get("layers", []), vocab_size)
    return layers


def resolve_loss(name: str, task: str, out_units: int) -> str:
    if name != "auto":
        return name
    if task == "regression":
        return "mse"
    return "bce" if out_units == 1 else "cross_entropy"


class Net:
    """A stack of layers over one ParamSet."""

    def __init__(self, spec, in_shape: tuple, dtype=np.float32, seed: int = 0):
        self.dtype = np.dtype(dtype)
        self.in_shape = tuple(in_shape)
        self.layers = build_layers(spec, in_shape, self.dtype)
        self.out_shape = self.layers[-1].out_shape
        self.params = ParamSet(named_param_shapes(self.layers), self.dtype, named_transposed(self.layers))
        rng = np.random.default_rng(seed)
        for layer, p, g in zip(self.layers, split_views(self.params.values, self.layers),
                               split_views(self.params.grads, self.layers)):
            layer.init_params(p, rng)
            layer.bind(p, g)
        # nothing upstream of the first layer with parameters needs a gradient: its dx is never
        # computed (MNIST's flatten -> dense 1024: a 128x1024 @ 1024x784 product a step, 2.7 ms
        # of 8.8), nor the backward of the parameterless layers before it
        self.grad_from = next((i for i, layer in enumerate(self.layers) if layer.param_shapes()), 0)
        for layer in self.layers[:self.grad_from + 1]:
            layer.need_dx = False

    def forward(self, x: np.ndarray, ctx: Context) -> np.ndarray:
        if x.dtype.kind == "f" and x.dtype != self.dtype:
            x = x.astype(self.dtype)
        for layer in self.layers:
            x = layer.forward(x, ctx)
        return x

    def backward(self, dy: np.ndarray, ctx: Context) -> None:
        for layer in reversed(self.layers[self.grad_from:]):
            dy = layer.backward(dy, ctx)

    def torch_module(self):
        import torch.nn as nn

        return nn.Sequential(*[layer.torch_module() for layer in self.layers])
