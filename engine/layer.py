"""The layer protocol, the per-step context, and the spec reader every layer validates with."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import SpecError


@dataclass
class Context:
    """What a forward/backward pass needs besides the arrays.

    rng is the only source of dropout randomness; mask is (B, T) bool for token sequences;
    sequence layers put ||dL/dh_t|| per time step, shape (T,), into time_grad_norms, and the same
    aligned on each sample's answer and scaled by its norm (index = distance back) into
    time_grad_ratio.
    """

    train: bool = True
    rng: np.random.Generator | None = None
    mask: np.ndarray | None = None
    time_grad_norms: dict[str, np.ndarray] = field(default_factory=dict)
    want_time_grads: bool = True
    time_grad_ratio: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: tuple | None = None     # (output, ids, weight) of the last embedding (recurrent.py)


class Layer:
    """Base class; see docs/design.md for the protocol."""

    kind = "layer"
    name = ""          # set by the model: the layer's index path, e.g. "1" or "2.block.0"
    need_dx = True     # the model sets False up to the first layer with parameters: nothing upstream needs dx
    builds_sublayers = False   # True: the model passes its build_layers to __init__ as build=
    stored_transposed: tuple = ()   # local names of 2-D tensors kept in memory as their transpose (params.py)

    def __init__(self, spec: dict, in_shape: tuple, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(in_shape)

    def param_shapes(self) -> dict[str, tuple]:
        return {}

    def init_params(self, p: dict, rng: np.random.Generator) -> None:
        pass

    def transposed_names(self) -> list[str]:
        """Names (as in param_shapes) of the tensors stored transposed."""
        return list(self.stored_transposed)

    def bind(self, p: dict, g: dict) -> None:
        self.p, self.g = p, g

    def forward(self, x, ctx: Context):
        raise NotImplementedError

    def backward(self, dy, ctx: Context):
        raise NotImplementedError

    def torch_module(self):
        raise NotImplementedError(f"{self.kind} has no torch equivalent yet")

    def sublayers(self) -> list["Layer"]:
        return []

    def eval_floats(self) -> int:
        """Floats one input row's forward pass holds at evaluation, its output and work arrays
        (backend.eval_rows sizes slices by it): twice the output, unless a layer knows better."""
        return 2 * int(np.prod(self.out_shape))

    def after(self, prev: "Layer") -> None:
        """build_layers names the layer before this one in its list: the only layer that reads
        this one's dx, so a pair may agree on a shortcut (MaxPool2d under a Conv2d)."""


def named_param_shapes(layers: list[Layer]) -> list[tuple[str, tuple]]:
    return [(f"{i}.{local}", shape) for i, layer in enumerate(layers) for local, shape in layer.param_shapes().items()]


def named_transposed(layers: list[Layer]) -> list[str]:
    return [f"{i}.{local}" for i, layer in enumerate(layers) for local in layer.transposed_names()]


def split_views(views: dict, layers: list[Layer]) -> list[dict]:
    """Per-layer dicts of local-name views out of a dict keyed "{i}.{local}"."""
    out = []
    for i, layer in enumerate(layers):
        out.append({local: views[f"{i}.{local}"] for local in layer.param_shapes()})
    return out


class SpecReader:
    """Reads one layer dict; every problem is a SpecError whose key is relative to the layer."""

    def __init__(self, spec: dict, kind: str, allowed: set[str]):
        self.spec = dict(spec)
        unknown = sorted(set(self.spec) - allowed - {"type"})
        if unknown:
            raise SpecError(f".{unknown[0]}", f"unknown key for a {kind} layer (allowed: {', '.join(sorted(allowed)) or 'none'})")
        self.kind = kind

    def int(self, key, default=None, lo=None, hi=None) -> int:
        v = self._get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise SpecError(f".{key}", f"must be an integer, got {v!r}")
        self._range(key, v, lo, hi)
        return int(v)

    def float(self, key, default=None, lo=None, hi=None) -> float:
        v = self._get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise SpecError(f".{key}", f"must be a number, got {v!r}")
        self._range(key, v, lo, hi)
        return float(v)

    def bool(self, key, default=None) -> bool:
        v = self._get(key, default)
        if not isinstance(v, bool):
            raise SpecError(f".{key}", f"must be true or false, got {v!r}")
        return v

    def choice(self, key, choices, default=None) -> str:
        v = self._get(key, default)
        if v not in choices:
            raise SpecError(f".{key}", f"must be one of {', '.join(map(str, choices))}, got {v!r}")
        return v

    def raw(self, key, default=None):
        return self._get(key, default)

    def _get(self, key, default):
        if key in self.spec:
            return self.spec[key]
        if default is None:
            raise SpecError(f".{key}", f"is required for a {self.kind} layer")
        return default

    @staticmethod
    def _range(key, v, lo, hi):
        if lo is not None and v < lo:
            raise SpecError(f".{key}", f"must be at least {lo}, got {v}")
        if hi is not None and v > hi:
            raise SpecError(f".{key}", f"must be at most {hi}, got {v}")
