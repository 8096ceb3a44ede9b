"""The torch backend: the same model, built from the same description, trained with torch.optim.

The model is our Net's layers mapped one-to-one onto torch modules, with our initial weights
copied in, so the same seed starts both backends from the same point.

`device` (training.device, resolved by `resolve_device`) is where the model lives; each batch
is moved there as it is used, and every array that leaves (predictions, checkpoints) comes
back through `.cpu()`. Under torchrun, `distribute(world)` wraps the model in
DistributedDataParallel and each step trains on this process's share of the global batch
(engine/distributed.py).

On logged steps (`step(..., time_grads=True)`) the recurrent and attention layers' per-time-step
gradient norms are measured at each layer's input, ||dL/dx_t|| (engine/torch_timegrads.py says
how they compare with the numba engine's ||dL/dh_t||), under the numba engine's keys, and under
torchrun combined over the processes.
"""

from __future__ import annotations

import math

import numpy as np

from . import threads
from .errors import DescentError
from .losses import loss_targets, torch_loss
from .model import Net
from .optim import OptimConfig, torch_optimizer
from .stats import StepStats
from .torch_timegrads import TimeGrads


def build_torch_model(layers, in_shape, dtype="float32", seed: int = 0):
    """A torch module whose state_dict keys and shapes equal our checkpoint's parameter names."""
    import torch
    import torch.nn as nn

    net = Net(layers, in_shape, np.dtype(dtype), seed)

    class TorchNet(nn.Sequential):
        """nn.Sequential (so names stay "0.weight"), passing the sequence mask to modules that take it."""

        def forward(self, x, mask=None):
            for module in self:
                x = module(x, mask) if getattr(module, "takes_mask", False) else module(x)
            return x

    model = TorchNet(*[layer.torch_module() for layer in net.layers])
    # the layers the numba engine records per-time-step gradients of beside the recurrent ones
    # (torch modules are named like our layers: "2", "1.block.0")
    model.attention_layers = tuple(layer.name for layer in _walk(net.layers) if layer.kind == "attention")
    model.to(getattr(torch, np.dtype(dtype).name))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in net.params.state_dict().items()})
    return model


def _walk(layers):
    for layer in layers:
        yield layer
        yield from _walk(layer.sublayers())


def _torch_version(torch) -> str:
    return torch.__version__.split("+")[0]


def resolve_device(request: str, backend: str, dtype: str = "float32") -> str:
    """training.device as the device a run computes on ("cpu", "cuda:0", "mps"), or a one-line
    DescentError saying why it cannot be had here. "auto" is cuda if there is one, else mps,
    else cpu; for the numba engine, which runs on the CPU only, it is the CPU."""
    if backend != "torch":
        if request in ("cpu", "auto"):
            return "cpu"
        raise DescentError(f'training.device = {request} needs training.backend = "torch" (the numba engine '
                           f'runs on the CPU only): add --backend torch, or --device cpu')
    try:
        import torch
    except ImportError:
        raise DescentError("backend 'torch' needs PyTorch: pip install 'descent[torch]'") from None
    mps = getattr(torch.backends, "mps", None)
    if request == "auto":
        request = "cuda" if torch.cuda.is_available() else "mps" if mps and mps.is_available() else "cpu"
    if request == "cpu":
        return "cpu"
    if request == "mps":
        if not (mps and mps.is_available()):
            why = "needs Apple silicon and macOS 12.3+" if mps and mps.is_built() else "built without MPS"
            raise DescentError(f"training.device = mps: no MPS device here (torch {_torch_version(torch)}, {why}); "
                               f"train on the CPU with --device cpu")
        if dtype == "float64":
            raise DescentError('training.device = mps: MPS computes no float64; set training.dtype = "float32"')
        return "mps"
    if not torch.cuda.is_available():
        why = (f"built with CUDA {torch.version.cuda}, no GPU visible" if torch.version.cuda
               else "built without CUDA")
        raise DescentError(f"training.device = {request}: no CUDA device here (torch {_torch_version(torch)}, {why}); "
                           f"train on the CPU with --device cpu")
    count = torch.cuda.device_count()
    index = int(request[5:]) if request.startswith("cuda:") else torch.cuda.current_device()
    if index >= count:
        raise DescentError(f"training.device = {request}: this machine has {count} CUDA device"
                           f"{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1})")
    return f"cuda:{index}"


