"""Optimizers over one flat parameter buffer, matching torch.optim's update rules.

Each step also leaves, per tensor segment, the sums of squares of the gradient, of the applied
update and of the new parameters (grad_sq, upd_sq, p_sq), so the dashboard's per-tensor norms and
update-to-weight ratios |dW|/|W| cost two extra streaming passes. Gradient clipping is a scale
factor passed in (torch's clip_grad_norm_: coef = max_norm / (norm + 1e-6), capped at 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numba
import numpy as np

from . import threads
from .arrays import segment_sumsq
from .jit import jit, jit_pieces
from .names import OPTIMIZERS
from .params import ParamSet
from .scenario.schema import TrainingConfig

_T = TrainingConfig()     # the schema holds every default once; a bare OptimConfig() takes them


@dataclass
class OptimConfig:
    """Mutable on purpose: between two steps the session writes live knobs here and `lr`, the rate
    of the next step (its own `base_lr` through the schedule); the optimizer's state is kept.
    Built from a scenario's [training] table by `from_training`, the one place that copies it."""

    kind: str = _T.optimizer
    lr: float = _T.lr
    momentum: float = _T.momentum
    nesterov: bool = _T.nesterov
    beta1: float = _T.beta1
    beta2: float = _T.beta2
    eps: float = _T.eps
    alpha: float = _T.alpha
    weight_decay: float = _T.weight_decay
    decay_on: str = _T.decay_on
    clip_norm: float = _T.clip_norm

    @classmethod
    def from_training(cls, t: TrainingConfig) -> "OptimConfig":
        """The optimizer settings of a scenario's [training] table (`optimizer` is `kind`)."""
        return cls(kind=t.optimizer, **{f.name: getattr(t, f.name) for f in fields(cls) if f.name != "kind"})


# Each update kernel is one flat element-wise loop over the whole buffer (it vectorises; no
# fastmath) that also writes the applied change q - old into `delta` on a logged step (an empty
# delta otherwise: one store stream less); the per-tensor sums of
# delta**2 and of the new parameters**2 (for |dW|/|W|) then come from segment_sumsq. Scalars
# arrive as Python floats and are cast to the parameter dtype first, so float32 parameters are
# updated in float32 arithmetic (as torch does) and float64 in float64.


@jit
def sgd_kernel(p, g, buf, delta, lr, momentum, nesterov, wd, gscale, first):
    f = p.dtype.type
    track = delta.size > 0          # an empty delta: a step nobody logs skips that store
    lr, mu, wd, gscale = f(lr), f(momentum), f(wd), f(gscale)
    use_momentum = momentum != 0.0
    for i in range(p.size):
        old = p[i]
        d = g[i] * gscale + wd * old
        if use_momentum:
            b = d if first else mu * buf[i] + d
            buf[i] = b
            d = d + mu * b if nesterov else b
        q = old - lr * d
        p[i] = q
        if track:
            delta[i] = q - old


@jit
def rmsprop_kernel(p, g, sq, buf, delta, lr, alpha, eps, momentum, wd, gscale):
    f = p.dtype.type
    track = delta.size > 0          # an empty delta: a step nobody logs skips that store
    lr, a1, a2, eps, mu, wd, gscale = f(lr), f(alpha), f(1.0 - alpha), f(eps), f(momentum), f(wd), f(gscale)
    use_momentum = momentum > 0.0
    for i in range(p.size):
        old = p[i]
        d = g[i] * gscale + wd * old
        a = a1 * sq[i] + a2 * d * d
        sq[i] = a
        avg = np.sqrt(a) + eps
        if use_momentum:
            b = mu * buf[i] + d / avg
            buf[i] = b
            q = old - lr * b
        else:
            q = old - lr * d / avg
        p[i] = q
        if track:
            delta[i] = q - old


@jit
def adam_kernel(p, g, m, v, delta, lr, beta1, beta2, eps, wd, decoupled, t, gscale):
    """Adam / AdamW at step t >= 1 (decoupled: p *= 1 - lr*wd before the step; else L2: grad += wd*p)."""
    f = p.dtype.type
    track = delta.size > 0          # an empty delta: a step nobody logs skips that store
    step_size = f(lr / (1.0 - beta1 ** t))
    inv_sqrt_bc2 = f(1.0 / math.sqrt(1.0 - beta2 ** t))
    decay = f(1.0 - lr * wd)
    b1, c1, b2, c2 = f(beta1), f(1.0 - beta1), f(beta2), f(1.0 - beta2)
    eps, wd, gscale = f(eps), f(wd), f(gscale)
    for i in range(p.size):
        old = p[i]
        d = g[i] * gscale
        if decoupled:
            q = old * decay
        else:
            d = d + wd * old
            q = old
        a = b1 * m[i] + c1 * d
        c = b2 * v[i] + c2 * d * d
        m[i] = a
        v[i] = c
        q = q - step_size * a / (np.sqrt(c) * inv_sqrt_bc2 + eps)
        p[i] = q
        if track:
            delta[i] = q - old


