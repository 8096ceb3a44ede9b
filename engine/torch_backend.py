"""The torch backend: the same model, built from the same description, trained with torch.optim.

The model is our Net's layers mapped one-to-one onto torch modules, with our initial weights
copied in, so the same seed starts both backends from the same point.
"""

from __future__ import annotations

import math

import numpy as np

from .losses import loss_targets, torch_loss
from .model import Net
from .optim import OptimConfig, torch_optimizer
from .stats import StepStats


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
    model.to(getattr(torch, np.dtype(dtype).name))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in net.params.state_dict().items()})
    return model


class TorchTrainer:
    backend = "torch"

    def __init__(self, layers, in_shape, loss="cross_entropy", optim: OptimConfig | None = None, seed=0,
                 dtype="float32"):
        import torch

        self.torch = torch
        self.dtype = np.dtype(dtype)
        torch.manual_seed(seed)
        self.model = build_torch_model(layers, in_shape, dtype, seed)
        self.names = [n for n, _ in self.model.named_parameters()]
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

    def _tensor(self, a):
        a = np.asarray(a)
        t = self.torch.from_numpy(np.ascontiguousarray(a))
        return t.to(getattr(self.torch, self.dtype.name)) if a.dtype.kind == "f" else t

    def step(self, x, y, mask=None, time_grads: bool = True) -> StepStats:
        torch = self.torch
        self.model.train()
        params = list(self.model.parameters())
        before = [p.detach().clone() for p in params]
        out = self.model(self._tensor(x), None if mask is None else torch.from_numpy(np.asarray(mask)))
        target = self._tensor(loss_targets(self.loss_name, y, self.dtype))
        loss = self.loss_fn(out, target.reshape(out.shape) if self.loss_name != "cross_entropy" else target)
        if not math.isfinite(loss.item()):
            return StepStats(loss.item(), math.nan, math.nan, {}, {}, None)
        self.opt.zero_grad(set_to_none=False)
        loss.backward()
        grad_norms = [p.grad.detach().norm().item() for p in params]
        total = math.sqrt(sum(g * g for g in grad_norms))
        clip_scale = 1.0
        if self._config.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, self._config.clip_norm)
            clip_scale = min(1.0, self._config.clip_norm / (total + 1e-6))    # torch's own coefficient
        self.opt.step()
        with torch.no_grad():
            p_norms = [p.norm().item() for p in params]
            upd = [(p - b).norm().item() for p, b in zip(params, before)]
        return StepStats(
            loss=loss.item(), grad_norm=total, param_norm=math.sqrt(sum(v * v for v in p_norms)),
            grad_norms=dict(zip(self.names, grad_norms)),
            update_ratios={n: u / max(w, 1e-12) for n, u, w in zip(self.names, upd, p_norms)},
            time_grad_norms=None, clip_scale=clip_scale,
        )

    def predict(self, x, mask=None, batch_size: int = 1024) -> np.ndarray:
        self.model.eval()
        outs = []
        with self.torch.no_grad():
            for lo in range(0, len(x), batch_size):
                m = None if mask is None else self.torch.from_numpy(np.asarray(mask[lo:lo + batch_size]))
                outs.append(self.model(self._tensor(x[lo:lo + batch_size]), m).numpy().copy())
        return np.concatenate(outs)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy().copy() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict({k: self.torch.from_numpy(np.asarray(v)) for k, v in state.items()})

    def state_arrays(self) -> dict[str, np.ndarray]:
        # torch's optimizer state stays torch's: a torch-backend checkpoint restarts the moments
        return self.state_dict()

    def load_state_arrays(self, arrays: dict) -> None:
        names = set(self.model.state_dict())
        self.load_state_dict({k: v for k, v in arrays.items() if k in names})

    def rng_state(self) -> dict:
        return {"torch": self.torch.get_rng_state().numpy().tolist()}

    def set_rng_state(self, state: dict) -> None:
        if "torch" in state:
            self.torch.set_rng_state(self.torch.tensor(state["torch"], dtype=self.torch.uint8))
