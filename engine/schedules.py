"""Learning-rate schedules as pure functions of the step (nanoGPT's get_lr, generalised)."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "step", "cosine")


def lr_at(step: int, base_lr: float, schedule: str = "constant", total_steps: int = 0,
          warmup_steps: int = 0, step_size: int = 1000, gamma: float = 0.5, min_lr: float = 0.0) -> float:
    """The learning rate for 0-based `step`.

    Linear warm-up from base_lr/warmup_steps to base_lr over the first warmup_steps steps, then:
    constant; step (times gamma every step_size steps after warm-up); cosine (from base_lr down
    to min_lr at total_steps).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    s = step - warmup_steps
    if schedule == "constant":
        return base_lr
    if schedule == "step":
        return base_lr * gamma ** (s // max(1, step_size))
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        frac = min(1.0, s / span)
        return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown schedule {schedule!r}")
