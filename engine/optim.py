"""Optimizers over one flat parameter buffer, matching torch.optim's update rules.

Each kernel also returns, per tensor segment, the sum of squares of the update and of the new
parameters, so the update-to-weight ratio |dW|/|W| costs nothing extra. Gradient clipping is a
scale factor passed in (torch's clip_grad_norm_: coef = max_norm / (norm + 1e-6), capped at 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .jit import jit
from .params import ParamSet, segment_sumsq

KINDS = ("sgd", "rmsprop", "adam", "adamw")


@dataclass
class OptimConfig:
    """Mutable on purpose: the dashboard changes lr & co between two steps; state is kept."""

    kind: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    alpha: float = 0.99
    weight_decay: float = 0.0
    clip_norm: float = 0.0

    @classmethod
    def from_mapping(cls, m) -> "OptimConfig":
        names = {f.name for f in fields(cls)}
        kw = {k: m[k] for k in names if k in m}
        if "optimizer" in m:
            kw["kind"] = m["optimizer"]
        return cls(**kw)


@jit
def sgd_kernel(p, g, buf, offsets, lr, momentum, nesterov, wd, gscale, first, upd_sq, p_sq):
    for s in range(offsets.size - 1):
        us = 0.0
        ps = 0.0
        for i in range(offsets[s], offsets[s + 1]):
            d = g[i] * gscale + wd * p[i]
            if momentum != 0.0:
                b = d if first else momentum * buf[i] + d
                buf[i] = b
                d = d + momentum * b if nesterov else b
            step = lr * d
            p[i] -= step
            us += np.float64(step) * step
            ps += np.float64(p[i]) * p[i]
        upd_sq[s] = us
        p_sq[s] = ps


@jit
def rmsprop_kernel(p, g, sq, buf, offsets, lr, alpha, eps, momentum, wd, gscale, upd_sq, p_sq):
    for s in range(offsets.size - 1):
        us = 0.0
        ps = 0.0
        for i in range(offsets[s], offsets[s + 1]):
            d = g[i] * gscale + wd * p[i]
            sq[i] = alpha * sq[i] + (1.0 - alpha) * d * d
            avg = math.sqrt(sq[i]) + eps
            if momentum > 0.0:
                buf[i] = momentum * buf[i] + d / avg
                step = lr * buf[i]
            else:
                step = lr * d / avg
            p[i] -= step
            us += np.float64(step) * step
            ps += np.float64(p[i]) * p[i]
        upd_sq[s] = us
        p_sq[s] = ps


@jit
def adam_kernel(p, g, m, v, offsets, lr, b1, b2, eps, wd, decoupled, t, gscale, upd_sq, p_sq):
    step_size = lr / (1.0 - b1 ** t)
    inv_sqrt_bc2 = 1.0 / math.sqrt(1.0 - b2 ** t)
    decay = 1.0 - lr * wd
    for s in range(offsets.size - 1):
        us = 0.0
        ps = 0.0
        for i in range(offsets[s], offsets[s + 1]):
            old = p[i]
            d = g[i] * gscale
            if decoupled:
                q = old * decay
            else:
                d += wd * old
                q = old
            m[i] = b1 * m[i] + (1.0 - b1) * d
            v[i] = b2 * v[i] + (1.0 - b2) * d * d
            q -= step_size * m[i] / (math.sqrt(v[i]) * inv_sqrt_bc2 + eps)
            p[i] = q
            u = np.float64(q) - old
            us += u * u
            ps += np.float64(q) * q
        upd_sq[s] = us
        p_sq[s] = ps


class Optimizer:
    """Holds the flat state slots; `step` applies one update in place and returns per-tensor sums."""

    def __init__(self, params: ParamSet, config: OptimConfig):
        if config.kind not in KINDS:
            raise ValueError(f"optimizer must be one of {KINDS}, got {config.kind!r}")
        self.params = params
        self.config = config
        self.t = 0
        zeros = lambda: np.zeros_like(params.flat)  # noqa: E731
        self.state = {"sgd": lambda: {"momentum": zeros()},
                      "rmsprop": lambda: {"square_avg": zeros(), "momentum": zeros()},
                      "adam": lambda: {"exp_avg": zeros(), "exp_avg_sq": zeros()},
                      "adamw": lambda: {"exp_avg": zeros(), "exp_avg_sq": zeros()}}[config.kind]()
        n = len(params.names)
        self.grad_sq = np.zeros(n)
        self.upd_sq = np.zeros(n)
        self.p_sq = np.zeros(n)

    def set(self, **changes) -> None:
        for key, value in changes.items():
            if not hasattr(self.config, key) or key == "kind":
                raise ValueError(f"cannot change optimizer setting {key!r} live")
            setattr(self.config, key, value)

    def step(self) -> float:
        """Clip (global norm), update; returns the global gradient norm before clipping."""
        c, ps = self.config, self.params
        segment_sumsq(ps.grad, ps.offsets, self.grad_sq)
        norm = math.sqrt(float(self.grad_sq.sum()))
        scale = 1.0
        if c.clip_norm > 0 and math.isfinite(norm):
            scale = min(1.0, c.clip_norm / (norm + 1e-6))
        self.t += 1
        st = self.state
        if c.kind == "sgd":
            sgd_kernel(ps.flat, ps.grad, st["momentum"], ps.offsets, c.lr, c.momentum, c.nesterov,
                       c.weight_decay, scale, self.t == 1, self.upd_sq, self.p_sq)
        elif c.kind == "rmsprop":
            rmsprop_kernel(ps.flat, ps.grad, st["square_avg"], st["momentum"], ps.offsets, c.lr, c.alpha,
                           c.eps, c.momentum, c.weight_decay, scale, self.upd_sq, self.p_sq)
        else:
            adam_kernel(ps.flat, ps.grad, st["exp_avg"], st["exp_avg_sq"], ps.offsets, c.lr, c.beta1,
                        c.beta2, c.eps, c.weight_decay, c.kind == "adamw", self.t, scale,
                        self.upd_sq, self.p_sq)
        return norm

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {f"optim.{k}": v for k, v in self.state.items()} | {"optim.t": np.array(self.t)}

    def load_state_arrays(self, arrays: dict) -> None:
        for k in self.state:
            src = np.asarray(arrays[f"optim.{k}"])
            if src.shape != self.state[k].shape:
                raise ValueError(f"optimizer slot {k}: shape {src.shape} does not match {self.state[k].shape}")
            self.state[k][...] = src
        self.t = int(arrays["optim.t"])


def torch_optimizer(config: OptimConfig, parameters):
    """The torch.optim equivalent of `config` (used by the torch backend and the tests)."""
    import torch

    c = config
    if c.kind == "sgd":
        return torch.optim.SGD(parameters, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                               weight_decay=c.weight_decay)
    if c.kind == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=c.lr, alpha=c.alpha, eps=c.eps, momentum=c.momentum,
                                   weight_decay=c.weight_decay)
    cls = torch.optim.AdamW if c.kind == "adamw" else torch.optim.Adam
    return cls(parameters, lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps, weight_decay=c.weight_decay)