# On more than one thread the buffer is cut into equal ranges, one per thread (Numba's threads,
# jit_pieces): every element gets the same arithmetic wherever the cut falls, so any cut gives the
# same bits. Ranges under PIECE_MIN elements are not worth a hand-off.
PIECE_MIN = 16384


@jit_pieces
def sgd_pieces(p, g, buf, delta, lr, momentum, nesterov, wd, gscale, first, pieces):
    n = p.size
    for i in numba.prange(pieces):
        s = slice(n * i // pieces, n * (i + 1) // pieces)
        sgd_kernel(p[s], g[s], buf[s], delta[s], lr, momentum, nesterov, wd, gscale, first)


@jit_pieces
def rmsprop_pieces(p, g, sq, buf, delta, lr, alpha, eps, momentum, wd, gscale, pieces):
    n = p.size
    for i in numba.prange(pieces):
        s = slice(n * i // pieces, n * (i + 1) // pieces)
        rmsprop_kernel(p[s], g[s], sq[s], buf[s], delta[s], lr, alpha, eps, momentum, wd, gscale)


@jit_pieces
def adam_pieces(p, g, m, v, delta, lr, beta1, beta2, eps, wd, decoupled, t, gscale, pieces):
    n = p.size
    for i in numba.prange(pieces):
        s = slice(n * i // pieces, n * (i + 1) // pieces)
        adam_kernel(p[s], g[s], m[s], v[s], delta[s], lr, beta1, beta2, eps, wd, decoupled, t, gscale)


class Optimizer:
    """Holds the flat state slots; `step` applies one update in place and returns per-tensor sums."""

    def __init__(self, params: ParamSet, config: OptimConfig):
        if config.kind not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {config.kind!r}")
        self.params = params
        self.config = config
        self.t = 0
        self.clip_scale = 1.0       # the last step's clipping factor (StepStats.clip_scale)
        zeros = lambda: np.zeros_like(params.flat)  # noqa: E731
        self.state = {"sgd": lambda: {"momentum": zeros()},
                      "rmsprop": lambda: {"square_avg": zeros(), "momentum": zeros()},
                      "adam": lambda: {"exp_avg": zeros(), "exp_avg_sq": zeros()},
                      "adamw": lambda: {"exp_avg": zeros(), "exp_avg_sq": zeros()}}[config.kind]()
        n = len(params.names)
        self.grad_sq = np.zeros(n)
        self.upd_sq = np.zeros(n)
        self.p_sq = np.zeros(n)
        self.delta = np.zeros_like(params.flat)     # the change each step applied, for |dW|
        self.spans = [(0, params.size)]             # flat ranges that train (`freeze` cuts holes)
        self.runs = decay_runs(params)
        self.frozen_spans: list[tuple[int, int]] = []

    def freeze(self, names) -> None:
        """Tensors that never change: no gradient (so none in the clipping norm, as torch leaves
        `requires_grad=False` parameters out of clip_grad_norm_), no update, no weight decay."""
        ps, frozen = self.params, set(names)
        mask = np.zeros(ps.size, bool)
        for i, name in enumerate(ps.names):
            if name in frozen:
                mask[ps.offsets[i]:ps.offsets[i + 1]] = True
        edges = np.flatnonzero(np.diff(np.concatenate([[True], mask, [True]]).astype(np.int8)))
        self.spans = [(int(lo), int(hi)) for lo, hi in zip(edges[::2], edges[1::2])]
        self.frozen_spans = [(int(ps.offsets[i]), int(ps.offsets[i + 1])) for i, n in enumerate(ps.names) if n in frozen]
        self.delta[mask] = 0.0          # never written again: a frozen tensor's change stays 0

    def _pieces(self) -> list[tuple[int, int, float]]:
        """(start, end, weight decay) of the flat ranges that train: the decay runs cut to the
        unfrozen spans. Without either it is the whole buffer, one piece."""
        c = self.config
        runs = self.runs if c.decay_on == "matrices" and c.weight_decay else [(0, self.params.size, True)]
        out = []
        for lo, hi, decays in runs:
            for a, b in self.spans:
                if max(lo, a) < min(hi, b):
                    out.append((max(lo, a), min(hi, b), c.weight_decay if decays else 0.0))
        return out

    def _update(self, lo: int, hi: int, wd: float, scale: float, track: bool) -> None:
        c, ps, st = self.config, self.params, self.state
        s = slice(lo, hi)
        delta = self.delta[s] if track else self.delta[:0]
        n = threads.pieces_threads((hi - lo) // PIECE_MIN)
        if c.kind == "sgd":
            args = (ps.flat[s], ps.grad[s], st["momentum"][s], delta, c.lr, c.momentum, c.nesterov,
                    wd, scale, self.t == 1)
            sgd_pieces(*args, n) if n > 1 else sgd_kernel(*args)
        elif c.kind == "rmsprop":
            args = (ps.flat[s], ps.grad[s], st["square_avg"][s], st["momentum"][s], delta, c.lr,
                    c.alpha, c.eps, c.momentum, wd, scale)
            rmsprop_pieces(*args, n) if n > 1 else rmsprop_kernel(*args)
        else:
            args = (ps.flat[s], ps.grad[s], st["exp_avg"][s], st["exp_avg_sq"][s], delta, c.lr,
                    c.beta1, c.beta2, c.eps, wd, c.kind == "adamw", self.t, scale)
            adam_pieces(*args, n) if n > 1 else adam_kernel(*args)

    def set(self, **changes) -> None:
        for key, value in changes.items():
            if not hasattr(self.config, key) or key == "kind":
                raise ValueError(f"cannot change optimizer setting {key!r} live")
            setattr(self.config, key, value)

    def step(self, diagnostics: bool = True) -> float:
        """Clip (global norm), update; returns the global gradient norm before clipping.
        `diagnostics` False leaves upd_sq and p_sq as they were: a step nobody logs skips those
        two passes over the buffer (about 7% of an MNIST MLP step).

        A non-finite gradient norm skips the update (t, weights and slots unchanged)."""
        c, ps = self.config, self.params
        for lo, hi in self.frozen_spans:
            ps.grad[lo:hi] = 0.0
        segment_sumsq(ps.grad, ps.offsets, self.grad_sq)
        norm = math.sqrt(sum(self.grad_sq.tolist()))
        if not math.isfinite(norm):
            return norm          # a NaN/inf gradient: weights and slots stay as they were
        scale = 1.0
        if c.clip_norm > 0:
            scale = min(1.0, c.clip_norm / (norm + 1e-6))
        self.clip_scale = scale
        self.t += 1
        for lo, hi, wd in self._pieces():     # decay_on = "matrices": nanoGPT's two groups
            self._update(lo, hi, wd, scale, diagnostics)
        if diagnostics:
            segment_sumsq(self.delta, ps.offsets, self.upd_sq)
            segment_sumsq(ps.flat, ps.offsets, self.p_sq)
        return norm

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The slots in checkpoint layout: each tensor's part in C order of its declared shape."""
        logical = self.params.logical
        return {f"optim.{k}": logical(v) for k, v in self.state.items()} | {"optim.t": np.array(self.t)}

    def load_state_arrays(self, arrays: dict) -> None:
        for k in self.state:
            src = np.asarray(arrays[f"optim.{k}"])
            if src.shape != self.state[k].shape:
                raise ValueError(f"optimizer slot {k}: shape {src.shape} does not match {self.state[k].shape}")
            self.state[k][...] = self.params.physical(src)
        self.t = int(arrays["optim.t"])


def decay_runs(params: ParamSet) -> list[tuple[int, int, bool]]:
    """(start, end, has 2+ dimensions) over the flat buffer, neighbours of one kind merged."""
    runs = []
    for i, name in enumerate(params.names):
        lo, hi, decays = int(params.offsets[i]), int(params.offsets[i + 1]), len(params.shapes[name]) >= 2
        if runs and runs[-1][2] == decays:
            runs[-1] = (runs[-1][0], hi, decays)
        else:
            runs.append((lo, hi, decays))
    return runs


def torch_optimizer(config: OptimConfig, parameters):
    """The torch.optim equivalent of `config` (used by the torch backend and the tests); with
    decay_on = "matrices" two groups, as nanoGPT's configure_optimizers (a group's "decay" says which)."""
    import torch

    c = config
    if c.decay_on == "matrices":
        parameters = list(parameters)
        parameters = [{"params": [p for p in parameters if p.dim() >= 2], "decay": True},
                      {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0, "decay": False}]
    if c.kind == "sgd":
        return torch.optim.SGD(parameters, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                               weight_decay=c.weight_decay)
    if c.kind == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=c.lr, alpha=c.alpha, eps=c.eps, momentum=c.momentum,
                                   weight_decay=c.weight_decay)
    cls = torch.optim.AdamW if c.kind == "adamw" else torch.optim.Adam
    return cls(parameters, lr=c.lr, betas=(c.beta1, c.beta2), eps=c.eps, weight_decay=c.weight_decay)
