"""The training step behind one interface, for our engine ("numba") and PyTorch ("torch")."""

from __future__ import annotations

import math

import numpy as np

from . import threads
from .layer import Context
from .losses import LOSSES, loss_targets
from .model import Net
from .names import BACKENDS
from .optim import OptimConfig, Optimizer
from .stats import StepStats


class Trainer:
    """Our engine: a Net, a loss and an optimizer; one `step` is forward, backward, update."""

    backend = "numba"

    def __init__(self, layers, in_shape, loss: str = "cross_entropy", optim: OptimConfig | None = None,
                 seed: int = 0, dtype="float32"):
        self.dtype = np.dtype(dtype)
        self.loss_name = loss
        self.loss_fn = LOSSES[loss]
        self.net = Net(layers, in_shape, self.dtype, seed)
        self.optimizer = Optimizer(self.net.params, optim or OptimConfig())
        self.rng = np.random.default_rng([seed, 1])     # dropout only; data order belongs to the session
        self.names = self.net.params.names

    @property
    def config(self) -> OptimConfig:
        return self.optimizer.config

    def set_hparams(self, **changes) -> None:
        self.optimizer.set(**changes)

    def step(self, x, y, mask=None, time_grads: bool = True) -> StepStats:
        ctx = Context(train=True, rng=self.rng, mask=mask, want_time_grads=time_grads)
        out = self.net.forward(x, ctx)
        loss, dout = self.loss_fn(out, loss_targets(self.loss_name, y, self.dtype))
        if not math.isfinite(loss):
            # leave the weights as they were: the session reports divergence and keeps the last good state
            return StepStats(loss, math.nan, math.nan, {}, {}, None)
        self.net.backward(dout, ctx)
        opt = self.optimizer
        grad_norm = opt.step(diagnostics=time_grads)
        sqrt = math.sqrt
        if not math.isfinite(grad_norm):
            # the optimizer skipped the update; the session reports divergence
            grads = {name: sqrt(v) for name, v in zip(self.names, opt.grad_sq.tolist())}
            return StepStats(loss, grad_norm, math.nan, grads, {}, dict(ctx.time_grad_norms) or None)
        if not time_grads:           # a step the session does not log: its loss, norm and clipping only
            return StepStats(loss, grad_norm, math.nan, {}, {}, None, clip_scale=opt.clip_scale)
        # per-tensor figures for the dashboard, from the optimizer's per-segment sums of squares
        g_sq, u_sq, p_sq = opt.grad_sq.tolist(), opt.upd_sq.tolist(), opt.p_sq.tolist()
        return StepStats(
            loss=loss,
            grad_norm=grad_norm,
            param_norm=sqrt(sum(p_sq)),
            grad_norms={name: sqrt(v) for name, v in zip(self.names, g_sq)},
            update_ratios={name: sqrt(u) / max(sqrt(w), 1e-12) for name, u, w in zip(self.names, u_sq, p_sq)},
            time_grad_norms=dict(ctx.time_grad_norms) or None,
            clip_scale=opt.clip_scale,
            time_grad_ratio=dict(ctx.time_grad_ratio) or None,
        )

    def predict(self, x, mask=None, batch_size: int = 1024) -> np.ndarray:
        """Model outputs (logits) in evaluation mode, as a new array, in equal slices of at most
        `batch_size` rows whose activations fit EVAL_BYTES (see eval_rows)."""
        outs = []
        batch_size = eval_rows(self.net.layers, len(x), batch_size, self.dtype.itemsize)
        for lo in range(0, len(x), batch_size):
            m = None if mask is None else mask[lo:lo + batch_size]
            ctx = Context(train=False, rng=self.rng, mask=m, want_time_grads=False)
            outs.append(np.array(self.net.forward(x[lo:lo + batch_size], ctx), copy=True))
        return np.concatenate(outs) if outs else np.empty((0,) + self.net.out_shape, self.dtype)

    # checkpoints: parameters under their torch names, optimizer slots under "optim.*"
    def state_dict(self) -> dict[str, np.ndarray]:
        return self.net.params.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.net.params.load_state_dict(state)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return self.state_dict() | self.optimizer.state_arrays()

    def load_state_arrays(self, arrays: dict) -> None:
        self.load_state_dict({k: v for k, v in arrays.items() if k in self.net.params.shapes})
        self.optimizer.load_state_arrays(arrays)

    def rng_state(self) -> dict:
        return self.rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


EVAL_BYTES = 16 << 20      # what one evaluation slice's layer outputs and work arrays may take


def eval_rows(layers, n: int, most: int, itemsize: int) -> int:
    """Rows per evaluation slice: at most `most`, few enough that what every layer holds for the
    slice (`Layer.eval_floats`: pools keep winners, convolutions padded copies and column buffers,
    a transformer each block's attention and MLP arrays) fits EVAL_BYTES, and all slices the same
    size but the last by less than one row per slice, so the layers' buffers (cached by shape) are
    one set, not two. digits_cnn's 10,000 test images in slices of 1,024 and one of 784 held two
    sets: 300 MB of a 710 MB peak; textgen_transformer's 256-window slices, counted by their
    logits alone, 820 MB in its four blocks."""
    per_row = itemsize * sum(layer.eval_floats() for layer in layers)
    rows = max(1, min(most, EVAL_BYTES // max(per_row, 1)))
    slices = -(-n // rows) if n else 1
    return max(1, -(-n // slices))


def make_trainer(layers, in_shape, loss="cross_entropy", optim: OptimConfig | None = None, seed=0,
                 dtype="float32", backend="numba", device: str = "cpu"):
    """`device` as `torch_backend.resolve_device` gives it; our engine runs on the CPU only."""
    if backend == "numba":
        return Trainer(layers, in_shape, loss, optim, seed, dtype)
    if backend == "torch":
        from .torch_backend import TorchTrainer

        return TorchTrainer(layers, in_shape, loss, optim, seed, dtype, device)
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


WARM_UP_ROWS = 256    # a warm-up batch of at most this many rows: a bigger one takes the same drivers


def warm_up(layers, in_shape, loss, x, y, mask=None, dtype="float32", kind="adam") -> None:
    """Compile (or load from cache) every kernel this model uses, on a throwaway copy: a step and
    a prediction on x, then a step on its first 2 rows. The session passes a whole batch (up to
    WARM_UP_ROWS rows): with DESCENT_THREADS >= 2 a batch takes the pieces drivers, which 2 rows
    don't, and those compiled during training's first steps, outside the compiling state (nile: a
    3.8 s stall); 2 rows take the serial kernels a short last batch needs. On one thread 2 rows
    take every kernel a batch does, so only those run (a batch cost 0.1-0.3 s of every start of
    textgen_transformer and seq2seq). A model with recurrent or attention layers also reads the
    lesson panel's gate curves once (inside.py), which compiled at the first logged step."""
    if threads.count() < 2:
        x, y, mask = x[:2], y[:2], None if mask is None else mask[:2]
    t = Trainer(layers, in_shape, loss, OptimConfig(kind=kind), 0, dtype)
    t.step(x, y, mask)
    t.predict(x, mask)
    if len(x) > 2:
        t.step(x[:2], y[:2], None if mask is None else mask[:2])
    if any(type(layer).__module__.endswith((".recurrent", ".attention")) for layer in t.net.layers):
        from .inside import inside_the_cell     # the lesson panel's gate curves, read at the first logged step

        inside_the_cell(t.net, x[:2], None if mask is None else mask[:2])