class TorchTrainer:
    backend = "torch"

    def __init__(self, layers, in_shape, loss="cross_entropy", optim: OptimConfig | None = None, seed=0,
                 dtype="float32", device: str = "cpu"):
        import torch

        self.torch = torch
        self.dtype = np.dtype(dtype)
        self.seed = seed
        self.device = torch.device(device)
        if self.device.type == "cpu":
            # the engine's one thread setting (DESCENT_THREADS, default 1) for torch's CPU kernels
            # too: its own default (every core) collapses when the other core is busy (a seq2seq
            # GRU forward: 11 ms on one thread, 156 ms on two with the machine loaded)
            torch.set_num_threads(threads.count())
        torch.manual_seed(seed)
        self.model = build_torch_model(layers, in_shape, dtype, seed).to(self.device)
        self.forward = self.model           # the DistributedDataParallel wrapper once distributed
        self.world = None
        self.names = [n for n, _ in self.model.named_parameters()]
        self.time_grads = TimeGrads(self.model, self.model.attention_layers)
        self._config = optim or OptimConfig()
        self.opt = torch_optimizer(self._config, self.model.parameters())
        self.loss_name = loss
        self.loss_fn = torch_loss(loss)

    @property
    def config(self) -> OptimConfig:
        return self._config

    def set_hparams(self, **changes) -> None:
        for key, value in changes.items():
            setattr(self._config, key, value)
        c = self._config
        for group in self.opt.param_groups:
            group["lr"] = c.lr
            group["weight_decay"] = c.weight_decay if group.get("decay", True) else 0.0
            if "momentum" in group:
                group["momentum"] = c.momentum
            if "betas" in group:
                group["betas"] = (c.beta1, c.beta2)
            if "eps" in group:
                group["eps"] = c.eps
            if "alpha" in group:
                group["alpha"] = c.alpha

    def distribute(self, world) -> None:
        """Train as one of `world`'s processes (engine/distributed.py): DistributedDataParallel
        averages the gradients in backward, so every process holds the same weights."""
        from torch.nn.parallel import DistributedDataParallel

        self.world = world
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.forward = DistributedDataParallel(self.model, device_ids=ids)
        if world.rank:           # dropout masks of their own; rank 0 keeps a one-process run's
            self.torch.manual_seed(world.seed_for(self.seed))

    def _tensor(self, a):
        a = np.asarray(a)
        t = self.torch.from_numpy(np.ascontiguousarray(a))
        if a.dtype.kind == "f":
            return t.to(device=self.device, dtype=getattr(self.torch, self.dtype.name))
        return t.to(self.device)

    def _norms(self, tensors) -> list[float]:
        # one stacked tensor, so a GPU synchronizes once a step rather than once a tensor
        return self.torch.stack([t.norm() for t in tensors]).tolist() if tensors else []

    def step(self, x, y, mask=None, time_grads: bool = True) -> StepStats:
        torch = self.torch
        self.model.train()
        weight = 1.0
        if self.world is not None:           # this process's rows of the global batch
            rows, weight = self.world.share(len(x))
            x, y, mask = x[rows], y[rows], None if mask is None else np.asarray(mask)[rows]
        params = list(self.model.parameters())
        before = [p.detach().clone() for p in params]
        mask = None if mask is None else self._tensor(mask)
        self.time_grads.arm(time_grads)
        out = self.forward(self._tensor(x), mask)
        target = self._tensor(loss_targets(self.loss_name, y, self.dtype))
        loss = self.loss_fn(out, target.reshape(out.shape) if self.loss_name != "cross_entropy" else target)
        # under DDP the global batch's mean loss, the same on every process (so all of them
        # skip a non-finite step together, and none waits in backward for the others)
        value = loss.item() if self.world is None else self.world.mean(loss.detach() * weight)
        if not math.isfinite(value):
            self.time_grads.disarm()
            return StepStats(value, math.nan, math.nan, {}, {}, None)
        self.opt.zero_grad(set_to_none=False)
        # weight = this share's rows x processes / the batch's rows: DDP's average of the shares'
        # gradients is then the gradient of the global batch's mean loss, as in one process
        (loss if self.world is None else loss * weight).backward()
        times, ratios = self.time_grads.take(mask, self.world, weight) if time_grads else (None, None)
        grad_norms = self._norms([p.grad.detach() for p in params])     # after DDP's all-reduce
        total = math.sqrt(sum(g * g for g in grad_norms))
        clip_scale = 1.0
        if self._config.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, self._config.clip_norm)
            clip_scale = min(1.0, self._config.clip_norm / (total + 1e-6))    # torch's own coefficient
        self.opt.step()
        with torch.no_grad():
            p_norms = self._norms(params)
            upd = self._norms([p - b for p, b in zip(params, before)])
        return StepStats(
            loss=value, grad_norm=total, param_norm=math.sqrt(sum(v * v for v in p_norms)),
            grad_norms=dict(zip(self.names, grad_norms)),
            update_ratios={n: u / max(w, 1e-12) for n, u, w in zip(self.names, upd, p_norms)},
            time_grad_norms=times, clip_scale=clip_scale, time_grad_ratio=ratios,
        )

    def predict(self, x, mask=None, batch_size: int = 1024) -> np.ndarray:
        self.model.eval()
        outs = []
        with self.torch.no_grad():
            for lo in range(0, len(x), batch_size):
                m = None if mask is None else self._tensor(mask[lo:lo + batch_size])
                outs.append(self.model(self._tensor(x[lo:lo + batch_size]), m).cpu().numpy().copy())
        return np.concatenate(outs)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict({k: self.torch.from_numpy(np.asarray(v)) for k, v in state.items()})

    def state_arrays(self) -> dict[str, np.ndarray]:
        # torch's optimizer state stays torch's: a torch-backend checkpoint restarts the moments
        return self.state_dict()

    def load_state_arrays(self, arrays: dict) -> None:
        names = set(self.model.state_dict())
        self.load_state_dict({k: v for k, v in arrays.items() if k in names})

    def rng_state(self) -> dict:
        state = {"torch": self.torch.get_rng_state().numpy().tolist()}
        if self.device.type == "cuda":       # dropout on a GPU draws from the GPU's generator
            state["torch_cuda"] = self.torch.cuda.get_rng_state(self.device).numpy().tolist()
        return state

    def set_rng_state(self, state: dict) -> None:
        torch = self.torch
        if "torch" in state:
            torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
        if "torch_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(torch.tensor(state["torch_cuda"], dtype=torch.uint8), self.device)
